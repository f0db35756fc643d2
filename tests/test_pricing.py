"""Black-Scholes prices, Greeks and implied volatility: closed forms, limits, round trips."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from simkit.pricing import bs_greeks, bs_price, implied_vol


@pytest.fixture
def x64():
    """float64 inside the test only (simkit never turns x64 on itself)."""
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def scipy_price(S, K, T, r, sigma, q=0.0, call=False):
    """An independent textbook formula (scipy.stats.norm, float64)."""
    S, K, T, r, sigma, q = np.broadcast_arrays(*map(np.asarray, (S, K, T, r, sigma, q)))
    d1 = (np.log(S / K) + (r - q + 0.5 * sigma**2) * T) / (sigma * np.sqrt(T))
    d2 = d1 - sigma * np.sqrt(T)
    if call:
        return S * np.exp(-q * T) * norm.cdf(d1) - K * np.exp(-r * T) * norm.cdf(d2)
    return K * np.exp(-r * T) * norm.cdf(-d2) - S * np.exp(-q * T) * norm.cdf(-d1)


def seed_put_greeks(S, K, T, r, sigma, q=0.0):
    """The seed's `calculate_greeks`, verbatim (put Greeks)."""
    d1 = (np.log(S / K) + (r - q + 0.5 * sigma**2) * T) / (sigma * np.sqrt(T))
    d2 = d1 - sigma * np.sqrt(T)
    delta = -np.exp(-q * T) * norm.cdf(-d1)
    gamma = np.exp(-q * T) * norm.pdf(d1) / (S * sigma * np.sqrt(T))
    theta = (
        -S * norm.pdf(d1) * sigma * np.exp(-q * T) / (2 * np.sqrt(T))
        - r * K * np.exp(-r * T) * norm.cdf(-d2)
        + q * S * np.exp(-q * T) * norm.cdf(-d1)
    )
    vega = S * np.exp(-q * T) * norm.pdf(d1) * np.sqrt(T)
    rho = -K * T * np.exp(-r * T) * norm.cdf(-d2)
    return {
        "delta": delta,
        "gamma": gamma,
        "theta": theta / 365,
        "vega": vega / 100,
        "rho": rho / 100,
    }


def assert_close(actual, expected, rtol, atol):
    """|actual - expected| <= atol + rtol |expected|, elementwise, with an array `atol`."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    bad = ~(np.abs(actual - expected) <= atol + rtol * np.abs(expected))
    assert not bad.any(), f"{bad.sum()} mismatches, e.g. {actual[bad][:3]} vs {expected[bad][:3]}"


# A grid over moneyness, expiry (1 day to 2 years) and vol (1 % to 1000 %).
SPOT = 3.0
STRIKES = SPOT * np.exp(np.linspace(-2.0, 2.0, 9))
EXPIRIES = np.array([1 / 365, 7 / 365, 37 / 365, 0.5, 2.0])
VOLS = np.array([0.01, 0.2, 1.0, 4.25, 10.0])
K_GRID, T_GRID, V_GRID = (a.ravel() for a in np.meshgrid(STRIKES, EXPIRIES, VOLS, indexing="ij"))


def test_hull_textbook_values():
    # Hull, Options, Futures and Other Derivatives, example 15.6: 4.76 and 0.81.
    assert float(bs_price(42.0, 40.0, 0.5, 0.1, 0.2, call=True)) == pytest.approx(4.76, abs=0.005)
    assert float(bs_price(42.0, 40.0, 0.5, 0.1, 0.2)) == pytest.approx(0.81, abs=0.005)


@pytest.mark.parametrize("call", [False, True])
def test_matches_independent_formula(x64, call):
    q = 0.02
    ours = np.asarray(bs_price(SPOT, K_GRID, T_GRID, 0.05, V_GRID, q, call=call))
    theirs = scipy_price(SPOT, K_GRID, T_GRID, 0.05, V_GRID, q, call=call)
    assert ours.dtype == np.float64
    assert_close(ours, theirs, rtol=1e-9, atol=1e-12 * (SPOT + K_GRID))


def test_put_call_parity(x64):
    q = 0.03
    call = bs_price(SPOT, K_GRID, T_GRID, 0.05, V_GRID, q, call=True)
    put = bs_price(SPOT, K_GRID, T_GRID, 0.05, V_GRID, q, call=False)
    forward = SPOT * np.exp(-q * T_GRID) - K_GRID * np.exp(-0.05 * T_GRID)
    assert_close(call - put, forward, rtol=0, atol=1e-12 * (SPOT + K_GRID))


def test_call_may_be_a_boolean_array_and_broadcasts():
    is_call = np.array([True, False])[:, None]
    prices = bs_price(SPOT, np.array([2.0, 3.0, 4.0]), 0.1, 0.05, 4.25, call=is_call)
    assert prices.shape == (2, 3)
    np.testing.assert_allclose(
        prices[0], bs_price(SPOT, [2.0, 3.0, 4.0], 0.1, 0.05, 4.25, call=True)
    )
    np.testing.assert_allclose(prices[1], bs_price(SPOT, [2.0, 3.0, 4.0], 0.1, 0.05, 4.25))


def test_dtype_is_kept():
    assert bs_price(jnp.float32(3.0), 3.0, 0.1, 0.05, 4.25).dtype == jnp.float32
    assert bs_price(3, 3, 1, 0, 1).dtype == jnp.float32  # ints → JAX's default float
    assert implied_vol(jnp.float32(1.0), 3.0, 3.0, 0.1, 0.05).dtype == jnp.float32
    assert bs_greeks(jnp.float32(3.0), 3.0, 0.1, 0.05, 4.25)["theta"].dtype == jnp.float32


def test_float64_in_float64_out(x64):
    assert bs_price(np.float64(3.0), 3.0, 0.1, 0.05, 4.25).dtype == jnp.float64
    assert implied_vol(np.float64(1.0), 3.0, 3.0, 0.1, 0.05).dtype == jnp.float64
    assert (
        bs_price(np.float32(3.0), np.float32(3.0), np.float32(0.1), 0.05, 4.25).dtype == np.float32
    )
    assert all(v.dtype == jnp.float64 for v in bs_greeks(3.0, 3.0, 0.1, 0.05, 4.25).values())


def test_jit_and_vmap():
    spots = jnp.linspace(1.0, 5.0, 7)
    eager = bs_price(spots, 3.0, 0.1, 0.05, 4.25)
    np.testing.assert_allclose(jax.jit(bs_price)(spots, 3.0, 0.1, 0.05, 4.25), eager, rtol=1e-6)
    np.testing.assert_allclose(
        jax.vmap(bs_price, in_axes=(0, None, None, None, None))(spots, 3.0, 0.1, 0.05, 4.25),
        eager,
        rtol=1e-6,
    )
    vols = jax.jit(implied_vol)(eager, spots, 3.0, 0.1, 0.05)
    np.testing.assert_allclose(vols, 4.25, rtol=1e-3)


# --- Greeks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [False, True])
def test_greeks_match_finite_differences(x64, call):
    S, K, T, r, v, q = 3.0, np.array([1.5, 2.5, 3.0, 4.0, 6.0]), 37 / 365, 0.05, 1.2, 0.02
    g = bs_greeks(S, K, T, r, v, q, call=call)

    def price(**kw):
        args = {"spot": S, "strike": K, "t": T, "rate": r, "vol": v, "div": q} | kw
        return np.asarray(bs_price(**args, call=call))

    h = 1e-4
    delta = (price(spot=S + h) - price(spot=S - h)) / (2 * h)
    gamma = (price(spot=S + h) - 2 * price() + price(spot=S - h)) / h**2
    theta = -(price(t=T + h) - price(t=T - h)) / (2 * h) / 365  # dV/d(calendar time), per day
    vega = (price(vol=v + h) - price(vol=v - h)) / (2 * h) / 100
    rho = (price(rate=r + h) - price(rate=r - h)) / (2 * h) / 100
    np.testing.assert_allclose(g["delta"], delta, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(g["gamma"], gamma, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(g["theta"], theta, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(g["vega"], vega, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(g["rho"], rho, rtol=1e-6, atol=1e-10)


def test_greeks_match_autodiff(x64):
    args = (3.0, 2.5, 0.3, 0.05, 4.25)
    g = bs_greeks(*args)
    d_spot, _, d_t, d_rate, d_vol = jax.grad(bs_price, argnums=(0, 1, 2, 3, 4))(*args)
    gamma = jax.grad(jax.grad(bs_price))(*args)
    assert float(g["delta"]) == pytest.approx(float(d_spot), rel=1e-10)
    assert float(g["gamma"]) == pytest.approx(float(gamma), rel=1e-9)
    assert float(g["vega"]) == pytest.approx(float(d_vol) / 100, rel=1e-10)
    assert float(g["rho"]) == pytest.approx(float(d_rate) / 100, rel=1e-10)
    assert float(g["theta"]) == pytest.approx(-float(d_t) / 365, rel=1e-10)


def test_greeks_use_the_seed_units_and_agree_with_the_seed_but_for_put_theta(x64):
    S, K, T, r, v, q = 3.0, np.array([2.0, 3.0, 5.0]), 37 / 365, 0.05, 4.25, 0.01
    ours = bs_greeks(S, K, T, r, v, q)
    seed = seed_put_greeks(S, K, T, r, v, q)
    for name in ("delta", "gamma", "vega", "rho"):
        np.testing.assert_allclose(ours[name], seed[name], rtol=1e-10)
    # The seed's put theta flips the signs of its r and q terms; ours is the derivative.
    correct = (
        seed["theta"]
        + 2
        * (
            r
            * K
            * np.exp(-r * T)
            * norm.cdf(-(np.log(S / K) + (r - q - 0.5 * v**2) * T) / (v * np.sqrt(T)))
            - q
            * S
            * np.exp(-q * T)
            * norm.cdf(-(np.log(S / K) + (r - q + 0.5 * v**2) * T) / (v * np.sqrt(T)))
        )
        / 365
    )
    np.testing.assert_allclose(ours["theta"], correct, rtol=1e-10)


def test_greeks_at_the_limits_are_finite_and_right():
    g = bs_greeks(3.0, np.array([2.0, 4.0]), 0.0, 0.05, 4.25, call=False)
    np.testing.assert_array_equal(g["delta"], [0.0, -1.0])
    np.testing.assert_array_equal(g["gamma"], [0.0, 0.0])
    np.testing.assert_array_equal(g["vega"], [0.0, 0.0])
    g = bs_greeks(3.0, np.array([2.0, 4.0]), 0.5, 0.05, 0.0, call=True)
    np.testing.assert_allclose(g["delta"], [1.0, 0.0])
    np.testing.assert_allclose(g["theta"], [-0.05 * 2.0 * math.exp(-0.025) / 365, 0.0], rtol=1e-6)
    np.testing.assert_allclose(g["rho"], [0.5 * 2.0 * math.exp(-0.025) / 100, 0.0], rtol=1e-6)


# --- Limits and extremes -----------------------------------------------------------------------


def test_expiry_gives_intrinsic_value():
    strikes = np.array([2.0, 3.0, 4.0])
    for t in (0.0, -0.1):
        np.testing.assert_array_equal(bs_price(3.0, strikes, t, 0.05, 4.25), [0.0, 0.0, 1.0])
        np.testing.assert_array_equal(
            bs_price(3.0, strikes, t, 0.05, 4.25, call=True), [1.0, 0.0, 0.0]
        )


def test_zero_vol_gives_forward_intrinsic_value(x64):
    strikes = np.array([2.0, 3.0, 4.0])
    t, r, q = 0.5, 0.05, 0.01
    forward = 3.0 * np.exp(-q * t) - strikes * np.exp(-r * t)
    np.testing.assert_allclose(
        bs_price(3.0, strikes, t, r, 0.0, q, call=True), np.maximum(forward, 0)
    )
    np.testing.assert_allclose(bs_price(3.0, strikes, t, r, 0.0, q), np.maximum(-forward, 0))
    # And the formula tends to it continuously.
    np.testing.assert_allclose(
        bs_price(3.0, strikes, t, r, 1e-6, q), np.maximum(-forward, 0), atol=1e-9
    )


def test_short_expiry_tends_to_intrinsic_value(x64):
    strikes = np.array([2.0, 4.0])
    np.testing.assert_allclose(bs_price(3.0, strikes, 1e-9, 0.05, 0.3), [0.0, 1.0], atol=1e-8)


def test_no_nan_values_or_gradients_at_the_limits():
    t = jnp.array([0.0, 0.1, 0.0, 0.5])
    vol = jnp.array([4.25, 0.0, 0.0, 4.25])
    args = (jnp.full(4, 3.0), jnp.full(4, 2.5), t, jnp.full(4, 0.05), vol)
    assert np.all(np.isfinite(bs_price(*args)))
    assert all(np.all(np.isfinite(v)) for v in bs_greeks(*args).values())
    grads = jax.vmap(jax.grad(bs_price, argnums=(0, 1, 2, 3, 4)))(*args)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_deep_in_and_out_of_the_money(x64):
    # S >> K: a put is worth ~0, never negative; a call is its forward intrinsic value.
    assert 0.0 <= float(bs_price(1000.0, 1.0, 0.5, 0.05, 0.3)) < 1e-200
    assert float(bs_price(1000.0, 1.0, 0.5, 0.05, 0.3, call=True)) == pytest.approx(
        1000 - math.exp(-0.025)
    )
    # S << K: the reverse.
    assert 0.0 <= float(bs_price(1.0, 1000.0, 0.5, 0.05, 0.3, call=True)) < 1e-200
    assert float(bs_price(1.0, 1000.0, 0.5, 0.05, 0.3)) == pytest.approx(
        1000 * math.exp(-0.025) - 1
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_over_the_whole_grid(x64, dtype):
    """Vol 1 %–1000 %, 1 day–2 years, strikes e^-2..e^2 × spot: finite, in bounds, rising in vol."""
    for call in (False, True):
        prices = np.asarray(
            bs_price(
                dtype(SPOT),
                K_GRID.astype(dtype),
                T_GRID.astype(dtype),
                dtype(0.05),
                V_GRID.astype(dtype),
                call=call,
            )
        )
        assert prices.dtype == dtype and np.all(np.isfinite(prices))
        upper = SPOT if call else K_GRID * np.exp(-0.05 * T_GRID)
        lower = np.maximum((1 if call else -1) * (SPOT - K_GRID * np.exp(-0.05 * T_GRID)), 0)
        slack = 1e-6 * (SPOT + K_GRID) if dtype == np.float32 else 1e-12 * (SPOT + K_GRID)
        assert np.all(prices >= lower - slack) and np.all(prices <= upper + slack)
        by_vol = prices.reshape(len(STRIKES), len(EXPIRIES), len(VOLS))
        assert np.all(np.diff(by_vol, axis=-1) >= -slack[:1])


def test_float32_accuracy_bound(x64):
    """float32 prices are within 2e-6 × (S + K) of float64 over the grid (the engine's default)."""
    exact = scipy_price(SPOT, K_GRID, T_GRID, 0.05, V_GRID)
    f32 = np.asarray(
        bs_price(
            np.float32(SPOT),
            K_GRID.astype(np.float32),
            T_GRID.astype(np.float32),
            np.float32(0.05),
            V_GRID.astype(np.float32),
        )
    )
    assert np.max(np.abs(f32 - exact) / (SPOT + K_GRID)) < 2e-6


# --- Implied volatility ------------------------------------------------------------------------


def _time_value_is_resolvable(price, S, K, T, r, call, rel):
    w = 1 if call else -1
    lower = np.maximum(w * (S - K * np.exp(-r * T)), 0)
    upper = S if call else K * np.exp(-r * T)
    return (price - lower > rel * S) & (upper - price > rel * S)


@pytest.mark.parametrize("call", [False, True])
def test_implied_vol_round_trip_float64(x64, call):
    prices = np.asarray(bs_price(SPOT, K_GRID, T_GRID, 0.05, V_GRID, call=call))
    vols = np.asarray(implied_vol(prices, SPOT, K_GRID, T_GRID, 0.05, call=call))
    ok = _time_value_is_resolvable(prices, SPOT, K_GRID, T_GRID, 0.05, call, 1e-10)
    assert ok.sum() >= 100  # the rest sit on a bound (vol 1 % for a day, far from the money)
    np.testing.assert_allclose(vols[ok], V_GRID[ok], rtol=1e-6)
    assert not np.any(np.isnan(vols))  # prices on their bounds give 0, never NaN


def test_implied_vol_round_trip_float32():
    k, t, v = (a.astype(np.float32) for a in (K_GRID, T_GRID, V_GRID))
    prices = np.asarray(bs_price(np.float32(SPOT), k, t, np.float32(0.05), v))
    vols = np.asarray(implied_vol(prices, np.float32(SPOT), k, t, np.float32(0.05)))
    assert vols.dtype == np.float32
    ok = _time_value_is_resolvable(prices.astype(float), SPOT, K_GRID, T_GRID, 0.05, False, 1e-4)
    np.testing.assert_allclose(vols[ok], V_GRID[ok], rtol=2e-3)


@settings(max_examples=200, deadline=None)
@given(
    log_moneyness=st.floats(-3.0, 3.0),
    t=st.floats(1 / 365, 2.0),
    vol=st.floats(0.01, 10.0),
    rate=st.floats(-0.02, 0.15),
    div=st.floats(0.0, 0.1),
    call=st.booleans(),
)
def test_implied_vol_inverts_price(log_moneyness, t, vol, rate, div, call):
    with _X64():
        strike = SPOT * math.exp(log_moneyness)
        price = float(bs_price(SPOT, strike, t, rate, vol, div, call))
        w = 1 if call else -1
        lower = max(w * (SPOT * math.exp(-div * t) - strike * math.exp(-rate * t)), 0.0)
        upper = SPOT * math.exp(-div * t) if call else strike * math.exp(-rate * t)
        if price - lower > 1e-9 * SPOT and upper - price > 1e-9 * SPOT:
            assert float(
                implied_vol(price, SPOT, strike, t, rate, div, call=call)
            ) == pytest.approx(vol, rel=1e-5)


class _X64:
    """x64 for the body of a hypothesis example (function-scoped fixtures do not reset there)."""

    def __enter__(self):
        self.previous = jax.config.read("jax_enable_x64")
        jax.config.update("jax_enable_x64", True)

    def __exit__(self, *exc):
        jax.config.update("jax_enable_x64", self.previous)


def test_implied_vol_is_nan_outside_no_arbitrage_bounds(x64):
    S, K, T, r = 3.0, 4.0, 0.25, 0.05
    put_lower = K * math.exp(-r * T) - S
    put_upper = K * math.exp(-r * T)
    prices = np.array([-0.1, put_lower - 1e-3, put_upper, put_upper + 1.0, np.nan, np.inf])
    assert np.all(np.isnan(implied_vol(prices, S, K, T, r)))
    calls = np.array([-1e-3, S, S + 1.0])
    assert np.all(np.isnan(implied_vol(calls, S, K, T, r, call=True)))
    # At expiry no volatility is defined.
    assert np.isnan(implied_vol(1.0, S, K, 0.0, r))
    # On the lower bound the volatility is 0; just inside it, positive.
    assert float(implied_vol(put_lower, S, K, T, r)) == 0.0
    assert float(implied_vol(put_lower + 1e-6, S, K, T, r)) > 0.0


def test_implied_vol_at_the_seed_iv():
    """The seed's 425 % IV is recovered from float32 prices of its ladder."""
    strikes = jnp.array([2.0, 2.5, 3.0, 4.0, 5.0])
    prices = bs_price(3.0, strikes, 37 / 365, 0.05, 4.2517)
    np.testing.assert_allclose(implied_vol(prices, 3.0, strikes, 37 / 365, 0.05), 4.2517, rtol=1e-4)
