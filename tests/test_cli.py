"""The ``hpo`` command, run as a user runs it: a real process against a real store.

Errors must be one line on stderr naming the bad value, with exit code 2.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text


def hpo(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["hpo", *args], capture_output=True, text=True, timeout=120, cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hpo: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_study_lifecycle(storage_url: str, tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("fidelity: {name: steps, min: 100, max: 900}\nparameters:\n  lr: {type: float, low: 1e-4, high: 1.0, log: true}\n")
    created = hpo("study", "create", "gpt-w256", "--storage", storage_url, "--space", str(space),
                  "--algorithm", "hyperband", "--setting", "eta=3", "--tag", "width=256", "--sweep", "mup")
    assert created.returncode == 0, created.stderr
    from hpo import create_study

    study = create_study("gpt-w256", storage_url, load_if_exists=True)
    assert study.record.tags == {"width": 256} and study.record.algorithm_settings == {"eta": 3}
    assert study.search_space.to_dict() == {
        "fidelity": {"name": "steps", "min": 100, "max": 900},
        "parameters": {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}},
    }
    study.enqueue_many([{"lr": 0.01}, {"lr": 0.1}])
    trial = study.claim("w")
    trial.report(100, 3.5)
    trial.complete(3.25)

    listed = hpo("study", "list", "--storage", storage_url)
    assert listed.returncode == 0 and "gpt-w256" in listed.stdout and "3.25" in listed.stdout
    rows = json.loads(hpo("study", "list", "--storage", storage_url, "--json").stdout)
    assert rows[0]["counts"] == {"queued": 1, "running": 0, "completed": 1, "pruned": 0, "failed": 0, "diverged": 0}
    assert rows[0]["best_value"] == 3.25 and rows[0]["sweep"] == "mup"

    shown = hpo("study", "show", "gpt-w256", "--storage", storage_url)
    assert shown.returncode == 0
    assert "completed 1" in shown.stdout and "3.25" in shown.stdout and "hyperband" in shown.stdout
    assert "lr (fidelity steps 100..900)" in shown.stdout

    csv_out = hpo("study", "export", "gpt-w256", "--storage", storage_url)
    assert csv_out.stdout.splitlines()[0].startswith("number,state,value")
    assert len(csv_out.stdout.strip().splitlines()) == 3
    out = tmp_path / "s.json"
    assert hpo("study", "export", "gpt-w256", "--storage", storage_url, "-f", "json", "-o", str(out)).returncode == 0
    doc = json.loads(out.read_text())
    assert doc["trials"][0]["intermediate_values"] == [{"budget": 100.0, "value": 3.5}]

    assert_one_line_error(hpo("study", "delete", "gpt-w256", "--storage", storage_url), "without --yes")
    assert hpo("study", "delete", "gpt-w256", "--storage", storage_url, "--yes").returncode == 0
    assert_one_line_error(hpo("study", "show", "gpt-w256", "--storage", storage_url), "unknown study 'gpt-w256'")


def test_errors_are_one_line(storage_url: str, tmp_path: Path) -> None:
    assert hpo("study", "create", "dup", "--storage", storage_url).returncode == 0
    assert_one_line_error(hpo("study", "create", "dup", "--storage", storage_url), "'dup' already exists")
    assert hpo("study", "create", "dup", "--storage", storage_url, "--load-if-exists").returncode == 0
    assert_one_line_error(hpo("study", "show", "missing", "--storage", storage_url), "unknown study 'missing'", "hpo study list")
    assert_one_line_error(hpo("study", "export", "missing", "--storage", storage_url), "unknown study 'missing'")
    assert_one_line_error(hpo("study", "create", "x", "--storage", storage_url, "--tag", "width"), "'width'", "KEY=VALUE")
    bad_space = tmp_path / "bad.yaml"
    bad_space.write_text("parameters:\n  lr: [unclosed\n")
    assert_one_line_error(hpo("study", "create", "x", "--storage", storage_url, "--space", str(bad_space)),
                          "bad.yaml", "not valid YAML at line 3")
    assert_one_line_error(hpo("study", "create", "x", "--storage", storage_url, "--space", "mup-gtp"),
                          "mup-gtp: no such file", "did you mean 'mup-gpt'?")
    assert_one_line_error(hpo("study", "create", "x", "--storage", storage_url, "--space", "branin",
                              "--algorithm", "hyperbnd"), "unknown algorithm 'hyperbnd'", "hyperband")
    assert_one_line_error(hpo("study", "create", "x", "--storage", storage_url, "--space", "branin",
                              "--algorithm", "hyperband", "--setting", "eta=1"), "eta=1", "must be > 1")
    assert_one_line_error(hpo("study", "create", "x", "--storage", storage_url, "--space", "branin",
                              "--algorithm", "dehb", "--setting", "etta=3"), "no setting 'etta'; did you mean 'eta'?")


@pytest.mark.parametrize(
    "url,fragments",
    [
        ("not a url", ["'not a url'", "expected sqlite:///PATH"]),
        ("mysql://root@localhost/x", ["'mysql'", "expected sqlite:///PATH"]),
        ("sqlite:///no/such/dir/hpo.db", ["no/such/dir' does not exist"]),
        ("sqlite://", ["in-memory", "sqlite:///PATH"]),
        ("postgresql+psycopg://postgres@127.0.0.1:1/db", ["cannot open storage", "127.0.0.1:1"]),
        ("postgresql+asyncpg://postgres@127.0.0.1/db", ["unsupported PostgreSQL driver 'asyncpg'"]),
    ],
)
def test_bad_storage_urls(url: str, fragments: list[str], tmp_path: Path) -> None:
    assert_one_line_error(hpo("study", "list", "--storage", url, cwd=tmp_path), *fragments)


def test_default_storage_and_env_var(tmp_path: Path) -> None:
    assert hpo("study", "create", "here", cwd=tmp_path).returncode == 0
    assert (tmp_path / "hpo.db").exists()
    other = tmp_path / "other.db"
    env = {"HPO_STORAGE": f"sqlite:///{other}"}
    assert hpo("study", "create", "there", cwd=tmp_path, env=env).returncode == 0
    listed = json.loads(hpo("study", "list", "--json", cwd=tmp_path, env=env).stdout)
    assert [row["name"] for row in listed] == ["there"]


def test_db_upgrade_and_newer_schema(storage_url: str) -> None:
    first = hpo("db", "upgrade", "--storage", storage_url)
    assert first.returncode == 0 and "upgraded from empty to revision 0004" in first.stdout
    assert "already at revision 0004" in hpo("db", "upgrade", "--storage", storage_url).stdout
    assert "database: 0004" in hpo("db", "version", "--storage", storage_url).stdout
    engine = create_engine(storage_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    engine.dispose()
    assert_one_line_error(hpo("study", "list", "--storage", storage_url), "'ffff'", "upgrade hposcale")
    assert_one_line_error(hpo("db", "upgrade", "--storage", storage_url), "'ffff'", "upgrade hposcale")
