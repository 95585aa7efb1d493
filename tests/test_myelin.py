"""Myelinated axons: three compartments (intra-axonal, myelin, extra) with their own D, T2 and permeabilities.

References: the exact MSD across an annulus (validation.annulus_msd), the three-site relaxation-exchange
matrix exponential, and detailed balance (a uniform density stays uniform). Every check is statistical with
a fixed seed: |estimate - reference| <= 4.5 SE + the stated allowance.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

import sequences as sq
import substrates as su
import walker
from validation import annulus_msd

Z = 4.5
R_IN, G = 2e-6, 0.6          # identical fibres: every walker sees the same annulus, so the references are exact
R_OUT = R_IN / G


def _b0(echo_times, dt):
    return sq.concatenate([sq.pgse(2 * dt, 4 * dt, bvalues=[0.0], directions=[1, 0, 0], echo_time=te, dt=dt)
                           for te in echo_times])


def _fibres(**kw):
    return su.myelinated_axons(radii=[R_IN] * 4, g_ratios=[G] * 4, fvf=0.5, seed=3, **kw)


def test_generator_ground_truth_and_regions():
    sub = su.myelinated_axons(n_axons=12, mean_radius=1e-6, g_ratio=0.7, g_ratio_sd=0.05, fvf=0.5, seed=2)
    gt = sub.ground_truth()
    assert sub.region_names == ["myelin", "intra", "extra"]
    g = np.array(gt["g_ratios"])
    np.testing.assert_allclose(np.array(gt["inner_radii"]) / np.array(gt["outer_radii"]), g)
    assert 0.6 < gt["g_ratio_mean"] < 0.8 and g.std() > 0.01
    exact, mesh = gt["fractions_exact"], sub.volume_fractions()
    for c in ("myelin", "intra", "extra"):  # area-preserving polygons: the mesh holds the exact volumes
        assert mesh[c] == pytest.approx(exact[c], rel=1e-6, abs=1e-9)
    assert gt["myelin_volume_fraction"] == pytest.approx(exact["myelin"])
    assert sub.depth.tolist() == [0] * 12 + [1] * 12


def test_containment_in_all_three_compartments_every_step():
    sub = su.myelinated_axons(n_axons=6, mean_radius=1e-6, g_ratio=0.65, fvf=0.55, seed=5)
    res = walker.simulate(sub, _b0([2e-3], 5e-7), n_walkers=1500, diffusivity={"myelin": 0.5e-9, "intra": 2e-9,
                                                                                "extra": 2e-9},
                          n_steps=4000, seed=1, start="uniform", check_every_step=True)
    assert res.escapes == 0 and res.reflections > 0
    # nothing crosses an impermeable wall: each compartment keeps its walkers
    assert res.final_fractions == {}  # impermeable: not tracked
    assert set(res.compartment_counts) == {"myelin", "intra", "extra"}


def test_myelin_annulus_at_equal_d_matches_the_exact_annulus_msd():
    D = 1e-9
    sub = _fibres(resolution=0.002)
    dt = 4e-6                                   # step 0.15 um: a ninth of the 1.33 um sheath
    times = dt * np.unique(np.round(np.geomspace(5, 5000, 9)))
    res = walker.simulate(sub, _b0([20e-3], dt), n_walkers=3000, diffusivity=D, n_steps=5000, seed=7,
                          start="myelin", record_times=times, check_every_step=True)
    assert res.escapes == 0
    r2 = (res.displacements[:, :, :2] ** 2).sum(axis=-1) / 2        # per transverse axis, m^2
    msd, se = r2.mean(axis=0), r2.std(axis=0) / np.sqrt(r2.shape[0])
    exact = annulus_msd(R_IN, R_OUT, D, times)
    # allowances: the polygons' radius error (0.2 %, the MSD scales as r^2) and the finite step's wall bias,
    # 0.08 l (S/V) / d of D(t) until the sheath's diffusion time (as measured in lesson 04 for disks)
    step = res.provenance["step_length"]
    sv = 2 * (R_IN + R_OUT) / (R_OUT**2 - R_IN**2)
    thick = R_OUT - R_IN
    allow = 2 * sub.truth["mesh_radius_error"] * exact + 0.08 * step * sv / 2 * 2 * D * times \
        * np.minimum(1.0, thick**2 / (D * times))
    assert np.all(np.abs(msd - exact) <= Z * se + allow), (msd / exact, se / exact, allow / exact)
    # along the axis the sheath is free
    z2 = res.displacements[:, :, 2] ** 2
    assert np.all(np.abs(z2.mean(axis=0) - 2 * D * times) <= Z * z2.std(axis=0) / np.sqrt(len(z2)))


@pytest.fixture(scope="module")
def exchanging_fibres():
    """Barrier-limited exchange (kappa d / D <= 0.05 across every compartment), D and T2 per compartment."""
    kappa = 2e-5
    sub = _fibres(permeability=kappa)
    D = {"myelin": 0.5e-9, "intra": 2e-9, "extra": 2e-9}
    T2 = {"myelin": 0.015, "intra": 0.08, "extra": 0.06}
    dt, te = 4e-6, np.array([10e-3, 20e-3, 40e-3])
    res = walker.simulate(sub, _b0(te, dt), n_walkers=8000, diffusivity=D, n_steps=10_000, seed=1,
                          start="uniform", t2=T2)
    return sub, res, kappa, T2, te


def test_three_site_relaxation_exchange(exchanging_fibres):
    sub, res, kappa, T2, te = exchanging_fibres
    names = ["myelin", "intra", "extra"]
    vol = sub.region_volumes()
    V = np.array([vol[c] for c in names])
    S_in = sub.component_area[sub.depth == 1].sum()      # axon membrane: intra <-> myelin
    S_out = sub.component_area[sub.depth == 0].sum()     # sheath surface: myelin <-> extra
    K = np.zeros((3, 3))                                 # dm/dt = (K - R2) m, m: magnetisation per compartment
    for i, j, S in ((0, 1, S_in), (0, 2, S_out)):
        K[i, i] -= kappa * S / V[i]
        K[j, i] += kappa * S / V[i]
        K[j, j] -= kappa * S / V[j]
        K[i, j] += kappa * S / V[j]
    R2 = np.diag([1 / T2[c] for c in names])
    m0 = V / V.sum()
    ref = np.array([np.sum(scipy.linalg.expm((K - R2) * t) @ m0) for t in te])
    no_exchange = np.array([np.sum(m0 * np.exp(-np.diag(R2) * t)) for t in te])
    assert np.abs(ref - no_exchange)[-1] > 10 * res.stderr[-1]            # exchange is visible
    # allowance: the three-site model is the barrier-limited limit; corrections are first order in
    # kappa d / D (<= 0.05 here), so 5 % of the exchange effect
    assert np.all(np.abs(res.signal - ref) <= Z * res.stderr + 0.05 * np.abs(ref - no_exchange)), \
        (res.signal, ref, res.stderr)
    # the ground truth's myelin water fraction: f_my exp(-TE/T2_my) / sum (no exchange)
    mwf = res.ground_truth["t2_signal_fractions"]["myelin"]
    np.testing.assert_allclose(mwf, m0[0] * np.exp(-te / T2["myelin"]) / no_exchange, rtol=1e-12)


def test_equilibrium_occupancy_with_exchange_and_unequal_d(exchanging_fibres):
    sub, res, *_ = exchanging_fibres
    vf = sub.volume_fractions()
    n = res.provenance["n_walkers"]
    assert res.transits > 1000
    for c in ("myelin", "intra", "extra"):
        f = res.final_fractions[c]
        assert abs(f - vf[c]) <= Z * np.sqrt(vf[c] * (1 - vf[c]) / n), (c, f, vf[c])


def test_per_region_t2_without_exchange_is_exact():
    """Impermeable walls: each compartment's signal is exactly exp(-TE/T2) (the kernel's per-region sum)."""
    T2 = {"myelin": 0.015, "intra": 0.08, "extra": 0.06}
    res = walker.simulate(_fibres(), _b0([10e-3, 20e-3], 4e-6), n_walkers=300, diffusivity=2e-9, n_steps=5000,
                          seed=2, start="uniform", t2=T2)
    for c, s in res.compartment_signals.items():
        np.testing.assert_allclose(s, np.exp(-np.array([10e-3, 20e-3]) / T2[c]), rtol=1e-9)


def test_bad_myelin_input_is_refused():
    with pytest.raises(ValueError, match="g_ratios"):
        su.myelinated_axons(radii=[1e-6, 1e-6], g_ratios=[0.7, 1.2])
    with pytest.raises(ValueError, match="inner.*outer"):
        su.myelinated_axons(n_axons=4, permeability={"axon": 1e-5})
    with pytest.raises(ValueError, match="mesh error"):
        su.myelinated_axons(radii=[1e-6] * 3, g_ratios=[0.995] * 3, resolution=0.05)
    with pytest.raises(su.MeshError, match="region_labels"):
        m = su.meshed_sphere(2e-6, subdivisions=1)
        su.mesh_substrate(m.vertices, m.faces, region_labels=["a", "b"])


def test_region_labels_survive_save_and_load(tmp_path):
    sub = su.myelinated_axons(n_axons=4, mean_radius=1e-6, fvf=0.4, seed=1, relaxivity={"inner": 0.0, "outer": 1e-6})
    su.save_substrate(sub, tmp_path / "m.h5")
    back = su.load_substrate(tmp_path / "m.h5")
    assert back.region_names == ["myelin", "intra", "extra"]
    np.testing.assert_array_equal(back.relaxivity, sub.relaxivity)
