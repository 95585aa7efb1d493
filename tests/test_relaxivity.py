"""Surface relaxivity against the exact Robin eigenfunction series (Brownstein & Tarr 1979).

A relaxing wall multiplies a walker's weight, at each hit, by the survival
factor of :func:`walker.survival_probability`; the b = 0 signal is the surviving
magnetisation. Every check is statistical with a fixed seed:
|S - S_exact| <= 4.5 SE + the stated discretisation allowance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

import sequences as sq
import substrates as su
import walker
from validation import robin_modes, surface_relaxation_signal
from walker.membranes import first_order_probability

D0 = 2e-9
A = 5e-6  # half-separation of the planes, radius of the cylinder and sphere
Z = 4.5


def _b0_scheme(echo_times, dt: float = 1e-5) -> sq.Scheme:
    """b = 0 at each echo time (a PGSE with no gradient, centred in TE), on a grid of dt (TEs even multiples of dt,
    so that every edge is a grid point)."""
    return sq.concatenate([sq.pgse(2 * dt, 4 * dt, bvalues=[0.0], directions=[1, 0, 0], echo_time=te, dt=dt)
                           for te in echo_times])


def _pore(geometry: str, rho: float) -> su.Substrate:
    return {"planes": lambda: su.planes(2 * A, relaxivity=rho), "cylinder": lambda: su.cylinder(A, relaxivity=rho),
            "sphere": lambda: su.sphere(A, relaxivity=rho)}[geometry]()


def _allowance(geometry: str, rho: float, res, te) -> np.ndarray:
    """Signal change for a realised relaxivity off by 0.1 p (the measured residual of the corrected rule is
    +0.06 p, with c = 0.56 +- 0.04 between planes and in curved pores), p the per-hit probability used."""
    p = first_order_probability(rho, res.provenance["dt"] / res.provenance["substeps"], D0)
    exact = surface_relaxation_signal(geometry, A, D0, rho, te)
    return np.max([np.abs(surface_relaxation_signal(geometry, A, D0, rho * (1 + s * 0.1 * p), te) - exact)
                   for s in (-1, 1)], axis=0)


# fast diffusion (rho a / D = 0.01: Brownstein-Tarr limit), intermediate (1) and slow (10: diffusion-limited)
@pytest.mark.parametrize("geometry", ["planes", "cylinder", "sphere"])
@pytest.mark.parametrize("h", [0.01, 1.0, 10.0])
def test_b0_decay_matches_the_robin_series(geometry, h):
    rho = h * D0 / A
    xi, _ = robin_modes(geometry, h, 1)
    tau = min(A**2 / (xi[0] ** 2 * D0), 0.05)  # decay time of the slowest mode, at most 50 ms
    # steps of a / 10; in the slow regime a / 20 with up to p = 0.1 per hit (sub-steps would cost 100x more)
    frac, max_p = (0.1, 0.02) if h <= 1 else (0.05, 0.1)
    dt = math.floor((frac * A) ** 2 / (6 * D0) / 1e-7) * 1e-7
    k = 2 * np.round(np.array([0.5, 1.0, 2.0]) * tau / (2 * dt))
    res = walker.simulate(_pore(geometry, rho), _b0_scheme(k * dt, dt), n_walkers=20_000, diffusivity=D0,
                          n_steps=int(k[-1]), seed=11, max_transit_probability=max_p)
    exact = surface_relaxation_signal(geometry, A, D0, rho, res.scheme.echo_time)
    assert res.escapes == 0
    assert np.all(exact < 0.95) or h < 1  # the decay is not trivial
    err = np.abs(res.signal - exact)
    assert np.all(err <= Z * res.stderr + _allowance(geometry, rho, res, res.scheme.echo_time)), \
        (res.signal, exact, res.stderr)
    assert res.provenance["absorption_probability_max"] <= max_p


def test_finite_step_correction_of_the_absorption_probability():
    """Long steps (a / 5) and p = 0.13 per hit, no sub-steps: with P = p the realised rho is 0.56 p too large;
    P = p / (1 + p / 2) brings it within 0.1 p (the rho the b = 0 decay at 2 tau implies, 50,000 walkers)."""
    h = 1.0
    rho = h * D0 / A
    xi, _ = robin_modes("planes", h, 1)
    dt = 8e-5  # steps of 0.196 a
    k = 2 * round(2 * A**2 / (xi[0] ** 2 * D0) / (2 * dt))
    te = np.array([k * dt])
    realised = {}
    for rule in ("corrected", "first_order"):
        res = walker.simulate(_pore("planes", rho), _b0_scheme(te, dt), n_walkers=50_000, diffusivity=D0,
                              n_steps=k, seed=4, max_transit_probability=1.0, transit=rule)
        s, se = res.signal[0], res.stderr[0]

        def implied(target):
            return brentq(lambda r: surface_relaxation_signal("planes", A, D0, r, te)[0] - target, 0.5 * rho, 2 * rho)

        realised[rule] = (implied(s), abs(implied(s + se) - implied(s - se)) / 2)
        p = first_order_probability(rho, res.provenance["dt"], D0)
    assert 0.12 < p < 0.14
    r_c, se_c = realised["corrected"]
    r_f, se_f = realised["first_order"]
    assert abs(r_c / rho - 1) <= Z * se_c / rho + 0.1 * p
    assert r_f / rho - 1 >= 0.56 * p - Z * se_f / rho - 0.04 * p  # c = 0.56 +- 0.04


def test_brownstein_tarr_rate_is_the_ground_truth_rho_s_over_v():
    """Fast diffusion: every compartment decays at rho S / V, which the ground truth reports; the extra space of
    a sphere lattice (walls hit from outside) included."""
    rho = 2e-6  # rho R / D = 0.004 inside
    sub = su.sphere_lattice(4e-6, 0.3, relaxivity=rho)
    gt = sub.ground_truth()
    assert gt["relaxivity"] == rho
    rates = gt["surface_relaxation_rate"]
    assert rates["intra"] == pytest.approx(rho * 3 / 4e-6)
    te = np.array([0.04, 0.08])
    res = walker.simulate(sub, _b0_scheme(te, 2e-5), n_walkers=20_000, diffusivity=D0, n_steps=4000, seed=5,
                          start="uniform")
    assert res.escapes == 0
    for comp in ("intra", "extra"):
        s, se = res.compartment_signals[comp], res.compartment_stderr[comp]
        bt = np.exp(-rates[comp] * te)
        # allowance: the Brownstein-Tarr limit itself is off by O(rho a / D) of the rate (0.2 % at 0.004)
        allow = bt * rates[comp] * te * 0.01
        assert np.all(np.abs(s - bt) <= Z * se + allow), (comp, s, bt, se)


def test_mesh_sphere_with_relaxivity_matches_the_exact_sphere():
    R, h = 5e-6, 1.0
    rho = h * D0 / R
    sub = su.meshed_sphere(R, subdivisions=4, relaxivity=rho)
    te = np.array([2.5e-3, 5e-3])
    res = walker.simulate(sub, _b0_scheme(te, 1e-5), n_walkers=10_000, diffusivity=D0, n_steps=500, seed=2,
                          check_every_step=True)
    exact = surface_relaxation_signal("sphere", R, D0, rho, te)
    # allowance: the mesh's volume and S/V are off by its radius error (~0.2 % at level 4), rate error 2x that
    mesh_err = abs(sub.truth["mesh_volume_error"]) + sub.truth["mesh_radius_error"]
    allow = exact * (-np.log(exact)) * 2 * mesh_err + _allowance("sphere", rho, res, te)
    assert res.escapes == 0
    assert np.all(np.abs(res.signal - exact) <= Z * res.stderr + allow), (res.signal, exact, res.stderr)
    assert sub.ground_truth()["surface_relaxation_rate"]["intra"] == pytest.approx(3 * rho / R, rel=0.01)


def test_without_relaxivity_nothing_changes_and_with_zero_rho_the_signal_is_one():
    te = np.array([5e-3])
    res = walker.simulate(su.cylinder(A, relaxivity=0.0), _b0_scheme(te, 5e-5), n_walkers=200, diffusivity=D0,
                          n_steps=100, seed=0)
    assert res.signal[0] == 1.0
    assert "relaxivity" not in res.ground_truth and "absorption_probability_max" not in res.provenance


def test_relaxivity_input_is_checked():
    with pytest.raises(ValueError, match="relaxivity"):
        su.sphere(5e-6, relaxivity=-1e-6)
    with pytest.raises(ValueError, match="um/ms"):
        su.cylinder(5e-6, relaxivity=5.0)  # 5 um/ms passed as 5 m/s
    with pytest.raises(ValueError, match="outward"):
        su.sphere(5e-6, relaxivity={"outward": 1e-6, "inward": 0.0})
    with pytest.raises(ValueError, match="one per primitive"):
        su.spheres([1e-6, 1e-6], [[2e-6] * 3, [6e-6] * 3], [10e-6] * 3, relaxivity=[1e-6] * 3)


def test_relaxivity_survives_save_and_load(tmp_path):
    sub = su.sphere_lattice(3e-6, 0.2, relaxivity=1e-5)
    su.save_substrate(sub, tmp_path / "s.h5")
    back = su.load_substrate(tmp_path / "s.h5")
    np.testing.assert_array_equal(back.relaxivity, sub.relaxivity)
    assert back.ground_truth()["surface_relaxation_rate"] == sub.ground_truth()["surface_relaxation_rate"]
