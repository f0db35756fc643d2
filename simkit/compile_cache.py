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

`call` runs the engine through its exported (traced and lowered) module, kept in the same
directory under `simkit-exported/`, so that a new process skips tracing as well as compiling.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jaxlib
import numpy as np
from jax import export

__all__ = ["call", "default_directory", "enable"]

_DONE = False


def _switched_off() -> bool:
    return os.environ.get("SIMKIT_COMPILE_CACHE", "1").strip().lower() in (
        "0",
        "false",
        "no",
        "off",
    )


def default_directory() -> str:
    """`$XDG_CACHE_HOME/simkit/jax`, or `~/.cache/simkit/jax`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "simkit", "jax")


def enable() -> str | None:
    """Use the persistent compilation cache in this process (idempotent, cheap after the first
    call); the directory in use, or None when it is off or cannot be created."""
    global _DONE
    if _switched_off():
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


# ---------------------------------------------------------------------------------------------
# Exported engines: a new process skips tracing too.
#
# The persistent cache keys a compiled program by its lowered module, so every process still
# traces and lowers the engine (~1 s of a warm first call) before it can look the program up.
# `call` keeps the lowered module itself (`jax.export`, serialized) in the same directory, keyed
# by everything the trace depends on: the source of every simkit module (any edit misses),
# the versions of JAX, jaxlib, NumPy and Python, the backend, JAX's configuration (x64 mode,
# the PRNG, ...), the static arguments, and the structure, shapes and dtypes of the traced
# ones. A hit
# deserializes the module (~10 ms) and compiles it through the persistent cache; the numbers
# are those of the jitted function (the same module). Any failure (an export JAX refuses, a
# corrupt or unreadable file, a read-only directory) falls back to calling the jitted function.
# `SIMKIT_COMPILE_CACHE=0` switches this off with the rest of the cache.
# ---------------------------------------------------------------------------------------------

# Settings that change where things are kept or what is logged, never the traced program.
_UNTRACED_CONFIG = re.compile(r"cache|log|explain|pprint|traceback|dump")
_EXPORTED: dict[str, Any] = {}
_EXPORT_LOCK = threading.Lock()  # key -> the jitted call of a deserialized module (or None)
_SOURCE_DIGEST: str | None = None


def _source_digest() -> str:
    """sha256 over the path and bytes of every module of the simkit package."""
    global _SOURCE_DIGEST
    if _SOURCE_DIGEST is None:
        root = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode())
            h.update(b"\0")
            h.update(path.read_bytes())
            h.update(b"\0")
        _SOURCE_DIGEST = h.hexdigest()
    return _SOURCE_DIGEST


def _key(name: str, fn: Callable, leaves: list, treedef, static: dict) -> str:
    config = {k: v for k, v in jax.config.values.items() if not _UNTRACED_CONFIG.search(k)}
    parts = (
        name,
        getattr(fn, "__module__", ""),
        getattr(fn, "__qualname__", ""),
        _source_digest(),
        jax.__version__,
        jaxlib.__version__,
        np.__version__,  # constants folded while tracing
        sys.version,
        jax.default_backend(),
        repr(sorted(config.items())),
        repr(treedef),
        repr([jax.typeof(leaf) for leaf in leaves]),
        repr(sorted(static.items())),
    )
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


def _load_or_export(path: Path, fn: Callable, leaves: list, treedef, static: dict):
    try:
        return export.deserialize(bytearray(path.read_bytes()))
    except Exception:  # none yet, or a corrupt or foreign file: export (again, over it)
        pass

    def flat(*args):
        return fn(*jax.tree.unflatten(treedef, args), **static)

    exported = export.export(jax.jit(flat))(*leaves)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_bytes(exported.serialize())
        os.replace(partial, path)  # atomic: processes writing the same key race harmlessly
    except OSError:
        pass  # a read-only cache: still use the module in this process
    return exported


def call(name: str, fn: Callable, args: tuple, static: dict):
    """``fn(*args, **static)`` for a jitted ``fn`` whose ``static`` are its static arguments,
    through the exported module kept in the cache directory (see above). ``fn`` must be
    defined in simkit: the key hashes simkit's source, not the source of code elsewhere."""
    directory = jax.config.jax_compilation_cache_dir
    if not directory or _switched_off():
        return fn(*args, **static)
    leaves, treedef = jax.tree.flatten(args)
    key = _key(name, fn, leaves, treedef, static)
    if key not in _EXPORTED:
        # One thread exports (a run's blocks start together on the executor's threads): two
        # exports of one key would compile two programs side by side, twice the memory.
        with _EXPORT_LOCK:
            if key not in _EXPORTED:
                path = Path(directory) / "simkit-exported" / f"{name}-{key[:32]}.jaxexport"
                try:
                    loaded = _load_or_export(path, fn, leaves, treedef, static)
                    _EXPORTED[key] = jax.jit(loaded.call)
                except Exception:  # JAX cannot export this program: the jitted function it is
                    _EXPORTED[key] = None
    exported = _EXPORTED[key]
    if exported is None:
        return fn(*args, **static)
    return exported(*leaves)
