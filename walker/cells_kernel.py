"""The random-walk kernel for analytic substrates: free space, parallel planes, cylinders and spheres.

One Python function, compiled twice (:func:`walker.walkers.compile_kernel`):
``walk_cells_parallel`` (``prange`` over walkers) and ``walk_cells_serial``;
tests require the two to agree bit for bit. Walker state is held in scalars
and in the walker's own rows of preallocated arrays only: an array allocated
inside a ``prange`` body can be hoisted out of the loop by the parallel
compiler and silently shared between walkers. The kernel takes named records
(:mod:`walker.records`) and unpacks them before the loop: numba drops writes
made through a record's arrays inside a parallel loop.

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

from substrates import CYLINDERS, FREE, PLANES, SPHERES

from .rng import draw_step, next_uniform
from .walkers import (MAX_BOUNCES, begin_walker, compile_kernel, finish_walker, isotropic_step, move, phase_step,
                      record_step, wrap)


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


def walk_cells(geo, transit, walkers, stepping, recording, out):
    """Walk every walker through ``stepping.n_steps`` grid steps of ``stepping.substeps`` sub-steps each.

    Parameters (records of :mod:`walker.records`; every array preallocated by the caller)
    ----------
    geo : CellGeometry          kind, plane spacing, box, primitive images and their cell lists
    transit : Transit           per image (one entry for planes): transit probability from inside / outside
    walkers : Walkers           start state in, final state out; ``home`` is the image a walker is inside
                                (-1: extra or free), positions relative to that image's centre
    stepping : Stepping         steps, sub-steps, step matrix, Gaussian or fixed-length, scale inside / outside
    recording : Recording       phase weights, record and echo grid indices, containment check every step
    out : Outputs               phase integrals, displacements, time inside, first transit, trajectories,
                                counters (reflections, steps cut at MAX_BOUNCES, containment violations, transits)
    """
    kind, spacing, box, img_c, img_r, n, h, start, items = geo
    p_out, p_in = transit
    pos, home, seeds = walkers
    n_steps, substeps, M, gaussian, scale = stepping
    W, rec_steps, te_steps, check_every_step = recording
    out_I, out_rec, out_tin, out_first, traj, counters = out
    N = pos.shape[0]
    K = W.shape[0]
    wz = 1.0 if kind == SPHERES else 0.0
    inv_sub = 1.0 / substeps
    iso, ell_iso = isotropic_step(M, gaussian)
    p_planes = p_out[0] if kind == PLANES else 0.0
    for i in prange(N):
        px, py, pz, s0, s1, j_rec, j_te = begin_walker(i, pos, seeds, traj, rec_steps, out_rec, te_steps, out_tin)
        rx = 0.0
        ry = 0.0
        rz = 0.0
        q_home = home[i]
        if q_home >= 0:
            Rh = img_r[q_home]
        else:
            Rh = 0.0
        # step scale of the walker's compartment: changes only at transits
        sc = scale[0] if q_home >= 0 or kind == PLANES else scale[1]
        ell_c = sc * ell_iso
        tin = 0.0
        first = -1.0
        n_refl = 0
        n_cut = 0
        n_bad = 0
        n_tr = 0
        acc = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        for t in range(1, n_steps + 1):
            for sub in range(substeps):
                ux, uy, uz, s0, s1 = draw_step(gaussian, s0, s1)
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
                            uu, s0, s1 = next_uniform(s0, s1)
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
                        px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, seg)
                        if q_home >= 0:
                            tin += seg / full * inv_sub
                        if tw >= left:
                            left = 0.0
                            break
                        left -= tw
                        p = p_out[qh] if q_home >= 0 else p_in[qh]
                        if p > 0.0:
                            uu, s0, s1 = next_uniform(s0, s1)
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
                                        px = wrap(px, box[0])
                                        py = wrap(py, box[1])
                                    if box[2] > 0.0:
                                        pz = wrap(pz, box[2])
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
                            px = wrap(px, box[0])
                            py = wrap(py, box[1])
                        if box[2] > 0.0:
                            pz = wrap(pz, box[2])
                    if check_every_step or (t == n_steps and sub == substeps - 1):
                        if q_home >= 0:
                            if px * px + py * py + wz * pz * pz > (Rh * (1.0 + 1e-9)) ** 2:
                                n_bad += 1
                        elif _inside_any(px, py, pz, wz, box, img_c, img_r, n, h, start, items, 1e-9):
                            n_bad += 1
            acc = phase_step(W, t, K, i, rx, ry, rz, acc, out_I)
            j_rec, j_te = record_step(i, t, rx, ry, rz, tin, traj, rec_steps, j_rec, out_rec, te_steps, j_te,
                                      out_tin)
        finish_walker(i, K, acc, px, py, pz, q_home, s0, s1, first, n_refl, n_cut, n_bad, n_tr, pos, home, seeds,
                      out_I, out_first, counters)


walk_cells_parallel, walk_cells_serial = compile_kernel(walk_cells)
