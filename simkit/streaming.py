"""Exact statistics of per-path columns too long to hold in memory.

A cell of a run reduces millions of paths to medians, quantiles, intervals and histograms.
Those need order statistics, which need every value; `Columns` keeps the few per-path columns
they use (float64, in path order) in memory up to `spill_bytes` and moves them to files after
that, so a run's memory is set by its chunk size and not by its path count. Every statistic
here is computed in passes over the columns' fixed segments, never by loading a column whole:

- `order_statistics`: the exact k-th smallest values, by radix selection on the values' bits
  (a histogram of the next 16 bits per pass; a bucket small enough is collected and
  partitioned). Two passes for typical data, at most five.
- `quantiles`: NumPy's default (`method="linear"`) quantiles from two order statistics,
  the same floating-point operations as `numpy.quantile`, so the same numbers.

Segments are `SEGMENT` paths long wherever a run's blocks begin and end, so any sum taken
segment by segment (and then over the segments in order) is the same for any chunk size,
scheduler or resume.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

__all__ = ["SEGMENT", "SPILL_BYTES", "Columns", "median", "order_statistics", "quantiles"]

SEGMENT = 1 << 16  # paths per segment: the unit of every streamed sum
SPILL_BYTES = 256 << 20  # per-path columns of a cell held in memory up to this, then in files
_DIGIT = 16  # bits resolved per selection pass
_COLLECT = 1 << 18  # a bucket with at most this many values is collected and partitioned
_SIGN = np.uint64(1 << 63)


class Columns:
    """Named float64 per-path columns of one cell, appended segment by segment in path order.

    A column is `(n,)` per segment, or `(n, k)` (k values a path, e.g. period returns; the
    same k in every segment).

    Held in memory until they pass `spill_bytes`, then written to (and read back from) one
    raw file per column in a temporary directory under `spill_dir` (the system's temporary
    directory when None), removed by `close`. `chunks(name)` gives the column back in the
    segments it was appended in, in order.
    """

    def __init__(
        self,
        names: Sequence[str],
        *,
        spill_bytes: int | None = None,
        spill_dir: str | os.PathLike | None = None,
    ):
        self.names = tuple(names)
        self.spill_bytes = int(SPILL_BYTES if spill_bytes is None else spill_bytes)
        self.spill_dir = spill_dir
        self.n = 0
        self._lengths: list[int] = []
        self._memory: dict[str, list[np.ndarray]] | None = {k: [] for k in self.names}
        self._files: tempfile.TemporaryDirectory | None = None
        self._trailing: dict[str, tuple[int, ...]] = {}

    @property
    def spilled(self) -> bool:
        return self._files is not None

    def _path(self, name: str) -> Path:
        return Path(self._files.name) / f"{name}.f8"

    def append(self, segment: dict[str, np.ndarray]) -> None:
        """Add the next segment: `name -> (n,)` values of the next `n` paths, every name."""
        n = len(segment[self.names[0]])
        if n == 0:
            return
        values = {k: np.array(segment[k], dtype=np.float64, copy=True) for k in self.names}
        if any(v.shape[:1] != (n,) for v in values.values()):
            raise ValueError("every column of a segment must have the same length")
        for k, v in values.items():
            if self._trailing.setdefault(k, v.shape[1:]) != v.shape[1:]:
                raise ValueError(f"column {k!r} changed its shape per path: {v.shape[1:]}")
        width = sum(math.prod(self._trailing[k]) for k in self.names)
        if self._memory is not None and (self.n + n) * 8 * width > self.spill_bytes:
            self._spill()
        if self._memory is not None:
            for k in self.names:
                self._memory[k].append(values[k])
        else:
            for k in self.names:
                with open(self._path(k), "ab") as f:
                    values[k].tofile(f)
        self._lengths.append(n)
        self.n += n

    def _spill(self) -> None:
        self._files = tempfile.TemporaryDirectory(
            prefix="simkit-columns-", dir=self.spill_dir, ignore_cleanup_errors=True
        )
        memory, self._memory = self._memory, None
        for k in self.names:
            with open(self._path(k), "wb") as f:
                for part in memory.pop(k):
                    part.tofile(f)

    def chunks(self, name: str) -> Iterator[np.ndarray]:
        """The column `name`, segment by segment in path order."""
        if self._memory is not None:
            yield from self._memory[name]
            return
        with open(self._path(name), "rb") as f:
            shape = self._trailing.get(name, ())
            for n in self._lengths:
                values = np.fromfile(f, dtype=np.float64, count=n * math.prod(shape))
                yield values.reshape((n, *shape))

    def source(self, name: str) -> Callable[[], Iterable[np.ndarray]]:
        """A callable giving a fresh pass over column `name` (what the statistics take)."""
        return lambda: self.chunks(name)

    def close(self) -> None:
        """Drop the columns (and remove their files)."""
        if self._files is not None:
            self._files.cleanup()
            self._files = None
        self._memory = {k: [] for k in self.names}
        self._lengths, self.n = [], 0
        self._trailing = {}

    def __enter__(self) -> Columns:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- selection


def _keys(x: np.ndarray) -> np.ndarray:
    """Unsigned integers in the order of the float64 values (-0.0 just below +0.0)."""
    bits = x.view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def _values(keys: np.ndarray) -> np.ndarray:
    keys = np.asarray(keys, dtype=np.uint64)
    bits = np.where(keys & _SIGN, keys ^ _SIGN, ~keys)
    return bits.view(np.float64)


def _valid(chunk: np.ndarray, skip: str) -> np.ndarray:
    chunk = np.asarray(chunk, dtype=np.float64)
    return chunk[np.isfinite(chunk)] if skip == "nonfinite" else chunk[~np.isnan(chunk)]


def order_statistics(
    source: Callable[[], Iterable[np.ndarray]],
    ranks: Sequence[int] | Callable[[int], Sequence[int]],
    *,
    skip: str = "nan",
) -> tuple[np.ndarray, int]:
    """Exact order statistics of the values one pass of `source()` yields.

    Args:
      source: a callable; each call gives a new iterator over the values' chunks (1-D).
      ranks: 0-based ranks among the kept values (0 = the smallest), or a function of the
        count of kept values giving them (known after the first pass).
      skip: which values are left out: "nan" (NaN) or "nonfinite" (NaN and +-inf).

    Returns:
      (the values at the ranks as float64, NaN for a rank not below the count; the count
      of kept values).
    """
    if skip not in ("nan", "nonfinite"):
        raise ValueError(f"skip must be 'nan' or 'nonfinite'; got {skip!r}")
    # A group (prefix, low): the values whose key >> low == prefix, `low` bits unresolved.
    # Each pass histograms the next 16 bits of the groups still too large and collects the
    # values of the groups small enough; every rank goes down into its bucket. The first
    # pass (every value, one group) also counts the values.
    wanted: dict[tuple[int, int], list[tuple[int, int]]] = {(0, 64): []}
    sizes: dict[tuple[int, int], int | None] = {(0, 64): None}
    count: int | None = None
    out = np.zeros(0)
    while wanted:
        split = [g for g in wanted if sizes[g] is None or sizes[g] > _COLLECT]
        collect = [g for g in wanted if g not in split]
        hist = {g: np.zeros(1 << _DIGIT, dtype=np.int64) for g in split}
        held: dict[tuple[int, int], list[np.ndarray]] = {g: [] for g in collect}
        for chunk in source():
            keys = _keys(_valid(chunk, skip))
            for prefix, low in split:
                sel = keys if low == 64 else keys[(keys >> np.uint64(low)) == prefix]
                digits = (sel >> np.uint64(low - _DIGIT)) & np.uint64((1 << _DIGIT) - 1)
                hist[(prefix, low)] += np.bincount(digits.astype(np.int64), minlength=1 << _DIGIT)
            for prefix, low in collect:
                held[(prefix, low)].append(keys[(keys >> np.uint64(low)) == prefix])
        if count is None:
            count = int(hist[(0, 64)].sum())
            chosen = [int(r) for r in (ranks(count) if callable(ranks) else ranks)]
            if any(r < 0 for r in chosen):
                raise ValueError(f"ranks must be >= 0; got {chosen}")
            out = np.full(len(chosen), math.nan)
            wanted[(0, 64)] = list(enumerate(chosen))
        nxt: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for g in collect:
            keys = np.concatenate(held.pop(g)) if held[g] else np.zeros(0, np.uint64)
            positions = sorted({r for _, r in wanted[g]})
            keys.partition(positions)
            for i, r in wanted[g]:
                out[i] = _values(keys[r])
        for g in split:
            prefix, low = g
            cum = np.cumsum(hist[g])
            for i, r in wanted[g]:
                if r >= cum[-1]:  # only possible at the top: the rank is past the count
                    continue
                digit = int(np.searchsorted(cum, r, side="right"))
                below = int(cum[digit - 1]) if digit else 0
                child = ((prefix << _DIGIT) | digit, low - _DIGIT)
                if child[1] == 0:  # every bit known: the value is the key
                    out[i] = _values(np.uint64(child[0]))
                    continue
                nxt.setdefault(child, []).append((i, r - below))
                sizes[child] = int(hist[g][digit])
        wanted = nxt
    return out, int(count)


def linear_positions(n: int, q: float) -> tuple[int, int, float]:
    """(lower, upper, weight) of `numpy.quantile(x, q)` ("linear") for `n` sorted values: the
    quantile is `_lerp(x[lower], x[upper], weight)`, with NumPy's index arithmetic (past the
    last value both indices are the last and the weight is `virtual + 1`, as NumPy has it)."""
    virtual = (n - 1) * q  # NumPy's virtual index for "linear"
    if virtual >= n - 1:
        return n - 1, n - 1, float(virtual + 1)
    if virtual < 0:
        return 0, 0, float(virtual)
    lower = math.floor(virtual)
    return int(lower), int(lower) + 1, float(virtual - lower)


def _lerp(a: float, b: float, t: float) -> float:
    """NumPy's `_lerp`: the same operations, so the same rounding (and the same NaN for two
    equal infinities, +0.0 for two -0.0)."""
    a, b = np.float64(a), np.float64(b)
    with np.errstate(invalid="ignore"):
        diff = b - a
        return float(b - diff * (1 - t)) if t >= 0.5 else float(a + diff * t)


def quantiles(
    source: Callable[[], Iterable[np.ndarray]],
    qs: Sequence[float],
    *,
    skip: str | None = None,
    n_nan: int = 0,
) -> np.ndarray:
    """`numpy.quantile` (linear) of the values `source()` yields, in passes over its chunks.

    Args:
      source: a callable giving a fresh iterator over the values' chunks.
      qs: probabilities in [0, 1].
      skip: None (NumPy's `quantile`: NaN when any value is NaN; pass `n_nan`), "nan"
        (`numpy.nanquantile`) or "nonfinite" (the quantiles of the finite values).
      n_nan: how many values are NaN (only read with `skip=None`).

    Returns:
      float64 `(len(qs),)`; NaN when no value is kept.
    """
    if any(not 0.0 <= q <= 1.0 for q in qs):
        raise ValueError(f"quantiles must lie in [0, 1]; got {list(qs)}")
    if skip is None and n_nan > 0:
        return np.full(len(qs), math.nan)
    return _quantiles_at(source, qs, skip=skip or "nan")


def _quantiles_at(
    source: Callable[[], Iterable[np.ndarray]], qs: Sequence[float], *, skip: str
) -> np.ndarray:
    """`quantiles` without the NaN rule (`skip` says which values are left out)."""
    positions: list[tuple[int, int, float]] = []

    def ranks(count: int) -> list[int]:
        positions.extend(linear_positions(count, float(q)) for q in qs)
        return [r for lo, hi, _ in positions for r in (lo, hi)] if count else []

    values, count = order_statistics(source, ranks, skip=skip)
    if count == 0:
        return np.full(len(qs), math.nan)
    return np.array(
        [_lerp(values[2 * i], values[2 * i + 1], w) for i, (_, _, w) in enumerate(positions)],
        dtype=np.float64,
    )


def median(
    source: Callable[[], Iterable[np.ndarray]], *, skip: str | None = None, n_nan: int = 0
) -> float:
    """`numpy.median` of the values `source()` yields (`numpy.nanmedian` with `skip="nan"`):
    the middle order statistic, or the mean of the two middle ones, as NumPy computes it
    (the same bits, but for the sign of a zero: which of -0.0 and +0.0 NumPy's partition
    puts in the middle is its own business).

    Args:
      source: a callable giving a fresh iterator over the values' chunks.
      skip: None (NaN when any value is NaN; pass `n_nan`) or "nan" (NaN values left out).
      n_nan: how many values are NaN (only read with `skip=None`).
    """
    if skip is None and n_nan > 0:
        return math.nan

    def ranks(count: int) -> list[int]:
        return [(count - 1) // 2, count // 2] if count else []

    values, count = order_statistics(source, ranks, skip="nan")
    if count == 0:
        return math.nan
    with np.errstate(invalid="ignore"):  # NumPy's mean of the middle value or values
        return float(np.mean(values[:1] if count % 2 else values))
