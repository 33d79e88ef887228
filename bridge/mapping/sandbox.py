"""A Jinja2 sandbox whose templates can neither run long nor build anything huge.

Jinja's own sandbox stops a template reaching Python internals, not a template that loops
``range(100000)`` inside ``range(100000)`` or writes ``{{ 'x' * 3000000000 }}``: the first holds
its thread for hours, the second takes the process's memory, and a daemon that reloads such a
mapping stops every job. Python cannot interrupt one long C operation (a huge multiplication or
join) from outside, so the limits are enforced before each operation that could grow a value:

- every loop round, call, filter and intercepted operator is a *step*; a render may take
  :data:`MAX_STEPS` of them and :data:`MAX_SECONDS` (checked at the steps);
- no value a template builds or hands to a filter, call or output may weigh more than
  :data:`MAX_SIZE` characters and items (shared parts counted each time they appear, as printing
  them would), and no integer may exceed :data:`MAX_INT_BITS` bits; ``*``, ``**``, ``%``,
  ``str.format`` and the widening filters and methods are estimated before they run;
- everything written, including into ``{% set %}`` blocks, macros and ``{% filter %}`` bodies,
  counts towards :data:`MAX_OUTPUT` characters;
- ``range()`` yields at most :data:`MAX_RANGE` numbers and macros nest at most
  :data:`MAX_DEPTH` deep.

A template past a limit raises :class:`TemplateLimit` (a Jinja ``SecurityError``). The limits are
far above what a message needs: the largest shipped template takes under a hundred steps.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg

MAX_STEPS = 100_000
MAX_SECONDS = 2.0
MAX_SIZE = 1_000_000
MAX_OUTPUT = 1_000_000
MAX_INT_BITS = 64_000
MAX_RANGE = 100_000
MAX_DEPTH = 40


class TemplateLimit(SecurityError):
    """A template went past one of the sandbox's limits."""


@dataclass
class _Budget:
    deadline: float
    steps: int = 0
    written: int = 0
    depth: int = 0


_budget: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


@contextmanager
def bounded() -> Iterator[None]:
    """Everything rendered inside shares one budget of steps, time and output (so does a nested
    ``bounded()``: a mapping's templates, or a message's three parts, cannot take the limits
    once each)."""
    if _budget.get() is not None:
        yield
        return
    token = _budget.set(_Budget(deadline=time.monotonic() + MAX_SECONDS))
    try:
        yield
    finally:
        _budget.reset(token)


def _step() -> None:
    budget = _budget.get()
    if budget is None:  # constant folding at compile time: sizes are still checked
        return
    budget.steps += 1
    if budget.steps > MAX_STEPS:
        raise TemplateLimit(f"it ran more than {MAX_STEPS:,} steps (loop rounds, calls, filters)")
    if budget.steps % 64 == 0 and time.monotonic() > budget.deadline:
        raise TemplateLimit(f"it ran longer than {MAX_SECONDS:g} s")


def _wrote(text: str) -> str:
    budget = _budget.get()
    if budget is not None:
        budget.written += len(text)
        if budget.written > MAX_OUTPUT:
            raise TemplateLimit(f"it would write more than {MAX_OUTPUT:,} characters")
    return text


def weight(value: Any, cap: int = MAX_SIZE) -> int:
    """Characters and items in ``value``, shared parts counted each time; stops soon after ``cap``."""
    total, stack = 0, [value]
    while stack and total <= cap:
        item = stack.pop()
        if isinstance(item, str | bytes | bytearray):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1  # about its decimal digits
        elif isinstance(item, dict):
            total += len(item)
            if total <= cap:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            if total <= cap:
                stack.extend(item)
        else:
            total += 1
    return total


def _refuse_big(value: Any) -> None:
    if weight(value) > MAX_SIZE:
        raise TemplateLimit(f"it would build a value of more than {MAX_SIZE:,} characters or items")


def _refuse_wide(estimate: int) -> None:
    if estimate > MAX_SIZE:
        raise TemplateLimit(f"it would build a value of more than {MAX_SIZE:,} characters or items")


def _refuse_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise TemplateLimit(f"it would build a number of more than {MAX_INT_BITS:,} bits")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_SPEC_NUMBER = re.compile(r"\d+")


def _format_estimate(fmt: str, args: Iterable[Any], markers: int) -> int:
    """Upper bound of a %-format or str.format result: each marker may hold the largest argument,
    and no width or precision may itself exceed the size limit."""
    values = list(args)
    if any(int(n) > MAX_SIZE for n in _SPEC_NUMBER.findall(fmt)) or any(
        _is_int(v) and v > MAX_SIZE for v in values
    ):
        return MAX_SIZE + 1
    largest = max((weight(v) for v in values), default=0)
    return len(fmt) + markers * (largest + 1)


def _percent_estimate(fmt: str, args: Any) -> int:
    values = args.values() if isinstance(args, dict) else args if isinstance(args, tuple) else (args,)
    return _format_estimate(fmt, values, fmt.count("%"))


def _replace_estimate(text: str, old: str, new: str, count: int | None = None) -> int:
    hits = len(text) + 1 if old == "" else text.count(old)
    if count is not None and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(0, len(new) - len(old))


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "**" and _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
        _refuse_bits(abs(left).bit_length() * right)
    elif operator == "*":
        if _is_int(left) and _is_int(right):
            _refuse_bits(abs(left).bit_length() + abs(right).bit_length())
        elif _is_int(right) or _is_int(left):
            sequence, times = (left, right) if _is_int(right) else (right, left)
            _refuse_wide(weight(sequence) * max(0, times))
    elif operator == "%" and isinstance(left, str | bytes | bytearray):
        _refuse_wide(_percent_estimate(_text(left), right))


def _text(value: Any) -> Any:
    """Bytes as text of the same length, so str and bytes are estimated alike."""
    return value.decode("latin-1") if isinstance(value, bytes | bytearray) else value


def _check_text_method(owner: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Methods of str (and bytes) that can return much more than they were given."""
    given = [_text(v) for v in (*args, *kwargs.values())]
    if name in ("center", "ljust", "rjust", "zfill") and given and _is_int(given[0]):
        _refuse_wide(given[0])
    elif name == "expandtabs":
        size = given[0] if given and _is_int(given[0]) else 8
        _refuse_wide(len(owner) + owner.count("\t") * size)
    elif name == "replace" and len(given) >= 2 and isinstance(given[0], str) and isinstance(given[1], str):
        _refuse_wide(_replace_estimate(owner, given[0], given[1], given[2] if len(given) > 2 else None))
    elif name == "join" and given and hasattr(given[0], "__len__"):
        _refuse_wide(weight(given[0]) + len(given[0]) * len(owner))
    elif name == "translate" and given and isinstance(given[0], dict):
        _refuse_wide(len(owner) * max((weight(v) for v in given[0].values()), default=1))
    elif name in ("format", "format_map"):
        values = given
        if name == "format_map" and args and isinstance(args[0], dict):
            values = list(args[0].values())
        _refuse_wide(_format_estimate(owner, values, owner.count("{")))


def _materialise(value: Any) -> Any:
    """A lazy sequence (``map``, ``select``, a generator) handed to a filter, read under the limits."""
    if not isinstance(value, Iterator):
        return value
    items, total = [], 0
    for item in value:
        _step()
        total += weight(item) + 1
        _refuse_wide(total)
        items.append(item)
    return items


_WIDTH_FILTERS = frozenset({"batch", "center", "indent", "slice", "truncate", "wordwrap"})


def _check_filter(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    given = [*args, *kwargs.values()]
    if name in _WIDTH_FILTERS and any(_is_int(v) and v > MAX_SIZE for v in given):
        raise TemplateLimit(f"the '{name}' filter was given a number above {MAX_SIZE:,}")
    for item in (value, *given):
        _refuse_big(item)
    if name == "replace" and isinstance(value, str) and len(given) >= 2:
        count = given[2] if len(given) > 2 and _is_int(given[2]) else None
        _refuse_wide(_replace_estimate(value, str(given[0]), str(given[1]), count))
    elif name == "join" and hasattr(value, "__len__"):
        separator = kwargs.get("d", args[0] if args else "")
        _refuse_wide(weight(value) + len(value) * len(str(separator)))
    elif name == "indent" and isinstance(value, str):
        width = kwargs.get("width", args[0] if args else 4)
        size = width if _is_int(width) else len(str(width))
        _refuse_wide(len(value) + (value.count("\n") + 1) * size)
    elif name == "format" and isinstance(value, str):
        _refuse_wide(_format_estimate(value, given, value.count("%")))
    elif name == "wordwrap" and isinstance(value, str):
        wrap = kwargs.get("wrapstring", args[2] if len(args) > 2 else None)
        _refuse_wide(len(value) + (len(value) + 1) * len(str(wrap or "\n")))  # one per line at most
    elif name in ("batch", "slice") and len(given) >= 2 and _is_int(given[0]):
        _refuse_wide(weight(value) + given[0] * (weight(given[1]) + 1))


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    # A filter marked pass_context/pass_eval_context/pass_environment gets that first, then the value.
    skip = 0 if _PassArg.from_obj(func) is None else 1

    @wraps(func)  # keeps the jinja_pass_arg mark, so Jinja passes the same arguments
    def bounded_filter(*args: Any, **kwargs: Any) -> Any:
        _step()
        head, value, rest = args[:skip], _materialise(args[skip]), args[skip + 1 :]
        _check_filter(name, value, rest, kwargs)
        result = func(*head, value, *rest, **kwargs)
        if not isinstance(result, Iterator):
            _refuse_big(result)
        return result

    return bounded_filter


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateLimit(f"range() of more than {MAX_RANGE:,} numbers")
    return numbers


def _is_counted(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.EnvironmentAttribute)
        and node.node.name == "counted"
    )


def _counted(iterable: Any) -> Iterator[Any]:
    """A for loop's sequence: each round is a step."""
    for item in iterable:
        _step()
        yield item


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's compiler, with each loop round counted, each ``~`` checked and every write counted."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        # Jinja forbids new node types: the sequence becomes a call of environment.counted.
        if not _is_counted(node.iter):
            counted = nodes.EnvironmentAttribute("counted", lineno=node.iter.lineno)
            node.iter = nodes.Call(counted, [node.iter], [], None, None, lineno=node.iter.lineno)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked(")
        super().visit_Concat(node, frame)
        self.write(")")

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        return f"environment.wrote({super()._output_const_repr(group)})"

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        self.write("environment.wrote(")
        super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        super()._output_child_post(node, frame, finalize)
        self.write(")")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the limits above. Render inside :func:`bounded`."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=self._finalize_value, **options)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.globals["range"] = _bounded_range
        self.globals.pop("lipsum", None)  # lipsum(n) loops n times in Python, out of reach of the steps

    @staticmethod
    def _finalize_value(value: Any) -> Any:
        """Each ``{{ value }}`` before it is turned into text (a list printed is its items' text)."""
        _refuse_big(value)
        return value

    # Called from the generated code (see _BoundedCodeGenerator).
    counted = staticmethod(_counted)
    wrote = staticmethod(_wrote)

    @staticmethod
    def checked(value: Any) -> Any:
        _step()
        _refuse_big(value)
        return value

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _step()
        _check_binop(operator, left, right)
        result = super().call_binop(context, operator, left, right)
        _refuse_big(result)
        return result

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        method = getattr(__obj, "__wrapped__", __obj)  # str.format comes wrapped by the sandbox
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str | bytes | bytearray):
            name = getattr(method, "__name__", "")
            if name == "join" and args:  # a lazy sequence, read under the limits first
                args = (_materialise(args[0]), *args[1:])
            _check_text_method(_text(owner), name, args, kwargs)
        budget = _budget.get()
        nested = isinstance(__obj, Macro) and budget is not None
        if nested:
            assert budget is not None
            budget.depth += 1
            if budget.depth > MAX_DEPTH:
                raise TemplateLimit(f"macros call each other more than {MAX_DEPTH} deep")
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            if nested:
                assert budget is not None
                budget.depth -= 1
        _refuse_big(result)
        return result
