"""The SMTP channel against a real SMTP server on 127.0.0.1 (aiosmtpd) with STARTTLS and AUTH."""

from __future__ import annotations

import email
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from bridge.errors import BridgeError
from bridge.ports import ActionKind, OutcomeStatus, OutgoingAction
from connectors.email.smtp import SmtpOptions, SmtpSink

PASSWORD = "smtp-pass-123"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("bounce"):
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Inbox, SmtpOptions]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
    )
    controller.start()
    options = SmtpOptions(
        host="127.0.0.1",
        port=port,
        username="bridge",
        password=PASSWORD,
        from_address="learning@example.org",
        ca_file=str(ca_file),
    )
    try:
        yield inbox, options
    finally:
        controller.stop()


def action(key: str, to: str) -> OutgoingAction:
    return OutgoingAction(
        key=key,
        kind=ActionKind.EMAIL,
        site="email",
        recipient_user_id=None,
        recipient_email=to,
        subject="Your team's follow-ups",
        body_html="<p>Hello &lt;Ana&gt;</p>",
        body_text="Hello <Ana>",
    )


def test_sends_text_and_html_over_starttls_with_auth(server: tuple[Inbox, SmtpOptions]) -> None:
    inbox, options = server
    outcomes = SmtpSink("email", options).deliver(
        [action("k1", "mia@example.org"), action("k2", "bounce@example.org")]
    )
    assert [o.status for o in outcomes] == [OutcomeStatus.SENT, OutcomeStatus.DEAD]
    assert "550" in (outcomes[1].error or "")
    (message,) = inbox.messages
    assert message["To"] == "mia@example.org" and message["X-Lmsbridge-Key"] == "k1"
    assert message["Message-ID"] == outcomes[0].external_id
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in message.walk()
        if not p.is_multipart()
    }
    assert "Hello <Ana>" in parts["text/plain"] and "Hello &lt;Ana&gt;" in parts["text/html"]


def test_same_action_gets_the_same_message_id(server: tuple[Inbox, SmtpOptions]) -> None:
    inbox, options = server
    sink = SmtpSink("email", options)
    sink.deliver([action("k1", "mia@example.org")])
    sink.deliver([action("k1", "mia@example.org")])
    assert inbox.messages[0]["Message-ID"] == inbox.messages[1]["Message-ID"]


def test_wrong_password_is_one_clear_error_without_the_password(server: tuple[Inbox, SmtpOptions]) -> None:
    _inbox, options = server
    bad = options.model_copy(update={"password": SecretStr("wrong-secret-999")})
    with pytest.raises(BridgeError) as info:
        SmtpSink("email", bad).deliver([action("k1", "mia@example.org")])
    assert str(info.value) == "the SMTP server for channel 'email' rejected the user name or password"
    assert "wrong-secret-999" not in str(info.value)


def test_unreachable_server_is_retried(server: tuple[Inbox, SmtpOptions]) -> None:
    _inbox, options = server
    closed = options.model_copy(update={"port": 1})
    with pytest.raises(BridgeError) as info:
        SmtpSink("email", closed).deliver([action("k1", "mia@example.org")])
    assert info.value.remedy.value == "retry"
