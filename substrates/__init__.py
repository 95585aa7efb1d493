"""substrates: geometry of the tissue the walkers diffuse in (SI units)."""
