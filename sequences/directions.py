"""Gradient directions: evenly spread unit vectors for shells."""

from __future__ import annotations

import numpy as np


def fibonacci_directions(n: int) -> np.ndarray:
    """``n`` unit vectors spread evenly over a hemisphere (z >= 0), deterministic.

    The golden-angle spiral (Fibonacci lattice): point i sits at height
    z = 1 - (i + 1/2) / n and azimuth i times the golden angle.

    Parameters
    ----------
    n : int
        Number of directions.

    Returns
    -------
    numpy.ndarray
        (n, 3) unit vectors.

    Examples
    --------
    >>> import sequences
    >>> sequences.fibonacci_directions(30).shape
    (30, 3)
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"fibonacci_directions: n must be a positive number of directions, got {n}")
    i = np.arange(n) + 0.5
    z = 1 - i / n
    r = np.sqrt(1 - z**2)
    phi = np.pi * (3 - np.sqrt(5)) * i
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])
