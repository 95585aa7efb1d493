"""Hashes of every model's fits by every method over fixed noisy signals.

A refactor of the fitting code that must not change behaviour proves itself by
printing the same lines before and after::

    python3 benchmarks/fit_hashes.py > before.txt
    ... change the code ...
    python3 benchmarks/fit_hashes.py > after.txt && diff before.txt after.txt

For every model of :func:`validation.list_models` and every method of
:func:`validation.available_methods` (and ``"auto"``), signals are drawn as
``benchmarks/bench_fit.py`` draws them (its ``protocols`` and ``draw``; schemes
with OGSE or several echo times for the models that need them), with Gaussian
noise at SNR 50 and a fixed seed per model, then fitted; each line holds the
first 16 hex digits of a SHA-256 over the raw bytes of every array of the
:class:`validation.FitResult` (parameters, residuals, success mask), its names,
method and dictionary resolution. A few extra cases cover fixed and linked
parameters, the DKI constraint, the Rician likelihood and the error messages.
The per-signal methods ("nlls", "ml") and the models with costly forward functions fit fewer voxels (the
slowest model skips the per-signal methods), so that the whole run takes minutes.
Only the public API is used. Timing is not the point: run it on an idle machine
or not, the hashes are the same.
"""

from __future__ import annotations

import hashlib
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np

import sequences as sq
import validation as va

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fit import DICTIONARY_FIXED, draw, protocols  # noqa: E402

#: voxels per (model, method): batched and linear methods, "auto", and the slow per-signal ones
VOXELS = 20
AUTO_VOXELS = 4
SLOW_VOXELS = 2
SLOW_METHODS = ("nlls", "ml")
#: fewer voxels for the models whose forward function is costly (seconds per voxel in "lm")
SLOW_MODELS = {"sandix": 2, "smex": 2, "bingham_noddi": 3, "cylinder_callaghan": 3, "pomace": 6,
               "sphere_callaghan": 1}
#: models too slow for the per-signal methods at all (tens of seconds per voxel in "lm" already)
NO_SLOW_METHODS = {"sphere_callaghan"}
#: noise standard deviation (SNR 50 on normalised signals)
SIGMA = 1 / 50
#: parameters the linear free-water DTI fit needs fixed
FW_FIXED = {"D_w": 3e-9}


def digest(*parts) -> str:
    """First 16 hex digits of a SHA-256 over arrays (raw bytes, dtype and shape), strings and dicts."""
    h = hashlib.sha256()
    for p in parts:
        if p is None:
            h.update(b"None")
        elif isinstance(p, dict):
            for k in sorted(p):
                h.update(str(k).encode())
                h.update(np.float64(p[k]).tobytes())
        elif isinstance(p, (str, list, tuple)):
            h.update(repr(p).encode())
        else:
            a = np.ascontiguousarray(p)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]


def schemes() -> dict:
    """Schemes by the requirement they serve: plain LTE, b-tensor shapes, OGSE, several echo times."""
    lte, btensor = protocols()
    b = np.concatenate([[0], np.repeat([1e9, 2e9], 15)])
    u = sq.fibonacci_directions(15)
    dirs = np.vstack([[0.0, 0, 1], u, u])
    og = sq.concatenate([sq.ogse(frequency=f, n_periods=2, bvalues=[0.2e9, 0.5e9, 1e9, 1.5e9], directions=[1, 0, 0],
                                 dt=20e-6) for f in (25, 50)])
    pg = sq.pgse(10e-3, 50e-3, bvalues=[0.2e9, 0.5e9, 1e9, 1.5e9], directions=[1, 0, 0], dt=20e-6)
    te = sq.concatenate([sq.pgse(10e-3, 30e-3, bvalues=b, directions=dirs, echo_time=t) for t in (0.05, 0.1)]
                        + [sq.tensor_encoding(np.array([1e9, 2e9, 3e9]), b_delta=0.0, duration=0.06)])
    return {"lte": lte, "btensor_shapes": btensor, "ogse": sq.concatenate([og, pg]), "echo_times": te}


def scheme_for(model, table: dict):
    for key in ("btensor_shapes", "ogse", "echo_times"):
        if key in model.requires:
            return key, table[key]
    return "lte", table["lte"]


def line(label: str, call) -> str:
    """One output line: the label and the hash of the result, or of the error it raised."""
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = call()
        out = (f"{label:42s} {digest(r.params, r.residual, r.success, r.names, r.model, r.method, r.resolution)}"
               f" ok={int(np.sum(r.success))}/{len(r.success)} method={r.method}")
    except Exception as e:  # noqa: BLE001 - an error is a behaviour too: its type and message are hashed
        out = f"{label:42s} {type(e).__name__}: {digest(str(e))}"
    print(f"  {time.perf_counter() - t0:6.2f} s  {label}", file=sys.stderr, flush=True)
    return out


def cases():
    """(label, zero-argument call) for every case, in a fixed order."""
    table = schemes()
    for name in va.list_models():
        m = va.get_model(name)
        key, scheme = scheme_for(m, table)
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        P = draw(m, VOXELS, rng)
        for pname, v in DICTIONARY_FIXED.get(name, {}).items():
            P[:, m.names.index(pname)] = v
        Y = m.signal(scheme, P) + rng.normal(0, SIGMA, (VOXELS, len(scheme)))
        methods = ["auto"] + list(dict.fromkeys(va.available_methods(m)))
        for method in methods:
            if method in SLOW_METHODS and name in NO_SLOW_METHODS:
                continue
            n = SLOW_VOXELS if method in SLOW_METHODS else AUTO_VOXELS if method == "auto" else VOXELS
            if name in SLOW_MODELS:
                n = 1 if method in SLOW_METHODS else min(n, SLOW_MODELS[name])
            kw = {"sigma": SIGMA} if method == "ml" else {}
            if method == "dictionary":
                kw["fixed"] = DICTIONARY_FIXED.get(name, {})
            if name == "fw_dti" and method in ("wls", "ols", "iwls"):
                kw["fixed"] = FW_FIXED
            yield f"{name} [{key}] {method}", (lambda m=m, s=scheme, y=Y[:n], mt=method, kw=kw:
                                                va.fit(m, s, y, method=mt, **kw))
        if name == "fw_dti":  # the linear fit refuses D_w free
            yield f"{name} wls unfixed", lambda m=m, s=scheme, y=Y: va.fit(m, s, y, method="wls")
        if name == "dki":
            for method in ("wls", "ols", "iwls"):
                yield f"{name} {method} mkt>=0", (lambda m=m, s=scheme, y=Y, mt=method:
                                                   va.fit(m, s, y, method=mt, mkt_nonnegative=True))
            yield f"{name} lm mkt>=0", lambda m=m, s=scheme, y=Y: va.fit(m, s, y, method="lm", mkt_nonnegative=True)
        if name == "dti":
            yield f"{name} auto fixed", lambda m=m, s=scheme, y=Y: va.fit(m, s, y, fixed={"Dxy": 0.0})
            yield f"{name} wls fixed", lambda m=m, s=scheme, y=Y: va.fit(m, s, y, method="wls", fixed={"Dxy": 0.0})
            yield f"{name} dictionary", lambda m=m, s=scheme, y=Y: va.fit(m, s, y, method="dictionary")
            yield f"{name} rician auto", (lambda m=m, s=scheme, y=Y[:SLOW_VOXELS]:
                                          va.fit(m, s, y, likelihood="rician", sigma=SIGMA))
        if name == "stick_zeppelin":
            yield f"{name} lm linked", (lambda m=m, s=scheme, y=Y:
                                        va.fit(m, s, y, linked={"D_perp": ("tortuosity", "f", "D_par")}))
            yield f"{name} nlls linked", (lambda m=m, s=scheme, y=Y[:SLOW_VOXELS]:
                                          va.fit(m, s, y, method="nlls", linked={"D_perp": ("ratio", "D_par", 0.4)}))
            yield f"{name} lm fixed", lambda m=m, s=scheme, y=Y: va.fit(m, s, y, fixed={"D_par": 2e-9})
            yield f"{name} wls", lambda m=m, s=scheme, y=Y: va.fit(m, s, y, method="wls")
            yield f"{name} bad method", lambda m=m, s=scheme, y=Y: va.fit(m, s, y, method="nope")
        if name == "noddi_watson":
            yield f"{name} dictionary unfixed", lambda m=m, s=scheme, y=Y: va.fit(m, s, y, method="dictionary")
            yield f"{name} dictionary kappa", (lambda m=m, s=scheme, y=Y: va.fit(
                m, s, y, method="dictionary", fixed={"d_par": 1.7e-9, "kappa": 2.0}))
            yield f"{name} dictionary linked", (lambda m=m, s=scheme, y=Y: va.fit(
                m, s, y, method="dictionary", fixed={"d_par": 1.7e-9}, linked={"d_iso": "d_par"}))
            yield f"{name} dictionary btensor", (lambda m=m, s=table["btensor_shapes"]: va.fit(
                m, s, m.signal(s, P[:2]), method="dictionary", fixed={"d_par": 1.7e-9}))
        if name == "wmti":
            yield f"{name} fixed", lambda m=m, s=scheme, y=Y: va.fit(m, s, y, fixed={"f": 0.5})
    yield from error_cases(table["lte"])


def error_cases(scheme):
    """Calls that must be refused, each with its message."""
    dti = va.get_model("dti")
    y = dti.signal(scheme, draw(dti, 3, np.random.default_rng(1)))
    nan = y.copy()
    nan[1, 4] = np.nan
    few = sq.pgse(10e-3, 30e-3, bvalues=[0, 1e9, 1e9, 1e9], directions=np.eye(3)[[0, 0, 1, 2]])
    calls = {
        "nan rows": lambda: va.fit(dti, scheme, nan),
        "nan rows lm": lambda: va.fit(dti, scheme, nan, method="lm"),
        "short signals": lambda: va.fit(dti, scheme, y[:, :-1]),
        "rank": lambda: va.fit(dti, few, dti.signal(few, draw(dti, 1, np.random.default_rng(2))), method="wls"),
        "mkt dti": lambda: va.fit(dti, scheme, y, method="wls", mkt_nonnegative=True),
        "ml no sigma": lambda: va.fit(dti, scheme, y, method="ml"),
        "fixed and linked": lambda: va.fit(dti, scheme, y, fixed={"Dxy": 0.0}, linked={"Dxy": "Dxz"}),
        "unknown": lambda: va.fit(dti, scheme, y, fixed={"nope": 0.0}),
        "likelihood": lambda: va.fit(dti, scheme, y, likelihood="poisson"),
        "dictionary rician": lambda: va.fit("sandi", scheme, y, method="dictionary", likelihood="rician", sigma=0.1),
        "dictionary bad fixed": lambda: va.fit("sandi", scheme, y, method="dictionary", fixed={"f_in": 0.5}),
        "scheme": lambda: va.fit("qti", scheme, y),
    }
    for label, call in calls.items():
        yield f"error {label}", call


def main() -> None:
    t0 = time.perf_counter()
    for label, call in cases():
        print(line(label, call), flush=True)
    print(f"total {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
