"""Hashes of simulation results and generated meshes over a fixed set of cases.

A refactor that must not change behaviour proves itself by printing the same
hashes before and after::

    python3 benchmarks/result_hashes.py > before.txt
    ... change the code ...
    python3 benchmarks/result_hashes.py > after.txt && diff before.txt after.txt

Each case hashes (SHA-256 over the raw float64/int64 bytes) the signals, their
standard errors, the per-compartment signals, the final positions, and
whatever else the case records (displacements, trajectories, first-transit
times, counters); generated substrates hash their vertices, faces and ground
truth. Only the public API is used, so the script runs on any version.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import warnings

import numpy as np

import sequences as sq
import substrates as su
import walker

D0 = 2e-9


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"None")
            continue
        if isinstance(a, dict):
            for k in sorted(a):
                h.update(str(k).encode())
                h.update(_digest(a[k]).encode())
            continue
        if isinstance(a, (int, float, str, bool)):
            h.update(repr(a).encode())
            continue
        a = np.ascontiguousarray(np.asarray(a))
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _result_hash(r) -> dict:
    return {
        "signal": _digest(r.signal, r.stderr, r.signal_imag),
        "compartments": _digest(r.compartment_signals, r.compartment_stderr, r.compartment_counts),
        "final_positions": _digest(r.final_positions),
        "records": _digest(r.displacements, r.msd, r.kurtosis, r.trajectories, r.first_transit_times),
        "counters": _digest(r.reflections, r.truncated_steps, r.escapes, r.transits,
                            json.dumps(r.final_fractions, sort_keys=True)),
        "truth": _digest(json.dumps(r.ground_truth, sort_keys=True, default=str)),
    }


def _mesh_hash(sub) -> dict:
    return {"mesh": _digest(sub.vertices, sub.faces, sub.face_component, sub.depth, sub.parent),
            "truth": _digest(json.dumps(sub.ground_truth(), sort_keys=True, default=str))}


def cases():
    """(name, function returning a dict of hashes)."""
    b = np.array([0, 1000, 3000]) * 1e6
    u = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]])
    bb = np.repeat(b, 3)
    uu = np.tile(u, (3, 1))
    pg = sq.pgse(10e-3, 30e-3, bvalues=bb, directions=uu)
    many = (sq.pgse(5e-3, 20e-3, bvalues=bb, directions=uu)
            + sq.ogse(frequency=100.0, n_periods=2, bvalues=[0, 1e9], directions=[[1.0, 0, 0], [0, 1, 0]])
            + sq.tensor_encoding(bvalues=[1e9, 2e9], b_delta=0.0, duration=40e-3)
            + sq.tensor_encoding(bvalues=[1e9], b_delta=-0.5, duration=40e-3))
    te = (sq.pgse(5e-3, 15e-3, bvalues=[0, 1e9], directions=[[1.0, 0, 0], [1, 0, 0]], echo_time=40e-3)
          + sq.pgse(5e-3, 15e-3, bvalues=[0, 1e9], directions=[[1.0, 0, 0], [1, 0, 0]], echo_time=60e-3))
    sim = walker.simulate

    def run(sub, scheme, **kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _result_hash(sim(sub, scheme, **kw))

    yield "free", lambda: run(su.free(), pg, n_walkers=3000, n_steps=300, diffusivity=D0, seed=1)
    yield "free-tensor-gaussian", lambda: run(
        su.free(np.diag([2e-9, 1e-9, 0.5e-9])), many, n_walkers=2000, n_steps=400, seed=2, gaussian_steps=True,
        record_times=[0.0, 0.01, 0.02], n_trajectories=3)
    yield "planes", lambda: run(su.planes(6e-6, normal=(1, 1, 0)), pg, n_walkers=3000, n_steps=300,
                                diffusivity=D0, seed=3, record_times=[0.02])
    yield "planes-permeable", lambda: run(su.planes(5e-6, permeability=2e-5), pg, n_walkers=3000, n_steps=300,
                                          diffusivity=D0, seed=4)
    yield "cylinder-intra-serial", lambda: run(su.cylinder(4e-6, axis=(1, 0, 1)), many, n_walkers=2000,
                                               n_steps=400, diffusivity=D0, seed=5, record_times=[0.01, 0.03],
                                               n_trajectories=4, parallel=False)
    yield "hex-uniform-t2", lambda: run(su.cylinder_lattice(2e-6, 0.6, repeats=2), te, n_walkers=3000,
                                        n_steps=600, diffusivity=D0, seed=6, start="uniform",
                                        t2={"intra": 0.06, "extra": 0.09})
    yield "gamma-permeable-unequal-D", lambda: run(
        su.packed_axons(30, mean_radius=1.5e-6, icvf=0.6, seed=3, permeability=2e-5), pg, n_walkers=3000,
        n_steps=300, seed=7, start="uniform", diffusivity={"intra": 1.5e-9, "extra": 2.2e-9})
    yield "fcc-extra", lambda: run(su.sphere_lattice(3e-6, 0.5, lattice="fcc"), many, n_walkers=2000,
                                   n_steps=400, diffusivity=D0, seed=8, start="extra", check_every_step=True)
    yield "sphere-permeable-lone", lambda: run(su.sphere(4e-6, permeability=1e-5), pg, n_walkers=2000,
                                               n_steps=600, diffusivity=D0, seed=9, t2=0.08)
    yield "spheres-permeable-first-order", lambda: run(
        su.sphere_lattice(2.5e-6, 0.4, permeability=3e-5), pg, n_walkers=2000, n_steps=300, diffusivity=D0,
        seed=10, start="uniform", transit="first_order", max_transit_probability=0.05)
    yield "icosphere-serial", lambda: run(su.meshed_sphere(4e-6, subdivisions=3), pg, n_walkers=1500,
                                          n_steps=300, diffusivity=D0, seed=11, parallel=False,
                                          record_times=[0.02], n_trajectories=2)
    yield "packed-mesh-extra", lambda: run(su.packed_axons(12, mean_radius=1.5e-6, icvf=0.6, seed=2, as_mesh=True,
                                                           length=10e-6), pg, n_walkers=1500, n_steps=300,
                                           diffusivity=D0, seed=12, start="extra")
    yield "undulating-permeable-mesh", lambda: run(
        su.undulating_axons(6, mean_radius=1.5e-6, amplitude=0.5e-6, wavelength=15e-6, icvf=0.2, seed=1,
                            permeability=2e-5), te, n_walkers=1500, n_steps=400, seed=13, start="uniform",
        diffusivity={"intra": 1.8e-9, "extra": 2.2e-9}, t2={"intra": 0.07, "extra": 0.09},
        check_every_step=True)
    yield "somas-uniform", lambda: run(su.somas_with_neurites(n_cells=4, soma_radius=3e-6, neurite_length=3e-6,
                                                              volume_fraction=0.1, seed=2), pg, n_walkers=1500,
                                       n_steps=300, diffusivity=D0, seed=14, start="uniform")
    yield "nested-mesh", lambda: run(_nested(), pg, n_walkers=1500, n_steps=300,
                                     diffusivity={"intra": 1e-9, "inner": 1.5e-9, "extra": 2e-9}, seed=15,
                                     start="uniform")
    yield "gen-undulating", lambda: _mesh_hash(su.undulating_axons(8, amplitude=1e-6, wavelength=15e-6, icvf=0.5,
                                                                   seed=4, phase="coherent"))
    yield "gen-beaded", lambda: _mesh_hash(su.beaded_axons(6, bead_amplitude=0.5, bead_spacing=8e-6, icvf=0.4,
                                                           seed=5, spacing="random"))
    yield "gen-dispersed", lambda: _mesh_hash(su.packed_axons(20, icvf=0.3, dispersion=0.1, seed=6, length=5e-6))
    yield "gen-labels", lambda: _mesh_hash(su.from_labels(_labels(), voxel_size=0.2e-6))
    # union, relaxivity and myelin cases (added before the substrate-family refactor, issue 27)
    yield "union-beaded-parallel", lambda: run(
        su.sphere_chain_axons(n_axons=5, mean_radius=1e-6, icvf=0.4, bead_amplitude=0.5, bead_wavelength=6e-6,
                              undulation=1e-6, undulation_wavelength=12e-6, length=12e-6, seed=3), pg,
        n_walkers=1500, n_steps=300, diffusivity=D0, seed=16, check_every_step=True, record_times=[0.02],
        n_trajectories=2)
    yield "union-two-serial", lambda: run(
        su.sphere_union([[5e-6, 5e-6, 5e-6], [7e-6, 5e-6, 5e-6]], [2e-6, 2e-6], [10e-6, 10e-6, 10e-6]), many,
        n_walkers=1500, n_steps=400, diffusivity=D0, seed=17, parallel=False)
    yield "relax-planes-t2", lambda: run(su.planes(8e-6, relaxivity=2e-5), te, n_walkers=2000, n_steps=400,
                                         diffusivity=D0, seed=18, t2=0.08)
    yield "relax-spheres-permeable-uniform", lambda: run(
        su.sphere_lattice(3e-6, 0.3, relaxivity=1e-5, permeability=2e-5), te, n_walkers=2000, n_steps=400,
        diffusivity=D0, seed=19, start="uniform")
    yield "relax-cylinder-gaussian", lambda: run(su.cylinder(4e-6, relaxivity=5e-6), te, n_walkers=2000,
                                                 n_steps=400, diffusivity=D0, seed=20, gaussian_steps=True)
    yield "relax-icosphere", lambda: run(su.meshed_sphere(4e-6, subdivisions=3, relaxivity=1e-5), te,
                                         n_walkers=1500, n_steps=300, diffusivity=D0, seed=21)
    yield "myelin-t2-uniform", lambda: run(
        su.myelinated_axons(n_axons=4, mean_radius=1e-6, g_ratio=0.7, fvf=0.4, seed=1,
                            relaxivity={"inner": 0.0, "outer": 1e-6}, permeability={"inner": 1e-5, "outer": 1e-5}),
        te, n_walkers=1500, n_steps=400, seed=22, start="uniform",
        diffusivity={"myelin": 0.5e-9, "intra": 2e-9, "extra": 2e-9}, t2={"myelin": 0.015, "intra": 0.07,
                                                                            "extra": 0.08})
    yield "gen-myelin", lambda: _mesh_hash(su.myelinated_axons(n_axons=6, mean_radius=1e-6, g_ratio=0.65,
                                                               fvf=0.55, seed=5))
    yield "gen-swc", lambda: _mesh_hash(su.from_swc(SWC, resolution=0.5e-6))
    yield "gen-packed-cylinders", lambda: {"cyl": _digest(su.packed_axons(40, icvf=0.7, seed=7).radii,
                                                          su.packed_axons(40, icvf=0.7, seed=7).centers)}


#: a soma with three dendrites (SWC, um)
SWC = "1 1 0 0 0 5 -1\n2 3 0 0 12 1 1\n3 3 12 0 0 1 1\n4 4 0 -12 0 1 1\n"


def _nested():
    # a permeable shell around an impermeable core, in a periodic box
    a = su.meshed_sphere(3e-6, subdivisions=3)
    b = su.meshed_sphere(1.5e-6, subdivisions=2)
    c = np.full(3, 4e-6)
    v = np.vstack([a.vertices + c, b.vertices + c])
    f = np.vstack([a.faces, b.faces + len(a.vertices)])
    return su.mesh_substrate(v, f, box=np.full(3, 8e-6), permeability=[1e-5, 0.0])


def _labels():
    x, y, z = np.mgrid[0:24, 0:24, 0:24]
    vol = np.zeros((24, 24, 24), dtype=int)
    vol[(x - 7) ** 2 + (y - 7) ** 2 + (z - 12) ** 2 < 25] = 1
    vol[(x - 16) ** 2 + (y - 16) ** 2 < 16] = 2
    return vol


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = {}
    for name, make in cases():
        if argv and name not in argv:
            continue
        t0 = time.perf_counter()
        out[name] = make()
        print(f"{name:32s} " + " ".join(f"{k}={v}" for k, v in out[name].items()), flush=True)
        print(f"  ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
