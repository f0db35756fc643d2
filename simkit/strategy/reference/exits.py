"""Step 4 of a day: each open short put is checked at the day's mid and closed on an exit.

seed: "Exit Conditions" (profit-take, stop-loss, time, IV, liquidity, thesis, by urgency);
docs/STRATEGY.md "Exits". The close-all conditions also stop new entries (entry.py).
"""

from __future__ import annotations

from simkit.schema.outcomes import CALENDAR_DAYS_PER_YEAR, TRADING_DAYS_PER_YEAR
from simkit.strategy.config import StrategyConfig
from simkit.strategy.reference.market import MarketDay
from simkit.strategy.reference.quotes import DayQuotes
from simkit.strategy.reference.state import Book, ShortPut, Tally
from simkit.strategy.reference.trades import close_put


def _thesis_broken(book: Book, day: MarketDay, cfg: StrategyConfig) -> bool:
    """seed: "Exit Conditions" — fundamental_thesis_changed(): merger cancelled / adverse
    regulation (the latch), get_short_interest() < 20, get_bitcoin_correlation() > 0.95
    (absolute value, per docs/STRATEGY.md)."""
    return (
        book.thesis_latch
        or day.short_interest < cfg.thesis_short_interest_min
        or abs(day.btc_correlation) > cfg.thesis_btc_corr_max
    )


def close_all_conditions(book: Book, day: MarketDay, cfg: StrategyConfig) -> dict[str, bool]:
    """The exits that apply to every put at once (thesis, liquidity, IV), each behind its switch."""
    return {
        # seed: "Exit Conditions" — thesis_change, urgency 5
        "thesis": cfg.thesis_exit and _thesis_broken(book, day, cfg),
        # seed: "Exit Conditions" — get_bid_ask_spread() > 0.25, urgency 3
        "liquidity": cfg.liquidity_exit and day.bid_ask_spread > cfg.liquidity_exit_spread,
        # seed: "Exit Conditions" — get_iv_percentile() < 30, urgency 2
        "iv": cfg.iv_exit and day.iv_percentile < cfg.iv_exit_percentile,
    }


def _exit_reason(
    put: ShortPut, mid: float, day: MarketDay, close_all: dict[str, bool], cfg: StrategyConfig
) -> str | None:
    """The holding exit of highest urgency, or None.

    seed: "Exit Conditions" — exit_conditions.sort(key=urgency, reverse=True); urgencies thesis 5,
    stop 4, time 3 = liquidity 3, IV 2, profit 1. The list below is in that order, with time
    before liquidity (docs/STRATEGY.md: between time and liquidity, time).
    """
    dte_calendar = (put.expiry_step - day.step) * CALENDAR_DAYS_PER_YEAR / TRADING_DAYS_PER_YEAR
    holding = (
        ("thesis", close_all["thesis"]),
        # seed: "Exit Conditions" — unrealized_pnl_pct < -2.0, "200% loss": mid > 3 x premium
        ("stop", cfg.stop_loss and mid > (1.0 + cfg.stop_loss_multiple) * put.premium),
        # seed: "Exit Conditions" — get_days_to_expiration() < 7, "Approaching expiration"
        ("time", cfg.time_exit and dte_calendar < cfg.time_exit_dte),
        ("liquidity", close_all["liquidity"]),
        ("iv", close_all["iv"]),
        # seed: "Exit Conditions" — unrealized_pnl_pct > 0.5, "50% profit capture": mid < 50 %
        ("profit", cfg.profit_take and mid < (1.0 - cfg.profit_take_pct) * put.premium),
    )
    for reason, holds in holding:
        if holds:
            return reason
    return None


def exits(book: Book, tally: Tally, day: MarketDay, quotes: DayQuotes, cfg: StrategyConfig) -> None:
    """Step 4: every open short put is checked at the day's mid and closed if an exit holds."""
    close_all = close_all_conditions(book, day, cfg)
    # Decide on the day's marks first, then execute: closing one put changes no other's test.
    decisions = []
    for put in book.puts:
        mid = quotes.mid("put", put.strike, put.expiry_step)
        reason = _exit_reason(put, mid, day, close_all, cfg)
        if reason is not None:
            decisions.append((put, reason))
    for put, reason in decisions:
        close_put(book, tally, put, quotes, reason, cfg)
