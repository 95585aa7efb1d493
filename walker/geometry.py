"""Inline geometry shared by the kernels that walk round walls (analytic cells, sphere unions).

Each helper is a scalar numba function inlined into the kernels (and
compiled for CUDA by :mod:`walker.cuda_backend`): no allocation, float64.
Written so that a walker on a wall can never step through it: the squared
distance to the wall is clamped by the caller (on the wall up to rounding
counts as inside), and the exit root is taken in the form that does not
cancel.
"""

from __future__ import annotations

import math

from numba import njit


@njit(inline="always")
def exit_root(a, b, h):
    """The distance t >= 0 at which p + t d leaves a ball (or disk) it is inside: the positive root of
    a t^2 + 2 b t = h.

    Parameters
    ----------
    a : float
        |d|^2 in the distance's metric (1 for a unit direction in 3-D; dx^2 + dy^2 across a cylinder's axis), > 0.
    b : float
        (p - c) . d, m.
    h : float
        r^2 - |p - c|^2 >= 0 (clamped by the caller), m^2.

    Returns
    -------
    float
        The exit distance in units of |d| (m for a unit d). Of the two algebraically equal forms, the one
        without cancellation: h / (b + sqrt(b^2 + a h)) when b > 0, (sqrt(b^2 + a h) - b) / a otherwise.
    """
    disc = math.sqrt(b * b + a * h)
    if b > 0.0:
        return h / (b + disc)
    return (disc - b) / a


@njit(inline="always")
def cell_index(x, y, z, n):
    """Flat index of grid cell (x, y, z) (ints, each in range) of a grid with n = (nx, ny, nz) cells, x slowest."""
    return (x * n[1] + y) * n[2] + z
