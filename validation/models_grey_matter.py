"""Grey-matter, tumour and exchange models: IMPULSED, POMACE, Karger, NEXI, SMEX, SANDIX; and the b-tensor
representations QTI and the gamma (microFA) model.

Registered in :mod:`validation.registry`; formulas from the analytic reference, sections 1.7, 2.1, 2.3.
"""

from __future__ import annotations

import numba
import numpy as np

from . import compartments as C
from .base import (B_UNIT, D_MAX, LinearDesign, Model, Parameter, ball, diffusivity_param, distinct_rows,
                   fraction_param, fractions)



_TAU = Parameter("tau_1", "s", (1e-3, 2.0), 0.05, "residence_time")


# --------------------------------------------------------- cells under OGSE
def _sphere_any(arr, R, D):
    return np.exp(C.gpd_restricted_lnE(arr, "sphere", R, D))


def _impulsed(arr, P):
    vin, d, din, dex0, beta = (P[:, i] for i in range(5))
    dex = dex0[:, None] + beta[:, None] * arr.freq[None, :]
    return vin[:, None] * _sphere_any(arr, d / 2, din) + (1 - vin)[:, None] * np.exp(-arr.b[None, :] * dex)


def _pomace(arr, P):
    fecs, R, dics, decs = (P[:, i] for i in range(4))
    return (1 - fecs)[:, None] * _sphere_any(arr, R, dics) + fecs[:, None] * ball(arr, decs)


# ------------------------------------------------------------------ exchange
def _diffusion_time(arr):
    return np.maximum(arr.Delta - arr.delta / 3, 1e-9)


def _karger(arr, P):
    f, d1, d2, tau = (P[:, i][:, None] for i in range(4))
    return C.karger(arr.b[None, :], d1, d2, f, 1 / tau, _diffusion_time(arr)[None, :])


_XI, _XW = C.unit_nodes(32)  # xi = cos(stick angle) in [0, 1]


def _nexi(arr, P):
    f, di, de, tau = (P[:, i][:, None, None] for i in range(4))
    # the powder average depends on a measurement's (b, t) only: once per distinct pair (to 1e-10: b-values
    # from played waveforms differ in the last digits), then spread over the measurements
    shells, which = arr.derived("b_diffusion_times", lambda: distinct_rows(
        np.column_stack([arr.b, _diffusion_time(arr)])))
    E = C.karger(shells[None, None, :, 0], di * _XI[None, :, None] ** 2, de, f, 1 / tau, shells[None, None, :, 1])
    return np.matmul(_XW, E)[:, which]


#: largest error of SMEX's stick-angle quadrature on the normalised signal: a scheme gets the fewest of
#: _NODE_COUNTS Gauss-Legendre nodes whose average of exp(-x xi^2), x = max(b) D_MAX (the fastest stick decay a
#: fit can reach), is this close to 64 nodes' (8 nodes for b <= 3 ms/um^2, 12 up to 10)
SMEX_NODES_ERROR = 1e-7
_NODE_COUNTS = (8, 10, 12, 16, 24, 32, 48)
#: bound on the error of the Richardson-extrapolated lobe steps (smex_pool's n_sub = 4) against the converged
#: chain, on the normalised signal, for PGSE with b <= 10 ms/um^2 and delta <= 20 ms (tests/test_fit_speedups.py;
#: largest measured 1.07e-3 at delta = 20 ms, Delta = 25 ms, b = 10 ms/um^2; 1e-5 to 3e-4 for delta = 5-10 ms):
#: 0.5-1.3 x the error of the 12 plain steps per lobe used before issue 32, at 14 steps instead of 25
SMEX_STEP_ERROR = 1.5e-3


def stick_nodes(b_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on xi in [0, 1] for powder-averaging sticks up to b_max (s/m^2).

    The fewest of 8, 10, 12, 16, 24, 32 or 48 nodes whose average of exp(-b_max D_MAX xi^2) is within
    :data:`SMEX_NODES_ERROR` of 64 nodes'.

    Parameters
    ----------
    b_max : float
        Largest b-value of the scheme (s/m^2).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Nodes xi (dimensionless) and weights (sum 1).
    """
    x = float(b_max) * D_MAX
    xr, wr = C.unit_nodes(64)
    ref = wr @ np.exp(-x * xr**2)
    for n in _NODE_COUNTS:
        xi, w = C.unit_nodes(n)
        if abs(w @ np.exp(-x * xi**2) - ref) <= SMEX_NODES_ERROR:
            return xi, w
    return xr, wr


def smex_pool(arr, f, di, de, tau, n_sub: int = 4):
    """Powder-averaged signal of sticks exchanging with an isotropic pool under finite PGSE pulses.

    Solves dm/dt = [-q(t)^2 D + K] m on the PGSE q(t) (rising lobe, plateau, falling lobe), each
    lobe in steps with the exact step average of q^2, the plateau in one exact step; sticks
    at xi = cos(angle) with D = D_i xi^2, integrated over xi by Gauss-Legendre (:func:`stick_nodes`). The lobe
    error is O(h^2): the chain runs with n_sub and n_sub / 2 steps per lobe and is Richardson-extrapolated,
    (4 S(n_sub) - S(n_sub / 2)) / 3, within :data:`SMEX_STEP_ERROR` of the converged chain at n_sub = 4 (as
    accurate as 12 plain steps, at 14 steps instead of 25; the finite-pulse error is largest for long pulses
    at high b).

    Parameters
    ----------
    arr : SchemeArrays
    f, di, de, tau : numpy.ndarray
        (K,) stick fraction of the pool, stick and pool diffusivity (m^2/s), mean residence time in
        the sticks (s).
    n_sub : int
        Steps per gradient lobe of the finer chain (even, >= 2).

    Returns
    -------
    numpy.ndarray
        (K, M) signals (dimensionless).
    """
    if n_sub < 2 or n_sub % 2:
        raise ValueError(f"n_sub = {n_sub!r}: expected an even number of steps per lobe >= 2")
    # the powder average depends on a measurement's (G, delta, Delta) only: integrate once per distinct
    # timing and amplitude (4 for a 3-shell PGSE protocol instead of 91), then spread them over the measurements
    # (amplitudes computed from played waveforms differ in the last digits: distinct to 1e-10)
    shells, which = arr.derived("pgse_amplitude_timings", lambda: distinct_rows(
        np.column_stack([arr.G, arr.delta, arr.Delta])))
    xi, xw = arr.derived("smex_stick_nodes", lambda: stick_nodes(np.max(arr.b)))
    g2 = np.ascontiguousarray((arr.gamma * shells[:, 0]) ** 2)
    fine, coarse = np.empty((len(f), len(shells))), np.empty((len(f), len(shells)))
    args = [np.ascontiguousarray(x, dtype=float) for x in (f, di, de, tau)]
    # compiled: the chain of 2 n_sub + 1 exact 2 x 2 steps per (parameter set, node, shell) runs in registers
    # instead of through ~30 numpy temporaries per step
    for n, out in ((n_sub, fine), (n_sub // 2, coarse)):
        _smex_chain(*args, xi, xw, g2, np.ascontiguousarray(shells[:, 1]), np.ascontiguousarray(shells[:, 2]),
                    int(n), out)
    out = (4 * fine - coarse) / 3
    return out[:, which]


@numba.njit(cache=True)
def _exchange_step(p1, p2, r12, r21, m1, m2):
    # exp(A) (m1, m2) for A = [[-p1 - r12, r21], [r12, -p2 - r21]] (Cayley-Hamilton), p = q^2 D h, r = k h >= 0.
    # The slow eigenvalue is det / l2, not (tr + disc) / 2: where one pool is almost empty (f -> 1 makes k21 ->
    # 1e12 / tau) tr and disc are ~1e10 and their sum keeps ~1e-6 of l1; det = p1 p2 + p1 r21 + r12 p2 has no
    # cancellation (the r12 r21 terms of a11 a22 and a12 a21 cancel exactly in algebra, not in floating point)
    tr = -(p1 + p2 + r12 + r21)
    d = (p2 + r21) - (p1 + r12)
    disc = np.sqrt(d * d + 4 * r12 * r21)
    l2 = 0.5 * (tr - disc)
    if disc < 1e-10 * max(1.0, abs(tr)):
        l1 = l2 = 0.5 * tr
        e1 = np.exp(l1)
        c1, c0 = e1, e1 * (1 - l1)
    else:
        l1 = (p1 * p2 + p1 * r21 + r12 * p2) / l2
        e1, e2 = np.exp(l1), np.exp(l2)
        c1, c0 = (e1 - e2) / disc, (l1 * e2 - l2 * e1) / disc
    return (c0 * m1 + c1 * (-(p1 + r12) * m1 + r21 * m2), c0 * m2 + c1 * (r12 * m1 - (p2 + r21) * m2))


@numba.njit(cache=True)
def _smex_chain(f, di, de, tau, xi, xw, g2, dl, DL, n_sub, out):
    # out[k, u] = sum_x xw[x] (m1 + m2)(end of the PGSE) for parameter set k, node x, shell u
    for k in range(f.size):
        k12 = 1 / tau[k]
        k21 = f[k] * k12 / max(1 - f[k], 1e-12)
        D2 = de[k]
        for u in range(g2.size):
            if g2[u] == 0.0:
                # no gradient: exchange alone conserves m1 + m2 (the columns of the rate matrix sum to 0)
                out[k, u] = f[k] + (1 - f[k])
                continue
            acc = 0.0
            for x in range(xi.size):
                D1 = di[k] * xi[x] ** 2
                m1, m2 = f[k], 1 - f[k]
                for j in range(n_sub):  # rising lobe: q = gamma G t, the step average of q^2
                    a, b = j / n_sub, (j + 1) / n_sub
                    q2 = g2[u] * dl[u] ** 2 * (b**3 - a**3) / (3 * (b - a))
                    h = dl[u] * (b - a)
                    m1, m2 = _exchange_step(q2 * D1 * h, q2 * D2 * h, k12 * h, k21 * h, m1, m2)
                q2 = g2[u] * dl[u] ** 2
                h = max(DL[u] - dl[u], 0.0)
                m1, m2 = _exchange_step(q2 * D1 * h, q2 * D2 * h, k12 * h, k21 * h, m1, m2)
                for j in range(n_sub):  # falling lobe, mirror image
                    a, b = j / n_sub, (j + 1) / n_sub
                    q2 = g2[u] * dl[u] ** 2 * ((1 - a) ** 3 - (1 - b) ** 3) / (3 * (b - a))
                    h = dl[u] * (b - a)
                    m1, m2 = _exchange_step(q2 * D1 * h, q2 * D2 * h, k12 * h, k21 * h, m1, m2)
                acc += xw[x] * (m1 + m2)
            out[k, u] = acc


def _smex(arr, P):
    return smex_pool(arr, P[:, 0], P[:, 1], P[:, 2], P[:, 3])


def _sandix(arr, P):
    fn, fs, fe, pen = fractions(P[:, 0], P[:, 1])
    di, de, Rs, ds, tau = (P[:, i] for i in range(2, 7))
    pool = fn + fe
    fpool = np.where(pool > 0, fn / np.maximum(pool, 1e-12), 0.0)
    soma = np.exp(C.gpd_restricted_lnE(arr, "sphere", Rs, ds))
    return pen[:, None] * (pool[:, None] * smex_pool(arr, fpool, di, de, tau) + fs[:, None] * soma)


# -------------------------------------------------------- b-tensor representations
def _gamma(arr, P):
    md, vi, va = P[:, 0][:, None], P[:, 1][:, None], P[:, 2][:, None]
    V = vi + arr.bd[None, :] ** 2 * va
    b = arr.b[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ln = np.where(V > 1e-40, -(md**2 / np.maximum(V, 1e-300)) * np.log1p(b * V / np.maximum(md, 1e-30)), -b * md)
    return np.exp(ln)


def micro_fa(md: np.ndarray, v_a: np.ndarray) -> np.ndarray:
    """microFA of a single-population gamma fit: sqrt(3/2) (1 + (2/5) MD^2 / V_A)^(-1/2).

    Derived for V_I = 0 (analytic reference section 2.1); with isotropic variance V_I > 0 treat it
    as an approximation.
    """
    va = np.maximum(np.asarray(v_a, dtype=float), 1e-300)
    return np.sqrt(1.5) / np.sqrt(1 + 0.4 * np.asarray(md, dtype=float) ** 2 / va)


_MANDEL = np.array([1, 1, 1, np.sqrt(2), np.sqrt(2), np.sqrt(2)])
_IU = np.triu_indices(6)


def _qti_columns(B):
    """(M, 27) rows of ln E = -<B, D> + (1/2) <B x B, C> over (D in Mandel notation, C's upper triangle)."""
    b6 = np.column_stack([B[:, 0, 0], B[:, 1, 1], B[:, 2, 2], B[:, 0, 1], B[:, 0, 2], B[:, 1, 2]]) * _MANDEL
    outer = np.einsum("mi,mj->mij", b6, b6)
    mult = np.where(_IU[0] == _IU[1], 1.0, 2.0)  # C symmetric: off-diagonal entries appear twice
    return np.column_stack([-b6, 0.5 * mult * outer[:, _IU[0], _IU[1]]])


def qti_design(arr) -> LinearDesign:
    """The log-linear design of QTI on a scheme: ln S = -<B, D> + (1/2) <B x B, C> + ln S0.

    Parameters
    ----------
    arr : SchemeArrays
        The scheme's arrays (SI; b-tensors of at least two shapes).

    Returns
    -------
    LinearDesign
        (M, 28) design (b in ms/um^2, intercept last); its parameters are the mean tensor's six plain elements
        (m^2/s) and the covariance's 21 upper-triangle Mandel elements (m^4/s^2).
    """
    X = np.column_stack([_qti_columns(arr.B / B_UNIT), np.ones(len(arr.B))])

    def to_params(beta):
        return np.column_stack([beta[:, :6] / _MANDEL / B_UNIT, beta[:, 6:] / B_UNIT**2])

    return LinearDesign(X, to_params)


def _qti(arr, P):
    Q = P.copy()
    Q[:, :6] *= _MANDEL  # parameters are the plain tensor elements; the design uses Mandel notation
    return np.exp(C.rows_dot(Q, _qti_columns(arr.B)))


def _qti_start(arr, Y):
    A = _qti_columns(arr.B)
    rank = np.linalg.matrix_rank(A / np.abs(A).max(axis=0, keepdims=True).clip(1e-300))
    if rank < A.shape[1]:
        raise ValueError(f"QTI needs b-tensors of at least two shapes and enough directions to determine the 28 "
                         f"parameters; this scheme determines only {rank}")
    X = C.rows_dot(np.log(np.clip(Y, 1e-6, None)), np.linalg.pinv(A))
    X[:, :6] /= _MANDEL
    return X


_QTI_NAMES = ["D_xx", "D_yy", "D_zz", "D_xy", "D_xz", "D_yz"]
_C_LABEL = ["xx", "yy", "zz", "xy", "xz", "yz"]

MODELS = {
    "impulsed": Model(
        name="impulsed",
        parameters=(fraction_param("v_in", "sphere:intra_fraction"), Parameter("d", "m", (1e-6, 40e-6), 1e-5, "sphere:effective_diameter"),
            diffusivity_param("D_in", "sphere:diffusivity"), diffusivity_param("D_ex0"), Parameter("beta_ex", "m^2", (0.0, 5e-11), 1e-11, None)),
        forward=_impulsed,
        assumptions="impermeable spherical cells of one diameter d (Gaussian phase approximation for the played "
            "PGSE and OGSE waveforms) + extra-cellular Gaussian diffusion whose diffusivity rises linearly with the "
            "OGSE frequency f, D_ex = D_ex0 + beta_ex f (PGSE: f = 0); no exchange",
        requires={"ogse"},
        advice="25-50 Hz typical, together with PGSE",
        reference="Jiang et al. 2016, 2017; Xu et al. 2009"),
    "pomace": Model(
        name="pomace",
        parameters=(fraction_param("f_ecs", "sphere:extra_fraction"), Parameter("R", "m", (0.5e-6, 20e-6), 1e-6, "sphere:effective_radius"),
            diffusivity_param("D_ics", "sphere:diffusivity"), diffusivity_param("D_ecs")),
        forward=_pomace,
        assumptions="impermeable spheres (Gaussian phase approximation, any waveform) + an extra-cellular space with a "
            "constant diffusivity (its tortuosity limit), valid for diffusion times in [1/(88 Hz), 31 ms]; no exchange",
        advice="OGSE + PGSE inside the POMACE window",
        reference="Reynaud et al. 2016"),
    "karger": Model(
        name="karger",
        parameters=(fraction_param("f", "intra_fraction"), diffusivity_param("D_1"), diffusivity_param("D_2"), _TAU),
        forward=_karger,
        assumptions="two isotropic Gaussian compartments exchanging with first-order kinetics (barrier-limited "
            "exchange), narrow-pulse Karger equations evaluated at t = Delta - delta/3 with q^2 t = b; tau_1 is the mean "
            "residence time in compartment 1 (1/k_12), and f k_12 = (1 - f) k_21",
        requires={"pgse"},
        advice="several Delta",
        reference="Karger 1985; Fieremans et al. 2010"),
    "nexi": Model(
        name="nexi",
        parameters=(fraction_param("f", "intra_fraction"), diffusivity_param("D_i", "cylinder:diffusivity"), diffusivity_param("D_e"), _TAU),
        forward=_nexi,
        assumptions="randomly oriented sticks (neurites, spherical mean) exchanging with an isotropic Gaussian "
            "extra-cellular space (Karger, narrow pulse, t = Delta - delta/3, q^2 t = b); tau_1 = 1/k_ie is the mean "
            "residence time in the neurites (NEXI's t_ex = 1/k_ie convention; 1/(k_ie + k_ei) = (1 - f) tau_1)",
        requires={"pgse"},
        advice="several Delta, b up to ~6-7 ms/um^2",
        reference="Jelescu et al. 2022"),
    "smex": Model(
        name="smex",
        parameters=(fraction_param("f", "intra_fraction"), diffusivity_param("D_i", "cylinder:diffusivity"), diffusivity_param("D_e"), _TAU),
        forward=_smex,
        assumptions="NEXI with finite pulses: the Karger equations integrated along the PGSE q(t); sticks (spherical "
            "mean) + isotropic Gaussian extra-cellular space exchanging; tau_1 as in nexi",
        requires={"pgse"},
        advice="several Delta",
        reference="Olesen et al. 2022"),
    "sandix": Model(
        name="sandix",
        parameters=(fraction_param("f_n"), fraction_param("f_s", "soma_fraction"), diffusivity_param("D_i"), diffusivity_param("D_e"),
            Parameter("R_s", "m", (1e-6, 12e-6), 1e-6, "sphere:effective_radius"), diffusivity_param("D_s", "sphere:diffusivity"), _TAU),
        forward=_sandix,
        assumptions="SANDI with neurite-extracellular exchange: sticks exchanging with the isotropic extra-cellular "
            "space (finite-pulse Karger as in smex) + impermeable somas (Gaussian phase, no exchange); f_e = 1 - f_n - "
            "f_s",
        requires={"pgse"},
        advice="several Delta, high b",
        reference="Olesen et al. 2022"),
    "gamma": Model(
        name="gamma",
        parameters=(Parameter("MD", "m^2/s", (1e-11, D_MAX), 1e-9, None),
            Parameter("V_I", "m^4/s^2", (0.0, 4e-18), 1e-19, None),
            Parameter("V_A", "m^4/s^2", (0.0, 4e-18), 1e-19, None)),
        forward=_gamma,
        assumptions="spherical-mean signal of a gamma-distributed diffusivity: E = (1 + b V/MD)^(-MD^2/V), V = V_I + "
            "b_delta^2 V_A (isotropic and anisotropic variance); microFA = validation.models_grey_matter.micro_fa(MD, V_A); "
            "Gaussian compartments, no exchange",
        requires={"btensor_shapes"},
        advice="linear and spherical (or planar) encoding, several b",
        reference="Lasic et al. 2014; Szczepankiewicz et al. 2016"),
    "qti": Model(
        name="qti",
        parameters=tuple(Parameter(n, "m^2/s", (-D_MAX, D_MAX) if i > 2 else (0.0, D_MAX), 1e-9, None) for i, n in enumerate(_QTI_NAMES))
            + tuple(Parameter(f"C_{_C_LABEL[i]}_{_C_LABEL[j]}", "m^4/s^2", (-1e-17, 1e-17), 1e-19, None)
            for i, j in zip(*_IU)),
        forward=_qti,
        assumptions="cumulant expansion ln E = -<B, D> + (1/2) <B x B, C> of a diffusion tensor distribution (mean "
            "tensor D as plain elements, covariance C as the upper triangle of its 6 x 6 Mandel-notation matrix); valid at moderate b",
        requires={"btensor_shapes"},
        advice=">= 28 measurements",
        reference="Westin et al. 2016",
        initial=_qti_start,
        design=qti_design),
}
