"""substrates: geometry of the tissue the walkers diffuse in (SI units: m, m^2/s).

Analytic substrates
-------------------
free, planes, cylinder, cylinders, cylinder_lattice, sphere, spheres, sphere_lattice

Meshes and generators
---------------------
from_mesh (PLY/STL/OBJ/OFF via trimesh), mesh_substrate (arrays), packed_axons,
undulating_axons, beaded_axons, myelinated_axons, somas_with_neurites, meshed_sphere,
meshed_cylinder; from_swc (neurons from SWC morphologies); sphere_union, sphere_chain_axons
(fibres as unions of overlapping spheres, no mesh); save_substrate / load_substrate;
plot_substrate, plot_section

Every substrate reports its ground truth (``Substrate.ground_truth()``):
volume fractions, radii, surface-to-volume ratios, box size; permeable
substrates (``permeability=`` kappa in m/s) add their exchange times
(:func:`residence_times`).
"""

from .analytic import (CYLINDERS, FREE, PLANES, SPHERES, Substrate, cylinder, cylinder_lattice, cylinders, free,
                       planes, rotation_to, sphere, sphere_lattice, spheres, WalkerStart, check_length, check_permeability,
                       check_relaxivity)
from .cells import CellList, WalkGrid, build_cells, walk_grid
from .exchange import residence_times
from .mesh import MESH, MeshError, MeshGrid, MeshSubstrate, from_mesh, load_substrate, mesh_substrate, save_substrate
from .packing import pack_cylinders
from . import meshing
from .disks import PACKING_VERSION, nearest_gaps, pack_disks, packing_statistics
from .generators import (beaded_axons, from_labels, gamma_radii, meshed_cylinder, meshed_sphere,
                         myelinated_axons, packed_axons, somas_with_neurites, undulating_axons)
from .plotting import plot_section, plot_substrate
from .swc import Morphology, from_swc, prune_morphology, read_swc, resample_morphology
from .unions import UNION, SphereUnion, UnionGrid, sphere_chain_axons, sphere_union

__all__ = ["Substrate", "WalkerStart", "check_length", "check_permeability", "check_relaxivity", "CellList", "build_cells", "WalkGrid", "walk_grid", "free", "planes", "cylinder", "cylinders", "cylinder_lattice",
           "sphere", "spheres", "sphere_lattice", "pack_cylinders", "residence_times", "rotation_to", "FREE", "PLANES", "CYLINDERS", "SPHERES", "MESH",
           "MeshSubstrate", "MeshGrid", "MeshError", "from_mesh", "mesh_substrate", "save_substrate",
           "load_substrate", "meshing", "beaded_axons", "from_labels", "gamma_radii", "meshed_cylinder", "meshed_sphere",
           "pack_disks", "packing_statistics", "nearest_gaps", "PACKING_VERSION", "packed_axons", "myelinated_axons", "somas_with_neurites", "undulating_axons", "plot_substrate",
           "plot_section", "from_swc", "read_swc", "prune_morphology", "resample_morphology", "Morphology",
           "UNION", "SphereUnion", "UnionGrid", "sphere_union", "sphere_chain_axons"]
