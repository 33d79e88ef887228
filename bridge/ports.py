"""The interfaces connectors implement. The bridge depends on these, never on a connector.

A connector package exposes a :class:`Connector` object through the entry-point group
``lmsbridge.connectors``. The bridge finds it by the ``type`` of a configured site or feed,
validates that entry's options with the connector's own pydantic model, and asks it for a
:class:`Source` (records in) and, for LMS and email connectors, a :class:`Sink` (actions out).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from bridge.errors import BridgeError
from bridge.records import Record, Rejected, Target

if TYPE_CHECKING:
    from bridge.settings import Settings


@dataclass(frozen=True)
class PullScope:
    """What the mappings need from a source, so a poller never reads more than that.

    ``course_refs`` are the site's courses some mapping or follow-up needs, as written in the
    mappings: a shortname, ``id:N`` or ``idnumber:X``. ``person_ids`` are the HR people some
    enabled mapping's audience can reach, decided by ``people`` when a stream first asks: most
    polls read only a report or a changes feed and never ask, so they never pay for reading
    everyone's open recommendations. ``None`` means "no restriction".
    """

    course_refs: frozenset[str] | None = None
    people: Callable[[], frozenset[str]] | None = None
    competencies: bool = False
    # The competencies the mappings name (shortname, idnumber or ``id:N``) and the people of the
    # mappings that use them: ratings are read for those alone, not for every audience.
    competency_refs: frozenset[str] | None = None
    competency_people: Callable[[], frozenset[str]] | None = None

    @cached_property
    def person_ids(self) -> frozenset[str] | None:
        return self.people() if self.people is not None else None

    @cached_property
    def competency_person_ids(self) -> frozenset[str] | None:
        return self.competency_people() if self.competency_people is not None else None


@dataclass(frozen=True)
class PersonKeys:
    """The keys an LMS source may use to find an HR person's account. Never names."""

    person_id: str
    employee_number: str | None
    email: str | None
    changed_at: datetime | None = None


class PeopleKeys(tuple[PersonKeys, ...]):
    """Every active HR person's keys, with what a pull asks of all of them derived once: the tuple
    is kept between polls while the people data is unchanged (bridge.cycle.person_keys), so a
    steady poll does not walk everyone to find the few who changed."""

    @cached_property
    def employee_numbers(self) -> frozenset[str]:
        return frozenset(p.employee_number.strip() for p in self if p.employee_number)

    @cached_property
    def emails(self) -> frozenset[str]:
        return frozenset(p.email.strip().lower() for p in self if p.email)

    @cached_property
    def _by_change(self) -> tuple[list[datetime], list[PersonKeys], list[PersonKeys]]:
        dated = sorted((p for p in self if p.changed_at is not None), key=_changed_at)
        return [_changed_at(p) for p in dated], dated, [p for p in self if p.changed_at is None]

    @property
    def newest_change(self) -> datetime | None:
        times = self._by_change[0]
        return times[-1] if times else None

    def changed_after(self, since: datetime) -> list[PersonKeys]:
        """Those whose HR record changed after ``since``, and those with no change time."""
        times, dated, undated = self._by_change
        return [*dated[bisect_right(times, since) :], *undated]


def _changed_at(person: PersonKeys) -> datetime:
    assert person.changed_at is not None
    return person.changed_at


class SiteView(Protocol):
    """Read-only facts the bridge already holds about one site, for incremental pulls."""

    def linked_users(self) -> Mapping[int, str]:
        """LMS user id -> HR person id, for every person linked to an account on the site."""
        ...

    def known_completions(self) -> set[tuple[int, int]]:
        """(user id, item id) pairs already stored as completed on the site."""
        ...

    def course_ids(self, refs: frozenset[str]) -> set[int]:
        """Stored course ids for mapping references (shortname, ``id:N`` or ``idnumber:X``)."""
        ...

    def active_enrolments(self, course_ids: set[int]) -> set[tuple[int, int]]:
        """(user id, course id) pairs stored as active enrolments in these courses."""
        ...

    def index(self) -> SiteIndex:
        """Stored users and courses by the keys a report shows instead of ids."""
        ...


@dataclass(frozen=True)
class SiteIndex:
    users_by_idnumber: Mapping[str, int]
    users_by_email: Mapping[str, int]
    courses_by_shortname: Mapping[str, int]


@dataclass(frozen=True)
class PullContext:
    cursors: Mapping[str, str | None]
    scope: PullScope
    now: datetime
    full: bool = False
    people: PeopleKeys = field(default_factory=PeopleKeys)
    view: SiteView | None = None


@dataclass
class Batch:
    """Records from one stream of a source, and the cursor that is valid once they are stored.

    The store writes the records and the new cursor in one transaction, so a cursor never runs
    ahead of stored data. ``snapshot_of`` names a record kind for which this stream delivered a
    complete snapshot (people missing from it are leavers, if the feed is configured so).

    A snapshot says what the store needs to tell a broken export from a real one before it
    retires anyone: ``origin`` (the file or query, for the error), ``rows_read`` (data rows,
    loaded or rejected), ``max_retire_percent`` (None: no limit) and ``named``: the HR ids its
    rows gave, rejected rows included — a person whose row could not be read is still listed,
    so is not a leaver.

    ``records`` may be :class:`Chunked` (the HR feeds' people): too many to hold at once, they
    are stored a chunk at a time within the batch's one transaction, and such a snapshot gives
    the HR ids it lists through ``records.listed`` rather than ``named``.
    """

    stream: str
    records: Sequence[Record] = field(default_factory=list)
    rejected: Sequence[Rejected] = field(default_factory=list)
    cursor: str | None = None
    snapshot_of: str | None = None
    origin: str = ""
    rows_read: int | None = None
    max_retire_percent: float | None = None
    named: frozenset[str] = frozenset()


@runtime_checkable
class Chunked(Protocol):
    """Records read a chunk at a time, each pass afresh, so a batch never holds them all."""

    def chunks(self, size: int) -> Iterator[Sequence[Record]]:
        """The records to store, ``size`` at a time; no record's key comes twice."""
        ...

    def listed(self, size: int) -> Iterator[Sequence[str]]:
        """The HR ids a people snapshot lists (loaded or rejected), ``size`` at a time."""
        ...


class Source(Protocol):
    name: str

    def pull(self, ctx: PullContext) -> Iterator[Batch]: ...


class ActionKind(StrEnum):
    MESSAGE = "message"
    ENROL = "enrol"
    PLAN = "plan"
    EMAIL = "email"


@dataclass(frozen=True)
class OutgoingAction:
    """One thing to do on an outside system, already rendered and ready to send."""

    key: str
    kind: ActionKind
    site: str
    recipient_user_id: int | None
    recipient_email: str | None
    subject: str
    body_html: str
    body_text: str
    target: Target | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


class OutcomeStatus(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    DEAD = "dead"
    UNKNOWN = "unknown"  # the request may have been carried out: check the site before resending
    SKIPPED = "skipped"  # deliberately not carried out, the site's own state decides (the reason says why)


def deliver_in_groups(
    groups: Iterable[
        tuple[Sequence[OutgoingAction], Callable[[Sequence[OutgoingAction]], list[DeliveryOutcome]]]
    ],
) -> list[DeliveryOutcome]:
    """Send group after group (a message batch, an enrolment batch, ...), keeping what went out.

    If a group fails after an earlier one succeeded, raising would make the delivery stage retry
    the whole call and send the earlier groups twice; so the outcomes so far are returned, the
    failed group is marked for retry (or for a check on the site when the failure leaves it
    unknown whether the request was carried out), and the rest wait for the next run. A failure
    in the first group is raised: nothing went out, and the stage handles it for the whole site.
    """
    outcomes: list[DeliveryOutcome] = []
    failure: str | None = None
    for batch, send in groups:
        if not batch:
            continue
        if failure is not None:
            outcomes += [
                DeliveryOutcome(a.key, OutcomeStatus.RETRY, error=f"not attempted: {failure}") for a in batch
            ]
            continue
        try:
            outcomes += send(batch)
        except BridgeError as exc:
            if not outcomes:
                raise
            failure = str(exc)
            status = OutcomeStatus.UNKNOWN if getattr(exc, "ambiguous", False) else OutcomeStatus.RETRY
            outcomes += [DeliveryOutcome(a.key, status, error=failure) for a in batch]
    return outcomes


@dataclass(frozen=True)
class DeliveryOutcome:
    key: str
    status: OutcomeStatus
    external_id: str | None = None
    error: str | None = None


class Sink(Protocol):
    """Delivers actions to one outside system.

    ``deliver`` returns one outcome per action (any order). ``reconcile`` is asked about an
    action whose outcome is unknown (the process died after sending): it returns SENT with the
    external id if the outside system shows it happened, or None if it did not.
    """

    name: str
    kinds: frozenset[ActionKind]

    def deliver(self, actions: Sequence[OutgoingAction]) -> list[DeliveryOutcome]: ...

    def reconcile(self, action: OutgoingAction) -> DeliveryOutcome | None: ...


@dataclass(frozen=True)
class ShownRecommendation:
    """An open recommendation as the learner (and their manager) sees it inside the LMS."""

    reference: str  # stable per recommendation: the site replaces by it
    title: str
    reason: str
    url: str | None
    due_at: datetime | None
    manager_user_id: int | None  # the manager's account on the same site, who sees it too
    manager_reason: str = ""  # why, as that manager reads it ("their customer satisfaction ...")


class RecommendationBoard(Protocol):
    """A site that shows learners their open recommendations (Moodle with local_lmsbridge)."""

    def show(self, shown: Mapping[int, Sequence[ShownRecommendation]]) -> None:
        """Make each user's open recommendations exactly these (an empty list: none)."""
        ...


@dataclass(frozen=True)
class TargetRef:
    """A mapping's reference to a learning item, before the site resolves it to an id."""

    site: str
    kind: str
    ref: str


class TargetResolver(Protocol):
    def __call__(self, ref: TargetRef) -> Target | None: ...


@dataclass(frozen=True)
class DoctorCheck:
    name: str
    ok: bool
    detail: str = ""
    fix: str = ""
    required: bool = True


ConnectorKind = Literal["lms", "hris", "email"]


@dataclass(frozen=True)
class Connector:
    """What a connector package registers under the ``lmsbridge.connectors`` entry point."""

    name: str
    kind: ConnectorKind
    options_model: type[BaseModel]
    build_source: SourceFactory | None = None
    build_sink: SinkFactory | None = None
    doctor: DoctorFactory | None = None
    webhook: WebhookFactory | None = None
    refuses: RefusalFactory | None = None


class RefusalFactory(Protocol):
    def __call__(self, options: Any, channel: str, item_kind: str) -> str | None:
        """Why this site can never take ``channel`` for a ``item_kind`` item (None: it can)."""
        ...


@dataclass(frozen=True)
class Webhook:
    """How a site signs the events it pushes: an HMAC-SHA256 of the body in ``header``, hex."""

    header: str
    secret: str


class WebhookFactory(Protocol):
    def __call__(self, options: Any) -> Webhook | None: ...


class SourceFactory(Protocol):
    def __call__(self, name: str, options: Any, settings: Settings) -> Source: ...


class SinkFactory(Protocol):
    def __call__(self, name: str, options: Any, settings: Settings) -> Sink: ...


class DoctorFactory(Protocol):
    def __call__(
        self, name: str, options: Any, settings: Settings, needs: Sequence[str]
    ) -> Sequence[DoctorCheck]: ...
