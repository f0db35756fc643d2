"""The day's quotes and fills, contract flooring, and the book marked at the day's mids.

docs/MODELLING.md "Pricing" (quotes) and "Fills"; seed: "Order Execution Framework".
"""

from __future__ import annotations

import math

from simkit.schema.outcomes import SHARES_PER_CONTRACT, TRADING_DAYS_PER_YEAR
from simkit.strategy.config import StrategyConfig
from simkit.strategy.reference.market import MarketDay
from simkit.strategy.reference.pricing import OptionValue, black_scholes
from simkit.strategy.reference.state import Book


class DayQuotes:
    """Model quotes and fills of step t (docs/MODELLING.md "Pricing", "Fills").

    The market does not move within a day, so each option's value is computed once and cached.
    """

    def __init__(self, day: MarketDay, cfg: StrategyConfig, rate: float) -> None:
        self.day = day
        self.cfg = cfg
        self.rate = rate
        self._cache: dict[tuple[str, float, int], OptionValue] = {}

    def value(self, kind: str, strike: float, expiry_step: int) -> OptionValue:
        """BS value at the day's spot, IV_K = iv * (K/S)^(-skew), T = steps_left / 252."""
        key = (kind, strike, expiry_step)
        if key not in self._cache:
            day = self.day
            vol = day.iv
            if self.cfg.skew != 0.0:
                vol = day.iv * (strike / day.spot) ** (-self.cfg.skew)
            years = (expiry_step - day.step) / TRADING_DAYS_PER_YEAR
            self._cache[key] = black_scholes(kind, day.spot, strike, years, self.rate, vol)
        return self._cache[key]

    def mid(self, kind: str, strike: float, expiry_step: int) -> float:
        """mid = model price."""
        return self.value(kind, strike, expiry_step).price

    def bid(self, mid: float) -> float:
        return max(mid - self.day.bid_ask_spread / 2.0, self.cfg.min_quote)

    def ask(self, mid: float) -> float:
        return max(mid + self.day.bid_ask_spread / 2.0, self.cfg.min_quote)

    def sell_fill(self, mid: float) -> float:
        """Per-share price we receive when we sell (seed: "Order Execution Framework")."""
        if self.cfg.fill == "mid":
            return mid
        if self.cfg.fill == "seed":
            # seed: "Order Execution Framework" — 'price_improvement_target': 0.05, "Seek $0.05
            # better than mid"
            pit = self.cfg.price_improvement_target
            return min(max(mid + pit, self.bid(mid)), self.ask(mid))
        return self.bid(mid)

    def buy_fill(self, mid: float) -> float:
        """Per-share price we pay when we buy."""
        if self.cfg.fill == "mid":
            return mid
        if self.cfg.fill == "seed":
            pit = self.cfg.price_improvement_target
            return min(max(mid - pit, self.bid(mid)), self.ask(mid))
        return self.ask(mid)


CONTRACT_TOLERANCE = 1e-9  # contracts


def floor_contracts(x: float, cfg: StrategyConfig) -> float:
    """floor_c: whole contracts by default, fractional on the switch; never negative."""
    # choice (ENGINE_SPEC): floor(x + 1e-9), so that a count that is whole in exact arithmetic
    # (20000 * 0.2 / (400 / 1.5) = 15) is not lost to a rounding hair (14.999999999999998).
    n = math.floor(x + CONTRACT_TOLERANCE) if cfg.whole_contracts else x
    return max(float(n), 0.0)


def sleeve_equity(book: Book, quotes: DayQuotes) -> float:
    """E = cash - short puts at mid + hedge calls at mid - covered call at mid + shares * S."""
    if book.ruined:
        return book.cash  # frozen after the liquidation
    equity = book.cash
    for put in book.puts:
        equity -= (
            quotes.mid("put", put.strike, put.expiry_step) * SHARES_PER_CONTRACT * put.contracts
        )
    for call in book.hedges:
        equity += (
            quotes.mid("call", call.strike, call.expiry_step) * SHARES_PER_CONTRACT * call.contracts
        )
    cc = book.covered_call
    if cc is not None:
        equity -= quotes.mid("call", cc.strike, cc.expiry_step) * SHARES_PER_CONTRACT * cc.contracts
    equity += book.shares * quotes.day.spot
    return equity
