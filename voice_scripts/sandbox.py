"""Jinja2's sandbox with limits on time and size, for templates written by people we do not trust.

Jinja2's own sandbox stops a template reaching Python internals, but not from asking for
`'ab' * 100000000` (200 MB) or two nested `range(10000)` loops (seconds of CPU). Here a template
is at most MAX_TEMPLATE characters with blocks at most MAX_NESTING deep (compiling is not
free either), every
loop turn, call, filter and arithmetic operation is one step of a budget (`render_budget`), and
every value a template makes is measured before it is made: text over `MAX_TEXT` characters,
numbers over `MAX_DIGITS` digits, ranges over `MAX_RANGE` items and numbers over `MAX_ARGUMENT`
given to a function are refused with `TemplateLimitExceeded`, saying which limit and why. It must
never render without a budget, and never build a large value first and measure it after. The
limits and the budget are in voice_scripts.template_limits; this module applies them to Jinja2.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context, Macro
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import _PassArg

from voice_scripts.exceptions import TemplateLimitExceeded
from voice_scripts.template_limits import (
    _BUDGET,
    MAX_NESTING,
    MAX_TEMPLATE,
    MAX_TEXT,
    _budget,
    _check_arguments,
    _check_binop,
    _check_text,
    _percent_size,
    _weight_of,
    limited_range,
    weight,
)
from voice_scripts.template_limits import render_budget as render_budget


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
