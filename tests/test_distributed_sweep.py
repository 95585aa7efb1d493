"""A sweep on a real Dask deployment: scheduler and workers as separate processes on the loopback (issue 32).

One worker is killed (SIGKILL, no nanny to restart it) after the first rows have arrived: the scheduler
hands its tasks to the other worker, no finished row is lost, and every row equals the serial run bit for
bit (rows are independent simulations with fixed seeds).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from diffwalk import database
from diffwalk.sweep import run_sweep

pytest.importorskip("dask.distributed")

SPEC = textwrap.dedent("""
    [substrate]
    type = "cylinder_lattice"
    radius = "3 um"
    icvf = 0.5

    [[scheme]]
    type = "pgse"
    delta = "10 ms"
    Delta = "30 ms"
    bvalues = "0 1000 2000 s/mm^2"
    directions = 6

    [simulation]
    n_walkers = 6000
    n_steps = 400
    diffusivity = "2 um^2/ms"
    seed = 0

    [sweep]
    seeds = [0, 1, 2, 3, 4, 5]

    [sweep.grid]
    "substrate.icvf" = [0.4, 0.5]
""")


def _start(args: list[str], log: Path) -> subprocess.Popen:
    # a session of its own, so the kill reaches the worker and nothing else
    return subprocess.Popen([sys.executable, "-m", *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True, env=os.environ | {"OMP_NUM_THREADS": "1"})


def _wait_for(predicate, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.1)


def test_sweep_through_a_scheduler_survives_a_killed_worker(tmp_path):
    from dask.distributed import Client

    sched_file = tmp_path / "scheduler.json"
    procs = [_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--dashboard-address", ":0", "--scheduler-file", str(sched_file)], tmp_path / "scheduler.log")]
    try:
        _wait_for(sched_file.exists, 60, "the scheduler file")
        address = json.loads(sched_file.read_text())["address"]
        for k in range(2):
            procs.append(_start(["distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny",
                                 "--host", "127.0.0.1", "--dashboard-address", ":0", "--name", f"w{k}"],
                                tmp_path / f"worker{k}.log"))
        with Client(address, timeout=60) as c:
            c.wait_for_workers(2, timeout=60)

        db_path = tmp_path / "dist.h5"
        parts = Path(str(db_path) + ".parts")
        errors: list[BaseException] = []

        def sweep() -> None:
            try:
                run_sweep(SPEC, db_path, scheduler=address, flush_seconds=3600)
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                errors.append(exc)

        runner = threading.Thread(target=sweep)
        runner.start()
        _wait_for(lambda: parts.is_dir() and len(list(parts.glob("row_*.npz"))) >= 1 or not runner.is_alive(),
                  240, "the first finished row")
        finished_before = sorted(p.name for p in parts.glob("row_*.npz"))
        assert runner.is_alive(), "the sweep finished before a worker could be killed; make its rows longer"
        os.killpg(procs[1].pid, signal.SIGKILL)
        procs[1].wait(timeout=30)
        runner.join(timeout=400)
        assert not runner.is_alive(), "the sweep did not finish after the worker was killed"
        assert not errors, errors
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)

    db = database.open_database(db_path)
    assert finished_before and db.n_rows == 12 and db.done.all()
    serial = database.open_database(run_sweep(SPEC, tmp_path / "serial.h5"))
    np.testing.assert_array_equal(serial.signal, db.signal)
    np.testing.assert_array_equal(serial.stderr, db.stderr)
    assert int(db.columns["escapes"].sum()) == 0
