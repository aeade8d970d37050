"""`ivr stats`: a business's opt-in quality per script version and locale, as a table or JSON."""

from __future__ import annotations

import json

import click

from consent_store import ConsentStore
from consent_store.stats import Period, QualityFigures
from ivr.cli.support import period_options, report_options, with_store
from ivr.quality.report import quality_json, quality_table, with_frequency_changes


async def business_quality(
    store: ConsentStore, business: str, since: str | None, until: str | None
) -> QualityFigures:
    """The figures of a business (UnknownBusiness if there is none by that name)."""
    found = await store.get_business(business)
    figures = await store.opt_in_quality(found.name, found.locales, Period(since, until))
    return await with_frequency_changes(store, figures, found.locales)


@click.command("stats")
@report_options(counted="Calls recorded")
def stats(business: str, since: str | None, until: str | None, output: str) -> None:
    """Opt-in quality per script version and locale: calls, decisions, opt-outs within 7/30 days, flags."""
    low, high = period_options(since, until)

    async def work(store: ConsentStore) -> QualityFigures:
        return await business_quality(store, business, low, high)

    figures = with_store(work)
    if output == "json":
        click.echo(json.dumps(quality_json(figures), ensure_ascii=False, indent=2))
    else:
        click.echo(quality_table(figures), nl=False)
