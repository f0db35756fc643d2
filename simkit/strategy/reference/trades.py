"""A short put's trade ends: bought back, or assigned; its result enters the Kelly inputs.

docs/STRATEGY.md "Trades, premiums and wins"; seed: "Kelly Criterion Implementation" and
"Assignment Management Protocol". The rule modules (expiries, assignment, exits, ruin) decide
when; these functions do the bookkeeping.
"""

from __future__ import annotations

from simkit.schema.outcomes import SHARES_PER_CONTRACT
from simkit.strategy.config import StrategyConfig
from simkit.strategy.reference.quotes import DayQuotes
from simkit.strategy.reference.state import Book, ShortPut, Tally


def record_trade(tally: Tally, put: ShortPut, pnl: float, cfg: StrategyConfig) -> None:
    """One finished trade into the Kelly inputs (seed: "Kelly Criterion Implementation").

    Win = P&L > 0; its return is P&L over the collateral the trade tied up.
    """
    ret = pnl / put.collateral(cfg)
    tally.n_trades += 1
    if pnl > 0.0:
        tally.n_wins += 1
        tally.sum_win_ret += ret
        tally.sum_win_ret_sq += ret * ret
    else:
        tally.sum_loss_ret += -ret
        tally.sum_loss_ret_sq += ret * ret


def close_put(
    book: Book, tally: Tally, put: ShortPut, quotes: DayQuotes, reason: str, cfg: StrategyConfig
) -> None:
    """Buy a short put back at the buy fill (docs/STRATEGY.md "Exits": "bought back at the
    fill price")."""
    c = cfg.commission
    n = put.contracts
    fill = quotes.buy_fill(quotes.mid("put", put.strike, put.expiry_step))
    book.cash -= fill * SHARES_PER_CONTRACT * n + c * n
    tally.transaction_costs -= c * n
    tally.premium_income += (put.premium - fill) * SHARES_PER_CONTRACT * n
    # Trade P&L includes both commissions (sale and buy-back).
    pnl = (put.premium - fill) * SHARES_PER_CONTRACT * n - 2.0 * c * n
    record_trade(tally, put, pnl, cfg)
    if tally.log is not None:
        tally.log.closed(put, fill, reason, commission=c * n, pnl=pnl)
    tally.closes[reason] += 1
    if reason == "profit" and pnl <= 0.0:
        # seed: "Exit Conditions" profit-take at 50 % of premium: at the mid, not after the
        # spread and two commissions, so a cheap put's "profit" can lose money
        tally.n_close_profit_loss += 1
    book.puts.remove(put)


def assign_put(
    book: Book, tally: Tally, put: ShortPut, spot: float, early: bool, cfg: StrategyConfig
) -> None:
    """Assignment: buy 100 n shares at K (seed: "Assignment Management Protocol").

    seed: effective_cost_basis = strike_price - premium_collected; with several assignments the
    basis is the share-weighted mean (docs/STRATEGY.md "Expiry, assignment, covered calls").
    """
    n = put.contracts
    new_shares = SHARES_PER_CONTRACT * n
    new_basis = put.strike - put.premium
    total = book.shares + new_shares
    book.basis = (book.shares * book.basis + new_shares * new_basis) / total
    book.shares = total
    book.cash -= put.strike * new_shares
    tally.premium_income += put.premium * new_shares
    tally.assignment_pnl += (spot - put.strike) * new_shares
    # Trade result premium - (K - S) per share, less the sale commission (none on assignment).
    pnl = (put.premium - (put.strike - spot)) * new_shares - cfg.commission * n
    record_trade(tally, put, pnl, cfg)
    if tally.log is not None:
        # The put ends at its intrinsic value K - S; the shares enter the log at the spot.
        reason = "assigned_early" if early else "assigned_expiry"
        tally.log.closed(put, put.strike - spot, reason, pnl=pnl)
        tally.log.shares_in(put, new_shares, spot)
    if early:
        tally.n_assigned_early += 1
    else:
        tally.n_assigned_expiry += 1
    tally.assigned_by_rung[put.rung] += 1
    tally.shares_assigned += new_shares
    book.puts.remove(put)
