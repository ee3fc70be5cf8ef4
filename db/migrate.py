"""Schema migrations: bring a database to this version's schema, or say why it cannot be used.

Alembic does the migrating; this module decides when. An empty database is upgraded on first
use. A database at an older revision must be upgraded explicitly (``hpo db upgrade``), because
a migration on a shared cluster database is an operator's decision. A database written by a
newer hposcale is refused: its schema may hold rows this version would misread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from db.errors import SchemaVersionError
from db.models import Base

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant: the key of the PostgreSQL advisory lock that serialises concurrent upgrades.
_PG_LOCK_KEY = 4_815_162_342


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """The schema revision this version of hposcale writes."""
    head = _scripts().get_current_head()
    assert head is not None, "db/migrations/versions holds no revision"
    return head


def current_revision(conn: Connection) -> str | None:
    """The database's schema revision; None for a database hposcale never touched."""
    return MigrationContext.configure(conn).get_current_revision()


def _is_known(revision: str) -> bool:
    return any(script.revision == revision for script in _scripts().walk_revisions())


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A transaction holding the lock that serialises schema changes (SQLite's write lock, a
    PostgreSQL advisory lock): what is read under it cannot change until it ends."""
    with engine.connect() as conn:
        conn.execution_options(hpo_write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            yield conn


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate to the head revision; returns (revision before, revision after).

    The version is read and the migrations run under one lock, so processes that race to
    upgrade a database upgrade it exactly once.
    """
    with _locked(engine) as conn:
        before = current_revision(conn)
        if before is not None and not _is_known(before):
            raise _newer_schema_error(before)
        if before != head_revision():
            command.upgrade(_config(conn), "head")
    return before, head_revision()


def ensure_schema(engine: Engine, *, auto_upgrade_empty: bool = True) -> None:
    """Check that the database speaks this version's schema; upgrade it when it is empty.

    "Empty" means none of the store's tables: a PostgreSQL database may hold other tables.
    Anything but the fast path is decided under the schema lock, so a process that looks while
    another is creating the schema waits for it instead of seeing half of it.
    """
    with engine.connect() as conn:
        if current_revision(conn) == head_revision():
            return
    with _locked(engine) as conn:
        revision = current_revision(conn)
        ours = set(inspect(conn).get_table_names()) & set(Base.metadata.tables)
        head = head_revision()
        if revision == head:
            return
        if revision is None and not ours:
            if not auto_upgrade_empty:
                raise SchemaVersionError("the database has no hposcale schema yet; run `hpo db upgrade`")
            command.upgrade(_config(conn), "head")
            return
    if revision is None:
        raise SchemaVersionError(
            f"the database holds hposcale tables ({', '.join(sorted(ours))}) but no schema revision; "
            "point the storage URL at an empty database or one created by hposcale"
        )
    if not _is_known(revision):
        raise _newer_schema_error(revision)
    raise SchemaVersionError(
        f"the database schema is at revision {revision}, older than this hposcale's {head}; "
        "run `hpo db upgrade --storage URL` to migrate it"
    )


def _newer_schema_error(revision: str) -> SchemaVersionError:
    return SchemaVersionError(
        f"the database schema is at revision {revision!r}, which this hposcale does not know "
        f"(its newest is {head_revision()}); it was written by a newer hposcale: upgrade hposcale"
    )
