"""Fitting speed: per-voxel time of every model and method on noisy signals, dipy's fits in the same run.

Run: ``python benchmarks/bench_fit.py [--voxels 10000] [--budget 20] [--models dti,dki,...] [--out ...]``

Signals: each model's own forward function at parameters drawn uniformly inside the middle of its bounds
(diffusivities 0.3-3 um^2/ms, a random fibre direction), a 3-shell PGSE protocol (b = 1000, 2000, 3000 s/mm^2,
30 directions each, delta 10 ms, Delta 30 ms, three b = 0), plus spherical tensor encoding at the same shells for
the models that need b-tensor shapes, and Gaussian noise at SNR 50. A method fits as many voxels as it does in
``--budget`` seconds (at most ``--voxels``), in one process, and the batched and per-signal nonlinear methods
also on all cores (``--cores`` worker processes); the table gives wall milliseconds per voxel and, for DTI and
DKI, dipy's WLS fits of the same signals (when dipy is installed). The dictionary rows of NODDI and ActiveAx fix
d_par = 1.7e-9 as AMICO does, and their signals are drawn with it. Results go to JSON (``fit.json``).
Timings never go into tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

import sequences as sq
import validation as va

#: methods to time per model, in order (those a model does not support are skipped)
METHODS = ("wls", "ols", "iwls", "lm", "dictionary", "nlls")
#: parameters the dictionary method needs fixed (as AMICO fixes them); the signals are drawn with these values
DICTIONARY_FIXED = {"noddi_watson": {"d_par": 1.7e-9}, "activeax": {"D_par": 1.7e-9}}


def protocols():
    """(LTE-only scheme, LTE + STE scheme)."""
    try:
        u = sq.fibonacci_directions(30)
    except AttributeError:  # versions before the architecture change kept it in the walker
        from walker.config import fibonacci_directions
        u = fibonacci_directions(30)
    b = np.concatenate([[0, 0, 0], np.repeat([1e9, 2e9, 3e9], 30)])
    dirs = np.concatenate([np.tile([[0.0, 0, 1]], (3, 1)), np.tile(u, (3, 1))])
    lte = sq.pgse(10e-3, 30e-3, bvalues=b, directions=dirs)
    ste = sq.tensor_encoding(bvalues=np.repeat([1e9, 2e9, 3e9], 3), b_delta=0.0, duration=50e-3,
                             directions=np.tile([[0.0, 0, 1]], (9, 1)))
    # planar encoding: with LTE and STE alone the covariance models (QTI) see only 23 of their 28 coefficients
    pte = sq.tensor_encoding(bvalues=np.repeat([1e9, 2e9], 15), b_delta=-0.5, duration=50e-3,
                             directions=np.tile(u[::2], (2, 1)))
    return lte, lte + ste + pte


def draw(model, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, P) parameters inside the middle 80 % of each bound (diffusivities 0.3-3 um^2/ms)."""
    P = np.empty((n, len(model.parameters)))
    for j, p in enumerate(model.parameters):
        lo, hi = p.bounds
        if p.unit == "m^2/s":
            lo, hi = max(lo, 0.3e-9), min(hi, 3e-9)
        P[:, j] = rng.uniform(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo), n)
    if model.orientation:
        v = rng.normal(size=(n, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        v *= np.where(v[:, 2:3] < 0, -1, 1)
        P[:, model.orientation[0]] = np.arccos(v[:, 2])
        P[:, model.orientation[1]] = np.arctan2(v[:, 1], v[:, 0])
    if model.name in ("dti", "dki", "fw_dti", "qti"):
        # a tensor from an eigen-decomposition (the uniform elements above are not positive definite)
        ev = rng.uniform(0.3e-9, 2.5e-9, (n, 3))
        Q = np.linalg.qr(rng.normal(size=(n, 3, 3)))[0]
        D = np.einsum("nij,nj,nkj->nik", Q, ev, Q)
        P[:, :6] = np.column_stack([D[:, 0, 0], D[:, 1, 1], D[:, 2, 2], D[:, 0, 1], D[:, 0, 2], D[:, 1, 2]])
        if model.name == "dki":
            P[:, 6:] = rng.uniform(-0.1, 0.8, (n, 15)) * (np.arange(15) < 3) + rng.uniform(-0.05, 0.3, (n, 15)) * \
                (np.arange(15) >= 9) * (np.arange(15) < 12)
        if model.name == "qti":
            P[:, 6:] = 0.0
            P[:, 6] = P[:, 12] = P[:, 17] = rng.uniform(0.01, 0.2, n) * 1e-18
    return P


def time_method(model, scheme, Y, method, budget, voxels, n_jobs=1, ms_hint=None):
    """ms per voxel (wall), voxels fitted, and the estimates.

    One process: a probe call of 25 voxels measures the speed, then calls sized to fill the rest of the budget
    (at most 2000 voxels each, the batched methods' natural unit); the time per voxel is that of the calls after
    the probe when there are any (a database is fitted in large calls, and small ones carry the per-call cost).
    Several processes: one call sized to fill the budget at the one-process speed ``ms_hint`` shared among
    them (a worker pool starts per call, so it needs enough work), at least 8 voxels per process.
    """
    limit = min(voxels, len(Y))
    done, out, t_main, n_main = 0, [], 0.0, 0
    t0 = time.perf_counter()
    chunk = 25 if n_jobs == 1 else int(np.clip(budget * 1e3 / max(ms_hint or 1.0, 1e-3) * n_jobs, 8 * n_jobs,
                                               4000))
    first = True
    while done < limit and time.perf_counter() - t0 < budget:
        n = min(chunk, limit - done)
        t1 = time.perf_counter()
        try:
            r = va.fit(model, scheme, Y[done:done + n], method=method,
                       fixed=DICTIONARY_FIXED.get(model.name, {}) if method == "dictionary" else {}, n_jobs=n_jobs)
        except TypeError:  # a version before fit() had methods: its one method is "nlls"
            if method != "nlls":
                raise ValueError("no such method in this version") from None
            r = va.fit(model, scheme, Y[done:done + n], n_jobs=n_jobs)
        dt = time.perf_counter() - t1
        if not first:
            t_main, n_main = t_main + dt, n_main + n
        out.append(r.params)
        done += n
        if first and n_jobs == 1:
            left = budget - (time.perf_counter() - t0)
            chunk = int(np.clip(left / max(dt / n, 1e-6), 25, 2000))
        first = False
    if n_main == 0:
        t_main, n_main = time.perf_counter() - t0, done
    return 1e3 * t_main / max(n_main, 1), done, np.concatenate(out)


def time_dipy(kind, scheme, Y):
    try:
        from dipy.core.gradients import gradient_table
        from dipy.reconst import dki, dti
    except ImportError:
        return None
    gtab = gradient_table(scheme.bvalues / 1e6, bvecs=scheme.directions, b0_threshold=1)
    model = dti.TensorModel(gtab, fit_method="WLS") if kind == "dti" else dki.DiffusionKurtosisModel(gtab,
                                                                                                     fit_method="WLS")
    data = np.clip(Y, 1e-6, None)[:, None, None, :]
    t0 = time.perf_counter()
    model.fit(data)
    return 1e3 * (time.perf_counter() - t0) / len(Y)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voxels", type=int, default=10_000)
    ap.add_argument("--budget", type=float, default=20.0, help="seconds per model and method")
    ap.add_argument("--models", default="dti,dki,qti,ball_stick,stick_zeppelin,smt,mc_smt,cylinder_zeppelin,"
                                        "noddi_watson,sandi,activeax,bingham_noddi,standard_model")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                    help="worker processes of the all-cores rows (1: skip them)")
    args = ap.parse_args(argv)
    lte, btensor = protocols()
    rng = np.random.default_rng(0)
    rows = []
    for name in args.models.split(","):
        m = va.get_model(name)
        shapes = "btensor_shapes" in getattr(m, "requires", ()) or getattr(m, "needs_btensor", False)
        scheme = btensor if shapes else lte
        P = draw(m, args.voxels, rng)
        for pname, v in DICTIONARY_FIXED.get(name, {}).items():
            P[:, m.names.index(pname)] = v
        # compile and cache whatever the first call needs (numba kernels), outside the timings
        for method in METHODS:
            try:
                va.fit(m, scheme, m.signal(scheme, P[:1]), method=method,
                       fixed=DICTIONARY_FIXED.get(name, {}) if method == "dictionary" else {})
            except Exception:  # noqa: BLE001 - a method that does not apply is reported below
                pass
        Y = m.signal(scheme, P) + rng.normal(0, 1 / 50, (args.voxels, len(scheme)))
        if name in ("dti", "dki"):
            ms = time_dipy(name, scheme, Y[:min(len(Y), 4000)])
            if ms is not None:
                rows.append({"model": name, "method": "dipy-wls", "ms_per_voxel": ms, "voxels": min(len(Y), 4000)})
                print(f"{name:18s} {'dipy-wls':10s} {ms:9.3f} ms/voxel", flush=True)
        applies = set(va.available_methods(m)) if hasattr(va, "available_methods") else {"nlls"}
        runs = [(mt, 1) for mt in METHODS] + [("lm", -1), ("nlls", -1)]
        single = {}
        for method, jobs in runs:
            if (jobs != 1 and args.cores < 2) or method not in applies:
                continue
            label = method if jobs == 1 else f"{method} x{args.cores}"
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ms, n, est = time_method(m, scheme, Y, method, args.budget, args.voxels,
                                             n_jobs=1 if jobs == 1 else args.cores, ms_hint=single.get(method))
            except (ValueError, NotImplementedError) as e:
                print(f"{name:18s} {label:10s} skipped: {str(e).splitlines()[0][:90]}", flush=True)
                continue
            if jobs == 1:
                single[method] = ms
            rows.append({"model": name, "method": label, "ms_per_voxel": ms, "voxels": n,
                         "processes": 1 if jobs == 1 else args.cores})
            print(f"{name:18s} {label:10s} {ms:9.3f} ms/voxel ({n} voxels)", flush=True)
    report = {"machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "protocol": "3 shells x 30 directions + 3 b0 (+ STE for b-tensor models), SNR 50", "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fit.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
