"""Analytic signal models, each a forward function of (scheme, parameters), with its metadata.

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

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import special

from .exact import _modes_1d

D_MAX = 3.5e-9


@dataclass(frozen=True)
class Parameter:
    """One model parameter.

    Attributes
    ----------
    name : str
    unit : str
        SI unit.
    bounds : tuple of float
        Lower and upper bound (SI).
    scale : float
        Typical magnitude, used to condition the optimiser.
    truth : str or None
        Ground-truth key it estimates ("intra_fraction", "effective_radius",
        "diffusivity", "axis_theta", "axis_phi"), or None when the substrate has
        no time-independent truth for it.
    """

    name: str
    unit: str
    bounds: tuple[float, float]
    scale: float
    truth: str | None = None


@dataclass(frozen=True)
class Model:
    """An analytic model: metadata plus a vectorised forward function."""

    name: str
    parameters: tuple[Parameter, ...]
    forward: Callable[["SchemeArrays", np.ndarray], np.ndarray]
    assumptions: str
    needs: str = "any scheme"
    requires_pgse: bool = False
    reference: str = ""
    orientation: tuple[int, int] | None = None  # indices of (theta, phi)

    @property
    def names(self) -> list[str]:
        """Parameter names in order."""
        return [p.name for p in self.parameters]

    def check_scheme(self, scheme) -> "SchemeArrays":
        """Arrays the forward function needs; refuses schemes the model cannot describe."""
        return SchemeArrays.from_scheme(scheme, self)

    def signal(self, scheme, params) -> np.ndarray:
        """(K, M) signals for (K, n_params) parameters (SI)."""
        arr = scheme if isinstance(scheme, SchemeArrays) else self.check_scheme(scheme)
        P = np.atleast_2d(np.asarray(params, dtype=float))
        if P.shape[1] != len(self.parameters):
            raise ValueError(f"{self.name} takes {len(self.parameters)} parameters {self.names}, got {P.shape[1]}")
        return self.forward(arr, P)


@dataclass(frozen=True)
class SchemeArrays:
    """What the forward functions read from a scheme (SI)."""

    b: np.ndarray  # (M,)
    B: np.ndarray  # (M, 3, 3)
    u: np.ndarray  # (M, 3) principal direction (zero where b = 0)
    G: np.ndarray  # (M,) PGSE plateau amplitude, T/m
    delta: np.ndarray
    Delta: np.ndarray
    gamma: float
    extras: dict = field(default_factory=dict)

    @staticmethod
    def from_scheme(scheme, model: Model) -> "SchemeArrays":
        b = scheme.bvalues
        if model.requires_pgse:
            active = b > 0
            ok = (np.char.equal(scheme.label.astype(str), "pgse") | ~active) & ~(scheme.ramp_time > 0)
            if not np.all(ok) or np.any(~np.isfinite(scheme.delta[active])) or np.any(
                    np.abs(scheme.b_delta[active] - 1) > 1e-6):
                raise ValueError(
                    f"{model.name} needs rectangular PGSE measurements with known delta and Delta ({model.needs}); "
                    "this scheme has other encodings. Select its PGSE part: scheme[scheme.label == 'pgse']")
        return SchemeArrays(b=b, B=scheme.btensors, u=scheme.directions, G=scheme.gradient_amplitudes,
                            delta=np.nan_to_num(scheme.delta), Delta=np.nan_to_num(scheme.Delta), gamma=scheme.gamma)


# ------------------------------------------------------------ building blocks
def _axis(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    st = np.sin(theta)
    return np.stack([st * np.cos(phi), st * np.sin(phi), np.cos(theta)], axis=-1)


def stick(arr: SchemeArrays, n: np.ndarray, d_par: np.ndarray) -> np.ndarray:
    """exp(-D n^T B n): a stick along n (K, 3) with diffusivity d_par (K,); any b-tensor."""
    nBn = np.einsum("ki,mij,kj->km", n, arr.B, n)
    return np.exp(-d_par[:, None] * nBn)


def zeppelin(arr: SchemeArrays, n: np.ndarray, d_par: np.ndarray, d_perp: np.ndarray) -> np.ndarray:
    """exp(-B : D) for an axially symmetric tensor D = d_perp I + (d_par - d_perp) n n^T."""
    nBn = np.einsum("ki,mij,kj->km", n, arr.B, n)
    return np.exp(-d_perp[:, None] * arr.b[None, :] - (d_par - d_perp)[:, None] * nBn)


def ball(arr: SchemeArrays, d: np.ndarray) -> np.ndarray:
    """exp(-b d): isotropic Gaussian."""
    return np.exp(-d[:, None] * arr.b[None, :])


_N_MODES = 40


def _gpd_pgse_lnE(geometry: str, arr: SchemeArrays, R: np.ndarray, D: np.ndarray, G2: np.ndarray) -> np.ndarray:
    """Closed-form GPD ln E for rectangular PGSE, vectorised over (K) parameters and (M) measurements.

    G2 is (K, M): the squared gradient component across the walls.
    """
    a, _ = _modes_1d(geometry, _N_MODES)
    d1 = 1.0 if geometry == "cylinder" else 2.0
    alpha = a[None, None, :] / R[:, None, None]  # (K, 1, n)
    lam = D[:, None, None] * alpha**2
    dl, Dl = arr.delta[None, :, None], arr.Delta[None, :, None]
    num = (2 * lam * dl - 2 + 2 * np.exp(-lam * dl) + 2 * np.exp(-lam * Dl) - np.exp(-lam * (Dl - dl))
           - np.exp(-lam * (Dl + dl)))
    den = D[:, None, None] ** 2 * alpha**6 * (a[None, None, :] ** 2 - d1)
    return -2 * arr.gamma**2 * G2 * np.sum(num / den, axis=2)


# ------------------------------------------------------------------ models
def _dti(arr, P):
    D = np.empty((len(P), 3, 3))
    D[:, 0, 0], D[:, 1, 1], D[:, 2, 2] = P[:, 0], P[:, 1], P[:, 2]
    D[:, 0, 1] = D[:, 1, 0] = P[:, 3]
    D[:, 0, 2] = D[:, 2, 0] = P[:, 4]
    D[:, 1, 2] = D[:, 2, 1] = P[:, 5]
    return np.exp(-np.einsum("mij,kij->km", arr.B, D))


def _ball_stick(arr, P):
    f, d = P[:, 0], P[:, 1]
    n = _axis(P[:, 2], P[:, 3])
    return f[:, None] * stick(arr, n, d) + (1 - f)[:, None] * ball(arr, d)


def _stick_zeppelin(arr, P):
    f, dpar, dperp = P[:, 0], P[:, 1], P[:, 2]
    n = _axis(P[:, 3], P[:, 4])
    return f[:, None] * stick(arr, n, dpar) + (1 - f)[:, None] * zeppelin(arr, n, dpar, dperp)


def _cylinder_zeppelin(arr, P):
    f, R, dpar, dperp = P[:, 0], P[:, 1], P[:, 2], P[:, 3]
    n = _axis(P[:, 4], P[:, 5])
    cos2 = np.einsum("ki,mi->km", n, arr.u) ** 2
    G2perp = arr.G[None, :] ** 2 * np.clip(1 - cos2, 0, None)
    intra = np.exp(_gpd_pgse_lnE("cylinder", arr, R, dpar, G2perp)) * stick(arr, n, dpar)
    return f[:, None] * intra + (1 - f)[:, None] * zeppelin(arr, n, dpar, dperp)


def _sphere_ball(arr, P):
    f, R, din, dex = P[:, 0], P[:, 1], P[:, 2], P[:, 3]
    G2 = np.broadcast_to(arr.G[None, :] ** 2, (len(P), len(arr.G)))
    intra = np.exp(_gpd_pgse_lnE("sphere", arr, R, din, G2))
    return f[:, None] * intra + (1 - f)[:, None] * ball(arr, dex)


_D = (0.0, D_MAX)
_THETA = Parameter("theta", "rad", (0.0, np.pi), 1.0, "axis_theta")
_PHI = Parameter("phi", "rad", (-np.pi, np.pi), 1.0, "axis_phi")

MODELS: dict[str, Model] = {
    "dti": Model(
        "dti",
        tuple(Parameter(n, "m^2/s", _D, 1e-9, None) for n in ("Dxx", "Dyy", "Dzz"))
        + tuple(Parameter(n, "m^2/s", (-D_MAX, D_MAX), 1e-9, None) for n in ("Dxy", "Dxz", "Dyz")),
        _dti, "Gaussian diffusion (one diffusion tensor); valid at low b (b D << 1)",
        reference="Basser, Mattiello & LeBihan 1994"),
    "ball_stick": Model(
        "ball_stick",
        (Parameter("f", "1", (0.0, 1.0), 1.0, "intra_fraction"), Parameter("d", "m^2/s", _D, 1e-9, None),
         _THETA, _PHI),
        _ball_stick, "Gaussian compartments, no exchange, one diffusivity shared by stick and ball, one fibre "
        "direction", reference="Behrens et al. 2003", orientation=(2, 3)),
    "stick_zeppelin": Model(
        "stick_zeppelin",
        (Parameter("f", "1", (0.0, 1.0), 1.0, "intra_fraction"),
         Parameter("D_par", "m^2/s", _D, 1e-9, "diffusivity"),
         Parameter("D_perp", "m^2/s", _D, 1e-9, None), _THETA, _PHI),
        _stick_zeppelin, "Gaussian compartments, zero axon radius, no exchange, the extra-axonal parallel "
        "diffusivity equals the intra-axonal one, one fibre direction", reference="Panagiotaki et al. 2012",
        orientation=(3, 4)),
    "cylinder_zeppelin": Model(
        "cylinder_zeppelin",
        (Parameter("f", "1", (0.0, 1.0), 1.0, "intra_fraction"),
         Parameter("R", "m", (0.1e-6, 15e-6), 1e-6, "effective_radius"),
         Parameter("D_par", "m^2/s", _D, 1e-9, "diffusivity"),
         Parameter("D_perp", "m^2/s", _D, 1e-9, None), _THETA, _PHI),
        _cylinder_zeppelin, "one cylinder radius (Gaussian phase approximation, van Gelderen 1994) plus a "
        "Gaussian zeppelin, no exchange, one fibre direction; R estimates the volume-weighted effective radius "
        "(<r^6>/<r^2>)^(1/4) (wide pulses)",
        needs="rectangular PGSE with delta, Delta, gradients across the fibres", requires_pgse=True,
        reference="Alexander et al. 2010 (ActiveAx), Assaf et al. 2008 (AxCaliber, single radius)",
        orientation=(4, 5)),
    "sphere_ball": Model(
        "sphere_ball",
        (Parameter("f", "1", (0.0, 1.0), 1.0, "intra_fraction"),
         Parameter("R", "m", (0.5e-6, 20e-6), 1e-6, "effective_radius"),
         Parameter("D_in", "m^2/s", _D, 1e-9, "diffusivity"),
         Parameter("D_ex", "m^2/s", _D, 1e-9, None)),
        _sphere_ball, "impermeable spheres (Gaussian phase approximation, Murday & Cotts 1968) plus an isotropic "
        "Gaussian extra-cellular space, no exchange",
        needs="rectangular PGSE with delta and Delta", requires_pgse=True,
        reference="Murday & Cotts 1968; VERDICT/SANDI-type soma compartment"),
}


def list_models() -> list[str]:
    """Names of every analytic model the harness can fit."""
    return sorted(MODELS)


def get_model(name: str) -> Model:
    """The model called ``name`` (see :func:`list_models`)."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return MODELS[name]
