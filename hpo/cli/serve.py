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
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes (one per core serves the most).")] = 1,
    storage: StorageOption = None,
) -> None:
    """Serve the API under /api/, its schema at /openapi.json and the dashboard at /."""
    import os

    import uvicorn

    from db.store import Store
    from hpo.service import create_app

    Store(storage).close()  # a bad or unreachable storage URL fails here, in one line
    mode = "writes need the bearer token" if token else "read-only (no --token)"
    console.print(f"hposcale on http://{host}:{port}/ (dashboard), /api/ (REST, {mode}), /docs")
    if workers == 1:
        uvicorn.run(create_app(storage, token=token), host=host, port=port, log_level="warning")
        return
    os.environ["HPO_SERVE_STORAGE"] = storage or ""
    os.environ["HPO_SERVE_TOKEN"] = token or ""
    uvicorn.run("hpo.service.app:app_from_env", factory=True, host=host, port=port, workers=workers, log_level="warning")
