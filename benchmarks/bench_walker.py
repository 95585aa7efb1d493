"""Walker throughput against a speed-of-light loop compiled in the same process (ratios, not absolute speeds).

Run: ``python benchmarks/bench_walker.py [--walkers 20000] [--steps 1000] [--quick] [--out benchmarks/results]``

Each case runs ``walker.simulate`` (PGSE delta 10 ms, Delta 40 ms, D = 2e-9 m^2/s) and reports, on one
thread (the serial builds of the kernel and of the reference loop):

* ``kernel``: walker-steps per second inside the kernel, and its ratio to the reference loop;
* ``call``: walker-steps per CPU-second of the whole ``simulate`` call (set-up, kernel, signals), and
  its ratio: the figure a database pays for;

then the parallel build on all cores with five times the walkers (wall-clock speed-up of the whole call
over the serial one-thread run, with the load average at the time, since a busy box cannot give two idle
cores), and the time to a first result with an empty
kernel cache (cold) and with a filled one (warm), each in a fresh process.

The reference loop (``sol``) is the least a walk can do: xoroshiro128+ uniforms, a Marsaglia unit
direction, a position update and one weighted phase sum per step. It is a frozen copy, not the walker's
own draw, so that a faster generator in the walker shows as a higher ratio.

Cases:
  free-10, free-91        free diffusion with 10 and 91 measurements (one temporal shape)
  cyl-1                   one cylinder R = 5 um, walkers inside
  hex-0.6, fcc-0.5        hexagonal cylinders R = 5 um at ICVF 0.6, fcc spheres R = 4 um at 0.5 (uniform start)
  gamma-500               500 cylinders with Gamma(4, 0.5 um) radii at ICVF 0.6 (uniform start)
  *-perm                  the same with permeable membranes, kappa = 20 um/s (no sub-steps at these steps)

Results go to JSON (``walker.json``) and a printed table. Timings never go into tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

import sequences as sq
import substrates as su
import walker

D0 = 2e-9
#: targets of the throughput issue: case -> least ratio of the whole call to the reference loop (one thread)
TARGETS = {"free-10": 0.75, "free-91": 0.70, "cyl-1": 0.60, "hex-0.6": 0.50, "fcc-0.5": 0.50, "gamma-500": 0.40}

_U11 = np.uint64(11)
_U16 = np.uint64(16)
_U24 = np.uint64(24)
_U40 = np.uint64(40)
_U37 = np.uint64(37)
_U27 = np.uint64(27)
_INV53 = 1.0 / 9007199254740992.0


@njit(inline="always")
def _uniform(s0, s1):
    res = s0 + s1
    s1 ^= s0
    s0 = ((s0 << _U24) | (s0 >> _U40)) ^ s1 ^ (s1 << _U16)
    s1 = (s1 << _U37) | (s1 >> _U27)
    return (res >> _U11) * _INV53, s0, s1


@njit(inline="always")
def _direction(s0, s1):
    while True:
        u, s0, s1 = _uniform(s0, s1)
        v, s0, s1 = _uniform(s0, s1)
        a = 2.0 * u - 1.0
        b = 2.0 * v - 1.0
        q = a * a + b * b
        if q < 1.0 and q > 0.0:
            break
    f = 2.0 * math.sqrt(1.0 - q)
    return a * f, b * f, 1.0 - 2.0 * q, s0, s1


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
            ux, uy, uz, s0, s1 = _direction(s0, s1)
            x += step * ux
            y += step * uy
            z += step * uz
            acc += w[t] * x
        out[i] = acc + y + z


# not cached (compiled in this process, like the walker's variants are loaded); serial and parallel builds
speed_of_light = njit(parallel=True, cache=False)(_speed_of_light)
speed_of_light_serial = njit(cache=False)(_speed_of_light)


def pgse_scheme(m: int) -> sq.Scheme:
    """PGSE (delta 10 ms, Delta 40 ms) with m measurements, b from 0 to 3000 s/mm^2, random directions."""
    rng = np.random.default_rng(0)
    u = rng.normal(size=(m, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return sq.pgse(10e-3, 40e-3, bvalues=np.linspace(0, 3e9, m), directions=u)


def run_sol(n_walkers: int, n_steps: int, parallel: bool = True, repeats: int = 3) -> float:
    """Reference-loop walker-steps per second (best of ``repeats``; parallel build, or the serial one)."""
    sol = speed_of_light if parallel else speed_of_light_serial
    seeds = np.random.SeedSequence(0).generate_state(2 * n_walkers, dtype=np.uint64).reshape(n_walkers, 2)
    w = np.random.default_rng(0).normal(size=n_steps + 1)
    out = np.zeros(n_walkers)
    step = math.sqrt(6 * D0 * 40e-6)
    sol(seeds[:100], 10, step, w, out[:100])  # compile
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        sol(seeds, n_steps, step, w, out)
        best = min(best, time.perf_counter() - t)
    return n_walkers * n_steps / best


def _hex_field(sub):
    """Myelin-like cylinders' closed-form field at 3 T, B0 across them, sampled on a 64 x 64 map."""
    return su.susceptibility_field(sub, chi=-1e-7, b0_direction=(1.0, 0.0, 0.0)).sampled((64, 64, 1))


def cases(quick: bool):
    """(name, substrate, scheme, start, keyword arguments of simulate)."""
    for name, sub, scheme, start in _cases(quick):
        yield name, sub, scheme, start, {}
        if name == "free-10":  # the cost of a field: an analytic background gradient, gradient echoes too
            yield "free-10-field", sub, scheme + scheme.with_refocusing([]), start, \
                {"field": su.background_gradient([1e-3, 0.0, 0.0])}
        if name == "cyl-1":  # one closed-form source (the cylinder's own field)
            yield "cyl-1-field", sub, scheme, start, {"field": su.susceptibility_field(sub, chi=-1e-7,
                                                                                    b0_direction=(1, 0, 0))}
        if name == "hex-0.6":  # a periodic map (trilinear lookups)
            yield "hex-0.6-field", sub, scheme, start, {"field": _hex_field(sub)}


def _cases(quick: bool):
    yield "free-10", su.free(), pgse_scheme(10), "uniform"
    yield "free-91", su.free(), pgse_scheme(91), "uniform"
    yield "cyl-1", su.cylinder(5e-6), pgse_scheme(10), "intra"
    yield "cyl-1-perm", su.cylinder(5e-6, permeability=2e-5), pgse_scheme(10), "intra"
    yield "hex-0.6", su.cylinder_lattice(5e-6, 0.6, repeats=3), pgse_scheme(10), "uniform"
    # membranes: kappa = 20 um/s keeps p ~ 0.005 at these steps (no sub-steps), so this is the cost of transits
    yield "hex-0.6-perm", su.cylinder_lattice(5e-6, 0.6, repeats=3, permeability=2e-5), pgse_scheme(10), "uniform"
    yield "fcc-0.5", su.sphere_lattice(4e-6, 0.5, lattice="fcc", repeats=2), pgse_scheme(10), "uniform"
    yield "fcc-0.5-perm", su.sphere_lattice(4e-6, 0.5, lattice="fcc", repeats=2, permeability=2e-5), \
        pgse_scheme(10), "uniform"
    if not quick:
        radii = np.random.default_rng(1).gamma(4, 0.5e-6, 500)
        packed = su.pack_cylinders(radii, 0.6, seed=1)
        yield "gamma-500", packed, pgse_scheme(10), "uniform"
        yield "gamma-500-perm", su.cylinders(packed.radii, packed.centers[:, :2], packed.box[:2],
                                            permeability=2e-5), pgse_scheme(10), "uniform"


def time_call(sub, scheme, start, n_walkers, n_steps, parallel, repeats=3, **kw) -> dict:
    """Best of ``repeats`` runs: kernel walker-steps/s, whole-call walker-steps per CPU-second and per second."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        walker.simulate(sub, scheme, n_walkers=200, n_steps=20, diffusivity=D0, start=start,
                        parallel=parallel, **kw)  # compile or load the kernel
        best = None
        for _ in range(repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            r = walker.simulate(sub, scheme, n_walkers=n_walkers, n_steps=n_steps, diffusivity=D0, seed=0,
                                start=start, parallel=parallel, **kw)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            row = {"kernel_steps_per_s": r.provenance["walker_steps_per_s"], "call_steps_per_cpu_s":
                   n_walkers * n_steps / cpu, "call_steps_per_s": n_walkers * n_steps / wall, "wall_s": wall,
                   "cpu_s": cpu, "escapes": r.escapes, "reflections_per_step": r.reflections / (n_walkers * n_steps)}
            if best is None or row["cpu_s"] < best["cpu_s"]:
                best = row
    return best


_FIRST_RUN = """
import time, warnings
t = time.perf_counter()
import sequences, substrates, walker
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    walker.simulate(substrates.cylinder_lattice(2e-6, 0.6), sequences.pgse(10e-3, 30e-3, bvalues=[0, 1e9]),
                    n_walkers=1000, n_steps=200, diffusivity=2e-9, start="uniform")
print(time.perf_counter() - t)
"""


def first_result_times() -> dict:
    """Seconds to a first simulate() on an analytic substrate in a fresh process: empty cache, then filled."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = {}
        for label in ("cold", "warm"):
            p = subprocess.run([sys.executable, "-c", _FIRST_RUN], env=env, capture_output=True, text=True,
                               check=True)
            out[label] = float(p.stdout.strip().splitlines()[-1])
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--walkers", type=int, default=20_000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="skip the 500-cylinder cases and the first-result runs")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    N, T = args.walkers, args.steps
    built = list(cases(args.quick))
    # one thread first: serial builds, before numba's thread pool exists (its idle threads cost a serial run)
    sol1 = run_sol(N, T, parallel=False)
    rows = [{"case": "sol", "threads": 1, "kernel_steps_per_s": sol1, "call_steps_per_cpu_s": sol1}]
    for name, sub, scheme, start, kw in built:
        r = time_call(sub, scheme, start, N, T, parallel=False, **kw)
        rows.append({"case": name, "threads": 1, "measurements": len(scheme), **r,
                     "kernel_ratio": r["kernel_steps_per_s"] / sol1, "call_ratio": r["call_steps_per_cpu_s"] / sol1})
    threads = numba.config.NUMBA_NUM_THREADS
    scaling = []
    if threads > 1:
        numba.set_num_threads(threads)
        load = os.getloadavg()[0]
        solp = run_sol(5 * N, T, parallel=True)
        scaling.append({"case": "sol", "threads": threads, "speedup": solp / sol1, "load_before": load})
        for name, sub, scheme, start, kw in built:
            if name.startswith(("free-91", "cyl-1-perm")) or name.endswith("-field"):
                continue
            one = next(r for r in rows if r["case"] == name)
            many = time_call(sub, scheme, start, 5 * N, T, parallel=True, repeats=2)
            scaling.append({"case": name, "threads": threads,
                            "speedup": many["call_steps_per_s"] / one["call_steps_per_s"],
                            "kernel_speedup": many["kernel_steps_per_s"] / one["kernel_steps_per_s"],
                            "load_before": load})
    first = {} if args.quick else first_result_times()
    report = {"machine": platform.processor() or platform.machine(), "cpu_count": threads,
              "numba": numba.__version__, "walkers": N, "steps": T, "load_average": os.getloadavg(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows, "scaling": scaling,
              "first_result_s": first, "targets": TARGETS}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "walker.json").write_text(json.dumps(report, indent=2))
    print(f"one thread, {N} walkers x {T} steps (M walker-steps per second, ratio to the reference loop)")
    print(f"{'case':15s} {'M':>3s} {'kernel':>8s} {'x sol':>6s} {'call/CPU-s':>10s} {'x sol':>6s} {'target':>6s}")
    for row in rows:
        tgt = TARGETS.get(row["case"])
        print(f"{row['case']:15s} {row.get('measurements', 0):3d} {row['kernel_steps_per_s'] / 1e6:8.1f} "
              f"{row.get('kernel_ratio', 1.0):6.2f} {row['call_steps_per_cpu_s'] / 1e6:10.1f} "
              f"{row.get('call_ratio', 1.0):6.2f} {'' if tgt is None else f'{tgt:6.2f}'}")
    for perm in [r for r in rows if r["case"].endswith(("-perm", "-field"))]:
        base = perm["case"].rsplit("-", 1)[0]
        twin = next(r for r in rows if r["case"] == base)
        what = "impermeable twin" if perm["case"].endswith("-perm") else "twin without a field"
        print(f"{perm['case']:15s} costs {100 * (twin['call_ratio'] / perm['call_ratio'] - 1):+.0f} % "
              f"against its {what}")
    if scaling:
        print(f"\n{threads} threads vs one, {5 * N} walkers (load average before: {scaling[0]['load_before']:.2f})")
        for s in scaling:
            print(f"{s['case']:15s} x{s['speedup']:.2f} (kernel x{s.get('kernel_speedup', s['speedup']):.2f})")
    if first:
        print(f"\nfirst simulate() in a fresh process: {first['cold']:.1f} s with an empty kernel cache, "
              f"{first['warm']:.1f} s with it filled")
    print(f"wrote {out / 'walker.json'}")
    return report


if __name__ == "__main__":
    main()
