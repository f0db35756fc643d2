"""Float32 (the default, for speed and GPUs) against float64 on the vectorized engine.

The two precisions draw their random numbers in their own dtype, so paths differ; what must
agree is every aggregate, within Monte Carlo error."""

from __future__ import annotations

import numpy as np

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
