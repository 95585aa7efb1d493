"""Disk packings in a periodic square (the cross-sections of parallel fibres), and their statistics.

Three arrangements:

* ``"random"`` (default): an overlap-free start (L-BFGS minimisation of the
  overlaps of the disks grown in stages) relaxed by event-chain Monte Carlo
  for hard disks (Bernard, Krauth & Wilson 2009) until the structure stops
  changing, so that the arrangement is a sample of random packings at that
  fraction (an equilibrium hard-disk fluid) and not an imprint of the
  initial overlaps: overlap minimisation alone leaves every pair that once
  overlapped exactly touching, in chains and clusters. Near jamming the
  relaxation slows; what was reached is reported.
* ``"clustered"``: Metropolis Monte Carlo with a square-well attraction of
  depth ``clustering`` (in kT) between surfaces closer than 0.2 mean radii
  (:data:`WELL_WIDTH`): bundles for those who want them (0 gives the random
  arrangement).
* ``"hexagonal"``: a hexagonal lattice (equal or mildly polydisperse radii,
  assigned to sites at random).

Every pair keeps at least ``min_gap`` between surfaces: the Monte Carlo moves
the disks inflated by ``min_gap / 2``. :func:`packing_statistics` measures
what a model developer asks of a packing: the nearest-neighbour gaps, the pair
correlation g(r), the in-plane anisotropy of neighbour directions (fabric
tensor).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy.optimize import minimize
from scipy.spatial import cKDTree

from sequences import check_count, check_fraction

from .base import check_length

#: version of the packing algorithm, recorded in the ground truth: a change makes other packings per seed
PACKING_VERSION = ("2: overlap-free L-BFGS start, then hard-core Monte Carlo (event chains for disks, Metropolis "
                   "translations for dispersed capsules; square-well Metropolis for clustered disks)")
HEXAGONAL_MAX = math.pi / (2 * math.sqrt(3))
#: densest area fraction the random arrangement is asked for (random close packing of disks is ~0.84-0.85)
MAX_DISK_FRACTION = 0.85
ARRANGEMENTS = ("random", "clustered", "hexagonal")
#: range of the clustered arrangement's attraction: surface gaps below this fraction of the mean radius bond
WELL_WIDTH = 0.2


def pack_disks(radii, fraction: float, seed: int = 0, *, min_gap: float | None = None, arrangement: str = "random",
               clustering: float = 0.0, sweeps: int | None = None, return_info: bool = False):
    """Non-overlapping disks with the given radii in a square periodic box at an area fraction.

    Parameters
    ----------
    radii : array_like
        (P,) radii in m (use effective footprints for undulating axons).
    fraction : float
        Area fraction sum(pi r^2) / L^2.
    seed : int
        Seed of the start and of the Monte Carlo.
    min_gap : float, optional
        Smallest surface-to-surface gap in m between two disks (default: 2 % of the mean radius, the
        extracellular sheet a packing keeps between touching fibres; 0 gives hard disks).
    arrangement : {"random", "clustered", "hexagonal"}
        See the module docstring.
    clustering : float
        Square-well depth in kT for ``"clustered"`` (1-3 makes bundles; 0: random).
    sweeps : int, optional
        Monte Carlo sweeps (each moves every disk about one chain); default: until the nearest-gap
        statistics stop changing (at least 200, at most 5000).
    return_info : bool
        Also return a dict of what was done (sweeps, convergence, arrangement, version).

    Returns
    -------
    centres : numpy.ndarray
        (P, 2) disk centres in m, in [0, L).
    L : float
        Box side in m.
    info : dict
        Only with ``return_info``.

    Raises
    ------
    ValueError
        If the fraction is impossible (above the hexagonal maximum 0.9069), above what random packing reaches
        (0.85), or was not reached; the message says what was reached.

    Examples
    --------
    >>> import numpy as np
    >>> from substrates import pack_disks
    >>> x, L = pack_disks(np.full(100, 1e-6), 0.5, seed=0)   # doctest: +SKIP
    """
    r = check_length(radii, "radii").ravel()
    f = check_fraction(fraction, "fraction")
    if arrangement not in ARRANGEMENTS:
        raise ValueError(f"arrangement must be one of {ARRANGEMENTS}, got {arrangement!r}")
    gap = 0.02 * float(r.mean()) if min_gap is None else float(check_length(min_gap, "min_gap", allow_zero=True))
    clustering = float(clustering)
    if not (math.isfinite(clustering) and clustering >= 0):
        raise ValueError(f"clustering is a square-well depth in kT (>= 0), got {clustering!r}")
    if clustering > 0 and arrangement != "clustered":
        raise ValueError(f"clustering={clustering!r} acts only with arrangement='clustered' (got arrangement="
                         f"{arrangement!r}): pass arrangement='clustered', or leave clustering at 0")
    if not 0 < f < HEXAGONAL_MAX:
        raise ValueError(f"an area fraction of {f} is impossible: no packing of disks exceeds "
                         f"pi/(2 sqrt 3) = {HEXAGONAL_MAX:.4f}")
    if arrangement == "hexagonal":
        x, L = _hexagonal(r, f, gap, seed)
        info = {"arrangement": "hexagonal", "sweeps": 0}
        return (x, L, _with_version(info, gap)) if return_info else (x, L)
    if f > MAX_DISK_FRACTION:
        raise ValueError(f"an area fraction of {f} is beyond random close packing (~0.84-0.85) that this generator "
                         f"reaches; ask for at most {MAX_DISK_FRACTION}")
    L = math.sqrt(np.sum(np.pi * r**2) / f)
    R = r + 0.5 * gap
    rng = np.random.default_rng(seed)
    x = _overlap_free(R, L, rng, f, gap)
    info = _relax(x, R, L, rng, arrangement, clustering, sweeps)
    return (x, L, _with_version(info, gap)) if return_info else (x, L)


def _with_version(info: dict, gap: float) -> dict:
    return {**info, "min_gap": gap, "algorithm_version": PACKING_VERSION}


def _overlap_free(R: np.ndarray, L: float, rng: np.random.Generator, target: float, gap: float,
                  max_rounds: int = 60) -> np.ndarray:
    """An overlap-free start: L-BFGS on the summed squared overlaps, the disks grown to full size in stages.

    ``target`` is the area fraction asked for (of the true disks) and ``gap`` the min_gap in m, for the
    message; ``R`` holds the radii widened by half the gap."""
    x = rng.uniform(0, L, (len(R), 2))
    rmax = float(R.max())
    for scale in (0.7, 0.8, 0.9, 0.95, 1.0):
        rr = R * scale

        def energy(flat):
            p = np.mod(flat.reshape(-1, 2), L)
            i, j, d, dist, over = _overlapping_pairs(p, rr, L)
            if not len(i):
                return 0.0, np.zeros_like(flat)
            gvec = (-2 * over / np.maximum(dist, 1e-30))[:, None] * d
            grad = np.zeros_like(p)
            np.add.at(grad, i, gvec)
            np.add.at(grad, j, -gvec)
            return float(np.sum(over**2)), grad.ravel()

        for _ in range(max_rounds):
            res = minimize(energy, x.ravel(), jac=True, method="L-BFGS-B",
                           options={"maxiter": 2000, "gtol": 1e-30, "ftol": 1e-30})
            x = np.mod(res.x.reshape(-1, 2), L)
            if energy(x.ravel())[0] <= 0.0:
                break
            x += rng.normal(scale=1e-3 * rmax, size=x.shape)  # shake out of a jammed corner
        else:
            f = float(np.sum(np.pi * R**2) / L**2)
            raise ValueError(f"could not pack the disks at area fraction {target:g} without overlaps: with "
                             f"min_gap = {gap:g} m between surfaces they must cover {f:.3f} of the plane, and got "
                             f"stuck at {f * scale**2:.3f}; lower the fraction, the min_gap, or use more, less "
                             "polydisperse disks")
    # the overlap energy stops at zero, i.e. at contact: back off by a hair so every pair is strictly apart
    _separate(x, R * (1 + 1e-9), L)
    return np.ascontiguousarray(x)


def _separate(x: np.ndarray, R: np.ndarray, L: float) -> None:
    """Push apart the few pairs that rounding left overlapping (in place)."""
    for _ in range(100):
        i, j, d, dist, over = _overlapping_pairs(np.mod(x, L), R, L)
        if not len(i):
            return
        push = (0.5 * over / np.maximum(dist, 1e-30))[:, None] * d
        np.add.at(x, i, push)
        np.add.at(x, j, -push)
        x[:] = np.mod(x, L)


def _overlapping_pairs(p: np.ndarray, R: np.ndarray, L: float):
    """Pairs of disks at p (in [0, L)^2, periodic) that overlap: indices i, j, minimum-image separation
    d = p_i - p_j, its length and the overlap R_i + R_j - |d| (> 0)."""
    pairs = cKDTree(p, boxsize=L).query_pairs(2 * float(R.max()), output_type="ndarray")
    if not len(pairs):
        pairs = np.zeros((0, 2), dtype=np.intp)
    i, j = pairs[:, 0], pairs[:, 1]
    d = p[i] - p[j]
    d -= L * np.round(d / L)
    dist = np.sqrt((d**2).sum(1))
    over = R[i] + R[j] - dist
    m = over > 0
    return i[m], j[m], d[m], dist[m], over[m]


# ------------------------------------------------------------------------------------- Monte Carlo
def event_chain_sweeps(x: np.ndarray, radii, L: float, sweeps: int, seed: int = 0, min_gap: float = 0.0) -> None:
    """Continue a hard-disk packing by ``sweeps`` event-chain Monte Carlo sweeps, in place.

    Samples of an equilibrated packing a few sweeps apart are (nearly) independent configurations of the
    hard-disk fluid: averages over them (pair correlation, gaps) converge as over independent packings.

    Parameters
    ----------
    x : numpy.ndarray
        (P, 2) centres in [0, L), changed in place.
    radii : array_like
        (P,) radii in m.
    L : float
        Square box side in m.
    sweeps : int
    seed : int
    min_gap : float
        Gap kept between surfaces (m), as when packed.
    """
    R = np.ascontiguousarray(check_length(radii, "radii").ravel() + 0.5 * float(min_gap))
    if 4.0 * float(R.max()) > L:
        raise ValueError("the box is narrower than four largest radii: too small for the Monte Carlo")
    m = max(1, int(L // (2.0 * float(R.max()))))
    _event_chains(x, R, L, L / m, m, check_count(sweeps, "sweeps", least=0), 2.0 * L / math.sqrt(len(R)),
                  np.random.default_rng(seed).integers(1, 2**62))


def _relax(x, R, L, rng, arrangement, clustering, sweeps) -> dict:
    """Monte Carlo from the start ``x`` (in place) until converged or ``sweeps``; returns what was done."""
    n = len(R)
    if 4.0 * float(R.max()) > L:
        # the pair distances below use the nearest periodic image across the move, exact while a pair's contact
        # distance is below half the box: a box this small is left as the start packed it
        return {"arrangement": arrangement, "clustering": 0.0, "sweeps": 0, "converged": False,
                "note": "box narrower than four largest radii: no Monte Carlo relaxation"}
    m = max(1, int(L // (2.0 * float(R.max()))))  # cells at least one largest diameter wide
    h = L / m
    spacing = L / math.sqrt(n)
    key = rng.integers(1, 2**62)
    block = 50
    fixed = sweeps is not None
    total, history = 0, []
    max_sweeps = check_count(sweeps, "sweeps", least=0) if fixed else 5000
    while total < max_sweeps:
        nb = min(block, max_sweeps - total)
        if arrangement == "clustered" and clustering > 0:
            _metropolis(x, R, L, h, m, nb, 0.25 * float(np.mean(R)), clustering, WELL_WIDTH * float(np.mean(R)),
                        key + total)
        else:
            _event_chains(x, R, L, h, m, nb, 2.0 * spacing, key + total)
        total += nb
        gaps = nearest_gaps(x, R, L)
        history.append((float(np.median(gaps)), float(np.quantile(gaps, 0.1))))
        least = 1000 if arrangement == "clustered" and clustering > 0 else 200  # bundles form slowly
        if not fixed and total >= least and len(history) >= 6:
            # converged when the median and 10 % gaps of the last blocks fluctuate around a level instead of
            # drifting: the later half differs from the earlier by less than 5 % or than their own scatter
            last = np.array(history[-6:])
            drift = np.abs(last[3:].mean(axis=0) - last[:3].mean(axis=0))
            scatter = 2.0 * last.std(axis=0) / math.sqrt(3)
            if np.all(drift <= np.maximum(0.05 * np.abs(last).mean(axis=0), scatter)):
                break
    return {"arrangement": arrangement, "clustering": clustering if arrangement == "clustered" else 0.0,
            "sweeps": total, "converged": bool(fixed or total < max_sweeps)}


@njit(cache=True)
def _xorshift(s):
    s ^= (s << np.uint64(13)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    s ^= s >> np.uint64(7)
    s ^= (s << np.uint64(17)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    return s, (s >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def _build_cells(x, L, h, m):
    n = x.shape[0]
    head = np.full(m * m, -1, dtype=np.int64)
    nxt = np.full(n, -1, dtype=np.int64)
    prv = np.full(n, -1, dtype=np.int64)
    cell = np.zeros(n, dtype=np.int64)
    for i in range(n):
        c = (min(int(x[i, 0] / h), m - 1)) * m + min(int(x[i, 1] / h), m - 1)
        cell[i] = c
        nxt[i] = head[c]
        if head[c] >= 0:
            prv[head[c]] = i
        head[c] = i
    return head, nxt, prv, cell


@njit(cache=True)
def _move_cell(i, x, h, m, head, nxt, prv, cell):
    c = (min(int(x[i, 0] / h), m - 1)) * m + min(int(x[i, 1] / h), m - 1)
    if c == cell[i]:
        return
    # unlink from the old cell, link at the head of the new one
    if prv[i] >= 0:
        nxt[prv[i]] = nxt[i]
    else:
        head[cell[i]] = nxt[i]
    if nxt[i] >= 0:
        prv[nxt[i]] = prv[i]
    cell[i] = c
    prv[i] = -1
    nxt[i] = head[c]
    if head[c] >= 0:
        prv[head[c]] = i
    head[c] = i


@njit(cache=True)
def _wrapd(d, L):
    if d >= 0.5 * L:
        return d - L
    if d < -0.5 * L:
        return d + L
    return d


@njit(cache=True)
def _event_chains(x, R, L, h, m, n_sweeps, chain, key):
    """Event-chain Monte Carlo for hard disks: straight chains along +x and +y in turn (Bernard et al. 2009).

    A chain moves one disk until it touches another, then the rest of the chain length moves that one, until
    the length is spent; each event looks only at the cells the move can reach, at most one cell a time.
    """
    n = x.shape[0]
    head, nxt, prv, cell = _build_cells(x, L, h, m)
    s = np.uint64(key)
    Rmax = 0.0
    for i in range(n):
        Rmax = max(Rmax, R[i])
    for sweep in range(n_sweeps):
        for c in range(n):
            s, u = _xorshift(s)
            i = min(int(u * n), n - 1)
            ax = (sweep * n + c) % 2  # alternate +x and +y chains
            oth = 1 - ax
            left = chain
            stalls = 0
            # a ring of (nearly) touching disks around the box could pass the chain round for ever: a chain of
            # tiny events counts as spent
            while left > 0.0 and stalls < 4 * n:
                step = min(left, h)
                best = step
                bj = -1
                ci = int(x[i, ax] / h)
                cj = int(x[i, oth] / h)
                reach = int(math.ceil((step + 2.0 * Rmax) / h)) + 1
                for da in range(-1, reach + 1):
                    for db in range(-1, 2):
                        a = (ci + da) % m
                        b = (cj + db) % m
                        cc = a * m + b if ax == 0 else b * m + a
                        j = head[cc]
                        while j >= 0:
                            if j != i:
                                dy = _wrapd(x[j, oth] - x[i, oth], L)
                                sig = R[i] + R[j]
                                if abs(dy) < sig:
                                    # forward distance along the chain, in [0, L): not the minimum image, which
                                    # would call a disk more than L / 2 ahead "behind"
                                    dx = (x[j, ax] - x[i, ax]) % L
                                    c = math.sqrt(sig * sig - dy * dy)
                                    t = dx - c
                                    if t < 0.0:
                                        # touching up to rounding (just ahead), or just behind: then the hit is
                                        # one box further on
                                        t = 0.0 if dx < 0.5 * L else dx + L - c
                                    if t < best:
                                        best = t
                                        bj = j
                            j = nxt[j]
                x[i, ax] = (x[i, ax] + best) % L
                _move_cell(i, x, h, m, head, nxt, prv, cell)
                left -= best
                stalls = stalls + 1 if best < 1e-9 * chain else 0
                if bj >= 0:
                    i = bj  # the chain lifts to the disk that was hit


@njit(cache=True)
def _metropolis(x, R, L, h, m, n_sweeps, delta, depth, width, key):
    """Metropolis moves of hard disks with a square-well attraction (``depth`` kT within ``width`` of contact)."""
    n = x.shape[0]
    head, nxt, prv, cell = _build_cells(x, L, h, m)
    s = np.uint64(key)
    Rmax = 0.0
    for i in range(n):
        Rmax = max(Rmax, R[i])
    span = int(math.ceil((2.0 * Rmax + width + delta) / h)) + 1
    for _ in range(n_sweeps * n):
        s, u = _xorshift(s)
        i = min(int(u * n), n - 1)
        s, u1 = _xorshift(s)
        s, u2 = _xorshift(s)
        nx = (x[i, 0] + delta * (2.0 * u1 - 1.0)) % L
        ny = (x[i, 1] + delta * (2.0 * u2 - 1.0)) % L
        overlap = False
        e_old = 0
        e_new = 0
        ci = int(x[i, 0] / h)
        cj = int(x[i, 1] / h)
        for da in range(-span, span + 1):
            for db in range(-span, span + 1):
                j = head[((ci + da) % m) * m + (cj + db) % m]
                while j >= 0:
                    if j != i:
                        sig = R[i] + R[j]
                        dxo = _wrapd(x[j, 0] - x[i, 0], L)
                        dyo = _wrapd(x[j, 1] - x[i, 1], L)
                        dxn = _wrapd(x[j, 0] - nx, L)
                        dyn = _wrapd(x[j, 1] - ny, L)
                        do = math.sqrt(dxo * dxo + dyo * dyo)
                        dn = math.sqrt(dxn * dxn + dyn * dyn)
                        if dn < sig:
                            overlap = True
                        if do < sig + width:
                            e_old += 1
                        if dn < sig + width:
                            e_new += 1
                    j = nxt[j]
        if overlap:
            continue
        s, u = _xorshift(s)
        if e_new >= e_old or u < math.exp(-depth * (e_old - e_new)):
            x[i, 0] = nx
            x[i, 1] = ny
            _move_cell(i, x, h, m, head, nxt, prv, cell)


# --------------------------------------------------------------------------------------------- lattice
def _hexagonal(r: np.ndarray, f: float, gap: float, seed: int):
    """Disks on a hexagonal lattice in a near-square periodic box (n_x columns, n_y even rows)."""
    n = len(r)
    best = None
    for ny in range(2, n + 1, 2):
        if n % ny == 0:
            nx = n // ny
            aspect = abs(math.log(nx / (ny * math.sqrt(3) / 2)))
            if best is None or aspect < best[0]:
                best = (aspect, nx, ny)
    if best is None:
        raise ValueError(f"a hexagonal arrangement needs an even number of rows: {n} disks cannot fill one; use an "
                         "even count such as 2 x 50 = 100")
    _, nx, ny = best
    a = math.sqrt(np.sum(np.pi * r**2) / (f * n * math.sqrt(3) / 2))
    if 2 * float(r.max()) + gap > a * (1 + 1e-12):
        fmax = float(np.sum(np.pi * r**2) / (n * math.sqrt(3) / 2 * (2 * r.max() + gap) ** 2))
        raise ValueError(f"the largest disks do not fit a hexagonal lattice at fraction {f:.3f}: its spacing "
                         f"{a * 1e6:.3g} um is below their diameter plus min_gap; the most these radii reach is "
                         f"{fmax:.3f}")
    sites = np.array([[(i + 0.5 * (j % 2)) * a, (j + 0.5) * a * math.sqrt(3) / 2] for j in range(ny)
                      for i in range(nx)])
    order = np.random.default_rng(seed).permutation(n)
    return sites[order], (nx * a, ny * a * math.sqrt(3) / 2)


# --------------------------------------------------------------------------------------------- statistics
def nearest_gaps(x: np.ndarray, r: np.ndarray, L) -> np.ndarray:
    """(P,) surface-to-surface distance from each disk to its nearest neighbour (m; periodic box L or (Lx, Ly)).

    Parameters
    ----------
    x : numpy.ndarray
        (P, 2) disk centres in m.
    r : numpy.ndarray
        (P,) radii in m.
    L : float or (float, float)
        Periodic box side(s) in m.

    Returns
    -------
    numpy.ndarray
        (P,) nearest surface-to-surface gaps in m (negative where disks overlap).
    """
    box = np.broadcast_to(np.asarray(L, dtype=float), (2,))
    if len(r) == 1:
        # a lone disk's nearest neighbour is its own periodic image, one box side away
        return np.array([box.min() - 2 * r[0]])
    k = min(len(r), 9)
    tree = cKDTree(np.mod(x, box), boxsize=box)
    dist, idx = tree.query(np.mod(x, box), k=k)
    gaps = dist[:, 1:] - r[:, None] - r[idx[:, 1:]]
    return gaps.min(axis=1)


def packing_statistics(x: np.ndarray, r: np.ndarray, L, *, bins: int = 40, near: float = 50e-9) -> dict:
    """What a packing looks like: nearest gaps, pair correlation, neighbour-direction anisotropy.

    Parameters
    ----------
    x : numpy.ndarray
        (P, 2) centres in m.
    r : numpy.ndarray
        (P,) radii in m.
    L : float or (float, float)
        Periodic box side(s) in m.
    bins : int
        Bins of g(r) between 0 and 3 mean diameters.
    near : float
        Gap (m) under which a disk counts as touching its neighbour.

    Returns
    -------
    dict
        ``nearest_gap_quantiles`` (m; min, 10 %, 50 %, 90 %), ``fraction_within_near`` (share of disks whose nearest
        gap is below ``near``), ``pair_correlation`` ({"r": centre distances in m, "g": values}),
        ``fabric_eigenvalues`` (of the mean n n^T over the directions of the pairs in the first shell: gaps up to
        1.5 median nearest gaps; 0.5, 0.5 is isotropic), ``fabric_anisotropy`` (their difference) and
        ``fabric_pairs`` (how many pairs it averages, for its sampling error ~ 1 / sqrt(pairs)).
    """
    box = np.broadcast_to(np.asarray(L, dtype=float), (2,))
    gaps = nearest_gaps(x, r, box)
    tree = cKDTree(np.mod(x, box), boxsize=box)
    dmean = 2 * float(r.mean())
    pairs = tree.query_pairs(3 * dmean, output_type="ndarray")
    d = x[pairs[:, 0]] - x[pairs[:, 1]]
    d -= box * np.round(d / box)
    dist = np.sqrt((d**2).sum(1))
    edges = np.linspace(0, 3 * dmean, bins + 1)
    counts, _ = np.histogram(dist, edges)
    n = len(r)
    shell = np.pi * (edges[1:] ** 2 - edges[:-1] ** 2)
    # one disk has no pairs: its g(r) is undefined, not zero
    g = counts / (0.5 * n * (n - 1) / float(np.prod(box)) * shell) if n > 1 else np.full(bins, np.nan)
    # fabric over the first shell: every pair whose gap is within the median nearest gap (x 1.5), so that
    # the six equal neighbours of a lattice all count, not whichever one a tie-break picks
    shell = 1.5 * float(np.median(gaps)) + 1e-3 * float(r.mean())
    gp = dist - r[pairs[:, 0]] - r[pairs[:, 1]]
    sel = gp <= shell
    v = d[sel] / dist[sel, None]
    F = np.einsum("ni,nj->ij", v, v) / max(int(sel.sum()), 1)
    w = np.linalg.eigvalsh(F)
    return {"nearest_gap_quantiles": np.quantile(gaps, [0.0, 0.1, 0.5, 0.9]).tolist(),
            "fraction_within_near": float(np.mean(gaps < near)), "near": near,
            "pair_correlation": {"r": (0.5 * (edges[1:] + edges[:-1])).tolist(), "g": g.tolist()},
            "fabric_eigenvalues": w[::-1].tolist(), "fabric_anisotropy": float(w[1] - w[0]),
            "fabric_pairs": int(sel.sum())}


# ------------------------------------------------------------------------------------- strips between walls
def pack_strip(radii, width: float, height: float, seed: int = 0, *, min_gap: float | None = None,
               max_rounds: int = 60) -> np.ndarray:
    """Non-overlapping disks in a strip periodic across ``width`` and walled at 0 and ``height``.

    The cross-section of one sheet of parallel fibres in a crossing (:func:`substrates.crossing_bundles`):
    fibres of the sheet run along one direction, the sheet is periodic across it and bounded by the
    sheets of other bundles above and below. Every pair keeps ``min_gap`` between surfaces and every disk
    keeps ``min_gap / 2`` from both walls, so that two sheets stacked keep ``min_gap`` between their
    fibres. The disks are grown in stages while L-BFGS removes overlaps (as the start of
    :func:`pack_disks`); there is no Monte Carlo relaxation after it.

    Parameters
    ----------
    radii : array_like
        (P,) radii in m.
    width : float
        Period of the strip in m (first coordinate).
    height : float
        Distance between the walls in m (second coordinate).
    seed : int
        Seed of the start.
    min_gap : float, optional
        Smallest gap between surfaces in m (default 2 % of the mean radius).

    Returns
    -------
    numpy.ndarray
        (P, 2) centres in m: first coordinate in [0, width), second in [R, height - R].

    Raises
    ------
    ValueError
        If the disks do not fit (the message says the area fraction asked for).

    Examples
    --------
    >>> import numpy as np
    >>> from substrates.disks import pack_strip
    >>> x = pack_strip(np.full(20, 1e-6), 20e-6, 8e-6, seed=0)
    >>> x.shape
    (20, 2)
    """
    r = check_length(radii, "radii").ravel()
    w = float(check_length(width, "width"))
    h = float(check_length(height, "height"))
    gap = 0.02 * float(r.mean()) if min_gap is None else float(check_length(min_gap, "min_gap", allow_zero=True))
    R = r + 0.5 * gap
    if 2 * float(R.max()) > h or 2 * float(R.max()) > w:
        raise ValueError(f"a disk of diameter {2 * R.max():g} m (with the gap) does not fit a strip of "
                         f"{w:g} x {h:g} m")
    frac = float(np.sum(np.pi * r**2) / (w * h))
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.uniform(0, w, len(r)), rng.uniform(R, h - R)])
    big = h + 4.0 * float(R.max()) + w  # a second coordinate that never wraps: pairs across the walls stay apart
    box = np.array([w, big])

    def pairs(p, rr):
        t = cKDTree(np.column_stack([np.mod(p[:, 0], w), np.clip(p[:, 1], 0.0, h)]), boxsize=box)
        ij = t.query_pairs(2 * float(rr.max()), output_type="ndarray")
        if not len(ij):
            return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros((0, 2)), np.zeros(0), np.zeros(0)
        i, j = ij[:, 0], ij[:, 1]
        d = p[i] - p[j]
        d[:, 0] -= w * np.round(d[:, 0] / w)
        dist = np.sqrt((d**2).sum(1))
        over = rr[i] + rr[j] - dist
        m = over > 0
        return i[m], j[m], d[m], dist[m], over[m]

    for scale in (0.7, 0.8, 0.9, 0.95, 1.0):
        rr = R * scale

        def energy(flat):
            p = flat.reshape(-1, 2)
            i, j, d, dist, over = pairs(p, rr)
            lo = np.maximum(R - p[:, 1], 0.0)  # the walls hold the full radius from the start: no disk leaves
            hi = np.maximum(p[:, 1] + R - h, 0.0)
            grad = np.zeros_like(p)
            if len(i):
                gvec = (-2 * over / np.maximum(dist, 1e-30))[:, None] * d
                np.add.at(grad, i, gvec)
                np.add.at(grad, j, -gvec)
            grad[:, 1] += -2 * lo + 2 * hi
            return float(np.sum(over**2) + np.sum(lo**2) + np.sum(hi**2)), grad.ravel()

        for _ in range(max_rounds):
            res = minimize(energy, x.ravel(), jac=True, method="L-BFGS-B",
                           options={"maxiter": 2000, "gtol": 1e-30, "ftol": 1e-30})
            x = res.x.reshape(-1, 2).copy()
            x[:, 0] = np.mod(x[:, 0], w)
            if energy(x.ravel())[0] <= 0.0:
                break
            x += rng.normal(scale=1e-3 * float(R.max()), size=x.shape)
            x[:, 1] = np.clip(x[:, 1], R, h - R)
        else:
            raise ValueError(f"could not pack {len(r)} disks at area fraction {frac:.3f} in a {w:g} x {h:g} m strip "
                             f"between walls with min_gap = {gap:g} m; lower the fraction or the gap")
    # the energy stops at contact: back off by a hair so that every pair and wall is strictly clear
    for _ in range(100):
        i, j, d, dist, over = pairs(x, R * (1 + 1e-9))
        x[:, 1] = np.clip(x[:, 1], R * (1 + 1e-9), h - R * (1 + 1e-9))
        if not len(i):
            break
        push = (0.5 * over / np.maximum(dist, 1e-30))[:, None] * d
        np.add.at(x, i, push)
        np.add.at(x, j, -push)
        x[:, 0] = np.mod(x[:, 0], w)
    return np.ascontiguousarray(x)
