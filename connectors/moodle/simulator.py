"""``lmsbridge simulator moodle``: run the Moodle simulator on 127.0.0.1 until stopped."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, TypeVar

import typer

from bridge.errors import BridgeError
from connectors.moodle.sim import capabilities as caps
from connectors.moodle.sim.plugin_state import VERSION as PLUGIN_VERSION
from connectors.moodle.sim.server import Running, Simulator, serve
from connectors.moodle.sim.state import SiteState
from connectors.moodle.sim.versions import DEFAULT, SPECS
from connectors.simulation.org import generate

R = TypeVar("R", bound=Running[Any])


def listening(start: Callable[[], R], port: int) -> R:
    """``start()`` a simulator, or one line saying why the port cannot be had (in use, no
    permission) instead of a traceback."""
    try:
        return start()
    except OSError as exc:
        raise BridgeError(
            f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc} (choose another --port)"
        ) from None


def serve_until_stopped(handle: Running[Any], what: str, seed: int, people: int) -> None:
    """Run a simulator in the foreground until SIGTERM or Ctrl-C."""
    typer.echo(f"{what} listening on {handle.url} (seed {seed}, {people} people); Ctrl-C to stop", err=True)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    handle.stop()


def start_in_thread(
    token: str,
    seed: int = 1,
    people: int = 80,
    courses: int = 12,
    release: str = DEFAULT,
    port: int = 0,
    *,
    manager_share: float = 0.11,
    competencies: int = 6,
    capabilities: set[str] | frozenset[str] | None = None,
    forcetimezone: str | None = None,
    plugin: bool = False,
) -> Running[Simulator]:
    """A simulator serving on 127.0.0.1 in a background thread (port 0: any free port).

    ``capabilities``: the web-service user's (default: exactly README > Moodle's lmsbridge role);
    change them later through ``handle.state.capabilities``, like ``handle.state.forcetimezone``.
    ``plugin``: the companion plugin local_lmsbridge is installed (its log backfilled from the
    site), and its capabilities are added to the role as README > Moodle says.
    """
    org = generate(
        seed, people=people, courses=courses, manager_share=manager_share, competencies=competencies
    )
    state = SiteState.build(org, release=release, capabilities=capabilities)
    state.forcetimezone = forcetimezone
    if plugin:
        state.install_plugin(PLUGIN_VERSION)
    return serve(Simulator(state, token), port)


def command(
    token: Annotated[str, typer.Option("--token", help="The only token the site accepts.")],
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 8089,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic organisation.")] = 1,
    people: Annotated[int, typer.Option("--people", help="People in the organisation.")] = 80,
    courses: Annotated[int, typer.Option("--courses", help="Courses besides the named ones.")] = 12,
    release: Annotated[
        str,
        typer.Option("--version", "--release", help=f"Moodle release to behave as: {', '.join(SPECS)}."),
    ] = DEFAULT,
    capabilities: Annotated[
        Path | None,
        typer.Option(
            "--capabilities",
            help="File listing the web-service user's capabilities (JSON array, or one a line); "
            "default: exactly those README > Moodle lists for the lmsbridge role.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    forcetimezone: Annotated[
        str | None,
        typer.Option("--forcetimezone", help="Behave as a site with Force timezone set, e.g. Europe/Berlin."),
    ] = None,
    manager_share: Annotated[
        float, typer.Option("--manager-share", help="Chance that a person manages a team.")
    ] = 0.11,
    competencies: Annotated[int, typer.Option("--competencies", help="Competencies in the framework.")] = 6,
    plugin: Annotated[
        bool, typer.Option("--plugin", help="With the companion plugin local_lmsbridge installed.")
    ] = False,
) -> None:
    """Serve a simulated Moodle site over the real REST protocol on 127.0.0.1."""
    if release not in SPECS:
        raise typer.BadParameter(
            f"unknown Moodle release {release!r}; known: {', '.join(SPECS)}", param_hint="--version"
        )
    granted = caps.load(capabilities) if capabilities is not None else None
    handle = listening(
        lambda: start_in_thread(
            token,
            seed,
            people,
            courses,
            release,
            port,
            manager_share=manager_share,
            competencies=competencies,
            capabilities=granted,
            forcetimezone=forcetimezone,
            plugin=plugin,
        ),
        port,
    )
    serve_until_stopped(handle, f"Moodle {release} simulator", seed, people)
