"""Exact and reference signals for free and restricted diffusion (SI units).

- :func:`free_signal`: exp(-B : D), exact for any waveform.
- :func:`gpd_signal`: Gaussian phase approximation for planes, cylinders and
  spheres, for any piecewise-constant waveform (exact double integral per
  eigenmode); :func:`gpd_pgse` is the closed form for rectangular PGSE.
- :func:`validation.mf_signal` (module ``matrix_formalism``): the matrix formalism,
  the near-exact reference for any waveform along a fixed direction, at every pore size.
- :func:`callaghan_signal`: the narrow-pulse (SGP) eigenfunction series.
- :func:`restricted_msd`, :func:`mitra_dt`: exact and short-time D(t).
- :func:`perrins_tortuosity`: long-time diffusivity around periodic cylinder arrays.
- :func:`annulus_msd`, :func:`annulus_modes`: exact MSD across an annulus
  (a myelin sheath).
- :func:`surface_relaxation_signal`, :func:`robin_modes`: the b = 0 decay with
  surface relaxivity (Robin walls; Brownstein & Tarr 1979).

Geometry conventions: ``radius`` is the half-separation L/2 for planes and the
radius for cylinders and spheres. Cylinders run along ``axis``; planes are
normal to ``axis``. References: analytic-reference sections 1.1-1.6.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import special
from scipy.optimize import brentq

GEOMETRIES = ("planes", "cylinder", "sphere")


def _geom(geometry: str) -> str:
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
    return geometry


# ------------------------------------------------------------------ free
def free_signal(scheme, diffusivity) -> np.ndarray:
    """Free-diffusion signal exp(-tr(B D)) for every measurement.

    Parameters
    ----------
    scheme : sequences.Scheme
        Encoding.
    diffusivity : float or array_like
        Scalar D in m^2/s or a (3, 3) tensor.

    Returns
    -------
    numpy.ndarray
        (M,) signals.
    """
    D = np.asarray(diffusivity, dtype=float)
    if D.ndim == 0:
        return np.exp(-scheme.bvalues * float(D))
    return np.exp(-np.einsum("mij,ij->m", scheme.btensors, D))


# ------------------------------------------------------- eigen-structure
@lru_cache(maxsize=256)
def spherical_jn_prime_zeros(l: int, n: int) -> np.ndarray:
    """First ``n`` positive zeros of d/dx j_l(x) (spherical Bessel), by bracketing and Brent's method.

    Parameters
    ----------
    l : int
        Order of the spherical Bessel function.
    n : int
        Number of zeros.

    Returns
    -------
    numpy.ndarray
        (n,) zeros in increasing order (dimensionless; cached, do not modify).

    Raises
    ------
    RuntimeError
        If fewer than ``n`` zeros were found.
    """
    f = lambda x: special.spherical_jn(l, x, derivative=True)  # noqa: E731
    # the k-th zero lies near (k + l/2) pi; sample finely enough to separate neighbours
    x = np.arange(0.5 if l < 2 else 1e-3, (n + l / 2 + 3) * np.pi, 0.02)
    fx = f(x)
    idx = np.nonzero(np.sign(fx[:-1]) * np.sign(fx[1:]) < 0)[0]
    roots = np.array([brentq(f, x[i], x[i + 1], xtol=1e-14, rtol=1e-15) for i in idx])
    roots = roots[roots > 1e-3]
    if roots.size < n:
        raise RuntimeError(f"found {roots.size} zeros of j_{l}' where {n} were asked for")
    return roots[:n]


def gpd_modes(geometry: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n modes of the position autocorrelation in a restricting geometry (section 1.2).

    Cached (the roots cost ~1 ms, and the fits evaluate GPD signals thousands of times); the arrays are
    read-only.

    Parameters
    ----------
    geometry : {"planes", "cylinder", "sphere"}
    n : int
        Number of modes.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        alpha_n R (dimensionless roots) and B_n / R^2 (mode weights).
    """
    return _gpd_modes(geometry, int(n))


@lru_cache(maxsize=64)
def _gpd_modes(geometry: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    if geometry == "planes":
        a = (2 * np.arange(1, n + 1) - 1) * np.pi / 2
        w = 2.0 / a**4
    elif geometry == "cylinder":
        a = special.jnp_zeros(1, n)
        w = 2.0 / (a**2 * (a**2 - 1))
    else:
        a = spherical_jn_prime_zeros(1, n)
        w = 2.0 / (a**2 * (a**2 - 2))
    a.flags.writeable = False
    w.flags.writeable = False
    return a, w


def restricted_msd(geometry: str, radius: float, diffusivity: float, t, n_modes: int = 2000) -> np.ndarray:
    """Exact mean squared displacement along one axis, uniform start, reflecting walls.

    <dx^2>(t) = 2 sum_n B_n (1 - exp(-D alpha_n^2 t)); the axis is normal to the
    planes, perpendicular to the cylinder, any for the sphere.

    Parameters
    ----------
    geometry : {"planes", "cylinder", "sphere"}
    radius : float
        Half-separation (planes) or radius, m.
    diffusivity : float
        Free diffusivity in m^2/s.
    t : array_like
        Times in s.
    n_modes : int
        Terms of the series.

    Returns
    -------
    numpy.ndarray
        MSD in m^2.
    """
    a, Bn = gpd_modes(_geom(geometry), n_modes)
    t = np.asarray(t, dtype=float)
    lam = diffusivity * (a / radius) ** 2
    return 2 * radius**2 * np.sum(Bn * (1 - np.exp(-np.multiply.outer(t, lam))), axis=-1)


def robin_modes(geometry: str, h: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and weights of the b = 0 decay with surface relaxivity (Robin walls), uniform start.

    The magnetisation obeys D grad^2 m = dm/dt with -D dm/dn = rho m on the
    wall (Brownstein & Tarr 1979). With h = rho a / D (a: half-separation or
    radius), the eigenvalues xi_n solve

    - planes: xi tan xi = h (the modes even about the mid-plane);
    - cylinder: xi J1(xi) = h J0(xi);
    - sphere: 1 - xi cot xi = h;

    and the volume-averaged signal is sum_n w_n exp(-xi_n^2 D t / a^2) with
    w_n = 2 sin^2 xi / (xi (xi + sin xi cos xi)), 4 h^2 / (xi^2 (xi^2 + h^2))
    and 6 h^2 / (xi^2 (xi^2 + h^2 - h)); the weights sum to 1.

    Parameters
    ----------
    geometry : {"planes", "cylinder", "sphere"}
    h : float
        rho a / D (dimensionless, > 0).
    n : int
        Number of modes.

    Returns
    -------
    xi, weights : numpy.ndarray
        (n,) eigenvalues (dimensionless, ascending) and signal weights.
    """
    _geom(geometry)
    if not h > 0:
        raise ValueError(f"h = rho a / D must be > 0, got {h!r}")
    eps = 1e-12
    if geometry == "planes":
        def f(x):
            return x * np.sin(x) - h * np.cos(x)
        brackets = [(k * np.pi + (eps if k == 0 else 0.0), (k + 0.5) * np.pi) for k in range(n)]
    elif geometry == "cylinder":
        def f(x):
            return x * special.j1(x) - h * special.j0(x)
        j0 = special.jn_zeros(0, n)
        j1 = np.concatenate([[eps], special.jn_zeros(1, n - 1)]) if n > 1 else np.array([eps])
        brackets = list(zip(j1, j0))
    else:
        def f(x):
            return x * np.cos(x) - (1.0 - h) * np.sin(x)
        brackets = [(k * np.pi + (eps if k == 0 else 0.0), (k + 1) * np.pi) for k in range(n)]
    xi = np.array([brentq(f, a, b, xtol=1e-14, rtol=1e-14) for a, b in brackets])
    if geometry == "planes":
        w = 2 * np.sin(xi) ** 2 / (xi * (xi + np.sin(xi) * np.cos(xi)))
    elif geometry == "cylinder":
        w = 4 * h**2 / (xi**2 * (xi**2 + h**2))
    else:
        w = 6 * h**2 / (xi**2 * (xi**2 + h**2 - h))
    return xi, w


def surface_relaxation_signal(geometry: str, radius: float, diffusivity: float, relaxivity: float, t,
                              n_modes: int = 200) -> np.ndarray:
    """Exact b = 0 signal of a pore with surface relaxivity: the surviving magnetisation at times t.

    Parameters
    ----------
    geometry : {"planes", "cylinder", "sphere"}
    radius : float
        Half-separation (planes) or radius a, m.
    diffusivity : float
        D in m^2/s.
    relaxivity : float
        Surface relaxivity rho in m/s (walkers start uniformly inside).
    t : array_like
        Times in s.
    n_modes : int
        Terms of the series (:func:`robin_modes`).

    Returns
    -------
    numpy.ndarray
        S(t) / S(0) (dimensionless). For rho a / D << 1 it tends to
        exp(-rho (S/V) t) (Brownstein-Tarr fast-diffusion limit).

    Examples
    --------
    >>> import numpy as np
    >>> from validation import surface_relaxation_signal
    >>> s = surface_relaxation_signal("sphere", 5e-6, 2e-9, 2e-7, [0.05])  # rho a / D = 5e-4
    >>> bool(np.isclose(s[0], np.exp(-2e-7 * 3 / 5e-6 * 0.05), rtol=1e-3))
    True
    """
    if relaxivity == 0:
        return np.ones(np.shape(np.atleast_1d(t)))
    h = float(relaxivity) * float(radius) / float(diffusivity)
    xi, w = robin_modes(geometry, h, n_modes)
    tt = np.atleast_1d(np.asarray(t, dtype=float))
    return np.exp(-np.multiply.outer(tt, xi**2 * diffusivity / radius**2)) @ w


def annulus_modes(inner_radius: float, outer_radius: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The modes of an annulus (reflecting walls) that carry a displacement across it.

    x = r cos(theta) projects only onto the angular order m = 1 Neumann modes,
    Z(alpha r) = J1(alpha r) Y1'(alpha a) - Y1(alpha r) J1'(alpha a) with
    Z'(alpha b) = 0 (a, b: inner and outer radius). The weights are the
    squared projections of x onto the normalised modes (uniform density),
    from closed forms: the integral of r^2 Z1 is r^2 Z2 / alpha, and the
    Lommel integral gives the norm.

    Parameters
    ----------
    inner_radius, outer_radius : float
        a < b in m (a -> 0 gives the disk).
    n : int
        Number of modes.

    Returns
    -------
    alpha : numpy.ndarray
        (n,) eigenvalues in 1/m, ascending.
    weights : numpy.ndarray
        (n,) in m^2; they sum to <x^2> = (a^2 + b^2) / 4.
    """
    a, b = float(inner_radius), float(outer_radius)
    if not 0 < a < b:
        raise ValueError(f"need 0 < inner_radius < outer_radius, got {inner_radius!r}, {outer_radius!r}")

    def cross(al):
        return special.jvp(1, al * a) * special.yvp(1, al * b) - special.jvp(1, al * b) * special.yvp(1, al * a)

    # the roots are about pi / (b - a) apart beyond the first, which is near 2 / (a + b): a fine scan brackets each
    step = np.pi / (b - a) / 40
    grid = np.arange(step / 10, (n + 2) * np.pi / (b - a) + 2 / b, step)
    vals = cross(grid)
    brackets = np.nonzero(np.sign(vals[:-1]) != np.sign(vals[1:]))[0][:n]
    al = np.array([brentq(cross, grid[i], grid[i + 1], xtol=1e-15 / b, rtol=1e-14) for i in brackets])
    ja, ya = special.jvp(1, al * a), special.yvp(1, al * a)

    def Z(order, r):
        return special.jv(order, al * r) * ya - special.yv(order, al * r) * ja

    proj = (b * b * Z(2, b) - a * a * Z(2, a)) / al
    norm = 0.5 * b * b * (1 - 1 / (al * b) ** 2) * Z(1, b) ** 2 - 0.5 * a * a * (1 - 1 / (al * a) ** 2) * Z(1, a) ** 2
    return al, np.pi * proj**2 / (norm * np.pi * (b * b - a * a))


def annulus_msd(inner_radius: float, outer_radius: float, diffusivity: float, t, n_modes: int = 400) -> np.ndarray:
    """Exact mean squared displacement along one axis across an annulus (a myelin sheath), uniform start.

    <dx^2>(t) = 2 sum_n w_n (1 - exp(-D alpha_n^2 t)) over the modes of
    :func:`annulus_modes`; it tends to (a^2 + b^2) / 2 at long times.

    Parameters
    ----------
    inner_radius, outer_radius : float
        a < b in m.
    diffusivity : float
        D in m^2/s.
    t : array_like
        Times in s.
    n_modes : int
        Terms of the series.

    Returns
    -------
    numpy.ndarray
        MSD along x (or y) in m^2.

    Examples
    --------
    >>> from validation import annulus_msd
    >>> float(annulus_msd(0.7e-6, 1e-6, 1e-9, [1.0])[0] / ((0.7e-6**2 + 1e-6**2) / 2))
    1.0
    """
    al, w = annulus_modes(inner_radius, outer_radius, n_modes)
    tt = np.atleast_1d(np.asarray(t, dtype=float))
    return 2 * (1 - np.exp(-np.multiply.outer(tt, diffusivity * al**2))) @ w


def mitra_dt(geometry: str, radius: float, diffusivity: float, t, curvature: bool = True) -> np.ndarray:
    """Short-time D(t)/D0 (Mitra et al. 1992/1993), per axis as in :func:`restricted_msd`.

    D(t)/D0 = 1 - 4/(3 d sqrt(pi)) (S/V) sqrt(D0 t) - (1/(4d)) (S/V) <k1 + k2> D0 t,
    with d, S/V and curvature of the geometry (planes: d=1, S/V=1/R; cylinder:
    d=2, 2/R, 1/R; sphere: d=3, 3/R, 2/R).

    Parameters
    ----------
    geometry : {"planes", "cylinder", "sphere"}
        Restricting geometry.
    radius : float
        Half-separation (planes) or radius R, m.
    diffusivity : float
        Free diffusivity D0 in m^2/s.
    t : array_like
        Diffusion times in s.
    curvature : bool
        Include the curvature term (linear in t).

    Returns
    -------
    numpy.ndarray
        D(t)/D0 (dimensionless), the shape of ``t``.
    """
    d, sv, kk = {"planes": (1, 1.0, 0.0), "cylinder": (2, 2.0, 1.0), "sphere": (3, 3.0, 2.0)}[_geom(geometry)]
    t = np.asarray(t, dtype=float)
    out = 1 - 4 / (3 * d * np.sqrt(np.pi)) * (sv / radius) * np.sqrt(diffusivity * t)
    if curvature:
        out -= (sv / radius) * (kk / radius) * diffusivity * t / (4 * d)
    return out


def perrins_tortuosity(icvf: float, lattice: str = "hexagonal") -> float:
    """Long-time D_inf/D0 of the space around a periodic array of insulating cylinders.

    Perrins, McKenzie & McPhedran 1979: D_inf/D0 = sigma_eff / (1 - f).

    Parameters
    ----------
    icvf : float
        Intra-cylinder volume fraction f (dimensionless).
    lattice : {"hexagonal", "square"}
        Lattice of the cylinders.

    Returns
    -------
    float
        D_inf/D0 of the extra-cylinder space (dimensionless).

    Raises
    ------
    ValueError
        If ``lattice`` is neither "square" nor "hexagonal".
    """
    f = float(icvf)
    if lattice == "square":
        s = 1 - 2 * f / (1 + f - 0.305827 * f**4 / (1 - 1.402958 * f**8) - 0.013362 * f**8)
    elif lattice == "hexagonal":
        s = 1 - 2 * f / (1 + f - 0.075422 * f**6 / (1 - 1.060283 * f**12) - 0.000076 * f**12)
    else:
        raise ValueError("lattice must be 'square' or 'hexagonal'")
    return s / (1 - f)


# ------------------------------------------------ Gaussian phase (GPD)
def gpd_pgse(geometry: str, radius: float, diffusivity: float, delta: float, Delta: float, G,
             gamma: float = 2.6751525e8, n_modes: int = 200) -> np.ndarray:
    """Closed-form GPD signal for rectangular PGSE, gradient perpendicular to the walls.

    Murday & Cotts 1968 (sphere), van Gelderen et al. 1994 (cylinder), Neuman 1974.

    Parameters
    ----------
    geometry : {"planes", "cylinder", "sphere"}
        Restricting geometry.
    radius : float
        Half-separation (planes) or radius, m.
    diffusivity : float
        Free diffusivity in m^2/s.
    delta : float
        Pulse duration in s.
    Delta : float
        Separation of the pulse onsets in s.
    G : float or array_like
        Gradient amplitude(s) in T/m.
    gamma : float
        Gyromagnetic ratio in rad/s/T.
    n_modes : int
        Eigenmodes kept in the series.

    Returns
    -------
    numpy.ndarray
        Signals (dimensionless), the shape of ``G``.
    """
    a, _ = gpd_modes(_geom(geometry), n_modes)
    d1 = {"planes": 0.0, "cylinder": 1.0, "sphere": 2.0}[geometry]
    alpha = a / radius
    lam = diffusivity * alpha**2
    num = (2 * lam * delta - 2 + 2 * np.exp(-lam * delta) + 2 * np.exp(-lam * Delta)
           - np.exp(-lam * (Delta - delta)) - np.exp(-lam * (Delta + delta)))
    den = diffusivity**2 * alpha**6 * (a**2 - d1)
    G = np.asarray(G, dtype=float)
    return np.exp(-2 * gamma**2 * G**2 * np.sum(num / den))


def cell_integrals(lam: float, dt: float) -> tuple[float, float]:
    """Double integrals of exp(-lam |t1 - t2|) over step cells of length dt.

    Returns (same cell, neighbouring cells); cells j > k further apart carry an extra
    exp(-lam dt (j - k - 1)). The small-x series avoids the cancellation in x - 1 + e^-x.
    """
    x = lam * dt
    diag = dt**2 * (1 - x / 3 + x**2 / 12) if x < 1e-3 else 2 * (x + np.expm1(-x)) / lam**2
    return diag, np.expm1(-x) ** 2 / lam**2


def _gpd_quadratic(g: np.ndarray, dt: float, lam: float) -> float:
    """Exact sum_j sum_k g_j g_k int_cell_j int_cell_k exp(-lam |t1 - t2|) for piecewise-constant g."""
    diag, off = cell_integrals(lam, dt)
    r = np.exp(-lam * dt)
    c, total = 0.0, 0.0
    for j in range(1, len(g)):
        c = r * c + g[j - 1]  # c_j = sum_{k<j} g_k r^(j-1-k)
        total += g[j] * c
    return diag * float(np.dot(g, g)) + 2 * off * total


def gpd_signal(scheme, geometry: str, radius: float, diffusivity: float, axis=(0.0, 0.0, 1.0),
               n_modes: int = 60) -> np.ndarray:
    """GPD signal of every measurement for any waveform (exact per-mode double integral).

    ln E = -(gamma^2/2) sum_n B_n sum_axes int int g(t1) g(t2) exp(-D alpha_n^2 ``|t1 - t2|``),
    summed over the restricted axes (planes: the normal; cylinder: the two
    perpendicular axes, times free diffusion along the axis; sphere: all three).

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
    n_modes : int
        Eigenmodes kept (the series converges as alpha^-6).

    Returns
    -------
    numpy.ndarray
        (M,) signals.
    """
    _geom(geometry)
    a, Bn = gpd_modes(geometry, n_modes)
    lam = diffusivity * (a / radius) ** 2
    n = np.asarray(axis, dtype=float)
    n = n / np.linalg.norm(n)
    g = scheme.gradients
    g_par = g @ n
    if geometry == "planes":
        comps = [g_par]
    elif geometry == "cylinder":
        perp = g - g_par[..., None] * n
        e1 = np.linalg.svd(np.eye(3) - np.outer(n, n))[0][:, :2]
        comps = [perp @ e1[:, 0], perp @ e1[:, 1]]
    else:
        comps = [g[..., 0], g[..., 1], g[..., 2]]
    out = np.empty(len(scheme))
    for m in range(len(scheme)):
        s = 0.0
        for c in comps:
            if np.any(c[m]):
                s += sum(Bn[i] * radius**2 * _gpd_quadratic(c[m], scheme.dt, lam[i]) for i in range(len(a)))
        out[m] = -0.5 * scheme.gamma**2 * s
    if geometry == "cylinder":
        out -= diffusivity * np.einsum("i,mij,j->m", n, scheme.btensors, n)
    return np.exp(out)


# ------------------------------------------------- narrow pulse (Callaghan)
def callaghan_signal(geometry: str, radius: float, diffusivity: float, Delta: float, q,
                     n_roots: int = 40, n_orders: int = 40) -> np.ndarray:
    """Narrow-pulse signal E(q, Delta), q = gamma G delta in rad/m, gradient perpendicular to the walls.

    Eigenfunction series of Callaghan 1995 / Soderman & Jonsson 1995
    (analytic reference section 1.4); ``radius`` is L/2 for planes. Delta may be inf.

    Parameters
    ----------
    geometry : {"planes", "cylinder", "sphere"}
        Restricting geometry.
    radius : float
        Half-separation L/2 (planes) or radius, m.
    diffusivity : float
        Free diffusivity in m^2/s.
    Delta : float
        Diffusion time (pulse separation) in s; may be inf.
    q : float or array_like
        Wave number(s) gamma G delta in rad/m.
    n_roots : int
        Roots kept per Bessel order (planes: 4 n_roots terms).
    n_orders : int
        Bessel orders kept (cylinder, sphere).

    Returns
    -------
    numpy.ndarray
        (Q,) signals (dimensionless), one per ``q``.
    """
    _geom(geometry)
    q = np.atleast_1d(np.asarray(q, dtype=float))
    tau = diffusivity * Delta / radius**2
    decay = (lambda b2: np.zeros_like(b2)) if np.isinf(Delta) else (lambda b2: np.exp(-b2 * tau))
    out = np.empty_like(q)
    for i, qq in enumerate(q):
        if geometry == "planes":
            L = 2 * radius
            kL = qq * L
            if kL == 0:
                out[i] = 1.0
                continue
            nn = np.arange(1, 4 * n_roots + 1)
            # exp(-n^2 pi^2 D Delta / L^2) = exp(-(n pi / 2)^2 tau) with tau = D Delta / R^2
            # (1 - (-1)^n cos kL) / (kL^2 - (n pi)^2)^2 written without its 0/0 at the diffraction zeros
            # kL = n pi: 1 - (-1)^n cos kL = 2 sin^2((kL - n pi) / 2)
            s = np.sum(decay((nn * np.pi / 2) ** 2) * 0.5 * np.sinc((kL - nn * np.pi) / (2 * np.pi)) ** 2
                       / (kL + nn * np.pi) ** 2)
            out[i] = 2 * (1 - np.cos(kL)) / kL**2 + 4 * kL**2 * s
            continue
        x = qq * radius
        if x == 0:
            out[i] = 1.0
            continue
        if geometry == "cylinder":
            val = (2 * special.j1(x) / x) ** 2
            for m in range(n_orders):
                b = special.jnp_zeros(m, n_roots)
                jp = special.jvp(m, x)
                w = 4.0 if m == 0 else 8.0 * b**2 / (b**2 - m**2)
                val += np.sum(w * decay(b**2) * (x * jp) ** 2 / (x**2 - b**2) ** 2)
        else:
            val = (3 * special.spherical_jn(1, x) / x) ** 2
            for l in range(n_orders):
                b = spherical_jn_prime_zeros(l, n_roots)
                jp = special.spherical_jn(l, x, derivative=True)
                w = 6 * (2 * l + 1) * b**2 / (b**2 - l * (l + 1))
                val += np.sum(w * decay(b**2) * (x * jp) ** 2 / (x**2 - b**2) ** 2)
        out[i] = val
    return out
