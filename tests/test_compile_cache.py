"""The persistent compilation cache is on in every process that runs the engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CODE = """
import jax, simkit
from simkit.scenario import parse_scenario
scenario = parse_scenario("[simulation]\\npaths = 4\\nyears = 0.02\\nengine = 'reference'\\n")
simkit.simulate(scenario, progress=False)
print(jax.config.jax_compilation_cache_dir)
"""


def _run(tmp_path: Path, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    environ.update(XDG_CACHE_HOME=str(tmp_path), **env)
    result = subprocess.run(
        [sys.executable, "-c", CODE], cwd=ROOT, env=environ, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_the_python_api_uses_the_cache_by_default(tmp_path):
    assert _run(tmp_path) == str(tmp_path / "simkit" / "jax")
    assert (tmp_path / "simkit" / "jax").is_dir()


def test_a_directory_the_user_chose_wins_and_it_can_be_switched_off(tmp_path):
    own = tmp_path / "own"
    assert _run(tmp_path, JAX_COMPILATION_CACHE_DIR=str(own)) == str(own)
    assert _run(tmp_path, SIMKIT_COMPILE_CACHE="0") in ("None", "")
