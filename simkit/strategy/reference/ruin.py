"""Step 5 of a day: the margin check on the book after exits, and ruin.

docs/STRATEGY.md "Ruin"; seed: "Capital & Margin" (margin requirements, 'max_leverage': 1.5).
"""

from __future__ import annotations

from simkit.schema.outcomes import SHARES_PER_CONTRACT
from simkit.strategy.config import StrategyConfig
from simkit.strategy.reference.market import MarketDay
from simkit.strategy.reference.quotes import DayQuotes, sleeve_equity
from simkit.strategy.reference.state import Book, Tally, required_collateral
from simkit.strategy.reference.trades import close_put


def margin_and_ruin(
    book: Book, tally: Tally, day: MarketDay, quotes: DayQuotes, cfg: StrategyConfig
) -> None:
    """Step 5: margin call when equity < required collateral; ruin when equity <= 0.

    docs/STRATEGY.md "Ruin" (seed: "Capital & Margin" — margin requirements; 'max_leverage': 1.5).
    """
    if cfg.margin_calls and book.puts:
        equity = sleeve_equity(book, quotes)
        if equity < required_collateral(book, cfg):
            # seed: "Capital & Margin" — margin requirements: every short put is bought back;
            # shares and calls are kept (docs/STRATEGY.md "Ruin").
            for put in list(book.puts):
                close_put(book, tally, put, quotes, "margin", cfg)
            tally.n_margin_calls += 1

    if sleeve_equity(book, quotes) <= 0.0:
        _liquidate(book, tally, quotes, cfg)
        book.ruined = True
        book.ruin_step = day.step


def _liquidate(book: Book, tally: Tally, quotes: DayQuotes, cfg: StrategyConfig) -> None:
    """Ruin: everything is closed at fill prices, shares sold at the spot."""
    c = cfg.commission
    for put in list(book.puts):
        close_put(book, tally, put, quotes, "ruin", cfg)
    for call in list(book.hedges):
        fill = quotes.sell_fill(quotes.mid("call", call.strike, call.expiry_step))
        book.cash += fill * SHARES_PER_CONTRACT * call.contracts - c * call.contracts
        tally.call_hedge_pnl += fill * SHARES_PER_CONTRACT * call.contracts
        tally.transaction_costs -= c * call.contracts
        if tally.log is not None:
            tally.log.closed(call, fill, "ruin", commission=c * call.contracts)
        book.hedges.remove(call)
    cc = book.covered_call
    if cc is not None:
        fill = quotes.buy_fill(quotes.mid("call", cc.strike, cc.expiry_step))
        book.cash -= fill * SHARES_PER_CONTRACT * cc.contracts + c * cc.contracts
        tally.covered_call_pnl -= fill * SHARES_PER_CONTRACT * cc.contracts
        tally.transaction_costs -= c * cc.contracts
        if tally.log is not None:
            tally.log.closed(cc, fill, "ruin", commission=c * cc.contracts)
        book.covered_call = None
    # Shares trade at the spot, no cost (ENGINE_SPEC "Conventions").
    if tally.log is not None:
        tally.log.all_shares_out(quotes.day.spot, "ruin")
    book.cash += book.shares * quotes.day.spot
    book.shares = 0.0
    book.basis = 0.0
