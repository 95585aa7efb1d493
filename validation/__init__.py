"""validation: exact reference signals, analytic models, fitting and bias reports (SI units)."""
