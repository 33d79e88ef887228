"""The Totara database tables lmsbridge reads from a read-only replica or reporting copy.

Column names follow Totara's schema (``course_completions``, ``prog``, ``prog_completion``, ``certif_completion``,
``comp``, ``totara_competency_achievement``); the table prefix is the site's ``$CFG->prefix``
(``ttr_`` on a default install). Status values are Totara's constants:
``STATUS_PROGRAM_COMPLETE = 1``, ``CERTIFSTATUS_COMPLETED = 3``, ``CERTIFSTATUS_EXPIRED = 4``;
an achievement's ``status`` 0 is the active record (1 archived, 2 superseded).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table

PROGRAM_COMPLETE = 1
CERTIF_COMPLETED = 3
CERTIF_EXPIRED = 4
ACHIEVEMENT_ACTIVE = 0
ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements only INTEGER keys


@dataclass(frozen=True)
class TotaraTables:
    metadata: MetaData
    course_completions: Table
    prog: Table
    prog_completion: Table
    certif_completion: Table
    comp: Table
    achievement: Table
    job_assignment: Table


def tables(prefix: str = "ttr_") -> TotaraTables:
    md = MetaData()
    return TotaraTables(
        metadata=md,
        course_completions=Table(
            f"{prefix}course_completions",
            md,
            Column("id", ID, primary_key=True),
            Column("userid", BigInteger),
            Column("course", BigInteger),
            Column("timeenrolled", BigInteger, default=0),
            Column("timestarted", BigInteger, default=0),
            Column("timecompleted", BigInteger, nullable=True),
            Column("status", Integer, default=0),
        ),
        prog=Table(
            f"{prefix}prog",
            md,
            Column("id", ID, primary_key=True),
            Column("shortname", String(255)),
            Column("fullname", String(1333)),
            Column("idnumber", String(100)),
            Column("certifid", BigInteger, nullable=True),
            Column("visible", Integer, default=1),
        ),
        prog_completion=Table(
            f"{prefix}prog_completion",
            md,
            Column("id", ID, primary_key=True),
            Column("programid", BigInteger),
            Column("userid", BigInteger),
            Column("coursesetid", BigInteger, default=0),
            Column("status", Integer),
            Column("timestarted", BigInteger, default=0),
            Column("timedue", BigInteger, default=-1),
            Column("timecompleted", BigInteger, default=0),
            Column("timecreated", BigInteger, default=0),
        ),
        certif_completion=Table(
            f"{prefix}certif_completion",
            md,
            Column("id", ID, primary_key=True),
            Column("certifid", BigInteger),
            Column("userid", BigInteger),
            Column("status", Integer),
            Column("renewalstatus", Integer, default=0),
            Column("certifpath", Integer, default=1),
            Column("timecompleted", BigInteger, default=0),
            Column("timewindowopens", BigInteger, default=0),
            Column("timeexpires", BigInteger, default=0),
            Column("baselinetimeexpires", BigInteger, default=0),
            Column("timemodified", BigInteger, default=0),
        ),
        comp=Table(
            f"{prefix}comp",
            md,
            Column("id", ID, primary_key=True),
            Column("shortname", String(100)),
            Column("fullname", String(1024)),
            Column("idnumber", String(100)),
            Column("frameworkid", BigInteger),
        ),
        achievement=Table(
            f"{prefix}totara_competency_achievement",
            md,
            Column("id", ID, primary_key=True),
            Column("competency_id", BigInteger),
            Column("user_id", BigInteger),
            Column("assignment_id", BigInteger, default=0),
            Column("scale_value_id", BigInteger, nullable=True),
            Column("proficient", Integer),
            Column("status", Integer, default=ACHIEVEMENT_ACTIVE),
            Column("time_created", BigInteger),
            Column("time_status", BigInteger),
            Column("last_aggregated", BigInteger, nullable=True),
        ),
        job_assignment=Table(
            f"{prefix}job_assignment",
            md,
            Column("id", ID, primary_key=True),
            Column("userid", BigInteger),
            Column("managerjaid", BigInteger, nullable=True),
            Column("sortorder", Integer, default=1),
        ),
    )
