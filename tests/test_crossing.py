"""Crossing bundles (issue 29): directions realised exactly, tissue density, the measured orientation
distribution against the requested one, zero escapes on dense crossings, one bundle against the exact
cylinders at the same places, free diffusion along a straight bundle, configs."""

import math

import numpy as np
import pytest

import sequences as sq
import substrates
import walker
from substrates.crossing import lattice_directions

D0 = 2e-9


@pytest.fixture(scope="module")
def crossing():
    return substrates.crossing_bundles(angles=(0, 90), n_fibres=80, icvf=0.7, seed=3)


@pytest.mark.parametrize("angles", [(0, 90), (0, 30), (10, 55), (0, 60, 120), (0, 45, 90), (5, 35, 95)])
def test_lattice_directions_realise_the_requested_relative_angles(angles):
    a, pq, real, err = lattice_directions(angles, 0.5)
    assert err <= 0.5
    req = np.asarray(angles, float)
    for i in range(len(angles)):
        for j in range(i + 1, len(angles)):
            d_req = abs((req[i] - req[j] + 90) % 180 - 90)
            d_real = abs((real[i] - real[j] + 90) % 180 - 90)
            assert abs(d_req - d_real) <= 2 * err + 1e-9
    if len(angles) == 2:
        assert err == 0.0


def test_impossible_directions_and_densities_are_refused_with_the_argument():
    with pytest.raises(ValueError, match="angle_tolerance"):
        substrates.crossing_bundles(angles=(0, 17, 71), angle_tolerance=0.01, n_fibres=30)
    with pytest.raises(ValueError, match="one bundle"):
        substrates.crossing_bundles(angles=(0, 0.2), n_fibres=30)
    with pytest.raises(ValueError, match="icvf <= "):
        substrates.crossing_bundles(angles=(0, 90), n_fibres=60, icvf=0.6, g_ratio=0.7)
    with pytest.raises(ValueError, match="angles"):
        substrates.crossing_bundles(angles=(0, 30, 60, 90), n_fibres=60)
    with pytest.raises(ValueError, match="angles or crossing_angle"):
        substrates.crossing_bundles(angles=(0, 90), crossing_angle=45, n_fibres=60)
    with pytest.raises(ValueError, match="representation"):
        substrates.crossing_bundles(n_fibres=60, representation="tubes")
    with pytest.raises(ValueError, match="no myelin"):
        substrates.crossing_bundles(n_fibres=60, icvf=0.3, g_ratio=0.7, representation="union")
    with pytest.raises(ValueError, match="permeability as a table"):
        substrates.crossing_bundles(n_fibres=60, permeability={"inner": 1e-5, "outer": 0.0})
    with pytest.raises(ValueError, match="icvf"):
        substrates.crossing_bundles(n_fibres=60, icvf=[0.7, 0.6, 0.5])
    with pytest.raises(ValueError, match="fewer layers"):
        substrates.crossing_bundles(n_fibres=4, layers=3, icvf=0.3)


def test_crossing_reaches_tissue_density_and_reports_its_geometry(crossing):
    t = crossing.truth
    assert t["crossing_angles"] == pytest.approx([90.0], abs=1e-9)
    assert t["icvf_exact"] == pytest.approx(0.7, abs=1e-12)
    # the polygons keep the area of their circles; what is left is the ring discretisation of straight tubes (0)
    assert abs(t["mesh_volume_error"]) < 1e-9
    assert crossing.volume_fractions()["intra"] == pytest.approx(0.7, abs=1e-9)
    b0, b1 = t["bundles"]
    assert abs(np.dot(b0["direction"], b1["direction"])) < 1e-12
    assert b0["volume_share"] == pytest.approx(0.5, abs=0.03)  # within a fibre of the request
    # a straight bundle is a delta on the sphere: ODI 0 and SH coefficients Y_lm of its direction
    for b in (b0, b1):
        assert b["odi"] == 0.0 and b["mean_cos2"] == pytest.approx(1.0, abs=1e-12)
        y = substrates.real_sh(8, np.asarray([b["direction"]]))[0]
        assert np.allclose(b["sh"], y, atol=1e-12)
        assert b["sh"][0] == pytest.approx(1 / math.sqrt(4 * math.pi))
    # fibres of different bundles never come closer than the gap: each sheet is its own slab along x
    x0 = [s["x0"] for s in t["sheets"]]
    assert x0 == sorted(x0) and sum(s["thickness"] for s in t["sheets"]) == pytest.approx(crossing.box[0])


def test_real_sh_is_orthonormal():
    rng = np.random.default_rng(0)
    n = rng.normal(size=(200_000, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    Y = substrates.real_sh(8, n)
    gram = 4 * np.pi * (Y.T @ Y) / len(n)
    assert Y.shape[1] == 45
    # Monte Carlo quadrature: the Gram matrix is the identity within its sampling error (~sqrt(2/N) * few)
    assert np.max(np.abs(gram - np.eye(45))) < 0.04


def test_measured_dispersion_of_undulating_bundles_matches_the_sinusoid():
    """The orientation distribution measured on the generated centre lines equals the one the undulation
    asks for: tan(alpha) = A k cos(phase), weighted by arc length."""
    A = 0.5e-6
    sub = substrates.crossing_bundles(angles=(0, 90), n_fibres=60, icvf=0.3, amplitude=A, seed=1)
    for b in sub.truth["bundles"]:
        k = 2 * math.pi * b["waves_per_period"] / b["fibre_period"]
        ph = np.linspace(0, 2 * math.pi, 20001)[:-1]
        tan_a = A * k * np.cos(ph)
        ds = np.sqrt(1 + tan_a**2)
        want = float(np.sum(ds / (1 + tan_a**2)) / np.sum(ds))  # <cos^2> about the bundle axis
        # measured from the centre lines' exact tangents at the mesh rings, equally spaced over whole waves:
        # the trapezoidal rule of a smooth periodic function, whose error falls geometrically with the rings
        # per wave (below 1e-7 here)
        assert b["mean_cos2"] == pytest.approx(want, abs=1e-6)
        assert abs(np.dot(b["direction"], b["lattice_direction"])) == pytest.approx(1.0, abs=1e-6)
        assert 0 < b["odi"] < 0.1
    assert sub.truth["crossing_angles"][0] == pytest.approx(90.0, abs=0.5)


def _weighted_mean(y, w):
    m = float(np.sum(w * y) / np.sum(w))
    return m, float(np.sqrt(np.sum(w**2 * (y - m)**2)) / np.sum(w))


def test_watson_dispersion_measured_on_the_helices_matches_the_requested_law():
    """Watson dispersion at ODI 0.2 (each fibre a helix of a drawn pitch angle; the law's tail beyond 75 degrees,
    6.3 % of it, cut and kappa lowered to keep the ODI): <cos^2>, E[P2] and E[P4] of the volume-weighted
    tangents measured on the generated centre lines (the bundle runs along z, so the measured SH coefficients
    c_l0 are sqrt((2l + 1) / 4 pi) E[P_l]) against that law, within 4.5 standard errors of a mean over the
    90 fibres, which are the samples (a helix has one tilt, at every azimuth)."""
    sub = substrates.crossing_bundles(angles=(0,), n_fibres=90, icvf=0.3, odi=0.2, resolution=0.05, seed=2)
    b = sub.truth["bundles"][0]
    wat = b["watson"]
    assert b["odi_requested"] == 0.2 and wat["share_cut"] == pytest.approx(0.063, abs=5e-4)
    assert wat["kappa"] == pytest.approx(1 / math.tan(0.1 * math.pi), rel=1e-12)
    # the cut law keeps the ODI asked for
    assert substrates.cut_watson_moment(wat["kappa_cut"], wat["max_tilt"], lambda x: x) == pytest.approx(
        wat["mean_cos2"], rel=1e-7)
    assert np.allclose(np.abs(b["direction"]), [0, 0, 1], atol=1e-9)
    th = np.radians(sub.truth["fibre_tilts"])
    assert th.max() <= math.radians(75) + 1e-12 and np.all(np.array(sub.truth["fibre_shapes"]) == "helix")
    wts = np.array(sub.truth["inner_radii"])**2 / np.cos(th)  # volume: r^2 x arc length (period / cos)
    x = np.cos(th)**2
    laws = {"cos2": (lambda x: x, b["mean_cos2"]),
            "P2": (lambda x: (3 * x - 1) / 2, b["sh"][3] / math.sqrt(5 / (4 * math.pi))),
            "P4": (lambda x: (35 * x**2 - 30 * x + 3) / 8, b["sh"][10] / math.sqrt(9 / (4 * math.pi)))}
    for name, (f, measured) in laws.items():
        m, se = _weighted_mean(f(x), wts)
        assert measured == pytest.approx(m, abs=1e-9), name  # the geometry's law is its fibres' tilts
        want = substrates.cut_watson_moment(wat["kappa_cut"], wat["max_tilt"], f)
        assert abs(measured - want) <= 4.5 * se, (name, measured, want, se)
    # rings are spaced for a centre-line sagitta of res x r, so a coil of curvature 1 / (1.5 r) turns by
    # psi^2 = 8 res / 1.5 between rings, and the straight quads between them cut its volume by about
    # psi^2 / 6 (chord psi^2 / 24, ring tilt psi^2 / 8); allowance psi^2 / 4 (the walker's truth is the
    # mesh's own volume, icvf_mesh)
    assert -8 * 0.05 / 1.5 / 4 < sub.truth["mesh_volume_error"] < 0
    with pytest.raises(ValueError, match="max_tilt"):
        substrates.crossing_bundles(angles=(0,), n_fibres=30, icvf=0.2, odi=0.5, max_tilt=20)
    with pytest.raises(ValueError, match="one of amplitude"):
        substrates.crossing_bundles(n_fibres=30, icvf=0.2, odi=0.1, amplitude=1e-7)
    with pytest.raises(ValueError, match="odi must be below 1"):
        substrates.crossing_bundles(n_fibres=30, icvf=0.2, odi=1.0)


def test_bingham_dispersion_measured_on_the_coils_matches_the_requested_law():
    """Bingham dispersion (kappa 6, beta 2 towards the crossing plane's normal e): each fibre a coil of one
    pitch angle whose azimuth lingers where the law is dense. The second moments of the volume-weighted tangents
    measured on the centre lines (scatter tensor: e_x, e = -y, axis z) against the cut Bingham law, within 4.5
    standard errors over the 100 fibres; per fibre the coil samples its azimuthal law exactly (<cos^2 phi> =
    1/2 + I1(c/2) / (2 I0(c/2)), c = beta sin^2 theta)."""
    from scipy.special import i0e, i1e
    kappa, beta = 6.0, 2.0
    sub = substrates.crossing_bundles(angles=(0,), n_fibres=100, icvf=0.2, bingham=(kappa, beta), resolution=0.05,
                                      seed=2)
    b = sub.truth["bundles"][0]
    info = b["bingham"]
    assert (info["kappa"], info["beta"], info["max_tilt"]) == (kappa, beta, 75.0)
    assert np.all(np.array(sub.truth["fibre_shapes"]) == "coil")
    th = np.radians(sub.truth["fibre_tilts"])
    wts = np.array(sub.truth["inner_radii"])**2 / np.cos(th)
    c = beta * np.sin(th)**2
    ecos2 = 0.5 + 0.5 * i1e(c / 2) / i0e(c / 2)
    per_fibre = {0: np.sin(th)**2 * (1 - ecos2), 1: np.sin(th)**2 * ecos2, 2: np.cos(th)**2}
    # the law, cut at 75 degrees: f sin(theta) on a grid
    t = np.linspace(0, math.radians(75), 3001)
    ph = np.linspace(0, 2 * math.pi, 721)[:-1]
    T, P = np.meshgrid(t, ph, indexing="ij")
    f = np.exp(kappa * np.cos(T)**2 + beta * np.sin(T)**2 * np.cos(P)**2) * np.sin(T)
    law = {0: np.sin(T)**2 * np.sin(P)**2, 1: np.sin(T)**2 * np.cos(P)**2, 2: np.cos(T)**2}
    scatter = np.array(b["scatter"])
    for axis in range(3):
        m, se = _weighted_mean(per_fibre[axis], wts)
        # the geometry's law is its coils': the rings sample each turn's azimuth at ~10-40 quantiles (~2e-5)
        assert scatter[axis, axis] == pytest.approx(m, abs=1e-4), axis
        want = float(np.trapezoid(np.sum(f * law[axis], axis=1), t) / np.trapezoid(np.sum(f, axis=1), t))
        assert abs(scatter[axis, axis] - want) <= 4.5 * se, (axis, scatter[axis, axis], want, se)
    assert scatter[1, 1] > scatter[0, 0] + 0.02  # dispersed more towards e than across the sheets
    with pytest.raises(ValueError, match="beta <= kappa"):
        substrates.crossing_bundles(n_fibres=30, icvf=0.1, bingham=(2.0, 3.0))
    with pytest.raises(ValueError, match="one of amplitude"):
        substrates.crossing_bundles(n_fibres=30, icvf=0.1, bingham=(6.0, 1.0), odi=0.1)


def test_bent_bundles_cross_at_tissue_density_and_disperse_in_their_plane():
    """Coherent bending (every fibre of a sheet on one sinusoid in the crossing plane, tilting up to 30 degrees)
    keeps the fibres as densely packed as straight ones: an intra-axonal fraction of 0.7 where the bundles
    cross, walls that never meet (the mesh check refuses crossing faces; walkers checked every step), and a
    planar orientation distribution equal to the sinusoid's."""
    sub = substrates.crossing_bundles(angles=(0, 90), n_fibres=120, icvf=0.7, bend=30, resolution=0.05, seed=2)
    assert sub.truth["icvf_exact"] == pytest.approx(0.7, abs=1e-3) and sub.truth["icvf_mesh"] > 0.69
    assert np.allclose(sub.truth["fibre_tilts"], 30.0, atol=1e-9)
    for b in sub.truth["bundles"]:
        assert b["bend_degrees"] == 30
        ph = np.linspace(0, 2 * math.pi, 20001)[:-1]
        tan_a = math.tan(math.radians(30)) * np.cos(ph)
        ds = np.sqrt(1 + tan_a**2)
        assert b["mean_cos2"] == pytest.approx(float(np.sum(ds / (1 + tan_a**2)) / np.sum(ds)), abs=1e-6)
        assert np.linalg.eigvalsh(np.array(b["scatter"]))[0] == pytest.approx(0.0, abs=1e-12)  # in the yz-plane
    s = sq.pgse(10e-3, 30e-3, bvalues=[0, 2e9], directions=[[0, 1, 0]])
    res = walker.simulate(sub, s, n_walkers=2000, n_steps=500, diffusivity=D0, seed=5, start="uniform",
                          check_every_step=True)
    assert res.escapes == 0 and res.compartment_counts["intra"] > 0.6 * 2000
    with pytest.raises(ValueError, match="bend"):
        substrates.crossing_bundles(n_fibres=30, icvf=0.2, bend=70)
    with pytest.raises(ValueError, match="wavelength"):
        substrates.crossing_bundles(n_fibres=60, icvf=0.5, bend=30, wavelength=1e-6)


def test_helix_turns_follow_the_wavelength_and_too_long_a_turn_is_refused_by_name():
    """Watson helices with ``wavelength``: whole turns no shorter than asked (the axial length of a turn is
    2 pi A / tan(theta)). A turn as long as the fibre's period widens the helices with the box, so no icvf
    fits: refused with the advice to shorten the wavelength (it made zero turns and NaN radii before)."""
    lam = 15e-6
    sub = substrates.crossing_bundles(angles=(0,), n_fibres=20, icvf=0.01, odi=0.2, mean_radius=0.5e-6,
                                      wavelength=lam, seed=3, resolution=0.05)
    T = sub.truth
    th, A = np.radians(T["fibre_tilts"]), np.asarray(T["fibre_amplitudes"])
    turn = 2 * np.pi * A / np.tan(th)
    period = T["bundles"][0]["fibre_period"]
    assert np.all(turn >= lam * (1 - 1e-9)) and np.all(turn < 2 * lam)
    assert np.allclose(period / turn, np.round(period / turn), atol=1e-6)       # whole turns per period
    with pytest.raises(ValueError, match="give a shorter wavelength"):
        substrates.crossing_bundles(angles=(0,), n_fibres=20, icvf=0.01, odi=0.2, mean_radius=0.5e-6,
                                    wavelength=1e-3, seed=3, resolution=0.05)


def test_beaded_crossing_holds_the_volume_of_its_beads():
    """Periodic beads (swelling 0.5) along crossing fibres: each tube's mesh volume is pi r^2 l ((1 + a/2)^2 +
    a^2 / 8), the mean of the squared radius profile, within the mesh's resolution; no beads with myelin."""
    a = 0.5
    sub = substrates.crossing_bundles(angles=(0, 90), n_fibres=40, icvf=0.5, bead_amplitude=a, resolution=0.05,
                                      seed=2)
    t = sub.truth
    assert t["icvf_exact"] == pytest.approx(0.5, rel=1e-6) and abs(t["mesh_volume_error"]) < 0.01
    period = np.array([b["fibre_period"] for b in t["bundles"]])[t["bundle_of_fibre"]]
    want = np.pi * np.array(t["inner_radii"])**2 * period * ((1 + a / 2)**2 + a**2 / 8)
    assert np.allclose(np.asarray(sub.component_volume) / want, 1, atol=0.01)
    with pytest.raises(ValueError, match="beads swell unmyelinated"):
        substrates.crossing_bundles(n_fibres=30, icvf=0.3, g_ratio=0.7, bead_amplitude=0.5)


def test_zero_escapes_on_a_dense_crossing_inside_and_outside():
    """5 x 10^6 walker-steps, containment checked after every step, walkers in both bundles and between them
    (with the dense crossing union of tests/test_unions.py, 10^7 checked steps on dense crossings; a coarse
    mesh: the check locates every walker after every step)."""
    sub = substrates.crossing_bundles(angles=(0, 90), n_fibres=40, icvf=0.7, seed=3, resolution=0.05)
    s = sq.pgse(10e-3, 30e-3, bvalues=[0, 2e9], directions=[[1, 0, 0]])
    n, steps = 5_000, 1000
    with pytest.warns(UserWarning, match="step length"):  # steps longer than the gaps: the hardest case for walls
        res = walker.simulate(sub, s, n_walkers=n, n_steps=steps, diffusivity=D0, seed=5, start="uniform",
                              check_every_step=True)
    assert res.escapes == 0 and n * steps >= 5e6
    assert res.compartment_counts["intra"] > 0.6 * n and res.compartment_counts["extra"] > 0.2 * n


def test_zero_escapes_in_the_union_representation():
    sub = substrates.crossing_bundles(angles=(0, 60), n_fibres=30, icvf=0.6, seed=2, representation="union")
    assert sub.family == "union" and sub.truth["crossing_angles"] == pytest.approx([60.0], abs=1e-9)
    s = sq.pgse(10e-3, 30e-3, bvalues=[0, 2e9], directions=[[0, 1, 0]])
    res = walker.simulate(sub, s, n_walkers=4000, n_steps=500, diffusivity=D0, seed=5, check_every_step=True)
    assert res.escapes == 0


def _one_bundle():
    return substrates.crossing_bundles(angles=(0,), n_fibres=24, icvf=0.65, seed=4)


def test_one_straight_bundle_gives_the_signal_of_the_same_exact_cylinders():
    """One bundle at zero dispersion against analytic cylinders at the same centres (the bundle runs along z)."""
    sub = _one_bundle()
    t = sub.truth
    starts = np.asarray(t["fibre_starts"])
    r = np.asarray(t["inner_radii"])
    cyl = substrates.cylinders(r, starts[:, :2], sub.box[:2])
    s = sq.pgse(8e-3, 20e-3, bvalues=[0, 1e9, 3e9], directions=[[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    for start in ("intra", "extra"):
        a = walker.simulate(sub, s, n_walkers=10_000, n_steps=400, diffusivity=D0, seed=7, start=start)
        b = walker.simulate(cyl, s, n_walkers=10_000, n_steps=400, diffusivity=D0, seed=8, start=start)
        assert a.escapes == 0 and b.escapes == 0
        se = np.hypot(a.stderr, b.stderr)
        # mesh allowance: polygons within polygon_radius_error of the circles; the signal of restricted
        # diffusion moves with radius as at most r^4 (narrow pulses: 4 eps (1 - S))
        allow = 4 * t["mesh_radius_error"] * np.abs(1 - b.signal)
        assert np.all(np.abs(a.signal - b.signal) <= 4.5 * se + allow), (start, a.signal, b.signal)


def test_extra_axonal_diffusion_along_a_straight_bundle_is_free():
    sub = _one_bundle()
    s = sq.pgse(10e-3, 60e-3, bvalues=[0, 0.5e9, 1e9], directions=[[0, 0, 1]])
    res = walker.simulate(sub, s, n_walkers=10_000, n_steps=200, diffusivity=D0, seed=9, start="extra")
    want = np.exp(-np.asarray([0, 0.5e9, 1e9]) * D0)
    assert res.escapes == 0
    assert np.all(np.abs(res.signal - want) <= 4.5 * res.stderr + 1e-12)


def test_myelinated_crossing_has_three_regions_and_saves(tmp_path):
    sub = substrates.crossing_bundles(angles=(0, 45), n_fibres=40, icvf=0.3, g_ratio=0.7, seed=1,
                                      permeability={"inner": 1e-5, "outer": 0.0})
    assert sub.region_names == ["myelin", "intra", "extra"]
    f = sub.volume_fractions()
    assert f["intra"] == pytest.approx(0.3, abs=1e-9)
    assert f["myelin"] == pytest.approx(sum(b["myelin_fraction"] for b in sub.truth["bundles"]), rel=1e-6)
    p = tmp_path / "x.h5"
    substrates.save_substrate(sub, p)
    back = substrates.load_substrate(p)
    assert back.truth["crossing_angles"] == sub.truth["crossing_angles"]
    assert np.array_equal(back.faces, sub.faces) and back.region_names == sub.region_names


def test_signals_per_bundle_along_and_across_the_fibres():
    """Walkers tagged by the bundle they start in: along its own fibres a bundle's intra-axonal signal is free
    diffusion exactly (straight fibres); across them it is restricted."""
    sub = substrates.crossing_bundles(angles=(0, 90), n_fibres=40, icvf=0.7, seed=3, resolution=0.05)
    u0 = np.asarray(sub.truth["bundles"][0]["direction"])
    b = np.array([0.5e9, 1e9])
    s = sq.pgse(5e-3, 20e-3, bvalues=b, directions=[u0, u0])
    res = walker.simulate(sub, s, n_walkers=6000, n_steps=200, diffusivity=D0, seed=2, start="uniform")
    assert set(res.group_signals) == {"intra.bundle_0", "intra.bundle_1", "extra"}
    assert sum(res.group_counts.values()) == 6000
    assert res.group_counts["extra"] == res.compartment_counts["extra"]
    along, se = res.group_signals["intra.bundle_0"], res.group_stderr["intra.bundle_0"]
    assert np.all(np.abs(along - np.exp(-b * D0)) <= 4.5 * se)
    # the other bundle runs perpendicular to the gradient: its water is held within ~1 um radii
    assert np.all(res.group_signals["intra.bundle_1"] > 0.9)
    assert res.escapes == 0


def test_new_crossing_inputs_are_refused_with_their_names():
    """Every input this family gained names itself when it is wrong."""
    bad = [({"odi": 0.1, "max_tilt": 90}, "max_tilt"), ({"bead_amplitude": 5.0}, "bead_amplitude"),
           ({"bead_amplitude": 0.5, "bead_spacing": -1e-6}, "bead_spacing"),
           ({"glia": -1, "representation": "union"}, "glia"),
           ({"glia": 2, "glia_radius": -1e-6, "representation": "union"}, "glia_radius"),
           ({"bingham": (6.0, 1.0, 2.0)}, "bingham"), ({"bend": -5}, "bend")]
    for kw, name in bad:
        with pytest.raises(ValueError, match=name):
            substrates.crossing_bundles(n_fibres=40, icvf=0.3, **kw)
    fibres = substrates.sphere_chain_axons(n_axons=4, mean_radius=1e-6, icvf=0.08, seed=0)
    with pytest.raises(TypeError, match="SphereUnion"):
        substrates.add_sphere_clusters(substrates.cylinder(1e-6), 1)
    with pytest.raises(ValueError, match="process_radius"):
        substrates.add_sphere_clusters(fibres, 1, soma_radius=1e-6, process_radius=2e-6)
    with pytest.raises(ValueError, match="smaller than the box"):
        substrates.add_sphere_clusters(fibres, 1, soma_radius=4e-6)
    with pytest.raises(ValueError, match="relaxivity"):
        substrates.sphere_union(fibres.centers, fibres.radii, fibres.box, relaxivity=[1e-6, 2e-6])
