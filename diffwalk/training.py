"""Training sets for learned estimators: a database's signals with parameter labels, as arrays (npz, zarr).

A ground-truth database is what a learned estimator of microstructure trains on: each finished row gives
the (M,) signal and the substrate's true parameters. :func:`training_set` lines them up as a (R, M)
feature matrix and a (R, K) label matrix with named columns: every numeric ground-truth value (nested
tables flattened with dots, e.g. ``volume_fractions.intra``) and every swept parameter (e.g.
``substrate.icvf``), all in SI. :func:`add_noise` draws noisy copies as the fits see them, and
:func:`write_training_set` writes the arrays (``.npz``, or a ``.zarr`` folder with the optional zarr),
under a temporary name renamed at the end.

Split by row, never by noise realisation: copies of one row in both halves leak the answer.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .database import Database, atomic_output, open_database


@dataclass(frozen=True)
class TrainingSet:
    """Signals and labels of a database's finished rows.

    Parameters
    ----------
    signals : numpy.ndarray
        (R, M) noiseless simulated signals (normalised: S/S0 of the walk).
    labels : numpy.ndarray
        (R, K) label values, SI.
    label_names : list of str
        K column names: ground-truth keys (nested ones dotted) and swept parameters.
    rows : numpy.ndarray
        (R,) the database rows they come from.
    bvalues : numpy.ndarray
        (M,) b-values, s/m^2.
    btensors : numpy.ndarray
        (M, 3, 3) b-tensors, s/m^2.
    """

    signals: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    rows: np.ndarray
    bvalues: np.ndarray
    btensors: np.ndarray

    def label(self, name: str) -> np.ndarray:
        """The values of one label.

        Parameters
        ----------
        name : str
            A label name (see ``label_names``).

        Returns
        -------
        numpy.ndarray
            (R,) values, SI.

        Raises
        ------
        KeyError
            If there is no such label (the message lists the available ones).
        """
        if name not in self.label_names:
            raise KeyError(f"no label {name!r}; available: {', '.join(self.label_names)}")
        return self.labels[:, self.label_names.index(name)]

    def split(self, test_fraction: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Indices (into this set) of a training and a held-out part, split by row.

        Parameters
        ----------
        test_fraction : float
            Share of rows held out, in (0, 1).
        seed : int
            Seed of the shuffle.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            Training and held-out indices, each sorted.
        """
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
        n = len(self.rows)
        n_test = max(1, int(round(test_fraction * n)))
        if n_test >= n:
            raise ValueError(f"{n} rows cannot be split with test_fraction={test_fraction}: none left to train")
        order = np.random.default_rng(seed).permutation(n)
        return np.sort(order[n_test:]), np.sort(order[:n_test])


def _flatten(d: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= _flatten(v, key + ".")
        elif isinstance(v, (bool, np.bool_)):
            continue
        elif isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v)):
            out[key] = float(v)
    return out


def training_set(db: Database | str | Path, labels: list[str] | None = None) -> TrainingSet:
    """The finished rows of a database as features and named labels.

    Parameters
    ----------
    db : Database or path
        A database (or its ``.h5`` path).
    labels : list of str, optional
        Label names: ground-truth keys (nested ones dotted, e.g. ``volume_fractions.intra``) or swept
        parameters (e.g. ``substrate.icvf``). Default: every numeric ground-truth value that all finished
        rows have, then every swept parameter.

    Returns
    -------
    TrainingSet

    Raises
    ------
    ValueError
        If no row is finished, or a requested label is missing from a row (naming the row and the labels
        that row has).

    Examples
    --------
    >>> ts = training_set("db.h5", labels=["volume_fractions.intra"])      # doctest: +SKIP
    >>> train, test = ts.split(0.25)                                          # doctest: +SKIP
    """
    if not isinstance(db, Database):
        db = open_database(db)
    done = np.flatnonzero(db.done)
    if done.size == 0:
        raise ValueError("the database has no finished row: finish it first (diffwalk resume DB.h5)")
    truths = [_flatten(db.ground_truth[i] or {}) for i in done]
    params = {k: np.asarray(v, float) for k, v in db.params.items()
              if np.issubdtype(np.asarray(v).dtype, np.number)}
    if labels is None:
        shared = set.intersection(*(set(t) for t in truths))
        labels = sorted(shared) + [k for k in params if k not in shared]
    cols = []
    for name in labels:
        if name in params:
            cols.append(params[name][done])
            continue
        missing = [int(i) for i, t in zip(done, truths) if name not in t]
        if missing:
            have = sorted(truths[list(done).index(missing[0])]) + list(params)
            raise ValueError(f"label {name!r} is not in row {missing[0]}'s ground truth or parameters "
                             f"({len(missing)} rows lack it); that row has: {', '.join(have)}")
        cols.append(np.array([t[name] for t in truths]))
    return TrainingSet(signals=np.asarray(db.signal[done], float),
                       labels=np.column_stack(cols) if cols else np.zeros((done.size, 0)),
                       label_names=list(labels), rows=done, bvalues=np.asarray(db.scheme.bvalues),
                       btensors=np.asarray(db.scheme.btensors))


def add_noise(signals: np.ndarray, snr: float, repeats: int = 1, seed: int = 0,
              likelihood: str = "gaussian") -> np.ndarray:
    """Noisy copies of signals as a scanner would measure them (noise sigma = 1 / snr at S0 = 1).

    Parameters
    ----------
    signals : numpy.ndarray
        (R, M) noiseless signals.
    snr : float
        Signal-to-noise ratio at b = 0.
    repeats : int
        Noise realisations per row; copies of a row are consecutive.
    seed : int
        Seed of the noise.
    likelihood : {"gaussian", "rician"}
        Gaussian noise, or the magnitude of complex Gaussian noise (Rician).

    Returns
    -------
    numpy.ndarray
        (R * repeats, M) noisy signals.
    """
    if not (np.isfinite(snr) and snr > 0):
        raise ValueError(f"snr must be a positive number, got {snr!r}")
    if likelihood not in ("gaussian", "rician"):
        raise ValueError(f"likelihood must be 'gaussian' or 'rician', got {likelihood!r}")
    rng = np.random.default_rng(seed)
    s = np.repeat(np.asarray(signals, float), int(repeats), axis=0)
    sigma = 1.0 / snr
    if likelihood == "gaussian":
        return s + sigma * rng.standard_normal(s.shape)
    return np.hypot(s + sigma * rng.standard_normal(s.shape), sigma * rng.standard_normal(s.shape))


def write_training_set(ts: TrainingSet, path: str | Path) -> Path:
    """Write a training set as ``.npz`` or as a ``.zarr`` folder (needs zarr: ``pip install zarr``).

    Arrays: ``signals`` (R, M), ``labels`` (R, K), ``rows``, ``bvalues`` (s/m^2), ``btensors``; the label
    names are ``label_names`` (npz: an array of strings; zarr: a group attribute as well).

    Parameters
    ----------
    ts : TrainingSet
    path : str or Path
        Ending in ``.npz`` or ``.zarr``.

    Returns
    -------
    Path
        The written file or folder.
    """
    path = Path(path)
    arrays = {"signals": ts.signals, "labels": ts.labels, "rows": ts.rows, "bvalues": ts.bvalues,
              "btensors": ts.btensors}
    if path.suffix == ".npz":
        with atomic_output(path) as tmp:
            np.savez(tmp, label_names=np.array(ts.label_names, dtype=str), **arrays)
        return path
    if path.suffix != ".zarr":
        raise ValueError(f"{path}: a training set is written as .npz or .zarr")
    try:
        import zarr
    except ImportError as exc:
        raise ImportError("writing .zarr needs zarr: pip install zarr (or write .npz)") from exc
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        zarr.save_group(str(tmp), **arrays)
        group = zarr.open_group(str(tmp), mode="a")
        group.attrs["label_names"] = list(ts.label_names)
        group.attrs["units"] = "SI (b-values s/m^2; labels as in the ground truth)"
        (tmp / "label_names.json").write_text(json.dumps(list(ts.label_names)))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
