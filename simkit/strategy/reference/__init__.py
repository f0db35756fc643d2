"""Scalar reference engine: the seed strategy, one path at a time, in plain Python.

This module is the slow, obviously-correct twin of the vectorized JAX engine. It shares nothing
with it but the parameter record (``simkit.strategy.config.StrategyConfig``) and the written
contract (``docs/ENGINE_SPEC.md``, which fixes the arithmetic of one day; ``../shared/STRATEGY.md``
fixes what each rule means). Positions are small dataclasses in lists, one function per step of
the day, floats are Python float64. Every rule cites the seed section it comes from, so a reviewer
can check it against the seed sentence by sentence; ``# choice:`` marks a reading made here where
the spec is silent.

Public entry points:
    simulate_path(path, cfg, mkt)    -> dict     one path, inputs of length N + 1
    simulate_paths(market, cfg, mkt) -> dict     (P, N + 1) arrays in, stacked summaries out

``mkt`` is any object with float attributes ``rate``, ``iv_long_run``, ``kappa`` and ``eta``
(in the project: ``simkit.paths.market.MarketParams``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from simkit.strategy.config import StrategyConfig

TRADING_DAYS_PER_YEAR = 252  # one step is one trading day
CALENDAR_DAYS_PER_YEAR = 365  # option clocks are in calendar days
SHARES_PER_CONTRACT = 100  # contract multiplier

# The inputs of one path (ENGINE_SPEC "Inputs"), each of length N + 1.
INPUT_NAMES = (
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
    "early_u",
)

LIMIT_NAMES = (
    "allocation",
    "leverage",
    "var",
    "expiry",
    "strike",
    "delta",
    "gamma",
    "theta",
    "vega",
    "rho",
)
HIGH_LIMITS = ("allocation", "leverage", "var", "expiry")

CLOSE_REASONS = (
    "profit",
    "stop",
    "time",
    "liquidity",
    "iv",
    "thesis",
    "assignment_risk",
    "margin",
    "ruin",
)

FLOAT_FIELDS = (
    "initial_equity",
    "final_equity",
    "final_portfolio_value",
    "contributions",
    "premium_income",
    "assignment_pnl",
    "call_hedge_pnl",
    "mark_to_market",
    "transaction_costs",
    "financing",
    "covered_call_pnl",
    "sum_win_ret",
    "sum_win_ret_sq",
    "sum_loss_ret",
    "sum_loss_ret_sq",
    "hedge_contracts",
    "contracts_cut",
    # choice: share counts are floats, because with fractional contracts (whole_contracts =
    # False) an assignment of n contracts gives 100 n shares, not a whole number.
    "shares_assigned",
    "shares_called_away",
)
INT_FIELDS = (
    "n_trades",
    "n_wins",
    *(f"n_close_{reason}" for reason in CLOSE_REASONS),
    "n_close_profit_loss",
    "n_expired_otm",
    "n_assigned_expiry",
    "n_assigned_early",
    "n_cc_sold",
    "n_tranches",
    "n_entry_days",
    "n_blocked_signal",
    "n_blocked_limits",
    "n_blocked_exit",
    "n_orders_cut",
    "n_margin_calls",
    "ruined",
    "ruin_step",
    *(f"breach_{name}" for name in LIMIT_NAMES),
    *(f"first_breach_{name}" for name in LIMIT_NAMES),
)


# --------------------------------------------------------------------------------------------
# Black-Scholes (seed: "Black-Scholes Foundation" and "Greeks Calculations")
# --------------------------------------------------------------------------------------------


def norm_cdf(x: float) -> float:
    """Standard normal CDF, through erfc (accurate in both tails)."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def norm_pdf(x: float) -> float:
    """Standard normal density (0 at +-inf)."""
    if math.isinf(x):
        return 0.0
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class OptionValue:
    """Black-Scholes price and Greeks of one option, per share, in the seed's units."""

    price: float  # USD per share
    delta: float  # dPrice/dS (negative for puts)
    gamma: float  # d2Price/dS2
    theta: float  # USD per calendar day (seed: theta / 365)
    vega: float  # USD per vol point (seed: vega / 100)
    rho: float  # USD per 1 % of rate (seed: rho / 100)


def black_scholes(
    kind: str, spot: float, strike: float, years: float, rate: float, vol: float
) -> OptionValue:
    """European put or call on a non-dividend stock (seed: q = 0 — "ASST pays no dividends").

    Args:
        kind: "put" or "call".
        spot, strike: USD per share.
        years: time to expiry in years (steps_left / 252).
        rate: continuously compounded, annual.
        vol: implied volatility, annual fraction (4.25 = 425 %).
    At years <= 0 the value is the intrinsic value (the T -> 0 limit); with zero total
    volatility or zero spot it is the discounted-forward intrinsic value (the sigma -> 0 limit).
    """
    # choice: ENGINE_SPEC is silent on these degenerate inputs; open options always have
    # steps_left >= 1, so only a zero spot or a zero IV in the inputs can reach them.
    if kind not in ("put", "call"):
        raise ValueError(f"kind: must be 'put' or 'call', got {kind!r}")
    if years <= 0.0:
        if kind == "put":
            itm = strike > spot
            return OptionValue(max(strike - spot, 0.0), -1.0 if itm else 0.0, 0.0, 0.0, 0.0, 0.0)
        itm = spot > strike
        return OptionValue(max(spot - strike, 0.0), 1.0 if itm else 0.0, 0.0, 0.0, 0.0, 0.0)

    sqrt_t = math.sqrt(years)
    vol_sqrt_t = vol * sqrt_t
    discount = math.exp(-rate * years)
    if spot <= 0.0 or vol_sqrt_t <= 0.0:
        # Deterministic limit: d1 = d2 = +-inf by the sign of the forward moneyness.
        forward_moneyness = -math.inf if spot <= 0.0 else math.log(spot / strike) + rate * years
        d1 = d2 = math.inf if forward_moneyness > 0.0 else -math.inf
        pdf_d1 = 0.0
        gamma = 0.0
    else:
        d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * years) / vol_sqrt_t
        d2 = d1 - vol_sqrt_t
        pdf_d1 = norm_pdf(d1)
        gamma = pdf_d1 / (spot * vol_sqrt_t)
    vega_annual = spot * pdf_d1 * sqrt_t
    decay = -spot * pdf_d1 * vol / (2.0 * sqrt_t)  # the theta term both kinds share
    if kind == "put":
        # seed: Put = K e^{-rT} N(-d2) - S N(-d1)
        price = strike * discount * norm_cdf(-d2) - spot * norm_cdf(-d1)
        delta = -norm_cdf(-d1)
        theta_annual = decay + rate * strike * discount * norm_cdf(-d2)
        rho_annual = -strike * years * discount * norm_cdf(-d2)
    else:
        price = spot * norm_cdf(d1) - strike * discount * norm_cdf(d2)
        delta = norm_cdf(d1)
        theta_annual = decay - rate * strike * discount * norm_cdf(d2)
        rho_annual = strike * years * discount * norm_cdf(d2)
    # seed: "Greeks Calculations" — 'theta': theta/365, 'vega': vega/100, 'rho': rho/100
    return OptionValue(
        price=price,
        delta=delta,
        gamma=gamma,
        theta=theta_annual / CALENDAR_DAYS_PER_YEAR,
        vega=vega_annual / 100.0,
        rho=rho_annual / 100.0,
    )


# --------------------------------------------------------------------------------------------
# Positions and the book
# --------------------------------------------------------------------------------------------


@dataclass
class ShortPut:
    """One (tranche, rung) short put: one trade from sale to close, expiry or assignment."""

    tranche_step: int  # step of the sale
    rung: int  # index into cfg.strikes (0..4 at the defaults)
    strike: float  # USD
    contracts: float  # > 0 (whole unless cfg.whole_contracts is False)
    premium: float  # USD per share, the sale fill ("premium received")
    expiry_step: int  # step on which it settles

    def collateral(self, cfg: StrategyConfig) -> float:
        """USD tied up: K * 100 * n / max_leverage (STRATEGY.md "Capital")."""
        return self.strike * SHARES_PER_CONTRACT * self.contracts / cfg.max_leverage

    def notional(self) -> float:
        """USD: K * 100 * n."""
        return self.strike * SHARES_PER_CONTRACT * self.contracts


@dataclass
class HedgeCall:
    """Long call bought with a tranche's hedge budget, held to expiry."""

    tranche_step: int
    strike: float  # USD (m_j * S at purchase, not rounded)
    contracts: float
    price_paid: float  # USD per share, the purchase fill
    expiry_step: int


@dataclass
class CoveredCall:
    """The one short call written on assigned shares."""

    strike: float  # USD, on the $0.50 grid
    contracts: float  # whole
    premium: float  # USD per share, the sale fill
    expiry_step: int


@dataclass
class Book:
    """Everything the sleeve holds on one path."""

    cash: float  # USD, sleeve cash (may go negative after an assignment)
    puts: list[ShortPut] = field(default_factory=list)
    hedges: list[HedgeCall] = field(default_factory=list)
    covered_call: CoveredCall | None = None
    shares: float = 0.0  # shares held (from assignments)
    basis: float = 0.0  # USD per share, the seed's effective cost basis K - premium
    thesis_latch: bool = False  # a thesis-break event has happened
    ruined: bool = False
    ruin_step: int = -1


@dataclass
class Tally:
    """Running sums and counters of one path (the per-path summary, before packing)."""

    n_strikes: int
    contributions: float = 0.0
    # seed: "Performance Attribution System" — six buckets, plus covered-call income
    premium_income: float = 0.0
    assignment_pnl: float = 0.0
    call_hedge_pnl: float = 0.0
    mark_to_market: float = 0.0
    transaction_costs: float = 0.0
    financing: float = 0.0
    covered_call_pnl: float = 0.0
    # Kelly inputs (ENGINE_SPEC "Trades and Kelly inputs")
    n_trades: int = 0
    n_wins: int = 0
    sum_win_ret: float = 0.0
    sum_win_ret_sq: float = 0.0
    sum_loss_ret: float = 0.0
    sum_loss_ret_sq: float = 0.0
    closes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLOSE_REASONS, 0))
    n_close_profit_loss: int = 0
    n_expired_otm: int = 0
    n_assigned_expiry: int = 0
    n_assigned_early: int = 0
    assigned_by_rung: list[int] = field(default_factory=list)
    shares_assigned: float = 0.0
    shares_called_away: float = 0.0
    n_cc_sold: int = 0
    hedge_contracts: float = 0.0
    n_tranches: int = 0
    n_entry_days: int = 0
    n_blocked_signal: int = 0
    n_blocked_limits: int = 0
    n_blocked_exit: int = 0
    contracts_cut: float = 0.0
    n_orders_cut: int = 0
    n_margin_calls: int = 0
    breach_days: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LIMIT_NAMES, 0))
    first_breach: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LIMIT_NAMES, -1))
    equity: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.assigned_by_rung = [0] * self.n_strikes


# --------------------------------------------------------------------------------------------
# One day of market data, and the day's quotes
# --------------------------------------------------------------------------------------------


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
    """Percentile of ln IV in the stationary law of the log-OU process (STRATEGY.md *(choice)*).

    p = 100 * Phi((ln iv - ln iv_long_run) / (eta / sqrt(2 kappa))).
    """
    stationary_sd = mkt.eta / math.sqrt(2.0 * mkt.kappa)
    return 100.0 * norm_cdf((math.log(iv) - math.log(mkt.iv_long_run)) / stationary_sd)


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


class DayQuotes:
    """Model quotes and fills of step t (STRATEGY.md "Pricing", "Fills").

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
            # seed: 'price_improvement_target': 0.05 — "Seek $0.05 better than mid"
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
LIMIT_TOLERANCE = 1e-9  # relative, for a limit met exactly by construction (the strike cap)


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


def required_collateral(book: Book, cfg: StrategyConfig) -> float:
    """R = sum of the open puts' collateral (STRATEGY.md "Capital": cash-secured with margin)."""
    return sum(put.collateral(cfg) for put in book.puts)


# --------------------------------------------------------------------------------------------
# Trades: closing, expiring, assigning a short put
# --------------------------------------------------------------------------------------------


def _record_trade(tally: Tally, put: ShortPut, pnl: float, cfg: StrategyConfig) -> None:
    """One finished trade into the Kelly inputs (seed: "Kelly Criterion Implementation").

    Win = P&L > 0; its return is P&L over the collateral the trade tied up.
    """
    ret = pnl / put.collateral(cfg)
    tally.n_trades += 1
    if pnl > 0.0:
        tally.n_wins += 1
        tally.sum_win_ret += ret
        tally.sum_win_ret_sq += ret * ret
    else:
        tally.sum_loss_ret += -ret
        tally.sum_loss_ret_sq += ret * ret


def _close_put(
    book: Book, tally: Tally, put: ShortPut, quotes: DayQuotes, reason: str, cfg: StrategyConfig
) -> None:
    """Buy a short put back at the buy fill (STRATEGY.md "Exits": "bought back at the fill price")."""
    c = cfg.commission
    n = put.contracts
    fill = quotes.buy_fill(quotes.mid("put", put.strike, put.expiry_step))
    book.cash -= fill * SHARES_PER_CONTRACT * n + c * n
    tally.transaction_costs -= c * n
    tally.premium_income += (put.premium - fill) * SHARES_PER_CONTRACT * n
    # Trade P&L includes both commissions (sale and buy-back).
    pnl = (put.premium - fill) * SHARES_PER_CONTRACT * n - 2.0 * c * n
    _record_trade(tally, put, pnl, cfg)
    tally.closes[reason] += 1
    if reason == "profit" and pnl <= 0.0:
        # seed: "Exit Conditions" profit-take at 50 % of premium: at the mid, not after the
        # spread and two commissions, so a cheap put's "profit" can lose money
        tally.n_close_profit_loss += 1
    book.puts.remove(put)


def _assign_put(
    book: Book, tally: Tally, put: ShortPut, spot: float, early: bool, cfg: StrategyConfig
) -> None:
    """Assignment: buy 100 n shares at K (seed: "Assignment Management Protocol").

    seed: effective_cost_basis = strike_price - premium_collected; with several assignments the
    basis is the share-weighted mean (STRATEGY.md "Expiry, assignment, covered calls").
    """
    n = put.contracts
    new_shares = SHARES_PER_CONTRACT * n
    new_basis = put.strike - put.premium
    total = book.shares + new_shares
    book.basis = (book.shares * book.basis + new_shares * new_basis) / total
    book.shares = total
    book.cash -= put.strike * new_shares
    tally.premium_income += put.premium * new_shares
    tally.assignment_pnl += (spot - put.strike) * new_shares
    # Trade result premium - (K - S) per share, less the sale commission (none on assignment).
    pnl = (put.premium - (put.strike - spot)) * new_shares - cfg.commission * n
    _record_trade(tally, put, pnl, cfg)
    if early:
        tally.n_assigned_early += 1
    else:
        tally.n_assigned_expiry += 1
    tally.assigned_by_rung[put.rung] += 1
    tally.shares_assigned += new_shares
    book.puts.remove(put)


# --------------------------------------------------------------------------------------------
# The day, step by step (ENGINE_SPEC "A day, step t = 0 ... N")
# --------------------------------------------------------------------------------------------


def _accrue(
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
        # seed: fundamental_thesis_changed() — get_merger_status() == 'CANCELLED', adverse
        # regulation: an event latches the thesis as broken for the rest of the path.
        book.thesis_latch = True


def _settle_expiries(book: Book, tally: Tally, day: MarketDay, cfg: StrategyConfig) -> None:
    """Step 2: options whose expiry step is today settle on today's spot."""
    t, spot = day.step, day.spot
    for put in [p for p in book.puts if p.expiry_step == t]:
        if put.strike > spot:
            # seed: "Assignment Management Protocol" — handle_assignment(strike, premium, shares)
            _assign_put(book, tally, put, spot, early=False, cfg=cfg)
        else:
            n = put.contracts
            tally.premium_income += put.premium * SHARES_PER_CONTRACT * n
            pnl = put.premium * SHARES_PER_CONTRACT * n - cfg.commission * n
            _record_trade(tally, put, pnl, cfg)
            tally.n_expired_otm += 1
            book.puts.remove(put)

    # seed: "Dynamic Hedging Specifications" — calls held to expiry, settled at intrinsic.
    for call in [c for c in book.hedges if c.expiry_step == t]:
        payoff = max(spot - call.strike, 0.0) * SHARES_PER_CONTRACT * call.contracts
        book.cash += payoff
        tally.call_hedge_pnl += payoff
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
        book.covered_call = None


def _assignment_score(put: ShortPut, mid: float, spot: float, rate: float) -> int:
    """seed: "Assignment Management Protocol" — monitor_early_assignment_risk's score."""
    score = 0
    # seed: "Deep ITM increases risk"
    if spot < put.strike * 0.95:
        score += 3
    elif spot < put.strike * 0.98:
        score += 1
    # seed: "Low time value increases risk"
    time_value = mid - max(put.strike - spot, 0.0)
    if time_value < 0.10:
        score += 2
    elif time_value < 0.25:
        score += 1
    # seed: "Higher rates increase exercise incentive"
    if rate > 0.05:
        score += 1
    return score


def _early_exercise(
    book: Book, tally: Tally, day: MarketDay, quotes: DayQuotes, cfg: StrategyConfig
) -> None:
    """Step 3: close puts at high assignment risk (switch), then early assignment."""
    if cfg.close_on_assignment_risk:
        for put in list(book.puts):
            mid = quotes.mid("put", put.strike, put.expiry_step)
            # seed: 'recommended_action': 'CLOSE' if early_assignment_score >= 5
            if _assignment_score(put, mid, day.spot, quotes.rate) >= cfg.assignment_score_close:
                _close_put(book, tally, put, quotes, "assignment_risk", cfg)

    if cfg.early_assignment:
        for put in list(book.puts):
            mid = quotes.mid("put", put.strike, put.expiry_step)
            # STRATEGY.md *(choice)*: a rational holder of an American put exercises when the
            # European value is strictly below intrinsic; one uniform per path and day.
            below_intrinsic = mid < put.strike - day.spot
            if below_intrinsic and day.early_u < cfg.early_assignment_prob:
                _assign_put(book, tally, put, day.spot, early=True, cfg=cfg)


def _thesis_broken(book: Book, day: MarketDay, cfg: StrategyConfig) -> bool:
    """seed: fundamental_thesis_changed() — merger cancelled / adverse regulation (the latch),
    get_short_interest() < 20, get_bitcoin_correlation() > 0.95 (absolute value, per STRATEGY.md)."""
    return (
        book.thesis_latch
        or day.short_interest < cfg.thesis_short_interest_min
        or abs(day.btc_correlation) > cfg.thesis_btc_corr_max
    )


def _close_all_conditions(book: Book, day: MarketDay, cfg: StrategyConfig) -> dict[str, bool]:
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
    before liquidity (STRATEGY.md: between time and liquidity, time).
    """
    dte_calendar = (put.expiry_step - day.step) * CALENDAR_DAYS_PER_YEAR / TRADING_DAYS_PER_YEAR
    holding = (
        ("thesis", close_all["thesis"]),
        # seed: unrealized_pnl_pct < -2.0 — "200% loss vs. initial premium": mid > 3 x premium
        ("stop", cfg.stop_loss and mid > (1.0 + cfg.stop_loss_multiple) * put.premium),
        # seed: get_days_to_expiration() < 7 — "Approaching expiration"
        ("time", cfg.time_exit and dte_calendar < cfg.time_exit_dte),
        ("liquidity", close_all["liquidity"]),
        ("iv", close_all["iv"]),
        # seed: unrealized_pnl_pct > 0.5 — "50% profit capture": mid < 50 % of premium
        ("profit", cfg.profit_take and mid < (1.0 - cfg.profit_take_pct) * put.premium),
    )
    for reason, holds in holding:
        if holds:
            return reason
    return None


def _exits(
    book: Book, tally: Tally, day: MarketDay, quotes: DayQuotes, cfg: StrategyConfig
) -> None:
    """Step 4: every open short put is checked at the day's mid and closed if an exit holds."""
    close_all = _close_all_conditions(book, day, cfg)
    # Decide on the day's marks first, then execute: closing one put changes no other's test.
    decisions = []
    for put in book.puts:
        mid = quotes.mid("put", put.strike, put.expiry_step)
        reason = _exit_reason(put, mid, day, close_all, cfg)
        if reason is not None:
            decisions.append((put, reason))
    for put, reason in decisions:
        _close_put(book, tally, put, quotes, reason, cfg)


def _margin_and_ruin(
    book: Book, tally: Tally, day: MarketDay, quotes: DayQuotes, cfg: StrategyConfig
) -> None:
    """Step 5: margin call when equity < required collateral; ruin when equity <= 0.

    STRATEGY.md "Ruin" (seed: "Capital & Margin" — margin requirements; 'max_leverage': 1.5).
    """
    if cfg.margin_calls and book.puts:
        equity = sleeve_equity(book, quotes)
        if equity < required_collateral(book, cfg):
            # Margin call: every short put is bought back; shares and calls are kept.
            for put in list(book.puts):
                _close_put(book, tally, put, quotes, "margin", cfg)
            tally.n_margin_calls += 1

    if sleeve_equity(book, quotes) <= 0.0:
        _liquidate(book, tally, quotes, cfg)
        book.ruined = True
        book.ruin_step = day.step


def _liquidate(book: Book, tally: Tally, quotes: DayQuotes, cfg: StrategyConfig) -> None:
    """Ruin: everything is closed at fill prices, shares sold at the spot."""
    c = cfg.commission
    for put in list(book.puts):
        _close_put(book, tally, put, quotes, "ruin", cfg)
    for call in list(book.hedges):
        fill = quotes.sell_fill(quotes.mid("call", call.strike, call.expiry_step))
        book.cash += fill * SHARES_PER_CONTRACT * call.contracts - c * call.contracts
        tally.call_hedge_pnl += fill * SHARES_PER_CONTRACT * call.contracts
        tally.transaction_costs -= c * call.contracts
        book.hedges.remove(call)
    cc = book.covered_call
    if cc is not None:
        fill = quotes.buy_fill(quotes.mid("call", cc.strike, cc.expiry_step))
        book.cash -= fill * SHARES_PER_CONTRACT * cc.contracts + c * cc.contracts
        tally.covered_call_pnl -= fill * SHARES_PER_CONTRACT * cc.contracts
        tally.transaction_costs -= c * cc.contracts
        book.covered_call = None
    # Shares trade at the spot, no cost (ENGINE_SPEC "Conventions").
    book.cash += book.shares * quotes.day.spot
    book.shares = 0.0
    book.basis = 0.0


def _covered_calls(
    book: Book, tally: Tally, day: MarketDay, quotes: DayQuotes, cfg: StrategyConfig
) -> None:
    """Step 6: write covered calls on assigned shares (seed: "Assignment Management Protocol").

    seed: effective_cost_basis < 2.00 -> execute_covered_call_strategy; < 2.50 ->
    hold_with_monitoring; else -> immediate_covered_calls. Strike round(basis * 1.15 * 2) / 2,
    30 DTE, quantity shares // 100. One covered-call position at a time (ENGINE_SPEC choice).
    """
    if not cfg.covered_calls or book.covered_call is not None or book.shares < 100.0:
        return
    basis = book.basis
    if not (basis < cfg.cc_basis_good or basis >= cfg.cc_basis_hold):
        return  # seed: "Good cost basis - hold with monitoring"
    n = float(math.floor(book.shares / SHARES_PER_CONTRACT))  # always whole
    # seed: 'strike': round(target_strike * 2) / 2 — half up, at least one $0.50 step
    strike = max(math.floor(basis * cfg.cc_strike_markup * 2.0 + 0.5) / 2.0, 0.5)
    expiry = day.step + cfg.cc_expiry_steps
    fill = quotes.sell_fill(quotes.mid("call", strike, expiry))
    book.cash += fill * SHARES_PER_CONTRACT * n - cfg.commission * n
    tally.covered_call_pnl += fill * SHARES_PER_CONTRACT * n
    tally.transaction_costs -= cfg.commission * n
    tally.n_cc_sold += 1
    book.covered_call = CoveredCall(strike=strike, contracts=n, premium=fill, expiry_step=expiry)


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


def _book_risk(
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


def _limits(
    book: Book, day: MarketDay, quotes: DayQuotes, cfg: StrategyConfig, outside: float
) -> BookRisk:
    """Step 7, first half: limits on the book as it now stands (after exits and covered calls)."""
    return _book_risk(book, day, quotes, cfg, outside)


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
    # STRATEGY.md *(choice)*: moneyness mode re-centres the ladder, half-up to the grid.
    grid = cfg.strike_grid
    return [
        max(math.floor(k * day.spot / cfg.reference_spot / grid + 0.5) * grid, grid)
        for k in cfg.strikes
    ]


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


def _entry(
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
    # STRATEGY.md "Risk Limits": no new tranche while a HIGH-severity limit is breached.
    if cfg.enforce_limits and risk.high_breached:
        tally.n_blocked_limits += 1
        return False
    # STRATEGY.md "Exits": a close-all exit condition (thesis, liquidity, IV) stops new entries.
    if any(_close_all_conditions(book, day, cfg).values()):
        tally.n_blocked_exit += 1
        return False

    contracts_by_rung = _size_tranche(book, tally, day, quotes, cfg, risk)
    net_premium = _sell_tranche(book, tally, day, quotes, cfg, contracts_by_rung)
    if not any(n > 0.0 for n in contracts_by_rung):
        return False
    tally.n_tranches += 1
    if cfg.hedges and net_premium > 0.0:
        _buy_hedges(book, tally, day, quotes, cfg, risk, net_premium)
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
        # STRATEGY.md caps per strike (and the tranche's one expiry): rungs of one tranche that
        # share a strike value (moneyness mode at a low spot) share its allowances, which go
        # to the rungs in ladder order. What the earlier rungs at this strike sold (after
        # their flooring and capacity cut) is taken off the strike cap and the capacity.
        sold_here = 0.0  # contracts
        sold_notional = 0.0  # USD
        for k_before, n_before in zip(strikes, contracts, strict=False):
            if k_before == k:
                sold_here += n_before
                sold_notional += n_before * k_before * SHARES_PER_CONTRACT
        open_at_strike = risk.notional_by_strike.get(k, 0.0)
        room = max(
            cfg.max_single_strike_pct * (risk.notional_puts + planned_notional)
            - open_at_strike
            - sold_notional,
            0.0,
        )
        x = min(x, room / (k * SHARES_PER_CONTRACT))
        n = floor_contracts(x, cfg)
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
        book.puts.append(
            ShortPut(
                tranche_step=day.step,
                rung=rung,
                strike=k,
                contracts=n,
                premium=premium,
                expiry_step=expiry,
            )
        )
    return net_premium


def _buy_hedges(
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

    # seed: "if get_iv_percentile() > 90: Extreme IV - use further OTM calls"
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
        book.hedges.append(
            HedgeCall(
                tranche_step=day.step,
                strike=strike,
                contracts=n,
                price_paid=fill,
                expiry_step=expiry,
            )
        )


def _end_of_day(
    book: Book, tally: Tally, day: MarketDay, quotes: DayQuotes, risk: BookRisk | None
) -> None:
    """Step 8: record equity at mids and the day's limit breaches.

    ``risk`` is None on a ruined path (no breaches are counted once the path stops trading).
    """
    tally.equity.append(sleeve_equity(book, quotes))
    if risk is None:
        return
    for name in LIMIT_NAMES:
        if risk.breaches[name]:
            tally.breach_days[name] += 1
            if tally.first_breach[name] < 0:
                tally.first_breach[name] = day.step


def _mark_open_positions(book: Book, tally: Tally, quotes: DayQuotes) -> None:
    """Horizon: what is still open enters the buckets at mid (ENGINE_SPEC, after step 8).

    choice: with these marks the seven buckets sum to final_equity - initial_equity -
    contributions, initial_equity = sleeve0. ENGINE_SPEC writes "E_N - E_0 - contributions",
    but E_0 (equity at the end of day 0) already contains day 0's spread and commissions, which
    the buckets count; the identity holds with sleeve0, the sleeve before any trade.
    """
    for put in book.puts:
        mid = quotes.mid("put", put.strike, put.expiry_step)
        tally.mark_to_market += (put.premium - mid) * SHARES_PER_CONTRACT * put.contracts
    for call in book.hedges:
        mid = quotes.mid("call", call.strike, call.expiry_step)
        tally.call_hedge_pnl += mid * SHARES_PER_CONTRACT * call.contracts
    cc = book.covered_call
    if cc is not None:
        mid = quotes.mid("call", cc.strike, cc.expiry_step)
        tally.covered_call_pnl -= mid * SHARES_PER_CONTRACT * cc.contracts


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def _check_path(path: Mapping[str, Sequence[float]]) -> int:
    """Number of steps N, after checking that every input is there with one length."""
    missing = [name for name in INPUT_NAMES if name not in path]
    if missing:
        raise ValueError(f"path: missing inputs {missing}; give each of {list(INPUT_NAMES)}")
    lengths = {name: len(path[name]) for name in INPUT_NAMES}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"path: inputs must all have length N + 1, got {lengths}")
    n_plus_1 = lengths["spot"]
    if n_plus_1 < 1:
        raise ValueError("path: inputs must have at least one step")
    return n_plus_1 - 1


def simulate_path(path: Mapping[str, Sequence[float]], cfg: StrategyConfig, mkt) -> dict:
    """Run the strategy on one path and return its summary (ENGINE_SPEC "Per-path summary").

    Args:
        path: each name of INPUT_NAMES -> a sequence of length N + 1 (step t = 0 ... N).
        cfg: the strategy's parameters.
        mkt: object with float attributes rate, iv_long_run, kappa, eta.
    Returns:
        dict of Python floats and ints, plus ``assigned_by_rung`` (int64, (n_strikes,)) and
        ``equity`` (float64, (N + 1,), sleeve equity at the end of each day).
    """
    n_steps = _check_path(path)
    rate = float(mkt.rate)
    growth = math.exp(rate / TRADING_DAYS_PER_YEAR)
    daily_interest = math.expm1(rate / TRADING_DAYS_PER_YEAR)  # g - 1 without cancellation
    sleeve0 = cfg.sleeve_initial
    outside0 = cfg.portfolio_value - sleeve0  # the rest of the portfolio, cash at r

    book = Book(cash=sleeve0)
    tally = Tally(n_strikes=len(cfg.strikes))
    quotes = None
    for t in range(n_steps + 1):
        day = market_day(path, t, mkt)
        quotes = DayQuotes(day, cfg, rate)
        if book.ruined:
            # Skip everything on a ruined path: equity stays what the liquidation left.
            _end_of_day(book, tally, day, quotes, risk=None)
            continue
        outside = outside0 * growth**t
        _accrue(book, tally, day, cfg, daily_interest)
        _settle_expiries(book, tally, day, cfg)
        _early_exercise(book, tally, day, quotes, cfg)
        _exits(book, tally, day, quotes, cfg)
        _margin_and_ruin(book, tally, day, quotes, cfg)
        if book.ruined:
            # choice: on the ruin step itself nothing more happens (no covered call, no entry,
            # no n_entry_days, no breach count): the path stopped trading at the liquidation.
            _end_of_day(book, tally, day, quotes, risk=None)
            continue
        _covered_calls(book, tally, day, quotes, cfg)
        risk = _limits(book, day, quotes, cfg, outside)
        if _entry(book, tally, day, quotes, cfg, risk):
            # Breaches at the end of an entry step are those of the book after the sale.
            risk = _book_risk(book, day, quotes, cfg, outside)
        _end_of_day(book, tally, day, quotes, risk)

    assert quotes is not None
    _mark_open_positions(book, tally, quotes)
    return _summary(book, tally, cfg, sleeve0, outside0 * growth**n_steps)


def _summary(
    book: Book, tally: Tally, cfg: StrategyConfig, sleeve0: float, outside_final: float
) -> dict:
    """Pack the tally into the names of ENGINE_SPEC "Per-path summary"."""
    final_equity = tally.equity[-1]
    out: dict = {
        "initial_equity": float(sleeve0),
        "final_equity": float(final_equity),
        "final_portfolio_value": float(outside_final + final_equity),
        "contributions": tally.contributions,
        "premium_income": tally.premium_income,
        "assignment_pnl": tally.assignment_pnl,
        "call_hedge_pnl": tally.call_hedge_pnl,
        "mark_to_market": tally.mark_to_market,
        "transaction_costs": tally.transaction_costs,
        "financing": tally.financing,
        "covered_call_pnl": tally.covered_call_pnl,
        "sum_win_ret": tally.sum_win_ret,
        "sum_win_ret_sq": tally.sum_win_ret_sq,
        "sum_loss_ret": tally.sum_loss_ret,
        "sum_loss_ret_sq": tally.sum_loss_ret_sq,
        "hedge_contracts": tally.hedge_contracts,
        "contracts_cut": tally.contracts_cut,
        "shares_assigned": tally.shares_assigned,
        "shares_called_away": tally.shares_called_away,
        "n_trades": tally.n_trades,
        "n_wins": tally.n_wins,
        **{f"n_close_{reason}": tally.closes[reason] for reason in CLOSE_REASONS},
        "n_close_profit_loss": tally.n_close_profit_loss,
        "n_expired_otm": tally.n_expired_otm,
        "n_assigned_expiry": tally.n_assigned_expiry,
        "n_assigned_early": tally.n_assigned_early,
        "n_cc_sold": tally.n_cc_sold,
        "n_tranches": tally.n_tranches,
        "n_entry_days": tally.n_entry_days,
        "n_blocked_signal": tally.n_blocked_signal,
        "n_blocked_limits": tally.n_blocked_limits,
        "n_blocked_exit": tally.n_blocked_exit,
        "n_orders_cut": tally.n_orders_cut,
        "n_margin_calls": tally.n_margin_calls,
        "ruined": int(book.ruined),
        "ruin_step": book.ruin_step,
        **{f"breach_{name}": tally.breach_days[name] for name in LIMIT_NAMES},
        **{f"first_breach_{name}": tally.first_breach[name] for name in LIMIT_NAMES},
        "assigned_by_rung": np.asarray(tally.assigned_by_rung, dtype=np.int64),
        "equity": np.asarray(tally.equity, dtype=np.float64),
    }
    return out


def simulate_paths(
    market: Mapping[str, np.ndarray], cfg: StrategyConfig, mkt
) -> dict[str, np.ndarray]:
    """Run every path of a market and stack the summaries.

    Args:
        market: each name of INPUT_NAMES -> array (P, N + 1); extra names (e.g. ``jump``) are
            ignored.
        cfg, mkt: as for simulate_path.
    Returns:
        scalars -> (P,) (float64 or int64), ``assigned_by_rung`` -> (P, n_strikes) int64,
        ``equity`` -> (P, N + 1) float64.
    """
    missing = [name for name in INPUT_NAMES if name not in market]
    if missing:
        raise ValueError(f"market: missing inputs {missing}; give each of {list(INPUT_NAMES)}")
    arrays = {name: np.atleast_2d(np.asarray(market[name])) for name in INPUT_NAMES}
    n_paths = arrays["spot"].shape[0]
    summaries = []
    for i in range(n_paths):
        path = {name: arrays[name][i].tolist() for name in INPUT_NAMES}
        summaries.append(simulate_path(path, cfg, mkt))
    out: dict[str, np.ndarray] = {}
    for name in FLOAT_FIELDS:
        out[name] = np.array([s[name] for s in summaries], dtype=np.float64)
    for name in INT_FIELDS:
        out[name] = np.array([s[name] for s in summaries], dtype=np.int64)
    n_strikes = len(cfg.strikes)
    out["assigned_by_rung"] = np.array(
        [s["assigned_by_rung"] for s in summaries], dtype=np.int64
    ).reshape(n_paths, n_strikes)
    out["equity"] = np.array([s["equity"] for s in summaries], dtype=np.float64).reshape(
        n_paths, -1
    )
    return out
