"""GPU walker throughput and GPU == CPU on real hardware, in one go (or, without a GPU, a compile check).

Run on a machine with an NVIDIA GPU and ``pip install 'diffwalk[gpu]'``::

    python benchmarks/bench_gpu.py [--walkers 1000000] [--steps 1000] [--check-walkers 4096] [--out DIR]

For each case it reports, from ``walker.simulate`` (PGSE delta 10 ms, Delta 40 ms, D = 2 um^2/ms):

* ``gpu``: walker-steps per second inside the CUDA walk (``provenance["wall_time_s"]``, first call excluded:
  each case runs once small to compile its kernel), and of the whole call;
* ``cpu``: the same case on the CPU (all cores, fewer walkers) in the same process, and the ratio;
* ``same``: whether a GPU run and a CPU run of the same seed and ``--check-walkers`` walkers agree: signals,
  final positions and counters bit for bit (``exact``), or the largest difference of a final position.

Cases: free diffusion; hexagonal cylinders R = 5 um at ICVF 0.6; 500 Gamma-radius cylinders at ICVF 0.6;
an fcc sphere lattice R = 4 um at 0.5; the 20 480-face icosphere (R = 8 um, walkers inside); the 100-axon
undulating bundle (mesh); 200 fibres crossing at 90 degrees as a sphere union (ICVF 0.6). Nothing is downloaded: the machine needs this repository, numpy, numba,
numba-cuda, scipy, h5py and trimesh (bring its wheel).

``--compile-only`` needs no GPU (only numba-cuda and its NVVM, e.g. ``pip install 'numba-cuda[cu12]'``): it
compiles every kernel variant for sm_90 and reports the PTX size and the fused multiply-adds left (those of
CUDA's libdevice log/sin/cos only; our own arithmetic compiles without contraction).

Results go to JSON (``gpu.json``) and a printed table. Timings never go into tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import sequences as sq
import substrates as su
import walker

D0 = 2e-9


def cases():
    """(name, substrate factory, start)."""
    yield "free", su.free, "uniform"
    yield "hex-0.6", lambda: su.cylinder_lattice(5e-6, 0.6), "uniform"
    yield "gamma-500", lambda: su.packed_axons(500, mean_radius=2e-6, icvf=0.6, seed=1), "uniform"
    yield "fcc-0.5", lambda: su.sphere_lattice(4e-6, 0.5, lattice="fcc"), "uniform"
    yield "icosphere-20k", lambda: su.meshed_sphere(8e-6, subdivisions=5), "intra"
    yield "undulating-100", lambda: su.undulating_axons(100, mean_radius=1.5e-6, amplitude=1e-6,
                                                        wavelength=20e-6, icvf=0.5, seed=2), "uniform"
    yield "union-crossing-200", lambda: su.crossing_bundles(angles=(0, 90), n_fibres=200, icvf=0.6, seed=0,
                                                            representation="union"), "uniform"


def _scheme():
    return sq.pgse(10e-3, 40e-3, bvalues=np.repeat([0.0, 1e9, 2e9, 3e9], 3),
                   directions=np.tile(np.eye(3), (4, 1)))


def _sim(sub, start, n, steps, backend, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        r = walker.simulate(sub, _scheme(), n_walkers=n, n_steps=steps, diffusivity=D0, seed=seed, start=start,
                            backend=backend)
        return r, time.perf_counter() - t0


def _same(a, b) -> str:
    exact = (np.array_equal(a.signal, b.signal) and np.array_equal(a.final_positions, b.final_positions)
             and (a.reflections, a.transits) == (b.reflections, b.transits))
    if exact:
        return "exact"
    return f"max |dx| {np.max(np.abs(a.final_positions - b.final_positions)):.1e} m"


def run(walkers: int, steps: int, check_walkers: int, cpu_walkers: int) -> list[dict]:
    rows = []
    for name, factory, start in cases():
        sub = factory()
        _sim(sub, start, 256, 16, "cuda")  # compile the variant
        _sim(sub, start, 256, 16, "cpu")
        g, g_call = _sim(sub, start, walkers, steps, "cuda")
        c, c_call = _sim(sub, start, cpu_walkers, steps, "cpu")
        g_rate = walkers * steps / g.provenance["wall_time_s"]
        c_rate = cpu_walkers * steps / c.provenance["wall_time_s"]
        gs, _ = _sim(sub, start, check_walkers, steps, "cuda", seed=7)
        cs, _ = _sim(sub, start, check_walkers, steps, "cpu", seed=7)
        row = {"case": name, "gpu_steps_per_s": g_rate, "gpu_call_steps_per_s": walkers * steps / g_call,
               "cpu_steps_per_s": c_rate, "ratio": g_rate / c_rate, "same": _same(gs, cs),
               "escapes": g.escapes, "device": g.provenance.get("device")}
        rows.append(row)
        print(f"{name:16s} gpu {g_rate:10.3e} steps/s (call {row['gpu_call_steps_per_s']:9.3e})  "
              f"cpu {c_rate:9.3e}  x{row['ratio']:7.1f}  same: {row['same']}  escapes {g.escapes}", flush=True)
    return rows


def compile_only() -> list[dict]:
    """Compile every kernel variant for sm_90 without a GPU; PTX lines and fused multiply-adds left."""
    from numba import cuda, typeof
    import numba.cuda.dispatcher as cuda_dispatcher

    from walker import cuda_backend, dispatch
    from walker.records import Recording, Stepping, Walkers

    class _Device:  # what the device functions ask for: the target's compute capability
        compute_capability = (9, 0)

    cuda_dispatcher.get_current_device = lambda: _Device()
    nested = su.meshed_sphere(3e-6, subdivisions=1)
    variants = {"free": su.free(), "planes": su.planes(6e-6), "planes-permeable": su.planes(6e-6, permeability=1e-5),
                "cylinders": su.cylinder(4e-6), "cylinders-permeable": su.cylinder(4e-6, permeability=1e-5),
                "spheres": su.sphere(4e-6), "spheres-permeable": su.sphere(4e-6, permeability=1e-5),
                "mesh": nested, "mesh-permeable": su.mesh_substrate(nested.vertices + 4e-6, nested.faces,
                                                                    permeability=[1e-5], box=np.full(3, 8e-6)),
                "union": su.sphere_union([[4e-6, 4e-6, 4e-6], [4e-6, 4e-6, 5e-6]], [2e-6, 2e-6], [8e-6] * 3,
                                         permeability=1e-5)}
    rows = []
    for name, sub in variants.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plan = walker.plan_run(sub, _scheme(), 8, D0, 20, t2=None, gaussian_steps=False, record_times=None,
                                   n_trajectories=0, target_stderr=None, max_transit_probability=0.1,
                                   transit="corrected")
        start, seeds = walker.start_walkers(sub, sub.default_start, 8, 1)
        family = walker.family_of(sub)
        W = walker.phase_weights(plan.played.shapes.shapes)
        args = (family.geometry(sub, plan),
                walker.transit_tables(sub, plan), Walkers(start.positions, start.home, seeds),
                Stepping(plan.n_steps, plan.substeps, plan.step_matrix, plan.gaussian, np.ones(3)),
                Recording(W, plan.record_steps, plan.echo_steps, False, plan.region_weights,
                          *dispatch.field_record(plan)),
                dispatch.kernel_outputs(plan, W.shape[0]))
        kernel = cuda_backend.walk_kernel(family, family.variant(sub))
        t0 = time.perf_counter()
        with cuda_backend.without_fma():
            ptx, _ = cuda.compile_ptx(kernel.py_func, tuple(typeof(a) for a in args), cc=(9, 0))
        rows.append({"variant": name, "compile_s": time.perf_counter() - t0, "ptx_lines": len(ptx.splitlines()),
                     "fma": ptx.count("fma.rn.f64")})
        print(f"{name:20s} compiled for sm_90 in {rows[-1]['compile_s']:4.1f} s: {rows[-1]['ptx_lines']} PTX lines, "
              f"{rows[-1]['fma']} fma (libdevice log/sin/cos)", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--walkers", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--check-walkers", type=int, default=4096)
    ap.add_argument("--cpu-walkers", type=int, default=20_000)
    ap.add_argument("--compile-only", action="store_true", help="compile every variant for sm_90; no GPU needed")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    from walker import cuda_backend
    if args.compile_only:
        rows = compile_only()
    else:
        if not cuda_backend.available() or cuda_backend.simulator():
            print("bench_gpu: no GPU here (or the CUDA simulator is on): nothing to measure; "
                  "--compile-only checks the kernels compile", file=sys.stderr)
            return 2
        rows = run(args.walkers, args.steps, args.check_walkers, args.cpu_walkers)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "compile_only": args.compile_only,
            "walkers": args.walkers, "steps": args.steps}
    (out / "gpu.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
