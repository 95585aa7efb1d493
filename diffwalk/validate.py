"""From databases to validation: fit the analytic models to finished rows, bias tables and reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import validation

from .database import Database, open_database


def database_signals(db: Database | str | Path) -> validation.SignalSet:
    """The finished rows of a database as a :class:`validation.SignalSet` (row numbers kept).

    Parameters
    ----------
    db : Database, str or Path
        A database or its ``.h5`` path.

    Returns
    -------
    validation.SignalSet
    """
    db = open_database(db) if isinstance(db, (str, Path)) else db
    rows = np.nonzero(db.done)[0]
    if rows.size == 0:
        raise ValueError(f"{db.path}: the database has no finished rows yet; run or resume its sweep first")
    return validation.SignalSet(db.scheme, db.signal[rows], db.stderr[rows], [db.ground_truth[i] for i in rows],
                                rows)


def bias_of_database(db: Database, models=None, **kwargs) -> list[dict]:
    """Fit models to the finished rows of a database and tabulate bias against their ground truth.

    Parameters
    ----------
    db : Database
    models : list of str, optional
        Model names (default: every applicable model).
    **kwargs
        Passed to :func:`validation.bias_table` (snr, repeats, likelihood, seed, n_jobs).

    Returns
    -------
    list of dict
        One entry per (row, model, parameter), every noise realisation in its ``estimates``; ``row`` is the
        database row.
    """
    data = database_signals(db)
    table = validation.bias_table(data.scheme, data.signals, data.ground_truths, data.stderr, models=models,
                                  **kwargs)
    for entry in table:
        entry["row"] = int(data.rows[entry["row"]])
    return table


def database_description(db: Database) -> str:
    """One sentence on where a report's signals come from: the database, its finished rows, when it was written
    and how long its rows took to simulate.

    Parameters
    ----------
    db : Database

    Returns
    -------
    str
    """
    w = db.columns["wall_time"][db.done]
    created = str(db.attrs.get("created", "an unknown date")).replace("T", " ")
    return (f"Signals from `{Path(db.path).name}`: {int(db.done.sum())} of {db.n_rows} rows finished, written "
            f"{created}, simulated in {float(w.sum()):.1f} s (sum over rows).")


def report_database(db: Database | str | Path, outdir: str | Path, **kwargs) -> Path:
    """Write the validation report (Markdown + PNG) of a database's finished rows.

    The report opens with the verdict (:data:`validation.report.VERDICT_RULES`: median bias, spread and fits on
    a parameter bound all count) and says which database, written when, it rests on.

    Parameters
    ----------
    db : Database, str or Path
    outdir : str or Path
        Folder for ``report.md`` and the figures.
    **kwargs
        Passed to :func:`validation.make_report` (models, snr, repeats, nrv, n_jobs, ...).

    Returns
    -------
    Path
        The Markdown report.
    """
    db = open_database(db) if isinstance(db, (str, Path)) else db
    kwargs.setdefault("description", database_description(db))
    return validation.make_report(database_signals(db), outdir, **kwargs)
