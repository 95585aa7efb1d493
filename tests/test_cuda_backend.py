"""The CUDA backend replays the CPU walk: every substrate kind, bit for bit, plus its own physics checks.

CI has no GPU: ``tests/conftest.py`` turns on numba's CUDA simulator, which
runs the CUDA kernels (the same per-walker functions the CPU kernels inline)
in Python, so walker counts are small here. With ``DIFFWALK_GPU_TESTS=1`` on
a machine with an NVIDIA GPU the same tests run on the hardware; there the
Gaussian-step cases may differ in the last bits (CUDA's libdevice log/cos/sin
against the C library's) and are compared to 1e-12 instead.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import sequences as sq
import substrates as su
import walker
from validation import mf_signal
from walker import cuda_backend

D0 = 2e-9

pytestmark = pytest.mark.skipif(not cuda_backend.available(), reason="no CUDA device and no simulator")

ON_HARDWARE = not cuda_backend.simulator()


def _schemes():
    b = np.array([0, 1000, 3000]) * 1e6
    u = np.eye(3)
    bb = np.repeat(b, 3)
    uu = np.tile(u, (3, 1))
    pg = sq.pgse(10e-3, 30e-3, bvalues=bb, directions=uu)
    many = (sq.pgse(5e-3, 20e-3, bvalues=bb, directions=uu)
            + sq.ogse(frequency=100.0, n_periods=2, bvalues=[0, 1e9], directions=[[1.0, 0, 0], [0, 1, 0]])
            + sq.tensor_encoding(bvalues=[1e9, 2e9], b_delta=0.0, duration=40e-3)
            + sq.tensor_encoding(bvalues=[1e9], b_delta=-0.5, duration=40e-3))
    te = (sq.pgse(5e-3, 15e-3, bvalues=[0, 1e9], directions=[[1.0, 0, 0], [1, 0, 0]], echo_time=40e-3)
          + sq.pgse(5e-3, 15e-3, bvalues=[0, 1e9], directions=[[1.0, 0, 0], [1, 0, 0]], echo_time=60e-3))
    return pg, many, te


PG, MANY, TE = _schemes()


def _nested():
    a = su.meshed_sphere(3e-6, subdivisions=2)
    b = su.meshed_sphere(1.5e-6, subdivisions=1)
    c = np.full(3, 4e-6)
    v = np.vstack([a.vertices + c, b.vertices + c])
    f = np.vstack([a.faces, b.faces + len(a.vertices)])
    return su.mesh_substrate(v, f, box=np.full(3, 8e-6), permeability=[1e-5, 0.0], relaxivity=[2e-5, 1e-5])


def _union():
    """A fibre of overlapping spheres and a lone sphere, permeable and relaxing, in a small box."""
    z = np.arange(6) * 1e-6
    c = np.vstack([np.column_stack([np.full(6, 2e-6), np.full(6, 2e-6), z]), [[4.5e-6, 4.5e-6, 3e-6]]])
    r = np.concatenate([np.full(6, 1.5e-6), [1.0e-6]])
    return su.sphere_union(c, r, [6e-6, 6e-6, 6e-6], fibre=np.repeat([0, 1], [6, 1]), permeability=1e-5,
                           relaxivity=5e-6)


#: spin and gradient echoes of one waveform (a field's two refocusing patterns)
SE_GE = TE + TE.with_refocusing([])
#: closed-form sources on an fcc lattice; a periodic map plus a background gradient
SPHERE_FIELD = su.susceptibility_field(su.sphere_lattice(2e-6, 0.3, lattice="fcc"), chi=1e-6,
                                       b0_direction=(1, 0, 2), image_reach=0.0)
MAP_FIELD = (su.field_map(np.random.default_rng(0).normal(size=(6, 5, 4)) * 1e-7, box=[7e-6, 8e-6, 9e-6])
             + su.background_gradient([1e-3, -2e-3, 0.5e-3]))

#: (name, substrate factory, scheme, keyword arguments): every substrate kind and kernel feature
CASES = [
    ("fcc-field-closed-forms", lambda: su.sphere_lattice(2e-6, 0.3, lattice="fcc"), SE_GE,
     dict(diffusivity=D0, start="uniform", field=SPHERE_FIELD)),
    ("free-field-map-and-gradient", su.free, SE_GE, dict(diffusivity=D0, field=MAP_FIELD)),
    ("free-records", su.free, PG, dict(diffusivity=D0, record_times=[0.0, 0.01, 0.02], n_trajectories=3)),
    ("free-tensor-gaussian", lambda: su.free(np.diag([2e-9, 1e-9, 0.5e-9])), MANY, dict(gaussian_steps=True)),
    ("planes", lambda: su.planes(6e-6, normal=(1, 1, 0)), PG, dict(diffusivity=D0, record_times=[0.02])),
    ("planes-permeable", lambda: su.planes(5e-6, permeability=2e-5), PG, dict(diffusivity=D0)),
    ("cylinder-oblique", lambda: su.cylinder(4e-6, axis=(1, 0, 1)), MANY,
     dict(diffusivity=D0, record_times=[0.01, 0.03], n_trajectories=4)),
    ("hex-uniform-t2", lambda: su.cylinder_lattice(2e-6, 0.6, repeats=2), TE,
     dict(diffusivity=D0, start="uniform", t2={"intra": 0.06, "extra": 0.09})),
    ("gamma-permeable-unequal-D", lambda: su.packed_axons(30, mean_radius=1.5e-6, icvf=0.6, seed=3,
                                                          permeability=2e-5), PG,
     dict(start="uniform", diffusivity={"intra": 1.5e-9, "extra": 2.2e-9})),
    ("fcc-extra-checked", lambda: su.sphere_lattice(3e-6, 0.5, lattice="fcc"), MANY,
     dict(diffusivity=D0, start="extra", check_every_step=True)),
    ("sphere-permeable-relaxing-t2", lambda: su.sphere(4e-6, permeability=1e-5, relaxivity=2e-5), PG,
     dict(diffusivity=D0, t2=0.08)),
    ("spheres-permeable-substeps", lambda: su.sphere_lattice(2.5e-6, 0.4, permeability=3e-5), PG,
     dict(diffusivity=D0, start="uniform", transit="first_order", max_transit_probability=0.05)),
    ("icosphere-records", lambda: su.meshed_sphere(4e-6, subdivisions=2), PG,
     dict(diffusivity=D0, record_times=[0.02], n_trajectories=2)),
    ("packed-mesh-extra", lambda: su.packed_axons(6, mean_radius=1.5e-6, icvf=0.5, seed=2, as_mesh=True,
                                                  length=10e-6), PG, dict(diffusivity=D0, start="extra")),
    ("union-permeable-relaxing-unequal-D", _union, TE,
     dict(diffusivity={"intra": 1e-9, "extra": 2e-9}, start="uniform", t2={"intra": 0.07, "extra": 0.09},
          check_every_step=True)),
    ("nested-mesh-permeable", _nested, TE,
     dict(diffusivity={"intra": 1e-9, "inner": 1.5e-9, "extra": 2e-9}, start="uniform",
          t2={"intra": 0.07, "inner": 0.03, "extra": 0.09},
          check_every_step=True)),
]


def _run(factory, scheme, backend, n_walkers=40, n_steps=60, seed=11, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # coarse steps on purpose: the point is equality, not accuracy
        return walker.simulate(factory(), scheme, n_walkers=n_walkers, n_steps=n_steps, seed=seed,
                               backend=backend, **kw)


def _same(a, b, exact):
    if a is None or b is None:
        assert a is None and b is None
        return
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if exact:
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * max(1.0, float(np.nanmax(np.abs(a)))))


@pytest.mark.parametrize("name, factory, scheme, kw", CASES, ids=[c[0] for c in CASES])
def test_cuda_equals_cpu(name, factory, scheme, kw):
    cpu = _run(factory, scheme, "cpu", **kw)
    gpu = _run(factory, scheme, "cuda", **kw)
    exact = not (ON_HARDWARE and kw.get("gaussian_steps"))
    for field in ("signal", "stderr", "signal_imag", "final_positions", "displacements", "trajectories",
                  "msd", "first_transit_times"):
        _same(getattr(cpu, field), getattr(gpu, field), exact)
    for k in cpu.compartment_signals:
        _same(cpu.compartment_signals[k], gpu.compartment_signals[k], exact)
    assert (cpu.reflections, cpu.truncated_steps, cpu.transits) == (gpu.reflections, gpu.truncated_steps,
                                                                   gpu.transits)
    assert cpu.final_fractions == gpu.final_fractions
    assert gpu.escapes == 0 and cpu.escapes == 0
    assert gpu.provenance["backend"] == "cuda" and gpu.provenance["device"]
    assert cpu.provenance["backend"] == "cpu"
    if name.startswith(("planes", "cylinder", "hex", "gamma", "fcc", "sphere", "icosphere", "packed", "nested",
                        "union")):
        assert gpu.reflections > 0  # the walls were met, so the comparison covers the collision code
    if "permeable" in name:
        assert gpu.transits > 0  # and the membranes were crossed
    if "field" in kw:  # and the field changed the signal
        plain = _run(factory, scheme, "cpu", **{k: v for k, v in kw.items() if k != "field"})
        assert np.abs(plain.signal - cpu.signal).max() > 0.01


def test_batches_do_not_change_the_walk():
    """Walkers in batches of 7 (the last one short) give the one-batch result, trajectories included."""
    sub = su.cylinder_lattice(2e-6, 0.6, repeats=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = walker.plan_run(sub, PG, 30, D0, 40, t2=None, gaussian_steps=False, record_times=[0.01],
                               n_trajectories=9, target_stderr=None, max_transit_probability=0.1,
                               transit="corrected")
    start, seeds = walker.start_walkers(sub, "uniform", 30, 5)
    one = walker.run_kernel(sub, plan, start, seeds, backend="cuda")
    many = walker.run_kernel(sub, plan, start, seeds, backend="cuda", batch=7)
    for a, b in zip((*one.walkers, *one.out), (*many.walkers, *many.out)):
        np.testing.assert_array_equal(a, b)


def test_phase_sums_in_batches_of_blocks_equal_the_cpu():
    """The device's sums per block (cos, sin, weights, compartments) equal the CPU's, whatever the batch."""
    rng = np.random.default_rng(0)
    N, J, M, block = 700, 6, 9, 64
    phases = rng.normal(size=(N, J)) * 1e-5
    A = rng.normal(size=(J, M)) * 3e5
    A[:, 0] *= 1e7  # some phases beyond the polynomial's range: the libm branch
    labels = rng.integers(0, 3, N)
    relax = rng.uniform(0.2, 1.0, (N, M))
    n_blocks = -(-N // block)
    for weights in (np.zeros((0, M)), relax):
        cpu = np.zeros((n_blocks, 3, 4, M))
        walker.signals._phase_sums_serial(phases, A, labels, weights, block, cpu, np.empty((n_blocks, 3, M)))
        for batch in (None, 3):
            gpu = np.zeros_like(cpu)
            cuda_backend.phase_sums(phases, A, labels, weights, block, gpu, batch=batch)
            _same(cpu, gpu, not ON_HARDWARE)


def test_free_signal_on_cuda_matches_exp_minus_bD():
    """Physics on the device itself: free diffusion, S = exp(-b D) within 4.5 standard errors."""
    scheme = sq.pgse(5e-3, 15e-3, bvalues=[0, 0.5e9, 1e9], directions=np.eye(3)[[0, 1, 2]])
    res = _run(su.free, scheme, "cuda", n_walkers=400, n_steps=40, seed=3, diffusivity=D0)
    ref = np.exp(-scheme.bvalues * D0)
    assert np.all(np.abs(res.signal - ref) <= 4.5 * res.stderr + 1e-12)


def test_cylinder_containment_and_matrix_formalism_on_cuda():
    """Walkers inside a cylinder stay inside (checked every step), and the perpendicular signal follows the
    matrix-formalism reference within 4.5 standard errors plus the step allowance: at 200 steps (RMS step per
    axis 0.21 R) the bias measured on the CPU with 4e5 walkers is 0.0014; the allowance is twice that."""
    R = 3e-6
    scheme = sq.pgse(5e-3, 15e-3, bvalues=[2e9], directions=[[1.0, 0, 0]])
    res = _run(lambda: su.cylinder(R), scheme, "cuda", n_walkers=300, n_steps=200, seed=4, diffusivity=D0,
               check_every_step=True)
    assert res.escapes == 0 and res.reflections > 0
    ref = mf_signal(scheme, "cylinder", R, D0)
    assert abs(res.signal[0] - ref[0]) <= 4.5 * res.stderr[0] + 0.003


def test_backend_argument_is_checked():
    with pytest.raises(ValueError, match="backend"):
        walker.simulate(su.free(), PG, n_walkers=10, n_steps=10, diffusivity=D0, backend="gpu")
    assert cuda_backend.resolve_backend("auto") == "cuda"  # available() holds here (module skip otherwise)


SWEEP_SPEC = """
[substrate]
type = "cylinder_lattice"
radius = "2 um"
icvf = 0.6

[[scheme]]
type = "pgse"
delta = "10 ms"
Delta = "30 ms"
bvalues = "0 1000 2500 s/mm^2"
directions = 3

[simulation]
n_walkers = 24
n_steps = 40
diffusivity = "2 um^2/ms"
start = "uniform"

[sweep]
seeds = [0, 1]

[sweep.grid]
"substrate.icvf" = [0.4, 0.6]
"""


def test_sweep_on_gpus_equals_cpu_rows_and_records_the_device(tmp_path):
    """``run_sweep(gpus=2)``: one worker per GPU (pinned by CUDA_VISIBLE_DEVICES), rows equal to the CPU's, the
    backend and device in every row's provenance; a TOML ``backend`` runs the serial sweep on CUDA too."""
    pytest.importorskip("dask.distributed")
    from diffwalk import database
    from diffwalk.sweep import run_sweep
    cpu = database.open_database(run_sweep(SWEEP_SPEC, tmp_path / "cpu.h5"))
    gpu = database.open_database(run_sweep(SWEEP_SPEC, tmp_path / "gpu.h5", gpus=2))
    toml = database.open_database(run_sweep(SWEEP_SPEC.replace('start = "uniform"', 'start = "uniform"\nbackend = "cuda"'),
                                            tmp_path / "toml.h5"))
    for db in (gpu, toml):
        np.testing.assert_array_equal(cpu.signal, db.signal)
        np.testing.assert_array_equal(cpu.stderr, db.stderr)
        assert all(p["backend"] == "cuda" and p["device"] for p in db.provenance)
    assert {p.get("cuda_visible_devices") for p in gpu.provenance} <= {"0", "1"}
    assert all(p["backend"] == "cpu" for p in cpu.provenance)
    with pytest.raises(ValueError, match="gpus"):
        run_sweep(SWEEP_SPEC, tmp_path / "bad.h5", gpus=0)


def test_no_device_is_refused_clearly_and_auto_falls_back(monkeypatch):
    monkeypatch.setattr(cuda_backend, "available", lambda: False)
    with pytest.raises(RuntimeError, match=r"diffwalk\[gpu\]"):
        walker.simulate(su.free(), PG, n_walkers=10, n_steps=12, diffusivity=D0, backend="cuda")
    assert cuda_backend.resolve_backend("auto") == "cpu"
    from diffwalk.sweep import gpu_devices
    with pytest.raises(RuntimeError, match="--gpus"):
        gpu_devices(1)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_HARDWARE, reason="needs a real GPU (DIFFWALK_GPU_TESTS=1 on a GPU machine)")
def test_hardware_runs_at_scale_equal_the_cpu():
    """On real hardware, at a size the simulator cannot afford: 20 000 walkers through 500 gamma cylinders,
    permeable, records on; the GPU run equals the CPU run of the same seed."""
    sub = su.packed_axons(500, mean_radius=2e-6, icvf=0.6, seed=1, permeability=2e-5)
    kw = dict(n_walkers=20_000, n_steps=400, start="uniform", diffusivity={"intra": 1.5e-9, "extra": 2.2e-9},
              record_times=[0.02])
    cpu = _run(lambda: sub, PG, "cpu", **kw)
    gpu = _run(lambda: sub, PG, "cuda", **kw)
    np.testing.assert_array_equal(cpu.signal, gpu.signal)
    np.testing.assert_array_equal(cpu.final_positions, gpu.final_positions)
    assert gpu.escapes == 0 and cpu.transits == gpu.transits
