"""Physical constants and the unit conventions of diffwalk.

The public API is SI throughout: metres, seconds, tesla per metre, m^2/s, and
b-values in s/m^2. Conversions to the units of files (s/mm^2 in FSL/BIDS and
MRtrix tables) happen only at file boundaries, through the helpers in
:mod:`sequences.units`.
"""

#: Gyromagnetic ratio of 1H in rad s^-1 T^-1 (Camino's best estimate, also used
#: by MC/DC). Every scheme stores the value it was built with, so results that use
#: another value (dipy and dmipy use 2.67513e8) stay traceable.
GAMMA = 2.6751525e8

#: 1 s/mm^2 expressed in s/m^2.
S_PER_MM2 = 1e6
#: 1 ms/um^2 expressed in s/m^2.
MS_PER_UM2 = 1e9
