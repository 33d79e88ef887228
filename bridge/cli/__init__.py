"""The ``lmsbridge`` command line (Typer + Rich).

Each command group lives in its own module and registers itself on :data:`app`. Errors meant
for people (:class:`bridge.errors.BridgeError`) print as one line on stderr with exit status 1,
never as a traceback.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer
from sqlalchemy.exc import SQLAlchemyError

from bridge import __version__

# Command modules register their commands on `app` when imported.
from bridge.cli import config as _config  # noqa: F401
from bridge.cli import daemon as _daemon  # noqa: F401
from bridge.cli import db as _db  # noqa: F401
from bridge.cli import doctor as _doctor  # noqa: F401
from bridge.cli import hris as _hris  # noqa: F401
from bridge.cli import impact as _impact  # noqa: F401
from bridge.cli import mappings as _mappings  # noqa: F401
from bridge.cli import outbox as _outbox  # noqa: F401
from bridge.cli import sync as _sync  # noqa: F401
from bridge.cli.common import app, console_err
from bridge.errors import BridgeError, MappingError, database_cause
from bridge.log import redact_text

SIMULATORS = "lmsbridge.simulators"

simulator_app = typer.Typer(help="Run a local LMS simulator (for demos and tests; 127.0.0.1 only).")
app.add_typer(simulator_app, name="simulator")
for _ep in entry_points(group=SIMULATORS):
    simulator_app.command(_ep.name)(_ep.load())


def main() -> None:
    try:
        app(prog_name="lmsbridge")
    except MappingError as exc:
        for problem in exc.problems:
            console_err.print(problem, markup=False, highlight=False)
        sys.exit(1)
    except BridgeError as exc:
        console_err.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(1)
    except SQLAlchemyError as exc:
        # The transaction in progress was rolled back, so nothing is half-written: a disk
        # that filled up, a database gone away. One line with the driver's own reason.
        cause = redact_text(database_cause(exc))
        console_err.print(
            f"error: the store failed, nothing of the step in progress was kept: {cause}",
            markup=False,
            highlight=False,
        )
        sys.exit(1)


__all__ = ["__version__", "app", "main"]
