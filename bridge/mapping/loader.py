"""Loading and validating a directory of mapping files.

Every problem names the file, line, column and field, with a suggestion for a misspelt key:
``mappings/csat.yaml:12:3: when.kpi.metirc: unknown field (did you mean 'metric'?)``.
"""

from __future__ import annotations

import hashlib
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bridge.errors import MappingError, did_you_mean
from bridge.mapping import templates
from bridge.mapping.model import Mapping
from bridge.mapping.yamlsource import Located, YamlProblem, load

SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedMapping:
    mapping: Mapping
    path: Path
    sha256: str
    shown: str = ""  # the path as problems name it (relative to where the command runs)
    located: Located | None = field(default=None, compare=False, repr=False)  # lines of its keys

    def where(self, path: tuple[str | int, ...]) -> str:
        """``file:line:column`` of the key at ``path`` (or of the nearest key above it)."""
        found = self.located.position(path) if self.located is not None else None
        shown = self.shown or str(self.path)
        return f"{shown}:{found[0]}:{found[1]}" if found else shown


@dataclass
class MappingSet:
    """A validated set of mappings, all or nothing."""

    items: list[LoadedMapping] = field(default_factory=list)

    @property
    def mappings(self) -> list[Mapping]:
        return [m.mapping for m in self.items]

    @property
    def enabled(self) -> list[Mapping]:
        return [m.mapping for m in self.items if m.mapping.enabled]

    def get(self, mapping_id: str) -> Mapping | None:
        return next((m.mapping for m in self.items if m.mapping.id == mapping_id), None)

    def fingerprints(self) -> dict[str, str]:
        return {m.mapping.id: m.sha256 for m in self.items}


def mapping_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file())


def load_file(path: Path, display: str | None = None) -> LoadedMapping:
    """Read and validate one mapping file, or raise MappingError listing every problem."""
    shown = display or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MappingError([f"{shown}: cannot be read: {exc.strerror}"]) from None
    try:
        located = load(raw)
    except YamlProblem as exc:
        raise MappingError([_at(shown, exc.line, exc.column, str(exc))]) from None
    if not isinstance(located.data, dict):
        raise MappingError([f"{shown}:1:1: a mapping file must be a set of 'key: value' lines"])
    try:
        mapping = Mapping.model_validate(located.data)
    except ValidationError as exc:
        raise MappingError(describe(shown, located, exc)) from None
    problems = templates.check(mapping)
    if problems:
        lines = []
        for problem in problems:
            line, column = located.position(problem.path) or (None, None)
            lines.append(_at(shown, line, column, f"{problem.field}: {problem.message}"))
        raise MappingError(lines)
    return LoadedMapping(mapping, path, hashlib.sha256(raw).hexdigest(), shown, located)


def load_dir(directory: Path, display_root: Path | None = None) -> MappingSet:
    """Load every ``*.yaml`` file; raise one MappingError with all problems of all files."""
    if not directory.is_dir():
        raise MappingError([f"{directory}: mappings directory not found"])
    problems: list[str] = []
    loaded: list[LoadedMapping] = []
    for path in mapping_files(directory):
        shown = (
            str(path.relative_to(display_root))
            if display_root and path.is_relative_to(display_root)
            else str(path)
        )
        try:
            loaded.append(load_file(path, shown))
        except MappingError as exc:
            problems.extend(exc.problems)
    seen: dict[str, Path] = {}
    for item in loaded:
        first = seen.setdefault(item.mapping.id, item.path)
        if first != item.path:
            problems.append(f"{item.path}: id: '{item.mapping.id}' is already used by {first}")
    if problems:
        raise MappingError(problems)
    return MappingSet(loaded)


def describe(shown: str, located: Located, exc: ValidationError) -> list[str]:
    """One line per problem at one field; the alternatives of a union field (``below``: a number
    or 'target') are one line naming the field, not one per internal member name."""
    by_field: dict[tuple[str | int, ...], list[str]] = {}
    for err in exc.errors():
        path = field_path(Mapping, tuple(err["loc"]), keep_last=err["type"] == "extra_forbidden")
        if err["type"] == "extra_forbidden":
            known = fields_at(Mapping, path[:-1])
            suggestion = did_you_mean(str(path[-1]), known) or f" (known: {', '.join(known)})"
            message = f"unknown field{suggestion}"
        elif err["type"] == "missing":
            message = "required field is missing"
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
        messages = by_field.setdefault(path, [])
        if message not in messages:
            messages.append(message)
    problems = []
    for path, messages in by_field.items():
        dotted = ".".join(str(p) for p in path) or "(file)"
        line, col = located.position(path) or (None, None)
        problems.append(_at(shown, line, col, f"{dotted}: {'; or '.join(messages)}"))
    return problems


def field_path(
    model: type[BaseModel], loc: tuple[str | int, ...], *, keep_last: bool = False
) -> tuple[str | int, ...]:
    """``loc`` of a validation error without pydantic's names for the members of a union
    (``when.kpi.below.float`` is ``when.kpi.below``): only YAML keys, list indexes and dict keys."""
    kept: list[str | int] = []
    current: Any = model
    for index, part in enumerate(loc):
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(part, int) and origin is list:
            current = typing.get_args(current)[0]
        elif origin is dict:
            current = typing.get_args(current)[1]
        elif isinstance(current, type) and issubclass(current, BaseModel):
            by_key = {f.alias or name: f for name, f in current.model_fields.items()}
            info = by_key.get(str(part))
            if info is None and not (keep_last and index == len(loc) - 1):
                continue
            current = info.annotation if info is not None else None
        else:
            continue  # a union member's name: not a place in the file
        kept.append(part)
    return tuple(kept)


def _at(shown: str, line: int | None, column: int | None, message: str) -> str:
    if line is None:
        return f"{shown}: {message}"
    return f"{shown}:{line}:{column}: {message}"


def fields_at(model: type[BaseModel], path: Iterable[str | int]) -> list[str]:
    """The field names (by YAML key) valid at ``path`` inside ``model``."""
    current: Any = model
    for part in path:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        by_key = {f.alias or name: f for name, f in current.model_fields.items()}
        info = by_key.get(part)
        if info is None:
            return []
        current = info.annotation
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    """Strip Optional[...] so a model or list type remains."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return inner[0] if len(inner) == 1 else annotation
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    return annotation
