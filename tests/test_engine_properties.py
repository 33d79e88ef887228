"""Properties of the engine: deterministic, independent of input order, idempotent."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from bridge.act import Actor
from bridge.decide import evaluate
from bridge.mapping.loader import MappingSet
from bridge.records import LmsUser, Measurement, Person, Record
from bridge.store.db import make_engine
from bridge.store.schema import metadata
from tests.seed import CS101, link, store, write_mapping
from tests.seed import settings as bridge_settings

NOW = datetime(2026, 11, 3, 10, tzinfo=UTC)
DEPARTMENTS = ["Customer Service", "Sales", "Warehouse Operations"]

MAPPINGS = {
    "low": """\
id: low
title: low csat
audience: {department: Customer Service}
when: {kpi: {metric: csat, below: THRESHOLD}}
recommend: [{site: moodle, course: CS-101}]
schedule: {days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
""",
    "trend": """\
id: trend
title: falling csat
when:
  any:
    - kpi_trend: {metric: csat, fell_by: 0.5, periods: 2}
    - kpi_percentile: {metric: csat, bottom_percent: 20, peer_group: everyone, min_peers: 3}
recommend: [{site: moodle, course: CS-101}]
schedule: {days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
""",
}

person = st.tuples(
    st.sampled_from(DEPARTMENTS),
    st.lists(
        st.floats(min_value=1, max_value=5, allow_nan=False).map(lambda v: round(v, 1)),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)


def records_for(people: list[tuple[str, list[float], bool]]) -> list[Record]:
    records: list[Record] = [CS101]
    for i, (department, values, has_account) in enumerate(people):
        pid = f"P{i:03d}"
        records.append(Person(pid, first_name=pid, department=department, timezone="UTC"))
        for month, value in enumerate(values):
            start = date(2026, 6 + month, 1)
            records.append(Measurement(pid, "csat", value, start, start + timedelta(days=27)))
        if has_account:
            records.append(LmsUser("moodle", 100 + i, username=pid.lower()))
    return records


def fresh(directory: Path, records: list[Record], accounts: list[int]) -> Engine:
    engine = make_engine(f"sqlite:///{directory / 'state.db'}")
    metadata.create_all(engine)
    store(engine, *records)
    for i in accounts:
        link(engine, f"P{i:03d}", 100 + i)
    return engine


def decide(engine: Engine, mappings: MappingSet) -> list[tuple[str, str, str, tuple[str, ...]]]:
    report = evaluate(engine, mappings, bridge_settings(), NOW, persist=Actor(mappings, bridge_settings()))
    return sorted((d.person_id, d.mapping_id, d.outcome, d.facts) for d in report.decisions)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    people=st.lists(person, min_size=1, max_size=12),
    threshold=st.sampled_from(["target", "3.5", "4"]),
    order=st.randoms(use_true_random=False),
)
def test_decisions_are_deterministic_order_independent_and_idempotent(
    people: list[tuple[str, list[float], bool]], threshold: str, order: object
) -> None:
    accounts = [i for i, p in enumerate(people) if p[2]]
    records = records_for(people)
    shuffled = list(records)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as raw:
        root = Path(raw)
        mappings = MappingSet()
        for name, text in MAPPINGS.items():
            mappings = write_mapping(root / "mappings", name, text.replace("THRESHOLD", threshold))
        (root / "a").mkdir()
        (root / "b").mkdir()
        first = fresh(root / "a", records, accounts)
        second = fresh(root / "b", shuffled, list(reversed(accounts)))
        decided = decide(first, mappings)
        assert decided == decide(second, mappings)
        # Re-running on unchanged data, even as a full evaluation, opens nothing new.
        again = evaluate(
            first,
            mappings,
            bridge_settings(),
            NOW + timedelta(hours=1),
            full=True,
            persist=Actor(mappings, bridge_settings()),
        )
        assert [d for d in again.decisions if d.outcome == "open"] == []
        first.dispose()
        second.dispose()
