"""Sums over a path's positions, and where XLA materializes a value.

Paths are on the last axis of every array (`simkit.strategy.state`). A sum over a short leading
axis is written as elementwise operations on its slices (`_over`, `_fold`) and a sum over many
positions as a matrix-vector product (`_sums`): XLA on CPU ran reductions over a leading axis,
fused with their producers, one path at a time. `_materialized` makes XLA compute a value once
instead of fusing it into every rule that reads it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array


def _rows(x) -> list:
    """The (paths,) rows of `x`: one per position, every axis but the last flattened."""
    flat = x.reshape(-1, x.shape[-1])
    return [flat[i] for i in range(flat.shape[0])]


def _fold(op, rows):
    """`op` over a list of equally shaped arrays as a balanced tree of elementwise operations."""
    rows = list(rows)
    while len(rows) > 1:
        rows = [
            op(rows[i], rows[i + 1]) if i + 1 < len(rows) else rows[i]
            for i in range(0, len(rows), 2)
        ]
    return rows[0]


def _over(x, axis: int, op=jnp.add):
    """`op` over a short axis by elementwise operations on its slices (vectorized over the
    paths, where XLA on CPU runs a reduction over a leading axis one path at a time)."""
    return _fold(op, [jnp.take(x, i, axis=axis) for i in range(x.shape[axis])])


def _sums(xs: list) -> list:
    """Sums over a path's positions of each array in `xs` (each (..., paths)).

    A product with a vector of ones per quantity: a library kernel sums the positions, and XLA
    computes each quantity in one vectorized loop. (Stacking the quantities into one product
    was 10x slower: XLA fused the Black-Scholes terms into the stacking and recomputed them per
    quantity.) HIGHEST precision keeps float32 sums float32 on GPUs (no TF32)."""
    out = []
    for x in xs:
        flat = x.reshape(-1, x.shape[-1])
        ones = jnp.ones((flat.shape[0],), flat.dtype)
        out.append(jnp.dot(ones, flat, precision=jax.lax.Precision.HIGHEST))
    return out


def _sum(x):
    """Sum over a path's positions of one array."""
    if x.ndim == 1:
        return x
    if x.dtype == jnp.bool_ or jnp.issubdtype(x.dtype, jnp.integer):
        return jnp.round(_sums([x.astype(jnp.float32)])[0]).astype(jnp.int32)
    return _sums([x])[0]


def _count(mask) -> Array:
    return _sum(mask)


def _materialized(t, compute):
    """`compute()` as the output of a `lax.cond` on a predicate that always holds (`t >= 0`):
    XLA materializes a branch's results once, where it would otherwise fuse their cheap tail
    into each rule that reads them and recompute it there."""
    return jax.lax.cond(
        t >= 0,
        compute,
        lambda: jax.tree_util.tree_map(
            lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(compute)
        ),
    )
