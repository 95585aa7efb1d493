"""Regime-of-validity maps, NRV degeneracy of the Standard Model, and the report."""

from functools import lru_cache

import numpy as np
import pytest
from scipy.optimize import brentq

import sequences as sq
import validation as va
from validation.regimes import regime_map

R, D, GAMMA = 5e-6, 2e-9, 2.6751525e8


@lru_cache(maxsize=None)
def _exact(x, y):
    """PGSE across a cylinder at D0 delta / R^2 = x with q_max R = y; exact matrix-formalism signal."""
    delta = x * R**2 / D
    G = np.linspace(0.2, 1, 5) * y / R / (GAMMA * delta)
    sch = sq.pgse(delta, 40e-3, gradient_strength=G, directions=[1, 0, 0])
    # q R <= 2: the automatic cutoff is 40 and converged there (it returns these very signals after checking
    # them against cutoff 60, tests/test_mf_every_size.py); the check costs 90 % of the time, so skip it here
    return sch, va.mf_signal(sch, "cylinder", R, D, axis=[0, 0, 1], cutoff=40)


def _at(x, y):
    sch, s = _exact(float(x), float(y))
    return sch, s, R, None


FIXED = {"D": D, "theta": 0.0, "phi": 0.0}


def test_narrow_pulse_vs_gaussian_phase_regime_map():
    x = np.geomspace(0.02, 1.5, 8)
    y = np.array([1.0, 2.0])
    narrow = regime_map("cylinder_callaghan", "R", _at, x, y, fixed=FIXED, x_name="D0 delta / R^2", y_name="q R")
    gpd = regime_map("cylinder_gpd", "R", _at, x, y, fixed=FIXED, x_name="D0 delta / R^2", y_name="q R")
    # the narrow-pulse radius is biased low once delta is no longer short against R^2 / D0 ...
    assert np.all(np.diff(np.abs(narrow.bias), axis=1) > 0)
    edge = narrow.boundary(0.05)
    assert np.all((edge > 0.03) & (edge < 0.3))
    # ... and the map puts the 5 % boundary where direct fits to the exact signal cross 5 %
    def excess(lx):
        sch, s, truth, _ = _at(np.exp(lx), 1.0)
        return abs(va.fit("cylinder_callaghan", sch, s, fixed=FIXED)["R"][0] / truth - 1) - 0.05
    direct = np.exp(brentq(excess, np.log(0.02), np.log(1.5), xtol=1e-3))
    assert edge[0] == pytest.approx(direct, rel=0.1)
    # the Gaussian phase approximation holds over the whole range at these q R
    assert np.all(gpd.valid(0.05))
    assert not np.all(narrow.valid(0.05)) and np.any(narrow.valid(0.05))
    ax = narrow.plot()
    assert ax.get_xlabel() == "D0 delta / R^2"


def test_regime_map_with_noise_reports_precision_and_nrv():
    x = np.array([0.05, 1.0])
    m = regime_map("cylinder_callaghan", "R", _at, x, [1.0], fixed=FIXED, snr=200, repeats=4)
    assert np.all(m.cv > 0) and np.all(np.isfinite(m.nrv_min)) and 1 < m.nrv_limit < 3
    assert m.bias[0, 1] < -0.2  # the long-pulse bias survives the noise
    with pytest.raises(ValueError, match="no parameter"):
        regime_map("cylinder_callaghan", "radius", _at, x, [1.0])


def test_standard_model_nrv_flat_with_clinical_lte_sharpens_with_ste_and_high_b():
    rng = np.random.default_rng(3)
    u = rng.normal(size=(30, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)

    def protocol(bs, ste):
        lte = sq.tensor_encoding(np.repeat(bs, 30), b_delta=1.0, directions=np.vstack([u] * len(bs)), duration=0.06)
        return lte + sq.tensor_encoding(np.repeat(bs, 10), b_delta=0.0, duration=0.06) if ste else lte

    truth = [0.5, 2.2e-9, 1.6e-9, 0.6e-9, 0.0, 3e-9, 0.7, 0.4, 0.7, 0.3]
    fixed = {"f_w": 0.0, "D_w": 3e-9, "p4": 0.4}
    grid = np.linspace(0.1, 0.9, 9)
    m = va.get_model("standard_model")
    out = []
    for s in (protocol([1e9, 2e9], False), protocol([1e9, 2e9, 4e9], True)):
        out.append(va.nrv_landscape(m, s, m.signal(s, [truth])[0], "f", grid, snr=50, repeats=3, truth=0.5,
                                    fixed=fixed))
    flat, sharp = out
    # LTE at clinical b: a flat valley over low f (Jelescu et al. 2016) ...
    assert flat.valley[1] - flat.valley[0] >= 0.4 and flat.valley[0] <= 0.5 <= flat.valley[1]
    # ... narrowed around the truth once spherical encoding and higher b are added
    assert sharp.valley[1] - sharp.valley[0] <= 0.25
    assert sharp.argmin == pytest.approx(0.5, abs=0.1)


def test_make_report_writes_markdown_and_figures(tmp_path):
    from types import SimpleNamespace

    from validation.regimes import RegimeMap
    rng = np.random.default_rng(0)
    u = rng.normal(size=(20, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    s = sq.pgse(10e-3, 30e-3, bvalues=np.repeat([0, 1e9, 2e9, 3e9], [1, 20, 20, 20]), directions=np.vstack([u[:1], u, u, u]))
    m = va.get_model("stick_zeppelin")
    results = []
    for f in (0.5, 0.7):
        y = m.signal(s, [[f, 2e-9, 0.5e-9, 0.0, 0.0]])[0]
        gt = {"volume_fractions": {"intra": f, "extra": 1 - f}, "diffusivity": 2e-9, "axis": [0, 0, 1]}
        results.append(SimpleNamespace(scheme=s, signal=y, stderr=np.full(len(s), 1e-3), ground_truth=gt))
    rm = RegimeMap("m", "R", "x", "y", np.array([0.1, 1.0]), np.array([1.0, 2.0]),
                   np.array([[0.01, 0.2], [0.02, 0.3]]), np.zeros((2, 2)), np.full((2, 2), np.nan), np.inf)
    md = va.make_report(results, tmp_path, models=["stick_zeppelin", "ball_stick", "impulsed"], snr=200, repeats=2,
                        nrv=[("stick_zeppelin", "f")], nrv_repeats=2, regime_maps=[rm])
    text = md.read_text()
    for section in ("## Models", "## Bias against ground truth", "## NRV landscapes", "## Regimes of validity",
                    "## Full bias table"):
        assert section in text
    assert "| impulsed | no: " in text
    row = [ln for ln in text.splitlines() if ln.startswith("| stick_zeppelin | f |")][0]
    assert abs(float(row.split("|")[4].strip().split()[0])) < 2.0  # a correct model: bias within 2 %
    for png in ("bias.png", "nrv_stick_zeppelin_f.png", "regime_m_R_0.png"):
        assert (tmp_path / png).stat().st_size > 1000
    other = sq.pgse(10e-3, 40e-3, bvalues=[0, 1e9], directions=[1, 0, 0])
    with pytest.raises(ValueError, match="share one acquisition"):
        va.make_report(results + [SimpleNamespace(scheme=other, signal=np.ones(2), stderr=np.zeros(2),
                                                  ground_truth={})], tmp_path)
    with pytest.raises(ValueError, match="no results"):
        va.make_report([], tmp_path)
