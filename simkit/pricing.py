"""Black-Scholes prices, Greeks and implied volatility of European options (pure `jax.numpy`).

Every function broadcasts NumPy or JAX arrays, lists and Python numbers against each other, is
jitted (one dispatch when called eagerly, inlined inside a caller's `jit`), vmaps, and keeps the
floating dtype it is given: float64 in, float64 out when JAX's x64 mode is on (this module never
turns it on), float32 otherwise. Integer inputs are promoted to JAX's default float.

Units, shared by every function:
    spot, strike     dollars per share
    t                time to expiry in years (`dte_calendar / 365` in simkit); t <= 0 is expiry
    rate, div        continuously compounded annual rates (0.05 = 5 %)
    vol              annual volatility as a fraction (4.25 = 425 %)
    call             bool or boolean array: True for a call, False for a put

Limits: at expiry (t <= 0) a price is the intrinsic value `max(w (S - K), 0)`; with zero
volatility (or both) it is the forward intrinsic value `max(w (S e^{-qt} - K e^{-rt}), 0)`,
`w = +1` for a call and `-1` for a put. Both are computed with `jnp.where` over safe inputs, so
neither the value nor a gradient is NaN there.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

__all__ = ["bs_price", "bs_greeks", "implied_vol"]

Array = jax.Array
ArrayLike = jax.typing.ArrayLike

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Total volatility (vol * sqrt(t)) at which the implied-vol search stops looking higher: an
# out-of-the-money option at this total volatility is worth its upper bound to machine precision
# (N(-25) underflows in float32 and is 1e-138 in float64).
_MAX_TOTAL_VOL = 50.0


def _float_dtype(*values: ArrayLike) -> jnp.dtype:
    """The floating dtype of a computation on `values` (JAX's promotion, ints → default float)."""
    values = [
        v if hasattr(v, "dtype") or isinstance(v, int | float) else jnp.asarray(v) for v in values
    ]
    dtype = jnp.result_type(*values)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return dtype


def _normal_pdf(x: Array) -> Array:
    return jnp.exp(-0.5 * x * x) * _INV_SQRT_2PI


class _Terms(NamedTuple):
    """The shared pieces of one Black-Scholes evaluation, broadcast to one shape."""

    spot: Array  # dollars
    strike: Array  # dollars
    t: Array  # years, clipped at 0
    sqrt_t: Array  # sqrt(years), 1 where t == 0 (safe divisor)
    rate: Array  # annual
    vol: Array  # annual
    div: Array  # annual
    w: Array  # +1 call, -1 put
    spot_fwd_pv: Array  # S e^{-qt}: dollars
    strike_pv: Array  # K e^{-rt}: dollars
    degenerate: Array  # bool: t <= 0 or vol <= 0, the intrinsic limits apply
    d1: Array  # dimensionless (a safe finite value where degenerate)
    d2: Array  # dimensionless (a safe finite value where degenerate)


def _terms(spot, strike, t, rate, vol, div, call, dtype=None, shape=()) -> _Terms:
    """Cast to one float dtype, broadcast to one shape (at least `shape`), share d1 and d2."""
    if dtype is None:
        dtype = _float_dtype(spot, strike, t, rate, vol, div)
    spot, strike, t, rate, vol, div = (
        jnp.asarray(x, dtype) for x in (spot, strike, t, rate, vol, div)
    )
    call = jnp.asarray(call, bool)
    shape = jnp.broadcast_shapes(
        shape, *(jnp.shape(x) for x in (spot, strike, t, rate, vol, div, call))
    )
    spot, strike, t, rate, vol, div, call = (
        jnp.broadcast_to(x, shape) for x in (spot, strike, t, rate, vol, div, call)
    )
    t = jnp.maximum(t, 0.0)
    vol = jnp.maximum(vol, 0.0)
    w = jnp.where(call, 1.0, -1.0).astype(dtype)
    degenerate = (t <= 0.0) | (vol <= 0.0)
    sqrt_t = jnp.sqrt(jnp.where(t > 0.0, t, 1.0))
    total_vol = jnp.where(degenerate, 1.0, vol * sqrt_t)
    log_moneyness = jnp.log(spot / strike) + (rate - div) * t
    d1 = jnp.where(degenerate, 0.0, log_moneyness / total_vol + 0.5 * total_vol)
    d2 = d1 - jnp.where(degenerate, 0.0, total_vol)
    return _Terms(
        spot=spot,
        strike=strike,
        t=t,
        sqrt_t=sqrt_t,
        rate=rate,
        vol=vol,
        div=div,
        w=w,
        spot_fwd_pv=spot * jnp.exp(-div * t),
        strike_pv=strike * jnp.exp(-rate * t),
        degenerate=degenerate,
        d1=d1,
        d2=d2,
    )


def _out_of_the_money_price(spot_fwd_pv, strike_pv, d1, d2, w_otm):
    """Price of the option that is out of the money forward (`w_otm`): no cancellation."""
    return w_otm * (spot_fwd_pv * ndtr(w_otm * d1) - strike_pv * ndtr(w_otm * d2))


@jax.jit
def bs_price(
    spot: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    rate: ArrayLike,
    vol: ArrayLike,
    div: ArrayLike = 0.0,
    call: ArrayLike = False,
) -> Array:
    """Black-Scholes price of a European option.

    The out-of-the-money (forward) side is priced with the closed form and the in-the-money side
    by put-call parity from it, so deep in- and out-of-the-money prices keep their precision.

    Args:
        spot: spot price, dollars; any shape that broadcasts with the others.
        strike: strike price, dollars.
        t: time to expiry, years. `t <= 0` gives the intrinsic value.
        rate: risk-free rate, annual, continuous.
        vol: volatility, annual fraction. `vol <= 0` gives the forward intrinsic value.
        div: dividend yield, annual, continuous. Default value: 0.0.
        call: True for a call, False for a put (bool or boolean array). Default value: False.

    Returns:
        Price in dollars per share, the broadcast shape of the inputs, their float dtype.
    """
    x = _terms(spot, strike, t, rate, vol, div, call)
    forward_intrinsic = x.spot_fwd_pv - x.strike_pv  # call minus put, dollars
    w_otm = jnp.where(forward_intrinsic < 0.0, 1.0, -1.0).astype(x.w.dtype)
    otm = _out_of_the_money_price(x.spot_fwd_pv, x.strike_pv, x.d1, x.d2, w_otm)
    price = otm + jnp.where(w_otm == x.w, 0.0, x.w * forward_intrinsic)
    limit = jnp.maximum(x.w * forward_intrinsic, 0.0)
    return jnp.where(x.degenerate, limit, price)


@jax.jit
def bs_greeks(
    spot: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    rate: ArrayLike,
    vol: ArrayLike,
    div: ArrayLike = 0.0,
    call: ArrayLike = False,
) -> dict[str, Array]:
    """Black-Scholes Greeks in the seed's units ("calculate_greeks": theta/365, vega/100, rho/100).

    Args: as `bs_price`.

    Returns:
        A dict of arrays (the broadcast shape and float dtype of the inputs):
        `delta` dV/dS (per share, per dollar of spot); `gamma` d2V/dS2 (per dollar);
        `theta` dV/d(calendar time) per calendar day (annual theta / 365, negative for a long
        option as time decay); `vega` dV/dvol per vol point (per 1 % of vol, i.e. /100);
        `rho` dV/drate per 1 % of rate (/100). At the limits (t <= 0 or vol <= 0) they are
        the derivatives of the forward intrinsic value: delta `w e^{-qt}` in the money and 0
        out, gamma and vega 0.

    Note: the seed's put theta flips the signs of its rate and dividend terms
    (`- r K e^{-rT} N(-d2) + q S e^{-qT} N(-d1)`); this is the correct put theta,
    `+ r K e^{-rT} N(-d2) - q S e^{-qT} N(-d1)`, which the tests check against finite differences.
    """
    x = _terms(spot, strike, t, rate, vol, div, call)
    w = x.w
    n_d1 = ndtr(w * x.d1)  # N(w d1)
    n_d2 = ndtr(w * x.d2)  # N(w d2)
    pdf_d1 = _normal_pdf(x.d1)
    total_vol = x.vol * x.sqrt_t
    safe_total_vol = jnp.where(x.degenerate, 1.0, total_vol)
    safe_spot = jnp.where(x.degenerate, 1.0, x.spot)

    div_discount = jnp.exp(-x.div * x.t)
    delta = w * div_discount * n_d1
    gamma = div_discount * pdf_d1 / (safe_spot * safe_total_vol)
    vega = x.spot_fwd_pv * pdf_d1 * x.sqrt_t
    theta = (
        -x.spot_fwd_pv * pdf_d1 * x.vol / (2.0 * x.sqrt_t)
        - w * x.rate * x.strike_pv * n_d2
        + w * x.div * x.spot_fwd_pv * n_d1
    )
    rho = w * x.t * x.strike_pv * n_d2

    in_the_money = w * (x.spot_fwd_pv - x.strike_pv) > 0.0
    zero = jnp.zeros_like(delta)
    limit_delta = jnp.where(in_the_money, w * div_discount, zero)
    limit_theta = jnp.where(in_the_money, w * (x.div * x.spot_fwd_pv - x.rate * x.strike_pv), zero)
    limit_rho = jnp.where(in_the_money, w * x.t * x.strike_pv, zero)

    return {
        "delta": jnp.where(x.degenerate, limit_delta, delta),
        "gamma": jnp.where(x.degenerate, zero, gamma),
        "theta": jnp.where(x.degenerate, limit_theta, theta) / 365.0,
        "vega": jnp.where(x.degenerate, zero, vega) / 100.0,
        "rho": jnp.where(x.degenerate, limit_rho, rho) / 100.0,
    }


@jax.jit
def implied_vol(
    price: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    rate: ArrayLike,
    div: ArrayLike = 0.0,
    call: ArrayLike = False,
) -> Array:
    """Black-Scholes implied volatility of a European option price.

    The price is turned into the price of the out-of-the-money (forward) option by put-call
    parity, and the total volatility `s = vol sqrt(t)` is found by Newton's method on
    `log price(s)` inside a bisection bracket `[0, 50]`: a Newton step that leaves the bracket
    is replaced by bisection, so every element converges in the fixed number of `lax` iterations
    (40 in float32, 64 in float64) and the function jits and vmaps. Accurate for vol from below
    1 % to beyond 1000 % (where the price carries the information: a price within rounding of
    its bounds cannot say more).

    Args:
        price: option price, dollars per share; any shape that broadcasts with the others.
        spot, strike, t, rate, div, call: as `bs_price`.

    Returns:
        Volatility, annual fraction, the broadcast shape and float dtype of the inputs. NaN where
        the price is outside the no-arbitrage bounds `[max(w (S e^{-qt} - K e^{-rt}), 0), U)`
        with `U = S e^{-qt}` for a call and `K e^{-rt}` for a put, where it is not finite, or
        where `t <= 0` (no volatility is defined at expiry). 0 where the price equals its lower
        bound.
    """
    dtype = _float_dtype(price, spot, strike, t, rate, div)
    price = jnp.asarray(price, dtype)
    x = _terms(spot, strike, t, rate, 1.0, div, call, dtype=dtype, shape=price.shape)
    price = jnp.broadcast_to(price, x.spot.shape)
    w = x.w
    forward_intrinsic = x.spot_fwd_pv - x.strike_pv
    lower = jnp.maximum(w * forward_intrinsic, 0.0)
    upper = jnp.where(w > 0.0, x.spot_fwd_pv, x.strike_pv)
    w_otm = jnp.where(forward_intrinsic < 0.0, 1.0, -1.0).astype(dtype)
    target = price - jnp.where(w_otm == w, 0.0, w * forward_intrinsic)  # OTM price, dollars

    valid = jnp.isfinite(price) & (x.t > 0.0) & (price >= lower) & (price < upper)
    at_lower = valid & (target <= 0.0)
    solve = valid & ~at_lower
    safe_target = jnp.where(solve, target, 0.5 * jnp.minimum(x.spot_fwd_pv, x.strike_pv))
    log_target = jnp.log(safe_target)
    log_moneyness = jnp.log(x.spot_fwd_pv / x.strike_pv)

    def otm_price_and_vega(s):
        d1 = log_moneyness / s + 0.5 * s
        d2 = d1 - s
        value = _out_of_the_money_price(x.spot_fwd_pv, x.strike_pv, d1, d2, w_otm)
        return value, x.spot_fwd_pv * _normal_pdf(d1)  # dollars, dollars per unit of s

    def body(_, state):
        s, lo, hi = state
        value, vega = otm_price_and_vega(s)
        too_high = value >= safe_target
        lo = jnp.where(too_high, lo, s)
        hi = jnp.where(too_high, s, hi)
        # Newton on log(price): near the root it is Newton on the price; in the far
        # out-of-the-money wing, where the price is exponentially small, it still takes full steps.
        newton = s - (jnp.log(value) - log_target) * value / vega
        inside = jnp.isfinite(newton) & (newton > lo) & (newton < hi)
        s = jnp.where(inside, newton, 0.5 * (lo + hi))
        return s, lo, hi

    # Start at the inflection point of price(s), sqrt(2 |ln(F/K)|), plus an at-the-money guess.
    s0 = jnp.sqrt(2.0 * jnp.abs(log_moneyness)) + math.sqrt(2.0 * math.pi) * safe_target / (
        jnp.sqrt(x.spot_fwd_pv * x.strike_pv)
    )
    s0 = jnp.clip(s0, 1e-3, 0.5 * _MAX_TOTAL_VOL)
    lo0 = jnp.zeros_like(s0)
    hi0 = jnp.full_like(s0, _MAX_TOTAL_VOL)
    n_iter = 64 if jnp.finfo(dtype).bits > 32 else 40
    s, _, _ = jax.lax.fori_loop(0, n_iter, body, (s0, lo0, hi0))
    vol = s / x.sqrt_t
    return jnp.where(solve, vol, jnp.where(at_lower, 0.0, jnp.nan)).astype(dtype)
