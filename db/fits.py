"""Scaling fits kept in the store: save (replacing by name), get, list, and their versions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from db.connections import StoreBase, translate_db_errors, utcnow
from db.errors import FitNotFoundError
from db.models import ScalingFit, Sweep
from db.records import FitRecord, json_safe

_FIT_ROWS = select(
    ScalingFit.id,
    ScalingFit.name,
    Sweep.name.label("sweep"),
    ScalingFit.source,
    ScalingFit.form,
    ScalingFit.report,
    ScalingFit.created_at,
).outerjoin(Sweep, Sweep.id == ScalingFit.sweep_id)


class Fits(StoreBase):
    """The store's scaling fits, each under a unique name."""

    @translate_db_errors
    def save_fit(
        self, name: str, *, source: str, form: str, report: Mapping[str, Any], sweep: str | None = None
    ) -> FitRecord:
        """Keep a fitted law under ``name``, replacing an earlier fit of that name (a refit
        after more trials finished is the same law, better informed). A ``sweep`` that is not
        stored leaves the fit without one."""
        values = {"source": source, "form": form, "report": json_safe(dict(report)), "created_at": utcnow()}
        with self._write() as conn:
            sweep_id = None if sweep is None else conn.execute(select(Sweep.id).where(Sweep.name == sweep)).scalar_one_or_none()
            updated = conn.execute(update(ScalingFit).where(ScalingFit.name == name).values(**values, sweep_id=sweep_id)).rowcount
            if not updated:
                conn.execute(insert(ScalingFit).values(name=name, **values, sweep_id=sweep_id))
        return self.get_fit(name)

    @translate_db_errors
    def get_fit(self, name: str) -> FitRecord:
        with self._read() as conn:
            row = conn.execute(_FIT_ROWS.where(ScalingFit.name == name)).one_or_none()
        if row is None:
            known = [f.name for f in self.list_fits()]
            hint = f"; stored fits: {', '.join(known)}" if known else "; none is stored yet (hpo scaling fit)"
            raise FitNotFoundError(f"no scaling fit named {name!r}{hint}")
        return FitRecord(**row._mapping)

    @translate_db_errors
    def fit_versions(self) -> list[tuple[str, datetime]]:
        """(name, saved at) of every fit, by name: enough to tell a cache what changed without
        reading the reports (each holds its bootstrap, so it is the large part)."""
        with self._read() as conn:
            return [(r.name, r.created_at) for r in conn.execute(select(ScalingFit.name, ScalingFit.created_at).order_by(ScalingFit.name))]

    @translate_db_errors
    def list_fits(self) -> list[FitRecord]:
        with self._read() as conn:
            rows = conn.execute(_FIT_ROWS.order_by(ScalingFit.name)).all()
        return [FitRecord(**row._mapping) for row in rows]
