"""Step 2 of a day: options whose expiry step is today settle on today's spot.

docs/STRATEGY.md "Expiry, assignment, covered calls": an ITM put is assigned, hedge calls pay their
intrinsic value, an ITM covered call takes the shares away at its strike.
"""

from __future__ import annotations

from simkit.schema.outcomes import SHARES_PER_CONTRACT
from simkit.strategy.config import StrategyConfig
from simkit.strategy.reference.market import MarketDay
from simkit.strategy.reference.state import Book, Tally
from simkit.strategy.reference.trades import assign_put, record_trade


def settle_expiries(book: Book, tally: Tally, day: MarketDay, cfg: StrategyConfig) -> None:
    """Step 2: options whose expiry step is today settle on today's spot."""
    t, spot = day.step, day.spot
    for put in [p for p in book.puts if p.expiry_step == t]:
        if put.strike > spot:
            # seed: "Assignment Management Protocol" — handle_assignment(strike, premium, shares)
            assign_put(book, tally, put, spot, early=False, cfg=cfg)
        else:
            n = put.contracts
            tally.premium_income += put.premium * SHARES_PER_CONTRACT * n
            pnl = put.premium * SHARES_PER_CONTRACT * n - cfg.commission * n
            record_trade(tally, put, pnl, cfg)
            if tally.log is not None:
                tally.log.closed(put, 0.0, "expired_otm", pnl=pnl)
            tally.n_expired_otm += 1
            book.puts.remove(put)

    # seed: "Dynamic Hedging Specifications" — calls held to expiry, settled at intrinsic.
    for call in [c for c in book.hedges if c.expiry_step == t]:
        payoff = max(spot - call.strike, 0.0) * SHARES_PER_CONTRACT * call.contracts
        book.cash += payoff
        tally.call_hedge_pnl += payoff
        if tally.log is not None:
            intrinsic = max(spot - call.strike, 0.0)
            tally.log.closed(call, intrinsic, "expired_itm" if payoff > 0.0 else "expired_otm")
        book.hedges.remove(call)

    cc = book.covered_call
    if cc is not None and cc.expiry_step == t:
        if spot > cc.strike:
            # Shares called away at the strike.
            called = SHARES_PER_CONTRACT * cc.contracts
            book.shares -= called
            book.cash += cc.strike * called
            tally.covered_call_pnl -= (spot - cc.strike) * called
            tally.shares_called_away += called
            if book.shares == 0.0:
                book.basis = 0.0
            if tally.log is not None:
                tally.log.closed(cc, spot - cc.strike, "assigned_expiry")
                tally.log.shares_out(called, spot, "called_away")
        elif tally.log is not None:
            tally.log.closed(cc, 0.0, "expired_otm")
        book.covered_call = None
