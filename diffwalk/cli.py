"""The ``diffwalk`` command line.

``diffwalk --help`` lists the subcommands; ``diffwalk example`` runs the
default built-in example.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _cmd_example(args: argparse.Namespace) -> int:
    from .examples import EXAMPLES, LONG, run_example
    from .lessons import QUICK_ENV, lesson_paths, lesson_summary
    if args.list:
        for name, (_, desc) in EXAMPLES.items():
            print(f"{name:12s} {'(long: by name only) ' if name in LONG else ''}{desc}")
        print(f"\n`diffwalk example` runs {', '.join(n for n in EXAMPLES if n not in LONG)}; it leaves out "
              f"{', '.join(sorted(LONG))} (run them by name)")
        print(f"\nLessons of the teaching gallery (each checks its simulation against theory; "
              f"{QUICK_ENV}=1 for a quick run):")
        for name, path in lesson_paths().items():
            print(f"  {name:24s} {lesson_summary(path)}")
        return 0
    try:
        # the main job keeps its database between runs and reuses it (saying so); --rerun simulates again
        run_example(args.name, args.output, rerun=args.rerun)
    except KeyError as exc:
        print(f"diffwalk example: {exc.args[0]}", file=sys.stderr)
        return 2
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .sweep import run_sweep
    db = run_sweep(Path(args.config).read_text(), args.output, is_sweep=False, base_dir=Path(args.config).parent)
    return _cmd_info(argparse.Namespace(database=db))


def _scheduler(args: argparse.Namespace):
    if getattr(args, "jobqueue", None):
        from .sweep import jobqueue_scheduler
        cluster, address = jobqueue_scheduler(args.jobqueue, args.jobs)
        return cluster, address
    return None, args.scheduler


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import run_sweep
    cluster, address = _scheduler(args)
    try:
        db = run_sweep(Path(args.spec).read_text(), args.output, local=args.local, scheduler=address,
                       gpus=args.gpus, base_dir=Path(args.spec).parent)
    finally:
        if cluster is not None:
            cluster.close()
    return _cmd_info(argparse.Namespace(database=db))


def _cmd_resume(args: argparse.Namespace) -> int:
    from .sweep import resume
    cluster, address = _scheduler(args)
    try:
        db = resume(args.database, local=args.local, scheduler=address, gpus=args.gpus)
    finally:
        if cluster is not None:
            cluster.close()
    return _cmd_info(argparse.Namespace(database=db))


def _cmd_info(args: argparse.Namespace) -> int:
    from .database import open_database
    print(open_database(args.database).summary())
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    import sequences

    from .database import atomic_output, export_nifti, export_npz, open_database
    db = open_database(args.database)
    stem = Path(args.output)
    if args.format == "npz":
        paths = [export_npz(db, stem.with_suffix(".npz"))]
    elif args.format == "nifti":
        paths = export_nifti(db, stem)
    elif args.format in ("training", "zarr"):
        from .training import training_set, write_training_set
        labels = args.labels.split(",") if args.labels else None
        paths = [write_training_set(training_set(db, labels=labels),
                                    stem.with_suffix(".npz" if args.format == "training" else ".zarr"))]
    else:
        out = stem.with_suffix(".scheme")
        with atomic_output(out) as tmp:
            sequences.write_camino(db.scheme, tmp)
        paths = [out]
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _fixed_parameters(specs: list[str], models: list[str] | None, scheme, method: str) -> dict[str, dict[str, float]]:
    """``--fix MODEL.PARAM=VALUE`` arguments as {model: {parameter: value (SI)}}, each checked.

    Parameters
    ----------
    specs : list of str
        The ``--fix`` arguments, e.g. ``["noddi_watson.d_par=1.7e-9"]``.
    models : list of str or None
        The ``--models`` list (None: every applicable model).
    scheme : sequences.Scheme
        The database's scheme: which models apply to it.
    method : str
        The ``--method``; ``"dictionary"`` needs the values its dictionaries are built for.

    Returns
    -------
    dict
        Model name -> parameter name -> value.

    Raises
    ------
    ValueError
        On bad syntax, an unknown model or parameter, a value that is not a finite number inside the
        parameter's bounds, a model left out by ``--models``, or a dictionary fit missing a value it needs;
        the message is one line naming the argument.
    """
    import math

    import validation
    from validation.bias import applicable_scheme

    fixed: dict[str, dict[str, float]] = {}
    for spec in specs:
        target, eq, text = spec.partition("=")
        name, dot, param = target.strip().partition(".")
        if not eq or not dot or not name or not param or not text.strip():
            raise ValueError(f"--fix {spec}: expected MODEL.PARAM=VALUE in SI units, e.g. noddi_watson.d_par=1.7e-9")
        model = validation.get_model(name)  # KeyError naming the known models
        if param not in model.names:
            raise ValueError(f"--fix {spec}: {name} has no parameter {param!r}; it has {model.names}")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        par = model.parameters[model.names.index(param)]
        lo, hi = par.bounds
        if not math.isfinite(value) or not lo <= value <= hi:
            # a value in the wrong unit (1.7 for 1.7 um^2/ms) lands outside the bounds: say the SI unit
            raise ValueError(f"--fix {spec}: {param} must be a number in {par.unit} (SI) within [{lo:g}, {hi:g}]")
        if models is not None and name not in models:
            raise ValueError(f"--fix {spec}: {name} is not among --models {','.join(models)}")
        fixed.setdefault(name, {})[param] = value
    if method == "dictionary":
        # a NODDI or ActiveAx dictionary is built for one d_par: say which --fix it needs before any fit runs
        for name in models or validation.list_models():
            model = validation.get_model(name)
            if model.dictionary is None or applicable_scheme(model, scheme)[0] is None:
                continue
            missing = [k for k in model.dictionary.required if k not in fixed.get(name, {})]
            if missing:
                raise ValueError(f"--method dictionary: the {name} dictionary is built for one value of {missing[0]}; "
                                 f"add --fix {name}.{missing[0]}=1.7e-9 (SI; the in-vivo value AMICO uses)"
                                 + ("" if models else f" or leave {name} out with --models"))
    return fixed


def _cmd_validate(args: argparse.Namespace) -> int:
    import validation

    from .database import open_database
    from .validate import report_database
    db = open_database(args.database)
    models = args.models.split(",") if args.models else None
    for m in models or []:
        validation.get_model(m)
    nrv = []
    for spec in args.nrv or []:
        name, dot, param = spec.partition(".")
        if not dot or not name or not param:
            raise ValueError(f"--nrv {spec}: expected MODEL.PARAM, e.g. stick_zeppelin.f")
        if param not in validation.get_model(name).names:
            raise ValueError(f"--nrv {spec}: {name} has no parameter {param!r}; it has "
                             f"{validation.get_model(name).names}")
        nrv.append((name, param))
    fixed = _fixed_parameters(args.fix or [], models, db.scheme, args.method)
    md = report_database(db, args.report, models=models, snr=args.snr or None, repeats=args.repeats,
                         likelihood=args.likelihood, nrv=nrv, seed=args.seed, n_jobs=args.jobs,
                         method=args.method, fixed=fixed or None,
                         title=f"validation of {Path(args.database).name}", progress=True)
    print(f"fitted models to {int(db.done.sum())} row(s); wrote {md} and its figures")
    return 0


def _cmd_atlas(args: argparse.Namespace) -> int:
    import json

    from . import atlas
    if args.list:
        for name in atlas.list_recipes():
            rec = atlas.load_recipe(name)
            rows = sum(rec.n_rows(s) for s in rec.substrates) * len(rec.protocols)
            print(f"{name:8s} {rec.version:5s} {rows:5d} rows  {rec.description}")
        return 0
    if not args.recipe:
        raise ValueError("give a recipe (a built-in name from `diffwalk atlas --list`, or a TOML file)")
    rec = atlas.load_recipe(args.recipe)
    if args.estimate_from:
        measured = Path(args.estimate_from) / "atlas.json"
        if not measured.exists():
            raise FileNotFoundError(f"--estimate-from {args.estimate_from}: no atlas.json there; run an atlas "
                                    "into that folder first (e.g. `diffwalk atlas small --out atlas_small`)")
        est = atlas.estimate_cost(rec, json.loads(measured.read_text())["timing"])
        print(f"atlas {rec.name} {rec.version}: {est['rows']} rows, {est['walker_steps']:.3g} walker-steps; on this "
              f"machine, one process: walks {est['walk_hours']:.2f} h + fits {est['fit_hours']:.2f} h = "
              f"{est['total_hours']:.2f} h (rates measured in {measured})")
        return 0
    if not args.out:
        raise ValueError("--out DIR is required to build an atlas (databases, fits, report.md and figures go there)")
    res = atlas.run_atlas(rec, args.out, local=args.local, scheduler=args.scheduler, n_jobs=args.jobs)
    for q, rows in res.board.items():
        print(f"  {q}: best {rows[0].model}.{rows[0].parameter} ({100 * rows[0].within:.0f} % of fits within "
              f"{100 * rec.tolerance:.0f} %)")
    return 0


def _cmd_show_substrate(args: argparse.Namespace) -> int:
    import substrates

    from . import config as cfgmod
    job = cfgmod.parse_job(cfgmod.load(args.config), Path(args.config).parent)
    substrates.plot_section(job.substrate, path=args.output)
    print(f"wrote {args.output}")
    return 0


#: ``diffwalk sweep --help``: what a sweep spec holds and what it runs
SWEEP_DESCRIPTION = """\
Run a parameter sweep: one simulation config plus a [sweep] table, expanded into rows
(every combination of the [sweep.grid] values, once per seed) and written to one HDF5
database, row by row. An interrupted sweep is finished by `diffwalk resume DATABASE`."""

#: the example printed under ``diffwalk sweep --help`` (examples/sweep_cylinders.toml, comments cut)
SWEEP_EXAMPLE = """\
example spec (examples/sweep_cylinders.toml): 2 radii x 2 ICVFs x 2 seeds = 8 rows

  [substrate]
  type = "cylinder_lattice"
  radius = "3 um"            # the grid replaces it
  icvf = 0.6
  lattice = "hexagonal"

  [[scheme]]
  type = "pgse"
  delta = "10 ms"
  Delta = "30 ms"
  bvalues = "0 1000 3000 s/mm^2"
  directions = 6

  [simulation]
  n_walkers = 2000
  n_steps = 10000
  diffusivity = "2 um^2/ms"
  seed = 0                   # sweep.seeds replaces it

  [sweep]
  seeds = [0, 1]             # or a count: seeds = 2 runs seeds 0 and 1

  [sweep.grid]               # "table.key" = [values]; units as in the config
  "substrate.radius" = ["2 um", "4 um"]
  "substrate.icvf" = [0.5, 0.6]"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    p = argparse.ArgumentParser(prog="diffwalk", description="Monte Carlo diffusion-MRI simulator and validation suite.")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    ex = sub.add_parser("example", help="list or run a built-in example")
    ex.add_argument("name", nargs="?", default="all",
                    help="example name, or 'all' (default: every example but the long ones, see --list)")
    ex.add_argument("-o", "--output", default="figures", help="output folder (default: ./figures)")
    ex.add_argument("--list", action="store_true", help="list the examples and exit")
    ex.add_argument("--rerun", action="store_true",
                    help="simulate again instead of reusing the database an earlier run left (main_job.h5)")
    ex.set_defaults(func=_cmd_example)
    sim = sub.add_parser("simulate", help="run one simulation from a TOML config into an HDF5 database")
    sim.add_argument("config", help="TOML config: [substrate], [[scheme]] and [simulation] (see the config "
                                    "reference, or `diffwalk sweep --help` for an example)")
    sim.add_argument("-o", "--output", required=True, help="output database (.h5)")
    sim.set_defaults(func=_cmd_simulate)
    for name, helptext in (("sweep", "run a parameter sweep from a TOML spec (resumable)"),
                           ("resume", "finish an interrupted sweep from its database")):
        if name == "sweep":
            sp = sub.add_parser(name, help=helptext, description=SWEEP_DESCRIPTION, epilog=SWEEP_EXAMPLE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
            sp.add_argument("spec", help="TOML spec: a simulation config ([substrate], [[scheme]], [simulation], "
                                         "as for `diffwalk simulate`) plus a [sweep] table: seeds = [0, 1] (or a "
                                         "count) and [sweep.grid] of \"table.key\" = [values, ...]; every "
                                         "combination of grid values runs once per seed, one database row each")
            sp.add_argument("-o", "--output", required=True, help="output database (.h5)")
        else:
            sp = sub.add_parser(name, help=helptext)
            sp.add_argument("database", help="the sweep's database (.h5); its unfinished rows are run")
        grp = sp.add_mutually_exclusive_group()
        grp.add_argument("--local", type=int, metavar="N", help="run on a Dask LocalCluster with N workers")
        grp.add_argument("--scheduler", metavar="ADDR", help="run on the Dask scheduler at ADDR")
        grp.add_argument("--jobqueue", choices=("slurm", "pbs"), help="start a dask-jobqueue cluster (needs [hpc])")
        grp.add_argument("--gpus", type=int, metavar="N",
                         help="run every row on N local GPUs, one Dask worker each (needs [gpu] and [distributed])")
        sp.add_argument("--jobs", type=int, default=4, help="batch jobs for --jobqueue (default 4)")
        sp.set_defaults(func=_cmd_sweep if name == "sweep" else _cmd_resume)
    info = sub.add_parser("info", help="summarise a database")
    info.add_argument("database", help="database (.h5) written by simulate or sweep")
    info.set_defaults(func=_cmd_info)
    exp = sub.add_parser("export", help="export a database to npz, NIfTI (+bval/bvec/json) or a Camino scheme")
    exp.add_argument("database", help="database (.h5) written by simulate or sweep")
    exp.add_argument("-o", "--output", required=True, help="output path stem")
    exp.add_argument("--format", choices=("npz", "nifti", "camino", "training", "zarr"), default="npz",
                     help="npz: every array in one file; nifti: signals as a 4-D image with .bval, .bvec and "
                          ".json beside it; camino: the scheme alone; training (.npz) or zarr (.zarr, needs "
                          "zarr): finished rows as signals and named labels for learned estimators")
    exp.add_argument("--labels", metavar="NAMES", default=None,
                     help="training/zarr: comma-separated labels (ground-truth keys, nested ones dotted, or swept "
                          "parameters; default: every numeric ground-truth value and swept parameter)")
    exp.set_defaults(func=_cmd_export)
    val = sub.add_parser("validate", help="fit analytic models to a database and report bias against ground truth")
    val.add_argument("database", help="database (.h5) whose finished rows are fitted")
    val.add_argument("--models", help="comma-separated model names (default: every applicable model)")
    val.add_argument("--snr", type=float, default=50.0, help="SNR of added noise at b=0 (0: no added noise)")
    val.add_argument("--repeats", type=int, default=3, help="noise realisations per row")
    val.add_argument("--likelihood", choices=("gaussian", "rician"), default="gaussian",
                     help="noise added and fitted: Gaussian (least squares) or Rician (maximum likelihood)")
    val.add_argument("--method", default="auto",
                     choices=("auto", "wls", "ols", "iwls", "lm", "nlls", "ml", "dictionary"),
                     help="fitting method where it applies (auto: log-linear WLS for DTI/DKI/QTI, batched "
                          "Levenberg-Marquardt for the others; dictionary: NODDI-Watson, ActiveAx and SANDI "
                          "over precomputed atoms, NODDI and ActiveAx with their d_par given by --fix); the "
                          "report says which fitted each model")
    val.add_argument("--fix", action="append", metavar="MODEL.PARAM=VALUE",
                     help="hold a model parameter at VALUE (SI units) in every fit of that model, e.g. "
                          "noddi_watson.d_par=1.7e-9; repeatable")
    val.add_argument("--seed", type=int, default=0, help="seed of the added noise")
    val.add_argument("--jobs", type=int, default=None, help="fitting processes (default: all cores)")
    val.add_argument("--nrv", action="append", metavar="MODEL.PARAM",
                     help="add the NRV landscape of a parameter (first row), e.g. stick_zeppelin.f; repeatable")
    val.add_argument("--report", required=True, help="output folder for report.md and the figures")
    val.set_defaults(func=_cmd_validate)
    atl = sub.add_parser("atlas", help="build a validity atlas from a recipe: databases, fits of every model, "
                                       "leaderboard and report (resumable)")
    atl.add_argument("recipe", nargs="?", help="built-in recipe name (see --list) or a recipe TOML file")
    atl.add_argument("--out", help="output folder (databases/, fits/, report.md, figures/); run again to resume")
    atl.add_argument("--list", action="store_true", help="list the built-in recipes and exit")
    atl.add_argument("--estimate-from", metavar="DIR",
                     help="print the recipe's cost on this machine from the timing of an atlas built in DIR, "
                          "without running anything")
    grp = atl.add_mutually_exclusive_group()
    grp.add_argument("--local", type=int, metavar="N", help="simulate on a Dask LocalCluster with N workers")
    grp.add_argument("--scheduler", metavar="ADDR", help="simulate on the Dask scheduler at ADDR")
    atl.add_argument("--jobs", type=int, default=1, help="fitting processes (default 1; results do not depend on it)")
    atl.set_defaults(func=_cmd_atlas)
    show = sub.add_parser("show-substrate", help="draw the substrate of a config")
    show.add_argument("config", help="TOML config whose [substrate] is drawn")
    show.add_argument("-o", "--output", required=True, help="picture (.png)")
    show.set_defaults(func=_cmd_show_substrate)
    return p


#: the packages whose log messages the command line shows (other libraries' stay at their own level)
LOGGED_PACKAGES = ("diffwalk", "walker", "substrates", "sequences", "validation")


def _configure_logging(level: int) -> None:
    """Show this project's log messages at ``level`` on stderr; leave the root logger (matplotlib's font
    cache, numba, dask) alone."""
    for name in LOGGED_PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(getattr(h, "_diffwalk", False) for h in logger.handlers):
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            handler._diffwalk = True
            logger.addHandler(handler)
        logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``diffwalk`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging((logging.INFO, logging.INFO, logging.DEBUG)[min(args.verbose, 2)])
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    from .database import DatabaseError
    from .quantities import ConfigError
    try:
        return args.func(args)
    except (ConfigError, DatabaseError, FileNotFoundError, KeyError, ImportError, ValueError) as exc:
        # a KeyError's str() is the repr of its message: print the message itself
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"diffwalk {args.command}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
