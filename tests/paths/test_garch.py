"""GJR-GARCH(1,1) paths: the martingale, the variance's conditional mean and its long-run level
against closed forms, the stationary sample behind the linked-IV table, the link itself, the
parameter checks, and `garch` as `simulate_market`'s spot."""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from simkit.paths import MarketParams, cell_key, garch, gbm, linked_iv_table, simulate_market
from simkit.paths.linked_iv import KNOTS, garch_variance_sample
from simkit.schema.market import garch_persistence

N_SE = 4.0
DT = 1 / 252
GARCH = MarketParams(model="garch")
PERSISTENCE = garch_persistence(GARCH.garch_alpha, GARCH.garch_gamma, GARCH.garch_beta)
LONG_RUN_H = GARCH.garch_omega / (1.0 - PERSISTENCE)  # daily variance


def assert_within_se(estimate, expected, se, what=""):
    assert abs(estimate - expected) <= N_SE * se, (
        f"{what}: {estimate:.6g} vs {expected:.6g}, {abs(estimate - expected) / se:.1f} SE"
    )


def coefficients(params=GARCH):
    return params.garch_omega, params.garch_alpha, params.garch_gamma, params.garch_beta


def test_defaults_are_the_baselines_levels():
    """Long-run vol 190 % a year, persistence 0.97, leverage; the fourth moment exists."""
    assert PERSISTENCE == pytest.approx(0.97, abs=1e-12)
    assert math.sqrt(LONG_RUN_H / DT) == pytest.approx(1.9, rel=1e-12)
    _, a, g, b = coefficients()
    assert g > 0
    # E[(beta + (alpha + gamma [z < 0]) z^2)^2] < 1: E h^2 (and the returns' kurtosis) finite
    assert b * b + 2 * b * (a + g / 2) + 3 * (a * a + a * g + g * g / 2) < 1


def test_garch_is_simulate_markets_spot_with_gbms_shocks():
    """`garch(cell_key(seed, cell), ...)` is the market's spot bit for bit; its innovations are
    the `z_spot` slot, the same normals GBM reads; column 0 is (s0, v0)."""
    market = simulate_market(GARCH, 7, 3, 0, 20, 12)
    spot, variance = garch(cell_key(7, 3), 3.0, 0.05, *coefficients(), 3.61, 20, 12)
    np.testing.assert_array_equal(market.spot, spot)
    assert spot.shape == variance.shape == (20, 13)
    np.testing.assert_allclose(variance[:, 0], 3.61, rtol=1e-7)
    v = np.asarray(variance, np.float64)
    returns = np.diff(np.log(np.asarray(spot, np.float64)), axis=1)
    z = (returns - (0.05 * DT - 0.5 * v[:, :-1] * DT)) / np.sqrt(v[:, :-1] * DT)
    gbm_spot = np.asarray(gbm(cell_key(7, 3), 3.0, 0.05, 1.0, 20, 12), np.float64)
    z_gbm = np.diff(np.log(gbm_spot), axis=1) - (0.05 - 0.5) * DT
    np.testing.assert_allclose(z, z_gbm / math.sqrt(DT), atol=2e-3)
    # The recursion, written out: v' = omega / dt + v (beta + (alpha + gamma [z < 0]) z^2).
    omega, a, g, b = coefficients()
    expected = omega / DT + v[:, :-1] * (b + np.where(z < 0, a + g, a) * z * z)
    np.testing.assert_allclose(v[:, 1:], expected, rtol=2e-4)


def test_linked_iv_moves_with_the_conditional_vol():
    """With a constant premium (vrp_eta = 0, z at its long-run value) IV is sqrt(v) vrp_long_run:
    the next day's conditional vol, annualized; iv_model "independent" keeps the log-OU IV."""
    start = math.sqrt(3.61) * 1.15
    params = dataclasses.replace(GARCH, vrp_eta=0.0, iv0=start)
    market = simulate_market(params, 2, 0, 0, 20, 12)
    _, variance = garch(cell_key(2, 0), 3.0, 0.05, *coefficients(), 3.61, 20, 12)
    np.testing.assert_allclose(market.iv, np.sqrt(variance) * 1.15, rtol=1e-5)
    assert GARCH.linked_iv and not dataclasses.replace(GARCH, iv_model="independent").linked_iv
    independent = simulate_market(
        dataclasses.replace(GARCH, iv_model="independent"), 2, 0, 0, 20, 12
    )
    baseline = simulate_market(MarketParams(), 2, 0, 0, 20, 12)
    np.testing.assert_array_equal(independent.iv, baseline.iv)  # the same z_spot and z_iv draws


@pytest.fixture(scope="module")
def paths_from_a_high_start(request):
    """20,000 float64 paths of 63 days from v0 = 3 x the long-run variance, mu = 0.3."""
    from simkit.precision import x64

    with x64():
        spot, variance = garch(
            cell_key(5, 0), 3.0, 0.3, *coefficients(), 3 * LONG_RUN_H / DT, 20_000, 63,
            dt=jnp.float64(DT),
        )  # fmt: skip
        return np.asarray(spot), np.asarray(variance)


def test_expected_spot_is_s0_exp_mu_t(paths_from_a_high_start):
    spot, _ = paths_from_a_high_start
    assert spot.dtype == np.float64
    for t in (1, 5, 21, 63):
        x = spot[:, t]
        assert_within_se(
            x.mean(), 3.0 * math.exp(0.3 * t * DT), x.std() / math.sqrt(x.size), f"E[S] at {t}d"
        )


def test_conditional_mean_of_the_variance(paths_from_a_high_start):
    """E[h_{t+1}] = h_bar + p^t (h_1 - h_bar): column t of `variance` is h_{t+1} / dt."""
    _, variance = paths_from_a_high_start
    h_bar, h_1 = LONG_RUN_H / DT, 3 * LONG_RUN_H / DT
    for t in (1, 5, 21, 63):
        x = variance[:, t]
        expected = h_bar + PERSISTENCE**t * (h_1 - h_bar)
        assert_within_se(x.mean(), expected, x.std() / math.sqrt(x.size), f"E[v] at {t}d")


def test_long_run_variance_of_the_returns(x64):
    """A long simulation: the mean squared shock eps_t^2 = (r_t - mu dt + h_t/2)^2 over days
    500-2,000 of 1,000 paths started at a tenth of it is omega / (1 - alpha - gamma/2 - beta)
    (standard error from the paths' own means: paths are independent, days are not)."""
    spot, variance = garch(
        cell_key(6, 0), 3.0, 0.05, *coefficients(), 0.1 * LONG_RUN_H / DT, 1_000, 2_000,
        dt=jnp.float64(DT),
    )  # fmt: skip
    log_spot, h = np.log(np.asarray(spot)), np.asarray(variance) * DT
    eps = np.diff(log_spot, axis=1) - (0.05 * DT - 0.5 * h[:, :-1])
    per_path = (eps[:, 500:] ** 2).mean(axis=1)
    assert_within_se(
        per_path.mean(), LONG_RUN_H, per_path.std() / math.sqrt(per_path.size), "E eps^2"
    )


def test_stationary_sample_has_the_closed_form_moments():
    """The seeded sample behind the linked-IV table (x = h / omega): E x = 1 / (1 - p) and
    E x^2 = (1 + 2 p / (1 - p)) / (1 - E a^2), a = beta + (alpha + gamma [z < 0]) z^2, at
    coefficients whose x has a fourth moment (the chains are independent: their means give the
    standard errors)."""
    a, g, b = 0.03, 0.04, 0.9
    p = a + g / 2 + b
    e_a2 = b * b + 2 * b * (a + g / 2) + 3 * (a * a + a * g + g * g / 2)
    sample = garch_variance_sample(a, g, b)
    assert sample.shape[1] == 4096 and np.all(sample >= 1.0)
    for power, expected in ((1, 1 / (1 - p)), (2, (1 + 2 * p / (1 - p)) / (1 - e_a2))):
        chains = (sample**power).mean(axis=0)
        se = chains.std() / math.sqrt(chains.size)
        assert_within_se(chains.mean(), expected, se, f"E x^{power}")
    np.testing.assert_array_equal(sample, garch_variance_sample(a, g, b))  # seeded


def test_percentile_table_is_the_stationary_law_of_simulated_iv():
    """Independent of the table's NumPy sample: 4,096 JAX paths a year after a start at the
    long-run variance (p^252 = 5e-4: forgotten) give IVs whose table percentiles are uniform."""
    params = dataclasses.replace(
        GARCH, v0=LONG_RUN_H / DT, iv0=math.sqrt(LONG_RUN_H / DT) * GARCH.vrp_long_run
    )
    iv = np.asarray(simulate_market(params, 8, 0, 0, 4_096, 252).iv[:, -1], np.float64)
    table = linked_iv_table(params)
    grid = table.start + table.step * np.arange(KNOTS)
    percentile = np.interp(np.log(iv), grid, np.asarray(table.percentiles))
    assert_within_se(percentile.mean(), 50.0, 100 / math.sqrt(12 * iv.size), "mean percentile")
    assert stats.kstest(percentile / 100, "uniform").pvalue > 1e-3
    # The stationary law of h is skewed: the long-run mean's IV sits above the median.
    at_mean = np.interp(math.log(params.iv0), grid, table.percentiles)
    assert 55 < at_mean < 75


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"garch_beta": 0.95},
            "MarketParams.garch_beta must keep the persistence garch_alpha + garch_gamma / 2 + "
            "garch_beta below 1 (a stationary variance); got 1.05 with garch_beta 0.95.",
        ),
        (
            {"garch_gamma": -0.1},
            "MarketParams.garch_gamma must be >= -garch_alpha (a down day's ARCH coefficient "
            "alpha + gamma must not be negative); got -0.1 with garch_alpha 0.06.",
        ),
        ({"garch_omega": 0.0}, "MarketParams.garch_omega must be a finite number > 0; got 0.0."),
        ({"garch_alpha": -0.01}, "MarketParams.garch_alpha must be a finite number >= 0"),
        (
            {"iv_model": "linked", "vrp_kappa": 0.0},
            "MarketParams.vrp_kappa must be > 0 with linked IV",
        ),
    ],
)
def test_parameters_are_checked_with_one_sentence_naming_the_field(changes, message):
    with pytest.raises(ValueError) as info:
        MarketParams(model="garch", **changes)
    assert str(info.value).startswith(message)


def test_other_models_do_not_check_garchs_stationarity():
    MarketParams(garch_beta=0.95)  # read by garch only
    MarketParams(model="garch", kappa_v=0.0)  # kappa_v is heston's
