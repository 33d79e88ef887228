"""Every field of the mapping schema has a description, so editors show help as files are typed."""

from __future__ import annotations

from typing import Any

from bridge.mapping.model import json_schema


def undescribed(schema: dict[str, Any]) -> list[str]:
    models = {"Mapping": schema, **schema["$defs"]}
    return sorted(
        f"{model}.{name}"
        for model, definition in models.items()
        for name, field in definition.get("properties", {}).items()
        if not str(field.get("description", "")).strip()
    )


def test_every_field_has_a_description() -> None:
    schema = json_schema()
    fields = sum(len(d.get("properties", {})) for d in [schema, *schema["$defs"].values()])
    assert fields > 90  # every model is walked, not only the top level
    assert undescribed(schema) == []
