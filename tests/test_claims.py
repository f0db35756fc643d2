"""The claims check: its computations against independent formulas, its verdicts as functions
of the numbers, and `simkit claims` end to end on a small run (reference engine)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scenario_files import GRID_2X2, write_scenario
from scipy import stats

from simkit import claims
from simkit.claims import SEED, pct
from simkit.cli import main
from simkit.paths.market import MarketParams

S, IV, R = 3.0, 4.2517, 0.05
STRIKES = np.array([2.0, 2.5, 3.0, 4.0, 5.0])
QUOTES = np.array([0.60, 1.05, 1.63, 2.78, 3.60])


def scipy_put(s, k, t, r, vol):
    """Black-Scholes put, written out with scipy (independent of simkit.pricing)."""
    s, k = np.asarray(s, float), np.asarray(k, float)
    d1 = (np.log(s / k) + (r + 0.5 * vol**2) * t) / (vol * np.sqrt(t))
    d2 = d1 - vol * np.sqrt(t)
    return k * np.exp(-r * t) * stats.norm.cdf(-d2) - s * stats.norm.cdf(-d1)


@pytest.fixture(scope="module")
def table():
    return claims.premium_table(
        STRIKES, QUOTES, spot=S, vol=IV, rate=R, dte=37.0, dte_range=(30.0, 45.0)
    )


# --------------------------------------------------------------------------- premium table


def test_premium_table_matches_scipy_black_scholes(table):
    for key, days in (("bs", 37.0), ("bs_lo", 30.0), ("bs_hi", 45.0)):
        np.testing.assert_allclose(table[key], scipy_put(S, STRIKES, days / 365, R, IV), rtol=1e-10)
    # Hand values at 37 days (rounded): the quotes are not these.
    np.testing.assert_allclose(table["bs"], [0.794, 1.131, 1.493, 2.272, 3.102], atol=5e-4)
    np.testing.assert_allclose(table["intrinsic"], [0, 0, 0, 1, 2])


def test_implied_spot_round_trips(table):
    t = 37 / 365
    spots = table["implied_spot"]
    assert np.all(np.isfinite(spots))
    np.testing.assert_allclose(scipy_put(spots, STRIKES, t, R, IV), QUOTES, atol=1e-9)
    # A cheap $2 put means a higher spot, a rich $4/$5 put a lower one.
    assert spots[0] > S > spots[3]
    # No spot gives a put above its ceiling K e^{-rT}, or a zero price.
    assert math.isnan(claims.implied_spot(2.5, 2.5, t, R, IV))
    assert math.isnan(claims.implied_spot(0.0, 2.5, t, R, IV))


def test_implied_vol_and_dte_round_trip(table):
    t = 37 / 365
    vols = table["implied_vol"]
    assert np.all(np.isfinite(vols))  # every quote is within the no-arbitrage bounds at S = 3
    np.testing.assert_allclose(scipy_put(S, STRIKES, t, R, vols), QUOTES, atol=1e-8)
    assert QUOTES[4] > table["lower_bound"][4]  # the $5 put at 3.60 is above K e^-rT - S
    # A quote below the no-arbitrage lower bound has no implied vol.
    below = claims.premium_table(
        [5.0], [1.5], spot=S, vol=IV, rate=R, dte=37.0, dte_range=(30.0, 45.0)
    )
    assert math.isnan(below["implied_vol"][0])
    for k, q, days in zip(STRIKES, QUOTES, table["implied_dte"], strict=True):
        assert np.isfinite(days)
        assert scipy_put(S, k, days / 365, R, IV) == pytest.approx(q, abs=1e-8)


def test_annual_yield_is_premium_over_strike_times_twelve():
    recomputed = claims.annual_yield(SEED.premiums, SEED.strikes, 12)
    np.testing.assert_allclose(recomputed, [3.60, 5.04, 6.52, 8.34, 8.64], atol=1e-12)
    # the seed's column to rounding (it prints 835 % where 2.78 / 4 x 12 = 834 %)
    np.testing.assert_allclose(recomputed, SEED.annual_yield, atol=0.0100001)


# --------------------------------------------------------------------------- probabilities


def test_assignment_probabilities_closed_forms():
    market = MarketParams()  # gbm, mu 0.05, sigma 1.9
    out = claims.assignment_probabilities(STRIKES, spot=S, vol=IV, rate=R, dte=37.0, market=market)
    t = 37 / 365
    d2 = (np.log(S / STRIKES) + (R - IV**2 / 2) * t) / (IV * np.sqrt(t))
    np.testing.assert_allclose(out["risk_neutral"], stats.norm.cdf(-d2), rtol=1e-12)
    t_real = 26 / 252  # 37 calendar days -> 26 steps
    assert float(out["t_real"]) == pytest.approx(t_real)
    z = (np.log(STRIKES / S) - (0.05 - 1.9**2 / 2) * t_real) / (1.9 * np.sqrt(t_real))
    np.testing.assert_allclose(out["real_world"], stats.norm.cdf(z), rtol=1e-12)
    assert np.all(np.diff(out["real_world"]) > 0)  # higher strike, more likely assigned


def test_merton_probability_and_payoff_match_monte_carlo():
    market = MarketParams(model="merton")
    t = 0.25
    rng = np.random.default_rng(1)
    n = 2_000_000
    lam, m, s = market.jump_intensity, market.jump_mean, market.jump_std
    k = math.exp(m + s * s / 2) - 1
    jumps = rng.poisson(lam * t, n)
    log_s = (
        math.log(S)
        + (market.mu - market.sigma**2 / 2 - lam * k) * t
        + market.sigma * math.sqrt(t) * rng.standard_normal(n)
        + jumps * m
        + np.sqrt(jumps) * s * rng.standard_normal(n)
    )
    spot = np.exp(log_s)
    assert spot.mean() == pytest.approx(S * math.exp(market.mu * t), rel=5e-3)
    for strike in (2.0, 3.0, 5.0):
        assert claims.prob_below(S, strike, t, market) == pytest.approx(
            (spot < strike).mean(), abs=2e-3
        )
        assert claims.expected_put_payoff(S, strike, t, market) == pytest.approx(
            np.maximum(strike - spot, 0).mean(), rel=5e-3
        )


def test_gbm_expected_payoff_is_black_scholes_at_the_drift():
    market = MarketParams(mu=0.3)
    t = 0.2
    got = claims.expected_put_payoff(S, STRIKES, t, market)
    want = math.exp(0.3 * t) * scipy_put(S, STRIKES, t, 0.3, market.sigma)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_heston_law_is_simulated_not_read_from_sigma():
    # With almost no vol of variance and v0 = theta, Heston is GBM at sqrt(theta): the simulated
    # law must match the closed form at that vol (within its Monte Carlo error), whatever sigma.
    t = 26 / 252
    calm = MarketParams(model="heston", v0=2.25, theta_v=2.25, xi=1e-4, rho=0.0, sigma=0.5)
    gbm = MarketParams(sigma=1.5)
    for strike in (2.0, 3.0, 4.0):
        assert claims.prob_below(S, strike, t, calm) == pytest.approx(
            claims.prob_below(S, strike, t, gbm), abs=4e-3
        )
        assert claims.expected_put_payoff(S, strike, t, calm) == pytest.approx(
            claims.expected_put_payoff(S, strike, t, gbm), rel=1e-2
        )
    # Leverage (rho < 0) and a vol of variance fatten the left tail: a deep put is more likely
    # to end in the money than under GBM at the same average variance.
    skewed = dataclasses.replace(calm, xi=3.0, rho=-0.9)
    assert claims.prob_below(S, 1.0, t, skewed) > claims.prob_below(S, 1.0, t, gbm) + 0.01


# --------------------------------------------------------------------------- compounding


@pytest.mark.parametrize("addition", [0.0, 5_000.0])
def test_compounding_closed_forms(addition):
    c0, y, months = 200_000.0, 0.05, 12
    g_seed = 0.8 * y
    seed = claims.compound_seed(months, c0, addition, y)
    m = np.arange(1, months + 1)
    np.testing.assert_allclose(
        seed, g_seed**m * c0 + addition * (1 - g_seed**m) / (1 - g_seed), rtol=1e-12
    )
    g = 1 + 0.8 * y
    fixed = claims.compound_corrected(months, c0, addition, y)
    np.testing.assert_allclose(fixed, g**m * c0 + addition * (g**m - 1) / (g - 1), rtol=1e-12)
    # The seed's month 1 is 80 % of one month's premium plus the addition: the capital is gone.
    assert seed[0] == pytest.approx(0.8 * y * c0 + addition)


def test_seed_class_is_the_seed_text():
    alloc = claims.SeedPremiumAllocation(lambda capital: 0.1 * capital)
    sizes = alloc.compound_position_size(2, 1000.0, 0.0)
    assert [round(s["capital"], 6) for s in sizes] == [80.0, 6.4]
    assert sizes[0]["call_allocation"] == pytest.approx(20.0)
    assert sizes[1]["compounding_factor"] == pytest.approx(0.0064)


# --------------------------------------------------------------------------- verdict rules


def test_verdicts_follow_the_numbers():
    assert claims.interval_verdict(1.35, 1.0, 2.0)[0] == "consistent"
    assert claims.interval_verdict(1.35, -0.2, 0.1)[0] == "refuted"
    assert claims.interval_verdict(1.35, 1.5, 2.0)[0] == "refuted"
    assert claims.interval_verdict(1.35, math.nan, 2.0)[0] == "undecided"
    assert claims.tolerance_verdict(0.247, 0.8156, 0.0005)[0] == "not reproduced"
    assert claims.tolerance_verdict(0.816, 0.8156, 0.0005)[0] == "reproduced"
    assert claims.share_verdict(0.96, 0.99, 0.95, "x")[0] == "consistent"
    assert claims.share_verdict(0.5, 0.6, 0.95, "x")[0] == "refuted"
    assert claims.share_verdict(0.9, 0.97, 0.95, "x")[0] == "undecided"
    assert claims.threshold_verdict(0.0, 0.0, "x", "ok", "bad")[0] == "ok"
    assert claims.threshold_verdict(0.1, 0.0, "x", "ok", "bad")[0] == "bad"


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A 48-path, 50-day run of the baseline strategy (reference engine)."""
    from simkit import load_scenario, simulate

    path = write_scenario(tmp_path_factory.mktemp("claims"), paths=48, chunk_size=48)
    scenario = load_scenario(path, {"simulation.years": 0.2})
    return scenario, simulate(scenario, per_path=True, progress=False)


def _row(rows, topic, contains):
    found = [r for r in rows if r.topic == topic and contains in r.claim]
    assert len(found) == 1, (topic, contains, [r.claim for r in rows])
    return found[0]


def test_rows_hold_the_seed_arithmetic(small_run):
    scenario, ds = small_run
    rows = claims.build_rows(scenario, ds)
    kelly = _row(rows, "Kelly", "on the seed's inputs")
    assert kelly.numbers["recomputed"] == pytest.approx(0.892 - 0.108 * 0.087 / 0.123)
    assert kelly.numbers["recomputed"] == pytest.approx(0.816, abs=5e-4)
    assert kelly.numbers["growth_optimal"] == pytest.approx(0.892 / 0.087 - 0.108 / 0.123)
    assert kelly.numbers["growth_optimal"] == pytest.approx(9.37, abs=5e-3)
    assert kelly.verdict == "not reproduced"
    conservative = _row(rows, "Kelly", "conservative")
    assert conservative.numbers["recommended"] == pytest.approx(0.20)
    measured = _row(rows, "Kelly", "implied by the simulated trades")
    assert measured.numbers["value"] == pytest.approx(float(ds["kelly_fraction"]))
    order = _row(rows, "assignment probability", "ordering")
    assert order.verdict == "backwards"
    compounding = _row(rows, "compounding", "compound_position_size")
    assert compounding.verdict == "capital dropped"
    assert compounding.numbers["lost"] > 0
    assert compounding.numbers["initial"] == pytest.approx(200_000.0)
    stop = _row(rows, "mechanics", "stop-loss")
    assert stop.verdict == "cannot fire at entry"
    for r in rows:
        if r.topic == "annual yield" and r.claim.startswith("$"):
            assert r.verdict.startswith("reproduced")


def test_verdicts_change_when_the_numbers_do(small_run):
    scenario, ds = small_run
    rows = claims.build_rows(scenario, ds)
    assert _row(rows, "performance", "annual return").verdict == "refuted"
    changed = ds.copy()
    changed["annual_return_mean_lo"] = changed["annual_return_mean_lo"] * 0 + 1.0
    changed["annual_return_mean_hi"] = changed["annual_return_mean_hi"] * 0 + 2.0
    changed["win_rate_trade_lo"] = changed["win_rate_trade_lo"] * 0 + 0.85
    changed["win_rate_trade_hi"] = changed["win_rate_trade_hi"] * 0 + 0.95
    changed["max_drawdown"] = changed["max_drawdown"] * 0 - 0.01
    rows = claims.build_rows(scenario, changed)
    assert _row(rows, "performance", "annual return").verdict == "consistent"
    assert _row(rows, "performance", "win rate").verdict == "consistent"
    # 48 of 48 years hold, but 48 paths cannot show a 95 % share (Wilson lower bound 92.6 %)
    assert _row(rows, "performance", "drawdown").verdict == "undecided"
    changed["max_drawdown"] = changed["max_drawdown"] * 0 - 0.5
    rows = claims.build_rows(scenario, changed)
    assert _row(rows, "performance", "drawdown").verdict == "refuted"


def test_simkit_claims_end_to_end(capsys, tmp_path):
    scenario = write_scenario(tmp_path, paths=24, chunk_size=24)
    out = tmp_path / "out" / "claims.md"
    code = main(
        ["claims", str(scenario), "--out", str(out), "--set", "simulation.years=0.1", "--seed", "3"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "seed claim vs simkit" in captured.out
    assert f"wrote {out}" in captured.out
    text = out.read_text()
    assert "| topic | claim |" in text and "**refuted**" in text
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["meta"]["paths"] == 24 and data["meta"]["seed"] == 3
    assert data["meta"]["fill_runs"] == ["seed"]
    topics = {r["topic"] for r in data["rows"]}
    assert topics == {
        "performance",
        "Kelly",
        "premium table",
        "annual yield",
        "assignment probability",
        "compounding",
        "mechanics",
        "fills",
    }
    fills = [r for r in data["rows"] if r["topic"] == "fills"][0]
    assert set(fills["numbers"]["means"]) == {"bid_ask", "seed"}
    # across markets: every performance claim has its verdict, the JSON its break-evens
    assert "## Across markets" in text and out.with_suffix(".markets.png").exists()
    markets = data["markets"]["claims"]
    assert set(markets) == {"annual_return", "sharpe", "win_rate", "max_drawdown"}
    for claim in markets.values():
        assert set(claim["break_even"]) == {"market.sigma", "market.mu", "market.iv_long_run"}
        assert isinstance(claim["holds_anywhere"], bool) and claim["verdict"]
    for r in data["rows"]:
        assert r["verdict"] and r["rule"]


def test_claims_bad_input_exits_2(capsys, tmp_path):
    tiny = write_scenario(tmp_path)
    grid = write_scenario(tmp_path, "grid.toml", grid=GRID_2X2)
    (tmp_path / "adir").mkdir()
    cases = [
        ([str(tmp_path / "missing.toml")], "no such file"),
        ([str(grid)], "without [grid]"),
        ([str(tiny), "--paths", "0"], "simulation.paths"),
        ([str(tiny), "--out", str(tmp_path / "adir")], "is a directory"),
        ([str(tiny), "--out", str(tmp_path / "x.json")], "Markdown"),
        ([str(tiny), "--set", "market.sigmaa=2"], "sigmaa"),
    ]
    for argv, needle in cases:
        code = main(["claims", *argv, "--out", str(tmp_path / "c.md")] if "--out" not in argv
                    else ["claims", *argv])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert needle in err, (argv, err)
        assert "Traceback" not in err
    assert not (tmp_path / "c.md").exists()


def test_claims_show_what_each_rule_costs_when_explained(capsys, tmp_path):
    from simkit import explain, load_scenario

    scenario = write_scenario(tmp_path, paths=24, chunk_size=24)
    out = tmp_path / "claims.md"
    changes = [c for c in explain.CHANGES if c.key in ("hedges.hedges", "execution.fill")]
    ds = explain.explain(load_scenario(scenario), changes=changes, progress=False, replicates=50)
    ds.to_netcdf(tmp_path / f"{scenario.stem}.explain.nc", engine="h5netcdf")
    code = main(["claims", str(scenario), "--out", str(out), "--no-markets", "--no-fills"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    text = out.read_text()
    assert "## What each rule costs" in text
    first = str(ds["change"].values[0])
    delta = float(ds["annual_return_mean_delta"].values[0])
    row = next(line for line in text.splitlines() if line.startswith(f"| `{first}` |"))
    assert pct(delta) in row
    assert "What each rule costs (from" in captured.out
