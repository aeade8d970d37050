"""The limits of voice_scripts.sandbox and the budget each render spends: what a template may cost.

Every loop turn, call, filter and arithmetic operation is one step of a budget (`render_budget`),
and every value a template makes is measured (`weight`, the _check_* functions) before it is made;
a template over a limit gets TemplateLimitExceeded saying which limit and why.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

from jinja2.utils import Namespace

from voice_scripts.exceptions import TemplateLimitExceeded

MAX_TEXT = 10_000  # characters in any text a template makes, the prompt included
MAX_TEMPLATE = 5_000  # characters in a template (compiling costs about 0.1 s per 2,000)
MAX_NESTING = 10  # blocks (for, if, macro...) inside one another (compiling them costs more)
MAX_RANGE = 100  # items in a range()
MAX_DIGITS = 3_000  # decimal digits in a number
MAX_ARGUMENT = 10_000  # a number given to a function or a sizing filter (width, count)
MAX_STEPS = 5_000  # loop turns, calls, filters and operations per budget
MAX_WORK = 1_000_000  # characters made in all, per budget
MAX_SECONDS = 0.5  # of this thread's CPU time per budget (a busy machine's waiting does not count)

_MAX_BITS = int(MAX_DIGITS / math.log10(2))


@dataclass
class RenderBudget:
    """What the renders inside one `render_budget()` may spend between them."""

    steps: int = MAX_STEPS
    work: int = MAX_WORK
    deadline: float = field(default_factory=lambda: time.thread_time() + MAX_SECONDS)
    exhausted: bool = False

    def step(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            self._refuse(
                f"the template does too much work (over {MAX_STEPS:,} loop turns, calls and operations)"
            )
        if time.thread_time() > self.deadline:
            self._refuse(f"the template takes too long to render (over {MAX_SECONDS} s)")

    def spend(self, characters: int) -> None:
        self.work -= characters
        if self.work < 0:
            self._refuse(f"the template makes too much text in all (over {MAX_WORK:,} characters)")

    def _refuse(self, reason: str) -> None:
        self.exhausted = True
        raise TemplateLimitExceeded(reason)


_BUDGET: ContextVar[RenderBudget | None] = ContextVar("render_budget", default=None)


@contextlib.contextmanager
def render_budget() -> Iterator[RenderBudget]:
    """One budget shared by every render inside (a nested call joins the budget already open)."""
    current = _BUDGET.get()
    if current is not None:
        yield current
        return
    budget = RenderBudget()
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def _budget() -> RenderBudget:
    budget = _BUDGET.get()
    if budget is None:
        raise TemplateLimitExceeded("templates render only inside render_budget()")
    return budget


def weight(value: object, limit: int = MAX_TEXT) -> int:
    """About how many characters `value` takes as text: collections count every item they hold.

    Every mention counts, as in the text (a list holding one long text twice counts it twice),
    and counting stops once past `limit`, so a list that holds itself counts as too large.
    """
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes | bytearray):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += _digits(item)
        elif isinstance(item, float | complex):
            total += 24
        elif isinstance(item, Namespace):
            stack.append(item._Namespace__attrs)  # its attributes, which its text shows
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, Collection):  # lists, tuples, sets, ranges, dict views
            total += 2 + 2 * len(item)
            if total <= limit:
                stack.extend(item)
    return total


def _digits(number: int) -> int:
    return int(number.bit_length() * math.log10(2)) + 1


def _check_text(what: str, characters: int, verb: str = "would make") -> None:
    if characters > MAX_TEXT:
        raise TemplateLimitExceeded(
            f"{what} {verb} about {characters:,} characters; text in a prompt is limited to "
            f"{MAX_TEXT:,} characters"
        )


def _weight_of(values: Iterable[object]) -> int:
    return sum(weight(value) for value in values)


def _check_number(what: str, bits: int) -> None:
    if bits > _MAX_BITS:
        size = f"about {int(bits * math.log10(2)):,}" if bits < 10**15 else "over a million million"
        raise TemplateLimitExceeded(
            f"{what} would be a number of {size} digits; numbers are limited to {MAX_DIGITS:,} digits"
        )


def _check_arguments(what: str, args: Iterable[object]) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_ARGUMENT:
            raise TemplateLimitExceeded(
                f"the number {arg:,} given to {what} is too large: at most {MAX_ARGUMENT:,}"
            )


def limited_range(*args: int) -> range:
    """range(), refusing more than MAX_RANGE items (a prompt never needs to count further)."""
    try:
        numbers = range(*args)
        items = len(numbers)
    except OverflowError:
        items = MAX_RANGE + 1
        numbers = range(0)
    if items > MAX_RANGE:
        shown = ", ".join(str(a) if abs(a) < 10**12 else "a huge number" for a in args)
        raise TemplateLimitExceeded(
            f"range({shown}) has too many items: a prompt may loop over at most {MAX_RANGE}"
        )
    return numbers


# One printf conversion: %[(key)][flags][width][.precision][length]type
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.?)", re.S)


def _percent_size(fmt: str, values: object) -> int:
    """The most characters `fmt % values` can make, before making it."""
    total, conversions = len(fmt), 0
    for match in _PRINTF.finditer(fmt):
        width, precision, kind = match.groups()
        if "*" in (width, precision):
            raise TemplateLimitExceeded("a '*' width or precision in a % format is not allowed in prompts")
        total += int(width or 0) + int(precision or 0)
        conversions += kind != "%"
    return total + conversions * weight(values, MAX_TEXT * 10)


def _check_binop(operator: str, left: object, right: object) -> None:
    numbers = (int, float, complex)
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                _check_text(f"{_show(seq)} * {_show(times)}", weight(seq) * max(times, 0))
        if isinstance(left, int) and isinstance(right, int):
            _check_number(f"{_show(left)} * {_show(right)}", left.bit_length() + right.bit_length())
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            _check_number(f"{_show(left)} ** {_show(right)}", left.bit_length() * right)
    elif operator == "+":
        if not (isinstance(left, numbers) and isinstance(right, numbers)):
            _check_text(f"{_show(left)} + {_show(right)}", weight(left) + weight(right))
    elif operator == "%" and isinstance(left, str):
        _check_text(f"the format {_show(left)}", _percent_size(left, right))


def _show(value: object) -> str:
    """A short, safe description of a value for an error message."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}" if value.bit_length() < 64 else f"a {_digits(value):,}-digit number"
    if isinstance(value, str):
        return repr(value) if len(value) <= 20 else f"a text of {len(value):,} characters"
    if isinstance(value, list | tuple):
        return f"a list of {len(value):,} item{'' if len(value) == 1 else 's'}"
    return type(value).__name__
