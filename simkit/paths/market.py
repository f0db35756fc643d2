"""One simulated market: spot, implied volatility, exogenous signals and event draws per path.

`MarketParams` holds a market's inputs (the baseline market of docs/MODELLING.md as defaults);
`simulate_market` turns them into a `Market`, a `NamedTuple` of `(n_paths, n_steps + 1)`
arrays. One day can also be generated on its own (`market_init`, `market_step`) inside the
strategy engine's scan, from the same random numbers, so the engine need not hold whole paths
in memory (the values are bit-for-bit `simulate_market`'s in a plain scan, see the tests;
inside a larger jitted program XLA may fuse the arithmetic differently, so allow for an ulp
there).

Reproducibility: path i (`i = path_start + local index`) of grid cell `cell` draws every random
number from `fold_in(fold_in(PRNGKey(seed), cell), i)` and the day (`simkit.paths.keys`), so a
block of paths is the same rows of any larger block, for any chunking and any worker.

Each day, in order (one trading day, `dt = 1/252` years):
    spot       GBM or Merton log-exact step (`simkit.paths.gbm`, `simkit.paths.merton`), or
               Heston / Bates: the variance's QE step and the martingale-corrected log spot
               (`simkit.paths.heston`), plus Merton's jumps in Bates; or GJR-GARCH(1,1): the
               day's return at the variance known the day before, then the next day's
               variance (`simkit.paths.garch`)
    iv         independent (gbm and merton by default): exact log-OU step with the spot's
               diffusion shock and log jump (`simkit.paths.iv`); linked (heston, bates and
               garch by default): IV = sqrt(v) e^z, z = ln(IV / sqrt(v)) an exact OU step of
               its own (`simkit.paths.iv.linked_log_iv`); under garch v is the annualized
               variance of the next day's return, h_{t+1} / dt
    short_interest  exact OU step in level (percent), clipped to [0, 100]; constant when
               `short_interest_kappa = short_interest_eta = 0` (the default)
    thesis_event    at least one event of a Poisson process of `thesis_break_intensity` a year
    early_u    a uniform the strategy engine compares with its early-assignment probability
The other signals (vix, btc_correlation, bid_ask_spread, open_interest, option_volume,
liquidity_score, borrow_cost, volume_ratio) are scenario constants.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simkit.paths.garch import garch_step
from simkit.paths.gbm import gbm_log_return
from simkit.paths.heston import compensated_jumps, heston_step
from simkit.paths.iv import initial_log_vrp, iv_log_step, linked_log_iv, ou_step
from simkit.paths.keys import (
    DRAWS,
    MIN_BATCH,
    N_DRAWS_CONSTANT_VOL,
    SLOT,
    cell_key,
    day_uniforms,
    path_keys,
    to_normal,
)
from simkit.paths.merton import merton_log_return
from simkit.schema.market import (
    _STATIC_FIELDS,
    HISTORY_MODELS,
    LINKED_IV_MODELS,
    MODELS,
    NUMERIC_FIELDS,
    STOCHASTIC_VOL_MODELS,
    MarketParams,
    _concrete,
)

__all__ = [
    "MODELS",
    "MarketParams",
    "Market",
    "MarketState",
    "market_init",
    "market_step",
    "simulate_market",
    "market_to_numpy",
]

Array = jax.Array


def _flatten(params: MarketParams):
    children = tuple(getattr(params, name) for name in NUMERIC_FIELDS)
    return children, tuple(getattr(params, name) for name in _STATIC_FIELDS)


def _unflatten(static, children) -> MarketParams:
    # Bypass __init__: leaves may be tracers or placeholders while JAX rebuilds the tree.
    params = object.__new__(MarketParams)
    for name, value in zip(_STATIC_FIELDS, static, strict=True):
        object.__setattr__(params, name, value)
    for name, value in zip(NUMERIC_FIELDS, children, strict=True):
        object.__setattr__(params, name, value)
    return params


jax.tree_util.register_pytree_node(MarketParams, _flatten, _unflatten)


class Market(NamedTuple):
    """A simulated market. Each field is `(n_paths, n_steps + 1)`, column 0 the initial values,
    or `(n_paths,)` for one day (`market_init`, `market_step`)."""

    spot: Array  # (paths, days) dollars per share
    iv: Array  # (paths, days) implied volatility, annual fraction (4.25 = 425 %)
    short_interest: Array  # (paths, days) percent of float, in [0, 100]
    vix: Array  # (paths, days) VIX points
    btc_correlation: Array  # (paths, days) correlation with bitcoin, in [-1, 1]
    bid_ask_spread: Array  # (paths, days) option bid-ask spread, dollars
    open_interest: Array  # (paths, days) open interest per strike, contracts
    option_volume: Array  # (paths, days) option volume per strike, contracts a day
    liquidity_score: Array  # (paths, days) the seed's liquidity score, 0-10
    borrow_cost: Array  # (paths, days) stock borrow cost, percent a year
    volume_ratio: Array  # (paths, days) stock volume over its average, ratio
    thesis_event: Array  # (paths, days) bool: a thesis-break event arrived this step (col 0 False)
    jump: Array  # (paths, days) bool: the spot jumped this step (col 0 False; merton only)
    early_u: Array  # (paths, days) uniform in (0, 1): the early-assignment draw of the step


class MarketState(NamedTuple):
    """What one day of the market carries to the next."""

    log_spot: Array  # (paths,) ln(dollars)
    log_iv: Array  # (paths,) ln(annual fraction)
    short_interest: Array  # (paths,) percent
    variance: Array  # (paths,) the spot's variance v, annual (heston, bates; garch: the next
    # day's h / dt; sigma^2 otherwise)
    log_vrp: Array  # (paths,) z = ln(IV / sqrt(v)) of linked IV (0 for independent IV)


def _cast(params: MarketParams, dtype) -> MarketParams:
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), params)


def _market_of_day(params: MarketParams, state: MarketState, thesis_event, jump, early_u) -> Market:
    shape = state.log_spot.shape
    constant = {
        name: jnp.broadcast_to(getattr(params, name), shape)
        for name in (
            "vix",
            "btc_correlation",
            "bid_ask_spread",
            "open_interest",
            "option_volume",
            "liquidity_score",
            "borrow_cost",
            "volume_ratio",
        )
    }
    return Market(
        spot=jnp.exp(state.log_spot),
        iv=jnp.exp(state.log_iv),
        short_interest=state.short_interest,
        thesis_event=thesis_event,
        jump=jump,
        early_u=early_u,
        **constant,
    )


def market_init(params: MarketParams, keys: Array, dtype=jnp.float32) -> tuple[MarketState, Market]:
    """The market's state and its day-0 values (`Market` of `(n_paths,)` arrays).

    Args:
        params: market inputs (numeric fields may be traced).
        keys: path keys, uint32 (n_paths, 2) (`simkit.paths.keys.path_keys`).
        dtype: float dtype of the market. Default value: float32.
    """
    p = _cast(params, dtype)
    n_paths = keys.shape[0]
    variance = p.v0 if params.model in LINKED_IV_MODELS else p.sigma * p.sigma
    log_vrp = initial_log_vrp(p.iv0, variance) if params.linked_iv else jnp.zeros((), dtype)
    state = MarketState(
        log_spot=jnp.full((n_paths,), jnp.log(p.s0), dtype),
        log_iv=jnp.full((n_paths,), jnp.log(p.iv0), dtype),
        short_interest=jnp.full((n_paths,), p.short_interest, dtype),
        variance=jnp.full((n_paths,), variance, dtype),
        log_vrp=jnp.full((n_paths,), log_vrp, dtype),
    )
    early_u = day_uniforms(keys, 0, N_DRAWS_CONSTANT_VOL, dtype)[SLOT["early_u"]]
    no_event = jnp.zeros((n_paths,), bool)
    return state, _market_of_day(p, state, no_event, no_event, early_u)


def exogenous_step(
    params: MarketParams, short_interest: Array, u: Array, dt: Array
) -> tuple[Array, Array, Array]:
    """The day's short interest (percent), thesis-event flag and early-assignment uniform.

    Args:
        params: market inputs cast to the market's dtype.
        short_interest: yesterday's short interest, percent, (n_paths,).
        u: the day's uniforms, (len(DRAWS), n_paths).
        dt: step, years.
    """
    short_interest = ou_step(
        short_interest,
        to_normal(u[SLOT["z_short_interest"]]),
        params.short_interest_kappa,
        params.short_interest_long_run,
        params.short_interest_eta,
        dt,
    )
    short_interest = jnp.clip(short_interest, 0.0, 100.0)
    thesis_event = u[SLOT["u_thesis"]] < -jnp.expm1(-params.thesis_break_intensity * dt)
    return short_interest, thesis_event, u[SLOT["early_u"]]


class _SpotMove(NamedTuple):
    """One day of the spot, as the IV step and the next state read it."""

    log_return: Array  # (paths,) ln(S_t / S_{t-1})
    variance: Array  # (paths,) the spot's variance after the step, annual (MarketState's)
    z_spot_iv: Array  # (paths,) the spot's diffusion shock as one normal (the IV's correlation)
    jump: Array  # (paths,) bool: the spot jumped this step
    log_jump: Array  # (paths,) the day's log jump (0 without one)


def _no_jump(z_spot: Array) -> tuple[Array, Array]:
    return jnp.zeros(z_spot.shape, bool), jnp.zeros_like(z_spot)


def _stochastic_vol_move(
    model: str, p: MarketParams, state: MarketState, u: Array, z_spot: Array, mu, dt
) -> _SpotMove:
    """Heston (Bates: plus Merton's compensated jumps): the variance's QE step and the
    martingale-corrected log spot (`simkit.paths.heston`)."""
    step = heston_step(
        state.variance,
        u[SLOT["u_variance"]],
        z_spot,
        mu,
        p.kappa_v,
        p.theta_v,
        p.xi,
        p.rho,
        dt,
    )
    variance, log_return = step.variance, step.log_return
    z_spot_iv = p.rho * step.z_variance + jnp.sqrt(1.0 - p.rho * p.rho) * z_spot
    if model == "bates":
        jump_return, jumps = compensated_jumps(
            u[SLOT["u_jump_count"]],
            to_normal(u[SLOT["z_jump_size"]]),
            p.jump_intensity,
            p.jump_mean,
            p.jump_std,
            dt,
        )
        log_return = log_return + jump_return
        jump, log_jump = jumps.count > 0.0, jumps.log_jump
    else:
        jump, log_jump = _no_jump(z_spot)
    return _SpotMove(log_return, variance, z_spot_iv, jump, log_jump)


def _garch_move(p: MarketParams, state: MarketState, z_spot: Array, mu, dt) -> _SpotMove:
    """GJR-GARCH(1,1): the day's return at the variance known the day before, then the next
    day's variance (`simkit.paths.garch`)."""
    step = garch_step(
        state.variance,
        z_spot,
        mu,
        p.garch_omega,
        p.garch_alpha,
        p.garch_gamma,
        p.garch_beta,
        dt,
    )
    return _SpotMove(step.log_return, step.variance, z_spot, *_no_jump(z_spot))


def _merton_move(p: MarketParams, state: MarketState, u: Array, z_spot: Array, mu, dt) -> _SpotMove:
    """Merton's log-exact jump-diffusion step (`simkit.paths.merton`)."""
    log_return, jumps = merton_log_return(
        z_spot,
        u[SLOT["u_jump_count"]],
        to_normal(u[SLOT["z_jump_size"]]),
        mu,
        p.sigma,
        p.jump_intensity,
        p.jump_mean,
        p.jump_std,
        dt,
    )
    return _SpotMove(log_return, state.variance, z_spot, jumps.count > 0.0, jumps.log_jump)


def _spot_move(
    params: MarketParams, p: MarketParams, state: MarketState, u: Array, dt
) -> _SpotMove:
    """The day's spot step of `params.model` (static), from the day's uniforms `u`."""
    z_spot = to_normal(u[SLOT["z_spot"]])
    mu = p.rate if params.risk_neutral else p.mu
    if params.model in STOCHASTIC_VOL_MODELS:
        return _stochastic_vol_move(params.model, p, state, u, z_spot, mu, dt)
    if params.model == "garch":
        return _garch_move(p, state, z_spot, mu, dt)
    if params.model == "merton":
        return _merton_move(p, state, u, z_spot, mu, dt)
    log_return = gbm_log_return(z_spot, mu, p.sigma, dt)
    return _SpotMove(log_return, state.variance, z_spot, *_no_jump(z_spot))


def _log_iv_step(
    params: MarketParams, p: MarketParams, state: MarketState, move: _SpotMove, u: Array, dt
) -> tuple[Array, Array]:
    """(ln IV, z = ln(IV / sqrt(v))) of the day: linked IV is sqrt(v) e^z with z an OU step of
    its own; independent IV an exact log-OU step with the spot's shock and log jump."""
    if params.linked_iv:
        log_vrp = ou_step(
            state.log_vrp,
            to_normal(u[SLOT["z_iv"]]),
            p.vrp_kappa,
            jnp.log(p.vrp_long_run),
            p.vrp_eta,
            dt,
        )
        return linked_log_iv(move.variance, log_vrp), log_vrp
    log_iv = iv_log_step(
        state.log_iv,
        move.z_spot_iv,
        to_normal(u[SLOT["z_iv"]]),
        move.log_jump,
        p.kappa,
        p.iv_long_run,
        p.eta,
        p.iv_spot_corr,
        p.iv_jump_beta,
        dt,
    )
    return log_iv, state.log_vrp


def market_step(
    params: MarketParams, keys: Array, state: MarketState, day: int | Array, dt=1 / 252
) -> tuple[MarketState, Market]:
    """Advance the market by one step: the new state and the day's `Market` of `(n_paths,)`.

    Args:
        params: market inputs (numeric fields may be traced; `model` is static).
        keys: path keys, uint32 (n_paths, 2).
        state: yesterday's state (its dtype is the market's).
        day: index of the new day, 1..n_steps (traceable): the random numbers are day's.
        dt: step, years. Default value: 1/252.
    """
    dtype = state.log_spot.dtype
    p = _cast(params, dtype)
    dt = jnp.asarray(dt, dtype)
    stochastic_vol = params.model in STOCHASTIC_VOL_MODELS
    u = day_uniforms(keys, day, len(DRAWS) if stochastic_vol else N_DRAWS_CONSTANT_VOL, dtype)
    move = _spot_move(params, p, state, u, dt)
    log_iv, log_vrp = _log_iv_step(params, p, state, move, u, dt)
    short_interest, thesis_event, early_u = exogenous_step(p, state.short_interest, u, dt)
    state = MarketState(
        state.log_spot + move.log_return, log_iv, short_interest, move.variance, log_vrp
    )
    return state, _market_of_day(p, state, thesis_event, move.jump, early_u)


def stack_days(day0: Market, days: Market | None, n_paths: int, n_steps: int) -> Market:
    """Join day 0 `(n_paths,)` and scanned days `(n_steps, n_paths)` into `(n_paths, n_steps + 1)`.

    Fields missing from `days` (None) are constant: day 0's value repeated.
    """
    fields = {}
    for name in Market._fields:
        first = getattr(day0, name)
        rest = None if days is None else getattr(days, name)
        if rest is None:
            fields[name] = jnp.broadcast_to(first[:, None], (n_paths, n_steps + 1))
        else:
            fields[name] = jnp.concatenate([first[:, None], rest.T], axis=1)
    return Market(**fields)


_VARYING = ("spot", "iv", "short_interest", "thesis_event", "jump", "early_u")


@partial(jax.jit, static_argnames=("n_paths", "n_steps", "dtype"))
def _simulate(params, base_key, path_start, dt, *, n_paths, n_steps, dtype) -> Market:
    n_computed = max(n_paths, MIN_BATCH)  # see MIN_BATCH; the extra paths are dropped
    keys = path_keys(base_key, path_start, n_computed)
    state, day0 = market_init(params, keys, dtype)

    def one_day(state, day):
        state, market = market_step(params, keys, state, day, dt)
        # Only what varies leaves the scan; the constants are repeated once at the end.
        return state, {name: getattr(market, name) for name in _VARYING}

    _, days = jax.lax.scan(one_day, state, jnp.arange(1, n_steps + 1))
    days = Market(**{name: days.get(name) for name in Market._fields})
    return Market(*(field[:n_paths] for field in stack_days(day0, days, n_computed, n_steps)))


def check_dtype(dtype) -> np.dtype:
    """The float dtype `dtype` names, checked: float32, or float64 with JAX's x64 mode on."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be one of float32, float64; got {dtype!r}.")
    if jax.dtypes.canonicalize_dtype(dtype) != dtype:
        raise ValueError(
            "dtype must be float32 unless JAX's x64 mode is on "
            "(jax.config.update('jax_enable_x64', True)); got float64 with x64 off."
        )
    return dtype


def _check_index(name: str, value, minimum: int, below: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or value < minimum
        or (below is not None and value >= below)
    ):
        bounds = f">= {minimum}" if below is None else f"in [{minimum}, {below})"
        raise ValueError(f"{name} must be an integer {bounds}; got {value!r}.")
    return int(value)


def _check_dt(dt) -> None:
    value = _concrete(dt)
    if value is not None and not (np.all(np.isfinite(value)) and np.all(value > 0)):
        raise ValueError(f"dt must be a finite number of years > 0; got {dt!r}.")


def simulate_market(
    params: MarketParams,
    seed: int,
    cell: int,
    path_start: int,
    n_paths: int,
    n_steps: int,
    dt: float = 1 / 252,
    dtype=jnp.float32,
) -> Market:
    """Simulate `n_paths` market paths (indices `path_start ..`) of one grid cell.

    Jitted with the numeric parameters, the cell, the first path and `dt` traced: a new grid
    cell or path block reuses the compiled code (only `model`, `risk_neutral`, `n_paths`,
    `n_steps` and `dtype` recompile). Memory: 14 arrays of `n_paths * (n_steps + 1)` values;
    for large runs generate days inside a scan with `market_init` / `market_step` instead.

    Args:
        params: market inputs.
        seed: scenario seed, int >= 0.
        cell: grid cell index, int >= 0.
        path_start: index of the first path in the cell, int >= 0.
        n_paths: number of paths, >= 1.
        n_steps: number of steps (trading days), >= 0.
        dt: step, years. Default value: 1/252.
        dtype: float32 or float64 (needs x64). Default value: float32.

    Returns:
        `Market` of `(n_paths, n_steps + 1)` arrays; row j is path `path_start + j`.
    """
    if not isinstance(params, MarketParams):
        raise TypeError(f"params must be a MarketParams; got {type(params).__name__}.")
    if params.model in HISTORY_MODELS:
        raise ValueError(
            f"simulate_market simulates {', '.join(m for m in MODELS if m not in HISTORY_MODELS)}; "
            f"model {params.model!r} reads a history: use simkit.paths.history.history_market."
        )
    dtype = check_dtype(dtype)
    seed = _check_index("seed", seed, 0)
    cell = _check_index("cell", cell, 0, 2**32)
    path_start = _check_index("path_start", path_start, 0)
    n_paths = _check_index("n_paths", n_paths, 1)
    n_steps = _check_index("n_steps", n_steps, 0)
    if path_start + n_paths > 2**32:
        raise ValueError(
            f"path indices must stay below 2**32; got up to {path_start + n_paths - 1}."
        )
    _check_dt(dt)
    return _simulate(
        params,
        cell_key(seed, cell),
        np.uint32(path_start),
        dt,
        n_paths=n_paths,
        n_steps=n_steps,
        dtype=dtype,
    )


def market_to_numpy(market: Market) -> dict[str, np.ndarray]:
    """The market's fields as a dict of NumPy arrays (for the scalar reference engine)."""
    return {name: np.asarray(value) for name, value in market._asdict().items()}
