"""
Dispersion that diffusion sees: NODDI's ODI against the fibres' own
===================================================================

NODDI (Zhang et al. 2012, NeuroImage 61:1000) and every dispersion model picture a bundle as straight
sticks pointing along a Watson distribution: a stick along :math:`\\hat n` attenuates as
:math:`e^{-b D (\\hat g \\cdot \\hat n)^2}` and the bundle's signal is that averaged over the orientation
distribution. Real fibres are not straight sticks; they wind, and a fibre's orientation *changes along it*.
The stick picture holds while a molecule's path along the fibre is short against the fibre's turns; once
it is long, a winding fibre is a straight, slower channel (its long-time axial diffusivity is
:math:`D_0 \\cos^2\\theta`, :math:`\\theta` its pitch angle), and its dispersion is invisible. So the ODI
that NODDI reports depends on the diffusion time, and on the scale at which the fibres disperse (Nilsson
et al. 2012, MRM 68:1584; Brabec et al. 2020, NMR Biomed 33:e4187; Lee et al. 2020, Brain Struct Funct
225:1277).

``substrates.crossing_bundles(odi=...)`` makes each fibre a helix about the bundle's axis, with a pitch
angle drawn so that the bundle's tangents sample a Watson distribution (the orientation distribution
measured on the geometry is in its ground truth), and ``wavelength=`` sets the length of a helix turn.
For a *thin* helix of radius :math:`A` and pitch angle :math:`\\theta` the narrow-pulse signal is exact:
a molecule moves a Gaussian arc length :math:`u` (variance :math:`2 D_0 \\Delta`) along the centre line,
which carries it :math:`u \\cos\\theta` along the axis and along a chord :math:`2A\\sin(\\omega u / 2)`
across it (:math:`\\omega = \\sin\\theta / A`, the chord's direction uniform over the turn), and its offset
in the tube's cross-section (radius :math:`r`, :math:`r^2 / D_0 \\ll \\Delta`) adds a disk's form factor
:math:`2J_1(x)/x` at each end, :math:`x = q r \\sqrt{1 - (\\hat g \\cdot \\hat t)^2}`:

.. math:: S = \\sum_f w_f \\int du\\, \\frac{e^{-u^2 / 4 D_0 \\Delta}}{\\sqrt{4 \\pi D_0 \\Delta}}
          \\left\\langle \\cos\\left(q \\hat g \\cdot [c_f(s + u) - c_f(s)]\\right)
          F(\\hat t_f(s)) F(\\hat t_f(s + u)) \\right\\rangle_s ,

with :math:`w_f` the fibres' volume shares. It is the reference the Monte Carlo is checked against, at
every diffusion time; NODDI is then fitted to both.
"""

# %%
# One dispersed bundle, two scales of winding
# -------------------------------------------
# A bundle of 40 fibres (radius 0.5 µm) with a requested ODI of 0.2, built twice: with helix turns 15 µm
# long, and with the tightest turns the generator allows (about 2 µm, the default, which packs densest).
# Walkers start inside the fibres, so the intra-axonal signal is what is measured and the (low) packing
# density of the long turns does not matter. Pulses of 0.1 ms (nearly narrow) at b = 1 and 2.5 ms/µm²
# along 20 directions, diffusion times from 3 to 40 ms.
import functools
import math
import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy.special import j1, jnp_zeros

import sequences
import substrates
import validation
import walker
from diffwalk.lessons import check_agreement, quick_mode

QUICK = quick_mode()                     # DIFFWALK_QUICK=1: fewer walkers and diffusion times, same physics
D0 = 2e-9
DELTA_PULSE = 0.1e-3
n_walkers = 2_400 if QUICK else 16_000
times = [3e-3, 24e-3] if QUICK else [3e-3, 6e-3, 12e-3, 24e-3, 40e-3]
SHELLS = (1e9, 2.5e9)
dirs = sequences.fibonacci_directions(20)
g_all = np.vstack([dirs] * len(SHELLS))
b_all = np.repeat(SHELLS, len(dirs))

long_turns = substrates.crossing_bundles(angles=(0,), n_fibres=40, icvf=0.025, odi=0.2, mean_radius=0.5e-6,
                                         wavelength=15e-6, seed=3)
tight = substrates.crossing_bundles(angles=(0,), n_fibres=40, icvf=0.2, odi=0.2, mean_radius=0.5e-6, seed=3)
for name, sub in [("15 µm turns", long_turns), ("tight turns", tight)]:
    T = sub.truth
    th, A = np.radians(T["fibre_tilts"]), np.asarray(T["fibre_amplitudes"])
    turn = 2 * np.pi * A / np.tan(th)                     # axial length of a turn: tan(theta) = A k
    print(f"{name}: measured ODI {T['bundles'][0]['odi']:.3f} (requested 0.2), turns {np.min(turn) * 1e6:.1f}-"
          f"{np.max(turn) * 1e6:.1f} µm, mean helix radius {np.mean(T['fibre_amplitudes']) * 1e6:.2f} µm")


def pulse_factor(radius, delta, n_roots=30):
    """h(delta): how much a pulse of length delta lowers a disk's phase variance below a narrow pulse's.

    Per pulse, a cylinder's Gaussian-phase attenuation (van Gelderen et al. 1994, J Magn Reson B 103:255, half
    its PGSE exponent once Delta >> r^2 / D0) is -(q r)^2 h / 8, with h -> 1 for narrow pulses and below 1 as
    the molecule moves during the pulse (motional narrowing).
    """
    a = jnp_zeros(1, n_roots) / radius           # J1'(a r) = 0
    x = D0 * a**2 * delta
    return 8 / radius**2 * float(np.sum((2 * x - 2 + 2 * np.exp(-x)) / (x**2 * a**2 * (a**2 * radius**2 - 1))))


def helix_signal(sub, q, Delta, radius_scale=1.0, form="gaussian", h=None, bent=0.0):
    """The signal of the sub's helical fibres (formula above), along ``g_all`` at wave numbers q.

    ``form="gaussian"``: the cross-section's factor at each end is exp(-x^2 h / 8), the Gaussian-phase value
    for pulses of length DELTA_PULSE (exact to order q^2); ``"disk"``: the narrow-pulse form factor 2 J1(x) / x.
    ``bent``: the arc-length diffusivity lowered by bent * (kappa r)^2 / 4 (kappa the helix's curvature), the
    order of a curved tube's correction to motion along its centre line.
    """
    T = sub.truth
    th = np.radians(T["fibre_tilts"])
    A = np.asarray(T["fibre_amplitudes"])
    r = np.asarray(T["inner_radii"]) * radius_scale
    w = r**2 / np.cos(th)                 # volume per axial length: cross-section times arc per axial length
    w = w / w.sum()
    curv = np.where(A > 0, np.sin(th)**2 / np.where(A > 0, A, 1.0), 0.0)
    s0 = np.linspace(0, 2 * np.pi, 33)[:-1]      # the turn's phase (trapezoidal rule: periodic, spectral)
    g = g_all[:, :, None, None]
    qk = np.asarray(q)[:, None, None]
    out = np.zeros(len(g_all))
    hs = [pulse_factor(rf, DELTA_PULSE) if h is None else h for rf in r]
    for f in range(len(th)):
        st, ct = math.sin(th[f]), math.cos(th[f])
        dv = 2 * D0 * (1 - bent * (curv[f] * r[f])**2 / 4) * Delta     # variance of the arc length travelled
        u = np.linspace(-7, 7, 241) * math.sqrt(dv)
        pdf = np.exp(-u**2 / (2 * dv)) / math.sqrt(2 * math.pi * dv)
        a0, a1 = s0[None, :], s0[None, :] + (st / A[f] if A[f] > 0 else 0.0) * u[:, None]
        chord = (g[:, 0] * A[f] * (np.cos(a1) - np.cos(a0)) + g[:, 1] * A[f] * (np.sin(a1) - np.sin(a0))
                 + g[:, 2] * ct * u[:, None])
        val = np.cos(qk * chord)
        for a in (a0, a1):                       # the cross-section's form factor at both ends
            gt = -g[:, 0] * st * np.sin(a) + g[:, 1] * st * np.cos(a) + g[:, 2] * ct
            x = np.maximum(qk * r[f] * np.sqrt(np.clip(1 - gt**2, 0, 1)), 1e-12)
            val = val * (np.exp(-x**2 * hs[f] / 8) if form == "gaussian" else 2 * j1(x) / x)
        out += w[f] * np.trapezoid(pdf * val.mean(2), u, axis=1)
    return out


def scheme(Delta):
    return sequences.pgse(DELTA_PULSE, Delta, bvalues=b_all, directions=g_all)


# %%
# The Monte Carlo against the exact helix signal
# ----------------------------------------------
# The formula is exact for narrow pulses on thin tubes; two allowances, stated: the pulses' finite length
# (the formula evaluated at Delta and at Delta - delta/3, between which the finite pulse lies for the
# free, along-the-fibre part) and the mesh's polygonal cross-section (its radius error).
BATCHES = 8                              # independent runs per case: the fitted ODI's error from their spread
runs = {}
for name, sub in [("15 µm turns", long_turns), ("tight turns", tight)]:
    for i, Delta in enumerate(times):
        n_steps = round(Delta / DELTA_PULSE + 1) * 13   # steps of 7.7 µs (0.3 µm): 13 per pulse, edges on steps
        batch = []
        for k in range(BATCHES):
            with warnings.catch_warnings():
                # the mesh's thinnest feature is the 2-% gap between rings, not a wall the step must resolve
                warnings.filterwarnings("ignore", message="step length")
                res = walker.simulate(sub, scheme(Delta), n_walkers=n_walkers // BATCHES, n_steps=n_steps,
                                      diffusivity=D0, seed=1000 * i + k, start="intra")
            assert res.escapes == 0
            batch.append(res)
        runs[name, Delta] = {"signal": np.mean([r.signal for r in batch], 0),
                             "stderr": np.sqrt(np.mean([r.stderr**2 for r in batch], 0) / BATCHES),
                             "batches": np.array([r.signal for r in batch])}

q_of = {Delta: np.sqrt(b_all / (Delta - DELTA_PULSE / 3)) for Delta in times}
err = long_turns.truth["mesh_radius_error"]
print(f"pulse factor h for 0.1 ms pulses in a 0.5 µm tube: {pulse_factor(0.5e-6, DELTA_PULSE):.3f}")


@functools.cache
def allowance_terms(Delta):
    """The reference and its variants whose differences from it are the allowances (computed once per time)."""
    q, te = q_of[Delta], Delta - DELTA_PULSE / 3
    return {"reference": helix_signal(long_turns, q, te),
            "pulse along the fibre": helix_signal(long_turns, q, Delta),       # Delta or Delta - delta / 3
            "mesh radius": helix_signal(long_turns, q, te, radius_scale=1 + err),
            "curved tube": helix_signal(long_turns, q, te, bent=1.0),
            "fourth cumulant": helix_signal(long_turns, q, te, form="disk", h=1.0)
            - helix_signal(long_turns, q, te, h=1.0) + helix_signal(long_turns, q, te)}


for Delta in times:
    res = runs["15 µm turns", Delta]
    allow = dict(allowance_terms(Delta))
    ref = allow.pop("reference")
    allow = sum(np.abs(v - ref) for v in allow.values())
    z = check_agreement(f"helix signal at Delta = {Delta * 1e3:g} ms vs the narrow-pulse thin-helix formula",
                        res["signal"], res["stderr"], ref, allowance=allow)
    print(f"Delta {Delta * 1e3:4.0f} ms: Monte Carlo vs exact helix signal, worst |diff| / (4.5 SE + allowance) "
          f"= {z:.2f}")

# %%
# NODDI's ODI, fitted to each signal
# ----------------------------------
# NODDI-Watson with everything but the orientation fixed to the truth (intra-axonal only: v_ic = 1, no free
# water, d_par = D0), so that the ODI is all it can change. Its Monte Carlo error comes from the spread of
# the ODIs fitted to the independent batches (one walker's errors are shared by every direction, so
# refitting noisy copies with independent errors would understate it). Its static limit, the straight-stick
# picture, is the stick signal averaged over the fibres' measured tangents.
model = validation.get_model("noddi_watson")
fixed = {"v_ic": 1.0, "v_iso": 0.0, "d_par": D0, "d_iso": 3e-9}


def odi_of(signals, Delta):
    fit = validation.fit(model, scheme(Delta), np.atleast_2d(signals), fixed=fixed)
    return 2 / np.pi * np.arctan(1 / np.asarray(fit["kappa"]))


fitted = {}
for (name, Delta), res in runs.items():
    per_batch = odi_of(res["batches"], Delta)
    fitted[name, Delta] = (float(odi_of(res["signal"], Delta)[0]), float(np.std(per_batch, ddof=1) / math.sqrt(BATCHES)))
    print(f"{name}, Delta {Delta * 1e3:4.0f} ms: NODDI ODI {fitted[name, Delta][0]:.3f} "
          f"± {fitted[name, Delta][1]:.3f}")

T = long_turns.truth
th = np.radians(T["fibre_tilts"])
w = np.asarray(T["inner_radii"])**2 / np.cos(th)
w /= w.sum()
phi = np.linspace(0, 2 * np.pi, 256, endpoint=False)
tang = np.stack([-np.sin(th)[:, None] * np.sin(phi), np.sin(th)[:, None] * np.cos(phi),
                 np.cos(th)[:, None] * np.ones_like(phi)], -1)                   # (fibre, phi, 3)
static = np.einsum("f,fpk->k", w, np.exp(-b_all * D0 * np.einsum("fpi,ki->fpk", tang, g_all)**2)) / len(phi)
odi_static = float(odi_of(static, times[0])[0])
t_dense = np.geomspace(2e-3, 60e-3, 6 if QUICK else 14)
odi_exact = [float(odi_of(helix_signal(long_turns, np.sqrt(b_all / t), t), t)[0]) for t in t_dense]
print(f"geometry's ODI {T['bundles'][0]['odi']:.3f}; NODDI on straight sticks along the measured tangents "
      f"{odi_static:.3f}; on the exact helix signal from {odi_exact[0]:.3f} (2 ms) to {odi_exact[-1]:.3f} (60 ms)")

# %%
# What must hold
# --------------
# NODDI's ODI from the Monte Carlo equals its ODI from the exact helix signal at each time (4.5 SE from the
# batches, plus both allowances carried through the fit); the exact ODI falls monotonically with
# diffusion time; and at every time the tight turns read as less dispersed
# than the 15 µm turns, though both bundles have the same measured ODI.
for Delta in times:
    terms = {k: float(odi_of(v, Delta)[0]) for k, v in allowance_terms(Delta).items()}
    ref = terms.pop("reference")
    bracket = sum(abs(v - ref) for v in terms.values())
    print(f"Delta {Delta * 1e3:g} ms: NODDI ODI {fitted['15 µm turns', Delta][0]:.4f}, on the reference {ref:.4f}; "
          + ", ".join(f"{k} {v - ref:+.4f}" for k, v in terms.items()))
    check_agreement(f"NODDI ODI at Delta = {Delta * 1e3:g} ms, Monte Carlo vs exact helix signal",
                    [fitted["15 µm turns", Delta][0]], [fitted["15 µm turns", Delta][1]], ref, allowance=bracket)
assert np.all(np.diff(odi_exact) < 0), odi_exact
for Delta in times:
    (a, sa), (b, sb) = fitted["15 µm turns", Delta], fitted["tight turns", Delta]
    assert a - b > 4.5 * math.hypot(sa, sb), (Delta, a, b)

# %%
# The picture
# -----------
# Left: three fibres of each bundle, seen from the side. Right: the ODI NODDI reads, against the diffusion
# length along a fibre, with the geometry's own ODI and the straight-stick value for reference.
fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained", gridspec_kw={"width_ratios": [0.8, 1.2]})
for off, (name, sub, col) in enumerate([("15 µm turns", long_turns, "#2166ac"), ("tight turns", tight, "#b2182b")]):
    Tt = sub.truth
    order = np.argsort(Tt["fibre_tilts"])[[10, 25, 35]]
    for j, f in enumerate(order):
        thf, Af = math.radians(Tt["fibre_tilts"][f]), Tt["fibre_amplitudes"][f]
        z = np.linspace(0, 30e-6, 600)
        k = math.tan(thf) / Af if Af > 0 else 0.0
        ax.plot((off * 14 + j * 4.5 + Af * np.cos(k * z) * 1e6), z * 1e6, color=col, lw=2.0,
                label=name if j == 0 else None)
shown = np.sort(np.asarray(long_turns.truth["fibre_tilts"])[np.argsort(long_turns.truth["fibre_tilts"])[[10, 25, 35]]])
ax.set(xlabel="x (µm)", ylabel="along the bundle, z (µm)", aspect="equal",
       title=f"fibre centre lines (pitch angles {shown[0]:.0f}, {shown[1]:.0f}, {shown[2]:.0f}°)")
ax.legend(loc="upper center", fontsize="small")


def ell(t):
    """The diffusion length along a fibre in µm."""
    return np.sqrt(2 * D0 * np.asarray(t)) * 1e6


bx.plot(ell(t_dense), odi_exact, "-", color="#2166ac", label="15 µm turns: exact helix signal")
for name, col in [("15 µm turns", "#2166ac"), ("tight turns", "#b2182b")]:
    y = np.array([fitted[name, t] for t in times])
    bx.errorbar(ell(times), y[:, 0], yerr=4.5 * y[:, 1], fmt="o", color=col, capsize=3,
                label=f"{name}: Monte Carlo, ± 4.5 SE")
bx.axhline(T["bundles"][0]["odi"], color="k", ls="--", lw=1, label="ODI measured on the geometry")
bx.axhline(odi_static, color="0.5", ls=":", lw=1.5, label="NODDI on straight sticks (static limit)")
bx.set(xscale="log", xlabel="diffusion length along a fibre, sqrt(2 D0 Δ) (µm)", ylabel="ODI fitted by NODDI",
       ylim=(0, 0.3), title="dispersion that diffusion sees")
bx.xaxis.set_major_formatter(plt.ScalarFormatter())
bx.xaxis.set_minor_formatter(plt.NullFormatter())
bx.set_xticks([2, 3, 5, 7, 10, 15])
bx.legend(fontsize="small", loc="lower left")
fig.suptitle("The same orientation distribution reads as less dispersed the longer the diffusion path along a fibre")
plt.show()

# %%
# Two things to take away. NODDI's ODI is a property of the fibres *and* of the diffusion time: once a
# molecule travels further than about a turn of its fibre, the fibre's winding no longer disperses the
# signal but slows it, and the fitted ODI falls below the dispersion that histology would measure, more so
# the tighter the winding. And at short times the fit returns the straight-stick value, which is the ODI of
# the geometry only as far as the distribution is a Watson one: the generator's is a Watson law cut at 75
# degrees and sampled by 40 fibres.
