"""The REST API over a real SQLite store through the real server (``hpo serve``): reads match
the store, writes need the token, bad input is a 4xx JSON error naming the field, and a
schema-driven fuzz (schemathesis against /openapi.json) finds no 500."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from service_fixtures import TOKEN, build_store, serving

import hpo
from db.models import TrialState


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_store(tmp_path_factory.mktemp("service") / "service.db")


@pytest.fixture(scope="module")
def server(store_url: str) -> Iterator[str]:
    with serving(store_url) as base:
        yield base


def test_studies_and_trials_match_the_store(server: str, store_url: str) -> None:
    studies = httpx.get(f"{server}/api/studies").json()
    assert [s["name"] for s in studies] == ["branin-dehb", "w64", "w128", "w256"]
    branin = hpo.load_study("branin-dehb", store_url)
    listed = studies[0]
    assert listed["counts"]["completed"] == branin.counts()[TrialState.COMPLETED] == 60
    assert listed["best_value"] == pytest.approx(min(t.value for t in branin.trials))
    assert listed["algorithm"] == "dehb" and listed["stopped"] is False

    page = httpx.get(f"{server}/api/studies/branin-dehb/trials", params={"sort": "value", "limit": 10, "offset": 5}).json()
    values = sorted(t.value for t in branin.trials)
    assert page["total"] == 60 and [t["value"] for t in page["trials"]] == pytest.approx(values[5:15])
    desc = httpx.get(f"{server}/api/studies/branin-dehb/trials", params={"sort": "budget", "order": "desc", "limit": 1}).json()
    assert desc["trials"][0]["budget"] == max(t.budget for t in branin.trials)
    none = httpx.get(f"{server}/api/studies/branin-dehb/trials", params={"state": "pruned"}).json()
    assert none["total"] == 0 and none["trials"] == []

    trial = httpx.get(f"{server}/api/studies/w64/trials/3").json()
    assert trial["state"] == "completed" and trial["intermediate_values"][0]["budget"] == 1.0
    assert trial["intermediate_values"][0]["value"] == pytest.approx(trial["value"] + 0.5)

    sweeps = httpx.get(f"{server}/api/sweeps").json()
    assert [(s["name"], [st["name"] for st in s["studies"]]) for s in sweeps] == [("widths", ["w64", "w128", "w256"])]
    fits = httpx.get(f"{server}/api/fits").json()
    assert [f["name"] for f in fits] == ["grid"] and fits[0]["form"] == "steplaw"
    report = httpx.get(f"{server}/api/fits/grid").json()["report"]
    assert report["learning_rate"]["validation"]["error"] < 0.05


def test_health_answers_with_the_version(server: str) -> None:
    from importlib.metadata import version

    answer = httpx.get(f"{server}/api/health")
    assert answer.status_code == 200 and answer.json() == {"status": "ok", "version": version("hposcale")}


def test_recommend_under_api_and_at_the_root(server: str) -> None:
    laws = httpx.get(f"{server}/api/recommend", params={"params": 1e9, "tokens": 1e11}).json()
    assert [entry["law"] for entry in laws] == ["steplaw", "deepseek", "fit:grid"]
    assert laws[0]["learning_rate"] == pytest.approx(1.63e-3, rel=0.01) and laws[0]["batch_size_sequences"] == 272
    assert laws[2]["learning_rate_interval"][0] < laws[2]["learning_rate"] < laws[2]["learning_rate_interval"][1]
    one = httpx.get(f"{server}/recommend", params={"params": 1e9, "tokens": 1e11, "law": "deepseek", "seq_len": 2048}).json()
    assert len(one) == 1 and one[0]["law"] == "deepseek" and one[0]["seq_len"] == 2048


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "field"),
    [
        ("get", "/api/studies/nope", {}, 404, "name"),
        ("get", "/api/studies/nope/trials", {}, 404, "name"),
        ("get", "/api/studies/w64/trials/999", {}, 404, "number"),
        ("get", "/api/studies/w64/trials/x", {}, 422, "path.number"),
        ("get", "/api/studies/w64/trials", {"params": {"limit": 0}}, 422, "query.limit"),
        ("get", "/api/studies/w64/trials", {"params": {"offset": -1}}, 422, "query.offset"),
        ("get", "/api/studies/w64/trials", {"params": {"sort": "colour"}}, 422, "query.sort"),
        ("get", "/api/studies/w64/trials", {"params": {"state": "done"}}, 422, "query.state.0"),
        ("get", "/api/recommend", {"params": {"params": -7e9, "tokens": 1e9}}, 422, "query.params"),
        ("get", "/api/recommend", {"params": {"params": "nan", "tokens": 1e9}}, 422, "query.params"),
        ("get", "/api/recommend", {"params": {"params": 1e9}}, 422, "query.tokens"),
        ("get", "/api/recommend", {"params": {"params": 1e9, "tokens": 1e9, "law": "kaplan"}}, 400, "law"),
        ("get", "/api/recommend", {"params": {"params": 1e9, "tokens": 1e9, "law": "fit:none"}}, 404, "name"),
        ("get", "/api/fits/none", {}, 404, "name"),
    ],
)
def test_bad_input_is_a_4xx_json_error_naming_the_field(server: str, method: str, path: str, kwargs: dict, status: int, field: str) -> None:
    response = httpx.request(method, f"{server}{path}", **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field and body["error"], body


def test_writes_need_the_token_and_validate_their_input(server: str, store_url: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    new = {"name": "api-made", "search_space": "branin", "algorithm": "hyperband", "tags": {"width": 32}}
    assert httpx.post(f"{server}/api/studies", json=new).status_code == 401
    assert httpx.post(f"{server}/api/studies", json=new, headers={"Authorization": "Bearer wrong"}).status_code == 401
    created = httpx.post(f"{server}/api/studies", json=new, headers=auth)
    assert created.status_code == 201 and created.json()["algorithm"] == "hyperband"
    assert hpo.load_study("api-made", store_url).search_space.fidelity.name == "z"

    for body, status, field in [
        (new, 409, "name"),
        ({**new, "name": "x1", "search_space": "nope"}, 400, "search_space"),
        ({**new, "name": "x2", "algorithm": "magic"}, 400, "algorithm"),
        ({**new, "name": "x3", "colour": "red"}, 422, "body.colour"),
        ({"search_space": "branin"}, 422, "body.name"),
    ]:
        response = httpx.post(f"{server}/api/studies", json=body, headers=auth)
        assert response.status_code == status and response.json()["field"] == field, response.text
    malformed = httpx.post(f"{server}/api/studies", content=b"{not json", headers={**auth, "Content-Type": "application/json"})
    assert malformed.status_code == 422 and malformed.json()["field"].startswith("body")

    queued = httpx.post(f"{server}/api/studies/api-made/trials", json={"params": {"x1": 1.0, "x2": 2.0}, "budget": 1.0}, headers=auth)
    assert queued.status_code == 201, queued.text
    outside = httpx.post(f"{server}/api/studies/api-made/trials", json={"params": {"x1": 99.0, "x2": 2.0}}, headers=auth)
    assert outside.status_code == 400 and outside.json()["field"] == "search_space" and "x1" in outside.json()["error"]
    study = hpo.load_study("api-made", store_url)
    assert study.counts()[TrialState.QUEUED] == 1

    stopped = httpx.post(f"{server}/api/studies/api-made/stop", headers=auth)
    assert stopped.status_code == 200 and stopped.json()["stopped"] is True
    assert study.stopped and study.ask("w") is None  # nothing more is handed out
    assert httpx.post(f"{server}/api/studies/nope/stop", headers=auth).status_code == 404


def test_a_server_without_a_token_is_read_only(store_url: str) -> None:
    with serving(store_url, token=None) as base:
        assert httpx.get(f"{base}/api/studies").status_code == 200
        refused = httpx.post(f"{base}/api/studies", json={"name": "no"})
        assert refused.status_code == 403 and "read-only" in refused.json()["error"]


def test_schema_driven_fuzz_finds_no_server_error(server: str) -> None:
    """schemathesis generates requests for every operation in /openapi.json (writes with the
    token, so they get past authentication) and checks that none answers 5xx."""
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")
            case.validate_response(response, checks=[not_a_server_error])

        check()
    assert not failures, failures
