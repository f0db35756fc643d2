"""Steps 7 and 8 of a day: the book's Greeks, VaR and notionals, and the limits they breach.

seed: "Position Limits & Controls" (position_limits, greek_limits, calculate_portfolio_greeks);
docs/STRATEGY.md "Risk limits". A HIGH breach blocks the day's entry (entry.py); every breach is
counted at the end of the day (day.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from simkit.schema.outcomes import HIGH_LIMITS, SHARES_PER_CONTRACT, TRADING_DAYS_PER_YEAR
from simkit.strategy.config import StrategyConfig
from simkit.strategy.reference.market import MarketDay
from simkit.strategy.reference.quotes import DayQuotes, sleeve_equity
from simkit.strategy.reference.state import Book

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


@dataclass(frozen=True)
class BookGreeks:
    """The book's Greeks, options and shares together (seed units: see pricing.OptionValue)."""

    delta_seed: float  # contracts, the seed's convention (short or long alike)
    delta_signed: float  # shares-equivalent, short positions count -n
    gamma: float  # signed, per USD^2 (x 100 shares)
    theta: float  # USD per calendar day
    vega: float  # USD per vol point
    rho: float  # USD per 1 % of rate


def _open_options(book: Book) -> list[tuple[str, float, int, float, float]]:
    """Every open option as (kind, strike, expiry, contracts, sign): sign -1 short, +1 long."""
    options = [("put", p.strike, p.expiry_step, p.contracts, -1.0) for p in book.puts]
    options += [("call", c.strike, c.expiry_step, c.contracts, 1.0) for c in book.hedges]
    if book.covered_call is not None:
        cc = book.covered_call
        options.append(("call", cc.strike, cc.expiry_step, cc.contracts, -1.0))
    return options


def _greeks(
    book: Book, options: list[tuple[str, float, int, float, float]], quotes: DayQuotes
) -> BookGreeks:
    """seed: "Position Limits & Controls" — calculate_portfolio_greeks: greek * quantity, summed."""
    delta_seed = book.shares / SHARES_PER_CONTRACT
    delta_signed = book.shares
    gamma = theta = vega = rho = 0.0
    for kind, strike, expiry, n, sign in options:
        v = quotes.value(kind, strike, expiry)
        # docs/STRATEGY.md *(choice)*: seed convention, delta x contracts held, short or long alike.
        delta_seed += v.delta * n
        delta_signed += sign * n * SHARES_PER_CONTRACT * v.delta
        gamma += sign * n * SHARES_PER_CONTRACT * v.gamma
        theta += sign * n * SHARES_PER_CONTRACT * v.theta
        vega += sign * n * SHARES_PER_CONTRACT * v.vega
        rho += sign * n * SHARES_PER_CONTRACT * v.rho
    return BookGreeks(delta_seed, delta_signed, gamma, theta, vega, rho)


def _delta_gamma_var(greeks: BookGreeks, day: MarketDay, cfg: StrategyConfig) -> float:
    """USD, the one-day VaR at cfg.var_level (seed: 'daily_var_limit')."""
    # docs/STRATEGY.md *(choice)*: one-day delta-gamma normal VaR from the day's IV.
    spot = day.spot
    gamma = greeks.gamma
    sd = day.iv / math.sqrt(TRADING_DAYS_PER_YEAR)
    gamma_term = gamma * spot * spot * sd * sd
    mean = 0.5 * gamma_term
    variance = (greeks.delta_signed * spot * sd) ** 2 + 0.5 * gamma_term**2
    z = NormalDist().inv_cdf(cfg.var_level)
    return z * math.sqrt(variance) - mean


def _put_notionals(book: Book) -> tuple[float, dict[int, float], dict[float, float]]:
    """USD, K * 100 * n of the short puts: in all, by expiry step, by strike."""
    notional = 0.0
    by_expiry: dict[int, float] = {}
    by_strike: dict[float, float] = {}
    for put in book.puts:
        notional += put.notional()
        by_expiry[put.expiry_step] = by_expiry.get(put.expiry_step, 0.0) + put.notional()
        by_strike[put.strike] = by_strike.get(put.strike, 0.0) + put.notional()
    return notional, by_expiry, by_strike


def _position_breaches(
    cfg: StrategyConfig,
    var: float,
    notional: float,
    by_expiry: dict[int, float],
    by_strike: dict[float, float],
    equity: float,
    pv: float,
) -> dict[str, bool]:
    """The HIGH limits and the MEDIUM strike limit (seed: "Position Limits & Controls")."""
    # choice: ENGINE_SPEC writes the ratios x / PV > limit; they are tested here as
    # x > limit * PV, the same for PV > 0 (every live path when allocation <= portfolio_value)
    # and defined when PV = 0.
    has_puts = notional > 0.0
    return {
        # seed: "Position Limits & Controls" — 'max_total_strategy_pct': 0.20 of PV (HIGH)
        "allocation": notional > cfg.max_total_strategy_pct * pv,
        # seed: "Position Limits & Controls" — 'max_leverage': 1.5 (HIGH)
        "leverage": has_puts and notional > cfg.max_leverage * equity,
        # seed: "Position Limits & Controls" — 'daily_var_limit': 0.02 of PV (HIGH)
        "var": var > cfg.daily_var_limit * pv,
        # seed: "Position Limits & Controls" — 'max_concentration_single_expiration' (HIGH)
        "expiry": has_puts
        and max(by_expiry.values()) > cfg.max_concentration_single_expiration * equity,
        # seed: "Position Limits & Controls" — 'max_single_strike_pct': strike_pct (MEDIUM)
        "strike": has_puts
        and max(by_strike.values())
        > cfg.max_single_strike_pct * notional * (1.0 + LIMIT_TOLERANCE),
    }


def _greek_alerts(
    cfg: StrategyConfig, greeks: BookGreeks, spot: float, pv: float, has_options: bool
) -> dict[str, bool]:
    """The Greek limits: counted alerts, never blocking (docs/STRATEGY.md "Risk limits")."""
    delta_seed, gamma = greeks.delta_seed, greeks.gamma
    theta, vega, rho = greeks.theta, greeks.vega, greeks.rho
    # seed: "Position Limits & Controls" — greek_limits; ENGINE_SPEC *(choice: units, % of PV)*
    return {
        "delta": has_options and (delta_seed < cfg.delta_min or delta_seed > cfg.delta_max),
        "gamma": has_options and abs(gamma) * spot * spot > cfg.gamma_alert * pv,
        "theta": has_options and 100.0 * theta < cfg.theta_minimum * pv,
        "vega": has_options and 100.0 * abs(vega) > cfg.vega_limit * pv,
        "rho": has_options and 100.0 * abs(rho) > cfg.rho_limit * pv,
    }


def book_risk(
    book: Book, day: MarketDay, quotes: DayQuotes, cfg: StrategyConfig, outside: float
) -> BookRisk:
    """Step 7 (and 8): Greeks, VaR, notionals and the limits they breach.

    seed: "Position Limits & Controls" — RiskManager.position_limits and greek_limits;
    calculate_portfolio_greeks sums greek * quantity over positions (the seed's delta).
    """
    options = _open_options(book)
    greeks = _greeks(book, options, quotes)
    var = _delta_gamma_var(greeks, day, cfg)
    notional, by_expiry, by_strike = _put_notionals(book)
    equity = sleeve_equity(book, quotes)
    pv = outside + equity
    breaches = {
        **_position_breaches(cfg, var, notional, by_expiry, by_strike, equity, pv),
        **_greek_alerts(cfg, greeks, day.spot, pv, has_options=len(options) > 0),
    }
    return BookRisk(
        delta_seed=greeks.delta_seed,
        delta_signed=greeks.delta_signed,
        gamma=greeks.gamma,
        theta=greeks.theta,
        vega=greeks.vega,
        rho=greeks.rho,
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
