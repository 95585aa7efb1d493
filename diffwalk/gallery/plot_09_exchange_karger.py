"""
Exchange across permeable membranes: residence times and the Kärger model
=========================================================================

Water crosses a cell membrane of permeability :math:`\\kappa` (m/s) with a flux
:math:`J = \\kappa\\,\\Delta c`. A molecule that starts anywhere inside a cylinder of radius
:math:`R` leaves it, on average, after the **mean residence time** (exact, for a uniform
start and a Robin wall condition; analytic reference 1.7)

.. math:: \\tau_i = \\frac{V}{\\kappa S} + \\frac{R^2}{8 D_i} = \\frac{R}{2 \\kappa} + \\frac{R^2}{8 D_i},

the barrier term :math:`V / (\\kappa S)` plus a small diffusion-limited term. By detailed
balance the extra-cellular residence time is :math:`\\tau_e = \\tau_i (1 - f) / f` (:math:`f`:
the intra-cellular volume fraction), and the exchange time of Fieremans et al. (2010) is
:math:`1/\\tau_{ex} = 1/\\tau_i + 1/\\tau_e`.

Kärger (1985) pictured exchange as two Gaussian compartments that swap water at the rates
:math:`k_{ie} = 1/\\tau_i` and :math:`k_{ei} = f k_{ie} / (1 - f)`. For narrow pulses
(:math:`q^2 t = b`) the magnetisations :math:`m = (m_i, m_e)` obey
:math:`\\dot m = -(q^2 \\mathrm{diag}(D_i, D_e) + K) m`, so

.. math:: S(b, t) = (1, 1)\\, \\exp\\!\\left[-b\\, \\mathrm{diag}(D_i, D_e) - K t\\right] (f, 1 - f)^T,
          \\qquad K = \\begin{pmatrix} k_{ie} & -k_{ei} \\\\ -k_{ie} & k_{ei} \\end{pmatrix}.

At fixed :math:`b` the signal falls with diffusion time :math:`t` from the no-exchange value
:math:`f e^{-b D_i} + (1 - f) e^{-b D_e}` towards the fast-exchange value :math:`e^{-b \\bar D}`,
:math:`\\bar D = f D_i + (1 - f) D_e`, on the time scale :math:`\\tau_{ex}`.

Kärger is an approximation: the compartments must be Gaussian, and exchange must be
barrier-limited (:math:`\\kappa R / D_i \\ll 1`, so that a walker forgets where it entered
before it leaves again) and slow against the time to cross a compartment
(:math:`\\tau_i \\gg R^2 / D_i`; a restricted compartment also needs :math:`t \\gg R^2 / D_i` to look
Gaussian). We place ourselves inside that regime on purpose: the
gradient runs **along** permeable cylinders, where each compartment is exactly Gaussian
(free diffusion along the axis, with :math:`D_i \\neq D_e`), and :math:`\\kappa R / D_i \\le 0.05`.
Across the cylinders the intra-cellular water is restricted, not Gaussian, and Kärger
misses by several standard errors (``diffwalk example exchange``; Fieremans et al. 2010,
NMR Biomed 23:711; Nilsson et al. 2013, MRM 69:1573).
"""

# %%
# Set-up: permeable cylinders, a walk without gradients, displacements recorded along the axis
# --------------------------------------------------------------------------------------------
# The narrow-pulse signal is :math:`\langle \cos(q\, \Delta z(t)) \rangle` over the walkers (a PGSE
# with :math:`\delta \to 0` measures exactly that), so one walk with displacements recorded at several
# times gives the whole curve S(t) at fixed b, with :math:`q = \sqrt{b / t}`. Walkers started inside
# and outside are simulated separately: the uniform (equilibrium) signal is their mixture
# :math:`f S_i + (1 - f) S_e`, and the walkers started inside give the residence times.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy.linalg import expm

import sequences
import substrates
import validation
import walker
from diffwalk.lessons import check_agreement, quick_mode

QUICK = quick_mode()                     # DIFFWALK_QUICK=1: fewer walkers, same physics
R, ICVF = 1e-6, 0.5                      # cylinder radius (m), intra-cellular volume fraction
D_I, D_E = 0.5e-9, 2.5e-9                # diffusivities inside / outside, m^2/s
KAPPAS = np.array([5e-6, 10e-6, 25e-6])  # permeabilities, m/s: kappa R / D_i = 0.01, 0.02, 0.05
B = 1e9                                  # s/m^2 (1000 s/mm^2), fixed while t varies
T_END = 100e-3                           # s
n_steps = 5000                           # dt = 20 us
n_walkers = 1000 if QUICK else 10_000    # per start compartment and kappa
idle = sequences.from_waveforms(np.zeros((1, n_steps, 3)), T_END / n_steps)   # no gradient: a plain walk
dt = T_END / n_steps
times = dt * np.round(np.array([5, 10, 20, 30, 45, 60, 80, 100]) * 1e-3 / dt)  # on the step grid, s
q = np.sqrt(B / times)                   # narrow-pulse wave number at each t, rad/m

runs = {}
for i, kappa in enumerate(KAPPAS):
    sub = substrates.cylinder_lattice(R, ICVF, permeability=kappa)
    for j, start in enumerate(("intra", "extra")):
        with warnings.catch_warnings():
            # the walker warns that 20 us steps (0.55 um outside) are coarse for the 0.7 um gaps between
            # cylinders. Along the axis the walls change nothing (a reflection off a wall parallel to z keeps
            # the z-step), and the crossing probability carries the walker's finite-step correction (the
            # residence-time check below measures it), so the coarse step costs no accuracy here.
            warnings.filterwarnings("ignore", message="step length")
            runs[kappa, start] = walker.simulate(
                sub, idle, n_walkers=n_walkers, diffusivity={"intra": D_I, "extra": D_E}, n_steps=n_steps,
                seed=100 + 10 * i + j, start=start, record_times=times)
f = sub.volume_fractions()["intra"]      # exact volume fraction of the lattice (= ICVF)

# %%
# Residence times: exact for any kappa
# ------------------------------------
# Each walker started inside reports the time of its first membrane crossing
# (``res.first_transit_times``; NaN if it never crossed before the end). Exit times are nearly
# exponential in this barrier-limited regime, so the censored maximum-likelihood estimate is
# (sum of observed times, censored ones counted up to the end) / (number that crossed), with
# standard error :math:`\hat\tau / \sqrt{n_\mathrm{crossed}}`. The allowance of 1 % of
# :math:`\tau` is the accuracy the walker states for its realised permeability at the default
# ``max_transit_probability`` (README: measured within 0.1 %).
tau_mc, tau_se, tau_ref = [], [], []
for kappa in KAPPAS:
    res = runs[kappa, "intra"]
    ft = res.first_transit_times
    crossed = ~np.isnan(ft)
    est = np.where(crossed, ft, T_END).sum() / crossed.sum()
    tau_mc.append(est)
    tau_se.append(est / np.sqrt(crossed.sum()))
    tau_ref.append(R / (2 * kappa) + R**2 / (8 * D_I))
    assert np.isclose(res.ground_truth["residence_time"], tau_ref[-1])   # the simulator's ground truth agrees
    assert res.escapes == 0
tau_mc, tau_se, tau_ref = map(np.array, (tau_mc, tau_se, tau_ref))
check_agreement("mean residence time vs R/(2 kappa) + R^2/(8 D_i)", tau_mc, tau_se, tau_ref,
                allowance=0.01 * tau_ref, unit="s")

# %%
# Equilibrium: a uniform start stays uniform
# ------------------------------------------
# Detailed balance keeps the equilibrium (uniform) density: whatever exchanged, the fraction of
# all walkers found inside at the end (``res.final_fractions``) is still :math:`f`. The mixture
# weights the two runs by :math:`f` and :math:`1 - f`; each run's fraction is binomial.
occ, occ_se = [], []
for kappa in KAPPAS:
    p_i = runs[kappa, "intra"].final_fractions["intra"]
    p_e = runs[kappa, "extra"].final_fractions["intra"]
    occ.append(f * p_i + (1 - f) * p_e)
    occ_se.append(np.sqrt(f**2 * p_i * (1 - p_i) + (1 - f) ** 2 * p_e * (1 - p_e)) / np.sqrt(n_walkers))
check_agreement("fraction of walkers inside at the end vs f", occ, occ_se, f)

# %%
# The signal against diffusion time, and Kärger
# ---------------------------------------------
# The standard error of the mixture combines the two runs' per-walker spreads of
# :math:`\cos(q \Delta z)`. Kärger's prediction uses nothing fitted: :math:`D_i, D_e, f` and
# :math:`k_{ie} = 1 / \tau_i` from :math:`\kappa` and the geometry. Its own error is of the order
# of the non-exponential part of the exit-time distribution, :math:`\kappa R / D_i` relative to the
# exchange effect :math:`|S_\mathrm{slow} - S_\mathrm{fast}|`; add the 1 % permeability accuracy.
def karger(b, t, f, Di, De, k_ie):
    """Narrow-pulse two-site exchange: (1, 1) expm(-b diag(Di, De) - K t) (f, 1 - f)."""
    k_ei = f * k_ie / (1 - f)
    K = np.array([[k_ie, -k_ei], [-k_ie, k_ei]])
    return np.array([np.sum(expm(-b * np.diag([Di, De]) - K * tt) @ [f, 1 - f]) for tt in np.atleast_1d(t)])


s_slow = f * np.exp(-B * D_I) + (1 - f) * np.exp(-B * D_E)      # no exchange (kappa = 0)
s_fast = np.exp(-B * (f * D_I + (1 - f) * D_E))                  # infinitely fast exchange
sig, sig_se, sig_ref = {}, {}, {}
for kappa in KAPPAS:
    ci = np.cos(q * runs[kappa, "intra"].displacements[:, :, 2])   # (N, times)
    ce = np.cos(q * runs[kappa, "extra"].displacements[:, :, 2])
    sig[kappa] = f * ci.mean(0) + (1 - f) * ce.mean(0)
    sig_se[kappa] = np.sqrt(f**2 * ci.var(0) + (1 - f) ** 2 * ce.var(0)) / np.sqrt(n_walkers)
    sig_ref[kappa] = karger(B, times, f, D_I, D_E, 1 / runs[kappa, "intra"].ground_truth["residence_time"])
    check_agreement(f"signal vs Karger, kappa = {kappa * 1e6:g} um/s (kappa R / D_i = {kappa * R / D_I:.2f})",
                    sig[kappa], sig_se[kappa], sig_ref[kappa],
                    allowance=(kappa * R / D_I + 0.01) * abs(s_slow - s_fast))

# %%
# The picture
# -----------
fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained", width_ratios=[1.5, 1])
ax = axes[0]
ts = np.linspace(0, T_END, 200)
ax.axhline(s_slow, color="0.5", ls="--", lw=1, label=r"no exchange: $f e^{-bD_i} + (1-f) e^{-bD_e}$")
ax.axhline(s_fast, color="0.5", ls=":", lw=1.2, label=r"fast exchange: $e^{-b \bar D}$")
for kappa, color, shift in zip(KAPPAS, ("tab:blue", "tab:orange", "tab:red"), (-0.8, 0.0, 0.8)):
    tau_ex = runs[kappa, "intra"].ground_truth["exchange_time"]
    ax.plot(ts * 1e3, karger(B, ts, f, D_I, D_E, 1 / runs[kappa, "intra"].ground_truth["residence_time"]),
            "-", color=color, label=f"Kärger, κ = {kappa * 1e6:g} µm/s (τ_ex = {tau_ex * 1e3:.0f} ms)")
    # (points shifted by <= 0.8 ms so that the error bars do not hide each other)
    ax.errorbar(times * 1e3 + shift, sig[kappa], yerr=4.5 * sig_se[kappa], fmt="o", ms=4, capsize=2, color=color)
ax.errorbar([], [], yerr=[], fmt="o", color="k", ms=4, label=f"Monte Carlo ({n_walkers} + {n_walkers} walkers), ± 4.5 SE")
ax.set(xlabel="diffusion time t (ms)", ylabel="narrow-pulse signal S / S₀",
       title=f"gradient along permeable cylinders, b = {B / 1e6:.0f} s/mm²", xlim=(0, T_END * 1e3 * 1.02))
ax.text(0.02, 0.04, f"Kärger regime: κR/D_i ≤ {KAPPAS.max() * R / D_I:.2f} (barrier-limited), τ_i ≥ "
        f"{tau_ref.min() * 1e3:.0f} ms ≫ R²/D_i = {R**2 / D_I * 1e3:.0f} ms,\n"
        "both compartments Gaussian along the axis: asserted at every point",
        transform=ax.transAxes, ha="left", va="bottom", fontsize="small",
        bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})
ax.legend(fontsize="small", loc="upper right")
ax.set_ylim(s_fast - 0.06, s_slow + 0.09)

ax = axes[1]
ks = np.geomspace(KAPPAS.min() / 1.5, KAPPAS.max() * 1.5, 100)
ax.loglog(ks * 1e6, (R / (2 * ks) + R**2 / (8 * D_I)) * 1e3, "k-", label="exact: R/(2κ) + R²/(8 D_i)")
ax.loglog(ks * 1e6, R / (2 * ks) * 1e3, "k--", lw=0.8, label="barrier term V/(κS) = R/(2κ)")
ax.errorbar(KAPPAS * 1e6, tau_mc * 1e3, yerr=4.5 * tau_se * 1e3, fmt="o", color="tab:blue",
            label="Monte Carlo (first crossings), ± 4.5 SE")
ax.set_xticks(KAPPAS * 1e6, [f"{k * 1e6:g}" for k in KAPPAS])
ax.set_yticks(tau_ref * 1e3, [f"{t * 1e3:.0f}" for t in tau_ref])
ax.minorticks_off()
ax.set(xlabel="permeability κ (µm/s)", ylabel="mean residence time inside τ_i (ms)",
       title=f"R = {R * 1e6:g} µm, D_i = {D_I * 1e9:g} µm²/ms")
ax.legend(fontsize="small")
fig.suptitle(f"Exchange between cylinders (ICVF {f:.2f}, D_i = {D_I * 1e9:g}, D_e = {D_E * 1e9:g} µm²/ms): "
             "error bars are 4.5 standard errors")
plt.show()

# %%
# Nothing here was fitted: the exchange rate came from :math:`\kappa`, :math:`S/V` and the
# volume fraction. ``validation.get_model("karger")`` fits the same equations (evaluated at
# :math:`t = \Delta - \delta/3` for finite pulses) to estimate :math:`\tau_i` from data; across the
# axons, where the intra-cellular water is restricted, or at :math:`\kappa R / D_i \gtrsim 0.1`,
# that estimate is biased, because the Gaussian two-site picture no longer holds.
# The harness's model gives the same numbers as the matrix exponential above when its effective
# diffusion time Delta - delta/3 is our t:
kappa = KAPPAS[-1]
tau_i = runs[kappa, "intra"].ground_truth["residence_time"]
pgse = sequences.concatenate([sequences.pgse(1.5e-3, t + 0.5e-3, bvalues=[B], directions=[0, 0, 1], dt=10e-6)
                              for t in times])
harness = validation.get_model("karger").signal(pgse, [[f, D_I, D_E, tau_i]])[0]
assert np.allclose(harness, sig_ref[kappa], rtol=1e-9, atol=0), (harness, sig_ref[kappa])
print("validation karger model = lesson's Karger signal:", np.round(harness, 4))
