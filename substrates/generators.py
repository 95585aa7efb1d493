"""Substrate generators: packed, undulating and beaded axons; somas with neurites; meshed cylinders and spheres.

Every generator is seeded and reproducible, returns an :class:`AnalyticSubstrate`
(exact analytic primitives where the walker has them: :func:`pack_cylinders`, :func:`packed_axons`) or a
:class:`MeshSubstrate` (a watertight mesh whose resolution follows
``resolution``, the relative radius error), and puts its ground truth in
``ground_truth()``. Save and reload with :func:`save_substrate` /
:func:`load_substrate`; draw with :func:`substrates.plot_substrate`.

Axons run along z in a box periodic on all three axes; undulating and beaded
axons are tubes that continue into their own image across the z faces.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from numba import njit
from scipy.optimize import minimize

from sequences import check_count, check_fraction

from .analytic import AnalyticSubstrate, cylinders, spheres
from .base import Substrate, check_length
from .disks import MAX_DISK_FRACTION, PACKING_VERSION, nearest_gaps, pack_disks, packing_statistics
from .mesh import MeshSubstrate, mesh_substrate
from .meshing import (area_preserving_radius, capsule, capsule_sdf, icosphere, marching_tetrahedra, periodic_tube,
                      polygon_radius_error, polygon_sides, smooth_union)

#: densest random packing of polydisperse disks this generator aims for (random close packing is ~0.84-0.85)


def gamma_radii(n: int, mean_radius: float, shape: float = 4.0, seed: int = 0, limits=(0.1, 3.0)) -> np.ndarray:
    """Radii drawn from a gamma distribution (the usual axon-radius model, e.g. ActiveAx/AxCaliber).

    Parameters
    ----------
    n : int
        Number of radii.
    mean_radius : float
        Mean radius in m.
    shape : float
        Gamma shape k (coefficient of variation 1/sqrt(k)).
    seed : int
        Random seed.
    limits : (float, float)
        Radii are clipped to [limits[0], limits[1]] x mean_radius (no vanishing or giant axons).

    Returns
    -------
    numpy.ndarray
        (n,) radii in m.
    """
    r = float(check_length(mean_radius, "mean_radius"))
    n = check_count(n, "n")
    if not (np.isfinite(shape) and shape > 0):
        raise ValueError(f"shape must be a positive number (the gamma shape parameter), got {shape!r}")
    rng = np.random.default_rng(seed)
    out = rng.gamma(shape, r / shape, n)
    return np.clip(out, limits[0] * r, limits[1] * r)


# --------------------------------------------------------------------------------------- packed axons
def packed_axons(n_axons: int = 100, mean_radius: float = 1e-6, icvf: float = 0.75, shape: float = 4.0,
                 radii=None, seed: int = 0, permeability=0.0, as_mesh: bool = False, length: float | None = None,
                 resolution: float = 0.01, dispersion: float | None = None, *, min_gap: float | None = None,
                 arrangement: str = "random", clustering: float = 0.0, relaxivity=0.0) -> Substrate:
    """Parallel cylinders with gamma-distributed radii packed in a periodic box at a target ICVF.

    Parameters
    ----------
    n_axons : int
        Number of axons.
    mean_radius : float
        Mean of the gamma radius distribution in m.
    icvf : float
        Intra-axonal volume fraction to reach (up to 0.85; 0.75 and above is
        white-matter-like). An impossible target (> 0.9069) is refused.
    shape : float
        Gamma shape parameter (larger: narrower distribution).
    radii : array_like, optional
        Radii in m to use instead of drawing them.
    seed : int
        Seed of radii and positions.
    permeability : float or array_like
        Membrane permeability kappa in m/s.
    relaxivity : float or array_like
        Surface relaxivity rho of the walls in m/s (0: none; see
        :func:`walker.survival_probability`).
    as_mesh : bool
        Return the cylinders as a watertight mesh (for mesh-vs-exact
        comparisons) instead of exact analytic cylinders.
    length : float, optional
        Box length along z for ``as_mesh`` (m; default 10 mean radii), or the
        axon length with ``dispersion`` (default 10 mean radii).
    resolution : float
        Relative radius error of the mesh (``as_mesh`` or ``dispersion``).
    dispersion : float, optional
        Orientation dispersion index ODI in (0, 1) (NODDI's, ODI = 2/pi
        arctan(1/kappa) of a Watson distribution about z). Straight fibres with
        different tilts cannot all run through a periodic box without crossing
        (on a torus, lines of different directions must meet), so dispersed
        axons are finite capsules (cylinders with hemispherical ends) of
        ``length``, oriented by the Watson distribution and packed in 3-D
        without overlap; their ICVF is lower than parallel axons reach
        (see the note printed by a refused target), and an unreachable target
        is refused with what was reached.
    min_gap : float, optional
        Smallest gap in m between two axon surfaces (default 2 % of the mean
        radius; widened for a mesh too coarse to keep it).
    arrangement : {"random", "clustered", "hexagonal"}
        Packing arrangement (see :func:`substrates.pack_disks`).
    clustering : float
        Square-well depth in kT for ``"clustered"`` (dimensionless; 0: random).

    Returns
    -------
    Substrate
        Analytic cylinders (or a MeshSubstrate); ``ground_truth()`` reports the
        ICVF reached, radii (m) and the packing seed.

    Raises
    ------
    ValueError
        If the target ICVF cannot be reached without overlaps (the message
        says what was reached).

    Examples
    --------
    >>> import substrates
    >>> sub = substrates.packed_axons(n_axons=30, mean_radius=1e-6, icvf=0.6, seed=0)
    >>> sub.name, len(sub.radii)
    ('cylinders', 30)
    >>> round(sub.volume_fractions()["intra"], 3)
    0.6
    """
    r = gamma_radii(check_count(n_axons, "n_axons"), mean_radius, shape, seed) if radii is None \
        else check_length(radii, "radii").ravel()
    icvf = check_fraction(icvf, "icvf")
    if length is not None:
        length = float(check_length(length, "length"))
    walls = {"permeability": permeability, "relaxivity": relaxivity}
    if dispersion is not None:
        return _dispersed_capsules(r, float(icvf), float(dispersion), seed, length, resolution, walls, shape,
                                   mean_radius)
    # a mesh's vertices stand out of the true circle by its vertex-radius factor: the gap between two disks must
    # hold both excesses. The true radii are packed either way, so a fine mesh and the exact cylinders of one
    # seed share one arrangement; only a mesh too coarse for the gap widens it (and so changes the arrangement)
    gap = 0.02 * float(r.mean()) if min_gap is None else float(check_length(min_gap, "min_gap", allow_zero=True))
    if as_mesh:
        rv = area_preserving_radius(1.0, polygon_sides(resolution))
        gap = max(gap, 2.0 * float(r.max()) * (rv - 1.0) * 1.01)
    try:
        x, L, info = pack_disks(r, icvf, seed=seed, min_gap=gap, arrangement=arrangement, clustering=clustering,
                                return_info=True)
    except ValueError as exc:
        raise ValueError(f"packed_axons(icvf={icvf!r}): {exc}") from None
    box = np.broadcast_to(np.asarray(L, dtype=float), (2,))
    truth = {"generator": "packed_axons", "seed": int(seed), "icvf_target": float(icvf),
             "icvf": float(np.sum(np.pi * r**2) / np.prod(box)), "gamma_shape": float(shape),
             "mean_radius_target": float(mean_radius), "min_gap": float(nearest_gaps(x, r, box).min()),
             "packing": {**info, **packing_statistics(x, r, box)}}
    if not as_mesh:
        sub = cylinders(r, x, box, **walls)
        sub.description.update(truth)
        sub.description["factory"] = "packed_axons"
        return sub
    Lz = float(length) if length is not None else 10 * float(np.mean(r))
    return _tubes(x, r, L, Lz, lambda k, zz: (np.zeros_like(zz), np.zeros_like(zz)), None, resolution,
                  truth, walls, "packed_axons")  # straight: 8 rings per period are exact


def pack_cylinders(radii, icvf: float, seed: int = 0, axis=(0.0, 0.0, 1.0), min_gap: float | None = None,
                   permeability=0.0, arrangement: str = "random", clustering: float = 0.0,
                   relaxivity=0.0) -> AnalyticSubstrate:
    """Pack non-overlapping parallel cylinders into a periodic box at a target volume fraction.

    Parameters
    ----------
    radii : array_like
        (P,) radii in m.
    icvf : float
        Target intra-cylinder volume fraction; the box is sized to hit it exactly (at most 0.85).
    seed : int
        Seed of the packing.
    axis : array_like
        (3,) cylinder axis.
    min_gap : float, optional
        Smallest gap in m between two cylinder surfaces (default 2 % of the mean radius).
    permeability : float or array_like
        Membrane permeability kappa in m/s, one value or one per cylinder (0: impermeable).
    arrangement : {"random", "clustered", "hexagonal"}
        See :func:`substrates.pack_disks`.
    clustering : float
        Square-well depth in kT for ``"clustered"``.
    relaxivity : float or array_like
        Surface relaxivity rho in m/s, one value or one per cylinder (0: none; see
        :func:`walker.survival_probability`).

    Returns
    -------
    AnalyticSubstrate
        Its ground truth carries the packing's algorithm and statistics.

    Raises
    ------
    ValueError
        If the target fraction cannot be reached without overlaps (the message says what was reached).

    Examples
    --------
    >>> import numpy as np, substrates
    >>> sub = substrates.pack_cylinders(np.random.default_rng(0).gamma(4, 0.5e-6, 100), 0.6)   # doctest: +SKIP
    """
    try:
        x, L, info = pack_disks(radii, icvf, seed=seed, min_gap=min_gap, arrangement=arrangement,
                                clustering=clustering, return_info=True)
    except ValueError as exc:
        raise ValueError(f"pack_cylinders(icvf={icvf!r}): {exc}") from None
    r = np.asarray(radii, dtype=float).ravel()
    box = np.broadcast_to(np.asarray(L, dtype=float), (2,))
    sub = cylinders(r, x, box, axis=axis, permeability=permeability, relaxivity=relaxivity)
    sub.description.update({"factory": "pack_cylinders", "generator": "pack_cylinders", "seed": int(seed),
                            "packing": {**info, **packing_statistics(x, r, box)}})
    return sub


def watson_axes(n: int, odi: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) unit axes from a Watson distribution about z with orientation dispersion index ``odi``."""
    if not 0 < odi < 1:
        raise ValueError(f"dispersion is an orientation dispersion index in (0, 1), got {odi!r}")
    kappa = 1.0 / math.tan(math.pi * odi / 2)
    t = np.linspace(0.0, 1.0, 4001)
    w = np.exp(kappa * (t**2 - 1.0))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (w[1:] + w[:-1]) * np.diff(t))])
    cdf /= cdf[-1]
    ct = np.interp(rng.uniform(size=n), cdf, t)
    ph = rng.uniform(0, 2 * np.pi, n)
    st = np.sqrt(1 - ct**2)
    return np.column_stack([st * np.cos(ph), st * np.sin(ph), ct])


@njit(inline="always")
def _segment_gap(px, py, pz, d1x, d1y, d1z, qx, qy, qz, d2x, d2y, d2z):
    """Vector between the closest points of segments p + s d1 and q + t d2 (s, t in [0, 1]), from the first
    to the second; either segment may be a point (Ericson, Real-Time Collision Detection, 5.1.9)."""
    rx = px - qx
    ry = py - qy
    rz = pz - qz
    A = d1x * d1x + d1y * d1y + d1z * d1z
    E = d2x * d2x + d2y * d2y + d2z * d2z
    F = d2x * rx + d2y * ry + d2z * rz
    if A <= 1e-30 and E <= 1e-30:
        sv = 0.0
        tv = 0.0
    elif A <= 1e-30:
        sv = 0.0
        tv = min(max(F / E, 0.0), 1.0)
    else:
        C = d1x * rx + d1y * ry + d1z * rz
        if E <= 1e-30:
            tv = 0.0
            sv = min(max(-C / A, 0.0), 1.0)
        else:
            B = d1x * d2x + d1y * d2y + d1z * d2z
            den = A * E - B * B
            sv = min(max((B * F - C * E) / den, 0.0), 1.0) if den > 1e-12 * A * E else 0.0
            tv = (B * sv + F) / E
            if tv < 0.0:
                tv = 0.0
                sv = min(max(-C / A, 0.0), 1.0)
            elif tv > 1.0:
                tv = 1.0
                sv = min(max((B - C) / A, 0.0), 1.0)
    return (qx + tv * d2x) - (px + sv * d1x), (qy + tv * d2y) - (py + sv * d1y), (qz + tv * d2z) - (pz + sv * d1z)


@njit(cache=True)
def _capsule_energy(x, half, r, box, grad):
    """Summed squared overlaps of capsules (centres x, half-axes half, radii r) over periodic images."""
    P = x.shape[0]
    e = 0.0
    grad[:, :] = 0.0
    for i in range(P):
        for j in range(i + 1, P):
            reach = math.sqrt(half[i, 0] ** 2 + half[i, 1] ** 2 + half[i, 2] ** 2) \
                + math.sqrt(half[j, 0] ** 2 + half[j, 1] ** 2 + half[j, 2] ** 2) + r[i] + r[j]
            # nearest image first (the optimiser may move centres anywhere), then its neighbours
            mx = x[j, 0] - x[i, 0]
            my = x[j, 1] - x[i, 1]
            mz = x[j, 2] - x[i, 2]
            mx -= box[0] * math.floor(mx / box[0] + 0.5)
            my -= box[1] * math.floor(my / box[1] + 0.5)
            mz -= box[2] * math.floor(mz / box[2] + 0.5)
            for sx in range(-1, 2):
                for sy in range(-1, 2):
                    for sz in range(-1, 2):
                        cx = mx + sx * box[0]
                        cy = my + sy * box[1]
                        cz = mz + sz * box[2]
                        if cx * cx + cy * cy + cz * cz > reach * reach:
                            continue
                        # closest points of segments p(s) = -h_i + 2 s h_i and q(t) = c - h_j + 2 t h_j
                        wx, wy, wz = _segment_gap(-half[i, 0], -half[i, 1], -half[i, 2], 2 * half[i, 0],
                                                  2 * half[i, 1], 2 * half[i, 2], cx - half[j, 0], cy - half[j, 1],
                                                  cz - half[j, 2], 2 * half[j, 0], 2 * half[j, 1], 2 * half[j, 2])
                        dist = math.sqrt(wx * wx + wy * wy + wz * wz)
                        over = r[i] + r[j] - dist
                        if over > 0.0:
                            e += over * over
                            g = 2.0 * over / max(dist, 1e-30)
                            grad[i, 0] += g * wx
                            grad[i, 1] += g * wy
                            grad[i, 2] += g * wz
                            grad[j, 0] -= g * wx
                            grad[j, 1] -= g * wy
                            grad[j, 2] -= g * wz
    return e


@njit(cache=True)
def _capsule_overlaps(i, px, py, pz, x, half, r, box):
    """True when capsule i at centre p overlaps another capsule (any periodic image)."""
    for j in range(x.shape[0]):
        if j == i:
            continue
        reach = math.sqrt(half[i, 0] ** 2 + half[i, 1] ** 2 + half[i, 2] ** 2) \
            + math.sqrt(half[j, 0] ** 2 + half[j, 1] ** 2 + half[j, 2] ** 2) + r[i] + r[j]
        mx = x[j, 0] - px
        my = x[j, 1] - py
        mz = x[j, 2] - pz
        mx -= box[0] * math.floor(mx / box[0] + 0.5)
        my -= box[1] * math.floor(my / box[1] + 0.5)
        mz -= box[2] * math.floor(mz / box[2] + 0.5)
        for sx in range(-1, 2):
            for sy in range(-1, 2):
                for sz in range(-1, 2):
                    cx = mx + sx * box[0]
                    cy = my + sy * box[1]
                    cz = mz + sz * box[2]
                    if cx * cx + cy * cy + cz * cz > reach * reach:
                        continue
                    wx, wy, wz = _segment_gap(-half[i, 0], -half[i, 1], -half[i, 2], 2 * half[i, 0], 2 * half[i, 1],
                                              2 * half[i, 2], cx - half[j, 0], cy - half[j, 1], cz - half[j, 2],
                                              2 * half[j, 0], 2 * half[j, 1], 2 * half[j, 2])
                    if wx * wx + wy * wy + wz * wz < (r[i] + r[j]) ** 2:
                        return True
    return False


@njit(cache=True)
def _capsule_relax(x, half, r, box, n_sweeps, delta, seed):
    """Hard-capsule Metropolis translations (axes kept): the arrangement relaxes from its overlap-free start
    instead of keeping every pair that once overlapped in contact. Returns the acceptance rate."""
    np.random.seed(seed)
    P = x.shape[0]
    accepted = 0
    for _ in range(n_sweeps * P):
        i = np.random.randint(P)
        px = (x[i, 0] + delta * (2.0 * np.random.random() - 1.0)) % box[0]
        py = (x[i, 1] + delta * (2.0 * np.random.random() - 1.0)) % box[1]
        pz = (x[i, 2] + delta * (2.0 * np.random.random() - 1.0)) % box[2]
        if not _capsule_overlaps(i, px, py, pz, x, half, r, box):
            x[i, 0] = px
            x[i, 1] = py
            x[i, 2] = pz
            accepted += 1
    return accepted / max(1, n_sweeps * P)


#: hard-capsule Monte Carlo sweeps after the overlap-free start of dispersed axons
CAPSULE_SWEEPS = 200


def _dispersed_capsules(r, icvf, odi, seed, length, resolution, walls, shape, mean_radius) -> MeshSubstrate:
    """Finite axons (capsules) with Watson-dispersed axes packed in a periodic box (see packed_axons)."""
    rng = np.random.default_rng(seed + 1)
    ell = float(length) if length is not None else 10 * float(np.mean(r))
    axes = watson_axes(len(r), odi, rng)
    vol = np.pi * r**2 * ell + 4 / 3 * np.pi * r**3
    Lz = 1.25 * (ell + 2 * float(r.max()))
    Lxy = math.sqrt(float(np.sum(vol)) / icvf / Lz)
    box = np.array([Lxy, Lxy, Lz])
    ext = np.abs(axes) * ell + 2 * r[:, None]
    if np.any(ext >= box):
        raise ValueError(f"axons {ell * 1e6:.3g} um long do not fit the {Lxy * 1e6:.3g} um wide box at icvf {icvf}: "
                         "use more axons, shorter ones, or a lower icvf")
    half = np.ascontiguousarray(0.5 * ell * axes)
    x = rng.uniform(size=(len(r), 3)) * box
    n = polygon_sides(resolution)
    rv = area_preserving_radius(1.0, n)  # the mesh's vertices stand out of the true radius by this factor
    grad = np.zeros_like(x)
    gap = 0.01
    reached = 0.0
    for scale in (0.6, 0.75, 0.9, 1.0):
        # minimise with twice the gap, accept with the gap: contacts left touching by rounding still pass
        rr = np.ascontiguousarray(r * rv * scale * (1 + 2 * gap))
        r_ok = np.ascontiguousarray(r * rv * scale * (1 + gap))

        def fun(flat):
            e = _capsule_energy(flat.reshape(-1, 3), half, rr, box, grad)
            return e, grad.ravel().copy()

        for _ in range(30):
            res = minimize(fun, x.ravel(), jac=True, method="L-BFGS-B",
                           options={"maxiter": 3000, "gtol": 1e-30, "ftol": 1e-30})
            x = np.mod(res.x.reshape(-1, 3), box)
            if _capsule_energy(x, half, r_ok, box, np.zeros_like(x)) <= 0.0:
                break
            x += rng.normal(scale=1e-2 * float(r.max()), size=x.shape)
        else:
            raise ValueError(f"could not pack dispersed axons (ODI {odi}) at icvf {icvf} without overlaps: reached "
                             f"{reached:.3f} (radii grown to {scale:.0%} failed); lower icvf, shorten the axons "
                             "or reduce the dispersion")
        reached = icvf * scale**2
    acceptance = _capsule_relax(x, half, np.ascontiguousarray(r * rv * (1 + gap)), box, CAPSULE_SWEEPS,
                                0.3 * float(np.mean(r)), int(seed) % (2**31))
    verts, faces, nv = [], [], 0
    for c, h, ri in zip(x, half, r):
        v, f = capsule(c - h, c + h, ri * rv, n)
        verts.append(v)
        faces.append(f + nv)
        nv += len(v)
    truth = {"generator": "packed_axons", "dispersion_odi": odi, "watson_kappa": 1.0 / math.tan(math.pi * odi / 2),
             "axes": axes.tolist(), "axon_length": ell, "radii": r.tolist(), "seed": int(seed),
             "icvf_target": icvf, "icvf_exact": float(np.sum(vol) / np.prod(box)), "gamma_shape": float(shape),
             "mean_radius_target": float(mean_radius), "mean_cos2": float(np.mean(axes[:, 2] ** 2)),
             "polygon_sides": n, "mesh_radius_error": polygon_radius_error(n),
             "packing": {"algorithm_version": PACKING_VERSION, "arrangement": "random", "sweeps": CAPSULE_SWEEPS,
                         "acceptance": acceptance}}
    sub = mesh_substrate(np.concatenate(verts), np.concatenate(faces), box=box, **walls,
                         description={"factory": "packed_axons", "dispersion_odi": odi, "seed": int(seed)},
                         truth=truth)
    sub.truth["icvf_mesh"] = float(np.sum(sub.component_volume) / np.prod(box))
    return sub


def _tubes(xy, r, L, Lz, offset, radius_profile, resolution, truth, walls, name,
           curvature: float = 0.0, n_min: int = 8, region_labels=None) -> MeshSubstrate:
    """Tubes along z at xy + offset(k, z), radius r_k * profile(k, z), periodic in a box (L, L, Lz) (L may be
    (Lx, Ly) for a rectangular cross-section).

    Rings are spaced so that the chord error of a curve of ``curvature`` (1/m, of the centre line or of the
    radius profile) stays below ``resolution`` x r_k: dz = sqrt(8 resolution r_k / curvature)."""
    n = polygon_sides(resolution)
    verts, faces, nv = [], [], 0
    tube_vol = []
    for k in range(len(r)):
        # rings about one polygon edge apart at least, so that triangles are not long slivers
        K = max(n_min, int(math.ceil(Lz / (2 * math.pi * r[k] / n))))
        if curvature > 0:
            K = max(K, int(math.ceil(Lz / math.sqrt(8 * resolution * r[k] / curvature))))
        zz = np.arange(K) * (Lz / K)
        dx, dy = offset(k, zz)
        rho = np.full(K, r[k]) if radius_profile is None else r[k] * radius_profile(k, zz)
        c = np.column_stack([xy[k, 0] + dx, xy[k, 1] + dy, zz])
        # tangent from the periodic centre line (central differences)
        nxt = np.roll(c, -1, axis=0)
        nxt[-1] += [0, 0, Lz]
        prv = np.roll(c, 1, axis=0)
        prv[0] -= [0, 0, Lz]
        tang = nxt - prv
        v, f = periodic_tube(c, tang, area_preserving_radius(rho, n), Lz, n)
        verts.append(v)
        faces.append(f + nv)
        nv += len(v)
        tube_vol.append(float(np.mean(np.pi * rho**2 * np.linalg.norm(tang, axis=1) / (2 * Lz / K)) * Lz))
    truth = dict(truth)
    truth["polygon_sides"] = n
    truth["mesh_radius_error"] = polygon_radius_error(n)
    Lx, Ly = np.broadcast_to(np.asarray(L, dtype=float), (2,))
    sub = mesh_substrate(np.concatenate(verts), np.concatenate(faces), box=[Lx, Ly, Lz], **walls,
                         description={"factory": name, **{k: v for k, v in truth.items() if np.isscalar(v)}},
                         truth=truth, region_labels=region_labels)
    icvf_exact = float(np.sum(tube_vol) / (Lx * Ly * Lz))
    sub.truth["icvf_exact"] = icvf_exact
    sub.truth["icvf_mesh"] = float(np.sum(sub.component_volume) / (Lx * Ly * Lz))
    sub.truth["mesh_volume_error"] = float(sub.truth["icvf_mesh"] / icvf_exact - 1)
    return sub


def myelinated_axons(n_axons: int = 50, mean_radius: float = 1e-6, g_ratio: float = 0.7, g_ratio_sd: float = 0.05,
                     fvf: float = 0.6, gamma_shape: float = 4.0, radii=None, g_ratios=None, seed: int = 0,
                     length: float | None = None, resolution: float = 0.01, min_gap: float | None = None,
                     permeability=0.0, relaxivity=0.0) -> MeshSubstrate:
    """Myelinated axons: each axon inside its myelin sheath (two coaxial tubes), packed in a periodic box.

    Three compartments: ``"intra"`` (inside the axon), ``"myelin"`` (the annulus between the axon's
    surface and the sheath's outer surface) and ``"extra"``; each can have its own diffusivity, T2,
    and the two surfaces their own permeability and relaxivity. Inner radii are Gamma-distributed,
    g-ratios (inner / outer radius) normal, and the fibres (outer circles) are packed like
    :func:`packed_axons`; the mesh is the nested components the mesh importer understands.

    Parameters
    ----------
    n_axons : int
        Number of fibres.
    mean_radius : float
        Mean inner (axon) radius in m.
    g_ratio, g_ratio_sd : float
        Mean and standard deviation of the g-ratio r_inner / r_outer (dimensionless; 0.6-0.8 in healthy
        white matter). Drawn from a normal distribution truncated to [0.3, 0.95]: the rare draws outside
        are redrawn, with a warning; a mean and spread that put more than 5 % of the distribution outside
        are refused.
    fvf : float
        Fibre volume fraction (axons and myelin) of the box, 0-1.
    gamma_shape : float
        Shape of the Gamma distribution of inner radii.
    radii, g_ratios : array_like, optional
        Inner radii in m and g-ratios given explicitly (one per fibre) instead of drawn.
    seed : int
        Seed of the radii, g-ratios and packing.
    length : float, optional
        Period along z in m (default 10 mean outer radii).
    resolution : float
        Relative radius error of the polygonal cross-sections.
    min_gap : float, optional
        Thinnest extra-axonal sheet between two fibres in m (default 2 % of the mean outer radius).
    permeability : float or dict
        Permeability kappa in m/s of both surfaces, or ``{"inner": ..., "outer": ...}``: the axon's own
        membrane (intra <-> myelin) and the sheath's outer surface (myelin <-> extra).
    relaxivity : float or dict
        Surface relaxivity rho in m/s, one value or ``{"inner": ..., "outer": ...}`` (see
        :func:`walker.survival_probability`).

    Returns
    -------
    MeshSubstrate
        Regions ``["myelin", "intra", "extra"]``; its ground truth carries the g-ratios, inner and outer
        radii, and the exact (circle) volume fractions of the three compartments.

    Examples
    --------
    >>> import substrates
    >>> sub = substrates.myelinated_axons(n_axons=8, mean_radius=1e-6, g_ratio=0.7, fvf=0.5, seed=1)
    >>> sub.region_names
    ['myelin', 'intra', 'extra']
    >>> 0.6 < sub.ground_truth()["g_ratio_mean"] < 0.8
    True
    """
    n = check_count(n_axons, "n_axons")
    rng = np.random.default_rng(seed)
    r_in = gamma_radii(n, mean_radius, gamma_shape, seed) if radii is None \
        else check_length(radii, "radii").ravel()
    n = len(r_in)
    if g_ratios is None:
        g = draw_g_ratios(g_ratio, g_ratio_sd, n, rng)
    else:
        g = np.asarray(g_ratios, dtype=float).ravel()
        if g.shape != (n,) or np.any(~(g > 0)) or np.any(g >= 1):
            raise ValueError(f"g_ratios must be {n} values in (0, 1) (inner / outer radius), got {g_ratios!r}")
    r_out = r_in / g
    fvf = check_fraction(fvf, "fvf")
    if length is not None:
        length = float(check_length(length, "length"))
    nsides = polygon_sides(resolution)
    rv = area_preserving_radius(1.0, nsides)
    # the sheath's polygon must clear the axon's: the thinnest myelin holds both polygons' excess
    if np.any(r_out - r_in <= 2.0 * r_out * (rv - 1.0)):
        raise ValueError(f"a g-ratio of {g.max():.3f} leaves myelin thinner than the mesh error at resolution "
                         f"{resolution}: lower g_ratio or refine the resolution")
    gap = 0.02 * float(r_out.mean()) if min_gap is None else float(check_length(min_gap, "min_gap", allow_zero=True))
    gap = max(gap, 2.0 * float(r_out.max()) * (rv - 1.0) * 1.01)
    try:
        x, L, info = pack_disks(r_out, fvf, seed=seed, min_gap=gap, return_info=True)
    except ValueError as exc:
        raise ValueError(f"myelinated_axons(fvf={fvf!r}): {exc}") from None
    box = np.broadcast_to(np.asarray(L, dtype=float), (2,))
    area = float(np.prod(box))
    v_in, v_my = float(np.sum(np.pi * r_in**2)) / area, float(np.sum(np.pi * (r_out**2 - r_in**2))) / area
    truth = {"generator": "myelinated_axons", "seed": int(seed), "fvf_target": float(fvf),
             "inner_radii": r_in.tolist(), "outer_radii": r_out.tolist(), "g_ratios": g.tolist(),
             "g_ratio_mean": float(np.mean(g)), "g_ratio_aggregate": float(math.sqrt(v_in / (v_in + v_my))),
             "fractions_exact": {"intra": v_in, "myelin": v_my, "extra": 1.0 - v_in - v_my},
             "myelin_volume_fraction": v_my, "myelin_fraction_of_fibres": v_my / (v_in + v_my),
             "mean_radius_target": float(mean_radius), "packing": {**info, **packing_statistics(x, r_out, box)}}
    walls = {"permeability": per_surface(permeability, n, "permeability"),
             "relaxivity": per_surface(relaxivity, n, "relaxivity")}
    Lz = float(length) if length is not None else 10 * float(np.mean(r_out))
    # components in face order: the n sheaths (depth 0: myelin inside them), then the n axons (depth 1: intra)
    return _tubes(np.vstack([x, x]), np.concatenate([r_out, r_in]), L, Lz,
                  lambda k, zz: (np.zeros_like(zz), np.zeros_like(zz)), None, resolution, truth, walls,
                  "myelinated_axons", region_labels=("myelin", "intra"))


#: the window drawn g-ratios are kept in (dimensionless): healthy and diseased white matter lie well inside it,
#: and a thinner sheath than 0.95 of the fibre is below what the mesh resolves at the usual resolutions
G_RATIO_WINDOW = (0.3, 0.95)
#: largest share of the normal g-ratio distribution allowed outside G_RATIO_WINDOW (redrawn, with a warning)
G_RATIO_TAIL = 0.05


def draw_g_ratios(g_ratio, g_ratio_sd, n: int, rng: np.random.Generator) -> np.ndarray:
    """n g-ratios from a normal distribution truncated to G_RATIO_WINDOW (draws outside are redrawn).

    Users of g-ratio distributions expect a (truncated) normal, not one with spikes at the bounds, which
    clipping makes and which biases the mean; so draws outside the window are redrawn, with a warning
    saying how many. A mean or spread that puts more than G_RATIO_TAIL of the distribution outside the
    window is refused: the fibres would no longer follow the distribution asked for.
    """
    lo, hi = G_RATIO_WINDOW
    try:
        mu, sd = float(g_ratio), float(g_ratio_sd)
    except (TypeError, ValueError):
        raise ValueError(f"g_ratio and g_ratio_sd must be numbers, got {g_ratio!r} and {g_ratio_sd!r}") from None
    if not (math.isfinite(mu) and 0 < mu < 1):
        raise ValueError(f"g_ratio (inner / outer radius) must be a number in (0, 1), got {g_ratio!r}; "
                         f"0.6-0.8 in healthy white matter")
    if not (math.isfinite(sd) and sd >= 0):
        raise ValueError(f"g_ratio_sd must be a finite standard deviation >= 0 (dimensionless), got {g_ratio_sd!r}")
    if sd == 0:
        outside = 0.0 if lo <= mu <= hi else 1.0
    else:
        outside = 0.5 * (math.erfc((mu - lo) / (sd * math.sqrt(2))) + math.erfc((hi - mu) / (sd * math.sqrt(2))))
    if outside > G_RATIO_TAIL:
        raise ValueError(f"g_ratio = {mu:g} with g_ratio_sd = {sd:g} puts {outside:.1%} of the g-ratios outside "
                         f"[{lo}, {hi}], the range drawn g-ratios are kept in: choose g_ratio in that range and a "
                         f"smaller g_ratio_sd, or give the g-ratios explicitly (g_ratios=)")
    g = rng.normal(mu, sd, n)
    out = (g < lo) | (g > hi)
    redrawn = int(out.sum())
    while out.any():
        g[out] = rng.normal(mu, sd, int(out.sum()))
        out = (g < lo) | (g > hi)
    if redrawn:
        warnings.warn(f"myelinated_axons: redrew {redrawn} of {n} g-ratios that fell outside [{lo}, {hi}] "
                      f"(a normal distribution truncated to that range)", stacklevel=3)
    return g


def per_surface(value, n: int, what: str):
    """One value per component (n sheaths, then n axons) from one value or {"inner": ..., "outer": ...}."""
    if isinstance(value, dict):
        if set(value) != {"inner", "outer"}:
            raise ValueError(f"{what} of myelinated axons: one value in m/s or {{'inner': ..., 'outer': ...}} "
                             f"(the axon's membrane and the sheath's outer surface), got keys {sorted(value)}")
        return np.concatenate([np.full(n, float(value["outer"])), np.full(n, float(value["inner"]))])
    return value


# --------------------------------------------------------------------------------------- undulating axons
def undulating_axons(n_axons: int = 100, mean_radius: float = 1e-6, amplitude: float = 1e-6,
                     wavelength: float = 20e-6, icvf: float = 0.6, shape: str = "sinusoid", gamma_shape: float = 4.0,
                     radii=None, periods: int = 1, phase: str = "random", seed: int = 0,
                     resolution: float = 0.02, permeability=0.0, relaxivity=0.0) -> MeshSubstrate:
    """Axons whose centre lines undulate (sinusoid in a random plane, or helix), packed without overlaps.

    The centre line of axon k is x_k + A_k u(2 pi z / lambda + phi_k), with u
    a unit vector turning in a random plane (sinusoid) or a circle (helix).
    Cross-sections are circles of the *true inner radius* r_k normal to the
    centre line. Axons are packed by their footprints r_k / cos(alpha_k) + A_k
    (alpha: the steepest tilt), which guarantees no two tubes meet at any z;
    with ``phase="coherent"`` all axons undulate together (same phase and
    plane) and the footprint is ``r_k / cos(alpha_k) + |A_k - mean A|``, so dense
    bundles of strongly undulating axons can be packed.

    Parameters
    ----------
    n_axons : int
        Number of axons.
    mean_radius : float
        Mean inner radius (gamma distributed) in m.
    amplitude : float or array_like
        Undulation amplitude A in m (one, or one per axon).
    wavelength : float
        Undulation wavelength lambda in m (the box is ``periods`` wavelengths long).
    icvf : float
        Target intra-axonal volume fraction; refused with the largest reachable
        value when the footprints cannot be packed that densely.
    shape : {"sinusoid", "helix"}
        Centre-line shape.
    gamma_shape : float
        Gamma shape of the radius distribution.
    radii : array_like, optional
        Inner radii in m instead of drawing them.
    periods : int
        Wavelengths along the box.
    phase : {"random", "coherent"}
        Independent phase and plane per axon, or one shared by all.
    seed : int
        Seed of radii, phases, planes and positions.
    resolution : float
        Relative radius error of the mesh.
    permeability : float or array_like
        Membrane permeability kappa in m/s.
    relaxivity : float or array_like
        Surface relaxivity rho of the walls in m/s (0: none; see
        :func:`walker.survival_probability`).

    Returns
    -------
    MeshSubstrate
        Ground truth: inner radii, amplitude, wavelength, phase and plane per
        axon, tortuosity (centre-line length / box length), ICVF (exact and mesh).
    """
    rng = np.random.default_rng(seed)
    r = gamma_radii(check_count(n_axons, "n_axons"), mean_radius, gamma_shape, seed) if radii is None \
        else check_length(radii, "radii").ravel()
    n = len(r)
    icvf = check_fraction(icvf, "icvf")
    periods = check_count(periods, "periods")
    lam = float(check_length(wavelength, "wavelength"))
    A = check_length(amplitude, "amplitude", allow_zero=True)
    if A.ndim > 1 or A.size not in (1, n):
        raise ValueError(f"amplitude must be one value in m or one per axon ({n}), got shape {A.shape}")
    A = np.broadcast_to(A, (n,)).copy()
    if shape not in ("sinusoid", "helix"):
        raise ValueError(f"shape must be 'sinusoid' or 'helix', got {shape!r}")
    k = 2 * np.pi / lam
    tan_a = A * k
    # tortuosity: mean |dc/dz| over a period
    zs = np.linspace(0, lam, 257)[:-1]
    if phase not in ("random", "coherent"):
        raise ValueError(f"phase must be 'random' or 'coherent', got {phase!r}")
    phi = rng.uniform(0, 2 * np.pi, n)
    plane = rng.uniform(0, np.pi, n)
    if phase == "coherent":
        phi[:] = phi[0]
        plane[:] = plane[0]
    if shape == "helix":
        tort = np.sqrt(1 + tan_a**2)
    else:
        tort = np.array([np.mean(np.sqrt(1 + (a * k * np.cos(k * zs))**2)) for a in A])
    # a tilted circular section meets a z-plane in an ellipse of semi-axis r / cos(alpha) <= r sqrt(1 + tan^2)
    foot = r * np.sqrt(1 + tan_a**2) + (A if phase == "random" else np.abs(A - A.mean()))
    Lz = periods * lam
    # the box is sized for the true ICVF; the footprints then fill foot^2 / (r^2 tort) more
    area_true = np.sum(np.pi * r**2 * tort)
    L = math.sqrt(area_true / float(icvf))
    foot = foot * area_preserving_radius(1.0, polygon_sides(resolution))  # mesh vertices stand out by this
    frac_foot = float(np.sum(np.pi * foot**2) / L**2)
    if frac_foot > MAX_DISK_FRACTION:
        best = float(icvf) * MAX_DISK_FRACTION / frac_foot
        raise ValueError(f"undulating axons with these amplitudes cannot reach icvf {icvf}: their footprints would "
                         f"cover {frac_foot:.2f} of the plane; the most this generator reaches is ~{best:.3f}")
    x, L2, info = pack_disks(foot, frac_foot, seed=seed, return_info=True)

    def offset(j, zz):
        ph = k * zz + phi[j]
        if shape == "helix":
            return A[j] * np.cos(ph), A[j] * np.sin(ph)
        s = A[j] * np.sin(ph)
        return s * np.cos(plane[j]), s * np.sin(plane[j])

    truth = {"generator": "undulating_axons", "seed": int(seed), "shape": shape, "phase": phase,
             "inner_radii": r.tolist(),
             "mean_inner_radius": float(r.mean()), "amplitude": A.tolist() if np.ptp(A) > 0 else float(A[0]),
             "wavelength": lam, "phases": phi.tolist(), "planes": plane.tolist(), "tortuosity": tort.tolist(),
             "icvf_target": float(icvf), "min_footprint_gap": float(nearest_gaps(x, foot, L2).min()),
             "packing": {**info, **packing_statistics(x, foot, L2)}}
    return _tubes(x, r, L2, Lz, offset, None, resolution, truth,
                  {"permeability": permeability, "relaxivity": relaxivity}, "undulating_axons",
                  curvature=float(A.max()) * k**2, n_min=24 * periods)


# --------------------------------------------------------------------------------------- beaded axons
def beaded_axons(n_axons: int = 20, mean_radius: float = 1e-6, bead_amplitude: float = 0.5,
                 bead_spacing: float = 10e-6, spacing: str = "periodic", bead_width: float | None = None,
                 icvf: float = 0.5, gamma_shape: float = 4.0, radii=None, n_beads: int = 4, seed: int = 0,
                 resolution: float = 0.02, permeability=0.0, relaxivity=0.0) -> MeshSubstrate:
    """Straight axons whose radius swells into beads along z, packed without overlaps.

    Periodic beads: r(z) = r0 (1 + a (1 + cos(2 pi z / s)) / 2), swelling from
    r0 to r0 (1 + a) every s. Random beads: r(z) = r0 (1 + a sum_j
    exp(-(z - z_j)^2 / (2 w^2))) with bead centres spaced s on average (at
    least 2.5 w apart).

    Parameters
    ----------
    n_axons : int
        Number of axons.
    mean_radius : float
        Mean shaft (minimum) radius r0 in m (gamma distributed).
    bead_amplitude : float
        Relative swelling a (0.5: beads 1.5 times the shaft radius).
    bead_spacing : float
        Mean distance s between beads in m.
    spacing : {"periodic", "random"}
        Bead placement.
    bead_width : float, optional
        Gaussian width w of random beads in m (default s / 6).
    icvf : float
        Target intra-axonal volume fraction (footprints are the bead radii).
    gamma_shape : float
        Gamma shape k of the shaft-radius distribution (dimensionless; larger:
        narrower).
    radii : array_like, optional
        (n_axons,) shaft radii in m to use instead of drawing them.
    n_beads : int
        Beads per axon along the box (the box is n_beads * s long).
    seed : int
        Seed.
    resolution : float
        Relative radius error of the mesh.
    permeability : float or array_like
        Membrane permeability kappa in m/s.
    relaxivity : float or array_like
        Surface relaxivity rho of the walls in m/s (0: none; see
        :func:`walker.survival_probability`).

    Returns
    -------
    MeshSubstrate
        Ground truth: bead spacing (m) and amplitude, bead positions (m), shaft
        radii (m), mean cross-section per axon ``<pi r(z)^2>`` (m^2), and the ICVF.
    """
    rng = np.random.default_rng(seed)
    r = gamma_radii(check_count(n_axons, "n_axons"), mean_radius, gamma_shape, seed) if radii is None \
        else check_length(radii, "radii").ravel()
    n = len(r)
    icvf = check_fraction(icvf, "icvf")
    n_beads = check_count(n_beads, "n_beads")
    s = float(check_length(bead_spacing, "bead_spacing"))
    a = float(bead_amplitude)
    if not 0 <= a <= 3:
        raise ValueError(f"bead_amplitude is relative (0.5: beads 1.5x the shaft radius); got {a}")
    Lz = n_beads * s
    w = float(check_length(bead_width, "bead_width")) if bead_width is not None else s / 6
    if spacing == "periodic":
        centres = [np.arange(n_beads) * s + rng.uniform(0, s) for _ in range(n)]

        def profile(j, zz):
            return 1 + a * 0.5 * (1 + np.cos(2 * np.pi * (zz - centres[j][0]) / s))
    elif spacing == "random":
        centres = []
        for _ in range(n):
            for _try in range(1000):
                z = np.sort(rng.uniform(0, Lz, n_beads))
                gaps = np.diff(np.concatenate([z, [z[0] + Lz]]))
                if gaps.min() >= 2.5 * w:
                    break
            else:
                raise ValueError("random beads do not fit: lower n_beads or bead_width")
            centres.append(z)

        def profile(j, zz):
            d = zz[:, None] - centres[j][None, :]
            d -= Lz * np.round(d / Lz)
            return 1 + a * np.exp(-d**2 / (2 * w**2)).sum(1)
    else:
        raise ValueError(f"spacing must be 'periodic' or 'random', got {spacing!r}")
    zz = np.linspace(0, Lz, 2049)[:-1]
    prof = np.array([profile(j, zz) for j in range(n)])
    mean_area = np.pi * r**2 * np.mean(prof**2, axis=1)
    rmax = r * prof.max(axis=1) * area_preserving_radius(1.0, polygon_sides(resolution))
    L = math.sqrt(np.sum(mean_area) / float(icvf))
    frac_foot = float(np.sum(np.pi * rmax**2) / L**2)
    if frac_foot > MAX_DISK_FRACTION:
        best = float(icvf) * MAX_DISK_FRACTION / frac_foot
        raise ValueError(f"beaded axons cannot reach icvf {icvf}: their beads would cover {frac_foot:.2f} of the "
                         f"plane; the most this generator reaches is ~{best:.3f}")
    x, L2, info = pack_disks(rmax, frac_foot, seed=seed, return_info=True)
    truth = {"generator": "beaded_axons", "seed": int(seed), "spacing": spacing, "bead_spacing": s,
             "bead_amplitude": a, "bead_width": w if spacing == "random" else None,
             "bead_positions": [c.tolist() for c in centres], "shaft_radii": r.tolist(),
             "mean_cross_section": mean_area.tolist(), "mean_radius": float(np.mean(r * prof.mean(axis=1))),
             "icvf_target": float(icvf), "packing": {**info, **packing_statistics(x, rmax, L2)}}
    curv = a * (2 * np.pi / s) ** 2 / 2 if spacing == "periodic" else a / w**2
    return _tubes(x, r, L2, Lz, lambda j, zz: (np.zeros_like(zz), np.zeros_like(zz)), profile, resolution, truth,
                  {"permeability": permeability, "relaxivity": relaxivity}, "beaded_axons", curvature=float(curv * r.max()), n_min=24 * n_beads)


# --------------------------------------------------------------------------------------- somas with neurites
def somas_with_neurites(n_cells: int = 12, soma_radius: float = 4e-6, soma_radius_sd: float = 0.8e-6,
                        neurites: int = 3, neurite_radius: float = 0.75e-6, neurite_length: float = 4e-6,
                        volume_fraction: float = 0.15, fillet: float | None = None, seed: int = 0,
                        resolution: float | None = None, permeability=0.0, max_tries: int = 5000,
                        relaxivity=0.0) -> Substrate:
    """SANDI-like cells: spherical somas with radial cylindrical neurites, randomly oriented, in extra-cellular space.

    Each cell is the smooth union of a sphere and ``neurites`` capsules that
    start at its centre and reach ``neurite_length`` beyond the soma surface
    along random directions; cells are placed at random without touching
    (including periodic images) in a cubic box sized for ``volume_fraction``,
    and each is meshed by marching tetrahedra (watertight by construction).

    Parameters
    ----------
    n_cells : int
        Number of cells.
    soma_radius, soma_radius_sd : float
        Mean and standard deviation of the soma radius in m (normal, clipped at 0.5x and 1.5x the mean).
    neurites : int
        Neurites per cell (0: bare somas, returned as exact analytic spheres).
    neurite_radius : float
        Neurite radius in m.
    neurite_length : float
        Length of each neurite beyond the soma surface in m.
    volume_fraction : float
        Target intra-cellular volume fraction (cells' volume / box); refused when
        the cells cannot be placed without touching.
    fillet : float, optional
        Radius of the smooth join between soma and neurite in m (default
        neurite_radius / 2); 0 gives a sharp crease.
    seed : int
        Seed.
    resolution : float, optional
        Marching-tetrahedra grid spacing in m (default neurite_radius / 3).
    permeability : float or array_like
        Membrane permeability kappa in m/s.
    relaxivity : float or array_like
        Surface relaxivity rho of the walls in m/s (0: none; see
        :func:`walker.survival_probability`).
    max_tries : int
        Random placements tried per cell before giving up.

    Returns
    -------
    MeshSubstrate or Substrate
        A mesh (exact analytic spheres when ``neurites=0``). Ground truth: soma radii and centres, neurite directions, radius and
        length, the volume fractions of somas, neurites and extra space (exact
        from the primitives and from the mesh), and the soma signal fraction
        SANDI estimates.
    """
    n_cells = check_count(n_cells, "n_cells")
    neurites = check_count(neurites, "neurites", least=0)
    volume_fraction = check_fraction(volume_fraction, "volume_fraction")
    soma_radius = float(check_length(soma_radius, "soma_radius"))
    soma_radius_sd = float(check_length(soma_radius_sd, "soma_radius_sd", allow_zero=True))
    rng = np.random.default_rng(seed)
    Rs = np.clip(rng.normal(soma_radius, soma_radius_sd, n_cells), 0.5 * soma_radius, 1.5 * soma_radius)
    rn = float(check_length(neurite_radius, "neurite_radius"))
    ln = float(check_length(neurite_length, "neurite_length"))
    h = float(check_length(resolution, "resolution")) if resolution is not None else rn / 3
    k = rn / 2 if fillet is None else float(check_length(fillet, "fillet", allow_zero=True))
    max_tries = check_count(max_tries, "max_tries")
    dirs = rng.normal(size=(n_cells, neurites, 3))
    dirs /= np.linalg.norm(dirs, axis=2, keepdims=True)
    # exact volumes (sphere + the part of each neurite outside the soma; fillets ignored)
    v_soma = 4 / 3 * np.pi * Rs**3
    v_neur = np.full(n_cells, neurites * (np.pi * rn**2 * ln + 2 / 3 * np.pi * rn**3))  # shaft + end cap
    v_cells = float(np.sum(v_soma + v_neur))
    L = (v_cells / float(volume_fraction)) ** (1 / 3)
    reach = Rs + (ln + rn if neurites else 0.0)
    if np.any(2 * reach + 2 * h >= L):
        raise ValueError(f"a cell ({2 * reach.max() * 1e6:.3g} um across) does not fit in the {L * 1e6:.3g} um box "
                         "this volume fraction gives: add cells, lower volume_fraction or shorten the neurites")
    # random sequential placement, cells separated by at least a few grid spacings
    centres = np.zeros((n_cells, 3))
    margin = 4 * h + k
    for i in range(n_cells):
        for _try in range(max_tries):
            c = rng.uniform(0, L, 3)
            u = rng.normal(size=(neurites, 3))
            dirs[i] = u / np.linalg.norm(u, axis=1, keepdims=True)  # a new orientation with each try
            ok = True
            for j in range(i):
                d = c - centres[j]
                d -= L * np.round(d / L)
                if np.linalg.norm(d) > reach[i] + reach[j] + margin:
                    continue
                if _cells_touch(d, Rs[i], dirs[i], Rs[j], dirs[j], rn, ln, margin):
                    ok = False
                    break
            if ok:
                centres[i] = c
                break
        else:
            raise ValueError(f"could not place cell {i + 1} of {n_cells} without touching the others at volume "
                             f"fraction {volume_fraction}; lower volume_fraction or neurite_length")
    if neurites == 0:
        # somas alone are spheres, which the walker has exactly: no mesh
        sub = spheres(Rs, centres, [L, L, L], permeability=permeability, relaxivity=relaxivity)
        sub.description.update({"factory": "somas_with_neurites", "generator": "somas_with_neurites",
                                "seed": int(seed), "soma_radii": Rs.tolist(), "mean_soma_radius": float(Rs.mean()),
                                "volume_fraction_target": float(volume_fraction)})
        return sub
    verts, faces, nv = [], [], 0
    for i in range(n_cells):
        ext = reach[i] + 3 * h
        g = np.arange(-ext, ext + h / 2, h)
        P = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1)
        d = np.linalg.norm(P, axis=-1) - Rs[i]
        for u in dirs[i]:
            d = smooth_union(d, capsule_sdf(P, np.zeros(3), u * (Rs[i] + ln), rn), k)
        v, f = marching_tetrahedra(d, [g[0]] * 3, h)
        verts.append(v + centres[i])
        faces.append(f + nv)
        nv += len(v)
    truth = {"generator": "somas_with_neurites", "seed": int(seed), "soma_radii": Rs.tolist(),
             "soma_centres": centres.tolist(), "mean_soma_radius": float(Rs.mean()),
             "neurite_directions": dirs.tolist(), "neurite_radius": rn, "neurite_length": ln,
             "neurites_per_cell": int(neurites), "grid_spacing": h, "fillet": k,
             "volume_fraction_target": float(volume_fraction)}
    vol_box = L**3
    truth["fractions_exact"] = {"soma": float(np.sum(v_soma) / vol_box), "neurite": float(np.sum(v_neur) / vol_box),
                                "extra": float(1 - v_cells / vol_box)}
    truth["soma_signal_fraction"] = float(np.sum(v_soma) / v_cells)
    sub = mesh_substrate(np.concatenate(verts), np.concatenate(faces), box=[L, L, L], permeability=permeability,
                         relaxivity=relaxivity, description={"factory": "somas_with_neurites", "n_cells": int(n_cells), "seed": int(seed)},
                         truth=truth, check_self_intersections=False)
    sub.truth["icvf_mesh"] = float(np.sum(sub.component_volume) / vol_box)
    return sub


def _cells_touch(d, Ri, ui, Rj, uj, rn, ln, margin) -> bool:
    """Whether cell i (at offset d from cell j) comes within ``margin`` of cell j (sphere/capsule distances)."""
    segs_i = [(d, d + u * (Ri + ln), rn) for u in ui] + [(d, d, Ri)]
    segs_j = [(np.zeros(3), u * (Rj + ln), rn) for u in uj] + [(np.zeros(3), np.zeros(3), Rj)]
    for a0, a1, ra in segs_i:
        for b0, b1, rb in segs_j:
            if _segment_distance(a0, a1, b0, b1) < ra + rb + margin:
                return True
    return False


def _segment_distance(p0, p1, q0, q1) -> float:
    """Smallest distance between segments p0-p1 and q0-q1 (degenerate segments allowed)."""
    d1, d2 = p1 - p0, q1 - q0
    w = _segment_gap(p0[0], p0[1], p0[2], d1[0], d1[1], d1[2], q0[0], q0[1], q0[2], d2[0], d2[1], d2[2])
    return math.sqrt(w[0] ** 2 + w[1] ** 2 + w[2] ** 2)


# --------------------------------------------------------------------------------------- meshed primitives
def meshed_sphere(radius: float, subdivisions: int = 4, permeability=0.0, relaxivity=0.0) -> MeshSubstrate:
    """One sphere as a volume-preserving icosphere, with its mesh-vs-exact error in the ground truth.

    Parameters
    ----------
    radius : float
        Radius in m.
    subdivisions : int
        Icosphere level (3: 1,280 faces; 4: 5,120; 5: 20,480).
    permeability : float
        Membrane permeability kappa in m/s (needs a box: not for a lone sphere).
    relaxivity : float or array_like
        Surface relaxivity rho of the walls in m/s (0: none; see
        :func:`walker.survival_probability`).

    Returns
    -------
    MeshSubstrate
    """
    R = float(check_length(radius, "radius"))
    subdivisions = check_count(subdivisions, "subdivisions", least=0)
    v, f = icosphere(R, subdivisions=subdivisions)
    rad = np.linalg.norm(v, axis=1)
    cen = v[f].mean(axis=1)
    truth = {"generator": "meshed_sphere", "radius": R, "subdivisions": int(subdivisions),
             "mesh_radius_error": float(max(rad.max() / R - 1, 1 - np.linalg.norm(cen, axis=1).min() / R))}
    sub = mesh_substrate(v, f, permeability=permeability, relaxivity=relaxivity,
                         description={"factory": "meshed_sphere", "radius": R},
                         truth=truth)
    sub.truth["mesh_volume_error"] = float(sub.component_volume[0] / (4 / 3 * np.pi * R**3) - 1)
    return sub


def meshed_cylinder(radius: float, length: float | None = None, resolution: float = 0.01,
                    n_z: int = 8, relaxivity=0.0) -> MeshSubstrate:
    """One straight cylinder along z as a periodic tube mesh (walkers inside), with its mesh-vs-exact error.

    Parameters
    ----------
    radius : float
        Radius in m.
    length : float, optional
        Period along z in m (default 4 radii).
    resolution : float
        Relative radius error of the polygonal cross-section.
    n_z : int
        Least number of rings along the period (more are used to keep the triangles about as long as wide).
    relaxivity : float
        Surface relaxivity rho of the wall in m/s (0: none; see :func:`walker.survival_probability`).

    Returns
    -------
    MeshSubstrate
    """
    R = float(check_length(radius, "radius"))
    Lz = float(check_length(length, "length")) if length is not None else 4 * R
    n = polygon_sides(resolution)
    n_z = max(check_count(n_z, "n_z"), int(math.ceil(Lz / (2 * math.pi * R / n))))
    zz = np.arange(n_z) * (Lz / n_z)
    c = np.column_stack([np.zeros(n_z), np.zeros(n_z), zz])
    t = np.tile([0.0, 0.0, 1.0], (n_z, 1))
    v, f = periodic_tube(c, t, np.full(n_z, area_preserving_radius(R, n)), Lz, n)
    truth = {"generator": "meshed_cylinder", "radius": R, "polygon_sides": n,
             "mesh_radius_error": polygon_radius_error(n)}
    sub = mesh_substrate(v, f, box=[np.inf, np.inf, Lz], relaxivity=relaxivity,
                         description={"factory": "meshed_cylinder", "radius": R},
                         truth=truth)
    sub.truth["mesh_volume_error"] = float(sub.component_volume[0] / (np.pi * R**2 * Lz) - 1)
    return sub


# --------------------------------------------------------------------------------------- labelled volumes
def from_labels(volume, voxel_size: float, box=None, labels=None, level: float = 0.6, permeability=0.0,
                origin=(0.0, 0.0, 0.0), relaxivity=0.0) -> MeshSubstrate:
    """Mesh a labelled voxel volume (an EM segmentation: 0 background, one integer per cell) into a substrate.

    Each label becomes one closed component by marching tetrahedra on its
    binary mask. ``level`` > 0.5 puts each surface (1 - level) voxel outside
    the label's voxel centres, so neighbouring labels that touch voxel to
    voxel stay (2 level - 1) voxels apart instead of sharing a face.

    Parameters
    ----------
    volume : array_like
        (nx, ny, nz) integer labels.
    voxel_size : float
        Voxel edge in m (EM: 5e-9 to 1e-7; a value above 1e-5 is refused as a unit mistake).
    box : array_like, optional
        (3,) periodic box in m; default not periodic (walkers inside the cells).
    labels : array_like, optional
        Labels to mesh (default: every non-zero label).
    level : float
        Iso-level of the binary mask in (0.5, 1).
    permeability : float or array_like
        Membrane permeability kappa in m/s.
    relaxivity : float or array_like
        Surface relaxivity rho of the walls in m/s (0: none; see
        :func:`walker.survival_probability`).
    origin : array_like
        (3,) position of voxel (0, 0, 0)'s centre in m.

    Returns
    -------
    MeshSubstrate
        Ground truth: label of each component, voxel volume of each label.
    """
    vol = np.asarray(volume)
    if vol.ndim != 3 or not np.issubdtype(vol.dtype, np.integer):
        raise ValueError("volume must be a 3-D array of integer labels")
    h = float(voxel_size)
    if not 1e-10 < h < 1e-5:
        raise ValueError(f"voxel_size = {h:g} m is not plausible (EM voxels are 5e-9 to 1e-7 m); give it in metres")
    if not 0.5 < level < 1:
        raise ValueError("level must be in (0.5, 1)")
    ids = np.unique(vol[vol != 0]) if labels is None else np.asarray(labels)
    verts, faces, nv, voxels = [], [], 0, []
    for lab in ids:
        mask = np.pad(vol == lab, 1).astype(float)
        if not mask.any():
            raise ValueError(f"label {lab} does not occur in the volume")
        v, f = marching_tetrahedra(level - mask, np.asarray(origin, float) - h, h)
        verts.append(v)
        faces.append(f + nv)
        nv += len(v)
        voxels.append(int((vol == lab).sum()))
    truth = {"generator": "from_labels", "labels": [int(x) for x in ids], "voxel_size": h,
             "label_voxel_volume": [n * h**3 for n in voxels], "level": level}
    return mesh_substrate(np.concatenate(verts), np.concatenate(faces), box=box, permeability=permeability,
                          relaxivity=relaxivity, description={"factory": "from_labels", "n_labels": len(ids), "voxel_size": h}, truth=truth)
