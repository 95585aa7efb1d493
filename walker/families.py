"""The walker's side of the substrate families: what each family gives the engine, declared in one place.

A substrate names its family (``substrate.family``: "analytic", "mesh",
"union", ...; see :data:`substrates.FAMILIES`). The engine never asks what
type a substrate is: :func:`family_of` returns the family's
:class:`KernelFamily`, and the stages read it (the plan its checks and what
it supports, the dispatch its geometry record, membranes, step scales and
kernel, the CUDA backend the same per-walker function, the result stage where
the walkers ended up and whether they stayed in).

Adding a family is one module plus one registration: the module writes the
walk of one walker as a plain Python function and the functions below, and
ends with ``register_kernel_family(KernelFamily(...))``; :mod:`walker` imports it. See
:mod:`walker.union_kernel` for a small complete example.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from typing import Callable

import numpy as np

#: What the transit tables need to know about a family's membranes (see :func:`walker.dispatch.transit_tables`):
#: n membranes; kappa (n, 2) or empty, m/s, [outward, inward]; rho (n,) or empty, m/s; inner and outer (n,) int64:
#: the region index on each side of each membrane (its diffusivity sets the transit and survival probabilities).
Membranes = namedtuple("Membranes", ["n", "kappa", "rho", "inner", "outer"])

#: What a family may support (``KernelFamily.supports``), each read by the plan: permeable membranes, relaxing
#: walls, and a T2 per nested region. (Files are the substrate side's business: ``substrates.FAMILIES``.)
FEATURES = ("membranes", "relaxivity", "region_t2")


def same_positions(geo, positions: np.ndarray, homes: np.ndarray) -> np.ndarray:
    """The default ``box_positions``: the kernel's positions are already in the box frame.

    Parameters
    ----------
    geo : tuple
        The family's geometry record (unused).
    positions : numpy.ndarray
        (N, 3) final kernel-frame positions, m.
    homes : numpy.ndarray
        (N,) int64 home image or component of each walker (unused).

    Returns
    -------
    numpy.ndarray
        (N, 3) a copy of ``positions``, m.
    """
    return np.array(positions, copy=True)


def none_misplaced(substrate, positions: np.ndarray, homes: np.ndarray) -> np.ndarray:
    """The default ``misplaced``: no exact check beyond the kernel's own.

    Parameters
    ----------
    substrate : substrates.Substrate
        The substrate walked (unused).
    positions : numpy.ndarray
        (N, 3) final kernel-frame positions, m (unused).
    homes : numpy.ndarray
        (N,) home image or component of each walker.

    Returns
    -------
    numpy.ndarray
        (N,) False.
    """
    return np.zeros(len(homes), dtype=bool)


def no_checks(substrate, options: dict) -> None:
    """The default ``check``: the family can do whatever the plan asks.

    Parameters
    ----------
    substrate : substrates.Substrate
        The substrate to walk (unused).
    options : dict
        The run's options (unused).
    """
    return None


@dataclass(frozen=True, eq=False)
class KernelFamily:
    """What the engine needs from one family of substrates.

    Parameters
    ----------
    name : str
        The family's name, as substrates give it (``substrate.family``).
    walker_function : callable
        ``walker_function(*variant, field=False)``: the walk of one walker as a plain Python function
        ``walk_walker(i, geo, transit, stepping, recording, pos, homes, seeds, out_phases, out_rec,
        out_time_inside, out_log_weight, out_first, traj, counters)``, compiled for the CPU by
        :func:`walker.scaffold.build_kernel` and for CUDA by :mod:`walker.cuda_backend`.
    variant : callable
        ``variant(substrate) -> tuple``: the compile-time constants a substrate selects (only what it uses is
        compiled: an impermeable substrate pays nothing for transits).
    variant_name : callable
        ``variant_name(*variant) -> str``: a readable kernel name ("walk_cylinders_permeable").
    describe : callable
        ``describe(substrate) -> str``: the kernel in words, for the compile notice ("cylinders, impermeable").
    geometry : callable
        ``geometry(substrate, plan) -> tuple``: the kernel's geometry record (:mod:`walker.records`) for the
        run's step length (m).
    membranes : callable
        ``membranes(substrate, plan) -> Membranes``: per membrane the kernel knows, its permeability,
        relaxivity and the regions on its two sides.
    step_scales : callable
        ``step_scales(substrate, plan) -> numpy.ndarray``: step scale per region the kernel indexes,
        sqrt(D_region / D_reference) (dimensionless).
    source_file : str
        The module that defines the per-walker function (its cached builds live beside it).
    inlines : tuple of str
        Other source files whose numba functions the walk inlines (their edits must rebuild the kernel).
    box_positions : callable
        ``box_positions(geo, positions, homes) -> numpy.ndarray``: final kernel-frame positions as positions
        in the box frame (m); a new array.
    misplaced : callable
        ``misplaced(substrate, positions, homes) -> numpy.ndarray``: (N,) bool, walkers an exact check at the
        end finds outside the compartment they were tracked in (beyond the kernel's own check).
    check : callable
        ``check(substrate, options)`` with ``options`` a dict of the run's options (``gaussian_steps``), called
        while the run is planned: refuses, with a ValueError naming the argument, what the family cannot do.
    untouched_warning : str or None
        Warned when no walker touched a wall in a run of at least 10,000 walker-steps (a mesh that is not where
        the walkers are); None: no such warning.
    cuda : bool
        Whether the per-walker function also compiles for CUDA.
    supports : frozenset of str
        Of :data:`FEATURES`: what the family's kernel can do; a run that needs more is refused while planned.
    """

    name: str
    walker_function: Callable
    variant: Callable
    variant_name: Callable
    describe: Callable
    geometry: Callable
    membranes: Callable
    step_scales: Callable
    source_file: str
    inlines: tuple = ()
    box_positions: Callable = same_positions
    misplaced: Callable = none_misplaced
    check: Callable = no_checks
    untouched_warning: str | None = None
    cuda: bool = True
    supports: frozenset = frozenset()


FAMILIES: dict[str, KernelFamily] = {}


def register_kernel_family(family: KernelFamily) -> KernelFamily:
    """Make ``family`` the kernel of the substrates whose ``family`` attribute is ``family.name``.

    Parameters
    ----------
    family : KernelFamily
        What the engine needs from the family.

    Returns
    -------
    KernelFamily
        The same record (so a module can keep it under a name).
    """
    unknown = set(family.supports) - set(FEATURES)
    if unknown:
        raise ValueError(f"family {family.name!r} declares unknown features {sorted(unknown)}; known: {FEATURES}")
    FAMILIES[family.name] = family
    return family


def family_of(substrate) -> KernelFamily:
    """The registered :class:`KernelFamily` that walks ``substrate``.

    Parameters
    ----------
    substrate : substrates.Substrate
        Any substrate; its ``family`` attribute names the family.

    Returns
    -------
    KernelFamily

    Raises
    ------
    ValueError
        If no kernel is registered for the substrate's family.

    Examples
    --------
    >>> import substrates, walker
    >>> walker.family_of(substrates.cylinder(radius=5e-6)).name
    'analytic'
    """
    name = getattr(substrate, "family", None)
    if name not in FAMILIES:
        raise ValueError(f"no kernel walks substrates of family {name!r} (known: {sorted(FAMILIES)}); a new family "
                         "registers its walker.families.KernelFamily when its kernel module is imported")
    return FAMILIES[name]
