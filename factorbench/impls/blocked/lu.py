"""Blocked and recursive LU with partial pivoting, written once against the array namespace.

Both factor ``P A = L U`` in place in a working array, LAPACK-style (L's
multipliers below the diagonal, U on and above it), with the pivots kept
as LAPACK's 0-based ``ipiv`` on the host.  They call only the array API
standard and the :mod:`~factorbench.impls.blocked._xp` kernels (``trsm``,
``gemm_update``, ``laswp``), so the same code runs on NumPy, on CuPy and on
array-api-strict.  The only non-BLAS-3 work is the unblocked elimination of
narrow column panels (:func:`_getf2`), whose per-column operations are
elementwise: on NumPy they stay out of every BLAS thread pool (see the
``_xp`` module docstring for why that matters).

Measured (2-core machine, OpenBLAS, float64, n = 4096, each impl interleaved
with ``lu/lapack`` in one process, minimum of 5 rounds, other jobs running):
``lu/lapack`` 0.48 s (95 GFLOP/s; xGETRF alone 0.47 s); ``lu/recursive``
block 16 0.54 s (85 GFLOP/s, 0.89x), block 8 0.55 s; ``lu/blocked`` block 32
0.69 s (67 GFLOP/s, 0.70x), block 64 0.69 s, block 128 0.8 s.  Where the
recursive one spends it (block 16, phases timed separately): GEMM 0.30 s,
TRSM 0.11 s, leaf panels 0.065 s, laswp 0.03 s, unpacking 0.015 s; its BLAS-3
calls alone take 0.41 s, so the Python-level remainder is about 20%.  At
n = 2048 it is 0.70x to 0.75x; at n <= 512 the per-column Python work
dominates (0.3x at n = 512, 0.16x at n = 256, one BLAS thread).

Emulated float16/bfloat16 (NumPy input only; the shared mechanism of
:mod:`factorbench.impls.textbook._emulate`): the factorization runs on a
Fortran-ordered float32 copy through the same kernels, SciPy's float32 BLAS
included, with ``rnd`` rounding to the format after every operation: in the
panel each multiplier and each entry of each rank-1 update; each TRSM block
``U12 = L11^{-1} A12`` and each GEMM block update ``A22 - L21 U12``
accumulated in float32 and rounded once per entry (the block FMA model of
Blanchard et al. 2020).  The native paths are the unchanged code
(``rnd is identity``).
"""

from __future__ import annotations

import numpy as np

from factorbench.impls import NATIVE_COMPLEX, NATIVE_REAL, register
from factorbench.impls.blocked import _xp
from factorbench.impls.results import LU
from factorbench.impls.textbook._emulate import EMULATED, identity

__all__ = ["lu_blocked", "lu_recursive", "getrf_blocked", "getrf_recursive"]

_DTYPES = NATIVE_REAL + NATIVE_COMPLEX


# ------------------------------------------------------------------ kernels


def _getf2(xp, W, ipiv, c0, c1, rnd=identity):
    """Unblocked LU with partial pivoting of the panel ``W[c0:, c0:c1]``, in place.

    Parameters
    ----------
    W : array (n, n)
        Working array; rows ``c0:`` of columns ``c0:c1`` are overwritten with
        the multipliers (below the diagonal) and U's rows ``c0:c1``.  Row
        interchanges are applied to the panel's columns only.
    ipiv : ndarray (n,) of int32, host
        ``ipiv[c0:c1]`` receives the absolute 0-based pivot rows.
    rnd : callable
        Rounding to an emulated format (NumPy only), applied to the
        multipliers and to each rank-1 update.

    Notes
    -----
    GVL 2013, Alg. 3.4.1 (outer-product form); LAPACK xGETF2.  The pivot is
    the first index of the largest ``|a_ij|`` in the column (IxAMAX's tie
    rule; ``argmax`` returns the first maximum), with ``|z|`` the modulus for
    complex entries where IxAMAX uses |Re| + |Im|, as GVL defines partial
    pivoting.  A zero pivot means the column below it is zero: the step is
    skipped, as xGETF2 does, so a singular A still gets exact factors with a
    zero on U's diagonal.  Each column costs an ``argmax`` (one host sync for
    the pivot index, which ``laswp`` needs on the host anyway), a two-row
    swap, a scaling and an elementwise rank-1 update of the panel's
    remaining columns; the panel is narrow (``block`` columns), so that
    BLAS-2 work is a small share of the flops.
    """
    n = W.shape[0]
    numpy = _xp.is_numpy(xp)
    for j in range(c0, c1):
        p = j + _xp.to_int(xp.argmax(xp.abs(W[j:, j])))
        ipiv[j] = p
        if p != j:
            row = xp.asarray(W[j, c0:c1], copy=True)
            W[j, c0:c1] = W[p, c0:c1]
            W[p, c0:c1] = row
        if j + 1 == n:
            break
        piv = W[j, j]
        if numpy:
            if piv == 0:
                continue
            if rnd is identity:
                W[j + 1:, j] /= piv
            else:
                W[j + 1:, j] = rnd(W[j + 1:, j] / piv)
        else:
            # No host sync: a zero pivot has a zero column below it, and
            # dividing by 1 instead leaves that column (and the update) zero.
            piv = xp.where(piv == 0, xp.ones_like(piv), piv)
            W[j + 1:, j] = W[j + 1:, j] / piv
        if j + 1 < c1:
            # The outer product is formed as (u^T * l^T)^T so that it comes out
            # Fortran-ordered like W: NumPy allocates a broadcast product in C
            # order, and subtracting a C-ordered block from a Fortran-ordered
            # one walks memory across the grain (4x to 10x slower at 16 to 64
            # columns, measured).
            upd = (W[j:j + 1, j + 1:c1].T * W[j + 1:, j:j + 1].T).T
            if numpy and rnd is identity:
                W[j + 1:, j + 1:c1] -= upd
            elif numpy:
                W[j + 1:, j + 1:c1] = rnd(W[j + 1:, j + 1:c1] - upd)
            else:  # the standard leaves writes through views unspecified
                W[j + 1:, j + 1:c1] = W[j + 1:, j + 1:c1] - upd


def _trsm_gemm(xp, W, r0, r1, c0, c1, rnd=identity):
    """Finish the block row/column after the panel ``W[r0:, r0:r1]`` is factored:
    ``U12 = L11^{-1} A12`` for rows ``r0:r1`` of columns ``c0:c1``, then
    ``A22 -= L21 U12`` for rows ``r1:``.  ``rnd`` (emulated formats) rounds
    each block once, after its TRSM and after its GEMM."""
    B = W[r0:r1, c0:c1]
    X = _xp.trsm(xp, W[r0:r1, r0:r1], B, lower=True, unit=True)
    _xp.write_back(W, slice(r0, r1), slice(c0, c1), X, B)
    if rnd is not identity:
        W[r0:r1, c0:c1] = rnd(W[r0:r1, c0:c1])
    if r1 < W.shape[0]:
        C = W[r1:, c0:c1]
        X = _xp.gemm_update(xp, C, W[r1:, r0:r1], W[r0:r1, c0:c1])
        _xp.write_back(W, slice(r1, None), slice(c0, c1), X, C)
        if rnd is not identity:
            W[r1:, c0:c1] = rnd(W[r1:, c0:c1])


def getrf_blocked(xp, W, ipiv, nb, rnd=identity):
    """Right-looking blocked LU of the square working array ``W``, in place.

    GVL 2013, §3.4 (block Gaussian elimination with partial pivoting);
    LAPACK xGETRF with xGETF2 as the panel factorization.  For each panel of
    ``nb`` columns: factor it (:func:`_getf2`), apply its interchanges to the
    columns on both sides (``laswp``), ``U12 = L11^{-1} A12`` (``trsm``), and
    the trailing update ``A22 -= L21 U12`` (``gemm_update``).
    """
    n = W.shape[0]
    for j in range(0, n, nb):
        k = min(j + nb, n)
        _getf2(xp, W, ipiv, j, k, rnd)
        _xp.laswp(xp, W, ipiv, j, k, slice(0, j))
        if k < n:
            _xp.laswp(xp, W, ipiv, j, k, slice(k, n))
            _trsm_gemm(xp, W, j, k, k, n, rnd)
    return W


def getrf_recursive(xp, W, ipiv, c0, c1, leaf, rnd=identity):
    """Toledo's recursive LU of the panel ``W[c0:, c0:c1]``, in place.

    Toledo 1997, SIAM J. Matrix Anal. Appl. 18(4); LAPACK 3.6 xGETRF2.  Split
    the columns in halves; factor the left panel recursively; apply its
    interchanges to the right half (``laswp``); ``U12 = L11^{-1} A12``
    (``trsm``); ``A22 -= L21 U12`` (``gemm_update``); factor ``A22``
    recursively; apply its interchanges back to the left half.  Below
    ``leaf`` columns the panel goes to :func:`_getf2`.  Every level does its
    flops in one TRSM and one GEMM whose inner dimension is half the panel,
    so most of the n^3 work runs in large GEMMs, with no block size to tune
    except the leaf.
    """
    nc = c1 - c0
    if nc <= leaf:
        _getf2(xp, W, ipiv, c0, c1, rnd)
        return W
    h = c0 + nc // 2
    getrf_recursive(xp, W, ipiv, c0, h, leaf, rnd)
    _xp.laswp(xp, W, ipiv, c0, h, slice(h, c1))
    _trsm_gemm(xp, W, c0, h, h, c1, rnd)
    getrf_recursive(xp, W, ipiv, h, c1, leaf, rnd)
    _xp.laswp(xp, W, ipiv, h, c1, slice(c0, h))
    return W


def _unpack(xp, W, ipiv) -> LU:
    """Split the packed factors into ``LU(perm, L, U)``, both exactly triangular.

    On NumPy, U is copied column by column into a new Fortran-ordered array
    and L keeps W's storage (contiguous column slices, as ``lu/lapack``
    does); elsewhere ``tril``/``triu``.  ``extras["info"]`` follows xGETRF:
    0, or k > 0 when ``U[k-1, k-1]`` is the first exactly zero pivot.
    """
    n = W.shape[0]
    if _xp.is_numpy(xp):
        U = np.zeros((n, n), dtype=W.dtype, order="F")
        for j in range(n):
            col = W[:j + 1, j]
            U[:j + 1, j] = col
            col[:] = 0
        np.fill_diagonal(W, 1)
        L = W
    else:
        U = xp.triu(W)
        L = xp.tril(W, k=-1) + xp.eye(n, dtype=W.dtype)
    zero = _xp.diagonal(xp, U) == 0
    info = _xp.to_int(xp.argmax(xp.astype(zero, xp.int8))) + 1 if bool(xp.any(zero)) else 0
    return LU(_xp.ipiv_to_perm(ipiv, n), L, U, extras={"info": info})


def _factor(A, who, run):
    xp = _xp.namespace(A)
    ar, W = _xp.emulated_square(xp, A, who)
    if ar is not None:
        ipiv = np.zeros(W.shape[0], dtype=np.int32)
        run(xp, W, ipiv, ar.rnd)
        res = _unpack(xp, W, ipiv)
        return LU(res.perm, ar.out(res.L), ar.out(res.U), extras=res.extras)
    _xp.check_square(xp, A, who)
    W = _xp.workspace(xp, A)
    ipiv = np.zeros(W.shape[0], dtype=np.int32)
    run(xp, W, ipiv, identity)
    return _unpack(xp, W, ipiv)


# --------------------------------------------------------------------- impls

_COMMON = {"backend": "numpy", "dtypes": _DTYPES + EMULATED, "layout": "F"}


@register("lu", "blocked", family="blocked", parameters={"block": [32, 64, 128, 256]},
          **_COMMON)
def lu_blocked(A, *, block=32) -> LU:
    """Right-looking blocked LU with partial pivoting (LAPACK xGETRF's algorithm).

    Parameters
    ----------
    A : array (n, n), overwritten
        float32, float64, complex64 or complex128, any array-API namespace;
        or a NumPy float16 / bfloat16 array (emulated: float32 arithmetic
        rounded to the format after each panel step, TRSM and GEMM block, see
        the module docstring; factors in the storage dtype).
        A writable Fortran-contiguous NumPy array (what the harness hands
        an impl with ``layout="F"``) is the workspace and is destroyed, as
        ``lu/lapack`` destroys its input; any other input (C order, a
        strided view, read-only, another namespace) is copied first.
    block : int
        Panel width nb.

    Returns
    -------
    LU
        ``perm`` (n,) intp NumPy array on the host, ``L`` (n, n) unit lower
        and ``U`` (n, n) upper in A's dtype and namespace, exact zeros off
        the triangle, with ``A[perm] = L @ U``.  ``extras["info"]`` as
        xGETRF's INFO (k > 0: ``U[k-1, k-1]`` is the first exact zero).

    Notes
    -----
    GVL 2013, §3.4 (block LU); LAPACK xGETRF with xGETF2 panels (Anderson et al.,
    LAPACK Users' Guide, 3rd ed., 1999).  Per panel of ``block`` columns:
    unblocked elimination of the n-by-block panel (elementwise, BLAS-2
    flops), ``laswp`` on the columns left and right of it, ``trsm`` for the
    block row of U and one GEMM for the trailing update.  The panel's
    BLAS-2 share, about ``n^2 block / 4`` elementwise updates, is what keeps
    this below the recursive form (``lu/recursive``), which factors panels
    recursively with GEMMs instead, as LAPACK 3.6's xGETRF2 does.  Pivots as
    :func:`lu_recursive`: identical to ``lu/gepp``'s in exact arithmetic.
    """
    block = _xp.check_block("block", block)
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    return _factor(A, "lu/blocked",
                   lambda xp, W, ipiv, rnd: getrf_blocked(xp, W, ipiv, block, rnd))


@register("lu", "recursive", family="recursive", parameters={"block": [4, 8, 16, 32]},
          **_COMMON)
def lu_recursive(A, *, block=16) -> LU:
    """Recursive LU with partial pivoting (Toledo 1997; LAPACK xGETRF2).

    Parameters
    ----------
    A : array (n, n), overwritten
        As :func:`lu_blocked`: a writable Fortran-contiguous NumPy array is the
        workspace and is destroyed; anything else is copied first.
    block : int
        Leaf width: panels of at most this many columns are factored by the
        unblocked elimination.

    Returns
    -------
    LU
        As :func:`lu_blocked`.

    Notes
    -----
    S. Toledo, Locality of reference in LU decomposition with partial
    pivoting, SIAM J. Matrix Anal. Appl. 18(4), 1997; F. Gustavson,
    Recursion leads to automatic variable blocking for dense linear-algebra
    algorithms, IBM J. Res. Dev. 41(6), 1997; LAPACK xGETRF2.  The columns
    are halved recursively; each level does one ``laswp`` each way, one
    ``trsm`` and one GEMM, so the flops go to GEMMs of every size down to the
    leaf without a tuned block size.  The pivot sequence is that of
    column-by-column partial pivoting (GVL 2013, Alg. 3.4.1), the one
    ``lu/gepp`` and xGETRF choose, up to rounding in the updated columns.
    """
    block = _xp.check_block("block", block)
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    return _factor(A, "lu/recursive",
                   lambda xp, W, ipiv, rnd: getrf_recursive(xp, W, ipiv, 0, W.shape[0], block,
                                                            rnd))
