"""Moodle's REST parameter encoding: nested lists and dicts as PHP-style form fields.

Moodle's REST server reads ``array_merge($_GET, $_POST)``, so ``users[0][id]=5`` becomes
``['users' => [0 => ['id' => 5]]]``. Booleans must be sent as ``1``/``0`` (``true`` is rejected
by PARAM_BOOL), ``None`` is omitted, and an empty list cannot be expressed at all — it is
omitted, which works only where the parameter has a default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl


def encode(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    for key, value in params.items():
        _flatten(str(key), value, fields)
    return fields


def _flatten(name: str, value: Any, out: list[tuple[str, str]]) -> None:
    if value is None:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{name}[{key}]", item, out)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _flatten(f"{name}[{index}]", item, out)
    elif isinstance(value, bool):
        out.append((name, "1" if value else "0"))
    elif isinstance(value, int | float | str):
        out.append((name, str(value)))
    else:
        raise TypeError(f"cannot send {type(value).__name__} to Moodle as parameter {name!r}")


def count_fields(params: Mapping[str, Any]) -> int:
    """How many form fields (PHP input variables) the parameters become."""
    return len(encode(params))


_PART = re.compile(r"\[([^\]]*)\]")


def decode(body: str | bytes | Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Form fields back to nested dicts, as PHP builds ``$_POST`` (numeric keys stay keys)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    pairs = parse_qsl(body, keep_blank_values=True) if isinstance(body, str) else list(body)
    result: dict[str, Any] = {}
    for raw_name, value in pairs:
        base, _, rest = raw_name.partition("[")
        keys = [base, *_PART.findall("[" + rest)] if rest else [base]
        node: Any = result
        for i, given in enumerate(keys):
            last = i == len(keys) - 1
            key = given or str(len(node))  # name[] appends, as PHP does
            if last:
                node[key] = value
            else:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = {}
                    node[key] = child
                node = child
    return result
