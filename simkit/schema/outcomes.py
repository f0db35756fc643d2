"""The names of what the strategy produces, declared once: how a trade ends, the risk limits
and their severity, the P&L attribution buckets, the market inputs, the calendar.

Both engines, the reductions, the stress analysis and the reports read these names from here
(the engines share names, never arithmetic or the exits' urgency order, which each engine
writes on its own). Per-path counters are derived from the names (`trade_end_counter`), and the
JAX engine's integer close codes are derived from the order of `TRADE_ENDS` (`CLOSE_CODES`):
adding an exit means adding one `TradeEnd` here, never shifting integer literals.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "ADDITION_EVERY_DAYS",
    "BOUGHT_BACK",
    "BUCKETS",
    "CALENDAR_DAYS_PER_YEAR",
    "CLOSE_CODES",
    "CLOSE_COUNTERS",
    "CLOSE_REASONS",
    "HIGH_LIMITS",
    "LIMITS",
    "LIMIT_NAMES",
    "MARKET_INPUTS",
    "SHARES_PER_CONTRACT",
    "TRADE_ENDS",
    "TRADE_KINDS",
    "TRADE_LOG_ENDS",
    "TRADING_DAYS_PER_YEAR",
    "UNDERLYING",
    "Limit",
    "TradeEnd",
    "trade_end_counter",
]

# --------------------------------------------------------------------------- calendar

TRADING_DAYS_PER_YEAR = 252  # one step is one trading day (docs/STRATEGY.md "Time and units")
CALENDAR_DAYS_PER_YEAR = 365  # option clocks are in calendar days
SHARES_PER_CONTRACT = 100  # contract multiplier
ADDITION_EVERY_DAYS = 21  # monthly additions are paid every 21 trading days


# --------------------------------------------------------------------------- trades


class TradeEnd(NamedTuple):
    """How a short-put trade ends."""

    name: str  # "profit", "expired_otm", ...
    how: str  # "bought_back" (at the purchase fill), "expired" or "assigned" (at the spot)
    seed: str  # the seed section (or docs/STRATEGY.md's rule) behind it


TRADE_ENDS = (
    TradeEnd("profit", "bought_back", 'seed "Exit Conditions": profit-take at 50 % of premium'),
    TradeEnd("stop", "bought_back", 'seed "Exit Conditions": stop-loss at -200 % of premium'),
    TradeEnd("time", "bought_back", 'seed "Exit Conditions": fewer than 7 calendar days left'),
    TradeEnd("liquidity", "bought_back", 'seed "Exit Conditions": spread above 0.25'),
    TradeEnd("iv", "bought_back", 'seed "Exit Conditions": IV percentile below 30'),
    TradeEnd("thesis", "bought_back", 'seed "Exit Conditions": thesis check fails'),
    TradeEnd(
        "assignment_risk",
        "bought_back",
        'seed "Assignment Management Protocol": early-assignment score >= 5',
    ),
    TradeEnd("margin", "bought_back", "docs/STRATEGY.md Ruin: a margin call buys every put back"),
    TradeEnd("ruin", "bought_back", "docs/STRATEGY.md Ruin: equity <= 0 liquidates the book"),
    TradeEnd(
        "expired_otm", "expired", "docs/STRATEGY.md Expiry: out of the money, kept the premium"
    ),
    TradeEnd("assigned_expiry", "assigned", 'seed "Assignment Management Protocol": at expiry'),
    TradeEnd("assigned_early", "assigned", "docs/STRATEGY.md Early exercise: BS value < intrinsic"),
)


def trade_end_counter(name: str) -> str:
    """The per-path counter of trades ending by `name`: `n_close_<name>` for a buy-back,
    `n_<name>` for an expiry or an assignment."""
    end = next(e for e in TRADE_ENDS if e.name == name)
    return f"n_close_{name}" if end.how == "bought_back" else f"n_{name}"


CLOSE_REASONS = tuple(e.name for e in TRADE_ENDS)  # the reporting order
CLOSE_COUNTERS = tuple(trade_end_counter(r) for r in CLOSE_REASONS)
# The JAX engine's `put_closed` codes: 0 while open, then 1, 2, ... in `TRADE_ENDS` order, so
# buy-backs, expiries and assignments each take one contiguous range.
CLOSE_CODES = {counter: code for code, counter in enumerate(CLOSE_COUNTERS, start=1)}
BOUGHT_BACK = tuple(
    CLOSE_CODES[trade_end_counter(e.name)] for e in TRADE_ENDS if e.how == "bought_back"
)
EXPIRED = tuple(CLOSE_CODES[trade_end_counter(e.name)] for e in TRADE_ENDS if e.how == "expired")
ASSIGNED = tuple(CLOSE_CODES[trade_end_counter(e.name)] for e in TRADE_ENDS if e.how == "assigned")


# The trade log (`simkit run --trades N`, `simkit.trade_log`) records every position of a
# path, not only the short puts: the kinds of position, and the ends a position other than a
# short put can have beyond `TRADE_ENDS` (a short put's end is always one of `TRADE_ENDS`, or
# "open"). Names only: the log never feeds back into either engine.
TRADE_KINDS = ("short_put", "hedge_call", "covered_call", "shares")
TRADE_LOG_ENDS = (
    TradeEnd(
        "expired_itm", "expired", "docs/STRATEGY.md Hedges: a long call pays its intrinsic value"
    ),
    TradeEnd(
        "called_away", "assigned", "docs/STRATEGY.md Expiry: shares delivered on a covered call"
    ),
    TradeEnd("open", "open", "still held at the horizon, marked at the day's mid (shares: spot)"),
)


# --------------------------------------------------------------------------- risk limits


class Limit(NamedTuple):
    """One risk limit of the seed's "Risk Management Framework"."""

    name: str
    severity: str  # "HIGH" blocks new tranches while breached; "MEDIUM" and "ALERT" count
    rule: str  # what breaches it, in words (docs/STRATEGY.md "Risk limits")


LIMITS = (
    Limit("allocation", "HIGH", "short-put notional over portfolio value > 20 %"),
    Limit("leverage", "HIGH", "short-put notional over sleeve equity > 1.5"),
    Limit("var", "HIGH", "one-day 99 % VaR of the sleeve > 2 % of portfolio value"),
    Limit("expiry", "HIGH", "one expiry's notional > 15 % of sleeve capital"),
    Limit("strike", "MEDIUM", "one strike > 30 % of short-put notional"),
    Limit("delta", "ALERT", "portfolio delta (seed convention) outside (-70, -30) contracts"),
    Limit("gamma", "ALERT", "dollar gamma above the seed's alert"),
    Limit("theta", "ALERT", "theta income below the seed's minimum"),
    Limit("vega", "ALERT", "|vega| above the seed's limit"),
    Limit("rho", "ALERT", "|rho| above the seed's limit"),
)
LIMIT_NAMES = tuple(limit.name for limit in LIMITS)
HIGH_LIMITS = tuple(limit.name for limit in LIMITS if limit.severity == "HIGH")


# --------------------------------------------------------------------------- attribution

# The seed's six attribution buckets plus covered-call income; they sum to the path's P&L.
BUCKETS = (
    "premium_income",
    "assignment_pnl",
    "call_hedge_pnl",
    "mark_to_market",
    "transaction_costs",
    "financing",
    "covered_call_pnl",
)


# --------------------------------------------------------------------------- the underlying

# What the stock itself did on a path, beside what the sleeve made (each engine computes them
# from the day's spots on its own): the spot at the horizon S_N and the lowest spot of steps
# 0 ... N (USD), the annualized realized volatility sqrt(252 * mean(r_t^2)) of the daily log
# returns r_t = ln(S_t / S_{t-1}), t = 1 ... N (zero-mean: the convention of variance swaps
# and of the market models' sigma; NaN for a horizon of 0 steps), and S_N / S_0 - 1.
UNDERLYING = ("spot_final", "spot_min", "realized_vol", "underlying_return")


# --------------------------------------------------------------------------- market inputs

# The daily inputs of a market path, in `simkit.paths.market.Market`'s order (a test keeps the
# two equal): what `simkit.simulate_paths` accepts and the engines read.
MARKET_INPUTS = (
    "spot",
    "iv",
    "short_interest",
    "vix",
    "btc_correlation",
    "bid_ask_spread",
    "open_interest",
    "option_volume",
    "liquidity_score",
    "borrow_cost",
    "volume_ratio",
    "thesis_event",
    "jump",
    "early_u",
)
