"""
Myelin water: three compartments, three T2s, and exchange between them
=======================================================================

A myelinated axon holds water in three places: inside the axon, between the wraps of the myelin
sheath, and outside. Myelin water relaxes fast (:math:`T_2 \\approx 10`-20 ms) because it sits in thin
layers between membranes; the other two relax slowly (60-80 ms). Multi-echo T2 imaging measures the
*myelin water fraction* (MWF) from the fast component of the decay (MacKay et al. 1994), and reads it as
the fraction of water in myelin. Without exchange the b = 0 signal is a sum of exponentials,

.. math:: S(T_E) = \\sum_c f_c\\, e^{-T_E / T_{2,c}}, \\qquad
          \\mathrm{MWF}(T_E) = \\frac{f_\\text{my}\\, e^{-T_E/T_{2,\\text{my}}}}{S(T_E)},

with :math:`f_c` the water fractions. But water crosses the axon's membrane and the sheath's surfaces.
When it does so at permeability :math:`\\kappa` slowly enough that each compartment stays well mixed
(:math:`\\kappa d / D \\ll 1`, *barrier-limited*), the magnetisations :math:`m_c` obey the three-site
relaxation-exchange equations

.. math:: \\frac{d m}{d t} = (K - R_2)\\, m, \\qquad K_{ij} = \\frac{\\kappa S_{ij}}{V_j}\\ (i \\ne j),

with :math:`S_{ij}` the area between compartments :math:`i` and :math:`j` and :math:`V_j` their
volumes; the solution is a matrix exponential, a sum of exponentials again, but of the eigenmodes of
:math:`K - R_2`, which mix the pools: the fast component a multi-exponential fit finds is no longer the
myelin water (Dula et al. 2010). Here the walkers carry each compartment's D and T2 and cross the
membranes, and we check both limits.
"""

# %%
# Set-up: nine identical myelinated axons (inner radius 2 µm, g-ratio 0.6) at a fibre fraction of 0.55
# -----------------------------------------------------------------------------------------------------
# Identical fibres make every walker see the same geometry, so the three-site model is exact in the
# barrier-limited limit. ``substrates.myelinated_axons`` also draws Gamma radii and normal g-ratios.
import matplotlib.pyplot as plt
import numpy as np
import scipy.linalg

import sequences
import substrates
import walker
from diffwalk.lessons import check_agreement, quick_mode

QUICK = quick_mode()                     # DIFFWALK_QUICK=1: fewer walkers, same physics
n_walkers = 2_500 if QUICK else 25_000
names = ["myelin", "intra", "extra"]
D = {"myelin": 0.5e-9, "intra": 2e-9, "extra": 2e-9}      # m^2/s
T2 = {"myelin": 0.015, "intra": 0.08, "extra": 0.06}      # s
kappa = 2e-5                                               # m/s on both surfaces: kappa d / D <= 0.05
dt = 4e-6                                                  # s: steps of 0.22 um outside, 0.11 um in myelin
echo_times = dt * 2 * np.round(np.geomspace(4e-3, 60e-3, 10) / (2 * dt))
scheme = sequences.concatenate([sequences.pgse(2 * dt, 4 * dt, bvalues=[0.0], directions=[1, 0, 0],
                                               echo_time=te, dt=dt) for te in echo_times])
tissue = {k: substrates.myelinated_axons(radii=[2e-6] * 9, g_ratios=[0.6] * 9, fvf=0.55, seed=4,
                                         permeability=k) for k in (0.0, kappa)}
runs = {k: walker.simulate(sub, scheme, n_walkers=n_walkers, diffusivity=D, t2=T2, start="uniform",
                           n_steps=int(round(echo_times[-1] / dt)), seed=16)
        for k, sub in tissue.items()}
te = runs[0.0].scheme.echo_time
gt = runs[0.0].ground_truth
print({c: round(gt["volume_fractions"][c], 4) for c in names}, "g-ratio", gt["g_ratio_mean"])

# %%
# Without exchange: a sum of three exponentials, exactly
# ------------------------------------------------------
# Each walker's weight is :math:`e^{-\int R_2\, dt}` along its own path, so with impermeable walls the
# walkers that start in a compartment decay with its T2 exactly, and the total follows the volume-weighted
# sum (the MC error is only which compartment each walker started in).
sub = tissue[0.0]
vol = sub.region_volumes()
V = np.array([vol[c] for c in names])
f = V / V.sum()
no_exchange = np.array([np.sum(f * np.exp(-t / np.array([T2[c] for c in names]))) for t in te])
res = runs[0.0]
assert res.escapes == 0
check_agreement("impermeable: b = 0 vs the sum of exponentials", res.signal, res.stderr, no_exchange)
mwf_true = np.array(gt["t2_signal_fractions"]["myelin"])                 # ground truth at each TE
n_my = res.compartment_counts["myelin"]
mwf_mc = res.compartment_signals["myelin"] * n_my / n_walkers / res.signal

# %%
# With exchange: the three-site matrix exponential
# ------------------------------------------------
# The areas are those of the mesh's components (the axon membranes separate intra and myelin, the
# sheaths' outer surfaces myelin and extra). The model is the barrier-limited limit; the walk's departures
# from it are first order in :math:`\kappa d / D` (at most 0.05 here), so we allow 5 % of the exchange effect.
S_in = sub.component_area[sub.depth == 1].sum()
S_out = sub.component_area[sub.depth == 0].sum()
K = np.zeros((3, 3))
for i, j, S in ((0, 1, S_in), (0, 2, S_out)):   # myelin-intra and myelin-extra
    K[i, i] -= kappa * S / V[i]                    # out of i ...
    K[j, i] += kappa * S / V[i]                    # ... into j
    K[j, j] -= kappa * S / V[j]
    K[i, j] += kappa * S / V[j]
R2 = np.diag([1 / T2[c] for c in names])
m = np.array([scipy.linalg.expm((K - R2) * t) @ f for t in te])          # (TE, compartment)
three_site = m.sum(axis=1)
res_x = runs[kappa]
assert res_x.escapes == 0
check_agreement("permeable: b = 0 vs the three-site relaxation-exchange model", res_x.signal, res_x.stderr,
                three_site, allowance=0.05 * np.abs(three_site - no_exchange))
print(f"transits {res_x.transits}; at TE = {te[-1] * 1e3:.0f} ms exchange changes the signal by "
      f"{(three_site[-1] / no_exchange[-1] - 1) * 100:+.1f} %")

# %%
# What a multi-exponential fit would report
# -----------------------------------------
# With exchange the decay is :math:`\sum_k a_k e^{-\lambda_k T_E}` over the eigenvalues of
# :math:`K - R_2`; the fastest mode plays the part of "myelin water" in an MWF analysis. Its amplitude is
# the MWF such a fit reports, and :math:`1/\lambda_\text{fast}` its apparent T2.
lam, vec = np.linalg.eig(K - R2)
amp = vec.sum(axis=0) * np.linalg.solve(vec, f)          # a_k: each mode's share of the signal at TE = 0
fast = np.argmin(lam.real)
mwf_fit, t2_fit = float(amp[fast].real), float(-1 / lam[fast].real)
print(f"myelin water: {f[0]:.3f} of the water with T2 {T2['myelin'] * 1e3:g} ms; with exchange the fast "
      f"component holds {mwf_fit:.3f} with T2 {t2_fit * 1e3:.1f} ms")

# %%
# The picture
# -----------
# Left: the substrate's cross-section (sheath and axon surfaces). Middle: the b = 0 decay with and without
# exchange (log scale), against their models. Right: the myelin water fraction at each TE: the ground
# truth without exchange (the walkers that started in myelin carry exactly it), and with exchange the
# share of the magnetisation found in myelin, which decays more slowly, since slowly relaxing water keeps
# flowing into the sheath; the dotted line marks the amplitude of the fast mode, the MWF a fit reports.
fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(15, 4.8), layout="constrained")
substrates.plot_section(sub, ax=ax)      # lines: the sheaths' outer surfaces and the axons' membranes
ax.set_title("9 fibres, inner radius 2 µm, g = 0.6 (section at mid-z)")
tt = np.linspace(0, te[-1] * 1.05, 200)
bx.semilogy(tt * 1e3, [np.sum(f * np.exp(-t * np.diag(R2))) for t in tt], "k-",
            lw=1, label="no exchange: Σ f e^(−TE/T2)")
bx.semilogy(tt * 1e3, [np.sum(scipy.linalg.expm((K - R2) * t) @ f) for t in tt], "-", color="tab:red", lw=1,
            label=f"three-site exchange, κ = {kappa * 1e6:g} µm/s")
bx.errorbar(te * 1e3, res.signal, yerr=4.5 * res.stderr, fmt="o", ms=4, capsize=2, color="k",
            label="Monte Carlo, impermeable, ± 4.5 SE")
bx.errorbar(te * 1e3, res_x.signal, yerr=4.5 * res_x.stderr, fmt="s", ms=4, capsize=2, color="tab:red",
            label="Monte Carlo, permeable, ± 4.5 SE")
bx.set(xlabel="echo time TE (ms)", ylabel="b = 0 signal", title="relaxation with and without exchange")
bx.legend(fontsize="small")
cx.plot(te * 1e3, mwf_true, "k-", label="ground truth (no exchange)")
cx.plot(te * 1e3, mwf_mc, "o", color="k", ms=5, label="walkers that started in myelin (impermeable)")
cx.plot(te * 1e3, m[:, 0] / three_site, "--", color="tab:red", label="in myelin, with exchange (three-site)")
cx.axhline(f[0], color="k", ls=":", lw=1)
cx.axhline(mwf_fit, color="tab:red", ls=":", lw=1.5)
cx.text(te[-1] * 1e3, f[0], f"myelin water {f[0]:.2f}", ha="right", va="bottom", fontsize="small")
cx.text(te[-1] * 1e3, mwf_fit, f"fast mode with exchange {mwf_fit:.2f} (T2 {t2_fit * 1e3:.1f} ms)", ha="right",
        va="bottom", fontsize="small", color="tab:red")
cx.set(xlabel="echo time TE (ms)", ylabel="myelin share of the signal", ylim=(0, f[0] * 1.15),
       title="myelin water fraction, with and without exchange")
cx.legend(fontsize="small", loc="upper right", bbox_to_anchor=(1.0, 0.84))
fig.suptitle("Myelinated axons: intra-axonal, myelin and extra-axonal water with their own D and T2")
plt.show()

# %%
# The MWF an experiment reports is :math:`f_\text{my}` only when exchange is negligible over the echo
# train. With exchange the fast mode decays faster than :math:`1/T_{2,\text{my}}` and holds less than
# :math:`f_\text{my}`, the more so the thinner the sheath (high g-ratio) and the more permeable its
# surfaces (Dula et al. 2010; Harkins et al. 2012). The substrate's
# ground truth carries the g-ratios, radii and exact volume fractions; a run with T2 adds
# ``t2_signal_fractions`` (each compartment's share of the b = 0 signal at every TE, without exchange).
