"""Stage 3 of a simulation: the kernel's records from a substrate and a plan, and the call of the kernel.

Analytic substrates (free, planes, cylinders, spheres) go to
:mod:`walker.cells_kernel`, meshes to :mod:`walker.mesh_kernel`; both take the
same records (:mod:`walker.records`) apart from the geometry, and both get
their transit probabilities from :func:`transit_tables`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from substrates import CYLINDERS, FREE, PLANES, SPHERES, MeshSubstrate, SphereUnion, Substrate, WalkerStart

from . import cells_kernel, cuda_backend, mesh_kernel, union_kernel
from .membranes import survival_probability, transit_probability
from .plan import RunPlan
from .records import CellGeometry, MeshGeometry, Outputs, Recording, Stepping, Transit, UnionGeometry, Walkers
from .walkers import ensure_compiled


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
    geometry : CellGeometry or MeshGeometry
        The geometry record the kernel walked.
    """

    walkers: Walkers
    out: Outputs
    transit: Transit
    wall_time: float
    geometry: tuple

    def final_positions(self) -> np.ndarray:
        """(N, 3) final local-frame positions in the box frame (walkers inside an analytic primitive carry
        positions relative to its image; this adds the image's centre back)."""
        out = np.array(self.walkers.pos, copy=True)
        if isinstance(self.geometry, CellGeometry):
            inside = self.walkers.home >= 0
            out[inside] += self.geometry.centers[self.walkers.home[inside]]
        return out


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
    walkers = Walkers(start.positions.copy(), start.home.copy(), seeds.copy())
    transit = transit_tables(substrate, plan)
    stepping = Stepping(plan.n_steps, plan.substeps, plan.step_matrix, plan.gaussian, _step_scales(substrate, plan))
    W = phase_weights(plan.played.shapes.shapes)
    recording = Recording(W, plan.record_steps, plan.echo_steps, bool(check_every_step), plan.region_weights)
    out = kernel_outputs(plan, W.shape[0])
    membranes = "permeable" if substrate.permeable else "impermeable"
    if isinstance(substrate, SphereUnion):
        if backend != "cpu":
            raise ValueError("backend='cuda' does not walk sphere unions yet; use backend='cpu'")
        if plan.gaussian:
            raise ValueError("sphere unions take fixed-length steps (their cell lists hold every sphere within "
                             "one step); leave gaussian_steps off")
        g = substrate.union_grid(plan.step_length)
        geo = UnionGeometry(g.centers, g.radii, g.lo, g.h, g.n, substrate.box, g.start, g.items, g.deep)
        walk = union_kernel.union_kernel(parallel)
        what = "sphere unions"
    elif isinstance(substrate, MeshSubstrate):
        geo = mesh_geometry(substrate, plan)
        walk = mesh_kernel.mesh_kernel(substrate.permeable, parallel)
        what = f"meshes, {membranes}"
    else:
        geo = cell_geometry(substrate, plan)
        walk = cells_kernel.cells_kernel(substrate.kind, substrate.permeable, parallel)
        what = substrate.name if substrate.kind == FREE else f"{substrate.name}, {membranes}"
    args = (geo, transit, walkers, stepping, recording, out)
    if backend == "cuda":
        t0 = time.perf_counter()
        mesh = isinstance(substrate, MeshSubstrate)
        cuda_backend.run_walk(mesh, 0 if mesh else substrate.kind, substrate.permeable, *args, batch=batch)
        return KernelRun(walkers, out, transit, time.perf_counter() - t0, geo)
    if backend != "cpu":
        raise ValueError(f"backend must be 'cpu' or 'cuda' here, not {backend!r}")
    ensure_compiled(walk, args, what, expected_s=15.0)
    t0 = time.perf_counter()
    walk(*args)
    return KernelRun(walkers, out, transit, time.perf_counter() - t0, geo)


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
    D = np.array([plan.diffusivities[r] for r in plan.regions])
    extra = len(plan.regions) - 1  # the outside of outermost walls; the one region of a single-region substrate
    kappa = substrate.permeability
    rho = substrate.relaxivity
    if isinstance(substrate, SphereUnion):
        return Transit(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1))  # impermeable, not relaxing
    if isinstance(substrate, MeshSubstrate):
        n = substrate.n_components
        inner = substrate.depth
        outer = np.where(substrate.parent >= 0, substrate.depth[np.maximum(substrate.parent, 0)], extra)
    elif substrate.kind in (CYLINDERS, SPHERES):
        owner = substrate.walk_grid(plan.step_length).owner
        n = len(owner)
        kappa = kappa[owner] if len(kappa) else kappa
        rho = rho[owner] if len(rho) else rho
        inner = np.zeros(n, dtype=np.int64)
        outer = np.full(n, extra)
    else:  # planes (one membrane for the whole stack) and free space (none)
        n = 1
        kappa, rho = kappa[:1], rho[:1]
        inner = outer = np.zeros(1, dtype=np.int64)
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


def _step_scales(substrate: Substrate, plan: RunPlan) -> np.ndarray:
    """Step scale per region: sqrt(D_region / D_reference) (analytic kernels: inside, outside)."""
    D = np.array([plan.diffusivities[r] for r in plan.regions])
    if isinstance(substrate, MeshSubstrate):
        return np.sqrt(D / plan.reference_diffusivity)
    return np.array([1.0, math.sqrt(D[-1] / D[0])])


def cell_geometry(substrate: Substrate, plan: RunPlan) -> CellGeometry:
    """The analytic kernel's geometry record: primitive images and the walk grid sized for the step."""
    spacing = float(substrate.spacing) if substrate.kind == PLANES else 0.0
    if substrate.kind in (CYLINDERS, SPHERES):
        g = substrate.walk_grid(plan.step_length)
        return CellGeometry(substrate.kind, spacing, g.box, g.lo, g.inv_h, g.n, g.centers, g.radii, g.start,
                            g.items, g.clear, g.reach)
    one = np.ones(3)
    return CellGeometry(substrate.kind, spacing, np.zeros(3), np.zeros(3), one, np.ones(3, dtype=np.int64),
                        np.zeros((1, 3)), np.zeros(1), np.zeros(2, dtype=np.int64), np.zeros(1, dtype=np.int64),
                        np.full(1, np.inf), 1.0)


def mesh_geometry(substrate: MeshSubstrate, plan: RunPlan) -> MeshGeometry:
    """The mesh kernel's geometry record, with the stand-off eta after a hit.

    eta is 1e-10 of the shortest step, and at least 64 ulp of the largest
    coordinate, so that a walker stopped eta before a plane is strictly on its
    side after rounding (see :mod:`walker.mesh_kernel`).
    """
    g = substrate.grid
    ell_min = math.sqrt(6.0 * min(plan.diffusivities.values()) * plan.dt_sub)
    coord = float(np.max(np.abs(g.tri[:, 0:3]))) + float(np.max(g.n * g.h))
    eta = max(1e-10 * ell_min, 64.0 * float(np.spacing(coord)))
    return MeshGeometry(g.tri, g.comp, g.face, g.lo, g.h, g.n, g.box, g.start, g.items, g.clear, g.cstart, g.citems,
                        substrate.depth, substrate.parent, len(plan.regions), eta)


def kernel_outputs(plan: RunPlan, K: int) -> Outputs:
    """Zeroed per-walker outputs of a run with K temporal shapes (see :class:`walker.records.Outputs`)."""
    N = plan.n_walkers
    return Outputs(phases=np.zeros((N, K, 3)), displacements=np.zeros((N, plan.record_times.size, 3)),
                   time_inside=np.zeros((N, plan.echo_steps.size)),
                   log_survival=np.zeros((N, plan.echo_steps.size)), first_transit=np.zeros(N),
                   trajectories=np.zeros((plan.n_trajectories, plan.n_steps + 1, 3)),
                   counters=np.zeros((N, 4), dtype=np.int64))
