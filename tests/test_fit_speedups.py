"""Fits at database speed (issue 32): what the faster forward functions cache or tabulate changes nothing a fit sees.

Per-scheme caches must be invisible: a forward function evaluated with its caches filled gives the signals of
a fresh evaluation bit for bit. Tabulated kernels (Callaghan's narrow-pulse series, the Bingham average) and the
compiled Gaussian-phase mode sum are checked against the exact kernels they replace (their error bound, stated
next to each table), and fits through them against fits through the exact kernels. Speed itself is measured in
``benchmarks/bench_fit.py`` only: no timing here.
"""

from dataclasses import replace

import numpy as np
import pytest

import sequences as sq
import validation as va
from validation import compartments as C
from validation.base import axis
from validation.exact import gpd_modes
from validation.base import D_MAX
from validation.models_grey_matter import SMEX_NODES_ERROR, SMEX_STEP_ERROR, smex_pool, stick_nodes


def _protocol(n_dirs=30, dt=None):
    """One b = 0 and three shells (1, 2, 3 ms/um^2) of n_dirs directions; delta 10 ms, Delta 30 ms."""
    u = sq.fibonacci_directions(n_dirs)
    b = np.concatenate([[0.0], np.repeat([1e9, 2e9, 3e9], n_dirs)])
    kw = {} if dt is None else {"dt": dt}
    return sq.pgse(10e-3, 30e-3, bvalues=b, directions=np.vstack([[0.0, 0, 1], np.tile(u, (3, 1))]), **kw)


@pytest.fixture(scope="module")
def scheme():
    return _protocol()


def _draw(model, n, rng):
    """(n, P) parameters in the middle 80 % of each bound (diffusivities 0.3-3 um^2/ms), random directions."""
    P = np.empty((n, len(model.parameters)))
    for j, p in enumerate(model.parameters):
        lo, hi = p.bounds
        if p.unit == "m^2/s":
            lo, hi = max(lo, 0.3e-9), min(hi, 3e-9)
        P[:, j] = rng.uniform(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo), n)
    if model.orientation:
        v = rng.normal(size=(n, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        v *= np.where(v[:, 2:3] < 0, -1, 1)
        P[:, model.orientation[0]] = np.arccos(v[:, 2])
        P[:, model.orientation[1]] = np.arctan2(v[:, 1], v[:, 0])
    return P


# ------------------------------------------------------------------ caches: bit for bit
@pytest.mark.parametrize("name", ["sphere_gpd", "pomace", "smex", "sandix", "cylinder_gpd", "nexi"])
def test_cached_forward_is_bit_identical_to_a_fresh_one(scheme, name):
    """Per-scheme tables (waveform spectrum, distinct shells) filled by earlier calls change no bit."""
    m = va.get_model(name)
    P = _draw(m, 7, np.random.default_rng(3))
    arr = m.check_scheme(scheme)
    first = m.forward(arr, P)
    again = m.forward(arr, P)  # every table now comes from the scheme's memo
    fresh = m.forward(m.check_scheme(scheme), P)
    assert arr.memo, "the forward function cached nothing on the scheme"
    assert np.array_equal(first, again) and np.array_equal(first, fresh)


def test_waveform_spectrum_is_computed_once_per_scheme(scheme):
    arr = va.get_model("sphere_gpd").check_scheme(scheme)
    assert arr.waveform_spectrum() is arr.waveform_spectrum()


@pytest.mark.parametrize("name", ["sphere_ball", "karger", "ivim", "smex"])
def test_grid_predicted_once_per_call_is_bit_identical_to_per_signal_grids(scheme, name):
    """Without a fibre direction every signal has the same grid starts, predicted once per call: a batch fit
    gives the fits of its signals one at a time (whose single grid is the per-signal evaluation) bit for bit."""
    m = va.get_model(name)
    rng = np.random.default_rng(9)
    P = _draw(m, 5, rng)
    Y = m.signal(scheme, P) + rng.normal(0, 0.02, (5, len(scheme)))
    batch = va.fit(m, scheme, Y)
    for k in range(len(Y)):
        one = va.fit(m, scheme, Y[k:k + 1])
        assert np.array_equal(one.params[0], batch.params[k]) and one.success[0] == batch.success[k]


def _smex_pool_per_measurement(arr, f, di, de, tau, n_sub=12):
    """SMEX's powder average integrated for every measurement (the implementation before the shells were shared)."""
    xi, xw = C.unit_nodes(32)
    f, di, de, tau = (x[:, None, None] for x in (f, di, de, tau))
    k12 = 1 / tau
    k21 = f * k12 / np.maximum(1 - f, 1e-12)
    D1, D2 = di * xi[None, :, None] ** 2, de
    g2 = (arr.gamma * arr.G) ** 2
    dl, DL = arr.delta, arr.Delta
    m1 = np.broadcast_to(f, (f.shape[0], xi.size, arr.b.size)).astype(float)
    m2 = np.broadcast_to(1 - f, m1.shape).astype(float)

    def step(m1, m2, q2, h):
        return C.expm2_apply(-q2 * D1 * h - k12 * h, k21 * h, k12 * h, -q2 * D2 * h - k21 * h, m1, m2)

    edges = np.linspace(0, 1, n_sub + 1)
    for a, b in zip(edges[:-1], edges[1:]):
        q2 = g2 * dl**2 * (b**3 - a**3) / (3 * (b - a))
        m1, m2 = step(m1, m2, q2[None, None, :], (dl * (b - a))[None, None, :])
    m1, m2 = step(m1, m2, (g2 * dl**2)[None, None, :], np.maximum(DL - dl, 0)[None, None, :])
    for a, b in zip(edges[:-1], edges[1:]):
        q2 = g2 * dl**2 * ((1 - a) ** 3 - (1 - b) ** 3) / (3 * (b - a))
        m1, m2 = step(m1, m2, q2[None, None, :], (dl * (b - a))[None, None, :])
    return np.matmul(xw, m1 + m2)


@pytest.mark.parametrize("delta, Delta, b_max", [(10e-3, 30e-3, 10e9), (20e-3, 25e-3, 10e9), (5e-3, 50e-3, 3e9),
                                                   (10e-3, 20e-3, 3e9)])
def test_smex_chain_is_as_accurate_as_before_at_half_the_steps(delta, Delta, b_max):
    """The compiled chain (once per shell, Richardson-extrapolated lobes of 2 and 4 steps, the fewest
    stick-angle nodes the scheme needs) is within SMEX_STEP_ERROR + SMEX_NODES_ERROR of the converged chain
    (smex_pool with 512 steps per lobe), and about as far from it as the 12 plain steps and 32 nodes per
    measurement used before (numpy, above): measured 0.47-1.27 x that error, the most where the pulses are long
    and the plateau short (delta 20 ms, Delta 25 ms), the least for short pulses."""
    u = sq.fibonacci_directions(10)
    s = sq.pgse(delta, Delta, bvalues=np.repeat(np.linspace(0, b_max, 5), 10), directions=np.tile(u, (5, 1)))
    m = va.get_model("smex")
    rng = np.random.default_rng(4)
    P = np.column_stack([rng.uniform(0, 0.99, 300), rng.uniform(0, 3.5e-9, 300), rng.uniform(0, 3.5e-9, 300),
                         np.exp(rng.uniform(np.log(1e-3), np.log(2), 300))])
    arr = m.check_scheme(s)
    converged = smex_pool(arr, *P.T, n_sub=512)
    new = np.max(np.abs(m.forward(arr, P) - converged))
    old = np.max(np.abs(_smex_pool_per_measurement(arr, *P.T) - converged))
    assert new <= SMEX_STEP_ERROR + SMEX_NODES_ERROR
    assert new <= 1.3 * old + SMEX_NODES_ERROR


@pytest.mark.parametrize("b_max", [0.5e9, 1e9, 3e9, 6e9, 10e9, 20e9])
def test_stick_nodes_meet_their_error_bound_for_every_diffusivity(b_max):
    xi, w = stick_nodes(b_max)
    xr, wr = C.unit_nodes(64)
    for x in b_max * np.linspace(0, D_MAX, 36):
        assert abs(w @ np.exp(-x * xi**2) - wr @ np.exp(-x * xr**2)) <= SMEX_NODES_ERROR


def test_smex_with_an_empty_pool_is_the_stick_average():
    """f -> 1 (SANDIX's pool with no extra-cellular space: k21 = f k12 / (1 - f) -> 1e12 / tau) is the exact
    limit of sticks alone, exp(-b D_i xi^2) averaged over xi. The exchange step's slow eigenvalue comes from the
    determinant; (tr + disc) / 2 lost it to cancellation (3.7e-4 off at tau = 5 ms before)."""
    u = sq.fibonacci_directions(10)
    s = sq.pgse(10e-3, 30e-3, bvalues=np.repeat([0, 1e9, 3e9, 6e9, 10e9], 10), directions=np.tile(u, (5, 1)))
    m = va.get_model("smex")
    arr = m.check_scheme(s)
    xi, w = C.unit_nodes(64)
    for f in (1.0, 1 - 1e-9):
        for tau in (1e-3, 5e-3, 0.3, 2.0):
            got = m.forward(arr, np.array([[f, 1.4e-9, 1.7e-9, tau]]))[0]
            stick = np.exp(-np.outer(arr.b, 1.4e-9 * xi**2)) @ w
            # the empty pool holds 1 - f of the signal and spins spend (1 - f) / f of their time in it
            assert np.max(np.abs(got - stick)) <= SMEX_NODES_ERROR + 4 * (1 - f), (f, tau)


# ------------------------------------------------------ compiled Gaussian-phase mode sum
def _gpd_reference(arr, geometry, R, D, n=None):
    """The vectorised numpy mode sum of the Gaussian-phase signal (the implementation before the compiled one)."""
    u, H, dH, lam1, G2 = arr.waveform_spectrum()
    a, Bn = gpd_modes(geometry, 16)
    a_all, b_all = gpd_modes(geometry, 3000)
    tail = float(np.sum(b_all[16:] / a_all[16:] ** 2))
    trG = np.einsum("mii->m", G2)
    lam = D[:, None] * (a[None, :] / R[:, None]) ** 2
    x = np.clip(np.log(np.maximum(lam, 1e-300)), u[0], u[-1])
    i = np.clip(np.searchsorted(u, x) - 1, 0, u.size - 2)
    h = u[i + 1] - u[i]
    t = ((x - u[i]) / h)[..., None, None, None]
    hh = h[..., None, None, None]
    Hi = ((2 * t**3 - 3 * t**2 + 1) * H[i] + (t**3 - 2 * t**2 + t) * hh * dH[i]
          + (-2 * t**3 + 3 * t**2) * H[i + 1] + (t**3 - t**2) * hh * dH[i + 1])
    F = Hi * (lam * lam1 / (lam1**2 + lam**2))[..., None, None, None]
    tr = np.einsum("knmii->knm", F)
    if geometry == "sphere":
        proj, gp = tr, trG[None, :]
    else:
        nFn = np.einsum("ki,knmij,kj->knm", n, F, n)
        nGn = np.einsum("ki,mij,kj->km", n, G2, n)
        proj, gp = (nFn, nGn) if geometry == "planes" else (tr - nFn, trG[None, :] - nGn)
    tail_term = tail * R[:, None] ** 4 * gp / D[:, None]
    return -0.5 * arr.gamma**2 * (np.einsum("n,knm->km", Bn, proj) * R[:, None] ** 2 + 2 * tail_term)


@pytest.mark.parametrize("geometry", ["sphere", "cylinder", "planes"])
def test_compiled_gpd_mode_sum_matches_numpy(geometry):
    s = sq.concatenate([_protocol(10, dt=20e-6), sq.ogse(frequency=50, n_periods=2, bvalues=[0.5e9, 1e9],
                                                          directions=[1, 0, 0], dt=20e-6)])
    arr = va.get_model("pomace").check_scheme(s)
    rng = np.random.default_rng(5)
    R, D = rng.uniform(0.5e-6, 15e-6, 20), rng.uniform(0.2e-9, 3e-9, 20)
    n = rng.normal(size=(20, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    got = C.gpd_restricted_lnE(arr, geometry, R, D, None if geometry == "sphere" else n)
    ref = _gpd_reference(arr, geometry, R, D, n)
    # the same terms summed in another order: rounding only
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- tabulated kernels
@pytest.mark.parametrize("geometry", ["cylinder", "sphere"])
def test_narrow_pulse_table_error_bound(geometry):
    """The tabulated Callaghan series is within NARROW_PULSE_TABLE_ERROR of the series, everywhere it applies."""
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.uniform(0, 25, 4000), [0.0, 1e-9, 3.8317, 4.4934, 25.0]])
    tau = np.concatenate([np.exp(rng.uniform(np.log(1e-8), np.log(30), 3000)), rng.uniform(0, 2, 1000),
                          [0.0, 1e-9, np.inf, 14.99, 15.01]])
    exact = C.narrow_pulse(geometry, x, tau)
    tab = C.narrow_pulse_tabulated(geometry, x, tau)
    assert np.max(np.abs(tab - exact)) <= C.NARROW_PULSE_TABLE_ERROR
    # relative to the signal where the signal is not in a diffraction minimum
    big = exact > 1e-2
    assert np.max(np.abs(tab - exact)[big] / exact[big]) <= 1e-4
    # beyond the table the series itself
    far = np.array([26.0, 30.0])
    assert np.array_equal(C.narrow_pulse_tabulated(geometry, far, np.array([0.1, 0.2])),
                          C.narrow_pulse(geometry, far, np.array([0.1, 0.2])))


def _bingham_direct(arr, frames, k1, k2, d):
    """c(Z - d B) / c(Z) from eigenvalues (numpy) and the normaliser integrated with 512 nodes."""
    mu1, mu2 = frames[:, 0], frames[:, 1]
    Z = k1[:, None, None] * np.einsum("ki,kj->kij", mu1, mu1) + k2[:, None, None] * np.einsum("ki,kj->kij", mu2, mu2)
    l = np.linalg.eigvalsh(Z[:, None] - d[:, None, None, None] * arr.B[None])  # (K, M, 3) ascending
    lnc = l[..., 0] + C.bingham_log_normaliser(l[..., 2] - l[..., 0], l[..., 1] - l[..., 0], 512)[0]
    return np.exp(lnc - C.bingham_log_normaliser(k1, k2, 512)[0][:, None])


def test_bingham_table_error_bound():
    s = sq.concatenate([_protocol(20), sq.tensor_encoding(np.repeat([1e9, 2e9], 5), b_delta=-0.5,
                                                          directions=sq.fibonacci_directions(5).repeat(2, 0)),
                        sq.pgse(10e-3, 30e-3, bvalues=[10e9], directions=[0.6, 0.8, 0])])
    arr = va.get_model("bingham_noddi").check_scheme(s)
    rng = np.random.default_rng(7)
    K = 300
    k1 = np.concatenate([rng.uniform(0, 64, K - 4), [0.0, 64.0, 1e-3, 30.0]])
    k2 = np.minimum(np.concatenate([rng.uniform(0, 32, K - 4), [0.0, 32.0, 0.0, 30.0]]), k1)
    d = rng.uniform(0, 3.5e-9, K)
    fr = C.frame(rng.uniform(0, np.pi, K), rng.uniform(-np.pi, np.pi, K), rng.uniform(0, np.pi, K))
    got, T = C.bingham_stick(arr, fr, k1, k2, d)
    ref = _bingham_direct(arr, fr, k1, k2, d)
    assert np.max(np.abs(got - ref) / ref) <= C.BINGHAM_TABLE_ERROR
    # the orientation tensor against the 96 x 96 direction quadrature
    n, w = C.bingham_directions(fr, k1, k2, n_x=96, n_phi=96)
    np.testing.assert_allclose(T, C.orientation_tensor(n, w), atol=C.BINGHAM_TABLE_ERROR)
    # and the stick average against the quadrature too (an independent route to the same integral)
    np.testing.assert_allclose(got, C.dispersed_stick(arr, n, w, d), atol=1e-5)


# ------------------------------------------------------- fits through the exact kernels
def _exact_callaghan(geometry):
    def forward(arr, P):
        R, D = P[:, 0], P[:, 1]
        if geometry == "sphere":
            x = arr.gamma * arr.G[None, :] * arr.delta[None, :] * R[:, None]
            return C.narrow_pulse("sphere", x, D[:, None] * arr.Delta[None, :] / R[:, None] ** 2)
        n = axis(P[:, 2], P[:, 3])
        cos2 = (n @ arr.u.T) ** 2
        x = arr.gamma * arr.G[None, :] * arr.delta[None, :] * np.sqrt(np.clip(1 - cos2, 0, None)) * R[:, None]
        stick = np.exp(-D[:, None] * np.einsum("ki,mij,kj->km", n, arr.B, n))
        return C.narrow_pulse("cylinder", x, D[:, None] * arr.Delta[None, :] / R[:, None] ** 2) * stick
    return forward


def _bingham_quadrature(arr, P):
    """Bingham-NODDI through the 48 x 48 direction quadrature (the implementation before the table)."""
    vic, viso, k1, k2 = P[:, 0], P[:, 1], P[:, 2], np.minimum(P[:, 3], P[:, 2])
    fr = C.frame(P[:, 4], P[:, 5], P[:, 6])
    dpar, diso = P[:, 7], P[:, 8]
    n, w = C.bingham_directions(fr, k1, k2)
    dperp = dpar * (1 - vic)
    Dec = dperp[:, None, None] * np.eye(3) + (dpar - dperp)[:, None, None] * C.orientation_tensor(n, w)
    ec = np.exp(-np.einsum("kij,mij->km", Dec, arr.B))
    ic = C.dispersed_stick(arr, n, w, dpar)
    return (1 - viso)[:, None] * (vic[:, None] * ic + (1 - vic)[:, None] * ec) + viso[:, None] * np.exp(
        -diso[:, None] * arr.b[None, :])


@pytest.mark.parametrize("name, truth, fixed, tol", [
    ("sphere_callaghan", [6e-6, 1.5e-9], {}, {"R": 1e-3, "D": 1e-3}),
    ("cylinder_callaghan", [4e-6, 1.7e-9, 0.7, 0.4], {}, {"R": 1e-3, "D": 1e-3, "theta": 1e-4, "phi": 1e-4}),
    ("bingham_noddi", [0.6, 0.1, 12.0, 4.0, 0.7, 0.4, 1.0, 1.7e-9, 3e-9], {"d_par": 1.7e-9, "d_iso": 3e-9},
     {"v_ic": 1e-3, "v_iso": 1e-3, "kappa1": 2e-3, "kappa2": 2e-3, "theta": 1e-3, "phi": 1e-3, "psi": 1e-3}),
])
def test_fits_through_tables_agree_with_exact_kernel_fits(scheme, name, truth, fixed, tol):
    """The fitted parameters through a tabulated kernel agree with those through the exact kernel (noisy signals).

    Tolerances are relative (absolute for angles, in rad): the tables' signal error (1e-6) is far below the
    noise (2e-2), so the two fits find the same minimum up to the bias the table adds to it.
    """
    m = va.get_model(name)
    exact = replace(m, forward=_bingham_quadrature if name == "bingham_noddi" else
                    _exact_callaghan(name.split("_")[0]))
    rng = np.random.default_rng(8)
    y = m.signal(scheme, [truth])
    Y = np.vstack([y, y + rng.normal(0, 0.02, y.shape)])
    a = va.fit(m, scheme, Y, fixed=fixed)
    b = va.fit(exact, scheme, Y, fixed=fixed)
    for pname, t in tol.items():
        j = m.names.index(pname)
        scale = 1.0 if m.parameters[j].unit in ("rad",) else np.abs(b.params[:, j])
        assert np.all(np.abs(a.params[:, j] - b.params[:, j]) <= t * np.maximum(scale, 1e-300)), pname
