"""
q-space diffraction: the pore's shape in the minima of the narrow-pulse signal
==============================================================================

With gradient pulses short enough that the spins do not move while they are on
(:math:`\\delta \\ll R^2/D`), each pulse stamps the phase :math:`2\\pi q x` on a spin at position
:math:`x`, with :math:`q = \\gamma G \\delta / 2\\pi`. The echo then measures the Fourier transform of
the displacement distribution (Stejskal & Tanner 1965; Callaghan 1991, *Principles of NMR
Microscopy*). If the separation is long enough for the spins to forget where they started
(:math:`\\Delta \\gg R^2/D`), start and end points are independent and uniform in the pore, and

.. math:: E(q, \\Delta \\to \\infty) = |\\tilde\\rho(q)|^2 = \\Big| \\frac{1}{V} \\int_\\mathrm{pore}
          e^{i 2 \\pi q x}\\, d\\mathbf{r} \\Big|^2,

the "diffraction pattern" of the pore (Callaghan, Coy, MacGowan, Packer & Zelaya 1991, Nature
351:467; Callaghan 1995, J Magn Reson A 113:53). For a slab of width :math:`L`,
:math:`E = [\\sin(\\pi q L) / (\\pi q L)]^2` vanishes at :math:`q = n / L`; for a cylinder of radius
:math:`R`, :math:`E = [2 J_1(2\\pi q R) / (2\\pi q R)]^2` vanishes at :math:`2 \\pi q R = 3.832, 7.016,
10.17`, i.e. :math:`q \\approx 1.22 / (2R)` first, as in the Airy pattern of a circular aperture. The
minima give the pore size without any model of the diffusion.

Real pulses have a width. During a pulse the phase records the spin's *mean* position, which is
confined to a smaller region than the pore, so the minima fill in and move to higher :math:`q`
(Mitra & Halperin 1995, J Magn Reson A 113:94). The matrix formalism (Callaghan 1997; Grebenkov
2007, Rev Mod Phys 79:1077) includes this exactly; the Monte Carlo plays the finite pulses and must
follow it. From the same walkers, the phase :math:`2\\pi q\\, [x(\\Delta) - x(0)]` gives the
narrow-pulse limit itself, which must follow the Callaghan series.
"""

# %%
# Set-up: narrow pulses, long separation, q up to three minima
# ------------------------------------------------------------
# Planes 10 µm apart and a cylinder of radius 5 µm; R²/D = 12.5 ms, so δ = 1 ms is narrow and
# Δ = 50 ms is long. 2550 steps (20 µs, RMS step per axis 0.057 R) put 50 steps in each pulse.
# The strongest gradient, 8.2 T/m, is within reach of NMR diffusion probes.
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from scipy.optimize import minimize_scalar
from scipy.special import jn_zeros

import sequences
import substrates
import validation
import walker
from diffwalk.lessons import check_agreement, quick_mode

QUICK = quick_mode()                     # DIFFWALK_QUICK=1: fewer walkers, same physics
D = 2e-9                                 # m^2/s
R = 5e-6                                 # half-separation of the planes (L = 2R = 10 um), cylinder radius, m
L = 2 * R
delta, Delta = 1e-3, 50e-3               # s
n_walkers = 10_000 if QUICK else 100_000
n_steps = 2550
q_fine = np.linspace(0, 0.35e6, 141)     # q = gamma G delta / (2 pi), 1/m (0 ... 0.35 1/um)
q = q_fine[::4]                          # the Monte Carlo points
gamma = sequences.GAMMA


def gradient(q):
    """The gradient (T/m) that gives q (1/m) with pulses of width delta."""
    return 2 * np.pi * q / (gamma * delta)


scheme = sequences.pgse(delta, Delta, gradient_strength=gradient(q), directions=[1, 0, 0])
fine = sequences.pgse(delta, Delta, gradient_strength=gradient(q_fine), directions=[1, 0, 0])


def sgp(geometry, q):
    """Narrow-pulse signal (Callaghan series) at q in 1/m."""
    k = 2 * np.pi * np.asarray(q, dtype=float)
    # modes with beta^2 D Delta / R^2 > 40 weigh less than e^-40: a few roots and orders suffice
    return validation.callaghan_signal(geometry, R, D, Delta, k, n_roots=5, n_orders=8)


cases = {"planes": (substrates.planes(L, normal=[1, 0, 0]), [1, 0, 0], 40.0, "tab:blue"),
         "cylinder": (substrates.cylinder(R, axis=[0, 0, 1]), [0, 0, 1], 15.0, "tab:orange")}

# %%
# Simulate the finite pulses, and the narrow-pulse limit from the same walks
# --------------------------------------------------------------------------
# The signal's standard error is about :math:`0.7/\sqrt{N}` near the minima (both cos φ and cos 2φ
# average to about zero there), so the Monte Carlo resolves a minimum only down to ~4.5 of those:
# about 0.01 with 100 000 walkers. The narrow-pulse estimate :math:`\langle \cos 2\pi q \Delta x
# \rangle` has its error from the spread of the cosines over the walkers.
#
# Tolerances. The matrix formalism is truncated (planes at alpha R <= 40, the cylinder at 15); against
# cut-offs of 80 and 30 it moves by less than 7e-6 over this q range (reference error 1e-5). The Callaghan series is
# converged to 1e-6. The walker samples the gradient per step (trapezoid rule), which drops the
# Brownian-bridge part of the phase inside each step: at most a factor exp((b - b_disc) D) on the
# signal, which we allow. A reflected walk between planes is the free walk folded back, so flat walls
# add nothing else; on the cylinder's curved wall a 400 000-walker run of this set-up found no bias
# above its SE (0.0011), and we allow 0.0015, as for the same step in the previous lesson.
MF_ERROR, SGP_ERROR = 1e-5, 1e-6
results, mf, mf_fine, sgp_fine, e_sgp, se_sgp = {}, {}, {}, {}, {}, {}
for i, (name, (sub, axis, cutoff, _)) in enumerate(cases.items()):
    res = walker.simulate(sub, scheme, n_walkers=n_walkers, diffusivity=D, n_steps=n_steps, seed=30 + i,
                          record_times=[Delta])
    results[name] = res
    assert res.escapes == 0
    mf_fine[name] = validation.mf_signal(fine, name, R, D, axis=axis, cutoff=cutoff)
    mf[name] = mf_fine[name][::4]
    sgp_fine[name] = sgp(name, q_fine)
    curved = 0.0 if name == "planes" else 1.5e-3
    quadrature = np.abs(mf[name]) * np.expm1((res.bvalues - res.discrete_bvalues) * D)
    check_agreement(f"{name}: finite-pulse Monte Carlo vs matrix formalism", res.signal, res.stderr, mf[name],
                    reference_error=MF_ERROR, allowance=quadrature + curved)
    c = np.cos(np.outer(res.displacements[:, 0, 0], 2 * np.pi * q))      # (N, Q): the narrow-pulse phase
    e_sgp[name], se_sgp[name] = c.mean(axis=0), c.std(axis=0) / np.sqrt(n_walkers)
    check_agreement(f"{name}: narrow-pulse Monte Carlo vs Callaghan series", e_sgp[name], se_sgp[name],
                    sgp_fine[name][::4], reference_error=SGP_ERROR, allowance=curved)

# %%
# Where the minima sit
# --------------------
# The zeros of the long-Δ diffraction pattern, and the minima of the exact finite-pulse signal
# (located by minimising the matrix formalism between grid points): finite pulses push them out.
zeros = {"planes": np.arange(1, 4) / L, "cylinder": jn_zeros(1, 3) / (2 * np.pi * R)}


def mf_at(qq, name, axis, cutoff):
    """The matrix-formalism signal at one q (1/m)."""
    one = sequences.pgse(delta, Delta, gradient_strength=[gradient(qq)], directions=[1, 0, 0])
    return validation.mf_signal(one, name, R, D, axis=axis, cutoff=cutoff)[0]


for name, (_, axis, cutoff, _) in cases.items():
    grid_min = [j for j in range(1, len(q_fine) - 1)
                if mf_fine[name][j] < mf_fine[name][j - 1] and mf_fine[name][j] < mf_fine[name][j + 1]]
    found = []
    for j in grid_min:
        found.append(minimize_scalar(mf_at, bounds=(q_fine[j - 1], q_fine[j + 1]), args=(name, axis, cutoff),
                                     method="bounded", options={"xatol": 1e2}).x)
    print(f"{name}: narrow-pulse zeros at q = {np.round(zeros[name] * 1e-6, 4)} 1/µm; finite-pulse minima "
          f"at q = {np.round(np.array(found) * 1e-6, 4)} 1/um (those below 0.35 1/um)")

# %%
# The picture
# -----------
# Top: the diffraction patterns on a log scale, with the narrow-pulse zeros marked. The Monte Carlo
# cannot tell a signal below its noise floor (grey) from zero: there its error bars reach the bottom of
# the axis. Bottom: the side lobes on a linear scale, with the narrow-pulse Monte Carlo (squares) as well.
fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True, height_ratios=[1.4, 1], layout="constrained")
qs = q_fine * 1e-6
for col, (name, (*_, color)) in enumerate(cases.items()):
    res = results[name]
    top, bottom = axes[0, col], axes[1, col]
    floor = 4.5 * np.median(res.stderr[len(q) // 3:])
    top.axhspan(1e-4, floor, color="0.88", zorder=0)
    top.text(0.003, 1.6e-4, f"MC noise floor\n(4.5 SE ≈ {floor:.3f})", fontsize="small", color="0.35")
    for ax in (top, bottom):
        ax.plot(qs, mf_fine[name], "-", color=color)
        ax.plot(qs, sgp_fine[name], "--", color="k", lw=1)
        ax.errorbar(q * 1e-6, res.signal, yerr=4.5 * res.stderr, fmt="o", ms=4, capsize=2, color=color)
        for z in zeros[name]:
            ax.axvline(z * 1e-6, color="0.5", ls=":", lw=1)
    bottom.errorbar(q * 1e-6 + 0.002, e_sgp[name], yerr=4.5 * se_sgp[name], fmt="s", ms=3.5, capsize=2,
                    color="k", mfc="white")
    labels = ["1/L", "2/L", "3/L"] if name == "planes" else ["1.22/2R", "2.23/2R", "3.24/2R"]
    for z, lab in zip(zeros[name], labels):
        top.text(z * 1e-6, 1.5, lab, ha="center", fontsize="small", color="0.3",
                 bbox={"fc": "white", "ec": "none", "pad": 1})
    top.set(yscale="log", ylim=(1e-4, 3), ylabel="S / S₀ (log scale)",
            title=(f"planes, L = {L * 1e6:g} µm" if name == "planes" else f"cylinder, R = {R * 1e6:g} µm")
            + "   (dotted: narrow-pulse zeros)")
    bottom.axhline(0, color="k", lw=0.6)
    bottom.set(ylim=(-0.012, 0.075), xlabel="q = γGδ/2π (1/µm)", ylabel="S / S₀ (side lobes, linear)")
    q_to_g = (lambda x: gradient(x * 1e6), lambda g: g * gamma * delta / (2 * np.pi) * 1e-6)   # 1/um <-> T/m
    top.secondary_xaxis("top", functions=q_to_g).set_xlabel("G (T/m)")
handles = [Line2D([], [], color="0.4", ls="-"), Line2D([], [], color="k", ls="--", lw=1),
           Line2D([], [], color="0.4", marker="o", ls="none"),
           Line2D([], [], color="k", marker="s", mfc="white", ls="none")]
fig.legend(handles, [f"matrix formalism, δ = {delta * 1e3:g} ms (exact)", "narrow pulse δ → 0 (Callaghan series)",
                     f"Monte Carlo, pulses of δ = {delta * 1e3:g} ms",
                     "Monte Carlo, narrow-pulse phase 2πq[x(Δ) − x(0)] (bottom)"],
           loc="outside lower center", ncol=2, fontsize="small")
fig.suptitle(f"q-space diffraction: δ = {delta * 1e3:g} ms ≪ R²/D = {R ** 2 / D * 1e3:g} ms ≪ "
             f"Δ = {Delta * 1e3:g} ms, "
             f"D = {D * 1e9:g} µm²/ms, {n_walkers} walkers; error bars 4.5 SE")
plt.show()

# %%
# The first minimum of the slab sits at :math:`q = 1/L`: reading it off gives the slab width with no
# model of the diffusion at all. Finite pulses move it outwards and fill it in (the matrix formalism
# and the Monte Carlo agree on both), so a width read from a finite-pulse minimum as :math:`1/q` comes
# out too small; the narrow-pulse limit, computed here from the same walkers, sits on the Callaghan
# series.
