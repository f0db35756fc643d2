"""Scenario files: TOML text → validated, typed parameters (the only module that reads TOML).

A scenario file has a required ``[simulation]`` table, a ``[market]`` table (the fields of
``simkit.paths.market.MarketParams``), seven strategy tables that group the fields of
``simkit.schema.strategy.StrategyConfig`` (``[capital]``, ``[strategy]``, ``[execution]``,
``[exits]``, ``[assignment]``, ``[hedges]``, ``[limits]``) and an optional ``[grid]``. Every
table is checked by its own pydantic model; every problem of a file is collected, with its key
path and, where known, its line, before one ``ScenarioError`` reports them all. Overrides
(``--set market.sigma=2.5``, ``--paths N``) are applied to the parsed tables before validation,
so a bad flag fails exactly like the same bad value written in the file.

``docs/SCENARIO.md`` is generated from the models below (``scenario_reference_markdown``); a
test keeps the two equal. Regenerate with ``python -m simkit.scenario > docs/SCENARIO.md``.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import math
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import annotated_types
import numpy as np
from pydantic import (
    Field,
    Strict,
    ValidationError,
)

from simkit.paths import shocks
from simkit.paths.history_csv import HistoryError, load_history
from simkit.schema.market import MarketParams
from simkit.schema.strategy import ConfigProblems, StrategyConfig
from simkit.schema.tables import (
    _STRATEGY_DEFAULTS,
    _TOP_LEVEL,
    GRID_TABLES,
    RECORD_TABLES,
    STRATEGY_FIELD_TABLE,
    STRATEGY_TABLES,
    TABLES,
    Bool,
    ClaimsTable,
    Float,
    Int,
    SensitivityTable,
    SimulationTable,
    Str,
    _key,
    _Table,
)

__all__ = [
    "Cell",
    "GridAxis",
    "Problem",
    "Scenario",
    "ScenarioError",
    "Simulation",
    "TABLES",
    "load_scenario",
    "load_stress",
    "parse_override",
    "parse_stress",
    "parse_scenario",
    "scenario_reference_markdown",
]

TRADING_DAYS_PER_YEAR = 252
_MAX_CELL_PROBLEMS = 5  # grid cells that fail cross-field checks, reported one by one

# ---------------------------------------------------------------------------------------------
# Errors


class Problem(NamedTuple):
    """One thing wrong with a scenario: where (dotted key path, line) and what."""

    key: str  # "market.sigma", "strategy.weights[2]", "grid.market.sigma[1]"; "" for the file
    line: int | None  # 1-based line in the file, when known
    message: str


class ScenarioError(Exception):
    """A scenario file (or an override) that cannot be used; lists every problem found."""

    def __init__(self, path: str | None, problems: list[Problem] | list[tuple]):
        self.path = path
        self.problems = [Problem(*p) for p in problems]
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(self._format(p) for p in self.problems)

    def _format(self, p: Problem) -> str:
        """``file: key: message (line N)``; ``file: line N: message`` when no key is known."""
        parts = [self.path] if self.path else []
        if p.key:
            where = f" (line {p.line})" if p.line is not None else ""
            parts += [p.key, p.message + where]
        else:
            parts += [f"line {p.line}"] if p.line is not None else []
            parts.append(p.message)
        return ": ".join(parts)


# ---------------------------------------------------------------------------------------------
# The validated scenario


@dataclass(frozen=True)
class Simulation:
    """The [simulation] table, with the number of daily steps derived from the horizon."""

    paths: int
    seed: int
    years: float
    n_steps: int  # round(252 * years), half up
    chunk_size: int
    float64: bool
    engine: str  # "jax" | "reference"
    description: str | None = None


@dataclass(frozen=True)
class GridAxis:
    """One result dimension: a swept parameter, and the parameters zipped to it (same length)."""

    name: str  # full dotted key, e.g. "market.sigma"; the dimension's name
    values: list  # the dimension's coordinate values, in file order
    zipped: dict[str, list] = field(default_factory=dict)  # non-dimension coordinates on it


@dataclass(frozen=True)
class Cell:
    """One point of the grid: its index in the result array and its complete parameters."""

    index: tuple[int, ...]
    coords: dict[str, object]  # every gridded key of this cell (dimension and zipped) -> value
    market: Any  # simkit.paths.market.MarketParams
    strategy: StrategyConfig


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: the base parameters and, when the file has one, the grid."""

    path: str | None
    text: str  # the file as written (overrides are not in it: see `overrides`)
    simulation: Simulation
    market: Any  # simkit.paths.market.MarketParams; the values outside the grid
    strategy: StrategyConfig
    grid: tuple[GridAxis, ...] = ()
    overrides: dict[str, object] = field(default_factory=dict)
    claims: Any = field(default_factory=lambda: ClaimsTable())  # the [claims] table
    sensitivity: Any = field(default_factory=lambda: SensitivityTable())  # [sensitivity]
    _cells: tuple[Cell, ...] = field(default=(), repr=False, compare=False)
    # What the file asks that the run does otherwise (a replay's horizon and single path), for
    # the CLI to print; the values used are in `simulation`.
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """Result shape over the grid: one entry per axis; () without a grid."""
        return tuple(len(axis.values) for axis in self.grid)

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(axis.name for axis in self.grid)

    @property
    def replay(self) -> bool:
        """Whether the market is a history replayed as one path (every cell's, if any is)."""
        return any(c.market.model == "replay" for c in self._cells)

    def cells(self) -> list[Cell]:
        """Every grid cell in C order (last axis fastest); one cell with index () without a grid."""
        return list(self._cells)

    def to_toml(self) -> str:
        """The complete validated scenario (every key, overrides applied) as TOML text."""
        return _scenario_to_toml(self)


# ---------------------------------------------------------------------------------------------
# Entry points


def load_scenario(path: str | Path, overrides: Mapping[str, object] | None = None) -> Scenario:
    """Read, parse and validate a scenario file; raise ScenarioError listing every problem."""
    shown = str(path)
    p = Path(path)
    if p.is_dir():
        raise ScenarioError(shown, [Problem("", None, "is a directory, not a scenario file")])
    if not p.exists():
        raise ScenarioError(shown, [Problem("", None, "no such file")])
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ScenarioError(
            shown, [Problem("", None, f"cannot read: {exc.strerror or exc}")]
        ) from None
    if b"\x00" in data:
        raise ScenarioError(shown, [Problem("", None, "is a binary file, not TOML text")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            shown,
            [
                Problem(
                    "",
                    None,
                    f"is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}); TOML files are UTF-8",
                )
            ],
        ) from None
    return parse_scenario(text, path=shown, overrides=overrides)


def parse_scenario(
    text: str, path: str | None = None, overrides: Mapping[str, object] | None = None
) -> Scenario:
    """Parse and validate scenario text (``path`` only names it in messages)."""
    if not text.strip():
        raise ScenarioError(
            path,
            [
                Problem(
                    "", None, "the file is empty; a scenario names at least its [simulation] table"
                )
            ],
        )
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(path, [_syntax_problem(exc, text)]) from None
    return _Builder(text, path, raw, dict(overrides or {})).build()


def parse_override(s: str) -> tuple[str, object]:
    """``"market.sigma=2.5"`` -> ``("market.sigma", 2.5)``; the value is read as TOML.

    A bare word that is not TOML (``market.model=merton``) is taken as a string.
    """
    key, sep, raw = s.partition("=")
    key = key.strip()
    raw = raw.strip()
    if not sep or not key or not raw:
        raise ScenarioError(None, [Problem(s, None, "expected KEY=VALUE, e.g. market.sigma=2.5")])
    try:
        parsed = tomllib.loads(f"value = {raw}")
    except tomllib.TOMLDecodeError:
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", raw):
            return key, raw
        raise ScenarioError(
            None,
            [Problem(key, None, f'cannot read {raw!r} as a TOML value (quote strings: "...")')],
        ) from None
    if set(parsed) != {"value"}:
        raise ScenarioError(None, [Problem(key, None, f"{raw!r} is more than one TOML value")])
    return key, parsed["value"]


# ---------------------------------------------------------------------------------------------
# Validation


def _syntax_problem(exc: tomllib.TOMLDecodeError, text: str) -> Problem:
    message = str(exc)
    lines = text.splitlines()
    line: int | None = None
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if match:
        line = int(match.group(1))
        message = f"{message[: match.start()]} (column {match.group(2)})"
    elif message.endswith("(at end of document)"):
        line = max(len(lines), 1)
        message = message.removesuffix(" (at end of document)") + " (at the end of the file)"
    return Problem("", line, f"TOML syntax error: {message}")


_HEADER = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY_LINE = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-]+(?:\s*\.\s*[A-Za-z0-9_\-]+)*)\s*=""")


def _header_of(line: str) -> str | None:
    match = _HEADER.match(line)
    if not match:
        return None
    return ".".join(part.strip().strip("\"'") for part in match.group(1).split("."))


def _line_index(text: str) -> dict[str, int]:
    """Best-effort map from dotted key path ("market.sigma", "grid.market.sigma") to its line."""
    index: dict[str, int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _header_of(line)
        if header is not None:
            table = header
            index.setdefault(table, number)
            continue
        match = _KEY_LINE.match(line)
        if match:
            key = match.group(1)
            if key[0] in "\"'":
                key = key[1:-1]
            else:
                key = ".".join(part.strip() for part in key.split("."))
            index.setdefault(f"{table}.{key}" if table else key, number)
    return index


def _describe(value: Any) -> str:
    """A value as the user wrote it, in TOML terms."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return f"{json.dumps(value, ensure_ascii=False)} (a string)"
    if isinstance(value, float | int):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        try:
            return _toml_value(value)
        except (TypeError, ValueError):
            return repr(value)
    return f"{value} (a {type(value).__name__})"


def _num(x: Any) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return repr(x)


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    out = {}
    for m in metadata:
        for bound in ("gt", "ge", "lt", "le"):
            if hasattr(m, bound) and type(m).__name__.lower() == bound:
                out[bound] = getattr(m, bound)
    return out


def _range_text(bounds: dict[str, Any]) -> str:
    low = ("(", bounds["gt"]) if "gt" in bounds else ("[", bounds["ge"]) if "ge" in bounds else None
    high = (
        (")", bounds["lt"]) if "lt" in bounds else ("]", bounds["le"]) if "le" in bounds else None
    )
    if low and high:
        return f"in {low[0]}{_num(low[1])}, {_num(high[1])}{high[0]}"
    if low:
        return f"{'>' if low[0] == '(' else '>='} {_num(low[1])}"
    if high:
        return f"{'<' if high[0] == ')' else '<='} {_num(high[1])}"
    return ""


def _strip_annotated(tp: Any) -> tuple[Any, list[Any]]:
    metadata: list[Any] = []
    while typing.get_origin(tp) is Annotated:
        args = typing.get_args(tp)
        tp, metadata = args[0], metadata + list(args[1:])
    return tp, metadata


def _field_parts(
    model: type[_Table], name: str
) -> tuple[Any, dict[str, Any], dict[str, Any], bool]:
    """(base type, bounds of the value, bounds of each list item, optional) of a key."""
    info = model.model_fields[name]
    tp, metadata = _strip_annotated(info.annotation)
    optional = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = True
        tp, more = _strip_annotated(args[0])
        metadata += more
    item_bounds: dict[str, Any] = {}
    if typing.get_origin(tp) is list:
        item, item_meta = _strip_annotated(typing.get_args(tp)[0])
        item_bounds = _constraints(item_meta)
        tp = list[item]
    return tp, _constraints(list(info.metadata) + metadata), item_bounds, optional


def _type_text(tp: Any, optional: bool) -> str:
    if typing.get_origin(tp) is Literal:
        text = "string"
    elif typing.get_origin(tp) is list:
        item = typing.get_args(tp)[0] if typing.get_args(tp) else float
        text = "list of strings" if item is str else "list of numbers"
    elif typing.get_origin(tp) is dict:
        text = "table"
    else:
        text = {bool: "boolean", int: "integer", float: "number", str: "string"}[tp]
    return f"{text} (optional)" if optional else text


def _allowed_text(model: type[_Table], name: str) -> str:
    tp, bounds, item_bounds, _ = _field_parts(model, name)
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in typing.get_args(tp))
    if item_bounds:
        return "each " + _range_text(item_bounds)
    if tp is float:
        return _range_text(bounds) or "finite"
    return _range_text(bounds) or "—"


_TYPE_WORDS = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
}


def _pydantic_message(model: type[_Table], error: dict[str, Any]) -> str:
    kind = error["type"]
    value = error.get("input")
    got = _describe(value)
    loc = error["loc"]
    if kind in _TYPE_WORDS:
        hint = ""
        if isinstance(value, str) and kind in ("int_type", "float_type"):
            hint = "; write numbers without quotes"
        return f"must be {_TYPE_WORDS[kind]}, got {got}{hint}"
    if kind == "finite_number":
        return f"must be a finite number, got {got}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        name = loc[0] if loc and isinstance(loc[0], str) else None
        if name in model.model_fields:
            _, bounds, item_bounds, _ = _field_parts(model, name)
            text = _range_text(item_bounds if len(loc) > 1 else bounds)
            if text:
                return f"must be {text}, got {got}"
        ctx = error.get("ctx", {})
        symbol = {
            "greater_than": ">",
            "greater_than_equal": ">=",
            "less_than": "<",
            "less_than_equal": "<=",
        }[kind]
        return f"must be {symbol} {_num(next(iter(ctx.values())))}, got {got}"
    if kind == "literal_error":
        options = error["ctx"]["expected"].replace("'", '"').replace(" or ", ", ")
        return f"must be one of {options}, got {got}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "too_short":
        return "must not be empty"
    return f"{error['msg']}, got {got}"


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Builder:
    """Validates one parsed file; collects every problem before raising."""

    def __init__(
        self, text: str, path: str | None, raw: dict[str, Any], overrides: dict[str, object]
    ):
        self.text = text
        self.path = path
        self.raw = raw
        self.overrides = overrides
        self.overridden: set[str] = set()
        self.lines = _line_index(text)
        self.problems: list[Problem] = []

    # -- collecting
    def add(self, key: str, message: str) -> None:
        line = None
        bare = re.sub(r"\[\d+\]$", "", key)
        if bare not in self.overridden:
            line = self.lines.get(bare)
        else:
            message += " (set by an override)"
        problem = Problem(key, line, message)
        if problem not in self.problems:
            self.problems.append(problem)

    def fail_if_any(self) -> None:
        if self.problems:
            in_file_order = sorted(
                self.problems, key=lambda p: math.inf if p.line is None else p.line
            )
            raise ScenarioError(self.path, in_file_order)

    # -- the steps
    def build(self) -> Scenario:
        if "simulation" not in self.raw:
            self.add(
                "simulation",
                "missing table [simulation]; a scenario names at least its [simulation] table "
                "(an empty one takes every default)",
            )
        tables = self.read_tables()
        self.apply_overrides(tables)
        # A table that fails validation takes its defaults from here on, so that the grid and the
        # strategy record are still checked (their problems are collected too) without noise.
        validated = {name: self.validate_table(name, body) for name, body in tables.items()}
        grid_spec = self.read_grid(self.raw.get("grid", {}))
        self.check_override_vs_grid(grid_spec)
        simulation_table = typing.cast(SimulationTable, validated["simulation"])
        base = {name: validated[name].model_dump() for name in GRID_TABLES}
        strategy = self.strategy_config(base, where="", since=0)
        market = self.market_params(base["market"], where="")
        axes = self.validate_grid(grid_spec, base)
        self.fail_if_any()
        cells = self.make_cells(axes, base, strategy, market)
        self.fail_if_any()
        simulation = Simulation(
            paths=simulation_table.paths,
            seed=simulation_table.seed,
            years=simulation_table.years,
            n_steps=simulation_table.n_steps,
            chunk_size=simulation_table.chunk_size,
            float64=simulation_table.float64,
            engine=simulation_table.engine,
            description=simulation_table.description,
        )
        simulation, notes = self.replay_simulation(simulation, cells)
        notes += _percentile_notes(cells)
        self.fail_if_any()
        return Scenario(
            path=self.path,
            text=self.text,
            simulation=simulation,
            notes=notes,
            market=market,
            strategy=strategy,
            grid=tuple(axes),
            overrides=dict(self.overrides),
            claims=validated["claims"],
            sensitivity=validated["sensitivity"],
            _cells=tuple(cells),
        )

    def read_tables(self) -> dict[str, dict[str, Any]]:
        tables: dict[str, dict[str, Any]] = {name: {} for name in TABLES}
        for name, body in self.raw.items():
            if name == "grid":
                continue
            if name in RECORD_TABLES:
                self.validate_record(name, body)
                continue
            if name not in TABLES:
                if isinstance(body, dict):
                    self.add(name, f"unknown table [{name}]{_suggest(name, list(_TOP_LEVEL))}")
                else:
                    home = [t for t in TABLES if name in TABLES[t].model_fields]
                    where = f"; it belongs in [{home[0]}]" if home else ""
                    self.add(name, f"key outside any table{where}")
                continue
            if not isinstance(body, dict):
                self.add(name, f"must be a table [{name}], got {_describe(body)}")
                continue
            tables[name] = dict(body)
        return tables

    def apply_overrides(self, tables: dict[str, dict[str, Any]]) -> None:
        for key, value in self.overrides.items():
            table, dot, name = key.partition(".")
            if table == "grid":
                self.problems.append(
                    Problem(key, None, "the grid cannot be overridden; edit the file")
                )
            elif not dot or "." in name or not name:
                self.problems.append(
                    Problem(key, None, "an override key is TABLE.KEY, e.g. market.sigma")
                )
            elif table not in TABLES:
                self.problems.append(
                    Problem(key, None, f"unknown table {table!r}{_suggest(table, list(TABLES))}")
                )
            elif name not in TABLES[table].model_fields:
                self.problems.append(
                    Problem(key, None, self.unknown_key_message(table, name) + " (override)")
                )
            else:
                tables[table][name] = value
                self.overridden.add(key)

    def unknown_key_message(self, table: str, name: str) -> str:
        home = [t for t in TABLES if t != table and name in TABLES[t].model_fields]
        if home:
            return f"unknown key in [{table}]; {name!r} belongs in [{home[0]}]"
        return f"unknown key in [{table}]{_suggest(name, list(TABLES[table].model_fields))}"

    def validate_record(self, table: str, body: Any) -> None:
        """A record table (`[fit]`): checked for its form, otherwise not read."""
        if not isinstance(body, dict):
            self.add(table, f"must be a table [{table}], got {_describe(body)}")
            return
        for name, message in RECORD_TABLES[table].model_validate(body).checks():
            self.add(f"{table}.{name}", message)

    def validate_table(self, table: str, body: dict[str, Any]) -> _Table:
        model = TABLES[table]
        try:
            validated = model.model_validate(body)
        except ValidationError as exc:
            for error in exc.errors():
                self.add_pydantic(table, model, error)
            return model()
        for name, message in validated.checks():
            self.add(f"{table}.{name}", message)
        return validated

    def add_pydantic(
        self, table: str, model: type[_Table], error: dict[str, Any], prefix: str = ""
    ) -> None:
        loc = error["loc"]
        key = f"{table}.{loc[0]}" if loc else table
        key += "".join(f"[{i}]" for i in loc[1:] if isinstance(i, int))
        if error["type"] == "extra_forbidden":
            self.add(key, prefix + self.unknown_key_message(table, str(loc[0])))
        else:
            self.add(key, prefix + _pydantic_message(model, error))

    def strategy_config(
        self, base: dict[str, dict[str, Any]], where: str, since: int
    ) -> StrategyConfig:
        """Build the strategy record; report each problem its own check finds (the tables'
        checks ran first: a field they reported is not reported twice)."""
        values: dict[str, Any] = {}
        for table in STRATEGY_TABLES:
            values.update(base[table])
        values = {
            name: tuple(v) if isinstance(v, list) else v
            for name, v in values.items()
            if name in _STRATEGY_DEFAULTS
        }
        reported = {re.sub(r"\[\d+\]$", "", p.key) for p in self.problems[since:]}
        try:
            config = StrategyConfig(**values)
        except ConfigProblems as exc:
            for text in exc.problems:
                name, _, message = text.partition(": ")
                key = f"{STRATEGY_FIELD_TABLE.get(name, 'strategy')}.{name}"
                if key not in reported:
                    self.add(key, where + (message or text))
        except (TypeError, ValueError) as exc:
            if not reported:  # a value a table check already named may break the record's
                self.add("strategy", where + str(exc))
        else:
            if not self.problems[since:]:
                return config
        return StrategyConfig()  # never reaches a caller: the builder raises first

    def history_path(self, written: str, where: str) -> str | None:
        """The history file `written` in the scenario (relative to the scenario file's folder),
        resolved and checked; None (with the problem added) when it cannot be read."""
        base = Path(self.path).parent if self.path else Path.cwd()
        resolved = (base / Path(written).expanduser()).resolve()
        try:
            load_history(resolved)
        except HistoryError as exc:
            shown = f"{written!r}" + (f" ({resolved})" if str(resolved) != written else "")
            self.add(
                "market.history",
                where + f"cannot use the history {shown}: {exc.field}: {exc.message}",
            )
            return None
        return str(resolved)

    def market_params(self, fields: dict[str, Any], where: str) -> Any:
        cls = _market_params_class()
        known = {f.name for f in dataclasses.fields(cls)}
        if fields.get("history"):
            resolved = self.history_path(fields["history"], where)
            if resolved is None:
                return None
            fields = {**fields, "history": resolved}
        try:
            params = cls(**{k: v for k, v in fields.items() if k in known})
        except (TypeError, ValueError) as exc:
            # "MarketParams.<key> must ...": the key the message names (the cross-key checks)
            named = re.match(r"MarketParams\.(\w+) ", str(exc))
            key = f"market.{named.group(1)}" if named and named.group(1) in known else "market"
            self.add(key, where + str(exc))
            return None
        problems = getattr(params, "problems", None)
        if callable(problems):
            for text in problems():
                name, _, message = text.partition(": ")
                self.add(f"market.{name}", where + (message or text))
        return params

    def replay_simulation(
        self, simulation: Simulation, cells: list[Cell]
    ) -> tuple[Simulation, tuple[str, ...]]:
        """A replay is one path over its whole history: the simulation's paths and horizon
        set so, with a note of each value of the file this replaces."""
        no_iv = sorted(
            {
                (c.market.history, float(c.market.iv0))
                for c in cells
                if c.market.model in ("replay", "bootstrap")
                and load_history(c.market.history).iv is None
            }
        )
        iv_notes = tuple(
            f"{Path(path).name} has no iv column: IV is market.iv0 = {iv0:g} on every day "
            "(the options are priced at that one volatility)"
            for path, iv0 in no_iv
        )
        histories = {c.market.history for c in cells if c.market.model == "replay"}
        if not histories:
            return simulation, iv_notes
        if len(histories) > 1 or any(c.market.model != "replay" for c in cells):
            self.add(
                "grid" if self.raw.get("grid") else "market.model",
                "a replay's horizon is its history's length, so every grid cell must replay "
                'the same history (sweep other keys, or use model = "bootstrap", whose '
                "horizon is simulation.years)",
            )
            return simulation, ()
        history = load_history(histories.pop())
        n_steps = history.n_days - 1
        years = n_steps / TRADING_DAYS_PER_YEAR
        notes = [
            f'market.model = "replay": one path, the history\'s {n_steps} trading days '
            f"({history.dates[0]} to {history.dates[-1]}, {years:.3g} years of 252 days)"
        ]
        if simulation.n_steps != n_steps:
            notes.append(f"simulation.years = {simulation.years:g} is not used")
        if simulation.paths != 1:
            notes.append(f"simulation.paths = {simulation.paths} is not used")
        replaced = dataclasses.replace(simulation, paths=1, years=years, n_steps=n_steps)
        return replaced, ("; ".join(notes) + ".", *iv_notes)

    # -- the grid
    def read_grid(self, raw: Any) -> list[list[tuple[str, str, Any]]]:
        """Axes as written: each a list of (parameter, error key, values); zipped ones share one."""
        if not isinstance(raw, dict):
            self.add("grid", f'must be a table of "table.key" = [values], got {_describe(raw)}')
            return []
        axes: list[list[tuple[str, str, Any]]] = []
        for key, value in raw.items():
            if key == "zip":
                groups = value if isinstance(value, list) else [value]
                for group in groups:
                    if not isinstance(group, dict):
                        self.add("grid.zip", 'must be a table of "table.key" = [values]')
                        continue
                    members = [(p, f"grid.zip.{p}", v) for p, v in _flatten(group)]
                    if not members:
                        self.add("grid.zip", "is empty; list the parameters that move together")
                        continue
                    lengths = {p: len(v) for p, _, v in members if isinstance(v, list)}
                    if len(set(lengths.values())) > 1:
                        sizes = ", ".join(f"{p} has {n}" for p, n in lengths.items())
                        self.add(
                            "grid.zip",
                            f"zipped lists must have equal lengths ({sizes}): they move together",
                        )
                    axes.append(members)
            elif isinstance(value, dict):
                axes += [[(f"{key}.{p}", f"grid.{key}.{p}", v)] for p, v in _flatten(value)]
            else:
                axes.append([(key, f"grid.{key}", value)])
        seen: set[str] = set()
        checked: list[list[tuple[str, str, Any]]] = []
        for members in axes:
            good = []
            for param, where, values in members:
                if self.check_grid_key(param, where, values, seen):
                    good.append((param, where, values))
                seen.add(param)
            checked.append(good if len(good) == len(members) else [])
        return [m for m in checked if m]

    def check_grid_key(self, param: str, where: str, values: Any, seen: set[str]) -> bool:
        table, _, name = param.partition(".")
        name = name or table
        ok = True
        if table == "simulation":
            self.add(
                where, "[simulation] keys cannot be swept; the grid varies market and strategy keys"
            )
            ok = False
        elif table not in GRID_TABLES or name not in TABLES[table].model_fields:
            options = [f"{t}.{k}" for t in GRID_TABLES for k in TABLES[t].model_fields]
            guess = _suggest(param, options)
            if not guess:
                home = [f"{t}.{name}" for t in GRID_TABLES if name in TABLES[t].model_fields]
                guess = f"; did you mean {home[0]!r}?" if home else ""
            self.add(where, f"names no parameter{guess}")
            ok = False
        elif typing.get_origin(_field_parts(TABLES[table], name)[0]) is list:
            self.add(where, "list-valued keys cannot be swept; write one scenario file per ladder")
            ok = False
        if param in seen:
            self.add(where, "is swept twice in the grid")
            ok = False
        if not isinstance(values, list):
            self.add(where, f"must be a list of values, e.g. [1.5, 3.0], got {_describe(values)}")
            return False
        if not values:
            self.add(where, "must not be an empty list; give at least one value")
            return False
        return ok

    def check_override_vs_grid(self, axes: list[list[tuple[str, str, Any]]]) -> None:
        for members in axes:
            for param, _, _ in members:
                if param in self.overridden:
                    self.problems.append(
                        Problem(param, None, "is swept by the grid; an override cannot also set it")
                    )

    def validate_grid(
        self, axes: list[list[tuple[str, str, Any]]], base: dict[str, dict[str, Any]]
    ) -> list[GridAxis]:
        out = []
        for members in axes:
            columns: dict[str, list] = {}
            for param, where, values in members:
                columns[param] = self.validate_values(param, where, values, base)
            first, *rest = columns
            out.append(GridAxis(first, columns[first], {p: columns[p] for p in rest}))
        return out

    def validate_values(
        self, param: str, where: str, values: list, base: dict[str, dict[str, Any]]
    ) -> list:
        table, _, name = param.partition(".")
        model = TABLES[table]
        out = []
        for i, value in enumerate(values):
            if isinstance(value, list | dict):
                self.add(f"{where}[{i}]", f"must be a single value, got {_describe(value)}")
                continue
            try:
                validated = model.model_validate({**base[table], name: value})
            except ValidationError as exc:
                for error in exc.errors():
                    if error["loc"][:1] == (name,):
                        self.add(f"{where}[{i}]", _pydantic_message(model, error))
                continue
            out.append(getattr(validated, name))
        for i, value in enumerate(out):
            if value in out[:i]:
                self.add(where, f"value {_describe(value)} appears twice; grid values must differ")
        return out

    def make_cells(
        self,
        axes: list[GridAxis],
        base: dict[str, dict[str, Any]],
        strategy: StrategyConfig,
        market: Any,
    ) -> list[Cell]:
        if not axes:
            return [Cell((), {}, market, strategy)]
        # A cell's market depends only on its market.* values and its strategy only on the rest,
        # so each distinct combination is built (and checked) once.
        built: dict[tuple, tuple[Any, bool]] = {}
        cells = []
        failed = 0
        for index in itertools.product(*(range(len(a.values)) for a in axes)):
            coords: dict[str, object] = {}
            for axis, i in zip(axes, index, strict=True):
                coords[axis.name] = axis.values[i]
                coords.update({p: column[i] for p, column in axis.zipped.items()})
            parts = []
            for group in ("market", "strategy"):
                mine = {
                    k: v
                    for k, v in coords.items()
                    if (k.partition(".")[0] == "market") == (group == "market")
                }
                key = (group, tuple(mine.items()))
                if key not in built:
                    before = len(self.problems)
                    value = self.build_group(group, mine, base)
                    ok = len(self.problems) == before
                    if not ok:
                        failed += 1
                        if failed > _MAX_CELL_PROBLEMS:
                            del self.problems[before:]
                    built[key] = (value, ok)
                parts.append(built[key])
            (cell_market, market_ok), (cell_strategy, strategy_ok) = parts
            if market_ok and strategy_ok:
                cells.append(Cell(index, coords, cell_market, cell_strategy))
        if failed > _MAX_CELL_PROBLEMS:
            more = failed - _MAX_CELL_PROBLEMS
            self.problems.append(Problem("grid", None, f"… and {more} more grid cells fail"))
        return cells

    def build_group(
        self, group: str, coords: dict[str, object], base: dict[str, dict[str, Any]]
    ) -> Any:
        """The market record or the strategy record of the cells that share these grid values."""
        if group == "market" and not coords:
            return self.market_params(base["market"], where="")
        tables = {t: dict(v) for t, v in base.items()}
        for param, value in coords.items():
            table, _, name = param.partition(".")
            tables[table][name] = value
        since = len(self.problems)
        where = "in grid cell " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in coords.items())
        where += ": "
        for table in {p.partition(".")[0] for p in coords}:
            model = TABLES[table]
            try:
                validated = model.model_validate(tables[table])
            except ValidationError as exc:  # per-value checks passed, so this is unexpected
                for error in exc.errors():
                    self.add_pydantic(table, model, error, prefix=where)
                continue
            for name, message in validated.checks():
                self.add(f"{table}.{name}", where + message)
        if group == "market":
            return self.market_params(tables["market"], where=where)
        return self.strategy_config(tables, where=where, since=since)


def _percentile_notes(cells: list[Cell]) -> tuple[str, ...]:
    """A note when a history's IV sits at the edge of the IV percentile's law: the signal and
    the IV exit read the percentile of `iv_long_run`, `kappa`, `eta`, which a history does not
    set (the defaults are the $3 stock's 217 %): its median IV below the 1st or above the 99th
    percentile means those keys describe another market."""
    seen = set()
    for cell in cells:
        m = cell.market
        key = (m.history, m.iv_long_run, m.kappa, m.eta)
        if m.model not in ("replay", "bootstrap") or key in seen:
            continue
        seen.add(key)
        history = load_history(m.history)
        if history.iv is None:
            continue
        median = float(np.median(history.iv))
        sd = m.eta / math.sqrt(2.0 * m.kappa)
        percentile = 50.0 * math.erfc(-(math.log(median) - math.log(m.iv_long_run)) / sd / 2**0.5)
        if 1.0 <= percentile <= 99.0:
            continue
        return (
            f"the history's median IV {median:.4g} is at the {percentile:.1f}th percentile of the "
            f"IV percentile's law (market.iv_long_run = {m.iv_long_run:g}, kappa = {m.kappa:g}, "
            f"eta = {m.eta:g}), which the signal and the IV exit read: set them to the history's "
            f"(simkit calibrate market {history.path} fits them).",
        )
    return ()


def _flatten(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """{"market": {"sigma": [..]}} (unquoted dotted keys) -> [("market.sigma", [..])]."""
    out = []
    for key, value in table.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _flatten(value, full + ".")
        else:
            out.append((full, value))
    return out


def _market_params_class() -> type:
    return MarketParams


# ---------------------------------------------------------------------------------------------
# Stress files (scenarios/stress/*.toml): a [stress] table and one table per shock component.
# The shock arithmetic is simkit.stress's; this reads and checks the files.

Day = Annotated[int, Strict(), annotated_types.Ge(1)]


def _day_key() -> Any:
    return _key(None, "trading day", "First day of this shock (>= 1); omitted: `stress.day`.", ge=1)


def _at_least_one(table: _Table, names: tuple[str, ...], what: str) -> list[tuple[str, str]]:
    if all(getattr(table, name) is None for name in names):
        return [("", f"sets no {what}; give at least one of {', '.join(names)}")]
    return []


class StressTable(_Table):
    """What the stress is, and the trading day its shocks start."""

    description: Str | None = _key(None, "—", "What the stress represents (shown in reports).")
    day: Day = Field(
        description="First trading day of every shock that gives no `day` of its own (>= 1: "
        "day 0 builds the book the shock hits; at most the base scenario's horizon).",
        json_schema_extra={"unit": "trading day"},
    )


class SpotShockTable(_Table):
    """A level shift of the spot: multiplied by (1 + change) ** w(t) from `day` on, spread
    geometrically over `days` (1: an overnight gap); the path's own returns continue on top."""

    change: Float = Field(
        description="Total move of the spot (-0.6 = -60 %, 3.0 = +300 %).",
        json_schema_extra={"unit": "fraction"},
        gt=-1,
    )
    days: Int = _key(1, "trading days", "Days the move is spread over (1: a gap).", ge=1)
    day: Day | None = _day_key()


class RealizedVolShockTable(_Table):
    """Realized volatility scaled from `day` on: each daily log return's deviation from the
    diffusion's mean is multiplied by `scale`, the drift re-compensated (simkit.stress)."""

    scale: Float = Field(
        description="Factor on the spot's realized volatility (2.0 doubles it).",
        json_schema_extra={"unit": "×"},
        gt=0,
    )
    day: Day | None = _day_key()


class IVShockTable(_Table):
    """Implied volatility multiplied by `multiply` ** w(t), or brought to `level` on the ramp's
    last day (and scaled by the same factor after it); give exactly one of the two."""

    multiply: Float | None = _key(None, "×", "Factor on IV at the end of the ramp.", gt=0)
    level: Float | None = _key(
        None, "annual vol", "IV reached on the ramp's last day (1.0 = 100 %).", gt=0
    )
    days: Int = _key(1, "trading days", "Days the IV move is spread over.", ge=1)
    day: Day | None = _day_key()

    def checks(self) -> list[tuple[str, str]]:
        if (self.multiply is None) == (self.level is None):
            return [("", "give exactly one of multiply and level")]
        return []


class LiquidityShockTable(_Table):
    """Option-market liquidity: each value given replaces the market input from `day` on."""

    bid_ask_spread: Float | None = _key(None, "USD/share", "Option bid-ask spread.", ge=0)
    open_interest: Float | None = _key(None, "contracts", "Open interest per strike.", ge=0)
    option_volume: Float | None = _key(
        None, "contracts/day", "Daily option volume per strike.", ge=0
    )
    liquidity_score: Float | None = _key(None, "score", "The seed's liquidity score.")
    day: Day | None = _day_key()

    def checks(self) -> list[tuple[str, str]]:
        return _at_least_one(
            self, ("bid_ask_spread", "open_interest", "option_volume", "liquidity_score"), "input"
        )


class SignalsShockTable(_Table):
    """Signal inputs: each value given replaces the market input from `day` on."""

    short_interest: Float | None = _key(None, "percent of float", "Short interest.", ge=0, le=100)
    vix: Float | None = _key(None, "index points", "VIX.", ge=0)
    btc_correlation: Float | None = _key(None, "—", "Correlation with bitcoin.", ge=-1, le=1)
    borrow_cost: Float | None = _key(None, "percent/year", "Stock borrow cost.", ge=0)
    volume_ratio: Float | None = _key(None, "—", "Volume over its average.", ge=0)
    day: Day | None = _day_key()

    def checks(self) -> list[tuple[str, str]]:
        return _at_least_one(
            self,
            ("short_interest", "vix", "btc_correlation", "borrow_cost", "volume_ratio"),
            "input",
        )


class ThesisShockTable(_Table):
    """A thesis-break event (merger cancelled) on `day`: the thesis exit closes every short
    put and stops new entries."""

    event: Bool = _key(True, "—", "A thesis-break event arrives on `day`.")
    day: Day | None = _day_key()


STRESS_TABLES: dict[str, type[_Table]] = {
    "stress": StressTable,
    "spot": SpotShockTable,
    "realized_vol": RealizedVolShockTable,
    "iv": IVShockTable,
    "liquidity": LiquidityShockTable,
    "signals": SignalsShockTable,
    "thesis": ThesisShockTable,
}
SHOCK_TABLES = tuple(name for name in STRESS_TABLES if name != "stress")


def load_stress(path: str | Path, n_steps: int | None = None) -> Any:
    """Read and check a stress file; a `simkit.stress.StressSpec` named after the file's stem.

    With `n_steps` (the base scenario's horizon), every shock's day must fall within it.
    Raises ScenarioError listing every problem (file, key, line).
    """
    shown = str(path)
    p = Path(path)
    if p.is_dir():
        raise ScenarioError(shown, [Problem("", None, "is a directory, not a stress file")])
    if not p.exists():
        raise ScenarioError(shown, [Problem("", None, "no such file")])
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(
            shown, [Problem("", None, f"cannot read as UTF-8 text: {exc}")]
        ) from None
    return parse_stress(text, path=shown, name=p.stem, n_steps=n_steps)


def parse_stress(
    text: str, path: str | None = None, name: str = "stress", n_steps: int | None = None
) -> Any:
    """Parse and check stress-file text (``path`` only names it in messages)."""
    if not text.strip():
        raise ScenarioError(
            path, [Problem("", None, "the file is empty; a stress file has a [stress] table")]
        )
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(path, [_syntax_problem(exc, text)]) from None
    return _StressBuilder(text, path, raw, {}).build_stress(name, n_steps)


class _StressBuilder(_Builder):
    """Validates one parsed stress file; collects every problem before raising."""

    def unknown_key_message(self, table: str, name: str) -> str:
        home = [
            t
            for t in STRESS_TABLES
            if t != table and name != "day" and name in STRESS_TABLES[t].model_fields
        ]
        if home:
            return f"unknown key in [{table}]; {name!r} belongs in [{home[0]}]"
        options = list(STRESS_TABLES[table].model_fields)
        return f"unknown key in [{table}]{_suggest(name, options)}"

    def build_stress(self, name: str, n_steps: int | None) -> Any:
        if name == shocks.BASELINE:
            self.add("", f"a stress cannot be named {name!r} (the unstressed baseline); rename it")
        if "stress" not in self.raw:
            self.add("stress", "missing table [stress]; it holds at least the shock's `day`")
        validated: dict[str, _Table] = {}
        for table, body in self.raw.items():
            if table not in STRESS_TABLES:
                if isinstance(body, dict):
                    guess = _suggest(table, list(STRESS_TABLES))
                    self.add(table, f"unknown table [{table}]{guess}")
                else:
                    self.add(table, "key outside any table; stress keys live in [stress] etc.")
                continue
            if not isinstance(body, dict):
                self.add(table, f"must be a table [{table}], got {_describe(body)}")
                continue
            model = STRESS_TABLES[table]
            try:
                validated[table] = model.model_validate(body)
            except ValidationError as exc:
                for error in exc.errors():
                    if error["type"] == "missing":
                        key = f"{table}.{error['loc'][0]}"
                        info = model.model_fields[str(error["loc"][0])]
                        self.add(key, f"is required: {info.description}")
                    else:
                        self.add_pydantic(table, model, error)
                continue
            for key, message in validated[table].checks():
                self.add(f"{table}.{key}" if key else table, message)
        if not any(t in self.raw for t in SHOCK_TABLES) and "stress" in self.raw:
            tables = ", ".join(f"[{t}]" for t in SHOCK_TABLES)
            self.add("stress", f"the file names no shock; add at least one of {tables}")
        self.fail_if_any()

        head = typing.cast(StressTable, validated["stress"])
        days: dict[str, int] = {}
        for table in SHOCK_TABLES:
            if table in validated:
                own = validated[table].day
                days[table] = head.day if own is None else own
                where = f"{table}.day" if own is not None else "stress.day"
                if n_steps is not None and days[table] > n_steps:
                    self.add(
                        where,
                        f"day {days[table]} is past the base scenario's horizon "
                        f"({n_steps} trading days)",
                    )
        self.fail_if_any()
        shock = shocks.Shock(**{t: self._component(t, validated[t], days[t]) for t in days})
        return shocks.StressSpec(name, head.description or "", shock, self.path)

    @staticmethod
    def _component(table: str, body: _Table, day: int) -> Any:
        values = body.model_dump()
        values.pop("day")
        if table == "spot":
            return shocks.SpotShock(day=day, change=values["change"], days=values["days"])
        if table == "realized_vol":
            return shocks.RealizedVolShock(day=day, scale=values["scale"])
        if table == "iv":
            return shocks.IVShock(day=day, **values)
        if table in ("liquidity", "signals"):
            given = tuple((k, float(v)) for k, v in values.items() if v is not None)
            return shocks.SetShock(day=day, values=given)
        if table == "thesis":
            return shocks.ThesisShock(day=day) if values["event"] else None
        raise ValueError(f"unknown shock table {table!r}")


# ---------------------------------------------------------------------------------------------
# Writing TOML back (the validated scenario, recorded with the results)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(f"cannot write {value!r} as TOML")


def _scenario_to_toml(scenario: Scenario) -> str:
    sim = dataclasses.asdict(scenario.simulation)
    sim.pop("n_steps")
    market = {f.name: getattr(scenario.market, f.name) for f in dataclasses.fields(scenario.market)}
    sections = {"simulation": sim, "market": market}
    for table in STRATEGY_TABLES:
        sections[table] = {
            name: getattr(scenario.strategy, name) for name in TABLES[table].model_fields
        }
    sections["claims"] = scenario.claims.model_dump()
    if scenario.sensitivity != SensitivityTable():  # written only when the file has one
        sections["sensitivity"] = scenario.sensitivity.model_dump()
    out = []
    for table, values in sections.items():
        out.append(f"[{table}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
        out.append("")
    if scenario.grid:
        # zipped axes are contiguous (they all live under the one "zip" key): write them inline
        out.append("[grid]")
        zip_written = False
        for axis in scenario.grid:
            if not axis.zipped:
                out.append(f"{json.dumps(axis.name)} = {_toml_value(axis.values)}")
            elif not zip_written:
                groups = [{a.name: a.values, **a.zipped} for a in scenario.grid if a.zipped]
                out.append(f"zip = {_toml_value(groups)}")
                zip_written = True
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# docs/SCENARIO.md


_REFERENCE_HEAD = """\
# Scenario files

<!-- Generated by simkit.scenario.scenario_reference_markdown(); do not edit by hand.
     Regenerate: .venv/bin/python -m simkit.scenario > docs/SCENARIO.md -->

A scenario is a TOML file: a required `[simulation]` table, a `[market]` table, seven tables
that hold the strategy's parameters (`[capital]`, `[strategy]`, `[execution]`, `[exits]`,
`[assignment]`, `[hedges]`, `[limits]`), an optional `[claims]` table (the family of markets
`simkit claims` judges the seed's claims across), an optional `[sensitivity]` table (the input
ranges `simkit sensitivity` samples), an optional `[grid]`, and an optional `[fit]` record
(what `simkit calibrate market` writes beside its `[market]` table; accepted, not read).
Every key is optional and takes the default below when omitted; an empty file, or one without
`[simulation]`, is an error (write an empty `[simulation]` table to take every default). `scenarios/baseline.toml` writes
out every key with its default.

Validation is strict, and every problem of a file is reported at once, each with the file,
the line where it is known, the key and what is wrong:

```
scenarios/x.toml: simulation.pahts: unknown key in [simulation]; did you mean 'paths'? (line 3)
scenarios/x.toml: market.sigma: must be > 0, got -1.0 (line 7)
scenarios/x.toml: strategy.weights: must sum to 1 (weights are never normalised), sum is 0.9 (line 12)
scenarios/x.toml: line 20: TOML syntax error: Invalid value (column 9)
```

(A syntax error stops the reading, so it comes alone; the last line shows its form.)

- Unknown tables and keys are errors (a key written in the wrong table is pointed to its own).
- Numbers must be finite (`nan`, `inf` are rejected); an integer is accepted where a number is
  expected, but never a boolean or a quoted string; integers must be written as integers.
- Weights must sum to 1 within 1e-9 and match their strikes one for one; they are never
  normalised.
- The tables of the strategy group the fields of `simkit.schema.strategy.StrategyConfig` (same
  names, same defaults) and are checked by its own `problems()` as well; `[market]` holds the
  fields of `simkit.paths.market.MarketParams`.

## Overrides

`simkit run FILE --paths N --seed N --chunk-size N --engine E --float64` and
`--set TABLE.KEY=VALUE` (the value read as TOML; a bare word is a string:
`--set market.model=merton`) change the file's values before validation, so `--paths 0` fails
exactly like `paths = 0` and names `simulation.paths`. In Python:
`load_scenario(path, overrides={"simulation.paths": 100, "market.sigma": 2.0})`. A key that the
grid sweeps cannot also be overridden, and the grid itself cannot be. `Scenario.to_toml()`
writes the complete validated scenario back (every key, overrides applied); result files keep
it beside the text as written.

## Grid

```toml
[grid]
"market.sigma" = [1.5, 1.9, 3.0]        # quoted dotted keys: TABLE.KEY = [values]
"exits.time_exit" = [true, false]

[grid.zip]                               # parameters that move together: equal lengths
"market.iv0" = [2.0, 4.25]
"market.iv_long_run" = [1.5, 2.17]
```

- Each key of `[grid]` is one result dimension, named after the full dotted key
  (`market.sigma`), whose coordinate values are the list. The grid is the product of the axes,
  in file order; cells are numbered in C order (the last axis fastest).
- A `[grid.zip]` table is one dimension for several parameters that move together: it is named
  after its first key, and the other keys become non-dimension coordinates along it. Several
  groups are written as `[[grid.zip]]` tables; each is one dimension, placed where the `zip` key
  first appears among the grid's keys. The example above has shape (3, 2, 2) and dimensions
  (`market.sigma`, `exits.time_exit`, `market.iv0`), with `market.iv_long_run` a coordinate on
  `market.iv0`.
- Unquoted dotted keys (`market.sigma = [...]` under `[grid]`) mean the same.
- Any key of `[market]` and of the strategy tables can be swept, except the list-valued ones
  (ladders and weights) and those of `[simulation]`. A key that names no parameter, an empty
  list, a repeated value, or a value that fails the parameter's own check is an error naming the
  key and the value (`grid.market.sigma[1]: must be > 0, got -1.0`); every cell is also checked
  as a whole (for example `delta_min < delta_max`).
- A value written in a table and also swept: the grid's values win; the table's value is still
  checked.
- Random numbers depend only on (seed, cell, path index).

## GARCH markets

`model = "garch"` is GJR-GARCH(1,1) with normal innovations, one step a trading day: the day's
log return is `(mu dt - h/2) + eps`, `eps = sqrt(h) z`, and the next day's variance is
`h' = garch_omega + (garch_alpha + garch_gamma [eps < 0]) eps² + garch_beta h`.

- Units: daily, of log returns as **fractions**, not percent. `garch_omega` is a daily variance
  (the default 4.2976e-4 = 0.03 × 1.9² / 252); `garch_alpha`, `garch_gamma` and `garch_beta`
  are pure numbers. The `arch` package fitted on percent returns (returns × 100, its usual
  scale) reports omega × 10⁴: divide it by 10⁴ (`simkit calibrate market --model garch`
  converts). `v0` is annual, as for heston: the first day's `h` is `v0 / 252`.
- Checks: `garch_omega > 0`, `garch_alpha >= 0`, `garch_alpha + garch_gamma >= 0`,
  `garch_beta >= 0`, and the persistence `garch_alpha + garch_gamma / 2 + garch_beta < 1` (a
  stationary variance; its long-run mean is `garch_omega / (1 - persistence)` a day).
- Defaults: the baseline's long-run vol of 190 % (`sqrt(252 × omega / (1 - persistence))`),
  persistence 0.97 (a variance shock's half-life about 23 trading days), leverage
  (`garch_gamma = 0.08`: a down day raises the next day's variance more than an up day).
- `E[S_t] = s0 exp(mu t)` exactly (h is known before the day's shock). IV is linked by default:
  `IV = sqrt(252 h') e^z`, h' the next day's variance; its percentile is read in a table of
  the stationary law tabulated once per parameter set from a seeded long simulation (no closed
  form exists). `sigma`, `kappa_v`, `theta_v`, `xi`, `rho` are not read.

## History files (`model = "replay"` and `model = "bootstrap"`)

```toml
[market]
model = "replay"                          # or "bootstrap"
history = "data/spx_vix_2014_2018.csv"    # relative to this scenario file
```

`history` names a CSV file, relative to the folder of the scenario file (also when it is set
by `--set market.history=...`), or absolute; `~` is the home folder. The scenario's check
reads it: a missing or malformed file is bad input (exit code 2), one message naming the
scenario file, `market.history`, the CSV, its line and column, and what is wrong:

```
scenarios/x.toml: market.history: cannot use the history 'data/x.csv' (/abs/scenarios/data/x.csv): line 3, close: 'abc' is not a number (line 4)
```

The CSV: UTF-8, comma-separated, one header line, then one line a trading day (each line is
one step, dt = 1/252, whatever the calendar gap between dates); header names in any order and
case; blank lines skipped; at least two days. A column that is present has a value on every
line. Other columns are ignored.

| column | required | unit | allowed | what it becomes |
|---|---|---|---|---|
| `date` | yes | YYYY-MM-DD | strictly increasing | the `date` coordinate of a replay's result (on `day`) |
| `close` | yes | USD | > 0 | the spot; an `adj close` column (or `adj_close`, `adjclose`), when present, is read instead |
| `iv` | no | annual vol (0.1376 = 13.76 %) | > 0 | the implied volatility of every option |
| `vix` | no | index points | >= 0 | the signal's `vix` input (else `market.vix`) |
| `short_interest` | no | percent of float | in [0, 100] | short interest (else its OU process) |
| `btc_correlation` | no | — | in [-1, 1] | the signal's and the thesis' BTC correlation |
| `bid_ask_spread` | no | USD/share | >= 0 | the option spread (fills, signal, liquidity exit) |
| `open_interest` | no | contracts | >= 0 | open interest per strike |
| `option_volume` | no | contracts/day | >= 0 | option volume per strike |
| `liquidity_score` | no | score | >= 0 | the liquidity score |
| `borrow_cost` | no | percent/year | >= 0 | borrow cost (squeeze) |
| `volume_ratio` | no | — | >= 0 | volume over its average (squeeze) |

The adjusted close (dividends and splits folded into the price, as `simkit calibrate market`
reads it) is a total-return series: for options on an index or a stock, whose strikes are on
the traded price, write the unadjusted `close` only (simkit models no dividends; for the S&P
500 the two columns are equal, see `scripts/make_spx_vix.py`).

An input without a column is the `[market]` constant (short interest: its OU process of
`short_interest_*`). `iv` is not derived from `vix`: write both (`scripts/make_spx_vix.py`
writes `iv = vix / 100`). Thesis events (`thesis_break_intensity`) and the early-exercise draws
are the path's random numbers, as on a simulated market; `jump` is never set (jumps are not
identified in data).

- **`replay`**: the history as one path: the spot is `close` from its first line, IV the `iv`
  column (without one, the constant `iv0`). The horizon is the history's length (`n_steps` =
  lines - 1) and the run has one path: `simulation.years` and `simulation.paths` (and
  `--paths`) are not used, and every command prints a note saying so. The result file gets a
  `date` coordinate on its `day` dimension (and a trade log, `--trades`, the
  `trade_open_date` and `trade_close_date` of each trade). One path has no distribution: every interval and
  standard error is NaN and prints as n/a, the horizon VaR and CVaR are n/a, and the Kelly of
  the sleeve is read from the path's non-overlapping 21-day returns (the horizon one needs
  paths). A grid may sweep any key except the history: every cell must replay the same
  history (one horizon), so a grid cannot mix `replay` with another model.
- **`bootstrap`**: paths of the stationary block bootstrap (Politis and Romano 1994): a path
  starts at a uniformly drawn day of the history; each later day starts a new block at a
  uniform day with probability `1 / block_len`, else takes the history's next day (wrapping
  around), so blocks have a geometric length of mean `block_len`. The spot starts at the
  history's first close (`s0` is not used) and moves by the drawn days' log returns; IV and
  every input column are the levels of the day whose return was drawn (aligned; day 0 has
  those of the day before the first block's first return), so they keep the history's
  distribution and jump at a new block. Without an `iv` column IV follows the log-OU process
  of `kappa`, `iv_long_run`, `eta` from `iv0`, its spot shock the day's standardized return.
  The horizon is `simulation.years`; paths and grids as for any model. `block_len` = 20
  trading days (about a month, the life of a tranche) by default: the automatic choice of
  Politis and White (2004) (`arch.bootstrap.optimal_block_length`) on the S&P 500 2014-2018
  gives 0.7 days for the daily returns (nearly uncorrelated) but 38.5 for their squares
  (volatility clustering), and longer blocks keep more of the clustering and of IV's
  persistence, with fewer artificial IV jumps at block starts.

What a history does not set, its scenario still does: `rate` (option prices and interest on
cash), and the IV percentile's law (`iv_long_run`, `kappa`, `eta`: the percentile of the day's
IV in the stationary law of the log-OU process, as on a simulated market; set them to the
history's own, which `simkit calibrate market FILE.csv` fits when the file has `iv`, or the
signal and the IV exit read a percentile of another market; a note says so when the history's
median IV lies below the 1st or above the 99th percentile of that law). `s0`, `mu`, `sigma`, the jump,
variance and linked-IV keys, and `iv0` (with an `iv` column) are not used.

Commands: `run`, `check`, grids, `stress`, `explain`, `claims`, `sensitivity` and `calibrate
kelly|target` take a history market like any other. A history market is generated whole for
each block of paths (not day by day inside the engine's loop: a replay is one path, a
bootstrap block holds `chunk_size x (n_steps + 1)` days of its 14 inputs). `stress` shocks it
like any market (a `[realized_vol]` shock scales the daily log returns around the history's own
mean: `mu` and `sigma` are read from the history). `claims` reads the real-world assignment
probabilities from a GBM with the history's drift and volatility, and does not judge the
claims across its family of markets (the family moves `sigma`, `mu`, `jump_intensity`, which
do not move a history): it says so. The workers of a dask cluster read the file at its resolved
path; result files record each history's SHA-256 (`history_sha256`), and an edited history is
a new run for `--out`'s resume.
"""


def scenario_reference_markdown() -> str:
    """The text of docs/SCENARIO.md: the rules above and one row per key of every table."""
    out = [_REFERENCE_HEAD]
    for table, model in TABLES.items():
        out.append(f"## [{table}]\n")
        out.append(f"{(model.__doc__ or '').strip()}\n")
        if table == "simulation":
            out.append("The number of daily steps is `n_steps = round(252 * years)` (half up).\n")
        out.append("| key | type | default | unit | allowed | meaning |")
        out.append("|---|---|---|---|---|---|")
        for name, info in model.model_fields.items():
            tp, _, _, optional = _field_parts(model, name)
            default = "unset" if info.default is None else f"`{_toml_value(info.default)}`"
            unit = (info.json_schema_extra or {}).get("unit", "—")  # type: ignore[union-attr]
            allowed = _allowed_text(model, name)
            meaning = (info.description or "").replace("|", "\\|")
            type_text = _type_text(tp, optional).replace("|", "\\|")
            out.append(f"| `{name}` | {type_text} | {default} | {unit} | {allowed} | {meaning} |")
        out.append("")
    for table, model in RECORD_TABLES.items():
        out.append(f"## [{table}]\n")
        out.append(f"{' '.join((model.__doc__ or '').split())}\n")
    out.append(_STRESS_HEAD)
    for table, model in STRESS_TABLES.items():
        out.append(f"### [{table}]\n")
        out.append(f"{' '.join((model.__doc__ or '').split())}\n")
        out.append("| key | type | default | unit | allowed | meaning |")
        out.append("|---|---|---|---|---|---|")
        for name, info in model.model_fields.items():
            tp, _, _, optional = _field_parts(model, name)
            if info.is_required():
                default = "required"
            else:
                default = "unset" if info.default is None else f"`{_toml_value(info.default)}`"
            unit = (info.json_schema_extra or {}).get("unit", "—")  # type: ignore[union-attr]
            allowed = _allowed_text(model, name)
            meaning = (info.description or "").replace("|", "\\|")
            type_text = _type_text(tp, optional).replace("|", "\\|")
            out.append(f"| `{name}` | {type_text} | {default} | {unit} | {allowed} | {meaning} |")
        out.append("")
    return "\n".join(out)


_STRESS_HEAD = """\
## Stress files

`simkit stress [STRESS.toml ...] [--scenario BASE.toml]` applies each stress file (default:
every file of `scenarios/stress/`) to the paths of a base scenario (default:
`scenarios/baseline.toml`). A stress file is named after its stem (`overnight_crash`; `none`
is reserved for the unstressed baseline) and holds a `[stress]` table and at least one shock
table; each shock starts on `stress.day` unless it gives its own `day`, and every day must fall
within the base scenario's horizon. Ramps: `w(t) = clip((t - day + 1) / days, 0, 1)`. The
exact arithmetic of each shock is in the docstring of `simkit/stress.py`. Validation is the
scenario files': unknown tables and keys, wrong types, out-of-range values and missing required
keys are errors naming the file, the key and the line.

```toml
# scenarios/stress/overnight_crash.toml
[stress]
description = "The stock gaps down 60 % overnight; IV jumps with it."
day = 21

[spot]
change = -0.6    # spot x 0.4 from day 21 on
days = 1         # all at once

[iv]
multiply = 1.58  # the model's own IV reaction to a -60 % jump (iv_jump_beta = -0.5)
```
"""


if __name__ == "__main__":
    print(scenario_reference_markdown(), end="")
