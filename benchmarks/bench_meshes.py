"""Mesh walker throughput and generator times: walker-steps per second on one thread and on all, ratio to SOL.

Run: ``python benchmarks/bench_meshes.py [--walkers 20000] [--steps 1000] [--out benchmarks/results]``

Cases (PGSE delta 10 ms, Delta 40 ms, 10 measurements, D = 2e-9 m^2/s), each at the number of steps that
``walker.simulate`` asks for (step <= 1/6 of the substrate's smallest feature; at least --steps), with
--walkers x --steps walker-steps in all:
  sphere-exact   analytic sphere R = 5 um (the reference for the icospheres)
  ico-1280       icosphere R = 5 um, 1,280 faces (walkers inside)
  ico-5120       icosphere R = 5 um, 5,120 faces
  ico-20480      icosphere R = 5 um, 20,480 faces
  spheres-5760   18 icospheres R = 2 um (320 faces each) in a periodic box (walkers uniform)
  undulating-100 100 undulating axons (coherent sinusoid, A = 2 um, lambda = 20 um, ICVF 0.6), >= 1e5 faces
  beaded-20      20 beaded axons (amplitude 0.5, spacing 10 um, ICVF 0.5)
  beaded-20-intra  the same, walkers inside the axons
  union-beaded-20  the same beads as chains of overlapping spheres (spacing half a radius; no mesh), inside
  somas-12       12 somas with 3 neurites each (marching tetrahedra), volume fraction 0.15

Kernel time only (compilation is warmed up first). One thread is the serial build, timed before any
parallel run starts numba's thread pool (an idle pool slowed a serial run on the other core 2x here); all
threads is the parallel build. Generator and set-up times (grid, checks) are reported separately, and so
are each call's fixed costs: the whole ``simulate()`` call less its kernel (start positions by ray parity,
the final exact location of every walker, the signals), in seconds and as a share of the call (run with
``--walkers 100000 --steps 1000`` for the share of a 10^5-walker call). Results go to JSON and a printed
table.
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

import substrates as su
import walker
from bench_walker import D0, pgse_scheme, run_sol


def _spheres_box():
    vs, fs, nv = [], [], 0
    for i in range(3):
        for j in range(3):
            for k in range(2):
                v, f = su.meshing.icosphere(2e-6, center=((i + 0.5) * 5e-6, (j + 0.5) * 5e-6, (k + 0.5) * 5e-6),
                                            subdivisions=2)
                vs.append(v)
                fs.append(f + nv)
                nv += len(v)
    return su.mesh_substrate(np.concatenate(vs), np.concatenate(fs), box=[15e-6, 15e-6, 10e-6])


def cases():
    yield "sphere-exact", lambda: su.sphere(5e-6), "intra"
    yield "ico-1280", lambda: su.meshed_sphere(5e-6, subdivisions=3), "intra"
    yield "ico-5120", lambda: su.meshed_sphere(5e-6, subdivisions=4), "intra"
    yield "ico-20480", lambda: su.meshed_sphere(5e-6, subdivisions=5), "intra"
    yield "spheres-5760", _spheres_box, "uniform"
    yield "undulating-100", lambda: su.undulating_axons(100, amplitude=2e-6, wavelength=20e-6, icvf=0.6,
                                                        phase="coherent", resolution=0.01, seed=0), "uniform"
    yield "beaded-20", lambda: su.beaded_axons(20, icvf=0.5, seed=0), "uniform"
    # the same beads two ways, walkers inside: a tube mesh, and chains of spheres half a radius apart
    yield "beaded-20-intra", lambda: su.beaded_axons(20, icvf=0.5, seed=0), "intra"
    yield "union-beaded-20", lambda: su.sphere_chain_axons(20, mean_radius=1e-6, icvf=0.5, bead_amplitude=0.5,
                                                           bead_wavelength=10e-6, length=40e-6, spacing=0.5,
                                                           seed=0), "intra"
    yield "somas-12", lambda: su.somas_with_neurites(seed=0), "uniform"


#: cases walked with another case's step count, so that their speeds compare like for like
SAME_STEPS = {"union-beaded-20": "beaded-20-intra"}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--walkers", type=int, default=20_000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--only", nargs="*", help="run only these cases")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    max_threads = numba.config.NUMBA_NUM_THREADS
    scheme = pgse_scheme(10)
    built = {}
    gen_rows = []
    for name, make, start in cases():
        if args.only and name not in args.only:
            continue
        t = time.perf_counter()
        sub = make()
        t_make = time.perf_counter() - t
        faces = len(getattr(sub, "faces", []))
        built[name] = (sub, start)
        gen_rows.append({"case": name, "faces": faces, "build_s": t_make})
    rows = []
    for threads in sorted({1, max_threads}):
        parallel = threads > 1
        if parallel:
            numba.set_num_threads(threads)
        sol = run_sol(args.walkers, args.steps, parallel=parallel)
        rows.append({"case": "sol", "threads": threads, "steps_per_s": sol, "ratio_to_sol": 1.0})
        for name, (sub, start) in built.items():
            feature = built.get(SAME_STEPS.get(name), (sub,))[0].smallest_feature
            T = max(args.steps, int(math.ceil(scheme.duration * 6 * D0 / (feature / 6) ** 2)))
            N = max(1000, args.walkers * args.steps // T)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                walker.simulate(sub, scheme, n_walkers=200, n_steps=20, diffusivity=D0, start=start,
                                parallel=parallel)  # warm up
                t_call = time.perf_counter()
                r = walker.simulate(sub, scheme, n_walkers=N, n_steps=T, diffusivity=D0, seed=0, start=start,
                                    parallel=parallel)
                t_call = time.perf_counter() - t_call
            sps = r.provenance["walker_steps_per_s"]
            fixed = t_call - r.provenance["wall_time_s"]
            rows.append({"case": name, "threads": threads, "steps_per_s": sps, "ratio_to_sol": sps / sol,
                         "n_steps": T, "walkers": N, "step_length_um": r.provenance["step_length"] * 1e6,
                         "escapes": r.escapes, "reflections_per_step": r.reflections / (N * T),
                         "call_s": t_call, "fixed_s": fixed, "fixed_share": fixed / t_call})
    report = {"machine": platform.processor() or platform.machine(), "cpu_count": max_threads,
              "numba": numba.__version__, "walkers": args.walkers, "steps": args.steps,
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "substrates": gen_rows, "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "meshes.json").write_text(json.dumps(report, indent=2))
    print(f"{'substrate':15s} {'faces':>8s} {'build s':>8s}")
    for g in gen_rows:
        print(f"{g['case']:15s} {g['faces']:8d} {g['build_s']:8.2f}")
    print(f"\n{'case':15s} {'threads':>7s} {'step um':>7s} {'M steps/s':>10s} {'per thread':>10s} {'x SOL':>7s} "
          f"{'refl/step':>9s} {'escapes':>7s} {'walkers':>8s} {'fixed s':>8s} {'fixed %':>7s}")
    for row in rows:
        print(f"{row['case']:15s} {row['threads']:7d} {row.get('step_length_um', 0):7.3f} "
              f"{row['steps_per_s'] / 1e6:10.1f} {row['steps_per_s'] / 1e6 / row['threads']:10.1f} "
              f"{row['ratio_to_sol']:7.2f} {row.get('reflections_per_step', 0):9.3f} {row.get('escapes', 0):7d} "
              f"{row.get('walkers', 0):8d} {row.get('fixed_s', 0):8.3f} {100 * row.get('fixed_share', 0):7.1f}")
    print(f"wrote {out / 'meshes.json'}")
    return report


if __name__ == "__main__":
    main()
