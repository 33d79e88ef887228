"""Effects in words, as the CLI and README state them: a point estimate only when its 95%
interval excludes 0, and then what it means for the metric (better or worse, higher or lower)."""

from __future__ import annotations

from bridge.impact_stats import Estimate


def detectable(estimate: Estimate | None) -> bool:
    """Whether the estimate is an effect at all: its 95% interval excludes 0."""
    return estimate is not None and not estimate.covers(0.0)


def effect_in_words(estimate: Estimate, direction: str) -> str:
    """ "0.45 higher: better" for an effect whose interval excludes 0, "no detectable effect" otherwise.

    Estimates are signed so that positive means improved; ``direction`` ("higher" or "lower"
    is better) turns that back into which way the metric itself moved.
    """
    if not detectable(estimate):
        return "no detectable effect"
    improved = estimate.effect > 0
    moved_up = improved == (direction == "higher")
    return f"{abs(estimate.effect):,.2f} {'higher' if moved_up else 'lower'}: {'better' if improved else 'worse'}"
