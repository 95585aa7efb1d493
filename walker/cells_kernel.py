"""The random-walk kernel for analytic substrates: free space, parallel planes, cylinders and spheres.

The "analytic" family (:mod:`walker.families`): one per-walker function per
kind of substrate, with or without membranes, with the kind and the membranes
as compile-time constants (an impermeable substrate pays nothing for
transits, sub-step bookkeeping or time-inside tracking; a free walk carries
no geometry at all); :mod:`walker.scaffold` compiles it into the loop over
walkers, parallel and serial, and tests require the two builds to agree bit
for bit. Walker state is held in scalars and in the walker's own rows of
preallocated arrays only: an array allocated inside a ``prange`` body can be
hoisted out of the loop by the parallel compiler and silently shared between
walkers.

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
from numba import njit

from substrates import CYLINDERS, FAMILIES, FREE, PLANES, SPHERES

from .families import KernelFamily, Membranes, register_kernel_family
from .geometry import cell_index, exit_root
from .kernel_parts import (MAX_BOUNCES, begin_walker, field_finish, field_point, field_start, finish_walker,
                           isotropic_step, move, phase_step, record_events, step_segment, wrap)
from .records import CellGeometry
from .rng import draw_step, next_uniform
from .scaffold import build_kernel

#: kind code -> name of the analytic kinds
KIND_NAMES = FAMILIES["analytic"].kinds


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
    return exit_root(a, b, h)


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
    return cell_index(i, j, k, n)


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


def walker_function(kind: int, permeable: bool, field: bool = False):
    """The walk of one walker through an analytic substrate, as a plain Python function.

    Both backends compile this one function: the CPU kernel inlines it into
    the loop over walkers (:func:`walker.scaffold.build_kernel`), the CUDA kernel
    runs it once per thread (:mod:`walker.cuda_backend`), so the physics has a
    single source. ``kind`` and ``permeable`` become compile-time constants.

    Parameters
    ----------
    kind : int
        FREE, PLANES, CYLINDERS or SPHERES.
    permeable : bool
        Whether any membrane lets walkers through (free space has none).
    field : bool
        Whether the run has a static field offset (the field's integrals are compiled in only then).

    Returns
    -------
    function
        ``walk_walker(i, geo, transit, stepping, recording, pos, homes, seeds, *out)``: walks walker i through
        ``n_steps`` grid steps of ``substeps`` sub-steps each. The records it only reads come whole; the
        arrays it writes come one by one (the walkers' and the outputs' fields), since numba drops writes
        through a record's arrays inside a parallel loop.
    """
    KIND = int(kind)
    PERMEABLE = bool(permeable) and KIND != FREE
    WZ = 1.0 if KIND == SPHERES else 0.0  # spheres: distances in 3-D; cylinders: across the axis
    DIM = 3 if KIND == SPHERES else 2
    FIELD = bool(field)

    def walk_walker(i, geo, transit, stepping, recording, pos, homes, seeds, out_phases, out_rec, out_time_inside,
                    out_log_weight, out_first, traj, counters, out_field):
        _, spacing, box, lo, inv_h, n, img_c, img_r, start, items, clear, g_reach = geo
        p_out, p_in, keep_out, keep_in = transit
        n_steps, substeps, M, gaussian, scale = stepping
        W, rec_steps, te_steps, check_every_step, _, FV, f_map, f_src, f_par = recording
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
        home = homes[i]  # the primitive image the walker is inside (-1: outside every primitive, or free)
        Rh = img_r[home] if home >= 0 else 0.0
        # step scale of the walker's compartment: changes only at transits
        sc = scale[0] if home >= 0 or KIND == PLANES else scale[1]
        ell_c = sc * ell_iso
        time_inside = 0.0  # in grid steps (only tracked here with membranes: else inside all the time or never)
        log_weight = 0.0  # log of the surface-relaxation weight
        first = -1.0
        n_refl = 0
        n_cut = 0
        n_bad = 0
        n_tr = 0
        acc = (0.0, 0.0, 0.0)
        facc = (0.0, 0.0)  # field integrals of the first two refocusing patterns
        ox, oy, oz = field_start(i, out_field, FIELD)
        j_rec, j_te, next_t = record_events(i, 0, 0.0, 0.0, 0.0, 0.0, 0.0, traj, rec_steps, 0, out_rec, te_steps,
                                            0, out_time_inside, out_log_weight)
        t = 1
        sub = 0
        for _ in range(n_sub):
            ux, uy, uz, s0, s1 = draw_step(gaussian, s0, s1)
            if KIND == FREE or KIND == PLANES:  # the step as a vector (walls are segments' business below)
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
                    log_weight += keep_planes
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
                dx, dy, dz, left = step_segment(iso, ell_c, sc, M, ux, uy, uz)
                full = left
                bounces = 0
                # the common cases first: the step ends inside the walker's own (convex) primitive, or it
                # starts in a cell farther from every wall than the step is long
                if home >= 0:
                    ex = px + left * dx
                    ey = py + left * dy
                    ez = pz + left * dz
                    if ex * ex + ey * ey + WZ * ez * ez <= Rh * Rh:
                        px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, left)
                        if PERMEABLE:
                            time_inside += inv_sub
                        left = 0.0
                elif left <= g_reach:
                    cell = _cell_of(px, py, pz, lo, inv_h, n, DIM)
                    if cell >= 0 and clear[cell] > left:
                        px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, left)
                        left = 0.0
                while left > 0.0:
                    hit = -1
                    cx = 0.0
                    cy = 0.0
                    cz = 0.0
                    if home >= 0:
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
                            hit = home
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
                            tw, hit, cx, cy, cz = _nearest_in_cell(px, py, pz, dx, dy, dz, reach, WZ, cell, start,
                                                                  items, img_c, img_r)
                    if tw >= reach:
                        px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, reach)
                        if PERMEABLE and home >= 0:
                            time_inside += reach / full * inv_sub
                        left -= reach
                        continue
                    px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, tw)
                    if PERMEABLE and home >= 0:
                        time_inside += tw / full * inv_sub
                    left -= tw
                    log_weight += keep_out[hit] if home >= 0 else keep_in[hit]
                    if PERMEABLE:
                        p = p_out[hit] if home >= 0 else p_in[hit]
                        if p > 0.0:
                            uu, s0, s1 = next_uniform(s0, s1)
                            if uu < p:
                                # transit: same direction, the rest of the step rescaled to the new
                                # diffusivity (its time is kept: length / full is the fraction left)
                                n_tr += 1
                                if first < 0.0:
                                    first = (t - 1) + (sub + 1.0 - left / full) * inv_sub
                                if home >= 0:
                                    px += img_c[home, 0]
                                    py += img_c[home, 1]
                                    pz += img_c[home, 2]
                                    home = -1
                                    sc = scale[1]
                                    ratio = scale[1] / scale[0]
                                else:
                                    px -= cx
                                    py -= cy
                                    pz -= cz
                                    home = hit
                                    Rh = img_r[hit]
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
                if home < 0:
                    if box[0] > 0.0:
                        px = wrap(px, box[0])
                        py = wrap(py, box[1])
                    if WZ > 0.0 and box[2] > 0.0:
                        pz = wrap(pz, box[2])
                if check_every_step or (t == n_steps and sub == substeps - 1):
                    if home >= 0:
                        if px * px + py * py + WZ * pz * pz > (Rh * (1.0 + 1e-9)) ** 2:
                            n_bad += 1
                    elif _inside_any(px, py, pz, WZ, lo, inv_h, n, DIM, start, items, clear, img_c, img_r, 1e-9):
                        n_bad += 1
            sub += 1
            if sub == substeps:
                sub = 0
                acc = phase_step(W, t, K, i, rx, ry, rz, acc, out_phases)
                if FIELD:
                    facc = field_point(FV, t, i, ox + rx, oy + ry, oz + rz, facc, out_field, f_map, f_src, f_par)
                if t == next_t:
                    if not PERMEABLE:  # nothing changes compartment: inside the whole time or never
                        time_inside = float(t) if KIND == PLANES or (KIND != FREE and home >= 0) else 0.0
                    j_rec, j_te, next_t = record_events(i, t, rx, ry, rz, time_inside, log_weight, traj, rec_steps, j_rec,
                                                        out_rec, te_steps, j_te, out_time_inside, out_log_weight)
                t += 1
        finish_walker(i, K, acc, px, py, pz, home, s0, s1, first, n_refl, n_cut, n_bad, n_tr, pos, homes,
                      seeds, out_phases, out_first, counters)
        if FIELD:
            field_finish(i, facc, out_field)

    return walk_walker


def cells_kernel(kind: int, permeable: bool, parallel: bool = True):
    """The compiled walk for a kind of analytic substrate, with or without membranes (built on first use).

    Parameters
    ----------
    kind : int
        FREE, PLANES, CYLINDERS or SPHERES.
    permeable : bool
        Whether any membrane lets walkers through (free space has none).
    parallel : bool
        The ``prange`` build, or the serial build.

    Returns
    -------
    numba dispatcher
        See :func:`walker.scaffold.build_kernel`.
    """
    return build_kernel(ANALYTIC, _variant_of(kind, permeable), parallel)


# --- the family record -----------------------------------------------------------------------------------------

def _variant_of(kind: int, permeable: bool) -> tuple:
    return int(kind), bool(permeable) and int(kind) != FREE


def _variant_name(kind: int, permeable: bool) -> str:
    return f"walk_{KIND_NAMES[kind]}{'_permeable' if permeable else ''}"


def _describe(substrate) -> str:
    if substrate.kind == FREE:
        return substrate.name
    return f"{substrate.name}, {'permeable' if substrate.permeable else 'impermeable'}"


def cell_geometry(substrate, plan) -> CellGeometry:
    """The analytic kernel's geometry record: primitive images and the walk grid sized for the step.

    Parameters
    ----------
    substrate : substrates.Substrate
        An analytic substrate (free, planes, cylinders, spheres).
    plan : walker.RunPlan
        Gives the step length (m) the walk grid is built for.

    Returns
    -------
    CellGeometry
        Lengths in m, in the substrate's local frame.
    """
    spacing = float(substrate.spacing) if substrate.kind == PLANES else 0.0
    if substrate.kind in (CYLINDERS, SPHERES):
        g = substrate.walk_grid(plan.step_length)
        return CellGeometry(substrate.kind, spacing, g.box, g.lo, g.inv_h, g.n, g.centers, g.radii, g.start,
                            g.items, g.clear, g.reach)
    one = np.ones(3)
    return CellGeometry(substrate.kind, spacing, np.zeros(3), np.zeros(3), one, np.ones(3, dtype=np.int64),
                        np.zeros((1, 3)), np.zeros(1), np.zeros(2, dtype=np.int64), np.zeros(1, dtype=np.int64),
                        np.full(1, np.inf), 1.0)


def _membranes(substrate, plan) -> Membranes:
    """A membrane per primitive image (cylinders, spheres: inside region 0, outside the last), one for the whole
    plane stack, none that matters for free space."""
    extra = len(plan.regions) - 1
    kappa, rho = substrate.permeability, substrate.relaxivity
    if substrate.kind in (CYLINDERS, SPHERES):
        owner = substrate.walk_grid(plan.step_length).owner
        n = len(owner)
        return Membranes(n, kappa[owner] if len(kappa) else kappa, rho[owner] if len(rho) else rho,
                         np.zeros(n, dtype=np.int64), np.full(n, extra))
    zero = np.zeros(1, dtype=np.int64)
    return Membranes(1, kappa[:1], rho[:1], zero, zero)


def _step_scales(substrate, plan) -> np.ndarray:
    """Inside a primitive (the reference region), outside: sqrt(D_out / D_in)."""
    D = plan.region_diffusivities
    return np.array([1.0, math.sqrt(D[-1] / D[0])])


def _box_positions(geo, positions, homes) -> np.ndarray:
    """Walkers inside a primitive carry positions relative to its image: add the image's centre back."""
    out = np.array(positions, copy=True)
    inside = homes >= 0
    out[inside] += geo.centers[homes[inside]]
    return out


ANALYTIC = register_kernel_family(KernelFamily(
    name="analytic", walker_function=walker_function, variant=lambda sub: _variant_of(sub.kind, sub.permeable),
    variant_name=_variant_name, describe=_describe, geometry=cell_geometry, membranes=_membranes,
    step_scales=_step_scales, source_file=__file__, box_positions=_box_positions,
    supports=frozenset({"membranes", "relaxivity"})))
