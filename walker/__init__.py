"""walker: numba random walks through substrates under diffusion-encoding schemes.

``simulate(substrate, scheme, n_walkers=..., diffusivity=..., n_steps=..., seed=..., start=...)``
returns a :class:`SimulationResult` (signal, stderr, per-compartment signals,
ground truth, provenance, escape counter).
"""

from .result import SimulationResult
from .simulate import phase_weights, simulate

__all__ = ["simulate", "SimulationResult", "phase_weights"]
