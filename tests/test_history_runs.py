"""History markets from scenario files: `[market] model = "replay" | "bootstrap"`.

The scenario layer (the file, its errors, a replay's horizon and single path), the run layer
(a replay is the same as its arrays given to `simulate_paths`; one path prints n/a), and the
commands (stress, claims) on a history. The runs use the scalar reference engine, as the other
pipeline tests do: the JAX engine on history markets is checked path by path against it in
tests/strategy/test_agreement.py.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

import simkit
from simkit.cli import main, print_summary
from simkit.paths.history_csv import read_history
from simkit.scenario import ScenarioError, load_scenario, parse_scenario

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC = REPO / "tests" / "data" / "history_synthetic.csv"
SPX = REPO / "scenarios" / "spx_vix.toml"
N_DAYS = 40  # the tests' history: the first 40 days of the synthetic one, with a vix column


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A scenario folder with data/short.csv: 40 days of the synthetic $3 stock, IV and vix."""
    lines = SYNTHETIC.read_text().splitlines()[: N_DAYS + 1]
    rows = [lines[0] + ",vix"] + [f"{line},{15 + i % 20}" for i, line in enumerate(lines[1:])]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "short.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def scenario_file(folder: Path, market: str, simulation: str = "", extra: str = "") -> Path:
    path = folder / "history.toml"
    path.write_text(
        f'[simulation]\nengine = "reference"\n{simulation}\n[market]\n{market}\n{extra}'
    )
    return path


REPLAY = 'model = "replay"\nhistory = "data/short.csv"'


# --- The scenario file ----------------------------------------------------------------------


def test_a_replay_is_one_path_over_the_whole_history(folder):
    scenario = load_scenario(scenario_file(folder, REPLAY, "paths = 500\nyears = 3.0"))
    assert scenario.replay
    assert scenario.market.history == str((folder / "data" / "short.csv").resolve())
    assert scenario.simulation.n_steps == N_DAYS - 1 and scenario.simulation.paths == 1
    (note,) = scenario.notes
    assert "39 trading days" in note and "2016-01-04 to 2016-02-26" in note
    assert "simulation.years = 3 is not used" in note
    assert "simulation.paths = 500 is not used" in note
    # The resolved scenario loads back to the same replay from anywhere.
    again = parse_scenario(scenario.to_toml(), path=str(folder / "elsewhere" / "x.toml"))
    assert again.market == scenario.market and again.simulation.n_steps == N_DAYS - 1


def test_a_history_far_from_the_iv_percentiles_law_gets_a_note(folder):
    # The 40 days' median IV, 3.7, is at the baseline law's 97th percentile: no note; a law
    # centred at 15 % puts it at the 100th.
    assert not [n for n in load_scenario(scenario_file(folder, REPLAY)).notes if "median IV" in n]
    scenario = load_scenario(scenario_file(folder, REPLAY + "\niv_long_run = 0.15"))
    (note,) = [n for n in scenario.notes if "median IV" in n]
    assert "100.0th percentile" in note and "simkit calibrate market" in note


@pytest.mark.parametrize("model", ["replay", "bootstrap"])
def test_a_history_without_iv_says_iv_is_the_constant_iv0(folder, model):
    """Without an iv column the options are priced at market.iv0 every day: a note says so (a
    run at the baseline's 425 % on an index would otherwise look like a verdict)."""
    lines = (folder / "data" / "short.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name.strip().lower() != "iv"]
    rows = [",".join(line.split(",")[i] for i in keep) for line in lines]
    (folder / "data" / "no_iv.csv").write_text("\n".join(rows) + "\n")
    market = f'model = "{model}"\nhistory = "data/no_iv.csv"\niv0 = 2.5'
    notes = load_scenario(scenario_file(folder, market)).notes
    (note,) = [n for n in notes if "no iv column" in n]
    assert "no_iv.csv" in note and "market.iv0 = 2.5" in note
    assert not [n for n in load_scenario(scenario_file(folder, REPLAY)).notes if "no iv" in n]


def test_a_bootstrap_keeps_the_scenarios_paths_and_horizon(folder):
    market = 'model = "bootstrap"\nhistory = "data/short.csv"\nblock_len = 5'
    scenario = load_scenario(scenario_file(folder, market, "paths = 64\nyears = 0.5"))
    assert not scenario.replay and scenario.notes == ()
    assert scenario.simulation.paths == 64 and scenario.simulation.n_steps == 126
    assert scenario.market.block_len == 5.0


@pytest.mark.parametrize(
    ("market", "key", "needle"),
    [
        (
            'model = "replay"\nhistory = "data/none.csv"',
            "market.history",
            "cannot use the history 'data/none.csv'",
        ),
        ('model = "replay"', "market.history", "must name a history CSV for model 'replay'"),
        (
            'model = "bootstrap"\nhistory = "data/short.csv"\nblock_len = 0.5',
            "market.block_len",
            ">= 1",
        ),
        ('model = "replay"\nhistory = 3', "market.history", "must be a string"),
    ],
)
def test_bad_history_keys_name_the_key(folder, market, key, needle):
    with pytest.raises(ScenarioError) as error:
        load_scenario(scenario_file(folder, market))
    assert [p.key for p in error.value.problems] == [key]
    assert needle in str(error.value)


def test_a_malformed_history_names_the_scenario_the_file_its_line_and_column(folder):
    bad = folder / "data" / "bad.csv"
    bad.write_text("date,close,iv\n2024-01-02,3.0,4.2\n2024-01-03,3.1,-4\n")
    path = scenario_file(folder, 'model = "replay"\nhistory = "data/bad.csv"')
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    message = str(error.value)
    assert message.startswith(f"{path}: market.history: cannot use the history 'data/bad.csv'")
    assert str(bad.resolve()) in message and "line 3, iv: must be a fraction > 0" in message
    assert message.endswith("(line 6)")  # the scenario's line of `history`


def test_the_cli_exits_2_on_a_bad_history_and_writes_nothing(folder, capsys):
    path = scenario_file(folder, 'model = "replay"\nhistory = "data/none.csv"')
    out = folder / "out.nc"
    assert main(["run", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "market.history" in err and "none.csv" in err and "Traceback" not in err
    assert not out.exists() and not list(folder.glob("out.nc*"))


def test_a_grid_cannot_mix_a_replay_with_other_horizons(folder):
    grid = '[grid]\n"market.model" = ["replay", "gbm"]\n'
    with pytest.raises(ScenarioError, match="every grid cell must replay the same history"):
        load_scenario(scenario_file(folder, REPLAY, extra=grid))
    ok = load_scenario(
        scenario_file(folder, REPLAY, extra='[grid]\n"exits.stop_loss" = [true, false]\n')
    )
    assert ok.replay and ok.shape == (2,) and ok.simulation.n_steps == N_DAYS - 1


def test_an_override_is_resolved_against_the_scenario_file(folder):
    other = folder / "data" / "other.csv"
    other.write_text("date,close\n2024-01-02,3.0\n2024-01-03,3.3\n2024-01-04,3.1\n")
    scenario = load_scenario(
        scenario_file(folder, REPLAY), overrides={"market.history": "data/other.csv"}
    )
    assert scenario.market.history == str(other.resolve()) and scenario.simulation.n_steps == 2


# --- Runs -----------------------------------------------------------------------------------


def test_a_replay_is_the_history_given_as_arrays(folder):
    """Proof: the replay through the run layer gives the per-path figures of the same market
    passed as arrays to `simulate_paths` (the inputs it does not give: the scenario's own)."""
    scenario = load_scenario(scenario_file(folder, REPLAY))
    run = simkit.simulate(scenario, per_path=True, progress=False, engine="reference")
    history = read_history(folder / "data" / "short.csv")
    given = {
        "spot": history.close[None, :],
        "iv": history.iv[None, :],
        "vix": history.inputs["vix"][None, :],
    }
    simulated = parse_scenario('[simulation]\nengine = "reference"\n', path="gbm.toml")
    arrays = simkit.simulate_paths(given, simulated, engine="reference")
    assert run.sizes["path"] == 1 and int(run["paths"]) == 1
    for name in ("final_equity", "n_trades", "n_wins", "max_drawdown", "annual_return"):
        np.testing.assert_array_equal(run[name].values, arrays[name].values, err_msg=name)
    assert int(run["n_trades"].values[0]) > 0
    # The history's dates on the result's days.
    dates = run["date"].values.astype("datetime64[D]")
    np.testing.assert_array_equal(dates, history.dates)
    assert run["date"].dims == ("day",)


def test_a_replays_trade_log_has_the_historys_dates(folder):
    scenario = load_scenario(scenario_file(folder, REPLAY))
    ds = simkit.simulate(scenario, progress=False, engine="reference", trades=1)
    dates = read_history(folder / "data" / "short.csv").dates
    opened = ds["trade_open_date"].values.astype("datetime64[D]")
    assert opened.size > 0
    np.testing.assert_array_equal(opened, dates[ds["trade_open_step"].values])


def test_one_path_prints_no_interval(folder, capsys, tmp_path):
    scenario = load_scenario(scenario_file(folder, REPLAY))
    out = tmp_path / "replay.nc"
    ds = simkit.simulate(scenario, progress=False, engine="reference", out=out)
    for name in ("annual_return_mean_lo", "win_rate_trade_hi", "prob_loss_lo", "sharpe_pooled_se"):
        assert math.isnan(float(ds[name])), name
    assert math.isnan(float(ds["var_99"])) and math.isnan(float(ds["kelly_sleeve_fraction"]))
    assert math.isfinite(float(ds["kelly_sleeve_fraction_21d"]))
    assert "history_sha256" in ds.attrs

    from rich.console import Console

    console = Console(width=200, record=True)
    print_summary(ds, console)
    text = console.export_text()
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 4}
    assert "n/a" in rows["annual return, mean"] and "[" not in rows["annual return, mean"]
    assert "n/a" in rows["VaR 99 %, horizon return"]
    assert "Kelly of the sleeve, 21-day returns (x portfolio)" in rows
    assert "nan" not in text and "[-inf" not in text

    from simkit.report import make_report

    report = make_report(out, tmp_path / "figures")
    html = (tmp_path / "figures" / "index.html").read_text()
    html = re.sub(r'"data:[^"]*"', '""', html)  # embedded images: base64, not text
    assert "n/a" in html and "nan" not in html and "[–, –]" not in html
    names = {Path(p).stem for p in report.figures}
    assert "equity_fan" in names and "return_distribution" not in names


def test_a_bootstrap_runs_with_its_paths(folder):
    market = 'model = "bootstrap"\nhistory = "data/short.csv"\nblock_len = 5'
    scenario = load_scenario(scenario_file(folder, market, "paths = 6\nyears = 0.1"))
    ds = simkit.simulate(scenario, per_path=True, progress=False)
    assert ds.sizes["path"] == 6 and "date" not in ds.coords
    assert np.all(np.isfinite(ds["final_equity"].values))
    assert np.unique(ds["final_equity"].values).size > 1  # resampled: the paths differ


def test_stress_cuts_a_replays_horizon_for_the_days_before_a_shock(folder):
    from simkit.stress import _variant

    scenario = load_scenario(scenario_file(folder, REPLAY))
    short = _variant(scenario, True, True, n_steps=9)
    assert short.replay and short.simulation.n_steps == 9
    assert short.strategy.enforce_limits and short.strategy.stop_loss


def test_claims_on_a_replay_say_why_no_family_of_markets(folder):
    from simkit import claims

    scenario = load_scenario(scenario_file(folder, REPLAY))
    report = claims.check_claims(scenario, fills=False, markets=True)
    assert report.markets is None
    assert "the market is a history (model = 'replay')" in report.meta["markets_skipped"]
    rows = {r.claim_id: r for r in report.rows if r.claim_id}
    assert rows["annual_return"].verdict in ("met in this history", "not met in this history")
    assert "one path (a history replayed)" in rows["annual_return"].rule
    law = next(r for r in report.rows if r.topic == "assignment probability")
    assert "replay of the history: GBM at its drift" in law.simkit
    assert "Across markets" in claims.to_markdown(report)


# --- The shipped S&P 500 / VIX scenario ------------------------------------------------------


def test_the_spx_vix_scenario_trades_whole_contracts():
    scenario = load_scenario(SPX)
    history = read_history(REPO / "scenarios" / "data" / "spx_vix_2014_2018.csv")
    assert scenario.replay and scenario.simulation.n_steps == history.n_days - 1 == 1256
    assert str(history.dates[0]) == "2014-01-03" and str(history.dates[-1]) == "2018-12-31"
    np.testing.assert_allclose(history.iv, history.inputs["vix"] / 100, rtol=1e-12)
    s = scenario.strategy
    assert s.strike_mode == "moneyness" and s.whole_contracts
    assert s.strikes == (2.0, 2.5, 3.0, 4.0, 5.0) and s.reference_spot == 3.0
    # The smallest rung (weight 0.10 at 5/3 of the spot) is at least one contract at the
    # history's highest close: the sleeve's expiry budget 0.15 E / 1.5 x 1.5 / (K 100).
    smallest = 0.15 * s.sleeve_initial * 0.10 / (100 * 5 / 3 * history.close.max())
    assert smallest >= 1.0
    ds = simkit.simulate(scenario, per_path=True, progress=False, engine="reference")
    assert int(ds["n_trades"].values[0]) > 0 and int(ds["n_tranches"].values[0]) > 0
