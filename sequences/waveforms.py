"""Constructors for diffusion-encoding schemes: PGSE, OGSE, DDE, b-tensor, arrays.

Every constructor builds an analytic unit shape, samples it onto an
edge-aligned grid by exact step averaging (see :mod:`sequences.timegrid`), and
scales it so that the b-value of the *sampled* waveform equals the requested
one. All arguments are SI: seconds, T/m, s/m^2, Hz.
"""

from __future__ import annotations

import numpy as np

from . import timegrid
from .constants import GAMMA
from .scheme import Scheme
from .units import check_derived_bvalues, check_gradient_strength, check_seconds, check_si_bvalues


# ---------------------------------------------------------------- helpers
def _directions(directions, n: int | None, name: str = "directions") -> np.ndarray:
    if directions is None:
        u = np.array([[0.0, 0.0, 1.0]])
    else:
        u = np.asarray(directions, dtype=float)
        if u.ndim == 1:
            u = u[None, :]
    if u.ndim != 2 or u.shape[1] != 3:
        raise ValueError(f"{name} must have shape (M, 3) or (3,), got {np.shape(directions)}")
    if not np.all(np.isfinite(u)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if n is not None and u.shape[0] == 1 and n > 1:
        u = np.repeat(u, n, axis=0)
    return u


def _amplitudes(bvalues, gradient_strength) -> tuple[np.ndarray, str]:
    if (bvalues is None) == (gradient_strength is None):
        raise ValueError("give exactly one of bvalues (s/m^2) or gradient_strength (T/m)")
    if bvalues is not None:
        return check_si_bvalues(bvalues), "b"
    return check_gradient_strength(gradient_strength), "G"


def _unit_directions(u: np.ndarray, amp: np.ndarray, name: str = "directions") -> np.ndarray:
    norms = np.linalg.norm(u, axis=1)
    active = amp > 0
    bad = active & (np.abs(norms - 1.0) > 0.01)
    if np.any(bad):
        i = int(np.nonzero(bad)[0][0])
        raise ValueError(
            f"{name} must be unit vectors where b > 0; row {i} has norm {norms[i]:.4g}. "
            "Normalise them (a non-unit vector does not scale b here)."
        )
    out = np.zeros_like(u)
    out[active] = u[active] / norms[active, None]
    return out


def _broadcast(amp: np.ndarray, u: np.ndarray, name: str = "directions") -> tuple[np.ndarray, np.ndarray]:
    if amp.size == 1 and u.shape[0] > 1:
        amp = np.repeat(amp, u.shape[0])
    if u.shape[0] == 1 and amp.size > 1:
        u = np.repeat(u, amp.size, axis=0)
    if amp.size != u.shape[0]:
        raise ValueError(f"got {amp.size} b-values/amplitudes but {u.shape[0]} {name}")
    return amp, u


def _rect_lobe(t0: float, delta: float, ramp: float, sign: float) -> tuple[list[float], list[float]]:
    # Price convention: delta = plateau + ramp, lobe lasts delta + ramp
    t = [t0, t0 + ramp, t0 + delta, t0 + delta + ramp]
    v = [0.0, sign, sign, 0.0]
    return t, v


def _pl(lobes: list[tuple[list[float], list[float]]]) -> timegrid.Antiderivative:
    t: list[float] = []
    v: list[float] = []
    for lt, lv in lobes:
        t += lt
        v += lv
    return timegrid.piecewise_linear_antiderivative(t, v)


def _check_time(name: str, value: float, positive: bool = True) -> float:
    v = check_seconds(value, name)
    if positive and v <= 0:
        raise ValueError(f"{name} must be positive (got {v:g} s)")
    return v


def _padding(duration_min: float, echo_time: float | None) -> tuple[float, float]:
    if echo_time is None:
        return 0.0, duration_min
    te = _check_time("echo_time", echo_time)
    if te < duration_min * (1 - 1e-12):
        raise ValueError(
            f"echo_time = {te * 1e3:g} ms is shorter than the encoding it must hold "
            f"({duration_min * 1e3:g} ms)"
        )
    return 0.5 * (te - duration_min), max(te, duration_min)


def _unit_b(shape: np.ndarray, dt: float, gamma: float) -> float:
    return float(gamma**2 * timegrid.gram(shape[None, :], dt)[0, 0])


def _single_shape_scheme(F, duration, edges, amp, kind, u, dt, gamma, info) -> Scheme:
    dt, n = timegrid.choose_grid(duration, edges, dt)
    s = timegrid.sample(F, n, dt)
    bunit = _unit_b(s, dt, gamma)
    G = np.sqrt(amp / bunit) if kind == "b" else amp
    if kind == "G":
        check_derived_bvalues(G**2 * bunit, "gradient_strength")
    u = _unit_directions(u, G)
    info = dict(info, gradient_strength=G * np.max(np.abs(s)))
    grads = G[:, None, None] * s[None, :, None] * u[:, None, :]
    return Scheme(grads, dt, gamma, info, edges)


# ------------------------------------------------------------------- PGSE
def pgse(delta: float, Delta: float, bvalues=None, directions=None, *, gradient_strength=None,
         ramp_time: float = 0.0, echo_time: float | None = None, dt: float | None = None,
         gamma: float = GAMMA) -> Scheme:
    """Pulsed-gradient spin echo (Stejskal-Tanner), rectangular or trapezoidal.

    The effective gradient is +G u during the first lobe and -G u during the
    second. b = gamma^2 G^2 delta^2 (Delta - delta/3) for rectangles; with ramps,
    b = gamma^2 G^2 [delta^2 (Delta - delta/3) + ramp^3/30 - delta ramp^2/6] (Price 1997).

    Parameters
    ----------
    delta : float
        Pulse duration in s, from the onset of the ramp-up to the onset of the
        ramp-down (Price's convention; the lobe lasts delta + ramp_time).
    Delta : float
        Separation of the two pulse onsets in s.
    bvalues : array_like, optional
        (M,) b-values in s/m^2 (e.g. 1e9 for 1000 s/mm^2). Give this or
        ``gradient_strength``.
    directions : array_like, optional
        (M, 3) or (3,) unit gradient directions (default z). Any vector is
        accepted where b = 0.
    gradient_strength : array_like, optional
        (M,) plateau amplitudes G in T/m.
    ramp_time : float
        Ramp time in s (0 for rectangles); at most ``delta``.
    echo_time : float, optional
        Echo time in s; the encoding is centred with equal padding before and
        after, as MC/DC plays Camino schemes. Default: Delta + delta + ramp_time.
    dt : float, optional
        Time step in s; default: the largest step <= 10 us on which every edge
        falls on a grid point.
    gamma : float
        Gyromagnetic ratio in rad/s/T.

    Returns
    -------
    Scheme

    Examples
    --------
    >>> import numpy as np, sequences
    >>> s = sequences.pgse(delta=10e-3, Delta=30e-3, bvalues=[0, 1e9], directions=[1, 0, 0])
    >>> np.round(s.bvalues / 1e6)
    array([   0., 1000.])
    """
    delta = _check_time("delta", delta)
    Delta = _check_time("Delta", Delta)
    ramp = _check_time("ramp_time", ramp_time, positive=False)
    if ramp > delta:
        raise ValueError(f"ramp_time ({ramp * 1e3:g} ms) cannot exceed delta ({delta * 1e3:g} ms)")
    if Delta < delta + ramp * (1 - 1e-12):
        raise ValueError(
            f"Delta ({Delta * 1e3:g} ms) must be at least delta + ramp_time ({(delta + ramp) * 1e3:g} ms) "
            "so that the two gradient pulses do not overlap"
        )
    amp, kind = _amplitudes(bvalues, gradient_strength)
    amp, u = _broadcast(amp, _directions(directions, None))
    t1, duration = _padding(Delta + delta + ramp, echo_time)
    lobes = [_rect_lobe(t1, delta, ramp, 1.0), _rect_lobe(t1 + Delta, delta, ramp, -1.0)]
    edges = sorted({x for lt, _ in lobes for x in lt} | {duration})
    info = {"delta": delta, "Delta": Delta, "ramp_time": ramp, "label": "pgse"}
    return _single_shape_scheme(_pl(lobes), duration, edges, amp, kind, u, dt, gamma, info)


# ------------------------------------------------------------------- OGSE
def _trapezoid_cos_lobe(t0: float, sigma: float, f: float, ramp: float) -> tuple[list[float], list[float]]:
    # clipped cosine: +1/-1 plateaus, linear ramps centred on the zeros of cos
    n_cross = int(round(2 * sigma * f))
    t, v = [t0, t0], [0.0, 1.0]
    for j in range(n_cross):
        c = t0 + (2 * j + 1) / (4 * f)
        s = 1.0 if j % 2 == 0 else -1.0
        t += [c - ramp / 2, c + ramp / 2]
        v += [s, -s]
    t += [t0 + sigma, t0 + sigma]
    v += [1.0, 0.0]
    return t, v


def ogse(frequency: float | None = None, n_periods: float | None = None, bvalues=None, directions=None,
         *, gradient_strength=None, shape: str = "cos", lobe_duration: float | None = None,
         gap: float = 0.0, ramp_time: float = 0.0, echo_time: float | None = None,
         dt: float | None = None, gamma: float = GAMMA) -> Scheme:
    """Oscillating-gradient spin echo: two oscillating lobes around the refocusing pulse.

    Each lobe holds ``n_periods`` whole periods of the chosen shape, so q(t)
    returns to zero at the end of each lobe. Both lobes carry the same
    effective shape (the physical second lobe is inverted by the refocusing
    pulse). b is computed numerically from the sampled waveform; for "cos" it
    equals gamma^2 G^2 sigma / (2 pi f)^2 with sigma = n_periods/f (Does et al. 2003).

    Parameters
    ----------
    frequency : float, optional
        Oscillation frequency in Hz.
    n_periods : float, optional
        Whole periods per lobe. Give two of ``frequency``, ``n_periods``,
        ``lobe_duration``.
    bvalues : array_like, optional
        (M,) b-values in s/m^2.
    directions : array_like, optional
        (M, 3) or (3,) unit directions (default z).
    gradient_strength : array_like, optional
        (M,) peak amplitudes in T/m, instead of ``bvalues``.
    shape : {"cos", "sin", "trapezoid-cos"}
        Lobe shape. "trapezoid-cos" is a clipped cosine whose sign changes
        through linear ramps of ``ramp_time`` centred on the zeros of cos.
    lobe_duration : float, optional
        Duration of each lobe in s.
    gap : float
        Time between the two lobes in s (room for the refocusing pulse).
    ramp_time : float
        Ramp time in s for "trapezoid-cos" (at most half a period).
    echo_time : float, optional
        Echo time in s; the encoding is centred in it.
    dt : float, optional
        Time step in s (default: <= 10 us, edge-aligned).
    gamma : float
        Gyromagnetic ratio in rad/s/T.

    Returns
    -------
    Scheme
    """
    given = sum(x is not None for x in (frequency, n_periods, lobe_duration))
    if given != 2:
        raise ValueError("give exactly two of frequency (Hz), n_periods and lobe_duration (s)")
    if lobe_duration is None:
        f, n = float(frequency), float(n_periods)
        if not (np.isfinite(f) and f > 0):
            raise ValueError(f"frequency must be positive (Hz), got {frequency!r}")
        sigma = n / f
    elif frequency is None:
        n, sigma = float(n_periods), _check_time("lobe_duration", lobe_duration)
        f = n / sigma
    else:
        f, sigma = float(frequency), _check_time("lobe_duration", lobe_duration)
        if not (np.isfinite(f) and f > 0):
            raise ValueError(f"frequency must be positive (Hz), got {frequency!r}")
        n = f * sigma
    if not (np.isfinite(n) and n >= 1 and abs(n - round(n)) < 1e-9 * max(1.0, n)):
        raise ValueError(
            f"each OGSE lobe must hold a whole number of periods (got n_periods = {n:g}); "
            "otherwise q(t) does not return to zero"
        )
    n = round(n)
    sigma = _check_time("lobe duration (n_periods / frequency)", sigma)
    gap = _check_time("gap", gap, positive=False)
    ramp = _check_time("ramp_time", ramp_time, positive=False)
    amp, kind = _amplitudes(bvalues, gradient_strength)
    amp, u = _broadcast(amp, _directions(directions, None))
    t1, duration = _padding(2 * sigma + gap, echo_time)
    starts = [t1, t1 + sigma + gap]
    if shape in ("cos", "sin"):
        F = timegrid.sum_antiderivatives([(1.0, timegrid.cosine_antiderivative(t0, sigma, f, shape))
                                          for t0 in starts])
        edges = sorted({*starts, *(t0 + sigma for t0 in starts), duration})
    elif shape == "trapezoid-cos":
        if ramp > 0.5 / f:
            raise ValueError(f"ramp_time ({ramp * 1e3:g} ms) cannot exceed half a period ({0.5e3 / f:g} ms)")
        lobes = [_trapezoid_cos_lobe(t0, sigma, f, ramp) for t0 in starts]
        F = _pl(lobes)
        edges = sorted({x for lt, _ in lobes for x in lt} | {duration})
    else:
        raise ValueError(f"shape must be 'cos', 'sin' or 'trapezoid-cos', got {shape!r}")
    info = {"frequency": f, "delta": sigma, "Delta": sigma + gap, "label": f"ogse-{shape}",
            "ramp_time": ramp if shape == "trapezoid-cos" else np.nan}
    return _single_shape_scheme(F, duration, edges, amp, kind, u, dt, gamma, info)


# -------------------------------------------------------------------- DDE
def dde(delta: float, Delta: float, mixing_time: float, bvalues=None, directions1=None, directions2=None,
        *, gradient_strength=None, ramp_time: float = 0.0, echo_time: float | None = None,
        dt: float | None = None, gamma: float = GAMMA) -> Scheme:
    """Double diffusion encoding: two PGSE blocks with their own directions.

    Timing follows the consensus nomenclature (Shemesh et al. 2016, MRM 75:82):
    ``mixing_time`` runs from the onset of the second pulse of the first block
    to the onset of the first pulse of the second block, so back-to-back blocks
    have mixing_time = delta + ramp_time. The two blocks' q(t) do not overlap,
    so B = b/2 (u1 u1^T + u2 u2^T).

    Parameters
    ----------
    delta : float
        Pulse duration in s (Price convention with ramps, as in :func:`pgse`).
    Delta : float
        Separation of the pulse onsets within a block in s.
    mixing_time : float
        Mixing time in s (see above); at least delta + ramp_time.
    bvalues : array_like, optional
        (M,) total b-values (both blocks) in s/m^2.
    directions1, directions2 : array_like, optional
        (M, 3) or (3,) unit directions of the two blocks (default z and x).
    gradient_strength : array_like, optional
        (M,) plateau amplitude in T/m, instead of ``bvalues``.
    ramp_time : float
        Ramp time in s.
    echo_time : float, optional
        Echo time in s; the encoding is centred in it.
    dt : float, optional
        Time step in s.
    gamma : float
        Gyromagnetic ratio in rad/s/T.

    Returns
    -------
    Scheme
    """
    delta = _check_time("delta", delta)
    Delta = _check_time("Delta", Delta)
    tm = _check_time("mixing_time", mixing_time, positive=False)
    ramp = _check_time("ramp_time", ramp_time, positive=False)
    if ramp > delta:
        raise ValueError("ramp_time cannot exceed delta")
    if Delta < delta + ramp * (1 - 1e-12):
        raise ValueError(f"Delta ({Delta * 1e3:g} ms) must be at least delta + ramp_time ({(delta + ramp) * 1e3:g} ms)")
    if tm < delta + ramp * (1 - 1e-12):
        raise ValueError(
            f"mixing_time ({tm * 1e3:g} ms) must be at least delta + ramp_time ({(delta + ramp) * 1e3:g} ms): "
            "it runs from the onset of the 2nd pulse to the onset of the 3rd"
        )
    amp, kind = _amplitudes(bvalues, gradient_strength)
    u1 = _directions(directions1, None, "directions1")
    u2 = _directions(directions2 if directions2 is not None else [1.0, 0.0, 0.0], None, "directions2")
    amp, u1 = _broadcast(amp, u1, "directions1")
    amp, u2 = _broadcast(amp, u2, "directions2")
    t1, duration = _padding(2 * Delta + tm + delta + ramp, echo_time)
    block1 = [_rect_lobe(t1, delta, ramp, 1.0), _rect_lobe(t1 + Delta, delta, ramp, -1.0)]
    t3 = t1 + Delta + tm
    block2 = [_rect_lobe(t3, delta, ramp, 1.0), _rect_lobe(t3 + Delta, delta, ramp, -1.0)]
    edges = sorted({x for lt, _ in block1 + block2 for x in lt} | {duration})
    dt, n = timegrid.choose_grid(duration, edges, dt)
    s1, s2 = timegrid.sample(_pl(block1), n, dt), timegrid.sample(_pl(block2), n, dt)
    bunit = _unit_b(s1, dt, gamma) + _unit_b(s2, dt, gamma)
    G = np.sqrt(amp / bunit) if kind == "b" else amp
    if kind == "G":
        check_derived_bvalues(G**2 * bunit, "gradient_strength")
    u1, u2 = _unit_directions(u1, G, "directions1"), _unit_directions(u2, G, "directions2")
    grads = G[:, None, None] * (s1[None, :, None] * u1[:, None, :] + s2[None, :, None] * u2[:, None, :])
    info = {"delta": delta, "Delta": Delta, "mixing_time": tm, "ramp_time": ramp, "label": "dde",
            "gradient_strength": G}
    return Scheme(grads, dt, gamma, info, edges)


# --------------------------------------------------------- b-tensor shapes
def _frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # orthonormal (e1, e2, axis) for each row of axis
    a = axis / np.linalg.norm(axis, axis=1, keepdims=True)
    helper = np.where(np.abs(a[:, [0]]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    e1 = np.cross(a, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(a, e1)
    return e1, e2, a


def tensor_encoding(bvalues, b_delta=0.0, directions=None, *, b_eta=0.0, duration: float = 60e-3,
                    dt: float | None = None, gamma: float = GAMMA) -> Scheme:
    """Free-waveform b-tensor encoding with any b_Delta in [-1/2, 1].

    The b-tensor of measurement m has eigenvalues b/3 (1 + 2 b_Delta) along its
    symmetry axis ``directions[m]`` and b/3 (1 - b_Delta (1 +/- b_eta))
    perpendicular to it (Topgaard's convention). The waveform is the sum of
    three q-trajectories q_k(t) ~ sin(k pi t / duration), k = 1, 2, 3, one per
    principal axis (the symmetry axis takes k = 1), made exactly orthonormal
    on the sampled grid so that the sampled B is the requested one to
    rounding. Note that the three axes are encoded at different frequencies:
    Gaussian diffusion does not care; restricted diffusion does ("spectral
    anisotropy", Lundell et al. 2019).

    Parameters
    ----------
    bvalues : array_like
        (M,) b-values in s/m^2.
    b_delta : float or array_like
        Anisotropy (dimensionless, one or (M,)): 1 linear (LTE), 0 spherical
        (STE), -1/2 planar (PTE).
    directions : array_like, optional
        (M, 3) or (3,) symmetry axes (default z).
    b_eta : float or array_like
        Asymmetry in [0, 1] (dimensionless, one or (M,)); 0 for axially
        symmetric tensors.
    duration : float
        Encoding duration (echo time) in s.
    dt : float, optional
        Time step in s (default <= 10 us).
    gamma : float
        Gyromagnetic ratio in rad/s/T.

    Returns
    -------
    Scheme
        M measurements whose b-tensors (s/m^2) have the requested b, b_Delta
        and b_eta.

    Examples
    --------
    Linear, spherical and planar encoding at b = 1000 s/mm^2:

    >>> import numpy as np, sequences
    >>> s = sequences.tensor_encoding(bvalues=[1e9, 1e9, 1e9], b_delta=[1, 0, -0.5])
    >>> np.round(s.bvalues / 1e6)
    array([1000., 1000., 1000.])
    >>> np.round(s.b_delta, 6) + 0.0
    array([ 1. ,  0. , -0.5])
    >>> np.round(np.linalg.eigvalsh(s.btensors[1]) / 1e6, 1)
    array([333.3, 333.3, 333.3])
    """
    b = check_si_bvalues(bvalues)
    T = _check_time("duration", duration)
    u = _directions(directions, None)
    n = max(b.size, u.shape[0], np.size(b_delta), np.size(b_eta))
    try:
        b, u = np.broadcast_to(b, (n,)).astype(float), np.broadcast_to(u, (n, 3)).astype(float)
        bd = np.broadcast_to(np.asarray(b_delta, dtype=float), (n,))
        eta = np.broadcast_to(np.asarray(b_eta, dtype=float), (n,))
    except ValueError as exc:
        raise ValueError("bvalues, b_delta, directions and b_eta must have matching lengths") from exc
    if not np.all(np.isfinite(bd)) or np.any(bd < -0.5 - 1e-12) or np.any(bd > 1 + 1e-12):
        raise ValueError("b_delta must lie in [-1/2, 1] (1 = LTE, 0 = STE, -1/2 = PTE)")
    if not np.all(np.isfinite(eta)) or np.any(eta < 0) or np.any(eta > 1):
        raise ValueError("b_eta must lie in [0, 1]")
    iso = b / 3.0
    lam = np.stack([iso * (1 + 2 * bd), iso * (1 - bd * (1 + eta)), iso * (1 - bd * (1 - eta))], axis=1)
    if np.any(lam < -1e-12 * np.maximum(b, 1)[:, None]):
        raise ValueError("this b_delta and b_eta give a negative b-tensor eigenvalue; lower b_eta")
    lam = np.clip(lam, 0.0, None)
    if np.any((np.linalg.norm(u, axis=1) == 0) & (b > 0)):
        raise ValueError("directions must be non-zero where b > 0")
    u = np.where(np.linalg.norm(u, axis=1, keepdims=True) == 0, [[0.0, 0.0, 1.0]], u)
    e1, e2, a = _frame(u)
    dt, nsteps = timegrid.choose_grid(T, [0.0, T], dt)

    def sine_q(k: int):
        # unit shape whose running integral is sin(k pi t / T): s = (k pi / T) cos(k pi t / T)
        return lambda x: np.sin(k * np.pi * np.clip(np.asarray(x, float), 0.0, T) / T)

    S = np.stack([timegrid.sample(sine_q(k), nsteps, dt) for k in (1, 2, 3)])
    L = np.linalg.cholesky(gamma**2 * timegrid.gram(S, dt))
    S = np.linalg.solve(L, S)  # orthonormal: gamma^2 gram(S) = I (units: b per (T/m)^2)
    amps = np.sqrt(lam)  # T/m-equivalent scaling so that each axis gets its eigenvalue
    grads = (np.einsum("t,mi->mti", S[0], amps[:, [0]] * a)
             + np.einsum("t,mi->mti", S[1], amps[:, [1]] * e1)
             + np.einsum("t,mi->mti", S[2], amps[:, [2]] * e2))
    info = {"label": "tensor"}
    return Scheme(grads, dt, gamma, info, [0.0, T])


# ---------------------------------------------------------------- arrays
def from_waveforms(gradients, dt: float, *, gamma: float = GAMMA, check_echo: bool = True,
                   label: str = "waveform") -> Scheme:
    """A scheme from effective gradient waveforms given as arrays.

    Parameters
    ----------
    gradients : array_like
        (M, T, 3) or (T, 3) effective gradients in T/m (refocusing sign
        applied), constant within each step.
    dt : float
        Time step in s.
    gamma : float
        Gyromagnetic ratio in rad/s/T.
    check_echo : bool
        Refuse waveforms whose q(t) does not return to zero (no spin echo).
    label : str
        Label stored with every measurement.

    Returns
    -------
    Scheme
    """
    g = np.asarray(gradients, dtype=float)
    if g.ndim == 2:
        g = g[None]
    if g.ndim != 3 or g.shape[-1] != 3:
        raise ValueError(f"gradients must have shape (M, T, 3) or (T, 3) in T/m, got {np.shape(gradients)}")
    if not np.all(np.isfinite(g)):
        raise ValueError("gradients contain NaN or infinite values")
    check_gradient_strength(np.abs(g).max(initial=0.0), "gradients")
    dt = check_seconds(dt, "dt")
    if dt <= 0:
        raise ValueError("dt must be positive (s)")
    scheme = Scheme(g, dt, gamma, {"label": np.full(g.shape[0], label)})
    if check_echo:
        scheme.check_echo()
    check_derived_bvalues(scheme.bvalues, "gradients")
    return scheme
