"""walker: numba random walks through substrates under diffusion-encoding schemes."""
