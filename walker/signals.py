"""Stage 4 of a simulation: from the walkers' phase integrals and records to signals and moments.

phase_m = gamma dt sum_k g_mk . I_k per walker (the factorised scheme: 3K
multiply-adds per measurement), then the mean of w cos(phase) per
compartment, where w = exp(-integral of R2 along the walker's path) when T2 is
given; the Monte Carlo standard error comes from the same walkers (analytic
reference, section 1.0), with cos 2 phi = 2 cos^2 phi - 1. One numba pass over
walkers in fixed blocks (the block partition depends on N alone, so the sums
do not depend on the number of threads), with vectorised sin/cos
(:mod:`walker.sincos`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numba import prange

from . import cuda_backend
from .plan import MAX_PHASE_BLOCKS, PHASE_BLOCK, RunPlan, echo_brackets, extra_relaxation_rate, t2_by_region
from .sincos import sincos_inplace
from .scaffold import compile_kernel


@dataclass(frozen=True, eq=False)
class Signals:
    """Signals of one run, overall and per starting compartment.

    Attributes
    ----------
    signal, stderr, imag : numpy.ndarray
        (M,) real part, its standard error, imaginary part.
    compartment_signals, compartment_stderr : dict
        Compartment -> (M,) for compartments with walkers.
    compartment_counts : dict
        Compartment -> walkers that started there.
    fractions : dict
        Compartment -> fraction of the walkers that started there (every compartment named).
    """

    signal: np.ndarray
    stderr: np.ndarray
    imag: np.ndarray
    compartment_signals: dict
    compartment_stderr: dict
    compartment_counts: dict
    fractions: dict


def relaxation_weights(time_inside: np.ndarray, plan: RunPlan, log_survival: np.ndarray | None = None
                       ) -> np.ndarray | None:
    """(N, M) relaxation weights of each walker at each measurement's echo time.

    With T2: exp(-(R2_in t_in + R2_ex (TE - t_in))) from the time spent inside
    up to the echo (nested mesh regions with their own T2: the kernel sums
    each region's R2 along the walker's path, :attr:`RunPlan.region_weights`);
    with surface relaxivity, times the walker's surviving
    magnetisation exp(log_survival) (the product of the survival factors of
    its wall hits). Both are interpolated linearly between the grid points
    around TE (the log survival, a step function of time, to O(dt)).

    Parameters
    ----------
    time_inside : numpy.ndarray
        (N, E) time spent inside at the echo grid points, in units of dt.
    plan : RunPlan
    log_survival : numpy.ndarray, optional
        (N, E) log of the surface-relaxation weight at the echo grid points
        (``None`` or all zeros: no surface relaxation).

    Returns
    -------
    numpy.ndarray or None
        (N, M) weights in [0, 1] (dimensionless); ``None`` when nothing relaxes.
    """
    surface = log_survival is not None and log_survival.size > 0 and bool(np.any(log_survival))
    if plan.t2 is None and not surface:
        return None
    lo, hi, frac = echo_brackets(plan.played)
    col = {s: j for j, s in enumerate(plan.echo_steps)}
    lo_c = [col[s] for s in lo]
    hi_c = [col[s] for s in hi]

    def at_echo(x):
        return x[:, lo_c] * (1 - frac) + x[:, hi_c] * frac

    log_w = at_echo(log_survival) if surface else 0.0
    te = np.asarray(plan.played.echo_time, dtype=float)
    if t2_by_region(plan.t2, plan.regions):
        # the kernel summed (R2_region - R2_extra) dt per grid step inside: the exponent less R2_extra TE
        return np.exp(log_w - at_echo(time_inside) - extra_relaxation_rate(plan.t2, plan.regions) * te[None, :])
    if plan.t2 is not None:
        t_in = at_echo(time_inside) * plan.dt
        r_in = 1.0 / plan.t2[plan.regions[0]]
        r_ex = 1.0 / plan.t2[plan.regions[-1]]  # a mesh without extra space: regions[-1] is inside too, r_ex == r_in
        log_w = log_w - (r_in * t_in + r_ex * (te[None, :] - t_in))
    return np.exp(log_w)


def phase_signals(phases: np.ndarray, labels: np.ndarray, names: list[str], plan: RunPlan,
                  rotation: np.ndarray, relax: np.ndarray | None, parallel: bool = True,
                  backend: str = "cpu", field_phases: np.ndarray | None = None) -> Signals:
    """Signals from the phase integrals.

    Parameters
    ----------
    phases : numpy.ndarray
        (N, K, 3) sum_t W[k, t] r_t per walker (local frame, m).
    labels : numpy.ndarray
        (N,) starting compartment of each walker (index into ``names``).
    names : list of str
    plan : RunPlan
    rotation : numpy.ndarray
        (3, 3) local-to-lab rotation of the substrate (g_local = R^T g_lab).
    relax : numpy.ndarray or None
        (N, M) relaxation weights.
    parallel : bool
        Use every numba thread (``False``: one); CPU only.
    backend : {"cpu", "cuda"}
        Where the phases, their cosines and sines and the block sums are computed; the same blocks and the
        same summation order either way (:func:`walker.cuda_backend.phase_sums`).
    field_phases : numpy.ndarray, optional
        (N, F) the kernel's field integrals per refocusing pattern (T, in units of dt): measurement m adds
        gamma dt times its pattern's column (``plan.field_index``) to its phase.

    Returns
    -------
    Signals
        (M,) signal, standard error and imaginary part (dimensionless), overall and per
        starting compartment, with the walker counts and fractions.
    """
    played = plan.played
    fac = played.shapes
    K = fac.n_shapes
    N = plan.n_walkers
    M = len(played)
    A = np.ascontiguousarray((fac.amplitudes @ rotation).reshape(M, 3 * K).T * (played.gamma * played.dt))
    flat = phases.reshape(N, 3 * K)
    if field_phases is not None and field_phases.shape[1] > 0:
        # further phase columns after the gradients': a run without a field sums exactly as before
        F = field_phases.shape[1]
        A = np.vstack([A, (np.arange(F)[:, None] == plan.field_index[None, :]) * (played.gamma * played.dt)])
        flat = np.hstack([flat, field_phases])
    n_comp = len(names)
    block = max(PHASE_BLOCK, -(-N // MAX_PHASE_BLOCKS))
    n_blocks = -(-N // block)
    partial = np.zeros((n_blocks, n_comp, 4, M))  # w cos, w sin, w^2 cos 2phi, w^2 (w: relaxation weight)
    flat = np.ascontiguousarray(flat)
    labels64 = np.ascontiguousarray(labels, dtype=np.int64)
    weights = np.zeros((0, M)) if relax is None else np.ascontiguousarray(relax)
    if backend == "cuda":
        cuda_backend.phase_sums(flat, A, labels64, weights, block, partial)
    else:
        sums_of_blocks = _phase_sums_parallel if parallel else _phase_sums_serial
        sums_of_blocks(flat, A, labels64, weights, block, partial, np.empty((n_blocks, 3, M)))
    sums = partial.sum(axis=0)  # blocks are fixed by N alone: the same sums on any number of threads
    counts = np.bincount(labels, minlength=n_comp)
    signal, stderr, imag = _mean_and_error(sums.sum(axis=0), N)
    comp_sig, comp_se, comp_n = {}, {}, {}
    for ci, name in enumerate(names):
        if counts[ci] > 0:
            comp_sig[name], comp_se[name], _ = _mean_and_error(sums[ci], counts[ci])
            comp_n[name] = int(counts[ci])
    fractions = {name: float(counts[ci] / N) for ci, name in enumerate(names)}
    return Signals(signal, stderr, imag, comp_sig, comp_se, comp_n, fractions)


def _phase_sums(phases, A, labels, relax, block, partial, scratch):
    """Per block of walkers and starting compartment: sums of w cos phi, w sin phi, w^2 cos 2 phi and w^2,
    with phi_m = sum_j phases[i, j] A[j, m] (one row of scratch per block: phases, sines, cosines)."""
    N, J = phases.shape
    M = A.shape[1]
    weighted = relax.shape[0] > 0
    for b in prange(partial.shape[0]):
        phi = scratch[b, 0]
        sn = scratch[b, 1]
        cs = scratch[b, 2]
        for i in range(b * block, min(N, (b + 1) * block)):
            for m in range(M):
                phi[m] = 0.0
            for j in range(J):
                v = phases[i, j]
                for m in range(M):
                    phi[m] += v * A[j, m]
            sincos_inplace(phi, sn, cs)
            out = partial[b, labels[i]]
            if weighted:
                for m in range(M):
                    w = relax[i, m]
                    c = cs[m]
                    out[0, m] += w * c
                    out[1, m] += w * sn[m]
                    out[2, m] += w * w * (2.0 * c * c - 1.0)
                    out[3, m] += w * w
            else:
                for m in range(M):
                    c = cs[m]
                    out[0, m] += c
                    out[1, m] += sn[m]
                    out[2, m] += 2.0 * c * c - 1.0
                    out[3, m] += 1.0


_phase_sums_parallel, _phase_sums_serial = compile_kernel(_phase_sums)


def _mean_and_error(total: np.ndarray, n: int):
    # Var(w cos phi) = (E[w^2] + E[w^2 cos 2phi]) / 2 - S^2 (section 1.0, with the weights)
    S = total[0] / n
    var = np.clip(total[3] / n + total[2] / n - 2.0 * S**2, 0.0, None) / (2.0 * n)
    return S, np.sqrt(var), total[1] / n


def displacement_moments(displacements: np.ndarray, plan: RunPlan, rotation: np.ndarray):
    """(lab-frame displacements (N, R, 3) in record_times order, MSD (R, 3), excess kurtosis (R, 3)); Nones
    when nothing was recorded."""
    if not plan.record_times.size:
        return None, None, None
    order = plan.record_order
    inv = np.empty_like(order)
    inv[order] = np.arange(order.size)
    disp = displacements[:, inv] @ rotation.T
    m2 = np.mean(disp**2, axis=0)
    m4 = np.mean(disp**4, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        kurt = np.where(m2 > 0, m4 / m2**2 - 3.0, np.nan)
    return disp, m2, kurt
