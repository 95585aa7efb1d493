"""walker: the Monte Carlo engine: numba random walks through substrates under diffusion-encoding schemes.

``simulate(substrate, scheme, n_walkers=..., diffusivity=..., n_steps=..., seed=..., start=...)``
returns a :class:`SimulationResult` (signal, stderr, per-compartment signals,
ground truth, provenance, escape counter). The run's stages are public too:
:func:`plan_run`, :func:`start_walkers`, :func:`run_kernel`,
:func:`phase_signals`. Each family of substrates brings its kernel
(:mod:`walker.families`): :mod:`walker.cells_kernel` (analytic substrates),
:mod:`walker.mesh_kernel` (meshes), :mod:`walker.union_kernel` (sphere
unions), all compiled through one scaffold (:mod:`walker.scaffold`).
"""

# importing a family's kernel module registers the family (walker.families)
from . import cells_kernel, mesh_kernel, union_kernel  # noqa: F401
from .dispatch import phase_weights, run_kernel, transit_tables
from .families import KernelFamily, family_of, register_kernel_family
from .membranes import (MAX_TRANSIT_PROBABILITY, first_order_probability, substeps_for, survival_probability,
                        transit_probability)
from .plan import RunPlan, plan_run
from .provenance import package_version
from .result import SimulationResult
from .signals import phase_signals
from .simulate import simulate, start_walkers

__all__ = ["simulate", "SimulationResult", "KernelFamily", "family_of", "register_kernel_family", "phase_weights", "plan_run", "RunPlan", "start_walkers", "run_kernel",
           "transit_tables", "phase_signals", "transit_probability", "survival_probability", "first_order_probability", "substeps_for",
           "MAX_TRANSIT_PROBABILITY", "package_version"]
