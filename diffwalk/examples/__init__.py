"""Built-in examples, runnable with ``diffwalk example NAME`` (each has ``run(outdir)``)."""

import inspect
from importlib import import_module
from pathlib import Path

#: name -> (module, one-line description)
EXAMPLES = {
    "waveforms": ("diffwalk.examples.waveforms",
                  "PGSE + OGSE + STE protocol: waveforms, q(t), spectra and b-tensors in one figure"),
    "restricted": ("diffwalk.examples.restricted",
                   "signal vs b for free, cylinder and sphere: Monte Carlo against the exact curves"),
    "exchange": ("diffwalk.examples.exchange",
                 "permeable spheres: signal vs diffusion time for several kappa, against the Karger prediction"),
    "meshes": ("diffwalk.examples.meshes",
               "generated substrates (packed, undulating, beaded axons; somas): rendered, walked, signals compared"),
    "main": ("diffwalk.examples.main_job",
             "packed axons under PGSE + STE -> resumable HDF5 ground-truth database -> report"),
    "learned": ("diffwalk.examples.learned_estimator",
                "a learned estimator trained on a database's rows, judged on held-out rows beside the analytic fit"),
    "validation": ("diffwalk.examples.validation_report",
                   "packed axons -> signals -> every applicable model fitted -> bias, NRV, regime-map report"),
}


#: examples that "all" leaves out because they take minutes (run them by name)
LONG = {"validation", "exchange", "meshes", "learned"}


def run_example(name: str, outdir: str | Path, rerun: bool = False) -> list[Path]:
    """Run a built-in example or a gallery lesson, writing under ``outdir``.

    Parameters
    ----------
    name : str
        An example of :data:`EXAMPLES`, a lesson of the teaching gallery, or "all" (every example but the
        long ones of :data:`LONG`).
    outdir : str or Path
        Output folder.
    rerun : bool
        Simulate again instead of reusing the database an earlier run left: passed to the examples that keep
        one (those whose ``run`` takes ``rerun``, e.g. ``main``); the others simulate every time anyway.

    Returns
    -------
    list of Path
        The written files.

    Raises
    ------
    KeyError
        For an unknown name, listing the examples and lessons.
    """
    from ..lessons import lesson_paths, run_lesson
    if name == "all":
        return [p for key in EXAMPLES if key not in LONG for p in run_example(key, outdir, rerun=rerun)]
    if name in EXAMPLES:
        run = import_module(EXAMPLES[name][0]).run
        # only an example with a database has anything to discard
        return run(outdir, rerun=rerun) if "rerun" in inspect.signature(run).parameters else run(outdir)
    if name in lesson_paths():
        return run_lesson(name, outdir)
    raise KeyError(f"unknown example {name!r}; examples: {', '.join(EXAMPLES)}; "
                   f"lessons: {', '.join(lesson_paths())}")
