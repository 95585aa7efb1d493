"""Mesh builders: periodic tubes along z, spheres, and closed surfaces of implicit shapes (marching tetrahedra).

All lengths in metres. Every builder returns (vertices, faces) with faces
counter-clockwise seen from outside.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def polygon_sides(tolerance: float) -> int:
    """Sides of a circle's polygon whose radial error stays below ``tolerance`` (relative).

    With the area-preserving vertex radius (:func:`area_preserving_radius`),
    the polygon lies within about (pi / n)^2 / 2 of the true radius on both
    sides, so n = ceil(pi / sqrt(2 tolerance)).
    """
    if not 0 < tolerance < 0.2:
        raise ValueError(f"resolution (relative radius error) must be in (0, 0.2), got {tolerance!r}")
    return max(8, int(math.ceil(math.pi / math.sqrt(2.0 * tolerance))))


def area_preserving_radius(radius, n: int):
    """Vertex radius of a regular n-gon whose area equals that of the circle of ``radius``."""
    return radius * math.sqrt(2.0 * math.pi / (n * math.sin(2.0 * math.pi / n)))


def polygon_radius_error(n: int) -> float:
    """Largest relative distance between the area-preserving n-gon and its circle."""
    rv = area_preserving_radius(1.0, n)
    return float(max(rv - 1.0, 1.0 - rv * math.cos(math.pi / n)))


def periodic_tube(centers: np.ndarray, tangents: np.ndarray, radii: np.ndarray, period,
                  n_around: int, frame: str = "fixed") -> tuple[np.ndarray, np.ndarray]:
    """A tube along a centre line that repeats with ``period`` along z, or along a period vector (open at both
    ends, which meet the tube's periodic image).

    Parameters
    ----------
    centers : numpy.ndarray
        (K, 3) centre-line points at z = k period / K, k = 0..K-1 (m).
    tangents : numpy.ndarray
        (K, 3) unit tangents there; rings lie in the planes normal to them.
    radii : numpy.ndarray
        (K,) vertex radius of each ring (m).
    period : float or array_like
        Period along z (m), or the (3,) period vector of a centre line that closes across several faces of the
        box; the last ring is the first shifted by it, exactly, so the tube meets its periodic image without a
        crack.
    n_around : int
        Vertices per ring.
    frame : {"fixed", "transported"}
        How each ring's first vertex is placed: towards x ("fixed", for centre lines that stay well away
        from x), or carried from ring to ring without twist (a rotation-minimising frame, its twist over a
        period spread evenly so the tube closes): for coiling centre lines, whose fixed frames would twist
        the quads between rings and pinch the tube.

    Returns
    -------
    vertices, faces
    """
    K = len(centers)
    T = tangents / np.linalg.norm(tangents, axis=1, keepdims=True)
    ref = np.array([1.0, 0.0, 0.0])
    U = ref - (T @ ref)[:, None] * T
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    if frame == "transported":
        shift = np.array([0.0, 0.0, period]) if np.ndim(period) == 0 else np.asarray(period, dtype=float)
        U = _transported_frame(np.vstack([centers, centers[:1] + shift]), np.vstack([T, T[:1]]), U[0].copy())
    elif frame != "fixed":
        raise ValueError(f"frame must be 'fixed' or 'transported', got {frame!r}")
    V = np.cross(T, U)
    th = 2 * np.pi * np.arange(n_around) / n_around
    ring = (centers[:, None, :] + radii[:, None, None] * (np.cos(th)[None, :, None] * U[:, None, :]
                                                          + np.sin(th)[None, :, None] * V[:, None, :]))
    shift = np.array([0.0, 0.0, period]) if np.ndim(period) == 0 else np.asarray(period, dtype=float)
    last = ring[0] + shift
    verts = np.concatenate([ring.reshape(-1, 3), last])
    return verts, _band_faces(K + 1, n_around)


@njit(cache=True)
def _transported_frame(c, T, u0):
    """Rotation-minimising normals along the closed polyline c[0..K] (c[K] is c[0]'s periodic image) by double
    reflection (Wang, Juettler, Zheng and Liu 2008), then turned back by the closure twist spread evenly."""
    K = c.shape[0] - 1
    U = np.empty((K + 1, 3))
    U[0] = u0
    for k in range(K):
        v1 = c[k + 1] - c[k]
        c1 = v1 @ v1
        rl = U[k] - (2.0 / c1) * (v1 @ U[k]) * v1
        tl = T[k] - (2.0 / c1) * (v1 @ T[k]) * v1
        v2 = T[k + 1] - tl
        c2 = v2 @ v2
        U[k + 1] = rl - (2.0 / c2) * (v2 @ rl) * v2 if c2 > 1e-30 else rl
    # angle from u0 to the transported U[K] about T[0]
    w = np.cross(T[0], u0)
    alpha = math.atan2(U[K] @ w, U[K] @ u0)
    out = np.empty((K, 3))
    for k in range(K):
        a = -alpha * k / K
        wk = np.cross(T[k], U[k])
        out[k] = math.cos(a) * U[k] + math.sin(a) * wk
        out[k] /= math.sqrt(out[k] @ out[k])
    return out


def _band_faces(n_rings: int, n_around: int) -> np.ndarray:
    """Two triangles per quad between consecutive rings of n_around vertices (ring k starts at k n_around)."""
    k = np.arange(n_rings - 1)[:, None]
    j = np.arange(n_around)[None, :]
    a = k * n_around + j
    b = k * n_around + (j + 1) % n_around
    c = (k + 1) * n_around + (j + 1) % n_around
    d = (k + 1) * n_around + j
    return np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)]).astype(
        np.int64)


def icosphere(radius: float, center=(0.0, 0.0, 0.0), subdivisions: int = 3,
              preserve: str = "volume") -> tuple[np.ndarray, np.ndarray]:
    """Geodesic sphere (subdivided icosahedron), scaled so its volume (or vertices) match the sphere.

    Parameters
    ----------
    radius : float
        Sphere radius in m.
    center : array_like
        (3,) centre in m.
    subdivisions : int
        Each level multiplies the faces by 4 (3: 1,280 faces; 4: 5,120).
    preserve : {"volume", "vertices"}
        "volume" scales the mesh so it encloses the sphere's volume (errors
        on both sides of the wall); "vertices" puts the vertices on the sphere.

    Returns
    -------
    vertices, faces
    """
    import trimesh
    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    v = np.asarray(m.vertices, float)
    f = np.asarray(m.faces, np.int64)
    if preserve == "volume":
        v *= (4 / 3 * math.pi / float(m.volume)) ** (1 / 3)
    elif preserve != "vertices":
        raise ValueError("preserve must be 'volume' or 'vertices'")
    return v * radius + np.asarray(center, float), f


# ------------------------------------------------------------------------------------ marching tetrahedra
_CORNERS = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]])
# six tetrahedra around the cube diagonal 0-6: neighbouring cubes split their shared faces the same way
_TETS = np.array([[0, 1, 2, 6], [0, 2, 3, 6], [0, 3, 7, 6], [0, 7, 4, 6], [0, 4, 5, 6], [0, 5, 1, 6]])


def marching_tetrahedra(values: np.ndarray, origin, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed, consistently oriented triangle surface of {values < 0} on a regular grid.

    Parameters
    ----------
    values : numpy.ndarray
        (nx, ny, nz) samples of an implicit function, negative inside; the
        border samples must be positive (the shape must not touch the grid edge).
    origin : array_like
        (3,) position of sample (0, 0, 0) in m.
    spacing : float
        Grid spacing in m.

    Returns
    -------
    vertices, faces
        Watertight by construction (every edge vertex is shared through its
        grid-edge key; neighbouring cubes cut their faces along the same diagonal).
    """
    f = np.array(values, dtype=float)
    if np.any(f[[0, -1], :, :] <= 0) or np.any(f[:, [0, -1], :] <= 0) or np.any(f[:, :, [0, -1]] <= 0):
        raise ValueError("the shape touches the edge of the sampling grid; enlarge the grid")
    # keep the surface off the grid points: no zero-area triangles
    tiny = 1e-3 * spacing
    f[np.abs(f) < tiny] = tiny
    nx, ny, nz = f.shape
    # cubes with a sign change only
    inside = f < 0
    cube_any = np.zeros((nx - 1, ny - 1, nz - 1), bool)
    cube_all = np.ones((nx - 1, ny - 1, nz - 1), bool)
    for c in _CORNERS:
        s = inside[c[0]:nx - 1 + c[0], c[1]:ny - 1 + c[1], c[2]:nz - 1 + c[2]]
        cube_any |= s
        cube_all &= s
    ci = np.argwhere(cube_any & ~cube_all)
    if len(ci) == 0:
        raise ValueError("the implicit shape has no surface on this grid")
    gid = lambda p: (p[..., 0] * ny + p[..., 1]) * nz + p[..., 2]  # noqa: E731
    tv = ci[:, None, None, :] + _CORNERS[_TETS][None, :, :, :]  # (C, 6, 4, 3) grid points
    tv = tv.reshape(-1, 4, 3)
    vals = f[tv[..., 0], tv[..., 1], tv[..., 2]]
    ids = gid(tv)
    pos = np.asarray(origin, float) + tv * spacing
    ins = vals < 0
    n_in = ins.sum(axis=1)
    tris_keys = []  # (T, 3, 2) grid-id pairs of the crossed edges
    for count in (1, 3):
        sel = np.flatnonzero(n_in == count)
        if not len(sel):
            continue
        lone = np.argmax(ins[sel] if count == 1 else ~ins[sel], axis=1)
        others = np.array([[j for j in range(4) if j != k] for k in range(4)])[lone]
        a = ids[sel, lone]
        keys = np.stack([np.stack([a, ids[sel, others[:, m]]], -1) for m in range(3)], 1)
        tris_keys.append((sel, keys))
    sel = np.flatnonzero(n_in == 2)
    if len(sel):
        order = np.argsort(~ins[sel], axis=1, kind="stable")  # two inside first
        i0, i1, o0, o1 = (order[:, m] for m in range(4))
        g = lambda k: ids[sel, k]  # noqa: E731
        e00 = np.stack([g(i0), g(o0)], -1)
        e01 = np.stack([g(i0), g(o1)], -1)
        e11 = np.stack([g(i1), g(o1)], -1)
        e10 = np.stack([g(i1), g(o0)], -1)
        tris_keys.append((sel, np.stack([e00, e01, e11], 1)))
        tris_keys.append((sel, np.stack([e00, e11, e10], 1)))
    tet_of = np.concatenate([s for s, _ in tris_keys])
    keys = np.concatenate([k for _, k in tris_keys])  # (T, 3, 2)
    flat = np.sort(keys.reshape(-1, 2), axis=1)
    uniq, inv = np.unique(flat, axis=0, return_inverse=True)
    inv = inv.ravel()
    # vertex on each unique edge by linear interpolation of the implicit function
    fa = f.ravel()[uniq[:, 0]]
    fb = f.ravel()[uniq[:, 1]]
    pa = np.asarray(origin, float) + np.stack(np.unravel_index(uniq[:, 0], f.shape), -1) * spacing
    pb = np.asarray(origin, float) + np.stack(np.unravel_index(uniq[:, 1], f.shape), -1) * spacing
    w = fa / (fa - fb)
    verts = pa + w[:, None] * (pb - pa)
    faces = inv.reshape(-1, 3)
    # orient: normal along the outward direction (from the inside corners to the outside ones of the tet)
    p_in = np.where(ins[tet_of][..., None], pos[tet_of], 0).sum(1) / ins[tet_of].sum(1, keepdims=True)
    p_out = np.where(~ins[tet_of][..., None], pos[tet_of], 0).sum(1) / (~ins[tet_of]).sum(1, keepdims=True)
    nrm = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    flip = np.einsum("ij,ij->i", nrm, p_out - p_in) < 0
    faces[flip] = faces[flip][:, ::-1]
    return verts, faces.astype(np.int64)


def _tet_neighbours() -> np.ndarray:
    """(3, 3, 3) bool: the grid neighbours a sample shares a tetrahedron edge with in :func:`marching_tetrahedra`.

    Inside a tetrahedron the interpolated function is linear, so two samples of the same sign joined by a
    tetrahedron edge lie in the same connected piece of {f < 0} or {f > 0}; samples joined only by a cube
    diagonal that no tetrahedron has may not. Labelling the grid with this stencil gives exactly the pieces
    the mesh has.
    """
    st = np.zeros((3, 3, 3), bool)
    st[1, 1, 1] = True
    for t in _TETS:
        for i in range(4):
            for j in range(4):
                o = _CORNERS[t[j]] - _CORNERS[t[i]]
                st[tuple(1 + o)] = st[tuple(1 - o)] = True
    return st


def _inside_samples(values: np.ndarray, spacing: float) -> np.ndarray:
    """The samples :func:`marching_tetrahedra` treats as inside (it lifts |f| < 1e-3 spacing to outside)."""
    return values <= -1e-3 * spacing


def fill_cavities(values: np.ndarray, spacing: float) -> tuple[np.ndarray, int, int]:
    """Turn the outside pockets that no path reaches from the grid's border into inside.

    A union of overlapping primitives (branches of a neuron crossing each other) can enclose a void: its
    wall would be meshed as a separate, inward-facing surface, an empty compartment walkers could never
    reach from the cell. Filling it makes the body solid.

    Parameters
    ----------
    values : numpy.ndarray
        (nx, ny, nz) implicit function sampled on the grid (m), negative inside, positive on the border.
    spacing : float
        Grid spacing in m.

    Returns
    -------
    values : numpy.ndarray
        The same array when there is no cavity, else a copy with the cavities' samples set to ``-spacing``.
    n_cavities : int
        Number of enclosed pockets filled.
    n_samples : int
        Grid samples they held (times spacing^3: their volume, roughly).
    """
    from scipy import ndimage
    labels, n = ndimage.label(~_inside_samples(values, spacing), structure=_tet_neighbours())
    border = np.unique(np.concatenate([labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel(),
                                       labels[:, :, [0, -1]].ravel()]))
    pockets = np.setdiff1d(np.arange(1, n + 1), border)
    if len(pockets) == 0:
        return values, 0, 0
    cavity = np.isin(labels, pockets)
    filled = np.where(cavity, -float(spacing), values)
    return filled, int(len(pockets)), int(cavity.sum())


def count_bodies(values: np.ndarray, spacing: float) -> int:
    """Number of separate bodies (connected pieces of the inside) :func:`marching_tetrahedra` will mesh.

    Parameters
    ----------
    values : numpy.ndarray
        (nx, ny, nz) implicit function on the grid, negative inside.
    spacing : float
        Grid spacing in m.

    Returns
    -------
    int
    """
    from scipy import ndimage
    return int(ndimage.label(_inside_samples(values, spacing), structure=_tet_neighbours())[1])


def capsule_sdf(p: np.ndarray, a: np.ndarray, b: np.ndarray, r: float) -> np.ndarray:
    """Signed distance to the capsule of radius r around segment a-b (negative inside)."""
    ab = b - a
    t = np.clip(((p - a) @ ab) / float(ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1) - r


def smooth_union(d1: np.ndarray, d2: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum (Quilez): a fillet of size ~k where two shapes join, no sharp crease."""
    if k <= 0:
        return np.minimum(d1, d2)
    h = np.clip(0.5 + 0.5 * (d2 - d1) / k, 0.0, 1.0)
    return d2 * (1 - h) + d1 * h - k * h * (1 - h)


def capsule(a, b, radius: float, n_around: int, n_cap: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Closed capsule (cylinder with hemispherical caps) around the segment a-b.

    Parameters
    ----------
    a, b : array_like
        (3,) end points of the axis in m.
    radius : float
        Radius in m (vertex radius; use :func:`area_preserving_radius` for a volume-true tube).
    n_around : int
        Vertices per ring.
    n_cap : int, optional
        Rings per hemisphere (default n_around / 4).

    Returns
    -------
    vertices, faces
    """
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    axis = b - a
    length = float(np.linalg.norm(axis))
    T = axis / length
    ref = np.array([1.0, 0.0, 0.0]) if abs(T[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    U = ref - (ref @ T) * T
    U /= np.linalg.norm(U)
    V = np.cross(T, U)
    nc = n_cap or max(2, n_around // 4)
    phis = np.linspace(0, np.pi / 2, nc + 1)[1:]  # polar angle of each cap ring from its pole
    s_cap = -radius * np.cos(phis)               # -r .. 0
    rho_cap = radius * np.sin(phis)
    # rings along the straight part about one polygon edge apart, so the triangles are not slivers
    n_mid = max(1, int(math.ceil(length / (2 * math.pi * radius / n_around))))
    s_mid = np.linspace(0.0, length, n_mid + 1)[1:-1]
    s = np.concatenate([s_cap, s_mid, length - s_cap[::-1]])
    rho = np.concatenate([rho_cap, np.full(len(s_mid), radius), rho_cap[::-1]])
    th = 2 * np.pi * np.arange(n_around) / n_around
    ring = (a + s[:, None, None] * T + rho[:, None, None] * (np.cos(th)[None, :, None] * U
                                                              + np.sin(th)[None, :, None] * V))
    K = len(s)
    verts = np.concatenate([ring.reshape(-1, 3), [a - radius * T, b + radius * T]])
    pa, pb = K * n_around, K * n_around + 1
    side = _band_faces(K, n_around)
    j1 = np.arange(n_around)
    cap_a = np.stack([np.full(n_around, pa), (j1 + 1) % n_around, j1], -1)
    last = (K - 1) * n_around
    cap_b = np.stack([np.full(n_around, pb), last + j1, last + (j1 + 1) % n_around], -1)
    faces = np.concatenate([side, cap_a, cap_b]).astype(np.int64)
    # orient outwards (the winding above follows U x V = T; check once on the signed volume)
    p0, p1, p2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    vol = np.sum(np.einsum("ij,ij->i", p0, np.cross(p1, p2))) / 6
    if vol < 0:
        faces = faces[:, ::-1]
    return verts, faces
