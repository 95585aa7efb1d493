"""substrates: geometry of the tissue the walkers diffuse in (SI units: m, m^2/s).

Analytic substrates
-------------------
free, planes, cylinder, cylinders, cylinder_lattice, sphere, spheres, sphere_lattice

Meshes and generators
---------------------
from_mesh (PLY/STL/OBJ/OFF via trimesh), mesh_substrate (arrays), packed_axons,
undulating_axons, beaded_axons, myelinated_axons, somas_with_neurites, meshed_sphere,
meshed_cylinder; crossing_bundles (two or three bundles crossing at given angles, with their measured
orientation distributions); from_swc (neurons from SWC morphologies); sphere_union, sphere_chain_axons
(fibres as unions of overlapping spheres, no mesh); save_substrate / load_substrate;
plot_substrate, plot_section

Static field offsets (susceptibility)
-------------------------------------
susceptibility_field (closed forms for cylinders, spheres, myelin sheaths), susceptibility_map (any periodic
substrate, rasterised, by the Fourier kernel), fourier_field (a susceptibility grid), field_map,
read_field_map and save_field_map (npz, NIfTI), background_gradient; Field.evaluate, Field.sampled,
field_statistics (per compartment, with the static signal), dilute_r2prime (Yablonskiy & Haacke's R2')

Other generators' files
-----------------------
read_mcdc_cylinders, read_mcdc_spheres, read_mcdc_voxel (MC/DC obstacle lists and voxel), read_caterpillar
(CATERPillar sphere lists), read_cactus (CACTUS strand lists); meshes from CACTUS and other tools load with
from_mesh

Substrate families
------------------
Every substrate derives from :class:`Substrate` (``substrates.base``) and belongs to a family
(``sub.family``: "analytic", "mesh" or "union"), registered in :data:`FAMILIES` with its kind codes, its
class and its file format (:func:`register_family`, :func:`family_of_kind`).

Every substrate reports its ground truth (``Substrate.ground_truth()``):
volume fractions, radii, surface-to-volume ratios, box size; permeable
substrates (``permeability=`` kappa in m/s) add their exchange times
(:func:`residence_times`).
"""

from .base import (CYLINDERS, FREE, MESH, PLANES, SPHERES, UNION, FAMILIES, Family, Substrate, WalkerStart,
                   check_length, check_permeability, check_relaxivity, family_of_kind, register_family, rotation_to)
from .analytic import (AnalyticSubstrate, cylinder, cylinder_lattice, cylinders, free, planes, sphere, sphere_lattice,
                       spheres)
from .primitive_grids import CellList, WalkGrid, build_cells, walk_grid
from .exchange import residence_times
from .mesh import MeshError, MeshGrid, MeshSubstrate, from_mesh, mesh_substrate
from .unions import SphereUnion, UnionGrid, add_sphere_clusters, sphere_chain_axons, sphere_union
from .files import load_substrate, save_substrate
from . import meshing
from .disks import PACKING_VERSION, nearest_gaps, pack_disks, packing_statistics
from .generators import (beaded_axons, from_labels, gamma_radii, meshed_cylinder, meshed_sphere, myelinated_axons,
                         pack_cylinders, packed_axons, somas_with_neurites, undulating_axons)
from .plotting import plot_section, plot_substrate
from .swc import Morphology, from_swc, prune_morphology, read_swc, resample_morphology
from .crossing import (bingham_tilts, crossing_bundles, cut_watson_moment, orientation_distribution, real_sh,
                       watson_tilts)
from .fields import (Field, background_gradient, dilute_r2prime, field_map, field_statistics, fourier_field,
                     read_field_map, save_field_map, susceptibility_field, susceptibility_map)
from .importers import read_cactus, read_caterpillar, read_mcdc_cylinders, read_mcdc_spheres, read_mcdc_voxel

__all__ = ["Field", "background_gradient", "dilute_r2prime", "field_map", "field_statistics", "fourier_field",
           "read_field_map", "save_field_map", "susceptibility_field", "susceptibility_map", "Substrate", "AnalyticSubstrate", "WalkerStart", "Family", "FAMILIES", "register_family", "family_of_kind",
           "check_length", "check_permeability", "check_relaxivity", "CellList", "build_cells", "WalkGrid",
           "walk_grid", "free", "planes", "cylinder", "cylinders", "cylinder_lattice",
           "sphere", "spheres", "sphere_lattice", "pack_cylinders", "residence_times", "rotation_to", "FREE", "PLANES",
           "CYLINDERS", "SPHERES", "MESH",
           "MeshSubstrate", "MeshGrid", "MeshError", "from_mesh", "mesh_substrate", "save_substrate",
           "load_substrate", "meshing", "beaded_axons", "from_labels", "gamma_radii", "meshed_cylinder", "meshed_sphere",
           "pack_disks", "packing_statistics", "nearest_gaps", "PACKING_VERSION", "packed_axons", "myelinated_axons",
           "somas_with_neurites", "undulating_axons", "plot_substrate",
           "plot_section", "from_swc", "read_swc", "prune_morphology", "resample_morphology", "Morphology",
           "UNION", "SphereUnion", "UnionGrid", "sphere_union", "sphere_chain_axons", "add_sphere_clusters",
           "read_mcdc_cylinders",
           "read_mcdc_spheres", "read_mcdc_voxel", "read_caterpillar", "read_cactus", "crossing_bundles",
           "orientation_distribution", "real_sh", "watson_tilts", "cut_watson_moment", "bingham_tilts"]
