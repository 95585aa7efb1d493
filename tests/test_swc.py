"""Neurons from SWC files: parsing and its errors, the mesh against analytic volume and surface, containment,
and the short-time S/V (Mitra) inside the cell."""

from __future__ import annotations

import math

import numpy as np
import pytest

import sequences as sq
import substrates as su
import walker
from substrates.swc import round_cone_sdf

UM = 1e-6
R_SOMA, R_DEND, L_DEND = 6.0, 2.0, 20.0  # um: soma radius; three dendrites from the soma's centre along x, y, z
RADIAL = "\n".join(["# synthetic: a soma and three straight dendrites",
                    f"1 1 0 0 0 {R_SOMA} -1",
                    f"2 3 0 0 {L_DEND} {R_DEND} 1",
                    f"3 3 {L_DEND} 0 0 {R_DEND} 1",
                    f"4 4 0 {-L_DEND} 0 {R_DEND} 1"]) + "\n"
# a branching tree: soma, a dendrite that forks twice, a thin tapering axon
BRANCHING = "\n".join([f"1 1 0 0 0 {R_SOMA} -1",
                       "2 3 0 0 10 1.5 1", "3 3 0 0 16 1.5 2",
                       "4 3 5 0 22 1.2 3", "5 3 9 0 30 1.0 4",
                       "6 3 -5 0 22 1.2 3", "7 3 -9 3 28 1.0 6", "8 3 -12 -3 30 0.9 6",
                       "9 2 0 0 -8 1.0 1", "10 2 0 0 -20 0.8 9"]) + "\n"


def _radial_truth():
    """Exact volume and area of the soma sphere with three capsule dendrites (R, r, L in m)."""
    R, r, L = R_SOMA * UM, R_DEND * UM, L_DEND * UM
    # one dendrite outside the sphere: the cylinder from the sphere's surface to L, and its hemispherical tip
    vol = math.pi * r * r * L - (2 * math.pi / 3) * (R**3 - (R * R - r * r) ** 1.5) + (2 / 3) * math.pi * r**3
    side = 2 * math.pi * r * (L - math.sqrt(R * R - r * r)) + 2 * math.pi * r * r
    cap = 2 * math.pi * R * (R - math.sqrt(R * R - r * r))  # sphere surface each dendrite covers
    return 4 / 3 * math.pi * R**3 + 3 * vol, 4 * math.pi * R**2 + 3 * (side - cap)


def test_read_swc_orders_and_summarises_the_tree():
    m = su.read_swc(BRANCHING)
    assert m.n_nodes == 10 and m.parents[0] == -1 and np.all(m.parents[1:] < np.arange(1, 10))
    s = m.summary()
    assert s["n_branch_points"] == 3 and s["n_tips"] == 4          # soma (2 neurites), two forks
    assert s["soma_radius"] == pytest.approx(R_SOMA * UM)
    assert set(s["length_by_type"]) == {"basal dendrite", "axon"}
    assert s["length_by_type"]["axon"] == pytest.approx(20 * UM)


def test_radial_cell_mesh_has_the_analytic_volume_and_surface():
    vol, area = _radial_truth()
    sub = su.from_swc(RADIAL, resolution=0.5 * UM)                 # a quarter of the dendrite radius
    assert sub.n_components == 1 and sub.region_names == ["intra"]
    # marching tetrahedra at h = r/4: measured -0.6 % on both; the error falls as h^2 (-0.2 % at r/8)
    assert sub.component_volume[0] == pytest.approx(vol, rel=0.01)
    assert sub.component_area[0] == pytest.approx(area, rel=0.01)
    assert sub.ground_truth()["morphology"]["n_tips"] == 3


def test_branching_cell_is_closed_and_holds_the_union_of_its_round_cones():
    sub = su.from_swc(BRANCHING, resolution=0.25 * UM)
    m = su.read_swc(BRANCHING)
    # reference volume: the exact implicit shape sampled at 400,000 points of its bounding box (SE ~0.3 %)
    rng = np.random.default_rng(0)
    lo = (m.points - m.radii[:, None]).min(axis=0)
    hi = (m.points + m.radii[:, None]).max(axis=0)
    P = lo + rng.uniform(size=(400_000, 3)) * (hi - lo)
    d = np.linalg.norm(P - m.points[0], axis=1) - m.radii[0]
    for i in range(1, m.n_nodes):
        j = m.parents[i]
        rb = m.radii[i] if m.types[j] == 1 else m.radii[j]
        d = np.minimum(d, round_cone_sdf(P, m.points[i], m.points[j], m.radii[i], rb))
    frac = np.mean(d < 0)
    ref = frac * np.prod(hi - lo)
    se = math.sqrt(frac * (1 - frac) / len(P)) * np.prod(hi - lo)
    # mesh error at h = r_min / 3.2: 1 % (the thinnest branches, r = 0.8 um, carry the largest relative error)
    assert abs(sub.component_volume[0] - ref) <= 4.5 * se + 0.01 * ref


def test_round_cone_distance_is_exact_for_a_cylinder_and_a_cone():
    a, b = np.zeros(3), np.array([0, 0, 10.0])
    p = np.array([[3.0, 0, 5], [0, 0, 13], [0, 4, -3], [0.5, 0, 5]])
    np.testing.assert_allclose(round_cone_sdf(p, a, b, 1.0, 1.0), [2.0, 2.0, 4.0, -0.5])
    # a cone from radius 2 to 1: the side's distance is along its normal
    sin_b = 0.1
    cos_b = math.sqrt(1 - sin_b**2)
    q = np.array([[4.0, 0, 5]])
    assert round_cone_sdf(q, a, b, 2.0, 1.0)[0] == pytest.approx(5 * sin_b + 4 * cos_b - 2.0)


def test_walkers_stay_in_the_neuron_and_feel_its_surface_to_volume_ratio():
    """Short times: D(t)/D0 = 1 - 4 (S/V) sqrt(D0 t) / (9 sqrt(pi)) in 3-D (Mitra et al. 1992), with the mesh's
    own S/V; the curvature term (mean curvature <= 1/r) is the reference's error."""
    D0 = 2e-9
    sub = su.from_swc(RADIAL, resolution=0.5 * UM)
    sv = sub.component_area[0] / sub.component_volume[0]
    dt = 1e-6
    times = dt * np.array([10, 20, 40, 80])
    res = walker.simulate(sub, sq.pgse(2 * dt, 4 * dt, bvalues=[0.0], directions=[1, 0, 0], echo_time=80 * dt,
                                       dt=dt), n_walkers=20_000, diffusivity=D0, n_steps=80, seed=3,
                          record_times=times, check_every_step=True)
    assert res.escapes == 0 and res.reflections > 0
    r2 = (res.displacements**2).sum(axis=-1)
    Dt = r2.mean(axis=0) / (6 * D0 * times)
    se = r2.std(axis=0) / math.sqrt(len(r2)) / (6 * D0 * times)
    mitra = 1 - 4 * sv * np.sqrt(D0 * times) / (9 * math.sqrt(math.pi))
    curvature = sv * (1 / (R_DEND * UM)) * D0 * times / 12
    step = res.provenance["step_length"]
    allow = 0.08 * step * sv / 3                              # the finite step's wall bias (lesson 04)
    assert 1 - Dt[-1] > 10 * se[-1]                           # the walls are felt
    assert np.all(np.abs(Dt - mitra) <= 4.5 * se + curvature + allow), (Dt, mitra, se)


def test_prune_resample_scale_and_several_cells_in_a_box():
    m = su.read_swc(BRANCHING)
    pruned = su.prune_morphology(m, 10 * UM)                  # the 7.8 um twig goes, the 11 um one stays
    assert pruned.n_nodes == m.n_nodes - 1 and pruned.summary()["n_tips"] == 3
    fine = su.resample_morphology(m, 1 * UM)
    assert fine.n_nodes > 40
    # the new nodes lie on the old polyline; only chords across its bends are shorter
    assert fine.summary()["total_length"] == pytest.approx(m.summary()["total_length"], rel=1e-3)
    assert fine.summary()["n_branch_points"] == m.summary()["n_branch_points"]
    thick = su.from_swc(RADIAL, resolution=0.5 * UM, radius_scale=1.2)
    assert thick.ground_truth()["radius_scale"] == 1.2
    box = su.from_swc(BRANCHING, resolution=0.4 * UM, min_radius=0.8 * UM, n_cells=3, box=60 * UM, seed=2)
    assert box.n_components == 3 and box.region_names == ["intra", "extra"]
    assert np.allclose(box.component_volume, box.component_volume[0])
    res = walker.simulate(box, sq.pgse(10e-6, 20e-6, bvalues=[0.0], directions=[1, 0, 0], echo_time=1e-3,
                                       dt=5e-6), n_walkers=500, diffusivity=2e-9, n_steps=200, seed=1,
                          start="uniform", check_every_step=True)
    assert res.escapes == 0


@pytest.mark.parametrize("text, match", [
    ("1 1 0 0 0 5 -1\n2 3 0 0 10 1 7\n", "line 2: parent 7"),
    ("1 1 0 0 0 5 -1\n2 3 0 0 10 1 3\n3 3 0 0 20 1 2\n", "line 2: node is on a cycle"),
    ("1 1 0 0 0 5 -1\n2 3 0 0 10 0 1\n", "line 2: radius 0"),
    ("1 1 0 0 0 5 -1\n1 3 0 0 10 1 1\n", "line 2: node id 1 repeats line 1"),
    ("1 1 0 0 0 5 -1\n2 3 0 0 ten 1 1\n", "line 2: expected 'id type x y z radius parent'"),
    ("1 1 0 0 0 5e-6 -1\n2 3 0 0 1e-5 1e-6 1\n", "units"),          # metres read as micrometres
    ("1 1 0 0 0 5 -1\n2 3 0 0 10 0 1\n", "1 such nodes.*min_radius="),    # the fix is named
])
def test_bad_swc_is_refused_with_the_line_named(text, match):
    with pytest.raises(ValueError, match=match):
        su.read_swc(text)


def test_swc_file_on_disk_and_grid_size_guard(tmp_path):
    p = tmp_path / "cell.swc"
    p.write_text(RADIAL)
    assert su.read_swc(p).source == str(p)
    with pytest.raises(FileNotFoundError):
        su.read_swc(tmp_path / "missing.swc")
    with pytest.raises(ValueError, match="coarsen resolution"):
        su.from_swc(p, resolution=0.01 * UM)
