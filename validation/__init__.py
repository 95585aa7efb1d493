"""validation: exact reference signals (and, later, analytic models, fitting and bias reports).

Exact references
----------------
free_signal, gpd_signal, gpd_pgse, mf_signal, callaghan_signal, restricted_msd,
mitra_dt, perrins_tortuosity
"""

from .exact import (callaghan_signal, free_signal, gpd_pgse, gpd_signal, mf_signal, mitra_dt, perrins_tortuosity,
                    restricted_msd, spherical_jn_prime_zeros)

__all__ = ["free_signal", "gpd_signal", "gpd_pgse", "mf_signal", "callaghan_signal", "restricted_msd",
           "mitra_dt", "perrins_tortuosity", "spherical_jn_prime_zeros"]
