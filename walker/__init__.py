"""walker: the Monte Carlo engine: numba random walks through substrates under diffusion-encoding schemes.

``simulate(substrate, scheme, n_walkers=..., diffusivity=..., n_steps=..., seed=..., start=...)``
returns a :class:`SimulationResult` (signal, stderr, per-compartment signals,
ground truth, provenance, escape counter). The run's stages are public too:
:func:`plan_run`, :func:`start_walkers`, :func:`run_kernel`,
:func:`phase_signals`; the kernels live in :mod:`walker.cells_kernel` (analytic
substrates) and :mod:`walker.mesh_kernel` (meshes).
"""

from .dispatch import phase_weights, run_kernel, transit_tables
from .membranes import (MAX_TRANSIT_PROBABILITY, first_order_probability, substeps_for, survival_probability,
                        transit_probability)
from .plan import RunPlan, plan_run
from .provenance import package_version
from .result import SimulationResult
from .signals import phase_signals
from .simulate import simulate, start_walkers

__all__ = ["simulate", "SimulationResult", "phase_weights", "plan_run", "RunPlan", "start_walkers", "run_kernel",
           "transit_tables", "phase_signals", "transit_probability", "survival_probability", "first_order_probability", "substeps_for",
           "MAX_TRANSIT_PROBABILITY", "package_version"]
