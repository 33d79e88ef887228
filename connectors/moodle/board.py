"""Learners' open recommendations, written to the companion plugin's "Recommended for you".

``local_lmsbridge_set_recommendations`` replaces each given user's whole set (an empty list
clears it), so a recommendation closed in lmsbridge disappears from the block with the next set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bridge.log import get_logger
from bridge.ports import ShownRecommendation
from connectors.moodle.changes import SET_RECOMMENDATIONS
from connectors.moodle.client import MoodleClient

log = get_logger(__name__)

TITLE_MAX = 1333  # local_lmsbridge_recs.title


class MoodleBoard:
    def __init__(self, client: MoodleClient) -> None:
        self.client = client

    def show(self, shown: Mapping[int, Sequence[ShownRecommendation]]) -> None:
        entries = [{"userid": uid, "items": [item(r) for r in items]} for uid, items in shown.items()]
        answer = self.client.call(SET_RECOMMENDATIONS, {"recommendations": entries})
        # A user the site no longer has is reported in a warning (the client logs each one);
        # their set is gone with them, so nothing is left to retry.
        log.debug("recommendations written", site=self.client.site, users=answer.get("users"))


def item(shown: ShownRecommendation) -> dict[str, Any]:
    return {
        "reference": shown.reference,
        "title": shown.title[:TITLE_MAX],
        "reason": shown.reason,
        "url": shown.url or "",
        "duedate": int(shown.due_at.timestamp()) if shown.due_at else 0,
        "managerid": shown.manager_user_id or 0,
    }
