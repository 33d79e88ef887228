"""Reading a Totara site through the routes that exist (see the README's Totara section).

Each route is used only where the site answers it (``GraphQLClient.available``: the root field
comes back and every variable type exists), so one configuration works on 17, 18 and 19.

- ``users``: the external API's ``core_user_users`` (17+) pages through every account the
  service account may see (the API cannot filter by id number), refreshed daily or when HR
  people are still unlinked; without an API client, the legacy functions as for Moodle.
- ``managers``: ``totara_job_job_assignments`` (17+), else the replica's ``job_assignment``.
- ``courses``: ``core_course_courses`` (18+) hourly, else the legacy function.
- ``completions`` (courses): the replica's ``course_completions`` when a replica is configured,
  else Totara's legacy per-learner feed (:mod:`connectors.totara.legacy`).
- ``programs``, ``program_completions``, ``certification_completions`` (expired ones included),
  ``competencies`` and ``ratings``: only through the read-only replica — no Totara API returns them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from bridge.incremental import EPOCH_SECONDS, refresh_due, refreshed, time_cursor
from bridge.log import get_logger
from bridge.ports import Batch, PullContext
from bridge.records import ItemKind, LearningItem, LmsManager, LmsUser, Record
from connectors.moodle.source import MoodleSource, unexpected_answers
from connectors.totara.graphql import GraphQLClient
from connectors.totara.legacy import TotaraLearnerFeed
from connectors.totara.replica import ReplicaReader

log = get_logger(__name__)

USERS_REFRESH = timedelta(hours=24)
UNLINKED_REFRESH = timedelta(hours=1)
HOURLY = timedelta(hours=1)


def user_record(site: str, item: dict[str, object]) -> LmsUser:
    return LmsUser(
        site=site,
        user_id=int(str(item["id"])),
        username=str(item.get("username") or "") or None,
        idnumber=str(item.get("idnumber") or "").strip() or None,
        email=str(item.get("email") or "") or None,
        first_name=str(item.get("firstname") or ""),
        last_name=str(item.get("lastname") or ""),
        suspended=bool(item.get("suspended", False)),
    )


class TotaraSource:
    def __init__(
        self,
        name: str,
        *,
        api: GraphQLClient | None,
        legacy: MoodleSource | None,
        replica: ReplicaReader | None,
        lookback: timedelta = timedelta(days=1),
        managers: bool = False,
    ) -> None:
        self.name = name
        self.managers = managers
        self.api = api
        self.legacy = legacy
        self.replica = replica
        self.lookback = lookback
        self._feed: TotaraLearnerFeed | None = None

    def pull(self, ctx: PullContext) -> Iterator[Batch]:
        with unexpected_answers(f"Totara site '{self.name}'"):
            yield from self.pull_users(ctx)
            if self.managers:
                yield from self.pull_managers(ctx)
            yield from self.pull_courses(ctx)
            yield from self.pull_course_completions(ctx)
            if self.replica is not None:
                yield from self.pull_programs(ctx)
                if ctx.scope.competencies:
                    yield from self.pull_competencies(ctx)

    # ------------------------------------------------------------------ users and courses

    def pull_users(self, ctx: PullContext) -> Iterator[Batch]:
        if self.api is None or not self.api.available("users"):
            if self.legacy is not None:
                yield from self.legacy.pull_users(ctx)
            return
        linked = set(ctx.view.linked_users().values()) if ctx.view is not None else set()
        unlinked = any(p.person_id not in linked for p in ctx.people)
        if not (
            refresh_due(ctx, "users", USERS_REFRESH)
            or (unlinked and refresh_due(ctx, "users", UNLINKED_REFRESH))
        ):
            return
        for items in self.api.pages("users"):
            yield Batch("users", [user_record(self.name, item) for item in items])
        yield Batch("users", [], cursor=refreshed(ctx))

    def pull_managers(self, ctx: PullContext) -> Iterator[Batch]:
        """Each user's manager from their first job assignment (Totara's own manager relation),
        through the API (``totara_job_job_assignments``, 17+) or the replica's ``job_assignment``
        table; daily."""
        if not refresh_due(ctx, "managers", USERS_REFRESH):
            return
        assignments: list[tuple[int, int, int | None]] = []
        if self.api is not None and self.api.available("job_assignments"):
            for items in self.api.pages("job_assignments"):
                assignments.extend(
                    (
                        int(str(a["id"])),
                        int(str(a["user"]["id"])),
                        int(str(a["managerjaid"])) if a.get("managerjaid") else None,
                    )
                    for a in items
                    if a.get("user")
                )
        elif self.replica is not None:
            for rows in self.replica.job_assignments():
                assignments.extend(rows)
        else:
            log.warning("no route to Totara job assignments (API client or replica needed)", site=self.name)
            return
        owner = {ja: user for ja, user, _ in assignments}
        first: dict[int, int | None] = {}
        for _ja, user, manager_ja in assignments:
            first.setdefault(user, owner.get(manager_ja) if manager_ja else None)
        records: list[Record] = [
            LmsManager(self.name, user, manager) for user, manager in sorted(first.items())
        ]
        yield Batch("managers", records, cursor=refreshed(ctx))

    def pull_courses(self, ctx: PullContext) -> Iterator[Batch]:
        if self.api is None or not self.api.available("courses"):
            if self.legacy is not None:
                yield from self.legacy.pull_courses(ctx)
            return
        if not refresh_due(ctx, "courses", HOURLY):
            return
        courses: list[Record] = []
        for items in self.api.pages("courses"):
            courses.extend(
                LearningItem(
                    site=self.name,
                    item_id=int(str(c["id"])),
                    kind=ItemKind.COURSE,
                    shortname=str(c.get("shortname") or ""),
                    fullname=str(c.get("fullname") or ""),
                    idnumber=str(c.get("idnumber") or "") or None,
                    url=str(c.get("url") or "") or None,
                )
                for c in items
                if int(str(c["id"])) != 1
            )
        yield Batch("courses", courses, cursor=refreshed(ctx))

    # ------------------------------------------------------------------ completions

    def pull_course_completions(self, ctx: PullContext) -> Iterator[Batch]:
        if self.replica is not None:
            yield from self._incremental(ctx, "completions", self.replica.course_completions)
        elif self.legacy is not None and ctx.view is not None:
            refs = ctx.scope.course_refs
            in_scope = ctx.view.course_ids(refs) if refs is not None else None
            if in_scope is not None and not in_scope:
                yield Batch("completions", [], cursor=refreshed(ctx))
                return
            yield from self.legacy_feed().pull(ctx, in_scope)

    def legacy_feed(self) -> TotaraLearnerFeed:
        assert self.legacy is not None
        if self._feed is None:
            self._feed = TotaraLearnerFeed(self.name, self.legacy.client)
        return self._feed

    def pull_programs(self, ctx: PullContext) -> Iterator[Batch]:
        assert self.replica is not None
        if refresh_due(ctx, "programs", HOURLY):
            yield Batch("programs", list[Record](self.replica.programs()), cursor=refreshed(ctx))
        yield from self._incremental(ctx, "program_completions", self.replica.program_completions)
        yield from self._incremental(ctx, "certification_completions", self.replica.certification_completions)

    def pull_competencies(self, ctx: PullContext) -> Iterator[Batch]:
        assert self.replica is not None
        if refresh_due(ctx, "competencies", HOURLY):
            yield Batch("competencies", self.replica.competencies(), cursor=refreshed(ctx))
        yield from self._incremental(ctx, "ratings", self.replica.achievements)

    def _incremental(
        self, ctx: PullContext, stream: str, read: Callable[[int], Iterator[tuple[list[Record], int]]]
    ) -> Iterator[Batch]:
        """Rows newer than the stream's cursor (Totara's own times) minus the look-back window.

        The cursor advances only with the batch that stored the rows, so a crash never leaves
        it ahead of the stored data, and never past now (a row stamped in the future is read
        again until the clock reaches it, rather than hiding every row stamped before it).
        """
        cursor = time_cursor(ctx, f"Totara site '{self.name}'", stream, EPOCH_SECONDS, self.lookback)
        for records, high in read(int(cursor.since.timestamp())):
            cursor.seen(datetime.fromtimestamp(high, UTC))
            yield Batch(stream, records, cursor=cursor.cursor)
        if cursor.started:
            yield Batch(stream, [], cursor=cursor.cursor)
