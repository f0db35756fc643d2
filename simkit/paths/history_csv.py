"""A daily market history file: read and check it (NumPy only, no JAX).

CSV format (UTF-8, comma-separated, one header line, then one line a trading day):

    date,close,iv,vix
    2014-01-03,1831.37,0.1376,13.76
    2014-01-06,1826.77,0.1355,13.55

- `date`: ISO 8601 calendar date (YYYY-MM-DD), strictly increasing.
- `close`: closing price in dollars, finite and > 0. A column `adj close` (also written
  `adj_close` or `adjclose`: the close adjusted for dividends and splits, as Yahoo Finance
  exports it) is read instead when present (`History.close_column` says which was read): a
  dividend or a split is not a return.
- `iv` (optional column): implied volatility as an annual fraction (0.1376 = 13.76 %), finite
  and > 0.
- Optional market-input columns, each named after the input it replaces (`INPUT_COLUMNS`):
  `vix` (index points), `short_interest` (percent of float), `btc_correlation`,
  `bid_ask_spread` (USD/share), `open_interest` (contracts), `option_volume` (contracts a day),
  `liquidity_score`, `borrow_cost` (percent a year), `volume_ratio`; each within its bounds
  (`INPUT_BOUNDS`). The entry signal and the rules read them; an input without a column is the
  scenario's constant.
A column that is present has a value on every line. Header names are matched
case-insensitively and without surrounding spaces, in any order; other columns are ignored;
blank lines are skipped. At least two days are needed (one daily log return). Each line is one
simulation step (dt = 1/252), whatever the calendar gap between dates.

A file that breaks these rules raises `HistoryError`, whose message names the file, the line
and field, and what is wrong.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt_module
import functools
import hashlib
import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np

from simkit.schema.outcomes import MARKET_INPUTS

__all__ = [
    "INPUT_BOUNDS",
    "INPUT_COLUMNS",
    "History",
    "HistoryError",
    "history_moments",
    "load_history",
    "read_history",
]

# The market inputs a history may give day by day (the Market's exogenous inputs).
INPUT_COLUMNS = tuple(
    name for name in MARKET_INPUTS if name not in ("spot", "iv", "thesis_event", "jump", "early_u")
)
# (lower, upper) of each input column, inclusive; the [market] table's own bounds.
INPUT_BOUNDS = {
    "short_interest": (0.0, 100.0),
    "vix": (0.0, math.inf),
    "btc_correlation": (-1.0, 1.0),
    "bid_ask_spread": (0.0, math.inf),
    "open_interest": (0.0, math.inf),
    "option_volume": (0.0, math.inf),
    "liquidity_score": (0.0, math.inf),
    "borrow_cost": (0.0, math.inf),
    "volume_ratio": (0.0, math.inf),
}
_REQUIRED = ("date", "close")
_OPTIONAL = ("iv", *INPUT_COLUMNS)
_ADJUSTED_CLOSE = ("adj close", "adj_close", "adjclose")  # read instead of close when present
_FORMAT = "'date,close[,iv][,vix,...]'"


class HistoryError(ValueError):
    """A history file that cannot be used: `str()` is "FILE: FIELD: what is wrong"."""

    def __init__(self, path, field: str, message: str):
        super().__init__(str(path), field, message)
        self.path = str(path)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.message}"


@dataclasses.dataclass(frozen=True, eq=False)
class History:
    """A daily market history (see the module docstring for the CSV it comes from)."""

    path: str  # the file read
    dates: np.ndarray  # (n_days,) datetime64[D], strictly increasing
    close: np.ndarray  # (n_days,) float64 dollars, > 0
    iv: np.ndarray | None  # (n_days,) float64 annual fraction, > 0; None without an iv column
    # input name (INPUT_COLUMNS) -> (n_days,) float64, for the columns the file has
    inputs: Mapping[str, np.ndarray] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )
    sha256: str = ""  # of the file's bytes ("" for a history not read from a file)
    close_column: str = "close"  # the header of the column read as the close, as written

    @property
    def n_days(self) -> int:
        return int(self.close.shape[0])

    @property
    def log_returns(self) -> np.ndarray:
        """(n_days - 1,) daily log returns of `close`."""
        return np.diff(np.log(self.close))


def _parse_number(path, line: int, field: str, text: str, shown: str | None = None) -> float:
    """The value of column `field` (named `shown` in messages: the close's header as written)."""
    shown = shown or field
    try:
        value = float(text)
    except ValueError:
        raise HistoryError(path, f"line {line}, {shown}", f"{text!r} is not a number") from None
    if field in ("close", "iv"):
        what = "a price" if field == "close" else "a fraction"
        if not math.isfinite(value) or value <= 0.0:
            raise HistoryError(path, f"line {line}, {shown}", f"must be {what} > 0; got {text!r}")
        return value
    low, high = INPUT_BOUNDS[field]
    if not (math.isfinite(value) and low <= value <= high):
        bounds = f">= {low:g}" if math.isinf(high) else f"in [{low:g}, {high:g}]"
        raise HistoryError(
            path, f"line {line}, {field}", f"must be a finite number {bounds}; got {text!r}"
        )
    return value


def _read_rows(path: Path) -> tuple[bytes, list[tuple[int, list[str]]]]:
    """(the file's bytes, its non-blank CSV rows with their 1-based line numbers)."""
    if not path.is_file():
        raise HistoryError(path, "file", "does not exist or is not a file")
    try:
        data = path.read_bytes()
        text = data.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise HistoryError(path, "file", f"cannot be read as UTF-8 text ({error})") from None
    lines = [
        (number, row)
        for number, row in enumerate(csv.reader(text.splitlines()), start=1)
        if any(cell.strip() for cell in row)
    ]
    if not lines:
        raise HistoryError(path, "file", f"is empty; expected a header {_FORMAT} and rows")
    return data, lines


def _header_columns(path: Path, header_line: int, header: list[str]) -> tuple[dict[str, int], str]:
    """(column name -> index, for `date`, the close and each optional column present; the
    close's header as written): the adjusted close is read as the close when present."""
    names = [cell.strip().lower() for cell in header]
    adjusted = [name for name in _ADJUSTED_CLOSE if name in names]
    for name in _REQUIRED:
        if name not in names and not (name == "close" and adjusted):
            raise HistoryError(
                path,
                f"line {header_line}, header",
                f"missing column {name!r}; expected {_FORMAT}, got {','.join(header)!r}",
            )
    for name in (*_REQUIRED, *_OPTIONAL, *_ADJUSTED_CLOSE):
        if names.count(name) > 1:
            raise HistoryError(path, f"line {header_line}, header", f"column {name!r} repeats")
    if len(adjusted) > 1:
        both = f"columns {adjusted[0]!r} and {adjusted[1]!r} both name the adjusted close"
        raise HistoryError(path, f"line {header_line}, header", f"{both}; keep one")
    column = {name: names.index(name) for name in (*_REQUIRED, *_OPTIONAL) if name in names}
    if adjusted:
        column["close"] = names.index(adjusted[0])
    return column, header[column["close"]].strip()


def _parse_date(
    path: Path, line: int, text: str, previous: dt_module.date | None
) -> dt_module.date:
    """The ISO date of a row, checked later than the row before's."""
    try:
        date = dt_module.date.fromisoformat(text)
    except ValueError:
        raise HistoryError(
            path, f"line {line}, date", f"{text!r} is not an ISO date YYYY-MM-DD"
        ) from None
    if previous is not None and date <= previous:
        raise HistoryError(
            path,
            f"line {line}, date",
            f"dates must increase strictly; {date} follows {previous}",
        )
    return date


def _parse_rows(
    path: Path,
    rows: list[tuple[int, list[str]]],
    column: dict[str, int],
    n_fields: int,
    close_column: str,
) -> tuple[list[dt_module.date], dict[str, list[float]]]:
    """(the dates, numeric column name -> values) of the data rows, each checked."""
    numeric = [name for name in ("close", *_OPTIONAL) if name in column]
    dates: list[dt_module.date] = []
    values: dict[str, list[float]] = {name: [] for name in numeric}
    for number, row in rows:
        if len(row) <= max(column.values()):
            raise HistoryError(
                path, f"line {number}", f"expected {n_fields} fields, got {len(row)}"
            )
        date_text = row[column["date"]].strip()
        dates.append(_parse_date(path, number, date_text, dates[-1] if dates else None))
        for name in numeric:
            shown = close_column if name == "close" else name
            values[name].append(_parse_number(path, number, name, row[column[name]].strip(), shown))
    if len(dates) < 2:
        raise HistoryError(
            path, "file", f"needs at least 2 days of data (one return); got {len(dates)}"
        )
    return dates, values


def read_history(path: str | Path) -> History:
    """Read and validate a history CSV `date,close[,iv][,input columns]`.

    Args:
        path: the CSV file.

    Returns:
        `History` with `dates`, `close`, `iv` (if the file has the column) and `inputs`.

    Raises:
        HistoryError: missing or unreadable file, empty file, missing column, a short line,
            a bad date, a non-numeric or out-of-bounds value, non-increasing dates, fewer than
            two days.
    """
    path = Path(path)
    data, lines = _read_rows(path)
    header_line, header = lines[0]
    column, close_column = _header_columns(path, header_line, header)
    dates, values = _parse_rows(path, lines[1:], column, len(header), close_column)
    arrays = {name: np.array(v, dtype=np.float64) for name, v in values.items()}
    return History(
        path=str(path),
        dates=np.array(dates, dtype="datetime64[D]"),
        close=arrays["close"],
        iv=arrays.get("iv"),
        inputs=MappingProxyType({k: arrays[k] for k in INPUT_COLUMNS if k in arrays}),
        sha256=hashlib.sha256(data).hexdigest(),
        close_column=close_column,
    )


@functools.lru_cache(maxsize=16)
def _cached(path: str, mtime_ns: int, size: int) -> History:
    return read_history(path)


def load_history(path: str | Path) -> History:
    """`read_history`, read once per file version (cached by path, modification time, size):
    the blocks of a run and the cells of a grid share one read."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return read_history(path)  # raises the reader's own message
    return _cached(str(path), stat.st_mtime_ns, stat.st_size)


def history_moments(params, dt: float = 1 / 252):
    """`params` (a `MarketParams` of a history model) with `mu` and `sigma` of its history: sigma
    the daily log returns' standard deviation (ddof 1) over sqrt(dt), mu their mean over dt plus
    sigma^2 / 2 (the GBM with the history's first two moments), `risk_neutral` off. What reads a
    market's law from `mu` and `sigma` (a shock scaling realized volatility around the mean, the
    claims' real-world probabilities) reads this for a history."""
    returns = load_history(params.history).log_returns
    sigma = float(np.std(returns, ddof=1)) / math.sqrt(dt) if returns.size > 1 else 0.0
    mu = float(np.mean(returns)) / dt + 0.5 * sigma * sigma
    return dataclasses.replace(params, mu=mu, sigma=sigma, risk_neutral=False)
