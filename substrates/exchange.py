"""Exchange ground truth of permeable substrates: mean residence times from kappa, S/V and D.

Barrier-limited picture (kappa R / D << 1): walkers leave compartment i at
the rate k_i = kappa S_i / V_i. The exact mean time to the first crossing
from a uniform start, with the Robin condition D dc/dn = -kappa c on the
wall, adds the diffusion-limited term (analytic reference, section 1.7):

    slab of thickness L:  L / (2 kappa) + L^2 / (12 D)
    cylinder of radius R: R / (2 kappa) + R^2 / (8 D)
    sphere of radius R:   R / (3 kappa) + R^2 / (15 D)

For many primitives, the intra value is the volume-weighted mean (walkers
start uniformly in the whole intra space). The extra-cellular time follows
from detailed balance, f_in / tau_in = f_ex / tau_ex, and the exchange time
of Fieremans et al. (2010) is 1 / (1/tau_in + 1/tau_ex).
"""

from __future__ import annotations

import math

import numpy as np

from .base import CYLINDERS, PLANES, SPHERES, Substrate


def residence_times(substrate: Substrate, diffusivity) -> dict:
    """Mean residence and exchange times of a permeable substrate.

    Parameters
    ----------
    substrate : Substrate
        Planes, cylinders or spheres with ``permeability`` > 0.
    diffusivity : float or dict
        Diffusivity in m^2/s inside the primitives (a dict may give
        ``{"intra": D_i, "extra": D_e}``; only D_i enters the residence time).

    Returns
    -------
    dict
        ``residence_time`` (s): mean time to the first membrane crossing for a
        walker started uniformly inside (between the planes for planes);
        ``residence_time_extra`` (s) and ``exchange_time`` (s) where there is
        a bounded extra space; ``exchange_time_barrier``: V / (kappa S) per
        compartment. Empty for an impermeable substrate.
    """
    if not substrate.permeable or substrate.kind not in (PLANES, CYLINDERS, SPHERES):
        return {}
    D = float(diffusivity["intra"] if isinstance(diffusivity, dict) else diffusivity)
    k = substrate.permeability[:, 0]
    barrier = substrate.exchange_truth()["exchange_time_barrier"]
    with np.errstate(divide="ignore"):
        if substrate.kind == PLANES:
            L = substrate.spacing
            return {"residence_time": float(L / (2 * k[0]) + L**2 / (12 * D)), "exchange_time_barrier": barrier}
        r = substrate.radii
        if substrate.kind == CYLINDERS:
            tau = r / (2 * k) + r**2 / (8 * D)
            vol = r**2
        else:
            tau = r / (3 * k) + r**2 / (15 * D)
            vol = r**3
    out = {"residence_time": float(np.sum(vol * tau) / np.sum(vol)), "exchange_time_barrier": barrier}
    fr = substrate.exchange_truth().get("equilibrium_fractions", {})
    if "extra" in fr and fr["intra"] > 0:
        # flux balance at equilibrium: N_intra / t_in = N_extra / t_ex (occupancies from kappa_in / kappa_out)
        t_in = out["residence_time"]
        t_ex = t_in * fr["extra"] / fr["intra"]
        out["residence_time_extra"] = float(t_ex)
        out["exchange_time"] = float(1.0 / (1.0 / t_in + 1.0 / t_ex)) if math.isfinite(t_in) else math.inf
    return out


__all__ = ["residence_times"]
