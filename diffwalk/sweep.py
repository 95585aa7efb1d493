"""Resumable sweeps: substrate x parameter grid x seeds -> one database, serially or on Dask.

Rows are independent simulations with fixed seeds, so a serial run, a Dask
LocalCluster and a remote scheduler produce bit-identical rows. The process
that runs the sweep is the only writer: workers return rows, the writer stores
each one atomically as it arrives and folds them into the database every
``flush_seconds`` and at the end (see :mod:`diffwalk.database` for why this is
safe against SIGKILL). ``resume`` reruns only the rows that are in neither the
database nor its parts folder.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import tomllib
import warnings
from pathlib import Path

import numpy as np

from sequences import check_count

from . import config as cfgmod
from . import database
from .quantities import ConfigError

log = logging.getLogger(__name__)


class DeviceError(ConfigError, RuntimeError):
    """A run asks for a CUDA device that this machine lacks (a :class:`ConfigError`, so the command line
    reports it in one line; a RuntimeError, as the simulator's own refusal is)."""


def _param_si(job: cfgmod.Job, name: str, raw):
    """SI value of a swept parameter (None when not a number)."""
    parts = name.split(".")
    try:
        if parts[0] in ("substrate", "simulation", "field"):
            v = job.echo[parts[0]]
            for part in parts[1:]:          # "simulation.diffusivity.intra": into per-compartment tables
                v = v[part]
        elif parts[0] == "seed":
            v = raw
        else:
            return None
    except (KeyError, IndexError, TypeError):
        return None
    v = np.asarray(v)
    return float(v) if v.ndim == 0 and v.dtype.kind in "fiu" else None


def run_row(index: int, row_config: dict, names: list[str], params: dict,
            backend: str | None = None, base_dir: str | None = None) -> tuple[int, dict]:
    """Simulate one row (on ``backend`` when given, else the config's); runs on workers, so it takes and
    returns plain data. ``base_dir`` is the folder relative file paths in [substrate] are read from. Rows with
    the same [substrate] table share one substrate per process (:func:`diffwalk.config.substrate_cache_info`)."""
    from walker import simulate

    job = cfgmod.parse_job(row_config, base_dir)
    sim = dict(job.simulation)
    if backend is not None:
        sim["backend"] = backend
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = simulate(job.substrate, job.scheme, field=job.field, **sim)
    for w in caught:
        log.warning("row %d: %s", index, w.message)
    si = {n: _param_si(job, n, params[n]) for n in names}
    return index, database.row_from_result(res, params, si)


def _set_threads(n: int) -> int:
    import numba
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    return numba.get_num_threads()


def _warmup(backend: str = "cpu") -> bool:
    # compile (or load from cache) the kernels once per worker before the timed rows
    import sequences
    import substrates

    from walker import simulate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        simulate(substrates.cylinder_lattice(2e-6, 0.5), sequences.pgse(5e-3, 10e-3, bvalues=[1e9]),
                 n_walkers=64, n_steps=8, diffusivity=2e-9, start="uniform", backend=backend)
    return True


def _pin_gpu(device: str) -> str:
    # before the worker's first CUDA call: the driver reads CUDA_VISIBLE_DEVICES once, at initialisation
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    return device


def gpu_devices(gpus: int) -> list[str]:
    """The CUDA_VISIBLE_DEVICES value of each of ``gpus`` workers (one GPU each), from the devices this process
    may use; refuses more GPUs than there are, or a machine without CUDA."""
    from walker import cuda_backend
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ValueError(f"gpus must be a whole number >= 1, got {gpus!r}")
    if not cuda_backend.available():
        raise DeviceError("--gpus: no usable CUDA device here; " + cuda_backend.INSTALL_HINT)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        devices = [d.strip() for d in visible.split(",") if d.strip()]
    elif cuda_backend.simulator():
        devices = [str(k) for k in range(gpus)]
    else:
        from numba import cuda
        devices = [str(k) for k in range(len(cuda.gpus))]
    if gpus > len(devices):
        raise ValueError(f"--gpus {gpus}: only {len(devices)} CUDA device(s) visible ({', '.join(devices) or 'none'})")
    return devices[:gpus]


def _progress(total: int, initial: int):
    try:
        from tqdm import tqdm
        if sys.stderr.isatty() and not os.environ.get("CI"):
            return tqdm(total=total, initial=initial, unit="row", desc="sweep")
    except ImportError:
        pass
    return None


def _pending(db_path: Path, n_rows: int) -> list[int]:
    done = set()
    if db_path.exists():
        db = database.open_database(db_path)
        done |= set(np.nonzero(db.done)[0].tolist())
    done |= set(database.PartsFolder(db_path).read())
    return [i for i in range(n_rows) if i not in done]


def consolidate(db_path: str | Path, scheme, n_rows: int, names: list[str], spec_text: str,
                config_dir: str | None = None) -> int:
    """Fold the parts folder into the database (atomic rewrite); returns the finished-row count."""
    db_path = Path(db_path)
    rows = database.rows_from_file(db_path) if db_path.exists() else {}
    folder = database.PartsFolder(db_path)
    parts = folder.read()
    rows.update(parts)
    database.create(db_path, scheme, n_rows, names, spec_text, rows, config_dir=config_dir)
    folder.remove(parts)
    return len(rows)


def jobqueue_scheduler(kind: str, jobs: int, cores: int = 4, memory: str = "8GB", walltime: str = "02:00:00"):
    """Start a dask-jobqueue cluster (SLURM or PBS) with ``jobs`` batch jobs; returns (cluster, address).

    Needs ``pip install 'diffwalk[hpc]'`` and a batch system; each job runs one worker
    with ``cores`` numba threads.
    """
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise ImportError("--jobqueue needs dask-jobqueue: pip install 'diffwalk[hpc]'") from exc
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}.get(kind)
    if cls is None:
        raise ValueError(f"jobqueue must be 'slurm' or 'pbs', got {kind!r}")
    cluster = cls(cores=cores, processes=1, memory=memory, walltime=walltime,
                  job_script_prologue=[f"export NUMBA_NUM_THREADS={cores}"])
    cluster.scale(jobs=int(jobs))
    return cluster, cluster.scheduler_address


def _check_first_row(job: cfgmod.Job) -> None:
    """Check the first row's simulation settings as simulate() will (counts, diffusivity, T2, steps) before a
    database exists, so that a bad value leaves no file behind."""
    import warnings as _w

    from walker import plan_run
    sim = job.simulation
    try:
        with _w.catch_warnings():
            _w.simplefilter("ignore")
            plan_run(job.substrate, job.scheme, sim.get("n_walkers", 100_000), sim.get("diffusivity"),
                     sim.get("n_steps", 1000), t2=sim.get("t2"), gaussian_steps=sim.get("gaussian_steps", False),
                     record_times=None, n_trajectories=0, target_stderr=None, max_transit_probability=0.02,
                     transit="corrected")
    except ValueError as exc:
        raise ConfigError(f"[simulation]: {exc}") from exc


def _check_backends(rows: list[dict]) -> None:
    """Refuse a config whose ``backend`` cannot run here (``"cuda"`` without a usable device) before a database
    exists, so that the refusal is one line and leaves no file behind."""
    from walker import cuda_backend
    wanted = {r["config"].get("simulation", {}).get("backend", "cpu") for r in rows}
    for backend in sorted(wanted, key=str):
        try:
            cuda_backend.resolve_backend(backend)
        except RuntimeError as exc:
            raise DeviceError(f"[simulation] backend = {backend!r}: no usable CUDA device here; "
                              f"{cuda_backend.INSTALL_HINT}; or set backend = \"cpu\" (or \"auto\": CUDA where "
                              "there is a device)") from exc
        except ValueError as exc:
            raise ConfigError(f"[simulation] {exc}") from exc


def _check_rows_match(db: database.Database, rows: list[dict], names: list[str]) -> None:
    """Refuse to continue a database whose finished rows were made from other values than its spec now says
    (a spec edited inside the file after the rows were made)."""
    stored = db.attrs.get("spec_sha256")
    if stored is not None and stored != database.spec_digest(db.attrs.get("spec", "")):
        raise database.DatabaseError(f"{db.path}: the spec stored in the file was changed after its rows were made; "
                                     "its finished rows come from the old spec. Start a new database")
    for i in np.nonzero(db.done)[0]:
        want = {n: str(rows[i]["params"].get(n, "")) for n in names}
        have = {n: str(db.params_text[n][i]) for n in names}
        if want != have:
            raise database.DatabaseError(f"{db.path}: row {i} was made with {have} but the spec now gives {want}; "
                                         "start a new database")


def run_sweep(spec_text: str, db_path: str | Path, *, local: int | None = None, scheduler: str | None = None,
              gpus: int | None = None, flush_seconds: float = 10.0, is_sweep: bool = True,
              base_dir: str | Path | None = None) -> Path:
    """Run (or continue) the sweep described by ``spec_text`` into ``db_path``.

    Parameters
    ----------
    spec_text : str
        The TOML spec (stored in the database, so ``resume`` needs nothing else).
    db_path : str or Path
        Output ``.h5``. An existing file must come from the same spec: it is
        continued, never overwritten.
    local : int, optional
        Run on a Dask LocalCluster with this many single-threaded worker processes
        (numba threads per worker = cores / workers).
    scheduler : str, optional
        Address of a running Dask scheduler (e.g. one started by dask-jobqueue).
    gpus : int, optional
        Run every row with ``backend="cuda"`` on this many local GPUs, one Dask worker per GPU (dask-cuda's
        LocalCUDACluster when installed, else plain workers pinned with CUDA_VISIBLE_DEVICES). Rows equal the
        CPU's (same seeds, same per-walker code); provenance names the backend and the device.
    flush_seconds : float
        How often (in s) finished rows are folded into the database.
    is_sweep : bool
        False for a single simulation (``diffwalk simulate``): no [sweep] table needed.
    base_dir : str or Path, optional
        Folder that relative file paths in [substrate] (``path``, ``file``) are read from: the spec file's folder
        (default: the working directory). Stored in the database, absolute, for ``resume``.

    Returns
    -------
    Path
        The database.
    """
    db_path = Path(db_path)
    if sum(x is not None for x in (local, scheduler, gpus)) > 1:
        raise ValueError("choose one of local=, scheduler= and gpus=")
    if local is not None:
        local = check_count(local, "local (--local)")  # Dask workers; left out, the sweep runs serially
    devices = gpu_devices(gpus) if gpus is not None else None
    try:
        cfg = tomllib.loads(spec_text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"spec is not valid TOML ({exc})") from exc
    if is_sweep:
        names, rows = cfgmod.sweep_rows(cfg)
    else:
        if "sweep" in cfg:
            raise ConfigError("this config has a [sweep] table: run it with `diffwalk sweep`")
        names, rows = [], [{"params": {}, "config": cfg}]
    if any(n.startswith("scheme") for n in names):
        raise ConfigError("sweep.grid varies the scheme; one database holds one scheme: run one sweep per scheme")
    config_dir = str(Path(base_dir if base_dir is not None else Path.cwd()).resolve())
    # parse every row before running any, so a bad value fails now and not after hours (rows that share a
    # [substrate] table build its substrate once: the rows below reuse it)
    jobs0 = cfgmod.parse_job(rows[0]["config"], config_dir)
    for r in rows[1:]:
        cfgmod.parse_job(r["config"], config_dir)
    log.info("parsed configuration (SI):\n%s", cfgmod.echo_text(jobs0))
    scheme = jobs0.scheme
    n_rows = len(rows)
    _check_first_row(jobs0)
    if devices is None:  # --gpus runs every row on CUDA whatever the config says, and gpu_devices checked that
        _check_backends(rows)
    if db_path.exists():
        db = database.open_database(db_path)
        empty = not db.done.any() and database.PartsFolder(db_path).count() == 0
        if db.attrs.get("spec") != spec_text:
            if not empty:
                raise ConfigError(f"{db_path} exists and was made from another spec; choose another output file "
                                  "(nothing was overwritten)")
            log.warning("%s holds no finished row: replacing it (it was made from another spec)", db_path)
            database.create(db_path, scheme, n_rows, names, spec_text, config_dir=config_dir)
        else:
            _check_rows_match(db, rows, names)
    else:
        database.create(db_path, scheme, n_rows, names, spec_text, config_dir=config_dir)
    pending = _pending(db_path, n_rows)
    log.info("%d of %d rows to run", len(pending), n_rows)
    bar = _progress(n_rows, n_rows - len(pending))
    parts = database.PartsFolder(db_path)
    last_flush = time.monotonic()
    finished = n_rows - len(pending)
    t0 = time.monotonic()

    def store(i: int, row: dict) -> None:
        nonlocal last_flush, finished
        parts.write(i, row)
        finished += 1
        if bar is not None:
            bar.update(1)
        else:
            rate = (finished - (n_rows - len(pending))) / max(time.monotonic() - t0, 1e-9)
            eta = (n_rows - finished) / rate if rate > 0 else math.inf
            log.info("row %d done (%d/%d, ETA %.0f s)", i, finished, n_rows, eta)
        if time.monotonic() - last_flush > flush_seconds:
            consolidate(db_path, scheme, n_rows, names, spec_text, config_dir)
            last_flush = time.monotonic()

    try:
        if local is None and scheduler is None and devices is None:
            for i in pending:
                store(*run_row(i, rows[i]["config"], names, rows[i]["params"], base_dir=config_dir))
        else:
            _run_dask(pending, rows, names, store, local, scheduler, devices, config_dir)
    finally:
        consolidate(db_path, scheme, n_rows, names, spec_text, config_dir)
        if bar is not None:
            bar.close()
    return db_path


def _gpu_cluster(devices: list[str]):
    """One single-threaded worker per GPU: dask-cuda's LocalCUDACluster when installed, else a LocalCluster
    whose workers are pinned to their GPU before they touch CUDA."""
    from dask.distributed import Client, LocalCluster
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        LocalCUDACluster = None
    if LocalCUDACluster is not None:
        cluster = LocalCUDACluster(CUDA_VISIBLE_DEVICES=",".join(devices), n_workers=len(devices),
                                   threads_per_worker=1, dashboard_address=None)
        return cluster, Client(cluster)
    cluster = LocalCluster(n_workers=len(devices), threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    for address, device in zip(sorted(client.scheduler_info()["workers"]), devices):
        client.run(_pin_gpu, device, workers=[address])
    return cluster, client


def _run_dask(pending, rows, names, store, local, scheduler, devices=None, config_dir=None) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise ImportError("parallel sweeps need Dask: pip install 'diffwalk[distributed]'") from exc
    cluster = None
    backend = None
    if devices is not None:
        cluster, client = _gpu_cluster(devices)
        backend = "cuda"
    elif scheduler is None:
        cluster = LocalCluster(n_workers=int(local), threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        n_workers = max(1, len(client.scheduler_info()["workers"]))
        cores = os.cpu_count() or 1
        client.run(_set_threads, max(1, cores // n_workers))
        client.run(_warmup, backend or "cpu")
        futures = client.map(run_row, pending, [rows[i]["config"] for i in pending], [names] * len(pending),
                             [rows[i]["params"] for i in pending], [backend] * len(pending),
                             [config_dir] * len(pending), pure=False)
        for fut in as_completed(futures):
            store(*fut.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def resume(db_path: str | Path, **kwargs) -> Path:
    """Finish a sweep from its database alone (the spec is stored in it).

    Parameters
    ----------
    db_path : str or Path
        The database of the sweep (``.h5``).
    **kwargs
        Passed to :func:`run_sweep` (``local``, ``scheduler``, ``gpus``, ``flush_seconds``).

    Returns
    -------
    Path
        The database.

    Raises
    ------
    DatabaseError
        If the database holds no spec.
    """
    db = database.open_database(db_path)
    spec = db.attrs.get("spec")
    if not spec:
        raise database.DatabaseError(f"{db_path}: no spec stored; cannot resume")
    is_sweep = "sweep" in tomllib.loads(spec)
    # relative file paths were read from the spec's folder when the sweep began (older files: the working directory)
    return run_sweep(spec, db_path, is_sweep=is_sweep, base_dir=db.attrs.get("config_dir"), **kwargs)
