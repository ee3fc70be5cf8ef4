"""From a storage URL to a configured SQLAlchemy engine.

One URL selects the backend. SQLite is the embedded default; it is made safe for many
processes with WAL journaling, a busy timeout and ``BEGIN IMMEDIATE`` for write transactions
(a deferred transaction that reads and then writes can fail at once with "database is locked",
the complaint Optuna's SQLite users know). PostgreSQL is the cluster backend, through psycopg 3.

SQLite writers also queue on an OS file lock (``flock`` on ``<database>-writers.lock``) before
``BEGIN IMMEDIATE``. SQLite's own busy handler makes a waiting writer sleep and poll, in steps
of up to 100 ms, so with eight sweep workers most of a trial's overhead was sleeping past the
moment the lock came free, and some workers starved; a blocked ``flock`` wakes when the lock is
released. The kernel drops the lock with a dead process, so a killed worker never holds it.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError

from db.errors import StorageUnreachableError, StorageURLError

ENV_VAR = "HPO_STORAGE"
DEFAULT_SQLITE_FILE = "hpo.db"
# How long a SQLite writer waits for the lock before giving up. Generous: a busy sweep has
# many writers, each holding the lock for well under a millisecond.
SQLITE_BUSY_TIMEOUT_S = 60.0

_SUPPORTED = "sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"


def resolve_url(url: str | None = None) -> URL:
    """The storage URL to use: ``url``, else ``$HPO_STORAGE``, else ``sqlite:///hpo.db`` here.

    ``postgresql://`` is read as ``postgresql+psycopg://`` (psycopg 3 is the driver we ship).
    Relative SQLite paths are made absolute so that worker processes started elsewhere open
    the same file.
    """
    raw = url if url else os.environ.get(ENV_VAR) or f"sqlite:///{DEFAULT_SQLITE_FILE}"
    try:
        parsed = make_url(raw)
    except ArgumentError:
        raise StorageURLError(
            f"malformed storage URL {raw!r}; expected {_SUPPORTED}"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _resolve_sqlite(parsed, raw)
    if backend == "postgresql":
        if parsed.drivername not in ("postgresql", "postgresql+psycopg"):
            raise StorageURLError(
                f"unsupported PostgreSQL driver {parsed.get_driver_name()!r} in {_mask(parsed)!r}; expected postgresql+psycopg://"
            )
        if not parsed.database:
            raise StorageURLError(
                f"storage URL {_mask(parsed)!r} names no database; expected {_SUPPORTED}"
            )
        return parsed.set(drivername="postgresql+psycopg")
    raise StorageURLError(f"unsupported storage backend {backend!r} in {raw!r}; expected {_SUPPORTED}")


def _resolve_sqlite(parsed: URL, raw: str) -> URL:
    database = parsed.database
    if not database or database == ":memory:":
        raise StorageURLError(
            f"storage URL {raw!r} is an in-memory SQLite database, which worker processes cannot share; "
            "expected sqlite:///PATH to a file"
        )
    path = Path(database).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    if not path.parent.is_dir():
        raise StorageURLError(
            f"storage URL {raw!r}: directory {str(path.parent)!r} does not exist; create it or choose another path"
        )
    return parsed.set(database=str(path))


def _mask(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def display_url(url: URL) -> str:
    """The URL as it can be shown to a user: the password hidden."""
    return _mask(url)


@contextmanager
def storage_errors(url: URL, doing: str = "storage") -> Iterator[None]:
    """Turn a refused or lost database connection into a one-line StorageUnreachableError."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        text = str(exc.orig or exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        raise StorageUnreachableError(f"{doing} {_mask(url)}: {reason}") from None


def create_store_engine(url: URL) -> Engine:
    """An engine tuned for the store's short, concurrent transactions on ``url``'s backend."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(url, pool_size=4, max_overflow=8)


def create_autocommit_engine(url: URL, engine: Engine) -> Engine:
    """An engine for single-statement writes, which are atomic on their own.

    On PostgreSQL its connections stay in autocommit mode, so such a write is one round trip
    instead of three (BEGIN, statement, COMMIT); switching a pooled connection's mode per call
    would cost round trips of its own. SQLite has no round trips to save: ``engine`` is reused.
    """
    if url.get_backend_name() == "sqlite":
        return engine
    return create_engine(url, isolation_level="AUTOCOMMIT", pool_size=4, max_overflow=8)


def _sqlite_engine(url: URL) -> Engine:
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
    )
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL never corrupts the database and keeps every committed
        # transaction across a process crash; only an OS crash may lose the last commits.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the lock up front, so the busy timeout applies and no transaction
        # fails half-way when it turns from reading to writing.
        if conn.get_execution_options().get("hpo_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


class WriterLock:
    """``with lock():`` around a write transaction: queue on the SQLite database's writer lock
    (see the module docstring), released after the commit. One descriptor per thread:
    ``flock`` locks held through different descriptors exclude each other, so threads of one
    process queue like processes do. A no-op for PostgreSQL, whose row locks wake waiters."""

    def __init__(self, url: URL) -> None:
        self._path = f"{url.database}-writers.lock" if url.get_backend_name() == "sqlite" else None
        self._local = threading.local()

    @contextmanager
    def __call__(self) -> Iterator[None]:
        if self._path is None:
            yield
            return
        handle = getattr(self._local, "handle", None)
        if handle is None or handle.pid != os.getpid():  # a forked child shares its parent's descriptor
            handle = self._local.handle = _LockFile(self._path)
        fcntl.flock(handle.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fd, fcntl.LOCK_UN)


class _LockFile:
    """An open descriptor on the lock file, closed when its thread's local data goes (each
    trial's heartbeat thread writes, so descriptors must not outlive their threads)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.pid = os.getpid()

    def __del__(self) -> None:
        if self.pid == os.getpid():
            os.close(self.fd)
