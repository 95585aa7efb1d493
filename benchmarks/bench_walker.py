"""Walker throughput: walker-steps per second, on one thread and on all, with ratios to a speed-of-light loop.

Run: ``python benchmarks/bench_walker.py [--walkers 100000] [--steps 1000] [--out benchmarks/results]``

Cases (PGSE delta 10 ms, Delta 40 ms, D = 2e-9 m^2/s):
  free-10   free diffusion, 10 measurements
  free-91   free diffusion, 91 measurements
  cyl-1     one cylinder R = 5 um (walkers inside)
  hex-0.6   hexagonal cylinders R = 5 um at ICVF 0.6 (walkers uniform: inside and outside)
  hex-0.6-perm  the same with permeable membranes, kappa = 20 um/s
  fcc-0.5   spheres R = 4 um on an fcc lattice, volume fraction 0.5 (walkers uniform)
  fcc-0.5-perm  the same with permeable membranes, kappa = 20 um/s
  gamma-500 500 cylinders, Gamma(shape 4, scale 0.5 um) radii, ICVF 0.6 (walkers uniform)
  sol       the speed-of-light loop: random direction, position update, one phase accumulator

Kernel time only (compilation is warmed up first); results go to JSON and a printed table.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
import warnings
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

import sequences as sq
import substrates as su
import walker
from walker.rng import unit_direction

D0 = 2e-9


def _speed_of_light(seeds, n_steps, step, w, out):
    """The least a walk can do: random unit direction, position update, one weighted phase sum."""
    for i in prange(seeds.shape[0]):
        s0 = seeds[i, 0]
        s1 = seeds[i, 1]
        x = 0.0
        y = 0.0
        z = 0.0
        acc = 0.0
        for t in range(1, n_steps + 1):
            ux, uy, uz, s0, s1 = unit_direction(s0, s1)
            x += step * ux
            y += step * uy
            z += step * uz
            acc += w[t] * x
        out[i] = acc + y + z


# not cached: numba's cache would not notice a change in the inlined walker.rng.unit_direction; compiled twice,
# like the walker (prange runs as range in the serial build)
speed_of_light = njit(parallel=True, cache=False)(_speed_of_light)
speed_of_light_serial = njit(cache=False)(_speed_of_light)


def pgse_scheme(m: int) -> sq.Scheme:
    """PGSE (delta 10 ms, Delta 40 ms) with m measurements, b from 0 to 3000 s/mm^2, random directions."""
    rng = np.random.default_rng(0)
    u = rng.normal(size=(m, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return sq.pgse(10e-3, 40e-3, bvalues=np.linspace(0, 3e9, m), directions=u)


def cases(quick: bool):
    radii = np.random.default_rng(1).gamma(4, 0.5e-6, 500)
    yield "free-10", su.free(), pgse_scheme(10), "uniform"
    yield "free-91", su.free(), pgse_scheme(91), "uniform"
    yield "cyl-1", su.cylinder(5e-6), pgse_scheme(10), "intra"
    yield "hex-0.6", su.cylinder_lattice(5e-6, 0.6, repeats=3), pgse_scheme(10), "uniform"
    # membranes: kappa = 20 um/s keeps p ~ 0.005 at these steps (no sub-steps), so this is the cost of transits
    yield "hex-0.6-perm", su.cylinder_lattice(5e-6, 0.6, repeats=3, permeability=2e-5), pgse_scheme(10), "uniform"
    yield "fcc-0.5", su.sphere_lattice(4e-6, 0.5, lattice="fcc", repeats=2), pgse_scheme(10), "uniform"
    yield "fcc-0.5-perm", su.sphere_lattice(4e-6, 0.5, lattice="fcc", repeats=2, permeability=2e-5), pgse_scheme(10), \
        "uniform"
    if not quick:
        t = time.perf_counter()
        packed = su.pack_cylinders(radii, 0.6, seed=1)
        print(f"(packed 500 gamma cylinders in {time.perf_counter() - t:.1f} s, smallest gap "
              f"{packed.cells.min_gap * 1e9:.2f} nm)")
        yield "gamma-500", packed, pgse_scheme(10), "uniform"


def run_sol(n_walkers: int, n_steps: int, parallel: bool = True) -> float:
    """Speed-of-light walker-steps per second (parallel build, or the serial one)."""
    sol = speed_of_light if parallel else speed_of_light_serial
    seeds = np.random.SeedSequence(0).generate_state(2 * n_walkers, dtype=np.uint64).reshape(n_walkers, 2)
    w = np.random.default_rng(0).normal(size=n_steps + 1)
    out = np.zeros(n_walkers)
    step = math.sqrt(6 * D0 * 40e-6)
    sol(seeds[:100], 10, step, w, out[:100])  # compile
    t = time.perf_counter()
    sol(seeds, n_steps, step, w, out)
    return n_walkers * n_steps / (time.perf_counter() - t)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--walkers", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="skip the 500-cylinder packing")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    max_threads = numba.config.NUMBA_NUM_THREADS
    rows = []
    for threads in sorted({1, max_threads}):
        numba.set_num_threads(threads)
        sol = run_sol(args.walkers, args.steps)
        rows.append({"case": "sol", "threads": threads, "steps_per_s": sol, "ratio_to_sol": 1.0})
        for name, sub, scheme, start in cases(args.quick):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                walker.simulate(sub, scheme, n_walkers=200, n_steps=20, diffusivity=D0, start=start)  # warm up
                r = walker.simulate(sub, scheme, n_walkers=args.walkers, n_steps=args.steps, diffusivity=D0,
                                    seed=0, start=start)
            sps = r.provenance["walker_steps_per_s"]
            rows.append({"case": name, "threads": threads, "steps_per_s": sps, "ratio_to_sol": sps / sol,
                         "measurements": len(scheme), "escapes": r.escapes, "reflections": r.reflections})
    report = {"machine": platform.processor() or platform.machine(), "cpu_count": max_threads,
              "numba": numba.__version__, "walkers": args.walkers, "steps": args.steps,
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "walker.json").write_text(json.dumps(report, indent=2))
    print(f"{'case':10s} {'threads':>7s} {'M steps/s':>10s} {'per thread':>10s} {'x SOL':>7s}")
    for row in rows:
        print(f"{row['case']:10s} {row['threads']:7d} {row['steps_per_s'] / 1e6:10.1f} "
              f"{row['steps_per_s'] / 1e6 / row['threads']:10.1f} {row['ratio_to_sol']:7.2f}")
    print(f"wrote {out / 'walker.json'}")
    return report


if __name__ == "__main__":
    main()
