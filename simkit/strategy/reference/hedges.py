"""Step 7 of a day, with a tranche: the call hedges its premium buys (the 80/20 rule).

seed: "Dynamic Hedging Specifications" (hedge ratio, squeeze probability, instruments) and
"Core 80/20 Distribution"; docs/STRATEGY.md "Hedges".
"""

from __future__ import annotations

from simkit.schema.outcomes import SHARES_PER_CONTRACT
from simkit.strategy.config import StrategyConfig
from simkit.strategy.reference.limits import BookRisk
from simkit.strategy.reference.market import MarketDay
from simkit.strategy.reference.quotes import DayQuotes, floor_contracts
from simkit.strategy.reference.state import Book, HedgeCall, Tally


def _squeeze_probability(day: MarketDay) -> float:
    """seed: "Dynamic Hedging Specifications" — calculate_squeeze_probability(), as written:
    each factor capped at 1 above, not floored below; weights 0.3, 0.25, 0.2, 0.15, 0.1."""
    momentum_5d = day.spot / day.spot_5d_ago - 1.0
    factors = (
        min(day.short_interest / 50.0, 1.0),  # 'short_interest', cap at 50 %
        min(day.borrow_cost / 100.0, 1.0),  # 'borrow_cost', cap at 100 %
        min((day.iv_percentile - 50.0) / 50.0, 1.0),  # 'iv_spike', relative to median
        min(day.volume_ratio / 3.0, 1.0),  # 'volume_surge', cap at 3x
        min(momentum_5d / 0.2, 1.0),  # 'price_momentum', cap at 20 %
    )
    weights = (0.3, 0.25, 0.2, 0.15, 0.1)
    return min(sum(f * w for f, w in zip(factors, weights, strict=True)), 0.95)


def buy_hedges(
    book: Book,
    tally: Tally,
    day: MarketDay,
    quotes: DayQuotes,
    cfg: StrategyConfig,
    risk: BookRisk,
    net_premium: float,
) -> None:
    """seed: "Dynamic Hedging Specifications" — calculate_optimal_hedge_ratio() and
    select_hedge_instruments(); seed: "Core 80/20 Distribution" — call_allocation = 0.20."""
    # seed: "Dynamic Hedging Specifications" — base ratio 0.20 times the multipliers below
    multiplier = 1.0
    if day.iv_percentile > cfg.hedge_iv_extreme_percentile:  # 'iv_rank_extreme': 1.5
        multiplier *= cfg.hedge_iv_extreme_mult
    if _squeeze_probability(day) > cfg.hedge_squeeze_threshold:  # 'short_squeeze_risk': 2.0
        multiplier *= cfg.hedge_squeeze_mult
    # 'delta_imbalance': 1.3 — the seed-convention delta of the pre-entry book of this step.
    if risk.delta_seed < cfg.hedge_delta_threshold:
        multiplier *= cfg.hedge_delta_mult
    if day.iv / day.iv_prev > 1.0 + cfg.vol_spike_threshold:  # 'volatility_spike': 1.4
        multiplier *= cfg.hedge_vol_spike_mult
    ratio = min(cfg.hedge_base_ratio * multiplier, cfg.hedge_max_ratio)  # "Cap at 40%"
    budget = ratio * net_premium

    # seed: "Dynamic Hedging Specifications" — "if get_iv_percentile() > 90: Extreme IV - use
    # further OTM calls"
    if day.iv_percentile > cfg.hedge_regime_percentile:
        moneyness, weights = cfg.hedge_high_iv_moneyness, cfg.hedge_high_iv_weights
    else:
        moneyness, weights = cfg.hedge_normal_moneyness, cfg.hedge_normal_weights
    expiry = day.step + cfg.hedge_expiry_steps
    c = cfg.commission
    for m, w in zip(moneyness, weights, strict=True):
        strike = m * day.spot
        fill = quotes.buy_fill(quotes.mid("call", strike, expiry))
        n = floor_contracts(budget * w / (fill * SHARES_PER_CONTRACT + c), cfg)
        if n <= 0.0:
            continue
        book.cash -= fill * SHARES_PER_CONTRACT * n + c * n
        tally.call_hedge_pnl -= fill * SHARES_PER_CONTRACT * n
        tally.transaction_costs -= c * n
        tally.hedge_contracts += n
        call = HedgeCall(
            tranche_step=day.step,
            strike=strike,
            contracts=n,
            price_paid=fill,
            expiry_step=expiry,
        )
        book.hedges.append(call)
        if tally.log is not None:
            tally.log.opened(call, "hedge_call", strike, n, fill, c * n)
