"""Shared fixtures: stores on SQLite and PostgreSQL, and a clean clock.

PostgreSQL tests run against ``LMSBRIDGE_TEST_POSTGRES_URL`` (default: the CI server at
127.0.0.1:5432, database ``test``). Each test session creates its own scratch database there
and drops it at the end, so several runs can share one server. They fail, never skip, when
the server is missing: CI must exercise them.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import structlog
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from bridge import clock, log
from bridge.store import schema
from bridge.store.db import make_engine, upgrade

POSTGRES_URL = os.environ.get(
    "LMSBRIDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def _reset_global_state() -> Iterator[None]:
    clock.set_now(None)
    log.secrets.clear()
    yield
    clock.set_now(None)
    log.secrets.clear()
    # A test that configured logging onto its own (now closed) stream must not leak it.
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database for this test session."""
    admin_url = make_url(POSTGRES_URL)
    name = f"lmsbridge_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - environment problem, reported loudly
        pytest.fail(f"PostgreSQL at {admin_url.render_as_string()} is required for these tests: {exc}")
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def _postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _truncate(engine: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in reversed(schema.metadata.sorted_tables))
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine(_postgres_engine: Engine) -> Engine:
    _truncate(_postgres_engine)
    return _postgres_engine


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """A migrated, empty store; every test using it runs once on SQLite and once on PostgreSQL."""
    name = "sqlite_engine" if request.param == "sqlite" else "postgres_engine"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
def seeded(sqlite_engine: Engine) -> Engine:
    """The dashboard's seeded store (tests/browser/store.py) with the clock at its NOW."""
    from tests.browser.store import NOW, seed

    seed(sqlite_engine)
    clock.set_now(NOW)
    return sqlite_engine


@pytest.fixture
def local(seeded: Engine) -> Iterator[OpsServer]:
    """The dashboard over real HTTP on the seeded store, without a token."""
    from tests.browser.store import serve

    ops = serve(seeded, "127.0.0.1:0", None)
    yield ops
    ops.stop()


SIM_TOKEN = "sim-token-0123456789abcdef"


@pytest.fixture
def moodle() -> Iterator[Running]:
    """A Moodle simulator on 127.0.0.1 with the seed-1 organisation (real HTTP)."""
    from connectors.moodle.simulator import start_in_thread

    handle = start_in_thread(SIM_TOKEN)
    yield handle
    handle.stop()


if TYPE_CHECKING:
    from bridge.ops import OpsServer
    from connectors.moodle.sim.server import Running
