"""Command objectives with real processes: a DDP trainer under ``torchrun --nproc-per-node 2``
on CPU (gloo) through ``hpo sweep run --command``; commands that crash, write a bad metrics
line, report nothing or a NaN, on a real Ray; pruned trials whose trainers ignore SIGTERM (all
their ranks killed after the grace) or end cleanly; a worker killed outright taking its
command's ranks with it; and one-line errors for bad input. The trainers are the scripts of
tests/trainers/, launched as a user's are."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import hpo
from db.models import TrialState
from search_spaces import Categorical, Fidelity, Float, SearchSpace
from workers.command import CommandObjective
from workers.errors import ObjectiveError
from workers.sweep import run_sweep

pytestmark = pytest.mark.slow

TRAINERS = Path(__file__).resolve().parent / "trainers"
#: torchrun as the user types it where the venv's bin is on PATH; else the same launcher by module.
TORCHRUN = shlex.join([str(Path(sys.executable).parent / "torchrun")]) if (Path(sys.executable).parent / "torchrun").exists() \
    else f"{shlex.quote(sys.executable)} -m torch.distributed.run"
BEHAVE = f"{shlex.quote(sys.executable)} {TRAINERS / 'behave.py'}"
MODES = ["report", "stubborn", "obedient", "crash", "silent", "bad-metrics", "nan", "hang"]


def _space(steps: int = 4) -> SearchSpace:
    return SearchSpace({"mode": Categorical(MODES), "x": Float(0.0, 1.0)}, Fidelity("steps", 1, steps))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"


def _pids(out: Path) -> list[int]:
    return [int(path.read_text()) for path in sorted(out.glob("pid-*"))]


@pytest.fixture
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_torchrun_ddp_trainer_through_the_cli_reports_from_rank_zero_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ddp.db'}"
    space = SearchSpace({"learning_rate": Float(0.01, 0.1, log=True)}, Fidelity("steps", 1, 3))
    hpo.create_study("ddp", url, search_space=space, algorithm="random")
    command = f"{TORCHRUN} --standalone --nproc-per-node 2 {TRAINERS / 'ddp_train.py'} --lr {{learning_rate}} --steps {{budget}}"
    done = subprocess.run(
        ["hpo", "sweep", "run", "ddp", "--storage", url, "--command", command, "--max-trials", "2", "--quiet",
         "--output-root", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
    )
    assert done.returncode == 0, done.stderr
    trials = hpo.load_study("ddp", url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETED] * 2, [t.error for t in trials]
    for trial in trials:
        out = tmp_path / "runs" / "hpo-runs" / "ddp" / f"trial-{trial.number}"
        lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert [line["budget"] for line in lines] == [1.0, 2.0, 3.0]  # one line per evaluation
        assert {(line["rank"], line["world_size"]) for line in lines} == {(0, 2)}  # rank 0's only
        ranks = [json.loads((out / f"rank-{rank}.json").read_text()) for rank in (0, 1)]
        assert [r["reports"] for r in ranks] == [3, 3] and [r["reporting"] for r in ranks] == [True, False]
        assert ranks[1]["params"] == trial.params and ranks[1]["budget"] == 3.0
        assert trial.value == lines[-1]["value"] and trial.intermediate_values == {b: line["value"] for b, line in zip((1.0, 2.0, 3.0), lines)}
        assert trial.attrs["exit_code"] == 0 and trial.attrs["output_dir"] == str(out)
        assert f"--lr {trial.params['learning_rate']}" in trial.attrs["command"] and trial.attrs["command"].endswith("--steps 3")


def test_crashes_bad_lines_silence_and_nan_are_recorded_and_the_sweep_goes_on(local_ray: None, tmp_path: Path) -> None:
    study = hpo.create_study("misbehave", f"sqlite:///{tmp_path / 's.db'}", search_space=_space())
    for mode in ("crash", "bad-metrics", "silent", "nan", "report"):
        study.enqueue({"mode": mode, "x": 0.25})
    objective = CommandObjective(f"{BEHAVE} {{mode}} {{x}}", grace_s=0.5, output_root=tmp_path)
    result = run_sweep(study, objective, max_trials=5, progress=False)

    by_mode = {t.params["mode"]: t for t in study.trials}
    crash = by_mode["crash"]
    assert crash.state is TrialState.FAILED and "command exited with code 3" in crash.error
    assert "MARKER: the loss went sideways" in crash.error and crash.attrs["exit_code"] == 3
    assert "MARKER" in crash.attrs["log_tail"]
    bad = by_mode["bad-metrics"]
    metrics = tmp_path / "hpo-runs" / "misbehave" / f"trial-{bad.number}" / "metrics.jsonl"
    assert bad.state is TrialState.FAILED
    assert f"metrics file {metrics} line 2 is not a JSON object with budget and value: loss=0.4" in bad.error
    assert bad.intermediate_values == {1.0: 0.5}
    silent = by_mode["silent"]
    assert silent.state is TrialState.FAILED and "the command reported no value" in silent.error
    assert by_mode["nan"].state is TrialState.DIVERGED
    ok = by_mode["report"]
    assert ok.state is TrialState.COMPLETED and ok.value == pytest.approx(0.5)  # x + 1/4
    assert ok.intermediate_values == pytest.approx({1.0: 1.25, 2.0: 0.75, 3.0: 0.25 + 1 / 3, 4.0: 0.5})  # the split line read whole
    assert result.deaths == []  # a failing command never costs a worker
    for trial in study.trials:  # nothing any trial started outlives it
        assert all(_gone(pid) for pid in _pids(tmp_path / "hpo-runs" / "misbehave" / f"trial-{trial.number}"))


@pytest.fixture
def stopping_study(tmp_path: Path) -> hpo.Study:
    """ASHA in stopping mode: trial 0 (x = 0) sets the bar at each rung, trial 1 (x = 1) is
    worse at the first rung and is pruned there."""
    return hpo.create_study(
        "prune", f"sqlite:///{tmp_path / 'p.db'}", search_space=_space(steps=9),
        algorithm="asha", algorithm_settings={"mode": "stopping", "eta": 3},
    )


def test_a_pruned_torchrun_whose_ranks_ignore_sigterm_is_killed_after_the_grace(stopping_study: hpo.Study, tmp_path: Path) -> None:
    for x in (0.0, 1.0):
        stopping_study.enqueue({"mode": "stubborn", "x": x})
    command = f"{TORCHRUN} --standalone --nproc-per-node 2 {TRAINERS / 'behave.py'} {{mode}} {{x}}"
    objective = CommandObjective(command, grace_s=0.5, output_root=tmp_path)
    outcomes = hpo.optimize(stopping_study, objective, n_trials=2)

    assert outcomes[TrialState.COMPLETED] == 1 and outcomes[TrialState.PRUNED] == 1
    pruned = stopping_study.trial(1)
    out = tmp_path / "hpo-runs" / "prune" / "trial-1"
    assert pruned.state is TrialState.PRUNED and pruned.value == 2.0 and pruned.intermediate_values == {1.0: 2.0}
    assert (out / "STOP").exists() and (out / "saw-stop").exists()  # the stop file reached the script
    assert pruned.attrs["exit_code"] != 0  # it did not end by itself: SIGKILL did
    pids = _pids(out)
    assert len(pids) == 2 and all(_gone(pid) for pid in pids)  # both ranks, in sessions of their own
    assert stopping_study.trial(0).state is TrialState.COMPLETED and stopping_study.trial(0).attrs["exit_code"] == 0


def test_a_pruned_trainer_that_obeys_ends_cleanly_before_sigkill(stopping_study: hpo.Study, tmp_path: Path) -> None:
    for x in (0.0, 1.0):
        stopping_study.enqueue({"mode": "obedient", "x": x})
    objective = CommandObjective(f"{BEHAVE} {{mode}} {{x}}", grace_s=60, output_root=tmp_path)
    started = time.monotonic()
    outcomes = hpo.optimize(stopping_study, objective, n_trials=2)

    assert time.monotonic() - started < 30  # far inside the 60 s grace: nothing waited for SIGKILL
    assert outcomes[TrialState.COMPLETED] == 1 and outcomes[TrialState.PRUNED] == 1
    pruned = stopping_study.trial(1)
    out = tmp_path / "hpo-runs" / "prune" / "trial-1"
    assert pruned.state is TrialState.PRUNED and pruned.attrs["exit_code"] == 0
    assert (out / "clean-exit").exists()


def test_a_worker_killed_outright_takes_its_command_down(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    study = hpo.create_study("killed", url, search_space=_space())
    study.enqueue({"mode": "hang", "x": 0.5})
    command = f"{TORCHRUN} --standalone --nproc-per-node 2 {TRAINERS / 'behave.py'} {{mode}} {{x}}"
    worker = textwrap.dedent(f"""
        import hpo
        from workers.command import CommandObjective
        hpo.optimize(hpo.load_study("killed", {url!r}), CommandObjective({command!r}, output_root={str(tmp_path)!r}), n_trials=1)
    """)
    process = subprocess.Popen([sys.executable, "-c", worker], cwd=tmp_path)
    out = tmp_path / "hpo-runs" / "killed" / "trial-0"
    deadline = time.monotonic() + 120
    while len(_pids(out)) < 2 or not (out / "metrics.jsonl").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)  # as Ray or the OOM killer does: no finally runs
    process.wait()
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in _pids(out)):
        assert time.monotonic() < deadline, "the command's ranks outlived their worker"
        time.sleep(0.1)


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    hpo.create_study("bad", url, search_space=_space())
    hpo.create_study("flat", url, search_space=SearchSpace({"x": Float(0.0, 1.0)}))
    for args, message in [
        (["bad", "--command", "python train.py --lr {learning_rate}"],
         "hpo: error: command placeholder {learning_rate} is neither a parameter of study 'bad' nor a trial placeholder; "
         "allowed: mode, x, budget, trial, trial_id, study, output_dir"),
        (["bad", "--command", "no-such-trainer --x {x}"], "hpo: error: command not found: no-such-trainer"),
        (["flat", "--command", "python train.py --steps {budget}"],
         "hpo: error: command placeholder {budget}: study 'flat' has no fidelity"),
        (["bad", "--command", "python train.py --x {}"], "hpo: error: command 'python train.py --x {}' has a placeholder without a name"),
        (["bad", "--command", "python 'train.py"], "hpo: error: command \"python 'train.py\" does not parse: No closing quotation"),
        (["bad", "--command", "python t.py", "--objective", "branin"], "hpo: error: --command and --objective exclude each other"),
        (["bad", "--objective", "branin", "--grace-seconds", "1"], "hpo: error: --grace-seconds and --output-root go with --command"),
    ]:
        failed = subprocess.run(["hpo", "sweep", "run", *args, "--storage", url, "--max-trials", "1"],
                                capture_output=True, text=True, timeout=120, check=False)
        assert failed.returncode == 2, failed.stderr
        assert failed.stderr.startswith(message) and len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert hpo.load_study("bad", url).trials == []  # nothing ran

    study = hpo.load_study("bad", url)  # a placeholder with a format spec names its parameter too
    with pytest.raises(ObjectiveError, match=r"command placeholder \{lr\} is neither a parameter"):
        CommandObjective("python t.py --lr {lr:.3g}").validate(study)
