"""Steps 7 and 8 of a day: the book's Greeks, VaR and notionals, and the limits they breach.

seed: "Position Limits & Controls" (position_limits, greek_limits, calculate_portfolio_greeks);
STRATEGY.md "Risk limits". A HIGH breach blocks the day's entry (entry.py); every breach is
counted at the end of the day (day.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from simkit.strategy.config import StrategyConfig
from simkit.strategy.reference.market import MarketDay
from simkit.strategy.reference.quotes import DayQuotes, sleeve_equity
from simkit.strategy.reference.state import HIGH_LIMITS, SHARES_PER_CONTRACT, TRADING_DAYS_PER_YEAR, Book


LIMIT_TOLERANCE = 1e-9  # relative, for a limit met exactly by construction (the strike cap)


@dataclass(frozen=True)
class BookRisk:
    """Risk measures of the book as it stands (seed: "Position Limits & Controls")."""

    delta_seed: float  # contracts, the seed's convention (short or long alike)
    delta_signed: float  # shares-equivalent, short positions count -n
    gamma: float  # signed, per USD^2 (x 100 shares)
    theta: float  # USD per calendar day
    vega: float  # USD per vol point
    rho: float  # USD per 1 % of rate
    var: float  # USD, one-day delta-gamma normal VaR
    notional_puts: float  # USD, sum K * 100 * n
    notional_by_expiry: dict[int, float]
    notional_by_strike: dict[float, float]
    breaches: dict[str, bool]

    @property
    def high_breached(self) -> bool:
        return any(self.breaches[name] for name in HIGH_LIMITS)


def book_risk(
    book: Book, day: MarketDay, quotes: DayQuotes, cfg: StrategyConfig, outside: float
) -> BookRisk:
    """Step 7 (and 8): Greeks, VaR, notionals and the limits they breach.

    seed: "Position Limits & Controls" — RiskManager.position_limits and greek_limits;
    calculate_portfolio_greeks sums greek * quantity over positions (the seed's delta).
    """
    spot = day.spot
    # (kind, strike, expiry, contracts, sign): sign -1 short, +1 long
    options = [("put", p.strike, p.expiry_step, p.contracts, -1.0) for p in book.puts]
    options += [("call", c.strike, c.expiry_step, c.contracts, 1.0) for c in book.hedges]
    if book.covered_call is not None:
        cc = book.covered_call
        options.append(("call", cc.strike, cc.expiry_step, cc.contracts, -1.0))

    delta_seed = book.shares / SHARES_PER_CONTRACT
    delta_signed = book.shares
    gamma = theta = vega = rho = 0.0
    for kind, strike, expiry, n, sign in options:
        v = quotes.value(kind, strike, expiry)
        # STRATEGY.md *(choice)*: seed convention, delta x contracts held, short or long alike.
        delta_seed += v.delta * n
        delta_signed += sign * n * SHARES_PER_CONTRACT * v.delta
        gamma += sign * n * SHARES_PER_CONTRACT * v.gamma
        theta += sign * n * SHARES_PER_CONTRACT * v.theta
        vega += sign * n * SHARES_PER_CONTRACT * v.vega
        rho += sign * n * SHARES_PER_CONTRACT * v.rho

    # STRATEGY.md *(choice)*: one-day delta-gamma normal VaR from the day's IV.
    sd = day.iv / math.sqrt(TRADING_DAYS_PER_YEAR)
    gamma_term = gamma * spot * spot * sd * sd
    mean = 0.5 * gamma_term
    variance = (delta_signed * spot * sd) ** 2 + 0.5 * gamma_term**2
    z = NormalDist().inv_cdf(cfg.var_level)
    var = z * math.sqrt(variance) - mean

    notional = 0.0
    by_expiry: dict[int, float] = {}
    by_strike: dict[float, float] = {}
    for put in book.puts:
        notional += put.notional()
        by_expiry[put.expiry_step] = by_expiry.get(put.expiry_step, 0.0) + put.notional()
        by_strike[put.strike] = by_strike.get(put.strike, 0.0) + put.notional()

    equity = sleeve_equity(book, quotes)
    pv = outside + equity
    # choice: ENGINE_SPEC writes the ratios x / PV > limit; they are tested here as
    # x > limit * PV, the same for PV > 0 (every live path when allocation <= portfolio_value)
    # and defined when PV = 0.
    has_puts = notional > 0.0
    has_options = len(options) > 0
    breaches = {
        # HIGH — seed: 'max_total_strategy_pct': 0.20 "of total portfolio"
        "allocation": notional > cfg.max_total_strategy_pct * pv,
        # HIGH — seed: 'max_leverage': 1.5
        "leverage": has_puts and notional > cfg.max_leverage * equity,
        # HIGH — seed: 'daily_var_limit': 0.02 "2% of portfolio value"
        "var": var > cfg.daily_var_limit * pv,
        # HIGH — seed: 'max_concentration_single_expiration': 0.15
        "expiry": has_puts
        and max(by_expiry.values()) > cfg.max_concentration_single_expiration * equity,
        # MEDIUM — seed: 'max_single_strike_pct': 0.30, strike_pct = allocation / total_notional
        "strike": has_puts
        and max(by_strike.values())
        > cfg.max_single_strike_pct * notional * (1.0 + LIMIT_TOLERANCE),
        # Greek alerts — seed: greek_limits; ENGINE_SPEC *(choice: units in % of PV)*
        "delta": has_options and (delta_seed < cfg.delta_min or delta_seed > cfg.delta_max),
        "gamma": has_options and abs(gamma) * spot * spot > cfg.gamma_alert * pv,
        "theta": has_options and 100.0 * theta < cfg.theta_minimum * pv,
        "vega": has_options and 100.0 * abs(vega) > cfg.vega_limit * pv,
        "rho": has_options and 100.0 * abs(rho) > cfg.rho_limit * pv,
    }
    return BookRisk(
        delta_seed=delta_seed,
        delta_signed=delta_signed,
        gamma=gamma,
        theta=theta,
        vega=vega,
        rho=rho,
        var=var,
        notional_puts=notional,
        notional_by_expiry=by_expiry,
        notional_by_strike=by_strike,
        breaches=breaches,
    )


def limits(
    book: Book, day: MarketDay, quotes: DayQuotes, cfg: StrategyConfig, outside: float
) -> BookRisk:
    """Step 7, first half: limits on the book as it now stands (after exits and covered calls)."""
    return book_risk(book, day, quotes, cfg, outside)
