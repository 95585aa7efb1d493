"""Cell lists over the periodic images of circles (cylinders) or spheres.

Each cell of a uniform grid over the periodic box lists every primitive image
whose bounding box overlaps it, in compressed-row form (``start``, ``items``),
so a walker queries only the cells its step can reach and the cost per step
does not grow with the number of primitives.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class CellList:
    """Uniform grid over primitive images.

    Attributes
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
        (ncells + 1,) offsets into ``items``; cell c lists items[start[c]:start[c+1]].
    items : numpy.ndarray
        Image indices.
    min_gap : float
        Smallest surface-to-surface distance between distinct primitives
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
        """Flat cell index of each (wrapped) point."""
        idx = np.zeros(len(points), dtype=np.int64)
        for ax in range(3):
            if self.n[ax] > 1:
                i = np.floor(np.mod(points[:, ax], self.box[ax]) / self.h[ax]).astype(np.int64)
                idx = idx * self.n[ax] + np.clip(i, 0, self.n[ax] - 1)
            else:
                idx = idx * self.n[ax]
        return idx

    def locate(self, points: np.ndarray) -> np.ndarray:
        """Image index containing each point (closed balls), -1 if none."""
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
