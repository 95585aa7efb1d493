"""Crossing bundles: two or three bundles of continuous fibres at given angles, interleaved in sheets.

On a periodic box a straight fibre closes on itself only along a lattice direction (p Ly, q Lz), and lines
of different directions on a torus must meet. So the bundles are sheets stacked along x: a sheet holds
fibres of one bundle, all along that bundle's direction in the yz-plane (the crossing plane), packed in the
sheet's cross-section, which is periodic across the fibres and walled by the sheets of the other bundles.
The box's aspect Lz / Ly is chosen so that every requested direction is a lattice direction: exactly for one
or two bundles, within ``angle_tolerance`` for three. A voxel a few sheets thick sees the bundles cross at
the intra-axonal fraction of the sheets (0.7-0.8), which random fibre growth in a closed voxel reaches
only with much work (CACTUS, ConFiG); the price is that fibres of different bundles meet only at the sheet
faces, not one by one.

Fibres can undulate (a sinusoid of their own phase and plane, which disperses the bundle; the dispersion is
measured on the geometry, not asked for) and carry myelin (a g-ratio per fibre: two nested tubes, regions
"myelin" and "intra"). The ground truth reports per bundle the volume fractions, radii, direction, the
orientation distribution measured on the centre lines (mean direction, scatter tensor, Watson ODI, real
spherical-harmonic coefficients to l = 8) and the crossing angles.
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
from scipy.optimize import brentq, minimize_scalar
from scipy.special import dawsn

from sequences import check_count, check_fraction

from .base import check_length
from .disks import pack_strip
from .generators import draw_g_ratios, gamma_radii, per_surface
from .mesh import MeshSubstrate, mesh_substrate
from .meshing import area_preserving_radius, periodic_tube, polygon_radius_error, polygon_sides
from .unions import SphereUnion, sphere_union

#: lattice directions (p, q) of the yz torus a bundle may run along: (p Ly, q Lz), |p|, |q| <= 2, one per axis
LATTICE = ((0, 1), (1, 0), (1, 1), (1, -1), (1, 2), (1, -2), (2, 1), (2, -1))
#: densest fraction of a sheet the fibres' footprints are asked to cover (walls cost a little of the ~0.85
#: random close packing of disks)
MAX_SHEET_FRACTION = 0.82
#: thinnest sheet, and narrowest sheet period, in mean fibre footprint diameters (thinner sheets between
#: walls do not pack at white-matter fractions)
THINNEST_SHEET = 4.0
NARROWEST_SHEET = 3.0
#: highest spherical-harmonic order of the measured orientation distribution
SH_ORDER = 8
#: ring spacing along straight tubes in outer radii (measured: see benchmarks/bench_meshes.py)
RING_SPACING = 2.0
#: sharpest bend of a dispersed or bent fibre's centre line, in footprint radii (a tube folds on itself below 1)
BEND_RADII = 1.5


def crossing_bundles(angles=None, n_fibres: int = 200, mean_radius=1e-6, icvf=0.7, fractions=None,
                     gamma_shape: float = 4.0, layers: int = 1, g_ratio=None, g_ratio_sd: float = 0.05,
                     amplitude=0.0, wavelength: float | None = None, seed: int = 0, resolution: float = 0.01,
                     min_gap: float | None = None, representation: str = "mesh", angle_tolerance: float = 0.5,
                     permeability=0.0, relaxivity=0.0, crossing_angle: float | None = None, odi=0.0,
                     max_tilt: float = 75.0, bend=0.0, bead_amplitude=0.0, bead_spacing: float = 10e-6,
                     glia: int = 0, glia_radius: float = 2e-6, bingham=None):
    """Two or three bundles of continuous fibres crossing at given angles, in a periodic box.

    Each bundle fills its own sheets (stacked along x, interleaved: A B A B ... for ``layers`` = 2); its fibres
    run along its direction in the yz-plane through the periodic box without ends, with gamma-distributed
    radii, packed without overlap at the bundle's intra-axonal fraction (see the module docstring for why
    sheets).

    Parameters
    ----------
    angles : sequence of float, optional
        Direction of each bundle in the crossing plane, in degrees (1 to 3 bundles); only their differences
        matter: (0, 90) is a right-angle crossing, (0, 60, 120) three bundles 60 degrees apart. The realised
        directions are in the ground truth (box frame). Default (0, 90).
    n_fibres : int
        Number of fibres over all bundles.
    mean_radius : float or sequence of float
        Mean inner (axon) radius in m, one or one per bundle.
    icvf : float or sequence of float
        Intra-axonal volume fraction of each bundle's sheets (0.7-0.8 is white matter).
    fractions : sequence of float, optional
        Share of the fibre volume in each bundle (default equal); the fibre counts follow from it (the
        realised shares are in the ground truth, within one fibre of the request).
    gamma_shape : float
        Shape of the gamma distribution of radii.
    layers : int
        Sheets per bundle (thinner, interleaved sheets: the bundles cross on a finer scale, at a little
        lower reachable fraction near the sheet faces).
    g_ratio : float or sequence of float, optional
        Mean g-ratio (inner / outer radius) of each bundle's myelin; ``None``: no myelin. With myelin the
        regions are "myelin", "intra" and "extra".
    g_ratio_sd : float
        Standard deviation of the g-ratios (truncated normal, as :func:`myelinated_axons`).
    amplitude : float or sequence of float
        Undulation amplitude in m of each bundle's fibres (0: straight); each fibre undulates as a sinusoid
        with its own phase and plane, which disperses the bundle (the measured ODI is in the ground truth).
    wavelength : float, optional
        Undulation wavelength in m (rounded so that a whole number of waves fits the fibre; default a
        quarter of the fibre's period). With ``odi`` or ``bingham``, the length of a helix turn along the axis
        (default the shortest the bend limit allows, a few radii; whole turns no shorter than asked, one per
        fibre period at most): longer turns keep a fibre straight over a longer diffusion path, at the cost
        of wider helices and a lower reachable fraction.
    seed : int
        Seed of radii, g-ratios, phases and packings.
    resolution : float
        Relative radius error of the mesh's polygonal cross-sections.
    min_gap : float, optional
        Thinnest extra-axonal sheet between two fibres in m (default 2 % of the mean radius).
    representation : {"mesh", "union"}
        Closed tubes (walkers inside and outside; every wall option) or overlapping spheres along the
        centre lines (:func:`sphere_union`: walkers inside and outside, no myelin, no membranes).
    angle_tolerance : float
        Largest difference in degrees allowed between a requested and a realised relative direction (three
        bundles; one or two are exact).
    permeability, relaxivity : float or dict
        Walls' permeability and relaxivity in m/s, one value, or with myelin (mesh) ``{"inner": ...,
        "outer": ...}``.
    crossing_angle : float, optional
        Two bundles this many degrees apart, instead of ``angles`` (one number: a sweep or an atlas axis).
    odi : float or sequence of float
        Watson dispersion of each bundle, as its orientation dispersion index (0: none). Each fibre is a
        helix about the bundle's axis whose pitch angle is drawn so that the volume-weighted tangents of
        the bundle sample a Watson distribution with this ODI (see :func:`watson_tilts`); the measured
        orientation distribution is in the ground truth. Dispersed fibres cost density: footprints grow by
        the helix radius.
    max_tilt : float
        Steepest pitch angle in degrees of a dispersed fibre: Watson's tail beyond it is cut and its
        concentration lowered so that the ODI stays as requested.
    bend : float or sequence of float
        Coherent bending of each bundle in degrees: every fibre of a sheet follows the same sinusoid in the
        crossing plane, tilting up to this angle from the bundle's axis, so the bundle fans to and fro
        within the plane while its fibres stay as densely packed as straight ones (planar dispersion at
        intra-axonal fractions of 0.7; wavelength as for ``amplitude``, lengthened where the bend would be
        sharper than 1.5 fibre radii).
    bead_amplitude : float or sequence of float
        Relative swelling of beads along each bundle's fibres (0.5: beads 1.5 times the shaft radius), as
        :func:`beaded_axons` with periodic beads; ``mean_radius`` is then the shafts'. Not with myelin.
    bead_spacing : float
        Distance between beads along a fibre in m (rounded so a whole number fits the fibre).
    glia : int
        Glial cells between the fibres (sphere unions only): each a soma of ``glia_radius`` with two processes
        (chains of spheres of 0.3 its radius reaching 2 soma radii beyond it) along the fibres of its sheet,
        packed in the sheets with the fibres (as interfascicular oligodendrocytes lie in rows between axons),
        their footprint the soma's. They take room: the fibres keep their sheets' ``icvf``, the glia add to
        what the sheets must hold. Their volume fraction is in the ground truth (``glia``).
    glia_radius : float
        Soma radius of the glial cells in m.
    bingham : pair of float or sequence of pairs, optional
        Bingham dispersion (kappa, beta) of each bundle, density exp(kappa (mu . n)^2 + beta (e . n)^2) with mu
        the bundle's axis and e its in-plane normal (the crossing plane), kappa > 0, 0 <= beta <= kappa (beta = 0
        is Watson): fibres are coils of constant pitch angle, drawn from the Bingham polar law, whose azimuth
        lingers where the law is denser, so the volume-weighted tangents sample the Bingham density exactly
        (see :func:`bingham_tilts`); its tail beyond ``max_tilt`` is cut (the share is in the ground truth).

    Returns
    -------
    MeshSubstrate or SphereUnion
        Ground truth (``ground_truth()`` / ``.truth``): per bundle its direction, fibres, radii, g-ratios,
        volume fractions, measured orientation distribution and ODI; the crossing angles; generation time.

    Examples
    --------
    >>> import substrates
    >>> sub = substrates.crossing_bundles(angles=(0, 90), n_fibres=40, icvf=0.7, seed=0)
    >>> round(sub.truth["crossing_angles"][0], 6)
    90.0
    >>> sub.truth["icvf_exact"] > 0.65
    True
    """
    t0 = time.perf_counter()
    if crossing_angle is not None:
        if angles is not None:
            raise ValueError("give angles or crossing_angle, not both (crossing_angle=a is angles=(0, a))")
        angles = (0.0, float(crossing_angle))
    ang = np.asarray((0.0, 90.0) if angles is None else angles, dtype=float).ravel()
    if not 1 <= ang.size <= 3 or not np.all(np.isfinite(ang)):
        raise ValueError(f"angles must give 1 to 3 bundle directions in degrees, got {angles!r}")
    nb = ang.size
    if representation not in ("mesh", "union"):
        raise ValueError(f"representation must be 'mesh' or 'union', got {representation!r}")
    n_total = check_count(n_fibres, "n_fibres", least=nb)
    layers = check_count(layers, "layers")
    mr = _per_bundle(mean_radius, nb, "mean_radius", length=True)
    fr = _per_bundle(icvf, nb, "icvf")
    for f in fr:
        check_fraction(f, "icvf")
    amp = _per_bundle(amplitude, nb, "amplitude", length=True, allow_zero=True)
    odis = _per_bundle(odi, nb, "odi", allow_zero=True)
    bing = _bingham_pairs(bingham, nb)
    bends = _per_bundle(bend, nb, "bend", allow_zero=True)
    beads = _per_bundle(bead_amplitude, nb, "bead_amplitude", allow_zero=True)
    if np.any(odis >= 1):
        raise ValueError(f"odi must be below 1 (0: no dispersion, 1: isotropic), got {odi!r}")
    if np.any(bends >= 60):
        raise ValueError(f"bend is the largest tilt in degrees from the bundle's axis, below 60, got {bend!r}")
    if np.any(beads > 3):
        raise ValueError(f"bead_amplitude is relative (0.5: beads 1.5x the shaft radius), got {bead_amplitude!r}")
    if not 5 <= float(max_tilt) <= 80:
        raise ValueError(f"max_tilt must be 5 to 80 degrees (steeper helices twist their rings), got {max_tilt!r}")
    for i in range(nb):
        if int(amp[i] > 0) + int(odis[i] > 0) + int(bends[i] > 0) + int(bing[i, 0] > 0) > 1:
            raise ValueError(f"bundle {i}: give one of amplitude (undulation), odi (Watson dispersion), bingham "
                             "(Bingham dispersion) and bend (coherent bending) per bundle")
    if g_ratio is not None and np.any(beads > 0):
        raise ValueError("beads swell unmyelinated axons: drop bead_amplitude or g_ratio")
    n_glia = check_count(glia, "glia", least=0)
    if n_glia and representation != "union":
        raise ValueError("glia are built from spheres: use representation='union' with glia, or glia=0")
    if n_glia and np.any(bends > 0):
        raise ValueError("glia sit in straight columns, which bent sheets do not leave room for: bend=0 with glia")
    Rg = float(check_length(glia_radius, "glia_radius")) if n_glia else 0.0
    share = np.full(nb, 1.0 / nb) if fractions is None else _per_bundle(fractions, nb, "fractions")
    share = share / share.sum()
    if g_ratio is not None and representation == "union":
        raise ValueError("representation='union' has no myelin (one compartment inside the spheres, one "
                         "outside): drop g_ratio or use representation='mesh'")
    a, pq, realised, err = lattice_directions(ang, angle_tolerance)
    rng = np.random.default_rng(seed)
    # radii: a stream per bundle, cut where the bundle's share of the fibre volume (sum r^2) is nearest the
    # share asked for, so that small bundles of gamma radii do not drift from their volume fractions
    # (a fibre's volume is pi r^2 times its period, which differs between bundles: the targets divide by it)
    p = np.array([v[0] for v in pq], dtype=float)
    q = np.array([v[1] for v in pq], dtype=float)
    lunit = np.sqrt(p**2 + (q * a)**2)  # fibre period / Ly
    wunit = a / lunit  # sheet period / Ly
    first = np.maximum(1, np.round(share * n_total).astype(int))
    streams = [gamma_radii(4 * int(c) + 16, float(m), gamma_shape, seed + 7919 * i)
               for i, (c, m) in enumerate(zip(first, mr))]
    total = sum(float(np.sum(st[:c]**2)) * lu for st, c, lu in zip(streams, first, lunit))
    counts = np.array([max(1, int(np.argmin(np.abs(np.cumsum(st**2) * lu - sh * total))) + 1)
                       for st, sh, lu in zip(streams, share, lunit)])

    nsides = polygon_sides(resolution)
    rv = area_preserving_radius(1.0, nsides) if representation == "mesh" else 1.0 + 1.0 / 384  # see _union
    # per fibre: bundle, inner and outer radius, undulation
    bundle = np.repeat(np.arange(nb), counts)
    r_in = np.concatenate([st[:c] for st, c in zip(streams, counts)])
    if g_ratio is None:
        g = np.ones(len(r_in))
    else:
        gr = _per_bundle(g_ratio, nb, "g_ratio")
        g = np.concatenate([draw_g_ratios(float(gr[i]), g_ratio_sd, int(counts[i]), rng) for i in range(nb)])
        if np.any(r_in / g - r_in <= 2.0 * (r_in / g) * (rv - 1.0)):
            raise ValueError(f"a g-ratio of {g.max():.3f} leaves myelin thinner than the mesh error at resolution "
                             f"{resolution}: lower g_ratio or refine the resolution")
    r_out = r_in / g
    gap = 0.02 * float(r_in.mean()) if min_gap is None else float(check_length(min_gap, "min_gap", allow_zero=True))

    # box: Ly = S, Lz = a S; bundle i runs along (p Ly, q Lz), its sheets are w_i = Ly Lz / l_i across.
    # Shape of each fibre's centre line: 0 a sinusoid in a plane of its own (amplitude), 1 a helix of a drawn
    # pitch angle (odi), 2 the sinusoid its whole sheet shares, in the crossing plane (bend). Every tube lies
    # within the cylinder of radius (amplitude + vertex radius) about its axis (a tube is a union of balls on
    # its centre line), so that is its footprint; a bent sheet packs its straight tubes in coordinates
    # squeezed across the fibres by cos(bend), which keeps parallel sinusoids apart (see _waves).
    shape = np.select([odis[bundle] > 0, bends[bundle] > 0, bing[bundle, 0] > 0], [1, 2, 3], 0)
    tilt = np.zeros(len(r_in))  # pitch angle of helices, largest tilt of bends (rad)
    watson = [None] * nb
    for i in range(nb):
        sel = bundle == i
        if odis[i] > 0:
            tilt[sel], watson[i] = watson_tilts(float(odis[i]), int(sel.sum()), rng, max_tilt)
        elif bing[i, 0] > 0:
            tilt[sel], watson[i] = bingham_tilts(float(bing[i, 0]), float(bing[i, 1]), int(sel.sum()), rng,
                                                 max_tilt)
        elif bends[i] > 0:
            tilt[sel] = math.radians(bends[i])
    # Bingham coils: per fibre its azimuth law along a turn, the turn's shape, radius and least density
    coils = {j: _bingham_coil(float(tilt[j]), float(bing[bundle[j], 1])) for j in np.nonzero(shape == 3)[0]}
    coil_rho = np.full(len(r_in), 1 / (2 * np.pi))
    coil_qmin = np.full(len(r_in), 1 / (2 * np.pi))
    for j, cl in coils.items():
        coil_rho[j], coil_qmin[j] = cl["rho"], cl["qmin"]
    rbead = r_out * rv * (1 + beads[bundle])  # largest vertex radius
    volf = (1 + beads[bundle] / 2)**2 + beads[bundle]**2 / 8  # mean of (r / r_shaft)^2 along periodic beads
    tort = np.ones(len(r_in))  # arc length / period
    amp_f = np.zeros(len(r_in))
    waves = np.ones(len(r_in), dtype=int)
    # the box scale depends on the tortuosity and the tortuosity on the wavelength in box units: two passes
    S = None
    for _ in range(2):
        area = np.array([np.sum(np.pi * r_in[bundle == i]**2 * tort[bundle == i] * volf[bundle == i]) / fr[i]
                         for i in range(nb)])
        S = math.sqrt(float(np.sum(area / wunit)) / math.sqrt(a))  # a box about as deep (x) as it is wide
        # but no sheet thinner than THINNEST_SHEET footprint diameters: narrower, thicker sheets then
        foot_mean = float(np.mean(rbead + amp_f * (shape != 2)))
        S = min(S, float(np.min(area / layers / (wunit * THINNEST_SHEET * 2 * foot_mean))))
        ell = S * lunit
        waves, amp_f, k, gamma, squeeze = _waves(shape, tilt, amp, bundle, ell, rbead, wavelength, nb, pq, a,
                                                 coil_rho, coil_qmin)
        tan_a = amp_f * k
        zs = np.linspace(0, 2 * np.pi, 257)[:-1]
        tort = np.where(shape == 1, np.sqrt(1 + tan_a**2),
                        np.mean(np.sqrt(1 + (tan_a[:, None] * np.cos(zs)[None, :])**2), axis=1))
        tort = np.where(shape == 3, 1 / np.cos(tilt), tort)
    Ly, Lz = S, a * S
    ell = S * lunit
    w = S * wunit
    foot = rbead + amp_f * (shape != 2)
    if np.any(w < NARROWEST_SHEET * 2 * foot.mean()):
        raise ValueError(f"{n_total} fibres in {nb * layers} sheets make sheets only {w.min() / (2 * foot.mean()):.1f} "
                         f"mean fibre diameters across and {THINNEST_SHEET} thick: use more fibres or fewer layers")
    # sheets, interleaved along x: for each layer, one sheet per bundle; fibres split among a bundle's sheets
    sheets = []
    for i in range(nb):
        idx = rng.permutation(np.nonzero(bundle == i)[0])
        for lay, part in enumerate(np.array_split(idx, layers)):
            sheets.append((lay, i, part))
    sheets.sort(key=lambda s: (s[0], s[1]))
    xs = np.zeros((len(r_in), 2))  # (x, s) of each fibre's centre line at t = 0
    sheet_of = np.zeros(len(r_in), dtype=int)
    glia_xs = np.zeros((n_glia, 2))  # (x, s) of each glial cell's column, its sheet's bundle
    glia_bundle = np.zeros(n_glia, dtype=int)
    heights, x0 = [], 0.0
    for lay, i, part in sheets:
        if not len(part):
            raise ValueError(f"bundle {i} has fewer fibres ({counts[i]}) than layers ({layers}): lower layers")
        mine = np.arange(len(heights), n_glia, len(sheets))  # glial cells dealt out to the sheets in turn
        h = float(np.sum(np.pi * r_in[part]**2 * tort[part] * volf[part]) / fr[i]) / w[i]
        feet = np.concatenate([foot[part], np.full(len(mine), Rg * rv)])
        cover = float(np.sum(np.pi * (feet + gap / 2)**2) / (w[i] * squeeze[i] * h))
        if cover > MAX_SHEET_FRACTION:
            best = fr[i] * MAX_SHEET_FRACTION / cover
            raise ValueError(f"bundle {i}: icvf {fr[i]:g} needs its fibres' footprints (outer radius with myelin, "
                             f"mesh error, beads, undulation or dispersion, gap) to cover {cover:.3f} of the sheet; "
                             f"at most {MAX_SHEET_FRACTION} can be packed, so ask for icvf <= {best:.3f}"
                             + (" (or a larger g_ratio)" if g_ratio is not None else "")
                             + (" (or fewer or smaller glia)" if len(mine) else "")
                             + ("; dispersed fibres' helices widen with their turns, and lowering icvf widens the "
                                "box and the turns with it: give a shorter wavelength"
                                if wavelength is not None and np.any(waves[part] == 1) and np.any(shape[part] % 2)
                                else ""))
        try:
            c = pack_strip(feet, w[i] * squeeze[i], h, seed=seed + 101 * len(heights), min_gap=gap)
        except ValueError as exc:
            raise ValueError(f"bundle {i}, sheet {lay}: {exc}; fewer layers, more fibres or a lower icvf") from None
        xs[part, 0] = x0 + c[:len(part), 1]
        xs[part, 1] = c[:len(part), 0] / squeeze[i]
        glia_xs[mine, 0] = x0 + c[len(part):, 1]
        glia_xs[mine, 1] = c[len(part):, 0]
        glia_bundle[mine] = i
        sheet_of[part] = len(heights)
        heights.append((lay, i, x0, h))
        x0 += h
    Lx = x0
    box = np.array([Lx, Ly, Lz])

    # centre lines: x e_x + s n_i + t u_i + the fibre's shape
    u = np.column_stack([np.zeros(nb), p * Ly, q * Lz]) / ell[:, None]
    n = np.column_stack([np.zeros(nb), -u[:, 2], u[:, 1]])
    phase = rng.uniform(0, 2 * np.pi, len(r_in))
    plane = rng.uniform(0, np.pi, len(r_in))
    hand = rng.choice([-1.0, 1.0], len(r_in))
    sheet_phase = rng.uniform(0, 2 * np.pi, len(heights))
    bead_phase = rng.uniform(0, 2 * np.pi, len(r_in))
    n_beads = np.maximum(1, np.round(ell[bundle] / float(check_length(bead_spacing, "bead_spacing")))).astype(int)
    ex = np.array([1.0, 0, 0])
    lines, tangents, profiles = [], [], []
    for j in range(len(r_in)):
        i = bundle[j]
        kj, Aj = k[j], amp_f[j]
        curv = Aj * kj**2 / (1 + (Aj * kj)**2 if shape[j] == 1 else 1)  # largest curvature of the centre line
        if shape[j] == 3:
            curv = math.sin(tilt[j]) * math.cos(tilt[j]) * kj / (2 * np.pi * coil_qmin[j])
        K = max(8, int(math.ceil(ell[i] / (RING_SPACING * r_out[j]))))  # straight tubes: exact at any spacing
        if curv > 0:
            K = max(K, int(math.ceil(ell[i] / math.sqrt(8 * resolution * r_in[j] / curv))))
        if beads[i] > 0:
            K = max(K, 24 * int(n_beads[j]))
        t = np.arange(K) * (ell[i] / K)
        base = (xs[j, 0] * ex + xs[j, 1] * n[i])[None, :] + t[:, None] * u[i]
        ph = kj * t + (sheet_phase[sheet_of[j]] + gamma[j] * xs[j, 1] if shape[j] == 2 else phase[j])
        if shape[j] == 1:  # helix about the axis: constant tilt atan(A k), every azimuth once per turn
            off = Aj * (np.cos(ph)[:, None] * ex + hand[j] * np.sin(ph)[:, None] * n[i])
            tng = u[i] + Aj * kj * (-np.sin(ph)[:, None] * ex + hand[j] * np.cos(ph)[:, None] * n[i])
        elif shape[j] == 3:  # Bingham coil: constant tilt, azimuth (from the in-plane normal) at its quantiles
            cl = coils[j]
            frac = np.mod(ph / (2 * np.pi), 1.0)
            az = np.interp(frac, cl["s"], cl["phi"])
            lam = 2 * np.pi / kj
            tt = math.tan(tilt[j]) * lam
            off = (tt * np.interp(frac, cl["s"], cl["D"][:, 0]))[:, None] * n[i] + \
                (hand[j] * tt * np.interp(frac, cl["s"], cl["D"][:, 1]))[:, None] * ex
            tng = u[i] + math.tan(tilt[j]) * (np.cos(az)[:, None] * n[i] + hand[j] * np.sin(az)[:, None] * ex)
        else:
            d = n[i] if shape[j] == 2 else math.cos(plane[j]) * ex + math.sin(plane[j]) * n[i]
            off = Aj * np.sin(ph)[:, None] * d
            tng = u[i] + Aj * kj * np.cos(ph)[:, None] * d
        c = base + off
        c[:, 1:] = c[:, 1:] - np.floor(c[0, 1:] / box[1:]) * box[1:]  # start inside the box
        lines.append(c)
        tangents.append(tng)
        profiles.append(1 + beads[i] * (1 + np.cos(2 * np.pi * n_beads[j] * t / ell[i] + bead_phase[j])) / 2)
    period = np.column_stack([np.zeros(nb), p * Ly, q * Lz])
    glia_spheres = _glia(glia_xs, glia_bundle, Rg, u, n, ell, box, rng) if n_glia else None

    bundles = _bundle_truth(tangents, profiles, bundle, r_in, r_out, g, ell, box, nb, ang, realised, u,
                            amp_f, waves, g_ratio is not None)
    for i, b in enumerate(bundles):
        b["bead_amplitude"] = float(beads[i])
        b["bend_degrees"] = float(bends[i])
        b["odi_requested"] = float(odis[i]) if odis[i] > 0 else None
        b["watson" if odis[i] > 0 or bing[i, 0] == 0 else "bingham"] = watson[i]
    truth = {"generator": "crossing_bundles", "seed": int(seed), "representation": representation,
             "angles_requested": ang.tolist(), "angles_realised": realised.tolist(), "angle_error": float(err),
             "box_aspect": float(a), "lattice_directions": [list(v) for v in pq], "layers": int(layers),
             "sheets": [{"layer": int(lay), "bundle": int(i), "x0": float(x), "thickness": float(h)}
                        for lay, i, x, h in heights],
             "bundle_of_fibre": bundle.tolist(), "fibre_starts": [c[0].tolist() for c in lines],
             # per component (sheaths first with myelin): walker.simulate reports a signal per bundle from it
             "component_groups": [f"bundle_{b}" for b in bundle] * (2 if g_ratio is not None and
                                                                   representation == "mesh" else 1),
             "inner_radii": r_in.tolist(), "outer_radii": r_out.tolist(),
             "fibre_tilts": np.where(shape == 3, np.degrees(tilt), np.degrees(np.arctan(amp_f * k))).tolist(),
             "fibre_amplitudes": amp_f.tolist(),
             "fibre_shapes": [("sinusoid", "helix", "bent sheet", "coil")[v] for v in shape],
             "g_ratios": g.tolist() if g_ratio is not None else None, "icvf_target": fr.tolist(),
             "min_gap": gap, "bundles": bundles,
             "crossing_angles": [float(np.degrees(np.arccos(min(1.0, abs(float(bundles[i]["direction"] @
                                                                            np.asarray(bundles[j]["direction"]))))))
                                 ) for i, j in itertools.combinations(range(nb), 2)],
             "icvf_exact": float(sum(b["icvf"] for b in bundles))}
    vin = sum(b["icvf"] for b in bundles)
    for b in bundles:
        b["direction"] = list(map(float, b["direction"]))
        thick = sum(h for _, i, _, h in heights if i == b["bundle"])
        b["icvf_of_sheets"] = b["icvf"] * Lx / thick
        b["volume_share"] = b["icvf"] / vin
        b["volume_share_requested"] = float(share[b["bundle"]])
    walls = {"permeability": _walls(permeability, len(r_in), g_ratio is not None, "permeability"),
             "relaxivity": _walls(relaxivity, len(r_in), g_ratio is not None, "relaxivity")}
    if representation == "union":
        sub = _union(lines, profiles, r_in, ell, period, box, truth, permeability, relaxivity, glia_spheres)
    else:
        sub = _mesh(lines, tangents, profiles, r_in, r_out, g_ratio is not None, period, box, nsides, truth, walls)
    sub.truth["generation_seconds"] = time.perf_counter() - t0
    return sub


def _waves(shape, tilt, amp, bundle, ell, rbead, wavelength, nb, pq, a, coil_rho, coil_qmin):
    """Whole waves (or helix turns) per fibre period, amplitude and wave number of each fibre's centre line.

    A sinusoid takes ``wavelength`` (default a quarter of the period); a helix of pitch angle theta the shortest
    turn whose curvature k sin(theta) cos(theta) keeps BEND_RADII footprint radii and whose consecutive turns
    stay apart (its radius A = tan(theta) / k grows with the turn, and with it the footprint); a bent sheet a quarter of the period, or longer where its
    curvature k tan(theta) would bend its thickest fibre tighter than BEND_RADII radii.
    """
    nf = len(shape)
    lam_user = None if wavelength is None else float(check_length(wavelength, "wavelength"))
    lam = np.where(shape == 0, ell[bundle] / 4 if lam_user is None else lam_user, 0.0)
    sin_cos = np.sin(tilt) * np.cos(tilt)
    # no shorter than 4 cos(theta) radii (nearly straight fibres would coil tightly on many rings), nor than
    # 2.1 radii / cos(theta): consecutive turns, a turn apart along the axis, are that far apart across the tube
    # (a Bingham coil's azimuth runs fastest where its law is thinnest, q_min: its curvature is sin cos / (lam q))
    lam_helix = np.maximum.reduce([BEND_RADII * rbead * sin_cos / coil_qmin, 4 * rbead * np.cos(tilt),
                                   2.1 * rbead / np.cos(tilt)])
    rmax = np.array([rbead[bundle == i].max() for i in range(nb)])
    lam_bend = 2 * np.pi * BEND_RADII * rmax[bundle] * np.tan(tilt)
    need = np.where((shape == 1) | (shape == 3), lam_helix, np.where(shape == 2, lam_bend, 0.0))
    if lam_user is not None and np.any((shape > 0) & (lam_user < need)):
        raise ValueError(f"wavelength {lam_user:g} m bends dispersed fibres tighter than {BEND_RADII} radii: use a "
                         f"wavelength of at least {need[shape > 0].max():.3g} m, or leave it out")
    if np.any(ell[bundle] < need):
        raise ValueError(f"the fibres are {ell.min():.3g} m long across the box, too short for one wave of "
                         f"{need.max():.3g} m at this dispersion or bend: use more fibres or less dispersion")
    waves = np.ones(nf, dtype=int)
    plain = shape == 0
    waves[plain] = np.maximum(1, np.round(ell[bundle][plain] / lam[plain])).astype(int)
    helix = (shape == 1) | (shape == 3)
    # whole turns no shorter than asked; a turn longer than the fibre's period becomes one turn per period
    waves[helix] = np.maximum(1, np.floor(ell[bundle][helix] / (lam_helix[helix] if lam_user is None else lam_user))
                              ).astype(int)
    # a bent sheet: its fibres' periodic images beside them in the sheet (a lattice vector L, n . L = w) are
    # shifted along the fibre by u . L, so their phase lags k u . L; a phase that grows across the sheet,
    # gamma s, takes the lag up (gamma w = -k u . L mod 2 pi) at the cost of neighbours a little out of step:
    # parallel sinusoids tilted up to theta and out of step by gamma ds keep ds cos(theta) (1 - tan(theta)
    # |gamma| / k) apart. Among the wave counts allowed, the one that loses least (none where u . L / l is
    # rational, as at 90 or 60 degrees).
    gamma = np.zeros(nf)
    squeeze = np.ones(nb)
    p, q = np.array([v[0] for v in pq], float), np.array([v[1] for v in pq], float)
    norm = p**2 + q**2 * a**2  # (l / Ly)^2
    for i in range(nb):
        sel = bundle == i
        if not np.any(shape[sel] == 2):
            continue
        th = float(tilt[sel][0])
        top = int(np.floor(ell[i] / (lam_bend[sel][0] if lam_user is None else lam_user)))
        want = max(1, min(top, 4) if lam_user is None else top)
        ii, jj = _sheet_step(pq[i])
        rho = (p[i] * ii + q[i] * jj * a**2) / norm[i]  # u . L / l
        cand = np.arange(1, top + 1)
        e = cand * rho - np.round(cand * rho)
        eff = math.cos(th) * (1 - math.tan(th) * np.abs(e) * norm[i] / (a * cand))
        best = np.nonzero(eff >= eff.max() - 1e-9)[0]
        m = best[np.argmin(np.abs(cand[best] - want))]
        if eff[m] < 0.3:
            raise ValueError(f"bundle {i}: a bend of {math.degrees(th):g} degrees does not fit this box's lattice "
                             "(neighbouring fibres fall out of step): lower bend or give a wavelength")
        waves[sel] = cand[m]
        squeeze[i] = float(eff[m])
        w_i = ell[i] * a / norm[i]
        gamma[sel] = -2 * np.pi * float(e[m]) / w_i
    k = 2 * np.pi * waves / ell[bundle]
    amp_f = np.where(plain, amp[bundle], np.where(shape == 3, np.tan(tilt) * (2 * np.pi / k) * coil_rho,
                                                  np.tan(tilt) / k))
    return waves, amp_f, k, gamma, squeeze


def _sheet_step(pq):
    """Integers (i, j) with p j - q i = 1: the lattice vector (i Ly, j Lz) steps one sheet period across."""
    p, q = pq
    for i, j in itertools.product(range(-3, 4), repeat=2):
        if p * j - q * i == 1:
            return i, j
    raise AssertionError(f"no sheet step for {pq}")


def watson_tilts(odi: float, n: int, rng: np.random.Generator, max_tilt: float = 75.0):
    """Pitch angles of ``n`` helices whose tangents, weighted by volume, sample a Watson distribution.

    A helix about the axis mu with pitch angle theta has tangents at angle theta from mu, at every azimuth
    equally, over a volume proportional to 1 / cos(theta) (its arc length). Mixing helices whose x = cos^2(theta)
    is drawn from the density proportional to exp(kappa x) on [0, 1] therefore samples the Watson density
    exp(kappa (mu . n)^2) exactly (its polar law is exp(kappa x) / sqrt(x) in x). Pitch angles above
    ``max_tilt`` are cut, and kappa lowered so that the cut law keeps the requested ODI (the same <cos^2>).

    Parameters
    ----------
    odi : float
        Orientation dispersion index 2 / pi arctan(1 / kappa) asked for (0 < odi < 1).
    n : int
        Number of helices.
    rng : numpy.random.Generator
        Random stream.
    max_tilt : float
        Steepest pitch angle in degrees.

    Returns
    -------
    tilts : numpy.ndarray
        (n,) pitch angles in radians.
    info : dict
        ``kappa`` (of the ODI asked for), ``kappa_cut`` (of the cut law drawn from), ``max_tilt`` (degrees),
        ``share_cut`` (the share of the uncut Watson density beyond max_tilt), ``mean_cos2`` (the target).

    Examples
    --------
    >>> import numpy as np, substrates
    >>> tilts, info = substrates.watson_tilts(0.2, 1000, np.random.default_rng(0))
    >>> round(info["kappa"], 3), bool(np.degrees(tilts).max() <= 75)
    (3.078, True)
    """
    if not 0 < odi < 1:
        raise ValueError(f"odi must be between 0 and 1, got {odi!r}")
    kappa = 1 / math.tan(math.pi * odi / 2)
    target = watson_mean_cos2(kappa)
    x0 = math.cos(math.radians(max_tilt))**2
    kc = brentq(lambda kk: _cut_watson_moment(kk, x0, lambda x: x) - target, -60.0, kappa + 1e-9) \
        if _cut_watson_moment(-60.0, x0, lambda x: x) < target else None
    if kc is None:
        raise ValueError(f"odi {odi:g} is too dispersed for pitch angles up to max_tilt={max_tilt:g} degrees: raise "
                         "max_tilt or lower odi")
    uu = rng.uniform(0, 1, n)
    span = 1 - x0
    x = x0 + (span * uu if abs(kc) < 1e-9 else np.log1p(uu * np.expm1(kc * span)) / kc)
    share = _cut_watson_mass(kappa, 0.0, x0) / _cut_watson_mass(kappa, 0.0, 1.0)
    return np.arccos(np.sqrt(np.clip(x, 0, 1))), {"kappa": float(kappa), "kappa_cut": float(kc),
                                                   "max_tilt": float(max_tilt), "share_cut": float(share),
                                                   "mean_cos2": float(target)}


def _bingham_pairs(value, nb: int) -> np.ndarray:
    """(nb, 2) (kappa, beta) per bundle from None, one pair or one pair per bundle (zeros: none)."""
    if value is None:
        return np.zeros((nb, 2))
    v = np.asarray(value, dtype=float)
    if v.shape == (2,):
        v = np.broadcast_to(v, (nb, 2))
    elif v.shape == (2 * nb,):  # pairs one after the other (a config file's flat list)
        v = v.reshape(nb, 2)
    if v.shape != (nb, 2) or not np.all(np.isfinite(v)):
        raise ValueError(f"bingham must be one (kappa, beta) pair or one per bundle ({nb}), got {value!r}")
    for kappa, beta in v:
        if (kappa or beta) and not (kappa > 0 and 0 <= beta <= kappa):
            raise ValueError(f"bingham (kappa, beta) needs kappa > 0 and 0 <= beta <= kappa (beta = 0 is Watson), "
                             f"got ({kappa:g}, {beta:g})")
    return v.astype(float)


def bingham_tilts(kappa: float, beta: float, n: int, rng: np.random.Generator, max_tilt: float = 75.0):
    """Pitch angles of ``n`` coils whose tangents, weighted by volume, sample a Bingham distribution.

    The density exp(kappa (mu . n)^2 + beta (e . n)^2), in the polar angle theta from mu and the azimuth phi
    from e, is exp(kappa cos^2 theta) exp(beta sin^2 theta cos^2 phi). A coil of constant pitch angle theta whose
    azimuth passes each phi at a pace inversely proportional to exp(beta sin^2 theta cos^2 phi) (it lingers where
    the law is dense) samples that conditional law exactly over each turn; its volume is proportional to
    1 / cos(theta), so x = cos^2 theta is drawn from exp(kappa x) g(x), g(x) = exp(a) I0(a) with
    a = beta (1 - x) / 2 (the azimuthal integral), cut at ``max_tilt``. With beta = 0 this is
    :func:`watson_tilts`' law without its kappa adjustment.

    Parameters
    ----------
    kappa, beta : float
        Concentrations, kappa > 0, 0 <= beta <= kappa.
    n : int
        Number of coils.
    rng : numpy.random.Generator
        Random stream.
    max_tilt : float
        Steepest pitch angle in degrees.

    Returns
    -------
    tilts : numpy.ndarray
        (n,) pitch angles in radians.
    info : dict
        ``kappa``, ``beta``, ``max_tilt`` (degrees), ``share_cut`` (of the uncut density beyond max_tilt),
        ``odi`` (2 / pi arctan(1 / kappa)) and ``dispersion_anisotropy`` (2 / pi arctan(beta / kappa)).

    Examples
    --------
    >>> import numpy as np, substrates
    >>> tilts, info = substrates.bingham_tilts(8.0, 4.0, 500, np.random.default_rng(0))
    >>> bool(np.degrees(tilts).max() <= 75), round(info["dispersion_anisotropy"], 3)
    (True, 0.295)
    """
    from scipy.special import i0e
    x = np.linspace(0.0, 1.0, 20001)
    a = beta * (1 - x) / 2
    dens = np.exp(kappa * (x - 1) + 2 * a) * i0e(a)  # exp(kappa x) exp(a) I0(a), scaled by exp(-kappa)
    x0 = math.cos(math.radians(max_tilt))**2
    keep = x >= x0
    cdf = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(x) * keep[1:])])
    u = rng.uniform(0, 1, n) * cdf[-1]
    xs = np.interp(u, cdf, x)
    y = np.sqrt(x)  # the ODF's mass in x is dens / sqrt(x) dx = 2 dens dy: integrate in y = sqrt(x)
    m_all = np.trapezoid(dens, y)
    m_cut = np.trapezoid(np.where(keep, dens, 0.0), y)
    return np.arccos(np.sqrt(np.clip(xs, 0, 1))), {
        "kappa": float(kappa), "beta": float(beta), "max_tilt": float(max_tilt),
        "share_cut": float(1 - m_cut / m_all), "odi": float(2 / math.pi * math.atan(1 / kappa)),
        "dispersion_anisotropy": float(2 / math.pi * math.atan(beta / kappa))}


def _bingham_coil(theta: float, beta: float, grid: int = 4096) -> dict:
    """One turn of a coil of pitch angle theta whose azimuth phi (from the in-plane normal) has the law
    q(phi) proportional to exp(beta sin^2 theta cos^2 phi): on a grid of the turn fraction s, phi(s) (the
    quantiles of q), the transverse path D(s) per unit turn length (the integral of (cos phi, sin phi), closed
    and centred), its radius rho and the least density q_min (normalised over 2 pi)."""
    phi = np.linspace(0.0, 2 * np.pi, grid + 1)
    q = np.exp(beta * math.sin(theta)**2 * (np.cos(phi)**2 - 1))
    q /= np.trapezoid(q, phi)
    cdf = np.concatenate([[0.0], np.cumsum((q[1:] + q[:-1]) / 2 * np.diff(phi))])
    cdf /= cdf[-1]
    sgrid = np.linspace(0.0, 1.0, grid + 1)
    ph = np.interp(sgrid, cdf, phi)
    w = np.column_stack([np.cos(ph), np.sin(ph)])
    D = np.vstack([[0.0, 0.0], np.cumsum((w[1:] + w[:-1]) / 2 * np.diff(sgrid)[:, None], axis=0)])
    D -= sgrid[:, None] * D[-1]  # closes exactly (the drift is rounding: q is symmetric)
    D -= D[:-1].mean(axis=0)
    return {"s": sgrid, "phi": ph, "D": D, "rho": float(np.max(np.linalg.norm(D, axis=1))),
            "qmin": float(q.min())}


def watson_mean_cos2(kappa: float) -> float:
    """<(mu . n)^2> of the Watson distribution of concentration ``kappa`` (> 0)."""
    return 1 / (2 * math.sqrt(kappa) * dawsn(math.sqrt(kappa))) - 1 / (2 * kappa)


def _cut_watson_mass(kappa, lo, hi):
    """Integral of exp(kappa (x - 1)) / sqrt(x) over [lo, hi] (x = cos^2 of the polar angle)."""
    from scipy.integrate import quad
    # x = y^2 removes the 1 / sqrt(x) singularity
    return 2 * quad(lambda y: math.exp(kappa * (y * y - 1)), math.sqrt(lo), math.sqrt(hi))[0]


def cut_watson_moment(kappa: float, max_tilt: float, f) -> float:
    """E[f(cos^2 theta)] under the Watson density with polar angles cut at ``max_tilt``.

    The law :func:`watson_tilts` samples: density proportional to exp(kappa cos^2 theta) on the sphere, for
    polar angles theta (from the mean axis) up to ``max_tilt``.

    Parameters
    ----------
    kappa : float
        Concentration (negative: a girdle).
    max_tilt : float
        Largest polar angle in degrees.
    f : callable
        Maps x = cos^2 theta (a float) to a float.

    Returns
    -------
    float
        The expectation of f(x).

    Examples
    --------
    >>> import substrates
    >>> round(substrates.cut_watson_moment(0.0, 90.0, lambda x: x), 6)   # isotropic: <cos^2> = 1/3
    0.333333
    """
    return _cut_watson_moment(kappa, math.cos(math.radians(max_tilt))**2, f)


def _cut_watson_moment(kappa, x0, f):
    from scipy.integrate import quad
    num = 2 * quad(lambda y: f(y * y) * math.exp(kappa * (y * y - 1)), math.sqrt(x0), 1.0)[0]
    return num / _cut_watson_mass(kappa, x0, 1.0)


def _glia(xs, bundle, Rs, u, n, ell, box, rng):
    """Spheres of the glial cells: a soma on its column (at a random place along it) and two processes along
    the column, chains of spheres of radius 0.3 Rs half their radius apart, reaching 2 Rs beyond the soma.
    Everything stays within Rs of the column's axis, the footprint the sheet was packed with."""
    rp, reach = 0.3 * Rs, 2.0 * Rs
    if np.any(Rs + reach + rp >= ell[bundle] / 2):
        raise ValueError(f"glia of radius {Rs:g} m with their processes are longer than half the fibres' period "
                         f"({ell.min():.3g} m): lower glia_radius or use more fibres")
    along = np.arange(Rs - rp, Rs + reach + 1e-12 * Rs, 0.5 * rp)
    rel = np.concatenate([[0.0], along, -along])
    rad = np.concatenate([[Rs], np.full(2 * len(along), rp)])
    cs, labels, centres = [], [], []
    for g in range(len(xs)):
        i = bundle[g]
        base = xs[g, 0] * np.array([1.0, 0, 0]) + xs[g, 1] * n[i] + rng.uniform(0, ell[i]) * u[i]
        cs.append(np.mod(base[None, :] + rel[:, None] * u[i][None, :], box))
        labels.append(np.full(len(rel), g))
        centres.append(np.mod(base, box))
    info = {"n_cells": int(len(xs)), "soma_radius": float(Rs), "process_radius": rp, "process_reach": reach,
            "spheres_per_cell": int(len(rel)), "somata": np.asarray(centres).tolist(), "bundle": bundle.tolist()}
    return np.vstack(cs), np.tile(rad, len(xs)), np.concatenate(labels), info


def _walls(value, n: int, myelin: bool, what: str):
    """One value per component (n sheaths, then n axons) from {"inner": ..., "outer": ...}; else as given."""
    if isinstance(value, dict) and not myelin:
        raise ValueError(f"{what} as a table {{'inner': ..., 'outer': ...}} needs myelin (g_ratio=...); without it "
                         f"give one value in m/s")
    return per_surface(value, n, what)


def _per_bundle(value, nb: int, name: str, length: bool = False, allow_zero: bool = False) -> np.ndarray:
    v = np.asarray(value, dtype=float).ravel()
    if v.size not in (1, nb) or not np.all(np.isfinite(v)) or np.any(v < 0) or (not allow_zero and np.any(v == 0)):
        raise ValueError(f"{name} must be one {'length in m' if length else 'positive number'} or one per bundle "
                         f"({nb}), got {value!r}")
    if length:
        check_length(v[v > 0] if allow_zero else v, name, allow_zero=allow_zero)
    return np.broadcast_to(v, (nb,)).astype(float)


def _axial(d):
    """Angles in degrees wrapped to (-90, 90] (directions without a sign)."""
    return (np.asarray(d) + 90.0) % 180.0 - 90.0


def lattice_directions(angles, tolerance: float = 0.5):
    """Box aspect Lz / Ly and lattice directions (p, q) of the yz torus closest to the requested directions.

    Parameters
    ----------
    angles : array_like
        Requested directions in the crossing plane in degrees (only differences matter).
    tolerance : float
        Largest error in degrees allowed on a relative direction.

    Returns
    -------
    a : float
        Lz / Ly.
    pq : list of (int, int)
        Lattice direction of each bundle: it runs along (0, p Ly, q Lz).
    realised : numpy.ndarray
        Realised direction of each bundle in degrees from z towards y.
    error : float
        Largest error in degrees after the best common rotation.
    """
    ang = _axial(np.asarray(angles, dtype=float))
    nb = len(ang)
    if nb == 1:
        return 1.0, [(0, 1)], np.zeros(1), 0.0
    if nb == 2:
        theta = abs(float(_axial(ang[1] - ang[0])))
        if theta < 1.0:
            raise ValueError(f"the two bundles are {theta:g} degrees apart: that is one bundle (angles=(0,)); "
                             "crossing angles from 1 to 90 degrees are built")
        a = 1.0 / math.tan(math.radians(theta / 2))
        real = np.degrees(np.arctan2([1.0, 1.0], [a, -a]))
        return a, [(1, 1), (1, -1)], _axial(real), 0.0

    def err_of(a, combo):
        th = np.degrees(np.arctan2([v[0] for v in combo], [v[1] * a for v in combo]))
        d = np.radians(2 * (th - ang))
        psi = math.degrees(math.atan2(np.sin(d).mean(), np.cos(d).mean())) / 2
        return float(np.max(np.abs(_axial(th - ang - psi)))), _axial(th)

    best = None
    grid = np.geomspace(0.15, 7.0, 600)
    for combo in itertools.permutations(LATTICE, nb):
        pc = np.array([v[0] for v in combo], dtype=float)
        qc = np.array([v[1] for v in combo], dtype=float)
        th = np.degrees(np.arctan2(pc[None, :], qc[None, :] * grid[:, None]))  # (grid, nb)
        d = np.radians(2 * (th - ang[None, :]))
        psi = np.degrees(np.arctan2(np.sin(d).mean(axis=1), np.cos(d).mean(axis=1))) / 2
        errs = np.max(np.abs(_axial(th - ang[None, :] - psi[:, None])), axis=1)
        m = int(np.argmin(errs))
        if errs[m] > tolerance + 5.0 and best is not None:
            continue  # far from any solution: not worth refining
        lo, hi = grid[max(m - 1, 0)], grid[min(m + 1, len(grid) - 1)]
        res = minimize_scalar(lambda x: err_of(x, combo)[0], bounds=(lo, hi), method="bounded",
                              options={"xatol": 1e-10})
        e = float(res.fun)
        cost = e + 1e-3 * sum(v[0]**2 + v[1]**2 for v in combo)  # among equals, the shortest fibres
        if best is None or cost < best[0] - 1e-12:
            best = (cost, e, float(res.x), combo)
    _, e, a, combo = best
    if e > tolerance:
        raise ValueError(f"directions {list(np.asarray(angles).ravel())} degrees: the nearest that fibres closing in a "
                         f"periodic box realise is {e:.2f} degrees off (angle_tolerance={tolerance}); allow a larger "
                         "angle_tolerance or choose angles such as (0, 60, 120) or (0, 45, 90)")
    return a, list(combo), err_of(a, combo)[1], e


def _watson_odi(mean_cos2: float) -> float:
    """ODI = 2/pi arctan(1/kappa) of the Watson distribution whose <(mu . n)^2> is ``mean_cos2``."""
    if mean_cos2 >= 1 - 1e-12:
        return 0.0
    if mean_cos2 <= 1 / 3 + 1e-9:
        return 1.0

    kappa = brentq(lambda kk: watson_mean_cos2(kk) - mean_cos2, 1e-6, 1e8)
    return float(2 / math.pi * math.atan(1 / kappa))


def real_sh(order: int, directions: np.ndarray) -> np.ndarray:
    """Real orthonormal spherical harmonics of even degree l = 0, 2, ..., ``order`` at unit ``directions``.

    Columns in the order (l, m) for m = -l..l; m < 0: sqrt(2) (-1)^m Im Y_l^|m|, m = 0: Y_l^0, m > 0:
    sqrt(2) (-1)^m Re Y_l^m (Y_l^m with the Condon-Shortley phase), so the coefficients of an
    axially symmetric function about z are non-zero only at m = 0 (45 columns to l = 8).

    Parameters
    ----------
    order : int
        Highest even degree l_max.
    directions : array_like
        (K, 3) unit vectors.

    Returns
    -------
    numpy.ndarray
        (K, (l_max + 1)(l_max + 2) / 2) values of the basis functions.

    Examples
    --------
    >>> import numpy as np, substrates
    >>> substrates.real_sh(8, np.array([[0.0, 0.0, 1.0]])).shape
    (1, 45)
    """
    from scipy.special import sph_harm_y
    d = np.asarray(directions, dtype=float)
    theta = np.arccos(np.clip(d[:, 2], -1, 1))
    phi = np.arctan2(d[:, 1], d[:, 0])
    cols = []
    for l in range(0, order + 1, 2):
        for m in range(-l, l + 1):
            y = sph_harm_y(l, abs(m), theta, phi)
            if m < 0:
                cols.append(math.sqrt(2) * (-1)**m * y.imag)
            elif m == 0:
                cols.append(y.real)
            else:
                cols.append(math.sqrt(2) * (-1)**m * y.real)
    return np.column_stack(cols)


def orientation_distribution(tangents: np.ndarray, weights: np.ndarray) -> dict:
    """The orientation distribution of weighted fibre tangents: direction, scatter, Watson ODI, SH to l = 8.

    Parameters
    ----------
    tangents : numpy.ndarray
        (K, 3) tangent vectors (any length, any sign).
    weights : numpy.ndarray
        (K,) weights (the volume each tangent stands for, m^3).

    Returns
    -------
    dict
        ``direction`` (unit 3-vector, the scatter tensor's main axis), ``scatter`` (the 3 x 3 mean of
        n n^T), ``mean_cos2`` (its largest eigenvalue), ``odi`` (Watson ODI with that <cos^2>),
        ``sh`` (the 45 real SH coefficients c_lm = E[Y_lm(n)] of the antipodally symmetric distribution, so
        that ODF(n) = sum c_lm Y_lm(n) integrates to 1; basis of :func:`real_sh`).
    """
    t = np.asarray(tangents, dtype=float)
    t = t / np.linalg.norm(t, axis=1, keepdims=True)
    wgt = np.asarray(weights, dtype=float) / float(np.sum(weights))
    T = (t * wgt[:, None]).T @ t
    ev, evec = np.linalg.eigh(T)
    mu = evec[:, -1] * (1 if evec[np.argmax(np.abs(evec[:, -1])), -1] > 0 else -1)
    sh = wgt @ real_sh(SH_ORDER, t)
    return {"direction": mu, "scatter": T.tolist(), "mean_cos2": float(ev[-1]),
            "odi": _watson_odi(float(ev[-1])), "sh_order": SH_ORDER, "sh": sh.tolist()}


def _bundle_truth(tangents, profiles, bundle, r_in, r_out, g, ell, box, nb, ang, realised, u, amp, waves,
                  myelin: bool) -> list[dict]:
    """Per bundle: volumes and the orientation distribution of the smooth centre lines, from their exact
    tangents dc/dt at the rings (K equal steps of t over a period: the trapezoidal rule of a smooth periodic
    function, exact for helices and straight fibres, within ~1e-7 for sinusoids), weighted by the volume each
    stands for."""
    V = float(np.prod(box))
    out = []
    for i in range(nb):
        idx = np.nonzero(bundle == i)[0]
        tan, wts, vol_in, vol_out = [], [], 0.0, 0.0
        for j in idx:
            tg = tangents[j]
            length = np.linalg.norm(tg, axis=1) * (ell[i] / len(tg)) * profiles[j]**2  # beads: volume per step
            tan.append(tg)
            wts.append(np.pi * r_in[j]**2 * length)
            vol_in += np.pi * r_in[j]**2 * float(length.sum())
            vol_out += np.pi * r_out[j]**2 * float(length.sum())
        odf = orientation_distribution(np.vstack(tan), np.concatenate(wts))
        out.append({"bundle": i, "angle_requested": float(ang[i]), "angle_realised": float(realised[i]),
                    "lattice_direction": u[i].tolist(), "direction": odf.pop("direction"),
                    "n_fibres": int(len(idx)), "fibre_period": float(ell[i]),
                    "mean_inner_radius": float(r_in[idx].mean()),
                    "radius_mean_volume_weighted": float(np.sum(r_in[idx]**6) / np.sum(r_in[idx]**2)) ** 0.25,
                    "icvf": vol_in / V, "myelin_fraction": (vol_out - vol_in) / V if myelin else 0.0,
                    "g_ratio_mean": float(g[idx].mean()) if myelin else None,
                    "amplitude": float(amp[idx].mean()), "waves_per_period": int(np.round(waves[idx].mean())),
                    **odf})
    return out


def _mesh(lines, tangents, profiles, r_in, r_out, myelin, period, box, nsides, truth, walls) -> MeshSubstrate:
    bundle = np.asarray(truth["bundle_of_fibre"])
    shapes = truth["fibre_shapes"]
    verts, faces, nv = [], [], 0
    radii = [r_out, r_in] if myelin else [r_in]
    for rr in radii:  # components in face order: sheaths (depth 0), then axons (depth 1)
        for j, c in enumerate(lines):
            v, f = periodic_tube(c, tangents[j], area_preserving_radius(rr[j], nsides) * profiles[j],
                                 period[bundle[j]], nsides,
                                 frame="transported" if shapes[j] in ("helix", "coil") else "fixed")
            verts.append(v)
            faces.append(f + nv)
            nv += len(v)
    truth = dict(truth)
    truth["polygon_sides"] = nsides
    truth["mesh_radius_error"] = polygon_radius_error(nsides)
    sub = mesh_substrate(np.concatenate(verts), np.concatenate(faces), box=box, **walls,
                         description={"factory": "crossing_bundles", "seed": truth["seed"],
                                      "angles": truth["angles_requested"]},
                         truth=truth, region_labels=("myelin", "intra") if myelin else None)
    n = len(lines)
    vol = np.asarray(sub.component_volume)
    V = float(np.prod(box))
    sub.truth["icvf_mesh"] = float(np.sum(vol[n:] if myelin else vol) / V)
    sub.truth["mesh_volume_error"] = sub.truth["icvf_mesh"] / truth["icvf_exact"] - 1
    return sub


def _union(lines, profiles, r_in, ell, period, box, truth, permeability, relaxivity, glia) -> SphereUnion:
    """Spheres along each centre line a quarter radius apart, of radius sqrt(r^2 + d^2 / 12) so that the mean
    cross-section of the union equals the tube's (their surface stands out of the tube by r / 384 at most)."""
    bundle = np.asarray(truth["bundle_of_fibre"])
    cs, rs, fs = [], [], []
    for j, c in enumerate(lines):
        closed = np.vstack([c, c[:1] + period[bundle[j]]])
        seg = np.diff(closed, axis=0)
        length = np.linalg.norm(seg, axis=1)
        s = np.concatenate([[0.0], np.cumsum(length)])
        m = max(8, int(math.ceil(s[-1] / (0.25 * r_in[j] * profiles[j].min()))))
        d = s[-1] / m
        si = np.arange(m) * d
        pts = np.column_stack([np.interp(si, s, closed[:, a]) for a in range(3)])
        cs.append(pts)
        r = r_in[j] * np.interp(si, s, np.append(profiles[j], profiles[j][0]))
        rs.append(np.sqrt(r**2 + d**2 / 12))
        fs.append(np.full(m, j))
    truth = dict(truth)
    truth["sphere_spacing_over_radius"] = 0.25
    if glia is not None:
        gc, gr, gl, info = glia
        cs.append(gc)
        rs.append(gr)
        fs.append(gl + len(lines))
        vol, se = sphere_union(gc, gr, box).union_volume()
        V = float(np.prod(box))
        truth["glia"] = {**info, "fibre_labels": (np.unique(gl) + len(lines)).tolist(), "volume_fraction": vol / V,
                         "volume_fraction_stderr": se / V}
    return sphere_union(np.vstack(cs), np.concatenate(rs), box, fibre=np.concatenate(fs),
                        description={"factory": "crossing_bundles", "seed": truth["seed"],
                                     "angles": truth["angles_requested"], "representation": "union"},
                        truth=truth, permeability=permeability, relaxivity=relaxivity)
