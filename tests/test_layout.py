"""The package's layers: no import cycle, the arrows one way, I/O without JAX."""

from __future__ import annotations

import ast
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


def test_outcome_names_are_declared_once():
    from simkit import aggregate
    from simkit.paths.market import Market
    from simkit.schema import outcomes
    from simkit.strategy.reference import state as reference_state

    assert outcomes.MARKET_INPUTS == Market._fields
    assert aggregate.CLOSE_REASONS is outcomes.CLOSE_REASONS
    assert aggregate.LIMITS is outcomes.LIMIT_NAMES and aggregate.BUCKETS is outcomes.BUCKETS
    assert reference_state.LIMIT_NAMES is outcomes.LIMIT_NAMES
    # codes: buy-backs, expiries and assignments each a contiguous range after 0 (open)
    codes = sorted(outcomes.CLOSE_CODES.values())
    assert codes == list(range(1, len(outcomes.TRADE_ENDS) + 1))
    assert outcomes.BOUGHT_BACK == tuple(range(1, len(outcomes.BOUGHT_BACK) + 1))
    assert outcomes.ASSIGNED[-1] == codes[-1]
    assert outcomes.trade_end_counter("stop") == "n_close_stop"
    assert outcomes.trade_end_counter("assigned_early") == "n_assigned_early"


def _long_functions(limit: int) -> list[str]:
    found = []
    for path in sorted((ROOT / "simkit").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length})")
    return found


def test_no_function_over_80_lines_and_no_strategy_module_over_350():
    """Issue 14's measure of a readable package: a function does one job (at most 80 lines,
    docstring included), and a module of the strategy holds one section of the seed."""
    assert _long_functions(80) == []
    big = [
        f"{p.relative_to(ROOT)} ({n})"
        for p in sorted((ROOT / "simkit" / "strategy").rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > 350
    ]
    assert big == []


def test_the_run_module_loads_no_scipy_until_a_reduction_needs_it():
    """A new process's first run imports SciPy in a thread beside the engine's work
    (`run._import_in_background`), so `import simkit.run` must not import it."""
    done = _fresh(
        "import sys, simkit.run; print(sorted(m for m in sys.modules if m.startswith('scipy')))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_step_of_the_day_names_its_kernels():
    """`bench/profile_day.py` attributes each XLA kernel to the step whose `jax.named_scope`
    its op_name carries: every step it lists must be scoped in the engine's program."""
    import importlib.util

    import jax
    import numpy as np

    from simkit.paths.keys import cell_key
    from simkit.paths.market import MarketParams
    from simkit.strategy.config import StrategyConfig
    from simkit.strategy.day import _run_generated
    from simkit.strategy.params import engine_params, engine_shape

    spec = importlib.util.spec_from_file_location("profile_day", ROOT / "bench/profile_day.py")
    profile_day = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(profile_day)
    cfg, mkt, dtype = StrategyConfig(), MarketParams(), jax.numpy.float32
    lowered = _run_generated.lower(
        mkt, cell_key(1, 0), np.uint32(0), np.int32(10), engine_params(cfg, mkt, dtype),
        shape=engine_shape(cfg), n_paths=8, n_days=64, dtype=dtype,
    )  # fmt: skip
    text = lowered.as_text(debug_info=True)
    assert [rule for rule in profile_day.RULES if f"/{rule}/" not in text] == []
    assert profile_day._rule("fusion", "jit(f)/while/body/exits/cond/mul") == "exits"
    assert profile_day._rule("copy", "") == "loop state (copies)"
    assert profile_day._rule("conditional", "jit(f)/while/body/entry/cond") is None
