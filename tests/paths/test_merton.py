"""Merton paths: compensated drift, the Poisson jump law, jump sizes, the Merton series price."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm, poisson

from simkit.paths import MarketParams, cell_key, gbm, merton, simulate_market
from simkit.paths.merton import jump_compensator, poisson_inverse_cdf
from simkit.pricing import bs_price

N_SE = 4.0
JUMPS = {"jump_intensity": 4.0, "jump_mean": -0.25, "jump_std": 0.35}


def assert_within_se(estimate, expected, se, what=""):
    assert abs(estimate - expected) <= N_SE * se, (
        f"{what}: {estimate:.6g} vs {expected:.6g}, {abs(estimate - expected) / se:.1f} SE"
    )


def merton_series_price(S, K, T, r, sigma, jump_intensity, jump_mean, jump_std, n_terms=60):
    """Merton (1976) put: Poisson(lambda' T)-weighted Black-Scholes puts, NumPy/SciPy float64.

    lambda' = lambda (1 + k), sigma_n^2 = sigma^2 + n s^2 / T,
    r_n = r - lambda k + n (m + s^2 / 2) / T.
    """
    k = math.exp(jump_mean + 0.5 * jump_std**2) - 1
    n = np.arange(n_terms)
    weights = poisson.pmf(n, jump_intensity * (1 + k) * T)
    sigma_n = np.sqrt(sigma**2 + n * jump_std**2 / T)
    r_n = r - jump_intensity * k + n * (jump_mean + 0.5 * jump_std**2) / T
    d1 = (np.log(S / K) + (r_n + 0.5 * sigma_n**2) * T) / (sigma_n * math.sqrt(T))
    d2 = d1 - sigma_n * math.sqrt(T)
    puts = K * np.exp(-r_n * T) * norm.cdf(-d2) - S * norm.cdf(-d1)
    return float(np.sum(weights * puts))


def test_shape_and_first_column():
    spot = merton(jax.random.PRNGKey(0), 3.0, 0.05, 1.9, **JUMPS, n_paths=5, n_steps=4)
    assert spot.shape == (5, 5) and spot.dtype == jnp.float32
    np.testing.assert_array_equal(spot[:, 0], 3.0)


def test_without_jumps_it_is_gbm():
    key = jax.random.PRNGKey(2)
    plain = gbm(key, 3.0, 0.05, 1.9, 50, 20)
    no_jumps = merton(key, 3.0, 0.05, 1.9, 0.0, -0.25, 0.35, 50, 20)
    np.testing.assert_array_equal(plain, no_jumps)


def test_merton_is_simulate_markets_spot():
    params = MarketParams(model="merton", **JUMPS)
    market = simulate_market(params, seed=3, cell=1, path_start=0, n_paths=64, n_steps=30)
    spot = merton(cell_key(3, 1), 3.0, 0.05, 1.9, **JUMPS, n_paths=64, n_steps=30)
    np.testing.assert_array_equal(spot, market.spot)


@pytest.mark.parametrize("mean", [0.016, 0.5, 3.0])
def test_poisson_inverse_cdf_law(mean):
    u = jax.random.uniform(jax.random.PRNGKey(1), (400_000,), minval=1e-7, maxval=1.0)
    counts = np.asarray(poisson_inverse_cdf(u, mean))
    n = counts.size
    assert_within_se(counts.mean(), mean, math.sqrt(mean / n), "mean count")
    # Var of the sample variance of a Poisson: (mu4 - sigma^4) / n, mu4 = mean (1 + 3 mean).
    assert_within_se(counts.var(), mean, math.sqrt((mean * (1 + 3 * mean) - mean**2) / n), "var")
    for k in range(4):
        p = poisson.pmf(k, mean)
        assert_within_se(
            np.mean(counts == k), p, math.sqrt(max(p * (1 - p), 1e-12) / n), f"P(N={k})"
        )


def test_jump_flags_per_path_follow_the_poisson_law():
    """A step's flag is set with probability 1 - e^{-lambda dt}; per path, Binomial counts."""
    n_steps, lam = 63, 20.0
    params = MarketParams(model="merton", jump_intensity=lam)
    market = simulate_market(params, seed=5, cell=0, path_start=0, n_paths=10_000, n_steps=n_steps)
    flags = np.asarray(market.jump)
    assert not flags[:, 0].any()
    per_path = flags[:, 1:].sum(axis=1).astype(float)
    p = 1 - math.exp(-lam / 252)
    n = per_path.size
    assert_within_se(per_path.mean(), n_steps * p, math.sqrt(n_steps * p * (1 - p) / n), "mean")
    centred = (per_path - per_path.mean()) ** 2
    assert_within_se(
        per_path.var(), n_steps * p * (1 - p), centred.std() / math.sqrt(n), "variance"
    )


def test_jump_sizes(x64):
    """With sigma = 0 a step's log return is the drift plus its jumps J:
    E[J] = lambda dt m and Var[J] = lambda dt (s^2 + m^2)."""
    lam, m, s, dt = 30.0, -0.25, 0.35, 1 / 252
    spot = merton(jax.random.PRNGKey(4), np.float64(3.0), 0.05, 0.0, lam, m, s, 20_000, 10)
    drift = (0.05 - lam * float(jump_compensator(m, s))) * dt
    jumps = np.diff(np.log(np.asarray(spot)), axis=1).ravel() - drift
    n = jumps.size
    var = lam * dt * (s**2 + m**2)
    assert_within_se(jumps.mean(), lam * dt * m, math.sqrt(var / n), "mean jump")
    centred = (jumps - jumps.mean()) ** 2
    assert_within_se(jumps.var(), var, centred.std() / math.sqrt(n), "jump variance")


@pytest.mark.parametrize("mu", [0.05, 0.5])
def test_expected_spot_grows_at_mu(mu):
    n_steps = 63
    spot = np.asarray(
        merton(jax.random.PRNGKey(8), 3.0, mu, 1.2, **JUMPS, n_paths=100_000, n_steps=n_steps),
        np.float64,
    )
    final = spot[:, -1]
    expected = 3.0 * math.exp(mu * n_steps / 252)
    assert_within_se(final.mean(), expected, final.std() / math.sqrt(final.size), "E[S_T]")


@pytest.mark.parametrize("strike", [2.0, 3.0])
def test_monte_carlo_put_matches_merton_series(strike):
    r, sigma, n_steps = 0.05, 0.6, 63
    t = n_steps / 252
    spot = np.asarray(
        merton(jax.random.PRNGKey(6), 3.0, r, sigma, **JUMPS, n_paths=100_000, n_steps=n_steps),
        np.float64,
    )
    payoff = math.exp(-r * t) * np.maximum(strike - spot[:, -1], 0.0)
    exact = merton_series_price(3.0, strike, t, r, sigma, **JUMPS)
    assert_within_se(payoff.mean(), exact, payoff.std() / math.sqrt(payoff.size), "put price")
    # The jumps matter: the series price is well away from Black-Scholes at sigma alone.
    assert abs(exact - float(bs_price(3.0, strike, t, r, sigma))) > 10 * payoff.std() / math.sqrt(
        payoff.size
    )
