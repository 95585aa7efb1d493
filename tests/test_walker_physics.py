"""Monte Carlo signals against exact references (analytic reference, sections 1.0-1.6).

Every comparison is |S - S_ref| <= 4.5 SE + eps_ref + eps_disc with a fixed
seed; SE is the simulation's own standard error. Walker counts are sized for CI.
"""

import numpy as np
import pytest

import sequences as sq
import substrates as su
import validation as va
import walker

D0 = 2e-9
R = 5e-6
Z = 4.5


def _check(res_signal, res_se, ref, eps=0.0):
    dev = np.abs(res_signal - ref)
    bound = Z * res_se + eps
    assert np.all(dev <= bound), f"|S - ref| = {dev} exceeds {bound} (S = {res_signal}, ref = {ref})"


# ------------------------------------------------------------ free (F1-F5)
def test_F1_F2_free_pgse():
    s = sq.pgse(10e-3, 30e-3, bvalues=[250e6, 1000e6], directions=[[1, 0, 0], [0.6, 0.8, 0]])
    r = walker.simulate(su.free(), s, n_walkers=100_000, diffusivity=D0, n_steps=500, seed=1)
    # the walk samples positions per step: its exact b is the discrete one (reference 1.1)
    _check(r.signal, r.stderr, np.exp(-r.discrete_bvalues * D0))
    _check(r.signal, r.stderr, [np.exp(-0.5), np.exp(-2.0)], eps=np.abs(np.exp(-r.discrete_bvalues * D0)
                                                                        - np.exp(-s.bvalues * D0)))
    assert r.escapes == 0 and r.reflections == 0


def test_F3_free_msd():
    s = sq.pgse(10e-3, 30e-3, bvalues=[1e9])
    N = 100_000
    r = walker.simulate(su.free(), s, n_walkers=N, diffusivity=D0, n_steps=400, seed=2, record_times=[40e-3])
    msd = r.msd[0]
    ref = 2 * D0 * 40e-3
    se = np.std(r.displacements[:, 0] ** 2, axis=0) / np.sqrt(N)
    assert np.all(np.abs(msd - ref) <= Z * se), (msd, ref, se)
    assert np.all(np.abs(r.kurtosis[0]) < Z * np.sqrt(24 / N))  # Gaussian after many steps


def test_F4_F5_anisotropic_free_tensor():
    Dt = np.diag([2.0, 0.5, 0.5]) * 1e-9
    b = 1e9
    s = (sq.tensor_encoding(bvalues=[b], b_delta=0.0, duration=40e-3, dt=20e-6)
         + sq.tensor_encoding(bvalues=[b, b], b_delta=1.0, directions=[[1, 0, 0], [0, 1, 0]], duration=40e-3, dt=20e-6)
         + sq.tensor_encoding(bvalues=[b], b_delta=-0.5, directions=[0, 0, 1], duration=40e-3, dt=20e-6))
    ref = np.array([np.exp(-1), np.exp(-2), np.exp(-0.5), np.exp(-1.25)])
    np.testing.assert_allclose(va.free_signal(s, Dt), ref, rtol=1e-9)
    for gaussian in (False, True):
        r = walker.simulate(su.free(diffusion_tensor=Dt), s, n_walkers=100_000, n_steps=500, seed=3,
                            gaussian_steps=gaussian)
        disc = np.exp(-np.einsum("mij,ij->m", r.scheme.discrete_btensors(), Dt))
        _check(r.signal, r.stderr, disc)


def test_gradient_on_in_the_last_step():
    # regression: the whole refocusing lobe sits in the final step; a walk that dropped or misweighted
    # the final position would break the echo (a phase of order |q| |r| ~ 3 rad) and miss by far
    T = 100
    g = np.zeros((1, T, 3))
    g[0, :99, 0] = 0.02
    g[0, 99, 0] = -99 * 0.02
    s = sq.from_waveforms(g, 4e-4)
    r = walker.simulate(su.free(), s, n_walkers=200_000, diffusivity=D0, n_steps=T, seed=4, gaussian_steps=True)
    _check(r.signal, r.stderr, np.exp(-r.discrete_bvalues * D0))
    assert 0.05 < r.signal[0] < 0.95


# ---------------------------------------------------- R1 finite pulses (MF)
@pytest.fixture(scope="module")
def r1_scheme():
    return sq.pgse(10e-3, 30e-3, gradient_strength=[0.04, 0.08, 0.16, 0.30], directions=[1, 0, 0], dt=20e-6)


R1_TABLE = {  # analytic reference R1 (matrix formalism), G = 0.04, 0.08, 0.16, 0.30 T/m
    "planes": [0.947637, 0.803590, 0.389926, 0.003823],
    "cylinder": [0.966290, 0.870872, 0.564318, 0.096081],
    "sphere": [0.976667, 0.909517, 0.679690, 0.233662],
}


@pytest.mark.parametrize("geometry", ["planes", "cylinder", "sphere"])
def test_mf_reference_reproduces_table_R1(r1_scheme, geometry):
    ax = [1, 0, 0] if geometry == "planes" else [0, 0, 1]
    np.testing.assert_allclose(va.mf_signal(r1_scheme, geometry, R, D0, axis=ax), R1_TABLE[geometry], atol=1.5e-6)


@pytest.mark.parametrize("geometry", ["planes", "cylinder", "sphere"])
def test_R1_finite_pulse_pgse(r1_scheme, geometry):
    sub = {"planes": su.planes(2 * R, normal=[1, 0, 0]), "cylinder": su.cylinder(R), "sphere": su.sphere(R)}[geometry]
    # 2000 steps over 40 ms: RMS step per axis 0.057 R, where the curved-wall bias is < 1 SE at 1e5 walkers
    r = walker.simulate(sub, r1_scheme, n_walkers=50_000, diffusivity=D0, n_steps=2000, seed=5)
    _check(r.signal, r.stderr, np.array(R1_TABLE[geometry]), eps=1e-6)
    assert r.escapes == 0 and r.truncated_steps == 0


def test_R1_oblique_cylinder_rotation_invariance(r1_scheme):
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    Q = su.rotation_to(axis)
    assert np.allclose(Q @ [0, 0, 1], axis) and np.allclose(su.rotation_to([0, 0, 1]), np.eye(3))
    straight = walker.simulate(su.cylinder(R), r1_scheme, n_walkers=20_000, diffusivity=D0, n_steps=1000, seed=6)
    # the same walks in the cylinder's frame: only rounding of the rotated gradients differs
    oblique = walker.simulate(su.cylinder(R, axis=axis), r1_scheme.rotate(Q), n_walkers=20_000, diffusivity=D0,
                              n_steps=1000, seed=6)
    np.testing.assert_allclose(oblique.signal, straight.signal, atol=1e-9)
    _check(straight.signal, straight.stderr, np.array(R1_TABLE["cylinder"]), eps=1e-6)
    ref = va.mf_signal(r1_scheme.rotate(Q), "cylinder", R, D0, axis=axis)
    np.testing.assert_allclose(ref, R1_TABLE["cylinder"], atol=1.5e-6)


# ------------------------------------------------ R2 narrow pulses (Callaghan)
@pytest.mark.parametrize("geometry", ["planes", "cylinder", "sphere"])
def test_R2_narrow_pulse_with_diffraction_minima(geometry):
    # phi = q . (r(Delta) - r(0)) exactly: no phase quadrature error (reference 1.4)
    Delta = 20e-3
    sub = {"planes": su.planes(2 * R, normal=[1, 0, 0]), "cylinder": su.cylinder(R), "sphere": su.sphere(R)}[geometry]
    s = sq.pgse(1e-3, Delta - 1e-3, bvalues=[1e8], directions=[1, 0, 0])
    N = 50_000
    r = walker.simulate(sub, s, n_walkers=N, diffusivity=D0, n_steps=1000, seed=7, record_times=[Delta])
    x = r.displacements[:, 0, 0]
    kR = np.array([1.0, 2.0, 3.8317, 4.4934])
    c = np.cos(np.outer(x, kR / R))
    E, se = c.mean(axis=0), c.std(axis=0) / np.sqrt(N)
    ref = va.callaghan_signal(geometry, R, D0, Delta, kR / R)
    table = {"planes": [0.713306, 0.218087, 0.029863, 0.047308], "cylinder": [0.775504, 0.334847, 0.000935, 0.010677],
             "sphere": [0.816491, 0.426971, 0.015560, 0.000124]}[geometry]
    np.testing.assert_allclose(ref, table, atol=1.5e-6)
    _check(E, se, ref, eps=1e-6)


# ------------------------------------------------------------- O1 OGSE
def test_O1_cos_ogse_against_gpd():
    # at small b the GPD is exact to O(G^2); its error, ~0.07 (ln S)^2 by the R1 table, is carried as eps_ref
    s = (sq.ogse(frequency=50.0, n_periods=1, bvalues=[30e6, 30e6], directions=[[1, 0, 0], [0, 0, 1]], gap=2e-3,
                 dt=10e-6)
         + sq.ogse(frequency=200.0, n_periods=4, bvalues=[30e6], directions=[1, 0, 0], gap=2e-3, dt=10e-6))
    ref = va.gpd_signal(s, "cylinder", R, D0)
    r = walker.simulate(su.cylinder(R), s, n_walkers=100_000, diffusivity=D0, n_steps=s.n_steps // 2, seed=8)
    _check(r.signal, r.stderr, ref, eps=0.1 * np.log(ref) ** 2)
    # the apparent diffusivity rises with frequency (table O1: 0.384 at 50 Hz, 0.80 at 200 Hz for 20 ms lobes)
    deff = -np.log(ref) / (s.bvalues * D0)
    assert deff[0] < deff[2] < 1.0 and abs(deff[1] - 1.0) < 1e-9


# ------------------------------------------------------------- M1 D(t)
@pytest.mark.parametrize("geometry", ["planes", "cylinder", "sphere"])
def test_M1_restricted_msd(geometry):
    sub = {"planes": su.planes(2 * R, normal=[1, 0, 0]), "cylinder": su.cylinder(R), "sphere": su.sphere(R)}[geometry]
    s = sq.pgse(5e-3, 15e-3, bvalues=[1e8], directions=[1, 0, 0])
    N = 20_000
    times = [1e-3, 5e-3, 20e-3]
    r = walker.simulate(sub, s, n_walkers=N, diffusivity=D0, n_steps=2000, seed=9, record_times=times,
                        gaussian_steps=geometry == "planes")
    msd = r.msd[:, 0]
    se = np.std(r.displacements[:, :, 0] ** 2, axis=0) / np.sqrt(N)
    ref = va.restricted_msd(geometry, R, D0, times)
    table = {"planes": [0.78723, 0.52723, 0.20437], "cylinder": [0.76893, 0.46597, 0.15557],
             "sphere": [0.75007, 0.41259, 0.12488]}[geometry]
    np.testing.assert_allclose(ref / (2 * D0 * np.array(times)), table, atol=6e-6)
    assert np.all(np.abs(msd - ref) <= Z * se), (msd / ref, se / ref)


def test_mitra_short_time_limit_against_exact():
    t = np.array([0.1e-3, 0.5e-3])
    for geometry, table in [("planes", [0.93272, 0.84955]), ("cylinder", [0.93075, 0.84005]),
                            ("sphere", [0.92874, 0.83020])]:
        exact = va.restricted_msd(geometry, R, D0, t) / (2 * D0 * t)
        np.testing.assert_allclose(exact, table, atol=6e-6)
        np.testing.assert_allclose(va.mitra_dt(geometry, R, D0, t), exact, atol=2e-3)


# -------------------------------------------------------- T1 tortuosity
@pytest.mark.filterwarnings("ignore:step length:UserWarning")
def test_T1_hexagonal_tortuosity():
    """D_inf/D0 from the MSD slope over [5, 25] a^2/D0 around a hexagonal array at f = 0.7 (Perrins 0.5736)."""
    a = 1e-6
    sub = su.cylinder_lattice(a, 0.7, "hexagonal")
    gap = sub.smallest_feature
    dt = (0.19 * gap) ** 2 / (6 * D0)  # RMS step per axis 0.11 x gap, as in the reference MC
    t1, t2 = 5 * a**2 / D0, 25 * a**2 / D0
    n = int(np.ceil(t2 / dt))
    n += (-n) % 5  # t1 = t2 / 5 falls on the grid
    s = sq.pgse(t2 / 4, 3 * t2 / 4, bvalues=[1e6], directions=[1, 0, 0])  # lasts t2
    N = 6000
    with pytest.warns(UserWarning, match="edges"):
        r = walker.simulate(sub, s, n_walkers=N, diffusivity=D0, n_steps=n, seed=10, start="extra",
                            record_times=[t2 / 5, t2])
    sq_disp = (r.displacements[:, :, :2] ** 2).sum(axis=2)  # pool x and y
    slope = (sq_disp[:, 1] - sq_disp[:, 0]) / (4 * (t2 - t2 / 5))
    est, se = slope.mean() / D0, slope.std() / np.sqrt(N) / D0
    ref = va.perrins_tortuosity(0.7, "hexagonal")
    assert abs(ref - 0.57361) < 1e-5
    print(f"T1: D_inf/D0 = {est:.4f} +- {se:.4f} (Perrins {ref:.4f})")
    assert abs(est - ref) <= 0.01 * ref + Z * se, (est, ref, se)
    assert r.escapes == 0
