"""Parallel cylinders with given radii packed into a periodic box at a target volume fraction.

A thin wrapper: the disks of the cross-section are packed by
:func:`substrates.pack_disks` (an equilibrated random packing by default), and
become analytic cylinders along ``axis``.
"""

from __future__ import annotations

import numpy as np

from .analytic import Substrate, cylinders
from .disks import pack_disks, packing_statistics


def pack_cylinders(radii, icvf: float, seed: int = 0, axis=(0.0, 0.0, 1.0), min_gap: float | None = None,
                   permeability=0.0, arrangement: str = "random", clustering: float = 0.0,
                   relaxivity=0.0) -> Substrate:
    """Pack non-overlapping parallel cylinders into a periodic box at a target volume fraction.

    Parameters
    ----------
    radii : array_like
        (P,) radii in m.
    icvf : float
        Target intra-cylinder volume fraction; the box is sized to hit it exactly (at most 0.85).
    seed : int
        Seed of the packing.
    axis : array_like
        (3,) cylinder axis.
    min_gap : float, optional
        Smallest gap in m between two cylinder surfaces (default 2 % of the mean radius).
    permeability : float or array_like
        Membrane permeability kappa in m/s, one value or one per cylinder (0: impermeable).
    arrangement : {"random", "clustered", "hexagonal"}
        See :func:`substrates.pack_disks`.
    clustering : float
        Square-well depth in kT for ``"clustered"``.
    relaxivity : float or array_like
        Surface relaxivity rho in m/s, one value or one per cylinder (0: none; see
        :func:`walker.survival_probability`).

    Returns
    -------
    Substrate
        Its ground truth carries the packing's algorithm and statistics.

    Raises
    ------
    ValueError
        If the target fraction cannot be reached without overlaps (the message says what was reached).

    Examples
    --------
    >>> import numpy as np, substrates
    >>> sub = substrates.pack_cylinders(np.random.default_rng(0).gamma(4, 0.5e-6, 100), 0.6)   # doctest: +SKIP
    """
    try:
        x, L, info = pack_disks(radii, icvf, seed=seed, min_gap=min_gap, arrangement=arrangement,
                                clustering=clustering, return_info=True)
    except ValueError as exc:
        raise ValueError(f"pack_cylinders(icvf={icvf!r}): {exc}") from None
    r = np.asarray(radii, dtype=float).ravel()
    box = np.broadcast_to(np.asarray(L, dtype=float), (2,))
    sub = cylinders(r, x, box, axis=axis, permeability=permeability, relaxivity=relaxivity)
    sub.description.update({"factory": "pack_cylinders", "generator": "pack_cylinders", "seed": int(seed),
                            "packing": {**info, **packing_statistics(x, r, box)}})
    return sub
