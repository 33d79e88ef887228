"""Refusing to act on a clock that has jumped ahead.

A machine whose clock runs days ahead would send every reminder, escalation and digest of those
days at once, and stamp cursors in the future. Before a cycle decides or delivers, the bridge's
clock is compared with the clocks it can see that it does not control: the PostgreSQL server's,
and each site's or feed's, from the Date header of its last answer. Ahead of any of them by more
than :data:`TOLERANCE`, the cycle refuses to act and says why; reading goes on.

Only running *ahead* is refused: a clock pinned in the past (``LMSBRIDGE_NOW``, a replay) is a
deliberate choice, and one behind sends late rather than early.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from bridge import http

TOLERANCE = timedelta(hours=1)


def references(engine: Engine) -> dict[str, datetime]:
    """Clocks this process can compare with its own, by what they belong to."""
    found = {f"the site or feed at {host}": when for host, when in http.server_times().items()}
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            found["the PostgreSQL server"] = conn.execute(select(func.now())).scalar_one()
    return found


def refusal(engine: Engine, now: datetime) -> str | None:
    """Why a cycle at ``now`` must not act, or None when no clock it can see disagrees."""
    for name, when in sorted(references(engine).items()):
        ahead = now - when
        if ahead > TOLERANCE:
            return (
                f"the clock reads {now:%Y-%m-%d %H:%M} UTC, {_span(ahead)} ahead of {name} "
                f"({when:%Y-%m-%d %H:%M} UTC); nothing is decided or sent until they agree "
                "(set the machine's clock right)"
            )
    return None


def _span(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"
