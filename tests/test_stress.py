"""Stress tests: the shock arithmetic on hand-built markets, stress-file validation, and that
each stress of the library moves the strategy's metrics the way it must."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from simkit import aggregate
from simkit.cli import main
from simkit.paths.market import MarketParams
from simkit.paths.shocks import (
    IVShock,
    RealizedVolShock,
    SetShock,
    Shock,
    SpotShock,
    StressSpec,
    ThesisShock,
    apply_shock,
    ramp,
)
from simkit.run import simulate
from simkit.scenario import ScenarioError, load_scenario, load_stress
from simkit.store import write_dataset
from simkit.stress import (
    BASELINE,
    ENTRY_COUNTERS,
    MIN_CONDITIONAL,
    STOP_CAUSES,
    STRESS_VARIABLES,
    build_stress_dataset,
    run_stress,
    stress_metrics,
)

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "scenarios" / "stress").glob("*.toml"))
EXPECTED = {
    "overnight_crash",
    "slow_bleed",
    "short_squeeze",
    "iv_crush",
    "vol_explosion",
    "liquidity_drought",
    "thesis_break",
    "combined_worst_case",
}

# --------------------------------------------------------------------------- shock arithmetic


def hand_market(n_paths: int = 2, n_days: int = 11, dtype=np.float64) -> dict[str, np.ndarray]:
    """A market with known values: spot 2.0 * 1.01**t (path 1: 3.0 * 0.99**t), IV 4.0."""
    t = np.arange(n_days)
    spot = np.stack([2.0 * 1.01**t, 3.0 * 0.99**t])[:n_paths]
    full = np.ones((n_paths, n_days))
    return {
        "spot": spot.astype(dtype),
        "iv": (4.0 * full).astype(dtype),
        "short_interest": (42.88 * full).astype(dtype),
        "vix": (25.0 * full).astype(dtype),
        "btc_correlation": (0.5 * full).astype(dtype),
        "bid_ask_spread": (0.10 * full).astype(dtype),
        "open_interest": (5000.0 * full).astype(dtype),
        "option_volume": (1000.0 * full).astype(dtype),
        "liquidity_score": (8.0 * full).astype(dtype),
        "borrow_cost": (50.0 * full).astype(dtype),
        "volume_ratio": (1.5 * full).astype(dtype),
        "thesis_event": np.zeros((n_paths, n_days), bool),
        "early_u": (0.5 * full).astype(dtype),
    }


def test_ramp_is_the_share_of_the_move_done():
    assert ramp(8, 3, 1).tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert np.allclose(ramp(8, 2, 4), [0, 0, 0.25, 0.5, 0.75, 1, 1, 1])


def test_spot_gap_multiplies_the_spot_from_its_day_on():
    market = hand_market()
    shocked = apply_shock(market, Shock(spot=SpotShock(day=4, change=-0.6)), MarketParams())
    assert np.array_equal(shocked["spot"][:, :4], market["spot"][:, :4])
    assert np.allclose(shocked["spot"][:, 4:], 0.4 * market["spot"][:, 4:], rtol=1e-15)
    # the path's own returns continue after the gap
    after = np.diff(np.log(shocked["spot"][:, 4:]))
    assert np.allclose(after, np.diff(np.log(market["spot"][:, 4:])), rtol=0, atol=1e-14)
    for name in market:
        if name != "spot":
            assert np.array_equal(shocked[name], market[name]), name


def test_spot_ramp_is_geometric_over_its_days():
    market = hand_market()
    shocked = apply_shock(market, Shock(spot=SpotShock(day=2, change=-0.9, days=3)), MarketParams())
    ratio = shocked["spot"] / market["spot"]
    expected = [1, 1, 0.1 ** (1 / 3), 0.1 ** (2 / 3), 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    assert np.allclose(ratio, [expected, expected], rtol=1e-12)
    squeeze = apply_shock(market, Shock(spot=SpotShock(day=1, change=3.0, days=5)), MarketParams())
    assert squeeze["spot"][0, 5] == pytest.approx(4.0 * market["spot"][0, 5], rel=1e-12)


def test_realized_vol_scales_the_log_return_deviations():
    market = hand_market()
    mkt = MarketParams(mu=0.05, sigma=1.9)
    k, day, dt = 2.0, 3, 1 / 252
    shocked = apply_shock(market, Shock(realized_vol=RealizedVolShock(day=day, scale=k)), mkt)
    before, after = np.diff(np.log(market["spot"])), np.diff(np.log(shocked["spot"]))
    m = (0.05 - 0.5 * 1.9**2) * dt
    m_k = (0.05 - 0.5 * k**2 * 1.9**2) * dt
    assert np.array_equal(shocked["spot"][:, :day], market["spot"][:, :day])
    assert np.allclose(after[:, : day - 1], before[:, : day - 1], rtol=0, atol=1e-14)
    assert np.allclose(
        after[:, day - 1 :], m_k + k * (before[:, day - 1 :] - m), rtol=0, atol=1e-13
    )
    # the diffusion's volatility doubles: on GBM increments the sample std doubles
    rng = np.random.default_rng(0)
    z = rng.standard_normal((1, 4000))
    log_spot = np.concatenate([[[0.0]], np.cumsum(m + 1.9 * math.sqrt(dt) * z, axis=1)], axis=1)
    gbm = hand_market(1, 4001)
    gbm["spot"] = 3.0 * np.exp(log_spot)
    out = apply_shock(gbm, Shock(realized_vol=RealizedVolShock(day=1, scale=k)), mkt)
    ratio = np.diff(np.log(out["spot"])).std() / np.diff(np.log(gbm["spot"])).std()
    assert ratio == pytest.approx(k, rel=1e-12)


@pytest.mark.parametrize(
    "params",
    [
        # sigma (1.9) is not the spot's variance on these markets: the shock must not read it
        dict(model="heston", v0=0.25, theta_v=1.0, kappa_v=6.0, xi=0.5, rho=-0.7),
        dict(model="garch", v0=0.25, garch_omega=1.0 / 252 * 0.05, garch_alpha=0.05,
             garch_gamma=0.0, garch_beta=0.90),
    ],
    ids=["heston", "garch"],
)  # fmt: skip
def test_realized_vol_shock_centres_on_the_market_s_own_variance(params):
    """On a stochastic-variance market the scaled returns have the mean log return of a
    diffusion with k^2 times the market's expected variance, (mu - k^2 E[v_t] / 2) dt, day by
    day (E[v_t] moves from v0 to its long-run level): within Monte Carlo error."""
    from simkit.paths.market import market_to_numpy, simulate_market
    from simkit.paths.shocks import expected_variance

    mkt = MarketParams(mu=0.05, sigma=1.9, **params)
    k, dt, n_steps = 2.0, 1 / 252, 40
    market = market_to_numpy(simulate_market(mkt, 3, 0, 0, 20_000, n_steps))
    shocked = apply_shock(market, Shock(realized_vol=RealizedVolShock(day=1, scale=k)), mkt)
    r = np.diff(np.log(shocked["spot"].astype(np.float64)), axis=1)
    variance = expected_variance(mkt, np.arange(1, n_steps + 1), dt)
    want = (0.05 - 0.5 * k**2 * variance) * dt
    se = r.std(axis=0) / math.sqrt(r.shape[0])
    assert np.all(np.abs(r.mean(axis=0) - want) < 5 * se + 1e-5)
    # and the unshocked returns have the mean that variance implies (the law itself is right)
    plain = np.diff(np.log(market["spot"].astype(np.float64)), axis=1)
    assert abs(plain.mean() - ((0.05 - 0.5 * variance) * dt).mean()) < 5 * plain.std() / math.sqrt(
        plain.size / n_steps
    )


def test_iv_multiply_and_level():
    market = hand_market()
    market["iv"] = market["iv"] * np.linspace(1.0, 0.5, 11)  # a moving IV path
    crushed = apply_shock(market, Shock(iv=IVShock(day=2, level=1.0, days=5)), MarketParams())
    last = 2 + 5 - 1
    assert np.allclose(crushed["iv"][:, last], 1.0, rtol=1e-14)
    assert np.array_equal(crushed["iv"][:, :2], market["iv"][:, :2])
    factor = crushed["iv"][:, last:] / market["iv"][:, last:]
    assert np.allclose(factor, factor[:, :1], rtol=1e-14)  # the path's own moves continue, scaled
    w = ramp(11, 2, 5)
    assert np.allclose(crushed["iv"] / market["iv"], factor[:, :1] ** w, rtol=1e-12)
    doubled = apply_shock(market, Shock(iv=IVShock(day=4, multiply=2.0)), MarketParams())
    assert np.allclose(doubled["iv"][:, 4:], 2.0 * market["iv"][:, 4:], rtol=1e-15)
    assert np.array_equal(doubled["iv"][:, :4], market["iv"][:, :4])


def test_liquidity_signals_and_thesis_are_set_from_their_day():
    market = hand_market()
    shock = Shock(
        liquidity=SetShock(day=3, values=(("bid_ask_spread", 0.5), ("open_interest", 100.0))),
        signals=SetShock(day=5, values=(("short_interest", 15.0),)),
        thesis=ThesisShock(day=6),
    )
    out = apply_shock(market, shock, MarketParams())
    assert out["bid_ask_spread"][:, :3].tolist() == [[0.1] * 3] * 2
    assert (out["bid_ask_spread"][:, 3:] == 0.5).all() and (
        out["open_interest"][:, 3:] == 100
    ).all()
    assert (out["open_interest"][:, :3] == 5000).all()
    assert (out["short_interest"][:, 5:] == 15.0).all() and (
        out["short_interest"][:, :5] == 42.88
    ).all()
    assert out["thesis_event"].sum() == 2 and out["thesis_event"][:, 6].all()
    assert np.array_equal(out["option_volume"], market["option_volume"])


def test_shock_keeps_dtype_input_and_rows():
    market = hand_market(dtype=np.float32)
    copy = {k: v.copy() for k, v in market.items()}
    shock = Shock(
        realized_vol=RealizedVolShock(day=2, scale=2.0),
        spot=SpotShock(day=3, change=-0.5),
        iv=IVShock(day=3, multiply=1.5),
        liquidity=SetShock(day=3, values=(("bid_ask_spread", 0.5),)),
    )
    out = apply_shock(market, shock, MarketParams())
    assert all(out[k].dtype == market[k].dtype for k in market)
    assert all(np.array_equal(market[k], copy[k]) for k in market)  # input untouched
    # a path's shocked numbers depend on that path alone
    for i in range(2):
        alone = apply_shock({k: v[i : i + 1] for k, v in market.items()}, shock, MarketParams())
        assert all(np.array_equal(alone[k][0], out[k][i]) for k in market)
    # a shock past the horizon changes nothing
    late = apply_shock(market, Shock(spot=SpotShock(day=50, change=-0.6)), MarketParams())
    assert np.array_equal(late["spot"], market["spot"])


# --------------------------------------------------------------------------- stress files


def test_the_library_loads():
    names = {p.stem for p in LIBRARY}
    assert names == EXPECTED
    for path in LIBRARY:
        spec = load_stress(path, n_steps=252)
        assert spec.description and spec.shock.components(), path
        assert 1 <= spec.shock.first_day <= 252
    crash = load_stress(ROOT / "scenarios" / "stress" / "overnight_crash.toml")
    assert crash.shock.spot == SpotShock(day=21, change=-0.6, days=1)


BAD_STRESS = [
    ("[stress]\nday = 21\n[spot]\nchnage = -0.5\n", "spot.chnage", "did you mean 'change'"),
    ("[stress]\nday = 21\n[spot]\nchange = -1.5\n", "spot.change", "must be > -1"),
    ('[stress]\nday = 21\n[spot]\nchange = "-0.5"\n', "spot.change", "must be a number"),
    ("[stress]\nday = 0\n[spot]\nchange = -0.5\n", "stress.day", ">= 1"),
    ('[stress]\ndescription = "x"\n[spot]\nchange = -0.5\n', "stress.day", "is required"),
    ("[stress]\nday = 21\n", "stress", "names no shock"),
    ("[stress]\nday = 21\n[sopt]\nchange = -0.5\n", "sopt", "did you mean 'spot'"),
    ("[stress]\nday = 21\n[iv]\nmultiply = 2.0\nlevel = 1.0\n", "iv", "exactly one"),
    ("[stress]\nday = 21\n[liquidity]\n", "liquidity", "at least one"),
    (
        "[stress]\nday = 21\n[signals]\nbtc_correlation = 1.5\n",
        "signals.btc_correlation",
        "[-1, 1]",
    ),
    ("[stress]\nday = 21\n[spot]\nscale = 2.0\n", "spot.scale", "belongs in [realized_vol]"),
    (
        "[stress]\nday = 500\n[spot]\nchange = -0.5\n",
        "stress.day",
        "past the base scenario's horizon",
    ),
    ("[stress]\nday = 2\n[spot]\nchange = -0.5\nday = 400\n", "spot.day", "past the base"),
    ("[stress]\nday = 21\n[spot]\nchange = -0.5\n[spot]\n", "", "TOML syntax error"),
    ("", "", "empty"),
]


@pytest.mark.parametrize(("text", "key", "message"), BAD_STRESS)
def test_bad_stress_files_exit_2_naming_file_and_key(text, key, message, tmp_path, capsys):
    scenario = tmp_path / "base.toml"
    scenario.write_text('[simulation]\npaths = 4\nyears = 0.25\nengine = "reference"\n')
    bad = tmp_path / "my_stress.toml"
    bad.write_text(text)
    out = tmp_path / "out.nc"
    code = main(["stress", str(bad), "--scenario", str(scenario), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert str(bad) in err and message in err, err
    if key:
        assert f"{key}:" in err, err
    assert "Traceback" not in err
    assert not out.exists()


def test_stress_named_none_and_duplicates_are_refused(tmp_path, capsys):
    scenario = tmp_path / "base.toml"
    scenario.write_text('[simulation]\npaths = 4\nyears = 0.25\nengine = "reference"\n')
    none = tmp_path / "none.toml"
    none.write_text("[stress]\nday = 3\n[spot]\nchange = -0.5\n")
    assert main(["stress", str(none), "--scenario", str(scenario)]) == 2
    assert "unstressed baseline" in capsys.readouterr().err
    ok = tmp_path / "crash.toml"
    ok.write_text("[stress]\nday = 3\n[spot]\nchange = -0.5\n")
    assert main(["stress", str(ok), str(ok), "--scenario", str(scenario)]) == 2
    assert "given twice" in capsys.readouterr().err


def test_a_grid_base_is_refused(tmp_path, capsys, grid_scenario):
    crash = tmp_path / "crash.toml"
    crash.write_text("[stress]\nday = 3\n[spot]\nchange = -0.5\n")
    assert main(["stress", str(crash), "--scenario", str(grid_scenario)]) == 2
    assert "no [grid]" in capsys.readouterr().err


def test_load_stress_reports_every_problem(tmp_path):
    bad = tmp_path / "two.toml"
    bad.write_text("[stress]\nday = 21\n[spot]\nchange = -2\ndays = 0\n")
    with pytest.raises(ScenarioError) as info:
        load_stress(bad)
    keys = [p.key for p in info.value.problems]
    assert keys == ["spot.change", "spot.days"]
    assert all(p.line is not None for p in info.value.problems)


# --------------------------------------------------------------------------- the pipeline


def test_a_shock_goes_through_the_pipeline_path_by_path(make_scenario):
    """The reference engine on a shocked market: chunking changes nothing, the empty shock is
    the unshocked run, and the crash lowers the equity."""
    scenario = load_scenario(make_scenario(paths=6, chunk_size=6))
    crash = Shock(spot=SpotShock(day=5, change=-0.6))
    whole = simulate(scenario, per_path=True, shock=crash)
    chunked = simulate(scenario, per_path=True, shock=crash, chunk_size=4)
    assert np.array_equal(whole["final_equity"].values, chunked["final_equity"].values)
    plain = simulate(scenario, per_path=True)
    empty = simulate(scenario, per_path=True, shock=Shock())
    assert np.array_equal(plain["final_equity"].values, empty["final_equity"].values)
    assert whole["final_equity"].mean() < plain["final_equity"].mean()
    assert "SpotShock" in whole.attrs["shock"]


# --------------------------------------------------------------------------- the library's effects

STRESS_BASE = """\
[simulation]
paths = 128
seed = 11
years = 0.25
engine = "jax"
"""


@pytest.fixture(scope="module")
def library_run(tmp_path_factory):
    """Every stress of the library on 128 paths of 63 days (the JAX engine, one compile)."""
    directory = tmp_path_factory.mktemp("stress")
    base = directory / "base.toml"
    base.write_text(STRESS_BASE)
    scenario = load_scenario(base)
    specs = [load_stress(p, scenario.simulation.n_steps) for p in LIBRARY]
    ds = run_stress(scenario, specs, progress=False)
    out = directory / "stress.nc"
    write_dataset(ds, out)
    return ds, out


@pytest.fixture(scope="module")
def aggressive_run(tmp_path_factory):
    """The crash on a book sized without the per-expiry cap (one tranche may take the whole
    sleeve's collateral): the shape of book on which a margin call can happen at all."""
    directory = tmp_path_factory.mktemp("aggressive")
    base = directory / "base.toml"
    base.write_text(STRESS_BASE + "[strategy]\nmax_concentration_single_expiration = 1.0\n")
    scenario = load_scenario(base)
    crash = load_stress(ROOT / "scenarios" / "stress" / "overnight_crash.toml", 63)
    return run_stress(scenario, [crash], progress=False)


def both(ds, name, stress, **sel):
    """(limits on, limits off) values of `name` under `stress`."""
    data = ds[name].sel(stress=stress, **sel)
    return [float(data.sel(enforce_limits=e)) for e in (True, False)]


def test_dataset_layout(library_run):
    ds, out = library_run
    assert list(ds["stress"].values) == [BASELINE, *sorted(EXPECTED)]
    assert list(ds["enforce_limits"].values) == [True, False]
    assert ds.attrs["simkit_result"] == "stress" and ds.attrs["paths"] == 128
    for name, variable in ds.variables.items():
        assert variable.attrs.get("units") is not None, name
        assert variable.attrs.get("long_name"), name
    for name in STRESS_VARIABLES:
        assert ds[name].dims[:2] == ("stress", "enforce_limits"), name
    assert ds["breach_path_share"].dims == ("stress", "enforce_limits", "limit")
    assert list(ds["limit"].values) == list(aggregate.LIMITS)
    assert (ds["equity_vs_baseline_mean"].sel(stress=BASELINE) == 0).all()
    with xr.open_dataset(out) as back:
        xr.testing.assert_identical(back.load(), ds)
    # every number is a probability where it must be, and finite where it must be
    for name in ("prob_ruin", "prob_margin_call", "prob_loss", "breach_path_share"):
        assert ((ds[name] >= 0) & (ds[name] <= 1)).all(), name
    assert np.isfinite(ds["stop_loss_saved_mean"]).all()
    assert np.isfinite(ds["var_99"]).all() and (ds["cvar_99"] >= ds["var_99"] - 1e-12).all()


def test_the_crash_loses_and_margin_calls(library_run, aggressive_run):
    ds, _ = library_run
    for e in (True, False):
        at = {"enforce_limits": e}
        crash, none = ds.sel(stress="overnight_crash", **at), ds.sel(stress=BASELINE, **at)
        assert crash["prob_loss"] > none["prob_loss"]
        assert crash["var_95"] > none["var_95"]
        assert crash["equity_vs_baseline_mean"] < 0
        assert crash["max_drawdown_median"] < none["max_drawdown_median"]
    # On the default book (one expiry <= 15 % of the sleeve) the gap is absorbed: early
    # exercise turns the deep puts into shares before the margin check. On a book sized
    # without that cap it margin-calls, and without the limits it ruins.
    ag = aggressive_run
    crash_mc, none_mc = (
        both(ag, "prob_margin_call", "overnight_crash"),
        both(ag, "prob_margin_call", BASELINE),
    )
    assert crash_mc[0] > none_mc[0]
    crash_ruin, none_ruin = (
        both(ag, "prob_ruin", "overnight_crash"),
        both(ag, "prob_ruin", BASELINE),
    )
    assert crash_ruin[1] > none_ruin[1]
    # and enforcing the limits protects the book
    assert crash_ruin[0] <= crash_ruin[1]


def test_the_iv_crush_helps_the_short_puts(library_run):
    ds, _ = library_run
    crush, none = both(ds, "final_equity_mean", "iv_crush"), both(ds, "final_equity_mean", BASELINE)
    assert crush[0] > none[0] and crush[1] > none[1]
    assert both(ds, "win_rate_trade", "iv_crush")[0] > both(ds, "win_rate_trade", BASELINE)[0]
    # the crushed IV closes the puts through the IV exit, cheaply
    assert both(ds, "closes_per_path", "iv_crush", close_reason="iv")[0] > 0


def test_the_squeeze_pays_the_hedges(library_run):
    ds, _ = library_run
    hedge = {"bucket": "call_hedge_pnl"}
    squeeze = both(ds, "attribution_mean", "short_squeeze", **hedge)
    none = both(ds, "attribution_mean", BASELINE, **hedge)
    assert squeeze[0] > none[0] and squeeze[1] > none[1]
    assert squeeze[0] > 0  # the calls more than paid for themselves


def test_the_other_stresses(library_run):
    ds, _ = library_run
    on = {"enforce_limits": True}
    none = ds.sel(stress=BASELINE, **on)

    def at(stress):
        return ds.sel(stress=stress, **on)

    bleed = at("slow_bleed")
    assert bleed["equity_vs_baseline_mean"] < 0 and bleed["prob_loss"] > none["prob_loss"]
    early = {"close_reason": "assigned_early"}
    assert bleed["closes_per_path"].sel(**early) > none["closes_per_path"].sel(**early)

    def spread(d):
        q = d["total_return_quantile"]
        return float(q.sel(quantile=0.95)) - float(q.sel(quantile=0.05))

    assert spread(at("vol_explosion")) > spread(none)

    drought = at("liquidity_drought")
    assert drought["closes_per_path"].sel(close_reason="liquidity") > 0
    assert float(none["closes_per_path"].sel(close_reason="liquidity")) == 0
    assert drought["trades_per_path"] < none["trades_per_path"]

    thesis = at("thesis_break")
    assert thesis["closes_per_path"].sel(close_reason="thesis") > 0
    assert thesis["trades_per_path"] < none["trades_per_path"]

    worst = at("combined_worst_case")
    assert worst["equity_vs_baseline_mean"] < 0 and worst["prob_loss"] > none["prob_loss"]


def test_breach_and_stop_metrics_are_consistent(library_run):
    ds, _ = library_run
    share = ds["breach_path_share"]
    days = ds["days_to_first_breach_median"]
    after = ds["breach_after_shock_share"]
    assert after.sel(stress=BASELINE).isnull().all()  # no shock, no "after"
    assert (after.drop_sel(stress=BASELINE) <= share.drop_sel(stress=BASELINE) + 1e-12).all()
    lgb = ds["loss_given_breach"]
    # a conditional statistic exists exactly where at least MIN_CONDITIONAL paths have the
    # condition; its count is the number of those paths
    count = ds["loss_given_breach_count"]
    assert (count == np.round(share * 128)).all()
    assert (np.isfinite(lgb) == (count >= MIN_CONDITIONAL)).all()
    assert (np.isfinite(days) == (count >= MIN_CONDITIONAL)).all()
    assert (ds["loss_given_no_breach_count"] == 128 - count).all()
    assert ((count > 0) & (count < MIN_CONDITIONAL)).any()  # the rule is exercised
    # the stop-loss comparison: NaN where fewer than MIN_CONDITIONAL paths fired a stop
    fired = ds["stop_loss_saved_given_fired_count"]
    assert (fired == np.round(ds["prob_stop_loss"] * 128)).all()
    given = ds["stop_loss_saved_given_fired"]
    assert (np.isfinite(given) == (fired >= MIN_CONDITIONAL)).all()
    assert (ds["stop_losses_per_path"].sel(stress=BASELINE) > 0).any()


def test_cli_stress_prints_the_tables(tmp_path, capsys, make_scenario):
    scenario = make_scenario(paths=8, chunk_size=8)  # reference engine, 13 days
    crash = tmp_path / "crash.toml"
    crash.write_text('[stress]\ndescription = "a gap"\nday = 5\n[spot]\nchange = -0.6\n')
    out = tmp_path / "s.nc"
    code = main(
        ["stress", str(crash), "--scenario", str(scenario), "--out", str(out), "--no-progress"]
    )
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "outcomes" in stdout and "limit breaches" in stdout and "loss given breach" in stdout
    assert "crash" in stdout and "none" in stdout and "P(ruin)" in stdout
    assert "the shock day" in stdout and "trading after the shock" in stdout
    assert "vs cash" in stdout and "vs unstressed" in stdout and "stopped trading" in stdout
    # 8 paths: every conditional statistic is n/a, with its count
    assert "n/a (8 paths)" in stdout
    assert f"wrote {out}" in stdout
    with xr.open_dataset(out) as ds:
        assert list(ds["stress"].values) == ["none", "crash"]
        assert ds.attrs["paths"] == 8


# --------------------------------------------------------------------------- what a stress does


def test_library_shock_day_return_is_the_equity_move_of_that_day(library_run):
    """The shock-day figures against the daily equity of a separate run of the same paths:
    (E_21 - E_20) / E_20 per path, by hand."""
    ds, _ = library_run
    from simkit.scenario import parse_scenario

    crash = load_stress(ROOT / "scenarios" / "stress" / "overnight_crash.toml", 63)
    run = simulate(parse_scenario(STRESS_BASE), shock=crash.shock, progress=False)
    equity = run["equity_sample"].values.astype(np.float64)  # every path: 128 <= 200
    assert equity.shape == (128, 64)
    returns = (equity[:, 21] - equity[:, 20]) / equity[:, 20]
    at = ds.sel(stress="overnight_crash", enforce_limits=True)
    assert float(at["shock_day_return_count"]) == 128
    assert float(at["shock_day_return_mean"]) == pytest.approx(returns.mean(), rel=1e-12)
    expected = np.quantile(returns, aggregate.QUANTILES)
    assert np.allclose(at["shock_day_return_quantile"].values, expected, rtol=1e-12, atol=0)
    pnl = equity[:, 21] - equity[:, 20]
    assert float(at["shock_day_pnl_mean"]) == pytest.approx(pnl.mean(), rel=1e-12)
    # a -60 % gap on a book of short puts is a loss on the day for every path
    assert (returns < 0).all() and float(at["shock_day_return_quantile"].sel(quantile=0.99)) < 0
    # the baseline has no shock day
    assert ds["shock_day_return_mean"].sel(stress=BASELINE).isnull().all()
    assert (ds["shock_day_return_count"].sel(stress=BASELINE) == 0).all()


def test_library_cash_comparison_and_stopped_trading(library_run):
    ds, _ = library_run
    cash = math.exp(0.05 * 63 / 252) - 1  # the base scenario's r = 5 %, 63 trading days
    assert np.allclose(ds["cash_return"].values, cash, rtol=1e-14, atol=0)
    excess = ds["total_return_mean"] - cash
    assert np.allclose(ds["excess_over_cash_mean"], excess, rtol=0, atol=1e-14)
    assert (ds["excess_over_cash_se"] > 0).all()
    vs_base = ds["total_return_mean"] - ds["total_return_mean"].sel(stress=BASELINE)
    assert np.allclose(ds["total_return_vs_baseline_mean"], vs_base, rtol=0, atol=1e-12)

    stopped = ds["prob_stopped_trading"].drop_sel(stress=BASELINE)
    causes = ds["stopped_trading_share"].drop_sel(stress=BASELINE)
    assert np.allclose(causes.sum("stop_cause"), stopped, rtol=0, atol=1e-12)
    assert ds["prob_stopped_trading"].sel(stress=BASELINE).isnull().all()
    # the thesis break stops every entry (the close-all thesis exit holds from day 21 on)
    thesis = ds.sel(stress="thesis_break")
    assert (thesis["prob_stopped_trading"] == 1).all()
    assert (
        float(
            thesis["stopped_trading_share"].sel(enforce_limits=False, stop_cause="close_all_exit")
        )
        == 1
    )
    assert (thesis["tranches_after_shock_per_path"] == 0).all()
    # unstressed, the same paths keep trading after day 21; after the crash, without limits,
    # every path still sells tranches
    assert (ds["prob_stopped_trading_unstressed"].sel(stress="thesis_break") < 0.05).all()
    crash = ds.sel(stress="overnight_crash", enforce_limits=False)
    assert float(crash["prob_stopped_trading"]) == 0
    # after day 21, days 25, 30, ..., 60 are entry days: at most 8 tranches a path
    assert 0 < float(crash["tranches_after_shock_per_path"]) <= 8
    # the IV crush (IV percentile below the IV exit's 30) halts most entries without stopping
    # most paths outright; its better mean return gets a note that says so
    crush = ds.sel(stress="iv_crush", enforce_limits=True)
    sold = float(crush["tranches_after_shock_per_path"])
    assert sold < 0.5 * float(crush["tranches_after_shock_per_path_unstressed"])
    assert float(crush["total_return_mean"]) > float(
        ds["total_return_mean"].sel(stress=BASELINE, enforce_limits=True)
    )
    notes = [x for x in _printed(ds).splitlines() if x.startswith("* iv_crush, limits on")]
    assert len(notes) == 1 and "halts trading" in notes[0]


def test_counts_before_the_shock_are_the_stressed_runs_own(make_scenario):
    """The run cut at day d - 1 that gives the entry counters before the shock sees the
    stressed run's own days: its final equity is the stressed run's equity on day d - 1."""
    from simkit.stress import _variant

    scenario = load_scenario(make_scenario(paths=6, chunk_size=6))  # reference engine, 13 days
    crash = Shock(spot=SpotShock(day=7, change=-0.6), thesis=ThesisShock(day=7))
    full = simulate(scenario, per_path=True, shock=crash, equity_days=(6, 7), progress=False)
    short = simulate(_variant(scenario, True, True, n_steps=6), per_path=True, shock=Shock())
    assert short.attrs["n_steps"] == 6
    assert np.array_equal(full["equity_day_6"].values, short["final_equity"].values)
    assert np.array_equal(full["equity_day_6"].values, full["equity_sample"].values[:, 6])
    assert full["equity_day_7"].attrs["units"] == "USD"
    for name in ENTRY_COUNTERS:
        assert (full[name].values >= short[name].values).all(), name
    # the thesis breaks on day 7: nothing is sold after it
    assert np.array_equal(full["n_tranches"].values, short["n_tranches"].values)
    with pytest.raises(ValueError, match="equity_days"):
        simulate(scenario, equity_days=(14,))


CASH_ONLY = """\
[simulation]
paths = 32
seed = 3
years = 0.05
chunk_size = 32
engine = "reference"
float64 = true

[market]
vix = 10.0                 # below signal_vix_min: one condition of the 8 fails

[strategy]
signal_min_conditions = 8  # so the entry signal never holds: the sleeve stays in cash
"""


def test_a_cash_only_book_by_hand(tmp_path):
    """No trade is ever made: the sleeve is cash growing by exp(r / 252) a day. The crash then
    moves it by exactly that on its day, it returns exp(r T) - 1 (nothing over cash), and every
    path 'stopped trading' after the shock because the entry signal blocked every entry day."""
    base = tmp_path / "cash.toml"
    base.write_text(CASH_ONLY)
    scenario = load_scenario(base)
    spec = StressSpec("crash", "a gap", Shock(spot=SpotShock(day=5, change=-0.6)))
    ds = run_stress(scenario, [spec], progress=False)
    g = math.exp(0.05 / 252)
    at = ds.sel(stress="crash", enforce_limits=True)
    assert float(at["trades_per_path"]) == 0
    assert float(at["shock_day_return_count"]) == 32
    assert float(at["shock_day_return_mean"]) == pytest.approx(g - 1, rel=1e-9)
    assert np.allclose(at["shock_day_return_quantile"], g - 1, rtol=1e-9)
    sleeve = 1_000_000 * 0.20
    assert float(at["shock_day_pnl_mean"]) == pytest.approx(sleeve * g**4 * (g - 1), rel=1e-9)
    cash = math.exp(0.05 * 13 / 252) - 1
    assert float(at["cash_return"]) == pytest.approx(cash, rel=1e-14)
    assert float(at["total_return_mean"]) == pytest.approx(cash, rel=1e-9)
    assert abs(float(at["excess_over_cash_mean"])) < 1e-12
    assert float(at["prob_stopped_trading"]) == 1
    assert float(at["stopped_trading_share"].sel(stop_cause="signal")) == 1
    assert float(at["prob_stopped_trading_unstressed"]) == 1


# --------------------------------------------------------------------------- hand-made paths


def fake_paths(n: int, n_steps: int = 20, **fields) -> dict[str, np.ndarray]:
    """A per-path summary of `n` paths: nothing happens (no trade, no breach, equity 100)
    unless `fields` says so."""
    zeros = np.zeros(n)
    out = {
        "initial_equity": np.full(n, 100.0),
        "final_equity": np.full(n, 100.0),
        "contributions": zeros,
        "total_return": zeros,
        "annual_return": zeros,
        "max_drawdown": zeros,
        "ruined": zeros,
        "n_margin_calls": zeros,
        "n_trades": zeros,
        "n_wins": zeros,
        **{b: zeros for b in aggregate.BUCKETS},
        **{
            f"n_{r}"
            if r in ("expired_otm", "assigned_expiry", "assigned_early")
            else f"n_close_{r}": zeros
            for r in aggregate.CLOSE_REASONS
        },
        **{name: zeros for name in ENTRY_COUNTERS},
    }
    for limit in aggregate.LIMITS:
        out[f"breach_{limit}"] = zeros
        out[f"first_breach_{limit}"] = np.full(n, -1.0)
    out.update({k: np.asarray(v, dtype=np.float64) for k, v in fields.items()})
    return out


def test_conditional_statistics_need_30_paths():
    n = 100
    loss = np.linspace(-0.5, 0.5, n)
    total = -loss
    breached = lambda k: np.where(np.arange(n) < k, 3.0, 0.0)  # noqa: E731
    first = lambda k: np.where(np.arange(n) < k, 5.0, -1.0)  # noqa: E731
    per_path = fake_paths(
        n,
        total_return=total,
        final_equity=100 * (1 + total),
        breach_allocation=breached(29),
        first_breach_allocation=first(29),
        breach_expiry=breached(30),
        first_breach_expiry=first(30),
        n_close_stop=breached(29),
    )
    out = stress_metrics(
        per_path,
        n_steps=20,
        shock_day=3,
        no_stop={"final_equity": per_path["final_equity"] - 1.0},
    )
    alloc, expiry = aggregate.LIMITS.index("allocation"), aggregate.LIMITS.index("expiry")
    assert out["loss_given_breach_count"][alloc] == 29
    assert math.isnan(out["loss_given_breach"][alloc])
    assert math.isnan(out["days_to_first_breach_median"][alloc])
    assert out["loss_given_breach_count"][expiry] == 30
    assert out["loss_given_breach"][expiry] == pytest.approx(loss[:30].mean(), rel=1e-14)
    assert out["days_to_first_breach_median"][expiry] == 5
    assert out["days_to_first_breach_after_shock_count"][expiry] == 30
    assert out["days_to_first_breach_after_shock_median"][expiry] == 2
    assert out["loss_given_no_breach_count"][expiry] == 70
    assert out["loss_given_no_breach"][expiry] == pytest.approx(loss[30:].mean(), rel=1e-14)
    # 29 paths fired a stop: the mean saved over them is n/a, the mean over all paths is not
    assert out["stop_loss_saved_given_fired_count"] == 29
    assert math.isnan(out["stop_loss_saved_given_fired"])
    assert out["stop_loss_saved_mean"] == pytest.approx(1.0)
    # no breach on day 0
    assert out["breach_at_start_share"][expiry] == 0


def test_stopped_trading_causes_by_hand():
    """Eight paths, their entry counters from the shock on (stressed minus before) made up
    so that each path has one known cause."""
    before = {name: np.full(8, 2.0) for name in ENTRY_COUNTERS}
    #            path: 0  1  2  3  4  5  6  7
    tranches = np.array([3, 2, 2, 2, 2, 2, 2, 2]) + 0.0  # path 0 sold one after the shock
    entry = np.array([4, 4, 5, 5, 5, 5, 5, 2]) + 0.0  # path 7: no entry day after it
    signal = np.array([0, 0, 3, 0, 0, 1, 0, 0]) + 2.0
    limits = np.array([0, 0, 0, 3, 0, 1, 0, 0]) + 2.0
    exits = np.array([0, 0, 0, 0, 3, 1, 1, 0]) + 2.0
    ruined = np.array([0, 1, 0, 0, 0, 0, 0, 0])
    per_path = fake_paths(
        8,
        n_tranches=tranches,
        n_entry_days=entry,
        n_blocked_signal=signal,
        n_blocked_limits=limits,
        n_blocked_exit=exits,
        ruined=ruined,
    )
    out = stress_metrics(per_path, n_steps=20, shock_day=3, before=before)
    expected = {"ruin": 1, "signal": 1, "limits": 1, "close_all_exit": 1, "mixed": 1, "other": 2}
    assert out["prob_stopped_trading"] == pytest.approx(7 / 8)
    assert out["stopped_trading_share"] == pytest.approx([expected[c] / 8 for c in STOP_CAUSES])
    assert out["tranches_after_shock_per_path"] == pytest.approx(1 / 8)


def _dataset(results: dict, specs: list, tmp_path: Path, n_steps: int = 20):
    from simkit.run import resolve_settings

    base = tmp_path / "base.toml"
    base.write_text(f'[simulation]\npaths = 40\nyears = {n_steps / 252}\nengine = "reference"\n')
    scenario = load_scenario(base)
    settings = resolve_settings(scenario)
    return build_stress_dataset(scenario, specs, settings, results, wall_time_s=0.0, device="")


def _printed(ds) -> str:
    from rich.console import Console

    from simkit.cli import print_stress_tables

    console = Console(file=io.StringIO(), markup=False, highlight=False, width=1000)
    print_stress_tables(ds, console)
    return console.file.getvalue()


def test_a_limit_breached_always_is_one_line_with_its_reason(tmp_path):
    """Allocation breached on every day of every path, expiry breached by every path on
    day 0 (then on some days), strike by some paths: two lines, one column."""
    n, n_steps = 40, 20
    paths_for = dict(
        breach_allocation=np.full(n, n_steps + 1.0),
        first_breach_allocation=np.zeros(n),
        breach_expiry=np.full(n, 4.0),
        first_breach_expiry=np.zeros(n),
        breach_strike=np.where(np.arange(n) < 35, 2.0, 0.0),
        first_breach_strike=np.where(np.arange(n) < 35, 9.0, -1.0),
    )
    specs = [
        StressSpec(BASELINE, "none", Shock()),
        StressSpec("crash", "a gap", Shock(spot=SpotShock(day=3, change=-0.6))),
    ]
    results = {}
    for spec in specs:
        for enforce in (True, False):
            results[(spec.name, enforce)] = stress_metrics(
                fake_paths(n, n_steps, **paths_for), n_steps=n_steps, shock_day=spec.shock.first_day
            )
    ds = _dataset(results, specs, tmp_path, n_steps)
    # the default sizing: a 20 % sleeve at 1.5x leverage holds up to 30 % > the 20 % limit
    assert "a 20 % sleeve at 1.5x leverage" in str(ds["limit_rule"].sel(limit="allocation").values)
    text = _printed(ds)
    lines = [line for line in text.splitlines() if line.startswith("always breached")]
    assert len(lines) == 2, text
    assert lines[0].startswith("always breached at this sizing: allocation (every day of every")
    assert "30 % of the portfolio" in lines[0] and "20 % limit" in lines[0]
    assert lines[1].startswith("always breached at this sizing: expiry (by the first tranche")
    assert "19.0%-19.0% of path-days" in lines[1]  # 4 days of 21
    table = text.split("limit breaches")[1].split("loss given breach")[0]
    assert "allocation" not in table and "expiry" not in table
    assert "strike" in table and "87.5% [day 9]" in table  # 35 of 40 paths
    assert "100.0%" not in table


def test_a_stress_that_stops_trading_gets_a_note(tmp_path):
    """The unstressed strategy loses 20 %; the stress stops 90 % of the paths trading after
    its day and loses 10 %: the row is marked and a note says why."""
    n, n_steps = 40, 20
    specs = [
        StressSpec(BASELINE, "none", Shock()),
        StressSpec("halt", "stops trading", Shock(thesis=ThesisShock(day=5))),
    ]
    before = {name: np.full(n, 1.0) for name in ENTRY_COUNTERS}
    stopped = np.arange(n) < 36
    halted = fake_paths(
        n,
        n_steps,
        total_return=np.full(n, -0.1),
        final_equity=np.full(n, 90.0),
        n_tranches=np.where(stopped, 1.0, 3.0),
        n_entry_days=np.full(n, 4.0),
        n_blocked_exit=np.where(stopped, 4.0, 1.0),
        equity_day_4=np.full(n, 100.0),
        equity_day_5=np.full(n, 97.0),
    )
    plain = fake_paths(
        n,
        n_steps,
        total_return=np.full(n, -0.2),
        final_equity=np.full(n, 80.0),
        n_tranches=np.full(n, 4.0),
    )
    results = {}
    for enforce in (True, False):
        results[(BASELINE, enforce)] = stress_metrics(plain, n_steps=n_steps, shock_day=-1)
        results[("halt", enforce)] = stress_metrics(
            halted, n_steps=n_steps, shock_day=5, before=before, baseline=plain, cash_return=0.01
        )
    ds = _dataset(results, specs, tmp_path, n_steps)
    at = ds.sel(stress="halt", enforce_limits=True)
    assert float(at["shock_day_return_mean"]) == pytest.approx(-0.03)
    assert float(at["excess_over_cash_mean"]) == pytest.approx(-0.11)
    assert float(at["total_return_vs_baseline_mean"]) == pytest.approx(0.1)
    assert float(at["prob_stopped_trading"]) == pytest.approx(0.9)
    assert float(at["prob_stopped_trading_unstressed"]) == 0
    assert float(at["tranches_after_shock_per_path"]) == pytest.approx(0.2)
    assert float(at["tranches_after_shock_per_path_unstressed"]) == 3
    text = _printed(ds)
    assert "90.0% *" in text
    notes = [line for line in text.splitlines() if line.startswith("* halt")]
    assert len(notes) == 2, text
    assert "mean return -10.0% beats the unstressed -20.0%" in notes[0]
    assert "from day 5 on the paths sell 0.2 tranches each against 3 unstressed" in notes[0]
    assert "and 90.0% sell none (close all exit 90.0%) against 0.0% unstressed" in notes[0]
    assert "against cash it is -11.0%" in notes[0]


def test_an_interrupted_stress_run_redoes_only_what_had_not_finished(
    make_scenario, tmp_path, monkeypatch
):
    """A stress run writing `out` keeps each finished (stress, limits) pair in `<out>.partial/`;
    interrupted and started again it runs only the pairs left, and gives the same dataset."""
    from simkit import run as run_module
    from simkit.store import partial_dir

    scenario = load_scenario(make_scenario(paths=6, chunk_size=6))
    spec = StressSpec("crash", "a gap", Shock(spot=SpotShock(day=5, change=-0.6)))
    whole = run_stress(scenario, [spec], progress=False)
    out = tmp_path / "stress.nc"
    real, calls, fail_at = run_module.simulate, [], [5]

    def interrupted(*args, **kwargs):
        calls.append(kwargs.get("shock"))
        if len(calls) == fail_at[0]:  # the baseline's two pairs (with and without stops) done
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "simulate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_stress(scenario, [spec], progress=False, out=out)
    assert not out.exists()
    assert len(list(partial_dir(out).glob("*.npz"))) == 2
    calls.clear()
    fail_at[0] = 0
    resumed = run_stress(scenario, [spec], progress=False, out=out)
    assert all(shock == spec.shock or shock == Shock() for shock in calls)  # no baseline rerun
    assert len(calls) == 6  # per limits setting: the counters before the shock, stops on, off
    assert out.exists() and not partial_dir(out).exists()
    for name in whole.data_vars:
        np.testing.assert_array_equal(resumed[name].values, whole[name].values, err_msg=name)
    np.testing.assert_array_equal(
        xr.open_dataset(out)["total_return_mean"], whole["total_return_mean"]
    )
