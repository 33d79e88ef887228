"""HR feeds' paging through bridge.pagination and the SQL feed's cursor through bridge.incremental:
a JSON feed that gives its total is read to the end however it caps its pages; the SQL feed's
:since cursor is read in one place and never passes now."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from sqlalchemy import create_engine, text

from bridge.errors import SourceError
from bridge.ports import PullContext, PullScope
from bridge.records import Measurement, Person
from connectors.hris.http_json import JsonOptions, JsonSource
from connectors.hris.sql import SqlOptions, SqlSource

HR_API = "http://hr.test"
NOW = datetime(2026, 11, 3, 10, tzinfo=UTC)
PEOPLE = [{"id": f"E{i}"} for i in range(1, 6)]
SERVER_CAP = 2  # the API gives at most 2 items a page, whatever limit it is asked for


def ctx(cursors: dict[str, str | None] | None = None, now: datetime = NOW) -> PullContext:
    return PullContext(cursors=cursors or {}, scope=PullScope(), now=now)


def json_feed(style: str, total: str = "meta.total") -> JsonSource:
    options = JsonOptions.model_validate(
        {
            "base_url": HR_API,
            "paging": {"style": style, "page_size": 3, "total": total},
            "people": {"path": "/v1/people", "items": "data", "fields": {"person_id": "id"}},
        }
    )
    return JsonSource("hrapi", options, max_wait=0.0)


def capped_pages(request: Any) -> tuple[int, dict[str, str], str]:
    query = {k: int(v[0]) for k, v in parse_qs(urlsplit(request.url).query).items()}
    size = min(query["limit"], SERVER_CAP)
    start = query["offset"] if "offset" in query else (query["page"] - 1) * size
    body = {"data": PEOPLE[start : start + size], "meta": {"total": str(len(PEOPLE))}}
    return 200, {"Content-Type": "application/json"}, json.dumps(body)


@pytest.mark.parametrize("style", ["offset", "page"])
@responses.activate
def test_a_feed_that_gives_its_total_is_read_to_the_end_though_it_caps_its_pages(style: str) -> None:
    responses.add_callback(responses.GET, HR_API + "/v1/people", callback=capped_pages)
    (batch,) = list(json_feed(style).pull(ctx()))
    assert [p.person_id for p in batch.records if isinstance(p, Person)] == ["E1", "E2", "E3", "E4", "E5"]
    assert len(responses.calls) == 3  # 2 + 2 + 1: the total, not a short page, says it is over


@responses.activate
def test_a_total_that_is_no_number_fails_the_feed_naming_the_setting() -> None:
    responses.get(HR_API + "/v1/people", json={"data": [{"id": "E1"}], "meta": {"total": "many"}})
    with pytest.raises(
        SourceError,
        match=r"^feed 'hrapi': /v1/people answered without a whole number at 'meta.total' \(paging.total\)",
    ):
        list(json_feed("offset").pull(ctx()))


def sql_feed(url: str) -> SqlSource:
    query = "SELECT emp AS person, kpi AS metric, starts AS period_start, ends AS period_end, val AS value, updated_at FROM kpis WHERE updated_at > :since ORDER BY updated_at"
    return SqlSource("dw", SqlOptions(url=url, measurements=query))


def test_an_unreadable_sql_cursor_is_an_error_naming_the_feed_and_stream(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        list(sql_feed(f"sqlite:///{tmp_path / 'hr.db'}").pull(ctx({"measurements": "last Tuesday"})))
    assert str(caught.value).startswith(
        "feed 'dw': the stored cursor of stream 'measurements' cannot be read ('last Tuesday'"
    )


@pytest.mark.postgres
def test_a_row_changed_in_the_future_does_not_hide_later_changes(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    insert = text("INSERT INTO kpis VALUES ('P1', 'csat', '2026-10-01', '2026-10-31', :val, :at)")
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS kpis"))
        conn.execute(
            text(
                "CREATE TABLE kpis (emp text, kpi text, starts date, ends date, val numeric, updated_at timestamptz)"
            )
        )
        # a warehouse writing local time (UTC+3) into a column read as UTC: three hours ahead
        conn.execute(insert, {"val": 4.0, "at": NOW + timedelta(hours=3)})
    first = list(sql_feed(postgres_url).pull(ctx()))
    cursor = first[-1].cursor
    assert cursor == NOW.isoformat()  # not three hours ahead
    with engine.begin() as conn:
        conn.execute(insert, {"val": 4.5, "at": NOW + timedelta(minutes=5)})
    later = list(sql_feed(postgres_url).pull(ctx({"measurements": cursor}, NOW + timedelta(minutes=10))))
    assert sorted(r.value for b in later for r in b.records if isinstance(r, Measurement)) == [4.0, 4.5]
    assert later[-1].cursor == (NOW + timedelta(minutes=10)).isoformat()
    engine.dispose()
