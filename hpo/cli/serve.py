"""``hpo serve``: the REST API and the dashboard, by uvicorn, on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

from typing import Annotated

import typer

from hpo.cli.options import StorageOption, console


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the server to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(envvar="HPO_TOKEN", help="Bearer token that allows writes (create, enqueue, stop); without one the API is read-only."),
    ] = None,
    storage: StorageOption = None,
) -> None:
    """Serve the API under /api/, its schema at /openapi.json and the dashboard at /."""
    import uvicorn

    from hpo.service import create_app

    app = create_app(storage, token=token)
    mode = "writes need the bearer token" if token else "read-only (no --token)"
    console.print(f"hposcale on http://{host}:{port}/ (dashboard), /api/ (REST, {mode}), /docs")
    uvicorn.run(app, host=host, port=port, log_level="warning")
