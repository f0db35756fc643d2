"""Geometric Brownian motion, stepped exactly in log space.

    ln S_{t+dt} = ln S_t + (mu - sigma^2 / 2) dt + sigma sqrt(dt) Z,    Z ~ N(0, 1)

so that E[S_t] = S_0 e^{mu t} for any step size.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp

from simkit.paths.keys import MIN_BATCH, SLOT, as_key, day_uniforms, path_keys, to_normal

__all__ = ["gbm", "gbm_log_return"]

Array = jax.Array


def gbm_log_return(z_spot: Array, mu: Array, sigma: Array, dt: Array) -> Array:
    """One step's log return of GBM.

    Args:
        z_spot: standard normal shocks, any shape.
        mu: drift, annual (the real-world expected return, continuous).
        sigma: volatility, annual fraction.
        dt: step, years.

    Returns:
        Log returns, the broadcast shape.
    """
    return (mu - 0.5 * sigma * sigma) * dt + sigma * jnp.sqrt(dt) * z_spot


def spot_paths(
    key: Array,
    s0: Array,
    n_paths: int,
    n_steps: int,
    n_slots: int,
    log_return: Callable[[Array], Array],
    dtype,
) -> Array:
    """Drive a log-exact spot model over `n_steps` days for `n_paths` paths.

    Args:
        key: base key; path i uses `fold_in(key, i)` (see `simkit.paths.keys`).
        s0: initial spot, dollars, scalar or (n_paths,).
        n_paths, n_steps: static sizes.
        n_slots: how many of the day's uniform slots the model reads.
        log_return: maps the day's uniforms (n_slots, n_paths) to log returns (n_paths,).
        dtype: float dtype of the result.

    Returns:
        Spot, dollars, (n_paths, n_steps + 1); column 0 is `s0`.
    """
    n_computed = max(n_paths, MIN_BATCH)  # see MIN_BATCH; the extra paths are dropped
    keys = path_keys(as_key(key), 0, n_computed)
    log_s0 = jnp.broadcast_to(jnp.log(jnp.asarray(s0, dtype)), (n_paths,))
    log_s0 = jnp.concatenate([log_s0, jnp.repeat(log_s0[-1:], n_computed - n_paths)])

    def day(log_s, day_index):
        u = day_uniforms(keys, day_index, n_slots, dtype)
        log_s = log_s + log_return(u)
        return log_s, jnp.exp(log_s)

    _, spot = jax.lax.scan(day, log_s0, jnp.arange(1, n_steps + 1))
    return jnp.concatenate([jnp.exp(log_s0)[:, None], spot.T], axis=1)[:n_paths]


def _float_dtype(*values) -> jnp.dtype:
    dtype = jnp.result_type(*values)
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)


@partial(jax.jit, static_argnames=("n_paths", "n_steps"))
def gbm(
    key: Array,
    s0: float | Array,
    mu: float | Array,
    sigma: float | Array,
    n_paths: int,
    n_steps: int,
    dt: float | Array = 1 / 252,
) -> Array:
    """Paths of geometric Brownian motion.

    Path i draws its shocks from `fold_in(key, i)` (one uniform vector a day, see
    `simkit.paths.keys`), so `gbm(cell_key(seed, cell), ...)` is the spot of
    `simulate_market(MarketParams(model="gbm", ...), seed, cell, 0, ...)`.

    Args:
        key: JAX PRNG key (raw uint32[2] or typed).
        s0: initial spot, dollars; scalar or (n_paths,).
        mu: drift, annual, continuous (E[S_t] = s0 e^{mu t}).
        sigma: volatility, annual fraction.
        n_paths: number of paths (static).
        n_steps: number of steps (static).
        dt: step, years. Default value: 1/252 (one trading day).

    Returns:
        Spot, dollars, shape (n_paths, n_steps + 1), the float dtype of (s0, mu, sigma, dt);
        column 0 is `s0`.
    """
    dtype = _float_dtype(s0, mu, sigma, dt)
    mu, sigma, dt = (jnp.asarray(x, dtype) for x in (mu, sigma, dt))

    def log_return(u):
        return gbm_log_return(to_normal(u[SLOT["z_spot"]]), mu, sigma, dt)

    return spot_paths(key, s0, n_paths, n_steps, SLOT["z_spot"] + 1, log_return, dtype)
