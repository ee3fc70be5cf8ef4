"""A worker process for the store's multi-process tests.

Usage: python tests/store_worker.py STORAGE_URL STUDY LOG_FILE [SECONDS_PER_REPORT]

It drains the study's queue; before running each trial it appends the trial's number to
LOG_FILE and flushes, so the log survives a SIGKILL and shows every trial this process began.
Each trial reports 3 intermediate values and completes with the last one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from hpo.study import load_study
from hpo.trial import HeldTrial
from workers.queue_worker import Report, drain_queue


def main() -> None:
    url, study_name, log_path = sys.argv[1:4]
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0

    def objective(config: Mapping[str, Any], budget: float | None, report: Report) -> float:
        value = 0.0
        for step in (1, 2, 3):
            time.sleep(pause)
            value = float(config["x"]) / step
            report(step, value)
        return value

    with open(log_path, "a", buffering=1) as log:

        def on_claim(trial: HeldTrial) -> None:
            log.write(f"{trial.number}\n")
            log.flush()

        drain_queue(load_study(study_name, url), objective, on_claim=on_claim)


if __name__ == "__main__":
    main()
