"""The trade log: every position of the first paths of each grid cell, one row per trade.

`simkit run --trades N` (`simkit.simulate(..., trades=N)`) adds it to the result file. The
vectorized JAX engine keeps no per-trade record (it sums each closed trade into per-path
tallies), so the log comes from the scalar reference engine (`simkit.strategy.reference`),
run with `record_trades` on the market rows of paths `0 .. N - 1` of each cell: the same
market the JAX engine saw (`simkit.paths.market.simulate_market` of the cell's key, bit for
bit the engine's in-loop market), in the run's precision. Recording changes no number of the
reference engine. The two engines agree path by path (`tests/strategy/test_agreement.py`);
`check` makes every run show it for the logged paths: per path, the log's short-put trades
must match the run engine's `n_trades`, `n_wins`, trade ends and Kelly sums, and the P&L of
every trade plus the sleeve's financing its P&L; a disagreement is logged as a warning and
kept in the dataset attribute `trade_log_check`. A run in float32 compares the JAX engine's
float32 arithmetic with the reference engine's float64 on the same float32 market, so
amounts agree to float32 precision only, and on a rare path an exit decided on a price near
its threshold (a put quoted near the $0.01 floor, say) can fall a day apart or a contract
count round the other way: the check names such paths (1 path in 200 of the baseline);
`--float64` gives a log that matches the engine to 1e-6.

Layout (`VARIABLES`): one `trade` dimension for the whole run, the trades of cell after cell,
path after path, in the order they opened; `trade_cell` (the cell's number) and one
coordinate `trade_<key>` per grid key (its value in the trade's cell) say where each trade
belongs, so one call reads the table:

    df = ds[simkit.trade_log.names(ds)].to_dataframe()

(`names(ds)` lists the log's variables; `frame(ds)` is that call. Without simkit:
`ds[[v for v in ds.data_vars if ds[v].dims == ("trade",)]].to_dataframe()`.) One cell's
trades: `df[df["trade_market.sigma"] == 1.5]`, or in xarray
`ds.isel(trade=(ds.trade_cell == k).values)`; `ds[names(ds)].groupby("trade_cell")`.

Rows: a short put from its sale to its buy-back (one of the exits, a margin call or ruin),
expiry or assignment; a hedge call from its purchase to its expiry (or ruin); a covered call
from its sale to its expiry, or the shares being called away; shares from the assignment
that delivered them to their call-away or ruin, lot by lot (the book holds one share count,
so which lot a call takes away is the log's choice: oldest first, a lot split if need be).
What is still held at the horizon is marked there (reason "open", close step = the horizon).
The P&L of a path's trades plus its financing (interest on cash) is the path's P&L.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from simkit.schema.outcomes import CLOSE_REASONS, TRADE_KINDS, TRADE_LOG_ENDS, trade_end_counter
from simkit.schema.results import (
    TRADE_LOG_COORDINATES,
    TRADE_LOG_DATES,
    TRADE_LOG_VARIABLES,
    ResultVariable,
    trade_grid_variable,
)
from simkit.strategy import reference
from simkit.strategy.reference.state import TradeRecord

__all__ = [
    "CHECK_FIELDS",
    "REASONS",
    "TRADE_KINDS",
    "VARIABLES",
    "check",
    "columns",
    "frame",
    "names",
    "record_cell",
    "variables",
]

# what `trade_reason` holds (`trade_kind` holds `TRADE_KINDS`)
REASONS = (*CLOSE_REASONS, *(e.name for e in TRADE_LOG_ENDS))

_SOURCE = (
    "reference engine on the paths' own market rows (the JAX engine keeps no per-trade "
    "record); checked against the run engine's per-path results (attribute trade_log_check)"
)

# The log's variables, name -> `ResultVariable` (units, long name, over `trade`), declared in
# the result registry; the dates of a history market beside them.
VARIABLES = TRADE_LOG_VARIABLES
_DATES = TRADE_LOG_DATES
# how each variable is stored
_DTYPES: dict[str, Any] = {
    "trade_path": np.int64,
    "trade_kind": str,
    "trade_strike": np.float64,
    "trade_open_step": np.int64,
    "trade_close_step": np.int64,
    "trade_contracts": np.float64,
    "trade_premium": np.float64,
    "trade_close_price": np.float64,
    "trade_reason": str,
    "trade_pnl": np.float64,
    "trade_collateral": np.float64,
}

# The JAX engine's per-path results the log is checked against (`check`).
CHECK_FIELDS = (
    "n_trades",
    "n_wins",
    *(trade_end_counter(r) for r in CLOSE_REASONS),
    "sum_win_ret",
    "sum_loss_ret",
    "final_equity",
    "initial_equity",
    "contributions",
)


def names(ds: Any) -> list[str]:
    """The trade log's variables present in `ds` (empty if it has no log)."""
    return [name for name in (*VARIABLES, *_DATES) if name in ds.data_vars]


def frame(ds: Any) -> Any:
    """The trade log of a result dataset as a `pandas.DataFrame`, one row per trade, with
    `trade_cell` and the grid values `trade_<key>` as columns."""
    return ds[names(ds)].to_dataframe()


# --------------------------------------------------------------------------- recording


def record_cell(
    market: Mapping[str, np.ndarray], cfg: Any, mkt: Any
) -> tuple[list[list[TradeRecord]], dict[str, np.ndarray]]:
    """Every trade of every path of `market`, by the reference engine.

    Args:
      market: input name -> `(paths, n_steps + 1)` array (`simkit.paths.market.Market`'s
        names; `market_to_numpy` of `simulate_market`).
      cfg: the cell's `StrategyConfig`; mkt: its `MarketParams`.

    Returns:
      (per path, its `TradeRecord`s in the order they opened), and the reference engine's
      per-path summary fields that `check` reads, `(paths,)` each.
    """
    arrays = {name: np.atleast_2d(np.asarray(market[name])) for name in reference.INPUT_NAMES}
    records, summaries = [], []
    for i in range(arrays["spot"].shape[0]):
        path = {name: arrays[name][i].tolist() for name in reference.INPUT_NAMES}
        summary = reference.simulate_path(path, cfg, mkt, record_trades=True)
        records.append(summary.pop("trades"))
        summaries.append(summary)
    fields = ("financing", *CHECK_FIELDS)
    return records, {k: np.array([s[k] for s in summaries]) for k in fields}


def columns(records: Sequence[Sequence[TradeRecord]], dates: Any = None) -> dict[str, np.ndarray]:
    """The log's columns (`VARIABLES`) of one cell.

    Args:
      records: per path, its trade records (`record_cell`).
      dates: the calendar date of each step of a history market, `(n_steps + 1,)` (every path
        on the same days) or `(paths, n_steps + 1)` (each path its own window); adds
        `trade_open_date` and `trade_close_date`. Default value: None (no dates).
    """
    rows = [(path, r) for path, path_records in enumerate(records) for r in path_records]
    out = {
        "trade_path": np.array([p for p, _ in rows], dtype=np.int64),
        "trade_kind": np.array([r.kind for _, r in rows], dtype=str),
        "trade_strike": np.array([r.strike for _, r in rows], dtype=np.float64),
        "trade_open_step": np.array([r.open_step for _, r in rows], dtype=np.int64),
        "trade_close_step": np.array([r.close_step for _, r in rows], dtype=np.int64),
        "trade_contracts": np.array([r.contracts for _, r in rows], dtype=np.float64),
        "trade_premium": np.array([r.premium for _, r in rows], dtype=np.float64),
        "trade_close_price": np.array([r.close_price for _, r in rows], dtype=np.float64),
        "trade_reason": np.array([r.reason for _, r in rows], dtype=str),
        "trade_pnl": np.array([r.pnl for _, r in rows], dtype=np.float64),
        "trade_collateral": np.array([r.collateral for _, r in rows], dtype=np.float64),
    }
    if dates is not None:
        calendar = np.asarray(dates, dtype="datetime64[ns]")
        if calendar.ndim == 1:
            calendar = np.broadcast_to(calendar, (len(records), calendar.size))
        out["trade_open_date"] = calendar[out["trade_path"], out["trade_open_step"]]
        out["trade_close_date"] = calendar[out["trade_path"], out["trade_close_step"]]
    return out


# --------------------------------------------------------------------------- the check


_LOG_SIDE = CHECK_FIELDS[: -len(("final_equity", "initial_equity", "contributions"))]
_COUNTS = tuple(name for name in _LOG_SIDE if name not in ("sum_win_ret", "sum_loss_ret"))


def _per_path(records: Sequence[Sequence[TradeRecord]], financing: np.ndarray) -> dict:
    """What the log says of each path, in the names of the engine's per-path summary."""
    out: dict[str, list] = {name: [] for name in CHECK_FIELDS if name in _LOG_SIDE}
    out["pnl"] = []
    for path_records, interest in zip(records, financing, strict=True):
        puts = [r for r in path_records if r.kind == "short_put" and r.reason != "open"]
        wins = [r for r in puts if r.pnl > 0.0]
        out["n_trades"].append(len(puts))
        out["n_wins"].append(len(wins))
        for reason in CLOSE_REASONS:
            out[trade_end_counter(reason)].append(sum(r.reason == reason for r in puts))
        out["sum_win_ret"].append(sum(r.pnl / r.collateral for r in wins))
        out["sum_loss_ret"].append(-sum(r.pnl / r.collateral for r in puts if r.pnl <= 0.0))
        out["pnl"].append(sum(r.pnl for r in path_records) + float(interest))
    return {k: np.asarray(v) for k, v in out.items()}


def tolerance(float64: bool) -> float:
    """Relative tolerance of the check's amounts: the JAX engine's float32 against the
    reference engine's float64 on the same market agrees to ~1e-5 (observed on the
    baseline); float64 to ~1e-14 (the agreement test asks 1e-6)."""
    return 1e-6 if float64 else 1e-3


def check(
    records: Sequence[Sequence[TradeRecord]],
    reference_summary: Mapping[str, np.ndarray],
    engine: Mapping[str, np.ndarray],
    float64: bool,
) -> list[str]:
    """Where the log disagrees with the engine's per-path results of the same paths.

    Per path: the count of short-put trades that ended (`n_trades`), of those that made money
    (`n_wins`) and of each trade end (`n_close_stop`, `n_expired_otm`, ...) exactly; the Kelly
    sums of the trades' returns P&L / collateral (`sum_win_ret`, `sum_loss_ret`) and the P&L of
    all trades plus the reference engine's financing against the engine's `final_equity -
    initial_equity - contributions`, within `tolerance(float64)` (relative; the amounts'
    scale: the Kelly sums' size or 1, the initial equity).

    Args:
      records: per path, its trade records (`record_cell`).
      reference_summary: the reference engine's `financing` per path (`record_cell`).
      engine: the engine's per-path `CHECK_FIELDS`, `(paths,)` each, the same paths.
      float64: whether the engine computed in float64.

    Returns:
      one line per path and field that disagrees, empty when the log agrees.
    """
    log = _per_path(records, np.asarray(reference_summary["financing"], dtype=np.float64))
    rtol = tolerance(float64)
    problems = []
    for name in _LOG_SIDE:
        ours = log[name].astype(np.float64)
        theirs = np.asarray(engine[name], dtype=np.float64)
        if name in _COUNTS:
            bad = ours != theirs
        else:
            bad = ~np.isclose(ours, theirs, rtol=rtol, atol=rtol * np.maximum(1.0, np.abs(theirs)))
        problems += [f"path {i}: {name} {ours[i]:.10g} in the log, {theirs[i]:.10g} in the engine"
                     for i in np.flatnonzero(bad)]  # fmt: skip
    initial = np.asarray(engine["initial_equity"], dtype=np.float64)
    pnl = np.asarray(engine["final_equity"], dtype=np.float64) - initial
    pnl -= np.asarray(engine["contributions"], dtype=np.float64)
    bad = ~np.isclose(log["pnl"], pnl, rtol=0.0, atol=rtol * np.maximum(1.0, np.abs(initial)))
    problems += [
        f"path {i}: P&L of the trades + financing {log['pnl'][i]:.2f} USD in the log, "
        f"final - initial equity - contributions {pnl[i]:.2f} USD in the engine"
        for i in np.flatnonzero(bad)
    ]
    return problems


# --------------------------------------------------------------------------- the dataset


def _coord_values(values: list) -> np.ndarray:
    array = np.asarray(values)
    return np.asarray([str(v) for v in values]) if array.dtype == object else array


def variables(
    cell_columns: Mapping[int, Mapping[str, np.ndarray]],
    cell_coords: Mapping[int, Mapping[str, Any]],
    key_units: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The log of a run as xarray variables over `trade` and their coordinates.

    Args:
      cell_columns: cell number -> its `columns`, cells in the order to store.
      cell_coords: cell number -> its grid values (`Cell.coords`: dotted key -> value).
      key_units: dotted grid key -> the units of its values. Default value: "1" for each.

    Returns:
      (data variables, coordinates): `trade`, `trade_cell` and `trade_<key>` per grid key.
    """
    numbers = list(cell_columns)
    counts = [len(cell_columns[n]["trade_path"]) for n in numbers]
    common = {"source": _SOURCE}
    # Compressed (gzip), the names as characters: ~40 bytes a trade in the file, not ~180.
    # HDF5 cannot chunk an empty dimension, so an empty log is stored plain.
    packed = {"zlib": True, "complevel": 4} if sum(counts) else {}
    data = {}
    for name, declared in VARIABLES.items():
        dtype = _DTYPES[name]
        parts = [np.asarray(cell_columns[n][name]) for n in numbers]
        value = np.concatenate(parts) if parts else np.zeros(0, dtype)
        encoding = dict(packed, dtype="S1") if dtype is str and packed else packed
        data[name] = _variable(declared, value.astype(dtype), encoding, **common)
    if numbers and "trade_open_date" in cell_columns[numbers[0]]:
        for name, declared in _DATES.items():
            value = np.concatenate([cell_columns[n][name] for n in numbers])
            data[name] = _variable(declared, value, {}, **common)
    coords = {
        "trade": _variable(TRADE_LOG_COORDINATES["trade"], np.arange(sum(counts)), {}),
        "trade_cell": _variable(
            TRADE_LOG_COORDINATES["trade_cell"],
            np.repeat(np.asarray(numbers, dtype=np.int64), counts),
            packed,
        ),
    }
    keys = list(cell_coords[numbers[0]]) if numbers else []
    for key in keys:
        values = _coord_values([cell_coords[n][key] for n in numbers])
        declared = trade_grid_variable(key, (key_units or {}).get(key, "1"))
        encoding = dict(packed, dtype="S1") if values.dtype.kind == "U" and packed else packed
        coords[declared.name] = _variable(declared, np.repeat(values, counts), encoding)
    return data, coords


def _variable(
    declared: ResultVariable, values: np.ndarray, encoding: dict[str, Any], **extra: str
) -> Any:
    """A declared variable (`ResultVariable`) as an `xarray.Variable` holding `values` (no
    dims declared: the coordinate `trade` on its own dimension)."""
    import xarray as xr

    return xr.Variable(
        declared.dims or declared.name, values, {**declared.attrs, **extra}, encoding=encoding
    )
