"""Programs, certifications and competency achievements of the simulated Totara site.

Derived from the synthetic organisation (same seed, same answers): one programme for Customer
Service, one certification for Warehouse Operations with a one-year validity and a 60-day
recertification window, and Totara competency achievements from the organisation's ratings.
Written as rows of Totara's own tables into a SQLite file that plays the read-only replica.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, delete, insert

from connectors.simulation.org import COMPETENCY_FRAMEWORK, Organisation
from connectors.totara.tables import (
    ACHIEVEMENT_ACTIVE,
    CERTIF_COMPLETED,
    CERTIF_EXPIRED,
    PROGRAM_COMPLETE,
    tables,
)

CERTIFICATION_VALID = timedelta(days=365)
RECERT_WINDOW = timedelta(days=60)


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
            if person.department == "Warehouse Operations" and rng.random() < 0.8:
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
            self.certifications[(user_id, certifid)] = when


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
            cert_rows = []
            for (uid, certifid), when in sorted(learning.certifications.items()):
                expires = when + int(CERTIFICATION_VALID.total_seconds())
                cert_rows.append(
                    {
                        "certifid": certifid,
                        "userid": uid,
                        "status": CERTIF_COMPLETED if expires > now else CERTIF_EXPIRED,
                        "timecompleted": when,
                        "timewindowopens": expires - int(RECERT_WINDOW.total_seconds()),
                        "timeexpires": expires,
                        "baselinetimeexpires": expires,
                        "timemodified": when,
                    }
                )
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
                (t.comp, comp_rows),
                (t.achievement, achievement_rows),
            ):
                conn.execute(delete(table))
                if rows:
                    conn.execute(insert(table), rows)

    def close(self) -> None:
        self.engine.dispose()
