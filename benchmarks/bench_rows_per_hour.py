"""Rows per hour end to end (substrate, compile, walk, write, fit) and where the time goes (issue 32).

Run: ``python benchmarks/bench_rows_per_hour.py [--quick] [--models a,b,...]``

The case is the one a user tried: a sweep of packed Gamma cylinders (9 target ICVFs x 2 seeds = 18 rows,
10^4 walkers x 4,000 steps, 91 PGSE measurements: b = 0 and 30 directions at 1000, 2000 and 3000
s/mm^2), simulated serially into a database, then validated as ``diffwalk validate db.h5 --snr 50
--repeats 3`` would (every applicable model, one core). ``--quick``: 6 rows, 2,000 walkers x 1,000 steps,
1 noise realisation.

Phases, all in this process (one numba thread, one BLAS thread):

- substrate: parsing the row's config and building its substrate (first row);
- compile: the first simulate call minus a second identical one (numba's on-disk cache makes this a load
  after the first run on a machine);
- walk + write: the serial sweep's wall time, and its rows' own walk times;
- fit: ``validation.bias_table`` per model over the database's rows (snr 50).

Prints one table of seconds per phase and per model, and rows per hour for the simulation alone, for the
fits alone and for both. Compare two trees back to back on one machine (``git worktree`` +
``PYTHONPATH``): the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import validation  # noqa: E402
import walker  # noqa: E402
from diffwalk import config as cfgmod  # noqa: E402
from diffwalk import database  # noqa: E402
from diffwalk.sweep import run_sweep  # noqa: E402
from diffwalk.validate import database_signals  # noqa: E402

SPEC = """
[substrate]
type = "packed_cylinders"
n = 60
gamma_shape = 5.0
gamma_scale = "0.5 um"
icvf = 0.5
seed = 0

[[scheme]]
type = "pgse"
delta = "10 ms"
Delta = "30 ms"
bvalues = "0 1000 2000 3000 s/mm^2"
directions = 30

[simulation]
n_walkers = {walkers}
n_steps = {steps}
diffusivity = "2 um^2/ms"
seed = 0

[sweep]
seeds = {seeds}

[sweep.grid]
"substrate.icvf" = {icvfs}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 rows, 2,000 walkers x 1,000 steps, 1 realisation")
    ap.add_argument("--models", default=None, help="comma-separated model names (default: every applicable)")
    args = ap.parse_args()
    if args.quick:
        spec = SPEC.format(walkers=2000, steps=1000, seeds="[0, 1]", icvfs="[0.4, 0.5, 0.6]")
        repeats = 1
    else:
        spec = SPEC.format(walkers=10_000, steps=4000, seeds="[0, 1]",
                           icvfs="[0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]")
        repeats = 3
    import tomllib
    base = tomllib.loads(spec)
    base.pop("sweep")
    times: dict[str, float] = {}
    with threadpool_limits(limits=1), warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        job = cfgmod.parse_job(base)
        times["substrate (one build)"] = time.perf_counter() - t
        sim = dict(job.simulation)
        t = time.perf_counter()
        walker.simulate(job.substrate, job.scheme, **(sim | {"n_walkers": 256, "n_steps": 16}))
        first = time.perf_counter() - t
        t = time.perf_counter()
        walker.simulate(job.substrate, job.scheme, **(sim | {"n_walkers": 256, "n_steps": 16}))
        times["compile (first call - second)"] = max(0.0, first - (time.perf_counter() - t))

        db_path = Path(tmp) / "db.h5"
        t = time.perf_counter()
        run_sweep(spec, db_path)
        sweep_s = time.perf_counter() - t
        db = database.open_database(db_path)
        walk_s = float(np.sum(db.columns["wall_time"]))
        n_rows = int(db.n_rows)
        times["walk (rows' own time)"] = walk_s
        times["sweep overhead (build, write, fold)"] = sweep_s - walk_s

        data = database_signals(db)
        names = args.models.split(",") if args.models else None
        table_models = names or validation.list_models()
        fit_times = {}
        for name in table_models:
            t = time.perf_counter()
            try:
                validation.bias_table(data.scheme, data.signals, data.ground_truths, data.stderr, models=[name],
                                      snr=50.0, repeats=repeats, seed=0)
            except (ValueError, KeyError) as exc:  # a model this scheme cannot fit
                print(f"  {name}: skipped ({exc})")
                continue
            fit_times[name] = time.perf_counter() - t
    fit_s = sum(fit_times.values())
    print(f"\n{n_rows} rows, {len(data.scheme)} measurements, {repeats} noise realisation(s), one core\n")
    print("| phase | seconds |\n|---|---|")
    for k, v in times.items():
        print(f"| {k} | {v:.2f} |")
    print(f"| sweep, wall | {sweep_s:.2f} |")
    print(f"| fits, every model | {fit_s:.2f} |")
    print("\n| model | seconds | ms per voxel fit |\n|---|---|---|")
    for name, s in sorted(fit_times.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {s:.2f} | {1e3 * s / (n_rows * repeats):.1f} |")
    hour = 3600.0
    print(f"\nrows per hour: simulation {hour * n_rows / sweep_s:.0f}, fits {hour * n_rows / fit_s:.0f}, "
          f"end to end {hour * n_rows / (sweep_s + fit_s):.0f}")


if __name__ == "__main__":
    main()
