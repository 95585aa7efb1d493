"""Built-in examples, runnable with ``diffwalk example NAME`` (each has ``run(outdir)``)."""

from importlib import import_module

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
    "validation": ("diffwalk.examples.validation_report",
                   "packed axons -> signals -> every applicable model fitted -> bias, NRV, regime-map report"),
}


#: examples that "all" leaves out because they take minutes (run them by name)
LONG = {"validation", "exchange", "meshes"}


def run_example(name: str, outdir: str):
    """Run the example or gallery lesson ``name`` ("all" runs every quick example), writing under
    ``outdir``; returns the written paths."""
    from ..lessons import lesson_paths, run_lesson
    if name == "all":
        return [p for key in EXAMPLES if key not in LONG for p in run_example(key, outdir)]
    if name in EXAMPLES:
        return import_module(EXAMPLES[name][0]).run(outdir)
    if name in lesson_paths():
        return run_lesson(name, outdir)
    raise KeyError(f"unknown example {name!r}; examples: {', '.join(EXAMPLES)}; "
                   f"lessons: {', '.join(lesson_paths())}")
