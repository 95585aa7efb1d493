"""Substrates other generators write: MC/DC cylinder and sphere lists, CATERPillar sphere lists, CACTUS strands.

The formats, from each tool's public source (facts, not code):

- **MC/DC** (``cylinders_list``, ``spheres_list`` and its ``*_gamma_distributed_*_list.txt`` outputs): line 1 a
  scale factor to MC/DC's internal millimetres (``0.001`` for a file in um), then one obstacle per line,
  cylinders ``x y z r`` (axis along z) or ``x1 y1 z1 x2 y2 z2 r`` (two points on the axis), spheres
  ``x y z r``. The voxel is not in the file but in the ``.conf`` (``<voxels>`` or ``<voxel>``: two lines,
  min and max corner, mm). Gamma packings list periodic copies near the voxel's faces as extra lines.
- **CATERPillar** (``<name>.csv``, space-separated despite the extension): a header
  ``cell_type cell_id component component_id X Y Z inner_radius outer_radius`` and one sphere a line, um;
  cell types ``axon``, ``glial_cell``, ``blood_vessel``; inner < outer where an axon has myelin. The voxel
  [0, L]^3 is in ``<name>_growth_info.txt`` (``Voxel Size L``). Older files (``.swc``) have the header
  ``id_ax id_sph id_branch Type X Y Z Rin Rout P``.
- **CACTUS** strand lists (``.init``, ``.partial``, ``optimized_final.txt``): line 1 the box side L, line 2
  the number of fibres, then per fibre its number of control points n and n lines ``x y z r``, um, box
  centred on the origin.

Every importer converts to SI at the boundary and refuses radii outside 10 nm - 100 um with the unit
mistake that most likely caused them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .analytic import cylinders, spheres
from .mesh import UNITS
from .unions import sphere_union

#: plausible radii of an imported cell, m: outside it the file's unit (or MC/DC's scale line) is wrong
RADIUS_RANGE = (1e-8, 1e-4)
#: CATERPillar cell types that hold water a walker diffuses in by default
CATERPILLAR_CELLS = ("axon", "glial_cell")


def _numbers(path: Path, line_no: int, text: str, count: int | None = None) -> list[float]:
    try:
        values = [float(t) for t in text.split()]
    except ValueError:
        raise ValueError(f"{path}, line {line_no}: expected numbers, got {text.strip()!r}") from None
    if count is not None and len(values) != count:
        raise ValueError(f"{path}, line {line_no}: expected {count} numbers, got {len(values)} ({text.strip()!r})")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{path}, line {line_no}: non-finite number in {text.strip()!r}")
    return values


def _length_scale(units: str, tool: str) -> float:
    """Metres per unit of a file's lengths (the units ``from_mesh`` knows)."""
    if units not in UNITS:
        raise ValueError(f"units = {units!r}: choose one of {sorted(UNITS)} ({tool} writes um)")
    return UNITS[units]


def _check_radii(path: Path, r: np.ndarray, unit_hint: str) -> None:
    lo, hi = RADIUS_RANGE
    if r.size == 0:
        raise ValueError(f"{path}: no obstacle in the file")
    if np.any(r <= 0):
        raise ValueError(f"{path}: {int(np.sum(r <= 0))} radius/radii <= 0")
    if r.min() < lo or r.max() > hi:
        raise ValueError(f"{path}: radii of {r.min():.3g} to {r.max():.3g} m after conversion are not cells "
                         f"(expected {lo:g} to {hi:g} m); {unit_hint}")


def _periodic_unique(centers: np.ndarray, radii: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Indices of the obstacles left once periodic copies (same radius, centre equal modulo the box) go."""
    wrapped = np.mod(centers, box)
    wrapped = np.where(np.isclose(wrapped, box, rtol=0, atol=1e-12), 0.0, wrapped)
    key = np.column_stack([np.round(wrapped / 1e-10), np.round(radii / 1e-12)])
    _, first = np.unique(key, axis=0, return_index=True)
    return np.sort(first)


def read_mcdc_voxel(conf) -> tuple[np.ndarray, np.ndarray]:
    """The voxel of an MC/DC ``.conf`` file: its min and max corners, converted from mm to m.

    Parameters
    ----------
    conf : str or Path
        The MC/DC configuration file with a ``<voxels>`` (or ``<voxel>``) block.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        (3,) min and max corner in m.
    """
    path = Path(conf)
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip().lower() in ("<voxels>", "<voxel>"):
            lo = _numbers(path, i + 2, lines[i + 1], 3)
            hi = _numbers(path, i + 3, lines[i + 2], 3)
            lo, hi = np.array(lo) * 1e-3, np.array(hi) * 1e-3
            if np.any(hi <= lo):
                raise ValueError(f"{path}: the voxel's max corner must exceed its min corner in x, y and z")
            return lo, hi
    raise ValueError(f"{path}: no <voxels> block; give box= (m) instead")


def _mcdc_box(box, conf, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if (box is None) == (conf is None):
        raise ValueError(f"{path}: MC/DC lists hold no voxel; give box= (3 lengths in m) or conf= (the .conf "
                         "with its <voxels> block), one of the two")
    if conf is not None:
        lo, hi = read_mcdc_voxel(conf)
        return lo, hi - lo
    b = np.asarray(box, dtype=float).ravel()
    if b.shape != (3,) or not np.all(np.isfinite(b)) or np.any(b <= 0):
        raise ValueError(f"box must be 3 positive lengths in m, got {box!r}")
    if b.max() > 1e-2:
        raise ValueError(f"box = {box!r} m is larger than 1 cm: give it in m (100 um is 1e-4)")
    return np.zeros(3), b


def _mcdc_rows(path: Path) -> tuple[float, list[list[float]], list[int]]:
    lines = [(i + 1, ln) for i, ln in enumerate(Path(path).read_text().splitlines()) if ln.strip()]
    if not lines:
        raise ValueError(f"{path}: empty file")
    head = _numbers(path, lines[0][0], lines[0][1])
    if len(head) != 1 or head[0] <= 0:
        raise ValueError(f"{path}, line {lines[0][0]}: MC/DC lists start with one positive scale factor to mm "
                         f"(0.001 for a file in um), got {lines[0][1].strip()!r}")
    return head[0], [_numbers(path, n, t) for n, t in lines[1:]], [n for n, _ in lines[1:]]


def read_mcdc_cylinders(path, box=None, conf=None, permeability=0.0, relaxivity=0.0):
    """Parallel cylinders from an MC/DC ``cylinders_list`` file (or its gamma packing's output).

    Parameters
    ----------
    path : str or Path
        The list: a scale line, then ``x y z r`` or ``x1 y1 z1 x2 y2 z2 r`` per cylinder.
    box : array_like, optional
        (3,) voxel in m (periodic box, from the origin).
    conf : str or Path, optional
        The MC/DC ``.conf`` whose ``<voxels>`` block gives the voxel (instead of ``box``).
    permeability, relaxivity : float
        As :func:`substrates.cylinders` (m/s).

    Returns
    -------
    AnalyticSubstrate
        The cylinders in the voxel's (x, y) plane, axis z; periodic copies listed by MC/DC are dropped.

    Examples
    --------
    >>> sub = read_mcdc_cylinders("gamma_cylinder_list.txt", conf="run.conf")   # doctest: +SKIP
    """
    path = Path(path)
    scale, rows, numbers = _mcdc_rows(path)
    widths = {len(r) for r in rows}
    if not widths <= {4, 7} or len(widths) != 1:
        raise ValueError(f"{path}: every cylinder line needs 4 numbers (x y z r, axis z) or 7 (x1 y1 z1 x2 y2 z2 "
                         f"r), one form per file; found {sorted(widths)}")
    a = np.array(rows) * scale * 1e-3
    if a.shape[1] == 7:
        d = a[:, 3:6] - a[:, 0:3]
        norm = np.linalg.norm(d, axis=1)
        if np.any(norm == 0):
            bad = numbers[int(np.argmax(norm == 0))]
            raise ValueError(f"{path}, line {bad}: the two axis points coincide; they set the cylinder's direction")
        u = d / norm[:, None]
        tilted = np.abs(np.abs(u[:, 2]) - 1) > 1e-9
        if np.any(tilted):
            bad = numbers[int(np.argmax(tilted))]
            raise ValueError(f"{path}, line {bad}: cylinder not parallel to z; diffwalk imports MC/DC cylinder "
                             "lists of parallel cylinders along z (the voxel's axis); a crossing or dispersed "
                             "list needs a mesh (substrates.from_mesh)")
        xy, r = a[:, 0:2], a[:, 6]
    else:
        xy, r = a[:, 0:2], a[:, 3]
    _check_radii(path, r, "MC/DC's first line scales the file to mm: 0.001 for um, 1 for mm")
    lo, b = _mcdc_box(box, conf, path)
    keep = _periodic_unique(xy - lo[:2], r, b[:2])
    sub = cylinders(r[keep], np.mod(xy[keep] - lo[:2], b[:2]), b[:2], permeability=permeability,
                    relaxivity=relaxivity)
    sub.description.update({"factory": "read_mcdc_cylinders", "file": str(path), "listed": len(r),
                            "periodic_copies_dropped": len(r) - len(keep)})
    return sub


def read_mcdc_spheres(path, box=None, conf=None, permeability=0.0, relaxivity=0.0):
    """Spheres from an MC/DC ``spheres_list`` file (scale line, then ``x y z r`` per sphere).

    Parameters
    ----------
    path : str or Path
        The list.
    box : array_like, optional
        (3,) voxel in m (periodic box, from the origin).
    conf : str or Path, optional
        The MC/DC ``.conf`` whose ``<voxels>`` block gives the voxel (instead of ``box``).
    permeability, relaxivity : float
        As :func:`substrates.spheres` (m/s).

    Returns
    -------
    AnalyticSubstrate
        The spheres; periodic copies listed by MC/DC are dropped.
    """
    path = Path(path)
    scale, rows, _ = _mcdc_rows(path)
    if {len(r) for r in rows} != {4}:
        raise ValueError(f"{path}: every sphere line needs 4 numbers (x y z r)")
    a = np.array(rows) * scale * 1e-3
    c, r = a[:, :3], a[:, 3]
    _check_radii(path, r, "MC/DC's first line scales the file to mm: 0.001 for um, 1 for mm")
    lo, b = _mcdc_box(box, conf, path)
    keep = _periodic_unique(c - lo, r, b)
    sub = spheres(r[keep], np.mod(c[keep] - lo, b), b, permeability=permeability, relaxivity=relaxivity)
    sub.description.update({"factory": "read_mcdc_spheres", "file": str(path), "listed": len(r),
                            "periodic_copies_dropped": len(r) - len(keep)})
    return sub


_CATERPILLAR_COLUMNS = {"type": ("cell_type", "type"), "cell": ("cell_id", "id_cell", "id_ax"),
                        "x": ("x",), "y": ("y",), "z": ("z",), "inner": ("inner_radius", "rin"),
                        "outer": ("outer_radius", "rout")}


def _caterpillar_box(path: Path) -> float | None:
    info = path.with_name(re.sub(r"(_\d+)?$", "", path.stem) + "_growth_info.txt")
    if not info.exists():
        return None
    for line in info.read_text().splitlines():
        m = re.match(r"\s*voxel\s+size\s+([-+0-9.eE]+)", line, re.IGNORECASE)
        if m:
            return float(m.group(1))
    return None


def read_caterpillar(path, box=None, units: str = "um", radius: str = "inner", cells=CATERPILLAR_CELLS):
    """A union of spheres from a CATERPillar sphere list: one fibre (cell) per axon, glial cell or vessel.

    Parameters
    ----------
    path : str or Path
        ``<name>.csv`` (space-separated, with its header) or an older ``.swc`` sphere list.
    box : array_like or float, optional
        Voxel side(s) in m; default: ``Voxel Size`` from ``<name>_growth_info.txt`` beside the file (in the
        file's units).
    units : str
        Unit of the file's numbers: "um" (CATERPillar's), "nm", "mm" or "m".
    radius : {"inner", "outer"}
        The axon's inner radius (the intra-axonal water, inside the myelin) or its outer one.
    cells : tuple of str
        Cell types kept (``axon``, ``glial_cell``, ``blood_vessel``; older files ``glialSoma`` and
        ``glialRamification`` count as ``glial_cell``).

    Returns
    -------
    SphereUnion
        ``fibre`` numbers the cells in file order; the description counts spheres per cell type.
    """
    path = Path(path)
    scale = _length_scale(units, "CATERPillar")
    if radius not in ("inner", "outer"):
        raise ValueError(f"radius = {radius!r}: choose 'inner' (intra-axonal, inside the myelin) or 'outer'")
    lines = [(i + 1, ln) for i, ln in enumerate(path.read_text().splitlines()) if ln.strip()]
    if not lines:
        raise ValueError(f"{path}: empty file")
    header = [t.lower() for t in lines[0][1].split()]
    col = {}
    for key, names in _CATERPILLAR_COLUMNS.items():
        found = [header.index(n) for n in names if n in header]
        if not found:
            raise ValueError(f"{path}, line 1: no {names[0]} column in the header {lines[0][1].strip()!r}; "
                             "expected CATERPillar's 'cell_type cell_id component component_id X Y Z "
                             "inner_radius outer_radius'")
        col[key] = found[0]
    kinds = {"glialsoma": "glial_cell", "glialramification": "glial_cell"}
    centers, radii, fibre, types = [], [], [], []
    ids: dict = {}
    for n, text in lines[1:]:
        tok = text.split()
        if len(tok) < len(header):
            raise ValueError(f"{path}, line {n}: {len(tok)} fields, the header has {len(header)}")
        kind = kinds.get(tok[col["type"]].lower(), tok[col["type"]])
        if kind not in cells:
            continue
        try:
            x, y, z = (float(tok[col[k]]) for k in ("x", "y", "z"))
            r = float(tok[col[radius]])
        except ValueError:
            raise ValueError(f"{path}, line {n}: expected numbers in X Y Z and the radii, got {text.strip()!r}") \
                from None
        centers.append((x, y, z))
        radii.append(r)
        fibre.append(ids.setdefault((kind, tok[col["cell"]]), len(ids)))
        types.append(kind)
    r = np.array(radii) * scale
    _check_radii(path, r, f"the file was read as {units}: CATERPillar writes um")
    if box is None:
        side = _caterpillar_box(path)
        if side is None:
            raise ValueError(f"{path}: no box given and no '{path.stem}_growth_info.txt' with 'Voxel Size' beside "
                             "it; give box= (the voxel side in the file's units)")
        box = side * scale
    b = np.broadcast_to(np.asarray(box, dtype=float), (3,)).copy()
    if not np.all(np.isfinite(b)) or np.any(b <= 0) or b.max() > 1e-2:
        raise ValueError(f"box = {box!r}: expected the voxel side(s) in m (60 um is 6e-5)")
    counts = {k: types.count(k) for k in dict.fromkeys(types)}
    return sphere_union(np.array(centers) * scale, r, b, fibre=np.array(fibre),
                        description={"factory": "read_caterpillar", "file": str(path), "radius": radius,
                                     "spheres": counts, "cells": len(ids)})


def read_cactus(path, units: str = "um", spacing: float = 0.5):
    """A union of spheres along the strands of a CACTUS strand list (``.init``, ``.partial``, final).

    Each strand's polyline of control points (x y z r) is filled with spheres at most ``spacing`` times the
    local radius apart (radii interpolated linearly), and the box, centred on the origin in CACTUS, is moved
    to [0, L]^3. The box is periodic in diffwalk: strands that end on a face meet their neighbours' periodic
    images there, not their own other end.

    Parameters
    ----------
    path : str or Path
        The strand list.
    units : str
        Unit of the file's numbers: "um" (CACTUS's), "nm", "mm" or "m".
    spacing : float
        Largest distance between neighbouring spheres of a strand, in local radii (0.5: the union's surface
        ripples by under 4 % of the radius).

    Returns
    -------
    SphereUnion
        ``fibre`` numbers the strands in file order.
    """
    path = Path(path)
    scale = _length_scale(units, "CACTUS")
    if not 0 < spacing <= 1:
        raise ValueError(f"spacing = {spacing!r}: expected a fraction of the radius in (0, 1], e.g. 0.5")
    lines = [(i + 1, ln) for i, ln in enumerate(path.read_text().splitlines()) if ln.strip()]
    if len(lines) < 2:
        raise ValueError(f"{path}: a CACTUS strand list starts with the box side and the number of strands")
    L = _numbers(path, *lines[0], 1)[0]
    n_strands = _numbers(path, *lines[1], 1)[0]
    if L <= 0 or n_strands != int(n_strands) or n_strands < 1:
        raise ValueError(f"{path}: box side {L!r} and strand count {n_strands!r} must be positive (the count whole)")
    k = 2
    centers, radii, fibre = [], [], []
    for s in range(int(n_strands)):
        if k >= len(lines):
            raise ValueError(f"{path}: the header promises {int(n_strands)} strands, the file ends after {s}")
        n = _numbers(path, *lines[k], 1)[0]
        if n != int(n) or n < 1 or k + int(n) >= len(lines) + 1:
            raise ValueError(f"{path}, line {lines[k][0]}: strand {s} needs a whole number of control points "
                             "followed by that many 'x y z r' lines")
        pts = np.array([_numbers(path, *lines[k + 1 + j], 4) for j in range(int(n))])
        k += 1 + int(n)
        for a, b in zip(pts[:-1], pts[1:]):
            length = np.linalg.norm(b[:3] - a[:3])
            m = max(1, int(np.ceil(length / (spacing * min(a[3], b[3])))))
            t = np.arange(m)[:, None] / m
            seg = a + t * (b - a)
            centers.append(seg[:, :3])
            radii.append(seg[:, 3])
            fibre.append(np.full(m, s))
        centers.append(pts[-1:, :3])
        radii.append(pts[-1:, 3])
        fibre.append(np.array([s]))
    if k != len(lines):
        raise ValueError(f"{path}, line {lines[k][0]}: more lines than the {int(n_strands)} strands announced")
    r = np.concatenate(radii) * scale
    _check_radii(path, r, f"the file was read as {units}: CACTUS writes um")
    c = (np.concatenate(centers) + L / 2) * scale
    return sphere_union(c, r, np.full(3, L * scale), fibre=np.concatenate(fibre),
                        description={"factory": "read_cactus", "file": str(path), "strands": int(n_strands),
                                     "spacing": spacing})
