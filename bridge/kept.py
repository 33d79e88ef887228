"""Values derived from the store, kept per process while what they are made of is unchanged.

A steady cycle changes a few people's completions, yet each pull used to read every HR person's
keys, the site's whole account index and its account links, and evaluate everyone against every
audience: work that grows with the organisation, not with what changed. What writes those tables
bumps a named version in the control table (``bump_version``); a value derived from them is kept
under the versions it was built from, so it is rebuilt exactly when one of them moves — by this
process or by another replica — and never otherwise.

Kept values are shared between callers and threads: treat them as read-only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

from sqlalchemy import Engine

from bridge import clock
from bridge.store.ingest import bump_version, version

T = TypeVar("T")


class Kept(Generic[T]):
    """One value per subject (a site's links, a metric's ranks, …), kept while the versions it
    was built from stand and replaced when they move: a stale value is never held beside the new
    one. At most ``size`` subjects, the least recently used dropped first."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._held: OrderedDict[Hashable, tuple[Hashable, T]] = OrderedDict()
        self._lock = threading.Lock()  # the daemon pulls several sites at once

    def get(self, subject: Hashable, version: Hashable | None, build: Callable[[], T]) -> T:
        """The subject's value if built at ``version``, else ``build()`` kept for it; a version of
        None (nothing to tell versions apart by yet): built, and nothing kept."""
        if version is None:
            return build()
        with self._lock:
            held = self._held.get(subject)
            if held is not None and held[0] == version:
                self._held.move_to_end(subject)
                return held[1]
        value = build()
        with self._lock:
            self._held[subject] = (version, value)
            self._held.move_to_end(subject)
            while len(self._held) > self.size:
                self._held.popitem(last=False)
        return value


def store_of(engine: Engine) -> str:
    """Which store a kept value comes from (several engines may share a process: the tests)."""
    return engine.url.render_as_string()


def versions(engine: Engine, names: Sequence[str]) -> tuple[str, ...]:
    """The named versions' values, the version of what is built from them.

    A version never bumped yet (a store written before it existed) is started here: the data as
    it is now is that version, and any later write bumps it. Starting one over a concurrent bump
    only changes the version again, which rebuilds, never keeps a stale value.
    """
    with engine.connect() as conn:
        found = {name: version(conn, name) for name in names}
    missing = [name for name, value in found.items() if value is None]
    if missing:
        with engine.begin() as conn:
            for name in missing:
                bump_version(conn, name, clock.now())
                found[name] = version(conn, name)
    return tuple(str(found[name]) for name in names)
