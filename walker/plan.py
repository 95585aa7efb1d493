"""Stage 1 of a simulation: from the user's arguments to a checked :class:`RunPlan`.

Diffusivities and relaxation per compartment, the time grid the scheme is
played on, sub-steps for permeable membranes, the step length and its warning,
record and echo-time grid indices, and the memory the run will need: every
check a run can fail is made here, before any walker moves.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

import numpy as np

import sequences
from sequences import check_count
from substrates import Field, Substrate

from .families import family_of
from .membranes import compartment_values, substeps_for

#: walkers per block of the phase-to-signal pass, and the most blocks (bounds its (blocks, compartments, 4, M)
#: partial sums)
PHASE_BLOCK = 256
MAX_PHASE_BLOCKS = 2048
#: warnings from the stages point at the caller of simulate() (simulate -> plan_run -> helper -> warn)
_STACK = 4


@dataclass(frozen=True, eq=False)
class RunPlan:
    """Everything a run needs besides the substrate and the seed, checked and in SI units.

    Made by :func:`plan_run`; the fields are also the attributes of the
    (frozen) instance.

    Parameters
    ----------
    n_walkers, n_steps : int
        N walkers and T grid steps.
    played : sequences.Scheme
        The scheme on the walker's time grid (step-averaged onto ``n_steps`` steps).
    aligned : bool
        Whether every waveform edge falls on a step boundary.
    substeps : int
        Sub-steps per grid step (permeable membranes, surface relaxivity).
    dt_sub : float
        Sub-step duration in s.
    step_length : float
        sqrt(6 D_max dt_sub) in m.
    regions : list of str
        Compartments a walker can be in (the substrate's region names).
    diffusivities : dict
        Region -> D in m^2/s.
    reference_diffusivity : float
        The D the step matrix is built for (the first region's; others rescale it), m^2/s.
    step_matrix : numpy.ndarray
        (3, 3) sub-step matrix in m (local frame): displacement = scale * matrix @ u,
        with u a dimensionless unit (or standard normal) vector.
    t2 : dict or None
        Region -> T2 in s.
    region_weights : numpy.ndarray
        (R,) what a grid step in each region adds to the kernel's "time
        inside": 1 in the regions inside components and 0 outside (the time
        spent inside, the T2 weights then follow from two rates); where nested
        mesh regions have different T2, (1/T2_region - 1/T2_extra) dt, so that
        it sums the relaxation exponent itself (dimensionless).
    gaussian : bool
        Gaussian steps instead of fixed-length ones.
    record_times : numpy.ndarray
        (R,) record times in s, as given.
    record_steps : numpy.ndarray
        (R,) grid indices of the record times, sorted; ``record_order`` maps them back.
    record_order : numpy.ndarray
        (R,) permutation that sorts the record times: ``record_steps[i]`` is
        the grid index of ``record_times[record_order[i]]``.
    echo_steps : numpy.ndarray
        (E,) grid indices around each echo time at which the time spent inside and the surface-relaxation
        weight are recorded (with T2 or surface relaxivity; else empty).
    n_trajectories : int
        Walkers whose full trajectories are kept.
    transit : str
        "corrected" or "first_order".
    field : substrates.Field or None
        The static field offset (local frame), None for none.
    field_shapes : numpy.ndarray
        (F, T) distinct refocusing-sign patterns of the played measurements (F = 0 without a field).
    field_index : numpy.ndarray
        (M,) int64: the pattern of each measurement.
    """

    n_walkers: int
    n_steps: int
    played: sequences.Scheme
    aligned: bool
    substeps: int
    dt_sub: float
    step_length: float
    regions: list
    diffusivities: dict
    reference_diffusivity: float
    step_matrix: np.ndarray
    t2: dict | None
    region_weights: np.ndarray
    gaussian: bool
    record_times: np.ndarray
    record_steps: np.ndarray
    record_order: np.ndarray
    echo_steps: np.ndarray
    n_trajectories: int
    transit: str
    field: Any = None
    field_shapes: np.ndarray = dataclass_field(default_factory=lambda: np.zeros((0, 0)))
    field_index: np.ndarray = dataclass_field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def dt(self) -> float:
        """Grid step in s."""
        return self.played.dt

    @property
    def region_diffusivities(self) -> np.ndarray:
        """(R,) diffusivity of each region in ``regions`` order, m^2/s (what per-region kernel tables index)."""
        return np.array([self.diffusivities[r] for r in self.regions])


def plan_run(substrate: Substrate, scheme: sequences.Scheme, n_walkers, diffusivity, n_steps, *, t2, gaussian_steps,
             record_times, n_trajectories, target_stderr, max_transit_probability, transit,
             field=None) -> RunPlan:
    """Check the arguments of :func:`walker.simulate` and derive the run's plan (see there for their meaning).

    Parameters
    ----------
    substrate : Substrate
        Where the walkers diffuse.
    scheme : sequences.Scheme
        The encoding (gradients in T/m, times in s); resampled onto ``n_steps`` steps.
    n_walkers : int
        Number of walkers N.
    diffusivity : float or dict or None
        Diffusivity in m^2/s, one value or one per compartment (None: the
        free substrate's own diffusion tensor).
    n_steps : int
        Time steps T over the scheme's duration.
    t2 : float or dict or None
        Transverse relaxation time T2 in s, one value or one per compartment
        (None: no relaxation).
    gaussian_steps : bool
        Gaussian steps instead of fixed-length ones.
    record_times : array_like or None
        (R,) times in s at which to record displacements; each on the step grid.
    n_trajectories : int
        Walkers whose full trajectories are kept.
    target_stderr : float or None
        Warn when N is too small to reach this standard error (dimensionless).
    max_transit_probability : float
        Largest first-order transit (or surface-absorption) probability per
        wall hit (dimensionless); sets the sub-steps.
    transit : {"corrected", "first_order"}
        Transit probability rule (see :func:`walker.transit_probability`).
    field : substrates.Field, optional
        A static field offset (T, the substrate's frame); refused when its period is not the substrate's.

    Returns
    -------
    RunPlan
        The checked plan: step length in m, (sub-)step durations in s,
        diffusivities in m^2/s, T2 in s.

    Raises
    ------
    TypeError
        If ``substrate`` or ``scheme`` is of the wrong type.
    ValueError
        If an argument is out of range or in a wrong unit (the message says which).
    """
    if not isinstance(substrate, Substrate):
        raise TypeError(f"substrate must be a substrates.Substrate, got {type(substrate).__name__}")
    if not isinstance(scheme, sequences.Scheme):
        raise TypeError(f"scheme must be a sequences.Scheme, got {type(scheme).__name__}")
    N = check_count(n_walkers, "n_walkers")
    T = check_count(n_steps, "n_steps")
    family = family_of(substrate)
    regions = substrate.region_names
    D_comp, D_ref, D_local = _diffusivities(substrate, diffusivity, regions)
    t2_comp = _check_t2(t2, regions, "region_t2" in family.supports)
    played = scheme.resample(T)
    aligned = scheme.aligned(T)
    if not aligned:
        better = scheme.aligned_n_steps(T)
        fix = (f"n_steps={better} aligns every edge" if better != T else
               "no step count up to 4x aligns every edge: put the edges on a common grid (the scheme's dt=...)")
        warnings.warn(f"n_steps={T} puts some waveform edges inside a step (they are step-averaged, an O(dt) change "
                      f"of the waveform); {fix}", stacklevel=_STACK - 1)
    if transit not in ("corrected", "first_order"):
        raise ValueError(f"transit must be 'corrected' or 'first_order', got {transit!r}")
    for needs, feature in ((substrate.permeable, "membranes"), (substrate.relaxing, "relaxivity")):
        if needs and feature not in family.supports:
            raise ValueError(f"the {family.name} kernel does not walk {feature} yet: make the substrate's walls "
                             f"impermeable and non-relaxing (permeability=0, relaxivity=0)")
    family.check(substrate, {"gaussian_steps": bool(gaussian_steps)})
    substeps, dt_sub, step = _steps(substrate, played, D_comp, gaussian_steps, max_transit_probability)
    if target_stderr is not None and 1.0 / math.sqrt(2 * N) > target_stderr:
        warnings.warn(f"{N} walkers give a standard error up to ~{1 / math.sqrt(2 * N):.2g}; "
                      f"target {target_stderr:g} needs n_walkers >= {int(math.ceil(0.5 / target_stderr**2))}",
                      stacklevel=_STACK - 1)
    rec_t, rec_steps, order = _record_steps(record_times, played)
    weighted = t2_comp is not None or substrate.relaxing  # relaxation weights need the walk's state at each TE
    te_steps = _echo_steps(played) if weighted else np.zeros(0, dtype=np.int64)
    n_traj = min(check_count(n_trajectories, "n_trajectories", least=0), N)
    _check_memory(N, T, played, rec_t.size, te_steps.size, n_traj)
    M = math.sqrt((2.0 if gaussian_steps else 6.0) * dt_sub) * _sqrtm_spd(D_local)
    return RunPlan(n_walkers=N, n_steps=T, played=played, aligned=aligned, substeps=substeps, dt_sub=dt_sub,
                   step_length=step, regions=regions, diffusivities=D_comp, reference_diffusivity=D_ref,
                   step_matrix=M, t2=t2_comp, region_weights=_region_weights(t2_comp, regions, played.dt),
                   gaussian=bool(gaussian_steps), record_times=rec_t,
                   record_steps=np.ascontiguousarray(rec_steps[order]), record_order=order, echo_steps=te_steps,
                   n_trajectories=n_traj, transit=transit, **_field_plan(field, substrate, played))


def _field_plan(fld, substrate: Substrate, played: sequences.Scheme) -> dict:
    """The field and its distinct sign patterns; none for ``None`` or a field that is zero everywhere (a zero
    field leaves the run, bit for bit, as without one)."""
    if fld is None:
        return {}
    if not isinstance(fld, Field):
        raise ValueError(f"field must be a substrates.Field (susceptibility_field, fourier_field, field_map, "
                         f"background_gradient), not {type(fld).__name__}")
    box = np.where(np.isfinite(substrate.box), substrate.box, 0.0)
    for k in range(3):
        if fld.box[k] > 0 and box[k] > 0 and not math.isclose(fld.box[k], box[k], rel_tol=1e-9):
            raise ValueError(f"field: its period along axis {k} ({fld.box[k]:g} m) is not the substrate's box "
                             f"({box[k]:g} m); build the field for this substrate")
    if fld.is_zero:
        return {}
    signs = played.field_signs()
    shapes, index = np.unique(signs, axis=0, return_inverse=True)
    return {"field": fld, "field_shapes": np.ascontiguousarray(shapes),
            "field_index": np.asarray(index, dtype=np.int64).reshape(-1)}


def check_seed(seed) -> int:
    """The root seed as a non-negative int (numpy integers accepted); a clear error naming ``seed`` else."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer (it derives every random stream), got {seed!r}")
    return int(seed)


def check_diffusivity(D) -> float:
    """A diffusivity in m^2/s as a float, refusing values that are not plausible in SI."""
    d = float(D)
    if not (np.isfinite(d) and d > 0):
        raise ValueError(f"diffusivity must be a positive number in m^2/s, got {D!r}")
    if d > 1e-6 or d < 1e-13:
        raise ValueError(
            f"diffusivity = {d:g} m^2/s is not plausible; diffwalk uses m^2/s "
            f"(free water at 37 C is 3e-9; 2 um^2/ms = 2e-9 m^2/s; 2e-3 mm^2/s = 2e-9 m^2/s)"
        )
    return d


def _diffusivities(substrate: Substrate, diffusivity, regions: list[str]):
    """(D per region, reference D, local-frame diffusion tensor of the reference region)."""
    R = substrate.rotation
    if substrate.diffusion_tensor is not None:
        if diffusivity is not None:
            raise ValueError("this substrate carries its own diffusion tensor; leave diffusivity out")
        D_local = R.T @ substrate.diffusion_tensor @ R
        D_ref = float(np.linalg.eigvalsh(D_local).max())
        return {"free": D_ref}, D_ref, D_local
    if diffusivity is None:
        raise ValueError("give diffusivity in m^2/s (e.g. diffusivity=2e-9 for 2 um^2/ms)")
    D_comp = {k: check_diffusivity(v) for k, v in compartment_values(diffusivity, regions, "diffusivity",
                                                                      "m^2/s").items()}
    D_ref = D_comp[regions[0]]  # the step matrix is built for the first compartment, the others rescale it
    return D_comp, D_ref, np.eye(3) * D_ref


def _check_t2(t2, regions: list[str], per_region: bool) -> dict | None:
    if t2 is None:
        return None
    out = {}
    for name, v in compartment_values(t2, regions, "t2", "s").items():
        v = float(v)
        if not v > 0:
            raise ValueError(f"t2[{name!r}] must be a positive time in s (np.inf for no relaxation), got {v!r}")
        if math.isfinite(v) and (v > 10.0 or v < 1e-4):
            raise ValueError(f"t2[{name!r}] = {v:g} s is not plausible; T2 is in seconds (80 ms = 0.08)")
        out[name] = v
    if not per_region and len({v for k, v in out.items() if k != "extra"}) > 1:
        raise ValueError("t2 must be the same in every region inside the primitives (only intra/extra may differ)")
    return out


def t2_by_region(t2: dict | None, regions: list[str]) -> bool:
    """True when regions inside the components have different T2 (nested meshes: myelin, axon, ...)."""
    return t2 is not None and len({v for k, v in t2.items() if k != "extra"}) > 1


def extra_relaxation_rate(t2: dict, regions: list[str]) -> float:
    """1/T2 of the space outside every component in 1/s (0 where there is none: a mesh without a box)."""
    return 1.0 / t2["extra"] if "extra" in regions else 0.0


def _region_weights(t2: dict | None, regions: list[str], dt: float) -> np.ndarray:
    """What a grid step in each region adds to the kernel's time inside (see :class:`RunPlan`)."""
    inside = np.array([0.0 if r == "extra" else 1.0 for r in regions])
    if not t2_by_region(t2, regions):
        return inside
    r_ex = extra_relaxation_rate(t2, regions)
    return inside * np.array([(1.0 / t2[r] - r_ex) * dt for r in regions])


def _steps(substrate: Substrate, played: sequences.Scheme, D_comp: dict, gaussian: bool,
           max_transit_probability: float) -> tuple[int, float, float]:
    """(sub-steps, sub-step duration, step length), warning when the step is long against the substrate."""
    substeps = 1
    if substrate.permeable or substrate.relaxing:
        if not 0 < max_transit_probability <= 1:
            raise ValueError(f"max_transit_probability must be in (0, 1], got {max_transit_probability!r}")
        # a relaxing wall absorbs with the transit probability's first-order form: the same bound applies
        rates = np.concatenate([np.ravel(substrate.permeability), np.ravel(substrate.relaxivity)])
        substeps = substeps_for(rates, played.dt, D_comp.values(), gaussian, max_transit_probability)
    dt_sub = played.dt / substeps
    D_max = max(D_comp.values())
    step = math.sqrt(6.0 * D_max * dt_sub)
    feature = substrate.smallest_feature
    if step > feature / 6:
        need = int(math.ceil(played.duration * 6 * D_max / (feature / 6) ** 2))
        warnings.warn(
            f"step length {step * 1e6:.3g} um is more than 1/6 of the smallest feature ({feature * 1e6:.3g} um); "
            f"use n_steps >= {need} (dt <= {played.duration / need * 1e6:.3g} us) for accurate walls",
            stacklevel=_STACK)
    return substeps, dt_sub, step


def _record_steps(record_times, played: sequences.Scheme):
    """(record times, their grid indices, the order that sorts them)."""
    dt, T = played.dt, played.n_steps
    try:
        rec_t = np.atleast_1d(np.asarray(record_times if record_times is not None else [], dtype=float)).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"record_times must be times in s, got {record_times!r}") from None
    if not np.all(np.isfinite(rec_t)):
        raise ValueError(f"record_times must be finite times in s, got {record_times!r}")
    rec_steps = np.rint(rec_t / dt).astype(np.int64)
    if rec_t.size and (np.any(np.abs(rec_steps * dt - rec_t) > 1e-9 * dt + 1e-15) or np.any(rec_steps < 0)
                       or np.any(rec_steps > T)):
        raise ValueError(f"record_times must be multiples of dt = {dt:g} s within [0, {played.duration:g}] s; "
                         "choose n_steps so that they fall on the grid")
    return rec_t, rec_steps, np.argsort(rec_steps, kind="stable")


def echo_brackets(played: sequences.Scheme):
    """Per measurement: the grid points (lo, hi) around its echo time and the fraction of the way from lo."""
    x = np.asarray(played.echo_time, dtype=float) / played.dt
    lo = np.clip(np.floor(x + 1e-9).astype(np.int64), 0, played.n_steps)
    hi = np.minimum(lo + 1, played.n_steps)
    return lo, hi, np.clip(x - lo, 0.0, 1.0)


def _echo_steps(played: sequences.Scheme) -> np.ndarray:
    """Grid indices around each echo time at which the time spent inside is recorded."""
    te = np.asarray(played.echo_time, dtype=float)
    if np.any(te > played.duration * (1 + 1e-9)):
        raise ValueError(f"echo time {te.max() * 1e3:g} ms is after the end of the waveforms "
                         f"({played.duration * 1e3:g} ms): the walk must cover TE; build the scheme with "
                         "echo_time=... so the waveforms are padded to it")
    lo, hi, _ = echo_brackets(played)
    return np.unique(np.concatenate([lo, hi]))


def _available_memory() -> float:
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def _check_memory(N: int, T: int, played: sequences.Scheme, n_rec: int, n_te: int, n_traj: int) -> None:
    K = played.shapes.n_shapes
    mem = N * (8 * (3 * K + 3 * n_rec + 3 + 1 + 4 + n_te + 1) + 16) + n_traj * (T + 1) * 24 \
        + min(MAX_PHASE_BLOCKS, -(-N // PHASE_BLOCK)) * len(played) * 8 * 4 * 8
    avail = _available_memory()
    if mem > 0.8 * avail:
        raise MemoryError(f"this run needs about {mem / 2**30:.1f} GiB but {avail / 2**30:.1f} GiB is free; "
                          "use fewer walkers (run several seeds and average) or fewer record_times")


def _sqrtm_spd(A: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(A)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T
