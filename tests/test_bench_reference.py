"""The fast paths of issue 18 decide, queue, send and store exactly what the code before them did.

The benchmark's own organisation (400 learners, 300 courses, 20 mappings) goes through the
benchmark's pipeline — initial sync of the HR files and the Moodle simulator, evaluation of
everyone, delivery, then a steady cycle after 1% completed a course — on SQLite and PostgreSQL.
Every table the pipeline writes is then compared with a stored fingerprint
(tests/data/bench_reference.json) taken by running this same pipeline on the code before the
bulk paths (per-row SQLAlchemy binds, one UPDATE per outcome: first taken on c04ea40, taken again
on 7146101, main just before the bulk paths were merged, whose messages and tables other changes of
the same day had changed; the recommendations' again after 4901c52 added the manager's words,
explanation.manager_facts, having checked that without that key every row is 7146101's): the
fingerprint is the old code's output, not the straightforward path run again here. A change that means to change what is decided or stored regenerates it
from the commit before it, the same way.

What is left out of a fingerprint is what no two runs share: surrogate ids (PostgreSQL spends
sequence numbers on conflicting inserts), claim tokens and workers, random version and dirty
marks, job timings, and the run's scratch directory and simulator port. Each store has its fingerprint (taken on
that store; today the two agree).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from bench.common import Run
from bench.organisation import COMPETENCIES, COURSES, MANAGER_SHARE, TOKEN, pipeline
from bridge.store import schema
from bridge.store.db import make_engine
from connectors.moodle.simulator import start_in_thread
from connectors.simulation.org import NAMED_COURSES

LEARNERS = 400
REFERENCE = Path(__file__).parent / "data" / "bench_reference.json"
SKIPPED_TABLES = {"control", "dirty_people", "job_runs", "source_health"}
SKIPPED_COLUMNS = {"id", "claim_token", "claimed_by", "claimed_at", "lease_until"}


def fingerprints(engine: Engine, run_specific: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per table: rows and a SHA-256 over them, canonical, each ``run_specific`` text (the
    scratch directory, the simulator's URL) replaced by its placeholder."""
    recommendations = schema.recommendations
    with engine.connect() as conn:
        episode = {
            r.id: [r.mapping_id, r.person_id, r.episode]
            for r in conn.execute(
                select(
                    recommendations.c.id,
                    recommendations.c.mapping_id,
                    recommendations.c.person_id,
                    recommendations.c.episode,
                )
            )
        }
        result: dict[str, dict[str, Any]] = {}
        for table in schema.metadata.sorted_tables:
            if table.name in SKIPPED_TABLES:
                continue
            columns = [c for c in table.columns if c.name not in SKIPPED_COLUMNS]
            rows = []
            for row in conn.execute(select(*columns)):
                values = dict(row._mapping)
                if "recommendation_id" in values:
                    values["recommendation_id"] = episode.get(values["recommendation_id"])
                line = json.dumps(values, sort_keys=True, default=str)
                for text, placeholder in run_specific.items():
                    line = line.replace(text, placeholder)
                rows.append(line)
            rows.sort()
            digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
            result[table.name] = {"rows": len(rows), "sha256": digest}
    return result


def run_pipeline(store_url: str, root: Path) -> dict[str, dict[str, Any]]:
    site = start_in_thread(
        TOKEN,
        people=LEARNERS,
        courses=COURSES - len(NAMED_COURSES),
        manager_share=MANAGER_SHARE,
        competencies=COMPETENCIES,
    )
    try:
        pipeline(LEARNERS, store_url, root, site.url, Run("reference"))
    finally:
        site.stop()
    engine = make_engine(store_url)
    try:
        return fingerprints(engine, {str(root): "<root>", site.url: "<site>"})
    finally:
        engine.dispose()


def test_the_bench_organisation_comes_out_as_before(engine: Engine, tmp_path: Path) -> None:
    store_url = engine.url.render_as_string(hide_password=False)
    got = run_pipeline(store_url, tmp_path)
    expected = json.loads(REFERENCE.read_text())[engine.dialect.name]
    assert got["recommendations"]["rows"] > 100 and got["actions"]["rows"] > 100  # a real cycle ran
    assert {name: f["rows"] for name, f in got.items()} == {name: f["rows"] for name, f in expected.items()}
    assert got == expected
