"""Invariants: containment, bit-identical results across threads and builds, seeds, bad input."""

import numba
import numpy as np
import pytest

import sequences as sq
import substrates as su
import walker

D0 = 2e-9

SUBSTRATES = {
    "free": (lambda: su.free(), "uniform"),
    "planes": (lambda: su.planes(4e-6, normal=[1, 1, 0]), "intra"),
    "cylinder": (lambda: su.cylinder(3e-6, axis=[0, 1, 1]), "intra"),
    "hex-extra": (lambda: su.cylinder_lattice(2e-6, 0.6, repeats=2), "extra"),
    "hex-uniform": (lambda: su.cylinder_lattice(2e-6, 0.5, "square"), "uniform"),
    "sphere": (lambda: su.sphere(3e-6), "intra"),
    "fcc-extra": (lambda: su.sphere_lattice(2e-6, 0.4, "fcc"), "extra"),
}


@pytest.fixture(scope="module")
def scheme():
    return sq.pgse(5e-3, 15e-3, bvalues=[0, 1e9, 3e9], directions=[[1, 0, 0], [1, 0, 0], [0.6, 0, 0.8]])


def _run(name, scheme, **kw):
    make, start = SUBSTRATES[name]
    kw.setdefault("n_walkers", 3000)
    kw.setdefault("n_steps", 200)
    return walker.simulate(make(), scheme, diffusivity=D0, seed=11, start=start, record_times=[10e-3],
                           n_trajectories=2, **kw)


def _same(a, b):
    np.testing.assert_array_equal(a.signal, b.signal)
    np.testing.assert_array_equal(a.stderr, b.stderr)
    np.testing.assert_array_equal(a.displacements, b.displacements)
    np.testing.assert_array_equal(a.trajectories, b.trajectories)
    assert (a.reflections, a.escapes, a.truncated_steps) == (b.reflections, b.escapes, b.truncated_steps)


@pytest.mark.parametrize("name", list(SUBSTRATES))
@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_parallel_kernel_matches_serial_build_bit_for_bit(name, scheme):
    _same(_run(name, scheme, parallel=True), _run(name, scheme, parallel=False))


@pytest.mark.parametrize("name", ["free", "cylinder", "hex-extra", "fcc-extra"])
@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_thread_count_does_not_change_results(name, scheme):
    n = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _run(name, scheme)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = _run(name, scheme)
    finally:
        numba.set_num_threads(n)
    _same(one, many)


@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_fixed_seed_reproduces_and_other_seed_differs(scheme):
    a, b = _run("hex-extra", scheme), _run("hex-extra", scheme)
    _same(a, b)
    c = walker.simulate(su.cylinder_lattice(2e-6, 0.6, repeats=2), scheme, n_walkers=3000, n_steps=200,
                        diffusivity=D0, seed=12, start="extra")
    assert not np.array_equal(a.signal, c.signal)


@pytest.mark.parametrize("name,steps", [("cylinder", 2000), ("sphere", 2000), ("hex-extra", 2000),
                                        ("fcc-extra", 2000), ("planes", 1000)])
def test_containment_over_ten_million_walker_steps(name, steps, scheme):
    # coarse steps (about R/3 and comparable to the gaps) provoke many multi-bounce steps; checked every step
    make, start = SUBSTRATES[name]
    with pytest.warns(UserWarning, match="smallest feature"):
        r = walker.simulate(make(), scheme, n_walkers=5000, n_steps=steps, diffusivity=D0 * 25, seed=13,
                            start=start, check_every_step=True)
    assert 5000 * steps >= 5e6 and r.reflections > 0
    assert r.escapes == 0 and r.truncated_steps == 0


def test_containment_total_exceeds_1e7_walker_steps():
    # one long run on the hardest case: extra-cylindrical walkers in a dense lattice, every step checked
    sub = su.cylinder_lattice(1e-6, 0.85, "hexagonal", repeats=3)
    s = sq.pgse(5e-3, 15e-3, bvalues=[1e9])
    with pytest.warns(UserWarning):
        r = walker.simulate(sub, s, n_walkers=10_000, n_steps=1000, diffusivity=D0, seed=14, start="extra",
                            check_every_step=True)
    assert r.provenance["n_walkers"] * r.provenance["n_steps"] >= 1e7
    assert r.escapes == 0 and r.truncated_steps == 0 and r.reflections > 1e6


@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_uniform_start_splits_compartments(scheme):
    sub = su.cylinder_lattice(2e-6, 0.5, "hexagonal")
    r = walker.simulate(sub, scheme, n_walkers=20_000, n_steps=200, diffusivity=D0, seed=15, start="uniform")
    n = r.compartment_counts
    assert n["intra"] + n["extra"] == 20_000
    assert abs(n["intra"] / 20_000 - 0.5) < 4.5 * np.sqrt(0.25 / 20_000)
    mix = (n["intra"] * r.compartment_signals["intra"] + n["extra"] * r.compartment_signals["extra"]) / 20_000
    np.testing.assert_allclose(r.signal, mix, rtol=1e-12)
    # restricted intra signal decays less than the hindered extra signal perpendicular to the axis
    assert r.compartment_signals["intra"][1] > r.compartment_signals["extra"][1]
    assert r.ground_truth["volume_fractions"]["intra"] == pytest.approx(0.5)


@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_trajectories_stay_inside_a_cylinder():
    r = walker.simulate(su.cylinder(2e-6, axis=[1, 0, 0]), sq.pgse(5e-3, 15e-3, bvalues=[1e9]), n_walkers=10,
                        n_steps=500, diffusivity=D0, seed=16, n_trajectories=5)
    tr = r.trajectories
    assert tr.shape == (5, 501, 3)
    assert np.sqrt(tr[..., 1] ** 2 + tr[..., 2] ** 2).max() <= 2e-6 * (1 + 1e-9)
    assert np.ptp(tr[..., 0]) > 2e-6  # free along the axis


@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_result_provenance_and_ground_truth(scheme):
    r = _run("hex-extra", scheme)
    p = r.provenance
    for key in ("seed", "n_walkers", "n_steps", "dt", "step_length", "gamma", "diffwalk_version", "numba_version",
                "wall_time_s", "threads"):
        assert key in p
    assert p["step_length"] == pytest.approx(np.sqrt(6 * D0 * p["dt"]))
    gt = r.ground_truth
    assert gt["diffusivity"] == D0 and gt["surface_to_volume"]["intra"] == pytest.approx(2 / 2e-6)
    assert "escapes" in r.summary()


@pytest.mark.parametrize("call,match", [
    (lambda s: walker.simulate(su.free(), s, diffusivity=2.0), "m\\^2/s"),
    (lambda s: walker.simulate(su.free(), s), "give diffusivity"),
    (lambda s: walker.simulate(su.free(), s, diffusivity=D0, start="intra"), "free space has no"),
    (lambda s: walker.simulate(su.cylinder(5e-6), s, diffusivity=D0, start="extra"), "periodic box"),
    (lambda s: walker.simulate(su.cylinder(5e-6), s, diffusivity=D0, start="inside"), "start must be"),
    (lambda s: walker.simulate(su.free(), s, diffusivity=D0, n_walkers=0), "n_walkers"),
    (lambda s: walker.simulate(su.free(), s, diffusivity=D0, record_times=[1.234567e-3]), "record_times"),
    (lambda s: walker.simulate(su.free(diffusion_tensor=np.eye(3) * 1e-9), s, diffusivity=D0), "leave diffusivity"),
    (lambda s: su.cylinder(5.0), "micrometres"),
    (lambda s: su.cylinder(5e-6, permeability=0.02), "um/ms"),
    (lambda s: su.cylinder(5e-6, permeability=-1e-5), "permeability must be >= 0"),
    (lambda s: su.cylinder_lattice(5e-6, 0.95), "hexagonal lattice holds"),
    (lambda s: su.cylinders([5e-6, 5e-6], [[10e-6, 10e-6], [14e-6, 10e-6]], [40e-6, 40e-6]), "overlap"),
])
def test_bad_input_gets_a_clear_error(call, match, scheme):
    with pytest.raises((ValueError, NotImplementedError, TypeError), match=match):
        call(scheme)


@pytest.mark.filterwarnings("ignore:n_steps=:UserWarning")
def test_warnings_for_coarse_steps_misaligned_edges_and_precision(scheme):
    with pytest.warns(UserWarning, match="n_steps >="):
        walker.simulate(su.cylinder(1e-6), scheme, n_walkers=100, n_steps=50, diffusivity=D0)
    with pytest.warns(UserWarning, match="aligns every edge"):
        walker.simulate(su.free(), scheme, n_walkers=100, n_steps=333, diffusivity=D0)
    with pytest.warns(UserWarning, match="n_walkers >="):
        walker.simulate(su.free(), scheme, n_walkers=100, n_steps=100, diffusivity=D0, target_stderr=1e-3)


def test_pack_cylinders_reaches_target_without_overlap():
    radii = np.random.default_rng(3).gamma(4, 0.5e-6, 40)
    sub = su.pack_cylinders(radii, 0.6, seed=3)
    assert sub.volume_fractions()["intra"] == pytest.approx(0.6)
    assert sub.cells.min_gap > 0
    with pytest.raises(ValueError, match="icvf"):
        su.pack_cylinders(radii, 0.9)


def test_restricted_example_runs(tmp_path):
    from diffwalk.examples import restricted
    paths = restricted.run(tmp_path, n_walkers=2000)
    assert paths[0].exists() and paths[0].stat().st_size > 10_000


@pytest.mark.filterwarnings("ignore:n_steps=:UserWarning")
@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_extra_space_of_a_one_sphere_box_is_periodic_along_z():
    # regression: with one cell along z the kernel once skipped the z images, and walkers that left the box
    # along z diffused freely; in a cubic lattice the extra-cellular MSD is isotropic
    sub = su.sphere_lattice(3e-6, 0.4)
    assert sub.cells.n[2] == 1
    s = sq.pgse(5e-3, 40e-3, bvalues=[1e9], directions=[1, 0, 0])
    r = walker.simulate(sub, s, n_walkers=20_000, diffusivity=2e-9, n_steps=2000, seed=3, start="extra",
                        record_times=[45e-3])
    msd = r.msd[0]
    se = np.std(r.displacements[:, 0] ** 2, axis=0) / np.sqrt(20_000)
    assert abs(msd[2] - msd[0]) <= 4.5 * np.hypot(se[0], se[2]), msd
    assert abs(msd[2] - msd[1]) <= 4.5 * np.hypot(se[1], se[2]), msd
    assert r.escapes == 0
