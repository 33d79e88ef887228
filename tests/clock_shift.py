"""Run pytest with the machine's clock moved to another real date and time.

    python -m tests.clock_shift "2031-02-14 23:30:00" [pytest arguments]

The tests pin the bridge's clock (``LMSBRIDGE_NOW``, ``clock.set_now``); anything that reads
the machine's clock instead — a column default, a scheduler, a simulator — sees the shifted
time here and disagrees with the pinned one, so a clock leak fails at once instead of only at
some hours of some days. libfaketime (the preload library shipped in the ``libfaketime`` wheel)
shifts the wall clock of this process and every child; the monotonic clock is left alone, since
timed waits on a faked monotonic clock hang. The PostgreSQL server is not shifted: a query that
asks the database for "now" also disagrees with the pinned clock.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from importlib.resources import files

USAGE = 'usage: python -m tests.clock_shift "YYYY-MM-DD HH:MM:SS" [pytest arguments]'


def preload_library() -> str:
    library = files("libfaketime") / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"
    if not library.is_file():
        raise SystemExit(f"libfaketime's preload library is missing at {library}; run `make test`")
    return str(library)


def shifted_environment(when: str) -> dict[str, str]:
    datetime.strptime(when, "%Y-%m-%d %H:%M:%S")  # a typo must not silently run at the real time
    preload = os.environ.get("LD_PRELOAD")
    return {
        **os.environ,
        "LD_PRELOAD": f"{preload_library()}:{preload}" if preload else preload_library(),
        "FAKETIME": f"@{when}",  # starts at `when` and runs on from there
        "FAKETIME_NO_CACHE": "1",  # no periodic re-read of the setting, which races between threads
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
