"""validation: exact reference signals, analytic models, fitting and bias against ground truth.

Exact references
----------------
free_signal, gpd_signal, gpd_pgse, mf_signal, callaghan_signal, restricted_msd,
mitra_dt, perrins_tortuosity
Models and fitting
------------------
list_models, get_model, fit (fixed and linked parameters), bias_table, write_report, nrv_landscape,
regime_map, make_report
"""

from .bias import bias_table, write_report
from .exact import (callaghan_signal, free_signal, gpd_pgse, gpd_signal, mf_signal, mitra_dt, perrins_tortuosity,
                    restricted_msd, spherical_jn_prime_zeros)

from .fit import FitResult, fit
from .models import MODELS, Model, Parameter, get_model, list_models
from .nrv import NRVLandscape, nrv_landscape
from .models_white_matter import rotational_invariants
from .regimes import RegimeMap, regime_map
from .report import SignalSet, make_report

__all__ = ["rotational_invariants", "regime_map", "RegimeMap", "make_report", "SignalSet", "nrv_landscape", "NRVLandscape", "list_models", "get_model", "Model", "Parameter", "MODELS", "fit", "FitResult", "bias_table", "write_report",
           "free_signal", "gpd_signal", "gpd_pgse", "mf_signal", "callaghan_signal", "restricted_msd",
           "mitra_dt", "perrins_tortuosity", "spherical_jn_prime_zeros"]
