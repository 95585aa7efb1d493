"""Triangle-mesh substrates: import (trimesh), checks and repair, components, nesting, periodic tiling.

A mesh substrate is a set of closed triangulated surfaces, each a *component*
(a cell, an axon, a nucleus). Components may nest (a nucleus in a soma, an
axon in its myelin sheath): a walker's *region* is the innermost component
containing it, named by nesting depth ("intra" at depth 0, "inner" at depth 1,
"inner2" ...), or "extra" outside every component of a periodic box.

Periodic tiling: with ``box`` given, the substrate repeats with that period;
components that cross the box are copied into every image that meets the box.
A component may also be open across the y or z faces of the box where it
continues into its own periodic image (an axon running through the box): the
two cut ends must match exactly after a shift by the box. Components must not
be cut by the x faces (point location casts its rays along x).

Units: vertices are stored in metres. ``from_mesh`` converts from the file's
declared units to micrometres *before* trimesh merges vertices (its tolerances
are absolute, 1e-8, and would collapse a mesh written in metres), then to
metres.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numba import njit, prange
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .base import (MESH, Family, Substrate, WalkerStart, check_permeability, check_relaxivity, check_start,
                   permeability_truth, register_family, values_truth)
from .files import json_text
from .meshgrid import build_columns, build_grid, locate_points, recast_direction, triangle_rows

UNITS = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6, "micron": 1e-6, "nm": 1e-9}


class MeshError(ValueError):
    """A mesh that cannot be walked: says what is wrong and how to fix it."""


@dataclass(frozen=True, eq=False)
class MeshGrid:
    """Triangle images and the uniform grid the walker and point location use.

    Built by :attr:`MeshSubstrate.grid`; the fields are also the attributes of
    the (frozen) instance.

    Parameters
    ----------
    tri : numpy.ndarray
        (Q, 13) triangle image rows (see :mod:`substrates.meshgrid`), in m.
    comp : numpy.ndarray
        (Q,) component of each triangle image (images of a component are contiguous).
    face : numpy.ndarray
        (Q,) mesh face each image copies.
    comp_start : numpy.ndarray
        (C + 1,) rows of ``tri`` holding each component's images.
    lo, h : numpy.ndarray
        (3,) grid origin and cell size (m).
    n : numpy.ndarray
        (3,) cells per axis (int64).
    box : numpy.ndarray
        (3,) period per axis in m, 0 where not periodic.
    start, items : numpy.ndarray
        Cell lists (compressed rows) of triangle images.
    cstart, citems : numpy.ndarray
        Column lists over (y, z) for location rays along +x.
    clear : numpy.ndarray
        (ncells,) distance (m) from any point of the cell to the nearest triangle, a lower bound: a step
        shorter than this cannot hit anything, so the walker skips the traversal.
    """

    tri: np.ndarray
    comp: np.ndarray
    face: np.ndarray
    comp_start: np.ndarray
    lo: np.ndarray
    h: np.ndarray
    n: np.ndarray
    box: np.ndarray
    start: np.ndarray
    items: np.ndarray
    cstart: np.ndarray
    citems: np.ndarray
    clear: np.ndarray

    @property
    def mean_per_cell(self) -> float:
        """Mean triangle images per non-empty cell."""
        c = np.diff(self.start)
        return float(c[c > 0].mean()) if np.any(c > 0) else 0.0


@dataclass(frozen=True, eq=False)
class MeshSubstrate(Substrate):
    """A substrate made of closed triangle meshes (see module docstring).

    Build it with :func:`from_mesh`, :func:`mesh_substrate` or a generator
    (:func:`packed_axons`, :func:`undulating_axons`, ...) rather than directly,
    so that every mesh check runs. The fields are also the attributes of the
    (frozen) instance.

    Parameters
    ----------
    kind : int
        ``MESH``.
    box : numpy.ndarray
        (3,) periodic box in m, spanning [0, box) on each axis; inf along
        non-periodic axes.
    rotation, diffusion_tensor, description : object
        As in :class:`Substrate` (identity rotation: the mesh is in the lab frame).
    permeability : numpy.ndarray
        (C, 2) membrane permeability kappa of each component in m/s,
        [outward, inward].
    relaxivity : numpy.ndarray
        (C,) surface relaxivity rho of each component's wall in m/s (empty or zeros: none).
    vertices : numpy.ndarray
        (V, 3) vertex positions in m.
    faces : numpy.ndarray
        (F, 3) vertex indices, counter-clockwise seen from outside.
    face_component : numpy.ndarray
        (F,) component of each face (int64).
    depth : numpy.ndarray
        (C,) nesting depth of each component (0: not inside another).
    parent : numpy.ndarray
        (C,) component directly enclosing each one (-1: none).
    component_volume, component_area : numpy.ndarray
        (C,) enclosed volume (m^3, per period for open components) and surface area (m^2).
    truth : dict
        Ground truth from the generator that made the mesh (SI), merged into ``ground_truth()``.
    region_labels : tuple of str
        Names of the regions by nesting depth (a myelinated axon: ``("myelin", "intra")``); empty for the
        default "intra", "inner", "inner2", ...
    """

    #: the family of substrates this class belongs to (its kernel, its file format): see substrates.FAMILIES
    family: ClassVar[str] = "mesh"

    vertices: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    faces: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.int64))
    face_component: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    depth: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    parent: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    component_volume: np.ndarray = field(default_factory=lambda: np.zeros(0))
    component_area: np.ndarray = field(default_factory=lambda: np.zeros(0))
    truth: dict = field(default_factory=dict)
    region_labels: tuple = ()

    @property
    def n_components(self) -> int:
        """Number of closed components."""
        return len(self.depth)

    @property
    def periodic(self) -> np.ndarray:
        """(3,) bool: axes along which the substrate repeats."""
        return np.isfinite(self.box)

    @property
    def region_names(self) -> list[str]:
        """Region name per nesting depth (:attr:`region_labels`, or "intra", "inner", "inner2", ...), then
        "extra" where the box is periodic on all axes."""
        md = int(self.depth.max(initial=0))
        names = list(self.region_labels) if self.region_labels else \
            ["intra"] + ["inner" if d == 1 else f"inner{d}" for d in range(1, md + 1)]
        if np.all(self.periodic):
            names.append("extra")
        return names

    @property
    def compartments(self) -> list[str]:
        """Compartment names walkers can start in: the :attr:`region_names`."""
        return self.region_names

    def region_of_component(self, c: np.ndarray) -> np.ndarray:
        """Region index (into ``region_names``) of walkers whose innermost component is ``c`` (-1: extra).

        Parameters
        ----------
        c : array_like of int
            (N,) innermost component of each walker, -1 outside every component.

        Returns
        -------
        numpy.ndarray
            (N,) indices into :attr:`region_names`.
        """
        c = np.asarray(c)
        ex = len(self.region_names) - 1
        return np.where(c >= 0, self.depth[np.maximum(c, 0)], ex)

    @property
    def grid(self) -> MeshGrid:
        """Triangle images and grids (built on first use, cached)."""
        g = self.__dict__.get("_grid")
        if g is None:
            g = _build_mesh_grid(self.vertices, self.faces, self.face_component, self.box)
            self.__dict__["_grid"] = g
        return g

    def region_volumes(self) -> dict[str, float]:
        """Volume of each region in m^3 (per box for periodic substrates).

        Returns
        -------
        dict of str to float
            Region name (:attr:`region_names`) -> volume in m^3.
        """
        names = self.region_names
        vols = dict.fromkeys(names, 0.0)
        for c in range(self.n_components):
            v = float(self.component_volume[c])
            vols[names[self.depth[c]]] += v
            if self.parent[c] >= 0:
                vols[names[self.depth[self.parent[c]]]] -= v
        if "extra" in vols:
            vols["extra"] = float(np.prod(self.box)) - sum(v for k, v in vols.items() if k != "extra")
        return vols

    def volume_fractions(self) -> dict[str, float]:
        """Volume fraction of each region.

        Returns
        -------
        dict of str to float
            Region name (:attr:`region_names`) -> volume fraction
            (dimensionless, summing to 1).
        """
        vols = self.region_volumes()
        total = sum(vols.values())
        return {k: v / total for k, v in vols.items()}

    @property
    def smallest_feature(self) -> float:
        """Smallest length to resolve (m): 2 V / S of the smallest component, of each shell between nested
        components (a myelin sheath: its thickness) and the extra pore width."""
        with np.errstate(divide="ignore", invalid="ignore"):
            w = 2.0 * self.component_volume / self.component_area
        f = float(np.min(w)) if len(w) else math.inf
        vols = self.region_volumes()
        if "extra" in vols:
            outer = self.depth == 0
            f = min(f, 2.0 * vols["extra"] / float(np.sum(self.component_area[outer])))
        for d, name in enumerate(self.region_names[:int(self.depth.max(initial=0))]):
            walls = (self.depth == d) | (self.depth == d + 1)
            f = min(f, 2.0 * vols[name] / float(np.sum(self.component_area[walls])))
        return f

    @property
    def pore_width(self) -> float:
        """Mean width of the extra space, 2 V_extra / S (m); inf without an extra region."""
        vols = self.region_volumes()
        if "extra" not in vols:
            return math.inf
        return 2.0 * vols["extra"] / float(np.sum(self.component_area[self.depth == 0]))

    def ground_truth(self) -> dict:
        """The true parameters a model fitted to this substrate is judged against (SI).

        Returns
        -------
        dict
            ``substrate`` ("mesh"), ``volume_fractions``, ``box`` (m),
            ``n_components``, ``n_faces``, ``surface_to_volume`` per region
            (1/m), the generator's ground truth (:attr:`truth`), for
            permeable meshes ``permeability`` (m/s), and with surface
            relaxivity ``relaxivity`` (m/s) and ``surface_relaxation_rate``
            per region (sum(rho S) / V of its walls, 1/s: the fast-diffusion
            b = 0 decay rate).
        """
        vols = self.region_volumes()
        gt = super().ground_truth()
        gt.update(n_components=self.n_components, n_faces=len(self.faces))
        sv, rate = {}, {}
        names = self.region_names
        rho = self.relaxivity if self.relaxing else np.zeros(self.n_components)
        for r, name in enumerate(names):
            # a region's walls: its own components' surfaces and those of the components nested in it
            walls = (self.depth == 0) if name == "extra" else (self.depth == r) | (self.depth == r + 1)
            if vols[name] > 0:
                sv[name] = float(np.sum(self.component_area[walls])) / vols[name]
                rate[name] = float(np.sum(rho[walls] * self.component_area[walls])) / vols[name]
        gt["surface_to_volume"] = sv
        gt.update(self.truth)
        if self.permeable:
            gt["permeability"] = permeability_truth(self.permeability)
        if self.relaxing:
            gt["relaxivity"] = values_truth(self.relaxivity)
            gt["surface_relaxation_rate"] = rate
        return gt

    def locate(self, points: np.ndarray) -> np.ndarray:
        """Innermost component containing each point (-1: outside every component).

        Exact for points not on the surface: ray parity with degenerate rays recast.

        Parameters
        ----------
        points : numpy.ndarray
            (N, 3) positions in m.

        Returns
        -------
        numpy.ndarray
            (N,) component indices.
        """
        g = self.grid
        p = np.ascontiguousarray(np.asarray(points, dtype=float).reshape(-1, 3))
        out = locate_points(p, g.tri, g.comp, self.depth, g.lo, g.h, g.n, g.box, g.cstart, g.citems)
        if np.any(out == -2):
            raise RuntimeError(f"{int(np.sum(out == -2))} points could not be located (every ray was degenerate); "
                               "they lie on the surface")
        return out

    def sample_positions(self, start: str, n: int, rng: np.random.Generator) -> WalkerStart:
        """Draw ``n`` walker start positions, uniform in a region (or the whole walkable volume), located exactly.

        Parameters
        ----------
        start : str
            "uniform" (every region, each walker labelled by where it lands), or a region name
            (:attr:`region_names`: "intra", "inner", ..., "extra").
        n : int
            Number of walkers.
        rng : numpy.random.Generator
            Source of randomness.

        Returns
        -------
        WalkerStart
            Absolute positions, innermost component per walker (-1: extra), region labels.
        """
        names = self.region_names
        check_start(start, ["intra", "extra", "uniform"] + names)
        if start == "extra" and "extra" not in names:
            raise ValueError("start='extra' needs a mesh substrate periodic on all three axes (box=...); this one "
                             f"has only {names}")
        g = self.grid
        per = self.periodic
        lo = np.where(per, 0.0, g.lo)
        ext = np.where(per, np.where(per, self.box, 0.0), g.n * g.h)
        want = None if start == "uniform" else names.index(start)
        pos = np.zeros((n, 3))
        comp = np.full(n, -1, dtype=np.int64)
        labels = np.zeros(n, dtype=np.int64)
        filled = 0
        tries = 0
        while filled < n:
            m = max(4096, 2 * (n - filled))
            cand = lo + rng.uniform(size=(m, 3)) * ext
            c = self.locate(cand)
            reg = self.region_of_component(c)
            if "extra" not in names:
                keep = c >= 0  # outside a non-periodic mesh is not part of the substrate
                cand, c, reg = cand[keep], c[keep], reg[keep]
            if want is not None:
                keep = reg == want
                cand, c, reg = cand[keep], c[keep], reg[keep]
            take = min(n - filled, len(cand))
            pos[filled:filled + take] = cand[:take]
            comp[filled:filled + take] = c[:take]
            labels[filled:filled + take] = reg[:take]
            filled += take
            tries += 1
            if tries > 1000:
                raise RuntimeError(f"could not seed walkers in region {start!r}: its volume is ~0")
        return WalkerStart(pos, comp, labels, names)

    def region_fractions(self, home: np.ndarray) -> dict[str, float]:
        """Fraction of walkers in each region, from their innermost component (``home``, -1: extra).

        Parameters
        ----------
        home : numpy.ndarray
            (N,) innermost component of each walker, -1 outside every component.

        Returns
        -------
        dict of str to float
            Region name -> fraction of walkers (dimensionless).
        """
        reg = self.region_of_component(home)
        return {nm: float(np.mean(reg == r)) for r, nm in enumerate(self.region_names)}

    def signal_groups(self, home: np.ndarray, positions: np.ndarray | None = None
                      ) -> tuple[np.ndarray, list[str]] | None:
        """Groups of components named by the generator (``truth["component_groups"]``: one name per component,
        e.g. the bundle of each fibre), crossed with the regions: "intra.bundle_0", "myelin.bundle_1", ...,
        and "extra" for walkers outside every component; None where the generator named none.

        Parameters
        ----------
        home : numpy.ndarray
            (N,) innermost component of each walker at the start, -1 outside every component.
        positions : numpy.ndarray, optional
            Not needed here (``home`` names the component).

        Returns
        -------
        (labels, names) or None
            (N,) int64 index into ``names`` per walker.
        """
        groups = self.truth.get("component_groups")
        if not groups:
            return None
        regions = self.region_names
        comp_region = self.region_of_component(np.arange(self.n_components))
        tags = [f"{regions[r]}.{g}" for r, g in zip(comp_region, groups)]
        names = list(dict.fromkeys(tags))
        if "extra" in regions:
            names.append("extra")
        index = np.array([names.index(t) for t in tags] + [len(names) - 1], dtype=np.int64)
        h = np.asarray(home, dtype=np.int64)
        return index[np.where(h >= 0, h, len(tags))], names

    def to_trimesh(self):
        """The mesh as a ``trimesh.Trimesh`` (vertices in m).

        Returns
        -------
        trimesh.Trimesh
            Vertices (V, 3) in m and faces (F, 3), unprocessed.
        """
        import trimesh
        return trimesh.Trimesh(self.vertices, self.faces, process=False)

    def __repr__(self) -> str:
        vf = ", ".join(f"{k} {v:.3f}" for k, v in self.volume_fractions().items())
        return (f"MeshSubstrate({len(self.faces)} faces, {self.n_components} components; "
                f"volume fractions: {vf})")


# --------------------------------------------------------------------------------------------- building
def _faces_area(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    return 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)


def unique_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse ids and counts of the rows of an integer array, ranked in lexicographic row order.

    The same ids and counts as ``np.unique(a, axis=0, return_inverse=True, return_counts=True)``, without its
    sort of rows as opaque records (10-30x slower on the million-edge lists of a large mesh): rows whose
    columns' ranges fit 62 bits together are packed into one integer, others sorted with ``np.lexsort``.
    """
    a = np.asarray(a)
    if a.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    lo_col, hi_col = a.min(axis=0).astype(np.int64), a.max(axis=0).astype(np.int64)
    bits = [int(x).bit_length() for x in hi_col - lo_col]
    if sum(bits) <= 62:
        # offsets from each column's least value, the first column most significant: one integer per row in
        # the same lexicographic order (edges with their component, welded vertex pairs)
        key = np.zeros(len(a), dtype=np.int64)
        for col, (b, m) in enumerate(zip(bits, lo_col)):
            key = (key << b) | (a[:, col].astype(np.int64) - m)
        _, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
        return inv.ravel().astype(np.int64), cnt
    order = np.lexsort(a.T[::-1])
    srt = a[order]
    new = np.ones(len(a), dtype=bool)
    new[1:] = np.any(srt[1:] != srt[:-1], axis=1)
    inv = np.empty(len(a), dtype=np.int64)
    inv[order] = np.cumsum(new) - 1
    cnt = np.diff(np.r_[np.nonzero(new)[0], len(a)])
    return inv, cnt


def _weld(v: np.ndarray, box: np.ndarray, tol: float) -> np.ndarray:
    """Vertex ids after merging positions equal up to ``tol``, modulo the periodic box."""
    w = v.copy()
    for a in range(3):
        if np.isfinite(box[a]):
            w[:, a] = np.mod(w[:, a], box[a])
            w[np.abs(w[:, a] - box[a]) < tol, a] = 0.0
            w[np.abs(w[:, a]) < tol, a] = 0.0
    key = np.round(w / tol).astype(np.int64)
    return unique_rows(key)[0]


def _edges(f_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed half-edges (3F, 2) of a triangle list over welded vertex ids, their undirected edge ids and the
    edges' counts (computed once, shared by the edge report and the components: the sort of the million
    edges of a large mesh is most of their cost)."""
    e = np.concatenate([f_ids[:, [0, 1]], f_ids[:, [1, 2]], f_ids[:, [2, 0]]])
    inv, cnt = unique_rows(np.sort(e, axis=1))
    return e, inv, cnt


def _edge_report(f_ids: np.ndarray, edges=None):
    """Directed-edge counts of a triangle list over welded vertex ids (``edges``: its :func:`_edges`)."""
    e, inv, cnt = _edges(f_ids) if edges is None else edges
    forward = (e[:, 0] < e[:, 1]).astype(np.int64)
    fw = np.bincount(inv, weights=forward, minlength=len(cnt))
    open_edges = int(np.sum(cnt == 1))
    nonmanifold = int(np.sum(cnt > 2))
    bad_winding = int(np.sum((cnt == 2) & (fw != 1)))
    return open_edges, nonmanifold, bad_winding


def _components(f_ids: np.ndarray, nv: int, edges=None) -> tuple[int, np.ndarray]:
    """Connected components of faces that share an edge (``edges``: the faces' :func:`_edges`)."""
    F = len(f_ids)
    inv = (_edges(f_ids) if edges is None else edges)[1]
    face = np.tile(np.arange(F), 3)
    order = np.argsort(inv, kind="stable")
    inv_s, face_s = inv[order], face[order]
    same = inv_s[1:] == inv_s[:-1]
    a, b = face_s[:-1][same], face_s[1:][same]
    g = coo_matrix((np.ones(len(a)), (a, b)), shape=(F, F))
    return connected_components(g, directed=False)


def _component_volumes(v: np.ndarray, f: np.ndarray, comp: np.ndarray, C: int):
    """Signed volume (flux of (x, 0, 0), so caps normal to y or z add nothing) and area per component."""
    p0, p1, p2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    cr = np.cross(p1 - p0, p2 - p0)  # 2 A n
    xc = (p0[:, 0] + p1[:, 0] + p2[:, 0]) / 3.0
    vol = np.bincount(comp, weights=0.5 * cr[:, 0] * xc, minlength=C)
    area = np.bincount(comp, weights=0.5 * np.linalg.norm(cr, axis=1), minlength=C)
    return vol, area


def _build_mesh_grid(v: np.ndarray, f: np.ndarray, comp: np.ndarray, box: np.ndarray,
                     cell_size: float | None = None, return_bounds: bool = False):
    """Triangle images of every component copy that meets the box, and the grids over them.

    With ``return_bounds``, also the triangle images' (Q, 3) bounding boxes (lo, hi), which the nesting check
    reuses rather than gathers again.
    """
    per = np.isfinite(box)
    Lb = np.where(per, box, 0.0)
    C = int(comp.max()) + 1 if len(comp) else 0
    order = np.argsort(comp, kind="stable")
    p0, p1, p2 = v[f[order, 0]], v[f[order, 1]], v[f[order, 2]]
    comp_s = comp[order]
    cstart0 = np.searchsorted(comp_s, np.arange(C + 1))
    # per component bounding box (every component has faces: reduceat over the face-sorted rows)
    lo_c = np.minimum.reduceat(np.minimum(np.minimum(p0, p1), p2), cstart0[:-1], axis=0) if C else np.zeros((0, 3))
    hi_c = np.maximum.reduceat(np.maximum(np.maximum(p0, p1), p2), cstart0[:-1], axis=0) if C else np.zeros((0, 3))
    rows, rc, rf, starts = [], [], [], [0]
    for c in range(C):
        a, b = cstart0[c], cstart0[c + 1]
        # every periodic image whose bounding box meets the box: -1, 0, 1 for a component inside one box; more
        # for one that closes across several boxes (a tilted fibre) or lies outside [0, box)
        rng_ = [range(int(math.ceil(-hi_c[c][ax] / Lb[ax])) if per[ax] else 0,
                      (int(math.floor((Lb[ax] - lo_c[c][ax]) / Lb[ax])) if per[ax] else 0) + 1) for ax in range(3)]
        shifts = np.array([[i, j, k] for i in rng_[0] for j in rng_[1] for k in rng_[2]], dtype=float)
        for s in shifts:
            off = s * Lb
            lo, hi = lo_c[c] + off, hi_c[c] + off
            if np.all(~per | ((hi >= 0) & (lo <= Lb))):
                rows.append(triangle_rows(p0[a:b] + off, p1[a:b] + off, p2[a:b] + off))
                rc.append(np.full(b - a, c))
                rf.append(order[a:b])
        starts.append(sum(len(r) for r in rows))
    tri = np.ascontiguousarray(np.concatenate(rows)) if rows else np.zeros((0, 13))
    tcomp = np.concatenate(rc).astype(np.int64)
    tface = np.concatenate(rf).astype(np.int64)
    lo_t, hi_t = _image_bounds(v, f, tface, tri)
    lo = np.where(per, 0.0, lo_t.min(axis=0))
    ext = np.where(per, Lb, hi_t.max(axis=0) - lo_t.min(axis=0))
    pad_ext = 1e-6 * float(ext.max())
    lo = np.where(per, lo, lo - pad_ext)
    ext = np.where(per, ext, ext + 2 * pad_ext)
    if cell_size is None:
        # about one triangle across (the edge of an equilateral triangle of the median area): measured best on
        # icospheres (0.5x and 2x the edge are 1.5x slower); long thin triangles count by their area
        area = 0.5 * np.linalg.norm(np.cross(p1 - p0, p2 - p0), axis=1)
        cell_size = 1.52 * math.sqrt(float(np.median(area)))
    cell_size = max(cell_size, float(np.prod(ext) / 4e6) ** (1 / 3))  # at most ~4 million cells
    n = np.maximum(1, np.floor(ext / cell_size)).astype(np.int64)
    n = np.minimum(n, 1024)
    h = ext / n
    pad = 1e-6 * float(h.min())
    start, items = build_grid(tri, lo_t, hi_t, lo, h, n, pad)
    cst, cit = build_columns(lo_t, hi_t, tcomp, lo, h, n, pad)
    clear = _clearance(start, n, h, per, pad)
    grid = MeshGrid(tri, tcomp, tface, np.asarray(starts, dtype=np.int64), lo, h, n, Lb, start, items, cst, cit,
                    clear)
    return (grid, (lo_t, hi_t)) if return_bounds else grid


def _clearance(start: np.ndarray, n: np.ndarray, h: np.ndarray, per: np.ndarray, pad: float,
               reach: int = 6) -> np.ndarray:
    """Per cell, the smallest distance from its points to any occupied cell (a bound on the triangle distance).

    The gap between two cells whose indices differ by k is |max(|k| - 1, 0)| h, which is the Euclidean
    distance from the cell to the occupied set dilated by one cell; periodic axes wrap, and bounds are
    capped at ``reach`` cells.
    """
    from scipy import ndimage
    occ = (np.diff(start) > 0).reshape(tuple(n))
    widths = [(reach, reach) if per[a] else (0, 0) for a in range(3)]
    big = np.pad(occ, widths, mode="wrap") if any(per) else occ
    dil = ndimage.binary_dilation(big, structure=np.ones((3, 3, 3), bool), border_value=0)
    if not dil.any():
        dist = np.full(big.shape, np.inf)
    else:
        dist = ndimage.distance_transform_edt(~dil, sampling=h)
    sl = tuple(slice(w[0], w[0] + n[a]) for a, w in enumerate(widths))
    d = dist[sl]
    cap = (reach - 1) * float(h.min()) if any(per) else np.inf
    d = np.minimum(d, cap) - 2 * pad
    return np.ascontiguousarray(np.maximum(d, 0.0).ravel())


def image_vertices(v: np.ndarray, f: np.ndarray, tface: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(Q, 3, 3) vertices of each triangle image (the face's vertices shifted like its v0)."""
    shift = tri[:, 0:3] - v[f[tface, 0]]
    return v[f[tface]] + shift[:, None, :]


@njit(cache=True)
def _image_bounds(v, f, tface, tri):
    """(lo, hi): each triangle image's bounding box (Q, 3), the bits of :func:`image_vertices`' min and max."""
    Q = tface.shape[0]
    lo = np.empty((Q, 3))
    hi = np.empty((Q, 3))
    for q in range(Q):
        fq = tface[q]
        p0 = f[fq, 0]
        for a in range(3):
            sh = tri[q, a] - v[p0, a]
            m0 = np.inf
            m1 = -np.inf
            for k in range(3):
                x = v[f[fq, k], a] + sh
                m0 = min(m0, x)
                m1 = max(m1, x)
            lo[q, a] = m0
            hi[q, a] = m1
    return lo, hi


@njit(cache=True, parallel=True)
def _self_intersections(tri, v, f, tface, vid, lo, h, n, start, items, limit):
    """Number of (edge, triangle) pairs where an edge of one face passes through another face it does not
    touch, up to ``limit``. The image vertices are formed as :func:`image_vertices` forms them (same bits);
    images are checked in parallel and their counts summed (an integer: the same for any thread count)."""
    Q = tri.shape[0]
    per_image = np.zeros(Q, dtype=np.int64)
    for q in prange(Q):
        per_image[q] = _image_crossings(tri, v, f, tface, vid, lo, h, n, start, items, q)
    return min(int(per_image.sum()), limit)


@njit(cache=True)
def _image_crossings(tri, v, f, tface, vid, lo, h, n, start, items, q):
    """Crossings of image q's three edges with the faces listed in the cells they pass."""
    found = 0
    fq = tface[q]
    p0 = f[fq, 0]
    sx, sy, sz = tri[q, 0] - v[p0, 0], tri[q, 1] - v[p0, 1], tri[q, 2] - v[p0, 2]
    for e in range(3):
        pa, pb = f[fq, e], f[fq, (e + 1) % 3]
        ax, ay, az = v[pa, 0] + sx, v[pa, 1] + sy, v[pa, 2] + sz
        bx, by, bz = v[pb, 0] + sx, v[pb, 1] + sy, v[pb, 2] + sz
        i0 = max(int(math.floor((min(ax, bx) - lo[0]) / h[0])), 0)
        i1 = min(int(math.floor((max(ax, bx) - lo[0]) / h[0])), n[0] - 1)
        j0 = max(int(math.floor((min(ay, by) - lo[1]) / h[1])), 0)
        j1 = min(int(math.floor((max(ay, by) - lo[1]) / h[1])), n[1] - 1)
        k0 = max(int(math.floor((min(az, bz) - lo[2]) / h[2])), 0)
        k1 = min(int(math.floor((max(az, bz) - lo[2]) / h[2])), n[2] - 1)
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                for k in range(k0, k1 + 1):
                    c = (i * n[1] + j) * n[2] + k
                    for it in range(start[c], start[c + 1]):
                        r = items[it]
                        if r == q:
                            continue
                        shared = False
                        for x in range(3):
                            for y in range(3):
                                if vid[q, x] == vid[r, y]:
                                    shared = True
                        if shared:
                            continue
                        nx, ny, nz, off = tri[r, 3], tri[r, 4], tri[r, 5], tri[r, 12]
                        sa = nx * ax + ny * ay + nz * az - off
                        sb = nx * bx + ny * by + nz * bz - off
                        if sa * sb > 0.0 or (sa == 0.0 and sb == 0.0):
                            continue  # both ends on one side, or coplanar
                        t = sa / (sa - sb)
                        wx = ax + t * (bx - ax) - tri[r, 0]
                        wy = ay + t * (by - ay) - tri[r, 1]
                        wz = az + t * (bz - az) - tri[r, 2]
                        u = wx * tri[r, 6] + wy * tri[r, 7] + wz * tri[r, 8]
                        vv = wx * tri[r, 9] + wy * tri[r, 10] + wz * tri[r, 11]
                        # inclusive: an edge through another face's edge or vertex is a crossing too
                        if u >= -1e-9 and vv >= -1e-9 and u + vv <= 1.0 + 1e-9:
                            found += 1
    return found


@njit(cache=True)
def _inside_component(tri, a, b, px, py, pz):
    """Parity of crossings of rays from p with triangle rows a:b (1 inside, 0 outside, -2 undecided)."""
    for attempt in range(32):
        dx, dy, dz = recast_direction(attempt) if attempt else (1.0, 0.0, 0.0)  # +x first, as locate_one
        par = 0
        ok = True
        for q in range(a, b):
            nx, ny, nz = tri[q, 3], tri[q, 4], tri[q, 5]
            dn = nx * dx + ny * dy + nz * dz
            s = nx * px + ny * py + nz * pz - tri[q, 12]
            if abs(dn) < 1e-12:
                if abs(s) < 1e-15:
                    ok = False
                    break
                continue
            t = -s / dn
            if t < 0.0:
                continue
            wx = px + t * dx - tri[q, 0]
            wy = py + t * dy - tri[q, 1]
            wz = pz + t * dz - tri[q, 2]
            u = wx * tri[q, 6] + wy * tri[q, 7] + wz * tri[q, 8]
            v = wx * tri[q, 9] + wy * tri[q, 10] + wz * tri[q, 11]
            if u < -1e-7 or v < -1e-7 or u + v > 1.0 + 1e-7:
                continue
            if u < 1e-7 or v < 1e-7 or u + v > 1.0 - 1e-7 or t == 0.0:
                ok = False
                break
            par ^= 1
        if ok:
            return par
    return -2


def _nesting(v, f, comp, C, g: MeshGrid, bounds=None):
    """Depth and parent of each component, from one point just inside each (``bounds``: the (lo, hi) boxes
    of the grid's triangle images, when already at hand)."""
    # a point just inside each component: a face centroid moved inwards by a tiny fraction of its size
    depth = np.zeros(C, dtype=np.int64)
    parent = np.full(C, -1, dtype=np.int64)
    if C < 2:
        return depth, parent
    contains = []
    lo_t, hi_t = _image_bounds(v, f, g.face, g.tri) if bounds is None else bounds
    # each component's images' box (segments of the component-sorted images; an empty one stays infinite)
    lo_img = np.full((C, 3), np.inf)
    hi_img = np.full((C, 3), -np.inf)
    cs = np.asarray(g.comp_start)
    full = np.nonzero(cs[1:] > cs[:-1])[0]
    if len(full):
        lo_img[full] = np.minimum.reduceat(lo_t, cs[full], axis=0)
        hi_img[full] = np.maximum.reduceat(hi_t, cs[full], axis=0)
    first = np.array([np.flatnonzero(comp == c)[0] for c in range(C)])
    for c in range(C):
        q = first[c]
        p = v[f[q]].mean(axis=0)
        nrm = np.cross(v[f[q, 1]] - v[f[q, 0]], v[f[q, 2]] - v[f[q, 0]])
        size = math.sqrt(np.linalg.norm(nrm))
        p = p - 1e-4 * size * nrm / np.linalg.norm(nrm)
        # wrap into the box so it meets the images stored there
        for a in range(3):
            if g.box[a] > 0:
                p[a] = p[a] % g.box[a]
        inside_of = []
        for o in range(C):
            if o == c or np.any(p < lo_img[o]) or np.any(p > hi_img[o]):
                continue
            r = _inside_component(g.tri, g.comp_start[o], g.comp_start[o + 1], p[0], p[1], p[2])
            if r == 1:
                inside_of.append(o)
        contains.append(inside_of)
        depth[c] = len(inside_of)
    for c in range(C):
        if contains[c]:
            parent[c] = max(contains[c], key=lambda o: depth[o])
    return depth, parent


def mesh_substrate(vertices, faces, box=None, permeability=0.0, repair: bool = False,
                   check_self_intersections: bool = True, description: dict | None = None,
                   truth: dict | None = None, _weld_tol: float | None = None, *,
                   relaxivity=0.0, region_labels=None) -> MeshSubstrate:
    """A mesh substrate from vertex and face arrays in metres, after every check.

    Parameters
    ----------
    vertices : array_like
        (V, 3) vertex positions in m.
    faces : array_like
        (F, 3) vertex indices of triangles, counter-clockwise seen from outside.
    box : array_like, optional
        (3,) periodic box in m (np.inf for a non-periodic axis); the box spans
        [0, box) on each periodic axis. Default: not periodic (walkers start
        inside the components).
    permeability : float, array_like or dict
        Membrane permeability kappa in m/s, one value or one per component
        (0: impermeable), or ``{"outward": ..., "inward": ...}`` where it depends on the direction.
    relaxivity : float or array_like
        Surface relaxivity rho in m/s, one value or one per component (0:
        none; tissue about 1e-8 to 1e-5 m/s), acting on both faces of each
        wall (see :func:`walker.survival_probability`).
    region_labels : sequence of str, optional
        Names of the regions by nesting depth, outermost first (default "intra", "inner", ...).
    repair : bool
        Fix what can be fixed safely, keeping the surface closed and its volume: collapse zero-area faces
        into their neighbours (coincident vertices merged; a sliver's middle vertex given to the face across
        its long edge), drop duplicate faces and both faces of double-sided fins (a face and its reverse),
        flip inverted components, make winding consistent and fill holes (filling needs networkx).
    check_self_intersections : bool
        Refuse meshes whose faces cross each other (edge-through-face test on
        the grid; exact for non-coplanar faces).
    description, truth : dict, optional
        Provenance and generator ground truth (SI) to carry along.
    _weld_tol : float, optional
        Internal: distance in m under which vertices are welded into one
        (default 1e-6 times the median edge length).

    Returns
    -------
    MeshSubstrate

    Raises
    ------
    MeshError
        Naming the problem (open, non-manifold, inconsistent winding, inverted,
        degenerate faces, self-intersections, components that cross, wrong units).
    """
    v = np.ascontiguousarray(np.asarray(vertices, dtype=float).reshape(-1, 3))
    f = np.ascontiguousarray(np.asarray(faces).reshape(-1, 3)).astype(np.int64)
    if len(f) == 0 or len(v) < 4:
        raise MeshError("the mesh has no faces")
    if not np.all(np.isfinite(v)):
        raise MeshError("the mesh has NaN or infinite vertex coordinates")
    if f.min() < 0 or f.max() >= len(v):
        raise MeshError("faces refer to vertices that do not exist")
    box = np.full(3, np.inf) if box is None else np.asarray(box, dtype=float).ravel()
    if box.shape != (3,) or np.any(box <= 0) or np.any(np.isnan(box)):
        raise MeshError(f"box must be three positive lengths in m (np.inf for a non-periodic axis), got {box!r}")
    _check_extent(v, box)
    notes = []
    area = _faces_area(v, f)
    edge = float(np.median(np.linalg.norm(v[f[:, 1]] - v[f[:, 0]], axis=1)))
    degenerate = area <= 1e-12 * edge**2
    if np.any(degenerate) and not repair:
        raise MeshError(f"{int(degenerate.sum())} degenerate (zero-area) faces (collinear or coincident vertices); "
                        "pass repair=True to collapse them into their neighbours (the surface stays closed)")
    tol = _weld_tol if _weld_tol is not None else 1e-6 * edge
    ids = _weld(v, box, tol)
    fid = ids[f]
    keep, n_fins, n_dups = _duplicate_faces(fid)
    if n_fins or n_dups:
        if not repair:
            what = []
            if n_fins:
                what.append(f"{n_fins} double-sided fins (a face and the same face reversed: a flap of zero "
                            "thickness)")
            if n_dups:
                what.append(f"{n_dups} duplicate faces")
            raise MeshError(f"{' and '.join(what)}; pass repair=True to drop them (both faces of a fin)")
        if n_fins:
            notes.append(f"dropped {n_fins} double-sided fins (a face and its reverse: {2 * n_fins} faces)")
        if n_dups:
            notes.append(f"dropped {n_dups} duplicate faces")
        f, fid, degenerate = f[keep], fid[keep], degenerate[keep]
    if np.any(degenerate):
        v, f, more = _absorb_degenerate(v, f, fid, degenerate, edge)
        notes += more
        ids = _weld(v, box, tol)
        fid = ids[f]
    edges = _edges(fid)
    open_e, nonman, wind = _edge_report(fid, edges)
    if nonman:
        raise MeshError(f"the mesh is not manifold: {nonman} edges are shared by more than two faces "
                        "(touching or merged bodies); separate the bodies or remesh")
    if open_e or wind:
        if not repair:
            msg = []
            if open_e:
                msg.append(f"it is open ({open_e} boundary edges: holes or a missing face"
                           + ("; an axon cut by the box must meet its own image exactly" if np.any(np.isfinite(box))
                              else "") + ")")
            if wind:
                msg.append(f"its winding is inconsistent ({wind} edges run the same way in both faces)")
            raise MeshError("the mesh is not a closed, consistently oriented surface: " + "; ".join(msg)
                            + ". Pass repair=True to make the winding consistent" + (" and fill holes (needs "
                                                                                  "networkx)" if open_e else ""))
        v, f, more = _repair_topology(v, f, fid, box, open_e)
        notes += more
        ids = _weld(v, box, tol)
        fid = ids[f]
        edges = _edges(fid)
        open_e, nonman, wind = _edge_report(fid, edges)
        if open_e or nonman or wind:
            raise MeshError(f"repair failed: still {open_e} open, {nonman} non-manifold and {wind} inconsistent "
                            "edges")
    C, comp = _components(fid, int(ids.max()) + 1, edges)
    del edges
    comp = comp.astype(np.int64)
    seams = _seams(v, f, ids, box)
    _check_fits_box(v, f, comp, C, box, seams)
    _check_glue(seams, box)
    del seams
    vol, area_c = _component_volumes(v, f, comp, C)
    inverted = vol < 0
    if np.any(inverted):
        if not repair:
            raise MeshError(f"{int(inverted.sum())} of {C} components are inverted (normals point inwards, negative "
                            "volume); pass repair=True to flip them")
        flip = inverted[comp]
        f[flip] = f[flip][:, ::-1]
        vol = np.abs(vol)
        notes.append(f"flipped {int(inverted.sum())} inverted components")
    tiny = vol <= 1e-12 * float(np.max(vol))
    if np.any(tiny):
        raise MeshError(f"{int(tiny.sum())} components enclose no volume (flat or self-cancelling surfaces)")
    g, bounds = _build_mesh_grid(v, f, comp, box, return_bounds=True)
    if check_self_intersections:
        vid = ids[f[g.face]]  # ids weld v as it is now (repairs above re-weld; flips change only f)
        n_x = _self_intersections(g.tri, v, f, g.face, vid, g.lo, g.h, g.n, g.start, g.items, 1000)
        if n_x:
            raise MeshError(f"faces intersect ({n_x}{'+' if n_x >= 1000 else ''} edge-face crossings): the mesh "
                            "self-intersects or two components overlap (periodic images included); impermeable "
                            "walls must not cross. Repair it in a mesh tool, or shrink/move the bodies")
    depth, parent = _nesting(v, f, comp, C, g, bounds)
    del bounds
    if np.all(np.isfinite(box)):
        used = float(np.sum(vol[depth == 0]))
        if used >= np.prod(box) * (1 - 1e-9):
            raise MeshError("the components fill the whole box: no extra-cellular space left; enlarge the box")
    desc = dict(description or {"factory": "mesh_substrate"})
    if notes:
        desc["repairs"] = notes
    labels = _check_region_labels(region_labels, int(depth.max(initial=0)) + 1)
    sub = MeshSubstrate(kind=MESH, box=box, description=desc, permeability=check_permeability(permeability, C),
                        relaxivity=check_relaxivity(relaxivity, C),
                        vertices=v, faces=f, face_component=comp, depth=depth, parent=parent,
                        component_volume=vol, component_area=area_c, truth=dict(truth or {}), region_labels=labels)
    sub.__dict__["_grid"] = g
    return sub


def _duplicate_faces(fid: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Faces to keep among faces on the same three (welded) vertices, and how many fins and copies go.

    A face and its reverse bound nothing (a double-sided fin, zero thickness): both go. Copies with the
    same winding are one face: one stays. In a group of both kinds the pairs cancel and one face of the
    winding left over stays.

    Parameters
    ----------
    fid : numpy.ndarray
        (F, 3) faces over welded vertex ids.

    Returns
    -------
    keep : numpy.ndarray
        (F,) bool.
    n_fins : int
        Face-and-reverse pairs dropped.
    n_dups : int
        Same-winding copies dropped.
    """
    F = len(fid)
    key = np.sort(fid, axis=1)
    inv, counts = unique_rows(key)
    keep = np.ones(F, bool)
    if not np.any(counts > 1):
        return keep, 0, 0
    # winding: rotate each face to start at its smallest id; then (a, b, c) and (a, c, b) are reverses
    r = np.argmin(fid, axis=1)
    second = fid[np.arange(F), (r + 1) % 3]
    third = fid[np.arange(F), (r + 2) % 3]
    up = second < third
    n_fins = n_dups = 0
    order = np.argsort(inv, kind="stable")  # faces grouped by vertex set, each group in face order
    starts = np.concatenate([[0], np.cumsum(counts)])
    for g in np.flatnonzero(counts > 1):
        members = order[starts[g]:starts[g + 1]]
        pos, neg = members[up[members]], members[~up[members]]
        pairs = min(len(pos), len(neg))
        n_fins += pairs
        rest = pos if len(pos) > len(neg) else neg
        keep[members] = False
        if len(rest) > pairs:
            keep[rest[0]] = True  # the first face of the winding left over
            n_dups += len(rest) - pairs - 1
    return keep, n_fins, n_dups


def _absorb_degenerate(v: np.ndarray, f: np.ndarray, fid: np.ndarray, bad: np.ndarray,
                       edge: float) -> tuple[np.ndarray, np.ndarray, list]:
    """Remove zero-area faces without opening the surface.

    A face whose vertices weld into fewer than three is the trace of an edge already collapsed by the
    weld: dropping it glues its neighbours to each other. A face of three distinct, collinear vertices
    (p, q and m between them: a sliver, as marching-cubes tools leave where a vertex splits an edge on one
    side only) is removed by splitting the face on the other side of its long edge p-q at m, so that this
    neighbour takes the vertex: both halves tile the neighbour exactly, the volume does not change and every edge
    keeps two faces. Where the faces around do not allow it (an open or non-manifold edge), the face is
    dropped and the checks that follow name what is left.

    Parameters
    ----------
    v : numpy.ndarray
        (V, 3) vertices in m.
    f, fid : numpy.ndarray
        (F, 3) faces over vertex indices and over welded ids.
    bad : numpy.ndarray
        (F,) bool, the zero-area faces.
    edge : float
        Typical edge length in m (scale of the zero-area test).

    Returns
    -------
    v, f, notes
        Vertices (a vertex is added where a split crosses the periodic box), faces and what was done.
    """
    faces = [list(x) for x in f.tolist()]
    wids = [list(x) for x in fid.tolist()]
    alive = [True] * len(faces)
    extra: list[np.ndarray] = []  # vertices added where a split crosses the periodic box
    on_edge: dict[tuple[int, int], list[int]] = {}

    def coord(i: int) -> np.ndarray:
        return v[i] if i < len(v) else extra[i - len(v)]

    def add(face: list, w: list) -> int:
        faces.append(face)
        wids.append(w)
        alive.append(True)
        for j in range(3):
            on_edge.setdefault((min(w[j], w[j - 1]), max(w[j], w[j - 1])), []).append(len(faces) - 1)
        return len(faces) - 1

    def around(a: int, b: int) -> list:
        return [k for k in on_edge.get((min(a, b), max(a, b)), []) if alive[k]]

    def zero_area(face: list) -> bool:
        A = [coord(i) for i in face]
        return float(np.linalg.norm(np.cross(A[1] - A[0], A[2] - A[0]))) / 2 <= 1e-12 * edge**2

    for k, w in enumerate(wids):
        for j in range(3):
            on_edge.setdefault((min(w[j], w[j - 1]), max(w[j], w[j - 1])), []).append(k)
    collapsed = split = dropped = 0
    queue = [int(k) for k in np.flatnonzero(bad)]
    budget = 4 * len(queue) + 16  # a split whose halves are zero-area again is retried, never forever
    while queue and budget > 0:
        budget -= 1
        k = queue.pop(0)
        if not alive[k]:
            continue
        alive[k] = False
        w = wids[k]
        if len(set(w)) < 3:
            collapsed += 1
            continue
        lengths = [float(np.linalg.norm(coord(faces[k][(j + 1) % 3]) - coord(faces[k][j]))) for j in range(3)]
        j = int(np.argmax(lengths))  # the long edge runs from corner j to j + 1; m is corner j + 2
        p, q, m = w[j], w[(j + 1) % 3], w[(j + 2) % 3]
        nb = around(p, q)
        if len(nb) != 1 or len(around(q, m)) != 1 or len(around(m, p)) != 1:
            dropped += 1
            continue
        g = nb[0]
        r = wids[g].index(p)
        # the neighbour's corners as (x, y, d), {x, y} = {p, q}, in its own winding
        rot = [r, (r + 1) % 3, (r + 2) % 3] if wids[g][(r + 1) % 3] == q else [(r + 2) % 3, r, (r + 1) % 3]
        X, Y, D = (faces[g][t] for t in rot)
        wx, wy, wd = (wids[g][t] for t in rot)
        # the neighbour's copy of x may be a periodic image of the sliver's: m moves by the same shift
        shift = coord(X) - coord(faces[k][j] if wx == p else faces[k][(j + 1) % 3])
        M = faces[k][(j + 2) % 3]
        if np.any(np.abs(shift) > 1e-3 * edge):
            extra.append(coord(M) + shift)
            M = len(v) + len(extra) - 1
        alive[g] = False
        for face, wf in (([X, M, D], [wx, m, wd]), ([M, Y, D], [m, wy, wd])):
            kk = add(face, wf)
            if zero_area(face):
                queue.append(kk)  # the neighbour was a sliver too: absorb this half in turn
        split += 1
    for k in queue:  # what the budget left
        if alive[k]:
            alive[k] = False
            dropped += 1
    f_out = np.array([fc for fc, a in zip(faces, alive) if a], dtype=np.int64).reshape(-1, 3)
    v_out = np.concatenate([v, np.array(extra).reshape(-1, 3)]) if extra else v
    notes = []
    if collapsed:
        notes.append(f"collapsed {collapsed} zero-area faces whose vertices coincide")
    if split:
        notes.append(f"absorbed {split} zero-area slivers (collinear vertices) by splitting the neighbour across "
                     "their long edge")
    if dropped:
        notes.append(f"dropped {dropped} zero-area faces that could not be absorbed")
    return v_out, f_out, notes


def _check_region_labels(labels, n_depths: int) -> tuple:
    """Region names by nesting depth, checked: one per depth, distinct, none of the reserved names."""
    if labels is None:
        return ()
    labels = tuple(str(x) for x in labels)
    reserved = {"extra", "uniform"} & set(labels)
    if len(labels) != n_depths or len(set(labels)) != len(labels) or reserved:
        raise MeshError(f"region_labels must name each of the {n_depths} nesting depths once (outermost first), "
                        f"without 'extra' or 'uniform'; got {list(labels)}")
    return labels


def _check_extent(v: np.ndarray, box: np.ndarray) -> None:
    ext = float(np.max(v.max(axis=0) - v.min(axis=0)))
    if ext > 1e-3:
        raise MeshError(f"the mesh is {ext:g} m across, larger than a millimetre: the units look wrong by 10^3 or "
                        "10^6 (a mesh written in micrometres needs units='um')")
    if ext < 5e-8:
        raise MeshError(f"the mesh is {ext:g} m across, smaller than 50 nm: the units look wrong by 10^3 or 10^6 "
                        "(a mesh written in micrometres needs units='um', not 'nm' or 'm')")
    fb = box[np.isfinite(box)]
    if fb.size and (fb.max() > 1e-2 or fb.min() < 5e-8):
        raise MeshError(f"box {box.tolist()} is not plausible in metres (a 50 um box is 5e-5)")


def _seams(v: np.ndarray, f: np.ndarray, ids: np.ndarray, box: np.ndarray) -> np.ndarray:
    """(F, 3) bool: whether a face has an edge on a seam along each axis, where the periodic weld (``ids``)
    joined both its ends to copies about a box away: where a surface cut by that face of the box continues
    into its periodic image.

    The mesh has passed the edge report with these ids, so a component with no such edge is closed by
    itself, and one cut by the box is glued to its image exactly along them: no second weld and sort of the
    edges is needed to tell them apart (a lone vertex touching an image is no seam)."""
    rep = np.empty(int(ids.max()) + 1, dtype=np.int64)
    rep[ids] = np.arange(len(ids))
    half = np.where(np.isfinite(box), 0.5 * box, np.inf)
    joined = np.abs(v - v[rep[ids]]) > half  # (V, 3)
    # the representative of a group is unshifted; its partners are shifted: count a face's ends on either side
    glued = np.zeros((int(ids.max()) + 1, 3), dtype=bool)
    np.logical_or.at(glued, ids, joined)
    return glued[ids][f].sum(axis=1) >= 2


def _check_fits_box(v: np.ndarray, f: np.ndarray, comp: np.ndarray, C: int, box: np.ndarray,
                    seams: np.ndarray) -> None:
    """Refuse a periodic box smaller than a component (it would overlap its own periodic image)."""
    if not np.any(np.isfinite(box)):
        return
    # components closed by themselves (not axons that continue into their own image across the box); the
    # ones glued to their periodic image are judged by _check_glue
    is_open = np.bincount(comp[seams.any(axis=1)], minlength=C) > 0
    order = np.argsort(comp, kind="stable")
    first = np.searchsorted(comp[order], np.arange(C))
    fv = v[f[order]]
    span = np.maximum.reduceat(fv.max(axis=1), first) - np.minimum.reduceat(fv.min(axis=1), first)
    for c in np.nonzero(~is_open)[0]:
        small = np.isfinite(box) & (span[c] > box * (1 + 1e-9))
        if np.any(small):
            ax = int(np.nonzero(small)[0][0])
            raise MeshError(f"component {c} spans {span[c][ax] * 1e6:.4g} um along {'xyz'[ax]} but the periodic box is "
                            f"only {box[ax] * 1e6:.4g} um: it would overlap its own periodic image. Give a box at "
                            "least as large as every component")


def _check_glue(seams: np.ndarray, box: np.ndarray) -> None:
    """Refuse components cut open by the x faces of the box (location rays run along x)."""
    if np.isfinite(box[0]) and np.any(seams[:, 0]):
        raise MeshError("a component is cut open by an x face of the box; components may only continue into their "
                        "periodic image across the y or z faces (rotate the mesh so that axons run along z)")


def orient_faces(f_ids: np.ndarray) -> np.ndarray:
    """Flags of the faces to flip so that every edge runs opposite ways in its two faces (consistent winding).

    Faces sharing an edge are neighbours; a neighbour whose shared edge runs the same way must have the
    other orientation. A breadth-first walk from one face per connected piece assigns orientations; a
    contradiction means the surface cannot be oriented (a Moebius-like piece).

    Parameters
    ----------
    f_ids : numpy.ndarray
        (F, 3) faces over welded vertex ids; every edge shared by at most two faces.

    Returns
    -------
    numpy.ndarray
        (F,) bool: True where the face's vertex order must be reversed.
    """
    F = len(f_ids)
    e = np.concatenate([f_ids[:, [0, 1]], f_ids[:, [1, 2]], f_ids[:, [2, 0]]])
    face = np.tile(np.arange(F), 3)
    und = np.sort(e, axis=1)
    inv = unique_rows(und)[0]
    order = np.argsort(inv, kind="stable")
    same = inv[order][1:] == inv[order][:-1]
    i, j = order[:-1][same], order[1:][same]  # the two half-edges of each shared edge
    a, b = face[i], face[j]
    parity = (e[i, 0] == e[j, 0]).astype(np.int8)  # same direction in both faces: one of them must flip
    nbr = coo_matrix((np.ones(2 * len(a)), (np.r_[a, b], np.r_[b, a])), shape=(F, F)).tocsr()
    par = coo_matrix((np.r_[parity, parity].astype(float) + 1.0, (np.r_[a, b], np.r_[b, a])), shape=(F, F)).tocsr()
    flip = np.full(F, -1, dtype=np.int8)
    for root in range(F):
        if flip[root] >= 0:
            continue
        flip[root] = 0
        queue = [root]
        while queue:
            q = queue.pop()
            lo, hi = nbr.indptr[q], nbr.indptr[q + 1]
            for k, w in zip(nbr.indices[lo:hi], par.data[lo:hi]):
                want = flip[q] ^ (int(w) - 1)
                if flip[k] < 0:
                    flip[k] = want
                    queue.append(k)
                elif flip[k] != want:
                    raise MeshError("the surface cannot be oriented consistently (a one-sided piece); remesh it")
    return flip.astype(bool)


def _repair_topology(v, f, fid, box, open_edges):
    """Consistent winding (core, no extra needed); holes filled through trimesh (needs networkx)."""
    notes = []
    flip = orient_faces(fid)
    if np.any(flip):
        f = f.copy()
        f[flip] = f[flip][:, ::-1]
        fid = fid.copy()
        fid[flip] = fid[flip][:, ::-1]
        notes.append(f"made winding consistent (reversed {int(flip.sum())} faces)")
    if open_edges:
        if np.any(np.isfinite(box)):
            raise MeshError("filling holes is only done for non-periodic meshes; close the mesh in a mesh tool")
        try:
            import networkx  # noqa: F401
            import trimesh
            import trimesh.repair  # noqa: F401
        except ImportError as e:  # pragma: no cover - depends on the optional extra
            raise MeshError(f"the mesh is open ({open_edges} boundary edges); filling holes needs networkx: "
                            "pip install 'diffwalk[mesh]'") from e
        m = trimesh.Trimesh(v, f, process=True)
        trimesh.repair.fill_holes(m)
        v, f = np.asarray(m.vertices, float), np.asarray(m.faces, np.int64)
        notes.append("filled holes")
    return v, f, notes


# --------------------------------------------------------------------------------------------- import
def _declared_faces(path: str) -> int | None:
    """Face count as written in the file (polygons), to notice quads that trimesh triangulated."""
    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return None
    if ext == ".ply":
        m = re.search(rb"element face (\d+)", head)
        return int(m.group(1)) if m else None
    if ext == ".off":
        lines = [ln.strip() for ln in head.decode("latin-1").splitlines() if ln.strip() and not ln.startswith("#")]
        if lines and lines[0].upper().endswith("OFF"):
            parts = (lines[0][3:].split() or lines[1].split()) if len(lines) > 1 else []
            if len(parts) >= 2:
                return int(parts[1])
        return None
    if ext == ".obj":
        with open(path, "rb") as fh:
            return sum(1 for ln in fh if ln.startswith(b"f "))
    return None


def from_mesh(path, units: str = "um", box=None, permeability=0.0, repair: bool = False,
              check_self_intersections: bool = True, *, relaxivity=0.0) -> MeshSubstrate:
    """Load a closed triangle mesh (PLY ascii/binary, STL, OBJ, OFF) as a substrate.

    Parameters
    ----------
    path : str or trimesh.Trimesh
        Mesh file, or a mesh already loaded with trimesh (in ``units``).
    units : {"um", "nm", "mm", "m"}
        Length unit of the file's coordinates (CACTUS, Blender exports and most
        EM reconstructions: "um"). Converted to metres; a mesh that comes out
        larger than 1 mm or smaller than 50 nm is refused as a likely unit mistake.
    box : array_like, optional
        (3,) periodic box in m, spanning [0, box) on each axis (np.inf for a
        non-periodic axis). Default: not periodic.
    permeability : float, array_like or dict
        Membrane permeability kappa in m/s, one value or one per component, or
        ``{"outward": ..., "inward": ...}`` where it depends on the direction.
    relaxivity : float or array_like
        Surface relaxivity rho in m/s, one value or one per component (0:
        none; tissue about 1e-8 to 1e-5 m/s), acting on both faces of each
        wall (see :func:`walker.survival_probability`).
    repair : bool
        Fix zero-area and duplicate faces, double-sided fins, inverted components, winding and holes
        (marching-cubes output often has the first three) instead of refusing the mesh (see
        :func:`mesh_substrate`).
    check_self_intersections : bool
        Refuse meshes whose faces cross.

    Returns
    -------
    MeshSubstrate
        Quads and polygons are split into triangles (a warning says so).

    Raises
    ------
    MeshError
        If the file cannot be read or the mesh cannot be walked (see
        :func:`mesh_substrate`).
    FileNotFoundError
        If ``path`` does not exist.

    Examples
    --------
    A sphere of radius 5 um written as a PLY file in micrometres, read back
    in metres:

    >>> import os, tempfile, trimesh, substrates
    >>> sphere = trimesh.creation.icosphere(subdivisions=3, radius=5.0)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "sphere.ply")
    ...     _ = sphere.export(path)
    ...     sub = substrates.from_mesh(path, units="um")
    >>> sub
    MeshSubstrate(1280 faces, 1 components; volume fractions: intra 1.000)
    >>> round(float(sub.vertices.max()) * 1e6, 3)
    5.0

    A mesh already loaded with trimesh works too:
    ``substrates.from_mesh(sphere, units="um")``.
    """
    import trimesh
    if units not in UNITS:
        raise ValueError(f"units must be one of {sorted(UNITS)}, got {units!r}")
    declared = None
    if isinstance(path, trimesh.Trimesh):
        m = path
        src = "trimesh object"
    else:
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no mesh file at {path!r}")
        try:
            m = trimesh.load_mesh(path, process=False)
        except Exception as e:  # noqa: BLE001 - trimesh raises many kinds
            raise MeshError(f"trimesh could not read {path!r}: {e}") from e
        if isinstance(m, trimesh.Scene):
            m = trimesh.util.concatenate(list(m.dump()))
        declared = _declared_faces(path)
        src = os.path.abspath(path)
    n_poly = len(m.faces)
    if declared is not None and declared < n_poly:
        warnings.warn(f"{path}: {declared} polygon faces (quads or larger) were split into {n_poly} triangles",
                      stacklevel=2)
    raw = np.asarray(m.vertices, float)
    bad = ~np.all(np.isfinite(raw), axis=1)
    if np.any(bad):
        raise MeshError(f"{src}: {int(bad.sum())} vertices have NaN or infinite coordinates (the first is vertex "
                        f"{int(np.nonzero(bad)[0][0])}); fix or remove them in a mesh tool")
    # merge coincident vertices in micrometres: trimesh's tolerance (1e-8) is absolute
    to_um = UNITS[units] / 1e-6
    mm = trimesh.Trimesh(raw * to_um, np.asarray(m.faces), process=True, validate=False)
    v = np.asarray(mm.vertices, float) * 1e-6
    f = np.asarray(mm.faces, np.int64)
    desc = {"factory": "from_mesh", "source": src, "units": units, "faces_in_file": int(declared or n_poly)}
    return mesh_substrate(v, f, box=box, permeability=permeability, repair=repair,
                          check_self_intersections=check_self_intersections, description=desc, relaxivity=relaxivity)


# --------------------------------------------------------------------------------------------- files
def _write_file(sub: MeshSubstrate, group) -> None:
    """Store the mesh (vertices in m, faces), its generator's truth and region labels in an open h5py group."""
    group.create_dataset("vertices", data=sub.vertices, compression="gzip")
    group.create_dataset("faces", data=sub.faces, compression="gzip")
    group.attrs["truth"] = json_text(sub.truth)
    group.attrs["region_labels"] = json.dumps(list(sub.region_labels))


def _read_file(group, shared: dict) -> MeshSubstrate:
    """Rebuild a mesh substrate (every mesh check but self-intersection runs again) from a group written by
    :func:`_write_file` and the shared fields."""
    perm, rho = shared["permeability"], shared["relaxivity"]
    return mesh_substrate(group["vertices"][()], group["faces"][()], box=shared["box"],
                          permeability={"outward": perm[:, 0], "inward": perm[:, 1]} if len(perm) else 0.0,
                          description=shared["description"], truth=json.loads(group.attrs["truth"]),
                          check_self_intersections=False, relaxivity=rho if rho.size else 0.0,
                          region_labels=json.loads(group.attrs.get("region_labels", "[]")) or None)


register_family(Family("mesh", {MESH: "mesh"}, MeshSubstrate, write=_write_file, read=_read_file))
