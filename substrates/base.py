"""What every substrate family shares: the base :class:`Substrate`, the argument checks, and the family registry.

A substrate belongs to a *family* (analytic primitives, triangle meshes, sphere unions, ...). Each family
lives in a module of its own, derives its class from :class:`Substrate`, and registers itself once with
:func:`register_family`: its name, the kind codes it owns, its class, and how it writes itself to and reads
itself from a substrate file (:mod:`substrates.files`). The walker picks its kernel by the class attribute
``family`` and never needs to ask "what type is this?".

Kind codes are stored in substrate files, so their values never change; all of them are defined here, so
that two families cannot claim one code.

All lengths are in metres, diffusivities in m^2/s, permeabilities and relaxivities in m/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np

#: kind codes, as stored in substrate files (never renumber): analytic free space, planes, cylinders, spheres
FREE, PLANES, CYLINDERS, SPHERES = 0, 1, 2, 3
#: kind code of a triangle-mesh substrate
MESH = 4
#: kind code of a sphere union (after FREE, PLANES, CYLINDERS, SPHERES and MESH)
UNION = 5


#: largest surface relaxivity accepted (m/s). Tissue is 1e-8 to 1e-5 m/s; values far above are a unit mistake
#: (um/ms for m/s) and make the walker take tens of thousands of sub-steps per step. The bound sits above
#: 4e-3 m/s, rho a / D = 10 at a = 5 um and D = 2e-9 m^2/s: the diffusion-limited regime the Robin-series
#: checks (tests/test_relaxivity.py, the surface-relaxivity gallery example) run on purpose.
MAX_RELAXIVITY = 5e-3

# ------------------------------------------------------------------------------------------------ checks
def check_length(value, name: str, allow_zero: bool = False) -> np.ndarray:
    """Lengths in metres as an array, refusing NaN, negatives and values that look like micrometres or mm.

    Parameters
    ----------
    value : float or array_like
        Length(s) in m.
    name : str
        Argument name for the messages.
    allow_zero : bool
        Accept zeros.

    Returns
    -------
    numpy.ndarray
    """
    v = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(v < 0) or (not allow_zero and np.any(v == 0)):
        raise ValueError(f"{name} must be positive (metres), got {value!r}")
    if v.size and v.max() > 1e-3:
        raise ValueError(
            f"{name} = {v.max():g} m is larger than a millimetre; lengths are in metres "
            f"(5 um is 5e-6). Did you pass micrometres?"
        )
    if v.size and 0 < v[v > 0].min(initial=np.inf) < 1e-9:
        raise ValueError(f"{name} = {v[v > 0].min():g} m is below a nanometre; lengths are in metres")
    return v


def check_centers(centers, dim: int, n: int, what: str) -> np.ndarray:
    """Centres of ``n`` primitives as a (n, dim) float array, refusing any other shape (no silent reshape).

    Parameters
    ----------
    centers : array_like
        (n, dim) centres in m; one centre may be given flat, as (dim,), when ``n`` is 1.
    dim : int
        Coordinates per centre (2: cylinders in their cross-section, 3: spheres).
    n : int
        Number of primitives (radii).
    what : str
        The primitive, for the message ("sphere", "cylinder").

    Returns
    -------
    numpy.ndarray
        (n, dim) centres in m.

    Raises
    ------
    ValueError
        If ``centers`` is not (n, dim) numbers.
    """
    try:
        c = np.asarray(centers, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"centers must be numbers in m, shape (P, {dim}) (one row per {what}), "
                         f"got {centers!r}") from None
    if c.shape == (dim,) and n == 1:
        c = c[None, :]
    if c.ndim != 2 or c.shape != (n, dim):
        raise ValueError(f"centers must have shape (P, {dim}) = ({n}, {dim}), one row of {dim} coordinates in m "
                         f"per {what} ({n} radii), got shape {c.shape}")
    return c


def check_permeability(kappa, n: int) -> np.ndarray:
    """Membrane permeability per primitive as an (n, 2) array [outward, inward] in m/s.

    Parameters
    ----------
    kappa : float, array_like or dict
        One permeability in m/s or one per primitive (np.inf: no membrane), the same in both directions;
        or ``{"outward": ..., "inward": ...}`` for a membrane that lets water out and in at different
        rates (each one value or one per primitive). At equilibrium the concentration inside is then
        kappa_in / kappa_out times that outside.
    n : int
        Number of primitives.

    Returns
    -------
    numpy.ndarray
        (n, 2) permeabilities in m/s: column 0 for crossings from inside to outside, column 1 for the
        reverse.

    Raises
    ------
    ValueError
        For negative, NaN or implausibly large values (a likely unit mistake), a wrong number of values,
        or a dict with other keys than "outward" and "inward".
    TypeError
        For a string (the API takes numbers in m/s; configuration files take strings with units).
    """
    if isinstance(kappa, dict):
        if set(kappa) != {"outward", "inward"}:
            raise ValueError(f"permeability as a dict needs exactly the keys 'outward' and 'inward' (m/s), "
                             f"got {sorted(kappa)}")
        return np.column_stack([check_permeability(kappa["outward"], n)[:, 0],
                                check_permeability(kappa["inward"], n)[:, 0]])
    k = as_rate(kappa, "permeability")
    if k.ndim == 0:
        k = np.full(n, float(k))
    if k.shape != (n,):
        raise ValueError(f"permeability must be one value in m/s or one per primitive ({n}), got shape {k.shape}")
    if np.any(np.isnan(k)) or np.any(k < 0):
        raise ValueError(f"permeability must be >= 0 in m/s (np.inf for no membrane at all), got {kappa!r}")
    finite = k[np.isfinite(k)]
    if finite.size and finite.max() > 1e-2:
        raise ValueError(
            f"permeability = {finite.max():g} m/s is implausibly large (cell membranes: 1e-7 to 1e-3 m/s; "
            f"0.02 um/ms = 2e-5 m/s). Did you pass um/ms or um/s? Use np.inf for a membrane that is not there.")
    return np.column_stack([k, k])


def permeability_truth(permeability: np.ndarray):
    """The ground-truth record of an (n, 2) [outward, inward] permeability array (m/s): one value where all
    are equal, a list per membrane, or {"outward", "inward"} where the directions differ."""
    if np.array_equal(permeability[:, 0], permeability[:, 1]):
        return values_truth(permeability[:, 0])
    return {"outward": values_truth(permeability[:, 0]), "inward": values_truth(permeability[:, 1])}


def check_relaxivity(rho, n: int) -> np.ndarray:
    """Surface relaxivity per primitive (or component) as an (n,) array in m/s.

    Parameters
    ----------
    rho : float or array_like
        One surface relaxivity in m/s or one per primitive (0: none). Brain
        tissue: about 1e-8 to 1e-5 m/s; water-saturated rock up to ~1e-4 m/s.
    n : int
        Number of primitives (components of a mesh).

    Returns
    -------
    numpy.ndarray
        (n,) relaxivities in m/s.

    Raises
    ------
    ValueError
        For negative, NaN or infinite values, a wrong number of values, or an
        implausibly large value (above :data:`MAX_RELAXIVITY`; a likely unit mistake: um/ms or um/s).
    TypeError
        For a string (the API takes numbers in m/s; configuration files take strings with units).
    """
    if isinstance(rho, dict):
        raise ValueError("relaxivity is one value in m/s or one per primitive; it acts on both faces of a wall, "
                         "so it has no outward/inward form")
    r = as_rate(rho, "relaxivity")
    if r.ndim == 0:
        r = np.full(n, float(r))
    if r.shape != (n,):
        raise ValueError(f"relaxivity must be one value in m/s or one per primitive ({n}), got shape {r.shape}")
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError(f"relaxivity must be a finite value >= 0 in m/s, got {rho!r}")
    if r.size and r.max() > MAX_RELAXIVITY:
        raise ValueError(
            f"relaxivity = {r.max():g} m/s is implausibly large: tissue surface relaxivity is 1e-8 to 1e-5 m/s "
            f"(10 um/s = 1e-5; 1 um/ms = 1e-3 m/s) and this code takes at most {MAX_RELAXIVITY:g} m/s. "
            f"Did you pass um/ms or um/s?")
    return r


def as_rate(value, name: str) -> np.ndarray:
    """A rate in m/s (one value or an array) as a float array, refusing text with a TypeError naming ``name``.

    Parameters
    ----------
    value : float or array_like
        Permeability or relaxivity in m/s.
    name : str
        Argument name for the message.

    Returns
    -------
    numpy.ndarray
        ``value`` as floats (m/s), unchecked otherwise.

    Raises
    ------
    TypeError
        For a string (or strings), or anything else that is not a number: the Python API takes numbers in
        m/s; only configuration files take strings with units.
    """
    hint = (f"{name} takes a number in m/s (1e-5, not '1e-5 m/s'); strings with units are for configuration "
            f"files")
    if isinstance(value, (str, bytes)) or any(isinstance(v, (str, bytes)) for v in np.ravel(
            np.asarray(value, dtype=object))):
        raise TypeError(f"{hint}, got {value!r}")
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{hint}, got {value!r}") from None


def values_truth(values: np.ndarray):
    """One float where every entry is equal, else the list (a ground-truth record of per-primitive values)."""
    return float(values[0]) if np.all(values == values[0]) else values.tolist()


def cached_per_reach(sub, attr: str, reach: float, build):
    """``build(reach)`` cached on the (frozen) substrate under ``attr``, for the last few step lengths (m)."""
    grids = sub.__dict__.setdefault(attr, {})
    key = float(reach)
    if key not in grids:
        if len(grids) >= 4:
            grids.clear()
        grids[key] = build(key)
    return grids[key]


def rotation_to(axis) -> np.ndarray:
    """Proper rotation whose third column is the unit vector along ``axis``.

    Parameters
    ----------
    axis : array_like
        (3,) direction (any length > 0).

    Returns
    -------
    numpy.ndarray
        (3, 3) matrix R with ``R @ [0, 0, 1] = axis / |axis|``.

    Raises
    ------
    ValueError
        If ``axis`` is not a finite, non-zero 3-vector.
    """
    a = np.asarray(axis, dtype=float)
    if a.shape != (3,) or not np.all(np.isfinite(a)) or np.linalg.norm(a) == 0:
        raise ValueError(f"axis must be a non-zero 3-vector, got {axis!r}")
    a = a / np.linalg.norm(a)
    if a[2] == 1.0:
        return np.eye(3)
    helper = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(helper, a)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(a, e1)
    return np.column_stack([e1, e2, a])


@dataclass(frozen=True, eq=False)
class WalkerStart:
    """Where walkers start, as a substrate samples them (:meth:`Substrate.sample_positions`).

    The fields are also the attributes of the (frozen) instance.

    Parameters
    ----------
    positions : numpy.ndarray
        (N, 3) local-frame positions in m. For a walker inside a primitive of
        an analytic substrate the position is relative to the centre of the
        primitive image ``home`` (so a walker's distance to its own wall needs
        no subtraction); otherwise it lies in the box.
    home : numpy.ndarray
        (N,) int64: the primitive image (analytic) or innermost component (mesh)
        holding each walker, -1 for none.
    labels : numpy.ndarray
        (N,) int64 index into ``names`` of the compartment each walker starts in.
    names : list of str
        Compartment names the labels refer to.
    """

    positions: np.ndarray
    home: np.ndarray
    labels: np.ndarray
    names: list


def check_start(start: str, allowed: list) -> None:
    """Refuse a start compartment the substrate does not have, naming the ones it has."""
    if start not in allowed:
        raise ValueError(f"start must be one of {sorted(set(allowed))}, got {start!r}")


# ------------------------------------------------------------------------------------------------ the base
@dataclass(frozen=True, eq=False)
class Substrate:
    """A substrate the walker can diffuse in: the fields and behaviour every family shares.

    Build substrates with the constructors (:func:`free`, :func:`cylinders`, :func:`from_mesh`,
    :func:`sphere_union`, ...) rather than directly; each family derives its own class
    (:class:`AnalyticSubstrate`, :class:`MeshSubstrate`, :class:`SphereUnion`) and names itself in the
    class attribute ``family`` (a key of :data:`FAMILIES`). The fields are also the attributes of the
    (frozen) instance.

    Parameters
    ----------
    kind : int
        Kind code (FREE, PLANES, CYLINDERS, SPHERES, MESH, UNION), as stored in substrate files.
    box : numpy.ndarray
        (3,) periodic box in the local frame (m); inf along unbounded axes.
    rotation : numpy.ndarray
        (3, 3) local-to-lab rotation (dimensionless); the walker rotates the gradients into the local
        frame with it.
    diffusion_tensor : numpy.ndarray or None
        (3, 3) free-diffusion tensor in the lab frame (m^2/s), or None for the walker's isotropic
        diffusivity.
    description : dict
        How the substrate was made (constructor and arguments), for provenance.
    permeability : numpy.ndarray
        (P, 2) membrane permeability kappa of each membrane (primitive, component) in m/s, [outward,
        inward]; zeros for impermeable walls, inf for no membrane; empty for none.
    relaxivity : numpy.ndarray
        (P,) surface relaxivity rho of each wall in m/s; empty or zeros for none.
    """

    #: the family of substrates a class belongs to (its kernel, its file format): a key of FAMILIES
    family: ClassVar[str]

    kind: int
    box: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    diffusion_tensor: np.ndarray | None = None
    description: dict = field(default_factory=dict)
    permeability: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    relaxivity: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def permeable(self) -> bool:
        """True when any membrane lets walkers through."""
        return bool(np.any(self.permeability > 0))

    @property
    def relaxing(self) -> bool:
        """True when any wall has a surface relaxivity (the b = 0 signal then decays)."""
        return bool(np.any(self.relaxivity > 0))

    @property
    def name(self) -> str:
        """Kind of substrate as text (the name its family registered for :attr:`kind`)."""
        return family_of_kind(self.kind).kinds[self.kind]

    @property
    def region_names(self) -> list[str]:
        """Compartments a walker can be in; every family names its own."""
        raise NotImplementedError(f"{type(self).__name__} does not name its regions")

    @property
    def compartments(self) -> list[str]:
        """Compartment names walkers can start in: the :attr:`region_names` unless a family says otherwise."""
        return self.region_names

    @property
    def default_start(self) -> str:
        """Where walkers start unless told otherwise: "intra"."""
        return "intra"

    @property
    def smallest_feature(self) -> float:
        """Smallest length the walker must resolve (m); every family measures its own."""
        raise NotImplementedError(f"{type(self).__name__} does not give its smallest feature")

    @property
    def pore_width(self) -> float:
        """Mean width of the extra space, 2 V_extra / S (m); inf where there is none."""
        return math.inf

    def volume_fractions(self) -> dict[str, float]:
        """Volume fraction of each compartment (the whole volume where there is one region).

        Returns
        -------
        dict of str to float
            Compartment name -> volume fraction (dimensionless, summing to 1).
        """
        names = self.compartments
        if len(names) == 1:
            return {names[0]: 1.0}
        raise NotImplementedError(f"{type(self).__name__} has several regions and does not give their volumes")

    def ground_truth(self) -> dict:
        """The true parameters a model fitted to this substrate is judged against (SI): the shared head.

        Every family extends this record with its own entries.

        Returns
        -------
        dict
            ``substrate`` (kind name), ``volume_fractions`` and ``box`` (m).
        """
        return {"substrate": self.name, "volume_fractions": self.volume_fractions(), "box": self.box.tolist()}

    def sample_positions(self, start: str, n: int, rng: np.random.Generator) -> WalkerStart:
        """Draw ``n`` walker start positions, uniform in the compartment ``start``; every family draws its own.

        Parameters
        ----------
        start : str
            A compartment name or "uniform".
        n : int
            Number of walkers.
        rng : numpy.random.Generator
            Source of randomness.

        Returns
        -------
        WalkerStart
        """
        raise NotImplementedError(f"{type(self).__name__} cannot place walkers")

    def locate(self, points: np.ndarray) -> np.ndarray:
        """Index of the element (primitive image, component) holding each local-frame point, -1 outside all.

        The base has no elements: -1 everywhere.

        Parameters
        ----------
        points : numpy.ndarray
            (N, 3) local-frame positions (m).

        Returns
        -------
        numpy.ndarray
            (N,) indices, or -1.
        """
        return np.full(len(points), -1)

    def absolute_positions(self, positions: np.ndarray, home: np.ndarray) -> np.ndarray:
        """Local-frame positions in the box from :class:`WalkerStart`-style positions: a copy in the base.

        Parameters
        ----------
        positions : numpy.ndarray
            (N, 3) positions in m.
        home : numpy.ndarray
            (N,) element holding each walker, -1 for none (families with relative positions use it).

        Returns
        -------
        numpy.ndarray
            (N, 3) local-frame positions in m (a new array).
        """
        return np.array(positions, dtype=float, copy=True)

    def region_fractions(self, home: np.ndarray) -> dict[str, float]:
        """Fraction of walkers in each compartment, from where they are (``home``); empty where it is fixed.

        Parameters
        ----------
        home : numpy.ndarray
            (N,) element holding each walker, -1 for none.

        Returns
        -------
        dict of str to float
            Compartment name -> fraction of walkers (dimensionless); empty in the base.
        """
        return {}

    def signal_groups(self, home: np.ndarray, positions: np.ndarray | None = None
                      ) -> tuple[np.ndarray, list[str]] | None:
        """Finer groups than compartments that signals are also reported for (a bundle's fibres), or None.

        Parameters
        ----------
        home : numpy.ndarray
            (N,) element holding each walker at the start, -1 for none.
        positions : numpy.ndarray, optional
            (N, 3) start positions in the box frame, m (for families whose ``home`` does not say which body).

        Returns
        -------
        (labels, names) or None
            (N,) int64 index into ``names`` per walker; None where the substrate has no groups (the base).
        """
        return None

    def __repr__(self) -> str:
        vf = ", ".join(f"{k} {v:.3f}" for k, v in self.volume_fractions().items())
        return f"{type(self).__name__}({self.name}; volume fractions: {vf})"


# ------------------------------------------------------------------------------------------------ the registry
@dataclass(frozen=True, eq=False)
class Family:
    """One family of substrates, as it registers itself (:func:`register_family`).

    The fields are also the attributes of the (frozen) instance.

    Parameters
    ----------
    name : str
        The family's name, the class attribute ``family`` of its substrates ("analytic", "mesh", "union").
    kinds : dict of int to str
        The kind codes the family owns -> their names (``Substrate.name``).
    cls : type
        The family's substrate class (derived from :class:`Substrate`).
    write : callable or None
        ``write(sub, group)`` stores the family's own fields in an open ``h5py`` group; :func:`save_substrate`
        has written the shared ones (the :class:`Substrate` fields). None where the family has no file format.
    read : callable or None
        ``read(group, shared)`` rebuilds a substrate from a group written by ``write`` (or by an older
        version), given ``shared``, the :class:`Substrate` fields as :func:`load_substrate` read them
        (a dict of keyword arguments: kind, box, rotation, diffusion_tensor, description, permeability,
        relaxivity).
    no_file : str
        Why ``write`` is None (the error :func:`save_substrate` raises).
    """

    name: str
    kinds: dict
    cls: type
    write: Callable | None = None
    read: Callable | None = None
    no_file: str = ""


#: the registered families: name -> Family (filled as each family's module is imported)
FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add a family to :data:`FAMILIES` (kind codes must be new; registering the same name again replaces it).

    Parameters
    ----------
    family : Family
        The record; its class must derive from :class:`Substrate` and carry ``family == family.name``.

    Returns
    -------
    Family
        The record, as registered.

    Raises
    ------
    ValueError
        If the class does not match the record, or a kind code belongs to another family.
    """
    if not (isinstance(family.cls, type) and issubclass(family.cls, Substrate)
            and getattr(family.cls, "family", None) == family.name):
        raise ValueError(f"family {family.name!r}: its class must derive from Substrate and set "
                         f"family = {family.name!r}")
    for kind in family.kinds:
        other = next((f.name for f in FAMILIES.values() if kind in f.kinds and f.name != family.name), None)
        if other is not None:
            raise ValueError(f"family {family.name!r}: kind code {kind} already belongs to family {other!r}")
    FAMILIES[family.name] = family
    return family


def family_of_kind(kind: int) -> Family:
    """The registered family that owns a kind code.

    Parameters
    ----------
    kind : int
        Kind code (``Substrate.kind``, or the one stored in a substrate file).

    Returns
    -------
    Family

    Raises
    ------
    ValueError
        If no registered family owns the code.
    """
    for family in FAMILIES.values():
        if kind in family.kinds:
            return family
    raise ValueError(f"no substrate family has kind code {kind}; known: "
                     f"{sorted(k for f in FAMILIES.values() for k in f.kinds)}")
