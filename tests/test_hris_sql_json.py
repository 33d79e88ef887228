"""The SQL feed against a real PostgreSQL table, and the JSON feed against a local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import create_engine, text

from bridge.errors import SourceError
from bridge.ports import Batch, PullContext, PullScope
from bridge.records import Measurement, Person
from connectors.hris.http_json import JsonOptions, JsonSource
from connectors.hris.sql import SqlOptions, SqlSource

NOW = datetime(2026, 11, 3, tzinfo=UTC)


def ctx(cursors: dict[str, str | None] | None = None) -> PullContext:
    return PullContext(cursors=cursors or {}, scope=PullScope(), now=NOW)


def records(batches: list[Batch], kind: type) -> list[Any]:
    return [r for b in batches for r in b.records if isinstance(r, kind)]


@pytest.mark.postgres
def test_sql_feed_reads_a_view_incrementally_by_updated_at(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS hr_people, hr_kpis"))
        conn.execute(
            text(
                "CREATE TABLE hr_people (emp_id text, emp_no text, first text, mgr text, dept text, hired date, status text)"
            )
        )
        conn.execute(
            text(
                "CREATE TABLE hr_kpis (emp_no text, kpi text, starts date, ends date, val text, updated_at timestamptz)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO hr_people VALUES ('P1','007','Ana','008','Sales','2020-01-01','active'), ('P2','008','Ben',NULL,'Sales','2019-01-01','active')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO hr_kpis VALUES ('007','win_rate','2026-09-01','2026-09-30',31.5,'2026-10-02T00:00Z'), ('008','win_rate','2026-09-01','2026-09-30','x','2026-10-02T00:00Z')"
            )
        )
    options = SqlOptions(
        url=postgres_url,
        people="SELECT emp_id AS person_id, emp_no AS employee_number, first AS first_name, mgr AS manager, dept AS department, hired AS start_date, status AS active FROM hr_people",
        measurements="SELECT emp_no AS person, kpi AS metric, starts AS period_start, ends AS period_end, val AS value, updated_at FROM hr_kpis WHERE updated_at > :since ORDER BY updated_at",
    )
    source = SqlSource("dw", options)
    first = list(source.pull(ctx()))
    people = {p.person_id: p for p in records(first, Person)}
    assert people["P1"].manager_id == "P2" and people["P1"].start_date == date(2020, 1, 1)
    (kpi,) = records(first, Measurement)
    assert (kpi.person_id, kpi.value) == ("P1", 31.5)
    assert [r.reason for b in first for r in b.rejected] == ["value 'x' is not a number"]
    cursor = next(b.cursor for b in first if b.stream == "measurements")
    assert cursor == "2026-10-02T00:00:00+00:00"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO hr_kpis VALUES ('007','win_rate','2026-10-01','2026-10-31',29,'2026-11-02T00:00Z')"
            )
        )
    second = list(SqlSource("dw", options).pull(ctx({"measurements": cursor})))
    assert [(m.period_start.month, m.value) for m in records(second, Measurement)] == [(10, 29.0)]
    engine.dispose()


def test_sql_feed_failure_is_a_clear_error(tmp_path: Any) -> None:
    options = SqlOptions(url=f"sqlite:///{tmp_path / 'hr.db'}", people="SELECT * FROM missing_table")
    with pytest.raises(SourceError, match="the people query failed"):
        list(SqlSource("dw", options).pull(ctx()))


PEOPLE = [
    {
        "id": f"E{i}",
        "number": f"{i:04d}",
        "name": {"first": f"N{i}"},
        "work": {"department": "Ops", "manager": "0001" if i > 1 else None},
        "email": f"p{i}@x.org",
    }
    for i in range(1, 8)
]


@pytest.fixture
def api() -> Iterator[tuple[str, dict[str, Any]]]:
    seen: dict[str, Any] = {"requests": [], "fail_next": 1}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            seen["requests"].append((parts.path, query, self.headers.get("Authorization")))
            if self.headers.get("Authorization") != "Bearer hr-api-token-42":
                self._json(401, {"error": "unauthorised"})
                return
            if parts.path == "/v1/people" and seen["fail_next"]:
                seen["fail_next"] -= 1
                self.send_response(503)
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if parts.path == "/v1/people":
                start = int(query.get("cursor", ["0"])[0])
                limit = int(query["limit"][0])
                page = PEOPLE[start : start + limit]
                nxt = str(start + limit) if start + limit < len(PEOPLE) else None
                self._json(200, {"data": {"items": page}, "next_cursor": nxt})
            elif parts.path == "/v1/kpis":
                self._json(
                    200,
                    {
                        "data": {
                            "items": [
                                {
                                    "emp": "0002",
                                    "kpi": "csat",
                                    "period": {"from": "2026-10-01", "to": "2026-10-31"},
                                    "score": 4.4,
                                }
                            ]
                        },
                        "next_cursor": None,
                    },
                )

        def _json(self, status: int, body: Any) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def options(url: str, token: str = "hr-api-token-42") -> JsonOptions:
    return JsonOptions.model_validate(
        {
            "base_url": url,
            "auth": "bearer",
            "token": token,
            "paging": {"style": "cursor", "page_size": 3},
            "people": {
                "path": "/v1/people",
                "items": "data.items",
                "fields": {
                    "person_id": "id",
                    "employee_number": "number",
                    "first_name": "name.first",
                    "email": "email",
                    "department": "work.department",
                    "manager": "work.manager",
                },
            },
            "measurements": {
                "path": "/v1/kpis",
                "items": "data.items",
                "fields": {
                    "person": "emp",
                    "metric": "kpi",
                    "period_start": "period.from",
                    "period_end": "period.to",
                    "value": "score",
                },
            },
        }
    )


def test_json_feed_pages_by_cursor_and_retries_a_503(api: tuple[str, dict[str, Any]]) -> None:
    url, seen = api
    batches = list(JsonSource("hrapi", options(url), max_wait=0.01).pull(ctx()))
    people = {p.person_id: p for p in records(batches, Person)}
    assert len(people) == 7 and people["E3"].manager_id == "E1" and people["E3"].department == "Ops"
    (kpi,) = records(batches, Measurement)
    assert (kpi.person_id, kpi.value, kpi.period_end) == ("E2", 4.4, date(2026, 10, 31))
    cursors = [q.get("cursor", ["-"])[0] for path, q, _ in seen["requests"] if path == "/v1/people"]
    assert cursors == ["-", "-", "3", "6"]  # the first try got a 503 and was retried


def test_json_feed_bad_credentials_fail_clearly_without_the_token(api: tuple[str, dict[str, Any]]) -> None:
    url, _seen = api
    with pytest.raises(SourceError) as info:
        list(JsonSource("hrapi", options(url, token="wrong-secret-99"), max_wait=0.01).pull(ctx()))
    assert "refused the credentials (HTTP 401)" in str(info.value) and "wrong-secret-99" not in str(
        info.value
    )


def test_sql_people_snapshot_carries_its_limit_and_an_incremental_query_is_none(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'hr.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE w (id text, no text, tz text, updated_at text)"))
        conn.execute(
            text("INSERT INTO w VALUES ('P1','7','Mars/Olympus','2026-10-01'), ('P2','7',NULL,'2026-10-01')")
        )
    full = "SELECT id AS person_id, no AS employee_number, tz AS timezone FROM w"
    (batch,) = list(SqlSource("dw", SqlOptions(url=url, people=full, max_retire_percent=5)).pull(ctx()))
    assert (batch.snapshot_of, batch.max_retire_percent, batch.rows_read) == ("people", 5, 2)
    assert [(p.person_id, p.timezone) for p in records([batch], Person)] == [("P1", None)]
    assert {r.location: r.reason for r in batch.rejected} == {
        "people row 1 (P1)": "time zone 'Mars/Olympus' is not an IANA name such as Europe/London "
        "(the person was loaded with the default time zone)",
        "people row 2 (P2)": "employee number '7' already belongs to P1 (people row 1 (P1))",
    }
    since = full + " WHERE updated_at > :since"
    (batch,) = list(SqlSource("dw", SqlOptions(url=url, people=since)).pull(ctx()))
    assert batch.snapshot_of is None and batch.max_retire_percent is None
    engine.dispose()
