"""The trade log of a run (`simkit run --trades N`, `simulate(..., trades=N)`).

The log comes from the reference engine on the logged paths' own market; these tests hold it
against the JAX engine's per-path results of a real run (the short-put trades' count, wins and
P&L per path, and every position's P&L against the path's P&L), in a grid of two cells, and
check the flag's edges: clipped to the paths with a note, 0 writes nothing, bad values exit 2.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import xarray as xr

from simkit import trade_log
from simkit.cli import main
from simkit.run import simulate
from simkit.scenario import load_scenario
from simkit.store import write_dataset
from simkit.strategy.reference.state import TradeRecord

GRID_2 = '\n[grid]\n"market.sigma" = [1.5, 3.0]\n'


@pytest.fixture(scope="module")
def jax_grid_run(tmp_path_factory):
    """The JAX engine (float32) on a grid of two cells, 20 paths of 13 days, the trades of 3
    paths a cell, every path's summary kept (the shapes of tests/test_run.py's JAX runs)."""
    from scenario_files import write_scenario

    path = write_scenario(
        tmp_path_factory.mktemp("trades"), paths=20, chunk_size=8, engine="jax", grid=GRID_2
    )
    out = path.with_suffix(".nc")
    simulate(load_scenario(path), trades=3, per_path=True, out=out, progress=False)
    with xr.open_dataset(out) as ds:
        yield ds.load()


def test_short_put_trades_add_up_to_the_engines_per_path_results(jax_grid_run):
    ds = jax_grid_run
    df = trade_log.frame(ds)
    assert set(df["trade_cell"]) == {0, 1} and set(df["trade_path"]) == {0, 1, 2}
    checked = 0
    for sigma in (1.5, 3.0):
        for path in range(3):
            rows = df[(df["trade_market.sigma"] == sigma) & (df["trade_path"] == path)]
            engine = ds.sel({"market.sigma": sigma, "path": path})
            puts = rows[(rows["trade_kind"] == "short_put") & (rows["trade_reason"] != "open")]
            assert len(puts) == int(engine["n_trades"])
            assert int((puts["trade_pnl"] > 0).sum()) == int(engine["n_wins"])
            # the per-path trade P&L in units of collateral: the engine's Kelly sums
            returns = (puts["trade_pnl"] / puts["trade_collateral"]).sum()
            kelly = float(engine["sum_win_ret"]) - float(engine["sum_loss_ret"])
            assert returns == pytest.approx(kelly, rel=1e-4, abs=1e-4)
            # in USD: every position's P&L plus the interest on cash is the path's P&L
            pnl = float(engine["final_equity"] - engine["initial_equity"] - engine["contributions"])
            total = rows["trade_pnl"].sum() + float(engine["financing"])
            assert total == pytest.approx(pnl, abs=1e-5 * float(engine["initial_equity"]))
            checked += len(puts)
    assert checked > 10  # the 13 days close enough trades to mean something
    assert ds.attrs["trade_log_check"].startswith("agrees with the jax engine")
    assert ds.attrs["trade_log_paths"] == 3


def test_variables_units_and_reading(jax_grid_run):
    ds = jax_grid_run
    for name in trade_log.VARIABLES:
        assert ds[name].dims == ("trade",), name
        assert ds[name].attrs["units"] and ds[name].attrs["long_name"], name
    assert ds["trade_market.sigma"].attrs["units"] == ds["market.sigma"].attrs["units"]
    assert set(ds["trade_kind"].values) <= set(trade_log.TRADE_KINDS)
    assert set(ds["trade_reason"].values) <= set(trade_log.REASONS)
    # cell by cell, in path order; each trade's cell coordinate is its cell's grid value
    cells = ds["trade_cell"].values
    assert np.all(np.diff(cells) >= 0)
    assert np.array_equal(ds["trade_market.sigma"].values, np.where(cells == 0, 1.5, 3.0))
    assert np.all(ds["trade_close_step"] >= ds["trade_open_step"])
    assert np.all(ds["trade_close_step"] <= 13)


def test_check_names_each_disagreement():
    put = TradeRecord("short_put", 0, 3.0, 10.0, 0.5, 2000.0, 6.5, 5, 0.2, "profit", 293.5)
    call = TradeRecord("hedge_call", 0, 4.5, 2.0, 0.3, 0.0, 1.3, 13, 0.0, "expired_otm", -61.3)
    records = [[put, call]]
    engine = {name: np.zeros(1) for name in trade_log.CHECK_FIELDS}
    engine.update(
        n_trades=np.array([1]),
        n_wins=np.array([1]),
        n_close_profit=np.array([1]),
        sum_win_ret=np.array([293.5 / 2000.0]),
        initial_equity=np.array([20_000.0]),
        final_equity=np.array([20_000.0 + 293.5 - 61.3 + 10.0]),
    )
    financing = {"financing": np.array([10.0])}
    assert trade_log.check(records, financing, engine, float64=True) == []
    engine["n_close_profit"], engine["n_close_stop"] = np.array([0]), np.array([1])
    engine["final_equity"] = engine["final_equity"] + 1.0
    problems = trade_log.check(records, financing, engine, float64=True)
    assert len(problems) == 3
    assert any("n_close_stop 0 in the log, 1 in the engine" in p for p in problems)
    assert any("P&L of the trades + financing" in p for p in problems)


def test_dates_of_a_history_market(tmp_path):
    put = TradeRecord("short_put", 1, 3.0, 10.0, 0.5, 2000.0, 6.5, 2, 0.2, "profit", 293.5)
    dates = np.array(["2024-01-02", "2024-01-03", "2024-01-04"], dtype="datetime64[D]")
    columns = trade_log.columns([[], [put]], dates)
    assert columns["trade_path"].tolist() == [1]
    data, coords = trade_log.variables({0: columns}, {0: {}})
    write_dataset(xr.Dataset(data, coords=coords), tmp_path / "dates.nc")
    with xr.open_dataset(tmp_path / "dates.nc") as ds:
        row = trade_log.frame(ds).iloc[0]
    assert row["trade_open_date"] == np.datetime64("2024-01-03")
    assert row["trade_close_date"] == np.datetime64("2024-01-04")
    assert row["trade_reason"] == "profit" and row["trade_pnl"] == 293.5
    per_path = np.stack([dates, dates + 7])  # each path its own window
    assert trade_log.columns([[], [put]], per_path)["trade_open_date"][0] == np.datetime64(
        "2024-01-10"
    )


def test_more_trades_than_paths_is_clipped_with_a_note(make_scenario, caplog):
    scenario = load_scenario(make_scenario(paths=4, chunk_size=4))
    with caplog.at_level(logging.WARNING, logger="simkit"):
        ds = simulate(scenario, trades=10, progress=False)
    assert ds.attrs["trade_log_paths"] == 4
    assert set(ds["trade_path"].values) == {0, 1, 2, 3}
    assert "--trades 10 is more than the 4 paths" in caplog.text
    assert ds.attrs["trade_log_check"].startswith("agrees with the reference engine")


def test_no_trades_by_default_adds_nothing(make_scenario):
    scenario = load_scenario(make_scenario(paths=4, chunk_size=4))
    plain = simulate(scenario, progress=False)
    zero = simulate(scenario, trades=0, progress=False)
    assert "trade" not in plain.dims and not trade_log.names(plain)
    assert not any(k.startswith("trade_log") for k in plain.attrs)
    assert set(zero.variables) == set(plain.variables)
    with pytest.raises(ValueError, match="trades must be a whole number >= 0"):
        simulate(scenario, trades=-1, progress=False)


def test_cli_flag_writes_the_log(capsys, tiny_scenario, tmp_path):
    out = tmp_path / "run.nc"
    code = main(["run", str(tiny_scenario), "--out", str(out), "--no-progress", "--trades", "2"])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "trade log:" in stdout and "agrees with the reference engine" in stdout
    with xr.open_dataset(out) as ds:
        df = trade_log.frame(ds)
        assert set(df.columns) >= set(trade_log.VARIABLES) | {"trade_cell"}
        assert len(df) == ds.sizes["trade"] > 0
        assert set(df["trade_path"]) <= {0, 1}


def test_cli_rejects_a_negative_count(capsys, tiny_scenario, tmp_path):
    out = tmp_path / "run.nc"
    code = main(["run", str(tiny_scenario), "--out", str(out), "--trades", "-1"])
    assert code == 2
    assert "--trades: must be a whole number of paths >= 0; got -1" in capsys.readouterr().err
    assert not out.exists()
