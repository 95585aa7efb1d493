"""Static off-resonance fields: refocusing signs, closed forms against the Fourier kernel, and the walker's phase.

References: the Lorentz-corrected Fourier dipole kernel (scalar and tensor) on a fine periodic grid for the
closed forms of cylinders, spheres and Wharton & Bowtell's hollow cylinder; the exact uniform field inside a
lone cylinder or sheath (a gradient echo's phase is then gamma dB TE for every walker, whatever it does); and
the exact b-value of a pulsed-gradient spin echo on top of a constant background gradient (Stejskal & Tanner's
cross-term).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import sequences as sq
import substrates as su
import validation
import walker
from sequences.constants import GAMMA

D0 = 2e-9


def _run(sub, scheme, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return walker.simulate(sub, scheme, **kw)


# --- the scheme's refocusing pulses --------------------------------------------------------------------------

def test_field_signs_refocus_a_spin_echo_and_not_a_gradient_echo():
    s = sq.pgse(5e-3, 20e-3, bvalues=[0, 1e9], directions=[1.0, 0, 0], echo_time=40e-3)
    assert np.allclose(s.refocusing, 20e-3)  # default: one pulse at TE / 2
    se = s.field_signs()
    assert se.shape == (2, s.n_steps)
    assert abs(se.sum(axis=1) * s.dt).max() < 1e-15  # a static offset cancels at the echo
    assert np.all(se[:, 0] == 1) and np.all(se[:, -1] == -1)  # the applied gradient's sign before the pulse
    ge = s.with_refocusing([])
    assert ge.gradient_echo.all() and not s.gradient_echo.any()
    assert np.allclose(ge.field_signs().sum(axis=1) * s.dt, 40e-3)
    # a pulse inside a step splits it; two pulses; a padded (shorter) measurement counts to its own echo only
    odd = s.with_refocusing([[10.25e-6 * 1000, np.nan], [10e-3, 30e-3]])
    f = odd.field_signs()
    k = int(10.25e-3 // s.dt)
    assert f[0, k] == pytest.approx(((10.25e-3 - k * s.dt) - ((k + 1) * s.dt - 10.25e-3)) / s.dt)
    assert f[1].sum() * s.dt == pytest.approx(10e-3 - 20e-3 + 10e-3, abs=1e-15)
    both = s + sq.pgse(5e-3, 10e-3, bvalues=[1e9], directions=[1.0, 0, 0])
    assert both.field_signs()[2, int(round(15e-3 / both.dt)):].max() == 0.0
    assert abs(both.field_signs()[2].sum()) < 1e-9
    # selections, resampling and rotations keep the pulses
    assert np.array_equal(odd[1].refocusing, odd.refocusing[1:], equal_nan=True)
    assert np.array_equal(odd.resample(100).refocusing, odd.refocusing, equal_nan=True)


def test_refocusing_times_are_checked_by_name():
    s = sq.pgse(5e-3, 20e-3, bvalues=[1e9])
    with pytest.raises(ValueError, match="refocusing.*after its echo time"):
        s.with_refocusing([30e-3])
    with pytest.raises(ValueError, match="refocusing times must be positive"):
        s.with_refocusing([-1e-3])
    with pytest.raises(ValueError, match=r"refocusing must have shape \(M, P\)"):
        sq.Scheme(s.gradients, s.dt, refocusing=np.ones((3, 1)) * 1e-3)


def test_now_waveforms_place_the_pulse_where_rf_flips():
    g = np.zeros((100, 3))
    g[10:20, 0] = g[60:70, 0] = 0.05
    rf = np.ones(100)
    rf[40:] = -1
    s = sq.from_now(g, rf, 1e-4)
    assert np.allclose(s.refocusing, 4e-3)
    assert np.allclose(s.gradients[0, 65], [-0.05, 0, 0])


# --- the closed forms --------------------------------------------------------------------------------------------

def _disk_fraction(n, L, centre, r_in, r_out, ss=4):
    """(n, n) area fraction of the annulus r_in < r < r_out in each cell around the grid nodes i L / n."""
    h = L / n
    off = (np.arange(ss) + 0.5) / ss * h - h / 2
    X, Y = np.meshgrid(np.arange(n) * h, np.arange(n) * h, indexing="ij")
    out = np.zeros((n, n))
    for ox in off:
        for oy in off:
            r = np.hypot(X + ox - centre[0], Y + oy - centre[1])
            out += (r > r_in) & (r < r_out)
    return out / ss**2


def _far_error(exact, grid, dist_to_walls, keep_off):
    """Largest |difference| at points at least ``keep_off`` (m) from every wall, the means of both removed (the
    Fourier map's k = 0 term is zero by construction; the closed forms keep the Lorentz constant). Near a wall
    the rasterised boundary rings over a few cells (Gibbs), so the distance is fixed in m, not in cells."""
    d = (exact - exact.mean()) - (grid - grid.mean())
    return np.abs(d[dist_to_walls > keep_off]).max()


@pytest.mark.parametrize("theta", [np.pi / 2, np.pi / 5])
def test_cylinder_and_myelin_closed_forms_equal_the_fourier_kernel(theta):
    """A lone solid cylinder and a Wharton-Bowtell sheath (isotropic and anisotropic parts) in a periodic box:
    the closed forms summed over 80 box lengths of images against the Fourier kernel of the rasterised
    susceptibility (scalar, and the tensor chi_A (r r - (phi phi + z z) / 2)). At 0.4 um from the walls the
    grid's error falls with the cell size and is within 1 % of the peak field at 256 cells."""
    L, R, ri = 16e-6, 4e-6, 2.8e-6
    b = np.array([np.sin(theta) * np.cos(0.3), np.sin(theta) * np.sin(0.3), np.cos(theta)])
    c = (L / 2, L / 2)
    sub = su.cylinders([R], [c], box=[L, L])
    solid = su.susceptibility_field(sub, chi=-1e-7, b0=3.0, b0_direction=b, image_reach=80 * L)
    sheath = su.susceptibility_field(sub, chi=-1e-7, chi_anisotropic=-1e-7, inner_radii=ri, b0=3.0,
                                     b0_direction=b, image_reach=80 * L)
    rng = np.random.default_rng(3)
    p = rng.uniform(0, L, (3000, 3))
    r = np.hypot(p[:, 0] - c[0], p[:, 1] - c[1])
    errors = {}
    for n in (128, 256):
        h = L / n
        X, Y = np.meshgrid(np.arange(n) * h, np.arange(n) * h, indexing="ij")
        dx, dy = X - c[0], Y - c[1]
        rr = np.maximum(np.hypot(dx, dy), 1e-30)
        frac = _disk_fraction(n, L, c, 0.0, R)[:, :, None]
        grid_solid = su.fourier_field(-1e-7 * frac, box=[L, L, L], b0=3.0, b0_direction=b)
        ring = _disk_fraction(n, L, c, ri, R)
        rhat = np.stack([dx / rr, dy / rr, 0 * rr], -1)
        phat = np.stack([-dy / rr, dx / rr, 0 * rr], -1)
        zhat = np.stack([0 * rr, 0 * rr, 1 + 0 * rr], -1)
        outer = lambda u: u[..., :, None] * u[..., None, :]  # noqa: E731
        tensor = (-1e-7 * np.eye(3) + -1e-7 * (outer(rhat) - 0.5 * (outer(phat) + outer(zhat)))) * ring[..., None, None]
        grid_sheath = su.fourier_field(tensor[:, :, None], box=[L, L, L], b0=3.0, b0_direction=b)
        errors[n] = (_far_error(solid.evaluate(p), grid_solid.evaluate(p), np.abs(r - R), 0.4e-6),
                     _far_error(sheath.evaluate(p), grid_sheath.evaluate(p),
                                np.minimum(np.abs(r - R), np.abs(r - ri)), 0.4e-6))
    peak = (np.abs(solid.evaluate(p)).max(), np.abs(sheath.evaluate(p)).max())
    for k in range(2):
        assert errors[256][k] < errors[128][k]
        assert errors[256][k] < 0.01 * peak[k], (errors, peak)


def test_sphere_closed_form_equals_the_fourier_kernel():
    """A sphere in a periodic box: its dipole field summed over a sphere of images (reach 12 boxes) against the
    Fourier kernel of the rasterised ball on 64^3 nodes; within 2 % of the peak at 0.75 um (4 cells) from the
    wall."""
    L, R = 12e-6, 3e-6
    c = np.full(3, L / 2)
    sub = su.spheres([R], [c], box=[L, L, L])
    b = np.array([0.2, -0.4, 0.9])
    exact = su.susceptibility_field(sub, chi=2e-7, b0=7.0, b0_direction=b, image_reach=12 * L)
    n, ss = 64, 3
    h = L / n
    off = (np.arange(ss) + 0.5) / ss * h - h / 2
    X = np.arange(n) * h
    frac = np.zeros((n, n, n))
    for ox in off:
        for oy in off:
            for oz in off:
                frac += ((X[:, None, None] + ox - c[0]) ** 2 + (X[None, :, None] + oy - c[1]) ** 2
                         + (X[None, None, :] + oz - c[2]) ** 2) < R * R
    grid = su.fourier_field(2e-7 * frac / ss**3, box=[L, L, L], b0=7.0, b0_direction=b)
    p = np.random.default_rng(4).uniform(0, L, (2000, 3))
    dist = np.abs(np.linalg.norm(p - c, axis=1) - R)
    err = _far_error(exact.evaluate(p), grid.evaluate(p), dist, 0.75e-6)
    assert err < 0.02 * np.abs(exact.evaluate(p)).max(), (err, np.abs(exact.evaluate(p)).max())


# --- the walker's phase -----------------------------------------------------------------------------------------

def _sheath_case(theta):
    ri, ro = 2.1e-6, 3e-6
    b = (np.sin(theta), 0.0, np.cos(theta))
    fld = su.susceptibility_field(su.cylinder(ro), chi=-1e-7, chi_anisotropic=-1.5e-7, inner_radii=ri,
                                  b0_direction=b)
    return su.cylinder(ri), fld, 0.75 * -1.5e-7 * 3.0 * np.sin(theta) ** 2 * np.log(ro / ri)


def test_uniform_offsets_inside_a_cylinder_and_a_sheath_are_the_closed_forms():
    """Inside a lone cylinder the offset is uniform, chi B0 (3 cos^2 theta - 1) / 6; inside a lone sheath
    3 chi_A B0 sin^2 theta ln(r_o / r_i) / 4 (Wharton & Bowtell), whatever the isotropic part."""
    theta, ro = 1.1, 3e-6
    b = (np.sin(theta), 0.0, np.cos(theta))
    p = np.random.default_rng(2).uniform(-1.4e-6, 1.4e-6, (500, 3))
    solid = su.susceptibility_field(su.cylinder(ro), chi=-5e-7, b0_direction=b)
    np.testing.assert_allclose(solid.evaluate(p), -5e-7 * 3.0 * (3 * np.cos(theta) ** 2 - 1) / 6, rtol=1e-12)
    _, sheath, inside = _sheath_case(theta)
    np.testing.assert_allclose(sheath.evaluate(p), inside, rtol=1e-12)


def _uniform_cases():
    """(name, substrate, field, its uniform offset where the walkers are): a sheath's interior, a mesh and a
    union with a uniform offset (every family's kernel)."""
    sub, fld, inside = _sheath_case(1.1)
    off = su.background_gradient([0.0, 0.0, 0.0], offset=2.5e-7)
    ico = su.meshed_sphere(3e-6, subdivisions=1)
    z = np.arange(4) * 1e-6
    union = su.sphere_union(np.column_stack([np.full(4, 2e-6), np.full(4, 2e-6), z]), np.full(4, 1.5e-6),
                            [5e-6, 5e-6, 4e-6])
    return [("sheath", sub, fld, inside), ("mesh", ico, off, 2.5e-7), ("union", union, off, 2.5e-7)]


@pytest.mark.skipif(not walker.cuda_backend.available(), reason="no CUDA device and no simulator")
@pytest.mark.parametrize("case", range(3), ids=["sheath", "mesh", "union"])
def test_a_uniform_offset_dephases_a_gradient_echo_exactly_and_a_spin_echo_not_at_all(case):
    """Where the offset is uniform every walker, whatever its path, gains gamma dB TE in a gradient echo (S =
    cos, imag = sin of it, to rounding) and nothing in a spin echo. Exact per walker, so a few walkers do: run
    on the CUDA backend (numba's simulator in CI, which executes each family's own per-walker code with its
    field branch, without compiling another CPU variant)."""
    name, sub, fld, inside = _uniform_cases()[case]
    te = 30e-3
    s = sq.pgse(4e-3, 12e-3, bvalues=[0.0, 1e9], directions=[[1.0, 0, 0], [0, 1, 0]], echo_time=te)
    scheme = s + s.with_refocusing([])
    kw = dict(n_walkers=12, diffusivity=D0, n_steps=40, seed=5, backend="cuda")
    plain = _run(sub, scheme, **kw)
    res = _run(sub, scheme, field=fld, **kw)
    assert res.escapes == 0
    phi = GAMMA * inside * te
    assert abs(phi) > 0.5, name  # a real test: the echo loses a good part of its signal
    np.testing.assert_allclose(res.signal[:2], plain.signal[:2], rtol=0, atol=1e-12)  # spin echo
    np.testing.assert_allclose(res.signal_imag[:2], plain.signal_imag[:2], rtol=0, atol=1e-12)
    # gradient echo: the b = 0 signal is exactly exp(i phi); with diffusion weighting, times the walk's own
    np.testing.assert_allclose(res.signal[2], np.cos(phi), rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.signal_imag[2], np.sin(phi), rtol=0, atol=1e-12)
    z = (plain.signal[3] + 1j * plain.signal_imag[3]) * np.exp(1j * phi)
    np.testing.assert_allclose([res.signal[3], res.signal_imag[3]], [z.real, z.imag], rtol=0, atol=1e-12)


def test_background_gradient_adds_the_exact_cross_term_of_a_pulsed_gradient_spin_echo():
    """Free walkers from one point under a PGSE and a constant background gradient G0 (the field offset's
    gradient): S = exp(-b D) with b from q(t) = gamma * integral of (G_eff + s(t) G0), cross-term included
    (Stejskal & Tanner 1965). The cross-term's sign follows G0 (parallel and antiparallel differ), a
    perpendicular G0 adds only its own term, and a gradient echo (no pulse) keeps the background uncompensated.
    The walker's field phase also equals, to rounding, the gradient phase of the same run with G0 folded into
    the scheme's waveforms."""
    delta, Delta, te = 6e-3, 20e-3, 30e-3
    G = 0.06
    s = sq.pgse(delta, Delta, gradient_strength=[G, G], directions=[[1.0, 0, 0], [0, 0, 1.0]], echo_time=te)
    t1 = 0.5 * (te - Delta - delta)
    n_steps = 600
    x = np.array([1.0, 0, 0])
    parallel, anti = (np.exp(-_b_from_start(G * x, g0 * x, delta, Delta, te, t1, te / 2) * D0) for g0 in (4e-3, -4e-3))
    assert anti - parallel > 0.1  # the cross-term is large against the Monte Carlo error (about 0.0013)
    for G0 in ([0.004, 0.0, 0.0], [-0.004, 0.0, 0.0], [0.0, 0.0, 0.004]):
        G0 = np.array(G0)
        fld = su.background_gradient(G0)
        for scheme, tau in ((s, te / 2), (s.with_refocusing([]), np.inf)):
            res = _run(su.free(), scheme, n_walkers=40_000, diffusivity=D0, n_steps=n_steps, seed=9, field=fld)
            for m, u in enumerate(([1.0, 0, 0], [0, 0, 1.0])):
                ref = np.exp(-_b_from_start(G * np.array(u), G0, delta, Delta, te, t1, tau) * D0)
                assert abs(res.signal[m] - ref) <= 4.5 * res.stderr[m] + _STEP_ALLOWANCE * ref, \
                    (G0, tau, m, res.signal[m], ref)
            # the same physics as a gradient folded into the waveform (exact to rounding)
            signs = scheme.resample(n_steps).field_signs()
            played = scheme.resample(n_steps)
            folded = sq.Scheme(played.gradients + signs[:, :, None] * G0, played.dt, played.gamma, played.info,
                               refocusing=played.refocusing)
            ref_run = _run(su.free(), folded, n_walkers=2000, diffusivity=D0, n_steps=n_steps, seed=9)
            run = _run(su.free(), scheme, n_walkers=2000, diffusivity=D0, n_steps=n_steps, seed=9, field=fld)
            np.testing.assert_allclose(run.signal, ref_run.signal, rtol=0, atol=1e-10)


#: relative allowance for the time grid and the steps: the walker weighs positions at 600 grid points
#: (trapezoid), whose Gaussian-increment b differs from the continuous one by 1.5e-6 of the signal for these
#: waveforms (computed once, exactly); fixed-length steps add an O(1/n_steps) excess kurtosis, of order
#: (b D)^2 / 600 = 3e-4 here: 1e-3 covers both
_STEP_ALLOWANCE = 1e-3


def _b_from_start(G, G0, delta, Delta, te, t1, tau):
    """b (s/m^2) of walkers that start together at t = 0 (the excitation): pulses at t1 and t1 + Delta, the
    background throughout with its sign flipped at tau. The phase is the integral of (q(TE) - q(t)) . dx(t),
    so b = integral of |q(TE) - q(t)|^2 dt (q(TE) = 0 for a spin echo; not for a gradient echo, whose
    background is not refocused); q is piecewise linear, so Simpson's rule on every piece is exact."""
    cuts = np.unique([0, t1, t1 + delta, t1 + Delta, t1 + Delta + delta, min(tau, te), te])
    q = [np.zeros(3)]
    mids = []
    for a, c in zip(cuts[:-1], cuts[1:]):
        m = 0.5 * (a + c)
        g = (G if t1 <= m < t1 + delta else (-G if t1 + Delta <= m < t1 + Delta + delta else 0.0 * G)) \
            + (G0 if m < tau else -G0)
        mids.append(q[-1] + GAMMA * g * (c - a) / 2)
        q.append(q[-1] + GAMMA * g * (c - a))
    end = q[-1]
    return sum((c - a) / 6 * (np.sum((end - q[k]) ** 2) + 4 * np.sum((end - mids[k]) ** 2)
                              + np.sum((end - q[k + 1]) ** 2))
               for k, (a, c) in enumerate(zip(cuts[:-1], cuts[1:])))


def test_a_zero_field_leaves_the_run_bit_identical():
    sub = su.cylinder_lattice(2e-6, 0.6, repeats=2)
    s = sq.pgse(5e-3, 15e-3, bvalues=[0, 1e9, 2e9], directions=np.eye(3))
    a = _run(sub, s, n_walkers=500, diffusivity=D0, n_steps=80, seed=2, start="uniform")
    b = _run(sub, s, n_walkers=500, diffusivity=D0, n_steps=80, seed=2, start="uniform",
             field=su.susceptibility_field(sub, chi=0.0))
    for name in ("signal", "stderr", "signal_imag", "final_positions"):
        assert np.array_equal(getattr(a, name), getattr(b, name))


def test_field_inputs_are_checked_by_name():
    sub = su.cylinder_lattice(2e-6, 0.6)
    with pytest.raises(ValueError, match="multiply values in ppm by 1e-6"):
        su.susceptibility_field(sub, chi=-0.1)
    with pytest.raises(ValueError, match="not mT"):
        su.susceptibility_field(sub, chi=-1e-7, b0=3000)
    with pytest.raises(ValueError, match="1 mT/m = 1e-3 T/m"):
        su.background_gradient([0, 0, 5.0])
    with pytest.raises(ValueError, match="inner_radii must be positive and smaller"):
        su.susceptibility_field(sub, chi=-1e-7, inner_radii=5e-6)
    with pytest.raises(ValueError, match="chi_anisotropic needs inner_radii"):
        su.susceptibility_field(sub, chi=-1e-7, chi_anisotropic=-1e-7)
    with pytest.raises(ValueError, match="fourier_field"):
        su.susceptibility_field(su.free(), chi=-1e-7)
    with pytest.raises(ValueError, match="needs a periodic substrate"):
        su.susceptibility_map(su.cylinder(2e-6), chi=-1e-7, voxel=0.2e-6)
    with pytest.raises(ValueError, match=r"lengths are in m \(0.25 um = 0.25e-6\)"):
        su.susceptibility_map(su.sphere_lattice(2e-6, 0.3), chi=-1e-7, voxel=0.2)
    with pytest.raises(ValueError, match="supersample must be a positive integer"):
        su.susceptibility_map(su.sphere_lattice(2e-6, 0.3), chi=-1e-7, voxel=0.2e-6, supersample=0)
    with pytest.raises(ValueError, match="divide a map in Hz"):
        su.field_map(np.full((4, 4, 4), 50.0), box=[1e-5] * 3)
    with pytest.raises(ValueError, match="lengths are in m"):
        su.field_map(np.zeros((4, 4, 4)), box=[10.0] * 3)
    s = sq.pgse(5e-3, 15e-3, bvalues=[1e9])
    with pytest.raises(ValueError, match="field must be a substrates.Field"):
        walker.simulate(sub, s, n_walkers=10, diffusivity=D0, n_steps=20, field=np.zeros(3))
    other = su.field_map(np.zeros((4, 4, 4)) + 1e-8, box=[1e-5] * 3)
    with pytest.raises(ValueError, match="not the substrate's box"):
        walker.simulate(sub, s, n_walkers=10, diffusivity=D0, n_steps=20, field=other)


def test_field_statistics_report_each_compartment():
    sub = su.cylinder_lattice(2e-6, 0.5)
    fld = su.susceptibility_field(sub, chi=-1e-7, b0_direction=(1, 0, 0))
    stats = su.field_statistics(fld, sub, n=2000)
    assert set(stats) == set(sub.compartments)
    inside = -1e-7 * 3.0 * (0 - 1) / 6
    # inside, the own field is uniform; the lattice's images add a small spread
    assert stats["intra"]["mean_T"] == pytest.approx(inside, rel=0.1)
    assert stats["extra"]["std_T"] > stats["intra"]["std_T"]
    with pytest.raises(ValueError, match="times must be echo times in s"):
        su.field_statistics(fld, sub, n=100, times=[30.0])  # ms given as s
    with pytest.raises(ValueError, match="geometry must be 'spheres' or 'cylinders'"):
        validation.static_dephasing(1.0, "cubes")


def test_each_compartments_signal_with_a_field_is_its_static_signal():
    """Nearly still spins (D = 1e-13 m^2/s) everywhere in a cylinder lattice under its own field (chi 1 ppm,
    B0 across the cylinders): each compartment's gradient echo is the static signal field_statistics samples
    there (the transform of that compartment's frequency histogram), within both draws' errors (the
    sample's: at most 1 / sqrt(n)) and the motion allowance (four times the spin echo's loss, as below)."""
    sub = su.cylinder_lattice(2e-6, 0.5)
    fld = su.susceptibility_field(sub, chi=1e-6, b0=3.0, b0_direction=(1.0, 0.0, 0.0))
    tes = np.array([5e-3, 20e-3])
    ge = sq.concatenate([sq.pgse(0.5e-3, 0.5e-3, bvalues=[0.0], echo_time=te, dt=0.5e-3).with_refocusing([])
                         for te in tes])
    se = sq.pgse(0.5e-3, 0.5e-3, bvalues=[0.0], echo_time=tes[-1], dt=0.5e-3)
    res = _run(sub, ge + se, n_walkers=6000, diffusivity=1e-13, n_steps=40, seed=4, start="uniform", field=fld)
    stats = su.field_statistics(fld, sub, n=20_000, times=tes, seed=1)
    motion = 1.0 - np.hypot(res.signal[-1], res.signal_imag[-1])
    for comp in ("intra", "extra"):
        got, err = res.compartment_signals[comp][:2], res.compartment_stderr[comp][:2]
        ref = stats[comp]["static_signal"].real
        assert np.all(np.abs(got - ref) <= 4.5 * np.hypot(err, 1 / np.sqrt(20_000)) + 4 * motion), (comp, got, ref)
    # a real test: the compartments dephase differently (the inside is nearly uniform, its phase turns)
    assert abs(stats["intra"]["static_signal"][1].real - stats["extra"]["static_signal"][1].real) > 0.2


# --- maps: sampled closed forms, rasterised substrates, files ---------------------------------------------------

def test_a_sampled_field_is_exact_at_its_nodes_and_converges_between_them():
    sub = su.cylinder_lattice(2e-6, 0.6)
    fld = su.susceptibility_field(sub, chi=-1e-7, b0_direction=(1, 0, 1))
    coarse, fine = fld.sampled((32, 32, 1)), fld.sampled((128, 128, 1))
    nodes = np.stack(np.meshgrid(np.arange(32) * sub.box[0] / 32, np.arange(32) * sub.box[1] / 32, [0.0],
                                 indexing="ij"), -1).reshape(-1, 3)
    np.testing.assert_allclose(coarse.evaluate(nodes), fld.evaluate(nodes), rtol=1e-12, atol=1e-22)
    p = np.random.default_rng(0).uniform(0, 1, (4000, 3)) * np.array([sub.box[0], sub.box[1], 1e-5])
    err = [np.mean(np.abs(f.evaluate(p) - fld.evaluate(p))) for f in (coarse, fine)]
    assert err[1] < 0.5 * err[0]
    with pytest.raises(ValueError, match="not periodic along axis 2"):
        fld.sampled((8, 8, 8))


def _sphere_check(fld, c, R, L, b, keep_off):
    exact = su.susceptibility_field(su.spheres([R], [c], box=[L, L, L]), chi=1e-7, b0_direction=b)
    p = np.random.default_rng(1).uniform(0, L, (3000, 3))
    dist = np.abs(np.linalg.norm(p - c, axis=1) - R)
    return _far_error(exact.evaluate(p), fld.evaluate(p), dist, keep_off) / np.abs(exact.evaluate(p)).max()


def test_rasterised_meshes_and_unions_give_the_closed_form_sphere_field():
    """susceptibility_map of a sphere as a union (exact geometry) and as an icosphere mesh (polygon error
    0.1 % of the volume at 4 subdivisions) against the closed form: within 2 % of the peak at 4 voxels from
    the wall, at 0.2-um voxels."""
    L, R = 8e-6, 2e-6
    c = np.full(3, L / 2)
    b = (0.3, 0.1, 1.0)
    union = su.sphere_union([c], [R], box=[L, L, L])
    ico = su.meshed_sphere(R, subdivisions=4)
    mesh = su.mesh_substrate(ico.vertices + c, ico.faces, box=[L, L, L])
    for sub in (union, mesh):
        fld = su.susceptibility_map(sub, chi=1e-7, voxel=0.2e-6, b0_direction=b)
        assert fld.values.shape == (40, 40, 40)
        assert _sphere_check(fld, c, R, L, b, 0.8e-6) < 0.02


def test_field_maps_round_trip_through_npz_and_nifti(tmp_path):
    sub = su.cylinder_lattice(2e-6, 0.6)
    fld = su.susceptibility_field(sub, chi=-1e-7, b0=7.0, b0_direction=(1, 0, 0)).sampled((16, 12, 1))
    su.save_field_map(fld, tmp_path / "f.npz")
    back = su.read_field_map(tmp_path / "f.npz")
    assert back.b0 == 7.0 and np.array_equal(back.values, fld.values) and np.allclose(back.box, fld.box)
    assert not list(tmp_path.glob("*.part*"))
    nib = pytest.importorskip("nibabel")
    hz = fld.values * GAMMA / (2 * np.pi)
    affine = np.diag([fld.spacing[0] * 1e3, fld.spacing[1] * 1e3, 1e-3, 1.0])  # mm; z: any (one node)
    affine[:3, 3] = [0.001, 0.002, 0.0]
    nib.save(nib.Nifti1Image(hz, affine), tmp_path / "f.nii.gz")
    with pytest.raises(ValueError, match="give units="):
        su.read_field_map(tmp_path / "f.nii.gz")
    nii = su.read_field_map(tmp_path / "f.nii.gz", units="Hz", b0=7.0)
    np.testing.assert_allclose(nii.values, fld.values, rtol=1e-12, atol=1e-24)
    np.testing.assert_allclose(nii.origin, [1e-6, 2e-6, 0.0])
    np.testing.assert_allclose(nii.box[:2], fld.box[:2])
    rot = affine.copy()
    rot[:2, :2] = [[0, 1], [1, 0]]
    nib.save(nib.Nifti1Image(hz, rot), tmp_path / "r.nii.gz")
    with pytest.raises(ValueError, match="reorient the map"):
        su.read_field_map(tmp_path / "r.nii.gz", units="Hz")
    with pytest.raises(ValueError, match="writes .npz"):
        su.save_field_map(fld, tmp_path / "f.txt")


# --- configs and sweeps -------------------------------------------------------------------------------------------

_CONFIG = """
[substrate]
type = "cylinder_lattice"
radius = "2 um"
icvf = 0.6

[[scheme]]
type = "pgse"
delta = "4 ms"
Delta = "12 ms"
bvalues = "0 1000 s/mm^2"
directions = 2
echo_time = "30 ms"

[[scheme]]
type = "pgse"
delta = "4 ms"
Delta = "12 ms"
bvalues = "0 s/mm^2"
echo_time = "30 ms"
gradient_echo = true

[simulation]
n_walkers = 400
n_steps = 150
diffusivity = "2 um^2/ms"
start = "uniform"

[field]
type = "susceptibility"
chi = "-0.1 ppm"
chi_anisotropic = "-0.1 ppm"
g_ratio = 0.7
b0 = "7 T"
b0_direction = [1, 0, 0]
sampled = [48, 48, 1]
"""


def test_a_config_field_is_built_swept_and_recorded(tmp_path):
    import tomllib

    from diffwalk import config as cfgmod
    from diffwalk import database
    from diffwalk.sweep import run_sweep
    job = cfgmod.parse_job(tomllib.loads(_CONFIG))
    assert job.field.values.shape == (48, 48, 1) and job.field.b0 == 7.0
    assert list(job.scheme.gradient_echo) == [False] * 3 + [True]
    direct = su.susceptibility_field(job.substrate, -1e-7, 7.0, (1, 0, 0), chi_anisotropic=-1e-7,
                                     inner_radii=0.7 * job.substrate.radii).sampled((48, 48, 1))
    assert np.array_equal(job.field.values, direct.values)
    assert "[field] type=susceptibility, chi=-1e-07 SI" in cfgmod.echo_text(job)
    # a sweep over the susceptibility of spheres (the sphere kernel with a field is the one the static-dephasing
    # test compiles; cylinders would compile another)
    spheres = (_CONFIG.replace('type = "cylinder_lattice"\nradius = "2 um"\nicvf = 0.6',
                               'type = "sphere_lattice"\nradius = "2 um"\nvolume_fraction = 0.3')
               .replace('chi_anisotropic = "-0.1 ppm"\ng_ratio = 0.7\n', "")
               .replace("sampled = [48, 48, 1]", "sampled = [24, 24, 24]"))
    sweep = spheres + '\n[sweep]\nseeds = [0]\n[sweep.grid]\n"field.chi" = ["0.3 ppm", "1 ppm"]\n'
    db = database.open_database(run_sweep(sweep, tmp_path / "f.h5"))
    assert db.done.all()
    np.testing.assert_allclose(db.params["field.chi"], [3e-7, 1e-6])
    # the gradient echo at b = 0 loses more signal to the stronger field
    assert db.signal[1, 3] < db.signal[0, 3] - 0.02
    job = cfgmod.parse_job(tomllib.loads(spheres))
    res = _run(job.substrate, job.scheme, n_walkers=50, n_steps=30, diffusivity=D0, field=job.field)
    assert res.provenance["field"]["b0_T"] == 7.0 and res.provenance["field"]["gradient_echoes"] == 1
    with pytest.raises(cfgmod.ConfigError, match="field.type = 'magnet'"):
        cfgmod.parse_job(tomllib.loads(_CONFIG.replace('type = "susceptibility"', 'type = "magnet"')))
    with pytest.raises(cfgmod.ConfigError, match="field.chi"):
        cfgmod.parse_job(tomllib.loads(_CONFIG.replace('chi = "-0.1 ppm"', "chi = -0.1")))
    with pytest.raises(cfgmod.ConfigError, match="multiply values in ppm by 1e-6"):
        cfgmod.parse_job(tomllib.loads(_CONFIG.replace('chi = "-0.1 ppm"', 'chi = "-0.1 SI"')))


# --- static dephasing -----------------------------------------------------------------------------------------

def _random_centres(n, radius, L, dims, seed):
    """n centres drawn uniformly in a periodic cube of side L, each new one kept only if it overlaps none
    before it (random sequential addition of spheres or disks of ``radius``)."""
    rng = np.random.default_rng(seed)
    centers = []
    while len(centers) < n:
        c = rng.uniform(0, L, dims)
        if all(np.linalg.norm((c - o + L / 2) % L - L / 2) > 2 * radius for o in centers):
            centers.append(c)
    return np.array(centers)


def test_gradient_echoes_among_random_spheres_follow_the_static_dephasing_theory():
    """Spheres (R = 3 um, chi 1 ppm at 3 T) placed at random without overlap at volume fraction 0.02 in a
    periodic box; walkers everywhere, D = 1e-13 m^2/s (delta_omega R^2 / D = 2.4e4: static). Gradient echoes
    from TE = 1 to 60 ms span the Gaussian short-time regime (x = delta_omega TE = 0.27) to the linear R2'
    one (x = 16). |S| must follow Yablonskiy & Haacke's dilute-limit exp(-zeta f(x)) within 4.5 standard
    errors plus the allowances: the finite density (pairs of spheres within each other's dephasing range,
    O(zeta^2): zeta * 2 (zeta f) relative, i.e. 4 % of -ln S), and the walkers' motion (a spin echo's loss,
    measured in the same run, bounds what motion changes)."""
    R, zeta, chi, b0 = 3e-6, 0.02, 1e-6, 3.0
    L = 60e-6
    n = int(round(zeta * L**3 / (4 / 3 * np.pi * R**3)))
    sub = su.spheres(np.full(n, R), _random_centres(n, R, L, 3, seed=7), box=[L, L, L])
    zeta_real = n * 4 / 3 * np.pi * R**3 / L**3
    fld = su.susceptibility_field(sub, chi=chi, b0=b0, image_reach=1.5 * L)
    tes = np.array([1e-3, 3e-3, 10e-3, 30e-3, 60e-3])
    ge = sq.concatenate([sq.pgse(0.5e-3, 0.5e-3, bvalues=[0.0], echo_time=te, dt=0.5e-3).with_refocusing([])
                         for te in tes])
    se = sq.pgse(0.5e-3, 0.5e-3, bvalues=[0.0], echo_time=60e-3, dt=0.5e-3)
    res = _run(sub, ge + se, n_walkers=10_000, diffusivity=1e-13, n_steps=120, seed=3, start="uniform",
               field=fld)
    assert res.escapes == 0
    mag = np.hypot(res.signal, res.signal_imag)
    motion = 1.0 - mag[-1]  # what diffusion leaves of a refocused static field
    x = GAMMA * chi * b0 / 3 * tes
    for k in range(len(tes)):
        ref, qerr = zeta_real * validation.static_dephasing(x[k], "spheres"), 1e-8
        expected = np.exp(-ref)
        allowance = expected * (2 * zeta_real * ref + motion) + qerr
        assert abs(mag[k] - expected) <= 4.5 * res.stderr[k] + allowance, (tes[k], mag[k], expected, allowance)
    # both regimes are visited: the theory's short- and long-time limits hold at the ends
    assert validation.static_dephasing(x[0]) == pytest.approx(0.4 * x[0] ** 2, rel=0.05)
    assert validation.static_dephasing(x[-1]) == pytest.approx(2 * np.pi / (3 * np.sqrt(3)) * x[-1] - 1,
                                                                     rel=0.05)


def _random_cylinders(n, a, L, seed):
    return su.cylinders(np.full(n, a), _random_centres(n, a, L, 2, seed), box=[L, L])


def test_gradient_echoes_among_random_cylinders_follow_the_static_dephasing_theory():
    """Parallel cylinders (a = 3 um, chi 1 ppm at 3 T, B0 perpendicular) placed at random without overlap at
    area fraction 0.03 in a periodic box; walkers outside them, D = 1e-13 m^2/s (delta_omega a^2 / D = 3.6e4:
    static). Gradient echoes from TE = 1 to 40 ms go from the Gaussian regime (x = 0.4) to the linear one
    (x = 16), where field_statistics' R2' (zeta delta_omega) is the slope.

    Yablonskiy & Haacke's exp(-zeta f(x)) is the mean over random placements: one box of 7 cylinders differs
    from it by 10-15 % of -ln S (measured), so the signal is averaged over 8 independent placements and its
    standard error is their spread / sqrt(8) (walker noise included). It must hold within 4.5 of those plus
    the allowances: finite density (O(zeta) of -ln S, taken as 2 zeta, as for spheres) and the walkers'
    motion. A Brownian displacement's phase error has a variance 4 times larger in a gradient echo than in a
    spin echo of the same length (the integrals of F(t)^2: T^3/3 against T^3/12), so four times the spin
    echo's measured loss bounds it."""
    a, zeta, chi, b0 = 3e-6, 0.03, 1e-6, 3.0
    L = 80e-6
    n = int(round(zeta * L**2 / (np.pi * a**2)))
    zeta_real = n * np.pi * a**2 / L**2
    delta_omega = GAMMA * chi * b0 / 2
    tes = np.array([1e-3, 3e-3, 10e-3, 20e-3, 40e-3])
    ge = sq.concatenate([sq.pgse(0.5e-3, 0.5e-3, bvalues=[0.0], echo_time=te, dt=0.5e-3).with_refocusing([])
                         for te in tes])
    se = sq.pgse(0.5e-3, 0.5e-3, bvalues=[0.0], echo_time=tes[-1], dt=0.5e-3)
    signals, motion = [], []
    for seed in range(8):
        sub = _random_cylinders(n, a, L, 11 + seed)
        fld = su.susceptibility_field(sub, chi=chi, b0=b0, b0_direction=(1.0, 0.0, 0.0), image_reach=3 * L)
        res = _run(sub, ge + se, n_walkers=2500, diffusivity=1e-13, n_steps=80, seed=3, start="extra",
                   field=fld)
        assert res.escapes == 0
        signals.append(res.signal[:-1] + 1j * res.signal_imag[:-1])
        motion.append(1.0 - np.hypot(res.signal[-1], res.signal_imag[-1]))
        if seed == 0:
            # field_statistics' R2' is Yablonskiy & Haacke's slope, and its static signal (sampled, no walk) is
            # this placement's: within both draws' errors (its points: at most 1 / sqrt(n)) and the motion
            stats = su.field_statistics(fld, sub, n=20_000, times=[tes[-1]])
            assert stats["extra"]["r2prime_per_s"] == pytest.approx(zeta_real * delta_omega, rel=1e-12)
            assert (abs(abs(stats["extra"]["static_signal"][0]) - abs(signals[0][-1]))
                    <= 4.5 * np.hypot(res.stderr[-2], 1 / np.sqrt(20_000)) + 4 * motion[0])
    signals = np.array(signals)
    mean = signals.real.mean(axis=0)
    stderr = signals.real.std(axis=0, ddof=1) / np.sqrt(len(signals))
    x = delta_omega * tes
    for k in range(len(tes)):
        ref, qerr = zeta_real * validation.static_dephasing(x[k], "cylinders"), 1e-8
        expected = np.exp(-ref)
        allowance = expected * (2 * zeta_real * ref + 4 * np.mean(motion)) + qerr
        assert abs(mean[k] - expected) <= 4.5 * stderr[k] + allowance, (tes[k], mean[k], expected, allowance)
    # both regimes are visited: the theory's limits hold at the ends
    assert validation.static_dephasing(x[0], "cylinders") == pytest.approx(x[0] ** 2 / 4, rel=0.05)
    assert validation.static_dephasing(x[-1], "cylinders") == pytest.approx(x[-1] - 1, rel=0.05)


def _sheath_echo(t, ri, ro, rmax, chi_i, chi_a, b0, theta):
    """Exact gradient echo of static spins spread uniformly over the disk r < rmax around one myelin sheath
    (inner radius ri, outer ro; Wharton & Bowtell's field): the axon's uniform offset, and over the sheath
    and the outside, dB = A(r) + C(r) cos 2 phi, whose mean of exp(i gamma t dB) over phi is
    exp(i gamma t A) J0(gamma t C). Returns (complex signal, quadrature error)."""
    from scipy import integrate, special
    s2, c2 = np.sin(theta) ** 2, np.cos(theta) ** 2
    w = GAMMA * t * b0
    w_in = w * 0.75 * chi_a * s2 * np.log(ro / ri)

    def sheath(r, part):
        q = ri**2 / r**2
        A = 0.5 * chi_i * (c2 - 1 / 3) + chi_a * (s2 * (-5 / 12 + 0.75 * np.log(ro / r)) - c2 / 6)
        C = s2 * (-0.5 * chi_i * q - chi_a * (1 + q) / 8)
        z = np.exp(1j * w * A) * special.j0(w * C) * r
        return z.real if part == 0 else z.imag

    def outside(r):
        return special.j0(w * (chi_i + chi_a / 4) * s2 * (ro**2 - ri**2) / (2 * r**2)) * r

    re, e1 = integrate.quad(sheath, ri, ro, args=(0,), limit=200)
    im, e2 = integrate.quad(sheath, ri, ro, args=(1,), limit=200)
    out, e3 = integrate.quad(outside, ro, rmax, limit=200) if rmax > ro else (0.0, 0.0)
    total = np.pi * ri**2 * np.exp(1j * w_in) + 2 * np.pi * (re + 1j * im + out)
    return total / (np.pi * rmax**2), 2 * np.pi * (e1 + e2 + e3) / (np.pi * rmax**2)


@pytest.mark.parametrize("rmax", [5e-6, 10e-6], ids=["axon-and-myelin", "with-outside"])
def test_the_frequencies_in_and_around_a_myelin_sheath_are_wharton_and_bowtells(rmax):
    """Static spins spread over the disk inside a sheath's outer surface (the axon and the myelin), and over a
    disk twice as wide (adding the water outside): their gradient echoes, the Fourier transform of the
    frequency histogram, must be the exact transform of Wharton & Bowtell's field (isotropic and anisotropic
    chi, B0 at 70 degrees to the axon) at every TE, real and imaginary parts, within 4.5 standard errors plus
    the motion allowance (four times the spin echo's loss, as above) and the quadrature error. The imaginary
    part's standard error is bounded by sqrt((1 - |S|^2) / N)."""
    ri, ro, chi_i, chi_a, b0, theta = 3.5e-6, 5e-6, -1e-7, -1e-7, 7.0, np.radians(70)
    b = (np.sin(theta), 0.0, np.cos(theta))
    fld = su.susceptibility_field(su.cylinder(ro), chi=chi_i, chi_anisotropic=chi_a, inner_radii=ri, b0=b0,
                                  b0_direction=b)
    tes = np.array([2e-3, 5e-3, 10e-3, 20e-3, 40e-3])
    ge = sq.concatenate([sq.pgse(0.5e-3, 0.5e-3, bvalues=[0.0], echo_time=te, dt=0.5e-3).with_refocusing([])
                         for te in tes])
    se = sq.pgse(0.5e-3, 0.5e-3, bvalues=[0.0], echo_time=tes[-1], dt=0.5e-3)
    N = 20_000
    res = _run(su.cylinder(rmax), ge + se, n_walkers=N, diffusivity=1e-13, n_steps=80, seed=8, start="intra",
               field=fld)
    assert res.escapes == 0
    motion = 1.0 - np.hypot(res.signal[-1], res.signal_imag[-1])
    for k, te in enumerate(tes):
        ref, qerr = _sheath_echo(te, ri, ro, rmax, chi_i, chi_a, b0, theta)
        se_im = np.sqrt(max(1.0 - res.signal[k] ** 2 - res.signal_imag[k] ** 2, 0.0) / N)
        allow = 4 * motion + qerr
        assert abs(res.signal[k] - ref.real) <= 4.5 * res.stderr[k] + allow, (te, res.signal[k], ref)
        assert abs(res.signal_imag[k] - ref.imag) <= 4.5 * se_im + allow, (te, res.signal_imag[k], ref)
    # a real test: the field dephases the longest echo by a good part, with a phase of its own
    ref, _ = _sheath_echo(tes[-1], ri, ro, rmax, chi_i, chi_a, b0, theta)
    assert abs(ref) < 0.8 and abs(ref.imag) > 0.1


def test_gradient_echoes_in_the_motional_narrowing_regime_follow_the_gaussian_phase_result():
    """Water diffusing freely through a cubic lattice of spheres (R = 2 um, volume fraction 0.1) whose dipole
    fields (chi 0.28 ppm at 3 T) are sampled on a 32^3 periodic map: delta_omega tau = 0.15 with tau = R^2 /
    D, the motional-narrowing regime, where the phase is Gaussian (Kiselev & Posse 1998; Ziener et al.
    2005). Gradient echoes from TE = tau to 30 tau must follow the Gaussian-phase result for this field,
    computed exactly for the discrete walk from the map's Fourier series, within 4.5 standard errors plus
    the non-Gaussian remainder (of relative order (delta_omega tau)^2). Free walkers see the periodic field
    from points spread uniformly over its period."""
    R, zeta, D, b0 = 2e-6, 0.1, 2e-9, 3.0
    tau = R**2 / D
    chi = 3 * 0.15 / tau / (GAMMA * b0)  # delta_omega = gamma chi B0 / 3 = 0.15 / tau
    fld = su.susceptibility_field(su.sphere_lattice(R, zeta), chi=chi, b0=b0).sampled((32, 32, 32))
    dt = 1e-5
    tes = np.array([2e-3, 6e-3, 20e-3, 60e-3])
    ge = sq.concatenate([sq.pgse(dt, dt, bvalues=[0.0], echo_time=te, dt=dt).with_refocusing([]) for te in tes])
    res = _run(su.free(), ge, n_walkers=20_000, diffusivity=D, n_steps=6000, seed=2, field=fld)
    ref = validation.gaussian_phase_attenuation(fld.values, fld.box, D, tes, dt=dt)
    mag = np.hypot(res.signal, res.signal_imag)
    expected = np.exp(-ref)
    allowance = expected * 0.15**2 * ref
    assert np.all(np.abs(mag - expected) <= 4.5 * res.stderr + allowance), (mag, expected, res.stderr)
    # a real test: the phase variance grows linearly at long times (motional narrowing), 40 times the
    # signal's standard error at the last echo
    assert ref[-1] > 40 * res.stderr[-1] / mag[-1]
    slope = (ref[-1] - ref[-2]) / (tes[-1] - tes[-2])
    assert 0.9 < slope * tes[-1] / ref[-1] < 1.3


def test_the_gaussian_phase_reference_is_exact_for_a_cosine_field():
    """dB = B cos(k x): half the phase variance of free diffusion is gamma^2 B^2 (a t - 1 + e^(-a t)) /
    (2 a^2) with a = D k^2 (the grid's interpolation error is of order (k h)^2 / 12 here: 64 nodes a
    period); the discrete walk tends to it as dt shrinks."""
    B, L, D = 2e-8, 8e-6, 2e-9
    x = np.arange(64) * L / 64
    v = B * np.cos(2 * np.pi * x / L)[:, None, None] * np.ones((64, 1, 1))
    t = np.array([1e-3, 10e-3, 50e-3])
    a = D * (2 * np.pi / L) ** 2
    exact = GAMMA**2 * B**2 * (a * t - 1 + np.exp(-a * t)) / (2 * a**2)
    got = validation.gaussian_phase_attenuation(v, [L, 1.0, 1.0], D, t)
    np.testing.assert_allclose(got, exact, rtol=(2 * np.pi / 64) ** 2 / 12 * 2)
    fine = validation.gaussian_phase_attenuation(v, [L, 1.0, 1.0], D, t, dt=1e-6)
    coarse = validation.gaussian_phase_attenuation(v, [L, 1.0, 1.0], D, t, dt=1e-4)
    assert np.all(np.abs(fine / got - 1) < np.abs(coarse / got - 1))
    assert np.all(np.abs(fine / got - 1) < 2e-3)
    with pytest.raises(ValueError, match="whole multiples of dt"):
        validation.gaussian_phase_attenuation(v, [L, 1.0, 1.0], D, [1.5e-3], dt=1e-3)
    with pytest.raises(ValueError, match="diffusivity"):
        validation.gaussian_phase_attenuation(v, [L, 1.0, 1.0], 2.0, t)
