"""Historical market inputs: read a price history, replay it, or block-bootstrap it.

CSV format (UTF-8, comma-separated, one header line, then one line a trading day):

    date,close,iv
    2015-01-02,3.0,4.2517
    2015-01-05,2.91,4.3102

- `date`: ISO 8601 calendar date (YYYY-MM-DD), strictly increasing.
- `close`: closing price in dollars, finite and > 0. A column `adj close` (also written
  `adj_close` or `adjclose`: the close adjusted for dividends and splits, as Yahoo Finance
  exports it) is read instead when present (`History.close_column` says which was read): a
  dividend or a split is not a return.
- `iv` (optional column): implied volatility as an annual fraction (4.25 = 425 %), finite and
  > 0, on every line when the column is present.
Header names are matched case-insensitively, in any order; other columns are ignored; blank
lines are skipped. At least two days are needed (one daily log return). Each day is one
simulation step (dt = 1/252), whatever the calendar gap between dates.

A file that breaks these rules raises `HistoryError`, whose message names the file, the line
and field, and what is wrong.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt_module
import math
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from simkit.paths.iv import iv_log_step
from simkit.paths.keys import (
    MIN_BATCH,
    N_DRAWS_CONSTANT_VOL,
    SLOT,
    as_key,
    cell_key,
    day_uniforms,
    path_keys,
    to_normal,
)
from simkit.paths.market import (
    Market,
    MarketParams,
    _cast,
    _check_dt,
    _check_index,
    _market_of_day,
    check_dtype,
    exogenous_step,
    market_init,
    simulate_market,
    stack_days,
)

__all__ = ["History", "HistoryError", "read_history", "replay", "block_bootstrap"]

Array = jax.Array

_REQUIRED = ("date", "close")
_OPTIONAL = ("iv",)
_ADJUSTED_CLOSE = ("adj close", "adj_close", "adjclose")  # read instead of close when present
_BOOTSTRAP_STREAM = 1  # the bootstrap's own uniforms: fold_in(day_key, 1)
BASELINE = MarketParams()  # frozen: safe as a default argument


class HistoryError(ValueError):
    """A history file that cannot be used: `str()` is "FILE: FIELD: what is wrong"."""

    def __init__(self, path, field: str, message: str):
        super().__init__(str(path), field, message)
        self.path = str(path)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.message}"


@dataclasses.dataclass(frozen=True, eq=False)
class History:
    """A daily price history (see the module docstring for the CSV it comes from)."""

    path: str  # the file read
    dates: np.ndarray  # (n_days,) datetime64[D], strictly increasing
    close: np.ndarray  # (n_days,) float64 dollars, > 0
    iv: np.ndarray | None  # (n_days,) float64 annual fraction, > 0; None without an iv column
    close_column: str = "close"  # the header of the column read as the close, as written

    @property
    def n_days(self) -> int:
        return int(self.close.shape[0])

    @property
    def log_returns(self) -> np.ndarray:
        """(n_days - 1,) daily log returns of `close`."""
        return np.diff(np.log(self.close))


def _parse_number(path, line: int, field: str, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise HistoryError(path, f"line {line}, {field}", f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0.0:
        raise HistoryError(path, f"line {line}, {field}", f"must be {what} > 0; got {text!r}")
    return value


def read_history(path: str | Path) -> History:
    """Read and validate a history CSV `date,close[,iv]`.

    Args:
        path: the CSV file.

    Returns:
        `History` with `dates`, `close` and (if the file has the column) `iv`.

    Raises:
        HistoryError: missing or unreadable file, empty file, missing column, a short line,
            a bad date, a non-numeric, non-finite or non-positive value, non-increasing dates,
            fewer than two days.
    """
    path = Path(path)
    if not path.is_file():
        raise HistoryError(path, "file", "does not exist or is not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise HistoryError(path, "file", f"cannot be read as UTF-8 text ({error})") from None
    lines = [
        (number, row)
        for number, row in enumerate(csv.reader(text.splitlines()), start=1)
        if any(cell.strip() for cell in row)
    ]
    if not lines:
        raise HistoryError(path, "file", "is empty; expected a header 'date,close[,iv]' and rows")
    header_line, header = lines[0]
    names = [cell.strip().lower() for cell in header]
    adjusted = [name for name in _ADJUSTED_CLOSE if name in names]
    for name in _REQUIRED:
        if name not in names and not (name == "close" and adjusted):
            raise HistoryError(
                path,
                f"line {header_line}, header",
                f"missing column {name!r}; expected 'date,close[,iv]', got {','.join(header)!r}",
            )
    for name in (*_REQUIRED, *_OPTIONAL, *_ADJUSTED_CLOSE):
        if names.count(name) > 1:
            raise HistoryError(path, f"line {header_line}, header", f"column {name!r} repeats")
    if len(adjusted) > 1:
        both = f"columns {adjusted[0]!r} and {adjusted[1]!r} both name the adjusted close"
        raise HistoryError(path, f"line {header_line}, header", f"{both}; keep one")
    column = {name: names.index(name) for name in (*_REQUIRED, *_OPTIONAL) if name in names}
    if adjusted:
        column["close"] = names.index(adjusted[0])
    close_column = header[column["close"]].strip()
    has_iv = "iv" in column

    dates, closes, ivs = [], [], []
    for number, row in lines[1:]:
        if len(row) <= max(column.values()):
            raise HistoryError(
                path, f"line {number}", f"expected {len(names)} fields, got {len(row)}"
            )
        date_text = row[column["date"]].strip()
        try:
            date = dt_module.date.fromisoformat(date_text)
        except ValueError:
            raise HistoryError(
                path, f"line {number}, date", f"{date_text!r} is not an ISO date YYYY-MM-DD"
            ) from None
        if dates and date <= dates[-1]:
            raise HistoryError(
                path,
                f"line {number}, date",
                f"dates must increase strictly; {date} follows {dates[-1]}",
            )
        dates.append(date)
        closes.append(
            _parse_number(path, number, close_column, row[column["close"]].strip(), "a price")
        )
        if has_iv:
            ivs.append(_parse_number(path, number, "iv", row[column["iv"]].strip(), "a fraction"))
    if len(dates) < 2:
        raise HistoryError(
            path, "file", f"needs at least 2 days of data (one return); got {len(dates)}"
        )
    return History(
        path=str(path),
        dates=np.array(dates, dtype="datetime64[D]"),
        close=np.array(closes, dtype=np.float64),
        iv=np.array(ivs, dtype=np.float64) if has_iv else None,
        close_column=close_column,
    )


def replay(
    history: History,
    params: MarketParams = BASELINE,
    seed: int = 0,
    dt: float = 1 / 252,
    dtype=jnp.float32,
) -> Market:
    """The history as one market path, `(1, n_days)` arrays.

    Spot is `close`; IV is the `iv` column, or the constant `params.iv0` without one. The other
    signals, thesis events and early-assignment draws are simulated from `params` with the keys
    of path 0, cell 0 of `seed` (constants by default). `jump` is False throughout (jumps are not
    identified in data).

    Args:
        history: from `read_history`.
        params: inputs of the columns the history lacks. Default value: the baseline.
        seed: seed of the simulated columns. Default value: 0.
        dt: step, years. Default value: 1/252.
        dtype: float32 or float64. Default value: float32.
    """
    dtype = check_dtype(dtype)
    simulated = simulate_market(
        dataclasses.replace(params, model="gbm", iv_model=None),
        seed,
        0,
        0,
        1,
        history.n_days - 1,
        dt,
        dtype,
    )
    iv = history.iv if history.iv is not None else np.full(history.n_days, float(params.iv0))
    return simulated._replace(
        spot=jnp.asarray(history.close[None, :], dtype),
        iv=jnp.asarray(iv[None, :], dtype),
        jump=jnp.zeros((1, history.n_days), bool),
    )


@partial(jax.jit, static_argnames=("n_paths", "n_steps", "dtype", "has_iv"))
def _bootstrap(
    params,
    base_key,
    path_start,
    returns,
    log_iv_changes,
    restart_prob,
    dt,
    *,
    n_paths,
    n_steps,
    dtype,
    has_iv,
) -> Market:
    n_computed = max(n_paths, MIN_BATCH)  # see MIN_BATCH; the extra paths are dropped
    keys = path_keys(base_key, path_start, n_computed)
    state, day0 = market_init(params, keys, dtype)
    p = _cast(params, dtype)
    dt = jnp.asarray(dt, dtype)
    n_returns = returns.shape[0]
    return_mean = jnp.mean(returns)
    return_std = jnp.std(returns)
    return_std = jnp.where(return_std > 0.0, return_std, 1.0)

    def one_day(carry, day):
        state, index = carry
        u = day_uniforms(keys, day, N_DRAWS_CONSTANT_VOL, dtype)
        restart_u, start_u = day_uniforms(keys, day, 2, dtype, stream=_BOOTSTRAP_STREAM)
        start = jnp.minimum((start_u * n_returns).astype(jnp.int32), n_returns - 1)
        # Politis-Romano: a new block (at a uniform start) with probability 1/block_len,
        # else the next day of the history, wrapping around.
        new_block = (day == 1) | (restart_u < restart_prob)
        index = jnp.where(new_block, start, (index + 1) % n_returns)
        log_return = returns[index]
        if has_iv:
            log_iv = state.log_iv + log_iv_changes[index]
        else:
            log_iv = iv_log_step(
                state.log_iv,
                (log_return - return_mean) / return_std,
                to_normal(u[SLOT["z_iv"]]),
                jnp.zeros_like(log_return),
                p.kappa,
                p.iv_long_run,
                p.eta,
                p.iv_spot_corr,
                p.iv_jump_beta,
                dt,
            )
        short_interest, thesis_event, early_u = exogenous_step(p, state.short_interest, u, dt)
        state = state._replace(
            log_spot=state.log_spot + log_return, log_iv=log_iv, short_interest=short_interest
        )
        market = _market_of_day(p, state, thesis_event, jnp.zeros_like(thesis_event), early_u)
        varying = ("spot", "iv", "short_interest", "thesis_event", "jump", "early_u")
        return (state, index), {name: getattr(market, name) for name in varying}

    index0 = jnp.zeros((n_computed,), jnp.int32)
    _, days = jax.lax.scan(one_day, (state, index0), jnp.arange(1, n_steps + 1))
    days = Market(**{name: days.get(name) for name in Market._fields})
    return Market(*(field[:n_paths] for field in stack_days(day0, days, n_computed, n_steps)))


def block_bootstrap(
    history: History,
    key_or_seed,
    n_paths: int,
    n_steps: int,
    block_len: float = 10,
    params: MarketParams = BASELINE,
    *,
    cell: int = 0,
    path_start: int = 0,
    dt: float = 1 / 252,
    dtype=jnp.float32,
) -> Market:
    """Market paths made of resampled blocks of the history's daily log returns.

    The stationary bootstrap of Politis and Romano (1994): each path starts a block at a
    uniformly drawn day of the history and on each later day either starts a new block (with
    probability `1 / block_len`, so blocks have a geometric length of mean `block_len`) or takes
    the history's next day, wrapping around. Spot starts at `params.s0` and IV at `params.iv0`.
    With an `iv` column, ln IV moves by the history's log-IV change of the same day (same
    blocks); without one, IV follows the log-OU process of `params`, its spot shock being the
    day's standardized resampled return. Short interest, thesis events and early-assignment
    draws are `simulate_market`'s; `jump` is False.

    Path `path_start + j` draws from `fold_in(cell_key(seed, cell), path_start + j)` for an int
    seed (the keys `simulate_market` uses), or from `fold_in(key, path_start + j)` for a key (then
    `cell` is not used): a path is the same in any block of paths.

    Args:
        history: from `read_history`.
        key_or_seed: int seed (>= 0) or JAX PRNG key.
        n_paths: number of paths, >= 1.
        n_steps: number of steps, >= 0 (any length: blocks wrap around the history).
        block_len: mean block length, days, >= 1. Default value: 10.
        params: inputs of everything the history does not give. Default value: the baseline.
        cell, path_start: grid cell and first path index. Default value: 0.
        dt: step, years (for the simulated columns). Default value: 1/252.
        dtype: float32 or float64. Default value: float32.

    Returns:
        `Market` of `(n_paths, n_steps + 1)` arrays.
    """
    dtype = check_dtype(dtype)
    if (
        isinstance(block_len, bool)
        or not isinstance(block_len, int | float)
        or not (math.isfinite(block_len) and block_len >= 1)
    ):
        raise ValueError(f"block_len must be a number >= 1 (days); got {block_len!r}.")
    n_paths = _check_index("n_paths", n_paths, 1)
    n_steps = _check_index("n_steps", n_steps, 0)
    cell = _check_index("cell", cell, 0, 2**32)
    path_start = _check_index("path_start", path_start, 0)
    if path_start + n_paths > 2**32:
        raise ValueError(
            f"path indices must stay below 2**32; got up to {path_start + n_paths - 1}."
        )
    _check_dt(dt)
    if isinstance(key_or_seed, bool):
        raise ValueError(f"key_or_seed must be an int seed >= 0 or a JAX key; got {key_or_seed!r}.")
    if isinstance(key_or_seed, int | np.integer):
        if key_or_seed < 0:
            raise ValueError(
                f"key_or_seed must be an int seed >= 0 or a JAX key; got {key_or_seed}."
            )
        base_key = cell_key(int(key_or_seed), int(cell))
    else:
        base_key = as_key(key_or_seed)
    has_iv = history.iv is not None
    returns = jnp.asarray(history.log_returns, dtype)
    log_iv_changes = jnp.asarray(np.diff(np.log(history.iv)) if has_iv else np.zeros(1), dtype)
    return _bootstrap(
        params,
        base_key,
        np.uint32(path_start),
        returns,
        log_iv_changes,
        jnp.asarray(1.0 / block_len, dtype),
        dt,
        n_paths=n_paths,
        n_steps=n_steps,
        dtype=dtype,
        has_iv=has_iv,
    )
