"""Errors that reach the user as one readable line.

Every error the command line can show derives from :class:`BridgeError`; the CLI prints
``str(error)`` and exits non-zero instead of a traceback. Connector errors say what the
bridge should do about them through :class:`Remedy`, so the bridge can retry, stop, or skip
one item without knowing any wire format.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import StrEnum


class Remedy(StrEnum):
    RETRY = "retry"  # transient: try again later with backoff
    FIX_CONFIG = "fix_config"  # nothing will work until an administrator changes something
    SKIP_ITEM = "skip_item"  # this one learner/item cannot be done; the rest can
    FIX_DATA = "fix_data"  # the source's data was refused; read it again each cycle, it may be fixed any time


class BridgeError(Exception):
    """An error with a message meant for a person, not a developer."""

    remedy: Remedy = Remedy.FIX_CONFIG


class ConfigError(BridgeError):
    """The configuration file or environment is wrong. Names the file and key."""


class MappingError(BridgeError):
    """A mapping file is invalid. Carries every problem found, each naming file, line and field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class SourceError(BridgeError):
    """A source (LMS site or HR feed) could not be read."""

    def __init__(self, message: str, remedy: Remedy = Remedy.RETRY) -> None:
        super().__init__(message)
        self.remedy = remedy


def database_cause(exc: BaseException) -> str:
    """The driver's own first line for a SQLAlchemy error (its wrapper adds the SQL and a link)."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip()
    return f"{type(cause).__name__}: {text.splitlines()[0]}" if text else type(cause).__name__


class StoreError(BridgeError):
    """The state database is unreachable or not at the expected schema version."""


def did_you_mean(given: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the closest of ``known`` to ``given``, or "" if none is close."""
    hint = difflib.get_close_matches(given, sorted(set(known)), n=1, cutoff=0.6)
    return f" (did you mean '{hint[0]}'?)" if hint else ""
