"""Heston and Bates paths: CIR variance by Andersen's QE scheme, martingale-corrected log spot.

    dS / S = mu dt + sqrt(v) dW_S (+ Merton jumps, Bates),
    dv = kappa_v (theta_v - v) dt + xi sqrt(v) dW_v,   corr(dW_S, dW_v) = rho.

Scheme: Andersen (2008), "Simple and efficient simulation of the Heston stochastic volatility
model", J. Comput. Finance 11(3): the quadratic-exponential (QE) step of the variance and the
central (gamma_1 = gamma_2 = 1/2) log-spot step with the martingale correction (his section
4.3.2). Why QE, not full truncation with sub-steps: this stock's variance is large (v ~ 4, a
vol of 200 %) and its vol of vol too (xi ~ 3), so an Euler step of v is far from its law (it goes
negative and is truncated, which biases E[v] and the smile; halving the bias costs twice the
steps). QE draws v_{t+dt} from a two-moment match of the exact non-central chi-square law (the
mean and variance of v_{t+dt} are exact, whatever the step), stays >= 0 without truncation, needs
no Feller condition, and costs one uniform a day: at daily steps its price bias is far below a
Monte Carlo standard error (tests/paths/test_heston.py).

The variance step. m = theta + (v - theta) e^{-kappa dt}, s^2 = v xi^2 e^{-kappa dt}
(1 - e^{-kappa dt}) / kappa + theta xi^2 (1 - e^{-kappa dt})^2 / (2 kappa), psi = s^2 / m^2:
    psi <= 1.5: v' = a (b + Z_v)^2,  b^2 = 2/psi - 1 + sqrt(2/psi) sqrt(2/psi - 1), a = m/(1+b^2);
    psi >  1.5: v' = 0 with probability p = (psi - 1)/(psi + 1), else Exponential(rate
                beta = (1 - p)/m): v' = ln((1 - p)/(1 - U_v)) / beta for U_v > p.
One uniform U_v a day drives both branches (Z_v = Phi^{-1}(U_v)), so v' is increasing in U_v.

The log-spot step, with K1 = dt/2 (kappa rho/xi - 1/2) - rho/xi, K2 = dt/2 (kappa rho/xi - 1/2)
+ rho/xi, K3 = K4 = dt/2 (1 - rho^2) and Z_S a standard normal independent of U_v:
    ln S' = ln S + mu dt + K0* + K1 v + K2 v' + sqrt(K3 v + K4 v') Z_S,
    K0* = -ln E[e^{A v'} | v] - (K1 + K3/2) v,   A = K2 + K4/2,
with E[e^{A v'}] in closed form per branch (quadratic: e^{A b^2 a / (1 - 2 A a)} / sqrt(1 - 2 A
a); exponential: p + beta (1 - p) / (beta - A)). So E[S_{t+dt} | S_t, v_t] = S_t e^{mu dt}
exactly, for any step (not only to discretisation order), and E[S_t] = S_0 e^{mu t}. The
correction exists while 2 A a < 1 (quadratic) or A < beta (exponential): always for rho <= 0 and
in practice for the levels here; where it does not, the step keeps Andersen's plain K0 = -rho
kappa theta dt / xi (martingale to discretisation order only). With xi = 0 the variance is
deterministic (v' = m) and rho has no effect: ln S' = ln S + mu dt - (v + v') dt/4 + sqrt((v + v')
dt/2) Z_S.

Bates adds the Merton jumps of `simkit.paths.merton` (same slots, compensated: -lambda k dt).

Random numbers: the day's slots of `simkit.paths.keys`: Z_S is `z_spot`, U_v is `u_variance`,
jumps `u_jump_count`, `z_jump_size`. `heston(cell_key(seed, cell), ...)` is the spot of
`simulate_market(MarketParams(model="heston", ...), seed, cell, 0, ...)`.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from simkit.paths.gbm import _float_dtype
from simkit.paths.keys import MIN_BATCH, SLOT, as_key, day_uniforms, path_keys, to_normal
from simkit.paths.merton import Jumps, merton_log_return

__all__ = ["heston", "bates", "heston_step", "compensated_jumps", "HestonStep", "PSI_CRITICAL"]

Array = jax.Array

PSI_CRITICAL = 1.5  # Andersen's switch between the quadratic and the exponential branch
_PSI_FLOOR = 1e-30  # psi -> 0 (xi -> 0): the quadratic branch tends to v' = m; finite in float32


class HestonStep(NamedTuple):
    """One step of the Heston model, per path."""

    variance: Array  # v after the step, annual, >= 0
    log_return: Array  # ln(S' / S), jumps not included
    z_variance: Array  # Phi^{-1}(U_v): a standard normal increasing in v' (the variance shock)


def heston_step(
    variance: Array,
    u_variance: Array,
    z_spot: Array,
    mu: Array,
    kappa_v: Array,
    theta_v: Array,
    xi: Array,
    rho: Array,
    dt: Array,
) -> HestonStep:
    """One QE step of the variance and the martingale-corrected log-spot step (module doc).

    Args:
        variance: v now, annual, >= 0, any shape.
        u_variance: uniforms strictly inside (0, 1) for the variance's step, same shape.
        z_spot: standard normals independent of `u_variance`, same shape.
        mu: drift, annual, continuous (E[S'] = S e^{mu dt}).
        kappa_v: mean-reversion rate of v, per year (>= 0).
        theta_v: long-run variance, annual (> 0).
        xi: volatility of v, per sqrt(year) (>= 0).
        rho: correlation of the variance and spot shocks, in [-1, 1].
        dt: step, years.

    Returns:
        `HestonStep`, the broadcast shape.
    """
    v = variance
    decay = jnp.exp(-kappa_v * dt)
    one_minus_decay = -jnp.expm1(-kappa_v * dt)
    safe_kappa = jnp.where(kappa_v > 0.0, kappa_v, 1.0)
    # (1 - e^{-kappa dt}) / kappa, -> dt as kappa -> 0
    decay_integral = jnp.where(kappa_v > 0.0, one_minus_decay / safe_kappa, dt)
    xi2 = xi * xi
    m = theta_v + (v - theta_v) * decay
    s2 = v * xi2 * decay * decay_integral + 0.5 * theta_v * xi2 * decay_integral * one_minus_decay
    safe_m = jnp.where(m > 0.0, m, 1.0)
    psi = jnp.where(m > 0.0, s2 / (safe_m * safe_m), 0.0)
    quadratic = psi <= PSI_CRITICAL

    # Quadratic branch (psi <= 1.5).
    inv = 2.0 / jnp.clip(psi, _PSI_FLOOR, PSI_CRITICAL)
    b2 = inv - 1.0 + jnp.sqrt(inv) * jnp.sqrt(inv - 1.0)
    a = m / (1.0 + b2)
    z_v = to_normal(u_variance)
    v_quadratic = a * jnp.square(jnp.sqrt(b2) + z_v)

    # Exponential branch (psi > 1.5).
    psi_e = jnp.maximum(psi, PSI_CRITICAL)
    p = (psi_e - 1.0) / (psi_e + 1.0)
    beta = (1.0 - p) / safe_m
    v_exponential = jnp.where(u_variance <= p, 0.0, (jnp.log1p(-p) - jnp.log1p(-u_variance)) / beta)
    v_next = jnp.where(quadratic, v_quadratic, v_exponential)

    # Log spot: Andersen's K's with gamma_1 = gamma_2 = 1/2; xi = 0 takes rho = 0 (v is
    # deterministic, so its shock does not move the spot).
    has_xi = xi > 0.0
    r = jnp.where(has_xi, rho, 0.0)
    r_over_xi = r / jnp.where(has_xi, xi, 1.0)
    half_dt = 0.5 * dt
    k1 = half_dt * (kappa_v * r_over_xi - 0.5) - r_over_xi
    k2 = half_dt * (kappa_v * r_over_xi - 0.5) + r_over_xi
    k3 = half_dt * (1.0 - r * r)  # = k4
    k0_plain = -r_over_xi * kappa_v * theta_v * dt
    big_a = k2 + 0.5 * k3
    two_aa = 2.0 * big_a * a
    quadratic_ok = two_aa < 1.0
    safe_two_aa = jnp.where(quadratic_ok, two_aa, 0.0)
    log_mgf_quadratic = big_a * b2 * a / (1.0 - safe_two_aa) - 0.5 * jnp.log1p(-safe_two_aa)
    exponential_ok = big_a < beta
    safe_gap = jnp.where(exponential_ok, beta - big_a, 1.0)
    log_mgf_exponential = jnp.log(p + beta * (1.0 - p) / safe_gap)
    log_mgf = jnp.where(quadratic, log_mgf_quadratic, log_mgf_exponential)
    corrected = jnp.where(quadratic, quadratic_ok, exponential_ok)
    k0 = jnp.where(corrected, -log_mgf - (k1 + 0.5 * k3) * v, k0_plain)
    diffusion = jnp.sqrt(jnp.maximum(k3 * (v + v_next), 0.0))
    log_return = mu * dt + k0 + k1 * v + k2 * v_next + diffusion * z_spot
    return HestonStep(v_next, log_return, z_v)


def compensated_jumps(
    u_jump_count: Array,
    z_jump_size: Array,
    jump_intensity: Array,
    jump_mean: Array,
    jump_std: Array,
    dt: Array,
) -> tuple[Array, Jumps]:
    """Bates's jump part of one step's log return, `J - lambda k dt`, and the `Jumps`: Merton's
    (`simkit.paths.merton.merton_log_return` without the diffusion)."""
    zero = jnp.zeros_like(u_jump_count)
    return merton_log_return(
        zero, u_jump_count, z_jump_size, zero, zero, jump_intensity, jump_mean, jump_std, dt
    )


def _heston_day(mu, kappa_v, theta_v, xi, rho, dt):
    """One day of Heston from the day's uniforms `u` (`simkit.paths.keys.SLOT`): the variance's
    QE step and the log return (`heston_step`); Bates adds its jumps to the return."""

    def day(v, u):
        return heston_step(
            v, u[SLOT["u_variance"]], to_normal(u[SLOT["z_spot"]]), mu, kappa_v, theta_v, xi,
            rho, dt,
        )  # fmt: skip

    return day


def _paths(key, s0, v0, n_paths, n_steps, n_slots, step, dtype):
    """Drive `step(variance, u) -> (variance', log_return)` over `n_steps` days."""
    n_computed = max(n_paths, MIN_BATCH)  # see MIN_BATCH; the extra paths are dropped
    keys = path_keys(as_key(key), 0, n_computed)

    def column(x):
        x = jnp.broadcast_to(jnp.asarray(x, dtype), (n_paths,))
        return jnp.concatenate([x, jnp.repeat(x[-1:], n_computed - n_paths)])

    log_s0, var0 = jnp.log(column(s0)), column(v0)

    def day(carry, day_index):
        log_s, v = carry
        u = day_uniforms(keys, day_index, n_slots, dtype)
        v, log_return = step(v, u)
        log_s = log_s + log_return
        return (log_s, v), (jnp.exp(log_s), v)

    _, (spot, variance) = jax.lax.scan(day, (log_s0, var0), jnp.arange(1, n_steps + 1))
    spot = jnp.concatenate([jnp.exp(log_s0)[:, None], spot.T], axis=1)[:n_paths]
    variance = jnp.concatenate([var0[:, None], variance.T], axis=1)[:n_paths]
    return spot, variance


@partial(jax.jit, static_argnames=("n_paths", "n_steps"))
def heston(
    key: Array,
    s0: float | Array,
    mu: float | Array,
    v0: float | Array,
    kappa_v: float | Array,
    theta_v: float | Array,
    xi: float | Array,
    rho: float | Array,
    n_paths: int,
    n_steps: int,
    dt: float | Array = 1 / 252,
) -> tuple[Array, Array]:
    """Paths of the Heston model (QE scheme, martingale-corrected: see the module doc).

    Path i draws from `fold_in(key, i)` with the daily slots of `simulate_market` (model
    "heston"): `heston(cell_key(seed, cell), ...)` is its spot.

    Args:
        key: JAX PRNG key (raw uint32[2] or typed).
        s0: initial spot, dollars; scalar or (n_paths,).
        mu: drift, annual, continuous (E[S_t] = s0 e^{mu t}).
        v0: initial variance, annual (vol^2); scalar or (n_paths,).
        kappa_v: mean-reversion rate of the variance, per year.
        theta_v: long-run variance, annual.
        xi: volatility of the variance, per sqrt(year).
        rho: correlation of the variance and spot shocks.
        n_paths: number of paths (static).
        n_steps: number of steps (static).
        dt: step, years. Default value: 1/252 (one trading day).

    Returns:
        (spot, variance): dollars and annual variance, each (n_paths, n_steps + 1) of the float
        dtype of the inputs; column 0 is (s0, v0).
    """
    dtype = _float_dtype(s0, mu, v0, kappa_v, theta_v, xi, rho, dt)
    mu, kappa_v, theta_v, xi, rho, dt = (
        jnp.asarray(x, dtype) for x in (mu, kappa_v, theta_v, xi, rho, dt)
    )

    day = _heston_day(mu, kappa_v, theta_v, xi, rho, dt)

    def step(v, u):
        out = day(v, u)
        return out.variance, out.log_return

    return _paths(key, s0, v0, n_paths, n_steps, SLOT["u_variance"] + 1, step, dtype)


@partial(jax.jit, static_argnames=("n_paths", "n_steps"))
def bates(
    key: Array,
    s0: float | Array,
    mu: float | Array,
    v0: float | Array,
    kappa_v: float | Array,
    theta_v: float | Array,
    xi: float | Array,
    rho: float | Array,
    jump_intensity: float | Array,
    jump_mean: float | Array,
    jump_std: float | Array,
    n_paths: int,
    n_steps: int,
    dt: float | Array = 1 / 252,
) -> tuple[Array, Array]:
    """Paths of the Bates model: Heston (`heston`) plus compensated Merton jumps of the spot.

    Args:
        key, s0, mu, v0, kappa_v, theta_v, xi, rho: as `heston` (E[S_t] = s0 e^{mu t}).
        jump_intensity: expected jumps a year (lambda).
        jump_mean: mean log-jump size.
        jump_std: standard deviation of the log-jump size.
        n_paths, n_steps, dt: as `heston`.

    Returns:
        (spot, variance), each (n_paths, n_steps + 1); the spot of `simulate_market` (model
        "bates") for `key = cell_key(seed, cell)`.
    """
    dtype = _float_dtype(
        s0, mu, v0, kappa_v, theta_v, xi, rho, jump_intensity, jump_mean, jump_std, dt
    )
    mu, kappa_v, theta_v, xi, rho, jump_intensity, jump_mean, jump_std, dt = (
        jnp.asarray(x, dtype)
        for x in (mu, kappa_v, theta_v, xi, rho, jump_intensity, jump_mean, jump_std, dt)
    )

    day = _heston_day(mu, kappa_v, theta_v, xi, rho, dt)

    def step(v, u):
        out = day(v, u)
        jump_return, _ = compensated_jumps(
            u[SLOT["u_jump_count"]],
            to_normal(u[SLOT["z_jump_size"]]),
            jump_intensity,
            jump_mean,
            jump_std,
            dt,
        )
        return out.variance, out.log_return + jump_return

    return _paths(key, s0, v0, n_paths, n_steps, SLOT["u_variance"] + 1, step, dtype)
