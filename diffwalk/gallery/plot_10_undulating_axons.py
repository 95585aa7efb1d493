"""
Undulating axons look thicker: the apparent radius of a wavy fibre
==================================================================

Axon-diameter methods model axons as straight cylinders, but real axons undulate (Nilsson et al.
2012, NMR Biomed 25:795; Lee et al. 2020, NeuroImage 223:117228). Water moving *along* a wavy axon
also moves *across* the fibre's mean direction, and at long diffusion times this sideways motion
looks like restriction in a much thicker cylinder (Brabec, Lasič & Nilsson 2020, NMR Biomed
33:e4187: the diameter is over-estimated in proportion to the undulation amplitude).

Take a thin fibre whose centre line is :math:`x = A \\sin(2\\pi z / \\lambda)` (a planar sinusoid).
Once the walkers have explored many wavelengths, :math:`t \\gg \\tau = \\ell^2 / (4 \\pi^2 D)` with
:math:`\\ell` the length of one wavelength of the fibre, each is uniformly spread along the fibre,
independently of where it started. In the plane of the undulation its position then has variance
:math:`A^2/2` (for a gentle slope), so the mean squared displacement across the fibre tends to
*twice* that, and the narrow-pulse signal (:math:`q = \\gamma G \\delta`) to the squared
characteristic function of the position:

.. math:: \\langle \\Delta x^2 \\rangle \\to 2\\,\\mathrm{Var}(x) \\approx A^2 + \\frac{r^2}{2},
          \\qquad E(q) \\to \\left| \\langle e^{i q x} \\rangle \\right|^2 \\approx J_0(qA)^2
          \\quad (r \\to 0),

with :math:`r` the fibre's own radius; out of the plane only :math:`r^2/2` remains (a helix
undulates in both directions and gives about :math:`A^2 + r^2/2` in both). A straight cylinder of
radius :math:`R` gives :math:`R^2/2` and :math:`E(q) \\to (2 J_1(qR)/(qR))^2 \\approx 1 - q^2 R^2/4`
(Callaghan 1995, J Magn Reson A 113:53), so at low q the undulating fibre looks like a straight
cylinder of apparent radius

.. math:: R_\\mathrm{app} \\approx \\sqrt{2 A^2 + r^2}.

We walk ``substrates.undulating_axons``: four fibres of radius 1 µm and wavelength 10 µm with
amplitudes 0, 0.5, 1 and 1.5 µm, undulating in one plane. The asymptotic theory we test is exact
at :math:`t \\gg \\tau` for a tube of any radius and slope: the long-time position is uniform over
the tube's volume, whose moments we integrate numerically.
"""

# %%
# Set-up: four undulating fibres, and displacements recorded over 20 ms
# ---------------------------------------------------------------------
# No gradient is needed: the narrow-pulse signal is computed from the recorded displacements,
# :math:`E(q, t) = \langle \cos(q\,\Delta x(t)) \rangle`, which is exactly what a PGSE with
# :math:`\delta \to 0` measures (Callaghan 1991). The b = 0 scheme only sets the duration.
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import j1

import sequences
import substrates
import validation
import walker
from diffwalk.lessons import check_agreement, quick_mode

QUICK = quick_mode()                           # DIFFWALK_QUICK=1: fewer walkers, same physics
D = 2e-9                                       # m^2/s
r = 1e-6                                       # fibre (inner) radius, m
lam = 10e-6                                    # undulation wavelength, m
A = np.array([0.0, 0.5, 1.0, 1.5]) * 1e-6      # undulation amplitudes, m
T = 20e-3                                      # s
resolution = 0.02                              # the mesh's relative radius (and chord) error
n_walkers = 800 if QUICK else 10_000
colours = ["k", "tab:blue", "tab:orange", "tab:red"]

sub = substrates.undulating_axons(len(A), radii=np.full(len(A), r), amplitude=A, wavelength=lam, icvf=0.2,
                                  phase="coherent", resolution=resolution, seed=3)
truth = sub.ground_truth()
plane = truth["planes"][0]                     # all fibres undulate in this plane (phase="coherent")
u_in = np.array([np.cos(plane), np.sin(plane), 0.0])     # across the fibres, in the undulation plane
u_out = np.array([-np.sin(plane), np.cos(plane), 0.0])   # across the fibres, out of the plane
ell = lam * np.array(truth["tortuosity"])      # centre-line length of one wavelength, m
# the slowest relaxation: the first axial mode along the fibre, or the cross-section's
tau = np.maximum(ell**2 / (4 * np.pi**2 * D), r**2 / (1.8412**2 * D))

# steps below 1/6 of the smallest feature (the mesh's 2V/S, about r), on a b = 0 "scheme"
n_steps = int(np.ceil(T * 6 * D / (sub.smallest_feature / 6) ** 2))
scheme = sequences.tensor_encoding(bvalues=[0.0], duration=T)
record = T / n_steps * np.unique(np.r_[np.geomspace(20, n_steps, 12), np.linspace(n_steps / 5, n_steps, 9)].round())
res = walker.simulate(sub, scheme, n_walkers=n_walkers, diffusivity=D, n_steps=n_steps, seed=10,
                      record_times=record)
assert res.escapes == 0
t = res.record_times

# which fibre each walker is in: the component holding its final position, matched to a fibre by its
# volume (pi r^2 times the centre-line length; the amplitudes make them differ by > 2 %)
comp = sub.locate(np.mod(res.final_positions, truth["box"]))
fibre_of_comp = np.array([np.argmin(np.abs(v - np.pi * r**2 * ell)) for v in sub.component_volume])
assert sorted(fibre_of_comp) == list(range(len(A)))
fibre = fibre_of_comp[comp]
dx_in = res.displacements @ u_in               # (N, R)
dx_out = res.displacements @ u_out

# %%
# The long-time theory: moments of a uniform position in the tube
# ---------------------------------------------------------------
# The tube is parametrised by the height z along one wavelength, and polar coordinates
# :math:`(\rho, \phi)` in its circular cross-section normal to the centre line; the volume element
# is the Jacobian of that map (it carries the arc length and the inner/outer side of each bend).
# Periodic rules in z and :math:`\phi` and Gauss-Legendre in :math:`\rho` integrate these smooth
# functions to ~1e-12.


def tube_moments(amp, q, n_z=96, n_rho=8, n_phi=16):
    """2 Var(x_in), 2 Var(x_out) (m^2) and |<exp(i q x_in)>|^2 for a uniform position in the tube."""
    k = 2 * np.pi / lam
    z = np.arange(n_z) * lam / n_z
    xg, wg = np.polynomial.legendre.leggauss(n_rho)
    rho, w_rho = 0.5 * r * (xg + 1), 0.5 * r * wg
    phi = np.arange(n_phi) * 2 * np.pi / n_phi
    Z, RH, PH = np.meshgrid(z, rho, phi, indexing="ij")

    def frame(z_):
        a = amp * k * np.cos(k * z_)                              # slope of the centre line
        n = np.sqrt(1 + a**2)
        n1 = np.stack([1 / n, 0 * n, -a / n], axis=-1)            # in-plane normal
        n2 = np.stack([0 * n, 1 + 0 * n, 0 * n], axis=-1)         # out-of-plane normal
        return n1, n2

    def point(z_):
        n1, n2 = frame(z_)
        c = np.stack([amp * np.sin(k * z_), 0 * z_, z_], axis=-1)
        return c + RH[..., None] * (np.cos(PH)[..., None] * n1 + np.sin(PH)[..., None] * n2)

    h = lam * 1e-5
    dz = (point(Z + h) - point(Z - h)) / (2 * h)
    n1, n2 = frame(Z)
    drho = np.cos(PH)[..., None] * n1 + np.sin(PH)[..., None] * n2
    dphi = RH[..., None] * (-np.sin(PH)[..., None] * n1 + np.cos(PH)[..., None] * n2)
    wgt = np.abs(np.einsum("...i,...i", dz, np.cross(drho, dphi))) * w_rho[None, :, None]
    wgt /= wgt.sum()
    P = point(Z)
    var_in = np.sum(wgt * P[..., 0] ** 2) - np.sum(wgt * P[..., 0]) ** 2
    var_out = np.sum(wgt * P[..., 1] ** 2)
    cf = np.exp(1j * np.outer(np.atleast_1d(q), P[..., 0].ravel())) @ wgt.ravel()
    return 2 * var_in, 2 * var_out, np.abs(cf) ** 2


q = np.linspace(0.15, 1.2, 8) * 1e6            # rad/m (narrow-pulse q = gamma G delta)
theory = [tube_moments(a, q) for a in A]
msd_in_inf = np.array([th[0] for th in theory])
msd_out_inf = np.array([th[1] for th in theory])
E_inf = np.array([th[2] for th in theory])

# %%
# The mean squared displacement across the fibres
# -----------------------------------------------
# Standard errors from the spread of the per-walker squared displacements. Allowances: (i) the
# mesh: the generator spaces its rings so that the piecewise-linear centre line of a curved fibre
# stays within :math:`\epsilon = 0.02\,r` (``resolution`` x r) of the true curve, in the undulation
# plane; that moves a uniform position's in-plane variance by at most
# :math:`2 A \epsilon + \epsilon^2` (the straight fibre's centre line is exact, and the 16-gon
# sections have the circle's second moment to 1e-4, which we neglect); (ii) the approach to the
# plateau: the MSD is a sum of decaying modes with positive weights, so it lies within
# :math:`2\mathrm{Var}\,e^{-t/\tau}` of its limit; we assert only where :math:`t \ge 5\,\tau`
# (dashed on the plot), where that is below 0.7 %; (iii) the finite step: at this step 1e5 walkers in an exact cylinder match
# its exact MSD within 0.4 % (1.3 SE), we allow 0.5 %.
eps = resolution * r * (A > 0)                 # centre-line chord error per fibre, m
valid = t[None, :] >= 5 * tau[:, None]        # (fibres, record times)
msd_mc, msd_se = np.zeros((2, len(A), len(t))), np.zeros((2, len(A), len(t)))
for f in range(len(A)):
    for j, dx in enumerate((dx_in, dx_out)):
        d2 = dx[fibre == f] ** 2
        msd_mc[j, f], msd_se[j, f] = d2.mean(axis=0), d2.std(axis=0) / np.sqrt(len(d2))
for j, (inf, name) in enumerate(((msd_in_inf, "in the undulation plane"), (msd_out_inf, "out of the plane"))):
    ref = np.broadcast_to(inf[:, None], valid.shape)
    mesh = 2 * (2 * A * eps + eps**2) if j == 0 else 0.0 * A
    allow = mesh[:, None] + ref * np.exp(-t / tau[:, None]) + 0.005 * ref
    check_agreement(f"long-time MSD across the fibres, {name}, vs 2 Var(position)", msd_mc[j][valid],
                    msd_se[j][valid], ref[valid], allowance=allow[valid], unit="m^2")
# the straight fibre (A = 0) is an exact cylinder at every time
msd_cyl = validation.restricted_msd("cylinder", r, D, t)
check_agreement("straight fibre: MSD vs exact cylinder at all times", msd_mc[:, 0], msd_se[:, 0],
                np.broadcast_to(msd_cyl, (2, len(t))), allowance=0.005 * msd_cyl, unit="m^2")

# %%
# The narrow-pulse signal across the fibres, and the apparent radius of a straight cylinder
# -----------------------------------------------------------------------------------------
# At t = 20 ms every fibre is past 10 tau. The straight-cylinder model is Callaghan's long-time
# limit :math:`(2 J_1(qR)/(qR))^2`: for any R up to 3 µm, :math:`D t / R^2 > 4` and its modes have
# decayed by :math:`e^{-3.39 D t / R^2} < 10^{-5}` (checked below against
# ``validation.callaghan_signal`` at Δ = 20 ms). The fit is a one-parameter least squares over
# the 8 q-values. Standard errors: E(q) from the spread of :math:`\cos(q\,\Delta x)` over walkers;
# the fitted radius by a jackknife over 20 blocks of walkers. Allowances: moving every position by
# at most :math:`\epsilon` (the curved fibres' chord error) changes
# :math:`|\langle e^{iqx}\rangle|^2` by at most :math:`2 q \epsilon + (q\epsilon)^2`, and the
# decaying modes leave at most :math:`(1 - E_\infty)e^{-t/\tau}`; both are propagated to the
# radius through the fit's linear response.


def cylinder_E(qq, R):
    x = np.maximum(qq * R, 1e-12)
    return (2 * j1(x) / x) ** 2


def fit_radius(E):
    return minimize_scalar(lambda R: np.sum((cylinder_E(q, R * 1e-6) - E) ** 2), bounds=(0.1, 5.0),
                           method="bounded", options={"xatol": 1e-7}).x * 1e-6


E_mc, E_se, R_mc, R_se = (np.zeros((len(A), len(q))), np.zeros((len(A), len(q))), np.zeros(len(A)),
                          np.zeros(len(A)))
for f in range(len(A)):
    c = np.cos(np.outer(dx_in[fibre == f, -1], q))                # (n_f, Q)
    E_mc[f], E_se[f] = c.mean(axis=0), c.std(axis=0) / np.sqrt(len(c))
    R_mc[f] = fit_radius(E_mc[f])
    blocks = np.array_split(np.arange(len(c)), 20)
    loo = np.array([fit_radius(np.delete(c, b, axis=0).mean(axis=0)) for b in blocks])
    R_se[f] = np.sqrt(19 / 20 * np.sum((loo - loo.mean()) ** 2))
E_allow = 2 * np.outer(eps, q) + np.outer(eps, q) ** 2 + (1 - E_inf) * np.exp(-T / tau[:, None])
check_agreement("narrow-pulse signal across the fibres vs |<exp(iqx)>|^2 of the tube", E_mc, E_se, E_inf,
                allowance=E_allow)

R_th = np.array([fit_radius(E) for E in E_inf])
R_allow = np.zeros(len(A))
for f in range(len(A)):
    dR = 1e-4 * R_th[f]
    J = (cylinder_E(q, R_th[f] + dR) - cylinder_E(q, R_th[f] - dR)) / (2 * dR)   # dE/dR
    R_allow[f] = np.sum(np.abs(J / (J @ J)) * E_allow[f])                        # |dR/dE_i| a_i
check_agreement("apparent radius (straight-cylinder fit) vs the long-time theory", R_mc, R_se, R_th,
                allowance=R_allow, unit="m")
callaghan_T = validation.callaghan_signal("cylinder", R_th.max(), D, T, q, n_roots=10, n_orders=10)
print("straight-cylinder model at the largest radius: |Callaghan(Delta = 20 ms) - long-time limit| =",
      f"{np.abs(callaghan_T - cylinder_E(q, R_th.max())).max():.1e}")
print("apparent radius (µm): MC", np.round(R_mc * 1e6, 3), "SE", np.round(R_se * 1e6, 3), "allowance", np.round(R_allow * 1e6, 3), "theory", np.round(R_th * 1e6, 3),
      "thin-fibre sqrt(2A^2 + r^2)", np.round(np.sqrt(2 * A**2 + r**2) * 1e6, 3))

# %%
# The picture
# -----------
fig, axes = plt.subplots(1, 3, figsize=(16, 5), layout="constrained")
ax = axes[0]
ts = np.geomspace(t[0], T, 100)
ax.plot(ts * 1e3, validation.restricted_msd("cylinder", r, D, ts) * 1e12, "-", color="k", lw=1,
        label=f"straight cylinder r = {r * 1e6:g} µm, exact")
for f in range(len(A)):
    # the long-time limit: dotted where it does not hold yet, dashed (and asserted) from t = 5 tau
    ax.hlines(msd_in_inf[f] * 1e12, t[0] * 1e3, 5 * tau[f] * 1e3, color=colours[f], ls=":", lw=0.8)
    ax.hlines(msd_in_inf[f] * 1e12, 5 * tau[f] * 1e3, T * 1e3 * 1.2, color=colours[f], ls="--", lw=2)
    ax.plot(5 * tau[f] * 1e3, msd_in_inf[f] * 1e12, "|", ms=12, mew=2, color=colours[f])
    ax.errorbar(t * 1e3, msd_mc[0, f] * 1e12, yerr=4.5 * msd_se[0, f] * 1e12, fmt="o", ms=4, color=colours[f],
                label=f"A = {A[f] * 1e6:g} µm, in plane")
ax.errorbar(t * 1e3, msd_mc[1, -1] * 1e12, yerr=4.5 * msd_se[1, -1] * 1e12, fmt="s", ms=4, mfc="none",
            color=colours[-1], label=f"A = {A[-1] * 1e6:g} µm, out of plane")
ax.plot([], [], "k--", lw=1.5, marker="|", ms=10, mew=2, label="long-time limit 2 Var(x), asserted from t = 5 τ")
ax.set_xscale("log")
ax.set(xlabel="t (ms)", ylabel="⟨Δx²⟩ across the fibres (µm²)", title="MSD across the fibres")
ax.legend(fontsize="x-small", loc="upper left", title="points: Monte Carlo ± 4.5 SE", title_fontsize="x-small")

ax = axes[1]
qs = np.linspace(0.01, 1.25, 100) * 1e6
for f in range(len(A)):
    ax.plot(qs * 1e-6, tube_moments(A[f], qs)[2], "-", color=colours[f], lw=1.2)
    ax.plot(qs * 1e-6, cylinder_E(qs, R_mc[f]), ":", color=colours[f], lw=1.5)
    ax.errorbar(q * 1e-6, E_mc[f], yerr=4.5 * E_se[f], fmt="o", ms=4, color=colours[f],
                label=f"A = {A[f] * 1e6:g} µm")
ax.plot([], [], "-", color="0.3", label="undulating tube, t → ∞ (theory)")
ax.plot([], [], ":", color="0.3", lw=1.5, label="fitted straight cylinder")
ax.set(xlabel="q = γGδ (rad/µm)", ylabel="E(q), gradient in the undulation plane", ylim=(0, 1.02),
       title=f"Narrow-pulse signal at t = {T * 1e3:g} ms")
ax.legend(fontsize="x-small", loc="lower left", title="points: Monte Carlo ± 4.5 SE", title_fontsize="x-small")

ax = axes[2]
As = np.linspace(0, 1.6, 17) * 1e-6
R_line = np.array([fit_radius(tube_moments(a, q)[2]) for a in As])
ax.plot(As * 1e6, R_line * 1e6, "-", color="tab:purple", label="long-time theory (same fit)")
ax.plot(As * 1e6, np.sqrt(2 * As**2 + r**2) * 1e6, "--", color="0.4", label="thin fibre: √(2A² + r²)")
ax.axhline(r * 1e6, color="k", lw=0.8, ls=":", label=f"true radius r = {r * 1e6:g} µm")
ax.errorbar(A * 1e6, R_mc * 1e6, yerr=4.5 * R_se * 1e6, fmt="o", color="tab:purple", label="Monte Carlo fit, ± 4.5 SE")
ax.set(xlabel="undulation amplitude A (µm)", ylabel="apparent radius R_app (µm)", ylim=(0, 2.8),
       title="A straight-cylinder fit sees a thicker fibre")
ax.legend(fontsize="x-small", loc="upper left")
fig.suptitle(f"Undulating fibres (r = {r * 1e6:g} µm, λ = {lam * 1e6:g} µm, D = {D * 1e9:g} µm²/ms): "
             "Monte Carlo with 4.5-SE error bars, theory at t ≫ τ = ℓ²/(4π²D)")
plt.show()

# %%
# In the plane of the undulation the fibre is as wide as its wiggle: the MSD saturates near
# :math:`A^2 + r^2/2`, not :math:`r^2/2`, and a straight-cylinder model reads a radius of about
# :math:`\sqrt{2A^2 + r^2}`: already 1.5 µm for a 1 µm fibre with a 0.75 µm wiggle. Out of the plane
# it keeps its true size, so a planar undulation makes one fibre look elliptical; a helix would
# make it look thicker in every direction. The time scales also differ: the straight fibre's MSD
# has settled by :math:`t \approx r^2/D` = 0.5 ms, the undulating ones keep growing until
# :math:`t \approx 5\tau` (7-9 ms here), so an apparent radius that still grows with the
# diffusion time after the cylinder's restriction time points to undulation, not to a larger axon
# (Brabec et al. 2020). For gentle slopes the plateau is set by the amplitude alone; the
# wavelength only sets how long it takes to reach it.
