"""Log-linear fits of the cumulant models (DTI, DKI, QTI) over all signals at once, the way the field fits them.

ln S = X beta with an intercept (ln S0) in the last column, as in dipy and the QTI literature:

- ``"ols"``: beta = pinv(X) ln S, one matrix for every signal;
- ``"wls"``: weights = the OLS-predicted signal, exp(X beta_OLS), on both sides (squared-residual weights
  S^2; Chung et al. 2006, dipy's WLS);
- ``"iwls"``: WLS repeated with the weights of the previous WLS prediction (Veraart et al. 2013).

Each is one small weighted least-squares solve per signal, vectorised over signals (normal equations in
units where b is in ms/um^2, so the columns are of one order and the squared condition number stays small).
DKI can be constrained to a non-negative mean of the kurtosis tensor (MKT >= 0, Hansen et al. 2013): a single
linear inequality, solved exactly by projecting the few violating signals onto its boundary.

The designs are the models' own (:attr:`validation.base.Model.design`, next to their forward functions);
this module only solves them.
"""

from __future__ import annotations

import numpy as np

from .base import B_UNIT, LinearDesign, Model, SchemeArrays, tensor_from6
from .models import dti_design
from .registry import MODELS, get_model

#: signals are floored here before the logarithm (dipy's MIN_POSITIVE_SIGNAL, so both see the same data)
MIN_SIGNAL = 1e-4
#: methods this module provides
LINEAR_METHODS = ("ols", "wls", "iwls")
#: model name -> design builder of the log-linear models (derived from :attr:`Model.design`; kept for callers)
DESIGNS = {name: m.design for name, m in MODELS.items() if m.design is not None and m.free_water is None}

__all__ = ["MIN_SIGNAL", "B_UNIT", "LINEAR_METHODS", "DESIGNS", "LinearDesign", "linear_design", "fit_linear",
           "fit_log_linear", "fit_free_water_dti", "FW_GRID"]


def linear_design(model: Model | str, arr: SchemeArrays) -> LinearDesign:
    """The log-linear design of a model on a scheme.

    Parameters
    ----------
    model : Model or str
        A model with a :attr:`Model.design` (DTI, DKI, QTI), or its name.
    arr : SchemeArrays
        The scheme's arrays (:meth:`Model.check_scheme`).

    Returns
    -------
    LinearDesign
        Its design matrix (b in ms/um^2, intercept last) and the map to the parameters (SI).

    Raises
    ------
    ValueError
        If the model is not log-linear, or the scheme does not determine every coefficient.
    """
    model = get_model(model) if isinstance(model, str) else model
    name = model.name
    if model.design is None or model.free_water is not None:
        raise ValueError(f"{name} is not log-linear; methods 'ols', 'wls' and 'iwls' fit {sorted(DESIGNS)}. Use "
                         "method='lm' (batched nonlinear least squares) or 'auto'")
    design = model.design(arr)
    X = design.X
    rank = np.linalg.matrix_rank(X / np.abs(X).max(axis=0, keepdims=True).clip(1e-300))
    if rank < X.shape[1]:
        raise ValueError(f"{name}: this scheme determines only {rank} of the {X.shape[1]} log-linear coefficients "
                         "(intercept included); add shells, directions or b-tensor shapes")
    return design


def fit_log_linear(model: Model, arr: SchemeArrays, Y: np.ndarray, method: str, *, fixed: dict, linked: dict,
                   mkt_nonnegative: bool = False) -> np.ndarray:
    """Log-linear fit of a model that declares a :attr:`Model.design`: the linear methods of :func:`validation.fit`.

    A plain design fits every coefficient (nothing fixed or linked); a design with a :attr:`Model.free_water`
    pool is fitted over the free-water fraction (:func:`fit_free_water_dti`) with its diffusivity fixed.

    Parameters
    ----------
    model : Model
        The model (its ``design``, ``free_water`` and ``constraints`` decide the fit).
    arr : SchemeArrays
        The scheme's arrays.
    Y : numpy.ndarray
        (N, M) normalised signals.
    method : {"ols", "wls", "iwls"}
        The least-squares weighting.
    fixed, linked : dict
        Parameter name -> value (SI) held fixed, and linked parameters (see :func:`validation.fit`).
    mkt_nonnegative : bool
        Constrain DKI's mean kurtosis tensor to be >= 0.

    Returns
    -------
    numpy.ndarray
        (N, n_params) estimates (SI).

    Raises
    ------
    ValueError
        If the fixed or linked parameters do not suit the fit, or the scheme does not determine it.
    """
    if model.free_water is not None:
        f_name, d_name = model.free_water
        if set(fixed) != {d_name} or linked:
            raise ValueError(f"the log-linear free-water fit ({method!r}) grids {f_name} and needs {d_name} fixed and "
                             f"nothing else fixed or linked: pass fixed={{{d_name!r}: 3e-9}} (free water at 37 C), "
                             "or use method='lm'")
        return fit_free_water_dti(arr, Y, float(fixed[d_name]), method, design=model.design(arr))
    if fixed or linked:
        raise ValueError(f"the log-linear method {method!r} fits every coefficient; with fixed or linked "
                         "parameters use method='lm'")
    params, _ = fit_linear(linear_design(model, arr), Y, method, mkt_nonnegative=mkt_nonnegative)
    return params


def _weighted_solve(X: np.ndarray, L: np.ndarray, w: np.ndarray) -> np.ndarray:
    """beta minimising sum_m w_m^2 (X_m beta - L_m)^2 per signal: (N, p) from X (M, p), L (N, M), w (N, M)."""
    Xw = w[:, :, None] * X[None]  # (N, M, p)
    H = np.matmul(Xw.transpose(0, 2, 1), Xw)
    g = np.einsum("nmp,nm->np", Xw, w * L)
    return np.linalg.solve(H, g[:, :, None])[:, :, 0]


def fit_linear(design: LinearDesign, signals: np.ndarray, method: str = "wls", *, n_iter: int = 4,
               mkt_nonnegative: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Log-linear least squares of N signals.

    Parameters
    ----------
    design : LinearDesign
        From :func:`linear_design`.
    signals : numpy.ndarray
        (N, M) signals (normalised or not: ln S0 is estimated).
    method : {"ols", "wls", "iwls"}
    n_iter : int
        Weight updates of "iwls" after the first WLS.
    mkt_nonnegative : bool
        DKI only: constrain the mean kurtosis tensor to be >= 0.

    Returns
    -------
    params : numpy.ndarray
        (N, n_params) SI.
    s0 : numpy.ndarray
        (N,) estimated S0 (1 for exact normalised signals).

    Examples
    --------
    >>> import numpy as np, sequences as sq, validation as va
    >>> from validation.linear import fit_linear, linear_design
    >>> s = sq.pgse(10e-3, 30e-3, bvalues=np.repeat([0, 1e9], [1, 6]), directions=sq.fibonacci_directions(7))
    >>> m = va.get_model("dti"); D = [[1.5e-9, 0.5e-9, 0.5e-9, 0, 0, 0]]
    >>> p, s0 = fit_linear(linear_design("dti", m.check_scheme(s)), m.signal(s, D))
    >>> bool(np.allclose(p, D, atol=1e-20))
    True
    """
    if method not in LINEAR_METHODS:
        raise ValueError(f"method must be one of {LINEAR_METHODS}, got {method!r}")
    X = design.X
    L = np.log(np.maximum(np.atleast_2d(signals), MIN_SIGNAL))
    beta = L @ np.linalg.pinv(X).T
    if method != "ols":
        for _ in range(1 if method == "wls" else 1 + n_iter):
            beta = _weighted_solve(X, L, np.exp(np.clip(beta @ X.T, -50, 50)))
    if mkt_nonnegative:
        if design.mkt_row is None:
            raise ValueError("mkt_nonnegative applies to DKI only")
        beta = _project_mkt(X, L, beta, design.mkt_row, method)
    p = X.shape[1] - 1
    return design.to_params(beta[:, :p]), np.exp(beta[:, p])


def _project_mkt(X, L, beta, row, method):
    """Signals whose MKT < 0: the least-squares solution on the boundary c . beta = 0 (closed form)."""
    c = np.append(row, 0.0)
    bad = beta @ c < 0
    if not np.any(bad):
        return beta
    w = np.ones_like(L[bad]) if method == "ols" else np.exp(np.clip(beta[bad] @ X.T, -50, 50))
    b = _weighted_solve(X, L[bad], w)  # the unconstrained minimiser of this weighted problem
    Xw = w[:, :, None] * X[None]
    H = np.matmul(Xw.transpose(0, 2, 1), Xw)
    Hc = np.linalg.solve(H, np.broadcast_to(c, (len(H), len(c)))[:, :, None])[:, :, 0]
    out = beta.copy()
    out[bad] = b - Hc * ((b @ c) / np.einsum("np,p->n", Hc, c))[:, None]
    return out


#: free-water fraction grid of the first pass of :func:`fit_free_water_dti` (then a golden-section search)
FW_GRID = np.linspace(0.0, 0.95, 20)
_GOLDEN = (np.sqrt(5) - 1) / 2


def fit_free_water_dti(arr: SchemeArrays, signals: np.ndarray, d_w: float, method: str = "wls", *,
                       n_golden: int = 40, design: LinearDesign | None = None) -> np.ndarray:
    """Free-water DTI by log-linear tissue fits over the free-water fraction (Hoy et al. 2014), all signals at once.

    S = S0 [(1 - f) exp(-B:D) + f exp(-b d_w)]: for a given f the tissue signal
    (S / S0 - f exp(-b d_w)) / (1 - f) is a DTI problem, fitted log-linearly (``method``); f is the value whose
    full prediction has the least squared residual, found on a grid of 20 values in [0, 0.95] and refined by a
    golden-section search in the neighbouring grid interval (to ~1e-9). S0 is the mean of the b = 0 signals
    (the tissue fit's intercept where there are none).

    Parameters
    ----------
    arr : SchemeArrays
    signals : numpy.ndarray
        (N, M) signals.
    d_w : float
        Free-water diffusivity, m^2/s (3e-9 at body temperature).
    method : {"ols", "wls", "iwls"}
        Tissue fit.
    n_golden : int
        Golden-section steps.
    design : LinearDesign, optional
        The tissue's log-linear design on this scheme (default: DTI's).

    Returns
    -------
    numpy.ndarray
        (N, 8) Dxx, Dyy, Dzz, Dxy, Dxz, Dyz (m^2/s), f_w, D_w.
    """
    Y = np.atleast_2d(np.asarray(signals, float))
    N = len(Y)
    design = dti_design(arr) if design is None else design
    b0 = arr.b < 1e6  # below 1 s/mm^2
    if np.any(b0):
        s0 = np.maximum(Y[:, b0].mean(axis=1), MIN_SIGNAL)
    else:
        _, s0 = fit_linear(design, Y, method)
    E = Y / s0[:, None]
    ew = np.exp(-arr.b * d_w)

    def cost_and_params(f):
        """(N,) residual sums of squares and (N, 6) tissue tensors at fractions f (N,)."""
        tissue = (E - f[:, None] * ew[None]) / (1 - f)[:, None]
        D, t0 = fit_linear(design, np.maximum(tissue, MIN_SIGNAL), method)
        pred = (1 - f)[:, None] * t0[:, None] * np.exp(-np.einsum("mij,nij->nm", arr.B, tensor_from6(D))) \
            + f[:, None] * ew[None]
        return np.sum((pred - E) ** 2, axis=1), D

    grid_cost = np.stack([cost_and_params(np.full(N, f))[0] for f in FW_GRID], axis=1)
    k = np.argmin(np.where(np.isfinite(grid_cost), grid_cost, np.inf), axis=1)
    step = FW_GRID[1] - FW_GRID[0]
    a = np.clip(FW_GRID[k] - step, 0.0, None)
    c = np.clip(FW_GRID[k] + step, None, 0.999)
    x1, x2 = c - _GOLDEN * (c - a), a + _GOLDEN * (c - a)
    f1, f2 = cost_and_params(x1)[0], cost_and_params(x2)[0]
    for _ in range(n_golden):
        left = f1 <= f2  # the minimum is in [a, x2]
        c = np.where(left, x2, c)
        a = np.where(left, a, x1)
        x2n = np.where(left, x1, a + _GOLDEN * (c - a))
        x1n = np.where(left, c - _GOLDEN * (c - a), x2)
        new = np.where(left, x1n, x2n)
        fn = cost_and_params(new)[0]
        f1, f2 = np.where(left, fn, f2), np.where(left, f1, fn)
        x1, x2 = x1n, x2n
    f = 0.5 * (a + c)
    _, D = cost_and_params(f)
    return np.column_stack([D, f, np.full(N, d_w)])

