"""Randomized QR: sketch-preconditioned Cholesky QR, and QR with randomized column pivoting.

Both are written once against the array namespace of their input: the array
API standard (``matmul``, slices, ``triu``, ``linalg.qr``,
``linalg.vector_norm``) plus ``_xp.trsm``, the Householder kernels of
:mod:`~factorbench.impls.blocked._householder` and the CholeskyQR pieces of
:mod:`~factorbench.impls.blocked.qr`, so the same functions run on NumPy, on
CuPy and on array-api-strict.  Registered with backend "numpy", family
"randomized", native real and complex dtypes:

==================  ======  =============================  =====================================
id                  stable  parameters                     method
==================  ======  =============================  =====================================
qr/rand-cholqr      yes*    sketch sparse|gaussian|srht,   QR of S A preconditions CholeskyQR2,
                            gamma 2                       kappa(A) up to ~1/u
qrcp/randomized     yes     block 32, 64; p 8              HQRRP: pivots from a Gaussian sketch,
                                                           blocked Householder QR
==================  ======  =============================  =====================================

\\* Within the stated kappa range; beyond it the Cholesky factorization breaks
down and the impl raises ``numpy.linalg.LinAlgError``, as ``qr/cholqr2-blocked``.

Choices where the literature leaves options, and why:

* qr/rand-cholqr factors the sketch with Householder QR (``xp.linalg.qr``)
  and preconditions by a triangular solve, ``A_1 = A R_s^{-1}``, then runs
  CholeskyQR2 on A_1 (Gram matrix by xSYRK, recursive Cholesky, xTRSM, twice:
  the kernels of ``qr/cholqr2-blocked``), ``R = R_2 R_1 R_s``: the
  randomized Householder-Cholesky QR of Fan, Guo & Lin (2021) and Higgins,
  Szyld, Boman & Yamazaki (2024) with a second Cholesky pass.  One pass
  (their method, and Balabanov 2022's RCholeskyQR) already has
  ||I - Q^H Q|| = O(u kappa(A_1)^2) with kappa(A_1) ~ 6: measured
  orthogonality ratios 0.005-0.03 at kappa(A) = 1e12 (2000 x 100,
  20000 x 200); the second pass brings them to 0.0007-0.008 for 2 m n^2
  more flops.  It is kept because it makes the result independent of the
  embedding's quality: CholeskyQR2 is O(u) for any kappa(A_1) < ~u^(-1/2)
  (Yamamoto et al. 2015), so a sketch that embeds range(A) badly (an
  unlucky draw, a small factor, float32 where u kappa(A_1)^2 is not small)
  still gives an orthonormal Q, where one pass would give u kappa(A_1)^2.
  Sketch dimension d = gamma * n (clipped to m), default 2: a d x n
  Gaussian sketch has singular values in [1 - sqrt(n/d), 1 + sqrt(n/d)]
  w.h.p., so kappa(A_1) <~ (1 + 0.71)/(1 - 0.71) ~ 6 at gamma 2 (5.4-6.0
  measured for sparse and Gaussian sketches); a larger d only makes the
  sketch and its QR dearer.
  Measured (reference machine, float64, 20000 x 200, min of 3, other jobs
  running): 172 ms with the sparse sketch, 178 ms srht, 279 ms Gaussian,
  against qr/lapack 90 ms and qr/cholqr2-blocked 94 ms: the price of the
  range up to 1/u is the sketch (35 ms sparse) and one more TRSM with A.
* qrcp/randomized is HQRRP (Martinsson, Quintana-Orti, Heavner & van de Geijn
  2017; Duersch & Gu 2017): pivots are chosen ``block`` at a time by
  Businger-Golub column pivoting on a d x n' Gaussian sketch of the trailing
  matrix, d = block + p (clipped to m), those columns are brought to the
  front by column interchanges and factored by the recursive Householder
  panel (xGEQRT3), and the trailing matrix is updated by the block
  reflector (xLARFB), exactly as in blocked Householder QR.  So the
  factorization itself is backward stable with Householder's orthogonality
  whatever the pivots, and only the pivot choice is randomized.
* The sketch of the trailing matrix is *updated*, not redrawn: with
  ``Y = S A P = [Y_1 Y_2]`` and ``A P = Q [[R_11, R_12], [0, A_22]]``,
  ``Y_2 - Y_1 R_11^{-1} R_12 = (S Q)_2 A_22`` is a sketch of A_22 by the
  Gaussian ``S Q`` (the downdating of Martinsson et al. 2017 and Duersch &
  Gu 2017): O(d b n') flops per block, O(d n^2) in all.  Re-sketching the
  trailing matrix would cost 2 d (m - j)(n - j) per block, about
  (d / b)(m n^2 - n^3/3) in all, a third or more on top of the QR's
  2 m n^2 - 2 n^3/3 + (Q) 2 m n^2 - 2 n^3/3.  The update divides by R_11:
  once the pivots have passed the numerical rank, R_11 is ill-conditioned
  and the updated sketch is inaccurate, but then every trailing column is
  at the rounding level already and their order no longer changes what
  ``|R_ii|`` reveals.  Where the division overflows (an exactly singular
  R_11, e.g. a zero matrix) the trailing matrix is re-sketched with a fresh
  Gaussian drawn from the same generator.
* The pivots of the small sketch come from a column loop in the standard
  (largest remaining norm, downdated as in LAPACK xLAQP2 with its
  recomputation safeguard, the pivot direction orthogonalized twice) on
  every backend, not from xGEQP3 on NumPy: a SciPy call between the QR's
  NumPy ``matmul`` calls made the two OpenBLAS thread pools fight for the
  cores and cost 10 ms a block (:func:`sketch_pivots`).  For the same
  reason the sketch update solves with R_11 by ``xp.linalg.solve`` rather
  than SciPy's xTRSM.  d is at most block + p, so either is O(d b n') per
  block.  Ties go to the first index, as xGEQP3's IxAMAX.
  Measured (reference machine, float64, square, min of 3): n = 1000:
  136 ms (block 64), 150 ms (block 32), against qrcp/lapack (xGEQP3)
  79 ms and qr/blocked 89 ms; n = 2000: 601 / 658 ms against 488 ms and
  456 ms.  The QR itself runs at qr/blocked's speed; the rest is the
  pivot loop, about 45 us of NumPy calls per column.  On two cores xGEQP3's
  BLAS-2 half is not yet the bottleneck that HQRRP removes.
* ``perm`` is a host NumPy intp array (as the LU impls return their pivots);
  Q (m, k) and R (k, n), k = min(m, n), are in A's namespace and dtype, R
  with a real diagonal (xLARFG's convention).  A is never modified.

References
----------
Y. Fan, Y. Guo and T. Lin, A novel randomized XR-based preconditioned
CholeskyQR algorithm, arXiv preprint, 2021.
O. Balabanov, Randomized Cholesky QR factorizations, arXiv preprint, 2022.
A. J. Higgins, D. B. Szyld, E. G. Boman and I. Yamazaki, Analysis of
randomized Householder-Cholesky QR factorization with multisketching,
arXiv preprint, 2024.
Y. Yamamoto, Y. Nakatsukasa, Y. Yanagisawa and T. Fukaya, Roundoff error
analysis of the CholeskyQR2 algorithm, ETNA 44, 2015.
L. Giraud, J. Langou and M. Rozloznik, The loss of orthogonality in the
Gram-Schmidt orthogonalization process, Comput. Math. Appl. 50, 2005.
M. Gu and S. C. Eisenstat, Efficient algorithms for computing a strong
rank-revealing QR factorization, SIAM J. Sci. Comput. 17(4), 1996.
T. Fukaya, Y. Nakatsukasa, Y. Yanagisawa and Y. Yamamoto, CholeskyQR2: a
simple and communication-avoiding algorithm for computing a tall-skinny QR
factorization on a large-scale parallel system, ScalA'14, 2014.
P.-G. Martinsson, G. Quintana-Orti, N. Heavner and R. van de Geijn,
Householder QR factorization with randomization for column pivoting (HQRRP),
SIAM J. Sci. Comput. 39(2), 2017.
J. A. Duersch and M. Gu, Randomized QR with column pivoting, SIAM J. Sci.
Comput. 39(4), 2017.
J. Xiao, M. Gu and J. Langou, Fast parallel randomized QR with column
pivoting algorithms for reliable low-rank matrix approximations, HiPC 2017.
P. Businger and G. H. Golub, Linear least squares solutions by Householder
transformations, Numer. Math. 7, 1965.
G. Quintana-Orti, X. Sun and C. H. Bischof, A BLAS-3 version of the QR
factorization with column pivoting, SIAM J. Sci. Comput. 19(5), 1998.
W. Kahan, Numerical linear algebra, Canad. Math. Bull. 9, 1966.
"""

from __future__ import annotations

import numpy as np

from factorbench.accuracy.matrices import normalize_rng
from factorbench.impls import NATIVE_COMPLEX, NATIVE_REAL, register
from factorbench.impls.blocked import _householder as hh
from factorbench.impls.blocked._xp import to_int, trsm, work_copy
from factorbench.impls.blocked.qr import _cholqr2
from factorbench.impls.randomized._sketch import (
    SKETCHES,
    check_count,
    check_matrix,
    ct,
    device,
    is_complex,
    namespace,
    sketch,
)
from factorbench.impls.results import QR, QRCP

__all__ = ["qr_rand_cholqr", "qrcp_randomized", "sketch_pivots"]

_COMMON = {"backend": "numpy", "family": "randomized", "dtypes": NATIVE_REAL + NATIVE_COMPLEX}


# ------------------------------------------------------------ qr/rand-cholqr


@register("qr", "rand-cholqr", parameters={"sketch": ["sparse", "gaussian", "srht"],
                                           "gamma": [2]}, layout="C", **_COMMON)
def qr_rand_cholqr(A, *, sketch="sparse", gamma=2, rng=None):
    """Randomized (sketch-preconditioned) CholeskyQR2: R_s from QR of S A, then CholeskyQR2.

    Parameters
    ----------
    A : array (m, n), m >= n
        float32, float64, complex64 or complex128, of any array API namespace.
        Not modified.
    sketch : {"sparse", "gaussian", "srht"}
        The sketching operator (:mod:`._sketch`).
    gamma : int >= 1
        Sketch rows d = gamma * n, clipped to m.
    rng : None, int, SeedSequence or numpy.random.Generator
        Normalised once; a seed gives bit-identical results.

    Returns
    -------
    QR
        Thin ``Q`` (m, n) and upper triangular ``R`` (n, n) in A's dtype,
        ``A = Q @ R``.  ``extras["d"]``: the sketch dimension.

    Raises
    ------
    numpy.linalg.LinAlgError
        A Gram matrix is not numerically positive definite: kappa(A) beyond
        about 1/u, or A numerically rank deficient (R_s singular).

    Notes
    -----
    Fan, Guo & Lin 2021; Balabanov 2022; Higgins, Szyld, Boman & Yamazaki
    2024.  No LAPACK driver (compare xGEQRF + xORGQR).

    1. ``S A = Q_s R_s`` by Householder QR (d x n); Q_s is not used.
    2. ``A_1 = A R_s^{-1}`` (xTRSM): with S an eps-subspace embedding for
       range(A), ``sigma_i(A_1) in [1/(1 + eps), 1/(1 - eps)]``, so
       kappa(A_1) = O(1) whatever kappa(A) in exact arithmetic, and
       ``O(1) + O(u kappa(A))`` in floating point.
    3. CholeskyQR2 on A_1: ``A_1 = Q R_2 R_1`` with orthogonality and
       residual O(u) (Yamamoto et al. 2015) since kappa(A_1) << u^(-1/2).
    4. ``R = R_2 R_1 R_s``.

    The residual ``A - Q R`` stays O(u ||A||) because each row of the
    computed A_1 solves its triangular system backward stably
    (``(R_s + dR) a_1 = a``, |dR| <= c u |R_s|), so the preconditioning error
    is ``u ||A_1|| ||R_s|| ~ u ||A||``.  Stable until kappa(A) u approaches 1,
    where A_1's rounding errors reach its smallest singular value; plain
    CholeskyQR2 stops at u^(-1/2).  Cost: the sketch, 2 d n^2 for its QR,
    m n^2 for the TRSM and 2 x (m n^2 SYRK + m n^2 TRSM): about 5 m n^2 flops,
    all BLAS-3, against 4 m n^2 - 4 n^3/3 for Householder QR with Q.
    """
    who = "qr/rand-cholqr"
    xp = namespace(A)
    check_matrix(xp, A, who)
    m, n = A.shape
    if m < n:
        raise ValueError(f"{who} needs m >= n, got shape {tuple(A.shape)}")
    if sketch not in SKETCHES:
        raise ValueError(f"sketch must be one of {', '.join(SKETCHES)}; got {sketch!r}")
    d = min(check_count("gamma", gamma) * n, m)
    rng = normalize_rng(rng)
    if n == 0:
        return QR(hh.zeros(xp, (m, 0), A), hh.zeros(xp, (0, 0), A), extras={"d": 0})
    S = _sketch_op(sketch, d, m, rng, A)
    _, Rs = xp.linalg.qr(S.left(A))
    Rs = work_copy(xp, Rs)
    W = trsm(xp, Rs, work_copy(xp, A), lower=False, side="right")
    Q, R2, R1 = _cholqr2(xp, W)
    return QR(Q, xp.triu(R2 @ xp.triu(R1 @ Rs)), extras={"d": d})


def _sketch_op(kind, d, m, rng, like):
    # the module-level name ``sketch`` is shadowed by the impls' parameter
    return sketch(kind, d, m, rng, like)


# ------------------------------------------------------------ qrcp/randomized


@register("qrcp", "randomized", parameters={"block": [32, 64], "p": [8]}, layout="F", **_COMMON)
def qrcp_randomized(A, *, block=32, p=8, rng=None):
    """QR with randomized column pivoting (HQRRP): pivots from a sketch, Householder QR.

    Parameters
    ----------
    A : array (m, n)
        float32, float64, complex64 or complex128, of any array API namespace.
        Not modified.
    block : int >= 1
        Columns pivoted and factored per step (b).
    p : int >= 0
        Oversampling: the sketch has d = b + p rows (clipped to m).
    rng : None, int, SeedSequence or numpy.random.Generator
        Normalised once; a seed gives bit-identical results.

    Returns
    -------
    QRCP
        ``Q`` (m, k) with orthonormal columns, ``R`` (k, n) upper triangular
        with a real diagonal, both in A's dtype, and ``perm`` (n,) host intp,
        ``A[:, perm] = Q @ R``, k = min(m, n).  ``extras``: ``d`` (sketch
        rows) and ``resketches`` (trailing sketches redrawn because the update
        overflowed).

    Notes
    -----
    Martinsson, Quintana-Orti, Heavner & van de Geijn 2017 (HQRRP);
    Duersch & Gu 2017 (RQRCP); no LAPACK driver (compare xGEQP3).  For each
    block of b columns starting at j:

    1. Businger-Golub pivoting on the d x (n - j) sketch Y of the trailing
       matrix chooses b columns (:func:`sketch_pivots`);
    2. they are interchanged to positions j .. j + b - 1 (in A's working
       copy, in Y and in perm);
    3. the panel is factored by recursive Householder QR (xGEQRT3) and the
       trailing columns updated by its block reflector (xLARFB);
    4. the trailing sketch is updated, ``Y_2 - (Y_1 R_11^{-1}) R_12``.

    Q is then accumulated from the block reflectors (xORGQR).  Greedy
    pivoting on the sketch reveals rank like greedy pivoting on A itself
    (Duersch & Gu 2017: the Gaussian sketch keeps the trailing column norms,
    and the residual norms after projecting out the chosen columns, within
    a modest factor w.h.p.), so on a numerically rank-deficient A the
    diagonal of R drops to the rounding level at the numerical rank, as with
    xGEQP3 (tested on rank 40 of 96).  Greedy pivoting has no guarantee,
    on A or on a sketch; Kahan's matrix (Kahan 1966) is the classical case
    where xGEQP3 leaves R_nn far above sigma_min.  The repository's Kahan
    matrix breaks its exact norm ties towards the natural order with a
    25 eps perturbation, which xGEQP3 follows and the sketch's O(1/sqrt(d))
    norm distortion does not: the randomized pivots break the ties at random,
    the first column loses norm and ends up near the end, and the rank is
    revealed (pinned in the tests).  A guarantee needs a strong
    rank-revealing QR (Gu & Eisenstat 1996).

    Cost: 2 d m n for the first sketch, O(d n^2) for the pivoting and the
    sketch updates, and the 4 m n^2 - 4 n^3/3 flops of Householder QR with Q
    (m >= n), in BLAS-3 as ``qr/blocked``.  xGEQP3 does about half its
    flops in BLAS-2 (each pivot needs its row of the updated trailing
    matrix before the next can be chosen; Quintana-Orti, Sun & Bischof
    1998): that is what choosing b pivots at a time from a sketch removes.
    """
    who = "qrcp/randomized"
    block = check_count("block", block)
    p = check_count("p", p, minimum=0)
    xp = namespace(A)
    check_matrix(xp, A, who)
    rng = normalize_rng(rng)
    m, n = A.shape
    k = min(m, n)
    perm = np.arange(n, dtype=np.intp)
    W = work_copy(xp, A)
    if k == 0:
        return QRCP(hh.zeros(xp, (m, 0), A), hh.zeros(xp, (0, n), A), perm,
                    extras={"d": 0, "resketches": 0})
    d = min(block + p, m)
    Y = _sketch_op("gaussian", d, m, rng, W).left(W)
    Ts = []
    resketches = 0
    for j in range(0, k, block):
        b = min(block, k - j)
        _interchange(xp, W, Y, perm, j, sketch_pivots(xp, Y, b))
        P, T = hh.geqrt3(xp, W[j:, j:j + b])
        W[j:, j:j + b] = P
        Ts.append((j, T))
        if j + b < n:
            W[j:, j + b:] = hh.larfb(xp, P, T, W[j:, j + b:], adjoint=True)
        if j + b < k:
            Y, fresh = _update_sketch(xp, W, Y, j, b, d, rng)
            resketches += fresh
    Q = hh.orgqr(xp, W if m >= n else W[:, :k], Ts)
    return QRCP(Q, xp.triu(W[:k, :]), perm, extras={"d": d, "resketches": resketches})


def sketch_pivots(xp, Y, b: int) -> list[int]:
    """The first b pivot columns of Businger-Golub column-pivoted QR of Y (d, c).

    Parameters
    ----------
    Y : array (d, c)
        Not modified.
    b : int
        Number of pivots wanted, b <= c.

    Returns
    -------
    list of int
        Column indices of Y, in pivot order.

    Notes
    -----
    Businger & Golub 1965, in the form of LAPACK xLAQP2: the largest
    remaining squared column norm is the next pivot (ties to the first index,
    as IxAMAX), its direction q is orthogonalized against the previous ones
    (classical Gram-Schmidt done twice, "twice is enough", Giraud, Langou &
    Rozloznik 2005), and the norms are downdated by ``|q^H Y|^2``; where
    downdating has cancelled the leading half of the digits (norm^2 below
    sqrt(eps) times its value at the last recomputation, xLAQP2's test) they
    are recomputed from the residual ``Y - Q Q^H Y``.  Y itself is never
    updated: one (1, d) x (d, c) product per pivot.  Once the largest
    remaining norm is zero the rest keep their order.

    Not xGEQP3 on NumPy, although it picks the same pivots and alone takes
    half the time (0.7 ms against 1.4 ms for 32 pivots of a 40 x 1000
    sketch): between the blocked QR's ``matmul`` calls, a call into SciPy's
    OpenBLAS, whose threads then compete with NumPy's spinning ones for the
    two cores, took 10 ms, and qrcp/randomized at n = 1000 spent 0.3 s of
    0.65 s there (measured).
    """
    d, c = Y.shape
    cplx = is_complex(xp, Y)

    def h(X):  # X^H, with the dtype test done once (it showed in profiles)
        return xp.conj(X).T if cplx else X.T

    def sq(X):  # |X|^2 summed over rows, real
        return xp.sum(xp.real(xp.conj(X) * X) if cplx else X * X, axis=0)

    Yh = h(Y)
    nrm2 = sq(Y)
    ref = nrm2
    Q = xp.zeros((d, min(b, d, c)), dtype=Y.dtype, device=device(Y))
    taken = xp.zeros((c,), dtype=xp.bool, device=device(Y))
    below = xp.asarray(-1.0, dtype=nrm2.dtype, device=device(Y))
    tol = float(xp.finfo(nrm2.dtype).eps) ** 0.5
    order = []
    for i in range(Q.shape[1]):
        p = to_int(xp.argmax(xp.where(taken, below, nrm2)))
        x = Y[:, p:p + 1]
        for _ in range(2 if i else 0):
            x = x - Q[:, :i] @ (h(Q[:, :i]) @ x)
        nrm = float(xp.linalg.vector_norm(x))
        if not nrm > 0:  # zero (or NaN) remaining matrix: nothing left to order
            break
        q = x / nrm
        Q[:, i:i + 1] = q
        order.append(p)
        taken[p] = True
        nrm2 = nrm2 - sq(h(Yh @ q))
        if bool(xp.any((nrm2 <= tol * ref) & ~taken)):
            nrm2 = sq(Y - Q[:, :i + 1] @ (h(Q[:, :i + 1]) @ Y))
            ref = nrm2
    chosen = set(order)
    return (order + [j for j in range(c) if j not in chosen])[:b]


def _swap(xp, X, a: int, b: int) -> None:
    """Interchange columns a and b of X in place (BLAS xSWAP)."""
    col = xp.asarray(X[:, a], copy=True)
    X[:, a] = X[:, b]
    X[:, b] = col


def _interchange(xp, W, Y, perm, j: int, piv: list[int]) -> None:
    """Bring the trailing columns ``piv`` (indices into Y, i.e. into W[:, j:]) to
    positions j, j+1, ... by pairwise interchanges (2 b columns moved, not n - j)."""
    cur = list(range(Y.shape[1]))  # cur[pos]: original trailing index now at pos
    where = list(range(Y.shape[1]))  # where[idx]: position of original index idx
    for i, c in enumerate(piv):
        q = where[c]
        if q == i:
            continue
        _swap(xp, W, j + i, j + q)
        _swap(xp, Y, i, q)
        perm[j + i], perm[j + q] = perm[j + q], perm[j + i]
        ci = cur[i]
        cur[i], cur[q] = c, ci
        where[c], where[ci] = i, q


def _update_sketch(xp, W, Y, j: int, b: int, d: int, rng):
    """The sketch of the trailing matrix ``W[j+b:, j+b:]`` after factoring columns j:j+b.

    ``Y_2 - (Y_1 R_11^{-1}) R_12`` (module docstring); if that is not finite
    (R_11 exactly singular), a fresh Gaussian sketch of the trailing matrix.
    Returns (Y_new (d, n - j - b), 1 if re-sketched else 0).
    """
    # Z = Y_1 R_11^{-1} as (R_11^H)^{-1} Y_1^H by the namespace's solve (LU):
    # on NumPy that stays in NumPy's BLAS (see sketch_pivots on SciPy calls here).
    try:
        Zh = xp.linalg.solve(ct(xp, xp.triu(W[j:j + b, j:j + b])), ct(xp, Y[:, :b]))
        Ynew = Y[:, b:] - ct(xp, Zh) @ W[j:j + b, j + b:]
        if bool(xp.all(xp.isfinite(Ynew))):
            return Ynew, 0
    except np.linalg.LinAlgError:  # exactly singular R_11 (NumPy raises, CuPy returns NaN)
        pass
    rows = W.shape[0] - j - b
    if rows == 0:  # nothing below: the trailing matrix is empty, any order will do
        return xp.zeros((d, W.shape[1] - j - b), dtype=W.dtype, device=device(W)), 1
    trailing = W[j + b:, j + b:]
    return _sketch_op("gaussian", min(d, rows), rows, rng, trailing).left(trailing), 1
