"""The people of one read of an HR feed, held on disk so memory does not grow with the file.

Every accepted row goes into a private temporary SQLite database (``sqlite3.connect("")``: a
file SQLite deletes when the connection closes, with a bounded page cache), not into Python
lists and dicts. What needs every row at once is asked of it in SQL: a repeated HR id or
employee number (checked per row against the rows before it), who a manager reference names
(an HR id, else the last person read with that employee number), and which HR ids the read
lists. The people come back in chunks, managers resolved, as often as they are asked for.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date
from operator import attrgetter
from typing import Any, overload

from bridge.records import Person, Rejected
from connectors.hris.csv_reader import RowError
from connectors.hris.fields import Builder, Getter, known_zone

CHUNK = 5000  # rows written to the database at a time, and people handed back at a time
CACHE_KIB = 32 * 1024  # the database's page cache; the rest of it stays on disk
COLUMNS = tuple(f.name for f in fields(Person))
ID, MANAGER_ID = COLUMNS.index("person_id"), COLUMNS.index("manager_id")
DATE, ACTIVE = COLUMNS.index("start_date"), COLUMNS.index("active")
_values = attrgetter(*COLUMNS)

SCHEMA = f"""
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -{CACHE_KIB};
CREATE TABLE person (seq INTEGER PRIMARY KEY, file INTEGER NOT NULL, place TEXT NOT NULL,
                     {", ".join(COLUMNS)});
CREATE INDEX person_by_id ON person (person_id, file);
CREATE INDEX person_by_number ON person (employee_number, file);
CREATE TABLE named (person_id TEXT PRIMARY KEY) WITHOUT ROWID;
"""
# A manager reference is an HR id of the read, else the employee number of its last person.
MANAGER = """CASE WHEN EXISTS (SELECT 1 FROM person i WHERE i.person_id = p.manager_id)
    THEN p.manager_id
    ELSE (SELECT n.person_id FROM person n WHERE n.employee_number = p.manager_id
          ORDER BY n.seq DESC LIMIT 1) END"""
# Built from Person's field names, never from data.
PEOPLE = f"SELECT {', '.join(f'p.{c}' for c in COLUMNS)}, {MANAGER} FROM person p"  # noqa: S608
INSERT = (
    f"INSERT INTO person (file, place, {', '.join(COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * (len(COLUMNS) + 2))})"
)
UNKNOWN_MANAGERS = """SELECT p.person_id, p.manager_id FROM person p WHERE p.manager_id IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM person i WHERE i.person_id = p.manager_id)
    AND NOT EXISTS (SELECT 1 FROM person n WHERE n.employee_number = p.manager_id) ORDER BY p.seq"""
# Each HR id once — its last row, in the place of its first — as storing the rows in turn would.
LAST_OF_EACH = """JOIN (SELECT person_id, min(seq) AS first, max(seq) AS last FROM person
    GROUP BY person_id) g ON p.seq = g.last ORDER BY g.first"""


class Roster:
    """The people of one read of a feed, each row checked against the rows before it.

    An HR id or an employee number given twice rejects the later row (naming where the first
    was), so which account a number links to, and whose KPIs it carries, is never a guess. A
    value that cannot be used is dropped from the person with a note, not the whole row: a bad
    time zone must not make a snapshot retire the person.
    """

    def __init__(self, source: str, builder: Builder) -> None:
        self.source = source
        self.builder = builder
        self.notes: list[Rejected] = []
        self.db = sqlite3.connect("", check_same_thread=False)  # used by one thread at a time
        self.db.executescript(SCHEMA)
        self.files = 0
        self.count = 0  # rows accepted
        self._flushed = False  # whether this file has rows in the database yet
        self._rows: list[tuple[Any, ...]] = []  # accepted, not yet in the database
        self._ids: dict[str, str] = {}  # of those: HR id -> where it was read
        self._numbers: dict[str, tuple[str, str]] = {}  # employee number -> (HR id, where)
        self._named: list[tuple[str]] = []

    def new_file(self) -> None:
        """Rows of another file are checked against each other only: dated drops list the same people."""
        self._flush()
        self.files += 1
        self._flushed = False

    def read(self, get: Getter, where: str) -> None:
        """Read the person of one row read at ``where``; RowError rejects the row."""
        if named := self.builder.text(get, "person_id"):
            self._named.append((named,))
        person = self.builder.person(get)
        if (first := self._first_read(person.person_id)) is not None:
            raise RowError(f"HR id '{person.person_id}' was already read at {first}")
        number = person.employee_number
        if number and (holder := self._holder(number)) is not None:
            raise RowError(f"employee number '{number}' already belongs to {holder[0]} ({holder[1]})")
        self._ids[person.person_id] = where
        if number:
            self._numbers[number] = (person.person_id, where)
        if person.timezone and not known_zone(person.timezone):
            self.notes.append(
                Rejected(
                    self.source,
                    where,
                    f"time zone '{person.timezone}' is not an IANA name such as Europe/London "
                    "(the person was loaded with the default time zone)",
                )
            )
            person = replace(person, timezone=None)
        values = list(_values(person))
        values[DATE] = values[DATE].isoformat() if values[DATE] is not None else None
        self._rows.append((self.files, where, *values))
        self.count += 1
        if len(self._rows) >= CHUNK:
            self._flush()

    def _first_read(self, person_id: str) -> str | None:
        if person_id in self._ids:
            return self._ids[person_id]
        if not self._flushed:
            return None
        row = self.db.execute(
            "SELECT place FROM person WHERE person_id = ? AND file = ? LIMIT 1", (person_id, self.files)
        ).fetchone()
        return None if row is None else str(row[0])

    def _holder(self, number: str) -> tuple[str, str] | None:
        if number in self._numbers:
            return self._numbers[number]
        if not self._flushed:
            return None
        row = self.db.execute(
            "SELECT person_id, place FROM person WHERE employee_number = ? AND file = ? LIMIT 1",
            (number, self.files),
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def _flush(self) -> None:
        if self._rows:
            self.db.executemany(INSERT, self._rows)
            self._flushed = True
        if self._named:
            self.db.executemany("INSERT OR IGNORE INTO named VALUES (?)", self._named)
        self.db.commit()
        self._rows, self._ids, self._numbers, self._named = [], {}, {}, []

    def finish(self) -> tuple[People, list[Rejected]]:
        """The people read, and a note for each whose manager is not among them."""
        self._flush()
        notes = [
            Rejected(
                self.source,
                f"person {person_id}",
                f"unknown manager '{manager}' (the person was loaded without a manager)",
            )
            for person_id, manager in self.db.execute(UNKNOWN_MANAGERS)
        ]
        return People(self.db, self.count, self.files), notes


@dataclass(eq=False)
class People(Sequence[Person]):
    """The people of a read, managers resolved (a manager that is the person is none), read
    from the roster's database a chunk at a time on each pass; ``len`` is the rows accepted."""

    db: sqlite3.Connection
    accepted: int
    files: int
    _all: list[Person] | None = None

    def __len__(self) -> int:
        return self.accepted

    def __iter__(self) -> Iterator[Person]:
        for chunk in self._people(f"{PEOPLE} ORDER BY p.seq", CHUNK):
            yield from chunk

    @overload
    def __getitem__(self, index: int) -> Person: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Person]: ...
    def __getitem__(self, index: int | slice) -> Person | Sequence[Person]:
        if self._all is None:
            self._all = list(self)
        return self._all[index]

    def chunks(self, size: int) -> Iterator[Sequence[Person]]:
        """What to store: each HR id once (within one file it is; across dated drops the last
        row of an id, in the place of its first)."""
        order = "ORDER BY p.seq" if self.files <= 1 else LAST_OF_EACH
        return self._people(f"{PEOPLE} {order}", size)

    def listed(self, size: int) -> Iterator[Sequence[str]]:
        """Every HR id a row gave, loaded or rejected: who the read lists."""
        cursor = self.db.execute("SELECT person_id FROM named")
        while rows := cursor.fetchmany(size):
            yield [r[0] for r in rows]

    def numbers(self) -> tuple[dict[str, str], set[str]]:
        """Employee number -> HR id (the last person read with it), and every HR id."""
        numbers: dict[str, str] = {}
        ids: set[str] = set()
        for number, person_id in self.db.execute(
            "SELECT employee_number, person_id FROM person ORDER BY seq"
        ):
            if number:
                numbers[number] = person_id
            ids.add(person_id)
        return numbers, ids

    def _people(self, sql: str, size: int) -> Iterator[list[Person]]:
        cursor = self.db.execute(sql)
        while rows := cursor.fetchmany(size):
            yield [_person(row) for row in rows]


def _person(row: tuple[Any, ...]) -> Person:
    """A person from its row, the last value being its manager's HR id (None: unknown)."""
    values = list(row[:-1])
    started = values[DATE]
    values[DATE] = date.fromisoformat(started) if started is not None else None
    values[ACTIVE] = bool(values[ACTIVE])
    manager = row[-1]
    values[MANAGER_ID] = manager if manager != values[ID] else None
    return Person(*values)
