"""The book of one path as JAX arrays: positions, cash, and the running tallies.

The vectorized engine ``vmap``s one path's day over a block of paths, so every field below is
written for one path; under ``vmap`` each gains a leading ``(paths,)`` axis. Short puts live in
a ring of tranche slots: tranche ``k`` (sold on entry step ``k * entry_every_days``) occupies slot
``k % n_put_slots``, which is free again by the time the ring comes round because
``n_put_slots = ceil(put_expiry_steps / entry_every_days)``. Hedge calls use a second ring the
same way. Positions with ``contracts == 0`` are empty slots.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

# Per-path tallies: (name, kind) with kind "f" (float, USD or a ratio) or "i" (a count).
# The names are the per-path summary of docs/ENGINE_SPEC.md, shared with the reference engine.
LIMITS = (
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
CLOSE_REASONS = (
    "thesis",
    "stop",
    "time",
    "liquidity",
    "iv",
    "profit",
)  # urgency order of the seed's "Exit Conditions" (time before liquidity)
BUCKETS = (
    "premium_income",
    "assignment_pnl",
    "call_hedge_pnl",
    "mark_to_market",
    "transaction_costs",
    "financing",
    "covered_call_pnl",
)
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
    *(f"n_close_{r}" for r in CLOSE_REASONS),
    "n_close_assignment_risk",
    "n_close_margin",
    "n_close_ruin",
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
    *(f"breach_{name}" for name in LIMITS),
)


class Book(NamedTuple):
    """Open positions and cash of one path (shapes for one path; USD unless stated)."""

    cash: Array  # () sleeve cash
    put_n: Array  # (put_slots, rungs) contracts short
    put_strike: Array  # (put_slots, rungs) USD
    put_premium: Array  # (put_slots, rungs) USD per share, the sale fill
    put_expiry: Array  # (put_slots,) int step of expiry
    hedge_n: Array  # (hedge_slots, hedge_legs) contracts long
    hedge_strike: Array  # (hedge_slots, hedge_legs) USD
    hedge_expiry: Array  # (hedge_slots,) int step of expiry
    cc_n: Array  # () covered calls short, contracts
    cc_strike: Array  # () USD
    cc_premium: Array  # () USD per share, the sale fill
    cc_expiry: Array  # () int step of expiry
    shares: Array  # () shares held after assignment
    basis: Array  # () USD per share, the seed's effective cost basis K - premium
    spot_lags: Array  # (5,) spot at t-1 ... t-5 (for the 5-day momentum)
    iv_prev: Array  # () IV of the previous step, a fraction
    thesis_latch: Array  # () bool, a thesis-break event has happened
    ruined: Array  # () bool, the path has been liquidated and stopped trading
    ruin_step: Array  # () int, -1 if never
    first_breach: Array  # (len(LIMITS),) int step of each limit's first breach, -1 if none
    tally: dict  # name -> () running sums and counts (FLOAT_TALLIES, INT_TALLIES)
    assigned_by_rung: Array  # (rungs,) int assignments per ladder rung


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
    """A book with no positions: all the sleeve in cash."""
    f = lambda *shape: jnp.zeros(shape, dtype)  # noqa: E731
    i = lambda *shape: jnp.zeros(shape, jnp.int32)  # noqa: E731
    tally = {name: f() for name in FLOAT_TALLIES} | {name: i() for name in INT_TALLIES}
    return Book(
        cash=jnp.asarray(cash, dtype),
        put_n=f(put_slots, rungs),
        put_strike=jnp.ones((put_slots, rungs), dtype),
        put_premium=f(put_slots, rungs),
        put_expiry=i(put_slots) - 1,
        hedge_n=f(hedge_slots, hedge_legs),
        hedge_strike=jnp.ones((hedge_slots, hedge_legs), dtype),
        hedge_expiry=i(hedge_slots) - 1,
        cc_n=f(),
        cc_strike=jnp.ones((), dtype),
        cc_premium=f(),
        cc_expiry=i() - 1,
        shares=f(),
        basis=f(),
        spot_lags=jnp.full((5,), spot0, dtype),
        iv_prev=jnp.asarray(iv0, dtype),
        thesis_latch=jnp.zeros((), bool),
        ruined=jnp.zeros((), bool),
        ruin_step=i() - 1,
        first_breach=i(len(LIMITS)) - 1,
        tally=tally,
        assigned_by_rung=i(rungs),
    )
