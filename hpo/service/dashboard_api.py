"""The JSON the dashboard's charts are drawn from, and the scripts that draw them.

Each page fetches one document (a study's trials, a sweep's curves, a fit's laws) and Plotly
draws it in the browser. The study and sweep documents carry a ``version`` (a hash of their
content); a poll that passes ``since`` equal to the current version is answered 204 with no
body, so an open page on an idle study costs a version comparison every poll.

Scripts: ``/static/plotly.min.js`` is the plotly.js bundle the installed ``plotly`` package
ships (nothing is fetched from a CDN); ``/static/hpo/`` are the dashboard's own scripts.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from hpo.service.errors import APIError
from hpo.service.scaling_data import curves
from hpo.service.study_data import StudyDashboards
from hpo.service.sweep_data import build as build_sweep

router = APIRouter(prefix="/api")
STATIC = Path(__file__).resolve().parent / "static"
Since = Annotated[str | None, Query(max_length=64, description="The version the caller has: 204 if it is still current")]
UNCHANGED: dict[int | str, dict[str, Any]] = {204: {"description": "Unchanged since the version given as `since`"}}


def plotly_bundle() -> Path:
    """plotly.js as the ``plotly`` package ships it (found without importing the package)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the dashboard needs the plotly package (pip install 'plotly>=5.20')")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


def _answer(version: str, body: bytes, since: str | None) -> Response:
    if since == version:
        return Response(status_code=204, headers={"ETag": f'"{version}"'})
    return Response(body, media_type="application/json", headers={"ETag": f'"{version}"', "Cache-Control": "no-cache"})


@router.get("/studies/{name}/dashboard", summary="A study's trials as columns, for the dashboard's charts",
            response_model=dict[str, Any], responses=UNCHANGED)
async def study_dashboard(request: Request, name: str, since: Since = None) -> Response:
    version, body = await request.app.state.study_dashboards.document(name)
    return _answer(version, body, since)


async def sweep_document(state: Any, name: str) -> tuple[str, bytes] | None:
    """(version, encoded document) of sweep ``name``; None when it has no studies. Rebuilt
    only when a study's record or trials changed (the kept snapshots pin their identities)."""
    summaries = await run_in_threadpool(state.store.list_studies, sweep=name)
    if not summaries:
        return None
    studies = [(s.study, await state.trial_pages.snapshot(s.study.name)) for s in summaries]
    key = tuple((record, id(snapshot)) for record, snapshot in studies)
    kept = state.sweep_documents.get(name)
    if kept is None or kept[0] != key:
        version, body = await run_in_threadpool(build_sweep, name, studies)
        kept = state.sweep_documents[name] = (key, version, body, studies)
    return kept[1], kept[2]


@router.get("/sweeps/{name}/dashboard", summary="A sweep's loss against learning rate by study, with each optimum",
            response_model=dict[str, Any], responses=UNCHANGED)
async def sweep_dashboard(request: Request, name: str, since: Since = None) -> Response:
    found = await sweep_document(request.app.state, name)
    if found is None:
        raise APIError(404, f"no sweep named {name!r} with studies", "name")
    return _answer(*found, since)


@router.get("/fits/{name}/curves", summary="A stored fit's laws with their bands and cells, and a target's values",
            response_model=dict[str, Any])
def fit_curves(
    request: Request,
    name: str,
    params: Annotated[float | None, Query(ge=1, le=1e30, allow_inf_nan=False, description="Target N")] = None,
    tokens: Annotated[float | None, Query(ge=1, le=1e30, allow_inf_nan=False, description="Target D")] = None,
) -> dict[str, Any]:
    if (params is None) != (tokens is None):
        raise APIError(422, "a target needs both params and tokens", "params" if params is None else "tokens")
    target = None if params is None or tokens is None else (params, tokens)
    return curves(request.app.state.store.get_fit(name), target)


def install(app: FastAPI) -> None:
    """The router, the scripts, and the documents kept between requests."""
    app.state.study_dashboards = StudyDashboards(app.state.trial_pages)
    app.state.sweep_documents = {}
    bundle = plotly_bundle()

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(bundle, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})

    app.mount("/static/hpo", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
