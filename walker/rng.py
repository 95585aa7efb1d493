"""Per-walker random numbers: xoroshiro128+ uniforms, unit directions and Gaussian triples (numba, inlined).

Each walker owns a 128-bit generator state (two uint64 words) derived from the
root seed by :func:`walker_seeds`, so its stream does not depend on which
thread runs it: results are bit-identical whatever the number of threads. The
state lives in two scalars threaded through every call (``u, s0, s1 =
next_uniform(s0, s1)``), never in an array a parallel loop could share.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: version of the random streams (generator and draws); a change of either is a new stream version
STREAM_VERSION = "xoroshiro128+/marsaglia/box-muller v1"

_U11 = np.uint64(11)
_U16 = np.uint64(16)
_U24 = np.uint64(24)
_U40 = np.uint64(40)
_U37 = np.uint64(37)
_U27 = np.uint64(27)
_INV53 = 1.0 / 9007199254740992.0


@njit(inline="always")
def next_uniform(s0, s1):
    """xoroshiro128+ (Blackman & Vigna): the top 53 bits as a uniform double in [0, 1); returns (u, s0, s1)."""
    res = s0 + s1
    s1 ^= s0
    s0 = ((s0 << _U24) | (s0 >> _U40)) ^ s1 ^ (s1 << _U16)
    s1 = (s1 << _U37) | (s1 >> _U27)
    return (res >> _U11) * _INV53, s0, s1


@njit(inline="always")
def unit_direction(s0, s1):
    """Uniform on the unit sphere (Marsaglia 1972: from a point uniform in the unit disk, no trigonometry)."""
    while True:
        u, s0, s1 = next_uniform(s0, s1)
        v, s0, s1 = next_uniform(s0, s1)
        a = 2.0 * u - 1.0
        b = 2.0 * v - 1.0
        q = a * a + b * b
        if q < 1.0 and q > 0.0:
            break
    f = 2.0 * math.sqrt(1.0 - q)
    return a * f, b * f, 1.0 - 2.0 * q, s0, s1


@njit(inline="always")
def gaussian3(s0, s1):
    """Three independent standard normals (Box-Muller; 1 - u keeps the log argument in (0, 1])."""
    u, s0, s1 = next_uniform(s0, s1)
    v, s0, s1 = next_uniform(s0, s1)
    w, s0, s1 = next_uniform(s0, s1)
    x, s0, s1 = next_uniform(s0, s1)
    r1 = math.sqrt(-2.0 * math.log(1.0 - u))
    r2 = math.sqrt(-2.0 * math.log(1.0 - w))
    return r1 * math.cos(2 * math.pi * v), r1 * math.sin(2 * math.pi * v), r2 * math.cos(2 * math.pi * x), s0, s1


@njit(inline="always")
def draw_step(gaussian, s0, s1):
    """One step's random vector: three standard normals (Gaussian steps) or a uniform unit direction."""
    if gaussian:
        return gaussian3(s0, s1)
    return unit_direction(s0, s1)


def walker_seeds(seed_sequence: np.random.SeedSequence, n: int) -> np.ndarray:
    """(n, 2) uint64 generator states, one per walker, from a seed sequence (never the all-zero state).

    Parameters
    ----------
    seed_sequence : numpy.random.SeedSequence
        The walk's branch of the root seed.
    n : int
        Number of walkers.

    Returns
    -------
    numpy.ndarray
    """
    seeds = seed_sequence.generate_state(2 * n, dtype=np.uint64).reshape(n, 2)
    seeds[(seeds[:, 0] == 0) & (seeds[:, 1] == 0), 0] = 1
    return seeds
