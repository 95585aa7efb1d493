"""What produced a result: versions, seed, sizes, steps, threads and timing (the provenance of every row)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def package_version() -> str:
    """The installed diffwalk version ("unknown" when running from a source tree without metadata)."""
    try:
        from importlib.metadata import version
        return version("diffwalk")
    except Exception:  # noqa: BLE001 - any metadata failure means the same: not installed
        return "unknown"


def provenance(*, substrate, plan, seed: int, start: str, parallel: bool, wall_time: float,
               transit_max: float | None, backend: str = "cpu", absorption_max: float | None = None) -> dict:
    """The provenance dict of one run (JSON-friendly).

    Parameters
    ----------
    substrate : substrates.Substrate
    plan : walker.plan.RunPlan
    seed : int
        Root seed.
    start : str
        Where the walkers started.
    parallel : bool
        Whether the multi-threaded kernel ran.
    wall_time : float
        Seconds in the kernel.
    transit_max : float or None
        Largest transit probability per hit (permeable substrates).
    absorption_max : float or None
        Largest surface-absorption probability per hit (relaxing walls).
    backend : {"cpu", "cuda"}
        Where the walk ran; "cuda" adds the device's name.

    Returns
    -------
    dict
    """
    import numba

    from .rng import STREAM_VERSION
    N, T = plan.n_walkers, plan.n_steps
    prov = {
        "diffwalk_version": package_version(), "numba_version": numba.__version__, "numpy_version": np.__version__,
        "seed": int(seed), "n_walkers": N, "n_steps": T, "dt": plan.dt, "step_length": plan.step_length,
        "gaussian_steps": plan.gaussian, "gamma": plan.played.gamma, "diffusivity": plan.reference_diffusivity,
        "start": start, "substrate": substrate.description, "backend": backend,
        "threads": numba.get_num_threads() if parallel and backend == "cpu" else 1,
        "wall_time_s": wall_time, "walker_steps_per_s": N * T / wall_time if wall_time > 0 else math.inf,
        "n_shapes": plan.played.shapes.n_shapes, "aligned_edges": plan.aligned, "substeps": plan.substeps,
        "random_streams": STREAM_VERSION,
    }
    if plan.field is not None:  # only runs with a field say so: earlier provenance stays as it was
        prov["field"] = {"description": plan.field.description, "b0_T": plan.field.b0,
                         "b0_direction_local": plan.field.b0_direction.tolist(),
                         "gradient_echoes": int(np.sum(plan.played.gradient_echo))}
    if backend == "cuda":
        import os

        from .cuda_backend import device_name
        prov["device"] = device_name()
        if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
            prov["cuda_visible_devices"] = os.environ["CUDA_VISIBLE_DEVICES"]
    if substrate.permeable:
        prov["transit"] = plan.transit
        prov["transit_probability_max"] = transit_max
    if substrate.relaxing:
        prov["transit"] = plan.transit
        prov["absorption_probability_max"] = absorption_max
    return prov
