"""hposcale's search layer: studies, their trials, and (as they land) the search algorithms.

The Python API mirrors Optuna's where it can::

    import hpo
    study = hpo.create_study("lr-sweep", storage="sqlite:///hpo.db", load_if_exists=True)
    study.enqueue({"lr": 3e-3, "batch_size": 64})
    trial = study.claim()                # a HeldTrial: the worker's side of one trial
    trial.report(budget=100, value=3.1)
    trial.complete(2.9)
    print(study.best_trial.params)
"""

from db.errors import (
    DuplicateStudyError,
    SchemaVersionError,
    StorageUnreachableError,
    StorageURLError,
    StoreError,
    StudyNotFoundError,
    TrialNotHeldError,
)
from db.models import Direction, TrialState
from db.records import FrozenTrial, StudySettings
from db.store import AddedTrial
from hpo.algorithms import ALGORITHMS, AlgorithmError
from hpo.heartbeat import Heartbeat
from hpo.importing import warm_start
from hpo.runner import Diverged, optimize
from hpo.study import (
    Study,
    create_study,
    default_worker_id,
    delete_study,
    list_studies,
    load_study,
)
from hpo.trial import HeldTrial

__all__ = [
    "ALGORITHMS",
    "AddedTrial",
    "AlgorithmError",
    "Direction",
    "Diverged",
    "DuplicateStudyError",
    "FrozenTrial",
    "Heartbeat",
    "HeldTrial",
    "SchemaVersionError",
    "StorageURLError",
    "StorageUnreachableError",
    "StoreError",
    "Study",
    "StudyNotFoundError",
    "StudySettings",
    "TrialNotHeldError",
    "TrialState",
    "create_study",
    "default_worker_id",
    "delete_study",
    "list_studies",
    "load_study",
    "optimize",
    "warm_start",
]
