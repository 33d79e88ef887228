"""Write the synthetic organisation's HR side as the CSV files an HR system would export.

python -m connectors.simulation.export_hr --seed 1 --out examples/hr

With ``--as-of DATE`` the files are the export as it looked on that day: people who had
started by then (without a manager who had not), and KPI periods and reviews that had ended
before it (the demo replays past cycles with these).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

from connectors.simulation.org import Organisation, OrgPerson, generate

PEOPLE_HEADER = [
    "Employee ID",
    "Employee Number",
    "First Name",
    "Last Name",
    "Work Email",
    "Manager Employee Number",
    "Department",
    "Job Title",
    "Location",
    "Time Zone",
    "Locale",
    "Start Date",
    "Active",
]
KPI_HEADER = ["Employee Number", "Metric", "Period Start", "Period End", "Value"]
REVIEW_HEADER = ["Employee Number", "Competency", "Rater", "Period Start", "Period End", "Rating"]


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def export(org: Organisation, out: Path, as_of: date | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    people = org.people
    known = {p.employee_number for p in people if as_of is None or p.start_date <= as_of}

    def ended(person: str, end: date) -> bool:
        return person in known and (as_of is None or end < as_of)

    def manager(person: OrgPerson) -> str:
        number = people[person.manager_index].employee_number if person.manager_index is not None else ""
        return number if number in known else ""

    _write(
        out / "people.csv",
        PEOPLE_HEADER,
        (
            [
                p.person_id,
                p.employee_number,
                p.first_name,
                p.last_name,
                p.email,
                manager(p),
                p.department,
                p.job_title,
                p.location,
                p.timezone,
                p.locale,
                p.start_date.isoformat(),
                "yes" if p.active else "no",
            ]
            for p in people
            if p.employee_number in known
        ),
    )
    _write(
        out / "kpis.csv",
        KPI_HEADER,
        ([n, m, s.isoformat(), e.isoformat(), v] for n, m, s, e, v in org.measurements() if ended(n, e)),
    )
    _write(
        out / "reviews.csv",
        REVIEW_HEADER,
        (
            [n, c, r, s.isoformat(), e.isoformat(), label]
            for n, c, r, s, e, label in org.reviews()
            if ended(n, e)
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--people", type=int, default=80)
    parser.add_argument("--out", type=Path, default=Path("examples/hr"))
    parser.add_argument("--as-of", type=date.fromisoformat, default=None, help="YYYY-MM-DD")
    args = parser.parse_args()
    export(generate(args.seed, people=args.people), args.out, args.as_of)


if __name__ == "__main__":
    main()
