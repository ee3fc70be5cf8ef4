"""Storage fixtures: a real SQLite file and a real PostgreSQL database per test.

PostgreSQL comes from ``$HPO_TEST_PG_URL`` (default: the local server on 127.0.0.1:5432 as
user postgres). Each test gets a fresh database, dropped afterwards. Where no server answers,
PostgreSQL tests are skipped on a developer's machine but fail under CI (``CI=true``): a CI run
must never pass by silently not testing the cluster backend.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get("HPO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_admin():  # type: ignore[no-untyped-def]
    import psycopg

    url = make_url(PG_ADMIN_URL)
    return psycopg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password,
        dbname=url.database or "postgres", autocommit=True, connect_timeout=5,
    )


def _pg_unavailable() -> str | None:
    try:
        with _pg_admin():
            return None
    except Exception as exc:  # noqa: BLE001 - any failure to connect means: no server to test against
        return f"no PostgreSQL server at {make_url(PG_ADMIN_URL).render_as_string(hide_password=True)}: {exc}"


@pytest.fixture(scope="session")
def pg_available() -> None:
    reason = _pg_unavailable()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {reason}; PostgreSQL tests must run in CI", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def pg_url(pg_available: None) -> Iterator[str]:
    """A fresh, empty PostgreSQL database; dropped after the test."""
    name = f"hpo_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(fixture)
