"""Delivery: N due learner messages sent to the Moodle simulator (default 10,000).

The store holds N pending message actions, one per learner, all due now; the real delivery
stage claims them in batches, applies every guard (pause, opt-outs, staleness, weekly cap,
sending window) and sends them with ``core_message_send_instant_messages``, 50 to a call.
Prints messages per second and the HTTP calls made. The simulator runs in its own process.

    python -m bench.delivery [--messages 10000] [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Run, add_store_options, scratch_postgres
from bench.organisation import COMPETENCIES, MANAGER_SHARE, TOKEN, calls, moodle_process
from bridge import clock, log
from bridge.cycle import deliver_stage
from bridge.outbox import NewAction, enqueue
from bridge.ports import ActionKind
from bridge.records import Person
from bridge.registry import sinks
from bridge.settings import Settings
from bridge.store.db import make_engine, upgrade
from bridge.store.ingest import write_records
from connectors.simulation.loopback import free_port
from connectors.simulation.org import generate

NOW = datetime(2026, 11, 3, 10, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    add_store_options(parser)
    args = parser.parse_args()
    log.configure("warning")
    run = Run(f"delivery-{args.store}-{args.messages}")
    org = generate(
        1, people=args.messages, courses=12, manager_share=MANAGER_SHARE, competencies=COMPETENCIES
    )
    with tempfile.TemporaryDirectory() as raw, ExitStack() as stack:
        root = Path(raw)
        url = stack.enter_context(moodle_process(args.messages, free_port(), courses=12, run=run))
        store = (
            f"sqlite:///{root / 'state.db'}"
            if args.store == "sqlite"
            else stack.enter_context(scratch_postgres(args.postgres_url))
        )
        settings = Settings(
            store={"url": store}, sites={"moodle": {"type": "moodle", "url": url, "token": TOKEN}}
        )
        engine = make_engine(store)
        upgrade(engine)
        clock.set_now(NOW)
        with engine.begin() as conn:
            write_records(
                conn, [Person(p.person_id, first_name=p.first_name, timezone="UTC") for p in org.people], NOW
            )
            enqueue(
                conn,
                [
                    NewAction(
                        key=f"bench/{p.person_id}",
                        purpose="recommend",
                        kind=ActionKind.MESSAGE,
                        site="moodle",
                        due_at=NOW,
                        person_id=p.person_id,
                        recipient_person_id=p.person_id,
                        recipient_user_id=p.user_id,
                        subject="A short course for you",
                        body_html=f"<p>Hello {p.first_name}, here is a short course for you.</p>",
                        body_text=f"Hello {p.first_name}, here is a short course for you.",
                    )
                    for p in org.people
                ],
                NOW,
            )
        calls(url)
        with run.stage(f"deliver {args.messages:,} due messages") as stage:
            report = deliver_stage(engine, settings, sinks(settings))
        made = calls(url)
        sent = report.states.get("sent", 0)
        stage.figures.update(
            sent=sent, http_calls=made, messages_per_second=round(sent / max(stage.wall_s, 1e-9))
        )
        print(
            f"  {sent:,} sent in {stage.wall_s:.1f} s = {sent / max(stage.wall_s, 1e-9):,.0f} messages/s with {sum(made.values()):,} HTTP calls"
        )
        run.notes.update(messages=args.messages, sent=sent, http_calls=made, store=args.store)
        engine.dispose()
        clock.set_now(None)
    print(f"results: {run.save()}")


if __name__ == "__main__":
    main()
