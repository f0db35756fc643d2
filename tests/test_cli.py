"""The `simkit` command line: exit codes, messages, nothing written on bad input."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

import simkit.run
from simkit.cli import build_parser, main
from simkit.store import partial_dir

HISTORY = Path(__file__).parent / "data" / "history_synthetic.csv"
IV_CRUSH = Path(__file__).parents[1] / "scenarios" / "stress" / "iv_crush.toml"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_run_writes_the_file_and_prints_a_summary(capsys, tiny_scenario, tmp_path):
    out = tmp_path / "out" / "tiny.nc"
    code, stdout, stderr = run_cli(
        capsys, "run", str(tiny_scenario), "--out", str(out), "--no-progress", "--per-path"
    )
    assert code == 0, stderr
    assert "win rate, short-put trades" in stdout and "Kelly of the sleeve" in stdout
    assert "[" in stdout  # intervals
    assert f"wrote {out}" in stdout
    assert "horizon 13 trading days" in stdout and "seed claims" in stdout
    assert "Losses are negative returns" in stdout
    with xr.open_dataset(out) as ds:
        assert ds.sizes["path"] == 32
        # one sign convention: VaR and CVaR (stored as positive losses) print negated
        var = float(ds["var_99"])
        row = next(line for line in stdout.splitlines() if "VaR 99 %" in line)
        assert f"{-100 * var:.1f}" in row
        claim = next(line for line in stdout.splitlines() if "annual return, mean" in line)
        assert claim.rstrip(" │").endswith("135.0")
    assert not partial_dir(out).exists()


def test_flags_override_the_file(capsys, tiny_scenario, tmp_path):
    out = tmp_path / "o.nc"
    code, _, stderr = run_cli(
        capsys,
        "run",
        str(tiny_scenario),
        "--out",
        str(out),
        "--paths",
        "10",
        "--seed",
        "5",
        "--chunk-size",
        "4",
        "--set",
        "market.sigma=2.5",
        "--no-progress",
    )
    assert code == 0, stderr
    with xr.open_dataset(out) as ds:
        assert ds.attrs["paths"] == 10 and ds.attrs["seed"] == 5 and ds.attrs["chunk_size"] == 4
        assert "market.sigma" in ds.attrs["scenario_overrides"]


def test_grid_summary_has_one_row_per_cell(capsys, grid_scenario, tmp_path):
    code, stdout, stderr = run_cli(
        capsys, "run", str(grid_scenario), "--out", str(tmp_path / "g.nc"), "--no-progress"
    )
    assert code == 0, stderr
    assert "market.sigma" in stdout and "exits.stop_loss_multiple" in stdout
    assert stdout.count("3.0") >= 2


def test_default_output_is_results_stem(capsys, tiny_scenario, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run_cli(capsys, "run", str(tiny_scenario), "--no-progress")
    assert code == 0, stderr
    assert (tmp_path / "results" / "tiny.nc").exists()


def test_check_prints_the_cells(capsys, grid_scenario):
    code, stdout, _ = run_cli(capsys, "check", str(grid_scenario))
    assert code == 0
    assert "ok" in stdout and "4 cells" in stdout and "market.sigma" in stdout


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--paths", "0"], "simulation.paths"),
        (["--chunk-size", "0"], "simulation.chunk_size"),
        (["--seed", "-1"], "simulation.seed"),
        (["--engine", "numba"], "simulation.engine"),
        (["--set", "market.sigma=-1"], "market.sigma"),
        (["--set", "market.nonsense=1"], "market.nonsense"),
        (["--set", "no-equals-sign"], "KEY=VALUE"),
        (["--paths", "many"], "--paths"),
        (["--scheduler", "gpu-cluster"], "--scheduler"),
        (["--frobnicate"], "unrecognized"),
    ],
)
def test_bad_flags_exit_2_and_write_nothing(capsys, tiny_scenario, tmp_path, extra, needle):
    out = tmp_path / "never.nc"
    code, stdout, stderr = run_cli(
        capsys, "run", str(tiny_scenario), "--out", str(out), "--no-progress", *extra
    )
    assert code == 2
    assert needle in stderr
    assert "Traceback" not in stderr and stdout == ""
    assert not out.exists() and not partial_dir(out).exists()


def test_bad_scenario_files_exit_2(capsys, tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    broken = tmp_path / "broken.toml"
    broken.write_text("[simulation]\npaths = = 3\n")
    bad_value = tmp_path / "bad.toml"
    bad_value.write_text("[simulation]\npaths = 0\n")
    for path, needle in (
        (tmp_path / "missing.toml", "no such file"),
        (empty, "empty"),
        (broken, "line 2"),
        (bad_value, "simulation.paths"),
    ):
        for command in ("run", "check"):
            argv = [command, str(path)]
            if command == "run":
                argv += ["--out", str(tmp_path / "x.nc"), "--no-progress"]
            code, _, stderr = run_cli(capsys, *argv)
            assert code == 2, (path, command)
            assert str(path) in stderr and needle in stderr, stderr
            assert "Traceback" not in stderr
    assert not (tmp_path / "x.nc").exists()


def test_unusable_output_paths_exit_2(capsys, tiny_scenario, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    a_dir = tmp_path / "adir"
    a_dir.mkdir()
    for out, needle in (
        (a_dir, "is a directory"),
        (a_file / "sub" / "x.nc", "is a file"),
    ):
        code, _, stderr = run_cli(
            capsys, "run", str(tiny_scenario), "--out", str(out), "--no-progress"
        )
        assert code == 2 and needle in stderr and "--out" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "file.txt", "tiny.toml"]


UNWRITABLE = [
    Path(p)
    for p in ("/proc/simkit/x.nc", "/proc/x.nc", "/proc/self/x.nc")
    if Path("/proc/self").is_dir()  # Linux: nobody, root included, can create files in /proc
]


@pytest.mark.parametrize("where", ["proc", "parent_is_a_file"])
def test_output_where_no_file_can_be_created_exits_2(capsys, tiny_scenario, tmp_path, where):
    """A place that cannot be written is bad input, found by trying (os.access says yes to
    root everywhere): exit 2, one line naming the path, no traceback, nothing written."""
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    outs = UNWRITABLE if where == "proc" else [a_file / "x.nc", a_file / "sub" / "x.nc"]
    if not outs:
        pytest.skip("no /proc on this system")
    before = sorted(tmp_path.iterdir())
    for out in outs:
        for argv in (
            ["run", str(tiny_scenario), "--out", str(out), "--no-progress"],
            ["stress", str(IV_CRUSH), "--scenario", str(tiny_scenario)]
            + ["--out", str(out), "--no-progress"],
            ["calibrate", "market", str(HISTORY), "--out", str(out)],
        ):
            code, stdout, stderr = run_cli(capsys, *argv)
            assert code == 2, (argv, stderr)
            assert str(out) in stderr and "--out" in stderr, stderr
            assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
            assert not out.exists() and not partial_dir(out).exists()
    assert sorted(tmp_path.iterdir()) == before


def test_unreachable_scheduler_exits_2(capsys, tiny_scenario, tmp_path, monkeypatch):
    monkeypatch.setattr(simkit.run, "CONNECT_TIMEOUT_S", 1)
    out = tmp_path / "x.nc"
    code, _, stderr = run_cli(
        capsys,
        "run",
        str(tiny_scenario),
        "--out",
        str(out),
        "--scheduler",
        "tcp://127.0.0.1:9",
        "--no-progress",
    )
    assert code == 2 and "tcp://127.0.0.1:9" in stderr
    assert not out.exists() and not partial_dir(out).exists()


def test_internal_error_exits_1_without_traceback(capsys, tiny_scenario, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("engine bug")

    monkeypatch.setattr(simkit.run, "_simulate_block", broken)
    argv = ["run", str(tiny_scenario), "--out", str(tmp_path / "x.nc"), "--no-progress"]
    monkeypatch.delenv("SIMKIT_DEBUG", raising=False)
    code, _, stderr = run_cli(capsys, *argv)
    assert code == 1
    assert "internal error" in stderr and "engine bug" in stderr
    assert "Traceback" not in stderr

    monkeypatch.setenv("SIMKIT_DEBUG", "1")
    code, _, stderr = run_cli(capsys, *argv)
    assert code == 1 and "Traceback" in stderr


def _flag_helps() -> dict[str, dict[str, str]]:
    """flag -> {command: its help text}, over every subcommand (and sub-subcommand)."""
    helps: dict[str, dict[str, str]] = {}

    def walk(parser: argparse.ArgumentParser, command: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{command} {name}".strip())
            for flag in action.option_strings:
                helps.setdefault(flag, {})[command] = action.help

    walk(build_parser(), "")
    return helps


def test_run_flags_read_the_same_in_every_command():
    # each flag that commands share with `simkit run` is declared once (`_add_run_flags`)
    helps = _flag_helps()
    for flag in ("--seed", "--engine", "--set", "--scheduler", "--chunk-size", "--float64"):
        assert len(set(helps[flag].values())) == 1, (flag, helps[flag])
    assert set(helps["--scheduler"]) == {"run", "stress", "explain", "sensitivity"}
    assert set(helps["--float64"]) == {"run", "stress"}
    for command in ("run", "stress", "explain", "sensitivity", "claims", "calibrate kelly"):
        assert command in helps["--no-progress"] and command in helps["--paths"]
    assert (
        "calibrate target" in helps["--seed"] and "calibrate target" not in helps["--no-progress"]
    )
    assert "check" in helps["--set"]


def test_no_command_is_a_usage_error(capsys):
    code, _, stderr = run_cli(capsys)
    assert code == 2 and "COMMAND" in stderr


def test_console_script(tiny_scenario, tmp_path):
    simkit_cli = Path(sys.executable).parent / "simkit"
    out = tmp_path / "cs.nc"
    ok = subprocess.run(
        [str(simkit_cli), "run", str(tiny_scenario), "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert "win rate" in ok.stdout and out.exists()
    bad = subprocess.run(
        [str(simkit_cli), "run", str(tiny_scenario), "--paths", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    assert "simulation.paths" in bad.stderr and "Traceback" not in bad.stderr


def test_version_names_simkit_jax_and_the_device(capsys):
    import simkit

    assert main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"simkit {simkit.__version__}"
    assert lines[1].startswith("jax ") and (" x cpu" in lines[1] or " x gpu" in lines[1])


def test_run_says_what_to_run_next(capsys, tiny_scenario, tmp_path):
    out = tmp_path / "next.nc"
    code, stdout, stderr = run_cli(capsys, "run", str(tiny_scenario), "--out", str(out))
    assert code == 0, stderr
    assert f"next: simkit report {out}" in stdout


def test_small_shares_are_not_printed_as_zero():
    from simkit.cli import _summary_fmt

    assert _summary_fmt(0.00014, "pct") == "<0.1"  # 0.014 %
    assert _summary_fmt(0.0, "pct") == "0.0" and _summary_fmt(0.1234, "pct") == "12.3"
    assert _summary_fmt(-0.00001, "pct") == ">-0.1" and _summary_fmt(4.2, "ratio") == "4.20"
