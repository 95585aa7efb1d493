"""The named records the kernels take: what a call passes, by name instead of by position.

Each record is a ``namedtuple`` of numpy arrays and scalars, which numba
compiles as a typed tuple. A kernel unpacks every field into a local variable
*before* its ``prange`` loop: numba 0.68 silently drops writes made through a
tuple's array fields inside a parallel loop (a serial build writes them), so
no record field is touched inside the loop body.

Units: metres and seconds, float64, in the substrate's local frame.
"""

from __future__ import annotations

from collections import namedtuple

#: Walker state, read at the start and written back at the end.
#: pos (N, 3): positions (analytic: relative to the home image's centre inside a primitive);
#: home (N,) int64: primitive image (analytic) or innermost component (mesh), -1 none;
#: seeds (N, 2) uint64: xoroshiro128+ state per walker.
Walkers = namedtuple("Walkers", ["pos", "home", "seeds"])

#: How walkers step. n_steps: grid steps T; substeps: sub-steps per grid step; matrix (3, 3): sub-step
#: displacement = scale[region] * matrix @ u (u a unit vector, or standard normal if gaussian);
#: gaussian: bool; scale (R,): step scale per region (sqrt of its diffusivity over the matrix's).
Stepping = namedtuple("Stepping", ["n_steps", "substeps", "matrix", "gaussian", "scale"])

#: What is recorded along the walk. weights (K, T+1): phase weights of the positions at grid points;
#: record_steps (R,) int64 and echo_steps (E,) int64: sorted grid indices at which displacements and the time
#: spent inside are recorded; check_every_step: test containment after every step; region_weights (R,): what a
#: grid step in each mesh region adds to the "time inside" (1 inside, 0 extra; (R2_region - R2_extra) dt when
#: T2 differs between nested regions, so that it sums the relaxation exponent; analytic kernels: unused).
#: field_weights (F, T+1): per field shape (one per distinct refocusing pattern), the weight of the offset dB at
#: each grid point (signed by the refocusing pulses, in units of dt; F = 0: no field); field_map, field_sources,
#: field_params: the field (substrates.Field: map (nx, ny, nz) T, sources (S, 11), params (17,)).
Recording = namedtuple("Recording", ["weights", "record_steps", "echo_steps", "check_every_step",
                                     "region_weights", "field_weights", "field_map", "field_sources",
                                     "field_params"])

#: Per-walker outputs (preallocated). phases (N, K, 3): sum_t W[k, t] r_t (m); displacements (N, R, 3);
#: time_inside (N, E): time inside a primitive (or between planes) in units of dt; first_transit (N,): time of
#: the first membrane transit in units of dt (-1: none); log_survival (N, E): log of the surface-relaxation weight
#: (sum over wall hits of log(1 - P_absorb)) at the echo grid points; trajectories (n_traj, T+1, 3); counters (N, 4)
#: int64: reflections, steps cut at MAX_BOUNCES, containment violations, transits; field (N, 3 + F) with a field
#: (else (N, 0)): the walker's start position in the box frame (m, written by the caller), then per field shape
#: sum_t field_weights[f, t] dB(x_t) (T, in units of dt).
Outputs = namedtuple("Outputs", ["phases", "displacements", "time_inside", "log_survival", "first_transit",
                                 "trajectories", "counters", "field"])

#: What a wall hit does, per primitive image (analytic, one entry for planes) or per component (mesh): the
#: transit probability of a hit from inside (p_out) and from outside (p_in), 0 where impermeable; and the log of
#: the surface-relaxation survival factor of a hit from inside (keep_out) and from outside (keep_in),
#: log(1 - P_absorb) <= 0, 0 where the wall does not relax.
Transit = namedtuple("Transit", ["p_out", "p_in", "keep_out", "keep_in"])

#: Analytic geometry: kind (FREE, PLANES, CYLINDERS, SPHERES), plane spacing, period box (3,) (0: not periodic),
#: the walk grid (substrates.WalkGrid): origin lo (3,), inverse cell size inv_h (3,), cells per axis n (3,) int64,
#: primitive images centers (Q, 3) and radii (Q,), per-cell candidates start/items, clearance clear, and the
#: reach its lists are complete for (m).
CellGeometry = namedtuple("CellGeometry", ["kind", "spacing", "box", "lo", "inv_h", "n", "centers", "radii", "start",
                                           "items", "clear", "reach"])

#: Sphere-union geometry (substrates.UnionGrid): sphere images centers (Q, 3) and radii (Q,), grid origin lo (3,),
#: cell size h (3,), cells per axis n (3,) int64, period box (3,), per-cell candidate lists start/items and the
#: cells one sphere holds whole (deep).
UnionGeometry = namedtuple("UnionGeometry", ["centers", "radii", "lo", "h", "n", "box", "start", "items", "deep"])

#: Mesh geometry: triangle image rows tri (Q, 13) with their component comp and mesh face face; grid lo, h, n,
#: period box (0: not periodic), cell lists start/items, clearance per cell clear, location columns
#: cstart/citems; nesting depth and parent per component; n_regions; eta: stand-off from a plane after a hit.
MeshGeometry = namedtuple("MeshGeometry", ["tri", "comp", "face", "lo", "h", "n", "box", "start", "items", "clear",
                                           "cstart", "citems", "depth", "parent", "n_regions", "eta"])
