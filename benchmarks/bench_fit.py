"""Fitting speed: per-voxel time of every model and method on noisy signals, dipy's fits in the same run.

Run: ``python benchmarks/bench_fit.py [--voxels 10000] [--budget 20] [--models dti,dki,...] [--out ...]``

Per-model table (issue 32: every model at database speed, at most 50 ms per voxel):
``python benchmarks/bench_fit.py --per-model [--quick] [--only sandix,smex]`` (``--quick`` or ``--only`` imply
``--per-model``) times ``fit(model, scheme, signals, method="auto")`` for every model of
:func:`validation.list_models` on one core (BLAS and numba limited to one thread), on a 91-measurement
multi-shell PGSE protocol (one b = 0 and b = 1000, 2000, 3000 s/mm^2 with 30 directions each, delta 10 ms,
Delta 30 ms) or, for the models that need more, that protocol plus what they need (:func:`model_schemes`).
A first call of one voxel compiles and caches what the model needs (its time is the ``first`` column); then
calls sized to fill the budget (``--quick``: 3 s, at least 2 voxels; else ``--budget``) give the milliseconds
per voxel. Results go to ``fit_per_model.json``.

Results, per-model table (``--quick``; 2-core box, one core, ms per voxel of ``fit(method="auto")``; before:
commit 085959c, after: issue 32's caches, tables and compiled kernels; M: measurements; ``--quick`` calls hold
a few to a few hundred voxels, so a call's fixed cost (its grid of starts) weighs on the slow models; the models
whose code did not change differ by the batch size each run chose and by timing noise)::

    model                   M  before ms  after ms  speed-up
    activeax                91      16.00     19.86      0.8x
    axcaliber               91      70.08     54.53      1.3x
    ball_stick              91       0.22      0.24      0.9x
    bingham_noddi           91    3824.66     81.53     46.9x
    charmed                 91      22.58      6.72      3.4x
    cylinder_callaghan      91    1598.60      0.70   2283.7x
    cylinder_gpd            91     110.21      2.22     49.6x
    cylinder_soderman       91       1.44      1.50      1.0x
    cylinder_zeppelin       91      11.96      6.28      1.9x
    dki                     91       0.07      0.04      1.8x
    dti                     91       0.05      0.02      2.5x
    fw_dti                  91       7.68      2.94      2.6x
    gamma                  130       1.41      0.32      4.4x
    impulsed               115    1940.13      5.02    386.5x
    ivim                    91       0.49      0.47      1.0x
    karger                  91       6.79      5.59      1.2x
    mc_smt                  91       0.53      0.46      1.2x
    nexi                    91     137.68      3.11     44.3x
    noddi_watson            91      12.00     12.10      1.0x
    pomace                  91    1276.59      3.18    401.4x
    qti                    130       0.05      0.05      1.0x
    sandi                   91      13.19     12.44      1.1x
    sandix                  91    5281.25     48.10    109.8x
    sm_t2                  125      14.42     15.43      0.9x
    smex                    91    1933.42      5.17    374.0x
    smt                     91       0.50      0.46      1.1x
    sphere_ball             91       4.63      3.60      1.3x
    sphere_callaghan        91    1923.11      1.29   1490.8x
    sphere_gpd              91      83.10      1.31     63.4x
    sphere_soderman         91       0.56      0.56      1.0x
    standard_model          91      15.87     16.47      1.0x
    stick_zeppelin          91       1.24      1.26      1.0x
    temporal_zeppelin       91       2.15      2.32      0.9x
    verdict                 91       9.34     13.03      0.7x
    wmti                    91       1.61      1.91      0.8x
    wmti_watson             91       3.78      4.01      0.9x

    With larger batches (``--only axcaliber,bingham_noddi,sandix --budget 12``, 37-333 voxels per call):
    axcaliber 43.2 ms, bingham_noddi 37.4 ms, sandix 43.5 ms: every model at most 50 ms per voxel at database
    batch sizes. The tables are built once per process, outside these times: Bingham normaliser 0.5 s, each
    Callaghan table 0.2 s. SMEX and SANDIX: the exchange step takes its slow eigenvalue from the determinant
    (exact where a pool is empty: 3.7e-4 off the stick limit before, 2e-12 now), the lobes are two chains of 2
    and 4 steps Richardson-extrapolated (as accurate as the 12 plain steps before, at 14 steps instead of 25),
    and the stick-angle integral takes the fewest Gauss-Legendre nodes the scheme needs (8 here, within 1e-7).
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


#: the per-model table's limit (issue 32): milliseconds per voxel of fit(method="auto") on one core
TARGET_MS = 50.0


def protocol_91():
    """The 91-measurement multi-shell PGSE protocol: one b = 0, b = 1000, 2000, 3000 s/mm^2 x 30 directions.

    delta 10 ms, Delta 30 ms (SI units inside: b in s/m^2).
    """
    u = sq.fibonacci_directions(30)
    b = np.concatenate([[0.0], np.repeat([1e9, 2e9, 3e9], 30)])
    dirs = np.vstack([[0.0, 0, 1], np.tile(u, (3, 1))])
    return sq.pgse(10e-3, 30e-3, bvalues=b, directions=dirs)


def model_schemes() -> dict:
    """Schemes of the per-model table by the requirement they serve, each the 91-measurement protocol or longer.

    ``"lte"``: :func:`protocol_91`; ``"btensor_shapes"``: plus spherical (9) and planar (30) tensor encoding;
    ``"ogse"``: plus OGSE at 25 and 50 Hz (4 b-values x 3 axes each; the PGSE part on the same 20 us step);
    ``"echo_times"``: the protocol at TE 50 ms plus one b = 0 and 2 x 15 directions at TE 100 ms and three
    spherical encodings.
    """
    lte = protocol_91()
    _, btensor = protocols()
    ste_pte = btensor[len(btensor) - 39:]  # its STE (9) and PTE (30) parts
    u15 = sq.fibonacci_directions(15)
    og = sq.concatenate([sq.ogse(frequency=f, n_periods=2, bvalues=np.repeat([0.2e9, 0.5e9, 1e9, 1.5e9], 3),
                                 directions=np.tile(np.eye(3), (4, 1)), dt=20e-6) for f in (25, 50)])
    pg = sq.pgse(10e-3, 30e-3, bvalues=lte.bvalues, directions=lte.directions, dt=20e-6)
    te = sq.concatenate([sq.pgse(10e-3, 30e-3, bvalues=lte.bvalues, directions=lte.directions, echo_time=0.05),
                         sq.pgse(10e-3, 30e-3, bvalues=np.concatenate([[0.0], np.repeat([1e9, 2e9], 15)]),
                                 directions=np.vstack([[0.0, 0, 1], u15, u15]), echo_time=0.1),
                         sq.tensor_encoding(np.array([1e9, 2e9, 3e9]), b_delta=0.0, duration=0.06)])
    return {"lte": lte, "btensor_shapes": lte + ste_pte, "ogse": sq.concatenate([pg, og]), "echo_times": te}


def scheme_key(model) -> str:
    """The key of :func:`model_schemes` a model is timed on (its first special requirement, else "lte")."""
    for key in ("btensor_shapes", "ogse", "echo_times"):
        if key in model.requires:
            return key
    return "lte"


def per_model_table(names, budget: float, min_voxels: int = 2, max_voxels: int = 2000, seed: int = 0) -> list:
    """Milliseconds per voxel of ``fit(method="auto")`` for each model, on one core.

    Parameters
    ----------
    names : iterable of str
        Model names.
    budget : float
        Seconds of timed fitting per model (after the first call) at most, roughly.
    min_voxels, max_voxels : int
        Voxels of the timed call at least and at most.
    seed : int
        Seed of the parameters and noise.

    Returns
    -------
    list of dict
        Per model: name, scheme key, measurements, method, first-call seconds, voxels, ms per voxel.
    """
    import numba
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(1)
    table = model_schemes()
    rows = []
    with threadpool_limits(1):
        for name in names:
            m = va.get_model(name)
            key = scheme_key(m)
            scheme = table[key]
            rng = np.random.default_rng(seed)
            P = draw(m, max_voxels, rng)
            Y = m.signal(scheme, P) + rng.normal(0, 1 / 50, (max_voxels, len(scheme)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                r = va.fit(m, scheme, Y[:1], method="auto")
                first = time.perf_counter() - t0
                # one more voxel measures the speed once compiled; then one call sized to fill the budget
                t0 = time.perf_counter()
                va.fit(m, scheme, Y[1:2], method="auto")
                probe = time.perf_counter() - t0
                n = int(np.clip(budget / max(probe, 1e-6), min_voxels, max_voxels - 2))
                t0 = time.perf_counter()
                va.fit(m, scheme, Y[2:2 + n], method="auto")
                ms = 1e3 * (time.perf_counter() - t0) / n
            rows.append({"model": name, "scheme": key, "measurements": len(scheme), "method": r.method,
                         "first_s": first, "voxels": n, "ms_per_voxel": ms})
            print(f"{name:20s} {key:15s} {len(scheme):4d} {r.method:5s} {first:8.2f} {n:6d} {ms:10.2f}"
                  f"{'' if ms <= TARGET_MS else '  > ' + format(TARGET_MS, 'g') + ' ms'}", flush=True)
    return rows


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
    ap.add_argument("--per-model", action="store_true",
                    help="the per-model table of fit(method='auto') on one core instead of the method rows")
    ap.add_argument("--quick", action="store_true", help="per-model table, 3 s per model (implies --per-model)")
    ap.add_argument("--only", default=None, help="comma-separated models of the per-model table (implies it)")
    args = ap.parse_args(argv)
    if args.per_model or args.quick or args.only:
        names = args.only.split(",") if args.only else va.list_models()
        print(f"{'model':20s} {'scheme':15s} {'M':>4s} {'meth':5s} {'first s':>8s} {'voxels':>6s} {'ms/voxel':>10s}",
              flush=True)
        rows = per_model_table(names, 3.0 if args.quick else args.budget)
        report = {"machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "protocol": "91-measurement PGSE (1 b0 + 3 shells x 30) or longer as a model needs; SNR 50; "
                              "one core", "rows": rows}
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "fit_per_model.json").write_text(json.dumps(report, indent=2))
        return report
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
