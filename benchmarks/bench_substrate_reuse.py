"""What reusing a generated substrate across sweep rows saves: a sweep timed with and without the reuse.

Run: ``python benchmarks/bench_substrate_reuse.py [--rows 6] [--axons 20] [--walkers 2000] [--steps 200]``

The sweep: ``--rows`` rows of one ``undulating_axons`` substrate (``--axons`` axons, coherent sinusoids,
A = 2 um, lambda = 20 um, ICVF 0.6, mesh resolution 0.02, as in bench_meshes.py) that differ only in the
walkers' seed, run serially by :func:`diffwalk.run_sweep` into a database. Without reuse every row builds
its substrate twice (once when all rows are parsed before the first runs, once in the row) and each row
builds the mesh's walk grid again; with it, the process builds both once. The signals of the two databases
are compared bit for bit. Kernels are compiled (or loaded from numba's cache) by a warm-up sweep before the
timed ones. Prints a table: wall time of each sweep, substrate builds, the time one build takes, and the
saving.

Measured (defaults; 2-core CI container, one other job running): one build 1.65 s; reuse off 26.95 s
(12 builds), on 4.62 s (1 build, 11 reused): 22.3 s (83 %) saved, signals bit-identical.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import textwrap
import time
import tomllib
import warnings
from pathlib import Path

from diffwalk import config as cfgmod
from diffwalk import database
from diffwalk.sweep import run_sweep

SPEC = """
[substrate]
type = "undulating_axons"
n_axons = {axons}
mean_radius = "1 um"
amplitude = "2 um"
wavelength = "20 um"
phase = "coherent"
icvf = 0.6
resolution = 0.02
seed = 0

[[scheme]]
type = "pgse"
delta = "5 ms"
Delta = "15 ms"
bvalues = "0 1000 2000 s/mm^2"
directions = 3

[simulation]
n_walkers = {walkers}
n_steps = {steps}
diffusivity = "2 um^2/ms"
start = "uniform"

[sweep]
seeds = {rows}
"""


def timed_sweep(spec: str, path: Path, cache_size: int) -> tuple[float, dict]:
    """Wall time (s) of one serial sweep with ``cache_size`` substrates kept for reuse, and the reuse counts."""
    cfgmod.set_substrate_cache_size(cache_size)
    cfgmod.clear_substrate_cache()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_sweep(spec, path, flush_seconds=1e9)
    return time.perf_counter() - t0, cfgmod.substrate_cache_info()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=6, help="rows (walker seeds) sharing one substrate")
    ap.add_argument("--axons", type=int, default=20, help="undulating axons in the substrate")
    ap.add_argument("--walkers", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    # the rows are short on purpose (the build is what is measured): keep the walker's step-size advice quiet
    logging.getLogger("diffwalk.sweep").setLevel(logging.ERROR)
    spec = textwrap.dedent(SPEC).format(axons=args.axons, walkers=args.walkers, steps=args.steps, rows=args.rows)
    old = cfgmod.set_substrate_cache_size(0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            # compile the kernels (a one-row sweep) so neither timed sweep pays for it
            timed_sweep(spec.replace(f"seeds = {args.rows}", "seeds = 1"), tmp / "warm.h5", 0)
            t0 = time.perf_counter()
            cfgmod.build_substrate(tomllib.loads(spec)["substrate"])
            t_build = time.perf_counter() - t0
            t_off, off = timed_sweep(spec, tmp / "off.h5", 0)
            t_on, on = timed_sweep(spec, tmp / "on.h5", 4)
            a, b = database.open_database(tmp / "off.h5"), database.open_database(tmp / "on.h5")
            identical = a.signal.tobytes() == b.signal.tobytes() and a.stderr.tobytes() == b.stderr.tobytes()
    finally:
        cfgmod.set_substrate_cache_size(old)
    print(f"undulating_axons, {args.axons} axons; {args.rows} rows differing only in the walker seed; "
          f"{args.walkers} walkers x {args.steps} steps per row")
    print(f"one substrate build: {t_build:.2f} s")
    print(f"{'reuse':8s} {'sweep wall (s)':>15s} {'builds':>7s} {'reused':>7s}")
    print(f"{'off':8s} {t_off:15.2f} {off['misses']:7d} {off['hits']:7d}")
    print(f"{'on':8s} {t_on:15.2f} {on['misses']:7d} {on['hits']:7d}")
    print(f"saved {t_off - t_on:.2f} s ({100 * (1 - t_on / t_off):.0f} %); signals bit-identical: {identical}")


if __name__ == "__main__":
    main()
