"""``scaling.fit``: a law from runs, a CSV file or a sweep in the store, kept in the store
under a name so ``recommend(law="fit:NAME")`` (and the dashboard) can use it later."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from scaling.errors import ScalingError
from scaling.fitting import BOOTSTRAP, ScalingFit, fit_runs
from scaling.runs import Run, read_csv, runs_from_sweep


def fit(
    runs: Iterable[Run] | None = None,
    *,
    csv: str | Path | None = None,
    sweep: str | None = None,
    storage: str | None = None,
    form: str = "auto",
    estimator: str = "auto",
    fit_to: str = "auto",
    columns: Mapping[str, str] | None = None,
    name: str | None = None,
    save: bool = True,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
    batch_fallback: str | None = None,
) -> ScalingFit:
    """Fit a law to exactly one of ``runs``, a ``csv`` file (its own column names mapped by
    ``columns``, see :func:`scaling.runs.read_csv`) or a ``sweep``'s trials; with ``save`` (the
    default for a CSV or a sweep) it is stored as ``name`` (default: the sweep's name or the
    file's stem) in ``storage``. ``form``, ``estimator`` and ``fit_to`` are
    :func:`scaling.fitting.fit_runs`'s."""
    if sum(x is not None for x in (runs, csv, sweep)) != 1:
        raise ScalingError("give exactly one of runs, a CSV file (--from-csv) or a sweep (--sweep)")
    if csv is not None:
        data, label, source = read_csv(csv, columns), Path(csv).stem, f"csv:{csv}"
    elif sweep is not None:
        data, label, source = runs_from_sweep(sweep, storage), sweep, f"sweep:{sweep}"
    else:
        data, label, source, save = list(runs), "fit", "runs", save and name is not None  # type: ignore[arg-type]
    result = fit_runs(data, form=form, estimator=estimator, fit_to=fit_to, name=name or label, bootstrap=bootstrap,
                      seed=seed, batch_fallback=batch_fallback)
    if save:
        from db.store import Store

        store = Store(storage)
        try:
            store.save_fit(result.name, source=source, form=result.form, report=result.report().to_dict(), sweep=sweep)
        finally:
            store.close()
    return result
