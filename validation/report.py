"""A validation report: from simulated results (in memory or a database) to a folder of PNG figures and a
Markdown summary with bias tables, NRV landscapes and regime-of-validity maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bias import applicable_scheme, bias_table, truth_of, write_report
from .registry import get_model, list_models
from .nrv import nrv_landscape


@dataclass(frozen=True, eq=False)
class SignalSet:
    """Signals that share one scheme, with the ground truth of each: what a report is made from.

    The fields are also the attributes of the (frozen) instance.

    Parameters
    ----------
    scheme : sequences.Scheme
        The acquisition every signal shares (SI).
    signals, stderr : numpy.ndarray
        (R, M) normalised signals and their Monte Carlo standard errors.
    ground_truths : list of dict
        One per signal (SI), as ``SimulationResult.ground_truth``.
    rows : numpy.ndarray
        (R,) identifiers shown in the tables (database row numbers, or 0..R-1).
    """

    scheme: object
    signals: np.ndarray
    stderr: np.ndarray
    ground_truths: list
    rows: np.ndarray

    @classmethod
    def from_results(cls, results) -> "SignalSet":
        """From simulation results (anything with ``scheme``, ``signal``, ``stderr`` and ``ground_truth``).

        Parameters
        ----------
        results : iterable of SimulationResult
            Results sharing one scheme.

        Returns
        -------
        SignalSet
            Their (R, M) signals and standard errors, ground truths, and rows 0..R-1.

        Raises
        ------
        ValueError
            If there are no results or their schemes differ.
        """
        results = list(results)
        if not results:
            raise ValueError("no results to report on")
        scheme = results[0].scheme
        for r in results[1:]:
            if r.scheme.gradients.shape != scheme.gradients.shape or not np.allclose(r.scheme.gradients,
                                                                                      scheme.gradients):
                raise ValueError("all results of one report must share one acquisition scheme; report each scheme "
                                 "separately")
        return cls(scheme, np.array([r.signal for r in results]), np.array([r.stderr for r in results]),
                   [r.ground_truth for r in results], np.arange(len(results)))


def _save_plot(draw, path: Path, size) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    draw(ax=ax)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _verdict_rows(table: list[dict], landscapes: dict) -> list[str]:
    """One Markdown row per (model, parameter) with a ground truth: the answer before the details."""
    groups: dict = {}
    for e in table:
        rb = e.get("relative_bias")
        if rb is not None and np.isfinite(rb):
            groups.setdefault((e["model"], e["parameter"]), []).append(e)
    out = []
    for (mname, pname), es in sorted(groups.items()):
        rb = np.array([e["relative_bias"] for e in es])
        t = np.array([abs(e["truth"]) if e["truth"] else 1.0 for e in es])
        noise = np.sqrt(np.sum((np.array([e["sd"] for e in es]) / t) ** 2
                               / np.array([max(e.get("repeats", 1), 1) for e in es]))) / len(es)
        mc = np.sqrt(np.nansum((np.array([e.get("mc_sd", np.nan) for e in es]) / t) ** 2)) / len(es)
        mean = rb.mean()
        at_bound = np.mean([e.get("at_bound", 0.0) for e in es])
        unit = "" if es[0]["unit"] == "1" else f" {es[0]['unit']}"
        land = landscapes.get((mname, pname))
        out.append(f"| {mname} | {pname} | {es[0]['truth']:.4g}{unit} | {100 * mean:+.1f} % | "
                   f"{100 * rb.std():.1f} % | {100 * noise:.1f} % | {100 * mc:.1f} % | "
                   f"{'yes' if abs(mean) <= 0.05 else 'no'} | {'yes' if abs(mean) <= 0.10 else 'no'} | "
                   f"{'-' if at_bound == 0 else f'{100 * at_bound:.0f} %'} | "
                   f"{'-' if land is None else f'{land.minimum:.3g}'} |")
    return out


def _nrv_section(nrv, scheme, signals, stderr, gts, snr, nrv_repeats, seed, n_jobs, out: Path):
    """NRV landscapes of the first signal: {(model, parameter): landscape} and the report's lines."""
    landscapes, lines = {}, []
    if nrv:
        lines += ["", "## NRV landscapes", ""]
    for k, (mname, pname) in enumerate(nrv or []):
        m = get_model(mname)
        sch, idx = applicable_scheme(m, scheme)
        if sch is None:
            lines += ["", f"NRV landscape of {mname}.{pname} skipped: it needs {m.needs}"]
            continue
        land = nrv_landscape(m, sch, signals[0][idx], pname, snr=snr or 50.0, repeats=nrv_repeats,
                             mc_stderr=stderr[0][idx], truth=truth_of(m, pname, gts[0]), seed=seed + k, n_jobs=n_jobs)
        landscapes[(mname, pname)] = land
        path = _save_plot(land.plot, out / f"nrv_{mname}_{pname}.png", (6, 4))
        lines += [f"### {mname}: {pname}", "", f"![NRV {mname} {pname}]({path.name})", "",
                  f"NRV_min {land.minimum:.3g} at {land.argmin:.4g} (expected 1 +- {land.expected_sd:.2g} for a "
                  f"correct model); valley {land.valley[0]:.4g} .. {land.valley[1]:.4g}; truth "
                  f"{'unknown' if land.truth is None else f'{land.truth:.4g}'}; bias of the minimum "
                  f"{'-' if land.bias is None else f'{land.bias:+.4g}'}.", ""]
    return landscapes, lines


def make_report(results, outdir: str | Path, *, models=None, snr: float | None = 50.0, repeats: int = 3,
                nrv: list | None = None, regime_maps: list | None = None, nrv_repeats: int = 5,
                title: str = "diffwalk validation report", seed: int = 0, n_jobs: int | None = 1,
                progress: bool = False, likelihood: str = "gaussian", method: str = "auto") -> Path:
    """Fit every applicable model, tabulate bias, draw NRV landscapes and regime maps, write Markdown.

    Parameters
    ----------
    results : list of SimulationResult, or SignalSet
        Simulated signals with ground truth sharing one scheme (a database:
        ``diffwalk.report_database``).
    outdir : str or Path
        Folder for ``report.md`` and the PNG figures.
    models : list of str, optional
        Models to fit (default: every model whose needs the scheme meets).
    snr : float or None
        SNR of the added Gaussian noise (None: noise-free fits).
    repeats : int
        Noise realisations per result for the bias table.
    nrv : list of (model, parameter), optional
        NRV landscapes to draw, computed on the first result.
    regime_maps : list of RegimeMap, optional
        Maps computed beforehand with :func:`validation.regimes.regime_map`.
    nrv_repeats : int
        Noise realisations of each NRV landscape.
    title : str
    seed : int
        Seed of the added noise.
    n_jobs : int or None
        Fitting processes.
    progress : bool
        Print each model's fitting time.
    likelihood : {"gaussian", "rician"}
        Noise model and likelihood of the bias fits.
    method : str
        Fitting method where it applies (see :func:`validation.fit`; default: each model's fast path); the
        Models table says which method fitted each model.

    Returns
    -------
    Path
        The Markdown report.
    """
    out = Path(outdir)
    data = results if isinstance(results, SignalSet) else SignalSet.from_results(results)
    scheme, signals, stderr, gts, row_ids = data.scheme, data.signals, data.stderr, data.ground_truths, data.rows
    if isinstance(models, str):
        raise TypeError(f"models must be a list of model names, e.g. [{models!r}], not a str")
    names = list(models or list_models())
    applicable, refused = [], []
    for n in names:
        sch, _ = applicable_scheme(get_model(n), scheme)
        (applicable if sch is not None else refused).append(n)
    table = bias_table(scheme, signals, gts, stderr, models=applicable, snr=snr, repeats=repeats, seed=seed,
                       likelihood=likelihood, n_jobs=n_jobs, progress=progress, method=method)
    for e in table:  # database row numbers, not positions among the finished rows
        e["row"] = int(row_ids[e["row"]])
    out.mkdir(parents=True, exist_ok=True)  # after bias_table has checked the arguments: a refusal leaves no folder
    write_report(table, out, title=title)  # full table and the bias figure (bias.png, report.md replaced below)
    full_table = (out / "report.md").read_text().split("\n", 4)[-1]
    landscapes, nrv_lines = _nrv_section(nrv, scheme, signals, stderr, gts, snr, nrv_repeats, seed, n_jobs, out)

    lines = [f"# {title}", "",
             f"{len(signals)} simulated signal(s), {len(scheme)} measurements; added noise: "
             f"{'none' if not snr else f'Gaussian, SNR {snr:g} at b = 0, {repeats} realisations'}; Monte Carlo "
             f"standard error (mean over measurements) {np.mean(stderr):.2g}, reported beside, not added.", "",
             "## Verdict", "",
             "Per model and parameter with a ground truth: the mean relative bias over the rows, its spread "
             "(SD over rows), the error of that mean from the added noise and from the Monte Carlo noise, "
             "whether it is within 5 % and 10 %, the share of fits that ended on a parameter bound (such an "
             "estimate is the bound, not a measurement), and NRV_min where its landscape was computed (about 1 "
             "for a model that fits within noise).", "",
             "| model | parameter | truth (row 0) | mean relative bias | spread | noise error | MC error | "
             "within 5 % | within 10 % | at bound | NRV_min |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += _verdict_rows(table, landscapes)
    if refused:
        lines += ["", "Not fitted (the scheme does not give what they need):", ""]
        lines += [f"- {n}: needs {get_model(n).needs}" for n in refused]
    fitted_by = {}
    for e in table:
        fitted_by.setdefault(e["model"], set()).add(e.get("method", "-"))
    lines += ["", "## Models", "", "| model | fitted | method | assumptions |", "|---|---|---|---|"]
    for n in names:
        m = get_model(n)
        lines.append(f"| {n} | {'yes' if n in applicable else 'no: needs ' + m.needs} | "
                     f"{', '.join(sorted(fitted_by.get(n, ()))) or '-'} | {m.assumptions} |")
    lines += ["", "## Bias against ground truth", "", "![relative bias](bias.png)", ""]
    lines += nrv_lines
    if regime_maps:
        lines += ["", "## Regimes of validity", ""]
    for k, rm in enumerate(regime_maps or []):
        path = _save_plot(rm.plot, out / f"regime_{rm.model}_{rm.parameter}_{k}.png", (6.5, 4.5))
        frac5, frac10 = rm.valid(0.05).mean(), rm.valid(0.10).mean()
        lines += [f"### {rm.model}: {rm.parameter} over ({rm.x_name}, {rm.y_name})", "",
                  f"![regime]({path.name})", "",
                  f"Valid (|bias| < 5 %) on {100 * frac5:.0f} % of the grid, < 10 % on {100 * frac10:.0f} %; 5 % "
                  f"boundary along {rm.x_name}: " + ", ".join(
                      f"{rm.y_name} = {yy:.3g}: {'none' if not np.isfinite(bx) else f'{bx:.3g}'}"
                      for yy, bx in zip(rm.y, rm.boundary(0.05))), ""]
    lines += ["", "## Full bias table", "", full_table]
    md = out / "report.md"
    md.write_text("\n".join(lines) + "\n")
    return md
