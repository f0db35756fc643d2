"""Float64 on request: JAX computes in float32 unless its x64 mode is on.

simkit never switches x64 on at import (float32 is the engine's default, for speed and GPUs);
``x64()`` switches it on for a block and restores the previous setting, on any JAX version.
"""

from __future__ import annotations

import contextlib

import jax


@contextlib.contextmanager
def x64(enabled: bool = True):
    """Run the block with JAX's x64 mode set to `enabled` (float64 arrays possible).

    For this thread only where JAX offers it (`jax.enable_x64(...)` as a context manager):
    blocks simulated on two threads at once (`simkit.run`'s default) may differ in precision.
    Older JAX: the global setting, restored afterwards.
    """
    local = getattr(jax, "enable_x64", None)
    if callable(local):
        with local(enabled):
            yield
        return
    previous = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", enabled)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)
