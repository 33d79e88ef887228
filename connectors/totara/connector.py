"""Registers the Totara connector under the ``lmsbridge.connectors`` entry point."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Self

import requests
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, model_validator

from bridge.ports import Connector, DoctorCheck, Sink, Source, Webhook
from bridge.records import ItemKind
from bridge.settings import Settings
from connectors.moodle.client import MoodleClient
from connectors.moodle.source import MoodleSource
from connectors.totara.doctor import checks
from connectors.totara.graphql import GraphQLClient
from connectors.totara.oauth import TokenSource
from connectors.totara.replica import ReplicaReader
from connectors.totara.sink import NO_PLANS, TotaraSink
from connectors.totara.source import TotaraSource


class TotaraOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl = Field(description="The site's address, e.g. https://learn.example.org")
    client_id: str | None = Field(default=None, description="External API client id (Totara 17+).")
    client_secret: SecretStr | None = Field(
        default=None,
        description="External API client secret (from LMSBRIDGE_SITES__<NAME>__CLIENT_SECRET or the secrets directory).",
    )
    token: SecretStr | None = Field(
        default=None,
        description="Legacy web-service token: messages, audience membership, per-learner completions.",
    )
    replica_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of a read-only database replica: program, certification and competency records.",
    )
    table_prefix: str = Field(default="ttr_", description="The site's database table prefix.")
    manager_relation: bool = Field(
        default=False,
        description="Read Totara's own manager relation (job assignments); it then takes precedence over the HR feed's manager.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Secret of a Totara 19.1+ webhook pointed at the daemon's /webhooks/<site>: each signed event triggers a pull.",
    )
    audiences: dict[str, str] = Field(
        default_factory=dict,
        description='Audience idnumber tied to each program\'s assignment, e.g. {"program:PROG-CX" = "AUD-CX"}.',
    )
    timeout_seconds: float = Field(default=30, gt=0)
    verify_tls: bool = True
    max_query_complexity: int = Field(
        default=6000, ge=100, description="The site's max_query_complexity setting."
    )
    client_rate_limit: int = Field(default=250_000, ge=100, description="The client's points per minute.")
    lookback_minutes: int = Field(
        default=1440, ge=0, description="Re-read replica rows this far behind the cursor."
    )
    message_batch: int = Field(default=50, ge=1, le=500)
    student_role_id: int = 5

    @model_validator(mode="after")
    def _a_route(self) -> Self:
        if (self.client_id is None) != (self.client_secret is None):
            raise ValueError("client_id and client_secret go together")
        if self.client_id is None and self.token is None:
            raise ValueError(
                "set client_id and client_secret (Totara 17+ API), token (legacy web services), or both"
            )
        return self


def _session() -> requests.Session:
    session = requests.Session()
    session.headers.update({"User-Agent": "lmsbridge"})
    return session


def api(name: str, options: TotaraOptions) -> GraphQLClient | None:
    if options.client_id is None or options.client_secret is None:
        return None
    session = _session()
    tokens = TokenSource(
        name,
        str(options.url),
        options.client_id,
        options.client_secret.get_secret_value(),
        session,
        timeout=options.timeout_seconds,
        verify_tls=options.verify_tls,
    )
    return GraphQLClient(
        name,
        str(options.url),
        tokens,
        session,
        timeout=options.timeout_seconds,
        verify_tls=options.verify_tls,
        max_query_complexity=options.max_query_complexity,
        client_rate_limit=options.client_rate_limit,
    )


def legacy(name: str, options: TotaraOptions) -> MoodleClient | None:
    if options.token is None:
        return None
    return MoodleClient(
        name,
        str(options.url),
        options.token.get_secret_value(),
        timeout=options.timeout_seconds,
        verify_tls=options.verify_tls,
    )


def replica(name: str, options: TotaraOptions) -> ReplicaReader | None:
    if options.replica_url is None:
        return None
    return ReplicaReader(
        name, options.replica_url.get_secret_value(), options.table_prefix, site_url=str(options.url)
    )


def build_source(name: str, options: Any, settings: Settings) -> Source:
    client = legacy(name, options)
    return TotaraSource(
        name,
        api=api(name, options),
        legacy=MoodleSource(name, client, feed="auto") if client is not None else None,
        replica=replica(name, options),
        lookback=timedelta(minutes=options.lookback_minutes),
        managers=options.manager_relation,
    )


def build_sink(name: str, options: Any, settings: Settings) -> Sink:
    reader = replica(name, options)

    def idnumbers() -> dict[tuple[str, int], str]:
        if reader is None:
            return {}
        return {
            (item.kind.value, item.item_id): item.idnumber
            for item in reader.programs()
            if item.idnumber and item.kind in (ItemKind.PROGRAM, ItemKind.CERTIFICATION)
        }

    return TotaraSink(
        name,
        api=api(name, options),
        legacy=legacy(name, options),
        audiences=options.audiences,
        idnumbers=idnumbers,
        message_batch=options.message_batch,
        student_role_id=options.student_role_id,
    )


def refuses(options: Any, channel: str, item_kind: str) -> str | None:
    """What no Totara API can do, whatever the version: plans; and program or certification
    assignment without an audience configured to carry it."""
    if channel == "plan":
        return NO_PLANS
    if channel == "enrol" and item_kind in ("program", "certification") and not options.audiences:
        return f"no Totara API assigns a {item_kind} and no audience is configured for it (sites.<name>.audiences)"
    return None


def webhook(options: Any) -> Webhook | None:
    secret = options.webhook_secret
    return Webhook("X-Totara-Signature", secret.get_secret_value()) if secret is not None else None


def doctor(name: str, options: Any, settings: Settings, needs: Any) -> list[DoctorCheck]:
    source = build_source(name, options, settings)
    sink = build_sink(name, options, settings)
    assert isinstance(source, TotaraSource) and isinstance(sink, TotaraSink)
    return checks(source, sink, needs)


connector = Connector(
    name="totara",
    kind="lms",
    options_model=TotaraOptions,
    build_source=build_source,
    build_sink=build_sink,
    doctor=doctor,
    webhook=webhook,
    refuses=refuses,
)
