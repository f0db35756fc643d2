"""Step 5 of a day: the margin check on the book after the exits, and ruin (docs/STRATEGY.md
"Ruin"). A margin call buys back every short put; equity <= 0 liquidates everything."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from simkit.schema.outcomes import CLOSE_CODES
from simkit.strategy.rules.exits import _PutDay
from simkit.strategy.rules.quotes import Quotes, _buy_fill, _mid, _sell_fill, _Sums
from simkit.strategy.rules.sums import _sums
from simkit.strategy.state import Book, Tallies

# What a margin call or a ruin changes in the book.
_LIQUIDATED = (
    "cash",
    "put_closed",
    "put_close_price",
    "hedge_n",
    "cc_n",
    "shares",
    "basis",
    "ruined",
    "ruin_step",
)


def _liquidate(
    book: Book, put_sums: _Sums, hedges: _Sums, equity, call, puts: _PutDay, held, q, today, t, p
):
    """A margin call (`call`, (paths,) bool) buys back every open short put at the buy fill;
    then equity <= 0 is ruin: the hedge calls sold, the covered call bought back, the shares sold
    at the spot. Returns the book, the sums of what stays open and the tally increments."""
    spot = today.spot
    spread = today.bid_ask_spread
    n = book.put_n
    buy_back = _sums(
        [jnp.where(puts.remaining, puts.fill * 100.0 * n + p.execution.commission * n, 0.0)]
    )[0]
    after_call = equity + jnp.where(call, 100.0 * put_sums.price - buy_back, 0.0)
    # choice (docs/STRATEGY.md "Ruin"): sleeve equity <= 0 liquidates everything at fill prices.
    ruin = after_call <= 0.0
    close_all = call | ruin
    closing = puts.remaining & close_all
    code = jnp.where(call, CLOSE_CODES["n_close_margin"], CLOSE_CODES["n_close_ruin"]).astype(
        jnp.int8
    )
    hedge_fill = _sell_fill(_mid(q.hedge, spot), spread, p)
    hedge_sale = jnp.where(ruin, _sums([hedge_fill * 100.0 * book.hedge_n])[0], 0.0)
    cc_n = jnp.where(ruin, book.cc_n, 0.0)
    cc_cost = _buy_fill(q.cc.price, spread, p) * 100.0 * cc_n
    commission = p.execution.commission * (jnp.where(ruin, held, 0.0) + cc_n)
    book = book._replace(
        cash=book.cash
        - jnp.where(close_all, buy_back, 0.0)
        + hedge_sale
        - cc_cost
        - commission
        + jnp.where(ruin, book.shares * spot, 0.0),
        put_closed=jnp.where(closing, code, book.put_closed),
        put_close_price=jnp.where(closing, puts.fill, book.put_close_price),
        hedge_n=jnp.where(ruin, 0.0, book.hedge_n),
        cc_n=jnp.where(ruin, 0.0, book.cc_n),
        shares=jnp.where(ruin, 0.0, book.shares),
        basis=jnp.where(ruin, 0.0, book.basis),
        ruined=ruin,
        ruin_step=jnp.where(ruin, t, book.ruin_step),
    )
    amounts = Tallies(
        call_hedge_pnl=hedge_sale,
        covered_call_pnl=-cc_cost,
        transaction_costs=-commission,
    )
    return book, put_sums.zeroed(close_all), hedges.zeroed(ruin), amounts


def _keep(book: Book, put_sums: _Sums, hedges: _Sums, equity):
    """No margin call and no ruin on any path: the book as it stands."""
    zero = jnp.zeros_like(equity)
    amounts = Tallies(call_hedge_pnl=zero, covered_call_pnl=zero, transaction_costs=zero)
    return book, put_sums, hedges, amounts


def _margin_and_ruin(book: Book, puts: _PutDay, hedges: _Sums, held, q: Quotes, today, t, p):
    """Step 5: a margin call buys back every short put; equity <= 0 liquidates everything.

    The liquidation's own sums run only on a day when some path of the block needs them."""
    spot = today.spot
    cc_mark = 100.0 * q.cc.price * book.cc_n
    equity = (
        book.cash - 100.0 * puts.sums.price - cc_mark + 100.0 * hedges.price + book.shares * spot
    )
    # seed: "Position Limits & Controls" — 'max_leverage': 1.5x through margin: the collateral
    # the open puts require is their strike notional over the leverage.
    required = puts.notional / p.capital.max_leverage
    call = p.limits.margin_calls & (puts.notional > 0) & (equity < required)
    liquidate = functools.partial(
        _liquidate, equity=equity, call=call, puts=puts, held=held, q=q, today=today, t=t, p=p
    )
    keep = functools.partial(_keep, equity=equity)

    # The cond takes and returns only the fields a liquidation changes: a field passed through
    # it is copied every day (the tallies, the rings of strikes and premiums).
    def part(book):
        return {name: getattr(book, name) for name in _LIQUIDATED}

    def on_part(branch):
        def run(fields, put_sums, hedges):
            new, put_sums, hedges, amounts = branch(book._replace(**fields), put_sums, hedges)
            return part(new), put_sums, hedges, amounts

        return run

    needed = jnp.any(call) | jnp.any(equity <= 0.0)
    fields, put_sums, hedges, amounts = jax.lax.cond(
        needed, on_part(liquidate), on_part(keep), part(book), puts.sums, hedges
    )
    book = book._replace(**fields)
    return book, put_sums, hedges, amounts._replace(n_margin_calls=call.astype(jnp.int32))
