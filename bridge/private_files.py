"""Files that hold secrets or personal data are the owner's alone.

The SQLite store (names, KPIs, review ratings, messages) is created readable and writable by its
owner only (0600; SQLite gives its -wal and -shm files the same mode). An existing store or a
secret file (``LMSBRIDGE_SECRETS_DIR``) that others may read is not changed behind the owner's
back: each is named in one warning, with the command that fixes it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from bridge.log import get_logger

log = get_logger(__name__)


def create_private(path: Path) -> None:
    """Create ``path`` (empty) as 0600 unless it exists; an existing one that others may read
    is warned about."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        warn_if_readable([path], "the store")


def readable_by_others(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH | stat.S_IWGRP | stat.S_IWOTH))


def warn_if_readable(paths: Iterable[Path], what: str) -> list[Path]:
    """Warn once per file that group or others may read or write; returns those files."""
    exposed = [p for p in paths if p.is_file() and readable_by_others(p)]
    for path in exposed:
        log.warning(
            f"{what} can be read by other users of this machine; make it private",
            file=str(path),
            fix=f"chmod 600 {path}",
        )
    return exposed


def warn_about_secrets(directory: str | os.PathLike[str] | None) -> list[Path]:
    if not directory or not Path(directory).is_dir():
        return []
    return warn_if_readable(sorted(Path(directory).iterdir()), "a secret file")
