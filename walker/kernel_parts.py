"""What every kernel does for every walker, whatever the geometry: inlined numba helpers.

Start and finish a walker (read its state, write it back with its counters),
advance a position, wrap it into a periodic box, accumulate the phase
integrals at each grid point, and write the records (trajectories,
displacements, time inside) at the grid points that have them. Walker state
travels in scalars and tuples of scalars: nothing here allocates, so nothing
can be hoisted out of a ``prange`` body and shared between walkers.

Why records are events: the hot loop only compares the grid index with the
next record's (``t == next_t``) and calls :func:`record_events`, which is *not*
inlined, when they meet. Inlining the record writes into the loop made the
serial build of a free walk 2.7x slower (it let LLVM assume the stores alias
everything the loop reads), with or without records in the run.

How the helpers become kernels (the loop over walkers, the builds and their
caches) is :mod:`walker.scaffold`.
"""

from __future__ import annotations

import math

from numba import njit

from substrates.fields import field_value

MAX_BOUNCES = 10_000  # per step; only a walker grazing a wall exactly tangentially gets near it
NEVER = 1 << 62  # a grid index no walk reaches

#: numba options of every kernel build: IEEE float64 (no fastmath), numpy error semantics, cached on disk
KERNEL_OPTIONS = {"cache": True, "fastmath": False, "error_model": "numpy"}


@njit(inline="always")
def isotropic_step(M, gaussian):
    """(iso, length): fixed-length steps with an isotropic step matrix need no matrix product."""
    ell = M[0, 0]
    iso = (not gaussian) and M[0, 1] == 0.0 and M[0, 2] == 0.0 and M[1, 0] == 0.0 and M[1, 2] == 0.0 \
        and M[2, 0] == 0.0 and M[2, 1] == 0.0 and M[1, 1] == ell and M[2, 2] == ell
    return iso, ell


@njit(inline="always")
def step_segment(iso, ell, sc, M, ux, uy, uz):
    """A sub-step as a segment: (unit direction, length). Isotropic fixed-length steps: the unit draw u and
    ``ell``; otherwise sc M u, normalised."""
    if iso:
        return ux, uy, uz, ell
    vx = sc * (M[0, 0] * ux + M[0, 1] * uy + M[0, 2] * uz)
    vy = sc * (M[1, 0] * ux + M[1, 1] * uy + M[1, 2] * uz)
    vz = sc * (M[2, 0] * ux + M[2, 1] * uy + M[2, 2] * uz)
    length = math.sqrt(vx * vx + vy * vy + vz * vz)
    inv = 1.0 / length if length > 0.0 else 0.0
    return vx * inv, vy * inv, vz * inv, length


@njit(inline="always")
def move(px, py, pz, rx, ry, rz, dx, dy, dz, s):
    """Advance the position and the unwrapped displacement by s along d."""
    return px + s * dx, py + s * dy, pz + s * dz, rx + s * dx, ry + s * dy, rz + s * dz


@njit(inline="always")
def wrap(x, L):
    """x folded into [0, L)."""
    if x < 0.0 or x >= L:
        x -= math.floor(x / L) * L
        if x >= L:  # rounding of a tiny negative x
            x = 0.0
    return x


@njit(inline="always")
def begin_walker(i, pos, seeds):
    """A walker's start position and generator state: (px, py, pz, s0, s1)."""
    return pos[i, 0], pos[i, 1], pos[i, 2], seeds[i, 0], seeds[i, 1]


@njit(inline="always")
def phase_step(W, t, K, i, rx, ry, rz, acc, out_I):
    """Add this grid point's weighted displacement to the phase integrals; returns the new ``acc``.

    The first temporal shape (the only one of PGSE, OGSE or DDE protocols)
    accumulates in the registers of ``acc`` = (x, y, z); further shapes
    (b-tensor encodings) go straight into ``out_I``, which starts at zero, so
    the sums are the same either way. Keeping fewer values live across the
    whole walk leaves the registers to the geometry.
    """
    ax, ay, az = acc
    w = W[0, t]
    ax += w * rx
    ay += w * ry
    az += w * rz
    for k in range(1, K):
        w = W[k, t]
        out_I[i, k, 0] += w * rx
        out_I[i, k, 1] += w * ry
        out_I[i, k, 2] += w * rz
    return (ax, ay, az)


@njit(inline="always")
def field_start(i, out_field, on):
    """The walker's start in the box frame (m; zeros when ``on`` is False, the run has no field): the field is
    evaluated at start + displacement."""
    if on:
        return out_field[i, 0], out_field[i, 1], out_field[i, 2]
    return 0.0, 0.0, 0.0


@njit(inline="always")
def field_point(FV, t, i, x, y, z, facc, out_field, f_map, f_src, f_par):
    """Add the field offset at grid point t, dB(x, y, z), to each refocusing pattern's integral: the first two
    in the registers of ``facc`` (a run has one or two patterns: spin and gradient echoes), the rest straight
    into ``out_field``; returns the new ``facc``. Compiled only into kernels of runs with a field."""
    db = field_value(x, y, z, f_map, f_src, f_par)
    a0, a1 = facc
    a0 += FV[0, t] * db
    if FV.shape[0] > 1:
        a1 += FV[1, t] * db
        for f in range(2, FV.shape[0]):
            out_field[i, 3 + f] += FV[f, t] * db
    return (a0, a1)


@njit(inline="always")
def field_finish(i, facc, out_field):
    """Write the field integrals held in registers back (onto the start's own term, added by the caller)."""
    out_field[i, 3] += facc[0]
    if out_field.shape[1] > 4:
        out_field[i, 4] += facc[1]


@njit(**KERNEL_OPTIONS)
def record_events(i, t, rx, ry, rz, tin, lw, traj, rec_steps, j_rec, out_rec, te_steps, j_te, out_tin, out_lw):
    """Write the records of grid point t (trajectory, displacement, time inside, log surface survival); returns
    the advanced record indices and the next grid point that has a record (a large number when none is left)."""
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
        out_lw[i, j_te] = lw
        j_te += 1
    nxt = NEVER
    if i < traj.shape[0]:
        nxt = t + 1
    if j_rec < rec_steps.shape[0] and rec_steps[j_rec] < nxt:
        nxt = rec_steps[j_rec]
    if j_te < te_steps.shape[0] and te_steps[j_te] < nxt:
        nxt = te_steps[j_te]
    return j_rec, j_te, nxt


@njit(inline="always")
def finish_walker(i, K, acc, px, py, pz, home_i, s0, s1, first, n_refl, n_cut, n_bad, n_tr, pos, home, seeds,
                  out_I, out_first, counters):
    """Write a walker back: phase integrals, final position and compartment, generator state, counters."""
    out_I[i, 0, 0] += acc[0]
    out_I[i, 0, 1] += acc[1]
    out_I[i, 0, 2] += acc[2]
    pos[i, 0] = px
    pos[i, 1] = py
    pos[i, 2] = pz
    home[i] = home_i
    seeds[i, 0] = s0
    seeds[i, 1] = s1
    out_first[i] = first
    counters[i, 0] += n_refl
    counters[i, 1] += n_cut
    counters[i, 2] += n_bad
    counters[i, 3] += n_tr
