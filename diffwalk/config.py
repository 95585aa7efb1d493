"""TOML configurations: one simulation (substrate + scheme + settings) or a sweep over them.

Example::

    [substrate]
    type = "cylinder_lattice"
    radius = "3 um"
    icvf = 0.6

    [[scheme]]
    type = "pgse"
    delta = "10 ms"
    Delta = "30 ms"
    bvalues = "0 1000 2000 s/mm^2"
    directions = 12            # number of directions (Fibonacci hemisphere) or a list of vectors

    [simulation]
    n_walkers = 10000
    n_steps = 1000
    diffusivity = "2 um^2/ms"
    seed = 0
    start = "uniform"

    [sweep]                    # only for `diffwalk sweep`
    seeds = [0, 1]
    [sweep.grid]
    "substrate.radius" = ["2 um", "4 um"]
    "substrate.icvf" = [0.5, 0.6]

Every dimensional value carries its unit; unknown keys are errors.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import threading
import tomllib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import sequences
import substrates

from .quantities import SI_UNIT, UNITS, ConfigError, format_si, parse_quantity

# field kinds: a dimension name (unit-bearing; "length*": one or several values, an array; "length+": one value, or
# several where the generator takes one per item, e.g. per axon), or "float", "int" (>= 0), "count" (>= 1), "str",
# "vector", "bool", "floats", "ints", "directions", "points" (a list of "x y z unit" texts), "path" (a file, relative
# to the config file)
SUBSTRATE_FIELDS: dict[str, dict[str, str]] = {
    "free": {},
    "planes": {"spacing": "length", "normal": "vector", "permeability": "permeability",
               "relaxivity": "relaxivity"},
    "cylinder": {"radius": "length", "axis": "vector", "permeability": "permeability|sides",
                 "relaxivity": "relaxivity"},
    "cylinder_lattice": {"radius": "length", "icvf": "float", "lattice": "str", "axis": "vector", "repeats": "int",
                         "permeability": "permeability|sides", "relaxivity": "relaxivity"},
    "packed_cylinders": {"n": "count", "gamma_shape": "float", "gamma_scale": "length", "icvf": "float",
                         "seed": "int", "axis": "vector", "permeability": "permeability|sides",
                         "relaxivity": "relaxivity", "min_gap": "length",
                         "arrangement": "str", "clustering": "float"},
    "sphere": {"radius": "length", "permeability": "permeability|sides", "relaxivity": "relaxivity"},
    "sphere_lattice": {"radius": "length", "volume_fraction": "float", "lattice": "str", "repeats": "int",
                       "permeability": "permeability|sides", "relaxivity": "relaxivity"},
    "myelinated_axons": {"n": "count", "mean_radius": "length", "g_ratio": "float", "g_ratio_sd": "float",
                         "fvf": "float", "gamma_shape": "float", "seed": "int", "length": "length",
                         "resolution": "float", "permeability": "permeability|surfaces",
                         "relaxivity": "relaxivity|surfaces"},
    # generated and imported substrates: the keys are the generator's own keyword arguments (its docstring is the
    # reference), so that a config, a sweep and a Python call name a parameter alike
    "packed_axons": {"n_axons": "count", "mean_radius": "length", "icvf": "float", "shape": "float",
                     "radii": "length*", "seed": "int", "permeability": "permeability|sides", "as_mesh": "bool",
                     "length": "length", "resolution": "float", "dispersion": "float", "min_gap": "length",
                     "arrangement": "str", "clustering": "float", "relaxivity": "relaxivity"},
    "undulating_axons": {"n_axons": "count", "mean_radius": "length", "amplitude": "length+",
                         "wavelength": "length", "icvf": "float", "shape": "str", "gamma_shape": "float",
                         "radii": "length*", "periods": "count", "phase": "str", "seed": "int",
                         "resolution": "float", "permeability": "permeability|sides", "relaxivity": "relaxivity"},
    "beaded_axons": {"n_axons": "count", "mean_radius": "length", "bead_amplitude": "float",
                     "bead_spacing": "length", "spacing": "str", "bead_width": "length", "icvf": "float",
                     "gamma_shape": "float", "radii": "length*", "n_beads": "count", "seed": "int",
                     "resolution": "float", "permeability": "permeability|sides", "relaxivity": "relaxivity"},
    "somas_with_neurites": {"n_cells": "count", "soma_radius": "length", "soma_radius_sd": "length",
                            "neurites": "int", "neurite_radius": "length", "neurite_length": "length",
                            "volume_fraction": "float", "fillet": "length", "seed": "int", "resolution": "length",
                            "permeability": "permeability|sides", "max_tries": "count",
                            "relaxivity": "relaxivity"},
    "sphere_chain_axons": {"n_axons": "count", "mean_radius": "length", "gamma_shape": "float", "icvf": "float",
                           "spacing": "float", "length": "length", "bead_amplitude": "float",
                           "bead_wavelength": "length", "undulation": "length", "undulation_wavelength": "length",
                           "radii": "length*", "seed": "int"},
    "crossing_bundles": {"angles": "floats", "n_fibres": "count", "mean_radius": "length+", "icvf": "floats",
                         "fractions": "floats", "gamma_shape": "float", "layers": "count", "g_ratio": "floats",
                         "g_ratio_sd": "float", "amplitude": "length+", "wavelength": "length", "seed": "int",
                         "resolution": "float", "min_gap": "length", "representation": "str",
                         "angle_tolerance": "float", "permeability": "permeability|surfaces",
                         "relaxivity": "relaxivity|surfaces", "crossing_angle": "float", "odi": "floats",
                         "max_tilt": "float", "bend": "floats", "bead_amplitude": "floats",
                         "bead_spacing": "length", "glia": "int", "glia_radius": "length", "bingham": "floats"},
    "sphere_union": {"centers": "points", "radii": "length*", "box": "length*", "fibre": "ints", "file": "path",
                     "units": "str", "permeability": "permeability", "relaxivity": "relaxivity"},
    "from_swc": {"path": "path", "units": "str", "radius_scale": "float", "min_radius": "length",
                 "prune": "length", "resample": "length", "resolution": "length", "n_cells": "count",
                 "box": "length+", "seed": "int", "gap": "length", "permeability": "permeability|sides",
                 "relaxivity": "relaxivity", "trees": "str"},
    "from_mesh": {"path": "path", "units": "str", "box": "length*", "permeability": "permeability|sides",
                  "repair": "bool", "check_self_intersections": "bool", "relaxivity": "relaxivity"},
    "from_mcdc_cylinders": {"path": "path", "box": "length*", "conf": "path", "permeability": "permeability|sides",
                            "relaxivity": "relaxivity"},
    "from_mcdc_spheres": {"path": "path", "box": "length*", "conf": "path", "permeability": "permeability|sides",
                          "relaxivity": "relaxivity"},
    "from_caterpillar": {"path": "path", "box": "length*", "units": "str", "radius": "str"},
    "from_cactus": {"path": "path", "units": "str", "spacing": "float"},
}
#: [substrate] types built by calling a substrates generator with the parsed table as keyword arguments
GENERATORS = {"packed_axons": substrates.packed_axons, "undulating_axons": substrates.undulating_axons,
              "beaded_axons": substrates.beaded_axons, "somas_with_neurites": substrates.somas_with_neurites,
              "sphere_chain_axons": substrates.sphere_chain_axons, "from_swc": substrates.from_swc,
              "crossing_bundles": substrates.crossing_bundles,
              "from_mesh": substrates.from_mesh}
#: [substrate] types that read another generator's files (substrates.importers), called the same way; their
#: keys are the reader's keyword arguments (CATERPillar's cell types are fixed to its default: axons and glia)
IMPORTERS = {"from_mcdc_cylinders": substrates.read_mcdc_cylinders, "from_mcdc_spheres": substrates.read_mcdc_spheres,
             "from_caterpillar": substrates.read_caterpillar, "from_cactus": substrates.read_cactus}
REQUIRED_SUBSTRATE = {"planes": {"spacing"}, "cylinder": {"radius"}, "cylinder_lattice": {"radius", "icvf"},
                      "packed_cylinders": {"n", "gamma_shape", "gamma_scale", "icvf"}, "sphere": {"radius"},
                      "sphere_lattice": {"radius", "volume_fraction"}, "myelinated_axons": {"n", "mean_radius"},
                      "sphere_union": {"box"}, "from_swc": {"path"}, "from_mesh": {"path"},
                      "from_mcdc_cylinders": {"path"}, "from_mcdc_spheres": {"path"}, "from_caterpillar": {"path"},
                      "from_cactus": {"path"}}
SCHEME_FIELDS: dict[str, dict[str, str]] = {
    "pgse": {"delta": "time", "Delta": "time", "bvalues": "bvalue*", "gradient_strength": "gradient*",
             "directions": "directions", "ramp_time": "time", "echo_time": "time", "gradient_echo": "bool"},
    "ogse": {"frequency": "frequency", "n_periods": "int", "bvalues": "bvalue*", "directions": "directions",
             "shape": "str", "gap": "time", "echo_time": "time", "gradient_echo": "bool"},
    "tensor": {"bvalues": "bvalue*", "b_delta": "floats", "directions": "directions", "duration": "time",
               "gradient_echo": "bool"},
    "dde": {"delta": "time", "Delta": "time", "mixing_time": "time", "bvalues": "bvalue*", "directions": "directions",
            "second": "str", "ramp_time": "time", "echo_time": "time", "gradient_echo": "bool"},
}
#: [field] types (a static field offset from tissue susceptibility, walker.simulate's field=)
FIELD_FIELDS: dict[str, dict[str, str]] = {
    "susceptibility": {"chi": "susceptibility+", "chi_anisotropic": "susceptibility", "g_ratio": "float",
                       "b0": "magnetic_field", "b0_direction": "vector", "voxel": "length",
                       "image_reach": "length", "sampled": "ints"},
    "background_gradient": {"gradient": "gradient*", "b0": "magnetic_field", "b0_direction": "vector"},
    "map": {"path": "path", "units": "str", "b0": "magnetic_field", "b0_direction": "vector"},
}
REQUIRED_FIELD = {"susceptibility": {"chi"}, "background_gradient": {"gradient"}, "map": {"path"}}
REQUIRED_SCHEME = {"pgse": {"delta", "Delta"}, "ogse": {"frequency", "n_periods", "bvalues"},
                   "tensor": {"bvalues", "b_delta"}, "dde": {"delta", "Delta", "mixing_time", "bvalues"}}
#: second-block directions of a DDE table: the first block's, one perpendicular to it, or both (two measurements)
DDE_SECOND = ("parallel", "perpendicular", "both")
SIMULATION_FIELDS = {"n_walkers": "count", "n_steps": "count", "diffusivity": "diffusivity|compartments",
                     "t2": "time|compartments", "seed": "int", "start": "str", "gaussian_steps": "bool",
                     "backend": "str"}
#: compartment names a per-compartment table may use (the substrate says which of them it has)
COMPARTMENTS = ("intra", "extra", "inner", "myelin", "free")
TOP_LEVEL = {"substrate", "scheme", "simulation", "sweep", "field"}

DIRECTIONS_HELP = ("a count (Fibonacci hemisphere) or a list of [x, y, z]", "[[0, 0, 1]]")
ECHO_HELP = ("echo time (for T2 weighting); must hold the waveform", "the waveform's duration")
GE_HELP = ("a gradient echo: no refocusing pulse, so a [field] is not refocused (the effective gradients are "
           "the applied ones)", "false: a spin echo, refocused at TE / 2")
AXIS_HELP = ("cylinder axis, [x, y, z]", "[0, 0, 1]")
KAPPA_HELP = ("membrane permeability kappa; a table {outward = ..., inward = ...} where it depends on the "
              "direction", "0 m/s")
RHO_HELP = ("surface relaxivity rho of the walls (both faces); the b = 0 signal then decays "
            "(Brownstein-Tarr)", "0 m/s")
SEED_HELP = ("seed of the generator (radii, positions, phases): rows with the same [substrate] table share one "
             "substrate", "0")
#: What each config key means and its default ("required" where it has none), for the config reference in the
#: documentation (docs/_ext/diffwalk_docs.py) and ``diffwalk`` users; units come from the field kinds above.
FIELD_HELP: dict[str, dict[str, tuple[str, str]]] = {
    "substrate.planes": {"spacing": ("distance between parallel impermeable (or permeable) planes", "required"),
                         "normal": ("unit normal of the planes, [x, y, z]", "[0, 0, 1]"),
                         "permeability": ("membrane permeability kappa of the planes", "0 m/s"),
                         "relaxivity": RHO_HELP},
    "substrate.cylinder": {"radius": ("cylinder radius", "required"),
                           "axis": AXIS_HELP,
                           "permeability": KAPPA_HELP, "relaxivity": RHO_HELP},
    "substrate.cylinder_lattice": {
        "radius": ("radius of every cylinder", "required"),
        "icvf": ("intra-cylinder volume fraction, 0-1", "required"),
        "lattice": ('"hexagonal" or "square"', '"hexagonal"'),
        "axis": AXIS_HELP,
        "repeats": ("unit cells per side of the periodic box", "1"),
        "permeability": KAPPA_HELP, "relaxivity": RHO_HELP},
    "substrate.packed_cylinders": {
        "n": ("number of cylinders", "required"),
        "gamma_shape": ("shape k of the Gamma distribution of radii", "required"),
        "gamma_scale": ("scale theta of the Gamma distribution of radii (mean radius k theta)", "required"),
        "icvf": ("intra-cylinder volume fraction, 0-1", "required"),
        "seed": ("seed of the radii and of the packing", "0"),
        "axis": AXIS_HELP,
        "permeability": KAPPA_HELP,
        "relaxivity": RHO_HELP,
        "min_gap": ("thinnest extracellular sheet between cylinders", "2 % of the mean radius"),
        "arrangement": ('"random" (equilibrated hard disks), "hexagonal" or "clustered"', '"random"'),
        "clustering": ('attraction in kT for arrangement = "clustered"', "0")},
    "substrate.sphere": {"radius": ("sphere radius", "required"),
                         "permeability": KAPPA_HELP, "relaxivity": RHO_HELP},
    "substrate.sphere_lattice": {
        "radius": ("radius of every sphere", "required"),
        "volume_fraction": ("sphere volume fraction, 0-1", "required"),
        "lattice": ('"cubic" or "fcc"', '"cubic"'),
        "repeats": ("unit cells per side of the periodic box", "1"),
        "permeability": KAPPA_HELP, "relaxivity": RHO_HELP},
    "substrate.myelinated_axons": {
        "n": ("number of fibres (axon in its myelin sheath; regions myelin, intra, extra)", "required"),
        "mean_radius": ("mean inner (axon) radius, Gamma-distributed", "required"),
        "g_ratio": ("mean g-ratio, inner / outer radius", "0.7"),
        "g_ratio_sd": ("standard deviation of the g-ratio", "0.05"),
        "fvf": ("fibre (axon + myelin) volume fraction, 0-1", "0.6"),
        "gamma_shape": ("shape of the Gamma distribution of inner radii", "4"),
        "seed": ("seed of radii, g-ratios and packing", "0"),
        "length": ("period along the fibres", "10 mean outer radii"),
        "resolution": ("relative radius error of the polygonal sections", "0.01"),
        "permeability": ("permeability of both surfaces, or a table {inner = ..., outer = ...} (axon membrane, "
                         "sheath surface)", "0 m/s"),
        "relaxivity": ("surface relaxivity of both surfaces, or a table {inner = ..., outer = ...}", "0 m/s")},
    "substrate.packed_axons": {
        "n_axons": ("number of axons", "100"),
        "mean_radius": ("mean of the Gamma distribution of radii", "1 um"),
        "icvf": ("intra-axonal volume fraction to reach, 0-1", "0.75"),
        "shape": ("Gamma shape of the radii (larger: narrower)", "4"),
        "radii": ("radii to use instead of drawing them, one per axon", "drawn"),
        "seed": SEED_HELP,
        "permeability": KAPPA_HELP,
        "as_mesh": ("build the cylinders as a watertight mesh instead of exact cylinders", "false"),
        "length": ("box length along z (as_mesh), or the axon length (dispersion)", "10 mean radii"),
        "resolution": ("relative radius error of the mesh (as_mesh or dispersion)", "0.01"),
        "dispersion": ("orientation dispersion index ODI in (0, 1) of a Watson distribution about z: finite "
                       "capsules packed in 3-D", "none (parallel)"),
        "min_gap": ("smallest gap between two axon surfaces", "2 % of the mean radius"),
        "arrangement": ('"random", "clustered" or "hexagonal"', '"random"'),
        "clustering": ('square-well depth in kT for arrangement = "clustered"', "0"),
        "relaxivity": RHO_HELP},
    "substrate.undulating_axons": {
        "n_axons": ("number of axons", "100"),
        "mean_radius": ("mean inner radius (Gamma-distributed)", "1 um"),
        "amplitude": ("undulation amplitude A, one value or one per axon", "1 um"),
        "wavelength": ("undulation wavelength (the box is periods wavelengths long)", "20 um"),
        "icvf": ("intra-axonal volume fraction to reach, 0-1", "0.6"),
        "shape": ('centre-line shape, "sinusoid" or "helix"', '"sinusoid"'),
        "gamma_shape": ("Gamma shape of the radii", "4"),
        "radii": ("inner radii instead of drawing them, one per axon", "drawn"),
        "periods": ("wavelengths along the box", "1"),
        "phase": ('"random" (phase and plane per axon) or "coherent" (shared)', '"random"'),
        "seed": SEED_HELP,
        "resolution": ("relative radius error of the mesh", "0.02"),
        "permeability": KAPPA_HELP, "relaxivity": RHO_HELP},
    "substrate.beaded_axons": {
        "n_axons": ("number of axons", "20"),
        "mean_radius": ("mean shaft (minimum) radius r0 (Gamma-distributed)", "1 um"),
        "bead_amplitude": ("relative swelling a: beads reach r0 (1 + a)", "0.5"),
        "bead_spacing": ("mean distance between beads", "10 um"),
        "spacing": ('bead placement, "periodic" or "random"', '"periodic"'),
        "bead_width": ("Gaussian width of random beads", "bead_spacing / 6"),
        "icvf": ("intra-axonal volume fraction to reach, 0-1", "0.5"),
        "gamma_shape": ("Gamma shape of the shaft radii", "4"),
        "radii": ("shaft radii instead of drawing them, one per axon", "drawn"),
        "n_beads": ("beads per axon along the box (the box is n_beads bead_spacing long)", "4"),
        "seed": SEED_HELP,
        "resolution": ("relative radius error of the mesh", "0.02"),
        "permeability": KAPPA_HELP, "relaxivity": RHO_HELP},
    "substrate.somas_with_neurites": {
        "n_cells": ("number of cells (soma + radial neurites)", "12"),
        "soma_radius": ("mean soma radius", "4 um"),
        "soma_radius_sd": ("standard deviation of the soma radius", "0.8 um"),
        "neurites": ("neurites per cell (0: bare somas, exact spheres)", "3"),
        "neurite_radius": ("neurite radius", "0.75 um"),
        "neurite_length": ("length of each neurite beyond the soma surface", "4 um"),
        "volume_fraction": ("intra-cellular volume fraction to reach, 0-1", "0.15"),
        "fillet": ("radius of the smooth join between soma and neurite (0: a sharp crease)", "neurite_radius / 2"),
        "seed": SEED_HELP,
        "resolution": ("grid spacing of the mesher", "neurite_radius / 3"),
        "permeability": KAPPA_HELP,
        "max_tries": ("random placements tried per cell", "5000"),
        "relaxivity": RHO_HELP},
    "substrate.sphere_chain_axons": {
        "n_axons": ("number of axons (chains of overlapping spheres, no mesh)", "20"),
        "mean_radius": ("mean axon radius (Gamma-distributed)", "1 um"),
        "gamma_shape": ("Gamma shape of the radii", "4"),
        "icvf": ("fraction of the cross-section the axons' widest circles cover, 0-1", "0.5"),
        "spacing": ("distance between sphere centres, in axon radii (0-1.5)", "0.5"),
        "length": ("period along z", "10 mean radii"),
        "bead_amplitude": ("relative radius swing of the beads (0: none)", "0"),
        "bead_wavelength": ("distance between beads", "8 um"),
        "undulation": ("amplitude of the centre line's undulation (0: straight)", "0 m"),
        "undulation_wavelength": ("wavelength of the undulation", "20 um"),
        "radii": ("axon radii instead of drawing them, one per axon", "drawn"),
        "seed": SEED_HELP},
    "substrate.crossing_bundles": {
        "angles": ("direction of each bundle in the crossing plane in degrees, 1 to 3 (only differences matter)",
                   "[0, 90]"),
        "n_fibres": ("number of fibres over all bundles", "200"),
        "mean_radius": ("mean inner radius (Gamma-distributed), one or one per bundle", "1 um"),
        "icvf": ("intra-axonal volume fraction of each bundle's sheets, one or one per bundle", "0.7"),
        "fractions": ("share of the fibre volume in each bundle", "equal"),
        "gamma_shape": ("Gamma shape of the radii", "4"),
        "layers": ("sheets per bundle, interleaved along x", "1"),
        "g_ratio": ("mean g-ratio of each bundle's myelin, one or one per bundle", "none: no myelin"),
        "g_ratio_sd": ("standard deviation of the g-ratios", "0.05"),
        "amplitude": ("undulation amplitude of each bundle's fibres (random phase and plane per fibre)", "0 m"),
        "wavelength": ("undulation wavelength, rounded to a whole number of waves per fibre", "a quarter period"),
        "seed": SEED_HELP,
        "resolution": ("relative radius error of the mesh", "0.01"),
        "min_gap": ("thinnest extra-axonal sheet between two fibres", "2 % of the mean radius"),
        "representation": ('"mesh" (tubes: myelin, membranes, relaxivity) or "union" (overlapping spheres); '
                           'walkers inside and outside either way', '"mesh"'),
        "angle_tolerance": ("largest error in degrees of a realised relative direction (three bundles)", "0.5"),
        "permeability": KAPPA_HELP, "relaxivity": RHO_HELP,
        "crossing_angle": ("two bundles this many degrees apart, instead of angles (one number to sweep)",
                           "none: angles"),
        "odi": ("Watson dispersion of each bundle as its ODI: fibres are helices whose pitch angles sample the "
                "Watson law (measured ODI in the ground truth)", "0: none"),
        "max_tilt": ("steepest pitch angle of a dispersed fibre in degrees (Watson's tail beyond it is cut, "
                     "kappa lowered to keep the ODI)", "75"),
        "bend": ("coherent bending of each bundle in degrees: a sheet's fibres share one sinusoid in the crossing "
                 "plane (planar dispersion at full density)", "0: none"),
        "bead_amplitude": ("relative swelling of beads along each bundle's fibres (0.5: 1.5x the shaft)", "0: none"),
        "bead_spacing": ("distance between beads along a fibre", "10 um"),
        "glia": ("glial cells packed between the fibres (a soma and two processes of spheres; "
                 'representation = "union")', "0"),
        "glia_radius": ("soma radius of the glial cells", "2 um"),
        "bingham": ("Bingham dispersion kappa, beta (beta towards the crossing plane; one pair, or the pairs of "
                    "every bundle one after the other): fibres are coils sampling the law exactly", "none")},
    "substrate.sphere_union": {
        "centers": ('sphere centres, a list of "x y z unit" texts (["5 5 0 um", "5 5 1 um"])', "required, or file"),
        "radii": ("sphere radii, one per centre", "required, or file"),
        "box": ("periodic box, three lengths", "required"),
        "fibre": ("fibre each sphere belongs to, a list of whole numbers", "all one fibre"),
        "file": ("text file of spheres instead of centers/radii, one a line: x y z radius [fibre] (spaces or "
                 "commas; # comments); a path relative to the config file", "none"),
        "units": ('length unit of the file: "um", "nm", "mm" or "m"', '"um"'),
        "permeability": ("permeability of the union's surface (one value, or outward/inward)", "0: impermeable"),
        "relaxivity": ("surface relaxivity of the union's surface (both faces)", "0: none")},
    "substrate.from_swc": {
        "path": ("SWC morphology file, relative to the config file", "required"),
        "units": ('length unit of the file: "um", "nm", "mm" or "m"', '"um"'),
        "radius_scale": ("factor applied to every radius", "1"),
        "min_radius": ("radii below this (after radius_scale) are raised to it", "none: a radius <= 0 is refused"),
        "prune": ("drop terminal branches shorter than this", "none"),
        "resample": ("re-sample unbranched sections at this node spacing", "none"),
        "resolution": ("grid spacing of the mesher", "a quarter of the smallest radius"),
        "n_cells": ("copies of the cell in box, each randomly rotated", "1"),
        "box": ("periodic box, one length or three (needed for n_cells > 1 and extra-cellular space)",
                "none: a lone cell"),
        "seed": ("seed of the copies' rotations and positions", "0"),
        "gap": ("least distance between two cells' surfaces", "0.5 um"),
        "permeability": ("membrane permeability kappa (needs a box), or a table {outward = ..., inward = ...}",
                         "0 m/s"),
        "relaxivity": RHO_HELP,
        "trees": ('a file with several trees: "largest", "all" or "error"', '"largest"')},
    "substrate.from_mesh": {
        "path": ("closed triangle mesh (PLY, STL, OBJ, OFF), relative to the config file", "required"),
        "units": ('length unit of the file: "um", "nm", "mm" or "m"', '"um"'),
        "box": ("periodic box, three lengths", "none: not periodic"),
        "permeability": KAPPA_HELP,
        "repair": ("fix zero-area and duplicate faces, fins, winding and holes instead of refusing the mesh",
                   "false"),
        "check_self_intersections": ("refuse meshes whose faces cross", "true"),
        "relaxivity": RHO_HELP},
    "substrate.from_mcdc_cylinders": {
        "path": ("MC/DC cylinders_list file (scale line, then x y z r or x1 y1 z1 x2 y2 z2 r), relative to the "
                 "config file; parallel to z", "required"),
        "box": ("the voxel, three lengths (MC/DC keeps it in the .conf)", "none: give box or conf"),
        "conf": ("MC/DC .conf whose <voxels> block gives the voxel (mm), relative to the config file",
                 "none: give box or conf"),
        "permeability": KAPPA_HELP, "relaxivity": RHO_HELP},
    "substrate.from_mcdc_spheres": {
        "path": ("MC/DC spheres_list file (scale line, then x y z r), relative to the config file", "required"),
        "box": ("the voxel, three lengths", "none: give box or conf"),
        "conf": ("MC/DC .conf whose <voxels> block gives the voxel (mm)", "none: give box or conf"),
        "permeability": KAPPA_HELP, "relaxivity": RHO_HELP},
    "substrate.from_caterpillar": {
        "path": ("CATERPillar sphere list (.csv with its header, or an older .swc), relative to the config file; "
                 "axons and glial cells become fibres of a sphere union", "required"),
        "box": ("the voxel: one side or three", "Voxel Size from <name>_growth_info.txt beside the file"),
        "units": ('length unit of the file: "um", "nm", "mm" or "m"', '"um"'),
        "radius": ('"inner" (intra-axonal, inside the myelin) or "outer"', '"inner"')},
    "substrate.from_cactus": {
        "path": ("CACTUS strand list (.init, .partial or the final one), relative to the config file; strands "
                 "become chains of spheres", "required"),
        "units": ('length unit of the file: "um", "nm", "mm" or "m"', '"um"'),
        "spacing": ("largest gap between neighbouring spheres of a strand, in local radii", "0.5")},
    "scheme.pgse": {
        "delta": ("gradient pulse duration", "required"),
        "Delta": ("time between the onsets of the two pulses", "required"),
        "bvalues": ("b-values of the shells (b = 0 is measured once); or give gradient_strength", "required"),
        "gradient_strength": ("gradient amplitudes instead of bvalues", "none"),
        "directions": DIRECTIONS_HELP,
        "ramp_time": ("gradient rise time of each trapezoid", "0 s"),
        "echo_time": ECHO_HELP,
        "gradient_echo": GE_HELP},
    "scheme.ogse": {
        "frequency": ("oscillation frequency", "required"),
        "n_periods": ("periods per lobe", "required"),
        "bvalues": ("b-values of the shells", "required"),
        "directions": DIRECTIONS_HELP,
        "shape": ('"cos", "sin" or "trapezoid-cos"', '"cos"'),
        "gap": ("time between the two lobes", "0 s"),
        "echo_time": ECHO_HELP,
        "gradient_echo": GE_HELP},
    "scheme.tensor": {
        "bvalues": ("b-values of the shells", "required"),
        "b_delta": ("b-tensor shape: 1 linear, 0 spherical, -0.5 planar; one value or one per shell",
                    "required"),
        "directions": ("symmetry axes of the b-tensors: a count or a list of [x, y, z]", "[[0, 0, 1]]"),
        "duration": ("duration of the encoding waveform", "60 ms"),
        "gradient_echo": GE_HELP},
    "scheme.dde": {
        "delta": ("pulse duration of both PGSE blocks", "required"),
        "Delta": ("time between the onsets of a block's two pulses", "required"),
        "mixing_time": ("from the onset of the first block's second pulse to the onset of the second block's "
                        "first pulse (at least delta + ramp_time)", "required"),
        "bvalues": ("total b-values of the shells (both blocks; b = 0 is measured once)", "required"),
        "directions": ("first-block directions: a count (Fibonacci hemisphere) or a list of [x, y, z]",
                       "[[0, 0, 1]]"),
        "second": ('second-block direction: "parallel" (the first block\'s), "perpendicular" (one '
                   'perpendicular to it) or "both" (two measurements per direction)', '"both"'),
        "ramp_time": ("gradient rise time of each trapezoid", "0 s"),
        "echo_time": ECHO_HELP,
        "gradient_echo": GE_HELP},
    "field.susceptibility": {
        "chi": ("susceptibility difference of the fibres or cells to the space around them (one value, or one "
                "per mesh component)", "required"),
        "chi_anisotropic": ("radially anisotropic susceptibility of myelin sheaths (needs g_ratio; analytic "
                            "cylinders)", "0"),
        "g_ratio": ("makes each analytic cylinder a myelin sheath from g_ratio * radius to its radius", "none"),
        "b0": ("main field", "3 T"),
        "b0_direction": ("direction of B0 in the lab frame, [x, y, z]", "[0, 0, 1]"),
        "voxel": ("map voxel for meshes and unions (the Fourier kernel of the rasterised susceptibility)",
                  "0.2 um"),
        "image_reach": ("analytic substrates: radius within which periodic images are summed", "6 box lengths"),
        "sampled": ("analytic substrates: sample the closed forms on this many nodes [nx, ny, nz] (cylinders: "
                    "nz = 1), a trilinear map that walks much faster than the sum over sources", "none")},
    "field.background_gradient": {
        "gradient": ("constant gradient of the field offset, [gx, gy, gz] in the substrate's frame", "required"),
        "b0": ("main field (recorded)", "3 T"),
        "b0_direction": ("direction of B0 (recorded)", "[0, 0, 1]")},
    "field.map": {
        "path": ("field map file: .npz (save_field_map) or NIfTI (axis-aligned affine, one period)", "required"),
        "units": ('units of a NIfTI map\'s values: "T", "uT", "Hz", "rad/s" or "ppm"', "required for NIfTI"),
        "b0": ("main field", "3 T"),
        "b0_direction": ("direction of B0 in the map's frame, [x, y, z]", "[0, 0, 1]")},
    "simulation": {
        "n_walkers": ("number of walkers; the standard error falls as 1/sqrt(n_walkers)", "100000"),
        "n_steps": ("time steps over the scheme's duration", "1000"),
        "diffusivity": ("intrinsic diffusivity D: one value, or a table with one per compartment "
                        '({intra = "1 um^2/ms", extra = "2 um^2/ms"})', "required"),
        "t2": ("transverse relaxation time T2 (signals weighted by exp(-time / T2) in each compartment up to "
               'the echo time): one value, or a table per compartment ({intra = "70 ms", extra = "100 ms"})',
               "no relaxation"),
        "seed": ("root seed (results are bit-identical for a seed)", "0"),
        "start": ('where walkers start: "intra", "extra" or "uniform"', '"intra" where there is an intra '
                  'compartment, else "uniform"'),
        "gaussian_steps": ("Gaussian instead of fixed-length steps", "false"),
        "backend": ('"cpu", "cuda" or "auto"', '"cpu"')},
}


#: field-kind suffix -> (keys its table may use, whether it needs all of them, an example): such fields take
#: one value or a table of values, e.g. diffusivity = {intra = "1 um^2/ms", extra = "2 um^2/ms"}
TABLES = {"|sides": (("outward", "inward"), True, "{outward = ..., inward = ...}"),
          "|compartments": (COMPARTMENTS, False, "{intra = ..., extra = ...}"),
          "|surfaces": (("inner", "outer"), True, "{inner = ..., outer = ...}")}


def _split_table(kind: str) -> tuple[str, str | None]:
    for suffix in TABLES:
        if kind.endswith(suffix):
            return kind.removesuffix(suffix), suffix
    return kind, None


def base_kind(kind: str) -> str:
    """The dimension or plain kind of a schema field kind ("bvalue*" -> "bvalue", "time|compartments" -> "time")."""
    return _split_table(kind)[0].rstrip("*+")


def _value(kind: str, value, field: str):
    kind, table = _split_table(kind)
    if table and isinstance(value, dict):
        keys, all_needed, example = TABLES[table]
        unknown, missing = set(value) - set(keys), set(keys) - set(value) if all_needed else set()
        if unknown or missing or not value:
            raise ConfigError(f"{field} = {value!r}: give one value or a table {example} with keys among "
                              f"{list(keys)}; unknown {sorted(unknown)}, missing {sorted(missing)}")
        return {k: _value(kind, v, f"{field}.{k}") for k, v in value.items()}
    many, one_or_many = kind.endswith("*"), kind.endswith("+")
    kind = kind.rstrip("*+")
    if kind in UNITS:  # a dimension: the value carries its unit
        if one_or_many:
            # one value stays a number, so that a sweep over it stores its SI value in the database
            out = parse_quantity(value, kind, field, many=True)
            return float(out[0]) if out.size == 1 else out
        return parse_quantity(value, kind, field, many=many)
    if kind == "points":
        rows = [parse_quantity(v, "length", field, many=True) if isinstance(v, str) else None
                for v in (value if isinstance(value, list) else [])]
        if not rows or any(r is None or r.shape != (3,) for r in rows):
            raise ConfigError(f"{field} = {value!r}: expected a list of points, each \"x y z unit\" "
                              "(e.g. [\"5 5 0 um\", \"5 5 1.5 um\"])")
        return np.array(rows)
    if kind == "ints":
        vals = value if isinstance(value, list) else [value]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in vals):
            raise ConfigError(f"{field} = {value!r}: expected a list of whole numbers >= 0")
        return np.array(vals, dtype=np.int64)
    if kind == "path":
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{field} = {value!r}: expected a file path (text, relative to the config file)")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{field} = {value!r}: expected a plain number (no unit)")
        return float(value)
    if kind == "floats":
        vals = value if isinstance(value, list) else [value]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            raise ConfigError(f"{field} = {value!r}: expected a number or a list of numbers")
        return np.array(vals, dtype=float)
    if kind in ("int", "count"):
        least = 1 if kind == "count" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{field} = {value!r}: expected a whole number >= {least}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{field} = {value!r}: expected text")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{field} = {value!r}: expected true or false")
        return value
    if kind == "vector":
        a = np.asarray(value, dtype=float) if isinstance(value, list) else None
        if a is None or a.shape != (3,):
            raise ConfigError(f"{field} = {value!r}: expected a list of 3 numbers")
        return a
    if kind == "directions":
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return sequences.fibonacci_directions(value)
        a = np.asarray(value, dtype=float) if isinstance(value, list) else None
        if a is None or a.ndim != 2 or a.shape[1] != 3:
            raise ConfigError(f"{field} = {value!r}: expected a count or a list of [x, y, z] vectors")
        return a
    raise AssertionError(kind)


def _section(raw: dict, allowed: dict[str, str], name: str, required: set[str] = frozenset(),
             title: str | None = None) -> dict:
    title = title or f"[{name}]"
    unknown = set(raw) - set(allowed)
    if unknown:
        # a misspelt key is the usual cause: name the nearest allowed one
        near = {k: difflib.get_close_matches(k, list(allowed), n=1) for k in sorted(unknown)}
        hint = "; ".join(f"did you mean '{m[0]}' for '{k}'?" for k, m in near.items() if m)
        raise ConfigError(f"{title}: unknown key(s) {sorted(unknown)}{' (' + hint + ')' if hint else ''}; "
                          f"allowed: {sorted(allowed)}")
    missing = set(required) - set(raw)
    if missing:
        raise ConfigError(f"{title}: missing required key(s) {sorted(missing)}")
    return {k: _value(allowed[k], v, f"{name}.{k}") for k, v in raw.items()}


@dataclass
class Job:
    """One simulation parsed from a config: what to build and run, plus the SI echo.

    Made by :func:`parse_job`; the fields are also its attributes.

    Parameters
    ----------
    substrate : substrates.Substrate
        The substrate built from the [substrate] table (lengths in m).
    scheme : sequences.Scheme
        The scheme built from the [[scheme]] tables (T/m, s, s/m^2).
    simulation : dict
        The [simulation] table in SI (``diffusivity`` in m^2/s; ``n_walkers``,
        ``n_steps``, ``seed``, ``start``, ...), as keyword arguments of
        :func:`walker.simulate`.
    echo : dict
        ``{"substrate": ..., "scheme": ..., "simulation": ...}`` (and ``"field"``): every parsed
        value in SI, for printing and provenance.
    field : substrates.Field or None
        The static field offset of the [field] table (``walker.simulate``'s ``field=``), or None.
    """

    substrate: substrates.Substrate
    scheme: sequences.Scheme
    simulation: dict
    echo: dict
    field: substrates.Field | None = None


def build_substrate(raw: dict, base_dir: str | Path | None = None) -> tuple[substrates.Substrate, dict]:
    """Substrate and its parsed SI parameters from a [substrate] table.

    A substrate made from the same table (same SI values, same seed, same file contents) is built once per
    process and shared (see :func:`substrate_cache_info`): rows of a sweep that differ only in the scheme or the
    simulation reuse it. Treat ``Job.substrate`` as read-only.

    Parameters
    ----------
    raw : dict
        The [substrate] table as read from TOML (values with units as text, e.g. ``"3 um"``).
    base_dir : str or Path, optional
        Folder that relative file paths (``path``, ``file``) are read from: the config file's folder. Default:
        the working directory.

    Returns
    -------
    substrate : substrates.Substrate
        The substrate, lengths in m.
    echo : dict
        ``{"type": ..., key: SI value, ...}``; file paths made absolute, with their SHA-256 as ``KEY_sha256``.

    Raises
    ------
    ConfigError
        For an unknown type or key, a value of the wrong unit, a missing file (naming the key and the path) or
        parameters the generator refuses.
    """
    raw = dict(raw)
    kind = raw.pop("type", None)
    if kind not in SUBSTRATE_FIELDS:
        raise ConfigError(f"substrate.type = {kind!r}: choose one of {sorted(SUBSTRATE_FIELDS)}")
    p = _section(raw, SUBSTRATE_FIELDS[kind], "substrate", REQUIRED_SUBSTRATE.get(kind, set()),
                 title=f'[substrate] type = "{kind}"')
    digests = _resolve_files(kind, p, base_dir)
    echo = {"type": kind, **p, **digests}
    key = substrate_key(echo)
    sub = _cache_get(key)
    if sub is None:
        sub = _make_substrate(kind, p)
        _cache_put(key, sub)
    return sub, echo


def _resolve_files(kind: str, p: dict, base_dir: str | Path | None) -> dict:
    """Make the table's file paths absolute (in ``p``), refuse missing files, and return each file's SHA-256
    (``{"path_sha256": ...}``): the substrate depends on the file's contents, not only on its name."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    digests = {}
    for name, field_kind in SUBSTRATE_FIELDS[kind].items():
        if field_kind != "path" or name not in p:
            continue
        given = p[name]
        path = Path(given).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            where = "" if Path(given).is_absolute() else \
                f" (relative paths are read from the config file's folder, {base})"
            raise ConfigError(f"substrate.{name} = {given!r}: no such file {path}{where}")
        p[name] = str(path.resolve())
        digests[f"{name}_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def _make_substrate(kind: str, p: dict) -> substrates.Substrate:
    """Call the substrate factory of ``kind`` with the parsed SI table ``p``."""
    walls = {"permeability": p.get("permeability", 0.0), "relaxivity": p.get("relaxivity", 0.0)}
    try:
        if kind in GENERATORS or kind in IMPORTERS:
            # the keys are the generator's (reader's) keyword arguments, already in SI
            return {**GENERATORS, **IMPORTERS}[kind](**p)
        if kind == "sphere_union":
            return _sphere_union(p)
        if kind == "free":
            return substrates.free()
        if kind == "planes":
            return substrates.planes(p["spacing"], normal=p.get("normal", (0, 0, 1)), **walls)
        if kind == "cylinder":
            return substrates.cylinder(p["radius"], axis=p.get("axis", (0, 0, 1)), **walls)
        if kind == "cylinder_lattice":
            return substrates.cylinder_lattice(p["radius"], p["icvf"], p.get("lattice", "hexagonal"),
                                               axis=p.get("axis", (0, 0, 1)), repeats=p.get("repeats", 1),
                                               **walls)
        if kind == "packed_cylinders":
            rng = np.random.default_rng(p.get("seed", 0))
            radii = rng.gamma(p["gamma_shape"], p["gamma_scale"], p["n"])
            return substrates.pack_cylinders(radii, p["icvf"], seed=p.get("seed", 0), axis=p.get("axis", (0, 0, 1)),
                                             **walls, min_gap=p.get("min_gap"),
                                             arrangement=p.get("arrangement", "random"),
                                             clustering=p.get("clustering", 0.0))
        if kind == "sphere":
            return substrates.sphere(p["radius"], **walls)
        if kind == "myelinated_axons":
            return substrates.myelinated_axons(p["n"], p["mean_radius"], g_ratio=p.get("g_ratio", 0.7),
                                               g_ratio_sd=p.get("g_ratio_sd", 0.05), fvf=p.get("fvf", 0.6),
                                               gamma_shape=p.get("gamma_shape", 4.0), seed=p.get("seed", 0),
                                               length=p.get("length"), resolution=p.get("resolution", 0.01),
                                               **walls)
        return substrates.sphere_lattice(p["radius"], p["volume_fraction"], p.get("lattice", "cubic"),
                                         repeats=p.get("repeats", 1), **walls)
    except ConfigError:
        raise
    except (ValueError, NotImplementedError, OSError) as exc:
        raise ConfigError(f"[substrate] {kind}: {exc}") from exc


def _sphere_union(p: dict) -> substrates.Substrate:
    """A sphere_union from inline ``centers``/``radii``/``fibre`` or from a ``file`` of spheres."""
    inline = [k for k in ("centers", "radii", "fibre") if k in p]
    if "file" in p:
        if inline:
            raise ConfigError(f"[substrate] sphere_union: give the spheres either in file or as centers and radii, "
                              f"not both (file given with {', '.join(inline)})")
        centers, radii, fibre = _read_spheres(p["file"], p.get("units", "um"))
        description = {"factory": "sphere_union", "source": p["file"]}
    else:
        if "units" in p:
            raise ConfigError("substrate.units is the length unit of a file of spheres (file = ...); inline "
                              "centers and radii carry their own units")
        missing = sorted({"centers", "radii"} - set(p))
        if missing:
            raise ConfigError(f"[substrate] sphere_union: missing key(s) {missing}; give centers and radii, or "
                              "file = a text file of spheres")
        centers, radii, fibre = p["centers"], p["radii"], p.get("fibre")
        if len(centers) != len(radii):
            raise ConfigError(f"[substrate] sphere_union: {len(centers)} centers but {len(radii)} radii; give one "
                              "radius per centre")
        description = None
    return substrates.sphere_union(centers, radii, p["box"], fibre=fibre, description=description,
                                   permeability=p.get("permeability", 0.0), relaxivity=p.get("relaxivity", 0.0))


def _read_spheres(path: str, units: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Centres (m), radii (m) and fibre labels of a text file of spheres, one a line: x y z radius [fibre]."""
    factors = UNITS["length"]
    if units not in factors:
        raise ConfigError(f"substrate.units = {units!r}: not a length unit; accepted: {', '.join(factors)}")
    lines = [ln.split("#", 1)[0].replace(",", " ").split() for ln in Path(path).read_text().splitlines()]
    rows = [ln for ln in lines if ln]
    widths = {len(r) for r in rows}
    if not rows or not widths <= {4, 5} or len(widths) > 1:
        raise ConfigError(f"substrate.file = {path!r}: expected one sphere a line, 'x y z radius' or "
                          f"'x y z radius fibre' (spaces or commas; # starts a comment); found rows of "
                          f"{sorted(widths) or 0} columns")
    try:
        data = np.array(rows, dtype=float)
    except ValueError as exc:
        raise ConfigError(f"substrate.file = {path!r}: not numbers ({exc})") from None
    fibre = None
    if data.shape[1] == 5:
        if not np.all(data[:, 4] == np.round(data[:, 4])) or np.any(data[:, 4] < 0):
            raise ConfigError(f"substrate.file = {path!r}: the fifth column (fibre) must hold whole numbers >= 0")
        fibre = data[:, 4].astype(np.int64)
    scale = factors[units]
    return data[:, :3] * scale, data[:, 3] * scale, fibre


# ------------------------------------------------------------------------------------ substrate reuse
# Generated substrates (meshes above all) take seconds to minutes to build; sweep rows that differ only in the
# scheme, the diffusivity or the walkers' seed ask for the same one. They are kept here, most recently used last,
# keyed on a hash of the parsed table (SI values, so "3 um" and "3e-6 m" share one) and of the files it reads.
# A substrate is deterministic in its table and read-only to the walker (its lazily built grids depend on
# the substrate alone), so sharing it leaves every result bit-identical.
_CACHE: OrderedDict[str, substrates.Substrate] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_STATE = {"maxsize": 4, "hits": 0, "misses": 0}


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot hash a {type(value).__name__} in a [substrate] table")


def substrate_key(echo: dict) -> str:
    """Canonical SHA-256 of a parsed [substrate] table (the ``echo`` of :func:`build_substrate`).

    Parameters
    ----------
    echo : dict
        The table in SI, with its ``type`` (and the SHA-256 of the files it reads).

    Returns
    -------
    str
        Hex digest; equal for tables that give the same substrate (key order and unit spelling aside).
    """
    return hashlib.sha256(json.dumps(echo, sort_keys=True, default=_jsonable).encode()).hexdigest()


def _cache_get(key: str) -> substrates.Substrate | None:
    with _CACHE_LOCK:
        sub = _CACHE.get(key)
        if sub is None:
            _CACHE_STATE["misses"] += 1
        else:
            _CACHE_STATE["hits"] += 1
            _CACHE.move_to_end(key)
        return sub


def _cache_put(key: str, sub: substrates.Substrate) -> None:
    with _CACHE_LOCK:
        if _CACHE_STATE["maxsize"] <= 0:
            return
        _CACHE[key] = sub
        while len(_CACHE) > _CACHE_STATE["maxsize"]:
            _CACHE.popitem(last=False)


def substrate_cache_info() -> dict:
    """How the substrate reuse of this process has done.

    Returns
    -------
    dict
        ``hits`` (substrates reused), ``misses`` (built), ``size`` (held now) and ``maxsize``.
    """
    with _CACHE_LOCK:
        return {**_CACHE_STATE, "size": len(_CACHE)}


def set_substrate_cache_size(maxsize: int) -> int:
    """Set how many substrates this process keeps for reuse (0: none, every row builds its own).

    Parameters
    ----------
    maxsize : int
        Substrates held at most (the least recently used is dropped first); each holds its mesh and grids, so
        a large mesh costs its memory while held.

    Returns
    -------
    int
        The previous size.
    """
    if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
        raise ValueError(f"maxsize must be a whole number >= 0, got {maxsize!r}")
    with _CACHE_LOCK:
        old = _CACHE_STATE["maxsize"]
        _CACHE_STATE["maxsize"] = maxsize
        while len(_CACHE) > maxsize:
            _CACHE.popitem(last=False)
        return old


def clear_substrate_cache() -> None:
    """Drop every substrate held for reuse and reset the counts of :func:`substrate_cache_info`."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _CACHE_STATE.update(hits=0, misses=0)


def build_scheme(entries: list) -> tuple[sequences.Scheme, list]:
    """Concatenated scheme from a list of [[scheme]] tables."""
    if not isinstance(entries, list) or not entries:
        raise ConfigError("[[scheme]]: give at least one scheme table")
    makers, echo = [], []
    for i, raw in enumerate(entries):
        maker, entry_echo = _scheme_maker(dict(raw), f"scheme[{i}]")
        makers.append(maker)
        echo.append(entry_echo)
    parts = [make(None) for make in makers]
    for part, entry in zip(parts, echo):
        entry["n_measurements"] = len(part)
    try:
        return sequences.concatenate(parts), echo
    except ValueError:
        # each entry chose its own edge-aligned step and they do not nest: rebuild all on the finest
        # one (edges that miss it are step-averaged, which keeps q exact at every grid point)
        dt = min(p.dt for p in parts)
        return sequences.concatenate([make(dt) for make in makers]), echo


def _scheme_maker(raw: dict, name: str):
    """A function dt -> Scheme for one [[scheme]] table, and its SI echo."""
    kind = raw.pop("type", None)
    if kind not in SCHEME_FIELDS:
        raise ConfigError(f"{name}.type = {kind!r}: choose one of {sorted(SCHEME_FIELDS)}")
    p = _section(raw, SCHEME_FIELDS[kind], name, REQUIRED_SCHEME[kind])
    u = p.get("directions", np.array([[0.0, 0.0, 1.0]]))
    amp_key = "gradient_strength" if "gradient_strength" in p else "bvalues"
    amps = p.get(amp_key)
    if amps is None:
        raise ConfigError(f"{name}: give bvalues (e.g. '0 1000 s/mm^2') or gradient_strength")
    # every non-zero shell is measured along every direction; b = 0 once
    amp_list, dir_list = [], []
    for a in amps:
        rows = u[:1] if a == 0 else u
        amp_list += [a] * len(rows)
        dir_list.append(rows)
    amp_arr, dirs = np.array(amp_list), np.concatenate(dir_list)

    def make(dt):
        scheme = _make_scheme(dt)
        return scheme.with_refocusing([]) if p.get("gradient_echo", False) else scheme

    def _make_scheme(dt):
        try:
            if kind == "pgse":
                return sequences.pgse(p["delta"], p["Delta"], directions=dirs, ramp_time=p.get("ramp_time", 0.0),
                                      echo_time=p.get("echo_time"), dt=dt, **{amp_key: amp_arr})
            if kind == "ogse":
                return sequences.ogse(frequency=p["frequency"], n_periods=p["n_periods"], bvalues=amp_arr,
                                      directions=dirs, shape=p.get("shape", "cos"), gap=p.get("gap", 0.0),
                                      echo_time=p.get("echo_time"), dt=dt)
            if kind == "dde":
                return _dde_scheme(p, amp_arr, dirs, dt, name)
            bd = p["b_delta"]
            bd = np.repeat(bd, len(amp_arr)) if bd.size == 1 else bd
            return sequences.tensor_encoding(amp_arr, bd, dirs, duration=p.get("duration", 60e-3), dt=dt)
        except ValueError as exc:
            raise ConfigError(f"{name} ({kind}): {exc}") from exc

    return make, {"type": kind, **{k: v for k, v in p.items() if k != "directions"}}


def _perpendicular(u: np.ndarray) -> np.ndarray:
    """(N, 3) unit vectors perpendicular to the rows of u: u x z, or u x x where u is near z."""
    ref = np.where(np.abs(u[:, 2:3]) > 0.9, np.array([[1.0, 0, 0]]), np.array([[0.0, 0, 1]]))
    v = np.cross(u, ref)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _dde_scheme(p: dict, amp: np.ndarray, dirs: np.ndarray, dt, name: str) -> sequences.Scheme:
    """A DDE table's scheme: per shell and first-block direction, the parallel and/or perpendicular pair."""
    second = p.get("second", "both")
    if second not in DDE_SECOND:
        raise ConfigError(f"{name}.second = {second!r}: choose one of {list(DDE_SECOND)}")
    pairs = {"parallel": [dirs], "perpendicular": [_perpendicular(dirs)], "both": [dirs, _perpendicular(dirs)]}
    # b = 0 once: the perpendicular copy of a b = 0 measurement is the same measurement
    keep = [np.ones(len(amp), bool)] + [amp > 0] * (len(pairs[second]) - 1)
    keep = np.concatenate(keep)
    reps = len(pairs[second])
    return sequences.dde(p["delta"], p["Delta"], p["mixing_time"], bvalues=np.tile(amp, reps)[keep],
                         directions1=np.tile(dirs, (reps, 1))[keep], directions2=np.concatenate(pairs[second])[keep],
                         ramp_time=p.get("ramp_time", 0.0), echo_time=p.get("echo_time"), dt=dt)


def parse_job(cfg: dict, base_dir: str | Path | None = None) -> Job:
    """Build a :class:`Job` from a parsed TOML document (the [sweep] table is ignored here).

    Parameters
    ----------
    cfg : dict
        The parsed TOML document (see :func:`load`); values with units are
        strings such as ``"3 um"`` or ``"2 um^2/ms"``.
    base_dir : str or Path, optional
        The config file's folder, which relative file paths in [substrate]
        are read from (default: the working directory).

    Returns
    -------
    Job
        Substrate, scheme and simulation settings, converted to SI.

    Raises
    ------
    ConfigError
        If a table or key is missing or unknown, or a value has the wrong
        unit or is impossible.
    """
    unknown = set(cfg) - TOP_LEVEL
    if unknown:
        raise ConfigError(f"unknown top-level table(s) {sorted(unknown)}; allowed: {sorted(TOP_LEVEL)}")
    if "substrate" not in cfg or "scheme" not in cfg:
        raise ConfigError("a config needs a [substrate] table and at least one [[scheme]] table")
    sub, sub_echo = build_substrate(cfg["substrate"], base_dir)
    scheme, scheme_echo = build_scheme(cfg["scheme"])
    sim = _section(cfg.get("simulation", {}), SIMULATION_FIELDS, "simulation", {"diffusivity"})
    start = sim.get("start")
    if start is not None and start not in ("intra", "extra", "uniform"):
        raise ConfigError(f"simulation.start = {start!r}: choose 'intra', 'extra' or 'uniform'")
    echo = {"substrate": sub_echo, "scheme": scheme_echo, "simulation": sim}
    fld = None
    if "field" in cfg:
        fld, echo["field"] = build_field(cfg["field"], sub, base_dir)
    return Job(sub, scheme, sim, echo, fld)


def build_field(raw: dict, sub: substrates.Substrate, base_dir: str | Path | None = None):
    """The static field offset of a [field] table, for the job's substrate, and its SI echo.

    Parameters
    ----------
    raw : dict
        The [field] table as read from TOML.
    sub : substrates.Substrate
        The substrate it is built for.
    base_dir : str or Path, optional
        Folder a relative ``path`` is read from.

    Returns
    -------
    field : substrates.Field
    echo : dict
    """
    raw = dict(raw)
    kind = raw.pop("type", None)
    if kind not in FIELD_FIELDS:
        raise ConfigError(f"field.type = {kind!r}: choose one of {sorted(FIELD_FIELDS)}")
    p = _section(raw, FIELD_FIELDS[kind], "field", REQUIRED_FIELD[kind], title=f'[field] type = "{kind}"')
    echo = {"type": kind, **p}
    b0 = p.get("b0", 3.0)
    direction = p.get("b0_direction", (0.0, 0.0, 1.0))
    try:
        if kind == "background_gradient":
            return substrates.background_gradient(p["gradient"], b0=b0, b0_direction=direction), echo
        if kind == "map":
            path = Path(p["path"])
            path = path if path.is_absolute() or base_dir is None else Path(base_dir) / path
            if not path.exists():
                raise ConfigError(f"field.path = {p['path']!r}: no such file (looked for {path})")
            echo["path"] = str(path.resolve())
            echo["path_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            return substrates.read_field_map(path, units=p.get("units"), b0=b0, b0_direction=direction), echo
        analytic = sub.family == "analytic" and sub.kind in (substrates.CYLINDERS, substrates.SPHERES)
        if analytic:
            inner = p["g_ratio"] * sub.radii if "g_ratio" in p else None
            fld = substrates.susceptibility_field(sub, p["chi"], b0, direction,
                                                  chi_anisotropic=p.get("chi_anisotropic", 0.0), inner_radii=inner,
                                                  image_reach=p.get("image_reach"))
            return (fld.sampled(tuple(p["sampled"])) if "sampled" in p else fld), echo
        for key in ("g_ratio", "chi_anisotropic", "image_reach", "sampled"):
            if key in p:
                raise ConfigError(f"field.{key} applies to analytic cylinders and spheres only; this substrate's "
                                  "field is the Fourier kernel of its rasterised susceptibility (chi, voxel)")
        return substrates.susceptibility_map(sub, p["chi"], p.get("voxel", 0.2e-6), b0, direction), echo
    except ValueError as exc:
        raise ConfigError(f"[field] type = \"{kind}\": {exc}") from exc


def load(path: str | Path) -> dict:
    """Read a TOML file, with a clear error on syntax problems.

    Parameters
    ----------
    path : str or Path
        The ``.toml`` configuration file.

    Returns
    -------
    dict
        The parsed document (values not yet converted to SI; see :func:`parse_job`).

    Raises
    ------
    ConfigError
        If the file does not exist or is not valid TOML.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from exc


def set_dotted(cfg: dict, key: str, value) -> dict:
    """A deep copy of ``cfg`` with ``key`` ("substrate.radius", "scheme.0.delta") set to ``value``."""
    out = copy.deepcopy(cfg)
    parts = key.split(".")
    node = out
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[int(part)]
        else:
            if part not in node:
                raise ConfigError(f"sweep.grid: '{key}' does not name a config field ('{part}' not found)")
            node = node[part]
        if not isinstance(node, (dict, list)):
            raise ConfigError(_not_a_table(key, parts[:depth + 1], node))
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


def _not_a_table(key: str, path: list[str], value) -> str:
    """Why sweep.grid key ``key`` cannot go into ``path``, which holds one value, and how to make it a table."""
    field, entry = ".".join(path), key.split(".")[len(path)]
    kinds = [k for table in (*SUBSTRATE_FIELDS.values(), SIMULATION_FIELDS) for f, k in table.items() if f == path[-1]]
    suffix = next((_split_table(k)[1] for k in kinds if _split_table(k)[1]), None)
    if suffix is None:
        return f"sweep.grid: '{key}' goes into {field} = {value!r}, which is one value, not a table"
    keys = TABLES[suffix][0]
    example = ", ".join(f"{k} = ..." for k in dict.fromkeys((entry, *keys[:2])))
    return (f"sweep.grid: '{key}' sweeps one entry of {field}, but the config gives {field} = {value!r} (one value "
            f"for all): make it a table, {path[-1]} = {{{example}}} (keys: {', '.join(keys)}), or sweep "
            f"'{field}' itself")


def sweep_rows(cfg: dict) -> tuple[list[str], list[dict]]:
    """Expand a sweep spec into its rows: grid values x seeds, in a fixed order.

    Returns
    -------
    names : list of str
        The swept field names (plus "seed").
    rows : list of dict
        Per row: {"params": {name: raw value}, "config": full config}.
    """
    sweep = cfg.get("sweep")
    if not isinstance(sweep, dict):
        raise ConfigError("a sweep spec needs a [sweep] table (with seeds and/or [sweep.grid])")
    unknown = set(sweep) - {"seeds", "grid"}
    if unknown:
        raise ConfigError(f"[sweep]: unknown key(s) {sorted(unknown)}; allowed: ['grid', 'seeds']")
    seeds = sweep.get("seeds", [cfg.get("simulation", {}).get("seed", 0)])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = list(range(seeds))
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"sweep.seeds = {seeds!r}: expected a count or a list of integers")
    grid = sweep.get("grid", {})
    if not isinstance(grid, dict):
        raise ConfigError("sweep.grid must be a table of 'field' = [values]")
    names = list(grid)
    for n in names:
        if not isinstance(grid[n], list) or not grid[n]:
            raise ConfigError(f"sweep.grid.'{n}' must be a non-empty list of values")
    base = {k: v for k, v in cfg.items() if k != "sweep"}
    rows = []
    for combo in itertools.product(*[grid[n] for n in names]):
        c = base
        for n, v in zip(names, combo):
            c = set_dotted(c, n, v)
        for seed in seeds:
            rc = set_dotted(c, "simulation.seed", seed) if "simulation" in c else {**c, "simulation": {"seed": seed}}
            rows.append({"params": {**dict(zip(names, combo)), "seed": seed}, "config": rc})
    return names + ["seed"], rows


def echo_text(job: Job) -> str:
    """The parsed configuration in SI units, for logs and provenance."""
    lines = []
    for section, content in (("substrate", [job.echo["substrate"]]), ("scheme", job.echo["scheme"]),
                             ("simulation", [job.echo["simulation"]]),
                             ("field", [job.echo["field"]] if "field" in job.echo else [])):
        for entry in content:
            # each unit-bearing field's dimension, from the entry's own schema table (one key name, e.g.
            # "resolution", is a length for one generator and a plain number for another)
            table = SIMULATION_FIELDS if section == "simulation" else \
                {"substrate": SUBSTRATE_FIELDS, "scheme": SCHEME_FIELDS,
                 "field": FIELD_FIELDS}[section].get(entry.get("type"), {})
            dims = {k: "length" if base_kind(v) == "points" else base_kind(v) for k, v in table.items()
                    if base_kind(v) in SI_UNIT or base_kind(v) == "points"}
            items = []
            for k, v in entry.items():
                if isinstance(v, dict) and k in dims:
                    items.append(f"{k}={{" + ", ".join(f"{c}: {format_si(x, dims[k])}" for c, x in v.items()) + "}")
                else:
                    items.append(f"{k}={format_si(v, dims[k])}" if k in dims else f"{k}={v}")
            lines.append(f"[{section}] " + ", ".join(items))
    return "\n".join(lines)
