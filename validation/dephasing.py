"""Off-resonance dephasing of a gradient echo: the static regime (Yablonskiy & Haacke 1994) and the
motional-narrowing one (the Gaussian-phase result for a periodic field).

Both give ``-ln |S|`` of a gradient echo (no refocusing pulse), the decay a field offset dB adds on top of
diffusion weighting and relaxation:

- static spins among randomly placed perturbers at volume fraction zeta, dilute limit: ``zeta f(x)`` with
  ``x = delta_omega t`` (:func:`static_dephasing`);
- spins diffusing freely through a periodic field, when their phase is Gaussian (the correlation time of
  the field they see, tau = R^2 / D, short against 1 / delta_omega): half the phase variance, from the
  field's Fourier series (:func:`gaussian_phase_attenuation`).

Units: SI (T, m, s, m^2/s); gamma is the proton's (:data:`sequences.constants.GAMMA`).
"""

from __future__ import annotations

import numpy as np
from scipy import integrate

from sequences.constants import GAMMA


def _ramp(a: float) -> float:
    """int_0^1 (1 - cos(a v)) / v^2 dv = |a| int_0^|a| (1 - cos w) / w^2 dw."""
    a = abs(a)
    if a == 0:
        return 0.0
    val, _ = integrate.quad(lambda w: (1 - np.cos(w)) / (w * w) if w > 1e-8 else 0.5, 0, a, limit=400)
    return a * val


def static_dephasing(x, geometry: str = "spheres") -> np.ndarray:
    """Yablonskiy & Haacke's static-dephasing function f(x): a gradient echo among randomly placed
    perturbers at volume fraction zeta decays as exp(-zeta f(delta_omega t)) in the dilute limit.

    Spheres: ``delta_omega = gamma dchi B0 / 3``, ``f(x) = 1/2 int_{-1}^{1} du int_0^1 dv (1 - cos(x (3u^2
    - 1) v)) / v^2``; limits ``2 x^2 / 5`` (short times, Gaussian) and ``2 pi x / (3 sqrt 3) - 1`` (long
    times: R2' = 2 pi zeta delta_omega / (3 sqrt 3)). Parallel cylinders at angle theta to B0:
    ``delta_omega = gamma dchi B0 sin^2 theta / 2``, ``f(x) = 1/(2 pi) int_0^{2 pi} dphi int_0^1 dv (1 -
    cos(x v cos 2 phi)) / v^2``; limits ``x^2 / 4`` and ``x - 1`` (R2' = zeta delta_omega). The water counted
    is outside the perturbers (or everywhere, where the field inside is uniform: the difference is of order
    zeta^2).

    Parameters
    ----------
    x : float or array_like
        delta_omega * t (dimensionless).
    geometry : {"spheres", "cylinders"}
        The perturbers.

    Returns
    -------
    numpy.ndarray
        f(x), to about 1e-9 absolute (adaptive quadrature).

    Examples
    --------
    >>> import numpy as np, validation
    >>> float(np.round(validation.static_dephasing(200.0, "cylinders"), 2))   # x - 1 at long times
    199.0
    """
    xs = np.atleast_1d(np.asarray(x, dtype=float))
    if geometry not in ("spheres", "cylinders"):
        raise ValueError(f"geometry must be 'spheres' or 'cylinders', got {geometry!r}")
    out = np.empty(len(xs))
    for i, xi in enumerate(xs):
        if geometry == "spheres":
            val, _ = integrate.quad(lambda u: _ramp(xi * (3 * u * u - 1)), -1, 1,
                                    points=[-1 / np.sqrt(3), 1 / np.sqrt(3)], limit=200)
            out[i] = 0.5 * val
        else:  # |cos 2 phi| repeats every pi / 2
            val, _ = integrate.quad(lambda p: _ramp(xi * np.cos(2 * p)), 0, np.pi / 2, points=[np.pi / 4],
                                    limit=200)
            out[i] = 2 * val / np.pi
    return out.reshape(np.shape(x))


def gaussian_phase_attenuation(values, box, diffusivity: float, times, dt: float | None = None,
                               aliases: int = 1) -> np.ndarray:
    """``-ln |S|`` of gradient echoes of spins diffusing freely through a periodic field offset sampled on a grid
    (trilinear between the nodes), in the Gaussian-phase approximation.

    Half the phase variance, ``gamma^2 / 2 sum_{k != 0} |c_k|^2 I_k(t)``, with c_k the Fourier series of the
    interpolated field (the grid's DFT times the tent kernel's sinc^2 per axis, summed over ``aliases``
    copies of the grid's band) and I_k the double time integral of the spins' correlation at wavevector k:
    ``2 (a t - 1 + exp(-a t)) / a^2`` with ``a = D k^2`` for continuous Brownian motion, or, with ``dt``,
    exactly for a walk of fixed steps sqrt(6 D dt) whose phase is the trapezoid sum over its positions
    (``dt^2 sum_jl w_j w_l rho_k^|j - l|``, rho_k = sin(k l) / (k l)). The spins start spread uniformly; the
    field's mean adds a phase, not a decay. It holds in the motional-narrowing regime (delta_omega tau << 1,
    tau the time to diffuse across the field's structure); corrections are of relative order
    (delta_omega tau)^2.

    Parameters
    ----------
    values : array_like
        (nx, ny, nz) field offset dB at the nodes i * box / n, T.
    box : array_like
        (3,) period, m.
    diffusivity : float
        D, m^2/s.
    times : array_like
        Echo times, s (with ``dt``: whole multiples of it).
    dt : float, optional
        The walk's time step, s; default: continuous Brownian motion.
    aliases : int
        Alias bands summed per axis beyond the grid's own (1 leaves about 1e-6 of the result out).

    Returns
    -------
    numpy.ndarray
        ``-ln |S|`` at each time.

    Examples
    --------
    >>> import numpy as np, validation
    >>> x = np.arange(16) / 16
    >>> v = 1e-8 * np.cos(2 * np.pi * x)[:, None, None] * np.ones((16, 1, 1))   # 10 nT, period 10 um
    >>> att = validation.gaussian_phase_attenuation(v, [10e-6, 1.0, 1.0], 2e-9, [0.1])
    >>> bool(0 < att[0] < 1e-3)
    True
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 3 or v.size == 0:
        raise ValueError(f"values must be a non-empty (nx, ny, nz) grid in T, got shape {v.shape}")
    L = np.asarray(box, dtype=float).reshape(3)
    if np.any(~np.isfinite(L)) or np.any(L <= 0):
        raise ValueError(f"box must be the field's positive period in m, got {box!r}")
    D = float(diffusivity)
    if not (1e-13 <= D <= 1e-6):
        raise ValueError(f"diffusivity = {D!r} is not plausible in m^2/s (water: 2e-9)")
    t = np.asarray(times, dtype=float).reshape(-1)
    if np.any(t < 0) or np.any(t > 10):
        raise ValueError(f"times must be echo times in s (30 ms is 0.03), got {times!r}")
    N = np.array(v.shape)
    p2 = np.abs(np.fft.fftn(v) / v.size) ** 2
    base = [np.fft.fftfreq(N[k], 1.0 / N[k]) for k in range(3)]
    if dt is not None:
        n = np.round(t / dt)
        if np.any(np.abs(n * dt - t) > 1e-9 * np.maximum(t, dt)):
            raise ValueError(f"times must be whole multiples of dt = {dt!r} s")
        ell = np.sqrt(6 * D * dt)
        n = n[:, None]
    out = np.zeros(len(t))
    shifts = range(-int(aliases), int(aliases) + 1)
    for a, b, c in ((a, b, c) for a in shifts for b in shifts for c in shifts):
        m = np.meshgrid(base[0] + a * N[0], base[1] + b * N[1], base[2] + c * N[2], indexing="ij")
        k = [2 * np.pi * m[i] / L[i] for i in range(3)]
        # an axis with one node is constant along it: only its k = 0 band exists
        if any(N[i] == 1 and (a, b, c)[i] != 0 for i in range(3)):
            continue
        tent = np.prod([np.sinc(k[i] * L[i] / N[i] / (2 * np.pi)) ** 4 if N[i] > 1 else np.ones_like(k[i])
                        for i in range(3)], axis=0)
        w = (p2 * tent).reshape(-1)
        kk = np.sqrt(k[0] ** 2 + k[1] ** 2 + k[2] ** 2).reshape(-1)
        keep = (kk > 0) & (w > 0)
        w, kk = w[keep], kk[keep]
        if dt is None:
            at = D * kk[None, :] ** 2 * t[:, None]
            small = at < 1e-4  # the series, where a t - 1 + exp(-a t) cancels
            pair = np.where(small, at**2 / 2 - at**3 / 6, at - 1 + np.exp(-np.minimum(at, 700)))
            out += (w[None, :] * 2 * pair / (D * kk[None, :] ** 2) ** 2).sum(axis=1)
        else:
            r = (np.sin(kk * ell) / (kk * ell))[None, :]
            full = (n + 1) * (1 + r) / (1 - r) - 2 * r * (1 - r ** (n + 1)) / (1 - r) ** 2
            pair = full - 2 * (1 - r ** (n + 1)) / (1 - r) + (1 + r**n) / 2
            out += dt**2 * (w[None, :] * pair).sum(axis=1)
    return GAMMA**2 * out / 2
