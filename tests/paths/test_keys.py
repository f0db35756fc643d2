"""The written-out threefry hash gives `jax.random.fold_in`'s bits (the paths depend on it)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit.paths.keys import _fold_in_grid, _threefry2x32, cell_key, day_uniforms, path_keys


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


def test_threefry_known_answer_in_numpy():
    one = np.ones(1, np.uint32)
    y1, y2 = _threefry2x32(
        0x13198A2E * one, 0x03707344 * one, 0x243F6A88 * one, 0x85A308D3 * one, np.uint32
    )
    assert (int(y1[0]), int(y2[0])) == (0xC4923A9C, 0x483DF7A0)


def test_cell_key_is_jax_fold_in_of_the_seed_key():
    """`cell_key` (NumPy) gives `fold_in(PRNGKey(seed), cell)` bit for bit, the edges of the
    words included, and refuses what PRNGKey would not map the same way."""
    rng = np.random.default_rng(11)
    pairs = [(0, 0), (2**32 - 1, 2**32 - 1), (2**31, 2**31 - 1), (7, 0)]
    pairs += [tuple(int(v) for v in rng.integers(0, 2**32, 2)) for _ in range(40)]
    for seed, cell in pairs:
        want = np.asarray(jax.random.fold_in(jax.random.PRNGKey(seed), cell))
        got = cell_key(seed, cell)
        assert got.dtype == np.uint32 and got.shape == (2,)
        np.testing.assert_array_equal(got, want, err_msg=f"seed={seed}, cell={cell}")
    for bad in ((-1, 0), (0, 2**32)):
        with pytest.raises(ValueError, match="2\\*\\*32"):
            cell_key(*bad)


def test_day_uniforms_unchanged_by_the_hash():
    """The day's uniforms from the hash as `jax.random` computes it (the 2026-11 generator)."""
    keys = path_keys(jax.random.PRNGKey(3), 5, 64)
    for day in (0, 1, 251):
        u = day_uniforms(keys, day, 7, jnp.float32)
        counters = jnp.uint32(day * 2 * 8) + jnp.arange(4, dtype=jnp.uint32)
        words = _jax_fold_in_grid(keys, counters).reshape(8, 64)[:7]
        expected = (words >> 9).astype(jnp.float32) * 2.0**-23 + 2.0**-24
        np.testing.assert_array_equal(np.asarray(u), np.asarray(expected))
