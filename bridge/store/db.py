"""Engines and migrations. SQLite (WAL) is the embedded default; PostgreSQL runs replicas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from bridge import private_files
from bridge.errors import StoreError
from bridge.log import redact_text

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlite_file_missing(url: str) -> bool:
    """Whether ``url`` names a SQLite file that does not exist yet (a state never set up);
    connecting would create it, which a read-only command must not do."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False
    database = parsed.database or ""
    return (
        parsed.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not Path(database).exists()
    )


def make_engine(url: str, echo: bool = False) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"store.url is not a database URL: {redact_text(url)!r}") from None
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            private_files.create_private(Path(database))
        # A small statement cache: SQLite keeps each prepared statement's program in native
        # memory, and batched inserts make large ones (128 of them cost ~250 MB at 50k learners).
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False, "cached_statements": 16}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    # Take over transaction control from pysqlite so BEGIN is emitted when SQLAlchemy asks
    # (the documented recipe); WAL lets the ops endpoint read while the daemon writes.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    try:
        command.upgrade(alembic_config(engine), revision)
    except OperationalError as exc:
        raise StoreError(f"cannot migrate the database: {redact_text(str(exc.orig))}") from None


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config(create_engine("sqlite://"))).get_current_head()


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreError(f"the database cannot be reached: {redact_text(str(exc))}") from None


def require_current(engine: Engine) -> None:
    """Refuse to run against a database whose schema is not at the code's migration head."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise StoreError(
            f"the database schema is at {current or 'nothing'}, this version needs {head}: "
            "run `lmsbridge db upgrade`"
        )
