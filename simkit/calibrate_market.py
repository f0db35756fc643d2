"""Maximum-likelihood calibration of the market model to a daily price (and IV) history.

The likelihood is that of the daily log returns `r_t = ln(S_t / S_{t-1})` with one trading
day `dt = 1/252` per row, under the models that `simkit.paths` simulates (docs/MODELLING.md
"Market model"; drifts compensated so that `E[S_t] = S_0 e^{mu t}`):

- GBM: `r ~ N((mu − σ²/2) dt, σ² dt)`; closed-form MLE.
- Merton: `r = (mu − σ²/2 − λk) dt + σ √dt Z + Σ_{i≤N} J_i`, `N ~ Poisson(λ dt)`,
  `J ~ N(m, s²)`, `k = e^{m + s²/2} − 1`; the density is the Poisson mixture of normals,
  maximised numerically from several starts.
- GARCH: GJR-GARCH(1,1) with normal innovations, fitted by the `arch` package (the ecosystem's
  standard; `arch_model(mean="Constant", vol="GARCH", p=1, o=1, q=1, dist="normal")`):
  `r_t = c + ε_t`, `ε_t = √h_t z_t`, `h_{t+1} = ω + (α + γ[ε_t < 0]) ε_t² + β h_t`, `h_1`
  arch's backcast. arch works on the returns times a power of ten `s` (`s r` has a standard
  deviation between 1 and 10: percent returns, s = 100, for an index; arch's optimizer is
  tuned for that scale); simkit's units are fractions: `omega = ω_s / s²`, and the
  log-likelihood of `r` is arch's plus `n ln s` (the density of `r` is `s` times that of
  `s r`). simkit simulates the mean `mu dt − h_t/2` (E[S_t] = S_0 e^{mu t} exactly), arch fits
  a constant `c`: `mu = (c + E h / 2) / dt`, `E h = omega / (1 − α − γ/2 − β)`, gives both the
  same unconditional mean of the log return; the likelihood is arch's, of its constant-mean
  model (on daily data the two means differ by `(h_t − E h)/2`, a small fraction of √h_t).
  `v0` is arch's forecast of the next day's variance, annualized (`h_{n+1} / dt`).
- IV: `x = ln IV` is an Ornstein–Uhlenbeck process, fitted by its exact AR(1)
  discretization `x_{t+1} = c + φ x_t + ε`, `φ = e^{−κ dt}`. Under GARCH (linked IV, its
  default) the OU process is `z_t = ln(IV_t / √(h_{t+1} / dt))`, IV over the conditional vol
  of the next day's return, fitted the same way: `vrp_kappa`, `vrp_long_run`, `vrp_eta`.

Comparable likelihoods: every model's log-likelihood is that of the same `n` daily log
returns `r_t = ln(S_t / S_{t−1})`, as fractions, every observation counted (GARCH's first
with arch's backcast variance), so log-likelihoods and AIC (`2k − 2 ln L`; k = 2 for GBM, 5
for Merton and GARCH) rank the models.

Standard errors come from the inverse Fisher information (closed form for GBM and the
AR(1), the numerical Hessian of the log-likelihood for Merton; arch's robust sandwich for
GARCH, the quasi-likelihood standard) carried to the reported parameters by the delta
method. Everything is NumPy/SciPy float64 (arch for GARCH); nothing here reads files (the
CLI does).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from scipy import optimize, special

__all__ = [
    "fit_garch",
    "fit_gbm",
    "fit_history",
    "fit_iv_ou",
    "fit_merton",
    "merton_loglik",
    "merton_looks_like_clustering",
    "to_toml_fragment",
]

TRADING_DAYS = 252
MODELS = ("gbm", "merton", "garch")
MERTON_PARAMS = ("mu", "sigma", "jump_intensity", "jump_mean", "jump_std")
GARCH_PARAMS = ("mu", "garch_omega", "garch_alpha", "garch_gamma", "garch_beta")
N_PARAMS = {"gbm": 2, "merton": 5, "garch": 5}  # AIC's k
FEW_RETURNS = 250  # below this many returns a fit is flagged (about a year of trading days)
# A Merton fit with more jumps than this a year, or jumps smaller than this (std of the log
# jump), is soaking up volatility clustering rather than finding jumps.
CLUSTERING_JUMPS_PER_YEAR = 50.0
CLUSTERING_JUMP_STD = 0.03

# Bounds of the Merton search in its working coordinates
# (mu, ln sigma, ln lambda, m, ln s): wide enough for any traded stock, tight enough
# to keep the mixture likelihood away from its degenerate spikes (sigma → 0).
_MERTON_BOUNDS = [
    (-50.0, 50.0),
    (math.log(1e-3), math.log(20.0)),
    (math.log(1e-3), math.log(TRADING_DAYS)),
    (-3.0, 3.0),
    (math.log(1e-3), math.log(5.0)),
]


# --------------------------------------------------------------------------- inputs


def _log_returns(close: Any) -> np.ndarray:
    """Daily log returns of a positive close series, with a clear error otherwise."""
    close = np.asarray(close, dtype=np.float64)
    if close.ndim != 1:
        raise ValueError(
            f"close must be one-dimensional (one price a day); got shape {close.shape}"
        )
    if close.size < 3:
        raise ValueError(f"close needs at least 3 prices to fit a model; got {close.size}")
    if not np.all(np.isfinite(close)) or np.any(close <= 0):
        raise ValueError("close must hold finite, strictly positive prices")
    return np.diff(np.log(close))


def _check_dt(dt: float) -> None:
    if not dt > 0:
        raise ValueError(f"dt must be a positive number of years (1/252 for daily); got {dt!r}")


def _aic(loglik: float, n_params: int) -> float:
    return 2.0 * n_params - 2.0 * loglik


# --------------------------------------------------------------------------- GBM


def fit_gbm(close: Any, dt: float = 1 / TRADING_DAYS) -> dict[str, Any]:
    """Closed-form MLE of geometric Brownian motion from daily closes.

    With `r̄` and `v̂ = mean((r − r̄)²)` the mean and MLE variance of the `n` log returns:
    `sigma = sqrt(v̂ / dt)`, `mu = r̄ / dt + sigma² / 2` (arithmetic drift, E[S_t] = S_0 e^{mu t}).
    Fisher information (r̄ and v̂ independent, Var r̄ = v/n, Var v̂ = 2v²/n) gives
    `se(sigma) = sigma / sqrt(2n)` and `se(mu) = sqrt(sigma² / (n dt) + sigma⁴ / (2n))`.

    Args:
      close: `(days,)` closing prices, positive.
      dt: years per row. Default value: 1/252.

    Returns:
      mapping with `model` ("gbm"), `mu`, `sigma`, `mu_se`, `sigma_se`, `loglik` (of the
      daily log returns), `aic` (k = 2), `n_returns`.
    """
    _check_dt(dt)
    returns = _log_returns(close)
    n = returns.size
    mean = float(returns.mean())
    var = float(((returns - mean) ** 2).mean())
    if var <= (1e-12 * mean) ** 2:  # zero up to the rounding of the logs
        raise ValueError("close has constant log returns; volatility cannot be estimated")
    sigma = math.sqrt(var / dt)
    mu = mean / dt + sigma**2 / 2
    loglik = -0.5 * n * (math.log(2 * math.pi * var) + 1)
    return {
        "model": "gbm",
        "mu": mu,
        "sigma": sigma,
        "mu_se": math.sqrt(sigma**2 / (n * dt) + sigma**4 / (2 * n)),
        "sigma_se": sigma / math.sqrt(2 * n),
        "loglik": loglik,
        "aic": _aic(loglik, 2),
        "n_returns": n,
    }


# --------------------------------------------------------------------------- Merton


def _jump_terms(jump_rate_per_step: float, max_jumps: int) -> int:
    """Number of Poisson terms to sum: at least `max_jumps`, more if the rate needs it."""
    needed = jump_rate_per_step + 10 * math.sqrt(jump_rate_per_step) + 10
    return max(max_jumps, int(math.ceil(needed)))


def merton_loglik(
    returns: np.ndarray,
    mu: float,
    sigma: float,
    jump_intensity: float,
    jump_mean: float,
    jump_std: float,
    dt: float = 1 / TRADING_DAYS,
    max_jumps: int = 10,
) -> float:
    """Log-likelihood of daily log returns under Merton's jump-diffusion.

    `f(r) = Σ_{j=0}^{J} Pois(j; λ dt) · N(r; (mu − σ²/2 − λk) dt + j m, σ² dt + j s²)`,
    `k = e^{m + s²/2} − 1`, truncated at `J = max_jumps` (more terms when `λ dt` is large
    enough for the tail to matter).
    """
    rate = jump_intensity * dt
    n_terms = _jump_terms(rate, max_jumps) + 1
    jumps = np.arange(n_terms, dtype=np.float64)
    k = math.expm1(jump_mean + jump_std**2 / 2)
    drift = (mu - sigma**2 / 2 - jump_intensity * k) * dt
    means = drift + jumps * jump_mean  # (J+1,)
    variances = sigma**2 * dt + jumps * jump_std**2
    if rate > 0:
        log_poisson = -rate + jumps * math.log(rate) - special.gammaln(jumps + 1)
    else:
        log_poisson = np.where(jumps == 0, 0.0, -np.inf)
    log_weights = log_poisson - 0.5 * np.log(2 * np.pi * variances)  # (J+1,)
    log_terms = log_weights - (returns[:, None] - means) ** 2 / (2 * variances)  # (n, J+1)
    peak = log_terms.max(axis=1, keepdims=True)
    return float((peak[:, 0] + np.log(np.exp(log_terms - peak).sum(axis=1))).sum())


def _merton_natural(theta: np.ndarray) -> tuple[float, float, float, float, float]:
    """Working coordinates (mu, ln σ, ln λ, m, ln s) → (mu, σ, λ, m, s)."""
    mu, log_sigma, log_lambda, jump_mean, log_jump_std = (float(v) for v in theta)
    return mu, math.exp(log_sigma), math.exp(log_lambda), jump_mean, math.exp(log_jump_std)


def _merton_starts(returns: np.ndarray, dt: float) -> list[np.ndarray]:
    """Starting points: a threshold jump detector plus a small grid around the GBM fit."""
    median = float(np.median(returns))
    robust_sd = 1.4826 * float(np.median(np.abs(returns - median)))
    robust_sd = max(robust_sd, 1e-8)
    years = returns.size * dt
    total_sd = float(returns.std())
    starts = []

    for threshold in (3.0, 4.0):
        outliers = np.abs(returns - median) > threshold * robust_sd
        n_jumps = int(outliers.sum())
        if n_jumps >= 2:
            sigma0 = float(returns[~outliers].std()) / math.sqrt(dt)
            lambda0 = n_jumps / years
            jump_mean0 = float(returns[outliers].mean())
            jump_std0 = max(float(returns[outliers].std()), robust_sd)
            mu0 = float(returns.mean()) / dt + (total_sd**2 / dt) / 2
            starts.append(
                np.array(
                    [mu0, math.log(sigma0), math.log(lambda0), jump_mean0, math.log(jump_std0)]
                )
            )

    mu_gbm = float(returns.mean()) / dt + total_sd**2 / dt / 2
    sigma_gbm = total_sd / math.sqrt(dt)
    for lambda0, sigma_share, jump_mean_sign in ((1.0, 0.9, -1), (10.0, 0.7, 0), (50.0, 0.5, 1)):
        jump_std0 = 3 * robust_sd
        starts.append(
            np.array(
                [
                    mu_gbm,
                    math.log(max(sigma_share * sigma_gbm, 1e-3)),
                    math.log(lambda0),
                    jump_mean_sign * 2 * robust_sd,
                    math.log(jump_std0),
                ]
            )
        )
    lower = np.array([b[0] for b in _MERTON_BOUNDS])
    upper = np.array([b[1] for b in _MERTON_BOUNDS])
    return [np.clip(s, lower + 1e-9, upper - 1e-9) for s in starts]


def _numerical_hessian(f, theta: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Central-difference Hessian of a scalar function."""
    n = theta.size
    hessian = np.empty((n, n))
    f0 = f(theta)
    for i in range(n):
        e_i = np.zeros(n)
        e_i[i] = steps[i]
        hessian[i, i] = (f(theta + e_i) - 2 * f0 + f(theta - e_i)) / steps[i] ** 2
        for j in range(i):
            e_j = np.zeros(n)
            e_j[j] = steps[j]
            value = (
                f(theta + e_i + e_j)
                - f(theta + e_i - e_j)
                - f(theta - e_i + e_j)
                + f(theta - e_i - e_j)
            ) / (4 * steps[i] * steps[j])
            hessian[i, j] = hessian[j, i] = value
    return hessian


def _merton_optimum(
    negative_loglik: Callable[[np.ndarray], float], returns: np.ndarray, dt: float
) -> optimize.OptimizeResult:
    """The lowest negative log-likelihood found: L-BFGS-B from each of `_merton_starts`, the
    best polished by Nelder-Mead (kept if lower), in the working coordinates."""
    best = None
    for start in _merton_starts(returns, dt):
        with np.errstate(all="ignore"):
            result = optimize.minimize(
                negative_loglik, start, method="L-BFGS-B", bounds=_MERTON_BOUNDS
            )
        if best is None or result.fun < best.fun:
            best = result
    with np.errstate(all="ignore"):
        polished = optimize.minimize(
            negative_loglik,
            best.x,
            method="Nelder-Mead",
            bounds=_MERTON_BOUNDS,
            options={"xatol": 1e-6, "fatol": 1e-8, "maxiter": 4000},
        )
    if polished.fun < best.fun:
        best = polished
    return best


def _merton_working_se(
    negative_loglik: Callable[[np.ndarray], float], theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(standard errors of the working coordinates `(5,)`, which of them sit on a search bound
    `(5,)` bool): the inverse numerical Hessian's diagonal, NaN where the Hessian is not
    positive definite or the estimate is on a bound."""
    lower = np.array([b[0] for b in _MERTON_BOUNDS])
    upper = np.array([b[1] for b in _MERTON_BOUNDS])
    on_bound = (theta - lower < 1e-3) | (upper - theta < 1e-3)

    steps = 1e-4 * np.maximum(1.0, np.abs(theta))
    hessian = _numerical_hessian(negative_loglik, theta, steps)
    working_se = np.full(theta.size, np.nan)
    try:
        np.linalg.cholesky(hessian)
        working_se = np.sqrt(np.diag(np.linalg.inv(hessian)))
    except np.linalg.LinAlgError:
        pass
    working_se[on_bound] = np.nan
    return working_se, on_bound


def fit_merton(close: Any, dt: float = 1 / TRADING_DAYS, max_jumps: int = 10) -> dict[str, Any]:
    """Maximum-likelihood fit of Merton's jump-diffusion to daily closes.

    The Poisson-mixture likelihood (`merton_loglik`) is maximised with L-BFGS-B in the
    working coordinates (mu, ln σ, ln λ, m, ln s) from several starts (a threshold jump
    detector and a grid around the GBM fit), then polished with Nelder–Mead from the best;
    the best optimum wins. Standard errors come from the inverse of the numerical Hessian
    of the negative log-likelihood in working coordinates, mapped to (σ, λ, s) by the
    delta method (`se(σ) = σ · se(ln σ)`). An SE is NaN where the Hessian is not positive
    definite or the estimate sits on a search bound (e.g. no jumps in GBM data: λ → its
    lower bound, m and s unidentified).

    Args:
      close: `(days,)` closing prices, positive.
      dt: years per row. Default value: 1/252.
      max_jumps: Poisson terms kept in the mixture (at least). Default value: 10.

    Returns:
      mapping with `model` ("merton"), `mu`, `sigma`, `jump_intensity` (per year),
      `jump_mean`, `jump_std` (of the log jump), each with `_se`; `loglik`, `aic` (k = 5),
      `n_returns`, `converged` (bool), `at_bound` (names of parameters on a bound).
    """
    _check_dt(dt)
    returns = _log_returns(close)

    def negative_loglik(theta: np.ndarray) -> float:
        value = -merton_loglik(returns, *_merton_natural(theta), dt=dt, max_jumps=max_jumps)
        return value if math.isfinite(value) else 1e300

    best = _merton_optimum(negative_loglik, returns, dt)
    theta = np.asarray(best.x, dtype=np.float64)
    working_se, on_bound = _merton_working_se(negative_loglik, theta)

    mu, sigma, jump_intensity, jump_mean, jump_std = _merton_natural(theta)
    loglik = -float(best.fun)
    return {
        "model": "merton",
        "mu": mu,
        "sigma": sigma,
        "jump_intensity": jump_intensity,
        "jump_mean": jump_mean,
        "jump_std": jump_std,
        "mu_se": float(working_se[0]),
        "sigma_se": sigma * float(working_se[1]),
        "jump_intensity_se": jump_intensity * float(working_se[2]),
        "jump_mean_se": float(working_se[3]),
        "jump_std_se": jump_std * float(working_se[4]),
        "loglik": loglik,
        "aic": _aic(loglik, 5),
        "n_returns": returns.size,
        "converged": bool(best.success),
        "at_bound": [name for name, flag in zip(MERTON_PARAMS, on_bound, strict=True) if flag],
    }


def merton_looks_like_clustering(fit: dict[str, Any]) -> bool:
    """Whether a Merton fit's jumps look like volatility clustering, not jumps: more than
    `CLUSTERING_JUMPS_PER_YEAR` a year, or a log-jump std below `CLUSTERING_JUMP_STD` (the
    mixture then models the fat tails of calm and wild days, which GARCH explains)."""
    return bool(
        fit["jump_intensity"] > CLUSTERING_JUMPS_PER_YEAR or fit["jump_std"] < CLUSTERING_JUMP_STD
    )


# --------------------------------------------------------------------------- GARCH


def _garch_scale(returns: np.ndarray) -> float:
    """The power of ten s that puts the standard deviation of `s r` in [1, 10)."""
    sd = float(returns.std())
    if not sd > 0:
        raise ValueError("close has constant log returns; volatility cannot be estimated")
    return 10.0 ** math.ceil(-math.log10(sd))


def _arch_gjr_garch(returns: np.ndarray, scale: float) -> Any:
    """arch's fit (its `ARCHModelResult`) of a constant-mean GJR-GARCH(1,1) with normal
    innovations to `scale * returns`; convergence is read from the result, not printed."""
    from arch import arch_model  # imported here: only this fit needs arch (and pandas)

    model = arch_model(
        scale * returns, mean="Constant", vol="GARCH", p=1, o=1, q=1, dist="normal", rescale=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is reported below, not printed
        return model.fit(disp="off", show_warning=False)


def _stationary_persistence(alpha: float, gamma: float, beta: float) -> float:
    """alpha + gamma/2 + beta, checked below 1 (simkit simulates a stationary variance only)."""
    persistence = alpha + 0.5 * gamma + beta
    if not persistence < 1.0:
        raise ValueError(
            f"the GARCH fit has persistence alpha + gamma/2 + beta = {persistence:.6f}, not "
            "below 1: its variance has no stationary law (an integrated GARCH), which simkit "
            "does not simulate"
        )
    return persistence


def _garch_mu(
    c: float, mean_h: float, persistence: float, cov: np.ndarray, scale: float, dt: float
) -> tuple[float, float]:
    """(mu, its standard error): the annual drift whose log return has arch's constant mean `c`
    (module doc), by the delta method on arch's covariance of (c, omega_s, alpha, gamma, beta)."""
    mu = (c / scale + 0.5 * mean_h) / dt
    # d mu / d (c, omega_s, alpha, gamma, beta) for the delta method
    d_mean_h = mean_h / (1.0 - persistence)  # d E h / d persistence
    d_mean_h_d_omega = 1.0 / (scale**2 * (1.0 - persistence))
    grad_mu = np.array(
        [1.0 / scale, 0.5 * d_mean_h_d_omega, 0.5 * d_mean_h, 0.25 * d_mean_h, 0.5 * d_mean_h]
    )
    grad_mu /= dt
    return mu, float(math.sqrt(max(grad_mu @ cov @ grad_mu, 0.0)))


def fit_garch(close: Any, dt: float = 1 / TRADING_DAYS) -> dict[str, Any]:
    """Maximum-likelihood fit of GJR-GARCH(1,1) with normal innovations by `arch`.

    The model, the scaling, the units and the drift mapping are in the module doc. Standard
    errors: arch's robust (sandwich) covariance, by the delta method for `mu` and divided by
    `s²` for `garch_omega`.

    Args:
      close: `(days,)` closing prices, positive.
      dt: years per row. Default value: 1/252.

    Returns:
      mapping with `model` ("garch"), `mu` (annual, E[S_t] = S_0 e^{mu t}), `garch_omega`
      (daily variance, fractions), `garch_alpha`, `garch_gamma`, `garch_beta`, each with `_se`;
      `v0` (annual variance of the day after the data: arch's one-step forecast over dt),
      `persistence` (α + γ/2 + β), `long_run_vol` (annual, √(E h / dt)), `half_life_days`
      (ln 2 / −ln persistence), `variance_next` (`(n + 1,)` annual variance of the return after
      each day, h_{t+1} / dt, for linked IV), `loglik` (of the log returns as fractions), `aic`
      (k = 5), `n_returns`, `converged` (arch's optimizer), `scale` (s).

    Raises:
      ValueError: bad closes, or a fit whose persistence is not below 1 (no stationary
        variance: simkit cannot simulate it).
    """
    _check_dt(dt)
    returns = _log_returns(close)
    n = returns.size
    scale = _garch_scale(returns)
    result = _arch_gjr_garch(returns, scale)
    c, omega_s, alpha, gamma, beta = (float(v) for v in result.params.to_numpy())
    cov = np.asarray(result.param_cov, dtype=np.float64)
    persistence = _stationary_persistence(alpha, gamma, beta)
    omega = omega_s / scale**2
    mean_h = omega / (1.0 - persistence)
    mu, mu_se = _garch_mu(c, mean_h, persistence, cov, scale, dt)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    forecast = result.forecast(horizon=1, reindex=False).variance.to_numpy()[-1, 0]
    fitted = np.asarray(result.conditional_volatility, dtype=np.float64) ** 2  # h_1 .. h_n
    variance_next = np.append(fitted, forecast) / scale**2 / dt  # after day 0 .. day n
    loglik = float(result.loglikelihood) + n * math.log(scale)
    return {
        "model": "garch",
        "mu": mu,
        "garch_omega": omega,
        "garch_alpha": alpha,
        "garch_gamma": gamma,
        "garch_beta": beta,
        "mu_se": mu_se,
        "garch_omega_se": float(se[1]) / scale**2,
        "garch_alpha_se": float(se[2]),
        "garch_gamma_se": float(se[3]),
        "garch_beta_se": float(se[4]),
        "v0": float(forecast) / scale**2 / dt,
        "persistence": persistence,
        "long_run_vol": math.sqrt(mean_h / dt),
        "half_life_days": math.log(2.0) / -math.log(persistence) if persistence > 0 else 0.0,
        "variance_next": variance_next,
        "loglik": loglik,
        "aic": _aic(loglik, N_PARAMS["garch"]),
        "n_returns": n,
        "converged": int(result.convergence_flag) == 0,
        "scale": scale,
    }


# --------------------------------------------------------------------------- IV process


def _check_iv(iv: Any) -> np.ndarray:
    """`iv` as float64 `(days,)`, checked: at least 4 values, finite and positive."""
    iv = np.asarray(iv, dtype=np.float64)
    if iv.ndim != 1 or iv.size < 4:
        raise ValueError(f"iv must be one-dimensional with at least 4 values; got shape {iv.shape}")
    if not np.all(np.isfinite(iv)) or np.any(iv <= 0):
        raise ValueError("iv must hold finite, strictly positive volatilities (fractions)")
    return iv


class _AR1(NamedTuple):
    """The least-squares fit of `x_{t+1} = c + phi x_t + e` to a series `x`."""

    design: np.ndarray  # (n, 2): ones and x_t
    c: float
    phi: float
    residuals: np.ndarray  # (n,)
    var: float  # MLE variance of e (mean of the squared residuals)
    n: int  # pairs (x_t, x_{t+1})


def _ar1(x: np.ndarray) -> _AR1:
    """The AR(1) fit of `x` (ln IV), checked mean-reverting (0 < phi < 1) with variation."""
    x_prev, x_next = x[:-1], x[1:]
    n = x_next.size
    design = np.column_stack([np.ones(n), x_prev])
    coef, *_ = np.linalg.lstsq(design, x_next, rcond=None)
    c, phi = (float(v) for v in coef)
    residuals = x_next - design @ coef
    var = float((residuals**2).mean())
    if not 0 < phi < 1:
        raise ValueError(
            f"the ln IV history shows no mean reversion (AR(1) coefficient {phi:.4f} is not in "
            "(0, 1)); an Ornstein-Uhlenbeck fit does not apply"
        )
    if var <= 0:
        raise ValueError("iv has no variation around its AR(1) fit; eta cannot be estimated")
    return _AR1(design, c, phi, residuals, var, n)


def _ou_standard_errors(
    ar1: _AR1, kappa: float, log_level: float, eta: float, dt: float
) -> tuple[float, float, float]:
    """Standard errors of (kappa, iv_long_run, eta): the delta method on the covariance of
    (c, phi, v), `Cov(c, phi) = v (X'X)^-1` and `Var v = 2 v^2 / n`."""
    c, phi, var = ar1.c, ar1.phi, ar1.var
    cov_c_phi = var * np.linalg.inv(ar1.design.T @ ar1.design)
    cov = np.zeros((3, 3))  # (c, phi, v)
    cov[:2, :2] = cov_c_phi
    cov[2, 2] = 2 * var**2 / ar1.n
    dkappa_dphi = -1 / (phi * dt)
    grad_kappa = np.array([0.0, dkappa_dphi, 0.0])
    grad_level = math.exp(log_level) * np.array([1 / (1 - phi), c / (1 - phi) ** 2, 0.0])
    dlog_eta_dphi = 0.5 * (dkappa_dphi / kappa + 2 * phi / (1 - phi**2))
    grad_eta = eta * np.array([0.0, dlog_eta_dphi, 0.5 / var])

    def delta_se(grad: np.ndarray) -> float:
        return float(math.sqrt(grad @ cov @ grad))

    return delta_se(grad_kappa), delta_se(grad_level), delta_se(grad_eta)


def _iv_spot_corr(residuals: np.ndarray, close: Any) -> tuple[float, float]:
    """(rho, its standard error): the correlation of the AR(1) residuals `(n,)` with the
    demeaned spot log returns of the same days, SE `(1 - rho^2) / sqrt(n - 3)` (Fisher z)."""
    n = residuals.size
    returns = _log_returns(close)
    if returns.size != n:
        raise ValueError(
            f"close and iv must cover the same days; got {returns.size + 1} closes and {n + 1} IVs"
        )
    spot_residuals = returns - returns.mean()
    rho = float(np.corrcoef(residuals, spot_residuals)[0, 1])
    return rho, (1 - rho**2) / math.sqrt(max(n - 3, 1))


def fit_iv_ou(iv: Any, dt: float = 1 / TRADING_DAYS, close: Any | None = None) -> dict[str, Any]:
    """Fit the log-Ornstein–Uhlenbeck IV process by its exact AR(1) discretization.

    `x = ln IV`, `dx = κ (ln L − x) dt + η dW` is exactly `x_{t+1} = c + φ x_t + ε`,
    `φ = e^{−κ dt}`, `c = (1 − φ) ln L`, `Var ε = η² (1 − φ²) / (2κ)`. The conditional MLE
    is least squares; `Cov(ĉ, φ̂) = v̂ (XᵀX)⁻¹`, `Var v̂ = 2 v̂² / n`, and the delta method
    gives the SEs of `kappa`, `iv_long_run` (= L, the stationary median of IV) and `eta`.

    With `close` (same days as `iv`), `iv_spot_corr` is the Pearson correlation of the
    AR(1) residuals with the demeaned spot log returns of the same days, SE
    `(1 − ρ²)/sqrt(n − 3)` (Fisher z). Jump days are not removed: under a Merton market
    with `iv_jump_beta ≠ 0` they pull the figure toward the jump co-movement.

    Args:
      iv: `(days,)` implied volatilities as fractions (4.25 = 425 %), positive.
      dt: years per row. Default value: 1/252.
      close: optional `(days,)` closing prices on the same days.

    Returns:
      mapping with `kappa` (1/year), `iv_long_run`, `eta` (1/sqrt(year)), each with `_se`,
      `iv_loglik` (conditional, of ln IV changes), `n_obs`; plus `iv_spot_corr` and
      `iv_spot_corr_se` when `close` is given.
    """
    _check_dt(dt)
    x = np.log(_check_iv(iv))
    ar1 = _ar1(x)
    c, phi, var, n = ar1.c, ar1.phi, ar1.var, ar1.n
    kappa = -math.log(phi) / dt
    log_level = c / (1 - phi)
    eta = math.sqrt(2 * kappa * var / (1 - phi**2))
    kappa_se, level_se, eta_se = _ou_standard_errors(ar1, kappa, log_level, eta, dt)
    result: dict[str, Any] = {
        "kappa": kappa,
        "iv_long_run": math.exp(log_level),
        "eta": eta,
        "kappa_se": kappa_se,
        "iv_long_run_se": level_se,
        "eta_se": eta_se,
        "iv_loglik": -0.5 * n * (math.log(2 * math.pi * var) + 1),
        "n_obs": n,
    }
    if close is not None:
        result["iv_spot_corr"], result["iv_spot_corr_se"] = _iv_spot_corr(ar1.residuals, close)
    return result


# --------------------------------------------------------------------------- history


_IV_KEYS = ("kappa", "iv_long_run", "eta", "iv_spot_corr")  # independent IV (gbm, merton)
_LINKED_IV_KEYS = {"vrp_kappa": "kappa", "vrp_long_run": "iv_long_run", "vrp_eta": "eta"}
_GARCH_RECORD = ("persistence", "long_run_vol", "half_life_days", "converged")


def fit_history(
    close: Any,
    iv: Any | None = None,
    model: str = "gbm",
    dt: float = 1 / TRADING_DAYS,
) -> dict[str, Any]:
    """Fit a market model (and the IV process when `iv` is given) to a daily history.

    Returns:
      mapping with the scenario's `[market]` keys: `model`, `mu`, and `sigma` (gbm, merton),
      `jump_intensity`, `jump_mean`, `jump_std` (merton), `garch_omega`, `garch_alpha`,
      `garch_gamma`, `garch_beta`, `v0` (garch); keys a model does not read are left out (the
      scenario's own apply). With `iv`: `iv0` (the last IV) and the IV process: `kappa`,
      `iv_long_run`, `eta`, `iv_spot_corr` (independent IV: gbm, merton) or `vrp_kappa`,
      `vrp_long_run`, `vrp_eta` (linked IV: garch). `se` maps each fitted key to its standard
      error; `fit` holds `loglik` and `aic` of the daily log returns, `n_returns`, with `iv` the
      IV fit's `iv_loglik`, and for garch `persistence`, `long_run_vol`, `half_life_days`,
      `converged`.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {model!r}")
    if model == "gbm":
        spot_fit, keys = fit_gbm(close, dt), ["mu", "sigma"]
    elif model == "merton":
        spot_fit, keys = fit_merton(close, dt), list(MERTON_PARAMS)
    else:
        spot_fit, keys = fit_garch(close, dt), list(GARCH_PARAMS)
    result: dict[str, Any] = {"model": model}
    result.update({key: spot_fit[key] for key in keys})
    if model == "garch":
        result["v0"] = spot_fit["v0"]
    standard_errors = {key: spot_fit[f"{key}_se"] for key in keys}
    fit = {
        "loglik": spot_fit["loglik"],
        "aic": spot_fit["aic"],
        "n_returns": spot_fit["n_returns"],
    }
    if model == "garch":
        fit.update({key: spot_fit[key] for key in _GARCH_RECORD})
    if iv is not None:
        iv = np.asarray(iv, dtype=np.float64)
        if model == "garch":
            variance_next = spot_fit["variance_next"]
            if iv.shape != variance_next.shape:
                raise ValueError(
                    f"close and iv must cover the same days; got {variance_next.size} closes "
                    f"and {iv.size} IVs"
                )
            # e^{z_t} = IV_t / sqrt(v_{t+1}): IV over the conditional vol of the next day
            iv_fit = fit_iv_ou(iv / np.sqrt(variance_next), dt)
            for key, source in _LINKED_IV_KEYS.items():
                result[key] = iv_fit[source]
                standard_errors[key] = iv_fit[f"{source}_se"]
        else:
            iv_fit = fit_iv_ou(iv, dt, close=close)
            for key in _IV_KEYS:
                result[key] = iv_fit[key]
                standard_errors[key] = iv_fit[f"{key}_se"]
        result["iv0"] = float(iv[-1])
        fit["iv_loglik"] = iv_fit["iv_loglik"]
    result["se"] = standard_errors
    result["fit"] = fit
    return result


def _toml_value(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return repr(int(value))
    if isinstance(value, float | np.floating):
        return repr(float(value))  # repr gives nan / inf / -inf, all valid TOML
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    raise TypeError(f"cannot write {type(value).__name__} value {value!r} to TOML")


def to_toml_fragment(
    result: dict[str, Any],
    provenance: dict[str, Any] | None = None,
    notes: list[str] | tuple[str, ...] = (),
) -> str:
    """A `[market]` table and a `[fit]` table from a `fit_history` result, as TOML text that
    loads into a scenario as written (a scenario accepts `[fit]` as a record and ignores it).

    `[fit]` holds `provenance` first (e.g. the history file, the close column, the dates), then
    `loglik`, `aic`, `n_returns` (and `iv_loglik`, GARCH's derived figures) and one `KEY_se`
    line per fitted key. `notes` become comment lines at the top, with what the fragment leaves
    to the scenario (`s0`; `iv0` and the IV process without an IV column) and why. Floats are
    written with `repr`, so they read back exactly.
    """
    lines = ["# simkit calibrate market: maximum likelihood on daily log returns"]
    lines += [f"# {note}" for note in notes]
    lines.append(
        "# s0 is not written: the fit is scale-free (log returns) and the scenario's strikes "
        "are dollars at its own s0."
    )
    if "iv0" not in result:
        iv_keys = (
            "vrp_long_run, vrp_kappa, vrp_eta"
            if result.get("model") == "garch"
            else "kappa, iv_long_run, eta, iv_spot_corr"
        )
        lines.append(
            f"# iv0 and the IV process ({iv_keys}) are not written: the history has no iv "
            "column, and closes say nothing about option prices, so the scenario's own values "
            "apply (iv0 default 4.2517, the seed's 425 %)."
        )
    lines.append("[market]")
    for key, value in result.items():
        if key in ("se", "fit"):
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    lines += ["", "[fit]"]
    for key, value in {**(provenance or {}), **result.get("fit", {})}.items():
        lines.append(f"{key} = {_toml_value(value)}")
    for key, value in result.get("se", {}).items():
        lines.append(f"{key}_se = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
