"""The service's recommendation cache over a real SQLite store: answers are the laws' own,
a fit saved or re-saved reaches them once the fits are re-read (never an old entry for a new
fit), unknown laws are errors, and the kept answers stay bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import scaling
from db.errors import FitNotFoundError
from db.store import Store
from hpo.service import recommender as recommender_module
from hpo.service.errors import APIError
from hpo.service.recommender import Recommender
from scaling import PUBLISHED_LAWS, Run
from scaling.recommend import recommend_with

STEP = PUBLISHED_LAWS["steplaw"]


def _runs(scale: float) -> list[Run]:
    """A Step-Law-shaped bowl around ``scale`` times Step Law's learning rate."""
    runs = []
    for n in (1e7, 3e7, 1e8):
        for d in (1e9, 3e9):
            lr0, b0 = STEP.predict(n, d)
            for dx in (-2, -1, -0.5, 0, 0.5, 1, 2):
                for dy in (-1.0, 0.0, 1.0):
                    runs.append(Run(n, d, scale * lr0 * 2**dx, b0 * 2**dy, 3 * (1 + 0.01 * dx * dx + 0.005 * dy * dy)))
    return runs


def test_answers_follow_the_stored_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recommender_module, "FITS_TTL_S", 3600.0)  # the fits are read once, below
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store(url)
    rec = Recommender(store)
    first = json.loads(rec.answer(1e9, 1e11, None, 4096))
    assert [r["law"] for r in first] == ["steplaw", "deepseek"]
    assert first[0]["learning_rate"] == pytest.approx(recommend_with(STEP, 1e9, 1e11, seq_len=4096).learning_rate)
    assert rec.answer(1e9, 1e11, None, 4096) == rec.answer(1e9, 1e11, None, 4096)

    scaling.fit(_runs(1.0), name="mine", storage=url, form="steplaw", bootstrap=50)
    assert [r["law"] for r in json.loads(rec.answer(1e9, 1e11, None, 4096))] == ["steplaw", "deepseek"]  # not re-read yet
    monkeypatch.setattr(recommender_module, "FITS_TTL_S", 0.0)
    mine = json.loads(rec.answer(1e9, 1e11, "fit:mine", 4096))[0]
    assert mine["law"] == "fit:mine" and mine["learning_rate"] == pytest.approx(STEP.predict(1e9, 1e11)[0], rel=0.15)

    scaling.fit(_runs(4.0), name="mine", storage=url, form="steplaw", bootstrap=50)  # re-saved: 4x the learning rate
    again = json.loads(rec.answer(1e9, 1e11, "fit:mine", 4096))[0]
    assert again["learning_rate"] == pytest.approx(4 * mine["learning_rate"], rel=0.05)

    with pytest.raises(APIError, match="unknown law 'kaplan'"):
        rec.answer(1e9, 1e11, "kaplan", 4096)
    with pytest.raises(FitNotFoundError):
        rec.answer(1e9, 1e11, "fit:other", 4096)

    monkeypatch.setattr(recommender_module, "ANSWERS_KEPT", 3)
    for tokens in (1e10, 2e10, 3e10, 4e10, 5e10):
        rec.answer(1e9, tokens, "steplaw", 4096)
    assert len(rec._answers) == 3
    store.close()


def test_a_repeated_query_string_is_answered_again_until_the_fits_change(tmp_path: Path) -> None:
    """Through the server: the second answer to a query string comes before routing, so it
    must be byte for byte the first, follow a newly saved fit within the fits' TTL, and never
    stand in for an error."""
    import time

    import httpx

    from tests.service_fixtures import serving

    url = f"sqlite:///{tmp_path / 'q.db'}"
    Store(url).close()
    with serving(url) as base:
        query = f"{base}/recommend?params=1e9&tokens=1e11"
        first, second = httpx.get(query), httpx.get(query)
        assert first.status_code == second.status_code == 200
        assert first.content == second.content and first.headers["content-type"] == second.headers["content-type"]
        assert httpx.get(f"{base}/api/recommend?params=1e9&tokens=1e11").content == first.content
        for _ in range(2):
            bad = httpx.get(f"{base}/recommend?params=-1&tokens=1e11")
            assert bad.status_code == 422 and bad.json()["field"] == "query.params"
        scaling.fit(_runs(1.0), name="mine", storage=url, form="steplaw", bootstrap=50)
        deadline = time.monotonic() + 10 * recommender_module.FITS_TTL_S
        while [r["law"] for r in httpx.get(query).json()] != ["steplaw", "deepseek", "fit:mine"]:
            assert time.monotonic() < deadline, "the new fit never reached a repeated query"
            time.sleep(0.1)
