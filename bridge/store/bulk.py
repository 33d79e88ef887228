"""Upserting many rows at the speed of the database driver, with the upsert's exact meaning.

An upsert of pulled records inserts a new key and updates a row only when a value differs,
returning the keys of the rows it touched (:func:`on_conflict`). Run through SQLAlchemy's
per-row parameter handling that costs several times the insert itself, so :func:`upsert_rows`
runs the same statement on the driver:

- **SQLite**: the statement compiled once, its VALUES group repeated for a chunk of rows, each
  value converted by its column's own bind processor (the conversion SQLAlchemy would make), run
  with ``exec_driver_sql`` (so errors are SQLAlchemy's, as for every other statement).
- **PostgreSQL**: the rows are copied (``COPY``) into a temporary table shaped like the target,
  then one ``INSERT … SELECT … ON CONFLICT … DO UPDATE … WHERE … RETURNING`` moves them: a batch
  costs a few round trips instead of a statement with thousands of parameters per chunk.

Rows must be unique per key (one statement may not touch a row twice); the caller dedupes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, column, or_, select, text
from sqlalchemy import table as table_clause
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

# SQLite allows 32,766 parameters per statement (3.32+); 500 rows of the widest record table
# stay far below that.
SQLITE_ROWS_PER_STATEMENT = 500

Processor = Callable[[Any], Any] | None
Insert = postgresql.Insert | sqlite.Insert


def on_conflict(stmt: Insert, table: Table, keys: Sequence[str], columns: Sequence[str]) -> Any:
    """``stmt`` (an INSERT into ``table``) as an upsert by ``keys``, touching a row only when one
    of ``columns`` differs (``updated_at`` then follows)."""
    excluded = stmt.excluded
    values = [c for c in columns if c not in keys]
    if not values:
        return stmt.on_conflict_do_nothing(index_elements=list(keys))
    changed = or_(*(table.c[c].is_distinct_from(excluded[c]) for c in values))
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={
            **{c: excluded[c] for c in values},
            **({"updated_at": excluded["updated_at"]} if "updated_at" in table.c else {}),
        },
        where=changed,
    )


def upsert_rows(
    conn: Connection,
    table: Table,
    keys: Sequence[str],
    columns: Sequence[str],
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> list[tuple[Any, ...]]:
    """Upsert ``rows`` (values of ``names``, in that order) into ``table`` by ``keys``, a row
    updated only when one of ``columns`` differs, as :func:`on_conflict` says.

    Returns the ``keys`` of the rows inserted or changed, as tuples.
    """
    if not rows:
        return []
    if not conn.in_transaction():
        conn.begin()  # what executing through SQLAlchemy would do first (autobegin)
    strategy = _copy_upsert if conn.dialect.name == "postgresql" else _sqlite_upsert
    return strategy(conn, table, tuple(keys), tuple(columns), tuple(names), rows)


def _convert(
    conn: Connection, table: Table, names: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """Each value as SQLAlchemy would bind it (dates as text on SQLite, aware UTC times, ...)."""
    processors: list[Processor] = [table.c[c].type._cached_bind_processor(conn.dialect) for c in names]
    active = [(i, p) for i, p in enumerate(processors) if p is not None]
    if not active:
        return list(rows)
    converted = []
    for row in rows:
        values = list(row)
        for i, process in active:
            values[i] = process(values[i])
        converted.append(tuple(values))
    return converted


_SQLITE_SQL: dict[tuple[str, ...], tuple[str, str, tuple[int, ...]]] = {}


def _sqlite_sql(
    conn: Connection, table: Table, keys: tuple[str, ...], columns: tuple[str, ...], names: tuple[str, ...]
) -> tuple[str, str, tuple[int, ...]]:
    """The upsert of one row as SQLite text, its VALUES group (repeated, one per row), and where
    each of its parameters is in a row of ``names``."""
    cache_key = (table.name, "|", *keys, "|", *columns, "|", *names)
    if cache_key not in _SQLITE_SQL:
        statement = on_conflict(sqlite.insert(table), table, keys, columns)
        compiled = statement.returning(*(table.c[k] for k in keys)).compile(
            dialect=conn.dialect, column_keys=list(names)
        )
        parameters = tuple(compiled.positiontup or ())
        if sorted(parameters) != sorted(names):
            raise RuntimeError(f"upsert of {table.name}: parameters {parameters}, not {names}")
        group = "(" + ", ".join("?" * len(names)) + ")"
        sql = str(compiled)
        if sql.count(group) != 1:
            raise RuntimeError(f"upsert of {table.name}: no single VALUES group in {sql!r}")
        _SQLITE_SQL[cache_key] = (sql, group, tuple(names.index(p) for p in parameters))
    return _SQLITE_SQL[cache_key]


def _sqlite_upsert(
    conn: Connection,
    table: Table,
    keys: tuple[str, ...],
    columns: tuple[str, ...],
    names: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
) -> list[tuple[Any, ...]]:
    single, group, order = _sqlite_sql(conn, table, keys, columns, names)
    values = _convert(conn, table, names, rows)
    changed: list[tuple[Any, ...]] = []
    for start in range(0, len(values), SQLITE_ROWS_PER_STATEMENT):
        chunk = values[start : start + SQLITE_ROWS_PER_STATEMENT]
        sql = single.replace(group, ", ".join([group] * len(chunk)), 1)
        result = conn.exec_driver_sql(sql, tuple(row[i] for row in chunk for i in order))
        changed.extend(tuple(r) for r in result)
    return changed


def _copy_upsert(
    conn: Connection,
    table: Table,
    keys: tuple[str, ...],
    columns: tuple[str, ...],
    names: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
) -> list[tuple[Any, ...]]:
    """COPY into a temporary table shaped like ``table``, then one INSERT … SELECT upsert."""
    staging = f"lmsbridge_staging_{uuid.uuid4().hex[:12]}"
    column_list = ", ".join(f'"{c}"' for c in names)
    conn.execute(text(f'CREATE TEMPORARY TABLE "{staging}" (LIKE "{table.name}") ON COMMIT DROP'))
    statement = f'COPY "{staging}" ({column_list}) FROM STDIN'
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(statement) as copy:
            for row in _convert(conn, table, names, rows):
                copy.write_row(row)
    except conn.dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy raises for its own statements
        raise DBAPIError.instance(statement, None, exc, conn.dialect.loaded_dbapi.Error) from exc
    finally:
        cursor.close()
    staged = table_clause(staging, *(column(c) for c in names))
    moved = postgresql.insert(table).from_select(list(names), select(*(staged.c[c] for c in names)))
    upsert = on_conflict(moved, table, keys, columns).returning(*(table.c[k] for k in keys))
    changed = [tuple(r) for r in conn.execute(upsert)]
    conn.execute(text(f'DROP TABLE "{staging}"'))  # not left for the rest of the transaction
    return changed
