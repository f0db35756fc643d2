"""One rule at a time, on hand-built short paths, with hand-computed numbers.

Each test builds a tiny market (constant inputs, a spot or IV step) in which one rule of
``docs/STRATEGY.md`` fires, computes what must happen from first principles (a small
Black-Scholes formula on scipy's normal, tests/strategy/hand_market.py, not the engine's), and
checks both
engines against it through ``run``. The JAX engine is skipped until ``simkit.strategy.engine``
exists; it runs in float64 here.

Conventions of the hand computations: tests/strategy/hand_market.py, which builds the markets.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hand_market import (
    MKT,
    OUTSIDE,
    SLEEVE,
    SPREAD,
    C,
    G,
    R,
    bs_call,
    bs_put,
    market,
    one_rung,
    percentile,
    steps,
)
from scipy.stats import norm

from simkit.strategy.config import StrategyConfig

ENGINES = ["reference", "jax"]


def run(engine, market, cfg, mkt):
    if engine == "reference":
        from simkit.strategy.reference import simulate_paths

        return simulate_paths(market, cfg, mkt)
    engine_mod = pytest.importorskip("simkit.strategy.engine")
    simulate_paths = engine_mod.simulate_paths  # same signature, returns numpy arrays
    from simkit.precision import x64

    with x64():
        out = simulate_paths(market, cfg, mkt)
        return {name: np.asarray(value) for name, value in out.items()}


# --------------------------------------------------------------------------------------------
# Hand-computation kit (the market and Black-Scholes: tests/strategy/hand_market.py)
# --------------------------------------------------------------------------------------------

BUCKETS = (
    "premium_income",
    "assignment_pnl",
    "call_hedge_pnl",
    "mark_to_market",
    "transaction_costs",
    "financing",
    "covered_call_pnl",
)


def assert_attribution(out):
    """The seven buckets sum to final_equity - initial_equity - contributions."""
    total = sum(out[name] for name in BUCKETS)
    expected = out["final_equity"] - out["initial_equity"] - out["contributions"]
    np.testing.assert_allclose(total, expected, rtol=0, atol=1e-6 * SLEEVE)


def approx(x):
    return pytest.approx(x, rel=1e-9, abs=1e-6)


# --------------------------------------------------------------------------------------------
# Exits
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_profit_take_closes_when_mid_falls_below_half_the_premium(engine):
    # IV 100 % at the sale (percentile ~0.4: 7 of 8 signals hold), 30 % the next day.
    cfg = one_rung(iv_exit=False)
    mkt_in = market(3, iv=steps((1.0, 1), (0.3, 3)))
    out = run(engine, mkt_in, cfg, MKT)

    premium = bs_put(3.0, 3.0, 26, 1.0) - SPREAD / 2  # sold at the bid
    mid1 = bs_put(3.0, 3.0, 25, 0.3)
    assert mid1 < 0.5 * premium  # the rule's condition holds on step 1
    buyback = mid1 + SPREAD / 2  # bought back at the ask
    cash0 = SLEEVE + premium * 100 * 100 - C * 100
    cash1 = cash0 * G - buyback * 100 * 100 - C * 100
    pnl = (premium - buyback) * 100 * 100 - 2 * C * 100
    collateral = 3.0 * 100 * 100 / 1.5
    assert pnl > 0

    assert out["n_close_profit"][0] == 1
    assert out["n_trades"][0] == 1 and out["n_wins"][0] == 1
    assert out["sum_win_ret"][0] == approx(pnl / collateral)
    assert out["sum_win_ret_sq"][0] == approx((pnl / collateral) ** 2)
    assert out["sum_loss_ret"][0] == 0.0
    assert out["premium_income"][0] == approx((premium - buyback) * 100 * 100)
    assert out["transaction_costs"][0] == approx(-2 * C * 100)
    assert out["equity"][0, 0] == approx(cash0 - bs_put(3.0, 3.0, 26, 1.0) * 100 * 100)
    assert out["final_equity"][0] == approx(cash1 * G**2)
    assert out["final_portfolio_value"][0] == approx(OUTSIDE * G**3 + cash1 * G**2)
    assert out["n_tranches"][0] == 1 and out["n_entry_days"][0] == 1
    assert_attribution(out)


@pytest.mark.parametrize("engine", ENGINES)
def test_exit_urgency_picks_the_most_urgent_reason(engine):
    # Three paths, each sells at IV 217 % (percentile 50); on step 1:
    #   0: IV falls to 30 %   -> IV exit (2) and profit (1) hold: reason iv
    #   1: same, spread 0.30  -> liquidity (3) beats iv: reason liquidity
    #   2: thesis event       -> thesis (5); the latch then blocks entries on steps 2 and 4
    # Entries every 2 steps: paths 0 and 1 are blocked on 2 and 4 by the IV exit condition.
    cfg = one_rung(entry_every_days=2)
    iv = np.array([steps((2.17, 1), (0.3, 4)), steps((2.17, 1), (0.3, 4)), [2.17] * 5])
    spread = np.array([[SPREAD] * 5, steps((SPREAD, 1), (0.30, 1), (SPREAD, 3)), [SPREAD] * 5])
    thesis = np.array([[0] * 5, [0] * 5, [0, 1, 0, 0, 0]])
    out = run(engine, market(4, 3, iv=iv, bid_ask_spread=spread, thesis_event=thesis), cfg, MKT)

    assert percentile(0.3) < 30 and bs_put(3, 3, 25, 0.3) < 0.5 * (bs_put(3, 3, 26, 2.17) - 0.05)
    assert list(out["n_close_iv"]) == [1, 0, 0]
    assert list(out["n_close_liquidity"]) == [0, 1, 0]
    assert list(out["n_close_thesis"]) == [0, 0, 1]
    assert list(out["n_close_profit"]) == [0, 0, 0]
    assert list(out["n_entry_days"]) == [3, 3, 3]
    assert list(out["n_tranches"]) == [1, 1, 1]
    assert list(out["n_blocked_exit"]) == [2, 2, 2]
    # The liquidity close pays the wide ask: mid + 0.30 / 2.
    premium = bs_put(3.0, 3.0, 26, 2.17) - SPREAD / 2
    buyback = bs_put(3.0, 3.0, 25, 0.3) + 0.30 / 2
    assert out["premium_income"][1] == approx((premium - buyback) * 100 * 100)
    assert_attribution(out)


@pytest.mark.parametrize("engine", ENGINES)
def test_time_exit_below_seven_calendar_days_wins_over_liquidity(engine):
    # Constant market, profit-take off: the put is closed on the first step with calendar
    # DTE = steps_left * 365 / 252 < 7, i.e. steps_left = 4, step 22. On path 1 the spread
    # also widens to 0.30 that day: time and liquidity both hold (urgency 3), time wins.
    assert 5 * 365 / 252 >= 7 > 4 * 365 / 252
    cfg = one_rung(profit_take=False)
    spread = np.array([[SPREAD] * 25, steps((SPREAD, 22), (0.30, 1), (SPREAD, 2))])
    out = run(engine, market(24, 2, iv=2.17, bid_ask_spread=spread), cfg, MKT)

    premium = bs_put(3.0, 3.0, 26, 2.17) - SPREAD / 2
    cash0 = SLEEVE + premium * 100 * 100 - C * 100
    for path, half_spread in ((0, SPREAD / 2), (1, 0.15)):
        buyback = bs_put(3.0, 3.0, 4, 2.17) + half_spread
        final = (cash0 * G**22 - buyback * 100 * 100 - C * 100) * G**2
        assert out["n_close_time"][path] == 1
        assert out["n_close_liquidity"][path] == 0
        assert out["final_equity"][path] == approx(final)
        # Closed on step 22: from then on equity is cash growing at r.
        assert out["equity"][path, 23] == approx(out["equity"][path, 22] * G)
    assert_attribution(out)


@pytest.mark.parametrize("engine", ENGINES)
def test_stop_loss_at_three_times_the_premium(engine):
    # IV 50 %: the put sells cheap. Path 0: the spot falls to 2.20 on step 1 and the mid passes
    # 3 x premium (loss >= 200 % of the premium). Path 1: spot 2.70, the mid is between 2 and 3
    # x premium: no stop. Early assignment off: on path 0 it would fire first.
    cfg = one_rung(iv_exit=False, early_assignment=False)
    spot = np.array([[3.0, 2.2, 2.2], [3.0, 2.7, 2.7]])
    out = run(engine, market(2, 2, iv=0.5, spot=spot), cfg, MKT)

    premium = bs_put(3.0, 3.0, 26, 0.5) - SPREAD / 2
    mid1 = bs_put(2.2, 3.0, 25, 0.5)
    assert mid1 > 3 * premium
    assert 2 * premium < bs_put(2.7, 3.0, 25, 0.5) < 3 * premium
    buyback = mid1 + SPREAD / 2
    pnl = (premium - buyback) * 100 * 100 - 2 * C * 100
    ret = pnl / 20_000.0
    cash1 = (SLEEVE + premium * 1e4 - C * 100) * G - buyback * 1e4 - C * 100

    assert list(out["n_close_stop"]) == [1, 0]
    assert list(out["n_trades"]) == [1, 0] and out["n_wins"][0] == 0
    assert out["sum_loss_ret"][0] == approx(-ret)
    assert out["sum_loss_ret_sq"][0] == approx(ret**2)
    assert out["final_equity"][0] == approx(cash1 * G)
    # Path 1: still open at the horizon, marked at mid.
    mid_end = bs_put(2.7, 3.0, 24, 0.5)
    assert out["mark_to_market"][1] == approx((premium - mid_end) * 1e4)
    assert_attribution(out)


# --------------------------------------------------------------------------------------------
# Expiry, assignment, covered calls
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_put_assigned_at_expiry_and_put_expiring_worthless(engine):
    # Time exit off, so the put lives to its expiry step 26. Path 0: spot 2.50 < K = 3 from
    # step 1: assigned on step 26. Path 1: spot 3.50: expires worthless.
    # IV 200 %: premium ~0.70, so the effective basis K - premium ~2.30 is in the seed's
    # "hold with monitoring" band [2.00, 2.50): no covered call is written (with basis K = 3
    # or spot 2.5 the rule would differ, so this also checks the basis).
    cfg = one_rung(
        time_exit=False,
        profit_take=False,
        stop_loss=False,
        early_assignment=False,
        covered_calls=True,
    )
    spot = np.array([steps((3.0, 1), (2.5, 28)), steps((3.0, 1), (3.5, 28))])
    out = run(engine, market(28, 2, iv=2.0, spot=spot), cfg, MKT)

    premium = bs_put(3.0, 3.0, 26, 2.0) - SPREAD / 2
    basis = 3.0 - premium
    assert 2.0 <= basis < 2.5
    cash0 = SLEEVE + premium * 1e4 - C * 100

    # Path 0: buy 10 000 shares at 3.00 on step 26; marked at 2.50.
    final0 = cash0 * G**28 - 3.0 * 10_000 * G**2 + 10_000 * 2.5
    pnl0 = (premium - (3.0 - 2.5)) * 1e4 - C * 100
    assert out["n_assigned_expiry"][0] == 1
    assert list(out["assigned_by_rung"][0]) == [1]
    assert out["shares_assigned"][0] == approx(10_000)
    assert out["premium_income"][0] == approx(premium * 1e4)
    assert out["assignment_pnl"][0] == approx((2.5 - 3.0) * 1e4)
    assert out["final_equity"][0] == approx(final0)
    assert out["n_trades"][0] == 1 and out["n_wins"][0] == int(pnl0 > 0)
    assert out["sum_win_ret"][0] == approx(max(pnl0, 0) / 20_000)
    assert out["n_cc_sold"][0] == 0

    # Path 1: worthless; the whole premium is income.
    assert out["n_expired_otm"][1] == 1 and out["n_assigned_expiry"][1] == 0
    assert out["premium_income"][1] == approx(premium * 1e4)
    assert out["final_equity"][1] == approx(cash0 * G**28)
    assert out["sum_win_ret"][1] == approx((premium * 1e4 - C * 100) / 20_000)
    assert_attribution(out)


@pytest.mark.parametrize("engine", ENGINES)
def test_early_assignment_when_the_put_is_worth_less_than_intrinsic(engine):
    # IV 30 %, the spot gaps to 2.00: the European put is below its intrinsic value 1.00.
    # early_assignment_prob 0.5: path 0 (u = 0.3) is assigned on step 1; path 1 (u = 0.7) is
    # not, and the stop-loss (mid > 3 x premium) closes it the same day instead.
    cfg = one_rung(iv_exit=False, early_assignment_prob=0.5)
    early_u = np.array([[0.3] * 4, [0.7] * 4])
    out = run(engine, market(3, 2, iv=0.3, spot=[3.0, 2.0, 2.0, 2.0], early_u=early_u), cfg, MKT)

    premium = bs_put(3.0, 3.0, 26, 0.3) - SPREAD / 2
    mid1 = bs_put(2.0, 3.0, 25, 0.3)
    assert mid1 < 3.0 - 2.0 and mid1 > 3 * premium
    cash0 = SLEEVE + premium * 1e4 - C * 100
    pnl = (premium - 1.0) * 1e4 - C * 100

    assert list(out["n_assigned_early"]) == [1, 0]
    assert list(out["n_close_stop"]) == [0, 1]
    assert list(out["assigned_by_rung"][:, 0]) == [1, 0]
    assert out["shares_assigned"][0] == approx(10_000)
    assert out["assignment_pnl"][0] == approx(-1.0 * 1e4)
    assert out["sum_loss_ret"][0] == approx(-pnl / 20_000)
    assert out["final_equity"][0] == approx((cash0 * G - 3.0 * 1e4) * G**2 + 10_000 * 2.0)
    assert_attribution(out)


@pytest.mark.parametrize("engine", ENGINES)
def test_assignment_risk_score_closes_the_put_before_exercise(engine):
    # close_on_assignment_risk: spot 2.50 < 0.95 K (+3), time value < 0.10 (+2): score 5
    # closes the put at the ask before early assignment can take it.
    cfg = one_rung(iv_exit=False, close_on_assignment_risk=True)
    out = run(engine, market(2, iv=0.3, spot=[3.0, 2.5, 2.5]), cfg, MKT)

    mid1 = bs_put(2.5, 3.0, 25, 0.3)
    assert 2.5 < 0.95 * 3.0 and mid1 - 0.5 < 0.10
    premium = bs_put(3.0, 3.0, 26, 0.3) - SPREAD / 2
    assert out["n_close_assignment_risk"][0] == 1
    assert out["n_assigned_early"][0] == 0
    assert out["premium_income"][0] == approx((premium - mid1 - SPREAD / 2) * 1e4)
    assert_attribution(out)


@pytest.mark.parametrize("engine", ENGINES)
def test_covered_call_sold_after_assignment_then_called_away_or_rolled(engine):
    # IV 100 %: premium ~0.33, basis K - premium ~2.67 >= 2.50: the seed's
    # "immediate_covered_calls" branch. Assigned on step 26 at spot 2.50; a call is written the
    # same day at round(basis * 1.15 * 2) / 2 = 3.00, 30 calendar days = 21 steps (expiry 47).
    # Path 0: spot 4.00 from step 27: called away on step 47 at 3.00, no new call.
    # Path 1: spot stays 2.50: the call expires worthless and a new one is sold on step 47.
    cfg = one_rung(
        iv_exit=False,
        time_exit=False,
        profit_take=False,
        stop_loss=False,
        early_assignment=False,
        covered_calls=True,
    )
    spot = np.array([steps((3.0, 1), (2.5, 26), (4.0, 22)), steps((3.0, 1), (2.5, 48))])
    out = run(engine, market(48, 2, iv=1.0, spot=spot), cfg, MKT)

    premium = bs_put(3.0, 3.0, 26, 1.0) - SPREAD / 2
    basis = 3.0 - premium
    assert basis >= 2.5
    strike_cc = math.floor(basis * 1.15 * 2 + 0.5) / 2
    assert strike_cc == 3.0
    call_fill = bs_call(2.5, strike_cc, 21, 1.0) - SPREAD / 2
    cash0 = SLEEVE + premium * 1e4 - C * 100
    cash26 = cash0 * G**26 - 3.0 * 1e4 + call_fill * 1e4 - C * 100

    # Path 0
    final0 = (cash26 * G**21 + strike_cc * 1e4) * G
    assert out["n_cc_sold"][0] == 1
    assert out["shares_called_away"][0] == approx(10_000)
    assert out["covered_call_pnl"][0] == approx(call_fill * 1e4 - (4.0 - strike_cc) * 1e4)
    assert out["assignment_pnl"][0] == approx(-0.5 * 1e4 + 1.5 * 1e4)
    assert out["final_equity"][0] == approx(final0)

    # Path 1: second call at the same strike on step 47, open at the horizon (20 steps left).
    call_fill2 = bs_call(2.5, strike_cc, 21, 1.0) - SPREAD / 2
    mid_at_end = bs_call(2.5, strike_cc, 20, 1.0)
    cash47 = cash26 * G**21 + call_fill2 * 1e4 - C * 100
    assert out["n_cc_sold"][1] == 2
    assert out["shares_called_away"][1] == 0
    assert out["covered_call_pnl"][1] == approx((call_fill + call_fill2 - mid_at_end) * 1e4)
    assert out["final_equity"][1] == approx(cash47 * G - mid_at_end * 1e4 + 10_000 * 2.5)
    assert list(out["transaction_costs"]) == [approx(-2 * C * 100), approx(-3 * C * 100)]
    assert_attribution(out)


@pytest.mark.parametrize("engine", ENGINES)
def test_basis_is_the_share_weighted_mean_over_assignments(engine):
    # Two tranches, both assigned at expiry (time exit off). Tranche 0 (step 0, IV 180 %):
    # basis ~2.38, the "hold" band: no covered call on step 26. Tranche 1 (step 5, IV 425 %,
    # limits not enforced): basis ~1.55. On step 31 the share-weighted basis (~1.97 < 2.00)
    # calls for covered calls at round(1.97 * 1.15 * 2) / 2 = 2.50 (the last basis alone
    # would give 2.00). From step 6 on, short interest 25, VIX 15, liquidity 5: 5 of 8
    # signals, no more tranches.
    cfg = one_rung(
        entry_every_days=5,
        enforce_limits=False,
        iv_exit=False,
        time_exit=False,
        profit_take=False,
        stop_loss=False,
        early_assignment=False,
        covered_calls=True,
    )
    n_steps = 32
    mkt_in = market(
        n_steps,
        iv=steps((1.8, 5), (4.2517, 28)),
        spot=steps((3.0, 6), (2.5, 27)),
        short_interest=steps((42.88, 6), (25.0, 27)),
        vix=steps((25.0, 6), (15.0, 27)),
        liquidity_score=steps((8.0, 6), (5.0, 27)),
    )
    out = run(engine, mkt_in, cfg, MKT)

    premium0 = bs_put(3.0, 3.0, 26, 1.8) - SPREAD / 2
    premium1 = bs_put(3.0, 3.0, 26, 4.2517) - SPREAD / 2
    n0 = 100
    cash5 = (SLEEVE + premium0 * 100 * n0 - C * n0) * G**5
    equity5 = cash5 - bs_put(3.0, 3.0, 21, 4.2517) * 100 * n0
    budget = min(cash5 - 3.0 * 100 * n0 / 1.5, 0.15 * equity5 / 1.5)
    n1 = math.floor(budget / (3.0 * 100 / 1.5))
    basis = ((3.0 - premium0) * n0 + (3.0 - premium1) * n1) / (n0 + n1)
    assert 2.0 <= 3.0 - premium0 < 2.5 and basis < 2.0
    strike_cc = math.floor(basis * 1.15 * 2 + 0.5) / 2
    assert strike_cc == 2.5
    call_fill = bs_call(2.5, strike_cc, 21, 4.2517) - SPREAD / 2
    call_mid_end = bs_call(2.5, strike_cc, 20, 4.2517)

    assert out["n_tranches"][0] == 2 and out["n_assigned_expiry"][0] == 2
    assert out["shares_assigned"][0] == approx(100 * (n0 + n1))
    assert out["n_cc_sold"][0] == 1
    assert out["covered_call_pnl"][0] == approx((call_fill - call_mid_end) * 100 * (n0 + n1))
    assert_attribution(out)


# --------------------------------------------------------------------------------------------
# Margin and ruin
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_margin_call_buys_back_every_put(engine):
    # Expiry cap raised to 100 %: budget = 200 000 / 1.5, 666 contracts of the $3 put. The
    # spot halves on step 1: equity < required collateral 3 * 100 * 666 / 1.5.
    cfg = one_rung(
        max_concentration_single_expiration=1.0,
        capacity_limits=False,
        iv_exit=False,
        early_assignment=False,
        stop_loss=False,
    )
    out = run(engine, market(2, iv=1.0, spot=[3.0, 1.5, 1.5]), cfg, MKT)

    n = 666
    premium = bs_put(3.0, 3.0, 26, 1.0) - SPREAD / 2
    cash0 = SLEEVE + premium * 100 * n - C * n
    mid1 = bs_put(1.5, 3.0, 25, 1.0)
    equity1 = cash0 * G - mid1 * 100 * n
    assert equity1 < 3.0 * 100 * n / 1.5
    cash1 = cash0 * G - (mid1 + SPREAD / 2) * 100 * n - C * n
    assert cash1 > 0

    assert out["n_margin_calls"][0] == 1
    assert out["n_close_margin"][0] == 1
    assert out["ruined"][0] == 0 and out["ruin_step"][0] == -1
    assert out["final_equity"][0] == approx(cash1 * G)
    assert_attribution(out)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("margin_calls", [True, False])
def test_ruin_on_a_crash_with_high_leverage(engine, margin_calls):
    # Leverage 10 and expiry cap 1000 %: budget = 200 000, 6666 contracts (notional ~2 M).
    # The spot crashes to 0.01: the puts are worth ~3 each, equity goes far below 0.
    # With margin calls the puts are bought back by the margin call, then ruin; without, the
    # ruin liquidation buys them back. Either way the path stops with equity = cash, frozen.
    cfg = one_rung(
        max_leverage=10.0,
        max_concentration_single_expiration=10.0,
        capacity_limits=False,
        iv_exit=False,
        early_assignment=False,
        stop_loss=False,
        margin_calls=margin_calls,
    )
    out = run(engine, market(3, iv=1.0, spot=[3.0, 0.01, 0.01, 0.01]), cfg, MKT)

    n = 6666
    premium = bs_put(3.0, 3.0, 26, 1.0) - SPREAD / 2
    cash0 = SLEEVE + premium * 100 * n - C * n
    cash1 = cash0 * G - (bs_put(0.01, 3.0, 25, 1.0) + SPREAD / 2) * 100 * n - C * n
    assert cash1 < 0

    assert out["ruined"][0] == 1 and out["ruin_step"][0] == 1
    assert out["n_margin_calls"][0] == int(margin_calls)
    assert out["n_close_margin"][0] == int(margin_calls)
    assert out["n_close_ruin"][0] == int(not margin_calls)
    np.testing.assert_allclose(out["equity"][0, 1:], cash1, rtol=1e-12)
    assert out["final_portfolio_value"][0] == approx(OUTSIDE * G**3 + cash1)
    assert_attribution(out)


# --------------------------------------------------------------------------------------------
# Entry: signal, limits, capacity, sizing, hedges
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_entry_blocked_by_the_signal(engine):
    # Path 0: IV percentile < 75, VIX 15, liquidity 5: 5 of 8 conditions, no entry on steps
    # 0, 5, 10. Path 1: IV at the seed's 99th percentile: 6 of 8, it enters.
    cfg = StrategyConfig()
    iv = np.array([[1.0], [4.2517]])
    out = run(engine, market(10, 2, iv=iv, vix=15.0, liquidity_score=5.0), cfg, MKT)

    assert list(out["n_entry_days"]) == [3, 3]
    assert out["n_blocked_signal"][0] == 3
    assert out["n_tranches"][0] == 0 and out["n_trades"][0] == 0
    assert out["final_equity"][0] == approx(SLEEVE * G**10)
    assert out["financing"][0] == approx(SLEEVE * (G**10 - 1))
    assert out["n_blocked_signal"][1] == 0 and out["n_tranches"][1] >= 1
    assert_attribution(out)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("limit_pct", "enforce", "tranches"), [(0.01, True, 1), (0.01, False, 3), (0.20, True, None)]
)
def test_high_limit_blocks_later_entries(engine, limit_pct, enforce, tranches):
    # A fixed $200 000 sleeve with an allocation limit of 1 %: the first tranche (notional
    # 3 * 100 * 100 = 30 000 > 1 % of ~1 M) breaches it from day 0 on, and with enforce_limits
    # the entries on steps 5 and 10 are blocked.
    cfg = one_rung(
        allocation=SLEEVE,
        max_total_strategy_pct=limit_pct,
        enforce_limits=enforce,
        entry_every_days=5,
        profit_take=False,
    )
    out = run(engine, market(10), cfg, MKT)
    if limit_pct == 0.01:
        assert out["breach_allocation"][0] == 11
        assert out["first_breach_allocation"][0] == 0
        assert out["n_tranches"][0] == tranches
        assert out["n_blocked_limits"][0] == (2 if enforce else 0)
    else:
        assert out["breach_allocation"][0] == 0
        assert out["first_breach_allocation"][0] == -1


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("breach", [True, False])
@pytest.mark.parametrize("hedges", [False, True])
def test_var_limit_is_the_delta_gamma_normal_var(engine, breach, hedges):
    # One day, 100 short $3 puts at IV 425.17 % (and, with hedges, the long calls bought with
    # 40 % of the net premium at 1.5, 2, 3 x spot). VaR on the signed book (short -n, long +n):
    # D = sum s n 100 delta, G = sum s n 100 gamma, sd = IV / sqrt(252),
    # VaR = z sqrt((D S sd)^2 + (G S^2 sd^2)^2 / 2) - G S^2 sd^2 / 2.
    # The limit is set 1 % either side of it.
    iv, spot = 4.2517, 3.0

    def greeks(kind, strike, steps_left):
        t = steps_left / 252
        d1 = (math.log(spot / strike) + (R + 0.5 * iv**2) * t) / (iv * math.sqrt(t))
        delta = norm.cdf(d1) if kind == "call" else norm.cdf(d1) - 1
        return delta, norm.pdf(d1) / (spot * iv * math.sqrt(t))

    delta_put, gamma_put = greeks("put", 3.0, 26)
    delta_book, gamma_book = -1e4 * delta_put, -1e4 * gamma_put
    premium = bs_put(spot, 3.0, 26, iv) - SPREAD / 2
    equity0 = SLEEVE - (SPREAD / 2) * 1e4 - C * 100
    if hedges:
        budget = 0.4 * (premium * 1e4 - C * 100)
        for m, w in zip((1.5, 2.0, 3.0), (0.5, 0.3, 0.2), strict=True):
            ask = bs_call(spot, m * spot, 62, iv) + SPREAD / 2
            n = math.floor(budget * w / (ask * 100 + C))
            delta_call, gamma_call = greeks("call", m * spot, 62)
            delta_book += n * 100 * delta_call
            gamma_book += n * 100 * gamma_call
            equity0 -= (SPREAD / 2) * 100 * n + C * n
    sd = iv / math.sqrt(252)
    g_term = gamma_book * spot**2 * sd**2
    var = norm.ppf(0.99) * math.sqrt((delta_book * spot * sd) ** 2 + 0.5 * g_term**2)
    var -= 0.5 * g_term
    pv0 = OUTSIDE + equity0
    limit = var / pv0 * (0.99 if breach else 1.01)
    out = run(engine, market(0), one_rung(daily_var_limit=limit, hedges=hedges), MKT)
    assert out["equity"][0, 0] == approx(equity0)
    assert out["breach_var"][0] == int(breach)
    assert out["first_breach_var"][0] == (0 if breach else -1)


@pytest.mark.parametrize("engine", ENGINES)
def test_capacity_cuts_the_order(engine):
    # Planned 100 contracts. Path 0: open interest 300 -> at most 10 % = 30. Path 1: option
    # volume 100 -> at most 20 % = 20 a day.
    oi = np.array([[300.0], [5000.0]])
    volume = np.array([[1000.0], [100.0]])
    out = run(engine, market(1, 2, open_interest=oi, option_volume=volume), one_rung(), MKT)

    premium = bs_put(3.0, 3.0, 26, 4.2517) - SPREAD / 2
    mid1 = bs_put(3.0, 3.0, 25, 4.2517)
    for path, n in ((0, 30), (1, 20)):
        assert out["contracts_cut"][path] == approx(100 - n)
        assert out["n_orders_cut"][path] == 1
        cash0 = SLEEVE + premium * 100 * n - C * n
        assert out["final_equity"][path] == approx(cash0 * G - mid1 * 100 * n)
        assert out["mark_to_market"][path] == approx((premium - mid1) * 100 * n)
    assert_attribution(out)


def test_rungs_sharing_a_strike_share_its_capacity_and_strike_cap():
    # Moneyness mode at spot 1: the $4 and $5 rungs re-centre to 1.33 and 1.67, both rounded
    # to K = 1.5. Budget 0.15 * 200 000 / 1.5 = 20 000 at 1.5 * 100 / 1.5 = 100 a contract:
    # 100 planned at each rung, planned notional 30 000, strike cap 0.30 * 30 000 = 9 000 =
    # 60 contracts at K = 1.5 for both rungs together. Allowances go to the rungs in ladder
    # order. Path 0: open interest 300 -> 30 a strike. Path 1: option volume 100 -> 20 a strike.
    # Path 2: capacity 200, the strike cap binds: 60.
    cfg = StrategyConfig(
        strikes=(4.0, 5.0),
        weights=(0.5, 0.5),
        strike_mode="moneyness",
        entry_every_days=10_000,
        hedges=False,
        covered_calls=False,
    )
    oi = np.array([[300.0], [5000.0], [5000.0]])
    volume = np.array([[1000.0], [100.0], [1000.0]])
    mkt = market(1, 3, spot=1.0, open_interest=oi, option_volume=volume)
    outs = {engine: run(engine, mkt, cfg, MKT) for engine in ENGINES}

    premium = bs_put(1.0, 1.5, 26, 4.2517) - SPREAD / 2
    mid1 = bs_put(1.0, 1.5, 25, 4.2517)
    # (contracts at K = 1.5, contracts cut by capacity, orders cut)
    expected = [(30, 30 + 30, 2), (20, 40 + 40, 2), (60, 0, 0)]
    for engine, out in outs.items():
        for path, (n, cut, orders) in enumerate(expected):
            assert out["transaction_costs"][path] == approx(-C * n), (engine, path)
            assert out["contracts_cut"][path] == approx(cut), (engine, path)
            assert out["n_orders_cut"][path] == orders, (engine, path)
            cash0 = SLEEVE + premium * 100 * n - C * n
            assert out["final_equity"][path] == approx(cash0 * G - mid1 * 100 * n)
        assert_attribution(out)
    assert_engines_agree(outs["reference"], outs["jax"])

    # The default ladder at spot 1 re-centres to [0.5, 1.0, 1.0, 1.5, 1.5]: with 20 contracts
    # a strike (option volume 100), three strikes hold 20 each, 60 in all (not 100).
    cfg = StrategyConfig(strike_mode="moneyness", entry_every_days=10_000, hedges=False)
    mkt = market(1, 1, spot=1.0, option_volume=100.0)
    outs = {engine: run(engine, mkt, cfg, MKT) for engine in ENGINES}
    for out in outs.values():
        assert out["transaction_costs"][0] == approx(-C * 60)
    assert_engines_agree(outs["reference"], outs["jax"])


def assert_engines_agree(ref, jax):
    for name, value in ref.items():
        np.testing.assert_allclose(jax[name], value, rtol=1e-9, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("whole", [True, False])
def test_sizing_whole_and_fractional_contracts(engine, whole):
    # Two rungs ($2: 40 %, $3: 60 %) on a $123 457 sleeve: budget = 0.15 * E / 1.5 = 12 345.7;
    # planned x = budget * w / (K * 100 / 1.5) = 37.04 at both; the strike cap 30 % of the
    # planned notional 1.5 * budget cuts them to 27.78 and 18.52 contracts; whole contracts
    # floor to 27 and 18. Each strike then holds 50 % of the notional: MEDIUM strike breach.
    sleeve = 123_457.0
    cfg = StrategyConfig(
        allocation=sleeve,
        strikes=(2.0, 3.0),
        weights=(0.4, 0.6),
        hedges=False,
        entry_every_days=10_000,
        whole_contracts=whole,
    )
    out = run(engine, market(1), cfg, MKT)

    budget = 0.15 * sleeve / 1.5
    room = 0.30 * 1.5 * budget
    contracts = [room / (2.0 * 100), room / (3.0 * 100)]
    if whole:
        contracts = [27.0, 18.0]
    assert room / 200 == pytest.approx(27.7778, abs=1e-4)
    cash0 = sleeve
    equity1_puts = 0.0
    for k, n in zip((2.0, 3.0), contracts, strict=True):
        cash0 += (bs_put(3.0, k, 26, 4.2517) - SPREAD / 2) * 100 * n - C * n
        equity1_puts += bs_put(3.0, k, 25, 4.2517) * 100 * n
    final = cash0 * G - equity1_puts
    assert out["final_equity"][0] == approx(final)
    assert out["final_portfolio_value"][0] == approx((1e6 - sleeve) * G + final)
    assert out["transaction_costs"][0] == approx(-C * sum(contracts))
    assert out["breach_strike"][0] == 2 and out["first_breach_strike"][0] == 0
    assert out["contracts_cut"][0] == 0
    assert_attribution(out)


def hedge_ratio_and_set(iv, short_interest, borrow, volume_ratio, momentum=0.0, spike=False):
    """The seed's hedge ratio and instrument set, by hand (no portfolio-delta multiplier)."""
    p = percentile(iv)
    squeeze = min(
        0.3 * min(short_interest / 50, 1)
        + 0.25 * min(borrow / 100, 1)
        + 0.2 * min((p - 50) / 50, 1)
        + 0.15 * min(volume_ratio / 3, 1)
        + 0.1 * min(momentum / 0.2, 1),
        0.95,
    )
    multiplier = (1.5 if p > 95 else 1.0) * (2.0 if squeeze > 0.4 else 1.0)
    multiplier *= 1.4 if spike else 1.0
    ratio = min(0.2 * multiplier, 0.4)
    if p > 90:
        return ratio, (1.5, 2.0, 3.0), (0.5, 0.3, 0.2)
    return ratio, (1.2, 1.5), (0.7, 0.3)


def expected_hedges(spot, iv, net_premium, ratio, moneyness, weights):
    """(contracts bought, USD paid incl. commissions, calls) at the ask, 62 steps."""
    bought = paid = 0.0
    calls = []
    for m, w in zip(moneyness, weights, strict=True):
        ask = bs_call(spot, m * spot, 62, iv) + SPREAD / 2
        n = math.floor(ratio * net_premium * w / (ask * 100 + C))
        bought += n
        paid += ask * 100 * n + C * n
        calls.append((m * spot, n))
    return bought, paid, calls


@pytest.mark.parametrize("engine", ENGINES)
def test_hedge_calls_bought_with_the_premium(engine):
    # One tranche on step 0; per path (IV, short interest, borrow, volume ratio):
    #   0: baseline, IV at the 99th percentile: x1.5 (IV > 95) x2 (squeeze ~0.65) -> 0.4 (cap);
    #      calls at 1.5, 2, 3 x spot with 0.5, 0.3, 0.2 (IV percentile > 90)
    #   1: IV at the 80th percentile: squeeze ~0.58 -> ratio 0.4; calls at 1.2, 1.5 x spot
    #   2: IV at the 92.5th percentile: the far-OTM set, ratio 0.4 (squeeze)
    #   3: 99th percentile, short interest 37.3, no borrow or volume: squeeze 0.42 -> 0.4
    #   4: same with short interest 31: squeeze 0.38 < 0.4 -> ratio 0.2 x 1.5 = 0.3
    iv_80 = 2.17 * math.exp(norm.ppf(0.80) / math.sqrt(12.0))
    iv_925 = 2.17 * math.exp(norm.ppf(0.925) / math.sqrt(12.0))
    cases = [
        (4.2517, 42.88, 50.0, 1.5),
        (iv_80, 42.88, 50.0, 1.5),
        (iv_925, 42.88, 50.0, 1.5),
        (4.2517, 37.3, 0.0, 0.0),
        (4.2517, 31.0, 0.0, 0.0),
    ]
    column = lambda i: np.array([[case[i]] for case in cases])  # noqa: E731
    mkt_in = market(
        1,
        len(cases),
        iv=column(0),
        short_interest=column(1),
        borrow_cost=column(2),
        volume_ratio=column(3),
    )
    out = run(engine, mkt_in, one_rung(hedges=True), MKT)

    ratios = [hedge_ratio_and_set(*case)[0] for case in cases]
    assert ratios == [0.4, 0.4, 0.4, 0.4, pytest.approx(0.3)]
    assert [len(hedge_ratio_and_set(*case)[1]) for case in cases] == [3, 2, 3, 3, 3]
    for path, case in enumerate(cases):
        iv = case[0]
        ratio, moneyness, weights = hedge_ratio_and_set(*case)
        net_premium = (bs_put(3.0, 3.0, 26, iv) - SPREAD / 2) * 1e4 - C * 100
        bought, paid, calls = expected_hedges(3.0, iv, net_premium, ratio, moneyness, weights)
        value1 = sum(bs_call(3.0, k, 61, iv) * 100 * n for k, n in calls)
        assert out["hedge_contracts"][path] == approx(bought)
        assert out["call_hedge_pnl"][path] == approx(value1 - (paid - C * bought))
        final = (SLEEVE + net_premium - paid) * G - bs_put(3.0, 3.0, 25, iv) * 1e4 + value1
        assert out["final_equity"][path] == approx(final)
    assert_attribution(out)


@pytest.mark.parametrize("engine", ENGINES)
def test_hedge_ratio_vol_spike_and_momentum(engine):
    # VIX 15 and liquidity 5 throughout; IV 150 % (percentile ~10) on steps 0-4: 5 of 8
    # conditions, no entry on step 0. IV jumps to 300 % on step 5 (percentile ~87, the normal
    # call set): 6 of 8, entry, and IV_5 / IV_4 = 2 > 1.25 is a volatility spike (x1.4).
    # Short interest 31, no borrow, no volume surge keep the squeeze below 0.4 on path 0
    # (ratio 0.28); on path 1 the spot rose 20 % over the 5 days (momentum factor 1): squeeze
    # > 0.4, ratio min(0.2 x 1.4 x 2, 0.4) = 0.4.
    iv = steps((1.5, 5), (3.0, 2))
    spot = np.array([[3.0] * 7, steps((2.5, 5), (3.0, 2))])
    inputs = dict(short_interest=31.0, borrow_cost=0.0, volume_ratio=0.0, vix=15.0)
    mkt_in = market(6, 2, iv=iv, spot=spot, liquidity_score=5.0, **inputs)
    cfg = one_rung(hedges=True, entry_every_days=5, iv_exit=False)
    out = run(engine, mkt_in, cfg, MKT)

    assert list(out["n_blocked_signal"]) == [1, 1] and list(out["n_tranches"]) == [1, 1]
    for path, momentum, expected_ratio in ((0, 0.0, 0.28), (1, 0.2, 0.4)):
        ratio, moneyness, weights = hedge_ratio_and_set(
            3.0, 31.0, 0.0, 0.0, momentum=momentum, spike=True
        )
        assert ratio == pytest.approx(expected_ratio) and moneyness == (1.2, 1.5)
        net_premium = (bs_put(3.0, 3.0, 26, 3.0) - SPREAD / 2) * 1e4 - C * 100
        bought, paid, calls = expected_hedges(3.0, 3.0, net_premium, ratio, moneyness, weights)
        assert out["hedge_contracts"][path] == approx(bought)
        # End of step 5: cash (grown 5 steps, plus the tranche, less the calls), marks at mid.
        calls_mid = sum(bs_call(3.0, k, 62, 3.0) * 100 * n for k, n in calls)
        equity5 = SLEEVE * G**5 + net_premium - paid - bs_put(3.0, 3.0, 26, 3.0) * 1e4 + calls_mid
        assert out["equity"][path, 5] == approx(equity5)
    assert_attribution(out)


# --------------------------------------------------------------------------------------------
# Whole paths: the attribution identity
# --------------------------------------------------------------------------------------------


def random_market(n_paths, n_steps, seed):
    """GBM spot (sigma 1.9) with a few crashes, log-OU IV from 4.2517, uniform early_u."""
    rng = np.random.default_rng(seed)
    dt = 1 / 252
    z = rng.standard_normal((n_paths, n_steps))
    jumps = np.where(rng.uniform(size=z.shape) < 0.02, -0.4, 0.0)
    log_returns = (0.05 - 0.5 * 1.9**2) * dt + 1.9 * math.sqrt(dt) * z + jumps
    spot = 3.0 * np.exp(np.concatenate([np.zeros((n_paths, 1)), np.cumsum(log_returns, 1)], 1))
    x = np.empty((n_paths, n_steps + 1))
    x[:, 0] = math.log(4.2517)
    w = -0.5 * z + math.sqrt(0.75) * rng.standard_normal(z.shape)
    for t in range(n_steps):
        x[:, t + 1] = x[:, t] + 6.0 * (math.log(2.17) - x[:, t]) * dt + math.sqrt(dt) * w[:, t]
    out = market(
        n_steps,
        n_paths,
        spot=spot,
        iv=np.exp(x),
        early_u=rng.uniform(size=(n_paths, n_steps + 1)),
    )
    out["jump"] = jumps  # an extra input the engines ignore
    return out


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "changes",
    [
        dict(monthly_addition=5_000.0),
        dict(
            fill="seed",
            whole_contracts=False,
            strike_mode="moneyness",
            close_on_assignment_risk=True,
            skew=0.3,
            time_exit=False,
        ),
        dict(fill="mid", commission=0.0, margin_calls=False, max_leverage=3.0),
    ],
    ids=["default+additions", "seed-fill-fractional-moneyness", "mid-fill-no-margin"],
)
def test_attribution_buckets_sum_to_the_pnl(engine, changes):
    n_steps = 130
    cfg = StrategyConfig(**changes)
    out = run(engine, random_market(3, n_steps, seed=7), cfg, MKT)
    assert_attribution(out)
    assert out["equity"].shape == (3, n_steps + 1)
    assert out["assigned_by_rung"].shape == (3, 5)
    np.testing.assert_allclose(out["equity"][:, -1], out["final_equity"], rtol=1e-12)
    outside = (1e6 - cfg.sleeve_initial) * G**n_steps
    np.testing.assert_allclose(
        out["final_portfolio_value"], outside + out["final_equity"], rtol=1e-12
    )
    live = out["ruined"] == 0  # a ruined path receives no more additions
    np.testing.assert_allclose(
        out["contributions"][live], cfg.monthly_addition * (n_steps // 21), rtol=1e-12
    )
    assert np.all(out["initial_equity"] == cfg.sleeve_initial)
    assert np.all(out["n_trades"] >= out["n_wins"])
    closes = sum(
        out[name]
        for name in out
        if name.startswith("n_close_") or name in ("n_expired_otm", "n_assigned_expiry")
    )
    assert np.all(closes + out["n_assigned_early"] == out["n_trades"])
    assert np.all(
        out["assigned_by_rung"].sum(1) == out["n_assigned_expiry"] + out["n_assigned_early"]
    )


# --------------------------------------------------------------------------------------------
# The JAX engine's tally increments (a typed record, not a dict)
# --------------------------------------------------------------------------------------------


def test_tally_increments_are_named_when_the_day_is_traced():
    """A step's increments are a `Tallies` record built by keyword: a name that is not a tally
    fails at construction (at trace time), and `_merge` adds the steps field by field in the
    order given, leaving a field no step fills empty (0 when added to the book)."""
    pytest.importorskip("simkit.strategy.engine")
    import jax.numpy as jnp

    from simkit.strategy.rules.trades import _add_tallies, _merge
    from simkit.strategy.state import FLOAT_TALLIES, INT_TALLIES, Tallies, empty_book

    assert Tallies._fields == (*FLOAT_TALLIES, *INT_TALLIES)
    with pytest.raises(TypeError, match="financng"):
        Tallies(financng=jnp.ones(2))
    a = Tallies(financing=jnp.array([1.0, 2.0]), n_trades=jnp.array([1, 0]))
    b = Tallies(financing=jnp.array([0.5, 0.25]), n_wins=jnp.array([0, 1]))
    merged = _merge(a, b)
    np.testing.assert_array_equal(merged.financing, [1.5, 2.25])
    assert merged.premium_income is None
    book = _add_tallies(empty_book(1.0, jnp.ones(2), jnp.ones(2), 1, 1, 1, 1, jnp.float32), merged)
    np.testing.assert_array_equal(book.float_tally[FLOAT_TALLIES.index("financing")], [1.5, 2.25])
    assert float(np.abs(np.asarray(book.float_tally)).sum()) == 3.75  # nothing else moved
    np.testing.assert_array_equal(book.int_tally[INT_TALLIES.index("n_trades")], [1, 0])
    np.testing.assert_array_equal(book.int_tally[INT_TALLIES.index("n_wins")], [0, 1])
    assert int(np.asarray(book.int_tally).sum()) == 2
