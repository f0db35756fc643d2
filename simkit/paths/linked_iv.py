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

GARCH (`model = "garch"`): v = 252 h, h the conditional daily variance of GJR-GARCH(1,1)
(`simkit.paths.garch`). Its stationary law has no closed form, so it is tabulated from a long
simulation (`garch_variance_quantiles`): x = h / omega follows x' = 1 + x (beta + (alpha +
gamma [z < 0]) z^2), which depends on (alpha, gamma, beta) only (h scales with omega). 4,096
chains start at the stationary mean 1 / (1 - p) (p = alpha + gamma/2 + beta), are burnt in for
10 / (1 - p) steps (the start's memory decays as p^t: e^-10) and then recorded every 1 / (1 - p)
steps, about 2^24 normal draws in all from NumPy's PCG64 seeded with `GARCH_SEED`: the same
table for the same parameters in every process and every run, built once per process and
parameter set (under a second). `GARCH_NODES` = 2,048 midpoint quantiles of the recorded x
replace v's Gamma quantiles in F above (the midpoint rule's bound 1 / 2,048 is below the
sampling error). The sampling error of a percentile of v, measured over six seeds: 0.11 points
at the median, 0.05 in the tails at the default persistence 0.97 (450,560 recorded values); 0.15
at p = 0.99; 0.3 at p = 0.999 (its burn-in of 10,000 steps exceeds the budget: 8 records a
chain, 2 s). The IV percentile adds z's spread, which smooths it further.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

__all__ = [
    "KNOTS",
    "NODES",
    "GARCH_NODES",
    "GARCH_SEED",
    "PercentileTable",
    "GarchVarianceLaw",
    "stationary_cdf",
    "garch_stationary_cdf",
    "garch_variance_sample",
    "garch_variance_quantiles",
    "linked_iv_table",
]

KNOTS = 2049  # knots of the table (2048 intervals)
NODES = 8192  # quantile nodes of v in the integral
_TAIL = 1e-7  # the table spans the components' quantiles _TAIL .. 1 - _TAIL
_MAX_SPAN_SD = 40.0  # ... but at most this many standard deviations of ln IV either side
TRADING_DAYS = 252  # GARCH's h is a daily variance: v = h * 252 (the engine's dt = 1/252)

GARCH_SEED = 15  # PCG64 seed of the stationary GARCH sample (the table is the parameters')
_GARCH_CHAINS = 4096
_GARCH_DRAWS = 2**24  # the sample's budget of normal draws (chains x steps)
_GARCH_MIN_RECORDS = 8  # records per chain, at least (past the budget when the burn-in is long)
_GARCH_MAX_BURN_IN = 10_000  # steps
_GARCH_BLOCK = 256  # steps drawn at once
GARCH_NODES = 2048  # quantile nodes of the sampled law (its sampling error is larger than the
# midpoint rule's 1 / GARCH_NODES bound)


class PercentileTable(NamedTuple):
    """`100 F(ln IV)` on an equally spaced grid of ln IV: knot i is `start + i * step`."""

    start: float  # ln IV of the first knot
    step: float  # spacing of the knots in ln IV, > 0
    percentiles: tuple[float, ...]  # KNOTS values in [0, 100], nondecreasing


def _half_log_variance_nodes(kappa_v: float, theta_v: float, xi: float) -> np.ndarray:
    """ln(v)/2 at the midpoint quantiles of v's stationary Gamma law (one node when xi = 0)."""
    from scipy import stats  # here: `import simkit.run` stays without SciPy

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
    nodes = _half_log_variance_nodes(kappa_v, theta_v, xi)
    return _cdf_at_nodes(log_iv, nodes, vrp_long_run, vrp_kappa, vrp_eta)


def _cdf_at_nodes(log_iv, nodes, vrp_long_run, vrp_kappa, vrp_eta) -> np.ndarray:
    """F(ln IV) = mean over the nodes of ln(v)/2 of Phi((ln IV - node - E z) / sd z)."""
    from scipy import special  # here: `import simkit.run` stays without SciPy

    y = np.asarray(log_iv, np.float64)
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
    from scipy import special, stats  # here: `import simkit.run` stays without SciPy

    if xi == 0.0:
        v_lo = v_hi = theta_v
        half_log_sd = 0.0
    else:
        shape, scale = 2.0 * kappa_v * theta_v / (xi * xi), xi * xi / (2.0 * kappa_v)
        v_lo = stats.gamma.ppf(_TAIL, shape, scale=scale)
        v_hi = stats.gamma.isf(_TAIL, shape, scale=scale)
        half_log_sd = 0.5 * math.sqrt(special.polygamma(1, shape))
    return _percentile_table(
        _half_log_variance_nodes(kappa_v, theta_v, xi),
        0.5 * math.log(v_lo) if v_lo > 0.0 else -math.inf,
        0.5 * math.log(v_hi),
        half_log_sd,
        0.5 * math.log(theta_v),
        vrp_long_run,
        vrp_kappa,
        vrp_eta,
    )


def _percentile_table(
    nodes: np.ndarray,
    half_log_lo: float,
    half_log_hi: float,
    half_log_sd: float,
    half_log_centre: float,
    vrp_long_run: float,
    vrp_kappa: float,
    vrp_eta: float,
) -> PercentileTable:
    """The table of `100 F` from the quantile nodes of ln(v)/2, its range (its lowest and
    highest values: the `_TAIL` quantiles, or a sample's extremes), its standard deviation and a
    central value (the span's cap is counted from it)."""
    from scipy import stats  # here: `import simkit.run` stays without SciPy

    mean_z = math.log(vrp_long_run)
    sd_z = vrp_eta / math.sqrt(2.0 * vrp_kappa)
    z_tail = stats.norm.isf(_TAIL) * sd_z
    median = half_log_centre + mean_z
    cap = _MAX_SPAN_SD * max(math.hypot(half_log_sd, sd_z), 1e-3)
    lo = max(half_log_lo + mean_z - z_tail, median - cap)
    hi = min(half_log_hi + mean_z + z_tail, median + cap)
    if hi - lo < 1e-6:  # both laws a point mass: a step at the one value
        lo, hi = lo - 1e-3, hi + 1e-3
    grid = np.linspace(lo, hi, KNOTS)
    cdf = _cdf_at_nodes(grid, nodes, vrp_long_run, vrp_kappa, vrp_eta)
    percentiles = np.clip(100.0 * np.maximum.accumulate(cdf), 0.0, 100.0)
    return PercentileTable(float(lo), float(grid[1] - grid[0]), tuple(percentiles.tolist()))


# --------------------------------------------------------------------------- GARCH


class GarchVarianceLaw(NamedTuple):
    """The stationary law of x = h / omega under GJR-GARCH(1,1), from a seeded simulation."""

    quantiles: np.ndarray  # (GARCH_NODES,) midpoint quantiles of x, nondecreasing
    lowest: float  # the sample's smallest x
    highest: float  # the sample's largest x
    log_sd: float  # standard deviation of ln x in the sample


def garch_variance_sample(
    alpha: float, gamma: float, beta: float, seed: int = GARCH_SEED
) -> np.ndarray:
    """A sample of the stationary law of x = h / omega (module doc), float64.

    Args:
        alpha (>= 0), gamma (>= -alpha), beta (>= 0): GJR-GARCH(1,1)'s coefficients, with
            alpha + gamma / 2 + beta < 1.
        seed: NumPy PCG64 seed. Default value: `GARCH_SEED`.

    Returns:
        (records, chains) values of x: column j is chain j, independent of the others; rows
        are `thin` steps apart within a chain (correlation about e^-1 between rows).
    """
    persistence = alpha + 0.5 * gamma + beta
    if not (alpha >= 0.0 and alpha + gamma >= 0.0 and beta >= 0.0 and persistence < 1.0):
        raise ValueError(
            f"GARCH coefficients must have alpha >= 0, alpha + gamma >= 0, beta >= 0 and "
            f"alpha + gamma / 2 + beta < 1; got alpha {alpha!r}, gamma {gamma!r}, beta {beta!r}."
        )
    memory = 1.0 / (1.0 - persistence)  # steps over which a shock to E[x] decays by e
    burn_in = min(math.ceil(10.0 * memory), _GARCH_MAX_BURN_IN)
    thin = math.ceil(memory)
    steps_left = _GARCH_DRAWS // _GARCH_CHAINS - burn_in
    records = max(_GARCH_MIN_RECORDS, steps_left // thin)
    rng = np.random.default_rng(seed)
    x = np.full(_GARCH_CHAINS, memory)  # the stationary mean 1 / (1 - p)
    out = np.empty((records, _GARCH_CHAINS))
    total, done, recorded = burn_in + thin * records, 0, 0
    while done < total:
        block = min(_GARCH_BLOCK, total - done)
        z = rng.standard_normal((block, _GARCH_CHAINS))
        factor = np.where(z < 0.0, alpha + gamma, alpha)
        factor *= z
        factor *= z
        factor += beta
        for row in factor:
            np.multiply(x, row, out=x)
            x += 1.0
            done += 1
            if done > burn_in and (done - burn_in) % thin == 0:
                out[recorded] = x
                recorded += 1
    return out


@functools.lru_cache(maxsize=16)
def garch_variance_quantiles(alpha: float, gamma: float, beta: float) -> GarchVarianceLaw:
    """The stationary law of x = h / omega as `GARCH_NODES` midpoint quantiles (cached per
    coefficients; `garch_variance_sample` with `GARCH_SEED`; `numpy.quantile`'s linear rule)."""
    sample = np.sort(garch_variance_sample(alpha, gamma, beta), axis=None)
    positions = (np.arange(GARCH_NODES) + 0.5) / GARCH_NODES * (sample.size - 1)
    return GarchVarianceLaw(
        quantiles=np.interp(positions, np.arange(sample.size), sample),
        lowest=float(sample[0]),
        highest=float(sample[-1]),
        log_sd=float(np.log(sample).std()),
    )


def _garch_half_log_variance_nodes(omega: float, law: GarchVarianceLaw) -> np.ndarray:
    """ln(v)/2 at the nodes, v = 252 omega x."""
    return 0.5 * np.log(TRADING_DAYS * omega * law.quantiles)


def garch_stationary_cdf(
    log_iv,
    omega: float,
    alpha: float,
    gamma: float,
    beta: float,
    vrp_long_run: float,
    vrp_kappa: float,
    vrp_eta: float,
) -> np.ndarray:
    """F(ln IV) under linked IV on a GARCH market, IV = sqrt(252 h) e^z (module doc), float64.

    Args:
        log_iv: ln IV, any shape.
        omega (> 0, daily), alpha, gamma, beta: GJR-GARCH(1,1)'s coefficients.
        vrp_long_run (> 0), vrp_kappa (> 0), vrp_eta (>= 0): z's OU parameters.
    """
    nodes = _garch_half_log_variance_nodes(omega, garch_variance_quantiles(alpha, gamma, beta))
    return _cdf_at_nodes(log_iv, nodes, vrp_long_run, vrp_kappa, vrp_eta)


@functools.lru_cache(maxsize=64)
def _garch_table(
    omega: float,
    alpha: float,
    gamma: float,
    beta: float,
    vrp_long_run: float,
    vrp_kappa: float,
    vrp_eta: float,
) -> PercentileTable:
    law = garch_variance_quantiles(alpha, gamma, beta)
    nodes = _garch_half_log_variance_nodes(omega, law)
    scale = 0.5 * math.log(TRADING_DAYS * omega)
    return _percentile_table(
        nodes,
        scale + 0.5 * math.log(law.lowest),
        scale + 0.5 * math.log(law.highest),
        0.5 * law.log_sd,
        float(nodes[GARCH_NODES // 2]),
        vrp_long_run,
        vrp_kappa,
        vrp_eta,
    )


def linked_iv_table(params) -> PercentileTable:
    """The IV-percentile table of a market with linked IV (cached per parameter values).

    Args:
        params: a `MarketParams` (or any object with float `kappa_v`, `theta_v`, `xi`,
            `vrp_long_run`, `vrp_kappa`, `vrp_eta`; with `model = "garch"`, `garch_omega`,
            `garch_alpha`, `garch_gamma`, `garch_beta` instead of the first three).
    """
    if getattr(params, "model", None) == "garch":
        values = (
            params.garch_omega,
            params.garch_alpha,
            params.garch_gamma,
            params.garch_beta,
            params.vrp_long_run,
            params.vrp_kappa,
            params.vrp_eta,
        )
        return _garch_table(*(float(v) for v in values))
    values = (
        params.kappa_v,
        params.theta_v,
        params.xi,
        params.vrp_long_run,
        params.vrp_kappa,
        params.vrp_eta,
    )
    return _table(*(float(v) for v in values))
