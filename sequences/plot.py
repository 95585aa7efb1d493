"""Figures of waveforms, q(t), encoding spectra and b-tensors (matplotlib, OO API).

Each function takes ``ax=None`` (a new figure is made) and returns ``(fig, ax)``;
none calls ``plt.show()``.
"""

from __future__ import annotations

import numpy as np

from .constants import S_PER_MM2
from .scheme import Scheme

_AXES = ("x", "y", "z")


def _ax(ax, **kw):
    import matplotlib.pyplot as plt
    if ax is None:
        fig, ax = plt.subplots(layout="constrained", **kw)
        return fig, ax
    return ax.figure, ax


def _stairs_t(scheme: Scheme) -> np.ndarray:
    return scheme.times * 1e3


def plot_waveforms(scheme: Scheme, measurements=(0,), ax=None):
    """Effective gradient g(t) per axis, in mT/m against ms."""
    fig, ax = _ax(ax)
    for m in np.atleast_1d(measurements):
        for i in range(3):
            g = scheme.gradients[m, :, i]
            if np.any(g != 0):
                ax.stairs(g * 1e3, _stairs_t(scheme), label=f"#{m} g{_AXES[i]} ({scheme.label[m] or 'waveform'})")
    ax.axhline(0, color="0.6", lw=0.5)
    ax.set(xlabel="time (ms)", ylabel="effective gradient (mT/m)", title="gradient waveforms")
    ax.legend(fontsize="small")
    return fig, ax


def plot_q(scheme: Scheme, measurements=(0,), ax=None):
    """Wave vector q(t) per axis, in rad/um against ms; it returns to 0 at the echo."""
    fig, ax = _ax(ax)
    t = scheme.times * 1e3
    for m in np.atleast_1d(measurements):
        for i in range(3):
            q = scheme.qt[m, :, i]
            if np.any(q != 0):
                ax.plot(t, q * 1e-6, label=f"#{m} q{_AXES[i]}")
    ax.axhline(0, color="0.6", lw=0.5)
    ax.set(xlabel="time (ms)", ylabel="q (rad/µm)", title="q(t) = γ ∫ g dt")
    ax.legend(fontsize="small")
    return fig, ax


def plot_spectrum(scheme: Scheme, measurements=(0,), fmax: float | None = None, ax=None):
    """Encoding power spectrum (b per Hz, in s/mm^2 per Hz) against frequency in Hz."""
    fig, ax = _ax(ax)
    f, P = scheme.spectrum()
    fmax = fmax if fmax is not None else min(f[-1], 20.0 / scheme.duration * 10)
    keep = f <= fmax
    for m in np.atleast_1d(measurements):
        ax.plot(f[keep], P[m, keep] / S_PER_MM2, label=f"#{m} {scheme.label[m]}")
    ax.set(xlabel="frequency (Hz)", ylabel="encoding spectrum (s/mm² per Hz)", title="encoding power spectrum")
    ax.legend(fontsize="small")
    return fig, ax


def plot_btensors(scheme: Scheme, ax=None):
    """b_Delta against b for every measurement: where a protocol sits in b-tensor space."""
    fig, ax = _ax(ax)
    b = scheme.bvalues / S_PER_MM2
    for y, name in ((1.0, "LTE"), (0.0, "STE"), (-0.5, "PTE")):
        ax.axhline(y, color="0.85", lw=1)
        ax.text(1.01, y, name, va="center", fontsize="small", color="0.4", transform=ax.get_yaxis_transform())
    labels = scheme.label
    for lab in dict.fromkeys(labels):
        sel = labels == lab
        ax.scatter(b[sel], scheme.b_delta[sel], label=lab or "waveform", alpha=0.8)
    ax.set(xlabel="b (s/mm²)", ylabel="b_Δ", xlim=(0, 1.1 * max(b.max(), 1.0)), ylim=(-0.65, 1.15),
           title="b-tensor shape")
    ax.legend(fontsize="small")
    return fig, ax


def plot_btensor_glyph(scheme: Scheme, measurement: int, ax=None, scale: float | None = None):
    """The b-tensor of one measurement as an ellipsoid (semi-axes = eigenvalues, s/mm^2) on a 3-D axis.

    Parameters
    ----------
    scheme : Scheme
    measurement : int
    ax : mpl_toolkits.mplot3d.Axes3D, optional
    scale : float, optional
        Half-width of the axes in s/mm^2; give the same to every glyph of a figure so that their sizes
        compare (default: this tensor's largest eigenvalue).
    """
    import matplotlib.pyplot as plt
    if ax is None:
        fig = plt.figure(layout="constrained")
        ax = fig.add_subplot(projection="3d")
    w, v = np.linalg.eigh(scheme.btensors[measurement] / S_PER_MM2)
    b = float(w.sum())  # the trace: computed before the drawing floor below
    b_delta = float(np.round(scheme.b_delta[measurement], 2)) + 0.0  # + 0.0 turns -0.0 into 0.0
    # a linear tensor has two zero axes: draw it as a thin cigar, not as nothing
    w = np.clip(w, 0.03 * max(w.max(), 1e-12), None)
    u, s = np.meshgrid(np.linspace(0, 2 * np.pi, 40), np.linspace(0, np.pi, 20))
    sphere = np.stack([np.cos(u) * np.sin(s), np.sin(u) * np.sin(s), np.cos(s)], axis=-1)
    pts = (sphere * w) @ v.T
    ax.plot_surface(pts[..., 0], pts[..., 1], pts[..., 2], color="tab:blue", alpha=0.7, linewidth=0)
    r = scale if scale is not None else w.max()
    ax.set(xlim=(-r, r), ylim=(-r, r), zlim=(-r, r))
    ax.set_box_aspect((1, 1, 1))
    ax.set_xlabel("x (s/mm²)", fontsize="x-small", labelpad=-2)
    ax.set_ylabel("y (s/mm²)", fontsize="x-small", labelpad=-2)
    ax.set_zlabel("z (s/mm²)", fontsize="x-small", labelpad=-2)
    ax.set_title(f"#{measurement} {scheme.label[measurement]}\nb = {b:.0f} s/mm², b_Δ = {b_delta:+.2f}",
                 fontsize="small")
    ax.tick_params(labelsize="xx-small", pad=0)
    return ax.figure, ax
