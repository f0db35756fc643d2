"""The implied-volatility process: exact OU law of ln IV, spot correlation, jump response."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from simkit.paths import MarketParams, iv_percentile, simulate_market
from simkit.paths.iv import ou_step

N_SE = 4.0


def assert_within_se(estimate, expected, se, what=""):
    assert abs(estimate - expected) <= N_SE * se, (
        f"{what}: {estimate:.6g} vs {expected:.6g}, {abs(estimate - expected) / se:.1f} SE"
    )


def test_percentile_at_the_baseline_is_99():
    assert float(iv_percentile(4.2517, 2.17, 6.0, 1.0)) == pytest.approx(99.0, abs=0.05)
    assert float(iv_percentile(2.17, 2.17, 6.0, 1.0)) == pytest.approx(50.0)


def test_percentile_broadcasts_and_is_the_stationary_cdf():
    iv = np.array([[0.5], [2.0], [8.0]])
    eta = np.array([0.5, 1.0])
    got = np.asarray(iv_percentile(iv, 2.17, 6.0, eta))
    expected = 100 * norm.cdf((np.log(iv) - np.log(2.17)) / (eta / np.sqrt(12.0)))
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert iv_percentile(jnp.float32(3.0), 2.17, 6.0, 1.0).dtype == jnp.float32


@pytest.fixture(scope="module")
def baseline_market():
    """The baseline market (GBM, IV from 425 %), 40 000 paths over a quarter."""
    return simulate_market(
        MarketParams(), seed=21, cell=0, path_start=0, n_paths=10_000, n_steps=63
    )


def test_log_iv_follows_the_exact_ou_law(baseline_market):
    """x_t ~ Normal(ln L + (x_0 - ln L) e^{-kappa t}, eta^2 (1 - e^{-2 kappa t}) / (2 kappa))."""
    p = MarketParams()
    x = np.log(np.asarray(baseline_market.iv, np.float64))
    np.testing.assert_allclose(x[:, 0], math.log(p.iv0), rtol=1e-6)
    for step in (1, 10, 63):
        t = step / 252
        mean = math.log(p.iv_long_run) + (math.log(p.iv0) - math.log(p.iv_long_run)) * math.exp(
            -p.kappa * t
        )
        var = p.eta**2 * (1 - math.exp(-2 * p.kappa * t)) / (2 * p.kappa)
        n = x.shape[0]
        assert_within_se(x[:, step].mean(), mean, math.sqrt(var / n), f"mean ln IV at {step}")
        assert_within_se(
            x[:, step].var(ddof=1), var, var * math.sqrt(2 / (n - 1)), f"var at {step}"
        )


def test_stationary_law_from_the_long_run_level():
    p = MarketParams(iv0=2.17, kappa=6.0, eta=1.0)
    market = simulate_market(p, seed=22, cell=0, path_start=0, n_paths=10_000, n_steps=63)
    x = np.log(np.asarray(market.iv[:, -1], np.float64))
    var = (1 - math.exp(-2 * 6.0 * 0.25)) / 12.0  # 95 % of the stationary 1/12
    n = x.size
    assert_within_se(x.mean(), math.log(2.17), math.sqrt(var / n), "mean")
    assert_within_se(x.var(ddof=1), var, var * math.sqrt(2 / (n - 1)), "variance")
    # The stationary percentile of the simulated IVs is uniform-ish: its median is ~50.
    assert_within_se(
        np.median(np.asarray(iv_percentile(market.iv[:, -1], 2.17, 6.0, 1.0))),
        50.0,
        100 * 0.5 / math.sqrt(n) * 1.3,
    )


def test_iv_shocks_correlate_with_spot_shocks(baseline_market):
    p = MarketParams()
    dt = 1 / 252
    log_s = np.log(np.asarray(baseline_market.spot, np.float64))
    x = np.log(np.asarray(baseline_market.iv, np.float64))
    spot_shock = np.diff(log_s, axis=1).ravel()
    decay = math.exp(-p.kappa * dt)
    iv_shock = (x[:, 1:] - x[:, :-1] * decay - math.log(p.iv_long_run) * (1 - decay)).ravel()
    corr = np.corrcoef(spot_shock, iv_shock)[0, 1]
    rho = p.iv_spot_corr
    assert_within_se(corr, rho, (1 - rho**2) / math.sqrt(spot_shock.size), "corr")


def test_iv_responds_to_a_jump_by_beta(x64):
    """With no diffusion (sigma = eta = 0), each step: ln IV residual = iv_jump_beta * J exactly."""
    p = MarketParams(model="merton", sigma=0.0, eta=0.0, jump_intensity=50.0, iv_jump_beta=-0.7)
    market = simulate_market(p, 1, 0, 0, 20, 12, dtype=jnp.float64)
    dt = 1 / 252
    k = math.exp(p.jump_mean + 0.5 * p.jump_std**2) - 1
    jumps = np.diff(np.log(np.asarray(market.spot)), axis=1) - (p.mu - p.jump_intensity * k) * dt
    x = np.log(np.asarray(market.iv))
    decay = math.exp(-p.kappa * dt)
    residual = x[:, 1:] - x[:, :-1] * decay - math.log(p.iv_long_run) * (1 - decay)
    np.testing.assert_allclose(residual, -0.7 * jumps, atol=1e-12)
    assert np.asarray(market.jump)[:, 1:].any()
    np.testing.assert_array_equal(np.abs(jumps) > 1e-12, np.asarray(market.jump)[:, 1:])


def test_ou_step_without_mean_reversion_is_brownian(x64):
    z = jax.random.normal(jax.random.PRNGKey(0), (100_000,), jnp.float64)
    x = np.asarray(ou_step(jnp.zeros_like(z), z, 0.0, 5.0, 2.0, 0.25))
    assert_within_se(x.var(), 4.0 * 0.25, 1.0 * math.sqrt(2 / x.size), "variance")
    np.testing.assert_array_equal(ou_step(jnp.ones(3), jnp.ones(3), 0.0, 5.0, 0.0, 0.25), 1.0)
