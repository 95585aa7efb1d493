"""Mesh substrates: import and checks, exact location, containment, physics against exact references.

Physics comparisons follow the suite's rule |S - S_ref| <= 4.5 SE + reference
error + discretisation allowance; the allowance of a meshed wall is the change
of the exact signal when the radius moves by the mesh's own radius error, so it
shrinks as the mesh refines.
"""

import math
import os
import warnings

import numpy as np
import pytest
import trimesh

import sequences as sq
import substrates as su
import validation as va
import walker
from substrates import generators as gen

D0 = 2e-9
R = 5e-6
Z = 4.5


@pytest.fixture(scope="module")
def r1_scheme():
    return sq.pgse(10e-3, 30e-3, gradient_strength=[0.04, 0.08, 0.16, 0.30], directions=[1, 0, 0], dt=20e-6)


def _allowance(scheme, geometry, err):
    """|S(R (1 +- err)) - S(R)|: what the mesh's radius error can move the exact signal."""
    s0 = va.mf_signal(scheme, geometry, R, D0)
    return np.maximum(np.abs(va.mf_signal(scheme, geometry, R * (1 + err), D0) - s0),
                      np.abs(va.mf_signal(scheme, geometry, R * (1 - err), D0) - s0))


def _check(sig, se, ref, eps):
    dev = np.abs(sig - ref)
    bound = Z * se + eps + 1e-6
    assert np.all(dev <= bound), f"|S - ref| = {dev} exceeds {bound} (S = {sig}, ref = {ref})"


# ------------------------------------------------------------------ physics
@pytest.mark.parametrize("subdivisions", [3, 4])
def test_meshed_sphere_matches_matrix_formalism(r1_scheme, subdivisions):
    sub = gen.meshed_sphere(R, subdivisions=subdivisions)
    r = walker.simulate(sub, r1_scheme, n_walkers=20_000, diffusivity=D0, n_steps=2000, seed=11)
    err = sub.ground_truth()["mesh_radius_error"]
    assert err < (0.02 if subdivisions == 3 else 0.005)
    _check(r.signal, r.stderr, va.mf_signal(r1_scheme, "sphere", R, D0), _allowance(r1_scheme, "sphere", err))
    assert r.escapes == 0 and r.truncated_steps == 0 and r.reflections > 0


@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_meshed_cylinder_matches_matrix_formalism(r1_scheme):
    sub = gen.meshed_cylinder(R, resolution=0.005)
    r = walker.simulate(sub, r1_scheme, n_walkers=20_000, diffusivity=D0, n_steps=2000, seed=12)
    err = sub.ground_truth()["mesh_radius_error"]
    _check(r.signal, r.stderr, va.mf_signal(r1_scheme, "cylinder", R, D0), _allowance(r1_scheme, "cylinder", err))
    # along the axis the periodic tube is free
    s_par = sq.pgse(10e-3, 30e-3, bvalues=[1e9], directions=[0, 0, 1])
    rp = walker.simulate(sub, s_par, n_walkers=20_000, diffusivity=D0, n_steps=500, seed=13)
    _check(rp.signal, rp.stderr, np.exp(-rp.discrete_bvalues * D0), 0.0)
    assert r.escapes == 0 and rp.escapes == 0


@pytest.mark.filterwarnings("ignore:n_steps=:UserWarning")
@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_mesh_and_analytic_cylinders_agree_in_a_packed_box():
    # the same packing as exact cylinders and as a fine mesh: intra and extra signals agree within the errors
    exact = gen.packed_axons(12, mean_radius=2e-6, icvf=0.6, seed=3)
    meshed = gen.packed_axons(12, mean_radius=2e-6, icvf=0.6, seed=3, as_mesh=True, resolution=0.003)
    s = sq.pgse(8e-3, 25e-3, bvalues=[1e9, 3e9], directions=[[1, 0, 0], [0, 1, 0]])
    for start in ("intra", "extra"):
        a = walker.simulate(exact, s, n_walkers=15_000, diffusivity=D0, n_steps=500, seed=4, start=start)
        m = walker.simulate(meshed, s, n_walkers=15_000, diffusivity=D0, n_steps=500, seed=5, start=start)
        se = np.hypot(a.stderr, m.stderr)
        assert np.all(np.abs(a.signal - m.signal) <= Z * se + 0.004), (start, a.signal, m.signal)
        assert m.escapes == 0
    vf = meshed.volume_fractions()["intra"]
    assert abs(vf - exact.volume_fractions()["intra"]) < 1e-3


# ------------------------------------------------------------------ containment
def _slab(thick, size=4e-6):
    b = trimesh.creation.box(extents=[size, size, thick])
    return su.mesh_substrate(np.asarray(b.vertices) + size, np.asarray(b.faces))


def _spiky():
    # a sharp double cone: 8 um long, 0.3 um across at the waist, tips of ~2 degrees
    v = [[0, 0, -4e-6], [0, 0, 4e-6]]
    n = 6
    for k in range(n):
        a = 2 * np.pi * k / n
        v.append([0.15e-6 * np.cos(a), 0.15e-6 * np.sin(a), 0.0])
    f = []
    for k in range(n):
        a, b = 2 + k, 2 + (k + 1) % n
        f += [[0, b, a], [1, a, b]]
    return su.mesh_substrate(np.array(v) + 5e-6, np.array(f))


@pytest.mark.parametrize("make,name", [(lambda: _slab(0.2e-6), "slab 0.2 um"), (_spiky, "needle"),
                                       (lambda: gen.meshed_cylinder(0.1e-6, length=1e-6, resolution=0.05),
                                        "tube r 0.1 um")])
@pytest.mark.filterwarnings("ignore:n_steps=:UserWarning")
@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_zero_escapes_on_thin_and_sharp_meshes(make, name):
    sub = make()
    s = sq.pgse(5e-3, 10e-3, bvalues=[1e9])
    # 1e8 walker-steps over the three shapes, steps up to several times the thickness, exact end-of-walk
    # location of every walker; no safety net in the kernel to hide a leak
    n = {"slab 0.2 um": 50_000, "needle": 50_000, "tube r 0.1 um": 20_000}[name]
    r = walker.simulate(sub, s, n_walkers=n, diffusivity=D0, n_steps=800 if n == 50_000 else 1000, seed=21)
    assert r.escapes == 0, name
    assert r.reflections > 10 * n, name
    # and the same checked after every step on a shorter run
    r2 = walker.simulate(sub, s, n_walkers=2000, diffusivity=D0, n_steps=500, seed=22, check_every_step=True)
    assert r2.escapes == 0, name


@pytest.mark.filterwarnings("ignore:n_steps=:UserWarning")
@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_zero_escapes_in_periodic_undulating_bundle():
    sub = gen.undulating_axons(6, mean_radius=0.5e-6, amplitude=1e-6, wavelength=8e-6, icvf=0.5,
                               phase="coherent", seed=2)
    s = sq.pgse(5e-3, 10e-3, bvalues=[1e9])
    for start in ("intra", "extra"):
        r = walker.simulate(sub, s, n_walkers=10_000, diffusivity=D0, n_steps=1000, seed=23, start=start)
        assert r.escapes == 0 and r.reflections > 0


@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_threads_and_seed_reproduce_bit_for_bit():
    sub = gen.meshed_sphere(R, subdivisions=3)
    s = sq.pgse(5e-3, 20e-3, bvalues=[1e9, 2e9])
    a = walker.simulate(sub, s, n_walkers=3000, diffusivity=D0, n_steps=300, seed=9)
    b = walker.simulate(sub, s, n_walkers=3000, diffusivity=D0, n_steps=300, seed=9, parallel=False)
    c = walker.simulate(sub, s, n_walkers=3000, diffusivity=D0, n_steps=300, seed=9)
    assert np.array_equal(a.signal, b.signal) and np.array_equal(a.signal, c.signal)
    assert np.array_equal(a.final_positions, b.final_positions)


# ------------------------------------------------------------------ location, volumes, nesting
def test_location_is_exact_against_the_analytic_sphere():
    sub = gen.meshed_sphere(R, subdivisions=2)
    rng = np.random.default_rng(0)
    p = rng.uniform(-1.2 * R, 1.2 * R, (200_000, 3))
    loc = sub.locate(p)
    tm = sub.to_trimesh()
    # compare with the exact point-in-polyhedron answer where trimesh's ray test is unambiguous: a solid-angle sum
    sample = p[:2000]
    w = _winding(tm.vertices, tm.faces, sample)
    assert np.array_equal(loc[:2000] == 0, w > 0.5)
    # points on the mesh's own vertices/edges do not break location of their neighbours
    edge_mid = tm.vertices[tm.edges_unique].mean(axis=1)
    inward = edge_mid * (1 - 1e-9)
    assert np.all(sub.locate(inward) == 0)
    assert np.all(sub.locate(edge_mid * (1 + 1e-9)) == -1)


def _winding(v, f, p):
    a = v[f[:, 0]][None] - p[:, None]
    b = v[f[:, 1]][None] - p[:, None]
    c = v[f[:, 2]][None] - p[:, None]
    la, lb, lc = (np.linalg.norm(x, axis=2) for x in (a, b, c))
    det = np.einsum("ijk,ijk->ij", a, np.cross(b, c))
    den = la * lb * lc + np.einsum("ijk,ijk->ij", a, b) * lc + np.einsum("ijk,ijk->ij", b, c) * la \
        + np.einsum("ijk,ijk->ij", c, a) * lb
    return np.arctan2(det, den).sum(axis=1) / (2 * np.pi)


@pytest.mark.filterwarnings("ignore:n_steps=:UserWarning")
@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_volume_fractions_walkers_mesh_and_generator_agree():
    sub = gen.beaded_axons(6, mean_radius=0.8e-6, bead_amplitude=0.6, bead_spacing=6e-6, icvf=0.4, n_beads=2,
                           seed=1)
    gt = sub.ground_truth()
    assert abs(gt["icvf_mesh"] - gt["icvf_exact"]) < 2 * gt["mesh_radius_error"] * gt["icvf_exact"]
    assert abs(sub.volume_fractions()["intra"] - gt["icvf_mesh"]) < 1e-12
    s = sq.pgse(2e-3, 4e-3, bvalues=[0.0])
    N = 60_000
    r = walker.simulate(sub, s, n_walkers=N, diffusivity=D0, n_steps=10, seed=3, start="uniform")
    f = r.ground_truth["signal_fractions"]["intra"]
    assert abs(f - gt["icvf_mesh"]) <= Z * math.sqrt(f * (1 - f) / N)


@pytest.mark.filterwarnings("ignore:n_steps=:UserWarning")
@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_nested_components_nucleus_in_soma():
    outer_v, outer_f = su.meshing.icosphere(4e-6, center=(6e-6, 6e-6, 6e-6), subdivisions=3)
    inner_v, inner_f = su.meshing.icosphere(1.5e-6, center=(6.5e-6, 6e-6, 6e-6), subdivisions=2)
    v = np.concatenate([outer_v, inner_v])
    f = np.concatenate([outer_f, inner_f + len(outer_v)])
    sub = su.mesh_substrate(v, f, box=[12e-6] * 3)
    assert sub.region_names == ["intra", "inner", "extra"]
    assert list(sub.depth) == [0, 1] and list(sub.parent) == [-1, 0]
    vols = sub.region_volumes()
    assert vols["inner"] == pytest.approx(sub.component_volume[1])
    assert vols["intra"] == pytest.approx(sub.component_volume[0] - sub.component_volume[1])
    s = sq.pgse(3e-3, 8e-3, bvalues=[1e9])
    for start in ("inner", "intra", "extra"):
        r = walker.simulate(sub, s, n_walkers=5000, diffusivity={"intra": 1e-9, "inner": 0.5e-9, "extra": 2e-9},
                            n_steps=400, seed=1, start=start)
        assert r.escapes == 0 and list(r.compartment_signals) == [start]
    r = walker.simulate(sub, s, n_walkers=20_000, diffusivity=D0, n_steps=5, seed=1, start="uniform")
    fr = r.ground_truth["signal_fractions"]
    for name, vf in sub.volume_fractions().items():
        assert abs(fr[name] - vf) <= Z * math.sqrt(vf * (1 - vf) / 20_000)


# ------------------------------------------------------------------ permeable meshes
@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_permeable_mesh_spheres_keep_equilibrium_and_match_analytic():
    # spheres on a cubic lattice, meshed finely, vs the exact analytic lattice: same kappa, same signal
    a = 8e-6
    Rs = 3e-6
    v, f = su.meshing.icosphere(Rs, center=(a / 2, a / 2, a / 2), subdivisions=4)
    kappa = 2e-5
    meshed = su.mesh_substrate(v, f, box=[a] * 3, permeability=kappa)
    exact = su.sphere_lattice(Rs, 4 / 3 * np.pi * Rs**3 / a**3, permeability=kappa)
    s = sq.pgse(5e-3, 20e-3, bvalues=[0.5e9, 2e9], directions=[1, 0, 0])
    kw = dict(n_walkers=20_000, diffusivity={"intra": 1e-9, "extra": 2e-9}, n_steps=500, start="uniform")
    m = walker.simulate(meshed, s, seed=31, **kw)
    e = walker.simulate(exact, s, seed=32, **kw)
    assert m.transits > 1000 and m.escapes == 0
    se = np.hypot(m.stderr, e.stderr)
    assert np.all(np.abs(m.signal - e.signal) <= Z * se + 0.003), (m.signal, e.signal)
    # detailed balance: a uniform start stays uniform
    vf = meshed.volume_fractions()["intra"]
    assert abs(m.final_fractions["intra"] - vf) <= Z * math.sqrt(vf * (1 - vf) / 20_000)


# ------------------------------------------------------------------ import, formats, bad meshes
@pytest.fixture(scope="module")
def sphere_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("meshes")
    m = trimesh.creation.icosphere(subdivisions=2, radius=5.0)  # micrometres
    paths = {}
    for ext in ("stl", "obj", "off"):
        paths[ext] = str(d / f"s.{ext}")
        m.export(paths[ext])
    paths["ply_binary"] = str(d / "sb.ply")
    m.export(paths["ply_binary"], encoding="binary")
    paths["ply_ascii"] = str(d / "sa.ply")
    m.export(paths["ply_ascii"], encoding="ascii")
    return paths, float(m.volume) * 1e-18


@pytest.mark.parametrize("fmt", ["stl", "obj", "off", "ply_binary", "ply_ascii"])
def test_formats_load_to_the_same_volume(sphere_files, fmt):
    paths, vol = sphere_files
    sub = su.from_mesh(paths[fmt], units="um")
    assert sub.n_components == 1 and len(sub.faces) == 320
    assert sub.component_volume[0] == pytest.approx(vol, rel=1e-6)


def _write_ply(path, v, faces):
    with open(path, "w") as fh:
        fh.write(f"ply\nformat ascii 1.0\nelement vertex {len(v)}\nproperty double x\nproperty double y\n"
                 f"property double z\nelement face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n")
        for p in v:
            fh.write("%.17g %.17g %.17g\n" % tuple(p))
        for q in faces:
            fh.write(f"{len(q)} " + " ".join(map(str, q)) + "\n")


CUBE_V = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], float) * 4
CUBE_Q = [[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]]


def test_quads_are_triangulated_with_a_warning(tmp_path):
    p = str(tmp_path / "cube.ply")
    _write_ply(p, CUBE_V, CUBE_Q)
    with pytest.warns(UserWarning, match="quads"):
        sub = su.from_mesh(p, units="um")
    assert len(sub.faces) == 12 and sub.component_volume[0] == pytest.approx(64e-18)


@pytest.mark.parametrize("units,match", [("mm", "wrong by 10\\^3 or 10\\^6"), ("m", "wrong by 10\\^3 or 10\\^6"),
                                         ("nm", "wrong by 10\\^3 or 10\\^6")])
def test_wrong_units_are_named(sphere_files, units, match):
    paths, _ = sphere_files
    with pytest.raises(su.MeshError, match=match):
        su.from_mesh(paths["ply_binary"], units=units)


def test_bad_meshes_name_the_problem(tmp_path):
    m = trimesh.creation.icosphere(subdivisions=2, radius=5.0)
    v, f = np.asarray(m.vertices), np.asarray(m.faces)
    um = 1e-6
    with pytest.raises(su.MeshError, match="open"):
        su.mesh_substrate(v * um, f[1:])
    with pytest.raises(su.MeshError, match="inverted"):
        su.mesh_substrate(v * um, f[:, ::-1])
    fixed = su.mesh_substrate(v * um, f[:, ::-1], repair=True)
    assert fixed.component_volume[0] > 0 and "flipped 1 inverted components" in fixed.description["repairs"]
    bad = f.copy()
    bad[:10] = bad[:10, ::-1]
    with pytest.raises(su.MeshError, match="winding is inconsistent"):
        su.mesh_substrate(v * um, bad)
    # two cubes sharing an edge: that edge has four faces
    c = trimesh.creation.box(extents=[2, 2, 2])
    c2 = c.copy()
    c2.apply_translation([2, 2, 0])
    both = trimesh.util.concatenate([c, c2])
    both.merge_vertices()
    with pytest.raises(su.MeshError, match="not manifold"):
        su.mesh_substrate(np.asarray(both.vertices) * um, np.asarray(both.faces))
    with pytest.raises(su.MeshError, match="degenerate"):
        su.mesh_substrate(v * um, np.concatenate([f, [[0, 0, 1]]]))
    # two overlapping spheres: faces cross
    m2 = m.copy()
    m2.apply_translation([3, 0, 0])
    both = trimesh.util.concatenate([m, m2])
    with pytest.raises(su.MeshError, match="intersect"):
        su.mesh_substrate(np.asarray(both.vertices) * um, np.asarray(both.faces))
    with pytest.raises(su.MeshError, match="x face"):
        gen_v, gen_f = su.meshing.periodic_tube(np.column_stack([np.zeros(8), np.full(8, 2e-6), np.arange(8) * 1e-6]),
                                                np.tile([0, 0, 1.0], (8, 1)), np.full(8, 1e-6), 8e-6, 12)
        su.mesh_substrate(gen_v[:, [2, 1, 0]], gen_f[:, ::-1], box=[8e-6, 8e-6, 8e-6])
    # a closed body wider than the periodic box would overlap its own image; a tube glued to its image across
    # the box (the same tube along z) is no such body
    ball = su.meshed_sphere(3e-6, subdivisions=2)
    with pytest.raises(su.MeshError, match="overlap its own periodic image"):
        su.mesh_substrate(np.asarray(ball.vertices) + 3e-6, np.asarray(ball.faces), box=[5e-6] * 3)
    assert su.mesh_substrate(gen_v, gen_f, box=[8e-6, 8e-6, 8e-6]).component_volume[0] > 0


# ------------------------------------------------------------------ generators
def test_generators_are_reproducible_and_reload(tmp_path):
    a = gen.undulating_axons(5, amplitude=0.5e-6, wavelength=10e-6, icvf=0.3, seed=4, shape="helix")
    b = gen.undulating_axons(5, amplitude=0.5e-6, wavelength=10e-6, icvf=0.3, seed=4, shape="helix")
    assert np.array_equal(a.vertices, b.vertices)
    gt = a.ground_truth()
    assert gt["wavelength"] == 10e-6 and gt["amplitude"] == 0.5e-6 and len(gt["inner_radii"]) == 5
    assert gt["tortuosity"][0] == pytest.approx(math.sqrt(1 + (0.5e-6 * 2 * np.pi / 10e-6) ** 2))
    p = str(tmp_path / "u.h5")
    su.save_substrate(a, p)
    c = su.load_substrate(p)
    assert np.array_equal(c.vertices, a.vertices) and c.ground_truth() == gt
    cyl = gen.packed_axons(50, icvf=0.78, seed=1)
    su.save_substrate(cyl, str(tmp_path / "c.h5"))
    cyl2 = su.load_substrate(str(tmp_path / "c.h5"))
    assert np.array_equal(cyl2.radii, cyl.radii) and cyl2.volume_fractions() == cyl.volume_fractions()


def test_a_failed_save_leaves_the_previous_file_whole_and_no_partial_file(tmp_path, monkeypatch):
    from dataclasses import replace
    p = tmp_path / "s.h5"
    sub = su.cylinder_lattice(2e-6, 0.5)
    su.save_substrate(sub, p)
    before = p.read_bytes()
    family = su.FAMILIES["analytic"]

    def fails(s, h):
        family.write(s, h)
        raise OSError("disk full")

    monkeypatch.setitem(su.FAMILIES, "analytic", replace(family, write=fails))
    with pytest.raises(OSError, match="disk full"):
        su.save_substrate(su.cylinder_lattice(3e-6, 0.4), p)
    assert p.read_bytes() == before and [f.name for f in tmp_path.iterdir()] == ["s.h5"]
    monkeypatch.undo()
    assert np.array_equal(su.load_substrate(p).radii, sub.radii)


def test_packed_axons_reach_high_icvf_and_refuse_impossible():
    sub = gen.packed_axons(100, icvf=0.8, seed=2)
    assert sub.volume_fractions()["intra"] == pytest.approx(0.8)
    assert sub.cells.min_gap > 0
    with pytest.raises(ValueError, match="impossible"):
        gen.packed_axons(100, icvf=0.95)
    with pytest.raises(ValueError, match="random close packing"):
        gen.packed_axons(100, icvf=0.88)
    with pytest.raises(ValueError, match="cannot reach icvf"):
        gen.undulating_axons(20, amplitude=3e-6, icvf=0.7)


@pytest.mark.filterwarnings("ignore:n_steps=:UserWarning")
@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_dispersed_axons_follow_watson_and_stay_contained():
    odi = 0.2
    sub = gen.packed_axons(30, icvf=0.3, dispersion=odi, seed=3, resolution=0.04)
    gt = sub.ground_truth()
    # E[cos^2] of a Watson distribution with kappa = cot(pi ODI / 2), against the drawn axes
    kappa = 1 / math.tan(math.pi * odi / 2)
    t = np.linspace(0, 1, 20001)
    w = np.exp(kappa * t**2)
    expect = np.trapezoid(w * t**2, t) / np.trapezoid(w, t)
    c2 = np.asarray(gt["axes"])[:, 2] ** 2
    assert abs(gt["mean_cos2"] - expect) <= Z * c2.std() / math.sqrt(len(c2))
    assert gt["watson_kappa"] == pytest.approx(kappa)
    assert abs(gt["icvf_mesh"] - 0.3) < 0.3 * 2 * gt["mesh_radius_error"] + 1e-3
    s = sq.pgse(3e-3, 10e-3, bvalues=[1e9])
    for start in ("intra", "extra"):
        r = walker.simulate(sub, s, n_walkers=4000, diffusivity=D0, n_steps=300, seed=1, start=start)
        assert r.escapes == 0


@pytest.mark.filterwarnings("ignore:n_steps=:UserWarning")
@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_somas_with_neurites_truth():
    sub = gen.somas_with_neurites(n_cells=3, soma_radius=3e-6, soma_radius_sd=0.0, neurites=2,
                                  neurite_radius=0.8e-6, neurite_length=2e-6, volume_fraction=0.1, seed=5)
    gt = sub.ground_truth()
    assert sub.n_components == 3 and gt["soma_radii"] == [3e-6] * 3
    # the mesh volume matches the primitives within the marching-tetrahedra and fillet error
    exact = 1 - gt["fractions_exact"]["extra"]
    assert abs(gt["icvf_mesh"] / exact - 1) < 0.03
    s = sq.pgse(3e-3, 10e-3, bvalues=[1e9])
    r = walker.simulate(sub, s, n_walkers=5000, diffusivity=D0, n_steps=300, seed=1, start="intra")
    assert r.escapes == 0
    # bare somas are exact analytic spheres
    bare = gen.somas_with_neurites(n_cells=4, neurites=0, volume_fraction=0.2, seed=5)
    assert bare.kind == su.SPHERES and len(bare.radii) == 4 and bare.cells.min_gap > 0
    assert bare.volume_fractions()["intra"] == pytest.approx(0.2)


@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_labelled_volume_to_meshes():
    # two touching boxes of labels and a ball: three closed, separate components
    vol = np.zeros((24, 24, 24), np.int32)
    vol[2:10, 2:20, 2:20] = 1
    vol[10:18, 2:20, 2:20] = 2
    g = np.indices(vol.shape) - 18.5
    vol[(g**2).sum(0) < 16] = 3
    sub = su.from_labels(vol, 50e-9)
    assert sub.n_components == 3 and sorted(sub.depth) == [0, 0, 0]
    # each volume within a layer of (1 - level) voxel of its voxel count (sorted: components and labels pair up)
    assert np.all(np.abs(np.sort(sub.component_volume) / np.sort(sub.truth["label_voxel_volume"]) - 1) < 0.25)
    s = sq.pgse(1e-3, 3e-3, bvalues=[1e9])
    r = walker.simulate(sub, s, n_walkers=3000, diffusivity=D0, n_steps=400, seed=2)
    assert r.escapes == 0
    with pytest.raises(ValueError, match="metres"):
        su.from_labels(vol, 50.0)


def test_plot_substrate_draws_every_kind(tmp_path):
    import matplotlib.pyplot as plt
    for sub in (gen.packed_axons(10, icvf=0.6), gen.meshed_sphere(R, 2),
                gen.beaded_axons(3, icvf=0.3, n_beads=2, bead_spacing=5e-6)):
        fig = su.plot_substrate(sub)
        fig.savefig(str(tmp_path / "x.png"))
        plt.close(fig)


def test_grid_columns_match_their_plain_numpy_definition():
    """The grid built from the one-pass (numba) image bounds and the counting-sort columns equals what the
    numpy definitions give: cells from numpy's bounds of the images, and columns ordered by (column,
    component, image) after expanding every image over its (y, z) range."""
    from substrates.meshgrid import build_columns, build_grid
    sub = su.crossing_bundles(angles=(0, 90), n_fibres=40, icvf=0.6, seed=1, resolution=0.05)
    g = sub.grid
    img = su.mesh.image_vertices(sub.vertices, sub.faces, g.face, g.tri)
    lo_t, hi_t, pad, n = img.min(axis=1), img.max(axis=1), 1e-6 * float(g.h.min()), g.n
    cells = build_grid(g.tri, lo_t, hi_t, g.lo, g.h, n, pad)          # from numpy's bounds: the grid's cells
    assert np.array_equal(cells[0], g.start) and np.array_equal(cells[1], g.items)
    start, items = build_columns(lo_t, hi_t, g.comp, g.lo, g.h, n, pad)
    r = [np.clip(np.floor((b - s * pad - g.lo[a]) / g.h[a]).astype(np.int64), 0, n[a] - 1)
         for a in (1, 2) for b, s in ((lo_t[:, a], 1), (hi_t[:, a], -1))]
    j0, j1, k0, k1 = r
    pairs = [(j * n[2] + k, int(g.comp[q]), q) for q in range(len(lo_t))
             for j in range(j0[q], j1[q] + 1) for k in range(k0[q], k1[q] + 1)]
    pairs.sort()
    assert np.array_equal(items, [p[2] for p in pairs])
    assert np.array_equal(start, np.searchsorted([p[0] for p in pairs], np.arange(n[1] * n[2] + 1)))
    assert np.array_equal(start, g.cstart) and np.array_equal(items, g.citems)    # what the substrate holds


def test_unique_rows_ranks_rows_as_numpy_does_packed_or_not():
    """unique_rows gives np.unique(axis=0)'s inverse and counts for rows that pack into one integer (small
    ranges, negative values included) and for rows that do not (ranges past 62 bits together)."""
    from substrates.mesh import unique_rows
    rng = np.random.default_rng(3)
    for rows in (rng.integers(-5, 6, size=(5000, 3)), rng.integers(0, 2**40, size=(3000, 2)) // 2**30,
                 rng.integers(-2**40, 2**40, size=(3000, 3)) // 2**38, rng.integers(0, 2**40, size=(2000, 3))):
        rows = np.vstack([rows, rows[::7]])                  # repeated rows
        inv, cnt = unique_rows(rows)
        _, inv_np, cnt_np = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
        assert np.array_equal(inv, inv_np.ravel()) and np.array_equal(cnt, cnt_np)
