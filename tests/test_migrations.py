"""Schema migrations: empty databases are upgraded once, the migrated schema is exactly the
ORM's, and databases from a newer hposcale are refused with one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from db.engine import resolve_url
from db.migrate import HEAD_REVISION, head_revision, scripts_head
from db.models import Base, TrialState
from db.store import Store
from hpo import SchemaVersionError, create_study


def test_migrated_schema_matches_the_models(storage_url: str) -> None:
    store = Store(storage_url)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    store.close()
    assert diff == []
    assert revision == head_revision()


def test_the_head_constant_is_alembics_head_and_opening_a_current_store_needs_no_alembic(storage_url: str) -> None:
    """A new migration must move HEAD_REVISION with it; and a store already at head opens
    without importing alembic (what every sweep worker does when it starts)."""
    assert scripts_head() == HEAD_REVISION
    Store(storage_url).close()
    code = ("import sys; from db.store import Store; Store(sys.argv[1]).close(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))")
    opened = subprocess.run([sys.executable, "-c", code, storage_url], capture_output=True, text=True, timeout=120)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.strip() == "[]"


def test_a_newer_schema_is_refused(storage_url: str) -> None:
    Store(storage_url).close()
    engine = create_engine(resolve_url(storage_url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    with pytest.raises(SchemaVersionError, match=r"'9999_future'.*newer hposcale: upgrade hposcale"):
        Store(storage_url)


def test_foreign_tables_without_a_revision_are_refused(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE studies (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    with pytest.raises(SchemaVersionError, match="holds hposcale tables \\(studies\\) but no schema revision"):
        Store(sqlite_url)


CREATE_FROM_MANY = """
import sys
from hpo import create_study
study = create_study("race", sys.argv[1], load_if_exists=True)
print(study.id)
"""


def test_concurrent_first_use_upgrades_once(storage_url: str) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", CREATE_FROM_MANY, storage_url], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    ids = {proc.communicate(timeout=120)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert len(ids) == 1, "every process got the same study"


def test_a_revision_0001_database_is_refused_then_upgraded_keeping_its_rows(storage_url: str) -> None:
    from alembic import command

    from db.migrate import _config

    engine = create_engine(resolve_url(storage_url))
    with engine.begin() as conn:
        command.upgrade(_config(conn), "0001")
        conn.execute(text("INSERT INTO sweeps (name, description, tags, created_at) VALUES ('old', '', '{}', '2026-01-01')"))
    engine.dispose()
    with pytest.raises(SchemaVersionError, match="at revision 0001, older than this hposcale's 0004; run `hpo db upgrade"):
        Store(storage_url)
    done = subprocess.run(["hpo", "db", "upgrade", "--storage", storage_url], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "upgraded from 0001 to revision 0004" in done.stdout, done.stderr
    store = Store(storage_url)
    assert store.get_sweep("old") is not None and store.list_fits() == []
    store.save_fit("f", source="csv:x.csv", form="steplaw", report={"k": 1}, sweep="old")
    assert store.get_fit("f").sweep == "old"
    store.close()


def test_a_revision_0003_database_gets_node_losses_zero_for_its_trials(storage_url: str) -> None:
    """0004 adds ``trials.node_losses``: the trials already there count every claim they had
    as a retry, as they did before, and a claim lost with its node then spends none."""
    from alembic import command

    from db.migrate import _config

    study = create_study("old-trials", storage_url, max_retries=0)
    study.enqueue({"x": 1.0})
    study.claim("w1")
    study.store.close()
    engine = create_engine(resolve_url(storage_url))
    with engine.begin() as conn:
        command.downgrade(_config(conn), "0003")
        assert "node_losses" not in {c["name"] for c in inspect(conn).get_columns("trials")}
    engine.dispose()
    done = subprocess.run(["hpo", "db", "upgrade", "--storage", storage_url], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "upgraded from 0003 to revision 0004" in done.stdout, done.stderr
    store = Store(storage_url)
    (trial,) = store.trials(store.get_study("old-trials").id)
    assert (trial.state, trial.attempts, trial.node_losses) == (TrialState.RUNNING, 1, 0)
    assert store.release_worker(trial.study_id, "w1", "its node was removed", counted=False).requeued == (0,)
    store.close()
