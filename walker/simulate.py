"""``simulate()``: walkers through a substrate under a scheme, returning signals with errors."""

from __future__ import annotations

import logging
import math
import os
import time
import warnings

import numpy as np

import sequences
from substrates import CYLINDERS, FREE, PLANES, SPHERES, Substrate
from substrates.mesh import MeshSubstrate

from . import kernel, mesh_kernel
from .membranes import MAX_TRANSIT_PROBABILITY, compartment_values, substeps_for, transit_probability
from .result import SimulationResult

log = logging.getLogger(__name__)

#: walkers whose phases are turned into signals at once (bounds the (N, M) phase memory)
PHASE_CHUNK = 16384


def _check_diffusivity(D) -> float:
    d = float(D)
    if not (np.isfinite(d) and d > 0):
        raise ValueError(f"diffusivity must be a positive number in m^2/s, got {D!r}")
    if d > 1e-6 or d < 1e-13:
        raise ValueError(
            f"diffusivity = {d:g} m^2/s is not plausible; diffwalk uses m^2/s "
            f"(free water at 37 C is 3e-9; 2 um^2/ms = 2e-9 m^2/s; 2e-3 mm^2/s = 2e-9 m^2/s)"
        )
    return d


def _sqrtm_spd(A: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(A)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def phase_weights(shapes: np.ndarray) -> np.ndarray:
    """Weights of the positions at grid points for the trapezoid phase rule.

    sum_s f_s (r_s + r_{s+1}) / 2 = sum_t W_t r_t with W_t = (f_{t-1} + f_t) / 2.

    Parameters
    ----------
    shapes : numpy.ndarray
        (K, T) step values of the temporal shapes.

    Returns
    -------
    numpy.ndarray
        (K, T + 1) weights.
    """
    K, T = shapes.shape
    W = np.zeros((K, T + 1))
    W[:, :-1] += 0.5 * shapes
    W[:, 1:] += 0.5 * shapes
    return W


def _available_memory() -> float:
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def _start_positions(sub: Substrate, start: str, n: int, rng: np.random.Generator):
    """Local-frame start positions, home image per walker (-1 outside), and compartment labels."""
    home = np.full(n, -1, dtype=np.int64)
    pos = np.zeros((n, 3))
    allowed = ["intra", "extra", "uniform"] + (sub.region_names if isinstance(sub, MeshSubstrate) else [])
    if start not in allowed:
        raise ValueError(f"start must be one of {sorted(set(allowed))}, got {start!r}")
    if isinstance(sub, MeshSubstrate):
        return _mesh_start_positions(sub, start, n, rng)
    if sub.kind == FREE:
        if start != "uniform":
            raise ValueError(f"start={start!r}: free space has no '{start}' compartment; use start='uniform'")
        return pos, home, np.zeros(n, dtype=np.int64), ["free"]
    if sub.kind == PLANES:
        if start == "extra":
            raise ValueError("start='extra': parallel planes have only the space between them; use 'intra'")
        pos[:, 2] = rng.uniform(0.0, sub.spacing, n)
        return pos, home, np.zeros(n, dtype=np.int64), ["intra"]
    cells = sub.cells
    comps = ["intra", "extra"]
    has_extra = "extra" in sub.compartments
    if start == "extra" and not has_extra:
        raise ValueError(
            "start='extra' needs a periodic box around the primitives; a single cylinder or sphere has no "
            "bounded extra-cellular space. Use substrates.cylinders(..., box=...) or a lattice."
        )
    if start == "uniform" and not has_extra:
        start = "intra"
    # the primary image (unshifted copy) of each primitive
    primary = np.full(len(sub.radii), -1, dtype=np.int64)
    for q in range(len(cells.radii)):
        j = cells.owner[q]
        if primary[j] < 0 and np.allclose(cells.centers[q], sub.centers[j], rtol=0, atol=1e-15):
            primary[j] = q
    dim = 3 if sub.kind == SPHERES else 2
    if start == "intra":
        w = sub.radii**dim
        j = rng.choice(len(sub.radii), size=n, p=w / w.sum())
        q = primary[j]
        if dim == 2:
            r = sub.radii[j] * np.sqrt(rng.uniform(size=n))
            th = 2 * np.pi * rng.uniform(size=n)
            pos[:, 0], pos[:, 1] = r * np.cos(th), r * np.sin(th)
        else:
            v = rng.normal(size=(n, 3))
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            pos[:] = v * (sub.radii[j] * rng.uniform(size=n) ** (1 / 3))[:, None]
        return pos, q, np.zeros(n, dtype=np.int64), comps
    box = np.where(np.isfinite(sub.box), sub.box, 0.0)
    labels = np.zeros(n, dtype=np.int64)
    filled = 0
    tries = 0
    while filled < n:
        m = max(1024, 2 * (n - filled))
        cand = rng.uniform(size=(m, 3)) * box
        q = sub.locate(cand)
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
    return pos, home, labels, comps


def _mesh_start_positions(sub: MeshSubstrate, start: str, n: int, rng: np.random.Generator):
    """Uniform positions in the walkable volume, located exactly; returns (pos, component, region label, names)."""
    names = sub.region_names
    if start == "extra" and "extra" not in names:
        raise ValueError("start='extra' needs a mesh substrate periodic on all three axes (box=...); this one has "
                         f"only {names}")
    g = sub.grid
    per = sub.periodic
    lo = np.where(per, 0.0, g.lo)
    ext = np.where(per, np.where(per, sub.box, 0.0), g.n * g.h)
    want = None if start == "uniform" else names.index(start)
    pos = np.zeros((n, 3))
    comp = np.full(n, -1, dtype=np.int64)
    labels = np.zeros(n, dtype=np.int64)
    filled = 0
    tries = 0
    while filled < n:
        m = max(4096, 2 * (n - filled))
        cand = lo + rng.uniform(size=(m, 3)) * ext
        c = sub.locate(cand)
        reg = sub.region_of_component(c)
        if "extra" not in names:
            keep = c >= 0  # outside a non-periodic mesh is not part of the substrate
            cand, c, reg = cand[keep], c[keep], reg[keep]
        if want is not None:
            keep = reg == want
            cand, c, reg = cand[keep], c[keep], reg[keep]
        take = min(n - filled, len(cand))
        pos[filled:filled + take] = cand[:take]
        comp[filled:filled + take] = c[:take]
        labels[filled:filled + take] = reg[:take]
        filled += take
        tries += 1
        if tries > 1000:
            raise RuntimeError(f"could not seed walkers in region {start!r}: its volume is ~0")
    return pos, comp, labels, names


def _compartment_names(sub: Substrate) -> list[str]:
    """Compartments a walker can be in (a permeable lone primitive has the unbounded outside as 'extra')."""
    if sub.kind == FREE:
        return ["free"]
    if sub.kind == PLANES:
        return ["intra"]
    if isinstance(sub, MeshSubstrate):
        return sub.region_names
    return ["intra", "extra"] if ("extra" in sub.compartments or sub.permeable) else ["intra"]


def _check_t2(t2, names: list[str]) -> dict | None:
    if t2 is None:
        return None
    vals = compartment_values(t2, names, "t2", "s")
    out = {}
    for name, v in vals.items():
        v = float(v)
        if not v > 0:
            raise ValueError(f"t2[{name!r}] must be a positive time in s (np.inf for no relaxation), got {v!r}")
        if math.isfinite(v) and (v > 10.0 or v < 1e-4):
            raise ValueError(f"t2[{name!r}] = {v:g} s is not plausible; T2 is in seconds (80 ms = 0.08)")
        out[name] = v
    return out


def simulate(substrate: Substrate, scheme: sequences.Scheme, n_walkers: int = 100_000,
             diffusivity: float | dict | None = None, n_steps: int = 1000, seed: int = 0,
             start: str | None = None, *, t2: float | dict | None = None, gaussian_steps: bool = False,
             record_times=None, n_trajectories: int = 0, target_stderr: float | None = None,
             check_every_step: bool = False, max_transit_probability: float = MAX_TRANSIT_PROBABILITY,
             transit: str = "corrected", parallel: bool = True) -> SimulationResult:
    """Simulate the diffusion signal of a substrate under a scheme by Monte Carlo.

    Parameters
    ----------
    substrate : Substrate
        Where the walkers diffuse (see :mod:`substrates`).
    scheme : sequences.Scheme
        The encoding; it is step-averaged onto ``n_steps`` equal steps.
    n_walkers : int
        Number of walkers N; the standard error falls as 1/sqrt(N).
    diffusivity : float or dict
        Intrinsic diffusivity D in m^2/s (2e-9 for 2 um^2/ms), or one per
        compartment, ``{"intra": 1e-9, "extra": 2e-9}``. May be left out for a
        free substrate that carries its own diffusion tensor.
    n_steps : int
        Time steps T over the scheme's duration; the fixed step length is
        sqrt(6 D dt) with dt = duration / T. Keep it below the smallest
        feature / 6 (a warning says so, with an n_steps that would do);
        curved walls need about R/20 per axis RMS for sub-SE bias at high b.
    seed : int
        Root seed: positions and per-walker random streams derive from it, so
        results are bit-identical for any number of threads.
    start : {"intra", "extra", "uniform"}, optional
        Where walkers start: inside the primitives, outside them, or uniformly
        in the box (each walker then counts for the compartment it lands in).
        Default: "intra" where the substrate has an intra compartment, else
        "uniform" (free space).
    t2 : float or dict, optional
        Transverse relaxation time T2 in s, one value or one per compartment
        (``{"intra": 0.07, "extra": 0.1}``). Each walker's signal is weighted
        by exp(-integral of 1/T2 along its own path up to the echo time of the
        measurement, ``scheme.echo_time``), so relaxation and exchange
        interact correctly. Default: no relaxation.
    gaussian_steps : bool
        Gaussian steps (each component N(0, 2 D dt)) instead of fixed-length ones.
    record_times : array_like, optional
        Times (s) at which to record displacements, MSD and kurtosis; each must
        fall on the step grid.
    n_trajectories : int
        Keep the full trajectories of this many walkers (for teaching plots).
    target_stderr : float, optional
        Warn when N is too small to reach this standard error.
    check_every_step : bool
        Test containment after every step (slower) instead of at the end only.
    max_transit_probability : float
        Permeable membranes: each time step is split into the fewest equal
        sub-steps that keep the first-order transit probability per hit below
        this (the realised permeability is then within ~1 % of kappa). Phases
        still use the ``n_steps`` grid.
    transit : {"corrected", "first_order"}
        Transit probability per hit: with the finite-step correction
        (default), or the textbook first-order (2/3) kappa l / D, whose
        permeability error shrinks only in proportion to the step (for
        convergence studies and teaching).
    parallel : bool
        Use the multi-threaded kernel (``False``: the serial build of the same code).

    Returns
    -------
    SimulationResult
    """
    if not isinstance(substrate, Substrate):
        raise TypeError(f"substrate must be a substrates.Substrate, got {type(substrate).__name__}")
    if not isinstance(scheme, sequences.Scheme):
        raise TypeError(f"scheme must be a sequences.Scheme, got {type(scheme).__name__}")
    N = int(n_walkers)
    if N < 1:
        raise ValueError(f"n_walkers must be a positive integer, got {n_walkers!r}")
    T = int(n_steps)
    if T < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    R = substrate.rotation
    names = _compartment_names(substrate)
    if substrate.diffusion_tensor is not None:
        if diffusivity is not None:
            raise ValueError("this substrate carries its own diffusion tensor; leave diffusivity out")
        D_local = R.T @ substrate.diffusion_tensor @ R
        D_scalar = float(np.linalg.eigvalsh(D_local).max())
        D_comp = {"free": D_scalar}
    else:
        if diffusivity is None:
            raise ValueError("give diffusivity in m^2/s (e.g. diffusivity=2e-9 for 2 um^2/ms)")
        D_comp = {k: _check_diffusivity(v) for k, v in compartment_values(diffusivity, names, "diffusivity",
                                                                           "m^2/s").items()}
        D_scalar = D_comp[names[0]]  # the step matrix is built for the first compartment, the others rescale it
        D_local = np.eye(3) * D_scalar
    D_max = max(D_comp.values())
    t2_comp = _check_t2(t2, names)
    if t2_comp is not None and len({v for k, v in t2_comp.items() if k != "extra"}) > 1:
        raise ValueError("t2 must be the same in every region inside the components (only intra/extra may differ)")

    played = scheme.resample(T)
    if not scheme.aligned(T):
        warnings.warn(
            f"n_steps={T} puts some waveform edges inside a step (they are step-averaged, an O(dt) change of the "
            f"waveform); n_steps={scheme.aligned_n_steps(T)} aligns every edge", stacklevel=2)
    dt = played.dt
    kappa = substrate.permeability
    if transit not in ("corrected", "first_order"):
        raise ValueError(f"transit must be 'corrected' or 'first_order', got {transit!r}")
    corr = transit == "corrected"
    is_mesh = isinstance(substrate, MeshSubstrate)
    if is_mesh and substrate.permeable and not np.all(substrate.periodic):
        raise ValueError("a permeable mesh needs a periodic box on all three axes (box=...) so that walkers leaving "
                         "a component have an extra-cellular space to go to")
    substeps = 1
    if substrate.permeable:
        if not 0 < max_transit_probability <= 1:
            raise ValueError(f"max_transit_probability must be in (0, 1], got {max_transit_probability!r}")
        substeps = substeps_for(kappa, dt, D_comp.values(), gaussian_steps, max_transit_probability)
    dt_sub = dt / substeps
    step = math.sqrt(6.0 * D_max * dt_sub)
    feature = substrate.smallest_feature
    if step > feature / 6:
        need = int(math.ceil(played.duration * 6 * D_max / (feature / 6) ** 2))
        warnings.warn(
            f"step length {step * 1e6:.3g} um is more than 1/6 of the smallest feature ({feature * 1e6:.3g} um); "
            f"use n_steps >= {need} (dt <= {played.duration / need * 1e6:.3g} us) for accurate walls", stacklevel=2)
    if target_stderr is not None and 1.0 / math.sqrt(2 * N) > target_stderr:
        warnings.warn(f"{N} walkers give a standard error up to ~{1 / math.sqrt(2 * N):.2g}; "
                      f"target {target_stderr:g} needs n_walkers >= {int(math.ceil(0.5 / target_stderr**2))}",
                      stacklevel=2)

    fac = played.shapes
    K = fac.n_shapes
    W = phase_weights(fac.shapes)
    amps_local = fac.amplitudes @ R  # (M, K, 3): g_local = R^T g_lab
    rec_t = np.atleast_1d(np.asarray(record_times if record_times is not None else [], dtype=float))
    rec_steps = np.rint(rec_t / dt).astype(np.int64)
    if rec_t.size and (np.any(np.abs(rec_steps * dt - rec_t) > 1e-9 * dt + 1e-15) or np.any(rec_steps < 0)
                       or np.any(rec_steps > T)):
        raise ValueError(f"record_times must be multiples of dt = {dt:g} s within [0, {played.duration:g}] s; "
                         "choose n_steps so that they fall on the grid")
    order = np.argsort(rec_steps, kind="stable")
    n_traj = min(int(n_trajectories), N)
    # echo times: the time spent inside is recorded at the grid points around each TE
    te_list = np.asarray(played.echo_time, dtype=float)
    te_steps = np.zeros(0, dtype=np.int64)
    if t2_comp is not None:
        if np.any(te_list > played.duration * (1 + 1e-9)):
            raise ValueError(f"echo time {te_list.max() * 1e3:g} ms is after the end of the waveforms "
                             f"({played.duration * 1e3:g} ms): the walk must cover TE; build the scheme with "
                             "echo_time=... so the waveforms are padded to it")
        lo = np.clip(np.floor(te_list / dt + 1e-9).astype(np.int64), 0, T)
        te_steps = np.unique(np.concatenate([lo, np.minimum(lo + 1, T)]))
    mem = N * (8 * (3 * K + 3 * rec_t.size + 3 + 1 + 4 + te_steps.size + 1) + 16) + n_traj * (T + 1) * 24 \
        + PHASE_CHUNK * len(played) * 8 * 4
    avail = _available_memory()
    if mem > 0.8 * avail:
        raise MemoryError(f"this run needs about {mem / 2**30:.1f} GiB but {avail / 2**30:.1f} GiB is free; "
                          "use fewer walkers (run several seeds and average) or fewer record_times")

    if start is None:
        start = "uniform" if substrate.kind == FREE else "intra"
    ss = np.random.SeedSequence(seed)
    ss_pos, ss_walk = ss.spawn(2)
    pos, home, labels, comp_names = _start_positions(substrate, start, N, np.random.default_rng(ss_pos))
    start_local = pos.copy()
    seeds = ss_walk.generate_state(2 * N, dtype=np.uint64).reshape(N, 2)
    seeds[(seeds[:, 0] == 0) & (seeds[:, 1] == 0), 0] = 1
    M = math.sqrt((2.0 if gaussian_steps else 6.0) * dt_sub) * _sqrtm_spd(D_local)
    D_in, D_ex = D_comp[names[0]], D_comp[names[-1]]
    scale = np.array([1.0, math.sqrt(D_ex / D_in)])

    out_I = np.zeros((N, K, 3))
    out_rec = np.zeros((N, rec_t.size, 3))
    traj = np.zeros((n_traj, T + 1, 3))
    counters = np.zeros((N, 4), dtype=np.int64)
    out_tin = np.zeros((N, te_steps.size))
    out_first = np.zeros(N)
    tail = (np.ascontiguousarray(rec_steps[order]), te_steps, out_I, out_rec, out_tin, out_first, traj, counters,
            bool(check_every_step))
    cells = None
    if is_mesh:
        g = substrate.grid
        D_reg = np.array([D_comp[nm] for nm in names])
        scale = np.sqrt(D_reg / D_scalar)
        dep = substrate.depth
        C = substrate.n_components
        D_in_c = D_reg[dep]
        D_par = np.where(substrate.parent >= 0, D_reg[dep[np.maximum(substrate.parent, 0)]], D_reg[-1])
        p_out = np.zeros(C)
        p_in = np.zeros(C)
        if substrate.permeable:
            for c in range(C):
                p_out[c] = transit_probability(kappa[c, 0], dt_sub, D_in_c[c], D_par[c], gaussian_steps, corr)
                p_in[c] = transit_probability(kappa[c, 1], dt_sub, D_par[c], D_in_c[c], gaussian_steps, corr)
        ell_min = math.sqrt(6.0 * min(D_comp.values()) * dt_sub)
        coord = float(np.max(np.abs(g.tri[:, 0:3]))) + float(np.max(g.n * g.h))
        eta = max(1e-10 * ell_min, 64.0 * float(np.spacing(coord)))
        walk = mesh_kernel.walk_mesh_parallel if parallel else mesh_kernel.walk_mesh_serial
        t0 = time.perf_counter()
        walk(pos, home, seeds, T, substeps, M, bool(gaussian_steps), W, g.tri, g.comp, g.face, g.lo, g.h, g.n, g.box,
             g.start, g.items, g.clear, g.cstart, g.citems, dep, substrate.parent, np.ascontiguousarray(p_out, float),
             np.ascontiguousarray(p_in, float), scale, len(names), eta, *tail)
    else:
        cells = substrate.cells if substrate.kind in (CYLINDERS, SPHERES) else None
        if cells is not None:
            geo = (np.where(np.isfinite(cells.box), cells.box, 0.0), cells.centers, cells.radii, cells.n, cells.h,
                   cells.start, cells.items)
        else:
            geo = (np.zeros(3), np.zeros((1, 3)), np.zeros(1), np.ones(3, dtype=np.int64), np.ones(3),
                   np.zeros(2, dtype=np.int64), np.zeros(1, dtype=np.int64))
        # transit probability per image, from inside (out) and from outside (in)
        if cells is not None:
            k_img = kappa[cells.owner] if len(kappa) else np.zeros((len(cells.radii), 2))
            p_out = np.atleast_1d(transit_probability(k_img[:, 0], dt_sub, D_in, D_ex, gaussian_steps, corr))
            p_in = np.atleast_1d(transit_probability(k_img[:, 1], dt_sub, D_ex, D_in, gaussian_steps, corr))
        elif substrate.kind == PLANES and len(kappa):
            p_out = p_in = np.atleast_1d(transit_probability(kappa[:1, 0], dt_sub, D_in, D_in, gaussian_steps, corr))
        else:
            p_out = p_in = np.zeros(1)
        walk = kernel.walk_parallel if parallel else kernel.walk_serial
        t0 = time.perf_counter()
        walk(substrate.kind, pos, home, seeds, T, substeps, M, bool(gaussian_steps), W,
             float(substrate.spacing) if substrate.kind == PLANES else 0.0, *geo, np.ascontiguousarray(p_out, float),
             np.ascontiguousarray(p_in, float), scale, *tail)
    wall = time.perf_counter() - t0

    relax = None
    if t2_comp is not None:
        # time inside at each TE (linear between the grid points around it), then exp(-int R2 dt) per walker
        x = te_list / dt
        lo = np.clip(np.floor(x + 1e-9).astype(np.int64), 0, T)
        hi = np.minimum(lo + 1, T)
        frac = np.clip(x - lo, 0.0, 1.0)
        col = {s: j for j, s in enumerate(te_steps)}
        t_in = (out_tin[:, [col[s] for s in lo]] * (1 - frac) + out_tin[:, [col[s] for s in hi]] * frac) * dt
        r_in = 1.0 / t2_comp[names[0]]
        r_ex = 1.0 / t2_comp[names[-1]]  # for a mesh without extra space names[-1] is inside too: r_ex == r_in
        relax = np.exp(-(r_in * t_in + r_ex * (te_list[None, :] - t_in)))  # (N, M)

    # phases: phi_m = gamma dt sum_k g_mk . I_k, in chunks of walkers
    A = amps_local.reshape(len(played), 3 * K).T * (played.gamma * dt)
    n_comp = len(comp_names)
    sums = np.zeros((n_comp, 4, len(played)))  # w cos, w sin, w^2 cos 2phi, w^2 (w: relaxation weight)
    for a in range(0, N, PHASE_CHUNK):
        phi = out_I[a:a + PHASE_CHUNK].reshape(-1, 3 * K) @ A
        c, s, c2 = np.cos(phi), np.sin(phi), np.cos(2 * phi)
        w2 = None
        if relax is not None:
            w = relax[a:a + PHASE_CHUNK]
            w2 = w * w
            c, s, c2 = c * w, s * w, c2 * w2
        lab = labels[a:a + PHASE_CHUNK]
        for ci in range(n_comp):
            sel = lab == ci
            if np.any(sel):
                sums[ci, 0] += c[sel].sum(axis=0)
                sums[ci, 1] += s[sel].sum(axis=0)
                sums[ci, 2] += c2[sel].sum(axis=0)
                sums[ci, 3] += np.count_nonzero(sel) if w2 is None else w2[sel].sum(axis=0)
    counts = np.array([np.sum(labels == ci) for ci in range(n_comp)])

    def stats(total, n):
        # Var(w cos phi) = (E[w^2] + E[w^2 cos 2phi]) / 2 - S^2 (section 1.0, with the weights)
        S = total[0] / n
        var = np.clip(total[3] / n + total[2] / n - 2.0 * S**2, 0.0, None) / (2.0 * n)
        return S, np.sqrt(var), total[1] / n

    signal, stderr, imag = stats(sums.sum(axis=0), N)
    comp_sig, comp_se, comp_n = {}, {}, {}
    for ci, name in enumerate(comp_names):
        if counts[ci] > 0:
            comp_sig[name], comp_se[name], _ = stats(sums[ci], counts[ci])
            comp_n[name] = int(counts[ci])

    disp = msd = kurt = None
    if rec_t.size:
        inv = np.empty_like(order)
        inv[order] = np.arange(order.size)
        disp = out_rec[:, inv] @ R.T
        m2 = np.mean(disp**2, axis=0)
        m4 = np.mean(disp**4, axis=0)
        msd = m2
        with np.errstate(invalid="ignore", divide="ignore"):
            kurt = np.where(m2 > 0, m4 / m2**2 - 3.0, np.nan)
    traj_lab = None
    if n_traj:
        origin = start_local[:n_traj].copy()
        has_home = home[:n_traj] >= 0
        if cells is not None:
            origin[has_home] += cells.centers[home[:n_traj][has_home]]
        traj_lab = (traj + origin[:, None, :]) @ R.T

    bad = counters[:, 2] > 0
    if is_mesh:
        # exact location of every final position against the region the walker was tracked in
        bad |= substrate.locate(pos) != home
        if int(counters[:, 0].sum()) == 0 and N * T >= 10_000:
            warnings.warn("no walker touched the mesh: is it where the walkers are (units, box origin)?",
                          stacklevel=2)
    escapes = int(np.count_nonzero(bad))
    if escapes:
        log.error("%d walkers were found outside the compartment they were in: this is a bug, please report it",
                  escapes)
    final_local = pos.copy()
    if cells is not None:
        inside = home >= 0
        final_local[inside] += cells.centers[home[inside]]
    final_positions = final_local @ R.T
    transits = int(counters[:, 3].sum())
    first_transit = None
    final_fractions = {}
    if substrate.permeable:
        first_transit = np.where(out_first >= 0, out_first * dt, np.nan)
        if is_mesh:
            reg = substrate.region_of_component(home)
            final_fractions = {nm: float(np.mean(reg == r)) for r, nm in enumerate(names)}
        elif substrate.kind in (CYLINDERS, SPHERES):
            inside = float(np.mean(home >= 0))
            final_fractions = {"intra": inside, "extra": 1.0 - inside}
    import numba
    from substrates import residence_times
    gt = dict(substrate.ground_truth())
    if substrate.diffusion_tensor is not None:
        gt["diffusivity"] = None
    elif len(set(D_comp.values())) == 1:
        gt["diffusivity"] = D_scalar
    else:
        gt["diffusivity"] = dict(D_comp)
    if t2_comp is not None:
        gt["t2"] = dict(t2_comp)
    gt.update(residence_times(substrate, D_comp))
    # what the signal is made of: with start="intra" the signal fraction is 1, whatever the volume fraction
    gt["start"] = start
    gt["signal_fractions"] = {name: float(counts[ci] / N) for ci, name in enumerate(comp_names)}
    prov = {
        "diffwalk_version": _version(), "numba_version": numba.__version__, "numpy_version": np.__version__,
        "seed": int(seed), "n_walkers": N, "n_steps": T, "dt": dt, "step_length": step,
        "gaussian_steps": bool(gaussian_steps), "gamma": played.gamma, "diffusivity": D_scalar,
        "start": start, "substrate": substrate.description, "threads": numba.get_num_threads() if parallel else 1,
        "wall_time_s": wall, "walker_steps_per_s": N * T / wall if wall > 0 else math.inf,
        "n_shapes": K, "aligned_edges": bool(scheme.aligned(T)), "substeps": substeps,
    }
    if substrate.permeable:
        prov["transit"] = transit
    if substrate.permeable:
        prov["transit_probability_max"] = float(max(np.max(p_out), np.max(p_in)))
    return SimulationResult(
        signal=signal, stderr=stderr, signal_imag=imag, compartment_signals=comp_sig,
        compartment_stderr=comp_se, compartment_counts=comp_n, ground_truth=gt, scheme=played,
        discrete_bvalues=np.trace(played.discrete_btensors("trapezoid"), axis1=1, axis2=2),
        record_times=rec_t, displacements=disp, msd=msd, kurtosis=kurt, trajectories=traj_lab,
        reflections=int(counters[:, 0].sum()), truncated_steps=int(counters[:, 1].sum()), escapes=escapes,
        provenance=prov, transits=transits, first_transit_times=first_transit, final_fractions=final_fractions,
        final_positions=final_positions)


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("diffwalk")
    except Exception:  # noqa: BLE001 - running from a source tree without metadata
        return "unknown"


__all__ = ["simulate", "phase_weights"]
