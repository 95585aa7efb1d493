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

from collections.abc import Sequence
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


def spectrum_fmax(scheme: sequences.Scheme, measurements: Sequence[int], fraction: float = 0.99,
                  step: float = 10.0) -> float:
    """The frequency (Hz) below which every listed spectrum has ``fraction`` of its energy.

    The encoding spectrum integrates to b, so the cumulative integral says where the encoding is;
    plotting to a fixed 300 Hz had left these spectra squeezed below 100 Hz.

    Parameters
    ----------
    scheme : sequences.Scheme
    measurements : sequence of int
        The measurements whose spectra are drawn.
    fraction : float
        Share of each spectrum's integral (its b) that must lie below the limit.
    step : float
        The limit is rounded up to a multiple of this (Hz), for round tick labels.

    Returns
    -------
    float
        The x-axis limit in Hz.
    """
    f, power = scheme.spectrum()
    # cumulative trapezoid over the frequency grid, per measurement
    cum = np.concatenate([np.zeros((power.shape[0], 1)),
                          np.cumsum(0.5 * (power[:, 1:] + power[:, :-1]) * np.diff(f), axis=1)], axis=1)
    limits = [f[np.searchsorted(cum[m] / cum[m, -1], fraction)] for m in measurements]
    return float(step * np.ceil(max(limits) / step))


#: marker per encoding in the b-tensor shape panel: PGSE and OGSE sit on the same point (b = 1000
#: s/mm^2, b_Delta = 1), so PGSE is a large open ring around OGSE's filled cross, and both show
_SHAPE_STYLE = {
    "pgse": {"marker": "o", "s": 220, "facecolors": "none", "edgecolors": "tab:blue", "linewidths": 2},
    "ogse-cos": {"marker": "X", "s": 70, "color": "tab:orange"},
    "STE": {"marker": "s", "s": 60, "color": "tab:green"},
    "PTE": {"marker": "D", "s": 55, "color": "tab:purple"},
}


def _encoding_name(scheme: sequences.Scheme, m: int) -> str:
    """PGSE/OGSE by their labels; the tensor encodings by their shape (STE or PTE)."""
    if scheme.label[m] != "tensor":
        return str(scheme.label[m])
    return "STE" if abs(float(scheme.b_delta[m])) < 0.25 else "PTE"


def plot_btensor_shapes(scheme: sequences.Scheme, ax) -> None:
    """b_Delta against b, one marker per encoding, the legend left of the points (they all sit at 1000)."""
    b = scheme.bvalues / 1e6
    for y, name in ((1.0, "LTE"), (0.0, "STE"), (-0.5, "PTE")):
        ax.axhline(y, color="0.85", lw=1, zorder=0)
        ax.text(1.01, y, name, va="center", fontsize="small", color="0.4", transform=ax.get_yaxis_transform())
    for m in range(len(scheme)):
        name = _encoding_name(scheme, m)
        ax.scatter(b[m], scheme.b_delta[m], label=f"#{m} {name}", zorder=3, **_SHAPE_STYLE.get(name, {}))
    ax.set(xlabel="b (s/mm²)", ylabel="b_Δ", xlim=(0, 1.15 * max(b.max(), 1.0)), ylim=(-0.75, 1.2),
           title="b-tensor shape")
    # every point is at the right-hand end: the empty left half holds the legend
    ax.legend(fontsize="small", loc="center left", labelspacing=1.0, borderpad=0.8)


def make_figure(scheme: sequences.Scheme):
    """The six-panel figure of ``scheme`` (from :func:`build_protocol`): waveforms, q(t), spectra,
    b-tensor shapes and one glyph per measurement.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(14, 10), layout="constrained")
    rows = fig.add_gridspec(3, 1, height_ratios=(1, 1, 1.1))
    top, middle = rows[0].subgridspec(1, 2), rows[1].subgridspec(1, 2)
    bottom = rows[2].subgridspec(1, 1 + len(scheme), width_ratios=(1.3,) + (1,) * len(scheme))
    g = scheme.gradient_amplitudes * 1e3
    _, ax = plot.plot_waveforms(scheme, measurements=[0, 1], ax=fig.add_subplot(top[0]))
    ax.set_title(f"PGSE max |g| {g[0]:.0f} mT/m ({hardware(g[0] / 1e3)}), OGSE {g[1]:.0f} mT/m "
                 f"({hardware(g[1] / 1e3)})", fontsize="medium")
    _, ax = plot.plot_waveforms(scheme, measurements=[2], ax=fig.add_subplot(top[1]))
    ax.set_title(f"STE max |g| {g[2]:.0f} mT/m ({hardware(g[2] / 1e3)})", fontsize="medium")
    plot.plot_q(scheme, measurements=[0, 1, 2], ax=fig.add_subplot(middle[0]))
    shown = [0, 1, 2]
    fmax = spectrum_fmax(scheme, shown)
    _, ax = plot.plot_spectrum(scheme, measurements=shown, fmax=fmax, ax=fig.add_subplot(middle[1]))
    ax.set_xlim(0, fmax)
    ax.set_title(f"encoding power spectrum (99 % of each b lies below {fmax:.0f} Hz)")
    for text in ax.get_legend().get_texts():  # "#2 tensor" -> "#2 STE", as in the glyph titles
        m = int(text.get_text().split()[0][1:])
        text.set_text(f"#{m} {_encoding_name(scheme, m)}")
    plot_btensor_shapes(scheme, fig.add_subplot(bottom[0]))
    scale = float(np.linalg.eigvalsh(scheme.btensors / 1e6).max())  # one scale: the sizes compare
    # three ticks per axis (-scale, 0, scale): the default seven overlapped at this size
    ticks = [-scale, 0.0, scale]
    for m in range(len(scheme)):
        _, ax = plot.plot_btensor_glyph(scheme, m, ax=fig.add_subplot(bottom[1 + m], projection="3d"),
                                        scale=scale)
        ax.set_title(f"#{m} {_encoding_name(scheme, m)}\nb = {scheme.bvalues[m] / 1e6:.0f} s/mm², "
                     f"b_Δ = {round(float(scheme.b_delta[m]), 2) + 0.0:+.2f}", fontsize="small")
        # the unit is said once, below: three rotated "(s/mm²)" labels were clipped by the next glyph
        ax.set_xlabel("x", fontsize="x-small", labelpad=-6)
        ax.set_ylabel("y", fontsize="x-small", labelpad=-6)
        ax.set_zlabel("z", fontsize="x-small", labelpad=-8)
        ax.zaxis.set_rotate_label(False)
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.set_ticks(ticks)
            # the axes are symmetric: the -scale labels only collided with the neighbouring axis's +scale
            axis.set_ticklabels(["", "0", f"{scale:.0f}"])
    # supxlabel, not fig.text: constrained layout makes room for it
    fig.supxlabel(f"b-tensor glyphs: semi-axes are the eigenvalues; x, y, z in s/mm², one scale for all "
                  f"{len(scheme)}", x=0.6, fontsize="small", color="0.3")
    fig.suptitle("diffwalk: PGSE, OGSE and b-tensor encoding at b = 1000 s/mm²")
    return fig


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

    fig = make_figure(scheme)
    path = out / "waveforms.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    assert np.allclose(scheme.bvalues, 1000e6, rtol=1e-6)
    print(f"wrote {path}")
    return [path]
