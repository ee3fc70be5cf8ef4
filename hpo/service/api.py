"""The REST API under ``/api/``: studies, trials, sweeps, scaling fits and recommendations.

Reads are open; writes (create a study, enqueue a configuration, stop a study) need the bearer
token the server was started with, and a server started without one is read-only. Every
error is a 4xx with ``{"error": "...", "field": "..."}``: the message and the field at fault.
"""

from __future__ import annotations

import secrets
from importlib.metadata import version
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from db.models import Direction, TrialState
from hpo.service.errors import APIError
from hpo.service.records import fit_json, study_json, study_summary, trial_json

router = APIRouter(prefix="/api")
#: Read once: importlib.metadata reads the installed package's files on every call (0.5 ms).
VERSION = version("hposcale")

SortKey = Literal["number", "value", "budget", "state", "created_at", "finished_at"]
StateName = Literal["queued", "running", "completed", "pruned", "failed", "diverged"]


def require_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """Writes need ``Authorization: Bearer <token>``; without a server token, none are allowed."""
    token = request.app.state.token
    if token is None:
        raise APIError(403, "this server is read-only: start it with --token to allow writes", "authorization")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.encode()):
        raise APIError(401, "a write needs the header 'Authorization: Bearer <token>' with the server's token", "authorization")


Writer = Depends(require_token)


class StudyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    direction: Literal["minimize", "maximize"] = "minimize"
    search_space: str | dict[str, Any] | None = Field(default=None, description="A built-in space's name or a space object.")
    algorithm: str = "random"
    algorithm_settings: dict[str, Any] = Field(default_factory=dict)
    objective: str | None = None
    sweep: str | None = Field(default=None, min_length=1, max_length=255)
    tags: dict[str, Any] = Field(default_factory=dict)


class Enqueue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any]
    budget: float | None = Field(default=None, gt=0, allow_inf_nan=False)


@router.get("/health", summary="Liveness: the server answers, without touching the store")
async def health() -> dict[str, str]:
    """For a load balancer's or orchestrator's probe; async and store-free, so it also shows
    what the web stack alone costs per request (``benchmarks/service_load.py``)."""
    return {"status": "ok", "version": VERSION}


@router.get("/studies", summary="Every study with its trials by state, best value and last activity")
def list_studies(request: Request, sweep: Annotated[str | None, Query(max_length=255)] = None) -> list[dict[str, Any]]:
    return [study_json(s.study, s) for s in request.app.state.store.list_studies(sweep=sweep)]


@router.post("/studies", status_code=201, dependencies=[Writer], summary="Create a study")
def create_study(request: Request, body: StudyCreate) -> dict[str, Any]:
    from hpo.study import create_study as create
    from search_spaces import get_builtin

    space = body.search_space
    if isinstance(space, str):
        space = get_builtin(space)
    study = create(
        body.name,
        request.app.state.store,
        direction=Direction(body.direction),
        search_space=space,
        algorithm=body.algorithm,
        algorithm_settings=body.algorithm_settings,
        objective=body.objective,
        sweep=body.sweep,
        tags=body.tags,
    )
    return study_json(study.record)


@router.get("/studies/{name}", summary="One study")
def get_study(request: Request, name: str) -> dict[str, Any]:
    summary = study_summary(request.app.state.store, name)
    return study_json(summary.study, summary)


async def list_trials(
    request: Request,
    name: str,
    state: Annotated[list[StateName] | None, Query()] = None,
    sort: SortKey = "number",
    order: Literal["asc", "desc"] = "asc",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Answered from :class:`~hpo.service.trial_pages.TrialPages`, already encoded."""
    body = await request.app.state.trial_pages.page(
        name, states=state, sort=sort, descending=order == "desc", offset=offset, limit=limit
    )
    return Response(body, media_type="application/json")


router.get("/studies/{name}/trials", summary="A page of a study's trials, filtered by state and sorted",
           response_model=dict[str, Any])(list_trials)


@router.get("/studies/{name}/trials/{number}", summary="One trial with its intermediate values")
def get_trial(request: Request, name: str, number: int) -> dict[str, Any]:
    store = request.app.state.store
    return trial_json(store.trial(store.get_study(name).id, number))


@router.post("/studies/{name}/trials", status_code=201, dependencies=[Writer], summary="Enqueue a configuration")
def enqueue(request: Request, name: str, body: Enqueue) -> dict[str, Any]:
    from hpo.study import load_study

    study = load_study(name, request.app.state.store)
    (number,) = study.enqueue_many([body.params], budget=body.budget)
    request.app.state.trial_pages.forget(name)
    return {"number": number, "state": "queued"}


@router.post("/studies/{name}/stop", dependencies=[Writer], summary="Stop handing out the study's trials")
def stop_study(request: Request, name: str) -> dict[str, Any]:
    return study_json(request.app.state.store.stop_study(name))


@router.get("/sweeps", summary="Every sweep with its studies")
def list_sweeps(request: Request) -> list[dict[str, Any]]:
    store = request.app.state.store
    studies = store.list_studies()
    return [
        {
            "name": sweep.name,
            "description": sweep.description,
            "tags": sweep.tags,
            "studies": [study_json(s.study, s) for s in studies if s.study.sweep == sweep.name],
        }
        for sweep in store.list_sweeps()
    ]


@router.get("/fits", summary="The stored scaling fits")
def list_fits(request: Request) -> list[dict[str, Any]]:
    return [fit_json(f) for f in request.app.state.store.list_fits()]


@router.get("/fits/{name}", summary="One scaling fit with its report")
def get_fit(request: Request, name: str) -> dict[str, Any]:
    return fit_json(request.app.state.store.get_fit(name), full=True)


async def recommend_json(
    request: Request,
    params: Annotated[float, Query(ge=1, le=1e30, allow_inf_nan=False, description="Non-embedding parameters N")],
    tokens: Annotated[float, Query(ge=1, le=1e30, allow_inf_nan=False, description="Training tokens D")],
    law: Annotated[str | None, Query(max_length=300, description="steplaw, deepseek or fit:NAME; default all")] = None,
    seq_len: Annotated[int, Query(ge=1, le=10_000_000)] = 4096,
) -> Response:
    """Answered from :class:`~hpo.service.recommender.Recommender`, already encoded."""
    return Response(request.app.state.recommender.answer(params, tokens, law, seq_len), media_type="application/json")


router.get("/recommend", summary="Learning rate and batch size for N parameters and D tokens",
           response_model=list[dict[str, Any]])(recommend_json)
