"""A worker that Ray's memory monitor kills: its trial is failed as out of memory, not retried.

Runs in a subprocess with its own local Ray, started with a memory-usage threshold 3 GB above
what the machine uses now, and an objective that allocates 256 MB at a time up to 6 GB (so a
monitor that failed to act would end the test, not the machine)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

OBJECTIVE = """
import time
import numpy as np


def hog(config, budget, report):
    chunks = []
    for _ in range(24):
        chunks.append(np.ones(32 * 1024 * 1024))  # 256 MB, written, so resident
        time.sleep(0.1)
    return 0.0
"""

DRIVER = """
import os, sys
meminfo = dict(line.split(":", 1) for line in open("/proc/meminfo"))
total, available = (int(meminfo[key].split()[0]) * 1024 for key in ("MemTotal", "MemAvailable"))
os.environ["RAY_memory_usage_threshold"] = str((total - available + 3e9) / total)
os.environ["RAY_memory_monitor_refresh_ms"] = "100"
import hpo
from search_spaces import get_builtin
from workers.sweep import run_sweep
study = hpo.create_study("oom", sys.argv[1], search_space=get_builtin("branin"), algorithm="random")
study.enqueue({"x1": 0.0, "x2": 0.0})
result = run_sweep(study, "oom_objective:hog", workers=1, max_trials=1, progress=False)
print("deaths", len(result.deaths))
"""


def test_a_worker_killed_for_memory_fails_its_trial_without_retry(tmp_path: Path) -> None:
    if not Path("/proc/meminfo").exists():
        pytest.skip("needs /proc/meminfo to set Ray's memory threshold")
    (tmp_path / "oom_objective.py").write_text(textwrap.dedent(OBJECTIVE))
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    url = f"sqlite:///{tmp_path / 'oom.db'}"
    done = subprocess.run(
        [sys.executable, "driver.py", url], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "deaths 1" in done.stdout

    import hpo

    (trial,) = hpo.load_study("oom", url).trials
    assert trial.state is hpo.TrialState.FAILED and trial.attempts == 1
    assert "died: out of memory: OutOfMemoryError" in trial.error
    assert trial.error.endswith("failed after 1 attempts (not retried)")
