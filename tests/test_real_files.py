"""Files as other software writes them (issue 28): SWC reconstructions with radius-0 nodes, several trees,
branches that overlap and enclose voids or reach past the soma; meshes from marching-cubes pipelines with
double-sided fins and zero-area slivers. Each is taken (or repaired) without changing what a well-formed
file gives, or refused with advice naming the argument that fixes it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

import sequences as sq
import substrates as su
import walker
from substrates.meshing import marching_tetrahedra

UM = 1e-6
D0 = 2e-9


def _contained(sub, seed: int = 1) -> walker.SimulationResult:
    """A short walk checked after every step (walkers start inside the cell)."""
    s = sq.pgse(20e-6, 40e-6, bvalues=[0.0], directions=[1, 0, 0], echo_time=0.4e-3, dt=2e-6)
    return walker.simulate(sub, s, n_walkers=2000, diffusivity=D0, n_steps=200, seed=seed, check_every_step=True)


# ------------------------------------------------------------------------------------------ SWC: radius 0
def _zero_radius_swc(n_zero: int) -> str:
    """A soma and a 30 um dendrite whose last ``n_zero`` nodes have no radius (0), as NeuroMorpho files do."""
    rows = ["1 1 0 0 0 4 -1"]
    for k in range(1, n_zero + 2):
        r = 1.0 if k == 1 else 0.0
        rows.append(f"{k + 1} 3 0 0 {4 + 26 * k / (n_zero + 1):.6f} {r} {k}")
    return "\n".join(rows) + "\n"


def test_zero_radii_without_min_radius_are_refused_naming_file_count_and_fix(tmp_path):
    p = tmp_path / "neuromorpho.swc"
    p.write_text(_zero_radius_swc(300))
    for call in (lambda: su.read_swc(p), lambda: su.from_swc(p)):
        with pytest.raises(ValueError, match=r"neuromorpho\.swc, line 3: radius 0 of node 3 .*300 such nodes.*"
                                             r"min_radius="):
            call()


def test_min_radius_raises_zero_radii_in_from_swc_and_read_swc(tmp_path):
    p = tmp_path / "neuromorpho.swc"
    p.write_text(_zero_radius_swc(300))
    sub = su.from_swc(p, min_radius=0.5 * UM, resolution=0.25 * UM)
    assert sub.n_components == 1
    note = " ".join(sub.description["notes"])
    assert "raised 300 node radii below min_radius (300 of them <= 0 in the file)" in note
    # the dendrite is a 0.5 um tube from the 1 um node on: its volume is at least that of the thin tube
    assert sub.component_volume[0] > 4 / 3 * math.pi * (4 * UM) ** 3 + math.pi * (0.5 * UM) ** 2 * 20 * UM
    m = su.read_swc(p, min_radius=0.5 * UM)
    assert m.radii.min() == 0.5 * UM and m.n_nodes == 302 and "300 of them <= 0" in m.notes[0]
    assert _contained(sub).escapes == 0


def test_min_radius_does_not_let_nan_through():
    text = _zero_radius_swc(3).replace("2 3 0 0 10.500000 1.0 1", "2 3 0 0 10.5 nan 1")
    with pytest.raises(ValueError, match="line 2: radius must be finite"):
        su.read_swc(text, min_radius=0.5 * UM)
    with pytest.raises(ValueError, match="line 2: radius must be finite"):
        su.from_swc(text, min_radius=0.5 * UM)


# ------------------------------------------------------------------------------------------ SWC: several trees
# a soma with a long dendrite (cable 30 um, 3 nodes) and a detached fragment of many short nodes (8 um, 9 nodes)
TWO_TREES = "\n".join(["1 1 0 0 0 4 -1", "2 3 0 0 15 1 1", "3 3 0 0 30 1 2",
                       "10 3 25 0 0 1 -1"] + [f"{11 + k} 3 {26 + k} 0 0 1 {10 + k}" for k in range(8)]) + "\n"


def test_several_roots_mesh_the_largest_tree_by_cable_length_with_a_note():
    m = su.read_swc(TWO_TREES)
    assert m.n_trees == 2 and m.summary()["n_trees"] == 2
    np.testing.assert_allclose(m.cable_lengths(), [30 * UM, 8 * UM])
    with pytest.warns(UserWarning, match="dropped 1"):
        sub = su.from_swc(TWO_TREES, resolution=0.4 * UM)
    assert sub.n_components == 1
    assert "largest of 2 trees (root node 1" in sub.description["notes"][0]
    assert sub.ground_truth()["morphology"]["n_nodes"] == 3 and sub.ground_truth()["n_trees_in_file"] == 2
    assert _contained(sub).escapes == 0


def test_several_roots_all_trees_or_an_error_naming_trees():
    sub = su.from_swc(TWO_TREES, resolution=0.4 * UM, trees="all")
    assert sub.n_components == 2 and sub.region_names == ["intra"]
    assert sub.truth["cell_volume_mesh"] == pytest.approx(float(sub.component_volume.sum()))
    with pytest.raises(ValueError, match=r"2 trees \(nodes 1, 10 have parent -1\).*trees='largest'.*trees='all'"):
        su.from_swc(TWO_TREES, trees="error")
    with pytest.raises(ValueError, match="trees must be one of"):
        su.from_swc(TWO_TREES, trees="biggest")
    boxed = su.from_swc(TWO_TREES, resolution=0.4 * UM, trees="all", n_cells=2, box=80 * UM, seed=1)
    assert boxed.n_components == 4


# ------------------------------------------------------------------------------------------ SWC: mesher failures
def _tetrahedron_frame(radius: float = 6.5, side: float = 20.0) -> str:
    """Six thick branches along a tetrahedron's edges: the faces close (radius > side / 2 sqrt 3) but the
    centre stays empty (radius < side / 2 sqrt 2), a void enclosed by overlapping branches."""
    V = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) * side / (2 * math.sqrt(2))
    rows = [(1, -1, V[0]), (2, 1, V[1]), (3, 1, V[2]), (4, 1, V[3]), (5, 2, V[2]), (6, 3, V[3]), (7, 4, V[1])]
    return "".join(f"{i} 3 {x:.6f} {y:.6f} {z:.6f} {radius} {p}\n" for i, p, (x, y, z) in rows)


def test_voids_enclosed_by_overlapping_branches_are_filled():
    sub = su.from_swc(_tetrahedron_frame(), resolution=1 * UM)  # was: "1 of 2 components are inverted"
    assert sub.n_components == 1 and sub.region_names == ["intra"]
    assert "filled 1 voids" in sub.description["notes"][0]
    # the centre, empty in the union of branches, is now inside the cell
    assert sub.locate(np.zeros((1, 3)) + 0.5 * (sub.vertices.max(0) + sub.vertices.min(0)))[0] == 0
    assert _contained(sub).escapes == 0


def test_neurite_thicker_than_its_soma_stays_inside_the_grid():
    # the edge from the soma keeps the neurite's 3 um radius at the 1 um soma: a capsule of radius 3 um
    sub = su.from_swc("1 1 0 0 0 1 -1\n2 3 0 0 10 3 1\n")  # was: "touches the edge of the sampling grid"
    r, L = 3 * UM, 10 * UM
    assert sub.component_volume[0] == pytest.approx(math.pi * r * r * L + 4 / 3 * math.pi * r**3, rel=0.01)


def test_mesher_errors_name_from_swc_arguments_not_repair(monkeypatch):
    import substrates.swc as swc

    def inverted(values, origin, spacing):
        v, f = marching_tetrahedra(values, origin, spacing)
        return v, f[:, ::-1]

    monkeypatch.setattr(swc, "marching_tetrahedra", inverted)
    with pytest.raises(su.MeshError, match=r"inverted .*resolution=.*min_radius=") as err:
        su.from_swc("1 1 0 0 0 4 -1\n2 3 0 0 10 1 1\n", resolution=0.4 * UM)
    assert "repair=True" not in str(err.value)

    def edge(values, origin, spacing):
        raise ValueError("the shape touches the edge of the sampling grid; enlarge the grid")

    monkeypatch.setattr(swc, "marching_tetrahedra", edge)
    with pytest.raises(ValueError, match="from_swc sizes its grid itself.*resolution=") as err:
        su.from_swc("1 1 0 0 0 4 -1\n2 3 0 0 10 1 1\n", resolution=0.4 * UM)
    assert "enlarge the grid" not in str(err.value).split("(")[0]


# ------------------------------------------------------------------------------------------ meshes: fins, slivers
def _sphere():
    m = trimesh.creation.icosphere(subdivisions=2, radius=5.0)
    return np.asarray(m.vertices, float) * UM, np.asarray(m.faces, np.int64)


def _marching_box():
    """A 8 x 6 x 5 um box through the mesher (marching tetrahedra, as marching-cubes pipelines make them)."""
    h = 0.5 * UM
    g = np.arange(-6, 7) * h
    X, Y, Z = np.meshgrid(g, g, g, indexing="ij")
    half = np.array([4, 3, 2.5]) * UM / 2 + 0.3 * h
    q = np.abs(np.stack([X, Y, Z], -1)) - half
    sdf = np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)
    return marching_tetrahedra(sdf, np.full(3, g[0]), h)


def _with_fin(v, f, k):
    """A double-sided fin on the edge of face k: a flap (a, b, tip) and its exact reverse."""
    a, b, _ = f[k]
    v = np.vstack([v, 1.3 * (v[a] + v[b]) / 2])
    t = len(v) - 1
    return v, np.vstack([f, [[a, b, t], [b, a, t]]])


def _with_sliver(v, f, k):
    """Split an edge of face k at its midpoint on one side only; the other side is closed by the zero-area
    triangle (a, b, mid), whose middle vertex lies on its long edge."""
    a, b, c = f[k]
    v = np.vstack([v, (v[a] + v[b]) / 2])
    m = len(v) - 1
    return v, np.vstack([np.delete(f, k, axis=0), [[a, m, c], [m, b, c], [a, b, m]]])


def _closed_manifold(sub) -> bool:
    t = sub.to_trimesh()
    t.merge_vertices()
    edges = np.sort(t.edges, axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return bool(t.is_watertight and t.is_winding_consistent and np.all(counts == 2))


@pytest.mark.parametrize("make", [_sphere, _marching_box], ids=["icosphere", "marching box"])
@pytest.mark.parametrize("defect", ["fin", "sliver", "both"])
def test_repair_drops_fins_and_absorbs_slivers_keeping_the_surface_closed(make, defect):
    v, f = make()
    clean = su.mesh_substrate(v, f)
    if defect in ("fin", "both"):
        v, f = _with_fin(v, f, 3)
    if defect in ("sliver", "both"):
        v, f = _with_sliver(v, f, 17)
    with pytest.raises(su.MeshError, match="repair=True") as err:
        su.mesh_substrate(v, f)
    assert ("double-sided fin" if defect == "fin" else "degenerate (zero-area)") in str(err.value)
    sub = su.mesh_substrate(v, f, repair=True)  # was: "not manifold" (fin), "repair failed: 3 open" (sliver)
    assert sub.n_components == 1 and _closed_manifold(sub)
    assert sub.component_volume[0] == pytest.approx(clean.component_volume[0], rel=1e-9)
    assert sub.component_area[0] == pytest.approx(clean.component_area[0], rel=1e-9)
    repairs = " ".join(sub.description["repairs"])
    assert ("double-sided fin" in repairs) == (defect != "sliver")
    assert ("absorbed 1 zero-area slivers" in repairs) == (defect != "fin")
    assert _contained(sub).escapes == 0


def test_repaired_mesh_file_from_a_marching_pipeline(tmp_path):
    v, f = _with_sliver(*_with_fin(*_marching_box(), 40), 100)
    path = tmp_path / "cell.ply"
    trimesh.Trimesh(v / UM, f, process=False).export(path)
    with pytest.raises(su.MeshError, match="repair=True"):
        su.from_mesh(path, units="um")
    sub = su.from_mesh(path, units="um", repair=True)
    assert _closed_manifold(sub)
    assert sub.component_volume[0] == pytest.approx(su.mesh_substrate(*_marching_box()).component_volume[0],
                                                    rel=1e-9)


def test_coincident_vertex_caps_collapse_into_the_weld():
    # a cap with two vertices at one position (a grid point exactly on the surface): the weld merges them
    v, f = _sphere()
    clean = su.mesh_substrate(v, f)
    a, b, c = f[0]
    v2 = np.vstack([v, v[a]])
    f2 = np.vstack([f, [[a, len(v2) - 1, b]]])  # zero area: a and its copy coincide
    with pytest.raises(su.MeshError, match="degenerate.*repair=True"):
        su.mesh_substrate(v2, f2)
    sub = su.mesh_substrate(v2, f2, repair=True)
    assert _closed_manifold(sub) and "collapsed 1 zero-area faces" in sub.description["repairs"][0]
    assert sub.component_volume[0] == pytest.approx(clean.component_volume[0], rel=1e-12)
