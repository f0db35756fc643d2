"""Merton jump-diffusion, stepped exactly in log space, drift compensated.

    ln S_{t+dt} = ln S_t + (mu - sigma^2 / 2 - lambda k) dt + sigma sqrt(dt) Z + J,
    J = N m + sqrt(N) s Z2,   N ~ Poisson(lambda dt),   k = e^{m + s^2 / 2} - 1,

with `m = jump_mean`, `s = jump_std` (the log-jump size is Normal(m, s)), so that
E[S_t] = S_0 e^{mu t} as in GBM. The day's jump count N comes from one uniform by the Poisson
inverse CDF (exact up to the uniform's resolution: a count of probability below 2^-24 a day,
float32, or 2^-53, float64, is never drawn; e.g. N >= 4 at lambda dt = 4/252 is 3e-9).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from simkit.paths.gbm import _float_dtype, spot_paths
from simkit.paths.keys import SLOT, to_normal

__all__ = ["merton", "merton_log_return", "jump_compensator", "poisson_inverse_cdf", "Jumps"]

Array = jax.Array

_MAX_POISSON_COUNT = 10_000  # a safety stop for the inverse-CDF loop; never reached in use


def jump_compensator(jump_mean: Array, jump_std: Array) -> Array:
    """k = E[e^Y] - 1 for a log-jump Y ~ Normal(jump_mean, jump_std): the mean relative jump."""
    return jnp.expm1(jump_mean + 0.5 * jump_std * jump_std)


def poisson_inverse_cdf(u: Array, mean: Array) -> Array:
    """Poisson counts by inversion: the least n with u <= P(N <= n).

    Args:
        u: uniforms strictly inside (0, 1), any shape.
        mean: Poisson means (lambda dt), broadcasting with `u`; exact while e^{-mean} is a normal
            float (mean < 87 in float32, 708 in float64).

    Returns:
        Counts as floats of u's dtype, the broadcast shape. A `lax.while_loop` runs until the
        largest count of the batch is reached.
    """
    u, mean = jnp.broadcast_arrays(u, jnp.asarray(mean, u.dtype))
    prob = jnp.exp(-mean)  # P(N = 0)

    def undecided(state):
        _, prob, cdf, k = state
        return jnp.any((u > cdf) & (prob > 0.0)) & (k < _MAX_POISSON_COUNT)

    def next_count(state):
        count, prob, cdf, k = state
        count = count + jnp.where((u > cdf) & (prob > 0.0), 1.0, 0.0).astype(u.dtype)
        prob = prob * mean / (k + 1).astype(u.dtype)  # P(N = k + 1)
        return count, prob, cdf + prob, k + 1

    count, *_ = jax.lax.while_loop(
        undecided, next_count, (jnp.zeros_like(u), prob, prob, jnp.asarray(0, jnp.int32))
    )
    return count


class Jumps(NamedTuple):
    """One step's jumps of each path."""

    count: Array  # (n_paths,) jumps in the step, float
    log_jump: Array  # (n_paths,) total log-jump J of the step, 0 without jumps


def merton_log_return(
    z_spot: Array,
    u_jump_count: Array,
    z_jump_size: Array,
    mu: Array,
    sigma: Array,
    jump_intensity: Array,
    jump_mean: Array,
    jump_std: Array,
    dt: Array,
) -> tuple[Array, Jumps]:
    """One step's log return of the Merton model and its jumps.

    Args:
        z_spot: standard normal diffusion shocks, any shape.
        u_jump_count: uniforms in (0, 1) for the jump count, same shape.
        z_jump_size: standard normals for the total jump size, same shape.
        mu: drift, annual (compensated: E[S_t] = S_0 e^{mu t}).
        sigma: diffusion volatility, annual fraction.
        jump_intensity: jumps a year (lambda).
        jump_mean, jump_std: mean and standard deviation of one log-jump.
        dt: step, years.

    Returns:
        (log returns, `Jumps`), the broadcast shape.
    """
    count = poisson_inverse_cdf(u_jump_count, jump_intensity * dt)
    log_jump = count * jump_mean + jnp.sqrt(count) * jump_std * z_jump_size
    drift = (mu - 0.5 * sigma * sigma - jump_intensity * jump_compensator(jump_mean, jump_std)) * dt
    return drift + sigma * jnp.sqrt(dt) * z_spot + log_jump, Jumps(count, log_jump)


@partial(jax.jit, static_argnames=("n_paths", "n_steps"))
def merton(
    key: Array,
    s0: float | Array,
    mu: float | Array,
    sigma: float | Array,
    jump_intensity: float | Array,
    jump_mean: float | Array,
    jump_std: float | Array,
    n_paths: int,
    n_steps: int,
    dt: float | Array = 1 / 252,
) -> Array:
    """Paths of the Merton jump-diffusion.

    Path i draws from `fold_in(key, i)` with the same daily slots as `gbm` (the diffusion
    shocks are GBM's for the same key) and as `simulate_market` with `model="merton"`.

    Args:
        key: JAX PRNG key (raw uint32[2] or typed).
        s0: initial spot, dollars; scalar or (n_paths,).
        mu: drift, annual, continuous, compensated for jumps (E[S_t] = s0 e^{mu t}).
        sigma: diffusion volatility, annual fraction.
        jump_intensity: expected jumps a year (lambda).
        jump_mean: mean log-jump size (-0.25: a typical jump takes 22 % off).
        jump_std: standard deviation of the log-jump size.
        n_paths: number of paths (static).
        n_steps: number of steps (static).
        dt: step, years. Default value: 1/252 (one trading day).

    Returns:
        Spot, dollars, shape (n_paths, n_steps + 1), the float dtype of the inputs; column 0
        is `s0`.
    """
    dtype = _float_dtype(s0, mu, sigma, jump_intensity, jump_mean, jump_std, dt)
    mu, sigma, jump_intensity, jump_mean, jump_std, dt = (
        jnp.asarray(x, dtype) for x in (mu, sigma, jump_intensity, jump_mean, jump_std, dt)
    )

    def log_return(u):
        value, _ = merton_log_return(
            to_normal(u[SLOT["z_spot"]]),
            u[SLOT["u_jump_count"]],
            to_normal(u[SLOT["z_jump_size"]]),
            mu,
            sigma,
            jump_intensity,
            jump_mean,
            jump_std,
            dt,
        )
        return value

    return spot_paths(key, s0, n_paths, n_steps, SLOT["z_jump_size"] + 1, log_return, dtype)
