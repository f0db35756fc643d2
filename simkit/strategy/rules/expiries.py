"""Steps 1 and 2 of a day: interest on the sleeve's cash, then the positions that expire today
(short puts assigned or worthless, hedge calls at intrinsic, covered calls called away)."""

from __future__ import annotations

import jax.numpy as jnp

from simkit.schema.outcomes import CLOSE_CODES
from simkit.strategy.rules.quotes import _DAYS_PER_YEAR
from simkit.strategy.rules.sums import _sum
from simkit.strategy.rules.trades import _basis_after_assignment, _is_open
from simkit.strategy.state import EXPIRED_WORTHLESS, Book, Slots, Tallies


def _accrue(book: Book, today, t, p):
    """Step 1: interest on sleeve cash, share marks, monthly additions, thesis events."""
    # expm1, not exp(r / 252) - 1: float32 rounds the exp near 1 by up to 6e-8, 2.6e-4 of the
    # 2e-4 increment at r = 5 %.
    # seed: "Performance Attribution System" — financing: the sleeve's cash earns r (choice).
    growth = jnp.expm1(p.market.rate / _DAYS_PER_YEAR)
    moved = t >= 1
    interest = jnp.where(moved, book.cash * growth, 0.0)
    share_move = jnp.where(moved, book.shares * (today.spot - book.spot_lags[0]), 0.0)
    # seed: "Premium Allocation Framework" — compound_position_size: a monthly addition.
    addition = jnp.where(moved & (t % 21 == 0), p.capital.monthly_addition, 0.0)
    addition = jnp.broadcast_to(addition, book.cash.shape)
    book = book._replace(
        cash=book.cash + interest + addition,
        thesis_latch=book.thesis_latch | today.thesis_event,
    )
    return book, Tallies(financing=interest, assignment_pnl=share_move, contributions=addition)


def _expiring_slot(expiry, t):
    """The one ring slot whose expiry step is `t` (all paths alike) and whether there is one."""
    hit = expiry == t
    slot = jnp.argmax(hit)
    return slot, hit[slot]


def _settle_expiries(book: Book, slots: Slots, spot, t, p):
    """Step 2: puts (assignment or worthless), hedge calls at intrinsic, covered calls. The sums
    read only the slot that expires today; the records are masked over the ring (a masked
    write vectorizes, an indexed update fused into the day's other rules did not)."""
    # seed: "Assignment Management Protocol" — handle_assignment: an ITM put is assigned.
    slot, any_put = _expiring_slot(slots.put_expiry, t)
    n, k = book.put_n[slot], book.put_strike[slot]
    assigned_n = jnp.where(any_put & _is_open(book.put_closed[slot], n) & (k > spot), n, 0.0)
    shares, basis = _basis_after_assignment(
        book,
        100.0 * _sum(assigned_n),
        _sum(100.0 * assigned_n * (k - book.put_premium[slot])),
    )
    expiring = (slots.put_expiry == t)[:, None, None] & _is_open(book.put_closed, book.put_n)
    code = jnp.where(
        book.put_strike > spot, CLOSE_CODES["n_assigned_expiry"], EXPIRED_WORTHLESS
    ).astype(jnp.int8)
    book = book._replace(
        cash=book.cash - _sum(k * 100.0 * assigned_n),
        shares=shares,
        basis=basis,
        put_closed=jnp.where(expiring, code, book.put_closed),
        put_close_price=jnp.where(expiring, spot, book.put_close_price),
    )

    # seed: "Dynamic Hedging Specifications" — hedge calls held to expiry, settled at intrinsic.
    h_slot, any_hedge = _expiring_slot(slots.hedge_expiry, t)
    payoff = _sum(
        jnp.where(
            any_hedge,
            jnp.maximum(spot - book.hedge_strike[h_slot], 0.0) * 100.0 * book.hedge_n[h_slot],
            0.0,
        )
    )
    book = book._replace(
        cash=book.cash + payoff,
        hedge_n=jnp.where((slots.hedge_expiry == t)[:, None, None], 0.0, book.hedge_n),
    )

    # seed: "Assignment Management Protocol" — covered calls: shares called away at the strike
    # when in the money.
    cc_expiring = (book.cc_expiry == t) & (book.cc_n > 0)
    called = cc_expiring & (spot > book.cc_strike)
    called_shares = jnp.where(called, 100.0 * book.cc_n, 0.0)
    shares = book.shares - called_shares
    amounts = Tallies(
        call_hedge_pnl=payoff,
        covered_call_pnl=-(spot - book.cc_strike) * called_shares,
        shares_called_away=called_shares,
    )
    book = book._replace(
        cash=book.cash + book.cc_strike * called_shares,
        shares=shares,
        basis=jnp.where(shares > 0, book.basis, 0.0),
        cc_n=jnp.where(cc_expiring, 0.0, book.cc_n),
    )
    return book, amounts
