"""JAX's persistent compilation cache for every process that runs the engine.

The engine takes tens of seconds to compile, and every new process pays it: a Python session,
each `simkit` command, each dask worker (a rerun after a crash too). JAX can keep compiled
programs on disk (`jax_compilation_cache_dir`); `enable` points it at one directory, once per
process, unless the user chose one:

1. `JAX_COMPILATION_CACHE_DIR` in the environment (JAX reads it itself), or a directory already
   set with `jax.config.update("jax_compilation_cache_dir", ...)`: left as it is;
2. else `$XDG_CACHE_HOME/simkit/jax` (default `~/.cache/simkit/jax`).

`SIMKIT_COMPILE_CACHE=0` switches it off. `simkit.simulate`, `simkit.simulate_paths`, every
command and every task on a dask worker (local or started by the user with `dask worker`) call
it, so a cluster's workers share the cache when they share that directory (a shared file system,
or `JAX_COMPILATION_CACHE_DIR` set to one in the workers' environment).
"""

from __future__ import annotations

import os

import jax

__all__ = ["default_directory", "enable"]

_DONE = False


def default_directory() -> str:
    """`$XDG_CACHE_HOME/simkit/jax`, or `~/.cache/simkit/jax`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "simkit", "jax")


def enable() -> str | None:
    """Use the persistent compilation cache in this process (idempotent, cheap after the first
    call); the directory in use, or None when it is off or cannot be created."""
    global _DONE
    if os.environ.get("SIMKIT_COMPILE_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    current = jax.config.jax_compilation_cache_dir
    if _DONE or current:
        _DONE = True
        return current or None
    directory = default_directory()
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", directory)
    _DONE = True
    return directory
