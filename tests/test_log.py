"""The log redactor: secrets never reach output, whatever shape they arrive in."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bridge import log

TOKEN = "a1b2c3d4e5f6a7b8c9d0"


@pytest.fixture
def output() -> io.StringIO:
    stream = io.StringIO()
    log.configure("debug", "json", stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_fields_named_like_secrets_are_masked(output: io.StringIO) -> None:
    log.get_logger("t").info("calling", token=TOKEN, password="hunter22", client_secret="s3cr3t", user="ana")
    (event,) = lines(output)
    assert event["token"] == event["password"] == event["client_secret"] == "***"
    assert event["user"] == "ana"


def test_urls_bodies_and_headers_are_scrubbed(output: io.StringIO) -> None:
    logger = log.get_logger("t")
    logger.warning(
        "request", url=f"https://lms.example/webservice/rest/server.php?wstoken={TOKEN}&wsfunction=x"
    )
    logger.warning("body", body=f"wstoken={TOKEN}&moodlewsrestformat=json")
    logger.warning("headers", headers={"Authorization": f"Bearer {TOKEN}", "Accept": "json"})
    logger.warning("dsn", url="postgresql://bridge:pa55word@db:5432/lms")
    text = output.getvalue()
    assert TOKEN not in text and "pa55word" not in text
    assert "wstoken=***" in text and "bridge:***@db" in text


def test_registered_secrets_are_masked_anywhere(output: io.StringIO) -> None:
    log.register_secrets(["opaque-value-1234"])
    log.get_logger("t").error("failed", detail="server said opaque-value-1234 is bad")
    assert "opaque-value-1234" not in output.getvalue()


def test_exceptions_are_scrubbed(output: io.StringIO) -> None:
    try:
        raise ConnectionError(f"POST https://lms/x?wstoken={TOKEN} failed")
    except ConnectionError:
        log.get_logger("t").exception("boom")
    assert TOKEN not in output.getvalue()


def test_standard_library_loggers_go_through_the_redactor(output: io.StringIO) -> None:
    logging.getLogger("urllib3.connectionpool").warning("Retrying https://lms/x?token=%s", TOKEN)
    assert TOKEN not in output.getvalue()
    assert "token=***" in output.getvalue()
