"""Regimes of validity: where along dimensionless substrate x protocol axes a model's estimate holds.

For every point of a 2-D grid of axes (D0 delta / R^2, q R, kappa R / D0, t / tau_ex, undulation
amplitude / R ...) a signal with known ground truth is fitted (several noise realisations, or one
noise-free fit) and the relative bias, the precision (coefficient of variation) and NRV_min are
mapped. The region of validity is |bias| < 5 % (strict) or < 10 % (lenient) and NRV_min below
1 + 2 sqrt(2 / (I (N - M))) (analytic reference section 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from sequences import check_count

from .fit import fit
from .base import Model
from .checks import checked_model, checked_positive


@dataclass
class RegimeMap:
    """Bias, precision and NRV of one parameter over a grid of two axes.

    Returned by :func:`regime_map`; the fields are also its attributes.

    Parameters
    ----------
    model, parameter : str
        Model name and the parameter judged.
    x_name, y_name : str
        Axis labels (dimensionless quantities).
    x, y : numpy.ndarray
        (nx,), (ny,) axis values (dimensionless).
    bias : numpy.ndarray
        (ny, nx) relative bias (estimate - truth) / truth (dimensionless).
    cv : numpy.ndarray
        (ny, nx) SD over noise realisations / ``|truth|`` (dimensionless; 0 without noise).
    nrv_min : numpy.ndarray
        (ny, nx) NRV at the best fit (dimensionless; NaN without noise).
    nrv_limit : float
        1 + 2 sqrt(2 / (I (N - M))): above it the model does not describe the signal.
    """

    model: str
    parameter: str
    x_name: str
    y_name: str
    x: np.ndarray
    y: np.ndarray
    bias: np.ndarray
    cv: np.ndarray
    nrv_min: np.ndarray
    nrv_limit: float

    def valid(self, threshold: float = 0.05) -> np.ndarray:
        """(ny, nx) mask: ``|bias| < threshold`` and, where measured, NRV_min below its limit.

        Parameters
        ----------
        threshold : float
            Largest acceptable relative bias (dimensionless; 0.05 is 5 %).

        Returns
        -------
        numpy.ndarray
            (ny, nx) bool: True where the model is valid.
        """
        ok = np.abs(self.bias) < threshold
        nrv_ok = ~(self.nrv_min > self.nrv_limit)  # NaN (noise-free) counts as fine
        return ok & nrv_ok

    def boundary(self, threshold: float = 0.05) -> np.ndarray:
        """(ny,) first x (log-interpolated) where ``|bias|`` reaches the threshold, NaN if it never does.

        Parameters
        ----------
        threshold : float
            Relative bias (dimensionless; 0.05 is 5 %) that marks the boundary.

        Returns
        -------
        numpy.ndarray
            (ny,) x value of the boundary per y value (in the units of ``x``), NaN where none.
        """
        out = np.full(self.y.size, np.nan)
        a = np.abs(self.bias)
        for j in range(self.y.size):
            above = np.nonzero(a[j] >= threshold)[0]
            if above.size == 0:
                continue
            i = above[0]
            if i == 0:
                out[j] = self.x[0]
                continue
            lx = np.log(self.x[i - 1:i + 1])
            w = (threshold - a[j, i - 1]) / (a[j, i] - a[j, i - 1])
            out[j] = float(np.exp(lx[0] + w * (lx[1] - lx[0])))
        return out

    def plot(self, ax=None, unit_scale: float = 100.0):
        """Relative bias (%) as an image with the 5 % and 10 % contours.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw into (a new figure by default).
        unit_scale : float
            Factor from relative bias to the colour scale (100: percent).

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn into.
        """
        import matplotlib.pyplot as plt
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4.5), layout="constrained")
        lim = max(10.0, float(np.nanmax(np.abs(self.bias))) * unit_scale)
        lim = min(lim, 100.0)
        im = ax.pcolormesh(self.x, self.y, self.bias * unit_scale, cmap="RdBu_r", vmin=-lim, vmax=lim,
                           shading="nearest")
        plt.colorbar(im, ax=ax, label=f"relative bias of {self.parameter} (%)")
        if self.x.size > 1 and self.y.size > 1:
            cs = ax.contour(self.x, self.y, np.abs(self.bias), levels=[0.05, 0.10], colors=["k", "0.4"],
                            linestyles=["-", "--"])
            ax.clabel(cs, fmt={0.05: "5 %", 0.10: "10 %"}, fontsize="small")
        bad = self.nrv_min > self.nrv_limit
        if np.any(bad):
            X, Y = np.meshgrid(self.x, self.y)
            ax.scatter(X[bad], Y[bad], marker="x", color="k", s=18, label="NRV_min above its limit")
            ax.legend(loc="upper right", fontsize="small")
        if self.x.size > 2 and np.all(self.x > 0) and self.x.max() / self.x.min() > 20:
            ax.set_xscale("log")
        ax.set(xlabel=self.x_name, ylabel=self.y_name,
               title=f"{self.model}: where {self.parameter} is within 5 % (solid) / 10 % (dashed)")
        return ax


def _point(signal_at: Callable, x: float, y: float, parameter: str) -> tuple:
    """``signal_at(x, y)``, checked: a 4-tuple whose truth is a finite nonzero number (the bias is relative)."""
    out = signal_at(x, y)
    if not isinstance(out, tuple) or len(out) != 4:
        raise ValueError(f"signal_at({x:g}, {y:g}) must return (scheme, signal, truth, mc_stderr), got "
                         f"{type(out).__name__}{f' of {len(out)} items' if isinstance(out, tuple) else ''}")
    truth = out[2]
    try:
        value = float(truth) if np.ndim(truth) == 0 and not isinstance(truth, bool) else np.nan
    except (TypeError, ValueError):
        value = np.nan
    if not np.isfinite(value) or value == 0:
        raise ValueError(f"signal_at({x:g}, {y:g}) returned truth = {truth!r} for {parameter}: the bias is "
                         "relative to it, so it must be a finite nonzero number (SI)")
    return out


def regime_map(model: Model | str, parameter: str, signal_at: Callable, x, y, *, x_name: str = "x",
               y_name: str = "y", snr: float | None = None, repeats: int = 5, fixed: dict | None = None,
               linked: dict | None = None, seed: int = 0, n_jobs: int | None = 1) -> RegimeMap:
    """Map a model's bias for one parameter over two axes.

    Parameters
    ----------
    model : Model or str
    parameter : str
        The parameter judged.
    signal_at : callable
        ``signal_at(x, y) -> (scheme, signal, truth, mc_stderr)``: the acquisition, the (simulated
        or exact) signal (M,), the true value of ``parameter`` (SI) and the (M,) Monte Carlo
        standard error or None.
    x, y : array_like
        Axis values.
    x_name, y_name : str
        Axis labels.
    snr : float or None
        Added Gaussian noise (sigma = 1/snr); None: one noise-free fit per point (pure model bias).
    repeats : int
        Noise realisations per point.
    fixed, linked : dict, optional
        Passed to :func:`validation.fit`.
    seed : int
        Seed of the added noise.
    n_jobs : int or None
        Fitting processes.

    Returns
    -------
    RegimeMap
    """
    model = checked_model(model)
    if parameter not in model.names:
        raise ValueError(f"{model.name} has no parameter {parameter!r}; it has {model.names}")
    if not callable(signal_at):
        raise TypeError(f"signal_at must be a function signal_at(x, y) -> (scheme, signal, truth, mc_stderr), "
                        f"not {type(signal_at).__name__}")
    if snr:
        checked_positive(snr, "snr", "the SNR at b = 0 of the added noise, e.g. 50; None for noise-free fits")
    repeats = check_count(repeats, "repeats")
    x, y = np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float))
    bias = np.full((y.size, x.size), np.nan)
    cv = np.zeros_like(bias)
    nrv = np.full_like(bias, np.nan)
    rng = np.random.default_rng(seed)
    n_free = len(model.parameters) - len(fixed or {}) - len(linked or {})
    dof_min = np.inf
    j = model.names.index(parameter)
    for iy, yy in enumerate(y):
        for ix, xx in enumerate(x):
            scheme, signal, truth, mc = _point(signal_at, xx, yy, parameter)
            s = np.asarray(signal, dtype=float)
            if snr:
                sigma = 1.0 / snr
                Y = s[None] + rng.normal(0, sigma, (repeats, s.size))
            else:
                Y = s[None]
            res = fit(model, scheme, Y, fixed=fixed, linked=linked, n_jobs=n_jobs)
            est = res.params[:, j]
            bias[iy, ix] = (est.mean() - truth) / truth
            cv[iy, ix] = est.std() / abs(truth) if snr else 0.0
            if snr:
                dof = s.size - n_free
                dof_min = min(dof_min, dof)
                sig2 = sigma**2 + (np.mean(np.asarray(mc) ** 2) if mc is not None else 0.0)
                nrv[iy, ix] = float(np.mean(res.residual**2 * s.size / (dof * sig2)))
    limit = 1 + 2 * np.sqrt(2 / (repeats * dof_min)) if snr and np.isfinite(dof_min) else np.inf
    return RegimeMap(model.name, parameter, x_name, y_name, x, y, bias, cv, nrv, float(limit))
