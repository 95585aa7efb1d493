"""Figures of substrates: a cross-section normal to z and a view along the fibres (or a 3-D view)."""

from __future__ import annotations

import numpy as np

from .analytic import CYLINDERS, SPHERES, Substrate
from .mesh import MeshSubstrate, _image_vertices


def _mesh_section(sub: MeshSubstrate, axis: int, level: float) -> np.ndarray:
    """(S, 2, 3) segments where the triangle images cut the plane x_axis = level."""
    g = sub.grid
    v = _image_vertices(sub.vertices, sub.faces, g.face, g.tri)
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
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Circle, Rectangle

    fig = fig or plt.figure(figsize=(10, 4.6))
    ax1 = fig.add_subplot(1, 2, 1)
    um = 1e6
    box = np.where(np.isfinite(sub.box), sub.box, np.nan)
    if isinstance(sub, MeshSubstrate):
        lo = np.where(np.isfinite(sub.box), 0.0, sub.vertices.min(axis=0))
        hi = np.where(np.isfinite(sub.box), sub.box, sub.vertices.max(axis=0))
        zc = 0.5 * (lo[2] + hi[2]) if z is None else z
        segs = _mesh_section(sub, 2, zc)
        ax1.add_collection(LineCollection(segs[:, :, :2] * um, colors="k", linewidths=0.8))
        ax1.set_xlim(lo[0] * um, hi[0] * um)
        ax1.set_ylim(lo[1] * um, hi[1] * um)
        ax1.set_title(f"section z = {zc * um:.3g} um ({sub.n_components} components, {len(sub.faces)} faces)")
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
        tri = sub.vertices[sub.faces[idx]] * um
        col = plt.cm.viridis((sub.face_component[idx] % 10) / 9.0)
        ax2.add_collection3d(Poly3DCollection(tri, facecolors=col, edgecolor="none", alpha=0.9))
        for a, setter in enumerate((ax2.set_xlim, ax2.set_ylim, ax2.set_zlim)):
            setter(sub.vertices[:, a].min() * um, sub.vertices[:, a].max() * um)
        ax2.set_box_aspect(np.ptp(sub.vertices, axis=0))
        ax2.set_xlabel("x (um)")
        ax2.set_ylabel("y (um)")
        ax2.set_zlabel("z (um)")
        shown = len(np.unique(sub.face_component[idx]))
        ax2.set_title("surface" + (f" ({shown} of {sub.n_components} components shown)"
                                   if shown < sub.n_components else ""))
    else:
        if sub.kind == CYLINDERS:
            c, r = sub.cells.centers, sub.cells.radii
        elif sub.kind == SPHERES:
            zc = (0.5 * box[2] if np.isfinite(box[2]) else 0.0) if z is None else z
            c, r = sub.cells.centers, sub.cells.radii
            dz = c[:, 2] - zc
            keep = np.abs(dz) < r
            c, r = c[keep], np.sqrt(r[keep]**2 - dz[keep]**2)
        else:
            raise ValueError(f"plot_substrate draws cylinders, spheres and meshes, not {sub.name}")
        for ci, ri in zip(c, r):
            ax1.add_patch(Circle(ci[:2] * um, ri * um, fc="#9ecae1", ec="k", lw=0.6))
        if np.all(np.isfinite(box[:2])):
            ax1.add_patch(Rectangle((0, 0), box[0] * um, box[1] * um, fill=False, ls="--", ec="r"))
            ax1.set_xlim(-0.05 * box[0] * um, 1.05 * box[0] * um)
            ax1.set_ylim(-0.05 * box[1] * um, 1.05 * box[1] * um)
        else:
            m = float(np.max(np.abs(c[:, :2]) + r[:, None])) * um * 1.1
            ax1.set_xlim(-m, m)
            ax1.set_ylim(-m, m)
        vf = sub.volume_fractions()
        ax1.set_title(f"{sub.name}: " + ", ".join(f"{k} {v:.2f}" for k, v in vf.items()))
        ax2 = fig.add_subplot(1, 2, 2)
        ax2.hist(sub.radii * um, bins=20, color="#3182bd")
        ax2.set_xlabel("radius (um)")
        ax2.set_ylabel("count")
        ax2.set_title("radius distribution")
    ax1.set_aspect("equal")
    ax1.set_xlabel("x (um)")
    ax1.set_ylabel("y (um)")
    fig.tight_layout()
    return fig
