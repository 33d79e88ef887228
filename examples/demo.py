"""`make demo`: real lmsbridge cycles against the bundled Moodle simulator, then their impact.

Starts the simulator on a free 127.0.0.1 port, migrates the SQLite state in ./demo-run and
validates the example mappings. The sample organisation has run lmsbridge once a month since
February 2026, so the demo first replays those cycles: the `lmsbridge sync --once` command at
each past date (pinned with LMSBRIDGE_NOW; run in this process, which saves starting Python
nine times), with the HR export as it was that day and only the completions the simulated
Moodle had recorded by then. Then it runs today's cycle as a real process with the sample HR
files, shows what the simulated Moodle received, and ends with `lmsbridge impact`: whether
each measured mapping's learning moved its KPI. Run it again and
nothing new is sent: the state in ./demo-run remembers (remove that folder to start over).

The demo clock is pinned to a weekday morning just after the sample organisation's history
ends (KPIs run to October 2026), so the output is the same whatever day you run it.
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from datetime import datetime
from pathlib import Path
from typing import Any

from bridge.cli import app
from connectors.moodle.sim.server import Simulator, serve
from connectors.moodle.sim.state import SiteState
from connectors.simulation.export_hr import export
from connectors.simulation.org import Organisation, cycle_times, generate

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "lmsbridge.toml"
RUN_DIR = ROOT / "demo-run"
DEMO_NOW = "2026-11-03T10:00:00+00:00"
TOKEN = "demo-token-0123456789abcdef"  # noqa: S105 - the simulator's throwaway token


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait for a simulator started as a process (mixed_demo.py starts them so)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the Moodle simulator stopped before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/_simulator/state", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the Moodle simulator did not start within 30 s")


def simulator_state(url: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{url}/_simulator/state", timeout=5) as response:
        data: dict[str, object] = json.load(response)
        return data


def lmsbridge(*args: str, env: dict[str, str], check: bool = True) -> int:
    command = [sys.executable, "-m", "bridge", "--config", str(CONFIG), *args]
    print(f"\n$ lmsbridge {' '.join(args)}", flush=True)
    result = subprocess.run(command, env=env, cwd=ROOT, check=False)
    if check and result.returncode not in (0,):
        raise SystemExit(f"lmsbridge {' '.join(args)} exited with {result.returncode}")
    return result.returncode


def reveal_completions(site: SiteState, org: Organisation, until: int) -> None:
    """Record in the simulated Moodle every completion of the organisation made by ``until``."""
    for (user_id, course_id), when in org.completions.items():
        if when <= until:
            site.complete(user_id, course_id, when)


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block (the CLI reads them)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def replay_history(org: Organisation, site: SiteState, env: dict[str, str]) -> None:
    """Run the organisation's past monthly cycles, each with the data as it was that day."""
    cycles = cycle_times(org.anchor)
    print(
        f"\nReplaying the {len(cycles)} monthly cycles run since {cycles[0]:%B %Y}: `lmsbridge sync --once` "
        "at each date, with the HR export of that day and the completions recorded by then.",
        flush=True,
    )
    for when in cycles:
        hr = RUN_DIR / "history" / when.date().isoformat()
        export(org, hr, as_of=when.date())
        reveal_completions(site, org, int(when.timestamp()))
        past = {
            **env,
            "LMSBRIDGE_NOW": when.isoformat(),
            "LMSBRIDGE_FEEDS__HR__PEOPLE": str(hr / "people.csv"),
            "LMSBRIDGE_FEEDS__HR__MEASUREMENTS": str(hr / "kpis.csv"),
            "LMSBRIDGE_FEEDS__HR__REVIEWS": str(hr / "reviews.csv"),
        }
        output = io.StringIO()
        with environment(past), redirect_stdout(output):
            status = app(
                ["--config", str(CONFIG), "sync", "--once"], prog_name="lmsbridge", standalone_mode=False
            )
        if status:
            print(output.getvalue())
            raise SystemExit(f"lmsbridge sync at {when:%Y-%m-%d} exited with {status}")
        done = next((line for line in output.getvalue().splitlines() if line.startswith("cycle done:")), "")
        print(f"  {when:%Y-%m-%d %H:%M} UTC  {done}", flush=True)


def plain(html_text: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", html_text)).split())


def show_received(messages: list[dict[str, Any]], enrolments: list[dict[str, Any]]) -> None:
    print(
        f"\nThe simulated Moodle received {len(messages)} message(s) and {len(enrolments)} enrolment(s) in today's cycle."
    )
    for message in messages:
        text = plain(str(message.get("text", "")))
        print(f"  message to user {message.get('touserid')}: {text[:120]}{'...' if len(text) > 120 else ''}")
    if enrolments:
        print(
            "  enrolments (user -> course): "
            + ", ".join(f"{e.get('userid')}->{e.get('courseid')}" for e in enrolments)
        )
    if messages:
        print("\nOne of those messages in full:\n")
        print("  " + plain(str(messages[-1].get("text", ""))))


def main() -> None:
    RUN_DIR.mkdir(exist_ok=True)
    first_run = not (RUN_DIR / "lmsbridge.db").exists()
    org = generate(1)
    now = int(datetime.fromisoformat(DEMO_NOW).timestamp())
    # On the first run the site starts with what it knew before the first replayed cycle.
    known_until = int(cycle_times(org.anchor)[0].timestamp()) if first_run else now
    site = SiteState.build(
        dataclasses.replace(org, completions={k: v for k, v in org.completions.items() if v <= known_until})
    )
    simulator = serve(Simulator(site, TOKEN))
    url = simulator.url
    env = {
        **os.environ,
        "LMSBRIDGE_NOW": DEMO_NOW,
        "LMSBRIDGE_SITES__MOODLE__URL": url,
        "LMSBRIDGE_SITES__MOODLE__TOKEN": TOKEN,
        "LMSBRIDGE_LOG__LEVEL": "warning",
        "COLUMNS": os.environ.get("COLUMNS", "160"),
    }
    print(f"Moodle simulator on {url} (seed 1)", flush=True)
    try:
        print(f"Demo clock pinned to {DEMO_NOW}; state kept in {RUN_DIR.relative_to(ROOT)}/")
        if not first_run:
            print("This is a repeat run: the state remembers what was sent, so nothing new should go out.")
        lmsbridge("db", "upgrade", env=env)
        lmsbridge("validate", env=env)
        if first_run:
            replay_history(org, site, env)
        reveal_completions(site, org, now)
        with site.lock:
            sent_before = len(site.messages), len(site.enrolled)
        lmsbridge("sync", "--once", env=env)
        with site.lock:
            show_received(site.messages[sent_before[0] :], site.enrolled[sent_before[1] :])
        lmsbridge("impact", env=env)
    finally:
        simulator.stop()


if __name__ == "__main__":
    main()
