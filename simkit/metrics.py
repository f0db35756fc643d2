"""Reductions over simulated paths: drawdown, Sharpe, VaR/CVaR, Kelly and their uncertainty.

Two families live here.

*Path metrics* (`max_drawdown`, `sharpe_ratio`, `value_at_risk`,
`conditional_value_at_risk`, `kelly`) reduce along the **last axis**, accept NumPy or JAX
arrays and return the same kind: a `jax.Array` in gives a `jax.Array` out (traceable under
`jit`/`vmap`), anything else gives NumPy. Floating dtypes are kept (float32 in, float32
out); integer input is promoted to the default float of its library.

*Estimation helpers* (`proportion_ci`, `mean_se`, `quantile_ci`, `kelly_inputs`) turn the
per-path summaries into estimates with standard errors and confidence intervals. They run
in NumPy float64 whatever they are given: aggregates are reduced in float64 (docs/MODELLING.md,
"Reproducibility and precision").

Conventions (matched exactly, tested against independent re-implementations):

- Sharpe ratio: empyrical's `sharpe_ratio` with `risk_free=0`:
  `mean(r) / std(r, ddof=1) * sqrt(periods)`; NaN for fewer than two returns or a constant
  series. (empyrical skips NaN returns; here a NaN return propagates.)
- VaR: empyrical's `value_at_risk(returns, cutoff=1 - level)`, i.e.
  `np.percentile(returns, 100 * (1 - level))` with linear interpolation, sign flipped so a
  loss is a positive fraction.
- CVaR (expected shortfall): empyrical's `conditional_value_at_risk(returns,
  cutoff=1 - level)`: the mean of the `int((n - 1) * (1 - level)) + 1` smallest returns,
  sign flipped. It is never below the VaR of the same level.
"""

from __future__ import annotations

import math
import sys
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "Estimate",
    "conditional_value_at_risk",
    "kelly",
    "kelly_inputs",
    "max_drawdown",
    "mean_se",
    "proportion_ci",
    "quantile_ci",
    "sharpe_ratio",
    "value_at_risk",
]

KELLY_UNITS = {
    "seed_fraction": (
        "fraction of bankroll: the seed's formula p - (1-p)*b/a, the classic Kelly stake for "
        "a bet that pays a/b per unit staked and loses the whole stake; it equals "
        "growth_optimal * avg_loss, the share of bankroll lost on an average losing trade "
        "at the growth-optimal size"
    ),
    "growth_optimal": (
        "capital at risk (collateral) as a multiple of bankroll that maximises E[ln wealth] "
        "when a trade returns +avg_win or -avg_loss on its capital at risk: p/b - (1-p)/a"
    ),
    "conservative": "fraction of portfolio: multiplier * seed_fraction (seed: 25 % Kelly)",
    "recommended": (
        "fraction of portfolio for the strategy sleeve: conservative capped at cap "
        "(seed: max_total_strategy_pct 20 %) and floored at 0 (no sleeve without an edge)"
    ),
}


# --------------------------------------------------------------------------- array kind


def _namespace(*arrays: Any):
    """`jax.numpy` if any argument is a JAX array (or tracer), else `numpy`.

    JAX is not imported here: an argument can only be a JAX array if JAX is already loaded, so
    reductions of NumPy arrays (every run's aggregates, `simkit.store`) never load it."""
    jax = sys.modules.get("jax")
    if jax is not None and any(isinstance(a, jax.Array) for a in arrays):
        return sys.modules["jax.numpy"]
    return np


def _as_float(x: Any, xp) -> Any:
    """`x` as an array of its own floating dtype, or of the library's default float."""
    x = xp.asarray(x)
    if not xp.issubdtype(x.dtype, xp.floating):
        x = x.astype(float if xp is np else xp.result_type(float))
    return x


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.99); got {level!r}")


def _check_nonempty(x: Any, name: str) -> None:
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(
            f"{name} needs at least one value along its last axis; got shape {x.shape}"
        )


# --------------------------------------------------------------------------- path metrics


def max_drawdown(equity: Any) -> Any:
    """Worst peak-to-trough fall of an equity curve, as a fraction (≤ 0; −0.266 = −26.6 %).

    Args:
      equity: `(..., days)` equity values (dollars or any positive scale), in time order.

    Returns:
      `(...)` the minimum over t of `equity_t / max_{s≤t} equity_s − 1`.

    Equity that falls to or below zero is taken as given: a curve that reaches 0 has a
    drawdown of exactly −1, one that goes negative (a ruined sleeve whose liquidation costs
    more than it held) a drawdown below −1 (−1.5 = lost the peak and half as much again).
    Nothing is clipped. Steps before the running maximum first turns positive have no
    defined drawdown and are skipped; a curve that is never positive gives NaN. A NaN in
    the curve propagates. Invariant to multiplying the curve by a positive constant.
    """
    xp = _namespace(equity)
    equity = _as_float(equity, xp)
    _check_nonempty(equity, "equity")
    if xp is np:
        running_max = np.maximum.accumulate(equity, axis=-1)
    else:
        running_max = sys.modules["jax"].lax.cummax(equity, axis=equity.ndim - 1)
    undefined = running_max <= 0  # false for NaN, so NaN flows into the ratio below
    ratio = equity / xp.where(undefined, 1, running_max) - 1
    drawdown = xp.where(undefined, xp.inf, ratio)
    worst = drawdown.min(axis=-1)
    return xp.where(worst == xp.inf, xp.nan, worst)


def sharpe_ratio(returns: Any, periods: float = 252) -> Any:
    """Annualized Sharpe ratio of periodic returns, empyrical's definition, no risk-free rate.

    Args:
      returns: `(..., days)` simple periodic returns (0.01 = +1 %).
      periods: periods per year. Default value: 252 (daily).

    Returns:
      `(...)` `mean / std(ddof=1) * sqrt(periods)`; NaN where there are fewer than two
      returns or the returns are all equal (zero standard deviation).
    """
    xp = _namespace(returns)
    returns = _as_float(returns, xp)
    _check_nonempty(returns, "returns")
    n = returns.shape[-1]
    if n < 2:
        return xp.full(returns.shape[:-1], xp.nan, dtype=returns.dtype)
    # Shift by the first return: same variance, less cancellation, and exactly 0 for a
    # constant series (so "std is 0" is detected without a tolerance).
    shifted = returns - returns[..., :1]
    shifted_mean = shifted.mean(axis=-1)
    std = xp.sqrt(((shifted - shifted_mean[..., None]) ** 2).sum(axis=-1) / (n - 1))
    mean = returns[..., 0] + shifted_mean
    defined = std > 0
    ratio = mean / xp.where(defined, std, 1) * math.sqrt(periods)
    return xp.where(defined, ratio, xp.nan)


def value_at_risk(returns: Any, level: float = 0.99) -> Any:
    """Historical value at risk: the loss not exceeded with probability `level`.

    Args:
      returns: `(..., samples)` returns (daily returns of one path, or horizon returns of
        many paths).
      level: confidence level in (0, 1). Default value: 0.99.

    Returns:
      `(...)` `-np.percentile(returns, 100 * (1 - level))` (linear interpolation between
      order statistics), a positive fraction for a loss: empyrical's `value_at_risk` with
      `cutoff = 1 - level`, sign flipped.
    """
    _check_level(level)
    xp = _namespace(returns)
    returns = _as_float(returns, xp)
    _check_nonempty(returns, "returns")
    return -xp.percentile(returns, 100 * (1 - level), axis=-1)


def conditional_value_at_risk(returns: Any, level: float = 0.99) -> Any:
    """Historical expected shortfall: the mean loss in the worst `1 - level` of the sample.

    Args:
      returns: `(..., samples)` returns.
      level: confidence level in (0, 1). Default value: 0.99.

    Returns:
      `(...)` minus the mean of the `k + 1` smallest returns, `k = int((n - 1) * (1 - level))`:
      empyrical's `conditional_value_at_risk` with `cutoff = 1 - level`, sign flipped. Always
      ≥ `value_at_risk(returns, level)`.
    """
    _check_level(level)
    xp = _namespace(returns)
    returns = _as_float(returns, xp)
    _check_nonempty(returns, "returns")
    n_tail = int((returns.shape[-1] - 1) * (1 - level)) + 1
    worst = xp.sort(returns, axis=-1)[..., :n_tail]
    return -worst.mean(axis=-1)


# --------------------------------------------------------------------------- Kelly


def _check_kelly_domain(p: Any, avg_win: Any, avg_loss: Any) -> None:
    """Reject impossible Kelly inputs when their values are known (skipped under tracing)."""
    try:
        p_, a_, b_ = (np.asarray(v) for v in (p, avg_win, avg_loss))
    except Exception as exc:  # a tracer has no value to check (JAX is loaded if one exists)
        jax = sys.modules.get("jax")
        if jax is not None and isinstance(exc, jax.errors.TracerArrayConversionError):
            return
        raise
    if np.any((p_ < 0) | (p_ > 1)):
        raise ValueError(f"p is a win probability and must lie in [0, 1]; got {p!r}")
    if np.any(a_ <= 0):
        raise ValueError(f"avg_win must be a positive fraction (0.123 = 12.3 %); got {avg_win!r}")
    if np.any(b_ <= 0):
        raise ValueError(
            f"avg_loss must be a positive fraction of capital at risk (0.087 = 8.7 %); "
            f"got {avg_loss!r}"
        )


def kelly(
    p: Any,
    avg_win: Any,
    avg_loss: Any,
    multiplier: float = 0.25,
    cap: float = 0.20,
) -> dict[str, Any]:
    """Kelly sizing from a win rate and average win and loss, both readings of the seed.

    A trade puts capital at risk `f` (a multiple of the bankroll) and returns `+a·f` with
    probability `p`, `−b·f` otherwise (`a = avg_win`, `b = avg_loss`, positive fractions of
    the capital at risk). The log-growth `G(f) = p ln(1 + a f) + (1 − p) ln(1 − b f)` has
    `G'(f) = p a / (1 + a f) − (1 − p) b / (1 − b f) = 0` at

        growth_optimal = p / b − (1 − p) / a.

    The seed's formula `p − (1 − p) b / a` is the classic Kelly stake for odds `a / b`
    (whole stake lost on a loss); it equals `b · growth_optimal`, the share of the bankroll
    an average losing trade costs at the growth-optimal size. For the seed's inputs
    (0.892, 0.123, 0.087) they give 0.816 and 9.37 (the seed prints 0.247: its arithmetic
    is wrong, docs/STRATEGY.md "Capital").

    Args:
      p: win probability in [0, 1]; broadcasts with the others.
      avg_win: average win as a positive fraction of capital at risk.
      avg_loss: average loss as a positive fraction of capital at risk.
      multiplier: share of Kelly used by the seed's sizing rule. Default value: 0.25.
      cap: the seed's `max_total_strategy_pct`. Default value: 0.20.

    Returns:
      mapping with `seed_fraction`, `growth_optimal`, `conservative`
      (`multiplier * seed_fraction`), `recommended` (`conservative` capped at `cap`, floored
      at 0) and `units` (a description of each).
    """
    _check_kelly_domain(p, avg_win, avg_loss)
    xp = _namespace(p, avg_win, avg_loss)
    p, avg_win, avg_loss = (_as_float(v, xp) for v in (p, avg_win, avg_loss))
    seed_fraction = p - (1 - p) * avg_loss / avg_win
    growth_optimal = p / avg_loss - (1 - p) / avg_win
    conservative = multiplier * seed_fraction
    recommended = xp.clip(conservative, 0, cap)
    return {
        "seed_fraction": seed_fraction,
        "growth_optimal": growth_optimal,
        "conservative": conservative,
        "recommended": recommended,
        "units": dict(KELLY_UNITS),
    }


# --------------------------------------------------------------------------- estimation


class Estimate(NamedTuple):
    """A point estimate with its standard error and a confidence interval (float64)."""

    estimate: np.ndarray
    se: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def z_score(conf: float) -> float:
    from scipy import stats  # here: `import simkit.run` stays without SciPy

    if not 0.0 < conf < 1.0:
        raise ValueError(f"conf must lie strictly between 0 and 1 (e.g. 0.95); got {conf!r}")
    return float(stats.norm.ppf(0.5 + conf / 2))


def _wilson(p_hat: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a proportion `p_hat` observed on `n` (may be fractional)."""
    z2_n = z * z / n
    centre = (p_hat + z2_n / 2) / (1 + z2_n)
    half = z / (1 + z2_n) * np.sqrt(p_hat * (1 - p_hat) / n + z2_n / (4 * n))
    # At p_hat = 0 or 1 the bound is exactly 0 or 1; say so rather than leave rounding.
    lo = np.where(p_hat == 0, 0.0, np.clip(centre - half, 0, 1))
    hi = np.where(p_hat == 1, 1.0, np.clip(centre + half, 0, 1))
    return lo, hi


def proportion_ci(successes: Any, n: Any, conf: float = 0.95) -> Estimate:
    """Binomial proportion with its Wilson score interval.

    Args:
      successes: counts of successes; broadcasts with `n`.
      n: counts of trials.
      conf: confidence level. Default value: 0.95.

    Returns:
      `Estimate(successes / n, sqrt(p(1-p)/n), wilson_lo, wilson_hi)`, NaN where `n = 0`.
    """
    z = z_score(conf)
    successes = np.asarray(successes, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if np.any(successes < 0) or np.any(successes > n):
        raise ValueError("successes must lie between 0 and n")
    with np.errstate(invalid="ignore", divide="ignore"):
        n_safe = np.where(n > 0, n, np.nan)
        p_hat = successes / n_safe
        se = np.sqrt(p_hat * (1 - p_hat) / n_safe)
        lo, hi = _wilson(p_hat, n_safe, z)
    return Estimate(p_hat, se, lo, hi)


def mean_se(x: Any, conf: float = 0.95) -> Estimate:
    """Sample mean along the last axis with its standard error `std(ddof=1) / sqrt(n)`.

    Returns:
      `Estimate(mean, se, mean − z·se, mean + z·se)` (normal interval); `se` is NaN for
      fewer than two values.
    """
    z = z_score(conf)
    x = np.asarray(x, dtype=np.float64)
    _check_nonempty(x, "x")
    n = x.shape[-1]
    mean = x.mean(axis=-1)
    if n < 2:
        se = np.full_like(mean, np.nan)
    else:
        se = x.std(axis=-1, ddof=1) / math.sqrt(n)
    return Estimate(mean, se, mean - z * se, mean + z * se)


def quantile_ci(x: Any, q: float, conf: float = 0.95) -> Estimate:
    """Sample quantile along the last axis with a distribution-free order-statistic interval.

    The estimate is `np.quantile(x, q)` (linear interpolation). The interval is
    `[x_(l), x_(u)]` (1-based order statistics) with `l` the smallest `k` whose
    `Binomial(n, q)` CDF reaches `(1 − conf)/2` and `u − 1` the smallest `k` whose CDF reaches
    `(1 + conf)/2`, so `P(x_(l) ≤ ξ_q < x_(u)) ≥ conf` for any continuous law. When the
    sample is too small for such a rank, that end is −inf or +inf (no finite bound has
    the stated coverage). `se` is the interval's half-width over z (a normal-equivalent
    figure for tables).
    """
    z = z_score(conf)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must lie in [0, 1]; got {q!r}")
    x = np.asarray(x, dtype=np.float64)
    _check_nonempty(x, "x")
    n = x.shape[-1]
    ordered = np.sort(x, axis=-1)
    estimate = np.quantile(ordered, q, axis=-1)
    l_rank, u_rank = quantile_ci_ranks(n, q, conf)
    lead = ordered.shape[:-1]
    lo = ordered[..., l_rank - 1] if l_rank >= 1 else np.full(lead, -np.inf)
    hi = ordered[..., u_rank - 1] if u_rank <= n else np.full(lead, np.inf)
    se = (hi - lo) / (2 * z)
    return Estimate(estimate, se, lo, hi)


def quantile_ci_ranks(n: int, q: float, conf: float = 0.95) -> tuple[int, int]:
    """The 1-based ranks `(l, u)` of `quantile_ci`'s interval `[x_(l), x_(u)]` for `n` values
    (`l` may be 0 and `u` may be `n + 1`: no finite bound with the coverage)."""
    from scipy import stats  # here: `import simkit.run` stays without SciPy

    alpha = 1 - conf
    l_rank = int(stats.binom.ppf(alpha / 2, n, q))
    u_rank = int(stats.binom.ppf(1 - alpha / 2, n, q)) + 1
    return l_rank, u_rank


def kelly_inputs(
    n_wins: Any,
    n_trades: Any,
    sum_win_ret: Any,
    sum_win_ret_sq: Any,
    sum_loss_ret: Any,
    sum_loss_ret_sq: Any,
    conf: float = 0.95,
) -> dict[str, Any]:
    """Kelly inputs pooled over paths, with path-clustered standard errors and intervals.

    Every argument is `(..., paths)`: per-path counts of closed trades and wins, and the
    sums and sums of squares of the returns of winning trades (positive) and of losing
    trades (losses as positive fractions of the collateral tied up). Pooled estimates are
    ratio estimators over all trades of all paths:

        p = Σ wins / Σ trades,  avg_win = Σ win_ret / Σ wins,  avg_loss = Σ loss_ret / Σ losses.

    Trades of one path share its market, so they are not independent. Standard errors are
    cluster-robust by path (CR1 sandwich of the ratio estimators): with per-path
    influence `u_g = (y_g − R x_g) / Σ x`, `Cov = G/(G−1) Σ_g u_g u_gᵀ` over the `G` paths
    that closed a trade, jointly for (p, avg_win, avg_loss), and the delta method carries
    it to `seed_fraction` and `growth_optimal`. With fewer than two such paths (or two
    paths with a win, or with a loss) clustering is impossible and the i.i.d.-trade
    errors (`*_se_iid`, always reported, from the sums of squares) are used; `se_method`
    says which. The interval for `p` is Wilson's at the effective number of trades
    `p(1−p)/se²`; the others are normal, estimate ± z·se.

    Returns:
      mapping (float64 arrays of shape `(...)`) with `p`, `avg_win`, `avg_loss`,
      `seed_fraction`, `growth_optimal`, each with `_se`, `_lo`, `_hi`; `p_se_iid`,
      `avg_win_se_iid`, `avg_loss_se_iid`; `n_trades`, `n_wins`, `n_paths` (paths that
      closed a trade); `se_method` ("cluster" or "iid", a string array).
    """
    args = np.broadcast_arrays(
        *(
            np.asarray(v, dtype=np.float64)
            for v in (n_wins, n_trades, sum_win_ret, sum_win_ret_sq, sum_loss_ret, sum_loss_ret_sq)
        )
    )
    wins, trades, win_sum, _, loss_sum, _ = args
    if np.any(wins < 0) or np.any(wins > trades):
        raise ValueError("n_wins must lie between 0 and n_trades on every path")
    sums = kelly_sums(*args)
    comoment = kelly_comoment(wins, trades, win_sum, loss_sum, sums)
    return kelly_from_sums(sums, comoment, conf)


_KELLY_SUMS = ("wins", "trades", "win_sum", "win_sq", "loss_sum", "loss_sq")


def kelly_sums(
    n_wins: Any,
    n_trades: Any,
    sum_win_ret: Any,
    sum_win_ret_sq: Any,
    sum_loss_ret: Any,
    sum_loss_ret_sq: Any,
) -> dict[str, np.ndarray]:
    """The path sums `kelly_inputs` pools (the same arguments, summed along the last axis):
    `wins`, `trades`, `win_sum`, `win_sq`, `loss_sum`, `loss_sq`, and the path counts
    `paths` (closed a trade), `win_paths` (a win), `loss_paths` (a loss). Sums of disjoint
    sets of paths add up to the sums of their union."""
    values = [
        np.asarray(v, dtype=np.float64)
        for v in (n_wins, n_trades, sum_win_ret, sum_win_ret_sq, sum_loss_ret, sum_loss_ret_sq)
    ]
    out = {k: v.sum(axis=-1) for k, v in zip(_KELLY_SUMS, values, strict=True)}
    wins, trades = values[0], values[1]
    out["paths"] = (trades > 0).sum(axis=-1)
    out["win_paths"] = (wins > 0).sum(axis=-1)
    out["loss_paths"] = (trades - wins > 0).sum(axis=-1)
    return out


def _kelly_ratios(sums: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        losses = sums["trades"] - sums["wins"]
        return (
            sums["wins"] / sums["trades"],
            sums["win_sum"] / sums["wins"],
            sums["loss_sum"] / losses,
        )


def kelly_comoment(
    n_wins: Any, n_trades: Any, sum_win_ret: Any, sum_loss_ret: Any, sums: dict[str, np.ndarray]
) -> np.ndarray:
    """`(..., 3, 3)` sum over these paths of `u_g u_g^T`, the per-path influence of the ratio
    estimators of (p, avg_win, avg_loss) built from the pooled `sums` of every path
    (`kelly_sums`). Sums over disjoint sets of paths add up."""
    wins, trades, win_sum, loss_sum = (
        np.asarray(v, dtype=np.float64) for v in (n_wins, n_trades, sum_win_ret, sum_loss_ret)
    )
    p, avg_win, avg_loss = _kelly_ratios(sums)
    total_losses = sums["trades"] - sums["wins"]
    with np.errstate(invalid="ignore", divide="ignore"):
        influence = np.stack(
            [
                (wins - p[..., None] * trades) / sums["trades"][..., None],
                (win_sum - avg_win[..., None] * wins) / sums["wins"][..., None],
                (loss_sum - avg_loss[..., None] * (trades - wins)) / total_losses[..., None],
            ],
            axis=-2,
        )  # (..., 3, paths)
        influence = np.where(trades[..., None, :] > 0, influence, 0.0)
        return np.einsum("...ig,...jg->...ij", influence, influence)


def kelly_from_sums(
    sums: dict[str, np.ndarray], comoment: np.ndarray, conf: float = 0.95
) -> dict[str, Any]:
    """`kelly_inputs` from its pooled path sums (`kelly_sums`) and the influence co-moment
    (`kelly_comoment`), for reductions that cannot hold every path at once."""
    z = z_score(conf)
    total_trades, total_wins = sums["trades"], sums["wins"]
    total_losses = total_trades - total_wins
    p, avg_win, avg_loss = _kelly_ratios(sums)
    with np.errstate(invalid="ignore", divide="ignore"):
        # i.i.d. trades: binomial p, sample variances of win and loss returns.
        win_var = (sums["win_sq"] - total_wins * avg_win**2) / (total_wins - 1)
        loss_var = (sums["loss_sq"] - total_losses * avg_loss**2) / (total_losses - 1)
        var_iid = np.zeros(p.shape + (3, 3))
        var_iid[..., 0, 0] = p * (1 - p) / total_trades
        var_iid[..., 1, 1] = np.maximum(win_var, 0) / total_wins
        var_iid[..., 2, 2] = np.maximum(loss_var, 0) / total_losses

        # Path-clustered sandwich: CR1 over the paths that closed a trade.
        n_paths = np.asarray(sums["paths"])
        clusterable = (
            (n_paths >= 2)
            & (np.asarray(sums["win_paths"]) >= 2)
            & (np.asarray(sums["loss_paths"]) >= 2)
        )
        g = n_paths.astype(np.float64)
        var_cluster = comoment * (g / (g - 1))[..., None, None]
        cov = np.where(clusterable[..., None, None], var_cluster, var_iid)

        seed_fraction = p - (1 - p) * avg_loss / avg_win
        growth_optimal = p / avg_loss - (1 - p) / avg_win
        grad_seed = np.stack(
            [1 + avg_loss / avg_win, (1 - p) * avg_loss / avg_win**2, -(1 - p) / avg_win],
            axis=-1,
        )
        grad_growth = np.stack(
            [1 / avg_loss + 1 / avg_win, (1 - p) / avg_win**2, -p / avg_loss**2], axis=-1
        )
        se = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
        se_iid = np.sqrt(np.diagonal(var_iid, axis1=-2, axis2=-1))
        seed_se = np.sqrt(np.einsum("...i,...ij,...j->...", grad_seed, cov, grad_seed))
        growth_se = np.sqrt(np.einsum("...i,...ij,...j->...", grad_growth, cov, grad_growth))

        n_effective = np.where(se[..., 0] > 0, p * (1 - p) / se[..., 0] ** 2, total_trades)
        p_lo, p_hi = _wilson(p, np.where(total_trades > 0, n_effective, np.nan), z)

    out: dict[str, Any] = {"p": p, "p_se": se[..., 0], "p_lo": p_lo, "p_hi": p_hi}
    for name, value, value_se in (
        ("avg_win", avg_win, se[..., 1]),
        ("avg_loss", avg_loss, se[..., 2]),
        ("seed_fraction", seed_fraction, seed_se),
        ("growth_optimal", growth_optimal, growth_se),
    ):
        out[name] = value
        out[f"{name}_se"] = value_se
        out[f"{name}_lo"] = value - z * value_se
        out[f"{name}_hi"] = value + z * value_se
    out["p_se_iid"] = se_iid[..., 0]
    out["avg_win_se_iid"] = se_iid[..., 1]
    out["avg_loss_se_iid"] = se_iid[..., 2]
    out["n_trades"] = total_trades
    out["n_wins"] = total_wins
    out["n_paths"] = n_paths
    out["se_method"] = np.where(clusterable, "cluster", "iid")
    return out
