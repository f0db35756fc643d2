"""Stress tests: the shock arithmetic on hand-built markets, stress-file validation, and that
each stress of the library moves the strategy's metrics the way it must."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from simkit import aggregate
from simkit.cli import main
from simkit.paths.market import MarketParams
from simkit.run import simulate
from simkit.scenario import ScenarioError, load_scenario, load_stress
from simkit.store import write_dataset
from simkit.stress import (
    BASELINE,
    STRESS_VARIABLES,
    IVShock,
    RealizedVolShock,
    SetShock,
    Shock,
    SpotShock,
    ThesisShock,
    apply_shock,
    ramp,
    run_stress,
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
    # a median day exists exactly where some path breached
    assert (np.isfinite(days) == (share > 0)).all()
    after = ds["breach_after_shock_share"]
    assert after.sel(stress=BASELINE).isnull().all()  # no shock, no "after"
    assert (after.drop_sel(stress=BASELINE) <= share.drop_sel(stress=BASELINE) + 1e-12).all()
    lgb = ds["loss_given_breach"]
    assert (np.isfinite(lgb) == (share > 0)).all()
    # the stop-loss comparison: NaN only where no stop fired on any path
    fired = ds["prob_stop_loss"] > 0
    given = ds["stop_loss_saved_given_fired"]
    assert (np.isfinite(given) == fired).all()
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
    assert f"wrote {out}" in stdout
    with xr.open_dataset(out) as ds:
        assert list(ds["stress"].values) == ["none", "crash"]
        assert ds.attrs["paths"] == 8
