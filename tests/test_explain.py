"""`simkit explain`: each rule's cost on the scenario's own paths.

Checked against answers known without explain: with the rate at 0, the hedges off, the limits
not enforced and the capacity limits binding (so that cash never changes a contract count),
removing the commission raises each path's final equity by exactly the commissions that path
paid (its `transaction_costs` bucket); with every exit off as well, every path pays the same
commissions, so the true delta is one known number and the paired interval has no width.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from simkit import explain as ex
from simkit import kelly_sleeve
from simkit.cli import main
from simkit.run import simulate
from simkit.scenario import load_scenario, parse_override

ROOT = Path(__file__).resolve().parents[1]
FAST = 200  # bootstrap replicates in the tests (the default is 1000)

# 13 daily steps (entries on days 0, 5 and 10), float64 reference engine.
SIM = """\
[simulation]
paths = {paths}
seed = 11
years = 0.05
chunk_size = {paths}
engine = "reference"
float64 = true
"""
# Commissions that change nothing else: no interest on cash (rate 0), no hedges (their count
# depends on the premium net of commissions), limits not enforced, and 2 contracts a strike a
# day (0.2 x option_volume 10) far below what the budget would buy, so cash never changes a
# contract count.
COMMISSION_ONLY = """
[market]
rate = 0.0
option_volume = 10.0

[hedges]
hedges = false

[limits]
enforce_limits = false
"""
# ... and nothing ever closes (the puts expire after the horizon): every path sells
# 3 tranches x 5 strikes x 2 contracts and pays 30 x 0.65 = 19.50 USD of commission.
HOLD_ALL = """
[exits]
profit_take = false
stop_loss = false
time_exit = false
iv_exit = false
liquidity_exit = false
thesis_exit = false

[assignment]
early_assignment = false
"""
COMMISSION = next(c for c in ex.CHANGES if c.key == "execution.commission")
CAPACITY = next(c for c in ex.CHANGES if c.key == "execution.capacity_limits")
HEDGES = next(c for c in ex.CHANGES if c.key == "hedges.hedges")
FILL = next(c for c in ex.CHANGES if c.key == "execution.fill")


def scenario_file(tmp_path: Path, body: str = "", paths: int = 48, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(SIM.format(paths=paths) + body)
    return path


# --------------------------------------------------------------------------- known answers


def test_no_commission_returns_each_paths_commissions_exactly(tmp_path):
    scenario = load_scenario(scenario_file(tmp_path, COMMISSION_ONLY))
    # The answer, from the scenario run alone: each path's commissions.
    base = simulate(scenario, per_path=True, progress=False)
    commissions = -base["transaction_costs"].values
    assert commissions.min() > 0 and np.ptp(commissions) > 0  # paid, and not the same everywhere
    assert (base["contracts_cut"].values > 0).all()  # the capacity limit binds on every path

    ds = ex.explain(scenario, changes=[COMMISSION], per_path=True, progress=False, replicates=FAST)
    np.testing.assert_array_equal(ds["base_final_equity"].values, base["final_equity"].values)
    gained = ds["final_equity"].sel(change=COMMISSION.label).values - base["final_equity"].values
    np.testing.assert_allclose(gained, commissions, rtol=0, atol=1e-6)
    delta = float(ds["final_equity_mean_delta"].sel(change=COMMISSION.label))
    assert delta == pytest.approx(commissions.mean(), rel=1e-12)
    assert int(ds["paths_changed"].sel(change=COMMISSION.label)) == commissions.size


def test_paired_interval_holds_the_known_delta_and_is_narrower_than_unpaired(tmp_path):
    scenario = load_scenario(scenario_file(tmp_path, COMMISSION_ONLY + HOLD_ALL))
    base = simulate(scenario, per_path=True, progress=False)
    commissions = -base["transaction_costs"].values
    np.testing.assert_allclose(commissions, 30 * 0.65, rtol=0, atol=1e-9)  # the known delta

    ds = ex.explain(scenario, changes=[COMMISSION], per_path=True, progress=False, replicates=FAST)
    one = ds.sel(change=COMMISSION.label)
    lo, hi = float(one["final_equity_mean_delta_lo"]), float(one["final_equity_mean_delta_hi"])
    assert lo - 1e-6 <= 30 * 0.65 <= hi + 1e-6
    final0 = ds["base_final_equity"].values
    final1 = one["final_equity"].values
    n = final0.size
    unpaired = 2 * 1.96 * math.sqrt(final0.var(ddof=1) / n + final1.var(ddof=1) / n)
    assert unpaired > 100.0  # the paths differ by far more than the commissions
    assert hi - lo < 1e-6 * unpaired
    # The annual return's paired interval is narrower than the unpaired one as well.
    r_lo, r_hi = (
        float(one["annual_return_mean_delta_lo"]),
        float(one["annual_return_mean_delta_hi"]),
    )
    se0, se1 = (
        float(base["annual_return_mean_se"]),
        float(
            simulate(
                load_scenario(scenario.path, {COMMISSION.key: COMMISSION.value}),
                per_path=False,
                progress=False,
            )["annual_return_mean_se"]
        ),
    )
    assert 0 < r_hi - r_lo < 0.01 * 2 * 1.96 * math.hypot(se0, se1)


def test_paired_statistics_on_a_known_shift():
    rng = np.random.default_rng(3)
    base = rng.normal(0.0, 1.0, 4000)  # large differences between paths
    changed = base + 0.05 + rng.normal(0.0, 0.01, base.size)  # a small effect on each path
    delta = changed.mean() - base.mean()
    lo, hi, se = ex.paired_mean_interval(changed, base, delta)
    assert lo < 0.05 < hi
    unpaired = 1.96 * math.hypot(base.std(ddof=1), changed.std(ddof=1)) / math.sqrt(base.size)
    assert hi - lo < 0.05 * 2 * unpaired
    assert se == pytest.approx(0.01 / math.sqrt(base.size), rel=0.05)

    shifted = base + 0.05  # the median moves by exactly 0.05 on every resample
    b_lo, b_hi, stats = ex.paired_bootstrap(np.median, shifted, base, replicates=FAST)
    assert b_lo == pytest.approx(0.05, abs=1e-12) and b_hi == pytest.approx(0.05, abs=1e-12)
    assert stats.shape == (FAST,)
    # The same seed draws the same indices: passing the base replicates back changes nothing.
    again = ex.paired_bootstrap(np.median, changed, base, replicates=FAST, base_replicates=stats)
    fresh = ex.paired_bootstrap(np.median, changed, base, replicates=FAST)
    assert again[:2] == fresh[:2]


@pytest.mark.parametrize("mean", [-0.2, 0.0, 0.08, 0.3])
def test_sleeve_kelly_fraction_is_kelly_sleeves(mean):
    rng = np.random.default_rng(5)
    returns = rng.normal(mean, 0.4, 3000).clip(-0.99, None)
    cash = math.expm1(0.05)
    expected = kelly_sleeve.kelly_sleeve(returns, cash)["fraction"]
    assert ex.sleeve_kelly_fraction(returns, cash) == pytest.approx(expected, abs=1e-9)


# --------------------------------------------------------------------------- no-ops, labels


def test_a_change_that_never_acts_gives_exactly_zero(tmp_path):
    # Capacity never binds at the default open interest and volume for a $200k sleeve.
    scenario = load_scenario(scenario_file(tmp_path, paths=32))
    ds = ex.explain(scenario, changes=[CAPACITY], progress=False, replicates=FAST)
    one = ds.sel(change=CAPACITY.label)
    assert int(one["paths_changed"]) == 0
    for m in ex.METRICS:
        assert float(one[f"{m.name}_delta"]) == 0.0
        assert float(one[f"{m.name}_delta_lo"]) == 0.0 == float(one[f"{m.name}_delta_hi"])
        assert float(one[m.name]) == float(ds[f"base_{m.name}"])


def test_a_change_already_in_the_scenario_is_skipped_and_said(tmp_path):
    scenario = load_scenario(scenario_file(tmp_path, COMMISSION_ONLY))  # hedges already off
    planned, skipped = ex.plan_changes(scenario, [HEDGES, FILL])
    assert [c for c, _ in planned] == [FILL]
    assert [c for c, _ in skipped] == [HEDGES] and "no-op" in skipped[0][1]
    ds = ex.explain(scenario, changes=[HEDGES, FILL], progress=False, replicates=FAST)
    assert list(ds["change"].values) == [FILL.label]
    said = json.loads(ds.attrs["skipped_changes"])
    assert said == [{"change": "hedges.hedges=false", "reason": skipped[0][1]}]


def test_every_change_names_a_real_key_and_changes_the_baseline():
    baseline = load_scenario(ROOT / "scenarios" / "baseline.toml")
    planned, skipped = ex.plan_changes(baseline)  # an unknown key would raise ScenarioError
    assert skipped == [] and len(planned) == len(ex.CHANGES)
    for change in ex.CHANGES:
        assert parse_override(change.label) == (change.key, change.value)
    labels = [c.label for c in ex.CHANGES]
    assert "hedges.hedges=false" in labels
    assert 'execution.fill="mid"' in labels
    assert "execution.commission=0" in labels
    assert "limits.enforce_limits=false" in labels
    assert "exits.stop_loss=false" in labels


@pytest.fixture(scope="module")
def four_changes(tmp_path_factory):
    path = scenario_file(tmp_path_factory.mktemp("explain"), paths=32)
    scenario = load_scenario(path)
    changes = [CAPACITY, COMMISSION, FILL, HEDGES]
    return scenario, ex.explain(scenario, changes=changes, progress=False, replicates=FAST)


def test_labels_are_the_override_text_sorted_by_the_return_delta(four_changes):
    _, ds = four_changes
    assert sorted(ds["change"].values) == sorted(
        [
            "execution.capacity_limits=false",
            "execution.commission=0",
            'execution.fill="mid"',
            "hedges.hedges=false",
        ]
    )
    size = np.abs(ds["annual_return_mean_delta"].values)
    assert (np.diff(size) <= 0).all() and size[0] > size[-1] == 0.0
    assert list(ds["change"].values)[-1] == CAPACITY.label  # the one that never acts
    for label, key in zip(ds["change"].values, ds["change_key"].values, strict=True):
        assert parse_override(str(label))[0] == key


def test_values_are_the_runs_own_and_the_file_is_described(four_changes, tmp_path):
    scenario, ds = four_changes
    base = simulate(scenario, progress=False)
    hedged_off = simulate(load_scenario(scenario.path, {"hedges.hedges": False}), progress=False)
    for m in ex.METRICS:
        assert float(ds[f"base_{m.name}"]) == float(base[m.name])
        assert float(ds[m.name].sel(change=HEDGES.label)) == float(hedged_off[m.name])
        delta = float(ds[f"{m.name}_delta"].sel(change=HEDGES.label))
        assert delta == float(hedged_off[m.name]) - float(base[m.name])
    for name in list(ds.data_vars) + list(ds.coords):
        assert ds[name].attrs.get("units") and ds[name].attrs.get("long_name"), name
    assert ds.attrs["scenario_text"] == scenario.text
    assert ds.attrs["seed"] == 11 and ds.attrs["paths"] == 32
    assert ds.attrs["simkit_result"] == "explain"


# --------------------------------------------------------------------------- command line


def test_cli_writes_the_file_and_the_report_draws_the_tornado(capsys, tmp_path):
    path = scenario_file(tmp_path, paths=16)
    out = tmp_path / "out" / "s.explain.nc"
    assert main(["explain", str(path), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "hedges.hedges=false" in printed and f"wrote {out}" in printed
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.sizes["change"] == len(ex.CHANGES)
        assert int(ds["paths"]) == 16
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "explain_tornado.png").stat().st_size > 10_000
    assert "explain_tornado" in (tmp_path / "report" / "index.html").read_text()


def test_cli_default_output_name(capsys, tmp_path, monkeypatch):
    path = scenario_file(tmp_path, COMMISSION_ONLY + HOLD_ALL, paths=8, name="held.toml")
    monkeypatch.chdir(tmp_path)
    args = ["explain", str(path), "--set", "execution.fill=mid", "--no-progress"]
    assert main(args) == 0
    assert "skipped execution.fill=" in capsys.readouterr().out  # --set made it a no-op
    assert (tmp_path / "results" / "held.explain.nc").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["missing.toml"], "no such file"),
        (["GRID"], "grid"),
        (["OK", "--paths", "0"], "simulation.paths"),
        (["OK", "--set", "exits.no_such_key=1"], "no_such_key"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(capsys, tmp_path, args, needle):
    ok = scenario_file(tmp_path, paths=8)
    grid = scenario_file(tmp_path, '\n[grid]\n"market.sigma" = [1.5, 3.0]\n', name="grid.toml")
    args = [{"OK": str(ok), "GRID": str(grid)}.get(a, a) for a in args]
    out = tmp_path / "x.explain.nc"
    assert main(["explain", *args, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not out.exists()
