"""The building blocks of every analytic model: parameters, models, scheme requirements, compartments.

:class:`Parameter` and :class:`Model` describe a model (its parameters with SI
units, bounds and ground-truth keys; its forward function; what it assumes
and what a scheme must have for it); :class:`SchemeArrays` is what a forward
function reads from a scheme. The compartment blocks (stick, zeppelin, ball,
Gaussian-phase restricted cylinders and spheres, spherical means, Watson
sticks) and the parameter helpers are shared by the model catalogues
(:mod:`validation.models`, :mod:`validation.models_white_matter`,
:mod:`validation.models_grey_matter`), which import this module at the top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numba
import numpy as np
from scipy.special import dawsn, erf, erfi

from sequences import Scheme

from .compartments import bingham_directions, dispersed_stick, frame, quadratic_form, rows_dot, waveform_spectrum
from .exact import gpd_modes

#: upper bound of every diffusivity parameter, m^2/s (free water at body temperature is ~3e-9)
D_MAX = 3.5e-9


@dataclass(frozen=True)
class Parameter:
    """One model parameter.

    The fields are also the attributes of the (frozen) instance.

    Parameters
    ----------
    name : str
        Parameter name, as in the fit results (e.g. ``"D_a"``).
    unit : str
        SI unit ("m^2/s", "m", "" for dimensionless, ...).
    bounds : tuple of float
        Lower and upper bound (SI).
    scale : float
        Typical magnitude (SI, in ``unit``), used to condition the optimiser.
    truth : str or None
        Ground-truth key it estimates ("intra_fraction", "effective_radius", a "cylinder:" or "sphere:"
        prefix where only that geometry has it,
        "diffusivity", "axis_theta", "axis_phi"), or None when the substrate has
        no time-independent truth for it.
    """

    name: str
    unit: str
    bounds: tuple[float, float]
    scale: float
    truth: str | None = None


def _pgse_problem(scheme, b) -> str | None:
    active = b > 0
    ok = (np.char.equal(scheme.label.astype(str), "pgse") | ~active) & ~(scheme.ramp_time > 0)
    if not np.all(ok) or np.any(~np.isfinite(scheme.delta[active])) or np.any(
            np.abs(scheme.b_delta[active] - 1) > 1e-6):
        return "this scheme has other encodings. Select its PGSE part: scheme[scheme.label == 'pgse']"
    return None


def _lte_problem(scheme, b) -> str | None:
    if np.any(np.abs(scheme.b_delta[b > 0] - 1) > 1e-6):
        return "select the LTE measurements"
    return None


def _ogse_problem(scheme, b) -> str | None:
    if not np.any(np.nan_to_num(scheme.frequency[b > 0]) > 0):
        return "this scheme has none. Add sequences.ogse(...) measurements to it"
    return None


def _shapes_problem(scheme, b) -> str | None:
    if np.unique(np.round(scheme.b_delta[b > 0], 3)).size < 2:
        return "this scheme has one. Add e.g. sequences.tensor_encoding(..., b_delta=0) measurements"
    return None


def _echo_problem(scheme, b) -> str | None:
    if np.unique(np.round(scheme.echo_time[b > 0], 6)).size < 2:
        return "build them with echo_time=... (pgse/ogse) and concatenate"
    return None


#: what a model may require of a scheme: key -> (what it means, check returning the problem or None)
REQUIREMENTS: dict[str, tuple[str, Callable]] = {
    "pgse": ("rectangular PGSE measurements with known delta and Delta", _pgse_problem),
    "lte": ("linear encoding (b_delta = 1) only", _lte_problem),
    "ogse": ("oscillating-gradient (OGSE) measurements", _ogse_problem),
    "btensor_shapes": ("b-tensor encodings of at least two shapes", _shapes_problem),
    "echo_times": ("measurements at two or more echo times", _echo_problem),
}


#: b in these units inside the log-linear solves (s/m^2 -> ms/um^2): the design columns are then of one order
B_UNIT = 1e9

#: constraints a model's log-linear fit may offer (:attr:`Model.constraints`): key -> what it means
CONSTRAINTS: dict[str, str] = {
    "mkt_nonnegative": "the mean of the kurtosis tensor is >= 0 (Hansen et al. 2013)",
}


@dataclass(frozen=True)
class LinearDesign:
    """A log-linear model on one scheme: ln S = X beta, fitted by :mod:`validation.linear`.

    The fields are also the attributes of the (frozen) instance.

    Parameters
    ----------
    X : numpy.ndarray
        (M, p + 1) design with b in units of :data:`B_UNIT` (ms/um^2), intercept (ln S0) last.
    to_params : callable
        ``to_params(beta (N, p)) -> (N, n_params)`` model parameters (SI) from the scaled coefficients.
    mkt_row : numpy.ndarray or None
        (p,) row c with c . beta proportional to the mean kurtosis tensor (DKI), else None.
    """

    X: np.ndarray
    to_params: Callable[[np.ndarray], np.ndarray]
    mkt_row: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class DictionarySpec:
    """How a model is linearised for the dictionary method (:mod:`validation.dictionary`).

    The fields are also the attributes of the (frozen) instance. Specs compare and hash by identity (their
    grids are arrays), so a :class:`Model` that carries one stays hashable.

    Parameters
    ----------
    grids : dict
        Parameter name -> grid values (SI) of the gridded nonlinear parameters.
    required : tuple of str
        Parameters every atom depends on, which the caller must fix.
    atoms : callable
        ``atoms(arr, values, grids) -> (signals (A, M'), labels)`` for the required values (SI); labels say
        each atom's compartment and grid values.
    estimate : callable
        ``estimate(x (N, A), labels, values) -> dict name -> (N,)`` parameters (SI) from the fractions.
    oriented : bool
        Atoms depend on the fibre direction (tabulated in cos^2, direction from DTI).
    fractions : callable
        ``fractions(rng, n) -> dict name -> (n,)``: plausible values of the parameters the weights give (not
        gridded), for measuring the bias floor (:func:`validation.dictionary.dictionary_floor`).
    odi : numpy.ndarray or None
        The orientation dispersion indices (dimensionless) the ``"kappa"`` grid is made of,
        kappa = 1 / tan(pi/2 odi): kappa's resolution and bias floor are given in them. None without kappa.
    """

    grids: dict
    required: tuple
    atoms: Callable
    estimate: Callable
    oriented: bool
    fractions: Callable
    odi: np.ndarray | None = None


@dataclass(frozen=True, kw_only=True)
class Model:
    """An analytic model: metadata plus a vectorised forward function.

    The fields (keyword-only) are also the attributes of the (frozen) instance.

    Parameters
    ----------
    name : str
        Registry name (:func:`validation.get_model`).
    parameters : tuple of Parameter
        The parameters in the order of the columns of ``P`` (SI units).
    forward : callable
        ``forward(arr: SchemeArrays, P: (K, n_params)) -> (K, M)`` normalised signals.
    assumptions : str
        What the model takes for granted (read the bias against it).
    requires : frozenset of str
        Keys of :data:`REQUIREMENTS` a scheme must meet; others are refused with the reason.
    advice : str
        What the model needs beyond the checked requirements ("several Delta", "high b").
    reference : str
        Literature reference of the model.
    orientation : tuple of int or None
        Indices of the (theta, phi) parameters of a fibre direction.
    initial : callable or None
        ``initial(arr, Y) -> (N, n_params)`` starting points (linear fits) beside the grid.
    via : tuple or None
        (model name, transform(arr, params) -> params): estimated through another model's fit.
    design : callable or None
        ``design(arr) -> LinearDesign``: the model is log-linear (DTI, DKI, QTI), fitted by the methods
        ``"wls"`` (its default), ``"ols"`` and ``"iwls"``; with ``free_water``, the design of its tissue part.
    free_water : tuple of str or None
        (fraction, diffusivity) parameter names of a free-water pool beside the ``design`` tissue, the last two
        parameters (free-water DTI): the log-linear methods fit the tissue over a grid of the fraction with the
        diffusivity fixed, and are not the default.
    dictionary : DictionarySpec or None
        How the ``"dictionary"`` method linearises the model (NODDI-Watson, ActiveAx, SANDI).
    constraints : frozenset of str
        Keys of :data:`CONSTRAINTS` the log-linear fit can impose (``fit(..., mkt_nonnegative=True)``).
    """

    name: str
    parameters: tuple[Parameter, ...]
    forward: Callable[["SchemeArrays", np.ndarray], np.ndarray]
    assumptions: str
    requires: frozenset = frozenset()
    advice: str = ""
    reference: str = ""
    orientation: tuple[int, int] | None = None
    initial: Callable[["SchemeArrays", np.ndarray], np.ndarray] | None = None
    via: tuple | None = None
    design: Callable[["SchemeArrays"], LinearDesign] | None = None
    free_water: tuple[str, str] | None = None
    dictionary: DictionarySpec | None = None
    constraints: frozenset = frozenset()

    def __post_init__(self):
        unknown = set(self.requires) - set(REQUIREMENTS)
        if unknown:
            raise ValueError(f"model {self.name}: unknown requirement(s) {sorted(unknown)}; known: "
                             f"{sorted(REQUIREMENTS)}")
        unknown = set(self.constraints) - set(CONSTRAINTS)
        if unknown:
            raise ValueError(f"model {self.name}: unknown constraint(s) {sorted(unknown)}; known: "
                             f"{sorted(CONSTRAINTS)}")
        # the free-water fit returns the tissue's parameters, then the fraction, then the diffusivity
        if self.free_water is not None and (self.design is None or list(self.free_water) != self.names[-2:]):
            raise ValueError(f"model {self.name}: free_water names the last two parameters and needs a design")
        object.__setattr__(self, "requires", frozenset(self.requires))
        object.__setattr__(self, "constraints", frozenset(self.constraints))

    @property
    def names(self) -> list[str]:
        """Parameter names in order."""
        return [p.name for p in self.parameters]

    @property
    def needs(self) -> str:
        """What a scheme must have for this model, in words (the checked requirements, then the advice)."""
        parts = [REQUIREMENTS[k][0] for k in sorted(self.requires)] + ([self.advice] if self.advice else [])
        return "; ".join(parts) or "any scheme"

    def check_scheme(self, scheme) -> "SchemeArrays":
        """Arrays the forward function needs; refuses schemes the model cannot describe.

        Parameters
        ----------
        scheme : sequences.Scheme
            The acquisition (SI).

        Returns
        -------
        SchemeArrays
            b-values (s/m^2), b-tensors, directions, timings (s), gradients (T/m).

        Raises
        ------
        ValueError
            If the scheme does not meet one of the model's requirements
            (the message names it and how to meet it).
        TypeError
            If ``scheme`` is not a :class:`sequences.Scheme` (the message says how to build one).
        """
        return SchemeArrays.from_scheme(scheme, self)

    def signal(self, scheme, params) -> np.ndarray:
        """(K, M) signals for (K, n_params) parameters (SI).

        Parameters
        ----------
        scheme : sequences.Scheme or SchemeArrays
            The acquisition (SI), or its arrays from :meth:`check_scheme`.
        params : array_like
            (K, n_params) or (n_params,) parameter values in SI units, in the
            order of :attr:`names`.

        Returns
        -------
        numpy.ndarray
            (K, M) normalised signals (dimensionless).

        Raises
        ------
        ValueError
            If ``params`` has the wrong number of columns, or the scheme does
            not meet the model's requirements.
        """
        arr = scheme if isinstance(scheme, SchemeArrays) else self.check_scheme(scheme)
        P = np.atleast_2d(np.asarray(params, dtype=float))
        if P.shape[1] != len(self.parameters):
            raise ValueError(f"{self.name} takes {len(self.parameters)} parameters {self.names}, got {P.shape[1]}")
        return self.forward(arr, P)


@dataclass(frozen=True)
class SchemeArrays:
    """What the forward functions read from a scheme (SI).

    Made by :meth:`from_scheme` (or :meth:`Model.check_scheme`); the fields
    are also the attributes of the (frozen) instance.

    Parameters
    ----------
    b : numpy.ndarray
        (M,) b-values in s/m^2.
    B : numpy.ndarray
        (M, 3, 3) b-tensors in s/m^2.
    u : numpy.ndarray
        (M, 3) principal directions (unit vectors; zero where b = 0).
    G : numpy.ndarray
        (M,) largest gradient amplitude (the PGSE plateau) in T/m.
    delta, Delta : numpy.ndarray
        (M,) pulse duration and pulse separation in s (0 where undefined).
    gamma : float
        Gyromagnetic ratio in rad/s/T.
    bd : numpy.ndarray
        (M,) b-tensor anisotropy b_Delta (dimensionless).
    freq : numpy.ndarray
        (M,) OGSE frequency in Hz, 0 otherwise.
    gradients : numpy.ndarray or None
        (M, T, 3) played effective gradient waveforms in T/m.
    dt : float
        Time step of ``gradients`` in s.
    te : numpy.ndarray
        (M,) echo times in s.

    Attributes
    ----------
    memo : dict
        Per-scheme tables cached by :meth:`derived` (not an argument).
    """

    b: np.ndarray  # (M,)
    B: np.ndarray  # (M, 3, 3)
    u: np.ndarray  # (M, 3) principal direction (zero where b = 0)
    G: np.ndarray  # (M,) PGSE plateau amplitude, T/m
    delta: np.ndarray
    Delta: np.ndarray
    gamma: float
    bd: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (M,) b_delta
    freq: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (M,) OGSE frequency in Hz, 0 otherwise
    gradients: np.ndarray | None = None  # (M, T, 3) played waveforms, T/m
    dt: float = 0.0
    te: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (M,) echo time, s
    # derived per-scheme tables (shells, symmetry axes) that forward functions reuse across calls; not copied by
    # dataclasses.replace, so a changed scheme never sees another's
    memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def derived(self, key: str, make: Callable):
        """``make()`` once per scheme and key: per-scheme tables the forward functions reuse across calls.

        Parameters
        ----------
        key : str
            Name of the table in :attr:`memo`.
        make : callable
            ``make()`` builds the table; called only the first time ``key`` is asked for.

        Returns
        -------
        object
            The cached result of ``make()``.
        """
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def waveform_spectrum(self):
        """The cached GPD spectrum table of the waveforms (see compartments.waveform_spectrum).

        Returns
        -------
        log_lam : numpy.ndarray
            (L,) grid of ln(lam / (1/s)).
        H : numpy.ndarray
            (L, M, 3, 3) scaled table in (T/m)^2 s^3.
        dH : numpy.ndarray
            (L, M, 3, 3) dH / d ln(lam) in (T/m)^2 s^3, for cubic Hermite interpolation.
        lam1 : float
            1 / duration in 1/s.
        G2 : numpy.ndarray
            (M, 3, 3) integral of g_i g_j dt in (T/m)^2 s.
        """
        # once per scheme: the module-level cache of waveform_spectrum is keyed on a SHA-1 of the (M, T, 3)
        # waveforms (~10 ms for 91 PGSE measurements), which a fit would otherwise pay at every forward call
        return self.derived("waveform_spectrum", lambda: waveform_spectrum(self.gradients, self.dt))

    @staticmethod
    def from_scheme(scheme, model: "Model") -> "SchemeArrays":
        """The arrays of ``scheme``, after checking every requirement of ``model`` (ValueError naming it).

        Parameters
        ----------
        scheme : sequences.Scheme
            The acquisition (SI).
        model : Model
            Its :attr:`Model.requires` are checked.

        Returns
        -------
        SchemeArrays
            The scheme's arrays in SI units.

        Raises
        ------
        ValueError
            If a requirement of ``model`` is not met (the message names it).
        TypeError
            If ``scheme`` is not a :class:`sequences.Scheme` (the message says how to build one).
        """
        b = checked_scheme(scheme).bvalues
        for key in sorted(model.requires):
            problem = REQUIREMENTS[key][1](scheme, b)
            if problem:
                raise ValueError(f"{model.name} needs {REQUIREMENTS[key][0]} ({model.needs}); {problem}")
        return SchemeArrays(b=b, B=scheme.btensors, u=scheme.directions, G=scheme.gradient_amplitudes,
                            delta=np.nan_to_num(scheme.delta), Delta=np.nan_to_num(scheme.Delta), gamma=scheme.gamma,
                            bd=scheme.b_delta, freq=np.nan_to_num(scheme.frequency), gradients=scheme.gradients,
                            dt=scheme.dt, te=scheme.echo_time)


#: how to make a scheme, for the messages that refuse something else
HOW_TO_BUILD_A_SCHEME = ("build one with sequences.pgse(delta, Delta, bvalues=..., directions=...) (SI units), "
                         "or read one with sequences.read_fsl(bval_path, bvec_path, delta, Delta) (also read_mrtrix, "
                         "read_camino, read_mcdc)")


def checked_scheme(scheme, name: str = "scheme") -> Scheme:
    """``scheme`` if it is a :class:`sequences.Scheme`; TypeError naming ``name`` and how to build one otherwise.

    Parameters
    ----------
    scheme : object
        The argument to check.
    name : str
        The argument's name, for the message.

    Returns
    -------
    sequences.Scheme
        ``scheme`` itself.

    Raises
    ------
    TypeError
        If ``scheme`` is not a Scheme (e.g. an array of b-values).

    Examples
    --------
    >>> import numpy as np
    >>> checked_scheme(np.array([0.0, 1e9]))
    Traceback (most recent call last):
    ...
    TypeError: scheme must be a sequences.Scheme, not ndarray: build one with sequences.pgse(...) ...
    """
    if not isinstance(scheme, Scheme):
        raise TypeError(f"{name} must be a sequences.Scheme, not {type(scheme).__name__}: {HOW_TO_BUILD_A_SCHEME}")
    return scheme


# ------------------------------------------------------------ building blocks
def axis(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit vectors (..., 3) from polar angle theta and azimuth phi (rad)."""
    st = np.sin(theta)
    return np.stack([st * np.cos(phi), st * np.sin(phi), np.cos(theta)], axis=-1)


def btensor6(arr: SchemeArrays) -> np.ndarray:
    """(M, 6) b-tensor elements xx, yy, zz, 2xy, 2xz, 2yz: B : D = btensor6 @ D6 for D6 ordered as
    :func:`tensor_from6` (memoised per scheme)."""
    def make():
        B = arr.B
        return np.ascontiguousarray(np.column_stack([B[:, 0, 0], B[:, 1, 1], B[:, 2, 2], 2 * B[:, 0, 1],
                                                     2 * B[:, 0, 2], 2 * B[:, 1, 2]]))
    return arr.derived("btensor6", make)


def stick(arr: SchemeArrays, n: np.ndarray, d_par: np.ndarray) -> np.ndarray:
    """exp(-D n^T B n): a stick along n (K, 3) with diffusivity d_par (K,); any b-tensor."""
    return np.exp(-d_par[:, None] * quadratic_form(n, arr.B))


def zeppelin(arr: SchemeArrays, n: np.ndarray, d_par: np.ndarray, d_perp: np.ndarray) -> np.ndarray:
    """exp(-B : D) for an axially symmetric tensor D = d_perp I + (d_par - d_perp) n n^T."""
    nBn = quadratic_form(n, arr.B)
    return np.exp(-d_perp[:, None] * arr.b[None, :] - (d_par - d_perp)[:, None] * nBn)


def ball(arr: SchemeArrays, d: np.ndarray) -> np.ndarray:
    """exp(-b d): isotropic Gaussian."""
    return np.exp(-d[:, None] * arr.b[None, :])


#: modes of the closed-form Gaussian-phase sums
N_MODES = 40


def gpd_pgse_lnE(geometry: str, arr: SchemeArrays, R: np.ndarray, D: np.ndarray, G2: np.ndarray,
                  n_modes: int = N_MODES) -> np.ndarray:
    """Closed-form GPD ln E for rectangular PGSE, vectorised over (K) parameters and (M) measurements.

    G2 is (K, M): the squared gradient component across the walls.
    """
    a, _ = gpd_modes(geometry, n_modes)
    d1 = 1.0 if geometry == "cylinder" else 2.0
    # the mode sum depends on the timing only: evaluate it once per distinct (delta, Delta), not per measurement
    timings, which = arr.derived("pgse_timings", lambda: distinct_rows(np.column_stack([arr.delta, arr.Delta])))
    # D = 0 or R = 0 (bounds the fits may touch) is 0/0 below; each term's limit there is 0 (num ~ lambda^3)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        alpha = a[None, None, :] / R[:, None, None]  # (K, 1, n)
        lam = D[:, None, None] * alpha**2
        dl, Dl = timings[None, :, 0, None], timings[None, :, 1, None]
        num = (2 * lam * dl - 2 + 2 * np.exp(-lam * dl) + 2 * np.exp(-lam * Dl) - np.exp(-lam * (Dl - dl))
               - np.exp(-lam * (Dl + dl)))
        # where lambda (Delta + delta) is small the sum above cancels to rounding (num ~ lambda^3): its Taylor
        # series instead, exact to ~1e-14 below 0.5
        small = np.broadcast_to(lam * (Dl + dl) < 0.5, num.shape)
        if np.any(small):
            num = np.array(num)
            x = np.broadcast_to(lam, num.shape)[small]
            d_s, D_s = np.broadcast_to(dl, num.shape)[small], np.broadcast_to(Dl, num.shape)[small]
            series = np.zeros_like(x)
            fact = 1.0
            for n in range(1, 13):
                fact *= n
                if n >= 3:
                    series += ((-1) ** n * (2 * d_s**n + 2 * D_s**n - (D_s - d_s) ** n - (D_s + d_s) ** n) / fact
                               * x**n)
            num[small] = series
        den = D[:, None, None] ** 2 * alpha**6 * (a[None, None, :] ** 2 - d1)
        terms = np.where((D[:, None, None] > 0) & (R[:, None, None] > 0), num / den, 0.0)
    return -2 * arr.gamma**2 * G2 * np.sum(terms, axis=2)[:, which]


def distinct_rows(values: np.ndarray, rel: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Rows of (M, k) values that agree to ``rel`` of each column's largest magnitude, as one.

    Returns the representatives (U, k) (the first member of each) and, per row, the index of its
    representative (M,): b-values computed from played waveforms differ in the last digits.
    """
    v = np.asarray(values, dtype=float)
    scale = np.maximum(np.max(np.abs(v), axis=0), 1e-300)
    keys = np.round(v / (rel * scale)).astype(np.int64)
    _, first, which = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return v[first], which.ravel()


def tensor_from6(P: np.ndarray) -> np.ndarray:
    """(K, 3, 3) symmetric tensors from (K, 6) elements ordered xx, yy, zz, xy, xz, yz."""
    D = np.empty((len(P), 3, 3))
    D[:, 0, 0], D[:, 1, 1], D[:, 2, 2] = P[:, 0], P[:, 1], P[:, 2]
    D[:, 0, 1] = D[:, 1, 0] = P[:, 3]
    D[:, 0, 2] = D[:, 2, 0] = P[:, 4]
    D[:, 1, 2] = D[:, 2, 1] = P[:, 5]
    return D


def dti_start(arr: SchemeArrays, Y: np.ndarray, bmax: float = 1.5e9) -> np.ndarray:
    """(N, 6) log-linear least-squares diffusion tensors (xx, yy, zz, xy, xz, yz; m^2/s) from b <= bmax (s/m^2)."""
    keep = arr.b <= bmax
    B = arr.B[keep]
    A = -np.column_stack([B[:, 0, 0], B[:, 1, 1], B[:, 2, 2], 2 * B[:, 0, 1], 2 * B[:, 0, 2], 2 * B[:, 1, 2]])
    # one pseudo-inverse applied row by row: a signal's start does not depend on the signals fitted with it
    return rows_dot(np.log(np.clip(Y[:, keep], 1e-6, None)), np.linalg.pinv(A))


#: the 15 independent kurtosis-tensor elements (index quadruples) and their multiplicities
W_IDX = [(0, 0, 0, 0), (1, 1, 1, 1), (2, 2, 2, 2), (0, 0, 0, 1), (0, 0, 0, 2), (0, 1, 1, 1), (1, 1, 1, 2),
          (0, 2, 2, 2), (1, 2, 2, 2), (0, 0, 1, 1), (0, 0, 2, 2), (1, 1, 2, 2), (0, 0, 1, 2), (0, 1, 1, 2),
          (0, 1, 2, 2)]
W_MULT = np.array([1, 1, 1, 4, 4, 4, 4, 4, 4, 6, 6, 6, 12, 12, 12], dtype=float)


def dki_columns(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Direction factors of DKI for unit gradient directions u (M, 3): (M, 6) u_i u_j (times 2 off the diagonal;
    D ordered as :func:`tensor_from6`) and (M, 15) W_MULT u_i u_j u_k u_l in :data:`W_IDX` order."""
    Xd = np.column_stack([u[:, 0] ** 2, u[:, 1] ** 2, u[:, 2] ** 2, 2 * u[:, 0] * u[:, 1], 2 * u[:, 0] * u[:, 2],
                          2 * u[:, 1] * u[:, 2]])
    Xw = np.column_stack([W_MULT[j] * u[:, a] * u[:, b] * u[:, c] * u[:, d] for j, (a, b, c, d) in enumerate(W_IDX)])
    return Xd, Xw


def fractions(f1, f2):
    """Three fractions from two, and a penalty factor > 1 where f1 + f2 > 1.

    Rescaling alone would leave a flat, degenerate region beyond the simplex where
    optimisers stall; inflating the signal there gives least squares a slope back.
    """
    s = f1 + f2
    over = np.maximum(s - 1.0, 0.0)
    s = np.maximum(s, 1.0)
    return f1 / s, f2 / s, 1 - (f1 + f2) / s, 1.0 + 10.0 * over


def spherical_mean(arr: SchemeArrays, d_par: np.ndarray, d_perp: np.ndarray) -> np.ndarray:
    """Orientation average of exp(-B : D) for an axisymmetric D under axisymmetric b-tensors (b, b_delta).

    E(beta) = exp(-b D_I (1 - b_delta D_Delta)) exp(-3 b b_delta D_I D_Delta cos^2 beta), averaged over
    cos beta in [0, 1] (analytic reference section 2); a stick is d_perp = 0.
    """
    b, bd = arr.b[None, :], arr.bd[None, :]
    d_par, d_perp = d_par[:, None], d_perp[:, None]
    a = b * bd * (d_par - d_perp)  # = 3 b b_delta D_I D_Delta
    base = np.exp(-b * (d_par + 2 * d_perp) / 3 + a / 3)
    a = np.broadcast_to(a, base.shape)
    g = 1 - a / 3 + a**2 / 10  # |a| <= 1e-8
    # erf or erfi only where each applies (erfi is the costly one, and linear encoding rarely needs it)
    pos, neg = a > 1e-8, a < -1e-8
    sa = np.sqrt(a[pos])
    g[pos] = 0.5 * np.sqrt(np.pi) * erf(sa) / sa
    if np.any(neg):
        sa = np.sqrt(-a[neg])
        g[neg] = 0.5 * np.sqrt(np.pi) * erfi(sa) / sa
    return base * g


def watson_tau(kappa: np.ndarray) -> np.ndarray:
    """<(mu . n)^2> of a Watson distribution: (1/(sqrt(k) F(sqrt(k))) - 1/k) / 2, F the Dawson function."""
    k = np.asarray(kappa, dtype=float)
    sk = np.sqrt(np.maximum(k, 1e-12))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = 0.5 * (1 / (sk * dawsn(sk)) - 1 / np.maximum(k, 1e-12))
    return np.where(k < 1e-3, 1 / 3 + 2 * k / 45, t)


def watson_stick(arr: SchemeArrays, mu: np.ndarray, kappa: np.ndarray, d_par: np.ndarray) -> np.ndarray:
    """Watson-averaged stick along mu (K, 3) with concentration kappa (K,) and diffusivity d_par (K,): (K, M).

    Under axially symmetric b-tensors (every linear, planar and spherical encoding) the Funk-Hecke series
    E = exp(-b d (1 - b_delta)/3) sum_l (2l + 1) p_l(kappa) k_l(b b_delta d) P_l(u . mu) over even l <= 40,
    with p_l = <P_l> of the Watson distribution and k_l(x) = int_0^1 exp(-x t^2) P_l(t) dt (both by
    Gauss-Legendre), is exact to 1e-13 for kappa <= 64 and b d <= 12 and costs (L x M) per parameter set;
    other b-tensors take the 32 x 24 Bingham quadrature (kappa2 = 0).
    """
    axes = arr.derived("axisymmetric_axes", lambda: _axisymmetric_axes(arr))
    if axes is None:
        fr = frame(np.arccos(np.clip(mu[:, 2], -1, 1)), np.arctan2(mu[:, 1], mu[:, 0]), np.zeros(len(mu)))
        n, w = bingham_directions(fr, kappa, np.zeros_like(kappa), n_x=32, n_phi=24)
        return dispersed_stick(arr, n, w, d_par)
    pl = watson_legendre_moments(kappa) * (2 * _WATSON_L + 1)  # (K, L)
    shells, which = arr.derived("b_bd_shells", lambda: distinct_rows(np.column_stack([arr.b, arr.bd])))
    x = d_par[:, None] * shells[None, :, 0] * shells[None, :, 1]  # (K, U)
    kl = np.exp(-x[:, :, None] * _WX[None, None, :] ** 2) @ _WATSON_PX  # (K, U, L)
    iso = np.exp(-d_par[:, None] * shells[None, :, 0] * (1 - shells[None, :, 1]) / 3)  # (K, U)
    c = np.clip(rows_dot(mu, axes), -1.0, 1.0)  # (K, M)
    return even_legendre_sum(c, pl[:, None, :] * kl, which) * iso[:, which]


#: even Legendre orders of the Watson series and the Gauss-Legendre nodes of its kernel and moments
_WATSON_L = np.arange(0, 41, 2)
_WX, _WW = np.polynomial.legendre.leggauss(64)
_WX, _WW = (_WX + 1) / 2, _WW / 2
_WATSON_PX = _WW[:, None] * np.array([np.polynomial.legendre.Legendre.basis(int(l))(_WX) for l in _WATSON_L]).T
_MX, _MW = np.polynomial.legendre.leggauss(200)
_MX, _MW = (_MX + 1) / 2, _MW / 2
_WATSON_PM = np.array([np.polynomial.legendre.Legendre.basis(int(l))(_MX) for l in _WATSON_L]).T  # (200, L)
_WATSON_PM_T = np.ascontiguousarray(_WATSON_PM.T)


def watson_legendre_moments(kappa: np.ndarray) -> np.ndarray:
    """(K, 21) <P_l(mu . n)> of Watson distributions, l = 0, 2, ..., 40 (200-node Gauss-Legendre in mu . n)."""
    k = np.asarray(kappa, dtype=float)[:, None]
    w = _MW[None, :] * np.exp(k * (_MX[None, :] ** 2 - 1))
    return rows_dot(w, _WATSON_PM_T) / w.sum(axis=1, keepdims=True)


@numba.njit(cache=True)
def even_legendre_sum(c: np.ndarray, a: np.ndarray, which: np.ndarray) -> np.ndarray:
    """out[k, m] = sum_j a[k, which[m], j] P_2j(c[k, m]): Legendre series of even orders (three-term recurrence).

    The recurrence runs over the measurements of one shell at a time, so its inner loop is independent
    across measurements (vectorised) instead of one serial chain per measurement.
    """
    K, M = c.shape
    U, L = a.shape[1], a.shape[2]
    n = 2 * L
    ca = np.zeros(n)
    cb = np.zeros(n)
    for l in range(2, n):
        ca[l] = (2 * l - 1) / l
        cb[l] = (l - 1) / l
    order = np.argsort(which)
    start = np.zeros(U + 1, dtype=np.int64)
    for m in range(M):
        start[which[m] + 1] += 1
    for u in range(U):
        start[u + 1] += start[u]
    out = np.empty((K, M))
    x = np.empty(M)
    pe = np.empty(M)
    po = np.empty(M)
    acc = np.empty(M)
    for k in range(K):
        for u in range(U):
            lo, hi = start[u], start[u + 1]
            for i in range(lo, hi):
                x[i] = c[k, order[i]]
                pe[i] = 1.0  # P_(2j-2)
                po[i] = x[i]  # P_(2j-1)
                acc[i] = a[k, u, 0]
            for j in range(1, L):
                ce, de = ca[2 * j], cb[2 * j]
                co, do = ca[2 * j + 1], cb[2 * j + 1]
                w = a[k, u, j]
                for i in range(lo, hi):
                    e = ce * x[i] * po[i] - de * pe[i]
                    acc[i] += w * e
                    po[i] = co * x[i] * e - do * po[i]
                    pe[i] = e
            for i in range(lo, hi):
                out[k, order[i]] = acc[i]
    return out


def _axisymmetric_axes(arr: SchemeArrays) -> np.ndarray | None:
    """(M, 3) symmetry axes when every b-tensor is b [(1 - b_delta)/3 I + b_delta u u^T] with u = arr.u; else None."""
    if arr.bd.shape != arr.b.shape:
        return None
    u = arr.u
    model = arr.b[:, None, None] * ((1 - arr.bd)[:, None, None] / 3 * np.eye(3)
                                    + arr.bd[:, None, None] * np.einsum("mi,mj->mij", u, u))
    if not np.allclose(model, arr.B, rtol=0, atol=1e-9 * max(float(np.max(arr.b)), 1.0)):
        return None
    return u


#: default bounds of a diffusivity parameter, m^2/s
D_BOUNDS = (0.0, D_MAX)


def fraction_param(name: str, truth: str | None = None) -> Parameter:
    """A fraction in [0, 1]."""
    return Parameter(name=name, unit="1", bounds=(0.0, 1.0), scale=1.0, truth=truth)


def diffusivity_param(name: str, truth: str | None = None, bounds: tuple = D_BOUNDS) -> Parameter:
    """A diffusivity in m^2/s."""
    return Parameter(name=name, unit="m^2/s", bounds=bounds, scale=1e-9, truth=truth)


#: fibre direction angles (ground truth: the substrate axis)
THETA = Parameter("theta", "rad", (0.0, np.pi), 1.0, "axis_theta")
PHI = Parameter("phi", "rad", (-np.pi, np.pi), 1.0, "axis_phi")



# ------------------------------------------------------------ dictionary building blocks
def z_axes(k: int) -> np.ndarray:
    """(k, 3) copies of the z axis: the fibre direction of tabulated dictionary atoms."""
    return np.tile([0.0, 0.0, 1.0], (k, 1))


def grid_mean(x: np.ndarray, sel: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Fraction-weighted mean of the grid values of the atoms ``sel`` (SI, as ``grid``), per signal: (N,).

    Where those atoms have no weight the grid's middle: the parameter of an absent compartment is undetermined.
    ``x`` is (N, A) atom weights, ``sel`` an (A,) mask, ``grid`` the (A,) grid value of each atom.
    """
    s = x[:, sel].sum(1)
    g = grid[sel]
    return np.where(s > 0, (x[:, sel] @ g) / np.maximum(s, 1e-300), 0.5 * (g.min() + g.max()))


def atom_labels(labels: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns of a dictionary's atom labels (compartment, grid value, second grid value or NaN): (A,) each."""
    return (np.array([lab[0] for lab in labels]), np.array([lab[1] for lab in labels]),
            np.array([lab[2] for lab in labels]))


def uniform_fraction(name: str, high: float = 0.5) -> Callable:
    """``fractions(rng, n)`` of a :class:`DictionarySpec`: parameter ``name`` uniform in [0, high] (dimensionless)."""
    # a partial of a module-level function, not a lambda: models travel to worker processes (fit(n_jobs=...))
    return partial(_uniform_draw, name=name, high=high)


def _uniform_draw(rng: np.random.Generator, n: int, *, name: str, high: float) -> dict:
    return {name: rng.uniform(0.0, high, n)}
