"""validation: exact reference signals, analytic models, fitting and bias against ground truth.

Exact references
----------------
free_signal, gpd_signal, gpd_pgse, mf_signal, callaghan_signal, restricted_msd,
mitra_dt, perrins_tortuosity, static_dephasing (Yablonskiy & Haacke), gaussian_phase_attenuation (motional
narrowing in a periodic field)
Models and fitting
------------------
list_models, get_model (the registry), Model, Parameter, SchemeArrays, REQUIREMENTS (the building blocks,
:mod:`validation.base`), fit (methods: log-linear OLS/WLS/IWLS, batched Levenberg-Marquardt, per-signal least
squares, Rician ML, dictionary; fixed and linked parameters), available_methods, dictionary_resolution, dictionary_floor, bias_table, applicable_scheme (the part of a scheme a model fits), write_report, nrv_landscape,
regime_map, make_report (from results or a SignalSet)
Verdicts
--------
summarise_bias, summarise_directions (robust summaries of a bias table: median bias, IQR/2 spread, fits on
a bound; BiasSummary, DirectionSummary), verdict_sentences, verdict_table, direction_table (the report's
verdict as Markdown), VERDICT_RULES (the rules in words)

This package imports neither the simulator (:mod:`walker`) nor the
application (:mod:`diffwalk`): it works on any signals with a ground truth.
"""

from .base import REQUIREMENTS, Model, Parameter, SchemeArrays
from .bias import applicable_scheme, bias_table, write_report
from .exact import (annulus_modes, annulus_msd, callaghan_signal, free_signal, gpd_pgse, gpd_signal, mitra_dt, perrins_tortuosity,
                    restricted_msd, robin_modes, spherical_jn_prime_zeros, surface_relaxation_signal)
from .dephasing import gaussian_phase_attenuation, static_dephasing
from .dictionary import dictionary_floor, dictionary_resolution
from .matrix_formalism import large_pore_signal, mf_signal
from .fit import METHODS, FitResult, available_methods, fit
from .models_white_matter import rotational_invariants
from .nrv import NRVLandscape, nrv_landscape
from .regimes import RegimeMap, regime_map
from .registry import MODELS, get_model, list_models
from .report import (VERDICT_RULES, BiasSummary, DirectionSummary, SignalSet, direction_table, make_report,
                     summarise_bias, summarise_directions, verdict_sentences, verdict_table)

__all__ = ["static_dephasing", "gaussian_phase_attenuation", "list_models", "get_model", "MODELS", "Model", "Parameter", "SchemeArrays", "REQUIREMENTS", "fit",
           "FitResult", "METHODS", "available_methods", "dictionary_resolution", "dictionary_floor", "bias_table", "applicable_scheme", "write_report", "nrv_landscape", "NRVLandscape", "regime_map", "RegimeMap",
           "make_report", "SignalSet", "summarise_bias", "summarise_directions", "BiasSummary", "DirectionSummary",
           "verdict_sentences", "verdict_table", "direction_table", "VERDICT_RULES", "rotational_invariants", "free_signal", "gpd_signal", "gpd_pgse", "mf_signal", "large_pore_signal",
           "callaghan_signal", "restricted_msd", "mitra_dt", "perrins_tortuosity", "spherical_jn_prime_zeros",
           "surface_relaxation_signal", "robin_modes", "annulus_msd", "annulus_modes"]
