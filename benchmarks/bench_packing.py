"""Packing times and what the packings look like: nearest gaps, neighbours near the floor, anisotropy.

Run: ``python benchmarks/bench_packing.py [--out benchmarks/results]``

Rows: ``packed_axons`` with 400 fibres (equal radii 1 um, and gamma radii of mean 1 um) at ICVF 0.3, 0.5, 0.7,
the packing time (overlap-free start + Monte Carlo until the gaps stop changing) and the statistics the ground
truth carries. Results go to JSON (``packing.json``) and a printed table. Timings never go into tests.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import substrates as su


def main(argv=None) -> list:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    rows = []
    for label, radii in (("equal 1 um", np.full(400, 1e-6)),
                         ("gamma mean 1 um", su.gamma_radii(400, 1e-6, 4.0, seed=0))):
        for icvf in (0.3, 0.5, 0.7):
            t = time.perf_counter()
            sub = su.packed_axons(radii=radii, icvf=icvf, seed=1)
            dt = time.perf_counter() - t
            p = sub.ground_truth()["packing"]
            gaps = su.nearest_gaps(sub.centers[:, :2], sub.radii, sub.box[0])
            rows.append({"radii": label, "icvf": icvf, "seconds": dt, "sweeps": p["sweeps"],
                         "gap_quantiles_nm": [1e9 * q for q in p["nearest_gap_quantiles"]],
                         "within_50nm": float(np.mean(gaps < 50e-9)), "anisotropy": p["fabric_anisotropy"]})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "packing.json").write_text(json.dumps(rows, indent=2))
    print(f"{'radii':16s} {'ICVF':>4s} {'s':>5s} {'sweeps':>6s} {'gaps min/10%/50%/90% (nm)':>28s} {'<50 nm':>7s} "
          f"{'aniso':>6s}")
    for r in rows:
        q = r["gap_quantiles_nm"]
        print(f"{r['radii']:16s} {r['icvf']:4.1f} {r['seconds']:5.1f} {r['sweeps']:6d} "
              f"{q[0]:6.0f} {q[1]:6.0f} {q[2]:6.0f} {q[3]:6.0f} {100 * r['within_50nm']:6.0f} % {r['anisotropy']:6.3f}")
    return rows


if __name__ == "__main__":
    main()
