"""Linearised fits over precomputed dictionaries (the idea of AMICO, Daducci et al. 2015; own implementation).

A model whose nonlinear parameters can be gridded is written as a non-negative sum of atoms, one per grid
point of each compartment (NODDI: Watson sticks per kappa, tortuous Watson zeppelins per (kappa, v_ic),
free-water balls per d_iso; ActiveAx: GPD cylinders per diameter, tortuous zeppelins per v_ic, balls;
SANDI: stick spherical means per D_in, GPD spheres per (R_s, D_is), balls per D_ec). Fractions come from
non-negative least squares with a small ridge (Tikhonov) term, one solve per signal; each gridded
parameter is the fraction-weighted mean of its grid values within its compartment (kappa through the
orientation dispersion index 2/pi arctan(1/kappa), as AMICO averages it). The diffusivity tied to the
tortuosity (d_par of NODDI, D_par of ActiveAx) shapes every atom; as in AMICO the caller fixes it
(``fixed={"d_par": 1.7e-9}`` in vivo): choosing it per signal by the smallest residual over a few
candidate dictionaries was tried and let the flexible dictionary trade it against the free-water fraction
(errors up to 0.1 in v_iso on noise-free NODDI signals, against 0.03 with d_par fixed).

Oriented models use the fibre direction of a low-b DTI fit per signal, so their atoms depend on the angle
to each gradient: they are tabulated once per scheme on a fine grid of cos^2 (1025 points per shell) and
interpolated per signal. The method's bias floor is measured, not assumed: :func:`dictionary_floor` fits
noise-free signals of the model on the same scheme and reports the 95th percentile of the error per
parameter (never below half the grid spacing, :func:`dictionary_resolution`); fractions, which have no grid,
get one too.

Each model declares its dictionary next to its forward function (:attr:`validation.base.Model.dictionary`, a
:class:`validation.base.DictionarySpec`: grids, atoms, how the parameters follow from the weights); this module
only solves them.
"""

from __future__ import annotations

import hashlib

import numba
import numpy as np

from .base import DictionarySpec, Model, SchemeArrays, distinct_rows, dti_start, tensor_from6
from .registry import MODELS, get_model

#: ridge weight of the non-negative least squares (atoms are unnormalised signals, |atom|^2 ~ M)
REGULARISATION = 1e-4
#: cos^2 grid points per shell for oriented atoms
N_COS2 = 1025
#: model name -> how it is linearised (derived from :attr:`Model.dictionary`; kept for callers)
DICTIONARIES: dict[str, DictionarySpec] = {name: m.dictionary for name, m in MODELS.items()
                                           if m.dictionary is not None}


def dictionary_resolution(name: Model | str, fixed: dict | None = None) -> dict[str, float]:
    """Half the largest grid spacing of each gridded parameter (SI): the dictionary method's bias floor.

    Kappa is gridded in the orientation dispersion index: its entry is ``"odi"`` (dimensionless).

    Parameters
    ----------
    name : Model or str
        A model with a dictionary (:attr:`Model.dictionary`: ``"noddi_watson"``, ``"activeax"``, ``"sandi"``), or
        its name.
    fixed : dict, optional
        Parameter name -> value (SI) held fixed; fixed parameters are left out.

    Returns
    -------
    dict of str to float
        Parameter name -> half the largest spacing of its grid, in the
        parameter's SI unit (m^2/s, m, dimensionless fractions and ODI).

    Raises
    ------
    ValueError
        If the model has no dictionary.

    Examples
    --------
    >>> from validation.dictionary import dictionary_resolution
    >>> round(dictionary_resolution("activeax")["v_ic"], 4)
    0.0643
    """
    spec = _spec(name)
    fixed = fixed or {}
    out = {}
    for key, grid in spec.grids.items():
        if key in fixed:
            continue
        g = np.sort(np.asarray(grid, float))
        out[key] = float(np.max(np.diff(g)) / 2) if len(g) > 1 else 0.0
    if "kappa" in out:  # gridded in the dispersion index 2/pi arctan(1/kappa): its spacing, under that name
        del out["kappa"]
        out["odi"] = float(np.max(np.diff(spec.odi)) / 2)
    return out


#: noise-free signals per bias-floor measurement, and the quantile of the absolute error reported
FLOOR_SIGNALS = 256
FLOOR_QUANTILE = 0.95
_FLOORS: dict = {}


def dictionary_floor(model, arr: SchemeArrays, fixed: dict | None = None, *, seed: int = 0) -> dict[str, float]:
    """The dictionary method's bias floor on this scheme: the 95th percentile of its absolute error on noise-free
    signals of the model itself (SI; kappa as ``"odi"``), never below half the grid spacing.

    The grid spacing alone understates it: the parameters the weights give (free-water and compartment
    fractions) have no grid, and a mixture of atoms can stand in for an atom that is not on the grid. Parameters
    are drawn over the grids' ranges (fractions as the spec says, orientations uniform) with a fixed seed; the
    result is cached per model, scheme and fixed values.

    Parameters
    ----------
    model : Model
        A model with a dictionary (see :func:`dictionary_resolution`).
    arr : SchemeArrays
        The scheme's arrays (:meth:`Model.check_scheme`).
    fixed : dict, optional
        Parameter name -> value (SI) held fixed, as in the fit.
    seed : int
        Seed of the drawn parameters.

    Returns
    -------
    dict of str to float
        Parameter name -> bias floor in the parameter's SI unit (kappa as
        ``"odi"``, dimensionless).

    Raises
    ------
    ValueError
        If the model has no dictionary.

    Examples
    --------
    >>> import numpy as np, sequences as sq, validation as va
    >>> from validation.dictionary import dictionary_floor
    >>> s = sq.pgse(10e-3, 30e-3, bvalues=np.repeat([0, 1e9, 2e9, 3e9], [1, 30, 30, 30]),
    ...             directions=np.vstack([[0, 0, 1]] + [sq.fibonacci_directions(30)] * 3))
    >>> m = va.get_model("noddi_watson")
    >>> floor = dictionary_floor(m, m.check_scheme(s), {"d_par": 1.7e-9})
    >>> sorted(floor)
    ['d_iso', 'odi', 'v_ic', 'v_iso']
    """
    spec = _spec(model)
    fixed = dict(fixed or {})
    key = (model.name, tuple(sorted(fixed.items())),
           hashlib.sha1(b"".join(np.ascontiguousarray(a, dtype=float).tobytes()
                                 for a in (arr.b, arr.B, arr.G, arr.delta, arr.Delta, arr.bd))).hexdigest())
    if key in _FLOORS:
        return dict(_FLOORS[key])
    rng = np.random.default_rng(seed)
    n = FLOOR_SIGNALS
    truth = np.zeros((n, len(model.parameters)))
    drawn = spec.fractions(rng, n)
    for j, p in enumerate(model.parameters):
        if model.orientation and j in model.orientation:
            continue
        if p.name in fixed:
            truth[:, j] = fixed[p.name]
        elif p.name == "kappa":
            truth[:, j] = 1 / np.tan(rng.uniform(spec.odi.min(), spec.odi.max(), n) * np.pi / 2)
        elif p.name in spec.grids:
            g = np.asarray(spec.grids[p.name], float)
            truth[:, j] = rng.uniform(g.min(), g.max(), n)
        else:
            truth[:, j] = drawn[p.name]
    if model.orientation:
        v = rng.normal(size=(n, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        truth[:, model.orientation[0]] = np.arccos(np.abs(v[:, 2]))
        truth[:, model.orientation[1]] = np.arctan2(v[:, 1] * np.sign(v[:, 2]), v[:, 0] * np.sign(v[:, 2]))
    est, _ = fit_dictionary(model, arr, model.forward(arr, truth), fixed=fixed)
    half = dictionary_resolution(model, fixed)
    out = {}
    for j, p in enumerate(model.parameters):
        if p.name in fixed or (model.orientation and j in model.orientation):
            continue
        if p.name == "kappa":
            err = 2 / np.pi * np.abs(np.arctan(1 / est[:, j]) - np.arctan(1 / truth[:, j]))
            out["odi"] = max(float(np.quantile(err, FLOOR_QUANTILE)), half["odi"])
        else:
            err = np.abs(est[:, j] - truth[:, j])
            out[p.name] = max(float(np.quantile(err, FLOOR_QUANTILE)), half.get(p.name, 0.0))
    _FLOORS[key] = out
    return dict(out)


def _spec(model: Model | str) -> DictionarySpec:
    model = get_model(model) if isinstance(model, str) else model
    if model.dictionary is None:
        raise ValueError(f"{model.name} has no dictionary; method='dictionary' fits {sorted(DICTIONARIES)}")
    return model.dictionary


def _tabulated_arrays(arr: SchemeArrays) -> tuple[SchemeArrays, np.ndarray, np.ndarray]:
    """Synthetic measurements: every distinct LTE shell (b, G, delta, Delta) at N_COS2 angles to the z axis."""
    shells, which = distinct_rows(np.column_stack([arr.b, arr.G, arr.delta, arr.Delta]))
    c2 = np.linspace(0.0, 1.0, N_COS2)
    u = np.column_stack([np.sqrt(1 - c2), np.zeros_like(c2), np.sqrt(c2)])
    U = len(shells)
    b = np.repeat(shells[:, 0], N_COS2)
    uu = np.tile(u, (U, 1))
    syn = SchemeArrays(b=b, B=b[:, None, None] * np.einsum("mi,mj->mij", uu, uu), u=uu, G=np.repeat(shells[:, 1],
                                                                                                       N_COS2),
                       delta=np.repeat(shells[:, 2], N_COS2), Delta=np.repeat(shells[:, 3], N_COS2), gamma=arr.gamma,
                       bd=np.ones(U * N_COS2), freq=np.zeros(U * N_COS2), te=np.zeros(U * N_COS2))
    return syn, which, c2


def fit_dictionary(model, arr: SchemeArrays, Y: np.ndarray, *, fixed: dict | None = None,
                   regularisation: float = REGULARISATION) -> tuple[np.ndarray, np.ndarray]:
    """Linearised fit of N signals: (params (N, P) SI, success (N,)).

    Parameters
    ----------
    model : Model
        A model with a dictionary (:attr:`Model.dictionary`).
    arr : SchemeArrays
        Its scheme (oriented models: linear encoding).
    Y : numpy.ndarray
        (N, M) normalised signals.
    fixed : dict, optional
        Values of gridded or candidate parameters to hold (one atom or one dictionary instead of a grid).
    regularisation : float
        Ridge weight of the non-negative least squares.
    """
    spec = _spec(model)
    fixed = dict(fixed or {})
    unknown = set(fixed) - set(spec.grids) - set(spec.required)
    if unknown:
        raise ValueError(f"the {model.name} dictionary grids {sorted(spec.grids)}; it cannot hold {sorted(unknown)} "
                         "fixed (use method='lm')")
    missing = [k for k in spec.required if k not in fixed]
    if missing:
        raise ValueError(f"the {model.name} dictionary is built for one value of {missing}, which shapes every atom: "
                         f"pass fixed={{{missing[0]!r}: 1.7e-9}} (the in-vivo value AMICO uses) or fit it with "
                         "method='lm'")
    if spec.oriented and np.any(np.abs(arr.bd[arr.b > 0] - 1) > 1e-6):
        raise ValueError(f"the {model.name} dictionary is tabulated for linear encoding; select the LTE measurements")
    grids = {k: (np.array([float(fixed[k])]) if k in fixed else np.asarray(v, float)) for k, v in spec.grids.items()}
    values = {k: float(fixed[k]) for k in spec.required}
    N, M = Y.shape
    if spec.oriented:
        mu = np.linalg.eigh(tensor_from6(dti_start(arr, Y)))[1][:, :, 2]
        syn, which, _ = _tabulated_arrays(arr)
        c2 = np.clip(np.einsum("ni,mi->nm", mu, arr.u) ** 2, 0.0, 1.0)
        pos = c2 * (N_COS2 - 1)
        i0 = np.minimum(pos.astype(np.int64), N_COS2 - 2)
        table, labels = spec.atoms(syn, values, grids)
        table = table.reshape(len(table), -1, N_COS2).transpose(1, 2, 0)  # (U, C, A)
        x, _ = _nnls_tabulated(np.ascontiguousarray(table), which, i0, pos - i0, Y, regularisation)
    else:
        atoms, labels = spec.atoms(arr, values, grids)
        x, _ = nnls_batch(np.ascontiguousarray(atoms.T), Y, regularisation)
    est = spec.estimate(x, labels, values)
    P = np.zeros((N, len(model.parameters)))
    for j, p in enumerate(model.parameters):
        if model.orientation and j in model.orientation:
            continue
        P[:, j] = est[p.name] if p.name not in fixed else fixed[p.name]
    if spec.oriented:
        v = mu * np.where(mu[:, 2:3] < 0, -1.0, 1.0)
        P[:, model.orientation[0]] = np.arccos(np.clip(v[:, 2], -1, 1))
        P[:, model.orientation[1]] = np.arctan2(v[:, 1], v[:, 0])
    ok = np.all(np.isfinite(P), axis=1)
    return P, ok


@numba.njit(cache=True)
def _nnls_one(A: np.ndarray, y: np.ndarray, lam: float, x: np.ndarray) -> float:
    """Lawson-Hanson active set for min |A x - y|^2 + lam |x|^2, x >= 0; x is written, the cost returned."""
    M, K = A.shape
    passive = np.zeros(K, dtype=np.bool_)
    x[:] = 0.0
    r = y.copy()
    w = np.empty(K)
    z = np.empty(K)
    idx = np.empty(K, dtype=np.int64)
    aty_max = 0.0
    for k in range(K):
        s = 0.0
        for m in range(M):
            s += A[m, k] * y[m]
        aty_max = max(aty_max, abs(s))
    tol = 1e-12 * max(aty_max, 1e-300)
    for _outer in range(3 * K):
        for k in range(K):
            s = 0.0
            for m in range(M):
                s += A[m, k] * r[m]
            w[k] = s - lam * x[k]
        j = -1
        wmax = tol
        for k in range(K):
            if not passive[k] and w[k] > wmax:
                wmax = w[k]
                j = k
        if j < 0:
            break
        passive[j] = True
        for _inner in range(3 * K):
            p = 0
            for k in range(K):
                if passive[k]:
                    idx[p] = k
                    p += 1
            # ridge normal equations on the passive columns, by Cholesky
            G = np.empty((p, p))
            rhs = np.empty(p)
            for a in range(p):
                ka = idx[a]
                s = 0.0
                for m in range(M):
                    s += A[m, ka] * y[m]
                rhs[a] = s
                for b in range(a + 1):
                    kb = idx[b]
                    s = 0.0
                    for m in range(M):
                        s += A[m, ka] * A[m, kb]
                    G[a, b] = s
                G[a, a] += lam
            for a in range(p):
                for b in range(a + 1):
                    s = G[a, b]
                    for c in range(b):
                        s -= G[a, c] * G[b, c]
                    if a == b:
                        G[a, a] = np.sqrt(max(s, 1e-300))
                    else:
                        G[a, b] = s / G[b, b]
            for a in range(p):
                s = rhs[a]
                for c in range(a):
                    s -= G[a, c] * z[c]
                z[a] = s / G[a, a]
            for a in range(p - 1, -1, -1):
                s = z[a]
                for c in range(a + 1, p):
                    s -= G[c, a] * z[c]
                z[a] = s / G[a, a]
            all_pos = True
            for a in range(p):
                if z[a] <= 0.0:
                    all_pos = False
            if all_pos:
                for a in range(p):
                    x[idx[a]] = z[a]
                break
            # step toward z until the first passive coefficient reaches zero, then drop those at zero
            alpha = 1.0
            for a in range(p):
                if z[a] <= 0.0:
                    xa = x[idx[a]]
                    step = xa / (xa - z[a]) if xa - z[a] > 0 else 0.0
                    alpha = min(alpha, step)
            for a in range(p):
                ka = idx[a]
                x[ka] += alpha * (z[a] - x[ka])
                if x[ka] <= 1e-15:
                    x[ka] = 0.0
                    passive[ka] = False
        for m in range(M):
            s = y[m]
            for k in range(K):
                if x[k] != 0.0:
                    s -= A[m, k] * x[k]
            r[m] = s
    cost = 0.0
    for m in range(M):
        cost += r[m] * r[m]
    for k in range(K):
        cost += lam * x[k] * x[k]
    return cost


@numba.njit(cache=True)
def nnls_batch(A: np.ndarray, Y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge NNLS of every row of Y (N, M) on one dictionary A (M, K): (x (N, K), cost (N,))."""
    N = Y.shape[0]
    K = A.shape[1]
    X = np.zeros((N, K))
    cost = np.empty(N)
    for n in range(N):
        cost[n] = _nnls_one(A, Y[n].copy(), lam, X[n])
    return X, cost


@numba.njit(cache=True)
def _nnls_tabulated(table: np.ndarray, which: np.ndarray, i0: np.ndarray, t: np.ndarray, Y: np.ndarray,
                    lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge NNLS per signal on its own dictionary, interpolated from table (U, C, K) at cos^2 grid (i0, t) (N, M)."""
    N, M = Y.shape
    K = table.shape[2]
    X = np.zeros((N, K))
    cost = np.empty(N)
    A = np.empty((M, K))
    for n in range(N):
        for m in range(M):
            u = which[m]
            i = i0[n, m]
            f = t[n, m]
            for k in range(K):
                A[m, k] = (1.0 - f) * table[u, i, k] + f * table[u, i + 1, k]
        cost[n] = _nnls_one(A, Y[n].copy(), lam, X[n])
    return X, cost
