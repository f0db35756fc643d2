"""Black-Scholes marks and quotes of the book's options, fills, and the book's mark sums.

seed: "Black-Scholes Foundation" — European Black-Scholes, no dividend; the IV percentile and
the skew are choices of docs/MODELLING.md "Pricing". How a day keeps the pricing cheap
(bench/README.md): one evaluation per position and day (`_marks`) shares `d1`, `d2`, their
densities and normal CDFs (in float32 from the densities, A&S 26.2.17) between the mid and the
Greeks; without a skew the volatility is the path's, so `1 / (vol sqrt(tau))` is per slot and
path; a fixed ladder's puts take one `log(S / K)` per rung and path; the book's six sums (mid
and five Greeks) come from three products per position (`_mark_sums`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import ndtr

from simkit.strategy.params import EngineShape
from simkit.strategy.rules.sums import _sum
from simkit.strategy.state import Book, Slots

_FILL_BID_ASK, _FILL_MID, _FILL_SEED = 0, 1, 2
_DAYS_PER_YEAR = 252.0
_CALENDAR_PER_STEP = 365.0 / 252.0
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


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
    rate = p.market.rate
    # seed: "Black-Scholes Foundation" — d1, d2 and the put price, q = 0.
    w = 1.0 if call else -1.0
    log_spot_strike = jnp.log(spot / strike)
    vol = (
        iv * jnp.exp(p.execution.skew * log_spot_strike) if smile else iv
    )  # iv * (K / S) ** (-skew)
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
    # seed: "Greeks Calculations" — theta per calendar day (/ 365), vega and rho per 1 % (/ 100).
    rate = p.market.rate
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
    rate = p.market.rate
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


class _OptionSums(NamedTuple):
    """The book's options summed by side: what every measure of the book reads."""

    short: _Sums  # short puts and the covered call
    long: _Sums  # hedge calls


def _years(steps_left, dtype) -> Array:
    return steps_left.astype(dtype) / _DAYS_PER_YEAR


def _sell_fill(mid, spread, p):
    """What a sale gets per share (switch `fill`)."""
    # seed: "Order Execution Framework" — a limit at mid + price_improvement_target ($0.05).
    bid = jnp.maximum(mid - 0.5 * spread, p.execution.min_quote)
    ask = jnp.maximum(mid + 0.5 * spread, p.execution.min_quote)
    seed = jnp.minimum(jnp.maximum(mid + p.execution.price_improvement_target, bid), ask)
    return jnp.where(
        p.execution.fill == _FILL_BID_ASK, bid, jnp.where(p.execution.fill == _FILL_MID, mid, seed)
    )


def _buy_fill(mid, spread, p):
    """What a purchase costs per share (switch `fill`)."""
    # seed: "Order Execution Framework" — price_improvement_target, on the buyer's side.
    bid = jnp.maximum(mid - 0.5 * spread, p.execution.min_quote)
    ask = jnp.maximum(mid + 0.5 * spread, p.execution.min_quote)
    seed = jnp.minimum(jnp.maximum(mid - p.execution.price_improvement_target, bid), ask)
    return jnp.where(
        p.execution.fill == _FILL_BID_ASK, ask, jnp.where(p.execution.fill == _FILL_MID, mid, seed)
    )


def _contracts(x, p):
    """Whole contracts (floor) by default; fractional when `whole_contracts` is off."""
    x = jnp.maximum(x, 0.0)
    # floor(x + 1e-9): a count whole in exact arithmetic (20000*0.2/(400/1.5) = 15) stays whole.
    return jnp.where(p.strategy.whole_contracts, jnp.floor(x + 1e-9), x)


def _iv_percentile(iv, p):
    """Percentile of ln IV in the stationary law of its OU process (a choice:
    docs/MODELLING.md "Market model"); with linked IV, of IV in the stationary law of
    sqrt(v) e^z (`p.iv_table`)."""
    # seed: "Entry Conditions" — get_iv_percentile(), read by entries, exits and hedges.
    if p.iv_table is not None:
        return _table_percentile(iv, p.iv_table)
    sd = p.market.eta / jnp.sqrt(2.0 * p.market.kappa)
    return 100.0 * ndtr((jnp.log(iv) - jnp.log(p.market.iv_long_run)) / sd)


def _table_percentile(iv, table):
    """Linear interpolation of the percentile table in ln IV (flat beyond its ends)."""
    x = (jnp.log(iv) - table.start) / table.step
    last = table.percentiles.shape[0] - 1
    knot = jnp.clip(jnp.floor(x), 0.0, last - 1.0)
    frac = jnp.clip(x - knot, 0.0, 1.0)
    knot = knot.astype(jnp.int32)
    low = table.percentiles[knot]
    return low + (table.percentiles[knot + 1] - low) * frac
