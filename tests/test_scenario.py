"""Scenario files: shipped files load, defaults match the records, every bad input is named."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simkit.paths.market import MarketParams
from simkit.scenario import (
    STRATEGY_TABLES,
    TABLES,
    GridAxis,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_override,
    parse_scenario,
    scenario_reference_markdown,
)
from simkit.strategy.config import StrategyConfig

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "scenarios").glob("*.toml"))


def write(tmp_path: Path, text: str, name: str = "bad.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str, overrides=None) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, text), overrides=overrides)
    return info.value


# --- shipped files ------------------------------------------------------------------------------


def test_the_shipped_scenarios_are_there():
    names = {p.name for p in SHIPPED}
    assert {
        "baseline.toml",
        "hold_to_expiry.toml",
        "merton_jumps.toml",
        "fair_market.toml",
        "grid_vol_drift.toml",
        "seed_fills.toml",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_scenario_loads_and_round_trips(path: Path):
    scenario = load_scenario(path)
    assert scenario.path == str(path)
    assert scenario.text == path.read_text(encoding="utf-8")
    assert scenario.text.lstrip().startswith("#"), "each shipped file opens with a comment header"
    again = parse_scenario(scenario.to_toml())
    assert again.simulation == scenario.simulation
    assert again.market == scenario.market
    assert again.strategy == scenario.strategy
    assert again.grid == scenario.grid


def test_baseline_is_the_seed_strategy_with_every_key_written_out():
    scenario = load_scenario(ROOT / "scenarios" / "baseline.toml")
    assert scenario.strategy == StrategyConfig()
    assert scenario.market == MarketParams()
    assert scenario.grid == () and scenario.shape == ()
    assert scenario.simulation.paths == 100_000
    assert scenario.simulation.years == 1.0 and scenario.simulation.n_steps == 252
    raw = tomllib.loads(scenario.text)
    for table, model in TABLES.items():
        written = set(raw[table])
        expected = {k for k, f in model.model_fields.items() if f.default is not None}
        assert expected <= written, f"[{table}] does not write out {expected - written}"


def test_shipped_scenarios_say_what_they_claim():
    load = lambda name: load_scenario(ROOT / "scenarios" / name)  # noqa: E731
    hold = load("hold_to_expiry.toml")
    assert not hold.strategy.time_exit and hold.market.mu < 0 and hold.strategy.covered_calls
    jumps = load("merton_jumps.toml")
    assert jumps.market.model == "merton"
    assert (jumps.market.jump_intensity, jumps.market.jump_mean, jumps.market.jump_std) == (
        4.0,
        -0.25,
        0.35,
    )
    fair = load("fair_market.toml")
    m = fair.market
    assert m.risk_neutral and m.mu == m.rate == 0.05
    assert m.sigma == m.iv0 == m.iv_long_run and m.eta <= 0.05
    assert fair.strategy.fill == "mid" and fair.strategy.commission == 0.0
    grid = load("grid_vol_drift.toml")
    assert grid.market.model == "merton"
    assert grid.dims == ("market.sigma", "market.mu", "market.jump_intensity")
    assert grid.simulation.paths <= 5000
    assert load("seed_fills.toml").strategy.fill == "seed"
    heston = load("heston_linked.toml")
    m = heston.market
    assert m.model == "heston" and m.linked_iv and m.rho == -0.7
    assert m.v0 == m.theta_v == pytest.approx(1.9**2)
    assert m.iv0 == pytest.approx(math.sqrt(m.v0) * m.vrp_long_run)
    assert heston.strategy == StrategyConfig()
    garch = load("garch_linked.toml")
    m = garch.market
    assert m.model == "garch" and m.linked_iv and m.garch_gamma > 0
    assert m.garch_alpha + m.garch_gamma / 2 + m.garch_beta == pytest.approx(0.97)
    assert 252 * m.garch_omega / (1 - 0.97) == pytest.approx(1.9**2)  # long-run vol 190 %
    assert m.v0 == pytest.approx(1.9**2) and m.iv0 == pytest.approx(math.sqrt(m.v0) * 1.15)
    assert garch.strategy == StrategyConfig()


# --- defaults and the table layout --------------------------------------------------------------


def test_defaults_equal_the_records():
    scenario = parse_scenario("[simulation]\n")
    assert scenario.strategy == StrategyConfig()
    assert scenario.market == MarketParams()
    sim = scenario.simulation
    assert (sim.paths, sim.seed, sim.years, sim.n_steps) == (10000, 0, 1.0, 252)
    assert (sim.chunk_size, sim.float64, sim.engine, sim.description) == (2048, False, "jax", None)
    [cell] = scenario.cells()
    assert cell.index == () and cell.coords == {}
    assert cell.strategy == StrategyConfig() and cell.market == MarketParams()


def test_every_strategy_field_lands_in_exactly_one_table():
    fields = [f.name for f in dataclasses.fields(StrategyConfig)]
    placed = [name for table in STRATEGY_TABLES for name in TABLES[table].model_fields]
    assert sorted(placed) == sorted(fields), (
        f"unplaced: {set(fields) - set(placed)}, unknown: {set(placed) - set(fields)}"
    )
    assert len(placed) == len(set(placed)), "a field sits in two tables"
    for table in STRATEGY_TABLES:
        for name, info in TABLES[table].model_fields.items():
            default = getattr(StrategyConfig(), name)
            assert (tuple(info.default) if isinstance(default, tuple) else info.default) == default


def test_market_table_has_exactly_the_market_params_fields():
    fields = {f.name: f.default for f in dataclasses.fields(MarketParams)}
    table = {name: info.default for name, info in TABLES["market"].model_fields.items()}
    assert table == fields


def test_int_is_accepted_for_a_number_and_stays_a_float():
    scenario = parse_scenario("[simulation]\nyears = 2\n[market]\nsigma = 2\n")
    assert scenario.market.sigma == 2.0 and isinstance(scenario.market.sigma, float)
    assert scenario.simulation.n_steps == 504


def test_n_steps_rounds_half_up():
    assert parse_scenario("[simulation]\nyears = 0.5\n").simulation.n_steps == 126
    assert parse_scenario("[simulation]\nyears = 0.001984126984126984\n").simulation.n_steps == 1


# --- bad input: each class names the file and the key ------------------------------------------

BAD = [
    (
        "unknown key",
        "[simulation]\n[market]\nsigam = 1.0\n",
        "market.sigam",
        "did you mean 'sigma'",
    ),
    ("unknown table", "[simulation]\n[markt]\nsigma = 1.0\n", "markt", "unknown table"),
    (
        "key in the wrong table",
        '[simulation]\n[strategy]\nfill = "mid"\n',
        "strategy.fill",
        "[execution]",
    ),
    ("key outside a table", "paths = 3\n[simulation]\n", "paths", "[simulation]"),
    ("wrong type", '[simulation]\n[market]\nsigma = "high"\n', "market.sigma", "must be a number"),
    ("bool where int", "[simulation]\npaths = true\n", "simulation.paths", "must be an integer"),
    ("float where int", "[simulation]\npaths = 10.5\n", "simulation.paths", "must be an integer"),
    ("bool where float", "[simulation]\n[market]\ns0 = false\n", "market.s0", "must be a number"),
    (
        "string where bool",
        '[simulation]\n[exits]\ntime_exit = "no"\n',
        "exits.time_exit",
        "true or false",
    ),
    ("nan", "[simulation]\n[market]\nsigma = nan\n", "market.sigma", "finite"),
    ("inf", "[simulation]\n[market]\ns0 = inf\n", "market.s0", "finite"),
    (
        "negative vol",
        "[simulation]\n[market]\nsigma = -1.0\n",
        "market.sigma",
        "must be > 0, got -1.0",
    ),
    (
        "correlation > 1",
        "[simulation]\n[market]\niv_spot_corr = 1.5\n",
        "market.iv_spot_corr",
        "[-1, 1]",
    ),
    ("zero kappa", "[simulation]\n[market]\nkappa = 0.0\n", "market.kappa", "> 0"),
    ("bad model", '[simulation]\n[market]\nmodel = "arch"\n', "market.model", '"garch"'),
    (
        "garch not stationary",
        '[simulation]\n[market]\nmodel = "garch"\ngarch_beta = 0.95\n',
        "market.garch_beta",
        "below 1 (a stationary variance)",
    ),
    (
        "linked IV without a variance",
        '[simulation]\n[market]\niv_model = "linked"\n',
        "market.iv_model",
        "needs a stochastic-variance model",
    ),
    (
        "linked IV without mean reversion",
        '[simulation]\n[market]\nmodel = "bates"\nkappa_v = 0.0\n',
        "market.kappa_v",
        "must be > 0 with linked IV",
    ),
    (
        "probability > 1",
        "[simulation]\n[assignment]\nearly_assignment_prob = 1.2\n",
        "assignment.early_assignment_prob",
        "[0, 1]",
    ),
    (
        "weights not summing to 1",
        "[simulation]\n[strategy]\nweights = [0.15, 0.25, 0.30, 0.20, 0.05]\n",
        "strategy.weights",
        "must sum to 1",
    ),
    (
        "negative weight",
        "[simulation]\n[strategy]\nweights = [0.5, 0.6, -0.1, 0.0, 0.0]\n",
        "strategy.weights[2]",
        "in [0, 1], got -0.1",
    ),
    (
        "unequal lengths",
        "[simulation]\n[strategy]\nstrikes = [2.0, 3.0]\n",
        "strategy.weights",
        "one weight per",
    ),
    (
        "hedge weights",
        "[simulation]\n[hedges]\nhedge_normal_weights = [0.7, 0.2]\n",
        "hedges.hedge_normal_weights",
        "must sum to 1",
    ),
    (
        "empty ladder",
        "[simulation]\n[strategy]\nstrikes = []\nweights = []\n",
        "strategy.strikes",
        "empty",
    ),
    ("zero paths", "[simulation]\npaths = 0\n", "simulation.paths", ">= 1, got 0"),
    ("negative seed", "[simulation]\nseed = -1\n", "simulation.seed", "got -1"),
    ("bad engine", '[simulation]\nengine = "numpy"\n', "simulation.engine", '"reference"'),
    ("too short a horizon", "[simulation]\nyears = 0.001\n", "simulation.years", "trading day"),
    (
        "too short an option",
        "[simulation]\n[strategy]\ndte_calendar = 0.5\n",
        "strategy.dte_calendar",
        "trading day",
    ),
    (
        "dte range inverted",
        "[simulation]\n[strategy]\nsignal_dte_min = 50.0\n",
        "strategy.signal_dte_max",
        "signal_dte_min",
    ),
    (
        "delta range inverted",
        "[simulation]\n[limits]\ndelta_min = -20.0\n",
        "limits.delta_max",
        "delta_min",
    ),
    ("var level 1", "[simulation]\n[limits]\nvar_level = 1.0\n", "limits.var_level", "(0, 1)"),
    (
        "too much short interest",
        "[simulation]\n[market]\nshort_interest = 140.0\n",
        "market.short_interest",
        "[0, 100]",
    ),
    ("a table that is a value", "market = 3\n[simulation]\n", "market", "must be a table"),
    ("no [simulation]", "[market]\nsigma = 1.0\n", "simulation", "[simulation]"),
    (
        "bad grid key",
        '[simulation]\n[grid]\n"market.sigam" = [1.0, 2.0]\n',
        "grid.market.sigam",
        "names no parameter",
    ),
    (
        "grid key without table",
        '[simulation]\n[grid]\n"sigma" = [1.0, 2.0]\n',
        "grid.sigma",
        "market.sigma",
    ),
    (
        "empty grid list",
        '[simulation]\n[grid]\n"market.sigma" = []\n',
        "grid.market.sigma",
        "empty",
    ),
    (
        "grid value not a list",
        '[simulation]\n[grid]\n"market.sigma" = 1.5\n',
        "grid.market.sigma",
        "list",
    ),
    (
        "bad grid value",
        '[simulation]\n[grid]\n"market.sigma" = [1.5, -1.0]\n',
        "grid.market.sigma[1]",
        "must be > 0, got -1.0",
    ),
    (
        "grid value wrong type",
        '[simulation]\n[grid]\n"exits.time_exit" = [true, 0]\n',
        "grid.exits.time_exit[1]",
        "true or false",
    ),
    (
        "repeated grid value",
        '[simulation]\n[grid]\n"market.sigma" = [1.5, 1.5]\n',
        "grid.market.sigma",
        "twice",
    ),
    (
        "grid over a list key",
        '[simulation]\n[grid]\n"strategy.strikes" = [[1.0], [2.0]]\n',
        "grid.strategy.strikes",
        "list-valued",
    ),
    (
        "grid over simulation",
        '[simulation]\n[grid]\n"simulation.paths" = [1, 2]\n',
        "grid.simulation.paths",
        "cannot be swept",
    ),
    (
        "zip lengths differ",
        '[simulation]\n[grid.zip]\n"market.sigma" = [1.5, 3.0]\n"market.iv0" = [2.0, 3.0, 4.0]\n',
        "grid.zip",
        "equal lengths",
    ),
    (
        "swept twice",
        '[simulation]\n[grid]\n"market.sigma" = [1.5]\n[grid.zip]\n"market.sigma" = [2.0]\n"market.iv0" = [2.0]\n',
        "grid.zip.market.sigma",
        "twice",
    ),
    (
        "bad grid cell",
        '[simulation]\n[grid]\n"limits.delta_min" = [-70.0, -20.0]\n',
        "limits.delta_max",
        "in grid cell limits.delta_min = -20.0",
    ),
]


@pytest.mark.parametrize(("case", "text", "key", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_the_file_and_the_key(tmp_path, case, text, key, words):
    error = error_of(tmp_path, text)
    message = str(error)
    assert error.path == str(tmp_path / "bad.toml")
    assert message.startswith(str(tmp_path / "bad.toml") + ": "), message
    assert f": {key}: " in message, message
    assert words in message, message
    assert key in [p.key for p in error.problems]
    assert "Traceback" not in message and "pydantic" not in message.lower()


def test_the_message_is_one_line_per_problem_with_the_line_number(tmp_path):
    error = error_of(tmp_path, "[simulation]\n\n[market]\nsigma = -1.0\n")
    path = tmp_path / "bad.toml"
    assert str(error) == f"{path}: market.sigma: must be > 0, got -1.0 (line 4)"
    assert error.problems == [("market.sigma", 4, "must be > 0, got -1.0")]


def test_every_problem_of_a_file_is_collected_in_file_order(tmp_path):
    text = """\
[simulation]
paths = 0
seed = true

[market]
sigma = -1.0
s0 = nan
model = "arch"

[strategy]
weights = [0.15, 0.25, 0.30, 0.20, 0.05]

[limit]
delta_min = 0.0

[grid]
"market.sigam" = [1.0]
"market.mu" = [0.0, "x"]
"""
    error = error_of(tmp_path, text)
    keys = [p.key for p in error.problems]
    assert keys == [
        "simulation.paths",
        "simulation.seed",
        "market.sigma",
        "market.s0",
        "market.model",
        "strategy.weights",
        "limit",
        "grid.market.sigam",
        "grid.market.mu[1]",
    ]
    assert [p.line for p in error.problems] == [2, 3, 6, 7, 8, 11, 13, 17, 18]
    assert len(str(error).splitlines()) == len(keys)


def test_toml_syntax_error_gives_the_line(tmp_path):
    error = error_of(tmp_path, "[simulation]\npaths = 10\nseed = = 3\n")
    [problem] = error.problems
    assert problem.line == 3
    assert f"{tmp_path / 'bad.toml'}: line 3: TOML syntax error" in str(error)


def test_duplicate_key_is_a_syntax_error(tmp_path):
    error = error_of(tmp_path, "[simulation]\npaths = 10\npaths = 20\n")
    assert "TOML syntax error" in str(error) and "bad.toml" in str(error)


@pytest.mark.parametrize("text", ["", "   \n\n", "\t"])
def test_an_empty_file_is_an_error_not_the_defaults(tmp_path, text):
    error = error_of(tmp_path, text)
    assert "bad.toml: the file is empty" in str(error)
    assert "[simulation]" in str(error)


def test_a_file_of_comments_has_no_simulation_table(tmp_path):
    error = error_of(tmp_path, "# nothing here\n")
    assert ": simulation: missing table [simulation]" in str(error)


def test_binary_file(tmp_path):
    path = tmp_path / "image.toml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ScenarioError, match=r"image\.toml: is a binary file"):
        load_scenario(path)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[simulation]\ndescription = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ScenarioError, match=r"latin1\.toml: is not UTF-8 text"):
        load_scenario(path)


def test_utf8_with_byte_order_mark_is_fine(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes('\ufeff[simulation]\ndescription = "café"\n'.encode())
    assert load_scenario(path).simulation.description == "café"


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match=r"nowhere\.toml: no such file"):
        load_scenario(tmp_path / "nowhere.toml")


def test_directory(tmp_path):
    with pytest.raises(ScenarioError, match="is a directory"):
        load_scenario(tmp_path)


def test_scenario_error_without_a_path_still_names_the_key():
    with pytest.raises(ScenarioError) as info:
        parse_scenario("[simulation]\npaths = -5\n")
    assert str(info.value) == "simulation.paths: must be >= 1, got -5 (line 2)"
    assert info.value.path is None


# --- overrides ----------------------------------------------------------------------------------


def test_overrides_replace_file_values():
    scenario = load_scenario(
        ROOT / "scenarios" / "baseline.toml",
        overrides={"simulation.paths": 100, "market.sigma": 2, "execution.fill": "mid"},
    )
    assert scenario.simulation.paths == 100
    assert scenario.market.sigma == 2.0
    assert scenario.strategy.fill == "mid"
    assert scenario.overrides == {
        "simulation.paths": 100,
        "market.sigma": 2,
        "execution.fill": "mid",
    }


def test_overrides_may_fill_a_table_the_file_omits():
    scenario = parse_scenario("[simulation]\n", overrides={"hedges.hedges": False})
    assert scenario.strategy.hedges is False


def test_overrides_are_validated_like_the_file(tmp_path):
    error = error_of(tmp_path, "[simulation]\npaths = 10\n", overrides={"simulation.paths": 0})
    message = str(error)
    assert (
        message
        == f"{tmp_path / 'bad.toml'}: simulation.paths: must be >= 1, got 0 (set by an override)"
    )


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"market.sigam": 1.0}, "market.sigam: unknown key in [market]; did you mean 'sigma'?"),
        ({"markets.sigma": 1.0}, "markets.sigma: unknown table"),
        ({"sigma": 1.0}, "sigma: an override key is TABLE.KEY"),
        ({"grid.market.sigma": [1.0]}, "cannot be overridden"),
        ({"market.sigma": float("nan")}, "market.sigma: must be a finite number"),
        ({"simulation.paths": True}, "simulation.paths: must be an integer, got true"),
        ({"strategy.weights": [1.0, 0.0]}, "strategy.weights: 2 weights for 5 strikes"),
    ],
)
def test_bad_overrides_are_named(tmp_path, overrides, words):
    assert words in str(error_of(tmp_path, "[simulation]\n", overrides=overrides))


def test_an_override_cannot_also_set_a_grid_axis(tmp_path):
    text = '[simulation]\n[grid]\n"market.sigma" = [1.0, 2.0]\n'
    error = error_of(tmp_path, text, overrides={"market.sigma": 3.0})
    assert "market.sigma: is swept by the grid" in str(error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("market.sigma=2.5", ("market.sigma", 2.5)),
        ("simulation.paths=100", ("simulation.paths", 100)),
        ("simulation.float64=true", ("simulation.float64", True)),
        ("market.model=merton", ("market.model", "merton")),
        ('market.model="merton"', ("market.model", "merton")),
        ("strategy.strikes=[2, 3.5]", ("strategy.strikes", [2, 3.5])),
        (" market.sigma = 1e-3 ", ("market.sigma", 0.001)),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize(
    "text", ["market.sigma", "=2", "market.sigma=", "market.sigma=2.5.1", "a.b=1\nc = 2"]
)
def test_parse_override_rejects_malformed_input(text):
    with pytest.raises(ScenarioError):
        parse_override(text)


def test_parse_override_of_nan_is_read_then_rejected(tmp_path):
    key, value = parse_override("market.sigma=nan")
    assert math.isnan(value)
    assert "must be a finite number, got nan" in str(
        error_of(tmp_path, "[simulation]\n", {key: value})
    )


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0.0, max_value=20.0, exclude_min=True, allow_nan=False))
def test_any_valid_sigma_override_round_trips(sigma):
    key, value = parse_override(f"market.sigma={sigma!r}")
    scenario = parse_scenario("[simulation]\n", overrides={key: value})
    assert scenario.market.sigma == sigma
    assert parse_scenario(scenario.to_toml()).market.sigma == sigma


# --- the grid -----------------------------------------------------------------------------------

GRID = """\
[simulation]
paths = 10

[market]
sigma = 1.9

[grid]
"market.sigma" = [1.5, 3.0]
"exits.time_exit" = [true, false]

[grid.zip]
"market.iv0" = [2.0, 4.25, 5.0]
"market.iv_long_run" = [1.5, 2.17, 2.5]
"""


def test_grid_axes_in_file_order_with_a_zip_dimension():
    scenario = parse_scenario(GRID)
    assert scenario.grid == (
        GridAxis("market.sigma", [1.5, 3.0], {}),
        GridAxis("exits.time_exit", [True, False], {}),
        GridAxis("market.iv0", [2.0, 4.25, 5.0], {"market.iv_long_run": [1.5, 2.17, 2.5]}),
    )
    assert scenario.shape == (2, 2, 3)
    assert scenario.dims == ("market.sigma", "exits.time_exit", "market.iv0")
    assert scenario.market.sigma == 1.9  # the base value, outside the grid


def test_grid_cells_in_c_order_with_their_coords():
    cells = parse_scenario(GRID).cells()
    assert len(cells) == 12
    assert [c.index for c in cells[:4]] == [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0)]
    assert cells[-1].index == (1, 1, 2)
    cell = cells[5]  # (0, 1, 2)
    assert cell.index == (0, 1, 2)
    assert cell.coords == {
        "market.sigma": 1.5,
        "exits.time_exit": False,
        "market.iv0": 5.0,
        "market.iv_long_run": 2.5,
    }
    assert cell.market == MarketParams(sigma=1.5, iv0=5.0, iv_long_run=2.5)
    assert cell.strategy == StrategyConfig(time_exit=False)


def test_unquoted_dotted_grid_keys_mean_the_same():
    quoted = parse_scenario('[simulation]\n[grid]\n"market.sigma" = [1.0, 2.0]\n')
    bare = parse_scenario("[simulation]\n[grid]\nmarket.sigma = [1.0, 2.0]\n")
    assert quoted.grid == bare.grid


def test_several_zip_groups():
    text = """\
[simulation]
[[grid.zip]]
"market.sigma" = [1.0, 2.0]
"market.iv0" = [1.5, 2.5]
[[grid.zip]]
"market.mu" = [0.0, 0.1, 0.2]
"capital.allocation" = [1e5, 2e5, 3e5]
"""
    scenario = parse_scenario(text)
    assert scenario.dims == ("market.sigma", "market.mu")
    assert scenario.cells()[4].strategy.allocation == 2e5
    assert parse_scenario(scenario.to_toml()).grid == scenario.grid


def test_grid_without_axes_is_one_cell():
    scenario = parse_scenario("[simulation]\n[grid]\n")
    assert scenario.shape == () and len(scenario.cells()) == 1


def test_every_bad_grid_value_is_reported(tmp_path):
    error = error_of(tmp_path, '[simulation]\n[grid]\n"market.sigma" = [-1.0, 1.0, nan, "x"]\n')
    keys = [p.key for p in error.problems]
    assert keys == ["grid.market.sigma[0]", "grid.market.sigma[2]", "grid.market.sigma[3]"]


def test_a_scenario_is_immutable():
    scenario = parse_scenario("[simulation]\n")
    assert isinstance(scenario, Scenario)
    with pytest.raises(dataclasses.FrozenInstanceError):
        scenario.simulation.paths = 3  # type: ignore[misc]


# --- docs ---------------------------------------------------------------------------------------


def test_docs_scenario_md_is_the_generated_reference():
    committed = (ROOT / "docs" / "SCENARIO.md").read_text(encoding="utf-8")
    assert committed == scenario_reference_markdown(), (
        "docs/SCENARIO.md is stale: run `.venv/bin/python -m simkit.scenario > docs/SCENARIO.md`"
    )


def test_the_reference_documents_every_key():
    text = scenario_reference_markdown()
    for table, model in TABLES.items():
        assert f"## [{table}]" in text
        for name in model.model_fields:
            assert f"| `{name}` |" in text


def test_failing_grid_cells_are_reported_then_counted(tmp_path):
    values = ", ".join(str(float(d)) for d in range(-20, 0))  # each >= delta_max = -30
    error = error_of(tmp_path, f'[simulation]\n[grid]\n"limits.delta_min" = [-70.0, {values}]\n')
    messages = [p.message for p in error.problems]
    assert len(messages) == 6
    assert messages[0].startswith("in grid cell limits.delta_min = -20.0: must be > delta_min")
    assert messages[-1] == "… and 15 more grid cells fail"


def test_a_fit_record_is_accepted_and_not_read(tmp_path):
    """`simkit calibrate market` writes [fit] beside [market]: any scalar keys (a NaN standard
    error included) load and change nothing; a table or a list inside it is an error."""
    record = '[fit]\nloglik = 1.5\nmu_se = nan\nhistory = "x.csv"\nconverged = true\n'
    scenario = parse_scenario("[simulation]\n" + record)
    assert scenario.market == MarketParams() and scenario.strategy == StrategyConfig()
    error = error_of(tmp_path, "[simulation]\n[fit]\nranges = [1, 2]\n[fit.inner]\nx = 1\n")
    messages = {p.key: p.message for p in error.problems}
    assert messages["fit.ranges"].startswith("must be a string, number or boolean")
    assert messages["fit.inner"].startswith("must be a string, number or boolean")
    error = error_of(tmp_path, "fit = 3\n[simulation]\n")
    assert [p.key for p in error.problems] == ["fit"]
