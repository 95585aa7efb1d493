"""Temporal-shape factorisation of a set of gradient waveforms.

G_m(t) = sum_k f_k(t) g_mk. Multi-shell, multi-direction PGSE shares one
temporal shape (K = 1); b-tensor encodings need at most 3. The walker
accumulates only the K vectors sum_t f_k(t) x(t) per walker, so its cost does
not grow with the number of measurements M.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Factorisation:
    """Waveforms written as a few temporal shapes times per-measurement vectors.

    The fields are also the attributes of the (frozen) instance.

    Parameters
    ----------
    shapes : numpy.ndarray
        (K, T) temporal shapes f_k, orthonormal over the time samples (dimensionless).
    amplitudes : numpy.ndarray
        (M, K, 3) vectors g_mk in T/m.
    rel_error : float
        ``max |G - sum_k f_k g_k| / max |G|`` of the reconstruction (dimensionless).
    """

    shapes: np.ndarray
    amplitudes: np.ndarray
    rel_error: float

    @property
    def n_shapes(self) -> int:
        """Number of temporal shapes K."""
        return self.shapes.shape[0]

    def reconstruct(self) -> np.ndarray:
        """(M, T, 3) waveforms rebuilt from the factors, in T/m.

        Returns
        -------
        numpy.ndarray
            (M, T, 3) effective gradients sum_k f_k(t) g_mk in T/m.
        """
        return np.einsum("kt,mki->mti", self.shapes, self.amplitudes)


def factorise(gradients: np.ndarray, rtol: float = 1e-10) -> Factorisation:
    """Factorise waveforms into the fewest temporal shapes within a tolerance.

    The (T, 3M) matrix whose columns are every component of every waveform is
    decomposed by SVD; K is the number of singular values needed for the
    reconstruction to be within ``rtol`` of the largest gradient. With the
    default tolerance the factorisation is exact to rounding.

    Parameters
    ----------
    gradients : numpy.ndarray
        (M, T, 3) waveforms in T/m.
    rtol : float
        Allowed reconstruction error relative to ``max |G|`` (dimensionless).

    Returns
    -------
    Factorisation

    Raises
    ------
    ValueError
        If the reconstruction cannot meet ``rtol`` (never for rtol >= 1e-12).
    """
    G = np.asarray(gradients, dtype=float)
    M, T, _ = G.shape
    A = G.transpose(1, 0, 2).reshape(T, 3 * M)
    scale = float(np.abs(A).max())
    if scale == 0.0:
        return Factorisation(np.zeros((1, T)), np.zeros((M, 1, 3)), 0.0)
    one = _one_shape(A, scale, rtol)
    if one is not None:
        return Factorisation(one[0][None, :], one[1].reshape(M, 3)[:, None, :], one[2])
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    # peel off one singular triplet at a time; the residual gives the exact error
    R = A.copy()
    for K in range(1, len(s) + 1):
        R -= s[K - 1] * np.outer(U[:, K - 1], Vt[K - 1])
        err = float(np.abs(R).max()) / scale
        if err <= rtol:
            shapes = U[:, :K].T.copy()
            coef = (s[:K, None] * Vt[:K]).reshape(K, M, 3).transpose(1, 0, 2).copy()
            return Factorisation(shapes, coef, err)
    raise ValueError(f"could not factorise the waveforms to rtol={rtol:g} (best {err:.3g})")


def _one_shape(A: np.ndarray, scale: float, rtol: float):
    """(shape, coefficients, error) when every column of A is a multiple of one temporal shape within rtol;
    else None. Most protocols (PGSE, OGSE, DDE lobes of one shape) pass, without an SVD."""
    col = int(np.argmax(np.einsum("ij,ij->j", A, A)))
    f = A[:, col] / np.linalg.norm(A[:, col])
    coef = f @ A
    err = float(np.abs(A - np.outer(f, coef)).max()) / scale
    if err > rtol:
        return None
    return f, coef, err
