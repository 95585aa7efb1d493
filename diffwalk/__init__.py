"""diffwalk: the application above the engine.

The ``diffwalk`` command line (:mod:`diffwalk.cli`), TOML configurations with
units (:mod:`diffwalk.config`), HDF5 ground-truth databases
(:mod:`diffwalk.database`), resumable sweeps serially or on Dask
(:mod:`diffwalk.sweep`), the glue from databases to validation reports
(:mod:`diffwalk.validate`), training sets for learned estimators
(:mod:`diffwalk.training`), the validity atlas (:mod:`diffwalk.atlas`) and the built-in examples
(:mod:`diffwalk.examples`).

The engine and the science live below it: :mod:`sequences` (schemes),
:mod:`substrates` (geometry), :mod:`walker` (the Monte Carlo engine) and
:mod:`validation` (models, fits, bias); ``diffwalk`` is the only package that
imports all four.

Examples
--------
>>> import diffwalk
>>> db = diffwalk.open_database("figures/main_job.h5")            # doctest: +SKIP
>>> db.signal[db.select(**{"substrate.icvf": 0.6})]               # doctest: +SKIP
"""

from .atlas import AtlasResult, Recipe, Standing, estimate_cost, leaderboard, list_recipes, load_recipe, run_atlas
from .config import Job, load, parse_job
from .quantities import ConfigError
from .database import Database, DatabaseError, PartsFolder, open_database
from .sweep import resume, run_sweep
from .training import TrainingSet, add_noise, training_set, write_training_set
from .validate import bias_of_database, database_signals, report_database

__all__ = ["open_database", "Database", "DatabaseError", "PartsFolder", "run_sweep", "resume", "load",
           "parse_job", "Job", "ConfigError", "bias_of_database", "database_signals", "report_database",
           "training_set", "TrainingSet", "add_noise", "write_training_set", "run_atlas", "load_recipe",
           "list_recipes", "leaderboard", "estimate_cost", "Recipe", "AtlasResult", "Standing"]
