"""The random-walk kernel for unions of overlapping spheres (fibres built from spheres, no mesh).

A walker lives inside the union, or between its spheres (home :data:`substrates.unions.OUTSIDE`): there
it reflects off the first sphere surface its segment enters (each sphere is convex, so the first entry is
the wall whatever the union around it). Inside, for each step segment p + t d, 0 <= t <= left, every sphere image the
walker's grid cell lists (all that can come within a step of the cell, :class:`substrates.UnionGrid`)
gives the interval of t inside it. Starting from the spheres that hold p, the intervals are chained
(an interval that begins before the current end extends it) until none extends it: that end is where the
segment leaves the union, on the surface of the sphere whose interval ended last. The walker reflects
specularly off that sphere there and continues with the rest of the step. Two fast paths skip the chain:
a step that ends inside the sphere the walker is known to be in (a ball is convex: the whole segment is
in it), and a step from a cell that one sphere holds entirely, dilated by the step (``deep``).

Rounding: a walker on a sphere's surface counts as inside it (its squared distance is clamped as in the
analytic kernel), so after a reflection it is inside the sphere it reflected off, moving inward, and a
walker found a hair outside every sphere while moving out reflects off the nearest one at distance 0.

Like the other kernels: one per-walker Python function, compiled into the loop over walkers as a parallel and a
serial build (:mod:`walker.scaffold`) that agree bit for bit, taking the named records of
:mod:`walker.records`. Units: metres and seconds, float64.

This module is the whole "union" family on the walker's side (:mod:`walker.families`): the per-walker function,
its geometry record, and one registration at the end.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from substrates.unions import OUTSIDE

from .families import KernelFamily, Membranes, register_kernel_family
from .geometry import cell_index, exit_root
from .kernel_parts import (MAX_BOUNCES, begin_walker, field_finish, field_point, field_start, finish_walker,
                           isotropic_step, move, phase_step, record_events, step_segment, wrap)
from .records import UnionGeometry
from .rng import draw_step, next_uniform
from .scaffold import build_kernel

#: a walker within this fraction of a radius outside a sphere's surface counts as on it (rounding)
ON_SURFACE = 1e-12


@njit(inline="always")
def _cell(px, py, pz, lo, h, n):
    i = min(max(int((px - lo[0]) / h[0]), 0), n[0] - 1)
    j = min(max(int((py - lo[1]) / h[1]), 0), n[1] - 1)
    k = min(max(int((pz - lo[2]) / h[2]), 0), n[2] - 1)
    return cell_index(i, j, k, n)


@njit(inline="always")
def _interval(px, py, pz, dx, dy, dz, cx, cy, cz, r):
    """(t_in, t_out) of the line p + t d inside sphere (c, r), t_in <= 0 <= t_out when p is in it (or on it);
    (inf, -inf) when the line misses it."""
    ox = px - cx
    oy = py - cy
    oz = pz - cz
    b = ox * dx + oy * dy + oz * dz
    hh = r * r - (ox * ox + oy * oy + oz * oz)
    if hh >= -ON_SURFACE * r * r:
        if hh < 0.0:
            hh = 0.0  # on the surface up to rounding: inside
        return -1.0, exit_root(1.0, b, hh)
    disc = b * b + hh
    if disc <= 0.0 or b >= 0.0:
        return np.inf, -np.inf  # misses, or lies behind
    s = math.sqrt(disc)
    return -hh / (s - b), s - b


@njit(inline="always")
def _exit(px, py, pz, dx, dy, dz, cell, start, items, img_c, img_r):
    """(distance along d at which the segment leaves the union, the sphere image it leaves through, True);
    when rounding has left the walker in no sphere, (0, the nearest sphere, False)."""
    e = 0.0
    q_exit = -1
    changed = True
    while changed:
        changed = False
        for it in range(start[cell], start[cell + 1]):
            q = items[it]
            t0, t1 = _interval(px, py, pz, dx, dy, dz, img_c[q, 0], img_c[q, 1], img_c[q, 2], img_r[q])
            if t0 <= e and t1 > e:
                e = t1
                q_exit = q
                changed = True
    if q_exit < 0:  # rounding left the walker in no sphere: the nearest surface, at distance 0
        best = np.inf
        for it in range(start[cell], start[cell + 1]):
            q = items[it]
            ox = px - img_c[q, 0]
            oy = py - img_c[q, 1]
            oz = pz - img_c[q, 2]
            gap = math.sqrt(ox * ox + oy * oy + oz * oz) - img_r[q]
            if gap < best:
                best = gap
                q_exit = q
        return 0.0, q_exit, False
    return e, q_exit, True


@njit(inline="always")
def _entry(px, py, pz, dx, dy, dz, cell, start, items, img_c, img_r):
    """(distance along d to the first sphere surface the segment enters, that sphere image) for a walker
    outside the union; (inf, -1) when it enters none. A walker on a surface (up to rounding) moving into its
    sphere enters it at distance 0."""
    best = np.inf
    q_in = -1
    for it in range(start[cell], start[cell + 1]):
        q = items[it]
        ox = px - img_c[q, 0]
        oy = py - img_c[q, 1]
        oz = pz - img_c[q, 2]
        b = ox * dx + oy * dy + oz * dz
        r = img_r[q]
        c = ox * ox + oy * oy + oz * oz - r * r
        if b >= 0.0:
            continue  # moving away from its centre: the segment cannot enter it
        if c <= ON_SURFACE * r * r:
            t = 0.0  # on the surface (or a hair inside) moving in
        else:
            disc = b * b - c
            if disc <= 0.0:
                continue
            t = c / (math.sqrt(disc) - b)  # the near root -b - sqrt(disc), without cancellation
        if t < best:
            best = t
            q_in = q
    return best, q_in


@njit(inline="always")
def _normal(px, py, pz, dx, dy, dz, cx, cy, cz):
    """The sphere's outward radius vector at p (centre c), its length and 2 (d . n) / |n| (> 0: moving out)."""
    nx = px - cx
    ny = py - cy
    nz = pz - cz
    nn = math.sqrt(nx * nx + ny * ny + nz * nz)
    return nx, ny, nz, nn, 2.0 * (dx * nx + dy * ny + dz * nz) / nn


@njit(inline="always")
def _mirror(dx, dy, dz, nx, ny, nz, nn, dn):
    """d reflected specularly off the plane normal to n (``dn`` from :func:`_normal`)."""
    return dx - dn * nx / nn, dy - dn * ny / nn, dz - dn * nz / nn


@njit(inline="always")
def _cross(t, sub, inv_sub, first, sc, sc_new, left, full):
    """A transit: the time of the first one (in steps), and the rest of the step rescaled to the new region's
    step scale: (first, sc_new, left, full)."""
    if first < 0.0:
        first = (t - 1) + (sub + 1.0 - left / full) * inv_sub
    ratio = sc_new / sc
    return first, sc_new, left * ratio, full * ratio


def walker_function(field: bool = False):
    """The walk of one walker inside a union of spheres, as a plain Python function (compiled for the CPU and, by
    walker.cuda_backend, for CUDA).

    Parameters
    ----------
    field : bool
        Whether the run has a static field offset (the field's integrals are compiled in only then).

    Returns
    -------
    function
        ``walk_walker(i, geo, transit, stepping, recording, pos, homes, seeds, *out)`` with ``geo`` a
        :class:`walker.records.UnionGeometry`; positions are absolute (wrapped into the box).
    """
    FIELD = bool(field)

    def walk_walker(i, geo, transit, stepping, recording, pos, homes, seeds, out_phases, out_rec, out_time_inside,
                    out_log_weight, out_first, traj, counters, out_field):
        img_c, img_r, lo, h, n, box, start, items, deep = geo
        p_out, p_in, keep_out, keep_in = transit
        n_steps, substeps, M, gaussian, scale = stepping
        W, rec_steps, te_steps, check_every_step, _, FV, f_map, f_src, f_par = recording
        K = W.shape[0]
        inv_sub = 1.0 / substeps
        n_sub = n_steps * substeps
        iso, ell_iso = isotropic_step(M, gaussian)
        px, py, pz, s0, s1 = begin_walker(i, pos, seeds)
        rx = 0.0
        ry = 0.0
        rz = 0.0
        n_refl = 0
        n_cut = 0
        n_bad = 0
        n_tr = 0
        first = -1.0
        outside = homes[i] == OUTSIDE  # lives between the spheres (else inside the union)
        sc = scale[1] if outside else scale[0]  # sqrt(D_region / D_intra): regions "intra", "extra"
        permeable = p_out[0] > 0.0 or p_in[0] > 0.0
        time_inside = 0.0  # in grid steps, tracked with a membrane (else inside the whole time or never)
        log_weight = 0.0  # log of the surface-relaxation weight
        home = -1  # a sphere image known to hold the walker (-1: none known)
        acc = (0.0, 0.0, 0.0)
        facc = (0.0, 0.0)  # field integrals of the first two refocusing patterns
        ox, oy, oz = field_start(i, out_field, FIELD)
        j_rec, j_te, next_t = record_events(i, 0, 0.0, 0.0, 0.0, 0.0, 0.0, traj, rec_steps, 0, out_rec, te_steps,
                                            0, out_time_inside, out_log_weight)
        t = 1
        sub = 0
        for _ in range(n_sub):
            ux, uy, uz, s0, s1 = draw_step(gaussian, s0, s1)
            dx, dy, dz, left = step_segment(iso, sc * ell_iso, sc, M, ux, uy, uz)
            full = left
            bounces = 0
            # the cell at the step's start lists every sphere within the longest step of it: the whole step,
            # reflections and transits included, stays within that reach
            cell = _cell(px, py, pz, lo, h, n)
            if not outside:
                if home >= 0:
                    ex = px + left * dx - img_c[home, 0]
                    ey = py + left * dy - img_c[home, 1]
                    ez = pz + left * dz - img_c[home, 2]
                    if ex * ex + ey * ey + ez * ez <= img_r[home] * img_r[home]:
                        px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, left)
                        if permeable:
                            time_inside += inv_sub
                        left = 0.0
                if left > 0.0 and deep[cell]:
                    px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, left)
                    if permeable:
                        time_inside += inv_sub
                    left = 0.0
                    home = -1
                if left > 0.0:
                    home = -1  # set again by the step's last move (a step cut at MAX_BOUNCES leaves none known)
            while left > 0.0:
                if outside:
                    # between the spheres: the first surface the segment enters is the wall (each sphere is
                    # convex, so the first entry along the segment is a wall, whatever the union around it)
                    e, q = _entry(px, py, pz, dx, dy, dz, cell, start, items, img_c, img_r)
                    if e >= left:
                        px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, left)
                        break
                    px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, e)
                    left -= e
                    log_weight += keep_in[0]
                    if p_in[0] > 0.0:
                        uu, s0, s1 = next_uniform(s0, s1)
                        if uu < p_in[0]:  # into the union: same direction, the rest rescaled to its D
                            n_tr += 1
                            first, sc, left, full = _cross(t, sub, inv_sub, first, sc, scale[0], left, full)
                            outside = False
                            home = -1
                            continue
                    nx, ny, nz, nn, dn = _normal(px, py, pz, dx, dy, dz, img_c[q, 0], img_c[q, 1], img_c[q, 2])
                    dx, dy, dz = _mirror(dx, dy, dz, nx, ny, nz, nn, dn)
                else:
                    e, q, inside = _exit(px, py, pz, dx, dy, dz, cell, start, items, img_c, img_r)
                    if e >= left or q < 0:
                        px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, left)
                        if permeable:
                            time_inside += left / full * inv_sub
                        home = q if inside else -1  # the last interval of the chain covers the end point
                        break
                    px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, e)
                    if permeable:
                        time_inside += e / full * inv_sub
                    left -= e
                    nx, ny, nz, nn, dn = _normal(px, py, pz, dx, dy, dz, img_c[q, 0], img_c[q, 1], img_c[q, 2])
                    if dn > 0.0:  # moving out through this sphere: a wall hit
                        log_weight += keep_out[0]
                        if p_out[0] > 0.0:
                            uu, s0, s1 = next_uniform(s0, s1)
                            if uu < p_out[0]:  # out of the union: same direction, the rest rescaled to its D
                                n_tr += 1
                                first, sc, left, full = _cross(t, sub, inv_sub, first, sc, scale[1], left, full)
                                outside = True
                                home = -1
                                continue
                        dx, dy, dz = _mirror(dx, dy, dz, nx, ny, nz, nn, dn)
                    elif not inside:  # a hair outside every sphere, moving back in: carry on
                        px, py, pz, rx, ry, rz = move(px, py, pz, rx, ry, rz, dx, dy, dz, left)
                        if permeable:
                            time_inside += left / full * inv_sub
                        home = -1
                        break
                n_refl += 1
                bounces += 1
                if bounces >= MAX_BOUNCES:
                    n_cut += 1
                    break
            wx = wrap(px, box[0])
            wy = wrap(py, box[1])
            wz = wrap(pz, box[2])
            if wx != px or wy != py or wz != pz:
                home = -1  # the known sphere is an image in the unwrapped frame
                px = wx
                py = wy
                pz = wz
            if check_every_step or (t == n_steps and sub == substeps - 1):
                c2 = _cell(px, py, pz, lo, h, n)
                if outside:
                    for it in range(start[c2], start[c2 + 1]):  # in no sphere, beyond rounding
                        q = items[it]
                        ox = px - img_c[q, 0]
                        oy = py - img_c[q, 1]
                        oz = pz - img_c[q, 2]
                        if ox * ox + oy * oy + oz * oz < img_r[q] * img_r[q] * (1.0 - 1e-9):
                            n_bad += 1
                            break
                else:
                    inside = deep[c2]
                    for it in range(start[c2], start[c2 + 1]):
                        q = items[it]
                        ox = px - img_c[q, 0]
                        oy = py - img_c[q, 1]
                        oz = pz - img_c[q, 2]
                        if ox * ox + oy * oy + oz * oz <= img_r[q] * img_r[q] * (1.0 + 1e-9):
                            inside = True
                            break
                    if not inside:
                        n_bad += 1
            sub += 1
            if sub == substeps:
                sub = 0
                acc = phase_step(W, t, K, i, rx, ry, rz, acc, out_phases)
                if FIELD:
                    facc = field_point(FV, t, i, ox + rx, oy + ry, oz + rz, facc, out_field, f_map, f_src, f_par)
                if t == next_t:
                    if not permeable:  # nothing changes compartment: inside the whole time or never
                        time_inside = 0.0 if outside else float(t)
                    j_rec, j_te, next_t = record_events(i, t, rx, ry, rz, time_inside, log_weight, traj, rec_steps,
                                                        j_rec, out_rec, te_steps, j_te, out_time_inside,
                                                        out_log_weight)
                t += 1
        finish_walker(i, K, acc, px, py, pz, OUTSIDE if outside else -1, s0, s1, first, n_refl, n_cut, n_bad, n_tr,
                      pos, homes, seeds, out_phases, out_first, counters)
        if FIELD:
            field_finish(i, facc, out_field)

    return walk_walker


def union_kernel(parallel: bool = True):
    """The compiled walk inside a union of spheres (built on first use).

    Parameters
    ----------
    parallel : bool
        The ``prange`` build, or the serial build.

    Returns
    -------
    numba dispatcher
        See :func:`walker.scaffold.build_kernel`.
    """
    return build_kernel(UNION, (), parallel)


# --- the family record -----------------------------------------------------------------------------------------

def union_geometry(substrate, plan) -> UnionGeometry:
    """The union kernel's geometry record: sphere images and cell lists that hold every sphere within a step.

    Parameters
    ----------
    substrate : substrates.SphereUnion
        The union.
    plan : walker.RunPlan
        Gives the step length (m) the cell lists are built for.

    Returns
    -------
    UnionGeometry
        Lengths in m.
    """
    # the longest step of any region (the step length is the intra-cellular one's; the others rescale it)
    g = substrate.union_grid(plan.step_length * float(np.max(_step_scales(substrate, plan))))
    return UnionGeometry(g.centers, g.radii, g.lo, g.h, g.n, substrate.box, g.start, g.items, g.deep)


def _step_scales(substrate, plan) -> np.ndarray:
    """sqrt(D_region / D_intra) for the regions "intra" and "extra"."""
    return np.sqrt(plan.region_diffusivities / plan.reference_diffusivity)


def _membranes(substrate, plan) -> Membranes:
    """One membrane, the union's surface: inside it "intra" (region 0), outside "extra" (region 1)."""
    return Membranes(1, substrate.permeability, substrate.relaxivity, np.zeros(1, dtype=np.int64),
                     np.ones(1, dtype=np.int64))


def _check(substrate, options: dict) -> None:
    if options.get("gaussian_steps"):
        raise ValueError("sphere unions take fixed-length steps (their cell lists hold every sphere within "
                         "one step); leave gaussian_steps off")


UNION = register_kernel_family(KernelFamily(
    name="union", walker_function=walker_function, variant=lambda sub: (), variant_name=lambda: "walk_union",
    describe=lambda sub: "sphere unions", geometry=union_geometry,
    membranes=_membranes, step_scales=_step_scales, source_file=__file__, check=_check,
    supports=frozenset({"membranes", "relaxivity"})))
