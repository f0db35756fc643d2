"""Every path's daily equity: the streamed quantile bands over all paths (`equity_quantile`),
`--equity` (`equity` in the result file), their store (`simkit.streaming.DailyColumns`), and
what the stock did on each path (`spot_final`, `spot_min`, `realized_vol`,
`underlying_return`)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scenario_files import GRID_2X2

from simkit import streaming
from simkit.aggregate import QUANTILES
from simkit.cli import main
from simkit.paths.market import market_to_numpy, simulate_market
from simkit.run import simulate
from simkit.scenario import load_scenario
from simkit.store import partial_dir
from simkit.strategy import reference

GRID_2 = '\n[grid]\n"market.sigma" = [1.5, 3.0]\n'


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def numpy_bands(equity) -> np.ndarray:
    """The independent truth: numpy.quantile of the whole (paths, days) array."""
    return np.quantile(np.asarray(equity, dtype=np.float64), QUANTILES, axis=0)


# --------------------------------------------------------------------------- the store


def _curves(n: int, days: int, seed: int = 0, dtype=np.float32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (1e5 * np.cumprod(1 + rng.normal(0, 0.05, (n, days)), axis=1)).astype(dtype)


@pytest.mark.parametrize("where", ["memory", "temporary file", "given file"])
@pytest.mark.parametrize("slab", [None, 8 * 300 * 2, 8 * 300 - 1, 80])
def test_daily_columns_bands_are_numpy_quantile_bit_for_bit(where, slab, tmp_path):
    """Blocks written in any order; the per-step quantiles read in slabs of steps, one step at
    a time, or (a step's column wider than the slab) selected in segments: NumPy's bits."""
    x = _curves(300, 17)
    x[5, 3] = x[7, 3]  # ties
    kwargs = {
        "memory": {},
        "temporary file": {"memory_bytes": 0, "spill_dir": tmp_path},
        "given file": {"file": tmp_path / "cell.raw"},
    }[where]
    with streaming.DailyColumns(300, 17, np.float32, **kwargs) as daily:
        assert daily.in_memory == (where == "memory")
        for start in np.random.default_rng(1).permutation(np.arange(0, 300, 64)):
            daily.write(int(start), x[start : start + 64])
        assert same_bits(daily.quantiles(QUANTILES, slab_bytes=slab), numpy_bands(x))
        assert same_bits(daily.paths(37, 250), x[37:250])
        assert same_bits(daily.steps(2, 5), x[:, 2:5].T)
    assert list(tmp_path.iterdir()) == []  # closed: its file removed


def test_daily_columns_nan_days_and_bad_blocks(tmp_path):
    x = _curves(50, 6, dtype=np.float64)
    x[10, 2] = np.nan
    with streaming.DailyColumns(50, 6, np.float64, memory_bytes=0, spill_dir=tmp_path) as daily:
        daily.write(0, x)
        for slab in (None, 80):
            got = daily.quantiles(QUANTILES, slab_bytes=slab)
            with np.errstate(invalid="ignore"):
                assert np.array_equal(got, numpy_bands(x), equal_nan=True)
            assert np.isnan(got[:, 2]).all() and not np.isnan(got[:, [0, 1, 3, 4, 5]]).any()
        with pytest.raises(ValueError, match="does not fit"):
            daily.write(45, x[:10])
        with pytest.raises(ValueError, match="does not fit"):
            daily.write(0, x[:, :5])
    with streaming.DailyColumns(50, 6, np.float32) as narrow, pytest.raises(ValueError):
        narrow.write(0, x)  # float64 into float32 would round


def test_daily_columns_file_survives_to_be_resumed(tmp_path):
    """A resume directory's file is reopened as it stands (the blocks written before an
    interruption are there) and kept by close(remove=False)."""
    x = _curves(40, 5)
    file = tmp_path / "cell000000_equity.raw"
    first = streaming.DailyColumns(40, 5, np.float32, file=file)
    first.write(0, x[:20], sync=True)
    first.close(remove=False)
    assert file.stat().st_size == 40 * 5 * 4
    again = streaming.DailyColumns(40, 5, np.float32, file=file)
    again.write(20, x[20:])
    assert same_bits(again.paths(0, 40), x)
    again.close(remove=True)
    assert not file.exists()


# --------------------------------------------------------------------------- runs


def _market(cell, number: int, paths: int, chunk: int) -> dict[str, np.ndarray]:
    """The market a tiny run (seed 7, 13 steps, float32) generated for a cell, block by block
    as the run did (shapes already compiled)."""
    blocks = [
        market_to_numpy(
            simulate_market(cell.market, 7, number, start, min(chunk, paths - start), 13,
                            dtype=np.float32)
        )
        for start in range(0, paths, chunk)
    ]  # fmt: skip
    return {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}


def test_bands_of_a_grid_run_are_numpy_quantile_of_every_paths_equity(make_scenario):
    """The issue's proof: `equity_quantile` equals numpy.quantile of the full equity array,
    cell by cell; `equity` holds every path (its first paths are the fan chart's sample)."""
    scenario = load_scenario(make_scenario(paths=40, chunk_size=16, grid=GRID_2X2))
    ds = simulate(scenario, equity=True, scheduler="synchronous")
    assert ds["equity_quantile"].dims == ("market.sigma", "exits.stop_loss_multiple", "quantile",
                                          "step")  # fmt: skip
    assert ds["equity"].dims == ("market.sigma", "exits.stop_loss_multiple", "path", "step")
    assert ds["equity"].dtype == np.float64  # the reference engine's
    for i in range(2):
        for j in range(2):
            equity = ds["equity"].values[i, j]
            assert same_bits(ds["equity_quantile"].values[i, j], numpy_bands(equity))
            assert same_bits(ds["equity_sample"].values[i, j], equity[:40])
    assert ds["equity_quantile"].attrs["units"] == "USD"
    # the bands do not need `equity`, and do not change with it
    plain = simulate(scenario, scheduler="synchronous")
    assert "equity" not in plain and "path" not in plain.dims
    assert same_bits(plain["equity_quantile"].values, ds["equity_quantile"].values)


def test_equity_in_the_file_is_the_engines_per_path_equity(make_scenario, tmp_path):
    """`simkit run --equity`: the file's `equity` equals the engine's own per-path equity for
    the same paths (the reference engine on simulate_market's paths, run apart here)."""
    path = make_scenario(paths=20, chunk_size=8, grid=GRID_2)
    out = tmp_path / "eq.nc"
    assert main(["run", str(path), "--out", str(out), "--equity", "--no-progress"]) == 0
    scenario = load_scenario(path)
    with xr.open_dataset(out) as ds:
        assert ds["equity"].dims == ("market.sigma", "path", "step")
        assert ds["equity"].encoding["zlib"] and ds["equity"].encoding["shuffle"]
        assert ds["equity"].encoding["chunksizes"] == (1, 20, 14)
        for k, cell in enumerate(scenario.cells()):
            own = reference.simulate_paths(_market(cell, k, 20, 8), cell.strategy, cell.market)
            assert same_bits(ds["equity"].values[k], own["equity"])
            assert same_bits(ds["equity_quantile"].values[k], numpy_bands(own["equity"]))
    assert not partial_dir(out).exists()


def test_jax_equity_streamed_into_the_file_and_returned_lazily(make_scenario, tmp_path):
    from simkit.strategy.engine import simulate_block

    scenario = load_scenario(make_scenario(paths=20, chunk_size=8, engine="jax"))
    out = tmp_path / "jax.nc"
    ds = simulate(scenario, out=out, equity=True)
    cell = scenario.cells()[0]
    direct = np.concatenate(
        [
            simulate_block(
                cell.strategy, cell.market, seed=7, cell=0, path_start=start, n_paths=8,
                n_steps=scenario.simulation.n_steps,
            )["equity"]
            for start in (0, 8, 16)
        ]
    )[:20]  # fmt: skip
    assert ds["equity"].dtype == np.float32
    assert same_bits(ds["equity"].values, direct)
    assert same_bits(ds["equity_quantile"].values, numpy_bands(direct))


def test_resume_keeps_the_daily_equity_of_saved_blocks(make_scenario, tmp_path, engine_calls):
    """Interrupted in the second cell: the first cell's bands are saved and its daily file
    gone (without `equity`), the second cell's daily file holds its saved blocks; the resumed
    file is the uninterrupted run's, with `equity` or without."""
    scenario = load_scenario(make_scenario(paths=32, chunk_size=8, grid=GRID_2))  # 8 blocks
    for equity in (False, True):
        out = tmp_path / f"run{equity}.nc"
        engine_calls["fail_at"], engine_calls["calls"] = 6, []
        with pytest.raises(RuntimeError, match="injected failure"):
            simulate(scenario, out=out, equity=equity, scheduler="synchronous")
        partial = partial_dir(out)
        assert (partial / "cell000000_bands.npy").exists()
        assert (partial / "cell000000_equity.raw").exists() == equity
        assert (partial / "cell000001_equity.raw").exists()
        engine_calls["fail_at"], engine_calls["calls"] = None, []
        simulate(scenario, out=out, equity=equity)
        assert len(engine_calls["calls"]) == 8 - 5 and not partial.exists()
        simulate(scenario, out=tmp_path / "clean.nc", equity=equity)
        with xr.open_dataset(out) as a, xr.open_dataset(tmp_path / "clean.nc") as b:
            assert set(a.variables) == set(b.variables)
            assert ("equity" in a) == equity
            for name in ("equity_quantile", *(("equity",) if equity else ())):
                assert same_bits(a[name].values, b[name].values), name


def test_saved_blocks_without_their_daily_equity_are_computed_again(
    make_scenario, tmp_path, engine_calls
):
    scenario = load_scenario(make_scenario(paths=32, chunk_size=8))  # 4 blocks, one cell
    out = tmp_path / "run.nc"
    engine_calls["fail_at"] = 3
    with pytest.raises(RuntimeError):
        simulate(scenario, out=out, scheduler="synchronous")
    assert len(list(partial_dir(out).glob("*.npz"))) == 2
    (partial_dir(out) / "cell000000_equity.raw").unlink()
    engine_calls["fail_at"], engine_calls["calls"] = None, []
    resumed = simulate(scenario, out=out, scheduler="synchronous")
    assert len(engine_calls["calls"]) == 4
    clean = simulate(scenario, scheduler="synchronous", equity=True)
    assert same_bits(resumed["equity_quantile"].values, numpy_bands(clean["equity"].values))


# --------------------------------------------------------------------------- the underlying


def test_underlying_per_path_against_the_market(make_scenario):
    """spot_final, spot_min, realized_vol and underlying_return of each path from the market
    the run generated (numpy on simulate_market's spots), and their quantiles over paths."""
    scenario = load_scenario(make_scenario(paths=24, chunk_size=8))
    ds = simulate(scenario, per_path=True, scheduler="synchronous")
    cell = scenario.cells()[0]
    spot = _market(cell, 0, 24, 8)["spot"].astype(np.float64)
    log_returns = np.diff(np.log(spot), axis=1)
    truth = {
        "spot_final": spot[:, -1],
        "spot_min": spot.min(axis=1),
        "realized_vol": np.sqrt(252 * np.mean(log_returns**2, axis=1)),
        "underlying_return": spot[:, -1] / spot[:, 0] - 1,
    }
    for name, value in truth.items():
        np.testing.assert_allclose(ds[name].values, value, rtol=1e-12, err_msg=name)
        got = ds[f"{name}_quantile"].values
        assert np.array_equal(got, np.quantile(ds[name].values, QUANTILES)), name
        np.testing.assert_allclose(ds[f"{name}_mean"].values, value.mean(), rtol=1e-12)
        assert ds[name].attrs["units"] in ("USD", "1") and ds[name].attrs["long_name"]
    assert ds["spot_final"].attrs["units"] == "USD"
    assert np.all(ds["spot_min"].values <= np.minimum(spot[:, 0], ds["spot_final"].values))


def test_stress_bands_are_the_runs_bands_over_all_paths(make_scenario):
    """`simkit stress` keeps a run's bands over all its paths, not those of a sample."""
    from simkit import stress

    scenario = load_scenario(make_scenario(paths=24, chunk_size=8))
    ds = simulate(scenario, per_path=True, equity=True, scheduler="synchronous")
    out = stress.stress_metrics(
        stress._per_path(ds), n_steps=13, shock_day=-1, equity_sample=ds["equity"].values[:5],
        equity_bands=ds["equity_quantile"].values,
    )  # fmt: skip
    assert same_bits(out["equity_quantile"], numpy_bands(ds["equity"].values))
