"""A picture of a substrate: the cross-section a walker sees (local frame)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from substrates import CYLINDERS, FREE, PLANES, SPHERES, Substrate


def show_substrate(sub: Substrate, path: str | Path | None = None, ax=None):
    """Draw cylinders (cross-section), spheres (slice z = box/2) or planes, with the periodic box.

    Returns ``(fig, ax)``; saves to ``path`` when given.
    """
    import matplotlib
    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, Rectangle

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 6), layout="constrained")
    else:
        fig = ax.figure
    um = 1e6
    if sub.kind in (CYLINDERS, SPHERES):
        cells = sub.cells
        zc = 0.5 * sub.box[2] if sub.kind == SPHERES else 0.0
        for c, r in zip(cells.centers, cells.radii):
            rr = r if sub.kind == CYLINDERS else np.sqrt(max(r**2 - (c[2] - zc) ** 2, 0.0))
            if rr > 0:
                ax.add_patch(Circle((c[0] * um, c[1] * um), rr * um, facecolor="tab:blue", alpha=0.5,
                                    edgecolor="navy"))
        if np.all(np.isfinite(sub.box[:2])):
            ax.add_patch(Rectangle((0, 0), sub.box[0] * um, sub.box[1] * um, fill=False, ls="--", color="k"))
            lim = (min(0, (cells.centers[:, :2] - cells.radii[:, None]).min() * um),
                   max(sub.box[:2].max(), (cells.centers[:, :2] + cells.radii[:, None]).max()) * um)
        else:
            r = sub.radii.max() * um * 1.2
            lim = (-r, r)
        ax.set(xlim=lim, ylim=lim)
    elif sub.kind == PLANES:
        L = sub.spacing * um
        for k in range(-1, 3):
            ax.axvline(k * L, color="navy")
        ax.set(xlim=(-1.2 * L, 2.2 * L), ylim=(-1.2 * L, 2.2 * L))
    elif sub.kind == FREE:
        ax.text(0.5, 0.5, "free space", ha="center", va="center", transform=ax.transAxes)
    vf = ", ".join(f"{k} {v:.3f}" for k, v in sub.volume_fractions().items())
    ax.set(aspect="equal", xlabel="x (µm, substrate frame)", ylabel="y (µm)", title=f"{sub.name}: {vf}")
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig, ax
