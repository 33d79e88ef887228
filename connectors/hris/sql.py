"""The SQL HR feed: any database or warehouse view reachable by a SQLAlchemy URL.

One query per record kind; the query names its columns as lmsbridge's fields (use ``AS``):
people ``person_id, employee_number, first_name, last_name, email, manager, department,
job_title, location, timezone, locale, start_date, active``; measurements ``person, metric,
period_start, period_end, value``; reviews ``person, competency, rater, period_start,
period_end, rating``; goals ``person, goal_id, title, progress, due_date``.

Incremental reads: a query that uses the bind parameter ``:since`` and returns an
``updated_at`` column gets only rows changed since the last pull (the cursor is the latest
``updated_at`` stored, never later than now: a row stamped in the future is read again until
then, rather than hiding every change stamped before it). Rows are streamed from the server,
never loaded all at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from bridge.errors import Remedy, SourceError
from bridge.incremental import Incremental, time_cursor
from bridge.log import redact_text
from bridge.ports import Connector, PullContext, Source
from bridge.settings import Settings
from connectors.hris.csv_connector import RatingScale
from connectors.hris.feed import MAX_RETIRE_HELP, MAX_RETIRE_PERCENT, HrFeed, Rows
from connectors.hris.fields import Builder, Scale


class SqlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: SecretStr = Field(
        description="SQLAlchemy URL, e.g. postgresql+psycopg://reader@dw/hr (password from the environment)."
    )
    people: str | None = Field(default=None, description="Query returning people.")
    measurements: str | None = None
    reviews: str | None = None
    goals: str | None = None
    people_snapshot: bool = Field(
        default=True,
        description="The people query lists everyone: people missing from it have left (never for a :since query).",
    )
    max_retire_percent: float = Field(default=MAX_RETIRE_PERCENT, ge=0, le=100, description=MAX_RETIRE_HELP)
    date_format: str | None = Field(
        default=None, description="For dates returned as text; native dates need none."
    )
    decimal: str = "."
    rating_scale: RatingScale = Field(default_factory=RatingScale)


class SqlSource(HrFeed):
    def __init__(self, name: str, options: SqlOptions, engine: Engine | None = None) -> None:
        self.name = name
        self.options = options
        # A query that reads only the people changed since the last pull is no snapshot.
        self.people_snapshot = options.people_snapshot and ":since" not in (options.people or "")
        self.max_retire_percent = options.max_retire_percent
        self.people_origin = "from the people query"
        scale = options.rating_scale
        self.builder = Builder(
            name,
            options.date_format,
            options.decimal,
            Scale(tuple(scale.labels), scale.min, scale.max, tuple(scale.unrated)),
        )
        self.engine = engine or create_engine(options.url.get_secret_value(), pool_pre_ping=True)
        self._cursors: dict[str, Incremental[datetime]] = {}

    def rows(self, kind: str, ctx: PullContext) -> Rows | None:
        query = getattr(self.options, kind)
        if not query:
            return None
        self._cursors.pop(kind, None)
        if ":since" in query:
            self._cursors[kind] = time_cursor(ctx, f"feed '{self.name}'", kind)
        return self._stream(kind, query)

    def _stream(self, kind: str, query: str) -> Rows:
        cursor = self._cursors.get(kind)
        params: dict[str, Any] = {"since": cursor.since} if cursor is not None else {}
        try:
            with self.engine.connect() as conn:
                result = conn.execution_options(stream_results=True, yield_per=2000).execute(
                    text(query), params
                )
                for number, row in enumerate(result.mappings(), start=1):
                    values = dict(row)
                    changed = values.get("updated_at")
                    if isinstance(changed, datetime) and cursor is not None:
                        cursor.seen(changed if changed.tzinfo else changed.replace(tzinfo=UTC))
                    key = values.get("person_id") or values.get("person") or ""
                    yield f"{kind} row {number} ({key})", values.get
        except SQLAlchemyError as exc:
            raise SourceError(
                f"feed '{self.name}': the {kind} query failed: {redact_text(str(getattr(exc, 'orig', None) or exc))}",
                Remedy.RETRY,
            ) from None

    def cursor(self, kind: str) -> str | None:
        cursor = self._cursors.get(kind)
        return cursor.cursor if cursor is not None else None


def build_source(name: str, options: Any, settings: Settings) -> Source:
    return SqlSource(name, options)


connector = Connector(name="sql", kind="hris", options_model=SqlOptions, build_source=build_source)
