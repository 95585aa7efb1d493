"""One scaffold for every kernel: the loop over walkers, its two builds, and their caches.

A family of substrates brings the walk of *one* walker as a plain Python
function (``walk_walker(i, geo, transit, stepping, recording, pos, homes,
seeds, *outputs)``, see :mod:`walker.families`). :func:`build_kernel` inlines
it into the one loop over walkers, :func:`_walk_all`, and compiles that twice
(:func:`compile_kernel`): parallel (``prange``) and serial; tests require the
two builds to agree bit for bit. The CUDA backend compiles the same per-walker
function behind a one-thread-per-walker launch instead
(:mod:`walker.cuda_backend`).

Why the loop is a template and not a closure: numba cannot key its on-disk
cache by a closure over a compiled function, but it can by globals. So each
(family, variant, build) gets a renamed copy of the template's code, with its
per-walker function bound as the global ``WALK_WALKER``.

Why the copy names the family's file, and carries a digest in its name: numba
stores a cached kernel beside the file that defines it, under its qualified
name and first line, and trusts it while *that file* is unchanged (mtime and
size). A template defined here would be checked against this file alone, so
editing a family's kernel would silently load the old code; that is why each
kernel module used to carry its own copy of the loop. The copy's code object
names the family's kernel file instead (the cache lives beside it and is
stamped by it), and its name carries a digest of the source of every module
the kernels inline (the family's own, :mod:`walker.kernel_parts`,
:mod:`walker.rng`, :mod:`walker.geometry`, this one, and whatever else the
family lists), so that editing any of them builds afresh instead of loading a
stale kernel.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
import types
from pathlib import Path

import numba
from numba import njit, prange

from .kernel_parts import KERNEL_OPTIONS

#: modules every kernel inlines (their sources go into each kernel's cache name)
SHARED_SOURCES = ("kernel_parts.py", "rng.py", "geometry.py", "scaffold.py", "../substrates/fields.py")


def _walk_all(geo, transit, walkers, stepping, recording, out):
    """Walk every walker (records of :mod:`walker.records`; every array preallocated by the caller).

    geo : tuple                 the family's geometry record
    transit : Transit           per membrane: transit probabilities and log surface survival, from inside / outside
    walkers : Walkers           start state in, final state out (positions, home image or component, generator)
    stepping : Stepping         steps, sub-steps, step matrix, Gaussian or fixed-length, step scale per region
    recording : Recording       phase weights, record and echo grid indices, containment check every step
    out : Outputs               phase integrals, displacements, time inside, log survival, first transit,
                                trajectories, counters (reflections, steps cut at MAX_BOUNCES, containment
                                violations, transits), field integrals

    ``WALK_WALKER`` is bound per family and variant by :func:`build_kernel`. The records' arrays are unpacked
    before the loop: numba drops writes made through a record's arrays inside a parallel loop.
    """
    pos, homes, seeds = walkers
    out_phases, out_rec, out_time_inside, out_log_weight, out_first, traj, counters, out_field = out
    for i in prange(pos.shape[0]):
        WALK_WALKER(i, geo, transit, stepping, recording, pos, homes, seeds, out_phases,  # noqa: F821
                    out_rec, out_time_inside, out_log_weight, out_first, traj, counters, out_field)


def compile_kernel(func, name: str | None = None, bound: dict | None = None, filename: str | None = None):
    """(parallel, serial) builds of one kernel function, each with its own cache entry.

    numba keys its on-disk cache by the function's name, source line and
    signature, not by ``parallel``: two builds of one Python function would
    share one cache entry, and the second build loaded in a later process would
    run the first one's code (a "serial" run on the parallel code, or the
    reverse). Renamed copies of the function keep the entries apart.

    Parameters
    ----------
    func : function
        The Python function to compile.
    name : str, optional
        Name of this variant (default: the function's own); the builds append ``_parallel`` / ``_serial``.
    bound : dict, optional
        Global names the copies see (a variant's per-walker function, for one): unlike a closure over a
        compiled function, globals leave the cache usable, so every variant needs its own ``name``.
    filename : str, optional
        The file the copies claim to be defined in: their cache lives beside it and is invalidated when it
        changes (default: ``func``'s own file).

    Returns
    -------
    tuple
        (parallel, serial) numba dispatchers.
    """
    base = name or func.__qualname__
    env = func.__globals__ if not bound else {**func.__globals__, **bound}
    code = func.__code__ if filename is None else func.__code__.replace(co_filename=str(filename))

    def renamed(suffix):
        f = types.FunctionType(code, env, func.__name__ + suffix, func.__defaults__, func.__closure__)
        f.__qualname__ = base + suffix
        f.__doc__ = func.__doc__
        return f

    return (njit(parallel=True, **KERNEL_OPTIONS)(renamed("_parallel")),
            njit(**KERNEL_OPTIONS)(renamed("_serial")))


def kernel_name(family, variant: tuple, field: bool = False) -> str:
    """The readable name of a kernel variant ("walk_cylinders_permeable", "walk_mesh_field").

    Parameters
    ----------
    family : walker.families.KernelFamily
        Names its variants.
    variant : tuple
        The variant's compile-time constants.
    field : bool
        Whether the variant integrates a static field offset.

    Returns
    -------
    str
    """
    return family.variant_name(*variant) + ("_field" if field else "")


def source_digest(paths) -> str:
    """First 10 hex digits of the SHA-256 of the files' contents (a cache name that changes with any of them)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:10]


_BUILDS: dict = {}


def build_kernel(family, variant: tuple, parallel: bool = True, field: bool = False):
    """The compiled walk of one family's variant: its per-walker function inlined into :func:`_walk_all`.

    Built on first use, once per (family, variant): both builds at once, each with its own cache entry.

    Parameters
    ----------
    family : walker.families.KernelFamily
        Gives the per-walker function (``family.walker_function(*variant)``), the variant's name and the
        family's source files.
    variant : tuple
        The compile-time constants of the variant (e.g. the kind and the membranes of an analytic substrate).
    parallel : bool
        The ``prange`` build, or the serial build of the same function.
    field : bool
        With a static field offset's integrals (a variant of its own: runs without a field compile none of it).

    Returns
    -------
    numba dispatcher
        Called as ``kernel(geo, transit, walkers, stepping, recording, out)``.
    """
    key = (family.name, tuple(variant), bool(field))
    if key not in _BUILDS:
        here = Path(__file__).parent
        sources = [family.source_file, *(here / s for s in SHARED_SOURCES), *family.inlines]
        body = njit(inline="always")(family.walker_function(*variant, field=bool(field)))
        name = f"{kernel_name(family, variant, field)}_{source_digest(sources)}"
        _BUILDS[key] = compile_kernel(_walk_all, name=name, bound={"WALK_WALKER": body}, filename=family.source_file)
    return _BUILDS[key][0 if parallel else 1]


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


