"""``lmsbridge simulator totara``: run the Totara simulator on 127.0.0.1 until stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from connectors.moodle.sim.state import SiteState
from connectors.moodle.simulator import listening, serve_until_stopped
from connectors.simulation.org import generate
from connectors.totara.sim.schema import release as totara_release
from connectors.totara.sim.server import RunningTotara, TotaraSimulator, serve


def start_in_thread(
    client_id: str,
    client_secret: str,
    *,
    token: str | None = None,
    seed: int = 1,
    people: int = 80,
    courses: int = 12,
    release: str = "19.0",
    replica: Path | None = None,
    port: int = 0,
) -> RunningTotara:
    """A Totara simulator serving on 127.0.0.1 in a background thread (port 0: any free port)."""
    org = generate(seed, people=people, courses=courses)
    state = SiteState.build(org)
    simulator = TotaraSimulator(
        state,
        org,
        client_id=client_id,
        client_secret=client_secret,
        token=token,
        release=release,
        replica=replica,
    )
    return serve(simulator, port)


def command(
    client_id: Annotated[str, typer.Option("--client-id", help="The API client's id.")],
    client_secret: Annotated[str, typer.Option("--client-secret", help="The API client's secret.")],
    token: Annotated[
        str | None, typer.Option("--token", help="Legacy web-service token (default: a random one).")
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 8090,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic organisation.")] = 1,
    people: Annotated[int, typer.Option("--people", help="People in the organisation.")] = 80,
    release: Annotated[
        str,
        typer.Option(
            "--version",
            "--release",
            help="Totara release to behave as: 17.3 (the reference schema), 18 or 19; a major means its known release.",
        ),
    ] = "19",
    replica: Annotated[
        Path | None, typer.Option("--replica", help="Write Totara's completion tables to this SQLite file.")
    ] = None,
) -> None:
    """Serve a simulated Totara site: OAuth 2.0, the external GraphQL API and legacy web services."""
    try:
        name = totara_release(release).name
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--version") from None
    handle = listening(
        lambda: start_in_thread(
            client_id,
            client_secret,
            token=token,
            seed=seed,
            people=people,
            release=name,
            replica=replica,
            port=port,
        ),
        port,
    )
    serve_until_stopped(handle, f"Totara {name} simulator", seed, people)
