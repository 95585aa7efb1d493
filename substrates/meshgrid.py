"""Triangle data, the uniform grid over them, and exact point location (numba).

Every triangle image (a face of one periodic copy of a mesh component) is
stored as one row of ``tri``::

    0:3  v0         first vertex (m)
    3:6  n          unit outward normal
    6:9  U          dual vector: u = (x - v0) . U
    9:12 V          dual vector: v = (x - v0) . V
    12   n . v0     plane offset

so the signed distance of a point to the plane is n . x - tri[12] and its
barycentric coordinates are two dot products. A uniform grid lists, per cell,
the triangle images whose (padded) bounding box meets the cell and whose plane
cuts it; *columns* list, per (y, z) cell, every triangle image a ray along +x
from that column can cross, for point location.

Point location is exact for points that are not on the surface: the parity of
the crossings of a ray with each component's triangles, where a crossing that
falls within ``DEGENERATE`` (barycentric) of an edge or vertex, or a ray in a
triangle's plane, makes the ray *degenerate* and it is cast again in another
direction, so no crossing is ever counted twice or missed. The innermost
component containing the point wins (nesting).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

#: barycentric enlargement of every triangle in the walker's hit test, so that shared edges and vertices
#: overlap instead of leaving rounding cracks (1e-9 of an edge is ~1e-16 m for 0.1 um triangles)
ENLARGE = 1e-9
#: barycentric distance to an edge below which a location ray is recast
DEGENERATE = 1e-7


def triangle_rows(v0: np.ndarray, v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """(Q, 13) triangle rows (see module docstring) from vertex arrays (Q, 3) in m."""
    e1 = v1 - v0
    e2 = v2 - v0
    cr = np.cross(e1, e2)
    area2 = np.linalg.norm(cr, axis=1)
    n = cr / np.where(area2 > 0, area2, 1.0)[:, None]
    a = np.einsum("ij,ij->i", e1, e1)
    b = np.einsum("ij,ij->i", e1, e2)
    c = np.einsum("ij,ij->i", e2, e2)
    det = a * c - b * b
    det = np.where(det > 0, det, np.inf)  # degenerate faces are refused before this; never hit if left
    U = (c[:, None] * e1 - b[:, None] * e2) / det[:, None]
    V = (a[:, None] * e2 - b[:, None] * e1) / det[:, None]
    off = np.einsum("ij,ij->i", n, v0)
    return np.ascontiguousarray(np.column_stack([v0, n, U, V, off]))


@njit(cache=True)
def _fill_grid(tri, lo_t, hi_t, lo, h, n, pad, count_only, start, items):
    """Register triangles in the cells their padded bounding box meets and their plane cuts."""
    ncell = n[0] * n[1] * n[2]
    fill = np.zeros(ncell, dtype=np.int64)
    total = 0
    half = np.empty(3)
    for a in range(3):
        half[a] = 0.5 * h[a] + pad
    for q in range(tri.shape[0]):
        i0 = max(int(math.floor((lo_t[q, 0] - pad - lo[0]) / h[0])), 0)
        i1 = min(int(math.floor((hi_t[q, 0] + pad - lo[0]) / h[0])), n[0] - 1)
        j0 = max(int(math.floor((lo_t[q, 1] - pad - lo[1]) / h[1])), 0)
        j1 = min(int(math.floor((hi_t[q, 1] + pad - lo[1]) / h[1])), n[1] - 1)
        k0 = max(int(math.floor((lo_t[q, 2] - pad - lo[2]) / h[2])), 0)
        k1 = min(int(math.floor((hi_t[q, 2] + pad - lo[2]) / h[2])), n[2] - 1)
        nx, ny, nz, off = tri[q, 3], tri[q, 4], tri[q, 5], tri[q, 12]
        reach = abs(nx) * half[0] + abs(ny) * half[1] + abs(nz) * half[2]
        for i in range(i0, i1 + 1):
            cx = lo[0] + (i + 0.5) * h[0]
            for j in range(j0, j1 + 1):
                cy = lo[1] + (j + 0.5) * h[1]
                for k in range(k0, k1 + 1):
                    cz = lo[2] + (k + 0.5) * h[2]
                    if abs(nx * cx + ny * cy + nz * cz - off) > reach:
                        continue  # the plane misses the (padded) cell
                    c = (i * n[1] + j) * n[2] + k
                    if count_only:
                        start[c + 1] += 1
                    else:
                        items[start[c] + fill[c]] = q
                        fill[c] += 1
                    total += 1
    return total


def build_grid(tri: np.ndarray, lo_t: np.ndarray, hi_t: np.ndarray, lo: np.ndarray, h: np.ndarray,
               n: np.ndarray, pad: float) -> tuple[np.ndarray, np.ndarray]:
    """Compressed cell lists (start, items) of the triangle images over a uniform grid."""
    ncell = int(np.prod(n))
    start = np.zeros(ncell + 1, dtype=np.int64)
    items = np.zeros(1, dtype=np.int64)
    _fill_grid(tri, lo_t, hi_t, lo, h, n, pad, True, start, items)
    start = np.cumsum(start)
    items = np.zeros(max(int(start[-1]), 1), dtype=np.int64)
    _fill_grid(tri, lo_t, hi_t, lo, h, n, pad, False, start, items)
    return start, items


def build_columns(lo_t: np.ndarray, hi_t: np.ndarray, comp: np.ndarray, lo: np.ndarray, h: np.ndarray,
                  n: np.ndarray, pad: float) -> tuple[np.ndarray, np.ndarray]:
    """Per (y, z) column, the triangle images a +x ray in it can cross, grouped by component."""
    j0 = np.clip(np.floor((lo_t[:, 1] - pad - lo[1]) / h[1]).astype(np.int64), 0, n[1] - 1)
    j1 = np.clip(np.floor((hi_t[:, 1] + pad - lo[1]) / h[1]).astype(np.int64), 0, n[1] - 1)
    k0 = np.clip(np.floor((lo_t[:, 2] - pad - lo[2]) / h[2]).astype(np.int64), 0, n[2] - 1)
    k1 = np.clip(np.floor((hi_t[:, 2] + pad - lo[2]) / h[2]).astype(np.int64), 0, n[2] - 1)
    # a face whose y or z range misses the grid entirely is clipped onto an edge column; harmless (parity is
    # decided by geometry, the column only narrows the search)
    ncol = int(n[1] * n[2])
    if len(comp) < 2 or np.all(comp[1:] >= comp[:-1]):
        # images come grouped by component and q runs in order: a stable counting sort by column gives the
        # (column, component, q) order in two passes, without expanding and sorting every (image, column) pair
        return _columns_by_count(j0, j1, k0, k1, int(n[2]), ncol)
    nj = j1 - j0 + 1
    nk = k1 - k0 + 1
    reps = nj * nk
    q = np.repeat(np.arange(len(lo_t)), reps)
    off = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    jj = np.repeat(j0, reps) + off // np.repeat(nk, reps)
    kk = np.repeat(k0, reps) + off % np.repeat(nk, reps)
    col = jj * n[2] + kk
    order = np.lexsort((q, comp[q], col))
    col, q = col[order], q[order]
    start = np.zeros(ncol + 1, dtype=np.int64)
    np.add.at(start, col + 1, 1)
    return np.cumsum(start), q.astype(np.int64)


@njit(cache=True)
def _columns_by_count(j0, j1, k0, k1, n2, ncol):
    """Column starts and images, each image listed in the (y, z) columns of its ranges, in image order."""
    start = np.zeros(ncol + 1, dtype=np.int64)
    for q in range(j0.shape[0]):
        for j in range(j0[q], j1[q] + 1):
            for k in range(k0[q], k1[q] + 1):
                start[j * n2 + k + 1] += 1
    for c in range(ncol):
        start[c + 1] += start[c]
    fill = start[:-1].copy()
    out = np.empty(start[ncol], dtype=np.int64)
    for q in range(j0.shape[0]):
        for j in range(j0[q], j1[q] + 1):
            for k in range(k0[q], k1[q] + 1):
                c = j * n2 + k
                out[fill[c]] = q
                fill[c] += 1
    return start, out


@njit(inline="always")
def _cross_ray(tri, q, ox, oy, oz, dx, dy, dz):
    """Ray crossing of triangle q: 1 crossing, 0 none, -1 degenerate (near an edge or in the plane)."""
    nx, ny, nz = tri[q, 3], tri[q, 4], tri[q, 5]
    dn = nx * dx + ny * dy + nz * dz
    s = nx * ox + ny * oy + nz * oz - tri[q, 12]
    if abs(dn) < 1e-12:
        return -1 if abs(s) < 1e-15 else 0
    t = -s / dn
    if t < 0.0:
        return 0
    wx = ox + t * dx - tri[q, 0]
    wy = oy + t * dy - tri[q, 1]
    wz = oz + t * dz - tri[q, 2]
    u = wx * tri[q, 6] + wy * tri[q, 7] + wz * tri[q, 8]
    v = wx * tri[q, 9] + wy * tri[q, 10] + wz * tri[q, 11]
    if u < -DEGENERATE or v < -DEGENERATE or u + v > 1.0 + DEGENERATE:
        return 0
    if u < DEGENERATE or v < DEGENERATE or u + v > 1.0 - DEGENERATE or t == 0.0:
        return -1
    return 1


@njit(inline="always")
def _innermost(tri, comp, depth, idx, a, b, use_idx, ox, oy, oz, dx, dy, dz):
    """Innermost component whose crossings along the ray are odd (-1 none, -2 degenerate ray).

    Triangles idx[a:b] (or a:b directly) must be grouped by component."""
    best = -1
    cur = -1
    par = 0
    for it in range(a, b + 1):
        if it < b:
            q = idx[it] if use_idx else it
            c = comp[q]
        else:
            c = -3  # sentinel: close the last group
        if c != cur:
            if cur >= 0 and par == 1 and (best < 0 or depth[cur] > depth[best]):
                best = cur
            cur = c
            par = 0
        if it < b:
            r = _cross_ray(tri, q, ox, oy, oz, dx, dy, dz)
            if r < 0:
                return -2
            par ^= r
    return best


@njit(inline="always")
def recast_direction(attempt):
    """Direction of the ``attempt``-th ray (1..31) recast after a degenerate one (near an edge, or in a face).

    Attempts 1-8 run along -x, +x, -x, ... tilted by ~1e-3 rad and turned by the golden angle (well spread,
    deterministic): like +x they leave through closed walls only, for components may be open (continue into
    their image) across the y and z faces, never across x, and a ray heading along y or z could leave a tilted
    tube through its open end. A point where both grazes along x stay degenerate (beside an edge whose faces
    are parallel to x) gets rays in the xy-plane, slightly tilted out of it, from attempt 9 on.
    """
    a = 2.399963229728653 * attempt
    if attempt <= 8:
        t = 1e-3 * (1.0 + 0.05 * attempt)
        nrm = math.sqrt(1.0 + t * t)
        sgn = -1.0 if attempt % 2 == 1 else 1.0
        return sgn / nrm, t * math.cos(a) / nrm, t * math.sin(a) / nrm
    tz = 1e-7 * attempt
    nrm = math.sqrt(1.0 + tz * tz)
    return math.cos(a) / nrm, math.sin(a) / nrm, tz / nrm


@njit(cache=True)
def locate_one(p0, p1, p2, tri, comp, depth, lo, h, n, box, cstart, citems):
    """Innermost component containing one point (-1: none; -2: location failed). See :func:`locate_points`."""
    if box[0] > 0.0:
        p0 -= math.floor(p0 / box[0]) * box[0]
    if box[1] > 0.0:
        p1 -= math.floor(p1 / box[1]) * box[1]
    if box[2] > 0.0:
        p2 -= math.floor(p2 / box[2]) * box[2]
    j = int(math.floor((p1 - lo[1]) / h[1]))
    k = int(math.floor((p2 - lo[2]) / h[2]))
    if j < 0 or k < 0 or j >= n[1] or k >= n[2]:
        if box[1] > 0.0 and box[2] > 0.0:
            j = min(max(j, 0), n[1] - 1)  # rounding at the box edge
            k = min(max(k, 0), n[2] - 1)
        else:
            return -1  # outside the grid of a non-periodic mesh: outside every component
    col = j * n[2] + k
    r = _innermost(tri, comp, depth, citems, cstart[col], cstart[col + 1], True, p0, p1, p2, 1.0, 0.0, 0.0)
    attempt = 0
    while r == -2 and attempt < 32:
        attempt += 1
        dx, dy, dz = recast_direction(attempt)
        r = _innermost(tri, comp, depth, citems, 0, tri.shape[0], False, p0, p1, p2, dx, dy, dz)
    return r


@njit(cache=True, parallel=True)
def locate_points(points, tri, comp, depth, lo, h, n, box, cstart, citems):
    """Innermost component containing each point (-1: none; -2: location failed).

    Periodic axes (box > 0) wrap the point into the box first. The +x ray uses
    the columns; a degenerate ray is recast against every triangle image
    (:func:`recast_direction`).
    """
    N = points.shape[0]
    out = np.empty(N, dtype=np.int64)
    for i in prange(N):
        out[i] = locate_one(points[i, 0], points[i, 1], points[i, 2], tri, comp, depth, lo, h, n, box, cstart,
                            citems)
    return out
