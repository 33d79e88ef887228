"""Reading mapping YAML safely, remembering where every value came from.

PyYAML's safe loader builds plain data but forgets positions, accepts duplicate keys silently
and expands aliases without limit (a "billion laughs" file exhausts memory). This module walks
the composed node tree itself: it records the line and column of every key, refuses duplicate
keys, bounds size, depth and alias expansion, and so turns any file into either data plus a
position index or one clear error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

MAX_BYTES = 1_000_000
MAX_NODES = 50_000
MAX_DEPTH = 40
_SURROGATE = re.compile("[\ud800-\udfff]")  # from a "\ud800" escape: text no terminal can print

Path = tuple[str | int, ...]


class YamlProblem(Exception):
    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


@dataclass
class Located:
    data: Any
    positions: dict[Path, tuple[int, int]]

    def position(self, path: Path) -> tuple[int, int] | None:
        """Line and column (1-based) of the deepest known node on ``path``."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found is not None:
                return found
        return None


class _Walker:
    def __init__(self) -> None:
        self.positions: dict[Path, tuple[int, int]] = {}
        self.nodes = 0
        self.constructor = yaml.SafeLoader("")
        self.scalars: dict[int, Any] = {}

    def walk(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise YamlProblem(f"more than {MAX_NODES} values (or aliases expanding to that many)")
        if depth > MAX_DEPTH:
            raise YamlProblem(f"nested more than {MAX_DEPTH} levels deep", *_mark(node))
        self.positions.setdefault(path, _mark(node))
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise YamlProblem("mapping keys must be plain words", *_mark(key_node))
                key = str(self._scalar(key_node))
                if key == "<<":
                    raise YamlProblem("YAML merge keys ('<<') are not supported", *_mark(key_node))
                if key in result:
                    raise YamlProblem(f"key '{key}' appears twice", *_mark(key_node))
                self.positions[(*path, key)] = _mark(key_node)
                result[key] = self.walk(value_node, (*path, key), depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        if id(node) in self.scalars:  # an alias: the same node again, checked once
            return self.scalars[id(node)]
        try:
            value = self.constructor.construct_object(node)
        except (ValueError, OverflowError) as exc:  # e.g. 2026-13-45 read as a date, a 5000-digit number
            raise YamlProblem(f"cannot read value {str(node.value)[:40]!r}: {exc}", *_mark(node)) from None
        if isinstance(value, str) and _SURROGATE.search(value):
            raise YamlProblem("text with an invalid escape (a lone surrogate)", *_mark(node))
        self.scalars[id(node)] = value
        return value


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def load(raw: bytes) -> Located:
    """Parse one YAML document from bytes; raise YamlProblem with a position on any fault."""
    if len(raw) > MAX_BYTES:
        raise YamlProblem(f"file is larger than {MAX_BYTES // 1000} kB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise YamlProblem(f"not UTF-8 text (byte {exc.start})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise YamlProblem(f"not valid YAML: {exc.problem}", *where) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"not valid YAML: {exc}") from None
    except RecursionError:  # brackets nested thousands deep exhaust the composer's recursion
        raise YamlProblem(f"nested more than {MAX_DEPTH} levels deep") from None
    if node is None:
        raise YamlProblem("file is empty")
    walker = _Walker()
    try:
        data = walker.walk(node, (), 0)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise YamlProblem(f"cannot read value: {exc.problem}", *where) from None
    except RecursionError:
        raise YamlProblem(f"nested more than {MAX_DEPTH} levels deep") from None
    return Located(data, walker.positions)
