"""Kelly of the whole sleeve: what share of the portfolio to put in the strategy, the rest in cash.

A per-trade Kelly (`simkit.metrics.kelly` on `p`, `a`, `b`) leaves out everything that is no
trade (hedge calls, shares after assignment, covered calls, costs, financing) and treats the
overlapping trades of one path as independent bets. What a quant sizes with is the growth-optimal
share `f` of the portfolio in the sleeve, the rest in cash at the rate:

    f* = argmax_{0 <= f <= f_max} G(f),   G(f) = mean_obs ln(1 + (1 - f) c + f R),

over the sleeve's whole return `R` per observation (one path's horizon return, or one of its
non-overlapping 21-day returns) and the cash return `c` over the same time (docs/STRATEGY.md
"Capital", Kelly of the sleeve). With `x = R - c` the excess over cash,
`1 + (1 - f) c + f R = 1 + c + f x`.
`G` is concave in `f`; it is finite while every wealth `1 + c + f x` is positive, i.e. below
`f_bound = (1 + c) / max(-x)` (the first `f` at which the worst observation wipes the portfolio
out). `f_max = min(cap, f_bound)` (cap 10).

- No observation does better than cash: `f* = 0` ("do not allocate").
- No observation does worse than cash: `G` rises without bound; `f* = cap` and `unbounded`.
- Otherwise `G'(f) = mean x / (1 + c + f x)` falls from `+inf` (at `-(1 + c) / max(x)`, a short
  sleeve) to `-inf` (at `f_bound`): its one root `f_hat` is found by Brent's method (each
  evaluation one pass over the data) and `f* = clip(f_hat, 0, f_max)`. So `f* = 0` exactly when
  `G'(0) = mean(x) / (1 + c) <= 0`: when the sleeve's mean return does not beat cash.

Interval *(choice: the delta method, not a bootstrap)*: `f_hat` is an M-estimator (the root of a
mean score `psi = x / (1 + c + f x)`), so `se(f_hat) = se(mean psi) / |mean psi'|` at `f_hat`
(the sandwich), with `psi' = -x^2 / (1 + c + f x)^2`. Observations of one path share its market,
so `se(mean psi)` is clustered by path (CR1 over the paths, each path's scores summed); with one
observation a path (horizon returns) that is the i.i.d. standard error. The interval
`f_hat +- z se` is clipped to `[0, f_max]`: 0 is inside it whenever the sleeve's edge over cash
is not significant. It needs one pass and no resampling, so it streams over millions of paths.

Everything here is NumPy float64 and works on a *source*: a callable that gives a fresh pass
over the observations as chunks, `(m,)` (one observation a path) or `(m, k)` (k periods a
path; NaN entries are missing and skipped), so a run's reduction can feed it column segments
kept on disk (`simkit.streaming.Columns`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

__all__ = ["CAP", "PERIOD_DAYS", "kelly_sleeve", "kelly_sleeve_source", "period_returns"]

CAP = 10.0  # the largest share of the portfolio the sleeve Kelly reports (10x: leveraged)
PERIOD_DAYS = 21  # non-overlapping periods of the short-horizon sleeve Kelly (a trading month)

Source = Callable[[], Iterable[np.ndarray]]


def _rows(chunk: np.ndarray) -> np.ndarray:
    a = np.asarray(chunk, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def _range(source: Source, c: float) -> tuple[int, int, float, float]:
    """(observations, paths with one, min x, max x) over the finite observations."""
    n_obs = n_paths = 0
    lo, hi = math.inf, -math.inf
    for chunk in source():
        x = _rows(chunk)
        ok = np.isfinite(x)
        n_obs += int(ok.sum())
        n_paths += int(ok.any(axis=1).sum())
        if ok.any():
            lo = min(lo, float(x[ok].min()) - c)
            hi = max(hi, float(x[ok].max()) - c)
    return n_obs, n_paths, lo, hi


def _score(source: Source, c: float, f: float) -> tuple[float, float, float]:
    """Sums over the data at `f`: (sum psi, sum psi', CR1 clustered sum of squares of psi's
    path totals about the mean score)."""
    total = slope = 0.0
    s_sq = s_k = k_sq = 0.0
    n_obs = 0
    n_paths = 0
    for chunk in source():
        r = _rows(chunk)
        ok = np.isfinite(r)
        x = np.where(ok, r - c, 0.0)
        wealth = 1.0 + c + f * x
        psi = x / wealth
        path_psi = psi.sum(axis=1)
        k = ok.sum(axis=1).astype(np.float64)
        total += float(path_psi.sum())
        slope -= float((psi * psi).sum())
        s_sq += float((path_psi * path_psi).sum())
        s_k += float((path_psi * k).sum())
        k_sq += float((k * k).sum())
        n_obs += int(k.sum())
        n_paths += int((k > 0).sum())
    mean = total / n_obs
    # CR1: u_g = (S_g - mean k_g) / K, Var(mean) = G/(G-1) sum u_g^2
    ss = max(s_sq - 2.0 * mean * s_k + mean * mean * k_sq, 0.0)
    var = ss / n_obs**2 * (n_paths / (n_paths - 1)) if n_paths > 1 else math.nan
    return mean, slope / n_obs, var


def _growth(source: Source, c: float, f: float) -> float:
    """`G(f)`, the mean log wealth ratio; -inf if some observation's wealth is <= 0."""
    total, n = 0.0, 0
    for chunk in source():
        r = _rows(chunk)
        r = r[np.isfinite(r)]
        wealth = 1.0 + c + f * (r - c)
        if np.any(wealth <= 0):
            return -math.inf
        total += float(np.log(wealth).sum())
        n += r.size
    return total / n if n else math.nan


def kelly_sleeve_source(
    source: Source,
    cash_return: float,
    *,
    cap: float = CAP,
    conf: float = 0.95,
    at: float | None = None,
) -> dict[str, Any]:
    """The sleeve's growth-optimal share of the portfolio from a source of sleeve returns.

    Args:
      source: a callable giving a fresh pass over the sleeve returns, chunks `(m,)` or
        `(m, k)` (k periods of one path in a row; NaN = missing).
      cash_return: the cash return `c` over the same period as one observation.
      cap: the largest fraction reported. Default value: 10.
      conf: confidence of the interval. Default value: 0.95.
      at: also report `growth_at`, `G` at this fraction (e.g. the scenario's sleeve share).

    Returns:
      mapping of floats: `fraction` (f*), `fraction_lo`, `fraction_hi`, `fraction_se` (of the
      unconstrained root; NaN where there is none), `fraction_unconstrained` (`f_hat`, may be
      negative: a short sleeve), `fraction_max` (f_max), `unbounded` (1.0 when no observation
      does worse than cash), `growth` (`G(f*)`), `growth_cash` (`ln(1 + c)`), `growth_at`,
      `observations`, `paths`. All NaN when there is no finite observation.
    """
    from scipy import optimize, stats  # here: `import simkit.run` stays without SciPy

    c = float(cash_return)
    if not c > -1.0:
        raise ValueError(f"cash_return must exceed -1; got {cash_return!r}")
    if not cap > 0:
        raise ValueError(f"cap must be positive; got {cap!r}")
    z = float(stats.norm.ppf(0.5 + conf / 2))
    n_obs, n_paths, x_min, x_max = _range(source, c)
    out: dict[str, Any] = {
        "observations": float(n_obs),
        "paths": float(n_paths),
        "growth_cash": math.log1p(c),
    }
    keys = ("fraction", "fraction_lo", "fraction_hi", "fraction_se", "fraction_unconstrained")
    if n_obs == 0:
        out.update({k: math.nan for k in (*keys, "fraction_max", "unbounded", "growth")})
        out["growth_at"] = math.nan
        return out
    f_bound = (1.0 + c) / -x_min if x_min < 0 else math.inf
    f_max = min(cap, f_bound)
    out["fraction_max"] = f_max
    out["unbounded"] = 1.0 if x_min >= 0 and x_max > 0 else 0.0
    f_hat = se = math.nan
    if x_max <= 0:  # nothing beats cash: do not allocate
        fraction = lo = hi = 0.0
    elif x_min >= 0:  # nothing does worse than cash: growth rises without bound
        fraction = lo = hi = f_max
    else:
        f_short = (1.0 + c) / x_max  # G' -> +inf as f -> -f_short (a short sleeve)
        a = -f_short * (1.0 - 1e-12)
        b = f_bound * (1.0 - 1e-12)

        def score(f: float) -> float:
            return _score(source, c, f)[0]

        f_hat = float(optimize.brentq(score, a, b, xtol=1e-12, rtol=1e-10, maxiter=200))
        _, slope, var = _score(source, c, f_hat)
        se = math.sqrt(var) / abs(slope) if slope < 0 and math.isfinite(var) else math.nan
        fraction = min(max(f_hat, 0.0), f_max)
        if math.isfinite(se):
            lo = min(max(f_hat - z * se, 0.0), f_max)
            hi = min(max(f_hat + z * se, 0.0), f_max)
        else:  # one path: no clustered error, so no interval (not a zero-width one)
            lo, hi = math.nan, math.nan
    out.update(
        fraction=fraction,
        fraction_lo=lo,
        fraction_hi=hi,
        fraction_se=se,
        fraction_unconstrained=f_hat,
        growth=_growth(source, c, fraction),
        growth_at=_growth(source, c, float(at)) if at is not None else math.nan,
    )
    return out


def kelly_sleeve(
    returns: Any,
    cash_return: float,
    *,
    cap: float = CAP,
    conf: float = 0.95,
    at: float | None = None,
) -> dict[str, Any]:
    """`kelly_sleeve_source` of sleeve returns in memory.

    Args:
      returns: `(paths,)` horizon returns of the sleeve (`total_return`), or `(paths, periods)`
        period returns of each path (NaN = missing); fractions, -0.2 = -20 %.
      cash_return: cash return over one observation's period, e.g. `exp(r T) - 1`.
      cap, conf, at: see `kelly_sleeve_source`.

    Example: a bet that gains 50 % or loses 40 % with equal odds, cash at 0, gives
    `p / b - (1 - p) / a = 0.5 / 0.4 - 0.5 / 0.5 = 0.25`.
    """
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"returns must be (paths,) or (paths, periods); got shape {x.shape}")
    return kelly_sleeve_source(lambda: [x], cash_return, cap=cap, conf=conf, at=at)


def period_returns(wealth: np.ndarray, last: np.ndarray, days: int = PERIOD_DAYS) -> np.ndarray:
    """Non-overlapping `days`-step returns of a time-weighted equity index, per path.

    Args:
      wealth: `(paths, steps + 1)` the index at the end of each step (1 before step 0).
      last: `(paths,)` the last step a path traded (ruin or equity <= 0 cut it short).
      days: steps a period. Default value: 21.

    Returns:
      `(paths, (steps + 1) // days)`: period `j` covers steps `j*days ... (j+1)*days - 1`
      (a remainder shorter than a period is left out); NaN for periods that begin after the
      path's last step (it no longer trades); a period holding the last step ends there.
    """
    n, n_days = wealth.shape
    k = n_days // days
    if k == 0:
        return np.zeros((n, 0))
    ends = np.arange(1, k + 1) * days - 1
    starts = ends - days  # index of the step before the period (-1: before step 0)
    start_value = np.where(starts[None, :] >= 0, wealth[:, np.maximum(starts, 0)], 1.0)
    end_idx = np.minimum(ends[None, :], last[:, None])
    end_value = np.take_along_axis(wealth, end_idx, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = end_value / start_value - 1.0
    return np.where(starts[None, :] + 1 <= last[:, None], out, np.nan)
