"""Stage 3 of a simulation: the kernel's records from a substrate and a plan, and the call of the kernel.

The substrate's family (:func:`walker.families.family_of`) gives the geometry
record, the membranes, the step scales and the kernel: analytic substrates
(free, planes, cylinders, spheres) walk in :mod:`walker.cells_kernel`, meshes
in :mod:`walker.mesh_kernel`, sphere unions in :mod:`walker.union_kernel`. All
take the same records (:mod:`walker.records`) apart from the geometry, and all
get their transit probabilities from :func:`transit_tables`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from substrates import FREE, Substrate, WalkerStart

from . import cuda_backend
from .families import KernelFamily, family_of
from .membranes import survival_probability, transit_probability
from .plan import RunPlan
from .records import Outputs, Recording, Stepping, Transit, Walkers
from .scaffold import build_kernel, ensure_compiled


@dataclass(frozen=True, eq=False)
class KernelRun:
    """What the kernel leaves behind.

    Attributes
    ----------
    walkers : Walkers
        Final positions (kernel frame: relative to the home image inside analytic primitives), compartments
        (image or component, -1 none) and generator states.
    out : Outputs
        Phase integrals, records and counters.
    transit : Transit
        The transit probabilities used.
    wall_time : float
        Seconds spent in the kernel.
    geometry : tuple
        The geometry record the kernel walked (the family's: CellGeometry, MeshGeometry, UnionGeometry, ...).
    family : KernelFamily
        The family that walked it.
    """

    walkers: Walkers
    out: Outputs
    transit: Transit
    wall_time: float
    geometry: tuple
    family: KernelFamily

    def final_positions(self) -> np.ndarray:
        """(N, 3) final local-frame positions in the box frame, m (walkers inside an analytic primitive carry
        positions relative to its image; the family adds the image's centre back)."""
        return self.family.box_positions(self.geometry, self.walkers.pos, self.walkers.home)


def run_kernel(substrate: Substrate, plan: RunPlan, start: WalkerStart, seeds: np.ndarray, *,
               check_every_step: bool = False, parallel: bool = True, backend: str = "cpu",
               batch: int | None = None) -> KernelRun:
    """Walk the walkers of ``start`` (with generator states ``seeds``) through ``substrate`` as ``plan`` says.

    Parameters
    ----------
    substrate : Substrate
    plan : RunPlan
    start : WalkerStart
        Start positions as the substrate sampled them (not modified).
    seeds : numpy.ndarray
        (N, 2) uint64 generator states (not modified).
    check_every_step : bool
        Test containment after every step.
    parallel : bool
        The multi-threaded build (``False``: the serial build of the same function); CPU only.
    backend : {"cpu", "cuda"}
        Where the walk runs: numba's CPU build, or the CUDA build of the same per-walker function
        (:mod:`walker.cuda_backend`), which replays the CPU walk of the same seeds.
    batch : int, optional
        CUDA: walkers per batch (default: sized to the device's free memory).

    Returns
    -------
    KernelRun
        Final walker states (positions in m), phase integrals (m), records and counters,
        the transit probabilities used and the kernel's wall time in s.
    """
    if backend not in ("cpu", "cuda"):
        raise ValueError(f"backend must be 'cpu' or 'cuda' here, not {backend!r}")
    family = family_of(substrate)
    if backend == "cuda" and not family.cuda:
        raise ValueError(f"backend='cuda' does not walk {family.describe(substrate)} yet; use backend='cpu'")
    walkers = Walkers(start.positions.copy(), start.home.copy(), seeds.copy())
    transit = transit_tables(substrate, plan)
    stepping = Stepping(plan.n_steps, plan.substeps, plan.step_matrix, plan.gaussian,
                        family.step_scales(substrate, plan))
    W = phase_weights(plan.played.shapes.shapes)
    recording = Recording(W, plan.record_steps, plan.echo_steps, bool(check_every_step), plan.region_weights,
                          *field_record(plan))
    out = kernel_outputs(plan, W.shape[0])
    if plan.field is not None:  # the field is evaluated at start + displacement: the start in the box frame
        out.field[:, :3] = substrate.absolute_positions(start.positions, start.home)
        if getattr(substrate, "kind", None) == FREE:
            out.field[:, :3] += field_spread(seeds, plan.field.box)
        # the kernels add grid points 1..T; the start's own term (weight FV[:, 0]) is added here
        out.field[:, 3:] = plan.field.evaluate(out.field[:, :3])[:, None] * recording.field_weights[:, 0]
    geo = family.geometry(substrate, plan)
    variant = family.variant(substrate)
    args = (geo, transit, walkers, stepping, recording, out)
    if backend == "cuda":
        t0 = time.perf_counter()
        cuda_backend.run_walk(family, variant, *args, batch=batch, field=plan.field is not None)
        return KernelRun(walkers, out, transit, time.perf_counter() - t0, geo, family)
    walk = build_kernel(family, variant, parallel, field=plan.field is not None)
    ensure_compiled(walk, args, family.describe(substrate), expected_s=15.0)
    t0 = time.perf_counter()
    walk(*args)
    return KernelRun(walkers, out, transit, time.perf_counter() - t0, geo, family)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Steele, Lea & Flood's splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def field_spread(seeds: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Where free walkers sit in a periodic field: uniform over its period, one point per walker.

    Free walkers start at the origin (displacements are what free diffusion measures), but a periodic field
    seen from one point would dephase every walker alike; the uniform ensemble over one period is the
    physical one. Each walker's point is hashed from its own generator state (splitmix64 of the state's
    second word with a per-axis constant, a stream the walk never draws), so it does not depend on the
    backend, the threads or how walkers are batched.

    Parameters
    ----------
    seeds : numpy.ndarray
        (N, 2) uint64 per-walker generator states.
    box : numpy.ndarray
        (3,) the field's period, m (0 along an axis: not periodic, no spread).

    Returns
    -------
    numpy.ndarray
        (N, 3) offsets in m, in [0, box) along the periodic axes and 0 along the others.
    """
    out = np.zeros((len(seeds), 3))
    for k in range(3):
        if box[k] > 0:
            h = _splitmix64(seeds[:, 1] ^ np.uint64(0xD1B54A32D192ED03 * (k + 1) % 2**64))
            out[:, k] = (h >> np.uint64(11)).astype(float) * 2.0**-53 * box[k]
    return out


def phase_weights(shapes: np.ndarray) -> np.ndarray:
    """Weights of the positions at grid points for the trapezoid phase rule.

    sum_s f_s (r_s + r_{s+1}) / 2 = sum_t W_t r_t with W_t = (f_{t-1} + f_t) / 2.

    Parameters
    ----------
    shapes : numpy.ndarray
        (K, T) step values of the temporal shapes.

    Returns
    -------
    numpy.ndarray
        (K, T + 1) weights.
    """
    K, T = shapes.shape
    W = np.zeros((K, T + 1))
    W[:, :-1] += 0.5 * shapes
    W[:, 1:] += 0.5 * shapes
    return W


def transit_tables(substrate: Substrate, plan: RunPlan) -> Transit:
    """What a wall hit does, per membrane the kernel knows: transit probabilities and surface-relaxation survival.

    A membrane is a primitive image (cylinders, spheres), the plane stack
    (planes) or a component (meshes); its inside and outside regions give the
    diffusivities on both sides (:func:`walker.membranes.transit_probability`,
    :func:`walker.membranes.survival_probability`).

    Parameters
    ----------
    substrate : Substrate
        Its ``permeability`` (m/s, [outward, inward] per membrane) and
        ``relaxivity`` (m/s per membrane) are read.
    plan : RunPlan
        Gives the sub-step duration (s), the diffusivities (m^2/s) and the
        transit rule.

    Returns
    -------
    Transit
        Named tuple ``(p_out, p_in, keep_out, keep_in)`` of (Q,) float arrays:
        the probability (dimensionless, in [0, 1]) that a hit from inside /
        from outside crosses membrane q, and the log of the fraction of the
        magnetisation a hit from inside / outside keeps (<= 0; 0 without
        relaxivity). One entry for planes and free space.
    """
    D = plan.region_diffusivities
    n, kappa, rho, inner, outer = family_of(substrate).membranes(substrate, plan)
    corrected = plan.transit == "corrected"

    def per_membrane(values, columns):
        out = np.zeros((n, columns))
        if len(values):
            out[:] = np.reshape(values, (n, columns))
        return out

    kappa = per_membrane(kappa, 2)
    rho = per_membrane(rho, 1)[:, 0]
    tables = []
    if substrate.permeable:
        tables += [transit_probability(kappa[:, 0], plan.dt_sub, D[inner], D[outer], plan.gaussian, corrected),
                   transit_probability(kappa[:, 1], plan.dt_sub, D[outer], D[inner], plan.gaussian, corrected)]
    else:
        tables += [np.zeros(n), np.zeros(n)]
    if substrate.relaxing:
        with np.errstate(divide="ignore"):
            tables += [np.log(survival_probability(rho, plan.dt_sub, D[inner], plan.gaussian, corrected)),
                       np.log(survival_probability(rho, plan.dt_sub, D[outer], plan.gaussian, corrected))]
    else:
        tables += [np.zeros(n), np.zeros(n)]
    return Transit(*(np.ascontiguousarray(np.atleast_1d(t), float) for t in tables))


def field_record(plan: RunPlan) -> tuple:
    """The recording's field entries (weights, map, sources, params): empty arrays of the same types without
    a field, so that every run of a kernel variant has one signature."""
    if plan.field is None:
        return (np.zeros((0, plan.n_steps + 1)), np.zeros((0, 0, 0)), np.zeros((0, 11)), np.zeros(17))
    f = plan.field
    return (phase_weights(plan.field_shapes), f.values, f.sources, f.params)


def kernel_outputs(plan: RunPlan, K: int) -> Outputs:
    """Zeroed per-walker outputs of a run with K temporal shapes (see :class:`walker.records.Outputs`)."""
    N = plan.n_walkers
    n_field = 3 + plan.field_shapes.shape[0] if plan.field is not None else 0
    return Outputs(phases=np.zeros((N, K, 3)), displacements=np.zeros((N, plan.record_times.size, 3)),
                   time_inside=np.zeros((N, plan.echo_steps.size)),
                   log_survival=np.zeros((N, plan.echo_steps.size)), first_transit=np.zeros(N),
                   trajectories=np.zeros((plan.n_trajectories, plan.n_steps + 1, 3)),
                   counters=np.zeros((N, 4), dtype=np.int64), field=np.zeros((N, n_field)))
