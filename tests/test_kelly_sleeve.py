"""Kelly of the sleeve (`simkit.kelly_sleeve`) against closed forms, and on simulated markets:
no allocation on the baseline, an interval holding 0 in a fair market, an allocation where
the strategy has an edge."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import simkit
from simkit.kelly_sleeve import CAP, kelly_sleeve, period_returns
from simkit.scenario import parse_scenario


def two_outcome(p: float, win: float, loss: float, n: int = 10_000) -> np.ndarray:
    wins = round(p * n)
    return np.r_[np.full(wins, win), np.full(n - wins, -loss)]


@pytest.mark.parametrize("cash", [0.0, 0.02, 0.0513])
@pytest.mark.parametrize(("p", "win", "loss"), [(0.5, 0.5, 0.4), (0.892, 0.123, 0.087)])
def test_two_outcomes_match_the_closed_form(p, win, loss, cash):
    # ln(1 + c + f x) = ln(1 + c) + ln(1 + f x / (1 + c)): the classic two-outcome Kelly on
    # the excess returns win - c and -(loss + c), scaled by 1 + c.
    expected = (1 + cash) * (p / (loss + cash) - (1 - p) / (win - cash))
    got = kelly_sleeve(two_outcome(p, win, loss), cash)
    assert got["fraction_unconstrained"] == pytest.approx(expected, rel=1e-9)
    if expected > CAP:
        assert got["fraction"] == CAP
    elif expected < 0:  # cash beats the bet: do not allocate
        assert got["fraction"] == 0.0
    else:
        assert got["fraction"] == pytest.approx(expected, rel=1e-9)
    assert got["fraction_max"] == pytest.approx(min(CAP, (1 + cash) / (loss + cash)))
    assert got["unbounded"] == 0.0
    # growth at f*: the two logs weighted by their shares
    f = got["fraction"]
    growth = p * math.log(1 + cash + f * (win - cash)) + (1 - p) * math.log(
        1 + cash - f * (loss + cash)
    )
    assert got["growth"] == pytest.approx(growth, rel=1e-12)


def test_two_outcome_standard_error_is_the_sandwich():
    p, win, loss, n = 0.6, 0.3, 0.2, 5_000
    got = kelly_sleeve(two_outcome(p, win, loss, n), 0.0)
    f = p / loss - (1 - p) / win
    psi_win, psi_loss = win / (1 + f * win), -loss / (1 - f * loss)
    variance = p * (1 - p) * (psi_win - psi_loss) ** 2 * n / (n - 1)  # mean score is 0
    slope = p * psi_win**2 + (1 - p) * psi_loss**2
    se = math.sqrt(variance / n) / slope
    assert got["fraction_se"] == pytest.approx(se, rel=1e-8)
    z = stats.norm.ppf(0.975)
    assert got["fraction_lo"] == pytest.approx(f - z * se, rel=1e-8)
    assert got["fraction_hi"] == pytest.approx(f + z * se, rel=1e-8)


def test_lognormal_short_period_matches_merton():
    # Over one day, f* -> (mu - r) / sigma^2 (Merton's fraction). Stratified normal draws make
    # the sample's moments exact enough that only the discretisation is left.
    mu, r, sigma, dt, n = 0.10, 0.03, 0.30, 1 / 252, 200_000
    z = stats.norm.ppf((np.arange(n) + 0.5) / n)
    returns = np.expm1((mu - sigma**2 / 2) * dt + sigma * math.sqrt(dt) * z)
    got = kelly_sleeve(returns, math.expm1(r * dt))
    assert got["fraction"] == pytest.approx((mu - r) / sigma**2, rel=0.01)


def test_nothing_beats_cash_means_do_not_allocate():
    got = kelly_sleeve(np.array([-0.3, 0.01, 0.049, 0.05]), 0.05)
    assert got["fraction"] == got["fraction_lo"] == got["fraction_hi"] == 0.0
    assert got["growth"] == pytest.approx(math.log(1.05))


def test_a_mean_below_cash_means_do_not_allocate():
    # Some paths beat cash, but the mean does not: G'(0) = mean(x) / (1 + c) < 0.
    returns = np.array([0.5, -0.3, 0.2, -0.45])  # mean -0.0125
    got = kelly_sleeve(returns, 0.0)
    assert got["fraction"] == 0.0 and got["fraction_unconstrained"] < 0


def test_nothing_worse_than_cash_is_unbounded():
    got = kelly_sleeve(np.array([0.05, 0.06, 0.3]), 0.05)
    assert got["unbounded"] == 1.0
    assert got["fraction"] == got["fraction_max"] == CAP


def test_a_total_loss_bounds_the_fraction_at_one():
    # A path that loses the whole sleeve: f = 1 would wipe the portfolio out (c = 0).
    returns = np.r_[np.full(99, 3.0), -1.0]
    got = kelly_sleeve(returns, 0.0, at=0.2)
    assert got["fraction_max"] == 1.0
    assert 0.9 < got["fraction"] < 1.0
    assert got["growth_at"] == pytest.approx(np.mean(np.log1p(0.2 * returns)))
    assert kelly_sleeve(returns, 0.0, at=1.0)["growth_at"] == -math.inf


def test_repeated_periods_of_one_path_carry_no_more_information():
    # Clustered by path: k identical periods per path give the same f* and standard error as
    # one (CR1 over paths), where independent periods would shrink the error by sqrt(k).
    rng = np.random.default_rng(3)
    one = rng.normal(0.02, 0.1, size=400)
    single = kelly_sleeve(one, 0.001)
    repeated = kelly_sleeve(np.repeat(one[:, None], 6, axis=1), 0.001)
    assert repeated["fraction"] == pytest.approx(single["fraction"], rel=1e-10)
    assert repeated["fraction_se"] == pytest.approx(single["fraction_se"], rel=1e-10)
    missing = np.repeat(one[:, None], 2, axis=1)
    missing[::2, 1] = np.nan  # missing periods are skipped, not zero
    assert kelly_sleeve(missing, 0.001)["observations"] == 600


def test_period_returns_by_hand():
    # 2 paths, 7 steps, 3-step periods: periods cover steps 0-2, 3-5 (step 6 left out).
    wealth = np.array(
        [
            [1.1, 1.2, 1.3, 1.0, 0.9, 1.8, 2.0],
            [1.0, 0.5, -0.2, -0.2, -0.2, -0.2, -0.2],  # equity <= 0 on step 2: cut there
        ]
    )
    got = period_returns(wealth, last=np.array([6, 2]), days=3)
    assert got.shape == (2, 2)
    np.testing.assert_allclose(got[0], [1.3 - 1, 1.8 / 1.3 - 1])
    assert got[1, 0] == pytest.approx(-1.2) and np.isnan(got[1, 1])


# --------------------------------------------------------------------------- simulated


def _run(path: str, overrides: dict | None = None, paths: int = 2_000, **kwargs):
    with open(path) as f:
        scenario = parse_scenario(f.read(), path=path, overrides=overrides or {})
    return simkit.simulate(scenario, paths=paths, progress=False, **kwargs)


def test_baseline_says_do_not_allocate():
    ds = _run("scenarios/baseline.toml", per_path=True)
    assert float(ds["kelly_sleeve_fraction"]) == 0.0
    assert float(ds["kelly_sleeve_fraction_hi"]) == 0.0  # not even the interval allocates
    assert float(ds["kelly_sleeve_fraction_21d"]) == 0.0
    assert float(ds["kelly_sleeve_share_seed"]) == pytest.approx(0.2)
    # the seed's 20 % grows the portfolio less than cash
    assert float(ds["kelly_sleeve_growth_seed"]) < float(ds["kelly_sleeve_growth_cash"])
    # the run's reduction is the function on the per-path horizon returns
    direct = kelly_sleeve(ds["total_return"].values, math.expm1(0.05), at=0.2)
    assert float(ds["kelly_sleeve_growth_seed"]) == pytest.approx(direct["growth_at"], rel=1e-12)
    assert float(ds["kelly_sleeve_fraction_max"]) == pytest.approx(direct["fraction_max"])


def test_fair_market_interval_holds_zero():
    ds = _run("scenarios/fair_market.toml")
    assert float(ds["kelly_sleeve_fraction_lo"]) == 0.0
    assert float(ds["kelly_sleeve_fraction_21d_lo"]) == 0.0


def test_an_edge_gets_an_allocation():
    # No hedge calls and mid fills: the volatility risk premium (IV 217-425 % against a
    # realized 190 %) is left to the put seller.
    ds = _run(
        "scenarios/baseline.toml", {"hedges.hedges": False, "execution.fill": "mid"}, paths=1_000
    )
    assert float(ds["kelly_sleeve_fraction_lo"]) > 0.2
    assert float(ds["kelly_sleeve_fraction_21d_lo"]) > 0.2
    assert float(ds["kelly_sleeve_growth"]) > float(ds["kelly_sleeve_growth_cash"])
