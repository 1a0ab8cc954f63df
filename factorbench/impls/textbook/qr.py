"""Textbook QR: Householder, Givens, Gram-Schmidt variants, CholeskyQR, and QRCP.

``qr/householder`` and ``qr/cholqr2`` also run the emulated formats float16
and bfloat16 (:mod:`._emulate`): float32 work arrays, every step rounded to
the format as their docstrings say, factors returned in the storage dtype.
"""

from __future__ import annotations

import numpy as np

from factorbench.impls import NATIVE_COMPLEX, NATIVE_REAL, register
from factorbench.impls.results import QR, QRCP
from factorbench.impls.textbook._emulate import EMULATED, arithmetic
from factorbench.impls.textbook._emulate import identity as _identity
from factorbench.impls.textbook._kernels import (
    cholesky_lower,
    form_q,
    givens,
    householder_inplace,
    solve_right_upper,
    working,
)

_DTYPES = NATIVE_REAL + NATIVE_COMPLEX
_COMMON = {"backend": "numpy", "family": "textbook", "dtypes": _DTYPES}
_EMU = {**_COMMON, "dtypes": _DTYPES + EMULATED}


@register("qr", "householder", max_n=1024, **_EMU)
def qr_householder(A):
    """Householder QR with the thin Q accumulated backward.

    Parameters
    ----------
    A : ndarray (m, n), m >= n
        float32, float64, complex64 or complex128, or emulated float16 /
        bfloat16: float32 arithmetic with the rounding to the format of
        :func:`~._kernels.householder_inplace` (the norm, beta, tau and v of
        each reflector; ``v^H C`` once per column, then ``C - v w``
        entrywise), the same for the accumulation of Q; not modified.

    Returns
    -------
    QR
        Thin ``Q`` (m, n) and upper triangular ``R`` (n, n), in A's dtype,
        with ``A = Q @ R``.

    Notes
    -----
    GVL 2013, Alg. 5.2.1 and §5.1.6 (backward accumulation); Trefethen & Bau
    1997, Alg. 10.1; Higham 2002, §19.3.  LAPACK xGEQR2 + xORG2R (xUNG2R).
    Reflectors follow xLARFG, so R has a real diagonal for complex A too.
    Backward stable with ||I - Q^H Q|| = O(m u) whatever kappa(A).
    """
    A = working(A, tall=True, emulated=True)
    ar = arithmetic(A.dtype)
    W = ar.load(A)
    tau, _ = householder_inplace(W, rnd=ar.rnd)
    n = A.shape[1]
    return QR(ar.out(form_q(W, tau, rnd=ar.rnd)), ar.out(np.triu(W[:n, :n])))


@register("qr", "givens", max_n=256, **_COMMON)
def qr_givens(A):
    """Givens QR: each subdiagonal entry zeroed by a plane rotation.

    Parameters
    ----------
    A : ndarray (m, n), m >= n
        float32, float64, complex64 or complex128; not modified.

    Returns
    -------
    QR
        Thin ``Q`` (m, n) and upper triangular ``R`` (n, n), in A's dtype,
        with ``A = Q @ R``.

    Notes
    -----
    GVL 2013, Alg. 5.2.4 (rotations from Alg. 5.1.3); Higham 2002, §19.6.
    Rotations follow LAPACK xLARTG (c real, s complex); no LAPACK QR driver
    uses rotations.  Each column is swept bottom-up and thin Q is accumulated
    backward from the stored rotations, so every update is a two-row vector
    operation.  About m n rotations, one Python step each: slow (max_n 256).
    """
    A = working(A, tall=True)
    m, n = A.shape
    W = A.copy()
    rotations = []
    for j in range(n):
        for i in range(m - 1, j, -1):
            g = W[i, j]
            if g == 0:
                continue
            c, s, r = givens(W[i - 1, j], g)
            G = np.array([[c, s], [-np.conj(s), c]], dtype=A.dtype)
            W[i - 1 : i + 1, j + 1 :] = G @ W[i - 1 : i + 1, j + 1 :]
            W[i - 1, j] = r
            W[i, j] = 0
            rotations.append((i, j, G))
    Q = np.eye(m, n, dtype=A.dtype)
    # Q = G_1^H ... G_N^H [I; 0]; going backward, rotation (i, j) only meets
    # the block Q[j:, j:], the rest is still identity or zero.
    for i, j, G in reversed(rotations):
        Q[i - 1 : i + 1, j:] = G.conj().T @ Q[i - 1 : i + 1, j:]
    return QR(Q, np.triu(W[:n, :n]))


def _cgs_pass(Q, a, j):
    """One classical projection of a against Q[:, :j]: returns (a - Q c, c)."""
    c = Q[:, :j].conj().T @ a
    return a - Q[:, :j] @ c, c


def _gram_schmidt(A, passes):
    """Column-by-column Gram-Schmidt with ``passes`` classical projections per column."""
    A = working(A, tall=True)
    m, n = A.shape
    Q = np.empty_like(A)
    R = np.zeros((n, n), dtype=A.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(n):
            v = A[:, j].copy()
            for _ in range(passes):
                v, c = _cgs_pass(Q, v, j)
                R[:j, j] += c
            R[j, j] = np.linalg.norm(v)
            Q[:, j] = v / R[j, j]
    return QR(Q, R)


@register("qr", "cgs", max_n=1024, stable=False, **_COMMON)
def qr_cgs(A):
    """Classical Gram-Schmidt.

    Parameters
    ----------
    A : ndarray (m, n), m >= n
        float32, float64, complex64 or complex128; not modified.

    Returns
    -------
    QR
        Thin ``Q`` (m, n) and upper triangular ``R`` (n, n), in A's dtype,
        with ``A = Q @ R``.

    Notes
    -----
    Trefethen & Bau 1997, Alg. 7.1; GVL 2013, §5.2.7; Björck 1996, §2.4.
    No LAPACK counterpart.  Each column is projected against the finished Q
    in one matrix-vector product, using the *original* column: the
    orthogonality loss grows like kappa^2 u (Giraud et al. 2005), so it fails
    the orthogonality ratio on all but the best-conditioned inputs.  A
    numerically dependent column divides by zero and yields Inf/NaN.
    """
    return _gram_schmidt(A, passes=1)


@register("qr", "cgs2", max_n=1024, **_COMMON)
def qr_cgs2(A):
    """Classical Gram-Schmidt with one full reorthogonalisation ("twice is enough").

    Parameters
    ----------
    A : ndarray (m, n), m >= n
        float32, float64, complex64 or complex128; not modified.

    Returns
    -------
    QR
        Thin ``Q`` (m, n) and upper triangular ``R`` (n, n), in A's dtype,
        with ``A = Q @ R``.

    Notes
    -----
    Giraud, Langou, Rozložník & van den Eshof 2005 (Numer. Math. 101);
    Kahan-Parlett "twice is enough" (Parlett 1998, §6.9).  No LAPACK
    counterpart.  The second projection removes what the first left, so
    ||I - Q^H Q|| = O(u) as long as kappa u << 1; for numerically rank-deficient
    A (kappa u >~ 1) it loses orthogonality too.
    """
    return _gram_schmidt(A, passes=2)


@register("qr", "mgs", max_n=1024, stable=False, **_COMMON)
def qr_mgs(A):
    """Modified Gram-Schmidt, row-oriented (each q_i projected out of all later columns).

    Parameters
    ----------
    A : ndarray (m, n), m >= n
        float32, float64, complex64 or complex128; not modified.

    Returns
    -------
    QR
        Thin ``Q`` (m, n) and upper triangular ``R`` (n, n), in A's dtype,
        with ``A = Q @ R``.

    Notes
    -----
    Trefethen & Bau 1997, Alg. 8.1; Björck 1967 (BIT 7); GVL 2013, §5.2.8;
    Higham 2002, §19.8.  No LAPACK counterpart.  R is backward stable but
    ||I - Q^H Q|| grows like kappa u (Björck 1967), so the orthogonality ratio
    fails for large kappa.
    """
    A = working(A, tall=True)
    m, n = A.shape
    V = A.copy()
    R = np.zeros((n, n), dtype=A.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(n):
            R[i, i] = np.linalg.norm(V[:, i])
            V[:, i] /= R[i, i]
            if i + 1 < n:
                q = V[:, i]
                R[i, i + 1 :] = q.conj() @ V[:, i + 1 :]
                V[:, i + 1 :] -= np.outer(q, R[i, i + 1 :])
    return QR(V, R)


def _cholqr(A, rnd=_identity):
    """One CholeskyQR pass: R = chol(A^H A)^H, Q = A R^{-1}.

    ``rnd`` (emulated formats): the Gram matrix is one GEMM accumulated in
    float32 and rounded once per entry; the Cholesky factorization and the
    substitutions for Q round as :func:`~._kernels.cholesky_lower` and
    :func:`~._kernels.solve_lower` do.
    """
    G = rnd(A.conj().T @ A)
    R = cholesky_lower(G, rnd=rnd).conj().T
    return solve_right_upper(A, R, rnd=rnd), R


@register("qr", "cholqr", max_n=1024, stable=False, **_COMMON)
def qr_cholqr(A):
    """CholeskyQR: R from the Cholesky factor of the Gram matrix, Q = A R^{-1}.

    Parameters
    ----------
    A : ndarray (m, n), m >= n
        float32, float64, complex64 or complex128; not modified.

    Returns
    -------
    QR
        Thin ``Q`` (m, n) and upper triangular ``R`` (n, n), in A's dtype,
        with ``A = Q @ R``.

    Raises
    ------
    numpy.linalg.LinAlgError
        A^H A is not numerically positive definite (kappa(A) >~ u^{-1/2}).

    Notes
    -----
    Fukaya, Nakatsukasa, Yanagisawa & Yamamoto 2014 (ScalA'14), §2;
    Stathopoulos & Wu 2002.  No LAPACK driver (xSYRK + xPOTRF + xTRSM).
    Forming A^H A squares the condition number: the orthogonality loss grows
    like kappa^2 u.
    """
    A = working(A, tall=True)
    Q, R = _cholqr(A)
    return QR(Q, R)


@register("qr", "cholqr2", max_n=1024, **_EMU)
def qr_cholqr2(A):
    """CholeskyQR2: CholeskyQR applied twice, R = R_2 R_1.

    Parameters
    ----------
    A : ndarray (m, n), m >= n
        float32, float64, complex64 or complex128, or emulated float16 /
        bfloat16 (float32 arithmetic; each Gram matrix and R2 R1 rounded once
        per entry, Cholesky and substitutions rounded per step, see
        :func:`_cholqr`); not modified.  In bfloat16, u^{-1/2} = 16: the
        method's condition (kappa(A) << u^{-1/2}) leaves little room.

    Returns
    -------
    QR
        Thin ``Q`` (m, n) and upper triangular ``R`` (n, n), in A's dtype,
        with ``A = Q @ R``.

    Raises
    ------
    numpy.linalg.LinAlgError
        The first Gram matrix is not numerically positive definite.

    Notes
    -----
    Fukaya, Nakatsukasa, Yanagisawa & Yamamoto 2014 (ScalA'14), Alg. 2;
    Yamamoto et al. 2015 (ETNA 44) for the analysis.  No LAPACK driver.
    The first pass leaves Q_1 with kappa(Q_1) = O(1) whenever
    kappa(A) < ~u^{-1/2}, and the second pass then gives orthogonality and
    residual O(u); beyond that the first Cholesky breaks down (raises).
    """
    A = working(A, tall=True, emulated=True)
    ar = arithmetic(A.dtype)
    rnd = ar.rnd
    Q1, R1 = _cholqr(ar.load(A) if ar.emulated else A, rnd)
    Q, R2 = _cholqr(Q1, rnd)
    # The product of two upper triangular matrices is upper triangular;
    # triu only discards the exact zeros GEMM summed below the diagonal.
    # Emulated formats: R2 R1 is one GEMM rounded once per entry.
    return QR(ar.out(Q), ar.out(np.triu(rnd(R2 @ R1))))


@register("qrcp", "householder", max_n=1024, **_COMMON)
def qrcp_householder(A):
    """Householder QR with column pivoting (Businger-Golub).

    Parameters
    ----------
    A : ndarray (m, n), m >= n
        Not modified.

    Returns
    -------
    QRCP
        Thin ``Q`` (m, n), upper ``R`` (n, n) with |R_11| >= |R_22| >= ...
        (in exact arithmetic), and ``perm`` (n,) intp with
        ``A[:, perm] = Q @ R``.

    Notes
    -----
    GVL 2013, Alg. 5.4.1; Businger & Golub 1965.  LAPACK xGEQPF/xLAQP2 +
    xORG2R.  At each step the column of largest remaining norm is brought
    forward; the norms are downdated (O(n) per step instead of O(mn)) and
    recomputed from scratch when the downdate has lost about half its digits,
    the safeguard of Drmač & Bujanović 2008 (LAPACK Working Note 176) that
    fixed the failure of the original xGEQPF test.
    """
    A = working(A, tall=True)
    W = A.copy()
    tau, perm = householder_inplace(W, pivot=True)
    n = A.shape[1]
    return QRCP(form_q(W, tau), np.triu(W[:n, :n]), perm)
