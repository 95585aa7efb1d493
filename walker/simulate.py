"""``simulate()``: walkers through a substrate under a scheme, returning signals with errors.

A run is five stages, each a function of its own: the plan (checked
arguments, time grid, sub-steps, records: :mod:`walker.plan`), the start
(positions the substrate samples, per-walker random streams), the kernel
(:mod:`walker.dispatch`), the signals (:mod:`walker.signals`), and the
ground truth with the provenance.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

import sequences
from substrates import Substrate, WalkerStart, residence_times

from . import cuda_backend
from .dispatch import KernelRun, run_kernel
from .membranes import MAX_TRANSIT_PROBABILITY
from .plan import RunPlan, check_seed, plan_run
from .provenance import provenance
from .result import SimulationResult
from .rng import walker_seeds
from .signals import displacement_moments, phase_signals, relaxation_weights

log = logging.getLogger(__name__)


def simulate(substrate: Substrate, scheme: sequences.Scheme, n_walkers: int = 100_000,
             diffusivity: float | dict | None = None, n_steps: int = 1000, seed: int = 0,
             start: str | None = None, *, t2: float | dict | None = None, gaussian_steps: bool = False,
             record_times=None, n_trajectories: int = 0, target_stderr: float | None = None,
             check_every_step: bool = False, max_transit_probability: float = MAX_TRANSIT_PROBABILITY,
             transit: str = "corrected", parallel: bool = True, backend: str = "cpu",
             field=None) -> SimulationResult:
    """Simulate the diffusion signal of a substrate under a scheme by Monte Carlo.

    Parameters
    ----------
    substrate : Substrate
        Where the walkers diffuse (see :mod:`substrates`).
    scheme : sequences.Scheme
        The encoding; it is step-averaged onto ``n_steps`` equal steps.
    n_walkers : int
        Number of walkers N; the standard error falls as 1/sqrt(N).
    diffusivity : float or dict
        Intrinsic diffusivity D in m^2/s (2e-9 for 2 um^2/ms), or one per
        compartment, ``{"intra": 1e-9, "extra": 2e-9}``. May be left out for a
        free substrate that carries its own diffusion tensor.
    n_steps : int
        Time steps T over the scheme's duration; the fixed step length is
        sqrt(6 D dt) with dt = duration / T. Keep it below the smallest
        feature / 6 (a warning says so, with an n_steps that would do);
        curved walls need about R/20 per axis RMS for sub-SE bias at high b.
    seed : int
        Root seed: positions and per-walker random streams derive from it, so
        results are bit-identical for any number of threads.
    start : {"intra", "extra", "uniform"}, optional
        Where walkers start: inside the primitives, outside them, or uniformly
        in the box (each walker then counts for the compartment it lands in).
        Default: "intra" where the substrate has an intra compartment, else
        "uniform" (free space).
    t2 : float or dict, optional
        Transverse relaxation time T2 in s, one value or one per compartment
        (``{"intra": 0.07, "extra": 0.1}``). Each walker's signal is weighted
        by exp(-integral of 1/T2 along its own path up to the echo time of the
        measurement, ``scheme.echo_time``), so relaxation and exchange
        interact correctly. Default: no relaxation. Walls with a surface
        relaxivity (the substrate's ``relaxivity=``) weight each walker further
        by the survival factors of its wall hits up to the echo: the b = 0
        signal is then the surviving magnetisation, not renormalised to 1.
    gaussian_steps : bool
        Gaussian steps (each component N(0, 2 D dt)) instead of fixed-length ones.
    record_times : array_like, optional
        Times (s) at which to record displacements, MSD and kurtosis; each must
        fall on the step grid.
    n_trajectories : int
        Keep the full trajectories of this many walkers (for teaching plots).
    target_stderr : float, optional
        Warn when N is too small to reach this standard error (of the
        normalised, dimensionless signal).
    check_every_step : bool
        Test containment after every step (slower) instead of at the end only.
    max_transit_probability : float
        Permeable membranes: each time step is split into the fewest equal
        sub-steps that keep the first-order transit probability per hit below
        this (the realised permeability is then within ~1 % of kappa). Phases
        still use the ``n_steps`` grid.
    transit : {"corrected", "first_order"}
        Transit probability per hit: with the finite-step correction
        (default), or the textbook first-order (2/3) kappa l / D, whose
        permeability error shrinks only in proportion to the step (for
        convergence studies and teaching).
    parallel : bool
        Use the multi-threaded kernel (``False``: the serial build of the same code).
    backend : {"cpu", "cuda", "auto"}
        Where the walk and the signal sums run: the CPU (default), an NVIDIA GPU
        through numba-cuda (``pip install 'diffwalk[gpu]'``; one walker per
        thread, the same per-walker code and random streams, so the result is
        the CPU's for the same seed), or "auto": CUDA when a GPU is usable. The
        provenance records the backend and the device.
    field : substrates.Field, optional
        A static field offset dB(x) along B0 (T; :func:`substrates.susceptibility_field`,
        :func:`substrates.fourier_field`, :func:`substrates.field_map`, :func:`substrates.background_gradient`)
        in the substrate's local frame: each walker adds gamma * integral of s(t) dB(x(t)) dt to its phase,
        with s(t) the refocusing signs of its measurement (``scheme.refocusing``: a spin echo refocuses a
        static offset, a gradient echo, ``scheme.with_refocusing([])``, does not). In free space, where
        walkers start at the origin, a periodic field is seen from points spread uniformly over its period
        (one per walker, :func:`walker.dispatch.field_spread`). Default: none.

    Returns
    -------
    SimulationResult

    Examples
    --------
    >>> import numpy as np, sequences, substrates, walker
    >>> scheme = sequences.pgse(delta=10e-3, Delta=30e-3, bvalues=np.array([0, 1e9, 2e9]),
    ...                         directions=np.eye(3))
    >>> res = walker.simulate(substrates.cylinder(radius=5e-6), scheme, n_walkers=10_000,
    ...                       diffusivity=2e-9, n_steps=1000, seed=0)
    >>> res.signal.shape, res.escapes
    ((3,), 0)
    """
    backend = cuda_backend.resolve_backend(backend)
    plan = plan_run(substrate, scheme, n_walkers, diffusivity, n_steps, t2=t2, gaussian_steps=gaussian_steps,
                    record_times=record_times, n_trajectories=n_trajectories, target_stderr=target_stderr,
                    max_transit_probability=max_transit_probability, transit=transit, field=field)
    seed = check_seed(seed)
    start = substrate.default_start if start is None else start
    walkers, seeds = start_walkers(substrate, start, plan.n_walkers, seed)
    groups = substrate.signal_groups(walkers.home, walkers.positions)  # before the walk: where walkers start
    run = run_kernel(substrate, plan, walkers, seeds, check_every_step=check_every_step, parallel=parallel,
                     backend=backend)
    R = substrate.rotation
    relax = relaxation_weights(run.out.time_inside, plan, run.out.log_survival)
    fph = run.out.field[:, 3:]
    sig = phase_signals(run.out.phases, walkers.labels, walkers.names, plan, R, relax, parallel, backend, fph)
    grp = None if groups is None else phase_signals(run.out.phases, groups[0], groups[1], plan, R, relax,
                                                    parallel, backend, fph)
    disp, msd, kurt = displacement_moments(run.out.displacements, plan, R)
    counters = run.out.counters
    permeable = substrate.permeable
    first = run.out.first_transit
    return SimulationResult(
        signal=sig.signal, stderr=sig.stderr, signal_imag=sig.imag, compartment_signals=sig.compartment_signals,
        compartment_stderr=sig.compartment_stderr, compartment_counts=sig.compartment_counts,
        ground_truth=ground_truth(substrate, plan, start, sig.fractions), scheme=plan.played,
        discrete_bvalues=np.trace(plan.played.discrete_btensors("trapezoid"), axis1=1, axis2=2),
        record_times=plan.record_times, displacements=disp, msd=msd, kurtosis=kurt,
        trajectories=lab_trajectories(substrate, walkers, run, plan),
        reflections=int(counters[:, 0].sum()), truncated_steps=int(counters[:, 1].sum()),
        escapes=count_escapes(substrate, run, plan),
        provenance=provenance(substrate=substrate, plan=plan, seed=seed, start=start, parallel=parallel,
                              wall_time=run.wall_time, backend=backend,
                              transit_max=float(max(np.max(run.transit.p_out), np.max(run.transit.p_in))),
                              absorption_max=float(1.0 - np.exp(min(run.transit.keep_out.min(),
                                                                    run.transit.keep_in.min())))),
        transits=int(counters[:, 3].sum()),
        first_transit_times=np.where(first >= 0, first * plan.dt, np.nan) if permeable else None,
        final_fractions=substrate.region_fractions(run.walkers.home) if permeable else {},
        final_positions=run.final_positions() @ R.T,
        group_signals=grp.compartment_signals if grp else {}, group_stderr=grp.compartment_stderr if grp else {},
        group_counts=grp.compartment_counts if grp else {})


def start_walkers(substrate: Substrate, start: str, n: int, seed: int) -> tuple[WalkerStart, np.ndarray]:
    """Start positions (sampled by the substrate) and per-walker generator states, both derived from ``seed``.

    The root seed spawns two independent branches: one for the positions, one
    for the walks, so the walk of walker i does not depend on how many draws
    the position sampling needed.

    Parameters
    ----------
    substrate : Substrate
        Samples the positions (:meth:`substrates.Substrate.sample_positions`).
    start : str
        Start compartment: "intra", "extra", "uniform" or a mesh region name.
    n : int
        Number of walkers N.
    seed : int
        Root seed (non-negative).

    Returns
    -------
    walkers : substrates.WalkerStart
        (N, 3) start positions in m (local frame), home images or components,
        compartment labels.
    seeds : numpy.ndarray
        (N, 2) uint64 per-walker generator states.
    """
    ss_pos, ss_walk = np.random.SeedSequence(seed).spawn(2)
    walkers = substrate.sample_positions(start, n, np.random.default_rng(ss_pos))
    return walkers, walker_seeds(ss_walk, n)


def count_escapes(substrate: Substrate, run: KernelRun, plan: RunPlan) -> int:
    """Walkers found outside the compartment they were tracked in (must be 0); logs an error otherwise.

    The kernel's own checks count, and the family's exact check at the end
    (meshes locate every final position against the component the walker was
    tracked in).
    """
    counters = run.out.counters
    family = run.family
    bad = (counters[:, 2] > 0) | family.misplaced(substrate, run.walkers.pos, run.walkers.home)
    if family.untouched_warning and int(counters[:, 0].sum()) == 0 and plan.n_walkers * plan.n_steps >= 10_000:
        warnings.warn(family.untouched_warning, stacklevel=3)
    escapes = int(np.count_nonzero(bad))
    if escapes:
        log.error("%d walkers were found outside the compartment they were in: this is a bug, please report it",
                  escapes)
    return escapes


def lab_trajectories(substrate: Substrate, walkers: WalkerStart, run: KernelRun, plan: RunPlan):
    """(n, T + 1, 3) lab-frame positions of the first walkers at every grid step, or None."""
    n = plan.n_trajectories
    if not n:
        return None
    origin = substrate.absolute_positions(walkers.positions[:n], walkers.home[:n])
    return (run.out.trajectories + origin[:, None, :]) @ substrate.rotation.T


def ground_truth(substrate: Substrate, plan: RunPlan, start: str, fractions: dict) -> dict:
    """The substrate's ground truth plus what the run adds: diffusivity, T2, exchange times, start, fractions."""
    gt = dict(substrate.ground_truth())
    D_comp = plan.diffusivities
    if substrate.diffusion_tensor is not None:
        gt["diffusivity"] = None
    elif len(set(D_comp.values())) == 1:
        gt["diffusivity"] = plan.reference_diffusivity
    else:
        gt["diffusivity"] = dict(D_comp)
    if plan.t2 is not None:
        gt["t2"] = dict(plan.t2)
        gt["t2_signal_fractions"] = t2_signal_fractions(substrate, plan, start)
    gt.update(residence_times(substrate, D_comp))
    # what the signal is made of: with start="intra" the signal fraction is 1, whatever the volume fraction
    gt["start"] = start
    gt["signal_fractions"] = fractions
    return gt


def t2_signal_fractions(substrate: Substrate, plan: RunPlan, start: str) -> dict:
    """Each compartment's share of the b = 0 signal at each echo time without exchange: f_c exp(-TE / T2_c),
    normalised (f_c: volume fractions for a uniform start; the myelin water fraction of myelinated axons).

    Returns
    -------
    dict
        ``echo_times`` (s, the scheme's distinct TEs) and compartment -> list of fractions (dimensionless).
    """
    base = substrate.volume_fractions() if start == "uniform" else {start: 1.0}
    te = np.unique(np.round(np.asarray(plan.played.echo_time, dtype=float), 12))
    w = {c: f * np.exp(-te / plan.t2[c]) for c, f in base.items() if c in plan.t2}
    total = sum(w.values())
    return {"echo_times": te.tolist(), **{c: (v / total).tolist() for c, v in w.items()}}


__all__ = ["simulate", "start_walkers", "count_escapes", "lab_trajectories", "ground_truth", "t2_signal_fractions"]
