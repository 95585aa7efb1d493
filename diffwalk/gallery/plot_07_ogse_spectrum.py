"""
Oscillating gradients and the diffusion spectrum D(ω)
======================================================

A pulsed-gradient experiment lets the spins diffuse for tens of milliseconds; an oscillating-gradient
spin echo (OGSE) with frequency :math:`f` probes much shorter times, about :math:`1/(2\\pi f)`. In the
Gaussian phase approximation (GPA) the signal of *any* waveform is set by the diffusion spectrum
:math:`D(\\omega)`, the Fourier transform of the velocity autocorrelation (Stepišnik 1993, Physica B):

.. math:: -\\ln S = \\int_0^\\infty P(f)\\, D(2\\pi f)\\, df, \\qquad
          b = \\int_0^\\infty P(f)\\, df,

with :math:`P(f) = 2|Q(f)|^2` the encoding spectrum of :math:`q(t)`
(``Scheme.spectrum``). The apparent diffusivity :math:`\\mathrm{ADC} = -\\ln S / b` is the average of
:math:`D(\\omega)` over that spectrum, exact at low b (the GPA is exact to order :math:`b`). A cosine
OGSE with :math:`N` periods per lobe concentrates its spectrum around :math:`f`, so its ADC samples
:math:`D(2\\pi f)` (Does, Parsons & Gore 2003, MRM).

Inside a sphere of radius :math:`R`, with :math:`\\alpha_n R` the roots of :math:`j_1'` and
:math:`B_n = 2R^2 / [(\\alpha_n R)^2 ((\\alpha_n R)^2 - 2)]`,

.. math:: D(\\omega) = \\sum_n B_n \\frac{\\lambda_n \\omega^2}{\\lambda_n^2 + \\omega^2},
          \\qquad \\lambda_n = D_0 \\alpha_n^2 ,

which rises from 0 (no long-range motion) to :math:`D_0`. At high frequency only spins within the
diffusion length :math:`\\sqrt{D_0/\\omega}` of the wall feel it, and (Mitra et al. 1992; Novikov &
Kiselev 2011, J Magn Reson)

.. math:: \\frac{D(\\omega)}{D_0} \\simeq 1 - \\frac{S/V}{d\\sqrt{2}} \\sqrt{\\frac{D_0}{\\omega}}
          = 1 - \\frac{1}{\\sqrt 2 R}\\sqrt{\\frac{D_0}{\\omega}} \\quad (\\text{sphere: } S/V = 3/R,\\ d = 3),

an asymptote for :math:`\\sqrt{D_0/\\omega} \\ll R`. Free diffusion has :math:`D(\\omega) = D_0` at every
frequency. We simulate cosine OGSE at 50-800 Hz in a sphere of radius 5 µm and in free water and
compare the signals with the GPA.
"""

# %%
# Set-up: cosine OGSE, 20-ms lobes, 1 to 16 periods
# --------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np

import sequences
import substrates
import validation
import walker
from diffwalk.lessons import check_agreement, quick_mode

QUICK = quick_mode()                     # DIFFWALK_QUICK=1: fewer walkers, same physics
D0 = 2e-9                                # m^2/s
R = 5e-6                                 # sphere radius, m
N = 3_000 if QUICK else 40_000
SIGMA = 20e-3                            # duration of each lobe, s
B = 300e6                                # s/m^2 (300 s/mm^2): low b, where the ADC is D(omega) averaged
DT = 5e-6                                # time step, s: the walker's step is 0.25 um


def cos_ogse(n_periods):
    return sequences.ogse(n_periods=n_periods, lobe_duration=SIGMA, bvalues=[B], directions=[1, 0, 0],
                          gap=2e-3, dt=DT)


periods = [1, 2, 4, 8, 16]
freqs = np.array(periods) / SIGMA                                  # 50 ... 800 Hz
scheme = sequences.concatenate([cos_ogse(n) for n in periods])
sphere = walker.simulate(substrates.sphere(R), scheme, n_walkers=N, diffusivity=D0, n_steps=scheme.n_steps,
                         seed=1)
free = walker.simulate(substrates.free(), scheme, n_walkers=N, diffusivity=D0, n_steps=scheme.n_steps, seed=2)
assert sphere.escapes == 0

# %%
# The references
# --------------
# The GPA of each waveform exactly as the walker played it (``validation.gpd_signal``: the double
# integral over the waveform, mode by mode), and free diffusion exp(-b D0) with the b of the walk's
# own time grid.
#
# The GPA keeps only the second cumulant of the phase; the fourth, of order b^2, is what it misses. Its
# largest size for a sphere is reached with narrow pulses at long times, when the displacement is the
# difference of two uniform points in the sphere, of excess kurtosis -3/7: then
# ln S - ln S_GPA = (K/6) (ln S)^2 = -0.071 (ln S)^2. We allow 0.1 (ln S)^2 S as the reference error;
# oscillating gradients average the phase over many correlation times and are closer to Gaussian (the
# matrix formalism, cutoff alpha R = 40, differs from the GPA here by 8.5e-4, 1.7e-4 and 1.1e-4 in S at
# 50, 200 and 800 Hz).
gpa = validation.gpd_signal(sphere.scheme, "sphere", R, D0)
gpa_error = 0.1 * np.log(gpa) ** 2 * gpa
# the step: 0.25 um is 0.39 of the diffusion length sqrt(D0/omega) at 800 Hz, where the walls matter
# only within that length. At this step S came out 0.0020 +- 0.0009 below the exact value at 800 Hz
# (300,000 walkers, 5-ms lobes), and 0.0005 +- 0.0009 above it at half the step; at 50 Hz, even at
# twice the step, it was 0.2 SE from exact (100,000 walkers). We allow 0.003 at 800 Hz, scaled with the
# step over that diffusion length, i.e. with sqrt(f)
step_allowance = 0.003 * np.sqrt(freqs / 800.0)
check_agreement("sphere: cosine-OGSE signal vs the GPA", sphere.signal, sphere.stderr, gpa,
                allowance=step_allowance, reference_error=gpa_error)
check_agreement("free water: cosine-OGSE signal vs exp(-b D0)", free.signal, free.stderr,
                np.exp(-free.discrete_bvalues * D0))

# %%
# From the signal to the ADC and to D(omega)
# -------------------------------------------
# ADC = -ln S / b; its standard error follows from that of S by error propagation, SE(S) / (S b).
# The diffusion spectrum of the sphere is the sum over its modes (60 modes converge it to 1e-7 below
# 2 kHz), and the GPA of any waveform is the average of D(omega) over the waveform's spectrum: we check
# that this frequency-domain form reproduces ``gpd_signal`` and then use it for the smooth curve.
b = sphere.scheme.bvalues
adc, adc_se = -np.log(sphere.signal) / b / D0, sphere.stderr / (sphere.signal * b) / D0
adc_free, adc_free_se = -np.log(free.signal) / b / D0, free.stderr / (free.signal * b) / D0
root = validation.spherical_jn_prime_zeros(1, 60)                # alpha_n R
weight = 2 * R**2 / (root**2 * (root**2 - 2))                      # B_n, m^2
lam = D0 * (root / R) ** 2                                         # lambda_n, 1/s


def spectrum_D(f):
    """D(omega)/D0 of the sphere at frequencies f (Hz)."""
    w2 = (2 * np.pi * np.asarray(f, float)[..., None]) ** 2
    return (weight * lam * w2 / (lam**2 + w2)).sum(-1) / D0


def gpa_adc(s):
    """ADC/D0 of every measurement of a scheme in the GPA: D(omega) averaged over its encoding spectrum."""
    f, power = s.spectrum()
    return np.trapezoid(power * spectrum_D(f), f, axis=1) / np.trapezoid(power, f, axis=1)


assert np.allclose(gpa_adc(sphere.scheme), -np.log(gpa) / b / D0, rtol=1e-5)
dense_periods = np.arange(1, 21)                                   # every cos-OGSE with 20-ms lobes, 50-1000 Hz
dense_adc = np.concatenate([gpa_adc(cos_ogse(n)) for n in dense_periods])


def mitra(f):
    """High-frequency asymptote of D(omega)/D0 in a sphere."""
    return 1 - np.sqrt(D0 / (2 * np.pi * f)) / (np.sqrt(2) * R)


# %%
# The picture
# -----------
fs = np.geomspace(5, 2000, 300)
fig, axes = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
ax = axes[0]
ax.plot(fs, spectrum_D(fs), "k", lw=2, label="D(ω)/D₀ of the sphere")
f_spec, power = sphere.scheme.spectrum()
colors = plt.cm.viridis(np.linspace(0, 0.85, len(freqs)))
for p, c, fr, a in zip(power, colors, freqs, gpa_adc(sphere.scheme)):
    keep = (f_spec > 1) & (f_spec < 3000)
    ax.fill_between(f_spec[keep], p[keep] / p.max(), color=c, alpha=0.3, lw=0)
    ax.plot([fr], [a], "o", color=c, mec="k", ms=7)
ax.fill_between([], [], color=colors[2], alpha=0.3, label="encoding spectra P(f) (peak scaled to 1)")
ax.plot([], [], "o", color="0.6", mec="k", label="ADC = D(ω) averaged over P(f) (GPA)")
ax.set(xscale="log", xlim=(5, 2000), ylim=(0, 1.05), xlabel="frequency f = ω/2π (Hz)",
       ylabel="D(ω) / D₀   and   P(f) / max",
       title="each waveform averages D(ω) over its own spectrum")
ax.legend(fontsize="small", loc="upper left")

ax = axes[1]
f_asym = D0 / (2 * np.pi * (R / 4) ** 2)                        # where sqrt(D0/omega) = R/4: ~200 Hz
ax.axvspan(f_asym, 2000, color="0.93", zorder=0)
ax.text(np.sqrt(f_asym * 2000), 1.13, "√(D₀/ω) < R/4: the asymptote applies", ha="center", va="center",
        fontsize="small")
ax.plot(fs, spectrum_D(fs), "k", lw=1, alpha=0.5, label="D(ω)/D₀ (a pure tone, N → ∞)")
ax.plot(dense_periods / SIGMA, dense_adc, ".-", color="tab:blue", lw=1.5, ms=4,
        label="GPA for these cos-OGSE (20-ms lobes)")
ax.errorbar(freqs, adc, yerr=4.5 * adc_se, fmt="o", color="tab:blue", ms=6, capsize=3,
            label=f"Monte Carlo, sphere R = {R * 1e6:.0f} µm, ± 4.5 SE")
fm = fs[fs >= 40]
ax.plot(fm, mitra(fm), "--", color="tab:red", label="1 − √(D₀/ω)/(√2 R)  (Mitra; Novikov & Kiselev)")
ax.axhline(1.0, color="0.3", lw=1)
ax.errorbar(freqs, adc_free, yerr=4.5 * adc_free_se, fmt="s", color="0.3", ms=5, capsize=3,
            label="Monte Carlo, free water (D₀ at every f), ± 4.5 SE")
ax.set(xscale="log", xlim=(20, 2000), ylim=(0, 1.17), xlabel="OGSE frequency f (Hz)",
       ylabel="ADC / D₀ = −ln S / (b D₀)", title=f"ADC of cosine OGSE at b = {B / 1e6:.0f} s/mm²")
ax.legend(fontsize="small", loc="lower right")
fig.suptitle(f"Diffusion spectrum from oscillating gradients (D₀ = {D0 * 1e9:g} µm²/ms, {N} walkers): "
             "error bars are 4.5 standard errors")
plt.show()

# %%
# At low frequency the OGSE lets the spins cross the sphere many times per period: the ADC is small and
# depends on the size of the pore. At high frequency the spins move only a fraction of a micrometre per
# period, most of them never meet the wall, and D(omega) climbs towards D0 as 1/sqrt(omega), with a
# slope set by the surface-to-volume ratio alone: this is how OGSE measures S/V. The GPA curve for
# one-period lobes (50 Hz) lies below D(omega) because a single period has a broad spectrum that
# reaches down to low frequencies, where D(omega) is small. The remaining terms of the asymptote fall
# off fast: it is within 2 % of the deficit 1 - D(omega)/D0 at 400 Hz and 0.7 % at 800 Hz.
for f, a, s, a_ref, d_w in zip(freqs, adc, adc_se, -np.log(gpa) / b / D0, spectrum_D(freqs)):
    print(f"{f:5.0f} Hz: ADC/D0 = {a:.4f} +- {s:.4f}   GPA {a_ref:.4f}   D(omega)/D0 {d_w:.4f}   "
          f"asymptote {mitra(f):.4f}")
