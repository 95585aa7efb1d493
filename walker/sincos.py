"""sin and cos of one argument together, branch-free so that the compiler can vectorise loops over it.

Every walker and measurement needs cos(phi) and sin(phi) (and cos(2 phi) for
the standard error); through libm that is ~20 ns a pair, more than the walk
itself for a hundred measurements. Here the argument is reduced by pi/2 in
three parts (Cody & Waite 1980, with the split constants of fdlibm) and sin and
cos of the remainder in [-pi/4, pi/4] come from the fdlibm minimax polynomials
(Sun Microsystems 1993; coefficients are facts, the code is ours). The
quadrant picks signs and swaps by arithmetic selects, so a loop over phases
compiles to SIMD instructions.

Accuracy: within 2 ulp of correctly rounded for |x| <= :data:`REDUCED_RANGE`
(checked in ``tests/test_walker_invariants.py``); beyond it the three-part
reduction loses digits, and :func:`sincos_inplace` hands those arguments to
libm instead.
"""

from __future__ import annotations

import math

from numba import njit

#: |x| up to which the three-part reduction keeps the result within 2 ulp (k < 2^20 multiples of pi/2)
REDUCED_RANGE = 1.0e6

_TWO_OVER_PI = 6.36619772367581382433e-01
_PIO2_1 = 1.57079632673412561417e+00   # first 33 bits of pi/2
_PIO2_2 = 6.07710050630396597660e-11   # next 33 bits
_PIO2_3 = 2.02226624871116645580e-21   # next 33 bits
_PIO2_3T = 8.47842766036889956997e-32  # pi/2 - (_PIO2_1 + _PIO2_2 + _PIO2_3)

_S1 = -1.66666666666666324348e-01
_S2 = 8.33333333332248946124e-03
_S3 = -1.98412698298579493134e-04
_S4 = 2.75573137070700676789e-06
_S5 = -2.50507602534068634195e-08
_S6 = 1.58969099521155010221e-10

_C1 = 4.16666666666666019037e-02
_C2 = -1.38888888888741095749e-03
_C3 = 2.48015872894767294178e-05
_C4 = -2.75573143513906633035e-07
_C5 = 2.08757232129817482790e-09
_C6 = -1.13596475577881948265e-11


@njit(inline="always")
def sincos(x):
    """(sin x, cos x) for |x| <= REDUCED_RANGE, branch-free (see module docstring)."""
    k = math.floor(x * _TWO_OVER_PI + 0.5)
    r = ((x - k * _PIO2_1) - k * _PIO2_2) - k * _PIO2_3
    r = r - k * _PIO2_3T
    z = r * r
    s = r + r * z * (_S1 + z * (_S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))))
    hz = 0.5 * z
    w = 1.0 - hz
    c = w + (((1.0 - w) - hz) + z * z * (_C1 + z * (_C2 + z * (_C3 + z * (_C4 + z * (_C5 + z * _C6))))))
    q = int(k) & 3
    swap = (q & 1) == 1
    sn = c if swap else s
    cs = s if swap else c
    sin_x = -sn if (q & 2) == 2 else sn
    cos_x = -cs if ((q + 1) & 2) == 2 else cs
    return sin_x, cos_x


@njit(cache=True)
def sincos_inplace(x, sin_out, cos_out):
    """sin and cos of every element of the 1-D array x (libm beyond REDUCED_RANGE)."""
    for m in range(x.shape[0]):
        s, c = sincos(x[m])
        sin_out[m] = s
        cos_out[m] = c
    for m in range(x.shape[0]):
        if abs(x[m]) > REDUCED_RANGE:
            sin_out[m] = math.sin(x[m])
            cos_out[m] = math.cos(x[m])
