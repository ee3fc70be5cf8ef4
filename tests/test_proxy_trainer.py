"""The proxy trainer and its data: falling held-out loss at every rung, divergence recorded as
such in a real study, exact repeats from a seed, schedules, and every kind of data a user can
bring (text file, folder, .npy tokens, raw uint16 tokens) with clear errors for bad ones."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import hpo
from db.models import TrialState
from hpo.runner import Diverged
from workers.objectives import resolve_objective
from workers.proxies.data import digits, load_tokens, stdlib_corpus
from workers.proxies.parameterization import ProxyConfigError
from workers.proxies.schedules import lr_multiplier
from workers.proxies.trainer import split_config, train

TINY = {"width": 32, "depth": 1, "heads": 2, "seq_len": 32, "batch_size": 8, "learning_rate": 1e-2}


def test_gpt_reports_falling_held_out_loss_at_each_rung_and_its_n_and_d() -> None:
    seen: list[tuple[float, float]] = []
    rungs = [8 * 32 * 20, 8 * 32 * 60]
    result = train("gpt", TINY, 8 * 32 * 180, unit="tokens", report_at=rungs, report=lambda b, v: seen.append((b, v)) or True)
    assert [b for b, _ in seen] == [5120.0, 15360.0, 46080.0]
    values = [v for _, v in seen]
    assert values[0] > values[1] > values[2] and values[0] < math.log(256)  # learning, below uniform
    assert result.losses == seen and result.final_loss == values[-1]
    assert result.steps == 180 and result.tokens == 180 * 8 * 32 == 46080
    assert result.non_embedding_params == 12 * 32 * 32 + 4 * 32 + 2 * 32


def test_mlp_trains_on_digits_in_steps() -> None:
    result = train("mlp", {"width": 64, "learning_rate": 1e-2, "batch_size": 32}, 150, unit="steps", report_at=[15, 50])
    losses = [v for _, v in result.losses]
    assert [b for b, _ in result.losses] == [15.0, 50.0, 150.0]
    assert losses[0] > losses[1] > losses[2] and losses[2] < 0.5 * math.log(10)
    assert result.tokens == 150 * 32  # examples seen


def test_the_worker_stopping_a_trial_stops_training() -> None:
    calls: list[float] = []
    result = train("gpt", TINY, 8 * 32 * 90, report_at=[8 * 32 * 10, 8 * 32 * 30], report=lambda b, v: calls.append(b) or False)
    assert calls == [2560.0] and result.steps == 10 and result.stopped_early


def test_identical_seeds_give_identical_losses_and_other_seeds_do_not() -> None:
    run = lambda seed: train("gpt", {**TINY, "seed": seed, "micro_batch_size": 4}, 8 * 32 * 30, report_at=[8 * 32 * 10]).losses  # noqa: E731
    assert run(3) == run(3)
    assert run(3) != run(4)


def test_gradient_accumulation_matches_one_big_batch() -> None:
    whole = train("mlp", {"width": 64, "batch_size": 32, "seed": 1}, 20, unit="steps")
    accumulated = train("mlp", {"width": 64, "batch_size": 32, "micro_batch_size": 8, "seed": 1}, 20, unit="steps")
    assert whole.tokens == accumulated.tokens == 640
    # the same examples? no: micro-batches draw their own indices; but both learn to the same level
    assert abs(whole.final_loss - accumulated.final_loss) < 0.25


def test_a_diverging_learning_rate_is_detected_not_a_crash() -> None:
    with pytest.raises(Diverged, match=r"training loss .* at step"):
        train("gpt", {**TINY, "learning_rate": 10.0, "warmup_fraction": 0.0}, 8 * 32 * 40)


@pytest.mark.parametrize("lr", [10.0, 1e-3])
def test_proxy_objective_in_a_study_records_diverged_or_completed_with_n_and_d(sqlite_url: str, lr: float) -> None:
    space = {
        "parameters": {
            "learning_rate": {"type": "fixed", "value": lr},
            "warmup_fraction": {"type": "fixed", "value": 0.0},
            **{k: {"type": "fixed", "value": v} for k, v in TINY.items() if k != "learning_rate"},
        },
        "fidelity": {"name": "tokens", "min": 768, "max": 6912},
    }
    study = hpo.create_study("proxy", sqlite_url, search_space=space, algorithm="hyperband")
    hpo.optimize(study, resolve_objective("proxy:gpt", study), n_trials=2)
    trials = study.trials
    assert len(trials) == 2
    if lr > 1:
        assert {t.state for t in trials} == {TrialState.DIVERGED}
        assert all("diverged: training loss" in (t.error or "") for t in trials)
    else:
        assert {t.state for t in trials} == {TrialState.COMPLETED}
        t = trials[0]
        assert t.attrs["n_params"] == 12480 and t.attrs["tokens"] == t.budget == t.attrs["steps"] * 256
        assert t.attrs["bracket"] == 0 and "rung" in t.attrs  # the algorithm's attrs stay
        assert list(t.intermediate_values) == [t.budget]


def test_proxy_objective_reports_at_the_studys_rungs(sqlite_url: str) -> None:
    space = {
        "parameters": {k: {"type": "fixed", "value": v} for k, v in TINY.items()},
        "fidelity": {"name": "tokens", "min": 768, "max": 6912},
    }
    study = hpo.create_study("rungs", sqlite_url, search_space=space, algorithm="asha", algorithm_settings={"mode": "stopping"})
    hpo.optimize(study, resolve_objective("proxy:gpt", study), n_trials=1)
    (trial,) = study.trials
    assert trial.budget == 6912 and list(trial.intermediate_values) == [768.0, 2304.0, 6912.0]


def test_proxy_objective_refuses_a_fidelity_it_cannot_train_to(sqlite_url: str) -> None:
    from workers.errors import ObjectiveError

    space = {"parameters": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1}}, "fidelity": {"name": "epochs", "min": 1, "max": 9}}
    study = hpo.create_study("epochs", sqlite_url, search_space=space)
    with pytest.raises(ObjectiveError, match="proxy:gpt trains to a budget in tokens or steps; study 'epochs' declares its fidelity as 'epochs'"):
        resolve_objective("proxy:gpt", study)


def test_unknown_settings_are_named_with_the_known_ones() -> None:
    with pytest.raises(ProxyConfigError, match=r"the gpt proxy has no setting 'lerning_rate'; known: .*learning_rate"):
        split_config("gpt", {"lerning_rate": 0.1})
    with pytest.raises(ProxyConfigError, match="the mlp proxy has no setting 'attn_mult'"):
        split_config("mlp", {"attn_mult": 2.0})
    with pytest.raises(ProxyConfigError, match="unknown schedule 'linear'"):
        split_config("gpt", {"schedule": "linear"})
    with pytest.raises(ProxyConfigError, match="embed_lr_mult must be positive"):
        split_config("gpt", {"embed_lr_mult": 0.0})


def test_schedules_warm_up_then_decay() -> None:
    assert lr_multiplier(0, 100, warmup_fraction=0.1) == pytest.approx(0.1)
    assert lr_multiplier(9, 100, warmup_fraction=0.1) == pytest.approx(1.0)
    assert lr_multiplier(10, 100, warmup_fraction=0.1) == pytest.approx(1.0)
    assert lr_multiplier(99, 100, warmup_fraction=0.1) == pytest.approx(0.1, abs=1e-3)  # cosine to 10%
    wsd = {"schedule": "wsd", "warmup_fraction": 0.1, "decay_fraction": 0.2}
    assert lr_multiplier(50, 100, **wsd) == 1.0 and lr_multiplier(79, 100, **wsd) == 1.0
    assert lr_multiplier(89, 100, **wsd) == pytest.approx(0.55)
    assert lr_multiplier(99, 100, **wsd) == pytest.approx(0.1)


def test_stdlib_corpus_is_whole_held_out_modules() -> None:
    data = stdlib_corpus()
    assert data.vocab_size == 256 and len(data.train) > 5_000_000
    assert 0.05 < len(data.heldout) / (len(data.train) + len(data.heldout)) < 0.2
    assert b"def " in data.heldout[:200_000].tobytes()


def test_users_text_and_token_files(tmp_path: Path) -> None:
    text = tmp_path / "book.txt"
    text.write_bytes(b"the quick brown fox jumps over the lazy dog. " * 200)
    data = load_tokens(str(text))
    assert data.vocab_size == 256 and len(data.heldout) == len(text.read_bytes()) // 10
    result = train("gpt", {**TINY, "data": str(text)}, 8 * 32 * 30)
    assert result.final_loss < 3.0  # a repetitive text is easy

    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(10):
        (folder / f"{i:02d}.md").write_bytes(f"document {i} ".encode() * 50)
    docs = load_tokens(str(folder))
    assert docs.heldout.tobytes() == (folder / "09.md").read_bytes()

    tokens = np.random.default_rng(0).integers(0, 1000, size=20_000).astype(np.uint16)
    np.save(tmp_path / "tokens.npy", tokens)
    tokens.tofile(tmp_path / "tokens.bin")
    for name in ("tokens.npy", "tokens.bin"):
        result = train("gpt", {**TINY, "data": str(tmp_path / name), "vocab_size": 1000}, 8 * 32 * 5)
        assert result.final_loss > 0
    assert np.array_equal(load_tokens(str(tmp_path / "tokens.bin"), 1000, "uint16").train, tokens[:18_000])

    for spec, vocab, message in [
        (str(tmp_path / "missing.txt"), None, "does not exist"),
        (str(tmp_path / "tokens.npy"), None, "needs its vocabulary size"),
        (str(tmp_path / "tokens.npy"), 500, "holds token 999, outside its vocabulary of 500"),
    ]:
        with pytest.raises(ProxyConfigError, match=message):
            load_tokens(spec, vocab)
    short = tmp_path / "short.txt"
    short.write_bytes(b"tiny")
    with pytest.raises(ProxyConfigError, match="fewer than one sequence of 32"):
        train("gpt", {**TINY, "data": str(short)}, 256)


def test_digits_split_is_fixed_and_standardised() -> None:
    data = digits()
    assert data.in_features == 64 and data.classes == 10
    assert len(data.x_train) + len(data.x_heldout) == 1797 and len(data.x_heldout) == 359
    assert abs(float(data.x_train.mean())) < 0.01
