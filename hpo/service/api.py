"""The REST API under ``/api/``: studies, trials, sweeps, scaling fits and recommendations.

Reads are open; writes (create a study, enqueue a configuration, stop a study) need the bearer
token the server was started with, and a server started without one is read-only. Every
error is a 4xx with ``{"error": "...", "field": "..."}``: the message and the field at fault.
"""

from __future__ import annotations

import secrets
from dataclasses import MISSING
from dataclasses import fields as dataclass_fields
from importlib.metadata import version
from typing import Annotated, Any, ClassVar, Literal, get_args, get_type_hints
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.types import ASGIApp, Receive, Scope, Send

from db.errors import StudyNotFoundError
from db.models import SORTABLE_TRIAL_COLUMNS
from db.records import StudySettings
from hpo.service.errors import APIError
from hpo.service.records import fit_json, studies_json, study_json, study_summary, trial_json
from hpo.service.trial_pages import TrialPages

router = APIRouter(prefix="/api")
#: Read once: importlib.metadata reads the installed package's files on every call.
VERSION = version("hposcale")

SortKey = Literal[SORTABLE_TRIAL_COLUMNS]  # type: ignore[valid-type]
StateName = Literal["queued", "running", "completed", "pruned", "failed", "diverged"]
MAX_OFFSET, MAX_LIMIT, DEFAULT_LIMIT = 10_000_000, 1000, 100


def require_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """Writes need ``Authorization: Bearer <token>``; without a server token, none are allowed."""
    token = request.app.state.token
    if token is None:
        raise APIError(403, "this server is read-only: start it with --token to allow writes", "authorization")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.encode()):
        raise APIError(401, "a write needs the header 'Authorization: Bearer <token>' with the server's token", "authorization")


Writer = Depends(require_token)


def _settings_fields() -> dict[str, Any]:
    """The fields of :class:`StudySettings` as pydantic fields: the same types, defaults and
    bounds (its fields' metadata), so the body is checked, and documented, by its one home."""
    hints = get_type_hints(StudySettings)
    out: dict[str, Any] = {}
    for f in dataclass_fields(StudySettings):
        default = {"default": f.default} if f.default_factory is MISSING else {"default_factory": f.default_factory}
        out[f.name] = (hints[f.name], Field(**default, **f.metadata))
    out["search_space"] = (str | dict[str, Any] | None, Field(default=None, description="A built-in space's name or a space object."))
    return out


#: The body of ``POST /api/studies``: the study's name and its :class:`StudySettings`.
StudyCreate = create_model(
    "StudyCreate",
    __config__=ConfigDict(extra="forbid"),
    name=(str, Field(min_length=1, max_length=255)),
    **_settings_fields(),
)


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
    return studies_json(request.app.state.store.list_studies(sweep=sweep))


@router.post("/studies", status_code=201, dependencies=[Writer], summary="Create a study")
def create_study(request: Request, body: StudyCreate) -> dict[str, Any]:  # type: ignore[valid-type]
    from hpo.study import create_study as create
    from search_spaces import get_builtin

    settings: dict[str, Any] = dict(body)
    name = settings.pop("name")
    if isinstance(settings["search_space"], str):
        settings["search_space"] = get_builtin(settings["search_space"])
    study = create(name, request.app.state.store, **settings)
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
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Response:
    """Answered from :class:`~hpo.service.trial_pages.TrialPages`, already encoded."""
    body = await request.app.state.trial_pages.page(
        name, states=state, sort=sort, descending=order == "desc", offset=offset, limit=limit
    )
    return Response(body, media_type="application/json")


router.get("/studies/{name}/trials", summary="A page of a study's trials, filtered by state and sorted",
           response_model=dict[str, Any])(list_trials)


class TrialPagesFirst:
    """ASGI middleware: a ``GET /api/studies/{name}/trials`` whose query is plainly valid
    (known keys, each once but ``state``, values in range) is answered from the trial pages
    before routing; anything else, and an unknown study, goes to the app, whose validation and
    errors stay the only ones. Once pages are kept encoded, routing and validating the query
    parameters is most of what a page costs, so the framework, not the page, would set the
    latency."""

    _SORTS = frozenset(get_args(SortKey))
    _STATES = frozenset(get_args(StateName))
    _INTS: ClassVar[dict[str, tuple[int, int]]] = {"offset": (0, MAX_OFFSET), "limit": (1, MAX_LIMIT)}

    def __init__(self, app: ASGIApp, pages: TrialPages) -> None:
        self.app = app
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = self._study(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        query = None if name is None else self._query(scope["query_string"])
        if name is not None and query is not None:
            try:
                body = await self.pages.page(name, **query)
            except StudyNotFoundError:
                pass  # the app answers it: 404 naming the field
            else:
                headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _study(scope: Scope) -> str | None:
        path: str = scope["path"]
        if not (path.startswith("/api/studies/") and path.endswith("/trials")):
            return None
        name = path[len("/api/studies/") : -len("/trials")]
        return name if name and "/" not in name else None

    @classmethod
    def _query(cls, raw: bytes) -> dict[str, Any] | None:
        try:
            pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            return None
        query: dict[str, Any] = {"states": [], "sort": "number", "descending": False, "offset": 0, "limit": DEFAULT_LIMIT}
        seen: set[str] = set()
        for key, value in pairs:
            if key == "state":
                if value not in cls._STATES:
                    return None
                query["states"].append(value)
                continue
            if key in seen:
                return None
            seen.add(key)
            if key in cls._INTS:
                low, high = cls._INTS[key]
                if not (value.isascii() and value.isdigit() and low <= int(value) <= high):
                    return None
                query[key] = int(value)
            elif key == "sort" and value in cls._SORTS:
                query["sort"] = value
            elif key == "order" and value in ("asc", "desc"):
                query["descending"] = value == "desc"
            else:
                return None
        query["states"] = query["states"] or None
        return query


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
