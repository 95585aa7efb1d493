"""Ground-truth signal databases in HDF5: one file, every signal with the truth that produced it.

Layout (all physical values SI, each dataset with a ``units`` attribute)::

    /                  attrs: format, format_version, convention, diffwalk_version, random_streams (the walker's
                              random-stream version: rows agree bit for bit only within one), packing_version (the fibre packer's: generated
                              substrates per seed agree only within one), created, spec (TOML text),
                              n_rows, param_names (JSON), config_dir (the folder relative file paths of the
                              spec are read from)
    /scheme/           gradients (M, T, 3) T/m, btensors (M, 3, 3) s/m^2, bvalues (M,) s/m^2 (dimension scale),
                       info arrays (delta, Delta, ...); attrs dt (s), gamma (rad/s/T)
    /rows/             done (R,) 1 where the row is finished; row (R,) index (dimension scale)
                       signal, stderr (R, M) float32, chunked + gzip
                       compartments/<name>/signal, stderr (R, M), count (R,)
                       groups/<name>/signal, stderr, count: the same per finer group (bundles), where present
                       params/<name> (R,) float64 SI (NaN where not numeric), params_text/<name> (R,) raw value
                       seed, n_walkers, n_steps (R,) int64; dt, step_length, wall_time (R,) float64; escapes (R,)
                       ground_truth, provenance (R,) JSON text

Crash safety: a running sweep writes each finished row to ``DB.h5.parts/row_NNNNNN.npz``
(:class:`PartsFolder` owns that naming)
(written to a temporary name, then renamed: a row file is complete or absent), and
rebuilds ``DB.h5`` by writing ``DB.h5.tmp`` and renaming it over the old file. A
kill at any moment (SIGKILL included) therefore loses only the rows in flight,
and ``DB.h5`` is always the previous or the next complete file, never a torn one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

import sequences
from walker import SimulationResult, package_version
from substrates import PACKING_VERSION
from walker.rng import STREAM_VERSION

FORMAT = "diffwalk-database"
FORMAT_VERSION = 1
CONVENTION = "SI: m, s, T/m, rad/s/T, s/m^2, m^2/s; signals normalised to b=0 of a free spin"


def spec_digest(spec_text: str) -> str:
    """SHA-256 of a spec's text: stored beside it, so that a spec edited inside the file is noticed."""
    return hashlib.sha256(spec_text.encode()).hexdigest()


class DatabaseError(ValueError):
    """The file is not a readable diffwalk database."""


def _json(obj) -> str:
    def default(o):
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, (np.floating, np.integer)):
            return o.item()
        return str(o)
    return json.dumps(obj, default=default, sort_keys=True)


def row_from_result(res: SimulationResult, params_text: dict, params_si: dict) -> dict:
    """The arrays one database row holds, from a simulation result."""
    p = res.provenance
    row = {"signal": res.signal.astype(np.float32), "stderr": res.stderr.astype(np.float32),
           "seed": np.int64(p["seed"]), "n_walkers": np.int64(p["n_walkers"]), "n_steps": np.int64(p["n_steps"]),
           "dt": np.float64(p["dt"]), "step_length": np.float64(p["step_length"]),
           "wall_time": np.float64(p["wall_time_s"]), "escapes": np.int64(res.escapes),
           "ground_truth": _json(res.ground_truth), "provenance": _json({**p, "host": socket.gethostname()}),
           "params_text": _json(params_text), "params_si": _json(params_si)}
    for kind, sigs, ses, counts in (("compartment", res.compartment_signals, res.compartment_stderr,
                                     res.compartment_counts),
                                    ("group", res.group_signals, res.group_stderr, res.group_counts)):
        for name, sig in sigs.items():
            row[f"{kind}:{name}:signal"] = sig.astype(np.float32)
            row[f"{kind}:{name}:stderr"] = ses[name].astype(np.float32)
            row[f"{kind}:{name}:count"] = np.int64(counts[name])
    return row


#: the signal sets a row may hold beside the total: row-key prefix -> HDF5 group under /rows (compartments by
#: where walkers start; groups such as the bundles of a crossing, walker.SimulationResult.group_signals)
SIGNAL_SETS = {"compartment": "compartments", "group": "groups"}


def _set_names(rows: dict, kind: str) -> list[str]:
    """Names of the ``kind`` signal sets any of ``rows`` holds (keys ``kind:NAME:signal``)."""
    return sorted({k[len(kind) + 1:].rsplit(":", 1)[0] for r in rows.values() for k in r
                   if k.startswith(kind + ":")})


class PartsFolder:
    """Finished rows waiting beside a database, one complete file each (``DB.h5.parts/row_NNNNNN.npz``).

    The only place that knows how part files are named: each is written under
    a temporary name and renamed, so a part is complete or absent.

    Parameters
    ----------
    db_path : str or Path
        The database the rows belong to.
    """

    def __init__(self, db_path: str | Path):
        self.path = Path(str(db_path) + ".parts")

    def _file(self, index: int) -> Path:
        return self.path / f"row_{index:06d}.npz"

    def write(self, index: int, row: dict) -> None:
        """Atomically store one finished row.

        Parameters
        ----------
        index : int
            Row index in the sweep.
        row : dict
            Arrays of the row (signal, stderr, columns, JSON texts), as the
            database stores them.
        """
        self.path.mkdir(exist_ok=True)
        tmp = self.path / f".row_{index:06d}.tmp.npz"
        np.savez(tmp, **{k: np.asarray(v) for k, v in row.items()})
        os.replace(tmp, self._file(index))

    def read(self) -> dict[int, dict]:
        """Finished rows in the folder (complete files only), by row index.

        Returns
        -------
        dict of int to dict
            Row index -> arrays of the row, as given to :meth:`write`.
        """
        out = {}
        if self.path.is_dir():
            for f in sorted(self.path.glob("row_*.npz")):
                with np.load(f, allow_pickle=False) as z:
                    out[int(f.stem[4:])] = {k: (z[k].item() if z[k].ndim == 0 and z[k].dtype.kind == "U" else z[k])
                                            for k in z.files}
        return out

    def count(self) -> int:
        """Number of complete row files waiting in the folder.

        Returns
        -------
        int
            Complete part files (0 when the folder does not exist).
        """
        return len(list(self.path.glob("row_*.npz"))) if self.path.is_dir() else 0

    def remove(self, indices) -> None:
        """Delete the parts of these rows (after they were folded into the database); drop an empty folder.

        Parameters
        ----------
        indices : iterable of int
            Row indices whose part files are deleted (missing ones are ignored).
        """
        for i in indices:
            self._file(i).unlink(missing_ok=True)
        if self.path.is_dir() and not any(self.path.glob("row_*.npz")):
            shutil.rmtree(self.path, ignore_errors=True)


def create(db_path: str | Path, scheme: sequences.Scheme, n_rows: int, param_names: list[str], spec_text: str,
           rows: dict[int, dict] | None = None, config_dir: str | None = None) -> None:
    """Write a complete database file (atomically) holding ``rows`` of ``n_rows``.

    ``config_dir`` (stored as the ``config_dir`` attribute) is the absolute folder the spec's relative file paths
    are read from, so that ``resume`` finds the same files."""
    db_path = Path(db_path)
    tmp = db_path.with_name(db_path.name + ".tmp")
    rows = rows or {}
    M = len(scheme)
    with h5py.File(tmp, "w") as f:
        f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, convention=CONVENTION,
                       diffwalk_version=package_version(), random_streams=STREAM_VERSION,
                       packing_version=PACKING_VERSION,
                       spec_sha256=spec_digest(spec_text),
                       created=time.strftime("%Y-%m-%dT%H:%M:%S"),
                       spec=spec_text, n_rows=n_rows, param_names=json.dumps(param_names))
        if config_dir is not None:
            f.attrs["config_dir"] = str(config_dir)
        sg = f.create_group("scheme")
        sg.attrs.update(dt=scheme.dt, gamma=scheme.gamma, dt_units="s", gamma_units="rad/s/T")
        sg.create_dataset("gradients", data=scheme.gradients, compression="gzip").attrs["units"] = "T/m"
        sg.create_dataset("btensors", data=scheme.btensors).attrs["units"] = "s/m^2"
        bv = sg.create_dataset("bvalues", data=scheme.bvalues)
        bv.attrs["units"] = "s/m^2"
        bv.make_scale("bvalue")
        for key, val in scheme.info.items():
            if val.dtype.kind == "U":
                sg.create_dataset(f"info/{key}", data=val.astype("S"))
            else:
                sg.create_dataset(f"info/{key}", data=val)
        sg.create_dataset("refocusing", data=scheme.refocusing).attrs["units"] = "s"
        rg = f.create_group("rows")
        idx = rg.create_dataset("row", data=np.arange(n_rows))
        idx.make_scale("row")
        done = np.zeros(n_rows, dtype=np.uint8)
        done[list(rows)] = 1
        rg.create_dataset("done", data=done)
        chunk = (min(max(n_rows, 1), 64), M)

        def matrix(name, key, units):
            data = np.full((n_rows, M), np.nan, dtype=np.float32)
            for i, r in rows.items():
                if key in r:
                    data[i] = r[key]
            ds = rg.create_dataset(name, data=data, chunks=chunk if n_rows else None, compression="gzip")
            ds.attrs["units"] = units
            ds.dims[0].attach_scale(idx)
            ds.dims[1].attach_scale(bv)

        matrix("signal", "signal", "1 (S/S0)")
        matrix("stderr", "stderr", "1 (S/S0)")
        for kind, folder in SIGNAL_SETS.items():
            for c in _set_names(rows, kind):
                matrix(f"{folder}/{c}/signal", f"{kind}:{c}:signal", "1 (S/S0)")
                matrix(f"{folder}/{c}/stderr", f"{kind}:{c}:stderr", "1 (S/S0)")
                rg.create_dataset(f"{folder}/{c}/count", data=_column(rows, n_rows, f"{kind}:{c}:count",
                                                                       np.int64, 0))
        for key, dtype, fill, units in (("seed", np.int64, -1, None), ("n_walkers", np.int64, 0, None),
                                        ("n_steps", np.int64, 0, None), ("escapes", np.int64, -1, None),
                                        ("dt", np.float64, np.nan, "s"), ("step_length", np.float64, np.nan, "m"),
                                        ("wall_time", np.float64, np.nan, "s")):
            ds = rg.create_dataset(key, data=_column(rows, n_rows, key, dtype, fill))
            if units:
                ds.attrs["units"] = units
        text = h5py.string_dtype()
        for key in ("ground_truth", "provenance"):
            rg.create_dataset(key, data=[str(rows[i][key]) if i in rows else "" for i in range(n_rows)], dtype=text)
        for name in param_names:
            si = [json.loads(str(rows[i]["params_si"])).get(name) if i in rows else None for i in range(n_rows)]
            raw = [json.loads(str(rows[i]["params_text"])).get(name, "") if i in rows else "" for i in range(n_rows)]
            rg.create_dataset(f"params/{name}", data=np.array([np.nan if v is None else v for v in si], float))
            rg.create_dataset(f"params_text/{name}", data=[str(v) for v in raw], dtype=text)
    os.replace(tmp, db_path)


def rows_from_file(db_path: str | Path) -> dict[int, dict]:
    """The finished rows of an existing database, as row dicts (for rewriting it with more rows)."""
    rows: dict[int, dict] = {}
    with h5py.File(db_path, "r") as f:
        rg = f["rows"]
        names = json.loads(f.attrs["param_names"])
        done = np.nonzero(rg["done"][()])[0]
        gt, prov = rg["ground_truth"].asstr()[()], rg["provenance"].asstr()[()]
        cols = {k: rg[k][()] for k in ("seed", "n_walkers", "n_steps", "dt", "step_length", "wall_time", "escapes")}
        sig, se = rg["signal"][()], rg["stderr"][()]
        psi = {n: rg[f"params/{n}"][()] for n in names}
        ptx = {n: rg[f"params_text/{n}"].asstr()[()] for n in names}
        cdat = {(kind, c): {k: rg[f"{folder}/{c}/{k}"][()] for k in ("signal", "stderr", "count")}
                for kind, folder in SIGNAL_SETS.items() for c in rg.get(folder, {})}
        for i in done:
            row = {"signal": sig[i], "stderr": se[i], "ground_truth": gt[i], "provenance": prov[i],
                   **{k: v[i] for k, v in cols.items()},
                   "params_si": _json({n: (None if np.isnan(psi[n][i]) else float(psi[n][i])) for n in names}),
                   "params_text": _json({n: ptx[n][i] for n in names})}
            for (kind, c), d in cdat.items():
                row[f"{kind}:{c}:signal"] = d["signal"][i]
                row[f"{kind}:{c}:stderr"] = d["stderr"][i]
                row[f"{kind}:{c}:count"] = d["count"][i]
            rows[int(i)] = row
    return rows


def _column(rows, n, key, dtype, fill):
    out = np.full(n, fill, dtype=dtype)
    for i, r in rows.items():
        if key in r:
            out[i] = r[key]
    return out


@dataclass
class Database:
    """A database read into memory (numpy arrays), with selection by parameter values.

    Made by :func:`open_database`; the fields are also its attributes.

    Parameters
    ----------
    path : Path
        The ``.h5`` file it was read from.
    scheme : sequences.Scheme
        The one scheme of every row (SI).
    signal, stderr : numpy.ndarray
        (R, M) normalised signals and Monte Carlo errors (dimensionless; NaN
        rows are not finished).
    done : numpy.ndarray
        (R,) bool: which rows are finished.
    params : dict
        Swept parameter name (``"substrate.radius"``, ...) -> (R,) SI values
        (m, s, m^2/s, s/m^2, m/s; NaN where not numeric).
    params_text : dict
        name -> (R,) values as written in the spec.
    compartments : dict
        name -> {"signal": (R, M), "stderr": (R, M), "count": (R,)}.
    groups : dict
        The same for finer groups where the substrate has them (each bundle of a crossing:
        "intra.bundle_0", ...; ``walker.SimulationResult.group_signals``).
    columns : dict
        seed, n_walkers, n_steps, dt (s), step_length (m), wall_time (s),
        escapes -> (R,).
    ground_truth, provenance : list of dict
        One per row (SI), as in :class:`walker.SimulationResult`.
    attrs : dict
        File attributes (format, version, spec, ...).
    """

    path: Path
    scheme: sequences.Scheme
    signal: np.ndarray
    stderr: np.ndarray
    done: np.ndarray
    params: dict
    params_text: dict
    compartments: dict
    columns: dict
    ground_truth: list
    provenance: list
    attrs: dict
    groups: dict = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        """Rows in the sweep (finished or not)."""
        return len(self.done)

    def select(self, **criteria) -> np.ndarray:
        """Indices of finished rows whose parameters equal the given values (SI, or text as in the spec).

        A selection that matches no finished row is an error that lists the values each named parameter
        has (a radius in um where the database holds m selects nothing, silently, otherwise).

        Example: ``db.select(**{"substrate.radius": 3e-6, "seed": 0})``.

        Parameters
        ----------
        **criteria
            Parameter name -> value: a number in SI units (m, s, m^2/s,
            s/m^2, m/s; compared with a relative tolerance of 1e-9), a text as
            written in the spec, or ``seed`` -> int.

        Returns
        -------
        numpy.ndarray
            Indices (int) of the matching finished rows, in increasing order.

        Raises
        ------
        KeyError
            If a name is not a parameter of the database.
        ValueError
            If no finished row matches (the message lists the values present).
        """
        mask = self.done.copy()
        for name, value in criteria.items():
            if name == "seed":
                mask &= self.columns["seed"] == int(value)
            elif name in self.params:
                if isinstance(value, str):
                    mask &= self.params_text[name] == value
                else:
                    mask &= np.isclose(self.params[name], float(value), rtol=1e-9, atol=0)
            else:
                raise KeyError(f"no parameter {name!r}; this database has {sorted(self.params) + ['seed']}")
        if criteria and not mask.any():
            have = []
            for name in criteria:
                col = self.columns["seed"] if name == "seed" else self.params[name]
                vals = np.unique(col[self.done])
                shown = ", ".join(f"{x:g}" for x in vals[:12]) + (" ..." if vals.size > 12 else "")
                if name != "seed" and np.all(np.isnan(vals)):
                    shown = ", ".join(sorted(set(self.params_text[name][self.done].tolist())))
                have.append(f"{name}: {shown or '(no finished rows)'}")
            raise ValueError(f"no finished row has {criteria}; the finished rows have " + "; ".join(have)
                             + " (SI units: m, s, m^2/s, s/m^2)")
        return np.nonzero(mask)[0]

    @property
    def pending_parts(self) -> int:
        """Finished rows waiting in the parts folder (a killed sweep's rows not yet folded into the file)."""
        return PartsFolder(self.path).count()

    def summary(self) -> str:
        """What ``diffwalk info`` prints.

        Returns
        -------
        str
            File, format and version; finished rows; scheme; parameters and
            compartments; walkers and wall time (s) per row.
        """
        a = self.attrs
        parts = self.pending_parts
        lines = [f"{self.path}: {a.get('format')} v{a.get('format_version')} (diffwalk {a.get('diffwalk_version')}, "
                 f"created {a.get('created')})",
                 f"rows: {int(self.done.sum()) + parts} of {self.n_rows} finished"
                 + (f" ({parts} of them in {PartsFolder(self.path).path.name}, folded into the file by the next "
                    "`diffwalk resume`)" if parts else "") + "; escapes: "
                 f"{int(self.columns['escapes'][self.done].sum()) if self.done.any() else 0}",
                 f"scheme: {self.scheme!r}",
                 f"parameters: {', '.join(self.params) or '(none)'}; compartments: "
                 f"{', '.join(self.compartments) or '(none)'}"]
        if self.done.any():
            w = self.columns["wall_time"][self.done]
            lines.append(f"walkers per row: {int(self.columns['n_walkers'][self.done][0])}, wall time per row "
                         f"{w.mean():.2f} s (total {w.sum():.1f} s)")
        return "\n".join(lines)


def open_database(path: str | Path) -> Database:
    """Read a diffwalk database, with a clear error for foreign or damaged files.

    Parameters
    ----------
    path : str or Path
        The ``.h5`` file.

    Returns
    -------
    Database
        Every row in memory, values in SI units.

    Raises
    ------
    DatabaseError
        If the file is missing, not HDF5, not a diffwalk database, from a
        newer format, or damaged.

    Examples
    --------
    Run a tiny sweep (two radii, two seeds) into a temporary file and read it:

    >>> import os, tempfile, diffwalk
    >>> spec = '''
    ... [substrate]
    ... type = "cylinder"
    ... radius = "5 um"
    ...
    ... [[scheme]]
    ... type = "pgse"
    ... delta = "10 ms"
    ... Delta = "30 ms"
    ... bvalues = "0 1000 s/mm^2"
    ... directions = 3
    ...
    ... [simulation]
    ... n_walkers = 1000
    ... n_steps = 1000
    ... diffusivity = "2 um^2/ms"
    ...
    ... [sweep]
    ... seeds = [0, 1]
    ...
    ... [sweep.grid]
    ... "substrate.radius" = ["5 um", "8 um"]
    ... '''
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = diffwalk.run_sweep(spec, os.path.join(tmp.name, "cylinders.h5"))
    >>> db = diffwalk.open_database(path)
    >>> db.n_rows, db.signal.shape
    (4, (4, 4))
    >>> db.params["substrate.radius"]
    array([5.e-06, 5.e-06, 8.e-06, 8.e-06])
    >>> db.select(**{"substrate.radius": 8e-6, "seed": 1})
    array([3])
    >>> tmp.cleanup()
    """
    p = Path(path)
    if not p.exists():
        raise DatabaseError(f"{p}: no such file")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise DatabaseError(f"{p}: not a readable HDF5 file (truncated or damaged?): {exc}") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise DatabaseError(f"{p}: an HDF5 file, but not a diffwalk database (no format='{FORMAT}' attribute)")
        if int(f.attrs.get("format_version", 0)) > FORMAT_VERSION:
            raise DatabaseError(f"{p}: database format v{f.attrs['format_version']} is newer than this diffwalk "
                                f"reads (v{FORMAT_VERSION}); upgrade diffwalk")
        try:
            sg, rg = f["scheme"], f["rows"]
            info = {k: (v[()].astype(str) if v.dtype.kind == "S" else v[()]) for k, v in sg["info"].items()}
            refocusing = sg["refocusing"][()] if "refocusing" in sg else None  # files before it: spin echoes
            scheme = sequences.Scheme(sg["gradients"][()], float(sg.attrs["dt"]), float(sg.attrs["gamma"]), info,
                                      refocusing=refocusing)
            names = json.loads(f.attrs["param_names"])
            comps, groups = ({c: {k: rg[f"{folder}/{c}/{k}"][()] for k in ("signal", "stderr", "count")}
                              for c in rg.get(folder, {})} for folder in SIGNAL_SETS.values())
            db = Database(
                path=p, scheme=scheme, signal=rg["signal"][()], stderr=rg["stderr"][()],
                done=rg["done"][()].astype(bool),
                params={n: rg[f"params/{n}"][()] for n in names},
                params_text={n: np.array(rg[f"params_text/{n}"].asstr()[()]) for n in names},
                compartments=comps, groups=groups,
                columns={k: rg[k][()] for k in ("seed", "n_walkers", "n_steps", "dt", "step_length", "wall_time",
                                                "escapes")},
                ground_truth=[json.loads(s) if s else None for s in rg["ground_truth"].asstr()[()]],
                provenance=[json.loads(s) if s else None for s in rg["provenance"].asstr()[()]],
                attrs={k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()})
        except (KeyError, ValueError, OSError) as exc:
            raise DatabaseError(f"{p}: diffwalk database is incomplete or damaged ({exc})") from None
    return db


@contextlib.contextmanager
def atomic_output(path: str | Path):
    """Yield a temporary path beside ``path`` (same suffixes); rename it over ``path`` only when the block
    succeeds, so no reader ever sees half a file and a failed export leaves nothing behind."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def export_npz(db: Database, path: str | Path) -> Path:
    """Signals, errors, b-values, b-tensors and parameters in one ``.npz`` (SI), written atomically."""
    path = Path(path)
    with atomic_output(path) as tmp:
        np.savez(tmp, signal=db.signal, stderr=db.stderr, done=db.done, bvalues=db.scheme.bvalues,
                 btensors=db.scheme.btensors, **{f"param:{k}": v for k, v in db.params.items()},
                 **{k: v for k, v in db.columns.items()})
    return path


def export_nifti(db: Database, stem: str | Path, voxel_size: float = 1.0) -> list[Path]:
    """Rows as voxels of a 4-D NIfTI (R x 1 x 1 x M) with a JSON sidecar, and FSL bval/bvec for linear encoding.

    The sidecar holds every measurement's b-tensor (s/mm^2), b_delta and echo time, so protocols FSL files
    cannot describe (spherical, planar or free-waveform encoding) lose nothing; bval/bvec are written only when
    every measurement is a linear encoding (the sidecar says why otherwise). The affine has a negative
    determinant (diag(-1, 1, 1) x voxel size) so that the bvecs equal the substrate-frame directions for FSL,
    MRtrix and dipy alike. Every file is written under a temporary name and renamed.
    Needs nibabel (``pip install 'diffwalk[nifti]'``).
    """
    try:
        import nibabel as nib
    except ImportError as exc:
        raise ImportError("NIfTI export needs nibabel: pip install 'diffwalk[nifti]'") from exc
    stem = Path(stem)
    scheme = db.scheme
    b = scheme.bvalues
    nonlinear = int(np.sum((b > 0) & (np.abs(scheme.b_delta - 1.0) > 1e-6)))
    data = np.nan_to_num(db.signal, nan=0.0).astype(np.float32)[:, None, None, :]
    affine = np.diag([-voxel_size, voxel_size, voxel_size, 1.0])
    nii, side = stem.with_suffix(".nii.gz"), stem.with_suffix(".json")
    sidecar = {"rows": db.n_rows, "params": {k: v.tolist() for k, v in db.params.items()},
               "convention": CONVENTION, "source": str(db.path),
               "btensors_s_per_mm2": (scheme.btensors / 1e6).tolist(), "b_delta": scheme.b_delta.tolist(),
               "echo_time_s": scheme.echo_time.tolist()}
    written = [nii, side]
    with atomic_output(nii) as tmp_nii, atomic_output(side) as tmp_side:
        nib.save(nib.Nifti1Image(data, affine), tmp_nii)
        if nonlinear:
            sidecar["bval_bvec"] = (f"not written: {nonlinear} measurement(s) are not linear encodings, which FSL "
                                    "files cannot describe; the b-tensors above hold every measurement")
        else:
            bval, bvec = stem.with_suffix(".bval"), stem.with_suffix(".bvec")
            with atomic_output(bval) as tb, atomic_output(bvec) as tv:
                sequences.write_fsl(scheme, tb, tv)
            written += [bval, bvec]
        tmp_side.write_text(json.dumps(sidecar, indent=1))
    return written
