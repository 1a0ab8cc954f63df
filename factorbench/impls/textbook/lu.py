"""Textbook LU (three pivoting strategies) and Cholesky."""

from __future__ import annotations

import numpy as np

from factorbench.impls import NATIVE_COMPLEX, NATIVE_REAL, register
from factorbench.impls.results import LU, Cholesky
from factorbench.impls.textbook._kernels import cholesky_lower, lu_factors, lu_inplace, working

_DTYPES = NATIVE_REAL + NATIVE_COMPLEX
_COMMON = {"backend": "numpy", "family": "textbook", "dtypes": _DTYPES}


@register("lu", "gepp", max_n=1024, **_COMMON)
def lu_gepp(A):
    """LU with partial pivoting by outer-product Gaussian elimination.

    Parameters
    ----------
    A : ndarray (n, n)
        float32, float64, complex64 or complex128; not modified.

    Returns
    -------
    LU
        ``perm`` (n,) intp, ``L`` (n, n) unit lower, ``U`` (n, n) upper, in A's
        dtype, with ``A[perm] = L @ U``; ``growth_factor_exact`` is
        max_k max|A^(k)| / max|A| over every active Schur complement
        (Higham 2002, eq. 9.6): exactly 2^(n-1) for Wilkinson's matrix.

    Notes
    -----
    GVL 2013, Alg. 3.4.1; Trefethen & Bau 1997, Alg. 21.1; Higham 2002, §9.1-9.3.
    LAPACK xGETF2 (unblocked xGETRF).  Ties in the pivot search go to the
    first row, as IxAMAX does.
    """
    A = working(A, square=True)
    W = A.copy()
    perm, _, growth = lu_inplace(W, "partial")
    L, U = lu_factors(W)
    return LU(perm, L, U, growth_factor_exact=growth)


@register("lu", "nopivot", max_n=1024, stable=False, **_COMMON)
def lu_nopivot(A):
    """LU without pivoting (Gaussian elimination as first taught).

    Parameters
    ----------
    A : ndarray (n, n)
        Not modified.

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
    A = working(A, square=True)
    W = A.copy()
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        perm, _, growth = lu_inplace(W, "none")
    L, U = lu_factors(W)
    return LU(perm, L, U, growth_factor_exact=growth)


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


@register("cholesky", "textbook", max_n=1024, **_COMMON)
def cholesky_textbook(A):
    """Cholesky factorization A = L L^H of a symmetric/Hermitian positive definite A.

    Parameters
    ----------
    A : ndarray (n, n)
        Only the lower triangle is read (the diagonal must be real for
        complex A); not modified.

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
    A = working(A, square=True)
    return Cholesky(cholesky_lower(A))
