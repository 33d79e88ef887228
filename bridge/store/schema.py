"""Tables of the state database (SQLAlchemy Core). Alembic migrations create them.

Inputs are keyed by their natural keys so every pull is an upsert. People are keyed by their
HR id; LMS data by ``(site, user_id)``. Times are stored as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)

from bridge import clock

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


def _now() -> datetime:
    """Column defaults ask the bridge's clock too, so a pinned or replayed time holds everywhere."""
    return clock.now()


def updated_at() -> Column[datetime]:
    return Column("updated_at", UtcDateTime(), nullable=False, default=_now, onupdate=_now)


people = Table(
    "people",
    metadata,
    Column("person_id", String(100), primary_key=True),
    Column("employee_number", String(100)),
    Column("email", String(255)),
    Column("first_name", String(255), nullable=False, default=""),
    Column("last_name", String(255), nullable=False, default=""),
    Column("manager_id", String(100)),
    Column("department", String(255)),
    Column("job_title", String(255)),
    Column("location", String(255)),
    Column("timezone", String(64)),
    Column("locale", String(32)),
    Column("active", Boolean, nullable=False, default=True),
    Column("start_date", Date),
    Column("source", String(100), nullable=False, default=""),
    updated_at(),
    Index("ix_people_employee_number", "employee_number"),
    Index("ix_people_manager_id", "manager_id"),
)

lms_users = Table(
    "lms_users",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("username", String(255)),
    Column("idnumber", String(255)),
    Column("email", String(255)),
    Column("first_name", String(255), nullable=False, default=""),
    Column("last_name", String(255), nullable=False, default=""),
    Column("suspended", Boolean, nullable=False, default=False),
    Column("deleted", Boolean, nullable=False, default=False),
    updated_at(),
    Index("ix_lms_users_site_idnumber", "site", "idnumber"),
    Index("ix_lms_users_site_email", "site", "email"),
)

lms_managers = Table(
    "lms_managers",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("manager_user_id", BigInteger),
    updated_at(),
)

identities = Table(
    "identities",
    metadata,
    Column("person_id", String(100), primary_key=True),
    Column("site", String(64), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("matched_by", String(32), nullable=False),
    updated_at(),
    UniqueConstraint("site", "user_id", name="uq_identities_site_user"),
)

learning_items = Table(
    "learning_items",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("item_id", BigInteger, primary_key=True, autoincrement=False),
    Column("shortname", String(255), nullable=False, default=""),
    Column("fullname", String(1333), nullable=False, default=""),
    Column("idnumber", String(100)),
    Column("category_id", BigInteger),
    Column("completion_enabled", Boolean, nullable=False, default=True),
    Column("visible", Boolean, nullable=False, default=True),
    Column("url", String(1024)),
    updated_at(),
    Index("ix_learning_items_site_shortname", "site", "shortname"),
)

enrolments = Table(
    "enrolments",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("item_id", BigInteger, primary_key=True, autoincrement=False),
    Column("active", Boolean, nullable=False, default=True),
    updated_at(),
)

completions = Table(
    "completions",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), primary_key=True),
    Column("item_id", BigInteger, primary_key=True, autoincrement=False),
    Column("completed_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime()),
    Column("window_opens_at", UtcDateTime()),
    updated_at(),
)

competencies = Table(
    "competencies",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("competency_id", BigInteger, primary_key=True, autoincrement=False),
    Column("shortname", String(255), nullable=False, default=""),
    Column("idnumber", String(100)),
    Column("framework_id", BigInteger),
    Column("url", String(1024)),
    updated_at(),
)

competency_ratings = Table(
    "competency_ratings",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("competency_id", BigInteger, primary_key=True, autoincrement=False),
    Column("proficient", Boolean),
    Column("grade", Integer),
    Column("grade_name", String(255)),
    Column("rated_at", UtcDateTime()),
    Column("in_plan", Boolean, nullable=False, default=False),
    updated_at(),
)

measurements = Table(
    "measurements",
    metadata,
    Column("person_id", String(100), primary_key=True),
    Column("metric", String(100), primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("period_end", Date, nullable=False),
    Column("value", Float, nullable=False),
    Column("source", String(100), nullable=False, default=""),
    updated_at(),
    Index("ix_measurements_metric_period", "metric", "period_start"),
)

review_ratings = Table(
    "review_ratings",
    metadata,
    Column("person_id", String(100), primary_key=True),
    Column("competency", String(255), primary_key=True),
    Column("rater_type", String(16), primary_key=True),
    Column("period_end", Date, primary_key=True),
    Column("period_start", Date, nullable=False),
    Column("value", Float),
    Column("scale_min", Float),
    Column("scale_max", Float),
    Column("label", String(255)),
    Column("source", String(100), nullable=False, default=""),
    updated_at(),
)

goals = Table(
    "goals",
    metadata,
    Column("person_id", String(100), primary_key=True),
    Column("goal_id", String(100), primary_key=True),
    Column("title", String(1024), nullable=False),
    Column("progress", Float),
    Column("due_date", Date),
    Column("source", String(100), nullable=False, default=""),
    updated_at(),
)

cursors = Table(
    "cursors",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("stream", String(100), primary_key=True),
    Column("value", Text),
    updated_at(),
)

rejects = Table(
    "rejects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("location", String(1024), nullable=False),
    Column("reason", Text, nullable=False),
    Column("raw", Text, nullable=False, default=""),
    Column("seen_at", UtcDateTime(), nullable=False, default=_now),
    Index("ix_rejects_source_seen", "source", "seen_at"),
)

mapping_state = Table(
    "mapping_state",
    metadata,
    Column("mapping_id", String(100), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("evaluated_at", UtcDateTime()),
    Column("full_evaluated_at", UtcDateTime()),
)

dirty_people = Table(
    "dirty_people",
    metadata,
    Column("person_id", String(100), primary_key=True),
    Column("since", UtcDateTime(), nullable=False, default=_now),
    # A new token on every mark: decide deletes only the marks it read, so one made while it
    # was evaluating survives, even at the same instant (a pinned clock, a replica's skew).
    Column("mark", String(32), nullable=False, server_default=""),
)

recommendations = Table(
    "recommendations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("mapping_id", String(100), nullable=False),
    Column("person_id", String(100), nullable=False),
    Column("episode", Integer, nullable=False, default=1),
    Column("state", String(16), nullable=False),  # open | closed | suppressed | lapsed
    Column("holdout", Boolean, nullable=False, default=False),
    Column("targets", JSON, nullable=False),
    Column("explanation", JSON, nullable=False),
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("closed_at", UtcDateTime()),
    Column("close_reason", Text),
    Column("completed_at", UtcDateTime()),
    UniqueConstraint("mapping_id", "person_id", "episode", name="uq_recommendations_episode"),
    Index("ix_recommendations_person", "person_id"),
    Index("ix_recommendations_mapping_state", "mapping_id", "state"),
)

actions = Table(
    "actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False, unique=True),
    Column("recommendation_id", Integer, ForeignKey("recommendations.id")),
    Column("mapping_id", String(100)),
    Column("person_id", String(100)),
    Column("purpose", String(32), nullable=False),  # recommend | reminder | escalation | ...
    Column("kind", String(16), nullable=False),  # message | enrol | plan | email
    Column("site", String(64), nullable=False),
    Column("recipient_person_id", String(100)),
    Column("recipient_user_id", BigInteger),
    Column("recipient_email", String(255)),
    Column("subject", Text, nullable=False, default=""),
    Column("body_html", Text, nullable=False, default=""),
    Column("body_text", Text, nullable=False, default=""),
    Column("target", JSON),
    Column("options", JSON, nullable=False, default=dict),
    Column("state", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("due_at", UtcDateTime(), nullable=False),
    Column("last_error", Text),
    Column("external_id", String(255)),
    Column("claimed_by", String(255)),
    Column("claimed_at", UtcDateTime()),
    Column("claim_token", String(32)),  # fencing: writes about a claimed row must carry it
    Column("lease_until", UtcDateTime()),  # on the database's clock (bridge.claims)
    Column("sent_at", UtcDateTime()),
    Column("created_at", UtcDateTime(), nullable=False, default=_now),
    updated_at(),
    Index("ix_actions_state_due", "state", "due_at"),
    # Claims read each purpose's due rows in due order (bridge.claims.CLAIM_ORDER). Partial: of
    # pending rows only, so no query about sent rows (the weekly cap) is planned through it.
    Index(
        "ix_actions_claim",
        "purpose",
        "due_at",
        "id",
        sqlite_where=text("state = 'pending'"),
        postgresql_where=text("state = 'pending'"),
    ),
    Index("ix_actions_person", "person_id"),
    Index("ix_actions_recommendation", "recommendation_id"),
    # The weekly cap counts a person's learner messages sent in the last 7 days (bridge.guards).
    Index("ix_actions_recipient_state_sent", "recipient_person_id", "state", "sent_at"),
)

digest_items = Table(
    "digest_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("manager_id", String(100), nullable=False),
    Column("recommendation_id", Integer, ForeignKey("recommendations.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # escalation | observe
    Column("text", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=_now),
    Column("action_key", String(255)),
    UniqueConstraint("recommendation_id", "kind", name="uq_digest_items_recommendation_kind"),
    Index("ix_digest_items_manager", "manager_id", "action_key"),
)

# What each learner's site was last told their open recommendations are (bridge.board): a digest
# of the set, so only people whose set changed are written again.
shown_recommendations = Table(
    "shown_recommendations",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("digest", String(64), nullable=False),
    updated_at(),
)

opt_outs = Table(
    "opt_outs",
    metadata,
    Column("person_id", String(100), primary_key=True),
    Column("mapping_id", String(100), primary_key=True),  # "*" = every mapping
    Column("reason", Text, nullable=False, default=""),
    Column("created_at", UtcDateTime(), nullable=False, default=_now),
)

control = Table(
    "control",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    updated_at(),
)

source_health = Table(
    "source_health",
    metadata,
    Column("name", String(100), primary_key=True),  # a source, or a stage such as "deliver"
    Column("last_success_at", UtcDateTime()),
    Column("last_error_at", UtcDateTime()),
    Column("last_error", Text),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    # Of those, the failures that count toward the circuit breaker (bridge.health).
    Column("resting_failures", Integer, nullable=False, default=0, server_default="0"),
    # A source's pull has begun and not ended: decisions wait for it (bridge.decide), as they do
    # after a failed one (consecutive_failures > 0).
    Column("pulling", Boolean, nullable=False, default=False, server_default=false()),
    updated_at(),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("job", String(100), primary_key=True),
    Column("last_started_at", UtcDateTime()),
    Column("last_finished_at", UtcDateTime()),
    Column("last_status", String(16)),
    Column("next_run_at", UtcDateTime()),
    Column("worker", String(255)),
    updated_at(),
)
