"""Exact streamed statistics (`simkit.streaming`) and the cell reduction built on them."""

from __future__ import annotations

import numpy as np
import pytest

from simkit import metrics, streaming
from simkit.aggregate import (
    _CLOSE_COUNTERS,
    BUCKETS,
    HISTOGRAMS,
    LIMITS,
    N_BINS,
    CellAccumulator,
    RunHistograms,
    aggregate_cell,
    derive_block,
    histogram,
)
from simkit.schema.outcomes import UNDERLYING


def chunked(x: np.ndarray, size: int):
    return lambda: (x[i : i + size] for i in range(0, len(x), size))


SAMPLES = {
    "normal": lambda rng, n: rng.normal(size=n),
    "cauchy": lambda rng, n: rng.standard_cauchy(size=n) * 1e3,
    "ties": lambda rng, n: np.round(rng.normal(size=n), 1),
    "constant": lambda rng, n: np.full(n, -1.0),
    "signed zeros": lambda rng, n: rng.choice([-0.0, 0.0, 1e-300, -1e-300, 5.0], size=n),
    "tiny range": lambda rng, n: 1.0 + rng.integers(0, 3, size=n) * np.finfo(float).eps,
}


@pytest.mark.parametrize("kind", SAMPLES)
@pytest.mark.parametrize("collect", [1 << 18, 4])
def test_order_statistics_are_the_sorted_values(kind, collect, monkeypatch):
    """Any ranks, any chunking; a tiny collect threshold forces every radix pass (down to
    buckets of one key, all values equal)."""
    monkeypatch.setattr(streaming, "_COLLECT", collect)
    rng = np.random.default_rng(3)
    for n in (1, 2, 17, 3000):
        x = SAMPLES[kind](rng, n)
        ranks = sorted(set(rng.integers(0, n, size=6).tolist()) | {0, n - 1})
        got, count = streaming.order_statistics(chunked(x, 257), ranks)
        assert count == n
        want = np.sort(x)[ranks]
        assert np.array_equal(got.view(np.uint64), want.view(np.uint64)) or (
            np.array_equal(got, want)  # -0.0 and +0.0 at the same rank compare equal
        )


def test_order_statistics_skip_nan_or_nonfinite_and_rank_past_the_count():
    x = np.array([3.0, np.nan, -np.inf, 1.0, np.inf, 2.0, np.nan])
    got, count = streaming.order_statistics(chunked(x, 2), [0, 4, 5])
    assert count == 5
    assert got[0] == -np.inf and got[1] == np.inf and np.isnan(got[2])
    got, count = streaming.order_statistics(chunked(x, 3), [0, 2], skip="nonfinite")
    assert count == 3 and list(got) == [1.0, 3.0]
    with pytest.raises(ValueError, match="skip"):
        streaming.order_statistics(chunked(x, 3), [0], skip="inf")


SAMPLES["infinities"] = lambda rng, n: rng.choice([-np.inf, np.inf, -1.0, 2.5, 7.0], size=n)


def same_bits(a, b) -> bool:
    """Equal bit for bit, NaN equal to NaN and -0.0 to +0.0 (NumPy's partition puts either
    zero in the middle)."""
    a, b = np.asarray(a, dtype=np.float64) + 0.0, np.asarray(b, dtype=np.float64) + 0.0
    nan = np.isnan(a) & np.isnan(b)
    return bool(
        np.array_equal(a.view(np.uint64)[~nan], b.view(np.uint64)[~nan])
        and (np.array_equal(np.isnan(a), np.isnan(b)))
    )


@pytest.mark.parametrize("kind", SAMPLES)
def test_quantiles_and_medians_equal_numpy_bit_for_bit(kind):
    """Every bit, signed zeros and NaN from infinities included."""
    rng = np.random.default_rng(4)
    qs = [0.0, 0.005, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.995, 1.0, *rng.uniform(size=8)]
    for n in (1, 2, 3, 4, 10, 999, 4253):
        x = SAMPLES[kind](rng, n)
        with np.errstate(invalid="ignore"):
            want_q, want_m = np.quantile(x, qs), np.median(x)
        assert same_bits(streaming.quantiles(chunked(x, 100), qs), want_q), (kind, n)
        assert same_bits(streaming.median(chunked(x, 100)), want_m), (kind, n)


def test_median_nan_rules():
    x = np.array([4.0, np.nan, 1.0, 2.0, -3.0])
    assert np.isnan(streaming.median(chunked(x, 2), n_nan=1))  # numpy.median's rule
    assert streaming.median(chunked(x, 2), skip="nan") == np.nanmedian(x)
    assert np.isnan(streaming.median(chunked(np.array([np.nan]), 1), skip="nan"))


def test_quantiles_nan_rules():
    x = np.array([4.0, np.nan, 1.0, 2.0, np.inf])
    src = chunked(x, 2)
    assert np.isnan(streaming.quantiles(src, [0.5], n_nan=1)).all()  # numpy.quantile's rule
    assert streaming.quantiles(src, [0.5], skip="nan")[0] == np.nanquantile(x, 0.5)
    finite = x[np.isfinite(x)]
    assert streaming.quantiles(src, [0.5], skip="nonfinite")[0] == np.quantile(finite, 0.5)
    assert np.isnan(streaming.quantiles(chunked(np.array([np.nan]), 1), [0.5], skip="nan")[0])


def test_columns_spill_to_files_and_read_back_in_order(tmp_path):
    rng = np.random.default_rng(5)
    parts = [rng.normal(size=(2, n)) for n in (100, 1, 300, 50)]
    with streaming.Columns(["a", "b"], spill_bytes=3000, spill_dir=tmp_path) as cols:
        for p in parts:
            cols.append({"a": p[0], "b": p[1]})
        assert cols.spilled and cols.n == 451
        assert len(list(tmp_path.iterdir())) == 1  # the columns' directory
        for i, name in enumerate("ab"):
            back = list(cols.chunks(name))
            assert [len(c) for c in back] == [100, 1, 300, 50]
            assert np.array_equal(np.concatenate(back), np.concatenate([p[i] for p in parts]))
    assert list(tmp_path.iterdir()) == []  # closed: files removed


def test_columns_of_rows_spill_and_read_back_in_shape(tmp_path):
    rng = np.random.default_rng(6)
    parts = [rng.normal(size=(n, 3)) for n in (40, 2, 70)]
    with streaming.Columns(["rows", "a"], spill_bytes=2000, spill_dir=tmp_path) as cols:
        for p in parts:
            cols.append({"rows": p, "a": p[:, 0]})
        assert cols.spilled
        back = list(cols.chunks("rows"))
        assert [c.shape for c in back] == [(40, 3), (2, 3), (70, 3)]
        assert np.array_equal(np.concatenate(back), np.concatenate(parts))
        with pytest.raises(ValueError, match="changed its shape"):
            cols.append({"rows": np.zeros((5, 4)), "a": np.zeros(5)})


# --------------------------------------------------------------------------- a cell


def _blocks(n_paths: int, size: int, rng) -> list[tuple[int, dict]]:
    """Synthetic engine summaries of one cell, derived block by block as a run does."""
    n_steps, out = 40, []
    for start in range(0, n_paths, size):
        n = min(size, n_paths - start)
        daily = 1 + rng.normal(0.001, 0.03, size=(n, n_steps + 1))
        equity = 1e5 * np.cumprod(daily, axis=1)
        equity[rng.uniform(size=n) < 0.05, -5:] = 0.0  # some paths wiped out
        trades = rng.integers(0, 30, size=n)
        wins = rng.binomial(trades, 0.7)
        summary = {
            "initial_equity": np.full(n, 1e5),
            "final_equity": equity[:, -1],
            "contributions": np.zeros(n),
            "equity": equity,
            "ruined": (equity[:, -1] <= 0).astype(np.int32),
            "ruin_step": np.full(n, -1),
            "n_margin_calls": rng.integers(0, 2, size=n),
            "n_trades": trades,
            "n_wins": wins,
            "sum_win_ret": wins * rng.uniform(0.1, 0.3, size=n),
            "sum_win_ret_sq": wins * 0.05,
            "sum_loss_ret": (trades - wins) * rng.uniform(0.2, 1.0, size=n),
            "sum_loss_ret_sq": (trades - wins) * 0.5,
            "assigned_by_rung": rng.integers(0, 3, size=(n, 5)),
            "contracts_cut": rng.uniform(0, 10, size=n).astype(np.float32),
            "n_entry_days": np.full(n, 40),
            "n_blocked_signal": rng.integers(0, 5, size=n),
            "n_blocked_limits": rng.integers(0, 5, size=n),
            "n_blocked_exit": rng.integers(0, 5, size=n),
            "n_orders_cut": rng.integers(0, 20, size=n),
        }
        for name in _CLOSE_COUNTERS:
            summary[name] = rng.integers(0, 4, size=n)
        summary["n_close_profit_loss"] = rng.binomial(summary["n_close_profit"], 0.2)
        for name in BUCKETS:
            summary[name] = rng.normal(0, 1e3, size=n)
        for x in LIMITS:
            summary[f"breach_{x}"] = rng.integers(0, 3, size=n) * (rng.uniform(size=n) < 0.3)
        spot = 3.0 * np.exp(np.cumsum(rng.normal(0, 0.1, size=(n, n_steps + 1)), axis=1))
        summary.update(
            spot_final=spot[:, -1],
            spot_min=spot.min(axis=1),
            realized_vol=rng.uniform(0.5, 3.0, size=n).astype(np.float32),
            underlying_return=spot[:, -1] / 3.0 - 1,
        )
        derived = derive_block(
            summary, n_steps=n_steps, monthly_addition=0.0, path_start=start, n_sample=10
        )
        out.append((start, derived))
    return out


class _Strategy:
    kelly_multiplier = 0.25
    max_total_strategy_pct = 0.5
    strikes = (1, 2, 3, 4, 5)
    portfolio_value = 1_000_000.0


def _reduce(blocks, n_paths, order, **kwargs):
    acc = CellAccumulator(n_paths, **kwargs)
    try:
        for i in order:
            start, arrays = blocks[i]
            acc.add(start, {k: v.copy() for k, v in arrays.items()})
        assert acc.complete
        return (
            acc.result(strategy=_Strategy, n_steps=40, rate=0.05),
            acc.equity_sample(),
            acc.columns,
        )
    finally:
        acc.close()


def _same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        x, y = np.asarray(a[k], dtype=float), np.asarray(b[k], dtype=float)
        assert np.array_equal(x.view(np.uint64), y.view(np.uint64)), k


def test_cell_reduction_is_the_same_for_any_blocks_order_and_spill(monkeypatch, tmp_path):
    """Blocks of 7 or 50 paths, in order or shuffled, columns in memory or in files: the same
    bits (the sums are taken over fixed segments of paths, here 64)."""
    monkeypatch.setattr(streaming, "SEGMENT", 64)
    n = 333
    whole = _blocks(n, n, np.random.default_rng(6))
    base, sample, _ = _reduce(whole, n, [0])
    assert sample.shape == (10, 41)
    for size in (7, 50):
        blocks = _split(whole[0][1], size)
        order = np.random.default_rng(size).permutation(len(blocks))
        for spill in (None, 4096):
            got, got_sample, _ = _reduce(blocks, n, order, spill_bytes=spill, spill_dir=tmp_path)
            _same(base, got)
            assert np.array_equal(sample, got_sample)
    assert list(tmp_path.iterdir()) == []


def _split(derived: dict, size: int) -> list[tuple[int, dict]]:
    n = len(derived["final_equity"])
    out = []
    for start in range(0, n, size):
        part = {k: v[start : start + size] for k, v in derived.items() if k != "_equity_sample"}
        part["_equity_sample"] = derived["_equity_sample"][start : start + size]
        out.append((start, part))
    return out


def test_cell_reduction_matches_numpy_on_the_whole_arrays(monkeypatch):
    """Independent truth: NumPy and `simkit.metrics` on the concatenated per-path arrays."""
    monkeypatch.setattr(streaming, "SEGMENT", 100)
    n = 1234
    blocks = _blocks(n, 300, np.random.default_rng(8))
    got, _, _ = _reduce(blocks, n, range(len(blocks)), spill_bytes=8000)
    x = {k: np.concatenate([b[k] for _, b in blocks]) for k in blocks[0][1]}
    total, annual, dd = x["total_return"], x["annual_return"], x["max_drawdown"]
    exact = {
        "final_equity_median": np.median(x["final_equity"]),
        "annual_return_quantile": np.quantile(annual, (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)),
        "max_drawdown_quantile": np.quantile(dd, (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)),
        "annual_return_median_lo": metrics.quantile_ci(annual, 0.5).lo,
        "annual_return_median_hi": metrics.quantile_ci(annual, 0.5).hi,
        "sharpe": np.nanmedian(x["path_sharpe"]),
        "daily_var_99_median": np.nanmedian(x["daily_var_99"]),
        "var_99": metrics.value_at_risk(total, 0.99),
        **{
            f"{name}_quantile": np.quantile(
                x[name].astype(np.float64), (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
            )
            for name in UNDERLYING
        },
    }
    for k, v in exact.items():
        assert np.array_equal(got[k], v), k
    exact_too = {
        "cvar_95": metrics.conditional_value_at_risk(total, 0.95),
        "cvar_99": metrics.conditional_value_at_risk(total, 0.99),
        "max_drawdown_median": np.nanmedian(dd),
    }
    for k, v in exact_too.items():
        assert np.array_equal(got[k], v), k
    close = {
        "annual_return_mean_se": metrics.mean_se(annual).se,
        "total_return_mean": total.mean(),
        "attribution_mean": [x[b].mean() for b in BUCKETS],
        "contracts_cut_mean": x["contracts_cut"].astype(np.float64).mean(),
        **{f"{name}_mean": x[name].astype(np.float64).mean() for name in UNDERLYING},
        "breach_path_share": [(x[f"breach_{lim}"] > 0).mean() for lim in LIMITS],
        "close_reason_share": [x[c].sum() for c in _CLOSE_COUNTERS]
        / np.sum([x[c].sum() for c in _CLOSE_COUNTERS]),
    }
    for k, v in close.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-12, err_msg=k)
    kelly = metrics.kelly_inputs(
        *(
            x[k]
            for k in (
                "n_wins",
                "n_trades",
                "sum_win_ret",
                "sum_win_ret_sq",
                "sum_loss_ret",
                "sum_loss_ret_sq",
            )
        )
    )
    for ours, theirs in (
        ("kelly_p_lo", "p_lo"),
        ("kelly_fraction_hi", "seed_fraction_hi"),
        ("kelly_growth_optimal", "growth_optimal"),
    ):
        np.testing.assert_allclose(got[ours], kelly[theirs], rtol=1e-12, err_msg=ours)
    finite = total[np.isfinite(total)]
    lo, hi = np.quantile(finite, (0.005, 0.995))
    counts, edges = np.histogram(np.clip(finite, lo, hi), bins=60, range=(lo, hi))
    assert np.array_equal(got["total_return_hist"], counts)
    assert np.array_equal(got["total_return_bin_edge"], edges)
    # aggregate_cell (one call on the whole arrays) is the same reduction
    _same(got, aggregate_cell(x, strategy=_Strategy, n_steps=40, rate=0.05))


def test_run_histograms_put_every_cell_on_common_edges(monkeypatch, tmp_path):
    """Three cells of different scales: each counted on equal bins from the lowest cell's
    0.5 % quantile to the highest cell's 99.5 % quantile (independent truth: NumPy on the
    cell's values), the same whether the kept columns stay in memory or go to files."""
    monkeypatch.setattr(streaming, "SEGMENT", 64)
    rng = np.random.default_rng(11)
    cells = {}
    for number, scale in enumerate((0.2, 1.0, 5.0)):
        blocks = _blocks(300, 100, rng)
        for _, block in blocks:
            block["total_return"] = block["total_return"] * scale + scale
        cells[number] = blocks
    values = {
        name: [np.concatenate([b[name] for _, b in blocks]) for blocks in cells.values()]
        for name in HISTOGRAMS
    }
    for budget in (None, 0):
        histograms = RunHistograms(len(cells), spill_dir=tmp_path, budget_bytes=budget)
        results = {}
        for number, blocks in cells.items():
            acc = CellAccumulator(300)
            for start, arrays in blocks:
                acc.add(start, {k: v.copy() for k, v in arrays.items()})
            results[number] = acc.result(strategy=_Strategy, n_steps=40, rate=0.05)
            histograms.keep(number, acc)
            acc.close()
        assert len(list(tmp_path.iterdir())) == (3 if budget == 0 else 0)  # spilled or not
        histograms.finish(results)
        histograms.close()
        assert list(tmp_path.iterdir()) == []
        for name, cell_values in values.items():
            finite = [v[np.isfinite(v)] for v in cell_values]
            lo = min(np.quantile(v, 0.005) for v in finite)
            hi = max(np.quantile(v, 0.995) for v in finite)
            edges = np.histogram_bin_edges([], bins=N_BINS, range=(lo, hi))
            for number, v in enumerate(finite):
                got = results[number]
                assert np.array_equal(got[f"{name}_bin_edge"], edges), name
                want = np.histogram(np.clip(v, lo, hi), bins=N_BINS, range=(lo, hi))[0]
                assert np.array_equal(got[f"{name}_hist"], want), name
                assert got[f"{name}_hist"].sum() == v.size


def test_a_run_of_one_cell_keeps_its_own_histogram():
    """One cell: nothing kept, its own edges are the run's."""
    blocks = _blocks(100, 100, np.random.default_rng(12))
    histograms = RunHistograms(1)
    acc = CellAccumulator(100)
    acc.add(0, blocks[0][1])
    result = acc.result(strategy=_Strategy, n_steps=40, rate=0.05)
    own = {k: result[k].copy() for k in ("total_return_hist", "total_return_bin_edge")}
    histograms.keep(0, acc)
    acc.close()
    histograms.finish({0: result})
    for k, v in own.items():
        assert np.array_equal(result[k], v)
    counts, edges = histogram(blocks[0][1]["total_return"])
    assert np.array_equal(own["total_return_hist"], counts)
    assert np.array_equal(own["total_return_bin_edge"], edges)


ULP = np.finfo(float).eps


@pytest.mark.parametrize(
    "values",
    [
        [1.0, 1.0 + ULP, 1.0 + 2 * ULP, 1.0 + 2 * ULP],  # values a few ulps apart
        [1.0, 1.0 + 2e-16, 1.0 + 4.4e-16, 1.0, 1.0],
        0.025597724338679108 * (1.0 + np.arange(7) * ULP),  # a deterministic cell's returns
        -205119.54486774 * (1.0 + np.arange(5) * ULP),
        [-1e-300, 1e-300, 0.0],
        [0.0, 5e-324, 1e-323],  # subnormals: a range below any relative tolerance
        [3.0, 3.0, 3.0],  # exactly equal (the old guard)
        [1.0, 1.0 + 1e-8, 1.0 + 2e-8],  # narrow but wide enough for the bins: kept
    ],
)
def test_histogram_of_nearly_equal_values_has_a_usable_range(values):
    """Values a few ulps apart (the paths of a deterministic market) get 60 increasing bin
    edges around the quantile range, and every value is counted (the end bins take those
    outside it)."""
    x = np.asarray(values, dtype=np.float64)
    counts, edges = histogram(x)
    lo, hi = np.quantile(x, (0.005, 0.995))
    assert counts.shape == (N_BINS,) and edges.shape == (N_BINS + 1,)
    assert np.all(np.diff(edges) > 0)
    assert edges[0] <= lo and hi <= edges[-1]
    assert counts.sum() == len(x)
    assert np.array_equal(counts, np.histogram(np.clip(x, edges[0], edges[-1]), bins=edges)[0])
    if hi - lo > max(1e-9 * np.abs(x).max(), 1e-300):  # wide enough for the bins: kept
        assert (edges[0], edges[-1]) == (lo, hi)


def test_empty_cell_is_an_error():
    with pytest.raises(ValueError, match="at least one path"):
        CellAccumulator(0).result(strategy=_Strategy, n_steps=40, rate=0.05)


def test_result_before_every_block_is_an_error():
    blocks = _blocks(20, 10, np.random.default_rng(9))
    acc = CellAccumulator(20)
    acc.add(10, blocks[1][1])
    assert not acc.complete
    with pytest.raises(ValueError, match="blocks up to path 0"):
        acc.result(strategy=_Strategy, n_steps=40, rate=0.05)
    acc.close()
