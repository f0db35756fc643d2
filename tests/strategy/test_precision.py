"""Float32 (the default, for speed and GPUs) against float64 on the vectorized engine.

The two precisions draw their random numbers in their own dtype, so paths differ; what must
agree is every aggregate, within Monte Carlo error."""

from __future__ import annotations

import numpy as np
from hand_market import BASELINE

from simkit.paths.market import MarketParams
from simkit.strategy.config import StrategyConfig
from simkit.strategy.engine import simulate_block

N_PATHS = 1024
N_STEPS = 63


def _run(float64: bool):
    return simulate_block(
        StrategyConfig(),
        MarketParams(),
        seed=3,
        cell=0,
        path_start=0,
        n_paths=N_PATHS,
        n_steps=N_STEPS,
        float64=float64,
    )


def test_float32_and_float64_agree_within_monte_carlo_error():
    lo, hi = _run(False), _run(True)
    assert lo["final_equity"].dtype == np.float32
    assert hi["final_equity"].dtype == np.float64
    for field in ("final_equity", "premium_income", "call_hedge_pnl", "n_trades", "n_wins"):
        a, b = lo[field].astype(float), hi[field].astype(float)
        se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        assert abs(a.mean() - b.mean()) < 4.5 * se + 1e-9, (field, a.mean(), b.mean(), se)
    rate32 = lo["n_wins"].sum() / lo["n_trades"].sum()
    rate64 = hi["n_wins"].sum() / hi["n_trades"].sum()
    assert abs(rate32 - rate64) < 0.05


def test_float32_attribution_still_adds_up():
    """Rounding in float32 must not break the P&L identity beyond float32 resolution."""
    out = _run(False)
    buckets = sum(
        out[k].astype(float)
        for k in (
            "premium_income",
            "assignment_pnl",
            "call_hedge_pnl",
            "mark_to_market",
            "transaction_costs",
            "financing",
            "covered_call_pnl",
        )
    )
    pnl = out["final_equity"].astype(float) - out["initial_equity"] - out["contributions"]
    assert np.max(np.abs(buckets - pnl)) < 1e-4 * 200_000


def test_float32_normal_cdf_within_its_published_bound():
    """A&S 26.2.17 (the float32 engine's CDF) is within 7.5e-8 of Phi, and keeps a relative
    error below 1 % in the tail down to Phi = 1e-9."""
    import jax.numpy as jnp
    from scipy.special import ndtr

    from simkit.precision import x64
    from simkit.strategy.rules.quotes import _INV_SQRT_2PI, _normal_cdf_from_pdf

    x = np.linspace(-6.0, 6.0, 24_001)
    with x64():
        pdf = np.exp(-0.5 * x * x) * _INV_SQRT_2PI
        ours = np.asarray(_normal_cdf_from_pdf(jnp.asarray(x), jnp.asarray(pdf)))
    truth = ndtr(x)
    assert np.max(np.abs(ours - truth)) < 7.5e-8
    assert np.max(np.abs(ours / truth - 1.0)[x < 0]) < 1e-2
    x32 = x.astype(np.float32)
    pdf32 = (np.exp(-0.5 * x32 * x32) * np.float32(_INV_SQRT_2PI)).astype(np.float32)
    ours32 = np.asarray(_normal_cdf_from_pdf(jnp.asarray(x32), jnp.asarray(pdf32)))
    assert ours32.dtype == np.float32
    assert np.max(np.abs(ours32 - truth)) < 3e-7  # the bound plus a few float32 ulps of 1


def test_float32_quotes_match_a_float64_closed_form():
    """The engine's float32 quote (mid and Greeks) against Black-Scholes in float64 with
    scipy's normal CDF, over strikes from deep in to deep out of the money."""
    import jax.numpy as jnp
    from scipy.stats import norm

    from simkit.strategy.params import engine_params
    from simkit.strategy.rules.quotes import _quote

    rng = np.random.default_rng(5)
    n = 4096
    spot = rng.uniform(1.0, 10.0, n)
    strike = spot * np.exp(rng.uniform(-1.5, 1.5, n))
    tau = rng.uniform(1, 63, n) / 252.0
    iv = rng.uniform(0.5, 4.5, n)
    p = engine_params(StrategyConfig(), MarketParams(rate=0.05), jnp.float32)
    r = 0.05
    d1 = (np.log(spot / strike) + (r + 0.5 * iv**2) * tau) / (iv * np.sqrt(tau))
    d2 = d1 - iv * np.sqrt(tau)
    disc = np.exp(-r * tau)
    for call in (True, False):
        q = _quote(*(jnp.asarray(a, jnp.float32) for a in (spot, strike, tau, iv)), p, call, False)
        if call:
            price = spot * norm.cdf(d1) - strike * disc * norm.cdf(d2)
            delta, rate_term = norm.cdf(d1), strike * disc * norm.cdf(d2)
        else:
            price = strike * disc * norm.cdf(-d2) - spot * norm.cdf(-d1)
            delta, rate_term = -norm.cdf(-d1), -strike * disc * norm.cdf(-d2)
        gamma = norm.pdf(d1) / (spot * iv * np.sqrt(tau))
        theta = (-spot * norm.pdf(d1) * iv / (2 * np.sqrt(tau)) - r * rate_term) / 365.0
        vega = spot * norm.pdf(d1) * np.sqrt(tau) / 100.0
        got = {k: np.asarray(getattr(q, k), np.float64) for k in q._fields}
        np.testing.assert_allclose(got["price"], price, rtol=0, atol=3e-6 * spot.max())
        np.testing.assert_allclose(got["delta"], delta, rtol=0, atol=5e-7)
        np.testing.assert_allclose(got["gamma"], gamma, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(got["theta"], theta, rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(got["vega"], vega, rtol=1e-5, atol=1e-9)


def test_float32_interest_on_cash_matches_the_closed_form():
    """Nothing trades (the entry signal never holds): the sleeve is cash at r, and a year of
    float32 daily interest (`expm1(r / 252)`, not `exp(r / 252) - 1`, which float32 rounds
    2.6e-4 too large) ends within float32 resolution of cash * exp(r n / 252)."""
    from simkit.strategy.engine import simulate_paths

    n_steps, rate = 252, 0.05
    market = {k: np.full((2, n_steps + 1), v, np.float32) for k, v in BASELINE.items()}
    cfg = StrategyConfig(signal_min_conditions=9)  # at most 8 conditions hold: no entry
    mkt = MarketParams(rate=rate)
    out = simulate_paths(market, cfg, mkt)
    assert out["final_equity"].dtype == np.float32
    assert np.all(out["n_tranches"] == 0)
    sleeve = cfg.sleeve_initial
    want = sleeve * np.exp(rate * n_steps / 252)
    np.testing.assert_allclose(out["final_equity"].astype(float), want, rtol=1e-6)
    np.testing.assert_allclose(out["financing"].astype(float), want - sleeve, rtol=1e-5)


def test_simulate_block_rejects_keys_outside_32_bits():
    import pytest

    for kwargs in (dict(seed=2**32, cell=0), dict(seed=0, cell=2**32)):
        with pytest.raises(ValueError, match="must be below 2\\*\\*32"):
            simulate_block(
                StrategyConfig(), MarketParams(), path_start=0, n_paths=8, n_steps=5, **kwargs
            )
