"""The JSON the dashboard draws from, through the real server over a real SQLite store: a
study's document holds the store's trials and changes version exactly when a trial does (a
poll with the current version is a bodyless 204); curves are capped and thinned as they say;
the sweep document reads each width's optimum; a fit's curves carry bands and a target's
value equal to the recommendation; and ``hpo study list --json`` equals ``GET /api/studies``."""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_fixtures import WIDTHS, build_store, serving

import hpo
from db.models import TrialState
from db.store import Store
from hpo.service.study_data import MAX_CURVE_POINTS, MAX_CURVES, build, importance_of
from search_spaces import get_builtin


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    url = build_store(tmp_path_factory.mktemp("data") / "data.db")
    with serving(url) as base:
        yield base, url


def test_a_studys_document_holds_its_trials_and_versions_follow_them(served: tuple[str, str]) -> None:
    base, url = served
    got = httpx.get(f"{base}/api/studies/branin-dehb/dashboard")
    assert got.status_code == 200 and got.headers["etag"] == f'"{got.json()["version"]}"'
    doc = got.json()
    trials = hpo.load_study("branin-dehb", url).trials
    assert doc["trials"]["number"] == [t.number for t in trials]
    assert [doc["states"][s] for s in doc["trials"]["state"]] == [t.state.value for t in trials]
    assert doc["trials"]["value"] == pytest.approx([t.value for t in trials])
    assert doc["trials"]["params"]["x1"] == pytest.approx([t.params["x1"] for t in trials])
    assert [p["name"] for p in doc["params"]] == ["x1", "x2"] and doc["sign"] == 1.0
    assert doc["importance"]["method"].startswith("fANOVA") and set(doc["importance"]["scores"]) == {"x1", "x2"}
    top = max(t.budget for t in trials)
    best = min((t for t in trials if t.budget == top), key=lambda t: t.value)
    assert (doc["best"]["number"], doc["best"]["value"]) == (best.number, best.value)

    same = httpx.get(f"{base}/api/studies/branin-dehb/dashboard", params={"since": doc["version"]})
    assert same.status_code == 204 and same.content == b""
    study = hpo.load_study("branin-dehb", url)
    study.enqueue({"x1": 1.0, "x2": 2.0}, budget=top)
    assert httpx.get(f"{base}/api/studies/branin-dehb/dashboard", params={"since": doc["version"]}).status_code in (200, 204)
    trial = study.claim("test")
    assert trial is not None
    trial.complete(-1.0)  # better than any: the new best
    for _ in range(50):  # the server re-reads a study at most every TRIALS_TTL_S
        fresh = httpx.get(f"{base}/api/studies/branin-dehb/dashboard", params={"since": doc["version"]})
        if fresh.status_code == 200 and fresh.json()["best"]["number"] == trial.number:
            break
    else:
        pytest.fail("the completed trial never reached the document")
    assert fresh.json()["version"] != doc["version"] and fresh.json()["counts"]["completed"] == 61
    assert httpx.get(f"{base}/api/studies/nope/dashboard").json()["field"] == "name"


def test_curves_are_capped_and_thinned_and_say_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    study = hpo.create_study("curves", url, search_space=get_builtin("branin"))
    study.enqueue_many([{"x1": 0.0, "x2": 15.0 * i / (MAX_CURVES + 5)} for i in range(MAX_CURVES + 5)], budget=1.0)
    for i in range(MAX_CURVES + 5):
        trial = study.claim("w")
        assert trial is not None
        steps = 250 if i == MAX_CURVES + 4 else 2
        for step in range(1, steps + 1):
            trial.report(step / steps, float(step))
        trial.complete(float(i))
    record = Store(url).get_study("curves")
    trials = study.trials
    _, body = build(record, trials, importance_of(record, trials))
    curves = json.loads(body)["curves"]
    assert curves["total"] == MAX_CURVES + 5 and len(curves["number"]) == MAX_CURVES
    assert curves["number"] == [t.number for t in trials][-MAX_CURVES:]  # the latest
    assert curves["thinned"] == 1 and curves["max_points"] == MAX_CURVE_POINTS
    long = curves["budget"][-1]
    assert len(long) == MAX_CURVE_POINTS and long[0] == pytest.approx(1 / 250) and long[-1] == 1.0


def test_the_sweep_document_reads_each_widths_optimum(served: tuple[str, str]) -> None:
    base, _ = served
    doc = httpx.get(f"{base}/api/sweeps/widths/dashboard").json()
    assert [c["study"] for c in doc["curves"]] == [f"w{w}" for w in WIDTHS]
    for curve in doc["curves"]:
        optimum = curve["optimum"]
        assert optimum["learning_rate"] == pytest.approx(0.02, rel=1e-3)  # the fixture's bowl bottom
        low, high = optimum["interval"]
        assert low < high and curve["best"]["learning_rate"] in curve["trials"]["learning_rate"]
    assert httpx.get(f"{base}/api/sweeps/widths/dashboard", params={"since": doc["version"]}).status_code == 204
    assert httpx.get(f"{base}/api/sweeps/none/dashboard").status_code == 404


def test_a_fits_curves_have_bands_and_the_targets_recommendation(served: tuple[str, str]) -> None:
    base, _ = served
    doc = httpx.get(f"{base}/api/fits/grid/curves", params={"params": 1e9, "tokens": 1e11}).json()
    panels = {(p["target"], p["var"]): p for p in doc["panels"]}
    assert set(panels) == {("learning_rate", "N"), ("learning_rate", "D"), ("batch_size", "D")}  # the batch law has no N
    for panel in panels.values():
        for line in panel["lines"]:
            assert all(lo <= y * (1 + 1e-9) and y <= hi * (1 + 1e-9) for lo, y, hi in zip(line["low"], line["y"], line["high"]))
    assert sum(len(line["points"]["x"]) for line in panels[("learning_rate", "N")]["lines"]) == 6
    recommended = next(r for r in httpx.get(f"{base}/api/recommend", params={"params": 1e9, "tokens": 1e11}).json()
                       if r["law"] == "fit:grid")
    assert panels[("learning_rate", "N")]["at_target"]["y"] == pytest.approx(recommended["learning_rate"], rel=1e-9)
    assert math.isclose(panels[("batch_size", "D")]["at_target"]["y"], recommended["batch_size_tokens_exact"], rel_tol=1e-9)
    half = httpx.get(f"{base}/api/fits/grid/curves", params={"params": 1e9})
    assert half.status_code == 422 and half.json()["field"] == "tokens"
    assert httpx.get(f"{base}/api/fits/none/curves").status_code == 404


def test_the_cli_and_the_api_list_studies_alike(served: tuple[str, str]) -> None:
    base, url = served
    cli = subprocess.run(["hpo", "study", "list", "--storage", url, "--json"], capture_output=True, text=True, check=True)
    api = httpx.get(f"{base}/api/studies").json()
    assert json.loads(cli.stdout) == api and len(api) == 4
    widths = subprocess.run(["hpo", "study", "list", "--storage", url, "--sweep", "widths", "--json"],
                            capture_output=True, text=True, check=True)
    assert json.loads(widths.stdout) == httpx.get(f"{base}/api/studies", params={"sweep": "widths"}).json()
    assert all(s["counts"][TrialState.COMPLETED.value] >= 9 for s in api)


def test_importances_are_recomputed_once_completed_trials_grew_by_a_percent(tmp_path: Path) -> None:
    import asyncio

    from hpo.service.study_data import IMPORTANCE_STALE, StudyDashboards
    from hpo.service.trial_pages import TrialPages

    url = f"sqlite:///{tmp_path / 'i.db'}"
    study = hpo.create_study("imp", url, search_space=get_builtin("branin"))
    n = 200
    study.enqueue_many([{"x1": -5.0 + 15.0 * i / 300, "x2": 15.0 * ((i * 7) % 300) / 300} for i in range(300)], budget=1.0)

    def complete(k: int) -> None:
        for _ in range(k):
            trial = study.claim("w")
            assert trial is not None
            trial.complete(trial.params["x1"] ** 2 + trial.params["x2"])

    dashboards = StudyDashboards(TrialPages(Store(url), ttl_s=0.0))

    def read() -> dict:  # type: ignore[type-arg]
        return json.loads(asyncio.run(dashboards.document("imp"))[1])

    complete(n)
    first = read()
    assert f"over {n} trials" in first["importance"]["method"]
    complete(int(IMPORTANCE_STALE * n) - 1)  # one short of a percent more: kept, the trials shown anew
    kept = read()
    assert kept["importance"] == first["importance"] and kept["counts"]["completed"] == n + int(IMPORTANCE_STALE * n) - 1
    complete(1)
    assert f"over {n + int(IMPORTANCE_STALE * n)} trials" in read()["importance"]["method"]
