"""The CUDA backend (numba-cuda): the CPU kernels' per-walker walk, one walker per GPU thread.

One source of the physics, two targets. Each family of substrates
(:mod:`walker.families`) writes the walk of *one* walker as a plain Python
function; the CPU build inlines it into the loop over walkers
(:mod:`walker.scaffold`), and this module compiles the same function as a
CUDA device function (:func:`device_function` rebuilds it, and every compiled
helper it calls, for the CUDA target) behind a kernel that gives each thread
one walker. Families whose record says ``cuda=False`` are refused before
this module is reached.
Each walker's generator state comes from the seed exactly as on the CPU
(:func:`walker.rng.walker_seeds`), so a GPU run replays the CPU run of the
same seed.

Floating point: float64 throughout, no fast-math, and no fused multiply-add
contraction (NVVM contracts ``a * b + c`` by default; :func:`without_fma`
turns that off while our kernels compile), so additions, products, divisions
and square roots round as on the CPU. What can still differ on hardware:
``log``, ``cos`` and ``sin`` come from CUDA's libdevice instead of the C
library; the walk uses them only for Gaussian steps (Box-Muller) and for the
fallback rays of mesh point location, and the signal's sines and cosines use
our own polynomial (:mod:`walker.sincos`) on both targets. Fixed-length steps
(the default) therefore use no libm function at all.

Memory: walkers go to the device in batches sized to its free memory;
per-walker state and outputs are O(N K) (the factorised phases); the phase of
each measurement, its cosine and sine and the per-block sums run on the device
too (:func:`phase_sums`), in the CPU's block partition and summation order.

Without a GPU, numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) runs the
same kernels in Python: slow, but it checks the whole path in CI.
"""

from __future__ import annotations

import math
import types
import warnings
from contextlib import contextmanager

import numpy as np

from .families import KernelFamily
from .records import Outputs, Walkers
from .scaffold import kernel_name
from .sincos import REDUCED_RANGE, sincos

#: fraction of the device's free memory one batch of walkers may take
MEMORY_SHARE = 0.5
#: threads per block of the walk kernel
THREADS_PER_BLOCK = 128
#: threads per block under the simulator
SIMULATOR_THREADS = 1
#: walkers per batch when the device cannot say how much memory it has (the simulator)
DEFAULT_BATCH = 1 << 20

#: how to get a working CUDA backend (part of every "no GPU" message)
INSTALL_HINT = ("an NVIDIA GPU with its driver and numba-cuda are needed: pip install 'diffwalk[gpu]' "
                "(or NUMBA_ENABLE_CUDASIM=1 to run the CUDA code in numba's simulator, slowly)")
_INSTALL = "backend='cuda': " + INSTALL_HINT


def _cuda():
    try:
        from numba import cuda
    except ImportError as exc:  # pragma: no cover - numba without its CUDA target
        raise RuntimeError(_INSTALL) from exc
    return cuda


def simulator() -> bool:
    """Whether numba's CUDA simulator stands in for the GPU (``NUMBA_ENABLE_CUDASIM=1``)."""
    from numba.core import config
    return bool(config.ENABLE_CUDASIM)


def available() -> bool:
    """Whether CUDA kernels can run here: a usable GPU, or the simulator."""
    try:
        cuda = _cuda()
        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - any failure to reach a driver means the same: no GPU
        return False


def device_name() -> str:
    """Name of the current CUDA device ("CUDA simulator" under the simulator)."""
    if simulator():
        return "CUDA simulator"
    name = _cuda().get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def resolve_backend(backend: str) -> str:
    """"cpu" or "cuda" for a requested backend ("auto": CUDA when :func:`available`); refuses what cannot run.

    Examples
    --------
    >>> resolve_backend("cpu")
    'cpu'
    """
    if backend not in ("cpu", "cuda", "auto"):
        raise ValueError(f"backend must be 'cpu', 'cuda' or 'auto', not {backend!r}")
    if backend == "auto":
        return "cuda" if available() else "cpu"
    if backend == "cuda" and not available():
        raise RuntimeError(_INSTALL)
    return backend


# --- one source, two targets --------------------------------------------------------------------------------

_DEVICE: dict = {}


def device_function(func):
    """``func`` (a Python function or a numba ``njit`` dispatcher) compiled as a CUDA device function.

    The function is rebuilt from its own code with globals in which every
    compiled function it calls is replaced by its device version (recursively),
    so helpers shared with the CPU kernels need no second copy. Closure
    constants (a kernel variant's kind, its membranes) are kept.
    """
    py = getattr(func, "py_func", func)
    if py in _DEVICE:
        return _DEVICE[py]
    from numba.core.registry import CPUDispatcher
    cuda = _cuda()
    env = dict(py.__globals__)
    for name in py.__code__.co_names:
        obj = env.get(name)
        if isinstance(obj, CPUDispatcher):
            env[name] = device_function(obj)
    copy = types.FunctionType(py.__code__, env, py.__name__, py.__defaults__, py.__closure__)
    copy.__qualname__ = py.__qualname__
    _DEVICE[py] = cuda.jit(device=True)(copy)
    return _DEVICE[py]


def _walk_thread(geo, transit, walkers, stepping, recording, out):
    """Kernel: thread i walks walker i (``WALK_WALKER`` is bound per variant by :func:`walk_kernel`); the CUDA
    counterpart of the CPU's loop over walkers (:func:`walker.scaffold.build_kernel`)."""
    pos, homes, seeds = walkers
    out_phases, out_rec, out_time_inside, out_log_weight, out_first, traj, counters, out_field = out
    i = cuda.grid(1)  # noqa: F821 - bound by walk_kernel (the simulator swaps in its own module)
    if i < pos.shape[0]:
        WALK_WALKER(i, geo, transit, stepping, recording, pos, homes, seeds, out_phases, out_rec,  # noqa: F821
                    out_time_inside, out_log_weight, out_first, traj, counters, out_field)


_KERNELS: dict = {}


def walk_kernel(family: KernelFamily, variant: tuple, field: bool = False):
    """The CUDA walk kernel of a family's variant (built on first use).

    Parameters
    ----------
    family : KernelFamily
        Gives the per-walker function (``family.walker_function(*variant)``) and the variant's name.
    variant : tuple
        The variant's compile-time constants (``family.variant(substrate)``).
    field : bool
        With a static field offset's integrals.

    Returns
    -------
    numba CUDA dispatcher
        Launched as ``kernel[blocks, threads](geo, transit, walkers, stepping, recording, out)``.
    """
    key = (family.name, tuple(variant), bool(field))
    if key not in _KERNELS:
        cuda = _cuda()
        body = family.walker_function(*variant, field=bool(field))
        env = {**_walk_thread.__globals__, "WALK_WALKER": device_function(body), "cuda": cuda}
        name = kernel_name(family, variant, field)
        f = types.FunctionType(_walk_thread.__code__, env, name)
        f.__qualname__ = name
        _KERNELS[key] = cuda.jit(f, **_kernel_options())
    return _KERNELS[key]


def _kernel_options() -> dict:
    """No fast-math, and no link-time optimisation: with LTO the final code generation moves into nvJitLink,
    out of reach of the NVVM options :func:`without_fma` sets; without it NVVM writes PTX whose adds and
    multiplies carry an explicit ``.rn``, which ptxas may not fuse either."""
    return {} if simulator() else {"fastmath": False, "lto": False}


@contextmanager
def without_fma():
    """Compile without fused multiply-add contraction (numba-cuda does not expose NVVM's ``-fma`` flag)."""
    if simulator():
        yield
        return
    from numba.cuda.cudadrv import nvvm
    original = nvvm.compile_ir

    def compile_ir(llvmir, **options):
        if not options.get("fastmath"):
            options.setdefault("fma", False)
        return original(llvmir, **options)

    nvvm.compile_ir = compile_ir
    try:
        yield
    finally:
        nvvm.compile_ir = original


@contextmanager
def _quiet_simulator():
    """The simulator runs the walk in Python on numpy scalars, whose uint64 generator arithmetic wraps around
    on purpose (as it does compiled), and whose IEEE divisions by zero give the inf or nan that the analytic
    kernel's branch-free selects then discard (as they do compiled, silently): numpy would warn at each."""
    if not simulator():
        yield
        return
    with warnings.catch_warnings():
        for what in ("overflow encountered", "divide by zero encountered", "invalid value encountered"):
            warnings.filterwarnings("ignore", what, RuntimeWarning)
        yield


def _launch(kernel, n: int, args) -> None:
    # the simulator runs a block's threads as Python threads and polls them all while they run: small blocks
    # keep that polling from starving the walks (the launch shape changes nothing in the results)
    threads = SIMULATOR_THREADS if simulator() else THREADS_PER_BLOCK
    blocks = max(1, -(-n // threads))
    with without_fma(), _quiet_simulator():
        kernel[blocks, threads](*args)


def _to_device(record):
    cuda = _cuda()
    return type(record)(*(cuda.to_device(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
                          for v in record))


def free_memory() -> int | None:
    """Free device memory in bytes (None when the device cannot say: the simulator)."""
    if simulator():
        return None
    free, _ = _cuda().current_context().get_memory_info()
    return int(free)


def batch_size(n: int, per_walker: int, multiple: int = 1) -> int:
    """Walkers per batch: what :data:`MEMORY_SHARE` of the free device memory holds, in whole ``multiple``s."""
    free = free_memory()
    fit = DEFAULT_BATCH if free is None else int(MEMORY_SHARE * free // max(per_walker, 1))
    fit = max(multiple, fit // multiple * multiple)
    return min(n, fit)


def run_walk(family: KernelFamily, variant: tuple, geo, transit, walkers: Walkers, stepping, recording,
             out: Outputs, batch: int | None = None, field: bool = False) -> None:
    """Walk ``walkers`` on the GPU in batches; writes their final state into ``walkers`` and ``out`` (host).

    Parameters
    ----------
    family, variant
        The kernel variant (:func:`walk_kernel`).
    geo, transit, stepping, recording
        Records as for the CPU kernels; copied to the device once.
    walkers : Walkers
        Start state (host arrays); overwritten with the final state.
    out : Outputs
        Host outputs, zeros on entry; filled.
    batch : int, optional
        Walkers per batch (default: sized to the device's free memory).
    field : bool
        Whether the run integrates a static field offset (the kernel variant with it).
    """
    kernel = walk_kernel(family, variant, field)
    N = walkers.pos.shape[0]
    per_walker = sum(a[0].nbytes for a in (*walkers, *out) if a.shape[0] == N and a.size) + 1
    batch = batch_size(N, per_walker) if batch is None else max(1, int(batch))
    geo_d, transit_d, stepping_d, recording_d = (_to_device(r) for r in (geo, transit, stepping, recording))
    n_traj = out.trajectories.shape[0]
    cuda = _cuda()
    for a in range(0, N, batch):
        b = min(N, a + batch)
        w_dev = Walkers(*(cuda.to_device(np.ascontiguousarray(x[a:b])) for x in walkers))
        traj = out.trajectories[min(a, n_traj):min(b, n_traj)]
        o_dev = Outputs(*(cuda.to_device(np.ascontiguousarray(x)) for x in (
            out.phases[a:b], out.displacements[a:b], out.time_inside[a:b], out.log_survival[a:b],
            out.first_transit[a:b], traj, out.counters[a:b], out.field[a:b])))
        _launch(kernel, b - a, (geo_d, transit_d, w_dev, stepping_d, recording_d, o_dev))
        for host, d in zip(walkers, w_dev):
            host[a:b] = d.copy_to_host()
        for host, d in zip((out.phases, out.displacements, out.time_inside, out.log_survival, out.first_transit),
                           o_dev[:5]):
            host[a:b] = d.copy_to_host()
        traj[...] = o_dev.trajectories.copy_to_host()
        out.counters[a:b] = o_dev.counters.copy_to_host()
        out.field[a:b] = o_dev.field.copy_to_host()
    if not simulator():
        cuda.synchronize()


# --- signals on the device ----------------------------------------------------------------------------------

def _block_sums(phases, A, labels, relax, block, partial):
    """Kernel: thread (b, m) sums block b of walkers for measurement m, in the CPU's order
    (see :func:`walker.signals.phase_signals`): w cos phi, w sin phi, w^2 cos 2 phi, w^2 per start compartment."""
    b, m = cuda.grid(2)  # noqa: F821 - bound by phase_sums
    M = A.shape[1]
    if b < partial.shape[0] and m < M:
        N, J = phases.shape
        weighted = relax.shape[0] > 0
        lo = b * block
        hi = min(N, lo + block)
        for i in range(lo, hi):
            phi = 0.0
            for j in range(J):
                phi += phases[i, j] * A[j, m]
            if abs(phi) > REDUCED_RANGE:
                sn = math.sin(phi)
                cs = math.cos(phi)
            else:
                sn, cs = SINCOS(phi)  # noqa: F821 - bound by phase_sums
            c = labels[i]
            if weighted:
                w = relax[i, m]
                partial[b, c, 0, m] += w * cs
                partial[b, c, 1, m] += w * sn
                partial[b, c, 2, m] += w * w * (2.0 * cs * cs - 1.0)
                partial[b, c, 3, m] += w * w
            else:
                partial[b, c, 0, m] += cs
                partial[b, c, 1, m] += sn
                partial[b, c, 2, m] += 2.0 * cs * cs - 1.0
                partial[b, c, 3, m] += 1.0


_SUMS: list = []


def _sums_kernel():
    if not _SUMS:
        cuda = _cuda()
        env = {**_block_sums.__globals__, "SINCOS": device_function(sincos), "cuda": cuda}
        f = types.FunctionType(_block_sums.__code__, env, "block_sums")
        _SUMS.append(cuda.jit(f, **_kernel_options()))
    return _SUMS[0]


def phase_sums(phases: np.ndarray, A: np.ndarray, labels: np.ndarray, relax: np.ndarray, block: int,
               partial: np.ndarray, batch: int | None = None) -> None:
    """The CPU's per-block phase sums (:func:`walker.signals.phase_signals`) on the device, in batches of blocks.

    Parameters
    ----------
    phases : numpy.ndarray
        (N, 3K) phase integrals, m.
    A : numpy.ndarray
        (3K, M) gamma dt amplitudes, rad/m.
    labels : numpy.ndarray
        (N,) int64 start compartment.
    relax : numpy.ndarray
        (N, M) relaxation weights, or (0, M) for none.
    block : int
        Walkers per block.
    partial : numpy.ndarray
        (n_blocks, n_comp, 4, M) zeros; filled.
    batch : int, optional
        Blocks per batch (default: sized to the device's free memory).
    """
    cuda = _cuda()
    kernel = _sums_kernel()
    N, J = phases.shape
    M = A.shape[1]
    n_blocks = partial.shape[0]
    per_block = block * (J + 1 + (M if relax.shape[0] else 0)) * 8 + partial[0].nbytes
    batch = batch_size(n_blocks, per_block) if batch is None else max(1, int(batch))
    A_dev = cuda.to_device(np.ascontiguousarray(A))
    for b0 in range(0, n_blocks, batch):
        b1 = min(n_blocks, b0 + batch)
        lo, hi = b0 * block, min(N, b1 * block)
        rel = relax[lo:hi] if relax.shape[0] else relax
        args = (cuda.to_device(np.ascontiguousarray(phases[lo:hi])), A_dev,
                cuda.to_device(np.ascontiguousarray(labels[lo:hi])), cuda.to_device(np.ascontiguousarray(rel)),
                block, cuda.to_device(np.ascontiguousarray(partial[b0:b1])))
        threads = (1, 1) if simulator() else (4, 32)
        grid = (-(-(b1 - b0) // threads[0]), -(-M // threads[1]))
        with without_fma(), _quiet_simulator():
            kernel[grid, threads](*args)
        partial[b0:b1] = args[-1].copy_to_host()
