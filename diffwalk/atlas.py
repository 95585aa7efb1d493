"""The validity atlas: a versioned recipe of substrates x protocols x SNRs, built into databases by the sweep
machinery, every applicable model fitted by its fast method, and a leaderboard per estimated quantity.

A recipe is a TOML file (built-in ones: :func:`list_recipes`)::

    [atlas]
    name = "small"
    version = "1.0"
    snr = [20, 50]            # SNR at b = 0 of the added noise, one fit set per level
    repeats = 2               # noise realisations per row and SNR
    seeds = 1                 # substrate/walker seeds per grid point (a count or a list)
    tolerance = 0.10          # relative error that counts as "within" on the leaderboard

    [simulation]              # shared by every entry (an entry may override keys in its own [simulation])
    n_walkers = 2000
    n_steps = 1000
    diffusivity = "2 um^2/ms"

    [[protocols.pgse.scheme]] # one protocol = one scheme (its tables concatenated) = one database per substrate
    type = "pgse"
    delta = "10 ms"
    Delta = "30 ms"
    bvalues = "0 1000 2000 3000 s/mm^2"
    directions = 20

    [substrates.gamma_cylinders]     # a [substrate] table of the config reference...
    type = "packed_cylinders"
    n = 40
    gamma_shape = 5.0
    gamma_scale = "0.5 um"
    icvf = 0.5
    [substrates.gamma_cylinders.grid]   # ...and its axes (bare keys are substrate keys)
    icvf = [0.4, 0.6]

Every (substrate, protocol) pair is one sweep, one database ``databases/<substrate>--<protocol>.h5``: an
interrupted atlas resumes where it stopped, rows and fits alike. Every model (or the recipe's ``models``) is
fitted to every finished row of a protocol at once, at every SNR, with the same noise realisations for every
model (``fits/<protocol>.json``), and the
leaderboard ranks the models that estimate a quantity (the ground-truth key of their parameter:
``intra_fraction``, ``radius``, ...) by the share of fits within the tolerance, over every substrate, protocol
and SNR of the recipe.

Examples
--------
>>> from diffwalk import atlas
>>> result = atlas.run_atlas("small", "atlas_out")       # doctest: +SKIP
>>> result.report                                         # doctest: +SKIP
PosixPath('atlas_out/report.md')
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import validation

from . import config as cfgmod
from .database import atomic_output, open_database
from .quantities import ConfigError
from .sweep import run_sweep
from .validate import database_signals

#: folder of the built-in recipes (``diffwalk atlas small``)
RECIPES_DIR = Path(__file__).parent / "recipes"
#: keys of a recipe's [atlas] table and what each holds
ATLAS_KEYS = {"name": "recipe name", "version": "recipe version (text)", "description": "one paragraph",
              "snr": "list of SNR levels at b = 0, e.g. [20, 50]", "repeats": "noise realisations per row and SNR",
              "seeds": "a count or a list of seeds per grid point", "tolerance": "relative error counted as "
              "within, e.g. 0.1", "models": "model names to fit (default: every model)"}
#: keys of a [substrates.NAME] entry besides those of its [substrate] table
ENTRY_KEYS = {"grid", "simulation"}
#: the leaderboard is drawn for at most this many models per quantity in the regime maps
REGIME_MODELS = 6


@dataclass(frozen=True)
class Recipe:
    """A parsed atlas recipe (see the module docstring); raw TOML values, units as text.

    Parameters
    ----------
    name, version, description : str
    path : Path or None
        The recipe file (relative file paths in substrates are read from its folder).
    text : str
        The recipe as written (its SHA-256 names the atlas in every output).
    snr : tuple of float
        SNR levels at b = 0 of the added Gaussian noise.
    repeats : int
        Noise realisations per row and SNR.
    seeds : list of int
        Seeds per grid point.
    tolerance : float
        Relative error counted as "within" on the leaderboard.
    models : tuple of str or None
        Models to fit (None: every model of :func:`validation.list_models`).
    simulation : dict
        The shared [simulation] table.
    protocols : dict
        name -> list of [[scheme]] tables.
    substrates : dict
        name -> {"substrate": table, "grid": {dotted key: values}, "simulation": overrides}.
    """

    name: str
    version: str
    description: str
    path: Path | None
    text: str
    snr: tuple
    repeats: int
    seeds: list
    tolerance: float
    models: tuple | None
    simulation: dict
    protocols: dict
    substrates: dict

    @property
    def sha(self) -> str:
        """First 12 hex digits of the SHA-256 of the recipe text."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """Every (substrate, protocol) pair, one database each, in a fixed order."""
        return [(s, p) for s in self.substrates for p in self.protocols]

    def n_rows(self, substrate: str) -> int:
        """Rows of one substrate entry per protocol: grid points x seeds.

        Parameters
        ----------
        substrate : str
            Entry name.

        Returns
        -------
        int
        """
        n = len(self.seeds)
        for values in self.substrates[substrate]["grid"].values():
            n *= len(values)
        return n


def list_recipes() -> list[str]:
    """Names of the built-in recipes (``diffwalk atlas NAME``).

    Returns
    -------
    list of str
    """
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))


def _recipe_path(recipe: str | Path) -> Path:
    p = Path(recipe)
    if p.suffix != ".toml" and not p.exists():
        builtin = RECIPES_DIR / f"{p.name}.toml"
        if builtin.exists():
            return builtin
        raise ConfigError(f"recipe {str(recipe)!r}: no such file and no built-in recipe of that name; built-in: "
                          f"{list_recipes()}")
    if not p.exists():
        raise ConfigError(f"recipe {str(recipe)!r}: no such file")
    return p


def load_recipe(recipe: str | Path) -> Recipe:
    """Read and check an atlas recipe: a built-in name (:func:`list_recipes`) or a TOML file.

    Parameters
    ----------
    recipe : str or Path
        ``"small"``, ``"full"`` or a path.

    Returns
    -------
    Recipe

    Raises
    ------
    ConfigError
        Naming the table and key of any unknown, missing or ill-typed entry.
    """
    path = _recipe_path(recipe)
    text = path.read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(raw) - {"atlas", "simulation", "protocols", "substrates"}
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {sorted(unknown)}; a recipe has [atlas], [simulation], "
                          "[protocols.NAME] and [substrates.NAME]")
    head = raw.get("atlas")
    if not isinstance(head, dict):
        raise ConfigError(f"{path}: needs an [atlas] table with name, version and snr")
    bad = set(head) - set(ATLAS_KEYS)
    if bad:
        raise ConfigError(f"{path}: [atlas] has unknown key(s) {sorted(bad)}; allowed: {sorted(ATLAS_KEYS)}")
    for key in ("name", "version"):
        if not isinstance(head.get(key), str) or not head[key]:
            example = '"mine"' if key == "name" else '"1.0"'
            raise ConfigError(f"{path}: atlas.{key} must be a non-empty text, e.g. {key} = {example}")
    snr = head.get("snr", [50])
    if not isinstance(snr, list) or not snr or not all(isinstance(s, (int, float)) and not isinstance(s, bool)
                                                       and s > 0 for s in snr):
        raise ConfigError(f"{path}: atlas.snr = {snr!r}: expected a list of positive SNR levels, e.g. [20, 50]")
    repeats = head.get("repeats", 3)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ConfigError(f"{path}: atlas.repeats = {repeats!r}: expected a whole number >= 1")
    seeds = head.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
        seeds = list(range(seeds))
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in seeds):
        raise ConfigError(f"{path}: atlas.seeds = {seeds!r}: expected a count >= 1 or a list of integers")
    tol = head.get("tolerance", 0.10)
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not 0 < tol < 1:
        raise ConfigError(f"{path}: atlas.tolerance = {tol!r}: expected a relative error in (0, 1), e.g. 0.1 "
                          "(not 10 for 10 %)")
    models = head.get("models")
    if models is not None:
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise ConfigError(f"{path}: atlas.models must be a list of model names")
        for m in models:
            try:
                validation.get_model(m)
            except (KeyError, ValueError) as exc:
                raise ConfigError(f"{path}: atlas.models: {exc}") from None
        models = tuple(models)
    simulation = raw.get("simulation", {})
    if not isinstance(simulation, dict):
        raise ConfigError(f"{path}: [simulation] must be a table")
    protocols = {}
    for name, proto in (raw.get("protocols") or {}).items():
        schemes = proto.get("scheme") if isinstance(proto, dict) else None
        if not isinstance(schemes, list) or not schemes or not all(isinstance(s, dict) for s in schemes):
            raise ConfigError(f"{path}: protocols.{name} needs one or more [[protocols.{name}.scheme]] tables")
        extra = set(proto) - {"scheme"}
        if extra:
            raise ConfigError(f"{path}: protocols.{name} has unknown key(s) {sorted(extra)}; only scheme tables")
        protocols[name] = schemes
    if not protocols:
        raise ConfigError(f"{path}: no protocol; add [[protocols.NAME.scheme]] tables")
    substrates = {}
    for name, entry in (raw.get("substrates") or {}).items():
        if not isinstance(entry, dict) or "type" not in entry:
            raise ConfigError(f"{path}: substrates.{name} needs a type (a [substrate] table of the config "
                              "reference)")
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ConfigError(f"{path}: substrates.{name}: use letters, digits and _ in entry names (they name "
                              "files)")
        grid = entry.get("grid", {})
        if not isinstance(grid, dict):
            raise ConfigError(f"{path}: substrates.{name}.grid must be a table of key = [values]")
        dotted = {}
        for key, values in grid.items():
            full = key if "." in key else f"substrate.{key}"
            if full.startswith("scheme"):
                raise ConfigError(f"{path}: substrates.{name}.grid.{key}: a protocol is fixed per database; add "
                                  "another protocol instead of sweeping the scheme")
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{path}: substrates.{name}.grid.{key} must be a non-empty list")
            dotted[full] = values
        sim = entry.get("simulation", {})
        if not isinstance(sim, dict):
            raise ConfigError(f"{path}: substrates.{name}.simulation must be a table of overrides")
        substrates[name] = {"substrate": {k: v for k, v in entry.items() if k not in ENTRY_KEYS},
                            "grid": dotted, "simulation": sim}
    if not substrates:
        raise ConfigError(f"{path}: no substrate; add [substrates.NAME] tables")
    for name in protocols:
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ConfigError(f"{path}: protocols.{name}: use letters, digits and _ in protocol names")
    return Recipe(name=head["name"], version=head["version"], description=head.get("description", ""), path=path,
                  text=text, snr=tuple(float(s) for s in snr), repeats=repeats, seeds=seeds, tolerance=float(tol),
                  models=models, simulation=simulation, protocols=protocols, substrates=substrates)


# ------------------------------------------------------------------ sweep specs
def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not np.isfinite(value):
            raise ConfigError(f"value {value!r} cannot be written to a spec; give a finite number")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"value {value!r} ({type(value).__name__}) cannot be written to a spec")


def _table(header: str, table: dict) -> list[str]:
    return [header] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]


def entry_spec(recipe: Recipe, substrate: str, protocol: str) -> str:
    """The sweep spec (TOML text, as ``diffwalk sweep`` reads) of one (substrate, protocol) pair.

    Parameters
    ----------
    recipe : Recipe
    substrate, protocol : str
        Entry names of the recipe.

    Returns
    -------
    str
    """
    entry = recipe.substrates[substrate]
    lines = [f"# atlas {recipe.name} {recipe.version} ({recipe.sha}): {substrate} x {protocol}"]
    lines += _table("[substrate]", entry["substrate"]) + [""]
    for s in recipe.protocols[protocol]:
        lines += _table("[[scheme]]", s) + [""]
    lines += _table("[simulation]", {**recipe.simulation, **entry["simulation"]}) + [""]
    lines += ["[sweep]", f"seeds = {_toml_value(recipe.seeds)}"]
    if entry["grid"]:
        lines += _table("[sweep.grid]", entry["grid"])
    return "\n".join(lines) + "\n"


def database_path(outdir: str | Path, substrate: str, protocol: str) -> Path:
    """Where the atlas keeps the database of one (substrate, protocol) pair."""
    return Path(outdir) / "databases" / f"{substrate}--{protocol}.h5"


# ------------------------------------------------------------------ fits
def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if np.isfinite(v) else None
    return obj


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(obj)))


def fit_protocol(recipe: Recipe, protocol: str, outdir: str | Path, *, fits_path: str | Path | None = None,
                 n_jobs: int | None = 1, progress: bool = False) -> dict:
    """Fit every model to every finished row of one protocol's databases, every SNR of the recipe.

    The rows of every substrate entry share the protocol's scheme, so each model is fitted once per SNR level
    to all of them (one batched fit: every signal on its own, so batching changes no fit). One seed per
    protocol and SNR: every model sees the same noise realisations of a row, and the ranking compares models on
    identical data. The result is cached in ``fits_path`` (default ``outdir/fits/<protocol>.json``) and reused
    while the recipe and the finished rows are the same.

    Parameters
    ----------
    recipe : Recipe
    protocol : str
        Protocol name of the recipe.
    outdir : str or Path
        The atlas folder (its ``databases/``).
    fits_path : str or Path, optional
        Where the fits are cached.
    n_jobs : int or None
        Fitting processes (None: all cores).
    progress : bool
        Print each model's fitting time.

    Returns
    -------
    dict
        {"entries": bias-table entries (each with substrate, protocol, row and the row's swept parameters),
        "seconds": {model: fit seconds}, "voxels": {model: fitted signals}, "refused": {model: reason},
        "walk_seconds" and "walker_steps": {substrate: sums over its finished rows}}.
    """
    outdir = Path(outdir)
    fits_path = Path(fits_path) if fits_path is not None else outdir / "fits" / f"{protocol}.json"
    sets, dbs = {}, {}
    for sub in recipe.substrates:
        dbs[sub] = open_database(database_path(outdir, sub, protocol))
        sets[sub] = database_signals(dbs[sub])
    key = {"recipe": recipe.sha, "done": {sub: d.rows.tolist() for sub, d in sets.items()}}
    if fits_path.exists():
        cached = json.loads(fits_path.read_text())
        if cached.get("key") == key:
            return cached
    scheme = next(iter(sets.values())).scheme
    origin = [(sub, int(r)) for sub, d in sets.items() for r in d.rows]
    signals = np.vstack([d.signals for d in sets.values()])
    stderr = np.vstack([d.stderr for d in sets.values()])
    gts = [g for d in sets.values() for g in d.ground_truths]
    entries, seconds, voxels, refused = [], {}, {}, {}
    seed = int.from_bytes(hashlib.sha256(protocol.encode()).digest()[:4], "little")
    for name in recipe.models or validation.list_models():
        model = validation.get_model(name)
        sch, _ = validation.applicable_scheme(model, scheme)
        if sch is None:
            refused[name] = _refusal(model, scheme)
            continue
        t0 = time.perf_counter()
        model_entries = []
        try:
            for k, snr in enumerate(recipe.snr):
                model_entries += validation.bias_table(scheme, signals, gts, stderr, models=[name], snr=snr,
                                                       repeats=recipe.repeats, seed=seed + k, n_jobs=n_jobs)
        except ValueError as exc:
            # the model's own check passed but its fit refuses the protocol (QTI: too few distinct b-tensors)
            refused[name] = str(exc)
            continue
        for e in model_entries:
            sub, r = origin[e["row"]]
            e.update(row=r, substrate=sub, protocol=protocol,
                     params={p: dbs[sub].params_text[p][r] for p in dbs[sub].params_text if p != "seed"})
            entries.append(e)
        seconds[name] = time.perf_counter() - t0
        voxels[name] = len(origin) * recipe.repeats * len(recipe.snr)
        if progress:
            print(f"    {name}: {seconds[name]:.1f} s", flush=True)
    out = {"key": key, "entries": entries, "seconds": seconds, "voxels": voxels, "refused": refused,
           "walk_seconds": {sub: float(np.sum(db.columns["wall_time"][db.done])) for sub, db in dbs.items()},
           "walker_steps": {sub: float(np.sum((db.columns["n_walkers"] * db.columns["n_steps"])[db.done]))
                            for sub, db in dbs.items()},
           "measurements": len(scheme)}
    _write_json(fits_path, out)
    return out


def _refusal(model, scheme) -> str:
    """Why a model cannot be fitted to a scheme: its own check's message, or what it needs."""
    try:
        model.check_scheme(scheme)
    except ValueError as exc:
        return str(exc)
    return f"needs {model.needs}"


# ------------------------------------------------------------------ leaderboard
@dataclass(frozen=True)
class Standing:
    """One (model, parameter) on the leaderboard of the quantity it estimates, over every fit of the atlas.

    Parameters
    ----------
    quantity, model, parameter : str
    n_fits : int
        Fits (rows x noise realisations x SNR levels, every substrate and protocol the model applies to).
    within : float
        Share of the fits within the tolerance of the truth (a fit on a parameter bound counts only where the
        bound itself is within the tolerance: p2 = 1 for parallel fibres is a measurement, f = 1 for 0.6 is not).
    median_bias, precision : float
        Median relative error and half its interquartile range (fits on a bound left out).
    at_bound : float
        Share of fits that ended on a parameter bound.
    median_nrv : float
        Median normalised residual variance at the fit (1 for a correct model; Lampinen et al. 2020).
    within_by_snr : dict
        SNR -> share within the tolerance.
    """

    quantity: str
    model: str
    parameter: str
    n_fits: int
    within: float
    median_bias: float
    precision: float
    at_bound: float
    median_nrv: float
    within_by_snr: dict = field(default_factory=dict)


def _fits(entries: list[dict]):
    """Relative errors, bound hits, NRVs and SNRs of every fit of some bias-table entries."""
    rel, hit, nrv, snr = [], [], [], []
    for e in entries:
        est = np.asarray(e["estimates"], float)
        rel.append((est - e["truth"]) / e["truth"])
        hit.append(np.asarray(e["bound_hits"], bool))
        nrv.append(np.asarray(e.get("nrv") or [np.nan] * est.size, float))
        snr.append(np.full(est.size, e["snr"] or np.inf))
    cat = (lambda xs: np.concatenate(xs) if xs else np.array([]))  # noqa: E731
    return cat(rel), cat(hit).astype(bool), cat(nrv), cat(snr)


def standing(entries: list[dict], quantity: str, tolerance: float) -> Standing:
    """The standing of one (model, parameter) from its bias-table entries (all with a finite truth)."""
    rel, hit, nrv, snr = _fits(entries)
    ok = np.abs(rel) <= tolerance  # a fit on a bound within the tolerance is the truth (p2 = 1 on parallel fibres)
    free = rel[~hit]
    q1, q3 = np.percentile(free, [25, 75]) if free.size else (np.nan, np.nan)
    by = {float(s): float(np.mean(ok[snr == s])) for s in np.unique(snr)}
    return Standing(quantity, entries[0]["model"], entries[0]["parameter"], int(rel.size), float(np.mean(ok)),
                    float(np.median(free)) if free.size else np.nan, float((q3 - q1) / 2), float(np.mean(hit)),
                    float(np.nanmedian(nrv)) if np.any(np.isfinite(nrv)) else np.nan, by)


def quantity_of(entry: dict) -> str | None:
    """The ground-truth key a bias-table entry's parameter estimates (None: no truth, or a direction)."""
    if entry.get("orientation") or entry["parameter"] == "axis_error":
        return None
    truth = entry.get("truth")
    if truth is None or not np.isfinite(truth) or truth == 0:
        return None
    model = validation.get_model(entry["model"])
    key = model.parameters[model.names.index(entry["parameter"])].truth
    return key


def leaderboard(entries: list[dict], tolerance: float = 0.10) -> dict[str, list[Standing]]:
    """Rank, per estimated quantity, every (model, parameter) that estimates it.

    Ranked by the share of fits within the tolerance, then by the smaller absolute median relative bias.

    Parameters
    ----------
    entries : list of dict
        Bias-table entries of the whole atlas.
    tolerance : float
        Relative error counted as within.

    Returns
    -------
    dict
        quantity -> list of :class:`Standing`, best first.
    """
    groups: dict = {}
    for e in entries:
        q = quantity_of(e)
        if q is not None:
            groups.setdefault(q, {}).setdefault((e["model"], e["parameter"]), []).append(e)
    board = {}
    for q in sorted(groups):
        rows = [standing(es, q, tolerance) for es in groups[q].values()]
        board[q] = sorted(rows, key=lambda s: (-s.within, abs(s.median_bias) if np.isfinite(s.median_bias)
                                               else np.inf, s.model))
    return board


# ------------------------------------------------------------------ the run
@dataclass(frozen=True)
class AtlasResult:
    """What :func:`run_atlas` wrote and measured.

    Parameters
    ----------
    recipe : Recipe
    outdir, report : Path
        The output folder and its ``report.md``.
    board : dict
        quantity -> list of :class:`Standing` (the leaderboard).
    refused : dict
        model -> reason it was fitted nowhere or judged nowhere.
    timing : dict
        Measured cost: ``walk_seconds`` and ``walker_steps`` per substrate entry, ``fit_seconds`` and
        ``fit_voxels`` per model, ``sweep_seconds`` and ``fit_wall_seconds`` (wall time of this call).
    """

    recipe: Recipe
    outdir: Path
    report: Path
    board: dict
    refused: dict
    timing: dict


def run_atlas(recipe: str | Path | Recipe, outdir: str | Path, *, local: int | None = None,
              scheduler: str | None = None, n_jobs: int | None = 1, progress: bool = True) -> AtlasResult:
    """Build the atlas of a recipe: its databases (resumable sweeps), the fits, the leaderboard and the report.

    Parameters
    ----------
    recipe : str, Path or Recipe
        A built-in recipe name, a recipe file or a loaded recipe.
    outdir : str or Path
        Output folder: ``databases/``, ``fits/``, ``report.md`` (and ``report.html``), ``leaderboard.csv``,
        ``atlas_table.csv``,
        ``atlas.json`` and the figures. Run again to resume: finished rows and fits are kept.
    local, scheduler : optional
        Run the sweeps on a local Dask cluster of this many workers, or on a running scheduler (as
        ``diffwalk sweep --local/--scheduler``).
    n_jobs : int or None
        Fitting processes (None: all cores); results do not depend on it.
    progress : bool
        Print each step.

    Returns
    -------
    AtlasResult

    Examples
    --------
    >>> res = run_atlas("small", "atlas_small")           # doctest: +SKIP
    >>> res.board["intra_fraction"][0].model              # doctest: +SKIP
    """
    rec = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    say = print if progress else (lambda *a, **k: None)
    t0 = time.perf_counter()
    check_recipe(rec)
    for sub, proto in rec.pairs:
        db = database_path(out, sub, proto)
        db.parent.mkdir(parents=True, exist_ok=True)
        say(f"atlas {rec.name}: simulating {sub} x {proto} ({rec.n_rows(sub)} rows) -> {db}", flush=True)
        try:
            run_sweep(entry_spec(rec, sub, proto), db, local=local, scheduler=scheduler,
                      base_dir=rec.path.parent if rec.path else None)
        except ConfigError as exc:
            raise ConfigError(f"recipe {rec.path}: substrates.{sub} x protocols.{proto}: {exc}") from None
    sweep_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    results = {}
    for proto in rec.protocols:
        say(f"atlas {rec.name}: fitting every model to the {proto} rows", flush=True)
        results[proto] = fit_protocol(rec, proto, out, n_jobs=n_jobs, progress=progress)
    fit_wall = time.perf_counter() - t1
    entries = [e for r in results.values() for e in r["entries"]]
    board = leaderboard(entries, rec.tolerance)
    refused = refused_models(rec, results, board)
    timing = {"walk_seconds": {}, "walker_steps": {}, "fit_seconds": {}, "fit_voxels": {},
              "sweep_seconds": sweep_seconds, "fit_wall_seconds": fit_wall,
              "types": {sub: e["substrate"]["type"] for sub, e in rec.substrates.items()}}
    for r in results.values():
        for sub in r["walk_seconds"]:
            timing["walk_seconds"][sub] = timing["walk_seconds"].get(sub, 0.0) + r["walk_seconds"][sub]
            timing["walker_steps"][sub] = timing["walker_steps"].get(sub, 0.0) + r["walker_steps"][sub]
        for m, sec in r["seconds"].items():
            timing["fit_seconds"][m] = timing["fit_seconds"].get(m, 0.0) + sec
            timing["fit_voxels"][m] = timing["fit_voxels"].get(m, 0) + r["voxels"][m]
    report = write_atlas_report(rec, out, entries, board, refused, timing)
    _write_json(out / "atlas.json", {"recipe": rec.name, "version": rec.version, "sha": rec.sha,
                                     "timing": timing, "refused": refused})
    say(f"atlas {rec.name}: wrote {report}", flush=True)
    return AtlasResult(rec, out, report, board, refused, timing)


def check_recipe(recipe: Recipe) -> None:
    """Parse every protocol and every row of every substrate entry before anything runs (each substrate is
    built once, and reused by the sweeps that follow while the substrate cache holds it).

    Raises
    ------
    ConfigError
        Naming the recipe entry, the table and the key.
    """
    base = recipe.path.parent if recipe.path else None
    for proto, tables in recipe.protocols.items():
        try:
            cfgmod.build_scheme(json.loads(json.dumps(tables)))
        except ConfigError as exc:
            raise ConfigError(f"recipe {recipe.path}: protocols.{proto}: {exc}") from None
    first = next(iter(recipe.protocols))
    for sub in recipe.substrates:
        try:
            _, rows = cfgmod.sweep_rows(tomllib.loads(entry_spec(recipe, sub, first)))
            for row in rows:
                cfgmod.parse_job(row["config"], base)
        except ConfigError as exc:
            raise ConfigError(f"recipe {recipe.path}: substrates.{sub}: {exc}") from None


def refused_models(recipe: Recipe, results: dict, board: dict) -> dict:
    """model -> why it has no place on the leaderboard: no protocol it applies to, or nothing to judge."""
    judged = {s.model for rows in board.values() for s in rows}
    reasons = {}
    for name in recipe.models or validation.list_models():
        if name in judged:
            continue
        why = [f"{proto}: {r['refused'][name]}" for proto, r in results.items() if name in r["refused"]]
        if len(why) == len(results):
            reasons[name] = "applies to no protocol of the recipe (" + "; ".join(dict.fromkeys(why)) + ")"
        else:
            model = validation.get_model(name)
            keys = sorted({p.truth.split(":")[-1] for p in model.parameters if p.truth})
            reasons[name] = ("no parameter with a ground truth on these substrates"
                             + (f" (it estimates {', '.join(keys)})" if keys else " (no parameter maps to one)"))
    return reasons


# ------------------------------------------------------------------ cost
def estimate_cost(recipe: Recipe, timing: dict) -> dict:
    """Cost of a recipe on this machine from a measured atlas's timing (:attr:`AtlasResult.timing`).

    Walks cost their walker-steps at the walker-steps per second measured for the same substrate type
    (the median over the measured entries for a type not measured); fits cost each model's measured seconds per
    fitted signal.

    Parameters
    ----------
    recipe : Recipe
        The recipe to estimate (e.g. the full one).
    timing : dict
        ``timing`` of a finished atlas (``atlas.json``), with the ``types`` of its substrate entries.

    Returns
    -------
    dict
        rows, walker_steps, walk_hours, fit_hours, total_hours (one process), per_type rates used.
    """
    rates = {}
    for sub, steps in timing["walker_steps"].items():
        sec = timing["walk_seconds"][sub]
        if sec > 0:
            rates.setdefault(timing.get("types", {}).get(sub, sub), []).append(steps / sec)
    rate = {k: float(np.median(v)) for k, v in rates.items()}
    fallback = float(np.median(list(rate.values()))) if rate else 1e7
    per_voxel = {m: timing["fit_seconds"][m] / max(timing["fit_voxels"][m], 1) for m in timing["fit_seconds"]}
    rows = steps_total = walk = 0.0
    fits = 0.0
    for sub in recipe.substrates:
        n = recipe.n_rows(sub) * len(recipe.protocols)
        sim = {**recipe.simulation, **recipe.substrates[sub]["simulation"]}
        ws = float(sim.get("n_walkers", 100000)) * float(sim.get("n_steps", 1000))
        rows += n
        steps_total += n * ws
        walk += n * ws / rate.get(recipe.substrates[sub]["substrate"]["type"], fallback)
        voxels = n * recipe.repeats * len(recipe.snr)
        fits += voxels * sum(per_voxel.get(m, 0.0) for m in (recipe.models or per_voxel))
    return {"rows": int(rows), "walker_steps": steps_total, "walk_hours": walk / 3600, "fit_hours": fits / 3600,
            "total_hours": (walk + fits) / 3600, "rates": rate}


# ------------------------------------------------------------------ report
def _pct(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{100 * x:+.1f} %"


def _share(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{100 * x:.0f} %"


#: what each ground-truth key (Parameter.truth) means, for the report; "cylinder:" / "sphere:" keys hold only
#: on substrates of that geometry (validation.bias.truth_of)
QUANTITY_TEXT = {"intra_fraction": "intra-axonal (intra-cellular) volume fraction",
                 "extra_fraction": "extra-cellular volume fraction",
                 "effective_radius": "effective radius (the large-radius-weighted mean the signal sees)",
                 "effective_diameter": "effective diameter", "soma_fraction": "soma volume fraction",
                 "odf_p2": "orientation order <P2(cos)> (1: parallel fibres)", "diffusivity": "intrinsic diffusivity",
                 "residence_time": "intra-cellular residence time (exchange)",
                 "gamma_alpha": "gamma shape of the radii", "gamma_beta": "gamma scale of the radii"}


def quantity_text(key: str) -> str:
    """A ground-truth key in words: "cylinder:effective_radius" -> "effective radius (...), cylinders"."""
    geometry, _, name = key.rpartition(":")
    text = QUANTITY_TEXT.get(name, name.replace("_", " "))
    return f"{text}, {geometry}s" if geometry else text


def write_atlas_report(recipe: Recipe, outdir: Path, entries: list[dict], board: dict, refused: dict,
                       timing: dict) -> Path:
    """Write ``report.md`` (and the same as ``report.html``), ``leaderboard.csv``, ``atlas_table.csv`` and the
    figures of an atlas.

    Returns
    -------
    Path
        ``report.md``.
    """
    outdir = Path(outdir)
    fig_paths = _figures(recipe, outdir, entries, board)
    tol = recipe.tolerance
    n_rows = sum(recipe.n_rows(s) for s in recipe.substrates) * len(recipe.protocols)
    lines = [f"# Validity atlas: {recipe.name} {recipe.version}", "",
             f"Recipe `{recipe.path.name if recipe.path else recipe.name}` (sha {recipe.sha}). "
             + (recipe.description + " " if recipe.description else "")
             + f"{len(recipe.substrates)} substrate families x {len(recipe.protocols)} protocols = {n_rows} rows; "
             f"SNR {', '.join(f'{s:g}' for s in recipe.snr)} with {recipe.repeats} noise realisation(s) per row "
             f"and level (the same noise for every model); tolerance {100 * tol:.0f} %.", "",
             "## Leaderboard", "",
             f"Per estimated quantity, every model that estimates it, ranked by the share of its fits within "
             f"{100 * tol:.0f} % of the ground truth (a fit ending on a parameter bound counts only where the bound is "
             "within the tolerance of the truth), over every "
             "substrate, protocol and SNR it applies to. Median bias and precision (half the interquartile range of "
             "the relative error) leave fits on a bound out; NRV is the normalised residual variance at the fit "
             "(1 for a correct model, Lampinen et al. 2020).", ""]
    if not board:
        lines += ["No fitted parameter has a ground truth on these substrates.", ""]
    for q, rows in board.items():
        snrs = sorted({s for r in rows for s in r.within_by_snr})
        lines += [f"### {q}: {quantity_text(q)}", "",
                  "| rank | model | parameter | within | " + " | ".join(f"within at SNR {s:g}" for s in snrs)
                  + " | median bias | precision | at a bound | median NRV | fits |",
                  "|---|---|---|---|" + "---|" * len(snrs) + "---|---|---|---|---|"]
        for k, r in enumerate(rows, 1):
            lines.append(f"| {k} | {r.model} | {r.parameter} | {_share(r.within)} | "
                         + " | ".join(_share(r.within_by_snr.get(s, np.nan)) for s in snrs)
                         + f" | {_pct(r.median_bias)} | {100 * r.precision:.1f} % | {_share(r.at_bound)} | "
                         f"{r.median_nrv:.2f} | {r.n_fits} |")
        lines.append("")
        if q in fig_paths["regime"]:
            for p in fig_paths["regime"][q]:
                lines += [f"![regime map {q}]({p.relative_to(outdir)})", ""]
    if fig_paths["board"] is not None:
        lines += [f"![leaderboard]({fig_paths['board'].relative_to(outdir)})", ""]
    lines += ["## Refused", "", "Models with no place on the leaderboard, and why:", ""]
    lines += [f"- **{m}**: {why}" for m, why in sorted(refused.items())] or ["- none"]
    lines += ["", "## Cost", "",
              f"Simulation: {timing['sweep_seconds']:.0f} s wall for this call (rows already in the databases are "
              f"not rerun); fits: {timing['fit_wall_seconds']:.0f} s wall. Walks, summed over rows:", "",
              "| substrate | walker-steps | walk seconds | walker-steps per second |", "|---|---|---|---|"]
    for sub in recipe.substrates:
        st, sec = timing["walker_steps"].get(sub, 0.0), timing["walk_seconds"].get(sub, 0.0)
        lines.append(f"| {sub} | {st:.3g} | {sec:.1f} | {st / sec if sec else float('nan'):.3g} |")
    lines += ["", "| model | fit seconds | fitted signals | ms per signal |", "|---|---|---|---|"]
    for m in sorted(timing["fit_seconds"], key=lambda m: -timing["fit_seconds"][m]):
        s, v = timing["fit_seconds"][m], timing["fit_voxels"][m]
        lines.append(f"| {m} | {s:.1f} | {v} | {1e3 * s / max(v, 1):.1f} |")
    lines += ["", "Every (model, parameter, substrate, protocol, SNR) cell: `atlas_table.csv`; the leaderboard: "
              "`leaderboard.csv`; every fit: `fits/<protocol>.json`; the signals: `databases/*.h5`.", ""]
    _write_tables(outdir, entries, board, tol)
    report = outdir / "report.md"
    with atomic_output(report) as tmp:
        tmp.write_text("\n".join(lines))
    with atomic_output(outdir / "report.html") as tmp:
        tmp.write_text(markdown_html(lines, title=f"Validity atlas: {recipe.name} {recipe.version}"))
    return report


def _inline(text: str) -> str:
    """Escape HTML, then the inline Markdown the report writes: **bold**, `code`, ![alt](src)."""
    text = html.escape(text, quote=False)
    text = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2" style="max-width:100%">', text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def markdown_html(lines: list[str], title: str = "report") -> str:
    """The Markdown the atlas report writes (headings, paragraphs, pipe tables, bullet lists, images, bold,
    code) as one self-contained HTML page whose figures are the same PNG files, side by side with report.md.

    Parameters
    ----------
    lines : list of str
        Markdown lines.
    title : str
        The page title.

    Returns
    -------
    str
        HTML text.
    """
    out = [f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:75em;margin:auto}table{border-collapse:collapse}"
           "td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}td:nth-child(-n+3){text-align:left}"
           "</style></head><body>"]
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                    rows.append(cells)
                i += 1
            out.append("<table>" + "".join(
                "<tr>" + "".join(f"<{'th' if k == 0 else 'td'}>{_inline(c)}</{'th' if k == 0 else 'td'}>"
                                 for c in row) + "</tr>" for k, row in enumerate(rows)) + "</table>")
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "|", "- ")):
                para.append(lines[i])
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(out + ["</body></html>"]) + "\n"


def _write_tables(outdir: Path, entries: list[dict], board: dict, tol: float) -> None:
    with atomic_output(outdir / "leaderboard.csv") as tmp:
        rows = ["quantity,rank,model,parameter,within,median_bias,precision,at_bound,median_nrv,fits"]
        for q, standings in board.items():
            rows += [f"{q},{k},{s.model},{s.parameter},{s.within:.4f},{s.median_bias:.5g},{s.precision:.5g},"
                     f"{s.at_bound:.4f},{s.median_nrv:.4g},{s.n_fits}" for k, s in enumerate(standings, 1)]
        tmp.write_text("\n".join(rows) + "\n")
    cells: dict = {}
    for e in entries:
        q = quantity_of(e)
        if q is not None:
            cells.setdefault((q, e["model"], e["parameter"], e["substrate"], e["protocol"], e["snr"]), []).append(e)
    with atomic_output(outdir / "atlas_table.csv") as tmp:
        rows = ["quantity,model,parameter,substrate,protocol,snr,within,median_bias,precision,at_bound,median_nrv,"
                "fits"]
        for key in sorted(cells, key=lambda k: tuple(str(x) for x in k)):
            s = standing(cells[key], key[0], tol)
            rows.append(",".join(str(x) for x in key) + f",{s.within:.4f},{s.median_bias:.5g},{s.precision:.5g},"
                        f"{s.at_bound:.4f},{s.median_nrv:.4g},{s.n_fits}")
        tmp.write_text("\n".join(rows) + "\n")


def _axis_values(entries: list[dict], axis: str) -> list:
    """Distinct values of a swept axis, numerically sorted where they parse as numbers with units."""
    vals = sorted({str(e["params"].get(axis)) for e in entries})

    def num(v):
        m = re.match(r"\s*([-+0-9.eE]+)", v)
        try:
            return (0, float(m.group(1))) if m else (1, v)
        except ValueError:
            return (1, v)
    return sorted(vals, key=num)


def _figures(recipe: Recipe, outdir: Path, entries: list[dict], board: dict) -> dict:
    """The leaderboard figure and the regime maps (median relative error against each entry's first axis)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figdir = outdir / "figures"
    figdir.mkdir(exist_ok=True)
    paths = {"board": None, "regime": {}}
    if board:
        qs = list(board)
        norm = matplotlib.colors.Normalize(-20, 20)
        cmap = plt.get_cmap("coolwarm")
        fig, axes = plt.subplots(len(qs), 1, figsize=(7.5, 0.6 + 0.3 * sum(len(board[q]) for q in qs) + 0.75 * len(qs)),
                                 layout="constrained", squeeze=False,
                                 height_ratios=[max(len(board[q]), 1) + 1 for q in qs])
        for ax, q in zip(axes[:, 0], qs):
            rows = board[q][::-1]
            y = np.arange(len(rows))
            within = [100 * r.within for r in rows]
            ax.barh(y, within, color=cmap(norm(100 * np.nan_to_num([r.median_bias for r in rows]))),
                    edgecolor="k", linewidth=0.4)
            for yi, w in zip(y, within):
                ax.text(w + 1, yi, f"{w:.0f} %", va="center", fontsize=7)
            ax.set_yticks(y, [f"{r.model}.{r.parameter}" for r in rows], fontsize=8)
            ax.set_xlim(0, 108)
            ax.set_title(quantity_text(q), fontsize=9, loc="left")
        axes[-1, 0].set_xlabel(f"share of fits within {100 * recipe.tolerance:.0f} % of the ground truth (%)")
        fig.colorbar(matplotlib.cm.ScalarMappable(norm, cmap), ax=axes[:, 0], shrink=0.5, extend="both",
                     label="median relative bias (%)")
        path = figdir / "leaderboard.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths["board"] = path
    top_snr = max(recipe.snr)
    for q, standings in board.items():
        models = [(s.model, s.parameter) for s in standings[:REGIME_MODELS]]
        for sub, entry in recipe.substrates.items():
            axes_names = list(entry["grid"])
            sel = [e for e in entries if e["substrate"] == sub and quantity_of(e) == q and e["snr"] == top_snr
                   and (e["model"], e["parameter"]) in models]
            if not axes_names or not sel:
                continue
            axis = axes_names[0]
            xs = _axis_values(sel, axis)
            protos = list(recipe.protocols)
            colour = {m: plt.get_cmap("tab10")(k % 10) for k, m in enumerate(models)}
            fig, axs = plt.subplots(1, len(protos), figsize=(3.4 * len(protos) + 2.2, 3.3), layout="constrained",
                                    squeeze=False, sharey=True)
            handles = {}
            for ax, proto in zip(axs[0], protos):
                ax.axhspan(-100 * recipe.tolerance, 100 * recipe.tolerance, color="0.9", zorder=0)
                ax.axhline(0, color="0.5", lw=0.8)
                for mname, pname in models:
                    y = []
                    for x in xs:
                        es = [e for e in sel if e["protocol"] == proto and e["model"] == mname
                              and e["parameter"] == pname and str(e["params"].get(axis)) == x]
                        y.append(100 * standing(es, q, recipe.tolerance).median_bias if es else np.nan)
                    if np.any(np.isfinite(y)):
                        (line,) = ax.plot(range(len(xs)), y, "o-", ms=4, color=colour[(mname, pname)])
                        handles[f"{mname}.{pname}"] = line
                ax.set_xticks(range(len(xs)), xs, fontsize=8)
                ax.set_xlim(-0.3, len(xs) - 0.7)
                ax.set_xlabel(axis.removeprefix("substrate."))
                ax.set_title(f"{proto}", fontsize=9)
            axs[0, 0].set_ylabel("median relative error (%)")
            fig.suptitle(f"{quantity_text(q)} on {sub}, SNR {top_snr:g} (grey: within "
                         f"{100 * recipe.tolerance:.0f} %)", fontsize=9)
            fig.legend(list(handles.values()), list(handles), fontsize=7, loc="outside right center")
            path = figdir / f"regime_{q.replace(':', '_')}_{sub}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            paths["regime"].setdefault(q, []).append(path)
    return paths
