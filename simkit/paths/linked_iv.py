"""The stationary law of linked IV and its percentile table (NumPy and SciPy, no JAX).

Linked IV is `IV = sqrt(v) e^z` (`simkit.paths.iv`): v the CIR variance, z an independent OU
process. Their stationary laws are

    v ~ Gamma(shape 2 kappa_v theta_v / xi^2, scale xi^2 / (2 kappa_v)),
    z ~ Normal(ln vrp_long_run, vrp_eta^2 / (2 vrp_kappa)),

so ln IV = ln(v) / 2 + z has the CDF

    F(y) = E_v[ Phi((y - ln(v)/2 - ln vrp_long_run) / sd_z) ],

integrated here by the midpoint rule in v's probability (`NODES` Gamma quantiles: the error is
below 1/NODES for any integrand and far smaller for this smooth one; a point mass when xi = 0 or
vrp_eta = 0 is exact). The IV percentile of a day is `100 F(ln IV)`, as the independent model's
is the stationary percentile of its log-OU process: no history buffer.

`linked_iv_table(params)` tabulates `100 F` once per market on `KNOTS` equally spaced points of
ln IV, from the 1e-7 quantile to the 1 - 1e-7 quantile of each component (capped at 40 standard
deviations of ln IV around its median); the engines interpolate linearly between knots (below
the first knot: its value, about 0; above the last: about 100). Linear interpolation on this grid
is within 0.01 percentile points of F (tests/paths/test_linked_iv.py).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from scipy import special, stats

__all__ = ["KNOTS", "NODES", "PercentileTable", "stationary_cdf", "linked_iv_table"]

KNOTS = 2049  # knots of the table (2048 intervals)
NODES = 8192  # quantile nodes of v in the integral
_TAIL = 1e-7  # the table spans the components' quantiles _TAIL .. 1 - _TAIL
_MAX_SPAN_SD = 40.0  # ... but at most this many standard deviations of ln IV either side


class PercentileTable(NamedTuple):
    """`100 F(ln IV)` on an equally spaced grid of ln IV: knot i is `start + i * step`."""

    start: float  # ln IV of the first knot
    step: float  # spacing of the knots in ln IV, > 0
    percentiles: tuple[float, ...]  # KNOTS values in [0, 100], nondecreasing


def _half_log_variance_nodes(kappa_v: float, theta_v: float, xi: float) -> np.ndarray:
    """ln(v)/2 at the midpoint quantiles of v's stationary Gamma law (one node when xi = 0)."""
    if xi == 0.0:
        return np.array([0.5 * math.log(theta_v)])
    shape = 2.0 * kappa_v * theta_v / (xi * xi)
    scale = xi * xi / (2.0 * kappa_v)
    probs = (np.arange(NODES) + 0.5) / NODES
    with np.errstate(divide="ignore"):  # a quantile that underflows to 0: ln 0 = -inf, fine
        return 0.5 * np.log(stats.gamma.ppf(probs, shape, scale=scale))


def stationary_cdf(
    log_iv,
    kappa_v: float,
    theta_v: float,
    xi: float,
    vrp_long_run: float,
    vrp_kappa: float,
    vrp_eta: float,
) -> np.ndarray:
    """F(ln IV): the stationary CDF of ln IV under linked IV (module doc), float64.

    Args:
        log_iv: ln IV, any shape.
        kappa_v (> 0), theta_v (> 0), xi (>= 0): the variance's CIR parameters.
        vrp_long_run (> 0), vrp_kappa (> 0), vrp_eta (>= 0): z's OU parameters.

    Returns:
        Probabilities in [0, 1], the shape of `log_iv`.
    """
    y = np.asarray(log_iv, np.float64)
    nodes = _half_log_variance_nodes(kappa_v, theta_v, xi)
    mean_z = math.log(vrp_long_run)
    sd_z = vrp_eta / math.sqrt(2.0 * vrp_kappa)
    gap = y[..., None] - nodes - mean_z  # y - ln(v)/2 - E z, per node
    if sd_z == 0.0:
        values = (gap >= 0.0).astype(np.float64)
    else:
        values = special.ndtr(gap / sd_z)
    return values.mean(axis=-1)


@functools.lru_cache(maxsize=64)
def _table(
    kappa_v: float,
    theta_v: float,
    xi: float,
    vrp_long_run: float,
    vrp_kappa: float,
    vrp_eta: float,
) -> PercentileTable:
    mean_z = math.log(vrp_long_run)
    sd_z = vrp_eta / math.sqrt(2.0 * vrp_kappa)
    z_tail = stats.norm.isf(_TAIL) * sd_z
    if xi == 0.0:
        v_lo = v_hi = theta_v
        half_log_sd = 0.0
    else:
        shape, scale = 2.0 * kappa_v * theta_v / (xi * xi), xi * xi / (2.0 * kappa_v)
        v_lo = stats.gamma.ppf(_TAIL, shape, scale=scale)
        v_hi = stats.gamma.isf(_TAIL, shape, scale=scale)
        half_log_sd = 0.5 * math.sqrt(special.polygamma(1, shape))
    median = 0.5 * math.log(theta_v) + mean_z
    cap = _MAX_SPAN_SD * max(math.hypot(half_log_sd, sd_z), 1e-3)
    lo = 0.5 * math.log(v_lo) if v_lo > 0.0 else -math.inf
    lo = max(lo + mean_z - z_tail, median - cap)
    hi = min(0.5 * math.log(v_hi) + mean_z + z_tail, median + cap)
    if hi - lo < 1e-6:  # both laws a point mass: a step at the one value
        lo, hi = lo - 1e-3, hi + 1e-3
    grid = np.linspace(lo, hi, KNOTS)
    cdf = stationary_cdf(grid, kappa_v, theta_v, xi, vrp_long_run, vrp_kappa, vrp_eta)
    percentiles = np.clip(100.0 * np.maximum.accumulate(cdf), 0.0, 100.0)
    return PercentileTable(float(lo), float(grid[1] - grid[0]), tuple(percentiles.tolist()))


def linked_iv_table(params) -> PercentileTable:
    """The IV-percentile table of a market with linked IV (cached per parameter values).

    Args:
        params: a `MarketParams` (or any object with float `kappa_v`, `theta_v`, `xi`,
            `vrp_long_run`, `vrp_kappa`, `vrp_eta`).
    """
    values = (
        params.kappa_v,
        params.theta_v,
        params.xi,
        params.vrp_long_run,
        params.vrp_kappa,
        params.vrp_eta,
    )
    return _table(*(float(v) for v in values))
