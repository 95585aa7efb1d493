"""The teaching gallery: lessons that compare a simulation with its theory and check the agreement.

Each lesson is a sphinx-gallery script in ``diffwalk/gallery/`` (``plot_NN_name.py``). It runs
standalone (``python plot_01_free_diffusion.py``), as ``diffwalk example NAME`` (its figures are saved
as ``NAME.png``, ``NAME_2.png``...), and in the documentation gallery. In *quick mode* (the
environment variable ``DIFFWALK_QUICK=1``) it uses fewer walkers and steps; in either mode it asserts
that the Monte Carlo agrees with the theory on its plot, through :func:`check_agreement`, so that a
lesson whose physics breaks fails the test suite (``tests/test_gallery.py`` runs every lesson in quick
mode).
"""

from __future__ import annotations

import os
import re
import runpy
from pathlib import Path

import numpy as np

#: the folder that holds the lessons
GALLERY = Path(__file__).parent / "gallery"

#: the environment variable that switches the lessons to quick mode
QUICK_ENV = "DIFFWALK_QUICK"

#: Monte Carlo standard errors allowed between a simulation and its reference (DEVELOPERS.md)
K_SE = 4.5


def quick_mode() -> bool:
    """True when ``DIFFWALK_QUICK`` is set to anything but ``""``, ``"0"`` or ``"false"``.

    Examples
    --------
    >>> n_walkers = 2_000 if quick_mode() else 50_000
    """
    return os.environ.get(QUICK_ENV, "").strip().lower() not in ("", "0", "false", "no")


def check_agreement(what: str, measured, stderr, reference, *, allowance=0.0, reference_error=0.0,
                    k: float = K_SE, unit: str = "") -> float:
    """Assert ``|measured - reference| <= k * stderr + reference_error + allowance`` everywhere.

    Parameters
    ----------
    what : str
        What is compared, for the message (e.g. ``"cylinder signal vs matrix formalism"``).
    measured, stderr : array_like
        Monte Carlo estimates and their standard errors (same unit as ``reference``).
    reference : array_like
        The theory (exact or asymptotic, in the regime where it holds).
    allowance : float or array_like, optional
        The discretisation allowance (finite step, time grid, mesh), same unit; say where it comes from.
    reference_error : float or array_like, optional
        The error of the reference itself (truncated series, quadrature), same unit.
    k : float, optional
        Standard errors allowed (default 4.5).
    unit : str, optional
        Unit of the compared numbers (SI, e.g. ``"m^2"``), printed after each of them; leave empty for
        normalised quantities (S / S0, D / D0).

    Returns
    -------
    float
        The largest deviation in units of the allowed tolerance (<= 1 when it agrees).

    Raises
    ------
    AssertionError
        Naming ``what`` and the worst point, when any point lies outside the tolerance.

    Examples
    --------
    >>> round(check_agreement("toy", [1.0, 0.5], [0.01, 0.01], [1.0, 0.51]), 4)
    toy: agrees (worst point at 0.22 of the tolerance; max |difference| = 0.01)
    0.2222
    >>> round(check_agreement("MSD", [6.1e-11], [1e-12], [6e-11], unit="m^2"), 4)
    MSD: agrees (worst point at 0.22 of the tolerance; max |difference| = 1e-12 m^2)
    0.2222
    """
    measured, stderr, reference = np.broadcast_arrays(*(np.asarray(a, dtype=float)
                                                        for a in (measured, stderr, reference)))
    tol = k * stderr + np.asarray(reference_error, float) + np.asarray(allowance, float)
    diff = np.abs(measured - reference)
    ratio = diff / np.maximum(tol, 1e-300)
    bad = ~(diff <= tol)
    u = f" {unit}" if unit else ""  # a bare number of an SI quantity reads as if it were normalised
    worst = int(np.nanargmax(np.where(np.isfinite(ratio), ratio, np.inf))) if ratio.size else 0
    if bad.any():
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {diff.size} points disagree; worst at index {worst}: "
            f"measured {measured.flat[worst]:.6g}{u} +- {stderr.flat[worst]:.3g}{u} (SE), reference "
            f"{reference.flat[worst]:.6g}{u}, |difference| {diff.flat[worst]:.3g}{u} > tolerance "
            f"{np.broadcast_to(tol, diff.shape).flat[worst]:.3g}{u} ({k} SE + reference error + allowance)")
    ratio_max = float(ratio.flat[worst]) if ratio.size else 0.0
    print(f"{what}: agrees (worst point at {ratio_max:.2f} of the tolerance; "
          f"max |difference| = {diff.max():.3g}{u})")
    return ratio_max


def lesson_paths() -> dict[str, Path]:
    """Lesson name -> script path, in gallery order (``plot_03_qspace.py`` is ``"qspace"``)."""
    out = {}
    for path in sorted(GALLERY.glob("plot_*.py")):
        out[re.sub(r"^plot_\d+_", "", path.stem)] = path
    return out


def lesson_summary(path: Path) -> str:
    """The title of a lesson: the first line of its docstring after the underline."""
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").split('"""', 2)[1].splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[0] if lines else path.stem


def run_lesson(name: str, outdir: str | Path = "figures", *, quick: bool | None = None) -> list[Path]:
    """Run the lesson ``name`` and save its figures under ``outdir``.

    Parameters
    ----------
    name : str
        A lesson name (``diffwalk example --list`` lists them), e.g. ``"free_diffusion"``.
    outdir : str or Path
        Folder for ``NAME.png`` (and ``NAME_2.png``... for further figures).
    quick : bool, optional
        Force quick mode on or off; by default the ``DIFFWALK_QUICK`` environment variable decides.

    Returns
    -------
    list of Path
        The figures written.

    Examples
    --------
    >>> run_lesson("free_diffusion", "figures", quick=True)  # doctest: +SKIP
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = lesson_paths()
    if name not in paths:
        raise KeyError(f"unknown lesson {name!r}; available: {', '.join(paths)}")
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get(QUICK_ENV)
    if quick is not None:
        os.environ[QUICK_ENV] = "1" if quick else "0"
    plt.close("all")
    try:
        runpy.run_path(str(paths[name]), run_name="__main__")
        written = []
        for i, num in enumerate(plt.get_fignums()):
            path = out / (f"{name}.png" if i == 0 else f"{name}_{i + 1}.png")
            plt.figure(num).savefig(path, dpi=110)
            written.append(path)
            print(f"wrote {path}")
        return written
    finally:
        plt.close("all")
        if quick is not None:
            if previous is None:
                os.environ.pop(QUICK_ENV, None)
            else:
                os.environ[QUICK_ENV] = previous
