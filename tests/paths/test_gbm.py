"""GBM paths: log-return moments, E[S_T], Monte Carlo prices against Black-Scholes."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit.paths import MarketParams, cell_key, gbm, simulate_market
from simkit.pricing import bs_price

N_SE = 4.0  # tolerance of every statistical check, in standard errors


def assert_within_se(estimate, expected, se, what=""):
    assert abs(estimate - expected) <= N_SE * se, (
        f"{what}: {estimate:.6g} vs {expected:.6g}, {abs(estimate - expected) / se:.1f} SE"
    )


def test_shape_dtype_and_first_column():
    spot = gbm(jax.random.PRNGKey(0), 3.0, 0.05, 1.9, 7, 5)
    assert spot.shape == (7, 6) and spot.dtype == jnp.float32
    np.testing.assert_array_equal(spot[:, 0], 3.0)
    assert np.all(np.isfinite(spot)) and np.all(spot > 0)
    # The same key gives the same paths; another key others.
    np.testing.assert_array_equal(spot, gbm(jax.random.PRNGKey(0), 3.0, 0.05, 1.9, 7, 5))
    assert not np.array_equal(spot, gbm(jax.random.PRNGKey(1), 3.0, 0.05, 1.9, 7, 5))


def test_a_path_is_the_same_alone_and_among_others():
    many = gbm(jax.random.PRNGKey(0), 3.0, 0.05, 1.9, 20, 12)
    np.testing.assert_array_equal(gbm(jax.random.PRNGKey(0), 3.0, 0.05, 1.9, 1, 12), many[:1])


def test_typed_keys_work_like_raw_keys():
    raw = gbm(jax.random.PRNGKey(3), 3.0, 0.05, 1.9, 4, 3)
    typed = gbm(jax.random.key(3), 3.0, 0.05, 1.9, 4, 3)
    np.testing.assert_array_equal(raw, typed)


def test_float64(x64):
    spot = gbm(jax.random.PRNGKey(0), np.float64(3.0), 0.05, 1.9, 3, 4)
    assert spot.dtype == jnp.float64


def test_log_return_moments():
    mu, sigma, dt = 0.1, 1.9, 1 / 252
    spot = np.asarray(gbm(jax.random.PRNGKey(11), 3.0, mu, sigma, 50_000, 5), np.float64)
    r = np.diff(np.log(spot), axis=1)
    n = r.size
    mean, var = (mu - 0.5 * sigma**2) * dt, sigma**2 * dt
    assert_within_se(r.mean(), mean, math.sqrt(var / n), "mean log return")
    assert_within_se(r.var(ddof=1), var, var * math.sqrt(2 / (n - 1)), "variance of log return")
    # Increments are independent across steps and paths.
    lag = np.corrcoef(r[:, :-1].ravel(), r[:, 1:].ravel())[0, 1]
    assert_within_se(lag, 0.0, 1 / math.sqrt(r[:, 1:].size), "lag-1 correlation")
    # And normal: skewness 0, excess kurtosis 0.
    z = (r - r.mean()) / r.std()
    assert_within_se((z**3).mean(), 0.0, math.sqrt(6 / n), "skewness")
    assert_within_se((z**4).mean() - 3, 0.0, math.sqrt(24 / n), "excess kurtosis")


@pytest.mark.parametrize("mu", [0.05, 0.8])
def test_expected_spot_grows_at_mu(mu):
    n_steps, s0 = 21, 3.0
    spot = np.asarray(gbm(jax.random.PRNGKey(5), s0, mu, 1.9, 100_000, n_steps), np.float64)
    t = n_steps / 252
    for step in (1, n_steps):  # at every horizon, not only the last
        final = spot[:, step]
        assert_within_se(
            final.mean(), s0 * math.exp(mu * step / 252), final.std() / math.sqrt(final.size)
        )
    # Under mu = r, the discounted spot is a martingale.
    if mu == 0.05:
        discounted = math.exp(-mu * t) * spot[:, -1]
        assert_within_se(discounted.mean(), s0, discounted.std() / math.sqrt(discounted.size))


@pytest.mark.parametrize("strike", [2.0, 3.0, 4.0])
def test_monte_carlo_put_matches_black_scholes(strike):
    r, sigma, n_steps = 0.05, 1.9, 21
    t = n_steps / 252
    spot = np.asarray(gbm(jax.random.PRNGKey(7), 3.0, r, sigma, 100_000, n_steps), np.float64)
    payoff = math.exp(-r * t) * np.maximum(strike - spot[:, -1], 0.0)
    exact = float(bs_price(3.0, strike, t, r, sigma))
    assert_within_se(payoff.mean(), exact, payoff.std() / math.sqrt(payoff.size), "put price")


def test_gbm_is_simulate_markets_spot():
    """gbm(cell_key(seed, cell), ...) and simulate_market share every diffusion shock."""
    params = MarketParams(model="gbm", s0=3.0, mu=0.05, sigma=1.9)
    market = simulate_market(params, seed=9, cell=4, path_start=0, n_paths=64, n_steps=30)
    spot = gbm(cell_key(9, 4), 3.0, 0.05, 1.9, 64, 30)
    np.testing.assert_array_equal(spot, market.spot)
