"""
The Standard Model's degeneracy, and how spherical encoding lifts it
====================================================================

The Standard Model of white matter (Novikov et al. 2018, NeuroImage 174:518; Reisert et al.
2017, NeuroImage 147:964) describes axons as sticks of axial diffusivity :math:`D_a` and the
space around them as a zeppelin (:math:`D_{e\\parallel}, D_{e\\perp}`), both sharing one fibre
orientation distribution (rotational invariants :math:`p_2, p_4`):

.. math:: S(b, \\hat g) = \\int P(\\hat n) \\left[ f e^{-b D_a (\\hat g \\cdot \\hat n)^2}
          + (1 - f) e^{-b D_{e\\perp} - b (D_{e\\parallel} - D_{e\\perp}) (\\hat g \\cdot \\hat n)^2} \\right] d\\hat n .

With linear tensor encoding (LTE, ordinary pulsed gradients) at clinical b the fit is
degenerate: distinct parameter sets predict the same signals to far below the noise. Jelescu,
Veraart, Fieremans & Novikov (2016, NMR Biomed 29:33) found two branches, one with
:math:`D_a > D_{e\\parallel}` and one with :math:`D_a < D_{e\\parallel}`. Spherical tensor encoding
(STE, :math:`b_\\Delta = 0`) measures, independently of orientation,

.. math:: S_\\mathrm{STE}(b) = f e^{-b D_a / 3} + (1 - f) e^{-b (D_{e\\parallel} + 2 D_{e\\perp}) / 3},

the spread of isotropic diffusivities that LTE confounds with orientation dispersion, so the
branches predict different STE signals (Lampinen et al. 2020, MRM 84:1605; that linear plus
planar encoding determine the model uniquely was shown by Reisert, Kiselev & Dhital 2019, MRM,
and the same for double diffusion encoding by Coelho et al. 2019, MRM).

The normalised residual variance (Lampinen et al. 2020) makes this visible:

.. math:: \\mathrm{NRV}(p^*) = \\frac{1}{I} \\sum_{i=1}^{I} \\sum_{n=1}^{N}
          \\frac{(S_{i,n} - \\hat S_{i,n}(p = p^*))^2}{(N - M) \\sigma^2},

with one parameter fixed at :math:`p^*` and the :math:`M` others refitted to each of :math:`I`
noisy copies. For a correct model :math:`E[\\mathrm{NRV}] = 1` (a :math:`\\chi^2_{N-M}/(N - M)`,
standard deviation :math:`\\sqrt{2 / (I (N - M))}`); a flat valley means degeneracy. Here the
signals come from the model itself, so the model is exact and every statement below is about
the inverse problem only: no Monte Carlo is involved (the other lessons check the simulator).
"""

# %%
# Set-up: one tissue, two protocols with the same number of measurements
# -----------------------------------------------------------------------
# LTE at b = 1, 2, 3 ms/µm² along 60 directions each, against LTE along 30 directions plus 30 STE
# measurements per shell (180 measurements each, so STE is not just more data). SNR 100 at b = 0.
# f_w (free water) is fixed at 0; every other parameter, p4 included, is free.
import matplotlib.pyplot as plt
import numpy as np

import sequences
import validation
from diffwalk.lessons import check_agreement, quick_mode

QUICK = quick_mode()                     # DIFFWALK_QUICK=1: a coarser grid and fewer noise copies
SNR = 100.0
SIGMA = 1 / SNR
SHELLS = np.array([1e9, 2e9, 3e9])       # s/m^2 (1000, 2000, 3000 s/mm^2)
model = validation.get_model("standard_model")
names = model.names                      # f, D_a, D_e_par, D_e_perp, f_w, D_w, p2, p4, theta, phi
truth = np.array([0.5, 2.2e-9, 1.6e-9, 0.6e-9, 0.0, 3e-9, 0.7, 0.4, 0.7, 0.3])
fixed = {"f_w": 0.0, "D_w": 3e-9}


def lte(n_dirs):
    u = sequences.fibonacci_directions(n_dirs)
    return sequences.tensor_encoding(np.repeat(SHELLS, n_dirs), b_delta=1.0, directions=np.vstack([u] * SHELLS.size),
                                     duration=60e-3)


protocols = {"LTE only": lte(60),
             "LTE + STE": lte(30) + sequences.tensor_encoding(np.repeat(SHELLS, 30), b_delta=0.0, duration=60e-3)}
n_free = len(names) - len(fixed) - 1     # M: free parameters once D_a is fixed too
signals = {name: model.signal(s, [truth])[0] for name, s in protocols.items()}

# %%
# The model is exact for its own signal
# -------------------------------------
# A noise-free fit of every free parameter returns the truth (to the optimiser's precision).
for name, s in protocols.items():
    fit = validation.fit(model, s, signals[name][None], fixed=fixed)
    assert fit.residual[0] < 1e-9, (name, fit.residual)
    print(f"{name}: noise-free fit residual {fit.residual[0]:.1e}, D_a = {fit['D_a'][0] * 1e9:.4f} µm^2/ms")

# %%
# The other branch: D_a below D_e_par
# -----------------------------------
# Fix D_a at 1.5 µm²/ms (below the true D_e∥ = 1.6) and refit everything else to the noise-free
# LTE signal: the best such tissue has :math:`D_a < D_{e\parallel}` and fits the 180 LTE signals
# with a residual far below one measurement's noise. Its misfit, as an NRV excess
# :math:`\sum_n r_n^2 / ((N - M) \sigma^2)`, is compared with the NRV's own spread for one
# acquisition, :math:`\sqrt{2/(N - M)}`: below it, no single experiment can tell the two tissues
# apart; above twice it, the experiment rejects the other branch.
DA_ALT = 1.5e-9
alt, excess = {}, {}
for name, s in protocols.items():
    fit = validation.fit(model, s, signals[name][None], fixed={**fixed, "D_a": DA_ALT})
    alt[name] = fit.params[0]
    N = len(s)
    excess[name] = N * fit.residual[0] ** 2 / ((N - n_free) * SIGMA**2)
    one_sd = np.sqrt(2 / (N - n_free))
    print(f"{name}: best tissue with D_a = {DA_ALT * 1e9} µm^2/ms has f = {alt[name][0]:.2f}, "
          f"D_e_par = {alt[name][2] * 1e9:.2f} um^2/ms; NRV excess {excess[name]:.4f} "
          f"(one acquisition's NRV SD {one_sd:.3f})")
assert alt["LTE only"][2] > DA_ALT                        # the other branch: D_a < D_e_par
assert excess["LTE only"] < 0.1 * np.sqrt(2 / (len(protocols["LTE only"]) - n_free))   # invisible with LTE
assert excess["LTE + STE"] > 2 * np.sqrt(2 / (len(protocols["LTE + STE"]) - n_free))   # rejected with STE
twin = alt["LTE only"]
s_all = protocols["LTE + STE"]           # what the two LTE twins predict for the mixed protocol
gap = model.signal(s_all, [twin])[0] - model.signal(s_all, [truth])[0]
is_ste = np.abs(s_all.b_delta) < 0.5
print("STE signal of the LTE twin minus the truth's, per shell:",
      np.round([gap[is_ste & np.isclose(s_all.bvalues, b)].mean() for b in SHELLS], 4))

# %%
# NRV landscapes of D_a
# ---------------------
# ``validation.nrv_landscape`` fixes D_a on a grid, refits the rest to I noisy copies and returns
# the mean NRV. At the true D_a the refitted model is exact, so its NRV is a :math:`\chi^2` mean:
# we check it against 1 with the standard deviation :math:`\sqrt{2 / (I (N - M))}` (the small
# nonlinearity of the model at SNR 100 is well inside that).
grid = (np.arange(0.6, 3.01, 0.4) if QUICK else np.arange(0.8, 3.01, 0.2)) * 1e-9
repeats = 4 if QUICK else 10
land = {name: validation.nrv_landscape(model, s, signals[name], "D_a", grid, snr=SNR, repeats=repeats,
                                       truth=truth[1], fixed=fixed, seed=7)
        for name, s in protocols.items()}
i_true = int(np.argmin(np.abs(grid - truth[1])))
i_alt = int(np.argmin(np.abs(grid - DA_ALT)))
for name, L in land.items():
    check_agreement(f"NRV at the true D_a vs 1 ({name})", L.nrv[i_true], L.expected_sd, 1.0)
lte_l, ste_l = land["LTE only"], land["LTE + STE"]
# the truth lies in both valleys; the other branch lies in the LTE valley only
for L in (lte_l, ste_l):
    assert L.nrv[i_true] <= L.minimum + 2 * L.expected_sd
assert lte_l.nrv[i_alt] <= lte_l.minimum + 2 * lte_l.expected_sd
assert ste_l.nrv[i_alt] > ste_l.minimum + 2 * ste_l.expected_sd
print(f"valley (NRV <= min + 2 SD): LTE only {lte_l.valley[0] * 1e9:.1f}-{lte_l.valley[1] * 1e9:.1f}, "
      f"LTE + STE {ste_l.valley[0] * 1e9:.1f}-{ste_l.valley[1] * 1e9:.1f} um^2/ms (truth {truth[1] * 1e9} um^2/ms)")

# %%
# The picture
# -----------
fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.8), layout="constrained")
ax = axes[0]
rng = np.random.default_rng(0)
jitter = rng.uniform(-0.08, 0.08, len(s_all))
ax.axhspan(-SIGMA, SIGMA, color="0.9", label=f"± noise σ = 1/SNR = {SIGMA:g}")
ax.plot(s_all.bvalues[~is_ste] / 1e9 + jitter[~is_ste], gap[~is_ste], "o", ms=3, color="tab:blue",
        label="LTE measurements")
ax.plot(s_all.bvalues[is_ste] / 1e9 + jitter[is_ste], gap[is_ste], "^", ms=4, color="tab:red",
        label="STE measurements")
ax.axhline(0, color="k", lw=0.8)
fmt = "f = {:.2f}, D_a = {:.2f}, D_e∥ = {:.2f}, D_e⊥ = {:.2f}, p2 = {:.2f}, p4 = {:.2f}"
ax.text(0.02, 0.03, "truth:  " + fmt.format(truth[0], *(truth[1:4] * 1e9), *truth[6:8]) + "\n"
        "LTE twin: " + fmt.format(twin[0], *(twin[1:4] * 1e9), *twin[6:8]) + "  (µm²/ms)",
        transform=ax.transAxes, fontsize="x-small",
        bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})
ax.set(xlabel="b (ms/µm²)", ylabel="S(twin) - S(truth)",
       title="two tissues that LTE cannot tell apart", xticks=SHELLS / 1e9)
ax.set_ylim(-2.2 * SIGMA, 4.2 * SIGMA)
ax.legend(fontsize="small", loc="upper left")

ax = axes[1]
for L, name, color in ((lte_l, "LTE only", "tab:blue"), (ste_l, "LTE + STE", "tab:red")):
    ax.errorbar(L.grid * 1e9, L.nrv, yerr=4.5 * L.expected_sd, fmt="o-", ms=4, capsize=2, color=color,
                label=f"{name}: mean NRV of {repeats} noisy copies, ± 4.5 SD of the mean")
    ax.axhspan(L.minimum, L.minimum + 2 * L.expected_sd, color=color, alpha=0.12,
               label=f"{name}: valley, NRV ≤ minimum + 2 SD")
ax.axhline(1.0, color="0.5", lw=0.8)
ax.axvline(truth[1] * 1e9, color="k", ls=":", label="true D_a")
ax.axvline(DA_ALT * 1e9, color="tab:blue", ls="--", lw=0.8, label="LTE twin (D_a < D_e∥)")
ax.set(xlabel="D_a fixed at (µm²/ms)", ylabel="NRV", ylim=(0.8, 2.0),
       title=f"NRV landscape of D_a (SNR {SNR:g}, N = 180)")
ax.legend(fontsize="small", loc="upper right")
fig.suptitle("Standard Model (sticks + zeppelin, p2 and p4 free): error bars are 4.5 standard deviations of the "
             "mean NRV")
plt.show()

# %%
# With LTE alone a whole range of intra-axonal diffusivities, on both sides of
# :math:`D_{e\parallel}`, explains the data equally well; the same number of measurements with
# half of them spherical pins :math:`D_a` down, because STE sees the isotropic diffusivities
# :math:`D_a/3` and :math:`(D_{e\parallel} + 2 D_{e\perp})/3` without the orientation
# distribution in the way. At lower SNR the valley of LTE + STE widens again: the degeneracy is
# lifted in principle, and how far in practice depends on the noise.
