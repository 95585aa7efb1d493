"""The basic model catalogue: DTI, DKI, IVIM, free-water DTI, Ball & Stick, Stick + Zeppelin, Cylinder + Zeppelin,
Sphere + Ball, SMT, MC-SMT, SANDI, VERDICT, NODDI-Watson (the others: :mod:`validation.models_white_matter`,
:mod:`validation.models_grey_matter`; all of them: :mod:`validation.registry`).

Every model states its parameters (name, SI unit, bounds, optimisation scale),
the schemes it supports (others are refused with a clear message), its
assumptions, and for each parameter the ground-truth quantity of a substrate it
estimates (the "GT in MC" column of the analytic reference, section 2). There
are no hidden fixed diffusivities: every diffusivity is a parameter unless the
user fixes it explicitly when fitting.

Forward functions are vectorised: ``model.signal(scheme, P)`` with P of shape
(K, n_params) returns (K, M) normalised signals.
"""

from __future__ import annotations

import numpy as np

from .base import (B_UNIT, D_BOUNDS, D_MAX, PHI, THETA, W_IDX, DictionarySpec, LinearDesign, Model, Parameter,
                   atom_labels, axis, ball, btensor6, dki_columns, dti_start, fractions, gpd_pgse_lnE, grid_mean,
                   spherical_mean, stick, uniform_fraction, watson_stick, watson_tau, z_axes, zeppelin)
from .compartments import rows_dot


# ------------------------------------------------------------------ models
def _dti(arr, P):
    return np.exp(-rows_dot(P[:, :6], btensor6(arr)))


def _ball_stick(arr, P):
    f, d = P[:, 0], P[:, 1]
    n = axis(P[:, 2], P[:, 3])
    return f[:, None] * stick(arr, n, d) + (1 - f)[:, None] * ball(arr, d)


def _stick_zeppelin(arr, P):
    f, dpar, dperp = P[:, 0], P[:, 1], P[:, 2]
    n = axis(P[:, 3], P[:, 4])
    return f[:, None] * stick(arr, n, dpar) + (1 - f)[:, None] * zeppelin(arr, n, dpar, dperp)


def _cylinder_zeppelin(arr, P):
    f, R, dpar, dperp = P[:, 0], P[:, 1], P[:, 2], P[:, 3]
    n = axis(P[:, 4], P[:, 5])
    cos2 = rows_dot(n, arr.u) ** 2
    G2perp = arr.G[None, :] ** 2 * np.clip(1 - cos2, 0, None)
    intra = np.exp(gpd_pgse_lnE("cylinder", arr, R, dpar, G2perp)) * stick(arr, n, dpar)
    return f[:, None] * intra + (1 - f)[:, None] * zeppelin(arr, n, dpar, dperp)


def _sphere_ball(arr, P):
    f, R, din, dex = P[:, 0], P[:, 1], P[:, 2], P[:, 3]
    G2 = np.broadcast_to(arr.G[None, :] ** 2, (len(P), len(arr.G)))
    intra = np.exp(gpd_pgse_lnE("sphere", arr, R, din, G2))
    return f[:, None] * intra + (1 - f)[:, None] * ball(arr, dex)


def _ivim(arr, P):
    f, dstar, d = P[:, 0], P[:, 1], P[:, 2]
    return f[:, None] * ball(arr, dstar) + (1 - f)[:, None] * ball(arr, d)


def _fw_dti(arr, P):
    fw, dw = P[:, 6], P[:, 7]
    return (1 - fw)[:, None] * _dti(arr, P[:, :6]) + fw[:, None] * ball(arr, dw)


def _fw_dti_start(arr, Y):
    D = dti_start(arr, Y)
    return np.column_stack([D, np.full(len(Y), 0.1), np.full(len(Y), 3e-9)])


def _dki(arr, P):
    Xd, Xw = dki_columns(arr.u)
    dapp = rows_dot(P[:, :6], Xd)
    md = P[:, :3].mean(axis=1)
    return np.exp(-arr.b[None, :] * dapp + arr.b[None, :] ** 2 * md[:, None] ** 2 * rows_dot(P[:, 6:], Xw) / 6)


def _dki_start(arr, Y):
    Xd, Xw = dki_columns(arr.u)
    A = np.column_stack([-arr.b[:, None] * Xd, arr.b[:, None] ** 2 / 6 * Xw])
    coef = rows_dot(np.log(np.clip(Y, 1e-6, None)), np.linalg.pinv(A))
    md = np.clip(coef[:, :3].mean(axis=1), 1e-12, None)
    return np.column_stack([coef[:, :6], coef[:, 6:] / md[:, None] ** 2])


# ------------------------------------------------------------------ log-linear designs
def _tensor_columns(B: np.ndarray) -> np.ndarray:
    """-B : D as a row over D's elements xx, yy, zz, xy, xz, yz (B in scaled units)."""
    return -np.column_stack([B[:, 0, 0], B[:, 1, 1], B[:, 2, 2], 2 * B[:, 0, 1], 2 * B[:, 0, 2], 2 * B[:, 1, 2]])


def dti_design(arr) -> LinearDesign:
    """The log-linear design of DTI on a scheme: ln S = -B : D + ln S0.

    Parameters
    ----------
    arr : SchemeArrays
        The scheme's arrays (SI).

    Returns
    -------
    LinearDesign
        (M, 7) design (b in ms/um^2, intercept last); its parameters are the six tensor elements in m^2/s.
    """
    X = np.column_stack([_tensor_columns(arr.B / B_UNIT), np.ones(len(arr.b))])
    return LinearDesign(X, lambda beta: beta / B_UNIT)


def dki_design(arr) -> LinearDesign:
    """The log-linear design of DKI on a scheme: ln S = -b D_app + b^2 MD^2 K_app / 6 + ln S0.

    Parameters
    ----------
    arr : SchemeArrays
        The scheme's arrays (SI; linear encoding).

    Returns
    -------
    LinearDesign
        (M, 22) design (b in ms/um^2, intercept last) with the row of the mean kurtosis tensor; its parameters
        are the six tensor elements (m^2/s) and the 15 kurtosis-tensor elements (dimensionless).
    """
    b = arr.b / B_UNIT
    Xd, Xw = dki_columns(arr.u)
    X = np.column_stack([-b[:, None] * Xd, b[:, None] ** 2 / 6 * Xw, np.ones(len(b))])

    def to_params(beta):
        md = beta[:, :3].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            W = beta[:, 6:] / md[:, None] ** 2
        return np.column_stack([beta[:, :6] / B_UNIT, np.where(md[:, None] > 0, W, np.nan)])

    # mean of the kurtosis tensor: (W1111 + W2222 + W3333 + 2 (W1122 + W1133 + W2233)) / 5, the W coefficients
    # scaled by MD^2 > 0, so the sign is that of this row times beta
    row = np.zeros(21)
    row[6:9] = 1.0
    row[15:18] = 2.0
    return LinearDesign(X, to_params, row / 5)


def _smt(arr, P):
    return spherical_mean(arr, P[:, 0], P[:, 1])


def _mc_smt(arr, P):
    v, lam = P[:, 0], P[:, 1]
    return (v[:, None] * spherical_mean(arr, lam, np.zeros_like(lam))
            + (1 - v)[:, None] * spherical_mean(arr, lam, (1 - v) * lam))


def _sandi(arr, P):
    fin, fis, fec, pen = fractions(P[:, 0], P[:, 1])
    din, Rs, dis, dec = P[:, 2], P[:, 3], P[:, 4], P[:, 5]
    G2 = np.broadcast_to(arr.G[None, :] ** 2, (len(P), len(arr.G)))
    soma = np.exp(gpd_pgse_lnE("sphere", arr, Rs, dis, G2))
    return pen[:, None] * (fin[:, None] * spherical_mean(arr, din, np.zeros_like(din)) + fis[:, None] * soma
                           + fec[:, None] * ball(arr, dec))


def _verdict(arr, P):
    fic, fees, fvasc, pen = fractions(P[:, 0], P[:, 1])
    R, dic, dees, pv = P[:, 2], P[:, 3], P[:, 4], P[:, 5]
    G2 = np.broadcast_to(arr.G[None, :] ** 2, (len(P), len(arr.G)))
    cells = np.exp(gpd_pgse_lnE("sphere", arr, R, dic, G2))
    return pen[:, None] * (fic[:, None] * cells + fees[:, None] * ball(arr, dees)
                           + fvasc[:, None] * spherical_mean(arr, pv, np.zeros_like(pv)))


def _noddi_watson(arr, P):
    vic, viso, kappa = P[:, 0], P[:, 1], P[:, 2]
    mu = axis(P[:, 3], P[:, 4])
    dpar, diso = P[:, 5], P[:, 6]
    dperp = dpar * (1 - vic)  # tortuosity
    tau = watson_tau(kappa)
    lam_par = dperp + (dpar - dperp) * tau
    lam_perp = dperp + (dpar - dperp) * (1 - tau) / 2
    ec = zeppelin(arr, mu, lam_par, lam_perp)
    ic = watson_stick(arr, mu, kappa, dpar)
    return (1 - viso)[:, None] * (vic[:, None] * ic + (1 - vic)[:, None] * ec) + viso[:, None] * ball(arr, diso)


# ------------------------------------------------------------------ dictionaries (the dictionary method)
# NODDI-Watson: Watson sticks per kappa, tortuous Watson zeppelins per (kappa, v_ic), free-water balls per d_iso;
# kappa is gridded evenly in the orientation dispersion index
_NODDI_ODI = np.linspace(0.01, 0.99, 10)
_NODDI_GRIDS = {"kappa": 1.0 / np.tan(_NODDI_ODI * np.pi / 2), "v_ic": np.linspace(0.05, 0.95, 8),
                "d_iso": np.array([2.0e-9, 2.5e-9, 3.0e-9, 3.5e-9])}


def _noddi_atoms(arr, values, grids):
    dpar = values["d_par"]
    kap, vic, diso = grids["kappa"], grids["v_ic"], grids["d_iso"]
    nk = len(kap)
    ic = watson_stick(arr, z_axes(nk), kap, np.full(nk, dpar))
    K, V = np.meshgrid(kap, vic, indexing="ij")
    K, V = K.ravel(), V.ravel()
    dperp = dpar * (1 - V)
    tau = watson_tau(K)
    ec = zeppelin(arr, z_axes(len(K)), dperp + (dpar - dperp) * tau, dperp + (dpar - dperp) * (1 - tau) / 2)
    iso = ball(arr, diso)
    labels = ([("ic", k, np.nan) for k in kap] + [("ec", k, v) for k, v in zip(K, V)]
              + [("iso", d, np.nan) for d in diso])
    return np.vstack([ic, ec, iso]), labels


def _noddi_estimate(x, labels, values):
    kind, g1, g2 = atom_labels(labels)
    ic, ec, iso = (kind == "ic"), (kind == "ec"), (kind == "iso")
    s_ic, s_ec, s_iso = x[:, ic].sum(1), x[:, ec].sum(1), x[:, iso].sum(1)
    tot = np.maximum(s_ic + s_ec + s_iso, 1e-300)
    # kappa through the orientation dispersion index of the sticks (ec atoms share it: their weights count too)
    odi = 2 / np.pi * np.arctan(1 / g1[ic | ec])
    w = x[:, ic | ec]
    odi_hat = (w @ odi) / np.maximum(w.sum(1), 1e-300)
    vic_ec = (x[:, ec] @ g2[ec]) / np.maximum(s_ec, 1e-300)
    vic = np.where(s_ic + s_ec > 0, s_ic / np.maximum(s_ic + s_ec, 1e-300), vic_ec)
    return {"v_ic": vic, "v_iso": s_iso / tot, "kappa": 1 / np.tan(np.clip(odi_hat, 1e-6, 1) * np.pi / 2),
            "d_par": np.full(len(x), values["d_par"]), "d_iso": grid_mean(x, iso, g1)}


# SANDI: stick spherical means per D_in, GPD spheres per (R_s, D_is), balls per D_ec
_SANDI_GRIDS = {"D_in": np.linspace(0.5e-9, 3.0e-9, 6), "R_s": np.linspace(2e-6, 12e-6, 11),
                "D_is": np.array([1e-9, 2e-9, 3e-9]), "D_ec": np.linspace(0.5e-9, 3.0e-9, 6)}


def _sandi_atoms(arr, values, grids):
    din, rs, dis, dec = grids["D_in"], grids["R_s"], grids["D_is"], grids["D_ec"]
    sticks = spherical_mean(arr, din, np.zeros_like(din))
    R, D = np.meshgrid(rs, dis, indexing="ij")
    R, D = R.ravel(), D.ravel()
    G2 = np.broadcast_to(arr.G[None, :] ** 2, (len(R), len(arr.G)))
    somas = np.exp(gpd_pgse_lnE("sphere", arr, R, D, G2))
    balls = ball(arr, dec)
    labels = ([("in", d, np.nan) for d in din] + [("is", r, d) for r, d in zip(R, D)]
              + [("ec", d, np.nan) for d in dec])
    return np.vstack([sticks, somas, balls]), labels


def _sandi_estimate(x, labels, values):
    kind, g1, g2 = atom_labels(labels)
    i_n, i_s, i_e = (kind == "in"), (kind == "is"), (kind == "ec")
    s_n, s_s, s_e = x[:, i_n].sum(1), x[:, i_s].sum(1), x[:, i_e].sum(1)
    tot = np.maximum(s_n + s_s + s_e, 1e-300)
    return {"f_in": s_n / tot, "f_is": s_s / tot, "D_in": grid_mean(x, i_n, g1), "R_s": grid_mean(x, i_s, g1),
            "D_is": grid_mean(x, i_s, g2), "D_ec": grid_mean(x, i_e, g1)}


def _sandi_fractions(rng, n):
    f = rng.dirichlet(np.ones(3), n)
    return {"f_in": f[:, 0], "f_is": f[:, 1]}


#: NODDI-Watson's dictionary: d_par shapes every atom and is fixed, as AMICO does
NODDI_DICTIONARY = DictionarySpec(grids=_NODDI_GRIDS, required=("d_par",), atoms=_noddi_atoms,
                                  estimate=_noddi_estimate, oriented=True, fractions=uniform_fraction("v_iso"),
                                  odi=_NODDI_ODI)
#: SANDI's dictionary (spherical means: no orientation)
SANDI_DICTIONARY = DictionarySpec(grids=_SANDI_GRIDS, required=(), atoms=_sandi_atoms, estimate=_sandi_estimate,
                                  oriented=False, fractions=_sandi_fractions)


MODELS_DTI_PARAMS = (tuple(Parameter(n, "m^2/s", D_BOUNDS, 1e-9, None) for n in ("Dxx", "Dyy", "Dzz"))
                     + tuple(Parameter(n, "m^2/s", (-D_MAX, D_MAX), 1e-9, None) for n in ("Dxy", "Dxz", "Dyz")))

MODELS: dict[str, Model] = {
    "dti": Model(
        name="dti",
        parameters=MODELS_DTI_PARAMS,
        forward=_dti,
        assumptions="Gaussian diffusion (one diffusion tensor); valid at low b (b D << 1)",
        reference="Basser, Mattiello & LeBihan 1994",
        initial=dti_start,
        design=dti_design),
    "ball_stick": Model(
        name="ball_stick",
        parameters=(Parameter("f", "1", (0.0, 1.0), 1.0, "intra_fraction"), Parameter("d", "m^2/s", D_BOUNDS, 1e-9, None),
            THETA, PHI),
        forward=_ball_stick,
        assumptions="Gaussian compartments, no exchange, one diffusivity shared by stick and ball, one fibre "
            "direction",
        reference="Behrens et al. 2003",
        orientation=(2, 3)),
    "stick_zeppelin": Model(
        name="stick_zeppelin",
        parameters=(Parameter("f", "1", (0.0, 1.0), 1.0, "intra_fraction"),
            Parameter("D_par", "m^2/s", D_BOUNDS, 1e-9, "cylinder:diffusivity"),
            Parameter("D_perp", "m^2/s", D_BOUNDS, 1e-9, None), THETA, PHI),
        forward=_stick_zeppelin,
        assumptions="Gaussian compartments, zero axon radius, no exchange, the extra-axonal parallel "
            "diffusivity equals the intra-axonal one, one fibre direction",
        reference="Panagiotaki et al. 2012",
        orientation=(3, 4)),
    "cylinder_zeppelin": Model(
        name="cylinder_zeppelin",
        parameters=(Parameter("f", "1", (0.0, 1.0), 1.0, "intra_fraction"),
            Parameter("R", "m", (0.1e-6, 15e-6), 1e-6, "cylinder:effective_radius"),
            Parameter("D_par", "m^2/s", D_BOUNDS, 1e-9, "cylinder:diffusivity"),
            Parameter("D_perp", "m^2/s", D_BOUNDS, 1e-9, None), THETA, PHI),
        forward=_cylinder_zeppelin,
        assumptions="one cylinder radius (Gaussian phase approximation, van Gelderen 1994) plus a "
            "Gaussian zeppelin, no exchange, one fibre direction; R estimates the volume-weighted effective radius "
            "(<r^6>/<r^2>)^(1/4) (wide pulses)",
        requires={"pgse"},
        advice="gradients across the fibres",
        reference="Alexander et al. 2010 (ActiveAx), Assaf et al. 2008 (AxCaliber, single radius)",
        orientation=(4, 5)),
    "sphere_ball": Model(
        name="sphere_ball",
        parameters=(Parameter("f", "1", (0.0, 1.0), 1.0, "sphere:intra_fraction"),
            Parameter("R", "m", (0.5e-6, 20e-6), 1e-6, "sphere:effective_radius"),
            Parameter("D_in", "m^2/s", D_BOUNDS, 1e-9, "sphere:diffusivity"),
            Parameter("D_ex", "m^2/s", D_BOUNDS, 1e-9, None)),
        forward=_sphere_ball,
        assumptions="impermeable spheres (Gaussian phase approximation, Murday & Cotts 1968) plus an isotropic "
            "Gaussian extra-cellular space, no exchange",
        requires={"pgse"},
        reference="Murday & Cotts 1968; VERDICT/SANDI-type soma compartment"),
    "ivim": Model(
        name="ivim",
        parameters=(Parameter("f", "1", (0.0, 1.0), 1.0, None), Parameter("D_star", "m^2/s", (3e-9, 100e-9), 1e-8, None),
            Parameter("D", "m^2/s", D_BOUNDS, 1e-9, None)),
        forward=_ivim,
        assumptions="two Gaussian pools: pseudo-diffusion (perfusion, D* >> D) and tissue diffusion",
        reference="Le Bihan et al. 1988"),
    "fw_dti": Model(
        name="fw_dti",
        parameters=MODELS_DTI_PARAMS + (Parameter("f_w", "1", (0.0, 1.0), 1.0, None),
            Parameter("D_w", "m^2/s", D_BOUNDS, 1e-9, None)),
        forward=_fw_dti,
        assumptions="a diffusion tensor plus an isotropic free-water pool; the original fixes D_w = 3e-9 m^2/s "
            "(pass fixed={'D_w': 3e-9})",
        reference="Pasternak et al. 2009",
        initial=_fw_dti_start,
        # free-water DTI stays with "lm" by default: its log-linear fit is faster but spreads f_w ~1.4x wider
        # at SNR 50
        design=dti_design,
        free_water=("f_w", "D_w")),
    "dki": Model(
        name="dki",
        parameters=MODELS_DTI_PARAMS + tuple(Parameter("W" + "".join(str(i + 1) for i in idx), "1", (-5.0, 10.0), 1.0, None)
            for idx in W_IDX),
        forward=_dki,
        assumptions="fourth-order cumulant expansion of ln E in b (valid for b up to ~2500 s/mm^2), linear encoding",
        requires={"lte"},
        advice="at least two non-zero shells",
        reference="Jensen et al. 2005",
        initial=_dki_start,
        design=dki_design,
        constraints={"mkt_nonnegative"}),
    "smt": Model(
        name="smt",
        parameters=(Parameter("lambda_par", "m^2/s", D_BOUNDS, 1e-9, None), Parameter("lambda_perp", "m^2/s", D_BOUNDS, 1e-9, None)),
        forward=_smt,
        assumptions="spherical mean of one axisymmetric Gaussian microenvironment (any orientation distribution); "
            "the directions of each shell cover the sphere evenly",
        advice="at least two shells",
        reference="Kaden, Kruggel & Alexander 2016"),
    "mc_smt": Model(
        name="mc_smt",
        parameters=(Parameter("v", "1", (0.0, 1.0), 1.0, "intra_fraction"),
            Parameter("lambda", "m^2/s", D_BOUNDS, 1e-9, "cylinder:diffusivity")),
        forward=_mc_smt,
        assumptions="spherical mean of sticks plus a zeppelin with the same parallel diffusivity and tortuous "
            "perpendicular one (1 - v) lambda; no exchange",
        advice="at least two shells",
        reference="Kaden et al. 2016 (NeuroImage 139:346)"),
    "sandi": Model(
        name="sandi",
        parameters=(Parameter("f_in", "1", (0.0, 1.0), 1.0, None), Parameter("f_is", "1", (0.0, 1.0), 1.0, "soma_fraction"),
            Parameter("D_in", "m^2/s", (0.1e-9, 3e-9), 1e-9, None),
            Parameter("R_s", "m", (1e-6, 12e-6), 1e-6, "sphere:effective_radius"),
            Parameter("D_is", "m^2/s", D_BOUNDS, 1e-9, "sphere:diffusivity"), Parameter("D_ec", "m^2/s", (0.05e-9, 3e-9), 1e-9, None)),
        forward=_sandi,
        assumptions="sticks (neurites, spherical mean) + impermeable spheres (somas, GPD) + isotropic Gaussian "
            "extra-cellular space, no exchange; f_ec = 1 - f_in - f_is (sums above 1 are rescaled). The original fixes "
            "D_is = 3e-9 (pass fixed={'D_is': 3e-9})",
        requires={"pgse"},
        advice="high b",
        reference="Palombo et al. 2020",
        dictionary=SANDI_DICTIONARY),
    "verdict": Model(
        name="verdict",
        parameters=(Parameter("f_ic", "1", (0.0, 1.0), 1.0, "soma_fraction"), Parameter("f_ees", "1", (0.0, 1.0), 1.0, None),
            Parameter("R", "m", (0.5e-6, 15e-6), 1e-6, "sphere:effective_radius"),
            Parameter("D_ic", "m^2/s", D_BOUNDS, 1e-9, "sphere:diffusivity"), Parameter("D_ees", "m^2/s", D_BOUNDS, 1e-9, None),
            Parameter("P", "m^2/s", (0.0, 20e-9), 1e-9, None)),
        forward=_verdict,
        assumptions="impermeable spheres (GPD) + isotropic extra-cellular space + randomly oriented sticks "
            "(vascular pseudo-diffusion); f_vasc = 1 - f_ic - f_ees",
        requires={"pgse"},
        reference="Panagiotaki et al. 2014"),
    "noddi_watson": Model(
        name="noddi_watson",
        parameters=(Parameter("v_ic", "1", (0.0, 1.0), 1.0, "intra_fraction"), Parameter("v_iso", "1", (0.0, 1.0), 1.0, None),
            Parameter("kappa", "1", (0.0, 64.0), 10.0, None), THETA, PHI,
            Parameter("d_par", "m^2/s", D_BOUNDS, 1e-9, None), Parameter("d_iso", "m^2/s", D_BOUNDS, 1e-9, None)),
        forward=_noddi_watson,
        assumptions="Watson-dispersed sticks + Watson-averaged tortuous zeppelin (d_perp = d_par (1 - v_ic)) + "
            "isotropic CSF; the original fixes d_par = 1.7e-9 and d_iso = 3e-9 (pass them in fixed=...)",
        advice="at least two shells",
        reference="Zhang et al. 2012",
        orientation=(3, 4),
        dictionary=NODDI_DICTIONARY),
}
