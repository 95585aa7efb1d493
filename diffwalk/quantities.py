"""Unit-bearing values in configuration files ("40 ms", "2 um^2/ms", "0 1000 2000 s/mm^2") -> SI.

Every dimensional config field states its dimension; a bare number is refused
(it is the commonest unit mistake in simulator configs), and so is a unit of
the wrong dimension. The message names the field, the value and the units it
accepts.
"""

from __future__ import annotations

import re

import numpy as np

#: dimension -> {unit spelling: factor to SI}
UNITS: dict[str, dict[str, float]] = {
    "time": {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6},
    "length": {"m": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6, "nm": 1e-9},
    "diffusivity": {"m^2/s": 1.0, "mm^2/s": 1e-6, "um^2/ms": 1e-9, "µm^2/ms": 1e-9},
    "bvalue": {"s/m^2": 1.0, "s/mm^2": 1e6, "ms/um^2": 1e9, "ms/µm^2": 1e9},
    "gradient": {"T/m": 1.0, "mT/m": 1e-3},
    "frequency": {"Hz": 1.0, "kHz": 1e3},
    "permeability": {"m/s": 1.0, "um/ms": 1e-3, "µm/ms": 1e-3, "um/s": 1e-6},
    "relaxivity": {"m/s": 1.0, "um/ms": 1e-3, "µm/ms": 1e-3, "um/s": 1e-6, "µm/s": 1e-6},
    "susceptibility": {"SI": 1.0, "ppm": 1e-6, "ppb": 1e-9},
    "magnetic_field": {"T": 1.0, "mT": 1e-3},
}
SI_UNIT = {"time": "s", "length": "m", "diffusivity": "m^2/s", "bvalue": "s/m^2", "gradient": "T/m",
           "frequency": "Hz", "permeability": "m/s", "relaxivity": "m/s", "susceptibility": "SI",
           "magnetic_field": "T"}

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong unit or impossible."""


def parse_quantity(value, dimension: str, field: str, many: bool = False):
    """Parse "number unit" (or "n1 n2 ... unit", or a list of such strings) into SI.

    Parameters
    ----------
    value : str or list
        The config value.
    dimension : str
        One of ``UNITS``.
    field : str
        Dotted field name for messages.
    many : bool
        Accept several numbers (returns an array).

    Returns
    -------
    float or numpy.ndarray
        Value(s) in SI units.
    """
    accepted = ", ".join(UNITS[dimension])
    if isinstance(value, list):
        if not many:
            raise ConfigError(f"{field}: expected one value with a unit, got a list {value!r}")
        out = [parse_quantity(v, dimension, field) for v in value]
        return np.array(out, dtype=float)
    if isinstance(value, bool) or not isinstance(value, str):
        raise ConfigError(f"{field} = {value!r}: give a unit, e.g. '{_example(dimension)}' (accepted: {accepted})")
    text = value.strip().replace(",", " ")
    if re.fullmatch(rf"(?:{_NUM}\s*)+", text):
        raise ConfigError(f"{field} = {value!r}: expected 'number unit', but the number has no unit; write it "
                          "with one, e.g. "
                          f"'{text} {SI_UNIT[dimension]}' or '{_example(dimension)}' (accepted: {accepted})")
    m = re.fullmatch(rf"((?:{_NUM}\s*)+)\s*([^\d\s][^\s]*)", text)
    if not m:
        raise ConfigError(f"{field} = {value!r}: expected 'number unit', e.g. '{_example(dimension)}'")
    numbers = [float(x) for x in m.group(1).split()]
    unit = m.group(2)
    if unit not in UNITS[dimension]:
        other = next((d for d, u in UNITS.items() if unit in u), None)
        hint = f" ('{unit}' is a unit of {other})" if other else ""
        raise ConfigError(f"{field} = {value!r}: unit '{unit}' is not a {dimension} unit{hint}; "
                          f"accepted: {accepted}")
    si = np.array(numbers) * UNITS[dimension][unit]
    if len(numbers) > 1 and not many:
        raise ConfigError(f"{field} = {value!r}: expected a single value")
    return si if many else float(si[0])


def _example(dimension: str) -> str:
    return {"time": "40 ms", "length": "5 um", "diffusivity": "2 um^2/ms", "bvalue": "1000 s/mm^2",
            "gradient": "80 mT/m", "frequency": "50 Hz", "permeability": "0.01 um/ms",
            "relaxivity": "5 um/s", "susceptibility": "-0.1 ppm", "magnetic_field": "3 T"}[dimension]


def format_si(value, dimension: str) -> str:
    """An SI value with its unit, for echoing parsed configs."""
    v = np.atleast_1d(np.asarray(value, dtype=float))
    nums = " ".join(f"{x:.6g}" for x in v)
    return f"{nums} {SI_UNIT[dimension]}"
