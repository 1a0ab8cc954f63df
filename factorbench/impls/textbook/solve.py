"""Textbook linear solvers and least squares built on the textbook factorizations.

``solve/lu`` also runs the emulated formats float16 and bfloat16
(:mod:`._emulate`): LU and both substitutions on float32 copies with every
step rounded to the format; x comes back in the storage dtype.
"""

from __future__ import annotations

import numpy as np

from factorbench.impls import NATIVE_COMPLEX, NATIVE_REAL, register
from factorbench.impls.results import Lstsq, Solve
from factorbench.impls.textbook._emulate import EMULATED, arithmetic, identity
from factorbench.impls.textbook._kernels import (
    apply_qh,
    cholesky_lower,
    householder_inplace,
    lu_inplace,
    rhs_vector,
    solve_lower,
    solve_upper,
    working,
)

_DTYPES = NATIVE_REAL + NATIVE_COMPLEX
_COMMON = {"backend": "numpy", "family": "textbook", "dtypes": _DTYPES}
_EMU = {**_COMMON, "dtypes": _DTYPES + EMULATED}


def _lu_for_solve(A, ar=None):
    """Partial-pivoting LU of a copy of A (combined storage) and its row permutation,
    in the arithmetic ``ar`` (default: A's native dtype)."""
    W = A.copy() if ar is None else ar.load(A)
    rnd = ar.rnd if ar is not None else identity
    # The solvers do not report a growth factor, so they skip its O(n^3) tracking.
    perm, _, _ = lu_inplace(W, "partial", track_growth=False, rnd=rnd)
    return W, perm


@register("solve", "lu", max_n=1024, **_EMU)
def solve_lu(A, b):
    """Solve A x = b with the partial-pivoting LU of ``lu/gepp`` and two substitutions.

    Parameters
    ----------
    A : ndarray (n, n)
        float32, float64, complex64 or complex128, or emulated float16 /
        bfloat16 (float32 arithmetic, every elimination step and every
        substitution row rounded to the format: see
        :func:`~._kernels.lu_inplace`, :func:`~._kernels.solve_lower`); not
        modified.
    b : ndarray (n,)
        Right-hand side (cast to A's dtype); not modified.

    Returns
    -------
    Solve
        ``x`` (n,) in A's dtype.

    Notes
    -----
    GVL 2013, Alg. 3.4.1 then Algs. 3.1.1/3.1.2 (row-oriented forward and
    back substitution); Higham 2002, §9.1 and Thm 9.4.  LAPACK xGESV
    (xGETRF + xGETRS).  Backward stable in practice: the normwise backward
    error is O(n u) times the growth factor.
    """
    A = working(A, square=True, emulated=True)
    ar = arithmetic(A.dtype)
    # b is rounded to the format first (exact when it is already stored in it).
    x = ar.rnd(rhs_vector(A, b, dtype=ar.work)) if ar.emulated else rhs_vector(A, b)
    W, perm = _lu_for_solve(A, ar)
    x = solve_lower(W, x[perm], unit=True, rnd=ar.rnd)
    return Solve(ar.out(solve_upper(W, x, rnd=ar.rnd)))


@register("solve", "inv", max_n=1024, stable=False, **_COMMON)
def solve_inv(A, b):
    """Solve A x = b as x = inv(A) @ b, the inverse from the textbook LU.

    Parameters
    ----------
    A : ndarray (n, n)
        Not modified.
    b : ndarray (n,)
        Right-hand side (cast to A's dtype); not modified.

    Returns
    -------
    Solve
        ``x`` (n,) in A's dtype.

    Notes
    -----
    inv(A) solves L U X = P with the identity's columns as right-hand sides
    (the n substitutions run as one vectorised sweep over rows); Higham 2002,
    §14.1 and §14.3; LAPACK xGETRF + xGETRS with B = I (xGETRI forms the
    same inverse by another route).  Multiplying by a computed inverse is not
    backward stable: the residual is ~ kappa(A) u ||A|| ||x||, so the
    backward error grows like kappa u (Higham 2002, §14.1), against O(u) for
    ``solve/lu``.
    """
    A = working(A, square=True)
    rhs = rhs_vector(A, b)
    W, perm = _lu_for_solve(A)
    X = solve_lower(W, np.eye(A.shape[0], dtype=A.dtype)[perm], unit=True)
    X = solve_upper(W, X)
    return Solve(X @ rhs)


@register("lstsq", "normal", max_n=1024, stable=False, **_COMMON)
def lstsq_normal(A, b):
    """Least squares by the normal equations A^H A x = A^H b and the textbook Cholesky.

    Parameters
    ----------
    A : ndarray (m, n), m >= n, full column rank
        Not modified.
    b : ndarray (m,)
        Right-hand side (cast to A's dtype); not modified.

    Returns
    -------
    Lstsq
        ``x`` (n,) in A's dtype.

    Raises
    ------
    numpy.linalg.LinAlgError
        A^H A is not numerically positive definite (kappa(A) >~ u^{-1/2}).

    Notes
    -----
    GVL 2013, §5.3.2; Higham 2002, §20.4; Björck 1996, §2.2.  No LAPACK
    driver (xSYRK + xPOTRF + xPOTRS).  Forming A^H A squares the condition
    number: the forward error grows like kappa^2 u even for a consistent
    system, where QR-based methods give kappa u.
    """
    A = working(A, tall=True)
    rhs = rhs_vector(A, b)
    AH = A.conj().T
    L = cholesky_lower(AH @ A)
    y = solve_lower(L, AH @ rhs)
    return Lstsq(solve_upper(L.conj().T, y))


@register("lstsq", "householder", max_n=1024, **_COMMON)
def lstsq_householder(A, b):
    """Least squares by Householder QR: Q^H b applied from the reflectors, then R x = (Q^H b)[:n].

    Parameters
    ----------
    A : ndarray (m, n), m >= n, full column rank
        Not modified.
    b : ndarray (m,)
        Right-hand side (cast to A's dtype); not modified.

    Returns
    -------
    Lstsq
        ``x`` (n,) in A's dtype.

    Notes
    -----
    Trefethen & Bau 1997, Alg. 11.2 with Alg. 10.2 (Q^H b without forming Q);
    GVL 2013, §5.3.3; Higham 2002, §20.2.  LAPACK xGELS (xGEQRF +
    xORMQR + xTRTRS).  Backward stable; the forward error is
    ~ kappa u + kappa^2 u ||r|| / (||A|| ||x||), i.e. kappa u for a consistent b.
    """
    A = working(A, tall=True)
    rhs = rhs_vector(A, b)
    W = A.copy()
    tau, _ = householder_inplace(W)
    apply_qh(W, tau, rhs)
    n = A.shape[1]
    return Lstsq(solve_upper(W[:n, :n], rhs[:n].copy()))
