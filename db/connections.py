"""What every part of the store stands on: its engines, one short transaction per call, and
database failures turned into one-line errors.

:class:`StoreBase` opens the engines for one URL and checks the schema; the parts of
:class:`db.store.Store` (studies, leases, recovery, history, fits) are mixins over it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import ParamSpec, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import URL

from db.engine import (
    WriterLock,
    create_autocommit_engine,
    create_store_engine,
    display_url,
    resolve_url,
    storage_errors,
)
from db.errors import StoreError
from db.migrate import ensure_schema

P = ParamSpec("P")
R = TypeVar("R")


def utcnow() -> datetime:
    """Naive UTC: how every timestamp in the store is written and compared."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class StoreBase:
    """The engines for one storage URL, and the transactions every store call runs in.

    Opening checks the schema revision and upgrades a database that has none.
    """

    def __init__(self, url: str | URL | None = None, *, auto_upgrade: bool = True) -> None:
        self.url = resolve_url(url) if not isinstance(url, URL) else url
        self.display_url = display_url(self.url)
        self.engine = create_store_engine(self.url)
        self._writer_lock = WriterLock(self.url)
        self._autocommit_engine = create_autocommit_engine(self.url, self.engine)
        try:
            with storage_errors(self.url, "cannot open storage"):
                ensure_schema(self.engine, auto_upgrade_empty=auto_upgrade)
        except StoreError:
            self.close()
            raise

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.url.get_backend_name()

    def close(self) -> None:
        self.engine.dispose()
        self._autocommit_engine.dispose()

    @contextmanager
    def _write(self, *, single_statement: bool = False) -> Iterator[Connection]:
        """A write transaction; ``single_statement`` lets PostgreSQL skip BEGIN/COMMIT round trips.

        One statement is atomic on its own, so in autocommit mode it costs one round trip
        instead of three. SQLite always takes the write lock up front (no round trips there).
        """
        engine = self._autocommit_engine if single_statement else self.engine
        with engine.connect() as conn:
            conn.execution_options(hpo_write=True)
            with self._writer_lock(), conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn


def translate_db_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Turn a lost or refused database connection into a one-line StoreError."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        store = args[0]
        assert isinstance(store, StoreBase)
        with storage_errors(store.url):
            return method(*args, **kwargs)

    return wrapper
