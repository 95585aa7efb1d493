"""Analytic substrates: free space, parallel planes, cylinders and spheres (the "analytic" family).

Geometry lives in a *local* frame in which cylinders run along z and planes
are normal to z; ``rotation`` maps local to lab coordinates. The walker
rotates the gradients into the local frame instead of rotating the geometry
(g . x is invariant), so an oblique cylinder costs nothing extra.

All lengths are in metres, diffusivities in m^2/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from sequences import check_count, check_fraction

from .base import (CYLINDERS, FREE, PLANES, SPHERES, Family, Substrate, WalkerStart, cached_per_reach,
                   check_centers, check_length, check_permeability, check_relaxivity, check_start,
                   permeability_truth, register_family, rotation_to, values_truth)
from .primitive_grids import CellList, WalkGrid, build_cells, walk_grid


@dataclass(frozen=True, eq=False)
class AnalyticSubstrate(Substrate):
    """Free space, parallel planes, cylinders or spheres: the analytic family.

    Build it with the constructors (:func:`free`, :func:`planes`, :func:`cylinders`, :func:`spheres`,
    the lattices and packings) rather than directly. The fields are also the attributes of the (frozen)
    instance.

    Parameters
    ----------
    kind : int
        FREE, PLANES, CYLINDERS or SPHERES.
    box : numpy.ndarray
        (3,) periodic box in the local frame (m); inf along unbounded axes.
    rotation : numpy.ndarray
        (3, 3) local-to-lab rotation (dimensionless).
    diffusion_tensor : numpy.ndarray or None
        (3, 3) free-diffusion tensor in the lab frame (m^2/s), FREE only.
    description : dict
        How the substrate was made (constructor and arguments), for provenance.
    permeability : numpy.ndarray
        (P, 2) membrane permeability kappa of each primitive in m/s, [outward,
        inward] (one row for planes); zeros for impermeable walls, inf for no
        membrane.
    relaxivity : numpy.ndarray
        (P,) surface relaxivity rho of each primitive's wall in m/s (one entry
        for planes); empty or zeros for none.
    centers : numpy.ndarray
        (P, 3) primitive centres in the local frame (m); z unused for cylinders.
    radii : numpy.ndarray
        (P,) radii (m).
    spacing : float
        Plane separation (m) for PLANES.
    """

    #: the family of substrates this class belongs to (its kernel, its file format): see substrates.FAMILIES
    family: ClassVar[str] = "analytic"

    centers: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    radii: np.ndarray = field(default_factory=lambda: np.zeros(0))
    spacing: float = math.inf

    @property
    def compartments(self) -> list[str]:
        """Compartment names walkers can start in."""
        if self.kind == FREE:
            return ["free"]
        if self.kind == PLANES:
            return ["intra"]
        has_extra = np.all(np.isfinite(self.box[:2] if self.kind == CYLINDERS else self.box))
        return ["intra", "extra"] if has_extra else ["intra"]

    @property
    def _dim(self) -> int:
        """Dimensions a primitive's cross-section spans: 2 for cylinders (x, y), 3 for spheres."""
        return 3 if self.kind == SPHERES else 2

    def _measures(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Wall area and volume of each primitive and the box volume: per unit length for cylinders (m, m^2,
        m^2), else m^2, m^3, m^3."""
        r, b = self.radii, self.box
        if self.kind == CYLINDERS:
            return 2 * np.pi * r, np.pi * r**2, b[0] * b[1]
        return 4 * np.pi * r**2, 4 / 3 * np.pi * r**3, np.prod(b)

    @property
    def cells(self) -> CellList:
        """Cell lists over the periodic images of the primitives (cached)."""
        c = self.__dict__.get("_cells")
        if c is None:
            c = build_cells(self.centers, self.radii, self.box, dim=self._dim)
            self.__dict__["_cells"] = c
        return c

    def walk_grid(self, reach: float) -> WalkGrid:
        """Cell lists for walkers outside the primitives, complete for segments up to ``reach`` m (cached).

        Parameters
        ----------
        reach : float
            The walker's step length in m.

        Returns
        -------
        WalkGrid
        """
        return cached_per_reach(self, "_walk_grids", reach, lambda r: walk_grid(self.cells, r))

    @property
    def smallest_feature(self) -> float:
        """Smallest length the walker must resolve (m): radius, plane spacing or extra-space pore width.

        The pore width of the extra space is 2 V_extra / S (in 2-D, twice the
        extra area over the perimeter): in a dense packing a few near-contacts
        are unavoidable and hold almost no volume, so the narrowest gap would
        demand absurdly small steps for nothing.
        """
        if self.kind == FREE:
            return math.inf
        if self.kind == PLANES:
            return self.spacing
        r = float(self.radii.min())
        if "extra" not in self.compartments:
            return r
        return min(r, self.pore_width)

    @property
    def pore_width(self) -> float:
        """Mean width of the extra space, 2 V_extra / S (m); inf without a box."""
        if self.kind not in (CYLINDERS, SPHERES) or "extra" not in self.compartments:
            return math.inf
        area, vol, total = self._measures()
        return float(2 * (total - np.sum(vol)) / np.sum(area))

    def volume_fractions(self) -> dict[str, float]:
        """Volume fraction of each compartment.

        Returns
        -------
        dict of str to float
            Compartment name ("free", "intra", "extra") -> volume fraction
            (dimensionless, summing to 1).
        """
        if "extra" not in self.compartments:
            return {self.compartments[0]: 1.0}
        _, vol, total = self._measures()
        f = float(np.sum(vol) / total)
        return {"intra": f, "extra": 1.0 - f}

    def ground_truth(self) -> dict:
        """The true parameters a model fitted to this substrate is judged against (SI).

        Returns
        -------
        dict
            ``substrate`` (kind name), ``volume_fractions``, ``box`` (m);
            ``diffusion_tensor`` (m^2/s) for anisotropic free space;
            ``spacing`` (m) and ``normal`` for planes; ``radii``,
            ``mean_radius`` and ``effective_radius`` (m), ``axis`` for
            cylinders; ``surface_to_volume`` per compartment (1/m); the
            :meth:`exchange_truth` entries of permeable substrates; and the
            generator's ``generator``, ``seed`` and ``packing`` records where
            a generator made the substrate.
        """
        gt = super().ground_truth()
        if self.kind == FREE:
            if self.diffusion_tensor is not None:
                gt["diffusion_tensor"] = self.diffusion_tensor.tolist()
            return gt
        if self.kind == PLANES:
            gt.update(spacing=self.spacing, normal=self.rotation[:, 2].tolist(),
                      surface_to_volume={"intra": 2.0 / self.spacing})
            gt.update(self.exchange_truth())
            gt.update(self.relaxation_truth())
            return gt
        r = self.radii
        gt["radii"] = r.tolist()
        gt["mean_radius"] = float(r.mean())
        if self.kind == CYLINDERS:
            gt["axis"] = self.rotation[:, 2].tolist()
        # volume-weighted effective radius that AxCaliber/ActiveAx-type models estimate: (<r^(d+4)> / <r^d>)^(1/4)
        d = self._dim
        gt["effective_radius"] = float((np.sum(r**(d + 4)) / np.sum(r**d)) ** 0.25)
        area, vol, total = self._measures()
        sv = {"intra": float(np.sum(area) / np.sum(vol))}
        if "extra" in self.compartments:
            sv["extra"] = float(np.sum(area) / (total - np.sum(vol)))
        gt["surface_to_volume"] = sv
        gt.update(self.exchange_truth())
        gt.update(self.relaxation_truth())
        # how a generator arranged the primitives (seed, algorithm, gap and pair statistics), where one did
        for key in ("generator", "seed", "packing"):
            if key in self.description:
                gt[key] = self.description[key]
        return gt

    def exchange_truth(self) -> dict:
        """Permeability and barrier-limited exchange times V_i / (kappa S) (no diffusivity needed).

        Returns
        -------
        dict
            Empty for an impermeable substrate; else ``permeability`` (m/s;
            one value, or a list with one per primitive) and
            ``exchange_time_barrier``: compartment name -> V_i / (kappa S) in s.
        """
        if not self.permeable:
            return {}
        k, k_in = self.permeability[:, 0], self.permeability[:, 1]
        out: dict = {"permeability": permeability_truth(self.permeability)}
        if self.kind == PLANES:
            out["exchange_time_barrier"] = {"intra": float(self.spacing / (2 * k[0]))}
            return out
        area, vol, total = self._measures()
        # kappa S summed over membranes (m^3/s per unit length for cylinders), leaving and entering
        flux_out, flux_in = float(np.sum(k * area)), float(np.sum(k_in * area))
        tb = {"intra": float(np.sum(vol) / flux_out) if flux_out > 0 else math.inf}
        if "extra" in self.compartments:
            v_extra = float(total - np.sum(vol))
            tb["extra"] = v_extra / flux_in if flux_in > 0 else math.inf
            # detailed balance: inside each primitive the density is kappa_in / kappa_out times that outside
            ratio = np.divide(k_in, k, out=np.ones_like(k), where=(k > 0) & np.isfinite(k) & np.isfinite(k_in))
            weight = float(np.sum(vol * ratio))
            out["equilibrium_fractions"] = {"intra": weight / (weight + v_extra), "extra": v_extra / (weight + v_extra)}
        out["exchange_time_barrier"] = tb
        return out

    def relaxation_truth(self) -> dict:
        """Surface relaxivity and the fast-diffusion (Brownstein-Tarr) surface relaxation rate per compartment.

        Returns
        -------
        dict
            Empty without surface relaxivity; else ``relaxivity`` (m/s; one
            value, or a list with one per primitive) and
            ``surface_relaxation_rate``: compartment name -> sum(rho S) / V in
            1/s, the rate of the b = 0 decay when diffusion across the
            compartment is fast (rho R / D << 1), where every compartment's
            S/V is probed.
        """
        if not self.relaxing:
            return {}
        rho = self.relaxivity
        out: dict = {"relaxivity": values_truth(rho)}
        if self.kind == PLANES:
            out["surface_relaxation_rate"] = {"intra": float(2.0 * rho[0] / self.spacing)}
            return out
        area, vol, total = self._measures()
        loss = float(np.sum(rho * area))
        rate = {"intra": loss / float(np.sum(vol))}
        if "extra" in self.compartments:
            rate["extra"] = loss / float(total - np.sum(vol))
        out["surface_relaxation_rate"] = rate
        return out

    @property
    def region_names(self) -> list[str]:
        """Compartments a walker can be in (a permeable lone primitive has the unbounded outside as "extra")."""
        if self.kind in (FREE, PLANES):
            return self.compartments
        return ["intra", "extra"] if ("extra" in self.compartments or self.permeable) else ["intra"]

    @property
    def default_start(self) -> str:
        """Where walkers start unless told otherwise: "uniform" in free space, else "intra"."""
        return "uniform" if self.kind == FREE else "intra"

    def sample_positions(self, start: str, n: int, rng: np.random.Generator) -> WalkerStart:
        """Draw ``n`` walker start positions, uniform in the compartment ``start``.

        Parameters
        ----------
        start : {"intra", "extra", "uniform"}
            Inside the primitives (volume-weighted over them), outside them, or
            uniformly in the box (each walker labelled by where it lands).
        n : int
            Number of walkers.
        rng : numpy.random.Generator
            Source of randomness (the same generator state gives the same positions).

        Returns
        -------
        WalkerStart
        """
        check_start(start, ["intra", "extra", "uniform"])
        home = np.full(n, -1, dtype=np.int64)
        pos = np.zeros((n, 3))
        if self.kind == FREE:
            if start != "uniform":
                raise ValueError(f"start={start!r}: free space has no '{start}' compartment; use start='uniform'")
            return WalkerStart(pos, home, np.zeros(n, dtype=np.int64), ["free"])
        if self.kind == PLANES:
            if start == "extra":
                raise ValueError("start='extra': parallel planes have only the space between them; use 'intra'")
            pos[:, 2] = rng.uniform(0.0, self.spacing, n)
            return WalkerStart(pos, home, np.zeros(n, dtype=np.int64), ["intra"])
        has_extra = "extra" in self.compartments
        if start == "extra" and not has_extra:
            raise ValueError(
                "start='extra' needs a periodic box around the primitives; a single cylinder or sphere has no "
                "bounded extra-cellular space. Use substrates.cylinders(..., box=...) or a lattice.")
        if start == "uniform" and not has_extra:
            start = "intra"
        if start == "intra":
            return self._sample_inside(n, rng, pos)
        return self._sample_box(start, n, rng, pos, home)

    def _sample_inside(self, n: int, rng: np.random.Generator, pos: np.ndarray) -> WalkerStart:
        """Uniform in the union of the primitives: pick one by volume, then a point in it (relative)."""
        cells = self.cells
        primary = np.full(len(self.radii), -1, dtype=np.int64)  # the unshifted image of each primitive
        for q in range(len(cells.radii)):
            j = cells.owner[q]
            if primary[j] < 0 and np.allclose(cells.centers[q], self.centers[j], rtol=0, atol=1e-15):
                primary[j] = q
        dim = self._dim
        w = self.radii**dim
        j = rng.choice(len(self.radii), size=n, p=w / w.sum())
        if dim == 2:
            r = self.radii[j] * np.sqrt(rng.uniform(size=n))
            th = 2 * np.pi * rng.uniform(size=n)
            pos[:, 0], pos[:, 1] = r * np.cos(th), r * np.sin(th)
        else:
            v = rng.normal(size=(n, 3))
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            pos[:] = v * (self.radii[j] * rng.uniform(size=n) ** (1 / 3))[:, None]
        return WalkerStart(pos, primary[j], np.zeros(n, dtype=np.int64), ["intra", "extra"])

    def _sample_box(self, start: str, n: int, rng: np.random.Generator, pos: np.ndarray,
                    home: np.ndarray) -> WalkerStart:
        """Uniform in the box (or its extra space) by rejection, located exactly."""
        cells = self.cells
        box = np.where(np.isfinite(self.box), self.box, 0.0)
        labels = np.zeros(n, dtype=np.int64)
        filled = 0
        tries = 0
        while filled < n:
            m = max(1024, 2 * (n - filled))
            cand = rng.uniform(size=(m, 3)) * box
            q = self.locate(cand)
            if start == "extra":
                keep = q < 0
                cand, q = cand[keep], q[keep]
            take = min(n - filled, len(cand))
            c, qq = cand[:take], q[:take]
            inside = qq >= 0
            pos[filled:filled + take] = c
            pos[filled:filled + take][inside] -= cells.centers[qq[inside]]
            home[filled:filled + take] = qq
            labels[filled:filled + take] = np.where(inside, 0, 1)
            filled += take
            tries += 1
            if tries > 1000:
                raise RuntimeError("could not seed walkers in the extra-cellular space: its volume fraction is ~0")
        return WalkerStart(pos, home, labels, ["intra", "extra"])

    def absolute_positions(self, positions: np.ndarray, home: np.ndarray) -> np.ndarray:
        """Local-frame positions in the box from :class:`WalkerStart`-style positions (relative inside images).

        Parameters
        ----------
        positions : numpy.ndarray
            (N, 3) positions in m, relative to the centre of image ``home`` where home >= 0.
        home : numpy.ndarray
            (N,) image index per walker, -1 for none.

        Returns
        -------
        numpy.ndarray
            (N, 3) local-frame positions in m (a new array).
        """
        out = np.array(positions, dtype=float, copy=True)
        if self.kind in (CYLINDERS, SPHERES):
            inside = home >= 0
            out[inside] += self.cells.centers[home[inside]]
        return out

    def region_fractions(self, home: np.ndarray) -> dict[str, float]:
        """Fraction of walkers in each compartment, from where they are (``home``); empty where it is fixed.

        Parameters
        ----------
        home : numpy.ndarray
            (N,) primitive image index of each walker, -1 outside every primitive.

        Returns
        -------
        dict of str to float
            ``{"intra": f, "extra": 1 - f}`` (dimensionless) for cylinders and
            spheres; empty for free space and planes.
        """
        if self.kind not in (CYLINDERS, SPHERES):
            return {}
        inside = float(np.mean(home >= 0))
        return {"intra": inside, "extra": 1.0 - inside}

    def locate(self, points: np.ndarray) -> np.ndarray:
        """Index of the primitive image containing each local-frame point, -1 outside all.

        Parameters
        ----------
        points : numpy.ndarray
            (N, 3) local-frame positions (m).

        Returns
        -------
        numpy.ndarray
            (N,) indices into ``cells.centers`` (images), or -1.
        """
        if self.kind not in (CYLINDERS, SPHERES):
            return np.full(len(points), -1)
        return self.cells.locate(points)

    def __repr__(self) -> str:
        vf = ", ".join(f"{k} {v:.3f}" for k, v in self.volume_fractions().items())
        extra = f", {len(self.radii)} primitives" if len(self.radii) else ""
        return f"AnalyticSubstrate({self.name}{extra}; volume fractions: {vf})"


# --------------------------------------------------------------- factories
def free(diffusion_tensor=None) -> AnalyticSubstrate:
    """Unrestricted space.

    Parameters
    ----------
    diffusion_tensor : array_like, optional
        (3, 3) symmetric positive-definite diffusion tensor in m^2/s (lab
        frame) for anisotropic Gaussian diffusion; default isotropic with the
        diffusivity given to the walker.

    Returns
    -------
    AnalyticSubstrate
    """
    D = None
    if diffusion_tensor is not None:
        D = np.asarray(diffusion_tensor, dtype=float)
        if D.shape != (3, 3) or not np.allclose(D, D.T, rtol=1e-10, atol=0):
            raise ValueError("diffusion_tensor must be a symmetric 3x3 matrix in m^2/s")
        w = np.linalg.eigvalsh(D)
        if w.min() <= 0:
            raise ValueError("diffusion_tensor must be positive definite")
        if w.max() > 1e-6 or w.max() < 1e-13:
            raise ValueError(f"diffusion_tensor eigenvalues {w} are not plausible in m^2/s (water is ~2e-9)")
    return AnalyticSubstrate(kind=FREE, box=np.full(3, np.inf), diffusion_tensor=D, description={"factory": "free"})


def planes(spacing: float, normal=(0.0, 0.0, 1.0), permeability: float = 0.0,
           relaxivity: float = 0.0) -> AnalyticSubstrate:
    """An infinite stack of parallel planes, equally spaced.

    Parameters
    ----------
    spacing : float
        Distance between neighbouring planes in m.
    normal : array_like
        (3,) plane normal (lab frame).
    permeability : float
        Membrane permeability kappa of every plane in m/s (0: impermeable,
        walkers stay in their slab; a walker that crosses enters the next slab).
    relaxivity : float
        Surface relaxivity rho of the planes in m/s (0: none; see :func:`walker.survival_probability`).

    Returns
    -------
    AnalyticSubstrate
    """
    L = float(check_length(spacing, "spacing"))
    R = rotation_to(normal)
    kappa = _plane_permeability(permeability)
    rho = check_relaxivity(relaxivity, 1)
    return AnalyticSubstrate(kind=PLANES, box=np.array([np.inf, np.inf, L]), spacing=L, rotation=R,
                             description={"factory": "planes", "spacing": L, "normal": list(map(float, R[:, 2])),
                                          "permeability": float(kappa[0, 0]), **_relaxivity_record(rho)},
                             permeability=kappa, relaxivity=rho)


def _relaxivity_record(rho: np.ndarray) -> dict:
    """The description entry of a relaxivity (none where no wall relaxes, so older descriptions stay as they were)."""
    return {"relaxivity": values_truth(rho)} if np.any(rho > 0) else {}


def _plane_permeability(permeability) -> np.ndarray:
    if isinstance(permeability, dict):
        raise ValueError("planes have no inside and outside: give one permeability (m/s), not outward/inward")
    return check_permeability(permeability, 1)


def cylinder(radius: float, axis=(0.0, 0.0, 1.0), permeability: float = 0.0,
             relaxivity: float = 0.0) -> AnalyticSubstrate:
    """One cylinder of infinite length (walkers start inside it).

    Parameters
    ----------
    radius : float
        Radius in m.
    axis : array_like
        (3,) cylinder axis (lab frame).
    permeability : float, array_like or dict
        Membrane permeability kappa in m/s, one value or one per primitive, or
        ``{"outward": ..., "inward": ...}`` where it depends on the direction
        (0: impermeable; typical cell membranes 1e-6 to 1e-4 m/s; np.inf: no
        membrane). Walkers cross with the transit probability that gives this
        kappa at the walker's step length (see :func:`walker.transit_probability`).
    relaxivity : float or array_like
        Surface relaxivity rho in m/s, one value or one per primitive (0: none; tissue 1e-8 to 1e-5 m/s;
        see :func:`walker.survival_probability`).

    Returns
    -------
    AnalyticSubstrate
    """
    r = float(check_length(radius, "radius"))
    R = rotation_to(axis)
    kappa = check_permeability(permeability, 1)
    rho = check_relaxivity(relaxivity, 1)
    return AnalyticSubstrate(kind=CYLINDERS, box=np.full(3, np.inf), centers=np.zeros((1, 3)), radii=np.array([r]),
                             rotation=R,
                             description={"factory": "cylinder", "radius": r, "axis": list(map(float, R[:, 2])),
                                          "permeability": permeability_truth(kappa), **_relaxivity_record(rho)},
                             permeability=kappa, relaxivity=rho)


def cylinders(radii, centers, box, axis=(0.0, 0.0, 1.0), permeability: float = 0.0,
              relaxivity: float = 0.0) -> AnalyticSubstrate:
    """Parallel cylinders in a periodic box.

    Parameters
    ----------
    radii : array_like
        (P,) radii in m.
    centers : array_like
        (P, 2) centres in the plane perpendicular to the axis (local x, y), m.
    box : array_like
        (2,) periodic box (local x, y) in m.
    axis : array_like
        (3,) common axis (lab frame).
    permeability : float, array_like or dict
        Membrane permeability kappa in m/s, one value or one per primitive, or
        ``{"outward": ..., "inward": ...}`` where it depends on the direction
        (0: impermeable; typical cell membranes 1e-6 to 1e-4 m/s; np.inf: no
        membrane). Walkers cross with the transit probability that gives this
        kappa at the walker's step length (see :func:`walker.transit_probability`).
    relaxivity : float or array_like
        Surface relaxivity rho in m/s, one value or one per primitive (0: none; tissue 1e-8 to 1e-5 m/s;
        see :func:`walker.survival_probability`).

    Returns
    -------
    AnalyticSubstrate
    """
    r, c, b = _primitives(radii, centers, box, 2, "cylinder")
    c3 = np.column_stack([np.mod(c, b), np.zeros(len(c))])
    sub = AnalyticSubstrate(kind=CYLINDERS, box=np.array([b[0], b[1], np.inf]), centers=c3, radii=r,
                            rotation=rotation_to(axis),
                            description={"factory": "cylinders", "n": len(r)},
                            permeability=check_permeability(permeability, len(r)),
                            relaxivity=check_relaxivity(relaxivity, len(r)))
    _check_no_overlap(sub)
    return sub


def cylinder_lattice(radius: float, icvf: float, lattice: str = "hexagonal", axis=(0.0, 0.0, 1.0),
                     repeats: int = 1, permeability: float = 0.0, relaxivity: float = 0.0) -> AnalyticSubstrate:
    """Identical cylinders on a square or hexagonal lattice at a given intra-cellular volume fraction.

    Parameters
    ----------
    radius : float
        Radius in m.
    icvf : float
        Intra-cylinder volume fraction (hexagonal <= 0.9069, square <= 0.7854).
    lattice : {"hexagonal", "square"}
        Lattice type.
    axis : array_like
        (3,) cylinder axis (lab frame).
    repeats : int
        Unit cells per box side (more cylinders, same physics).
    permeability : float
        Membrane permeability kappa in m/s (0: impermeable).
    relaxivity : float or array_like
        Surface relaxivity rho in m/s, one value or one per primitive (0: none; tissue 1e-8 to 1e-5 m/s;
        see :func:`walker.survival_probability`).

    Returns
    -------
    AnalyticSubstrate
    """
    r = float(check_length(radius, "radius"))
    f = check_fraction(icvf, "icvf")
    if lattice == "square":
        fmax = math.pi / 4
        if not 0 < f < fmax:
            raise ValueError(f"a square lattice holds icvf in (0, {fmax:.4f}); got {f}")
        a = r * math.sqrt(math.pi / f)
        cell, pts = np.array([a, a]), np.array([[a / 2, a / 2]])
    elif lattice == "hexagonal":
        fmax = math.pi / (2 * math.sqrt(3))
        if not 0 < f < fmax:
            raise ValueError(f"a hexagonal lattice holds icvf in (0, {fmax:.4f}); got {f}")
        a = r * math.sqrt(2 * math.pi / (math.sqrt(3) * f))
        cell = np.array([a, a * math.sqrt(3)])
        pts = np.array([[a / 4, a * math.sqrt(3) / 4], [3 * a / 4, 3 * a * math.sqrt(3) / 4]])
    else:
        raise ValueError(f"lattice must be 'hexagonal' or 'square', got {lattice!r}")
    n = check_count(repeats, "repeats")
    centers = np.array([p + cell * [i, j] for i in range(n) for j in range(n) for p in pts])
    sub = cylinders(np.full(len(centers), r), centers, cell * n, axis=axis, permeability=permeability,
                    relaxivity=relaxivity)
    return AnalyticSubstrate(kind=sub.kind, box=sub.box, centers=sub.centers, radii=sub.radii, rotation=sub.rotation,
                             description={"factory": "cylinder_lattice", "radius": r, "icvf": f, "lattice": lattice,
                                          "repeats": n, "lattice_constant": float(a),
                                          "permeability": permeability_truth(sub.permeability),
                                          **_relaxivity_record(sub.relaxivity)},
                             permeability=sub.permeability, relaxivity=sub.relaxivity)


def sphere(radius: float, permeability: float = 0.0, relaxivity: float = 0.0) -> AnalyticSubstrate:
    """One sphere (walkers start inside it).

    Parameters
    ----------
    radius : float
        Radius in m.
    permeability : float, array_like or dict
        Membrane permeability kappa in m/s, one value or one per primitive, or
        ``{"outward": ..., "inward": ...}`` where it depends on the direction
        (0: impermeable; typical cell membranes 1e-6 to 1e-4 m/s; np.inf: no
        membrane). Walkers cross with the transit probability that gives this
        kappa at the walker's step length (see :func:`walker.transit_probability`).
    relaxivity : float or array_like
        Surface relaxivity rho in m/s, one value or one per primitive (0: none; tissue 1e-8 to 1e-5 m/s;
        see :func:`walker.survival_probability`).

    Returns
    -------
    AnalyticSubstrate
    """
    r = float(check_length(radius, "radius"))
    kappa = check_permeability(permeability, 1)
    rho = check_relaxivity(relaxivity, 1)
    return AnalyticSubstrate(kind=SPHERES, box=np.full(3, np.inf), centers=np.zeros((1, 3)), radii=np.array([r]),
                             description={"factory": "sphere", "radius": r, "permeability": permeability_truth(kappa),
                                          **_relaxivity_record(rho)},
                             permeability=kappa, relaxivity=rho)


def spheres(radii, centers, box, permeability: float = 0.0, relaxivity: float = 0.0) -> AnalyticSubstrate:
    """Spheres in a periodic box.

    Parameters
    ----------
    radii : array_like
        (P,) radii in m.
    centers : array_like
        (P, 3) centres in m.
    box : array_like
        (3,) periodic box in m.
    permeability : float, array_like or dict
        Membrane permeability kappa in m/s, one value or one per primitive, or
        ``{"outward": ..., "inward": ...}`` where it depends on the direction
        (0: impermeable; typical cell membranes 1e-6 to 1e-4 m/s; np.inf: no
        membrane). Walkers cross with the transit probability that gives this
        kappa at the walker's step length (see :func:`walker.transit_probability`).
    relaxivity : float or array_like
        Surface relaxivity rho in m/s, one value or one per primitive (0: none; tissue 1e-8 to 1e-5 m/s;
        see :func:`walker.survival_probability`).

    Returns
    -------
    AnalyticSubstrate
    """
    r, c, b = _primitives(radii, centers, box, 3, "sphere")
    sub = AnalyticSubstrate(kind=SPHERES, box=b, centers=np.mod(c, b), radii=r,
                            description={"factory": "spheres", "n": len(r)},
                            permeability=check_permeability(permeability, len(r)),
                            relaxivity=check_relaxivity(relaxivity, len(r)))
    _check_no_overlap(sub)
    return sub


def sphere_lattice(radius: float, volume_fraction: float, lattice: str = "cubic", repeats: int = 1,
                   permeability: float = 0.0, relaxivity: float = 0.0) -> AnalyticSubstrate:
    """Identical spheres on a simple-cubic or face-centred-cubic lattice.

    Parameters
    ----------
    radius : float
        Radius in m.
    volume_fraction : float
        Intra-sphere volume fraction (cubic <= 0.5236, fcc <= 0.7405).
    lattice : {"cubic", "fcc"}
        Lattice type.
    repeats : int
        Unit cells per box side.
    permeability : float
        Membrane permeability kappa in m/s (0: impermeable).
    relaxivity : float or array_like
        Surface relaxivity rho in m/s, one value or one per primitive (0: none; tissue 1e-8 to 1e-5 m/s;
        see :func:`walker.survival_probability`).

    Returns
    -------
    AnalyticSubstrate
    """
    r = float(check_length(radius, "radius"))
    f = check_fraction(volume_fraction, "volume_fraction")
    if lattice == "cubic":
        basis, fmax = np.array([[0.5, 0.5, 0.5]]), math.pi / 6
    elif lattice == "fcc":
        basis = np.array([[0.25, 0.25, 0.25], [0.75, 0.75, 0.25], [0.75, 0.25, 0.75], [0.25, 0.75, 0.75]])
        fmax = math.pi / (3 * math.sqrt(2))
    else:
        raise ValueError(f"lattice must be 'cubic' or 'fcc', got {lattice!r}")
    if not 0 < f < fmax:
        raise ValueError(f"a {lattice} lattice holds volume fractions in (0, {fmax:.4f}); got {f}")
    a = (len(basis) * 4 / 3 * math.pi * r**3 / f) ** (1 / 3)
    n = check_count(repeats, "repeats")
    centers = np.array([(b + [i, j, k]) * a for i in range(n) for j in range(n) for k in range(n) for b in basis])
    sub = spheres(np.full(len(centers), r), centers, np.full(3, a * n), permeability=permeability,
                  relaxivity=relaxivity)
    return AnalyticSubstrate(kind=sub.kind, box=sub.box, centers=sub.centers, radii=sub.radii,
                             description={"factory": "sphere_lattice", "radius": r, "volume_fraction": f,
                                          "lattice": lattice, "repeats": n, "lattice_constant": float(a),
                                          "permeability": permeability_truth(sub.permeability),
                                          **_relaxivity_record(sub.relaxivity)},
                             permeability=sub.permeability, relaxivity=sub.relaxivity)


def _primitives(radii, centers, box, dim: int, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked radii (P,), centres (P, dim) and periodic box (dim,) of a primitive list."""
    r = check_length(radii, "radii").ravel()
    c = check_centers(centers, dim, len(r), what)
    if not np.all(np.isfinite(c)):
        raise ValueError(f"centers contain NaN or infinite values (row {int(np.nonzero(~np.isfinite(c))[0][0])}); "
                         f"every {what} needs a finite centre in m")
    if c.size and np.abs(c).max() > 1e-2:
        raise ValueError(f"centers reach {np.abs(c).max():g} m, larger than a centimetre; lengths are in metres "
                         "(5 um is 5e-6). Did you pass micrometres?")
    b = check_length(box, "box").ravel()
    if b.shape != (dim,):
        raise ValueError(f"box must hold {dim} periodic lengths" + (" (x, y) perpendicular to the axis" if dim == 2 else ""))
    if np.any(2 * r >= b.min()):
        raise ValueError(f"every {what} diameter must be smaller than the box")
    return r, c, b


def _check_no_overlap(sub: AnalyticSubstrate) -> None:
    gap = sub.cells.min_gap
    if gap < 0:
        raise ValueError("primitives overlap (including periodic images); impermeable walls must not intersect")


# --------------------------------------------------------------- files and the family record
def _write_file(sub: AnalyticSubstrate, group) -> None:
    """Store the analytic fields (primitives and plane spacing) in an open h5py group (lengths in m)."""
    for name in ("centers", "radii"):
        group.create_dataset(name, data=np.asarray(getattr(sub, name), dtype=float))
    group.attrs["spacing"] = float(sub.spacing)


def _read_file(group, shared: dict) -> AnalyticSubstrate:
    """Rebuild an analytic substrate from a group written by :func:`_write_file` and the shared fields."""
    return AnalyticSubstrate(**shared, centers=group["centers"][()], radii=group["radii"][()],
                             spacing=float(group.attrs["spacing"]))


register_family(Family("analytic", {FREE: "free", PLANES: "planes", CYLINDERS: "cylinders", SPHERES: "spheres"},
                       AnalyticSubstrate, write=_write_file, read=_read_file))
