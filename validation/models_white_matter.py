"""White-matter models beyond the basic ones: CHARMED, AxCaliber, ActiveAx, Bingham-NODDI, the Standard
Model (with b-tensor shape), WMTI, WMTI-Watson and the temporal zeppelin; restricted single-compartment
blocks (cylinder/sphere in the Gaussian-phase, Callaghan and Stejskal-Tanner/Soderman approximations).

Registered in :mod:`validation.registry`; formulas from the analytic reference, section 2.2.
"""

from __future__ import annotations

import numpy as np
from scipy.special import eval_legendre

from . import compartments as C
from .base import (PHI, THETA, W_IDX, DictionarySpec, Model, Parameter, atom_labels, axis, ball, btensor6,
                   diffusivity_param, distinct_rows, fraction_param, fractions, gpd_pgse_lnE, grid_mean, stick,
                   tensor_from6, uniform_fraction, z_axes, zeppelin)


def _chunked(fn, arr, P, size):
    """Evaluate a memory-hungry forward function on chunks of parameter sets."""
    if len(P) <= size:
        return fn(arr, P)
    return np.vstack([fn(arr, P[s:s + size]) for s in range(0, len(P), size)])


def _cos2(arr, n):
    return C.rows_dot(n, arr.u) ** 2


def _cylinder_perp(arr, R, D, n):
    """GPD ln E across cylinders with axis n (K, 3), rectangular PGSE."""
    G2perp = arr.G[None, :] ** 2 * np.clip(1 - _cos2(arr, n), 0, None)
    return gpd_pgse_lnE("cylinder", arr, R, D, G2perp)


# ------------------------------------------------------------------ CHARMED
def _charmed(arr, P):
    fr, R, dr, dhpar, dhperp = P[:, 0], P[:, 1], P[:, 2], P[:, 3], P[:, 4]
    n = axis(P[:, 5], P[:, 6])
    intra = np.exp(_cylinder_perp(arr, R, dr, n)) * stick(arr, n, dr)
    return fr[:, None] * intra + (1 - fr)[:, None] * zeppelin(arr, n, dhpar, dhperp)


# ----------------------------------------------------------------- AxCaliber
def _axcaliber_one(arr, P):
    fr, alpha, beta, dpar, dh = (P[:, i] for i in range(5))
    n = axis(P[:, 5], P[:, 6])
    Rq, w = C.gamma_radius_nodes(alpha, beta, 2, n_nodes=16)  # volume-weighted radii (K, Q)
    K, Q = Rq.shape
    G2perp = arr.G[None, :] ** 2 * np.clip(1 - _cos2(arr, n), 0, None)
    # 16 radii and 16 modes keep the fit fast: the signal is within 1e-4 of a 200-radius, 60-mode average
    ln = gpd_pgse_lnE("cylinder", arr, Rq.ravel(), np.repeat(dpar, Q), np.repeat(G2perp, Q, axis=0), n_modes=16)
    perp = np.einsum("q,kqm->km", w, np.exp(ln).reshape(K, Q, -1))
    return fr[:, None] * perp * stick(arr, n, dpar) + (1 - fr)[:, None] * zeppelin(arr, n, dpar, dh)


def _axcaliber(arr, P):
    # 256 parameter sets per call (4096 radii, ~3 MB per (radii, M) array at M = 91): small chunks cost more in
    # numpy call overhead than in arithmetic; every row is computed on its own, so the chunk size changes no bit
    return _chunked(_axcaliber_one, arr, P, 256)


# ------------------------------------------------------------------ ActiveAx
def _activeax(arr, P):
    vic, a, fiso, dpar, diso = (P[:, i] for i in range(5))
    n = axis(P[:, 5], P[:, 6])
    intra = np.exp(_cylinder_perp(arr, a / 2, dpar, n)) * stick(arr, n, dpar)
    extra = zeppelin(arr, n, dpar, (1 - vic) * dpar)
    return ((1 - fiso)[:, None] * (vic[:, None] * intra + (1 - vic)[:, None] * extra)
            + fiso[:, None] * ball(arr, diso))


# ActiveAx's dictionary: GPD cylinders per diameter, tortuous zeppelins per v_ic, free-water balls per D_iso
_ACTIVEAX_GRIDS = {"a": np.geomspace(0.5e-6, 16e-6, 12), "v_ic": np.linspace(0.05, 0.95, 8),
                   "D_iso": np.array([2.0e-9, 2.5e-9, 3.0e-9, 3.5e-9])}


def _activeax_atoms(arr, values, grids):
    dpar = values["D_par"]
    a, vic, diso = grids["a"], grids["v_ic"], grids["D_iso"]
    n = z_axes(len(a))
    cos2 = np.einsum("ki,mi->km", n, arr.u) ** 2
    G2perp = arr.G[None, :] ** 2 * np.clip(1 - cos2, 0, None)
    ic = np.exp(gpd_pgse_lnE("cylinder", arr, a / 2, np.full(len(a), dpar), G2perp)) * stick(arr, n, np.full(len(a),
                                                                                                             dpar))
    ec = zeppelin(arr, z_axes(len(vic)), np.full(len(vic), dpar), (1 - vic) * dpar)
    iso = ball(arr, diso)
    labels = [("ic", v, np.nan) for v in a] + [("ec", v, np.nan) for v in vic] + [("iso", d, np.nan) for d in diso]
    return np.vstack([ic, ec, iso]), labels


def _activeax_estimate(x, labels, values):
    kind, g, _ = atom_labels(labels)
    ic, ec, iso = (kind == "ic"), (kind == "ec"), (kind == "iso")
    s_ic, s_ec, s_iso = x[:, ic].sum(1), x[:, ec].sum(1), x[:, iso].sum(1)
    tot = np.maximum(s_ic + s_ec + s_iso, 1e-300)
    return {"v_ic": s_ic / np.maximum(s_ic + s_ec, 1e-300), "a": grid_mean(x, ic, g), "f_iso": s_iso / tot,
            "D_par": np.full(len(x), values["D_par"]), "D_iso": grid_mean(x, iso, g)}


#: ActiveAx's dictionary: D_par shapes every atom and is fixed, as AMICO does
ACTIVEAX_DICTIONARY = DictionarySpec(grids=_ACTIVEAX_GRIDS, required=("D_par",), atoms=_activeax_atoms,
                                     estimate=_activeax_estimate, oriented=True, fractions=uniform_fraction("f_iso"))


# ------------------------------------------------------------- Bingham-NODDI
def _bingham_noddi_one(arr, P):
    vic, viso, k1, k2 = P[:, 0], P[:, 1], P[:, 2], np.minimum(P[:, 3], P[:, 2])
    fr = C.frame(P[:, 4], P[:, 5], P[:, 6])
    dpar, diso = P[:, 7], P[:, 8]
    # the stick average through the Bingham normaliser (tabulated, within 1e-6 of its integral): the 48 x 48
    # direction quadrature it replaces cost 2304 exponentials per measurement and parameter set
    ic, T = C.bingham_stick(arr, fr, k1, k2, dpar)
    dperp = dpar * (1 - vic)
    Dec = dperp[:, None, None] * np.eye(3) + (dpar - dperp)[:, None, None] * T
    D6 = np.column_stack([Dec[:, 0, 0], Dec[:, 1, 1], Dec[:, 2, 2], Dec[:, 0, 1], Dec[:, 0, 2], Dec[:, 1, 2]])
    ec = np.exp(-C.rows_dot(D6, btensor6(arr)))
    return (1 - viso)[:, None] * (vic[:, None] * ic + (1 - vic)[:, None] * ec) + viso[:, None] * ball(arr, diso)


def _bingham_noddi(arr, P):
    return _chunked(_bingham_noddi_one, arr, P, 2000)


# ------------------------------------------------------------ Standard Model
_XI, _XW = C.unit_nodes(48)  # xi = u.n in [0, 1]


def _btensoraxis(arr):
    """Symmetry axis u of each (axially symmetric) b-tensor: the eigenvector whose eigenvalue stands apart."""
    def make():
        lam, vec = np.linalg.eigh(arr.B)
        dev = np.abs(lam - lam.mean(axis=1, keepdims=True))
        return vec[np.arange(len(lam)), :, np.argmax(dev, axis=1)]
    return arr.derived("btensor_axis", make)


#: Legendre polynomials of orders 0, 2, 4 on the xi nodes, times the quadrature weights
_XW_PL = {l: _XW * eval_legendre(l, _XI) for l in (0, 2, 4)}


def sm_kernel_moments(arr, d_par, d_perp, orders=(0, 2, 4)) -> dict:
    """Legendre moments k_l = int_0^1 P_l(xi) exp(-B : D(n)) dxi of an axisymmetric tensor: l -> (K, M).

    Under an axisymmetric b-tensor (b, b_delta, axis u) with xi = u.n the exponent is -b[(D_par + 2 D_perp)/3 -
    b_delta (D_par - D_perp)/3] - b b_delta (D_par - D_perp) xi^2: it depends on the measurement only through
    (b, b_delta), so the 48-node quadrature runs once per distinct shell, not per measurement.
    """
    shells, which = arr.derived("b_bd_shells", lambda: distinct_rows(np.column_stack([arr.b, arr.bd])))
    b, bd = shells[None, None, :, 0], shells[None, None, :, 1]
    dd = (d_par - d_perp)[:, None, None]
    di = ((d_par + 2 * d_perp) / 3)[:, None, None]
    kern = np.exp(-b * (di - bd * dd / 3) - b * bd * dd * _XI[None, :, None] ** 2)  # (K, X, U)
    return {l: np.matmul(_XW_PL[l], kern)[:, which] for l in orders}


def _standard_model(arr, P):
    f, fw, fe, pen = fractions(P[:, 0], P[:, 4])
    da, depar, deperp, dw, p2, p4 = P[:, 1], P[:, 2], P[:, 3], P[:, 5], P[:, 6], P[:, 7]
    mu = axis(P[:, 8], P[:, 9])
    ka = sm_kernel_moments(arr, da, np.zeros_like(da))
    ke = sm_kernel_moments(arr, depar, deperp)
    c = C.rows_dot(mu, _btensoraxis(arr))
    out = fw[:, None] * ball(arr, dw)
    for l, pl in ((0, np.ones_like(p2)), (2, p2), (4, p4)):
        Kl = f[:, None] * ka[l] + fe[:, None] * ke[l]
        out = out + (2 * l + 1) * pl[:, None] * Kl * eval_legendre(l, c)
    return pen[:, None] * out


def _sm_t2(arr, P):
    s0, f, da, depar, deperp, p2, t2a, t2e = (P[:, i] for i in range(8))
    mu = axis(P[:, 8], P[:, 9])
    wa = f[:, None] * np.exp(-arr.te[None, :] / t2a[:, None])
    we = (1 - f)[:, None] * np.exp(-arr.te[None, :] / t2e[:, None])
    c = eval_legendre(2, C.rows_dot(mu, _btensoraxis(arr)))
    out = 0.0
    for w, k in ((wa, sm_kernel_moments(arr, da, np.zeros_like(da), (0, 2))),
                 (we, sm_kernel_moments(arr, depar, deperp, (0, 2)))):
        out = out + w * (k[0] + 5 * p2[:, None] * k[2] * c)
    return s0[:, None] * out


# -------------------------------------------------------------- WMTI-Watson
def watson_moments(kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p2 and p4 (<P_l(mu.n)>) of a Watson distribution with concentration kappa (Gauss-Legendre)."""
    k = np.asarray(kappa, dtype=float)[:, None]
    w = _XW[None, :] * np.exp(k * (_XI[None, :] ** 2 - 1))
    w = w / w.sum(axis=1, keepdims=True)
    return (w * eval_legendre(2, _XI)[None]).sum(1), (w * eval_legendre(4, _XI)[None]).sum(1)


def _wmti_watson(arr, P):
    f, da, depar, deperp, kappa = (P[:, i] for i in range(5))
    mu = axis(P[:, 5], P[:, 6])
    p2, p4 = watson_moments(kappa)
    c = C.rows_dot(mu, arr.u)
    P2, P4 = eval_legendre(2, c), eval_legendre(4, c)
    x2 = 1 / 3 + (2 / 3) * p2[:, None] * P2  # <xi^2>, xi = g.n
    x4 = 1 / 5 + (4 / 7) * p2[:, None] * P2 + (8 / 35) * p4[:, None] * P4
    dd = (depar - deperp)[:, None]
    m1 = f[:, None] * da[:, None] * x2 + (1 - f)[:, None] * (deperp[:, None] + dd * x2)
    m2 = (f[:, None] * da[:, None] ** 2 * x4
          + (1 - f)[:, None] * (deperp[:, None] ** 2 + 2 * deperp[:, None] * dd * x2 + dd**2 * x4))
    b = arr.b[None, :]
    return np.exp(-b * m1 + 0.5 * b**2 * (m2 - m1**2))


# --------------------------------------------------------------------- WMTI
def wmti_from_dki(dki_params: np.ndarray, n_directions: int = 2000) -> np.ndarray:
    """White-matter tract integrity metrics from DKI parameters (Fieremans, Jensen & Helpern 2011).

    AWF f = K_max / (K_max + 3), K_max the largest apparent kurtosis over directions. In the eigenframe
    of D (eigenvalues D_i, W_i = W_iiii): D_a,i = D_i - sqrt(W_i MD^2 (1 - f) / (3 f)),
    D_e,i = D_i + sqrt(W_i MD^2 f / (3 (1 - f))) (the branch D_a < D_e of the paper).

    Parameters
    ----------
    dki_params : numpy.ndarray
        (N, 21) DKI parameters as ``validation.get_model('dki')`` orders them (SI).

    Returns
    -------
    numpy.ndarray
        (N, 6): f, D_a (intra-axonal, along the fibres), D_e_par, D_e_perp (mean of the two
        across), theta, phi of the principal eigenvector.
    """
    rng = np.random.default_rng(0)
    g = rng.normal(size=(n_directions, 3))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    out = np.empty((len(dki_params), 6))
    for k, p in enumerate(np.atleast_2d(dki_params)):
        D = tensor_from6(p[None, :6])[0]
        W = np.zeros((3, 3, 3, 3))
        for j, idx in enumerate(W_IDX):
            for perm in set(_perms(idx)):
                W[perm] = p[6 + j]
        md = np.trace(D) / 3
        dapp = np.einsum("ni,ij,nj->n", g, D, g)
        kapp = md**2 / dapp**2 * np.einsum("ni,nj,nk,nl,ijkl->n", g, g, g, g, W)
        kmax = max(float(kapp.max()), 1e-9)
        f = kmax / (kmax + 3)
        lam, vec = np.linalg.eigh(D)
        Wi = np.einsum("ai,bi,ci,di,abcd->i", vec, vec, vec, vec, W)
        Wi = np.clip(Wi, 0, None)
        da = lam - np.sqrt(Wi * md**2 * (1 - f) / (3 * f))
        de = lam + np.sqrt(Wi * md**2 * f / (3 * (1 - f)))
        e1 = vec[:, 2] * (1 if vec[2, 2] >= 0 else -1)
        out[k] = [f, da[2], de[2], 0.5 * (de[0] + de[1]), np.arccos(np.clip(e1[2], -1, 1)), np.arctan2(e1[1], e1[0])]
    return out


def _perms(idx):
    import itertools
    return itertools.permutations(idx)


def _wmti_forward(arr, P):
    n = axis(P[:, 4], P[:, 5])
    f = P[:, 0]
    return f[:, None] * stick(arr, n, P[:, 1]) + (1 - f)[:, None] * zeppelin(arr, n, P[:, 2], P[:, 3])


# ----------------------------------------------------------- temporal zeppelin
def burcaw_dperp(d_inf: np.ndarray, A: np.ndarray, delta: np.ndarray, Delta: np.ndarray) -> np.ndarray:
    """Extra-axonal D_perp(delta, Delta) for 2-D disorder, exact finite-delta PGSE form (Burcaw et al. 2015).

    D = D_inf - A [delta^2 (ln delta - 3/2) - F(Delta + delta) - F(Delta - delta) + 2 F(Delta)] /
    (delta^2 (Delta - delta/3)), F(x) = x^2 ln(x)/2 - 3 x^2/4 (analytic reference section 1.9).
    """
    def F(x):
        xs = np.maximum(x, 1e-300)
        return np.where(x > 0, xs**2 * np.log(xs) / 2 - 3 * xs**2 / 4, 0.0)

    d = np.maximum(delta, 1e-12)
    num = d**2 * (np.log(d) - 1.5) - F(Delta + d) - F(Delta - d) + 2 * F(Delta)
    return d_inf - A * num / (d**2 * (Delta - d / 3))


def _temporal_zeppelin(arr, P):
    f, da, depar, dinf, A = (P[:, i] for i in range(5))
    n = axis(P[:, 5], P[:, 6])
    dperp = burcaw_dperp(dinf[:, None], A[:, None], arr.delta[None, :], arr.Delta[None, :])
    nBn = C.quadratic_form(n, arr.B)
    extra = np.exp(-dperp * arr.b[None, :] - (depar[:, None] - dperp) * nBn)
    return f[:, None] * stick(arr, n, da) + (1 - f)[:, None] * extra


# ------------------------------------------------- restricted single compartments
def _q_perp(arr, n):
    """q = gamma G delta across the axis n (rad/m), (K, M)."""
    return arr.gamma * arr.G[None, :] * arr.delta[None, :] * np.sqrt(np.clip(1 - _cos2(arr, n), 0, None))


def _cyl_gpd(arr, P):
    R, D, n = P[:, 0], P[:, 1], axis(P[:, 2], P[:, 3])
    return np.exp(C.gpd_restricted_lnE(arr, "cylinder", R, D, n)) * stick(arr, n, D)


def _cyl_callaghan(arr, P):
    R, D, n = P[:, 0], P[:, 1], axis(P[:, 2], P[:, 3])
    x = _q_perp(arr, n) * R[:, None]
    # the tabulated series (within 1e-6 of C.narrow_pulse): the series costs ~50 us per value, the fit needs ~1e5
    return C.narrow_pulse_tabulated("cylinder", x, D[:, None] * arr.Delta[None, :] / R[:, None] ** 2) * stick(arr, n, D)


def _cyl_soderman(arr, P):
    R, D, n = P[:, 0], P[:, 1], axis(P[:, 2], P[:, 3])
    return C.soderman("cylinder", _q_perp(arr, n) * R[:, None]) * stick(arr, n, D)


def _sph_gpd(arr, P):
    return np.exp(C.gpd_restricted_lnE(arr, "sphere", P[:, 0], P[:, 1]))


def _sph_callaghan(arr, P):
    R, D = P[:, 0], P[:, 1]
    x = arr.gamma * arr.G[None, :] * arr.delta[None, :] * R[:, None]
    return C.narrow_pulse_tabulated("sphere", x, D[:, None] * arr.Delta[None, :] / R[:, None] ** 2)


def _sph_soderman(arr, P):
    return C.soderman("sphere", arr.gamma * arr.G[None, :] * arr.delta[None, :] * P[:, 0:1])


_R_CYL = Parameter("R", "m", (0.1e-6, 15e-6), 1e-6, "cylinder:effective_radius")
_R_SPH = Parameter("R", "m", (0.5e-6, 20e-6), 1e-6, "sphere:effective_radius")


MODELS = {
    "charmed": Model(
        name="charmed",
        parameters=(fraction_param("f_r", "intra_fraction"), _R_CYL, diffusivity_param("D_r", "cylinder:diffusivity"), diffusivity_param("D_h_par"), diffusivity_param("D_h_perp"), THETA, PHI),
        forward=_charmed,
        assumptions="restricted cylinders of one radius (Gaussian phase approximation of van Gelderen 1994, which "
            "contains the Neuman long-pulse form of the original) with Gaussian parallel diffusion, plus a hindered "
            "axisymmetric Gaussian tensor aligned with the fibres; no exchange; R is often fixed (fixed={'R': ...})",
        requires={"pgse"},
        advice="high b (up to ~10000 s/mm^2)",
        reference="Assaf et al. 2004; Assaf & Basser 2005",
        orientation=(5, 6)),
    "axcaliber": Model(
        name="axcaliber",
        parameters=(fraction_param("f_r", "intra_fraction"), Parameter("alpha", "1", (1.0, 30.0), 5.0, "cylinder:gamma_alpha"),
            Parameter("beta", "m", (0.02e-6, 3e-6), 1e-6, "cylinder:gamma_beta"), diffusivity_param("D_par", "cylinder:diffusivity"), diffusivity_param("D_h"),
            THETA, PHI),
        forward=_axcaliber,
        assumptions="restricted cylinders with a Gamma(alpha, beta) radius distribution, volume-weighted "
            "(R^2 P(R)), each in the Gaussian phase approximation, plus hindered Gaussian diffusion (D_par along, D_h "
            "across); alpha, beta are those of the number-weighted distribution (compare with the substrate's radius "
            "histogram); no exchange",
        requires={"pgse"},
        advice="several Delta, gradients across the fibres",
        reference="Assaf et al. 2008",
        orientation=(5, 6)),
    "activeax": Model(
        name="activeax",
        parameters=(fraction_param("v_ic", "intra_fraction"), Parameter("a", "m", (0.2e-6, 20e-6), 1e-6, "cylinder:effective_diameter"),
            fraction_param("f_iso"), diffusivity_param("D_par", "cylinder:diffusivity"), diffusivity_param("D_iso"), THETA, PHI),
        forward=_activeax,
        assumptions="cylinders of one diameter a (Gaussian phase approximation) + tortuous zeppelin "
            "D_perp = (1 - v_ic) D_par + isotropic CSF; a estimates the volume-weighted effective diameter "
            "2 (<r^6>/<r^2>)^(1/4); the original fixes D_par = 1.7e-9 (in vivo) and D_iso = 3e-9 (pass them in "
            "fixed=...)",
        requires={"pgse"},
        advice="at least two (Delta, G) combinations across the fibres",
        reference="Alexander et al. 2010",
        orientation=(5, 6),
        dictionary=ACTIVEAX_DICTIONARY),
    "bingham_noddi": Model(
        name="bingham_noddi",
        parameters=(fraction_param("v_ic", "intra_fraction"), fraction_param("v_iso"), Parameter("kappa1", "1", (0.0, 64.0), 10.0, None),
            Parameter("kappa2", "1", (0.0, 32.0), 10.0, None), THETA, PHI,
            Parameter("psi", "rad", (0.0, np.pi), 1.0, None), diffusivity_param("d_par"), diffusivity_param("d_iso")),
        forward=_bingham_noddi,
        assumptions="Bingham-dispersed sticks (ODF ~ exp(kappa1 (mu1.n)^2 + kappa2 (mu2.n)^2), kappa2 <= "
            "kappa1, mu2 at angle psi about mu1) + the Bingham-averaged tortuous zeppelin + isotropic CSF; the original "
            "fixes d_par = 1.7e-9 and d_iso = 3e-9 (pass them in fixed=...)",
        advice="at least two shells",
        reference="Tariq et al. 2016",
        orientation=(4, 5)),
    "standard_model": Model(
        name="standard_model",
        parameters=(fraction_param("f", "intra_fraction"), diffusivity_param("D_a", "cylinder:diffusivity"), diffusivity_param("D_e_par"), diffusivity_param("D_e_perp"), fraction_param("f_w"), diffusivity_param("D_w"),
            Parameter("p2", "1", (0.0, 1.0), 1.0, "odf_p2"), Parameter("p4", "1", (0.0, 1.0), 1.0, None), THETA, PHI),
        forward=_standard_model,
        assumptions="Standard Model: sticks (D_a) + axisymmetric extra-axonal zeppelins (D_e_par, D_e_perp) "
            "sharing one axially symmetric ODF (rotational invariants p2, p4; l > 4 neglected) + free water (f_w, "
            "D_w); Gaussian compartments, no exchange; any axisymmetric b-tensor shape (linear, planar, spherical) "
            "enters through b_delta. With linear encoding only the fit is degenerate (Jelescu et al. 2016): add "
            "spherical or planar encoding, or fix parameters",
        advice="at least two shells; b-tensor shapes to break the degeneracy",
        reference="Novikov et al. 2018, 2019; Reisert et al. 2017; Coelho et al. 2022",
        orientation=(8, 9)),
    "sm_t2": Model(
        name="sm_t2",
        parameters=(Parameter("s0", "1", (0.0, 2.0), 1.0, None), fraction_param("f", "intra_fraction"), diffusivity_param("D_a", "cylinder:diffusivity"),
            diffusivity_param("D_e_par"), diffusivity_param("D_e_perp"), Parameter("p2", "1", (0.0, 1.0), 1.0, "odf_p2"),
            Parameter("T2_a", "s", (5e-3, 0.3), 0.05, None), Parameter("T2_e", "s", (5e-3, 0.3), 0.05, None),
            THETA, PHI),
        forward=_sm_t2,
        assumptions="Standard Model with compartment T2 and b-tensor shape (Lampinen et al. 2020): sticks and one "
            "zeppelin sharing an l <= 2 axially symmetric ODF (p2), each weighted by exp(-TE/T2); signals normalised "
            "to a common S0 (s0 absorbs it); f is the T2-free stick fraction; Gaussian compartments, no exchange",
        requires={"echo_times"},
        advice="b-tensor shapes",
        reference="Lampinen et al. 2020; md-dmri dtd_smr",
        orientation=(8, 9)),
    "wmti": Model(
        name="wmti",
        parameters=(fraction_param("f", "intra_fraction"), diffusivity_param("D_a", "cylinder:diffusivity"), diffusivity_param("D_e_par"), diffusivity_param("D_e_perp"), THETA, PHI),
        forward=_wmti_forward,
        assumptions="white-matter tract integrity from a DKI fit: aligned fibres, two Gaussian compartments, "
            "the branch D_a < D_e of Fieremans et al.; AWF from the largest apparent kurtosis; the forward model is "
            "sticks + zeppelin with these parameters",
        requires={"lte"},
        advice="DKI shells (b <= ~2500 s/mm^2)",
        reference="Fieremans, Jensen & Helpern 2011",
        orientation=(4, 5),
        via=("dki", lambda arr, p: wmti_from_dki(p))),
    "wmti_watson": Model(
        name="wmti_watson",
        parameters=(fraction_param("f", "intra_fraction"), diffusivity_param("D_a", "cylinder:diffusivity"), diffusivity_param("D_e_par"), diffusivity_param("D_e_perp"),
            Parameter("kappa", "1", (0.0, 64.0), 10.0, None), THETA, PHI),
        forward=_wmti_watson,
        assumptions="Standard Model with a Watson ODF, fitted through its fourth-order cumulant expansion "
            "(what the axially symmetric DKI parameters determine); two solution branches (D_a > D_e_par or < ) fit "
            "equally well: fix or bound D_a to choose one",
        requires={"lte"},
        advice="DKI shells (b <= ~2500 s/mm^2)",
        reference="Jespersen, Olesen, Hansen & Shemesh 2018",
        orientation=(5, 6)),
    "temporal_zeppelin": Model(
        name="temporal_zeppelin",
        parameters=(fraction_param("f", "intra_fraction"), diffusivity_param("D_a", "cylinder:diffusivity"), diffusivity_param("D_e_par"), diffusivity_param("D_inf"),
            Parameter("A", "m^2", (0.0, 5e-12), 1e-12, None), THETA, PHI),
        forward=_temporal_zeppelin,
        assumptions="sticks + a zeppelin whose perpendicular diffusivity follows the 2-D disorder law "
            "D_perp(delta, Delta) = D_inf + A ln(Delta/delta)/Delta-type (exact finite-delta form, Burcaw et al. "
            "2015); Gaussian compartments, no exchange",
        requires={"pgse"},
        advice="several Delta",
        reference="Burcaw, Fieremans & Novikov 2015; Fieremans et al. 2016",
        orientation=(5, 6)),
    "cylinder_gpd": Model(
        name="cylinder_gpd",
        parameters=(_R_CYL, diffusivity_param("D", "cylinder:diffusivity"), THETA, PHI),
        forward=_cyl_gpd,
        assumptions="one impermeable cylinder, Gaussian phase approximation for any waveform (exact double integral of the "
            "played waveform), free Gaussian diffusion along the axis",
        reference="Stepisnik 1993; van Gelderen 1994",
        orientation=(2, 3)),
    "cylinder_callaghan": Model(
        name="cylinder_callaghan",
        parameters=(_R_CYL, diffusivity_param("D", "cylinder:diffusivity"), THETA, PHI),
        forward=_cyl_callaghan,
        assumptions="one impermeable cylinder, narrow-pulse approximation (delta -> 0, q = gamma G delta, any Delta; "
            "Callaghan 1995 eigenfunction series), free diffusion along the axis",
        requires={"pgse"},
        reference="Callaghan 1995; Soderman & Jonsson 1995",
        orientation=(2, 3)),
    "cylinder_soderman": Model(
        name="cylinder_soderman",
        parameters=(_R_CYL, diffusivity_param("D", "cylinder:diffusivity"), THETA, PHI),
        forward=_cyl_soderman,
        assumptions="one impermeable cylinder, narrow pulse and long diffusion time (Stejskal-Tanner/Soderman limit "
            "(2 J1(qR)/qR)^2 across), free diffusion along the axis",
        requires={"pgse"},
        reference="Soderman & Jonsson 1995",
        orientation=(2, 3)),
    "sphere_gpd": Model(
        name="sphere_gpd",
        parameters=(_R_SPH, diffusivity_param("D", "sphere:diffusivity")),
        forward=_sph_gpd,
        assumptions="one impermeable sphere, Gaussian phase approximation for any waveform",
        reference="Murday & Cotts 1968; "
            "Stepisnik 1993"),
    "sphere_callaghan": Model(
        name="sphere_callaghan",
        parameters=(_R_SPH, diffusivity_param("D", "sphere:diffusivity")),
        forward=_sph_callaghan,
        assumptions="one impermeable sphere, narrow-pulse approximation (Callaghan 1995 series)",
        requires={"pgse"},
        reference="Callaghan 1995"),
    "sphere_soderman": Model(
        name="sphere_soderman",
        parameters=(_R_SPH,),
        forward=_sph_soderman,
        assumptions="one impermeable sphere, narrow pulse and long diffusion time ((3 j1(qR)/qR)^2); no diffusivity "
            "dependence",
        requires={"pgse"},
        reference="Stejskal & Tanner 1965 limit; Balinov et al. 1993"),
}


# ------------------------------------------------------- rotational invariants (SMI)
def _real_sh(l: int, u: np.ndarray) -> np.ndarray:
    """(M, 2l+1) real orthonormal spherical harmonics of degree l at unit vectors u."""
    from scipy.special import sph_harm_y
    theta = np.arccos(np.clip(u[:, 2], -1, 1))
    phi = np.arctan2(u[:, 1], u[:, 0])
    cols = []
    for m in range(-l, l + 1):
        y = sph_harm_y(l, abs(m), theta, phi)
        cols.append(np.sqrt(2) * (-1) ** m * (y.imag if m < 0 else y.real) if m != 0 else y.real)
    return np.column_stack(cols)


def rotational_invariants(scheme, signals, l_max: int = 4, decimals: int = -6) -> dict:
    """Rotational invariants S_l(b, b_delta) of signals, per shell (Standard Model imaging, SMI).

    Each shell (b rounded to ``10**-decimals`` s/m^2, one b_delta) is fitted with even real spherical
    harmonics up to l_max; S_l = ||s_l|| / sqrt(4 pi (2l + 1)), so that for the Standard Model
    S_l = p_l K_l(b) (S_0 is the spherical mean, analytic reference section 2.2).

    Parameters
    ----------
    scheme : sequences.Scheme
    signals : array_like
        (N, M) or (M,) signals.
    l_max : int
        Highest even degree (a shell needs at least (l_max + 1)(l_max + 2)/2 directions).
    decimals : int
        Rounding of b used to group shells.

    Returns
    -------
    dict
        ``b`` (S,) s/m^2, ``b_delta`` (S,), ``l`` (L,) degrees, ``S`` (N, S, L) invariants.
    """
    Y = np.atleast_2d(np.asarray(signals, dtype=float))
    b = np.round(scheme.bvalues, decimals)
    bd = np.round(scheme.b_delta, 3)
    u = scheme.directions
    ls = list(range(0, l_max + 1, 2))
    keys = sorted({(bb, dd) for bb, dd in zip(b, bd) if bb > 0})
    out = np.zeros((len(Y), len(keys), len(ls)))
    for k, (bb, dd) in enumerate(keys):
        sel = (b == bb) & (bd == dd)
        lmax_here = 0 if abs(dd) < 1e-6 else l_max  # spherical encoding carries no orientation
        basis = [_real_sh(l, u[sel]) for l in ls if l <= lmax_here]
        A = np.column_stack(basis)
        if sel.sum() < A.shape[1]:
            raise ValueError(f"the shell b = {bb:g} s/m^2 (b_delta {dd:g}) has {sel.sum()} directions; l_max = "
                             f"{l_max} needs {A.shape[1]}. Lower l_max or add directions")
        coef = np.linalg.lstsq(A, Y[:, sel].T, rcond=None)[0].T
        start = 0
        for j, l in enumerate(ls):
            if l > lmax_here:
                break
            c = coef[:, start:start + 2 * l + 1]
            out[:, k, j] = np.linalg.norm(c, axis=1) / np.sqrt(4 * np.pi * (2 * l + 1))
            start += 2 * l + 1
    return {"b": np.array([k[0] for k in keys]), "b_delta": np.array([k[1] for k in keys]), "l": np.array(ls),
            "S": out}
