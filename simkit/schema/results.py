"""The result variables of simkit's files, declared once: name, extra dimensions, units and
long name of every variable a run or a stress writes.

- `RUN_VARIABLES`: a run's aggregate metrics over the grid dimensions (`simkit run`; read as
  `simkit.aggregate.VARIABLES`), `RUN_CURVES` its daily equity and ladder arrays;
- `PER_PATH_VARIABLES`: the per-path summary (`--per-path`, `simkit.simulate_paths`), with
  `per_path_variable` for the engine's counters that are not listed;
- `STRESS_VARIABLES`: a stress's metrics over (`stress`, `enforce_limits`) (`simkit stress`;
  read as `simkit.stress.STRESS_VARIABLES`), most of them the run's entries taken by name,
  `STRESS_EXTRAS` its per-stress and per-limit texts;
- `COORDINATES` (and `grid_axis_attrs`, `histogram_coordinates`): the coordinates of both;
- `PATHS_EQUITY`: the daily equity `simkit.simulate_paths` returns beside the per-path summary;
- `TRADE_LOG_VARIABLES` (read as `simkit.trade_log.VARIABLES`), `TRADE_LOG_DATES`,
  `TRADE_LOG_COORDINATES` and `trade_grid_variable`: a run's trade log (`simkit run --trades N`)
  over its `trade` dimension.

The analyses on runs declare theirs beside these, in `simkit.schema.analyses` (`simkit explain`,
`simkit sensitivity`).

An interval estimate `x` comes with its bounds `x_lo`, `x_hi` (and standard error `x_se`),
each declared with its own text (`with_interval`). A name is declared once in a table (a
second declaration raises). `dims` are the dimensions beyond the grid (run), beyond the grid
and `path` (per path) or beyond (`stress`, `enforce_limits`) (stress metrics); a stress's
extras, the trade log and a coordinate not on its own dimension (`date`) list all of theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from simkit.schema.outcomes import (
    BUCKETS,
    CLOSE_COUNTERS,
    CLOSE_REASONS,
    LIMIT_NAMES,
    TRADE_KINDS,
)

__all__ = [
    "CONFIDENCE",
    "COORDINATES",
    "GRID_AXIS_UNITS",
    "HISTOGRAMS",
    "HIST_RANGE",
    "PATHS_EQUITY",
    "PER_PATH_VARIABLES",
    "RUN_CURVES",
    "RUN_VARIABLES",
    "STRESS_EXTRAS",
    "STRESS_VARIABLES",
    "TRADE_LOG_COORDINATES",
    "TRADE_LOG_DATES",
    "TRADE_LOG_VARIABLES",
    "ResultVariable",
    "grid_axis_attrs",
    "histogram_coordinates",
    "per_path_variable",
    "trade_grid_variable",
    "with_interval",
]

CONFIDENCE = 0.95  # confidence of every interval (`_lo`, `_hi`)
# Per-path variables with a stored histogram -> what they are, in words.
HISTOGRAMS = {"total_return": "horizon return", "max_drawdown": "maximum drawdown"}
# Histogram range: from the lowest cell's HIST_RANGE[0] quantile to the highest cell's
# HIST_RANGE[1] quantile (`simkit.aggregate.histogram_edges`); values outside go to the end bins.
HIST_RANGE = (0.005, 0.995)


@dataclass(frozen=True)
class ResultVariable:
    """One variable (or coordinate) of a result file."""

    name: str
    units: str | None  # None: no `units` attribute (dates)
    long_name: str
    dims: tuple[str, ...] = ()  # extra dimensions (see the module doc)

    @property
    def attrs(self) -> dict[str, str]:
        """Its attributes in the file."""
        if self.units is None:
            return {"long_name": self.long_name}
        return {"units": self.units, "long_name": self.long_name}


def with_interval(
    name: str, units: str, long_name: str, se: bool = False
) -> tuple[ResultVariable, ...]:
    """An estimate and its companions: the standard error `_se` (when `se`) and the bounds
    `_lo`, `_hi` of its `CONFIDENCE` interval."""
    bound = f"bound of the {CONFIDENCE:.0%} confidence interval of {long_name}"
    return (
        ResultVariable(name, units, long_name),
        *([ResultVariable(f"{name}_se", units, f"standard error of {long_name}")] if se else []),
        ResultVariable(f"{name}_lo", units, f"lower {bound}"),
        ResultVariable(f"{name}_hi", units, f"upper {bound}"),
    )


class _Table:
    """A table being declared: name -> `ResultVariable`, each name once."""

    def __init__(self) -> None:
        self._items: dict[str, ResultVariable] = {}

    def add(self, variable: ResultVariable) -> None:
        if variable.name in self._items:
            raise ValueError(f"result variable {variable.name!r} declared twice")
        self._items[variable.name] = variable

    def var(self, name: str, units: str | None, long_name: str, dims: tuple[str, ...] = ()) -> None:
        self.add(ResultVariable(name, units, long_name, tuple(dims)))

    def ci(self, name: str, units: str, long_name: str, se: bool = False) -> None:
        for variable in with_interval(name, units, long_name, se=se):
            self.add(variable)

    def reuse(self, source: Mapping[str, ResultVariable], *names: str, ci: bool = False) -> None:
        """Entries of another table, by name (with their interval bounds when `ci`)."""
        for name in names:
            for key in (name, f"{name}_lo", f"{name}_hi") if ci else (name,):
                self.add(source[key])

    def done(self) -> Mapping[str, ResultVariable]:
        return MappingProxyType(self._items)


# --------------------------------------------------------------------------- a run's metrics

_run = _Table()
_run.var("paths", "count", "number of simulated paths")
_run.var("initial_equity", "USD", "strategy sleeve equity at the start, before any trade")
_run.var("final_equity_mean", "USD", "mean strategy sleeve equity at the horizon")
_run.var("final_equity_median", "USD", "median strategy sleeve equity at the horizon")
_run.ci(
    "win_rate_trade",
    "1",
    "share of closed trades with positive P&L (Wilson interval at the path-clustered "
    "effective number of trades)",
)
_run.ci("win_rate_path", "1", "share of paths whose P&L over the horizon is positive")
_run.ci("prob_loss", "1", "share of paths whose P&L over the horizon is negative")
_run.ci("prob_ruin", "1", "share of paths ruined (sleeve equity reached zero)")
_run.ci("prob_margin_call", "1", "share of paths with at least one margin call")
_run.ci("annual_return_mean", "1", "mean time-weighted annualized return", se=True)
_run.ci("annual_return_median", "1", "median time-weighted annualized return")
_run.var(
    "annual_return_quantile", "1", "quantiles of the time-weighted annualized return", ("quantile",)
)
_run.var("total_return_mean", "1", "mean horizon return (P&L over initial equity)")
_run.var("total_return_quantile", "1", "quantiles of the horizon return", ("quantile",))
# What the stock did (`simkit.schema.outcomes.UNDERLYING`), beside what the sleeve made.
_UNDERLYING_TEXT = {
    "spot_final": ("USD", "spot of the stock at the horizon, S_N"),
    "spot_min": ("USD", "lowest spot of the stock over trading days 0 ... N"),
    "realized_vol": (
        "1",
        "annualized realized volatility of the stock's daily log returns over the horizon, "
        "sqrt(252 * mean(ln(S_t / S_{t-1})^2)) (zero-mean)",
    ),
    "underlying_return": ("1", "the stock's return over the horizon, S_N / S_0 - 1"),
}
for _name, (_units, _text) in _UNDERLYING_TEXT.items():
    _run.var(f"{_name}_mean", _units, f"mean over paths of the {_text}")
    _run.var(f"{_name}_quantile", _units, f"quantiles over paths of the {_text}", ("quantile",))
for _name, _what in HISTOGRAMS.items():
    _run.var(
        f"{_name}_hist",
        "count",
        f"paths per bin of the {_what} (bin centres `{_name}_bin`, edges `{_name}_bin_edge`: "
        "the same in every cell of a run; values beyond the end edges are counted in the end "
        "bins)",
        (f"{_name}_bin",),
    )
_run.var(
    "sharpe",
    "1",
    "median over paths of the annualized Sharpe ratio of each path's daily returns",
)
_run.var(
    "sharpe_pooled",
    "1",
    "annualized Sharpe ratio of the daily returns pooled over all path-days "
    "(mean / standard deviation * sqrt(252))",
)
_run.var(
    "sharpe_pooled_se",
    "1",
    "standard error of the pooled Sharpe ratio (delta method, clustered by path)",
)
_run.var("sharpe_pooled_lo", "1", "lower bound of the 95% confidence interval of the pooled Sharpe")
_run.var("sharpe_pooled_hi", "1", "upper bound of the 95% confidence interval of the pooled Sharpe")
_run.var(
    "profit_take_loss_share",
    "1",
    "share of profit-take closes whose trade lost money after the buy-back spread and both "
    "commissions (the rule compares the mid with the premium)",
)
_run.var("max_drawdown_median", "1", "median over paths of the maximum drawdown (<= 0)")
_run.var("max_drawdown_quantile", "1", "quantiles of the maximum drawdown (<= 0)", ("quantile",))
for _level in (95, 99):
    _run.var(
        f"var_{_level}",
        "1",
        f"historical {_level} % value at risk of the horizon return (loss as a positive fraction)",
    )
    _run.var(
        f"cvar_{_level}",
        "1",
        f"historical {_level} % expected shortfall of the horizon return (loss as a positive "
        "fraction)",
    )
_run.var(
    "daily_var_99_median",
    "1",
    "median over paths of the historical 99 % one-day value at risk (positive fraction)",
)
_run.var("trades_per_path", "count", "mean number of closed trades per path")
_run.var(
    "close_reason_share",
    "1",
    "share of closed trades ending by each reason",
    ("close_reason",),
)
_run.var(
    "assignment_rate",
    "1",
    "put assignments at each ladder rung per closed trade of the whole ladder",
    ("strike",),
)
_run.var("assignments_per_path", "count", "mean assignments per path at each rung", ("strike",))
_run.var(
    "breach_share",
    "1",
    "share of path-days on which each risk limit was breached at the end of the day",
    ("limit",),
)
_run.var("breach_path_share", "1", "share of paths breaching each limit at least once", ("limit",))
_run.var("attribution_mean", "USD", "mean P&L attribution per path by bucket", ("bucket",))
_run.ci(
    "kelly_p",
    "1",
    "Kelly input: win probability of a closed trade (path-clustered interval)",
)
_run.ci(
    "kelly_avg_win",
    "1",
    "Kelly input: average winning trade return on its collateral",
)
_run.ci(
    "kelly_avg_loss",
    "1",
    "Kelly input: average losing trade loss on its collateral (positive)",
)
_run.ci(
    "kelly_fraction",
    "1",
    "Kelly fraction by the seed's formula p - (1 - p) * avg_loss / avg_win on the measured inputs",
)
_run.ci(
    "kelly_growth_optimal",
    "1",
    "growth-optimal capital at risk as a multiple of bankroll, p / avg_loss - (1 - p) / avg_win",
)
_run.var(
    "kelly_recommended",
    "1",
    "the seed's sizing rule on the measured Kelly fraction: multiplier * kelly_fraction, "
    "capped at max_total_strategy_pct and floored at 0",
)
_run.ci(
    "kelly_sleeve_fraction",
    "1",
    "Kelly of the sleeve: growth-optimal share of the portfolio in the sleeve, the rest in cash "
    "(argmax of the mean over paths of ln(1 + (1 - f) c + f R), R the horizon return; 0 = do "
    "not allocate; delta-method interval)",
)
_run.ci(
    "kelly_sleeve_fraction_21d",
    "1",
    "Kelly of the sleeve from non-overlapping 21-day sleeve returns (interval clustered by path)",
)
_run.var(
    "kelly_sleeve_fraction_max",
    "1",
    "largest share of the portfolio (at most 10) that keeps every path's wealth positive",
)
_run.var(
    "kelly_sleeve_unbounded",
    "1",
    "1 when no path does worse than cash (the growth rises without bound; the fraction is "
    "reported at the cap), else 0",
)
_run.var(
    "kelly_sleeve_growth",
    "1",
    "expected log growth of the portfolio over the horizon at the sleeve Kelly fraction",
)
_run.var("kelly_sleeve_growth_cash", "1", "log growth of cash over the horizon, ln(exp(r T))")
_run.var(
    "kelly_sleeve_growth_seed",
    "1",
    "expected log growth of the portfolio over the horizon at the scenario's own sleeve share "
    "(the seed's 20 %; -inf when some path would wipe the portfolio out)",
)
_run.var(
    "kelly_sleeve_share_seed",
    "1",
    "the scenario's sleeve share of the portfolio (initial sleeve equity / portfolio value)",
)
_run.var("contracts_cut_mean", "count", "mean contracts per path cut by the capacity limits")
_run.var(
    "share_orders_cut",
    "1",
    "share of rung orders (entry attempts that passed every check x ladder rungs) cut by the "
    "capacity limits",
)
RUN_VARIABLES = _run.done()

# a run's arrays beside its metrics (over the grid dimensions too)
_curves = _Table()
_curves.var(
    "equity_sample",
    "USD",
    "daily strategy sleeve equity of the first paths of each cell (end of day t = 0 ... n_steps)",
    ("sample", "day"),
)
_curves.var(
    "equity_quantile",
    "USD",
    "quantiles over all paths of the daily strategy sleeve equity (end of day "
    "t = 0 ... n_steps; numpy.quantile, linear)",
    ("quantile", "step"),
)
_curves.var(
    "equity",
    "USD",
    "daily strategy sleeve equity of every path (end of day t = 0 ... n_steps), "
    "in the engine's dtype",
    ("path", "step"),
)
_curves.var("ladder_strike", "USD", "strike of each ladder rung", ("rung",))
RUN_CURVES = _curves.done()


# --------------------------------------------------------------------------- per path

# the engine's summary plus the derived figures: name -> (units, long_name)
_PER_PATH_TEXT: dict[str, tuple[str, str]] = {
    "final_equity": ("USD", "strategy sleeve equity at the horizon"),
    "final_portfolio_value": ("USD", "portfolio value at the horizon"),
    "contributions": ("USD", "monthly additions paid into the sleeve"),
    "sum_win_ret": ("1", "sum of returns on collateral of winning trades"),
    "sum_win_ret_sq": ("1", "sum of squared returns on collateral of winning trades"),
    "sum_loss_ret": ("1", "sum of losses on collateral of losing trades (positive)"),
    "sum_loss_ret_sq": ("1", "sum of squared returns on collateral of losing trades"),
    "hedge_contracts": ("count", "hedge call contracts bought"),
    "contracts_cut": ("count", "put contracts cut by the capacity limits"),
    "ruined": ("1", "1 if the path was ruined, else 0"),
    "ruin_step": ("day", "trading day of ruin (-1 if none)"),
    "assigned_by_rung": ("count", "put assignments at each ladder rung"),
    "max_drawdown": ("1", "maximum drawdown of the time-weighted equity index (<= 0)"),
    "annual_return": ("1", "time-weighted annualized return (-1 if equity reached zero)"),
    "total_return": ("1", "horizon P&L (final - initial - contributions) over initial equity"),
    "path_sharpe": ("1", "annualized Sharpe ratio of the path's daily returns"),
    "daily_var_99": ("1", "historical 99 % one-day value at risk of the path (positive)"),
    **_UNDERLYING_TEXT,
}
for _b in BUCKETS:
    _PER_PATH_TEXT[_b] = ("USD", f"P&L attribution: {_b.replace('_', ' ')}")
for _c, _r in zip(CLOSE_COUNTERS, CLOSE_REASONS, strict=True):
    _PER_PATH_TEXT[_c] = ("count", f"trades ended by {_r.replace('_', ' ')}")
_PER_PATH_TEXT["n_close_profit_loss"] = (
    "count",
    "profit-take closes whose trade lost money after the spread and both commissions",
)


def _counted(name: str) -> tuple[str, str]:
    """An engine counter's units and text, from its name (`n_trades`: number of trades)."""
    return "count", f"number of {name.replace('_', ' ').removeprefix('n ')}"


# the engine's other counters (docs/ENGINE_SPEC.md, "Per-path summary")
for _name in (
    "n_trades",
    "n_wins",
    "n_margin_calls",
    "n_tranches",
    "n_entry_days",
    "n_blocked_signal",
    "n_blocked_limits",
    "n_blocked_exit",
    "n_orders_cut",
    "n_cc_sold",
    "shares_assigned",
    "shares_called_away",
):
    _PER_PATH_TEXT[_name] = _counted(_name)
for _lim in LIMIT_NAMES:
    _PER_PATH_TEXT[f"breach_{_lim}"] = ("day", f"days with the {_lim} limit breached")
    _PER_PATH_TEXT[f"first_breach_{_lim}"] = (
        "day",
        f"first trading day with the {_lim} limit breached (-1 if none)",
    )

_per_path = _Table()
_per_path.reuse(RUN_VARIABLES, "initial_equity")  # a run file stores it once a cell
for _name, (_units, _text) in _PER_PATH_TEXT.items():
    _per_path.var(_name, _units, _text, ("strike",) if _name == "assigned_by_rung" else ())
PER_PATH_VARIABLES = _per_path.done()


# `simkit.simulate_paths`: every path's daily equity beside its summary
PATHS_EQUITY = ResultVariable(
    "equity", "USD", "sleeve equity at the end of each trading day", ("step",)
)


def per_path_variable(name: str) -> ResultVariable:
    """A per-path variable: listed, a day's equity, or (not listed) an engine counter (`n_...`,
    `shares_...`: `count`) or a fraction named by its words."""
    if name in PER_PATH_VARIABLES:
        return PER_PATH_VARIABLES[name]
    if name.startswith("equity_day_"):  # `simkit.run.simulate(..., equity_days=...)`
        day = name.removeprefix("equity_day_")
        return ResultVariable(name, "USD", f"sleeve equity at the end of trading day {day}")
    if name.startswith("n_") or name.startswith("shares_"):
        return ResultVariable(name, *_counted(name))
    return ResultVariable(name, "1", name.replace("_", " "))


# --------------------------------------------------------------------------- the trade log

# `simkit run --trades N` (`simkit.trade_log`): one row per position over the `trade` dimension
_trades = _Table()
_trades.var("trade_path", "1", "path index of the trade in its grid cell", ("trade",))
_trades.var("trade_kind", "1", f"kind of position: {', '.join(TRADE_KINDS)}", ("trade",))
_trades.var(
    "trade_strike",
    "USD",
    "strike (shares: the strike of the assigned put that delivered them)",
    ("trade",),
)
_trades.var("trade_open_step", "day", "trading day the position was opened", ("trade",))
_trades.var(
    "trade_close_step",
    "day",
    "trading day the position ended (the horizon for positions still open)",
    ("trade",),
)
_trades.var("trade_contracts", "contract", "contracts (shares: shares / 100)", ("trade",))
_trades.var(
    "trade_premium",
    "USD/share",
    "opening price per share: the sale fill of a short put or covered call, the price "
    "paid for a hedge call, the spot on the assignment day for shares",
    ("trade",),
)
_trades.var(
    "trade_close_price",
    "USD/share",
    "closing price per share: the buy-back or sale fill, the intrinsic value at expiry or "
    "assignment (0 when out of the money), the spot for shares, the mid (shares: the spot) "
    "at the horizon for positions still open",
    ("trade",),
)
_trades.var(
    "trade_reason",
    "1",
    "how the position ended: a short put's trade end (simkit.schema.outcomes.TRADE_ENDS: "
    f"{', '.join(CLOSE_REASONS)}), or expired_itm (a long call paid its intrinsic value), "
    "called_away (the shares a covered call took away; the call itself ends "
    "assigned_expiry), open (held at the horizon)",
    ("trade",),
)
_trades.var(
    "trade_pnl",
    "USD",
    "P&L of the position, commissions included: short (premium - close price) or long "
    "(close price - premium) x 100 x contracts, less the commissions paid on it",
    ("trade",),
)
_trades.var(
    "trade_collateral",
    "USD",
    "collateral tied up: strike x 100 x contracts / max_leverage for a short put (the "
    "denominator of its Kelly return), 0 for the other kinds",
    ("trade",),
)
TRADE_LOG_VARIABLES = _trades.done()

# a history market's calendar dates of the trades (no `units`: datetimes)
_trade_dates = _Table()
_trade_dates.var(
    "trade_open_date", None, "calendar date of trade_open_step (history markets)", ("trade",)
)
_trade_dates.var(
    "trade_close_date", None, "calendar date of trade_close_step (history markets)", ("trade",)
)
TRADE_LOG_DATES = _trade_dates.done()

# where each trade belongs: its cell (and `trade_grid_variable` per grid key)
_trade_coords = _Table()
_trade_coords.var("trade", "1", "trade index in the run")
_trade_coords.var("trade_cell", "1", "grid cell of the trade (row-major cell number)", ("trade",))
TRADE_LOG_COORDINATES = _trade_coords.done()


def trade_grid_variable(key: str, units: str = "1") -> ResultVariable:
    """The coordinate `trade_<key>` of the trade log: grid key `key`'s value in each trade's
    cell, in `units` (the grid axis's: `grid_axis_attrs`)."""
    return ResultVariable(
        f"trade_{key}", units, f"grid value of {key} in the trade's cell", ("trade",)
    )


# --------------------------------------------------------------------------- a stress's metrics

_stress = _Table()
_stress.reuse(RUN_VARIABLES, "paths", "initial_equity")
_stress.reuse(RUN_VARIABLES, "prob_ruin", "prob_margin_call", "prob_loss", ci=True)
_stress.var("margin_calls_per_path", "count", "mean number of margin calls per path")
_stress.reuse(RUN_VARIABLES, "final_equity_mean", "final_equity_median")
_stress.var(
    "equity_vs_baseline_mean",
    "USD",
    "mean over paths of final sleeve equity minus that of the same path unstressed "
    "(same enforce_limits)",
)
_stress.var(
    "equity_vs_baseline_se",
    "USD",
    "standard error of the mean paired change of final equity against the unstressed path",
)
_stress.reuse(RUN_VARIABLES, "total_return_mean")
_stress.var("total_return_median", "1", "median horizon return (P&L over initial equity)")
_stress.reuse(RUN_VARIABLES, "total_return_quantile", "var_95", "cvar_95", "var_99", "cvar_99")
_stress.reuse(RUN_VARIABLES, "annual_return_median", "max_drawdown_median", "trades_per_path")
_stress.var("win_rate_trade", "1", "share of closed trades with positive P&L")
_stress.var(
    "closes_per_path",
    "count",
    "mean number of trades per path ending by each reason",
    ("close_reason",),
)
_stress.reuse(RUN_VARIABLES, "attribution_mean", "breach_path_share")
_stress.var(
    "breach_share",
    "1",
    "share of path-days on which each limit was breached at the end of the day",
    ("limit",),
)
_stress.var(
    "days_to_first_breach_median",
    "day",
    "median over breaching paths of the trading day of the first breach of each limit "
    "(counted from day 0; NaN below 30 paths)",
    ("limit",),
)
_stress.var(
    "days_to_first_breach_after_shock_median",
    "day",
    "median over paths whose first breach of each limit came on or after the shock's first "
    "day of the trading days from that day to the breach (NaN below 30 paths)",
    ("limit",),
)
_stress.var(
    "breach_after_shock_share",
    "1",
    "share of paths whose first breach of each limit came on or after the shock's first day",
    ("limit",),
)
_stress.var(
    "loss_given_breach",
    "1",
    "mean horizon loss (minus the horizon return, a positive fraction of initial equity) of "
    "the paths that breached each limit at least once (NaN below 30 paths)",
    ("limit",),
)
_stress.var(
    "loss_given_no_breach",
    "1",
    "mean horizon loss (minus the horizon return) of the paths that never breached each limit "
    "(NaN below 30 paths)",
    ("limit",),
)
_stress.var("stop_losses_per_path", "count", "mean number of stop-loss closes per path")
_stress.ci("prob_stop_loss", "1", "share of paths on which at least one stop-loss fired")
_stress.var(
    "stop_loss_saved_mean",
    "USD",
    "mean over paths of final equity with stop-losses minus final equity of the same path "
    "with exits.stop_loss = false (> 0: the stops saved money)",
)
_stress.var(
    "stop_loss_saved_given_fired",
    "USD",
    "mean of final equity with stop-losses minus without, over the paths on which a "
    "stop-loss fired (NaN below 30 paths)",
)
_stress.var(
    "stop_loss_saved_given_fired_count",
    "count",
    "paths on which a stop-loss fired (the paths of stop_loss_saved_given_fired)",
)

# the sleeve's mark-to-market move on the shock's first day d: per path
# r = (E_d - added_d - E_{d-1}) / E_{d-1}, over the paths with E_{d-1} > 0
_SHOCK_DAY = (
    "the sleeve's mark-to-market return on the shock's first day d, (E_d - E_{d-1}) / "
    "E_{d-1} with E_t the sleeve equity at the end of day t (new capital added on day d "
    "excluded; paths with E_{d-1} > 0; negative: a loss)"
)
_stress.var("shock_day_return_mean", "1", f"mean over paths of {_SHOCK_DAY}")
_stress.var("shock_day_return_se", "1", f"standard error of the mean over paths of {_SHOCK_DAY}")
_stress.var(
    "shock_day_return_quantile", "1", f"quantiles over paths of {_SHOCK_DAY}", ("quantile",)
)
_stress.var(
    "shock_day_pnl_mean",
    "USD",
    "mean over paths of the sleeve's mark-to-market P&L on the shock's first day d, "
    "E_d - E_{d-1} (new capital added on day d excluded; paths with E_{d-1} > 0)",
)
_stress.var(
    "shock_day_return_count",
    "count",
    "paths with sleeve equity > 0 at the end of the day before the shock (the paths of the "
    "shock_day_ variables)",
)

# trading after the shock
_stress.ci(
    "prob_stopped_trading",
    "1",
    "share of paths that sold no new tranche from the shock's first day to the horizon "
    "(ruined paths included)",
)
_stress.var(
    "stopped_trading_share",
    "1",
    "share of paths that sold no new tranche from the shock's first day on, by cause: ruin "
    "(the path was ruined), close_all_exit / limits / signal (every entry day from the shock "
    "on was blocked by that reason, the first failing one in the engine's order signal, limits, "
    "close-all exit), mixed (every entry day blocked, by more than one of them), other (an "
    "entry day was not blocked but no contract was sold, or no entry day was left); the causes "
    "sum to prob_stopped_trading",
    ("stop_cause",),
)
_stress.var(
    "prob_stopped_trading_unstressed",
    "1",
    "share of the same paths unstressed (same enforce_limits) that sold no new tranche from "
    "the shock's first day to the horizon",
)
_stress.var(
    "tranches_after_shock_per_path",
    "count",
    "mean number of tranches sold per path from the shock's first day to the horizon",
)
_stress.var(
    "tranches_after_shock_per_path_unstressed",
    "count",
    "mean number of tranches the same paths unstressed (same enforce_limits) sold per path "
    "from the shock's first day to the horizon",
)

# against not trading and against the unstressed strategy
_stress.var(
    "cash_return",
    "1",
    "horizon return of the initial sleeve held as cash at the rate r instead: exp(r T) - 1, "
    "T the horizon in years (contributions aside)",
)
_stress.var(
    "excess_over_cash_mean",
    "1",
    "mean horizon return minus cash_return: what trading added to holding the sleeve in cash",
)
_stress.var("excess_over_cash_se", "1", "standard error of excess_over_cash_mean")
_stress.var(
    "total_return_vs_baseline_mean",
    "1",
    "mean over paths of the horizon return minus that of the same path unstressed "
    "(same enforce_limits)",
)
_stress.var("total_return_vs_baseline_se", "1", "standard error of total_return_vs_baseline_mean")

# counts of the conditional statistics (each is NaN below MIN_CONDITIONAL paths)
_stress.var(
    "loss_given_breach_count",
    "count",
    "paths that breached each limit at least once (the paths of loss_given_breach and "
    "days_to_first_breach_median)",
    ("limit",),
)
_stress.var(
    "loss_given_no_breach_count",
    "count",
    "paths that never breached each limit (the paths of loss_given_no_breach)",
    ("limit",),
)
_stress.var(
    "days_to_first_breach_after_shock_count",
    "count",
    "paths whose first breach of each limit came on or after the shock's first day (the "
    "paths of days_to_first_breach_after_shock_median)",
    ("limit",),
)
_stress.var(
    "breach_at_start_share",
    "1",
    "share of paths whose first breach of each limit came on day 0, with the first tranche "
    "(before any shock: 1 means the sizing itself breaches the limit)",
    ("limit",),
)
_stress.var(
    "equity_quantile",
    "USD",
    "quantiles over all paths of the daily strategy sleeve equity",
    ("quantile", "day"),
)

STRESS_VARIABLES = _stress.done()

# a stress's texts beside its metrics
_extras = _Table()
_extras.var("shock_day", "day", "first trading day of the stress's shocks (-1: none)", ("stress",))
_extras.var(
    "limit_rule",
    "1",
    "what breaches each limit, with the base scenario's parameters (and why its sizing does, "
    "where the sizing alone decides it)",
    ("limit",),
)
_extras.var("stress_description", "1", "what the stress represents", ("stress",))
STRESS_EXTRAS = _extras.done()


# --------------------------------------------------------------------------- coordinates

_coords = _Table()
_coords.var("quantile", "1", "probability level of the quantile")
_coords.var("close_reason", "1", "how a trade ended")
_coords.var("limit", "1", "risk limit of the strategy")
_coords.var("bucket", "1", "P&L attribution bucket")
_coords.var("strike", "USD", "strike of the put ladder rung")
_coords.var("rung", "1", "index of the put ladder rung")
_coords.var("day", "day", "trading day")
_coords.var("date", None, "date of the history's day", ("day",))
_coords.var("sample", "1", "path index of the sample")
_coords.var("step", "day", "trading day t = 0 ... N")
_coords.var("path", "1", "path index")
_coords.var("stress", "1", "stress scenario (none: the unstressed baseline)")
_coords.var("enforce_limits", "1", "limits.enforce_limits: HIGH limits block new tranches")
_coords.var("stop_cause", "1", "why a path sold no tranche after the shock")
COORDINATES = _coords.done()


def histogram_coordinates(name: str) -> tuple[ResultVariable, ResultVariable]:
    """The bin centres `<name>_bin` and edges `<name>_bin_edge` of a histogram (`HISTOGRAMS`)."""
    what = HISTOGRAMS[name]
    centre = ResultVariable(f"{name}_bin", "1", f"{what}: centre of the histogram bin")
    edge = ResultVariable(
        f"{name}_bin_edge",
        "1",
        f"{what}: histogram bin edges (bin i is [edge i, edge i + 1); equal bins from the "
        f"lowest cell's {HIST_RANGE[0]:.1%} quantile to the highest cell's "
        f"{HIST_RANGE[1]:.1%} quantile)",
    )
    return centre, edge


# Units of grid coordinates, by field name (the last part of the dotted key); others get "1".
GRID_AXIS_UNITS = {
    "s0": "USD",
    "bid_ask_spread": "USD",
    "portfolio_value": "USD",
    "allocation": "USD",
    "monthly_addition": "USD",
    "reference_spot": "USD",
    "strike_grid": "USD",
    "commission": "USD",
    "min_quote": "USD",
    "price_improvement_target": "USD",
    "cc_basis_good": "USD",
    "cc_basis_hold": "USD",
    "liquidity_exit_spread": "USD",
    "signal_spread_max": "USD",
    "strikes": "USD",
    "dte_calendar": "day",
    "cc_dte_calendar": "day",
    "hedge_dte_calendar": "day",
    "time_exit_dte": "day",
    "entry_every_days": "day",
    "years": "year",
    "short_interest": "percent",
    "short_interest_long_run": "percent",
    "borrow_cost": "percent",
    "open_interest": "count",
    "option_volume": "count",
}


def grid_axis_attrs(key: str) -> dict[str, str]:
    """The attributes of a grid axis (or a key zipped with one), by its dotted key."""
    field = key.rsplit(".", 1)[-1]
    return {"units": GRID_AXIS_UNITS.get(field, "1"), "long_name": f"grid axis: {key}"}
