"""Checks of the arguments of validation's public entry points.

A wrong type, shape or value is refused where it enters, with a message that
names the argument and how to fix it, instead of a library error from deep
inside a fit (or, worse, a fit that reports success on nonsense).
"""

from __future__ import annotations

import math
from numbers import Real

from sequences import check_count

from .base import Model
from .registry import get_model


def checked_model(model) -> Model:
    """The :class:`Model` that ``model`` names or is; TypeError for anything else.

    Parameters
    ----------
    model : Model or str
        A model or its name (see :func:`validation.list_models`).

    Returns
    -------
    Model
        The model.

    Raises
    ------
    KeyError
        If no model has that name (the message lists the names).
    TypeError
        If ``model`` is neither a name nor a Model.
    """
    if isinstance(model, str):
        return get_model(model)
    if not isinstance(model, Model):
        raise TypeError(f"model must be a model name (see validation.list_models()) or a validation.Model, "
                        f"not {type(model).__name__}")
    return model


def checked_positive(value, name: str, what: str) -> float:
    """``value`` as a float if it is a finite number > 0; ValueError (TypeError for a non-number) naming ``name``.

    Parameters
    ----------
    value : float
        The argument to check.
    name : str
        The argument's name, for the message.
    what : str
        What the argument is and what a good value looks like, for the message.

    Returns
    -------
    float
        ``value``.

    Raises
    ------
    TypeError
        If ``value`` is not a real number (booleans included).
    ValueError
        If it is not finite or not > 0.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number ({what}), not {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} = {value!r}: expected a finite number > 0 ({what})")
    return float(value)


def checked_n_jobs(n_jobs) -> int | None:
    """``n_jobs`` if it is None, -1 (all cores) or a whole number >= 1; ValueError naming it otherwise.

    Parameters
    ----------
    n_jobs : int or None
        Worker processes.

    Returns
    -------
    int or None
        ``n_jobs`` (a Python int, or None).

    Raises
    ------
    ValueError
        If ``n_jobs`` is 0, below -1 or not a whole number.
    """
    if n_jobs is None:
        return None
    try:
        return -1 if check_count(n_jobs, "n_jobs", least=-1) == -1 else check_count(n_jobs, "n_jobs", least=1)
    except ValueError:
        raise ValueError(f"n_jobs = {n_jobs!r}: expected None or -1 (all cores), or a whole number of worker "
                         "processes >= 1") from None
