"""Blocked QR: Householder with compact WY, TSQR, CholeskyQR2 and shifted CholeskyQR3.

All four are written once against the array namespace of their input: the
array API standard (``matmul``, slices, ``tril``/``triu``, ``concat``,
``linalg.vector_norm``) plus ``_xp.trsm`` and the Householder kernels of
:mod:`~factorbench.impls.blocked._householder`, so the same functions run on
NumPy, on CuPy and on array-api-strict (the tests run both NumPy and
array-api-strict).  Registered with backend "numpy", family "blocked",
layout "F", native dtypes:

==================  ======  =====================  ====================================
id                  stable  parameters             method
==================  ======  =====================  ====================================
qr/blocked          yes     block 64, 128, 256     xGEQRF + xORGQR (compact WY)
qr/tsqr             yes     blocks 4, 8, 16        TSQR, binary reduction tree
qr/cholqr2-blocked  yes*    --                     CholeskyQR2, kappa(A) < ~u^(-1/2)
qr/scholqr3         yes*    --                     shifted CholeskyQR3, kappa(A) < ~1/u
==================  ======  =====================  ====================================

\\* Within the stated kappa range; beyond it the Cholesky factorization
breaks down and the impl raises ``numpy.linalg.LinAlgError`` (the harness
records an error, the honest result).  The conformance suite's kappa is
u^(-1/4), inside both ranges.

Choices where the design is silent:

* Every impl overwrites its input when it can (a writeable Fortran-ordered
  NumPy array, or an array of another namespace): the harness hands each
  call a fresh copy in the declared layout "F", and not copying saves a pass
  over A.  A C-ordered or read-only NumPy array is copied first
  (``_xp.work_copy``) and left alone.
* m >= n is required (ValueError otherwise); integer input is refused
  (TypeError).  Q (m, n) and R (n, n) come back in A's dtype, R with exact
  zeros below its diagonal.
* The panel of qr/blocked is factored recursively (Elmroth & Gustavson 2000,
  LAPACK xGEQRT3), with a column loop only on :data:`_householder.LEAF`
  columns: the plain xGEQR2 panel, a Python loop of matrix-vector products,
  took 60% of the time of the whole QR at block 64 and 80% at block 128
  (n = 1024) on the reference machine.  The Householder vectors and sign conventions are LAPACK's
  (xLARFG: beta real, so diag(R) is real), hence R equals xGEQRF's up to
  rounding.
* The products with m rows of an impl run in one BLAS: Householder and
  TSQR in NumPy's ``matmul``, CholeskyQR's Gram matrix and TRSM in SciPy's.
  NumPy and SciPy each load their own OpenBLAS, whose threads spin for a
  while after a call; switching between the two makes them compete for the
  cores (measured: CholeskyQR2 1.3-1.6x slower with a ``matmul`` Gram
  matrix).  The same effect distorts a comparison that alternates an impl
  with qr/lapack in one process unless the calls are spaced out (0.1 s
  here): back to back, either side can lose up to 2x.
* CholeskyQR's Cholesky is recursive (halve, TRSM, Hermitian update,
  Ahmed & Pingali 2000; Gustavson 1997), which has no block size to tune:
  the impls declare no parameters.  On native dtypes it is private here,
  independent of the blocked Cholesky impl; the emulated qr/cholqr2-blocked
  uses ``cholesky/recursive``'s kernels, which carry the rounding.
* qr/blocked and qr/cholqr2-blocked also take emulated float16/bfloat16 (NumPy input; the
  shared mechanism of :mod:`factorbench.impls.textbook._emulate`): qr/blocked
  runs on a Fortran-ordered float32 copy through the same Householder kernels
  with ``rnd`` rounding to the format after every operation (the column
  loop as the textbook ``qr/householder`` does, each T block, each xLARFB
  and xORGQR block product once per entry; the list is in the
  :mod:`~factorbench.impls.blocked._householder` module notes), and returns
  Q and R in the storage dtype.  qr/cholqr2-blocked rounds each Gram
  matrix, each Cholesky step and block (``cholesky/recursive``'s emulated
  kernels), each TRSM and ``R2 R1`` once per entry (its docstring).  The
  native paths are the unchanged code.  TSQR and shifted CholeskyQR3 stay
  native.

References
----------
R. Schreiber and C. Van Loan, A storage-efficient WY representation for
products of Householder transformations, SIAM J. Sci. Stat. Comput. 10, 1989.
E. Elmroth and F. G. Gustavson, Applying recursion to serial and parallel QR
factorization leads to better performance, IBM J. Res. Dev. 44(4), 2000.
J. Demmel, L. Grigori, M. Hoemmen and J. Langou, Communication-optimal
parallel and sequential QR and LU factorizations, SIAM J. Sci. Comput. 34(1), 2012.
D. Mori, Y. Yamamoto and S.-L. Zhang, Backward error analysis of the
AllReduce algorithm for Householder QR decomposition, JJIAM 29, 2012.
T. Fukaya, Y. Nakatsukasa, Y. Yanagisawa and Y. Yamamoto, CholeskyQR2: a
simple and communication-avoiding algorithm for computing a tall-skinny QR
factorization on a large-scale parallel system, ScalA'14, 2014.
Y. Yamamoto, Y. Nakatsukasa, Y. Yanagisawa and T. Fukaya, Roundoff error
analysis of the CholeskyQR2 algorithm, ETNA 44, 2015.
T. Fukaya, R. Kannan, Y. Nakatsukasa, Y. Yamamoto and Y. Yanagisawa,
Shifted Cholesky QR for computing the QR factorization of ill-conditioned
matrices, SIAM J. Sci. Comput. 42(1), 2020.
"""

from __future__ import annotations

import numpy as np

from factorbench.impls import NATIVE_COMPLEX, NATIVE_REAL, register
from factorbench.impls.blocked import _householder as hh
from factorbench.impls.blocked._xp import check_block, is_numpy, namespace, trsm, work_copy
from factorbench.impls.results import QR
from factorbench.impls.textbook._emulate import EMULATED, arithmetic, identity

__all__ = ["qr_blocked", "qr_tsqr", "qr_cholqr2_blocked", "qr_scholqr3"]

_COMMON = {"backend": "numpy", "family": "blocked", "dtypes": NATIVE_REAL + NATIVE_COMPLEX,
           "layout": "F"}

#: Panel width of the Householder QRs inside TSQR (leaves and tree nodes).
_TSQR_BLOCK = 128

#: Below this order the private Cholesky runs its column loop.
_CHOL_LEAF = 32


# --------------------------------------------------------------------- input


def _working(A, who):
    """(xp, W): A's namespace and the array to factor in place: A itself when it
    is a writeable Fortran-ordered NumPy array (LAPACK-style, what the harness
    hands a ``layout="F"`` impl), a copy otherwise (other namespaces included)."""
    xp = namespace(A)
    if A.ndim != 2:
        raise ValueError(f"{who} needs a 2-D matrix, got shape {tuple(A.shape)}")
    if A.dtype not in (xp.float32, xp.float64, xp.complex64, xp.complex128):
        raise TypeError(f"{who} computes in float32/float64/complex64/complex128, not {A.dtype}")
    m, n = A.shape
    if m < n:
        raise ValueError(f"{who} needs m >= n, got shape {tuple(A.shape)}")
    if is_numpy(xp) and A.flags.f_contiguous and A.flags.writeable:
        return xp, A
    return xp, work_copy(xp, A)


def _householder_qr(xp, W, block, rnd=identity):
    """Thin (Q, R) of W (m >= n) by :func:`_householder.geqrf` + ``orgqr``, overwriting W;
    ``rnd`` rounds to an emulated format (NumPy float32 W only)."""
    n = W.shape[1]
    W, Ts = hh.geqrf(xp, W, block, rnd=rnd)
    return hh.orgqr(xp, W, Ts, rnd), xp.triu(W[:n, :n])


def _emulated(A):
    """The :class:`~factorbench.impls.textbook._emulate.Arithmetic` of A when it is a
    NumPy array in an emulated format's storage dtype, else None."""
    if not isinstance(A, np.ndarray):
        return None
    ar = arithmetic(A.dtype)
    return ar if ar.emulated else None


# ----------------------------------------------------------------- qr/blocked


@register("qr", "blocked", parameters={"block": [64, 128, 256]},
          **{**_COMMON, "dtypes": _COMMON["dtypes"] + EMULATED})
def qr_blocked(A, *, block=128):
    """Blocked Householder QR (compact WY) with the thin Q by backward accumulation.

    Parameters
    ----------
    A : array (m, n), m >= n
        float32, float64, complex64 or complex128, of any array API
        namespace; overwritten when it is not a C-ordered or read-only
        NumPy array (see the module notes).  Or a NumPy float16 / bfloat16
        array (emulated, never overwritten: float32 arithmetic rounded to
        the format after every operation, see the module notes; Q and R in
        the storage dtype).
    block : int
        Panel width nb.  The default 128 is within 20% of the best swept
        value at every shape measured below.

    Returns
    -------
    QR
        Thin ``Q`` (m, n) and upper triangular ``R`` (n, n) in A's dtype,
        ``A = Q @ R``; R as xGEQRF returns it (real diagonal, LAPACK's signs).

    Notes
    -----
    Schreiber & Van Loan 1989; LAPACK xGEQRF + xLARFB for the factorization,
    xORGQR / xUNGQR for Q.  Each panel of ``block`` columns is factored
    recursively together with its triangular factor T (Elmroth & Gustavson
    2000, xGEQRT3), and the trailing columns are updated as
    ``C -= V (T^H (V^H C))`` by ``matmul``; Q = H_1 ... H_n [I; 0] is then
    accumulated panel by panel from the last.  Backward stable with
    ||I - Q^H Q|| = O(m u) whatever kappa(A) (Higham 2002, §19.3).

    Measured on the reference machine (2 cores, OpenBLAS, float64; time of
    qr/lapack over time of this impl, the two alternated in one process with
    0.1 s idle gaps, minimum of 2-7 rounds each), block 64 / 128 / 256:

    ============  ====  ====  ====
    m x n          64   128   256
    ============  ====  ====  ====
    1024 x 1024   0.79  0.76  0.73
    2048 x 1024   0.88  0.94  0.93
    2048 x 2048   0.92  0.91  1.09
    4096 x 2048   0.99  1.30  1.53
    4096 x 4096   1.04  1.24  1.45
    8192 x 4096    --   1.14  1.30  (0.5 s gaps)
    20000 x 256   1.06  1.16  0.70  (0.5 s gaps; one panel at 256)
    ============  ====  ====  ====

    Time by phase at 4096 x 4096, block 256: panels 7%, their T 3%,
    trailing updates 42%, Q 49%; at 2048 x 1024: 26%, 10%, 28%, 37%.
    Above n ~ 2000 it overtakes LAPACK because reference xGEQRF/xORGQR
    (which OpenBLAS ships as they are) take nb = 32 from ILAENV and factor
    each panel with the BLAS-2 xGEQR2, so their GEMMs have inner dimension
    32; below it the Python-level work per column (about 20 us) shows.
    """
    block = check_block("block", block)
    ar = _emulated(A)
    if ar is not None:
        W = ar.load(A, order="F")
        _, W = _working(W, "qr/blocked")
        Q, R = _householder_qr(np, W, block, ar.rnd)
        return QR(ar.out(Q), ar.out(R))
    xp, W = _working(A, "qr/blocked")
    return QR(*_householder_qr(xp, W, block))


# -------------------------------------------------------------------- qr/tsqr


@register("qr", "tsqr", parameters={"blocks": [4, 8, 16]}, **_COMMON)
def qr_tsqr(A, *, blocks=8):
    """TSQR: Householder QR of row blocks, then a binary tree on the stacked R factors.

    Parameters
    ----------
    A : array (m, n), m >= n
        As for :func:`qr_blocked`: overwritten unless C-ordered or read-only NumPy.
    blocks : int
        Number of row blocks p (leaves of the tree).  Each block needs at
        least n rows for its thin QR, so ``min(blocks, m // n)`` blocks are
        used; when that is 1 (m < 2 n) TSQR is plain blocked Householder QR.

    Returns
    -------
    QR
        Thin ``Q`` (m, n) and upper triangular ``R`` (n, n) in A's dtype,
        ``A = Q @ R``.  diag(R) is real but its signs need not be xGEQRF's.

    Notes
    -----
    Demmel, Grigori, Hoemmen & Langou 2012, §3 (the sequential binary tree).
    The rows are split into p nearly equal blocks; each gets a thin QR
    ``A_i = Q_i R_i`` (blocked Householder, panel width 128); adjacent R
    factors are stacked in pairs and factored again, level by level, up to
    one R.  Q is then formed explicitly top-down: each tree node hands its
    children the coefficient blocks ``Q_node[:n] C`` and ``Q_node[n:] C``
    (C = I at the root), and leaf i's rows of Q are ``Q_i C_i``.  Every
    step is a Householder QR or a product with orthonormal factors, so
    TSQR is backward stable with ||I - Q^H Q|| = O(u) like Householder QR
    (Mori, Yamamoto & Zhang 2012).  The stacked pairs are factored as dense
    (2n, n) matrices, not with the triangle-pentagon kernel xTPQRT: that
    doubles the tree's O(n^3) flops, small against the leaves' O(m n^2)
    when m >> n, which is where TSQR is meant to run.

    Run sequentially TSQR does about 2 m n^2 more flops than Householder QR
    (the leaves' Q times their coefficient blocks); its gain is parallelism
    over the row blocks, which this NumPy version does not exploit beyond
    BLAS threads.  Measured (reference machine, float64, as for
    :func:`qr_blocked`): time of qr/lapack over this impl's, blocks 4 / 8 /
    16: 1.13 / 0.98 / 0.74 at 100000 x 64, 0.65 / 0.43 / 0.29 at 20000 x 256.
    """
    blocks = check_block("blocks", blocks)
    xp, W = _working(A, "qr/tsqr")
    m, n = W.shape
    p = max(1, min(blocks, m // n)) if n else 1
    if p == 1:
        return QR(*_householder_qr(xp, W, _TSQR_BLOCK))
    bounds = [i * m // p for i in range(p + 1)]
    leaves = []
    for i in range(p):
        leaves.append(_householder_qr(xp, W[bounds[i]:bounds[i + 1], :], _TSQR_BLOCK))
    # Up the tree: levels[l] lists, per node, its (2n, n) Q factor, or None
    # where an odd R passes through to the next level unchanged.
    Rs = [R for _, R in leaves]
    levels = []
    while len(Rs) > 1:
        level, up = [], []
        for i in range(0, len(Rs) - 1, 2):
            S = hh.zeros(xp, (2 * n, n), W)
            S[:n, :] = Rs[i]
            S[n:, :] = Rs[i + 1]
            Qs, R = _householder_qr(xp, S, _TSQR_BLOCK)
            level.append(Qs)
            up.append(R)
        if len(Rs) % 2:
            level.append(None)
            up.append(Rs[-1])
        levels.append(level)
        Rs = up
    # Down the tree: Cs[i] is the (n, n) block that node i of the current
    # level contributes to Q (None: the identity, not worth a product).
    Cs = [None]
    for level in reversed(levels):
        down = []
        for Qs, C in zip(level, Cs, strict=True):
            if Qs is None:
                down.append(C)
                continue
            top, bottom = Qs[:n, :], Qs[n:, :]
            down += [top, bottom] if C is None else [top @ C, bottom @ C]
        Cs = down
    Q = hh.zeros(xp, (m, n), W)
    for i, ((Qi, _), C) in enumerate(zip(leaves, Cs, strict=True)):
        Q[bounds[i]:bounds[i + 1], :] = Qi if C is None else hh.mm(xp, Qi, C)
    return QR(Q, Rs[0])


# --------------------------------------------------------------- CholeskyQR


def _cholesky(xp, G):
    """Lower L with ``G = L L^H`` (recursive), reading G's lower triangle only.

    Raises ``numpy.linalg.LinAlgError`` naming the first pivot (0-based) that
    is not positive (NaN included).  The pivots are checked once, after the
    factorization: a GPU backend then waits for the device once per call,
    not once per column.  A bad pivot is replaced by 1 so that the rest of
    the factorization stays finite until the check.
    """
    pivots = []
    L = _chol_rec(xp, G, pivots)
    if pivots:
        piv = xp.stack(pivots)
        bad = ~(piv > 0)
        if bool(xp.any(bad)):
            k = int(xp.argmax(xp.astype(bad, xp.int8)))
            raise np.linalg.LinAlgError(
                f"Gram matrix is not numerically positive definite: pivot k = {k} "
                f"is {float(piv[k])} (0-based); kappa(A) is beyond this method's range"
            )
    return L


def _chol_rec(xp, G, pivots):
    """Ahmed & Pingali 2000; Gustavson 1997: L11 = chol(G11),
    L21 = G21 L11^{-H} (TRSM), L22 = chol(G22 - L21 L21^H)."""
    n = G.shape[0]
    if n <= _CHOL_LEAF:
        return _chol_leaf(xp, G, pivots)
    h = n // 2
    L11 = _chol_rec(xp, G[:h, :h], pivots)
    L21 = trsm(xp, L11, G[h:, :h], lower=True, side="right", conj_trans=True)
    L22 = _chol_rec(xp, G[h:, h:] - L21 @ hh.ct(xp, L21), pivots)
    L = hh.zeros(xp, (n, n), G)
    L[:h, :h] = L11
    L[h:, :h] = L21
    L[h:, h:] = L22
    return L


def _chol_leaf(xp, G, pivots):
    """Left-looking (gaxpy) Cholesky of a small block, one column per step
    (GVL 2013, Alg. 4.2.1; LAPACK xPOTF2).  The diagonal is formed in real
    arithmetic: only Re(g_jj) is read, and |l|^2 has no imaginary part."""
    n = G.shape[0]
    L = hh.zeros(xp, (n, n), G)
    cplx = hh.is_complex(xp, G)
    for j in range(n):
        lj = L[j:j + 1, :j]
        gjj = xp.real(G[j, j]) if cplx else G[j, j]
        d = gjj - xp.sum(xp.abs(lj) ** 2) if j else gjj
        pivots.append(d)
        ljj = xp.sqrt(xp.where(d > 0, d, xp.ones_like(d)))
        L[j, j] = ljj
        if j + 1 < n:
            L[j + 1:, j:j + 1] = (G[j + 1:, j:j + 1] - L[j + 1:, :j] @ hh.ct(xp, lj)) / ljj
    return L


def _gram(xp, W):
    """``W^H W`` (n, n), of which only the lower triangle is read.

    On NumPy by SciPy's xSYRK / xHERK (lower triangle only): the same BLAS,
    and the same thread pool, as the xTRSM of ``_xp.trsm`` that follows.
    NumPy's ``matmul`` runs in NumPy's own OpenBLAS, whose idle threads spin
    for a while after each call and then compete with SciPy's for the cores:
    measured on the reference machine, CholeskyQR2 of 100000 x 64 took a
    median 0.075 s with the Gram matrix from ``matmul`` and 0.047 s with it
    from xSYRK (20000 x 256: 0.19-0.26 s against 0.15 s).
    """
    if is_numpy(xp):
        from scipy.linalg import blas

        if hh.is_complex(xp, W):
            herk = blas.cherk if W.dtype == np.complex64 else blas.zherk
            return herk(1.0, W, trans=2, lower=1)
        syrk = blas.ssyrk if W.dtype == np.float32 else blas.dsyrk
        return syrk(1.0, W, trans=1, lower=1)
    return hh.ct(xp, W) @ W


def _cholqr(xp, W, G=None):
    """One CholeskyQR pass, overwriting W with Q = W R^{-1}: returns (Q, R)."""
    G = _gram(xp, W) if G is None else G
    R = hh.ct(xp, _cholesky(xp, G))
    return trsm(xp, R, W, lower=False, side="right"), R


def _cholqr2(xp, W):
    Q1, R1 = _cholqr(xp, W)
    Q, R2 = _cholqr(xp, Q1)
    # A product of upper triangles is upper triangular; triu only discards
    # the exact zeros that matmul summed below the diagonal.
    return Q, R2, R1


def _cholqr_emulated(W, rnd):
    """One emulated CholeskyQR pass on the float32 Fortran-ordered W (values of the
    format), overwriting W with Q: returns (Q, R), both holding format values.

    Rounded once per entry: the Gram matrix (xSYRK, accumulated in float32);
    the Cholesky factor as ``cholesky/recursive``'s emulated kernels round it
    (:func:`~factorbench.impls.blocked.cholesky.potrf_recursive` with leaf
    :data:`_CHOL_LEAF`: each square root, quotient and rank-1 update entry of
    a leaf, each TRSM and SYRK/GEMM block); the TRSM ``Q = W R^{-1}``.
    """
    from factorbench.impls.blocked.cholesky import potrf_recursive

    n = W.shape[1]
    G = np.asfortranarray(rnd(_gram(np, W)))
    potrf_recursive(np, G, 0, n, _CHOL_LEAF, rnd=rnd)
    R = np.triu(G.T)  # R = L^T; G's strictly upper triangle is scratch
    return rnd(trsm(np, R, W, lower=False, side="right")), R


@register("qr", "cholqr2-blocked", **{**_COMMON, "dtypes": _COMMON["dtypes"] + EMULATED})
def qr_cholqr2_blocked(A):
    """CholeskyQR2 with BLAS-3 kernels: Gram by xSYRK/xHERK, recursive Cholesky, TRSM.

    Parameters
    ----------
    A : array (m, n), m >= n
        As for :func:`qr_blocked`: overwritten (with Q) unless C-ordered or read-only NumPy.
        Or a NumPy float16 / bfloat16 array (emulated, never overwritten): a
        Fortran-ordered float32 copy, and per pass the Gram matrix (xSYRK,
        float32 accumulation) rounded once per entry, its Cholesky factor
        rounded as ``cholesky/recursive``'s emulated kernels round it (each
        square root, quotient and rank-1 update entry of a leaf of
        :data:`_CHOL_LEAF` columns, each TRSM and SYRK block once per entry),
        the TRSM ``Q = A R^{-1}`` once per entry; then ``R2 R1`` (float32)
        once per entry.  Q and R come back in the storage dtype.

    Returns
    -------
    QR
        Thin ``Q`` (m, n) and upper triangular ``R`` (n, n) in A's dtype,
        ``A = Q @ R``, diag(R) > 0.

    Raises
    ------
    numpy.linalg.LinAlgError
        A Gram matrix is not numerically positive definite: kappa(A) beyond
        about u^(-1/2) (1e8 in float64, 4e3 in float32, 45 in float16, 16 in
        bfloat16).

    Notes
    -----
    Fukaya, Nakatsukasa, Yanagisawa & Yamamoto 2014, Alg. 2; Yamamoto et al.
    2015 (ETNA 44) for the analysis.  No LAPACK driver: xSYRK/xHERK + xPOTRF +
    xTRSM, twice, and ``R = R2 R1``.  The first pass leaves Q1 with
    kappa(Q1) = O(1) when kappa(A) < ~u^(-1/2); the second then gives
    orthogonality and residual O(u).  Past that range the first Cholesky
    breaks down (raised) or Q1 is too ill-conditioned for the second pass
    and orthogonality is lost, which the harness records.  About
    4 m n^2 + 2 n^3 / 3 flops, almost all in SYRK and TRSM.  Measured
    (reference machine, float64, as for :func:`qr_blocked`): 3.0x the speed
    of qr/lapack at 100000 x 64, 0.88x at 20000 x 256.
    """
    ar = _emulated(A)
    if ar is not None:
        _, W = _working(ar.load(A, order="F"), "qr/cholqr2-blocked")
        Q1, R1 = _cholqr_emulated(W, ar.rnd)
        Q, R2 = _cholqr_emulated(Q1, ar.rnd)
        return QR(ar.out(Q), ar.out(np.triu(ar.rnd(R2 @ R1))))
    xp, W = _working(A, "qr/cholqr2-blocked")
    Q, R2, R1 = _cholqr2(xp, W)
    return QR(Q, xp.triu(R2 @ R1))


@register("qr", "scholqr3", **_COMMON)
def qr_scholqr3(A):
    """Shifted CholeskyQR3: one shifted CholeskyQR pass, then CholeskyQR2.

    Parameters
    ----------
    A : array (m, n), m >= n
        As for :func:`qr_blocked`: overwritten (with Q) unless C-ordered or read-only NumPy.

    Returns
    -------
    QR
        Thin ``Q`` (m, n) and upper triangular ``R`` (n, n) in A's dtype,
        ``A = Q @ R``, diag(R) > 0.

    Raises
    ------
    numpy.linalg.LinAlgError
        A Cholesky factorization breaks down: kappa(A) beyond about
        1 / (u sqrt(11 (m n + n (n + 1)))), or a numerically singular A.

    Notes
    -----
    Fukaya, Kannan, Nakatsukasa, Yamamoto & Yanagisawa 2020, Alg. 4.1.  The
    first pass factors ``A^H A + s I`` with the shift
    ``s = 11 (m n + n (n + 1)) u ||A||^2``, which keeps that Cholesky from
    breaking down and leaves ``Q1 = A R1^{-1}`` with
    kappa(Q1) ~ sqrt(1 + s / sigma_min(A)^2) ~ sqrt(s) / sigma_min(A), small
    enough for CholeskyQR2 to finish it; ``R = R3 R2 R1``.  ||A||_2^2 is
    replaced by its upper bound ||A||_F^2 = trace(A^H A), which costs nothing
    once the Gram matrix is formed; it enlarges the shift by at most a
    factor n, so kappa(Q1) by at most sqrt(n) and the usable kappa range
    shrinks by up to sqrt(n) against the paper's ||A||_2 form.  Orthogonality and
    residual O(u) for kappa(A) up to about the bound above (3e13 at
    m = 100, n = 50 in float64).  The shift assumes
    11 (m n + n (n + 1)) u < 1: in float32 that caps the size near
    m = n = 870; beyond it the first pass only scales A and the method is
    CholeskyQR2 with a detour.  Three passes: measured 2.0x the speed of
    qr/lapack at 100000 x 64 and 0.58x at 20000 x 256 (float64).
    """
    xp, W = _working(A, "qr/scholqr3")
    m, n = W.shape
    G = _gram(xp, W)
    if n:
        u = float(xp.finfo(W.dtype).eps) / 2
        trace = xp.sum(xp.real(xp.linalg.diagonal(G)) if hh.is_complex(xp, G)
                       else xp.linalg.diagonal(G))
        s = (11 * (m * n + n * (n + 1)) * u) * trace
        G = G + s * xp.eye(n, dtype=G.dtype, device=hh.device(G))
    Q1, R1 = _cholqr(xp, W, G)
    Q, R3, R2 = _cholqr2(xp, Q1)
    return QR(Q, xp.triu(R3 @ xp.triu(R2 @ R1)))
