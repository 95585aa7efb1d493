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

#: version of the random streams (per-walker seeding, generator, draws); a change of any is a new version.
#: v1: walker states from SeedSequence.generate_state; v2: from one SeedSequence word through splitmix64
STREAM_VERSION = "splitmix64-seeded xoroshiro128+/marsaglia/box-muller v2"

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
    """(n, 2) uint64 generator states, one per walker, from a seed sequence.

    One 64-bit word of the sequence keys a splitmix64 stream (Steele, Lea &
    Flood 2014; the seeding Vigna recommends for xoroshiro), whose outputs 2i+1
    and 2i+2 are walker i's state: O(n) in compiled code, and a walker's state
    depends on its index alone, not on the number of walkers or threads.

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
    key = seed_sequence.generate_state(1, dtype=np.uint64)[0]
    seeds = np.empty((n, 2), dtype=np.uint64)
    _splitmix_states(key, seeds)
    return seeds


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_U30 = np.uint64(30)
_U27B = np.uint64(27)
_U31 = np.uint64(31)


@njit(cache=True)
def _splitmix_states(key, seeds):
    z0 = key
    for i in range(seeds.shape[0]):
        for j in range(2):
            z0 += _GOLDEN
            z = z0
            z = (z ^ (z >> _U30)) * _MIX1
            z = (z ^ (z >> _U27B)) * _MIX2
            z = z ^ (z >> _U31)
            seeds[i, j] = z
        if seeds[i, 0] == 0 and seeds[i, 1] == 0:
            seeds[i, 0] = 1  # xoroshiro's one forbidden state
