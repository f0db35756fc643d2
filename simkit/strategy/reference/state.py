"""The book and the tallies of one path, and the names its summary is packed under.

Positions are small mutable dataclasses in lists (``Book``), the running sums and counters of
one path are a ``Tally``; ``FLOAT_FIELDS`` and ``INT_FIELDS`` are the per-path summary of
docs/ENGINE_SPEC.md, ``CLOSE_REASONS`` and ``LIMIT_NAMES`` the outcomes it counts. No rule lives
here, only the records the rules change and the calendar constants they share. ``TradeLog``
records every position's life for the trade log (``simkit.trade_log``) when a path is run with
``record_trades``; it only writes down what the rules did and is read by nothing in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simkit.schema.outcomes import (
    LIMIT_NAMES,
    SHARES_PER_CONTRACT,
    TRADE_ENDS,
    UNDERLYING,
)
from simkit.strategy.config import StrategyConfig

# Names shared with the rest of simkit (never arithmetic): simkit.schema.outcomes.
CLOSE_REASONS = tuple(e.name for e in TRADE_ENDS if e.how == "bought_back")  # buy-back reasons

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
    *UNDERLYING,  # what the stock did on the path (day._underlying)
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
        """USD tied up: K * 100 * n / max_leverage (docs/STRATEGY.md "Capital")."""
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
    log: TradeLog | None = None  # the path's trade log, when recording (simulate_path)

    def __post_init__(self) -> None:
        self.assigned_by_rung = [0] * self.n_strikes


def required_collateral(book: Book, cfg: StrategyConfig) -> float:
    """R = sum of the open puts' collateral (docs/STRATEGY.md "Capital": cash-secured with
    margin)."""
    return sum(put.collateral(cfg) for put in book.puts)


# --------------------------------------------------------------------------- the trade log


@dataclass
class TradeRecord:
    """One position from its opening to its end (a row of the trade log, ``simkit.trade_log``).

    Prices are per share; ``contracts`` counts 100-share lots for shares. P&L is what the
    position added to the sleeve, commissions included: a short option
    ``(premium - close_price) * 100 * contracts - commissions``, a long call or shares
    ``(close_price - premium) * 100 * contracts - commissions``.
    """

    kind: str  # one of simkit.schema.outcomes.TRADE_KINDS
    open_step: int  # trading day it was opened
    strike: float  # USD (shares: the strike of the put that delivered them, the price paid)
    contracts: float  # contracts (shares: shares / 100)
    premium: float  # USD per share: sale fill, price paid (hedge call), spot when assigned (shares)
    collateral: float  # USD: K * 100 * n / max_leverage for a short put, else 0
    commissions: float  # USD paid so far: on the opening trade, then on a closing one
    close_step: int = -1  # trading day it ended (the horizon while "open")
    close_price: float = float("nan")  # USD per share: fill, intrinsic value, spot or mid
    reason: str = "open"  # TRADE_ENDS or TRADE_LOG_ENDS name
    pnl: float = float("nan")  # USD


_SHORT = ("short_put", "covered_call")  # kinds whose P&L is premium received minus cost to close


class TradeLog:
    """The trade records of one path, opened and closed as the rules trade (recording only).

    Options are looked up by the position object the book holds (its ``id``) while it is open;
    shares by lot, oldest first: the book keeps one share count and one basis, so which lot a
    covered call takes away is the log's choice (first in, first out). ``step`` is the day
    being simulated (set by the loop).
    """

    def __init__(self) -> None:
        self.step = 0
        self.records: list[TradeRecord] = []
        self._open: dict[int, TradeRecord] = {}
        self._lots: list[TradeRecord] = []  # open share lots, oldest first

    def opened(
        self,
        position: object,
        kind: str,
        strike: float,
        contracts: float,
        premium: float,
        commissions: float,
        collateral: float = 0.0,
    ) -> None:
        """A position enters the book today."""
        record = TradeRecord(kind, self.step, strike, contracts, premium, collateral, commissions)
        self.records.append(record)
        self._open[id(position)] = record

    def closed(
        self,
        position: object,
        close_price: float,
        reason: str,
        commission: float = 0.0,
        pnl: float | None = None,
    ) -> None:
        """A position leaves the book today at ``close_price`` (``pnl`` when the engine has it)."""
        record = self._open.pop(id(position))
        record.commissions += commission
        self._end(record, close_price, reason, pnl)

    def shares_in(self, put: ShortPut, shares: float, spot: float) -> None:
        """An assignment delivers ``shares`` at the put's strike; the lot is valued at the spot
        (the put's trade carries K - S)."""
        lot = TradeRecord(
            "shares", self.step, put.strike, shares / SHARES_PER_CONTRACT, spot, 0.0, 0.0
        )
        self.records.append(lot)
        self._lots.append(lot)

    def shares_out(self, shares: float, spot: float, reason: str) -> None:
        """``shares`` leave the book at the spot, oldest lots first (a lot split if need be)."""
        left = shares
        while left > 1e-12 * shares and self._lots:  # a rounding hair is no lot
            lot = self._lots[0]
            held = lot.contracts * SHARES_PER_CONTRACT
            if held > left * (1.0 + 1e-12):
                rest = TradeRecord(
                    "shares",
                    lot.open_step,
                    lot.strike,
                    (held - left) / SHARES_PER_CONTRACT,
                    lot.premium,
                    0.0,
                    0.0,
                )
                lot.contracts = left / SHARES_PER_CONTRACT
                at = next(i for i, r in enumerate(self.records) if r is lot)
                self.records.insert(at + 1, rest)
                self._lots[0] = rest
                self._end(lot, spot, reason)
                return
            self._lots.pop(0)
            left -= held
            self._end(lot, spot, reason)

    def all_shares_out(self, spot: float, reason: str) -> None:
        """Every share lot leaves the book at the spot (ruin; the horizon's mark is "open")."""
        for lot in self._lots:
            self._end(lot, spot, reason)
        self._lots = []

    def mark_open(self, position: object, mid: float) -> None:
        """Horizon: an option still held is marked at the day's mid, no closing commission."""
        self.closed(position, mid, "open")

    def mark_shares(self, spot: float) -> None:
        """Horizon: share lots still held are marked at the spot."""
        self.all_shares_out(spot, "open")

    def _end(self, record: TradeRecord, close_price: float, reason: str, pnl=None) -> None:
        record.close_step = self.step
        record.close_price = close_price
        record.reason = reason
        if pnl is None:
            sign = 1.0 if record.kind in _SHORT else -1.0
            gross = sign * (record.premium - close_price) * SHARES_PER_CONTRACT * record.contracts
            pnl = gross - record.commissions
        record.pnl = pnl
