"""The book of a block of paths as JAX arrays: positions, cash, and the running tallies.

The vectorized engine writes each day directly for a whole block of paths, with the paths on the
**last** axis: a per-path number is a `(paths,)` vector, the short puts are `(put_slots, rungs,
paths)`. Paths last makes every rule a loop over contiguous vector lanes (a per-path number
broadcasts against a slot array without moving data); with paths first (a one-path day under
`vmap`), XLA on CPU ran the same day several times slower.

Short puts live in a ring of tranche slots: tranche ``k`` (sold on entry step ``k *
entry_every_days``) occupies slot ``k % n_put_slots``, which is free again by the time the ring
comes round because ``n_put_slots = ceil(put_expiry_steps / entry_every_days)``. Hedge calls use
a second ring the same way. Every path enters on the same steps, so a slot's expiry step is one
number for the whole block (`Slots`).

A short put keeps its record after it closes: `put_n` stays the contracts sold, `put_closed` says
how it ended (`CLOSE_CODES`, 0 while open) and `put_close_price` at what price (the purchase fill
of a buy-back, the spot of an assignment or expiry). Its trade is tallied (P&L buckets, Kelly
inputs, counters) when its slot is reused or at the horizon, from the record: the day itself adds
only cash and the book's sums, never ~20 trade tallies over every position.

The per-path tallies are packed: all float tallies in one `(len(FLOAT_TALLIES), paths)` array
and all counts in one `(len(INT_TALLIES), paths)` array, so a day adds its increments with one
vector add each instead of ~70 small ones.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from simkit.schema.outcomes import (
    BUCKETS,
    CLOSE_COUNTERS,
    EXPIRED,
    LIMIT_NAMES,
)

# Per-path tallies. The names are the per-path summary of docs/ENGINE_SPEC.md; the outcome names
# (limits, buckets, how a trade ends, the close codes) are declared once in simkit.schema.outcomes.
LIMITS = LIMIT_NAMES
# The urgency order of the seed's "Exit Conditions" (time before liquidity): this engine's own.
EXIT_URGENCY = ("thesis", "stop", "time", "liquidity", "iv", "profit")
FLOAT_TALLIES = (
    *BUCKETS,
    "contributions",
    "sum_win_ret",
    "sum_win_ret_sq",
    "sum_loss_ret",
    "sum_loss_ret_sq",
    "hedge_contracts",
    "contracts_cut",
    "shares_assigned",  # float: fractional contracts give fractional shares
    "shares_called_away",
)
INT_TALLIES = (
    "n_trades",
    "n_wins",
    *CLOSE_COUNTERS,
    "n_close_profit_loss",  # profit-take closes whose trade P&L is <= 0 (spread, commissions)
    "n_cc_sold",
    "n_tranches",
    "n_entry_days",
    "n_blocked_signal",
    "n_blocked_limits",
    "n_blocked_exit",
    "n_orders_cut",
    "n_margin_calls",
    *(f"breach_{name}" for name in LIMITS),
)


def _tallies_record() -> type:
    """A NamedTuple with one field per tally (`FLOAT_TALLIES`, then `INT_TALLIES`), each a
    (paths,) increment or None (the step adds nothing to it): a step's increments are built by
    keyword, so a name that is not a tally fails when the day is traced."""
    names = (*FLOAT_TALLIES, *INT_TALLIES)
    record = NamedTuple("Tallies", [(name, Array | None) for name in names])
    record.__new__.__defaults__ = (None,) * len(names)
    return record


# The day's tally increments (`simkit.strategy.rules.trades._merge`, `_add_tallies`).
Tallies = _tallies_record()

# How a short put ended (`Book.put_closed`); 0 while it is open (or the slot is empty). A
# buy-back closed it at the purchase fill; the others at the day's spot. The codes come from
# simkit.schema.outcomes.TRADE_ENDS (buy-backs, then expiries, then assignments).
OPEN = 0
EXPIRED_WORTHLESS = EXPIRED[0]


class Today(NamedTuple):
    """The day's market as the rules read it (docs/ENGINE_SPEC.md "Inputs"), each `(paths,)`."""

    spot: Array  # USD per share
    iv: Array  # implied volatility, annual fraction (4.25 = 425 %)
    short_interest: Array  # percent of float
    vix: Array  # VIX points
    btc_correlation: Array  # in [-1, 1]
    bid_ask_spread: Array  # USD per share
    open_interest: Array  # contracts per strike
    option_volume: Array  # contracts a day per strike
    liquidity_score: Array  # the seed's 0-10 score
    borrow_cost: Array  # percent a year
    volume_ratio: Array  # stock volume over its average
    thesis_event: Array  # bool: a thesis-break event today
    early_u: Array  # uniform in (0, 1): the early-assignment draw
    iv_percentile: Array | None = None  # 0..100, computed once a day from `iv`


class Slots(NamedTuple):
    """Expiry steps of the tranche slots, the same for every path of the block."""

    put_expiry: Array  # (put_slots,) int step of expiry, -1 before the slot's first tranche
    hedge_expiry: Array  # (hedge_slots,) int step of expiry, -1 before the first hedge group


class Book(NamedTuple):
    """Open positions, cash and tallies of a block of paths (paths last; USD unless stated)."""

    cash: Array  # (paths,) sleeve cash
    put_n: Array  # (put_slots, rungs, paths) contracts sold (kept after the put closes)
    put_strike: Array  # (put_slots, rungs, paths) USD
    put_premium: Array  # (put_slots, rungs, paths) USD per share, the sale fill
    put_closed: Array  # (put_slots, rungs, paths) int8 CLOSE_CODES, OPEN while open
    put_close_price: Array  # (put_slots, rungs, paths) USD per share: buy-back fill or spot
    hedge_n: Array  # (hedge_slots, hedge_legs, paths) contracts long
    hedge_strike: Array  # (hedge_slots, hedge_legs, paths) USD
    cc_n: Array  # (paths,) covered calls short, contracts
    cc_strike: Array  # (paths,) USD
    cc_premium: Array  # (paths,) USD per share, the sale fill
    cc_expiry: Array  # (paths,) int step of expiry
    shares: Array  # (paths,) shares held after assignment
    basis: Array  # (paths,) USD per share, the seed's effective cost basis K - premium
    spot_lags: Array  # (5, paths) spot at t-1 ... t-5 (for the 5-day momentum)
    iv_prev: Array  # (paths,) IV of the previous step, a fraction
    thesis_latch: Array  # (paths,) bool, a thesis-break event has happened
    ruined: Array  # (paths,) bool, the path has been liquidated and stopped trading
    ruin_step: Array  # (paths,) int, -1 if never
    first_breach: Array  # (len(LIMITS), paths) int step of each limit's first breach, -1 if none
    float_tally: Array  # (len(FLOAT_TALLIES), paths) running sums, USD or ratios
    int_tally: Array  # (len(INT_TALLIES), paths) int running counts
    assigned_by_rung: Array  # (rungs, paths) int assignments per ladder rung


def empty_slots(put_slots: int, hedge_slots: int) -> Slots:
    """No tranche sold yet."""
    return Slots(
        put_expiry=jnp.full((put_slots,), -1, jnp.int32),
        hedge_expiry=jnp.full((hedge_slots,), -1, jnp.int32),
    )


def empty_book(
    cash: Array,
    spot0: Array,
    iv0: Array,
    put_slots: int,
    rungs: int,
    hedge_slots: int,
    hedge_legs: int,
    dtype,
) -> Book:
    """A book with no positions: all the sleeve in cash. `spot0`, `iv0`: (paths,)."""
    n_paths = spot0.shape[-1]
    f = lambda *shape: jnp.zeros((*shape, n_paths), dtype)  # noqa: E731
    i = lambda *shape: jnp.zeros((*shape, n_paths), jnp.int32)  # noqa: E731
    return Book(
        cash=jnp.full((n_paths,), cash, dtype),
        put_n=f(put_slots, rungs),
        put_strike=jnp.ones((put_slots, rungs, n_paths), dtype),
        put_premium=f(put_slots, rungs),
        put_closed=jnp.zeros((put_slots, rungs, n_paths), jnp.int8),
        put_close_price=f(put_slots, rungs),
        hedge_n=f(hedge_slots, hedge_legs),
        hedge_strike=jnp.ones((hedge_slots, hedge_legs, n_paths), dtype),
        cc_n=f(),
        cc_strike=jnp.ones((n_paths,), dtype),
        cc_premium=f(),
        cc_expiry=i() - 1,
        shares=f(),
        basis=f(),
        spot_lags=jnp.broadcast_to(spot0.astype(dtype), (5, n_paths)),
        iv_prev=iv0.astype(dtype),
        thesis_latch=jnp.zeros((n_paths,), bool),
        ruined=jnp.zeros((n_paths,), bool),
        ruin_step=i() - 1,
        first_breach=i(len(LIMITS)) - 1,
        float_tally=f(len(FLOAT_TALLIES)),
        int_tally=i(len(INT_TALLIES)),
        assigned_by_rung=i(rungs),
    )
