"""Registers the SMTP channel under the ``lmsbridge.connectors`` entry point."""

from __future__ import annotations

from typing import Any

from bridge.ports import Connector, Sink
from bridge.settings import Settings
from connectors.email.smtp import SmtpOptions, SmtpSink


def build_sink(name: str, options: Any, settings: Settings) -> Sink:
    return SmtpSink(name, options)


connector = Connector(name="smtp", kind="email", options_model=SmtpOptions, build_sink=build_sink)
