"""What ``/recommend`` answers, kept between requests.

A recommendation is a pure function of the query and of the stored fits, and computing it
(three laws with bootstrap intervals, then JSON) and reading the fits' versions was nearly all
of a request's cost, many times what the web stack costs for a request that does nothing.
So the stored fits are re-read at most
once a second (a fit saved by ``hpo scaling fit`` reaches the API within a second), each
parsed once per saved version, and the encoded answers to recent queries are kept, keyed by
the query and the fits' versions, so a new or re-saved fit is never answered from an old entry.

With that, most of what was left was the web framework validating four query parameters on
every request. :class:`AnsweredQueries` answers a query string it has seen answered (200) for
the same fits' versions with the same response, before routing: that exact string passed
validation the first time, and its answer is a function of the string and the fits alone.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from db.errors import StoreError
from db.store import Store
from hpo.service.errors import APIError
from scaling.laws import Law
from scaling.published import PUBLISHED_LAWS
from scaling.recommend import recommend_with
from scaling.report import FIT_PREFIX, FitReport

#: How long the stored fits' versions are trusted before they are read again.
FITS_TTL_S = 1.0
#: Encoded answers kept (least recently used dropped first).
ANSWERS_KEPT = 4096
#: Where ``/recommend`` is served: under the API and at the root.
RECOMMEND_PATHS = frozenset({"/recommend", "/api/recommend"})


class Recommender:
    """The stored fits as laws, and the answers to recent ``/recommend`` queries, for one
    server process. Used from the event loop (``/recommend``) and the page threads (the
    scaling page); every update replaces whole values, so readers never see half of one."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._parsed: dict[str, tuple[Any, Law]] = {}
        self._snapshot: tuple[float, tuple[tuple[str, Any], ...], dict[str, Law]] | None = None
        self._answers: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()

    def fits(self) -> tuple[tuple[tuple[str, Any], ...], dict[str, Law]]:
        """The stored fits' (name, saved) versions and their laws by name."""
        now = time.monotonic()
        snapshot = self._snapshot
        if snapshot is not None and now - snapshot[0] < FITS_TTL_S:
            return snapshot[1], snapshot[2]
        versions = tuple(self.store.fit_versions())
        laws = {}
        for name, saved in versions:
            hit = self._parsed.get(name)
            if hit is None or hit[0] != saved:
                hit = self._parsed[name] = (saved, FitReport.from_dict(self.store.get_fit(name).report).law())
            laws[name] = hit[1]
        self._snapshot = (now, versions, laws)
        return versions, laws

    def laws(self) -> dict[str, Law]:
        return self.fits()[1]

    def answer(self, params: float, tokens: float, law: str | None, seq_len: int) -> bytes:
        """The JSON list of recommendations (``hpo recommend --json``'s), encoded.

        Raises :class:`APIError` for an unknown law and the store's FitNotFoundError (naming
        the stored fits) for an unknown ``fit:NAME``."""
        versions, stored = self.fits()
        key = (params, tokens, law, seq_len, versions)
        body = self._answers.get(key)
        if body is not None:
            self._answers.move_to_end(key)
            return body
        body = json.dumps(
            [recommend_with(item, params, tokens, seq_len=seq_len).to_dict() for item in self._chosen(law, stored)],
            allow_nan=False,
            separators=(",", ":"),
        ).encode()
        self._answers[key] = body
        if len(self._answers) > ANSWERS_KEPT:
            self._answers.popitem(last=False)
        return body

    def _chosen(self, law: str | None, stored: dict[str, Law]) -> list[Law]:
        if law is None:
            return list(PUBLISHED_LAWS.values()) + list(stored.values())
        if law in PUBLISHED_LAWS:
            return [PUBLISHED_LAWS[law]]
        if law.startswith(FIT_PREFIX):
            name = law[len(FIT_PREFIX) :]
            if name not in stored:
                self.store.get_fit(name)  # FitNotFoundError, naming the stored ones -> 404
            return [stored[name]]
        raise APIError(400, f"unknown law {law!r}; choose {', '.join(PUBLISHED_LAWS)} or fit:NAME", "law")


class AnsweredQueries:
    """ASGI middleware: repeats the response to a ``GET /recommend`` query string answered
    before, for the same stored fits, without routing or validating it again; everything else
    (and every first query, and every error) goes to the app."""

    def __init__(self, app: ASGIApp, recommender: Recommender) -> None:
        self.app = app
        self.recommender = recommender
        self._responses: OrderedDict[tuple[Any, ...], tuple[list[tuple[bytes, bytes]], bytes]] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] not in RECOMMEND_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            versions = self.recommender.fits()[0]
        except StoreError:  # the app answers it, with its error handling
            await self.app(scope, receive, send)
            return
        key = (scope["path"], scope["query_string"], versions)
        hit = self._responses.get(key)
        if hit is not None:
            self._responses.move_to_end(key)
            await send({"type": "http.response.start", "status": 200, "headers": hit[0]})
            await send({"type": "http.response.body", "body": hit[1]})
            return
        start: dict[str, Any] = {}
        body = bytearray()

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body") and start.get("status") == 200:
                    self._responses[key] = (list(start.get("headers", [])), bytes(body))
                    if len(self._responses) > ANSWERS_KEPT:
                        self._responses.popitem(last=False)
            await send(message)

        await self.app(scope, receive, keep)
