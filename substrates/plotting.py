"""Figures of substrates: a cross-section normal to z, and a view along the fibres (or a 3-D view of a mesh)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import CYLINDERS, FREE, PLANES, SPHERES, Substrate
from .mesh import MeshSubstrate, image_vertices

UM = 1e6


def _mesh_section(sub: MeshSubstrate, axis: int, level: float) -> np.ndarray:
    """(S, 2, 3) segments where the triangle images cut the plane x_axis = level."""
    g = sub.grid
    v = image_vertices(sub.vertices, sub.faces, g.face, g.tri)
    d = v[:, :, axis] - level
    cut = (d.min(axis=1) < 0) & (d.max(axis=1) > 0)
    v, d = v[cut], d[cut]
    segs = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        m = (d[:, a] < 0) != (d[:, b] < 0)
        t = np.where(m, d[:, a] / np.where(m, d[:, a] - d[:, b], 1.0), np.nan)
        segs.append(v[:, a] + t[:, None] * (v[:, b] - v[:, a]))
    pts = np.stack(segs, 1)  # (S, 3, 3) with one NaN row per triangle
    ok = ~np.isnan(pts[:, :, 0])
    out = np.array([p[o][:2] for p, o in zip(pts, ok)]) if len(pts) else np.zeros((0, 2, 3))
    return out


def plot_section(sub: Substrate, z: float | None = None, ax=None, path: str | Path | None = None):
    """Draw the cross-section of any substrate normal to its local z axis, with the periodic box.

    Cylinders are circles, spheres the circles where the plane z cuts them,
    meshes the lines where it cuts their faces, planes lines one spacing apart.

    Parameters
    ----------
    sub : Substrate
        Any substrate (free, planes, cylinders, spheres, mesh).
    z : float, optional
        Height of the section in m (default: middle of the box or mesh).
    ax : matplotlib.axes.Axes, optional
        Axes to draw into (a new figure by default).
    path : str or Path, optional
        Save the figure here (PNG).

    Returns
    -------
    (matplotlib.figure.Figure, matplotlib.axes.Axes)

    Examples
    --------
    >>> import substrates
    >>> fig, ax = substrates.plot_section(substrates.cylinder_lattice(2e-6, 0.6))  # doctest: +SKIP
    """
    import matplotlib
    if path is not None and ax is None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Circle, Rectangle

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 6), layout="constrained")
    fig = ax.figure
    box = np.where(np.isfinite(sub.box), sub.box, np.nan)
    title = f"{sub.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in sub.volume_fractions().items())
    if sub.family == "mesh":
        lo = np.where(np.isfinite(sub.box), 0.0, sub.vertices.min(axis=0))
        hi = np.where(np.isfinite(sub.box), sub.box, sub.vertices.max(axis=0))
        zc = 0.5 * (lo[2] + hi[2]) if z is None else z
        if np.any(np.abs(sub.vertices[:, 2] - zc) < 1e-9 * (hi[2] - lo[2])):
            zc += 1e-6 * (hi[2] - lo[2])  # a plane through a ring of vertices cuts its faces at single points
        segs = _mesh_section(sub, 2, zc)
        ax.add_collection(LineCollection(segs[:, :, :2] * UM, colors="k", linewidths=0.8))
        ax.set_xlim(lo[0] * UM, hi[0] * UM)
        ax.set_ylim(lo[1] * UM, hi[1] * UM)
        title = f"section z = {zc * UM:.3g} µm ({sub.n_components} components, {len(sub.faces)} faces)"
    elif sub.kind in (CYLINDERS, SPHERES):
        c, r = sub.cells.centers, sub.cells.radii
        if sub.kind == SPHERES:
            zc = (0.5 * box[2] if np.isfinite(box[2]) else 0.0) if z is None else z
            dz = c[:, 2] - zc
            keep = np.abs(dz) < r
            c, r = c[keep], np.sqrt(r[keep] ** 2 - dz[keep] ** 2)
        for ci, ri in zip(c, r):
            ax.add_patch(Circle(ci[:2] * UM, ri * UM, fc="#9ecae1", ec="k", lw=0.6))
        if np.all(np.isfinite(box[:2])):
            ax.add_patch(Rectangle((0, 0), box[0] * UM, box[1] * UM, fill=False, ls="--", ec="r"))
            ax.set_xlim(-0.05 * box[0] * UM, 1.05 * box[0] * UM)
            ax.set_ylim(-0.05 * box[1] * UM, 1.05 * box[1] * UM)
        else:
            m = float(np.max(np.abs(c[:, :2]) + r[:, None])) * UM * 1.1
            ax.set_xlim(-m, m)
            ax.set_ylim(-m, m)
    elif sub.kind == PLANES:
        L = sub.spacing * UM
        for k in range(-1, 3):
            ax.axvline(k * L, color="navy")
        ax.set_xlim(-1.2 * L, 2.2 * L)
        ax.set_ylim(-1.2 * L, 2.2 * L)
        title = f"planes {L:.3g} µm apart (local frame: normal along x here)"
    elif sub.kind == FREE:
        ax.text(0.5, 0.5, "free space", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.set_xlabel("x (µm, substrate frame)")
    ax.set_ylabel("y (µm)")
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig, ax


def _plot_packing(fig, packing: dict, diameter: float) -> None:
    """A third panel: the pair correlation g(r) of the packing, with its nearest gaps and anisotropy."""
    fig.set_size_inches(15, 4.6)
    axes = fig.get_axes()
    for k, ax in enumerate(axes):
        ax.set_subplotspec(fig.add_gridspec(1, 3)[0, k])
    ax3 = fig.add_subplot(1, 3, 3)
    pc = packing["pair_correlation"]
    ax3.plot(np.asarray(pc["r"]) / diameter, pc["g"], color="tab:green")
    ax3.axhline(1.0, color="0.6", lw=0.8)
    q = np.asarray(packing["nearest_gap_quantiles"]) * 1e9
    ax3.set(xlabel="centre distance / mean diameter", ylabel="pair correlation g(r)",
            title=f"{packing.get('arrangement', '')} packing: nearest gaps {q[0]:.0f} / {q[1]:.0f} / {q[2]:.0f} / "
                  f"{q[3]:.0f} nm\n(min / 10 % / median / 90 %), neighbour anisotropy "
                  f"{packing['fabric_anisotropy']:.2f}")
    ax3.title.set_fontsize("medium")


def plot_substrate(sub: Substrate, z: float | None = None, fig=None, max_faces: int = 150_000):
    """Draw a substrate: cross-section normal to z (um) and a side section (or a 3-D view of a mesh).

    Parameters
    ----------
    sub : Substrate
        Analytic cylinders/spheres or a mesh substrate.
    z : float, optional
        Height of the cross-section in m (default: middle of the box or mesh).
    fig : matplotlib.figure.Figure, optional
        Figure to draw into (a new one by default).
    max_faces : int
        Faces drawn in the 3-D view (above this, whole components are left out at random, so the ones
        drawn stay solid).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if sub.family != "mesh" and sub.kind not in (CYLINDERS, SPHERES):
        raise ValueError(f"plot_substrate draws cylinders, spheres and meshes, not {sub.name}; "
                         "plot_section draws any substrate")
    fig = fig or plt.figure(figsize=(10, 4.6))
    plot_section(sub, z=z, ax=fig.add_subplot(1, 2, 1))
    if sub.family == "mesh":
        ax2 = fig.add_subplot(1, 2, 2, projection="3d")
        from mpl_toolkits.mplot3d.art3d import Poly3DCollection
        rng = np.random.default_rng(0)
        idx = np.arange(len(sub.faces))
        if len(idx) > max_faces:
            # whole components, in random order, until the budget is spent: solid surfaces, not dust
            keep = np.zeros(sub.n_components, bool)
            counts = np.bincount(sub.face_component, minlength=sub.n_components)
            used = 0
            for c in rng.permutation(sub.n_components):
                if used + counts[c] > max_faces and used > 0:
                    continue
                keep[c] = True
                used += counts[c]
            idx = idx[keep[sub.face_component]]
        tri = sub.vertices[sub.faces[idx]] * UM
        col = plt.cm.viridis((sub.face_component[idx] % 10) / 9.0)
        ax2.add_collection3d(Poly3DCollection(tri, facecolors=col, edgecolor="none", alpha=0.9))
        for a, setter in enumerate((ax2.set_xlim, ax2.set_ylim, ax2.set_zlim)):
            setter(sub.vertices[:, a].min() * UM, sub.vertices[:, a].max() * UM)
        ax2.set_box_aspect(np.ptp(sub.vertices, axis=0))
        ax2.set_xlabel("x (µm)")
        ax2.set_ylabel("y (µm)")
        ax2.set_zlabel("z (µm)")
        shown = len(np.unique(sub.face_component[idx]))
        ax2.set_title("surface" + (f" ({shown} of {sub.n_components} components shown)"
                                   if shown < sub.n_components else ""))
    else:
        ax2 = fig.add_subplot(1, 2, 2)
        ax2.hist(sub.radii * UM, bins=20, color="#3182bd")
        ax2.set_xlabel("radius (µm)")
        ax2.set_ylabel("count")
        ax2.set_title("radius distribution")
        packing = sub.description.get("packing")
        if packing and "pair_correlation" in packing:
            _plot_packing(fig, packing, float(2 * sub.radii.mean()))
    fig.tight_layout()
    return fig
