"""The HR ids a people snapshot lists, in a temporary table for the length of its transaction.

Who would be retired, and who is, is then one anti-join in the database instead of two sets of
every id in memory (a million-person export held 1M ids twice). The ids are copied in
(``COPY`` on PostgreSQL, ``executemany`` on SQLite) a chunk at a time. The table goes with the
transaction: dropped at the end of the write, and rolled back with it when the write fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Column, Connection, MetaData, Select, String, Table, and_, exists, func, insert, select

from bridge.store import schema as t


class ListedIds:
    def __init__(self, conn: Connection, chunks: Iterable[Sequence[str]]) -> None:
        self.conn = conn
        name = f"lmsbridge_listed_{uuid.uuid4().hex[:12]}"
        self.table = Table(
            name,
            MetaData(),
            Column("person_id", String, primary_key=True),
            prefixes=["TEMPORARY"],
            postgresql_on_commit="DROP",
        )
        self.table.create(conn)
        postgres = conn.dialect.name == "postgresql"
        sql = str(insert(self.table).compile(dialect=conn.dialect))  # the chunks hold each id once
        for chunk in chunks:
            if not chunk:
                continue
            if postgres:
                self._copy(name, chunk)
            else:
                conn.exec_driver_sql(sql, [(i,) for i in chunk])
        if postgres:
            conn.exec_driver_sql(f'ANALYZE "{name}"')

    def _copy(self, name: str, chunk: Sequence[str]) -> None:
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f'COPY "{name}" (person_id) FROM STDIN') as copy:
                for person_id in chunk:
                    copy.write_row((person_id,))
        finally:
            cursor.close()

    def unlisted(self, source: str) -> Select[Any]:
        """The active people of ``source`` the snapshot does not list."""
        p = t.people
        listed = exists().where(self.table.c.person_id == p.c.person_id)
        return select(p.c.person_id).where(and_(p.c.source == source, p.c.active, ~listed))

    def would_retire(self, source: str) -> tuple[int, int]:
        """How many active people of ``source`` it does not list, and how many are active."""
        p = t.people
        active = select(func.count()).where(and_(p.c.source == source, p.c.active))
        gone = select(func.count()).select_from(self.unlisted(source).subquery())
        return int(self.conn.execute(gone).scalar_one()), int(self.conn.execute(active).scalar_one())

    def drop(self) -> None:
        self.table.drop(self.conn)
