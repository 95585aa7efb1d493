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


#: a judged parameter needs fewer than this share of its fits on a parameter bound for a "yes"
BOUND_SHARE_MAX = 0.10
#: from this share of fits on a bound on, the remaining fits describe a minority: the verdict is "unreliable"
BOUND_SHARE_UNRELIABLE = 0.5
#: a "yes" needs the spread (half the interquartile range of the relative error) within this multiple of the
#: tolerance: with a larger spread a single fit is as likely outside the tolerance as inside
SPREAD_MULTIPLE = 1.0

#: the verdict rules in words, stated in every report that gives a verdict
VERDICT_RULES = (
    "Every fit counts: one per simulated row and noise realisation. Fits that ended on a parameter bound (the "
    "estimate is the bound, not a measurement) are counted and left out of the median and the spread. "
    "\"within 5 %\" and \"within 10 %\" are **yes** only if |median relative bias| <= the tolerance, the "
    "spread (half the interquartile range of the relative error) <= "
    + ("the tolerance" if SPREAD_MULTIPLE == 1 else f"{SPREAD_MULTIPLE:g} x the tolerance") + ", and "
    f"fewer than {100 * BOUND_SHARE_MAX:.0f} % of the fits ended on a bound; otherwise **no**, with every rule "
    "that failed (biased, spread, at a bound). **unreliable**: half of the fits or more ended on a bound. The "
    "fibre direction is judged as the angle between fitted and true axis (degrees, 0 to 90: a direction has no "
    "sign), not as theta and phi.")


@dataclass(frozen=True)
class BiasSummary:
    """Robust summary of the fits of one (model, parameter) against the ground truth, over every row.

    The fields are also the attributes of the (frozen) instance.

    Parameters
    ----------
    model, parameter, unit : str
        Which parameter (unit SI).
    truth : float
        The ground truth of the first row (SI).
    n_fits : int
        Every fit: rows x noise realisations.
    n_rows : int
        Simulated rows.
    realisations : int
        Noise realisations per row (1: noise-free fits).
    n_bound : int
        Fits that ended on a parameter bound.
    median : float
        Median relative error ((estimate - truth) / truth) of the fits off a bound; NaN if none.
    spread : float
        Half the interquartile range of those relative errors (a robust SD: 0.67 SD for Gaussian errors).
    within10 : int
        Fits (of all ``n_fits``) within 10 % of the truth.
    mean : float
        Mean over rows of the mean relative bias (every fit, bounds included), as the full table gives it.
    mc_error : float
        Error of that mean from the Monte Carlo noise of the signals alone (relative).
    snr : float or None
        SNR of the added noise (None: noise-free fits).
    """

    model: str
    parameter: str
    unit: str
    truth: float
    n_fits: int
    n_rows: int
    realisations: int
    n_bound: int
    median: float
    spread: float
    within10: int
    mean: float
    mc_error: float
    snr: float | None = None

    def judge(self, tol: float) -> tuple[str, list[str]]:
        """The verdict at a tolerance, by the rules of :data:`VERDICT_RULES`.

        Parameters
        ----------
        tol : float
            Relative tolerance, e.g. 0.05.

        Returns
        -------
        tuple of (str, list of str)
            "yes", "no" or "unreliable", and the reasons ("biased -28.0 %", "spread 54 %",
            "3 of 8 at a bound"); none for "yes".
        """
        bound = f"{self.n_bound} of {self.n_fits} at a bound"
        if self.n_fits == 0 or self.n_bound >= BOUND_SHARE_UNRELIABLE * self.n_fits:
            return "unreliable", [bound]
        reasons = []
        if not abs(self.median) <= tol:
            reasons.append(f"biased {100 * self.median:+.1f} %")
        if not self.spread <= SPREAD_MULTIPLE * tol:
            reasons.append(f"spread {100 * self.spread:.0f} %")
        if self.n_bound >= BOUND_SHARE_MAX * self.n_fits:
            reasons.append(bound)
        return ("no" if reasons else "yes"), reasons

    def verdict(self, tol: float) -> str:
        """The verdict at a tolerance as one cell: "yes", "no (spread 54 %; 3 of 8 at a bound)", "unreliable (...)".

        Parameters
        ----------
        tol : float
            Relative tolerance, e.g. 0.05.

        Returns
        -------
        str
        """
        word, reasons = self.judge(tol)
        return word if not reasons else f"{word} ({'; '.join(reasons)})"

    @property
    def fits_text(self) -> str:
        """How many fits the summary rests on, in words ("8 (4 rows x 2 noise realisations)")."""
        return fits_text(self.n_fits, self.n_rows, self.realisations, self.snr)


@dataclass(frozen=True)
class DirectionSummary:
    """The fibre-direction error of one model over every fit: angle between fitted and true axis.

    Parameters
    ----------
    model : str
    n_fits, n_rows, realisations : int
        Every fit, the simulated rows and the noise realisations per row.
    median, p90, largest : float
        Median, 90th percentile and largest angular error (degrees, 0 to 90: min(angle, 180 - angle)).
    snr : float or None
        SNR of the added noise (None: noise-free fits).
    """

    model: str
    n_fits: int
    n_rows: int
    realisations: int
    median: float
    p90: float
    largest: float
    snr: float | None = None


def fits_text(n_fits: int, n_rows: int, realisations: int, snr: float | None) -> str:
    """How many fits a summary rests on, in words: "8 (4 rows x 2 noise realisations)".

    Parameters
    ----------
    n_fits, n_rows, realisations : int
        Every fit, the simulated rows and the noise realisations per row.
    snr : float or None
        SNR of the added noise (None or 0: noise-free, one fit per row).

    Returns
    -------
    str
    """
    if not snr:
        return f"{n_fits} ({n_rows} rows, noise-free: one fit each)"
    return f"{n_fits} ({n_rows} rows x {realisations} noise realisation{'s' if realisations != 1 else ''})"


def _fits_of(entry: dict) -> tuple[np.ndarray, np.ndarray]:
    """(estimates, bound hits) of every fit of a bias-table entry; a table without them gives its mean, once."""
    if "estimates" in entry:
        return np.asarray(entry["estimates"], float), np.asarray(entry["bound_hits"], bool)
    return np.array([entry["estimate"]]), np.array([entry.get("at_bound", 0.0) > 0.5])


def summarise_bias(table: list[dict]) -> list[BiasSummary]:
    """Robust summaries, one per (model, parameter) with a ground truth, of a bias table.

    Fits on a parameter bound are counted (``n_bound``) and left out of the median and the spread: such an
    estimate is the bound, not a measurement, and one of them would drag a mean anywhere. Fibre-direction
    angles (entries marked ``orientation``) and the angular error are left out: see
    :func:`summarise_directions`.

    Parameters
    ----------
    table : list of dict
        A bias table from :func:`validation.bias_table`.

    Returns
    -------
    list of BiasSummary
        Sorted by model and parameter.
    """
    groups: dict = {}
    for e in table:
        rb = e.get("relative_bias")
        if rb is not None and np.isfinite(rb) and not e.get("orientation", False):
            groups.setdefault((e["model"], e["parameter"]), []).append(e)
    out = []
    for (mname, pname), es in sorted(groups.items()):
        rel, hit = [], []
        for e in es:
            est, hits = _fits_of(e)
            rel.append((est - e["truth"]) / e["truth"])
            hit.append(hits)
        rel, hit = np.concatenate(rel), np.concatenate(hit)
        free = rel[~hit]
        t = np.array([abs(e["truth"]) for e in es])
        mc = np.sqrt(np.nansum((np.array([e.get("mc_sd", np.nan) for e in es]) / t) ** 2)) / len(es)
        q1, q3 = np.percentile(free, [25, 75]) if free.size else (np.nan, np.nan)
        out.append(BiasSummary(
            model=mname, parameter=pname, unit=es[0]["unit"], truth=float(es[0]["truth"]), n_fits=int(rel.size),
            n_rows=len(es), realisations=max(int(e.get("repeats", 1)) for e in es), n_bound=int(hit.sum()),
            median=float(np.median(free)) if free.size else np.nan, spread=float((q3 - q1) / 2),
            within10=int(np.sum(np.abs(rel) <= 0.10)),
            mean=float(np.mean([e["relative_bias"] for e in es])), mc_error=float(mc), snr=es[0].get("snr")))
    return out


def summarise_directions(table: list[dict]) -> list[DirectionSummary]:
    """The angular error of each model's fitted fibre direction (its ``axis_error`` entries), over every fit.

    Parameters
    ----------
    table : list of dict
        A bias table from :func:`validation.bias_table`.

    Returns
    -------
    list of DirectionSummary
        One per model with a direction, where the ground truth has an axis; sorted by model.
    """
    groups: dict = {}
    for e in table:
        if e["parameter"] == "axis_error":
            groups.setdefault(e["model"], []).append(e)
    out = []
    for mname, es in sorted(groups.items()):
        ang = np.concatenate([_fits_of(e)[0] for e in es])
        out.append(DirectionSummary(mname, int(ang.size), len(es), max(int(e.get("repeats", 1)) for e in es),
                                    float(np.median(ang)), float(np.percentile(ang, 90)), float(ang.max()),
                                    es[0].get("snr")))
    return out


def verdict_sentences(summaries: list[BiasSummary], directions: list[DirectionSummary] | None = None,
                      tol: float = 0.10) -> str:
    """The answer in two or three sentences: which models hold within ``tol`` here, which do not, and why.

    A model holds when every parameter of it with a ground truth gets "yes" (:meth:`BiasSummary.judge`).

    Parameters
    ----------
    summaries : list of BiasSummary
        From :func:`summarise_bias`.
    directions : list of DirectionSummary, optional
        From :func:`summarise_directions`.
    tol : float
        Relative tolerance, e.g. 0.10.

    Returns
    -------
    str
        Markdown text.
    """
    by_model: dict = {}
    for s in summaries:
        by_model.setdefault(s.model, []).append(s)
    hold, fail, unsure = [], [], []
    for mname, ss in by_model.items():
        judged = [(s, *s.judge(tol)) for s in ss]
        bad = [f"{s.parameter}: {', '.join(r)}" for s, w, r in judged if w == "no"]
        weak = [f"{s.parameter}: {', '.join(r)}" for s, w, r in judged if w == "unreliable"]
        if bad:
            fail.append(f"{mname} ({'; '.join(bad + weak)})")
        elif weak:
            unsure.append(f"{mname} ({'; '.join(weak)})")
        else:
            hold.append(f"{mname} ({', '.join(s.parameter for s in ss)})")
    pct = f"{100 * tol:.0f} %"
    if not by_model:
        text = "No fitted parameter has a ground truth here: there is nothing to judge."
    else:
        text = (f"**Hold within {pct} of the ground truth here:** {', '.join(hold) or 'none'}. "
                f"**Do not:** {', '.join(fail) or 'none'}.")
        if unsure:
            text += f" **Unreliable** (half of the fits or more on a bound): {', '.join(unsure)}."
    if directions:
        text += (" Fibre direction, median angular error: "
                 + ", ".join(f"{d.model} {d.median:.1f}°" for d in directions) + ".")
    return text


def verdict_table(summaries: list[BiasSummary], landscapes: dict | None = None) -> list[str]:
    """Markdown lines of the verdict table: one row per (model, parameter) with a ground truth.

    Parameters
    ----------
    summaries : list of BiasSummary
        From :func:`summarise_bias`.
    landscapes : dict, optional
        (model, parameter) -> NRV landscape, for the NRV_min column.

    Returns
    -------
    list of str
        Header, separator and rows.
    """
    landscapes = landscapes or {}
    out = [("| model | parameter | truth (row 0) | median relative bias | spread (IQR/2) | within 10 % of truth "
            "| at a bound | fits | MC error | within 5 % | within 10 % | NRV_min |"),
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        # SI in the table's numbers, but diffusivities and radii read best in um^2/ms and um
        scale, unit = {"m^2/s": (1e9, " um^2/ms"), "m": (1e6, " um"), "1": (1.0, "")}.get(s.unit, (1.0, f" {s.unit}"))
        land = landscapes.get((s.model, s.parameter))
        med = "-" if not np.isfinite(s.median) else f"{100 * s.median:+.1f} %"
        spread = "-" if not np.isfinite(s.spread) else f"{100 * s.spread:.1f} %"
        out.append(f"| {s.model} | {s.parameter} | {s.truth * scale:.4g}{unit} | {med} | {spread} | "
                   f"{s.within10} of {s.n_fits} | {s.n_bound} of {s.n_fits} | {s.fits_text} | "
                   f"{100 * s.mc_error:.1f} % | {s.verdict(0.05)} | {s.verdict(0.10)} | "
                   f"{'-' if land is None else f'{land.minimum:.3g}'} |")
    return out


def direction_table(directions: list[DirectionSummary]) -> list[str]:
    """Markdown lines of the fibre-direction table (angular error in degrees), or none without directions.

    Parameters
    ----------
    directions : list of DirectionSummary
        From :func:`summarise_directions`.

    Returns
    -------
    list of str
    """
    if not directions:
        return []
    out = ["| model | median angular error | 90th percentile | largest | fits |", "|---|---|---|---|---|"]
    for d in directions:
        out.append(f"| {d.model} | {d.median:.2f}° | {d.p90:.2f}° | {d.largest:.2f}° | "
                   f"{fits_text(d.n_fits, d.n_rows, d.realisations, d.snr)} |")
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
                progress: bool = False, likelihood: str = "gaussian", method: str = "auto",
                description: str | None = None, fixed: dict | None = None) -> Path:
    """Fit every applicable model, tabulate bias, draw NRV landscapes and regime maps, write Markdown.

    The report opens with the verdict: which models hold within 10 % of the ground truth and which do not,
    by the rules of :data:`VERDICT_RULES` (median bias, spread and fits on a bound all count; see
    :meth:`BiasSummary.judge`), then the data it rests on.

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
    fixed : dict, optional
        Model name -> {parameter name: value (SI)} held fixed in that model's bias fits (see
        :func:`validation.bias_table`).
    description : str, optional
        Where the signals come from (a database, when it was made), appended to the report's data line.

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
                       likelihood=likelihood, n_jobs=n_jobs, progress=progress, method=method,
                       fixed=fixed)
    for e in table:  # database row numbers, not positions among the finished rows
        e["row"] = int(row_ids[e["row"]])
    out.mkdir(parents=True, exist_ok=True)  # after bias_table has checked the arguments: a refusal leaves no folder
    write_report(table, out, title=title)  # full table and the bias figure (bias.png, report.md replaced below)
    full_table = (out / "report.md").read_text().split("\n", 4)[-1]
    landscapes, nrv_lines = _nrv_section(nrv, scheme, signals, stderr, gts, snr, nrv_repeats, seed, n_jobs, out)

    summaries, directions = summarise_bias(table), summarise_directions(table)
    noise = ("none (one noise-free fit per signal)" if not snr else
             f"{'Rician' if likelihood == 'rician' else 'Gaussian'}, SNR {snr:g} at b = 0, {repeats} realisations "
             "per signal")
    lines = [f"# {title}", "", "## Verdict", "", verdict_sentences(summaries, directions, tol=0.10), "",
             f"Data: {len(signals)} simulated signal(s), {len(scheme)} measurements; added noise: {noise}; Monte "
             f"Carlo standard error (mean over measurements) {np.mean(stderr):.2g}, reported beside, not added."
             + (f" {description}" if description else ""), "",
             ("Per model and parameter with a ground truth: the median relative bias of the fits off a bound, "
              "their spread, the share of all fits within 10 % of the truth, the fits that ended on a parameter "
              "bound, how many fits each summary rests on, the error of the mean bias from the Monte Carlo noise "
              "alone, the verdicts at 5 % and 10 %, and NRV_min where its landscape was computed (about 1 for a "
              "model that fits within noise)."), "", f"Rules: {VERDICT_RULES}", ""]
    lines += verdict_table(summaries, landscapes)
    if directions:
        lines += ["", "Fibre direction: the angle between fitted and true axis over every fit.", ""]
        lines += direction_table(directions)
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
