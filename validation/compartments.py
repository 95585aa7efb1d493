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
    u, H, dH, lam1, G2 = arr.waveform_spectrum()
    a, Bn = gpd_modes(geometry, _N_MODES_ANY)
    tail = _mode_tail(geometry)
    trG = np.einsum("mii->m", G2)
    K, M = len(R), H.shape[1]
    out = np.empty((K, M))
    chunk = max(1, int(2e6 // (a.size * M)))
    for s in range(0, K, chunk):
        sl = slice(s, s + chunk)
        lam = D[sl, None] * (a[None, :] / R[sl, None]) ** 2  # (k, n)
        x = np.clip(np.log(np.maximum(lam, 1e-300)), u[0], u[-1])
        i = np.clip(np.searchsorted(u, x) - 1, 0, u.size - 2)
        h = u[i + 1] - u[i]
        t = ((x - u[i]) / h)[..., None, None, None]
        hh = h[..., None, None, None]
        # cubic Hermite in ln(lam) with finite-difference slopes: ~1e-7 relative on ln E
        Hi = ((2 * t**3 - 3 * t**2 + 1) * H[i] + (t**3 - 2 * t**2 + t) * hh * dH[i]
              + (-2 * t**3 + 3 * t**2) * H[i + 1] + (t**3 - t**2) * hh * dH[i + 1])  # (k, n, M, 3, 3)
        F = Hi * (lam * lam1 / (lam1**2 + lam**2))[..., None, None, None]
        tr = np.einsum("knmii->knm", F)
        if geometry == "sphere":
            proj = tr
        else:
            nFn = np.einsum("ki,knmij,kj->knm", n[sl], F, n[sl])
            proj = nFn if geometry == "planes" else tr - nFn
        # modes beyond the kept ones decay far faster than any waveform feature: F -> 2 G2 / lam
        if geometry == "sphere":
            gp = trG[None, :]
        else:
            nGn = np.einsum("ki,mij,kj->km", n[sl], G2, n[sl])
            gp = nGn if geometry == "planes" else trG[None, :] - nGn
        with np.errstate(divide="ignore", invalid="ignore"):
            tail_term = np.where(D[sl, None] > 0, tail * R[sl, None] ** 4 * gp / np.maximum(D[sl, None], 1e-300), 0)
        out[sl] = -0.5 * arr.gamma**2 * (np.einsum("n,knm->km", Bn, proj) * R[sl, None] ** 2 + 2 * tail_term)
    return out


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
