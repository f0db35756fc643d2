"""The exported engine (`simkit.compile_cache.call`): a new process reads the traced module
from the cache directory instead of tracing, and gets the numbers of the jitted function."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit import compile_cache
from simkit.paths.keys import cell_key
from simkit.scenario import parse_scenario
from simkit.strategy import engine
from simkit.strategy.day import _run_generated
from simkit.strategy.params import engine_params, engine_shape

ROOT = Path(__file__).resolve().parents[1]


@jax.jit
def _poly(x, y):
    return {"a": jnp.sin(x) * y + 1.0, "b": (x * y).sum()}


def _exported_files(directory: Path) -> list[Path]:
    return sorted((directory / "simkit-exported").glob("*.jaxexport"))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A fresh cache directory for this test and no module kept in this process."""
    previous = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    monkeypatch.setattr(compile_cache, "_EXPORTED", {})
    yield tmp_path
    jax.config.update("jax_compilation_cache_dir", previous)


def test_a_module_is_written_once_then_read_without_tracing(cache_dir, monkeypatch):
    x, y = jnp.linspace(0.0, 1.0, 5), jnp.float32(3.0)
    first = compile_cache.call("poly", _poly, (x, y), {})
    assert len(_exported_files(cache_dir)) == 1
    want = _poly(x, y)
    for k in want:
        np.testing.assert_array_equal(first[k], want[k])

    def no_export(*a, **k):
        raise AssertionError("exported again although the module is on disk")

    monkeypatch.setattr(compile_cache, "_EXPORTED", {})  # as a new process
    monkeypatch.setattr(compile_cache.export, "export", no_export)
    again = compile_cache.call("poly", _poly, (x, y), {})
    for k in want:
        np.testing.assert_array_equal(again[k], want[k])


def test_another_shape_dtype_or_source_is_another_module(cache_dir, monkeypatch):
    x = jnp.linspace(0.0, 1.0, 5)
    compile_cache.call("poly", _poly, (x, 2.0), {})
    compile_cache.call("poly", _poly, (jnp.linspace(0.0, 1.0, 6), 2.0), {})
    compile_cache.call("poly", _poly, (x, jnp.int32(2)), {})
    assert len(_exported_files(cache_dir)) == 3
    monkeypatch.setattr(compile_cache, "_SOURCE_DIGEST", "an edited simkit")
    compile_cache.call("poly", _poly, (x, 2.0), {})
    assert len(_exported_files(cache_dir)) == 4


def test_a_corrupt_file_is_exported_again(cache_dir, monkeypatch):
    x, y = jnp.arange(4.0), 0.5
    compile_cache.call("poly", _poly, (x, y), {})
    (path,) = _exported_files(cache_dir)
    path.write_bytes(b"not a module")
    monkeypatch.setattr(compile_cache, "_EXPORTED", {})
    out = compile_cache.call("poly", _poly, (x, y), {})
    np.testing.assert_array_equal(out["a"], _poly(x, y)["a"])
    assert path.stat().st_size > 100  # written again


def test_switched_off_it_calls_the_function(cache_dir, monkeypatch):
    monkeypatch.setenv("SIMKIT_COMPILE_CACHE", "0")
    compile_cache.call("poly", _poly, (jnp.arange(3.0), 1.0), {})
    assert _exported_files(cache_dir) == []


def test_the_exported_engine_gives_the_jitted_engines_bits(cache_dir):
    """`simulate_block` runs the engine through its exported module: the same numbers, bit for
    bit, as calling the jitted engine."""
    cell = parse_scenario("[simulation]\npaths = 8\nyears = 0.2\n").cells()[0]
    steps = 50
    via_export = engine.simulate_block(
        cell.strategy, cell.market, seed=5, cell=0, path_start=0, n_paths=8, n_steps=steps
    )
    assert len(_exported_files(cache_dir)) == 1
    direct = _run_generated(
        cell.market,
        cell_key(5, 0),
        np.uint32(0),
        jnp.asarray(steps, jnp.int32),
        engine_params(cell.strategy, cell.market, jnp.float32),
        shape=engine_shape(cell.strategy),
        n_paths=8,
        n_days=64,
        dtype=jnp.float32,
    )
    assert set(via_export) == set(direct)
    for name, value in via_export.items():
        want = np.asarray(direct[name])[:8]
        if name == "equity":
            want = want[:, : steps + 1]
        np.testing.assert_array_equal(value, want, err_msg=name)
    assert np.count_nonzero(via_export["n_trades"]) > 0


def test_a_second_process_reads_the_module(tmp_path):
    code = (
        "import jax, jax.numpy as jnp, numpy as np\n"
        "from simkit import compile_cache\n"
        "compile_cache.enable()\n"
        "import sys\n"
        "if sys.argv[1] == 'read':\n"
        "    def boom(*a, **k): raise SystemExit('traced again')\n"
        "    compile_cache.export.export = boom\n"
        "f = jax.jit(lambda x: {'y': jnp.cumsum(jnp.sqrt(x))})\n"
        "out = compile_cache.call('cumsum', f, (jnp.arange(10.0),), {})\n"
        "print(repr(np.asarray(out['y']).tolist()))\n"
    )
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(tmp_path)}
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, mode],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        for mode in ("write", "read")
    ]
    for r in runs:
        assert r.returncode == 0, r.stderr
    assert runs[0].stdout == runs[1].stdout
    assert len(_exported_files(tmp_path)) == 1


def test_logging_settings_share_a_module_and_x64_does_not(cache_dir):
    """Same arguments (explicit float32), other settings: logging keeps the module, the x64
    mode (it changes how the function traces) makes another."""
    args = (np.linspace(0.0, 1.0, 4, dtype=np.float32), np.float32(2.0))
    compile_cache.call("poly", _poly, args, {})
    with jax.log_compiles(True):
        compile_cache.call("poly", _poly, args, {})
    assert len(_exported_files(cache_dir)) == 1
    with jax.enable_x64(True):
        compile_cache.call("poly", _poly, args, {})
    assert len(_exported_files(cache_dir)) == 2


def test_threads_starting_together_export_once(cache_dir, monkeypatch):
    """A run's first blocks start together on the executor's threads: one exports, the others
    wait for it (two exports would compile two programs side by side)."""
    exports = []
    real = compile_cache.export.export

    def counted(*a, **k):
        exports.append(1)
        time.sleep(0.3)  # an engine takes ~1 s: the other threads arrive meanwhile
        return real(*a, **k)

    monkeypatch.setattr(compile_cache.export, "export", counted)
    x = jnp.linspace(0.0, 2.0, 7)
    start = threading.Barrier(4)
    results = []

    def block():
        start.wait()
        results.append(np.asarray(compile_cache.call("poly", _poly, (x, 1.5), {})["a"]))

    threads = [threading.Thread(target=block) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(exports) == 1 and len(results) == 4
    for r in results:
        np.testing.assert_array_equal(r, _poly(x, 1.5)["a"])
