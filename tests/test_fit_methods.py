"""Fitting methods at database scale: log-linear fits, batched Levenberg-Marquardt, dictionary fits.

Each method is checked against an independent reference: a per-signal least-squares solve written out here
(and dipy when it is installed) for the log-linear fits, scipy's bounded least squares for the batched
Levenberg-Marquardt, and the nonlinear fit on the same signals for the dictionary method.
"""

import numpy as np
import pytest
from scipy.optimize import least_squares

import sequences as sq
import validation as va
from validation.base import tensor_from6, watson_stick
from validation.linear import MIN_SIGNAL
from validation.lm import levenberg_marquardt

DTI_TRUTH = [1.5e-9, 0.5e-9, 0.7e-9, 0.1e-9, 0.0, 0.05e-9]
DKI_TRUTH = DTI_TRUTH + [0.8, 1.2, 1.0, 0.1, 0.0, 0.05, 0.0, 0.1, 0.0, 0.3, 0.4, 0.5, 0.0, 0.05, 0.0]


def _fib(n):
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    r = np.sqrt(1 - z ** 2)
    a = np.pi * (1 + 5 ** 0.5) * i
    return np.column_stack([r * np.cos(a), r * np.sin(a), z])


@pytest.fixture(scope="module")
def shells():
    u = _fib(30)
    return sq.pgse(10e-3, 30e-3, bvalues=np.repeat([0, 1e9, 2e9, 3e9], [3, 30, 30, 30]),
                   directions=np.vstack([u[:3], u, u, u]), dt=20e-6)


@pytest.fixture(scope="module")
def btensors():
    u = _fib(30)
    lte = sq.tensor_encoding(np.repeat([0.5e9, 1e9, 2e9], 30), b_delta=1.0, directions=np.vstack([u] * 3))
    ste = sq.tensor_encoding(np.array([0.0, 0.5e9, 1e9, 2e9, 3e9]), b_delta=0.0)
    pte = sq.tensor_encoding(np.repeat([1e9, 2e9], 30), b_delta=-0.5, directions=np.vstack([u] * 2))
    return lte + ste + pte


def _noisy(y, sigma, n, seed):
    """Rician-magnitude noisy copies of one signal (n, M)."""
    rng = np.random.default_rng(seed)
    return np.hypot(y[None] + rng.normal(0, sigma, (n, len(y))), rng.normal(0, sigma, (n, len(y))))


def _mkt(p):
    """Mean of the kurtosis tensor from DKI parameters (Hansen et al. 2013)."""
    return (p[:, 6] + p[:, 7] + p[:, 8] + 2 * (p[:, 15] + p[:, 16] + p[:, 17])) / 5


# ------------------------------------------------------------------ log-linear fits
def _reference_dti(scheme, Y, method):
    """Per-signal log-linear DTI written out from the textbook: ln S = ln S0 - b g^T D g, weights exp(X b_OLS)."""
    b, g = scheme.bvalues, scheme.directions
    X = np.column_stack([-b * g[:, 0] ** 2, -b * g[:, 1] ** 2, -b * g[:, 2] ** 2, -2 * b * g[:, 0] * g[:, 1],
                         -2 * b * g[:, 0] * g[:, 2], -2 * b * g[:, 1] * g[:, 2], np.ones(len(b))])
    out = []
    for y in Y:
        L = np.log(np.maximum(y, MIN_SIGNAL))
        beta = np.linalg.lstsq(X, L, rcond=None)[0]
        if method == "wls":
            w = np.exp(X @ beta)
            beta = np.linalg.lstsq(w[:, None] * X, w * L, rcond=None)[0]
        out.append(beta[:6])
    return np.array(out)


@pytest.mark.parametrize("method", ["ols", "wls"])
def test_linear_dti_matches_a_per_signal_least_squares_reference(shells, method):
    y = va.get_model("dti").signal(shells, [DTI_TRUTH])[0]
    Y = _noisy(y, 0.03, 200, 1)
    got = va.fit("dti", shells, Y, method=method)
    assert got.method == method and got.success.all()
    np.testing.assert_allclose(got.params, _reference_dti(shells, Y, method), rtol=0, atol=1e-9 * 1e-9)


def test_linear_fits_match_dipy_when_installed(shells):
    pytest.importorskip("dipy")
    from dipy.reconst.dki import DiffusionKurtosisModel
    from dipy.reconst.dti import TensorModel
    gtab = shells.to_dipy()  # b in s/mm^2: dipy's diffusivities are in mm^2/s
    Yt = _noisy(va.get_model("dti").signal(shells, [DTI_TRUTH])[0], 0.02, 100, 2)
    Yk = _noisy(va.get_model("dki").signal(shells, [DKI_TRUTH])[0], 0.02, 100, 2)
    for fit_method in ("WLS", "OLS"):
        ours = va.fit("dti", shells, Yt, method=fit_method.lower())
        theirs = TensorModel(gtab, fit_method=fit_method).fit(Yt)
        np.testing.assert_allclose(tensor_from6(ours.params), theirs.quadratic_form * 1e-6, rtol=1e-8, atol=1e-20)
        ours = va.fit("dki", shells, Yk, method=fit_method.lower())
        theirs = DiffusionKurtosisModel(gtab, fit_method=fit_method).fit(Yk)
        ev = np.linalg.eigvalsh(tensor_from6(ours.params[:, :6]))[:, ::-1]
        np.testing.assert_allclose(ev, theirs.evals * 1e-6, rtol=1e-8)
        # dipy orders W as W_xxxx, W_yyyy, W_zzzz, W_xxxy, W_xxxz, W_xyyy, W_yyyz, W_xzzz, W_yzzz, W_xxyy, ...
        np.testing.assert_allclose(ours.params[:, 6:], theirs.model_params[:, 12:], rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("method", ["ols", "wls", "iwls"])
def test_linear_fits_are_exact_on_noise_free_signals(shells, btensors, method):
    for name, sch, truth in (("dti", shells, DTI_TRUTH), ("dki", shells, DKI_TRUTH)):
        m = va.get_model(name)
        r = va.fit(m, sch, m.signal(sch, [truth]), method=method)
        scale = np.array([p.scale for p in m.parameters])
        np.testing.assert_allclose(r.params[0] / scale, np.array(truth) / scale, rtol=0, atol=1e-8)
    # QTI: a mixture of two tensors has a known mean tensor and covariance
    q = va.get_model("qti")
    D1, D2 = np.diag([2.0, 0.3, 0.3]) * 1e-9, np.diag([0.8, 0.8, 0.8]) * 1e-9
    S = 0.5 * np.exp(-np.einsum("mij,ij->m", btensors.btensors, D1)) \
        + 0.5 * np.exp(-np.einsum("mij,ij->m", btensors.btensors, D2))
    r = va.fit(q, btensors, S, method=method)
    mean = tensor_from6(r.params[:, :6])[0]
    np.testing.assert_allclose(mean, (D1 + D2) / 2, atol=0.03e-9)  # cumulant truncation: 4th order omitted
    assert r.method == method


def test_free_water_dti_by_log_linear_fits(shells):
    m = va.get_model("fw_dti")
    truth = DTI_TRUTH + [0.3, 3e-9]
    scale = np.array([p.scale for p in m.parameters])
    for method in ("ols", "wls", "iwls"):
        r = va.fit(m, shells, m.signal(shells, [truth]), method=method, fixed={"D_w": 3e-9})
        np.testing.assert_allclose(r.params[0] / scale, np.array(truth) / scale, rtol=0, atol=1e-8)
    # noisy: the same mean as the signal-domain fit (the log-linear one is the less efficient, not biased)
    Y = m.signal(shells, [truth])[0] + np.random.default_rng(12).normal(0, 0.02, (400, len(shells)))
    wls = va.fit(m, shells, Y, method="wls", fixed={"D_w": 3e-9})["f_w"]
    lm = va.fit(m, shells, Y, method="lm", fixed={"D_w": 3e-9})["f_w"]
    se = np.hypot(wls.std(), lm.std()) / np.sqrt(len(Y))
    assert abs(wls.mean() - lm.mean()) <= 4.5 * se and abs(wls.mean() - 0.3) <= 4.5 * wls.std() / np.sqrt(len(Y))
    assert va.available_methods(m)[0] == "lm"
    with pytest.raises(ValueError, match="needs D_w fixed"):
        va.fit(m, shells, Y[:2], method="wls")


def test_wls_recovers_dti_over_noise_realisations(shells):
    # unbiased to first order; the log transform adds a bias of order sigma^2 / (2 S^2) in ln S, below 0.6 %
    # of MD at this SNR (S >= 0.1 at b = 3 ms/um^2): the allowance
    y = va.get_model("dti").signal(shells, [DTI_TRUTH])[0]
    Y = _noisy(y, 0.02, 2000, 3)
    for method in ("wls", "iwls"):
        md = np.trace(tensor_from6(va.fit("dti", shells, Y, method=method).params), axis1=1, axis2=2) / 3
        truth = np.mean(DTI_TRUTH[:3])
        assert abs(md.mean() - truth) <= 4.5 * md.std() / np.sqrt(len(md)) + 0.006 * truth, method


def test_dki_mkt_constraint(shells):
    dki = va.get_model("dki")
    truth = DTI_TRUTH + [0.0] * 15  # MKT = 0: Gaussian noise puts about half the estimates on each side
    Y = dki.signal(shells, [truth])[0] + np.random.default_rng(4).normal(0, 0.02, (300, len(shells)))
    free = va.fit(dki, shells, Y, method="wls")
    con = va.fit(dki, shells, Y, method="wls", mkt_nonnegative=True)
    neg = _mkt(free.params) < 0
    assert 10 < neg.sum() < len(Y) - 10  # the test exercises both branches
    assert np.all(_mkt(con.params) >= -1e-10)
    np.testing.assert_array_equal(con.params[~neg], free.params[~neg])
    np.testing.assert_allclose(_mkt(con.params[neg]), 0.0, atol=1e-10)  # on the boundary where violated
    with pytest.raises(ValueError, match="DKI"):
        va.fit("dti", shells, Y, method="wls", mkt_nonnegative=True)


def test_dki_mkt_constraint_is_the_constrained_optimum(shells):
    from validation.linear import fit_linear, linear_design
    dki = va.get_model("dki")
    truth = DTI_TRUTH + [0.0] * 15
    Y = dki.signal(shells, [truth])[0] + np.random.default_rng(5).normal(0, 0.02, (60, len(shells)))
    design = linear_design("dki", dki.check_scheme(shells))
    X, c = design.X, np.append(design.mkt_row, 0.0)
    checked = 0
    for k in range(len(Y)):
        L = np.log(np.maximum(Y[k], MIN_SIGNAL))
        b_ols = np.linalg.lstsq(X, L, rcond=None)[0]
        if b_ols @ c >= 0:
            continue
        # OLS with the equality constraint, by a null-space solve written out independently
        Q = np.linalg.svd(c[None])[2][1:].T  # basis of {beta: c . beta = 0}
        ref = Q @ np.linalg.lstsq(X @ Q, L, rcond=None)[0]
        p, _ = fit_linear(design, Y[k:k + 1], "ols", mkt_nonnegative=True)
        np.testing.assert_allclose(p[0], design.to_params(ref[None, :-1])[0], rtol=1e-9, atol=1e-22)
        checked += 1
    assert checked > 10


# ------------------------------------------------------------------ batched Levenberg-Marquardt
@pytest.mark.parametrize("bounds", ["transform", "project"])
def test_levenberg_marquardt_solves_many_problems_at_once(bounds):
    t = np.linspace(0, 4, 25)
    rng = np.random.default_rng(6)
    truth = np.column_stack([rng.uniform(0.5, 2, 40), rng.uniform(0.2, 3, 40)])

    def predict(x):
        return x[:, :1] * np.exp(-x[:, 1:2] * t[None])

    y = predict(truth) + rng.normal(0, 0.01, (40, len(t)))
    # projected steps: the box cuts off the fastest decays. The sine transform stalls on a bound (its dx/dz
    # vanishes there), which is why it is not the default: it is checked on interior minima only
    lo, hi = np.array([0.0, 0.0]), np.array([3.0, 1.5 if bounds == "project" else 5.0])
    r = levenberg_marquardt(predict, y, np.tile([1.0, 1.0], (40, 1)), lo, hi, bounds=bounds)
    for k in range(40):
        ref = least_squares(lambda x: predict(x[None])[0] - y[k], [1.0, 1.0], bounds=(lo, hi), xtol=1e-14,
                            ftol=1e-14, gtol=1e-14)
        assert r.cost[k] <= ref.cost * (1 + 1e-7) + 1e-15, k
        np.testing.assert_allclose(r.x[k], ref.x, atol=1e-5)
    assert bounds == "transform" or np.sum(r.x[:, 1] == 1.5) > 10  # many solutions sit on the bound
    assert r.success.all()


def test_lm_reaches_the_per_signal_least_squares_minimum(shells):
    m = va.get_model("stick_zeppelin")
    y = m.signal(shells, [[0.6, 2e-9, 0.6e-9, 0.7, 0.3]])[0]
    Y = _noisy(y, 0.03, 40, 7)
    lm = va.fit(m, shells, Y, method="lm")
    ref = va.fit(m, shells, Y, method="nlls")
    assert lm.method == "lm" and ref.method == "nlls"
    # same minimum (or a lower one) per signal, to optimiser tolerance
    assert np.all(lm.residual <= ref.residual * (1 + 1e-6) + 1e-12)
    same = lm.residual <= ref.residual * (1 + 1e-6)
    assert same.mean() > 0.9
    np.testing.assert_allclose(lm["f"][same], ref["f"][same], atol=2e-4)


def test_lm_recovers_noise_free_dispersion_and_soma_models(shells):
    m = va.get_model("noddi_watson")
    truth = [0.5, 0.1, 6.0, 0.7, 0.3, 1.7e-9, 3e-9]
    r = va.fit(m, shells, m.signal(shells, [truth]), method="lm")
    scale = np.array([p.scale for p in m.parameters])
    np.testing.assert_allclose(r.params[0] / scale, np.array(truth) / scale, atol=5e-3)


# ------------------------------------------------------------------ dictionary (linearised) fits
def _agree(dic, ref, truth, name, odi=False):
    """Dictionary and nonlinear fits of the same signals: the median |difference| within the dictionary's measured
    bias floor plus 4.5 noise spreads of the nonlinear estimate (its median |error| / 0.6745)."""
    conv = (lambda k: 2 / np.pi * np.arctan(1 / k)) if odi else (lambda v: v)
    d = np.abs(conv(dic[name]) - conv(ref[name]))
    spread = np.median(np.abs(conv(ref[name]) - conv(truth))) / 0.6745
    floor = dic.resolution["odi" if odi else name]
    assert np.median(d) <= floor + 4.5 * spread, (name, np.median(d), floor, spread)


def test_noddi_dictionary_agrees_with_the_nonlinear_fit(shells):
    m = va.get_model("noddi_watson")
    rng = np.random.default_rng(8)
    truth = np.column_stack([rng.uniform(0.3, 0.7, 30), rng.uniform(0.0, 0.3, 30), rng.uniform(1, 16, 30),
                             rng.uniform(0, np.pi, 30), rng.uniform(-np.pi, np.pi, 30), np.full(30, 1.7e-9),
                             np.full(30, 3e-9)])
    Y = m.signal(shells, truth) + rng.normal(0, 0.01, (30, len(shells)))
    fixed = {"d_par": 1.7e-9, "d_iso": 3e-9}
    dic = va.fit(m, shells, Y, method="dictionary", fixed=fixed)
    ref = va.fit(m, shells, Y, method="lm", fixed=fixed)
    assert dic.method == "dictionary" and set(dic.resolution) == {"v_ic", "v_iso", "odi"}
    # the floor is a measured error, at least half the grid spacing
    assert dic.resolution["v_ic"] >= va.dictionary_resolution("noddi_watson")["v_ic"]
    _agree(dic, ref, truth[:, 0], "v_ic")
    _agree(dic, ref, truth[:, 1], "v_iso")
    _agree(dic, ref, truth[:, 2], "kappa", odi=True)
    with pytest.raises(ValueError, match="d_par.*1.7e-9"):
        va.fit(m, shells, Y, method="dictionary")


def test_activeax_and_sandi_dictionaries_agree_with_the_nonlinear_fit():
    u = _fib(30)
    u = u[u[:, 2] >= 0][:15]
    b = np.repeat([1e9, 2.5e9, 5e9], len(u))
    two = (sq.pgse(10e-3, 30e-3, bvalues=np.concatenate([[0], b]), directions=np.vstack([u[:1], np.tile(u, (3, 1))]),
                   dt=10e-6)
           + sq.pgse(4e-3, 15e-3, bvalues=b, directions=np.tile(u, (3, 1)), dt=10e-6))
    rng = np.random.default_rng(9)
    sandi = va.get_model("sandi")
    truth = np.column_stack([rng.uniform(0.3, 0.5, 20), rng.uniform(0.2, 0.3, 20), np.full(20, 2e-9),
                             rng.uniform(5e-6, 10e-6, 20), np.full(20, 3e-9), np.full(20, 1.5e-9)])
    Y = sandi.signal(two, truth) + rng.normal(0, 0.005, (20, len(two)))
    fixed = {"D_is": 3e-9}
    dic = va.fit(sandi, two, Y, method="dictionary", fixed=fixed)
    ref = va.fit(sandi, two, Y, method="lm", fixed=fixed)
    for j, name in enumerate(sandi.names):
        if name not in fixed:
            _agree(dic, ref, truth[:, j], name)
    ax = va.get_model("activeax")
    truth = np.column_stack([rng.uniform(0.4, 0.7, 20), rng.uniform(2e-6, 8e-6, 20), rng.uniform(0, 0.2, 20),
                             np.full(20, 1.7e-9), np.full(20, 3e-9), rng.uniform(0, np.pi, 20),
                             rng.uniform(-np.pi, np.pi, 20)])
    Y = ax.signal(two, truth) + rng.normal(0, 0.005, (20, len(two)))
    fixed = {"D_par": 1.7e-9, "D_iso": 3e-9}
    dic = va.fit(ax, two, Y, method="dictionary", fixed=fixed)
    ref = va.fit(ax, two, Y, method="lm", fixed=fixed)
    for j, name in enumerate(("v_ic", "a", "f_iso")):
        _agree(dic, ref, truth[:, ax.names.index(name)], name)
    assert set(dic.resolution) == {"v_ic", "a", "f_iso"} and dic.method == "dictionary"


def test_nnls_matches_scipy():
    from scipy.optimize import nnls

    from validation.dictionary import nnls_batch
    rng = np.random.default_rng(10)
    A = np.abs(rng.normal(size=(40, 60)))
    Y = np.abs(rng.normal(size=(5, 60)))
    x, _ = nnls_batch(A.T, Y, 0.0)  # A^T: measurements x atoms
    for k in range(5):
        ref = nnls(A.T, Y[k])[0]
        np.testing.assert_allclose(x[k], ref, atol=1e-10)
    lam = 0.1  # ridge: the same as NNLS on the augmented system [A^T; sqrt(lam) I]
    x, _ = nnls_batch(A.T, Y, lam)
    aug = np.vstack([A.T, np.sqrt(lam) * np.eye(40)])
    np.testing.assert_allclose(x[0], nnls(aug, np.concatenate([Y[0], np.zeros(40)]))[0], atol=1e-10)


# ------------------------------------------------------------------ Watson series
def _watson_reference(B, mu, kappa, d, n_t=400, n_phi=400):
    """E_m = <exp(-d n^T B_m n)> over a Watson distribution, by a fine product quadrature in (mu . n, azimuth)."""
    x, w = np.polynomial.legendre.leggauss(n_t)
    ph = np.linspace(0, 2 * np.pi, n_phi, endpoint=False)
    e1 = np.cross(mu, [0.3, 0.5, 0.7])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(mu, e1)
    s = np.sqrt(1 - x ** 2)[:, None, None]
    n = x[:, None, None] * mu + s * (np.cos(ph)[None, :, None] * e1 + np.sin(ph)[None, :, None] * e2)
    wt = (w * np.exp(kappa * (x ** 2 - 1)))[:, None] * np.ones(n_phi)[None]
    E = np.exp(-d * np.einsum("abi,mij,abj->mab", n, B, n))
    return np.einsum("mab,ab->m", E, wt) / wt.sum()


def test_watson_series_against_fine_quadrature_and_the_general_fallback():
    import dataclasses
    mu = np.array([[0.0, 0.6, 0.8], [1.0, 0.0, 0.0]])
    kappa = np.array([0.5, 32.0])
    d = np.array([1.7e-9, 2.5e-9])
    u = _fib(20)
    sch = (sq.pgse(10e-3, 30e-3, bvalues=np.repeat([1e9, 3e9, 4.5e9], 20), directions=np.vstack([u] * 3))
           + sq.tensor_encoding(np.repeat([2e9], 20), b_delta=-0.5, directions=u))
    arr = va.get_model("noddi_watson").check_scheme(sch)
    got = watson_stick(arr, mu, kappa, d)
    for k in range(2):
        np.testing.assert_allclose(got[k], _watson_reference(arr.B, mu[k], kappa[k], d[k]), rtol=0, atol=1e-12)
    # b-tensors without axial symmetry take the 32 x 24 quadrature: the Watson average to its accuracy
    R = np.linalg.qr(np.random.default_rng(11).normal(size=(3, 3)))[0]
    B = np.stack([R @ np.diag(v) @ R.T for v in ([1.0, 0.5, 0.0], [2.0, 1.0, 0.5], [0.2, 0.1, 1.5])]) * 1e9
    gen = dataclasses.replace(arr, b=np.trace(B, axis1=1, axis2=2), B=B, u=np.tile([0.0, 0.0, 1.0], (3, 1)),
                              bd=np.full(3, 0.3), G=np.zeros(3), delta=np.zeros(3), Delta=np.zeros(3),
                              freq=np.zeros(3), te=np.zeros(3), gradients=None)
    got = watson_stick(gen, mu, kappa, d)
    for k in range(2):
        np.testing.assert_allclose(got[k], _watson_reference(B, mu[k], kappa[k], d[k]), rtol=0, atol=1e-5)


# ------------------------------------------------------------------ choice, errors, report
def test_auto_method_and_errors(shells):
    y = va.get_model("dti").signal(shells, [DTI_TRUTH])
    assert va.fit("dti", shells, y).method == "wls"
    assert va.fit("dti", shells, y, fixed={"Dxy": 0.1e-9}).method == "lm"
    assert va.available_methods("noddi_watson")[-1] == "dictionary"
    assert "wls" not in va.available_methods("stick_zeppelin")
    with pytest.raises(ValueError, match="does not apply to stick_zeppelin"):
        va.fit("stick_zeppelin", shells, y, method="wls")
    with pytest.raises(ValueError, match="method must be one of"):
        va.fit("dti", shells, y, method="fast")
    with pytest.raises(ValueError, match="needs the noise level sigma"):
        va.fit("dti", shells, y, method="ml")
    with pytest.raises(ValueError, match="fits every coefficient"):
        va.fit("dti", shells, y, method="wls", fixed={"Dxy": 0.0})
    bad = np.repeat(y, 3, axis=0)
    bad[1, 4] = np.nan
    for method in ("wls", "lm", "nlls"):
        with pytest.raises(ValueError, match=r"signals: 1 of 3 rows hold NaN or inf \(rows \[1\]"):
            va.fit("dti", shells, bad, method=method)
    few = sq.pgse(10e-3, 30e-3, bvalues=[0, 1e9, 1e9, 1e9], directions=np.eye(3)[[0, 0, 1, 2]])
    with pytest.raises(ValueError, match="determines only"):
        va.fit("dti", few, va.get_model("dti").signal(few, [DTI_TRUTH]), method="wls")


def test_models_declare_their_fits(shells):
    import dataclasses
    for name in va.list_models():
        m = va.get_model(name)
        methods = va.available_methods(m)
        if m.via is not None:
            continue
        assert ("wls" in methods) == (m.design is not None), name
        assert (methods[0] == "wls") == (m.design is not None and m.free_water is None), name
        assert ("dictionary" in methods) == (m.dictionary is not None), name
    # fit() asks the model, not its name: an unregistered copy of DTI under another name fits the same
    dti = va.get_model("dti")
    mine = dataclasses.replace(dti, name="my_dti")
    y = dti.signal(shells, [DTI_TRUTH])
    r = va.fit(mine, shells, y, method="wls")
    assert r.model == "my_dti" and r.method == "wls"
    np.testing.assert_array_equal(r.params, va.fit(dti, shells, y, method="wls").params)
    np.testing.assert_allclose(r.predict(shells), y, rtol=1e-8, atol=0)
    with pytest.raises(ValueError, match="DKI"):
        va.fit(mine, shells, y, method="wls", mkt_nonnegative=True)


def test_predict_gives_the_fitted_signals_on_any_scheme(shells, btensors):
    dti = va.get_model("dti")
    truth = [DTI_TRUTH, [1.0e-9, 1.2e-9, 0.8e-9, 0.0, 0.1e-9, -0.05e-9]]
    y = dti.signal(shells, truth)
    r = va.fit(dti, shells, y, method="wls")
    pred = r.predict(shells)
    assert pred.shape == y.shape
    np.testing.assert_allclose(pred, y, rtol=1e-8, atol=0)  # noise-free DTI: the fit is exact
    # another scheme: the forward model at the estimates, there the truth's signals too
    np.testing.assert_allclose(r.predict(btensors), dti.signal(btensors, truth), rtol=1e-8, atol=0)
    # a nonlinear fit of noisy signals: the prediction's misfit is the result's residual
    sz = va.get_model("stick_zeppelin")
    noise = np.random.default_rng(13).normal(0, 0.02, (3, len(shells)))
    ys = sz.signal(shells, [[0.6, 2e-9, 0.6e-9, 0.7, 0.3]]) + noise
    rs = va.fit(sz, shells, ys)
    np.testing.assert_allclose(np.sqrt(np.mean((rs.predict(shells) - ys) ** 2, axis=1)), rs.residual, rtol=1e-12)
    # a model fitted through another (WMTI from DKI) predicts with its own forward model
    wmti = va.get_model("wmti")
    rw = va.fit(wmti, shells, va.get_model("dki").signal(shells, [DKI_TRUTH]))
    np.testing.assert_array_equal(rw.predict(shells), wmti.signal(shells, rw.params))
    with pytest.raises(ValueError, match="LTE"):  # DKI's forward model needs linear encoding
        va.fit("dki", shells, va.get_model("dki").signal(shells, [DKI_TRUTH])).predict(btensors)


def test_bias_table_and_report_name_the_method(shells, tmp_path):
    m = va.get_model("stick_zeppelin")
    y = m.signal(shells, [[0.6, 2e-9, 0.6e-9, 0.0, 0.0]])
    gt = [{"volume_fractions": {"intra": 0.6, "extra": 0.4}, "diffusivity": 2e-9, "axis": [0, 0, 1]}]
    rows = va.bias_table(shells, y, gt, models=["stick_zeppelin", "dti"], snr=None)
    assert {r["model"]: r["method"] for r in rows} == {"stick_zeppelin": "lm", "dti": "wls"}
    rows = va.bias_table(shells, y, gt, models=["stick_zeppelin", "dti"], snr=None, method="nlls")
    assert {r["method"] for r in rows} == {"nlls"}
