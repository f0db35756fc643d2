"""The run pipeline: chunking, executors, reruns and resumes change nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from simkit import metrics
from simkit.aggregate import derive_block
from simkit.run import simulate
from simkit.scenario import ScenarioError, load_scenario
from simkit.store import partial_dir

GRID_2 = '\n[grid]\n"market.sigma" = [1.5, 3.0]\n'
GRID_2X2 = '\n[grid]\n"market.sigma" = [1.5, 3.0]\n"exits.stop_loss_multiple" = [1.0, 2.0]\n'


def assert_same_data(a: xr.Dataset, b: xr.Dataset) -> None:
    """Every variable and coordinate equal bit for bit, with the same dtype (attrs aside)."""
    assert set(a.variables) == set(b.variables)
    for name in a.variables:
        x, y = a[name].values.reshape(-1), b[name].values.reshape(-1)
        assert x.dtype == y.dtype, name
        if np.issubdtype(x.dtype, np.floating):
            assert np.array_equal(x.view(np.uint8), y.view(np.uint8)), name
        else:
            assert np.array_equal(x, y), name
    xr.testing.assert_equal(a, b)


# --------------------------------------------------------------------------- invariance


def test_chunk_size_changes_nothing(make_scenario):
    scenario = load_scenario(make_scenario(paths=50, grid=GRID_2))
    runs = [
        simulate(scenario, chunk_size=chunk, per_path=True, scheduler="synchronous")
        for chunk in (7, 16, 50)
    ]
    assert runs[0].sizes["path"] == 50
    assert runs[0]["final_equity"].dims == ("market.sigma", "path")
    for other in runs[1:]:
        assert_same_data(runs[0], other)


def test_executors_change_nothing(make_scenario):
    """In process, threads, and a LocalCluster of two worker processes."""
    scenario = load_scenario(make_scenario(paths=32, chunk_size=8, grid=GRID_2))
    base = simulate(scenario, per_path=True, scheduler="synchronous")
    assert base.attrs["executor"] == "synchronous"
    for scheduler in ("threads", "processes"):
        other = simulate(scenario, per_path=True, scheduler=scheduler)
        assert other.attrs["executor"] == scheduler
        assert_same_data(base, other)


def test_default_executor_is_two_threads_and_keeps_each_blocks_precision(make_scenario):
    """The default runs JAX blocks on two threads; x64 mode is per thread, so float64 blocks
    on both threads at once are float64 through and through, equal to the in-process run."""
    scenario = load_scenario(make_scenario(paths=48, chunk_size=8, engine="jax"))
    for float64 in (True, False):
        base = simulate(scenario, per_path=True, scheduler="synchronous", float64=float64)
        other = simulate(scenario, per_path=True, float64=float64)
        assert other.attrs["executor"] == "threads"
        assert base["final_equity"].dtype == (np.float64 if float64 else np.float32)
        assert_same_data(base, other)


def test_rerun_is_identical(make_scenario, tmp_path):
    scenario = load_scenario(make_scenario(grid=GRID_2))
    first = simulate(scenario, per_path=True, out=tmp_path / "a.nc")
    second = simulate(scenario, per_path=True, out=tmp_path / "b.nc")
    assert_same_data(first, second)
    with xr.open_dataset(tmp_path / "a.nc") as a, xr.open_dataset(tmp_path / "b.nc") as b:
        assert_same_data(a.load(), b.load())
        check_common_histograms(a.load())


def check_common_histograms(ds) -> None:
    """Every cell's histogram on the same edges: equal bins from the lowest cell's 0.5 %
    quantile to the highest cell's 99.5 % quantile (independent truth: NumPy on the per-path
    values), bin centres as the coordinate, and xarray draws them as they are."""
    import matplotlib

    matplotlib.use("Agg")
    grid = list(ds["paths"].dims)
    for name in ("total_return", "max_drawdown"):
        values = ds[name].transpose(*grid, "path").values.reshape(-1, ds.sizes["path"])
        ranges = np.array([np.quantile(v[np.isfinite(v)], (0.005, 0.995)) for v in values])
        lo, hi = ranges[:, 0].min(), ranges[:, 1].max()
        assert ranges[:, 0].max() > lo or ranges[:, 1].min() < hi  # the cells differ
        edges = ds[f"{name}_bin_edge"].values
        assert np.array_equal(edges, np.histogram_bin_edges([], bins=60, range=(lo, hi)))
        assert np.array_equal(ds[f"{name}_bin"].values, (edges[:-1] + edges[1:]) / 2)
        hist = ds[f"{name}_hist"].transpose(*grid, f"{name}_bin").values.reshape(len(values), -1)
        for v, counts in zip(values, hist, strict=True):
            want = np.histogram(np.clip(v, lo, hi), bins=60, range=(lo, hi))[0]
            assert np.array_equal(counts, want)
        one = ds[f"{name}_hist"].isel({d: 0 for d in grid})
        (line,) = one.plot.step()
        assert np.array_equal(line.get_xdata(), ds[f"{name}_bin"].values)
        assert ds[f"{name}_bin"].attrs["units"] == "1"


def test_aggregates_match_the_per_path_arrays(make_scenario):
    ds = simulate(load_scenario(make_scenario(paths=64)), per_path=True, scheduler="synchronous")
    assert int(ds["paths"]) == 64
    assert float(ds["prob_ruin"]) == ds["ruined"].values.mean()
    wins, trades = ds["n_wins"].values.sum(), ds["n_trades"].values.sum()
    assert float(ds["win_rate_trade"]) == pytest.approx(wins / trades)
    assert float(ds["kelly_p"]) == pytest.approx(wins / trades)
    pnl = ds["final_equity"] - ds["contributions"] - ds["initial_equity"]
    assert float(ds["win_rate_path"]) == pytest.approx(float((pnl > 0).mean()))
    total = ds["total_return"].values
    assert float(ds["var_99"]) == metrics.value_at_risk(total, 0.99)
    assert float(ds["cvar_95"]) == metrics.conditional_value_at_risk(total, 0.95)
    assert float(ds["annual_return_median"]) == np.median(ds["annual_return"].values)
    assert float(ds["max_drawdown_median"]) == np.median(ds["max_drawdown"].values)
    assert float(ds["close_reason_share"].sum()) == pytest.approx(1.0)
    assert ds["equity_sample"].shape == (64, 14)
    assert (
        float(ds["win_rate_trade_lo"])
        <= float(ds["win_rate_trade"])
        <= float(ds["win_rate_trade_hi"])
    )


def test_bad_run_options_are_scenario_errors(tiny_scenario):
    scenario = load_scenario(tiny_scenario)
    for kwargs, key in (
        ({"paths": 0}, "simulation.paths"),
        ({"chunk_size": -1}, "simulation.chunk_size"),
        ({"seed": -3}, "simulation.seed"),
        ({"engine": "numba"}, "simulation.engine"),
    ):
        with pytest.raises(ScenarioError, match=key):
            simulate(scenario, **kwargs)
    with pytest.raises(ValueError, match="scheduler"):
        simulate(scenario, scheduler="gpu-cluster")


# --------------------------------------------------------------------------- resume


def test_resume_after_failure_reuses_finished_blocks(make_scenario, tmp_path, engine_calls):
    scenario = load_scenario(make_scenario(paths=32, chunk_size=8, grid=GRID_2X2))  # 16 blocks
    out = tmp_path / "run.nc"
    engine_calls["fail_at"] = 6
    with pytest.raises(RuntimeError, match="injected failure"):
        simulate(scenario, out=out, per_path=True)
    assert not out.exists()
    saved = sorted(partial_dir(out).glob("*.npz"))
    assert len(saved) == 5

    engine_calls["fail_at"] = None
    engine_calls["calls"].clear()
    resumed = simulate(scenario, out=out, per_path=True)
    assert len(engine_calls["calls"]) == 16 - 5
    assert not partial_dir(out).exists()

    engine_calls["calls"].clear()
    clean = simulate(scenario, out=tmp_path / "clean.nc", per_path=True)
    assert len(engine_calls["calls"]) == 16
    assert_same_data(resumed, clean)
    with xr.open_dataset(out) as a, xr.open_dataset(tmp_path / "clean.nc") as b:
        assert_same_data(a.load(), b.load())


def test_resume_with_a_gap_reads_later_blocks_only_when_reached(
    make_scenario, tmp_path, engine_calls, monkeypatch
):
    """Saved blocks behind a missing one are read when the cell's reduction reaches them
    (none waits in memory), and the result is the uninterrupted run's."""
    from simkit import aggregate

    scenario = load_scenario(make_scenario(paths=32, chunk_size=8))  # 4 blocks, one cell
    out = tmp_path / "run.nc"
    engine_calls["fail_at"] = 4
    with pytest.raises(RuntimeError, match="injected failure"):
        simulate(scenario, out=out, scheduler="synchronous")
    saved = sorted(partial_dir(out).glob("*.npz"))
    assert len(saved) == 3
    saved[0].unlink()  # block 0 lost: blocks 1 and 2 lie behind a gap

    # A failure before any block is read or computed keeps the saved blocks behind the gap.
    engine_calls["fail_at"] = 1
    engine_calls["calls"].clear()
    with pytest.raises(RuntimeError, match="injected failure"):
        simulate(scenario, out=out, scheduler="synchronous")
    assert sorted(partial_dir(out).glob("*.npz")) == saved[1:]

    waiting = []
    add = aggregate.CellAccumulator.add

    def spy(self, path_start, block):
        add(self, path_start, block)
        waiting.append(len(self._waiting))

    monkeypatch.setattr(aggregate.CellAccumulator, "add", spy)
    engine_calls["fail_at"] = None
    engine_calls["calls"].clear()
    resumed = simulate(scenario, out=out, scheduler="synchronous")
    assert engine_calls["calls"] == [(0, 0), (0, 24)]
    assert max(waiting) == 0
    clean = simulate(scenario, out=tmp_path / "clean.nc", scheduler="synchronous")
    assert_same_data(resumed, clean)


def test_changed_run_starts_afresh(make_scenario, tmp_path, engine_calls, caplog):
    scenario = load_scenario(make_scenario(paths=32, chunk_size=8))  # 4 blocks
    out = tmp_path / "run.nc"
    engine_calls["fail_at"] = 3
    with pytest.raises(RuntimeError):
        simulate(scenario, out=out)
    assert len(list(partial_dir(out).glob("*.npz"))) == 2

    engine_calls["fail_at"] = None
    engine_calls["calls"].clear()
    with caplog.at_level("WARNING", logger="simkit"):
        ds = simulate(scenario, out=out, seed=8)
    assert "different run" in caplog.text and "seed" in caplog.text
    assert len(engine_calls["calls"]) == 4
    assert ds.attrs["seed"] == 8
    assert not partial_dir(out).exists()


def test_failure_before_any_block_leaves_nothing(tiny_scenario, tmp_path, engine_calls):
    engine_calls["fail_at"] = 1
    out = tmp_path / "run.nc"
    with pytest.raises(RuntimeError):
        simulate(load_scenario(tiny_scenario), out=out)
    assert not out.exists() and not partial_dir(out).exists()


# Runs the CLI with each block slowed down, so the test can kill it between blocks.
SLOW_CLI = """
import sys, time
import simkit.run
from simkit.cli import main
real = simkit.run._simulate_block
def slow(*args):
    time.sleep(0.3)
    return real(*args)
simkit.run._simulate_block = slow
sys.exit(main(["run", sys.argv[1], "--out", sys.argv[2], "--no-progress"]))
"""


def test_sigkill_then_rerun_resumes(make_scenario, tmp_path):
    scenario = make_scenario(paths=32, chunk_size=8, grid=GRID_2X2)  # 16 blocks
    out = tmp_path / "killed.nc"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_CLI, str(scenario), str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(partial_dir(out).glob("*.npz")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no block finished in time"
            time.sleep(0.02)
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    n_saved = len(list(partial_dir(out).glob("*.npz")))
    assert 1 <= n_saved < 16

    simkit_cli = Path(sys.executable).parent / "simkit"
    rerun = subprocess.run(
        [str(simkit_cli), "run", str(scenario), "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from" in rerun.stderr
    assert not partial_dir(out).exists()

    clean = simulate(load_scenario(scenario), scheduler="synchronous")
    with xr.open_dataset(out) as resumed:
        assert_same_data(resumed.load(), clean)


# --------------------------------------------------------------------------- JAX engine


def test_jax_engine_end_to_end(make_scenario):
    """The default engine through the pipeline: blocks in path order, the short last block
    equal to the same paths computed in a full block."""
    from simkit.strategy.engine import simulate_block

    scenario = load_scenario(make_scenario(paths=20, chunk_size=8, engine="jax"))
    ds = simulate(scenario, per_path=True)
    assert ds.attrs["engine"] == "jax" and ds.attrs["dtype"] == "float32"
    cell = scenario.cells()[0]
    for start in (0, 8, 16):
        direct = simulate_block(
            cell.strategy,
            cell.market,
            seed=7,
            cell=0,
            path_start=start,
            n_paths=8,
            n_steps=scenario.simulation.n_steps,
        )
        stop = min(start + 8, 20)
        for name in ("final_equity", "n_trades", "n_wins", "assigned_by_rung"):
            got = ds[name].values[start:stop]
            assert np.array_equal(got, direct[name][: stop - start]), name
        rows = direct["equity"][: stop - start]
        assert np.array_equal(ds["equity_sample"].values[start:stop], rows)


def test_jax_engine_chunk_size_changes_nothing(make_scenario):
    """docs/MODELLING.md "Reproducibility and precision": the JAX engine's per-path results,
    bit for bit, for any chunk size (blocks of 7, 16 and 50 paths compile to three different
    widths)."""
    scenario = load_scenario(make_scenario(paths=50, engine="jax"))
    runs = [simulate(scenario, chunk_size=c, per_path=True) for c in (7, 16, 50)]
    for other in runs[1:]:
        assert_same_data(runs[0], other)


def test_float64_reference_run(tiny_scenario):
    ds = simulate(load_scenario(tiny_scenario), float64=True, per_path=True)
    assert ds.attrs["dtype"] == "float64"
    assert ds["final_equity"].dtype == np.float64


def test_deterministic_float64_cells_reduce_and_write(make_scenario, tmp_path):
    """Markets all but deterministic (sigma, eta ~ 1e-15): the paths' returns differ by a
    few ulps, and the reduction still gives each histogram a range of increasing edges.
    (Which vols give ulp-spaced rather than equal returns depends on the engine's rounding:
    a few cells make sure that one does.)"""
    vols = [7e-16, 1e-15, 1.5e-15, 2e-15, 3e-15]
    grid = f'[[grid.zip]]\n"market.sigma" = {vols}\n"market.eta" = {vols}\n'
    scenario = make_scenario(paths=16, chunk_size=16, grid=grid)
    text = scenario.read_text().replace("[simulation]\n", "[simulation]\nfloat64 = true\n")
    scenario.write_text(text)
    out = tmp_path / "deterministic.nc"
    ds = simulate(load_scenario(scenario), per_path=True, scheduler="synchronous", out=out)
    returns = ds["total_return"].values.reshape(-1, 16)
    spread = np.ptp(returns, axis=-1) / np.abs(returns).max(axis=-1)
    assert np.all(spread < 1e-13) and np.any(spread > 0)  # ulps apart, not all equal
    for name in ("total_return", "max_drawdown"):
        counts = ds[f"{name}_hist"].values.reshape(len(vols), -1)
        edges = ds[f"{name}_bin_edge"].values
        assert np.all(counts.sum(axis=-1) == 16)
        assert np.all(np.diff(edges) > 0)
    assert out.exists()


# --------------------------------------------------------------------------- derivation


def _summary(equity, initial=100.0, ruin_step=-1, contributions=0.0):
    equity = np.atleast_2d(np.asarray(equity, dtype=np.float64))
    n = equity.shape[0]
    return {
        "initial_equity": np.full(n, initial),
        "final_equity": equity[:, -1].copy(),
        "contributions": np.full(n, contributions),
        "ruin_step": np.full(n, ruin_step),
        "equity": equity,
    }


def test_derive_time_weighted_return_and_drawdown():
    equity = [99.0, 110.0, 88.0, 121.0]  # 3 steps after day 0
    out = derive_block(
        _summary(equity), n_steps=3, monthly_addition=0.0, path_start=0, n_sample=200
    )
    returns = np.array([0.99, 110 / 99, 0.8, 121 / 88]) - 1
    assert out["annual_return"][0] == pytest.approx(1.21 ** (252 / 3) - 1)
    assert out["total_return"][0] == pytest.approx(0.21)
    assert out["max_drawdown"][0] == pytest.approx(0.8 - 1)
    assert out["path_sharpe"][0] == pytest.approx(metrics.sharpe_ratio(returns))
    assert out["daily_var_99"][0] == pytest.approx(metrics.value_at_risk(returns, 0.99))
    assert "equity" not in out and out["_equity_sample"].shape == (1, 4)


def test_derive_ruined_path_is_minus_one_and_stops():
    out = derive_block(
        _summary([[90.0, 45.0, -5.0, -5.0, -5.0]], ruin_step=2),
        n_steps=4,
        monthly_addition=0.0,
        path_start=0,
        n_sample=200,
    )
    assert out["annual_return"][0] == -1.0
    assert out["max_drawdown"][0] < -1.0
    assert out["_daily_return_count"][0] == 3  # days 0, 1, 2
    used = np.array([0.9, 0.5, -5 / 45]) - 1
    assert out["path_sharpe"][0] == pytest.approx(metrics.sharpe_ratio(used))


def test_derive_removes_contributions_from_returns():
    n_steps = 42
    equity = np.full(n_steps + 1, 100.0)
    equity[21:] += 10.0  # a monthly addition on step 21, nothing earned
    equity[42] += 10.0
    out = derive_block(
        _summary(equity, contributions=20.0),
        n_steps=n_steps,
        monthly_addition=10.0,
        path_start=0,
        n_sample=200,
    )
    assert out["annual_return"][0] == pytest.approx(0.0, abs=1e-12)
    assert out["total_return"][0] == pytest.approx(0.0, abs=1e-12)


def test_derive_keeps_the_sample_of_the_first_paths_only():
    equity = np.tile(np.linspace(100, 110, 5), (10, 1))
    out = derive_block(
        _summary(equity), n_steps=4, monthly_addition=0.0, path_start=195, n_sample=200
    )
    assert out["_equity_sample"].shape == (5, 5)
    out = derive_block(
        _summary(equity), n_steps=4, monthly_addition=0.0, path_start=200, n_sample=200
    )
    assert out["_equity_sample"].shape == (0, 5)


def test_derive_is_the_metrics_of_each_paths_used_returns_bit_for_bit():
    """derive_block arranges its work in few passes; each figure must still be exactly
    `simkit.metrics`' function of the path's used returns (cut paths, a path without a
    sleeve, a NaN in a curve and monthly additions included)."""
    rng = np.random.default_rng(11)
    n, n_steps = 300, 63
    equity = 1e4 * np.cumprod(1 + rng.normal(0, 0.05, size=(n, n_steps + 1)), axis=1)
    equity[:20, 30:] = 0.0  # wiped out on step 30
    equity[20:30, 40:] = -50.0  # liquidation cost more than the sleeve held
    equity[40, 5] = np.nan
    summary = _summary(equity, initial=1e4)
    summary["ruin_step"][30:40] = 50
    summary["initial_equity"][45] = 0.0
    out = derive_block(summary, n_steps=n_steps, monthly_addition=100.0, path_start=0, n_sample=0)
    paid = np.array([100.0 if t >= 1 and t % 21 == 0 else 0.0 for t in range(n_steps + 1)])
    for i in range(n):
        previous = np.concatenate([[summary["initial_equity"][i]], equity[i, :-1]])
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (equity[i] - paid) / previous - 1.0
        if summary["initial_equity"][i] <= 0:
            r[:] = np.nan
        stop = np.flatnonzero(equity[i] <= 0)
        last = stop[0] if stop.size else n_steps
        if summary["ruin_step"][i] >= 0:
            last = min(last, summary["ruin_step"][i])
        used = r[: last + 1]
        index = np.concatenate([[1.0], np.cumprod(1.0 + used)])
        for name, want in (
            ("path_sharpe", metrics.sharpe_ratio(used)),
            ("daily_var_99", metrics.value_at_risk(used, 0.99)),
            ("max_drawdown", metrics.max_drawdown(index)),
            ("_daily_return_count", last + 1),
        ):
            got = out[name][i]
            assert got == want or (np.isnan(got) and np.isnan(want)), (name, i, got, want)


def test_segments_and_spilled_columns_change_nothing(make_scenario, tmp_path, monkeypatch):
    """Cells reduced in segments of 16 paths with their columns in files (past 1 kB) give the
    same file for any chunk size, and leave no column files behind."""
    from simkit import streaming

    monkeypatch.setattr(streaming, "SEGMENT", 16)
    monkeypatch.setattr(streaming, "SPILL_BYTES", 1000)
    scenario = load_scenario(make_scenario(paths=50, grid=GRID_2))
    runs = [
        simulate(scenario, chunk_size=chunk, scheduler="synchronous", out=tmp_path / f"{chunk}.nc")
        for chunk in (7, 16, 50)
    ]
    for other in runs[1:]:
        assert_same_data(runs[0], other)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".toml") == [
        "16.nc",
        "50.nc",
        "7.nc",
    ]
    monkeypatch.setattr(streaming, "SEGMENT", 1 << 16)
    whole = simulate(scenario, chunk_size=50, scheduler="synchronous")
    for name in ("final_equity_median", "annual_return_quantile", "var_99", "kelly_p"):
        assert np.array_equal(whole[name].values, runs[0][name].values), name
