"""``hpo db``: the store's schema."""

from __future__ import annotations

import typer

from db.engine import create_store_engine, display_url, resolve_url, storage_errors
from db.migrate import current_revision, head_revision, upgrade
from hpo.cli.options import StorageOption, console

db_app = typer.Typer(help="Manage the study store's schema.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade_command(storage: StorageOption = None) -> None:
    """Create or migrate the store's schema to this version of hposcale."""
    url = resolve_url(storage)
    engine = create_store_engine(url)
    try:
        with storage_errors(url, "cannot open storage"):
            before, after = upgrade(engine)
    finally:
        engine.dispose()
    if before == after:
        console.print(f"{display_url(url)}: schema already at revision {after}")
    else:
        console.print(f"{display_url(url)}: schema upgraded from {before or 'empty'} to revision {after}")


@db_app.command("version")
def version_command(storage: StorageOption = None) -> None:
    """Show the database's schema revision and the one this hposcale writes."""
    url = resolve_url(storage)
    engine = create_store_engine(url)
    try:
        with storage_errors(url, "cannot open storage"), engine.connect() as conn:
            current = current_revision(conn)
    finally:
        engine.dispose()
    console.print(f"database: {current or 'empty'}   hposcale: {head_revision()}")
