"""``lmsbridge db``: schema migrations."""

from __future__ import annotations

import typer

from bridge.cli.common import app, console, state
from bridge.store.db import current_revision, head_revision, upgrade

db_app = typer.Typer(help="Manage the state database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the database schema to the version this release needs."""
    engine = state(ctx).engine(migrated=False)
    before = current_revision(engine)
    upgrade(engine)
    after = current_revision(engine)
    if before == after:
        console.print(f"database already at revision {after}")
    else:
        console.print(f"database upgraded from {before or 'empty'} to {after}")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Show the schema revision of the database and the one this release needs."""
    engine = state(ctx).engine(migrated=False)
    console.print(f"database: {current_revision(engine) or 'empty'}; this release needs: {head_revision()}")
