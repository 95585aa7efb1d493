"""Compartment building blocks beyond the Gaussian ones: restricted cylinders and spheres in the
Gaussian-phase (any waveform), Callaghan narrow-pulse and Stejskal-Tanner/Soderman long-time
narrow-pulse approximations; Bingham and Watson orientation averages; gamma radius
distributions; two-compartment Karger exchange.

All functions are vectorised over K parameter sets and M measurements and return (K, M) arrays.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numba
import numpy as np
from scipy import special
from scipy.signal import lfilter

from .exact import gpd_modes, cell_integrals, spherical_jn_prime_zeros

# ------------------------------------------------------- Gaussian phase, any waveform
_SPECTRA: dict = {}
_PER_DECADE = 64
_N_MODES_ANY = 16


def waveform_spectrum(gradients: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Tabulate F_ij(lam) = int int g_i(t1) g_j(t2) exp(-lam |t1 - t2|) for every measurement.

    The double integral is exact for the piecewise-constant played waveform (per-step cell
    integrals, summed with a recursive filter). It is stored as H = F (lam1/lam + lam/lam1),
    lam1 = 1/duration, which is nearly constant in both asymptotes (F ~ lam at small lam,
    F ~ 1/lam at large lam), so cubic interpolation in log(lam) is accurate to ~1e-6.

    Parameters
    ----------
    gradients : numpy.ndarray
        (M, T, 3) effective gradients, T/m.
    dt : float
        Step, s.

    Returns
    -------
    log_lam : numpy.ndarray
        (L,) grid of ln(lam / s^-1).
    H : numpy.ndarray
        (L, M, 3, 3) scaled table, (T/m)^2 s^3.
    dH : numpy.ndarray
        dH / d ln(lam), for cubic Hermite interpolation.
    lam1 : float
        1/duration, s^-1.
    G2 : numpy.ndarray
        (M, 3, 3) int g_i g_j dt, (T/m)^2 s: the large-lam limit F -> 2 G2 / lam.
    """
    key = (hashlib.sha1(np.ascontiguousarray(gradients).tobytes()).hexdigest(), float(dt))
    if key in _SPECTRA:
        return _SPECTRA[key]
    g = np.asarray(gradients, dtype=float)
    M, T, _ = g.shape
    # the double integral is bilinear in the waveform: work on its few temporal shapes
    # (one per timing: PGSE shells share one, b-tensors need three) and combine per measurement
    from sequences.factorise import factorise
    fac = factorise(g)
    f, A = fac.shapes, fac.amplitudes  # (K, T), (M, K, 3)
    lam1 = 1.0 / (T * dt)
    lo, hi = np.log10(1e-3 * lam1), np.log10(1e4 / dt)
    lam = np.logspace(lo, hi, int(np.ceil((hi - lo) * _PER_DECADE)) + 1)
    ff = f @ f.T
    phi = np.empty((lam.size, len(f), len(f)))
    for k, la in enumerate(lam):
        diag, off = cell_integrals(la, dt)
        c = lfilter([0.0, 1.0], [1.0, -np.exp(-la * dt)], f, axis=1)  # c_t = sum_{k<t} f_k r^(t-1-k)
        tot = f @ c.T
        phi[k] = (diag * ff + off * (tot + tot.T)) * (lam1 / la + la / lam1)
    H = np.einsum("mki,lkn,mnj->lmij", A, phi, A)
    G = np.einsum("mki,kn,mnj->mij", A, ff, A)
    out = (np.log(lam), H, np.gradient(H, np.log(lam), axis=0, edge_order=2), lam1, G * dt)
    if len(_SPECTRA) > 8:
        _SPECTRA.clear()
    _SPECTRA[key] = out
    return out


def gpd_restricted_lnE(arr, geometry: str, R: np.ndarray, D: np.ndarray, n: np.ndarray | None = None) -> np.ndarray:
    """ln E of restricted diffusion in the Gaussian phase approximation, for any waveform.

    ln E = -(gamma^2 / 2) sum_n B_n R^2 F_perp(D alpha_n^2 / R^2), with F_perp the waveform
    spectrum projected on the restricted axes (sphere: all three; cylinder: the two across the
    axis n; planes: the normal n). Free diffusion along a cylinder's axis is not included.

    Parameters
    ----------
    arr : SchemeArrays
    geometry : {"planes", "cylinder", "sphere"}
    R : numpy.ndarray
        (K,) radius or half-separation, m.
    D : numpy.ndarray
        (K,) diffusivity, m^2/s.
    n : numpy.ndarray, optional
        (K, 3) cylinder axis or plane normal.

    Returns
    -------
    numpy.ndarray
        (K, M) ln E.
    """
    u, C, dC, lam1, G2 = arr.derived("gpd_spectrum_components", lambda: _spectrum_components(arr))
    a, Bn = gpd_modes(geometry, _N_MODES_ANY)
    tail = _mode_tail(geometry)
    trG = np.einsum("mii->m", G2)
    R = np.ascontiguousarray(R, dtype=float)
    D = np.ascontiguousarray(D, dtype=float)
    kind = _GEOMETRY_KIND[geometry]
    axes = np.zeros((len(R), 3)) if n is None else np.ascontiguousarray(n, dtype=float)
    proj = np.empty((len(R), C.shape[2]))
    # cubic Hermite in ln(lam) with finite-difference slopes (~1e-7 relative on ln E), projected on the
    # restricted axes and summed over the modes value by value (numba: no (K, modes, M, 3, 3) temporaries)
    _gpd_mode_sum(u, C, dC, float(lam1), np.asarray(a, dtype=float), np.asarray(Bn, dtype=float), R, D, axes,
                  kind, proj)
    # modes beyond the kept ones decay far faster than any waveform feature: F -> 2 G2 / lam
    if geometry == "sphere":
        gp = trG[None, :]
    else:
        nGn = np.einsum("ki,mij,kj->km", axes, G2, axes)
        gp = nGn if geometry == "planes" else trG[None, :] - nGn
    with np.errstate(divide="ignore", invalid="ignore"):
        tail_term = np.where(D[:, None] > 0, tail * R[:, None] ** 4 * gp / np.maximum(D[:, None], 1e-300), 0)
    return -0.5 * arr.gamma**2 * (proj * R[:, None] ** 2 + 2 * tail_term)


#: geometry -> the projection :func:`_gpd_mode_sum` takes (trace, across the axis, along the normal)
_GEOMETRY_KIND = {"sphere": 0, "cylinder": 1, "planes": 2}


def _spectrum_components(arr) -> tuple:
    """The waveform spectrum (:meth:`SchemeArrays.waveform_spectrum`) as (L, 7, M) tables of its trace and six
    elements xx, yy, zz, xy, xz, yz, for :func:`_gpd_mode_sum` (once per scheme)."""
    u, H, dH, lam1, G2 = arr.waveform_spectrum()

    def comp(T):
        return np.ascontiguousarray(np.stack([np.einsum("lmii->lm", T), T[:, :, 0, 0], T[:, :, 1, 1], T[:, :, 2, 2],
                                              T[:, :, 0, 1], T[:, :, 0, 2], T[:, :, 1, 2]], axis=1))

    return np.ascontiguousarray(u), comp(H), comp(dH), lam1, G2


@numba.njit(cache=True)
def _gpd_mode_sum(u, C, dC, lam1, a, Bn, R, D, axes, kind, out):
    # out[k, m] = sum_j Bn_j P(F_m(lam_kj)), F the Hermite-interpolated spectrum times lam lam1 / (lam1^2 + lam^2),
    # P its trace (kind 0), trace - n^T F n (1) or n^T F n (2)
    L = u.size
    M = C.shape[2]
    for k in range(R.size):
        for m in range(M):
            out[k, m] = 0.0
        nx, ny, nz = axes[k, 0], axes[k, 1], axes[k, 2]
        q = (nx * nx, ny * ny, nz * nz, 2 * nx * ny, 2 * nx * nz, 2 * ny * nz)
        for j in range(a.size):
            lam = D[k] * (a[j] / R[k]) ** 2
            x = np.log(max(lam, 1e-300))
            x = min(max(x, u[0]), u[L - 1])
            i = min(max(np.searchsorted(u, x) - 1, 0), L - 2)
            h = u[i + 1] - u[i]
            t = (x - u[i]) / h
            w00 = 2 * t**3 - 3 * t**2 + 1
            w10 = (t**3 - 2 * t**2 + t) * h
            w01 = -2 * t**3 + 3 * t**2
            w11 = (t**3 - t**2) * h
            c = Bn[j] * lam * lam1 / (lam1**2 + lam**2)
            for m in range(M):
                tr = w00 * C[i, 0, m] + w10 * dC[i, 0, m] + w01 * C[i + 1, 0, m] + w11 * dC[i + 1, 0, m]
                if kind == 0:
                    out[k, m] += c * tr
                    continue
                nfn = 0.0
                for e in range(6):
                    nfn += q[e] * (w00 * C[i, e + 1, m] + w10 * dC[i, e + 1, m] + w01 * C[i + 1, e + 1, m]
                                   + w11 * dC[i + 1, e + 1, m])
                out[k, m] += c * (tr - nfn if kind == 1 else nfn)


@lru_cache(maxsize=3)
def _mode_tail(geometry: str) -> float:
    """sum over modes n > kept of B_n / (alpha_n R)^2 (B_n in units of R^2)."""
    a, Bn = gpd_modes(geometry, 3000)
    return float(np.sum(Bn[_N_MODES_ANY:] / a[_N_MODES_ANY:] ** 2))


# ------------------------------------------------------------- narrow pulses
@lru_cache(maxsize=4)
def _narrow_roots(geometry: str, n_orders: int, n_roots: int) -> tuple[np.ndarray, np.ndarray]:
    if geometry == "cylinder":
        b = np.array([special.jnp_zeros(m, n_roots) for m in range(n_orders)])
        m = np.arange(n_orders)[:, None]
        w = np.where(m == 0, 4.0, 8.0 * b**2 / (b**2 - m**2))
    else:
        b = np.array([spherical_jn_prime_zeros(l, n_roots) for l in range(n_orders)])
        l = np.arange(n_orders)[:, None]
        w = 6 * (2 * l + 1) * b**2 / (b**2 - l * (l + 1))
    return b, w


def narrow_pulse(geometry: str, qR: np.ndarray, tau: np.ndarray, n_orders: int = 30, n_roots: int = 20) -> np.ndarray:
    """Callaghan's narrow-pulse signal of a cylinder (across) or sphere, vectorised.

    Parameters
    ----------
    geometry : {"cylinder", "sphere"}
    qR : numpy.ndarray
        q R with q = gamma G delta (rad/m) and R the radius (m): dimensionless.
    tau : numpy.ndarray
        D Delta / R^2 (same shape; inf for the long-time limit).
    n_orders, n_roots : int
        Bessel orders and roots kept (enough for qR < ~20).

    Returns
    -------
    numpy.ndarray
        Signal, same shape as qR.
    """
    x = np.asarray(qR, dtype=float)
    tau = np.broadcast_to(np.asarray(tau, dtype=float), x.shape)
    out = soderman(geometry, x)
    b, w = _narrow_roots(geometry, n_orders, n_roots)
    flat_x, flat_t = x.ravel(), tau.ravel()
    acc = np.zeros(flat_x.size)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for m in range(n_orders):
            xx = flat_x[:, None]
            den = (xx**2 - b[m][None, :] ** 2) ** 2
            xx = np.where(den < 1e-20, xx + 1e-7, xx)  # removable 0/0 at x = root
            den = (xx**2 - b[m][None, :] ** 2) ** 2
            jp = special.jvp(m, xx) if geometry == "cylinder" else special.spherical_jn(m, xx, derivative=True)
            decay = np.exp(-b[m][None, :] ** 2 * flat_t[:, None])
            acc += np.sum(w[m] * decay * (xx * jp) ** 2 / den, axis=1)
    return np.where(x < 1e-8, 1.0, out + acc.reshape(x.shape))


#: the tabulated narrow-pulse kernel (:func:`narrow_pulse_tabulated`): step in q R, step in ln(tau + _NP_TAU0),
#: the offset that keeps tau = 0 (D = 0) on the grid, and the largest q R and tau of the table. Beyond
#: _NP_TAU_MAX every term of the series is below exp(-3.3 * 15) ~ 1e-22 (the smallest root^2 is 3.39 for the
#: cylinder, 4.33 for the sphere): the long-time limit to rounding.
_NP_HX = 0.02
_NP_HS = 0.05
_NP_TAU0 = 1e-6
_NP_X_MAX = 25.0
_NP_TAU_MAX = 15.0
#: bound on the error of the tabulated kernel against :func:`narrow_pulse`, on the normalised signal
#: (E(q = 0) = 1), for q R <= 25 and any tau >= 0 (tests/test_fit_speedups.py checks it)
NARROW_PULSE_TABLE_ERROR = 1e-6


@lru_cache(maxsize=2)
def narrow_pulse_table(geometry: str, n_orders: int = 30, n_roots: int = 20) -> tuple[np.ndarray, float, float]:
    """Callaghan's narrow-pulse signal tabulated on a grid of q R and ln(tau + 1e-6), once per process.

    The series of :func:`narrow_pulse` is separable, E = E_inf(q R) + sum_j A_j(q R) exp(-beta_j tau), so the
    whole table is one matrix product of the per-(q R) coefficients and the per-tau decays (a few tens of ms).
    The grid reaches two steps below q R = 0 (E is even in q R) and below tau = 0, so that the 4 x 4 stencil of
    the cubic interpolation (:func:`narrow_pulse_tabulated`) never leaves it.

    Parameters
    ----------
    geometry : {"cylinder", "sphere"}
    n_orders, n_roots : int
        Bessel orders and roots of the series (as :func:`narrow_pulse`).

    Returns
    -------
    table : numpy.ndarray
        (Nx, Ns) signal E (dimensionless) at q R = x0 + i * 0.02 and ln(tau + 1e-6) = s0 + j * 0.05 (read-only).
    x0 : float
        First q R of the grid (dimensionless).
    s0 : float
        First ln(tau + 1e-6) of the grid.
    """
    x0, s0 = -2 * _NP_HX, np.log(_NP_TAU0) - 2 * _NP_HS
    x = x0 + np.arange(int(np.ceil(_NP_X_MAX / _NP_HX)) + 5) * _NP_HX
    s = s0 + np.arange(int(np.ceil((np.log(_NP_TAU_MAX + _NP_TAU0) - s0) / _NP_HS)) + 5) * _NP_HS
    tau = np.exp(s) - _NP_TAU0
    b, w = _narrow_roots(geometry, n_orders, n_roots)
    xa = np.abs(x)[:, None]
    coef = []
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for m in range(n_orders):
            den = (xa**2 - b[m][None, :] ** 2) ** 2
            shifted = den < 1e-20
            xx = np.where(shifted, xa + 1e-7, xa)  # removable 0/0 at x = root, as narrow_pulse
            den = (xx**2 - b[m][None, :] ** 2) ** 2
            # the Bessel derivative once per q R (it does not depend on the root), again only where x moved
            jp = np.repeat(_bessel_prime(geometry, m, xa[:, 0])[:, None], den.shape[1], axis=1)
            if np.any(shifted):
                jp[shifted] = _bessel_prime(geometry, m, xx[shifted])
            coef.append(w[m][None, :] * (xx * jp) ** 2 / den)
    A = np.hstack(coef)  # (Nx, n_orders * n_roots)
    decay = np.exp(-np.outer(b.ravel() ** 2, tau))  # (n_orders * n_roots, Ns)
    table = soderman(geometry, np.abs(x))[:, None] + A @ decay
    table.flags.writeable = False
    return table, float(x0), float(s0)


def _bessel_prime(geometry: str, m: int, x: np.ndarray) -> np.ndarray:
    """J_m'(x) (cylinder) or j_m'(x) (sphere)."""
    return special.jvp(m, x) if geometry == "cylinder" else special.spherical_jn(m, x, derivative=True)


@numba.njit(cache=True)
def _cubic_lookup(table, x0, hx, s0, hs, x, s, out):
    # the tabulated narrow-pulse kernel at every (x, s); NaN where either is not finite
    for i in range(x.size):
        out[i] = _lagrange4(table, x0, hx, s0, hs, x[i], s[i])


def narrow_pulse_tabulated(geometry: str, qR: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """:func:`narrow_pulse` (30 orders, 20 roots) from its table (:func:`narrow_pulse_table`), for fitting.

    Cubic interpolation in q R and ln(tau + 1e-6): within :data:`NARROW_PULSE_TABLE_ERROR` of the series on
    the normalised signal for q R <= 25 and any tau >= 0, at tens of ns per value instead of tens of us.
    q R beyond the table is evaluated by the series.

    Parameters
    ----------
    geometry : {"cylinder", "sphere"}
    qR : numpy.ndarray
        q R (dimensionless, >= 0).
    tau : numpy.ndarray
        D Delta / R^2 (dimensionless, >= 0; inf for the long-time limit), broadcast to the shape of qR.

    Returns
    -------
    numpy.ndarray
        Signal (dimensionless), same shape as qR.
    """
    x = np.asarray(qR, dtype=float)
    t = np.broadcast_to(np.asarray(tau, dtype=float), x.shape).ravel()
    table, x0, s0 = narrow_pulse_table(geometry)
    fx = np.ascontiguousarray(np.abs(x).ravel())
    # past _NP_TAU_MAX the series is its long-time limit to rounding: clamp there
    s = np.log(np.minimum(t, _NP_TAU_MAX) + _NP_TAU0)
    out = np.empty(fx.size)
    _cubic_lookup(table, x0, _NP_HX, s0, _NP_HS, fx, np.ascontiguousarray(s), out)
    far = fx > _NP_X_MAX
    if np.any(far):
        out[far] = narrow_pulse(geometry, fx[far], t[far])
    return np.where(x < 1e-8, 1.0, out.reshape(x.shape))


def soderman(geometry: str, qR: np.ndarray) -> np.ndarray:
    """Long-time narrow-pulse ("Stejskal-Tanner") limit: |form factor|^2.

    Cylinder (Soderman & Jonsson 1995): (2 J1(qR)/(qR))^2; sphere: (3 j1(qR)/(qR))^2.
    """
    x = np.maximum(np.asarray(qR, dtype=float), 1e-12)
    if geometry == "cylinder":
        f = 2 * special.j1(x) / x
    else:
        f = 3 * special.spherical_jn(1, x) / x
    return np.where(x < 1e-6, 1.0, f**2)


# -------------------------------------------------------- orientation averages
@lru_cache(maxsize=8)
def unit_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1] (cos(angle) of antipodally symmetric integrands)."""
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1), 0.5 * w


def frame(theta: np.ndarray, phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """(K, 3, 3) orthonormal frames [mu1, mu2, mu3] from the polar angles of mu1 and a rotation psi about it."""
    st = np.sin(theta)
    mu1 = np.stack([st * np.cos(phi), st * np.sin(phi), np.cos(theta)], axis=-1)
    e1 = np.stack([np.cos(theta) * np.cos(phi), np.cos(theta) * np.sin(phi), -st], axis=-1)
    e2 = np.cross(mu1, e1)
    mu2 = np.cos(psi)[:, None] * e1 + np.sin(psi)[:, None] * e2
    return np.stack([mu1, mu2, np.cross(mu1, mu2)], axis=1)


def bingham_directions(frames: np.ndarray, k1: np.ndarray, k2: np.ndarray, n_x: int = 48,
                       n_phi: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes (K, Q, 3) and normalised weights (K, Q) of a Bingham ODF.

    ODF ~ exp(k1 (mu1.n)^2 + k2 (mu2.n)^2) with k1 >= k2 >= 0; Watson when k2 = 0.
    Gauss-Legendre (n_x) in mu1.n times a uniform azimuth grid (n_phi); weights normalised on the
    nodes, so the normalisation 1F1(1/2; 3/2; diag(k1, k2, 0)) is exact for the quadrature.
    """
    bx, bw = unit_nodes(n_x)
    phi = np.linspace(0, 2 * np.pi, n_phi, endpoint=False)
    x = bx[:, None]
    s = np.sqrt(1 - x**2)
    c, sn = np.cos(phi)[None, :], np.sin(phi)[None, :]
    local = np.stack([np.broadcast_to(x, (x.size, c.size)), s * c, s * sn], axis=-1).reshape(-1, 3)  # (Q, 3)
    n = np.einsum("qa,kai->kqi", local, frames)
    expo = (k1[:, None] * (local[None, :, 0] ** 2 - 1) + k2[:, None] * (local[None, :, 1] ** 2))
    w = np.repeat(bw, n_phi)[None, :] * np.exp(expo - expo.max(axis=1, keepdims=True))
    return n, w / w.sum(axis=1, keepdims=True)


def dispersed_stick(arr, n: np.ndarray, w: np.ndarray, d_par: np.ndarray) -> np.ndarray:
    """Orientation average of a stick, sum_q w_q exp(-d_par n_q^T B n_q): (K, M)."""
    return np.matmul(w[:, None, :], np.exp(-d_par[:, None, None] * quadratic_form(n, arr.B)))[:, 0]


# ------------------------------------------------ Bingham average from its normaliser
#: grid of the Bingham normaliser table (:func:`bingham_table`): step and largest eigenvalue gap tabulated,
#: Gauss-Legendre nodes of its integral. kappa1 <= 64 and d B <= 35 (b = 10 ms/um^2 at 3.5 um^2/ms) keep the gaps
#: below 100; larger ones are integrated directly
_BT_H = 0.25
_BT_MAX = 112.0
_BT_NODES = 64  # the integral to ~1e-12 over the whole table
#: bound on the relative error of the tabulated Bingham stick average against its direct integral (ln F is
#: interpolated to ~4e-6 on the 0.25 grid; the average is a ratio of two normalisers), and on the absolute error
#: of the orientation tensor (tests/test_fit_speedups.py checks both)
BINGHAM_TABLE_ERROR = 2e-5


def bingham_log_normaliser(a: np.ndarray, b: np.ndarray, n_nodes: int = _BT_NODES) -> tuple[np.ndarray, np.ndarray]:
    """ln F(a, b) and d ln F / d a of F(a, b) = (1/4 pi) int exp(a (mu1.n)^2 + b (mu2.n)^2) dn, a, b >= 0.

    F(a, b) = int_0^1 exp(a t^2) e^(y/2) I0(y/2) dt with y = b (1 - t^2) (the azimuth integrated in closed form),
    by Gauss-Legendre in t; d ln F / d a = <(mu1.n)^2>.

    Parameters
    ----------
    a, b : numpy.ndarray
        Concentrations (dimensionless, >= 0), broadcast together.
    n_nodes : int
        Gauss-Legendre nodes on [0, 1].

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ln F and <(mu1.n)^2>, the broadcast shape of a and b.
    """
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    t, w = unit_nodes(n_nodes)
    top = np.maximum(np.maximum(a, b), 0.0)[..., None]  # the integrand's largest exponent, out against overflow
    y = b[..., None] * (1 - t**2)
    # e^(y/2) I0(y/2) = e^((y + |y|)/2) i0e(y/2): the table's stencil reaches below 0, where y < 0
    f = w * np.exp(a[..., None] * t**2 + 0.5 * (y + np.abs(y)) - top) * special.i0e(y / 2)
    s = f.sum(axis=-1)
    return top[..., 0] + np.log(s), (f * t**2).sum(axis=-1) / s


@lru_cache(maxsize=1)
def bingham_table() -> tuple[np.ndarray, np.ndarray]:
    """ln F and <(mu1.n)^2> (:func:`bingham_log_normaliser`) on a square grid of (a, b), once per process.

    The grid starts two steps below 0 (F is even in neither, but smooth: its cubic stencil needs the points) and
    reaches :data:`_BT_MAX`, step :data:`_BT_H`.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        (N, N) tables at a = b = -2 * 0.25 + i * 0.25 (read-only).
    """
    g = -2 * _BT_H + np.arange(int(np.ceil(_BT_MAX / _BT_H)) + 5) * _BT_H
    lnF, m1 = np.empty((g.size, g.size)), np.empty((g.size, g.size))
    for i, a in enumerate(g):
        lnF[i], m1[i] = bingham_log_normaliser(np.full(g.size, a), g)
    lnF.flags.writeable = False
    m1.flags.writeable = False
    return lnF, m1


@numba.njit(cache=True)
def _lagrange4(table, x0, hx, y0, hy, x, y):
    # 4 x 4 Lagrange (local cubic) interpolation of table[i, j] at (x0 + i hx, y0 + j hy): error ~ h^4 f^(4) / 24
    # per axis, continuous across cells; NaN for a non-finite point (an index from NaN would read outside)
    nx, ny = table.shape
    fx = (x - x0) / hx
    fy = (y - y0) / hy
    if not (np.isfinite(fx) and np.isfinite(fy)):
        return np.nan
    i = int(np.floor(min(max(fx, 1.0), nx - 3.0)))  # clamped before int(): no overflow
    j = int(np.floor(min(max(fy, 1.0), ny - 3.0)))
    t = fx - i
    u = fy - j
    wx = (-t * (t - 1) * (t - 2) / 6, (t + 1) * (t - 1) * (t - 2) / 2, -(t + 1) * t * (t - 2) / 2,
          (t + 1) * t * (t - 1) / 6)
    wy = (-u * (u - 1) * (u - 2) / 6, (u + 1) * (u - 1) * (u - 2) / 2, -(u + 1) * u * (u - 2) / 2,
          (u + 1) * u * (u - 1) / 6)
    acc = 0.0
    for p in range(4):
        row = 0.0
        for q in range(4):
            row += wy[q] * table[i - 1 + p, j - 1 + q]
        acc += wx[p] * row
    return acc


@numba.njit(cache=True)
def _sym3_eigenvalues(m00, m11, m22, m01, m02, m12):
    # eigenvalues (descending) of a symmetric 3 x 3 matrix, trigonometric solution of its characteristic cubic;
    # where two nearly coincide their error is O(sqrt(eps)) each but opposite, and the normaliser is a symmetric
    # function of them, so the error of c(M) is second order
    q = (m00 + m11 + m22) / 3
    p1 = m01 * m01 + m02 * m02 + m12 * m12
    p2 = (m00 - q) ** 2 + (m11 - q) ** 2 + (m22 - q) ** 2 + 2 * p1
    if p2 <= 0.0:
        return q, q, q
    p = np.sqrt(p2 / 6)
    b00, b11, b22 = (m00 - q) / p, (m11 - q) / p, (m22 - q) / p
    b01, b02, b12 = m01 / p, m02 / p, m12 / p
    r = (b00 * (b11 * b22 - b12 * b12) - b01 * (b01 * b22 - b12 * b02) + b02 * (b01 * b12 - b11 * b02)) / 2
    r = min(max(r, -1.0), 1.0)
    phi = np.arccos(r) / 3
    l1 = q + 2 * p * np.cos(phi)
    l3 = q + 2 * p * np.cos(phi + 2 * np.pi / 3)
    return l1, 3 * q - l1 - l3, l3


@numba.njit(cache=True)
def _bingham_stick_kernel(lnF, x0, h, gmax, Z6, d, B6, out, far):
    # out[k, m] = c(Z_k - d_k B_m) / c(Z_k) with c(M) = exp(l3) F(l1 - l3, l2 - l3); far[k, m] marks the gaps
    # beyond the table (the caller integrates those directly)
    K, M = out.shape
    for k in range(K):
        zl1, zl2, zl3 = _sym3_eigenvalues(Z6[k, 0], Z6[k, 1], Z6[k, 2], Z6[k, 3], Z6[k, 4], Z6[k, 5])
        lnc0 = zl3 + _lagrange4(lnF, x0, h, x0, h, zl1 - zl3, zl2 - zl3)
        for m in range(M):
            l1, l2, l3 = _sym3_eigenvalues(Z6[k, 0] - d[k] * B6[m, 0], Z6[k, 1] - d[k] * B6[m, 1],
                                           Z6[k, 2] - d[k] * B6[m, 2], Z6[k, 3] - d[k] * B6[m, 3],
                                           Z6[k, 4] - d[k] * B6[m, 4], Z6[k, 5] - d[k] * B6[m, 5])
            if l1 - l3 > gmax:
                far[k, m] = True
                out[k, m] = np.nan
                continue
            out[k, m] = np.exp(l3 + _lagrange4(lnF, x0, h, x0, h, l1 - l3, l2 - l3) - lnc0)


def bingham_stick(arr, frames: np.ndarray, k1: np.ndarray, k2: np.ndarray, d_par: np.ndarray) -> tuple:
    """Bingham-dispersed sticks, exactly through the Bingham normaliser: (K, M) signals and (K, 3, 3) <n n^T>.

    For the ODF ~ exp(n^T Z n), Z = k1 mu1 mu1^T + k2 mu2 mu2^T, the average of exp(-d n^T B n) is
    c(Z - d B) / c(Z), c(M) = (1/4 pi) int exp(n^T M n) dn = exp(l3) F(l1 - l3, l2 - l3) from the eigenvalues
    l1 >= l2 >= l3 of M, for any b-tensor B. ln F is tabulated (:func:`bingham_table`) and interpolated (4 x 4
    cubic, within :data:`BINGHAM_TABLE_ERROR` (relative) of the direct integral); eigenvalue gaps beyond the table are
    integrated directly. <n n^T> = sum_i <(mu_i.n)^2> mu_i mu_i^T, <(mu1.n)^2> = d ln F / d a from the same table.

    Parameters
    ----------
    arr : SchemeArrays
        b-tensors ``arr.B`` in s/m^2.
    frames : numpy.ndarray
        (K, 3, 3) orthonormal frames [mu1, mu2, mu3] (:func:`frame`).
    k1, k2 : numpy.ndarray
        (K,) concentrations, k1 >= k2 >= 0 (dimensionless).
    d_par : numpy.ndarray
        (K,) stick diffusivity in m^2/s.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        (K, M) signals (dimensionless) and (K, 3, 3) orientation tensors.
    """
    lnF, m1 = bingham_table()
    x0 = -2 * _BT_H
    mu1, mu2 = frames[:, 0], frames[:, 1]
    Z = k1[:, None, None] * np.einsum("ki,kj->kij", mu1, mu1) + k2[:, None, None] * np.einsum("ki,kj->kij", mu2, mu2)
    Z6 = np.ascontiguousarray(np.column_stack([Z[:, 0, 0], Z[:, 1, 1], Z[:, 2, 2], Z[:, 0, 1], Z[:, 0, 2],
                                               Z[:, 1, 2]]))
    B = arr.B
    B6 = np.ascontiguousarray(np.column_stack([B[:, 0, 0], B[:, 1, 1], B[:, 2, 2], B[:, 0, 1], B[:, 0, 2],
                                               B[:, 1, 2]]))
    d = np.ascontiguousarray(d_par, dtype=float)
    out = np.empty((len(Z6), len(B6)))
    far = np.zeros(out.shape, dtype=bool)
    _bingham_stick_kernel(lnF, x0, _BT_H, _BT_MAX, Z6, d, B6, out, far)
    if np.any(far):
        k, m = np.nonzero(far)
        l = np.linalg.eigvalsh(Z[k] - d[k, None, None] * B[m])  # ascending
        lnc = l[:, 0] + bingham_log_normaliser(l[:, 2] - l[:, 0], l[:, 1] - l[:, 0], 4 * _BT_NODES)[0]
        out[k, m] = np.exp(lnc - bingham_log_normaliser(k1[k], k2[k])[0])
    k1c, k2c = np.ascontiguousarray(k1, dtype=float), np.ascontiguousarray(k2, dtype=float)
    # <(mu2.n)^2> is <(mu1.n)^2> with the concentrations swapped (F is symmetric in them)
    g1, g2 = _lagrange_many(m1, x0, _BT_H, k1c, k2c), _lagrange_many(m1, x0, _BT_H, k2c, k1c)
    g3 = 1 - g1 - g2
    T = (g1[:, None, None] * np.einsum("ki,kj->kij", mu1, mu1) + g2[:, None, None] * np.einsum("ki,kj->kij", mu2, mu2)
         + g3[:, None, None] * np.einsum("ki,kj->kij", frames[:, 2], frames[:, 2]))
    return out, T


@numba.njit(cache=True)
def _lagrange_many(table, x0, h, x, y):
    out = np.empty(x.size)
    for i in range(x.size):
        out[i] = _lagrange4(table, x0, h, x0, h, x[i], y[i])
    return out


@numba.njit(cache=True)
def _rows_dot(A, Bt, out):
    # the inner loop runs over independent outputs (it vectorises); every output sums over j in the same order
    for k in range(A.shape[0]):
        for m in range(Bt.shape[1]):
            out[k, m] = 0.0
        for j in range(A.shape[1]):
            a = A[k, j]
            for m in range(Bt.shape[1]):
                out[k, m] += a * Bt[j, m]


def rows_dot(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A @ B.T for A (K, p), B (M, p), each row of the result computed on its own, in one fixed order.

    BLAS (numpy's @) may round a row differently with the number of rows beside it (its kernels block the
    matrix), so a fit's result would depend on how many signals share a batch, hence on n_jobs. Forward
    functions evaluated over many parameter sets use this instead.
    """
    A = np.ascontiguousarray(A, dtype=np.float64)
    Bt = np.ascontiguousarray(np.asarray(B, dtype=np.float64).T)
    out = np.empty((A.shape[0], Bt.shape[1]))
    _rows_dot(A, Bt, out)
    return out


def quadratic_form(n: np.ndarray, B: np.ndarray) -> np.ndarray:
    """n^T B_m n for directions n (..., 3) and tensors B (M, 3, 3): (..., M), row by row (:func:`rows_dot`)."""
    sq = np.stack([n[..., 0] ** 2, n[..., 1] ** 2, n[..., 2] ** 2, 2 * n[..., 0] * n[..., 1],
                   2 * n[..., 0] * n[..., 2], 2 * n[..., 1] * n[..., 2]], axis=-1)
    b6 = np.stack([B[:, 0, 0], B[:, 1, 1], B[:, 2, 2], B[:, 0, 1], B[:, 0, 2], B[:, 1, 2]], axis=1)
    return rows_dot(sq.reshape(-1, 6), b6).reshape(*n.shape[:-1], len(B))


def orientation_tensor(n: np.ndarray, w: np.ndarray) -> np.ndarray:
    """<n n^T> of the ODF: (K, 3, 3)."""
    return np.einsum("kq,kqi,kqj->kij", w, n, n)


# ------------------------------------------------------------ size distributions
def gamma_radius_nodes(alpha: np.ndarray, beta: np.ndarray, weight_power: int = 2,
                       n_nodes: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature radii (K, Q) in m and weights (Q,) of a Gamma(alpha, beta) distribution weighted by R^p.

    R^p Gamma(R; alpha, beta) is, normalised, Gamma(alpha + p, beta): p = 2 gives the volume-weighted
    radius distribution of a cylinder population (AxCaliber), p = 3 that of spheres. Nodes are the
    distribution's quantiles at Gauss-Legendre points in (0, 1).

    Parameters
    ----------
    alpha : numpy.ndarray
        (K,) shape (of the number-weighted distribution).
    beta : numpy.ndarray
        (K,) scale, m.
    weight_power : int
        p.
    n_nodes : int
        Quadrature nodes.
    """
    u, w = unit_nodes(n_nodes)
    a = np.asarray(alpha, dtype=float)[:, None] + weight_power
    return special.gammaincinv(a, u[None, :]) * np.asarray(beta, dtype=float)[:, None], w


# ------------------------------------------------------------------- exchange
def expm2_apply(a11, a12, a21, a22, m1, m2):
    """exp(A) (m1, m2) for 2 x 2 matrices A = [[a11, a12], [a21, a22]] with real eigenvalues, element-wise.

    Cayley-Hamilton: exp(A) = c0 I + c1 A with c1 = (e^l1 - e^l2)/(l1 - l2), c0 = (l1 e^l2 - l2 e^l1)/(l1 - l2);
    the degenerate limit is taken where l1 = l2.
    """
    tr = a11 + a22
    disc = np.sqrt(np.maximum((a11 - a22) ** 2 + 4 * a12 * a21, 0.0))
    l1, l2 = 0.5 * (tr + disc), 0.5 * (tr - disc)
    small = disc < 1e-10 * np.maximum(1.0, np.abs(tr))
    e1, e2 = np.exp(l1), np.exp(l2)
    safe = np.where(small, 1.0, disc)
    c1 = np.where(small, e1, (e1 - e2) / safe)
    c0 = np.where(small, e1 * (1 - l1), (l1 * e2 - l2 * e1) / safe)
    return c0 * m1 + c1 * (a11 * m1 + a12 * m2), c0 * m2 + c1 * (a21 * m1 + a22 * m2)


def karger(q2t: np.ndarray, D1: np.ndarray, D2: np.ndarray, f1: np.ndarray, k12: np.ndarray,
           t: np.ndarray) -> np.ndarray:
    """Two-compartment Karger signal (narrow pulses, barrier-limited exchange).

    dm/dt = [[-q^2 D1 - k12, k21], [k12, -q^2 D2 - k21]] m, m(0) = (f1, 1 - f1), detailed balance
    f1 k12 = (1 - f1) k21, E = m1(t) + m2(t). Arrays broadcast together.

    Parameters
    ----------
    q2t : numpy.ndarray
        q^2 t = b (narrow pulse), s/m^2.
    D1, D2 : numpy.ndarray
        Diffusivities, m^2/s.
    f1 : numpy.ndarray
        Fraction of compartment 1.
    k12 : numpy.ndarray
        Exchange rate 1 -> 2 (1 / mean residence time in 1), s^-1.
    t : numpy.ndarray
        Diffusion time, s.
    """
    f2 = 1 - f1
    k21 = f1 * k12 / np.maximum(f2, 1e-12)
    m1, m2 = expm2_apply(-q2t * D1 - k12 * t, k21 * t, k12 * t, -q2t * D2 - k21 * t, f1, f2)
    return m1 + m2
