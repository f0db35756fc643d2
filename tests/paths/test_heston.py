"""Heston and Bates paths (QE scheme): closed-form prices, the variance's moments, martingale.

The closed forms are written here: the Heston characteristic function in the "little Heston
trap" form of Albrecher, Mayer, Schoutens and Tistaert (2007), the Merton jump factor for Bates,
and Lewis's (2001) single-integral call price, checked against Lewis's published Heston prices
(the values QuantLib's test suite caches).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from simkit.paths import MarketParams, bates, cell_key, gbm, heston, merton, simulate_market
from simkit.paths.heston import heston_step

N_SE = 4.0
STOCK = {"v0": 4.0, "kappa_v": 6.0, "theta_v": 4.0, "xi": 3.0, "rho": -0.7}  # this stock's levels
JUMPS = {"jump_intensity": 4.0, "jump_mean": -0.25, "jump_std": 0.35}


def assert_within_se(estimate, expected, se, what=""):
    assert abs(estimate - expected) <= N_SE * se, (
        f"{what}: {estimate:.6g} vs {expected:.6g}, {abs(estimate - expected) / se:.1f} SE"
    )


# --------------------------------------------------------------------------- closed forms
def heston_cf(u, t, v0, kappa_v, theta_v, xi, rho):
    """E[exp(i u X_t)], X_t = ln(S_t / S_0) - (r - q) t, under Heston (little-trap form)."""
    iu = 1j * u
    beta = kappa_v - rho * xi * iu
    d = np.sqrt(beta * beta + xi * xi * (iu + u * u))
    g = (beta - d) / (beta + d)
    e = np.exp(-d * t)
    c = kappa_v * theta_v / (xi * xi) * ((beta - d) * t - 2.0 * np.log((1.0 - g * e) / (1.0 - g)))
    return np.exp(c + (beta - d) / (xi * xi) * (1.0 - e) / (1.0 - g * e) * v0)


def jump_cf(u, t, jump_intensity, jump_mean, jump_std):
    """The compensated Merton jump factor of the characteristic function (Bates = Heston x it)."""
    k = math.exp(jump_mean + 0.5 * jump_std**2) - 1.0
    iu = 1j * u
    return np.exp(
        jump_intensity * t * (np.exp(iu * jump_mean - 0.5 * u * u * jump_std**2) - 1.0 - iu * k)
    )


def lewis_prices(cf, s0, strike, t, r, q=0.0):
    """(call, put) from the characteristic function of X_t (Lewis 2001):
    C = S e^{-qt} - sqrt(S K) e^{-(r+q)t/2} / pi * int_0^inf Re[e^{iuk} phi(u - i/2)] / (u^2 + 1/4)
    du, k = ln(S/K) + (r - q) t; the put by parity."""
    k = math.log(s0 / strike) + (r - q) * t

    def integrand(u):
        return (np.exp(1j * u * k) * cf(u - 0.5j)).real / (u * u + 0.25)

    integral, _ = integrate.quad(integrand, 0.0, np.inf, limit=500, epsabs=1e-13, epsrel=1e-11)
    call = s0 * math.exp(-q * t) - math.sqrt(s0 * strike) * math.exp(-0.5 * (r + q) * t) * (
        integral / math.pi
    )
    put = call - s0 * math.exp(-q * t) + strike * math.exp(-r * t)
    return call, put


def heston_prices(s0, strike, t, r, v0, kappa_v, theta_v, xi, rho, q=0.0):
    return lewis_prices(
        lambda u: heston_cf(u, t, v0, kappa_v, theta_v, xi, rho), s0, strike, t, r, q
    )


def bates_prices(s0, strike, t, r, v0, kappa_v, theta_v, xi, rho, jump_intensity, jump_mean,
                 jump_std):  # fmt: skip
    def cf(u):
        return heston_cf(u, t, v0, kappa_v, theta_v, xi, rho) * jump_cf(
            u, t, jump_intensity, jump_mean, jump_std
        )

    return lewis_prices(cf, s0, strike, t, r)


def test_closed_form_matches_lewis_published_prices():
    """Lewis (2000): S 100, r 1 %, q 2 %, v0 0.04, kappa 4, theta 0.25, xi 1, rho -0.5, T 1."""
    calls = [26.774758743998854, 20.933349000596710, 16.070154917028834, 12.132211516709845]
    puts = [7.958878113256768, 12.017966707346305, 17.055270961270109, 23.017825898442801]
    for strike, call, put in zip([80.0, 90.0, 100.0, 110.0], calls, puts, strict=True):
        got = heston_prices(100.0, strike, 1.0, 0.01, 0.04, 4.0, 0.25, 1.0, -0.5, q=0.02)
        np.testing.assert_allclose(got, (call, put), rtol=0, atol=1e-10)


def test_the_jump_factor_times_black_scholes_is_mertons_series():
    """The Bates factor checked on its own: Black-Scholes's characteristic function times it is
    the Merton (1976) series price (tests/paths/test_merton.py)."""
    from test_merton import merton_series_price

    sigma, t = 1.9, 0.25

    def cf(u):
        return np.exp(-0.5 * sigma**2 * t * (1j * u + u * u)) * jump_cf(u, t, **JUMPS)

    for strike in (1.5, 2.5, 3.0, 4.0):
        put = lewis_prices(cf, 3.0, strike, t, 0.05)[1]
        expected = merton_series_price(3.0, strike, t, 0.05, sigma, **JUMPS)
        assert put == pytest.approx(expected, abs=1e-9), strike


# --------------------------------------------------------------------------- Monte Carlo
def _mc_prices(model, params, r, strikes, steps, n_paths, blocks, seed):
    """Discounted put and call payoffs at each maturity in `steps`: means and standard errors,
    from `blocks` independent blocks of `n_paths` (memory bounded by a block)."""
    sums = np.zeros((2, len(steps), len(strikes), 2))  # (put, call), maturity, strike, (s, s^2)
    for block in range(blocks):
        key = jax.random.fold_in(jax.random.PRNGKey(seed), block)
        fn = heston if model == "heston" else bates
        spot, _ = fn(key, 3.0, r, **params, n_paths=n_paths, n_steps=max(steps))
        spot = np.asarray(spot)
        for j, step in enumerate(steps):
            s_t = spot[:, step][:, None]
            df = math.exp(-r * step / 252)
            put = df * np.maximum(strikes - s_t, 0.0)
            call = df * np.maximum(s_t - strikes, 0.0)
            for i, x in enumerate((put, call)):
                sums[i, j, :, 0] += x.sum(axis=0)
                sums[i, j, :, 1] += (x * x).sum(axis=0)
    n = n_paths * blocks
    mean = sums[..., 0] / n
    se = np.sqrt((sums[..., 1] / n - mean**2) / (n - 1))
    return mean, se


def _check_prices(model, params, r, strikes, steps, n_paths, blocks, seed, report=False):
    mean, se = _mc_prices(model, params, r, np.asarray(strikes), steps, n_paths, blocks, seed)
    pricer = heston_prices if model == "heston" else bates_prices
    for j, step in enumerate(steps):
        for k, strike in enumerate(strikes):
            call, put = pricer(3.0, strike, step / 252, r, **params)
            exact = (put, call)
            for i, kind in enumerate(("put", "call")):
                what = f"{model} {kind} K={strike} T={step}d"
                if report:
                    z = (mean[i, j, k] - exact[i]) / se[i, j, k]
                    print(f"{what}: MC {mean[i, j, k]:.5f} ± {se[i, j, k]:.5f}, "
                          f"closed form {exact[i]:.5f}, {z:+.2f} SE")  # fmt: skip
                assert_within_se(mean[i, j, k], exact[i], se[i, j, k], what)


def test_heston_prices_match_the_closed_form(x64):
    """At this stock's levels (v0 = theta = 4: vol 200 %, xi 3, rho -0.7), three months."""
    _check_prices("heston", STOCK, 0.05, [2.0, 3.0, 4.0], [63], 50_000, 2, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "params", "r"),
    [
        ("heston", STOCK, 0.05),
        # Feller violated (2 kappa theta / xi^2 = 0.375): QE's exponential branch at work.
        ("heston", {"v0": 4.0, "kappa_v": 6.0, "theta_v": 4.0, "xi": 8.0, "rho": -0.7}, 0.05),
        # Lewis's parameters (low variance, psi small), positive rate.
        ("heston", {"v0": 0.04, "kappa_v": 4.0, "theta_v": 0.25, "xi": 1.0, "rho": -0.5}, 0.01),
        ("bates", {**STOCK, **JUMPS}, 0.05),
    ],
)
def test_prices_match_the_closed_form_at_several_maturities(x64, model, params, r):
    """1, 3 and 12 months; strikes from deep out of the money to in the money (puts and calls).
    400,000 paths; run with `-s` to print the figures."""
    strikes = [1.5, 2.25, 3.0, 4.0, 6.0] if params["v0"] > 1 else [2.4, 2.7, 3.0, 3.3, 3.6]
    _check_prices(model, params, r, strikes, [21, 63, 252], 50_000, 8, seed=2, report=True)


def test_variance_mean_and_variance_follow_the_cir_law(x64):
    """QE matches the first two conditional moments of v exactly, so E[v_t] = theta + (v0 -
    theta) e^{-kappa t} and Var[v_t] are exact at any step; from v0 = 1 to theta = 4."""
    kappa, theta, xi, v0 = 6.0, 4.0, 3.0, 1.0
    _, v = heston(jax.random.PRNGKey(3), 3.0, 0.05, v0, kappa, theta, xi, -0.7, 40_000, 126)
    v = np.asarray(v)
    assert v.min() >= 0.0
    for step in (5, 21, 63, 126):
        t = step / 252
        decay = math.exp(-kappa * t)
        mean = theta + (v0 - theta) * decay
        var = v0 * xi**2 * decay * (1 - decay) / kappa + theta * xi**2 * (1 - decay) ** 2 / (
            2 * kappa
        )
        x = v[:, step]
        assert_within_se(x.mean(), mean, x.std() / math.sqrt(x.size), f"E[v] at {step}d")
        dev2 = (x - x.mean()) ** 2
        assert_within_se(x.var(), var, dev2.std() / math.sqrt(x.size), f"Var[v] at {step}d")


@pytest.mark.slow
def test_stationary_variance_with_the_feller_condition_violated(x64):
    """After 2 years (kappa t = 12) v is in its stationary Gamma law: mean theta, variance
    theta xi^2 / (2 kappa), here with xi = 8 (2 kappa theta / xi^2 = 0.375)."""
    kappa, theta, xi = 6.0, 4.0, 8.0
    _, v = heston(jax.random.PRNGKey(4), 3.0, 0.05, theta, kappa, theta, xi, -0.7, 100_000, 504)
    x = np.asarray(v)[:, -1]
    assert_within_se(x.mean(), theta, x.std() / math.sqrt(x.size), "stationary mean")
    dev2 = (x - x.mean()) ** 2
    expected = theta * xi**2 / (2 * kappa)
    assert_within_se(x.var(), expected, dev2.std() / math.sqrt(x.size), "stationary variance")


@pytest.mark.parametrize("model", ["heston", "bates"])
def test_the_spot_is_a_martingale_after_its_drift(x64, model):
    """E[S_t] = S_0 e^{mu t} (mu = 0.3, not the rate): the corrected step is exact."""
    mu = 0.3
    extra = JUMPS if model == "bates" else {}
    fn = heston if model == "heston" else bates
    spot, _ = fn(jax.random.PRNGKey(5), 3.0, mu, **STOCK, **extra, n_paths=50_000, n_steps=63)
    spot = np.asarray(spot)
    for step in (1, 21, 63):
        x = spot[:, step]
        expected = 3.0 * math.exp(mu * step / 252)
        assert_within_se(x.mean(), expected, x.std() / math.sqrt(x.size), f"E[S] at {step}d")


def test_one_step_is_exactly_a_martingale_given_the_variance(x64):
    """E[S'/S | v] = e^{mu dt} by quadrature (a midpoint grid of the variance's uniform, Gauss-
    Hermite in the spot's normal), in QE's quadratic branch (psi = 0.01 at v = 4; 0.19 at v = 0)
    and its exponential branch (psi = 36 at v = 0.001, theta 0.04, kappa 1), rho < 0 and > 0."""
    n = 50_000
    u = (np.arange(n) + 0.5) / n
    z_nodes, z_weights = np.polynomial.hermite_e.hermegauss(40)
    z_weights = z_weights / z_weights.sum()
    for v, kappa, theta in ((4.0, 6.0, 4.0), (0.0, 6.0, 4.0), (0.001, 1.0, 0.04)):
        for rho in (-0.7, 0.3):
            step = heston_step(
                jnp.full((n, 1), v),
                jnp.asarray(u)[:, None],
                jnp.asarray(z_nodes)[None, :],
                0.05,
                kappa,
                theta,
                3.0,
                rho,
                1 / 252,
            )
            ratio = np.exp(np.asarray(step.log_return)) @ z_weights
            assert ratio.mean() == pytest.approx(math.exp(0.05 / 252), rel=1e-6), (v, rho)


def test_heston_is_simulate_markets_spot():
    params = MarketParams(model="heston", v0=4.0, theta_v=4.0)
    market = simulate_market(params, seed=3, cell=1, path_start=0, n_paths=64, n_steps=30)
    spot, variance = heston(cell_key(3, 1), 3.0, 0.05, 4.0, 6.0, 4.0, 3.0, -0.7, 64, 30)
    assert spot.shape == variance.shape == (64, 31) and spot.dtype == jnp.float32
    np.testing.assert_array_equal(spot, market.spot)
    np.testing.assert_array_equal(spot[:, 0], 3.0)
    np.testing.assert_array_equal(variance[:, 0], 4.0)
    bates_market = simulate_market(
        MarketParams(model="bates", v0=4.0, theta_v=4.0, **JUMPS), 3, 1, 0, 64, 30
    )
    bates_spot, bates_variance = bates(
        cell_key(3, 1), 3.0, 0.05, 4.0, 6.0, 4.0, 3.0, -0.7, **JUMPS, n_paths=64, n_steps=30
    )
    np.testing.assert_array_equal(bates_spot, bates_market.spot)
    np.testing.assert_array_equal(bates_variance, variance)  # jumps do not move the variance
    assert np.asarray(bates_market.jump).any()


def test_bates_without_jumps_is_heston_and_heston_without_vol_of_vol_is_gbm(x64):
    key = jax.random.PRNGKey(6)
    plain = heston(key, 3.0, 0.05, **STOCK, n_paths=50, n_steps=20)
    no_jumps = bates(key, 3.0, 0.05, **STOCK, jump_intensity=0.0, jump_mean=-0.25,
                     jump_std=0.35, n_paths=50, n_steps=20)  # fmt: skip
    np.testing.assert_array_equal(plain[0], no_jumps[0])
    # xi = 0 and v0 = theta: a constant variance, the same shocks as GBM (slot z_spot).
    flat, variance = heston(key, 3.0, 0.05, 3.61, 6.0, 3.61, 0.0, -0.7, 50, 20)
    np.testing.assert_allclose(variance, 3.61, rtol=1e-12)
    np.testing.assert_allclose(flat, gbm(key, 3.0, 0.05, 1.9, 50, 20), rtol=1e-12)
    jumpy = bates(key, 3.0, 0.05, 3.61, 6.0, 3.61, 0.0, -0.7, **JUMPS, n_paths=50, n_steps=20)[0]
    np.testing.assert_allclose(jumpy, merton(key, 3.0, 0.05, 1.9, **JUMPS, n_paths=50,
                                             n_steps=20), rtol=1e-12)  # fmt: skip


def test_degenerate_parameters_stay_finite():
    """v0 = 0, kappa = 0, xi = 0, |rho| = 1: finite, non-negative variance."""
    for params in (
        {"v0": 0.0, "kappa_v": 6.0, "theta_v": 4.0, "xi": 3.0, "rho": -0.7},
        {"v0": 0.0, "kappa_v": 0.0, "theta_v": 4.0, "xi": 3.0, "rho": 1.0},
        {"v0": 4.0, "kappa_v": 0.0, "theta_v": 4.0, "xi": 0.0, "rho": -1.0},
        {"v0": 4.0, "kappa_v": 6.0, "theta_v": 4.0, "xi": 20.0, "rho": 0.9},
    ):
        spot, v = heston(jax.random.PRNGKey(7), 3.0, 0.05, **params, n_paths=200, n_steps=63)
        assert np.isfinite(spot).all() and np.isfinite(v).all() and (v >= 0).all(), params
        assert (spot > 0).all(), params
