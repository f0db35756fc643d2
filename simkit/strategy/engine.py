"""The vectorized strategy engine: one day of the seed strategy for a block of paths, in JAX.

``_day(book, slots, today, t, params, shape) -> (book, slots, equity)`` applies the eight steps
of ``docs/ENGINE_SPEC.md`` to every path of a block at once, and a ``fori_loop`` runs it over the
days. The day is written directly for the block, with the paths on the last axis of every array
(`simkit.strategy.state`): XLA vectorizes along the last axis, and a per-path number broadcasts
against a `(slots, rungs, paths)` position array as it stands. Nothing branches on a path's
values in Python: every rule is a mask, every trade an array update, so the same code runs on
CPU and GPU. The ``lax.cond``s branch on what is the same for the whole block: the step (an
entry every ``entry_every_days``) and whether any path of the block meets a margin call or ruin
today (rare: the liquidation's sums are skipped on other days); a third, on a predicate that
always holds, only makes XLA materialize the day's quotes (`_materialized`).

How the day keeps its cost down (measured on 2 CPU cores, see bench/README.md):
- one Black-Scholes evaluation per position and day (`_marks`) shares `d1`, `d2`, their
  densities and normal CDFs (in float32 from the densities, A&S 26.2.17) between the mid and the
  Greeks; without a skew the volatility is the path's, so `1 / (vol sqrt(tau))` is per slot and
  path; a fixed ladder's puts take one `log(S / K)` per rung and path;
- the book's six sums (mid and five Greeks) come from three products per position (`_mark_sums`):
  the Greeks are these terms times factors of the slot (dot weights) or of the path;
- the sums over a path's positions are matrix-vector products, not reductions (XLA on CPU ran
  reductions fused with their producers one path at a time);
- what every position rule reads per path (the day's market, the IV percentile) travels in the
  loop carry, and the quotes are materialized once: fused into the rules over the ring, XLA
  recomputed them for every position and in every rule;
- a closed short put keeps its record (how and at what price it closed) and its trade is tallied
  when its slot is reused or at the horizon, so the day adds no trade tallies;
- expiries mask the ring instead of updating the expiring slot in place.

Public entry points:
    simulate_paths(market, cfg, mkt)   given market arrays (NumPy or JAX, (paths, steps + 1))
    simulate_block(cfg, mkt, seed=, cell=, path_start=, n_paths=, n_steps=, float64=)
                                        generates each day's market inside the loop
                                        (`simkit.paths.market.market_step`): memory does not
                                        grow with the horizon
Both return the per-path summary of docs/ENGINE_SPEC.md as NumPy arrays.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import ndtr, ndtri

from simkit.precision import x64
from simkit.strategy.config import StrategyConfig
from simkit.strategy.params import (
    EngineParams,
    EngineShape,
    engine_params,
    engine_shape,
)
from simkit.strategy.state import (
    ASSIGNED,
    BOUGHT_BACK,
    CLOSE_CODES,
    CLOSE_REASONS,
    EXPIRED_WORTHLESS,
    FLOAT_ROW,
    FLOAT_TALLIES,
    INT_ROW,
    INT_TALLIES,
    LIMITS,
    OPEN,
    Book,
    Slots,
    empty_book,
    empty_slots,
)

MARKET_FIELDS = (
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

_FILL_BID_ASK, _FILL_MID, _FILL_SEED = 0, 1, 2
_DAYS_PER_YEAR = 252.0
_CALENDAR_PER_STEP = 365.0 / 252.0
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# --------------------------------------------------------------------------- quotes and fills
class Quote(NamedTuple):
    """Mid price and Greeks (seed units: theta per calendar day, vega and rho per 1 %) of
    options of one kind; every field has the shape of the strikes quoted."""

    price: Array  # USD per share
    delta: Array  # per share per USD of spot
    gamma: Array  # per USD
    theta: Array  # USD per share per calendar day
    vega: Array  # USD per share per vol point
    rho: Array  # USD per share per 1 % of rate


def _normal_cdf(x):
    """Phi(x) as one `erfc` (`jax.scipy.special.ndtr` evaluates both `erf` and `erfc` and picks
    one: 10 % of a quote). Accurate in both tails: erfc of a large positive argument keeps its
    relative precision, and Phi near 1 is 1 - tiny."""
    return 0.5 * jax.lax.erfc(x * (-1.0 / math.sqrt(2.0)))


# Abramowitz & Stegun 26.2.17 (Hastings): Phi(-|x|) = phi(x) t P(t), t = 1 / (1 + p |x|),
# |error| < 7.5e-8, close to float32's own rounding (6e-8); relative error < 0.6 % down to
# Phi = 1e-9 (|x| <= 6), where a quote's value is far below a cent.
_AS_P = 0.2316419
_AS_B = (0.319381530, -0.356563782, 1.781477937, -1.821255978, 1.330274429)


def _normal_cdf_from_pdf(x, pdf):
    """Phi(x) given phi(x): one division and a polynomial instead of an `erfc` (which costs an
    `exp`, two divisions and three polynomials, both of its branches evaluated). For float32."""
    t = 1.0 / (1.0 + _AS_P * jnp.abs(x))
    b1, b2, b3, b4, b5 = _AS_B
    tail = pdf * (t * (b1 + t * (b2 + t * (b3 + t * (b4 + t * b5)))))
    return jnp.where(x < 0.0, tail, 1.0 - tail)


class Marks(NamedTuple):
    """Black-Scholes terms of options of one kind, from which the mid and every Greek follow
    (`_quote_of`), and the sums of the Greeks over positions (`_mark_sums`) without forming each
    Greek per position. Each field has the shape of the strikes, or broadcasts against it."""

    delta: Array  # w N(w d1); at zero volatility w (in the money forward) or 0
    rate_term: Array  # w K e^{-r tau} N(w d2), same limits; mid = spot x delta - rate_term
    pdf: Array  # phi(d1); 0 at zero volatility
    vol: Array  # IV_K; without a smile the path's IV, (paths,)
    inv_total_vol: Array  # 1 / (vol sqrt(tau)); 1 at zero volatility
    tau: Array  # years to expiry; (slots, 1, 1) in a ring, one value per slot
    sqrt_tau: Array


def _marks(spot, strike, tau, iv, p, call: bool, smile: bool) -> Marks:
    """Black-Scholes at `IV_K = iv * (K / S)^(-skew)`, no dividend, as the terms of `Marks`.

    One evaluation shares `d1`, `d2`, their densities and normal CDFs between the price and the
    Greeks (`simkit.pricing.bs_price` + `bs_greeks` would compute them twice). `N(w d1)` and
    `N(w d2)` come from the out-of-the-money (forward) side's CDFs, equal or one minus them (an
    in-the-money option's CDFs are not small, so nothing is lost), as `bs_price` prices the
    out-of-the-money side. `tau` (years, > 0) broadcasts against `strike`: one value per tranche
    slot, so its square root and discount factor are computed once per slot, not per path.
    `smile` (static: the skew is not 0) prices each strike at its own volatility; without it
    the volatility is the path's, and `1 / (vol sqrt(tau))` is one division per slot and path,
    not per position. The normal CDFs: one `erfc` each in float64 (as the reference engine's
    `math.erfc`), in float32 A&S 26.2.17 from the densities (`_normal_cdf_from_pdf`: x1.5 on the
    quote). A zero volatility gives the forward-intrinsic limits of `simkit.pricing`.
    """
    s = p.scalars
    rate = s["rate"]
    w = 1.0 if call else -1.0
    log_spot_strike = jnp.log(spot / strike)
    vol = iv * jnp.exp(s["skew"] * log_spot_strike) if smile else iv  # iv * (K / S) ** (-skew)
    sqrt_tau = jnp.sqrt(tau)
    total_vol = vol * sqrt_tau
    degenerate = ~(total_vol > 0.0)
    safe_total_vol = jnp.where(degenerate, 1.0, total_vol)
    inv_total_vol = 1.0 / safe_total_vol
    d1 = jnp.where(
        degenerate,
        0.0,
        (log_spot_strike + rate * tau) * inv_total_vol + 0.5 * safe_total_vol,
    )
    d2 = d1 - jnp.where(degenerate, 0.0, total_vol)
    strike_pv = strike * jnp.exp(-rate * tau)
    forward_intrinsic = spot - strike_pv  # call minus put, dollars
    w_otm = jnp.where(forward_intrinsic < 0.0, 1.0, -1.0)  # the side out of the money
    pdf = jnp.exp(-0.5 * d1 * d1) * _INV_SQRT_2PI
    if spot.dtype == jnp.float64:
        n1 = _normal_cdf(w_otm * d1)
        n2 = _normal_cdf(w_otm * d2)
    else:
        n1 = _normal_cdf_from_pdf(w_otm * d1, pdf)
        n2 = _normal_cdf_from_pdf(w_otm * d2, jnp.exp(-0.5 * d2 * d2) * _INV_SQRT_2PI)
    in_the_money = w_otm != w
    itm_limit = (w * forward_intrinsic > 0.0).astype(spot.dtype)
    nw1 = jnp.where(degenerate, itm_limit, jnp.where(in_the_money, 1.0 - n1, n1))
    nw2 = jnp.where(degenerate, itm_limit, jnp.where(in_the_money, 1.0 - n2, n2))
    return Marks(
        delta=w * nw1,
        rate_term=w * strike_pv * nw2,
        pdf=jnp.where(degenerate, 0.0, pdf),
        vol=vol,
        inv_total_vol=inv_total_vol,
        tau=tau,
        sqrt_tau=sqrt_tau,
    )


def _mid(m: Marks, spot):
    """The mid, USD per share: `S N(w d1) - K e^{-rT} N(w d2)` signed (the intrinsic value at
    zero volatility)."""
    return spot * m.delta - m.rate_term


def _quote_of(m: Marks, spot, p) -> Quote:
    """The mid and the five Greeks of each option (seed units)."""
    rate = p.scalars["rate"]
    theta = -spot * m.pdf * m.vol * (0.5 / m.sqrt_tau) - rate * m.rate_term
    return Quote(
        price=_mid(m, spot),
        delta=m.delta,
        gamma=m.pdf * m.inv_total_vol * (1.0 / spot),
        theta=theta / 365.0,
        vega=spot * m.pdf * m.sqrt_tau / 100.0,
        rho=m.tau * m.rate_term / 100.0,
    )


def _quote(spot, strike, tau, iv, p, call: bool, smile: bool) -> Quote:
    """Black-Scholes mid and Greeks (`_marks`, then `_quote_of`)."""
    return _quote_of(_marks(spot, strike, tau, iv, p, call, smile), spot, p)


# --------------------------------------------------------------------------- sums over positions
def _rows(x) -> list:
    """The (paths,) rows of `x`: one per position, every axis but the last flattened."""
    flat = x.reshape(-1, x.shape[-1])
    return [flat[i] for i in range(flat.shape[0])]


def _fold(op, rows):
    """`op` over a list of equally shaped arrays as a balanced tree of elementwise operations."""
    rows = list(rows)
    while len(rows) > 1:
        rows = [
            op(rows[i], rows[i + 1]) if i + 1 < len(rows) else rows[i]
            for i in range(0, len(rows), 2)
        ]
    return rows[0]


def _over(x, axis: int, op=jnp.add):
    """`op` over a short axis by elementwise operations on its slices (vectorized over the
    paths, where XLA on CPU runs a reduction over a leading axis one path at a time)."""
    return _fold(op, [jnp.take(x, i, axis=axis) for i in range(x.shape[axis])])


def _sums(xs: list) -> list:
    """Sums over a path's positions of each array in `xs` (each (..., paths)).

    A product with a vector of ones per quantity: a library kernel sums the positions, and XLA
    computes each quantity in one vectorized loop. (Stacking the quantities into one product
    was 10x slower: XLA fused the Black-Scholes terms into the stacking and recomputed them per
    quantity.) HIGHEST precision keeps float32 sums float32 on GPUs (no TF32)."""
    out = []
    for x in xs:
        flat = x.reshape(-1, x.shape[-1])
        ones = jnp.ones((flat.shape[0],), flat.dtype)
        out.append(jnp.dot(ones, flat, precision=jax.lax.Precision.HIGHEST))
    return out


def _sum(x):
    """Sum over a path's positions of one array."""
    if x.ndim == 1:
        return x
    if x.dtype == jnp.bool_ or jnp.issubdtype(x.dtype, jnp.integer):
        return jnp.round(_sums([x.astype(jnp.float32)])[0]).astype(jnp.int32)
    return _sums([x])[0]


def _count(mask) -> Array:
    return _sum(mask)


# --------------------------------------------------------------------------- trades
def _put_collateral(put_strike, put_n, p) -> Array:
    return put_strike * 100.0 * put_n / p.scalars["max_leverage"]


def _is_open(closed, n):
    return (closed == OPEN) & (n > 0)


def _tally_trades(n, strike, premium, closed, close_price, p, total=_sum) -> tuple[dict, Array]:
    """The tallies of the closed short-put trades among the given records (docs/ENGINE_SPEC.md
    "Trades and Kelly inputs", and the buckets and counters each kind of close adds).

    Returns (tally name -> (paths,) increment, assigned mask (like `n`))."""
    s = p.scalars
    commission = s["commission"] * n
    done = (n > 0) & (closed != OPEN)
    bought = done & (closed >= BOUGHT_BACK[0]) & (closed <= BOUGHT_BACK[-1])
    assigned = done & (closed >= ASSIGNED[0])
    # A buy-back's price is its fill, an assignment's and an expiry's the day's spot.
    price = close_price
    pnl = jnp.where(
        bought,
        (premium - price) * 100.0 * n - 2.0 * commission,
        jnp.where(assigned, (premium - (strike - price)) * 100.0 * n, premium * 100.0 * n)
        - commission,
    )
    collateral = _put_collateral(strike, n, p)
    ret = jnp.where(done, pnl / jnp.where(done, collateral, 1.0), 0.0)
    win = done & (pnl > 0)
    loss = done & ~win
    zero = jnp.zeros_like(pnl)
    floats = [
        jnp.where(
            bought,
            (premium - price) * 100.0 * n,
            jnp.where(done, premium * 100.0 * n, zero),
        ),
        jnp.where(assigned, (price - strike) * 100.0 * n, zero),
        jnp.where(bought, -commission, zero),
        jnp.where(assigned, 100.0 * n, zero),
        jnp.where(win, ret, zero),
        jnp.where(win, ret * ret, zero),
        jnp.where(loss, -ret, zero),
        jnp.where(loss, ret * ret, zero),
        done.astype(pnl.dtype),
        win.astype(pnl.dtype),
        *((done & (closed == code)).astype(pnl.dtype) for code in CLOSE_CODES.values()),
        # profit-take closes that lost money once the spread and both commissions are paid
        (done & (closed == CLOSE_CODES["n_close_profit"]) & ~win).astype(pnl.dtype),
    ]
    sums = total(floats) if total is _sums else [total(x) for x in floats]
    names = (
        "premium_income",
        "assignment_pnl",
        "transaction_costs",
        "shares_assigned",
        "sum_win_ret",
        "sum_win_ret_sq",
        "sum_loss_ret",
        "sum_loss_ret_sq",
        "n_trades",
        "n_wins",
        *CLOSE_CODES,
        "n_close_profit_loss",
    )
    amounts = dict(zip(names, sums, strict=True))
    for name in names[8:]:
        amounts[name] = jnp.round(amounts[name]).astype(jnp.int32)
    return amounts, assigned


def _basis_after_assignment(book: Book, shares_new, cost_basis_sum):
    """Shares and the seed's effective basis after buying `shares_new` at `cost_basis_sum`
    (sum of 100 n (K - premium)): the share-weighted mean of the old and new basis."""
    shares = book.shares + shares_new
    basis = jnp.where(
        shares > 0,
        (book.basis * book.shares + cost_basis_sum) / jnp.where(shares > 0, shares, 1.0),
        0.0,
    )
    return shares, basis


# --------------------------------------------------------------------------- marks
class Quotes(NamedTuple):
    """Mid prices and Greeks of every slot on one day, computed once after the expiries."""

    put: Marks  # each (put_slots, rungs, paths)
    hedge: Marks  # each (hedge_slots, hedge_legs, paths)
    cc: Quote  # each (paths,)


def _quotes(book: Book, slots: Slots, spot, iv, t, p, shape: EngineShape) -> Quotes:
    # Empty, closed or expired slots are quoted at a safe point (one day left); their weights
    # in every sum are 0.
    dtype = spot.dtype
    put_tau = _years(jnp.maximum(slots.put_expiry - t, 1), dtype)[:, None, None]
    hedge_tau = _years(jnp.maximum(slots.hedge_expiry - t, 1), dtype)[:, None, None]
    cc_tau = _years(jnp.maximum(book.cc_expiry - t, 1), dtype)
    # A fixed ladder's open puts sit at the ladder's strikes: one log(S / K) per rung and path,
    # not per position (the ring's empty slots are quoted there too, with weight 0).
    put_strike = book.put_strike if shape.moneyness else p.strikes[:, None]
    return Quotes(
        put=_marks(spot, put_strike, put_tau, iv, p, False, shape.smile),
        hedge=_marks(spot, book.hedge_strike, hedge_tau, iv, p, True, shape.smile),
        cc=_quote(spot, book.cc_strike, cc_tau, iv, p, True, shape.smile),
    )


class _Sums(NamedTuple):
    """Sums of contracts x (mid or a Greek) over a path's options of one side, (paths,) each."""

    price: Array
    delta: Array
    gamma: Array
    theta: Array
    vega: Array
    rho: Array

    def __add__(self, other):  # type: ignore[override]
        return _Sums(*(a + b for a, b in zip(self, other, strict=True)))

    def zeroed(self, mask):
        """The sums with 0 where `mask` (paths whose positions are gone)."""
        return _Sums(*(jnp.where(mask, 0.0, a) for a in self))


def _weighted(q: Quote, n) -> _Sums:
    """Sums of n x quote over a few positions (a tranche, a hedge group, the covered call)."""
    return _Sums(*(_sum(x * n) for x in q))


def _mark_sums(m: Marks, n, spot, iv, p, smile: bool) -> _Sums:
    """Sums of `n` x (mid, delta, gamma, theta, vega, rho) over a ring of positions (`n`:
    (slots, k, paths); `m.tau`: (slots, 1, 1)), from three products per position: n x delta,
    n x rate term, n x density. The Greeks are these terms times factors of the slot (`tau`,
    `sqrt(tau)`) or of the path (spot, IV), so the slot's factors weigh the positions in the
    sums (products with vectors of weights) and the path's scale the sums: per position
    this is half the work of forming the five Greeks (bench/README.md)."""
    rate = p.scalars["rate"]
    shape = n.shape
    slot_tau = jnp.broadcast_to(m.tau, shape[:-1] + (1,)).reshape(-1)
    slot_sqrt = jnp.broadcast_to(m.sqrt_tau, shape[:-1] + (1,)).reshape(-1)
    ones = jnp.ones_like(slot_tau)

    def weighted(x, weights):
        # One matrix-vector product per weight vector: a matrix of weights times the positions
        # summed in an order that depends on the block's width (1 ulp between chunk sizes).
        flat = jnp.broadcast_to(x, shape).reshape(-1, shape[-1])
        return [jnp.dot(w, flat, precision=jax.lax.Precision.HIGHEST) for w in weights]

    n_delta = weighted(n * m.delta, [ones])[0]
    n_rate, n_rate_tau = weighted(n * m.rate_term, [ones, slot_tau])
    n_pdf = n * m.pdf
    if smile:  # the volatility is the position's
        gamma = weighted(n_pdf * m.inv_total_vol, [ones])[0]
        theta_vol = weighted(n_pdf * m.vol, [1.0 / slot_sqrt])[0]
        vega = weighted(n_pdf, [slot_sqrt])[0]
    else:  # the path's: sum(n pdf / sqrt(tau)) serves gamma and theta
        pdf_inv_sqrt, vega = weighted(n_pdf, [1.0 / slot_sqrt, slot_sqrt])
        safe_iv = jnp.where(iv > 0.0, iv, 1.0)  # pdf is 0 where iv is 0
        gamma = pdf_inv_sqrt / safe_iv
        theta_vol = pdf_inv_sqrt * iv
    return _Sums(
        price=spot * n_delta - n_rate,
        delta=n_delta,
        gamma=gamma / spot,
        theta=(-0.5 * spot * theta_vol - rate * n_rate) / 365.0,
        vega=spot * vega / 100.0,
        rho=n_rate_tau / 100.0,
    )


def _years(steps_left, dtype) -> Array:
    return steps_left.astype(dtype) / _DAYS_PER_YEAR


def _sell_fill(mid, spread, p):
    """What a sale gets per share (seed: "Order Execution Framework", switch `fill`)."""
    s = p.scalars
    bid = jnp.maximum(mid - 0.5 * spread, s["min_quote"])
    ask = jnp.maximum(mid + 0.5 * spread, s["min_quote"])
    seed = jnp.minimum(jnp.maximum(mid + s["price_improvement_target"], bid), ask)
    return jnp.where(s["fill"] == _FILL_BID_ASK, bid, jnp.where(s["fill"] == _FILL_MID, mid, seed))


def _buy_fill(mid, spread, p):
    """What a purchase costs per share."""
    s = p.scalars
    bid = jnp.maximum(mid - 0.5 * spread, s["min_quote"])
    ask = jnp.maximum(mid + 0.5 * spread, s["min_quote"])
    seed = jnp.minimum(jnp.maximum(mid - s["price_improvement_target"], bid), ask)
    return jnp.where(s["fill"] == _FILL_BID_ASK, ask, jnp.where(s["fill"] == _FILL_MID, mid, seed))


def _contracts(x, p):
    """Whole contracts (floor) by default; fractional when `whole_contracts` is off."""
    x = jnp.maximum(x, 0.0)
    # floor(x + 1e-9): a count whole in exact arithmetic (20000*0.2/(400/1.5) = 15) stays whole.
    return jnp.where(p.scalars["whole_contracts"], jnp.floor(x + 1e-9), x)


def _iv_percentile(iv, p):
    """Percentile of ln IV in the stationary law of its OU process (STRATEGY.md choice)."""
    s = p.scalars
    sd = s["eta"] / jnp.sqrt(2.0 * s["kappa"])
    return 100.0 * ndtr((jnp.log(iv) - jnp.log(s["iv_long_run"])) / sd)


# --------------------------------------------------------------------------- the day's steps
def _accrue(book: Book, today, t, p):
    """Step 1: interest on sleeve cash, share marks, monthly additions, thesis events."""
    s = p.scalars
    # expm1, not exp(r / 252) - 1: float32 rounds the exp near 1 by up to 6e-8, 2.6e-4 of the
    # 2e-4 increment at r = 5 %.
    growth = jnp.expm1(s["rate"] / _DAYS_PER_YEAR)
    moved = t >= 1
    interest = jnp.where(moved, book.cash * growth, 0.0)
    share_move = jnp.where(moved, book.shares * (today["spot"] - book.spot_lags[0]), 0.0)
    addition = jnp.where(moved & (t % 21 == 0), s["monthly_addition"], 0.0)
    addition = jnp.broadcast_to(addition, book.cash.shape)
    book = book._replace(
        cash=book.cash + interest + addition,
        thesis_latch=book.thesis_latch | today["thesis_event"],
    )
    return book, dict(financing=interest, assignment_pnl=share_move, contributions=addition)


def _expiring_slot(expiry, t):
    """The one ring slot whose expiry step is `t` (all paths alike) and whether there is one."""
    hit = expiry == t
    slot = jnp.argmax(hit)
    return slot, hit[slot]


def _settle_expiries(book: Book, slots: Slots, spot, t, p):
    """Step 2: puts (assignment or worthless), hedge calls at intrinsic, covered calls. The sums
    read only the slot that expires today; the records are masked over the ring (a masked
    write vectorizes, an indexed update fused into the day's other rules did not)."""
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

    # Hedge calls: held to expiry and settled at intrinsic (seed: "Dynamic Hedging").
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

    # Covered calls: shares called away at the strike when in the money.
    cc_expiring = (book.cc_expiry == t) & (book.cc_n > 0)
    called = cc_expiring & (spot > book.cc_strike)
    called_shares = jnp.where(called, 100.0 * book.cc_n, 0.0)
    shares = book.shares - called_shares
    amounts = dict(
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


def _close_all_conditions(book: Book, today, pct, p):
    """The exits that close every short put at once: thesis, liquidity, IV (each a switch)."""
    s = p.scalars
    thesis = s["thesis_exit"] & (
        book.thesis_latch
        | (today["short_interest"] < s["thesis_short_interest_min"])
        | (jnp.abs(today["btc_correlation"]) > s["thesis_btc_corr_max"])
    )
    liquidity = s["liquidity_exit"] & (today["bid_ask_spread"] > s["liquidity_exit_spread"])
    iv_low = s["iv_exit"] & (pct < s["iv_exit_percentile"])
    return thesis, liquidity, iv_low


class _PutDay(NamedTuple):
    """The short puts after steps 3 and 4, what step 5 needs to liquidate them, and their sums."""

    remaining: Array  # (put_slots, rungs, paths) bool, still open
    fill: Array  # (put_slots, rungs, paths) USD per share, today's purchase fill
    sums: _Sums  # over the remaining puts
    notional: Array  # (paths,) USD, strike notional of the remaining puts


class _PutDecisions(NamedTuple):
    """What steps 3 and 4 do to each short put today, (put_slots, rungs, paths) each."""

    code: Array  # int8 close code of a put that closes today, OPEN for the others
    exercise: Array  # bool, exercised early (assigned at the strike)
    bought: Array  # bool, bought back (assignment risk or an exit condition)
    remaining: Array  # bool, still open


def _put_decisions(book: Book, slots: Slots, mid, today, t, pct, p) -> _PutDecisions:
    """Steps 3 and 4 decided: the seed's early-assignment score (optional close), rational
    exercise, then seed "Exit Conditions" with the reason chosen by urgency."""
    s = p.scalars
    spot = today["spot"]
    n, k, prem = book.put_n, book.put_strike, book.put_premium
    is_open = _is_open(book.put_closed, n)

    # seed: "monitor_early_assignment_risk" — deep ITM, low time value, rates.
    time_value = mid - jnp.maximum(k - spot, 0.0)
    score = (
        jnp.where(spot < 0.95 * k, 3, jnp.where(spot < 0.98 * k, 1, 0))
        + jnp.where(time_value < 0.10, 2, jnp.where(time_value < 0.25, 1, 0))
        + jnp.where(s["rate"] > 0.05, 1, 0)
    )
    at_risk = is_open & s["close_on_assignment_risk"] & (score >= s["assignment_score_close"])
    # choice: a rational holder exercises an American put worth less alive than dead.
    exercise = (
        is_open
        & ~at_risk
        & s["early_assignment"]
        & (mid < k - spot)
        & (today["early_u"] < s["early_assignment_prob"])
    )
    still_open = is_open & ~at_risk & ~exercise

    thesis, liquidity, iv_low = _close_all_conditions(book, today, pct, p)
    dte = (slots.put_expiry - t).astype(mid.dtype) * _CALENDAR_PER_STEP
    conditions = {
        "thesis": thesis,
        "stop": s["stop_loss"] & (mid > (1.0 + s["stop_loss_multiple"]) * prem),
        "time": s["time_exit"] & (dte < s["time_exit_dte"])[:, None, None],
        "liquidity": liquidity,
        "iv": iv_low,
        "profit": s["profit_take"] & (mid < (1.0 - s["profit_take_pct"]) * prem),
    }
    # The first holding condition in urgency order is the reason.
    code = jnp.zeros(n.shape, jnp.int8)
    taken = jnp.zeros(n.shape, bool)
    for name in reversed(CLOSE_REASONS):
        code = jnp.where(conditions[name], jnp.int8(CLOSE_CODES[f"n_close_{name}"]), code)
        taken = taken | conditions[name]
    early = jnp.int8(CLOSE_CODES["n_assigned_early"])
    action = jnp.where(
        exercise,
        early,
        jnp.where(
            at_risk,
            jnp.int8(CLOSE_CODES["n_close_assignment_risk"]),
            jnp.where(still_open & taken, code, jnp.int8(OPEN)),
        ),
    )
    # One int8 array materialized (`_materialized`): XLA otherwise recomputes the decisions
    # (~120 operations a position) in each of the five rules that read them (+14 %).
    action = _materialized(t, lambda: action)
    return _PutDecisions(
        code=action,
        exercise=action == early,
        bought=(action != OPEN) & (action != early),
        remaining=is_open & (action == OPEN),
    )


def _early_exercise_and_exits(book: Book, slots: Slots, q: Quotes, today, t, pct, p, shape):
    """Steps 3 and 4 (`_put_decisions`) carried out: each closing put keeps its record (code,
    price); the cash, shares and basis move now."""
    s = p.scalars
    spot, spread = today["spot"], today["bid_ask_spread"]
    n, k, prem = book.put_n, book.put_strike, book.put_premium
    mid = _mid(q.put, spot)
    d = _put_decisions(book, slots, mid, today, t, pct, p)
    fill = _buy_fill(mid, spread, p)

    exercised_n = jnp.where(d.exercise, n, 0.0)
    remaining_n = jnp.where(d.remaining, n, 0.0)
    cash_out = (
        jnp.where(d.bought, fill * 100.0 * n + s["commission"] * n, 0.0) + k * 100.0 * exercised_n
    )
    sums = _mark_sums(q.put, remaining_n, spot, today["iv"], p, shape.smile)
    paid, exercised, exercised_cost = _sums([cash_out, exercised_n, exercised_n * (k - prem)])
    shares, basis = _basis_after_assignment(book, 100.0 * exercised, 100.0 * exercised_cost)
    book = book._replace(
        cash=book.cash - paid,
        shares=shares,
        basis=basis,
        put_closed=jnp.where(d.bought | d.exercise, d.code, book.put_closed),
        put_close_price=jnp.where(
            d.bought, fill, jnp.where(d.exercise, spot, book.put_close_price)
        ),
    )
    notional = _sum(_over(k * 100.0 * remaining_n, 1))
    return book, _PutDay(d.remaining, fill, sums, notional)


def _hedge_sums(book: Book, q: Quotes, today, p, shape) -> tuple[_Sums, Array]:
    """Sums over the hedge calls and the contracts held."""
    sums = _mark_sums(q.hedge, book.hedge_n, today["spot"], today["iv"], p, shape.smile)
    return sums, _sum(book.hedge_n)


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


def _margin_and_ruin(book: Book, puts: _PutDay, hedges: _Sums, held, q: Quotes, today, t, p):
    """Step 5: a margin call buys back every short put; equity <= 0 liquidates everything.

    The liquidation's own sums run only on a day when some path of the block needs them."""
    s = p.scalars
    spot = today["spot"]
    cc_mark = 100.0 * q.cc.price * book.cc_n
    equity = (
        book.cash - 100.0 * puts.sums.price - cc_mark + 100.0 * hedges.price + book.shares * spot
    )
    required = puts.notional / s["max_leverage"]
    call = s["margin_calls"] & (puts.notional > 0) & (equity < required)

    def liquidate(book, put_sums, hedges):
        spread = today["bid_ask_spread"]
        n = book.put_n
        buy_back = _sums(
            [jnp.where(puts.remaining, puts.fill * 100.0 * n + s["commission"] * n, 0.0)]
        )[0]
        after_call = equity + jnp.where(call, 100.0 * put_sums.price - buy_back, 0.0)
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
        commission = s["commission"] * (jnp.where(ruin, held, 0.0) + cc_n)
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
        amounts = dict(
            call_hedge_pnl=hedge_sale,
            covered_call_pnl=-cc_cost,
            transaction_costs=-commission,
        )
        return book, put_sums.zeroed(close_all), hedges.zeroed(ruin), amounts

    def keep(book, put_sums, hedges):
        zero = jnp.zeros_like(equity)
        amounts = dict(call_hedge_pnl=zero, covered_call_pnl=zero, transaction_costs=zero)
        return book, put_sums, hedges, amounts

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
    amounts["n_margin_calls"] = call.astype(jnp.int32)
    return book, put_sums, hedges, amounts


def _covered_calls(book: Book, q: Quotes, today, t, p, shape: EngineShape):
    """Step 6: seed "Assignment Management Protocol" — the cost-basis decision tree."""
    s = p.scalars
    spot, iv = today["spot"], today["iv"]
    basis = book.basis
    sell = (
        s["covered_calls"]
        & ~book.ruined
        & (book.cc_n == 0)
        & (book.shares >= 100.0)
        & ((basis < s["cc_basis_good"]) | (basis >= s["cc_basis_hold"]))
    )
    n = jnp.where(sell, jnp.floor(book.shares / 100.0), 0.0)
    # seed: round(target_strike * 2) / 2 with target = basis * 1.15 (half up here, >= $0.50).
    strike = jnp.maximum(jnp.floor(basis * s["cc_strike_markup"] * 2.0 + 0.5) / 2.0, 0.5)
    cc_tau = _years(s["cc_expiry_steps"], spot.dtype)
    new = _quote(spot, strike, cc_tau, iv, p, True, shape.smile)
    fill = _sell_fill(new.price, today["bid_ask_spread"], p)
    commission = s["commission"] * n
    amounts = dict(
        covered_call_pnl=fill * 100.0 * n,
        transaction_costs=-commission,
        n_cc_sold=sell.astype(jnp.int32),
    )
    book = book._replace(
        cash=book.cash + fill * 100.0 * n - commission,
        cc_n=jnp.where(sell, n, book.cc_n),
        cc_strike=jnp.where(sell, strike, book.cc_strike),
        cc_premium=jnp.where(sell, fill, book.cc_premium),
        cc_expiry=jnp.where(sell, t + s["cc_expiry_steps"], book.cc_expiry),
    )
    cc_quote = Quote(*(jnp.where(sell, a, b) for a, b in zip(new, q.cc, strict=True)))
    return book, cc_quote, amounts


class _OptionSums(NamedTuple):
    """The book's options summed by side: what every measure of the book reads."""

    short: _Sums  # short puts and the covered call
    long: _Sums  # hedge calls


class _Measures(NamedTuple):
    """The book's risk measures at the day's prices (STRATEGY.md "Risk limits"), (paths,)."""

    equity: Array  # USD, sleeve equity at mids
    portfolio: Array  # USD, outside cash + sleeve
    delta_seed: Array  # contracts, the seed's sum of delta x quantity
    theta_usd: Array  # USD per calendar day, signed book
    vega_usd: Array  # USD per vol point
    rho_usd: Array  # USD per 1 % of rate
    var: Array  # USD, one-day delta-gamma normal VaR
    gamma_pct: Array  # USD, |gamma| S^2 (100 x dollar gamma of a 1 % move)
    notional: Array  # USD, short puts' strike notional
    notional_expiry: Array  # USD, the largest notional of one expiry (tranche)
    collateral: Array  # USD
    any_option: Array  # bool


def _put_notional(book: Book):
    """Strike notional of every open short put, (put_slots, rungs, paths)."""
    open_n = jnp.where(_is_open(book.put_closed, book.put_n), book.put_n, 0.0)
    return book.put_strike * 100.0 * open_n


def _measures(book: Book, sums: _OptionSums, hedge_held, notional, today, t, p) -> _Measures:
    s = p.scalars
    spot, iv = today["spot"], today["iv"]
    short, long = sums
    equity = book.cash - 100.0 * short.price + 100.0 * long.price + book.shares * spot
    outside = (s["portfolio_value"] - s["sleeve_initial"]) * jnp.exp(
        s["rate"] * t.astype(spot.dtype) / _DAYS_PER_YEAR
    )
    # seed: "calculate_portfolio_greeks" — delta x quantity, short or long alike.
    delta_seed = short.delta + long.delta + book.shares / 100.0
    delta_sh = 100.0 * (long.delta - short.delta) + book.shares
    gamma_sh = 100.0 * (long.gamma - short.gamma)
    sd = iv / jnp.sqrt(_DAYS_PER_YEAR)
    quad = gamma_sh * spot * spot * sd * sd
    z = ndtri(s["var_level"])
    var = z * jnp.sqrt((delta_sh * spot * sd) ** 2 + 0.5 * quad * quad) - 0.5 * quad
    by_expiry = _over(notional, 1)  # (put_slots, paths)
    total = _over(by_expiry, 0)
    return _Measures(
        equity=equity,
        portfolio=outside + equity,
        delta_seed=delta_seed,
        theta_usd=100.0 * (long.theta - short.theta),
        vega_usd=100.0 * (long.vega - short.vega),
        rho_usd=100.0 * (long.rho - short.rho),
        var=var,
        gamma_pct=jnp.abs(gamma_sh) * spot * spot,
        notional=total,
        notional_expiry=_over(by_expiry, 0, jnp.maximum),
        collateral=total / s["max_leverage"],
        any_option=(total > 0) | (hedge_held > 0) | (book.cc_n > 0),
    )


def _pairwise_notional(put_strike, notional, strikes):
    """Open notional at each strike value of `strikes` (k, paths), positions with equal K
    grouped, by comparing every pair. `put_strike`, `notional`: (put_slots, rungs, paths)."""
    return _fold(
        jnp.add,
        [
            jnp.where(strikes == k, n, 0.0)
            for k, n in zip(_rows(put_strike), _rows(notional), strict=True)
        ],
    )


def _ladder_notional(notional, p):
    """Open notional at each ladder strike `p.strikes[r]`, (rungs, paths), when every position
    sits at a ladder strike (strike_mode "fixed"): rung sums, then rungs of equal strike."""
    by_rung = _over(notional, 0)  # (rungs, paths)
    same = p.strikes[:, None] == p.strikes[None, :]  # (rungs, rungs), one for all paths
    return _fold(
        jnp.add,
        [jnp.where(same[:, r, None], by_rung[r], 0.0) for r in range(by_rung.shape[0])],
    )


def _open_at_strikes(book: Book, notional, strikes, p, shape: EngineShape):
    """Open notional at each of the strikes of a new tranche, (rungs, paths)."""
    if shape.moneyness:
        return _pairwise_notional(book.put_strike, notional, strikes)
    return _ladder_notional(notional, p)


def _largest_strike_notional(book: Book, notional, p, shape: EngineShape):
    """max over positions of the open notional at the position's strike value. A fixed ladder
    needs only rung sums; a moving (moneyness) ladder compares every pair of positions."""
    if shape.moneyness:
        flat_k = book.put_strike.reshape(-1, book.put_strike.shape[-1])
        return _over(_pairwise_notional(book.put_strike, notional, flat_k), 0, jnp.maximum)
    return _over(_ladder_notional(notional, p), 0, jnp.maximum)


def _high_breach(m: _Measures, p) -> Array:
    """A HIGH limit does not hold (they block entries): allocation, leverage, VaR, expiry."""
    b = _breaches(m, None, p)
    return b["allocation"] | b["leverage"] | b["var"] | b["expiry"]


def _breaches(m: _Measures, notional_strike, p) -> dict:
    """Each limit of STRATEGY.md "Risk limits": True when it does not hold."""
    s = p.scalars
    pv, eq, has_puts = m.portfolio, m.equity, m.notional > 0
    greek = m.any_option
    out = {
        "allocation": m.notional / pv > s["max_total_strategy_pct"],
        "leverage": has_puts & (m.notional > s["max_leverage"] * eq),
        "var": m.var > s["daily_var_limit"] * pv,
        "expiry": has_puts & (m.notional_expiry > s["max_concentration_single_expiration"] * eq),
        "delta": greek & ((m.delta_seed < s["delta_min"]) | (m.delta_seed > s["delta_max"])),
        "gamma": greek & (m.gamma_pct / pv > s["gamma_alert"]),
        "theta": greek & (100.0 * m.theta_usd / pv < s["theta_minimum"]),
        "vega": greek & (100.0 * jnp.abs(m.vega_usd) / pv > s["vega_limit"]),
        "rho": greek & (100.0 * jnp.abs(m.rho_usd) / pv > s["rho_limit"]),
    }
    if notional_strike is not None:
        out["strike"] = has_puts & (
            notional_strike > s["max_single_strike_pct"] * m.notional * (1.0 + 1e-9)
        )
    return out


def _squeeze_probability(today, pct, momentum):
    """seed: "calculate_squeeze_probability" — five factors capped at 1 above, not floored."""
    factors = (
        jnp.minimum(today["short_interest"] / 50.0, 1.0) * 0.3
        + jnp.minimum(today["borrow_cost"] / 100.0, 1.0) * 0.25
        + jnp.minimum((pct - 50.0) / 50.0, 1.0) * 0.2
        + jnp.minimum(today["volume_ratio"] / 3.0, 1.0) * 0.15
        + jnp.minimum(momentum / 0.2, 1.0) * 0.1
    )
    return jnp.minimum(factors, 0.95)


def _entry_signal(today, pct, p):
    """seed: "Entry Conditions" — at least 6 of the 8 conditions."""
    s = p.scalars
    dte = s["put_expiry_steps"].astype(pct.dtype) * _CALENDAR_PER_STEP
    conditions = (
        pct > s["signal_iv_percentile_min"],
        today["short_interest"] > s["signal_short_interest_min"],
        jnp.broadcast_to((dte >= s["signal_dte_min"]) & (dte <= s["signal_dte_max"]), pct.shape),
        today["bid_ask_spread"] < s["signal_spread_max"],
        today["open_interest"] > s["signal_open_interest_min"],
        today["liquidity_score"] > s["signal_liquidity_min"],
        today["vix"] > s["signal_vix_min"],
        jnp.abs(today["btc_correlation"]) < s["signal_btc_corr_max"],
    )
    return sum(c.astype(jnp.int32) for c in conditions) >= s["signal_min_conditions"]


def _ladder_strikes(spot, p, shape: EngineShape):
    """Fixed dollar strikes, or the ladder re-centred at the spot (rounded half up to the grid).
    Returns (rungs, paths)."""
    s = p.scalars
    grid = s["strike_grid"]
    strikes = p.strikes[:, None]
    if not shape.moneyness:
        return jnp.broadcast_to(strikes, (strikes.shape[0], *spot.shape))
    return jnp.maximum(jnp.floor(strikes * spot / s["reference_spot"] / grid + 0.5) * grid, grid)


class _Entry(NamedTuple):
    """What an entry step sells and buys (zeros when the step is not an entry step)."""

    cash: Array  # (paths,) USD, net cash of the trades
    put_n: Array  # (rungs, paths)
    put_strike: Array  # (rungs, paths)
    put_premium: Array  # (rungs, paths)
    hedge_n: Array  # (hedge_legs, paths)
    hedge_strike: Array  # (hedge_legs, paths)
    added: _OptionSums  # the new positions' sums at today's quotes
    amounts: dict  # tally name -> (paths,) increment of a live path
    retired: dict  # tally name -> (paths,) the trades of the reused slot, every path
    retired_by_rung: Array  # (rungs, paths) int, their assignments per rung


def _entry_slots(t, p, shape):
    tranche = t // p.scalars["entry_every_days"]
    return tranche % shape.put_slots, tranche % shape.hedge_slots


def _enter(book: Book, sums: _OptionSums, hedge_held, today, pct, t, p, shape) -> _Entry:
    """Step 7 on an entry day: limits, signal, sizing, the tranche, its hedge calls; and the
    trades of the slot the tranche reuses enter the tallies."""
    s = p.scalars
    spot, iv, spread = today["spot"], today["iv"], today["bid_ask_spread"]
    dtype = spot.dtype
    live = ~book.ruined
    notional = _put_notional(book)
    m = _measures(book, sums, hedge_held, notional, today, t, p)
    high = s["enforce_limits"] & _high_breach(m, p)
    thesis, liquidity, iv_low = _close_all_conditions(book, today, pct, p)
    exit_block = thesis | liquidity | iv_low
    signal = _entry_signal(today, pct, p)
    go = live & signal & ~high & ~exit_block
    amounts = dict(
        n_entry_days=live,
        n_blocked_signal=live & ~signal,
        n_blocked_limits=live & signal & high,
        n_blocked_exit=live & signal & ~high & exit_block,
    )

    # The slot's last tranche has expired: its trades are tallied before it is overwritten.
    put_slot, _ = _entry_slots(t, p, shape)
    retired, retired_assigned = _tally_trades(
        book.put_n[put_slot],
        book.put_strike[put_slot],
        book.put_premium[put_slot],
        book.put_closed[put_slot],
        book.put_close_price[put_slot],
        p,
    )

    # Sizing: free collateral, capped by the expiry and strike concentration limits.
    lev = s["max_leverage"]
    free = book.cash - m.collateral
    budget = jnp.maximum(
        jnp.minimum(free, s["max_concentration_single_expiration"] * m.equity / lev),
        0.0,
    )
    strikes = _ladder_strikes(spot, p, shape)  # (rungs, paths)
    per_contract = strikes * 100.0 / lev
    planned = budget * p.weights[:, None] / per_contract
    planned_notional = _sum(planned * strikes * 100.0)
    open_at_strike = _open_at_strikes(book, notional, strikes, p, shape)
    # The strike cap's room at each rung's strike before this tranche (may be negative).
    strike_room = s["max_single_strike_pct"] * (m.notional + planned_notional) - open_at_strike
    capacity = _contracts(
        jnp.minimum(
            s["max_volume_participation"] * today["option_volume"],
            s["max_open_interest_pct"] * today["open_interest"],
        ),
        p,
    )

    def size():
        """Contracts per rung after the strike cap, flooring and capacity, and the capacity
        cut of each rung. Rungs that share a strike value (a moneyness ladder at a low spot)
        share its strike cap and capacity: in ladder order, each rung gets what the rungs
        before it at the same strike left (ENGINE_SPEC step 7 "Sizing")."""
        sold, wanted = [], []
        for r in range(strikes.shape[0]):
            k = strikes[r]
            sold_here = jnp.zeros_like(capacity)  # contracts
            sold_notional = jnp.zeros_like(capacity)  # USD
            for j in range(r):
                same = strikes[j] == k
                sold_here = sold_here + jnp.where(same, sold[j], 0.0)
                sold_notional = sold_notional + jnp.where(same, sold[j] * strikes[j] * 100.0, 0.0)
            room = jnp.maximum(strike_room[r] - sold_notional, 0.0)
            want = _contracts(jnp.minimum(planned[r], room / (k * 100.0)), p)
            left = jnp.maximum(capacity - sold_here, 0.0)
            # seed: "market_impact_limits" — opening trades only, cut to volume and open
            # interest.
            sold.append(jnp.where(s["capacity_limits"] & (want > left), left, want))
            wanted.append(want)
        n, want = jnp.stack(sold), jnp.stack(wanted)
        cut = (n < want) & go
        return jnp.where(go, n, 0.0), jnp.where(cut, want - n, 0.0), cut

    # Materialized (`_materialized`): XLA otherwise recomputes the sizing in each of the ~15
    # rules and sums that read `n`.
    n, cut_by, cut = _materialized(t, size)
    amounts.update(contracts_cut=_sum(cut_by), n_orders_cut=_count(cut))

    put_tau = _years(s["put_expiry_steps"], dtype)
    new = _quote(spot, strikes, put_tau, iv, p, False, shape.smile)
    prem = _sell_fill(new.price, spread, p)
    commission = s["commission"] * n
    net_premium = _sum(prem * 100.0 * n - commission)
    put_commission = _sum(commission)

    # seed: "Dynamic Hedging Specifications" — the dynamic hedge ratio and the call ladder.
    momentum = spot / book.spot_lags[4] - 1.0
    squeeze = _squeeze_probability(today, pct, momentum)
    mult = (
        jnp.where(pct > s["hedge_iv_extreme_percentile"], s["hedge_iv_extreme_mult"], 1.0)
        * jnp.where(squeeze > s["hedge_squeeze_threshold"], s["hedge_squeeze_mult"], 1.0)
        * jnp.where(m.delta_seed < s["hedge_delta_threshold"], s["hedge_delta_mult"], 1.0)
        * jnp.where(
            iv / book.iv_prev > 1.0 + s["vol_spike_threshold"],
            s["hedge_vol_spike_mult"],
            1.0,
        )
    )
    ratio = jnp.minimum(s["hedge_base_ratio"] * mult, s["hedge_max_ratio"])
    hedge_budget = jnp.where(s["hedges"] & (net_premium > 0), ratio * net_premium, 0.0)
    high_iv = pct > s["hedge_regime_percentile"]  # row 0 of the sets, else row 1
    moneyness = jnp.where(high_iv, p.hedge_moneyness[0][:, None], p.hedge_moneyness[1][:, None])
    weights = jnp.where(high_iv, p.hedge_weights[0][:, None], p.hedge_weights[1][:, None])
    hedge_strikes = moneyness * spot
    hedge_tau = _years(s["hedge_expiry_steps"], dtype)
    hedge_new = _quote(spot, hedge_strikes, hedge_tau, iv, p, True, shape.smile)
    fill = _buy_fill(hedge_new.price, spread, p)
    hedge_n = _contracts(hedge_budget * weights / (fill * 100.0 + s["commission"]), p)
    hedge_n = jnp.where(weights > 0, hedge_n, 0.0)
    hedge_commission = _sum(s["commission"] * hedge_n)
    hedge_cost = _sum(fill * 100.0 * hedge_n)
    amounts.update(
        transaction_costs=-put_commission - hedge_commission,
        n_tranches=_over(n > 0, 0, jnp.logical_or),
        call_hedge_pnl=-hedge_cost,
        hedge_contracts=_sum(hedge_n),
    )
    return _Entry(
        cash=net_premium - hedge_cost - hedge_commission,
        put_n=n,
        put_strike=strikes,
        put_premium=prem,
        hedge_n=hedge_n,
        hedge_strike=hedge_strikes,
        added=_OptionSums(short=_weighted(new, n), long=_weighted(hedge_new, hedge_n)),
        amounts=amounts,
        retired=retired,
        retired_by_rung=retired_assigned.astype(jnp.int32),
    )


def _no_entry(book: Book, sums, hedge_held, today, pct, t, p, shape) -> _Entry:
    """The entry record of a step that is not an entry step: nothing traded."""
    zeros = jax.eval_shape(
        functools.partial(_enter, shape=shape), book, sums, hedge_held, today, pct, t, p
    )
    return jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), zeros)


def _apply_entry(book: Book, slots: Slots, e: _Entry, is_entry, t, p, shape):
    """Write an entry step's tranche and hedge group into their ring slots (all paths enter on
    the same steps, so the slot is one number; its last tranche has expired)."""
    s = p.scalars
    put_slot, hedge_slot = _entry_slots(t, p, shape)

    def put_in(ring, new, slot):
        return ring.at[slot].set(jnp.where(is_entry, new, ring[slot]))

    book = book._replace(
        cash=book.cash + e.cash,
        put_n=put_in(book.put_n, e.put_n, put_slot),
        put_strike=put_in(book.put_strike, e.put_strike, put_slot),
        put_premium=put_in(book.put_premium, e.put_premium, put_slot),
        put_closed=put_in(book.put_closed, jnp.zeros_like(book.put_closed[0]), put_slot),
        put_close_price=put_in(
            book.put_close_price, jnp.zeros_like(book.put_close_price[0]), put_slot
        ),
        hedge_n=put_in(book.hedge_n, e.hedge_n, hedge_slot),
        hedge_strike=put_in(book.hedge_strike, e.hedge_strike, hedge_slot),
    )
    slots = Slots(
        put_expiry=put_in(slots.put_expiry, t + s["put_expiry_steps"], put_slot),
        hedge_expiry=put_in(slots.hedge_expiry, t + s["hedge_expiry_steps"], hedge_slot),
    )
    return book, slots


# --------------------------------------------------------------------------- one day, all days
def _stack_tallies(amounts: dict, names, dtype, n_paths) -> Array:
    """One `(len(names), paths)` array of the increments in `amounts` (0 where absent)."""
    zero = jnp.zeros((n_paths,), dtype)
    return jnp.stack([amounts[name].astype(dtype) if name in amounts else zero for name in names])


def _merge(*dicts) -> dict:
    out: dict = {}
    for d in dicts:
        for name, value in d.items():
            out[name] = out[name] + value if name in out else value
    unknown = set(out) - set(FLOAT_ROW) - set(INT_ROW)
    assert not unknown, f"not a tally: {sorted(unknown)}"
    return out


def _add_tallies(book: Book, amounts: dict, mask=None) -> Book:
    """Add per-path increments to the packed tallies (only where `mask`, if given)."""
    n_paths = book.cash.shape[-1]
    f = _stack_tallies(amounts, FLOAT_TALLIES, book.float_tally.dtype, n_paths)
    i = _stack_tallies(amounts, INT_TALLIES, jnp.int32, n_paths)
    if mask is not None:
        f, i = jnp.where(mask, f, 0.0), jnp.where(mask, i, 0)
    return book._replace(float_tally=book.float_tally + f, int_tally=book.int_tally + i)


# The book's fields a ruined path keeps as they are. The rings need no freezing: a ruined path
# holds no option and opens none (entries, hedges and covered calls need a live path).
_FROZEN_AFTER_RUIN = (
    "cash",
    "cc_n",
    "cc_strike",
    "cc_premium",
    "cc_expiry",
    "shares",
    "basis",
    "spot_lags",
    "iv_prev",
    "thesis_latch",
    "ruined",
    "ruin_step",
    "first_breach",
)


def _materialized(t, compute):
    """`compute()` as the output of a `lax.cond` on a predicate that always holds (`t >= 0`):
    XLA materializes a branch's results once, where it would otherwise fuse their cheap tail
    into each rule that reads them and recompute it there."""
    return jax.lax.cond(
        t >= 0,
        compute,
        lambda: jax.tree_util.tree_map(
            lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(compute)
        ),
    )


def _day(book: Book, slots: Slots, today: dict, t, p: EngineParams, shape: EngineShape):
    """Steps 1-8 of docs/ENGINE_SPEC.md for every path of the block on step `t`. Returns the new
    book and slots and E_t (paths,). The days after a ruin leave a path's book as it is."""
    start = book
    spot, iv = today["spot"], today["iv"]
    pct = today["iv_percentile"]
    book, accrued = _accrue(book, today, t, p)
    book, settled = _settle_expiries(book, slots, spot, t, p)
    # Materialized once (`_materialized`): XLA fused the CDFs' polynomials into each rule over
    # the ring that reads a mid or a Greek and recomputed them there (+5 %; the same for the
    # put decisions cost more than it saved).
    q = _materialized(t, lambda: _quotes(book, slots, spot, iv, t, p, shape))
    book, puts = _early_exercise_and_exits(book, slots, q, today, t, pct, p, shape)
    hedges, held = _hedge_sums(book, q, today, p, shape)
    book, put_sums, hedges, liquidated = _margin_and_ruin(book, puts, hedges, held, q, today, t, p)
    held = jnp.where(book.ruined, 0.0, held)
    book, cc_quote, covered = _covered_calls(book, q, today, t, p, shape)
    sums = _OptionSums(short=put_sums + _weighted(cc_quote, book.cc_n), long=hedges)
    is_entry = t % p.scalars["entry_every_days"] == 0
    entry = jax.lax.cond(
        is_entry,
        functools.partial(_enter, shape=shape),
        functools.partial(_no_entry, shape=shape),
        book,
        sums,
        held,
        today,
        pct,
        t,
        p,
    )
    book, slots = _apply_entry(book, slots, entry, is_entry, t, p, shape)
    sums = _OptionSums(sums.short + entry.added.short, sums.long + entry.added.long)
    held = held + entry.amounts["hedge_contracts"]

    # Step 8: end of day — equity and the breach counters of the book as it stands.
    notional = _put_notional(book)
    m = _measures(book, sums, held, notional, today, t, p)
    breach = _breaches(m, _largest_strike_notional(book, notional, p, shape), p)
    breach = {k: v & ~book.ruined for k, v in breach.items()}  # none on the ruin step
    hit = jnp.stack([breach[name] for name in LIMITS])
    daily = _merge(
        accrued,
        settled,
        liquidated,
        covered,
        entry.amounts,
        {f"breach_{name}": breach[name] for name in LIMITS},
    )
    equity = jnp.where(book.ruined, book.cash, m.equity)
    # A path ruined on an earlier day does nothing: its book stays as the liquidation left it.
    # The trades of a reused slot are tallied on every path (the ruin closed them).
    frozen = start.ruined
    book = book._replace(
        first_breach=jnp.where((book.first_breach < 0) & hit, t, book.first_breach),
        spot_lags=jnp.concatenate([spot[None], book.spot_lags[:-1]]),
        iv_prev=iv,
        assigned_by_rung=book.assigned_by_rung + entry.retired_by_rung,
    )
    daily = {k: jnp.where(frozen, jnp.zeros_like(v), v) for k, v in daily.items()}
    book = _add_tallies(book, _merge(daily, entry.retired))
    book = book._replace(
        **{
            name: jnp.where(frozen, getattr(start, name), getattr(book, name))
            for name in _FROZEN_AFTER_RUIN
        }
    )
    return book, slots, jnp.where(frozen, start.cash, equity)


def _close_the_books(book: Book, slots: Slots, n_steps, p, shape: EngineShape) -> Book:
    """At the horizon the trades not yet tallied enter the tallies, and open positions enter the
    attribution at mid (docs/ENGINE_SPEC.md). `spot_lags[0]` and `iv_prev` hold the last day's
    spot and IV (a ruined path has no position left to mark)."""
    spot = book.spot_lags[0]
    q = _quotes(book, slots, spot, book.iv_prev, n_steps, p, shape)
    trades, assigned = _tally_trades(
        book.put_n,
        book.put_strike,
        book.put_premium,
        book.put_closed,
        book.put_close_price,
        p,
        total=_sums,
    )
    open_n = jnp.where(_is_open(book.put_closed, book.put_n), book.put_n, 0.0)
    add = {
        "mark_to_market": 100.0 * _sums([(book.put_premium - _mid(q.put, spot)) * open_n])[0],
        "call_hedge_pnl": 100.0 * _sums([_mid(q.hedge, spot) * book.hedge_n])[0],
        "covered_call_pnl": -100.0 * q.cc.price * book.cc_n,
    }
    book = _add_tallies(book, _merge(trades, add))
    return book._replace(
        assigned_by_rung=book.assigned_by_rung + _over(assigned.astype(jnp.int32), 0)
    )


def _scan_days(book, slots, horizon, n_days, next_day, carry0, today0, p, shape):
    """Run steps 0 … horizon (a traced int below `n_days`) from day 0's market `today0`;
    `next_day(carry, t) -> (carry, today)` gives the market of step t >= 1. Returns the final
    book and slots and E_t, (n_days, paths) (rows past the horizon are 0).

    A `fori_loop` with a traced trip count, not a `scan` over all `n_days`: the padding days of
    a shorter horizon cost nothing, and no branch per day copies the book. The next day's market
    travels in the loop carry: a carried value is a materialized buffer, which every rule reads
    as a plain vector (indexing into the inputs, or generating the market, fused into the rules
    kept XLA's CPU loops from vectorizing and recomputed the market in each of them)."""

    def with_percentile(today):
        # The IV percentile travels with the market for the same reason: fused into the rules
        # over the ring, its `erfc` was recomputed for every position (a quarter of the day).
        return {**today, "iv_percentile": _iv_percentile(today["iv"], p)}

    def one_day(t, state):
        book, slots, carry, today, equity = state
        book, slots, equity_t = _day(book, slots, today, t, p, shape)
        carry, tomorrow = next_day(carry, t + 1)
        return book, slots, carry, with_percentile(tomorrow), equity.at[t].set(equity_t)

    equity0 = jnp.zeros((n_days, *book.cash.shape), book.cash.dtype)
    book, slots, _, _, equity = jax.lax.fori_loop(
        0, horizon + 1, one_day, (book, slots, carry0, with_percentile(today0), equity0)
    )
    return book, slots, equity


def _summary(book: Book, slots: Slots, equity, horizon, p, shape: EngineShape) -> dict:
    """The per-path summary (paths first, as docs/ENGINE_SPEC.md names it)."""
    book = _close_the_books(book, slots, horizon, p, shape)
    dtype = book.cash.dtype
    n_paths = book.cash.shape[-1]
    outside = (p.scalars["portfolio_value"] - p.scalars["sleeve_initial"]) * jnp.exp(
        p.scalars["rate"] * horizon.astype(dtype) / _DAYS_PER_YEAR
    )
    final_equity = equity[horizon]
    summary = {name: book.float_tally[i] for i, name in enumerate(FLOAT_TALLIES)}
    summary.update({name: book.int_tally[i] for i, name in enumerate(INT_TALLIES)})
    summary.update(
        initial_equity=jnp.broadcast_to(p.scalars["sleeve_initial"], (n_paths,)),
        final_equity=final_equity,
        final_portfolio_value=outside + final_equity,
        ruined=book.ruined.astype(jnp.int32),
        ruin_step=book.ruin_step,
        assigned_by_rung=book.assigned_by_rung.T,
        equity=equity.T,
        **{f"first_breach_{name}": book.first_breach[i] for i, name in enumerate(LIMITS)},
    )
    return summary


def _initial_book(spot0, iv0, p, shape, dtype) -> tuple[Book, Slots]:
    book = empty_book(
        p.scalars["sleeve_initial"],
        spot0,
        iv0,
        shape.put_slots,
        shape.rungs,
        shape.hedge_slots,
        shape.hedge_legs,
        dtype,
    )
    return book, empty_slots(shape.put_slots, shape.hedge_slots)


@functools.partial(jax.jit, static_argnames=("shape",))
def _run(market: dict, horizon: Array, p: EngineParams, shape: EngineShape) -> dict:
    """Scan the days of a block of paths. `market` arrays are (days, paths); steps after
    `horizon` (a traced int) are padding and change nothing."""
    dtype = market["spot"].dtype
    n_days = market["spot"].shape[0]
    book, slots = _initial_book(market["spot"][0], market["iv"][0], p, shape, dtype)

    def next_day(carry, t):
        return carry, {k: v[t] for k, v in market.items()}  # t past the end: the last row

    today0 = {k: v[0] for k, v in market.items()}
    book, slots, equity = _scan_days(book, slots, horizon, n_days, next_day, (), today0, p, shape)
    return _summary(book, slots, equity, horizon, p, shape)


@functools.partial(jax.jit, static_argnames=("shape", "n_paths", "n_days", "dtype"))
def _run_generated(
    mkt, base_key, path_start, horizon, p: EngineParams, shape, n_paths, n_days, dtype
) -> dict:
    """As `_run`, with each day's market generated inside the scan from the path keys
    (`simkit.paths.market.market_step`, the random numbers of `simulate_market`)."""
    from simkit.paths.keys import path_keys
    from simkit.paths.market import market_init, market_step

    keys = path_keys(base_key, path_start, n_paths)
    state0, day0 = market_init(mkt, keys, dtype)
    book, slots = _initial_book(day0.spot, day0.iv, p, shape, dtype)

    def next_day(state, t):
        state, market = market_step(mkt, keys, state, t)
        return state, {name: getattr(market, name) for name in MARKET_FIELDS}

    today0 = {name: getattr(day0, name) for name in MARKET_FIELDS}
    book, slots, equity = _scan_days(
        book, slots, horizon, n_days, next_day, state0, today0, p, shape
    )
    return _summary(book, slots, equity, horizon, p, shape)


def _padded_size(n: int, quantum: int, step: int = 1024) -> int:
    """Round a block's paths up to a power of two (at least `quantum`) up to `step`, and to a
    multiple of `step` above it, so that blocks of other sizes reuse a compiled engine and a
    large block (a run's chunk of 5,000 paths: 5,120) computes at most 20 % padding paths."""
    if n > step:
        return -(-n // step) * step
    return max(quantum, 1 << max(n - 1, 0).bit_length())


# --------------------------------------------------------------------------- public API
def _prepare(market: Mapping[str, object], dtype) -> dict:
    out = {}
    for name in MARKET_FIELDS:
        if name not in market:
            raise ValueError(f"market: missing input {name!r}; expected {MARKET_FIELDS}")
        value = jnp.asarray(market[name])
        out[name] = value.astype(bool) if name == "thesis_event" else value.astype(dtype)
    return out


def _to_numpy(out: dict, n_paths: int, n_days: int) -> dict[str, np.ndarray]:
    out = {k: np.asarray(v)[:n_paths] for k, v in out.items()}
    out["equity"] = out["equity"][:, :n_days]
    return out


def simulate_paths(market: Mapping[str, object], cfg: StrategyConfig, mkt) -> dict[str, np.ndarray]:
    """Run the strategy on given market paths (arrays shaped (paths, steps + 1)).

    The engine computes in the dtype of ``market["spot"]`` (float64 needs JAX's x64 mode).
    ``mkt`` supplies ``rate``, ``iv_long_run``, ``kappa`` and ``eta``. Returns the per-path
    summary of docs/ENGINE_SPEC.md as NumPy arrays.
    """
    dtype = jnp.asarray(market["spot"]).dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    prepared = _prepare(market, dtype)
    n_paths, n_days = prepared["spot"].shape
    # Pad paths to a power of two and days to a multiple of 64 by repeating the edge values:
    # one compiled engine then serves blocks and horizons of many sizes (tests, grids, the
    # last block of a run). Padding paths are dropped, padding days are skipped.
    pad_paths = _padded_size(n_paths, 8) - n_paths
    pad_days = -n_days % 64
    prepared = {
        k: jnp.pad(v, ((0, pad_paths), (0, pad_days)), mode="edge").T for k, v in prepared.items()
    }
    horizon = jnp.asarray(n_days - 1, jnp.int32)
    out = _run(prepared, horizon, engine_params(cfg, mkt, dtype), engine_shape(cfg))
    return _to_numpy(out, n_paths, n_days)


def simulate_block(
    cfg: StrategyConfig,
    mkt,
    *,
    seed: int,
    cell: int,
    path_start: int,
    n_paths: int,
    n_steps: int,
    float64: bool = False,
) -> dict[str, np.ndarray]:
    """Generate the market of paths ``path_start … path_start + n_paths - 1`` of a grid cell and
    run the strategy on it. A path's numbers depend only on (seed, cell, path index).

    The market is `simkit.paths.market.simulate_market`'s (the same random numbers), generated a
    day at a time inside the engine's scan, so memory is set by the block, not the horizon.
    """
    from simkit.paths.keys import cell_key
    from simkit.paths.market import MarketParams, check_dtype

    if not isinstance(mkt, MarketParams):
        raise TypeError(f"mkt must be a MarketParams; got {type(mkt).__name__}.")
    for name, value, minimum in (
        ("seed", seed, 0),
        ("cell", cell, 0),
        ("path_start", path_start, 0),
        ("n_paths", n_paths, 1),
        ("n_steps", n_steps, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    if cell >= 2**32 or seed >= 2**32:
        raise ValueError(f"seed and cell must be below 2**32; got seed={seed}, cell={cell}.")
    if path_start + n_paths > 2**32:
        raise ValueError(
            f"path indices must stay below 2**32; got up to {path_start + n_paths - 1}."
        )
    with x64(float64):
        dtype = check_dtype(jnp.float64 if float64 else jnp.float32)
        n_days = n_steps + 1
        out = _run_generated(
            mkt,
            cell_key(seed, cell),
            np.uint32(path_start),
            jnp.asarray(n_steps, jnp.int32),
            _params(cfg, mkt, dtype),
            shape=engine_shape(cfg),
            n_paths=_padded_size(n_paths, 8),
            n_days=n_days + (-n_days % 64),
            dtype=dtype,
        )
        return _to_numpy(out, n_paths, n_days)


@functools.lru_cache(maxsize=16)
def _cached_params(cfg: StrategyConfig, mkt, dtype) -> EngineParams:
    return engine_params(cfg, mkt, dtype)


def _params(cfg: StrategyConfig, mkt, dtype) -> EngineParams:
    """`engine_params`, built once per (strategy, market, dtype): the blocks of a cell share
    them (~90 small host-to-device arrays a block otherwise, ~3 % of a 2,048-path block)."""
    try:
        hash((cfg, mkt))
    except TypeError:  # an unhashable field (an array in the market record): no cache
        return engine_params(cfg, mkt, dtype)
    return _cached_params(cfg, mkt, jnp.dtype(dtype))


SUMMARY_FIELDS = (
    "initial_equity",
    "final_equity",
    "final_portfolio_value",
    *FLOAT_TALLIES,
    *INT_TALLIES,
    "ruined",
    "ruin_step",
    "assigned_by_rung",
    *(f"first_breach_{name}" for name in LIMITS),
    "equity",
)

__all__ = ["simulate_paths", "simulate_block", "SUMMARY_FIELDS", "MARKET_FIELDS"]
