"""substrates: geometry of the tissue the walkers diffuse in (SI units: m, m^2/s).

Analytic substrates
-------------------
free, planes, cylinder, cylinders, cylinder_lattice, sphere, spheres, sphere_lattice

Every substrate reports its ground truth (``Substrate.ground_truth()``):
volume fractions, radii, surface-to-volume ratios, box size; permeable
substrates (``permeability=`` kappa in m/s) add their exchange times
(:func:`residence_times`).
"""

from .analytic import (CYLINDERS, FREE, PLANES, SPHERES, Substrate, cylinder, cylinder_lattice, cylinders, free,
                       planes, rotation_to, sphere, sphere_lattice, spheres)
from .cells import CellList, build_cells
from .exchange import residence_times
from .packing import pack_cylinders

__all__ = ["Substrate", "CellList", "build_cells", "free", "planes", "cylinder", "cylinders", "cylinder_lattice",
           "sphere", "spheres", "sphere_lattice", "pack_cylinders", "residence_times", "rotation_to", "FREE", "PLANES", "CYLINDERS", "SPHERES"]
