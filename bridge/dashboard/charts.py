"""Chart data for the mapping page, as plain JSON the page's static script hands to Chart.js.

The specs describe what to draw (series, points, axis titles), not how: the Chart.js options
live in ``static/dashboard.js``, so this module knows nothing about the charting library and
the page needs no inline script (the Content-Security-Policy allows only ``script-src 'self'``).
"""

from __future__ import annotations

from typing import Any

from bridge.impact import MappingImpact
from bridge.impact_stats import Survival

COHORT_LABELS = {
    "completed": "Completed",
    "not_completed": "Contacted, not completed",
    "not_contacted": "Not contacted (no message delivered)",
    "holdout": "Holdout (not contacted)",
}


def cohort_label(key: str) -> str:
    return COHORT_LABELS.get(key, key.replace("_", " ").capitalize())


def before_after(impact: MappingImpact, metric_label: str, target: float | None) -> dict[str, Any]:
    """A slope chart: each cohort's mean KPI in the window before and the window after."""
    return {
        "kind": "slope",
        "labels": [f"{impact.before_days} days before", f"{impact.after_days} days after"],
        "series": [
            {
                "key": key,
                "label": f"{cohort_label(key)} (n={cohort.n})",
                "values": [cohort.mean_before, cohort.mean_after],
            }
            for key, cohort in impact.cohorts.items()
            if cohort.n
        ],
        "target": target,
        "yTitle": metric_label,
    }


def time_to_competency(survival: Survival, until_days: float) -> dict[str, Any]:
    """The Kaplan-Meier curve turned upside down: the share who have completed, by day.

    The curve starts at (0, 0) and steps up at each time somebody completed; people who have
    not completed yet are censored in the estimate rather than counted as never completing,
    and the curve runs flat to ``until_days`` (the longest anyone has been followed: the oldest
    recommendation's age today), not only to the last completion.
    """
    points = [{"x": 0.0, "y": 0.0}]
    points += [
        {"x": time, "y": round(100.0 * (1.0 - share), 2)}
        for time, share in zip(survival.times, survival.survival, strict=True)
    ]
    if until_days > points[-1]["x"]:
        points.append({"x": round(until_days, 2), "y": points[-1]["y"]})
    return {
        "kind": "steps",
        "label": "Completed (%)",
        "points": points,
        "median": survival.median,
        "xTitle": "days since the recommendation",
        "yTitle": "completed (%)",
    }
