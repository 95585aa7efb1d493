import os

os.environ.setdefault("MPLBACKEND", "Agg")

# CUDA code runs in numba's simulator unless a GPU run is asked for (DIFFWALK_GPU_TESTS=1 on a GPU machine):
# set before numba is imported, since numba reads it once
if os.environ.get("DIFFWALK_GPU_TESTS") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
