"""Guards against the unit mistakes that diffusion users make most often.

b-values come in three units in the wild: s/m^2 (SI, diffwalk, dmipy, MDT),
s/mm^2 (FSL, BIDS, MRtrix, dipy) and ms/um^2 (many papers and simulators). A
factor of 10^3 or 10^6 is silent in most tools; here it is an error that says
which unit was probably meant and how to state it.
"""

from __future__ import annotations

import logging

import numpy as np

from .constants import MS_PER_UM2, S_PER_MM2

log = logging.getLogger(__name__)

#: Accepted spellings of b-value units and their factor to s/m^2.
BVALUE_UNITS = {
    "s/m^2": 1.0,
    "s/m2": 1.0,
    "si": 1.0,
    "s/mm^2": S_PER_MM2,
    "s/mm2": S_PER_MM2,
    "ms/um^2": MS_PER_UM2,
    "ms/um2": MS_PER_UM2,
    "ms/µm^2": MS_PER_UM2,
}

# Largest non-zero b below which a file is read as ms/um^2, and the range read as
# s/mm^2. Between the ranges the unit cannot be told from the numbers alone.
_MS_UM2_MAX = 20.0
_S_MM2_RANGE = (200.0, 1e5)
_SI_MIN = 1e6


#: strongest gradient any system delivers, T/m (NMR diffusion probes); above it a unit slip is the likely cause
MAX_GRADIENT = 30.0
#: largest b-value any experiment reaches, s/m^2 (10^6 s/mm^2)
MAX_BVALUE = 1e12


def bvalue_unit_factor(units: str) -> float:
    """Return the factor that converts b-values in ``units`` to s/m^2.

    Parameters
    ----------
    units : str
        One of ``"s/m^2"``, ``"s/mm^2"`` or ``"ms/um^2"`` (``^`` optional).

    Returns
    -------
    float
        Multiply by this to get s/m^2.
    """
    key = units.strip().lower().replace(" ", "")
    if key not in BVALUE_UNITS:
        raise ValueError(
            f"unknown b-value unit {units!r}; use one of 's/m^2', 's/mm^2', 'ms/um^2'"
        )
    return BVALUE_UNITS[key]


def infer_bvalue_units(bvalues: np.ndarray) -> str:
    """Infer the unit of b-values read from a file from their magnitude.

    Parameters
    ----------
    bvalues : array_like
        b-values in an unknown unit.

    Returns
    -------
    str
        ``"ms/um^2"``, ``"s/mm^2"`` or ``"s/m^2"``.

    Raises
    ------
    ValueError
        When the largest b-value falls between the ranges, where the unit is
        ambiguous; the message says how to state the unit.
    """
    b = np.asarray(bvalues, dtype=float)
    bmax = float(np.max(np.abs(b))) if b.size else 0.0
    if bmax == 0.0:
        return "s/m^2"
    if bmax <= _MS_UM2_MAX:
        unit = "ms/um^2"
    elif _S_MM2_RANGE[0] <= bmax <= _S_MM2_RANGE[1]:
        unit = "s/mm^2"
    elif bmax >= _SI_MIN:
        unit = "s/m^2"
    else:
        raise ValueError(
            f"cannot tell the unit of b-values whose largest value is {bmax:g}: it could be "
            "s/mm^2 or ms/um^2 (or s/m^2). Pass units='s/mm^2', 'ms/um^2' or 's/m^2' explicitly."
        )
    log.info("b-values with maximum %g read as %s", bmax, unit)
    return unit


def to_si_bvalues(bvalues: np.ndarray, units: str = "auto") -> np.ndarray:
    """Convert b-values to s/m^2.

    Parameters
    ----------
    bvalues : array_like
        b-values in ``units``.
    units : str, optional
        ``"auto"`` (infer from magnitude, see :func:`infer_bvalue_units`),
        ``"s/m^2"``, ``"s/mm^2"`` or ``"ms/um^2"``.

    Returns
    -------
    numpy.ndarray
        b-values in s/m^2.
    """
    b = np.asarray(bvalues, dtype=float)
    if units == "auto":
        units = infer_bvalue_units(b)
    return b * bvalue_unit_factor(units)


def check_si_bvalues(bvalues: np.ndarray, name: str = "bvalues") -> np.ndarray:
    """Check that b-values given to the public API are in s/m^2.

    Parameters
    ----------
    bvalues : array_like
        b-values that should be in s/m^2.
    name : str
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray
        The b-values as a float array.

    Raises
    ------
    ValueError
        On NaN, negative values, or magnitudes that look like s/mm^2 or ms/um^2
        (largest b below 1e4 s/m^2 = 0.01 s/mm^2) or absurdly large ones
        (above 1e12 s/m^2 = 1e6 s/mm^2).
    """
    b = np.atleast_1d(np.asarray(bvalues, dtype=float))
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(b < 0):
        raise ValueError(f"{name} must be non-negative (got min {b.min():g} s/m^2)")
    bmax = float(b.max()) if b.size else 0.0
    if 0.0 < bmax < 1e4:
        guess = "ms/um^2" if bmax <= _MS_UM2_MAX else "s/mm^2"
        raise ValueError(
            f"{name} has largest value {bmax:g}, which is not a plausible b-value in s/m^2 "
            f"(diffwalk's unit). It looks like {guess}: multiply by "
            f"{bvalue_unit_factor(guess):g} (e.g. b=1000 s/mm^2 is 1e9 s/m^2), or convert with "
            f"sequences.to_si_bvalues(b, units='{guess}')."
        )
    if bmax > MAX_BVALUE:
        raise ValueError(
            f"{name} has largest value {bmax:g} s/m^2 (= {bmax / S_PER_MM2:g} s/mm^2), far above "
            "any diffusion experiment; were the b-values converted to s/m^2 twice?"
        )
    return b


def check_seconds(value: float, name: str) -> float:
    """Check a duration given in seconds: finite, non-negative, below 10 s.

    Parameters
    ----------
    value : float
        Duration in s.
    name : str
        Argument name used in error messages.

    Returns
    -------
    float
        The value as a float.
    """
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be a finite number of seconds (got {value!r})")
    if v < 0:
        raise ValueError(f"{name} must be non-negative (got {v:g} s)")
    if v >= 10.0:
        raise ValueError(
            f"{name} = {v:g} s is longer than any diffusion encoding; times are in seconds "
            f"(e.g. 10e-3 for 10 ms)"
        )
    return v


def check_gradient_strength(g: np.ndarray, name: str = "gradient_strength") -> np.ndarray:
    """Check gradient amplitudes given in T/m.

    Parameters
    ----------
    g : array_like
        Gradient amplitudes in T/m.
    name : str
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray
        The amplitudes as a float array.
    """
    a = np.atleast_1d(np.asarray(g, dtype=float))
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(a < 0):
        raise ValueError(f"{name} must be non-negative T/m; put the sign in the direction")
    if a.size and a.max() > MAX_GRADIENT:
        raise ValueError(
            f"{name} reaches {a.max():g} T/m, above any gradient system (clinical 0.04-0.08 T/m, Connectom "
            f"0.3 T/m, preclinical 1-3 T/m, NMR diffusion probes up to ~{MAX_GRADIENT:g} T/m); diffwalk uses T/m: "
            "did you pass mT/m? (80 mT/m is 0.08)"
        )
    return a


def check_derived_bvalues(b: np.ndarray, name: str) -> np.ndarray:
    """Refuse b-values computed from gradients that no experiment reaches (a unit slip in G, dt or times).

    Parameters
    ----------
    b : numpy.ndarray
        b-values in s/m^2 derived from the waveforms.
    name : str
        What they were computed from, for the message.

    Returns
    -------
    numpy.ndarray
    """
    bmax = float(np.max(b)) if np.size(b) else 0.0
    if bmax > MAX_BVALUE:
        raise ValueError(
            f"{name} gives b up to {bmax / S_PER_MM2:.3g} s/mm^2 ({bmax:.3g} s/m^2), far above any diffusion "
            f"experiment (~{MAX_BVALUE / S_PER_MM2:g} s/mm^2): check the units: gradients in T/m (80 mT/m is "
            "0.08), times in s (10 ms is 10e-3)"
        )
    return b


def check_count(value, name: str, least: int = 1) -> int:
    """A whole number >= ``least`` (numpy integers and integral floats such as 1e5 accepted); else a clear error.

    Parameters
    ----------
    value : int or float
        The count to check.
    name : str
        Argument name for the message.
    least : int
        Smallest allowed value.

    Returns
    -------
    int
        ``value`` as a Python int.

    Raises
    ------
    ValueError
        If ``value`` is not a whole number (booleans included) or is below ``least``.
    """
    ok = not isinstance(value, (bool, np.bool_))
    if ok and isinstance(value, (int, np.integer)):
        v = int(value)
    elif ok and isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        v = int(value)
    else:
        raise ValueError(f"{name} must be a whole number >= {least}, got {value!r}")
    if v < least:
        raise ValueError(f"{name} must be a whole number >= {least}, got {value!r}")
    return v


def check_fraction(value, name: str, upper: float = 1.0) -> float:
    """A number in (0, upper] (a volume fraction, an ICVF); else a clear error naming the argument.

    Parameters
    ----------
    value : float
        The fraction to check (dimensionless).
    name : str
        Argument name for the message.
    upper : float
        Largest allowed value (dimensionless).

    Returns
    -------
    float
        ``value`` as a Python float.

    Raises
    ------
    ValueError
        If ``value`` is not a finite number in (0, ``upper``].
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, {upper:g}], got {value!r}") from None
    if not (np.isfinite(v) and 0.0 < v <= upper):
        raise ValueError(f"{name} must be a number in (0, {upper:g}], got {value!r}")
    return v
