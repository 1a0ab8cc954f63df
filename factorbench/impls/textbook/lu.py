"""Textbook LU (three pivoting strategies) and Cholesky.

``lu/gepp``, ``lu/nopivot`` and ``cholesky/textbook`` also run the emulated
formats float16 and bfloat16 (:mod:`._emulate`): the factorization runs on a
float32 copy, every step's result is rounded to the format (where: see
:func:`~._kernels.lu_inplace` and :func:`~._kernels.cholesky_lower`) and the
factors come back in the storage dtype.  ``lu/gecp`` does not declare them.
"""

from __future__ import annotations

import numpy as np

from factorbench.impls import NATIVE_COMPLEX, NATIVE_REAL, register
from factorbench.impls.results import LU, Cholesky
from factorbench.impls.textbook._emulate import EMULATED, arithmetic
from factorbench.impls.textbook._kernels import cholesky_lower, lu_factors, lu_inplace, working

_DTYPES = NATIVE_REAL + NATIVE_COMPLEX
_COMMON = {"backend": "numpy", "family": "textbook", "dtypes": _DTYPES}
#: Impls that round every step to an emulated format also declare float16/bfloat16.
_EMU = {**_COMMON, "dtypes": _DTYPES + EMULATED}


def _lu(A, pivoting):
    """LU of a copy of A in A's arithmetic: (perm, L, U, growth) in the storage dtype."""
    A = working(A, square=True, emulated=True)
    ar = arithmetic(A.dtype)
    W = ar.load(A)
    perm, _, growth = lu_inplace(W, pivoting, rnd=ar.rnd)
    L, U = lu_factors(W)
    return LU(perm, ar.out(L), ar.out(U), growth_factor_exact=growth)


@register("lu", "gepp", max_n=1024, **_EMU)
def lu_gepp(A):
    """LU with partial pivoting by outer-product Gaussian elimination.

    Parameters
    ----------
    A : ndarray (n, n)
        float32, float64, complex64 or complex128, or emulated float16 /
        bfloat16 (computed in float32, the multipliers and every entry of each
        rank-1 update rounded to the format); not modified.

    Returns
    -------
    LU
        ``perm`` (n,) intp, ``L`` (n, n) unit lower, ``U`` (n, n) upper, in A's
        dtype, with ``A[perm] = L @ U``; ``growth_factor_exact`` is
        max_k max|A^(k)| / max|A| over every active Schur complement
        (Higham 2002, eq. 9.6): exactly 2^(n-1) for Wilkinson's matrix; for
        an emulated format it is taken over the rounded Schur complements.

    Notes
    -----
    GVL 2013, Alg. 3.4.1; Trefethen & Bau 1997, Alg. 21.1; Higham 2002, §9.1-9.3.
    LAPACK xGETF2 (unblocked xGETRF).  Ties in the pivot search go to the
    first row, as IxAMAX does.
    """
    return _lu(A, "partial")


@register("lu", "nopivot", max_n=1024, stable=False, **_EMU)
def lu_nopivot(A):
    """LU without pivoting (Gaussian elimination as first taught).

    Parameters
    ----------
    A : ndarray (n, n)
        Not modified.  Native dtypes, or emulated float16 / bfloat16 rounded
        as in ``lu/gepp``.

    Returns
    -------
    LU
        ``perm = arange(n)``, unit lower ``L`` and upper ``U`` (n, n) in A's
        dtype, ``growth_factor_exact`` as for ``lu/gepp``.

    Notes
    -----
    Trefethen & Bau 1997, Alg. 20.1; GVL 2013, Alg. 3.2.1; Higham 2002, §9.3.
    No LAPACK counterpart.  Unstable: a small pivot makes the growth, and so
    the backward error, unbounded.  An exact zero pivot is not trapped: the
    factors come back with Inf/NaN and the harness records the failure.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _lu(A, "none")


@register("lu", "gecp", max_n=256, **_COMMON)
def lu_gecp(A):
    """LU with complete pivoting (largest entry of the active submatrix as pivot).

    Parameters
    ----------
    A : ndarray (n, n)
        Not modified.

    Returns
    -------
    LU
        ``perm`` (n,) row permutation, ``L`` unit lower, ``U`` upper (n, n)
        and ``col_perm`` q (n,) with ``A[perm][:, q] = L @ U``.  The column
        permutation is not folded into U (that would destroy its triangular
        form).  ``growth_factor_exact`` as for ``lu/gepp``.

    Notes
    -----
    GVL 2013, Alg. 3.4.3; Higham 2002, §9.3 and §9.4 (growth under complete
    pivoting is small, Wilkinson's bound n^(1/2 + log(n)/4)).  LAPACK xGETC2.
    The full search costs O(n^3) comparisons, one pass over |A^(k)| per step,
    the same pass that tracks the growth factor.
    """
    A = working(A, square=True)
    W = A.copy()
    perm, q, growth = lu_inplace(W, "complete")
    L, U = lu_factors(W)
    return LU(perm, L, U, growth_factor_exact=growth, col_perm=q)


@register("cholesky", "textbook", max_n=1024, **_EMU)
def cholesky_textbook(A):
    """Cholesky factorization A = L L^H of a symmetric/Hermitian positive definite A.

    Parameters
    ----------
    A : ndarray (n, n)
        Only the lower triangle is read (the diagonal must be real for
        complex A); not modified.  Emulated float16 / bfloat16 are computed
        in float32 with each pivot, square root, column update (a
        matrix-vector product accumulated in float32, rounded once) and
        quotient rounded to the format.

    Returns
    -------
    Cholesky
        ``L`` (n, n) lower triangular in A's dtype with a real positive diagonal.

    Raises
    ------
    numpy.linalg.LinAlgError
        A pivot is not positive (or not real, or NaN): A is not numerically
        positive definite.  The message names the pivot's 0-based index.

    Notes
    -----
    Gaxpy (left-looking) form: GVL 2013, Alg. 4.2.1; Trefethen & Bau 1997,
    Alg. 23.1; Higham 2002, §10.1.  LAPACK xPOTF2 with uplo='L'.  Each
    column costs one matrix-vector product with the finished columns, which
    reads the lower triangle only (the outer-product form would update the
    whole trailing square for the same result).
    """
    A = working(A, square=True, emulated=True)
    ar = arithmetic(A.dtype)
    return Cholesky(ar.out(cholesky_lower(ar.load(A) if ar.emulated else A, rnd=ar.rnd)))
