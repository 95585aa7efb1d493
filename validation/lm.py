"""Batched Levenberg-Marquardt: many small bounded least-squares problems solved together with numpy.

Every problem k minimises 0.5 ||predict(x_k) - y_k||^2 over x_k in [lo, hi] (the parameters in conditioned
units). One iteration evaluates the residuals and Jacobians of all unfinished problems in one call of the
vectorised forward function, solves the P x P damped normal equations of each (Marquardt's diagonal
scaling) with one batched solve, and accepts or rejects each step on its own. Bounds are handled by
projection plus an active set: a parameter on a bound whose gradient points outward is held for that step,
so the step of the others is the free-subspace Gauss-Newton step (Coleman-Li style behaviour without the
affine scaling). Jacobians are forward differences by default (one batched forward call with P + 1 rows per
problem) or an analytic ``jacobian`` where the caller has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


#: finite-difference step (along the velocity, in units of it) of the geodesic acceleration
_H_ACC = 0.1


@dataclass
class LMResult:
    """Solutions of K problems.

    Attributes
    ----------
    x : numpy.ndarray
        (K, P) solutions.
    cost : numpy.ndarray
        (K,) 0.5 * sum of squared residuals.
    success : numpy.ndarray
        (K,) converged by the tolerances (False: iteration cap, or no decrease possible from a non-stationary point).
    n_iter : numpy.ndarray
        (K,) iterations used.
    """

    x: np.ndarray
    cost: np.ndarray
    success: np.ndarray
    n_iter: np.ndarray


def _into_box(x: np.ndarray, step: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """x + step, bent at the box: a coordinate that would leave it goes 95 % of the way to its bound, or onto the
    bound when it is already within 1e-3 of the box width of it; the other coordinates keep their full step.

    Stopping short of a far bound keeps one long Gauss-Newton step from parking a parameter on a bound where the
    model is flat (a radius at its largest value), and the full step of the others keeps a problem whose minimum
    lies on a bound from creeping towards it; a parameter on a bound is held only while its gradient points out
    of the box (the active set in the main loop), so one whose minimum is inside leaves at the next iteration.
    """
    target = x + step
    width = hi - lo
    out_hi, out_lo = target > hi, target < lo
    near_hi, near_lo = hi - x <= 1e-3 * width, x - lo <= 1e-3 * width
    target = np.where(out_hi, np.where(near_hi, hi, x + 0.95 * (hi - x)), target)
    target = np.where(out_lo, np.where(near_lo, lo, x + 0.95 * (lo - x)), target)
    return np.clip(target, lo, hi)


def fd_jacobian(predict: Callable, x: np.ndarray, f0: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                h: float = 1e-7) -> np.ndarray:
    """(K, M, P) forward-difference Jacobian of ``predict`` at x (K, P), f0 = predict(x); steps stay inside bounds."""
    K, P = x.shape
    step = h * np.maximum(1.0, np.abs(x))
    step = np.where(x + step > hi, -step, step)  # backward where a forward step would leave the box
    X = np.repeat(x[:, None, :], P, axis=1)
    X[:, np.arange(P), np.arange(P)] += step
    F = predict(X.reshape(K * P, P)).reshape(K, P, -1)
    return ((F - f0[:, None, :]) / step[:, :, None]).transpose(0, 2, 1)


def levenberg_marquardt(predict: Callable[[np.ndarray], np.ndarray], y: np.ndarray, x0: np.ndarray,
                        lo: np.ndarray, hi: np.ndarray, *, jacobian: Callable | None = None, max_iter: int = 200,
                        xtol: float = 1e-10, ftol: float = 1e-12, gtol: float = 1e-12,
                        rows: Callable[[np.ndarray], Callable] | None = None, accelerate: bool = True,
                        bounds: str = "project") -> LMResult:
    """Solve K bounded nonlinear least-squares problems at once.

    Parameters
    ----------
    predict : callable
        ``predict(X (k, P)) -> (k, M)`` model predictions for k parameter vectors; ``rows``, when given, binds it
        to a subset of the problems (predictions that depend on the problem, e.g. its fixed parameters).
    y : numpy.ndarray
        (K, M) data.
    x0 : numpy.ndarray
        (K, P) starts (clipped into the bounds).
    lo, hi : numpy.ndarray
        (P,) bounds.
    jacobian : callable, optional
        ``jacobian(X (k, P)) -> (k, M, P)``; forward differences when None.
    max_iter : int
        Jacobian evaluations per problem at most.
    xtol, ftol, gtol : float
        Converged when the accepted step is below xtol (xtol + |x|) or the relative cost decrease below ftol;
        a problem where no damped step decreases the cost is a success when its projected gradient is below
        sqrt(gtol) |r| |J|.
    rows : callable, optional
        ``rows(idx) -> predict`` for the problems ``idx``; when None, ``predict`` is used for every subset and
        must not depend on which problem a row belongs to.
    accelerate : bool
        Geodesic acceleration: one more forward evaluation per trial step, far fewer steps in curved valleys.
    bounds : {"project", "transform"}
        "project" (default): projected steps with an active set (a parameter on a bound whose gradient points
        outward is held). "transform": x = lo + (hi - lo)(1 + sin z)/2 and an unbounded problem in z (MINUIT);
        measured on noisy NODDI and cylinder-zeppelin signals it is 2x slower and stalls where the minimum is on
        a bound (dx/dz vanishes there), so it is kept for comparison only.

    Returns
    -------
    LMResult
    """
    K, P = x0.shape
    lo = np.broadcast_to(np.asarray(lo, float), (P,))
    hi = np.broadcast_to(np.asarray(hi, float), (P,))
    if bounds not in ("project", "transform"):
        raise ValueError(f"bounds must be 'project' or 'transform', got {bounds!r}")
    if bounds == "transform":
        # x = lo + (hi - lo)(1 + sin z)/2 (as MINUIT does): an unbounded problem in z, whose steps slow down near a
        # bound instead of landing on it
        mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
        z0 = np.arcsin(np.clip((np.asarray(x0, float) - mid) / half, -1.0, 1.0))
        to_x = lambda z: mid + half * np.sin(z)  # noqa: E731
        sub0 = rows if rows is not None else (lambda idx: predict)
        zr = levenberg_marquardt(lambda z: predict(to_x(z)), y, z0, np.full(P, -np.inf), np.full(P, np.inf),
                                 jacobian=None if jacobian is None else
                                 (lambda z: jacobian(to_x(z)) * (half * np.cos(z))[:, None, :]),
                                 max_iter=max_iter, xtol=xtol, ftol=ftol, gtol=gtol,
                                 rows=None if rows is None else (lambda idx: (lambda z: sub0(idx)(to_x(z)))),
                                 accelerate=accelerate, bounds="project")
        return LMResult(to_x(zr.x), zr.cost, zr.success, zr.n_iter)
    x = np.clip(np.asarray(x0, float), lo, hi)
    sub = rows if rows is not None else (lambda idx: predict)
    all_idx = np.arange(K)
    f = sub(all_idx)(x)
    r = f - y
    cost = 0.5 * np.einsum("km,km->k", r, r)
    lam = np.full(K, 1e-3)
    done = np.zeros(K, bool)
    success = np.zeros(K, bool)
    n_iter = np.zeros(K, int)
    eye = np.eye(P)
    bounded = bool(np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)))
    width = hi - lo
    for _ in range(max_iter):
        idx = np.flatnonzero(~done)
        if not idx.size:
            break
        n_iter[idx] += 1
        pr = sub(idx)
        xa, fa, ra = x[idx], f[idx], r[idx]
        J = jacobian(xa) if jacobian is not None else fd_jacobian(pr, xa, fa, lo, hi)
        g = np.einsum("kmp,km->kp", J, ra)
        H = np.matmul(J.transpose(0, 2, 1), J)
        # parameters on a bound with the descent direction pointing out of the box are held this step
        held = ((xa <= lo + 1e-12 * width) & (g > 0)) | ((xa >= hi - 1e-12 * width) & (g < 0)) if bounded else \
            np.zeros_like(g, dtype=bool)
        pg = np.where(held, 0.0, g)
        diag = np.maximum(np.einsum("kpp->kp", H), 1e-12 * np.max(np.einsum("kpp->kp", H), axis=1, keepdims=True)
                          + 1e-300)
        Hf = np.where(held[:, :, None] | held[:, None, :], 0.0, H) + held[:, :, None] * eye
        pending = np.ones(len(idx), bool)
        accepted = np.zeros(len(idx), bool)
        lam_a = lam[idx]
        x_new, f_new, cost_new = xa.copy(), fa.copy(), cost[idx].copy()
        for _trial in range(12):
            t = np.flatnonzero(pending)
            if not t.size:
                break
            A = Hf[t] + (lam_a[t, None] * diag[t] * ~held[t])[:, :, None] * eye
            v = -np.linalg.solve(A, pg[t][:, :, None])[:, :, 0]
            step = v
            if accelerate:
                # geodesic acceleration (Transtrum & Sethna 2012): the second directional derivative of the
                # residuals along v bends the step along a curved valley, where sloppy models otherwise creep
                pt = sub(idx[t])
                fv = pt(np.clip(xa[t] + _H_ACC * v, lo, hi))
                rvv = (2 / _H_ACC) * ((fv - fa[t]) / _H_ACC - np.einsum("kmp,kp->km", J[t], v))
                gv = np.where(held[t], 0.0, np.einsum("kmp,km->kp", J[t], rvv))
                a = -np.linalg.solve(A, gv[:, :, None])[:, :, 0]
                sv = np.sqrt(np.einsum("kp,kp->k", diag[t] * v, v))
                sa = np.sqrt(np.einsum("kp,kp->k", diag[t] * a, a))
                use = np.isfinite(sa) & (2 * sa <= 0.75 * sv)
                step = v + np.where(use[:, None], 0.5 * a, 0.0)
            xt = _into_box(xa[t], step, lo, hi)
            ft = sub(idx[t])(xt)
            rt = ft - y[idx[t]]
            ct = 0.5 * np.einsum("km,km->k", rt, rt)
            ok = np.isfinite(ct) & (ct < cost[idx[t]])
            good = t[ok]
            x_new[good], f_new[good], cost_new[good] = xt[ok], ft[ok], ct[ok]
            accepted[good] = True
            pending[good] = False
            lam_a[good] = np.maximum(lam_a[good] / 3.0, 1e-15)
            bad = t[~ok]
            lam_a[bad] *= 2.0
            # a step that no damping can make decrease the cost: the start is (numerically) stationary
            pending[bad[lam_a[bad] > 1e12]] = False
        lam[idx] = lam_a
        dx = np.linalg.norm(x_new - xa, axis=1)
        dc = cost[idx] - cost_new
        conv = accepted & ((dx <= xtol * (xtol + np.linalg.norm(xa, axis=1)))
                           | (dc <= ftol * np.maximum(cost[idx], 1e-300)) | (cost_new <= 1e-30))
        # no damping made the cost decrease (lambda ran away): stop; otherwise try again with the larger lambda
        stuck = ~accepted & (lam_a > 1e12)
        x[idx], f[idx], cost[idx] = x_new, f_new, cost_new
        r[idx] = f_new - y[idx]
        # no damping made the cost decrease: a minimum within rounding when the projected gradient is small
        # against the residual times the Jacobian's scale
        stationary = stuck & ((np.max(np.abs(pg), axis=1) <= gtol ** 0.5 * np.sqrt(2 * cost[idx])
                               * np.sqrt(np.max(diag, axis=1))) | (cost[idx] <= 1e-28))
        finished = conv | stuck
        success[idx[conv | stationary]] = True
        done[idx[finished]] = True
    return LMResult(x, cost, success, n_iter)
