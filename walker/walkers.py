"""What both kernels do for every walker, whatever the geometry: inlined numba helpers.

Start and finish a walker (read its state, write it back with its counters),
advance a position, wrap it into a periodic box, accumulate the phase
integrals and the records at each grid point. Walker state travels in
scalars and tuples of scalars: nothing here allocates, so nothing can be
hoisted out of a ``prange`` body and shared between walkers.

Also :func:`compile_kernel`, which compiles one kernel function as a parallel
and a serial build with *separate* on-disk caches.
"""

from __future__ import annotations

import math
import types

from numba import njit

MAX_BOUNCES = 10_000  # per step; only a walker grazing a wall exactly tangentially gets near it

#: numba options of every kernel build: IEEE float64 (no fastmath), numpy error semantics, cached on disk
KERNEL_OPTIONS = {"cache": True, "fastmath": False, "error_model": "numpy"}


def compile_kernel(func):
    """(parallel, serial) builds of one kernel, each with its own cache entry.

    numba keys its on-disk cache by the function's name, source line and
    signature, not by ``parallel``: two builds of one Python function would
    share one cache entry, and the second build loaded in a later process would
    run the first one's code (a "serial" run on the parallel code, or the
    reverse). Renamed copies of the function keep the entries apart. Note that
    the cache checks only the kernel's own file: after editing a helper module
    it inlines (``rng``, ``walkers``), touch the kernel file.
    """
    def renamed(suffix):
        f = types.FunctionType(func.__code__, func.__globals__, func.__name__ + suffix, func.__defaults__,
                               func.__closure__)
        f.__qualname__ = func.__qualname__ + suffix
        f.__doc__ = func.__doc__
        return f

    return (njit(parallel=True, **KERNEL_OPTIONS)(renamed("_parallel")),
            njit(**KERNEL_OPTIONS)(renamed("_serial")))


@njit(inline="always")
def isotropic_step(M, gaussian):
    """(iso, length): fixed-length steps with an isotropic step matrix need no matrix product."""
    ell = M[0, 0]
    iso = (not gaussian) and M[0, 1] == 0.0 and M[0, 2] == 0.0 and M[1, 0] == 0.0 and M[1, 2] == 0.0 \
        and M[2, 0] == 0.0 and M[2, 1] == 0.0 and M[1, 1] == ell and M[2, 2] == ell
    return iso, ell



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
def begin_walker(i, pos, seeds, traj, rec_steps, out_rec, te_steps, out_tin):
    """A walker's position and generator state, with its grid-point-0 records written; returns
    (px, py, pz, s0, s1, j_rec, j_te)."""
    j_rec, j_te = record_step(i, 0, 0.0, 0.0, 0.0, 0.0, traj, rec_steps, 0, out_rec, te_steps, 0, out_tin)
    return pos[i, 0], pos[i, 1], pos[i, 2], seeds[i, 0], seeds[i, 1], j_rec, j_te


@njit(inline="always")
def phase_step(W, t, K, i, rx, ry, rz, acc, out_I):
    """Add this grid point's weighted displacement to the phase integrals.

    Up to three temporal shapes (PGSE, OGSE, DDE, b-tensors) accumulate in the
    registers of ``acc`` (a 9-tuple: shape 0 x, y, z, shape 1 ..., shape 2 ...),
    the rest straight into ``out_I``; returns the new ``acc``.
    """
    a0x, a0y, a0z, a1x, a1y, a1z, a2x, a2y, a2z = acc
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
    return (a0x, a0y, a0z, a1x, a1y, a1z, a2x, a2y, a2z)


@njit(inline="always")
def record_step(i, t, rx, ry, rz, tin, traj, rec_steps, j_rec, out_rec, te_steps, j_te, out_tin):
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
def finish_walker(i, K, acc, px, py, pz, home_i, s0, s1, first, n_refl, n_cut, n_bad, n_tr, pos, home, seeds,
                  out_I, out_first, counters):
    """Write a walker back: phase integrals, final position and compartment, generator state, counters."""
    a0x, a0y, a0z, a1x, a1y, a1z, a2x, a2y, a2z = acc
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
