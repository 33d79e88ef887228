"""Totara's paged reads through bridge.pagination and its cursors through bridge.incremental:
a GraphQL cursor the site gave before stops the read, the replica reads changed rows by keyset in
short queries, and a replica cursor never passes now."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import responses
from sqlalchemy import Engine, create_engine, event, insert

from bridge.errors import SourceError
from bridge.pagination import PagingError
from bridge.ports import Batch, PullContext, PullScope
from bridge.records import Completion
from connectors.totara import replica
from connectors.totara.graphql import GraphQLClient
from connectors.totara.replica import ReplicaReader
from connectors.totara.source import TotaraSource

SITE = "https://learn.example.org"
NOW = datetime(2026, 11, 3, 10, tzinfo=UTC)
WHEN = int(NOW.timestamp())


class Tokens:
    def token(self) -> str:
        return "access-token"

    def invalidate(self, token: str) -> None:
        pass


@responses.activate
def test_a_graphql_cursor_the_site_gave_before_stops_the_read_naming_the_query() -> None:
    cursors = ["c1", "c2", "c1", None]  # a site that would page in a circle
    for cursor in cursors:
        page = {"items": [{"id": 1}], "total": 4, "next_cursor": cursor}
        responses.post(f"{SITE}/api/graphql.php", json={"data": {"core_user_users": page}})
    client = GraphQLClient("learn", SITE, Tokens(), requests.Session())  # type: ignore[arg-type]
    with pytest.raises(
        PagingError, match=r"^Totara site 'learn': users pointed back to a page it already gave \('c1'\)"
    ):
        list(client.pages("users"))
    sent = [
        json.loads(call.request.body or b"{}")["variables"]["query"]["pagination"]["cursor"]
        for call in responses.calls
    ]
    assert sent == ["", "c1", "c2"]


def replica_db(tmp_path: Path, times: list[int]) -> tuple[ReplicaReader, Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'replica.db'}")
    reader = ReplicaReader("learn", "", engine=engine)
    reader.t.metadata.create_all(engine)
    add_completions(reader, times)
    return reader, engine


def add_completions(reader: ReplicaReader, times: list[int], first_user: int = 100) -> None:
    rows = [{"userid": first_user + n, "course": 7, "timecompleted": t} for n, t in enumerate(times)]
    with reader.engine.begin() as conn:
        conn.execute(insert(reader.t.course_completions), rows)


def test_the_replica_reads_changed_rows_by_keyset_in_short_queries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replica, "PAGE", 2)
    reader, engine = replica_db(
        tmp_path, [WHEN - 300, WHEN - 300, WHEN - 300, WHEN - 200, WHEN - 200, WHEN - 100, WHEN]
    )
    queries: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: queries.append(a[2]))
    pages = list(reader.course_completions(WHEN - 300))
    users = [r.user_id for records, _ in pages for r in records if isinstance(r, Completion)]
    assert users == [103, 104, 105, 106]  # after WHEN - 300: every row once, in time order
    assert [high for _, high in pages] == [WHEN - 200, WHEN]
    assert len(queries) == 3 and all("LIMIT" in q for q in queries)  # 2 + 2 + an empty page
    queries.clear()
    everything = [r for records, _ in reader.course_completions(0) for r in records]
    assert len(everything) == 7 and len(queries) == 4  # rows sharing a time across pages: none lost


def source(reader: ReplicaReader) -> TotaraSource:
    return TotaraSource("learn", api=None, legacy=None, replica=reader, lookback=timedelta(0))


def completions(batches: list[Batch]) -> tuple[list[int], str | None]:
    stream = [b for b in batches if b.stream == "completions"]
    users = [r.user_id for b in stream for r in b.records if isinstance(r, Completion)]
    return users, stream[-1].cursor


def test_a_replica_row_stamped_in_the_future_does_not_hide_later_rows(tmp_path: Path) -> None:
    reader, _ = replica_db(tmp_path, [WHEN - 60, WHEN + 3 * 86400])  # a bad import, a clock ahead
    users, cursor = completions(list(source(reader).pull(PullContext({}, PullScope(), NOW))))
    assert users == [100, 101] and cursor == str(WHEN)  # held at now, not three days ahead
    add_completions(reader, [WHEN + 60], first_user=200)
    later = PullContext({"completions": cursor}, PullScope(), NOW + timedelta(minutes=2))
    users, cursor = completions(list(source(reader).pull(later)))
    assert users == [200, 101] and cursor == str(WHEN + 120)


def test_an_unreadable_replica_cursor_is_an_error_naming_the_site_and_stream(tmp_path: Path) -> None:
    reader, _ = replica_db(tmp_path, [WHEN])
    with pytest.raises(SourceError) as caught:
        list(source(reader).pull(PullContext({"completions": "2026-11-03"}, PullScope(), NOW)))
    assert str(caught.value).startswith(
        "Totara site 'learn': the stored cursor of stream 'completions' cannot be read ('2026-11-03'; "
        "expected whole seconds since 1970)"
    )
