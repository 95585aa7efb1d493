"""Static off-resonance fields: the offset dB(x) (T, along B0) that tissue susceptibility adds to the main field.

A :class:`Field` lives in a substrate's local frame and is the sum of three parts, any of which may be absent:

- a uniform offset and a constant background gradient, ``offset + gradient . x`` (not periodic: it is
  evaluated at a walker's unwrapped position);
- analytic sources: spheres, infinite cylinders and hollow (myelinated) cylinders at any angle to B0, with
  their periodic images listed explicitly (:func:`susceptibility_field`);
- a map on a periodic grid, interpolated trilinearly (:func:`field_map`, or the Fourier dipole kernel of a
  susceptibility distribution, :func:`fourier_field`).

Conventions (SI; the volume susceptibility chi is dimensionless, 1 ppm = 1e-6): the offset is the
Lorentz-corrected one, i.e. the Fourier dipole kernel ``dB(k) = B0 chi(k) (1/3 - (k . b)^2 / k^2)`` with b
the unit vector of B0. For one object in an infinite medium of susceptibility chi_e and with
``dchi = chi - chi_e`` this gives (theta: the angle between an axis and B0, phi: the angle about the axis
from B0's projection):

- sphere of radius a: 0 inside; ``dchi B0 (a/r)^3 (3 cos^2 psi - 1) / 3`` outside (psi: angle of x - c to B0);
- infinite cylinder of radius a: ``dchi B0 (3 cos^2 theta - 1) / 6`` inside;
  ``dchi B0 sin^2 theta cos 2 phi (a/r)^2 / 2`` outside;
- hollow cylinder with isotropic chi_I and radially anisotropic chi_A between r_i and r_o (Wharton & Bowtell
  2012, PNAS 109:18559, eqs. 2-4): inside ``3 chi_A sin^2 theta ln(r_o/r_i) / 4``; in the sheath
  ``chi_I (cos^2 theta - 1/3 - sin^2 theta cos 2 phi r_i^2/r^2) / 2 + chi_A (sin^2 theta (-5/12 - cos 2 phi
  (1 + r_i^2/r^2) / 8 + 3 ln(r_o/r) / 4) - cos^2 theta / 6)``; outside ``(chi_I + chi_A / 4) sin^2 theta
  cos 2 phi (r_o^2 - r_i^2) / (2 r^2)``, each times B0.

Wharton & Bowtell's anisotropic susceptibility is the traceless radial tensor chi_A (r r - (phi phi + z z) / 2)
in the sheath's local axes; both parts are checked in the tests against the Fourier kernel on a fine grid (the
tensor form: ``dB(k) = B0 (b . X(k) b / 3 - (k . b)(k . X(k) b) / k^2)``, :func:`fourier_field`). The
evaluator :func:`field_value` is a numba function that both walker backends call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numba import njit

from .base import CYLINDERS, SPHERES

#: source types of :attr:`Field.sources`
SPHERE, CYLINDER, HOLLOW_CYLINDER = 0, 1, 2
#: columns of a source row: type, centre (3), unit axis (3), inner radius, outer radius, chi_I, chi_A
SOURCE_COLUMNS = 11
#: columns of :attr:`Field.params`: offset (T), gradient (3, T/m), B0 (T), unit B0 (3), box (3, m), map origin
#: (3, m), map spacing (3, m)
PARAM_COLUMNS = 17
#: largest plausible |chi| (dimensionless SI); larger values are taken for ppm
MAX_CHI = 1e-4
#: largest plausible background gradient (T/m) and main field (T)
MAX_BACKGROUND_GRADIENT = 1.0
MAX_B0 = 30.0


@njit(inline="always", fastmath=False, error_model="numpy")
def _wrap(x, L):
    if L > 0.0 and (x < 0.0 or x >= L):
        x -= math.floor(x / L) * L
        if x >= L:
            x = 0.0
    return x


@njit(inline="always", fastmath=False, error_model="numpy")
def _map_axis(x, origin, L, h, n):
    """(lower node, upper node, fraction) of x along one periodic map axis; no integer division (a modulo
    costs more than the rest of the lookup)."""
    if n == 1:
        return 0, 0, 0.0
    u = (x - origin) / h
    if L > 0.0:
        u = _wrap(x - origin, L) / h
    elif u < 0.0:  # not periodic (a Field built by hand): hold the edge value
        u = 0.0
    i0 = int(u)
    if i0 >= n - 1 and L <= 0.0:
        return n - 1, n - 1, 0.0
    if i0 >= n:  # a wrapped coordinate rounded onto the box's far edge
        i0 = n - 1
    i1 = i0 + 1
    if i1 == n:
        i1 = 0
    return i0, i1, u - i0


@njit(inline="always", fastmath=False, error_model="numpy")
def _map_value(x, y, z, values, par):
    """Trilinear interpolation of the periodic map (nodes at origin + i h, wrapping at the box)."""
    nx, ny, nz = values.shape
    i0, i1, fu = _map_axis(x, par[11], par[8], par[14], nx)
    j0, j1, fv = _map_axis(y, par[12], par[9], par[15], ny)
    k0, k1, fw = _map_axis(z, par[13], par[10], par[16], nz)
    gu = 1.0 - fu
    gv = 1.0 - fv
    gw = 1.0 - fw
    return (gu * (gv * (gw * values[i0, j0, k0] + fw * values[i0, j0, k1])
                  + fv * (gw * values[i0, j1, k0] + fw * values[i0, j1, k1]))
            + fu * (gv * (gw * values[i1, j0, k0] + fw * values[i1, j0, k1])
                    + fv * (gw * values[i1, j1, k0] + fw * values[i1, j1, k1])))


@njit(inline="always", fastmath=False, error_model="numpy")
def _source_value(x, y, z, s, bx, by, bz, b0):
    """dB (T) of one source row ``s`` at the point (already wrapped into the box)."""
    kind = int(s[0])
    dx = x - s[1]
    dy = y - s[2]
    dz = z - s[3]
    if kind == SPHERE:
        r2 = dx * dx + dy * dy + dz * dz
        a = s[8]
        if r2 <= a * a:
            return 0.0
        db = dx * bx + dy * by + dz * bz
        return s[9] * b0 * a * a * a / (3.0 * r2 * math.sqrt(r2)) * (3.0 * db * db / r2 - 1.0)
    ax = s[4]
    ay = s[5]
    az = s[6]
    along = dx * ax + dy * ay + dz * az
    px = dx - along * ax
    py = dy - along * ay
    pz = dz - along * az
    r2 = px * px + py * py + pz * pz
    cos_t = ax * bx + ay * by + az * bz
    sin2 = 1.0 - cos_t * cos_t
    pb = px * bx + py * by + pz * bz  # = r sin(theta) cos(phi)
    if kind == CYLINDER:
        a = s[8]
        if r2 <= a * a:
            return s[9] * b0 * (3.0 * cos_t * cos_t - 1.0) / 6.0
        return s[9] * b0 * a * a / (2.0 * r2) * (2.0 * pb * pb / r2 - sin2)
    ri = s[7]
    ro = s[8]
    chi_i = s[9]
    chi_a = s[10]
    if r2 <= ri * ri:
        return b0 * 0.75 * chi_a * sin2 * math.log(ro / ri)
    if r2 >= ro * ro:
        return b0 * (chi_i + 0.25 * chi_a) * (ro * ro - ri * ri) / (2.0 * r2) * (2.0 * pb * pb / r2 - sin2)
    c2p = 2.0 * pb * pb / r2 - sin2  # sin^2(theta) cos(2 phi)
    q = ri * ri / r2
    iso = 0.5 * chi_i * (cos_t * cos_t - 1.0 / 3.0 - c2p * q)
    r = math.sqrt(r2)
    aniso = chi_a * (sin2 * (-5.0 / 12.0 + 0.75 * math.log(ro / r)) - c2p * (1.0 + q) / 8.0 - cos_t * cos_t / 6.0)
    return b0 * (iso + aniso)


@njit(inline="always", fastmath=False, error_model="numpy")
def field_value(x, y, z, values, sources, par):
    """The field offset dB (T) at the local-frame point (x, y, z) (m; unwrapped: the box wraps it here).

    Parameters
    ----------
    x, y, z : float
        Position in m.
    values : numpy.ndarray
        (nx, ny, nz) periodic map in T (any shape with a zero dimension: none).
    sources : numpy.ndarray
        (S, SOURCE_COLUMNS) analytic sources.
    par : numpy.ndarray
        (PARAM_COLUMNS,) offset, gradient, B0, its direction, box, map origin and spacing.
    """
    total = par[0] + par[1] * x + par[2] * y + par[3] * z
    if values.size > 0:
        total += _map_value(x, y, z, values, par)
    if sources.shape[0] > 0:
        wx = _wrap(x, par[8])
        wy = _wrap(y, par[9])
        wz = _wrap(z, par[10])
        for q in range(sources.shape[0]):
            total += _source_value(wx, wy, wz, sources[q], par[5], par[6], par[7], par[4])
    return total


@njit(cache=True, fastmath=False, error_model="numpy")
def _field_values(points, values, sources, par, out):
    for i in range(points.shape[0]):
        out[i] = field_value(points[i, 0], points[i, 1], points[i, 2], values, sources, par)


def _nodes(shape, h) -> np.ndarray:
    """(prod(shape), 3) positions (m) of a grid's nodes i * h, in C order of ``shape``."""
    axes = [np.arange(n) * h[k] for k, n in enumerate(shape)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def _unit(v, name: str) -> np.ndarray:
    u = np.asarray(v, dtype=float).reshape(-1)
    if u.shape != (3,) or not np.all(np.isfinite(u)) or np.linalg.norm(u) == 0:
        raise ValueError(f"{name} must be a non-zero 3-vector, got {v!r}")
    return u / np.linalg.norm(u)


def check_b0(b0) -> float:
    """Main field in T, refused where it looks like mT or is not positive."""
    b = float(b0)
    if not (np.isfinite(b) and b > 0):
        raise ValueError(f"b0 must be the main field in tesla (e.g. 3.0), got {b0!r}")
    if b > MAX_B0:
        raise ValueError(f"b0 = {b:g} T is beyond any MR scanner; it is in tesla (3 T: b0=3.0), not mT")
    return b


def check_chi(chi, name: str = "chi") -> np.ndarray:
    """Volume susceptibilities (dimensionless SI), refused where they look like ppm."""
    c = np.asarray(chi, dtype=float)
    if not np.all(np.isfinite(c)):
        raise ValueError(f"{name} must be finite numbers")
    if np.any(np.abs(c) > MAX_CHI):
        raise ValueError(f"{name} = {np.max(np.abs(c)):g} is far beyond tissue susceptibilities; it is the "
                         "dimensionless SI volume susceptibility (myelin: about -1e-7, i.e. -0.1 ppm): "
                         "multiply values in ppm by 1e-6")
    return c


@dataclass(frozen=True, eq=False)
class Field:
    """A static field offset dB(x) along B0 (T), in a substrate's local frame.

    Build it with :func:`background_gradient`, :func:`susceptibility_field`, :func:`field_map` or
    :func:`fourier_field`; add fields with ``+``. Pass it as ``walker.simulate(..., field=...)``.

    Parameters
    ----------
    b0 : float
        Main field, T.
    b0_direction : numpy.ndarray
        (3,) unit vector of B0 in the substrate's local frame.
    offset : float
        Uniform offset, T.
    gradient : numpy.ndarray
        (3,) constant background gradient of the offset, T/m (local frame).
    box : numpy.ndarray
        (3,) period of the sources and the map, m (0 along an axis: not periodic).
    values : numpy.ndarray
        (nx, ny, nz) periodic map, T; shape (0, 0, 0) for none.
    origin, spacing : numpy.ndarray
        (3,) the map's first node and node spacing, m.
    sources : numpy.ndarray
        (S, 11) analytic sources (see :data:`SOURCE_COLUMNS`); their images are listed rows.
    description : dict
        What made it (for provenance).
    """

    b0: float = 3.0
    b0_direction: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))
    offset: float = 0.0
    gradient: np.ndarray = field(default_factory=lambda: np.zeros(3))
    box: np.ndarray = field(default_factory=lambda: np.zeros(3))
    values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    spacing: np.ndarray = field(default_factory=lambda: np.ones(3))
    sources: np.ndarray = field(default_factory=lambda: np.zeros((0, SOURCE_COLUMNS)))
    description: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "b0", check_b0(self.b0))
        object.__setattr__(self, "b0_direction", _unit(self.b0_direction, "b0_direction"))
        g = np.asarray(self.gradient, dtype=float).reshape(3)
        object.__setattr__(self, "gradient", g)
        for name in ("box", "origin", "spacing"):
            v = np.asarray(getattr(self, name), dtype=float).reshape(3)
            if not np.all(np.isfinite(v)):
                raise ValueError(f"Field {name} must be finite (m), got {v}")
            object.__setattr__(self, name, v)
        values = np.ascontiguousarray(self.values, dtype=float)
        if values.ndim != 3:
            raise ValueError(f"a field map must be 3-D (nx, ny, nz) in T, got shape {values.shape}")
        if values.size and not np.all(np.isfinite(values)):
            raise ValueError("the field map holds NaN or infinite values")
        if values.size and np.any(self.spacing <= 0):
            raise ValueError(f"the field map's spacing must be positive (m), got {self.spacing}")
        object.__setattr__(self, "values", values)
        src = np.ascontiguousarray(np.asarray(self.sources, dtype=float).reshape(-1, SOURCE_COLUMNS))
        object.__setattr__(self, "sources", src)

    @property
    def params(self) -> np.ndarray:
        """(PARAM_COLUMNS,) the scalars the kernels read (see :data:`PARAM_COLUMNS`)."""
        return np.concatenate([[self.offset], self.gradient, [self.b0], self.b0_direction, self.box,
                               self.origin, self.spacing])

    @property
    def is_zero(self) -> bool:
        """True when the field adds nothing anywhere."""
        return (self.offset == 0.0 and not np.any(self.gradient) and not np.any(self.values)
                and not np.any(self.sources[:, 9:]))

    def evaluate(self, points) -> np.ndarray:
        """dB (T) at local-frame points (m), exactly as the walker evaluates it.

        Parameters
        ----------
        points : array_like
            (N, 3) positions in m.

        Returns
        -------
        numpy.ndarray
            (N,) offsets in T.

        Examples
        --------
        >>> import substrates
        >>> f = substrates.background_gradient([0.0, 0.0, 1e-3])
        >>> float(f.evaluate([[0.0, 0.0, 2e-6]])[0])
        2e-09
        """
        p = np.ascontiguousarray(np.asarray(points, dtype=float).reshape(-1, 3))
        out = np.empty(len(p))
        _field_values(p, self.values, self.sources, self.params, out)
        return out

    def sampled(self, shape) -> "Field":
        """The same field as a periodic map on ``shape`` nodes of its box (the walk then costs one trilinear
        lookup per step instead of a sum over every source and image).

        Exact at the nodes; between them the interpolation smooths the jump at a wall over one cell, an error
        that shrinks with the cell (measure it with :meth:`evaluate` on both). The uniform offset and the
        background gradient stay analytic.

        Parameters
        ----------
        shape : tuple of int
            (nx, ny, nz) nodes; an axis along which nothing varies (cylinders' z) may have 1.

        Returns
        -------
        Field

        Examples
        --------
        >>> import substrates
        >>> sub = substrates.cylinder_lattice(2e-6, 0.6)
        >>> f = substrates.susceptibility_field(sub, chi=-1e-7, b0_direction=(1, 0, 0)).sampled((64, 64, 1))
        >>> f.values.shape
        (64, 64, 1)
        """
        shape = tuple(int(n) for n in shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape must be three positive node counts (nx, ny, nz), got {shape}")
        if self.values.size:
            raise ValueError("this field is already a map; resample it with field_map(...) on the new grid")
        box = self.box.copy()
        for k in range(3):
            if box[k] <= 0 and shape[k] > 1:
                raise ValueError(f"the field is not periodic along axis {k}: sample it with 1 node there")
        h = np.where(box > 0, box / np.array(shape), 1.0)
        bare = Field(self.b0, self.b0_direction, 0.0, np.zeros(3), self.box, sources=self.sources)
        values = bare.evaluate(_nodes(shape, h)).reshape(shape)
        return Field(self.b0, self.b0_direction, self.offset, self.gradient, self.box, values, np.zeros(3), h,
                     description={**self.description, "sampled": list(shape)})

    def frequency(self, points, gamma: float = 2.6751525e8) -> np.ndarray:
        """Off-resonance angular frequency gamma dB (rad/s) at local-frame points.

        Parameters
        ----------
        points : array_like
            (N, 3) positions in m.
        gamma : float
            Gyromagnetic ratio, rad/s/T (protons by default).

        Returns
        -------
        numpy.ndarray
            (N,) angular frequencies in rad/s.
        """
        return gamma * self.evaluate(points)

    def __add__(self, other: "Field") -> "Field":
        if not isinstance(other, Field):
            return NotImplemented
        if self.b0 != other.b0 or not np.allclose(self.b0_direction, other.b0_direction):
            raise ValueError("fields add only when they share b0 and b0_direction")
        if self.values.size and other.values.size:
            raise ValueError("two field maps do not add here: add their values on one grid (field_map)")
        if self.sources.size and other.sources.size and not np.allclose(self.box, other.box):
            raise ValueError("analytic sources of two fields must share one periodic box to add")
        mapped = self if self.values.size else other
        box = self.box if (self.values.size or self.sources.size) else other.box
        return Field(self.b0, self.b0_direction, self.offset + other.offset, self.gradient + other.gradient,
                     box, mapped.values, mapped.origin, mapped.spacing, np.vstack([self.sources, other.sources]),
                     {"sum": [self.description, other.description]})


def background_gradient(gradient, offset: float = 0.0, b0: float = 3.0, b0_direction=(0.0, 0.0, 1.0)) -> Field:
    """A constant background gradient of the field offset (plus a uniform offset).

    Parameters
    ----------
    gradient : array_like
        (3,) gradient of dB along B0, T/m, in the substrate's local frame (1 mT/m = 1e-3 T/m).
    offset : float
        Uniform offset at the origin, T.
    b0 : float
        Main field, T (only recorded).
    b0_direction : array_like
        (3,) direction of B0 (only recorded).

    Returns
    -------
    Field

    Examples
    --------
    >>> import substrates
    >>> substrates.background_gradient([0.0, 0.0, 2e-3]).gradient
    array([0.   , 0.   , 0.002])
    """
    g = np.asarray(gradient, dtype=float).reshape(-1)
    if g.shape != (3,) or not np.all(np.isfinite(g)):
        raise ValueError(f"gradient must be a finite 3-vector in T/m, got {gradient!r}")
    if np.linalg.norm(g) > MAX_BACKGROUND_GRADIENT:
        raise ValueError(f"a background gradient of {np.linalg.norm(g):g} T/m is beyond tissue fields; it is "
                         "in T/m (1 mT/m = 1e-3 T/m)")
    off = float(offset)
    if not np.isfinite(off) or abs(off) > 1e-3 * MAX_B0:
        raise ValueError(f"offset must be a field offset in T (micro-tesla: 1e-6), got {offset!r}")
    return Field(b0, b0_direction, off, g, description={"background_gradient": g.tolist(), "offset": off})


def _images(box: np.ndarray, reach: float, dims: int) -> np.ndarray:
    """Lattice shifts of the periodic box within ``reach`` (m) in the first ``dims`` axes: a sphere (circle) of
    images, so the conditionally convergent dipole sums converge to the Lorentz value as reach grows."""
    n = [int(math.ceil(reach / box[k])) if (k < dims and box[k] > 0 and np.isfinite(box[k])) else 0
         for k in range(3)]
    grid = np.stack(np.meshgrid(*[np.arange(-m, m + 1) for m in n], indexing="ij"), -1).reshape(-1, 3)
    shifts = grid * np.where(np.isfinite(box) & (box > 0), box, 0.0)
    return shifts[np.linalg.norm(shifts, axis=1) <= reach + 1e-12 * reach]


def susceptibility_field(substrate, chi, b0: float = 3.0, b0_direction=(0.0, 0.0, 1.0), *,
                         chi_anisotropic=0.0, inner_radii=None, image_reach: float | None = None) -> Field:
    """The field offset of an analytic substrate's cylinders or spheres, from their exact closed forms.

    Every primitive carries a susceptibility difference chi to the medium around it. With ``inner_radii``
    each cylinder becomes a myelin sheath between the inner radius and its own (outer) radius, with isotropic
    ``chi`` and radially anisotropic ``chi_anisotropic`` (Wharton & Bowtell 2012). A periodic substrate's
    images out to ``image_reach`` are summed (a circle, or a sphere, of images: the conditionally convergent
    dipole sums then tend to the Lorentz-corrected value as the reach grows).

    Parameters
    ----------
    substrate : substrates.AnalyticSubstrate
        Cylinders or spheres (``cylinders``, ``cylinder_lattice``, ``pack_cylinders``, ``spheres``, ...).
    chi : float or array_like
        Susceptibility difference of each primitive (isotropic part), dimensionless SI (0.1 ppm = 1e-7).
    b0 : float
        Main field, T.
    b0_direction : array_like
        (3,) direction of B0 in the lab frame (the substrate's rotation takes it to the local frame).
    chi_anisotropic : float or array_like
        Radially anisotropic susceptibility chi_A of each sheath (dimensionless SI), with ``inner_radii``.
    inner_radii : float or array_like, optional
        Inner radius of each cylinder's sheath, m: makes hollow (myelinated) cylinders.
    image_reach : float, optional
        Radius (m) within which periodic images are summed; default: 6 box lengths (about 0.5 % of the
        near field left out on a dilute lattice). 0: the box's own primitives only.

    Returns
    -------
    Field
        In the substrate's local frame.

    Examples
    --------
    >>> import substrates
    >>> sub = substrates.cylinder(radius=2e-6)
    >>> f = substrates.susceptibility_field(sub, chi=-1e-7, b0=3.0, b0_direction=(1.0, 0.0, 0.0))
    >>> round(float(f.evaluate([[0.0, 0.0, 0.0]])[0]) * 1e9, 3)  # nT inside: chi B0 (3 cos^2 - 1) / 6
    50.0
    """
    kind = getattr(substrate, "kind", None)
    if getattr(substrate, "family", None) != "analytic" or kind not in (CYLINDERS, SPHERES):
        raise ValueError("susceptibility_field builds closed forms for analytic cylinders and spheres; for "
                         "meshes, unions and other substrates use fourier_field(...) on a susceptibility grid")
    b0 = check_b0(b0)
    b_local = substrate.rotation.T @ _unit(b0_direction, "b0_direction")
    n = len(substrate.radii)
    chi_v = np.broadcast_to(check_chi(chi), (n,)).astype(float)
    chi_a = np.broadcast_to(check_chi(chi_anisotropic, "chi_anisotropic"), (n,)).astype(float)
    radii = np.asarray(substrate.radii, dtype=float)
    if inner_radii is not None:
        if kind != CYLINDERS:
            raise ValueError("inner_radii makes myelin sheaths of cylinders; spheres have none")
        ri = np.broadcast_to(np.asarray(inner_radii, dtype=float), (n,)).astype(float)
        if np.any(~np.isfinite(ri)) or np.any(ri <= 0) or np.any(ri >= radii):
            raise ValueError("inner_radii must be positive and smaller than each cylinder's radius (m), e.g. "
                             "g-ratio * radius")
    elif np.any(chi_a != 0):
        raise ValueError("chi_anisotropic needs inner_radii (the sheath it lives in)")
    else:
        ri = np.zeros(n)
    box = np.where(np.isfinite(substrate.box), substrate.box, 0.0)
    periodic = box[:2] > 0 if kind == CYLINDERS else box > 0
    if image_reach is None:
        image_reach = 6.0 * float(np.max(box)) if np.any(periodic) else 0.0
    if float(image_reach) < 0:
        raise ValueError(f"image_reach must be >= 0 (m), got {image_reach!r}")
    dims = 2 if kind == CYLINDERS else 3
    shifts = _images(box, float(image_reach), dims) if np.any(periodic) else np.zeros((1, 3))
    centers = np.asarray(substrate.centers, dtype=float)
    if kind == CYLINDERS:
        centers = centers.copy()
        centers[:, 2] = 0.0
        t = HOLLOW_CYLINDER if inner_radii is not None else CYLINDER
    else:
        t = SPHERE
    rows = []
    for s in shifts:
        block = np.zeros((n, SOURCE_COLUMNS))
        block[:, 0] = t
        block[:, 1:4] = centers + s
        block[:, 6] = 1.0  # local axis of the cylinders: z
        block[:, 7] = ri
        block[:, 8] = radii
        block[:, 9] = chi_v
        block[:, 10] = chi_a
        rows.append(block)
    box_field = np.where(np.isfinite(substrate.box), substrate.box, 0.0)
    if kind == CYLINDERS:
        box_field[2] = 0.0
    desc = {"susceptibility_field": {"chi": chi_v.tolist() if n <= 16 else f"{n} values",
                                     "chi_anisotropic": float(chi_a[0]) if np.all(chi_a == chi_a[0]) else "per axon",
                                     "b0": b0, "b0_direction": list(map(float, b0_direction)),
                                     "image_reach": float(image_reach), "images": int(len(shifts))}}
    return Field(b0, b_local, 0.0, np.zeros(3), box_field, sources=np.vstack(rows), description=desc)


def field_map(values, box, origin=(0.0, 0.0, 0.0), b0: float = 3.0, b0_direction=(0.0, 0.0, 1.0)) -> Field:
    """A field offset given on a periodic grid, interpolated trilinearly.

    Parameters
    ----------
    values : array_like
        (nx, ny, nz) offsets in T (a frequency map in Hz divides by gamma / 2 pi = 42.58e6 Hz/T first).
    box : array_like
        (3,) period of the map, m; node (i, j, k) sits at origin + (i, j, k) * box / (nx, ny, nz).
    origin : array_like
        (3,) position of node (0, 0, 0), m.
    b0, b0_direction
        Main field (T) and its direction (local frame), recorded with the map.

    Returns
    -------
    Field

    Examples
    --------
    >>> import numpy as np, substrates
    >>> f = substrates.field_map(np.zeros((4, 4, 4)), box=[8e-6, 8e-6, 8e-6])
    >>> f.values.shape
    (4, 4, 4)
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 3 or min(v.shape) < 1:
        raise ValueError(f"values must be a 3-D (nx, ny, nz) map in T, got shape {v.shape}")
    if v.size and np.max(np.abs(v)) > 1e-3 * MAX_B0:
        raise ValueError(f"a field offset of {np.max(np.abs(v)):g} T is beyond tissue fields; values are in T "
                         "(micro-tesla: 1e-6; divide a map in Hz by 42.58e6)")
    b = np.asarray(box, dtype=float).reshape(-1)
    if b.shape != (3,) or not np.all(np.isfinite(b)) or np.any(b <= 0):
        raise ValueError(f"box must be the map's positive finite period (3,) in m, got {box!r}")
    if np.any(b > 1.0):
        raise ValueError(f"box = {b} m is larger than a metre: lengths are in m (um: 1e-6)")
    return Field(b0, b0_direction, 0.0, np.zeros(3), b, v, np.asarray(origin, float), b / np.array(v.shape),
                 description={"field_map": list(v.shape), "box": b.tolist()})


def fourier_field(chi, box, b0: float = 3.0, b0_direction=(0.0, 0.0, 1.0), origin=(0.0, 0.0, 0.0)) -> Field:
    """The field offset of a periodic susceptibility distribution, by the Fourier dipole kernel.

    ``dB(k) = B0 chi(k) (1/3 - (k . b)^2 / k^2)`` (tensors: ``B0 (b . X(k) b / 3 - (k . b)(k . X(k) b) / k^2)``)
    with the k = 0 term set to zero (the mean offset over the
    box is zero: a uniform offset turns a gradient echo's phase, not its magnitude). The grid's own sampling
    of sharp boundaries is its error: compare at points away from them, or refine.

    Parameters
    ----------
    chi : array_like
        (nx, ny, nz) susceptibility (dimensionless SI) at the nodes of the periodic grid, or (nx, ny, nz, 3, 3)
        susceptibility tensors (anisotropic myelin).
    box : array_like
        (3,) period, m.
    b0 : float
        Main field, T.
    b0_direction : array_like
        (3,) direction of B0 in the grid's frame.
    origin : array_like
        (3,) position of node (0, 0, 0), m.

    Returns
    -------
    Field
        A :func:`field_map` of the offset.

    Examples
    --------
    >>> import numpy as np, substrates
    >>> chi = np.zeros((16, 16, 16)); chi[6:10, 6:10, :] = -1e-7
    >>> f = substrates.fourier_field(chi, box=[16e-6] * 3)
    >>> f.values.shape
    (16, 16, 16)
    """
    c = check_chi(np.asarray(chi, dtype=float))
    if not (c.ndim == 3 or (c.ndim == 5 and c.shape[3:] == (3, 3))):
        raise ValueError(f"chi must be a (nx, ny, nz) grid or a (nx, ny, nz, 3, 3) tensor grid, got {c.shape}")
    b0 = check_b0(b0)
    u = _unit(b0_direction, "b0_direction")
    b = np.asarray(box, dtype=float).reshape(3)
    k = np.meshgrid(*[np.fft.fftfreq(n, d=L / n) for n, L in zip(c.shape[:3], b)], indexing="ij")
    k2 = k[0] ** 2 + k[1] ** 2 + k[2] ** 2
    kb = k[0] * u[0] + k[1] * u[1] + k[2] * u[2]
    safe = np.where(k2 > 0, k2, 1.0)
    if c.ndim == 3:
        spectrum = np.fft.fftn(c) * np.where(k2 > 0, 1.0 / 3.0 - kb * kb / safe, 0.0)
    else:
        # the Lorentz-corrected field of a magnetisation X b B0 / mu0: b.X.b / 3 - (k.b)(k.X.b) / k^2
        xb = np.fft.fftn(c @ u, axes=(0, 1, 2))
        kxb = k[0] * xb[..., 0] + k[1] * xb[..., 1] + k[2] * xb[..., 2]
        spectrum = np.where(k2 > 0, (xb @ u) / 3.0 - kb * kxb / safe, 0.0)
    values = np.real(np.fft.ifftn(spectrum)) * b0
    return replace(field_map(values, b, origin, b0, u),
                   description={"fourier_field": list(c.shape), "box": b.tolist(), "b0": b0})


def susceptibility_map(substrate, chi, voxel: float, b0: float = 3.0, b0_direction=(0.0, 0.0, 1.0),
                       supersample: int = 2) -> Field:
    """The field offset of any periodic substrate: its susceptibility rasterised, then the Fourier kernel.

    Each voxel's susceptibility is the mean over supersample^3 points of chi where they fall (a mesh's
    innermost component, a union's spheres, an analytic substrate's primitives), 0 elsewhere.

    Parameters
    ----------
    substrate : substrates.Substrate
        A mesh (``from_mesh``, the generators), a sphere union or an analytic substrate, with a finite box.
    chi : float or array_like
        Susceptibility difference to the extra-cellular space (dimensionless SI): one value, or one per mesh
        component (nested components, e.g. an axon inside its myelin: the innermost one's value counts).
    voxel : float
        Target voxel size, m (the box is divided into whole numbers of voxels no larger than this).
    b0 : float
        Main field, T.
    b0_direction : array_like
        (3,) direction of B0 in the lab frame.
    supersample : int
        Points per voxel and axis.

    Returns
    -------
    Field

    Examples
    --------
    >>> import substrates
    >>> sub = substrates.sphere_union([[4e-6, 4e-6, 4e-6]], [2e-6], box=[8e-6, 8e-6, 8e-6])
    >>> substrates.susceptibility_map(sub, chi=1e-7, voxel=0.5e-6).values.shape
    (16, 16, 16)
    """
    box = np.asarray(substrate.box, dtype=float)
    if not np.all(np.isfinite(box)):
        raise ValueError("susceptibility_map needs a periodic substrate (a finite box); for lone cylinders and "
                         "spheres use susceptibility_field (closed forms)")
    v = float(voxel)
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"voxel must be a positive length in m, got {voxel!r}")
    if v > 1e-3:
        raise ValueError(f"voxel = {v:g} m: lengths are in m (0.25 um = 0.25e-6)")
    shape = tuple(int(math.ceil(L / v - 1e-9)) for L in box)
    if np.prod(shape) > 512 ** 3:
        raise ValueError(f"voxel = {v:g} m makes {shape} voxels; give a larger voxel")
    ss = int(supersample)
    if ss < 1:
        raise ValueError(f"supersample must be a positive integer, got {supersample!r}")
    h = box / np.array(shape)
    b_local = substrate.rotation.T @ _unit(b0_direction, "b0_direction")
    chi_v = check_chi(chi)
    X = np.zeros(shape)
    offs = (np.arange(ss) + 0.5) / ss - 0.5
    nodes = _nodes(shape, h)
    for ox in offs:
        for oy in offs:
            for oz in offs:
                pts = np.mod(nodes + np.array([ox, oy, oz]) * h, box)
                where = _holder(substrate, pts)
                if chi_v.ndim == 0:
                    val = np.where(where >= 0, float(chi_v), 0.0)
                else:
                    if where.max(initial=-1) >= len(chi_v):
                        raise ValueError(f"chi has {len(chi_v)} values; the substrate has more components")
                    val = np.where(where >= 0, chi_v[np.maximum(where, 0)], 0.0)
                X += val.reshape(shape)
    X /= ss ** 3
    f = fourier_field(X, box, b0, b_local)
    return replace(f, description={"susceptibility_map": {"voxels": list(shape), "supersample": ss, "b0": f.b0,
                                                          "chi": float(chi_v) if chi_v.ndim == 0
                                                          else "per component"}})


def _holder(substrate, points: np.ndarray) -> np.ndarray:
    """Index of the element holding each point (mesh component, union sphere, analytic primitive), -1 none."""
    if getattr(substrate, "family", None) == "union":
        return substrate.holding_sphere(points)
    return substrate.locate(points)


def save_field_map(fld: Field, path) -> None:
    """Write a field's map to ``.npz``: ``values`` (T), ``box``, ``origin`` and ``spacing`` (m), ``b0`` (T),
    ``b0_direction``. Written to a temporary file and renamed, so a failed write leaves no half file.

    Parameters
    ----------
    fld : Field
        A field with a map (:func:`fourier_field`, :func:`susceptibility_map`, :meth:`Field.sampled`).
    path : str or Path
        Output file, ``.npz``.
    """
    import os
    from pathlib import Path
    p = Path(path)
    if p.suffix != ".npz":
        raise ValueError(f"save_field_map writes .npz files, not {p.suffix!r}")
    if not fld.values.size:
        raise ValueError("this field has no map to save: sample it first (Field.sampled)")
    tmp = p.with_name(p.name + ".part.npz")
    np.savez(tmp, values=fld.values, box=fld.box, origin=fld.origin, spacing=fld.spacing, b0=fld.b0,
             b0_direction=fld.b0_direction)
    os.replace(tmp, p)


#: units a NIfTI field map may be in, and their factor to T (ppm and Hz need b0 and gamma)
NIFTI_UNITS = ("T", "uT", "Hz", "rad/s", "ppm")


def read_field_map(path, units: str | None = None, b0: float = 3.0, b0_direction=(0.0, 0.0, 1.0)) -> Field:
    """A field map from ``.npz`` (written by :func:`save_field_map`) or NIfTI (``.nii``, ``.nii.gz``).

    A NIfTI map covers one period of the substrate: its affine must be axis-aligned (scaled identity up to
    signs is refused: reorient first), gives the node spacing and origin (mm, converted to m), and the image's
    extent is the period.

    Parameters
    ----------
    path : str or Path
        The file.
    units : {"T", "uT", "Hz", "rad/s", "ppm"}, optional
        Units of a NIfTI map's values (required for NIfTI: the format does not say); Hz and rad/s are
        converted with the proton's gamma, ppm with ``b0``.
    b0 : float
        Main field, T.
    b0_direction : array_like
        (3,) direction of B0 in the map's frame.

    Returns
    -------
    Field
    """
    from pathlib import Path
    from sequences.constants import GAMMA
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such field map")
    if p.suffix == ".npz":
        with np.load(p) as d:
            missing = {"values", "box"} - set(d.files)
            if missing:
                raise ValueError(f"{p}: a field map .npz holds 'values' (T) and 'box' (m); {sorted(missing)} missing")
            spacing = (d["spacing"] if "spacing" in d.files
                       else np.asarray(d["box"], float) / np.array(d["values"].shape))
            return Field(float(d["b0"]) if "b0" in d.files else b0,
                         d["b0_direction"] if "b0_direction" in d.files else b0_direction, 0.0, np.zeros(3),
                         d["box"], d["values"], d["origin"] if "origin" in d.files else np.zeros(3),
                         spacing,
                         description={"read_field_map": str(p)})
    if not (p.name.endswith(".nii") or p.name.endswith(".nii.gz")):
        raise ValueError(f"{p}: read_field_map reads .npz, .nii and .nii.gz files")
    if units not in NIFTI_UNITS:
        raise ValueError(f"{p}: give units= one of {NIFTI_UNITS} (NIfTI does not record a field map's units)")
    try:
        import nibabel as nib
    except ImportError as exc:
        raise ImportError("reading NIfTI field maps needs nibabel: pip install 'diffwalk[nifti]'") from exc
    img = nib.load(str(p))
    data = np.asarray(img.get_fdata(), dtype=float)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{p}: a field map is one 3-D volume, got shape {data.shape}")
    A = np.asarray(img.affine, dtype=float)
    lin = A[:3, :3]
    if np.any(np.abs(lin - np.diag(np.diag(lin))) > 1e-9 * np.abs(lin).max()) or np.any(np.diag(lin) <= 0):
        raise ValueError(f"{p}: the affine is not a positive axis-aligned scaling; reorient the map (e.g. "
                         "nibabel.as_closest_canonical) and resample it onto the substrate's axes first")
    b0 = check_b0(b0)
    factor = {"T": 1.0, "uT": 1e-6, "Hz": 2 * math.pi / GAMMA, "rad/s": 1.0 / GAMMA, "ppm": 1e-6 * b0}[units]
    spacing = np.diag(lin) * 1e-3
    return field_map(data * factor, box=spacing * np.array(data.shape), origin=A[:3, 3] * 1e-3, b0=b0,
                     b0_direction=b0_direction)


def dilute_r2prime(fld: Field) -> float:
    """The long-time static-dephasing rate R2' (1/s) of water among a field's spheres and cylinders, in the
    dilute limit (Yablonskiy & Haacke 1994).

    Each kind of perturber adds its own term: randomly placed spheres at volume fraction zeta,
    ``2 pi / (3 sqrt 3) zeta delta_omega`` with ``delta_omega = gamma |chi| B0 / 3``; parallel cylinders at
    angle theta to B0, ``zeta delta_omega`` with ``delta_omega = gamma |chi| B0 sin^2 theta / 2``; a myelin
    sheath acts outside as a cylinder of area pi (r_o^2 - r_i^2) and susceptibility chi_I + chi_A / 4
    (Wharton & Bowtell 2012). A gradient echo's magnitude among the perturbers then decays as
    exp(-R2' t) once t >> 1 / delta_omega (and while t << the diffusion time across their field, the static
    regime); zeta is the perturbers' volume fraction in the field's periodic box.

    Parameters
    ----------
    fld : Field
        A field with analytic sources in a periodic box (:func:`susceptibility_field` of a packing).

    Returns
    -------
    float
        R2' in 1/s; NaN where the field has no analytic sources or no period to count them in (a lone
        cylinder has no volume fraction).

    Examples
    --------
    >>> import substrates
    >>> sub = substrates.cylinder_lattice(radius=2e-6, icvf=0.1)
    >>> f = substrates.susceptibility_field(sub, chi=1e-7, b0=3.0, b0_direction=(1.0, 0.0, 0.0))
    >>> round(substrates.dilute_r2prime(f), 2)  # zeta gamma chi B0 / 2 = 0.1 * 2.675e8 * 1e-7 * 3 / 2
    4.01
    """
    from sequences.constants import GAMMA
    src = fld.sources
    if len(src) == 0:
        return float("nan")
    # the box's own perturbers: centres inside the period (images lie a whole period away)
    box = fld.box
    inside = np.ones(len(src), dtype=bool)
    for k in range(3):
        if box[k] > 0:
            inside &= (src[:, 1 + k] >= 0) & (src[:, 1 + k] < box[k])
    src = src[inside]
    b = fld.b0_direction
    rate = 0.0
    for row in src:
        kind = int(row[0])
        if kind == SPHERE:
            if np.any(box <= 0):
                return float("nan")
            zeta = 4.0 / 3.0 * math.pi * row[8] ** 3 / float(np.prod(box))
            rate += 2.0 * math.pi / (3.0 * math.sqrt(3.0)) * zeta * abs(row[9]) / 3.0
            continue
        axis = row[4:7]
        across = [k for k in range(3) if abs(axis[k]) < 1e-12]
        if len(across) != 2 or np.any(box[across] <= 0):
            return float("nan")  # no period across the axis: no area to take a fraction of
        sin2 = 1.0 - float(axis @ b) ** 2
        if kind == CYLINDER:
            area, chi = math.pi * row[8] ** 2, abs(row[9])
        else:
            area, chi = math.pi * (row[8] ** 2 - row[7] ** 2), abs(row[9] + 0.25 * row[10])
        rate += area / float(np.prod(box[across])) * chi * sin2 / 2.0
    return float(GAMMA * fld.b0 * rate)


def field_statistics(fld: Field, substrate, n: int = 100_000, seed: int = 0, times=None) -> dict[str, Any]:
    """Mean and variance of dB per compartment of a substrate, and the static dephasing they imply.

    Parameters
    ----------
    fld : Field
        The field, in the substrate's local frame.
    substrate : substrates.Substrate
        Where the compartments are.
    n : int
        Points drawn uniformly in each compartment.
    seed : int
        Seed of the draw.
    times : array_like, optional
        Gradient-echo times (s) at which to give each compartment's static signal.

    Returns
    -------
    dict
        Per compartment: ``mean_T``, ``std_T`` (T); ``short_time_rate_per_s2``, gamma^2 Var(dB) (s^-2: a
        gradient echo's short-time static dephasing is exp(-gamma^2 Var(dB) t^2 / 2)); ``r2prime_per_s``, the
        long-time static R2' (1/s) that the field's analytic perturbers cause in the dilute limit
        (:func:`dilute_r2prime`; the same in every compartment, since it comes from the perturbers' outer
        fields; NaN for maps); ``frequency_Hz``, the n sampled offsets as frequencies gamma dB / 2 pi (Hz,
        for a histogram); and with ``times``, ``static_signal``: the complex mean of exp(i gamma dB t), the
        gradient echo of static spins (no diffusion: the Fourier transform of the frequency histogram).

    Examples
    --------
    >>> import substrates
    >>> sub = substrates.cylinder_lattice(radius=2e-6, icvf=0.3)
    >>> f = substrates.susceptibility_field(sub, chi=-1e-7, b0=3.0, b0_direction=(1.0, 0.0, 0.0))
    >>> stats = substrates.field_statistics(f, sub, n=2000, times=[0.0, 0.02])
    >>> sorted(stats)
    ['extra', 'intra']
    >>> round(float(abs(stats["intra"]["static_signal"][0])), 6)
    1.0
    """
    from sequences.constants import GAMMA
    rng = np.random.default_rng(seed)
    t = None if times is None else np.asarray(times, dtype=float).reshape(-1)
    if t is not None and (not np.all(np.isfinite(t)) or np.any(t < 0) or np.any(t > 10.0)):
        raise ValueError(f"times must be echo times in s (0 to 10; 30 ms is 0.03), got {times!r}")
    r2p = dilute_r2prime(fld)
    out = {}
    for comp in substrate.compartments:
        start = substrate.sample_positions(comp, int(n), rng)
        pts = substrate.absolute_positions(start.positions, start.home)
        v = fld.evaluate(pts)
        entry = {"mean_T": float(v.mean()), "std_T": float(v.std()),
                 "short_time_rate_per_s2": float(GAMMA ** 2 * v.var()), "r2prime_per_s": r2p,
                 "frequency_Hz": GAMMA * v / (2 * math.pi)}
        if t is not None:
            entry["static_signal"] = np.exp(1j * GAMMA * np.outer(t, v)).mean(axis=1)
        out[comp] = entry
    return out
