"""b-values, b-tensors, q(t) and spectra of the constructors against closed forms."""

import numpy as np
import pytest

import sequences as sq
from sequences import timegrid

GAMMA = sq.GAMMA


def test_rectangular_pgse_b_closed_form():
    d, D, G = 10e-3, 30e-3, 0.08
    s = sq.pgse(d, D, gradient_strength=[G], directions=[1, 0, 0])
    b = GAMMA**2 * G**2 * d**2 * (D - d / 3)
    assert s.bvalues[0] == pytest.approx(b, rel=1e-12)


@pytest.mark.parametrize("ramp", [0.5e-3, 1e-3, 3e-3])
def test_trapezoidal_pgse_b_price(ramp):
    d, D, G = 10e-3, 30e-3, 0.05
    s = sq.pgse(d, D, gradient_strength=[G], ramp_time=ramp, dt=1e-6)
    b = GAMMA**2 * G**2 * (d**2 * (D - d / 3) + ramp**3 / 30 - d * ramp**2 / 6)
    # the step-averaged ramp differs from the linear one at O(dt^2 / ramp^2)
    assert s.bvalues[0] == pytest.approx(b, rel=1e-6)


@pytest.mark.parametrize("f,n", [(50.0, 1), (100.0, 2), (500.0, 10)])
def test_cosine_ogse_b_does(f, n):
    G = 0.1
    s = sq.ogse(frequency=f, n_periods=n, gradient_strength=[G], dt=1e-6)
    sigma = n / f
    b = GAMMA**2 * G**2 * sigma / (2 * np.pi * f) ** 2
    assert s.bvalues[0] == pytest.approx(b, rel=2e-5)


def test_sine_ogse_b_is_three_times_cosine():
    # cos: q ~ sin(wt), mean q^2 = 1/2; sin: q ~ 1 - cos(wt), mean q^2 = 3/2
    c = sq.ogse(frequency=100.0, n_periods=2, gradient_strength=[0.1], dt=1e-6)
    s = sq.ogse(frequency=100.0, n_periods=2, gradient_strength=[0.1], shape="sin", dt=1e-6)
    assert s.bvalues[0] / c.bvalues[0] == pytest.approx(3.0, rel=1e-4)


def test_trapezoid_cos_tends_to_square_wave():
    f, G, sigma = 100.0, 0.1, 0.02
    s = sq.ogse(frequency=f, n_periods=2, gradient_strength=[G], shape="trapezoid-cos", ramp_time=0.0)
    # square-wave cos: q is a triangle wave of amplitude gamma G / (4 f); integral of q^2 = amp^2 sigma / 3
    amp = GAMMA * G / (4 * f)
    assert s.bvalues[0] == pytest.approx(2 * amp**2 * sigma / 3, rel=1e-10)
    r = sq.ogse(frequency=f, n_periods=2, gradient_strength=[G], shape="trapezoid-cos", ramp_time=1e-3)
    assert r.bvalues[0] < s.bvalues[0]
    r.check_echo()


def test_given_b_is_reproduced_exactly():
    b = np.array([0, 500e6, 1000e6, 3000e6])
    u = np.eye(3)[[0, 0, 1, 2]]
    for s in (sq.pgse(10e-3, 30e-3, bvalues=b, directions=u, ramp_time=1e-3),
              sq.ogse(frequency=200.0, n_periods=4, bvalues=b, directions=u, gap=2e-3),
              sq.dde(5e-3, 20e-3, 10e-3, bvalues=b, directions1=u, directions2=[0, 1, 0]),
              sq.tensor_encoding(bvalues=b, b_delta=0.3, directions=u)):
        np.testing.assert_allclose(s.bvalues, b, rtol=1e-10, atol=1e-3)


@pytest.mark.parametrize("bd", [1.0, 0.5, 0.0, -0.25, -0.5])
def test_tensor_encoding_b_delta(bd):
    u = np.array([1.0, 2.0, -0.5]) / np.linalg.norm([1.0, 2.0, -0.5])
    s = sq.tensor_encoding(bvalues=[2e9], b_delta=bd, directions=u)
    assert s.b_delta[0] == pytest.approx(bd, abs=1e-9)
    B = s.btensors[0]
    # eigenvalue along the symmetry axis is b/3 (1 + 2 b_delta)
    assert u @ B @ u == pytest.approx(2e9 / 3 * (1 + 2 * bd), rel=1e-9, abs=1e-9 * 2e9)
    s.check_echo()


def test_b_delta_of_lte_pte_ste_and_b_eta():
    lte = sq.pgse(10e-3, 30e-3, bvalues=[1e9], directions=[0, 1, 0])
    assert lte.b_delta[0] == pytest.approx(1.0, abs=1e-12)
    pte = sq.tensor_encoding(bvalues=[1e9], b_delta=-0.5)
    ste = sq.tensor_encoding(bvalues=[1e9], b_delta=0.0)
    assert pte.b_delta[0] == pytest.approx(-0.5, abs=1e-9)
    assert abs(ste.b_delta[0]) < 1e-9
    np.testing.assert_allclose(ste.btensors[0], np.eye(3) * 1e9 / 3, rtol=1e-9, atol=1e-3)
    asym = sq.tensor_encoding(bvalues=[1e9], b_delta=0.5, b_eta=0.4)
    assert asym.b_eta[0] == pytest.approx(0.4, abs=1e-9)


def test_dde_btensor_is_sum_of_blocks():
    s = sq.dde(5e-3, 20e-3, 5e-3, bvalues=[2e9], directions1=[1, 0, 0], directions2=[0, 1, 0])
    np.testing.assert_allclose(s.btensors[0], np.diag([1e9, 1e9, 0]), atol=1e-3 * 1e9 * 1e-6)
    # block b from the rectangular closed form
    G = s.gradient_strength[0]
    assert 1e9 == pytest.approx(GAMMA**2 * G**2 * 5e-3**2 * (20e-3 - 5e-3 / 3), rel=1e-12)


def test_rotation_invariance_of_b():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(6, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    s = (sq.pgse(10e-3, 30e-3, bvalues=np.linspace(0, 3e9, 6), directions=u)
         + sq.tensor_encoding(bvalues=[1e9, 2e9], b_delta=[0.0, -0.5], directions=u[:2], dt=1e-5))
    A = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    R = A * np.sign(np.linalg.det(A))
    r = s.rotate(R)
    np.testing.assert_allclose(r.bvalues, s.bvalues, rtol=1e-12)
    np.testing.assert_allclose(r.b_delta, s.b_delta, atol=1e-9)
    np.testing.assert_allclose(r.btensors, R @ s.btensors @ R.T, rtol=1e-10, atol=1e-2)


def test_q_returns_to_zero_and_pgse_q_is_gamma_G_delta():
    s = sq.pgse(10e-3, 30e-3, gradient_strength=[0.05], directions=[1, 0, 0])
    q = s.qt[0, :, 0]
    assert abs(q[-1]) < 1e-9 * q.max()
    assert q.max() == pytest.approx(GAMMA * 0.05 * 10e-3, rel=1e-12)


def test_spectrum_parseval_and_ogse_peak():
    s = sq.pgse(10e-3, 30e-3, bvalues=[1e9]) + sq.ogse(frequency=250.0, n_periods=10, bvalues=[1e9])
    f, P = s.spectrum()
    np.testing.assert_allclose(np.trapezoid(P, f), s.bvalues, rtol=2e-3)
    assert f[np.argmax(P[1])] == pytest.approx(250.0, rel=0.03)
    assert f[np.argmax(P[0])] < 30.0


def test_echo_condition_error():
    g = np.zeros((1, 100, 3))
    g[0, 10:20, 0] = 0.05  # one lobe only: no echo
    with pytest.raises(sq.EchoConditionError, match="echo condition"):
        sq.from_waveforms(g, 1e-4)
    s = sq.from_waveforms(g, 1e-4, check_echo=False)
    with pytest.raises(sq.EchoConditionError):
        s.check_echo()


def test_edges_fall_on_the_default_grid():
    s = sq.pgse(7.3e-3, 21.1e-3, bvalues=[1e9], ramp_time=0.7e-3, echo_time=41.9e-3)
    assert s.aligned(s.n_steps)
    for e in s.edges:
        assert abs(e / s.dt - round(e / s.dt)) < 1e-9
    assert s.dt <= 1e-5


def test_discrete_b_of_walker_sampling():
    # trapezoid positions: B - gamma^2 dt^3/12 sum g^2; for PGSE: b_disc/b - 1 = -dt^2/(6 delta (Delta - delta/3))
    d, D = 10e-3, 30e-3
    s = sq.pgse(d, D, bvalues=[1e9]).resample(200)
    dt = s.dt
    assert s.aligned(200)
    bt = np.trace(s.discrete_btensors("trapezoid")[0])
    assert bt / s.bvalues[0] - 1 == pytest.approx(-dt**2 / (6 * d * (D - d / 3)), rel=1e-9)
    be = np.trace(s.discrete_btensors("end")[0])
    assert be / s.bvalues[0] - 1 == pytest.approx(dt**2 / (3 * d * (D - d / 3)), rel=1e-9)


def test_resample_keeps_q_exact_and_b_when_aligned():
    s = sq.pgse(10e-3, 30e-3, bvalues=[1e9, 2e9], directions=[[1, 0, 0], [0, 0, 1]])
    r = s.resample(400)
    assert r.n_steps == 400 and r.duration == pytest.approx(s.duration)
    np.testing.assert_allclose(r.bvalues, s.bvalues, rtol=1e-12)
    m = s.resample(333)  # misaligned: q is still exact on the new grid
    assert not s.aligned(333)
    np.testing.assert_allclose(m.qt[:, -1], 0, atol=1e-6)
    # the aligned fine grid's q is the exact piecewise-linear q(t): interpolate it
    for i in range(2):
        for ax in range(3):
            ref = np.interp(m.times, s.times, s.qt[i, :, ax])
            np.testing.assert_allclose(m.qt[i, :, ax], ref, rtol=1e-10, atol=1e-6 * np.abs(ref).max())
    assert s.aligned_n_steps(333) == 336  # edges at quarters of the duration


@pytest.mark.parametrize("maker,K", [
    (lambda: sq.pgse(10e-3, 30e-3, bvalues=np.linspace(0, 3e9, 40),
                     directions=np.random.default_rng(0).normal(size=(40, 3)) * 0 + [0, 0, 1]), 1),
    (lambda: sq.pgse(10e-3, 30e-3, bvalues=np.repeat([1e9, 2e9], 30),
                     directions=np.tile(np.eye(3), (20, 1))), 1),
    (lambda: sq.dde(5e-3, 20e-3, 10e-3, bvalues=[1e9] * 8,
                    directions1=np.eye(3)[[0, 1, 2, 0, 1, 2, 0, 1]], directions2=np.eye(3)[[1, 2, 0, 2, 0, 1, 0, 1]]), 2),
    (lambda: sq.tensor_encoding(bvalues=[1e9] * 5, b_delta=[1, 0.5, 0, -0.25, -0.5],
                                directions=np.random.default_rng(2).normal(size=(5, 3))), 3),
])
def test_factorisation_is_exact_with_fewest_shapes(maker, K):
    s = maker()
    f = s.factorise()
    assert f.n_shapes == K
    assert f.rel_error < 1e-12
    np.testing.assert_allclose(f.reconstruct(), s.gradients, atol=1e-12 * np.abs(s.gradients).max())


def test_factorisation_with_tolerance_on_random_waveforms():
    rng = np.random.default_rng(3)
    g = rng.normal(size=(6, 50, 3))
    f = sq.factorise(g)
    assert f.rel_error <= 1e-10
    np.testing.assert_allclose(f.reconstruct(), g, atol=1e-9)
    loose = sq.factorise(g, rtol=10.0)
    assert loose.n_shapes == 1


def test_concatenation_pads_and_merges_grids():
    a = sq.pgse(10e-3, 30e-3, bvalues=[1e9], dt=10e-6)
    b = sq.ogse(frequency=100.0, n_periods=2, bvalues=[2e9], dt=5e-6, gap=1e-3)
    c = a + b
    assert c.dt == 5e-6 and len(c) == 2
    np.testing.assert_allclose(c.bvalues, [1e9, 2e9], rtol=1e-12)
    assert list(c.label) == ["pgse", "ogse-cos"]
    assert np.isnan(c.frequency[0]) and c.frequency[1] == 100.0
    sel = c[[1]]
    assert len(sel) == 1 and sel.label[0] == "ogse-cos"
    with pytest.raises(ValueError, match="integer"):
        sq.pgse(10e-3, 30e-3, bvalues=[1e9], dt=3e-6) + sq.pgse(10e-3, 30e-3, bvalues=[1e9], dt=7e-6)


def test_gamma_is_recorded_and_configurable():
    s = sq.pgse(10e-3, 30e-3, gradient_strength=[0.05], gamma=2.67513e8)
    assert s.gamma == 2.67513e8
    ref = sq.pgse(10e-3, 30e-3, gradient_strength=[0.05])
    assert s.bvalues[0] / ref.bvalues[0] == pytest.approx((2.67513e8 / GAMMA) ** 2)


def test_piecewise_linear_antiderivative_is_exact():
    # ramp 0->2 on [0,1], jump to -1, flat to 2, ramp back to 0 at 3
    F = timegrid.piecewise_linear_antiderivative([0, 1, 1, 2, 3], [0, 2, -1, -1, 0])
    x = np.linspace(-1, 4, 501)
    u = x - 2
    exact = np.select([x <= 0, x <= 1, x <= 2, x <= 3],
                      [0.0, x**2, 1 - (x - 1), -u + u**2 / 2], default=-0.5)
    np.testing.assert_allclose(F(x), exact, atol=1e-14)
