"""Robust fitting of the analytic models: coarse grid, then bounded least squares (or Rician ML).

For every signal: (1) the fibre direction, where the model has one, starts at
the principal eigenvector of a low-b DTI fit; (2) the other parameters start
at the best of a coarse grid evaluated in one vectorised call; (3) the best
few starts are refined with bounded least squares in conditioned units
(Gaussian likelihood) and, for ``likelihood="rician"``, by minimising the
exact Rician negative log-likelihood from there.

What else a model can be fitted with it declares itself (:class:`validation.base.Model`: a log-linear
``design``, a ``free_water`` pool beside it, a ``dictionary``, the ``constraints`` of its linear fit);
:func:`fit` and :func:`available_methods` ask the model, and the solvers live in :mod:`validation.linear`
and :mod:`validation.dictionary`.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
from scipy.optimize import least_squares, minimize
from scipy.special import i0e

from sequences import check_count

from .base import Model, dti_start, tensor_from6
from .checks import checked_model, checked_n_jobs, checked_positive
from .dictionary import dictionary_floor, fit_dictionary
from .linear import LINEAR_METHODS, fit_log_linear
from .lm import levenberg_marquardt
from .registry import get_model


@dataclass
class FitResult:
    """Estimates for N signals.

    Returned by :func:`fit`; the fields are also its attributes, and
    ``result[name]`` is the (N,) column of parameter ``name`` (SI).

    Parameters
    ----------
    model : str
        Name of the fitted model.
    names : list of str
        Parameter names, in the order of the columns of ``params``.
    params : numpy.ndarray
        (N, P) estimates (SI: m^2/s for diffusivities, m for radii, rad for angles).
    residual : numpy.ndarray
        (N,) root-mean-square residual (in units of the normalised signal).
    success : numpy.ndarray
        (N,) optimiser success flags.
    method : str
        The method that produced the estimates (see :func:`fit`).
    resolution : dict or None
        Dictionary method: its bias floor per parameter on this scheme, measured on noise-free signals of the
        model (SI; kappa as "odi"; :func:`validation.dictionary.dictionary_floor`).
    fitted_model : Model or None
        The model that was fitted, for :meth:`predict` (None: the registered model called ``model``).
    """

    model: str
    names: list
    params: np.ndarray
    residual: np.ndarray
    success: np.ndarray
    method: str = "nlls"
    resolution: dict | None = None
    fitted_model: Model | None = field(default=None, repr=False, compare=False)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.params[:, self.names.index(name)]

    def predict(self, scheme) -> np.ndarray:
        """Signals of the fitted model at the estimates, for every voxel, on any scheme the model accepts.

        Parameters
        ----------
        scheme : sequences.Scheme
            The acquisition (SI) to predict: the fitting scheme (the fitted signals, whose misfit is
            :attr:`residual`) or another one.

        Returns
        -------
        numpy.ndarray
            (N, M) normalised signals (dimensionless), one row per fitted signal; NaN rows where the estimates
            are not finite.

        Raises
        ------
        ValueError
            If the scheme does not meet the model's requirements.

        Examples
        --------
        >>> import numpy as np, sequences as sq, validation as va
        >>> s = sq.pgse(10e-3, 30e-3, bvalues=np.repeat([0, 1e9], [1, 6]), directions=sq.fibonacci_directions(7))
        >>> y = va.get_model("dti").signal(s, [[1.5e-9, 0.5e-9, 0.5e-9, 0, 0, 0]])
        >>> r = va.fit("dti", s, y)
        >>> bool(np.allclose(r.predict(s), y, rtol=1e-10))
        True
        """
        model = self.fitted_model if self.fitted_model is not None else get_model(self.model)
        return _chunked_forward(model, model.check_scheme(scheme), self.params)


def dti_direction(arr, signals: np.ndarray) -> np.ndarray:
    """Principal eigenvector of a log-linear DTI fit on b <= 1500 s/mm^2, per signal: (N, 3)."""
    return np.linalg.eigh(tensor_from6(dti_start(arr, signals)))[1][:, :, 2]


def _angles(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = n * np.where(n[:, 2:3] < 0, -1.0, 1.0)
    return np.arccos(np.clip(n[:, 2], -1, 1)), np.arctan2(n[:, 1], n[:, 0])


def _grid(model: Model, fixed: dict, max_points: int = 2000) -> np.ndarray:
    axes = []
    skip = set(model.orientation or ())
    n_free = sum(1 for i, p in enumerate(model.parameters) if p.name not in fixed and i not in skip)
    if n_free > 8 and model.initial is not None:
        return np.zeros((0, len(model.parameters)))  # e.g. DKI: the model's own linear start instead
    per_axis = max(2, min(5, int(max_points ** (1 / max(n_free, 1)) + 1e-9)))  # at most ~max_points
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


#: every value of ``fit(..., method=...)``
METHODS = ("auto", "wls", "ols", "iwls", "lm", "nlls", "ml", "dictionary")


def available_methods(model: Model | str) -> list[str]:
    """The fitting methods that apply to a model ("auto" picks the first of them).

    Parameters
    ----------
    model : Model or str
        The model or its name.

    Returns
    -------
    list of str
        Values of ``fit(..., method=...)`` that apply, the default first.

    Examples
    --------
    >>> import validation as va
    >>> va.available_methods("dti")[:2], va.available_methods("stick_zeppelin")[:1]
    (['wls', 'ols'], ['lm'])
    """
    model = checked_model(model)
    if model.via is not None:
        return available_methods(model.via[0])
    linear = ["wls", "ols", "iwls"] if model.design is not None else []
    # a free-water pool makes the log-linear fit a grid search, less efficient than "lm": not the default
    first, last = (linear, []) if model.free_water is None else ([], linear)
    return first + ["lm", "nlls", "ml"] + last + (["dictionary"] if model.dictionary is not None else [])


def fit(model: Model | str, scheme, signals, *, method: str = "auto", sigma: float | None = None,
        likelihood: str = "gaussian", fixed: dict | None = None, linked: dict | None = None, n_refine: int = 3,
        n_jobs: int | None = 1, mkt_nonnegative: bool = False) -> FitResult:
    """Fit a model to signals.

    Parameters
    ----------
    model : Model or str
        The model or its name (see :func:`validation.list_models`).
    scheme : sequences.Scheme
        Acquisition (SI).
    signals : array_like
        (N, M) or (M,) normalised signals.
    method : str
        ``"auto"`` (default): ``"wls"`` for the log-linear models (DTI, DKI, QTI) without fixed or linked
        parameters, ``"lm"`` for every other model, ``"ml"`` when ``likelihood="rician"``.
        ``"ols"``, ``"wls"``, ``"iwls"``: log-linear least squares with an intercept (ln S0), as dipy fits them
        (:mod:`validation.linear`); free-water DTI by log-linear tissue fits over the free-water fraction
        (Hoy et al. 2014; needs ``fixed={"D_w": ...}``). ``"lm"``: batched Levenberg-Marquardt on all signals at once
        from the best grid starts (:mod:`validation.lm`). ``"nlls"``: the per-signal trust-region least squares (scipy),
        the reference the others are checked against. ``"ml"``: Rician maximum likelihood (needs sigma),
        started from the fast estimate. ``"dictionary"``: linearised fit over a precomputed dictionary
        (NODDI-Watson and ActiveAx with their d_par fixed, as AMICO does; SANDI; :mod:`validation.dictionary`);
        the result's ``resolution`` is its bias floor. :func:`available_methods` lists a model's methods, which
        follow from what the model declares (its ``design``, ``free_water`` and ``dictionary``).
    sigma : float, optional
        Noise standard deviation, in units of the normalised signal (needed for the Rician likelihood).
    likelihood : {"gaussian", "rician"}
        Gaussian: least squares. Rician: exact Rician maximum likelihood (same as ``method="ml"``).
    fixed : dict, optional
        Parameter name -> value (SI) held fixed.
    linked : dict, optional
        Parameter name -> how it follows from the others: another parameter's name (equality,
        e.g. ``{"D_e_par": "D_a"}``), ``("tortuosity", "f", "D_par")`` for (1 - f) D_par,
        ``("ratio", "D_a", 0.5)``, or a function of the dict of parameter columns (it must be a
        module-level function for ``n_jobs > 1``).
    n_refine : int
        Best grid starts refined per signal ("lm", "nlls").
    n_jobs : int or None
        Worker processes over signals (None or -1: all cores). Results do not depend on it.
    mkt_nonnegative : bool
        DKI with a linear method: constrain the mean kurtosis tensor to be >= 0.

    Returns
    -------
    FitResult
        ``method`` says which method produced it.

    Examples
    --------
    >>> import numpy as np, sequences as sq, validation as va
    >>> s = sq.pgse(10e-3, 30e-3, bvalues=np.repeat([0, 1e9, 2e9], [1, 20, 20]),
    ...             directions=np.vstack([[0, 0, 1], sq.fibonacci_directions(20), sq.fibonacci_directions(20)]))
    >>> truth = [0.6, 2e-9, 0.6e-9, 0.7, 0.3]
    >>> r = va.fit("stick_zeppelin", s, va.get_model("stick_zeppelin").signal(s, [truth]))
    >>> r.method, round(float(r["f"][0]), 6)
    ('lm', 0.6)
    """
    model = checked_model(model)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check_options(sigma, fixed, n_refine, n_jobs)
    if model.via is not None:
        return _fit_via(model, scheme, signals, method=method, sigma=sigma, likelihood=likelihood, fixed=fixed,
                        linked=linked, n_refine=n_refine, n_jobs=n_jobs, mkt_nonnegative=mkt_nonnegative)
    fixed, linked = dict(fixed or {}), dict(linked or {})
    method, likelihood = _choose_method(model, method, fixed, linked, likelihood, sigma)
    arr = model.check_scheme(scheme)
    Y = _checked_signals(signals, len(scheme))
    usable = usable_rows(Y, arr.b)
    res = _fit_arrays(model, arr, Y, method, sigma=sigma, likelihood=likelihood, fixed=fixed, linked=linked,
                      n_refine=n_refine, n_jobs=n_jobs, mkt_nonnegative=mkt_nonnegative)
    return res if usable.all() else replace(res, success=res.success & usable)


def _fit_arrays(model: Model, arr, Y: np.ndarray, method: str, *, sigma: float | None, likelihood: str,
                fixed: dict, linked: dict, n_refine: int, n_jobs: int | None, mkt_nonnegative: bool) -> FitResult:
    """:func:`fit` once its arguments are checked and "auto" resolved."""
    if mkt_nonnegative and ("mkt_nonnegative" not in model.constraints or method not in LINEAR_METHODS):
        raise ValueError("mkt_nonnegative constrains DKI's linear fits: use model 'dki' with method 'wls', 'ols' "
                         "or 'iwls'")
    if method in LINEAR_METHODS:
        params = fit_log_linear(model, arr, Y, method, fixed=fixed, linked=linked, mkt_nonnegative=mkt_nonnegative)
        return _result(model, arr, Y, params, np.all(np.isfinite(params), axis=1), method)
    if method == "dictionary":
        if likelihood == "rician":
            raise ValueError("the dictionary method fits by least squares; use method='ml' for Rician likelihood")
        if linked:
            raise ValueError("the dictionary method ties parameters through its atoms; linked= applies to 'lm'/'nlls'")
        params, ok = fit_dictionary(model, arr, Y, fixed=fixed)
        return replace(_result(model, arr, Y, params, ok, method), resolution=dictionary_floor(model, arr, fixed))
    return _fit_nonlinear(model, arr, Y, method, fixed=fixed, linked=linked, likelihood=likelihood, sigma=sigma,
                          n_refine=n_refine, n_jobs=n_jobs)


def _choose_method(model: Model, method: str, fixed: dict, linked: dict, likelihood: str,
                   sigma: float | None) -> tuple[str, str]:
    """(method, likelihood) of a :func:`fit` call after checking its options; "auto" resolved."""
    both = set(fixed) & set(linked)
    if both:
        raise ValueError(f"parameter(s) {sorted(both)} are both fixed and linked; choose one")
    unknown = (set(fixed) | set(linked)) - set(model.names)
    if unknown:
        raise ValueError(f"{model.name} has no parameter(s) {sorted(unknown)}; it has {model.names}")
    if likelihood not in ("gaussian", "rician"):
        raise ValueError("likelihood must be 'gaussian' or 'rician'")
    if method == "ml":
        likelihood = "rician"
    if likelihood == "rician" and not sigma:
        raise ValueError("the Rician likelihood (method='ml') needs the noise level sigma")
    methods = available_methods(model)
    if method == "auto":
        # the model's first method where it is log-linear and every coefficient is free, else "lm"
        default_linear = methods[0] in LINEAR_METHODS and not fixed and not linked and likelihood == "gaussian"
        return ("wls" if default_linear else "lm"), likelihood
    if method not in methods:
        raise ValueError(f"method {method!r} does not apply to {model.name}; its methods: {methods}")
    return method, likelihood


def _check_options(sigma, fixed, n_refine, n_jobs) -> None:
    """Refuse :func:`fit` options of the wrong type or value (the message names the option and the fix)."""
    if sigma is not None:
        checked_positive(sigma, "sigma", "the noise standard deviation in units of the normalised signal, "
                                "e.g. 0.02 for SNR 50")
    if fixed is not None:
        if not isinstance(fixed, dict):
            raise TypeError(f"fixed must be a dict of parameter name -> value (SI), e.g. {{'f': 0.5}}, "
                            f"not {type(fixed).__name__}")
        for name, value in fixed.items():
            try:
                ok = np.ndim(value) == 0 and bool(np.isfinite(float(value)))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"fixed[{name!r}] = {value!r}: expected one finite number (SI units)")
    try:
        check_count(n_refine, "n_refine", least=1)
    except ValueError:
        raise ValueError(f"n_refine = {n_refine!r}: expected a whole number >= 1 of grid starts refined per "
                         "signal (default 3)") from None
    checked_n_jobs(n_jobs)


#: the largest median lowest-b signal taken for normalised. Raw scanner intensities are in the hundreds or
#: thousands; normalised signals may well exceed 1: Rician magnitude noise lifts a unit signal's mean to ~1.6
#: at SNR 1, and models whose compartment fractions are free parameters (SANDI, the standard model, "s0")
#: predict S(0) of several within their bounds (benchmarks/fit_hashes.py draws such signals up to S(0) ~ 7)
NORMALISED_LIMIT = 100.0


def usable_rows(Y: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) mask of the signal rows a model can fit; refuses a batch that holds none, or unnormalised signals.

    A row is unusable when its mean signal, or its mean at the lowest b-value of the scheme (b = 0 when the
    scheme has it), is <= 0: a zero or negative S0 is not a measurement. A few negative values are legitimate
    (Gaussian noise around a signal that has decayed to ~0 at high b) and leave a row usable. A batch of
    which only some rows are unusable is still fitted (a database run must not stop for one bad voxel):
    those rows are marked failed (``success`` False) with a warning. The models describe signals normalised
    to S(b=0) = 1, so signals far above 1 at the lowest b (raw scanner intensities) are refused with the fix
    (divide by S0) rather than rescaled silently: the right S0 (per voxel, mean or fitted) is the user's choice.

    Parameters
    ----------
    Y : numpy.ndarray
        (N, M) finite signals.
    b : numpy.ndarray
        (M,) b-values of the scheme (s/m^2).

    Returns
    -------
    numpy.ndarray
        (N,) bool, True where the row can be fitted.

    Raises
    ------
    ValueError
        If no row is usable (all zero or negative signals), or if the signals look unnormalised.
    """
    lowest = b <= b.min() + 1e7  # within 10 s/mm^2 of the lowest b-value
    s0 = Y[:, lowest].mean(axis=1)
    usable = (s0 > 0) & (Y.mean(axis=1) > 0)
    where = f"b = {b.min() * 1e-6:g} s/mm^2"
    if not usable.any():
        raise ValueError(f"signals: every row is zero or negative (mean signal or mean signal at {where} <= 0); "
                         "the models fit normalised signals S / S0, 1 at b = 0: pass the measured signals divided "
                         "by each voxel's mean b = 0 signal")
    median = float(np.median(s0[usable]))
    if median > NORMALISED_LIMIT:
        raise ValueError(f"signals look unnormalised: their median signal at {where} is {median:.4g}, where the "
                         "models expect about 1 (S / S0); divide each voxel's signals by its mean b = 0 signal "
                         "(S0) before fitting")
    bad = np.flatnonzero(~usable)
    if bad.size:
        warnings.warn(f"signals: {bad.size} of {len(Y)} rows are zero or negative (mean signal or mean signal at "
                      f"{where} <= 0; rows {bad[:5].tolist()}{' ...' if bad.size > 5 else ''}); they are fitted "
                      "but marked failed (success False)", RuntimeWarning, stacklevel=3)
    return usable


def _checked_signals(signals, n_measurements: int) -> np.ndarray:
    """(N, M) float signals; ValueError for a wrong M or rows with NaN or inf (named)."""
    try:
        Y = np.atleast_2d(np.asarray(signals, dtype=float))
    except (TypeError, ValueError):
        raise ValueError(f"signals must be an (N, {n_measurements}) or ({n_measurements},) array of numbers, "
                         f"one column per measurement of the scheme; got {type(signals).__name__}") from None
    if Y.ndim != 2:
        raise ValueError(f"signals have shape {Y.shape}; expected (N, {n_measurements}) (one row per voxel) or "
                         f"({n_measurements},): reshape them, e.g. signals.reshape(-1, {n_measurements})")
    if Y.shape[1] != n_measurements:
        raise ValueError(f"signals have {Y.shape[1]} measurements but the scheme has {n_measurements}")
    bad = np.flatnonzero(~np.all(np.isfinite(Y), axis=1))
    if bad.size:
        raise ValueError(f"signals: {bad.size} of {len(Y)} rows hold NaN or inf (rows {bad[:5].tolist()}"
                         f"{' ...' if bad.size > 5 else ''}); drop or repair them before fitting")
    return Y


def _fit_nonlinear(model: Model, arr, Y: np.ndarray, method: str, *, fixed: dict, linked: dict, likelihood: str,
                   sigma: float | None, n_refine: int, n_jobs: int | None) -> FitResult:
    """Grid starts, then the batched Levenberg-Marquardt ("lm") or per-signal least squares ("nlls"); Rician ML
    from there when ``likelihood="rician"``."""
    P = len(model.parameters)
    _Links(model, linked)  # check the specs here, before any worker starts
    free = [i for i, p in enumerate(model.parameters) if p.name not in fixed and p.name not in linked]
    scale = np.array([model.parameters[i].scale for i in free])
    lo = np.array([model.parameters[i].bounds[0] for i in free]) / scale
    hi = np.array([model.parameters[i].bounds[1] for i in free]) / scale
    # the batched path refines 3 starts per signal with a method that rarely stalls: a coarser grid suffices
    grid = _grid(model, {**fixed, **{n: np.nan for n in linked}}, 2000 if method == "nlls" else LM_GRID_POINTS)
    dirs = dti_direction(arr, Y) if model.orientation else None
    extra_starts = model.initial(arr, Y) if model.initial is not None else None
    plan = FitPlan(model=model, arr=arr, grid=grid, free=free, scale=scale, lo=lo, hi=hi, fixed=fixed,
                   likelihood=likelihood, sigma=sigma, n_refine=n_refine, linked=linked)
    if n_jobs is None or n_jobs < 0:
        n_jobs = os.cpu_count() or 1
    if method == "nlls":
        items = [(Y[k], None if dirs is None else dirs[k], None if extra_starts is None else extra_starts[k])
                 for k in range(len(Y))]
        results = _pool_map(partial(_fit_item, plan), items, n_jobs if len(Y) >= 4 * n_jobs else 1,
                            chunk=max(1, len(Y) // (8 * n_jobs)))
        out = np.array([r[0] for r in results]).reshape(len(Y), P)
        res = np.array([r[1] for r in results])
        ok = np.array([r[2] for r in results], dtype=bool)
        return FitResult(model.name, model.names, out, res, ok, "nlls" if likelihood == "gaussian" else "ml",
                         fitted_model=model)
    # batched: blocks of signals bound the memory of the grid and Jacobians; a pool over blocks for n_jobs > 1
    # a worker pool costs ~1 s per process to start: blocks of at least _LM_MIN_BLOCK signals, so small calls
    # (a report's few rows per model) stay in this process
    block = max(1, min(_LM_BLOCK, max(_LM_MIN_BLOCK, -(-len(Y) // max(n_jobs, 1)))))
    blocks = [(Y[s:s + block], None if dirs is None else dirs[s:s + block],
               None if extra_starts is None else extra_starts[s:s + block]) for s in range(0, len(Y), block)]
    results = _pool_map(partial(_fit_block, plan), blocks, n_jobs, chunk=1)
    out = np.vstack([r[0] for r in results])
    ok = np.concatenate([r[1] for r in results])
    if likelihood == "rician":
        links = _Links(model, linked)
        for k in range(len(Y)):
            out[k], ok[k] = _rician(model, arr, Y[k], out[k], free, scale, lo, hi, sigma, links)
    return _result(model, arr, Y, out, ok, "lm" if likelihood == "gaussian" else "ml")


#: grid starts of the batched path at most (per_axis^n_free; the per-signal path keeps 2000)
LM_GRID_POINTS = 625
#: signals per batched Levenberg-Marquardt block (memory: grid costs and Jacobians of one block)
_LM_BLOCK = 500
#: signals per block at least when the blocks go to worker processes
_LM_MIN_BLOCK = 64


_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _pool_map(fn, items: list, n_jobs: int, chunk: int) -> list:
    """fn over items, in a spawn pool when n_jobs > 1 and there is enough work (results do not depend on it)."""
    if n_jobs > 1 and len(items) >= 2:
        # each item is deterministic, so a pool changes nothing but the wall time. Spawn, not fork: the parent
        # may hold numba's OpenMP threads, which do not survive a fork
        ctx = multiprocessing.get_context("spawn")
        # one BLAS thread per worker: the workers already fill the cores, and OpenBLAS threads in each would
        # oversubscribe them (a spawned worker reads these at import)
        saved = {k: os.environ.get(k) for k in _BLAS_THREADS}
        os.environ.update({k: "1" for k in _BLAS_THREADS})
        try:
            with ProcessPoolExecutor(min(n_jobs, len(items)), mp_context=ctx) as pool:
                return list(pool.map(fn, items, chunksize=chunk))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return [fn(item) for item in items]


def _result(model: Model, arr, Y: np.ndarray, params: np.ndarray, ok: np.ndarray, method: str) -> FitResult:
    res = np.sqrt(np.mean((_chunked_forward(model, arr, params) - Y) ** 2, axis=1))
    return FitResult(model.name, model.names, params, res, np.asarray(ok, bool) & np.isfinite(res), method,
                     fitted_model=model)


def _chunked_forward(model: Model, arr, full: np.ndarray, rows: int = 2000) -> np.ndarray:
    if len(full) <= rows:
        return model.forward(arr, full)
    return np.vstack([model.forward(arr, full[s:s + rows]) for s in range(0, len(full), rows)])


def _starts(plan: "FitPlan", direction, extra_start) -> np.ndarray:
    """(S, P) starts of one signal: the model's own start, then the grid, the fibre direction from DTI."""
    model, fixed, linked = plan.model, plan.fixed, plan.linked
    starts = plan.grid.copy()
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
    return _Links(model, linked).apply(starts)


def _distinct_best(cost: np.ndarray, starts: np.ndarray, plan: "FitPlan", k: int) -> np.ndarray:
    """(n, k) indices of the k best distinct starts per signal.

    Starts with the same cost (to 1e-9) predict the same signal: a parameter has no effect there (the
    diffusivity of a compartment at zero fraction). They are one start, represented by its member farthest
    from the bounds, where that parameter starts from a middle value once the optimiser gives it an effect.
    """
    n, S = cost.shape
    inner = [i for i in plan.free if not (plan.model.orientation and i in plan.model.orientation)]
    if inner:
        sc = np.array([plan.model.parameters[i].scale for i in inner])
        lo = np.array([plan.model.parameters[i].bounds[0] for i in inner]) / sc
        hi = np.array([plan.model.parameters[i].bounds[1] for i in inner]) / sc
        z = starts[:, inner] / sc
        interior = np.min(np.minimum(z - lo, hi - z) / (hi - lo), axis=1)  # (S,)
    else:
        interior = np.zeros(S)
    order = np.argsort(cost, axis=1, kind="stable")
    c = np.take_along_axis(cost, order, axis=1)
    new = np.ones_like(c, dtype=bool)
    new[:, 1:] = np.abs(np.diff(c, axis=1)) > 1e-9 * np.abs(c[:, 1:])
    group = np.cumsum(new, axis=1)
    # within a group the most interior member first; groups in cost order
    rank = np.lexsort((-interior[order], group), axis=1)
    order, group = np.take_along_axis(order, rank, axis=1), np.take_along_axis(group, rank, axis=1)
    first = np.ones_like(group, dtype=bool)
    first[:, 1:] = group[:, 1:] != group[:, :-1]
    # the first member of each group, then (when there are fewer than k groups) the rest in order
    pick = np.argsort(~first, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(order, pick, axis=1)


def _fit_block(plan: "FitPlan", block) -> tuple[np.ndarray, np.ndarray]:
    """Batched fit of a block of signals: grid costs for all, best n_refine starts per signal, one LM for all."""
    Y, dirs, extra = block
    model, arr, free, scale = plan.model, plan.arr, plan.free, plan.scale
    links = _Links(model, plan.linked)
    n = len(Y)
    starts = np.stack([_starts(plan, None if dirs is None else dirs[k], None if extra is None else extra[k])
                       for k in range(n)])  # (n, S, P)
    S, P = starts.shape[1:]
    cost = np.empty((n, S))
    per = max(1, 20000 // S)  # signals per grid evaluation
    # without a fibre direction or a model start every signal has the same starts: predict them once. The
    # forward functions compute each row on its own (rows_dot, no BLAS across rows), so the rows are the ones the
    # per-signal evaluation gives, bit for bit, at 1/n of its cost
    shared = _chunked_forward(model, arr, starts[0]) if dirs is None and extra is None else None
    for s in range(0, n, per):
        pred = (shared[None] if shared is not None else
                _chunked_forward(model, arr, starts[s:s + per].reshape(-1, P)).reshape(-1, S, Y.shape[1]))
        cost[s:s + per] = np.sum((pred - Y[s:s + per, None]) ** 2, axis=2)
    cost = np.where(np.isfinite(cost), cost, np.inf)
    k = min(plan.n_refine, S)
    best = _distinct_best(cost, starts[0], plan, k)
    x0 = starts[np.arange(n)[:, None], best].reshape(n * k, P)
    template = x0[0].copy()

    def predict(x):
        full = np.repeat(template[None], len(x), axis=0)
        full[:, free] = x * scale
        return _chunked_forward(model, arr, links.apply(full))

    # starts 2 % inside the box toward its centre: grid points where fractions sum to exactly 1 sit on the
    # kink of the simplex penalty (validation.base.fractions), a corner a derivative-based step cannot leave
    z = x0[:, free] / scale
    shrink = np.array([0.0 if model.orientation and i in model.orientation else 0.02 for i in free])
    z = z + shrink * (0.5 * (plan.lo + plan.hi) - z)
    r = levenberg_marquardt(predict, np.repeat(Y, k, axis=0), z, plan.lo, plan.hi,
                            max_iter=max(100, 20 * len(free)))
    pick = np.argmin(np.where(np.isfinite(r.cost), r.cost, np.inf).reshape(n, k), axis=1)
    chosen = np.arange(n) * k + pick
    full = np.repeat(template[None], n, axis=0)
    full[:, free] = r.x[chosen] * scale
    return links.apply(full), r.success[chosen]


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
    model, arr, free, scale = plan.model, plan.arr, plan.free, plan.scale
    lo, hi, linked = plan.lo, plan.hi, plan.linked
    links = _Links(model, linked)
    starts = _starts(plan, direction, extra_start)
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
    return FitResult(model.name, model.names, params, resid, res.success & np.all(np.isfinite(params), axis=1),
                     f"{res.method} ({base})", fitted_model=model)
