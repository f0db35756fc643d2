"""Cell aggregates that have no closed form: checked against replicated cells."""

from __future__ import annotations

import numpy as np
import pytest

from simkit.aggregate import _CLOSE_COUNTERS, BUCKETS, LIMITS, aggregate_cell, derive_block
from simkit.schema.outcomes import UNDERLYING


class _Strategy:
    kelly_multiplier = 0.25
    max_total_strategy_pct = 0.2
    strikes = (1, 2, 3, 4, 5)
    portfolio_value = 5e5


def _cell(rng, n: int, n_steps: int = 30) -> dict:
    """A cell of synthetic paths whose daily returns share a per-path mean (clustered)."""
    path_mean = rng.normal(0.002, 0.004, size=(n, 1))
    daily = 1 + path_mean + rng.normal(0, 0.02, size=(n, n_steps + 1))
    equity = 1e5 * np.cumprod(daily, axis=1)
    zeros = np.zeros(n, dtype=np.int64)
    summary = {
        "initial_equity": np.full(n, 1e5),
        "final_equity": equity[:, -1],
        "contributions": np.zeros(n),
        "equity": equity,
        "ruined": zeros,
        "ruin_step": np.full(n, -1),
        "n_margin_calls": zeros,
        "n_trades": np.full(n, 4),
        "n_wins": rng.integers(0, 5, size=n),
        "sum_win_ret": np.ones(n),
        "sum_win_ret_sq": np.ones(n),
        "sum_loss_ret": np.ones(n),
        "sum_loss_ret_sq": np.ones(n),
        "assigned_by_rung": np.zeros((n, 5), dtype=np.int64),
        "contracts_cut": np.zeros(n),
        "n_entry_days": np.full(n, 6),
        "n_blocked_signal": zeros,
        "n_blocked_limits": zeros,
        "n_blocked_exit": zeros,
        "n_orders_cut": zeros,
        "n_close_profit_loss": np.ones(n, dtype=np.int64),
    }
    for name in _CLOSE_COUNTERS:
        summary[name] = np.full(n, 2, dtype=np.int64)
    for name in BUCKETS:
        summary[name] = np.zeros(n)
    for x in LIMITS:
        summary[f"breach_{x}"] = zeros
    for name in UNDERLYING:
        summary[name] = np.ones(n)
    block = derive_block(summary, n_steps=n_steps, monthly_addition=0.0, path_start=0, n_sample=0)
    return aggregate_cell(block, strategy=_Strategy, n_steps=n_steps, rate=0.05)


def test_pooled_sharpe_standard_error_matches_its_spread_over_replicates():
    # Paths differ in their mean return, so the path-days are not independent: an i.i.d.
    # standard error would be ~3x too small here; the path-clustered one matches the spread.
    rng = np.random.default_rng(11)
    cells = [_cell(rng, 150) for _ in range(300)]
    sharpe = np.array([float(c["sharpe_pooled"]) for c in cells])
    se = np.array([float(c["sharpe_pooled_se"]) for c in cells])
    assert 0.85 < np.std(sharpe, ddof=1) / np.mean(se) < 1.15
    inside = (np.array([float(c["sharpe_pooled_lo"]) for c in cells]) < sharpe.mean()) & (
        sharpe.mean() < np.array([float(c["sharpe_pooled_hi"]) for c in cells])
    )
    assert 0.91 < inside.mean() < 0.99


def test_profit_take_loss_share_is_the_ratio_of_the_counters():
    cell = _cell(np.random.default_rng(1), 20)
    assert float(cell["profit_take_loss_share"]) == 0.5  # 1 of 2 profit-takes a path


def test_profit_takes_lose_money_only_through_spread_and_commission():
    # At mid fills without commission a profit-take buys back at <= 50 % of the premium: a
    # gain, always. At the ask with two commissions, cheap puts close at a loss.
    import simkit
    from simkit.scenario import parse_scenario

    text = open("scenarios/baseline.toml").read()
    kwargs = dict(paths=400, progress=False)
    free = {"execution.fill": "mid", "execution.commission": 0.0, "simulation.years": 0.3}
    ds = simkit.simulate(parse_scenario(text, overrides=free), **kwargs)
    assert float(ds["close_reason_share"].sel(close_reason="profit")) > 0
    assert float(ds["profit_take_loss_share"]) == 0.0
    ds = simkit.simulate(parse_scenario(text, overrides={"simulation.years": 0.3}), **kwargs)
    assert float(ds["profit_take_loss_share"]) > 0.0


def test_the_sleeve_kelly_reads_the_time_weighted_return_when_money_is_added():
    # 1 % a day compounding, 1,000 USD added every 21 days: P&L over the first stake credits
    # the added money's gains to it; the sleeve's own return is the time-weighted 1.01^N - 1.
    n_steps, add = 42, 1_000.0
    equity = [1e4 * 1.01]
    for t in range(1, n_steps + 1):
        equity.append(equity[-1] * 1.01 + (add if t % 21 == 0 else 0.0))
    equity = np.array([equity])
    summary = {
        "initial_equity": np.array([1e4]),
        "final_equity": equity[:, -1],
        "contributions": np.array([2 * add]),
        "equity": equity,
    }
    out = derive_block(summary, n_steps=n_steps, monthly_addition=add, path_start=0, n_sample=0)
    assert out["_sleeve_return"][0] == pytest.approx(1.01 ** (n_steps + 1) - 1, rel=1e-12)
    assert out["total_return"][0] > out["_sleeve_return"][0]
