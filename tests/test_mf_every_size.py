"""The matrix-formalism reference at every pore size (issue 28).

A fixed cutoff of 40 in alpha R was exact at R = 5 um and gave 0.810 at R = 500 um, where the Monte Carlo
gives 0.139 +- 0.005 and free diffusion 0.135 (10/30 ms PGSE, b = 1000 s/mm^2 across a cylinder, D = 2e-9).
The cutoff now follows the largest phase the scheme writes across the pore, large bases are propagated
sparsely, and beyond them the large-pore limit states its error. Checked here from R = 0.1 um to 5 mm
against the Gaussian-phase limit (small pores), the free limit with its surface term (large pores), the
Monte Carlo, and the units guards.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import sequences as sq
import substrates as su
import validation as va
import walker

D0 = 2e-9
PG = sq.pgse(0.01, 0.03, bvalues=[1e9], directions=[[1.0, 0, 0]])
FREE = float(np.exp(-D0 * 1e9))


@pytest.mark.parametrize("R", [0.1e-6, 0.3e-6, 1e-6])
def test_small_pores_follow_the_gaussian_phase_limit(R):
    """Motional narrowing: the Gaussian-phase result is exact to leading order in g^2, and its next term
    (~ (1 - E)^2) is below 1e-7 here; the truncation error is below 1e-9."""
    e = va.mf_signal(PG, "cylinder", R, D0)[0]
    g = va.gpd_signal(PG, "cylinder", R, D0)[0]
    assert abs(e - g) <= 1e-9 + (1 - g) ** 2


def test_the_signal_falls_monotonically_to_free_diffusion_as_the_pore_grows():
    radii = [0.1e-6, 1e-6, 5e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6, 1e-3]
    s = np.array([va.mf_signal(PG, "cylinder", R, D0)[0] for R in radii])
    assert np.all(np.diff(s) < 0), s
    assert s[-1] > FREE
    # the old cutoff's failure, for the record: 0.810 at 500 um
    assert abs(s[radii.index(500e-6)] - 0.1405) < 1e-3


def test_large_pores_approach_free_diffusion_as_one_over_r():
    """The free limit with its surface term: (E - E_free) R tends to a constant, the flat-wall excess
    (Mitra's S/V law for the signal); the change from 300 um to 1 mm is of relative order l / R."""
    c = [(va.mf_signal(PG, "cylinder", R, D0)[0] - FREE) * R for R in (300e-6, 500e-6, 1e-3)]
    assert np.all(np.array(c) > 0)
    assert abs(c[0] / c[2] - 1) < 0.02 and abs(c[1] / c[2] - 1) < 0.01


@pytest.mark.parametrize("geometry,R", [("cylinder", 300e-6), ("cylinder", 500e-6), ("sphere", 300e-6),
                                        ("planes", 300e-6)])
def test_large_pore_limit_agrees_with_the_modes_within_its_stated_error(geometry, R):
    s = va.mf_signal(PG, geometry, R, D0, axis=(1, 0, 0) if geometry == "planes" else (0, 0, 1))
    lp, err = va.large_pore_signal(PG, geometry, R, D0, axis=(1, 0, 0) if geometry == "planes" else (0, 0, 1),
                                   full_output=True)
    assert abs(s[0] - lp[0]) <= err[0], (s, lp, err)
    assert err[0] < 3e-4


def test_ogse_in_a_large_pore_agrees_with_the_large_pore_limit():
    """A square-wave OGSE (piecewise constant, so the propagators are few): oscillating waveforms need about
    twice the modes their q_max suggests, which the convergence loop finds (cutoff 102 -> 238)."""
    og = sq.ogse(frequency=100.0, n_periods=2, bvalues=[5e8], directions=[[1.0, 0, 0]], shape="trapezoid-cos",
                 ramp_time=0.0)
    s, info = va.mf_signal(og, "cylinder", 200e-6, D0, full_output=True)
    assert info["method"] == "sparse" and info["error"][0] <= va.matrix_formalism.MF_TOLERANCE
    lp, err = va.large_pore_signal(og, "cylinder", 200e-6, D0, full_output=True)
    assert abs(s[0] - lp[0]) <= err[0], (s, lp, err)


def test_the_chosen_cutoff_is_converged():
    """The automatic cutoff against a much larger one: within 2e-5 where q R is 10 to 40."""
    for R in (50e-6, 100e-6, 200e-6):
        auto, info = va.mf_signal(PG, "cylinder", R, D0, full_output=True)
        ref = va.mf_signal(PG, "cylinder", R, D0, cutoff=info["cutoff"] + 60)
        assert abs(auto[0] - ref[0]) < 2e-5, (R, auto, ref)


def test_dense_and_sparse_propagation_agree():
    # 60 in alpha R is below the dense threshold, 90 above it; both are converged at R = 20 um
    a, ia = va.mf_signal(PG, "sphere", 20e-6, D0, cutoff=60, full_output=True)
    b, ib = va.mf_signal(PG, "sphere", 20e-6, D0, cutoff=90, full_output=True)
    assert (ia["method"], ib["method"]) == ("dense", "sparse")
    assert abs(a[0] - b[0]) < 1e-7


def test_small_pores_keep_the_old_modes_bit_for_bit():
    """Where q R is small the default cutoff stays 40 and the dense path is the old code: the R1 table's
    references do not move."""
    s, info = va.mf_signal(PG, "cylinder", 5e-6, D0, full_output=True)
    assert info["cutoff"] == 40.0 and info["method"] == "dense"
    assert s[0] == pytest.approx(0.89316635, abs=1e-8)


@pytest.mark.parametrize("R", [50e-6, 500e-6])
def test_monte_carlo_agrees_at_every_size(R):
    """The walker against the reference, 4.5 SE plus the 1,000-step allowance (RMS step 0.28 um, well
    below every length here: 0.003)."""
    r = walker.simulate(su.cylinder(R), PG, n_walkers=20_000, n_steps=1000, seed=11, diffusivity=D0)
    ref = va.mf_signal(PG, "cylinder", R, D0)
    assert abs(r.signal[0] - ref[0]) <= 4.5 * r.stderr[0] + 0.003, (r.signal, r.stderr, ref)


def test_pores_beyond_the_modes_switch_to_the_large_pore_limit_and_say_so():
    s, info = va.mf_signal(PG, "cylinder", 5e-3, D0, full_output=True)
    assert info["method"] == "large-pore"
    assert 0 < info["error"][0] < 1e-5
    assert FREE < s[0] < FREE + 1e-3


@pytest.mark.parametrize("kwargs,match", [
    ({"radius": 5.0}, "metres"),                      # 5 um passed as 5
    ({"radius": 5e-12}, "below 1 nm"),
    ({"radius": np.nan}, "radius"),
    ({"radius": "5e-6"}, "radius"),
    ({"diffusivity": 2.0}, "um\\^2/ms"),              # 2 um^2/ms passed as 2
    ({"diffusivity": 2e-3}, "mm\\^2/s"),
    ({"diffusivity": -1e-9}, "diffusivity"),
    ({"cutoff": -3}, "cutoff"),
    ({"axis": (0, 0, 0)}, "axis"),
    ({"geometry": "cube"}, "geometry"),
])
def test_units_and_arguments_are_checked(kwargs, match):
    args = {"geometry": "cylinder", "radius": 5e-6, "diffusivity": D0} | kwargs
    with pytest.raises(ValueError, match=match):
        va.mf_signal(PG, args.pop("geometry"), args.pop("radius"), args.pop("diffusivity"), **args)


def test_a_huge_cutoff_is_refused_before_allocating():
    t = time.perf_counter()
    with pytest.raises(ValueError, match="GiB") as e:
        va.mf_signal(PG, "cylinder", 5e-6, D0, cutoff=3000)
    assert time.perf_counter() - t < 1.0
    assert "cutoff=None" in str(e.value)
