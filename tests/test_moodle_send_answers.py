"""Message-send answers of the wrong shape (issue 16, item 10): one clear outcome, no traceback.

Moodle answered, so the messages may have gone: each such outcome is *unknown*, and the outbox
checks the site (by the message's Ref code) before any resend, never sending again blindly.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import responses

from bridge.ports import ActionKind, OutcomeStatus, OutgoingAction
from connectors.moodle.client import MoodleClient
from connectors.moodle.sink import MoodleSink

URL = "https://lms.example.org"
ENDPOINT = URL + "/webservice/rest/server.php"


def actions(n: int) -> list[OutgoingAction]:
    return [
        OutgoingAction(
            key=f"k{i}",
            kind=ActionKind.MESSAGE,
            site="moodle",
            recipient_user_id=10 + i,
            recipient_email=None,
            subject="Hello",
            body_html="<p>Hi</p>",
            body_text="Hi",
        )
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "answer",
    [
        None,  # JSON null: no result at all
        {"msgid": 5},  # a dict where a list belongs
        [{"msgid": "abc"}, {"msgid": "abc"}],
        [{"msgid": None}, {"msgid": None}],
        ["sent", "sent"],  # a list of strings
        [{"msgid": 7}],  # one result for two messages
    ],
    ids=["missing", "dict", "msgid-abc", "msgid-null", "strings", "too-few"],
)
@responses.activate
def test_a_wrong_shaped_answer_leaves_each_outcome_unknown(answer: Any) -> None:
    responses.post(ENDPOINT, body=json.dumps(answer), content_type="application/json")
    sink = MoodleSink("moodle", MoodleClient("moodle", URL, "t0k3n-0123456789abcdef", max_wait=0.01))
    outcomes = sink.deliver(actions(2))
    assert [o.key for o in outcomes] == ["k0", "k1"]
    assert {o.status for o in outcomes} == {OutcomeStatus.UNKNOWN}
    assert all("core_message_send_instant_messages" in (o.error or "") for o in outcomes)


@responses.activate
def test_a_readable_answer_is_taken_message_by_message() -> None:
    refused = {"msgid": -1, "errormessage": "The user can't receive messages"}
    responses.post(ENDPOINT, json=[{"msgid": "42"}, refused])
    sink = MoodleSink("moodle", MoodleClient("moodle", URL, "t0k3n-0123456789abcdef", max_wait=0.01))
    sent, dead = sink.deliver(actions(2))
    assert (sent.status, sent.external_id) == (OutcomeStatus.SENT, "42")
    assert dead.status is OutcomeStatus.DEAD and "can't receive messages" in (dead.error or "")
