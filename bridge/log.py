"""Structured logging: JSON lines when not on a terminal, readable console output otherwise.

Every event passes through :func:`redact` before it is rendered: Moodle tokens (``wstoken``,
``token``), ``Authorization`` headers, passwords, client secrets and every secret value found
in the configuration are replaced by ``***`` wherever they appear — event fields, URLs, request
bodies and exception text. Standard-library loggers (requests, urllib3, alembic) go through the
same chain.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

MASK = "***"

_SECRET_FIELD = re.compile(
    r"(token|secret|password|passwd|authorization|api[_-]?key|cookie|credential)", re.IGNORECASE
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # query strings and form bodies: wstoken=abc&..., client_secret=..., password=...
    (
        re.compile(
            r"(?i)\b((?:ws)?token|access_token|refresh_token|client_secret|password|passwd|"
            r"api[_-]?key|privatetoken)=([^&\s'\"]+)"
        ),
        rf"\1={MASK}",
    ),
    # headers: Authorization: Bearer abc / 'Authorization': 'Basic abc'
    (
        re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer|basic|token)?\s*[^\s'\",}]+"),
        rf"\1\2 {MASK}",
    ),
    # JSON or repr of a dict: "token": "abc", 'client_secret': 'abc'
    (
        re.compile(
            r"(?i)(['\"](?:ws)?(?:token|access_token|client_secret|password|secret|api[_-]?key)['\"]"
            r"\s*:\s*['\"])([^'\"]*)(['\"])"
        ),
        rf"\1{MASK}\3",
    ),
    # URLs with credentials: postgresql://user:pass@host
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/\s@]+:)([^@\s/]+)(@)"), rf"\1{MASK}\3"),
)


class _SecretRegistry:
    """Exact secret values from the configuration; any occurrence is masked."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            self._values.update(v for v in values if v and len(v) >= 4)
            if self._values:
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None

    def scrub(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None else text


secrets = _SecretRegistry()


def register_secrets(values: Iterable[str]) -> None:
    """Tell the redactor about secret values (tokens, passwords) so they never reach output."""
    secrets.add(values)


def redact_text(text: str) -> str:
    text = secrets.scrub(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any, key: str | None = None) -> Any:
    if key is not None and _SECRET_FIELD.search(key) and value not in (None, "", MASK):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value


def redact(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets in every field of the event."""
    return {k: redact_value(v, k if k not in ("event", "exception") else None) for k, v in event_dict.items()}


def _renderer(fmt: str, stream: TextIO) -> Processor:
    use_console = fmt == "console" or (fmt == "auto" and stream.isatty())
    if use_console:
        return structlog.dev.ConsoleRenderer(colors=stream.isatty())
    return structlog.processors.JSONRenderer()


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Set up structlog and the standard library's logging to share one redacting chain."""
    stream = stream or sys.stderr
    numeric = logging.getLevelName(level.upper())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    structlog.configure(
        processors=[*shared, _renderer(fmt, stream)],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _renderer(fmt, stream),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO) if numeric < logging.INFO else numeric)
    # urllib3 logs every request line at DEBUG; keep it at INFO unless asked.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # APScheduler reports every job run at INFO; lmsbridge logs what each job did instead.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
