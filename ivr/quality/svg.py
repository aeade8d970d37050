"""Inline SVG bar charts for the opt-in quality page, drawn in Python.

No JavaScript and no style attributes (the CSP allows neither): colours and sizes are
SVG presentation attributes. Every label is XML-escaped; each chart has a <title> and
each bar a <title> with its figure, so the chart reads without colour.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

# What the legend and the bar titles call each segment.
SEGMENT_LABELS = {
    "opt_in": "opted in",
    "declined": "declined",
    "opt_out": "opted out",
    "hung_up": "hung up",
    "no_input": "no input",
}
SEGMENT_COLOURS = {
    "opt_in": "#1b7f3b",
    "declined": "#8a8f98",
    "opt_out": "#c2410c",
    "hung_up": "#d4a017",
    "no_input": "#7c3aed",
}
_LABEL_WIDTH = 150
_BAR_WIDTH = 460
_ROW = 28


def _svg(title: str, height: int, body: list[str], width: int = _LABEL_WIDTH + _BAR_WIDTH + 70) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}"><title>{escape(title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def stacked_bars(title: str, rows: Sequence[tuple[str, Sequence[tuple[str, int]]]]) -> str:
    """One horizontal bar per row, split into named segments by their share of the row's total."""
    body: list[str] = []
    y = 4
    for label, segments in rows:
        total = sum(value for _, value in segments)
        body.append(f'<text x="0" y="{y + 17}" font-size="13">{escape(label)}</text>')
        x = float(_LABEL_WIDTH)
        for name, value in segments:
            if total == 0 or value == 0:
                continue
            width = _BAR_WIDTH * value / total
            colour = SEGMENT_COLOURS.get(name, "#4b5563")
            body.append(
                f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{_ROW - 6}" fill="{colour}">'
                f"<title>{escape(label)}: {escape(SEGMENT_LABELS.get(name, name))} {value} of {total}"
                f" ({value / total:.1%})</title></rect>"
            )
            x += width
        body.append(f'<text x="{_LABEL_WIDTH + _BAR_WIDTH + 6}" y="{y + 17}" font-size="12">n={total}</text>')
        y += _ROW
    legend_x = 0
    for name, colour in SEGMENT_COLOURS.items():
        body.append(f'<rect x="{legend_x}" y="{y + 4}" width="12" height="12" fill="{colour}"/>')
        legend = escape(SEGMENT_LABELS.get(name, name))
        body.append(f'<text x="{legend_x + 16}" y="{y + 15}" font-size="12">{legend}</text>')
        legend_x += 110
    return _svg(title, y + 24, body)


def rate_bars(title: str, rows: Sequence[tuple[str, int, int]], scale: float = 0.0) -> str:
    """One bar per row: count / total as a rate, scaled to the largest rate (or `scale`)."""
    rates = [count / total if total else 0.0 for _, count, total in rows]
    top = max([scale, *rates]) or 1.0
    body: list[str] = []
    y = 4
    for (label, count, total), value in zip(rows, rates, strict=True):
        body.append(f'<text x="0" y="{y + 17}" font-size="13">{escape(label)}</text>')
        width = _BAR_WIDTH * value / top
        caption = f"{count}/{total} ({value:.1%})" if total else "no opt-ins old enough"
        body.append(
            f'<rect x="{_LABEL_WIDTH}" y="{y}" width="{width:.1f}" height="{_ROW - 6}" fill="#c2410c">'
            f"<title>{escape(label)}: {escape(caption)}</title></rect>"
        )
        body.append(
            f'<text x="{_LABEL_WIDTH + width + 6:.1f}" y="{y + 17}" font-size="12">{escape(caption)}</text>'
        )
        y += _ROW
    return _svg(title, y + 4, body, _LABEL_WIDTH + _BAR_WIDTH + 150)
