"""The acquisition scheme: M effective gradient waveforms on one time grid.

Everything users exchange (b-values, b-tensors, FSL tables, Camino schemes) is
derived from the waveforms, never stored beside them, so it cannot disagree
with what the walker plays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from . import timegrid
from .constants import GAMMA, S_PER_MM2
from .factorise import Factorisation, factorise

#: Per-measurement metadata keys and the fill value used where a key is absent.
INFO_FILL: dict[str, Any] = {
    "delta": np.nan,        # pulse duration (s), PGSE/OGSE/DDE
    "Delta": np.nan,        # separation of pulse onsets (s)
    "ramp_time": np.nan,    # gradient ramp time (s)
    "frequency": np.nan,    # OGSE frequency (Hz)
    "mixing_time": np.nan,  # DDE mixing time (s)
    "gradient_strength": np.nan,  # plateau amplitude (T/m) where defined
    "label": "",            # 'pgse', 'ogse-cos', 'dde', 'tensor', 'waveform' ...
    "echo_time": np.nan,    # TE (s); where absent, the waveform's duration when the scheme is built
}


class EchoConditionError(ValueError):
    """The waveform's q(t) does not return to zero at the end (no spin echo)."""


def _fill_info(info: dict[str, Any] | None, m: int) -> dict[str, np.ndarray]:
    info = dict(info or {})
    unknown = set(info) - set(INFO_FILL)
    if unknown:
        raise ValueError(f"unknown scheme info keys {sorted(unknown)}; known: {sorted(INFO_FILL)}")
    out = {}
    for key, fill in INFO_FILL.items():
        if key in info:
            v = np.asarray(info[key])
            v = np.broadcast_to(v, (m,)).copy() if v.ndim == 0 else v.copy()
            if v.shape != (m,):
                raise ValueError(f"scheme info {key!r} must have one value per measurement ({m})")
        else:
            v = np.full(m, fill, dtype=object if isinstance(fill, str) else float)
        out[key] = v.astype(str) if isinstance(fill, str) else v.astype(float)
    return out


def _info_property(key: str, doc: str) -> property:
    return property(lambda self: self.info[key], doc=doc)


@dataclass(frozen=True, eq=False)
class Scheme:
    """M diffusion-encoding measurements as effective gradient waveforms.

    The waveform of measurement m is piecewise constant: ``gradients[m, k]`` is
    the effective gradient (refocusing sign already applied) on the interval
    [k dt, (k+1) dt).

    Parameters
    ----------
    gradients : numpy.ndarray
        (M, T, 3) effective gradients in T/m.
    dt : float
        Time step in s.
    gamma : float
        Gyromagnetic ratio in rad/s/T used to turn gradients into q.
    info : dict, optional
        Per-measurement metadata (see ``INFO_FILL``): ``delta``, ``Delta`` (s),
        ``ramp_time`` (s), ``frequency`` (Hz), ``mixing_time`` (s),
        ``gradient_strength`` (T/m), ``label``.
    edges : numpy.ndarray, optional
        Times (s) of jumps and kinks of the analytic waveforms, used to tell
        whether a walker's time grid is aligned with them.
    refocusing : array_like, optional
        (M, P) times (s) of the refocusing (180-degree) pulses of each measurement, NaN-padded; a row of NaN
        (or P = 0) is a gradient echo. Default: one pulse at TE/2, the spin echo every generator here plays
        (its effective gradient is the applied one with the sign flipped after the pulse). Gradients are
        stored with these signs already applied; a static field offset is not, so the walker needs them to
        refocus it (see :meth:`field_signs`).

    Notes
    -----
    Build schemes with :func:`sequences.pgse`, :func:`sequences.ogse`,
    :func:`sequences.dde`, :func:`sequences.tensor_encoding` or
    :func:`sequences.from_waveforms` rather than directly.
    """

    gradients: np.ndarray
    dt: float
    gamma: float = GAMMA
    info: dict[str, np.ndarray] = field(default_factory=dict)
    edges: np.ndarray = field(default_factory=lambda: np.zeros(0))
    refocusing: Any = None

    def __post_init__(self) -> None:
        g = np.asarray(self.gradients, dtype=float)
        if g.ndim != 3 or g.shape[2] != 3:
            raise ValueError(f"gradients must have shape (M, T, 3) in T/m, got {g.shape}")
        if g.shape[0] == 0 or g.shape[1] == 0:
            raise ValueError(f"a scheme needs at least one measurement and one time step, got {g.shape}")
        if not np.all(np.isfinite(g)):
            raise ValueError("gradients contain NaN or infinite values")
        dt = float(self.dt)
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number of seconds, got {self.dt!r}")
        if g.shape[1] * dt > 10.0:
            raise ValueError(
                f"the waveforms last {g.shape[1] * dt:g} s; times are in seconds (is dt in ms?)"
            )
        gamma = float(self.gamma)
        if not (np.isfinite(gamma) and gamma > 0):
            raise ValueError(f"gamma must be positive (rad/s/T), got {self.gamma!r}")
        g.setflags(write=False)
        object.__setattr__(self, "gradients", g)
        object.__setattr__(self, "dt", dt)
        object.__setattr__(self, "gamma", gamma)
        info = _fill_info(self.info, g.shape[0])
        # a measurement's TE stays that of its own waveform when schemes are concatenated (padded)
        info["echo_time"] = np.where(np.isnan(info["echo_time"]), g.shape[1] * dt, info["echo_time"])
        object.__setattr__(self, "info", info)
        object.__setattr__(self, "edges", np.unique(np.asarray(self.edges, dtype=float)))
        object.__setattr__(self, "refocusing", _check_refocusing(self.refocusing, info["echo_time"]))

    delta = _info_property("delta", "(M,) pulse (lobe) duration in s; NaN where undefined.")
    Delta = _info_property("Delta", "(M,) separation of pulse (lobe) onsets in s; NaN where undefined.")
    ramp_time = _info_property("ramp_time", "(M,) gradient ramp time in s; NaN where undefined.")
    frequency = _info_property("frequency", "(M,) OGSE frequency in Hz; NaN where undefined.")
    mixing_time = _info_property("mixing_time", "(M,) DDE mixing time in s; NaN where undefined.")
    gradient_strength = _info_property("gradient_strength", "(M,) plateau amplitude in T/m; NaN where undefined.")
    echo_time = _info_property("echo_time", "(M,) echo time TE in s (the waveform's own duration unless given).")
    label = _info_property("label", "(M,) kind of each measurement ('pgse', 'ogse-cos', 'dde', 'tensor', ...).")

    @property
    def gradient_echo(self) -> np.ndarray:
        """(M,) bool: measurements without a refocusing pulse (a static field offset is not refocused)."""
        return ~np.any(np.isfinite(self.refocusing), axis=1)

    def with_refocusing(self, times) -> "Scheme":
        """The same effective waveforms with other refocusing pulses.

        Parameters
        ----------
        times : array_like
            Pulse times in s: () or [] for a gradient echo, (P,) for every measurement, or (M, P) NaN-padded.

        Returns
        -------
        Scheme

        Examples
        --------
        >>> import sequences
        >>> s = sequences.pgse(delta=5e-3, Delta=20e-3, bvalues=[0.0, 1e9])
        >>> bool(s.with_refocusing([]).gradient_echo.all())
        True
        """
        t = np.asarray(times, dtype=float)
        if t.ndim <= 1:
            t = np.broadcast_to(t.reshape(1, -1), (len(self), t.size))
        return Scheme(self.gradients, self.dt, self.gamma, self.info, self.edges, t)

    def field_signs(self) -> np.ndarray:
        """(M, T) sign with which a static field offset adds to the phase on each time step.

        A refocusing pulse negates the phase gathered before it. The sign convention is the effective
        gradient's: it equals the applied gradient up to the first pulse and flips at each pulse, so an offset
        on [t, t + dt) counts with (-1)^(pulses before t) and a physical background gradient G0 acts as the
        effective gradient (sign) G0 (the overall sign of the echo's phase, common to both, does not change
        the signal). Nothing counts after a measurement's own echo time (schemes padded by concatenation). A
        pulse inside a step splits it: the step's value is the time-weighted mean.

        Returns
        -------
        numpy.ndarray
            (M, T) values in [-1, 1] (dimensionless).
        """
        edges = np.arange(self.n_steps + 1) * self.dt
        out = np.empty((len(self), self.n_steps))
        for m in range(len(self)):
            pulses = np.sort(self.refocusing[m][np.isfinite(self.refocusing[m])])
            te = float(self.echo_time[m])
            cuts = np.unique(np.concatenate([[0.0], pulses, [te]]))
            # sign on each piece between cuts: (-1)^(pulses at or before the piece's start); 0 after the echo
            sign = np.array([(-1.0) ** np.count_nonzero(pulses <= a + 1e-15) for a in cuts[:-1]] + [0.0])
            first = np.searchsorted(cuts, edges[:-1], side="right") - 1
            last = np.searchsorted(cuts, edges[1:], side="left") - 1
            out[m] = sign[np.minimum(first, len(sign) - 1)]
            for k in np.flatnonzero(first != last):  # a step that holds a pulse (or the echo): time-weighted
                lo, hi = edges[k], edges[k + 1]
                inner = np.clip(cuts, lo, hi)
                out[m, k] = float(np.sum(sign[:-1] * np.diff(inner)) / (hi - lo))
        return out

    # ------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        return self.gradients.shape[0]

    @property
    def n_measurements(self) -> int:
        """Number of measurements M."""
        return self.gradients.shape[0]

    @property
    def n_steps(self) -> int:
        """Number of time steps T."""
        return self.gradients.shape[1]

    @property
    def duration(self) -> float:
        """Duration of the waveforms (s); the echo forms at its end."""
        return self.n_steps * self.dt

    @property
    def times(self) -> np.ndarray:
        """(T + 1,) grid points in s."""
        return np.arange(self.n_steps + 1) * self.dt

    # ------------------------------------------------------- derived physics
    @cached_property
    def qt(self) -> np.ndarray:
        """(M, T + 1, 3) wave vector q(t) = gamma * integral of g, in rad/m, at grid points."""
        q = np.zeros((self.n_measurements, self.n_steps + 1, 3))
        np.cumsum(self.gradients, axis=1, out=q[:, 1:])
        q *= self.gamma * self.dt
        return q

    @cached_property
    def btensors(self) -> np.ndarray:
        """(M, 3, 3) b-tensors B = integral of q q^T dt in s/m^2 (exact for the sampled waveform)."""
        return self.gamma**2 * timegrid.gram(self.gradients.transpose(0, 2, 1), self.dt)

    @property
    def bvalues(self) -> np.ndarray:
        """(M,) b-values tr(B) in s/m^2."""
        return np.trace(self.btensors, axis1=1, axis2=2)

    def discrete_btensors(self, sampling: str = "trapezoid") -> np.ndarray:
        """b-tensors seen by a random walk that samples positions on this grid.

        A walker phase phi = gamma dt sum_k g_k . y_k is exactly Gaussian for a
        Gaussian walk, with variance given by these tensors:

        - ``"trapezoid"``: y_k = (x_{k-1} + x_k)/2, B = dt sum_k m_k m_k^T with
          m_k the mid-step q, i.e. B - gamma^2 dt^3/12 sum_k g_k g_k^T;
        - ``"end"``: y_k = x_k, B = dt sum_k q_{k-1} q_{k-1}^T.

        Parameters
        ----------
        sampling : {"trapezoid", "end"}
            How the walker samples positions within a step.

        Returns
        -------
        numpy.ndarray
            (M, 3, 3) in s/m^2.
        """
        cache = self.__dict__.setdefault("_discrete_btensors", {})
        if sampling not in cache:
            q = self.qt
            if sampling == "trapezoid":
                mid = 0.5 * (q[:, :-1] + q[:, 1:])
            elif sampling == "end":
                mid = q[:, :-1]
            else:
                raise ValueError(f"sampling must be 'trapezoid' or 'end', got {sampling!r}")
            B = self.dt * np.einsum("mti,mtj->mij", mid, mid)
            B.setflags(write=False)
            cache[sampling] = B
        return cache[sampling]

    @cached_property
    def _eig(self) -> tuple[np.ndarray, np.ndarray]:
        # order eigenvalues as (xx, yy, zz) with |zz - iso| >= |xx - iso| >= |yy - iso|
        w, v = np.linalg.eigh(self.btensors)
        iso = w.mean(axis=1, keepdims=True)
        dev = np.abs(w - iso)
        order = np.argsort(dev, axis=1, kind="stable")  # yy, xx, zz
        order = order[:, [1, 0, 2]]
        w = np.take_along_axis(w, order, axis=1)
        v = np.take_along_axis(v, order[:, None, :], axis=2)
        return w, v

    @property
    def b_delta(self) -> np.ndarray:
        """(M,) b-tensor anisotropy b_Delta (1 LTE, -1/2 PTE, 0 STE; 0 where b = 0)."""
        w = self._eig[0]
        b = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            bd = (w[:, 2] - 0.5 * (w[:, 0] + w[:, 1])) / b
        return np.where(b > 0, bd, 0.0)

    @property
    def b_eta(self) -> np.ndarray:
        """(M,) b-tensor asymmetry b_eta = (b_yy - b_xx)/(2 b_iso b_Delta) (0 where undefined)."""
        w = self._eig[0]
        b = w.sum(axis=1)
        bd = self.b_delta
        with np.errstate(invalid="ignore", divide="ignore"):
            eta = (w[:, 1] - w[:, 0]) / (2.0 * (b / 3.0) * bd)
        return np.where((b > 0) & (np.abs(bd) > 1e-12), eta, 0.0)

    @property
    def directions(self) -> np.ndarray:
        """(M, 3) principal directions: the b-tensor axis furthest from isotropy.

        For linear encoding this is the gradient direction, with the sign of the
        strongest gradient sample; zero vectors where b = 0.
        """
        v = self._eig[1][:, :, 2].copy()
        g = self.gradients
        proj = np.einsum("mti,mi->mt", g, v)
        # sign of the first sample with a strong projection (rounding must not pick lobe 2)
        k = np.argmax(np.abs(proj) > 0.5 * np.abs(proj).max(axis=1, keepdims=True), axis=1)
        sign = np.sign(proj[np.arange(len(self)), k])
        sign[sign == 0] = 1.0
        v *= sign[:, None]
        v[self.bvalues <= 0] = 0.0
        return v

    @property
    def gradient_amplitudes(self) -> np.ndarray:
        """(M,) largest gradient magnitude of each waveform in T/m."""
        return np.sqrt(np.einsum("mti,mti->mt", self.gradients, self.gradients)).max(axis=1)

    def spectrum(self, n_fft: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Encoding power spectrum of each measurement.

        S(f) = 2 ``|Q(f)|^2`` summed over axes, with Q(f) = integral q(t) exp(-2 pi i f t) dt,
        so that integral_0^inf S(f) df = b (Parseval; ``np.trapezoid(power, freqs)``
        recovers b).

        Parameters
        ----------
        n_fft : int, optional
            FFT length (zero padding); default 8 x the next power of two above T.

        Returns
        -------
        freqs : numpy.ndarray
            (F,) frequencies in Hz.
        power : numpy.ndarray
            (M, F) spectral density in s^2/m^2 (b per Hz).
        """
        T = self.n_steps
        if n_fft is None:
            n_fft = 8 * (1 << int(math.ceil(math.log2(max(T, 2)))))
        qmid = 0.5 * (self.qt[:, :-1] + self.qt[:, 1:])
        Q = np.fft.rfft(qmid, n=n_fft, axis=1) * self.dt
        P = 2.0 * np.sum(np.abs(Q) ** 2, axis=2)
        return np.fft.rfftfreq(n_fft, self.dt), P

    # --------------------------------------------------------------- checks
    def check_echo(self, rtol: float = 1e-6) -> None:
        """Raise :class:`EchoConditionError` unless q(TE) = 0 for every measurement.

        Parameters
        ----------
        rtol : float
            Allowed ``|q(TE)|`` relative to the largest ``|q(t)|`` of the
            measurement (dimensionless).

        Raises
        ------
        EchoConditionError
            If any measurement's q(t) (rad/m) does not return to zero at the
            echo time.
        """
        q = self.qt
        qmax = np.sqrt(np.einsum("mti,mti->mt", q, q)).max(axis=1)
        qend = np.linalg.norm(q[:, -1], axis=1)
        bad = np.nonzero(qend > rtol * np.maximum(qmax, 1e-300))[0]
        if bad.size:
            m = int(bad[0])
            raise EchoConditionError(
                f"{bad.size} measurement(s) violate the echo condition q(TE) = 0, e.g. measurement {m}: "
                f"|q(TE)| = {qend[m]:.3g} rad/m against max |q| = {qmax[m]:.3g} rad/m. The gradients must "
                "be effective gradients (sign flipped after each refocusing pulse) with zero net area; "
                "for NOW-style files multiply gwf by the rf sign vector."
            )

    def aligned(self, n_steps: int) -> bool:
        """True when every waveform edge falls on a grid point of ``n_steps`` equal steps.

        Parameters
        ----------
        n_steps : int
            Number of equal steps over the scheme's duration (step
            ``duration / n_steps`` in s).

        Returns
        -------
        bool
            Whether every edge time (s) in ``edges`` is a grid point.
        """
        return timegrid.aligned(self.edges, self.duration / n_steps)

    def aligned_n_steps(self, n_steps: int) -> int:
        """Smallest step count >= ``n_steps`` whose grid is aligned with every edge.

        Falls back to ``n_steps`` when no aligned count up to 4 x ``n_steps`` exists.

        Parameters
        ----------
        n_steps : int
            Smallest acceptable number of steps over the scheme's duration.

        Returns
        -------
        int
            The aligned step count (or ``n_steps`` itself as a fallback).
        """
        for n in range(int(n_steps), 4 * int(n_steps) + 1):
            if self.aligned(n):
                return n
        return int(n_steps)

    # ------------------------------------------------------------ transforms
    def resample(self, n_steps: int) -> "Scheme":
        """The same waveforms step-averaged onto ``n_steps`` equal steps.

        Step averaging keeps q(t) exact at every new grid point, so the echo
        condition survives; b changes only by the within-step shape, and not at
        all where the edges are aligned (see :meth:`aligned`).

        Parameters
        ----------
        n_steps : int
            Number of steps of the new grid over the same duration.

        Returns
        -------
        Scheme
        """
        n_steps = int(n_steps)
        if n_steps < 1:
            raise ValueError(f"n_steps must be a positive integer, got {n_steps}")
        if n_steps == self.n_steps:
            return self
        # a scheme never changes (its arrays are read-only), so its resampled copies are kept: a walker run on
        # the same scheme again reuses the copy and its factorisation
        cache = self.__dict__.setdefault("_resampled", {})
        if n_steps not in cache:
            if len(cache) >= 4:
                cache.clear()
            cache[n_steps] = self._resample(n_steps)
        return cache[n_steps]

    def _resample(self, n_steps: int) -> "Scheme":
        dt_new = self.duration / n_steps
        new_t = np.arange(n_steps + 1) * dt_new
        old_t = self.times
        area = np.zeros((self.n_measurements, self.n_steps + 1, 3))
        np.cumsum(self.gradients * self.dt, axis=1, out=area[:, 1:])
        out = np.empty((self.n_measurements, n_steps, 3))
        for m in range(self.n_measurements):
            for i in range(3):
                out[m, :, i] = np.diff(np.interp(new_t, old_t, area[m, :, i])) / dt_new
        return Scheme(out, dt_new, self.gamma, self.info, self.edges, self.refocusing)

    def rotate(self, rotation: np.ndarray) -> "Scheme":
        """Rotate every waveform: g -> R g.

        Parameters
        ----------
        rotation : numpy.ndarray
            (3, 3) proper rotation matrix.

        Returns
        -------
        Scheme
        """
        R = np.asarray(rotation, dtype=float)
        if R.shape != (3, 3) or not np.allclose(R @ R.T, np.eye(3), atol=1e-9) or np.linalg.det(R) < 0:
            raise ValueError("rotation must be a 3x3 proper rotation matrix (R R^T = I, det R = +1)")
        return Scheme(self.gradients @ R.T, self.dt, self.gamma, self.info, self.edges, self.refocusing)

    def select(self, index: Any) -> "Scheme":
        """Measurements picked by an index, slice or boolean mask.

        Also available as ``scheme[index]``.

        Parameters
        ----------
        index : int, slice, array_like of int or array_like of bool
            Which measurements to keep (a (M,) mask for boolean selection).

        Returns
        -------
        Scheme
            The selected measurements, on the same time grid.

        Raises
        ------
        IndexError
            If the selection is empty.
        """
        idx = np.arange(len(self))[index]
        idx = np.atleast_1d(idx)
        if idx.size == 0:
            raise IndexError("selection is empty; a scheme needs at least one measurement")
        info = {k: v[idx] for k, v in self.info.items()}
        return Scheme(self.gradients[idx], self.dt, self.gamma, info, self.edges, self.refocusing[idx])

    __getitem__ = select

    def __add__(self, other: "Scheme") -> "Scheme":
        return concatenate([self, other])

    def factorise(self, rtol: float = 1e-10) -> Factorisation:
        """Temporal-shape factorisation G_m(t) = sum_k f_k(t) g_mk (see :func:`sequences.factorise`).

        Parameters
        ----------
        rtol : float
            Allowed reconstruction error relative to the largest gradient
            magnitude (dimensionless).

        Returns
        -------
        Factorisation
            K temporal shapes (dimensionless) and (M, K, 3) amplitudes in T/m.
        """
        return factorise(self.gradients, rtol=rtol)

    @cached_property
    def shapes(self) -> Factorisation:
        """Exact factorisation cached on the scheme (the walker's phase basis)."""
        return self.factorise()

    # --------------------------------------------------------------- exports
    def to_dipy(self, b0_threshold: float = 50.0):
        """A dipy ``GradientTable`` (b in s/mm^2, times in s) with the b-tensors.

        Parameters
        ----------
        b0_threshold : float
            dipy's b = 0 threshold in s/mm^2.

        Returns
        -------
        dipy.core.gradients.GradientTable
        """
        try:
            from dipy.core.gradients import gradient_table
        except ImportError as exc:  # optional extra
            raise ImportError("to_dipy() needs dipy: pip install 'diffwalk[dipy]'") from exc
        kw = {}
        if np.all(np.isfinite(self.Delta)) and np.unique(self.Delta).size == 1:
            kw["big_delta"] = float(self.Delta[0])
            kw["small_delta"] = float(self.delta[0])
        b = self.bvalues / S_PER_MM2
        return gradient_table(b, bvecs=self.directions, btens=self.btensors / S_PER_MM2,
                              b0_threshold=b0_threshold, **kw)

    def __repr__(self) -> str:
        b = self.bvalues / S_PER_MM2
        labels = ",".join(sorted(set(self.label) - {""})) or "waveform"
        return (f"Scheme({len(self)} measurements [{labels}], {self.n_steps} steps x {self.dt * 1e6:.4g} us "
                f"= {self.duration * 1e3:.4g} ms, b {b.min():.4g}-{b.max():.4g} s/mm^2, gamma {self.gamma:.8g})")


def _check_refocusing(refocusing, echo_time: np.ndarray) -> np.ndarray:
    """(M, P) read-only pulse times (s), NaN-padded; default one pulse at TE/2 per measurement."""
    M = echo_time.shape[0]
    if refocusing is None:
        out = (0.5 * echo_time)[:, None].copy()
    else:
        out = np.array(refocusing, dtype=float, ndmin=2)
        if out.shape[0] != M or out.ndim != 2:
            raise ValueError(f"refocusing must have shape (M, P) = ({M}, P) pulse times in s, NaN-padded; "
                             f"got shape {np.shape(refocusing)}")
        t = out[~np.isnan(out)]
        if np.any(~np.isfinite(t)) or np.any(t <= 0.0):
            raise ValueError("refocusing times must be positive finite seconds after the excitation (NaN pads)")
        late = np.nansum(out > echo_time[:, None] * (1 + 1e-12), axis=1) > 0
        if np.any(late):
            m = int(np.flatnonzero(late)[0])
            raise ValueError(f"refocusing: measurement {m} has a pulse after its echo time "
                             f"({echo_time[m] * 1e3:g} ms); times are in seconds from the excitation")
    out.setflags(write=False)
    return out


def _common_dt(dts: list[float]) -> float:
    # the finest grid on which every scheme's steps are whole numbers of steps
    base = min(dts)
    for d in dts:
        r = d / base
        if abs(r - round(r)) > 1e-9 * r:
            raise ValueError(
                f"cannot concatenate schemes with time steps {sorted(set(dts))} s: they are not integer "
                "multiples of each other. Build them with the same dt=..., or resample one first."
            )
    return base


def concatenate(schemes: list[Scheme]) -> Scheme:
    """Concatenate the measurements of several schemes.

    Schemes with different time steps are put on the finest step when the
    steps are integer multiples of each other (exact); shorter waveforms are
    padded with zero gradient at the end, which leaves b unchanged.

    Parameters
    ----------
    schemes : list of Scheme

    Returns
    -------
    Scheme
    """
    if not schemes:
        raise ValueError("nothing to concatenate")
    gammas = {s.gamma for s in schemes}
    if len(gammas) > 1:
        raise ValueError(f"cannot concatenate schemes built with different gamma values {sorted(gammas)}")
    dt = _common_dt([s.dt for s in schemes])
    blocks = []
    for s in schemes:
        r = int(round(s.dt / dt))
        blocks.append(np.repeat(s.gradients, r, axis=1) if r > 1 else s.gradients)
    T = max(b.shape[1] for b in blocks)
    g = np.zeros((sum(b.shape[0] for b in blocks), T, 3))
    row = 0
    for b in blocks:
        g[row:row + b.shape[0], :b.shape[1]] = b
        row += b.shape[0]
    info = {k: np.concatenate([s.info[k] for s in schemes]) for k in INFO_FILL}
    edges = np.concatenate([s.edges for s in schemes] + [[s.duration for s in schemes]])
    P = max(s.refocusing.shape[1] for s in schemes)
    refocusing = np.full((g.shape[0], P), np.nan)
    row = 0
    for s in schemes:
        refocusing[row:row + len(s), :s.refocusing.shape[1]] = s.refocusing
        row += len(s)
    return Scheme(g, dt, schemes[0].gamma, info, edges, refocusing)
