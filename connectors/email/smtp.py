"""The SMTP sink: one message per action, text and HTML, over STARTTLS or TLS with authentication.

Each message carries a Message-ID derived from the action's idempotency key and an
``X-Lmsbridge-Key`` header, so a message resent after a crash is recognisable as the same one
by mail systems and people. SMTP offers no way to ask whether a message was delivered, so an
email whose outcome was lost in a crash is sent again (at least once), never silently dropped.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bridge.errors import BridgeError, Remedy
from bridge.log import get_logger, redact_text
from bridge.ports import ActionKind, DeliveryOutcome, OutcomeStatus, OutgoingAction

log = get_logger(__name__)


class SmtpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="none only for a local relay."
    )
    username: str | None = None
    password: SecretStr | None = None
    from_address: str
    from_name: str = "Learning team"
    reply_to: str | None = None
    timeout_seconds: float = Field(default=30, gt=0)
    ca_file: str | None = Field(
        default=None, description="CA bundle for the server's certificate (default: the system's)."
    )


def message_id(key: str, domain: str) -> str:
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


class SmtpSink:
    kinds = frozenset({ActionKind.EMAIL})

    def __init__(self, name: str, options: SmtpOptions) -> None:
        self.name = name
        self.options = options
        self.domain = options.from_address.rpartition("@")[2] or "lmsbridge.invalid"

    def _connect(self) -> smtplib.SMTP:
        o = self.options
        context = ssl.create_default_context(cafile=o.ca_file)
        try:
            client: smtplib.SMTP
            if o.security == "tls":
                client = smtplib.SMTP_SSL(o.host, o.port, timeout=o.timeout_seconds, context=context)
            else:
                client = smtplib.SMTP(o.host, o.port, timeout=o.timeout_seconds)
                if o.security == "starttls":
                    client.starttls(context=context)
            if o.username and o.password:
                client.login(o.username, o.password.get_secret_value())
        except smtplib.SMTPAuthenticationError:
            raise BridgeError(
                f"the SMTP server for channel '{self.name}' rejected the user name or password"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            error = BridgeError(
                f"cannot reach the SMTP server for channel '{self.name}': {redact_text(str(exc))}"
            )
            error.remedy = Remedy.RETRY
            raise error from None
        return client

    def compose(self, action: OutgoingAction) -> EmailMessage:
        message = EmailMessage()
        message["From"] = formataddr((self.options.from_name, self.options.from_address))
        message["To"] = action.recipient_email or ""
        message["Subject"] = action.subject
        message["Message-ID"] = (
            message_id(action.key, self.domain) if action.key else make_msgid(domain=self.domain)
        )
        message["X-Lmsbridge-Key"] = action.key
        if self.options.reply_to:
            message["Reply-To"] = self.options.reply_to
        message.set_content(action.body_text)
        message.add_alternative(f"<html><body>{action.body_html}</body></html>", subtype="html")
        return message

    def deliver(self, actions: Sequence[OutgoingAction]) -> list[DeliveryOutcome]:
        outcomes: list[DeliveryOutcome] = []
        sendable = []
        for action in actions:
            if not action.recipient_email:
                outcomes.append(DeliveryOutcome(action.key, OutcomeStatus.DEAD, error="no email address"))
            else:
                sendable.append(action)
        if not sendable:
            return outcomes
        client = self._connect()
        try:
            for action in sendable:
                outcomes.append(self._send(client, action))
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()
        return outcomes

    def _send(self, client: smtplib.SMTP, action: OutgoingAction) -> DeliveryOutcome:
        message = self.compose(action)
        try:
            refused = client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reason = next(iter(exc.recipients.values()))
            status = OutcomeStatus.RETRY if 400 <= code < 500 else OutcomeStatus.DEAD
            return DeliveryOutcome(
                action.key, status, error=f"recipient refused: {code} {reason.decode(errors='replace')}"
            )
        except smtplib.SMTPResponseException as exc:
            status = OutcomeStatus.RETRY if 400 <= exc.smtp_code < 500 else OutcomeStatus.DEAD
            detail = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            return DeliveryOutcome(action.key, status, error=f"{exc.smtp_code} {detail}")
        except (OSError, smtplib.SMTPException) as exc:
            return DeliveryOutcome(action.key, OutcomeStatus.RETRY, error=redact_text(str(exc)))
        if refused:
            return DeliveryOutcome(action.key, OutcomeStatus.DEAD, error=f"refused: {refused}")
        log.info("email sent", key=action.key)
        return DeliveryOutcome(action.key, OutcomeStatus.SENT, external_id=str(message["Message-ID"]))

    def reconcile(self, action: OutgoingAction) -> DeliveryOutcome | None:
        return None  # SMTP cannot be asked; see the module docstring
