"""
Myelin makes fields: frequency shifts, R2* and orientation dependence
=====================================================================

Tissue is magnetised by the scanner's field :math:`B_0`. Where its susceptibility :math:`\\chi` changes
(myelin is more diamagnetic than water, and radially anisotropic; iron-rich cells and vessels are
paramagnetic) the field inside and around the structure shifts by a few parts in :math:`10^8` of
:math:`B_0`: a few hertz of precession frequency at 7 T. Spins that sample different shifts lose phase
coherence, so a *gradient echo* decays faster (:math:`R_2^* = R_2 + R_2'`); a spin echo refocuses what is
static and leaves what diffusion makes of it.

Three lessons, each against an exact result:

1. A myelin sheath's field (Wharton & Bowtell 2012): uniform in the axon, a logarithmic shift plus a
   :math:`\\cos 2\\phi` pattern in the sheath, a 2-D dipole outside, all scaling with
   :math:`\\sin^2\\theta` (the angle between axon and :math:`B_0`) except for the sheath's isotropic
   :math:`\\cos^2\\theta` term. In a packing, each axon's mean shift is its own sheath's plus its
   neighbours' field *at its centre* (their fields are harmonic inside it, and a harmonic function's mean
   over a disk or annulus is its value at the centre).
2. Decay among perturbers as their size changes: with :math:`\\delta\\omega` the field's frequency scale
   and :math:`\\tau = R^2/D` the time to diffuse past one, :math:`\\delta\\omega\\tau \\gg 1` is *static
   dephasing* (Yablonskiy & Haacke 1994: :math:`R_2'` independent of size) and
   :math:`\\delta\\omega\\tau \\ll 1` *motional narrowing* (the phase is Gaussian; :math:`R_2^* \\propto
   \\delta\\omega^2 \\tau`, so it grows as :math:`R^2`).
3. A diffusion-weighted spin echo of white matter depends on how the fibres lie in the magnet: the
   extra-axonal water diffuses through the sheaths' dipole fields, whose phase scales as
   :math:`\\sin^2\\theta`, so its extra attenuation scales as :math:`\\sin^4\\theta` while the phase stays
   Gaussian.
"""

# %%
# 1. The field of myelinated axons, and its frequency histogram
# -------------------------------------------------------------
# Sixteen axons of outer radius 2.5 µm and g-ratio 0.7 at a fibre fraction of 0.5, axons along z and
# :math:`B_0` along x (perpendicular: the largest effect). Wharton & Bowtell's susceptibilities:
# :math:`\chi_I = \chi_A = -0.1` ppm, at 7 T.
import matplotlib.pyplot as plt
import numpy as np

import sequences
import substrates
import validation
import walker
from diffwalk.lessons import check_agreement, quick_mode
from sequences.constants import GAMMA

QUICK = quick_mode()                     # DIFFWALK_QUICK=1: fewer walkers, radii and angles, same physics
HZ = GAMMA / (2 * np.pi)                 # Hz per T
chi_i, chi_a, b0, g = -0.1e-6, -0.1e-6, 7.0, 0.7
tissue = substrates.pack_cylinders(np.full(16, 2.5e-6), icvf=0.5, seed=3)
ro = tissue.radii
ri = g * ro
field = substrates.susceptibility_field(tissue, chi=chi_i, chi_anisotropic=chi_a, inner_radii=ri, b0=b0,
                                        b0_direction=(1.0, 0.0, 0.0))
L = tissue.box[:2]
rng = np.random.default_rng(0)
pts = np.zeros((40_000 if QUICK else 200_000, 3))
pts[:, :2] = rng.uniform(0, 1, (len(pts), 2)) * L
freq = HZ * field.evaluate(pts)
# where each point lies: its distance to the nearest axon centre (periodic)
d = pts[:, None, :2] - tissue.centers[None, :, :2]
d -= L * np.round(d / L)
r = np.sqrt((d**2).sum(axis=2))
near = r.argmin(axis=1)
rn = r[np.arange(len(pts)), near]
where = {"axon": rn < ri[near], "myelin": (rn >= ri[near]) & (rn < ro[near]), "extra-axonal": rn >= ro[near]}

# Wharton & Bowtell's own-sheath means (theta = 90 degrees: sin^2 = 1, cos^2 = 0), plus the neighbours'
# field at each centre: the field at a centre minus its own sheath's uniform inside value
own_axon = 0.75 * chi_a * np.log(1 / g) * b0
mean_log = 0.5 - ri[0]**2 * np.log(1 / g) / (ro[0]**2 - ri[0]**2)          # <ln(r_o / r)> over the sheath
own_myelin = (0.5 * chi_i * (-1 / 3) + chi_a * (-5 / 12 + 0.75 * mean_log)) * b0
centres = np.column_stack([tissue.centers[:, :2], np.zeros(len(ro))])
neighbours = float(np.mean(field.evaluate(centres) - own_axon))
expected = {"axon": HZ * (own_axon + neighbours), "myelin": HZ * (own_myelin + neighbours)}
for name in ("axon", "myelin"):
    f = freq[where[name]]
    check_agreement(f"{name} water's mean frequency vs Wharton & Bowtell plus the neighbours' centre field",
                    [f.mean()], [f.std() / np.sqrt(len(f))], [expected[name]], unit="Hz")
print({k: f"{freq[v].mean():+.2f} Hz (sd {freq[v].std():.2f})" for k, v in where.items()})

# %%
# 2. R2* from static dephasing to motional narrowing
# --------------------------------------------------
# Spheres of radius R on a cubic lattice at volume fraction 0.05, :math:`\delta\omega = \gamma \chi B_0 / 3
# = 100` rad/s, water diffusing freely through them (D = 1 µm²/ms). The field scales with R, so its
# histogram, and the static signal it gives, are the same at every size: in the static regime R2* does not
# depend on R. The walkers see the lattice's field sampled on a 32³ periodic map; the Gaussian-phase
# reference is computed exactly for that map (its Fourier series), the static one from its histogram.
# R2* is the decay rate between the gradient echoes at 20 and 40 ms.
zeta, delta_omega, b0_s, D = 0.05, 100.0, 3.0, 1e-9
chi_s = 3 * delta_omega / (GAMMA * b0_s)
radii = np.geomspace(0.5e-6, 32e-6, 5 if QUICK else 9)
tes = np.array([20e-3, 40e-3])
n_sph = 4_000 if QUICK else 20_000


def sphere_field(R):
    return substrates.susceptibility_field(substrates.sphere_lattice(R, zeta), chi=chi_s, b0=b0_s).sampled(
        (32, 32, 32))


def rate(s, se):
    """R2* (1/s) between the two echoes, and its standard error (the echoes' errors added in quadrature:
    an upper bound, since both come from the same walkers)."""
    return -np.log(s[1] / s[0]) / (tes[1] - tes[0]), np.hypot(se[0] / s[0], se[1] / s[1]) / (tes[1] - tes[0])


mc, mc_se, gpa_rate, static_rate = [], [], [], []
for R in radii:
    fld = sphere_field(R)
    tau = R**2 / D
    dt = tes[0] / (2 * np.ceil(tes[0] / min(tau / 150, 40e-6) / 2))   # steps of at most R / 5; TE/2 on a step
    ge = sequences.concatenate([sequences.pgse(dt, dt, bvalues=[0.0], echo_time=te, dt=dt).with_refocusing([])
                                for te in tes])
    se = sequences.pgse(dt, dt, bvalues=[0.0], echo_time=tes[-1], dt=dt)          # what motion refocuses
    res = walker.simulate(substrates.free(), ge + se, n_walkers=n_sph, diffusivity=D,
                          n_steps=int(round(tes[-1] / dt)), seed=5, field=fld)
    mag = np.hypot(res.signal, res.signal_imag)
    s_mc, err = mag[:2], res.stderr[:2]
    r_mc, r_se = rate(s_mc, err)
    mc.append(r_mc)
    mc_se.append(r_se)
    att = validation.gaussian_phase_attenuation(fld.values, fld.box, D, tes, dt=dt)
    p = rng.uniform(0, 1, (50_000, 3)) * fld.box
    s_static = np.abs(np.exp(1j * GAMMA * np.outer(tes, fld.evaluate(p))).mean(axis=1))
    gpa_rate.append(rate(np.exp(-att), [0, 0])[0])
    static_rate.append(rate(s_static, [0, 0])[0])
    x = delta_omega * tau
    if x <= 0.3:      # motional narrowing: the Gaussian phase holds to (delta_omega tau)^2
        check_agreement(f"R = {R * 1e6:.2g} µm (delta_omega tau = {x:.2g}) vs the Gaussian-phase result", s_mc,
                        err, np.exp(-att), allowance=x**2 * att * np.exp(-att))
    if x >= 30:       # static: the histogram's transform, within what motion does (4x the spin echo's loss)
        check_agreement(f"R = {R * 1e6:.2g} µm (delta_omega tau = {x:.2g}) vs static dephasing", s_mc, err,
                        s_static, reference_error=4.5 / np.sqrt(len(p)), allowance=4 * (1 - mag[2]))
mc, mc_se = np.array(mc), np.array(mc_se)
dense = np.geomspace(radii[0], radii[-1], 60)
base = sphere_field(1e-6)               # the same map at every size: only the box scales with R
gpa_curve = [rate(np.exp(-validation.gaussian_phase_attenuation(base.values, base.box * R / 1e-6, D, tes)),
                  [0, 0])[0] for R in dense]
yh = 2 * np.pi / (3 * np.sqrt(3)) * zeta * delta_omega        # Yablonskiy & Haacke, random spheres
print(f"R2* from {mc[0]:.3g} to {mc[-1]:.3g} 1/s; static plateau {np.mean(static_rate[-2:]):.3g} 1/s "
      f"(random placement, Yablonskiy & Haacke: {yh:.3g})")

# %%
# 3. Orientation dependence of a diffusion-weighted spin echo
# -----------------------------------------------------------
# The packing of part 1, its axons along z, :math:`B_0` at angle :math:`\theta` in the x-z plane. Myelin
# water (T2 of 10-20 ms) is left out, as at a TE of 40 ms it has mostly decayed; the axonal and
# extra-axonal water are walked separately in the sheaths' exact field (the box's sheaths and their
# nearest images: every term is proportional to sin²θ where the water is, so the comparison with the
# sin⁴θ law is exact, and at θ = 0 there is no field at all). PGSE (:math:`\delta` = 8 ms,
# :math:`\Delta` = 20 ms, TE = 40 ms) with b = 0 and 2 ms/µm² across the axons.
angles = np.radians([0, 45, 90] if QUICK else [0, 30, 45, 60, 75, 90])
scheme = sequences.pgse(8e-3, 20e-3, bvalues=[0.0, 2e9], directions=[[1.0, 0.0, 0.0]], echo_time=40e-3)
axons = substrates.cylinders(ri, tissue.centers[:, :2], box=L)
kw = dict(n_walkers=1_000 if QUICK else 4_000, diffusivity=2e-9, n_steps=6000, seed=9)   # steps of 0.28 µm
plain = {c: walker.simulate(sub, scheme, start=c, **kw) for c, sub in (("intra", axons), ("extra", tissue))}
f_intra = np.pi * np.sum(ri**2) / np.prod(L)
f_extra = 1 - np.pi * np.sum(ro**2) / np.prod(L)
weights = np.array([f_intra, f_extra]) / (f_intra + f_extra)
with_field = []
for th in angles:
    b = (np.sin(th), 0.0, np.cos(th))
    fld = substrates.susceptibility_field(tissue, chi=chi_i, chi_anisotropic=chi_a, inner_radii=ri, b0=b0,
                                          b0_direction=b, image_reach=L.max())
    with_field.append({c: walker.simulate(sub, scheme, start=c, field=fld, **kw)
                       for c, sub in (("intra", axons), ("extra", tissue))})


def total(runs):
    """The voxel's b = 0 and b = 2 ms/µm² signals: axonal and extra-axonal water by volume."""
    return weights[0] * runs["intra"].signal + weights[1] * runs["extra"].signal


S_plain = total(plain)
S_field = np.array([total(w) for w in with_field])
# B0 along the axons: no field where the water is, so the signals are the field-free ones to the last bit
assert np.array_equal(S_field[0], S_plain), (S_field[0], S_plain)
# the extra-axonal water's extra b = 0 loss: Gaussian phase proportional to sin^2 theta -> loss ~ sin^4 theta
ext = np.array([w["extra"].signal[0] for w in with_field])
ext_se = np.array([w["extra"].stderr[0] for w in with_field])
loss, loss_se = -np.log(ext / plain["extra"].signal[0]), ext_se / ext
s4 = np.sin(angles) ** 4
tau_x = ro[0] ** 2 / 2e-9
dw_x = GAMMA * abs(chi_i + chi_a / 4) * b0 * (1 - g**2) / 2                 # the dipole at the sheath
# The same walkers walk at every angle (one seed), and their field phases are exactly sin^2(theta) times those
# at 90 degrees: the law then holds up to the phase's non-Gaussian part, of relative order (delta_omega tau)^2,
# however large the Monte Carlo error of the loss itself (the error bars in the figure).
check_agreement("extra-axonal b = 0 loss vs sin^4(theta) times its value at 90 degrees", loss,
                np.zeros_like(loss), s4 * loss[-1], allowance=(dw_x * tau_x) ** 2 * s4 * loss[-1])
adc = -np.log(S_field[:, 1] / S_field[:, 0]) / 2e9                      # apparent D across the fibres
print(f"extra-axonal b = 0 loss at 90 degrees: {loss[-1] * 100:.1f} % (delta_omega tau = {dw_x * tau_x:.2f}); "
      f"apparent D across the fibres {adc[0] * 1e9:.4f} -> {adc[-1] * 1e9:.4f} µm²/ms")

# %%
# The picture
# -----------
# Top left: the field offset in a cross-section (in Hz at 7 T; circles: the sheaths). Top right: its
# histogram per compartment, with the exact mean shifts. Bottom left: R2* against sphere radius, from
# motional narrowing (the Gaussian-phase curve, rising as R^2) to static dephasing (flat). Bottom right:
# what the field changes in the spin echo as the fibres turn from along B0 to across it: the extra-axonal
# water loses signal as sin^4(theta); the voxel's b = 0 signal follows, and since the water lost is the
# fast-diffusing extra-axonal water, the apparent diffusivity across the fibres drops with it. The same
# walkers walk at every angle, so the curves' changes from angle to angle carry far less noise than the
# error bars, which are each point's own.
fig, axs = plt.subplots(2, 2, figsize=(13, 10), layout="constrained")
ax = axs[0, 0]
n_img = 160
gx, gy = np.meshgrid(np.linspace(0, L[0], n_img), np.linspace(0, L[1], n_img), indexing="xy")
img = HZ * field.evaluate(np.column_stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)])).reshape(gx.shape)
lim = np.percentile(np.abs(img), 99)
im = ax.imshow(img, origin="lower", extent=(0, L[0] * 1e6, 0, L[1] * 1e6), cmap="RdBu_r", vmin=-lim, vmax=lim)
for c, a, b_ in zip(tissue.centers, ri, ro):
    for rad in (a, b_):
        ax.add_patch(plt.Circle((c[0] * 1e6, c[1] * 1e6), rad * 1e6, fill=False, lw=0.5, color="k"))
fig.colorbar(im, ax=ax, label="frequency offset (Hz)")
ax.set(xlabel="x (µm)", ylabel="y (µm)", title="field of 16 myelinated axons, B0 along x (7 T)")
ax = axs[0, 1]
bins = np.linspace(-lim * 1.3, lim * 1.3, 120)
colours = {"axon": "tab:blue", "myelin": "tab:red", "extra-axonal": "tab:gray"}
for name, mask in where.items():
    ax.hist(freq[mask], bins=bins, density=True, histtype="stepfilled", alpha=0.45, color=colours[name],
            label=f"{name} ({mask.mean() * 100:.0f} % of the area)")
for name in ("axon", "myelin"):
    ax.axvline(expected[name], color=colours[name], ls="--", lw=1.2,
               label=f"{name}: exact mean {expected[name]:+.2f} Hz")
ax.set(xlabel="frequency offset (Hz)", ylabel="density (1/Hz)", yscale="log", ylim=(1e-4, 3),
       title="frequency histogram per compartment")
ax.legend(fontsize="small", loc="upper right")
ax = axs[1, 0]
ax.errorbar(radii * 1e6, mc, yerr=4.5 * mc_se, fmt="o", color="k", capsize=2,
            label="Monte Carlo, gradient echoes 20/40 ms, ± 4.5 SE")
ax.plot(dense * 1e6, gpa_curve, "-", color="tab:blue", label="Gaussian phase (motional narrowing), exact")
ax.plot(radii * 1e6, static_rate, "--", color="tab:red", label="static dephasing (the field's histogram)")
ax.axhline(yh, color="tab:red", lw=0.8, ls=":", label="Yablonskiy & Haacke, random spheres")
ax.axvline(np.sqrt(D / delta_omega) * 1e6, color="0.6", lw=0.8)
ax.text(np.sqrt(D / delta_omega) * 1e6 * 1.05, 0.97, "δω τ = 1", color="0.4", fontsize="small", va="top",
        transform=ax.get_xaxis_transform())
ax.set(xscale="log", yscale="log", xlabel="sphere radius R (µm)", ylabel="R2* from the field (1/s)",
       title="spheres at 5 %: from motional narrowing (∝ R²) to static dephasing", ylim=(min(mc) * 0.5, None))
ax.legend(fontsize="small", loc="lower right")
ax = axs[1, 1]
deg = np.degrees(angles)
fine = np.linspace(0, 90, 91)
ax.errorbar(deg, loss * 100, yerr=4.5 * loss_se * 100, fmt="o", color="tab:gray", capsize=2,
            label="extra-axonal water, b = 0: loss to the field, ± 4.5 SE")
ax.plot(fine, np.sin(np.radians(fine)) ** 4 * loss[-1] * 100, "-", color="tab:gray", lw=1,
        label="sin⁴θ × the loss at 90° (Gaussian phase ∝ sin²θ)")
ax.plot(deg, (1 - S_field[:, 0] / S_plain[0]) * 100, "s--", color="tab:red", label="voxel, b = 0: loss")
ax.plot(deg, (1 - adc / adc[0]) * 100, "^:", color="tab:blue",
        label="voxel: drop of the apparent D across the fibres")
ax.set(xlabel="angle θ between the fibres and B0 (degrees)", ylabel="change caused by the field (%)",
       title="spin echo, TE = 40 ms: what the field changes")
ax.legend(fontsize="small", loc="upper left")
fig.suptitle("Myelin makes fields: frequency shifts, R2*, and an orientation-dependent diffusion signal")
plt.show()

# %%
# What to take away: the myelin water precesses a few hertz away from the axonal water (at 7 T), which is
# what frequency-based myelin imaging measures; how much a field costs a gradient echo depends on
# :math:`\delta\omega\tau` (small perturbers are averaged out by diffusion, large ones dephase at a rate
# set only by their volume fraction); and a spin echo's diffusion signal in white matter depends on the
# fibres' angle to :math:`B_0`, through the field the extra-axonal water diffuses in.
# ``substrates.field_statistics`` gives each compartment's mean, spread, static signal and Yablonskiy &
# Haacke's R2'; ``validation.static_dephasing`` and ``validation.gaussian_phase_attenuation`` are the
# two references used here.
