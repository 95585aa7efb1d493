"""What both kernels do for every walker, whatever the geometry: inlined numba helpers.

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

Also :func:`compile_kernel`, which compiles one kernel function as a parallel
and a serial build with *separate* on-disk caches.
"""

from __future__ import annotations

import math
import sys
import threading
import time
import types

import numba
from numba import njit

MAX_BOUNCES = 10_000  # per step; only a walker grazing a wall exactly tangentially gets near it
NEVER = 1 << 62  # a grid index no walk reaches

#: numba options of every kernel build: IEEE float64 (no fastmath), numpy error semantics, cached on disk
KERNEL_OPTIONS = {"cache": True, "fastmath": False, "error_model": "numpy"}


def compile_kernel(func, name: str | None = None, bound: dict | None = None):
    """(parallel, serial) builds of one kernel, each with its own cache entry.

    numba keys its on-disk cache by the function's name, source line and
    signature, not by ``parallel``: two builds of one Python function would
    share one cache entry, and the second build loaded in a later process would
    run the first one's code (a "serial" run on the parallel code, or the
    reverse). Renamed copies of the function keep the entries apart; ``name``
    names a variant. ``bound`` adds global names the copies see (a variant's
    per-walker function, for one): unlike a closure over a compiled function,
    which numba cannot key its cache by, globals leave the cache usable, so
    every variant needs its own ``name``. Note that the cache checks only the
    kernel's own file: after editing a helper module it inlines (``rng``,
    ``walkers``), touch the kernel file.
    """
    base = name or func.__qualname__
    env = func.__globals__ if not bound else {**func.__globals__, **bound}

    def renamed(suffix):
        f = types.FunctionType(func.__code__, env, func.__name__ + suffix, func.__defaults__, func.__closure__)
        f.__qualname__ = base + suffix
        f.__doc__ = func.__doc__
        return f

    return (njit(parallel=True, **KERNEL_OPTIONS)(renamed("_parallel")),
            njit(**KERNEL_OPTIONS)(renamed("_serial")))


#: seconds a kernel may take to load before the user is told it is being compiled
COMPILE_NOTICE_AFTER = 1.0


def ensure_compiled(kernel, args, what: str, expected_s: float) -> None:
    """Compile (or load from the on-disk cache) ``kernel`` for ``args`` before it runs.

    Loading a cached kernel takes well under a second; compiling one takes
    tens of seconds, once per installation. When the call is still busy after
    :data:`COMPILE_NOTICE_AFTER` seconds, a line on stderr says what is
    happening, so a first run does not sit in silence.

    Parameters
    ----------
    kernel : numba dispatcher
    args : tuple
        The arguments it will be called with (their types select the build).
    what : str
        The kernel in words ("cylinders, impermeable").
    expected_s : float
        Rough compile time to announce, s.
    """
    sig = tuple(numba.typeof(a) for a in args)
    if sig in kernel.overloads:
        return
    t0 = time.perf_counter()

    def notice():
        print(f"diffwalk: compiling the walker kernel for {what} once (about {expected_s:.0f} s; "
              "cached for later runs)", file=sys.stderr, flush=True)

    timer = threading.Timer(COMPILE_NOTICE_AFTER, notice)
    timer.daemon = True
    timer.start()
    try:
        kernel.compile(sig)
    finally:
        timer.cancel()
    took = time.perf_counter() - t0
    if took > COMPILE_NOTICE_AFTER:
        print(f"diffwalk: compiled in {took:.0f} s", file=sys.stderr, flush=True)


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
