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
from typing import Any

import numpy as np

__all__ = [
    "DAILY_MEMORY_BYTES",
    "SEGMENT",
    "SPILL_BYTES",
    "Columns",
    "DailyColumns",
    "median",
    "order_statistics",
    "quantiles",
]

SEGMENT = 1 << 16  # paths per segment: the unit of every streamed sum
SPILL_BYTES = 256 << 20  # per-path columns of a cell held in memory up to this, then in files
_DIGIT = 16  # bits resolved per selection pass
_COLLECT = 1 << 18  # a bucket with at most this many values is collected and partitioned
_SIGN = np.uint64(1 << 63)
DAILY_MEMORY_BYTES = 64 << 20  # a cell's daily values held in memory up to this, then in a file
_SLAB_BYTES = 16 << 20  # float64 values a per-step quantile reads at once (one step at least)


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


def _row_quantiles(values: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """`numpy.quantile(values.astype(float64), qs, axis=1)`, `(len(qs), rows)`: the two order
    statistics of each level by `numpy.partition` in the values' own dtype, then NumPy's
    `_lerp` in float64 (the same operations, so the same bits)."""
    n = values.shape[1]
    positions = [linear_positions(n, float(q)) for q in qs]
    kth = sorted({k for lo, hi, _ in positions for k in (lo, hi)})
    part = np.partition(values, kth, axis=1)
    out = np.empty((len(qs), values.shape[0]))
    with np.errstate(invalid="ignore"):
        for i, (lo, hi, t) in enumerate(positions):
            a = part[:, lo].astype(np.float64)
            b = part[:, hi].astype(np.float64)
            diff = b - a
            out[i] = b - diff * (1 - t) if t >= 0.5 else a + diff * t
    out[:, np.isnan(values).any(axis=1)] = math.nan  # numpy.quantile's rule
    return out


def _pwrite(fd: int, values: np.ndarray, offset: int) -> None:
    """Write a contiguous array at `offset` (all of it: `os.pwrite` may write less)."""
    view = memoryview(values).cast("B")
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def _pread(fd: int, count: int, dtype: np.dtype, offset: int) -> np.ndarray:
    """`count` values of `dtype` at `offset` (all of them: `os.pread` may read less)."""
    out = np.empty(count, dtype)
    view = memoryview(out).cast("B")
    while view:
        done = os.preadv(fd, [view], offset)
        if done == 0:
            raise OSError(f"file ended before offset {offset + len(view)}")
        view, offset = view[done:], offset + done
    return out


class DailyColumns:
    """Every path's daily values of one cell, `(n_paths, n_days)` (the sleeve equity E_t of
    each path), written block by block in any order and read back by steps or by paths.

    Stored step-major (day t of every path contiguous) in the blocks' own dtype: in memory
    when the whole fits in `memory_bytes` and no `file` is given, else in one raw file written
    and read with `os.pwrite` / `os.pread` (not a memory map: the pages of a mapped file count
    in the process's resident memory). `file`: that file (a resume directory's; opened as it
    stands if it has the right size, so the blocks written before an interruption are still
    there; kept by `close(remove=False)`); else a temporary file under `spill_dir` (the
    system's temporary directory when None), removed by `close`.

    `quantiles` gives `numpy.quantile` of each step's values over the paths, exactly: each
    step's column is read whole when it fits in `slab_bytes` as float64 (one step at a time
    or several), else selected in segments (`quantiles` of this module).
    """

    def __init__(
        self,
        n_paths: int,
        n_days: int,
        dtype: Any,
        *,
        file: str | os.PathLike | None = None,
        spill_dir: str | os.PathLike | None = None,
        memory_bytes: int | None = None,
    ):
        self.n_paths, self.n_days = int(n_paths), int(n_days)
        self.dtype = np.dtype(dtype)
        size = self.n_paths * self.n_days * self.dtype.itemsize
        limit = DAILY_MEMORY_BYTES if memory_bytes is None else int(memory_bytes)
        self._memory: np.ndarray | None = None
        self._fd: int | None = None
        self._temporary = file is None
        self.file: Path | None = None
        if file is None and size <= limit:
            self._memory = np.zeros((self.n_days, self.n_paths), self.dtype)
            return
        if file is None:
            fd, name = tempfile.mkstemp(prefix="simkit-daily-", suffix=".raw", dir=spill_dir)
            os.close(fd)
            file = name
        self.file = Path(file)
        self._fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size != size:
            os.ftruncate(self._fd, 0)  # another shape (or new): start empty
            os.ftruncate(self._fd, size)

    @property
    def in_memory(self) -> bool:
        return self._memory is not None

    def write(self, path_start: int, values: np.ndarray, *, sync: bool = False) -> None:
        """Store paths `path_start ...` (`values` `(n, n_days)`); `sync`: on disk before
        returning (`os.fdatasync`), for a block that a resume file will say is done."""
        values = np.asarray(values)
        n = values.shape[0]
        if values.shape != (n, self.n_days) or not 0 <= path_start <= self.n_paths - n:
            raise ValueError(
                f"a block of shape {values.shape} at path {path_start} does not fit "
                f"({self.n_paths}, {self.n_days})"
            )
        if np.dtype(values.dtype) != self.dtype and not np.can_cast(values.dtype, self.dtype):
            raise ValueError(f"values of dtype {values.dtype} cannot be stored as {self.dtype}")
        if self._memory is not None:
            self._memory[:, path_start : path_start + n] = values.T
            return
        steps = np.ascontiguousarray(values.T, dtype=self.dtype)
        item = self.dtype.itemsize
        for t in range(self.n_days):
            _pwrite(self._fd, steps[t], (t * self.n_paths + path_start) * item)
        if sync:
            os.fdatasync(self._fd) if hasattr(os, "fdatasync") else os.fsync(self._fd)

    def steps(self, start: int, stop: int) -> np.ndarray:
        """Days `start .. stop - 1` of every path, `(stop - start, n_paths)`."""
        if self._memory is not None:
            return self._memory[start:stop]
        item = self.dtype.itemsize
        count = (stop - start) * self.n_paths
        out = _pread(self._fd, count, self.dtype, start * self.n_paths * item)
        return out.reshape(stop - start, self.n_paths)

    def paths(self, start: int, stop: int) -> np.ndarray:
        """Paths `start .. stop - 1`, every day, `(stop - start, n_days)`."""
        if self._memory is not None:
            return self._memory[:, start:stop].T.copy()
        item, n = self.dtype.itemsize, stop - start
        out = np.empty((self.n_days, n), self.dtype)
        for t in range(self.n_days):
            out[t] = _pread(self._fd, n, self.dtype, (t * self.n_paths + start) * item)
        return out.T.copy()

    def quantiles(self, qs: Sequence[float], *, slab_bytes: int | None = None) -> np.ndarray:
        """`numpy.quantile(values.astype(float64), qs, axis=0)` of the `(n_paths, n_days)`
        values, `(len(qs), n_days)`, bit for bit; NaN where a day has a NaN value.

        The order statistics are selected in the stored dtype (a float32 value is exactly a
        float64 one, so the ranks are the same) and interpolated in float64 as NumPy does."""
        if any(not 0.0 <= q <= 1.0 for q in qs):
            raise ValueError(f"quantiles must lie in [0, 1]; got {list(qs)}")
        slab = _SLAB_BYTES if slab_bytes is None else int(slab_bytes)
        out = np.empty((len(qs), self.n_days))
        width = slab // (8 * self.n_paths)
        if width >= 1:
            for start in range(0, self.n_days, width):
                stop = min(start + width, self.n_days)
                out[:, start:stop] = _row_quantiles(self.steps(start, stop), qs)
            return out
        segment = max(1, slab // 8)
        for t in range(self.n_days):

            def column(t=t):
                for a in range(0, self.n_paths, segment):
                    yield self._column(t, a, min(a + segment, self.n_paths))

            n_nan = sum(int(np.isnan(c).sum()) for c in column())
            out[:, t] = quantiles(column, qs, n_nan=n_nan)
        return out

    def _column(self, t: int, start: int, stop: int) -> np.ndarray:
        """Day `t` of paths `start .. stop - 1`, float64."""
        if self._memory is not None:
            return self._memory[t, start:stop].astype(np.float64)
        item = self.dtype.itemsize
        values = _pread(self._fd, stop - start, self.dtype, (t * self.n_paths + start) * item)
        return values.astype(np.float64)

    def close(self, *, remove: bool = True) -> None:
        """Release the values; `remove`: delete the file too (a temporary file always is)."""
        self._memory = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            if (remove or self._temporary) and self.file is not None:
                self.file.unlink(missing_ok=True)

    def __enter__(self) -> DailyColumns:
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
