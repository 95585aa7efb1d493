"""Reading and writing scheme files; units are converted here and nowhere else.

| format | b / G unit in the file | read | write |
|---|---|---|---|
| FSL bval + bvec (BIDS) | s/mm^2 | :func:`read_fsl` | :func:`write_fsl` |
| MRtrix ``.b`` (x y z b) | s/mm^2 | :func:`read_mrtrix` | :func:`write_mrtrix` |
| Camino STEJSKALTANNER (x y z G Delta delta TE) | T/m, s | :func:`read_camino` | :func:`write_camino` |
| MC/DC GRADIENT_WAVEFORM | T/m, s | :func:`read_mcdc` | :func:`write_mcdc` |
| NOW / md-dmri waveforms (gwf, rf, dt) | T/m, s | :func:`read_now` | :func:`write_now` |

FSL, MRtrix and Camino files describe PGSE only; they need (or carry) delta
and Delta. Writers refuse schemes the format cannot hold rather than write a
file that plays back differently.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from . import timegrid
from .constants import GAMMA, S_PER_MM2
from .scheme import Scheme, concatenate
from .units import check_gradient_strength, check_si_bvalues, to_si_bvalues
from .waveforms import from_waveforms, pgse

log = logging.getLogger(__name__)


def _numbers(path: str | Path, columns: tuple[int, ...] | None = None) -> np.ndarray:
    """The numbers of a text table, one row per non-empty line ('#' starts a comment; commas count as spaces).

    Every problem names the file and, where there is one, the line: a file that is not text, a token that is
    not a number, rows of unequal length (or of a count not in ``columns``), no numbers at all.
    """
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: no such file") from None
    except UnicodeDecodeError:
        raise ValueError(f"{p}: not a text file (it holds binary data); expected rows of numbers") from None
    rows, first = [], None
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line or line.upper().startswith("VERSION"):
            continue
        try:
            row = [float(x) for x in line.replace(",", " ").split()]
        except ValueError:
            bad = next(x for x in line.replace(",", " ").split() if not _is_number(x))
            raise ValueError(f"{p}, line {n}: {bad!r} is not a number") from None
        if columns is not None and len(row) not in columns:
            want = " or ".join(str(c) for c in columns)
            raise ValueError(f"{p}, line {n}: expected {want} numbers, got {len(row)}")
        if first is None:
            first = (n, len(row))
        elif len(row) != first[1]:
            raise ValueError(f"{p}, line {n}: {len(row)} numbers where line {first[0]} has {first[1]}; "
                             "every row needs the same count")
        rows.append(row)
    if not rows:
        raise ValueError(f"{p}: holds no numbers")
    return np.asarray(rows, dtype=float)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _require_linear(scheme: Scheme, fmt: str) -> None:
    b = scheme.bvalues
    bad = (b > 0) & (np.abs(scheme.b_delta - 1.0) > 1e-6)
    if np.any(bad):
        raise ValueError(
            f"{fmt} holds linear (PGSE-like) encodings only, but {int(bad.sum())} measurement(s) have "
            "b_Delta != 1; write the waveforms with write_mcdc() or write_now() instead"
        )


# -------------------------------------------------------------------- FSL
def read_fsl(bval_path: str | Path, bvec_path: str | Path, delta: float, Delta: float, *,
             units: str = "auto", **pgse_kwargs) -> Scheme:
    """Read an FSL/BIDS bval + bvec pair as a PGSE scheme.

    Parameters
    ----------
    bval_path, bvec_path : str or Path
        bval (one row, s/mm^2 by convention) and bvec (3 rows x N; N x 3 is
        accepted) files.
    delta, Delta : float
        Pulse duration and separation in s (FSL files do not carry them).
    units : str
        Unit of the bval file: "auto" infers it from magnitude and refuses
        ambiguous files; or "s/mm^2", "ms/um^2", "s/m^2".
    **pgse_kwargs
        Passed to :func:`sequences.pgse` (ramp_time, echo_time, dt, gamma).

    Returns
    -------
    Scheme
    """
    b = _numbers(bval_path).ravel()
    v = _numbers(bvec_path)
    if v.shape[0] == 3 and v.shape[1] == b.size:
        v = v.T
    elif not (v.shape == (b.size, 3)):
        raise ValueError(f"{bvec_path}: expected 3 rows of {b.size} values (or {b.size} rows of 3), got {v.shape}")
    return pgse(delta, Delta, bvalues=to_si_bvalues(b, units), directions=v, **pgse_kwargs)


def write_fsl(scheme: Scheme, bval_path: str | Path, bvec_path: str | Path) -> None:
    """Write an FSL/BIDS bval (s/mm^2) and bvec (3 rows) pair.

    The bvecs are the scheme's directions in the substrate frame (write NIfTI
    data with a negative-determinant affine so that FSL, MRtrix and dipy agree).

    Parameters
    ----------
    scheme : Scheme
        A scheme of linear encodings.
    bval_path, bvec_path : str or Path
        Output files.
    """
    _require_linear(scheme, "FSL bval/bvec")
    b = scheme.bvalues / S_PER_MM2
    np.savetxt(bval_path, b[None, :], fmt="%.10g")
    np.savetxt(bvec_path, scheme.directions.T, fmt="%.12g")


# ----------------------------------------------------------------- MRtrix
def read_mrtrix(path: str | Path, delta: float, Delta: float, *, units: str = "auto", **pgse_kwargs) -> Scheme:
    """Read an MRtrix gradient table (rows ``x y z b``) as a PGSE scheme.

    As MRtrix does by default, b is scaled by ``|g|^2`` when a direction's norm
    differs from 1 by more than 1 % (then the direction is normalised).

    Parameters
    ----------
    path : str or Path
        The ``.b`` file.
    delta, Delta : float
        Pulse duration and separation in s.
    units : str
        Unit of the b column ("auto", "s/mm^2", "ms/um^2", "s/m^2").
    **pgse_kwargs
        Passed to :func:`sequences.pgse`.

    Returns
    -------
    Scheme
    """
    rows = _numbers(path, columns=(4,))
    v, b = rows[:, :3], rows[:, 3]
    n = np.linalg.norm(v, axis=1)
    scale = (b > 0) & (n > 0) & (np.abs(n - 1) > 0.01)
    if np.any(scale):
        log.info("%s: scaling %d b-values by |g|^2 (MRtrix convention)", path, int(scale.sum()))
        b = np.where(scale, b * n**2, b)
    v = np.where(n[:, None] > 0, v / np.where(n > 0, n, 1)[:, None], v)
    return pgse(delta, Delta, bvalues=to_si_bvalues(b, units), directions=v, **pgse_kwargs)


def write_mrtrix(scheme: Scheme, path: str | Path) -> None:
    """Write an MRtrix gradient table (``x y z b``, b in s/mm^2).

    Parameters
    ----------
    scheme : Scheme
        A scheme of linear encodings (b-values in s/m^2, converted to s/mm^2).
    path : str or Path
        Output ``.b`` file; overwritten.

    Raises
    ------
    ValueError
        If a measurement with b > 0 is not a linear encoding (b_Delta != 1).
    """
    _require_linear(scheme, "an MRtrix table")
    rows = np.column_stack([scheme.directions, scheme.bvalues / S_PER_MM2])
    np.savetxt(path, rows, fmt="%.12g", header="diffwalk scheme: x y z b[s/mm^2]")


# ----------------------------------------------------------------- Camino
def read_camino(path: str | Path, *, dt: float | None = None, gamma: float = GAMMA) -> Scheme:
    """Read a Camino STEJSKALTANNER scheme (rows ``x y z |G| Delta delta TE``, T/m and s).

    Each row is played as MC/DC does: rectangular lobes with no ramps, centred
    in the echo time. Rows may differ in timing; all are put on one grid.

    Parameters
    ----------
    path : str or Path
        Scheme file; its header reads ``VERSION: STEJSKALTANNER`` or ``VERSION: 1``.
    dt : float, optional
        Time step in s (default: edge-aligned, <= 10 us).
    gamma : float
        Gyromagnetic ratio in rad/s/T.

    Returns
    -------
    Scheme
    """
    try:
        with open(path, encoding="utf-8") as fh:
            version = next((ln.split(":", 1)[1].strip().upper() for ln in fh if ln.upper().startswith("VERSION")),
                           "")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (it holds binary data); expected a Camino scheme") from None
    if version not in ("STEJSKALTANNER", "1"):
        raise ValueError(
            f"{path}: VERSION '{version or 'missing'}' is not STEJSKALTANNER; BVECTOR files carry no timing, "
            "read them with read_mrtrix(path, delta, Delta) after dropping the header"
        )
    rows = _numbers(path, columns=(7,))
    G = check_gradient_strength(rows[:, 3], f"{path}: |G| column")
    timing = rows[:, 4:7]
    keys, inverse = np.unique(timing, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    if dt is None:
        edges, tmax = [], 0.0
        for Delta, delta, te in keys:
            pad = 0.5 * (te - Delta - delta)
            edges += [pad, pad + delta, pad + Delta, pad + Delta + delta, te]
            tmax = max(tmax, te)
        dt, _ = timegrid.choose_grid(tmax, edges)
    parts, order = [], []
    for i, (Delta, delta, te) in enumerate(keys):
        sel = np.nonzero(inverse == i)[0]
        try:
            parts.append(pgse(delta, Delta, gradient_strength=G[sel], directions=rows[sel, :3],
                              echo_time=te, dt=dt, gamma=gamma))
        except ValueError as exc:
            raise ValueError(f"{path}: rows with Delta {Delta:g} s, delta {delta:g} s, TE {te:g} s: {exc}") from None
        order.append(sel)
    scheme = concatenate(parts)
    return scheme.select(np.argsort(np.concatenate(order), kind="stable"))


def write_camino(scheme: Scheme, path: str | Path) -> None:
    """Write a Camino STEJSKALTANNER scheme (T/m and s).

    Only rectangular PGSE measurements can be written; the echo time of each
    row is taken from the waveform (lobes centred in it).

    Parameters
    ----------
    scheme : Scheme
        A scheme of rectangular PGSE measurements; rows hold the direction,
        ``|G|`` in T/m, Delta, delta and TE in s.
    path : str or Path
        Output scheme file; overwritten.

    Raises
    ------
    ValueError
        If a measurement is not a rectangular PGSE (other encodings: use
        :func:`write_mcdc`).
    """
    _require_linear(scheme, "a STEJSKALTANNER scheme")
    rect = (scheme.label == "pgse") & ~(scheme.ramp_time > 0)
    if not np.all(rect):
        raise ValueError("STEJSKALTANNER holds rectangular PGSE only; this scheme has other measurements "
                         "(write them with write_mcdc())")
    g = np.linalg.norm(scheme.gradients, axis=2)
    first = np.argmax(g > 0.5 * g.max(axis=1, keepdims=True), axis=1) * scheme.dt
    te = np.where(scheme.bvalues > 0, 2 * first + scheme.Delta + scheme.delta, scheme.duration)
    rows = np.column_stack([scheme.directions, scheme.gradient_amplitudes, scheme.Delta, scheme.delta, te])
    with open(path, "w") as fh:
        fh.write("#g_x g_y g_z |G|[T/m] DELTA[s] delta[s] TE[s]  (written by diffwalk)\nVERSION: STEJSKALTANNER\n")
        np.savetxt(fh, rows, fmt="%.12g")


# ------------------------------------------------------------------ MC/DC
def read_mcdc(path: str | Path, *, gamma: float = GAMMA, check_echo: bool = True) -> Scheme:
    """Read an MC/DC ``VERSION: GRADIENT_WAVEFORM`` scheme.

    After the header come the duration (s), the number of samples T, the number
    of measurements M, then M x T x 3 effective gradient values in T/m.

    Parameters
    ----------
    path : str or Path
        Scheme file.
    gamma : float
        Gyromagnetic ratio in rad/s/T.
    check_echo : bool
        Refuse waveforms without a spin echo.

    Returns
    -------
    Scheme
    """
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (it holds binary data); expected an MC/DC scheme") from None
    lines = text.splitlines()
    if not lines or "GRADIENT_WAVEFORM" not in lines[0].upper():
        raise ValueError(f"{path}: first line must be 'VERSION: GRADIENT_WAVEFORM'")
    tokens = " ".join(lines[1:]).split()
    if len(tokens) < 3:
        raise ValueError(f"{path}: missing the 'duration n_samples n_measurements' header")
    bad = next((x for x in tokens if not _is_number(x)), None)
    if bad is not None:
        raise ValueError(f"{path}: {bad!r} is not a number")
    te, T, M = float(tokens[0]), int(float(tokens[1])), int(float(tokens[2]))
    if T < 1 or M < 1 or not te > 0:
        raise ValueError(f"{path}: the header 'duration n_samples n_measurements' must be positive, got "
                         f"{tokens[0]} {tokens[1]} {tokens[2]}")
    values = np.asarray(tokens[3:], dtype=float)
    if values.size != M * T * 3:
        raise ValueError(f"{path}: expected {M} x {T} x 3 = {M * T * 3} gradient values, found {values.size}")
    return from_waveforms(values.reshape(M, T, 3), te / T, gamma=gamma, check_echo=check_echo)


def write_mcdc(scheme: Scheme, path: str | Path) -> None:
    """Write an MC/DC ``VERSION: GRADIENT_WAVEFORM`` scheme (T/m, s).

    Parameters
    ----------
    scheme : Scheme
        Any scheme: its duration (s), T, M and the M x T x 3 effective
        gradients (T/m) are written.
    path : str or Path
        Output scheme file; overwritten.
    """
    with open(path, "w") as fh:
        fh.write("VERSION: GRADIENT_WAVEFORM\n")
        fh.write(f"{scheme.duration!r} {scheme.n_steps} {scheme.n_measurements}\n")
        np.savetxt(fh, scheme.gradients.reshape(-1, 3), fmt="%.17g")


# -------------------------------------------------------------------- NOW
def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    if c < -1 + 1e-12:  # opposite: half turn about any axis perpendicular to a
        p = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        p /= np.linalg.norm(p)
        return 2 * np.outer(p, p) - np.eye(3)
    K = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + K + K @ K / (1 + c)


def from_now(gwf, rf, dt: float, *, bvalues=None, directions=None, gamma: float = GAMMA) -> Scheme:
    """A scheme from a NOW / md-dmri waveform (physical gwf, rf sign vector, dt).

    The effective waveform is gwf * rf. Optionally it is scaled to each of
    ``bvalues`` and rotated so that its principal axis points along each of
    ``directions`` (the usual way one waveform becomes a protocol).

    Parameters
    ----------
    gwf : array_like
        (T, 3) physical gradients in T/m.
    rf : array_like
        (T,) spin-dephasing sign (+1 before, -1 after the refocusing pulse).
    dt : float
        Time step in s.
    bvalues : array_like, optional
        (M,) target b-values in s/m^2.
    directions : array_like, optional
        (M, 3) target principal axes.
    gamma : float
        Gyromagnetic ratio in rad/s/T.

    Returns
    -------
    Scheme
    """
    g = np.asarray(gwf, dtype=float)
    r = np.asarray(rf, dtype=float).ravel()
    if g.ndim != 2 or g.shape[1] != 3:
        raise ValueError(f"gwf must have shape (T, 3) in T/m, got {g.shape}")
    if r.size != g.shape[0]:
        raise ValueError(f"rf must have one sign per sample ({g.shape[0]}), got {r.size}")
    base = from_waveforms(g * r[:, None], dt, gamma=gamma, label="now")
    flips = np.flatnonzero(np.sign(r[1:]) != np.sign(r[:-1])) + 1
    if flips.size:  # the refocusing pulses sit where rf changes sign (else: an effective waveform, spin echo)
        base = base.with_refocusing(flips * float(dt))
    if bvalues is None and directions is None:
        return base
    b = check_si_bvalues(bvalues) if bvalues is not None else base.bvalues
    u = np.asarray(directions, dtype=float).reshape(-1, 3) if directions is not None else base.directions
    n = max(b.size, u.shape[0])
    b, u = np.broadcast_to(b, (n,)), np.broadcast_to(u, (n, 3))
    axis = base.directions[0]
    out = np.empty((n, base.n_steps, 3))
    for m in range(n):
        R = _rotation_between(axis, u[m]) if np.linalg.norm(u[m]) > 0 else np.eye(3)
        out[m] = np.sqrt(b[m] / base.bvalues[0]) * base.gradients[0] @ R.T
    return Scheme(out, base.dt, gamma, {"label": np.full(n, "now")}, refocusing=np.repeat(base.refocusing[:1], n, 0))


def read_now(path: str | Path, *, dt: float | None = None, **kwargs) -> Scheme:
    """Read a NOW-style waveform from ``.npz``, ``.mat`` or ``.txt``.

    ``.npz`` and ``.mat`` files hold ``gwf`` (T x 3, T/m), ``rf`` (T) and ``dt`` (s).
    ``.txt`` files hold 3 columns (gx gy gz, T/m; effective) or 4 (gx gy gz rf)
    and need ``dt``.

    Parameters
    ----------
    path : str or Path
        Waveform file.
    dt : float, optional
        Time step in s, for ``.txt`` files (overrides the file's dt otherwise).
    **kwargs
        Passed to :func:`from_now` (bvalues, directions, gamma).

    Returns
    -------
    Scheme
    """
    p = Path(path)
    if p.suffix == ".npz":
        with np.load(p) as d:
            gwf, rf, fdt = d["gwf"], d["rf"], float(np.asarray(d["dt"]).ravel()[0])
    elif p.suffix == ".mat":
        from scipy.io import loadmat
        d = loadmat(p)
        gwf, rf, fdt = d["gwf"], d["rf"], float(np.asarray(d["dt"]).ravel()[0])
    else:
        a = _numbers(p, columns=(3, 4))
        if dt is None:
            raise ValueError(f"{p}: a text waveform carries no time step; pass dt=... in seconds")
        gwf, rf, fdt = a[:, :3], (a[:, 3] if a.shape[1] == 4 else np.ones(len(a))), dt
    return from_now(gwf, rf, dt if dt is not None else fdt, **kwargs)


def write_now(scheme: Scheme, path: str | Path, measurement: int = 0) -> None:
    """Write one measurement as a NOW-style waveform (``.npz`` or ``.mat``).

    The effective waveform is written as ``gwf`` with ``rf`` = +1 throughout.

    Parameters
    ----------
    scheme : Scheme
        The scheme; ``gwf`` is written in T/m and ``dt`` in s.
    path : str or Path
        Output file, ``.npz`` or ``.mat`` (the latter needs scipy); overwritten.
    measurement : int
        Index of the measurement to write.

    Raises
    ------
    ValueError
        If ``path`` ends in neither ``.npz`` nor ``.mat``.
    """
    g = scheme.gradients[measurement]
    d = {"gwf": g, "rf": np.ones(len(g)), "dt": np.array(scheme.dt)}
    p = Path(path)
    if p.suffix == ".mat":
        from scipy.io import savemat
        savemat(p, d)
    elif p.suffix == ".npz":
        np.savez(p, **d)
    else:
        raise ValueError(f"write_now writes .npz or .mat files, not {p.suffix!r}")
