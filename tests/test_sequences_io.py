"""Round trips through every file format, and the unit guards at file boundaries."""

import numpy as np
import pytest

import sequences as sq


@pytest.fixture
def shells():
    rng = np.random.default_rng(5)
    u = rng.normal(size=(7, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    b = np.array([0, 500, 1000, 1000, 2000, 3000, 3000]) * 1e6
    return sq.pgse(10e-3, 30e-3, bvalues=b, directions=u, echo_time=50e-3)


def _same(a, b, rtol=1e-9):
    assert len(a) == len(b)
    np.testing.assert_allclose(a.bvalues, b.bvalues, rtol=rtol, atol=1e-3)
    np.testing.assert_allclose(a.btensors, b.btensors, rtol=rtol, atol=1e-3 * 1e9 * 1e-6)


def test_fsl_round_trip(tmp_path, shells):
    sq.write_fsl(shells, tmp_path / "b.bval", tmp_path / "b.bvec")
    text = (tmp_path / "b.bval").read_text().split()
    assert float(text[2]) == pytest.approx(1000.0)  # file unit is s/mm^2
    back = sq.read_fsl(tmp_path / "b.bval", tmp_path / "b.bvec", delta=10e-3, Delta=30e-3, echo_time=50e-3)
    _same(shells, back)
    np.testing.assert_allclose(back.gradients, shells.gradients, atol=1e-12)


def test_fsl_accepts_n_by_3_bvecs(tmp_path):
    (tmp_path / "x.bval").write_text("0 1000 2000 3000\n")
    (tmp_path / "x.bvec").write_text("0 0 0\n1 0 0\n0 1 0\n0 0 1\n")
    s = sq.read_fsl(tmp_path / "x.bval", tmp_path / "x.bvec", 10e-3, 30e-3)
    np.testing.assert_allclose(s.bvalues, [0, 1e9, 2e9, 3e9], rtol=1e-10)
    np.testing.assert_allclose(s.directions[1:], np.eye(3), atol=1e-12)


def test_fsl_refuses_tensor_encoding(tmp_path):
    with pytest.raises(ValueError, match="linear"):
        sq.write_fsl(sq.tensor_encoding(bvalues=[1e9], b_delta=0.0), tmp_path / "a", tmp_path / "b")


def test_mrtrix_round_trip_and_norm_scaling(tmp_path, shells):
    sq.write_mrtrix(shells, tmp_path / "g.b")
    back = sq.read_mrtrix(tmp_path / "g.b", 10e-3, 30e-3, echo_time=50e-3)
    _same(shells, back)
    # MRtrix convention: a direction of norm 0.5 scales b by 0.25
    (tmp_path / "h.b").write_text("0 0 0 0\n0 0 0.5 2000\n")
    s = sq.read_mrtrix(tmp_path / "h.b", 10e-3, 30e-3)
    assert s.bvalues[1] == pytest.approx(500e6)


def test_camino_round_trip_mixed_timings(tmp_path):
    a = sq.pgse(10e-3, 30e-3, gradient_strength=[0.0, 0.04, 0.08], directions=np.eye(3), echo_time=60e-3)
    b = sq.pgse(5e-3, 40e-3, gradient_strength=[0.06], directions=[0, 1, 0], echo_time=60e-3)
    s = (a + b)[[3, 0, 1, 2]]
    sq.write_camino(s, tmp_path / "s.scheme")
    assert "VERSION: STEJSKALTANNER" in (tmp_path / "s.scheme").read_text()
    back = sq.read_camino(tmp_path / "s.scheme")
    _same(s, back)
    np.testing.assert_allclose(back.Delta, s.Delta)
    np.testing.assert_allclose(back.gradients, s.gradients, atol=1e-12)


def test_camino_plays_like_mcdc(tmp_path):
    # a hand-written file: lobes centred in TE, b = (gamma G delta)^2 (Delta - delta/3)
    (tmp_path / "h.scheme").write_text("VERSION: STEJSKALTANNER\n1 0 0 0.05 0.03 0.01 0.06\n")
    s = sq.read_camino(tmp_path / "h.scheme")
    assert s.bvalues[0] == pytest.approx((sq.GAMMA * 0.05 * 0.01) ** 2 * (0.03 - 0.01 / 3), rel=1e-12)
    assert s.duration == pytest.approx(0.06)
    on = np.nonzero(s.gradients[0, :, 0])[0]
    assert on[0] * s.dt == pytest.approx(0.01)  # (TE - Delta - delta)/2


def test_camino_bvector_is_refused_clearly(tmp_path):
    (tmp_path / "v.scheme").write_text("VERSION: BVECTOR\n1 0 0 1000\n")
    with pytest.raises(ValueError, match="BVECTOR"):
        sq.read_camino(tmp_path / "v.scheme")


def test_mcdc_waveform_round_trip(tmp_path):
    s = (sq.tensor_encoding(bvalues=[1e9, 2e9], b_delta=[0.0, -0.5], duration=40e-3, dt=20e-6)
         + sq.ogse(frequency=100.0, n_periods=2, bvalues=[1e9], dt=20e-6))
    sq.write_mcdc(s, tmp_path / "w.scheme")
    back = sq.read_mcdc(tmp_path / "w.scheme")
    assert back.dt == pytest.approx(s.dt, rel=1e-15)
    np.testing.assert_array_equal(back.gradients, s.gradients)


def test_mcdc_wrong_count_is_an_error(tmp_path):
    (tmp_path / "bad.scheme").write_text("VERSION: GRADIENT_WAVEFORM\n0.01 2 1\n0 0 0\n")
    with pytest.raises(ValueError, match="expected 1 x 2 x 3"):
        sq.read_mcdc(tmp_path / "bad.scheme")


@pytest.mark.parametrize("suffix", [".npz", ".mat"])
def test_now_round_trip(tmp_path, suffix):
    s = sq.tensor_encoding(bvalues=[1.5e9], b_delta=0.0, duration=50e-3)
    sq.write_now(s, tmp_path / f"w{suffix}")
    back = sq.read_now(tmp_path / f"w{suffix}")
    np.testing.assert_allclose(back.gradients, s.gradients, atol=1e-15)
    assert back.dt == pytest.approx(s.dt)


def test_now_rf_sign_and_protocol_from_one_waveform(tmp_path):
    # physical gwf: two positive lobes; rf flips the second to make a spin echo
    T = 400
    gwf = np.zeros((T, 3))
    gwf[50:150, 0] = 0.04
    gwf[250:350, 0] = 0.04
    rf = np.where(np.arange(T) < 200, 1.0, -1.0)
    with pytest.raises(sq.EchoConditionError):
        sq.from_now(gwf, np.ones(T), 1e-4)
    one = sq.from_now(gwf, rf, 1e-4)
    assert one.b_delta[0] == pytest.approx(1.0)
    dirs = np.array([[0, 0, 1.0], [0, 1.0, 0], [-1.0, 0, 0]])
    prot = sq.from_now(gwf, rf, 1e-4, bvalues=[1e9, 2e9, 3e9], directions=dirs)
    np.testing.assert_allclose(prot.bvalues, [1e9, 2e9, 3e9], rtol=1e-12)
    np.testing.assert_allclose(prot.directions, dirs, atol=1e-12)
    a = np.column_stack([gwf, rf])
    np.savetxt(tmp_path / "w.txt", a)
    with pytest.raises(ValueError, match="dt"):
        sq.read_now(tmp_path / "w.txt")
    np.testing.assert_allclose(sq.read_now(tmp_path / "w.txt", dt=1e-4).gradients, one.gradients)


@pytest.mark.parametrize("values,unit", [([0, 1000, 3000], "s/mm^2"), ([0, 1.0, 3.0], "ms/um^2"),
                                         ([0, 1e9, 3e9], "s/m^2")])
def test_bvalue_unit_inference(values, unit):
    assert sq.infer_bvalue_units(values) == unit
    np.testing.assert_allclose(sq.to_si_bvalues(values), [0, 1e9, 3e9] if unit != "ms/um^2" else [0, 1e9, 3e9])


def test_ambiguous_bvalue_units_are_refused(tmp_path):
    with pytest.raises(ValueError, match="units="):
        sq.infer_bvalue_units([0, 50, 100])
    (tmp_path / "a.bval").write_text("0 50 100\n")
    (tmp_path / "a.bvec").write_text("0 1 0\n0 0 1\n0 0 0\n")
    with pytest.raises(ValueError, match="units="):
        sq.read_fsl(tmp_path / "a.bval", tmp_path / "a.bvec", 10e-3, 30e-3)
    s = sq.read_fsl(tmp_path / "a.bval", tmp_path / "a.bvec", 10e-3, 30e-3, units="s/mm^2")
    np.testing.assert_allclose(s.bvalues, [0, 50e6, 100e6])


def test_to_dipy_when_installed():
    dipy = pytest.importorskip("dipy")  # noqa: F841
    s = sq.pgse(10e-3, 30e-3, bvalues=[0, 1e9, 2e9], directions=np.eye(3))
    gt = s.to_dipy()
    np.testing.assert_allclose(gt.bvals, [0, 1000, 2000])
    assert gt.big_delta == pytest.approx(30e-3)
    np.testing.assert_allclose(gt.btens, s.btensors / 1e6)
