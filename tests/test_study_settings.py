"""One record of a study's settings (``hpo.StudySettings``): its rules hold wherever a study
is created (Python, ``hpo study create``, ``POST /api/studies``), what was created reads back
as given, and the CLI and the API make the same study from the same input."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from service_fixtures import TOKEN, serving

import hpo
from db.errors import StoreError
from db.models import Direction

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SPACE = {"parameters": {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}}}


def hpo_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["hpo", *args], check=False, capture_output=True, text=True, timeout=120, env=dict(os.environ))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(store URL, server base URL): ``hpo serve`` with the write token over an empty store."""
    url = f"sqlite:///{tmp_path_factory.mktemp('settings') / 'settings.db'}"
    with serving(url) as base:
        yield url, base


def test_settings_written_read_back_as_given(storage_url: str) -> None:
    settings = hpo.StudySettings(
        direction="maximize",
        objective="branin",
        search_space=SPACE,
        algorithm="tpe",
        algorithm_settings={"n_startup_trials": np.int64(4)},
        tags={"width": np.int64(256), "shape": (2, 3)},
        sweep="widths",
        heartbeat_timeout=7.5,
        max_retries=0,
    )
    assert settings.direction is Direction.MAXIMIZE and settings.tags == {"width": 256, "shape": [2, 3]}
    assert type(settings.tags["width"]) is int and type(settings.algorithm_settings["n_startup_trials"]) is int

    made = hpo.create_study("given", storage_url, settings=settings)
    assert made.record.settings == settings
    assert hpo.load_study("given", storage_url).record.settings == settings
    assert [s.name for s in made.store.list_sweeps()] == ["widths"]

    by_keywords = hpo.create_study("by-keywords", storage_url, **{f: getattr(settings, f) for f in (
        "direction", "objective", "search_space", "algorithm", "algorithm_settings", "tags", "sweep",
        "heartbeat_timeout", "max_retries")})
    assert by_keywords.record.settings == settings
    assert hpo.create_study("defaults", storage_url).record.settings == hpo.StudySettings()


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"direction": "upwards"}, "direction 'upwards' is invalid"),
        ({"heartbeat_timeout": 0}, "heartbeat_timeout must be > 0"),
        ({"heartbeat_timeout": float("inf")}, "heartbeat_timeout must be <= 1000000000"),
        ({"max_retries": -1}, "max_retries must be >= 0, got -1"),
        ({"max_retries": 1.5}, "max_retries must be a whole number"),
        ({"max_retries": "2"}, "max_retries must be a number"),
        ({"tags": {"when": object()}}, "tags must hold only JSON values"),
        ({"algorithm_settings": [1, 2]}, "algorithm_settings must be a mapping"),
        ({"sweep": ""}, "sweep must be at least 1 characters"),
        ({"objective": "o" * 256}, "objective must be at most 255 characters"),
    ],
)
def test_a_bad_setting_is_refused_in_one_line_and_nothing_is_created(storage_url: str, fields: dict, fragment: str) -> None:
    with pytest.raises(StoreError) as refused:
        hpo.StudySettings(**fields)
    assert fragment in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(StoreError, match=fragment.split(",")[0]):
        hpo.create_study("refused", storage_url, **fields)
    assert hpo.list_studies(storage_url) == []


def test_settings_and_keyword_settings_do_not_mix(sqlite_url: str) -> None:
    with pytest.raises(TypeError, match="not both"):
        hpo.create_study("mixed", sqlite_url, settings=hpo.StudySettings(), max_retries=3)
    with pytest.raises(TypeError, match="colour"):
        hpo.create_study("unknown", sqlite_url, colour="red")


def test_the_cli_defaults_are_the_settings_defaults(sqlite_url: str) -> None:
    created = hpo_cli("study", "create", "plain", "--storage", sqlite_url)
    assert created.returncode == 0, created.stderr
    assert hpo.load_study("plain", sqlite_url).record.settings == hpo.StudySettings()

    refused = hpo_cli("study", "create", "bad", "--storage", sqlite_url, "--max-retries", "-1")
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        "hpo: error: max_retries must be >= 0, got -1"
    ], refused.stderr


def test_the_api_creates_a_study_with_its_fault_settings(served: tuple[str, str]) -> None:
    url, base = served
    body = {"name": "faults", "search_space": "branin", "heartbeat_timeout": 7.5, "max_retries": 5}
    created = httpx.post(f"{base}/api/studies", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    assert (created.json()["heartbeat_timeout"], created.json()["max_retries"]) == (7.5, 5)
    shown = httpx.get(f"{base}/api/studies/faults").json()
    assert (shown["heartbeat_timeout"], shown["max_retries"]) == (7.5, 5)
    record = hpo.load_study("faults", url).record
    assert (record.heartbeat_timeout, record.max_retries) == (7.5, 5)

    defaults = httpx.post(f"{base}/api/studies", json={"name": "api-defaults"}, headers=AUTH)
    assert defaults.status_code == 201, defaults.text
    assert hpo.load_study("api-defaults", url).record.settings == hpo.StudySettings()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"max_retries": -1}, "body.max_retries"),
        ({"max_retries": 2.5}, "body.max_retries"),
        ({"max_retries": 2**31}, "body.max_retries"),
        ({"heartbeat_timeout": 0}, "body.heartbeat_timeout"),
        ({"direction": "upwards"}, "body.direction"),
        ({"sweep": ""}, "body.sweep"),
    ],
)
def test_the_api_refuses_a_bad_setting_with_a_422_naming_it(served: tuple[str, str], change: dict, field: str) -> None:
    url, base = served
    response = httpx.post(f"{base}/api/studies", json={"name": "refused", **change}, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field and "\n" not in response.json()["error"]
    assert "refused" not in [s.study.name for s in hpo.list_studies(url)]


def test_the_cli_and_the_api_make_the_same_settings(served: tuple[str, str]) -> None:
    url, base = served
    cli = hpo_cli(
        "study", "create", "from-cli", "--storage", url, "--direction", "maximize", "--objective", "branin",
        "--space", "branin", "--algorithm", "hyperband", "--setting", "eta=3", "--tag", "width=64",
        "--sweep", "same", "--heartbeat-timeout", "7.5", "--max-retries", "5",
    )
    assert cli.returncode == 0, cli.stderr
    api = httpx.post(f"{base}/api/studies", headers=AUTH, json={
        "name": "from-api", "direction": "maximize", "objective": "branin", "search_space": "branin",
        "algorithm": "hyperband", "algorithm_settings": {"eta": 3}, "tags": {"width": 64},
        "sweep": "same", "heartbeat_timeout": 7.5, "max_retries": 5,
    })
    assert api.status_code == 201, api.text
    from_cli = hpo.load_study("from-cli", url).record.settings
    assert from_cli == hpo.load_study("from-api", url).record.settings
    assert from_cli.max_retries == 5 and from_cli.search_space is not None and from_cli.algorithm == "hyperband"
