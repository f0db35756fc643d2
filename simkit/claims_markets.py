"""Verdicts across markets: where in a family of plausible markets each seed claim holds.

The claims check (`simkit.claims`) judges the seed's promises on one market, the scenario's,
whose realized volatility, drift and IV level are our own choices. This module asks the
question a skeptic asks next: *is there any plausible market in which the claim comes true,
and where does it start to?* The family is a range per market key (`[claims]` table of the
scenario, `simkit.scenario.ClaimsTable`: by default realized vol 0.2-3.0, drift -0.5-1.5,
long-run IV 1.0-4.25, jump intensity 0-8 for merton markets). For each performance claim:

1. *Break-even along each key.* From the scenario's own market, one key moves at a time over
   `scan_points` values of its range (plus the scenario's value); every market is a one-cell
   run on the scenario's seed and path keys (common random numbers), so the claim's metric is a
   deterministic function of the key and its differences carry no path noise. Where the
   metric crosses the claimed value between two scanned values (the crossing nearest the
   scenario's value), Brent's method finds the break-even to 1e-3 of the range; its standard
   error is `se(metric) / |slope|` (the metric's own standard error at the root over the
   secant slope of the bracketing scan points). `null` when the claim holds nowhere along
   the key; `holds = "everywhere"` when it holds at every scanned value.
2. *Anywhere in the family.* A coarse grid of three values per key (low, middle, high; every
   combination, one `simkit.run.simulate` of a `[grid]`) says whether the claim holds in any
   cell, and in how many.
3. *A map.* Over the two keys that move the claims most (largest spread of the metric along
   their scans, relative to the claimed value), a 5 x 5 grid with the other keys at the
   scenario's values: a figure with one panel per claim, the claim's contour and where it
   holds.

A claim *holds* in a market when the metric's estimate meets the claimed value: annual return
(mean over paths) >= 135 %, Sharpe (median path) >= 4.20, trade win rate >= 89.2 %, and the
worst-case drawdown: the 5 % quantile of the maximum drawdown >= -26.6 % (95 % of simulated
years no worse, the baseline row's rule).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import optimize, stats

from simkit import metrics
from simkit.run import simulate as run_simulate
from simkit.scenario import parse_scenario

__all__ = ["Claim", "MarketVerdicts", "claim_values", "judge_across_markets", "plot_claim_map"]

CONF = 0.95
_Z = float(stats.norm.ppf(0.5 + CONF / 2))
GRID_POINTS = 3  # values per key in the "anywhere" grid
MAP_POINTS = 5  # values per key in the map's grid


@dataclasses.dataclass(frozen=True)
class Claim:
    """One performance claim of the seed: the metric that tests it and the value promised."""

    name: str
    label: str
    claimed: float
    unit: str  # "pct" or "ratio": how to print the metric


def claim_values(ds: Any) -> dict[str, tuple[float, float]]:
    """(estimate, standard error) of each claim's metric in a one-cell result (NaN se where the
    dataset cannot give one: the median Sharpe and the drawdown quantile need `--per-path`)."""

    def scalar(name: str) -> float:
        return float(np.asarray(ds[name].values))

    out = {"annual_return": (scalar("annual_return_mean"), scalar("annual_return_mean_se"))}
    win, lo, hi = (scalar(f"win_rate_trade{s}") for s in ("", "_lo", "_hi"))
    out["win_rate"] = (win, (hi - lo) / (2 * _Z))
    if "path_sharpe" in ds:
        sharpe = np.asarray(ds["path_sharpe"].values, dtype=np.float64)
        sharpe = sharpe[np.isfinite(sharpe)]
        est = metrics.quantile_ci(sharpe, 0.5, CONF) if sharpe.size else None
        out["sharpe"] = (
            (float(est.estimate), float(est.hi - est.lo) / (2 * _Z)) if est else (math.nan,) * 2
        )
        dd = np.asarray(ds["max_drawdown"].values, dtype=np.float64)
        est = metrics.quantile_ci(dd, 0.05, CONF)
        out["max_drawdown"] = (float(est.estimate), float(est.hi - est.lo) / (2 * _Z))
    else:
        out["sharpe"] = (scalar("sharpe"), math.nan)
        q = ds["max_drawdown_quantile"].sel(quantile=0.05, method="nearest")
        out["max_drawdown"] = (float(np.asarray(q.values)), math.nan)
    for key, (value, se) in out.items():
        out[key] = (value, se if math.isfinite(se) else math.nan)
    return out


def _holds(value: float, claimed: float) -> bool:
    return bool(value >= claimed)


@dataclasses.dataclass
class MarketVerdicts:
    """What `judge_across_markets` found: per claim, the break-even along each key, whether
    it holds anywhere in the grid, and a verdict sentence."""

    claims: tuple[Claim, ...]
    family: dict[str, tuple[float, float]]
    scenario_values: dict[str, float]
    break_even: dict[str, dict[str, dict[str, Any] | None]]  # claim -> key -> finding
    grid_cells: int
    grid_holds: dict[str, int]  # claim -> cells where it holds
    holds_anywhere: dict[str, bool]
    verdict: dict[str, str]
    influential: tuple[str, ...]
    scans: dict[str, dict[str, Any]]  # key -> {"values": [...], claim: [metric, ...]}
    map: dict[str, Any] | None
    left_out: list[str]
    evaluations: int
    paths: int

    def to_json(self) -> dict[str, Any]:
        return {
            "family": {k: list(v) for k, v in self.family.items()},
            "scenario_values": self.scenario_values,
            "left_out": self.left_out,
            "paths_per_market": self.paths,
            "evaluations": self.evaluations,
            "grid_cells": self.grid_cells,
            "influential_keys": list(self.influential),
            "claims": {
                c.name: {
                    "claimed": c.claimed,
                    "break_even": self.break_even[c.name],
                    "holds_anywhere": self.holds_anywhere[c.name],
                    "grid_cells_holding": self.grid_holds[c.name],
                    "verdict": self.verdict[c.name],
                }
                for c in self.claims
            },
        }


class _Markets:
    """One-cell runs of the scenario with some market keys changed, on the scenario's seed
    (common random numbers), cached by the changed values."""

    def __init__(self, scenario: Any, simulate: Callable[..., Any], run_kwargs: dict):
        self.scenario = scenario
        self.simulate = simulate
        self.run_kwargs = run_kwargs
        self.cache: dict[tuple, dict[str, tuple[float, float]]] = {}

    def __call__(self, changes: Mapping[str, float]) -> dict[str, tuple[float, float]]:

        key = tuple(sorted(changes.items()))
        if key not in self.cache:
            overrides = {**self.scenario.overrides, **changes}
            variant = parse_scenario(
                self.scenario.text, path=self.scenario.path, overrides=overrides
            )
            ds = self.simulate(variant, per_path=True, progress=False, **self.run_kwargs)
            self.cache[key] = claim_values(ds)
        return self.cache[key]


def _scan_values(low: float, high: float, points: int, own: float) -> list[float]:
    values = set(np.linspace(low, high, points).round(12).tolist())
    if low <= own <= high:
        values.add(float(own))
    return sorted(values)


def _break_even(
    markets: _Markets, key: str, values: list[float], metric: list, claim: Claim, own: float
) -> dict[str, Any] | None:
    holds = [_holds(m, claim.claimed) for m in metric]
    if not any(holds):
        return None
    if all(holds):
        return {"value": None, "se": None, "holds": "everywhere"}
    finite = [math.isfinite(m) for m in metric]
    pairs = [
        i
        for i in range(len(values) - 1)
        if finite[i] and finite[i + 1] and holds[i] != holds[i + 1]
    ]
    if not pairs:  # the claim's holding points are next to undefined metrics only
        return {"value": None, "se": None, "holds": "undetermined", "crossings": 0}
    i = min(pairs, key=lambda j: abs((values[j] + values[j + 1]) / 2 - own))
    a, b = values[i], values[i + 1]

    def gap(x: float) -> float:
        if x == a:
            return metric[i] - claim.claimed
        if x == b:
            return metric[i + 1] - claim.claimed
        return markets({key: x})[claim.name][0] - claim.claimed

    width = values[-1] - values[0]
    try:
        root = float(optimize.brentq(gap, a, b, xtol=1e-3 * width, maxiter=60))
    except ValueError:  # the metric is undefined (NaN) inside the bracket
        return {"value": None, "se": None, "holds": "undetermined", "crossings": len(pairs)}
    slope = (metric[i + 1] - metric[i]) / (b - a)
    se_metric = markets({key: root})[claim.name][1]  # the metric's own error at the root
    se = abs(se_metric / slope) if slope and math.isfinite(se_metric) else math.nan
    return {
        "value": root,
        "se": se if math.isfinite(se) else None,
        "holds": "below" if holds[i] else "above",
        "crossings": len(pairs),  # more than one: the claim holds on several stretches
        "bracket": [a, b],
    }


def _sentence(claim: Claim, findings: dict, holds_anywhere: bool, cells: int, total: int) -> str:
    if not holds_anywhere:
        return (
            f"refuted: holds in none of the {total} grid cells and none of the one-key moves "
            "tried (point estimates)"
        )
    parts = []
    for key, f in findings.items():
        if f is None or f["holds"] == "undetermined":
            continue
        if f["holds"] == "everywhere":
            parts.append(f"at every {key} of the range")
            continue
        se = f" ± {f['se']:.2g}" if f["se"] is not None else ""
        sign = "<" if f["holds"] == "below" else ">"
        more = f" (nearest of {f['crossings']} crossings)" if f.get("crossings", 1) > 1 else ""
        parts.append(f"{key} {sign} {f['value']:.3g}{se}{more}")
    if parts:
        where = "holds where " + " or ".join(parts) + " (other keys at the scenario's values)"
    else:
        where = "holds in no one-key move from the scenario"
    return f"{where}; in {cells} of {total} grid cells"


def _grid_text(text: str, axes: Mapping[str, Sequence[float]]) -> str:
    lines = ["", "[grid]"]
    lines += [f'"{k}" = [{", ".join(repr(float(v)) for v in vals)}]' for k, vals in axes.items()]
    return text + "\n".join(lines) + "\n"


def _grid_run(
    scenario: Any, axes: Mapping[str, Sequence[float]], simulate, run_kwargs
) -> list[dict[str, tuple[float, float]]]:
    """Aggregates of every cell of a grid over `axes`, C order; the scenario's overrides of
    the same keys are dropped (the grid sets them)."""

    overrides = {k: v for k, v in scenario.overrides.items() if k not in axes}
    gridded = parse_scenario(
        _grid_text(scenario.text, axes), path=scenario.path, overrides=overrides
    )
    ds = simulate(gridded, progress=False, **run_kwargs)
    dims = list(axes)
    out = []
    for index in np.ndindex(*[len(v) for v in axes.values()]):
        cell = ds.isel(dict(zip(dims, index, strict=True)))
        out.append(claim_values(cell))
    return out


def judge_across_markets(
    scenario: Any,
    claims: Sequence[Claim],
    *,
    paths: int | None = None,
    seed: int | None = None,
    engine: str | None = None,
    simulate: Callable[..., Any] | None = None,
    with_map: bool = True,
) -> MarketVerdicts:
    """Break-evens, the coarse grid and the map for every claim of `claims` (module doc).

    Args:
      scenario: a one-cell scenario; its `[claims]` table gives the family.
      claims: the claims to judge (`simkit.claims.MARKET_CLAIMS`); `name` is one of
        `annual_return`, `sharpe`, `win_rate`, `max_drawdown` (`claim_values`).
      paths: paths per market. Default value: the `[claims]` table's `paths`.
      seed, engine: override the scenario's.
      simulate: the simulator. Default value: `simkit.run.simulate`.
      with_map: also run the map's 5 x 5 grid over the two most influential keys.
    """

    simulate = simulate or run_simulate
    claims = tuple(claims)
    table = scenario.claims
    family, left_out = _family(scenario)
    paths = int(paths if paths is not None else table.paths)
    run_kwargs = dict(paths=paths, seed=seed, engine=engine)
    markets = _Markets(scenario, simulate, run_kwargs)
    own = {k: float(getattr(scenario.market, k.split(".", 1)[1])) for k in family}
    scans, break_even = _scan_keys(markets, family, own, claims, table.scan_points)

    axes = {k: [lo, (lo + hi) / 2, hi] for k, (lo, hi) in family.items()}
    cells = _grid_run(scenario, axes, simulate, run_kwargs) if axes else []
    grid_holds = {c.name: sum(_holds(cell[c.name][0], c.claimed) for cell in cells) for c in claims}
    holds_anywhere, verdict = _verdicts(claims, scans, break_even, grid_holds, len(cells))
    influential = _most_influential(family, scans, claims)
    claim_map = None
    if with_map and len(influential) == 2:
        claim_map, map_cells = _map_run(scenario, family, influential, claims, simulate, run_kwargs)
        _add_map_verdicts(claims, map_cells, holds_anywhere, verdict)
    return MarketVerdicts(
        claims=claims,
        family=family,
        scenario_values=own,
        break_even=break_even,
        grid_cells=len(cells),
        grid_holds=grid_holds,
        holds_anywhere=holds_anywhere,
        verdict=verdict,
        influential=influential,
        scans=scans,
        map=claim_map,
        left_out=left_out,
        evaluations=len(markets.cache),
        paths=paths,
    )


def _family(scenario: Any) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """The `[claims]` table's key ranges that move this market, and the keys left out (why)."""
    family = scenario.claims.ranges()
    left_out = []
    model = scenario.market.model
    if model not in ("merton", "bates") and "market.jump_intensity" in family:
        family.pop("market.jump_intensity")
        left_out.append(f"market.jump_intensity (the market model is {model})")
    if model in ("heston", "bates", "garch") and "market.sigma" in family:
        family.pop("market.sigma")  # the stock's vol is the variance process's
        left_out.append(f"market.sigma (not read by {model}: its vol is the variance process)")
    if getattr(scenario.market, "linked_iv", False) and "market.iv_long_run" in family:
        family.pop("market.iv_long_run")
        left_out.append("market.iv_long_run (not read: IV is linked to the stock's variance)")
    return family, left_out


def _scan_keys(
    markets: _Markets,
    family: Mapping[str, tuple[float, float]],
    own: Mapping[str, float],
    claims: tuple[Claim, ...],
    scan_points: int,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Each key moved alone over its range: the claims' metrics along it (key ->
    {"values": [...], claim: [metric, ...]}) and each claim's break-even on it (claim -> key
    -> finding, `_break_even`)."""
    scans: dict[str, dict[str, Any]] = {}
    break_even: dict[str, dict[str, Any]] = {c.name: {} for c in claims}
    for key, (low, high) in family.items():
        values = _scan_values(low, high, scan_points, own[key])
        found = [markets({key: v}) for v in values]
        scans[key] = {"values": values}
        for claim in claims:
            metric = [f[claim.name][0] for f in found]
            scans[key][claim.name] = metric
            break_even[claim.name][key] = _break_even(markets, key, values, metric, claim, own[key])
    return scans, break_even


def _verdicts(
    claims: tuple[Claim, ...],
    scans: Mapping[str, dict[str, Any]],
    break_even: Mapping[str, dict[str, Any]],
    grid_holds: Mapping[str, int],
    cells: int,
) -> tuple[dict[str, bool], dict[str, str]]:
    """Per claim: whether it holds at any scanned market or grid cell, and the verdict
    sentence (`_sentence`) of the scans and the `cells`-cell grid."""
    holds_anywhere, verdict = {}, {}
    for claim in claims:
        on_scans = any(_holds(m, claim.claimed) for s in scans.values() for m in s[claim.name])
        holds_anywhere[claim.name] = bool(grid_holds[claim.name] > 0 or on_scans)
        verdict[claim.name] = _sentence(
            claim, break_even[claim.name], holds_anywhere[claim.name], grid_holds[claim.name], cells
        )
    return holds_anywhere, verdict


def _most_influential(
    family: Mapping[str, tuple[float, float]],
    scans: Mapping[str, dict[str, Any]],
    claims: tuple[Claim, ...],
) -> tuple[str, ...]:
    """The two keys whose scans move some claim's metric most, relative to the claimed value."""

    def spread(key: str) -> float:
        out = 0.0
        for claim in claims:
            m = np.asarray(scans[key][claim.name], dtype=np.float64)
            m = m[np.isfinite(m)]
            if m.size:
                out = max(out, float(m.max() - m.min()) / abs(claim.claimed))
        return out

    return tuple(sorted(family, key=spread, reverse=True)[:2])


def _map_run(
    scenario: Any,
    family: Mapping[str, tuple[float, float]],
    influential: tuple[str, ...],
    claims: tuple[Claim, ...],
    simulate: Callable[..., Any],
    run_kwargs: dict[str, Any],
) -> tuple[dict[str, Any], list[dict[str, tuple[float, float]]]]:
    """The map: a `MAP_POINTS` x `MAP_POINTS` grid over the two influential keys, the others
    at the scenario's values; (each claim's metric over it, the grid's cells)."""
    map_axes = {k: np.linspace(*family[k], MAP_POINTS).round(12).tolist() for k in influential}
    map_cells = _grid_run(scenario, map_axes, simulate, run_kwargs)
    claim_map = {
        "keys": list(influential),
        "values": [map_axes[k] for k in influential],
        **{
            c.name: np.array([cell[c.name][0] for cell in map_cells])
            .reshape(MAP_POINTS, MAP_POINTS)
            .tolist()
            for c in claims
        },
    }
    return claim_map, map_cells


def _add_map_verdicts(
    claims: tuple[Claim, ...],
    map_cells: list[dict[str, tuple[float, float]]],
    holds_anywhere: dict[str, bool],
    verdict: dict[str, str],
) -> None:
    """The map's markets count too: a hatched cell is a market where the claim holds."""
    for c in claims:
        held = sum(_holds(cell[c.name][0], c.claimed) for cell in map_cells)
        if held:
            holds_anywhere[c.name] = True
            if verdict[c.name].startswith("refuted"):
                verdict[c.name] = "holds in no one-key move or grid cell"
            verdict[c.name] += f"; in {held} of {len(map_cells)} cells of the map"


def plot_claim_map(found: MarketVerdicts, out: Any) -> bool:
    """A PNG at `out`: per claim, its metric over the two most influential keys with the
    claimed value's contour; the region where the claim holds is hatched. False when there is
    no map."""
    if found.map is None:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kx, ky = found.map["keys"]
    xs, ys = (np.asarray(v) for v in found.map["values"])
    claims = found.claims
    fig, axes = plt.subplots(1, len(claims), figsize=(4.2 * len(claims), 4.0), squeeze=False)
    for ax, claim in zip(axes[0], claims, strict=True):
        z = np.asarray(found.map[claim.name], dtype=np.float64)  # (x, y)
        scale = 100.0 if claim.unit == "pct" else 1.0
        mesh = ax.pcolormesh(xs, ys, scale * z.T, shading="nearest", cmap="RdYlGn")
        fig.colorbar(mesh, ax=ax, label="%" if claim.unit == "pct" else "")
        holds = (z >= claim.claimed).T
        if holds.any() and not holds.all():
            ax.contour(
                xs, ys, z.T, levels=[claim.claimed], colors="k", linewidths=1.5,
                linestyles="solid",
            )  # fmt: skip
        if holds.any():
            ax.contourf(
                xs, ys, holds.astype(float), levels=[0.5, 1.5], colors="none", hatches=["//"]
            )
        ax.plot(found.scenario_values[kx], found.scenario_values[ky], "k*", ms=10, label="scenario")
        shown = f"{scale * claim.claimed:g}{' %' if claim.unit == 'pct' else ''}"
        where = "holds: hatched" if holds.any() else "holds nowhere here"
        ax.set_title(f"{claim.label}\nclaim {shown}; {where}", fontsize=9)
        ax.set_xlabel(kx)
        ax.set_ylabel(ky)
    fig.suptitle(
        f"Where do the seed's claims hold? {found.paths} paths per market "
        "(other keys at the scenario's values)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True
