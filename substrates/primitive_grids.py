"""Cell lists over the periodic images of circles (cylinders) or spheres.

Two grids. :class:`CellList` lists, per cell of a uniform grid over the
periodic box, every primitive image whose bounding box overlaps it: point
location and start positions use it. :class:`WalkGrid` is sized for a walker's
step: each cell lists every image whose wall comes within ``reach`` of the
cell, and knows its *clearance* (a lower bound of the distance from any point
of the cell to any wall), so a walker outside the primitives looks at one
cell only, and a step shorter than the clearance needs no look at all.
Both are compressed rows (``start``, ``items``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from numba import njit


@dataclass(frozen=True, eq=False)
class CellList:
    """Uniform grid over primitive images.

    Made by :func:`build_cells`; the fields are also the attributes of the
    (frozen) instance.

    Parameters
    ----------
    dim : int
        2 for cylinders (x, y only), 3 for spheres.
    box : numpy.ndarray
        (3,) periodic lengths in m (inf where unbounded).
    n : numpy.ndarray
        (3,) cells per axis (int64).
    h : numpy.ndarray
        (3,) cell size per axis in m (inf where the axis has one unbounded cell).
    centers : numpy.ndarray
        (Q, 3) image centres in m.
    radii : numpy.ndarray
        (Q,) image radii in m.
    owner : numpy.ndarray
        (Q,) index of the primitive each image copies.
    start : numpy.ndarray
        (ncells + 1,) offsets into ``items``; cell c lists ``items[start[c]:start[c+1]]``.
    items : numpy.ndarray
        Image indices.
    min_gap : float
        Smallest surface-to-surface distance between distinct primitives in m
        (negative if two overlap; inf with fewer than two).
    """

    dim: int
    box: np.ndarray
    n: np.ndarray
    h: np.ndarray
    centers: np.ndarray
    radii: np.ndarray
    owner: np.ndarray
    start: np.ndarray
    items: np.ndarray
    min_gap: float

    def cell_index(self, points: np.ndarray) -> np.ndarray:
        """Flat cell index of each (wrapped) point.

        Parameters
        ----------
        points : numpy.ndarray
            (N, 3) local-frame positions in m (wrapped into the box here).

        Returns
        -------
        numpy.ndarray
            (N,) int64 flat cell indices.
        """
        idx = np.zeros(len(points), dtype=np.int64)
        for ax in range(3):
            if self.n[ax] > 1:
                i = np.floor(np.mod(points[:, ax], self.box[ax]) / self.h[ax]).astype(np.int64)
                idx = idx * self.n[ax] + np.clip(i, 0, self.n[ax] - 1)
            else:
                idx = idx * self.n[ax]
        return idx

    def locate(self, points: np.ndarray) -> np.ndarray:
        """Image index containing each point (closed balls), -1 if none.

        Parameters
        ----------
        points : array_like
            (N, 3) local-frame positions in m (z ignored for cylinders).

        Returns
        -------
        numpy.ndarray
            (N,) int64 indices into ``centers`` (images), or -1.
        """
        p = np.asarray(points, dtype=float)
        pw = p.copy()
        for ax in range(3):
            if np.isfinite(self.box[ax]):
                pw[:, ax] = np.mod(p[:, ax], self.box[ax])
        c = self.cell_index(pw)
        out = np.full(len(p), -1, dtype=np.int64)
        counts = self.start[c + 1] - self.start[c]
        mask = np.ones(3)
        if self.dim == 2:
            mask[2] = 0.0
        for j in range(int(counts.max(initial=0))):
            has = counts > j
            q = self.items[self.start[c[has]] + j]
            d = (pw[has] - self.centers[q]) * mask
            inside = np.einsum("ij,ij->i", d, d) <= self.radii[q] ** 2
            sel = np.nonzero(has)[0][inside]
            out[sel] = q[inside]
        return out


def build_cells(centers: np.ndarray, radii: np.ndarray, box: np.ndarray, dim: int,
                target_per_cell: float = 2.0) -> CellList:
    """Build cell lists for circles (dim 2) or spheres (dim 3) in a periodic box.

    Parameters
    ----------
    centers : numpy.ndarray
        (P, 3) centres in m.
    radii : numpy.ndarray
        (P,) radii in m.
    box : numpy.ndarray
        (3,) periodic lengths in m (inf for an unbounded axis).
    dim : int
        2 or 3.
    target_per_cell : float
        Aimed-for number of primitive centres per cell.

    Returns
    -------
    CellList
    """
    centers = np.asarray(centers, dtype=float).reshape(-1, 3)
    radii = np.asarray(radii, dtype=float).ravel()
    box = np.asarray(box, dtype=float)
    axes = [ax for ax in range(dim) if np.isfinite(box[ax])]
    n = np.ones(3, dtype=np.int64)
    h = np.full(3, np.inf)
    if axes and len(radii):
        vol = np.prod(box[axes])
        # cells about one mean diameter wide, but never fewer than ~target primitives per cell
        side = max(2.0 * radii.mean(), (vol * target_per_cell / len(radii)) ** (1 / len(axes)) * 0.5)
        for ax in axes:
            n[ax] = max(1, min(512, int(box[ax] // side)))
            h[ax] = box[ax] / n[ax]
    # periodic images whose bounding box touches the primary box
    img_c, img_r, img_o = [], [], []
    shifts = list(itertools.product(*[(-1, 0, 1) if ax in axes else (0,) for ax in range(3)]))
    for j, (c, r) in enumerate(zip(centers, radii)):
        for s in shifts:
            cs = c + np.array(s) * np.where(np.isfinite(box), box, 0.0)
            if all(cs[ax] + r >= 0 and cs[ax] - r < box[ax] for ax in axes):
                img_c.append(cs)
                img_r.append(r)
                img_o.append(j)
    img_c = np.array(img_c).reshape(-1, 3)
    img_r = np.array(img_r)
    img_o = np.array(img_o, dtype=np.int64)
    ncell = int(np.prod(n))
    lists: list[list[int]] = [[] for _ in range(ncell)]
    for q, (c, r) in enumerate(zip(img_c, img_r)):
        ranges = []
        for ax in range(3):
            if n[ax] == 1:
                ranges.append(range(1))
            else:
                lo = max(0, int(math.floor((c[ax] - r) / h[ax])))
                hi = min(n[ax] - 1, int(math.floor((c[ax] + r) / h[ax])))
                ranges.append(range(lo, hi + 1))
        for i, jj, k in itertools.product(*ranges):
            lists[(i * n[1] + jj) * n[2] + k].append(q)
    start = np.zeros(ncell + 1, dtype=np.int64)
    start[1:] = np.cumsum([len(x) for x in lists])
    items = np.array([q for x in lists for q in x], dtype=np.int64)
    return CellList(dim, box, n, h, img_c, img_r, img_o, start, items, _min_gap(img_c, img_r, img_o, dim))


def _min_gap(c: np.ndarray, r: np.ndarray, owner: np.ndarray, dim: int) -> float:
    """Smallest surface-to-surface distance between distinct images."""
    if len(owner) < 2:
        return math.inf
    cc = c[:, :dim]
    best = math.inf
    for i in range(len(cc) - 1):
        d = np.linalg.norm(cc[i + 1:] - cc[i], axis=1) - r[i + 1:] - r[i]
        best = min(best, float(d.min()))
    return best


@dataclass(frozen=True, eq=False)
class WalkGrid:
    """Cell lists for walkers outside the primitives, sized for their step (see module docstring).

    Made by :func:`walk_grid`; the fields are also the attributes of the
    (frozen) instance.

    Parameters
    ----------
    dim : int
        2 for cylinders (x, y), 3 for spheres.
    box : numpy.ndarray
        (3,) period per axis in m, 0 where not periodic.
    lo, h, inv_h : numpy.ndarray
        (3,) grid origin, cell size and its inverse (m, 1/m); one cell along unused axes.
    n : numpy.ndarray
        (3,) cells per axis (int64).
    centers, radii, owner : numpy.ndarray
        (Q', 3) centres in m, (Q',) radii in m, (Q',) primitive indices: primitive images; the first ones are those of the substrate's
        :class:`CellList`, in its order (a walker's home image keeps its index), then the images
        within ``reach`` of the box.
    start, items : numpy.ndarray
        Per cell, the images whose wall comes within ``reach`` of the cell.
    clear : numpy.ndarray
        (ncells,) lower bound of the distance (m) from any point of the cell to any wall; inf where no
        wall is within ``reach``; -1 where the cell lies inside a primitive (no outside walker belongs there).
    reach : float
        Lists are complete for segments up to this length (m).
    """

    dim: int
    box: np.ndarray
    lo: np.ndarray
    h: np.ndarray
    inv_h: np.ndarray
    n: np.ndarray
    centers: np.ndarray
    radii: np.ndarray
    owner: np.ndarray
    start: np.ndarray
    items: np.ndarray
    clear: np.ndarray
    reach: float

    @property
    def mean_per_cell(self) -> float:
        """Mean candidate images per cell that has any."""
        c = np.diff(self.start)
        return float(c[c > 0].mean()) if np.any(c > 0) else 0.0


def walk_grid(cells: CellList, reach: float, max_cells: int = 1 << 21, cell_size: float = 1.0) -> WalkGrid:
    """A :class:`WalkGrid` for segments up to ``reach`` (m): cells about ``reach`` wide, at most ``max_cells``.

    Parameters
    ----------
    cells : CellList
        The substrate's primitive images.
    reach : float
        Longest segment a walker looks along at once, m (its step length).
    max_cells : int
        Cap on the number of cells (cells grow beyond ``reach`` for very short steps in large boxes).
    cell_size : float
        Cell side in units of ``reach`` (dimensionless; 1: cells about one step wide), before
        the ``max_cells`` cap.

    Returns
    -------
    WalkGrid
    """
    reach = float(reach)
    if not (reach > 0 and math.isfinite(reach)):
        raise ValueError(f"reach must be a positive length in m, got {reach!r}")
    dim = cells.dim
    periodic = np.array([ax < dim and np.isfinite(cells.box[ax]) for ax in range(3)])
    box = np.where(periodic, cells.box, 0.0)
    centers, radii, owner = _padded_images(cells, periodic, box, reach)
    lo = np.zeros(3)
    ext = np.ones(3)
    for ax in range(dim):
        if periodic[ax]:
            ext[ax] = box[ax]
        else:
            lo[ax] = float(np.min(centers[:, ax] - radii)) - reach
            ext[ax] = float(np.max(centers[:, ax] + radii)) + reach - lo[ax]
    side = max(cell_size * reach, (float(np.prod(ext[:dim])) / max_cells) ** (1.0 / dim))
    n = np.ones(3, dtype=np.int64)
    for ax in range(dim):
        n[ax] = max(1, int(ext[ax] // side))
    h = ext / n
    h[dim:] = np.inf
    inv_h = np.where(np.isfinite(h), 1.0 / h, 0.0)
    ncell = int(np.prod(n))
    start = np.zeros(ncell + 1, dtype=np.int64)
    clear = np.full(ncell, np.inf)
    _fill_walk_grid(centers, radii, lo, h, n, dim, reach, True, start, np.zeros(1, dtype=np.int64), clear)
    start = np.cumsum(start)
    items = np.zeros(max(int(start[-1]), 1), dtype=np.int64)
    clear[:] = np.inf
    _fill_walk_grid(centers, radii, lo, h, n, dim, reach, False, start, items, clear)
    return WalkGrid(dim, box, lo, h, inv_h, n, centers, radii, owner, start, items, clear, reach)


def _padded_images(cells: CellList, periodic: np.ndarray, box: np.ndarray, reach: float):
    """The CellList's images, then every other periodic image whose wall comes within ``reach`` of the box."""
    period = np.where(periodic, box, 1.0)
    base = np.where(periodic, np.mod(cells.centers, period), cells.centers)
    shift = np.where(periodic, np.round((cells.centers - base) / period), 0.0).astype(np.int64)
    have = {(int(o), tuple(sh)) for o, sh in zip(cells.owner, shift)}
    primitives = {}
    for o, c, r in zip(cells.owner, base, cells.radii):
        primitives.setdefault(int(o), (c, float(r)))
    c_out, r_out, o_out = [cells.centers], [cells.radii], [cells.owner]
    shifts = list(itertools.product(*[(-1, 0, 1) if periodic[ax] else (0,) for ax in range(3)]))
    for j, (c0, r) in sorted(primitives.items()):
        for sh in shifts:
            c = c0 + np.array(sh) * box
            if (j, sh) not in have and all(c[ax] + r + reach >= 0 and c[ax] - r - reach < box[ax]
                                           for ax in range(3) if periodic[ax]):
                c_out.append(c[None])
                r_out.append(np.array([r]))
                o_out.append(np.array([j]))
    return (np.ascontiguousarray(np.concatenate(c_out)), np.ascontiguousarray(np.concatenate(r_out)),
            np.concatenate(o_out).astype(np.int64))


@njit(cache=True)
def _fill_walk_grid(centers, radii, lo, h, n, dim, reach, count_only, start, items, clear):
    """Register each image in the cells its wall comes within ``reach`` of; lower the cells' clearance."""
    fill = np.zeros(n[0] * n[1] * n[2], dtype=np.int64)
    for q in range(centers.shape[0]):
        r = radii[q]
        ranges = np.zeros((3, 2), dtype=np.int64)
        for ax in range(3):
            if ax < dim:
                ranges[ax, 0] = max(int(math.floor((centers[q, ax] - r - reach - lo[ax]) / h[ax])), 0)
                ranges[ax, 1] = min(int(math.floor((centers[q, ax] + r + reach - lo[ax]) / h[ax])), n[ax] - 1)
        for i in range(ranges[0, 0], ranges[0, 1] + 1):
            for j in range(ranges[1, 0], ranges[1, 1] + 1):
                for k in range(ranges[2, 0], ranges[2, 1] + 1):
                    dmin2 = 0.0
                    dmax2 = 0.0
                    for ax in range(dim):
                        idx = i if ax == 0 else (j if ax == 1 else k)
                        a = lo[ax] + idx * h[ax] - centers[q, ax]
                        b = a + h[ax]
                        near = a if a > 0.0 else (-b if b < 0.0 else 0.0)
                        far = max(abs(a), abs(b))
                        dmin2 += near * near
                        dmax2 += far * far
                    c = (i * n[1] + j) * n[2] + k
                    if dmax2 <= r * r:
                        clear[c] = -1.0  # the whole cell is inside this primitive
                        continue
                    gap = math.sqrt(dmin2) - r
                    if gap > reach:
                        continue
                    if clear[c] >= 0.0:
                        clear[c] = min(clear[c], max(gap, 0.0))
                    if count_only:
                        start[c + 1] += 1
                    else:
                        items[start[c] + fill[c]] = q
                        fill[c] += 1
