"""Implied volatility as a log-Ornstein-Uhlenbeck process, and its stationary percentile.

With x = ln IV, L = iv_long_run, kappa the mean-reversion rate and eta the volatility of x,

    dx = kappa (ln L - x) dt + eta dW,   corr(dW, dW_S) = iv_spot_corr,   plus iv_jump_beta * J

stepped exactly:

    x' = x e^{-kappa dt} + ln L (1 - e^{-kappa dt})
         + eta sqrt((1 - e^{-2 kappa dt}) / (2 kappa)) Z_iv + iv_jump_beta J,
    Z_iv = rho Z_S + sqrt(1 - rho^2) Z_perp,

where Z_S is the spot's diffusion shock of the same step and J its total log jump (0 in GBM).
The stationary law of x is Normal(ln L, eta^2 / (2 kappa)).

Linked IV (`iv_model = "linked"`, heston and bates): IV = sqrt(v) e^z, v the spot's variance
(`simkit.paths.heston`) and z = ln(IV / sqrt(v)) the volatility risk premium in logs, an OU
process of its own, `dz = vrp_kappa (ln vrp_long_run - z) dt + vrp_eta dW_z` with W_z
independent of the spot and the variance (stepped exactly by `ou_step`): a vol spike moves the
stock and the option prices together. The spot's jumps do not move z (`iv_jump_beta` is the
independent process's). Its percentile is read in the stationary law of ln IV (v Gamma, z
Normal, independent), tabulated once per market by `simkit.paths.linked_iv`. The variance is
floored at `VARIANCE_FLOOR` inside the log (QE's variance can be exactly 0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

__all__ = [
    "VARIANCE_FLOOR",
    "ou_step",
    "iv_log_step",
    "iv_percentile",
    "linked_log_iv",
    "initial_log_vrp",
]

Array = jax.Array
ArrayLike = jax.typing.ArrayLike

# The variance below which linked IV reads it as this (a vol of 0.01 %): QE draws v = 0 exactly
# with positive probability when v is small, and an IV of 0 would price no option.
VARIANCE_FLOOR = 1e-8


def ou_step(x: Array, z: Array, kappa: Array, mean: Array, eta: Array, dt: Array) -> Array:
    """Exact step of an Ornstein-Uhlenbeck process `dx = kappa (mean - x) dt + eta dW`.

    Args:
        x: current values, any shape.
        z: standard normal shocks, same shape.
        kappa: mean-reversion rate, per year (>= 0; 0 gives Brownian motion, and with
            `eta = 0` a constant).
        mean: long-run level, units of x.
        eta: volatility, units of x per sqrt(year).
        dt: step, years.

    Returns:
        Next values, the broadcast shape.
    """
    decay = jnp.exp(-kappa * dt)
    safe_kappa = jnp.where(kappa > 0.0, kappa, 1.0)
    variance_per_eta2 = jnp.where(
        kappa > 0.0, -jnp.expm1(-2.0 * safe_kappa * dt) / (2.0 * safe_kappa), dt
    )
    return x * decay + mean * (1.0 - decay) + eta * jnp.sqrt(variance_per_eta2) * z


def iv_log_step(
    log_iv: Array,
    z_spot: Array,
    z_perp: Array,
    log_jump: Array,
    kappa: Array,
    iv_long_run: Array,
    eta: Array,
    iv_spot_corr: Array,
    iv_jump_beta: Array,
    dt: Array,
) -> Array:
    """One exact step of x = ln IV.

    Args:
        log_iv: ln IV now, (n_paths,).
        z_spot: the spot's diffusion shock of this step, (n_paths,).
        z_perp: a standard normal independent of `z_spot`, (n_paths,).
        log_jump: the spot's total log jump of this step (0 without jumps), (n_paths,).
        kappa: mean-reversion rate of ln IV, per year.
        iv_long_run: long-run IV, annual fraction (2.17 = 217 %).
        eta: volatility of ln IV, per sqrt(year).
        iv_spot_corr: correlation of the IV and spot shocks, in [-1, 1].
        iv_jump_beta: change of ln IV per unit log jump of the spot (negative: IV rises on a
            crash).
        dt: step, years.

    Returns:
        ln IV after the step, (n_paths,).
    """
    z_iv = iv_spot_corr * z_spot + jnp.sqrt(1.0 - iv_spot_corr * iv_spot_corr) * z_perp
    x = ou_step(log_iv, z_iv, kappa, jnp.log(iv_long_run), eta, dt)
    return x + iv_jump_beta * log_jump


def linked_log_iv(variance: Array, log_vrp: Array) -> Array:
    """ln IV of linked IV: `ln sqrt(max(v, VARIANCE_FLOOR)) + z`.

    Args:
        variance: the spot's variance v, annual, any shape.
        log_vrp: z = ln(IV / sqrt(v)), same shape.
    """
    return 0.5 * jnp.log(jnp.maximum(variance, VARIANCE_FLOOR)) + log_vrp


def initial_log_vrp(iv0: Array, v0: Array) -> Array:
    """z_0 = ln(iv0 / sqrt(v0)): linked IV starts at `iv0` (v0 floored as in `linked_log_iv`)."""
    return jnp.log(iv0) - 0.5 * jnp.log(jnp.maximum(v0, VARIANCE_FLOOR))


def iv_percentile(iv: ArrayLike, iv_long_run: ArrayLike, kappa: ArrayLike, eta: ArrayLike) -> Array:
    """Percentile of IV in the stationary law of the log-OU process (a choice:
    docs/MODELLING.md "Market model").

    `100 * Phi((ln iv - ln iv_long_run) / (eta / sqrt(2 kappa)))`: no history buffer needed.
    At the baseline (IV 4.2517, long run 2.17, kappa 6, eta 1) it is 99.0.

    Args:
        iv: implied volatility, annual fraction, any shape.
        iv_long_run: long-run IV, annual fraction.
        kappa: mean-reversion rate, per year (> 0).
        eta: volatility of ln IV, per sqrt(year) (> 0).

    Returns:
        Percentile in [0, 100], the broadcast shape and float dtype of the inputs.
    """
    dtype = jnp.result_type(iv, iv_long_run, kappa, eta)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    iv, iv_long_run, kappa, eta = (jnp.asarray(x, dtype) for x in (iv, iv_long_run, kappa, eta))
    stationary_std = eta / jnp.sqrt(2.0 * kappa)
    return 100.0 * ndtr((jnp.log(iv) - jnp.log(iv_long_run)) / stationary_std)
