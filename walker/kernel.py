"""The random-walk kernel: walkers through planes, cylinders or spheres, with phase accumulation.

One Python function, compiled twice: ``walk_parallel`` (``parallel=True``,
``prange`` over walkers) and ``walk_serial`` (plain ``njit``); tests require
the two to agree bit for bit. Walker state is held in scalars and in the
walker's own rows of preallocated arrays only: an array allocated inside a
``prange`` body can be hoisted out of the loop by the parallel compiler and
silently shared between walkers.

Geometry is in the substrate's local frame (cylinders along z). Collisions are
exact: the first intersection of the step segment with a wall, specular
reflection, and continuation of the remaining length. The roots are written so
that a walker sitting on a wall can never step through it: from inside, the
exit distance is computed with the clamped squared distance to the wall, so a
walker on the wall moving outward gets distance 0 and is reflected; from
outside, an entry is registered only when moving towards the centre.

Permeable walls: at each hit the walker draws one uniform number and crosses
with the image's transit probability (p_out from inside, p_in from outside,
computed by the caller from kappa, the step length and D), keeping its
direction; the rest of the step is rescaled by sqrt(D_new / D_old) so that
its duration is kept. Impermeable walls (p = 0) draw nothing, so adding the
feature leaves impermeable results bit for bit as they were.

Units: metres and seconds, float64 throughout; no fastmath.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

FREE, PLANES, CYLINDERS, SPHERES = 0, 1, 2, 3
MAX_BOUNCES = 10_000  # per step; only a walker grazing a wall exactly tangentially gets near it

_U11 = np.uint64(11)
_U16 = np.uint64(16)
_U24 = np.uint64(24)
_U40 = np.uint64(40)
_U37 = np.uint64(37)
_U27 = np.uint64(27)
_INV53 = 1.0 / 9007199254740992.0


@njit(inline="always")
def _next(s0, s1):
    # xoroshiro128+ (Blackman & Vigna): top 53 bits -> uniform double in [0, 1)
    res = s0 + s1
    s1 ^= s0
    s0 = ((s0 << _U24) | (s0 >> _U40)) ^ s1 ^ (s1 << _U16)
    s1 = (s1 << _U37) | (s1 >> _U27)
    return (res >> _U11) * _INV53, s0, s1


@njit(inline="always")
def _direction(s0, s1):
    # Marsaglia (1972): uniform on the sphere from a point uniform in the unit disk; no trigonometry
    while True:
        u, s0, s1 = _next(s0, s1)
        v, s0, s1 = _next(s0, s1)
        a = 2.0 * u - 1.0
        b = 2.0 * v - 1.0
        q = a * a + b * b
        if q < 1.0 and q > 0.0:
            break
    f = 2.0 * math.sqrt(1.0 - q)
    return a * f, b * f, 1.0 - 2.0 * q, s0, s1


@njit(inline="always")
def _gaussian3(s0, s1):
    # Box-Muller; 1 - u keeps the log argument in (0, 1]
    u, s0, s1 = _next(s0, s1)
    v, s0, s1 = _next(s0, s1)
    w, s0, s1 = _next(s0, s1)
    x, s0, s1 = _next(s0, s1)
    r1 = math.sqrt(-2.0 * math.log(1.0 - u))
    r2 = math.sqrt(-2.0 * math.log(1.0 - w))
    return r1 * math.cos(2 * math.pi * v), r1 * math.sin(2 * math.pi * v), r2 * math.cos(2 * math.pi * x), s0, s1


@njit(inline="always")
def _draw(gaussian, s0, s1):
    """One step's random vector: standard normal (Gaussian steps) or a uniform unit direction."""
    if gaussian:
        return _gaussian3(s0, s1)
    return _direction(s0, s1)


@njit(inline="always")
def _move(px, py, pz, rx, ry, rz, dx, dy, dz, s):
    """Advance the position and the unwrapped displacement by s along d."""
    return px + s * dx, py + s * dy, pz + s * dz, rx + s * dx, ry + s * dy, rz + s * dz


@njit(inline="always")
def _exit_distance(px, py, pz, dx, dy, dz, R, wz):
    """Distance along unit d from p (relative to the centre, inside) to the wall of radius R."""
    a = dx * dx + dy * dy + wz * dz * dz
    if a <= 0.0:
        return np.inf
    b = px * dx + py * dy + wz * pz * dz
    h = R * R - (px * px + py * py + wz * pz * pz)
    if h < 0.0:
        h = 0.0  # on the wall up to rounding: never outside
    disc = math.sqrt(b * b + a * h)
    if b > 0.0:
        return h / (b + disc)
    return (disc - b) / a


@njit(inline="always")
def _entry_distance(px, py, pz, dx, dy, dz, R, wz):
    """Distance along unit d from p (relative to the centre, outside) to the wall; inf if missed."""
    b = px * dx + py * dy + wz * pz * dz
    if b >= 0.0:
        return np.inf  # moving away from the centre: no entry ahead
    a = dx * dx + dy * dy + wz * dz * dz
    c = px * px + py * py + wz * pz * pz - R * R
    if c < 0.0:
        c = 0.0  # on the wall up to rounding, moving in: hit now
    disc = b * b - a * c
    if disc < 0.0:
        return np.inf
    return c / (math.sqrt(disc) - b)


@njit(inline="always")
def _reflect(dx, dy, dz, nx, ny, nz):
    nn = math.sqrt(nx * nx + ny * ny + nz * nz)
    if nn == 0.0:
        return -dx, -dy, -dz
    nx /= nn
    ny /= nn
    nz /= nn
    dn = 2.0 * (dx * nx + dy * ny + dz * nz)
    return dx - dn * nx, dy - dn * ny, dz - dn * nz


@njit(inline="always")
def _wrap(x, L):
    if x < 0.0 or x >= L:
        x -= math.floor(x / L) * L
        if x >= L:  # rounding of a tiny negative x
            x = 0.0
    return x


@njit(inline="always")
def _wrap_cell(i, n, L):
    # a step is shorter than the box, so a cell index is at most one box away: no integer division
    if i < 0:
        return i + n, -L
    if i >= n:
        return i - n, L
    return i, 0.0


@njit(inline="always")
def _nearest_hit(px, py, pz, dx, dy, dz, reach, wz, box, img_c, img_r, n, h, start, items):
    """Closest wall entry within ``reach`` over the cells the step can touch."""
    best = np.inf
    bq = -1
    bcx = 0.0
    bcy = 0.0
    bcz = 0.0
    i0 = int(math.floor((px - reach) / h[0]))
    i1 = int(math.floor((px + reach) / h[0]))
    j0 = int(math.floor((py - reach) / h[1]))
    j1 = int(math.floor((py + reach) / h[1]))
    if box[2] > 0.0:  # periodic z (spheres), even with a single cell along it
        k0 = int(math.floor((pz - reach) / h[2]))
        k1 = int(math.floor((pz + reach) / h[2]))
    else:
        k0 = 0
        k1 = 0
    for ii in range(i0, i1 + 1):
        ci, sx = _wrap_cell(ii, n[0], box[0])
        for jj in range(j0, j1 + 1):
            cj, sy = _wrap_cell(jj, n[1], box[1])
            for kk in range(k0, k1 + 1):
                if box[2] > 0.0:
                    ck, sz = _wrap_cell(kk, n[2], box[2])
                else:
                    ck = 0
                    sz = 0.0
                cell = (ci * n[1] + cj) * n[2] + ck
                for it in range(start[cell], start[cell + 1]):
                    q = items[it]
                    cx = img_c[q, 0] + sx
                    cy = img_c[q, 1] + sy
                    cz = img_c[q, 2] + sz
                    t = _entry_distance(px - cx, py - cy, pz - cz, dx, dy, dz, img_r[q], wz)
                    if t < best:
                        best = t
                        bq = q
                        bcx = cx
                        bcy = cy
                        bcz = cz
    return best, bq, bcx, bcy, bcz


@njit(inline="always")
def _inside_any(px, py, pz, wz, box, img_c, img_r, n, h, start, items, shrink):
    """True when p lies strictly inside some wall (by the relative margin ``shrink``)."""
    ci = min(max(int(math.floor(px / h[0])), 0), n[0] - 1)
    cj = min(max(int(math.floor(py / h[1])), 0), n[1] - 1)
    ck = min(max(int(math.floor(pz / h[2])), 0), n[2] - 1) if n[2] > 1 else 0
    cell = (ci * n[1] + cj) * n[2] + ck
    for it in range(start[cell], start[cell + 1]):
        q = items[it]
        ex = px - img_c[q, 0]
        ey = py - img_c[q, 1]
        ez = wz * (pz - img_c[q, 2])
        if ex * ex + ey * ey + ez * ez < (img_r[q] * (1.0 - shrink)) ** 2:
            return True
    return False


@njit(inline="always")
def _phase_step(W, t, K, i, rx, ry, rz, a0x, a0y, a0z, a1x, a1y, a1z, a2x, a2y, a2z, out_I):
    """Add this grid point's weighted displacement: up to three shapes (PGSE, OGSE, DDE, b-tensors) in
    registers, the rest straight into out_I."""
    w = W[0, t]
    a0x += w * rx
    a0y += w * ry
    a0z += w * rz
    if K > 1:
        w = W[1, t]
        a1x += w * rx
        a1y += w * ry
        a1z += w * rz
        if K > 2:
            w = W[2, t]
            a2x += w * rx
            a2y += w * ry
            a2z += w * rz
            for k in range(3, K):
                w = W[k, t]
                out_I[i, k, 0] += w * rx
                out_I[i, k, 1] += w * ry
                out_I[i, k, 2] += w * rz
    return a0x, a0y, a0z, a1x, a1y, a1z, a2x, a2y, a2z


@njit(inline="always")
def _record_step(i, t, rx, ry, rz, tin, traj, rec_steps, j_rec, out_rec, te_steps, j_te, out_tin):
    """Trajectory, displacement and time-inside records at grid point t; returns the advanced record indices."""
    if i < traj.shape[0]:
        traj[i, t, 0] = rx
        traj[i, t, 1] = ry
        traj[i, t, 2] = rz
    while j_rec < rec_steps.shape[0] and rec_steps[j_rec] == t:
        out_rec[i, j_rec, 0] = rx
        out_rec[i, j_rec, 1] = ry
        out_rec[i, j_rec, 2] = rz
        j_rec += 1
    while j_te < te_steps.shape[0] and te_steps[j_te] == t:
        out_tin[i, j_te] = tin
        j_te += 1
    return j_rec, j_te


@njit(inline="always")
def _store_phases(i, K, out_I, a0x, a0y, a0z, a1x, a1y, a1z, a2x, a2y, a2z):
    out_I[i, 0, 0] += a0x
    out_I[i, 0, 1] += a0y
    out_I[i, 0, 2] += a0z
    if K > 1:
        out_I[i, 1, 0] += a1x
        out_I[i, 1, 1] += a1y
        out_I[i, 1, 2] += a1z
    if K > 2:
        out_I[i, 2, 0] += a2x
        out_I[i, 2, 1] += a2y
        out_I[i, 2, 2] += a2z


def _walk(kind, pos, home, seeds, n_steps, substeps, M, gaussian, W, spacing, box, img_c, img_r, n, h, start,
          items, p_out, p_in, scale, rec_steps, te_steps, out_I, out_rec, out_tin, out_first, traj, counters,
          check_every_step):
    """Walk every walker through ``n_steps`` grid steps of ``substeps`` sub-steps each.

    Parameters (all arrays preallocated by the caller)
    ----------
    kind : int                 FREE, PLANES, CYLINDERS or SPHERES
    pos : (N, 3) float64       start positions, local frame (m); wrapped into the box for extra walkers,
                               relative to the home image's centre for intra walkers; final positions on return
    home : (N,) int64          image a walker is inside, -1 for extra/free walkers; final compartment on return
    seeds : (N, 2) uint64      xoroshiro128+ state per walker
    M : (3, 3) float64         sub-step matrix: displacement = scale[c] * M @ u (u unit vector, or standard
                               normal if gaussian), c = 0 inside a primitive, 1 outside
    W : (K, T+1) float64       phase weights of the positions at grid points (trapezoid rule)
    p_out, p_in : (Q,) float64 per image: transit probability of a hit from inside / from outside (0: impermeable)
    scale : (2,) float64       step scale inside / outside (sqrt of the diffusivity ratio to M's)
    rec_steps : (R,) int64     grid indices at which displacements are recorded (sorted)
    te_steps : (E,) int64      grid indices at which the time spent inside is recorded (sorted)
    out_I : (N, K, 3)          accumulators sum_t W[k, t] r_t (m)
    out_rec : (N, R, 3)        displacements at rec_steps (m)
    out_tin : (N, E)           time spent inside a primitive (or between planes) up to te_steps, in units of dt
    out_first : (N,)           time of the first membrane transit in units of dt (-1: none)
    traj : (n_traj, T+1, 3)    displacements of the first walkers at every grid point (m)
    counters : (N, 4) int64    reflections, steps cut at MAX_BOUNCES, containment violations, transits
    """
    N = pos.shape[0]
    K = W.shape[0]
    wz = 1.0 if kind == SPHERES else 0.0
    inv_sub = 1.0 / substeps
    ell_iso = M[0, 0]
    iso = (not gaussian) and M[0, 1] == 0.0 and M[0, 2] == 0.0 and M[1, 0] == 0.0 and M[1, 2] == 0.0 \
        and M[2, 0] == 0.0 and M[2, 1] == 0.0 and M[1, 1] == ell_iso and M[2, 2] == ell_iso
    p_planes = p_out[0] if kind == PLANES else 0.0
    for i in prange(N):
        s0 = seeds[i, 0]
        s1 = seeds[i, 1]
        px = pos[i, 0]
        py = pos[i, 1]
        pz = pos[i, 2]
        rx = 0.0
        ry = 0.0
        rz = 0.0
        q_home = home[i]
        if q_home >= 0:
            Rh = img_r[q_home]
        else:
            Rh = 0.0
        j_rec, j_te = _record_step(i, 0, 0.0, 0.0, 0.0, 0.0, traj, rec_steps, 0, out_rec, te_steps, 0, out_tin)
        # step scale of the walker's compartment: changes only at transits
        sc = scale[0] if q_home >= 0 or kind == PLANES else scale[1]
        ell_c = sc * ell_iso
        tin = 0.0
        first = -1.0
        n_refl = 0
        n_cut = 0
        n_bad = 0
        n_tr = 0
        a0x = 0.0
        a0y = 0.0
        a0z = 0.0
        a1x = 0.0
        a1y = 0.0
        a1z = 0.0
        a2x = 0.0
        a2y = 0.0
        a2z = 0.0
        for t in range(1, n_steps + 1):
            for sub in range(substeps):
                ux, uy, uz, s0, s1 = _draw(gaussian, s0, s1)
                if iso:
                    vx = ell_c * ux
                    vy = ell_c * uy
                    vz = ell_c * uz
                else:
                    vx = sc * (M[0, 0] * ux + M[0, 1] * uy + M[0, 2] * uz)
                    vy = sc * (M[1, 0] * ux + M[1, 1] * uy + M[1, 2] * uz)
                    vz = sc * (M[2, 0] * ux + M[2, 1] * uy + M[2, 2] * uz)
                if kind == FREE:
                    rx += vx
                    ry += vy
                    rz += vz
                elif kind == PLANES:
                    # folding into [0, L] is exact specular reflection between parallel planes; a transit moves
                    # the walker into the neighbouring slab (same local coordinate), so hits stay L apart along
                    # the unfolded path and the k-th falls at (d1 + k L) / |vz| of the step
                    z = pz + vz
                    disp = vz
                    k_hit = 0
                    while z < 0.0 or z > spacing:
                        crossed = False
                        if p_planes > 0.0:
                            uu, s0, s1 = _next(s0, s1)
                            crossed = uu < p_planes
                        if crossed:
                            n_tr += 1
                            if first < 0.0:
                                d1 = spacing - pz if vz > 0.0 else pz
                                first = (t - 1) + (sub + (d1 + k_hit * spacing) / abs(vz)) * inv_sub
                            z = z + spacing if z < 0.0 else z - spacing
                        else:
                            zn = -z if z < 0.0 else 2.0 * spacing - z
                            disp += zn - z
                            z = zn
                            n_refl += 1
                        k_hit += 1
                    rx += vx
                    ry += vy
                    rz += disp
                    pz = z
                    tin += inv_sub
                    if (check_every_step or t == n_steps) and (pz < 0.0 or pz > spacing):
                        n_bad += 1
                else:
                    if iso:
                        # fixed-length isotropic steps: the direction is the unit draw itself
                        dx = ux
                        dy = uy
                        dz = uz
                        left = ell_c
                    else:
                        ell = math.sqrt(vx * vx + vy * vy + vz * vz)
                        inv = 1.0 / ell if ell > 0.0 else 0.0
                        dx = vx * inv
                        dy = vy * inv
                        dz = vz * inv
                        left = ell
                    full = left
                    bounces = 0
                    while left > 0.0:
                        if q_home >= 0:
                            tw = _exit_distance(px, py, pz, dx, dy, dz, Rh, wz)
                            qh = q_home
                            cx = 0.0
                            cy = 0.0
                            cz = 0.0
                        else:
                            tw, qh, cx, cy, cz = _nearest_hit(px, py, pz, dx, dy, dz, left, wz, box, img_c, img_r,
                                                              n, h, start, items)
                        seg = tw if tw < left else left
                        px, py, pz, rx, ry, rz = _move(px, py, pz, rx, ry, rz, dx, dy, dz, seg)
                        if q_home >= 0:
                            tin += seg / full * inv_sub
                        if tw >= left:
                            left = 0.0
                            break
                        left -= tw
                        p = p_out[qh] if q_home >= 0 else p_in[qh]
                        if p > 0.0:
                            uu, s0, s1 = _next(s0, s1)
                            if uu < p:
                                # transit: same direction, the rest of the step rescaled to the new diffusivity
                                # (its time is kept: length / full is the fraction of the sub-step left)
                                n_tr += 1
                                if first < 0.0:
                                    first = (t - 1) + (sub + 1.0 - left / full) * inv_sub
                                if q_home >= 0:
                                    px += img_c[q_home, 0]
                                    py += img_c[q_home, 1]
                                    pz += img_c[q_home, 2]
                                    if box[0] > 0.0:
                                        px = _wrap(px, box[0])
                                        py = _wrap(py, box[1])
                                    if box[2] > 0.0:
                                        pz = _wrap(pz, box[2])
                                    q_home = -1
                                    sc = scale[1]
                                    ratio = scale[1] / scale[0]
                                else:
                                    px -= cx
                                    py -= cy
                                    pz -= cz
                                    q_home = qh
                                    Rh = img_r[qh]
                                    sc = scale[0]
                                    ratio = scale[0] / scale[1]
                                left *= ratio
                                full *= ratio
                                ell_c = sc * ell_iso
                                continue
                        dx, dy, dz = _reflect(dx, dy, dz, px - cx, py - cy, wz * (pz - cz))
                        n_refl += 1
                        bounces += 1
                        if bounces >= MAX_BOUNCES:
                            n_cut += 1
                            break
                    if q_home < 0:
                        if box[0] > 0.0:
                            px = _wrap(px, box[0])
                            py = _wrap(py, box[1])
                        if box[2] > 0.0:
                            pz = _wrap(pz, box[2])
                    if check_every_step or (t == n_steps and sub == substeps - 1):
                        if q_home >= 0:
                            if px * px + py * py + wz * pz * pz > (Rh * (1.0 + 1e-9)) ** 2:
                                n_bad += 1
                        elif _inside_any(px, py, pz, wz, box, img_c, img_r, n, h, start, items, 1e-9):
                            n_bad += 1
            a0x, a0y, a0z, a1x, a1y, a1z, a2x, a2y, a2z = _phase_step(
                W, t, K, i, rx, ry, rz, a0x, a0y, a0z, a1x, a1y, a1z, a2x, a2y, a2z, out_I)
            j_rec, j_te = _record_step(i, t, rx, ry, rz, tin, traj, rec_steps, j_rec, out_rec, te_steps, j_te,
                                       out_tin)
        _store_phases(i, K, out_I, a0x, a0y, a0z, a1x, a1y, a1z, a2x, a2y, a2z)
        pos[i, 0] = px
        pos[i, 1] = py
        pos[i, 2] = pz
        home[i] = q_home
        seeds[i, 0] = s0
        seeds[i, 1] = s1
        out_first[i] = first
        counters[i, 0] += n_refl
        counters[i, 1] += n_cut
        counters[i, 2] += n_bad
        counters[i, 3] += n_tr


walk_parallel = njit(parallel=True, cache=True, fastmath=False, error_model="numpy")(_walk)
walk_serial = njit(cache=True, fastmath=False, error_model="numpy")(_walk)
