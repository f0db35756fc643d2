"""Linked IV (IV = sqrt(v) e^z): the stationary percentile table, the z process, defaults."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from simkit.paths import MarketParams, cell_key, heston, linked_iv_table, simulate_market
from simkit.paths.iv import VARIANCE_FLOOR
from simkit.paths.linked_iv import KNOTS, stationary_cdf

N_SE = 4.0
HESTON = MarketParams(model="heston")


def assert_within_se(estimate, expected, se, what=""):
    assert abs(estimate - expected) <= N_SE * se, (
        f"{what}: {estimate:.6g} vs {expected:.6g}, {abs(estimate - expected) / se:.1f} SE"
    )


def lookup(table, iv):
    """Linear interpolation in the table (what the engines do), NumPy."""
    grid = table.start + table.step * np.arange(KNOTS)
    return np.interp(np.log(iv), grid, np.asarray(table.percentiles))


def test_defaults_by_model_and_checks():
    assert MarketParams(model="heston").linked_iv and MarketParams(model="bates").linked_iv
    assert not MarketParams().linked_iv and not MarketParams(model="merton").linked_iv
    assert not MarketParams(model="heston", iv_model="independent").linked_iv
    with pytest.raises(ValueError, match="'linked' needs a stochastic-variance model"):
        MarketParams(model="gbm", iv_model="linked")
    with pytest.raises(ValueError, match="kappa_v must be > 0 with linked IV"):
        MarketParams(model="heston", kappa_v=0.0)
    MarketParams(model="heston", kappa_v=0.0, iv_model="independent")  # no stationary law needed
    with pytest.raises(ValueError, match="vrp_kappa must be > 0 with linked IV"):
        MarketParams(model="bates", vrp_kappa=0.0)


@pytest.mark.parametrize(
    "params",
    [
        HESTON,
        dataclasses.replace(HESTON, xi=8.0),  # Feller violated: a long left tail of ln v
        dataclasses.replace(HESTON, xi=0.5, vrp_eta=1.5),  # z dominates
    ],
)
def test_table_is_the_stationary_law_of_a_large_sample(params):
    """100 F(ln IV) from the table against the empirical CDF of 2,000,000 draws of
    ln v / 2 + z (v Gamma, z Normal), at its 0.1 % .. 99.9 % quantiles."""
    rng = np.random.default_rng(0)
    n = 2_000_000
    shape = 2 * params.kappa_v * params.theta_v / params.xi**2
    scale = params.xi**2 / (2 * params.kappa_v)
    sd_z = params.vrp_eta / math.sqrt(2 * params.vrp_kappa)
    log_iv = 0.5 * np.log(rng.gamma(shape, scale, n)) + rng.normal(
        math.log(params.vrp_long_run), sd_z, n
    )
    table = linked_iv_table(params)
    for q in (0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999):
        got = lookup(table, np.exp(np.quantile(log_iv, q)))
        assert_within_se(got, 100 * q, 100 * math.sqrt(q * (1 - q) / n), f"percentile at {q}")
    p = np.asarray(table.percentiles)
    assert np.all(np.diff(p) >= 0) and p[0] < 1e-4 and p[-1] > 100 - 1e-4


def test_table_interpolation_is_within_a_hundredth_of_a_point():
    table = linked_iv_table(HESTON)
    mid = table.start + table.step * (np.arange(KNOTS - 1) + 0.5)  # worst case: between knots
    exact = 100 * stationary_cdf(
        mid, HESTON.kappa_v, HESTON.theta_v, HESTON.xi, 1.15, HESTON.vrp_kappa, HESTON.vrp_eta
    )
    np.testing.assert_allclose(lookup(table, np.exp(mid)), exact, atol=0.01)


def test_degenerate_laws_are_exact():
    """xi = 0: v = theta, ln IV Normal; vrp_eta = 0: z = ln vrp_long_run, ln IV = ln v / 2 + c."""
    y = np.linspace(0.0, 1.5, 7)
    no_xi = stationary_cdf(y, 6.0, 3.61, 0.0, 1.15, 6.0, 0.5)
    expected = stats.norm.cdf((y - 0.5 * math.log(3.61) - math.log(1.15)) / (0.5 / math.sqrt(12)))
    np.testing.assert_allclose(no_xi, expected, rtol=1e-12)
    no_eta = stationary_cdf(y, 6.0, 3.61, 3.0, 1.15, 6.0, 0.0)
    shape, scale = 2 * 6 * 3.61 / 9, 9 / 12
    expected = stats.gamma.cdf(np.exp(2 * (y - math.log(1.15))), shape, scale=scale)
    np.testing.assert_allclose(no_eta, expected, atol=1.0 / 8192)  # the midpoint rule's bound


def test_linked_iv_is_sqrt_variance_times_an_ou_premium(x64):
    """ln(IV / sqrt(v)) is the OU process z: from z_0 = ln(iv0 / sqrt(v0)) its mean and variance
    at t follow the exact OU law, and it does not move with the spot."""
    params = dataclasses.replace(HESTON, iv0=4.2517)
    n_paths, n_steps = 20_000, 63
    m = simulate_market(params, 9, 0, 0, n_paths, n_steps, dtype=jnp.float64)
    spot, v = heston(cell_key(9, 0), 3.0, 0.05, 3.61, 6.0, 3.61, 3.0, -0.7, n_paths, n_steps)
    np.testing.assert_array_equal(m.spot, spot)
    iv = np.asarray(m.iv)
    np.testing.assert_allclose(iv[:, 0], 4.2517, rtol=1e-15)
    z = np.log(iv) - 0.5 * np.log(np.maximum(np.asarray(v), VARIANCE_FLOOR))
    z0, mean, kappa, eta = math.log(4.2517 / 1.9), math.log(1.15), 6.0, 0.5
    np.testing.assert_allclose(z[:, 0], z0, rtol=1e-12)
    for step in (21, 63):
        t = step / 252
        expected = mean + (z0 - mean) * math.exp(-kappa * t)
        sd = eta * math.sqrt((1 - math.exp(-2 * kappa * t)) / (2 * kappa))
        x = z[:, step]
        assert_within_se(x.mean(), expected, sd / math.sqrt(n_paths), f"E[z] at {step}d")
        assert x.std() == pytest.approx(sd, rel=4 * math.sqrt(2 / n_paths))
    dz, returns = np.diff(z, axis=1).ravel(), np.diff(np.log(spot), axis=1).ravel()
    assert abs(np.corrcoef(dz, returns)[0, 1]) < 4 / math.sqrt(dz.size)


def test_independent_iv_under_heston_keeps_its_spot_correlation():
    """iv_model "independent" with heston: the log-OU IV, its shock correlated with the spot's
    whole diffusion shock (rho Z_v + sqrt(1 - rho^2) Z_S) at iv_spot_corr."""
    params = dataclasses.replace(HESTON, iv_model="independent", iv_spot_corr=-0.5)
    m = simulate_market(params, 2, 0, 0, 4_000, 63)
    d_log_iv = np.diff(np.log(np.asarray(m.iv, np.float64)), axis=1).ravel()
    returns = np.diff(np.log(np.asarray(m.spot, np.float64)), axis=1).ravel()
    assert np.corrcoef(d_log_iv, returns)[0, 1] == pytest.approx(-0.5, abs=0.02)


def test_percentile_of_the_initial_iv():
    """The shipped scenario's start (IV at its median ratio to sqrt(theta_v)) sits near the
    middle of the stationary law; the seed's 425 % is in its top percent."""
    table = linked_iv_table(HESTON)
    assert 45 < lookup(table, 1.9 * 1.15) < 60
    assert lookup(table, 4.2517) > 99
    assert jax.numpy.isfinite(lookup(table, 1e-6)) and lookup(table, 1e-6) == table.percentiles[0]
