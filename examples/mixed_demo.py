"""`make demo-mixed`: one lmsbridge cycle against a Moodle and a Totara site side by side.

Starts both simulators (seeded with the same organisation, so each person has an account on
both sites under the same employee number), writes the Totara simulator's completion tables to
a SQLite file that plays the read-only replica, and runs the real `lmsbridge doctor` and
`lmsbridge sync --once` with examples/mixed/lmsbridge.toml. It then shows what each site
received and, for one person known on both sites, the single set of recommendations they got.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo import DEMO_NOW, ROOT, RUN_DIR, TOKEN, plain, simulator_state, wait_ready

from connectors.simulation.loopback import free_port

CONFIG = ROOT / "examples" / "mixed" / "lmsbridge.toml"
CLIENT_SECRET = "demo-client-secret-0123456789"  # noqa: S105 - the simulator's throwaway secret


def lmsbridge(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    print(f"\n$ lmsbridge {' '.join(args)}", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "--config", str(CONFIG), *args],
        env=env,
        cwd=ROOT,
        check=False,
        text=True,
        capture_output=True,
    )
    print(result.stdout, end="")
    print(result.stderr, end="", file=sys.stderr)
    if check and result.returncode != 0:
        raise SystemExit(f"lmsbridge {' '.join(args)} exited with {result.returncode}")
    return result


def start(kind: str, port: int, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bridge", "simulator", kind, "--port", str(port), "--seed", "1", *extra]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    wait_ready(f"http://127.0.0.1:{port}", process)
    return process


def show(site: str, state: dict[str, object]) -> None:
    messages = state.get("messages", [])
    enrolments = state.get("enrolments", [])
    audiences = state.get("audiences", {})
    assert isinstance(messages, list) and isinstance(enrolments, list) and isinstance(audiences, dict)
    added = {name: members for name, members in audiences.items() if members}
    print(f"\n{site} received {len(messages)} message(s) and {len(enrolments)} enrolment(s)", end="")
    print(f"; audience members added: {added}" if added else "")


def on_both_sites(database: Path) -> str | None:
    """An employee number with recommendations on both sites, to show with `lmsbridge why`."""
    with sqlite3.connect(database) as db:
        row = db.execute(
            "SELECT p.employee_number FROM people p JOIN actions a ON a.person_id = p.person_id "
            "WHERE a.purpose = 'recommend' GROUP BY p.person_id "
            "HAVING COUNT(DISTINCT a.site) > 1 ORDER BY p.employee_number LIMIT 1"
        ).fetchone()
    return str(row[0]) if row else None


def main() -> None:
    # ./demo-run unless LMSBRIDGE_DEMO_RUN names another folder (the tests give each run its own).
    run_dir = Path(os.environ.get("LMSBRIDGE_DEMO_RUN", RUN_DIR))
    run_dir.mkdir(exist_ok=True)
    moodle_port, totara_port = free_port(), free_port()
    replica = run_dir / "totara-replica.db"
    database = run_dir / "mixed.db"
    env = {
        **os.environ,
        "LMSBRIDGE_STORE__URL": f"sqlite:///{database}",
        "LMSBRIDGE_NOW": DEMO_NOW,
        "LMSBRIDGE_SITES__MOODLE__URL": f"http://127.0.0.1:{moodle_port}",
        "LMSBRIDGE_SITES__MOODLE__TOKEN": TOKEN,
        "LMSBRIDGE_SITES__TOTARA__URL": f"http://127.0.0.1:{totara_port}",
        "LMSBRIDGE_SITES__TOTARA__TOKEN": TOKEN,
        "LMSBRIDGE_SITES__TOTARA__CLIENT_SECRET": CLIENT_SECRET,
        "LMSBRIDGE_SITES__TOTARA__REPLICA_URL": f"sqlite:///{replica}",
        "LMSBRIDGE_LOG__LEVEL": "warning",
        "COLUMNS": os.environ.get("COLUMNS", "160"),
    }
    database.unlink(missing_ok=True)  # the mixed demo always starts from nothing
    print(
        f"Starting the Moodle simulator on port {moodle_port} and the Totara simulator on port {totara_port} ..."
    )
    moodle = start("moodle", moodle_port, env, "--token", TOKEN)
    totara = start(
        "totara",
        totara_port,
        env,
        "--client-id",
        "lmsbridge-demo",
        "--client-secret",
        CLIENT_SECRET,
        "--token",
        TOKEN,
        "--replica",
        str(replica),
    )
    try:
        lmsbridge("db", "upgrade", env=env)
        lmsbridge("validate", env=env)
        lmsbridge("doctor", env=env, check=False)
        lmsbridge("sync", "--once", env=env)
        show("Moodle", simulator_state(env["LMSBRIDGE_SITES__MOODLE__URL"]))
        totara_state = simulator_state(env["LMSBRIDGE_SITES__TOTARA__URL"])
        show("Totara", totara_state)
        messages = totara_state.get("messages", [])
        if isinstance(messages, list) and messages:
            print("\nOne Totara message in full:\n\n  " + plain(str(messages[0].get("text", ""))))
        person = on_both_sites(database)
        if person:
            print(f"\n{person} has an account on both sites; one person, one set of recommendations:")
            lmsbridge("why", person, env=env)
    finally:
        for process in (moodle, totara):
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
