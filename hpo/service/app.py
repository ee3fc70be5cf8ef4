"""``create_app``: the API and the dashboard over one store, one process (``hpo serve``)."""

from __future__ import annotations

from fastapi import FastAPI

from db.store import Store


def create_app(storage: str | None = None, *, token: str | None = None) -> FastAPI:
    """The app over the store at ``storage`` (default ``$HPO_STORAGE``, else ./hpo.db); writes
    need ``token`` as a bearer token, and without one the API is read-only."""
    from hpo.service import api, dashboard_api, errors, pages
    from hpo.service.recommender import AnsweredQueries, Recommender
    from hpo.service.trial_pages import TrialPages

    app = FastAPI(
        title="hposcale",
        summary="Studies, trials, sweeps and scaling laws of hposcale's store",
        version=api.VERSION,
    )
    app.state.store = Store(storage)
    app.state.recommender = Recommender(app.state.store)
    app.state.trial_pages = TrialPages(app.state.store)
    app.state.token = token
    errors.install(app)
    app.include_router(api.router)
    dashboard_api.install(app)
    app.get("/recommend", include_in_schema=False)(api.recommend_json)
    app.include_router(pages.router)
    app.add_middleware(AnsweredQueries, recommender=app.state.recommender)
    app.add_middleware(api.TrialPagesFirst, pages=app.state.trial_pages)
    return app


def app_from_env() -> FastAPI:
    """The app for each of uvicorn's worker processes (``hpo serve --workers N``), configured
    through the environment the parent set, since workers import the app by name."""
    import os

    return create_app(os.environ.get("HPO_SERVE_STORAGE") or None, token=os.environ.get("HPO_SERVE_TOKEN") or None)
