"""Neurons from SWC morphology files (NeuroMorpho.Org): read, check, prune, resample, mesh and place.

An SWC file lists a neuron as a tree of nodes, one per line: ``id type x y z radius parent`` (parent -1
for the root; type 1 soma, 2 axon, 3 basal and 4 apical dendrite; coordinates and radii usually in
micrometres). :func:`read_swc` parses and checks it, refusing cycles, missing parents, duplicate ids,
NaN values and likely unit mistakes with the offending line named. Files as they come from reconstruction
software are taken as they are where the intent is clear: radii of 0 (common in NeuroMorpho.Org files) are
raised to ``min_radius`` when one is given (and refused, naming ``min_radius=``, when not), and a file
holding several trees (several nodes with parent -1: disconnected fragments, several somata) is read whole,
:func:`from_swc` meshing the largest tree or all of them (``trees=``). The cell's volume is the union
of one sphere per node and one *round cone* (the convex hull of the two end spheres: a frustum with
tangent spherical joints) per edge, so that branches join smoothly; a neurite leaves the soma with its own
radius (the edge from a soma node to a neurite node is a cylinder, not a cone from the soma's radius); :func:`from_swc` samples its signed
distance on a grid and meshes it with marching tetrahedra (watertight by construction), then hands the
mesh to :func:`substrates.mesh_substrate` with every mesh check. Several copies can be placed, randomly
rotated and without touching, in a periodic box.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from sequences import check_count

from .base import check_length
from .mesh import MeshError, MeshSubstrate, UNITS, mesh_substrate
from .meshing import count_bodies, fill_cavities, marching_tetrahedra

#: SWC node types (the standard four; others are kept as "custom")
SWC_TYPES = {0: "undefined", 1: "soma", 2: "axon", 3: "basal dendrite", 4: "apical dendrite"}
#: the largest grid from_swc samples (points); beyond it, coarsen ``resolution``
MAX_GRID_POINTS = 150_000_000
#: what from_swc does with a file holding several trees (several roots)
TREE_CHOICES = ("largest", "all", "error")


@dataclass(frozen=True, eq=False)
class Morphology:
    """A neuron's tree from an SWC file, in metres (fields are also attributes).

    Parameters
    ----------
    ids : numpy.ndarray
        (N,) node ids as in the file.
    types : numpy.ndarray
        (N,) SWC type of each node (1 soma, 2 axon, 3 basal, 4 apical dendrite).
    points : numpy.ndarray
        (N, 3) node positions in m.
    radii : numpy.ndarray
        (N,) node radii in m.
    parents : numpy.ndarray
        (N,) index (not id) of each node's parent, -1 for a root; parents come before children. A file
        may hold several trees (several roots).
    source : str
        Where the tree came from (file name), for messages and provenance.
    notes : tuple of str
        What reading changed in the file's data (radii raised to ``min_radius``), for provenance.
    """

    ids: np.ndarray
    types: np.ndarray
    points: np.ndarray
    radii: np.ndarray
    parents: np.ndarray
    source: str = "<swc>"
    notes: tuple = ()

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.ids)

    @property
    def n_trees(self) -> int:
        """Number of separate trees (nodes with parent -1)."""
        return int(np.sum(self.parents < 0))

    def tree_labels(self) -> np.ndarray:
        """Tree of each node, numbered 0, 1, ... in the order of their roots.

        Returns
        -------
        numpy.ndarray
            (N,) int labels.
        """
        label = np.cumsum(self.parents < 0) - 1
        for i in range(self.n_nodes):  # parents come first: a child copies its parent's final label
            if self.parents[i] >= 0:
                label[i] = label[self.parents[i]]
        return label

    def cable_lengths(self) -> np.ndarray:
        """Total length of the edges of each tree, in m (a tree of one node has length 0).

        Returns
        -------
        numpy.ndarray
            (n_trees,) lengths in m, in the order of :meth:`tree_labels`.
        """
        child = np.flatnonzero(self.parents >= 0)
        seg = np.linalg.norm(self.points[child] - self.points[self.parents[child]], axis=1)
        return np.bincount(self.tree_labels()[child], weights=seg, minlength=self.n_trees)

    def children_count(self) -> np.ndarray:
        """Number of children of each node.

        Returns
        -------
        numpy.ndarray
            (N,) int counts (0: a tip; more than 1: a branch point).
        """
        return np.bincount(self.parents[self.parents >= 0], minlength=self.n_nodes)

    def summary(self) -> dict:
        """The morphology's ground-truth record.

        Returns
        -------
        dict
            ``n_nodes``, ``n_trees``, ``n_branch_points``, ``n_tips``, ``total_length`` and
            ``length_by_type`` (m), ``soma_radius`` (m, None without soma nodes) and ``extent`` (m, per axis).
        """
        kids = self.children_count()
        child = np.flatnonzero(self.parents >= 0)
        seg = np.linalg.norm(self.points[child] - self.points[self.parents[child]], axis=1)
        lengths = {}
        for t in np.unique(self.types[child]):
            name = SWC_TYPES.get(int(t), f"type {int(t)}")
            lengths[name] = float(seg[self.types[child] == t].sum())
        soma = self.types == 1
        return {"n_nodes": self.n_nodes, "n_trees": self.n_trees, "n_branch_points": int(np.sum(kids > 1)),
                "n_tips": int(np.sum(kids == 0)),
                "total_length": float(seg.sum()), "length_by_type": lengths,
                "soma_radius": float(self.radii[soma].max()) if soma.any() else None,
                "extent": (self.points.max(axis=0) - self.points.min(axis=0)).tolist()}


#: the seven columns of an SWC line, in order (for the messages)
SWC_FIELDS = ("id", "type", "x", "y", "z", "radius", "parent")


def read_swc(path, units: str = "um", *, min_radius: float | None = None) -> Morphology:
    """Read and check an SWC file (or its text).

    Parameters
    ----------
    path : str or Path
        An SWC file; a string holding newlines is read as the file's text.
    units : {"um", "nm", "mm", "m"}
        Unit of the coordinates and radii in the file (NeuroMorpho: "um"); converted to metres.
    min_radius : float, optional
        Radii below this, in m, radius 0 included, are raised to it (``Morphology.notes`` counts them).
        Without it a radius <= 0 is refused.

    Returns
    -------
    Morphology
        Nodes ordered so that parents come first, in metres. A file with several roots (parent -1) is
        read whole: ``n_trees`` counts its trees (:func:`from_swc` chooses among them with ``trees=``).

    Raises
    ------
    ValueError
        Naming the file and line: a line that is not seven numbers, a NaN or infinite value, a duplicate
        id, a parent that does not exist, a cycle, a radius <= 0 without ``min_radius``, no root, or a
        size that suggests wrong units.

    Examples
    --------
    >>> from substrates import read_swc
    >>> m = read_swc("1 1 0 0 0 5 -1\\n2 3 0 0 10 1 1\\n3 3 0 0 20 1 2\\n")
    >>> m.n_nodes, round(m.summary()["total_length"] * 1e6, 9)     # um
    (3, 20.0)
    """
    lo = None if min_radius is None else float(check_length(min_radius, "min_radius"))
    m = _parse_swc(path, units, keep_nonpositive=lo is not None)
    if lo is None:
        return m
    radii, note = _raise_radii(m.radii, lo)
    return replace(m, radii=radii, notes=m.notes + ((note,) if note else ()))


def _raise_radii(radii: np.ndarray, min_radius: float) -> tuple[np.ndarray, str]:
    """Radii below ``min_radius`` (m) raised to it, and a note counting them ('' when none was)."""
    low = radii < min_radius
    if not low.any():
        return radii, ""
    zero = int(np.sum(radii <= 0))
    return np.maximum(radii, min_radius), (f"raised {int(low.sum())} node radii below min_radius ({zero} of them "
                                           f"<= 0 in the file) to min_radius = {min_radius:g} m")


def _nonpositive_radius_error(source: str, where: str, node_id: int, r: float, n_bad: int) -> ValueError:
    """The refusal of radii <= 0, with the fix."""
    return ValueError(f"{source}{where}: radius {r:g} of node {node_id} must be > 0 ({n_bad} such nodes; "
                      "reconstructions often leave radius 0 where none was measured). Pass min_radius= (in m, "
                      "e.g. min_radius=0.1e-6) to raise them to it, or fix the file")


def _parse_swc(path, units: str, keep_nonpositive: bool) -> Morphology:
    """read_swc without min_radius: radii <= 0 are kept (``keep_nonpositive``) or refused."""
    if units not in UNITS:
        raise ValueError(f"units must be one of {sorted(UNITS)}, got {units!r}")
    if isinstance(path, str) and "\n" in path:
        text, source = path, "<swc text>"
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"SWC file {p} not found")
        text, source = p.read_text(errors="replace"), str(p)
    rows, lines = [], []
    for k, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        parts = body.split()
        try:
            if len(parts) < 7:
                raise ValueError
            vals = [float(x) for x in parts[:7]]
        except ValueError:
            raise ValueError(f"{source}, line {k}: expected 'id type x y z radius parent', got {line.strip()!r}") \
                from None
        bad = [f for f, v in zip(SWC_FIELDS, vals) if not math.isfinite(v)]
        if bad:
            raise ValueError(f"{source}, line {k}: {', '.join(bad)} must be finite numbers, got {line.strip()!r}; "
                             "fix the file or drop the node")
        if vals[0] != int(vals[0]) or vals[6] != int(vals[6]):
            raise ValueError(f"{source}, line {k}: id and parent must be whole numbers, got {line.strip()!r}")
        rows.append(vals)
        lines.append(k)
    if not rows:
        raise ValueError(f"{source}: no nodes (an SWC file has one 'id type x y z radius parent' line per node)")
    a = np.array(rows)
    lines = np.array(lines)
    ids, parent_ids = a[:, 0].astype(np.int64), a[:, 6].astype(np.int64)
    index = {}
    for i, nid in enumerate(ids):
        if nid in index:
            raise ValueError(f"{source}, line {lines[i]}: node id {nid} repeats line {lines[index[nid]]}")
        index[int(nid)] = i
    parents = np.full(len(ids), -1, dtype=np.int64)
    for i, pid in enumerate(parent_ids):
        if pid == -1:
            continue
        if int(pid) not in index:
            raise ValueError(f"{source}, line {lines[i]}: parent {pid} of node {ids[i]} is not in the file")
        if int(pid) == ids[i]:
            raise ValueError(f"{source}, line {lines[i]}: node {ids[i]} is its own parent")
        parents[i] = index[int(pid)]
    roots = np.flatnonzero(parents < 0)
    if len(roots) == 0:
        raise ValueError(f"{source}: no root (a node with parent -1); the tree has a cycle")
    order = _tree_order(parents, lines, source)
    r = a[:, 5]
    bad = np.flatnonzero(~(r > 0))
    if len(bad) and not keep_nonpositive:
        raise _nonpositive_radius_error(source, f", line {lines[bad[0]]}", ids[bad[0]], r[bad[0]], len(bad))
    scale = UNITS[units]
    pts, rad = a[:, 2:5] * scale, r * scale
    # the unit check looks at the measured radii only: hundreds of unmeasured 0s must not read as nanometres
    measured = rad[rad > 0]
    typical = float(np.median(measured)) if measured.size else math.inf
    ext = float(np.max(pts.max(axis=0) - pts.min(axis=0) + 2 * max(float(rad.max()), 0.0)))
    if ext > 5e-3 or ext < 1e-7 or typical < 5e-9:
        raise ValueError(f"{source}: the cell spans {ext * 1e6:.3g} um with median radius {typical * 1e6:.3g}"
                         f" um when read in {units!r}; neurons span 10 um to a few mm. Pass units='um', 'nm', 'mm' "
                         "or 'm' as the file is written")
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    new_parents = np.where(parents[order] >= 0, inv[np.maximum(parents[order], 0)], -1)
    return Morphology(ids[order], a[order, 1].astype(np.int64), pts[order], rad[order], new_parents, source)


def _tree_order(parents: np.ndarray, lines: np.ndarray, source: str) -> np.ndarray:
    """Nodes in breadth-first order from the root, tree after tree (roots in file order); a node never
    reached sits on a cycle."""
    children: dict[int, list[int]] = {}
    for i, p in enumerate(parents):
        children.setdefault(int(p), []).append(i)
    order = []
    for root in children.get(-1, []):
        frontier = [root]
        while frontier:
            order.extend(frontier)
            frontier = [c for n in frontier for c in children.get(n, [])]
    if len(order) < len(parents):
        lost = sorted(set(range(len(parents))) - set(order))
        raise ValueError(f"{source}, line {lines[lost[0]]}: node is on a cycle of parents (not connected to the "
                         f"root; {len(lost)} such nodes)")
    return np.array(order, dtype=np.int64)


def prune_morphology(m: Morphology, min_length: float) -> Morphology:
    """Drop terminal branches (tip to the nearest branch point or soma) shorter than ``min_length`` m.

    Parameters
    ----------
    m : Morphology
    min_length : float
        Shortest terminal branch kept, in m.

    Returns
    -------
    Morphology
        The tree without those branches (one pass: branches that become terminal are kept).
    """
    L = float(check_length(min_length, "min_length"))
    kids = m.children_count()
    drop = np.zeros(m.n_nodes, bool)
    for tip in np.flatnonzero(kids == 0):
        path, length, n = [], 0.0, tip
        while n >= 0 and kids[n] <= 1 and m.types[n] != 1:
            path.append(n)
            p = m.parents[n]
            if p >= 0:
                length += float(np.linalg.norm(m.points[n] - m.points[p]))
            n = p
        if length < L and n >= 0:  # never drop a whole unbranched cell
            drop[path] = True
    return _subset(m, ~drop)


def resample_morphology(m: Morphology, spacing: float) -> Morphology:
    """Re-sample every unbranched section at about ``spacing`` m, radii interpolated linearly along it.

    Branch points, tips and soma nodes are kept; nodes in between are replaced.

    Parameters
    ----------
    m : Morphology
    spacing : float
        Target distance between consecutive nodes in m.

    Returns
    -------
    Morphology
    """
    h = float(check_length(spacing, "spacing"))
    kids = m.children_count()
    keep = (kids != 1) | (m.types == 1) | (m.parents < 0)
    ids, types, pts, rad, par = [], [], [], [], []
    new_of = {}
    next_id = 1
    for i in range(m.n_nodes):  # parents first: each kept node is emitted after its kept ancestor
        if not keep[i]:
            continue
        chain = [i]
        n = m.parents[i]
        while n >= 0 and not keep[n]:
            chain.append(n)
            n = m.parents[n]
        anchor = n
        if anchor >= 0:
            chain.append(anchor)
            seq = chain[::-1]  # anchor ... i
            P, R = m.points[seq], m.radii[seq]
            s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(P, axis=0), axis=1))])
            k = max(1, int(round(s[-1] / h)))
            at = np.linspace(0.0, s[-1], k + 1)[1:-1]
            prev = new_of[anchor]
            for t in at:
                ids.append(next_id)
                types.append(m.types[i])
                pts.append([np.interp(t, s, P[:, c]) for c in range(3)])
                rad.append(np.interp(t, s, R))
                par.append(prev)
                prev = len(ids) - 1
                next_id += 1
            parent = prev
        else:
            parent = -1
        ids.append(next_id)
        types.append(m.types[i])
        pts.append(m.points[i])
        rad.append(m.radii[i])
        par.append(parent)
        new_of[i] = len(ids) - 1
        next_id += 1
    return Morphology(np.array(ids), np.array(types), np.array(pts, float), np.array(rad, float),
                      np.array(par, dtype=np.int64), m.source, m.notes)


def _subset(m: Morphology, keep: np.ndarray) -> Morphology:
    idx = np.flatnonzero(keep)
    new = np.full(m.n_nodes, -1, dtype=np.int64)
    new[idx] = np.arange(len(idx))
    par = np.where(m.parents[idx] >= 0, new[np.maximum(m.parents[idx], 0)], -1)
    return Morphology(m.ids[idx], m.types[idx], m.points[idx], m.radii[idx], par, m.source, m.notes)


def round_cone_sdf(p: np.ndarray, a: np.ndarray, b: np.ndarray, ra: float, rb: float) -> np.ndarray:
    """Signed distance to the round cone around segment a-b (the convex hull of the spheres (a, ra), (b, rb)).

    In the plane of the axis the surface is the two circles joined by their common outer tangent, whose
    normal n = (sin beta, cos beta) has sin beta = (ra - rb) / |b - a|; a point whose coordinate along the
    tangent lies before the tangent point on circle a is nearest to that circle, after the one on b to b,
    and in between to the tangent line. Exact outside; negative inside.

    Parameters
    ----------
    p : numpy.ndarray
        (..., 3) points in m.
    a, b : numpy.ndarray
        (3,) end points in m.
    ra, rb : float
        End radii in m.

    Returns
    -------
    numpy.ndarray
        (...) signed distances in m.
    """
    ab = np.asarray(b, float) - np.asarray(a, float)
    L = float(np.linalg.norm(ab))
    pa = p - a
    if L <= abs(ra - rb):  # one sphere holds the other
        return np.linalg.norm(pa if ra >= rb else p - b, axis=-1) - max(ra, rb)
    u = ab / L
    s = pa @ u
    q = np.sqrt(np.maximum(np.einsum("...i,...i->...", pa, pa) - s * s, 0.0))
    sin_b = (ra - rb) / L
    cos_b = math.sqrt(1.0 - sin_b * sin_b)
    w = s * cos_b - q * sin_b  # coordinate along the tangent line
    side = s * sin_b + q * cos_b - ra
    return np.where(w < 0.0, np.hypot(s, q) - ra, np.where(w > L * cos_b, np.hypot(s - L, q) - rb, side))


def morphology_sdf(m: Morphology, origin: np.ndarray, shape: tuple, h: float) -> np.ndarray:
    """Signed distance of the cell (union of node spheres and edge round cones) on a regular grid.

    Each primitive is evaluated only on the grid block around it (its bounding box and 2 cells), the
    rest of the grid keeping a positive distance, so the cost grows with the cell's volume, not the grid's.

    Parameters
    ----------
    m : Morphology
    origin : numpy.ndarray
        (3,) position of grid point (0, 0, 0) in m.
    shape : tuple of int
        Grid points per axis.
    h : float
        Grid spacing in m.

    Returns
    -------
    numpy.ndarray
        (nx, ny, nz) signed distances in m (negative inside), clipped at 4 h outside the cell.
    """
    d = np.full(shape, 4.0 * h)
    n = np.asarray(shape)

    def block(lo, hi):
        i0 = np.clip(np.floor((lo - origin) / h).astype(int) - 2, 0, n - 1)
        i1 = np.clip(np.ceil((hi - origin) / h).astype(int) + 3, 1, n)
        axes = [origin[k] + h * np.arange(i0[k], i1[k]) for k in range(3)]
        return tuple(slice(i0[k], i1[k]) for k in range(3)), np.stack(np.meshgrid(*axes, indexing="ij"), -1)

    for i in range(m.n_nodes):
        j = m.parents[i]
        a, ra = m.points[i], m.radii[i]
        if j < 0:
            sl, P = block(a - ra, a + ra)
            d[sl] = np.minimum(d[sl], np.linalg.norm(P - a, axis=-1) - ra)
            continue
        b, rb = m.points[j], m.radii[j]
        if m.types[j] == 1 and m.types[i] != 1:
            rb = ra  # a neurite leaves the soma with its own radius, not tapering from the soma's
        sl, P = block(np.minimum(a - ra, b - rb), np.maximum(a + ra, b + rb))
        d[sl] = np.minimum(d[sl], round_cone_sdf(P, a, b, ra, rb))
    return d


def from_swc(path, units: str = "um", *, radius_scale: float = 1.0, min_radius: float | None = None,
             prune: float | None = None, resample: float | None = None, resolution: float | None = None,
             n_cells: int = 1, box=None, seed: int = 0, gap: float = 0.5e-6, permeability=0.0,
             relaxivity=0.0, trees: str = "largest") -> MeshSubstrate:
    """A neuron (or several copies) from an SWC morphology, as a watertight mesh substrate.

    Parameters
    ----------
    path : str, Path or Morphology
        SWC file (or its text, or a :class:`Morphology` already read).
    units : {"um", "nm", "mm", "m"}
        Unit of the file (NeuroMorpho: "um").
    radius_scale : float
        Factor applied to every radius (reconstructions often under- or over-estimate thin dendrites).
    min_radius : float, optional
        Radii below this (m), after ``radius_scale``, are raised to it, so that thin branches stay
        resolvable by the grid; nodes of radius 0 in the file (no radius measured) are raised too, and the
        description's ``notes`` count them. Without it a radius <= 0 is refused.
    prune : float, optional
        Drop terminal branches shorter than this, in m (:func:`prune_morphology`).
    resample : float, optional
        Re-sample unbranched sections at this node spacing, in m (:func:`resample_morphology`).
    resolution : float, optional
        Grid spacing of the mesher in m (default: a quarter of the smallest radius). The mesh's volume
        and area errors shrink with it (a few per cent at a quarter radius; see the ground truth).
    n_cells : int
        Copies of the cell placed in ``box``, each randomly rotated, none within ``gap`` of another.
    box : float or array_like, optional
        Periodic box in m (one side or three); needed for ``n_cells > 1`` and for an extra-cellular
        space. Default: a lone cell, walkers inside it.
    seed : int
        Seed of the rotations and positions.
    gap : float
        Least distance between two cells' surfaces in m.
    permeability : float or dict
        Membrane permeability kappa in m/s (needs a box).
    relaxivity : float
        Surface relaxivity rho in m/s.
    trees : {"largest", "all", "error"}
        What to do with a file holding several trees (several nodes with parent -1: fragments the tracer
        did not connect, several somata). "largest": mesh the tree of greatest cable length (sum of its
        edge lengths; ties: more nodes, then the first in the file), dropping the others with a warning
        and a note in the description; "all": mesh every tree as part of the cell (trees that overlap
        merge into one body, the others are separate bodies moved and rotated together); "error":
        refuse the file.

    Returns
    -------
    MeshSubstrate
        One component per body of each cell (one per cell unless ``trees="all"`` keeps trees apart);
        the ground truth carries the morphology summary (node, tree, branch and tip counts, lengths per
        type, soma radius), the grid spacing and the mesh's volume and area. Voids that overlapping
        branches enclose are filled (a note counts them).

    Raises
    ------
    ValueError
        For a bad file (the line is named), a grid too large for memory, or cells that do not fit.

    Examples
    --------
    >>> import substrates
    >>> swc = "1 1 0 0 0 4 -1\\n2 3 0 0 4 1 1\\n3 3 0 0 14 1 2\\n4 3 4 0 0 1 1\\n5 3 14 0 0 1 4\\n"
    >>> sub = substrates.from_swc(swc, resolution=0.4e-6)
    >>> sub.n_components, sub.region_names
    (1, ['intra'])
    """
    if trees not in TREE_CHOICES:
        raise ValueError(f"trees must be one of {list(TREE_CHOICES)}, got {trees!r}")
    r_min = None if min_radius is None else float(check_length(min_radius, "min_radius"))
    # radii <= 0 are kept for now when min_radius will raise them (after radius_scale, as documented)
    m = path if isinstance(path, Morphology) else _parse_swc(path, units, keep_nonpositive=r_min is not None)
    src = m.source
    scale = float(radius_scale)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"radius_scale must be a finite factor > 0 (dimensionless), got {radius_scale!r}")
    n = check_count(n_cells, "n_cells")
    gap = float(check_length(gap, "gap", allow_zero=True))
    notes = list(m.notes)
    n_trees_file = m.n_trees
    if n_trees_file > 1:
        m, note = _choose_trees(m, trees)
        notes += [note] if note else []
    if prune is not None:
        m = prune_morphology(m, float(check_length(prune, "prune")))
    if resample is not None:
        m = resample_morphology(m, float(check_length(resample, "resample")))
    rad = m.radii * scale
    if r_min is not None:
        rad, note = _raise_radii(rad, r_min)
        notes += [note] if note else []
    else:
        bad = np.flatnonzero(~(rad > 0))
        if len(bad):
            raise _nonpositive_radius_error(src, "", m.ids[bad[0]], float(m.radii[bad[0]]), len(bad))
    m = replace(m, radii=rad)
    h = float(check_length(resolution, "resolution")) if resolution is not None else float(rad.min()) / 4
    lo, hi = _sdf_bounds(m)
    lo, hi = lo - 3 * h, hi + 3 * h
    shape = tuple(int(math.ceil(x)) + 1 for x in (hi - lo) / h)
    if math.prod(shape) > MAX_GRID_POINTS:
        raise ValueError(f"{src}: meshing at resolution {h * 1e6:.3g} um needs a grid of {shape} points "
                         f"(over {MAX_GRID_POINTS:.0e}); coarsen resolution=, raise min_radius= or prune=")
    centre = 0.5 * (lo + hi)
    sdf = morphology_sdf(m, lo, shape, h)
    sdf, n_cav, n_cav_pts = fill_cavities(sdf, h)
    if n_cav:
        notes.append(f"filled {n_cav} voids enclosed by overlapping branches (about {n_cav_pts * h**3 * 1e18:.3g} "
                     "um^3): they would be empty compartments no walker could reach")
    n_bodies = count_bodies(sdf, h)
    if n_bodies > m.n_trees:
        notes.append(f"the mesh has {n_bodies} separate bodies for {m.n_trees} tree(s): branches thinner than "
                     f"about the grid spacing ({h * 1e6:.3g} um) broke apart; refine resolution= or raise min_radius=")
        warnings.warn(f"{src}: {notes[-1]}", stacklevel=2)
    try:
        v0, f0 = marching_tetrahedra(sdf, lo, h)
    except ValueError as e:  # the grid is built around every primitive: reaching here is a bug, said plainly
        raise ValueError(f"{src}: meshing failed ({e}); from_swc sizes its grid itself, so please report this "
                         "file; meanwhile try another resolution= or radius_scale=") from e
    v0 = v0 - centre
    if box is None:
        if n > 1:
            raise ValueError("n_cells > 1 needs a periodic box (box=...) to place the cells in")
        verts, faces, L = [v0], [f0], None
        placed = [np.eye(3)], [np.zeros(3)]
    else:
        L = np.broadcast_to(check_length(box, "box"), (3,)).astype(float)
        pts, prad = _dense_nodes(m, float(rad.min()))
        placed = _place_cells(pts - centre, prad, v0, n, L, gap, seed, src)
        verts = [v0 @ R.T + c for R, c in zip(*placed)]
        faces = [f0 + k * len(v0) for k in range(n)]
    summary = m.summary()
    truth = {"generator": "from_swc", "source": src, "morphology": summary, "radius_scale": scale,
             "min_radius": min_radius, "prune": prune, "resample": resample, "grid_spacing": h, "n_cells": n,
             "seed": int(seed), "cell_rotations": [R.tolist() for R in placed[0]],
             "cell_centres": [c.tolist() for c in placed[1]]}
    desc = {"factory": "from_swc", "source": src, "units": units, "n_cells": n, "seed": int(seed)}
    if n_trees_file > 1:
        truth.update(trees=trees, n_trees_in_file=n_trees_file)
    if notes:
        desc["notes"] = notes
    try:
        sub = mesh_substrate(np.concatenate(verts), np.concatenate(faces), box=L, permeability=permeability,
                             relaxivity=relaxivity, description=desc, truth=truth, check_self_intersections=False)
    except MeshError as e:
        # mesh_substrate's own advice (repair=True, remesh) names arguments from_swc does not have
        what = str(e).split("; pass repair=True")[0].split(". Pass repair=True")[0]
        raise MeshError(f"{src}: the mesh of the morphology failed a check: {what}. Try a finer resolution= "
                        f"(now {h:.3g} m), min_radius= or prune= (all in m), or trees='largest'") from e
    bodies = sub.face_component[:len(f0)]  # the first cell's faces come first: its bodies are its components
    sub.truth["cell_volume_mesh"] = float(sub.component_volume[np.unique(bodies)].sum())
    sub.truth["cell_area_mesh"] = float(sub.component_area[np.unique(bodies)].sum())
    return sub


def _choose_trees(m: Morphology, trees: str) -> tuple[Morphology, str]:
    """The trees from_swc meshes out of a file with several, and a note saying what was dropped."""
    roots = m.ids[m.parents < 0]
    listed = ", ".join(str(int(i)) for i in roots[:5]) + (" ..." if len(roots) > 5 else "")
    if trees == "error":
        raise ValueError(f"{m.source}: {m.n_trees} trees (nodes {listed} have parent -1). Pass trees='largest' to "
                         "mesh the largest (by cable length) or trees='all' to mesh every tree")
    if trees == "all":
        return m, ""
    label = m.tree_labels()
    length = m.cable_lengths()
    size = np.bincount(label, minlength=m.n_trees)
    best = int(np.lexsort((np.arange(m.n_trees), -size, -length))[0])  # longest, then most nodes, then first
    note = (f"meshed the largest of {m.n_trees} trees (root node {int(roots[best])}, cable length "
            f"{length[best] * 1e6:.4g} um, {int(size[best])} nodes) and dropped {m.n_trees - 1} "
            f"({m.n_nodes - int(size[best])} nodes); pass trees='all' to keep every tree")
    warnings.warn(f"{m.source}: {note}", stacklevel=3)
    return _subset(m, label == best), note


def _sdf_bounds(m: Morphology) -> tuple[np.ndarray, np.ndarray]:
    """Corners of the box holding every primitive of :func:`morphology_sdf`, in m.

    The node spheres bound every primitive but one: an edge from a soma node keeps the neurite's radius at
    the soma's end, which reaches past the soma's sphere where the neurite is the thicker."""
    lo = (m.points - m.radii[:, None]).min(axis=0)
    hi = (m.points + m.radii[:, None]).max(axis=0)
    child = np.flatnonzero(m.parents >= 0)
    off = child[(m.types[m.parents[child]] == 1) & (m.types[child] != 1)]
    if len(off):
        at, r = m.points[m.parents[off]], m.radii[off][:, None]
        lo = np.minimum(lo, (at - r).min(axis=0))
        hi = np.maximum(hi, (at + r).max(axis=0))
    return lo, hi


def _dense_nodes(m: Morphology, step: float):
    """Node spheres every ``step`` m along every edge (radii interpolated): a cover of the cell's volume
    to within the round cones' tangent joints, for the placement check."""
    pts, rad = [m.points], [m.radii]
    for i in np.flatnonzero(m.parents >= 0):
        a, b = m.points[i], m.points[m.parents[i]]
        k = int(np.linalg.norm(b - a) / step)
        if k > 0:
            t = (np.arange(1, k + 1) / (k + 1))[:, None]
            pts.append(a + t * (b - a))
            rad.append(m.radii[i] + t[:, 0] * (m.radii[m.parents[i]] - m.radii[i]))
    return np.concatenate(pts), np.concatenate(rad)


def _place_cells(points, radii, verts, n, L, gap, seed, src):
    """Random rotations and positions of n copies inside the box, no two within ``gap`` (node spheres)."""
    from scipy.spatial import cKDTree
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    reach = float(radii.max())
    rotations, centres, clouds = [], [], []
    for k in range(n):
        for _ in range(2000):
            R = Rotation.random(random_state=rng).as_matrix() if n > 1 else np.eye(3)
            vr = verts @ R.T
            span = vr.max(axis=0) - vr.min(axis=0)
            room = L - span - 2 * gap
            if np.any(room <= 0):
                continue
            c = rng.uniform(0, 1, 3) * room + gap - vr.min(axis=0)
            pts = points @ R.T + c
            ok = all(_apart(pts, radii, q, rq, gap, reach, cKDTree) for q, rq in clouds)
            if ok:
                rotations.append(R)
                centres.append(c)
                clouds.append((pts, radii))
                break
        else:
            raise ValueError(f"{src}: could not place cell {k + 1} of {n} in the box {L * 1e6} um without "
                             "touching the others; enlarge the box or place fewer cells")
    return rotations, centres


def _apart(p, rp, q, rq, gap, reach, tree_cls) -> bool:
    """No node sphere of one cell within ``gap`` of one of the other's (edges are covered densely)."""
    tree = tree_cls(q)
    for i, near in enumerate(tree.query_ball_point(p, rp + reach + gap)):
        if near and np.any(np.linalg.norm(q[near] - p[i], axis=1) < rp[i] + rq[near] + gap):
            return False
    return True


__all__ = ["Morphology", "read_swc", "prune_morphology", "resample_morphology", "round_cone_sdf", "morphology_sdf",
           "from_swc", "SWC_TYPES", "TREE_CHOICES"]
