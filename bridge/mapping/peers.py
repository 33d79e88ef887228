"""Where a person's latest KPI value falls within a peer group, for percentile triggers.

Built once per evaluation from the store (one query per metric), so ranking a person costs a
binary search rather than a scan of their department.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable
from functools import partial

from sqlalchemy import Connection, func, select

from bridge.kept import Kept, store_of
from bridge.records import Person
from bridge.store import schema as t
from bridge.store.ingest import version

GROUP_FIELDS = {"department": "department", "job_title": "job_title", "location": "location"}


def _group_key(person: Person, group: str) -> str | None:
    if group == "everyone":
        return ""
    value = getattr(person, GROUP_FIELDS[group])
    return value.casefold() if value else None


# Ranks only change when a metric's data or the people change: ingest bumps a version for each,
# and the ranks built at the versions of now are kept until one moves.
_ranks: Kept[tuple[dict[str, float], dict[tuple[str, str], dict[str, list[float]]]]] = Kept(size=64)


class PeerRanks:
    def __init__(self) -> None:
        self._latest: dict[str, dict[str, float]] = {}
        self._groups: dict[tuple[str, str], dict[str, list[float]]] = {}

    @classmethod
    def load(cls, conn: Connection, wanted: Iterable[tuple[str, str]]) -> PeerRanks:
        """Latest-period values for each (metric, peer group) pair some mapping ranks by.

        One query per metric reads every value of its latest period with the people's groups.
        """
        ranks = cls()
        groups_by_metric: dict[str, set[str]] = defaultdict(set)
        for metric, group in wanted:
            groups_by_metric[metric].add(group)
        for metric, groups in sorted(groups_by_metric.items()):
            kpis, people = version(conn, f"kpi:{metric}"), version(conn, "people")
            latest, grouped = _ranks.get(
                (store_of(conn.engine), metric, frozenset(groups)),
                (kpis, people) if kpis and people else None,
                partial(cls._load_metric, conn, metric, groups),
            )
            ranks._latest[metric] = latest
            ranks._groups.update(grouped)
        return ranks

    @staticmethod
    def _load_metric(
        conn: Connection, metric: str, groups: set[str]
    ) -> tuple[dict[str, float], dict[tuple[str, str], dict[str, list[float]]]]:
        """One query reads every value of the metric's latest period, with the people's groups."""
        m, p = t.measurements, t.people
        latest_start = conn.execute(select(func.max(m.c.period_start)).where(m.c.metric == metric)).scalar()
        rows = conn.execute(
            select(m.c.person_id, m.c.value, p.c.department, p.c.job_title, p.c.location)
            .select_from(m.join(p, p.c.person_id == m.c.person_id))
            .where(m.c.metric == metric, m.c.period_start == latest_start, p.c.active)
        ).all()
        latest = {r.person_id: r.value for r in rows}
        by_group: dict[tuple[str, str], dict[str, list[float]]] = {}
        for group in groups:
            grouped: dict[str, list[float]] = defaultdict(list)
            for row in rows:
                name = "" if group == "everyone" else getattr(row, GROUP_FIELDS[group])
                if name is not None:
                    grouped[name.casefold()].append(row.value)
            by_group[(metric, group)] = {k: sorted(v) for k, v in grouped.items()}
        return latest, by_group

    def place(
        self, metric: str, group: str, person: Person, higher_is_better: bool
    ) -> tuple[int, int, int] | None:
        """(peers doing worse, peers doing better, group size), or None without a latest value."""
        value = self._latest.get(metric, {}).get(person.person_id)
        key = _group_key(person, group)
        if value is None or key is None:
            return None
        peers = self._groups.get((metric, group), {}).get(key, [])
        below, above = bisect_left(peers, value), len(peers) - bisect_right(peers, value)
        return (below, above, len(peers)) if higher_is_better else (above, below, len(peers))
