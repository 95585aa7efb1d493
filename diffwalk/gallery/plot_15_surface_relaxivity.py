"""
Surface relaxivity: the b = 0 signal decays, fast or slow, as the Robin problem says
====================================================================================

Water that touches a wall can lose its magnetisation there (paramagnetic sites, macromolecules): the
wall has a *surface relaxivity* :math:`\\rho` (m/s). The magnetisation :math:`m` then obeys the
diffusion equation with a Robin boundary condition (Brownstein & Tarr 1979, Phys Rev A 19:2446)

.. math:: \\partial_t m = D_0 \\nabla^2 m, \\qquad -D_0\\, \\partial_n m = \\rho\\, m \\ \\text{on the wall},

and the b = 0 signal of a pore of radius :math:`a` is the eigenmode sum
:math:`S(t) = \\sum_n w_n e^{-\\xi_n^2 D_0 t / a^2}`; for a sphere the :math:`\\xi_n` solve
:math:`1 - \\xi \\cot \\xi = h` with :math:`h = \\rho a / D_0`, the one number that sets the regime:

* **fast diffusion** (:math:`h \\ll 1`): every molecule visits the wall many times before it relaxes, the
  magnetisation stays uniform and decays with one rate, :math:`1/T_{2,\\text{surface}} = \\rho\\, S/V`
  (:math:`3\\rho/a` for a sphere). This is how NMR relaxometry measures pore sizes in rocks;
* **slow diffusion** (:math:`h \\gg 1`): the wall kills whatever reaches it, and the decay is limited by
  the time to diffuse there, :math:`\\pi^2 D_0 / a^2` for the slowest mode of a sphere, whatever
  :math:`\\rho`; several modes show up, and the decay is no longer one exponential.

The walker does the same thing particle by particle: at each wall hit its weight is multiplied by the
survival factor :math:`1 - P`, with :math:`P = p/(1 + p/2)` and :math:`p = (2/3)\\rho\\ell/D_0` for steps of
length :math:`\\ell` (:func:`walker.survival_probability`; the finite-step correction is measured against
this very series). Nothing is renormalised: the b = 0 signal *is* the surviving magnetisation.
"""

# %%
# Set-up: walkers in a sphere of radius 5 µm, four relaxivities from the fast to the slow regime
# ----------------------------------------------------------------------------------------------
# Each run measures b = 0 at several echo times (one scheme, several TEs: the walker records each
# walker's weight at every echo). The time step keeps the walker's step at a tenth of the radius; in the
# slow regime it is halved, since the wall there is nearly absorbing.
import math

import matplotlib.pyplot as plt
import numpy as np

import sequences
import substrates
import validation
import walker
from diffwalk.lessons import check_agreement, quick_mode

QUICK = quick_mode()                     # DIFFWALK_QUICK=1: fewer walkers, same physics
D0, a = 2e-9, 5e-6                       # m^2/s, m
n_walkers = 4_000 if QUICK else 40_000
h_values = [0.03, 0.3, 3.0, 10.0]        # rho a / D0
colors = ["tab:blue", "tab:green", "tab:orange", "tab:red"]


def b0_at(echo_times, dt):
    """b = 0 at each echo time, on a grid of dt (a PGSE without gradient, centred in each TE)."""
    return sequences.concatenate([sequences.pgse(2 * dt, 4 * dt, bvalues=[0.0], directions=[1, 0, 0],
                                                 echo_time=te, dt=dt) for te in echo_times])


runs = {}
for i, h in enumerate(h_values):
    rho = h * D0 / a                                           # m/s
    xi, _ = validation.robin_modes("sphere", h, 1)
    tau = a**2 / (xi[0] ** 2 * D0)                             # decay time of the slowest mode, s
    frac, max_p = (0.1, 0.02) if h <= 1 else (0.05, 0.1)       # step / radius; largest absorption per hit
    dt = math.floor((frac * a) ** 2 / (6 * D0) / 1e-7) * 1e-7
    k = 2 * np.unique(np.round(np.geomspace(0.05, 3.0, 8) * tau / (2 * dt)))   # even multiples of dt
    scheme = b0_at(k * dt, dt)
    res = walker.simulate(substrates.sphere(a, relaxivity=rho), scheme, n_walkers=n_walkers, diffusivity=D0,
                          n_steps=int(k[-1]), seed=70 + i, max_transit_probability=max_p)
    assert res.escapes == 0
    te = res.scheme.echo_time
    exact = validation.surface_relaxation_signal("sphere", a, D0, rho, te)
    # discretisation allowance: the realised rho is within 0.1 p of rho (measured residual of the corrected
    # rule: +0.06 p); p is the per-hit probability the run used
    p = res.provenance["absorption_probability_max"]
    allowance = np.max([np.abs(validation.surface_relaxation_signal("sphere", a, D0, rho * (1 + s * 0.1 * p), te)
                               - exact) for s in (-1, 1)], axis=0)
    check_agreement(f"sphere, rho a / D = {h:g}: b = 0 decay vs the exact Robin series", res.signal, res.stderr,
                    exact, allowance=allowance)
    runs[h] = (rho, te, res.signal, res.stderr, res.ground_truth["surface_relaxation_rate"]["intra"])
    print(f"rho a/D = {h:5g}: rho = {rho * 1e6:8.3g} µm/s, rho S/V = {3 * rho / a:8.3g} 1/s, "
          f"slowest mode {1 / tau:8.3g} 1/s, {res.provenance['substeps']} sub-steps")

# %%
# The fast-diffusion limit is the ground truth's rate
# ---------------------------------------------------
# The substrate's ground truth reports :math:`\\rho\\, S/V` per compartment (``surface_relaxation_rate``).
# At :math:`h = 0.03` the slowest mode's rate is within 1 % of it (exactly: :math:`\\xi_1^2 / 3h = 0.994`),
# so the simulated decay must follow :math:`e^{-\\rho (S/V) t}` to that accuracy.
rho, te, s, se, rate = runs[h_values[0]]
check_agreement("fast diffusion: b = 0 decay vs exp(-rho S/V t)", s, se, np.exp(-rate * te),
                allowance=np.exp(-rate * te) * rate * te * 0.01)

# %%
# The picture
# -----------
# Left: the decays on a log scale against time in units of the Brownstein-Tarr time
# :math:`1/(\rho S/V)`. In these units every fast-diffusion decay falls on one line,
# :math:`e^{-t \rho S/V}` (dotted); the slow ones lie above it, since the wall cannot relax what has
# not reached it yet, and bend at early times where several modes decay at once. Right: the rate of the
# slowest mode relative to :math:`\rho S/V`, exact (line) and from the walkers (the log-slope of their
# decay over the last three echo times), against :math:`h`: 1 in the fast regime, the diffusion-limited
# :math:`\pi^2 D_0/a^2` in the slow one.
fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
for (h, (rho, te, s, se, rate)), c in zip(runs.items(), colors):
    tt = np.linspace(0, te[-1] * 1.02, 200)
    ax.semilogy(tt * rate, validation.surface_relaxation_signal("sphere", a, D0, rho, tt), "-", color=c)
    ax.errorbar(te * rate, s, yerr=4.5 * se, fmt="o", ms=4, capsize=2, color=c, label=f"ρa/D₀ = {h:g}")
x = np.linspace(0, 12, 100)
ax.semilogy(x, np.exp(-x), "k:", lw=1.5, label="exp(−t ρS/V): fast diffusion")
ax.set(xlabel="t ρ S/V", ylabel="b = 0 signal (surviving magnetisation)", ylim=(0.02, 1.05), xlim=(0, 12),
       title=f"sphere, a = {a * 1e6:g} µm: Monte Carlo (4.5 SE) and exact series (lines)")
ax.legend(fontsize="small", loc="upper right")

hh = np.geomspace(0.01, 100, 200)
slow = np.array([validation.robin_modes("sphere", x, 1)[0][0] ** 2 for x in hh]) / (3 * hh)
bx.loglog(hh, slow, "k-", label="exact: ξ₁² / 3h")
bx.loglog(hh, np.ones_like(hh), "k:", label="fast diffusion: ρ S/V (Brownstein-Tarr)")
bx.loglog(hh, np.pi**2 / (3 * hh), "k--", label="slow diffusion: π² D₀/a²")
for (h, (rho, te, s, se, rate)), c in zip(runs.items(), colors):
    late = slice(-3, None)                                      # one-mode regime: the last echo times
    slope, _ = np.polyfit(te[late], np.log(s[late]), 1)
    bx.plot(h, -slope / rate, "o", ms=8, color=c)
bx.set(xlabel="h = ρ a / D₀", ylabel="decay rate of the slowest mode / (ρ S/V)", ylim=(0.05, 1.5),
       title="fast to slow diffusion: what the decay rate measures")
bx.legend(fontsize="small", loc="lower left")
fig.suptitle("Surface relaxation in a sphere: the walker against the Robin eigenmode series")
plt.show()

# %%
# Reading the plot: in the fast regime the decay rate measures :math:`S/V` (times :math:`\\rho`), the
# basis of pore-size NMR relaxometry; in the slow regime it measures the size :math:`a` alone (through
# :math:`D_0/a^2`), and the decay is multi-exponential at early times, which a single-:math:`T_2` fit would
# misread as several pore sizes. The ground truth of every relaxing substrate carries ``relaxivity`` and
# ``surface_relaxation_rate`` (1/s per compartment), which databases store with each row.
