"""
Tortuosity: the long-time diffusivity around packed cylinders and spheres
=========================================================================

Around impermeable cells, water in the extra-cellular space still diffuses over any distance, but
more slowly than in free water: at long times its displacement is Gaussian again with a smaller
diffusivity :math:`D_\\infty < D_0`. The ratio is fixed by the geometry alone, through the same
boundary-value problem as the electrical conductivity of a medium with insulating inclusions
(Einstein relation; Sen, Scala & Cohen 1981, Geophysics; Latour et al. 1994, PNAS): with
:math:`f` the volume fraction of the cells and :math:`\\sigma_\\mathrm{eff}/\\sigma_0` the relative
conductivity,

.. math:: \\frac{D_\\infty}{D_0} = \\frac{\\sigma_\\mathrm{eff}/\\sigma_0}{1 - f}.

- **Parallel cylinders, transverse diffusion.** For periodic arrays the multipole (Rayleigh) method
  of Perrins, McKenzie & McPhedran (1979, Proc R Soc Lond A) gives :math:`\\sigma_\\mathrm{eff}`
  essentially exactly, e.g. for the hexagonal array

  .. math:: \\frac{\\sigma_\\mathrm{eff}}{\\sigma_0} = 1 - \\frac{2f}{1 + f - 0.075422 f^6/(1 - 1.060283 f^{12})
            - 0.000076 f^{12}}

  (``validation.perrins_tortuosity``, square array too). Maxwell-Garnett's
  :math:`D_\\infty/D_0 = 1/(1+f)` ignores how the cylinders are arranged (the arrangement enters
  Perrins' series at order :math:`f^4` for the square array and :math:`f^6` for the hexagonal one)
  and is the Hashin-Shtrikman *upper bound* for any isotropic arrangement; the differential effective
  medium :math:`D_\\infty/D_0 = 1 - f` (Bruggeman; Sen et al. 1981), the "tortuosity model" of NODDI
  and ActiveAx (Szafer, Zhong & Gore 1995), is not a lattice result at all.
- **Spheres.** Maxwell (1873) for insulating spheres, :math:`\\sigma_\\mathrm{eff}/\\sigma_0 =
  2(1-f)/(2+f)`, gives

  .. math:: \\frac{D_\\infty}{D_0} = \\frac{2}{2 + f} = \\frac{1}{1 + f/2},

  again the Hashin-Shtrikman upper bound. For a cubic lattice Rayleigh (1892) showed that the first
  correction, from the octupoles the neighbours induce, is of relative order :math:`f^{10/3}`: for a
  simple cubic lattice the denominator :math:`2 + f` becomes :math:`2 + f - 0.979 f^{10/3}` (his
  coefficient 1.305 times the octupole polarisability 3/4 of an insulating sphere), and still higher
  multipoles follow. Maxwell's formula is therefore asserted only up to :math:`f = 0.2`, where that
  term is below 0.1 %; above it the spheres are drawn but not checked against Maxwell.

**How long is long?** The mean squared displacement of a walker in a periodic array is
:math:`\\langle r^2 \\rangle = 2 d D_\\infty t + c + (\\text{terms decaying like } e^{-t/t_r})`, with
:math:`c > 0` left over from the early, nearly free motion and :math:`t_r` the time to explore one
lattice cell (longer when narrow throats separate the pores). The usual estimate
:math:`\\langle r^2 \\rangle / (2 d t)` therefore approaches :math:`D_\\infty` only like :math:`1/t`, while
the *slope* :math:`[\\langle r^2 \\rangle(2\\tau) - \\langle r^2 \\rangle(\\tau)] / (2 d \\tau)` converges
exponentially once :math:`\\tau \\gg t_r`. Here :math:`t_r` is at most about :math:`0.02\\,a^2/D_0`
(:math:`a` the lattice constant), and we use :math:`\\tau = 0.1\\,a^2/D_0`.
"""

# %%
# Set-up: lattices of cylinders and spheres, walkers started in the extra-cellular space
# ----------------------------------------------------------------------------------------
# No gradient is needed: we record displacements. Each walk lasts 0.8 a^2/D0 and records the
# position every 0.025 a^2/D0; the walkers start uniformly in the extra-cellular space, which is the
# equilibrium distribution, so every window of a walk is as good as its start. Averaging the
# displacement over all windows of a walk (a time-averaged MSD) gives each walker one estimate of
# D_inf, and the spread of those independent estimates gives the standard error honestly.
import warnings

import matplotlib.pyplot as plt
import numpy as np

import sequences
import substrates
import validation
import walker
from diffwalk.lessons import check_agreement, quick_mode

QUICK = quick_mode()                     # DIFFWALK_QUICK=1: fewer walkers, same physics
D0 = 2e-9                                # m^2/s
R = 1e-6                                 # cylinder and sphere radius, m
N = 1_200 if QUICK else 24_000           # walkers per substrate
WALK, RECORD, TAU = 0.8, 0.025, 0.1      # walk length, record interval and lag, in units of a^2/D0
LAG = round(TAU / RECORD)                # the lag in record intervals


def walk(sub, a, gap, d, seed):
    """(N, K + 1, d) displacements at K + 1 equally spaced times (the first is 0), and the record interval."""
    # step length: half the narrowest gap, and at most 0.3 R. The walker warns above 1/6 of the mean
    # pore width, a rule made for signals at high b and short times; for the long-time D it is far
    # stricter than needed (a step-halving study is quoted with the allowances below)
    ell = min(0.5 * gap, 0.3 * R)
    per = int(np.ceil(RECORD * a**2 / D0 / (ell**2 / (6 * D0))))    # steps per record interval
    n_rec = round(WALK / RECORD)
    n = per * n_rec
    dt = WALK * a**2 / D0 / n
    scheme = sequences.from_waveforms(np.zeros((1, n, 3)), dt)     # no gradient: displacements only
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="step length")
        res = walker.simulate(sub, scheme, n_walkers=N, diffusivity=D0, n_steps=n, seed=seed, start="extra",
                              record_times=dt * per * np.arange(1, n_rec + 1))
    assert res.escapes == 0
    x = np.concatenate([np.zeros((N, 1, d)), res.displacements[:, :, :d]], axis=1)
    return x, dt * per


def windowed_msd(x, lag):
    """Per-walker mean squared displacement over all windows of ``lag`` record intervals, (N,) m^2."""
    return ((x[:, lag:] - x[:, :-lag]) ** 2).sum(axis=-1).mean(axis=1)


def d_inf(x, d, interval):
    """D_inf/D0 from the MSD slope between lags TAU and 2 TAU, and its standard error (walker spread)."""
    per_walker = (windowed_msd(x, 2 * LAG) - windowed_msd(x, LAG)) / (2 * d * LAG * interval) / D0
    return per_walker.mean(), per_walker.std(ddof=1) / np.sqrt(len(per_walker))


# %%
# Cylinders: hexagonal and square arrays, diffusion across them
# --------------------------------------------------------------
# The lattice constant a and the narrowest gap a - 2R follow from R and f.
cyl_cases = [("hexagonal", f) for f in (0.2, 0.4, 0.6, 0.7)] + [("square", f) for f in (0.3, 0.5, 0.6)]
cyl = {}
for i, (lattice, f) in enumerate(cyl_cases):
    sub = substrates.cylinder_lattice(R, f, lattice)
    a = sub.description["lattice_constant"]
    x, interval = walk(sub, a, a - 2 * R, 2, seed=10 + i)
    cyl[lattice, f] = (*d_inf(x, 2, interval), validation.perrins_tortuosity(f, lattice))
    if (lattice, f) == ("square", 0.6):
        slow = x, interval           # the slowest approach, kept for the last panel
for lattice in ("hexagonal", "square"):
    fs = [f for (lat, f) in cyl if lat == lattice]
    est, se, ref = np.array([cyl[lattice, f] for f in fs]).T
    # allowances: finite step 0.5 % (step-halving: at l = 0.5, 0.3 and 0.15 of the gap, hexagonal f = 0.7,
    # and 0.5 vs 0.25 of the gap, simple cubic f = 0.3, D_inf moved by at most 0.4 %, at a statistical
    # resolution of 0.3 %), plus 0.2 % for what is left of the exponential approach at tau = 0.1 a^2/D0
    # (square f = 0.6, the slowest here: +1.4 % at tau = 0.05, shrinking fivefold per 0.025 a^2/D0).
    # Perrins' series is truncated after f^12; the terms left out are far below 0.1 %, which we allow.
    check_agreement(f"D_inf/D0 around a {lattice} array vs Perrins et al. 1979", est, se, ref,
                    allowance=0.007 * ref, reference_error=0.001 * ref)

# %%
# Spheres: a simple cubic lattice, diffusion in 3-D
# --------------------------------------------------
sph = {}
for i, f in enumerate((0.1, 0.2, 0.3, 0.4)):
    sub = substrates.sphere_lattice(R, f, "cubic")
    a = sub.description["lattice_constant"]
    x, interval = walk(sub, a, a - 2 * R, 3, seed=20 + i)
    sph[f] = d_inf(x, 3, interval)
f_sph = np.array(list(sph))
est_s, se_s = np.array(list(sph.values())).T


def maxwell(f):
    return 2 / (2 + f)


def rayleigh_sc(f):
    """Maxwell with Rayleigh's first multipole correction for the simple cubic lattice (insulating spheres)."""
    return (1 - 3 * f / (2 + f - 0.75 * 1.305 * f ** (10 / 3))) / (1 - f)


ok = f_sph <= 0.2                  # Maxwell's regime: the f^(10/3) term is below 0.1 % there
ref_s = maxwell(f_sph[ok])
# allowance: twice the Rayleigh octupole term Maxwell leaves out (it is 0.01 % and 0.08 % at f = 0.1 and
# 0.2; twice, for the higher multipoles after it), plus the 0.7 % for the step and the remaining
# transient, as for the cylinders
check_agreement("D_inf/D0 around a simple cubic lattice of spheres vs Maxwell (f <= 0.2)", est_s[ok], se_s[ok],
                ref_s, allowance=2 * np.abs(ref_s - rayleigh_sc(f_sph[ok])) + 0.007 * ref_s)

# %%
# How long is long: the square array at f = 0.6
# -----------------------------------------------
# The cumulative D = MSD/(4t) and the slope D between t and 2t, both from the windowed MSD, against
# the lag. The slope settles on Perrins' value by t ~ 0.1 a^2/D0; the cumulative one is still above
# it at the end of the walk, because of the offset c/(4t).
x, interval = slow
lags = np.arange(1, x.shape[1] // 2)
t_lag = lags * interval
a_sq = substrates.cylinder_lattice(R, 0.6, "square").description["lattice_constant"]
msd_w = np.array([windowed_msd(x, L) for L in range(1, 2 * lags[-1] + 1)])        # (2 L_max, N)
cum = msd_w[lags - 1] / (4 * t_lag[:, None]) / D0
slope = (msd_w[2 * lags - 1] - msd_w[lags - 1]) / (4 * t_lag[:, None]) / D0
cum_m, cum_se = cum.mean(1), cum.std(1, ddof=1) / np.sqrt(N)
slope_m, slope_se = slope.mean(1), slope.std(1, ddof=1) / np.sqrt(N)
ref_sq = validation.perrins_tortuosity(0.6, "square")
late = t_lag >= TAU * a_sq**2 / D0 - 1e-12
check_agreement("slope D(t) of the square array, t >= 0.1 a^2/D0, vs Perrins", slope_m[late], slope_se[late],
                ref_sq, allowance=0.007 * ref_sq, reference_error=0.001 * ref_sq)

# %%
# The picture
# -----------
fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), layout="constrained")
fs = np.linspace(0.01, 0.78, 200)
ax = axes[0]
for lattice, color, marker, fmax in (("hexagonal", "tab:blue", "o", 0.85), ("square", "tab:orange", "s", 0.75)):
    ff = fs[fs <= fmax]
    ax.plot(ff, [validation.perrins_tortuosity(f, lattice) for f in ff], color=color,
            label=f"Perrins et al. 1979, {lattice}")
    pts = np.array([(f, *cyl[lat, f][:2]) for (lat, f) in cyl if lat == lattice])
    ax.errorbar(pts[:, 0], pts[:, 1], yerr=4.5 * pts[:, 2], fmt=marker, color=color, ms=6, capsize=3,
                label=f"Monte Carlo, {lattice}, ± 4.5 SE")
ax.plot(fs, 1 / (1 + fs), "k--", lw=1, label="Maxwell-Garnett 1/(1+f)\n(Hashin-Shtrikman upper bound)")
ax.plot(fs, 1 - fs, "k:", lw=1.2, label="1 - f (differential EMT,\nNODDI's tortuosity model)")
ax.set(xlabel="intra-cellular volume fraction f", ylabel="D∞ / D₀", ylim=(0.2, 1.02), xlim=(0, 0.8),
       title="cylinders, diffusion across them")
ax.legend(fontsize="small", loc="lower left")

ax = axes[1]
fs3 = np.linspace(0.01, 0.5, 200)
ax.plot(fs3, maxwell(fs3), color="tab:green", label="Maxwell 1873: 2/(2+f)")
ax.plot(fs3, rayleigh_sc(fs3), color="tab:green", ls=":", label="+ Rayleigh 1892 octupole term\n(simple cubic)")
ax.plot(fs3, np.sqrt(1 - fs3), "k:", lw=1.2, label="(1-f)^½ (differential EMT)")
ax.errorbar(f_sph[ok], est_s[ok], yerr=4.5 * se_s[ok], fmt="^", color="tab:green", ms=7, capsize=3,
            label="Monte Carlo, checked vs Maxwell, ± 4.5 SE")
ax.errorbar(f_sph[~ok], est_s[~ok], yerr=4.5 * se_s[~ok], fmt="^", mfc="white", color="tab:green", ms=7,
            capsize=3, label="Monte Carlo, f > 0.2: not checked, ± 4.5 SE")
ax.axvspan(0.2, 0.5, color="0.92", zorder=0)
ax.text(0.35, 0.985, "Maxwell only\napproximate here", ha="center", va="top", fontsize="small")
ax.set(xlabel="sphere volume fraction f", ylabel="D∞ / D₀", ylim=(0.68, 1.0), xlim=(0, 0.5),
       title="spheres on a simple cubic lattice, 3-D")
ax.legend(fontsize="small", loc="lower left")

ax = axes[2]
tt = t_lag * D0 / a_sq**2
ax.errorbar(tt, cum_m, yerr=4.5 * cum_se, fmt="o", ms=3.5, color="tab:gray", capsize=2,
            label="MSD / 4t (cumulative), ± 4.5 SE")
ax.errorbar(tt, slope_m, yerr=4.5 * slope_se, fmt="s", ms=3.5, color="tab:orange", capsize=2,
            label="[MSD(2t) - MSD(t)] / 4t (slope), ± 4.5 SE")
ax.axhline(ref_sq, color="tab:orange", label="Perrins, square f = 0.6")
ax.axhline(1 / 1.6, color="k", ls="--", lw=1, label="Maxwell-Garnett")
ax.axvspan(TAU, tt[-1] + 0.02, color="0.92", zorder=0)
ax.text(0.5 * (TAU + tt[-1]), 0.515, "slope asserted here (t ≥ 0.1 a²/D₀)", ha="center", fontsize="small")
ax.set(xlabel="t  (units of a²/D₀; a = lattice constant)", ylabel="D(t) / D₀", ylim=(0.50, 0.76),
       title=f"how long is long: square array, f = 0.6\n(a²/D₀ = {a_sq**2 / D0 * 1e3:.2f} ms for R = 1 µm)")
ax.legend(fontsize="small", loc="upper right")
fig.suptitle("Long-time diffusivity of the extra-cellular space (D₀ = 2 µm²/ms): Monte Carlo with "
             "4.5-standard-error bars against theory")
plt.show()

# %%
# At the same volume fraction the square array hinders diffusion more than the hexagonal one: its
# cylinders nearly touch along the lattice axes and leave narrow throats. Maxwell-Garnett cannot see
# the arrangement at all, and the differential-EMT "tortuosity model" 1 - f lies far below both
# arrays: a fitted model that links D_perp to f through it inherits that bias. For randomly packed
# axons (next lesson) there is no closed form, and D(t) approaches D_inf much more slowly.
for (lattice, f), (est, se, ref) in cyl.items():
    print(f"{lattice:9s} f = {f:.1f}: D_inf/D0 = {est:.4f} +- {se:.4f}   Perrins {ref:.4f}   "
          f"Maxwell-Garnett {1 / (1 + f):.4f}   1 - f = {1 - f:.2f}")
for f, (est, se) in sph.items():
    print(f"spheres   f = {f:.1f}: D_inf/D0 = {est:.4f} +- {se:.4f}   Maxwell {maxwell(f):.4f}   "
          f"with Rayleigh's term {rayleigh_sc(f):.4f}")
