"""Registers the Moodle connector under the ``lmsbridge.connectors`` entry point."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator

from bridge.ports import Connector, DoctorCheck, Sink, Source, Webhook
from bridge.settings import Settings
from connectors.moodle.changes import SIGNATURE_HEADER
from connectors.moodle.client import MoodleClient
from connectors.moodle.doctor import checks
from connectors.moodle.feeds import ReportColumns
from connectors.moodle.sink import MoodleSink
from connectors.moodle.source import MoodleSource


class ReportColumnNames(BaseModel):
    """The column headings of the completions report (set these headings when building it)."""

    model_config = ConfigDict(extra="forbid")

    idnumber: str = "ID number"
    email: str = "Email address"
    course: str = "Course short name"
    completed: str = "Time completed"


class MoodleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl = Field(description="The site's address, e.g. https://moodle.example.org")
    token: SecretStr = Field(
        description="Web-service token (from LMSBRIDGE_SITES__<NAME>__TOKEN or the secrets directory)."
    )
    timeout_seconds: float = Field(default=30, gt=0)
    verify_tls: bool = Field(default=True, description="Check the site's TLS certificate.")
    calls_per_second: float | None = Field(
        default=None, gt=0, description="Budget of web-service calls per second."
    )
    student_role_id: int = Field(
        default=5, description="Role given by enrolments (5 = student on a standard site)."
    )
    users_chunk: int = Field(default=100, ge=1, le=500, description="Users looked up per call.")
    completion_feed: Literal["auto", "plugin", "report", "per_learner", "per_course"] = Field(
        default="auto",
        description="How completions are read; auto picks the cheapest the site supports (the companion "
        "plugin's change log first, which also carries enrolments, ratings and user changes).",
    )
    completion_report: int | str | None = Field(
        default=None,
        description="Id or name of the completions custom report (default name: 'Course completions (lmsbridge)').",
    )
    report_columns: ReportColumnNames = Field(default_factory=ReportColumnNames)
    lookback_minutes: int = Field(
        default=1440, ge=0, description="Re-read completions this far behind the cursor (late writes)."
    )
    message_batch: int = Field(default=50, ge=1, le=500, description="Messages sent per call.")
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="The companion plugin's webhook secret (its settings: Webhook secret); each signed "
        "notification POSTed to the daemon's /webhooks/<site> triggers a pull.",
    )
    report_timezone: str = Field(
        default="UTC",
        description="The zone the completion report's dates are shown in: UTC, unless the site forces a "
        "time zone (Site administration > General > Location > Force timezone); then that zone.",
    )

    @field_validator("report_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as 'Europe/Berlin')") from None
        return value


def client(name: str, options: MoodleOptions) -> MoodleClient:
    return MoodleClient(
        name,
        str(options.url),
        options.token.get_secret_value(),
        timeout=options.timeout_seconds,
        verify_tls=options.verify_tls,
        calls_per_second=options.calls_per_second,
    )


def build_source(name: str, options: Any, settings: Settings) -> Source:
    columns = options.report_columns
    return MoodleSource(
        name,
        client(name, options),
        users_chunk=options.users_chunk,
        feed=options.completion_feed,
        report=options.completion_report,
        report_columns=ReportColumns(columns.idnumber, columns.email, columns.course, columns.completed),
        lookback=timedelta(minutes=options.lookback_minutes),
        report_zone=ZoneInfo(options.report_timezone),
    )


def build_sink(name: str, options: Any, settings: Settings) -> Sink:
    return MoodleSink(
        name,
        client(name, options),
        message_batch=options.message_batch,
        student_role_id=options.student_role_id,
    )


def doctor(name: str, options: Any, settings: Settings, needs: Any) -> list[DoctorCheck]:
    source = build_source(name, options, settings)
    assert isinstance(source, MoodleSource)
    return checks(
        source,
        needs,
        settings=settings,
        role_id=options.student_role_id,
        webhook_secret_set=options.webhook_secret is not None,
    )


def webhook(options: Any) -> Webhook | None:
    secret = options.webhook_secret
    return Webhook(SIGNATURE_HEADER, secret.get_secret_value()) if secret is not None else None


connector = Connector(
    name="moodle",
    kind="lms",
    options_model=MoodleOptions,
    build_source=build_source,
    build_sink=build_sink,
    doctor=doctor,
    webhook=webhook,
)
