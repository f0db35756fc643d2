"""Reports: PNG figures and one self-contained HTML page from a result file.

`make_report(RESULT.nc, DIR)` reads a `simkit run` result (one cell or a grid) or a
`simkit stress` result and writes PNG figures (matplotlib, Agg, no display needed) and
`index.html` (the scenario's key parameters, the claims table of a `simkit claims` JSON beside
the result, the summary table and every figure, embedded as base64 so that the page is one
file, each linking to its PNG beside it). Reading a result never needs JAX; a report takes
seconds. Each figure's title asks the question it answers. Percentages go through
`simkit.formats` (a nonzero share below the printed digit reads "<0.1 %", never "0 %").

Run results:
  equity_fan            quantile bands of the daily sleeve equity of the stored sample paths
  return_distribution   histogram of the horizon return (the stored one, on the same bins in
                        every cell; per-path values for files without it) with VaR/CVaR marked
  payoff                (`--per-path`) the sleeve's horizon return against the stock's, path
                        by path (2-D histogram), with the median per tenth of the paths
  drawdown_distribution histogram of each path's maximum drawdown, median and 5 % marked
  close_reasons         how trades ended (share of closed trades)
  attribution           mean P&L per path by bucket
  kelly                 Kelly inputs and fractions with their 95 % intervals
  breaches              share of paths breaching each risk limit
  grid_heatmaps         (grids of two or more axes) win rate, median return and ruin
                        probability over the first two axes
  grid_lines            (one-axis grids) the same three over the axis
Grids are drawn as small multiples, one panel per cell (at most 4 values of each of the first
two axes; further axes are fixed at their middle value, as the figure's title says).
`select={key: value}` (`simkit report --select key=value`) cuts the grid to a slice first
(`select_cells`: any grid key or a key zipped with one; a number matches the nearest grid value
within a relative `SELECT_RTOL`); the slice is named in every title and on the page.

Stress results:
  stress_outcomes       probability of ruin, of a margin call and of a loss per stress
  stress_returns        horizon-return quantiles per stress, VaR/CVaR 99 % marked
  stress_equity         median daily equity per stress
  stress_shock          the sleeve's loss on the shock day, the share of paths that stopped
                        trading after the shock, the horizon return minus cash at r
  stress_stops          stop-losses fired and what they saved
  stress_attribution    mean P&L per bucket per stress
  breaches_overview     share of paths breaching each limit, stress x limit
  breach_<limit>        one per limit: share of paths breaching, days from the shock to the
                        first breach, loss given breach
Each stress figure shows `limits.enforce_limits` on and off side by side.

Explain results (`simkit explain`, a dataset with a `change` dimension):
  explain_tornado       the change of the mean annual return when each rule or assumption is
                        changed alone, with its paired 95 % interval, largest first
  explain_metrics       the same for the probability of a loss, the median drawdown and the
                        sleeve Kelly fraction

Sensitivity results (`simkit sensitivity`, a dataset with `sample`, `key` and `metric`):
  sensitivity_indices   per metric, each key's index (Morris mu* with its 95 % half-width and
                        sigma; Sobol' S1 and ST with theirs), largest first, the noise floor
                        marked
  sensitivity_scatter   each metric against each sampled key over the parameter sets (the
                        run's standard error as whiskers)
"""

from __future__ import annotations

import base64
import dataclasses
import html
import itertools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from simkit import formats
from simkit.formats import percent

__all__ = [
    "BadSelection",
    "NotAResult",
    "Report",
    "claims_file",
    "default_folder",
    "make_report",
    "select_cells",
]

DPI = 110
SEED_KELLY = {"kelly_p": 0.892, "kelly_avg_win": 0.123, "kelly_avg_loss": 0.087}  # seed inputs
MAX_AXIS_PANELS = 4  # values of one grid axis drawn as small multiples
ON_OFF_COLORS = {True: "#1f5fa8", False: "#d9822b"}  # limits enforced / not
BAND_COLOR = "#1f5fa8"


class NotAResult(Exception):
    """The file is not a simkit result (run, stress or explain)."""


@dataclasses.dataclass(frozen=True)
class Report:
    """What `make_report` wrote."""

    index: Path  # index.html
    figures: list[Path]  # the PNGs, in page order
    seconds: float


def default_folder(result: str | Path) -> Path:
    """`results/x.nc` -> `results/x_report/`."""
    result = Path(result)
    return result.with_name(f"{result.stem}_report")


# --------------------------------------------------------------------------- figure helpers


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _pct_axis(axis: Any, decimals: int | None = None) -> None:
    from matplotlib.ticker import PercentFormatter

    axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=decimals))


def _usd(x: float, _pos: Any = None) -> str:
    if not math.isfinite(x):
        return ""
    sign = "-" if x < 0 else ""
    x = abs(x)
    if x >= 1e6:
        return f"{sign}${x / 1e6:,.1f}M"
    if x >= 1e3:
        return f"{sign}${x / 1e3:,.0f}k"
    return f"{sign}${x:,.0f}"


def _usd_axis(axis: Any) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axis.set_major_formatter(FuncFormatter(_usd))
    axis.set_major_locator(MaxNLocator(6))


def _save(fig: Any, folder: Path, name: str, written: list[Path]) -> None:
    title = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
    if title:  # a long title (a question, the slice) wraps within the figure's width
        fig._suptitle.set_wrap(True)
    for ax in fig.axes:
        ax.title.set_wrap(True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=DPI)
    written.append(path)


def _suffix(text: str) -> str:
    """` (text)` for a title, or nothing."""
    return f" ({text})" if text else ""


def _short(dim: str) -> str:
    """`market.sigma` -> `sigma` (labels; the full key is in the title)."""
    return dim.rsplit(".", 1)[-1]


def _value_text(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "on" if value else "off"
    if isinstance(value, float | np.floating):
        return f"{float(value):g}"
    return str(value)


# --------------------------------------------------------------------------- run results


class _Grid:
    """The grid of a run result: its dimensions and the cells drawn as panels.

    `ds` is the result already cut to the `--select`ed slice (`select_cells`); `selected`
    names the keys fixed that way and their values, for the titles."""

    def __init__(self, ds: Any, selected: dict[str, Any] | None = None):
        self.ds = ds
        self.selected = dict(selected or {})
        self.dims = list(ds["paths"].dims)
        self.sizes = [ds.sizes[d] for d in self.dims]
        # Small multiples: at most MAX_AXIS_PANELS values (evenly spread) of the first two
        # axes; further axes fixed at their middle value.
        picks = []
        most = MAX_AXIS_PANELS if len(self.sizes) > 1 else 2 * MAX_AXIS_PANELS
        for position, size in enumerate(self.sizes):
            if position < 2:
                chosen = np.unique(np.linspace(0, size - 1, min(size, most)).round())
                picks.append([int(i) for i in chosen])
            else:
                picks.append([size // 2])
        self.picks = picks
        self.fixed = {d: ds[d].values[picks[k][0]] for k, d in enumerate(self.dims) if k >= 2}
        self.drawn_all = all(len(p) == s for p, s in zip(picks, self.sizes, strict=True))

    def selected_text(self) -> str:
        """`market.mu = 0.05`: the keys fixed by `--select` (empty without)."""
        return ", ".join(f"{d} = {_value_text(v)}" for d, v in self.selected.items())

    def slice_text(self) -> str:
        """The `--select`ed keys and the axes beyond the first two, fixed at their middle value
        (what a heatmap over the first two axes holds fixed)."""
        parts = [self.selected_text()] if self.selected else []
        if self.fixed:
            fixed = ", ".join(f"{d} = {_value_text(v)}" for d, v in self.fixed.items())
            parts.append(f"{fixed}: the middle value, --select picks another")
        return "; ".join(parts)

    @property
    def cells(self) -> list[dict[str, int]]:
        return [
            dict(zip(self.dims, combo, strict=True)) for combo in itertools.product(*self.picks)
        ]

    @property
    def all_cells(self) -> list[dict[str, int]]:
        return [
            dict(zip(self.dims, combo, strict=True))
            for combo in itertools.product(*(range(s) for s in self.sizes))
        ]

    def label(self, index: dict[str, int], every_axis: bool = False) -> str:
        """`sigma = 1.9, mu = 0.05`: the cell's values (the axes fixed for the small
        multiples are left out unless `every_axis`)."""
        if not index:
            return "the scenario"
        parts = []
        for d, i in index.items():
            if d in self.fixed and not every_axis:
                continue
            parts.append(f"{_short(d)} = {_value_text(self.ds[d].values[i])}")
        return ", ".join(parts)

    def note(self) -> str:
        """What the small multiples leave out (for titles): the slice and the cells shown."""
        notes = [self.slice_text()] if self.slice_text() else []
        if any(len(self.picks[k]) < self.sizes[k] for k in range(min(2, len(self.sizes)))):
            notes.append(f"{' x '.join(str(len(p)) for p in self.picks[:2])} of the cells shown")
        return f" ({'; '.join(notes)})" if notes else ""

    def layout(self) -> tuple[int, int]:
        if not self.dims:
            return 1, 1
        rows = len(self.picks[0])
        cols = len(self.picks[1]) if len(self.dims) > 1 else 1
        if len(self.dims) == 1 and rows > 2:  # one axis: wrap into two columns
            return math.ceil(rows / 2), 2
        return rows, cols


class BadSelection(ValueError):
    """A `--select` that names no grid key, or a value that is not on the grid."""


# A number given to --select matches the nearest grid value within this relative tolerance
# (1e-12 absolute near zero), so that 1.9 finds 1.9000000000000001.
SELECT_RTOL = 1e-6


def _grid_keys(ds: Any) -> dict[str, str]:
    """Every key a `--select` may name -> its grid dimension: the dimensions and the keys
    zipped with one (non-dimension coordinates along it)."""
    dims = list(ds["paths"].dims)
    keys = {d: d for d in dims}
    for name, coord in ds.coords.items():
        if name not in keys and len(coord.dims) == 1 and coord.dims[0] in dims:
            keys[str(name)] = coord.dims[0]
    return keys


def _match(key: str, text: Any, values: np.ndarray) -> int:
    """The index of `text` among a grid key's `values` (BadSelection when none)."""
    shown = ", ".join(_value_text(v) for v in values)
    if values.dtype == bool:
        word = str(text).strip().lower()
        truth = {"true": True, "on": True, "1": True, "false": False, "off": False, "0": False}
        if word not in truth:
            raise BadSelection(f"--select {key}={text}: not on or off; the grid has {shown}")
        hits = np.flatnonzero(values == truth[word])
    elif np.issubdtype(values.dtype, np.number):
        try:
            x = float(text)
        except (TypeError, ValueError):
            raise BadSelection(
                f"--select {key}={text}: not a number; the grid has {shown}"
            ) from None
        gap = np.abs(values.astype(np.float64) - x)
        nearest = int(np.argmin(gap))
        scale = max(abs(x), abs(float(values[nearest])))
        hits = [nearest] if gap[nearest] <= max(SELECT_RTOL * scale, 1e-12) else []
    else:
        hits = np.flatnonzero(values.astype(str) == str(text))
    if len(hits) == 0:
        raise BadSelection(
            f"--select {key}={text}: not on the grid; {key} takes the values {shown} "
            f"(a number matches the nearest within a relative {SELECT_RTOL:g})"
        )
    return int(hits[0])


def select_cells(ds: Any, select: Any) -> tuple[dict[str, int], dict[str, Any]]:
    """Where `--select key=value ...` cuts a run result's grid.

    Args:
      ds: a run result with a grid.
      select: `{key: value}` (or `(key, value)` pairs): a grid key (a dimension such as
        `market.sigma`, or a key zipped with one) and one of its values (text or a number;
        a number matches the nearest grid value within `SELECT_RTOL`, relative).

    Returns:
      (dimension -> index, for `ds.isel`), (key -> its value on the grid, for titles).

    Raises:
      BadSelection: a key that is no grid key, a value not on the grid, or two selections of
        one dimension.
    """
    pairs = list(select.items()) if hasattr(select, "items") else list(select)
    keys = _grid_keys(ds)
    where: dict[str, int] = {}
    selected: dict[str, Any] = {}
    for key, text in pairs:
        if key not in keys:
            raise BadSelection(
                f"--select {key}={text}: {key!r} is not a key of this result's grid; "
                f"its keys are {', '.join(keys) or 'none (the result has no grid)'}"
            )
        dim = keys[key]
        values = np.asarray(ds[key].values)
        index = _match(key, text, values)
        if dim in where:
            raise BadSelection(f"--select {key}={text}: the grid axis {dim} is selected twice")
        where[dim] = index
        selected[key] = values[index]
    return where, selected


def _panels(grid: _Grid, width_per: float, height_per: float, **kwargs: Any) -> tuple[Any, list]:
    rows, cols = grid.layout()
    fig = _figure(max(6.5, width_per * cols), max(3.8, height_per * rows + 0.8))
    axes = fig.subplots(rows, cols, squeeze=False, **kwargs).ravel().tolist()
    cells = grid.cells
    for ax in axes[len(cells) :]:
        ax.set_visible(False)
    return fig, list(zip(cells, axes, strict=False))


def _fan(ds: Any, grid: _Grid, folder: Path, written: list[Path]) -> None:
    sample = ds["equity_sample"]
    n_sample = int(sample.sizes["sample"])
    fig, panels = _panels(grid, 4.6, 3.0, sharex=True, sharey=True)
    bands = (
        (0.01, 0.99, 0.15, "1–99 %"),
        (0.05, 0.95, 0.25, "5–95 %"),
        (0.25, 0.75, 0.4, "25–75 %"),
    )
    one_path = n_sample == 1  # a history replayed: the path itself, no bands
    dated = "date" in ds.coords  # a replay's result: the history's dates on the x axis
    stored = _stored_bands(ds, [q for band in bands for q in band[:2]] + [0.5])
    for index, ax in panels:
        curves = np.asarray(sample.isel(index).values, dtype=np.float64)
        curves = curves[np.all(np.isfinite(curves), axis=1)]
        days = np.asarray(ds["date"].values if dated else ds["day"].values)
        if curves.size and one_path:
            ax.plot(days, curves[0], color="black", linewidth=1.2, label="the path")
        elif stored is not None or curves.size:
            if stored is not None:  # over every path of the cell (`equity_quantile`)
                cell = stored.isel(index)

                def quantile(q, cell=cell):
                    return np.asarray(cell.sel(quantile=q).values, dtype=np.float64)
            else:  # files without stored bands: the sample paths

                def quantile(q, curves=curves):
                    return np.quantile(curves, q, axis=0)

            for lo, hi, alpha, label in bands:
                ax.fill_between(
                    days, quantile(lo), quantile(hi), color=BAND_COLOR, alpha=alpha,
                    linewidth=0, label=label,
                )  # fmt: skip
            ax.plot(days, quantile(0.5), color="black", linewidth=1.6, label="median")
        initial = float(ds["initial_equity"].isel(index))
        ax.axhline(initial, color="0.3", linestyle="--", linewidth=1, label="initial equity")
        _usd_axis(ax.yaxis)
        ax.grid(alpha=0.3)
        if grid.dims:
            ax.set_title(grid.label(index), fontsize=9)
    for _, ax in panels:
        if ax.get_subplotspec().is_last_row():
            ax.set_xlabel("date" if dated else "trading day")
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("sleeve equity (USD)")
    panels[0][1].legend(loc="upper left", fontsize=8, ncol=2)
    if one_path:
        what = "the one path"
    elif stored is not None:
        what = f"quantile bands over all {int(ds['paths'].max()):,} paths per cell"
    else:
        what = f"quantile bands of {n_sample} sample paths per cell"
    fig.suptitle(
        f"How does the sleeve's equity move over the horizon? {what[0].upper() + what[1:]}"
        + grid.note()
    )
    _save(fig, folder, "equity_fan", written)


def _stored_bands(ds: Any, quantiles: list[float]) -> Any:
    """`equity_quantile` (over every path of each cell, on `step`) when the file has it at
    every quantile the fan draws and on the same days as the sample, else None."""
    if "equity_quantile" not in ds:
        return None
    bands = ds["equity_quantile"]
    have = {round(float(q), 9) for q in bands["quantile"].values}
    if not all(round(q, 9) in have for q in quantiles):
        return None
    if bands.sizes.get("step") != ds.sizes.get("day"):
        return None
    bands = bands.assign_coords(quantile=np.round(bands["quantile"].values.astype(float), 9))
    return bands.rename(step="day") if "step" in bands.dims else bands


def _hist_data(ds: Any, index: dict, name: str) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(counts, edges, source) of a per-path variable's histogram for one cell: the stored
    one (the same edges in every cell of a run), else from the per-path values (`--per-path`
    files written before the stored histograms had common edges), else None."""
    if f"{name}_hist" in ds and f"{name}_bin_edge" in ds:
        counts = np.asarray(ds[f"{name}_hist"].isel(index).values, dtype=np.float64)
        edges = np.asarray(ds[f"{name}_bin_edge"].values, dtype=np.float64)
        if np.all(np.isfinite(edges)):
            return counts, edges, "stored"
    if name in ds and "path" in ds[name].dims:
        x = np.asarray(ds[name].isel(index).values, dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size:
            lo, hi = np.quantile(x, (0.005, 0.995))
            if not hi > lo:
                lo, hi = lo - 1e-6, hi + 1e-6
            counts, edges = np.histogram(np.clip(x, lo, hi), bins=60, range=(lo, hi))
            return counts.astype(float), edges, "from per-path values"
    if f"{name}_hist_count" in ds:  # files written before the common edges
        counts = np.asarray(ds[f"{name}_hist_count"].isel(index).values, dtype=np.float64)
        edges = np.asarray(ds[f"{name}_hist_edge"].isel(index).values, dtype=np.float64)
        if np.all(np.isfinite(edges)):
            return counts, edges, "from the stored histogram"
    return None


def _quantile_steps(ds: Any, index: dict, name: str, ax: Any, color: str) -> None:
    """Fallback without a histogram: the stored quantiles as a step CDF."""
    q = np.asarray(ds["quantile"].values)
    values = np.asarray(ds[f"{name}_quantile"].isel(index).values)
    ax.plot(values, q, marker="o", color=color, label="stored quantiles")
    ax.set_ylabel("cumulative share of paths")
    _pct_axis(ax.yaxis)


Marker = tuple[float, str, str, str, str]  # (x, name, value text, color, line style)


def _share_text(x: float) -> str:
    """A share with as many decimals as a small one needs: 0 %, 0.3 %, 12 %, <0.1 %."""
    return formats.share(x)


def _pct(x: float, decimals: int = 0) -> str:
    return percent(x, decimals)


def _distribution(
    ds: Any,
    grid: _Grid,
    folder: Path,
    written: list[Path],
    *,
    name: str,
    file: str,
    title: str,
    xlabel: str,
    markers: Callable[[dict], list[Marker]],
) -> None:
    """A histogram per cell with vertical markers; one cell: the values in the legend;
    a grid: a legend for the whole figure and the key values in each panel's title."""
    from matplotlib.ticker import MaxNLocator

    fig, panels = _panels(grid, 4.6, 3.0, sharex=True)
    if not grid.dims:
        fig.set_size_inches(9.5, 4.4)
    sources = set()
    cols = grid.layout()[1]
    for k, (index, ax) in enumerate(panels):
        data = _hist_data(ds, index, name)
        if data is None:
            _quantile_steps(ds, index, name, ax, BAND_COLOR)
            sources.add("from the stored quantiles")
        else:
            counts, edges, source = data
            sources.add(source)
            share = counts / max(counts.sum(), 1.0)
            ax.stairs(share, edges, fill=True, color=BAND_COLOR, alpha=0.55, label="paths")
            _pct_axis(ax.yaxis, decimals=1)
            if ax.get_subplotspec().is_first_col():
                ax.set_ylabel("share of paths per bin")
        shown = []
        for x, label, value, color, style in markers(index):
            if math.isfinite(x):
                text = f"{label} ({value})" if not grid.dims and value else label
                ax.axvline(x, color=color, linestyle=style, linewidth=1.5, label=text)
                if value:
                    shown.append(f"{label} {value}")
        _pct_axis(ax.xaxis, decimals=0)
        ax.xaxis.set_major_locator(MaxNLocator(6))
        if k + cols >= len(panels):  # lowest in its column: the panels share their x axis
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if grid.dims:
            ax.set_title(f"{grid.label(index)}\n{'; '.join(shown[-2:])}", fontsize=8)
    if grid.dims:
        handles, labels = panels[0][1].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8)
    else:
        panels[0][1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if grid.dims and sources == {"stored"}:
        note = (
            "the same bins in every panel, from the lowest cell's 0.5 % quantile to the "
            "highest cell's 99.5 %; paths beyond them are counted in the end bins"
        )
    else:
        note = "the 0.5 % most extreme paths on each side are counted in the end bins"
    notes = [*sorted(s for s in sources if s != "stored"), note]
    fig.suptitle(f"{title}{grid.note()}\n({'; '.join(notes)})", fontsize=10)
    _save(fig, folder, file, written)


def _return_markers(ds: Any) -> Callable[[dict], list[Marker]]:
    def markers(index: dict) -> list[Marker]:
        def v(name: str) -> float:
            return float(ds[name].isel(index)) if name in ds else math.nan

        return [
            (0.0, "break-even", "", "0.2", "-"),
            (-v("var_95"), "VaR 95 %", f"{_pct(v('var_95'))} loss", "#d9822b", "--"),
            (-v("cvar_95"), "CVaR 95 %", f"{_pct(v('cvar_95'))} loss", "#d9822b", ":"),
            (-v("var_99"), "VaR 99 %", f"{_pct(v('var_99'))} loss", "#b8241c", "--"),
            (-v("cvar_99"), "CVaR 99 %", f"{_pct(v('cvar_99'))} loss", "#b8241c", ":"),
        ]

    return markers


def _drawdown_markers(ds: Any) -> Callable[[dict], list[Marker]]:
    def markers(index: dict) -> list[Marker]:
        q = list(np.round(ds["quantile"].values, 6))
        values = ds["max_drawdown_quantile"].isel(index).values
        median = float(ds["max_drawdown_median"].isel(index))
        p5 = float(values[q.index(0.05)]) if 0.05 in q else math.nan
        return [
            (-0.266, "seed's worst drawdown", "-26.6 %", "#2a9d4b", ":"),
            (p5, "5 % quantile", _pct(p5), "#b8241c", "--"),
            (median, "median", _pct(median), "black", "--"),
        ]

    return markers


def _payoff(ds: Any, grid: _Grid, folder: Path, written: list[Path]) -> None:
    """(Per-path results) each path's horizon return of the sleeve against the stock's own
    return S_N / S_0 - 1: a 2-D histogram of the paths (log counts; the stock's growth on a
    log axis), and the median sleeve return in each tenth of the paths by the stock's return:
    the payoff the strategy really has."""
    from matplotlib.ticker import FuncFormatter

    fig, panels = _panels(grid, 4.6, 3.4, sharex=True, sharey=True)
    if not grid.dims:
        fig.set_size_inches(8.5, 5.0)
    shown = 0
    for index, ax in panels:
        growth = 1.0 + np.asarray(ds["underlying_return"].isel(index).values, dtype=np.float64)
        sleeve = np.asarray(ds["total_return"].isel(index).values, dtype=np.float64)
        keep = np.isfinite(growth) & np.isfinite(sleeve) & (growth > 0)
        growth, sleeve = growth[keep], sleeve[keep]
        if not growth.size:
            continue
        shown = max(shown, growth.size)
        lo, hi = np.quantile(sleeve, (0.002, 0.998))  # the rare extremes at the edges
        if not hi > lo:
            lo, hi = lo - 0.05, hi + 0.05
        cells = ax.hexbin(
            growth, np.clip(sleeve, lo, hi), xscale="log", gridsize=(36, 18), bins="log",
            mincnt=1, cmap="Blues", linewidths=0.1,
        )  # fmt: skip
        edges = np.quantile(growth, np.linspace(0, 1, 11))
        tenth = np.clip(np.searchsorted(edges, growth, side="right") - 1, 0, 9)
        mids = [(np.median(growth[tenth == k]), np.median(sleeve[tenth == k])) for k in range(10)
                if np.any(tenth == k)]  # fmt: skip
        ax.plot(*zip(*mids, strict=True), color="black", marker="o", markersize=3, linewidth=1.4,
                label="median per tenth of the paths by the stock's return")  # fmt: skip
        ax.axhline(0.0, color="0.3", linewidth=0.8)
        ax.axvline(1.0, color="0.3", linewidth=0.8, linestyle=":")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}x"))
        pad = 0.05 * (hi - lo)
        ax.set_ylim(min(lo - pad, -0.05), max(hi + pad, 0.05))
        _pct_axis(ax.yaxis, decimals=0)
        ax.grid(alpha=0.3)
        if grid.dims:
            ax.set_title(grid.label(index), fontsize=9)
        if ax.get_subplotspec().is_last_row():
            ax.set_xlabel("the stock's move over the horizon, S_N / S_0 (log scale)")
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("the sleeve's horizon return")
        if not grid.dims:
            fig.colorbar(cells, ax=ax, label="paths per cell of the histogram")
    if not shown:
        return
    panels[0][1].legend(fontsize=8, loc="upper left")
    fig.suptitle(
        "What does the sleeve make when the stock moves? Its horizon return against the "
        f"stock's move, path by path{grid.note()}\n({shown:,} paths per cell; the sleeve's "
        "0.2 % most extreme returns on each side drawn at the edges)",
        fontsize=10,
    )
    _save(fig, folder, "payoff", written)


def _cell_rows(ds: Any, grid: _Grid) -> list[tuple[str, dict]]:
    return [(grid.label(index, every_axis=True), index) for index in grid.all_cells]


def _heat_table(
    fig: Any,
    ax: Any,
    values: np.ndarray,
    rows: list[str],
    cols: list[str],
    fmt: Callable[[float], str],
    cmap: str,
    label: str,
    *,
    kind: str = "pct",
    center: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
) -> None:
    """A table of values drawn as a heatmap with each value written in its cell.

    `kind` ("pct" or "usd") formats the colorbar; `center` puts 0 at the colormap's middle;
    `vmin`/`vmax` fix the color range (a range of zero width is widened)."""
    from matplotlib.colors import Normalize, TwoSlopeNorm
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 1.0
    if center:
        bound = max(abs(lo), abs(hi), 1e-12)
        norm = TwoSlopeNorm(vmin=-bound, vcenter=0.0, vmax=bound)
    else:
        lo = lo if vmin is None else vmin
        hi = hi if vmax is None else max(vmax, hi)
        if not hi > lo:
            hi = lo + (abs(lo) * 0.1 or 0.01)
        norm = Normalize(vmin=lo, vmax=hi)
    image = ax.imshow(values, cmap=cmap, norm=norm, aspect="auto")
    slanted = max(map(len, cols)) > 6
    ax.set_xticks(
        range(len(cols)), cols, rotation=30 if slanted else 0, ha="right" if slanted else "center"
    )
    ax.set_yticks(range(len(rows)), rows)
    for (r, c), value in np.ndenumerate(values):
        if not math.isfinite(value):
            continue
        level = float(norm(value))
        dark = abs(level - 0.5) * 2 > 0.6 if center else level > 0.6
        color = "white" if dark else "black"
        ax.text(c, r, fmt(value), ha="center", va="center", fontsize=8, color=color)
    formatter = PercentFormatter(xmax=1.0) if kind == "pct" else FuncFormatter(_usd)
    fig.colorbar(image, ax=ax, label=label, shrink=0.9, format=formatter)


def _axis_title(ds: Any, dim: str) -> str:
    units = str(ds[dim].attrs.get("units", "1"))
    return dim if units in ("1", "") else f"{dim} ({units})"


def _close_reasons(ds: Any, grid: _Grid, folder: Path, written: list[Path]) -> None:
    reasons = [str(r).replace("_", " ") for r in ds["close_reason"].values]
    if not grid.dims:
        share = np.asarray(ds["close_reason_share"].values, dtype=float)
        fig = _figure(7.5, 4.2)
        ax = fig.subplots()
        bars = ax.barh(reasons, share, color=BAND_COLOR)
        ax.bar_label(bars, labels=[percent(s) if s > 0 else "" for s in share], fontsize=8)
        ax.invert_yaxis()
        _pct_axis(ax.xaxis)
        ax.set_xlabel("share of closed trades")
        ax.set_xlim(0, max(float(np.nanmax(share)) * 1.18, 0.05))
        ax.grid(axis="x", alpha=0.3)
        per_path = float(ds["trades_per_path"])
        fig.suptitle(
            f"How do trades end? ({per_path:.1f} closed trades per path)"
            + _suffix(grid.selected_text())
        )
    else:
        rows = _cell_rows(ds, grid)
        values = np.array([ds["close_reason_share"].isel(i).values for _, i in rows], dtype=float)
        keep = np.nansum(values, axis=0) > 0
        fig = _figure(max(7.5, 0.9 * keep.sum() + 3), max(3.5, 0.38 * len(rows) + 1.8))
        ax = fig.subplots()
        _heat_table(
            fig,
            ax,
            values[:, keep],
            [r for r, _ in rows],
            [c for c, k in zip(reasons, keep, strict=True) if k],
            _share_text,
            "Blues",
            "share of closed trades",
            vmin=0.0,
        )
        ax.set_title(
            "How do trades end? Share of closed trades per reason and cell"
            + _suffix(grid.selected_text())
        )
    _save(fig, folder, "close_reasons", written)


def _attribution(ds: Any, grid: _Grid, folder: Path, written: list[Path]) -> None:
    buckets = [str(b).replace("_", " ") for b in ds["bucket"].values]
    if not grid.dims:
        values = np.asarray(ds["attribution_mean"].values, dtype=float)
        fig = _figure(7.5, 4.2)
        ax = fig.subplots()
        colors = ["#2a9d4b" if v >= 0 else "#b8241c" for v in values]
        bars = ax.barh(buckets, values, color=colors)
        ax.bar_label(bars, labels=[_usd(v) for v in values], fontsize=8, padding=3)
        ax.axvline(0, color="0.2", linewidth=1)
        ax.invert_yaxis()
        _usd_axis(ax.xaxis)
        span = float(np.nanmax(np.abs(values))) if values.size else 1.0
        ax.set_xlim(-span * 1.35, span * 1.35)
        ax.set_xlabel("mean P&L per path (USD)")
        total = float(np.nansum(values))
        fig.suptitle(
            f"Where does the P&L come from? Mean per path by bucket (total {_usd(total)})"
            + _suffix(grid.selected_text())
        )
        ax.grid(axis="x", alpha=0.3)
    else:
        rows = _cell_rows(ds, grid)
        values = np.array([ds["attribution_mean"].isel(i).values for _, i in rows], dtype=float)
        fig = _figure(max(8.5, 1.1 * len(buckets) + 3), max(3.5, 0.38 * len(rows) + 1.8))
        ax = fig.subplots()
        _heat_table(
            fig,
            ax,
            values,
            [r for r, _ in rows],
            buckets,
            _usd,
            "RdYlGn",
            "USD per path",
            kind="usd",
            center=True,
        )
        ax.set_title(
            "Where does the P&L come from? Mean per path (USD) by bucket and cell"
            + _suffix(grid.selected_text())
        )
    _save(fig, folder, "attribution", written)


def _kelly(ds: Any, grid: _Grid, folder: Path, written: list[Path]) -> None:
    items = (  # (variable, title, x label, percent axis, seed's value)
        (
            "kelly_sleeve_fraction",
            "Kelly of the sleeve (horizon)",
            "share of the portfolio",
            False,
            0.20,
        ),
        (
            "kelly_sleeve_fraction_21d",
            "Kelly of the sleeve (21 days)",
            "share of the portfolio",
            False,
            0.20,
        ),  # fmt: skip
        ("kelly_p", "per trade: win probability p", "share of closed trades", True, 0.892),
        ("kelly_avg_win", "per trade: average win", "return on collateral", True, 0.123),
        ("kelly_avg_loss", "per trade: average loss", "loss on collateral", True, 0.087),
        ("kelly_fraction", "per trade: seed's formula", "fraction of capital", False, 0.816),
        ("kelly_growth_optimal", "per trade: growth-optimal", "multiple of capital", False, None),
    )
    items = tuple(item for item in items if item[0] in ds)  # older result files: per trade only
    rows = _cell_rows(ds, grid)
    single = not grid.dims
    fig = _figure(2.4 * len(items), 3.0 if single else max(3.6, 0.34 * len(rows) + 2.2))
    axes = fig.subplots(1, len(items), sharey=True)
    y = np.arange(len(rows))
    for ax, (name, title, xlabel, pct, seed) in zip(axes, items, strict=True):
        value = np.array([float(ds[name].isel(i)) for _, i in rows])
        lo = np.array([float(ds[f"{name}_lo"].isel(i)) for _, i in rows])
        hi = np.array([float(ds[f"{name}_hi"].isel(i)) for _, i in rows])
        err = np.vstack([np.clip(value - lo, 0, None), np.clip(hi - value, 0, None)])
        err = np.where(np.isfinite(err), err, 0.0)
        ax.errorbar(
            value, y, xerr=err, fmt="o", color=BAND_COLOR, capsize=4, label="estimate, 95 % CI"
        )
        if seed is not None:
            ax.axvline(seed, color="#b8241c", linestyle="--", label="the seed's number")
        ax.axvline(0, color="0.5", linewidth=0.8)
        if single:

            def text(x: float, pct: bool = pct) -> str:
                return _pct(x, 1) if pct else f"{x:.3g}"

            interval = f"\n[{text(lo[0])}, {text(hi[0])}]" if np.isfinite(lo[0]) else ""
            ax.annotate(
                f"{text(value[0])}{interval}",
                (value[0], 0),
                xytext=(0, 10),
                textcoords="offset points",
                ha="center",
                fontsize=8,
                bbox={"boxstyle": "round", "fc": "white", "ec": "none", "alpha": 0.85},
            )
        if pct:
            _pct_axis(ax.xaxis, decimals=0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.margins(x=0.3)
    axes[0].set_yticks(y, [r for r, _ in rows])
    axes[0].set_ylim(len(rows) - 0.5, -0.9 if single else -0.6)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8)
    fig.suptitle(
        "How much of the portfolio should go to the sleeve? Its growth-optimal (Kelly) share "
        "(0 = do not allocate; the seed's sleeve is 20 %),\nbeside the per-trade reading "
        "(short puts only), with 95 % confidence intervals" + _suffix(grid.selected_text())
    )
    _save(fig, folder, "kelly", written)


SEVERITY = {
    "allocation": "HIGH",
    "leverage": "HIGH",
    "var": "HIGH",
    "expiry": "HIGH",
    "strike": "MEDIUM",
}  # the others are Greek alerts (docs/STRATEGY.md "Risk limits")


def _limit_label(limit: str) -> str:
    return f"{limit} ({SEVERITY.get(limit, 'alert')})"


def _breaches_run(ds: Any, grid: _Grid, folder: Path, written: list[Path]) -> None:
    limits = [str(x) for x in ds["limit"].values]
    rows = _cell_rows(ds, grid)
    if not grid.dims:
        paths = np.asarray(ds["breach_path_share"].values, dtype=float)
        days = np.asarray(ds["breach_share"].values, dtype=float)
        fig = _figure(9.5, 4.6)
        ax = fig.subplots()
        y = np.arange(len(limits))
        for offset, values, color, label in (
            (-0.2, paths, BAND_COLOR, "paths breaching at least once"),
            (0.2, days, "#d9822b", "path-days in breach"),
        ):
            bars = ax.barh(y + offset, values, height=0.4, color=color, label=label)
            ax.bar_label(bars, labels=[_share_text(v) for v in values], fontsize=7, padding=2)
        ax.set_yticks(y, [_limit_label(x) for x in limits])
        ax.invert_yaxis()
        _pct_axis(ax.xaxis)
        ax.set_xlim(0, 1.12)
        ax.set_xlabel("share")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.grid(axis="x", alpha=0.3)
        fig.suptitle(
            "How often is each risk limit breached? (HIGH limits block entries when enforced)"
            + _suffix(grid.selected_text())
        )
    else:
        values = np.array([ds["breach_path_share"].isel(i).values for _, i in rows], dtype=float)
        fig = _figure(max(8.5, 0.8 * len(limits) + 3), max(3.5, 0.38 * len(rows) + 1.8))
        ax = fig.subplots()
        _heat_table(
            fig,
            ax,
            values,
            [r for r, _ in rows],
            [_limit_label(x) for x in limits],
            _share_text,
            "Oranges",
            "share of paths",
            vmin=0.0,
            vmax=1.0,
        )
        fig.suptitle(
            "How often is each risk limit breached? Share of paths breaching at least once"
            + _suffix(grid.selected_text())
        )
    _save(fig, folder, "breaches", written)


GRID_METRICS = (
    ("win_rate_trade", "win rate (closed trades)", "pct", "RdYlGn"),
    ("annual_return_median", "median annual return", "pct", "RdYlGn"),
    ("prob_ruin", "probability of ruin", "pct", "Reds"),
)


def _grid_heatmaps(ds: Any, grid: _Grid, folder: Path, written: list[Path]) -> None:
    d0, d1 = grid.dims[:2]
    fixed = {d: ds.sizes[d] // 2 for d in grid.dims[2:]}
    fig = _figure(15.5, max(4.2, 0.55 * ds.sizes[d0] + 2.6))
    axes = fig.subplots(1, len(GRID_METRICS))
    for ax, (name, title, _, cmap) in zip(axes, GRID_METRICS, strict=True):
        values = np.asarray(ds[name].isel(fixed).transpose(d0, d1).values, dtype=float)
        _heat_table(
            fig,
            ax,
            values,
            [_value_text(v) for v in ds[d0].values],
            [_value_text(v) for v in ds[d1].values],
            percent,
            cmap,
            title,
            center=name == "annual_return_median",
            vmin=0.0 if name != "annual_return_median" else None,
            vmax=0.01 if name == "prob_ruin" else None,
        )
        ax.set_xlabel(_axis_title(ds, d1))
        ax.set_ylabel(_axis_title(ds, d0))
        ax.set_title(title)
    fig.suptitle(
        f"How do the win rate, the median return and ruin change over {d0} x {d1}?"
        + _suffix(grid.slice_text())
    )
    _save(fig, folder, "grid_heatmaps", written)


def _grid_lines(ds: Any, grid: _Grid, folder: Path, written: list[Path]) -> None:
    (dim,) = grid.dims
    x = ds[dim].values
    numeric = np.issubdtype(np.asarray(x).dtype, np.number) and not np.issubdtype(
        np.asarray(x).dtype, np.bool_
    )
    positions = np.asarray(x, dtype=float) if numeric else np.arange(len(x))
    fig = _figure(14, 4.2)
    axes = fig.subplots(1, len(GRID_METRICS))
    for ax, (name, title, _, _) in zip(axes, GRID_METRICS, strict=True):
        value = np.asarray(ds[name].values, dtype=float)
        ax.plot(positions, value, marker="o", color=BAND_COLOR, label="estimate")
        lo_name = f"{name}_lo" if f"{name}_lo" in ds else None
        if lo_name:
            lo = np.asarray(ds[lo_name].values, dtype=float)
            hi = np.asarray(ds[f"{name}_hi"].values, dtype=float)
            ax.fill_between(positions, lo, hi, color=BAND_COLOR, alpha=0.2, label="95 % CI")
        if not numeric:
            ax.set_xticks(positions, [_value_text(v) for v in x])
        _pct_axis(ax.yaxis)
        ax.set_xlabel(_axis_title(ds, dim))
        ax.set_ylabel("fraction")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"How do the win rate, the median return and ruin change along {dim}?"
        + _suffix(grid.selected_text())
    )
    _save(fig, folder, "grid_lines", written)


def _per_path(ds: Any, name: str) -> bool:
    """Whether the result holds `name` for every path (`--per-path`)."""
    return name in ds and "path" in ds[name].dims


def _run_figures(ds: Any, folder: Path, selected: dict[str, Any] | None = None) -> list[Path]:
    written: list[Path] = []
    grid = _Grid(ds, selected)
    _fan(ds, grid, folder, written)
    if int(ds["paths"].max()) > 1:  # one path (a replay) has no distribution to draw
        _run_distributions(ds, grid, folder, written)
        if _per_path(ds, "underlying_return") and _per_path(ds, "total_return"):
            _payoff(ds, grid, folder, written)
    _close_reasons(ds, grid, folder, written)
    _attribution(ds, grid, folder, written)
    _kelly(ds, grid, folder, written)
    _breaches_run(ds, grid, folder, written)
    if len(grid.dims) >= 2:
        _grid_heatmaps(ds, grid, folder, written)
    elif len(grid.dims) == 1:
        _grid_lines(ds, grid, folder, written)
    return written


def _run_distributions(ds: Any, grid: Any, folder: Path, written: list[Path]) -> None:
    _distribution(
        ds,
        grid,
        folder,
        written,
        name="total_return",
        file="return_distribution",
        title="How much does a path make or lose over the horizon? Horizon return (P&L over "
        "initial sleeve equity)",
        xlabel="horizon return (%)",
        markers=_return_markers(ds),
    )
    _distribution(
        ds,
        grid,
        folder,
        written,
        name="max_drawdown",
        file="drawdown_distribution",
        title="How deep does a path fall below its peak? Maximum drawdown of each path",
        xlabel="maximum drawdown (%)",
        markers=_drawdown_markers(ds),
    )


# --------------------------------------------------------------------------- stress results


def _stress_names(ds: Any) -> list[str]:
    return [str(s).replace("_", " ") for s in ds["stress"].values]


def _paired_bars(
    ax: Any,
    ds: Any,
    name: str,
    *,
    fmt: Callable[[float], str] | None = None,
    extra: dict | None = None,
) -> None:
    """Horizontal bars per stress, limits on and off side by side."""
    names = _stress_names(ds)
    y = np.arange(len(names))
    for k, enforce in enumerate(ds["enforce_limits"].values):
        data = ds[name].sel(enforce_limits=enforce, **(extra or {}))
        values = np.asarray(data.values, dtype=float)
        bars = ax.barh(
            y + (k - 0.5) * 0.4,
            np.nan_to_num(values),
            height=0.4,
            color=ON_OFF_COLORS[bool(enforce)],
            label=f"limits {'enforced' if enforce else 'not enforced'}",
        )
        if fmt is not None:
            ax.bar_label(
                bars,
                labels=[fmt(v) if math.isfinite(v) else "n/a" for v in values],
                fontsize=7,
                padding=2,
            )
    ax.set_yticks(y, names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.grid(axis="x", alpha=0.3)


def _figure_legend(fig: Any, ax: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8)


def _stress_outcomes(ds: Any, folder: Path, written: list[Path]) -> None:
    from matplotlib.ticker import MaxNLocator

    items = (
        ("prob_ruin", "probability of ruin"),
        ("prob_margin_call", "probability of a margin call"),
        ("prob_loss", "probability of a loss over the horizon"),
    )
    fig = _figure(14, 0.45 * ds.sizes["stress"] + 2.2)
    axes = fig.subplots(1, len(items), sharey=True)
    for ax, (name, title) in zip(axes, items, strict=True):
        _paired_bars(ax, ds, name, fmt=percent)
        top = float(np.nanmax(ds[name].values)) if np.isfinite(ds[name].values).any() else 0
        ax.set_xlim(0, max(top * 1.3, 0.02))
        ax.xaxis.set_major_locator(MaxNLocator(5))
        _pct_axis(ax.xaxis, decimals=1 if top < 0.05 else 0)
        ax.set_xlabel("share of paths")
        ax.set_title(title)
    _figure_legend(fig, axes[0])
    fig.suptitle(
        "How likely are ruin, a margin call and a loss under each stress? "
        f"({ds.attrs.get('paths')} paths, {_horizon(ds)})"
    )
    _save(fig, folder, "stress_outcomes", written)


def _horizon(ds: Any) -> str:
    return f"{int(ds.attrs.get('n_steps', ds.sizes['day'] - 1))}-trading-day horizon"


def _stress_returns(ds: Any, folder: Path, written: list[Path]) -> None:
    """Quantile bars of the horizon return on a log axis of the wealth multiple `1 + r`, so
    that losses (what VaR and CVaR measure) are not squeezed by the upside tail."""
    from matplotlib.ticker import FixedLocator, NullLocator

    names = _stress_names(ds)
    q = list(np.round(ds["quantile"].values, 6))
    floor = 0.005  # a -99.5 % return (or worse: equity at or below zero) is drawn here

    def x(r: Any) -> np.ndarray:
        return np.maximum(1.0 + np.asarray(r, dtype=float), floor)

    fig = _figure(11, 0.5 * len(names) + 2.6)
    ax = fig.subplots()
    y = np.arange(len(names))
    handles = []
    for k, enforce in enumerate(ds["enforce_limits"].values):
        color = ON_OFF_COLORS[bool(enforce)]
        offset = (k - 0.5) * 0.36
        quant = ds["total_return_quantile"].sel(enforce_limits=enforce).values
        rows = y + offset
        for lo, hi, width, alpha in (
            (0.01, 0.99, 1, 0.7),
            (0.05, 0.95, 3, 0.7),
            (0.25, 0.75, 8, 1),
        ):
            line = ax.hlines(
                rows,
                x(quant[:, q.index(lo)]),
                x(quant[:, q.index(hi)]),
                color=color,
                linewidth=width,
                alpha=alpha,
            )
        line.set_label(f"limits {'enforced' if enforce else 'not enforced'}")
        handles.insert(k, line)
        ax.plot(x(quant[:, q.index(0.5)]), rows, "|", color="white", markersize=8, mew=2)
        for name, marker, label in (("var_99", "x", "VaR 99 %"), ("cvar_99", "v", "CVaR 99 %")):
            (mark,) = ax.plot(
                x(-ds[name].sel(enforce_limits=enforce).values),
                rows,
                marker,
                color="#b8241c",
                markersize=6,
                linestyle="none",
                label=label,
            )
            if k == 0:
                handles.append(mark)
    ax.axvline(1.0, color="0.3", linewidth=1)
    ax.set_xscale("log")
    ticks = [r for r in (-0.99, -0.9, -0.75, -0.5, 0.0, 1.0, 3.0, 9.0, 29.0, 99.0)]
    lo, hi = ax.get_xlim()
    ticks = [r for r in ticks if lo <= 1 + r <= hi]
    ax.xaxis.set_major_locator(FixedLocator([1 + r for r in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks([1 + r for r in ticks], [f"{r:+.0%}".replace("+0%", "0%") for r in ticks])
    ax.set_yticks(y, names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlabel(
        "horizon return (P&L over initial sleeve equity; log scale of 1 + return)\n"
        "bars: thick 25–75 %, medium 5–95 %, thin 1–99 % of paths; white tick: median"
    )
    ax.grid(axis="x", alpha=0.3)
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8)
    ax.set_title(
        "How much does a path make or lose under each stress? Horizon-return quantiles, VaR "
        f"and CVaR 99 % ({_horizon(ds)})"
    )
    _save(fig, folder, "stress_returns", written)


def _stress_equity(ds: Any, folder: Path, written: list[Path]) -> None:
    from matplotlib import colormaps

    q = list(np.round(ds["quantile"].values, 6))
    names = list(ds["stress"].values)
    cmap = colormaps["tab10"]
    fig = _figure(13, 4.8)
    axes = fig.subplots(1, ds.sizes["enforce_limits"], sharey=True)
    days = ds["day"].values
    for ax, enforce in zip(np.atleast_1d(axes), ds["enforce_limits"].values, strict=True):
        for k, name in enumerate(names):
            median = (
                ds["equity_quantile"].sel(stress=name, enforce_limits=enforce).values[q.index(0.5)]
            )
            style = (
                dict(color="black", linewidth=2.2)
                if name == "none"
                else dict(color=cmap(k % 10), linewidth=1.4)
            )
            ax.plot(days, median, label=str(name).replace("_", " "), **style)
        shock_days = sorted({int(d) for d in ds["shock_day"].values if int(d) >= 0})
        for d in shock_days:
            ax.axvline(d, color="0.5", linestyle=":", linewidth=1)
        ax.axhline(
            float(ds["initial_equity"].isel(stress=0, enforce_limits=0)),
            color="0.3",
            linestyle="--",
            linewidth=1,
        )
        _usd_axis(ax.yaxis)
        ax.set_xlabel("trading day (dotted: shock days)")
        ax.set_title(f"limits {'enforced' if enforce else 'not enforced'}")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("median sleeve equity (USD)")
    np.atleast_1d(axes)[-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    n_sample = min(200, int(ds.attrs.get("paths", 200)))
    fig.suptitle(
        "How does the sleeve's equity move under each stress? The median daily equity (over "
        f"the first {n_sample} paths; dashed: initial equity)"
    )
    _save(fig, folder, "stress_equity", written)


def _stress_stops(ds: Any, folder: Path, written: list[Path]) -> None:
    fig = _figure(13, 0.45 * ds.sizes["stress"] + 2.4)
    axes = fig.subplots(1, 3, sharey=True)
    _paired_bars(axes[0], ds, "stop_losses_per_path", fmt=lambda v: f"{v:.2f}")
    axes[0].set_xlabel("stop-loss closes per path (count)")
    axes[0].set_title("stop-losses fired")
    axes[0].margins(x=0.2)
    _paired_bars(axes[1], ds, "stop_loss_saved_mean", fmt=_usd)
    axes[1].axvline(0, color="0.3", linewidth=1)
    _usd_axis(axes[1].xaxis)
    axes[1].set_xlabel("USD per path (> 0: the stops saved money)")
    axes[1].set_title("final equity with stops minus without")
    axes[1].margins(x=0.3)
    _paired_bars(axes[2], ds, "equity_vs_baseline_mean", fmt=_usd)
    axes[2].axvline(0, color="0.3", linewidth=1)
    _usd_axis(axes[2].xaxis)
    axes[2].set_xlabel("USD per path")
    axes[2].set_title("final equity vs. the same path unstressed")
    axes[2].margins(x=0.3)
    _figure_legend(fig, axes[0])
    fig.suptitle(
        "Do the stop-losses save money under each stress? Stops fired, what they saved, and "
        "each stress's cost (means over paths)"
    )
    _save(fig, folder, "stress_stops", written)


def _stress_shock(ds: Any, folder: Path, written: list[Path]) -> None:
    """The shock day's loss, the paths that stopped trading after it, the horizon vs cash."""
    if "shock_day_return_mean" not in ds:  # a result written before these variables
        return
    fig = _figure(14, 0.45 * ds.sizes["stress"] + 2.4)
    axes = fig.subplots(1, 3, sharey=True)
    _paired_bars(axes[0], ds, "shock_day_return_mean", fmt=lambda v: percent(v, sign=True))
    axes[0].axvline(0, color="0.3", linewidth=1)
    _pct_axis(axes[0].xaxis)
    axes[0].set_xlabel("mean over paths of (E_d - E_{d-1}) / E_{d-1}")
    axes[0].set_title("sleeve's mark-to-market return on the shock day")
    axes[0].margins(x=0.3)
    _paired_bars(axes[1], ds, "prob_stopped_trading", fmt=_share_text)
    axes[1].set_xlim(0, 1.2)
    _pct_axis(axes[1].xaxis)
    axes[1].set_xlabel("share of paths with no new tranche from the shock day on")
    axes[1].set_title("stopped trading after the shock")
    _paired_bars(axes[2], ds, "excess_over_cash_mean", fmt=lambda v: percent(v, sign=True))
    axes[2].axvline(0, color="0.3", linewidth=1)
    _pct_axis(axes[2].xaxis)
    cash = float(ds["cash_return"].max())
    axes[2].set_xlabel(f"mean horizon return minus cash at r ({percent(cash)})")
    axes[2].set_title("against holding the sleeve in cash")
    axes[2].margins(x=0.3)
    _figure_legend(fig, axes[0])
    fig.suptitle(
        "What does each stress do to the sleeve? The shock day, trading after it, the horizon "
        "vs. cash"
    )
    _save(fig, folder, "stress_shock", written)


def _stress_attribution(ds: Any, folder: Path, written: list[Path]) -> None:
    names = _stress_names(ds)
    buckets = [str(b).replace("_", " ") for b in ds["bucket"].values]
    fig = _figure(15, 0.42 * len(names) + 2.6)
    axes = fig.subplots(1, ds.sizes["enforce_limits"], sharey=True)
    for ax, enforce in zip(np.atleast_1d(axes), ds["enforce_limits"].values, strict=True):
        values = np.asarray(ds["attribution_mean"].sel(enforce_limits=enforce).values, dtype=float)
        _heat_table(
            fig, ax, values, names, buckets, _usd, "RdYlGn", "USD per path", kind="usd", center=True
        )
        ax.set_title(f"limits {'enforced' if enforce else 'not enforced'}")
    fig.suptitle("Where does the P&L come from under each stress? Mean per path (USD)")
    _save(fig, folder, "stress_attribution", written)


def _breaches_overview(ds: Any, folder: Path, written: list[Path]) -> None:
    names = _stress_names(ds)
    limits = [str(x) for x in ds["limit"].values]
    fig = _figure(15, 0.42 * len(names) + 2.6)
    axes = fig.subplots(1, ds.sizes["enforce_limits"], sharey=True)
    for ax, enforce in zip(np.atleast_1d(axes), ds["enforce_limits"].values, strict=True):
        values = np.asarray(ds["breach_share"].sel(enforce_limits=enforce).values, dtype=float)
        _heat_table(
            fig,
            ax,
            values,
            names,
            [_limit_label(x) for x in limits],
            _share_text,
            "Oranges",
            "share of path-days",
            vmin=0.0,
            vmax=1.0,
        )
        ax.set_title(f"limits {'enforced' if enforce else 'not enforced'}")
        ax.set_xlabel("risk limit")
    fig.suptitle(
        "How often is each risk limit breached under each stress? Share of path-days in breach"
    )
    _save(fig, folder, "breaches_overview", written)


def _breach_limit(ds: Any, limit: str, folder: Path, written: list[Path]) -> None:
    from matplotlib.ticker import MaxNLocator

    fig = _figure(14, 0.45 * ds.sizes["stress"] + 2.6)
    axes = fig.subplots(1, 3, sharey=True)
    extra = {"limit": limit}
    _paired_bars(axes[0], ds, "breach_path_share", extra=extra)
    days = {e: ds["breach_share"].sel(limit=limit, enforce_limits=e).values for e in (True, False)}
    for container, enforce in zip(axes[0].containers, ds["enforce_limits"].values, strict=True):
        paths = [float(b.get_width()) for b in container]
        labels = [
            f"{_share_text(p)} ({_share_text(d)} of days)"
            for p, d in zip(paths, days[bool(enforce)], strict=True)
        ]
        axes[0].bar_label(container, labels=labels, fontsize=7, padding=2)
    _pct_axis(axes[0].xaxis, decimals=0)
    axes[0].set_xlim(0, 1.45)
    axes[0].set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    axes[0].set_xlabel("share of paths (of path-days)")
    axes[0].set_title("paths breaching at least once")
    _paired_bars(
        axes[1],
        ds,
        "days_to_first_breach_after_shock_median",
        fmt=lambda v: f"{v:.0f}",
        extra=extra,
    )
    axes[1].set_xlabel("trading days after the shock (median)")
    axes[1].set_title("first breach after the shock")
    after = ds["days_to_first_breach_after_shock_median"].sel(limit=limit).values
    longest = float(np.nanmax(after)) if np.isfinite(after).any() else 0.0
    axes[1].set_xlim(0, max(1.2 * longest, 10.0))
    _paired_bars(axes[2], ds, "loss_given_breach", fmt=_share_text, extra=extra)
    _pct_axis(axes[2].xaxis, decimals=0)
    axes[2].xaxis.set_major_locator(MaxNLocator(5))
    axes[2].axvline(0, color="0.3", linewidth=1)
    axes[2].set_xlabel("mean loss of breaching paths (% of initial; < 0: gain)")
    axes[2].set_title("loss given breach")
    axes[2].margins(x=0.3)
    if not np.isfinite(ds["loss_given_breach"].sel(limit=limit).values).any():
        axes[2].set_xlim(-1.0, 1.0)
        axes[2].text(
            0.5,
            0.5,
            "no path breached this limit",
            transform=axes[2].transAxes,
            ha="center",
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"},
        )
    _figure_legend(fig, axes[0])
    fig.suptitle(
        f"How does each stress breach the limit '{_limit_label(limit)}'? "
        "('n/a': no path's first breach came on or after the shock)"
    )
    _save(fig, folder, f"breach_{limit}", written)


def _stress_figures(ds: Any, folder: Path) -> list[Path]:
    written: list[Path] = []
    _stress_outcomes(ds, folder, written)
    _stress_returns(ds, folder, written)
    _stress_equity(ds, folder, written)
    _stress_shock(ds, folder, written)
    _stress_stops(ds, folder, written)
    _stress_attribution(ds, folder, written)
    _breaches_overview(ds, folder, written)
    for limit in ds["limit"].values:
        _breach_limit(ds, str(limit), folder, written)
    return written


# --------------------------------------------------------------------------- explain results

GAIN_COLOR = "#2e8b57"  # the change raises the metric
LOSS_COLOR = "#c0392b"  # the change lowers it


def _text_limits(
    tips: np.ndarray, right: np.ndarray, chars: list[int], width_in: float, fontsize: float
) -> tuple[float, float]:
    """x limits that hold every bar, whisker and the text written beyond each whisker tip.

    Args:
      tips: `(n,)` where each text starts (data units): the whisker's end on its side.
      right: `(n,)` bool, the text runs to the right of its tip (else to the left).
      chars: the length of each text in characters.
      width_in: the axes' width in inches (approximate).
      fontsize: the texts' size in points.
    """
    char_in = 0.62 * fontsize / 72.0  # inches per character, a little wide (safe)
    need = np.array([(c + 2) * char_in for c in chars])  # inches from the tip, with the gap
    lo, hi = float(min(np.nanmin(tips), 0.0)), float(max(np.nanmax(tips), 0.0))
    if hi - lo <= 0:
        hi, lo = 1.0, -0.1
    for _ in range(20):  # the text's data width depends on the limits: iterate to a fixed point
        per_in = (hi - lo) / width_in
        ends = np.where(right, tips + need * per_in, tips - need * per_in)
        new_lo = min(float(np.nanmin(ends)), lo)
        new_hi = max(float(np.nanmax(ends)), hi)
        if new_lo == lo and new_hi == hi:
            break
        lo, hi = new_lo, new_hi
    return lo, hi


def _explain_bars(
    ax: Any,
    ds: Any,
    name: str,
    scale: float,
    fmt: Callable[[float], str],
    *,
    width_in: float,
    higher_is_better: bool = True,
) -> None:
    """Horizontal bars of `<name>_delta` per change (in the file's order, first on top) with
    the paired interval as error bars and `delta [lo, hi]` written beyond each whisker; a
    change that moved no path is marked as such."""
    labels = [str(c) for c in ds["change"].values]
    y = np.arange(len(labels))
    delta = np.asarray(ds[f"{name}_delta"].values, dtype=float) * scale
    lo = np.asarray(ds[f"{name}_delta_lo"].values, dtype=float) * scale
    hi = np.asarray(ds[f"{name}_delta_hi"].values, dtype=float) * scale
    moved = np.asarray(ds["paths_changed"].values) > 0
    good = delta > 0 if higher_is_better else delta < 0
    colors = [GAIN_COLOR if g else LOSS_COLOR for g in good]
    ax.barh(y, np.nan_to_num(delta), height=0.6, color=colors, alpha=0.85)
    err = np.vstack([np.nan_to_num(delta - lo), np.nan_to_num(hi - delta)])
    ax.errorbar(
        np.nan_to_num(delta), y, xerr=np.clip(err, 0, None), fmt="none", ecolor="0.15", capsize=3
    )
    ax.axvline(0, color="0.3", linewidth=1)
    texts = [
        f"{fmt(d)} [{fmt(a)}, {fmt(b)}]" if m else "0: no path changed"
        for d, a, b, m in zip(delta, lo, hi, moved, strict=True)
    ]
    right = ~(np.nan_to_num(delta) < 0)
    tips = np.where(
        right,
        np.nanmax(np.vstack([hi, delta, np.zeros_like(delta)]), axis=0),
        np.nanmin(np.vstack([lo, delta, np.zeros_like(delta)]), axis=0),
    )
    fontsize = 8.0
    x_lo, x_hi = _text_limits(tips, right, [len(t) for t in texts], width_in, fontsize)
    ax.set_xlim(x_lo, x_hi)
    gap = 0.01 * (x_hi - x_lo)
    for yi, tip, r, text, m in zip(y, tips, right, texts, moved, strict=True):
        ax.text(
            tip + (gap if r else -gap),
            yi,
            text,
            va="center",
            ha="left" if r else "right",
            fontsize=fontsize,
            color="0.15" if m else "0.45",
        )
    ax.set_yticks(y, labels, fontfamily="monospace", fontsize=9)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.grid(axis="x", alpha=0.3)


def _explain_tornado(ds: Any, folder: Path, written: list[Path]) -> None:
    n = ds.sizes["change"]
    fig = _figure(13, 0.42 * max(n, 2) + 2.2)
    ax = fig.subplots()
    _explain_bars(ax, ds, "annual_return_mean", 100.0, lambda v: f"{v:+.1f}", width_in=9.5)
    base = float(ds["base_annual_return_mean"].values)
    ax.set_xlabel(
        "change of the mean annual return, changed − scenario (percentage points); "
        "bars: estimate, whiskers: paired 95 % interval"
    )
    ax.set_title(
        f"What does each rule or assumption cost? Mean annual return {percent(base, sign=True)} as written "
        f"({int(ds['paths'].values):,} paths, every change on the same paths)\n"
        "green: the change raises the return (the rule or assumption costs return); "
        "red: it lowers it (the rule pays for itself)",
        fontsize=10,
    )
    _save(fig, folder, "explain_tornado", written)


def _explain_metrics(ds: Any, folder: Path, written: list[Path]) -> None:
    items = (
        ("prob_loss", 100.0, lambda v: f"{v:+.1f}", False, "P(loss), percentage points"),
        (
            "max_drawdown_median",
            100.0,
            lambda v: f"{v:+.1f}",
            True,
            "median max drawdown, percentage points (> 0: shallower)",
        ),
        (
            "kelly_sleeve_fraction",
            1.0,
            lambda v: f"{v:+.2f}",
            True,
            "sleeve Kelly f*, share of the portfolio",
        ),
    )
    n = ds.sizes["change"]
    fig = _figure(18, 0.42 * max(n, 2) + 2.2)
    axes = fig.subplots(1, len(items), sharey=True)
    for ax, (name, scale, fmt, higher, xlabel) in zip(axes, items, strict=True):
        _explain_bars(ax, ds, name, scale, fmt, width_in=4.4, higher_is_better=higher)
        base = float(ds[f"base_{name}"].values) * scale
        ax.set_xlabel(xlabel)
        ax.set_title(f"as written: {fmt(base).lstrip('+')}", fontsize=9)
    fig.suptitle(
        "What does each change do to the risk and the Kelly size? Changed − scenario on the "
        "same paths, with paired 95 % intervals (green: better, red: worse)"
    )
    _save(fig, folder, "explain_metrics", written)


def _explain_figures(ds: Any, folder: Path) -> list[Path]:
    written: list[Path] = []
    _explain_tornado(ds, folder, written)
    _explain_metrics(ds, folder, written)
    return written


# --------------------------------------------------------------------------- sensitivity results


def _sensitivity_order(ds: Any, metric: str) -> list[int]:
    name = "mu_star" if ds.attrs.get("method") == "morris" else "ST"
    values = np.asarray(ds[name].sel(metric=metric).values, dtype=float)
    return sorted(range(len(values)), key=lambda i: (math.isnan(values[i]), -values[i]))


def _morris_bars(ax: Any, sel: Any, order: list[int], within: np.ndarray, y: np.ndarray) -> None:
    """mu* bars with their 95 % whiskers (coloured by the sign of mu), sigma as diamonds."""
    mu_star = np.asarray(sel["mu_star"].values, dtype=float)[order]
    conf = np.asarray(sel["mu_star_conf"].values, dtype=float)[order]
    mu = np.asarray(sel["mu"].values, dtype=float)[order]
    sigma = np.asarray(sel["sigma"].values, dtype=float)[order]
    colors = [
        "0.7" if w else (GAIN_COLOR if m >= 0 else LOSS_COLOR)
        for w, m in zip(within, mu, strict=True)
    ]
    ax.barh(y, np.nan_to_num(mu_star), height=0.6, color=colors, alpha=0.85)
    ax.errorbar(
        np.nan_to_num(mu_star),
        y,
        xerr=np.nan_to_num(conf),
        fmt="none",
        ecolor="0.15",
        capsize=3,
    )
    ax.plot(sigma, y, "D", color="0.2", ms=4, label="sigma")
    ax.set_xlabel("mu*: the metric's change over the key's whole range")


def _sobol_bars(ax: Any, sel: Any, order: list[int], within: np.ndarray, y: np.ndarray) -> None:
    """S1 and ST bars side by side with their 95 % whiskers (ST grey within the noise)."""
    s1 = np.asarray(sel["S1"].values, dtype=float)[order]
    s1c = np.asarray(sel["S1_conf"].values, dtype=float)[order]
    st = np.asarray(sel["ST"].values, dtype=float)[order]
    stc = np.asarray(sel["ST_conf"].values, dtype=float)[order]
    ax.barh(y - 0.18, np.nan_to_num(s1), height=0.34, color=BAND_COLOR, label="S1")
    ax.barh(
        y + 0.18,
        np.nan_to_num(st),
        height=0.34,
        color=["0.7" if w else "#d9822b" for w in within],
        label="ST",
    )
    ax.errorbar(
        np.nan_to_num(s1),
        y - 0.18,
        xerr=np.nan_to_num(s1c),
        fmt="none",
        ecolor="0.15",
        capsize=2,
    )
    ax.errorbar(
        np.nan_to_num(st),
        y + 0.18,
        xerr=np.nan_to_num(stc),
        fmt="none",
        ecolor="0.15",
        capsize=2,
    )
    ax.set_xlabel("share of the metric's variance over the sets")


def _sensitivity_panel(ax: Any, ds: Any, metric: str, morris: bool) -> None:
    """One metric's panel: each key's bars (largest on top), the noise floor, the title."""
    sel = ds.sel(metric=metric)
    order = _sensitivity_order(ds, metric)
    labels = [str(ds["key"].values[i]) for i in order]
    y = np.arange(len(order))
    floor = float(sel["noise_floor"].values)
    within = np.asarray(sel["within_noise"].values)[order].astype(bool)
    (_morris_bars if morris else _sobol_bars)(ax, sel, order, within, y)
    if math.isfinite(floor) and floor > 0:
        ax.axvline(floor, color="0.3", linestyle="--", linewidth=1, label="noise floor")
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_yticks(y, labels, fontfamily="monospace", fontsize=8)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.grid(axis="x", alpha=0.3)
    share = float(sel["noise_share"].values)
    units = str(sel["metric_units"].values)
    ax.set_title(
        f"{metric} ({units})\nnoise share mean(se²)/Var = "
        f"{'–' if math.isnan(share) else f'{100 * share:.2g} %'}",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower right")


def _sensitivity_indices(ds: Any, folder: Path, written: list[Path]) -> None:
    """Per metric, a panel of horizontal bars: each key's index, largest on top."""
    morris = ds.attrs.get("method") == "morris"
    metrics = [str(m) for m in ds["metric"].values]
    n_keys = ds.sizes["key"]
    fig = _figure(5.2 * len(metrics), 0.42 * n_keys + 2.4)
    axes = np.atleast_1d(fig.subplots(1, len(metrics), squeeze=False)[0])
    for ax, metric in zip(axes, metrics, strict=True):
        _sensitivity_panel(ax, ds, metric, morris)
    how = (
        f"Morris, {ds.attrs.get('samples')} trajectories; bars: mu* ± 95 % (green: the metric "
        "rises with the key, red: it falls, grey: within Monte Carlo noise); diamonds: sigma"
        if morris
        else f"Sobol', N = {ds.attrs.get('samples')}; S1 and ST ± 95 % (grey ST: within "
        "Monte Carlo noise)"
    )
    fig.suptitle(
        "Which assumptions decide the result? "
        f"{ds.attrs.get('title', 'sensitivity')}: {ds.attrs.get('evaluations')} parameter sets, "
        f"{int(ds.attrs.get('paths', 0)):,} paths each, the same paths for every set\n{how}",
        fontsize=10,
    )
    _save(fig, folder, "sensitivity_indices", written)


def _sensitivity_scatter(ds: Any, folder: Path, written: list[Path]) -> None:
    """Each metric (rows) against each sampled key (columns, by the first metric's ranking)."""
    metrics = [str(m) for m in ds["metric"].values]
    order = _sensitivity_order(ds, metrics[0])
    n_rows, n_cols = len(metrics), len(order)
    fig = _figure(2.3 * n_cols + 0.8, 2.1 * n_rows + 0.9)
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharey="row")
    for r, metric in enumerate(metrics):
        y = np.asarray(ds["metric_value"].sel(metric=metric).values, dtype=float)
        se = np.asarray(ds["metric_se"].sel(metric=metric).values, dtype=float)
        for c, k in enumerate(order):
            ax = axes[r][c]
            x = np.asarray(ds["input_value"].isel(key=k).values, dtype=float)
            if np.isfinite(se).any():
                ax.errorbar(x, y, yerr=np.nan_to_num(se), fmt="none", ecolor="0.75", lw=0.6)
            ax.plot(x, y, "o", ms=2.5, color=BAND_COLOR, alpha=0.7)
            if str(ds["key_law"].values[k]) == "log-uniform":
                from matplotlib.ticker import NullFormatter

                ax.set_xscale("log")
                lo, hi = float(ds["key_low"].values[k]), float(ds["key_high"].values[k])
                ticks = np.geomspace(lo, hi, 4)
                ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if r == n_rows - 1:
                ax.set_xlabel(f"{ds['key'].values[k]}\n({ds['key_units'].values[k]})", fontsize=8)
            if c == 0:
                ax.set_ylabel(
                    f"{metric}\n({ds['metric_units'].sel(metric=metric).values})", fontsize=8
                )
    fig.suptitle(
        "How does each metric move with each sampled key? Every parameter set (whiskers: the "
        f"run's standard error)\nkeys by their effect on {metrics[0]}, largest on the left",
        fontsize=10,
    )
    _save(fig, folder, "sensitivity_scatter", written)


def _sensitivity_figures(ds: Any, folder: Path) -> list[Path]:
    written: list[Path] = []
    _sensitivity_indices(ds, folder, written)
    _sensitivity_scatter(ds, folder, written)
    return written


def _sensitivity_table(ds: Any) -> str:
    morris = ds.attrs.get("method") == "morris"
    names = ("mu_star", "sigma") if morris else ("S1", "ST")
    metrics = [str(m) for m in ds["metric"].values]
    head = "<th>key</th><th>range</th>" + "".join(
        f"<th>{html.escape(m)}: {'mu*' if n == 'mu_star' else n}</th>"
        for m in metrics
        for n in names
    )
    rows = []
    for i in _sensitivity_order(ds, metrics[0]):
        law = " (log)" if str(ds["key_law"].values[i]) == "log-uniform" else ""
        cells = (
            f"<td><code>{html.escape(str(ds['key'].values[i]))}</code></td>"
            f"<td>{_fmt(ds['key_low'].values[i], 'num')} – {_fmt(ds['key_high'].values[i], 'num')}{law}</td>"
        )
        for m in metrics:
            sel = ds.isel(key=i).sel(metric=m)
            for n in names:
                text = _fmt(sel[n].values, "num")
                if f"{n}_conf" in ds and text != "–":
                    text += f' <span class="ci">± {_fmt(sel[f"{n}_conf"].values, "num")}</span>'
                if n in ("mu_star", "ST") and int(sel["within_noise"].values):
                    text += ' <span class="ci">(noise)</span>'
                cells += f"<td>{text}</td>"
        rows.append(f"<tr>{cells}</tr>")
    noise = "".join(
        f"<tr><td>{html.escape(m)}</td><td>{_fmt(ds['noise_share'].sel(metric=m).values, 'pct')}</td>"
        f"<td>{_fmt(ds['noise_floor'].sel(metric=m).values, 'num')}</td></tr>"
        for m in metrics
    )
    return (
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "<table><thead><tr><th>metric</th><th>noise share mean(se²)/Var</th>"
        f"<th>noise floor of {'mu*' if morris else 'ST'}</th></tr></thead><tbody>{noise}</tbody></table>"
    )


# --------------------------------------------------------------------------- HTML


RUN_TABLE = (
    ("win_rate_trade", "win rate (trades)", "pct"),
    ("win_rate_path", "win rate (paths)", "pct"),
    ("annual_return_mean", "annual return mean", "pct"),
    ("annual_return_median", "annual return median", "pct"),
    ("sharpe", "Sharpe (median path)", "num"),
    ("max_drawdown_median", "max drawdown median", "pct"),
    ("var_99", "VaR 99 % (horizon return)", "loss"),
    ("cvar_99", "CVaR 99 % (horizon return)", "loss"),
    ("prob_ruin", "P(ruin)", "pct"),
    ("prob_margin_call", "P(margin call)", "pct"),
    ("kelly_sleeve_fraction", "Kelly of the sleeve (share of portfolio)", "num"),
    ("kelly_fraction", "Kelly per trade (seed formula)", "num"),
)
STRESS_TABLE = (
    ("prob_ruin", "P(ruin)", "pct"),
    ("prob_margin_call", "P(margin call)", "pct"),
    ("prob_loss", "P(loss)", "pct"),
    ("total_return_mean", "mean return", "pct"),
    ("excess_over_cash_mean", "vs cash", "pct"),
    ("total_return_vs_baseline_mean", "vs unstressed", "pct"),
    ("shock_day_return_mean", "shock day", "pct"),
    ("prob_stopped_trading", "stopped trading", "pct"),
    ("var_99", "VaR 99 % (return)", "loss"),
    ("cvar_99", "CVaR 99 % (return)", "loss"),
    ("equity_vs_baseline_mean", "vs none (USD)", "usd"),
    ("stop_losses_per_path", "stops / path", "num"),
    ("stop_loss_saved_mean", "stops saved (USD)", "usd"),
)


def _fmt(x: Any, kind: str) -> str:
    x = float(x)
    if not math.isfinite(x):
        return "–"
    if kind == "pct":
        return percent(x)
    if kind == "loss":  # a loss stored as a positive number (VaR, CVaR), shown as a return
        return percent(-x)
    if kind == "usd":
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _with_ci(ds: Any, name: str, index: dict, kind: str) -> str:
    one_path = "paths" in ds and int(ds["paths"].isel(index)) == 1  # a replay: no interval
    if one_path and name == "kelly_sleeve_fraction":  # one horizon return: its 21-day returns
        return _fmt(ds["kelly_sleeve_fraction_21d"].isel(index), kind) + " (21-day returns)"
    text = _fmt(ds[name].isel(index), kind)
    if one_path and text == "–":
        return "n/a"
    if one_path and f"{name}_lo" in ds:
        return text + ' <span class="ci">[n/a: one path]</span>'
    if f"{name}_lo" in ds and text != "–":
        lo, hi = _fmt(ds[f"{name}_lo"].isel(index), kind), _fmt(ds[f"{name}_hi"].isel(index), kind)
        text += f' <span class="ci">[{lo}, {hi}]</span>'
    return text


def _run_table(ds: Any) -> str:
    grid = _Grid(ds)
    if not grid.dims:  # one cell: a row per metric
        rows = "".join(
            f"<tr><td>{html.escape(h)}</td><td>{_with_ci(ds, n, {}, k)}</td></tr>"
            for n, h, k in RUN_TABLE
            if n in ds
        )
        head = "<tr><th>metric</th><th>estimate [95 % CI]</th></tr>"
        return f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>"
    head = "".join(f"<th>{html.escape(d)}</th>" for d in grid.dims)
    head += "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in RUN_TABLE)
    rows = []
    for index in grid.all_cells:
        cells = "".join(
            f"<td>{html.escape(_value_text(ds[d].values[i]))}</td>" for d, i in index.items()
        )
        cells += "".join(
            f"<td>{_with_ci(ds, n, index, k)}</td>" for n, _, k in RUN_TABLE if n in ds
        )
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _stress_table(ds: Any) -> str:
    columns = [c for c in STRESS_TABLE if c[0] in ds]  # older files lack the newer ones
    head = "<th>stress</th><th>limits</th>" + "".join(
        f"<th>{html.escape(h)}</th>" for _, h, _ in columns
    )
    rows = []
    descriptions = ds["stress_description"].values if "stress_description" in ds else None
    for i, name in enumerate(ds["stress"].values):
        for j, enforce in enumerate(ds["enforce_limits"].values):
            index = {"stress": i, "enforce_limits": j}
            title = html.escape(str(descriptions[i])) if descriptions is not None else ""
            label = f'<td title="{title}">{html.escape(str(name))}</td>' if j == 0 else "<td></td>"
            cells = label + f"<td>{'on' if enforce else 'off'}</td>"
            cells += "".join(f"<td>{_with_ci(ds, n, index, k)}</td>" for n, _, k in columns)
            rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


EXPLAIN_TABLE = (
    ("annual_return_mean", "annual return mean"),
    ("prob_loss", "P(loss)"),
    ("max_drawdown_median", "max drawdown median"),
    ("kelly_sleeve_fraction", "sleeve Kelly f*"),
)


def _explain_table(ds: Any) -> str:
    def kind(name: str) -> str:
        return "num" if name == "kelly_sleeve_fraction" else "pct"

    head = "<th>change (TOML override)</th>" + "".join(
        f"<th>{html.escape(h)}</th><th>Δ [95 % CI]</th>" for _, h in EXPLAIN_TABLE
    )
    base = "<td>(the scenario as written)</td>" + "".join(
        f"<td>{_fmt(ds[f'base_{n}'], kind(n))}</td><td></td>" for n, _ in EXPLAIN_TABLE
    )
    rows = [f"<tr>{base}</tr>"]
    for i, label in enumerate(ds["change"].values):
        index = {"change": i}
        title = html.escape(str(ds["change_description"].values[i]))
        cells = f'<td title="{title}"><code>{html.escape(str(label))}</code></td>'
        for n, _ in EXPLAIN_TABLE:
            delta = _fmt(ds[f"{n}_delta"].isel(index), kind(n))
            lo = _fmt(ds[f"{n}_delta_lo"].isel(index), kind(n))
            hi = _fmt(ds[f"{n}_delta_hi"].isel(index), kind(n))
            cells += f"<td>{_fmt(ds[n].isel(index), kind(n))}</td>"
            cells += f'<td>{delta} <span class="ci">[{lo}, {hi}]</span></td>'
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _stress_list(ds: Any) -> str:
    if "stress_description" not in ds:
        return ""
    items = "".join(
        f"<li><b>{html.escape(str(n))}</b>: {html.escape(str(d))} (first shock day {int(s)})</li>"
        for n, d, s in zip(
            ds["stress"].values,
            ds["stress_description"].values,
            ds["shock_day"].values,
            strict=True,
        )
        if str(n) != "none"
    )
    return f"<ul>{items}</ul>"


# --------------------------------------------------------------------------- the page's head


def _scenario_tables(ds: Any) -> dict[str, dict[str, Any]] | None:
    """The run's scenario as TOML tables (every key, overrides applied), or None."""
    import tomllib

    text = str(ds.attrs.get("scenario_resolved") or ds.attrs.get("scenario_text") or "")
    try:
        tables = tomllib.loads(text) if text.strip() else None
    except tomllib.TOMLDecodeError:
        return None
    return tables if tables and "market" in tables else None


def _num(x: Any) -> str:
    return f"{float(x):g}"


def _usd_text(x: Any) -> str:
    x = float(x)
    return f"${x:,.0f}" if abs(x) >= 100 else f"${x:,.2f}"


def _on(tables: dict, table: str, key: str) -> bool:
    return bool(tables.get(table, {}).get(key, False))


_Row = tuple[str, str, tuple[str, ...]]  # (what, value in words, the dotted keys it reads)


def _market_row(m: dict[str, Any]) -> _Row:
    """The spot's model: drift and rate, then its volatility, variance and jump parameters."""
    model = str(m.get("model", "gbm"))
    spot = (
        f"{model.upper() if model == 'gbm' else model.capitalize()}, s0 {_usd_text(m.get('s0'))}, "
        f"drift {percent(m.get('mu'), 0)} a year, rate {percent(m.get('rate'), 1)}"
    )
    keys: tuple[str, ...] = ("market.model", "market.s0", "market.mu", "market.rate")
    if model in ("gbm", "merton"):
        spot += f", realized vol {percent(m.get('sigma'), 0)}"
        keys += ("market.sigma",)
    if model in ("heston", "bates"):
        spot += (
            f", variance v0 {_num(m.get('v0'))} (vol {percent(math.sqrt(m.get('v0')), 0)}) "
            f"reverting to {_num(m.get('theta_v'))} at kappa_v {_num(m.get('kappa_v'))}, "
            f"xi {_num(m.get('xi'))}, rho {_num(m.get('rho'))}"
        )
        keys += ("market.v0", "market.theta_v", "market.kappa_v", "market.xi", "market.rho")
    if model in ("merton", "bates"):
        spot += (
            f"; jumps {_num(m.get('jump_intensity'))} a year, log size mean "
            f"{_num(m.get('jump_mean'))}, std {_num(m.get('jump_std'))}"
        )
        keys += ("market.jump_intensity", "market.jump_mean", "market.jump_std")
    return ("market", spot, keys)


def _iv_row(m: dict[str, Any]) -> _Row:
    """Implied volatility: linked to the stock's variance, or its own log-OU process."""
    model = str(m.get("model", "gbm"))
    linked = m.get("iv_model", "linked" if model in ("heston", "bates") else "independent")
    if linked == "linked":
        iv = (
            f"linked to the stock's vol: IV = sqrt(v) e^z, IV / vol {_num(m.get('vrp_long_run'))} "
            f"in the long run (vrp_kappa {_num(m.get('vrp_kappa'))}, vrp_eta "
            f"{_num(m.get('vrp_eta'))})"
        )
        keys: tuple[str, ...] = ("market.vrp_long_run", "market.vrp_kappa", "market.vrp_eta")
    else:
        iv = (
            f"{percent(m.get('iv0'), 0)} at the start, log-OU to {percent(m.get('iv_long_run'), 0)} "
            f"(kappa {_num(m.get('kappa'))}, eta {_num(m.get('eta'))}, corr. with the spot "
            f"{_num(m.get('iv_spot_corr'))})"
        )
        keys = ("market.iv0", "market.iv_long_run", "market.kappa", "market.eta")
    return ("implied volatility", iv, keys)


def _capital_row(c: dict[str, Any]) -> _Row:
    """The portfolio, the sleeve (a fixed allocation, or Kelly times its multiplier, capped),
    leverage and monthly additions."""
    if c.get("allocation") is not None:
        sleeve = f"fixed {_usd_text(c['allocation'])}"
    else:
        frac = min(
            float(c.get("kelly_multiplier", 0)) * float(c.get("kelly_fraction", 0)),
            float(c.get("max_total_strategy_pct", 0)),
        )
        sleeve = (
            f"{percent(max(frac, 0.0), 0)} of the portfolio = "
            f"{_usd_text(float(c.get('portfolio_value', 0)) * max(frac, 0.0))} "
            f"({_num(c.get('kelly_multiplier'))} x Kelly {_num(c.get('kelly_fraction'))}, "
            f"capped at {percent(c.get('max_total_strategy_pct'), 0)})"
        )
    capital = (
        f"portfolio {_usd_text(c.get('portfolio_value'))}; sleeve {sleeve}; max leverage "
        f"{_num(c.get('max_leverage'))}"
    )
    if float(c.get("monthly_addition", 0) or 0):
        capital += f"; {_usd_text(c['monthly_addition'])} added every 21 trading days"
    return ("capital", capital, ("capital.kelly_fraction", "capital.portfolio_value"))


def _ladder_row(st: dict[str, Any]) -> _Row:
    """The put ladder: strikes and weights, expiry, entry schedule and signal threshold."""
    strikes = ", ".join(
        f"{_usd_text(k)} ({percent(w, 0)})"
        for k, w in zip(st.get("strikes", []), st.get("weights", []), strict=False)
    )
    ladder = (
        f"puts at {strikes} ({st.get('strike_mode', 'fixed')} strikes), "
        f"{_num(st.get('dte_calendar'))} calendar days to expiry, a tranche every "
        f"{st.get('entry_every_days')} trading days when at least "
        f"{st.get('signal_min_conditions')} of the 8 signal conditions hold"
    )
    return ("ladder", ladder, ("strategy.strikes", "strategy.dte_calendar"))


def _fills_row(m: dict[str, Any], ex: dict[str, Any]) -> _Row:
    """The fill rule, the spread and the commission."""
    fills = {
        "bid_ask": "sell at the bid, buy at the ask",
        "mid": "at mid",
        "seed": f"the seed's mid ± {_usd_text(ex.get('price_improvement_target', 0))}",
    }.get(str(ex.get("fill")), str(ex.get("fill")))
    return (
        "fills",
        f"{fills}; spread {_usd_text(m.get('bid_ask_spread'))} a share, commission "
        f"{_usd_text(ex.get('commission'))} a contract",
        ("execution.fill", "execution.commission", "market.bid_ask_spread"),
    )


def _exits_row(tables: dict[str, dict[str, Any]]) -> _Row:
    """The per-put exits that are on, with their thresholds, then those that are off."""
    xs = tables.get("exits", {})
    exits = [
        (
            "profit_take",
            f"profit-take once {percent(xs.get('profit_take_pct'), 0)} of the premium is captured",
        ),
        (
            "stop_loss",
            f"stop-loss when the mid exceeds (1 + {_num(xs.get('stop_loss_multiple'))}) x the "
            "premium",
        ),
        ("time_exit", f"time exit under {_num(xs.get('time_exit_dte'))} days to expiry"),
        ("iv_exit", f"IV exit under the {_num(xs.get('iv_exit_percentile'))}th percentile"),
        (
            "liquidity_exit",
            f"liquidity exit above a {_usd_text(xs.get('liquidity_exit_spread'))} spread",
        ),
        ("thesis_exit", "thesis exit"),
    ]
    on = [text for key, text in exits if _on(tables, "exits", key)]
    off = [key.replace("_", " ") for key, _ in exits if not _on(tables, "exits", key)]
    return (
        "exits",
        "; ".join(on) + (f"; off: {', '.join(off)}" if off else ""),
        tuple(f"exits.{k}" for k, _ in exits),
    )


def _assignment_row(tables: dict[str, dict[str, Any]]) -> _Row:
    """Early exercise and covered calls, each on or off."""
    assigned = [
        "early exercise" if _on(tables, "assignment", "early_assignment") else "no early exercise",
        "covered calls on assigned shares"
        if _on(tables, "assignment", "covered_calls")
        else "no covered calls",
    ]
    return ("assignment", ", ".join(assigned), ("assignment.early_assignment",))


def _hedges_row(tables: dict[str, dict[str, Any]]) -> _Row:
    """The hedge calls' budget, expiry and strikes, or "off"."""
    hd = tables.get("hedges", {})
    if _on(tables, "hedges", "hedges"):
        hedges = (
            f"calls bought with {percent(hd.get('hedge_base_ratio'), 0)} of each tranche's net "
            f"premium (up to {percent(hd.get('hedge_max_ratio'), 0)}), "
            f"{_num(hd.get('hedge_dte_calendar'))} calendar days, strikes "
            f"{', '.join(_num(k) for k in hd.get('hedge_normal_moneyness', []))} x spot "
            f"({', '.join(_num(k) for k in hd.get('hedge_high_iv_moneyness', []))} in high IV)"
        )
    else:
        hedges = "off"
    return ("hedges", hedges, ("hedges.hedges", "hedges.hedge_base_ratio"))


def _limits_row(lim: dict[str, Any], st: dict[str, Any]) -> _Row:
    """Whether limits are enforced, the VaR and concentration limits, margin calls."""
    limits = (
        f"{'enforced (a HIGH breach blocks new tranches)' if lim.get('enforce_limits') else 'counted, not enforced'}; "
        f"daily VaR {percent(lim.get('var_level'), 0)} under {percent(lim.get('daily_var_limit'), 0)} "
        f"of the portfolio, one expiry under {percent(st.get('max_concentration_single_expiration'), 0)} "
        f"of the sleeve, margin calls {'on' if lim.get('margin_calls') else 'off'}"
    )
    return ("limits", limits, ("limits.enforce_limits", "limits.daily_var_limit"))


def _scenario_rows(tables: dict[str, dict[str, Any]]) -> list[_Row]:
    """(what, value in words, the dotted keys it reads) of the scenario's key parameters."""
    m, st = tables.get("market", {}), tables.get("strategy", {})
    return [
        _market_row(m),
        _iv_row(m),
        _capital_row(tables.get("capital", {})),
        _ladder_row(st),
        _fills_row(m, tables.get("execution", {})),
        _exits_row(tables),
        _assignment_row(tables),
        _hedges_row(tables),
        _limits_row(tables.get("limits", {}), st),
    ]


def _scenario_section(ds: Any) -> str:
    """The scenario's key parameters as a table (the gridded ones with their grid values)."""
    tables = _scenario_tables(ds)
    if tables is None:
        return ""
    grid: dict[str, list] = {}
    for key, values in (tables.get("grid") or {}).items():
        if key == "zip":
            for group in values:
                grid.update({k: list(v) for k, v in group.items()})
        else:
            grid[key] = list(values)
    rows = []
    for what, text, keys in _scenario_rows(tables):
        gridded = [k for k in keys if k in grid]
        note = "".join(
            f'<br><span class="ci">over the grid: {html.escape(k)} = '
            f"{html.escape(', '.join(_value_text(v) for v in grid[k]))}</span>"
            for k in gridded
        )
        rows.append(f"<tr><td>{html.escape(what)}</td><td>{html.escape(text)}{note}</td></tr>")
    others = [k for k in grid if not any(k in keys for _, _, keys in _scenario_rows(tables))]
    for key in others:
        values = ", ".join(_value_text(v) for v in grid[key])
        rows.append(f"<tr><td>grid</td><td>{html.escape(key)} = {html.escape(values)}</td></tr>")
    overrides = str(ds.attrs.get("scenario_overrides", "") or "")
    if overrides not in ("", "{}"):
        rows.append(f"<tr><td>overrides</td><td><code>{html.escape(overrides)}</code></td></tr>")
    path = html.escape(str(ds.attrs.get("scenario_path", "") or "the scenario"))
    return (
        f'<h2>Scenario</h2><p class="meta">{path}: the key parameters (every key in the '
        "result's <code>scenario_resolved</code> attribute)</p>"
        f'<table class="params"><tbody>{"".join(rows)}</tbody></table>'
    )


def claims_file(result: Path, ds: Any) -> Path | None:
    """The `simkit claims` JSON beside a result: `<result stem>.claims.json`, or
    `<scenario stem>.claims.json` in the result's folder (what `simkit claims SCENARIO`
    writes to results/ by default); None when there is none."""
    names = [f"{result.stem}.claims.json"]
    scenario = str(ds.attrs.get("scenario_path", "") or "")
    if scenario:
        names.append(f"{Path(scenario).stem}.claims.json")
    for name in names:
        candidate = result.with_name(name)
        if candidate.is_file():
            return candidate
    return None


CLAIMS_COLUMNS = (
    ("topic", "topic"),
    ("claim", "claim"),
    ("seed", "seed"),
    ("simkit", "simkit"),
    ("verdict", "verdict"),
    ("markets", "across markets"),
)


def _count_text(x: Any) -> str:
    return f"{x:,}" if isinstance(x, int) else "?"


def _claims_section(result: Path, ds: Any) -> str:
    """The claims table of the `simkit claims` JSON beside the result (`claims_file`)."""
    import json

    path = claims_file(result, ds)
    if path is None:
        return ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows, meta = data["rows"], data.get("meta", {})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return (
            f'<h2>Claims</h2><p class="meta">{html.escape(path.name)} could not be read '
            f"({html.escape(type(exc).__name__)}); run <code>simkit claims</code> again.</p>"
        )
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in CLAIMS_COLUMNS)
    body = []
    for row in rows:
        cells = []
        for key, _ in CLAIMS_COLUMNS:
            text = html.escape(str(row.get(key, "") or ""))
            if key == "verdict":
                text = f"<b>{text}</b>"
            title = f' title="{html.escape(str(row.get("rule", "")))}"' if key == "verdict" else ""
            cells.append(f"<td{title}>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    scenario = str(meta.get("scenario", "?"))
    own = str(ds.attrs.get("scenario_path", "") or "")
    other = (
        f" (for {html.escape(scenario)}, not this result's {html.escape(own)})"
        if own and Path(scenario).stem != Path(own).stem
        else ""
    )
    return (
        f'<h2>Claims</h2><p class="meta">The seed\'s claims against simkit, from '
        f"{html.escape(path.name)}{other}: {html.escape(scenario)}, "
        f"{_count_text(meta.get('paths'))} paths, seed {html.escape(str(meta.get('seed', '?')))}, "
        f"engine {html.escape(str(meta.get('engine', '?')))} (<code>simkit claims</code>; "
        "the rule behind each verdict shows over it).</p>"
        f'<table class="claims"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
        "</table>"
    )


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1500px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f3f5f8; } td:first-child { text-align: left; }
.ci { color: #777; font-size: 0.85em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.meta { color: #555; font-size: 0.9em; }
table.params td, table.claims td { white-space: normal; text-align: left; vertical-align: top; }
table.params td:first-child { font-weight: 600; white-space: nowrap; }
table.claims td { max-width: 32em; }
"""


CAPTIONS = {
    "equity_fan": "Daily sleeve equity of the stored sample paths: quantile bands and median.",
    "return_distribution": "Distribution of the horizon return with VaR and CVaR (95 %, 99 %) marked.",
    "drawdown_distribution": "Distribution of each path's maximum drawdown.",
    "payoff": "The payoff the strategy really has: each path's horizon return of the sleeve "
    "against the stock's own return over the horizon, with the median per tenth of the paths.",
    "close_reasons": "How closed trades ended.",
    "attribution": "Mean P&L per path by attribution bucket.",
    "kelly": "The Kelly of the whole sleeve (what to size with) beside the per-trade Kelly "
    "inputs, with 95 % confidence intervals, against the seed's own numbers.",
    "breaches": "How often each risk limit was breached.",
    "grid_heatmaps": "Win rate, median annual return and probability of ruin over the grid.",
    "grid_lines": "Win rate, median annual return and probability of ruin along the grid axis.",
    "stress_outcomes": "Probability of ruin, of a margin call and of a loss per stress.",
    "stress_returns": "Horizon-return quantiles per stress with VaR and CVaR 99 %.",
    "stress_equity": "Median daily equity per stress.",
    "stress_stops": "Stop-losses fired, what they saved, and the cost of each stress.",
    "stress_attribution": "Mean P&L per bucket per stress.",
    "breaches_overview": "Share of paths breaching each limit per stress.",
    "explain_tornado": "Change of the mean annual return when each rule or assumption is "
    "changed alone, on the scenario's own paths, with paired 95 % intervals.",
    "explain_metrics": "Change of the probability of a loss, the median drawdown and the "
    "sleeve Kelly fraction for each change, with paired 95 % intervals.",
    "sensitivity_indices": "Each key's sensitivity index per metric (Morris mu* and sigma, or "
    "Sobol' S1 and ST, with SALib's 95 % half-widths), largest first, the Monte Carlo noise "
    "floor dashed.",
    "sensitivity_scatter": "Each metric against each sampled key over the parameter sets.",
}


def _html(
    ds: Any, kind: str, figures: list[Path], source: Path, selected: dict[str, Any] | None = None
) -> str:
    title = html.escape(str(ds.attrs.get("title", "simkit result")))
    meta = (
        f"{html.escape(source.name)} · {ds.attrs.get('paths', '?')} paths · "
        f"{ds.attrs.get('n_steps', '?')} trading days · seed {ds.attrs.get('seed', '?')} · "
        f"engine {html.escape(str(ds.attrs.get('engine', '?')))} ({html.escape(str(ds.attrs.get('dtype', '?')))}) · "
        f"simkit {html.escape(str(ds.attrs.get('simkit_version', '?')))} · created {html.escape(str(ds.attrs.get('created', '?')))}"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        f'<p class="meta">{meta}</p>',
    ]
    description = str(ds.attrs.get("description", "") or "")
    if description:
        parts.append(f"<p>{html.escape(description)}</p>")
    if selected:
        where = ", ".join(f"{k} = {_value_text(v)}" for k, v in selected.items())
        parts.append(f"<p><b>Slice</b> (<code>--select</code>): {html.escape(where)}</p>")
    parts.append(_scenario_section(ds))
    if kind == "run":
        parts.append(_claims_section(source, ds))
    parts.append("<h2>Summary</h2>")
    if kind == "stress":
        parts.append(_stress_list(ds))
        parts.append(_stress_table(ds))
        parts.append(
            '<p class="meta">Estimates [95 % confidence interval]. Returns are over the horizon, '
            "as fractions of the initial sleeve; 'vs none' is the mean change of final equity "
            "against the same path unstressed; 'stops saved' is final equity with stop-losses "
            "minus without, same paths.</p>"
        )
    elif kind == "explain":
        parts.append(_explain_table(ds))
        parts.append(
            '<p class="meta">Each row: the scenario with one change (the TOML override), on the '
            "same paths. Δ = changed − scenario [paired 95 % interval: the mean and P(loss) by "
            "the standard error of the per-path differences, the median drawdown and the Kelly "
            "fraction by a paired path bootstrap]. Sorted by |Δ annual return mean|.</p>"
        )
    elif kind == "sensitivity":
        parts.append(_sensitivity_table(ds))
        parts.append(
            '<p class="meta">Keys by their index on the first metric. Morris: mu* = mean '
            "absolute elementary effect (the metric's change over the key's whole range), "
            "sigma = their spread; Sobol': S1 first-order, ST total share of the variance; "
            "± SALib's 95 % half-width; (noise): at or below what the runs' Monte Carlo noise "
            "alone would give. Every parameter set ran on the same paths.</p>"
        )
    else:
        parts.append(_run_table(ds))
        parts.append('<p class="meta">Estimates [95 % confidence interval].</p>')
    parts.append("<h2>Figures</h2>")
    for path in figures:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        stem = path.stem
        caption = CAPTIONS.get(stem) or (
            f"Risk limit {stem.removeprefix('breach_')}: breaches under each stress."
            if stem.startswith("breach_")
            else stem
        )
        parts.append(
            f'<figure id="{html.escape(stem)}"><a href="{html.escape(path.name)}">'
            f'<img src="data:image/png;base64,{data}" alt="{html.escape(caption)}"></a>'
            f'<figcaption>{html.escape(caption)} <a href="{html.escape(path.name)}">{html.escape(path.name)}</a>'
            "</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- entry point


def _open(result: Path) -> tuple[Any, str]:
    import xarray as xr

    try:
        ds = xr.open_dataset(result, engine="h5netcdf")
        # every path's daily equity (`--equity`, ~0.74 GB a million path-years) is not drawn
        ds = ds.drop_vars([name for name in ("equity",) if name in ds]).load()
    except Exception as exc:  # noqa: BLE001 (any unreadable file is the user's input problem)
        raise NotAResult(
            f"cannot read as a NetCDF4/HDF5 result file ({type(exc).__name__}: {exc})"
        ) from None
    if "stress" in ds.dims and "breach_path_share" in ds:
        return ds, "stress"
    if "change" in ds.dims and "annual_return_mean_delta" in ds:
        return ds, "explain"
    if ds.attrs.get("simkit_result") == "sensitivity" and "metric_value" in ds:
        return ds, "sensitivity"
    if "equity_sample" in ds and "final_equity_mean" in ds and "paths" in ds:
        return ds, "run"
    raise NotAResult(
        "not a simkit result: it has neither the variables of `simkit run` nor of `simkit stress`"
    )


def make_report(result: str | Path, out: str | Path | None = None, select: Any = None) -> Report:
    """Write the figures and `index.html` of a result file into `out`.

    Args:
      result: a `simkit run`, `simkit stress`, `simkit explain` or `simkit sensitivity`
        result file.
      out: the folder (created if needed). Default value: `default_folder(result)`.
      select: `{grid key: value}` (or pairs) cutting a run result's grid to a slice before
        anything is drawn (`select_cells`); the slice is named in every title and on the
        page. Default value: None (a grid of more than two axes is drawn at the middle value
        of each further axis).

    Returns:
      what was written. Raises NotAResult for a file that is not a simkit result, and
      BadSelection for a `select` that does not fit the result (nothing is written then).
    """
    started = time.perf_counter()
    result = Path(result)
    folder = Path(out) if out is not None else default_folder(result)
    ds, kind = _open(result)
    selected: dict[str, Any] = {}
    if select:
        if kind != "run":
            raise BadSelection(
                f"--select cuts the grid of a `simkit run` result; {result.name} is a "
                f"`simkit {kind}` result"
            )
        where, selected = select_cells(ds, select)
        ds = ds.isel(where)
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "run":
        figures = _run_figures(ds, folder, selected)
    else:
        draw = {
            "stress": _stress_figures,
            "explain": _explain_figures,
            "sensitivity": _sensitivity_figures,
        }[kind]
        figures = draw(ds, folder)
    index = folder / "index.html"
    tmp = index.with_name(".index.html.tmp")
    tmp.write_text(_html(ds, kind, figures, result, selected), encoding="utf-8")
    tmp.replace(index)
    return Report(index, figures, time.perf_counter() - started)
