"""Bias of fitted model parameters against the substrate's ground truth, with added noise.

For each simulated signal (a database row), each model and each noise
realisation at the chosen SNR (Gaussian noise on the real signal by default,
Rician magnitude as an option), the model is fitted and every parameter that
has a ground truth is compared with it. The Monte Carlo noise of the
simulation (its standard error) is reported beside the added noise, never
mixed into it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from sequences import check_count

from .fit import available_methods, fit
from .base import Model, axis, checked_scheme
from .checks import checked_model, checked_n_jobs, checked_positive
from .registry import get_model, list_models


def truth_of(model: Model, name: str, gt: dict):
    """The ground-truth value a parameter estimates, or None (see ``Parameter.truth``)."""
    key = model.parameters[model.names.index(name)].truth
    if key is None:
        return None
    if ":" in key:
        # "sphere:..." / "cylinder:...": the truth exists only for that geometry (a sphere model's radius says
        # nothing about a cylinder substrate)
        geometry, key = key.split(":", 1)
        is_cyl = "axis" in gt
        is_sph = "sphere" in str(gt.get("substrate", "")) and not is_cyl
        if (geometry == "cylinder" and not is_cyl) or (geometry == "sphere" and not is_sph):
            return None
    fractions = gt.get("volume_fractions") or {}
    if gt.get("start") in ("intra", "extra") and gt.get("signal_fractions"):
        # walkers started in one compartment: the signal holds only that one, the volume fraction is not its truth
        fractions = gt["signal_fractions"]
    if key == "intra_fraction":
        return fractions.get("intra")
    if key == "extra_fraction":
        return fractions.get("extra")
    if key == "effective_diameter":
        r = gt.get("effective_radius")
        return None if r is None else 2.0 * r
    if key == "soma_fraction":
        # spheres are the somas/cells of these models; other substrates have none unless they say so
        if gt.get("substrate") == "spheres":
            return fractions.get("intra")
        return gt.get("soma_fraction")
    if key == "odf_p2":
        if "odf_p2" in gt:
            return gt["odf_p2"]
        if "mean_cos2" in gt:
            # dispersed axons: <P2(cos)> = (3 <cos^2> - 1) / 2 over the generated axes (measured, not requested)
            return 1.5 * gt["mean_cos2"] - 0.5
        # parallel cylinders: every fibre along the axis, p2 = <P2(cos)> = 1
        return 1.0 if "axis" in gt else None
    if key in ("gamma_alpha", "gamma_beta"):
        r = np.asarray(gt.get("radii") or [], dtype=float)
        if r.size < 3 or r.std() == 0:
            return None
        # method of moments of the number-weighted radius histogram: mean = a b, variance = a b^2
        m, v = r.mean(), r.var()
        return m**2 / v if key == "gamma_alpha" else v / m
    value = gt.get(key)
    if isinstance(value, dict):
        # a per-compartment value (diffusivity={"intra": ..., "extra": ...}): no single truth for this parameter
        return None
    return value


def axis_error_deg(model: Model, params: np.ndarray, gt: dict) -> np.ndarray | None:
    """Angle (degrees, 0 to 90) between the fitted fibre direction and the substrate axis, one per fit.

    A fibre direction has no sign (n and -n are one axis), so the angle is min(angle, 180 - angle); None when
    the model has no direction or the ground truth no axis.
    """
    if not model.orientation or "axis" not in gt:
        return None
    n = axis(params[:, model.orientation[0]], params[:, model.orientation[1]])
    c = np.abs(n @ np.asarray(gt["axis"], dtype=float))
    return np.degrees(np.arccos(np.clip(c, 0, 1)))


def applicable_scheme(model: Model, scheme):
    """The part of a scheme a model can be fitted to: the whole scheme, or its PGSE part for models that need
    PGSE; (None, None) if nothing applies.

    Parameters
    ----------
    model : Model
    scheme : sequences.Scheme

    Returns
    -------
    (sequences.Scheme or None, numpy.ndarray or None)
        The scheme the model fits and the indices of its measurements in ``scheme``.
    """
    try:
        model.check_scheme(scheme)
        return scheme, np.arange(len(scheme))
    except ValueError:
        if "pgse" not in model.requires:
            return None, None
        idx = np.nonzero((scheme.label == "pgse") | (scheme.bvalues == 0))[0]
        if idx.size < len(model.parameters) + 1:
            return None, None
        sub = scheme[idx]
        try:
            model.check_scheme(sub)
        except ValueError:
            return None, None
        return sub, idx


def bias_table(scheme, signals, ground_truths, stderr=None, models=None, snr: float | None = 50.0,
               repeats: int = 3, likelihood: str = "gaussian", seed: int = 0, n_jobs: int | None = 1,
               progress: bool = False, method: str = "auto", fixed: dict | None = None) -> list[dict]:
    """Fit models to signals with added noise and tabulate bias against ground truth.

    Parameters
    ----------
    scheme : sequences.Scheme
    signals : numpy.ndarray
        (R, M) simulated signals.
    ground_truths : list of dict
        One ground-truth dict per row (``SimulationResult.ground_truth``).
    stderr : numpy.ndarray, optional
        (R, M) Monte Carlo standard errors (reported, not added).
    models : list of str, optional
        Models to fit (default: every model that applies to the scheme).
    snr : float or None
        Signal-to-noise ratio at b = 0 of the added noise (None: no added noise, one fit).
    repeats : int
        Noise realisations per row.
    likelihood : {"gaussian", "rician"}
        Noise model and fitting likelihood.
    seed : int
        Seed of the added noise.
    n_jobs : int or None
        Worker processes for the fits (None: all cores); results do not depend on it.
    progress : bool
        Print each model's name and fitting time.
    method : str
        Fitting method (see :func:`validation.fit`) for the models it applies to; the others use "auto".
        Each entry's ``method`` says which one fitted it.
    fixed : dict, optional
        Model name -> {parameter name: value (SI)} held fixed in that model's fits, e.g.
        ``{"noddi_watson": {"d_par": 1.7e-9}}`` (a NODDI or ActiveAx dictionary needs its d_par).

    Returns
    -------
    list of dict
        One entry per (row, model, parameter): truth, mean and SD of the
        estimate over the noise realisations, bias, relative bias, the
        fraction of fits that ended on a parameter bound (``at_bound``: such an
        estimate is the bound, not a measurement), the Monte Carlo standard
        error of the signals and the spread it alone would give the estimate
        (``mc_sd``), the added noise, and the fitting method. ``estimates`` and
        ``bound_hits`` list every fit (one per noise realisation) and whether it
        ended on a bound, for robust summaries (:func:`validation.report.summarise_bias`);
        ``nrv`` the normalised residual variance of each fit, N rms^2 / ((N - P) (sigma^2 +
        sigma_MC^2)) with P the free parameters (1 for a correct model; None without added noise).
        ``orientation`` marks the fibre-direction angles (theta, phi): they are
        never counted at a bound (theta = 0 is the z axis, phi wraps at +-pi);
        the ``axis_error`` entry (degrees, antipodally symmetric, where the ground
        truth has an axis) judges the direction instead.
    """
    checked_scheme(scheme)
    signals = np.atleast_2d(np.asarray(signals, dtype=float))
    if signals.ndim != 2 or signals.shape[1] != len(scheme):
        raise ValueError(f"signals have shape {np.shape(signals)}; expected (rows, {len(scheme)}): one row per "
                         "simulated signal, one column per measurement of the scheme")
    if len(ground_truths) != len(signals):
        raise ValueError(f"ground_truths has {len(ground_truths)} entries but signals has {len(signals)} rows; "
                         "give one ground-truth dict (or None) per row")
    if stderr is not None and np.shape(stderr) != signals.shape:
        raise ValueError(f"stderr has shape {np.shape(stderr)}; expected the shape of signals, {signals.shape}")
    if snr is not None and snr != 0:
        checked_positive(snr, "snr", "the SNR at b = 0 of the added noise, e.g. 50; None or 0 for no added noise")
    repeats = check_count(repeats, "repeats")
    if likelihood not in ("gaussian", "rician"):
        raise ValueError(f"likelihood must be 'gaussian' or 'rician', got {likelihood!r}")
    if isinstance(models, str):
        raise TypeError(f"models must be a list of model names, e.g. [{models!r}], not a str")
    for name in models or []:
        checked_model(name)
    checked_n_jobs(n_jobs)
    if fixed is not None and not (isinstance(fixed, dict) and all(isinstance(v, dict) for v in fixed.values())):
        raise TypeError("fixed must be a dict of model name -> {parameter: value (SI)}, e.g. "
                        "{'noddi_watson': {'d_par': 1.7e-9}}")
    for name in fixed or {}:
        checked_model(name)
    rng = np.random.default_rng(seed)
    rows = []
    for name in models or list_models():
        model = get_model(name)
        sch, idx = applicable_scheme(model, scheme)
        if sch is None:
            continue
        t0 = time.perf_counter()
        n_rep = repeats if snr else 1
        sigma = 1.0 / snr if snr else None
        use = [r for r, (y, gt) in enumerate(zip(signals, ground_truths))
               if gt is not None and np.all(np.isfinite(y))]
        if not use:
            continue
        blocks = []
        for r in use:
            Y = np.repeat(signals[r][idx][None], n_rep, axis=0)
            if snr:
                noise = rng.normal(0, sigma, Y.shape)
                if likelihood == "rician":
                    Y = np.sqrt((Y + noise) ** 2 + rng.normal(0, sigma, Y.shape) ** 2)
                else:
                    Y = Y + noise
            blocks.append(Y)
        how = method if method in available_methods(model) else "auto"
        # one fit call for every row: each signal is fitted on its own (its own grid starts and LM problem), so
        # a batch gives each row the fits a call of its own would, at a fraction of the per-call cost
        batch = fit(model, sch, np.concatenate(blocks), method=how, sigma=sigma,
                    likelihood=likelihood if snr else "gaussian", n_jobs=n_jobs, fixed=(fixed or {}).get(name))
        for k, r in enumerate(use):
            gt = ground_truths[r]
            params = batch.params[k * n_rep:(k + 1) * n_rep]
            residual = batch.residual[k * n_rep:(k + 1) * n_rep]
            mc = float(np.mean(stderr[r][idx])) if stderr is not None else np.nan
            # normalised residual variance at each fit (Lampinen et al. 2020): 1 for a correct model, the
            # simulation's own Monte Carlo noise added to the added noise
            n_free = len(model.parameters) - len((fixed or {}).get(name) or {})
            var = sigma**2 + (mc**2 if np.isfinite(mc) else 0.0) if snr else np.nan
            nrv = (len(sch) * residual**2 / (max(len(sch) - n_free, 1) * var)).tolist() if snr else None
            for j, pname in enumerate(model.names):
                est = params[:, j]
                truth = truth_of(model, pname, gt)
                lo, hi = model.parameters[j].bounds
                tol = 1e-6 * (hi - lo) if np.isfinite(hi - lo) else 1e-6 * model.parameters[j].scale
                sd = float(est.std())
                # a direction angle on its bound is a valid direction (theta = 0 is the z axis, phi wraps at
                # +-pi), not an estimate stuck on a constraint: the angular error row judges the direction
                is_angle = j in (model.orientation or ())
                hits = np.zeros(est.shape, bool) if is_angle else (est <= lo + tol) | (est >= hi - tol)
                entry = {"row": r, "model": name, "parameter": pname, "unit": model.parameters[j].unit,
                         "truth": truth, "estimate": float(est.mean()), "sd": sd,
                         # the estimate's spread that the Monte Carlo noise alone would cause, propagated
                         # linearly through the same fits: sd * (MC standard error / added noise)
                         "mc_sd": float(sd * mc / sigma) if snr and np.isfinite(mc) else np.nan,
                         "at_bound": float(np.mean(hits)),
                         "mc_stderr": mc, "snr": snr, "repeats": n_rep, "measurements": len(sch),
                         "method": batch.method, "orientation": is_angle,
                         # every fit, for robust summaries (median, share within a tolerance, bound hits)
                         "estimates": est.tolist(), "bound_hits": hits.tolist(), "nrv": nrv}
                if truth is not None:
                    entry["bias"] = float(est.mean() - truth)
                    entry["relative_bias"] = float((est.mean() - truth) / truth) if truth else np.nan
                rows.append(entry)
            ang = axis_error_deg(model, params, gt)
            if ang is not None:
                rows.append({"row": r, "model": name, "parameter": "axis_error", "unit": "deg", "truth": 0.0,
                             "estimate": float(ang.mean()), "sd": float(ang.std()), "bias": float(ang.mean()),
                             "relative_bias": np.nan, "mc_stderr": mc, "mc_sd": np.nan, "at_bound": 0.0,
                             "snr": snr, "repeats": n_rep, "measurements": len(sch), "method": batch.method,
                             "orientation": False, "estimates": ang.tolist(), "bound_hits": [False] * len(ang)})
        if progress:
            print(f"  fitted {name} to {len(signals)} x {repeats if snr else 1} signals in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
    return rows


def bound_text(entry: dict) -> str:
    """'-' or the share of fits of an entry that ended on a parameter bound (then the estimate is the bound)."""
    f = entry.get("at_bound", 0.0) or 0.0
    return "-" if f == 0 else f"{100 * f:.0f} % of fits"


def write_report(rows: list[dict], outdir: str | Path, title: str = "diffwalk validation") -> list[Path]:
    """A markdown table and a relative-bias figure for a bias table.

    Parameters
    ----------
    rows : list of dict
        A bias table from :func:`bias_table` (values in SI; the table shows
        diffusivities in um^2/ms and lengths in um).
    outdir : str or Path
        Folder for ``report.md`` and ``bias.png`` (created if needed; files overwritten).
    title : str
        Title of the report and the figure.

    Returns
    -------
    list of Path
        The Markdown report and the PNG figure.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    judged = [r for r in rows if r.get("relative_bias") is not None and np.isfinite(r.get("relative_bias", np.nan))]
    labels = sorted({(r["model"], r["parameter"]) for r in judged})
    # one row per (model, parameter): the figure grows downwards, the labels stay readable
    fig, ax = plt.subplots(figsize=(9, max(3.5, 1.2 + 0.3 * len(labels))), layout="constrained")
    flagged = False
    for k, (m, p) in enumerate(labels):
        pts = [r for r in judged if (r["model"], r["parameter"]) == (m, p)]
        for j, r in enumerate(pts):
            y = k + 0.3 * (j - (len(pts) - 1) / 2) / max(len(pts), 1)
            t = abs(r["truth"]) if r["truth"] else 1.0
            # error bar: the noise standard error of the mean estimate and the Monte Carlo spread, combined
            err = 100 * np.hypot(r["sd"] / np.sqrt(max(r.get("repeats", 1), 1)), np.nan_to_num(r.get("mc_sd", 0.0)))
            bound = r.get("at_bound", 0.0) > 0.5
            flagged |= bound
            ax.errorbar(100 * r["relative_bias"], y, xerr=err / t, fmt="x" if bound else "o",
                        color="tab:red" if bound else "tab:blue", ms=6 if bound else 4, capsize=2, alpha=0.8)
    ax.axvline(0, color="0.5", lw=0.8)
    for x in (-10, -5, 5, 10):
        ax.axvline(x, color="0.8", lw=0.6, ls=":")
    ax.set_yticks(range(len(labels)), [f"{m}: {p}" for m, p in labels], fontsize="small")
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set(xlabel="relative bias (%)  (dotted: 5 % and 10 %)",
           title=f"{title}\nbias against ground truth, one point per simulated row; bars: noise and Monte Carlo "
                 "error" + ("\nred x: most fits ended on a parameter bound (the estimate is the bound)" if flagged
                            else ""))
    ax.title.set_fontsize("medium")
    fig_path = out / "bias.png"
    fig.savefig(fig_path, dpi=100)
    plt.close(fig)

    def fmt(v, unit):
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "-"
        scale = {"m^2/s": (1e9, "um^2/ms"), "m": (1e6, "um")}.get(unit, (1.0, unit))
        return f"{v * scale[0]:.4g}"

    lines = [f"# {title}", "", f"![relative bias]({fig_path.name})", "",
             "| row | model | parameter | unit | truth | estimate | SD | relative bias | at bound | MC SE | SNR |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        unit = {"m^2/s": "um^2/ms", "m": "um"}.get(r["unit"], r["unit"])
        rb = r.get("relative_bias")
        lines.append(f"| {r['row']} | {r['model']} | {r['parameter']} | {unit} | {fmt(r['truth'], r['unit'])} | "
                     f"{fmt(r['estimate'], r['unit'])} | {fmt(r['sd'], r['unit'])} | "
                     f"{'-' if rb is None or not np.isfinite(rb) else f'{100 * rb:+.1f} %'} | "
                     f"{bound_text(r)} | {r['mc_stderr']:.2g} | {r['snr'] or 'none'} |")
    md = out / "report.md"
    md.write_text("\n".join(lines) + "\n")
    return [md, fig_path]
