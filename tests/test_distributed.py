"""A real dask cluster (scheduler + 2 worker processes on 127.0.0.1) gives the local result."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

from simkit.cli import main
from simkit.run import simulate
from simkit.scenario import load_scenario

DASK = Path(sys.executable).parent / "dask"
GRID = '\n[grid]\n"market.sigma" = [1.5, 3.0]\n'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(procs: list[subprocess.Popen]) -> None:
    """Workers first (they say goodbye to a live scheduler), then the scheduler."""
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def dask_address(tmp_path_factory):
    """`tcp://127.0.0.1:PORT` of a scheduler with two single-threaded worker processes."""
    from distributed import Client

    logs = tmp_path_factory.mktemp("dask")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ)
    procs: list[subprocess.Popen] = []

    def start(*args: str, log: str) -> None:
        handle = open(logs / log, "wb")  # noqa: SIM115 - closed with the process
        procs.append(
            subprocess.Popen([str(DASK), *args], stdout=handle, stderr=subprocess.STDOUT, env=env)
        )

    try:
        start(
            "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard", log="s.log"
        )
        for i in range(2):
            start(
                "worker",
                address,
                "--host",
                "127.0.0.1",
                "--nthreads",
                "1",
                "--no-dashboard",
                "--no-nanny",  # one process per worker: nothing left behind at teardown
                "--local-directory",
                str(logs / f"w{i}"),
                log=f"w{i}.log",
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(2, timeout=60)
                    break
            except OSError:
                assert time.monotonic() < deadline, (logs / "s.log").read_text()
                time.sleep(0.5)
        yield address
    finally:
        _stop(procs)


def test_cluster_result_equals_local(dask_address, make_scenario):
    scenario = load_scenario(make_scenario(paths=32, chunk_size=8, grid=GRID))
    local = simulate(scenario, per_path=True, equity=True, scheduler="synchronous")
    remote = simulate(scenario, per_path=True, equity=True, scheduler=dask_address)
    assert remote["equity"].dims == ("market.sigma", "path", "step")  # every path's equity back
    assert remote.attrs["executor"] == dask_address
    xr.testing.assert_equal(local, remote)
    for name in local.data_vars:
        assert local[name].dtype == remote[name].dtype, name


def test_cli_with_scheduler_address(dask_address, make_scenario, tmp_path, capsys):
    scenario = make_scenario(paths=16, chunk_size=4)
    out = tmp_path / "remote.nc"
    code = main(
        ["run", str(scenario), "--out", str(out), "--scheduler", dask_address, "--no-progress"]
    )
    assert code == 0, capsys.readouterr().err
    with xr.open_dataset(out) as ds:
        remote = ds.load()
    local = simulate(load_scenario(scenario), scheduler="synchronous")
    xr.testing.assert_equal(remote, local)
    assert remote.attrs["executor"] == dask_address
