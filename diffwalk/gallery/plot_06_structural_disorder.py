"""
Structural disorder: how D(t) approaches its limit in ordered and random packings
==================================================================================

Across a bundle of impermeable axons, the extra-axonal diffusivity falls from :math:`D_0` at short
times to its tortuosity limit :math:`D_\\infty` (previous lesson). *How* it gets there depends on the
large-scale structure of the packing (Novikov, Jensen, Helpern & Fieremans 2014, PNAS; Burcaw,
Fieremans & Novikov 2015, NeuroImage). For the cumulative diffusivity
:math:`D(t) = \\langle x^2 + y^2 \\rangle / 4t` of walkers that start uniformly in the extra-axonal
space:

- **Periodic (hexagonal) array.** The mean squared displacement is
  :math:`\\langle r^2 \\rangle = 4 D_\\infty t + c` plus terms that decay exponentially, so
  :math:`t\\,[D(t) - D_\\infty] \\to c/4` is a **constant**, and :math:`D_\\infty` is Perrins' value.
- **Random packing (short-range disorder in two dimensions).** The density fluctuations of a random
  packing do not average out at large scales (its structure factor stays finite as
  :math:`k \\to 0`), and in :math:`d = 2` they add a logarithm:

  .. math:: D(t) \\simeq D_\\infty + A\\,\\frac{\\ln(t/t_c)}{t}, \\qquad
            t\\,[D(t) - D_\\infty] \\simeq A \\ln t - A \\ln t_c,

  i.e. the instantaneous diffusivity approaches as :math:`A/t` instead of exponentially; in the
  frequency domain :math:`D(\\omega) - D_\\infty \\propto |\\omega|` instead of :math:`\\omega^2`. The
  law is **asymptotic**: it holds once the walkers have sampled many axons, :math:`t \\gg t_c`, and
  neither :math:`D_\\infty` nor :math:`A` has a closed form for a dense packing.

We pack 400 identical axons (radius 1 µm, volume fraction 0.6) either on a hexagonal lattice or as an
equilibrated random packing (``substrates.packed_axons``), so the only difference is the
arrangement. What theory guarantees, and what we check:

1. hexagonal: :math:`D(t) = D_\\infty + c/(4t)` with :math:`D_\\infty` from Perrins et al. (1979) and no
   :math:`\\ln t` term;
2. random: the :math:`\\ln(t)/t` law, fitted on one range of long times, **predicts** :math:`D(t)` on a
   later range it has not seen.
"""

# %%
# Set-up: the same axons, ordered and random
# -------------------------------------------
# Times are measured in units of a^2/D0, with a the lattice constant of the hexagonal array at this
# volume fraction (the typical distance between axon centres): a^2/D0 = 3.0 ms here. Each walk lasts
# 8 a^2/D0 (24 ms) and records the position every 0.05 a^2/D0. Walkers start uniformly in the
# extra-axonal space, the equilibrium distribution, so every window of a walk is as good as its start:
# the MSD at a lag t is averaged over all windows of each walk (a time-averaged MSD), which lowers the
# noise several-fold at the same cost.
import itertools
import warnings

import matplotlib.pyplot as plt
import numpy as np

import sequences
import substrates
import validation
import walker
from diffwalk.lessons import check_agreement, quick_mode

QUICK = quick_mode()                     # DIFFWALK_QUICK=1: fewer walkers, shorter walks, same physics
D0 = 2e-9                                # m^2/s
R = 1e-6                                 # axon radius, m
F = 0.6                                  # intra-axonal volume fraction
# 400 axons fill a periodic box 18.6 a wide; the box is itself a (huge) lattice cell, whose periodicity
# cuts the ln(t)/t tail off at t ~ L^2/(4 pi^2 D_inf) ~ 18 a^2/D0, well after our walks end (with 100
# axons that would be ~4 a^2/D0, inside the range we test)
N_AXONS = 400
N_RAND = 2_000 if QUICK else 20_000     # walkers in the random packing
N_HEX = 1_000 if QUICK else 8_000      # walkers in the hexagonal array (less noisy: no slow tail)
WALK = 5.0 if QUICK else 8.0             # walk length, units of a^2/D0
RECORD = 0.05                            # record interval, units of a^2/D0
SPACING = R * np.sqrt(2 * np.pi / (np.sqrt(3) * F))   # a: the hexagonal lattice constant, m
UNIT = SPACING**2 / D0                                  # the time unit, s

random_packing = substrates.packed_axons(radii=np.full(N_AXONS, R), icvf=F, seed=1)
hexagonal = substrates.cylinder_lattice(R, F, "hexagonal")


def walk(sub, n_walkers, seed):
    """(N, K + 1, 2) transverse displacements every RECORD (the first is 0)."""
    # step 0.15 R, a third of the hexagonal gap (0.46 R). In the random packing some axons nearly touch
    # (gaps down to 0.02 R) and the step does not resolve those gaps: halving it raised D(t) by
    # 1 % +- 1 % at t = 0.4 a^2/D0. That shifts D_inf a little, not the form of the approach, which is
    # what is checked here for the random packing (the walk at this step is itself a random medium).
    ell = 0.15 * R
    per = int(np.ceil(RECORD * UNIT / (ell**2 / (6 * D0))))
    n_rec = round(WALK / RECORD)
    n = per * n_rec
    dt = WALK * UNIT / n
    scheme = sequences.from_waveforms(np.zeros((1, n, 3)), dt)     # no gradient: displacements only
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="step length")  # the 1/6-of-the-pore rule; see above
        res = walker.simulate(sub, scheme, n_walkers=n_walkers, diffusivity=D0, n_steps=n, seed=seed,
                              start="extra", record_times=dt * per * np.arange(1, n_rec + 1))
    assert res.escapes == 0
    return np.concatenate([np.zeros((n_walkers, 1, 2)), res.displacements[:, :, :2]], axis=1)


x_rand = walk(random_packing, N_RAND, seed=1)
x_hex = walk(hexagonal, N_HEX, seed=2)

# %%
# D(t) from the time-averaged MSD, with jackknife errors
# -------------------------------------------------------
# The values of D at different lags come from the same walkers, so they are correlated; every
# standard error below (of D, of the fitted parameters and of the predictions) is a delete-one-group
# jackknife over 20 groups of walkers, which carries those correlations.
lags = np.unique(np.round(np.geomspace(1, round(WALK / RECORD) // 2, 28)).astype(int))
t = lags * RECORD                                  # units of a^2/D0
G = 20


def tamsd(x):
    """Time-averaged <r^2>/4 at every lag (units of a^2): the mean over all walkers, and G leave-one-group-out means."""
    edges = np.linspace(0, len(x), G + 1).astype(int)
    groups = [x[i:j] for i, j in itertools.pairwise(edges)]
    per_group = np.array([[((g[:, L:] - g[:, :-L]) ** 2).sum(-1).mean() for L in lags] for g in groups])
    sizes = np.diff(edges)[:, None]
    full = (per_group * sizes).sum(0) / sizes.sum()
    leave_one_out = (full * sizes.sum() - per_group * sizes) / (sizes.sum() - sizes)
    return full / 4 / SPACING**2, leave_one_out / 4 / SPACING**2


def jackknife_se(replicates):
    r = np.asarray(replicates)
    return np.sqrt((G - 1) / G * ((r - r.mean(0)) ** 2).sum(0))


y_rand, y_rand_jk = tamsd(x_rand)                  # y = <r^2>/4 = t D(t), units of a^2
y_hex, y_hex_jk = tamsd(x_hex)
D_rand, D_rand_se = y_rand / t, jackknife_se(y_rand_jk / t)   # D(t)/D0, since t is in units of a^2/D0
D_hex, D_hex_se = y_hex / t, jackknife_se(y_hex_jk / t)

# %%
# Fit the long-time law on one range, predict the next
# -----------------------------------------------------
# t D(t) = <r^2>/4 = D_inf t + A ln t + B is linear in (D_inf, A, B), so the fit is a weighted linear
# least-squares (weights 1/t: the noise of <r^2> grows about like t); t_c = exp(-B/A). We fit on
# 0.25 <= t <= 1 a^2/D0 and predict 1 < t <= WALK/2. Where does the asymptotic regime begin? Fitted
# on 0.05-0.3 a^2/D0 the same law mispredicts the later D(t) by 5-9 standard errors (with 20,000
# walkers); from 0.25 a^2/D0 (0.76 ms, about the time to diffuse across one axon diameter) on, it holds.
FIT = (t >= 0.25 - 1e-9) & (t <= 1.0 + 1e-9)
TEST = t > 1.0 + 1e-9


def fit_law(y, with_log=True):
    cols = [t, np.log(t), np.ones_like(t)] if with_log else [t, np.ones_like(t)]
    X = np.column_stack(cols)[FIT]
    w = 1 / t[FIT]
    return np.linalg.lstsq(X * w[:, None], y[FIT] * w, rcond=None)[0]


def law(c, tt, with_log=True):
    """D(t)/D0 of the fitted law."""
    return c[0] + (c[1] * np.log(tt) + c[2]) / tt if with_log else c[0] + c[1] / tt


c_rand = fit_law(y_rand)
c_rand_jk = np.array([fit_law(y) for y in y_rand_jk])
c_rand_se = jackknife_se(c_rand_jk)
pred = law(c_rand, t[TEST])
miss = D_rand[TEST] - pred
miss_se = jackknife_se([y[TEST] / t[TEST] - law(c, t[TEST]) for y, c in zip(y_rand_jk, c_rand_jk)])
t_c = np.exp(-c_rand[2] / c_rand[1])
print(f"random packing: D_inf/D0 = {c_rand[0]:.4f} +- {c_rand_se[0]:.4f}, A = {c_rand[1] * SPACING**2 * 1e12:.4f} +- "
      f"{c_rand_se[1] * SPACING**2 * 1e12:.4f} um^2, t_c = {t_c * UNIT * 1e3:.3f} ms")
# the prediction is exact only asymptotically; the statistical error of the prediction is the jackknife
# SE of (data - prediction), which includes the fit's own uncertainty and its correlation with the data
check_agreement("random packing: ln(t)/t law fitted on t in [0.25, 1] predicts D(t) on (1, WALK/2]", miss,
                miss_se, 0.0)

# The ordered-lattice form D_inf + c/(4t) (no logarithm), fitted on the same range, does not predict the
# random packing: print how far off it is (in jackknife standard errors)
c_nolog = fit_law(y_rand, with_log=False)
z_nolog = (D_rand[TEST] - law(c_nolog, t[TEST], False)) / jackknife_se(
    [y[TEST] / t[TEST] - law(fit_law(y, False), t[TEST], False) for y in y_rand_jk])
print("random packing, fitted without the logarithm: misses the later D(t) by", np.round(z_nolog, 1), "SE")

# %%
# The hexagonal array: Perrins' limit and no logarithm
# -----------------------------------------------------
# The same three-parameter fit on the same range: the coefficient of ln t must vanish, and D_inf must
# be Perrins'. Allowances as in the tortuosity lesson: 0.5 % for the finite step (a third of the gap)
# and 0.1 % for Perrins' truncated series; the exponential transient is long gone by t = 0.25 a^2/D0.
c_hex = fit_law(y_hex)
c_hex_se = jackknife_se([fit_law(y) for y in y_hex_jk])
check_agreement("hexagonal array: coefficient A of ln(t)/t vs 0", c_hex[1], c_hex_se[1], 0.0)
c_hex2 = fit_law(y_hex, with_log=False)           # with A = 0: D(t) = D_inf + c/(4t)
c_hex2_se = jackknife_se([fit_law(y, False) for y in y_hex_jk])
perrins = validation.perrins_tortuosity(F, "hexagonal")
check_agreement("hexagonal array: D_inf/D0 vs Perrins et al. 1979", c_hex2[0], c_hex2_se[0], perrins,
                allowance=0.005 * perrins, reference_error=0.001 * perrins)
print(f"hexagonal array: D_inf/D0 = {c_hex2[0]:.4f} +- {c_hex2_se[0]:.4f} (Perrins {perrins:.4f}), "
      f"A = {c_hex[1] * SPACING**2 * 1e12:.4f} +- {c_hex_se[1] * SPACING**2 * 1e12:.4f} um^2")
# for the picture: the offset c/4 with D_inf fixed at Perrins' value (weighted mean of t D(t) - D_inf t)
c_hex_offset = np.sum(((y_hex - perrins * t) / t**2)[FIT]) / np.sum(1 / t[FIT] ** 2)

# %%
# The picture
# -----------
# Left: D(t) itself. Right: t [D(t) - D_inf], which is flat for the lattice (the constant c/4) and a
# straight line against ln t for the random packing (slope A): the signature of two-dimensional
# short-range disorder. D_inf is Perrins' value for the lattice and the fitted one for the random
# packing; the error bars of the random packing include the uncertainty of that fitted D_inf.
ms = UNIT * 1e3
fig, axes = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
ax = axes[0]
tt = np.geomspace(0.25, t[-1], 200)
ax.axvspan(0.25 * ms, 1.0 * ms, color="0.9", zorder=0)
ax.errorbar(t * ms, D_hex, yerr=4.5 * D_hex_se, fmt="s", ms=4, color="tab:blue", capsize=2,
            label="Monte Carlo, hexagonal array, ± 4.5 SE")
ax.plot(tt * ms, perrins + c_hex_offset / tt, color="tab:blue", lw=1, label="D∞ + c/4t (D∞: Perrins, c fitted)")
ax.axhline(perrins, color="tab:blue", ls=":", lw=1.2, label=f"Perrins D∞ = {perrins:.3f} D₀")
ax.errorbar(t * ms, D_rand, yerr=4.5 * D_rand_se, fmt="o", ms=4, color="tab:red", capsize=2,
            label="Monte Carlo, random packing, ± 4.5 SE")
ax.plot(tt[tt <= 1.0] * ms, law(c_rand, tt[tt <= 1.0]), color="tab:red", lw=1.5,
        label="D∞ + A ln(t/t_c)/t, fitted (shaded range)")
ax.plot(tt[tt >= 1.0] * ms, law(c_rand, tt[tt >= 1.0]), color="tab:red", lw=1.5, ls="--",
        label="... and its prediction beyond")
ax.axhline(c_rand[0], color="tab:red", ls=":", lw=1.2, label=f"fitted D∞ = {c_rand[0]:.3f} D₀")
ax.set(xscale="log", xlabel="diffusion time t (ms)", ylabel="D(t) / D₀ = ⟨x² + y²⟩ / 4D₀t",
       ylim=(0.38, 0.75), title="extra-axonal D(t) across 400 axons, f = 0.6")
ax.text(0.5 * ms, 0.745, "fit\nrange", ha="center", va="top", fontsize="small")
ax.legend(fontsize="small", loc="lower left")

ax = axes[1]
# t [D(t) - D_inf] in um^2 (t in a^2/D0 and D in D0 make it a multiple of a^2); for the random packing
# D_inf is the fitted one
um2 = SPACING**2 * 1e12
tail_hex = t * (D_hex - perrins) * um2
tail_hex_se = t * D_hex_se * um2
tail_rand = t * (D_rand - c_rand[0]) * um2
tail_rand_se = jackknife_se([t * (y / t - c[0]) for y, c in zip(y_rand_jk, c_rand_jk)]) * um2
late = t >= 0.25 - 1e-9
ax.axvspan(0.25 * ms, 1.0 * ms, color="0.9", zorder=0)
ax.errorbar(t[late] * ms, tail_hex[late], yerr=4.5 * tail_hex_se[late], fmt="s", ms=4, color="tab:blue",
            capsize=2, label="hexagonal array: flat (c/4, no logarithm), ± 4.5 SE")
ax.axhline(c_hex_offset * um2, color="tab:blue", lw=1)
ax.errorbar(t[late] * ms, tail_rand[late], yerr=4.5 * tail_rand_se[late], fmt="o", ms=4, color="tab:red",
            capsize=2, label="random packing, ± 4.5 SE")
ax.plot(tt[tt <= 1.0] * ms, (c_rand[1] * np.log(tt[tt <= 1.0]) + c_rand[2]) * um2, color="tab:red", lw=1.5,
        label=f"A ln(t/t_c): A = {c_rand[1] * um2:.3f} µm²,  t_c = {t_c * ms:.2f} ms")
ax.plot(tt[tt >= 1.0] * ms, (c_rand[1] * np.log(tt[tt >= 1.0]) + c_rand[2]) * um2, color="tab:red", lw=1.5,
        ls="--")
ax.set(xscale="log", xlabel="diffusion time t (ms)", ylabel="t [D(t) - D∞]  (µm²)",
       title="the tail: t [D(t) - D∞] against ln t")
ax.legend(fontsize="small", loc="upper left")
fig.suptitle(f"Structural disorder (Burcaw et al. 2015): the same axons (R = 1 µm, D₀ = 2 µm²/ms), ordered "
             f"or random. Bars are 4.5 standard errors.\nThe ln(t)/t law is asymptotic: fitted only for "
             f"t ≥ 0.25 a²/D₀ = {0.25 * ms:.2f} ms (a = {SPACING * 1e6:.2f} µm, the lattice constant)")
plt.show()

# %%
# The random packing hinders diffusion more than the lattice at the same volume fraction (its axons
# cluster and nearly touch, closing some paths; D_inf of one packing of 400 axons also varies by about
# 2 % from packing to packing), and it approaches its limit far more slowly: at 10 ms its D(t) is still
# 2 % above D_inf, and the approach goes as ln(t)/t, the fingerprint of two-dimensional short-range
# disorder that Burcaw et al. found in simulations and that the "temporal zeppelin" model
# (``validation.get_model("temporal_zeppelin")``) builds in. A model that takes the extra-axonal D_perp
# as time-independent, or computes it from f with a tortuosity law, is wrong on both counts for real,
# disordered white matter.
