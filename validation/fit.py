"""Robust fitting of the analytic models: coarse grid, then bounded least squares (or Rician ML).

For every signal: (1) the fibre direction, where the model has one, starts at
the principal eigenvector of a low-b DTI fit; (2) the other parameters start
at the best of a coarse grid evaluated in one vectorised call; (3) the best
few starts are refined with bounded least squares in conditioned units
(Gaussian likelihood) and, for ``likelihood="rician"``, by minimising the
exact Rician negative log-likelihood from there.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy.optimize import least_squares, minimize
from scipy.special import i0e

from .base import Model, dti_start, tensor_from6
from .registry import get_model


@dataclass
class FitResult:
    """Estimates for N signals.

    Attributes
    ----------
    model : str
    names : list of str
    params : numpy.ndarray
        (N, P) estimates (SI).
    residual : numpy.ndarray
        (N,) root-mean-square residual.
    success : numpy.ndarray
        (N,) optimiser success flags.
    """

    model: str
    names: list
    params: np.ndarray
    residual: np.ndarray
    success: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        return self.params[:, self.names.index(name)]


def dti_direction(arr, signals: np.ndarray) -> np.ndarray:
    """Principal eigenvector of a log-linear DTI fit on b <= 1500 s/mm^2, per signal: (N, 3)."""
    return np.linalg.eigh(tensor_from6(dti_start(arr, signals)))[1][:, :, 2]


def _angles(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = n * np.where(n[:, 2:3] < 0, -1.0, 1.0)
    return np.arccos(np.clip(n[:, 2], -1, 1)), np.arctan2(n[:, 1], n[:, 0])


def _grid(model: Model, fixed: dict) -> np.ndarray:
    axes = []
    skip = set(model.orientation or ())
    n_free = sum(1 for i, p in enumerate(model.parameters) if p.name not in fixed and i not in skip)
    if n_free > 8 and model.initial is not None:
        return np.zeros((0, len(model.parameters)))  # e.g. DKI: the model's own linear start instead
    per_axis = max(2, min(5, int(2000 ** (1 / max(n_free, 1)))))  # at most ~2000 grid points
    for i, p in enumerate(model.parameters):
        if p.name in fixed:
            axes.append([fixed[p.name]])
        elif i in skip:
            axes.append([np.nan])
        else:
            lo, hi = p.bounds
            if p.unit == "m^2/s":
                lo, hi = max(lo, 0.1e-9), min(hi, 3.0e-9)
            axes.append(np.linspace(lo + 0.08 * (hi - lo), hi - 0.08 * (hi - lo), per_axis))
    return np.array(list(itertools.product(*axes)))


def _link_function(model: Model, name: str, spec):
    """(index, function(full (K, P)) -> (K,)) for one linked parameter."""
    names = model.names

    def col(n):
        if n not in names:
            raise ValueError(f"linked[{name!r}] refers to {n!r}, which {model.name} does not have ({names})")
        return names.index(n)

    if isinstance(spec, str):
        j = col(spec)
        return lambda full: full[:, j]
    if isinstance(spec, tuple) and spec and spec[0] == "tortuosity" and len(spec) == 3:
        jf, jd = col(spec[1]), col(spec[2])
        return lambda full: (1 - full[:, jf]) * full[:, jd]
    if isinstance(spec, tuple) and spec and spec[0] == "ratio" and len(spec) == 3:
        j, c = col(spec[1]), float(spec[2])
        return lambda full: c * full[:, j]
    if callable(spec):
        return lambda full: np.asarray(spec({n: full[:, i] for i, n in enumerate(names)}), dtype=float)
    raise ValueError(f"linked[{name!r}] = {spec!r} is not understood: use another parameter's name (equality), "
                     "('tortuosity', f_name, d_name) for (1 - f) d, ('ratio', name, c) for c * name, or a function "
                     "of the parameter dict")


class _Links:
    """Linked parameters, rebuilt in each worker from picklable specs."""

    def __init__(self, model: Model, linked: dict):
        self.specs = dict(linked)
        self.items = [(model.names.index(n), _link_function(model, n, s)) for n, s in self.specs.items()]

    def apply(self, full: np.ndarray) -> np.ndarray:
        for j, fn in self.items:
            full[:, j] = fn(full)
        return full


def fit(model: Model | str, scheme, signals, *, sigma: float | None = None, likelihood: str = "gaussian",
        fixed: dict | None = None, linked: dict | None = None, n_refine: int = 3,
        n_jobs: int | None = 1) -> FitResult:
    """Fit a model to signals.

    Parameters
    ----------
    model : Model or str
        The model or its name (see :func:`validation.list_models`).
    scheme : sequences.Scheme
        Acquisition (SI).
    signals : array_like
        (N, M) or (M,) normalised signals.
    sigma : float, optional
        Noise standard deviation (needed for the Rician likelihood).
    likelihood : {"gaussian", "rician"}
        Gaussian: least squares. Rician: exact Rician maximum likelihood.
    fixed : dict, optional
        Parameter name -> value (SI) held fixed.
    linked : dict, optional
        Parameter name -> how it follows from the others: another parameter's name (equality,
        e.g. ``{"D_e_par": "D_a"}``), ``("tortuosity", "f", "D_par")`` for (1 - f) D_par,
        ``("ratio", "D_a", 0.5)``, or a function of the dict of parameter columns (it must be a
        module-level function for ``n_jobs > 1``).
    n_refine : int
        Best grid starts refined per signal.
    n_jobs : int or None
        Worker processes over signals (None or -1: all cores). Results do not
        depend on it.

    Returns
    -------
    FitResult
    """
    model = get_model(model) if isinstance(model, str) else model
    if model.via is not None:
        return _fit_via(model, scheme, signals, sigma=sigma, likelihood=likelihood, fixed=fixed, linked=linked,
                        n_refine=n_refine, n_jobs=n_jobs)
    fixed = dict(fixed or {})
    linked = dict(linked or {})
    both = set(fixed) & set(linked)
    if both:
        raise ValueError(f"parameter(s) {sorted(both)} are both fixed and linked; choose one")
    unknown = (set(fixed) | set(linked)) - set(model.names)
    if unknown:
        raise ValueError(f"{model.name} has no parameter(s) {sorted(unknown)}; it has {model.names}")
    if likelihood not in ("gaussian", "rician"):
        raise ValueError("likelihood must be 'gaussian' or 'rician'")
    if likelihood == "rician" and not sigma:
        raise ValueError("the Rician likelihood needs the noise level sigma")
    arr = model.check_scheme(scheme)
    Y = np.atleast_2d(np.asarray(signals, dtype=float))
    if Y.shape[1] != len(scheme):
        raise ValueError(f"signals have {Y.shape[1]} measurements but the scheme has {len(scheme)}")
    P = len(model.parameters)
    _Links(model, linked)  # check the specs here, before any worker starts
    free = [i for i, p in enumerate(model.parameters) if p.name not in fixed and p.name not in linked]
    scale = np.array([model.parameters[i].scale for i in free])
    lo = np.array([model.parameters[i].bounds[0] for i in free]) / scale
    hi = np.array([model.parameters[i].bounds[1] for i in free]) / scale
    grid = _grid(model, {**fixed, **{n: np.nan for n in linked}})
    dirs = dti_direction(arr, Y) if model.orientation else None
    extra_starts = model.initial(arr, Y) if model.initial is not None else None
    plan = FitPlan(model=model, arr=arr, grid=grid, free=free, scale=scale, lo=lo, hi=hi, fixed=fixed,
                   likelihood=likelihood, sigma=sigma, n_refine=n_refine, linked=linked)
    items = [(Y[k], None if dirs is None else dirs[k], None if extra_starts is None else extra_starts[k])
             for k in range(len(Y))]
    if n_jobs is None or n_jobs < 0:
        n_jobs = os.cpu_count() or 1
    if n_jobs > 1 and len(Y) >= 4 * n_jobs:
        # each fit is deterministic, so a pool over signals changes nothing but the wall time; the plan travels
        # with each chunk of signals. Spawn, not fork: the parent may hold numba's OpenMP threads, which do not
        # survive a fork
        ctx = multiprocessing.get_context("spawn")
        chunk = max(1, len(Y) // (8 * n_jobs))
        with ProcessPoolExecutor(n_jobs, mp_context=ctx) as pool:
            results = list(pool.map(partial(_fit_item, plan), items, chunksize=chunk))
    else:
        results = [_fit_item(plan, item) for item in items]
    out = np.array([r[0] for r in results]).reshape(len(Y), P)
    res = np.array([r[1] for r in results])
    ok = np.array([r[2] for r in results], dtype=bool)
    return FitResult(model.name, model.names, out, res, ok)


@dataclass(frozen=True, eq=False)
class FitPlan:
    """Everything one signal's fit needs besides the signal: the same for every signal of a :func:`fit` call.

    Attributes
    ----------
    model : Model
    arr : SchemeArrays
    grid : numpy.ndarray
        (G, P) coarse grid of starts (NaN where the direction goes).
    free : list of int
        Indices of the parameters the optimiser moves.
    scale, lo, hi : numpy.ndarray
        Their typical magnitudes and scaled bounds.
    fixed, linked : dict
        Held and derived parameters.
    likelihood : str
    sigma : float or None
    n_refine : int
        Best starts refined per signal.
    """

    model: Model
    arr: object
    grid: np.ndarray
    free: list
    scale: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    fixed: dict
    likelihood: str
    sigma: float | None
    n_refine: int
    linked: dict


def _fit_item(plan: FitPlan, item):
    return _fit_one(plan, *item)


def _fit_one(plan: FitPlan, y, direction, extra_start):
    """Fit one signal: grid (plus model and DTI starts), best few refined, optional Rician ML."""
    model, arr, grid, free, scale = plan.model, plan.arr, plan.grid, plan.free, plan.scale
    lo, hi, fixed, linked = plan.lo, plan.hi, plan.fixed, plan.linked
    links = _Links(model, linked)
    starts = grid.copy()
    if extra_start is not None:
        x0 = extra_start.copy()
        for name, v in fixed.items():
            x0[model.names.index(name)] = v
        starts = np.vstack([x0[None], starts]) if len(starts) else x0[None]
    if model.orientation:
        th, ph = _angles(direction[None])
        for j, v in zip(model.orientation, (th[0], ph[0])):
            if model.names[j] not in fixed and model.names[j] not in linked:  # a fixed axis stays fixed
                starts[:, j] = v
    starts = links.apply(starts)
    cost = np.sum((model.forward(arr, starts) - y) ** 2, axis=1)
    best = None
    for j in np.argsort(cost)[:plan.n_refine]:
        x0 = np.clip(starts[j, free] / scale, lo, hi)
        full = starts[j].copy()

        def resid(x, full=full):
            full[free] = x * scale
            return model.forward(arr, links.apply(full[None]))[0] - y

        # a well-posed fit converges in a few dozen iterations; the cap stops misspecified fits of
        # many-parameter models from wandering for minutes (they end with success=False)
        r = least_squares(resid, x0, bounds=(lo, hi), x_scale=1.0, method="trf", xtol=1e-10, ftol=1e-12,
                          max_nfev=max(200, 30 * len(x0)))
        if best is None or r.cost < best.cost:
            best = r
    p = starts[0].copy()
    p[free] = best.x * scale
    p = links.apply(p[None])[0]
    if plan.likelihood == "rician":
        p, success = _rician(model, arr, y, p, free, scale, lo, hi, plan.sigma, links)
    else:
        success = bool(best.success)
    return p, float(np.sqrt(np.mean((model.forward(arr, p[None])[0] - y) ** 2))), success


def rician_nll(m: np.ndarray, nu: np.ndarray, sigma: float) -> float:
    """Negative log-likelihood of magnitudes m given noise-free signals nu (Rice distribution)."""
    s2 = sigma**2
    x = m * nu / s2
    return float(np.sum(-np.log(np.clip(m, 1e-300, None) / s2) + (m**2 + nu**2) / (2 * s2)
                        - (np.log(i0e(x)) + x)))


def _rician(model, arr, y, p0, free, scale, lo, hi, sigma, links):
    full = p0.copy()

    def nll(x):
        full[free] = x * scale
        return rician_nll(y, model.forward(arr, links.apply(full[None]))[0], sigma)

    r = minimize(nll, p0[free] / scale, method="L-BFGS-B", bounds=list(zip(lo, hi)))
    out = p0.copy()
    out[free] = r.x * scale
    return links.apply(out[None])[0], bool(r.success)


def _fit_via(model: Model, scheme, signals, **kw) -> FitResult:
    """Models estimated through another model's fit (e.g. WMTI from DKI)."""
    base, transform = model.via
    if kw.get("fixed") or kw.get("linked"):
        raise ValueError(f"{model.name} is computed from a {base} fit; fix or link {base}'s parameters instead")
    arr = model.check_scheme(scheme)
    res = fit(base, scheme, signals, **{k: v for k, v in kw.items() if k not in ("fixed", "linked")})
    params = transform(arr, res.params)
    Y = np.atleast_2d(np.asarray(signals, dtype=float))
    resid = np.sqrt(np.mean((model.forward(arr, params) - Y) ** 2, axis=1))
    return FitResult(model.name, model.names, params, resid, res.success & np.all(np.isfinite(params), axis=1))
