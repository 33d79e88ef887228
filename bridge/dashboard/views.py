"""The dashboard's pages, added to the operations endpoint behind its token check.

Pages are rendered on the server with Jinja2 (autoescaped: mapping titles, error messages and
HR ids are data, never markup). Static assets are a fixed list of files shipped in the package,
read once at start-up and served from memory under their exact paths, so no request path ever
reaches the file system. Each page reads the store when it is requested; nothing is cached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy import Connection, Engine

from bridge import clock, health, history, impact
from bridge.dashboard import charts, people, queries, wording
from bridge.errors import BridgeError
from bridge.facts import load_people
from bridge.log import redact_text
from bridge.mapping.loader import MappingSet
from bridge.operational_state import deferred_backlog, mappings_rejection, pause_state
from bridge.ops import OpsServer, Response, Route
from bridge.records import Person
from bridge.settings import Settings

PREFIX = "/dashboard"
HTML = "text/html; charset=utf-8"
CSV = "text/csv; charset=utf-8"
# Every file the dashboard serves, with its content type. Nothing outside this list is served.
STATIC_FILES = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "chart.umd.js": "text/javascript; charset=utf-8",
}
Query = dict[str, list[str]]
COMPARISON_LABELS = {
    "treated_vs_holdout": "Recommended vs holdout (intention to treat)",
    "contacted_vs_holdout": "Delivered only: contacted vs holdout (secondary)",
    "completers_vs_non": "Completed vs not completed",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str


def load_static() -> dict[str, StaticFile]:
    folder = resources.files("bridge.dashboard") / "static"
    return {name: StaticFile((folder / name).read_bytes(), ctype) for name, ctype in STATIC_FILES.items()}


class Dashboard:
    """The read-only admin pages: overview, mappings, one page per mapping, outbox.

    ``mappings`` and ``sources`` are callables so the pages follow the daemon when it reloads
    its mapping files. Each page shows paused delivery and a rejected mapping set (the daemon
    keeps running on its last good set) in a banner, read from the store as `status` and
    /readyz read them (bridge.operational_state), so every replica's pages agree.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        mappings: Callable[[], MappingSet],
        sources: Callable[[], list[str]],
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.mappings = mappings
        self.sources = sources
        self.static = load_static()
        self.env = Environment(
            loader=PackageLoader("bridge.dashboard", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            when=when, day=day, ago=ago, pct=pct, num=num, signed=signed, seconds=seconds, redact=redact_text
        )
        self.env.globals.update(
            prefix=PREFIX,
            cohort_label=charts.cohort_label,
            comparison_labels=COMPARISON_LABELS,
            detectable=wording.detectable,
            effect_in_words=wording.effect_in_words,
        )

    def install(self, ops: OpsServer) -> None:
        for path, route in self.routes().items():
            ops.add_page(path, route)

    def routes(self) -> dict[str, Route]:
        pages: dict[str, Route] = {
            PREFIX: self.overview,
            f"{PREFIX}/": self.overview,
            f"{PREFIX}/mappings": self.mapping_list,
            f"{PREFIX}/mapping": self.mapping_page,
            f"{PREFIX}/outbox": self.outbox,
            f"{PREFIX}/people": self.people_list,
            f"{PREFIX}/people.csv": self.people_csv,
            f"{PREFIX}/person": self.person_page,
            f"{PREFIX}/manager": self.manager_page,
        }
        for name, static in self.static.items():
            pages[f"{PREFIX}/static/{name}"] = partial(_serve, static)
        return pages

    # ------------------------------------------------------------------ pages

    def overview(self, _query: Query) -> Response:
        now = clock.now()
        kinds = {**{n: "feed" for n in self.settings.feeds}, **{n: "site" for n in self.settings.sites}}
        sources = queries.sources(self.sources(), kinds, health.all_health(self.engine), now)
        mapping_set = self.mappings()
        with self.engine.connect() as conn:
            jobs = queries.job_runs(conn)
            outbox = queries.outbox_counts(conn)
            summaries = queries.mapping_summaries(conn, mapping_set)
        return self._render(
            "overview.html",
            page="overview",
            now=now,
            sources=[s for s in sources if s.kind != "stage"],
            stages=[s for s in sources if s.kind == "stage"],
            jobs=jobs,
            outbox=outbox,
            open_recommendations=sum(s.open for s in summaries),
            enabled_mappings=sum(1 for m in mapping_set.mappings if m.enabled),
            mappings_total=len(mapping_set.mappings),
        )

    def mapping_list(self, _query: Query) -> Response:
        now = clock.now()
        mapping_set = self.mappings()
        # Verdicts, counts and effort from the computation `lmsbridge impact` reports: measured
        # mappings through it whole, the others through its reach and effort.
        try:
            measured = {r.mapping_id: r for r in impact.measure(self.engine, mapping_set, self.settings, now)}
            problem = None
        except BridgeError as exc:
            measured, problem = {}, redact_text(str(exc))
        with self.engine.connect() as conn:
            summaries = queries.mapping_summaries(conn, mapping_set)
            reaches = {
                s.mapping_id: _reach(conn, s.mapping_id, measured.get(s.mapping_id), now) for s in summaries
            }
        return self._render(
            "mappings.html",
            page="mappings",
            now=now,
            mappings=summaries,
            reaches=reaches,
            measured=measured,
            problem=problem,
        )

    def mapping_page(self, query: Query) -> Response:
        mapping_id = (query.get("id") or [""])[0]
        now = clock.now()
        mapping_set = self.mappings()
        with self.engine.connect() as conn:
            found = queries.mapping_summaries(conn, mapping_set, only=mapping_id) if mapping_id else []
        if not found:
            return self._render(
                "not_found.html", status=404, page="mappings", now=now, what=f"mapping {mapping_id!r}"
            )
        summary = found[0]
        impacts: list[impact.MappingImpact] = []
        problem = None
        mapping = mapping_set.get(mapping_id)
        if mapping is not None and mapping.measure is not None:
            try:
                impacts = impact.measure(self.engine, mapping_set, self.settings, now, mapping_id=mapping_id)
            except BridgeError as exc:
                problem = redact_text(str(exc))
        result = impacts[0] if impacts else None
        mappings = mapping_set.mappings
        with self.engine.connect() as conn:
            reached, effort = _reach(conn, mapping_id, result, now)
            open_now = people.people_page(
                conn, people.PeopleFilter(mapping=mapping_id, state="open"), mappings, now
            )
            overdue = people.count(
                conn, people.PeopleFilter(mapping=mapping_id, state="overdue"), mappings, now
            )
            first_opened = queries.first_opened(conn, mapping_id, now)
        chart_data: dict[str, Any] = {}
        if result is not None and any(c.n for c in result.cohorts.values()):
            chart_data["before-after"] = charts.before_after(
                result, self._metric_label(result.metric), self._target(result.metric)
            )
        if result is not None and result.time_to_competency is not None and result.time_to_competency.times:
            # The curve runs to today: people still in progress are followed up to now.
            until = (now - first_opened).total_seconds() / 86400.0 if first_opened else 0.0
            chart_data["time-to-competency"] = charts.time_to_competency(result.time_to_competency, until)
        return self._render(
            "mapping.html",
            page="mappings",
            now=now,
            mapping=mapping,
            summary=summary,
            impact=result,
            reach=reached,
            effort=effort,
            cohort_meanings=impact.COHORT_MEANINGS,
            problem=problem,
            metric_label=self._metric_label(result.metric) if result else "",
            headline_label=COMPARISON_LABELS.get(result.headline, result.headline) if result else "",
            chart_data=chart_data,
            holdout_configured=bool(mapping and mapping.measure and mapping.measure.holdout_percent)
            or reached.holdout > 0,
            open_now=open_now,
            overdue=overdue,
        )

    def outbox(self, _query: Query) -> Response:
        with self.engine.connect() as conn:
            counts = queries.outbox_counts(conn)
            failures = queries.recent_failures(conn)
            reasons = queries.not_sent_reasons(conn)
            waiting = queries.queued(conn)
            waiting_reasons = queries.queued_reasons(conn)
            backlog = deferred_backlog(conn)
        return self._render(
            "outbox.html",
            page="outbox",
            now=clock.now(),
            counts=counts,
            total=sum(n for _, n in counts),
            failures=failures,
            limit=queries.RECENT_FAILURES,
            reasons=reasons,
            queued=waiting,
            queued_reasons=waiting_reasons,
            queued_limit=queries.QUEUED_SHOWN,
            backlog=backlog,
        )

    def people_list(self, query: Query) -> Response:
        now = clock.now()
        mappings = self.mappings().mappings
        try:
            chosen = people.PeopleFilter.from_query(query)
        except people.FilterError as exc:
            return self._render("bad_request.html", status=400, page="people", now=now, problem=str(exc))
        with self.engine.connect() as conn:
            found = people.people_page(conn, chosen, mappings, now)
            departments = people.departments(conn)
            manager = _person(conn, chosen.manager)
        return self._render(
            "people.html",
            page="people",
            now=now,
            chosen=chosen,
            found=found,
            mappings=sorted(mappings, key=lambda m: m.title.lower()),
            departments=departments,
            states=people.STATES,
            manager=manager,
        )

    def people_csv(self, query: Query) -> Response:
        now = clock.now()
        try:
            chosen = people.PeopleFilter.from_query(query)
        except people.FilterError as exc:
            return Response.text(f"{exc}\n", 400)
        with self.engine.connect() as conn:
            body = people.export_csv(conn, chosen, self.mappings().mappings, now)
        return Response(200, body.encode(), CSV)

    def person_page(self, query: Query) -> Response:
        now = clock.now()
        ref = (query.get("id") or [""])[0]
        mapping_set = self.mappings()
        with self.engine.connect() as conn:
            try:
                found = history.person_history(conn, ref) if ref else None
            except BridgeError:
                found = None
            if found is None:
                return self._render(
                    "not_found.html", status=404, page="people", now=now, what=f"person {ref!r}"
                )
            person = load_people(conn, [found.person_id])[found.person_id]
            manager = _person(conn, person.manager_id)
            reports = people.report_count(conn, found.person_id)
        return self._render(
            "person.html",
            page="people",
            now=now,
            person=person,
            manager=manager,
            reports=reports,
            history=found,
            titles={m.id: m.title for m in mapping_set.mappings},
            recommendation_state=history.recommendation_state,
            recommendation_why=history.recommendation_why,
        )

    def manager_page(self, query: Query) -> Response:
        now = clock.now()
        manager_id = (query.get("id") or [""])[0]
        with self.engine.connect() as conn:
            manager = _person(conn, manager_id)
            if manager is None:
                return self._render(
                    "not_found.html", status=404, page="people", now=now, what=f"manager {manager_id!r}"
                )
            reports, more = people.manager_reports(conn, manager_id, self.mappings().mappings, now)
        return self._render(
            "manager.html",
            page="people",
            now=now,
            manager=manager,
            reports=reports,
            open_total=sum(len(r.open) for r in reports),
            overdue_total=sum(r.overdue for r in reports),
            more=more,
            limit=people.MAX_REPORTS,
        )

    # ------------------------------------------------------------------ helpers

    def _render(self, template: str, status: int = 200, **context: Any) -> Response:
        with self.engine.connect() as conn:
            pause = pause_state(conn, self.settings.delivery)
            rejection = mappings_rejection(conn)
        problems = [redact_text(p) for p in rejection.problems] if rejection else []
        body = self.env.get_template(template).render(
            paused=pause.paused,
            paused_in_settings=self.settings.delivery.paused,
            mapping_problems=problems,
            **context,
        )
        return Response(status, body.encode(), HTML)

    def _metric_label(self, metric: str) -> str:
        configured = self.settings.metrics.get(metric)
        title = (configured.title if configured else "") or metric
        return f"{title} ({configured.unit})" if configured and configured.unit else title

    def _target(self, metric: str) -> float | None:
        configured = self.settings.metrics.get(metric)
        return configured.target if configured else None


def _reach(
    conn: Connection, mapping_id: str, measured: impact.MappingImpact | None, now: datetime
) -> tuple[impact.Reach, impact.Effort]:
    """A mapping's reach and effort: the measured impact's where it was measured, else
    ``impact.reach``'s (the same computation, for a mapping without ``measure``)."""
    return (measured.reach, measured.effort) if measured is not None else impact.reach(conn, mapping_id, now)


def _person(conn: Connection, person_id: str | None) -> Person | None:
    """The person with this HR id, None for no id or an unknown one."""
    return load_people(conn, [person_id]).get(person_id) if person_id else None


def _serve(static: StaticFile, _query: Query) -> Response:
    return Response(200, static.body, static.content_type)


# ---------------------------------------------------------------------- template filters


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "never"


def day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value is not None else ""


def ago(value: datetime | None, now: datetime) -> str:
    """A rough relative time ("5 min ago", "in 2 h") beside the exact one."""
    if value is None:
        return ""
    delta = (value - now).total_seconds()
    size = abs(delta)
    if size < 60:
        text = f"{size:.0f} s"
    elif size < 3600:
        text = f"{size / 60:.0f} min"
    elif size < 86400 * 2:
        text = f"{size / 3600:.0f} h"
    else:
        text = f"{size / 86400:.0f} d"
    return f"in {text}" if delta > 0 else f"{text} ago"


def pct(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{100.0 * value:.{digits}f}%"


def num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def signed(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:+,.{digits}f}"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.0f} min"
