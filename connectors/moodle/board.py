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
FIELDS_PER_CALL = 3000  # below the client's MAX_FIELDS, itself below Moodle's max_input_vars


class MoodleBoard:
    def __init__(self, client: MoodleClient) -> None:
        self.client = client

    def show(self, shown: Mapping[int, Sequence[ShownRecommendation]]) -> None:
        """One call, or several when the sets would make too many form fields for one request."""
        batch: list[dict[str, Any]] = []
        fields = 0
        for uid, items in shown.items():
            values = [item(r) for r in items]
            entry: dict[str, Any] = {"userid": uid, "items": values}
            size = 1 + sum(len(v) for v in values)
            if batch and fields + size > FIELDS_PER_CALL:
                self._write(batch)
                batch, fields = [], 0
            batch.append(entry)
            fields += size
        if batch:
            self._write(batch)

    def _write(self, entries: list[dict[str, Any]]) -> None:
        answer = self.client.call(SET_RECOMMENDATIONS, {"recommendations": entries})
        # A user the site no longer has is reported in a warning (the client logs each one);
        # their set is gone with them, so nothing is left to retry.
        log.debug("recommendations written", site=self.client.site, users=answer.get("users"))


def item(shown: ShownRecommendation) -> dict[str, Any]:
    return {
        "reference": shown.reference,
        "title": shown.title[:TITLE_MAX],
        "reason": shown.reason,
        "managerreason": shown.manager_reason,
        "url": shown.url or "",
        "duedate": int(shown.due_at.timestamp()) if shown.due_at else 0,
        "managerid": shown.manager_user_id or 0,
    }
