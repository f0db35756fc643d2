"""Step 1 of a day: the market moves (one step of a path's inputs) and the sleeve accrues.

``market_day`` reads step t of a path into a ``MarketDay`` with the lagged values and the IV
percentile the rules read; ``accrue`` is what the new day does to the book before any trade:
interest on sleeve cash, the shares' mark, new capital, the thesis latch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from simkit.paths.linked_iv import linked_iv_table
from simkit.schema.outcomes import MARKET_INPUTS
from simkit.strategy.config import StrategyConfig
from simkit.strategy.reference.pricing import norm_cdf
from simkit.strategy.reference.state import Book, Tally

# The inputs of one path (ENGINE_SPEC "Inputs"), each of length N + 1: the schema's market
# inputs but the jump flag (it describes the generated spot; no rule reads it).
INPUT_NAMES = tuple(name for name in MARKET_INPUTS if name != "jump")


@dataclass(frozen=True)
class MarketDay:
    """The inputs of step t, plus the few lagged values the rules read."""

    step: int
    spot: float  # USD
    iv: float  # annual fraction
    short_interest: float  # percent
    vix: float
    btc_correlation: float
    bid_ask_spread: float  # USD
    open_interest: float  # contracts
    option_volume: float  # contracts a day
    liquidity_score: float
    borrow_cost: float  # percent a year
    volume_ratio: float
    thesis_event: bool
    early_u: float  # uniform on (0, 1)
    spot_prev: float  # S_{t-1} (S_0 on step 0)
    iv_prev: float  # IV_{t-1} (IV_0 on step 0)
    spot_5d_ago: float  # S_{max(t-5, 0)}
    iv_percentile: float  # 0..100


def iv_percentile(iv: float, mkt) -> float:
    """Percentile of ln IV in the stationary law of the log-OU process (a choice:
    docs/MODELLING.md "Market model").

    p = 100 * Phi((ln iv - ln iv_long_run) / (eta / sqrt(2 kappa))).
    With linked IV (``mkt.linked_iv``: heston or bates), the percentile of IV in the stationary
    law of sqrt(v) e^z, read in the market's table (`linked_iv_percentile`).
    """
    if getattr(mkt, "linked_iv", False):
        return linked_iv_percentile(iv, linked_iv_table(mkt))
    stationary_sd = mkt.eta / math.sqrt(2.0 * mkt.kappa)
    return 100.0 * norm_cdf((math.log(iv) - math.log(mkt.iv_long_run)) / stationary_sd)


def linked_iv_percentile(iv: float, table) -> float:
    """The table's percentile at ln iv: knot i holds `table.percentiles[i]` at ln IV
    `table.start + i * table.step`; linear between knots, the end values beyond them."""
    position = (math.log(iv) - table.start) / table.step
    values = table.percentiles
    if position <= 0.0:
        return values[0]
    if position >= len(values) - 1:
        return values[-1]
    knot = int(position)
    weight = position - knot
    return values[knot] + (values[knot + 1] - values[knot]) * weight


def market_day(path: Mapping[str, Sequence[float]], t: int, mkt) -> MarketDay:
    """Read step t of a path."""
    spot = float(path["spot"][t])
    iv = float(path["iv"][t])
    return MarketDay(
        step=t,
        spot=spot,
        iv=iv,
        short_interest=float(path["short_interest"][t]),
        vix=float(path["vix"][t]),
        btc_correlation=float(path["btc_correlation"][t]),
        bid_ask_spread=float(path["bid_ask_spread"][t]),
        open_interest=float(path["open_interest"][t]),
        option_volume=float(path["option_volume"][t]),
        liquidity_score=float(path["liquidity_score"][t]),
        borrow_cost=float(path["borrow_cost"][t]),
        volume_ratio=float(path["volume_ratio"][t]),
        thesis_event=bool(path["thesis_event"][t]),
        early_u=float(path["early_u"][t]),
        spot_prev=float(path["spot"][max(t - 1, 0)]),
        iv_prev=float(path["iv"][max(t - 1, 0)]),
        spot_5d_ago=float(path["spot"][max(t - 5, 0)]),
        iv_percentile=iv_percentile(iv, mkt),
    )


def accrue(
    book: Book, tally: Tally, day: MarketDay, cfg: StrategyConfig, daily_interest: float
) -> None:
    """Step 1: sleeve cash earns (or pays) r daily (`daily_interest` = g - 1 = expm1(r / 252));
    shares are marked; new capital; thesis news.

    seed: "Core 80/20 Distribution" — compound_position_size(..., monthly_addition).
    """
    t = day.step
    if t >= 1:
        interest = book.cash * daily_interest
        tally.financing += interest
        book.cash += interest
        # Shares are marked to market daily; their mark change is assignment P&L.
        tally.assignment_pnl += book.shares * (day.spot - day.spot_prev)
        if cfg.monthly_addition > 0.0 and t % 21 == 0:
            book.cash += cfg.monthly_addition
            tally.contributions += cfg.monthly_addition
    if day.thesis_event:
        # seed: "Exit Conditions" — fundamental_thesis_changed(): merger 'CANCELLED', adverse
        # regulation: an event latches the thesis as broken for the rest of the path.
        book.thesis_latch = True
