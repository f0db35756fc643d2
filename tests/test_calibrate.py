"""`simkit calibrate kelly | market | target`: fragments a scenario accepts, parameters
recovered from a synthetic history, roots recovered with common random numbers, exit 2 on
bad input. Small runs on the reference engine."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
from scenario_files import GRID_2X2, write_scenario

from simkit import calibrate
from simkit.calibrate_market import fit_history
from simkit.cli import main
from simkit.paths.history import read_history
from simkit.scenario import load_scenario, parse_scenario

HISTORY = Path(__file__).parent / "data" / "history_synthetic.csv"
# scripts/make_history.py: one Merton path, seed 20240601, 2000 days, the baseline market.
TRUE = dict(mu=0.05, sigma=1.90, jump_intensity=4.0, jump_mean=-0.25, jump_std=0.35,
            kappa=6.0, iv_long_run=2.17, eta=1.0, iv_jump_beta=-0.5)  # fmt: skip


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory) -> Path:
    return write_scenario(tmp_path_factory.mktemp("calibrate"), paths=32, chunk_size=32)


# --------------------------------------------------------------------------- kelly


EDGE = ("--set", "hedges.hedges=false", "--set", 'execution.fill="mid"')  # an edge over cash


def test_calibrate_kelly_writes_the_sleeve_fraction(capsys, scenario_file, tmp_path):
    out = tmp_path / "kelly.toml"
    code, stdout, stderr = run_cli(
        capsys, "calibrate", "kelly", str(scenario_file), "--set", "simulation.years=0.2",
        *EDGE, "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    assert "sleeve Kelly f*" in stdout and "per trade" in stdout and f"wrote {out}" in stdout
    text = out.read_text()
    fragment = tomllib.loads(text)
    assert set(fragment) == {"capital"} and set(fragment["capital"]) == {"kelly_fraction"}
    value = fragment["capital"]["kelly_fraction"]

    # The same run in process: the fragment holds its sleeve Kelly fraction.
    from simkit import simulate

    overrides = {
        "simulation.years": 0.2,
        "hedges.hedges": False,
        "execution.fill": "mid",
    }
    ds = simulate(load_scenario(scenario_file, overrides), per_path=False, progress=False)
    assert value == float(ds["kelly_sleeve_fraction"]) > 0
    for key in ("p (win", "a (average win", "b (average loss", "21-day"):
        assert key in text
    assert f"{float(ds['kelly_sleeve_fraction_lo']):.6g}" in text  # intervals, as comments
    over = 0.2 / value
    assert f"{over:.3g} x f*" in stdout

    # Merge 1: the [capital] table pasted into a scenario that has none.
    merged = parse_scenario(scenario_file.read_text() + "\n" + text, path="merged.toml")
    assert merged.strategy.kelly_fraction == value
    # Merge 2: the documented --set form.
    assert f"--set capital.kelly_fraction={value!r}" in text
    via_set = load_scenario(scenario_file, {"capital.kelly_fraction": value})
    assert via_set.strategy.kelly_fraction == value
    # Merge 3: the key copied into an existing [capital] table.
    own = scenario_file.read_text() + "\n[capital]\nportfolio_value = 2e6\n"
    copied = own + f"kelly_fraction = {value!r}\n"
    assert parse_scenario(copied).strategy.kelly_fraction == value


def test_calibrate_kelly_says_do_not_allocate(capsys, scenario_file, tmp_path):
    # The seed's strategy on this market loses against cash: no fraction to write.
    out = tmp_path / "k.toml"
    code, stdout, stderr = run_cli(
        capsys, "calibrate", "kelly", str(scenario_file), "--set", "simulation.years=0.2",
        "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    assert "Do not allocate" in stdout and not out.exists()


def _sleeve_result(**changes) -> dict:
    result = {
        "p": 0.892, "avg_win": 0.123, "avg_loss": 0.087, "seed_fraction": 0.8156,
        "growth_optimal": 9.3748, "recommended": 0.2, "multiplier": 0.25, "cap": 0.2,
        "trades_per_path": 10.0, "paths": 100, "sleeve": 0.05, "sleeve_21d": 0.07,
        "sleeve_share_seed": 0.2,
    }  # fmt: skip
    for key in ("p", "avg_win", "avg_loss", "seed_fraction", "growth_optimal", "sleeve",
                "sleeve_21d"):  # fmt: skip
        result[key + "_lo"], result[key + "_hi"] = result[key] - 0.01, result[key] + 0.01
    result.update(changes)
    return result


def test_kelly_fragment_arithmetic():
    result = _sleeve_result()
    fragment = calibrate.kelly_fragment(result, "x.toml")
    assert tomllib.loads(fragment) == {"capital": {"kelly_fraction": 0.05}}
    assert "(4 x f*)" in fragment  # 0.2 / 0.05: the seed's share over-bets four times
    assert calibrate.over_bet(result) == pytest.approx(4.0)
    assert calibrate.kelly_fragment(_sleeve_result(sleeve=0.0), "x.toml") is None
    assert calibrate.over_bet(_sleeve_result(sleeve=0.0)) == math.inf
    with pytest.raises(calibrate.CalibrationError, match="undefined"):
        calibrate.kelly_fragment(_sleeve_result(sleeve=math.nan), "x.toml")


# --------------------------------------------------------------------------- market


def test_calibrate_market_recovers_the_synthetic_history(capsys, tmp_path):
    out = tmp_path / "m.toml"
    code, stdout, stderr = run_cli(capsys, "calibrate", "market", str(HISTORY), "--out", str(out))
    assert code == 0, stderr
    assert "model comparison" in stdout and "preferred by AIC: merton" in stdout
    text = out.read_text()
    data = tomllib.loads(text)
    market, fit = data["market"], data["fit"]
    assert market["model"] == "merton"
    # Within 3 standard errors of the generator's values (scripts/make_history.py).
    for key in ("mu", "sigma", "jump_intensity", "jump_mean", "jump_std", "kappa", "iv_long_run"):
        assert abs(market[key] - TRUE[key]) < 3 * fit[f"{key}_se"], key
    # The IV fit has no jumps: it sees eta^2 + lambda beta^2 E[J^2] as its variance.
    effective_eta = math.sqrt(
        TRUE["eta"] ** 2
        + TRUE["jump_intensity"]
        * TRUE["iv_jump_beta"] ** 2
        * (TRUE["jump_mean"] ** 2 + TRUE["jump_std"] ** 2)
    )
    assert abs(market["eta"] - effective_eta) < 3 * fit["eta_se"]
    assert fit["aic"] == pytest.approx(2 * 5 - 2 * fit["loglik"])
    assert fit["n_returns"] == 1999
    assert fit["close_column"] == "close" and "of column 'close'" in stdout
    # The fragment, pasted into a scenario, is accepted as written, [fit] and all.
    scenario = parse_scenario("[simulation]\npaths = 10\n" + text, path="fit.toml")
    assert scenario.market.model == "merton"
    assert scenario.market.sigma == market["sigma"]
    assert scenario.market.jump_intensity == market["jump_intensity"]
    # It starts from the history's last IV.
    assert scenario.market.iv0 == market["iv0"] == float(HISTORY.read_text().split(",")[-1])


def test_calibrate_market_gbm_sees_total_volatility(capsys, tmp_path):
    out = tmp_path / "g.toml"
    code, stdout, stderr = run_cli(
        capsys, "calibrate", "market", str(HISTORY), "--model", "gbm", "--out", str(out)
    )
    assert code == 0, stderr
    data = tomllib.loads(out.read_text())
    assert data["market"]["model"] == "gbm"
    assert "jump_intensity" not in data["market"]
    total = math.sqrt(
        TRUE["sigma"] ** 2
        + TRUE["jump_intensity"] * (TRUE["jump_mean"] ** 2 + TRUE["jump_std"] ** 2)
    )
    assert abs(data["market"]["sigma"] - total) < 3 * data["fit"]["sigma_se"]
    assert data["fit"]["aic"] == pytest.approx(2 * 2 - 2 * data["fit"]["loglik"])
    parse_scenario("[simulation]\n" + out.read_text())


def test_calibrate_market_bad_csv_exits_2(capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("date,close\n2016-01-04,3.0\n2016-01-05,abc\n")
    code, _, stderr = run_cli(capsys, "calibrate", "market", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2
    assert str(bad) in stderr and "line 3, close" in stderr and "'abc'" in stderr
    assert "Traceback" not in stderr
    one_day = tmp_path / "one.csv"
    one_day.write_text("date,close\n2016-01-04,3.0\n")
    code, _, stderr = run_cli(capsys, "calibrate", "market", str(one_day))
    assert code == 2 and "one.csv" in stderr and "at least 2 days" in stderr, stderr
    flat = tmp_path / "flat.csv"
    flat.write_text("date,close\n2016-01-04,3.0\n2016-01-05,3.0\n2016-01-06,3.0\n")
    code, _, stderr = run_cli(
        capsys, "calibrate", "market", str(flat), "--model", "gbm", "--out", str(tmp_path / "o")
    )
    assert code == 2 and "flat.csv: cannot fit gbm" in stderr, stderr
    code, _, stderr = run_cli(capsys, "calibrate", "market", str(tmp_path / "none.csv"))
    assert code == 2 and "none.csv" in stderr
    code, _, stderr = run_cli(capsys, "calibrate", "market", str(HISTORY), "--model", "kou")
    assert code == 2 and "--model" in stderr
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def garch_histories(tmp_path_factory) -> dict[str, Path]:
    """Two CSVs of 1,000 days of simkit's own GARCH market (linked IV): `with_iv`
    (date,close,iv) and `closes` (Date,Close,Adj Close: the close adjusted for a dividend yield
    of 2 % a year)."""
    from simkit.paths import MarketParams, simulate_market
    from simkit.precision import x64

    with x64():
        market = simulate_market(MarketParams(model="garch"), 4, 0, 0, 1, 999, dtype=np.float64)
    close, iv = np.asarray(market.spot[0]).tolist(), np.asarray(market.iv[0]).tolist()
    dates = np.datetime64("2015-01-02") + np.arange(len(close))
    folder = tmp_path_factory.mktemp("garch_history")
    with_iv, closes = folder / "with_iv.csv", folder / "closes.csv"
    with_iv.write_text(
        "date,close,iv\n"
        + "".join(f"{d},{c!r},{v!r}\n" for d, c, v in zip(dates, close, iv, strict=True))
    )
    adjusted = (np.array(close) * np.exp(-0.02 * np.arange(len(close))[::-1] / 252)).tolist()
    closes.write_text(
        "Date,Close,Adj Close\n"
        + "".join(f"{d},{c!r},{a!r}\n" for d, c, a in zip(dates, close, adjusted, strict=True))
    )
    return {"with_iv": with_iv, "closes": closes}


@pytest.mark.parametrize(
    ("model", "history"), [("gbm", "with_iv"), ("merton", "closes"), ("garch", "with_iv")]
)
def test_each_models_fragment_loads_into_a_scenario_and_runs(
    capsys, tmp_path, garch_histories, model, history
):
    """The fragment as written (comments, [market], [fit]) under a [simulation] table is a
    scenario that runs; it carries iv0 (the data's last IV) when the data has an iv column and
    says why not otherwise."""
    import simkit

    out = tmp_path / "fragment.toml"
    csv = garch_histories[history]
    code, stdout, stderr = run_cli(
        capsys, "calibrate", "market", str(csv), "--model", model, "--out", str(out)
    )
    assert code == 0, stderr
    text = out.read_text()
    data = tomllib.loads(text)
    assert data["market"]["model"] == model and data["fit"]["history"] == str(csv)
    if history == "with_iv":
        last_iv = float(csv.read_text().strip().rsplit(",", 1)[-1])
        assert data["market"]["iv0"] == last_iv
    else:
        assert "iv0" not in data["market"] and "# iv0 and the IV process" in text
        assert "the history has no iv column" in text
    scenario = parse_scenario(
        '[simulation]\npaths = 4\nyears = 0.05\nengine = "reference"\n' + text, path="x.toml"
    )
    assert scenario.market.model == model
    for key, value in data["market"].items():
        assert getattr(scenario.market, key) == value, key
    ds = simkit.simulate(scenario)
    assert int(ds["paths"]) == 4 and np.isfinite(float(ds["annual_return_mean"]))


def test_the_adjusted_close_is_read_when_present(capsys, tmp_path, garch_histories):
    """A CSV with Close and Adj Close: the adjusted close is fitted (its drift is 2 % a year
    higher: a 2 % dividend yield), and the output and the [fit] record name the column."""
    csv = garch_histories["closes"]
    history = read_history(csv)
    assert history.close_column == "Adj Close"
    out = tmp_path / "g.toml"
    code, stdout, _ = run_cli(
        capsys, "calibrate", "market", str(csv), "--model", "gbm", "--out", str(out)
    )
    assert code == 0 and "of column 'Adj Close'" in stdout
    data = tomllib.loads(out.read_text())
    assert data["fit"]["close_column"] == "Adj Close"
    rows = [line.split(",") for line in csv.read_text().splitlines()[1:]]
    close = np.array([float(r[1]) for r in rows])
    unadjusted = fit_history(close, model="gbm")["mu"]
    assert data["market"]["mu"] == pytest.approx(unadjusted + 0.02, abs=1e-9)
    bad = tmp_path / "bad.csv"
    bad.write_text("Date,Close,Adj Close\n2016-01-04,3.0,3.0\n2016-01-05,3.1,-1\n")
    code, _, stderr = run_cli(capsys, "calibrate", "market", str(bad), "--model", "gbm")
    assert code == 2 and "line 3, Adj Close: must be a price > 0" in stderr, stderr


def test_few_returns_are_warned_about(capsys, tmp_path):
    short = tmp_path / "short.csv"
    rng = np.random.default_rng(1)
    close = (3.0 * np.exp(np.cumsum(0.1 * rng.standard_normal(120)))).tolist()
    dates = np.datetime64("2016-01-04") + np.arange(len(close))
    short.write_text(
        "date,close\n" + "".join(f"{d},{c!r}\n" for d, c in zip(dates, close, strict=True))
    )
    out = tmp_path / "s.toml"
    code, stdout, _ = run_cli(
        capsys, "calibrate", "market", str(short), "--model", "gbm", "--out", str(out)
    )
    assert code == 0 and "warning: only 119 daily returns (fewer than 250" in stdout
    assert "# warning: only 119 daily returns" in out.read_text()


def _fit(aic: float, **values) -> dict:
    return {"fit": {"aic": aic, "converged": True}, **values}


def test_a_clustering_merton_fit_is_flagged_naming_the_better_model():
    clustering = _fit(-31414.7, jump_intensity=163.8, jump_std=0.0129)
    fits = {"gbm": _fit(-30184.2), "merton": clustering, "garch": _fit(-32654.4)}
    delta = {"gbm": 2470.2, "merton": 1239.7, "garch": 0.0}
    [warning] = calibrate._market_warnings(5030, fits, "garch", delta)
    assert warning.startswith("the Merton fit's jumps look like volatility clustering")
    assert "164 a year of std 1.3%" in warning
    assert warning.endswith("the better model by AIC is garch (merton is 1239.7 above)")
    # Without a GARCH fit: merton may be the lowest AIC; the warning says to compare.
    two = {"gbm": fits["gbm"], "merton": clustering}
    [warning] = calibrate._market_warnings(5030, two, "merton", {"gbm": 1230.5, "merton": 0.0})
    assert "merton has the lowest AIC of the models fitted (gbm is 1230.5 above)" in warning
    assert warning.endswith("fit --model all to compare it with GARCH")
    # Jumps that look like jumps: no warning.
    jumps = {"merton": _fit(0.0, jump_intensity=4.0, jump_std=0.35)}
    assert calibrate._market_warnings(5030, jumps, "merton", {"merton": 0.0}) == []


@pytest.mark.slow
def test_sp500_ranks_garch_first_and_flags_merton(capsys, tmp_path):
    """The S&P 500's adjusted closes 1999-2018 (arch's bundled data, 5,030 returns): GJR-GARCH
    beats Merton and GBM by AIC, and Merton's 164 jumps a year of 1.3 % are flagged."""
    from arch.data import sp500

    data = sp500.load()
    csv = tmp_path / "sp500.csv"
    csv.write_text(
        "date,close,adj close\n"
        + "".join(
            f"{day.date().isoformat()},{float(row['Close'])!r},{float(row['Adj Close'])!r}\n"
            for day, row in data.iterrows()
        )
    )
    out = tmp_path / "sp500.toml"
    code, stdout, stderr = run_cli(capsys, "calibrate", "market", str(csv), "--out", str(out))
    assert code == 0, stderr
    assert "preferred by AIC: garch" in stdout
    assert "volatility clustering" in stdout and "the better model by AIC is garch" in stdout
    fragment = tomllib.loads(out.read_text())
    assert fragment["market"]["model"] == "garch"
    assert 0.97 < fragment["fit"]["persistence"] < 1.0
    assert fragment["market"]["garch_gamma"] > 0.1  # leverage
    parse_scenario("[simulation]\n" + out.read_text())


# --------------------------------------------------------------------------- target


def test_target_finds_a_closed_form_root(scenario_file):
    # initial_equity = min(0.25 x 0.816, 0.20) x portfolio_value: 150 000 at 750 000.
    result = calibrate.calibrate_target(
        scenario_file, "capital.portfolio_value", "initial_equity", 150_000.0,
        (100_000.0, 2_000_000.0), paths=4,
    )  # fmt: skip
    assert result.status == "root"
    assert abs(result.root - 750_000.0) <= result.xtol
    assert result.slope == pytest.approx(0.2)
    assert math.isnan(result.uncertainty) and "no standard error" in result.message


def test_target_recovers_a_parameter_within_its_uncertainty(scenario_file):
    from simkit import simulate

    known = 0.3
    ds = simulate(load_scenario(scenario_file, {"market.mu": known}), progress=False)
    target = float(ds["annual_return_mean"])
    result = calibrate.calibrate_target(
        scenario_file, "market.mu", "annual_return_mean", target, (-0.5, 1.5)
    )
    assert result.status == "root", result.message
    assert result.metric_at_root == pytest.approx(target, abs=0.02)
    assert result.slope > 0
    assert result.uncertainty == pytest.approx(result.metric_se / result.slope)
    assert 0 < result.uncertainty < math.inf
    # Common random numbers: the metric is a deterministic function of mu that equals the
    # target at the known value, so the root lands there to within the root tolerance, far
    # inside the Monte Carlo uncertainty.
    assert abs(result.root - known) <= 2 * result.xtol
    assert abs(result.root - known) <= result.uncertainty
    # every evaluation used the same seed: the value at the known point is the target exactly
    xs = np.array([x for x, _, _ in result.evaluations])
    assert len(xs) == len(set(xs)) and len(xs) < 40


def test_target_reports_no_root(capsys, scenario_file):
    code, stdout, stderr = run_cli(
        capsys, "calibrate", "target", str(scenario_file), "--param", "market.mu",
        "--metric", "annual_return_mean", "--target", "50", "--bracket", "0", "0.5",
    )  # fmt: skip
    assert code == 0, stderr
    assert "no value of market.mu in [0, 0.5] reaches annual_return_mean = 50" in stdout
    assert " at 0 and " in stdout and " at 0.5" in stdout


def test_target_cli_prints_the_root(capsys, scenario_file):
    code, stdout, stderr = run_cli(
        capsys, "calibrate", "target", str(scenario_file), "--param", "capital.portfolio_value",
        "--metric", "initial_equity", "--target", "150000", "--bracket", "1e5", "2e6",
        "--paths", "4",
    )  # fmt: skip
    assert code == 0, stderr
    assert "capital.portfolio_value = 750000 +/-" in stdout


def test_target_bad_input_exits_2(capsys, scenario_file, tmp_path):
    grid = write_scenario(tmp_path, "grid.toml", grid=GRID_2X2)
    base = ["calibrate", "target", str(scenario_file)]
    cases = [
        (["--param", "market.sigmaa", "--metric", "sharpe", "--target", "1",
          "--bracket", "1", "2"], "sigmaa"),
        (["--param", "sigma", "--metric", "sharpe", "--target", "1", "--bracket", "1", "2"],
         "TABLE.KEY"),
        (["--param", "market.sigma", "--metric", "nope", "--target", "1", "--bracket", "1", "2"],
         "--metric 'nope'"),
        (["--param", "market.sigma", "--metric", "assignment_rate", "--target", "1",
          "--bracket", "1", "2"], "not a scalar"),
        (["--param", "market.sigma", "--metric", "sharpe", "--target", "1",
          "--bracket", "2", "1"], "--bracket"),
        (["--param", "market.sigma", "--metric", "sharpe", "--target", "1",
          "--bracket", "-1", "2"], "market.sigma"),
        (["--param", "market.sigma", "--metric", "sharpe", "--target", "x",
          "--bracket", "1", "2"], "--target"),
        (["--param", "strategy.entry_every_days", "--metric", "sharpe", "--target", "1",
          "--bracket", "1.5", "2.5"], "entry_every_days"),
        (["--param", "market.sigma", "--metric", "sharpe", "--target", "1",
          "--bracket", "1", "2", "--set", "market.sigma=2"], "once"),
    ]  # fmt: skip
    for argv, needle in cases:
        code, stdout, stderr = run_cli(capsys, *base, *argv)
        assert code == 2, (argv, stdout, stderr)
        assert needle in stderr, (argv, stderr)
        assert "Traceback" not in stderr and "solving" not in stdout
    code, _, stderr = run_cli(
        capsys, "calibrate", "target", str(grid), "--param", "market.mu", "--metric", "sharpe",
        "--target", "1", "--bracket", "0", "1",
    )  # fmt: skip
    assert code == 2 and "[grid]" in stderr
    code, _, stderr = run_cli(capsys, "calibrate", "kelly", str(grid))
    assert code == 2 and "[grid]" in stderr
    code, _, stderr = run_cli(capsys, "calibrate")
    assert code == 2
