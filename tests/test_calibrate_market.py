"""Tests of simkit.calibrate_market: recovery of known parameters from synthetic histories."""

import math
import tomllib

import numpy as np
import pytest
from scipy import integrate, stats

from simkit import calibrate_market as cm

DT = 1 / 252


def merton_history(seed, years, mu, sigma, jump_intensity=0.0, jump_mean=0.0, jump_std=0.0):
    """Daily closes of a (jump-)diffusion, log-exact, drift compensated: E[S_t] = S0 e^{mu t}."""
    rng = np.random.default_rng(seed)
    n = int(years * 252)
    k = math.expm1(jump_mean + jump_std**2 / 2)
    n_jumps = rng.poisson(jump_intensity * DT, n)
    returns = (
        (mu - sigma**2 / 2 - jump_intensity * k) * DT
        + sigma * math.sqrt(DT) * rng.standard_normal(n)
        + n_jumps * jump_mean
        + np.sqrt(n_jumps) * jump_std * rng.standard_normal(n)
    )
    return 3.0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))


def iv_spot_history(seed, years, kappa, iv_long_run, eta, iv_spot_corr, mu=0.05, sigma=1.9):
    """Daily closes and log-OU implied vols whose shocks are correlated `iv_spot_corr`."""
    rng = np.random.default_rng(seed)
    n = int(years * 252)
    z_spot = rng.standard_normal(n)
    z_iv = iv_spot_corr * z_spot + math.sqrt(1 - iv_spot_corr**2) * rng.standard_normal(n)
    phi = math.exp(-kappa * DT)
    shock_sd = eta * math.sqrt((1 - phi**2) / (2 * kappa))
    x = np.empty(n + 1)
    x[0] = math.log(iv_long_run)
    for t in range(n):
        x[t + 1] = math.log(iv_long_run) + phi * (x[t] - math.log(iv_long_run)) + shock_sd * z_iv[t]
    returns = (mu - sigma**2 / 2) * DT + sigma * math.sqrt(DT) * z_spot
    close = 3.0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    return close, np.exp(x)


MERTON_TRUE = {
    "mu": 0.05,
    "sigma": 1.0,
    "jump_intensity": 4.0,
    "jump_mean": -0.25,
    "jump_std": 0.35,
}
IV_TRUE = {"kappa": 6.0, "iv_long_run": 2.17, "eta": 1.0, "iv_spot_corr": -0.5}


@pytest.fixture(scope="module")
def gbm_close():
    return merton_history(11, 20, mu=0.05, sigma=1.9)


@pytest.fixture(scope="module")
def merton_close():
    return merton_history(12, 30, **MERTON_TRUE)


@pytest.fixture(scope="module")
def merton_fit(merton_close):
    return cm.fit_merton(merton_close)


# --------------------------------------------------------------------------- GBM


def test_fit_gbm_recovers_parameters(gbm_close):
    fit = cm.fit_gbm(gbm_close)
    assert fit["model"] == "gbm"
    assert abs(fit["sigma"] - 1.9) < 3 * fit["sigma_se"]
    assert abs(fit["mu"] - 0.05) < 3 * fit["mu_se"]
    assert fit["n_returns"] == 20 * 252
    # se(mu) ≈ sigma / sqrt(years): a drift is barely identifiable from 20 years.
    assert fit["mu_se"] == pytest.approx(1.9 / math.sqrt(20), rel=0.05)


def test_fit_gbm_loglik_is_the_normal_loglik_at_the_mle(gbm_close):
    fit = cm.fit_gbm(gbm_close)
    returns = np.diff(np.log(gbm_close))
    mean = (fit["mu"] - fit["sigma"] ** 2 / 2) * DT
    expected = stats.norm.logpdf(returns, mean, fit["sigma"] * math.sqrt(DT)).sum()
    assert fit["loglik"] == pytest.approx(expected, rel=1e-12)
    assert fit["aic"] == pytest.approx(4 - 2 * expected, rel=1e-12)
    # The MLE maximises the likelihood: nudging either parameter lowers it.
    for d_mu, d_sigma in ((0.1, 0), (-0.1, 0), (0, 0.01), (0, -0.01)):
        nudged = stats.norm.logpdf(
            returns,
            (fit["mu"] + d_mu - (fit["sigma"] + d_sigma) ** 2 / 2) * DT,
            (fit["sigma"] + d_sigma) * math.sqrt(DT),
        ).sum()
        assert nudged < fit["loglik"]


def test_fit_gbm_standard_errors_match_replication():
    sigmas, mus, fits = [], [], []
    for seed in range(200):
        fit = cm.fit_gbm(merton_history(100 + seed, 2, mu=0.05, sigma=0.5))
        sigmas.append(fit["sigma"])
        mus.append(fit["mu"])
        fits.append(fit)
    assert np.std(sigmas, ddof=1) == pytest.approx(np.mean([f["sigma_se"] for f in fits]), rel=0.15)
    assert np.std(mus, ddof=1) == pytest.approx(np.mean([f["mu_se"] for f in fits]), rel=0.15)


@pytest.mark.parametrize(
    ("close", "message"),
    [
        (np.array([1.0, 2.0]), "at least 3"),
        (np.array([1.0, -2.0, 3.0]), "positive"),
        (np.array([[1.0, 2.0, 3.0]]), "one-dimensional"),
        (np.array([1.0, np.nan, 3.0]), "finite"),
        (np.array([1.0, 2.0, 4.0, 8.0]), "constant"),
    ],
)
def test_fit_gbm_rejects_bad_history(close, message):
    with pytest.raises(ValueError, match=message):
        cm.fit_gbm(close)


# --------------------------------------------------------------------------- Merton


def test_merton_density_integrates_to_one():
    def density(r):
        return math.exp(cm.merton_loglik(np.array([r]), 0.05, 1.0, 4.0, -0.25, 0.35))

    total, _ = integrate.quad(density, -5, 5, points=[-0.25, 0.0], limit=200)
    assert total == pytest.approx(1.0, abs=1e-8)


def test_merton_loglik_without_jumps_is_gbm(gbm_close):
    returns = np.diff(np.log(gbm_close))
    gbm = cm.fit_gbm(gbm_close)
    assert cm.merton_loglik(returns, gbm["mu"], gbm["sigma"], 0.0, -0.2, 0.3) == pytest.approx(
        gbm["loglik"], rel=1e-12
    )


def test_merton_mean_is_compensated():
    """E[e^r] = e^{mu dt}: the drift compensation of docs/MODELLING.md "Market model", by
    quadrature."""

    def weighted(r):
        return math.exp(r + cm.merton_loglik(np.array([r]), 0.3, 1.0, 4.0, -0.25, 0.35))

    mean_growth, _ = integrate.quad(weighted, -5, 5, points=[-0.25, 0.0], limit=200)
    assert mean_growth == pytest.approx(math.exp(0.3 * DT), rel=1e-8)


def test_fit_merton_recovers_parameters(merton_fit):
    assert merton_fit["model"] == "merton"
    assert merton_fit["at_bound"] == []
    for key, true in MERTON_TRUE.items():
        se = merton_fit[f"{key}_se"]
        assert np.isfinite(se) and se > 0, key
        assert abs(merton_fit[key] - true) < 4 * se, (key, merton_fit[key], se)
    assert merton_fit["sigma"] == pytest.approx(1.0, rel=0.05)
    assert merton_fit["jump_intensity"] == pytest.approx(4.0, rel=0.4)
    assert merton_fit["jump_mean"] == pytest.approx(-0.25, abs=0.15)
    assert merton_fit["jump_std"] == pytest.approx(0.35, abs=0.1)


def test_fit_merton_is_a_maximum(merton_close, merton_fit):
    returns = np.diff(np.log(merton_close))
    best = [merton_fit[key] for key in MERTON_TRUE]
    assert cm.merton_loglik(returns, *best) == pytest.approx(merton_fit["loglik"], rel=1e-12)
    assert merton_fit["loglik"] >= cm.merton_loglik(returns, *MERTON_TRUE.values())


def test_aic_prefers_merton_on_merton_data(merton_close, merton_fit):
    assert merton_fit["aic"] < cm.fit_gbm(merton_close)["aic"] - 100


def test_aic_prefers_gbm_on_gbm_data(gbm_close):
    merton = cm.fit_merton(gbm_close)
    gbm = cm.fit_gbm(gbm_close)
    # Nested models: Merton's likelihood is at least GBM's, but not by enough to pay for
    # three more parameters (AIC allows 6).
    assert merton["loglik"] >= gbm["loglik"] - 1e-6
    assert merton["aic"] > gbm["aic"] - 2
    assert merton["sigma"] == pytest.approx(1.9, rel=0.1)


# --------------------------------------------------------------------------- IV process


@pytest.fixture(scope="module")
def iv_history():
    return iv_spot_history(21, 20, **IV_TRUE)


def test_fit_iv_ou_recovers_parameters(iv_history):
    close, iv = iv_history
    fit = cm.fit_iv_ou(iv, close=close)
    for key, true in IV_TRUE.items():
        se = fit[f"{key}_se"]
        assert np.isfinite(se) and se > 0, key
        assert abs(fit[key] - true) < 4 * se, (key, fit[key], se)
    assert fit["kappa"] == pytest.approx(6.0, rel=0.35)
    assert fit["iv_long_run"] == pytest.approx(2.17, rel=0.15)
    assert fit["eta"] == pytest.approx(1.0, rel=0.05)
    assert fit["iv_spot_corr"] == pytest.approx(-0.5, abs=0.05)
    assert "iv_spot_corr" not in cm.fit_iv_ou(iv)


def test_fit_iv_ou_standard_errors_match_replication():
    kappas, etas, fits = [], [], []
    for seed in range(150):
        _, iv = iv_spot_history(300 + seed, 10, **IV_TRUE)
        fit = cm.fit_iv_ou(iv)
        kappas.append(fit["kappa"])
        etas.append(fit["eta"])
        fits.append(fit)
    assert np.std(kappas, ddof=1) == pytest.approx(np.mean([f["kappa_se"] for f in fits]), rel=0.2)
    assert np.std(etas, ddof=1) == pytest.approx(np.mean([f["eta_se"] for f in fits]), rel=0.2)


def test_fit_iv_ou_rejects_random_walk_and_mismatch():
    rng = np.random.default_rng(5)
    trending = np.exp(np.cumsum(0.01 + 0.001 * rng.standard_normal(500)))
    with pytest.raises(ValueError, match="mean reversion"):
        cm.fit_iv_ou(trending)
    with pytest.raises(ValueError, match="same days"):
        _, iv = iv_spot_history(6, 1, **IV_TRUE)
        cm.fit_iv_ou(iv, close=np.ones(iv.size - 1) + rng.random(iv.size - 1))
    with pytest.raises(ValueError, match="positive"):
        cm.fit_iv_ou(np.array([1.0, 2.0, -1.0, 2.0]))


# --------------------------------------------------------------------------- history + TOML


def test_fit_history_gbm_with_iv(iv_history):
    close, iv = iv_history
    result = cm.fit_history(close, iv=iv)
    market_keys = {"model", "mu", "sigma", "kappa", "iv_long_run", "eta", "iv_spot_corr"}
    assert set(result) == market_keys | {"iv0", "se", "fit"}
    assert result["model"] == "gbm"
    assert result["iv0"] == iv[-1]  # the data's last IV: the scenario starts where it ends
    assert set(result["se"]) == market_keys - {"model"}
    assert set(result["fit"]) == {"loglik", "aic", "n_returns", "iv_loglik"}
    assert result["fit"]["aic"] == pytest.approx(cm.fit_gbm(close)["aic"])


def test_fit_history_merton_keys(merton_close, merton_fit, monkeypatch):
    monkeypatch.setattr(cm, "fit_merton", lambda close, dt: merton_fit)  # already fitted
    result = cm.fit_history(merton_close, model="merton")
    assert set(result) == {"model", *MERTON_TRUE, "se", "fit"}
    assert result["model"] == "merton"
    assert result["fit"]["loglik"] == merton_fit["loglik"]
    assert result["se"]["jump_std"] == merton_fit["jump_std_se"]


def test_fit_history_rejects_unknown_model(gbm_close):
    with pytest.raises(ValueError, match="gbm, merton"):
        cm.fit_history(gbm_close, model="heston")


def test_toml_fragment_round_trips(iv_history):
    close, iv = iv_history
    result = cm.fit_history(close, iv=iv)
    result["se"]["mu"] = float("nan")  # an unidentified SE must still be valid TOML
    parsed = tomllib.loads(cm.to_toml_fragment(result))
    assert set(parsed) == {"market", "fit"}
    for key in ("model", "mu", "sigma", "kappa", "iv_long_run", "eta", "iv_spot_corr"):
        assert parsed["market"][key] == result[key]  # repr floats read back exactly
    assert parsed["fit"]["loglik"] == result["fit"]["loglik"]
    assert parsed["fit"]["aic"] == result["fit"]["aic"]
    assert parsed["fit"]["n_returns"] == 20 * 252
    assert parsed["fit"]["sigma_se"] == result["se"]["sigma"]
    assert math.isnan(parsed["fit"]["mu_se"])


def test_toml_fragment_merton(merton_fit):
    result = {key: merton_fit[key] for key in ("model", *MERTON_TRUE)}
    result["se"] = {key: np.float64(merton_fit[f"{key}_se"]) for key in MERTON_TRUE}
    result["fit"] = {"loglik": merton_fit["loglik"], "aic": merton_fit["aic"]}
    parsed = tomllib.loads(cm.to_toml_fragment(result))
    assert parsed["market"]["model"] == "merton"
    assert parsed["market"]["jump_intensity"] == merton_fit["jump_intensity"]
    assert parsed["fit"]["jump_mean_se"] == merton_fit["jump_mean_se"]


# --------------------------------------------------------------------------- GARCH


@pytest.fixture(scope="module")
def garch_market():
    """One float64 path of 5,000 days of simkit's own GARCH market (the defaults: this stock's
    levels) with linked IV: (close, iv, the variance after each day, annual)."""
    from simkit.paths import MarketParams, cell_key, garch, simulate_market
    from simkit.precision import x64

    params = MarketParams(model="garch", mu=0.05)
    with x64():
        market = simulate_market(params, 3, 0, 0, 1, 5_000, dtype=np.float64)
        omega, a, g, b = (params.garch_omega, params.garch_alpha, params.garch_gamma,
                          params.garch_beta)  # fmt: skip
        _, variance = garch(cell_key(3, 0), 3.0, 0.05, omega, a, g, b, params.v0, 1, 5_000,
                            dt=np.float64(DT))  # fmt: skip
    return np.asarray(market.spot[0]), np.asarray(market.iv[0]), np.asarray(variance[0]), params


def test_fit_garch_recovers_simkits_own_parameters(garch_market):
    """arch on simkit's simulated returns (this stock's levels: a daily vol near 12 %) gives back
    omega (in fractions), alpha, gamma, beta and mu within 4 standard errors; its forecast of
    the next day's variance is the simulation's own to a few percent."""
    close, _, variance, params = garch_market
    fit = cm.fit_garch(close)
    assert fit["model"] == "garch" and fit["converged"] and fit["scale"] == 10.0
    for key in ("mu", "garch_omega", "garch_alpha", "garch_gamma", "garch_beta"):
        se = fit[f"{key}_se"]
        assert np.isfinite(se) and se > 0, key
        assert abs(fit[key] - getattr(params, key)) < 4 * se, (key, fit[key], se)
    assert fit["garch_omega"] == pytest.approx(params.garch_omega, rel=0.4)
    assert fit["garch_beta"] == pytest.approx(params.garch_beta, abs=0.05)
    assert fit["persistence"] == pytest.approx(0.97, abs=0.02)
    assert fit["long_run_vol"] == pytest.approx(1.9, rel=0.15)
    assert fit["v0"] == pytest.approx(variance[-1], rel=0.1)
    assert fit["aic"] == pytest.approx(10 - 2 * fit["loglik"])


def test_garch_loglik_is_of_the_returns_as_fractions(garch_market):
    """The reported log-likelihood is the normal density of the fraction returns at the fitted
    recursion (written out here from arch's first variance), whatever scale arch worked in: the
    units of gbm's and merton's, so AIC ranks them."""
    close, *_ = garch_market
    fit = cm.fit_garch(close)
    returns = np.diff(np.log(close))
    omega, a, g, b = (fit[k] for k in ("garch_omega", "garch_alpha", "garch_gamma", "garch_beta"))
    h = np.empty(returns.size)
    h[0] = fit["variance_next"][0] * DT
    mean = fit["mu"] * DT - 0.5 * omega / (1 - fit["persistence"])  # arch's constant c
    eps = returns - mean
    for t in range(1, returns.size):
        h[t] = omega + (a + g * (eps[t - 1] < 0)) * eps[t - 1] ** 2 + b * h[t - 1]
    np.testing.assert_allclose(h, fit["variance_next"][:-1] * DT, rtol=1e-9)
    expected = stats.norm.logpdf(returns, mean, np.sqrt(h)).sum()
    assert fit["loglik"] == pytest.approx(expected, rel=1e-9)


def test_garch_and_gbm_likelihoods_agree_on_gbm_returns(gbm_close):
    """GJR-GARCH nests constant variance: on GBM returns its likelihood is GBM's or a little
    more (a unit slip, percent for fractions, would be n ln 100 = 23,000 off)."""
    garch_fit, gbm_fit = cm.fit_garch(gbm_close), cm.fit_gbm(gbm_close)
    assert gbm_fit["loglik"] - 1e-3 <= garch_fit["loglik"] <= gbm_fit["loglik"] + 8


def test_fit_history_garch_links_iv_to_the_conditional_vol(garch_market):
    """With an iv column, a garch fit fits the premium z = ln(IV / sqrt(v_next)) as the linked
    IV's OU process (vrp_kappa 6, vrp_long_run 1.15, vrp_eta 0.5 in the simulation) and starts
    from the data's last IV."""
    close, iv, _, params = garch_market
    result = cm.fit_history(close, iv=iv, model="garch")
    assert set(result) == {
        "model", *cm.GARCH_PARAMS, "v0", "vrp_kappa", "vrp_long_run", "vrp_eta", "iv0", "se",
        "fit",
    }  # fmt: skip
    assert result["iv0"] == iv[-1]
    for key in ("vrp_long_run", "vrp_eta", "vrp_kappa"):
        se = result["se"][key]
        assert abs(result[key] - getattr(params, key)) < 4 * se, (key, result[key], se)
    assert result["vrp_eta"] == pytest.approx(0.5, rel=0.05)
    assert {"persistence", "long_run_vol", "half_life_days", "converged"} <= set(result["fit"])
    with pytest.raises(ValueError, match="same days"):
        cm.fit_history(close, iv=iv[1:], model="garch")


def test_a_merton_fit_of_many_small_jumps_is_flagged():
    looks = cm.merton_looks_like_clustering
    assert looks({"jump_intensity": 164.0, "jump_std": 0.013})  # the S&P 500's fit
    assert looks({"jump_intensity": 60.0, "jump_std": 0.2})
    assert looks({"jump_intensity": 4.0, "jump_std": 0.02})
    assert not looks({"jump_intensity": 4.0, "jump_std": 0.35})  # this stock's jumps
