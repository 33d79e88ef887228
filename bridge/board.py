"""Showing learners their open recommendations inside the LMS, where the site can.

For every site whose sink has a board (Moodle with the companion plugin), each linked learner's
open recommendations for that site — not held out, the person active and not opted out of the
mapping — are written whole, many people a call; a recommendation that closes disappears from
the next set, and a person with none left is written an empty set. A digest per person of what
the site was last told (``shown_recommendations``) keeps steady runs from writing anything.
The digest is stored only after the site accepted the set, so a failed write is tried again.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, delete, exists, or_, select, true

from bridge.compose import reason_of
from bridge.errors import BridgeError
from bridge.facts import manager_of_person
from bridge.log import get_logger, redact_text
from bridge.outbox import target_from_json
from bridge.ports import RecommendationBoard, ShownRecommendation, Sink
from bridge.store import schema as t
from bridge.store.ingest import control_value, set_control, upsert_statement, version

log = get_logger(__name__)

USERS_PER_CALL = 100


@dataclass
class BoardReport:
    written: int = 0  # people whose set was written
    errors: list[str] = field(default_factory=list)


def board_of(sink: Sink) -> RecommendationBoard | None:
    board = getattr(sink, "board", None)
    return board() if callable(board) else None


def _may_have_board(sink: Sink) -> bool:
    """A sink with a board, or one that cannot tell without asking its site (``has_board``
    answers None until it has asked): the store is read for it. A site known to have no board
    (Moodle without the companion plugin) costs a delivery run nothing here."""
    if not callable(getattr(sink, "board", None)):
        return False
    known = getattr(sink, "has_board", None)
    return not callable(known) or known() is not False


def publish(
    engine: Engine, sinks: Mapping[str, Sink], now: datetime, unreachable: Set[str] = frozenset()
) -> BoardReport:
    """Write the sets that changed. The site is asked nothing when no set changed (so a site that
    is down costs nothing in a steady run), nor when this run found it ``unreachable``."""
    report = BoardReport()
    for site, sink in sinks.items():
        if site in unreachable or not _may_have_board(sink):
            continue
        try:
            report.written += _publish_site(engine, site, sink, now)
        except BridgeError as exc:
            message = f"showing recommendations on site '{site}': {redact_text(str(exc))}"
            log.error("recommendations not shown", site=site, error=message)
            report.errors.append(message)
    return report


# What every learner's set is made of. A delivery run in which none of it changed since the last
# complete publish to a site reads nothing (most delivery runs, which come every few minutes); one
# in which only recommendations changed reads only the people whose recommendations opened or
# closed since then (LOOK_BACK before it, for replicas' clocks); anything else, everyone. A site
# found to have no board (Moodle without the companion plugin) is asked again, before anything is
# read, only when something changed: a `sync --once` process does not read every open
# recommendation to learn what its previous process learnt.
OTHER_INPUTS = ("people", "managers", "opt_outs")
LOOK_BACK = timedelta(minutes=5)
PARTIAL_MAX = 5000


@dataclass(frozen=True)
class _Told:
    """What a site's sets were made of when it was last told all of them (or found to have no board)."""

    recommendations: str
    others: dict[str, str | None]
    at: datetime
    board: bool = True

    def same_inputs(self, other: _Told) -> bool:
        return (self.recommendations, self.others) == (other.recommendations, other.others)

    def text(self) -> str:
        state = {
            "recommendations": self.recommendations,
            "others": self.others,
            "at": self.at.isoformat(),
            "board": self.board,
        }
        return json.dumps(state, sort_keys=True)

    @classmethod
    def parse(cls, text: str | None) -> _Told | None:
        try:
            state = json.loads(text or "")
            at = datetime.fromisoformat(state["at"])
            return cls(state["recommendations"], state["others"], at, bool(state.get("board", True)))
        except (ValueError, KeyError, TypeError):
            return None  # none yet, or written by an older release: everyone is compared


def _now_told(conn: Connection, now: datetime) -> _Told | None:
    recommendations = version(conn, "recommendations")
    if recommendations is None:  # no recommendation stored by this release yet
        return None
    return _Told(recommendations, {name: version(conn, name) for name in OTHER_INPUTS}, now)


def _publish_site(engine: Engine, site: str, sink: Sink, now: datetime) -> int:
    name = f"board:{site}"
    with engine.connect() as conn:
        current = _now_told(conn, now)
        last = _Told.parse(control_value(conn, name))
    people: set[str] | None = None  # everyone
    board: RecommendationBoard | None = None
    asked = False
    if current is not None and last is not None:
        if last.same_inputs(current):
            return 0
        if not last.board:
            try:
                board, asked = board_of(sink), True
            except BridgeError:
                return 0  # the site cannot say now; a site without a board has nothing to be told
        elif last.others == current.others:
            with engine.connect() as conn:
                changed_people = _changed_since(conn, last.at - LOOK_BACK)
            # As many as PARTIAL_MAX: one pass over everyone costs less than the lists.
            people = changed_people if len(changed_people) <= PARTIAL_MAX else None
    if people is None and current is not None:
        # Comparing everyone reads every open recommendation (their explanations too): only for a
        # site that has a board. One without is remembered, and asked again only on a change.
        if not asked:
            board = board_of(sink)
        if board is None:  # nothing to show, and nothing read
            _set_told(engine, name, replace(current, board=False), now)
            return 0
    with engine.connect() as conn:
        wanted = open_recommendations(conn, site, people)
        told = _told_digests(conn, site, people)
    digests = {uid: digest(items) for uid, items in wanted.items()}
    changed: dict[int, list[ShownRecommendation]] = {
        uid: items for uid, items in wanted.items() if told.get(uid) != digests[uid]
    }
    changed.update({uid: [] for uid in told if uid not in wanted})
    if board is None and changed:
        board = board_of(sink)
    users = sorted(changed) if board is not None else []
    for start in range(0, len(users), USERS_PER_CALL):
        chunk = {uid: changed[uid] for uid in users[start : start + USERS_PER_CALL]}
        assert board is not None
        board.show(chunk)
        with engine.begin() as conn:
            _remember(conn, site, chunk, digests, now)
    if current is not None:  # every set the site should show is the one it was told, or it has no board
        _set_told(engine, name, replace(current, board=board is not None or not changed), now)
    if users:
        log.info("recommendations shown on the site", site=site, people=len(users))
    return len(users)


def _set_told(engine: Engine, name: str, told: _Told, now: datetime) -> None:
    with engine.begin() as conn:
        set_control(conn, name, told.text(), now)


def _changed_since(conn: Connection, since: datetime) -> set[str]:
    """People with a recommendation opened or closed (or lapsed) at ``since`` or later."""
    r = t.recommendations
    query = select(r.c.person_id).where(or_(r.c.opened_at >= since, r.c.closed_at >= since)).distinct()
    return set(conn.execute(query).scalars())


def _told_digests(conn: Connection, site: str, people: set[str] | None) -> dict[int, str]:
    """The digest of the set each account was last told (of ``people``' accounts on the site only)."""
    s, i = t.shown_recommendations, t.identities
    query = select(s.c.user_id, s.c.digest).where(s.c.site == site)
    if people is not None:
        linked = select(i.c.user_id).where(i.c.site == site, i.c.person_id.in_(sorted(people)))
        query = query.where(s.c.user_id.in_(linked))
    return {int(uid): str(d) for uid, d in conn.execute(query).all()}


def digest(items: Sequence[ShownRecommendation]) -> str:
    # vars(), not asdict(): the same JSON (every field is a plain value) without asdict's deep copy,
    # which was most of a steady delivery run's cost (every learner's set is digested each run).
    payload = json.dumps([vars(i) for i in items], default=str, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _remember(
    conn: Connection,
    site: str,
    chunk: Mapping[int, Sequence[ShownRecommendation]],
    digests: Mapping[int, str],
    now: datetime,
) -> None:
    """Store what ``chunk`` told the site: each set's digest (from ``digests``), none for an empty set."""
    s = t.shown_recommendations
    emptied = [uid for uid, items in chunk.items() if not items]
    if emptied:
        conn.execute(delete(s).where(and_(s.c.site == site, s.c.user_id.in_(emptied))))
    rows = [
        {"site": site, "user_id": uid, "digest": digests[uid], "updated_at": now}
        for uid, items in chunk.items()
        if items
    ]
    if rows:
        conn.execute(
            upsert_statement(conn, s, ["site", "user_id"], ["site", "user_id", "digest", "updated_at"]), rows
        )


def open_recommendations(
    conn: Connection, site: str, people: set[str] | None = None
) -> dict[int, list[ShownRecommendation]]:
    """Each linked learner's open recommendations whose learning is on ``site``, oldest first
    (of ``people`` only, when given)."""
    r, p, i, o = t.recommendations, t.people, t.identities, t.opt_outs
    manager = i.alias("manager_identity")
    opted_out = exists().where(
        and_(o.c.person_id == r.c.person_id, or_(o.c.mapping_id == r.c.mapping_id, o.c.mapping_id == "*"))
    )
    rows = conn.execute(
        select(
            r.c.id,
            r.c.targets,
            r.c.explanation,
            r.c.opened_at,
            i.c.user_id,
            manager.c.user_id.label("manager"),
        )
        .join(p, p.c.person_id == r.c.person_id)
        .join(i, and_(i.c.person_id == r.c.person_id, i.c.site == site))
        .outerjoin(manager, and_(manager.c.person_id == manager_of_person(), manager.c.site == site))
        .where(
            r.c.state == "open",
            r.c.holdout.is_(False),
            p.c.active.is_(True),
            ~opted_out,
            r.c.person_id.in_(sorted(people)) if people is not None else true(),
        )
        .order_by(r.c.opened_at, r.c.id)
    ).all()
    shown: dict[int, list[ShownRecommendation]] = defaultdict(list)
    for row in rows:
        target = target_from_json(row.targets[0]) if row.targets else None
        if target is None or target.site != site:
            continue
        explanation = row.explanation or {}
        due_days = explanation.get("due_in_days")
        shown[int(row.user_id)].append(
            ShownRecommendation(
                reference=f"rec-{row.id}",
                title=target.name,
                reason=reason_of(explanation),  # the messages' plain words; peer rank never shown here
                manager_reason=reason_of(explanation, to_manager=True),
                url=target.url,
                due_at=row.opened_at + timedelta(days=int(due_days)) if due_days else None,
                manager_user_id=int(row.manager) if row.manager is not None else None,
            )
        )
    return dict(shown)
