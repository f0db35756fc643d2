"""The package's layers: no import cycle, the arrows one way, I/O without JAX."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_results_scenarios_and_stress_files_load_no_jax():
    code = (
        "import sys, simkit.store, simkit.scenario, simkit.aggregate\n"
        "spec = simkit.scenario.load_stress('scenarios/stress/overnight_crash.toml')\n"
        "simkit.scenario.load_scenario('scenarios/baseline.toml')\n"
        "bad = [m for m in ('jax', 'simkit.strategy.engine', 'simkit.run') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = _fresh(code)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(
    shutil.which("lint-imports") is None
    and not (Path(sys.executable).parent / "lint-imports").exists(),
    reason="import-linter is not installed",
)
def test_import_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run(
        [exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout
