"""
Beaded axons: the axial D(t) and the Fick-Jacobs limit
======================================================

Axons are not perfect tubes: their calibre varies along the axis, and after ischaemia or in
neurodegeneration they swell into beads (Budde & Frank 2010, PNAS 107:14472). Water moving
along a beaded axon must squeeze through the necks, so its axial diffusivity falls with
diffusion time from :math:`D_0` to a long-time value :math:`D_\\infty`.

When the radius varies slowly along the axis, water equilibrates across each cross-section
long before it moves a bead spacing, and the 3-D walk reduces to a 1-D one along :math:`z` in
the entropic potential :math:`-\\ln A(z)` (:math:`A`: cross-sectional area). This is the
Fick-Jacobs equation (Jacobs 1935; Zwanzig 1992, J Phys Chem 96:3926)

.. math:: \\partial_t p = \\partial_z \\left[ D(z)\\, A(z)\\, \\partial_z \\frac{p}{A(z)} \\right],
          \\qquad D(z) = D_0,

whose long-time diffusivity in a periodic channel is the Lifson-Jackson result

.. math:: D_\\infty = \\frac{1}{\\langle A \\rangle \\langle 1 / (A D) \\rangle}
          \\;\\xrightarrow{D(z) = D_0}\\; \\frac{D_0}{\\langle A \\rangle \\langle 1/A \\rangle},

with :math:`\\langle\\cdot\\rangle` the average along the axis. It is exact only as the wall slope
:math:`r'(z) \\to 0`; the next order replaces :math:`D_0` by
:math:`D(z) = D_0 / \\sqrt{1 + r'(z)^2}` (Reguera & Rubí 2001, PRE 64:061106; tested against 3-D
Brownian dynamics for :math:`|r'| \\le 1` by Berezhkovskii et al. 2007, J Chem Phys 126:134706), and
we use the difference between the two as the allowance for the Fick-Jacobs approximation.

How :math:`D(t)` approaches :math:`D_\\infty` tells the disorder apart (Novikov et al. 2014, PNAS
111:5088): for beads placed at random (short-range disorder in 1-D) :math:`D(t) - D_\\infty \\propto
t^{-1/2}`, as found in axons reconstructed from 3-D electron microscopy (Lee, Papaioannou, Kim,
Novikov & Fieremans 2020, Commun Biol 3:354). For periodic beads the instantaneous diffusivity
relaxes exponentially (time scale :math:`s^2 / (4 \\pi^2 D_\\infty)`, :math:`s`: bead spacing),
so the cumulative :math:`D(t) = \\langle \\Delta z^2 \\rangle / 2t` approaches as :math:`1/t`.
"""

# %%
# Set-up: periodic beads on identical axons, walkers inside, axial displacements recorded
# ---------------------------------------------------------------------------------------
# ``substrates.beaded_axons`` swells each axon as r(z) = r0 (1 + a (1 + cos(2 pi z / s)) / 2): from
# the shaft radius r0 to r0 (1 + a) every s. Bead amplitude a = 1 (beads twice the shaft radius)
# and s = 10 r0 / 0.75 keep the wall slope gentle: it is at most pi a r0 / s = 0.24.
import warnings

import matplotlib.pyplot as plt
import numpy as np

import sequences
import substrates
import walker
from diffwalk.lessons import check_agreement, quick_mode

QUICK = quick_mode()                     # DIFFWALK_QUICK=1: fewer walkers, same physics
D0 = 2e-9                                # m^2/s
R0, AMP, SPACING = 0.75e-6, 1.0, 10e-6   # shaft radius (m), relative bead amplitude, bead spacing (m)
n_axons = 4
sub = substrates.beaded_axons(n_axons, bead_amplitude=AMP, bead_spacing=SPACING, radii=[R0] * n_axons,
                              icvf=0.3, n_beads=1, seed=1)
T_END = 20e-3                            # s: 12 relaxation times s^2 / (4 pi^2 D_inf)
step = R0 / 3                            # step length: a third of the narrowest radius
n_steps = round(T_END / (step**2 / (6 * D0)))
dt = T_END / n_steps
times = dt * np.unique(np.round(np.array([0.05, 0.1, 0.2, 0.5, 1, 2, 3.5, 5, 7.5, 10, 14, 20]) * 1e-3 / dt))

# %%
# The substrate's actual radius profile, and Fick-Jacobs from it
# --------------------------------------------------------------
# The mesh is a stack of regular n-gons (vertex radius chosen so that each ring has the area of
# its circle) joined by flat quads, so between rings the cross-section is an n-gon whose vertex
# radius varies linearly. We read each axon's rings from the mesh vertices and solve the 1-D
# Fick-Jacobs equation on that A(z) (a periodic lattice of 200 sites per bead; its
# :math:`\langle \Delta z^2 \rangle(t)` follows from the generator twisted by :math:`e^{ik\Delta z}`, at
# small k, by eigen-decomposition). Walkers start uniformly inside, so the axons' MSDs are
# averaged with their volumes as weights.
Lz = sub.box[2]
n_sides = sub.truth["polygon_sides"]
area_factor = n_sides / 2 * np.sin(2 * np.pi / n_sides)   # n-gon area / vertex radius^2


def mesh_profile(k):
    """Ring heights and vertex radii of axon k, read from the mesh (one period, z in [0, Lz))."""
    v = sub.vertices[np.unique(sub.faces[sub.face_component == k])]
    axis_xy = v[:, :2].mean(axis=0)
    zr = np.round(v[:, 2] / Lz, 9) * Lz
    rings = np.unique(zr[zr < Lz * (1 - 1e-9)])
    rv = np.array([np.linalg.norm(v[zr == zz, :2] - axis_xy, axis=1).mean() for zz in rings])
    return rings, rv


def radius_of(rings, rv):
    zp, rp = np.append(rings, rings[0] + Lz), np.append(rv, rv[0])
    return lambda z: np.interp(np.mod(z, Lz), zp, rp)


def fick_jacobs_msd(r_of_z, t, reguera_rubi=False, M=200):
    """<dz^2>(t) of 1-D Fick-Jacobs diffusion with A = area_factor r(z)^2, periodic with Lz."""
    h = Lz / M
    zs = np.arange(M) * h
    A = area_factor * r_of_z(zs) ** 2
    Ab = area_factor * r_of_z(zs + h / 2) ** 2                       # bond (mid-point) areas
    Db = np.full(M, D0)
    if reguera_rubi:                                                # D(z) = D0 / sqrt(1 + r'^2)
        slope = (r_of_z(zs + h) - r_of_z(zs)) / h
        Db = D0 / np.sqrt(1 + slope**2)
    up = Db * Ab / (h**2 * A)                                       # rate i -> i+1
    down = Db * Ab / (h**2 * np.roll(A, -1))                        # rate i+1 -> i
    k = 2 * np.pi * 1e-3 / Lz
    i, j = np.arange(M), (np.arange(M) + 1) % M
    L = np.zeros((M, M), complex)
    L[j, i] += up * np.exp(1j * k * h)
    L[i, j] += down * np.exp(-1j * k * h)
    L[i, i] -= up
    L[j, j] -= down
    lam, V = np.linalg.eig(L)
    c = np.linalg.solve(V, A / A.sum())                             # equilibrium start: p ~ A
    E = np.array([np.sum(V @ (c * np.exp(lam * tt))).real for tt in np.atleast_1d(t)])
    return 2 * (1 - E) / k**2                                       # <e^{ik dz}> = 1 - k^2 <dz^2>/2 + ...


profiles = [mesh_profile(k) for k in range(n_axons)]
weights = np.asarray(sub.component_volume) / np.sum(sub.component_volume)
ts = np.geomspace(times[0], times[-1], 80)
both = np.concatenate([ts, times])
fj = sum(w * fick_jacobs_msd(radius_of(*p), both) for w, p in zip(weights, profiles)) / (2 * both)
rr = sum(w * fick_jacobs_msd(radius_of(*p), both, True) for w, p in zip(weights, profiles)) / (2 * both)
fj_curve, D_fj, rr_curve, D_rr = fj[:ts.size], fj[ts.size:], rr[:ts.size], rr[ts.size:]
# the long-time limit D0 / (<A><1/A>) of the mesh profile and of the generator's smooth formula
zz = np.linspace(0, Lz, 20_001)[:-1]
A_mesh = area_factor * radius_of(*profiles[0])(zz) ** 2
D_inf = D0 / (A_mesh.mean() * (1 / A_mesh).mean())
r_smooth = R0 * (1 + AMP * (1 + np.cos(2 * np.pi * zz / SPACING)) / 2)
D_inf_smooth = D0 / ((r_smooth**2).mean() * (1 / r_smooth**2).mean())
print(f"Fick-Jacobs D_inf / D0: {D_inf / D0:.4f} (mesh profile), {D_inf_smooth / D0:.4f} (smooth r(z))")

# %%
# The walk, and the axial D(t) from the mean squared displacement
# ---------------------------------------------------------------
# (the theory is computed first: numpy's eigen-solver is slow while the walker's threads are still
# spinning after a run.) :math:`D(t) = \langle \Delta z^2 \rangle / 2t` over the walkers; its standard
# error is the spread of the per-walker :math:`\Delta z^2` over :math:`\sqrt{N}`.
n_walkers = 2000 if QUICK else 25_000
idle = sequences.from_waveforms(np.zeros((1, n_steps, 3)), dt)     # no gradient: the walk itself
with warnings.catch_warnings():
    # the walker asks for steps below 1/6 of the smallest feature for accurate walls in general; for the
    # axial MSD a third of the shaft radius is enough (the step-halving study quoted below)
    warnings.filterwarnings("ignore", message="step length")
    res = walker.simulate(sub, idle, n_walkers=n_walkers, diffusivity=D0, n_steps=n_steps, seed=11, start="intra",
                          record_times=times)
assert res.escapes == 0

z2 = res.displacements[:, :, 2] ** 2
D_mc = z2.mean(axis=0) / (2 * times)
D_se = z2.std(axis=0) / np.sqrt(n_walkers) / (2 * times)

# %%
# Compare in the long-time regime only
# ------------------------------------
# The 1-D reduction needs water to have explored the cross-section: :math:`t \gg r_{max}^2 / D_0`
# (1.1 ms for the beads). We assert for :math:`t \ge 4 r_{max}^2 / D_0` = 4.5 ms. Allowances:
# the Fick-Jacobs approximation itself (the gap between the Fick-Jacobs and Reguera-Rubí curves at each t, about 1.3 %), and
# 1 % for the finite step: a step-halving study (l = r0/2 against r0/4, 40,000 walkers each) found
# differences of D(t) within about one standard error of the difference (1.2 % of D) at every t.
r_max = R0 * (1 + AMP)
t_valid = 4 * r_max**2 / D0
late = times >= t_valid
check_agreement("axial D(t)/D0 vs Fick-Jacobs (t >= 4 r_max^2 / D0)", D_mc[late] / D0, D_se[late] / D0,
                D_fj[late] / D0, reference_error=np.abs(D_fj - D_rr)[late] / D0, allowance=0.01 * D_fj[late] / D0)

# %%
# The picture
# -----------
fig, axes = plt.subplots(1, 3, figsize=(14, 4.3), layout="constrained", width_ratios=[1, 1.5, 1.1])
ax = axes[0]
rings, rv = profiles[0]
phase = sub.truth["bead_positions"][0][0]
ax.plot(zz * 1e6, R0 * (1 + AMP * (1 + np.cos(2 * np.pi * (zz - phase) / SPACING)) / 2) * 1e6, "k-",
        label="r(z) of the generator")
ax.plot(rings * 1e6, rv * np.sqrt(area_factor / np.pi) * 1e6, "o", ms=3, color="tab:blue",
        label="mesh rings (equal-area radius)")
ax.plot(zz * 1e6, -R0 * (1 + AMP * (1 + np.cos(2 * np.pi * (zz - phase) / SPACING)) / 2) * 1e6, "k-")
ax.set(xlabel="z along the axon (µm)", ylabel="radius (µm)", title=f"one bead period: r0 = {R0 * 1e6:g} µm, a = {AMP:g}",
       ylim=(-2.2, 2.9))
ax.legend(fontsize="small", loc="upper right")

ax = axes[1]
ax.axvspan(times[0] * 0.8e3, t_valid * 1e3, color="0.92")
ax.text(np.sqrt(times[0] * t_valid) * 1e3, 0.72, "1-D reduction not yet valid:\nt < 4 r_max²/D0 (not asserted)",
        ha="center", fontsize="small", color="0.3")
ax.axhline(1.0, color="0.5", lw=0.8)
ax.axhline(D_inf / D0, color="k", ls=":", label=f"D∞ = D0/(⟨A⟩⟨1/A⟩) = {D_inf / D0:.3f} D0")
ax.semilogx(ts * 1e3, fj_curve / D0, "k-", label="Fick-Jacobs (1-D, mesh A(z))")
ax.semilogx(ts * 1e3, rr_curve / D0, "k--", lw=0.8, label="with Reguera-Rubí D(z) (allowance)")
ax.errorbar(times * 1e3, D_mc / D0, yerr=4.5 * D_se / D0, fmt="o", color="tab:blue", ms=4, capsize=2,
            label=f"Monte Carlo ({n_walkers} walkers), ± 4.5 SE")
ax.set(xlabel="diffusion time t (ms)", ylabel="axial D(t) / D0 = ⟨Δz²⟩ / (2 D0 t)",
       title="axial diffusivity inside beaded axons", xlim=(times[0] * 0.8e3, times[-1] * 1.25e3), ylim=(0.7, 1.08))
ax.legend(fontsize="small", loc="upper right")

ax = axes[2]
x = 1e-3 / ts                                                       # 1/t in 1/ms
ax.plot(x, fj_curve / D0, "k-", label="Fick-Jacobs")
ax.plot(x, rr_curve / D0, "k--", lw=0.8, label="with Reguera-Rubí D(z)")
ax.plot(x, D_inf / D0 + (fj_curve[-1] - D_inf) / D0 * ts[-1] / ts, "k:", label="D∞ + C / (2t)")
ax.errorbar(1e-3 / times[late], D_mc[late] / D0, yerr=4.5 * D_se[late] / D0, fmt="o", color="tab:blue", ms=4,
            capsize=2, label="Monte Carlo, ± 4.5 SE")
ax.set(xlabel="1 / t (1/ms)", ylabel="D(t) / D0", xlim=(0, 1.05e-3 / t_valid), ylim=(0.74, 0.9),
       title="periodic beads: a straight line in 1/t")
ax.text(0.03, 0.04, "random beads: straight in 1/√t instead\n(Lee et al. 2020)", transform=ax.transAxes,
        fontsize="small", color="0.3")
ax.legend(fontsize="small", loc="upper left")
fig.suptitle(f"Beaded axons, D0 = {D0 * 1e9:g} µm²/ms, bead spacing {SPACING * 1e6:g} µm: error bars are "
             "4.5 standard errors; shaded: outside the asserted regime")
plt.show()

# %%
# The MSD of water along the axon grows as :math:`2 D_\infty t + C`: the offset :math:`C` (the
# early, faster-than-:math:`D_\infty` motion) makes :math:`\langle\Delta z^2\rangle/2t` approach as
# :math:`C/(2t)`. A PGSE measures a weighted version of the same curve; with random beading the
# tail would be :math:`\propto t^{-1/2}` (Fieremans et al. 2016, NeuroImage 129:414 give its finite-pulse
# PGSE form, which ``validation`` does not implement yet).
print("walk:", res.summary().splitlines()[0])
print("ground truth bead amplitude / spacing (m):", sub.ground_truth()["bead_amplitude"],
      sub.ground_truth()["bead_spacing"])
