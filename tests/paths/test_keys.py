"""The written-out threefry hash gives `jax.random.fold_in`'s bits (the paths depend on it)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from simkit.paths.keys import _fold_in_grid, _threefry2x32, day_uniforms, path_keys


def _jax_fold_in_grid(keys, data):
    per_path = jax.vmap(jax.random.fold_in, in_axes=(0, None), out_axes=1)
    return jax.vmap(per_path, in_axes=(None, 0))(keys, data)


def test_fold_in_grid_matches_jax_bit_for_bit():
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 2**32, (512, 2), dtype=np.uint64).astype(np.uint32)
    keys[:3] = [[0, 0], [2**32 - 1, 2**32 - 1], [0, 2**32 - 1]]  # the edges of the words
    data = np.concatenate(
        [[0, 1, 2**31, 2**32 - 1], rng.integers(0, 2**32, 12, dtype=np.uint64)]
    ).astype(np.uint32)
    ours = _fold_in_grid(jnp.asarray(keys), jnp.asarray(data))
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(_jax_fold_in_grid(keys, data)))


def test_threefry_known_answer():
    """Random123's published known-answer vector for threefry2x32 with 20 rounds:
    key (0x13198a2e, 0x03707344), counter (0x243f6a88, 0x85a308d3)."""
    y1, y2 = _threefry2x32(
        jnp.uint32(0x13198A2E),
        jnp.uint32(0x03707344),
        jnp.uint32(0x243F6A88),
        jnp.uint32(0x85A308D3),
    )
    assert (int(y1), int(y2)) == (0xC4923A9C, 0x483DF7A0)


def test_day_uniforms_unchanged_by_the_hash():
    """The day's uniforms from the hash as `jax.random` computes it (the 2026-11 generator)."""
    keys = path_keys(jax.random.PRNGKey(3), 5, 64)
    for day in (0, 1, 251):
        u = day_uniforms(keys, day, 7, jnp.float32)
        counters = jnp.uint32(day * 2 * 8) + jnp.arange(4, dtype=jnp.uint32)
        words = _jax_fold_in_grid(keys, counters).reshape(8, 64)[:7]
        expected = (words >> 9).astype(jnp.float32) * 2.0**-23 + 2.0**-24
        np.testing.assert_array_equal(np.asarray(u), np.asarray(expected))
