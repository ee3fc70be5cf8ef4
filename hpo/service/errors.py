"""Errors as 4xx JSON ``{"error": message, "field": name}``, never a 500 for bad input."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class APIError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def _response(status: int, message: str, field: str | None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


def install(app: FastAPI) -> None:
    """Map the core's deliberate errors to status codes (unknown names 404, a taken name 409,
    anything else wrong with the request 400)."""
    from db.errors import DuplicateStudyError, FitNotFoundError, StoreError, StudyNotFoundError, TrialNotFoundError
    from hpo.algorithms import AlgorithmError
    from scaling.errors import ScalingError
    from search_spaces import SpaceError

    @app.exception_handler(APIError)
    def api_error(_: Request, exc: APIError) -> JSONResponse:
        return _response(exc.status, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(part) for part in first.get("loc", ()))
        return _response(422, f"{field}: {first.get('msg')}", field or None)

    table: list[tuple[type[Exception], int, str | None]] = [
        (StudyNotFoundError, 404, "name"),
        (TrialNotFoundError, 404, "number"),
        (FitNotFoundError, 404, "name"),
        (DuplicateStudyError, 409, "name"),
        (SpaceError, 400, "search_space"),
        (AlgorithmError, 400, "algorithm"),
        (ScalingError, 400, None),
        (StoreError, 400, None),
    ]
    for exc_type, status, field in table:
        app.add_exception_handler(exc_type, _handler(status, field))


def _handler(status: int, field: str | None) -> Callable[[Request, Exception], JSONResponse]:
    def handle(_: Request, exc: Exception) -> JSONResponse:
        return _response(status, str(exc).splitlines()[0] if str(exc) else type(exc).__name__, field)

    return handle
