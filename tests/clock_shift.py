"""Run pytest with the machine's clock moved to another real date and time.

    python -m tests.clock_shift "2031-02-14 23:30:00" [pytest arguments]

The tests pin the bridge's clock (``LMSBRIDGE_NOW``, ``clock.set_now``); anything that reads
the machine's clock instead — a column default, a scheduler, a simulator — sees the shifted
time here and disagrees with the pinned one, so a clock leak fails at once instead of only at
some hours of some days. libfaketime shifts the wall clock of this process and every child; the
monotonic clock is left alone, since timed waits on a faked monotonic clock hang. The PostgreSQL
server is not shifted: a query that asks the database for "now" also disagrees with the pinned
clock.

The preload library is the one ``make test`` builds from the ``libfaketime`` wheel's source with
only the clock functions faked (``LMSBRIDGE_FAKETIME_LIBRARY``; see the Makefile for why not the
wheel's own build). Its setting is read once per process, at the first clock call, and never
again (a cache longer than any run): every later re-read calls getenv() and rewrites the
library's shared state from whichever thread asks the time, which races with the other threads
and with setenv().
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

USAGE = 'usage: python -m tests.clock_shift "YYYY-MM-DD HH:MM:SS" [pytest arguments]'
LIBRARY_SETTING = "LMSBRIDGE_FAKETIME_LIBRARY"
READ_ONCE = str(10**9)  # seconds: the setting's cache outlives any run


def preload_library() -> str:
    library = os.environ.get(LIBRARY_SETTING, "")
    if not library or not Path(library).is_file():
        raise SystemExit(
            f"{LIBRARY_SETTING} must name the libfaketime that make builds "
            f"(now {library or 'unset'}); run `make test-shifted-clock`"
        )
    return str(Path(library).resolve())


def shifted_environment(when: str) -> dict[str, str]:
    datetime.strptime(when, "%Y-%m-%d %H:%M:%S")  # a typo must not silently run at the real time
    preload = os.environ.get("LD_PRELOAD")
    return {
        **os.environ,
        "LD_PRELOAD": f"{preload_library()}:{preload}" if preload else preload_library(),
        "FAKETIME": f"@{when}",  # starts at `when` and runs on from there
        "FAKETIME_CACHE_DURATION": READ_ONCE,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "DONT_FAKE_MONOTONIC": "1",
        "TZ": "UTC",
    }


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(USAGE)
    try:
        environment = shifted_environment(argv[0])
    except ValueError:
        raise SystemExit(USAGE) from None
    print(f"clock shift: the machine's clock reads {argv[0]} UTC for this run", flush=True)
    os.execve(sys.executable, [sys.executable, "-m", "pytest", *argv[1:]], environment)


if __name__ == "__main__":
    main(sys.argv[1:])
