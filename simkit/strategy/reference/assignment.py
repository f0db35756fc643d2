"""Steps 3 and 6 of a day: early exercise of short puts, covered calls on assigned shares.

seed: "Assignment Management Protocol" (the early-assignment score, the cost-basis rules of the
covered calls); docs/STRATEGY.md "Expiry, assignment, covered calls".
"""

from __future__ import annotations

import math

from simkit.schema.outcomes import SHARES_PER_CONTRACT
from simkit.schema.strategy import EARLY_EXERCISE_MARGIN
from simkit.strategy.config import StrategyConfig
from simkit.strategy.reference.market import MarketDay
from simkit.strategy.reference.quotes import DayQuotes
from simkit.strategy.reference.state import Book, CoveredCall, ShortPut, Tally
from simkit.strategy.reference.trades import assign_put, close_put


def _assignment_score(put: ShortPut, mid: float, spot: float, rate: float) -> int:
    """seed: "Assignment Management Protocol" — monitor_early_assignment_risk's score."""
    score = 0
    # seed: "Deep ITM increases risk"
    if spot < put.strike * 0.95:
        score += 3
    elif spot < put.strike * 0.98:
        score += 1
    # seed: "Low time value increases risk"
    time_value = mid - max(put.strike - spot, 0.0)
    if time_value < 0.10:
        score += 2
    elif time_value < 0.25:
        score += 1
    # seed: "Higher rates increase exercise incentive"
    if rate > 0.05:
        score += 1
    return score


def early_exercise(
    book: Book, tally: Tally, day: MarketDay, quotes: DayQuotes, cfg: StrategyConfig
) -> None:
    """Step 3: close puts at high assignment risk (switch), then early assignment."""
    if cfg.close_on_assignment_risk:
        for put in list(book.puts):
            mid = quotes.mid("put", put.strike, put.expiry_step)
            # seed: "Assignment Management Protocol" — 'recommended_action': 'CLOSE' if score >= 5
            if _assignment_score(put, mid, day.spot, quotes.rate) >= cfg.assignment_score_close:
                close_put(book, tally, put, quotes, "assignment_risk", cfg)

    if cfg.early_assignment:
        for put in list(book.puts):
            mid = quotes.mid("put", put.strike, put.expiry_step)
            # docs/STRATEGY.md *(choice)*: a rational holder of an American put exercises when the
            # European value is strictly below intrinsic; one uniform per path and day.
            margin = EARLY_EXERCISE_MARGIN * put.strike  # a tie at a zero rate is no exercise
            below_intrinsic = mid < put.strike - day.spot - margin
            if below_intrinsic and day.early_u < cfg.early_assignment_prob:
                assign_put(book, tally, put, day.spot, early=True, cfg=cfg)


def covered_calls(
    book: Book, tally: Tally, day: MarketDay, quotes: DayQuotes, cfg: StrategyConfig
) -> None:
    """Step 6: write covered calls on assigned shares (seed: "Assignment Management Protocol").

    seed: effective_cost_basis < 2.00 -> execute_covered_call_strategy; < 2.50 ->
    hold_with_monitoring; else -> immediate_covered_calls. Strike round(basis * 1.15 * 2) / 2,
    30 DTE, quantity shares // 100. One covered-call position at a time (ENGINE_SPEC choice).
    """
    if not cfg.covered_calls or book.covered_call is not None or book.shares < 100.0:
        return
    basis = book.basis
    if not (basis < cfg.cc_basis_good or basis >= cfg.cc_basis_hold):
        return  # seed: "Assignment Management Protocol" — "Good cost basis - hold with monitoring"
    n = float(math.floor(book.shares / SHARES_PER_CONTRACT))  # always whole
    # seed: "Assignment Management Protocol" — 'strike': round(target_strike * 2) / 2, half up,
    # at least one $0.50 step
    strike = max(math.floor(basis * cfg.cc_strike_markup * 2.0 + 0.5) / 2.0, 0.5)
    expiry = day.step + cfg.cc_expiry_steps
    fill = quotes.sell_fill(quotes.mid("call", strike, expiry))
    book.cash += fill * SHARES_PER_CONTRACT * n - cfg.commission * n
    tally.covered_call_pnl += fill * SHARES_PER_CONTRACT * n
    tally.transaction_costs -= cfg.commission * n
    tally.n_cc_sold += 1
    book.covered_call = CoveredCall(strike=strike, contracts=n, premium=fill, expiry_step=expiry)
    if tally.log is not None:
        tally.log.opened(book.covered_call, "covered_call", strike, n, fill, cfg.commission * n)
