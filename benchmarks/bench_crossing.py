"""Crossing bundles: the intra-axonal fraction reached against crossing angle and undulation, generation time,
and the walk speed of the mesh and sphere-union representations of the same fibres.

Run: ``python benchmarks/bench_crossing.py [--fibres 500] [--walkers 20000] [--steps 1000] [--quick]
[--parts reach,dispersion,walk] [--resolution 0.01]``

* reach: for each crossing angle (90, 60, 45, 30 degrees; three bundles at 60) and undulation amplitude (0,
  0.25, 0.5 um at a quarter-period wavelength), the highest ICVF of the sheets that packs (tried from 0.80 down
  in steps of 0.02, --fibres fibres), the measured ODI of the bundles and the generation time;
* dispersion: the same for requested dispersion, Watson (ODI 0.05, 0.1, 0.2: helices), Bingham (kappa 6,
  beta 2: coils) and coherent bending (15 and 30 degrees), at 90 and 45 degrees and for three bundles at 60, with the ODI measured on the geometry;
* representation: 200 fibres crossing at 90 degrees (ICVF 0.6) as a mesh and as a sphere union, walkers inside
  the fibres, one thread (serial builds), whole ``simulate()`` call per CPU-second, and its ratio to the
  reference loop of ``bench_walker.py`` run in the same process.

Results go to JSON (``--out``) and printed tables.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np

import substrates as su
from bench_walker import pgse_scheme, run_sol, time_call


def reach(angles, amplitude, n_fibres, seed=0, **shape):
    """Highest sheet ICVF (0.80, 0.78, ...) that packs; the substrate built there and its time."""
    for icvf in np.arange(0.80, 0.19, -0.02):
        t = time.perf_counter()
        try:
            sub = su.crossing_bundles(angles=angles, n_fibres=n_fibres, icvf=round(float(icvf), 2),
                                      amplitude=amplitude, seed=seed, **shape)
        except ValueError:
            continue
        return round(float(icvf), 2), sub, time.perf_counter() - t
    return None, None, None


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fibres", type=int, default=500)
    ap.add_argument("--walkers", type=int, default=20_000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="fewer angles and amplitudes, 200 fibres")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--parts", default="reach,dispersion,walk", help="comma-separated parts to run")
    ap.add_argument("--resolution", type=float, default=0.01,
                    help="mesh resolution of the reach and dispersion parts (relative radius error; coarser builds "
                         "faster: dispersed fibres' rings scale with 1/sqrt of it, their sides with 1/sqrt too)")
    a = ap.parse_args(argv)
    parts = a.parts.split(",")
    n_fib = 200 if a.quick else a.fibres
    geoms = [(0, 90), (0, 60), (0, 45), (0, 30), (0, 60, 120)]
    amps = [0.0, 0.25e-6, 0.5e-6]
    if a.quick:
        geoms, amps = [(0, 90), (0, 45)], [0.0, 0.5e-6]
    out = {"machine": platform.processor() or platform.machine(), "fibres": n_fib, "resolution": a.resolution,
           "reach": [], "dispersion": [], "walk": []}
    if "reach" not in parts:
        geoms = []
    else:
        print(f"ICVF reached ({n_fib} fibres, mean radius 1 um, gamma shape 4, one layer per bundle)")
        print(f"{'angles':>14} {'A (um)':>7} {'icvf':>5} {'icvf mesh':>9} {'ODI':>6} {'angle':>7} {'faces':>9} "
              f"{'gen s':>6}")
    for g in geoms:
        for amp in amps:
            icvf, sub, secs = reach(g, amp, n_fib, resolution=a.resolution)
            if sub is None:
                print(f"{str(g):>14} {amp * 1e6:7.2f}   none")
                continue
            t = sub.truth
            row = {"angles": list(g), "amplitude": amp, "icvf_sheets": icvf, "icvf_mesh": t["icvf_mesh"],
                   "odi": [b["odi"] for b in t["bundles"]], "crossing_angles": t["crossing_angles"],
                   "faces": int(len(sub.faces)), "generation_s": secs}
            out["reach"].append(row)
            print(f"{str(g):>14} {amp * 1e6:7.2f} {icvf:5.2f} {t['icvf_mesh']:9.4f} {np.mean(row['odi']):6.3f} "
                  f"{t['crossing_angles'][0]:7.2f} {len(sub.faces):9d} {secs:6.1f}")

    if "dispersion" in parts:
        dgeoms = [(0, 90)] if a.quick else [(0, 90), (0, 45), (0, 60, 120)]
        shapes = [{"bend": 30.0}, {"odi": 0.1}] if a.quick else \
            [{"bend": 15.0}, {"bend": 30.0}, {"odi": 0.05}, {"odi": 0.1}, {"odi": 0.2}, {"bingham": (6.0, 2.0)}]
        print(f"\nICVF reached with dispersion ({n_fib} fibres; Watson: helices, max tilt 75 deg; bend: coherent)")
        print(f"{'angles':>14} {'dispersion':>11} {'icvf':>5} {'icvf mesh':>9} {'ODI meas.':>9} {'faces':>9} "
              f"{'gen s':>6}")
        for g in dgeoms:
            for shape in shapes:
                (key, val), = shape.items()
                icvf, sub, secs = reach(g, 0.0, n_fib, resolution=a.resolution, **shape)
                label = f"{key} {val:g}" if np.ndim(val) == 0 else f"{key} {tuple(float(v) for v in val)}"
                if sub is None:
                    print(f"{str(g):>14} {label:>11}   none")
                    continue
                t = sub.truth
                row = {"angles": list(g), key: val if np.ndim(val) == 0 else list(val), "icvf_sheets": icvf,
                       "icvf_mesh": t["icvf_mesh"], "odi": [b["odi"] for b in t["bundles"]],
                       "faces": int(len(sub.faces)), "generation_s": secs}
                out["dispersion"].append(row)
                print(f"{str(g):>14} {label:>11} {icvf:5.2f} {t['icvf_mesh']:9.4f} {np.mean(row['odi']):9.3f} "
                      f"{len(sub.faces):9d} {secs:6.1f}")

    if "walk" not in parts:
        return _write(out, a.out)
    scheme = pgse_scheme(10)
    sol = run_sol(a.walkers, a.steps, parallel=False)
    print(f"\nwalk, one thread, {a.walkers} walkers x {a.steps} steps, inside the fibres; reference loop "
          f"{sol / 1e6:.1f} M steps/s")
    print(f"{'representation':>15} {'elements':>9} {'build s':>8} {'M steps/cpu-s':>14} {'ratio':>6} {'escapes':>8}")
    for rep in ("mesh", "union"):
        t = time.perf_counter()
        sub = su.crossing_bundles(angles=(0, 90), n_fibres=200, icvf=0.6, seed=0, representation=rep)
        _ = sub.grid if rep == "mesh" else None
        build = time.perf_counter() - t
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = time_call(sub, scheme, "intra", a.walkers, a.steps, parallel=False, repeats=2)
        n_el = len(sub.faces) if rep == "mesh" else len(sub.radii)
        row = {"representation": rep, "elements": n_el, "build_s": build, **r,
               "ratio_to_reference": r["call_steps_per_cpu_s"] / sol}
        out["walk"].append(row)
        print(f"{rep:>15} {n_el:9d} {build:8.1f} {r['call_steps_per_cpu_s'] / 1e6:14.2f} "
              f"{row['ratio_to_reference']:6.3f} {r['escapes']:8d}")
    return _write(out, a.out)


def _write(out: dict, folder: str) -> dict:
    Path(folder).mkdir(parents=True, exist_ok=True)
    p = Path(folder) / "crossing.json"
    p.write_text(json.dumps(out, indent=1))
    print(f"\nwritten {p}")
    return out


if __name__ == "__main__":
    main()
