"""The Totara database tables lmsbridge reads from a read-only replica or reporting copy.

Column names follow Totara's schema (``course_completions``, ``prog``, ``prog_completion``, ``certif_completion``,
``certif_completion_history``, ``comp``, ``totara_competency_achievement``, ``job_assignment``); the table
prefix is the site's ``$CFG->prefix`` (``ttr_`` on a default install). Status values are Totara's
constants (``totara/certification/lib.php``, ``totara/program/lib.php``):
``STATUS_PROGRAM_INCOMPLETE = 0``, ``STATUS_PROGRAM_COMPLETE = 1``; ``CERTIFSTATUS_ASSIGNED = 1``,
``CERTIFSTATUS_INPROGRESS = 2``, ``CERTIFSTATUS_COMPLETED = 3``, ``CERTIFSTATUS_EXPIRED = 4``;
``CERTIFRENEWALSTATUS_NOTDUE = 0``, ``_DUE = 1``, ``_EXPIRED = 2``; ``CERTIFPATH_CERT = 1``,
``CERTIFPATH_RECERT = 2``. An achievement's ``status`` 0 is the active record (1 archived, 2 superseded).

A certification's state is Totara's ``certif_get_completion_state()``: *expired* is
``status = EXPIRED``, or ``status = INPROGRESS`` with ``renewalstatus = EXPIRED`` (working on it
again after it lapsed). An expired row has ``timecompleted``, ``timewindowopens`` and
``timeexpires`` all 0: the date it lapsed stays in the program's ``prog_completion.timedue``, and
the completion that lapsed is kept in ``certif_completion_history``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table

PROGRAM_INCOMPLETE = 0
PROGRAM_COMPLETE = 1
CERTIF_ASSIGNED = 1
CERTIF_INPROGRESS = 2
CERTIF_COMPLETED = 3
CERTIF_EXPIRED = 4
RENEWAL_NOTDUE = 0
RENEWAL_DUE = 1
RENEWAL_EXPIRED = 2
CERTIFPATH_CERT = 1
CERTIFPATH_RECERT = 2
ACHIEVEMENT_ACTIVE = 0
ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements only INTEGER keys


@dataclass(frozen=True)
class TotaraTables:
    metadata: MetaData
    course_completions: Table
    prog: Table
    prog_completion: Table
    certif_completion: Table
    certif_completion_history: Table
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
        certif_completion_history=Table(
            f"{prefix}certif_completion_history",
            md,
            Column("id", ID, primary_key=True),
            Column("certifid", BigInteger),
            Column("userid", BigInteger),
            Column("certifpath", Integer, default=2),
            Column("status", Integer),
            Column("renewalstatus", Integer, default=0),
            Column("timecompleted", BigInteger, default=0),
            Column("timewindowopens", BigInteger, default=0),
            Column("timeexpires", BigInteger, default=0),
            Column("baselinetimeexpires", BigInteger, default=0),
            Column("timemodified", BigInteger, default=0),
            Column("unassigned", Integer, default=0),
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
