"""The service's copy of studies' trials over real SQLite and PostgreSQL stores: every page
equals the store's own (``Store.trial_page``) for every sort, order, filter and offset; writes
from another connection reach it when it re-reads (finished trials with their whole curves);
a study deleted and made again under its name is read afresh; and through the server, a
configuration enqueued there shows on the next page."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest

import hpo
from db.errors import StudyNotFoundError
from db.models import TrialState
from db.store import Store
from hpo.service.records import trial_json
from hpo.service.trial_pages import TrialPages
from search_spaces import get_builtin
from tests.service_fixtures import serving

SORTS = ("number", "value", "budget", "state", "created_at", "finished_at")
FILTERS: tuple[list[str] | None, ...] = (None, ["completed"], ["queued", "running"], ["failed", "completed", "diverged"])


def _page(pages: TrialPages, name: str, **kw: Any) -> dict[str, Any]:
    return json.loads(asyncio.run(pages.page(name, **kw)))


def _mixed_study(url: str, name: str = "mixed") -> hpo.Study:
    """Trials in every state, with tied values, missing values and budgets, and curves."""
    study = hpo.create_study(name, url, search_space=get_builtin("branin"))
    study.enqueue_many([{"x1": float(i % 7), "x2": float(i % 15)} for i in range(24)], budget=1.0)
    study.enqueue_many([{"x1": 1.0, "x2": float(i)} for i in range(3)])  # no budget
    for i in range(20):
        trial = study.claim(f"w{i % 3}")
        assert trial is not None
        trial.report(0.5, 10.0 - i)
        if i >= 17:
            continue  # 17, 18 and 19 stay running
        if i % 5 == 4:
            trial.fail("boom")
        elif i % 7 == 6:
            trial.diverge("loss is nan")
        elif i % 6 == 5:
            trial.prune(5.0)
        else:
            trial.complete(float(i % 4))  # ties, broken by number
    return study


def test_pages_equal_the_stores_for_every_sort_order_filter_and_offset(storage_url: str) -> None:
    study = _mixed_study(storage_url)
    store = study.store
    pages = TrialPages(store)
    for sort in SORTS:
        for descending in (False, True):
            for states in FILTERS:
                for offset, limit in ((0, 100), (0, 9), (7, 9), (25, 9), (40, 5)):
                    want_total, want = store.trial_page(
                        study.id,
                        states=[TrialState(s) for s in states] if states else None,
                        sort=sort,
                        descending=descending,
                        offset=offset,
                        limit=limit,
                    )
                    got = _page(pages, "mixed", states=states, sort=sort, descending=descending, offset=offset, limit=limit)
                    assert got == {"total": want_total, "offset": offset, "limit": limit,
                                   "trials": [trial_json(t) for t in want]}, (sort, descending, states, offset)
    assert _page(pages, "mixed", states=None, sort="number", descending=False, offset=0, limit=100)["total"] == 27


def test_writes_from_elsewhere_show_when_the_copy_is_read_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    _mixed_study(url)
    pages = TrialPages(Store(url), ttl_s=3600.0)  # read again only when told, below
    running = [t["number"] for t in _page(pages, "mixed", states=["running"], sort="number", descending=False, offset=0, limit=10)["trials"]]
    assert running == [17, 18, 19]

    worker = hpo.load_study("mixed", Store(url))  # another connection, as a worker's
    trial = hpo.HeldTrial(worker, worker.trial(17))  # the holder, speaking from another connection
    trial.report(0.75, 2.5)
    trial.complete(-1.0)
    worker.enqueue_many([{"x1": 0.0, "x2": 0.0}])
    kept = _page(pages, "mixed", states=None, sort="value", descending=False, offset=0, limit=1)
    assert kept["total"] == 27 and kept["trials"][0]["number"] != 17  # still the copy

    pages.ttl_s = 0.0
    best = _page(pages, "mixed", states=None, sort="value", descending=False, offset=0, limit=1)
    assert best["total"] == 28
    assert best["trials"][0]["number"] == 17 and best["trials"][0]["state"] == "completed"
    assert best["trials"][0]["intermediate_values"] == [{"budget": 0.5, "value": -7.0}, {"budget": 0.75, "value": 2.5}]

    trial = hpo.HeldTrial(worker, worker.trial(18))  # the holder, speaking from another connection
    trial.report(0.75, math.nan)  # a curve growing on a running trial, NaN shown as null
    shown = _page(pages, "mixed", states=["running"], sort="number", descending=False, offset=0, limit=10)["trials"]
    assert [(t["number"], t["intermediate_values"][-1]["value"]) for t in shown] == [(18, None), (19, -9.0)]


def test_a_deleted_study_is_gone_and_one_made_again_is_read_afresh(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    _mixed_study(url)
    pages = TrialPages(Store(url), ttl_s=0.0)
    assert _page(pages, "mixed", states=None, sort="number", descending=False, offset=0, limit=5)["total"] == 27
    hpo.delete_study("mixed", url)
    with pytest.raises(StudyNotFoundError):
        _page(pages, "mixed", states=None, sort="number", descending=False, offset=0, limit=5)
    again = hpo.create_study("mixed", url, search_space=get_builtin("branin"))
    again.enqueue_many([{"x1": 2.0, "x2": 3.0}])
    page = _page(pages, "mixed", states=None, sort="number", descending=False, offset=0, limit=5)
    assert page["total"] == 1 and page["trials"][0]["params"] == {"x1": 2.0, "x2": 3.0}


def test_a_configuration_enqueued_through_the_server_is_on_its_next_page(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    _mixed_study(url)
    with serving(url, token="t") as base:
        before = httpx.get(f"{base}/api/studies/mixed/trials", params={"sort": "number", "order": "desc", "limit": 1}).json()
        posted = httpx.post(f"{base}/api/studies/mixed/trials", json={"params": {"x1": 3.0, "x2": 4.0}},
                            headers={"Authorization": "Bearer t"})
        assert posted.status_code == 201, posted.text
        after = httpx.get(f"{base}/api/studies/mixed/trials", params={"sort": "number", "order": "desc", "limit": 1}).json()
    assert after["total"] == before["total"] + 1 == 28
    assert after["trials"][0]["number"] == posted.json()["number"] and after["trials"][0]["state"] == "queued"


def test_pages_answered_before_routing_equal_the_stores_and_odd_queries_get_the_apps_errors(tmp_path: Path) -> None:
    """Through the server: plainly valid queries (answered before routing) give the store's
    pages; anything else is still validated by the app, with its status and field."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    study = _mixed_study(url)
    store = study.store
    valid = [
        ("", {}),
        ("sort=value&order=desc&limit=7&offset=3", {"sort": "value", "descending": True, "limit": 7, "offset": 3}),
        ("state=completed&state=failed&sort=finished_at", {"states": ["completed", "failed"], "sort": "finished_at"}),
        ("limit=0100&offset=0", {"limit": 100}),
    ]
    odd = [
        ("limit=0", 422, "query.limit"), ("limit=1001", 422, "query.limit"), ("offset=-1", 422, "query.offset"),
        ("offset=", 422, "query.offset"), ("limit=1e2", 422, "query.limit"), ("sort=colour", 422, "query.sort"),
        ("order=up", 422, "query.order"), ("state=done", 422, "query.state.0"),
    ]
    with serving(url, token=None) as base:
        for query, kw in valid:
            states = kw.get("states")
            total, trials = store.trial_page(
                study.id, states=[TrialState(s) for s in states] if states else None, sort=kw.get("sort", "number"),
                descending=kw.get("descending", False), offset=kw.get("offset", 0), limit=kw.get("limit", 100),
            )
            got = httpx.get(f"{base}/api/studies/mixed/trials?{query}")
            assert got.status_code == 200 and got.headers["content-type"] == "application/json", query
            assert got.json() == {"total": total, "offset": kw.get("offset", 0), "limit": kw.get("limit", 100),
                                  "trials": [trial_json(t) for t in trials]}, query
        for query, status, field in odd:
            got = httpx.get(f"{base}/api/studies/mixed/trials?{query}")
            assert (got.status_code, got.json()["field"]) == (status, field), query
        repeated = httpx.get(f"{base}/api/studies/mixed/trials?limit=5&limit=6")  # the app's rule: the last one
        assert repeated.status_code == 200 and repeated.json()["limit"] == 6
        unknown = httpx.get(f"{base}/api/studies/nope/trials?limit=5")
        assert unknown.status_code == 404 and unknown.json()["field"] == "name"
