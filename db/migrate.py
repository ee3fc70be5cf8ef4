"""Schema migrations: bring a database to this version's schema, or say why it cannot be used.

Alembic does the migrating; this module decides when. An empty database is upgraded on first
use. A database at an older revision must be upgraded explicitly (``hpo db upgrade``), because
a migration on a shared cluster database is an operator's decision. A database written by a
newer hposcale is refused: its schema may hold rows this version would misread.

Every store opens through :func:`ensure_schema`, so its common case (a database already at
this version's head) is one SELECT against :data:`HEAD_REVISION`, without importing alembic
(a third of a sweep worker's start-up) or reading the migration scripts; a test holds the
constant to alembic's own head.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from db.errors import SchemaVersionError
from db.models import Base

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

_MIGRATIONS = Path(__file__).parent / "migrations"
#: The newest revision in ``migrations/versions``: what this hposcale writes.
HEAD_REVISION = "0004"
# Any constant: the key of the PostgreSQL advisory lock that serialises concurrent upgrades.
_PG_LOCK_KEY = 4_815_162_342


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """The schema revision this version of hposcale writes."""
    return HEAD_REVISION


def scripts_head() -> str | None:
    """The head revision as alembic reads it from the migration scripts."""
    return _scripts().get_current_head()


def current_revision(conn: Connection) -> str | None:
    """The database's schema revision; None for a database hposcale never touched."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _at_head(conn: Connection) -> bool:
    """Whether the database is at :data:`HEAD_REVISION`, read with one SELECT; False when
    alembic's version table is missing too (an empty database: the slow path decides)."""
    try:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD_REVISION]
    except DBAPIError:
        conn.rollback()
        return False


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
            from alembic import command

            command.upgrade(_config(conn), "head")
    return before, head_revision()


def ensure_schema(engine: Engine, *, auto_upgrade_empty: bool = True) -> None:
    """Check that the database speaks this version's schema; upgrade it when it is empty.

    "Empty" means none of the store's tables: a PostgreSQL database may hold other tables.
    Anything but the fast path is decided under the schema lock, so a process that looks while
    another is creating the schema waits for it instead of seeing half of it.
    """
    with engine.connect() as conn:
        if _at_head(conn):
            return
    from alembic import command

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
