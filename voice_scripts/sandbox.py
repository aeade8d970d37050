"""Jinja2's sandbox with limits on time and size, for templates written by people we do not trust.

Jinja2's own sandbox stops a template reaching Python internals, but not from asking for
`'ab' * 100000000` (200 MB) or two nested `range(10000)` loops (seconds of CPU). Here a template
is at most MAX_TEMPLATE characters with blocks at most MAX_NESTING deep (compiling is not
free either), every
loop turn, call, filter and arithmetic operation is one step of a budget (`render_budget`), and
every value a template makes is measured before it is made: text over `MAX_TEXT` characters,
numbers over `MAX_DIGITS` digits, ranges over `MAX_RANGE` items and numbers over `MAX_ARGUMENT`
given to a function are refused with `TemplateLimitExceeded`, saying which limit and why. It must
never render without a budget, and never build a large value first and measure it after.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
import types
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sized
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Macro
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import Namespace, _PassArg

MAX_TEXT = 10_000  # characters in any text a template makes, the prompt included
MAX_TEMPLATE = 5_000  # characters in a template (compiling costs about 0.1 s per 2,000)
MAX_NESTING = 10  # blocks (for, if, macro...) inside one another (compiling them costs more)
MAX_RANGE = 100  # items in a range()
MAX_DIGITS = 3_000  # decimal digits in a number
MAX_ARGUMENT = 10_000  # a number given to a function or a sizing filter (width, count)
MAX_STEPS = 5_000  # loop turns, calls, filters and operations per budget
MAX_WORK = 1_000_000  # characters made in all, per budget
MAX_SECONDS = 0.5  # per budget

_MAX_BITS = int(MAX_DIGITS / math.log10(2))


class TemplateLimitExceeded(SecurityError):
    """A template asked for more time or space than a spoken prompt can need."""


@dataclass
class RenderBudget:
    """What the renders inside one `render_budget()` may spend between them."""

    steps: int = MAX_STEPS
    work: int = MAX_WORK
    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_SECONDS)
    exhausted: bool = False

    def step(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            self._refuse(
                f"the template does too much work (over {MAX_STEPS:,} loop turns, calls and operations)"
            )
        if time.monotonic() > self.deadline:
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


# Filters whose output can be far larger than their input: the most characters each can make.
def _center(value: object, width: int = 80) -> int:
    return max(weight(value), width if isinstance(width, int) else 0)


def _indent(s: object, width: int | str = 4, first: bool = False, blank: bool = False) -> int:
    text = str(s)
    per_line = width if isinstance(width, int) else len(str(width))
    return len(text) + (text.count("\n") + 1) * max(per_line, 0)


def _join(value: Iterable[object], d: object = "", attribute: object = None) -> int:
    items = list(value)
    return weight(items, MAX_TEXT * 10) + len(str(d)) * max(len(items) - 1, 0)


def _replace(s: object, old: object, new: object, count: int | None = None) -> int:
    text, old, new = str(s), str(old), str(new)
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _wordwrap(
    s: object,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> int:
    text = str(s)
    lines = len(text) // max(width, 1) + text.count("\n") + 1
    return len(text) + lines * len(str(wrapstring or "\n"))


def _format(value: object, *args: object, **kwargs: object) -> int:
    return _percent_size(str(value), kwargs or args)


def _batch(value: object, linecount: int, fill_with: object = None) -> int:
    return weight(value) + (0 if fill_with is None else linecount * (weight(fill_with) + 2))


def _slice(value: object, slices: int, fill_with: object = None) -> int:
    return weight(value) + slices * (weight(fill_with) + 2)


_GROWING_FILTERS: dict[str, Callable[..., int]] = {
    "center": _center,
    "indent": _indent,
    "join": _join,
    "replace": _replace,
    "wordwrap": _wordwrap,
    "format": _format,
    "batch": _batch,
    "slice": _slice,
}
# Filters a prompt has no use for and that are hard to bound (urlize repeats its target per URL).
_LEFT_OUT_FILTERS = {"urlize"}

# The str methods a template may call: none of them makes text longer than the string itself.
# (center, ljust, zfill, expandtabs, join, replace, format... are left out: use the filters.)
_STR_METHODS = frozenset(
    "capitalize casefold count endswith find index isalnum isalpha isascii isdecimal isdigit "
    "isidentifier islower isnumeric isprintable isspace istitle isupper lower lstrip partition "
    "removeprefix removesuffix rfind rindex rpartition rsplit rstrip split splitlines startswith "
    "strip swapcase title upper".split()
)
_BUILTIN_CALLABLES = (types.BuiltinFunctionType, types.BuiltinMethodType, types.MethodWrapperType)
_INTERNAL_KWARGS = ("_loop_vars", "_block_vars", "caller")


def _limited_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """The filter, counted as a step, refusing inputs and outputs over the limits.

    It takes the context (so Jinja2 never runs it at compile time, where no budget applies) and
    hands the original filter what it asked for.
    """
    pass_arg = _PassArg.from_obj(function)
    grows = _GROWING_FILTERS.get(name)

    @jinja2.pass_context
    def limited(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        if grows is not None:
            _check_arguments(f"the filter {name}", [*args, *kwargs.values()])
            if name == "join" and not isinstance(value, Sized):
                value = list(value)
            _check_text(f"the filter {name}", grows(value, *args, **kwargs))
        _check_text(f"the filter {name}", _weight_of([value, *args, *kwargs.values()]), "was given")
        if pass_arg is _PassArg.context:
            result = function(context, value, *args, **kwargs)
        elif pass_arg is _PassArg.eval_context:
            result = function(context.eval_ctx, value, *args, **kwargs)
        elif pass_arg is _PassArg.environment:
            result = function(context.environment, value, *args, **kwargs)
        else:
            result = function(value, *args, **kwargs)
        characters = weight(result)
        _check_text(f"the filter {name}", characters)
        budget.spend(characters)
        return result

    return limited


_BLOCKS = (
    nodes.For,
    nodes.If,
    nodes.Macro,
    nodes.CallBlock,
    nodes.FilterBlock,
    nodes.With,
    nodes.AssignBlock,
    nodes.Block,
    nodes.ScopedEvalContextModifier,
)


def _check_nesting(template: nodes.Template) -> None:
    stack: list[tuple[nodes.Node, int]] = [(template, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise TemplateLimitExceeded(
                f"blocks are nested more than {MAX_NESTING} deep (line {node.lineno}); simplify the template"
            )
        for child in node.iter_child_nodes():
            stack.append((child, depth + isinstance(child, _BLOCKS)))


class _LimitedCodeGenerator(CodeGenerator):
    """Compiles `a ~ b` to a measured join and every for loop's iterable to a counted one."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        _check_nesting(node)
        super().visit_Template(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.limited_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        if not getattr(node, "counted", False):
            counted = nodes.Call(nodes.EnvironmentAttribute("counted"), [node.iter], [], None, None)
            node.iter = counted.set_lineno(node.lineno).set_environment(self.environment)
            node.counted = True  # type: ignore[attr-defined]
        super().visit_For(node, frame)


class LimitedSandbox(SandboxedEnvironment):
    """A SandboxedEnvironment whose templates cannot take long or make much (see the module doc)."""

    code_generator_class = _LimitedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=self._printable, **options)
        self.globals["range"] = limited_range
        self.globals.pop("lipsum", None)
        for name in _LEFT_OUT_FILTERS:
            self.filters.pop(name, None)
        self.limit_filters()

    def from_string(self, source: str | nodes.Template, *args: Any, **kwargs: Any) -> jinja2.Template:
        if isinstance(source, str) and len(source) > MAX_TEMPLATE:
            raise TemplateLimitExceeded(
                f"the template is {len(source):,} characters; a prompt's template may be at most "
                f"{MAX_TEMPLATE:,}"
            )
        return super().from_string(source, *args, **kwargs)

    def limit_filters(self) -> None:
        """Wrap every filter not yet wrapped (call again after adding filters)."""
        for name, function in self.filters.items():
            if not getattr(function, "limited", False):
                limited = _limited_filter(name, function)
                limited.limited = True  # type: ignore[attr-defined]
                self.filters[name] = limited

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and callable(value) and attr not in _STR_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format is refused by is_safe_attribute; the format filter is measured

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.step()
        _check_binop(operator, left, right)
        result = self.binop_table[operator](left, right)
        budget.spend(weight(result))
        return result

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        if isinstance(__obj, types.MethodType) and __obj.__func__ is LimitedSandbox.counted:
            return __self.counted(args[0])
        arguments = [*args, *(v for k, v in kwargs.items() if k not in _INTERNAL_KWARGS)]
        if isinstance(__obj, Macro):
            what = f"the macro {__obj.name}"
        else:
            what = f"{getattr(__obj, '__name__', type(__obj).__name__)}()"
        if isinstance(__obj, _BUILTIN_CALLABLES):
            _check_arguments(what, arguments)
        _check_text(what, _weight_of(arguments), "was given")
        result = super().call(__context, __obj, *args, **kwargs)
        characters = weight(result)
        _check_text(what, characters, "returned")
        budget.spend(characters)
        return result

    def counted(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """A for loop's items, each turn one step of the budget."""
        budget = _budget()
        for item in iterable:
            budget.step()
            yield item

    def limited_concat(self, parts: tuple[Any, ...]) -> str:
        """`a ~ b ~ ...`, measured before it is joined."""
        _check_text("joining text with ~", _weight_of(parts))
        text = "".join(map(str, parts))
        _budget().spend(len(text))
        return text

    def concat(self, pieces: Iterable[str]) -> str:
        """The output of a template, a block or a macro, refused once it passes MAX_TEXT."""
        parts, length = [], 0
        for piece in pieces:
            length += len(piece)
            if length > MAX_TEXT:
                raise TemplateLimitExceeded(
                    f"the text is over {MAX_TEXT:,} characters; a prompt that long cannot be spoken"
                )
            parts.append(piece)
        return "".join(parts)

    @staticmethod
    def _printable(value: Any) -> Any:
        """Each {{ value }} before it becomes text (also run at compile time, without a budget)."""
        characters = weight(value)
        _check_text("this value", characters, "is")
        budget = _BUDGET.get()
        if budget is not None:
            budget.spend(characters)
        return value
