"""Three ways to encode diffusion, and what a physicist checks them by.

A PGSE (Stejskal-Tanner) pair, a cosine OGSE and a spherical tensor encoding
(STE), all at b = 1000 s/mm^2, each within a gradient system that exists
(clinical 80 mT/m, Connectom 300 mT/m, preclinical 1 T/m):

* the waveforms g(t) and q(t) = gamma * integral of g: every q returns to zero
  at the echo;
* the encoding spectra: PGSE puts its power near zero frequency (long
  diffusion time), OGSE at its oscillation frequency (short diffusion time);
* the b-tensors: PGSE and OGSE are linear (b_Delta = 1, a cigar), STE is
  isotropic (b_Delta = 0, a sphere) and PTE planar (b_Delta = -1/2, a disc).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import sequences
from sequences import plot


def build_protocol() -> sequences.Scheme:
    """PGSE, cos-OGSE, STE and PTE measurements at b = 1000 s/mm^2 on one time grid."""
    b = 1000e6  # s/m^2
    dt = 10e-6
    pg = sequences.pgse(delta=10e-3, Delta=30e-3, bvalues=[b], directions=[1, 0, 0], echo_time=60e-3, dt=dt)
    # one 50 Hz period reaches b = 1000 s/mm^2 at 263 mT/m (a Connectom-class system); 100 Hz would need 525
    og = sequences.ogse(frequency=50.0, n_periods=1, bvalues=[b], directions=[1, 0, 0], gap=2e-3,
                        echo_time=60e-3, dt=dt)
    te = sequences.tensor_encoding(bvalues=[b, b], b_delta=[0.0, -0.5], directions=[0, 0, 1],
                                   duration=60e-3, dt=dt)
    return pg + og + te


def hardware(g_max: float) -> str:
    """The class of gradient system that reaches g_max (T/m)."""
    for limit, name in ((0.08, "clinical"), (0.3, "Connectom"), (1.0, "preclinical")):
        if g_max <= limit * (1 + 1e-9):
            return f"{name}, <= {limit * 1e3:.0f} mT/m"
    return "beyond preclinical systems"


def run(outdir: str | Path = "figures") -> list[Path]:
    """Build the protocol, print its summary, save ``waveforms.png`` under ``outdir``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    scheme = build_protocol()
    print(scheme)
    for m in range(len(scheme)):
        print(f"  #{m} {scheme.label[m]:9s} b = {scheme.bvalues[m] / 1e6:7.1f} s/mm^2  "
              f"b_Delta = {round(float(scheme.b_delta[m]), 3) + 0.0:+.3f}  max|g| = {scheme.gradient_amplitudes[m] * 1e3:6.1f} mT/m "
              f"({hardware(scheme.gradient_amplitudes[m])})")
    print(f"  temporal shapes needed by the walker: K = {scheme.shapes.n_shapes}")

    fig = plt.figure(figsize=(13, 9), layout="constrained")
    grid = fig.add_gridspec(3, 4)
    g = scheme.gradient_amplitudes * 1e3
    _, ax = plot.plot_waveforms(scheme, measurements=[0, 1], ax=fig.add_subplot(grid[0, :2]))
    ax.set_title(f"PGSE max |g| {g[0]:.0f} mT/m ({hardware(g[0] / 1e3)}), OGSE {g[1]:.0f} mT/m "
                 f"({hardware(g[1] / 1e3)})", fontsize="medium")
    _, ax = plot.plot_waveforms(scheme, measurements=[2], ax=fig.add_subplot(grid[0, 2:]))
    ax.set_title(f"STE max |g| {g[2]:.0f} mT/m ({hardware(g[2] / 1e3)})", fontsize="medium")
    plot.plot_q(scheme, measurements=[0, 1, 2], ax=fig.add_subplot(grid[1, :2]))
    plot.plot_spectrum(scheme, measurements=[0, 1, 2], fmax=300.0, ax=fig.add_subplot(grid[1, 2:]))
    plot.plot_btensors(scheme, ax=fig.add_subplot(grid[2, 0]))
    scale = float(np.linalg.eigvalsh(scheme.btensors[[0, 2, 3]] / 1e6).max())  # one scale: the sizes compare
    for col, m in enumerate((0, 2, 3), start=1):
        plot.plot_btensor_glyph(scheme, m, ax=fig.add_subplot(grid[2, col], projection="3d"), scale=scale)
    fig.suptitle("diffwalk: PGSE, OGSE and b-tensor encoding at b = 1000 s/mm²")
    path = out / "waveforms.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    assert np.allclose(scheme.bvalues, 1000e6, rtol=1e-6)
    print(f"wrote {path}")
    return [path]
