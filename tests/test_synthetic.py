"""Synthetic benchmarks: known optima, fidelity bias/noise behaviour, costs and input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workers.synthetic import (
    BRANIN_OPTIMUM,
    HARTMANN3_OPTIMUM,
    HARTMANN6_OPTIMUM,
    HARTMANN_PRESETS,
    branin_cost,
    branin_mf,
    counting_ones,
    counting_ones_budgets,
    counting_ones_cost,
    hartmann_cost,
    hartmann_mf,
)

H3_OPT = (0.114614, 0.555649, 0.852547)
H6_OPT = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)


# --- Hartmann ---------------------------------------------------------------------------------


def test_hartmann_optima_at_top_fidelity() -> None:
    assert hartmann_mf(H3_OPT, 100) == pytest.approx(HARTMANN3_OPTIMUM, abs=1e-4)
    assert hartmann_mf(H6_OPT, 100) == pytest.approx(HARTMANN6_OPTIMUM, abs=1e-4)
    assert HARTMANN3_OPTIMUM == -3.86278 and HARTMANN6_OPTIMUM == -3.32237
    # Presets only touch z < 100: every preset gives the exact Hartmann at the top fidelity.
    for preset in HARTMANN_PRESETS:
        assert hartmann_mf(H3_OPT, 100, preset=preset) == hartmann_mf(H3_OPT, 100)


def test_hartmann_optimum_is_a_minimum() -> None:
    rng = np.random.default_rng(0)
    for opt, best in ((H3_OPT, HARTMANN3_OPTIMUM), (H6_OPT, HARTMANN6_OPTIMUM)):
        for _ in range(200):
            assert hartmann_mf(rng.uniform(0, 1, len(opt)), 100) >= best - 1e-4


@pytest.mark.parametrize("opt", [H3_OPT, H6_OPT])
def test_hartmann_low_fidelity_bias_follows_formula(opt: tuple[float, ...]) -> None:
    # f_z = -sum (alpha_i - bias (1 - s)) e_i = f_100 + bias (1 - s) E with E = sum_i e_i in (0, 4].
    top = hartmann_mf(opt, 100)
    bias_default, _ = HARTMANN_PRESETS["default"]
    shift = hartmann_mf(opt, 1) - top
    assert shift > 0  # cheap fidelities are biased upward (worse)
    exp_sum = shift / bias_default
    assert 0 < exp_sum <= 4
    for preset, (bias, _) in HARTMANN_PRESETS.items():
        for z in (1, 10, 50):
            s = math.log(z) / math.log(100)
            expected = top + bias * (1 - s) * exp_sum
            assert hartmann_mf(opt, z, preset=preset) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_hartmann_noise_one_sided_scaled_and_gone_at_top() -> None:
    x = (0.3, 0.6, 0.2)
    for preset, (_, noise) in HARTMANN_PRESETS.items():
        for z in (1, 3.7, 10, 99.9):
            clean = hartmann_mf(x, z, preset=preset)
            gaps = [
                hartmann_mf(x, z, preset=preset, rng=np.random.default_rng(seed)) - clean
                for seed in range(50)
            ]
            assert min(gaps) >= 0
            assert max(gaps) > 0
            # Same seed -> same |N(0,1)| draw, so the noise is exactly |n| * noise * (1 - s).
            draw = abs(float(np.random.default_rng(7).standard_normal()))
            s = math.log(z) / math.log(100)
            got = hartmann_mf(x, z, preset=preset, rng=np.random.default_rng(7)) - clean
            assert got == pytest.approx(draw * noise * (1 - s), rel=1e-9, abs=1e-12)
        rng = np.random.default_rng(1)
        assert all(hartmann_mf(x, 100, preset=preset, rng=rng) == hartmann_mf(x, 100) for _ in range(20))


def test_hartmann_rejects_bad_inputs() -> None:
    for bad_x in ([0.5] * 2, [0.5] * 4, [0.5] * 7, [], [[0.5] * 3]):
        with pytest.raises(ValueError, match="3 or 6"):
            hartmann_mf(bad_x, 50)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        hartmann_mf([0.5, 1.5, 0.5], 50)
    for bad_z in (0.5, 0, 100.5, -1, float("nan")):
        with pytest.raises(ValueError, match="fidelity"):
            hartmann_mf(H3_OPT, bad_z)
    with pytest.raises(ValueError, match="default") as info:
        hartmann_mf(H3_OPT, 50, preset="awful")
    assert all(name in str(info.value) for name in HARTMANN_PRESETS)


def test_hartmann_cost() -> None:
    assert hartmann_cost(100) == 1.0
    assert hartmann_cost(1) == pytest.approx(0.05 + 0.95 * 1e-4)
    assert hartmann_cost(50) == pytest.approx(0.05 + 0.95 * 0.25)
    assert hartmann_cost(10) < hartmann_cost(20) < hartmann_cost(100)
    with pytest.raises(ValueError):
        hartmann_cost(101)


# --- Counting ones ----------------------------------------------------------------------------


@pytest.mark.parametrize("d_cat,d_cont", [(8, 8), (32, 32)])
def test_counting_ones_optimum_and_expectation(d_cat: int, d_cont: int) -> None:
    d = d_cat + d_cont
    _, b_max = counting_ones_budgets(d)
    assert counting_ones([1] * d_cat, [1.0] * d_cont, b_max) == -d
    # All-ones is optimal even with noise: Bernoulli(1) never draws a zero.
    assert counting_ones([1] * d_cat, [1.0] * d_cont, 3, rng=np.random.default_rng(0)) == -d
    assert counting_ones([0] * d_cat, [0.0] * d_cont, b_max, rng=np.random.default_rng(0)) == 0
    cont = np.linspace(0, 1, d_cont)
    cat = [i % 2 for i in range(d_cat)]
    assert counting_ones(cat, cont, 10) == pytest.approx(-(sum(cat) + cont.sum()))


def test_counting_ones_noise_is_unbiased_and_shrinks_with_budget() -> None:
    d = 16
    b_min, b_max = counting_ones_budgets(d)
    cat, cont = [1, 0] * 4, [0.5, 0.2, 0.9, 0.35, 0.6, 0.05, 0.75, 0.4]
    expected = counting_ones(cat, cont, b_max)
    rng = np.random.default_rng(42)
    low = np.array([counting_ones(cat, cont, b_min, rng=rng) for _ in range(2000)])
    high = np.array([counting_ones(cat, cont, b_max, rng=rng) for _ in range(2000)])
    # sd of one evaluation is sqrt(sum p(1-p) / n); the mean over 2000 draws is far tighter.
    sd_low = math.sqrt(sum(p * (1 - p) for p in cont) / round(b_min))
    sd_high = math.sqrt(sum(p * (1 - p) for p in cont) / round(b_max))
    assert low.mean() == pytest.approx(expected, abs=5 * sd_low / math.sqrt(2000))
    assert high.mean() == pytest.approx(expected, abs=5 * sd_high / math.sqrt(2000))
    assert low.std() == pytest.approx(sd_low, rel=0.1)
    assert high.std() == pytest.approx(sd_high, rel=0.1)
    assert high.std() < low.std() / 5  # 162x the samples -> about 12.7x less noise


def test_counting_ones_budgets_and_cost() -> None:
    assert counting_ones_budgets(16) == (36.0, 5832.0)
    assert counting_ones_budgets(64) == (9.0, 1458.0)
    for d in (16, 64):
        b_min, b_max = counting_ones_budgets(d)
        assert counting_ones_cost(b_max, d) == 1.0
        assert counting_ones_cost(b_min, d) == pytest.approx(576 / 93312)
        assert counting_ones_cost(b_max / 3, d) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        counting_ones_budgets(0)
    with pytest.raises(ValueError):
        counting_ones_cost(10, 0)


def test_counting_ones_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        counting_ones([1, 2], [0.5], 10)
    with pytest.raises(ValueError, match="0 or 1"):
        counting_ones([0.5], [0.5], 10)
    for bad in ([1.5], [-0.1], [float("nan")]):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            counting_ones([1], bad, 10)
    with pytest.raises(ValueError, match="dimension"):
        counting_ones([], [], 10)
    for bad_budget in (0, 0.4, -5, float("nan")):
        with pytest.raises(ValueError, match="budget"):
            counting_ones([1], [0.5], bad_budget, rng=np.random.default_rng(0))


# --- Branin (unchanged) -----------------------------------------------------------------------


def test_branin_unchanged() -> None:
    for x1, x2 in ((math.pi, 2.275), (-math.pi, 12.275), (9.42478, 2.475)):
        assert branin_mf(x1, x2, 1) == pytest.approx(BRANIN_OPTIMUM, abs=1e-5)
    assert branin_mf(math.pi, 2.275, 1) == pytest.approx(0.397887, abs=1e-6)
    assert branin_mf(math.pi, 2.275, 0) != pytest.approx(BRANIN_OPTIMUM, abs=1e-3)
    assert branin_cost(1) == 1.0
    assert branin_cost(0) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        branin_mf(0.0, 0.0, 1.5)
