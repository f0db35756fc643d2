"""GJR-GARCH(1,1) paths: daily log returns with a conditional variance, normal innovations.

With h_t the variance of day t's log return (known at the close of day t - 1) and z_t a
standard normal (Glosten, Jagannathan and Runkle 1993):

    ln(S_t / S_{t-1}) = (mu dt - h_t / 2) + eps_t,   eps_t = sqrt(h_t) z_t,
    h_{t+1} = omega + (alpha + gamma [eps_t < 0]) eps_t^2 + beta h_t.

Units: daily, of log returns as fractions (not percent): omega is a daily variance (fraction^2;
`arch` fitted on percent returns reports omega x 10^4, `simkit.calibrate_market` converts),
alpha, gamma and beta are pure numbers. One step is one trading day of the data the parameters
come from; `dt` only scales the drift and annualizes the variance, `v = h / dt` (the annual
variance simkit's markets carry: `v0` is annual as heston's, the first day's h is `v0 dt`).

Drift: h_t is known before z_t is drawn, so E[e^{ln(S_t / S_{t-1})} | h_t] = e^{mu dt - h_t / 2}
e^{h_t / 2} = e^{mu dt} exactly for normal z, and E[S_t] = S_0 e^{mu t} for any step.

Stationarity: with persistence p = alpha + gamma / 2 + beta < 1 (z symmetric: a down day has
probability 1/2), E[h_{t+1}] = omega + p E[h_t], so E[h] -> omega / (1 - p), the unconditional
daily variance (`MarketParams` checks p < 1, omega > 0, alpha >= 0, alpha + gamma >= 0,
beta >= 0). The stationary law of h has no closed form: the linked IV's percentile table
tabulates it from a long simulation (`simkit.paths.linked_iv.garch_variance_quantiles`).

Random numbers: one normal a day, the `z_spot` slot of `simkit.paths.keys` (the slot GBM's
shock reads: the same seed gives GBM and GARCH the same z's). `garch(cell_key(seed, cell), ...)`
is the spot of `simulate_market(MarketParams(model="garch", ...), seed, cell, 0, ...)`.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from simkit.paths.gbm import _float_dtype
from simkit.paths.heston import _paths
from simkit.paths.keys import SLOT, to_normal

__all__ = ["garch", "garch_step", "GarchStep"]

Array = jax.Array


class GarchStep(NamedTuple):
    """One day of the GJR-GARCH model, per path."""

    variance: Array  # annual variance of the next day's log return, h_{t+1} / dt, > 0
    log_return: Array  # ln(S_t / S_{t-1})


def garch_step(
    variance: Array,
    z_spot: Array,
    mu: Array,
    omega: Array,
    alpha: Array,
    gamma: Array,
    beta: Array,
    dt: Array,
) -> GarchStep:
    """The day's log return and the next day's variance (module doc).

    Args:
        variance: annual variance of this day's log return, h_t / dt, >= 0, any shape.
        z_spot: standard normal innovations, same shape.
        mu: drift, annual, continuous (E[S'] = S e^{mu dt}).
        omega: constant of the variance recursion, daily variance (fraction^2), > 0.
        alpha: ARCH coefficient of eps^2, >= 0.
        gamma: leverage: the extra ARCH coefficient on a down day (eps < 0), >= -alpha.
        beta: GARCH coefficient of yesterday's variance, >= 0.
        dt: step, years (one trading day: 1/252).

    Returns:
        `GarchStep`, the broadcast shape.
    """
    # Written so that XLA compiles it to the same numbers whether dt is a compile-time constant
    # (the engine's loop) or traced (`simulate_market`): no division by dt (XLA turns x / dt into
    # x * (1 / dt) for a constant dt only), and h / 2 as sd^2 / 2 from the shock's own sd (the
    # plain form h = v dt, h / 2, sqrt(h) came out an ulp apart between the two).
    sd = jnp.sqrt(variance * dt)  # sqrt(h)
    log_return = mu * dt - 0.5 * (sd * sd) + sd * z_spot
    # h' / dt = omega / dt + v (beta + (alpha + gamma [z < 0]) z^2), as eps^2 / dt = v z^2.
    per_day = 1.0 / dt
    arch = alpha + jnp.where(z_spot < 0.0, gamma, 0.0)
    variance_next = omega * per_day + variance * (beta + arch * (z_spot * z_spot))
    return GarchStep(variance_next, log_return)


@partial(jax.jit, static_argnames=("n_paths", "n_steps"))
def garch(
    key: Array,
    s0: float | Array,
    mu: float | Array,
    omega: float | Array,
    alpha: float | Array,
    gamma: float | Array,
    beta: float | Array,
    v0: float | Array,
    n_paths: int,
    n_steps: int,
    dt: float | Array = 1 / 252,
) -> tuple[Array, Array]:
    """Paths of GJR-GARCH(1,1) with normal innovations (module doc); E[S_t] = s0 e^{mu t}.

    Path i draws from `fold_in(key, i)` with the daily slots of `simulate_market` (model
    "garch"): `garch(cell_key(seed, cell), ...)` is its spot. The parameters are not checked
    here (traced); `MarketParams(model="garch", ...)` checks them.

    Args:
        key: JAX PRNG key (raw uint32[2] or typed).
        s0: initial spot, dollars; scalar or (n_paths,).
        mu: drift, annual, continuous.
        omega: daily variance constant (fraction^2 a day, not percent^2), > 0.
        alpha: ARCH coefficient, >= 0.
        gamma: leverage coefficient (down days), >= -alpha.
        beta: GARCH coefficient, >= 0; alpha + gamma / 2 + beta < 1.
        v0: variance of the first day's log return, annual (h_1 = v0 dt); scalar or (n_paths,).
        n_paths: number of paths (static).
        n_steps: number of steps, trading days (static).
        dt: step, years. Default value: 1/252 (one trading day).

    Returns:
        (spot, variance): dollars and annual variance (h / dt), each (n_paths, n_steps + 1) of
        the float dtype of the inputs; column 0 is (s0, v0), column t the spot at the close of
        day t and the variance of day t + 1's log return.
    """
    dtype = _float_dtype(s0, mu, omega, alpha, gamma, beta, v0, dt)
    mu, omega, alpha, gamma, beta, dt = (
        jnp.asarray(x, dtype) for x in (mu, omega, alpha, gamma, beta, dt)
    )

    def step(v, u):
        out = garch_step(v, to_normal(u[SLOT["z_spot"]]), mu, omega, alpha, gamma, beta, dt)
        return out.variance, out.log_return

    return _paths(key, s0, v0, n_paths, n_steps, SLOT["z_spot"] + 1, step, dtype)
