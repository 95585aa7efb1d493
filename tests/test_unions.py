"""Fibres as unions of overlapping spheres: convergence to the cylinder, exact containment, uniform starts,
reproducibility, and clear refusals."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import sequences as sq
import substrates as su
import walker
from validation import mf_signal, surface_relaxation_signal
from walker.membranes import first_order_probability

D0 = 2e-9
R = 4e-6
LZ = 16e-6
PG = sq.pgse(10e-3, 20e-3, bvalues=[0.5e9, 1e9, 2e9, 3e9], directions=[1, 0, 0])


def _chain(spacing: float) -> su.SphereUnion:
    """Spheres of radius R every ``spacing`` radii along z, periodic over LZ."""
    m = int(round(LZ / (spacing * R)))
    z = np.arange(m) * (LZ / m)
    return su.sphere_union(np.column_stack([np.full(m, 8e-6), np.full(m, 8e-6), z]), np.full(m, R), [16e-6, 16e-6, LZ])


def test_a_chain_of_spheres_converges_to_the_cylinder():
    exact = mf_signal(PG, "cylinder", R, D0, axis=(0, 0, 1))
    err = {}
    for sp in (1.0, 0.25):
        res = walker.simulate(_chain(sp), PG, n_walkers=8000, diffusivity=D0, n_steps=1500, seed=1)
        assert res.escapes == 0
        err[sp] = (res.signal - exact, res.stderr)
        if sp == 0.25:
            # allowance: the union lies between the cylinders of the necks' radius, R sqrt(1 - (s/2)^2), and R
            neck = R * math.sqrt(1 - (sp / 2) ** 2)
            allow = np.abs(mf_signal(PG, "cylinder", neck, D0, axis=(0, 0, 1)) - exact)
            assert np.all(np.abs(res.signal - exact) <= 4.5 * res.stderr + allow), (res.signal, exact)
    # spheres a radius apart make a visibly beaded tube: far from the cylinder, and farther than the fine chain
    assert np.all(np.abs(err[1.0][0]) > 6 * err[1.0][1])
    assert np.all(np.abs(err[1.0][0]) > 3 * np.abs(err[0.25][0]))


def test_no_walker_leaves_a_beaded_undulating_union_and_threads_do_not_matter():
    sub = su.sphere_chain_axons(n_axons=5, mean_radius=1e-6, icvf=0.4, bead_amplitude=0.5, bead_wavelength=6e-6,
                                undulation=1e-6, undulation_wavelength=12e-6, length=12e-6, seed=3)
    kw = dict(n_walkers=1500, diffusivity=D0, n_steps=600, seed=4, check_every_step=True,
              record_times=[PG.duration])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # steps longer than the thinnest beads on purpose: a containment stress test
        a = walker.simulate(sub, PG, **kw)
        b = walker.simulate(sub, PG, parallel=False, **kw)
    assert a.escapes == 0 and a.reflections > 0 and a.truncated_steps == 0
    np.testing.assert_array_equal(a.signal, b.signal)
    np.testing.assert_array_equal(a.final_positions, b.final_positions)
    assert sub.ground_truth()["n_fibres"] == 5


def test_starts_are_uniform_in_the_union_and_its_volume_is_exact():
    """Two spheres of radius r, centres d apart: the union's volume and the share of starts in their lens."""
    r, d = 2e-6, 2e-6
    sub = su.sphere_union([[5e-6, 5e-6, 5e-6], [5e-6 + d, 5e-6, 5e-6]], [r, r], [10e-6, 10e-6, 10e-6])
    lens = math.pi * (4 * r + d) * (2 * r - d) ** 2 / 12
    union = 2 * 4 / 3 * math.pi * r**3 - lens
    vol, se = sub.union_volume(n=100_000)
    assert abs(vol - union) <= 4.5 * se
    start = sub.sample_positions("intra", 40_000, np.random.default_rng(0))
    in_both = np.all([np.linalg.norm(start.positions - c, axis=1) < r for c in sub.centers], axis=0)
    f = lens / union
    assert abs(in_both.mean() - f) <= 4.5 * math.sqrt(f * (1 - f) / 40_000)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_unions_refuse_what_they_do_not_support(tmp_path):
    sub = _chain(0.5)
    with pytest.raises(ValueError, match="gaussian_steps"):
        walker.simulate(sub, PG, n_walkers=10, diffusivity=D0, n_steps=100, gaussian_steps=True)
    with pytest.raises(ValueError, match="spacing"):
        su.sphere_chain_axons(n_axons=2, spacing=2.0)


def test_unions_save_and_load_bit_for_bit(tmp_path):
    sub = su.crossing_bundles(angles=(0, 60), n_fibres=30, icvf=0.6, seed=2, representation="union")
    p = tmp_path / "u.h5"
    su.save_substrate(sub, p)
    back = su.load_substrate(p)
    assert back.family == "union" and back.truth["crossing_angles"] == sub.truth["crossing_angles"]
    for a in ("centers", "radii", "fibre", "box"):
        np.testing.assert_array_equal(getattr(back, a), getattr(sub, a))
    s = sq.pgse(5e-3, 15e-3, bvalues=[0, 1e9], directions=[[0, 1, 0]])
    r1, r2 = (walker.simulate(x, s, n_walkers=500, n_steps=100, diffusivity=2e-9, seed=4) for x in (sub, back))
    np.testing.assert_array_equal(r1.signal, r2.signal)


def test_walkers_between_the_spheres_match_the_exact_spheres():
    """Outside a union of spheres that do not overlap, the space is exactly the analytic spheres' extra space:
    the same signal within Monte Carlo error, no walker inside a sphere at any step."""
    c = np.array([[3, 3, 3], [9, 3, 3], [3, 9, 3], [9, 9, 9], [3, 3, 9], [9, 9, 3]]) * 1e-6
    r = np.array([2.5, 2.0, 2.6, 2.8, 2.2, 2.4]) * 1e-6
    box = [12e-6] * 3
    union, exact = su.sphere_union(c, r, box, fibre=np.arange(6)), su.spheres(r, c, box)
    assert union.volume_fractions() == pytest.approx(exact.volume_fractions(), abs=1e-12)
    s = sq.pgse(5e-3, 20e-3, bvalues=[1e9, 2e9, 4e9], directions=[[1, 0, 0]] * 3)
    a = walker.simulate(union, s, n_walkers=10_000, n_steps=300, diffusivity=2e-9, seed=1, start="extra",
                        check_every_step=True)
    b = walker.simulate(exact, s, n_walkers=10_000, n_steps=300, diffusivity=2e-9, seed=2, start="extra")
    assert a.escapes == 0 and a.reflections > 0
    assert np.all(np.abs(a.signal - b.signal) <= 4.5 * np.hypot(a.stderr, b.stderr))


def test_no_walker_crosses_a_dense_crossing_union_from_either_side():
    """Fibres of overlapping spheres at ICVF 0.6 crossing at 60 degrees, walkers inside and between them,
    containment checked after every step."""
    sub = su.crossing_bundles(angles=(0, 60), n_fibres=30, icvf=0.6, seed=2, representation="union")
    s = sq.pgse(10e-3, 30e-3, bvalues=[0, 2e9], directions=[[1, 0, 0]])
    with pytest.warns(UserWarning, match="step length"):
        res = walker.simulate(sub, s, n_walkers=5_000, n_steps=1000, diffusivity=2e-9, seed=3, start="uniform",
                              check_every_step=True)
    assert res.escapes == 0
    n_in, n_out = res.compartment_counts["intra"], res.compartment_counts["extra"]
    assert n_in + n_out == 5_000 and n_in > 2_000 and n_out > 1_000


def test_union_surface_relaxivity_matches_the_exact_sphere():
    """A union of one sphere (its surface is the sphere's) relaxing at rho = D0 / R: the b = 0 decay of the
    walkers inside against the exact Robin series (Brownstein & Tarr 1979), within 4.5 SE plus the allowance
    of the surface rule (a realised rho off by 0.1 p per hit, as in tests/test_relaxivity.py)."""
    R = 5e-6
    rho = D0 / R
    sub = su.sphere_union([[10e-6, 10e-6, 10e-6]], [R], [20e-6] * 3, relaxivity=rho)
    te, dt = np.array([2.5e-3, 5e-3]), 1e-5
    scheme = sq.concatenate([sq.pgse(2 * dt, 4 * dt, bvalues=[0.0], directions=[1, 0, 0], echo_time=t, dt=dt)
                             for t in te])
    res = walker.simulate(sub, scheme, n_walkers=10_000, diffusivity=D0, n_steps=500, seed=2, check_every_step=True)
    exact = surface_relaxation_signal("sphere", R, D0, rho, te)
    p = first_order_probability(rho, res.provenance["dt"] / res.provenance["substeps"], D0)
    allow = np.max([np.abs(surface_relaxation_signal("sphere", R, D0, rho * (1 + s * 0.1 * p), te) - exact)
                    for s in (-1, 1)], axis=0)
    assert res.escapes == 0
    assert np.all(np.abs(res.signal - exact) <= 4.5 * res.stderr + allow), (res.signal, exact, res.stderr)
    back = su.sphere_union(sub.centers, sub.radii, sub.box, relaxivity=rho)
    np.testing.assert_array_equal(back.relaxivity, sub.relaxivity)


def test_permeable_union_exchanges_as_the_permeable_analytic_spheres(tmp_path):
    """Spheres that do not overlap, their surface permeable (2e-5 m/s), the space inside slower than outside
    (1 and 2 um^2/ms), walkers everywhere: the union's signals and its occupancy at the end equal those of the
    analytic kernel's permeable spheres (checked against exact exchange in tests/test_membranes.py) within
    4.5 combined SE; walkers cross both ways, none lands inside a sphere while counted outside or the
    reverse (checked every step), and a uniform start stays uniform (detailed balance)."""
    c = np.array([[3, 3, 3], [9, 3, 3], [3, 9, 3], [9, 9, 9], [3, 3, 9], [9, 9, 3]]) * 1e-6
    r = np.array([2.5, 2.0, 2.6, 2.8, 2.2, 2.4]) * 1e-6
    box = [12e-6] * 3
    kappa, D = 2e-5, {"intra": 1e-9, "extra": 2e-9}
    union = su.sphere_union(c, r, box, fibre=np.arange(6), permeability=kappa)
    exact = su.spheres(r, c, box, permeability=kappa)
    s = sq.pgse(5e-3, 20e-3, bvalues=[0, 1e9, 2e9], directions=[[1, 0, 0]] * 3)
    n = 10_000
    a = walker.simulate(union, s, n_walkers=n, n_steps=300, diffusivity=D, seed=1, start="uniform",
                        check_every_step=True)
    b = walker.simulate(exact, s, n_walkers=n, n_steps=300, diffusivity=D, seed=2, start="uniform")
    assert a.escapes == 0 and a.transits > 0.05 * n
    assert np.all(np.abs(a.signal - b.signal) <= 4.5 * np.hypot(a.stderr, b.stderr)), (a.signal, b.signal)
    f = union.volume_fractions()["intra"]
    fa, fb = a.final_fractions["intra"], b.final_fractions["intra"]
    assert abs(fa - f) <= 4.5 * math.sqrt(f * (1 - f) / n) and abs(fa - fb) <= 4.5 * math.sqrt(2 * f * (1 - f) / n)
    p = tmp_path / "perm.h5"
    su.save_substrate(union, p)
    back = su.load_substrate(p)
    np.testing.assert_array_equal(back.permeability, union.permeability)
    with pytest.raises(ValueError, match="one value"):
        su.sphere_union(c, r, box, permeability=[1e-5] * 6)
    with pytest.raises(ValueError, match="inf"):
        su.sphere_union(c, r, box, permeability=np.inf)


def test_walkers_between_the_spheres_relax_with_the_extra_t2():
    """T2 per compartment on a union: walkers that stay between the spheres decay with T2_extra, those inside
    with T2_intra (exactly: without membranes and relaxivity the weight is exp(-TE / T2))."""
    sub = su.crossing_bundles(angles=(0, 60), n_fibres=30, icvf=0.6, seed=2, representation="union")
    s = sq.pgse(5e-3, 15e-3, bvalues=[0.0], directions=[[1, 0, 0]])
    res = walker.simulate(sub, s, n_walkers=400, n_steps=100, diffusivity=D0, seed=1, start="uniform",
                          t2={"intra": 0.08, "extra": 0.04})
    te = float(s.echo_time[0])
    assert res.compartment_signals["intra"][0] == pytest.approx(math.exp(-te / 0.08), rel=1e-9)
    assert res.compartment_signals["extra"][0] == pytest.approx(math.exp(-te / 0.04), rel=1e-9)


def _periodic_gaps(a_c, a_r, b_c, b_r, box):
    d = np.abs(a_c[:, None, :] - b_c[None, :, :])
    d = np.minimum(d, np.asarray(box) - d)
    return np.sqrt(np.sum(d * d, axis=-1)) - a_r[:, None] - b_r[None, :]


def test_glia_between_crossing_fibres_take_their_room_and_signal_apart():
    """Glial cells packed in the sheets of a crossing union (a soma and two processes of spheres along the
    fibres): no glial sphere touches a fibre's, the union holds the fibres' volume plus the glia's (Monte Carlo
    errors plus the spheres' r / 384 bumps), walkers starting in glia are counted as such in proportion to
    their volume, none leaves (checked every step), and each bundle and the glia report their own signal."""
    sub = su.crossing_bundles(angles=(0, 90), n_fibres=60, icvf=0.6, seed=1, representation="union", glia=4)
    g = sub.truth["glia"]
    is_glia = np.isin(sub.fibre, g["fibre_labels"])
    assert g["n_cells"] == 4 and int(is_glia.sum()) == 4 * g["spheres_per_cell"]
    gaps = _periodic_gaps(sub.centers[is_glia], sub.radii[is_glia], sub.centers[~is_glia], sub.radii[~is_glia],
                          sub.box)
    assert gaps.min() > 0
    gt = sub.ground_truth()
    se = math.hypot(gt["union_volume_stderr"] / float(np.prod(sub.box)), g["volume_fraction_stderr"])
    want = sub.truth["icvf_exact"] + g["volume_fraction"]
    assert abs(gt["union_volume_fraction"] - want) <= 4.5 * se + 2 / 384 * sub.truth["icvf_exact"]
    d = np.array([b["direction"] for b in sub.truth["bundles"]])
    s = sq.pgse(10e-3, 30e-3, bvalues=[0, 2e9, 2e9], directions=[d[0], d[0], d[1]])
    n = 4000
    with pytest.warns(UserWarning, match="step length"):
        res = walker.simulate(sub, s, n_walkers=n, n_steps=200, diffusivity=D0, seed=1, start="uniform",
                              check_every_step=True)
    assert res.escapes == 0
    assert set(res.group_signals) == {"intra.bundle_0", "intra.bundle_1", "intra.glia", "extra"}
    f = g["volume_fraction"]
    assert abs(res.group_counts["intra.glia"] / n - f) <= 4.5 * math.sqrt(f * (1 - f) / n)
    # along its own axis a bundle's walkers diffuse freely (exp(-b D0) = 0.018), across it they barely move
    b0 = res.group_signals["intra.bundle_0"]
    assert b0[1] < 0.05 and b0[2] > 0.95
    with pytest.raises(ValueError, match="representation='union'"):
        su.crossing_bundles(n_fibres=60, icvf=0.5, glia=2)
    with pytest.raises(ValueError, match="bend=0 with glia"):
        su.crossing_bundles(n_fibres=60, icvf=0.5, glia=2, bend=20, representation="union")


def test_sphere_clusters_are_placed_clear_of_sparse_fibres():
    """Soma-like clusters added between sparse fibres touch neither the fibres nor each other; the truth
    counts them; crowded boxes are refused with the argument named."""
    fibres = su.sphere_chain_axons(n_axons=4, mean_radius=1e-6, icvf=0.08, seed=0)
    sub = su.add_sphere_clusters(fibres, 3, soma_radius=1e-6, process_length=1e-6, seed=1)
    g = sub.truth["glia"]
    assert g["n_clusters"] == 3 and len(sub.radii) == len(fibres.radii) + 3 * g["spheres_per_cluster"]
    new = np.isin(sub.fibre, g["fibre_labels"])
    assert _periodic_gaps(sub.centers[new], sub.radii[new], fibres.centers, fibres.radii, sub.box).min() > 0
    for a in g["fibre_labels"]:
        for b in g["fibre_labels"]:
            if a < b:
                ia, ib = sub.fibre == a, sub.fibre == b
                assert _periodic_gaps(sub.centers[ia], sub.radii[ia], sub.centers[ib], sub.radii[ib],
                                      sub.box).min() > 0
    with pytest.raises(ValueError, match="n_clusters"):
        su.add_sphere_clusters(fibres, 200, soma_radius=1e-6, process_length=1e-6, max_tries=200)
