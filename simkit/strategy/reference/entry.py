"""Step 7 of a day: on an entry step, the signal, the sizing and the sale of a put tranche.

seed: "Entry Conditions", "Strike Selection & Allocation Matrix", "Position Sizing Algorithm",
"Premium Allocation Framework" and the market-impact limits of the "Order Execution Framework";
docs/STRATEGY.md "The put ladder". The tranche's hedge calls are bought with it (hedges.py).
"""

from __future__ import annotations

import math

from simkit.schema.outcomes import (
    CALENDAR_DAYS_PER_YEAR,
    SHARES_PER_CONTRACT,
    TRADING_DAYS_PER_YEAR,
)
from simkit.strategy.config import StrategyConfig
from simkit.strategy.reference.exits import close_all_conditions
from simkit.strategy.reference.hedges import buy_hedges
from simkit.strategy.reference.limits import BookRisk
from simkit.strategy.reference.market import MarketDay
from simkit.strategy.reference.quotes import DayQuotes, floor_contracts, sleeve_equity
from simkit.strategy.reference.state import Book, ShortPut, Tally, required_collateral


def _signal_count(day: MarketDay, cfg: StrategyConfig) -> int:
    """seed: "Entry Conditions" — generate_entry_signal(), the eight conditions."""
    new_put_dte = cfg.put_expiry_steps * CALENDAR_DAYS_PER_YEAR / TRADING_DAYS_PER_YEAR
    conditions = (
        day.iv_percentile > cfg.signal_iv_percentile_min,  # 'iv_percentile' > 75
        day.short_interest > cfg.signal_short_interest_min,  # 'short_interest' > 30
        cfg.signal_dte_min <= new_put_dte <= cfg.signal_dte_max,  # 21 <= DTE <= 45
        day.bid_ask_spread < cfg.signal_spread_max,  # 'bid_ask_spread' < 0.15
        day.open_interest > cfg.signal_open_interest_min,  # 'open_interest' > 50
        day.liquidity_score > cfg.signal_liquidity_min,  # 'liquidity_score' > 7
        day.vix > cfg.signal_vix_min,  # 'vix_environment' > 20
        abs(day.btc_correlation) < cfg.signal_btc_corr_max,  # 'bitcoin_correlation' < 0.9
    )
    return sum(conditions)


def _ladder_strikes(day: MarketDay, cfg: StrategyConfig) -> list[float]:
    """seed: "Strike Selection & Allocation Matrix" — K = [2.0, 2.5, 3.0, 4.0, 5.0]."""
    if cfg.strike_mode == "fixed":
        return [float(k) for k in cfg.strikes]
    # docs/STRATEGY.md *(choice)*: moneyness mode re-centres the ladder, half-up to the grid.
    grid = cfg.strike_grid
    return [
        max(math.floor(k * day.spot / cfg.reference_spot / grid + 0.5) * grid, grid)
        for k in cfg.strikes
    ]


def entry(
    book: Book,
    tally: Tally,
    day: MarketDay,
    quotes: DayQuotes,
    cfg: StrategyConfig,
    risk: BookRisk,
) -> bool:
    """Step 7, second half: on an entry step, sell a tranche of puts and buy its hedge calls.

    Returns True when a tranche was sold (the book changed).
    """
    t = day.step
    if t % cfg.entry_every_days != 0:
        return False
    tally.n_entry_days += 1
    # seed: "Entry Conditions" — "Require 6 of 8 conditions for entry"
    if _signal_count(day, cfg) < cfg.signal_min_conditions:
        tally.n_blocked_signal += 1
        return False
    # docs/STRATEGY.md "Risk Limits": no new tranche while a HIGH-severity limit is breached.
    if cfg.enforce_limits and risk.high_breached:
        tally.n_blocked_limits += 1
        return False
    # docs/STRATEGY.md "Exits": a close-all exit condition (thesis, liquidity, IV) stops new
    # entries.
    if any(close_all_conditions(book, day, cfg).values()):
        tally.n_blocked_exit += 1
        return False

    contracts_by_rung = _size_tranche(book, tally, day, quotes, cfg, risk)
    net_premium = _sell_tranche(book, tally, day, quotes, cfg, contracts_by_rung)
    if not any(n > 0.0 for n in contracts_by_rung):
        return False
    tally.n_tranches += 1
    if cfg.hedges and net_premium > 0.0:
        buy_hedges(book, tally, day, quotes, cfg, risk, net_premium)
    return True


def _size_tranche(
    book: Book,
    tally: Tally,
    day: MarketDay,
    quotes: DayQuotes,
    cfg: StrategyConfig,
    risk: BookRisk,
) -> list[float]:
    """Contracts per rung (ENGINE_SPEC step 7 "Sizing").

    seed: "Position Sizing Algorithm" and "Premium Allocation Framework": free collateral backs
    new puts (the 80 % reinvested); capped by 'max_concentration_single_expiration' (15 %) and
    'max_single_strike_pct' (30 %); then the "market_impact_limits" of the Order Execution
    Framework cut it to 20 % of daily volume and 10 % of open interest.
    """
    equity = sleeve_equity(book, quotes)
    # seed: "Premium Allocation Framework" — the premium kept (80 %) backs new puts as free
    # collateral; seed: "Position Limits & Controls" — 'max_concentration_single_expiration'
    free = book.cash - required_collateral(book, cfg)
    budget = max(
        min(free, cfg.max_concentration_single_expiration * equity / cfg.max_leverage), 0.0
    )
    strikes = _ladder_strikes(day, cfg)
    planned_contracts = [
        budget * w / (k * SHARES_PER_CONTRACT / cfg.max_leverage)
        for k, w in zip(strikes, cfg.weights, strict=True)
    ]
    planned_notional = sum(
        x * k * SHARES_PER_CONTRACT for x, k in zip(planned_contracts, strikes, strict=True)
    )
    capacity = floor_contracts(
        min(
            cfg.max_volume_participation * day.option_volume,
            cfg.max_open_interest_pct * day.open_interest,
        ),
        cfg,
    )
    contracts: list[float] = []
    for x, k in zip(planned_contracts, strikes, strict=True):
        # docs/STRATEGY.md caps per strike (and the tranche's one expiry): rungs of one tranche that
        # share a strike value (moneyness mode at a low spot) share its allowances, which go
        # to the rungs in ladder order. What the earlier rungs at this strike sold (after
        # their flooring and capacity cut) is taken off the strike cap and the capacity.
        sold_here = 0.0  # contracts
        sold_notional = 0.0  # USD
        for k_before, n_before in zip(strikes, contracts, strict=False):
            if k_before == k:
                sold_here += n_before
                sold_notional += n_before * k_before * SHARES_PER_CONTRACT
        # seed: "Position Limits & Controls" — 'max_single_strike_pct': 0.30 of the notional
        open_at_strike = risk.notional_by_strike.get(k, 0.0)
        room = max(
            cfg.max_single_strike_pct * (risk.notional_puts + planned_notional)
            - open_at_strike
            - sold_notional,
            0.0,
        )
        x = min(x, room / (k * SHARES_PER_CONTRACT))
        n = floor_contracts(x, cfg)
        # seed: "Order Execution Framework" — market_impact_limits: volume and open interest
        if cfg.capacity_limits:
            capacity_left = max(capacity - sold_here, 0.0)
            if n > capacity_left:
                tally.contracts_cut += n - capacity_left
                tally.n_orders_cut += 1
                n = capacity_left
        contracts.append(n)
    return contracts


def _sell_tranche(
    book: Book,
    tally: Tally,
    day: MarketDay,
    quotes: DayQuotes,
    cfg: StrategyConfig,
    contracts_by_rung: list[float],
) -> float:
    """Sell each rung at the sell fill; returns the tranche's net premium P (USD)."""
    strikes = _ladder_strikes(day, cfg)
    expiry = day.step + cfg.put_expiry_steps
    net_premium = 0.0
    for rung, (k, n) in enumerate(zip(strikes, contracts_by_rung, strict=True)):
        if n <= 0.0:
            continue
        premium = quotes.sell_fill(quotes.mid("put", k, expiry))
        proceeds = premium * SHARES_PER_CONTRACT * n - cfg.commission * n
        book.cash += proceeds
        tally.transaction_costs -= cfg.commission * n
        net_premium += proceeds
        put = ShortPut(
            tranche_step=day.step,
            rung=rung,
            strike=k,
            contracts=n,
            premium=premium,
            expiry_step=expiry,
        )
        book.puts.append(put)
        if tally.log is not None:
            tally.log.opened(
                put, "short_put", k, n, premium, cfg.commission * n, put.collateral(cfg)
            )
    return net_premium
