"""The random-walk kernel for triangle meshes.

Each step segment walks the uniform grid cell by cell (3-D DDA, Amanatides &
Woo 1987) from the walker's cell, testing the triangles listed there, until
the nearest hit lies before the next cell boundary or the segment ends. On a
periodic axis the traversal wraps and shifts the ray origin by the box.

Why no walker leaves a closed mesh (float64, no safety net):

* triangles are enlarged by ``ENLARGE`` in barycentric units, so the two faces
  at a shared edge or vertex overlap by ~1e-16 m instead of leaving a rounding
  crack a segment could slip through;
* a hit stops the walker ``eta`` (perpendicular) *before* the plane, on the
  side it came from: ``eta`` (~1e-10 of a step) is far above the rounding of
  a position, so after a reflection the walker is strictly on its side;
* a walker that is nevertheless behind a plane by less than ``eta / 4``
  (rounding at a concave corner) and moving further away from it is treated as
  hitting it at distance 0 and reflected back;
* the face just hit is skipped for the next segment only (a straight segment
  cannot cross a plane twice).

Transits through permeable faces keep the direction and carry the walker at
least ``eta`` past the plane; the region changes to the component's parent
(leaving) or the component (entering) and the rest of the step is rescaled by
sqrt(D_new / D_old), as in the analytic kernel. Every hit also adds the
component's log surface-relaxation survival factor to the walker's log weight
(zero where the wall does not relax), as in the analytic kernel.

Like the analytic kernel, one per-walker Python function compiled into the
loop over walkers as a parallel and a serial build (:mod:`walker.scaffold`)
that must agree bit for bit, taking named records (:mod:`walker.records`); the
"mesh" family's record (:mod:`walker.families`) is at the end.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

import substrates.meshgrid
from substrates.meshgrid import ENLARGE, locate_one

from .families import KernelFamily, Membranes, register_kernel_family
from .geometry import cell_index
from .kernel_parts import (MAX_BOUNCES, begin_walker, field_finish, field_point, field_start, finish_walker,
                           isotropic_step, move, phase_step, record_events, step_segment, wrap)
from .records import MeshGeometry
from .rng import draw_step, next_uniform
from .scaffold import build_kernel


@njit(inline="always")
def _tri_hit(tri, q, ox, oy, oz, dx, dy, dz, tau, best):
    """Distance along d from o to triangle q (0 if just behind it within tau and moving away); inf if missed."""
    nx = tri[q, 3]
    ny = tri[q, 4]
    nz = tri[q, 5]
    dn = nx * dx + ny * dy + nz * dz
    if dn == 0.0:
        return np.inf
    s = nx * ox + ny * oy + nz * oz - tri[q, 12]
    if s * dn > 0.0:  # plane behind the walker
        if abs(s) > tau:
            return np.inf
        t = 0.0
    else:
        t = -s / dn
    if t >= best:
        return np.inf
    wx = ox + t * dx - tri[q, 0]
    wy = oy + t * dy - tri[q, 1]
    wz = oz + t * dz - tri[q, 2]
    u = wx * tri[q, 6] + wy * tri[q, 7] + wz * tri[q, 8]
    if u < -ENLARGE:
        return np.inf
    v = wx * tri[q, 9] + wy * tri[q, 10] + wz * tri[q, 11]
    if v < -ENLARGE or u + v > 1.0 + ENLARGE:
        return np.inf
    return t


@njit(inline="always")
def _axis(p, d, lo, h, n, L):
    """DDA set-up on one axis: cell, origin shift, step, first boundary distance, boundary spacing."""
    i = int(math.floor((p - lo) / h))
    shift = 0.0
    if L > 0.0:
        k = i // n
        i -= k * n
        shift = k * L
    else:
        i = min(max(i, 0), n - 1)
    if d > 0.0:
        return i, shift, 1, (lo + (i + 1) * h + shift - p) / d, h / d
    if d < 0.0:
        return i, shift, -1, (lo + i * h + shift - p) / d, -h / d
    return i, shift, 0, np.inf, np.inf


@njit(inline="always")
def _step_axis(i, tmax, shift, step, tdelta, n, L):
    """Move the DDA one cell along an axis; wrap (shifting the ray origin by the box) or report leaving the grid."""
    i += step
    tmax += tdelta
    out = False
    if i < 0 or i >= n:
        if L > 0.0:
            i -= step * n
            shift += step * L
        else:
            out = True
    return i, tmax, shift, out


@njit(inline="always")
def _nearest(px, py, pz, dx, dy, dz, reach, skip, tri, tface, lo, h, n, box, start, items, tau):
    """Nearest triangle image hit within ``reach`` along the grid cells the segment crosses."""
    ix, sx, stx, tmx, tdx = _axis(px, dx, lo[0], h[0], n[0], box[0])
    iy, sy, sty, tmy, tdy = _axis(py, dy, lo[1], h[1], n[1], box[1])
    iz, sz, stz, tmz, tdz = _axis(pz, dz, lo[2], h[2], n[2], box[2])
    best = np.inf
    bq = -1
    while True:
        cell = cell_index(ix, iy, iz, n)
        ox = px - sx
        oy = py - sy
        oz = pz - sz
        for it in range(start[cell], start[cell + 1]):
            q = items[it]
            if tface[q] == skip:
                continue
            t = _tri_hit(tri, q, ox, oy, oz, dx, dy, dz, tau, best)
            if t < best:
                best = t
                bq = q
        if tmx <= tmy and tmx <= tmz:
            texit = tmx
            ax = 0
        elif tmy <= tmz:
            texit = tmy
            ax = 1
        else:
            texit = tmz
            ax = 2
        if best <= texit or texit >= reach:
            break
        if ax == 0:
            ix, tmx, sx, out = _step_axis(ix, tmx, sx, stx, tdx, n[0], box[0])
        elif ax == 1:
            iy, tmy, sy, out = _step_axis(iy, tmy, sy, sty, tdy, n[1], box[1])
        else:
            iz, tmz, sz, out = _step_axis(iz, tmz, sz, stz, tdz, n[2], box[2])
        if out:
            break
    return best, bq


def walker_function(permeable: bool, field: bool = False):
    """The walk of one walker through a mesh, as a plain Python function compiled by both backends.

    As :func:`walker.cells_kernel.walker_function`: the CPU kernel inlines it
    into the loop over walkers (:func:`mesh_kernel`), the CUDA kernel runs it once
    per thread (:mod:`walker.cuda_backend`); ``permeable`` is a compile-time
    constant.

    Parameters
    ----------
    permeable : bool
        Whether any component lets walkers through.
    field : bool
        Whether the run has a static field offset (the field's integrals are compiled in only then).

    Returns
    -------
    function
        ``walk_walker(i, geo, transit, stepping, recording, pos, homes, seeds, *out)``, the records as for the
        analytic walk: ``geo`` is a :class:`walker.records.MeshGeometry` (triangle images, grid, cell lists,
        clearance, location columns, nesting, eta), ``transit`` per component, ``pos`` absolute positions
        (wrapped into the box on periodic axes) and ``home`` the innermost component (-1: extra), in and out;
        ``stepping.scale`` is per region (depth d -> d, extra last).
    """
    PERMEABLE = bool(permeable)
    FIELD = bool(field)

    def walk_walker(i, geo, transit, stepping, recording, pos, homes, seeds, out_phases, out_rec, out_time_inside,
                    out_log_weight, out_first, traj, counters, out_field):
        tri, tcomp, tface, lo, h, n, box, start, items, clear, cstart, citems, depth, parent, n_regions, eta = geo
        p_out, p_in, keep_out, keep_in = transit
        n_steps, substeps, M, gaussian, scale = stepping
        W, rec_steps, te_steps, check_every_step, rweight, FV, f_map, f_src, f_par = recording
        K = W.shape[0]
        inv_sub = 1.0 / substeps
        iso, ell_iso = isotropic_step(M, gaussian)
        tau = 0.25 * eta
        n_sub = n_steps * substeps
        ihx = 1.0 / h[0]
        ihy = 1.0 / h[1]
        ihz = 1.0 / h[2]
        px, py, pz, s0, s1 = begin_walker(i, pos, seeds)
        home = homes[i]  # the innermost component holding the walker (-1: the extra space)
        rx = 0.0
        ry = 0.0
        rz = 0.0
        reg = depth[home] if home >= 0 else n_regions - 1
        sc = scale[reg]
        region_weight = rweight[reg]  # what a step in this region adds to time_inside: changes only at transits
        ell_c = sc * ell_iso
        time_inside = 0.0  # in grid steps, weighted per region (see walker.records.Recording)
        log_weight = 0.0  # log of the surface-relaxation weight
        first = -1.0
        n_refl = 0
        n_cut = 0
        n_bad = 0
        n_tr = 0
        budget = 0.0
        acc = (0.0, 0.0, 0.0)
        facc = (0.0, 0.0)  # field integrals of the first two refocusing patterns
        ox, oy, oz = field_start(i, out_field, FIELD)
        j_rec, j_te, next_t = record_events(i, 0, 0.0, 0.0, 0.0, 0.0, 0.0, traj, rec_steps, 0, out_rec, te_steps,
                                            0, out_time_inside, out_log_weight)
        t = 1
        sub = 0
        for _ in range(n_sub):
            ux, uy, uz, s0, s1 = draw_step(gaussian, s0, s1)
            dx, dy, dz, left = step_segment(iso, ell_c, sc, M, ux, uy, uz)
            full = left
            skip = -1
            bounces = 0
            # far from every wall (most steps in the bulk): no traversal at all. ``budget`` is a lower bound
            # of the distance to the nearest wall, from the last cell looked up less the path walked since:
            # while it lasts, the walker does not even look up its cell
            if budget <= left:
                budget = 0.0
                ci = int(math.floor((px - lo[0]) * ihx))
                cj = int(math.floor((py - lo[1]) * ihy))
                ck = int(math.floor((pz - lo[2]) * ihz))
                if 0 <= ci < n[0] and 0 <= cj < n[1] and 0 <= ck < n[2]:
                    budget = clear[cell_index(ci, cj, ck, n)]
            if budget > left:
                px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, left)
                if PERMEABLE and home >= 0:
                    time_inside += region_weight * inv_sub
                budget -= left
                left = 0.0
            else:
                budget = 0.0
            while left > 0.0:
                tw, q = _nearest(px, py, pz, dx, dy, dz, left, skip, tri, tface, lo, h, n, box, start, items,
                                 tau)
                if q < 0 or tw >= left:
                    px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, left)
                    if PERMEABLE and home >= 0:
                        time_inside += region_weight * (left / full * inv_sub)
                    break
                dn = tri[q, 3] * dx + tri[q, 4] * dy + tri[q, 5] * dz
                back = eta / abs(dn)
                seg = tw - back
                if seg < 0.0:
                    seg = 0.0
                px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, seg)
                if PERMEABLE and home >= 0:
                    time_inside += region_weight * (tw / full * inv_sub)
                left -= tw
                skip = tface[q]
                c = tcomp[q]
                log_weight += keep_out[c] if dn > 0.0 else keep_in[c]
                p = (p_out[c] if dn > 0.0 else p_in[c]) if PERMEABLE else 0.0
                if p > 0.0 and back < 0.1 * full:
                    uu, s0, s1 = next_uniform(s0, s1)
                    if uu < p:
                        # transit: same direction, carried past the plane, the rest rescaled to the new D
                        n_tr += 1
                        if first < 0.0:
                            first = (t - 1) + (sub + 1.0 - left / full) * inv_sub
                        if left < 2.0 * back:
                            left = 2.0 * back
                        new = parent[c] if dn > 0.0 else c
                        reg_new = depth[new] if new >= 0 else n_regions - 1
                        ratio = scale[reg_new] / scale[reg]
                        home = new
                        reg = reg_new
                        sc = scale[reg]
                        region_weight = rweight[reg]
                        ell_c = sc * ell_iso
                        left *= ratio
                        full *= ratio
                        continue
                dx -= 2.0 * dn * tri[q, 3]
                dy -= 2.0 * dn * tri[q, 4]
                dz -= 2.0 * dn * tri[q, 5]
                n_refl += 1
                bounces += 1
                if bounces >= MAX_BOUNCES:
                    n_cut += 1
                    break
            if box[0] > 0.0:
                px = wrap(px, box[0])
            if box[1] > 0.0:
                py = wrap(py, box[1])
            if box[2] > 0.0:
                pz = wrap(pz, box[2])
            if check_every_step:
                if locate_one(px, py, pz, tri, tcomp, depth, lo, h, n, box, cstart, citems) != home:
                    n_bad += 1
            sub += 1
            if sub == substeps:
                sub = 0
                acc = phase_step(W, t, K, i, rx, ry, rz, acc, out_phases)
                if FIELD:
                    facc = field_point(FV, t, i, ox + rx, oy + ry, oz + rz, facc, out_field, f_map, f_src, f_par)
                if t == next_t:
                    if not PERMEABLE:  # nothing changes compartment: inside the whole time or never
                        time_inside = region_weight * t if home >= 0 else 0.0
                    j_rec, j_te, next_t = record_events(i, t, rx, ry, rz, time_inside, log_weight, traj, rec_steps, j_rec,
                                                        out_rec, te_steps, j_te, out_time_inside, out_log_weight)
                t += 1
        finish_walker(i, K, acc, px, py, pz, home, s0, s1, first, n_refl, n_cut, n_bad, n_tr, pos, homes, seeds,
                      out_phases, out_first, counters)
        if FIELD:
            field_finish(i, facc, out_field)

    return walk_walker


def mesh_kernel(permeable: bool, parallel: bool = True):
    """The compiled mesh walk, with or without permeable faces (built on first use).

    Parameters
    ----------
    permeable : bool
        Whether any component lets walkers through.
    parallel : bool
        The ``prange`` build, or the serial build.

    Returns
    -------
    numba dispatcher
        See :func:`walker.scaffold.build_kernel`.
    """
    return build_kernel(MESH, (bool(permeable),), parallel)


# --- the family record -----------------------------------------------------------------------------------------

def mesh_geometry(substrate, plan) -> MeshGeometry:
    """The mesh kernel's geometry record, with the stand-off eta after a hit.

    eta is 1e-10 of the shortest step, and at least 64 ulp of the largest
    coordinate, so that a walker stopped eta before a plane is strictly on its
    side after rounding (see the module's docstring).

    Parameters
    ----------
    substrate : substrates.MeshSubstrate
        The mesh.
    plan : walker.RunPlan
        Gives the sub-step duration (s) and diffusivities (m^2/s) that set eta, and the regions.

    Returns
    -------
    MeshGeometry
        Lengths in m.
    """
    g = substrate.grid
    ell_min = math.sqrt(6.0 * min(plan.diffusivities.values()) * plan.dt_sub)
    coord = float(np.max(np.abs(g.tri[:, 0:3]))) + float(np.max(g.n * g.h))
    eta = max(1e-10 * ell_min, 64.0 * float(np.spacing(coord)))
    return MeshGeometry(g.tri, g.comp, g.face, g.lo, g.h, g.n, g.box, g.start, g.items, g.clear, g.cstart, g.citems,
                        substrate.depth, substrate.parent, len(plan.regions), eta)


def _membranes(substrate, plan) -> Membranes:
    """A membrane per component: inside it the region of its depth, outside its parent's (the extra space last)."""
    extra = len(plan.regions) - 1
    inner = substrate.depth
    outer = np.where(substrate.parent >= 0, substrate.depth[np.maximum(substrate.parent, 0)], extra)
    return Membranes(substrate.n_components, substrate.permeability, substrate.relaxivity, inner, outer)


def _step_scales(substrate, plan) -> np.ndarray:
    """sqrt(D_region / D_reference) per region (depth d -> d, extra last)."""
    D = plan.region_diffusivities
    return np.sqrt(D / plan.reference_diffusivity)


def _misplaced(substrate, positions, homes) -> np.ndarray:
    """Every final position located exactly against the component the walker was tracked in."""
    return substrate.locate(positions) != homes


def _check(substrate, options: dict) -> None:
    if substrate.permeable and not np.all(substrate.periodic):
        raise ValueError("a permeable mesh needs a periodic box on all three axes (box=...) so that walkers leaving "
                         "a component have an extra-cellular space to go to")


def _describe(substrate) -> str:
    return f"meshes, {'permeable' if substrate.permeable else 'impermeable'}"


MESH = register_kernel_family(KernelFamily(
    name="mesh", walker_function=walker_function, variant=lambda sub: (bool(sub.permeable),),
    variant_name=lambda permeable: "walk_mesh_permeable" if permeable else "walk_mesh", describe=_describe,
    geometry=mesh_geometry, membranes=_membranes, step_scales=_step_scales, source_file=__file__,
    inlines=(substrates.meshgrid.__file__,), misplaced=_misplaced, check=_check,
    untouched_warning="no walker touched the mesh: is it where the walkers are (units, box origin)?",
    supports=frozenset({"membranes", "relaxivity", "region_t2"})))
