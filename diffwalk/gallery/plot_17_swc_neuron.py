"""
A neuron from an SWC file: its mesh, its surface-to-volume ratio and its signal
===============================================================================

Neuron morphologies are shared as SWC files (NeuroMorpho.Org holds hundreds of thousands): one line per
node, ``id type x y z radius parent``, a tree of soma, axon and dendrite points. ``substrates.from_swc``
reads one, checks it (a cycle, a missing parent, a zero radius or a unit mistake is refused with its line
named), and builds the cell as the union of a sphere per node and a *round cone* per edge (a frustum
whose ends are the nodes' spheres, so that branches join smoothly), meshed watertight by marching
tetrahedra. Walkers then diffuse inside it like in any mesh.

At short times every restricted geometry looks the same to diffusion: only the molecules within
:math:`\\sqrt{D_0 t}` of a wall feel it, and (Mitra et al. 1992)

.. math:: \\frac{D(t)}{D_0} = 1 - \\frac{4}{9\\sqrt{\\pi}}\\, \\frac{S}{V} \\sqrt{D_0 t} + O(D_0 t)

in three dimensions, whatever the shape: the walkers measure the neuron's surface-to-volume ratio. We
write a small synthetic neuron, mesh it, check the walkers against this law, and show its PGSE signal.
"""

# %%
# An SWC file: a soma, an apical dendrite that forks twice, three basal dendrites and an axon
# -------------------------------------------------------------------------------------------
# Coordinates and radii in micrometres, as in NeuroMorpho; type 1 soma, 2 axon, 3 basal, 4 apical.
import math
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

import sequences
import substrates
import walker
from diffwalk.lessons import check_agreement, quick_mode

QUICK = quick_mode()                     # DIFFWALK_QUICK=1: fewer walkers, same physics
swc = """# synthetic pyramidal-like cell (um)
1 1 0 0 0 7 -1
2 4 0 0 12 2.0 1
3 4 0 0 30 1.8 2
4 4 8 0 42 1.4 3
5 4 14 3 58 1.1 4
6 4 -8 0 42 1.4 3
7 4 -14 -4 52 1.1 6
8 4 -12 6 60 1.0 6
9 3 10 6 -6 1.5 1
10 3 22 10 -12 1.2 9
11 3 -10 6 -6 1.5 1
12 3 -22 12 -10 1.2 11
13 3 0 -12 -6 1.5 1
14 3 0 -24 -14 1.2 13
15 2 0 0 -9 1.0 1
16 2 2 0 -40 0.9 15
"""
path = Path(tempfile.mkdtemp()) / "cell.swc"
path.write_text(swc)
morph = substrates.read_swc(path)
cell = substrates.from_swc(path, resolution=0.3e-6)          # grid spacing of the mesher, m
sv = cell.component_area[0] / cell.component_volume[0]      # the mesh's own S/V, 1/m
print(morph.summary())
print(f"mesh: {len(cell.faces)} faces, volume {cell.component_volume[0] * 1e18:.0f} µm^3, "
      f"S/V = {sv * 1e-6:.3f} 1/um")

# %%
# Short times: D(t) against the Mitra law
# ---------------------------------------
# Walkers start uniformly inside the cell; displacements are recorded up to 0.1 ms, where
# :math:`\sqrt{D_0 t} = 0.45` µm is about a fifth of the thicker dendrites' radius. The next term of the
# expansion, :math:`(S/V)\langle \kappa_1 + \kappa_2 \rangle D_0 t / 12` with mean curvature at most
# :math:`1/r_\mathrm{min}`, is the reference's error; the finite step's wall bias, 0.08 ℓ (S/V)/3
# (measured in lesson 4), the allowance.
D0 = 2e-9
dt = 1e-6
times = dt * np.array([5, 10, 20, 40, 70, 100])
clock = sequences.pgse(2 * dt, 4 * dt, bvalues=[0.0], directions=[1, 0, 0], echo_time=100 * dt, dt=dt)
res = walker.simulate(cell, clock, n_walkers=8_000 if QUICK else 80_000, diffusivity=D0, n_steps=100, seed=17,
                      record_times=times)
assert res.escapes == 0
r2 = (res.displacements ** 2).sum(axis=-1)
Dt = r2.mean(axis=0) / (6 * D0 * times)
Dt_se = r2.std(axis=0) / math.sqrt(len(r2)) / (6 * D0 * times)
mitra = 1 - 4 * sv * np.sqrt(D0 * times) / (9 * math.sqrt(math.pi))
r_min = float(morph.radii.min())
check_agreement("neuron: D(t)/D0 vs Mitra with the mesh's S/V", Dt, Dt_se, mitra,
                reference_error=sv / r_min * D0 * times / 12,
                allowance=0.08 * res.provenance["step_length"] * sv / 3)

# %%
# Its signal: PGSE along three axes, direction-averaged
# -----------------------------------------------------
# delta = 5 ms, Delta = 20 ms. Along the dendrites water diffuses freely, across them it is confined, and
# the soma holds it too: the direction-averaged signal falls much more slowly than free diffusion's, the
# signature soma-and-neurite models (SANDI) fit.
b = np.array([0, 0.5, 1, 2, 3, 5]) * 1e9
dirs = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [1, -1, 0], [0, 1, -1]])
dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
pg = sequences.pgse(5e-3, 20e-3, bvalues=np.repeat(b, len(dirs)), directions=np.tile(dirs, (len(b), 1)))
sig = walker.simulate(cell, pg, n_walkers=3_000 if QUICK else 30_000, diffusivity=D0, n_steps=2500, seed=18)
assert sig.escapes == 0
S = sig.signal.reshape(len(b), len(dirs))
S_mean, S_se = S.mean(axis=1), np.sqrt((sig.stderr.reshape(len(b), len(dirs)) ** 2).sum(axis=1)) / len(dirs)

# %%
# The picture
# -----------
# Left: the meshed cell. Middle: :math:`1 - D(t)/D_0` against :math:`\sqrt{D_0 t}`, a straight line whose
# slope is the surface-to-volume ratio. Right: the direction-averaged signal against b, with free
# diffusion for contrast.
fig = plt.figure(figsize=(16, 5.2), layout="constrained")
grid = fig.add_gridspec(1, 3, width_ratios=[1.25, 1, 1])
ax = fig.add_subplot(grid[0], projection="3d")
v = cell.vertices * 1e6
tris = v[cell.faces]
light = np.array([0.4, -0.5, 0.75])
nrm = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
shade = 0.35 + 0.65 * np.clip((nrm / np.linalg.norm(nrm, axis=1, keepdims=True)) @ (light / np.linalg.norm(light)),
                              0, 1)
ax.add_collection3d(Poly3DCollection(tris, facecolors=plt.cm.copper(0.25 + 0.6 * shade), linewidths=0))
lo, hi = v.min(axis=0), v.max(axis=0)
mid, half = (lo + hi) / 2, (hi - lo).max() / 2
ax.set(xlim=(mid[0] - half, mid[0] + half), ylim=(mid[1] - half, mid[1] + half),
       zlim=(mid[2] - half, mid[2] + half), xlabel="x (µm)", ylabel="y (µm)")
ax.view_init(elev=12, azim=-60)
ax.set_title(f"from_swc: {morph.n_nodes} nodes, {len(cell.faces)} faces (z up, µm)")

bx = fig.add_subplot(grid[1])
x = np.sqrt(D0 * times) * 1e6
xs = np.linspace(0, x.max() * 1.1, 50)
bx.plot(xs, 4 * sv * xs * 1e-6 / (9 * math.sqrt(math.pi)), "k--", label=f"Mitra, S/V = {sv * 1e-6:.2f} µm⁻¹")
bx.errorbar(x, 1 - Dt, yerr=4.5 * Dt_se, fmt="o", color="tab:purple", capsize=2, label="Monte Carlo (4.5 SE)")
bx.set(xlabel="√(D₀ t) (µm)", ylabel="1 − D(t)/D₀", xlim=(0, None), ylim=(0, None),
       title="short times: the walkers measure S/V")
bx.legend(fontsize="small")

cx = fig.add_subplot(grid[2])
bb = np.linspace(0, b.max(), 100)
cx.semilogy(bb * 1e-9, np.exp(-bb * D0), "k:", label="free diffusion")
cx.errorbar(b * 1e-9, S_mean, yerr=4.5 * S_se, fmt="o-", color="tab:purple", capsize=2,
            label="neuron, direction average, ± 4.5 SE")
cx.set(xlabel="b (ms/µm²)", ylabel="signal", ylim=(1e-3, 1.1), title="PGSE δ = 5 ms, Δ = 20 ms")
cx.legend(fontsize="small")
fig.suptitle("A neuron from an SWC morphology: mesh, short-time S/V, and signal")
plt.show()

# %%
# Real reconstructions are bigger (hundreds of µm) and thinner (dendrites of 0.3-1 µm): pass
# ``min_radius=`` to keep thin branches resolvable and ``prune=`` to drop twigs, and choose ``resolution``
# a quarter of the thinnest radius you keep (the mesh's volume and area are then within about 1 %,
# falling as the square of the grid spacing; ``tests/test_swc.py``). ``n_cells=`` and ``box=`` place
# several randomly rotated copies without contact in a periodic box, with an extra-cellular space.
