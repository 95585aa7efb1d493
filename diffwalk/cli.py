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
        run_example(args.name, args.output)
    except KeyError as exc:
        print(f"diffwalk example: {exc.args[0]}", file=sys.stderr)
        return 2
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .sweep import run_sweep
    db = run_sweep(Path(args.config).read_text(), args.output, is_sweep=False)
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
                       gpus=args.gpus)
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
    else:
        out = stem.with_suffix(".scheme")
        with atomic_output(out) as tmp:
            sequences.write_camino(db.scheme, tmp)
        paths = [out]
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


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
    md = report_database(db, args.report, models=models, snr=args.snr or None, repeats=args.repeats,
                                likelihood=args.likelihood, nrv=nrv, seed=args.seed, n_jobs=args.jobs,
                                method=args.method,
                                title=f"validation of {Path(args.database).name}", progress=True)
    print(f"fitted models to {int(db.done.sum())} row(s); wrote {md} and its figures")
    return 0


def _cmd_show_substrate(args: argparse.Namespace) -> int:
    import substrates

    from . import config as cfgmod
    job = cfgmod.parse_job(cfgmod.load(args.config))
    substrates.plot_section(job.substrate, path=args.output)
    print(f"wrote {args.output}")
    return 0


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
    ex.set_defaults(func=_cmd_example)
    sim = sub.add_parser("simulate", help="run one simulation from a TOML config into an HDF5 database")
    sim.add_argument("config")
    sim.add_argument("-o", "--output", required=True, help="output database (.h5)")
    sim.set_defaults(func=_cmd_simulate)
    for name, helptext in (("sweep", "run a parameter sweep from a TOML spec (resumable)"),
                           ("resume", "finish an interrupted sweep from its database")):
        sp = sub.add_parser(name, help=helptext)
        if name == "sweep":
            sp.add_argument("spec", help="TOML spec: [substrate], [[scheme]], [simulation] and a [sweep] table "
                                         "(seeds, [sweep.grid] of 'field' = [values]); see diffwalk/config.py")
            sp.add_argument("-o", "--output", required=True, help="output database (.h5)")
        else:
            sp.add_argument("database")
        grp = sp.add_mutually_exclusive_group()
        grp.add_argument("--local", type=int, metavar="N", help="run on a Dask LocalCluster with N workers")
        grp.add_argument("--scheduler", metavar="ADDR", help="run on the Dask scheduler at ADDR")
        grp.add_argument("--jobqueue", choices=("slurm", "pbs"), help="start a dask-jobqueue cluster (needs [hpc])")
        grp.add_argument("--gpus", type=int, metavar="N",
                         help="run every row on N local GPUs, one Dask worker each (needs [gpu] and [distributed])")
        sp.add_argument("--jobs", type=int, default=4, help="batch jobs for --jobqueue (default 4)")
        sp.set_defaults(func=_cmd_sweep if name == "sweep" else _cmd_resume)
    info = sub.add_parser("info", help="summarise a database")
    info.add_argument("database")
    info.set_defaults(func=_cmd_info)
    exp = sub.add_parser("export", help="export a database to npz, NIfTI (+bval/bvec/json) or a Camino scheme")
    exp.add_argument("database")
    exp.add_argument("-o", "--output", required=True, help="output path stem")
    exp.add_argument("--format", choices=("npz", "nifti", "camino"), default="npz")
    exp.set_defaults(func=_cmd_export)
    val = sub.add_parser("validate", help="fit analytic models to a database and report bias against ground truth")
    val.add_argument("database")
    val.add_argument("--models", help="comma-separated model names (default: every applicable model)")
    val.add_argument("--snr", type=float, default=50.0, help="SNR of added noise at b=0 (0: no added noise)")
    val.add_argument("--repeats", type=int, default=3, help="noise realisations per row")
    val.add_argument("--likelihood", choices=("gaussian", "rician"), default="gaussian")
    val.add_argument("--method", default="auto",
                     choices=("auto", "wls", "ols", "iwls", "lm", "nlls", "ml"),
                     help="fitting method where it applies (auto: log-linear WLS for DTI/DKI/QTI, batched "
                          "Levenberg-Marquardt for the others); the report says which fitted each model")
    val.add_argument("--seed", type=int, default=0)
    val.add_argument("--jobs", type=int, default=None, help="fitting processes (default: all cores)")
    val.add_argument("--nrv", action="append", metavar="MODEL.PARAM",
                     help="add the NRV landscape of a parameter (first row), e.g. stick_zeppelin.f; repeatable")
    val.add_argument("--report", required=True, help="output folder for report.md and the figures")
    val.set_defaults(func=_cmd_validate)
    show = sub.add_parser("show-substrate", help="draw the substrate of a config")
    show.add_argument("config")
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
