"""The reference engine's trade records (`simulate_path(..., record_trades=True)`).

Recording must change no number of the engine, every record must be the hand-computed trade
on a hand-built path, and on the agreement corpus the records must add up to the engine's
own per-path results: the short-put trades to `n_trades`, `n_wins` and the Kelly sums, and
the P&L of every position plus the financing to the path's P&L.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest
from agreement_corpus import CORPUS as AGREEMENT_CORPUS
from hand_market import MKT, SPREAD, C, bs_call, bs_put, one_path, one_rung

from simkit.paths.market import MarketParams, market_to_numpy, simulate_market
from simkit.precision import x64
from simkit.strategy.config import StrategyConfig
from simkit.strategy.reference import INPUT_NAMES, simulate_path

# --------------------------------------------------------------------------- a hand-built path


def _records(spot):
    """One $3 put tranche of 100 contracts on day 0 at IV 100 % (no hedges), held to expiry;
    covered calls."""
    cfg = one_rung(
        covered_calls=True,
        iv_exit=False,
        time_exit=False,
        profit_take=False,
        stop_loss=False,
        early_assignment=False,
    )
    out = simulate_path(one_path(spot=spot, iv=1.0), cfg, MKT, record_trades=True)
    return out, [(r.kind, r.open_step, r.close_step, r.reason) for r in out["trades"]]


def test_records_of_an_assignment_a_covered_call_and_the_shares_called_away():
    # Spot 2.50 from day 1: the put (26 steps) is assigned on day 26 at K = 3; 10,000 shares
    # enter at the spot 2.50 and a covered call K = 3.00, 21 steps, is sold the same day
    # (basis K - premium >= 2.50, as in tests/strategy/test_rules.py). Spot 4.00 from day 27:
    # the call is exercised on day 47 and takes the shares away.
    out, rows = _records([3.0] + [2.5] * 26 + [4.0] * 22)
    assert rows == [
        ("short_put", 0, 26, "assigned_expiry"),
        ("shares", 26, 47, "called_away"),
        ("covered_call", 26, 47, "assigned_expiry"),
    ]
    put, shares, call = out["trades"]
    premium = bs_put(3.0, 3.0, 26, 1.0) - SPREAD / 2
    assert put.strike == 3.0 and put.contracts == 100.0
    assert put.premium == pytest.approx(premium, rel=1e-12)
    assert put.close_price == pytest.approx(0.5, rel=1e-12)  # intrinsic K - S
    assert put.pnl == pytest.approx((premium - 0.5) * 1e4 - C * 100, rel=1e-12)
    assert put.collateral == pytest.approx(3.0 * 100 * 100 / 1.5, rel=1e-12)
    assert (shares.contracts, shares.premium, shares.close_price) == (100.0, 2.5, 4.0)
    assert shares.pnl == pytest.approx(1.5 * 1e4, rel=1e-12) and shares.collateral == 0.0
    call_fill = bs_call(2.5, 3.0, 21, 1.0) - SPREAD / 2
    assert call.strike == 3.0 and call.premium == pytest.approx(call_fill, rel=1e-12)
    assert call.close_price == pytest.approx(1.0, rel=1e-12)  # intrinsic S - K
    assert call.pnl == pytest.approx((call_fill - 1.0) * 1e4 - C * 100, rel=1e-12)


def test_records_of_a_call_expiring_and_what_is_open_at_the_horizon():
    # Spot stays 2.50: the first call expires worthless on day 47 and a second is sold that
    # day; at the horizon (day 48) it and the shares are still held, marked at mid / spot.
    out, rows = _records([3.0] + [2.5] * 48)
    assert rows == [
        ("short_put", 0, 26, "assigned_expiry"),
        ("shares", 26, 48, "open"),
        ("covered_call", 26, 47, "expired_otm"),
        ("covered_call", 47, 48, "open"),
    ]
    _, shares, first, second = out["trades"]
    call_fill = bs_call(2.5, 3.0, 21, 1.0) - SPREAD / 2
    assert first.close_price == 0.0
    assert first.pnl == pytest.approx(call_fill * 1e4 - C * 100, rel=1e-12)
    mid = bs_call(2.5, 3.0, 20, 1.0)
    assert second.close_price == pytest.approx(mid, rel=1e-12)
    assert second.pnl == pytest.approx((call_fill - mid) * 1e4 - C * 100, rel=1e-12)
    assert shares.close_price == 2.5 and shares.pnl == 0.0


# --------------------------------------------------------------------------- the corpus

# Markets of tests/strategy/test_agreement.py where, together, every kind of position ends in
# every way it can (checked below).
CORPUS = [
    case
    for case in AGREEMENT_CORPUS
    if case[0] in ("baseline", "bull_hold", "crash_leverage", "unhedged_levered_no_margin")
]
N_PATHS, N_LOGGED, N_STEPS = 24, 6, 252  # the agreement test's market shape (compiled once)


def _corpus_paths():
    for name, market_changes, strategy_changes in CORPUS:
        mkt = dataclasses.replace(MarketParams(), **market_changes)
        cfg = dataclasses.replace(StrategyConfig(), **strategy_changes)
        with x64():
            market = market_to_numpy(
                simulate_market(mkt, 7, len(name), 0, N_PATHS, N_STEPS, dtype=np.float64)
            )
        for i in range(N_LOGGED):
            yield {k: market[k][i].tolist() for k in INPUT_NAMES}, cfg, mkt


def test_records_add_up_to_the_paths_results_and_change_nothing():
    ends = collections.Counter()
    for path, cfg, mkt in _corpus_paths():
        plain = simulate_path(path, cfg, mkt)
        out = simulate_path(path, cfg, mkt, record_trades=True)
        records = out.pop("trades")
        assert plain.keys() == out.keys()
        for key, value in plain.items():  # recording changes no number
            assert np.array_equal(np.asarray(value), np.asarray(out[key])), key

        puts = [r for r in records if r.kind == "short_put" and r.reason != "open"]
        wins = [r for r in puts if r.pnl > 0]
        assert len(puts) == out["n_trades"] and len(wins) == out["n_wins"]
        for reason in ("stop", "profit", "margin", "ruin", "expired_otm", "assigned_early"):
            counter = f"n_close_{reason}" if f"n_close_{reason}" in out else f"n_{reason}"
            assert sum(r.reason == reason for r in puts) == out[counter], reason
        win_ret = sum(r.pnl / r.collateral for r in wins)
        loss_ret = -sum(r.pnl / r.collateral for r in puts if r.pnl <= 0)
        assert win_ret == pytest.approx(out["sum_win_ret"], rel=1e-12, abs=1e-12)
        assert loss_ret == pytest.approx(out["sum_loss_ret"], rel=1e-12, abs=1e-12)
        # Every position's P&L plus the interest on cash is the path's P&L.
        pnl = out["final_equity"] - out["initial_equity"] - out["contributions"]
        total = sum(r.pnl for r in records) + out["financing"]
        assert total == pytest.approx(pnl, abs=1e-9 * out["initial_equity"])
        for r in records:
            assert r.open_step <= r.close_step <= N_STEPS and r.contracts > 0
            assert r.reason != "open" or r.close_step == N_STEPS  # marked at the horizon
            ends[(r.kind, r.reason)] += 1
    expected = {
        ("short_put", reason)
        for reason in (
            "profit", "stop", "time", "iv", "margin", "ruin", "expired_otm", "assigned_expiry",
            "assigned_early", "open",
        )
    } | {
        ("hedge_call", "expired_otm"), ("hedge_call", "expired_itm"), ("hedge_call", "ruin"),
        ("hedge_call", "open"), ("covered_call", "expired_otm"),
        ("covered_call", "assigned_expiry"), ("covered_call", "ruin"), ("covered_call", "open"),
        ("shares", "called_away"), ("shares", "ruin"), ("shares", "open"),
    }  # fmt: skip
    assert expected <= set(ends), sorted(expected - set(ends))
