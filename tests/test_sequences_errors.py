"""Bad input gets a clear error that says what is wrong and how to fix it."""

import numpy as np
import pytest

import sequences as sq


@pytest.mark.parametrize("kwargs,match", [
    (dict(delta=10e-3, Delta=5e-3, bvalues=[1e9]), "do not overlap"),
    (dict(delta=-1e-3, Delta=30e-3, bvalues=[1e9]), "non-negative"),
    (dict(delta=10.0, Delta=30.0, bvalues=[1e9]), "seconds"),
    (dict(delta=10e-3, Delta=30e-3, bvalues=[np.nan]), "NaN"),
    (dict(delta=10e-3, Delta=30e-3, bvalues=[1000]), "s/mm\\^2"),
    (dict(delta=10e-3, Delta=30e-3, bvalues=[1.0]), "ms/um\\^2"),
    (dict(delta=10e-3, Delta=30e-3, bvalues=[1e15]), "twice"),
    (dict(delta=10e-3, Delta=30e-3, bvalues=[1e9], gradient_strength=[0.1]), "exactly one"),
    (dict(delta=10e-3, Delta=30e-3, gradient_strength=[80.0 * 1e3]), "mT/m"),
    (dict(delta=10e-3, Delta=30e-3, bvalues=[1e9, 2e9], directions=np.eye(3)), "directions"),
    (dict(delta=10e-3, Delta=30e-3, bvalues=[1e9], directions=[2, 0, 0]), "unit vectors"),
    (dict(delta=10e-3, Delta=30e-3, bvalues=[1e9], directions=[[1, 0]]), "shape"),
    (dict(delta=10e-3, Delta=30e-3, bvalues=[1e9], ramp_time=20e-3), "ramp_time"),
    (dict(delta=10e-3, Delta=30e-3, bvalues=[1e9], echo_time=20e-3), "echo_time"),
])
def test_pgse_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sq.pgse(**kwargs)


def test_zero_b_accepts_any_direction():
    s = sq.pgse(10e-3, 30e-3, bvalues=[0, 1e9], directions=[[0, 0, 0], [0, 0, 1]])
    assert s.bvalues[0] == 0 and np.all(s.directions[0] == 0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(frequency=100.0, n_periods=1.5, bvalues=[1e9]), "whole number"),
    (dict(frequency=100.0, bvalues=[1e9]), "exactly two"),
    (dict(frequency=100.0, n_periods=2, lobe_duration=0.02, bvalues=[1e9]), "exactly two"),
    (dict(frequency=-5.0, n_periods=2, bvalues=[1e9]), "positive"),
    (dict(frequency=100.0, n_periods=2, bvalues=[1e9], shape="square"), "shape"),
    (dict(frequency=100.0, n_periods=2, bvalues=[1e9], shape="trapezoid-cos", ramp_time=6e-3), "half a period"),
])
def test_ogse_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sq.ogse(**kwargs)


def test_ogse_from_lobe_duration():
    a = sq.ogse(frequency=100.0, lobe_duration=20e-3, bvalues=[1e9])
    b = sq.ogse(n_periods=2, lobe_duration=20e-3, bvalues=[1e9])
    np.testing.assert_allclose(a.gradients, b.gradients)


def test_dde_and_tensor_bad_input():
    with pytest.raises(ValueError, match="mixing_time"):
        sq.dde(10e-3, 30e-3, 5e-3, bvalues=[1e9])
    with pytest.raises(ValueError, match=r"\[-1/2, 1\]"):
        sq.tensor_encoding(bvalues=[1e9], b_delta=1.5)
    with pytest.raises(ValueError, match="b_eta"):
        sq.tensor_encoding(bvalues=[1e9], b_delta=0.5, b_eta=2.0)
    with pytest.raises(ValueError, match="negative"):
        sq.tensor_encoding(bvalues=[1e9], b_delta=1.0, b_eta=1.0)


def test_from_waveforms_bad_input():
    with pytest.raises(ValueError, match=r"\(M, T, 3\)"):
        sq.from_waveforms(np.zeros((2, 10, 2)), 1e-4)
    with pytest.raises(ValueError, match="NaN"):
        sq.from_waveforms(np.full((1, 10, 3), np.nan), 1e-4)
    with pytest.raises(ValueError, match="positive"):
        sq.from_waveforms(np.zeros((1, 10, 3)), 0.0)
    with pytest.raises(ValueError, match="seconds"):
        sq.from_waveforms(np.zeros((1, 10000, 3)), 1e-2 * 100)
    g = np.zeros((20, 3))
    g[2:5, 1], g[12:15, 1] = 0.03, -0.03
    s = sq.from_waveforms(g, 1e-3)  # (T, 3) is one measurement
    assert len(s) == 1 and s.label[0] == "waveform"


def test_rotate_and_select_errors():
    s = sq.pgse(10e-3, 30e-3, bvalues=[1e9])
    with pytest.raises(ValueError, match="rotation"):
        s.rotate(np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(IndexError, match="empty"):
        s.select(np.zeros(1, bool))
    with pytest.raises(ValueError, match="info keys"):
        sq.Scheme(np.zeros((1, 4, 3)), 1e-3, info={"bogus": 1})


def test_example_figure(tmp_path):
    from diffwalk.examples import run_example
    paths = run_example("waveforms", str(tmp_path))
    assert paths[0].exists() and paths[0].stat().st_size > 10_000
