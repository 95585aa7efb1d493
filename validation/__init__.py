"""validation: exact reference signals, analytic models, fitting and bias against ground truth.

Exact references
----------------
free_signal, gpd_signal, gpd_pgse, mf_signal, callaghan_signal, restricted_msd,
mitra_dt, perrins_tortuosity
Models and fitting
------------------
list_models, get_model (the registry), Model, Parameter, SchemeArrays, REQUIREMENTS (the building blocks,
:mod:`validation.base`), fit (methods: log-linear OLS/WLS/IWLS, batched Levenberg-Marquardt, per-signal least
squares, Rician ML, dictionary; fixed and linked parameters), available_methods, dictionary_resolution, dictionary_floor, bias_table, write_report, nrv_landscape,
regime_map, make_report (from results or a SignalSet)

This package imports neither the simulator (:mod:`walker`) nor the
application (:mod:`diffwalk`): it works on any signals with a ground truth.
"""

from .base import REQUIREMENTS, Model, Parameter, SchemeArrays
from .bias import bias_table, write_report
from .exact import (annulus_modes, annulus_msd, callaghan_signal, free_signal, gpd_pgse, gpd_signal, mf_signal, mitra_dt, perrins_tortuosity,
                    restricted_msd, robin_modes, spherical_jn_prime_zeros, surface_relaxation_signal)
from .dictionary import dictionary_floor, dictionary_resolution
from .fit import METHODS, FitResult, available_methods, fit
from .models_white_matter import rotational_invariants
from .nrv import NRVLandscape, nrv_landscape
from .regimes import RegimeMap, regime_map
from .registry import MODELS, get_model, list_models
from .report import SignalSet, make_report

__all__ = ["list_models", "get_model", "MODELS", "Model", "Parameter", "SchemeArrays", "REQUIREMENTS", "fit",
           "FitResult", "METHODS", "available_methods", "dictionary_resolution", "dictionary_floor", "bias_table", "write_report", "nrv_landscape", "NRVLandscape", "regime_map", "RegimeMap",
           "make_report", "SignalSet", "rotational_invariants", "free_signal", "gpd_signal", "gpd_pgse", "mf_signal",
           "callaghan_signal", "restricted_msd", "mitra_dt", "perrins_tortuosity", "spherical_jn_prime_zeros",
           "surface_relaxation_signal", "robin_modes", "annulus_msd", "annulus_modes"]
