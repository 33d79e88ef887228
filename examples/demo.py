"""`make demo`: one real lmsbridge cycle against the bundled Moodle simulator.

Starts the simulator on a free 127.0.0.1 port, migrates the SQLite state in ./demo-run,
validates the example mappings, runs `lmsbridge sync --once` as a real process over HTTP with
the sample HR files, and shows what the simulated Moodle received. Run it again and nothing
new is sent: the state in ./demo-run remembers (remove that folder to start over).

The demo clock is pinned to a weekday morning just after the sample organisation's history
ends (KPIs run to October 2026), so the output is the same whatever day you run it.
"""

from __future__ import annotations

import html
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "lmsbridge.toml"
RUN_DIR = ROOT / "demo-run"
DEMO_NOW = "2026-11-03T10:00:00+00:00"
TOKEN = "demo-token-0123456789abcdef"  # noqa: S105 - the simulator's throwaway token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lmsbridge(*args: str, env: dict[str, str], check: bool = True) -> int:
    command = [sys.executable, "-m", "bridge", "--config", str(CONFIG), *args]
    print(f"\n$ lmsbridge {' '.join(args)}", flush=True)
    result = subprocess.run(command, env=env, cwd=ROOT, check=False)
    if check and result.returncode not in (0,):
        raise SystemExit(f"lmsbridge {' '.join(args)} exited with {result.returncode}")
    return result.returncode


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
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


def plain(html_text: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", html_text)).split())


def show_received(state: dict[str, object]) -> None:
    messages = state.get("messages", [])
    enrolments = state.get("enrolments", [])
    assert isinstance(messages, list) and isinstance(enrolments, list)
    print(
        f"\nThe simulated Moodle received {len(messages)} message(s) and {len(enrolments)} enrolment(s) in this run."
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
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "LMSBRIDGE_NOW": DEMO_NOW,
        "LMSBRIDGE_SITES__MOODLE__URL": url,
        "LMSBRIDGE_SITES__MOODLE__TOKEN": TOKEN,
        "LMSBRIDGE_LOG__LEVEL": "warning",
        "COLUMNS": os.environ.get("COLUMNS", "160"),
    }
    first_run = not (RUN_DIR / "lmsbridge.db").exists()
    print(f"Starting the Moodle simulator on {url} (seed 1) ...", flush=True)
    simulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge",
            "simulator",
            "moodle",
            "--port",
            str(port),
            "--seed",
            "1",
            "--token",
            TOKEN,
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_ready(url, simulator)
        print(f"Demo clock pinned to {DEMO_NOW}; state kept in {RUN_DIR.relative_to(ROOT)}/")
        if not first_run:
            print("This is a repeat run: the state remembers what was sent, so nothing new should go out.")
        lmsbridge("db", "upgrade", env=env)
        lmsbridge("validate", env=env)
        lmsbridge("sync", "--once", env=env)
        show_received(simulator_state(url))
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)


if __name__ == "__main__":
    main()
