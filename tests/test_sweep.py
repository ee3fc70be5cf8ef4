"""Sweeps on a real local Ray: every trial exactly once, a worker killed mid-trial, the
driver killed and restarted, and what becomes of objectives that fail, diverge or run out of
memory. The objectives live in a module written to the test's directory and are named
``module:function``, as a user names theirs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import hpo
from db.models import TrialState
from workers.errors import ObjectiveError, SweepError
from workers.sweep import run_sweep

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow

OBJECTIVES = '''
import json, math, os, time
from pathlib import Path

import hpo

LOG = Path(os.environ["SWEEP_LOG_DIR"])


def _log(config, budget):
    with open(LOG / "runs.jsonl", "a") as f:
        f.write(json.dumps({"x1": config["x1"], "x2": config["x2"], "budget": budget, "pid": os.getpid()}) + "\\n")


def branin(config, budget, report):
    """Branin, a little slow, each evaluation logged."""
    x1, x2 = config["x1"], config["x2"]
    value = (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10
    time.sleep(float(os.environ.get("SWEEP_SLEEP", "0.05")))
    report(budget, value)
    _log(config, budget)
    return value


def hang_once(config, budget, report):
    """The first evaluation of the whole sweep announces its pid and hangs; the rest run."""
    try:
        fd = os.open(LOG / "hung.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return branin(config, budget, report)
    os.write(fd, json.dumps({"pid": os.getpid(), "x1": config["x1"], "x2": config["x2"]}).encode())
    os.close(fd)
    time.sleep(600)


def misbehave(config, budget, report):
    """By region of the space: raise, return NaN, explode while training, run out of memory."""
    x1 = config["x1"]
    if x1 < -3:
        raise ValueError(f"bad x1 {x1}")
    if x1 < -1:
        return float("nan")
    if x1 < 1:
        for step, loss in enumerate([3.0, 9.0, 1e12, float("inf")]):
            if not report(step + 1, loss):
                return loss
    if x1 < 3:
        bytearray(1 << 62)  # MemoryError at once, nothing allocated
    if x1 < 5:
        raise hpo.Diverged("loss 1e9 at step 40")
    return branin(config, budget, report)
'''


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture
def objectives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The objectives module, importable as ``sweep_objectives`` here and in Ray's workers
    (the worker environment inherits the driver's at ``ray.init``, so the log directory is
    passed by file name in the module instead)."""
    module = OBJECTIVES.replace('os.environ["SWEEP_LOG_DIR"]', repr(str(tmp_path)))
    (tmp_path / "sweep_objectives.py").write_text(textwrap.dedent(module))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def runs(log_dir: Path) -> list[dict]:
    path = log_dir / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def key(config: dict, budget: float | None) -> tuple:
    return (config["x1"], config["x2"], budget)


def test_four_workers_run_sixty_trials_each_exactly_once(local_ray: None, objectives: Path, storage_url: str) -> None:
    study = hpo.create_study("sixty", storage_url, search_space=_branin_space(), algorithm="asha", heartbeat_timeout=20)
    result = run_sweep(study, "sweep_objectives:branin", workers=4, max_trials=60, progress=False)

    trials = study.trials
    assert [t.number for t in trials] == list(range(60))
    assert all(t.state is TrialState.COMPLETED and t.attempts == 1 for t in trials)
    executed = Counter(key(r, r["budget"]) for r in runs(objectives))
    assert executed == Counter(key(t.params, t.budget) for t in trials)  # each ran once, none extra
    assert len({r["pid"] for r in runs(objectives)}) == 4  # four workers shared the work
    assert result.counts[TrialState.COMPLETED] == 60 and result.deaths == []
    assert {t.worker_id.split("@")[0].rsplit("-", 1)[0] for t in trials} == {f"ray-{t.worker_id[4:10]}" for t in trials}
    assert len({t.budget for t in trials}) > 1  # ASHA promoted: several rungs ran under Ray


def test_worker_killed_mid_trial_its_trial_is_rerun_and_completed(local_ray: None, objectives: Path, sqlite_url: str) -> None:
    study = hpo.create_study("killed", sqlite_url, search_space=_branin_space(), algorithm="random", heartbeat_timeout=30)

    def kill_the_hung_worker() -> None:
        announced = objectives / "hung.json"
        while not announced.exists() or not announced.read_text():
            time.sleep(0.05)
        os.kill(json.loads(announced.read_text())["pid"], signal.SIGKILL)

    killer = threading.Thread(target=kill_the_hung_worker, daemon=True)
    killer.start()
    started = time.monotonic()
    result = run_sweep(study, "sweep_objectives:hang_once", workers=3, max_trials=12, progress=False)
    killer.join(timeout=5)

    hung = json.loads((objectives / "hung.json").read_text())
    trials = study.trials
    assert len(trials) == 12 and all(t.state is TrialState.COMPLETED for t in trials)
    victim = next(t for t in trials if (t.params["x1"], t.params["x2"]) == (hung["x1"], hung["x2"]))
    assert victim.attempts == 2
    assert "died" in victim.error and "re-queued" in victim.error
    assert len(result.deaths) == 1 and result.workers_started == 4  # replaced
    # Recovered through the dead actor, not by waiting out the 30 s heartbeat timeout.
    assert time.monotonic() - started < 30


def test_killed_driver_rerun_resumes_without_losing_or_repeating_trials(objectives: Path, sqlite_url: str) -> None:
    hpo.create_study("resume", sqlite_url, search_space=_branin_space(), algorithm="hyperband", heartbeat_timeout=3)
    command = [
        sys.executable, "-m", "hpo.cli.main", "sweep", "run", "resume", "--storage", sqlite_url,
        "--objective", "sweep_objectives:branin", "--workers", "2", "--max-trials", "40", "--quiet",
    ]
    env = {**os.environ, "PYTHONPATH": f"{objectives}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "SWEEP_SLEEP": "0.3"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    study = hpo.load_study("resume", sqlite_url)
    deadline = time.monotonic() + 120
    while study.counts()[TrialState.COMPLETED] < 8:
        assert first.poll() is None, first.stdout.read().decode()
        assert time.monotonic() < deadline, "the first driver made no progress"
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    interrupted = study.counts()
    assert 8 <= interrupted[TrialState.COMPLETED] < 40

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stdout + second.stderr

    trials = study.trials
    assert [t.number for t in trials] == list(range(40))
    assert all(t.state is TrialState.COMPLETED for t in trials), Counter(t.state for t in trials)
    # Every trial's value was recorded once; the ones the killed driver's workers held ran again.
    completed_runs = Counter(key(r, r["budget"]) for r in runs(objectives))
    assert set(completed_runs) == {key(t.params, t.budget) for t in trials}
    rerun = [t for t in trials if t.attempts > 1]
    assert all("no heartbeat" in t.error for t in rerun)
    # The brackets went on where they stopped: promotions exist across the restart.
    assert {t.attrs["bracket"] for t in trials} >= {0}
    assert any(t.attrs.get("rung", 0) > 0 for t in trials)


def test_failing_diverging_and_out_of_memory_objectives_are_recorded_and_the_sweep_goes_on(
    local_ray: None, objectives: Path, sqlite_url: str
) -> None:
    study = hpo.create_study("misbehave", sqlite_url, search_space=_branin_space(), algorithm="random")
    regions = {-4.0: "raise", -2.0: "nan", 0.0: "explodes", 2.0: "oom", 4.0: "diverged", 6.0: "fine"}
    study.enqueue_many([{"x1": x1, "x2": 5.0} for x1 in regions])
    result = run_sweep(study, "sweep_objectives:misbehave", workers=2, max_trials=len(regions), progress=False)

    by_x1 = {t.params["x1"]: t for t in study.trials}
    assert by_x1[-4.0].state is TrialState.FAILED and "ValueError: bad x1 -4.0" in by_x1[-4.0].error
    assert "Traceback" in by_x1[-4.0].error
    assert by_x1[-2.0].state is TrialState.DIVERGED and by_x1[-2.0].error == "objective returned nan"
    assert by_x1[0.0].state is TrialState.DIVERGED and by_x1[0.0].error == "diverged: reported inf at budget 4"
    assert by_x1[0.0].intermediate_values == {1.0: 3.0, 2.0: 9.0, 3.0: 1e12, 4.0: float("inf")}
    assert by_x1[2.0].state is TrialState.FAILED and by_x1[2.0].error.startswith("out of memory: MemoryError")
    assert by_x1[4.0].state is TrialState.DIVERGED and by_x1[4.0].error == "diverged: loss 1e9 at step 40"
    assert by_x1[6.0].state is TrialState.COMPLETED
    assert result.deaths == []  # failures of the objective never cost a worker


def test_sweep_errors_are_one_line(local_ray: None, objectives: Path, sqlite_url: str) -> None:
    study = hpo.create_study("errors", sqlite_url, search_space=_branin_space())
    with pytest.raises(ObjectiveError, match=r"cannot import module 'no_such_module' of objective 'no_such_module:f'"):
        run_sweep(study, "no_such_module:f", max_trials=1, progress=False)
    with pytest.raises(ObjectiveError, match=r"module 'sweep_objectives' has no attribute 'nope'"):
        run_sweep(study, "sweep_objectives:nope", max_trials=1, progress=False)
    with pytest.raises(ObjectiveError, match=r"neither module:function nor a built-in; built-ins: branin"):
        run_sweep(study, "braninn", max_trials=1, progress=False)
    with pytest.raises(SweepError, match=r"records no objective"):
        run_sweep(study, None, max_trials=1, progress=False)
    with pytest.raises(SweepError, match=r"needs a GPU, and this Ray cluster has 0"):
        run_sweep(study, "branin", gpus_per_trial=1, max_trials=1, progress=False)
    with pytest.raises(SweepError, match=r"workers must be >= 1, got 0; max trials must be >= 1, got 0"):
        run_sweep(study, "branin", workers=0, max_trials=0, progress=False)
    (objectives / "broken_on_workers.py").write_text(
        "from ray._private.worker import WORKER_MODE, global_worker\n"
        "if global_worker.mode == WORKER_MODE:\n"
        "    raise RuntimeError('CUDA driver too old on this node')\n"
        "def f(config, budget, report):\n"
        "    return 0.0\n"
    )
    started = time.monotonic()
    with pytest.raises(SweepError, match=r"^workers cannot start: ObjectiveError: cannot import module 'broken_on_workers' of objective "
                       r"'broken_on_workers:f': RuntimeError: CUDA driver too old on this node$"):
        run_sweep(study, "broken_on_workers:f", workers=2, max_trials=1, progress=False)
    assert time.monotonic() - started < 60  # at the first failure, not after a crash loop
    with pytest.raises(hpo.StudyNotFoundError):
        run_sweep("no-such-study", "branin", storage=sqlite_url, max_trials=1, progress=False)
    assert study.trials == []  # nothing ran


def test_cli_sweep_run_with_a_builtin_objective_and_one_line_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    hpo.create_study("cli", url, search_space=_branin_space(), algorithm="dehb-async")
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        ["hpo", "sweep", "run", "cli", "--storage", url, "--objective", "branin", "--workers", "2", "--max-trials", "30"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "completed │     30" in done.stdout and "best value" in done.stdout
    assert "cli: " in done.stderr and "trials (" in done.stderr  # progress lines while it ran
    assert hpo.load_study("cli", url).counts()[TrialState.COMPLETED] == 30

    for args, message in [
        (["nope", "--objective", "branin"], "hpo: error: unknown study 'nope'"),
        (["cli", "--objective", "mod_missing:f"], "hpo: error: cannot import module 'mod_missing'"),
        (["cli", "--objective", "branin", "--address", "127.0.0.1:1", "--max-trials", "31"], "hpo: error: cannot reach the Ray cluster at '127.0.0.1:1': Connection refused"),
        (["cli", "--objective", "branin", "--address", "ray://localhost"], "hpo: error: Ray address 'ray://localhost' is malformed"),
    ]:
        failed = subprocess.run(["hpo", "sweep", "run", *args, "--storage", url], capture_output=True, text=True, env=env, timeout=300, check=False)
        assert failed.returncode == 2, failed.stderr
        assert failed.stderr.startswith(message) and len(failed.stderr.strip().splitlines()) == 1, failed.stderr


def test_ctrl_c_requeues_running_trials_and_a_rerun_finishes_the_sweep(objectives: Path, sqlite_url: str) -> None:
    hpo.create_study("ctrl-c", sqlite_url, search_space=_branin_space(), algorithm="random", heartbeat_timeout=600)
    command = ["hpo", "sweep", "run", "ctrl-c", "--storage", sqlite_url, "--objective", "sweep_objectives:branin",
               "--workers", "2", "--max-trials", "16"]
    env = {**os.environ, "PYTHONPATH": str(objectives), "SWEEP_SLEEP": "1.0"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    study = hpo.load_study("ctrl-c", sqlite_url)
    deadline = time.monotonic() + 120
    while study.counts()[TrialState.COMPLETED] < 2:
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    first.send_signal(signal.SIGINT)
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 130
    assert "interrupted: running trials were re-queued" in out
    counts = study.counts()
    assert counts[TrialState.RUNNING] == 0 and counts[TrialState.QUEUED] >= 1  # given back at once, not after 600 s

    second = subprocess.run(command, env={**env, "SWEEP_SLEEP": "0.05"}, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stderr
    assert Counter(t.state for t in study.trials) == {TrialState.COMPLETED: 16}


def _branin_space() -> hpo.SearchSpace:
    from search_spaces import get_builtin

    return get_builtin("branin")
