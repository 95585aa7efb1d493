"""NRV landscapes (Lampinen et al. 2020, MRM 84:1605): where a model holds and how well it is determined.

NRV(p*) = (1/I) sum_i sum_n (S_in - S_fit_in(p = p*))^2 / ((N - M) sigma_tot^2), with one parameter p
fixed at each p* of a grid and the others refitted to every noise realisation i. For a correct
model E[NRV] = 1 with SD ~ sqrt(2 / (I (N - M))); a minimum clearly above 1 is misspecification,
a flat valley is degeneracy, and a minimum away from the truth is bias. sigma_tot^2 = sigma^2 +
sigma_MC^2 adds the simulation's own Monte Carlo noise to the added noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sequences import check_count

from .fit import fit
from .base import Model, checked_scheme
from .checks import checked_model, checked_positive


@dataclass
class NRVLandscape:
    """An NRV landscape over one parameter.

    Returned by :func:`nrv_landscape`; the fields are also its attributes.
    NRV values are dimensionless.

    Parameters
    ----------
    model, parameter : str
        Model name and the parameter fixed along the grid.
    grid : numpy.ndarray
        (G,) values p* (SI, the parameter's unit).
    nrv : numpy.ndarray
        (G,) raw mean NRV (the defining formula).
    nrv_normalised : numpy.ndarray
        (G,) the published variant: each realisation divided by its own minimum, robust median
        across realisations (points > 1 SD from the median dropped), 5-point moving average twice.
        The smoothing was designed for the published 80-point grid; on coarse grids it blurs the
        valley, so judge minima and widths on ``nrv``.
    per_realisation : numpy.ndarray
        (I, G) NRV of each noise realisation.
    expected_sd : float
        sqrt(2 / (I (N - M))), the SD of the mean NRV for a correct model.
    minimum, argmin : float
        Smallest raw NRV and where it is (p*, SI).
    valley : tuple of float
        Range of p* (SI, contiguous around argmin) with NRV <= minimum + 2 expected_sd.
    truth : float or None
        Ground-truth value of the parameter (SI), if known.
    bias : float or None
        argmin - truth (SI).
    sigma_total : float
        Noise SD used in the denominator (units of the normalised signal).
    """

    model: str
    parameter: str
    grid: np.ndarray
    nrv: np.ndarray
    nrv_normalised: np.ndarray
    per_realisation: np.ndarray
    expected_sd: float
    minimum: float
    argmin: float
    valley: tuple
    truth: float | None
    bias: float | None
    sigma_total: float

    def plot(self, ax=None, scale: float = 1.0, unit: str = ""):
        """NRV against p* with the truth as a vertical line; returns (fig, ax).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw into (a new figure by default).
        scale : float
            Factor applied to p* on the x axis (e.g. 1e6 to show m as um).
        unit : str
            Unit label of the scaled x axis (e.g. ``"um"``).

        Returns
        -------
        fig : matplotlib.figure.Figure
            The figure drawn into.
        ax : matplotlib.axes.Axes
            The axes drawn into.
        """
        import matplotlib.pyplot as plt
        if ax is None:
            fig, ax = plt.subplots(layout="constrained")
        else:
            fig = ax.figure
        x = self.grid * scale
        ax.plot(x, self.nrv, "o-", ms=3, label="mean NRV (formula)")
        ax.plot(x, self.nrv_normalised, "--", label="normalised median (published figure style)")
        ax.axhline(1.0, color="0.6", lw=0.8)
        ax.axhspan(self.minimum, self.minimum + 2 * self.expected_sd, color="tab:blue", alpha=0.1,
                   label="minimum + 2 SD")
        if self.truth is not None:
            ax.axvline(self.truth * scale, color="k", ls=":", label="ground truth")
        ax.set(xlabel=f"{self.parameter} fixed at p* {unit}".strip(), ylabel="NRV",
               title=f"{self.model}: NRV landscape of {self.parameter}")
        ax.legend(fontsize="small")
        return fig, ax


def _smooth5(y: np.ndarray) -> np.ndarray:
    pad = np.pad(y, 2, mode="edge")
    return np.convolve(pad, np.ones(5) / 5, mode="valid")


def nrv_landscape(model: Model | str, scheme, signal, parameter: str, grid=None, *, snr: float = 50.0,
                  repeats: int = 10, mc_stderr=None, truth: float | None = None, seed: int = 0,
                  fixed: dict | None = None, n_jobs: int | None = 1) -> NRVLandscape:
    """NRV landscape of one parameter for one (simulated) signal.

    Parameters
    ----------
    model : Model or str
    scheme : sequences.Scheme
    signal : array_like
        (M,) noise-free (or Monte Carlo) signal.
    parameter : str
        The parameter fixed at each grid value.
    grid : array_like, optional
        Values p* (SI); default 25 values inside the parameter's bounds.
    snr : float
        SNR at b = 0 of the added Gaussian noise (sigma = 1/snr).
    repeats : int
        Noise realisations I.
    mc_stderr : array_like, optional
        (M,) Monte Carlo standard errors, added to the noise variance.
    truth : float, optional
        Ground-truth value of the parameter (SI).
    seed : int
        Seed of the added noise.
    fixed : dict, optional
        Other parameters held fixed throughout.
    n_jobs : int or None
        Fitting processes.

    Returns
    -------
    NRVLandscape
    """
    model = checked_model(model)
    if parameter not in model.names:
        raise ValueError(f"{model.name} has no parameter {parameter!r}; it has {model.names}")
    checked_scheme(scheme)
    checked_positive(snr, "snr", "the SNR at b = 0 of the added noise, e.g. 50")
    repeats = check_count(repeats, "repeats")
    fixed = dict(fixed or {})
    p = model.parameters[model.names.index(parameter)]
    if grid is None:
        lo, hi = p.bounds
        grid = np.linspace(lo + 0.02 * (hi - lo), hi - 0.02 * (hi - lo), 25)
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ValueError(f"grid must be a non-empty 1-D array of finite values of {parameter} (SI), got shape "
                         f"{grid.shape}{'' if np.all(np.isfinite(grid)) else ' with NaN or inf'}; or leave it "
                         "out for 25 values inside the parameter's bounds")
    y = np.asarray(signal, dtype=float)
    if y.shape != (len(scheme),):
        raise ValueError(f"signal has shape {y.shape}; expected ({len(scheme)},): one signal, one value per "
                         "measurement of the scheme")
    sigma = 1.0 / snr
    sigma_tot = float(np.sqrt(sigma**2 + (np.mean(np.asarray(mc_stderr) ** 2) if mc_stderr is not None else 0.0)))
    rng = np.random.default_rng(seed)
    Y = y[None] + rng.normal(0, sigma, (repeats, y.size))
    n_free = len(model.parameters) - len(fixed) - 1
    dof = y.size - n_free
    if dof <= 0:
        raise ValueError(f"{y.size} measurements cannot constrain {n_free} free parameters")
    per = np.empty((repeats, grid.size))
    for g, value in enumerate(grid):
        res = fit(model, scheme, Y, fixed={**fixed, parameter: value}, n_jobs=n_jobs)
        ssr = res.residual**2 * y.size
        per[:, g] = ssr / (dof * sigma_tot**2)
    nrv = per.mean(axis=0)
    norm = per / per.min(axis=1, keepdims=True)
    med = np.median(norm, axis=0)
    sd = norm.std(axis=0)
    robust = np.array([np.median(col[np.abs(col - m) <= s]) if np.any(np.abs(col - m) <= s) else m
                       for col, m, s in zip(norm.T, med, sd)])
    nrv_norm = _smooth5(_smooth5(robust))
    expected_sd = float(np.sqrt(2.0 / (repeats * dof)))
    k = int(np.argmin(nrv))
    ok = nrv <= nrv[k] + 2 * expected_sd
    lo_i = k
    while lo_i > 0 and ok[lo_i - 1]:
        lo_i -= 1
    hi_i = k
    while hi_i < grid.size - 1 and ok[hi_i + 1]:
        hi_i += 1
    return NRVLandscape(model.name, parameter, grid, nrv, nrv_norm, per, expected_sd, float(nrv[k]), float(grid[k]),
                        (float(grid[lo_i]), float(grid[hi_i])), truth,
                        None if truth is None else float(grid[k] - truth), sigma_tot)
