"""Tests of simkit.metrics: hand-computed cases, empyrical's definitions, laws, array kinds."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from simkit import metrics

# --------------------------------------------------------------------------- references


def empyrical_sharpe(returns, periods=252):
    """empyrical.sharpe_ratio(returns, risk_free=0), one series (no NaNs)."""
    returns = np.asarray(returns, dtype=np.float64)
    if returns.size < 2:
        return np.nan
    return np.mean(returns) / np.std(returns, ddof=1) * np.sqrt(periods)


def empyrical_cvar(returns, cutoff):
    """empyrical.conditional_value_at_risk, verbatim logic."""
    cutoff_index = int((len(returns) - 1) * cutoff)
    return np.mean(np.partition(returns, cutoff_index)[: cutoff_index + 1])


def loop_drawdown(equity):
    """Peak-to-trough drawdown by an explicit loop."""
    peak, worst = -np.inf, 0.0
    for value in equity:
        peak = max(peak, value)
        worst = min(worst, value / peak - 1)
    return worst


positive_curves = hnp.arrays(
    np.float64,
    st.integers(1, 60),
    elements=st.floats(1e-3, 1e6, allow_nan=False, allow_infinity=False),
)
return_samples = hnp.arrays(
    np.float64,
    st.integers(1, 80),
    elements=st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False),
)


# --------------------------------------------------------------------------- max_drawdown


def test_max_drawdown_hand_computed():
    equity = np.array([100.0, 120.0, 90.0, 130.0, 65.0, 140.0])
    assert metrics.max_drawdown(equity) == pytest.approx(-0.5)  # 130 → 65
    assert metrics.max_drawdown(np.array([100.0, 73.4])) == pytest.approx(-0.266)


def test_max_drawdown_along_last_axis():
    equity = np.array([[1.0, 2.0, 1.0], [1.0, 1.0, 1.0], [4.0, 3.0, 5.0]])
    np.testing.assert_allclose(metrics.max_drawdown(equity), [-0.5, 0.0, -0.25])


def test_max_drawdown_through_zero_and_below():
    assert metrics.max_drawdown(np.array([100.0, 40.0, 0.0])) == pytest.approx(-1.0)
    # A ruined sleeve whose liquidation costs more than it held: not clipped at -1.
    assert metrics.max_drawdown(np.array([100.0, 50.0, -50.0])) == pytest.approx(-1.5)
    # Steps before the running maximum turns positive are skipped; never positive → NaN.
    assert metrics.max_drawdown(np.array([-1.0, 2.0, 1.0])) == pytest.approx(-0.5)
    assert np.isnan(metrics.max_drawdown(np.array([0.0, -1.0])))


def test_max_drawdown_nan_propagates():
    assert np.isnan(metrics.max_drawdown(np.array([1.0, np.nan, 0.5])))


@given(positive_curves)
def test_max_drawdown_matches_loop_and_is_nonpositive(equity):
    value = metrics.max_drawdown(equity)
    assert value <= 0
    assert value >= -1
    assert value == pytest.approx(loop_drawdown(equity), rel=1e-12, abs=1e-15)


@given(positive_curves)
def test_max_drawdown_zero_for_nondecreasing_equity(equity):
    assert metrics.max_drawdown(np.sort(equity)) == 0.0


@given(positive_curves, st.floats(1e-3, 1e3))
def test_max_drawdown_scale_invariant(equity, scale):
    assert metrics.max_drawdown(scale * equity) == pytest.approx(
        metrics.max_drawdown(equity), rel=1e-9, abs=1e-12
    )


# --------------------------------------------------------------------------- Sharpe


def test_sharpe_hand_computed():
    # mean 0.02, std (ddof=1) 0.01
    assert metrics.sharpe_ratio(np.array([0.01, 0.02, 0.03])) == pytest.approx(2 * math.sqrt(252))
    assert metrics.sharpe_ratio(np.array([0.01, 0.02, 0.03]), periods=12) == pytest.approx(
        2 * math.sqrt(12)
    )


def test_sharpe_nan_cases():
    assert np.isnan(metrics.sharpe_ratio(np.array([0.01])))
    assert np.isnan(metrics.sharpe_ratio(np.full(252, 0.001)))
    assert np.isnan(metrics.sharpe_ratio(np.zeros(10)))
    out = metrics.sharpe_ratio(np.array([[0.01, 0.01, 0.01], [0.0, 0.01, 0.02]]))
    assert np.isnan(out[0]) and out[1] == pytest.approx(math.sqrt(252))


def test_sharpe_matches_empyrical_on_random_returns():
    rng = np.random.default_rng(1)
    returns = rng.normal(0.001, 0.03, size=(5, 300))
    expected = [empyrical_sharpe(row) for row in returns]
    np.testing.assert_allclose(metrics.sharpe_ratio(returns), expected, rtol=1e-12)


@given(return_samples.filter(lambda r: r.size >= 2 and np.ptp(r) > 1e-6))
def test_sharpe_property_matches_empyrical(returns):
    assert metrics.sharpe_ratio(returns) == pytest.approx(
        empyrical_sharpe(returns), rel=1e-9, abs=1e-9
    )


# --------------------------------------------------------------------------- VaR / CVaR


def test_var_cvar_hand_computed():
    returns = np.arange(-50, 51) / 100.0  # -0.50 … 0.50, 101 values
    # 1st percentile: position 0.01 * 100 = 1 → -0.49.
    assert metrics.value_at_risk(returns, 0.99) == pytest.approx(0.49)
    # empyrical CVaR: k = int(100 * 0.01) = 1 → mean of the 2 smallest.
    assert metrics.conditional_value_at_risk(returns, 0.99) == pytest.approx(0.495)
    # 5th percentile: -0.45; k = 5 → mean of -0.50 … -0.45.
    assert metrics.value_at_risk(returns, 0.95) == pytest.approx(0.45)
    assert metrics.conditional_value_at_risk(returns, 0.95) == pytest.approx(0.475)


def test_var_interpolates_linearly():
    returns = np.array([-0.10, 0.0, 0.10, 0.20, 0.30])
    # level 0.9: 10th percentile at position 0.4 → -0.10 + 0.4 * 0.10 = -0.06
    assert metrics.value_at_risk(returns, 0.9) == pytest.approx(0.06)
    assert metrics.conditional_value_at_risk(returns, 0.9) == pytest.approx(0.10)


def test_var_cvar_match_empyrical_along_last_axis():
    rng = np.random.default_rng(2)
    returns = rng.standard_t(3, size=(4, 1000)) * 0.02
    for level in (0.9, 0.95, 0.99, 0.999):
        np.testing.assert_allclose(
            metrics.value_at_risk(returns, level),
            [-np.percentile(row, 100 * (1 - level)) for row in returns],
            rtol=1e-12,
        )
        np.testing.assert_allclose(
            metrics.conditional_value_at_risk(returns, level),
            [-empyrical_cvar(row, 1 - level) for row in returns],
            rtol=1e-12,
        )


@given(return_samples, st.floats(0.5, 0.999), st.floats(0.5, 0.999))
def test_var_monotone_in_level(returns, level_a, level_b):
    low, high = sorted((level_a, level_b))
    assert metrics.value_at_risk(returns, low) <= metrics.value_at_risk(returns, high) + 1e-12


@given(return_samples, st.floats(0.5, 0.999))
def test_cvar_at_least_var(returns, level):
    assert (
        metrics.conditional_value_at_risk(returns, level)
        >= metrics.value_at_risk(returns, level) - 1e-12
    )


def test_var_rejects_bad_level():
    with pytest.raises(ValueError, match="level"):
        metrics.value_at_risk(np.zeros(5), 99)
    with pytest.raises(ValueError, match="level"):
        metrics.conditional_value_at_risk(np.zeros(5), 0.0)


# --------------------------------------------------------------------------- array kinds


PATH_METRICS = [
    metrics.max_drawdown,
    metrics.sharpe_ratio,
    metrics.value_at_risk,
    metrics.conditional_value_at_risk,
]


@pytest.mark.parametrize("metric", PATH_METRICS)
def test_jax_in_jax_out_and_agrees_with_numpy(metric):
    rng = np.random.default_rng(3)
    values = (1 + rng.normal(0, 0.05, size=(3, 200))).astype(np.float32)
    expected = metric(values)
    out = metric(jnp.asarray(values))
    assert isinstance(out, jax.Array)
    assert out.shape == (3,)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=2e-5, atol=1e-6)
    jitted = jax.jit(metric)(jnp.asarray(values))
    np.testing.assert_allclose(np.asarray(jitted), expected, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("metric", PATH_METRICS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_kept(metric, dtype):
    values = (1 + np.random.default_rng(4).normal(0, 0.05, size=(2, 50))).astype(dtype)
    out = metric(values)
    assert isinstance(out, np.ndarray | np.floating)
    assert out.dtype == dtype
    if dtype == np.float32:  # JAX's x64 mode is off by default: float32 is its native width
        assert metric(jnp.asarray(values)).dtype == jnp.float32


def test_integer_equity_promoted_to_float():
    assert metrics.max_drawdown(np.array([4, 2, 3])) == pytest.approx(-0.5)


def test_jax_nan_cases():
    assert bool(jnp.isnan(metrics.sharpe_ratio(jnp.ones(5))))
    assert bool(jnp.isnan(metrics.max_drawdown(jnp.array([0.0, -1.0]))))


# --------------------------------------------------------------------------- Kelly


def test_kelly_seed_numbers():
    out = metrics.kelly(0.892, 0.123, 0.087)
    assert out["seed_fraction"] == pytest.approx(0.892 - 0.108 * 0.087 / 0.123)
    assert out["seed_fraction"] == pytest.approx(0.816, abs=5e-4)
    assert out["growth_optimal"] == pytest.approx(9.37, abs=5e-3)
    assert out["conservative"] == pytest.approx(0.204, abs=5e-4)
    assert out["recommended"] == pytest.approx(0.20)
    assert set(out["units"]) == {"seed_fraction", "growth_optimal", "conservative", "recommended"}
    assert all(isinstance(text, str) and text for text in out["units"].values())


def test_kelly_growth_optimal_maximises_log_growth():
    p, a, b = 0.6, 0.5, 0.4
    f_star = metrics.kelly(p, a, b)["growth_optimal"]
    grid = np.linspace(0.01, 0.99 / b, 20001)
    growth = p * np.log1p(a * grid) + (1 - p) * np.log1p(-b * grid)
    assert f_star == pytest.approx(grid[np.argmax(growth)], abs=1e-3)
    # The seed's formula is the growth-optimal size times the average loss.
    assert metrics.kelly(p, a, b)["seed_fraction"] == pytest.approx(b * f_star)


def test_kelly_broadcasts_and_floors():
    out = metrics.kelly(np.array([0.3, 0.6, 0.9]), 0.1, np.array([[0.1], [0.2]]))
    assert out["seed_fraction"].shape == (2, 3)
    assert out["recommended"].min() == 0.0  # p = 0.3 with a = b has no edge
    assert out["recommended"].max() == pytest.approx(0.2)
    jax_out = metrics.kelly(jnp.array([0.892]), 0.123, 0.087, multiplier=0.5, cap=1.0)
    assert isinstance(jax_out["recommended"], jax.Array)
    assert float(jax_out["recommended"][0]) == pytest.approx(0.408, abs=5e-4)


@pytest.mark.parametrize(
    ("p", "win", "loss", "field"),
    [(1.2, 0.1, 0.1, "p"), (0.5, 0.0, 0.1, "avg_win"), (0.5, 0.1, -0.1, "avg_loss")],
)
def test_kelly_rejects_bad_inputs(p, win, loss, field):
    with pytest.raises(ValueError, match=field):
        metrics.kelly(p, win, loss)


# --------------------------------------------------------------------------- estimation


def test_proportion_ci_wilson_hand_computed():
    est = metrics.proportion_ci(8, 10)
    assert est.estimate == pytest.approx(0.8)
    assert est.se == pytest.approx(math.sqrt(0.8 * 0.2 / 10))
    # Wilson 95 % for 8/10 (z = 1.959964): (0.4902, 0.9433)
    assert est.lo == pytest.approx(0.49016, abs=1e-4)
    assert est.hi == pytest.approx(0.94331, abs=1e-4)
    edge = metrics.proportion_ci(np.array([0, 10]), 10)
    assert edge.lo[0] == 0.0 and edge.hi[0] > 0 and edge.hi[1] == 1.0 and edge.lo[1] < 1
    assert np.isnan(metrics.proportion_ci(0, 0).estimate)


def test_proportion_ci_coverage():
    rng = np.random.default_rng(5)
    true_p, n = 0.3, 100
    successes = rng.binomial(n, true_p, size=2000)
    est = metrics.proportion_ci(successes, n)
    coverage = np.mean((est.lo <= true_p) & (true_p <= est.hi))
    assert 0.93 <= coverage <= 0.97


def test_mean_se():
    est = metrics.mean_se(np.array([1.0, 2.0, 3.0, 4.0]))
    assert est.estimate == pytest.approx(2.5)
    assert est.se == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    assert est.hi - est.estimate == pytest.approx(1.959964 * est.se, rel=1e-6)
    assert np.isnan(metrics.mean_se(np.array([1.0])).se)


def test_quantile_ci_coverage_and_shape():
    rng = np.random.default_rng(6)
    samples = rng.standard_normal((1000, 400))
    est = metrics.quantile_ci(samples, 0.05)
    true_q = -1.6448536269514722
    np.testing.assert_allclose(est.estimate, np.quantile(samples, 0.05, axis=-1))
    assert np.all(est.lo <= est.estimate) and np.all(est.estimate <= est.hi)
    coverage = np.mean((est.lo <= true_q) & (true_q <= est.hi))
    assert 0.93 <= coverage <= 0.985  # order-statistic intervals are conservative
    tiny = metrics.quantile_ci(np.arange(10.0), 0.01)
    assert tiny.lo == -np.inf


def _clustered_trades(rng, n_paths, path_sd):
    """Per-path trade summaries with a path effect on the win probability."""
    trades = rng.poisson(30, n_paths)
    path_p = np.clip(0.8 + path_sd * rng.standard_normal(n_paths), 0.01, 0.99)
    wins = rng.binomial(trades, path_p)
    losses = trades - wins
    win_sum = np.zeros(n_paths)
    win_sq = np.zeros(n_paths)
    loss_sum = np.zeros(n_paths)
    loss_sq = np.zeros(n_paths)
    for g in range(n_paths):
        w = rng.gamma(4.0, 0.03, wins[g])
        ell = rng.gamma(2.0, 0.05, losses[g])
        win_sum[g], win_sq[g] = w.sum(), (w**2).sum()
        loss_sum[g], loss_sq[g] = ell.sum(), (ell**2).sum()
    return wins, trades, win_sum, win_sq, loss_sum, loss_sq


def test_kelly_inputs_pooled_estimates():
    wins = np.array([2, 1])
    trades = np.array([3, 2])
    # path 0: wins 0.1, 0.3 / loss 0.2; path 1: win 0.2 / loss 0.4
    out = metrics.kelly_inputs(wins, trades, [0.4, 0.2], [0.1, 0.04], [0.2, 0.4], [0.04, 0.16])
    assert out["p"] == pytest.approx(0.6)
    assert out["avg_win"] == pytest.approx(0.2)
    assert out["avg_loss"] == pytest.approx(0.3)
    assert out["seed_fraction"] == pytest.approx(0.6 - 0.4 * 0.3 / 0.2)
    assert out["growth_optimal"] == pytest.approx(0.6 / 0.3 - 0.4 / 0.2)
    assert out["avg_win_se_iid"] == pytest.approx(0.1 / math.sqrt(3))
    assert out["n_trades"] == 5 and out["n_wins"] == 3 and out["n_paths"] == 2
    assert out["p_lo"] < out["p"] < out["p_hi"]


def test_kelly_inputs_single_path_falls_back_to_iid():
    out = metrics.kelly_inputs([20], [25], [2.0], [0.25], [0.5], [0.06])
    assert out["se_method"] == "iid"
    assert out["p_se"] == pytest.approx(math.sqrt(0.8 * 0.2 / 25))
    assert np.isfinite(out["seed_fraction_se"]) and out["seed_fraction_se"] > 0


def test_kelly_inputs_cluster_se_matches_replication():
    """Across replicated clustered data sets the cluster SE matches the real spread."""
    rng = np.random.default_rng(7)
    replicas = [metrics.kelly_inputs(*_clustered_trades(rng, 200, path_sd=0.1)) for _ in range(300)]
    for key in ("p", "avg_win", "avg_loss", "seed_fraction", "growth_optimal"):
        spread = np.std([r[key] for r in replicas], ddof=1)
        mean_se = np.mean([r[f"{key}_se"] for r in replicas])
        assert mean_se == pytest.approx(spread, rel=0.2), key
    # The path effect makes trades dependent: the i.i.d. error understates p's spread.
    assert np.mean([r["p_se_iid"] for r in replicas]) < 0.8 * np.std([r["p"] for r in replicas])
    assert all(r["se_method"] == "cluster" for r in replicas)
    covered = np.mean([r["p_lo"] <= 0.8 <= r["p_hi"] for r in replicas])
    assert covered >= 0.9


def test_kelly_inputs_batched_over_leading_axis():
    rng = np.random.default_rng(8)
    cells = [_clustered_trades(rng, 50, path_sd=0.05) for _ in range(3)]
    stacked = [np.stack([cell[i] for cell in cells]) for i in range(6)]
    batched = metrics.kelly_inputs(*stacked)
    for c, cell in enumerate(cells):
        single = metrics.kelly_inputs(*cell)
        for key in ("p", "p_se", "p_lo", "avg_loss_se", "growth_optimal_se"):
            assert batched[key][c] == pytest.approx(single[key], rel=1e-12), key


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 50), st.integers(1, 50), st.floats(0.5, 0.999))
def test_proportion_ci_contains_estimate(successes, extra, conf):
    est = metrics.proportion_ci(successes, successes + extra, conf)
    assert 0 <= est.lo <= est.estimate <= est.hi <= 1


def test_kelly_traces_under_jit():
    recommended = jax.jit(lambda p: metrics.kelly(p, 0.123, 0.087)["recommended"])
    assert float(recommended(jnp.float32(0.892))) == pytest.approx(0.2)


def test_kelly_inputs_without_losses_is_nan_not_an_error():
    out = metrics.kelly_inputs([5, 4], [5, 4], [0.5, 0.4], [0.06, 0.05], [0.0, 0.0], [0.0, 0.0])
    assert out["p"] == 1.0 and out["p_hi"] == 1.0
    assert np.isnan(out["avg_loss"]) and np.isnan(out["growth_optimal"])
