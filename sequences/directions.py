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


def shells(bvalues, directions) -> tuple[np.ndarray, np.ndarray]:
    """Every direction at every non-zero b-value: the (b, u) pairs a multi-shell protocol measures.

    ``pgse``, ``ogse`` and ``tensor_encoding`` pair ``bvalues[m]`` with
    ``directions[m]`` one to one (M measurements); a shell protocol wants the
    product. Each zero b-value gives one measurement (its direction does not
    matter: the first one is used).

    Parameters
    ----------
    bvalues : array_like
        (B,) b-values in s/m^2 (1000 s/mm^2 = 1e9 s/m^2), zeros for b = 0 images.
    directions : array_like
        (D, 3) gradient directions (normalised here), e.g. :func:`fibonacci_directions`.

    Returns
    -------
    bvalues : numpy.ndarray
        (M,) b-values in s/m^2, M = (number of zeros) + (number of non-zero b-values) x D, shell by shell in the
        order given.
    directions : numpy.ndarray
        (M, 3) unit vectors.

    Raises
    ------
    ValueError
        If the b-values are not in s/m^2 (e.g. s/mm^2) or a direction is not a finite non-zero 3-vector.

    Examples
    --------
    >>> import numpy as np, sequences
    >>> b, u = sequences.shells([0, 1e9, 2e9], np.eye(3))
    >>> b / 1e9
    array([0., 1., 1., 1., 2., 2., 2.])
    >>> scheme = sequences.pgse(delta=10e-3, Delta=30e-3, bvalues=b, directions=u)
    """
    from .units import check_si_bvalues

    b = check_si_bvalues(np.ravel(np.asarray(bvalues, dtype=float)), "bvalues")
    u = np.asarray(directions, dtype=float)
    if u.ndim == 1 and u.shape == (3,):
        u = u[None, :]
    if u.ndim != 2 or u.shape[1] != 3 or u.shape[0] == 0:
        raise ValueError(f"directions must be (D, 3) gradient directions, got shape {u.shape}")
    norm = np.linalg.norm(u, axis=1)
    if not np.all(np.isfinite(norm)) or np.any(norm == 0):
        raise ValueError("directions must be finite, non-zero 3-vectors (each is normalised)")
    u = u / norm[:, None]
    out_b, out_u = [], []
    for bi in b:
        if bi == 0:
            out_b.append([0.0])
            out_u.append(u[:1])
        else:
            out_b.append(np.full(len(u), bi))
            out_u.append(u)
    return np.concatenate(out_b), np.concatenate(out_u)
