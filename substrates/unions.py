"""Fibres and cells built from overlapping spheres: the union of spheres as one compartment, no mesh.

MEDUSA and CATERPillar build axons as chains of overlapping spheres whose radii and centres vary along the
chain: beading and undulation come for free, and collisions stay exact (a sphere is a quadric). Here a
:class:`SphereUnion` holds spheres, each tagged with the fibre it belongs to; walkers live inside the
union (the intra-fibre space, region "intra"), where they reflect off the first sphere surface that leads
outside it, or between the spheres (region "extra"), where they reflect off the first sphere they enter
(the kernel is :mod:`walker.union_kernel`). Fibres of one substrate must not touch each other.

Walkers start uniformly in the union, exactly: a sphere is drawn with probability proportional to its
volume, a point uniformly in it, and the point is kept with probability 1 / (number of spheres holding
it). The same draws give an unbiased estimate of the union's volume (the ground truth reports it with its
standard error).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from sequences import check_count, check_fraction

from .base import (UNION, Family, Substrate, WalkerStart, cached_per_reach, check_centers, check_length,
                   check_permeability, check_relaxivity, check_start, register_family)
from .disks import pack_disks
from .files import json_text


@dataclass(frozen=True, eq=False)
class UnionGrid:
    """Per-cell lists of the sphere images a walker in the cell may meet within ``reach`` (m).

    Parameters
    ----------
    centers, radii : numpy.ndarray
        (Q, 3) and (Q,) sphere images (periodic copies near the box faces included), m.
    lo, h : numpy.ndarray
        (3,) grid origin and cell size, m.
    n : numpy.ndarray
        (3,) cells per axis (int64).
    start, items : numpy.ndarray
        CSR lists: the images of cell c are ``items[start[c]:start[c + 1]]``.
    deep : numpy.ndarray
        (cells,) True where one sphere holds the whole cell dilated by ``reach``: no step from there can
        leave the union.
    reach : float
        Longest segment the lists are complete for, m.
    """

    centers: np.ndarray
    radii: np.ndarray
    lo: np.ndarray
    h: np.ndarray
    n: np.ndarray
    start: np.ndarray
    items: np.ndarray
    deep: np.ndarray
    reach: float


#: the ``home`` of a walker that lives outside the union (between the spheres); -1 is one inside it
OUTSIDE = -2


@dataclass(frozen=True, eq=False)
class SphereUnion(Substrate):
    """Fibres (or cells) as unions of overlapping spheres in a periodic box (see module docstring).

    Build it with :func:`sphere_union` or :func:`sphere_chain_axons`. The fields are also the attributes.

    Parameters
    ----------
    kind : int
        ``UNION``.
    box : numpy.ndarray
        (3,) periodic box in m.
    rotation, diffusion_tensor : object
        As in :class:`Substrate`, left at their defaults (identity rotation).
    permeability, relaxivity : numpy.ndarray
        The union surface's permeability (1, 2) [outward, inward] and relaxivity (1,) in m/s; empty: none.
    description : dict
        How it was made.
    centers, radii : numpy.ndarray
        (P, 3) sphere centres in the box and (P,) radii, m.
    fibre : numpy.ndarray
        (P,) fibre (connected union) each sphere belongs to.
    truth : dict
        Ground truth from the generator (SI).
    """

    #: the family of substrates this class belongs to (its kernel, its file format): see substrates.FAMILIES
    family: ClassVar[str] = "union"

    centers: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    radii: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fibre: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    truth: dict = field(default_factory=dict)

    @property
    def region_names(self) -> list[str]:
        """``["intra", "extra"]``: inside the union, and the space between the spheres (also the
        :attr:`compartments`); walkers cross between them only where the surface is permeable."""
        return ["intra", "extra"]

    def region_fractions(self, home: np.ndarray) -> dict[str, float]:
        """Fraction of walkers inside the union and between its spheres, from where they are.

        Parameters
        ----------
        home : numpy.ndarray
            (N,) :data:`OUTSIDE` for a walker between the spheres, else inside the union.

        Returns
        -------
        dict of str to float
            ``{"intra": ..., "extra": ...}`` (dimensionless).
        """
        out = float(np.mean(np.asarray(home) == OUTSIDE))
        return {"intra": 1.0 - out, "extra": out}

    def signal_groups(self, home: np.ndarray, positions: np.ndarray | None = None
                      ) -> tuple[np.ndarray, list[str]] | None:
        """Groups the generator named: "intra.bundle_0", ... by the bundle of the fibre a walker starts in
        (``truth["bundle_of_fibre"]``), "intra.glia" for glial cells (``truth["glia"]``), and "extra"; None
        where the generator named none.

        Parameters
        ----------
        home : numpy.ndarray
            (N,) :data:`OUTSIDE` for walkers between the spheres.
        positions : numpy.ndarray
            (N, 3) start positions in the box, m: the sphere holding a walker names its fibre.

        Returns
        -------
        (labels, names) or None
            (N,) int64 index into ``names`` per walker.
        """
        bundles = self.truth.get("bundle_of_fibre")
        glia = self.truth.get("glia")
        if (bundles is None and glia is None) or positions is None:
            return None
        tag = {int(f): f"intra.bundle_{b}" for f, b in enumerate(bundles or [])}
        for f in (glia or {}).get("fibre_labels", []):
            tag[int(f)] = "intra.glia"
        fibre_tags = [tag.get(int(f), "intra") for f in range(int(self.fibre.max(initial=-1)) + 1)]
        names = list(dict.fromkeys(fibre_tags)) + ["extra"]
        out = np.asarray(home) == OUTSIDE
        labels = np.full(len(out), len(names) - 1, dtype=np.int64)
        inside = np.nonzero(~out)[0]
        if len(inside):
            held = self.holding_sphere(np.asarray(positions, dtype=float)[inside])
            fib = self.fibre[held]
            index = np.array([names.index(t) for t in fibre_tags], dtype=np.int64)
            labels[inside] = index[fib]
        return labels, names

    def holding_sphere(self, points: np.ndarray) -> np.ndarray:
        """Index of a sphere that holds each point (the nearest centre among those whose sphere holds it).

        Parameters
        ----------
        points : numpy.ndarray
            (N, 3) positions in the box inside the union, m.

        Returns
        -------
        numpy.ndarray
            (N,) int64 sphere indices; -1 for a point in no sphere.
        """
        from scipy.spatial import cKDTree
        tree = cKDTree(self.centers, boxsize=self.box)
        k = min(len(self.radii), 16)
        d, idx = tree.query(np.mod(points, self.box), k=k)
        d, idx = d.reshape(len(points), k), idx.reshape(len(points), k)
        ok = d <= self.radii[idx] * (1 + 1e-9)
        first = np.argmax(ok, axis=1)
        out = np.where(ok.any(axis=1), idx[np.arange(len(points)), first], -1).astype(np.int64)
        for m in np.nonzero(out < 0)[0]:  # held only by a sphere beyond the k nearest centres (a large one)
            near = tree.query_ball_point(np.mod(points[m], self.box), float(self.radii.max()))
            for j in near:
                dd = np.abs(np.mod(points[m], self.box) - self.centers[j])
                dd = np.minimum(dd, self.box - dd)
                if math.sqrt(float(dd @ dd)) <= self.radii[j] * (1 + 1e-9):
                    out[m] = j
                    break
        return out

    def volume_fractions(self) -> dict[str, float]:
        """Volume fractions of the union and of the space outside it (Monte Carlo, see :meth:`union_volume`).

        Returns
        -------
        dict of str to float
            ``{"intra": ..., "extra": ...}``, summing to 1.
        """
        if "_volume" not in self.__dict__:
            self.__dict__["_volume"] = self.union_volume()
        f = self.__dict__["_volume"][0] / float(np.prod(self.box))
        return {"intra": f, "extra": 1.0 - f}

    @property
    def smallest_feature(self) -> float:
        """The smallest sphere radius (m): the narrowest neck is wider only where spheres overlap well."""
        return float(self.radii.min())

    def images(self, reach: float) -> tuple[np.ndarray, np.ndarray]:
        """Sphere images: every sphere, and its periodic copies that come within ``reach`` of the box (m).

        Parameters
        ----------
        reach : float
            Distance beyond the box faces that images must cover, m.

        Returns
        -------
        centers, radii : numpy.ndarray
            (Q, 3) and (Q,) in m.
        """
        c, r, L = self.centers, self.radii, self.box
        out_c, out_r = [], []
        for sx in (-1, 0, 1):
            for sy in (-1, 0, 1):
                for sz in (-1, 0, 1):
                    s = np.array([sx, sy, sz]) * L
                    cc = c + s
                    near = np.all((cc + r[:, None] > -reach) & (cc - r[:, None] < L + reach), axis=1)
                    out_c.append(cc[near])
                    out_r.append(r[near])
        return np.concatenate(out_c), np.concatenate(out_r)

    def union_grid(self, reach: float) -> UnionGrid:
        """The walk grid for segments up to ``reach`` m (cached per reach).

        Parameters
        ----------
        reach : float
            The walker's step length in m.

        Returns
        -------
        UnionGrid
        """
        return cached_per_reach(self, "_union_grids", reach, lambda r: _build_union_grid(self, r))

    def covering(self, points: np.ndarray) -> np.ndarray:
        """How many spheres (periodic images included) hold each point.

        Parameters
        ----------
        points : numpy.ndarray
            (N, 3) positions in the box, m.

        Returns
        -------
        numpy.ndarray
            (N,) int counts (0: outside the union).
        """
        from scipy.spatial import cKDTree
        c, r = self.images(0.0)
        tree = cKDTree(np.asarray(points, dtype=float))
        count = np.zeros(len(points), dtype=np.int64)
        for held in tree.query_ball_point(c, r * (1 - 1e-12)):  # points strictly inside each sphere image
            count[held] += 1
        return count

    def sample_positions(self, start: str, n: int, rng: np.random.Generator) -> WalkerStart:
        """Draw ``n`` positions uniformly in the union, outside it, or in the whole box.

        Parameters
        ----------
        start : str
            "intra" (in the union: exact rejection by the covering count), "extra" (in the box, outside every
            sphere) or "uniform" (in the box, each walker labelled by where it lands).
        n : int
            Number of walkers.
        rng : numpy.random.Generator
            Source of randomness.

        Returns
        -------
        WalkerStart
            Positions in the box (m); ``home`` -1 inside the union, :data:`OUTSIDE` outside it (the kernel
            walks those between the spheres); labels 0 ("intra") or 1 ("extra").
        """
        check_start(start, ["intra", "extra", "uniform"])
        if start != "intra":
            pos = np.zeros((n, 3))
            out = np.zeros(n, dtype=bool)
            filled = 0
            while filled < n:
                m = max(1024, 2 * (n - filled))
                p = rng.uniform(size=(m, 3)) * self.box
                o = self.covering(p) == 0
                keep = o if start == "extra" else np.ones(m, dtype=bool)
                take = min(n - filled, int(keep.sum()))
                pos[filled:filled + take] = p[keep][:take]
                out[filled:filled + take] = o[keep][:take]
                filled += take
            return WalkerStart(pos, np.where(out, OUTSIDE, -1).astype(np.int64), out.astype(np.int64),
                               ["intra", "extra"])
        pos = np.zeros((n, 3))
        filled = 0
        while filled < n:
            m = max(1024, 2 * (n - filled))
            p = _draw_in_spheres(self.centers, self.radii, m, rng) % self.box
            keep = rng.uniform(size=m) * self.covering(p) < 1.0
            take = min(n - filled, int(keep.sum()))
            pos[filled:filled + take] = p[keep][:take]
            filled += take
        return WalkerStart(pos, np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.int64), ["intra", "extra"])

    def union_volume(self, n: int = 200_000, seed: int = 0) -> tuple[float, float]:
        """Volume of the union and its standard error (m^3): sum of sphere volumes x mean of 1 / cover.

        Parameters
        ----------
        n : int
            Monte Carlo draws.
        seed : int
            Seed of the draws.

        Returns
        -------
        volume, stderr : float
            In m^3.
        """
        rng = np.random.default_rng(seed)
        p = _draw_in_spheres(self.centers, self.radii, n, rng) % self.box
        w = 1.0 / np.maximum(self.covering(p), 1)
        total = float(np.sum(4 / 3 * np.pi * self.radii**3))
        return total * float(w.mean()), total * float(w.std() / math.sqrt(n))

    def ground_truth(self) -> dict:
        """The generator's truth plus the union's volume and box fraction (Monte Carlo, with its error).

        Returns
        -------
        dict
            ``substrate``, ``box`` (m), ``n_spheres``, ``n_fibres``, ``union_volume`` and its
            ``union_volume_stderr`` (m^3), ``union_volume_fraction``, and the generator's entries.
        """
        if "_volume" not in self.__dict__:
            self.__dict__["_volume"] = self.union_volume()
        vol, se = self.__dict__["_volume"]
        gt = super().ground_truth()
        gt.update(n_spheres=len(self.radii), n_fibres=int(self.fibre.max(initial=-1)) + 1, union_volume=vol,
                  union_volume_stderr=se, union_volume_fraction=vol / float(np.prod(self.box)))
        gt.update(self.truth)
        return gt


def _draw_in_spheres(c, r, m, rng):
    """m points, each uniform in a sphere drawn with probability proportional to its volume."""
    w = r**3
    k = rng.choice(len(r), size=m, p=w / w.sum())
    u = rng.normal(size=(m, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return c[k] + u * (r[k] * rng.uniform(size=m) ** (1 / 3))[:, None]


def _build_union_grid(sub: SphereUnion, reach: float) -> UnionGrid:
    c, r = sub.images(reach)
    L = sub.box
    h_target = max(2.0 * float(np.median(sub.radii)), 2.0 * reach)
    n = np.maximum(1, np.floor(L / h_target)).astype(np.int64)
    h = L / n
    lo = np.zeros(3)
    # a sphere meets cell (i, j, k) dilated by reach when its distance to the cell's box is below r + reach
    cells: list[list[int]] = [[] for _ in range(int(np.prod(n)))]
    deep = np.zeros(int(np.prod(n)), bool)
    for q in range(len(r)):
        i0 = np.maximum(np.floor((c[q] - r[q] - reach - lo) / h).astype(int), 0)
        i1 = np.minimum(np.floor((c[q] + r[q] + reach - lo) / h).astype(int), n - 1)
        for i in range(i0[0], i1[0] + 1):
            for j in range(i0[1], i1[1] + 1):
                for k in range(i0[2], i1[2] + 1):
                    blo = lo + h * np.array([i, j, k]) - reach
                    bhi = blo + h + 2 * reach
                    gap = np.maximum(np.maximum(blo - c[q], c[q] - bhi), 0.0)
                    if gap @ gap < r[q] ** 2:
                        cell = (i * n[1] + j) * n[2] + k
                        cells[cell].append(q)
                        far = np.maximum(np.abs(blo - c[q]), np.abs(bhi - c[q]))
                        if far @ far < r[q] ** 2:
                            deep[cell] = True
    start = np.zeros(len(cells) + 1, dtype=np.int64)
    start[1:] = np.cumsum([len(x) for x in cells])
    items = np.array([q for x in cells for q in x], dtype=np.int64) if start[-1] else np.zeros(1, dtype=np.int64)
    return UnionGrid(c, r, lo, h, n, start, items, deep, reach)


def sphere_union(centers, radii, box, fibre=None, description: dict | None = None,
                 truth: dict | None = None, permeability=0.0, relaxivity: float = 0.0) -> SphereUnion:
    """A union of overlapping spheres in a periodic box, walkers inside it and between its spheres.

    Parameters
    ----------
    centers : array_like
        (P, 3) sphere centres in m (wrapped into the box).
    radii : array_like
        (P,) radii in m.
    box : array_like
        (3,) periodic box in m.
    fibre : array_like, optional
        (P,) fibre each sphere belongs to (default: all one fibre).
    description, truth : dict, optional
        Provenance and generator ground truth (SI).
    permeability : float or dict
        Permeability of the union's surface in m/s (0: impermeable; ``{"outward": ..., "inward": ...}`` for
        different rates out of and into the union), one value for the whole surface.
    relaxivity : float
        Surface relaxivity of the union's surface in m/s (0: none), on both faces.

    Returns
    -------
    SphereUnion

    Examples
    --------
    >>> import numpy as np, substrates
    >>> z = np.arange(20) * 1e-6
    >>> sub = substrates.sphere_union(np.column_stack([np.full(20, 5e-6), np.full(20, 5e-6), z]),
    ...                               np.full(20, 2e-6), [10e-6, 10e-6, 20e-6])
    >>> sub.name, sub.region_names
    ('sphere_union', ['intra'])
    """
    r = check_length(radii, "radii").ravel()
    c = check_centers(centers, 3, len(r), "sphere")
    if not np.all(np.isfinite(c)):
        raise ValueError("centers contain NaN or infinite values; every sphere needs a finite centre in m")
    L = check_length(box, "box").ravel()
    if L.shape != (3,):
        raise ValueError("box must hold 3 periodic lengths in m")
    if np.any(2 * r >= L.min()):
        raise ValueError("every sphere diameter must be smaller than the box")
    f = np.zeros(len(r), dtype=np.int64) if fibre is None else np.asarray(fibre, dtype=np.int64).ravel()
    if f.shape != r.shape:
        raise ValueError(f"fibre must give one fibre index per sphere ({len(r)}), got shape {f.shape}")
    if isinstance(permeability, dict):
        if any(np.size(v) != 1 for v in permeability.values()):
            raise ValueError("permeability of a sphere union is one value (or one outward and one inward) in m/s "
                             "for its whole surface")
    elif np.size(permeability) != 1:
        raise ValueError(f"permeability of a sphere union is one value in m/s for its whole surface, got "
                         f"{permeability!r}")
    if np.size(relaxivity) != 1:
        raise ValueError(f"relaxivity of a sphere union is one value in m/s for its whole surface, got {relaxivity!r}")
    kappa = check_permeability(permeability, 1)
    if np.any(np.isinf(kappa)):
        raise ValueError("permeability=inf (no membrane) makes the union's surface vanish: use a finite value in m/s")
    return SphereUnion(kind=UNION, box=L, centers=np.mod(c, L), radii=r,
                       description=dict(description or {"factory": "sphere_union"}), fibre=f, truth=dict(truth or {}),
                       permeability=kappa if np.any(kappa > 0) else np.zeros((0, 2)),
                       relaxivity=check_relaxivity(relaxivity, 1) if float(np.ravel(relaxivity)[0]) > 0 else np.zeros(0))


def add_sphere_clusters(union: SphereUnion, n_clusters: int, soma_radius: float = 2e-6, n_processes: int = 4,
                        process_radius: float | None = None, process_length: float | None = None,
                        min_gap: float | None = None, seed: int = 0, max_tries: int = 20_000) -> SphereUnion:
    """Glial or soma-like cells between a union's fibres: clusters of spheres placed where they touch nothing.

    A cluster is a soma (one sphere) with ``n_processes`` straight processes, each a chain of smaller spheres
    half a process radius apart running outward from the soma's centre in a random direction. Clusters are
    placed by random sequential addition: a position uniform in the box is kept when no sphere of the cluster
    comes within ``min_gap`` of a sphere of the union or of a cluster placed before (periodic images
    included). Each cluster becomes one more fibre label of the union (one connected compartment inside it).

    Parameters
    ----------
    union : SphereUnion
        The fibres (e.g. :func:`sphere_chain_axons`, or :func:`crossing_bundles` with
        ``representation="union"``).
    n_clusters : int
        Number of clusters.
    soma_radius : float
        Soma radius in m.
    n_processes : int
        Processes per cluster (0: bare somas).
    process_radius : float, optional
        Radius of the process spheres in m (default 0.35 ``soma_radius``).
    process_length : float, optional
        Reach of a process beyond the soma's surface in m (default 1.5 ``soma_radius``).
    min_gap : float, optional
        Narrowest gap in m between a cluster and anything else (default 2 % of ``soma_radius``).
    seed : int
        Seed of positions and directions.
    max_tries : int
        Positions tried per cluster before giving up.

    Returns
    -------
    SphereUnion
        The union with the clusters; the ground truth gains ``glia`` (clusters, their fibre labels,
        centres, sizes and volume fraction of the box, Monte Carlo with its error).

    Examples
    --------
    >>> import substrates
    >>> fibres = substrates.sphere_chain_axons(n_axons=6, mean_radius=1e-6, icvf=0.3, seed=0)
    >>> sub = substrates.add_sphere_clusters(fibres, 2, soma_radius=1.5e-6, seed=0)
    >>> sub.truth["glia"]["n_clusters"]
    2
    """
    from scipy.spatial import cKDTree
    if not isinstance(union, SphereUnion):
        raise TypeError(f"union must be a substrates.SphereUnion, got {type(union).__name__}")
    n_clusters = check_count(n_clusters, "n_clusters")
    n_proc = check_count(n_processes, "n_processes", least=0)
    Rs = float(check_length(soma_radius, "soma_radius"))
    rp = 0.35 * Rs if process_radius is None else float(check_length(process_radius, "process_radius"))
    Lp = 1.5 * Rs if process_length is None else float(check_length(process_length, "process_length",
                                                                     allow_zero=True))
    gap = 0.02 * Rs if min_gap is None else float(check_length(min_gap, "min_gap", allow_zero=True))
    if rp > Rs:
        raise ValueError(f"process_radius {rp:g} m is larger than soma_radius {Rs:g} m: processes are thinner")
    box = union.box
    if 2 * (Rs + Lp + rp) >= box.min():
        raise ValueError(f"a cluster ({2 * (Rs + Lp + rp):.3g} m across) must be smaller than the box "
                         f"({box.min():.3g} m): lower soma_radius or process_length")
    # one cluster's spheres about its centre: the soma, then each process from inside the soma outward
    steps = np.arange(Rs - rp, Rs + Lp + 1e-12 * Rs, 0.5 * rp) if n_proc else np.zeros(0)
    rng = np.random.default_rng(seed)
    old = cKDTree(union.centers, boxsize=box)
    reach = float(union.radii.max()) + gap
    placed_c, placed_r, labels, centres = [], [], [], []
    first = int(union.fibre.max(initial=-1)) + 1
    for k in range(n_clusters):
        u = rng.normal(size=(n_proc, 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        rel = np.vstack([np.zeros((1, 3)), (u[:, None, :] * steps[None, :, None]).reshape(-1, 3)])
        rad = np.concatenate([[Rs], np.full(len(rel) - 1, rp)])
        for _ in range(max_tries):
            c = rng.uniform(size=3) * box
            pts = np.mod(c + rel, box)
            near = old.query_ball_point(pts, rad + reach)
            if any(len(idx) and np.any(_periodic_distance(pts[j], union.centers[idx], box)
                                       < rad[j] + union.radii[idx] + gap) for j, idx in enumerate(near)):
                continue
            if placed_c:
                pc, pr = np.vstack(placed_c), np.concatenate(placed_r)
                d = _periodic_distance(pts[:, None, :], pc[None, :, :], box)
                if np.any(d < rad[:, None] + pr[None, :] + gap):
                    continue
            placed_c.append(pts)
            placed_r.append(rad)
            labels.append(np.full(len(pts), first + k))
            centres.append(c)
            break
        else:
            raise ValueError(f"n_clusters: placed {k} of {n_clusters} clusters; no room for the next in "
                             f"{max_tries} tries between the fibres (ICVF {union.volume_fractions()['intra']:.2f}): "
                             "lower n_clusters, soma_radius or process_length, or start from sparser fibres")
    cc, cr = np.vstack(placed_c), np.concatenate(placed_r)
    glia_only = sphere_union(cc, cr, box)
    vol, se = glia_only.union_volume()
    V = float(np.prod(box))
    truth = dict(union.truth)
    truth["glia"] = {"n_clusters": int(n_clusters), "fibre_labels": list(range(first, first + n_clusters)),
                     "centres": np.asarray(centres).tolist(), "soma_radius": Rs, "n_processes": int(n_proc),
                     "process_radius": rp, "process_length": Lp, "spheres_per_cluster": int(len(cr) // n_clusters),
                     "volume_fraction": vol / V, "volume_fraction_stderr": se / V, "min_gap": gap}
    desc = dict(union.description)
    desc["glia"] = {"n_clusters": int(n_clusters), "soma_radius": Rs, "seed": int(seed)}
    kappa = union.permeability
    return sphere_union(np.vstack([union.centers, cc]), np.concatenate([union.radii, cr]), box,
                        fibre=np.concatenate([union.fibre, np.concatenate(labels)]), description=desc, truth=truth,
                        permeability={"outward": float(kappa[0, 0]), "inward": float(kappa[0, 1])} if kappa.size
                        else 0.0, relaxivity=float(union.relaxivity[0]) if union.relaxivity.size else 0.0)


def _periodic_distance(a, b, box):
    d = np.abs(np.asarray(a) - np.asarray(b))
    d = np.minimum(d, box - d)
    return np.sqrt(np.sum(d * d, axis=-1))


def sphere_chain_axons(n_axons: int = 20, mean_radius: float = 1e-6, gamma_shape: float = 4.0, icvf: float = 0.5,
                       spacing: float = 0.5, length: float | None = None, bead_amplitude: float = 0.0,
                       bead_wavelength: float = 8e-6, undulation: float = 0.0, undulation_wavelength: float = 20e-6,
                       radii=None, seed: int = 0) -> SphereUnion:
    """Axons along z as chains of overlapping spheres (MEDUSA/CATERPillar style), packed in a periodic box.

    Each axon is a chain of spheres spaced ``spacing`` radii apart along z, periodic along the box; its
    radius may swell into beads, r(z) = r (1 + a sin(2 pi z / bead_wavelength + phase)), and its centre
    line may undulate in a random plane. Fibres are packed without contact (their widest circles, as
    :func:`packed_axons` packs cylinders).

    Parameters
    ----------
    n_axons : int
        Number of axons.
    mean_radius : float
        Mean axon radius in m (Gamma-distributed).
    gamma_shape : float
        Shape of the Gamma distribution of radii.
    icvf : float
        Fraction of the box's cross-section the axons' widest circles cover (the union's own fraction is in
        the ground truth).
    spacing : float
        Distance between consecutive sphere centres in units of the axon's radius (-> 0: a smooth
        cylinder; at 0.5 the necks are 3 % narrower than the spheres).
    length : float, optional
        Period along z in m (default 10 mean radii, rounded to whole bead and undulation wavelengths when
        those are used).
    bead_amplitude : float
        Relative radius swing of the beads (0: none).
    bead_wavelength : float
        Distance between beads in m (> 0 where ``bead_amplitude`` > 0; unused, and may be 0, without beads).
    undulation : float
        Amplitude of the centre line's undulation in m (0: straight).
    undulation_wavelength : float
        Its wavelength in m (> 0 where ``undulation`` is not 0; unused, and may be 0, for straight axons).
    radii : array_like, optional
        Axon radii in m instead of drawn ones.
    seed : int
        Seed of radii, phases and packing.

    Returns
    -------
    SphereUnion
        Its ground truth carries the axon radii, spacing, bead and undulation parameters.

    Examples
    --------
    >>> import substrates
    >>> sub = substrates.sphere_chain_axons(n_axons=4, mean_radius=1e-6, icvf=0.3, seed=1)
    >>> sub.ground_truth()["n_fibres"]
    4
    """
    from .generators import gamma_radii
    n = check_count(n_axons, "n_axons")
    rng = np.random.default_rng(seed)
    r = gamma_radii(n, mean_radius, gamma_shape, seed) if radii is None else check_length(radii, "radii").ravel()
    n = len(r)
    icvf = check_fraction(icvf, "icvf")
    if not 0 < spacing <= 1.5:
        raise ValueError(f"spacing is in radii and must be in (0, 1.5] so that the spheres overlap, got {spacing!r}")
    a = float(bead_amplitude)
    if not 0 <= a < 0.9:
        raise ValueError(f"bead_amplitude must be in [0, 0.9), got {bead_amplitude!r}")
    u = float(check_length(abs(float(undulation)), "undulation", allow_zero=True))
    if length is not None:
        length = float(check_length(length, "length"))
    # a wavelength is needed only where its amplitude is non-zero: 0 then means "none" (the defaults are
    # positive, so they keep working with or without beads and undulation)
    wavelengths = {}
    for name, wl, used in (("bead_wavelength", bead_wavelength, a > 0),
                           ("undulation_wavelength", undulation_wavelength, u > 0)):
        if used and not wl:
            raise ValueError(f"{name} must be > 0 (m) where its amplitude is non-zero, got {wl!r}")
        wavelengths[name] = float(check_length(wl, name, allow_zero=not used))
    outer = r * (1 + a) + u
    x, L, info = pack_disks(outer, icvf, seed=seed, min_gap=0.02 * float(np.mean(r)), return_info=True)
    Lxy = np.broadcast_to(np.asarray(L, dtype=float), (2,))
    Lz = length if length is not None else 10 * float(np.mean(r))
    for wl, used in ((wavelengths["bead_wavelength"], a > 0), (wavelengths["undulation_wavelength"], u > 0)):
        if used:
            Lz = max(1, round(Lz / wl)) * wl
    centres, radii_s, fibre = [], [], []
    for k in range(n):
        m = max(3, int(math.ceil(Lz / (spacing * r[k]))))
        z = np.arange(m) * (Lz / m)
        rk = r[k] * (1 + a * np.sin(2 * np.pi * z / bead_wavelength + rng.uniform(0, 2 * np.pi))) if a else \
            np.full(m, r[k])
        phi, psi = rng.uniform(0, 2 * np.pi, 2)
        off = undulation * np.sin(2 * np.pi * z / undulation_wavelength + psi) if u > 0 else np.zeros(m)
        centres.append(np.column_stack([x[k, 0] + off * np.cos(phi), x[k, 1] + off * np.sin(phi), z]))
        radii_s.append(rk)
        fibre.append(np.full(m, k))
    truth = {"generator": "sphere_chain_axons", "seed": int(seed), "radii": r.tolist(),
             "mean_radius": float(r.mean()), "spacing_radii": float(spacing), "bead_amplitude": a,
             "bead_wavelength": float(bead_wavelength), "undulation": float(undulation),
             "undulation_wavelength": float(undulation_wavelength), "icvf_outer_target": float(icvf),
             "packing": info}
    return sphere_union(np.concatenate(centres), np.concatenate(radii_s), [Lxy[0], Lxy[1], Lz],
                        np.concatenate(fibre), description={"factory": "sphere_chain_axons", "n": n,
                                                            "seed": int(seed)}, truth=truth)


__all__ = ["UNION", "SphereUnion", "UnionGrid", "sphere_union", "sphere_chain_axons", "add_sphere_clusters"]


def _write_file(sub: SphereUnion, group) -> None:
    """Store the spheres (centres and radii in m), their fibre labels and the generator's truth."""
    group.create_dataset("centers", data=sub.centers, compression="gzip")
    group.create_dataset("radii", data=sub.radii, compression="gzip")
    group.create_dataset("fibre", data=sub.fibre, compression="gzip")
    group.attrs["truth"] = json_text(sub.truth)


def _read_file(group, shared: dict) -> SphereUnion:
    """Rebuild a union from a group written by :func:`_write_file` and the shared fields."""
    kappa, rho = np.asarray(shared["permeability"]), np.asarray(shared["relaxivity"])
    return sphere_union(group["centers"][()], group["radii"][()], shared["box"], fibre=group["fibre"][()],
                        description=shared["description"], truth=json.loads(group.attrs["truth"]),
                        permeability={"outward": float(kappa[0, 0]), "inward": float(kappa[0, 1])} if kappa.size
                        else 0.0, relaxivity=float(rho[0]) if rho.size else 0.0)


register_family(Family("union", {UNION: "sphere_union"}, SphereUnion, write=_write_file, read=_read_file))
