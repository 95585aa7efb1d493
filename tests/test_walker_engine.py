"""Engine pieces behind the throughput work: vectorised sincos, the walk grid, kernel variants and builds,
phase sums in fixed blocks, records as events, walks in pieces, and the compile notice."""

import math

import numba
import numpy as np
import pytest

import sequences as sq
import substrates as su
import walker
from walker import cells_kernel, mesh_kernel, scaffold
from walker.sincos import REDUCED_RANGE, sincos_inplace

D0 = 2e-9
pytestmark = pytest.mark.filterwarnings("ignore:step length:UserWarning")


def _scheme():
    return sq.pgse(5e-3, 15e-3, bvalues=[0, 1e9, 3e9], directions=[[1, 0, 0], [1, 0, 0], [0.6, 0, 0.8]])


@pytest.mark.parametrize("scale", [1.0, 50.0, 1e4, REDUCED_RANGE, 1e9])
def test_sincos_is_within_two_ulp_of_libm(scale):
    x = np.random.default_rng(0).uniform(-scale, scale, 200_000)
    x[:4] = [0.0, -0.0, np.pi / 4, -np.pi / 2]
    s, c = np.empty_like(x), np.empty_like(x)
    sincos_inplace(x, s, c)
    for got, ref in ((s, np.sin(x)), (c, np.cos(x))):
        ulp = np.abs(got - ref) / np.spacing(np.maximum(np.abs(ref), np.finfo(float).tiny))
        assert np.all((ulp <= 2) | (np.abs(got - ref) <= 2 * np.finfo(float).eps)), ulp.max()


@pytest.mark.parametrize("make", [lambda: su.cylinder_lattice(2e-6, 0.6, repeats=2),
                                  lambda: su.pack_cylinders(np.random.default_rng(2).gamma(4, 0.4e-6, 30), 0.6),
                                  lambda: su.sphere_lattice(2e-6, 0.45, "fcc"),
                                  lambda: su.sphere(3e-6), lambda: su.cylinder(2e-6)],
                         ids=["hex", "gamma", "fcc", "sphere", "cylinder"])
def test_walk_grid_lists_every_wall_in_reach_and_its_clearance_is_a_lower_bound(make):
    sub = make()
    reach = 0.37e-6
    g = sub.walk_grid(reach)
    assert np.array_equal(g.centers[:len(sub.cells.radii)], sub.cells.centers)  # home images keep their index
    rng = np.random.default_rng(1)
    dim = g.dim
    lo, hi = g.lo, g.lo + g.n / np.where(g.inv_h > 0, g.inv_h, 1.0)
    p = np.zeros((20_000, 3))
    p[:, :dim] = lo[:dim] + rng.uniform(size=(20_000, dim)) * (hi - lo)[:dim]
    idx = np.zeros(len(p), dtype=np.int64)
    for ax in range(3):
        i = np.minimum(np.floor((p[:, ax] - lo[ax]) * g.inv_h[ax]).astype(np.int64), g.n[ax] - 1) if ax < dim else 0
        idx = idx * g.n[ax] + i
    d = np.linalg.norm((p[:, None, :dim] - g.centers[None, :, :dim]), axis=2) - g.radii[None, :]
    inside = np.any(d < 0, axis=1)
    assert np.all(g.clear[idx[~inside]] >= 0)  # a cell that holds outside points is not marked inside
    assert np.all(g.clear[idx[inside & (g.clear[idx] < 0)]] < 0)
    out = ~inside
    wall = np.min(np.abs(d), axis=1)
    # the clearance never exceeds the distance to the nearest wall (inf: no wall within reach)
    assert np.all(np.minimum(g.clear[idx[out]], reach) <= wall[out] * (1 + 1e-12) + 1e-18)
    for k in np.nonzero(out)[0][:3000]:
        near = np.nonzero(np.abs(d[k]) <= reach)[0]
        listed = set(g.items[g.start[idx[k]]:g.start[idx[k] + 1]].tolist())
        assert set(near.tolist()) <= listed  # every wall within reach of the point is a candidate of its cell


@pytest.mark.parametrize("name,make,start,kw", [
    ("planes-perm", lambda: su.planes(4e-6, permeability=3e-5), "intra", {}),
    ("hex-perm", lambda: su.cylinder_lattice(2e-6, 0.6, repeats=2, permeability=3e-5), "uniform",
     {"diffusivity": {"intra": 1.5e-9, "extra": 2e-9}, "t2": {"intra": 0.05, "extra": 0.08}}),
    ("fcc-perm", lambda: su.sphere_lattice(2e-6, 0.4, "fcc", permeability=3e-5), "uniform", {}),
    ("sphere-perm", lambda: su.sphere(3e-6, permeability=2e-5), "intra", {}),
    ("hex-gaussian", lambda: su.cylinder_lattice(2e-6, 0.6, repeats=2), "extra", {"gaussian_steps": True}),
])
def test_every_variant_serial_equals_parallel_and_threads_do_not_matter(name, make, start, kw):
    kw = {"diffusivity": D0, **kw}
    run = dict(n_walkers=2000, n_steps=200, seed=4, start=start, record_times=[10e-3], n_trajectories=2, **kw)
    sub, s = make(), _scheme()
    a = walker.simulate(sub, s, parallel=False, **run)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        b = walker.simulate(sub, s, parallel=True, **run)
    finally:
        numba.set_num_threads(threads)
    c = walker.simulate(sub, s, parallel=True, **run)
    for r in (b, c):
        np.testing.assert_array_equal(a.signal, r.signal)
        np.testing.assert_array_equal(a.stderr, r.stderr)
        np.testing.assert_array_equal(a.final_positions, r.final_positions)
        np.testing.assert_array_equal(a.trajectories, r.trajectories)
        assert (a.reflections, a.transits, a.escapes) == (r.reflections, r.transits, r.escapes)
    assert a.escapes == 0


def test_variants_are_built_once_per_kind_and_membranes():
    k1 = cells_kernel.cells_kernel(su.CYLINDERS, False, True)
    assert cells_kernel.cells_kernel(su.CYLINDERS, False, True) is k1
    assert cells_kernel.cells_kernel(su.CYLINDERS, True, True) is not k1
    assert cells_kernel.cells_kernel(su.CYLINDERS, False, False) is not k1
    assert cells_kernel.cells_kernel(su.FREE, True, True) is cells_kernel.cells_kernel(su.FREE, False, True)
    assert mesh_kernel.mesh_kernel(True, False) is not mesh_kernel.mesh_kernel(False, False)
    # separate cache entries: the serial build's name differs from the parallel one's
    assert k1.py_func.__qualname__ != cells_kernel.cells_kernel(su.CYLINDERS, False, False).py_func.__qualname__


def test_gaussian_steps_longer_than_the_grid_reach_are_walked_in_pieces():
    # Gaussian steps have no upper length: a few exceed the walk grid's reach and are walked in pieces; every
    # step checked, no walker may leave the extra space
    sub = su.cylinder_lattice(1e-6, 0.7, repeats=2)
    r = walker.simulate(sub, sq.pgse(5e-3, 15e-3, bvalues=[1e9], directions=[1, 0, 0]), n_walkers=3000,
                        n_steps=400, diffusivity=D0, seed=2, start="extra", gaussian_steps=True,
                        check_every_step=True)
    assert r.escapes == 0 and r.reflections > 0


def test_phase_sums_do_not_depend_on_threads_or_chunking():
    # the signal pass sums in blocks fixed by N alone; a run split in halves sums to the same (up to rounding)
    s = _scheme() + sq.tensor_encoding(bvalues=[1e9, 2e9], b_delta=0.0, duration=30e-3)
    a = walker.simulate(su.free(), s, n_walkers=5000, n_steps=300, diffusivity=D0, seed=8, parallel=False)
    b = walker.simulate(su.free(), s, n_walkers=5000, n_steps=300, diffusivity=D0, seed=8, parallel=True)
    np.testing.assert_array_equal(a.signal, b.signal)
    np.testing.assert_array_equal(a.stderr, b.stderr)
    # against the closed form on the Gaussian phases of the same walk: mean cos over walkers
    assert np.all(np.abs(a.signal - np.exp(-a.discrete_bvalues * D0)) <= 4.5 * a.stderr + 2e-3)


def test_compile_notice_is_printed_when_a_build_takes_long(monkeypatch, capsys):
    @numba.njit(cache=False)
    def slow_to_build(x):
        return x + 1

    monkeypatch.setattr(scaffold, "COMPILE_NOTICE_AFTER", 0.0)
    scaffold.ensure_compiled(slow_to_build, (1.0,), "a test kernel", 1.0)
    err = capsys.readouterr().err
    assert "compiling the walker kernel for a test kernel once" in err and "cached for later runs" in err
    scaffold.ensure_compiled(slow_to_build, (1.0,), "a test kernel", 1.0)  # built: nothing to say
    assert capsys.readouterr().err == ""


def test_walker_seeds_depend_on_the_walker_index_alone():
    from walker.rng import walker_seeds
    a = walker_seeds(np.random.SeedSequence(3), 10)
    b = walker_seeds(np.random.SeedSequence(3), 4)
    np.testing.assert_array_equal(a[:4], b)
    assert len({tuple(r) for r in a}) == 10 and not np.any(np.all(a == 0, axis=1))
    assert not np.array_equal(walker_seeds(np.random.SeedSequence(4), 4), b)


def test_time_inside_for_t2_without_membranes_is_exact():
    # impermeable: a walker is inside the whole echo time or never; relaxation weights follow from the labels
    s = (sq.pgse(5e-3, 15e-3, bvalues=[0, 1e9], directions=[[1.0, 0, 0]] * 2, echo_time=40e-3)
         + sq.pgse(5e-3, 15e-3, bvalues=[0, 1e9], directions=[[1.0, 0, 0]] * 2, echo_time=60e-3))
    r = walker.simulate(su.cylinder_lattice(2e-6, 0.5), s, n_walkers=2000, n_steps=600, diffusivity=D0, seed=1,
                        start="uniform", t2={"intra": 0.05, "extra": 0.1})
    for name, t2 in (("intra", 0.05), ("extra", 0.1)):
        b0 = r.compartment_signals[name][[0, 2]]
        np.testing.assert_allclose(b0, np.exp(-np.array([40e-3, 60e-3]) / t2), rtol=1e-12)
    assert math.isclose(r.ground_truth["t2"]["intra"], 0.05)
