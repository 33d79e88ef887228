"""Parameter descriptions and validation that behave like Moodle's ``validate_parameters``.

Unknown keys in a structure, a missing required key, ``true``/``false`` for a boolean or
``5.0`` for an integer are all rejected with ``invalid_parameter_exception``, exactly where a
real site rejects them, so the client cannot pass against the simulator and fail on a site.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

REQUIRED, DEFAULT, OPTIONAL = "required", "default", "optional"
_INT = re.compile(r"^-?\d+$")
_ALPHANUMEXT = re.compile(r"^[a-zA-Z0-9_-]*$")
_FLOAT = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


class InvalidParameter(Exception):
    """Carries Moodle's debuginfo text (shown only when the site has debugging on)."""


@dataclass(frozen=True)
class Value:
    kind: str  # int | bool | float | text | raw | alphanumext
    presence: str = REQUIRED
    default: Any = None

    def clean(self, raw: Any, path: str) -> Any:
        if isinstance(raw, dict):
            raise InvalidParameter(
                f"{path} => Invalid parameter value detected (Scalar type expected, array or object received.)"
            )
        text = str(raw)
        if self.kind == "int":
            if not _INT.match(text):
                raise InvalidParameter(
                    f'{path} => Invalid parameter value detected (Invalid external api parameter: the value is "{text}", the server was expecting "int" type)'
                )
            return int(text)
        if self.kind == "bool":
            if text not in ("0", "1"):
                raise InvalidParameter(
                    f'{path} => Invalid parameter value detected (Invalid external api parameter: the value is "{text}", the server was expecting "bool" type)'
                )
            return text == "1"
        if self.kind == "float":
            if not _FLOAT.match(text):
                raise InvalidParameter(
                    f'{path} => Invalid parameter value detected (Invalid external api parameter: the value is "{text}", the server was expecting "float" type)'
                )
            return float(text)
        if self.kind == "alphanumext" and not _ALPHANUMEXT.match(text):
            # PARAM_ALPHANUMEXT: the cleaned value differs from the one sent, which Moodle refuses.
            raise InvalidParameter(
                f'{path} => Invalid parameter value detected (Invalid external api parameter: the value is "{text}", the server was expecting "alphanumext" type)'
            )
        return text


@dataclass(frozen=True)
class Struct:
    fields: dict[str, Any]
    presence: str = REQUIRED
    default: Any = None

    def clean(self, raw: Any, path: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise InvalidParameter(
                f"{path} => Invalid parameter value detected (Only arrays accepted. The bad value is: '{raw}')"
            )
        unexpected = [k for k in raw if k not in self.fields]
        if unexpected:
            raise InvalidParameter(
                f"Invalid parameter value detected (Unexpected keys ({', '.join(unexpected)}) detected in parameter array {path or 'params'}.)"
            )
        cleaned: dict[str, Any] = {}
        for name, spec in self.fields.items():
            where = f"{path} => {name}" if path else name
            if name in raw:
                cleaned[name] = spec.clean(raw[name], where)
            elif spec.presence == REQUIRED:
                raise InvalidParameter(
                    f"Invalid parameter value detected ({where} => Missing required key in single structure: {name})"
                )
            elif spec.presence == DEFAULT:
                cleaned[name] = spec.default
        return cleaned


@dataclass(frozen=True)
class Multiple:
    item: Any
    presence: str = REQUIRED
    default: Any = field(default_factory=list)

    def clean(self, raw: Any, path: str) -> list[Any]:
        if not isinstance(raw, dict):
            raise InvalidParameter(
                f"{path} => Invalid parameter value detected (Only arrays accepted. The bad value is: '{raw}')"
            )
        return [self.item.clean(value, f"{path} => {key}") for key, value in raw.items()]


def validate(spec: Struct, params: dict[str, Any]) -> dict[str, Any]:
    return spec.clean(params, "")
