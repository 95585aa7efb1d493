"""Sampling analytic waveform shapes onto a uniform time grid.

A shape is described by its antiderivative F(t) = integral_0^t s(t') dt' of a
unit-amplitude scalar shape s(t). Sampling takes the step average
s_k = (F(t_{k+1}) - F(t_k)) / dt, which is exact whatever the grid: q(t) at
every grid point equals the analytic q, so the echo condition holds to rounding
and misaligned edges cost only the within-step shape, never a net phase error.
When every edge (jump or kink) falls on a grid point the sampled piecewise-
constant waveform is the analytic one wherever the analytic one is constant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

#: Default upper bound on the construction time step (s).
DEFAULT_MAX_DT = 1e-5
# Above this many samples an aligned grid costs more than it is worth.
_MAX_ALIGNED_SAMPLES = 200_000

Antiderivative = Callable[[np.ndarray], np.ndarray]


def piecewise_linear_antiderivative(times: Sequence[float], values: Sequence[float]) -> Antiderivative:
    """Exact antiderivative of a piecewise-linear shape.

    Parameters
    ----------
    times : sequence of float
        Breakpoints in s, non-decreasing; a repeated time makes a jump.
    values : sequence of float
        Shape values at the breakpoints (dimensionless); zero outside.

    Returns
    -------
    callable
        F(t) for an array of times t in s.
    """
    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    if np.any(np.diff(t) < 0):
        raise ValueError("breakpoints must be non-decreasing in time")
    seg = np.diff(t)
    areas = 0.5 * (v[:-1] + v[1:]) * seg
    cum = np.concatenate([[0.0], np.cumsum(areas)])

    def F(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        out = np.empty_like(x)
        # index of the segment containing x (rightmost breakpoint <= x)
        i = np.clip(np.searchsorted(t, x, side="right") - 1, 0, len(t) - 2)
        h = seg[i]
        dx = np.clip(x - t[i], 0.0, None)
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = np.where(h > 0, (v[i + 1] - v[i]) / np.where(h > 0, h, 1.0), 0.0)
        inside = np.minimum(dx, h)
        out = cum[i] + v[i] * inside + 0.5 * slope * inside**2
        out = np.where(x <= t[0], 0.0, out)
        out = np.where(x >= t[-1], cum[-1], out)
        return out

    return F


def cosine_antiderivative(t0: float, duration: float, frequency: float, phase: str = "cos") -> Antiderivative:
    """Antiderivative of cos (or sin) of 2 pi f (t - t0) on [t0, t0 + duration].

    Parameters
    ----------
    t0 : float
        Onset in s.
    duration : float
        Lobe duration in s.
    frequency : float
        Frequency in Hz.
    phase : {"cos", "sin"}
        Which trigonometric shape.

    Returns
    -------
    callable
        F(t) for an array of times t in s.
    """
    w = 2.0 * math.pi * frequency

    def prim(u: np.ndarray) -> np.ndarray:
        if phase == "cos":
            return np.sin(w * u) / w
        return (1.0 - np.cos(w * u)) / w

    def F(x: np.ndarray) -> np.ndarray:
        u = np.clip(np.asarray(x, dtype=float) - t0, 0.0, duration)
        return prim(u)

    return F


def sum_antiderivatives(parts: Sequence[tuple[float, Antiderivative]]) -> Antiderivative:
    """Antiderivative of a weighted sum of shapes: sum_i w_i F_i(t)."""

    def F(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return sum(w * f(x) for w, f in parts)

    return F


def sample(F: Antiderivative, n_steps: int, dt: float) -> np.ndarray:
    """Step-averaged samples of a shape on the grid t_k = k dt, k = 0..n_steps.

    Parameters
    ----------
    F : callable
        Antiderivative of the shape (s).
    n_steps : int
        Number of steps.
    dt : float
        Time step in s.

    Returns
    -------
    numpy.ndarray
        (n_steps,) step averages of the shape.
    """
    grid = np.arange(n_steps + 1) * dt
    s = np.diff(F(grid)) / dt
    # an edge that lands on a grid point up to float rounding leaves ~1e-13 crumbs
    s[np.abs(s) < 1e-9 * np.abs(s).max(initial=0.0)] = 0.0
    return s


def choose_grid(duration: float, edges: Sequence[float], dt: float | None = None,
                max_dt: float = DEFAULT_MAX_DT) -> tuple[float, int]:
    """Pick a time step and step count for a waveform of given duration.

    With ``dt=None`` the step is the largest one not above ``max_dt`` on which
    every edge falls on a grid point (edges are compared at 1 ns resolution);
    when no such grid has fewer than 200 000 samples, ``max_dt`` is used and
    step averaging handles the misaligned edges.

    Parameters
    ----------
    duration : float
        Waveform duration in s.
    edges : sequence of float
        Times (s) of jumps and kinks of the waveform.
    dt : float, optional
        Requested step in s; the duration is then rounded up to whole steps.
    max_dt : float
        Largest step chosen automatically (s).

    Returns
    -------
    dt : float
        Time step in s.
    n_steps : int
        Number of steps; n_steps * dt >= duration.
    """
    if dt is not None:
        dt = float(dt)
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number of seconds (got {dt!r})")
        if dt > duration:
            raise ValueError(f"dt = {dt:g} s is longer than the waveform ({duration:g} s)")
        n = int(math.ceil(duration / dt - 1e-9))
        return dt, n
    ns = [duration * 1e9] + [float(e) * 1e9 for e in edges]
    ints = [round(x) for x in ns]
    # edges given to better than 1 ps can share an exact grid
    if all(abs(x - i) < 1e-3 for x, i in zip(ns, ints)):
        g = 0
        for i in ints:
            g = math.gcd(g, int(i))
        if g > 0:
            m = int(math.ceil(g / (max_dt * 1e9) - 1e-9))
            step_ns = g / m
            n = int(round(ints[0] / step_ns))
            if n <= _MAX_ALIGNED_SAMPLES:
                return step_ns * 1e-9, n
    n = int(math.ceil(duration / max_dt - 1e-9))
    return duration / n, n


def aligned(edges: Sequence[float], dt: float, rtol: float = 1e-6) -> bool:
    """True when every edge time lies on the grid k * dt (to ``rtol`` steps)."""
    e = np.asarray(edges, dtype=float)
    if e.size == 0:
        return True
    k = e / dt
    return bool(np.all(np.abs(k - np.round(k)) <= rtol))


def gram(samples: np.ndarray, dt: float) -> np.ndarray:
    """Gram matrix of the running integrals of piecewise-constant signals.

    For signals x_k on the grid (constant within each step) with running
    integrals F_k(t) = integral_0^t x_k, returns integral F_k F_l dt exactly
    (F is linear within a step). With x the gradient components and a factor
    gamma^2 this is the b-tensor.

    Parameters
    ----------
    samples : numpy.ndarray
        (..., K, T) step values.
    dt : float
        Time step in s.

    Returns
    -------
    numpy.ndarray
        (..., K, K) in (sample unit)^2 s^3.
    """
    x = np.asarray(samples, dtype=float)
    F = np.zeros(x.shape[:-1] + (x.shape[-1] + 1,))
    np.cumsum(x * dt, axis=-1, out=F[..., 1:])
    a, b = F[..., :-1], F[..., 1:]
    G = (np.einsum("...kt,...lt->...kl", a, a) + np.einsum("...kt,...lt->...kl", b, b)
         + 0.5 * (np.einsum("...kt,...lt->...kl", a, b) + np.einsum("...kt,...lt->...kl", b, a)))
    G *= dt / 3.0
    return 0.5 * (G + np.swapaxes(G, -1, -2))
