"""The random-walk kernel for analytic substrates: free space, parallel planes, cylinders and spheres.

One Python function per kind of substrate, with or without membranes:
:func:`cells_kernel` makes the variant a run needs, with the kind and the
membranes as compile-time constants (an impermeable substrate pays nothing
for transits, sub-step bookkeeping or time-inside tracking; a free walk
carries no geometry at all), and compiles it twice
(:func:`walker.walkers.compile_kernel`): parallel (``prange`` over walkers)
and serial. Tests require the two builds to agree bit for bit. Walker state
is held in scalars and in the walker's own rows of preallocated arrays only:
an array allocated inside a ``prange`` body can be hoisted out of the loop by
the parallel compiler and silently shared between walkers. The kernel takes
named records (:mod:`walker.records`) and unpacks them before the loop: numba
drops writes made through a record's arrays inside a parallel loop.

Geometry is in the substrate's local frame (cylinders along z). Collisions are
exact: the first intersection of the step segment with a wall, specular
reflection, and continuation of the remaining length. The roots are written so
that a walker sitting on a wall can never step through it: from inside, the
exit distance is computed with the clamped squared distance to the wall, so a
walker on the wall moving outward gets distance 0 and is reflected; from
outside, an entry is registered only when moving towards the centre.

Where the time goes: a walker inside a primitive tests only its own wall,
and not even that when the whole step stays farther from it than the step is
long (one comparison of squared distances). A walker outside looks up its
cell of the substrate's :class:`substrates.WalkGrid`, sized for the step:
when the cell's clearance exceeds the step, nothing can be hit; otherwise
only the cell's own candidate list is searched, since it holds every wall
within one step of the cell. Segments longer than the grid's reach (Gaussian
steps) are walked in pieces.

Permeable walls: at each hit the walker draws one uniform number and crosses
with the image's transit probability (p_out from inside, p_in from outside,
computed by the caller from kappa, the step length and D), keeping its
direction; the rest of the step is rescaled by sqrt(D_new / D_old) so that
its duration is kept.

Surface relaxivity: every hit, from either side and whether the walker then
crosses or reflects, adds the wall's log survival factor (``keep_out`` /
``keep_in``, 0 for walls that do not relax) to the walker's log weight, which
is recorded at the echo grid points. A run without relaxivity adds zeros:
one add per hit, no branch, no extra variant to compile.

Units: metres and seconds, float64 throughout; no fastmath.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from substrates import FREE, PLANES, SPHERES

from .rng import draw_step, next_uniform
from .walkers import (MAX_BOUNCES, begin_walker, compile_kernel, finish_walker, isotropic_step, move, phase_step,
                      record_events, wrap)


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
def _cell_of(px, py, pz, lo, inv_h, n, dim):
    """Flat index of the walk-grid cell holding p (wrapped on periodic axes), -1 outside a non-periodic grid."""
    x = (px - lo[0]) * inv_h[0]
    y = (py - lo[1]) * inv_h[1]
    z = (pz - lo[2]) * inv_h[2] if dim == 3 else 0.0
    if x < 0.0 or y < 0.0 or z < 0.0:
        return -1
    i = int(x)
    j = int(y)
    k = int(z)
    if i >= n[0] or j >= n[1] or k >= n[2]:
        # a wrapped coordinate can round onto the far edge of the box (x == n); beyond that: outside the grid
        if x > n[0] + 1e-9 or y > n[1] + 1e-9 or z > n[2] + 1e-9:
            return -1
        i = min(i, n[0] - 1)
        j = min(j, n[1] - 1)
        k = min(k, n[2] - 1)
    return (i * n[1] + j) * n[2] + k


@njit(inline="always")
def _nearest_in_cell(px, py, pz, dx, dy, dz, reach, wz, cell, start, items, img_c, img_r):
    """Closest wall entry within ``reach`` among the cell's candidates: (distance, image, centre).

    An entry needs the walker moving towards the centre (b < 0) and a real root; both are decided by selects
    rather than branches, since they go either way at random and a mispredicted branch costs more than the
    arithmetic (measured: 11 % faster outside hexagonal cylinders).
    """
    best = np.inf
    bq = -1
    a = dx * dx + dy * dy + wz * dz * dz
    for it in range(start[cell], start[cell + 1]):
        q = items[it]
        ox = px - img_c[q, 0]
        oy = py - img_c[q, 1]
        oz = wz * (pz - img_c[q, 2])
        b = ox * dx + oy * dy + oz * dz
        c = max(ox * ox + oy * oy + oz * oz - img_r[q] * img_r[q], 0.0)  # on the wall up to rounding: hit now
        disc = b * b - a * c
        t = c / (math.sqrt(max(disc, 0.0)) - b)
        hit = (b < 0.0) & (disc >= 0.0) & (t < best) & (t < reach)
        best = t if hit else best
        bq = q if hit else bq
    if bq < 0:
        return np.inf, -1, 0.0, 0.0, 0.0
    return best, bq, img_c[bq, 0], img_c[bq, 1], img_c[bq, 2]


@njit(inline="always")
def _inside_any(px, py, pz, wz, lo, inv_h, n, dim, start, items, clear, img_c, img_r, shrink):
    """True when p (outside walker, wrapped) lies strictly inside some wall (by the relative margin ``shrink``)."""
    cell = _cell_of(px, py, pz, lo, inv_h, n, dim)
    if cell < 0:
        return False
    if clear[cell] < 0.0:
        return True  # the whole cell lies inside a primitive
    for it in range(start[cell], start[cell + 1]):
        q = items[it]
        ex = px - img_c[q, 0]
        ey = py - img_c[q, 1]
        ez = wz * (pz - img_c[q, 2])
        if ex * ex + ey * ey + ez * ez < (img_r[q] * (1.0 - shrink)) ** 2:
            return True
    return False


def walker_function(kind: int, permeable: bool):
    """The walk of one walker through an analytic substrate, as a plain Python function.

    Both backends compile this one function: the CPU kernel inlines it into
    its ``prange`` loop over walkers (:func:`cells_kernel`), the CUDA kernel
    runs it once per thread (:mod:`walker.cuda_backend`), so the physics has a
    single source. ``kind`` and ``permeable`` become compile-time constants.

    Parameters
    ----------
    kind : int
        FREE, PLANES, CYLINDERS or SPHERES.
    permeable : bool
        Whether any membrane lets walkers through (free space has none).

    Returns
    -------
    function
        ``walk_walker(i, geo, transit, stepping, recording, pos, home, seeds, *out)``: walks walker i through
        ``n_steps`` grid steps of ``substeps`` sub-steps each. The records it only reads come whole; the
        arrays it writes come one by one (the walkers' and the outputs' fields), since numba drops writes
        through a record's arrays inside a parallel loop.
    """
    KIND = int(kind)
    PERMEABLE = bool(permeable) and KIND != FREE
    WZ = 1.0 if KIND == SPHERES else 0.0  # spheres: distances in 3-D; cylinders: across the axis
    DIM = 3 if KIND == SPHERES else 2

    def walk_walker(i, geo, transit, stepping, recording, pos, home, seeds, out_I, out_rec, out_tin, out_lw,
                    out_first, traj, counters):
        _, spacing, box, lo, inv_h, n, img_c, img_r, start, items, clear, g_reach = geo
        p_out, p_in, keep_out, keep_in = transit
        n_steps, substeps, M, gaussian, scale = stepping
        W, rec_steps, te_steps, check_every_step, _ = recording
        K = W.shape[0]
        inv_sub = 1.0 / substeps
        n_sub = n_steps * substeps
        iso, ell_iso = isotropic_step(M, gaussian)
        p_planes = p_out[0] if KIND == PLANES else 0.0
        keep_planes = keep_out[0] if KIND == PLANES else 0.0
        px, py, pz, s0, s1 = begin_walker(i, pos, seeds)
        rx = 0.0
        ry = 0.0
        rz = 0.0
        q_home = home[i]
        Rh = img_r[q_home] if q_home >= 0 else 0.0
        # step scale of the walker's compartment: changes only at transits
        sc = scale[0] if q_home >= 0 or KIND == PLANES else scale[1]
        ell_c = sc * ell_iso
        tin = 0.0
        lw = 0.0  # log of the surface-relaxation weight
        first = -1.0
        n_refl = 0
        n_cut = 0
        n_bad = 0
        n_tr = 0
        acc = (0.0, 0.0, 0.0)
        j_rec, j_te, next_t = record_events(i, 0, 0.0, 0.0, 0.0, 0.0, 0.0, traj, rec_steps, 0, out_rec, te_steps,
                                            0, out_tin, out_lw)
        t = 1
        sub = 0
        for _ in range(n_sub):
            ux, uy, uz, s0, s1 = draw_step(gaussian, s0, s1)
            if iso:
                vx = ell_c * ux
                vy = ell_c * uy
                vz = ell_c * uz
            else:
                vx = sc * (M[0, 0] * ux + M[0, 1] * uy + M[0, 2] * uz)
                vy = sc * (M[1, 0] * ux + M[1, 1] * uy + M[1, 2] * uz)
                vz = sc * (M[2, 0] * ux + M[2, 1] * uy + M[2, 2] * uz)
            if KIND == FREE:
                rx += vx
                ry += vy
                rz += vz
            elif KIND == PLANES:
                # folding into [0, L] is exact specular reflection between parallel planes; a transit moves
                # the walker into the neighbouring slab (same local coordinate), so hits stay L apart along
                # the unfolded path and the k-th falls at (d1 + k L) / |vz| of the step
                z = pz + vz
                disp = vz
                k_hit = 0
                while z < 0.0 or z > spacing:
                    lw += keep_planes
                    crossed = False
                    if PERMEABLE:
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
                # the common cases first: the step ends inside the walker's own (convex) primitive, or it
                # starts in a cell farther from every wall than the step is long
                if q_home >= 0:
                    ex = px + left * dx
                    ey = py + left * dy
                    ez = pz + left * dz
                    if ex * ex + ey * ey + WZ * ez * ez <= Rh * Rh:
                        px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, left)
                        if PERMEABLE:
                            tin += inv_sub
                        left = 0.0
                elif left <= g_reach:
                    cell = _cell_of(px, py, pz, lo, inv_h, n, DIM)
                    if cell >= 0 and clear[cell] > left:
                        px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, left)
                        left = 0.0
                while left > 0.0:
                    qh = -1
                    cx = 0.0
                    cy = 0.0
                    cz = 0.0
                    if q_home >= 0:
                        # inside a primitive: only its own wall, and only when the segment ends beyond it
                        # (a disk or ball is convex: a segment whose two ends are inside stays inside)
                        reach = left
                        ex = px + left * dx
                        ey = py + left * dy
                        ez = pz + left * dz
                        if ex * ex + ey * ey + WZ * ez * ez <= Rh * Rh:
                            tw = np.inf
                        else:
                            tw = _exit_distance(px, py, pz, dx, dy, dz, Rh, WZ)
                            qh = q_home
                    else:
                        if box[0] > 0.0:
                            px = wrap(px, box[0])
                            py = wrap(py, box[1])
                        if WZ > 0.0 and box[2] > 0.0:
                            pz = wrap(pz, box[2])
                        reach = left if left < g_reach else g_reach
                        cell = _cell_of(px, py, pz, lo, inv_h, n, DIM)
                        tw = np.inf
                        if cell >= 0 and clear[cell] <= reach:
                            tw, qh, cx, cy, cz = _nearest_in_cell(px, py, pz, dx, dy, dz, reach, WZ, cell, start,
                                                                  items, img_c, img_r)
                    if tw >= reach:
                        px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, reach)
                        if PERMEABLE and q_home >= 0:
                            tin += reach / full * inv_sub
                        left -= reach
                        continue
                    px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, tw)
                    if PERMEABLE and q_home >= 0:
                        tin += tw / full * inv_sub
                    left -= tw
                    lw += keep_out[qh] if q_home >= 0 else keep_in[qh]
                    if PERMEABLE:
                        p = p_out[qh] if q_home >= 0 else p_in[qh]
                        if p > 0.0:
                            uu, s0, s1 = next_uniform(s0, s1)
                            if uu < p:
                                # transit: same direction, the rest of the step rescaled to the new
                                # diffusivity (its time is kept: length / full is the fraction left)
                                n_tr += 1
                                if first < 0.0:
                                    first = (t - 1) + (sub + 1.0 - left / full) * inv_sub
                                if q_home >= 0:
                                    px += img_c[q_home, 0]
                                    py += img_c[q_home, 1]
                                    pz += img_c[q_home, 2]
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
                    dx, dy, dz = _reflect(dx, dy, dz, px - cx, py - cy, WZ * (pz - cz))
                    n_refl += 1
                    bounces += 1
                    if bounces >= MAX_BOUNCES:
                        n_cut += 1
                        break
                if q_home < 0:
                    if box[0] > 0.0:
                        px = wrap(px, box[0])
                        py = wrap(py, box[1])
                    if WZ > 0.0 and box[2] > 0.0:
                        pz = wrap(pz, box[2])
                if check_every_step or (t == n_steps and sub == substeps - 1):
                    if q_home >= 0:
                        if px * px + py * py + WZ * pz * pz > (Rh * (1.0 + 1e-9)) ** 2:
                            n_bad += 1
                    elif _inside_any(px, py, pz, WZ, lo, inv_h, n, DIM, start, items, clear, img_c, img_r, 1e-9):
                        n_bad += 1
            sub += 1
            if sub == substeps:
                sub = 0
                acc = phase_step(W, t, K, i, rx, ry, rz, acc, out_I)
                if t == next_t:
                    if not PERMEABLE:  # nothing changes compartment: inside the whole time or never
                        tin = float(t) if KIND == PLANES or (KIND != FREE and q_home >= 0) else 0.0
                    j_rec, j_te, next_t = record_events(i, t, rx, ry, rz, tin, lw, traj, rec_steps, j_rec,
                                                        out_rec, te_steps, j_te, out_tin, out_lw)
                t += 1
        finish_walker(i, K, acc, px, py, pz, q_home, s0, s1, first, n_refl, n_cut, n_bad, n_tr, pos, home,
                      seeds, out_I, out_first, counters)

    return walk_walker


def _walk_all(geo, transit, walkers, stepping, recording, out):
    """Walk every walker (records of :mod:`walker.records`; every array preallocated by the caller).

    geo : CellGeometry          plane spacing, box, primitive images and the walk grid
    transit : Transit           per image (one entry for planes): transit probability from inside / outside
    walkers : Walkers           start state in, final state out; ``home`` is the image a walker is inside
                                (-1: outside or free), positions relative to that image's centre
    stepping : Stepping         steps, sub-steps, step matrix, Gaussian or fixed-length, scale in / out
    recording : Recording       phase weights, record and echo grid indices, containment check every step
    out : Outputs               phase integrals, displacements, time inside, first transit, trajectories,
                                counters (reflections, steps cut at MAX_BOUNCES, containment violations,
                                transits)

    ``WALK_WALKER`` is bound per variant by :func:`cells_kernel` (see :func:`walker.walkers.compile_kernel`).
    """
    pos, home, seeds = walkers
    out_I, out_rec, out_tin, out_lw, out_first, traj, counters = out
    for i in prange(pos.shape[0]):
        WALK_WALKER(i, geo, transit, stepping, recording, pos, home, seeds, out_I, out_rec, out_tin,  # noqa: F821
                    out_lw, out_first, traj, counters)


_BUILDS: dict = {}


def cells_kernel(kind: int, permeable: bool, parallel: bool = True):
    """The compiled walk for a kind of analytic substrate, with or without membranes (built on first use).

    Parameters
    ----------
    kind : int
        FREE, PLANES, CYLINDERS or SPHERES.
    permeable : bool
        Whether any membrane lets walkers through (free space has none).
    parallel : bool
        The ``prange`` build, or the serial build of the same function.

    Returns
    -------
    numba dispatcher
        Called as ``kernel(geo, transit, walkers, stepping, recording, out)``.
    """
    key = (int(kind), bool(permeable) and kind != FREE)
    if key not in _BUILDS:
        name = f"walk_{('free', 'planes', 'cylinders', 'spheres')[key[0]]}{'_permeable' if key[1] else ''}"
        body = njit(inline="always")(walker_function(*key))
        _BUILDS[key] = compile_kernel(_walk_all, name=name, bound={"WALK_WALKER": body})
    return _BUILDS[key][0 if parallel else 1]
