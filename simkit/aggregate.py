"""Per-path summaries -> per-path risk figures -> one cell's aggregate metrics.

Two steps, both pure NumPy (no dask, no files):

1. `derive_block` runs where a block was simulated: from the engine's per-path summary
   (docs/ENGINE_SPEC.md, "Per-path summary") it derives each path's time-weighted
   `annual_return`, `max_drawdown`, `path_sharpe`, `daily_var_99` and `total_return`, keeps the
   daily equity of the first `n_sample` paths of the cell (for fan charts) and drops the rest
   of the `(paths, days)` equity array, so what travels back is O(paths).
2. `CellAccumulator` reduces a cell's blocks as they arrive (in any order): joined in path
   order, cut into fixed `streaming.SEGMENT`-path segments, each segment summed in float64
   and its few order-statistic columns kept (`streaming.Columns`, spilled to files past a
   size: in `<out>.partial/` during a run that writes a file); medians, quantiles, intervals, CVaR and histograms are then exact, computed in
   passes over those columns (`simkit.streaming`). Every reduction depends on the ordered
   paths alone, not on where the blocks begin, so the result is identical (bitwise) for any
   chunk size, scheduler or resume, and a cell's memory does not grow with its paths beyond
   80 bytes a path (none once spilled). `aggregate_cell` is the same reduction of arrays
   already in memory.
3. `RunHistograms` puts the histograms of every cell of a run on common edges (the lowest
   cell's 0.5 % quantile to the highest cell's 99.5 % quantile, `N_BINS` equal bins), counting
   each cell's kept values again once every cell is done, so that the same bin means the same
   values in every cell.

Daily returns (time-weighted, contributions removed): with `E_t` the end-of-day sleeve equity
and `E_{-1}` = `initial_equity` (the sleeve before any trade),

    r_t = (E_t - a_t) / E_{t-1} - 1,   t = 0 ... N,

where `a_t` is the monthly addition paid on step `t` (ENGINE_SPEC step 1: `t >= 1`,
`t % 21 == 0`, not after ruin), so a contribution is not counted as a return. `r_0` is the
day-0 cost of the first entry (spread and commissions). A path whose equity reaches <= 0 (or
that is ruined) uses its returns up to and including that step and none after (the equity is
frozen); its `annual_return` is -1 when the equity reached <= 0.

Names beginning with `_` are internal per-path quantities (pooled-Sharpe sums, the equity
sample): they travel with the blocks but are not written as per-path variables.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from simkit import kelly_sleeve, metrics, streaming
from simkit.schema.outcomes import (
    ADDITION_EVERY_DAYS,
    BUCKETS,
    CLOSE_COUNTERS,
    CLOSE_REASONS,
    LIMIT_NAMES,
    TRADING_DAYS_PER_YEAR,
    UNDERLYING,
)
from simkit.schema.results import (
    CONFIDENCE,
    HIST_RANGE,
    HISTOGRAMS,
    RUN_VARIABLES,
    per_path_variable,
)

__all__ = [
    "BUCKETS",
    "CLOSE_REASONS",
    "LIMITS",
    "N_SAMPLE",
    "QUANTILES",
    "TRADING_DAYS",
    "VARIABLES",
    "CellAccumulator",
    "RunHistograms",
    "aggregate_cell",
    "derive_block",
    "per_path_meta",
]

TRADING_DAYS = TRADING_DAYS_PER_YEAR
N_SAMPLE = 200  # equity curves kept per cell for fan charts: the first min(200, paths) paths
QUANTILES = (0.01, 0.05, 0.25, 0.50, 0.75, 0.95, 0.99)
N_BINS = 60  # histogram bins (report figures)
CONF = CONFIDENCE  # confidence of every interval (`_lo`, `_hi`)
# a histogram range narrower than this (relative to the values' magnitude) is widened: its
# N_BINS bins would be a few ulps wide or less, which np.histogram cannot make
HIST_MIN_WIDTH = 1e-10
# histogram columns of a run's finished cells held in memory (all cells together) until every
# cell is done and the common edges are known (`RunHistograms`); files after that
HIST_KEEP_BYTES = 64 << 20
_TINY = float(np.finfo(np.float64).tiny)  # the range is at least N_BINS normal numbers wide
ADDITION_EVERY = ADDITION_EVERY_DAYS  # ENGINE_SPEC step 1: monthly addition every 21 trading days

# Per-trade end states (`simkit.schema.outcomes`), limits and attribution buckets.
LIMITS = LIMIT_NAMES
_CLOSE_COUNTERS = CLOSE_COUNTERS

# The result variables, declared in `simkit.schema.results` (as are `HISTOGRAMS`, `HIST_RANGE`):
# `VARIABLES` is the run's metrics, name -> `ResultVariable` (extra dims, units, long_name).
VARIABLES = RUN_VARIABLES


def per_path_meta(name: str) -> tuple[str, str]:
    """(units, long_name) of a per-path variable (`simkit.schema.results.per_path_variable`)."""
    variable = per_path_variable(name)
    return variable.units, variable.long_name


# --------------------------------------------------------------------------- per block


def _paid(n_days: int, monthly_addition: float) -> np.ndarray:
    """`(days,)` USD added to sleeve cash on each step (ENGINE_SPEC step 1). After a ruin
    nothing is paid, but those days are never used (a ruined path's returns stop at the
    ruin), so one row serves every path."""
    steps = np.arange(n_days)
    return np.where((steps >= 1) & (steps % ADDITION_EVERY == 0), float(monthly_addition), 0.0)


def _value_at_risk_rows(returns: np.ndarray, level: float, fallback: np.ndarray) -> np.ndarray:
    """`metrics.value_at_risk(returns, level)` per row, from the two order statistics it
    interpolates (`np.partition` at two ranks instead of NumPy's four), bit for bit; rows
    in `fallback` (any NaN, say) are computed by `metrics.value_at_risk` itself."""
    n = returns.shape[1]
    lower, upper, weight = streaming.linear_positions(n, 100 * (1 - level) / 100)
    part = np.partition(returns, (lower, upper) if upper != lower else lower, axis=1)
    a, b = part[:, lower], part[:, upper]
    diff = b - a
    out = -(b - diff * (1 - weight) if weight >= 0.5 else a + diff * weight)  # NumPy's _lerp
    for i in np.flatnonzero(fallback):
        out[i] = metrics.value_at_risk(returns[i], level)
    return out


class _UsedSteps(NamedTuple):
    """Which steps of each path count: up to the first with equity <= 0, or the ruin step,
    else the horizon."""

    hit: np.ndarray  # (n,) bool: the equity reached <= 0
    last: np.ndarray  # (n,) int: the last used step
    cut_rows: np.ndarray  # (k,) int: the paths cut short (last < the horizon)
    unused: np.ndarray  # (k, days) bool: the steps after `last` of the paths cut short


def _daily_returns(equity: np.ndarray, initial: np.ndarray, monthly_addition: float) -> np.ndarray:
    """`(n, days)` time-weighted daily returns `r_t = (E_t - a_t) / E_{t-1} - 1` (module doc),
    NaN on every day of a path without a sleeve (initial equity <= 0)."""
    n_days = equity.shape[1]
    previous = np.empty_like(equity)
    previous[:, 0] = initial
    previous[:, 1:] = equity[:, :-1]
    returns = equity - _paid(n_days, monthly_addition)
    returns /= previous
    returns -= 1.0
    del previous
    returns[initial <= 0] = np.nan  # no sleeve, no return
    return returns


def _used_steps(equity: np.ndarray, ruin_step: np.ndarray) -> _UsedSteps:
    """The last used step of each path: the first with equity <= 0, or the ruin step, else the
    horizon (rows with equity <= 0 are the rare case: only those are searched)."""
    n, n_days = equity.shape
    hit = (equity <= 0).any(axis=1)
    last = np.full(n, n_days - 1)
    rows = np.flatnonzero(hit)
    last[rows] = (equity[rows] <= 0).argmax(axis=1)
    last = np.where(ruin_step >= 0, np.minimum(last, ruin_step), last)
    cut_rows = np.flatnonzero(last < n_days - 1)
    unused = np.arange(n_days)[None, :] > last[cut_rows, None]
    return _UsedSteps(hit, last, cut_rows, unused)


def _zero_unused(returns: np.ndarray, used: _UsedSteps) -> np.ndarray:
    """The returns on used steps, 0 after: `returns` itself unless a path is cut (a copy)."""
    if not used.cut_rows.size:
        return returns
    used_returns = returns.copy()
    used_returns[used.cut_rows] = np.where(used.unused, 0.0, returns[used.cut_rows])
    return used_returns


def _wealth_figures(
    out: dict[str, np.ndarray], used_returns: np.ndarray, used: _UsedSteps, n_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """`max_drawdown` and `_period_return` into `out`, from the time-weighted equity index;
    returns `(annual_return, time-weighted horizon return)`, both `(n,)`."""
    wealth = 1.0 + used_returns  # time-weighted equity index, 1 before day 0
    np.cumprod(wealth, axis=1, out=wealth)
    annual = np.where(used.hit, -1.0, wealth[:, -1] ** (TRADING_DAYS / n_steps) - 1.0)
    # metrics.max_drawdown of [1, wealth]: its running maximum is >= 1 (never undefined)
    # and min(x - 1) == min(x) - 1 in floating point, so this is the same number.
    peak = np.maximum.accumulate(wealth, axis=1)
    np.maximum(peak, 1.0, out=peak)
    np.divide(wealth, peak, out=peak)
    out["max_drawdown"] = np.minimum(peak.min(axis=1), 1.0) - 1.0
    del peak
    out["_period_return"] = kelly_sleeve.period_returns(wealth, used.last)
    time_weighted = wealth[:, -1] - 1.0  # the sleeve's return, contributions removed
    return annual, time_weighted


def _sharpe_and_var(
    returns: np.ndarray, used: _UsedSteps
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each path's Sharpe ratio and 99 % daily VaR of its used returns (`simkit.metrics`), and
    the row sums of `returns` (NaN in a row marks it for `metrics` itself)."""
    sharpe = np.asarray(metrics.sharpe_ratio(returns), dtype=np.float64)
    sums = returns.sum(axis=1)
    var = _value_at_risk_rows(returns, 0.99, np.isnan(sums))
    for i, row in zip(used.cut_rows, used.unused, strict=True):
        kept = returns[i, ~row]
        sharpe[i] = metrics.sharpe_ratio(kept)
        var[i] = metrics.value_at_risk(kept, 0.99)
    return sharpe, var, sums


def _pooled_sharpe_sums(
    out: dict[str, np.ndarray],
    sums: np.ndarray,
    used_returns: np.ndarray,
    used: _UsedSteps,
) -> None:
    """Each path's sum S, sum of squares Q and count k of its used daily returns, and the
    products of those sums: the pooled Sharpe's path-clustered variance from sums."""
    out["_daily_return_sum"] = sums if not used.cut_rows.size else used_returns.sum(axis=1)
    out["_daily_return_sumsq"] = (used_returns * used_returns).sum(axis=1)
    out["_daily_return_count"] = (used.last + 1).astype(np.int64)
    s, q, k = out["_daily_return_sum"], out["_daily_return_sumsq"], (used.last + 1.0)
    for name, value in (
        ("ss", s * s), ("sq", s * q), ("qq", q * q), ("sk", s * k), ("qk", q * k),
        ("kk", k * k),
    ):  # fmt: skip
        out[f"_sharpe_{name}"] = value


def derive_block(
    summary: dict[str, np.ndarray],
    *,
    n_steps: int,
    monthly_addition: float,
    path_start: int,
    n_sample: int,
) -> dict[str, np.ndarray]:
    """Per-path risk figures from one block of engine output; drops the equity array.

    Args:
      summary: the engine's per-path summary of paths `path_start ...` of one cell: scalars
        `(n,)`, `assigned_by_rung` `(n, rungs)`, `equity` `(n, n_steps + 1)` USD.
      n_steps: trading days simulated (252 a year).
      monthly_addition: USD added every 21 steps (the strategy's `monthly_addition`).
      path_start: index of the block's first path in the cell.
      n_sample: equity curves kept per cell (paths `0 .. n_sample - 1`).

    Returns:
      every entry of `summary` but `equity`, plus float64 `(n,)` `annual_return`,
      `total_return`, `max_drawdown`, `path_sharpe`, `daily_var_99`; internal `_daily_return_sum`,
      `_daily_return_sumsq`, `_daily_return_count` (pooled Sharpe) and `_equity_sample`
      `(k, n_steps + 1)` for the block's paths with index < `n_sample` (k may be 0).

    Each figure is `simkit.metrics`' function of the path's used returns (the tests check it
    bit for bit); the work is arranged in few passes over the `(paths, days)` array: paths
    cut short (equity <= 0, ruin) are the rare case and are done row by row.
    """
    out = {k: np.asarray(v) for k, v in summary.items() if k != "equity"}
    equity_raw = np.asarray(summary["equity"])
    equity = equity_raw.astype(np.float64)
    n = equity.shape[0]
    initial = np.asarray(summary["initial_equity"], dtype=np.float64)
    ruin_step = np.asarray(summary.get("ruin_step", np.full(n, -1)), dtype=np.int64)
    final = np.asarray(summary["final_equity"], dtype=np.float64)
    contributions = np.asarray(summary.get("contributions", np.zeros(n)), dtype=np.float64)

    with np.errstate(divide="ignore", invalid="ignore"):
        returns = _daily_returns(equity, initial, monthly_addition)
        used = _used_steps(equity, ruin_step)
        used_returns = _zero_unused(returns, used)
        annual, time_weighted = _wealth_figures(out, used_returns, used, n_steps)
        out["annual_return"] = annual
        out["total_return"] = (final - contributions - initial) / initial
        # The sleeve's return for its Kelly: with monthly additions, P&L over the first stake
        # credits the added money's gains to it; the time-weighted index does not.
        out["_sleeve_return"] = out["total_return"] if monthly_addition == 0 else time_weighted
        out["path_sharpe"], out["daily_var_99"], sums = _sharpe_and_var(returns, used)
        _pooled_sharpe_sums(out, sums, used_returns, used)

    k = int(np.clip(n_sample - path_start, 0, n))
    # A copy, not a view: a view (even of no rows) would keep the block's whole equity array
    # alive for the rest of the run (1 KB a path).
    out["_equity_sample"] = np.array(equity_raw[:k], copy=True)
    return out


# --------------------------------------------------------------------------- per cell

# Per-path columns a cell keeps (in `streaming.Columns`) for its order statistics and second
# passes; every other per-path field is summed segment by segment and dropped.
_KEPT = (
    "_sleeve_return",
    "final_equity",
    "annual_return",
    "total_return",
    "max_drawdown",
    "path_sharpe",
    "daily_var_99",
    "n_wins",
    "n_trades",
    "sum_win_ret",
    "sum_loss_ret",
    *UNDERLYING,
)


# Per-path rows kept whole: each path's non-overlapping 21-day sleeve returns (the short-period
# sleeve Kelly), `(paths, periods)`.
_KEPT_ROWS = ("_period_return",)


def _counts(seg: dict[str, np.ndarray]) -> dict[str, int]:
    """Paths of a segment with each property (the shares' numerators)."""
    pnl = _f64(seg, "final_equity") - _f64(seg, "contributions") - _f64(seg, "initial_equity")
    out = {
        "pnl_positive": int((pnl > 0).sum()),
        "pnl_negative": int((pnl < 0).sum()),
        "ruined": int((np.asarray(seg["ruined"]) > 0).sum()),
        "margin_called": int((np.asarray(seg["n_margin_calls"]) > 0).sum()),
    }
    for x in LIMITS:
        out[f"breached_{x}"] = int((np.asarray(seg[f"breach_{x}"]) > 0).sum())
    trades, wins = np.asarray(seg["n_trades"]), np.asarray(seg["n_wins"])
    out["traded"] = int((trades > 0).sum())  # the Kelly inputs' path counts
    out["won"] = int((wins > 0).sum())
    out["lost"] = int((trades - wins > 0).sum())
    for name in ("final_equity", "annual_return", "total_return", "max_drawdown", *UNDERLYING):
        out[f"nan_{name}"] = int(np.isnan(_f64(seg, name)).sum())
    return out


class CellAccumulator:
    """One cell's reduction, fed its blocks (`derive_block` outputs) in any order.

    Blocks are joined in path order and cut into `streaming.SEGMENT`-path segments wherever
    the blocks begin and end. Each segment is summed field by field (float64, or int64 for
    integer fields) and its `_KEPT` columns go to a `streaming.Columns` (in memory, in files
    past `streaming.SPILL_BYTES`); the rest of it is dropped. Held at any time: the blocks
    waiting for an earlier one, less than one segment, the kept columns (80 bytes a path, or
    none in memory once spilled) and the equity sample. `result` then reduces the sums and
    columns; every sum is taken per segment and then over the segments in order, so the
    result is the same for any block size, completion order or resume.

    Args:
      n_paths: paths of the cell.
      keep_per_path: also keep every per-path field (for `per_path` datasets).
      spill_dir: where the kept columns go past `spill_bytes` (None: the system's temporary
        directory).
      spill_bytes: see `streaming.Columns`. Default value: `streaming.SPILL_BYTES`.
    """

    def __init__(
        self,
        n_paths: int,
        *,
        keep_per_path: bool = False,
        spill_dir: Any = None,
        spill_bytes: int | None = None,
    ):
        self.n_paths = int(n_paths)
        self.keep_per_path = keep_per_path
        if spill_bytes is None:
            spill_bytes = streaming.SPILL_BYTES
        self.columns = streaming.Columns(
            (*_KEPT, *_KEPT_ROWS), spill_bytes=spill_bytes, spill_dir=spill_dir
        )
        self._waiting: dict[int, dict[str, np.ndarray]] = {}
        self._samples: dict[int, np.ndarray] = {}
        self._next = 0  # first path not yet joined
        self._pieces: list[dict[str, np.ndarray]] = []  # joined blocks, less than a segment
        self._held = 0  # paths in `_pieces`
        self._sums: list[dict[str, np.ndarray]] = []
        self._counts: list[dict[str, int]] = []
        self._per_path: list[dict[str, np.ndarray]] = []

    @property
    def next_path(self) -> int:
        """The first path whose block has not been joined yet."""
        return self._next

    @property
    def complete(self) -> bool:
        return self._next == self.n_paths and not self._pieces

    def add(self, path_start: int, block: dict[str, np.ndarray]) -> None:
        """Take the block of paths `path_start ...` (its arrays are not used afterwards)."""
        block = {k: v for k, v in block.items() if k != "_device"}
        self._samples[path_start] = block.pop("_equity_sample", None)
        self._waiting[path_start] = block
        while self._next in self._waiting:
            nxt = self._waiting.pop(self._next)
            n = len(nxt["final_equity"])
            self._pieces.append(nxt)
            self._held += n
            self._next += n
            self._cut()

    def _cut(self) -> None:
        """Reduce every full segment of the joined blocks (and the last, short one)."""
        while self._held >= streaming.SEGMENT or (self._held and self._next == self.n_paths):
            take = min(self._held, streaming.SEGMENT)
            joined = {k: np.concatenate([p[k] for p in self._pieces]) for k in self._pieces[0]}
            self._reduce({k: v[:take] for k, v in joined.items()})
            rest = self._held - take
            self._pieces = [{k: v[take:].copy() for k, v in joined.items()}] if rest else []
            self._held = rest

    def _reduce(self, seg: dict[str, np.ndarray]) -> None:
        self._sums.append(
            {
                k: (
                    v.sum(axis=0, dtype=np.int64)
                    if v.dtype.kind in "iub"
                    else v.astype(np.float64).sum(axis=0)
                )
                for k, v in seg.items()
                if k not in _KEPT_ROWS
            }
        )
        self._counts.append(_counts(seg))
        self.columns.append({k: seg[k] for k in (*_KEPT, *_KEPT_ROWS)})
        if self.keep_per_path:
            self._per_path.append({k: v for k, v in seg.items() if not k.startswith("_")})

    def equity_sample(self) -> np.ndarray:
        """The kept daily equity curves, path order (`derive_block`'s `n_sample`)."""
        parts = [v for _, v in sorted(self._samples.items()) if v is not None]
        return np.concatenate(parts, axis=0) if parts else np.zeros((0, 0))

    def per_path(self) -> dict[str, np.ndarray]:
        """Every per-path field of the cell (only with `keep_per_path`)."""
        if not self.keep_per_path:
            raise ValueError("per-path fields were not kept (keep_per_path=False)")
        names = self._per_path[0].keys() if self._per_path else ()
        return {k: np.concatenate([p[k] for p in self._per_path]) for k in names}

    def result(self, *, strategy: Any, n_steps: int, rate: float) -> dict[str, Any]:
        """The cell's aggregates (see `aggregate_cell`); every block must have been added."""
        if self.n_paths == 0:
            raise ValueError("a cell needs at least one path")
        if not self.complete:
            raise ValueError(
                f"the cell has {self.n_paths} paths; blocks up to path {self._next} arrived"
            )
        sums = {k: np.sum([s[k] for s in self._sums], axis=0) for k in self._sums[0]}
        counts = {k: sum(c[k] for c in self._counts) for k in self._counts[0]}
        return _aggregate(
            sums,
            counts,
            self.columns,
            self.n_paths,
            strategy=strategy,
            n_steps=n_steps,
            rate=rate,
        )

    def close(self) -> None:
        self.columns.close()


def _f64(per_path: dict[str, np.ndarray], name: str) -> np.ndarray:
    return np.asarray(per_path[name], dtype=np.float64)


def _share(out: dict, name: str, hits: int, n: int) -> None:
    """A share of paths with its Wilson interval (paths are independent)."""
    est = metrics.proportion_ci(hits, n, CONF)
    out[name], out[f"{name}_lo"], out[f"{name}_hi"] = est.estimate, est.lo, est.hi


def _kelly(out: dict, sums: dict, comoment: np.ndarray, strategy: Any) -> None:
    k = metrics.kelly_from_sums(sums, comoment, conf=CONF)
    for ours, theirs in (
        ("kelly_p", "p"),
        ("kelly_avg_win", "avg_win"),
        ("kelly_avg_loss", "avg_loss"),
        ("kelly_fraction", "seed_fraction"),
        ("kelly_growth_optimal", "growth_optimal"),
    ):
        for suffix in ("", "_lo", "_hi"):
            out[ours + suffix] = float(k[theirs + suffix])
    out["win_rate_trade"] = out["kelly_p"]
    out["win_rate_trade_lo"], out["win_rate_trade_hi"] = out["kelly_p_lo"], out["kelly_p_hi"]
    p, win, loss = out["kelly_p"], out["kelly_avg_win"], out["kelly_avg_loss"]
    recommended = math.nan
    if all(math.isfinite(v) for v in (p, win, loss)) and win > 0 and loss > 0:
        recommended = float(
            metrics.kelly(
                p,
                win,
                loss,
                multiplier=strategy.kelly_multiplier,
                cap=strategy.max_total_strategy_pct,
            )["recommended"]
        )
    out["kelly_recommended"] = recommended


def _pooled_sharpe_se(sums: dict[str, np.ndarray], n: int) -> float:
    """Standard error of the pooled Sharpe ratio, clustered by path: the delta method on
    `sqrt(252) m1 / sqrt(m2 - m1^2)` with (m1, m2) the pooled means of r and r^2 (ratio
    estimators over the paths' sums S, Q and day counts k; CR1 over the n paths, from the
    summed products of S, Q and k, so it streams)."""
    if n < 2:
        return math.nan
    k_total = float(sums["_daily_return_count"])
    m1 = float(sums["_daily_return_sum"]) / k_total
    m2 = float(sums["_daily_return_sumsq"]) / k_total
    ss, sq, qq = (float(sums[f"_sharpe_{x}"]) for x in ("ss", "sq", "qq"))
    sk, qk, kk = (float(sums[f"_sharpe_{x}"]) for x in ("sk", "qk", "kk"))
    scale = n / (n - 1) / k_total**2
    c11 = (ss - 2 * m1 * sk + m1 * m1 * kk) * scale
    c12 = (sq - m2 * sk - m1 * qk + m1 * m2 * kk) * scale
    c22 = (qq - 2 * m2 * qk + m2 * m2 * kk) * scale
    d = m2 - m1 * m1
    if not d > 0:
        return math.nan
    g1 = math.sqrt(TRADING_DAYS) * m2 * d**-1.5
    g2 = -0.5 * math.sqrt(TRADING_DAYS) * m1 * d**-1.5
    var = g1 * g1 * c11 + 2 * g1 * g2 * c12 + g2 * g2 * c22
    return math.sqrt(var) if var >= 0 else math.nan


def _kelly_sleeve(
    out: dict, columns: streaming.Columns, *, strategy: Any, n_steps: int, rate: float
) -> None:
    """The sleeve's growth-optimal share of the portfolio (`simkit.kelly_sleeve`): from each
    path's horizon return, and from its non-overlapping 21-day returns (clustered by path)."""
    share = out["initial_equity"] / float(strategy.portfolio_value)
    years = n_steps / TRADING_DAYS
    horizon = kelly_sleeve.kelly_sleeve_source(
        columns.source("_sleeve_return"), math.expm1(rate * years), conf=CONF, at=share
    )
    monthly = kelly_sleeve.kelly_sleeve_source(
        columns.source("_period_return"),
        math.expm1(rate * kelly_sleeve.PERIOD_DAYS / TRADING_DAYS),
        conf=CONF,
    )
    for suffix in ("", "_lo", "_hi"):
        out[f"kelly_sleeve_fraction{suffix}"] = horizon[f"fraction{suffix}"]
        out[f"kelly_sleeve_fraction_21d{suffix}"] = monthly[f"fraction{suffix}"]
    out["kelly_sleeve_fraction_max"] = horizon["fraction_max"]
    out["kelly_sleeve_unbounded"] = horizon["unbounded"]
    out["kelly_sleeve_growth"] = horizon["growth"]
    out["kelly_sleeve_growth_cash"] = horizon["growth_cash"]
    out["kelly_sleeve_growth_seed"] = horizon["growth_at"]
    out["kelly_sleeve_share_seed"] = share


def histogram(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(counts `(N_BINS,)`, edges `(N_BINS + 1,)`) of the finite values, equal bins between the
    `HIST_RANGE` quantiles; values outside are counted in the end bins (one cell's histogram:
    the edges `histogram_edges` gives a run of one cell)."""
    x = np.asarray(values, dtype=np.float64)
    edges = histogram_edges([histogram_range(lambda: [x])])
    return histogram_counts(lambda: [x], edges), edges


def histogram_range(source) -> tuple[float, float]:
    """The `HIST_RANGE` quantiles of one cell's finite values (NaN, NaN when there are none)."""
    lo, hi = streaming.quantiles(source, HIST_RANGE, skip="nonfinite")
    return float(lo), float(hi)


def histogram_edges(ranges) -> np.ndarray:
    """The run's common histogram edges: `N_BINS` equal bins from the lowest `lo` to the
    highest `hi` of the cells' `histogram_range`s (cells without a finite value left out; all
    NaN when no cell has one).

    A range narrower than `HIST_MIN_WIDTH` relative to the values (every value equal, or a
    few ulps apart, as on a deterministic market) cannot hold `N_BINS` representable bins:
    it is widened to a narrow range around the values, which are all still inside it."""
    kept = [(float(lo), float(hi)) for lo, hi in ranges if not math.isnan(lo)]
    if not kept:
        return np.full(N_BINS + 1, math.nan)
    lo, hi = min(r[0] for r in kept), max(r[1] for r in kept)
    if not hi - lo > max(HIST_MIN_WIDTH * max(abs(lo), abs(hi)), N_BINS * _TINY):
        lo, hi = lo - 0.5e-6 * max(abs(lo), 1.0), hi + 0.5e-6 * max(abs(hi), 1.0)
    return np.histogram_bin_edges(np.zeros(0), bins=N_BINS, range=(lo, hi))


def histogram_counts(source, edges: np.ndarray) -> np.ndarray:
    """Finite values per bin of `edges` (`histogram_edges`), float64 `(N_BINS,)`; values
    beyond the end edges are counted in the end bins. Exact: `np.histogram` of each chunk,
    summed."""
    counts = np.zeros(N_BINS, dtype=np.int64)
    if math.isnan(edges[0]):
        return counts.astype(np.float64)
    lo, hi = float(edges[0]), float(edges[-1])
    for chunk in source():
        x = chunk[np.isfinite(chunk)]
        counts += np.histogram(np.clip(x, lo, hi), bins=N_BINS, range=(lo, hi))[0]
    return counts.astype(np.float64)


class RunHistograms:
    """Puts the histograms of every cell of a run on the same edges.

    A cell's histogram range (`histogram_range`) is known once the cell is complete; the
    common edges (`histogram_edges`) once every cell is. So each complete cell's histogram
    columns (`HISTOGRAMS`, 16 bytes a path) are copied out of its accumulator before it is
    closed and kept, in memory up to `budget_bytes` for the whole run and in files after that
    (`streaming.Columns` under `spill_dir`), and `finish` counts every cell on the common edges
    and replaces the cell's own histogram. Exact: every count is `np.histogram` of the cell's
    values on the final edges. A run of one cell keeps nothing (its own edges are the run's).
    """

    def __init__(self, n_cells: int, *, spill_dir: Any = None, budget_bytes: int | None = None):
        self.n_cells = int(n_cells)
        budget = HIST_KEEP_BYTES if budget_bytes is None else int(budget_bytes)
        self._spill_bytes = max(budget // max(self.n_cells, 1), 0)
        self._spill_dir = spill_dir
        self._kept: dict[int, streaming.Columns] = {}

    def keep(self, number: int, acc: CellAccumulator) -> None:
        """Copy the histogram columns of cell `number` (complete) out of its accumulator."""
        if self.n_cells <= 1:
            return
        columns = streaming.Columns(
            tuple(HISTOGRAMS), spill_bytes=self._spill_bytes, spill_dir=self._spill_dir
        )
        self._kept[number] = columns
        sources = [acc.columns.chunks(name) for name in HISTOGRAMS]
        for chunks in zip(*sources, strict=True):
            columns.append(dict(zip(HISTOGRAMS, chunks, strict=True)))

    def finish(self, results: dict[int, dict[str, Any]]) -> None:
        """Every cell's `<name>_hist` and `<name>_bin_edge` on the run's common edges."""
        if self.n_cells <= 1:
            return
        for name in HISTOGRAMS:
            edges = histogram_edges([r[f"_{name}_hist_range"] for r in results.values()])
            for number, result in results.items():
                counts = histogram_counts(self._kept[number].source(name), edges)
                result[f"{name}_hist"], result[f"{name}_bin_edge"] = counts, edges

    def close(self) -> None:
        for columns in self._kept.values():
            columns.close()
        self._kept.clear()


def _mean_se(source, total: float, n: int) -> metrics.Estimate:
    """`metrics.mean_se` in passes: the mean from the sum, then the squared deviations."""
    z = metrics.z_score(CONF)
    mean = total / n
    if n < 2:
        se = math.nan
    else:
        squares = np.sum([np.sum((c - mean) ** 2) for c in source()])
        se = math.sqrt(squares / (n - 1)) / math.sqrt(n)
    return metrics.Estimate(mean, se, mean - z * se, mean + z * se)


def _median_ci(source, n_nan: int, n: int) -> tuple[float, float, float]:
    """`metrics.quantile_ci(x, 0.5)`'s estimate and interval, in passes (NaN sorts last)."""
    estimate = streaming.quantiles(source, [0.5], n_nan=n_nan)[0]
    l_rank, u_rank = metrics.quantile_ci_ranks(n, 0.5, CONF)
    ranks = [max(l_rank, 1) - 1, min(u_rank, n) - 1]
    (lo, hi), _ = streaming.order_statistics(source, ranks)
    lo = lo if l_rank >= 1 else -math.inf
    hi = hi if u_rank <= n else math.inf
    return float(estimate), float(lo), float(hi)


def _tail_mean(source, n_tail: int) -> float:
    """Mean of the `n_tail` smallest values (NaN sorts last), as `np.sort(x)[:n_tail].mean()`
    computes it: the values up to the `n_tail`-th smallest are gathered (a tail's worth),
    sorted and averaged, so the sum is the same as the whole array's."""
    (cut,), count = streaming.order_statistics(source, [n_tail - 1])
    if n_tail > count:
        return math.nan
    tail = np.sort(np.concatenate([c[c <= cut] for c in source()]))
    return float(tail[:n_tail].mean())


def _kelly_sums(sums: dict[str, np.ndarray], counts: dict[str, int]) -> dict[str, np.ndarray]:
    """`metrics.kelly_sums` of the cell, from its path sums and counts."""
    names = {
        "wins": "n_wins",
        "trades": "n_trades",
        "win_sum": "sum_win_ret",
        "win_sq": "sum_win_ret_sq",
        "loss_sum": "sum_loss_ret",
        "loss_sq": "sum_loss_ret_sq",
    }
    out = {k: np.asarray(sums[v], dtype=np.float64) for k, v in names.items()}
    for k, v in (("paths", "traded"), ("win_paths", "won"), ("loss_paths", "lost")):
        out[k] = np.asarray(counts[v])
    return out


def _equity_and_shares(out: dict, sums: dict, counts: dict[str, int], col, n: int) -> None:
    """Paths, mean initial and final equity, the final equity's median, and the shares of paths
    that won, lost, were ruined or margin-called (with their Wilson intervals)."""
    out["paths"] = n
    out["initial_equity"] = float(sums["initial_equity"] / n)
    out["final_equity_mean"] = float(sums["final_equity"] / n)
    out["final_equity_median"] = streaming.median(
        col("final_equity"), n_nan=counts["nan_final_equity"]
    )

    _share(out, "win_rate_path", counts["pnl_positive"], n)
    _share(out, "prob_loss", counts["pnl_negative"], n)
    _share(out, "prob_ruin", counts["ruined"], n)
    _share(out, "prob_margin_call", counts["margin_called"], n)


def _annual_return_figures(out: dict, sums: dict, counts: dict[str, int], col, n: int) -> None:
    """The annual return's mean (with its standard error), median (with its interval) and
    quantiles."""
    nan_annual = counts["nan_annual_return"]
    est = _mean_se(col("annual_return"), float(sums["annual_return"]), n)
    out["annual_return_mean"], out["annual_return_mean_se"] = est.estimate, est.se
    out["annual_return_mean_lo"], out["annual_return_mean_hi"] = est.lo, est.hi
    median = _median_ci(col("annual_return"), nan_annual, n)
    out["annual_return_median"] = median[0]
    out["annual_return_median_lo"], out["annual_return_median_hi"] = median[1], median[2]
    out["annual_return_quantile"] = streaming.quantiles(
        col("annual_return"), QUANTILES, n_nan=nan_annual
    )


def _total_return_figures(out: dict, sums: dict, counts: dict[str, int], col, n: int) -> None:
    """The horizon return's mean, quantiles, VaR and CVaR at 95 and 99 %."""
    nan_total = counts["nan_total_return"]
    out["total_return_mean"] = float(sums["total_return"] / n)
    # metrics.value_at_risk (-np.percentile at 100 (1 - level)) and
    # conditional_value_at_risk, with the quantiles in one selection.
    levels = (0.95, 0.99)
    tails = [100 * (1 - level) / 100 for level in levels]
    values = streaming.quantiles(col("total_return"), (*QUANTILES, *tails), n_nan=nan_total)
    out["total_return_quantile"] = values[: len(QUANTILES)]
    for level, value in zip(levels, values[len(QUANTILES) :], strict=True):
        out[f"var_{round(100 * level)}"] = float(-value)
        out[f"cvar_{round(100 * level)}"] = -_tail_mean(
            col("total_return"), int((n - 1) * (1 - level)) + 1
        )


def _underlying_figures(out: dict, sums: dict, counts: dict[str, int], col, n: int) -> None:
    """Mean and quantiles of each underlying figure (`UNDERLYING`)."""
    for name in UNDERLYING:
        out[f"{name}_mean"] = float(sums[name] / n)
        out[f"{name}_quantile"] = streaming.quantiles(
            col(name), QUANTILES, n_nan=counts[f"nan_{name}"]
        )


def _sharpe_figures(out: dict, sums: dict, col, n: int) -> None:
    """The median path's Sharpe ratio, and the pooled Sharpe of every used path-day with its
    path-clustered standard error and interval (`aggregate_cell`)."""
    out["sharpe"] = streaming.median(col("path_sharpe"), skip="nan")
    count = float(sums["_daily_return_count"])
    total_sum = float(sums["_daily_return_sum"])
    total_sq = float(sums["_daily_return_sumsq"])
    pooled = math.nan
    if count > 1:
        mean = total_sum / count
        var = (total_sq - count * mean * mean) / (count - 1)
        if var > 0:
            pooled = mean / math.sqrt(var) * math.sqrt(TRADING_DAYS)
    out["sharpe_pooled"] = pooled
    se = _pooled_sharpe_se(sums, n) if math.isfinite(pooled) else math.nan
    z = metrics.z_score(CONF)
    out["sharpe_pooled_se"] = se
    out["sharpe_pooled_lo"], out["sharpe_pooled_hi"] = pooled - z * se, pooled + z * se


def _cell_histograms(out: dict, col) -> None:
    """Each `HISTOGRAMS` variable on the cell's own edges (a run puts them on common ones)."""
    for name in HISTOGRAMS:
        out[f"_{name}_hist_range"] = histogram_range(col(name))
        out[f"{name}_bin_edge"] = histogram_edges([out[f"_{name}_hist_range"]])
        out[f"{name}_hist"] = histogram_counts(col(name), out[f"{name}_bin_edge"])


def _drawdown_figures(out: dict, counts: dict[str, int], col) -> None:
    """The max drawdown's median and quantiles, the median path's 99 % daily VaR."""
    out["max_drawdown_median"] = streaming.median(col("max_drawdown"), skip="nan")
    out["max_drawdown_quantile"] = streaming.quantiles(
        col("max_drawdown"), QUANTILES, n_nan=counts["nan_max_drawdown"]
    )
    out["daily_var_99_median"] = streaming.median(col("daily_var_99"), skip="nan")


def _trade_figures(out: dict, sums: dict, counts: dict[str, int], n: int, n_steps: int) -> None:
    """Trades a path, losing profit-takes, close reasons, assignments by rung, limit breaches
    and the P&L attribution (shares of zero events are NaN)."""
    out["trades_per_path"] = float(sums["n_trades"] / n)
    profit_closes = float(sums["n_close_profit"])
    out["profit_take_loss_share"] = (
        float(sums["n_close_profit_loss"]) / profit_closes if profit_closes else math.nan
    )
    ends = np.array([sums[c] for c in _CLOSE_COUNTERS], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["close_reason_share"] = ends / ends.sum()
        assigned = np.asarray(sums["assigned_by_rung"], dtype=np.float64).reshape(-1)
        out["assignment_rate"] = assigned / float(sums["n_trades"])
        out["assignments_per_path"] = assigned / n
        path_days = n * (n_steps + 1)
        out["breach_share"] = np.array([float(sums[f"breach_{x}"]) for x in LIMITS]) / path_days
        out["breach_path_share"] = np.array([counts[f"breached_{x}"] / n for x in LIMITS])
        out["attribution_mean"] = np.array([float(sums[b]) / n for b in BUCKETS])


def _kelly_figures(
    out: dict,
    sums: dict,
    counts: dict[str, int],
    columns: streaming.Columns,
    *,
    strategy: Any,
    n_steps: int,
    rate: float,
) -> None:
    """The per-trade Kelly inputs and fractions (`_kelly`) and the sleeve's Kelly
    (`_kelly_sleeve`)."""
    kelly = _kelly_sums(sums, counts)
    comoment = np.sum(
        [
            metrics.kelly_comoment(*chunks, kelly)
            for chunks in zip(
                *(columns.chunks(k) for k in ("n_wins", "n_trades", "sum_win_ret", "sum_loss_ret")),
                strict=True,
            )
        ],
        axis=0,
    )
    _kelly(out, kelly, comoment, strategy)
    _kelly_sleeve(out, columns, strategy=strategy, n_steps=n_steps, rate=rate)


def _order_cut_figures(out: dict, sums: dict, n: int, strategy: Any) -> None:
    """Contracts cut a path, and the share of attempted orders cut (by the limits' capacity)."""
    out["contracts_cut_mean"] = float(sums["contracts_cut"] / n)
    attempts = float(
        sums["n_entry_days"]
        - sums["n_blocked_signal"]
        - sums["n_blocked_limits"]
        - sums["n_blocked_exit"]
    ) * len(strategy.strikes)
    out["share_orders_cut"] = float(sums["n_orders_cut"] / attempts) if attempts > 0 else math.nan


def _aggregate(
    sums: dict[str, np.ndarray],
    counts: dict[str, int],
    columns: streaming.Columns,
    n: int,
    *,
    strategy: Any,
    n_steps: int,
    rate: float,
) -> dict[str, Any]:
    """The cell's aggregates (`aggregate_cell`) from its segment sums, counts and kept columns."""
    out: dict[str, Any] = {}
    col = columns.source
    _equity_and_shares(out, sums, counts, col, n)
    _annual_return_figures(out, sums, counts, col, n)
    _total_return_figures(out, sums, counts, col, n)
    _underlying_figures(out, sums, counts, col, n)
    _sharpe_figures(out, sums, col, n)
    _cell_histograms(out, col)
    _drawdown_figures(out, counts, col)
    _trade_figures(out, sums, counts, n, n_steps)
    with np.errstate(invalid="ignore", divide="ignore"):
        _kelly_figures(out, sums, counts, columns, strategy=strategy, n_steps=n_steps, rate=rate)
        _order_cut_figures(out, sums, n, strategy)
    if n == 1:
        _one_path(out)
    return {k: (np.asarray(v, dtype=np.float64) if k != "paths" else v) for k, v in out.items()}


def _one_path(out: dict[str, Any]) -> None:
    """One path (a history replayed) has no distribution across paths: every interval and
    standard error is undefined (NaN), and so are the horizon return's VaR and CVaR (the one
    return is no tail) and the Kelly of the sleeve from the horizon return (one outcome: f*
    runs to its bound); the Kelly from the path's 21-day returns stays."""
    for name in list(out):
        if name.endswith(("_lo", "_hi", "_se")) and not name.startswith(
            "kelly_sleeve_fraction_21d"
        ):
            out[name] = math.nan
    for name in (
        "var_95",
        "var_99",
        "cvar_95",
        "cvar_99",
        "kelly_sleeve_fraction",
        "kelly_sleeve_fraction_max",
        "kelly_sleeve_growth",
    ):
        out[name] = math.nan


def aggregate_cell(
    per_path: dict[str, np.ndarray], *, strategy: Any, n_steps: int, rate: float
) -> dict[str, Any]:
    """Aggregate metrics of one grid cell, float64, from its per-path arrays in path order.

    Args:
      per_path: the `derive_block` outputs of the cell's blocks concatenated along paths.
      strategy: the cell's `StrategyConfig` (Kelly sizing rule, ladder size).
      n_steps: trading days simulated.
      rate: the market's risk-free rate (annual, continuous): cash for the sleeve Kelly.

    Returns:
      name -> float, or a float64 array along the variable's extra dimension (`VARIABLES`).

    The same reduction as a run's (`CellAccumulator`), so the same numbers. `sharpe` is the
    median of the per-path Sharpe ratios (what one realisation of the year shows; paths
    whose Sharpe is undefined are left out). `sharpe_pooled` pools every used path-day:
    mean over standard deviation (ddof = 1) of all daily returns times sqrt(252), the
    ensemble's Sharpe, which also counts the dispersion between paths.
    """
    n = int(np.asarray(per_path["final_equity"]).shape[0])
    acc = CellAccumulator(n)
    try:
        acc.add(0, dict(per_path))
        return acc.result(strategy=strategy, n_steps=n_steps, rate=rate)
    finally:
        acc.close()
