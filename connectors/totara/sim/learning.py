"""Programs, certifications and competency achievements of the simulated Totara site.

Derived from the synthetic organisation (same seed, same answers): one programme for Customer
Service, one certification for Warehouse Operations with a one-year validity and a 60-day
recertification window, and Totara competency achievements from the organisation's ratings.
Written as rows of Totara's own tables into a SQLite file that plays the read-only replica, in
the shapes Totara's certification state machine leaves them (``certif_get_completion_errors()``
lists what each state requires): certified, window open (the completion copied to history, the
program record reset), expired (``timecompleted``, ``timewindowopens`` and ``timeexpires`` all 0,
the lapse date in ``prog_completion.timedue``, the lapsed completion in history) and assigned.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, delete, insert

from bridge import clock
from connectors.simulation.org import COMPETENCY_FRAMEWORK, Organisation
from connectors.totara.tables import (
    ACHIEVEMENT_ACTIVE,
    CERTIF_ASSIGNED,
    CERTIF_COMPLETED,
    CERTIF_EXPIRED,
    CERTIFPATH_CERT,
    CERTIFPATH_RECERT,
    PROGRAM_COMPLETE,
    PROGRAM_INCOMPLETE,
    RENEWAL_DUE,
    RENEWAL_EXPIRED,
    RENEWAL_NOTDUE,
    tables,
)

CERTIFICATION_VALID = timedelta(days=365)
RECERT_WINDOW = timedelta(days=60)


def now() -> int:
    """The site's "now" in Unix seconds: the bridge's clock, since a simulated site stands for a
    real one whose clock agrees with the daemon's (a test pinning the clock pins the site too)."""
    return int(clock.now().timestamp())


@dataclass(frozen=True)
class Program:
    id: int
    shortname: str
    fullname: str
    idnumber: str
    certifid: int | None = None
    audience_id: int | None = None  # the audience its assignment is tied to


PROGRAMS = [
    Program(1, "CX Programme", "Customer Experience Programme", "PROG-CX", audience_id=11),
    Program(2, "Safety Cert", "Warehouse Safety Certification", "CERT-SAFETY", certifid=1, audience_id=12),
]


@dataclass
class TotaraLearning:
    program_completions: dict[tuple[int, int], int] = field(default_factory=dict)  # (user, program) -> time
    certifications: dict[tuple[int, int], int] = field(default_factory=dict)  # (user, certifid) -> completed
    # (user, certifid) assigned through the audience, and when each record was last written
    assigned: set[tuple[int, int]] = field(default_factory=set)
    changed: dict[tuple[int, int], int] = field(default_factory=dict)
    achievements: dict[tuple[int, int], tuple[bool, int, int]] = field(default_factory=dict)
    competencies: list[tuple[int, str, str]] = field(default_factory=list)
    managers: dict[int, int | None] = field(default_factory=dict)  # user -> manager's job assignment
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, org: Organisation) -> TotaraLearning:
        learning = cls(competencies=list(org.competencies))
        for person in org.people:  # one job assignment per user, its id the user's id
            manager = org.people[person.manager_index] if person.manager_index is not None else None
            learning.managers[person.user_id] = manager.user_id if manager else None
        anchor = datetime(org.anchor.year, org.anchor.month, org.anchor.day, tzinfo=UTC)
        for person in org.people:
            rng = random.Random(f"{org.seed}:totara:{person.index}")
            if person.department == "Customer Service" and rng.random() < 0.3:
                when = anchor - timedelta(days=rng.randrange(20, 300))
                learning.program_completions[(person.user_id, 1)] = int(when.timestamp())
            if person.department == "Warehouse Operations":
                learning.assigned.add((person.user_id, 1))
                if rng.random() < 0.8:
                    when = anchor - timedelta(days=rng.randrange(30, 500))
                    learning.certifications[(person.user_id, 1)] = int(when.timestamp())
        for user_id, ratings in org.plan_ratings.items():
            for competency_id, grade in ratings:
                if grade is not None:
                    rated = int((anchor - timedelta(days=10 + competency_id)).timestamp())
                    learning.achievements[(user_id, competency_id)] = (grade == 2, grade, rated)
        return learning

    def certify(self, user_id: int, certifid: int, when: int) -> None:
        with self.lock:
            self.assigned.add((user_id, certifid))
            self.certifications[(user_id, certifid)] = when
            self.changed[(user_id, certifid)] = now()

    def expire(self, user_id: int, certifid: int, when: int) -> None:
        """The certification lapses at ``when`` (its completion moves back one validity period)."""
        with self.lock:
            self.assigned.add((user_id, certifid))
            self.certifications[(user_id, certifid)] = when - int(CERTIFICATION_VALID.total_seconds())
            self.changed[(user_id, certifid)] = now()


def certification_rows(
    certifid: int, program_id: int, user_id: int, completed: int | None, now: int
) -> tuple[dict[str, int], dict[str, int], dict[str, int] | None]:
    """The ``certif_completion``, ``prog_completion`` and (if any) ``certif_completion_history``
    rows Totara keeps for one assigned user, in the state ``now`` puts them."""
    base = {"certifid": certifid, "userid": user_id}
    program = {
        "programid": program_id,
        "userid": user_id,
        "coursesetid": 0,
        "timestarted": 0,
        "timecreated": 0,
    }
    if completed is None:
        cert = {
            **base,
            "status": CERTIF_ASSIGNED,
            "renewalstatus": RENEWAL_NOTDUE,
            "certifpath": CERTIFPATH_CERT,
        }
        cert |= {"timecompleted": 0, "timewindowopens": 0, "timeexpires": 0, "baselinetimeexpires": 0}
        cert["timemodified"] = now - 86400 * 400
        return cert, {**program, "status": PROGRAM_INCOMPLETE, "timedue": -1, "timecompleted": 0}, None
    expires = completed + int(CERTIFICATION_VALID.total_seconds())
    opens = expires - int(RECERT_WINDOW.total_seconds())
    history = {
        **base,
        "certifpath": CERTIFPATH_CERT,
        "status": CERTIF_COMPLETED,
        "renewalstatus": RENEWAL_NOTDUE,
        "timecompleted": completed,
        "timewindowopens": opens,
        "timeexpires": expires,
        "baselinetimeexpires": expires,
        "timemodified": opens,
        "unassigned": 0,
    }
    if now >= expires:  # the certification cron ran at expiry
        cert = {
            **base,
            "status": CERTIF_EXPIRED,
            "renewalstatus": RENEWAL_EXPIRED,
            "certifpath": CERTIFPATH_CERT,
        }
        cert |= {"timecompleted": 0, "timewindowopens": 0, "timeexpires": 0, "baselinetimeexpires": 0}
        cert["timemodified"] = expires
        return (
            cert,
            {**program, "status": PROGRAM_INCOMPLETE, "timedue": expires, "timecompleted": 0},
            history,
        )
    cert = {**base, "status": CERTIF_COMPLETED, "certifpath": CERTIFPATH_RECERT, "timecompleted": completed}
    cert |= {"timewindowopens": opens, "timeexpires": expires, "baselinetimeexpires": expires}
    if now >= opens:  # window open: the completion is copied to history, the program record reset
        cert |= {"renewalstatus": RENEWAL_DUE, "timemodified": opens}
        return (
            cert,
            {**program, "status": PROGRAM_INCOMPLETE, "timedue": expires, "timecompleted": 0},
            history,
        )
    cert |= {"renewalstatus": RENEWAL_NOTDUE, "timemodified": completed}
    return cert, {**program, "status": PROGRAM_COMPLETE, "timedue": expires, "timecompleted": completed}, None


class Replica:
    """Keeps a SQLite file with Totara's tables in step with the simulated site."""

    def __init__(self, path: Path, prefix: str = "ttr_") -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self.t = tables(prefix)
        self.engine: Engine = create_engine(self.url)
        self.t.metadata.create_all(self.engine)

    def write(self, learning: TotaraLearning, completions: dict[tuple[int, int], int], now: int) -> None:
        t = self.t
        course_rows = [
            {"userid": uid, "course": cid, "timecompleted": when, "status": 50}  # COMPLETION_STATUS_COMPLETE
            for (uid, cid), when in sorted(completions.items())
        ]
        with learning.lock:
            programs = [
                {
                    "id": p.id,
                    "shortname": p.shortname,
                    "fullname": p.fullname,
                    "idnumber": p.idnumber,
                    "certifid": p.certifid,
                    "visible": 1,
                }
                for p in PROGRAMS
            ]
            prog_rows = [
                {
                    "programid": pid,
                    "userid": uid,
                    "coursesetid": 0,
                    "status": PROGRAM_COMPLETE,
                    "timestarted": when - 86400 * 14,
                    "timecompleted": when,
                    "timecreated": when - 86400 * 30,
                }
                for (uid, pid), when in sorted(learning.program_completions.items())
            ]
            cert_rows: list[dict[str, int]] = []
            history_rows: list[dict[str, int]] = []
            by_certif = {p.certifid: p.id for p in PROGRAMS if p.certifid is not None}
            for uid, certifid in sorted(learning.assigned | set(learning.certifications)):
                cert, program, history = certification_rows(
                    certifid, by_certif[certifid], uid, learning.certifications.get((uid, certifid)), now
                )
                cert["timemodified"] = max(cert["timemodified"], learning.changed.get((uid, certifid), 0))
                cert_rows.append(cert)
                prog_rows.append(program)
                if history is not None:
                    history_rows.append(history)
            comp_rows = [
                {
                    "id": cid,
                    "shortname": name,
                    "fullname": name,
                    "idnumber": idnumber,
                    "frameworkid": COMPETENCY_FRAMEWORK[0],
                }
                for cid, name, idnumber in learning.competencies
            ]
            achievement_rows = [
                {
                    "competency_id": cid,
                    "user_id": uid,
                    "scale_value_id": grade,
                    "proficient": int(proficient),
                    "status": ACHIEVEMENT_ACTIVE,
                    "time_created": when,
                    "time_status": when,
                    "last_aggregated": when,
                }
                for (uid, cid), (proficient, grade, when) in sorted(learning.achievements.items())
            ]
        job_rows = [
            {"id": uid, "userid": uid, "managerjaid": manager, "sortorder": 1}
            for uid, manager in learning.managers.items()
        ]
        with self.engine.begin() as conn:
            for table, rows in (
                (t.job_assignment, job_rows),
                (t.course_completions, course_rows),
                (t.prog, programs),
                (t.prog_completion, prog_rows),
                (t.certif_completion, cert_rows),
                (t.certif_completion_history, history_rows),
                (t.comp, comp_rows),
                (t.achievement, achievement_rows),
            ):
                conn.execute(delete(table))
                if rows:
                    conn.execute(insert(table), rows)

    def close(self) -> None:
        self.engine.dispose()
