"""sequences: diffusion-encoding gradient waveforms, b-tensors and scheme files.

All quantities are SI: gradients in T/m, times in s, b in s/m^2, q in rad/m.

Constructors
------------
pgse, ogse, dde, tensor_encoding, from_waveforms, from_now; fibonacci_directions, shells (every
direction at every b)
File I/O
--------
read_fsl / write_fsl, read_mrtrix / write_mrtrix, read_camino / write_camino,
read_mcdc / write_mcdc, read_now / write_now, read_pulseq (Pulseq .seq, format 1.4 and 1.5)
"""

from .constants import GAMMA, MS_PER_UM2, S_PER_MM2
from .directions import fibonacci_directions, shells
from .factorise import Factorisation, factorise
from .io import (from_now, read_camino, read_fsl, read_mcdc, read_mrtrix, read_now, write_camino,
                 write_fsl, write_mcdc, write_mrtrix, write_now)
from .pulseq import PulseqError, read_pulseq
from .scheme import EchoConditionError, Scheme, concatenate
from .units import check_count, check_fraction, check_si_bvalues, infer_bvalue_units, to_si_bvalues
from .waveforms import dde, from_waveforms, ogse, pgse, tensor_encoding

__all__ = [
    "GAMMA", "MS_PER_UM2", "S_PER_MM2",
    "Scheme", "EchoConditionError", "Factorisation",
    "pgse", "ogse", "dde", "tensor_encoding", "from_waveforms", "from_now", "concatenate", "factorise",
    "read_fsl", "write_fsl", "read_mrtrix", "write_mrtrix", "read_camino", "write_camino",
    "read_mcdc", "write_mcdc", "read_now", "write_now", "read_pulseq", "PulseqError",
    "check_si_bvalues", "infer_bvalue_units", "to_si_bvalues", "fibonacci_directions", "shells", "check_count",
    "check_fraction",
]
