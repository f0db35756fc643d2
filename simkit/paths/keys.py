"""Random numbers of a path: keys by (seed, cell, path index), draws by (path, day).

Every random number simkit draws for a market path comes from

    path_key = fold_in(fold_in(PRNGKey(seed), cell), path_index)
    words    = fold_in(path_key, (2 * day + stream) * 8 + h),   h = 0, 1, ...

i.e. threefry-2x32 of the path key in counter mode: each counter gives two random 32-bit words.
A float32 uniform takes one word (23 bits), a float64 uniform both words of a counter (52
bits). So a path is the same for any chunk size, any worker and any number of paths drawn beside
it, and one day can be generated inside a `lax.scan` without holding the whole path (the
strategy engine does this). Counting on the hash directly costs half of
`jax.random.uniform(fold_in(path_key, day), (n,))`, which hashes once per 32-bit word.

Uniforms are the centres of their grid cells, strictly inside (0, 1): `(k + 1/2) 2^-23` in
float32, `(k + 1/2) 2^-52` in float64. Normals are their inverse normal CDF, finite and symmetric
(|z| <= 5.3 in float32, 8.2 in float64, as `jax.random.normal`).

The slots of a day (`DRAWS`) are fixed, and a model that reads only the first `n` slots draws
only those: the same seed gives the same diffusion shocks under GBM and Merton (common random
numbers across a model grid), and `gbm` / `merton` reproduce `simulate_market`'s spot exactly.
The last slot, `u_variance`, is drawn by the stochastic-variance models only (`N_DRAWS_CONSTANT_VOL`
slots for gbm and merton: their markets are those of the seven-slot days they always had).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfinv

__all__ = [
    "DRAWS",
    "N_DRAWS_CONSTANT_VOL",
    "MIN_BATCH",
    "cell_key",
    "path_keys",
    "day_uniforms",
    "as_key",
]

Array = jax.Array

# The slots of one day's uniform vector, in order: what each model reads.
DRAWS = (
    "z_spot",  # normal: the spot's diffusion shock
    "u_jump_count",  # uniform: the day's Poisson jump count (inverse CDF)
    "z_jump_size",  # normal: the day's total log-jump size given the count
    "z_iv",  # normal: the IV shock orthogonal to the spot's
    "z_short_interest",  # normal: the short-interest shock
    "u_thesis",  # uniform: thesis-break event
    "early_u",  # uniform: the strategy's early-assignment draw
    "u_variance",  # uniform: the variance's step (heston, bates; read by those models only)
)
SLOT = {name: i for i, name in enumerate(DRAWS)}
N_DRAWS_CONSTANT_VOL = SLOT["u_variance"]  # the slots gbm and merton draw (all but the last)


def as_key(key_or_seed) -> Array:
    """A raw threefry key (uint32[2]) from an int seed, a raw key or a new-style typed key."""
    if isinstance(key_or_seed, int):
        return jax.random.PRNGKey(key_or_seed)
    key = jnp.asarray(key_or_seed) if not _is_typed_key(key_or_seed) else key_or_seed
    if _is_typed_key(key):
        return jax.random.key_data(key)
    return key


def _is_typed_key(key) -> bool:
    return hasattr(key, "dtype") and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)


# XLA compiles a batch of one path differently (scalar code: exp and log 1 ulp apart from the
# vectorized code), so every simulation computes at least this many paths and drops the extra
# ones: a path is bit-for-bit the same alone and in any block.
MIN_BATCH = 2


def cell_key(seed: int, cell: int) -> np.ndarray:
    """Key of one grid cell: `fold_in(PRNGKey(seed), cell)`, uint32[2], for a seed and a cell
    in [0, 2**32).

    Computed in NumPy (threefry-2x32 of the key (0, seed) over the pair (0, cell), the bits of
    `jax.random`): JAX's eager `PRNGKey` and `fold_in` compile a small program each on a
    process's first call (~0.25 s of a warm first `simkit.simulate`)."""
    for name, value in (("seed", seed), ("cell", cell)):
        if not 0 <= int(value) < 2**32:
            raise ValueError(f"{name} must be in [0, 2**32); got {value!r}.")
    u32 = np.uint32
    one = np.ones(1, u32)  # arrays, not scalars: uint32 arithmetic wraps without a warning
    y1, y2 = _threefry2x32(0 * one, u32(seed) * one, 0 * one, u32(cell) * one, u32)
    return np.concatenate([y1, y2])


def path_keys(base_key: Array, path_start: int | Array, n_paths: int) -> Array:
    """Keys of paths `path_start .. path_start + n_paths - 1`: `fold_in(base_key, index)`.

    Args:
        base_key: a cell key (`cell_key`) or any raw key, uint32[2].
        path_start: index of the first path (traceable int).
        n_paths: number of paths (static).

    Returns:
        uint32 array of shape (n_paths, 2).
    """
    index = jnp.asarray(path_start, jnp.uint32) + jnp.arange(n_paths, dtype=jnp.uint32)
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(base_key, index)


_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_PARITY = 0x1BD11BDA


def _threefry2x32(k1, k2, x1, x2, u32=jnp.uint32):
    """Threefry-2x32 with 20 rounds (Salmon et al., SC 2011), the hash of `jax.random`,
    written out: the same bits as JAX's `threefry2x32` primitive, which on CPU runs as a loop of
    five small steps (a dozen operations per day for the engine); this is one fused loop. All
    arguments uint32, broadcasting (JAX arrays, or NumPy arrays with `u32=np.uint32`); returns
    the two output words."""
    ks = (k1, k2, k1 ^ k2 ^ u32(_KEY_PARITY))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = (x2 << u32(r)) | (x2 >> u32(32 - r))
            x2 = x1 ^ x2
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + u32(i + 1)
    return x1, x2


def _fold_in_grid(keys: Array, data: Array) -> Array:
    """`jax.random.fold_in(keys[p], data[c])` for every counter c and path p, (c, 2, paths):
    fold_in(key, d) is threefry-2x32 of the key over the pair (0, d)."""
    k1, k2 = keys[:, 0][None, :], keys[:, 1][None, :]
    d = data[:, None]
    y1, y2 = _threefry2x32(k1, k2, jnp.zeros_like(d), d)
    return jnp.stack([y1, y2], axis=1)


_COUNTERS_PER_STREAM = 8  # counters of one (day, stream): up to 16 float32 or 8 float64 slots
_STREAMS = 2  # 0: the market's slots (`DRAWS`); 1: a method's own draws (the block bootstrap)


def day_uniforms(keys: Array, day: int | Array, n: int, dtype, stream: int = 0) -> Array:
    """The first `n` uniform slots of day `day` for each path, strictly inside (0, 1).

    Args:
        keys: path keys, uint32 (n_paths, 2).
        day: step index (traceable int, < 2^28); day 0 is the initial column.
        n: number of slots (static): at most 16 (float32) or 8 (float64) a stream.
        dtype: float32 or float64.
        stream: 0 for the market's slots (`DRAWS`), 1 for an independent stream of the same
            day (the block bootstrap's). Static.

    Returns:
        Array (n, n_paths) of `dtype`: slot-major, so `u[k]` is one contiguous slot (this layout
        runs several times faster than (n_paths, n) on CPU).
    """
    dtype = jnp.dtype(dtype)
    words_per_slot = 1 if dtype.itemsize == 4 else 2
    n_counters = -(-n * words_per_slot // 2)
    if n_counters > _COUNTERS_PER_STREAM or stream not in range(_STREAMS):
        raise ValueError(
            f"day_uniforms draws at most {2 * _COUNTERS_PER_STREAM // words_per_slot} slots "
            f"of stream 0 or 1; got n={n}, stream={stream}."
        )
    first = (jnp.asarray(day, jnp.uint32) * _STREAMS + stream) * _COUNTERS_PER_STREAM
    counters = first + jnp.arange(n_counters, dtype=jnp.uint32)
    words = _fold_in_grid(keys, counters)  # (counters, 2, paths)
    if words_per_slot == 1:
        words = words.reshape(2 * n_counters, keys.shape[0])[:n]
        return (words >> 9).astype(dtype) * 2.0**-23 + 2.0**-24
    high = (words[:, 0] >> 6).astype(dtype)  # 26 bits each: 52 in all, exact in float64
    low = (words[:, 1] >> 6).astype(dtype)
    return (high * 2.0**26 + low) * 2.0**-52 + 2.0**-53


def to_normal(u: Array) -> Array:
    """Standard normal from a uniform strictly inside (0, 1) by the inverse CDF.

    `sqrt(2) erfinv(2u - 1)`, as `jax.random.normal` (`2u - 1` is exact for simkit's uniforms):
    1.8 times the speed of `ndtri` on CPU.
    """
    return math.sqrt(2.0) * erfinv(2.0 * u - 1.0)
