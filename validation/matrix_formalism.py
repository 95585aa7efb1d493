"""The matrix formalism: the restricted-diffusion signal of planes, cylinders and spheres for any waveform.

:func:`mf_signal` evolves the magnetisation in the Neumann eigenbasis of the
pore (Callaghan 1997; Grebenkov 2007, 2008),

    E = [prod_j exp(-(D Lambda / R^2 + i gamma g_j R B) tau_j)]_00,

with Lambda the eigenvalues (alpha R)^2 and B the position matrix <u_a | x/R | u_b>.
Truncating the basis at alpha R <= cutoff is the only approximation, and the
modes needed grow with the largest phase the waveform writes across the pore,
q_max R (q = gamma * integral of g): a fixed cutoff that is exact at R = 5 um is
nowhere near at R = 500 um, where q_max R is about 100. So the cutoff is chosen
from the geometry and the timing (:func:`mf_cutoff`) and raised until the next
cutoff agrees (the change is the stated error), and the propagation picks its
method by size:

- up to :data:`DENSE_MODES` modes, dense matrix exponentials (``scipy.linalg.expm``);
- above, the position matrix is sparse (it couples angular order m only to
  m +/- 1), and the propagator acts on the magnetisation vector by Krylov-type
  ``scipy.sparse.linalg.expm_multiply``: R = 1 mm (21,000 modes) takes seconds;
- where even that would pass :data:`MAX_MODES` or :data:`MEMORY_LIMIT`, the pore is
  large against every length the walk explores and the signal is free diffusion
  plus a surface layer (:func:`large_pore_signal`): each wall patch acts as a flat
  wall, whose excess signal is computed exactly by the matrix formalism of a
  wide slab. Its error is of relative order (diffusion length / R) in the
  surface term, stated per measurement (``full_output=True``).

Units are SI: radius in m, diffusivity in m^2/s, gradients in T/m, times in s.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
from scipy import sparse, special
from scipy.linalg import expm
from scipy.sparse.linalg import expm_multiply
from threadpoolctl import threadpool_limits

from .exact import GEOMETRIES, spherical_jn_prime_zeros

MIN_CUTOFF = 40.0
"""The smallest automatic cutoff in alpha R (1e-6 on the R1 table of the references, < 1e-7 at q_max R ~ 1)."""
DENSE_MODES = 600
"""Above this many modes the propagation is sparse (Krylov), below it dense (expm)."""
MAX_MODES = 25_000
"""Above this many modes the large-pore limit replaces the modes (seconds become minutes)."""
MEMORY_LIMIT = 4 * 2**30
"""Bytes the mode matrices may take; an explicit cutoff that needs more is refused before allocating."""
MF_TOLERANCE = 1e-5
"""The automatic cutoff is raised until the next one changes no signal by more than this."""
LARGE_PORE_RATIO = 0.05
"""The large-pore limit is used only where the diffusion length over R is below this."""
SURFACE_NODES = 32
"""Gauss-Legendre nodes over the wall's angle to the gradient in the large-pore limit."""
SLAB_LENGTHS = 8.0
"""Half-width of the slab that gives a flat wall's excess signal, in diffusion lengths."""

# outside these a value is a unit slip, not a pore (checked like the rest of the API)
_RADIUS_RANGE = (1e-9, 1e-2)        # 1 nm .. 1 cm
_DIFFUSIVITY_RANGE = (1e-13, 1e-7)  # m^2/s


def mf_cutoff(q_radius: float) -> float:
    """The cutoff in alpha R that keeps the truncation error below ~1e-5 for a largest phase ``q_radius``.

    The magnetisation a gradient writes across the pore is exp(i q x); its
    expansion in the Neumann modes needs alpha up to about q, and the algebraic
    tail of the position matrix needs as much again (measured: 2 q R + 25 gives
    2e-6 at q R = 1, 3e-7 at 19 and 1e-5 at 39 on a 10/30 ms PGSE).

    Parameters
    ----------
    q_radius : float
        max_t |q(t)| R over the scheme (dimensionless; q = gamma * integral of g in rad/m).

    Returns
    -------
    float
        The cutoff, at least :data:`MIN_CUTOFF`.
    """
    return max(MIN_CUTOFF, 2.0 * float(q_radius) + 25.0)


def mode_count(geometry: str, cutoff: float) -> int:
    """Estimated number of Neumann modes with alpha R <= cutoff that the signal couples to (no allocation).

    Parameters
    ----------
    geometry : {"planes", "cylinder", "sphere"}
    cutoff : float
        Largest alpha R kept.

    Returns
    -------
    int
        Estimated mode count (within a few percent; Weyl's law for the modes
        even in the gradient's direction).
    """
    if geometry == "planes":
        return int(cutoff * 2 / np.pi) + 1
    return int(cutoff**2 / 8 + cutoff / 2) + 1


def mf_memory(geometry: str, cutoff: float) -> int:
    """Estimated peak bytes of a matrix-formalism evaluation at ``cutoff`` (before anything is allocated).

    Parameters
    ----------
    geometry : {"planes", "cylinder", "sphere"}
    cutoff : float
        Largest alpha R kept.

    Returns
    -------
    int
        Bytes: dense, about eight complex N x N arrays (expm's workspace);
        sparse, the blocks between neighbouring orders (~ 0.07 cutoff^3 entries)
        held as real and complex matrices with their indices.
    """
    n = mode_count(geometry, cutoff)
    if geometry == "planes" or n <= DENSE_MODES:
        return 8 * 16 * n * n
    nnz = 2 * cutoff**3 / (3 * np.pi**2)
    return int(nnz * (12 + 24 + 3 * 24))


# ------------------------------------------------------------------ modes
@lru_cache(maxsize=16)
def _modes(geometry: str, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """(order, root) of every mode with root <= cutoff, by order then root; the constant mode first."""
    if geometry == "planes":
        n = np.arange(int(cutoff * 2 / np.pi) + 1)
        return n, n * np.pi / 2
    orders, roots = [], []
    for m in range(int(cutoff) + 2):
        k = max(1, int(cutoff / np.pi) + 2)
        if geometry == "cylinder":
            r = special.jnp_zeros(m, k) if m > 0 else np.concatenate([[0.0], special.jnp_zeros(0, k)])
        else:
            r = spherical_jn_prime_zeros(m, k)
            if m == 0:
                r = np.concatenate([[0.0], r])
        r = r[r <= cutoff]
        if r.size == 0 and m > 0:
            break
        orders.append(np.full(r.size, m))
        roots.append(r)
    return np.concatenate(orders), np.concatenate(roots)


def _block(geometry: str, m: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Position matrix between the normalised modes of order m (roots a) and m + 1 (roots b), in closed form.

    By Green's identity with L_m (rho J_{m+1}(b rho)) = -b^2 rho J_{m+1} + 2 b J_m(b rho) and the Lommel
    integral, for Neumann roots (J_m'(a) = J_{m+1}'(b) = 0):
    int_0^1 J_m(a rho) J_{m+1}(b rho) rho^2 drho = J_m(a) J_{m+1}(b) (a^2 + b^2 - 2 m (m + 1)) / (a^2 - b^2)^2,
    and for spheres int_0^1 j_l j_{l+1} rho^3 drho = j_l(a) j_{l+1}(b) (a^2 + b^2 - 2 l (l + 2)) / (a^2 - b^2)^2;
    the norms are int J_m^2 rho = (1 - m^2/a^2) J_m(a)^2 / 2 and int j_l^2 rho^2 = (1 - l(l+1)/a^2) j_l(a)^2 / 2
    (1/2 and 1/3 for the constant mode). No quadrature: O(k^2) per block, not O(k nq) Bessel evaluations.
    """
    if geometry == "cylinder":
        fa, fb = special.jv(m, a), special.jv(m + 1, b)
        shift, ang = 2 * m * (m + 1), (0.5 * (1 + (m == 0)))
        with np.errstate(divide="ignore", invalid="ignore"):
            na = np.where(a > 0, 0.5 * (1 - m**2 / a**2) * fa**2, 0.5) * (2.0 if m == 0 else 1.0)
        nb = 0.5 * (1 - (m + 1) ** 2 / b**2) * fb**2
    else:
        fa, fb = special.spherical_jn(m, a), special.spherical_jn(m + 1, b)
        shift, ang = 2 * m * (m + 2), 3 / (4 * np.pi) * 2 * np.pi * 2 * (m + 1) / ((2 * m + 1) * (2 * m + 3))
        with np.errstate(divide="ignore", invalid="ignore"):
            na = np.where(a > 0, 0.5 * (1 - m * (m + 1) / a**2) * fa**2, 1 / 3) * 3 / (4 * np.pi) * 2 * np.pi * 2 / (2 * m + 1)
        nb = 0.5 * (1 - (m + 1) * (m + 2) / b**2) * fb**2 * 3 / (4 * np.pi) * 2 * np.pi * 2 / (2 * m + 3)
    A, Bb = np.meshgrid(a, b, indexing="ij")
    radial = np.outer(fa, fb) * (A**2 + Bb**2 - shift) / (A**2 - Bb**2) ** 2
    return ang * radial / np.sqrt(np.outer(na, nb))


@lru_cache(maxsize=16)
def _dense_matrices(geometry: str, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (alpha R)^2 and the dense position matrix <u_a | x/R | u_b> (pore averages)."""
    nq = int(4 * cutoff) + 200
    rho, w = np.polynomial.legendre.leggauss(nq)
    order, root = _modes(geometry, cutoff)
    if geometry == "planes":
        # x/R in [-1, 1]; u_0 = 1, u_n = sqrt(2) cos(n pi (x + 1) / 2)
        U = np.cos(np.outer(order, (rho + 1) * np.pi / 2))
        U[1:] *= np.sqrt(2)
        return root**2, 0.5 * (U * (w * rho)) @ U.T
    rho = 0.5 * (rho + 1)
    w = 0.5 * w
    if geometry == "cylinder":
        F = np.array([special.jv(m, r * rho) for m, r in zip(order, root)])
        ang = np.where(order == 0, 2 * np.pi, np.pi)
        norm = np.sqrt(ang / np.pi * (F**2 * (w * rho)).sum(axis=1))
        F /= norm[:, None]
        radial = (F * (w * rho**2)) @ F.T
        mo, mi = np.meshgrid(order, order, indexing="ij")
        angular = np.where(np.abs(mo - mi) == 1, np.pi / 2 * (1 + (np.minimum(mo, mi) == 0)), 0.0)
        B = radial * angular / np.pi
    else:
        F = np.array([special.spherical_jn(l, r * rho) for l, r in zip(order, root)])
        norm = np.sqrt(3 / (4 * np.pi) * 2 * np.pi * 2 / (2 * order + 1) * (F**2 * (w * rho**2)).sum(axis=1))
        F /= norm[:, None]
        radial = (F * (w * rho**3)) @ F.T
        lo, li = np.meshgrid(order, order, indexing="ij")
        lmin = np.minimum(lo, li)
        angular = np.where(np.abs(lo - li) == 1, 2 * (lmin + 1) / ((2 * lmin + 1) * (2 * lmin + 3)), 0.0)
        B = 3 / (4 * np.pi) * 2 * np.pi * radial * angular
    return root**2, B


@lru_cache(maxsize=4)
def _sparse_matrices(geometry: str, cutoff: float) -> tuple[np.ndarray, sparse.csr_matrix]:
    """Eigenvalues and the position matrix as sparse blocks between neighbouring orders (cylinder, sphere)."""
    order, root = _modes(geometry, cutoff)
    starts = np.searchsorted(order, np.arange(order.max() + 2))
    rows, cols, vals = [], [], []
    for m in range(order.max()):
        a, b, c = starts[m], starts[m + 1], starts[m + 2]
        i, j = np.meshgrid(np.arange(a, b), np.arange(b, c), indexing="ij")
        rows.append(i.ravel())
        cols.append(j.ravel())
        vals.append(_block(geometry, m, root[a:b], root[b:c]).ravel())
    n = root.size
    upper = sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return root**2, (upper + upper.T).tocsr()


# ------------------------------------------------------------------ checks
def _checked_inputs(geometry, radius, diffusivity, axis, cutoff):
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
    for name, value in (("radius", radius), ("diffusivity", diffusivity)):
        if isinstance(value, (str, bytes)) or not np.isscalar(value) or not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive finite number in SI units, got {value!r}")
    radius, diffusivity = float(radius), float(diffusivity)
    lo, hi = _RADIUS_RANGE
    if not lo <= radius <= hi:
        hint = (f"radii are in metres: {radius:g} um is {radius * 1e-6:g} m" if radius > hi
                else f"radii are in metres (5 um is 5e-6); {radius:g} m is below 1 nm")
        raise ValueError(f"radius={radius:g} m is outside [{lo:g}, {hi:g}] m, the range of pores: {hint}")
    lo, hi = _DIFFUSIVITY_RANGE
    if not lo <= diffusivity <= hi:
        if 1e-2 <= diffusivity <= 1e2:
            hint = f"it looks like um^2/ms: pass {diffusivity * 1e-9:g} m^2/s"
        elif 1e-5 <= diffusivity <= 1e-1:
            hint = f"it looks like mm^2/s: pass {diffusivity * 1e-6:g} m^2/s"
        else:
            hint = "free water at 37 C is 3e-9 m^2/s"
        raise ValueError(f"diffusivity={diffusivity:g} m^2/s is outside [{lo:g}, {hi:g}] m^2/s: {hint}")
    n = np.asarray(axis, dtype=float)
    if n.shape != (3,) or not np.all(np.isfinite(n)) or not np.any(n):
        raise ValueError(f"axis must be a non-zero 3-vector, got {axis!r}")
    if cutoff is not None and not (np.isscalar(cutoff) and np.isfinite(cutoff) and cutoff >= 1):
        raise ValueError(f"cutoff must be a number >= 1 (alpha R), or None to choose it, got {cutoff!r}")
    return radius, diffusivity, n / np.linalg.norm(n)


def _restricted_waveform(scheme, m: int, geometry: str, n: np.ndarray):
    """(T,) gradient along the restricted direction u of measurement ``m`` and u, or (None, None) if none."""
    g = scheme.gradients[m]
    if geometry == "planes":
        return g @ n, n
    gv = g - np.outer(g @ n, n) if geometry == "cylinder" else g
    mag = np.linalg.norm(gv, axis=1)
    if not np.any(mag > 0):
        return None, None
    u = gv[np.argmax(mag)] / mag.max()
    if np.abs(gv - np.outer(gv @ u, u)).max() > 1e-9 * mag.max():
        raise ValueError(f"measurement {m}: the restricted gradient changes direction; "
                         "mf_signal needs a fixed direction (use gpd_signal)")
    return gv @ u, u


def _segments(gs: np.ndarray):
    """Runs of equal gradient: (start, stop) pairs; "equal" within 1e-10 of the peak (step averages differ in
    their last bits)."""
    gmax = np.abs(gs).max()
    change = np.nonzero(np.abs(np.diff(gs)) > 1e-10 * gmax)[0] + 1
    bounds = np.concatenate([[0], change, [len(gs)]])
    return list(zip(bounds[:-1], bounds[1:])), gmax


# ------------------------------------------------------------------ the signal
def mf_signal(scheme, geometry: str, radius: float, diffusivity: float, axis=(0.0, 0.0, 1.0),
              cutoff: float | None = None, full_output: bool = False):
    """Matrix-formalism signal: the near-exact reference for any waveform along a fixed direction.

    E = [prod_j exp(-(D Lambda / R^2 + i gamma g_j R B) tau_j)]_00 in the Neumann
    eigenbasis (Callaghan 1997; Grebenkov 2008), with the gradient component
    normal to the planes / perpendicular to the cylinder (times free diffusion
    along it) / along the gradient for the sphere. Each measurement's waveform
    must keep one direction (PGSE, OGSE, DDE blocks along one axis...).

    Exact at every size: the modes are chosen from the largest phase the scheme
    writes across the pore (:func:`mf_cutoff`), propagated densely or sparsely
    by size, and where even the sparse basis would be too large the pore is
    large against every diffusion length and the signal is free diffusion plus
    a flat-wall surface layer (:func:`large_pore_signal`, with its error bound).

    Parameters
    ----------
    scheme : sequences.Scheme
        The encoding (gradients in T/m, times in s).
    geometry : {"planes", "cylinder", "sphere"}
    radius : float
        Half-separation (planes) or radius, m (1 nm to 1 cm; larger or smaller
        values are refused as unit slips).
    diffusivity : float
        Free diffusivity in m^2/s (1e-13 to 1e-7; 2 would be um^2/ms).
    axis : array_like
        Plane normal or cylinder axis.
    cutoff : float, optional
        Keep modes with alpha R <= cutoff. Default: chosen per scheme, starting
        from :func:`mf_cutoff` of its largest q R (40 where q R <= 7.5, as
        before) and raised (x 1.25 + 10) until the next cutoff changes no
        signal by more than :data:`MF_TOLERANCE`; past :data:`MAX_MODES`, the
        large-pore limit. An explicit cutoff is used as given (no check), and
        one whose matrices would pass :data:`MAX_MODES` or :data:`MEMORY_LIMIT`
        is refused before anything is allocated.
    full_output : bool
        Also return a dict: ``method`` ("dense", "sparse" or "large-pore"),
        ``cutoff``, ``n_modes``, ``q_radius`` (largest q R) and ``error``
        ((M,) the stated error: the change to the next cutoff, or the
        large-pore limit's bound; NaN for an explicit cutoff).

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, dict)
        (M,) signals (real part), and the dict if ``full_output``.

    Examples
    --------
    >>> import sequences, validation
    >>> pg = sequences.pgse(0.01, 0.03, bvalues=[1e9], directions=[[1, 0, 0]])
    >>> round(float(validation.mf_signal(pg, "cylinder", 5e-6, 2e-9)[0]), 4)
    0.8932
    >>> s, info = validation.mf_signal(pg, "cylinder", 500e-6, 2e-9, full_output=True)
    >>> round(float(s[0]), 3), info["method"]
    (0.14, 'sparse')
    """
    radius, diffusivity, n = _checked_inputs(geometry, radius, diffusivity, axis, cutoff)
    waves = [_restricted_waveform(scheme, m, geometry, n) for m in range(len(scheme))]
    q_radius = max((float(np.abs(np.cumsum(gs)).max()) * scheme.gamma * scheme.dt * radius
                    for gs, _ in waves if gs is not None), default=0.0)
    info = {"q_radius": q_radius}
    if cutoff is not None:
        cutoff = float(cutoff)
        n_modes, memory = mode_count(geometry, cutoff), mf_memory(geometry, cutoff)
        if n_modes > MAX_MODES or memory > MEMORY_LIMIT:
            raise ValueError(f"cutoff={cutoff:g} needs about {n_modes} modes and {memory / 2**30:.1f} GiB "
                             f"(limits {MAX_MODES} modes, {MEMORY_LIMIT / 2**30:.0f} GiB); lower it, or pass "
                             "cutoff=None to choose it from the scheme (it switches to the large-pore limit "
                             "where the modes are too many)")
        out, method, n_modes = _modes_signal(scheme, waves, geometry, radius, diffusivity, n, cutoff)
        info |= {"method": method, "cutoff": cutoff, "n_modes": n_modes, "error": np.full(len(scheme), np.nan)}
        return (out, info) if full_output else out
    # automatic: from the largest phase across the pore, then raised until the next cutoff agrees within
    # MF_TOLERANCE (oscillating waveforms need more modes than their q_max suggests: a 2-period OGSE about
    # twice a PGSE's); the difference to the next cutoff is the stated error
    cutoff = mf_cutoff(q_radius)
    ell = math.sqrt(diffusivity * scheme.duration)
    out = None
    while True:
        nxt = 1.25 * cutoff + 10.0
        if not _affordable(geometry, nxt):
            break
        if out is None:
            out, method, n_modes = _modes_signal(scheme, waves, geometry, radius, diffusivity, n, cutoff)
        finer, method_f, n_f = _modes_signal(scheme, waves, geometry, radius, diffusivity, n, nxt)
        err = np.abs(finer - out)
        if err.max() <= MF_TOLERANCE:
            info |= {"method": method, "cutoff": cutoff, "n_modes": n_modes, "error": err}
            return (out, info) if full_output else out
        out, method, n_modes, cutoff = finer, method_f, n_f, nxt
    if ell <= LARGE_PORE_RATIO * radius or out is None:
        lp, lp_err = large_pore_signal(scheme, geometry, radius, diffusivity, axis=n, full_output=True)
        info |= {"method": "large-pore", "cutoff": np.nan, "n_modes": 0, "error": lp_err}
        return (lp, info) if full_output else lp
    warnings.warn(f"mf_signal: not converged within {MAX_MODES} modes (cutoff {cutoff:.0f}); the last "
                  f"change was {err.max():.2g}, stated as the error (full_output=True)", UserWarning,
                  stacklevel=2)
    info |= {"method": method, "cutoff": cutoff, "n_modes": n_modes, "error": err}
    return (out, info) if full_output else out


def _affordable(geometry: str, cutoff: float) -> bool:
    return mode_count(geometry, cutoff) <= MAX_MODES and mf_memory(geometry, cutoff) <= MEMORY_LIMIT


def _modes_signal(scheme, waves, geometry, radius, diffusivity, n, cutoff):
    """Signals of every measurement at ``cutoff``: (signals, method, number of modes)."""
    n_modes = mode_count(geometry, cutoff)
    method = "dense" if geometry == "planes" or n_modes <= DENSE_MODES else "sparse"
    lam, B = (_dense_matrices if method == "dense" else _sparse_matrices)(geometry, float(cutoff))
    L = diffusivity * lam / radius**2
    out = np.empty(len(scheme))
    # one BLAS thread: the dense matrices are small (tens to hundreds of modes), and a multi-threaded
    # OpenBLAS spends more time synchronising its threads than computing (121 PGSE signals of a sphere at
    # cutoff 20: 2.6 s with two threads on two cores, 0.17 s with one)
    with threadpool_limits(limits=1, user_api="blas"):
        for m, (gs, _) in enumerate(waves):
            # no restricted gradient: 1, times free diffusion along a cylinder
            out[m] = 1.0 if gs is None else _propagate(scheme, gs, radius, L, B, method)
            if geometry == "cylinder":
                out[m] *= np.exp(-diffusivity * n @ scheme.btensors[m] @ n)
    return out, method, int(L.size)


def _propagate(scheme, gs: np.ndarray, radius: float, L: np.ndarray, B, method: str) -> float:
    """[prod_j exp(-(L + i gamma g_j R B) tau_j)]_00 for one waveform along the restricted direction."""
    segments, gmax = _segments(gs)
    v = np.zeros(len(L), dtype=complex)
    v[0] = 1.0
    cache: dict = {}
    for a, b in segments:
        tau = (b - a) * scheme.dt
        ga = float(np.mean(gs[a:b]))
        if abs(ga) <= 1e-10 * gmax:  # free evolution: the propagator is diagonal
            v = np.exp(-L * tau) * v
            continue
        if method == "dense":
            key = (round(abs(ga) / gmax, 10), int(b - a))
            P = cache.get(key)
            if P is None:
                P = expm(-(np.diag(L).astype(complex) + 1j * scheme.gamma * abs(ga) * radius * B) * tau)
                cache[key] = P
            # L and B are real: the propagator of -g is the complex conjugate of that of +g
            v = (P.T if ga > 0 else P.T.conj()) @ v
        else:
            key = round(ga / gmax, 10)
            A = cache.get(key)
            if A is None:
                A = (sparse.diags(L) + (1j * scheme.gamma * ga * radius) * B).tocsr()
                cache[key] = A
            v = expm_multiply(-tau * A, v, traceA=-tau * L.sum())
    return float(v[0].real)


# ------------------------------------------------------------------ the large-pore limit
def large_pore_signal(scheme, geometry: str, radius: float, diffusivity: float, axis=(0.0, 0.0, 1.0),
                      full_output: bool = False):
    """Free diffusion plus a flat-wall surface layer: the signal of a pore much larger than the diffusion length.

    E = E_free + (S/V) < X(g cos theta) exp(-D b sin^2 theta) >_wall, where X(g)
    is the excess signal per unit area of one flat reflecting wall under the
    waveform's component along its normal, computed exactly by the matrix
    formalism of a slab :data:`SLAB_LENGTHS` diffusion lengths wide (walls that
    far apart do not see each other), and the average runs over the wall's
    normals (theta its angle to the gradient). Walkers farther than a few
    diffusion lengths from the wall diffuse freely; curvature changes the
    surface term by a relative amount of order l / R, l = sqrt(D T) with T the
    scheme's duration; that is the stated error (about 3x what the matrix
    formalism shows at R = 100-300 um).

    Parameters
    ----------
    scheme : sequences.Scheme
        The encoding (gradients in T/m, times in s).
    geometry : {"planes", "cylinder", "sphere"}
    radius : float
        Half-separation (planes) or radius, m.
    diffusivity : float
        Free diffusivity in m^2/s.
    axis : array_like
        Plane normal or cylinder axis.
    full_output : bool
        Also return the (M,) error bound.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        (M,) signals, and the error bound if ``full_output``.

    Raises
    ------
    ValueError
        If the diffusion length is not small against the radius (l / R >
        :data:`LARGE_PORE_RATIO`): the limit does not hold there.
    """
    radius, diffusivity, n = _checked_inputs(geometry, radius, diffusivity, axis, None)
    ell = math.sqrt(diffusivity * scheme.duration)
    if ell > LARGE_PORE_RATIO * radius:
        raise ValueError(f"the large-pore limit needs a diffusion length sqrt(D T) = {ell:.3g} m below "
                         f"{LARGE_PORE_RATIO} x radius ({radius:.3g} m); use mf_signal")
    slab = SLAB_LENGTHS * ell
    surface = {"planes": 1.0, "cylinder": 2.0, "sphere": 3.0}[geometry] / radius
    if geometry == "planes":
        nodes, weights = np.array([1.0]), np.array([1.0])   # the gradient meets the wall along its normal
    else:
        x, wq = np.polynomial.legendre.leggauss(SURFACE_NODES)
        if geometry == "cylinder":   # (2/pi) integral over phi in [0, pi/2] of X(g cos phi) ...
            phi = (x + 1) * np.pi / 4
            nodes, weights = np.cos(phi), wq / 2
        else:                        # integral over mu = cos(theta) in [0, 1]
            nodes, weights = (x + 1) / 2, wq / 2
    out = np.empty(len(scheme))
    err = np.empty(len(scheme))
    for m in range(len(scheme)):
        gs, u = _restricted_waveform(scheme, m, geometry, n)
        if gs is None:
            excess = excess_err = 0.0
            b_r = 0.0
        else:
            b_r = float(u @ scheme.btensors[m] @ u)
            parts = [(w * np.exp(-diffusivity * b_r * (1 - c * c)), _wall_excess(scheme, gs * c, slab, diffusivity))
                     for c, w in zip(nodes, weights)]
            excess = sum(f * x for f, (x, _) in parts)
            excess_err = sum(f * e for f, (_, e) in parts)
        base = np.exp(-diffusivity * b_r)
        if geometry == "cylinder":
            base *= np.exp(-diffusivity * n @ scheme.btensors[m] @ n)
            excess *= np.exp(-diffusivity * n @ scheme.btensors[m] @ n)
        out[m] = base + surface * excess
        err[m] = abs(surface * excess) * ell / radius + surface * excess_err
    return (out, err) if full_output else out


def _wall_excess(scheme, gs: np.ndarray, half_width: float, diffusivity: float) -> tuple[float, float]:
    """Excess signal per unit wall area of one flat wall, X = a (E_slab - E_free), m, and its error."""
    if not np.any(gs):
        return 0.0, 0.0
    q_a = float(np.abs(np.cumsum(gs)).max()) * scheme.gamma * scheme.dt * half_width
    b = scheme.gamma**2 * float(np.sum(np.cumsum(gs) ** 2)) * scheme.dt**3
    cutoff = mf_cutoff(q_a)
    x = None
    with threadpool_limits(limits=1, user_api="blas"):
        while True:
            lam, B = _dense_matrices("planes", float(cutoff))
            e_slab = _propagate(scheme, gs, half_width, diffusivity * lam / half_width**2, B, "dense")
            new = half_width * (e_slab - np.exp(-diffusivity * b))
            if x is not None and (abs(new - x) <= 1e-4 * abs(new) or mode_count("planes", cutoff) > 4000):
                return new, abs(new - x)
            x, cutoff = new, 1.25 * cutoff + 10.0
