"""Pulseq sequences (``.seq``, format 1.4 and 1.5) as diffwalk schemes: our own reader of the documented format.

A Pulseq file lists blocks that play RF pulses, gradients (trapezoids or arbitrary shapes) and ADC readouts
back to back. :func:`read_pulseq` turns it into a :class:`sequences.Scheme`: each excitation starts a
measurement; its time grid runs from the excitation pulse's centre to its echo. After refocusing pulses the
echo is the spin echo (the Hahn echo: 2 t_pulse - t_previous_echo over the pulses, from the excitation)
wherever the readouts that follow the last pulse span it (one readout centred on it, or an EPI train whose
k-space centre it is); otherwise, and for gradient echoes, it is the centre of the first readout after the
last refocusing pulse. The three gradient axes are sampled on the file's gradient raster
(cell averages of the piecewise-linear waveforms, so q(t) is exact at every grid point) and carry the sign the
refocusing pulses leave (the effective gradient); the refocusing pulses' centres become the scheme's
``refocusing`` times, so a static field offset is refocused exactly as the file's pulses refocus it.

RF pulses are instantaneous rotations at their centre (the format's ``center`` column from 1.5 on, the
magnitude peak before). A pulse is an excitation or a refocusing pulse by its ``use`` field (1.5) or, where
that is undefined, by its flip angle (90 or 180 degrees within 10 %); any other pulse (inversion,
saturation, a 30-degree excitation) is refused with the reason, since the phase of a diffusion measurement
is not defined across it.

Format reference: Layton et al., "Pulseq: a rapid and hardware-independent pulse sequence prototyping
framework", MRM 77:1544 (2017), and the Pulseq specification (pulseq.github.io), sections [VERSION],
[DEFINITIONS], [BLOCKS], [RF], [GRADIENTS], [TRAP], [ADC], [SHAPES].
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .constants import GAMMA
from .scheme import Scheme

#: flip angles (rad) an RF pulse of undefined use is classified by, and the relative tolerance
EXCITATION_FLIP = math.pi / 2
REFOCUSING_FLIP = math.pi
FLIP_TOLERANCE = 0.1
_USES = {"e": "excitation", "r": "refocusing", "i": "inversion", "s": "saturation", "p": "preparation",
         "o": "other", "u": "undefined"}


class PulseqError(ValueError):
    """A Pulseq file this reader cannot turn into a diffusion scheme (names the file and the reason)."""


def _sections(text: str) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    current = None
    lines: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            if current is not None:
                out[current] = lines
            current, lines = line[1:-1].upper(), []
            continue
        lines.append(line.split())
    if current is not None:
        out[current] = lines
    return out


def _decompress(data: np.ndarray, n: int) -> np.ndarray:
    """A shape's samples: stored raw when they are as many as ``num_samples``, else as run-length encoded
    differences (a value written twice is followed by the count of further repeats), summed."""
    if data.size == n:
        return data
    out = []
    i = 0
    while i < data.size:
        out.append(data[i])
        if i + 1 < data.size and data[i + 1] == data[i]:
            count = int(round(data[i + 2])) if i + 2 < data.size else 0
            out.extend([data[i]] * (count + 1))
            i += 3
        else:
            i += 1
    diffs = np.asarray(out, dtype=float)
    if diffs.size != n:
        raise ValueError(f"a compressed shape decodes to {diffs.size} samples, not {n}")
    return np.cumsum(diffs)


def _shapes(rows: list[list[str]]) -> dict[int, np.ndarray]:
    shapes: dict[int, np.ndarray] = {}
    i = 0
    while i < len(rows):
        if rows[i][0] != "shape_id":
            raise ValueError(f"[SHAPES]: expected 'shape_id', found {' '.join(rows[i])!r}")
        sid = int(rows[i][1])
        if rows[i + 1][0] != "num_samples":
            raise ValueError(f"[SHAPES] shape {sid}: expected 'num_samples'")
        n = int(rows[i + 1][1])
        j = i + 2
        vals = []
        while j < len(rows) and rows[j][0] != "shape_id":
            vals.append(float(rows[j][0]))
            j += 1
        shapes[sid] = _decompress(np.asarray(vals), n)
        i = j
    return shapes


def _piecewise_linear_cells(times: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Averages over the cells [edges[k], edges[k+1]) of the piecewise-linear function through (times, values)
    (zero outside), exact: differences of its running integral."""
    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    seg = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * np.diff(t))])

    def integral(x):
        x = np.clip(x, t[0], t[-1])
        k = np.clip(np.searchsorted(t, x, side="right") - 1, 0, len(t) - 2)
        dt = x - t[k]
        width = t[k + 1] - t[k]
        slope = np.where(width > 0, (v[k + 1] - v[k]) / np.where(width > 0, width, 1.0), 0.0)
        return seg[k] + v[k] * dt + 0.5 * slope * dt * dt

    return np.diff(integral(edges)) / np.diff(edges)


def read_pulseq(path: str | Path, gamma: float = GAMMA) -> Scheme:
    """Read a Pulseq ``.seq`` file (format 1.4 or 1.5) into a scheme: one measurement per excitation.

    Parameters
    ----------
    path : str or Path
        The ``.seq`` file.
    gamma : float
        Gyromagnetic ratio, rad/s/T: converts the file's gradients (Hz/m) to T/m.

    Returns
    -------
    Scheme
        Effective gradients (T/m) on the file's gradient raster, from each excitation's centre to its echo
        (the spin echo where the readouts after the last refocusing pulse span it, as an EPI train centred
        on it does; else the first readout's centre); ``refocusing`` holds the refocusing pulses' times
        after the excitation (none: a gradient echo); ``echo_time`` the echo's; ``label`` "pulseq".

    Raises
    ------
    PulseqError
        For a file that is not Pulseq, a version before 1.4, an RF pulse that is neither an excitation nor a
        refocusing pulse, an excitation without a readout, or a refocusing pulse before any excitation.

    Examples
    --------
    >>> import sequences
    >>> scheme = sequences.read_pulseq("dwi.seq")  # doctest: +SKIP
    >>> scheme.bvalues  # doctest: +SKIP
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such Pulseq file")
    try:
        return _read(p, float(gamma))
    except PulseqError:
        raise
    except (ValueError, KeyError, IndexError) as exc:
        raise PulseqError(f"{p}: not a readable Pulseq file: {exc}") from None


def _read(p: Path, gamma: float) -> Scheme:
    sec = _sections(p.read_text(errors="replace"))
    if "BLOCKS" not in sec or "VERSION" not in sec:
        raise PulseqError(f"{p}: no [VERSION] or [BLOCKS] section: not a Pulseq file")
    version = {r[0]: int(r[1]) for r in sec["VERSION"] if len(r) >= 2}
    major, minor = version.get("major", 0), version.get("minor", 0)
    if (major, minor) < (1, 4):
        raise PulseqError(f"{p}: Pulseq format {major}.{minor}; this reader takes 1.4 and later (block durations "
                          "are explicit from 1.4 on): write the file with a current Pulseq or pypulseq")
    defs = {r[0]: r[1:] for r in sec.get("DEFINITIONS", [])}
    grad_raster = float(defs.get("GradientRasterTime", ["1e-5"])[0])
    rf_raster = float(defs.get("RadiofrequencyRasterTime", ["1e-6"])[0])
    block_raster = float(defs.get("BlockDurationRaster", ["1e-5"])[0])
    shapes = _shapes(sec.get("SHAPES", []))
    v15 = (major, minor) >= (1, 5)
    rfs = {int(r[0]): r for r in sec.get("RF", [])}
    traps = {int(r[0]): [float(x) for x in r[1:6]] for r in sec.get("TRAP", [])}
    arbs = {int(r[0]): r for r in sec.get("GRADIENTS", [])}
    adcs = {int(r[0]): r for r in sec.get("ADC", [])}
    hz_per_t = gamma / (2 * math.pi)

    events = []  # (time, kind, flip) of RF centres; (time, "adc", half its duration) of ADC centres
    pieces = {0: [], 1: [], 2: []}  # per axis: (times, values in T/m) of each gradient event
    t0 = 0.0
    for row in sec["BLOCKS"]:
        ids = [int(x) for x in row]
        _, dur, rf_id, gx, gy, gz, adc_id = ids[:7]
        if rf_id:
            events.append(_rf_event(p, rf_id, rfs[rf_id], shapes, t0, rf_raster, v15))
        for axis, gid in enumerate((gx, gy, gz)):
            if not gid:
                continue
            if gid in traps:
                amp, rise, flat, fall, delay = traps[gid]
                s = t0 + delay * 1e-6
                knots = s + np.array([0.0, rise, rise + flat, rise + flat + fall]) * 1e-6
                pieces[axis].append((knots, np.array([0.0, amp, amp, 0.0]) / hz_per_t))
            elif gid in arbs:
                pieces[axis].append(_arbitrary(arbs[gid], shapes, t0, grad_raster, v15, hz_per_t))
            else:
                raise PulseqError(f"{p}: block {ids[0]} plays gradient {gid}, which no [TRAP] or [GRADIENTS] "
                                  "row defines")
        if adc_id:
            a = adcs[adc_id]
            num, dwell, delay = int(a[1]), float(a[2]) * 1e-9, float(a[3]) * 1e-6
            events.append((t0 + delay + 0.5 * num * dwell, "adc", 0.5 * num * dwell))
        t0 += dur * block_raster
    return _measurements(p, events, pieces, grad_raster, gamma)


def _rf_event(p: Path, rf_id: int, r: list[str], shapes: dict, t0: float, raster: float, v15: bool):
    amp = float(r[1])
    mag = shapes[int(r[2])]
    time_id = int(r[4])
    times = shapes[time_id] * raster if time_id else (np.arange(mag.size) + 0.5) * raster
    if v15:
        center, delay, use = float(r[5]) * 1e-6, float(r[6]) * 1e-6, r[-1].lower()
    else:
        center, delay, use = float(times[int(np.argmax(np.abs(mag)))]), float(r[5]) * 1e-6, "u"
    # flip angle: 2 pi * amplitude (Hz) * integral of the magnitude shape (the trapezoid rule on its samples)
    flip = 2 * math.pi * amp * (float(np.trapezoid(np.abs(mag), times)) if times.size > 1 else abs(mag[0]) * raster)
    if use == "u":
        if abs(flip - EXCITATION_FLIP) <= FLIP_TOLERANCE * EXCITATION_FLIP:
            use = "e"
        elif abs(flip - REFOCUSING_FLIP) <= FLIP_TOLERANCE * REFOCUSING_FLIP:
            use = "r"
    if use not in ("e", "r"):
        raise PulseqError(f"{p}: RF event {rf_id} (at {1e3 * (t0 + delay + center):.3f} ms) is "
                          f"{_USES.get(use, use)} with a {math.degrees(flip):.0f}-degree flip: only excitation "
                          "and refocusing pulses have a defined effect on a diffusion measurement's phase")
    return (t0 + delay + center, "excitation" if use == "e" else "refocusing", flip)


def _arbitrary(r: list[str], shapes: dict, t0: float, raster: float, v15: bool, hz_per_t: float):
    amp = float(r[1])
    if v15:
        first, last, shape_id, time_id, delay = float(r[2]), float(r[3]), int(r[4]), int(r[5]), float(r[6])
    else:
        shape_id, time_id, delay = int(r[2]), int(r[3]), float(r[4])
        first = last = None
    wave = shapes[shape_id] * amp
    s = t0 + delay * 1e-6
    if time_id:
        times = s + shapes[time_id] * raster
        return times, wave / hz_per_t
    # regular sampling: samples at cell centres, the waveform's first and last values at its edges
    centres = s + (np.arange(wave.size) + 0.5) * raster
    lo = wave[0] if first is None else first
    hi = wave[-1] if last is None else last
    times = np.concatenate([[s], centres, [s + wave.size * raster]])
    return times, np.concatenate([[lo], wave, [hi]]) / hz_per_t


def _echo_time(t_exc: float, pulses: list, adcs: list) -> float:
    """The echo of one excitation (s, absolute): the Hahn echo of its refocusing pulses where its readouts
    span it, else the centre of its first readout."""
    if pulses:
        hahn = t_exc
        for tp in pulses:
            hahn = 2.0 * tp - hahn
        lo = min(c - h for c, h in adcs)
        hi = max(c + h for c, h in adcs)
        if lo - 1e-9 <= hahn <= hi + 1e-9:
            return hahn
    return adcs[0][0]


def _measurements(p: Path, events, pieces, raster: float, gamma: float) -> Scheme:
    events = sorted(events)
    trains = []  # [excitation time, [refocusing times], [(ADC centre, half duration)], closed]
    current = None
    for t, kind, extra in events:
        if kind == "excitation":
            if current is not None and not current[2]:
                raise PulseqError(f"{p}: the excitation at {1e3 * current[0]:.3f} ms has no readout before the "
                                  f"next excitation at {1e3 * t:.3f} ms")
            current = [t, [], [], False]
            trains.append(current)
        elif kind == "refocusing":
            if current is None:
                raise PulseqError(f"{p}: a refocusing pulse at {1e3 * t:.3f} ms comes before any excitation")
            if current[2]:
                current[3] = True  # a later pulse (a multi-echo train) ends the first echo's readouts
            else:
                current[1].append(t)
        elif current is not None and not current[3] and (not current[1] or t > current[1][-1]):
            current[2].append((t, extra))
    if not trains:
        raise PulseqError(f"{p}: no excitation pulse: nothing to measure")
    if not trains[-1][2]:
        raise PulseqError(f"{p}: the excitation at {1e3 * trains[-1][0]:.3f} ms has no readout after its last "
                          "refocusing pulse: there is no echo to take")
    blocks = [(t_exc, pulses, _echo_time(t_exc, pulses, adcs)) for t_exc, pulses, adcs, _ in trains]
    n_steps = max(int(math.ceil((te - t_exc) / raster - 1e-9)) for t_exc, _, te in blocks)
    grads = np.zeros((len(blocks), n_steps, 3))
    refocusing = np.full((len(blocks), max(1, max(len(b[1]) for b in blocks))), np.nan)
    echo = np.zeros(len(blocks))
    for m, (t_exc, pulses, te) in enumerate(blocks):
        edges = t_exc + np.arange(n_steps + 1) * raster
        for axis in range(3):
            for times, values in pieces[axis]:
                if times[-1] <= t_exc or times[0] >= te:
                    continue
                grads[m, :, axis] += _piecewise_linear_cells(times, values, edges)
        rel = np.asarray(pulses) - t_exc
        sign = np.ones(n_steps)
        centres = (np.arange(n_steps) + 0.5) * raster
        for tp in rel:  # the effective gradient: the applied one, flipped after each refocusing pulse
            sign = np.where(centres > tp, -sign, sign)
        grads[m] *= sign[:, None]
        stop = int(math.ceil((te - t_exc) / raster - 1e-9))
        grads[m, stop:] = 0.0
        refocusing[m, :len(rel)] = rel
        echo[m] = te - t_exc
    return Scheme(grads, raster, gamma, {"label": np.full(len(blocks), "pulseq"), "echo_time": echo},
                  refocusing=refocusing)
