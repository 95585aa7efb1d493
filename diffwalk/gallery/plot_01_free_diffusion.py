"""
Free diffusion: the Gaussian propagator, MSD = 6 D t and S = exp(-b D)
======================================================================

Without walls, a water molecule's displacement after a time :math:`t` is Gaussian (Einstein 1905):
each Cartesian component has the propagator

.. math:: P(x, t) = \\frac{1}{\\sqrt{4 \\pi D t}} \\exp\\left(-\\frac{x^2}{4 D t}\\right),

so the mean squared displacement grows linearly, :math:`\\langle r^2 \\rangle = 6 D t` in three
dimensions, and a pulsed-gradient spin echo (Stejskal & Tanner 1965) measures

.. math:: S / S_0 = \\langle e^{-i \\phi} \\rangle = \\exp(-b D), \\qquad
          b = \\gamma^2 G^2 \\delta^2 (\\Delta - \\delta / 3).

A random walk of fixed-length steps :math:`\\ell = \\sqrt{6 D\\, \\delta t}` reproduces all three: by the
central limit theorem the sum of many steps is Gaussian, and :math:`\\langle r^2 \\rangle = n \\ell^2 = 6 D t`
holds exactly for any number of steps. We check each against the Monte Carlo.
"""

# %%
# Set-up: walkers in free space, a PGSE scheme, displacements recorded along the way
# ----------------------------------------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
from scipy.special import erf

import sequences
import substrates
import validation
import walker
from diffwalk.lessons import check_agreement, quick_mode

QUICK = quick_mode()                     # DIFFWALK_QUICK=1: fewer walkers, same physics
D = 2e-9                                 # intrinsic diffusivity, m^2/s (2 um^2/ms)
n_walkers = 5_000 if QUICK else 100_000
n_steps = 300 if QUICK else 1000
b = np.linspace(0, 2000e6, 9)            # s/m^2 (0 ... 2000 s/mm^2)
scheme = sequences.pgse(delta=10e-3, Delta=30e-3, bvalues=b, directions=[1, 0, 0])
duration = scheme.duration
dt = duration / n_steps
record = dt * np.unique(np.linspace(1, n_steps, 8).round())    # record times on the step grid, s
res = walker.simulate(substrates.free(), scheme, n_walkers=n_walkers, diffusivity=D, n_steps=n_steps,
                      seed=1, record_times=record)

# %%
# The propagator
# --------------
# The histogram of x-displacements at the last record time against the Gaussian. Each bin's count is
# binomial, so its standard error is :math:`\sqrt{p (1 - p) / N}` divided by the bin width; the
# reference is the Gaussian integrated over the bin.
t_last = res.record_times[-1]
x = res.displacements[:, -1, 0]
sigma = np.sqrt(2 * D * t_last)
edges = np.linspace(-4 * sigma, 4 * sigma, 33)
width = np.diff(edges)
p_mc = np.histogram(x, edges)[0] / n_walkers
p_ref = 0.5 * np.diff(erf(edges / (np.sqrt(2) * sigma)))
p_se = np.sqrt(p_ref * (1 - p_ref) / n_walkers)
check_agreement("propagator P(x, t) vs Gaussian", p_mc / width, p_se / width, p_ref / width, unit="1/m")

# %%
# The mean squared displacement
# -----------------------------
# Its standard error comes from the spread of the squared displacements themselves.
r2 = (res.displacements ** 2).sum(axis=-1)             # (N, R), m^2
msd, msd_se = r2.mean(axis=0), r2.std(axis=0) / np.sqrt(n_walkers)
# (after one fixed-length step every walker is exactly at distance l, so the spread is zero and only
# floating-point rounding, allowed for by a relative 1e-9, remains)
msd_ref = 6 * D * res.record_times
check_agreement("MSD vs 6 D t", msd, msd_se, msd_ref, allowance=1e-9 * msd_ref, unit="m^2")

# %%
# The signal
# ----------
# The reference uses the b-values of the walk's own time grid (``res.discrete_bvalues``): the walker
# samples the gradient on steps of length dt, and that is the b it really played.
s_ref = np.exp(-res.discrete_bvalues * D)
check_agreement("signal vs exp(-b D)", res.signal, res.stderr, s_ref)

# %%
# The picture
# -----------
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), layout="constrained")
centres = 0.5 * (edges[1:] + edges[:-1])
xs = np.linspace(edges[0], edges[-1], 200)
axes[0].plot(xs * 1e6, np.exp(-xs ** 2 / (2 * sigma ** 2)) / np.sqrt(2 * np.pi) / sigma * 1e-6, "k-",
             label="Gaussian, variance 2Dt")
axes[0].errorbar(centres * 1e6, p_mc / width * 1e-6, yerr=4.5 * p_se / width * 1e-6, fmt="o", ms=3,
                 color="tab:blue", label=f"Monte Carlo ({n_walkers} walkers), ± 4.5 SE")
axes[0].set(xlabel="x displacement (µm)", ylabel="P(x, t) (1/µm)", title=f"propagator at t = {t_last * 1e3:.0f} ms")
ts = np.linspace(0, duration, 50)
axes[1].plot(ts * 1e3, 6 * D * ts * 1e12, "k-", label="6 D t")
axes[1].errorbar(res.record_times * 1e3, msd * 1e12, yerr=4.5 * msd_se * 1e12, fmt="o", color="tab:blue",
                 label="Monte Carlo, ± 4.5 SE")
axes[1].set(xlabel="t (ms)", ylabel="⟨r²⟩ (µm²)", title="mean squared displacement")
bs = np.linspace(0, b[-1], 100)
axes[2].semilogy(bs / 1e6, np.exp(-bs * D), "k-", label="exp(-bD)")
axes[2].errorbar(res.discrete_bvalues / 1e6, res.signal, yerr=4.5 * res.stderr, fmt="o", color="tab:blue",
                 label="Monte Carlo, ± 4.5 SE")
axes[2].set(xlabel="b (s/mm²)", ylabel="S / S₀ (log scale)", title="PGSE δ = 10 ms, Δ = 30 ms")
axes[0].set_ylim(top=1.3 * axes[0].get_ylim()[1])      # room for the legend above the peak
axes[0].legend(fontsize="small", loc="upper left")
for ax in axes[1:]:
    ax.legend(fontsize="small")
fig.suptitle(f"Free diffusion, D = {D * 1e9:g} µm²/ms: error bars are 4.5 standard errors")
plt.show()

# %%
# Every walker here takes fixed-length steps, yet the displacement is Gaussian: what matters for the
# diffusion signal is only the variance of the displacement, until walls make it non-Gaussian (the
# next lesson). ``validation.free_signal`` gives the same exp(-b D) for any waveform, through the
# b-tensor: :math:`S = \exp(-\mathrm{tr}(\mathbf{B} \mathbf{D}))`.
print("exp(-tr(B D)) for the scheme:", np.round(validation.free_signal(scheme, D), 4))
