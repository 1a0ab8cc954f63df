"""Blocked (left-looking) and recursive Cholesky, written once against the array namespace.

Both compute the lower factor of ``A = L L^H`` in place in a working array,
reading only the lower triangle of A as LAPACK's xPOTRF (uplo='L') does;
the strictly upper triangle of the working array is scratch and is zeroed
at the end.  They call only the array API standard and the
:mod:`~factorbench.impls.blocked._xp` kernels (``trsm``, ``gemm_update``).
The diagonal blocks are factored by :func:`_potf2`, an unblocked loop of
elementwise operations on a block of at most ``block`` columns.

Failure: a pivot that is not positive and finite (NaN input included:
OpenBLAS xPOTRF returns INFO = 0 on NaN) raises
:class:`numpy.linalg.LinAlgError` naming its 0-based index, on every
namespace; so does a complex diagonal entry of A that is not real.

Measured (2-core machine, OpenBLAS, float64, n = 4096, each impl interleaved
with ``cholesky/lapack`` in one process, minimum of 5 rounds, other jobs
running): ``cholesky/lapack`` (xPOTRF) 0.37 s (63 GFLOP/s);
``cholesky/recursive`` block 16 or 32 0.26 s (89 GFLOP/s, 1.4x: GEMM 0.13 s,
TRSM 0.11 s, diagonal blocks 0.018 s); ``cholesky/blocked`` block 128 0.29 s
(78 GFLOP/s, 1.25x: GEMM 0.24 s, diagonal blocks 0.04 s), block 64 0.34 s,
block 256 0.36 s (its diagonal blocks' elementwise work grows as block^2).
OpenBLAS's xPOTRF is the slower one here, not Python: at n = 2048 both are
still 1.1x to 1.2x, at n = 1024 0.85x, at n = 256 0.25x (one BLAS thread).

Emulated float16/bfloat16 (NumPy input, both impls; the shared mechanism of
:mod:`factorbench.impls.textbook._emulate`): a Fortran-ordered float32 copy
goes through the same kernels, SciPy's float32 BLAS included, with ``rnd``
rounding to the format after every operation: in a diagonal block each
square root, each quotient and each entry of each rank-1 update; each GEMM
block update and each TRSM block accumulated in float32 and rounded once per
entry (the block FMA model of Blanchard et al. 2020).  Native paths are the
unchanged code (``rnd is identity``).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.linalg import LinAlgError

from factorbench.impls import NATIVE_COMPLEX, NATIVE_REAL, register
from factorbench.impls.blocked import _xp
from factorbench.impls.results import Cholesky
from factorbench.impls.textbook._emulate import EMULATED, identity

__all__ = ["cholesky_blocked", "cholesky_recursive", "potrf_blocked", "potrf_recursive"]

_DTYPES = NATIVE_REAL + NATIVE_COMPLEX

#: Diagonal blocks of the recursive SYRK at most this size are updated by one
#: square GEMM (their strictly upper half is scratch).  The extra flops are
#: about SYRK_LEAF / (n/2) of the update's, 3% at n = 4096, and a GEMM with
#: 128 x 128 output runs near the BLAS peak where a 16 x 16 one does not.
SYRK_LEAF = 128


def _not_pd(k, what):
    return LinAlgError(f"matrix is not positive definite: pivot k = {k} is {what} (0-based)")


def _check_real_diagonal(xp, A):
    """Raise if a complex diagonal entry has an imaginary part above n u |Re|.

    Hermitian input has a real diagonal; the tolerance is the textbook
    impl's (``cholesky/textbook``), so both refuse the same matrices.
    """
    if not xp.isdtype(A.dtype, "complex floating"):
        return
    n = A.shape[0]
    d = _xp.diagonal(xp, A)
    u = float(np.finfo(np.complex64 if A.dtype == xp.complex64 else np.complex128).eps) / 2
    bad = xp.abs(xp.imag(d)) > (n * u) * xp.abs(xp.real(d))
    if bool(xp.any(bad)):
        k = _xp.to_int(xp.argmax(xp.astype(bad, xp.int8)))
        raise LinAlgError(f"matrix is not positive definite: pivot k = {k} is not real")


def _potf2(xp, W, c0, c1, rnd=identity):
    """Unblocked Cholesky of the diagonal block ``W[c0:c1, c0:c1]``, in place.

    The block must already hold ``A11 - L10 L10^H`` (the columns left of it
    applied).  Its lower triangle becomes L11; its strictly upper triangle is
    scratch.  Outer-product form (GVL 2013, §4.2; LAPACK xPOTF2): per
    column, the pivot's real part (an FMA-computed update can leave a
    rounding-level imaginary part on the diagonal), a check, a square root,
    a scaling and an elementwise rank-1 update of the rest of the block.

    Raises
    ------
    LinAlgError
        At the first pivot that is not positive and finite.  On NumPy the
        check is per column; elsewhere once per block (one host sync), so
        the index is the same.
    """
    numpy = _xp.is_numpy(xp)
    cplx = xp.isdtype(W.dtype, "complex floating")
    pivots = []
    for j in range(c0, c1):
        d = xp.real(W[j, j]) if cplx else W[j, j]
        if numpy:
            if not (d > 0 and math.isfinite(d)):
                raise _not_pd(j, d)
            r = rnd(xp.sqrt(d))
        else:
            pivots.append(d)
            # No host sync per column: a failing pivot is replaced by 1 and
            # reported after the block (what follows it is discarded).
            r = xp.sqrt(xp.where(d > 0, d, xp.ones_like(d)))
        W[j, j] = r
        if j + 1 < c1:
            W[j + 1:c1, j] = rnd(W[j + 1:c1, j] / r)
            col = W[j + 1:c1, j:j + 1]
            # (conj(l) * l^T)^T = l l^H, formed transposed so that it comes out
            # in W's (Fortran) order (see lu._getf2).
            upd = ((xp.conj(col) if cplx else col) * col.T).T
            if numpy and rnd is identity:
                W[j + 1:c1, j + 1:c1] -= upd
            elif numpy:
                W[j + 1:c1, j + 1:c1] = rnd(W[j + 1:c1, j + 1:c1] - upd)
            else:
                W[j + 1:c1, j + 1:c1] = W[j + 1:c1, j + 1:c1] - upd
    if not numpy and pivots:
        d = xp.stack(pivots)
        bad = ~((d > 0) & xp.isfinite(d))
        if bool(xp.any(bad)):
            k = _xp.to_int(xp.argmax(xp.astype(bad, xp.int8)))
            raise _not_pd(c0 + k, float(d[k]))


def _update(xp, W, r0, r1, c0, c1, k0, k1, rnd=identity):
    """``W[r0:r1, c0:c1] -= W[r0:r1, k0:k1] @ W[c0:c1, k0:k1]^H`` (one GEMM,
    rounded once per entry by ``rnd`` for an emulated format)."""
    C = W[r0:r1, c0:c1]
    X = _xp.gemm_update(xp, C, W[r0:r1, k0:k1], W[c0:c1, k0:k1], conj_trans_b=True)
    _xp.write_back(W, slice(r0, r1), slice(c0, c1), X, C)
    if rnd is not identity:
        W[r0:r1, c0:c1] = rnd(W[r0:r1, c0:c1])


def _solve_right(xp, W, r0, r1, c0, c1, rnd=identity):
    """``L21 = A21 L11^{-H}`` for ``A21 = W[r0:r1, c0:c1]``, ``L11 = W[c0:c1, c0:c1]``
    (one TRSM, rounded once per entry by ``rnd`` for an emulated format)."""
    if r1 > r0:
        B = W[r0:r1, c0:c1]
        X = _xp.trsm(xp, W[c0:c1, c0:c1], B, lower=True, side="right", conj_trans=True)
        _xp.write_back(W, slice(r0, r1), slice(c0, c1), X, B)
        if rnd is not identity:
            W[r0:r1, c0:c1] = rnd(W[r0:r1, c0:c1])


def potrf_blocked(xp, W, nb, rnd=identity):
    """Left-looking blocked Cholesky of the working array ``W``, in place.

    GVL 2013, §4.2, block Cholesky in its gaxpy (left-looking, Crout) form;
    LAPACK xPOTRF's block structure.  For each block column ``j:k``: bring it
    up to date with every finished column in one GEMM,
    ``A[j:, j:k] -= L[j:, :j] L[j:k, :j]^H``; factor the diagonal block
    (:func:`_potf2`); ``L21 = A21 L11^{-H}`` (``trsm``).  The GEMM reads only
    the lower triangle, its flops sum to n^3/3 as xSYRK's would, with a
    large inner dimension (``j``); a right-looking form with a full GEMM for
    the symmetric trailing update would do twice the flops.
    """
    n = W.shape[0]
    for j in range(0, n, nb):
        k = min(j + nb, n)
        if j:
            _update(xp, W, j, n, j, k, 0, j, rnd)
        _potf2(xp, W, j, k, rnd)
        _solve_right(xp, W, k, n, j, k, rnd)
    return W


def _syrk(xp, W, r0, r1, k0, k1, leaf, rnd=identity):
    """Lower triangle of ``W[r0:r1, r0:r1] -= W[r0:r1, k0:k1] W[r0:r1, k0:k1]^H``,
    recursively: two diagonal halves and one off-diagonal GEMM (recursive
    xSYRK/xHERK, Gustavson 1997), so the flops stay near half a GEMM's."""
    p = r1 - r0
    if p <= leaf:
        _update(xp, W, r0, r1, r0, r1, k0, k1, rnd)
        return
    h = r0 + p // 2
    _syrk(xp, W, r0, h, k0, k1, leaf, rnd)
    _update(xp, W, h, r1, r0, h, k0, k1, rnd)
    _syrk(xp, W, h, r1, k0, k1, leaf, rnd)


def potrf_recursive(xp, W, c0, c1, leaf, syrk_leaf=SYRK_LEAF, rnd=identity):
    """Recursive Cholesky of the diagonal block ``W[c0:c1, c0:c1]``, in place.

    Gustavson 1997; Ahmed & Pingali 2000; LAPACK 3.6 xPOTRF2.  Split in
    halves: ``L11 = chol(A11)`` recursively; ``L21 = A21 L11^{-H}``
    (``trsm``); ``A22 -= L21 L21^H`` on the lower triangle only
    (:func:`_syrk`); ``L22 = chol(A22)`` recursively.  Panels of at most
    ``leaf`` columns go to :func:`_potf2`.
    """
    nc = c1 - c0
    if nc <= leaf:
        _potf2(xp, W, c0, c1, rnd)
        return W
    h = c0 + nc // 2
    potrf_recursive(xp, W, c0, h, leaf, syrk_leaf, rnd)
    _solve_right(xp, W, h, c1, c0, h, rnd)
    _syrk(xp, W, h, c1, c0, h, syrk_leaf, rnd)
    potrf_recursive(xp, W, h, c1, leaf, syrk_leaf, rnd)
    return W


def _lower(xp, W):
    """L = the lower triangle of W with exact zeros above; W's storage on NumPy."""
    if _xp.is_numpy(xp):
        for j in range(1, W.shape[0]):
            W[:j, j] = 0
        return W
    return xp.tril(W)


def _factor(A, who, run):
    xp = _xp.namespace(A)
    ar, W = _xp.emulated_square(xp, A, who)
    if ar is not None:
        run(xp, W, ar.rnd)
        return Cholesky(ar.out(_lower(xp, W)))
    _xp.check_square(xp, A, who)
    _check_real_diagonal(xp, A)
    W = _xp.workspace(xp, A)
    run(xp, W, identity)
    return Cholesky(_lower(xp, W))


# --------------------------------------------------------------------- impls

_COMMON = {"backend": "numpy", "dtypes": _DTYPES + EMULATED, "layout": "F"}


@register("cholesky", "blocked", family="blocked",
          parameters={"block": [32, 64, 128, 256]}, **_COMMON)
def cholesky_blocked(A, *, block=128) -> Cholesky:
    """Left-looking blocked Cholesky A = L L^H (lower), one GEMM per block column.

    Parameters
    ----------
    A : array (n, n), overwritten
        Symmetric/Hermitian positive definite, float32, float64, complex64
        or complex128, any array-API namespace; only the lower triangle is
        read.  A writable Fortran-contiguous NumPy array (what the harness hands
        an impl with ``layout="F"``) is the workspace and is destroyed, as
        ``cholesky/lapack`` destroys its input; any other input is copied.
    block : int
        Block-column width nb.

    Returns
    -------
    Cholesky
        ``L`` (n, n) lower triangular in A's dtype and namespace with a real
        positive diagonal and exact zeros above it.

    Raises
    ------
    numpy.linalg.LinAlgError
        A pivot is not positive and finite (NaN included), or a complex
        diagonal entry is not real: "matrix is not positive definite: pivot
        k = <0-based index> ...".

    Notes
    -----
    GVL 2013, §4.2 (block Cholesky, gaxpy/Crout form); LAPACK xPOTRF
    (uplo='L').  Per block column: one GEMM ``A[j:, j:k] -= L[j:, :j]
    L[j:k, :j]^H`` with inner dimension j, the unblocked factorization of the
    diagonal block (elementwise, ``block`` columns) and one TRSM for the
    block below.  n^3/3 flops, as xPOTRF.
    """
    block = _xp.check_block("block", block)
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    return _factor(A, "cholesky/blocked", lambda xp, W, rnd: potrf_blocked(xp, W, block, rnd))


@register("cholesky", "recursive", family="recursive",
          parameters={"block": [8, 16, 32, 64]}, **_COMMON)
def cholesky_recursive(A, *, block=32) -> Cholesky:
    """Recursive Cholesky A = L L^H (lower) with a recursive symmetric update.

    Parameters
    ----------
    A : array (n, n), overwritten
        As :func:`cholesky_blocked`: only the lower triangle is read; a
        writable Fortran-contiguous NumPy array is the workspace and is
        destroyed; anything else is copied first.
    block : int
        Leaf width: diagonal blocks of at most this many columns are
        factored by the unblocked loop.

    Returns
    -------
    Cholesky
        As :func:`cholesky_blocked`.

    Raises
    ------
    numpy.linalg.LinAlgError
        As :func:`cholesky_blocked`.

    Notes
    -----
    F. Gustavson, Recursion leads to automatic variable blocking for dense
    linear-algebra algorithms, IBM J. Res. Dev. 41(6), 1997; N. Ahmed and
    K. Pingali, Automatic generation of block-recursive codes, Euro-Par
    2000; LAPACK xPOTRF2.  ``L11 = chol(A11)``, ``L21 = A21 L11^{-H}``
    (TRSM), ``A22 -= L21 L21^H`` by a recursive SYRK that splits into two
    diagonal halves and one GEMM (diagonal blocks of at most
    :data:`SYRK_LEAF` rows take one square GEMM), ``L22 = chol(A22)``.
    About n^3/3 flops.
    """
    block = _xp.check_block("block", block)
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    return _factor(A, "cholesky/recursive",
                   lambda xp, W, rnd: potrf_recursive(xp, W, 0, W.shape[0], block, rnd=rnd))
