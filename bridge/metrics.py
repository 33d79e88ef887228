"""Prometheus metrics. Connectors record their HTTP calls here; the daemon serves them.

Counters and histograms live in this process; the outbox depth and last-success times are read
from the store at scrape time, so every replica reports the shared truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from bridge.operational_state import operational_state
from bridge.outbox import counts_by_state
from bridge.settings import DeliverySettings
from bridge.store import schema as t

registry = CollectorRegistry(auto_describe=True)


@dataclass(frozen=True)
class MetricInfo:
    name: str  # the family name; counters are exposed with `_total`, histograms with `_bucket` etc.
    type: str  # counter, histogram or gauge
    labels: tuple[str, ...]
    help: str


# Every metric this process exposes, for `lmsbridge config metrics` and deploy/README.md.
REFERENCE: list[MetricInfo] = []


def _counter(name: str, help: str, labels: list[str]) -> Counter:
    REFERENCE.append(MetricInfo(name, "counter", tuple(labels), help))
    return Counter(name, help, labels, registry=registry)


def _histogram(name: str, help: str, labels: list[str], buckets: tuple[float, ...]) -> Histogram:
    REFERENCE.append(MetricInfo(name, "histogram", tuple(labels), help))
    return Histogram(name, help, labels, registry=registry, buckets=buckets)


records_pulled = _counter(
    "lmsbridge_records_pulled", "Records pulled, by source and record kind.", ["source", "kind"]
)
rows_rejected = _counter("lmsbridge_rows_rejected", "Input rows rejected, by source.", ["source"])
lms_calls = _histogram(
    "lmsbridge_lms_call_seconds",
    "LMS web-service calls by site, function and outcome, with latency.",
    ["site", "function", "outcome"],
    (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
decisions = _counter(
    "lmsbridge_decisions", "Decisions taken, by mapping and outcome.", ["mapping", "outcome"]
)
actions_delivered = _counter(
    "lmsbridge_actions_delivered", "Delivery outcomes, by site and resulting state.", ["site", "state"]
)
delivery_latency = _histogram(
    "lmsbridge_delivery_latency_seconds",
    "Time from an action being due to it being sent.",
    [],
    (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)
stage_duration = _histogram(
    "lmsbridge_stage_duration_seconds",
    "Duration of each stage of a cycle (pull:<source>, decide, follow_up, deliver).",
    ["stage"],
    (0.1, 0.5, 1, 5, 15, 30, 60, 300, 900),
)


def _gauge(name: str, help: str, labels: list[str] | None = None) -> Callable[[], GaugeMetricFamily]:
    """A gauge read from the store at scrape time: listed in the reference, made fresh per scrape."""
    REFERENCE.append(MetricInfo(name, "gauge", tuple(labels or ()), help))
    return lambda: GaugeMetricFamily(name, help, labels=labels)


outbox_actions = _gauge("lmsbridge_outbox_actions", "Actions in the outbox by state.", ["state"])
last_success = _gauge(
    "lmsbridge_last_success_timestamp_seconds", "Last successful run of each source or stage.", ["name"]
)
consecutive_failures = _gauge(
    "lmsbridge_consecutive_failures", "Consecutive failures of each source or stage.", ["name"]
)
delivery_paused = _gauge(
    "lmsbridge_delivery_paused", "1 while delivery is paused (`lmsbridge pause` or delivery.paused)."
)
mappings_rejected = _gauge(
    "lmsbridge_mappings_rejected",
    "Problems in the mapping files the service last read and rejected (0: it runs what it read).",
)
deferred_actions = _gauge(
    "lmsbridge_deferred_actions", "Actions waiting deferred (sending hours, weekly cap)."
)
deferred_oldest = _gauge(
    "lmsbridge_deferred_oldest_queued_timestamp_seconds",
    "When the oldest deferred action was queued (absent when none waits).",
)


def reference_markdown() -> str:
    lines = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for info in REFERENCE:
        shown = {"counter": f"{info.name}_total", "histogram": f"{info.name}_bucket/_sum/_count"}
        labels = ", ".join(f"`{label}`" for label in info.labels)
        lines.append(
            f"| `{shown.get(info.type, info.name)}` | {info.type} | {labels} | {info.help.replace('|', '/')} |"
        )
    return "\n".join(lines)


class StoreCollector(Collector):
    """Outbox depth by state, each source's last success and the operational state (pause,
    rejected mappings, deferred backlog), read from the store on scrape."""

    def __init__(self, engine: Engine, delivery: DeliverySettings | None = None) -> None:
        self.engine = engine
        self.delivery = delivery or DeliverySettings()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth, success, failures = outbox_actions(), last_success(), consecutive_failures()
        paused, rejected = delivery_paused(), mappings_rejected()
        deferred, oldest = deferred_actions(), deferred_oldest()
        try:
            with self.engine.connect() as conn:
                current = operational_state(conn, self.delivery)
                for state, count in counts_by_state(conn).items():
                    depth.add_metric([state], count)
                for row in conn.execute(select(t.source_health)):
                    if row.last_success_at is not None:
                        success.add_metric([row.name], row.last_success_at.timestamp())
                    failures.add_metric([row.name], row.consecutive_failures)
        except SQLAlchemyError:
            return
        paused.add_metric([], 1 if current.pause.paused else 0)
        rejection = current.mappings_rejected
        rejected.add_metric([], len(rejection.problems) if rejection else 0)
        deferred.add_metric([], current.deferred.count)
        if current.deferred.oldest_queued_at is not None:
            oldest.add_metric([], current.deferred.oldest_queued_at.timestamp())
        yield from (depth, success, failures, paused, rejected, deferred, oldest)
