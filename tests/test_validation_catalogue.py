"""The extended model catalogue: building blocks against exact references, closed-form limits, recovery."""

import numpy as np
import pytest

import sequences as sq
import validation as va
from validation import compartments as C
from validation.models_white_matter import burcaw_dperp, watson_moments, wmti_from_dki

RNG = np.random.default_rng(0)
U = RNG.normal(size=(30, 3))
U /= np.linalg.norm(U, axis=1, keepdims=True)


def _shells(delta, Delta, bs, n=30):
    return sq.pgse(delta, Delta, bvalues=np.repeat([0] + bs, [1] + [n] * len(bs)),
                   directions=np.vstack([U[:1]] + [U[:n]] * len(bs)), dt=50e-6)


@pytest.fixture(scope="module")
def multi_delta():
    return sq.concatenate([_shells(8e-3, D, [1e9, 3e9, 6e9], 20) for D in (15e-3, 30e-3, 60e-3)])


@pytest.fixture(scope="module")
def btensors():
    lte = sq.tensor_encoding(np.repeat([0.5e9, 1e9, 2e9], 30), b_delta=1.0, directions=np.vstack([U] * 3))
    ste = sq.tensor_encoding(np.array([0.5e9, 1e9, 2e9, 3e9]), b_delta=0.0)
    pte = sq.tensor_encoding(np.repeat([1e9, 2e9], 30), b_delta=-0.5, directions=np.vstack([U] * 2))
    return lte + ste + pte


def test_every_model_is_complete_and_listed():
    names = va.list_models()
    assert len(names) >= 35
    for n in names:
        m = va.get_model(n)
        assert m.assumptions and m.reference, n
        for p in m.parameters:
            assert p.unit and p.bounds[0] < p.bounds[1] and p.scale > 0, (n, p.name)


@pytest.mark.parametrize("geometry", ["sphere", "cylinder"])
def test_any_waveform_gpd_matches_exact_double_integral(geometry):
    og = sq.ogse(frequency=50, n_periods=2, gradient_strength=[0.05, 0.1], directions=[[1, 0, 0], [0.6, 0.8, 0]])
    pg = sq.pgse(10e-3, 30e-3, gradient_strength=[0.04, 0.16], directions=[[1, 0, 0], [0.6, 0, 0.8]])
    th, ph = 0.5, 0.3
    n = [np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)]
    for sch in (og, pg):
        for R in (1e-6, 15e-6):
            if geometry == "sphere":
                got = va.get_model("sphere_gpd").signal(sch, [[R, 2e-9]])[0]
                ref = va.gpd_signal(sch, "sphere", R, 2e-9, n_modes=60)
            else:
                got = va.get_model("cylinder_gpd").signal(sch, [[R, 2e-9, th, ph]])[0]
                ref = va.gpd_signal(sch, "cylinder", R, 2e-9, axis=n, n_modes=60)
            np.testing.assert_allclose(np.log(got), np.log(ref), rtol=1e-5)


def test_narrow_pulse_blocks_match_callaghan_and_soderman_limit():
    q = np.array([1e5, 3e5, 6e5, 1e6])
    for geo in ("cylinder", "sphere"):
        ref = va.callaghan_signal(geo, 5e-6, 2e-9, 20e-3, q)
        np.testing.assert_allclose(C.narrow_pulse(geo, q * 5e-6, np.full(4, 2e-9 * 20e-3 / 25e-12)), ref, rtol=1e-10)
        # Soderman / Stejskal-Tanner is the long-time limit of the same series
        np.testing.assert_allclose(C.soderman(geo, q * 5e-6), va.callaghan_signal(geo, 5e-6, 2e-9, np.inf, q),
                                   rtol=1e-9, atol=1e-12)
    # table R2 (R = 5 um, D = 2e-9, Delta = 20 ms and infinity)
    tau = 2e-9 * 20e-3 / 25e-12
    assert C.narrow_pulse("cylinder", np.array([3.8317]), tau)[0] == pytest.approx(0.000935, abs=1e-6)
    assert C.narrow_pulse("sphere", np.array([4.4934]), tau)[0] == pytest.approx(0.000124, abs=1e-6)
    np.testing.assert_allclose(C.soderman("cylinder", np.array([1.0, 2.0])), [0.774578, 0.332612], atol=1e-6)
    np.testing.assert_allclose(C.soderman("sphere", np.array([1.0, 2.0])), [0.816323, 0.426535], atol=1e-6)


def test_karger_limits():
    b, t = np.array([0.0, 1e9, 3e9]), 0.03
    np.testing.assert_allclose(C.karger(b, 2e-9, 0.5e-9, 0.3, 1e-9, t),
                               0.3 * np.exp(-2e-9 * b) + 0.7 * np.exp(-0.5e-9 * b), rtol=1e-9)
    np.testing.assert_allclose(C.karger(b, 2e-9, 0.5e-9, 0.3, 1e9, t), np.exp(-b * (0.3 * 2e-9 + 0.7 * 0.5e-9)),
                               rtol=1e-6)
    # barrier-limited regime: low-b apparent kurtosis decays as K(t) = K0 * 2 (tau/t)(1 - tau/t (1 - e^(-t/tau)))
    f, D1, D2, k12 = 0.4, 2e-9, 0.5e-9, 1 / 0.05
    tau = 1 / (k12 + f * k12 / (1 - f))
    for tt in (0.01, 0.05, 0.2):
        bb = np.linspace(1e6, 5e6, 5)
        ln = np.log(C.karger(bb, D1, D2, f, k12, tt))
        _, c2, c1, _ = np.polyfit(bb, ln, 3)
        K = 6 * c2 / c1**2
        Dm = f * D1 + (1 - f) * D2
        K0 = 3 * (f * D1**2 + (1 - f) * D2**2 - Dm**2) / Dm**2
        assert K == pytest.approx(K0 * 2 * tau / tt * (1 - tau / tt * (1 - np.exp(-tt / tau))), rel=2e-3)


def test_nexi_and_smex_limits(multi_delta):
    P = np.array([[0.5, 2.2e-9, 1.0e-9, 1e9]])  # no exchange: sticks + ball spherical means
    arr = va.get_model("nexi").check_scheme(multi_delta)
    ref = 0.5 * va.models.spherical_mean(arr, np.array([2.2e-9]), np.zeros(1)) + 0.5 * np.exp(-1e-9 * arr.b)
    np.testing.assert_allclose(va.get_model("nexi").signal(multi_delta, P), ref, rtol=1e-6)
    np.testing.assert_allclose(va.get_model("smex").signal(multi_delta, P), ref, rtol=1e-6)
    # finite pulses with exchange: smex tends to nexi when delta << Delta and tau
    s = sq.pgse(0.5e-3, 40e-3, bvalues=[1e9, 3e9, 6e9], directions=[1, 0, 0], dt=10e-6)
    P = np.array([[0.5, 2.2e-9, 1.0e-9, 0.02]])
    np.testing.assert_allclose(va.get_model("smex").signal(s, P), va.get_model("nexi").signal(s, P), rtol=3e-3)


def test_standard_model_matches_brute_force_odf_average(btensors):
    f, da, dep, dee, fw, dw, p2, p4 = 0.5, 2.2e-9, 1.8e-9, 0.6e-9, 0.1, 3e-9, 0.6, 0.3
    th, ph = 0.7, 0.3
    mu = np.array([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)])
    got = va.get_model("standard_model").signal(btensors, [[f, da, dep, dee, fw, dw, p2, p4, th, ph]])[0]
    # band-limited ODF 1 + 5 p2 P2 + 9 p4 P4 on a fine sphere grid (Gauss-Legendre x uniform azimuth)
    x, w = np.polynomial.legendre.leggauss(200)
    phi = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    X, PH = np.meshgrid(x, phi, indexing="ij")
    n = np.stack([np.sqrt(1 - X**2) * np.cos(PH), np.sqrt(1 - X**2) * np.sin(PH), X], -1).reshape(-1, 3)
    wt = (np.repeat(w, phi.size) * 2 * np.pi / phi.size) / (4 * np.pi)
    c = n @ mu
    odf = 1 + 5 * p2 * (3 * c**2 - 1) / 2 + 9 * p4 * (35 * c**4 - 30 * c**2 + 3) / 8
    B = btensors.btensors
    nBn = np.einsum("qi,mij,qj->qm", n, B, n)
    b = btensors.bvalues
    kern = f * np.exp(-da * nBn) + (1 - f - fw) * np.exp(-dee * b - (dep - dee) * nBn)
    ref = (wt * odf) @ kern + fw * np.exp(-dw * b)
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-10)


def test_wmti_watson_is_the_cumulant_expansion_of_the_watson_standard_model():
    s = _shells(10e-3, 30e-3, [1e6, 2e6])  # tiny b: ln E -> -b M1 + b^2 (M2 - M1^2) / 2
    f, da, dep, dee, kappa, th, ph = 0.5, 2.2e-9, 1.6e-9, 0.6e-9, 8.0, 0.7, 0.3
    got = np.log(va.get_model("wmti_watson").signal(s, [[f, da, dep, dee, kappa, th, ph]])[0])
    arr = va.get_model("noddi_watson").check_scheme(s)
    mu = va.base.axis(np.array([th]), np.array([ph]))
    ic = va.models.watson_stick(arr, mu, np.array([kappa]), np.array([da]))[0]
    n, w = C.bingham_directions(C.frame(np.array([th]), np.array([ph]), np.zeros(1)), np.array([kappa]), np.zeros(1))
    # the dispersed zeppelin is not Gaussian: average exp over the ODF directly
    nBn = np.einsum("kqi,mij,kqj->kqm", n, arr.B, n)[0]
    ec = w[0] @ np.exp(-dee * arr.b[None] - (dep - dee) * nBn)
    ref = np.log(f * ic + (1 - f) * ec)
    keep = arr.b > 0
    np.testing.assert_allclose(got[keep], ref[keep], rtol=2e-5)
    p2, p4 = watson_moments(np.array([0.0, 1e3]))
    np.testing.assert_allclose([p2[0], p4[0]], 0, atol=1e-12)
    assert p2[1] == pytest.approx(1, abs=2e-3)


def test_wmti_recovers_compartments_from_exact_cumulants():
    f, da, de_par, de_perp = 0.45, 1.5e-9, 2.0e-9, 0.5e-9  # WMTI's branch: D_a < D_e
    # aligned along z: D = f Da zz + (1 - f) De; W_iiii from the compartment variance (D^2 K = 3 Var)
    Dpar = f * da + (1 - f) * de_par
    Dperp = (1 - f) * de_perp
    md = (Dpar + 2 * Dperp) / 3
    var = lambda a, b: f * a**2 + (1 - f) * b**2 - (f * a + (1 - f) * b) ** 2  # noqa: E731
    Wzzzz = 3 * var(da, de_par) / md**2
    Wxxxx = 3 * var(0.0, de_perp) / md**2
    Wxxzz = 3 * (f * 0 * da + (1 - f) * de_perp * de_par - Dperp * Dpar) / md**2 / 3
    Wxxyy = 3 * ((1 - f) * de_perp**2 - Dperp**2) / md**2 / 3
    p = np.zeros(21)
    p[:3] = [Dperp, Dperp, Dpar]
    # W order: xxxx yyyy zzzz xxxy xxxz xyyy yyyz xzzz yzzz xxyy xxzz yyzz xxyz xyyz xyzz
    p[6:9] = [Wxxxx, Wxxxx, Wzzzz]
    p[6 + 9], p[6 + 10], p[6 + 11] = Wxxyy, Wxxzz, Wxxzz
    out = wmti_from_dki(p[None])[0]
    np.testing.assert_allclose(out[:4], [f, da, de_par, de_perp], rtol=1e-3)


def test_temporal_zeppelin_dperp_tends_to_the_asymptotic_form():
    dinf, A, d = 0.5e-9, 1e-12, 1e-3
    for D in (100e-3, 500e-3):
        asym = dinf + A * (np.log(D / d) + 1.5) / (D - d / 3)
        assert burcaw_dperp(dinf, A, d, D) == pytest.approx(asym, rel=1e-3)


@pytest.mark.parametrize("name,truth", [
    ("charmed", [0.6, 3e-6, 2e-9, 1.8e-9, 0.6e-9, 0.7, 0.3]),
    ("activeax", [0.6, 6e-6, 0.1, 2e-9, 3e-9, 0.7, 0.3]),
    ("temporal_zeppelin", [0.5, 2.2e-9, 1.8e-9, 0.6e-9, 1e-12, 0.7, 0.3]),
    ("karger", [0.6, 0.5e-9, 2e-9, 0.05]),
    ("nexi", [0.5, 2.2e-9, 1.0e-9, 0.03]),
    ("sphere_gpd", [5e-6, 2e-9]),
    ("cylinder_soderman", [3e-6, 2e-9, 0.7, 0.3]),
])
def test_noise_free_recovery_multi_delta(multi_delta, name, truth):
    m = va.get_model(name)
    r = va.fit(m, multi_delta, m.signal(multi_delta, [truth]))
    scale = np.array([p.scale for p in m.parameters])
    np.testing.assert_allclose(r.params[0] / scale, np.array(truth) / scale, atol=1e-4)


def test_noise_free_recovery_btensor_models(btensors):
    for name, truth in (("gamma", [1e-9, 0.1e-18, 0.4e-18]),
                        ("standard_model", [0.5, 2.2e-9, 1.8e-9, 0.6e-9, 0.1, 3e-9, 0.7, 0.4, 0.7, 0.3])):
        m = va.get_model(name)
        r = va.fit(m, btensors, m.signal(btensors, [truth]))
        scale = np.array([p.scale for p in m.parameters])
        np.testing.assert_allclose(r.params[0] / scale, np.array(truth) / scale, atol=1e-4)
    D = [1.5e-9, 0.5e-9, 0.7e-9, 0.1e-9, 0.0, 0.05e-9]
    r = va.fit("qti", btensors, va.get_model("dti").signal(btensors, [D]))
    np.testing.assert_allclose(r.params[0, :6], D, atol=1e-15)
    np.testing.assert_allclose(r.params[0, 6:], 0, atol=1e-25)


def test_impulsed_recovers_cells_and_needs_ogse():
    og = sq.concatenate([sq.ogse(frequency=f, n_periods=2, bvalues=[0.2e9, 0.5e9, 1e9, 1.5e9], directions=[1, 0, 0],
                                 dt=20e-6) for f in (25, 50)])
    pg = sq.pgse(10e-3, 50e-3, bvalues=[0.2e9, 0.5e9, 1e9, 1.5e9], directions=[1, 0, 0], dt=20e-6)
    m = va.get_model("impulsed")
    truth = [0.6, 12e-6, 1.5e-9, 1.5e-9, 5e-12]
    s = sq.concatenate([og, pg])
    r = va.fit(m, s, m.signal(s, [truth]))
    np.testing.assert_allclose(r.params[0] / [1, 1e-5, 1e-9, 1e-9, 1e-11], np.array(truth) / [1, 1e-5, 1e-9, 1e-9, 1e-11],
                               atol=1e-4)
    with pytest.raises(ValueError, match="OGSE"):
        m.check_scheme(pg)
    with pytest.raises(ValueError, match="two shapes"):
        va.get_model("gamma").check_scheme(pg)


def test_linked_parameters():
    s = _shells(10e-3, 30e-3, [1e9, 2e9, 3e9])
    m = va.get_model("stick_zeppelin")
    y = m.signal(s, [[0.6, 2e-9, 0.4 * 2e-9, 0.7, 0.3]])
    r = va.fit(m, s, y, linked={"D_perp": ("tortuosity", "f", "D_par")})
    np.testing.assert_allclose(r.params[0, :3], [0.6, 2e-9, 0.8e-9], rtol=1e-6)
    r = va.fit("standard_model", s, va.get_model("standard_model").signal(
        s, [[0.5, 2e-9, 2e-9, 0.6e-9, 0.0, 3e-9, 0.8, 0.5, 0.7, 0.3]]),
        fixed={"f_w": 0.0, "D_w": 3e-9, "p4": 0.5}, linked={"D_e_par": "D_a"})
    assert r["D_e_par"][0] == r["D_a"][0]
    with pytest.raises(ValueError, match="not understood"):
        va.fit(m, s, y, linked={"D_perp": ("tortuosty", "f", "D_par")})
    with pytest.raises(ValueError, match="both fixed and linked"):
        va.fit(m, s, y, fixed={"D_perp": 1e-9}, linked={"D_perp": "D_par"})


def test_bias_truths_for_new_parameters():
    from validation.bias import truth_of
    gt = {"volume_fractions": {"intra": 0.6, "extra": 0.4}, "effective_radius": 2e-6, "axis": [0, 0, 1],
          "radii": list(np.random.default_rng(1).gamma(4.0, 0.5e-6, 4000))}
    assert truth_of(va.get_model("activeax"), "a", gt) == 4e-6
    # geometry-specific truths: a sphere model's radius says nothing about cylinders, and vice versa
    assert truth_of(va.get_model("pomace"), "f_ecs", gt) is None
    assert truth_of(va.get_model("sphere_ball"), "R", gt) is None
    sph = {"substrate": "spheres", "volume_fractions": {"intra": 0.3, "extra": 0.7}, "effective_radius": 5e-6}
    assert truth_of(va.get_model("pomace"), "f_ecs", sph) == 0.7
    assert truth_of(va.get_model("impulsed"), "d", sph) == 1e-5
    assert truth_of(va.get_model("cylinder_zeppelin"), "R", sph) is None
    assert truth_of(va.get_model("standard_model"), "p2", gt) == 1.0
    assert truth_of(va.get_model("axcaliber"), "alpha", gt) == pytest.approx(4.0, rel=0.08)
    assert truth_of(va.get_model("axcaliber"), "beta", gt) == pytest.approx(0.5e-6, rel=0.08)


def test_sm_t2_reduces_to_the_standard_model_and_recovers_t2(btensors):
    te_short = [sq.tensor_encoding(np.repeat([1e9, 2e9], 30), b_delta=1.0, directions=np.vstack([U] * 2), duration=0.06),
                sq.tensor_encoding(np.array([1e9, 2e9, 3e9]), b_delta=0.0, duration=0.06)]
    long_te = [sq.pgse(10e-3, 40e-3, bvalues=np.repeat([0.0, 1e9, 2e9], [1, 30, 30]),
                       directions=np.vstack([U[:1], U, U]), echo_time=0.1)]
    s = sq.concatenate(te_short + long_te)
    assert np.unique(np.round(s.echo_time, 6)).size >= 2
    truth = [1.0, 0.5, 2.2e-9, 1.6e-9, 0.6e-9, 0.7, 0.08, 0.05, 0.7, 0.3]
    m = va.get_model("sm_t2")
    y = m.signal(s, [truth])[0]
    # equal T2: the l <= 2 Standard Model times exp(-TE/T2)
    same = list(truth)
    same[6] = same[7] = 0.06
    sm = va.get_model("standard_model").signal(s, [[0.5, 2.2e-9, 1.6e-9, 0.6e-9, 0.0, 3e-9, 0.7, 0.0, 0.7, 0.3]])[0]
    np.testing.assert_allclose(m.signal(s, [same])[0], sm * np.exp(-s.echo_time / 0.06), rtol=1e-10)
    r = va.fit(m, s, y)
    scale = np.array([p.scale for p in m.parameters])
    np.testing.assert_allclose(r.params[0] / scale, np.array(truth) / scale, atol=1e-3)
    with pytest.raises(ValueError, match="echo times"):
        m.check_scheme(btensors)


def test_rotational_invariants_of_the_standard_model_are_p_l_k_l():
    from scipy.special import eval_legendre

    from validation.models_white_matter import rotational_invariants
    x = np.arange(60) + 0.5
    z = 1 - 2 * x / 60
    uu = np.column_stack([np.sqrt(1 - z**2) * np.cos(np.pi * (3 - np.sqrt(5)) * x),
                          np.sqrt(1 - z**2) * np.sin(np.pi * (3 - np.sqrt(5)) * x), z])
    s = sq.tensor_encoding(np.repeat([1e9, 2e9], 60), b_delta=1.0, directions=np.vstack([uu, uu])) + \
        sq.tensor_encoding(np.array([1e9, 2e9]), b_delta=0.0)
    P = [0.5, 2.2e-9, 1.6e-9, 0.6e-9, 0.0, 3e-9, 0.6, 0.3, 0.7, 0.3]
    y = va.get_model("standard_model").signal(s, [P])[0]
    inv = rotational_invariants(s, y, l_max=4)
    xi, w = np.polynomial.legendre.leggauss(64)
    xi, w = 0.5 * (xi + 1), 0.5 * w
    for k, (bb, dd) in enumerate(zip(inv["b"], inv["b_delta"])):
        # kernel K(xi) of this shell under its b-tensor shape: sticks + zeppelin, f = 0.5
        K = lambda x: (0.5 * np.exp(-bb * dd * 2.2e-9 * x**2 - bb * (1 - dd) * 2.2e-9 / 3)  # noqa: E731
                       + 0.5 * np.exp(-bb * (0.6e-9 + (1.6e-9 - 0.6e-9) * (1 - dd) / 3) - bb * dd * 1.0e-9 * x**2))
        for j, (l, pl) in enumerate(zip((0, 2, 4), (1.0, 0.6, 0.3))):
            if abs(dd) < 1e-6 and l > 0:
                assert inv["S"][0, k, j] == 0
                continue
            Kl = np.sum(w * K(xi) * eval_legendre(l, xi))
            assert inv["S"][0, k, j] == pytest.approx(abs(pl * Kl), rel=1e-6, abs=1e-9), (bb, dd, l)


@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_intra_fraction_truth_follows_where_walkers_started():
    import substrates
    from validation.bias import truth_of
    from walker import simulate
    sub = substrates.cylinder_lattice(2e-6, 0.6)
    s = sq.pgse(10e-3, 30e-3, bvalues=[0, 1e9], directions=[1, 0, 0])
    m = va.get_model("stick_zeppelin")
    gt_intra = simulate(sub, s, n_walkers=2000, diffusivity=2e-9, n_steps=200, seed=1).ground_truth
    assert gt_intra["start"] == "intra" and truth_of(m, "f", gt_intra) == 1.0
    gt_uni = simulate(sub, s, n_walkers=2000, diffusivity=2e-9, n_steps=200, seed=1, start="uniform").ground_truth
    assert truth_of(m, "f", gt_uni) == pytest.approx(0.6)
    assert gt_uni["signal_fractions"]["intra"] == pytest.approx(0.6, abs=0.05)


def test_callaghan_planes_is_finite_and_continuous_at_the_diffraction_zeros():
    # the series term (1 - (-1)^n cos kL) / (kL^2 - (n pi)^2)^2 is 0/0 at kL = n pi: it returned NaN there and
    # lost all precision just beside it (0.446 instead of 0.856 at kL = pi (1 + 1e-9))
    L = 10e-6
    for n in (1, 2, 3):
        k = n * np.pi / L * np.array([1 - 1e-4, 1 - 1e-9, 1.0, 1 + 1e-9, 1 + 1e-4])
        for Delta in (1e-3, 20e-3, np.inf):
            s = va.callaghan_signal("planes", L / 2, 2e-9, Delta, k)
            assert np.all(np.isfinite(s))
            assert np.ptp(s[1:4]) < 1e-7 and abs(s[2] - 0.5 * (s[0] + s[4])) < 1e-3
