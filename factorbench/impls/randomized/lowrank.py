"""Randomized low-rank SVD: HMT subspace iteration, block Krylov, Nyström, adaptive range finder.

All four are written once against the array namespace of their input: the
array API standard (``matmul``, slices, ``concat``, the ``linalg`` extension's
``qr``, ``svd`` and ``cholesky``) plus the sketching operators of
:mod:`~factorbench.impls.randomized._sketch` and ``_xp.trsm``, so the same
functions run on NumPy, on CuPy and on array-api-strict (the tests run NumPy
and array-api-strict).  Registered with op "lowrank", backend "numpy",
family "randomized", native dtypes; call ``f(A, k, rng, **params)``:

=======================  ==========================================  =============================
id                       parameters (first = conformance value)      method
=======================  ==========================================  =============================
lowrank/rsvd             p 10, 5, 20; q 2, 0, 1;                      HMT 2011 Alg. 4.4 + 5.1
                         sketch gaussian, sparse, srht
lowrank/block-krylov     q 2, 1, 4; p 5; sketch gaussian              Musco & Musco 2015, Alg. 2
lowrank/nystrom          p 10; q 0; sketch gaussian  (SPD/HPD input)  Tropp et al. 2017, Alg. 3
lowrank/adaptive         tol 1e-3; block 10                           randQB_EI (blocked HMT 4.2)
=======================  ==========================================  =============================

Choices where the literature leaves options, and why:

* **Randomness.**  ``rng`` (None, int, SeedSequence or Generator) is
  normalised once to a ``numpy.random.Generator`` and every random number
  comes from it, drawn on the host (see ``_sketch``): a seed gives bit-identical
  factors on one backend and the same test matrix on every backend.
* **Working precision throughout.**  Every product, QR and SVD runs in A's
  dtype; float32 input gives float32 U, s, Vh (complex64: complex64 U, Vh,
  float32 s).  Only scalars (norms, the Nyström shift, the adaptive error
  indicator) are carried as Python floats.
* **Products with A^H without forming it.**  ``A^H Q`` is computed as
  ``(Q^H A)^H``: for complex A the conjugate of the large matrix is never
  formed (only of the thin m x l factor), and on NumPy either product is one
  GEMM on A's memory whatever its order (C or F), so A is never copied.
  The one exception is ``Sketch.right(A)`` on complex input, which
  conjugates A once (``_sketch`` applies S on the left of ``A^H``).
* **Re-orthonormalisation after every application of A and of A^H** (HMT
  2011, Alg. 4.4) by Householder QR (``linalg.qr``: LAPACK xGEQRF + xORGQR on
  NumPy).  Without it the columns of ``(A A^H)^q A Omega`` align with the top
  singular vector and every singular value below ``u^(1/(2q+1)) sigma_1`` is
  lost to rounding (HMT 2011, sec. 4.5).  Householder, not CholeskyQR or LU:
  the basis of a nearly rank-deficient Y (exact rank-k input, l > k) stays
  orthonormal to working precision, which CholeskyQR does not guarantee and
  LU-normalisation (scikit-learn's default) does not attempt until the end.
* **The small SVD** of the l x n matrix ``B = Q^H A`` (l <= n) is taken from
  a QR of ``B^H`` (n x l, ``B^H = Q_2 R``) and the SVD of the l x l ``R^H``:
  backward stable like an SVD of B (Householder QR then SVD), unlike the
  eigendecomposition of the Gram matrix ``B B^H``, which squares the condition
  number and loses the singular values below ``sqrt(u) sigma_1``; and about
  4 n l^2 flops in xGEQRF/xORGQR before an O(l^3) SVD.
* **Truncation.**  The fixed-rank impls return the best rank-k approximation
  of A within the computed range, ``Q [Q^H A]_k`` (truncated SVD of B), the
  fixed-rank output that Tropp et al. 2017 (Practical sketching) analyse: ``||A - Q[B]_k||_F^2 =
  ||A - Q Q^H A||_F^2 + ||B - [B]_k||_F^2 <= ||A - Q Q^H A||_F^2 + tau_k^2``
  with ``tau_k`` the optimal rank-k error.
* **Block Krylov** orthonormalises each new block against the basis found
  so far as it is produced (block classical Gram-Schmidt twice with a
  Householder QR of the block after each pass, and a third pass where the
  second lost more than half of a column), rather than orthonormalising
  the raw powers ``(A A^H)^j A Omega`` once at the end: the raw powers align with the top
  singular vectors like an unnormalised power method, so their columns become
  numerically dependent (condition ~ (sigma_1/sigma_l)^(2q)) and the lower
  directions are lost to rounding before a final QR could see them.  A^H is
  applied to the orthonormalised block, which spans the same Krylov space
  (block Lanczos argument).  Twice is enough for Gram-Schmidt (Giraud,
  Langou & Rozložník 2005; Barlow & Smoktunowicz 2013) while the new block
  has directions outside the basis; once the Krylov space is exhausted (exact
  low-rank input) the projected block is rounding noise lying mostly inside
  the basis, and the third pass is what keeps the basis orthonormal there.
  Measured, rank-5 input of 90 x 50, ||I - U^H U||: block Krylov with
  q = 4, 4.1 with one projection before the block QR, 1.5e-15 with the
  re-orthonormalisation; the adaptive finder grown to l = 50, 5.5 with
  randQB_b's one re-orthonormalisation and 5.9e-15 with the third pass
  (float32: 4.7 and 1.4e-6).  The incremental form costs about
  ``8 m L l`` per block against ``4 m L^2`` for one QR of the finished basis.
* **Nyström** uses an orthonormalised Gaussian test matrix (Tropp et al.
  2017, Alg. 1 and 3): then ``Omega^H (A + nu I) Omega = Omega^H A Omega + nu I``
  and the shift is exactly the intended ``nu I``; the core matrix is
  symmetrised before its Cholesky factorization.  The shift is
  ``nu = sqrt(n) eps ||Y||_F`` (eps of the working precision): Frobenius, an
  upper bound of the 2-norm the paper uses, cheap in every namespace.
* **Adaptive** uses the error indicator of randQB_EI (Yu, Gu & Li 2018)
  ``||A - Q Q^H A||_F^2 = ||A||_F^2 - ||Q^H A||_F^2``, exact in exact
  arithmetic; where the tolerance is too close to the indicator's rounding
  error to trust it (see :func:`lowrank_adaptive`) the residual is computed
  directly before stopping.  The found basis is then trimmed to the smallest
  rank that still meets the tolerance, exactly, from the small SVD.  Its
  blocks are Gaussian (no ``sketch`` parameter): ``A Omega_i`` with an
  explicit Omega_i never conjugates A.

References
----------
N. Halko, P.-G. Martinsson and J. A. Tropp, Finding structure with randomness:
probabilistic algorithms for constructing approximate matrix decompositions,
SIAM Review 53(2), 2011 (HMT 2011).
C. Musco and C. Musco, Randomized block Krylov methods for stronger and faster
approximate singular value decomposition, NeurIPS 2015.
J. A. Tropp, A. Yurtsever, M. Udell and V. Cevher, Fixed-rank approximation of
a positive-semidefinite matrix from streaming data, NeurIPS 2017.
J. A. Tropp, A. Yurtsever, M. Udell and V. Cevher, Practical sketching
algorithms for low-rank matrix approximation, SIAM J. Matrix Anal. Appl.
38(4), 2017.
P.-G. Martinsson and S. Voronin, A randomized blocked algorithm for
efficiently computing rank-revealing factorizations of matrices, SIAM J. Sci.
Comput. 38(5), 2016 (randQB_b).
W. Yu, Y. Gu and Y. Li, Efficient randomized algorithms for the fixed-precision
low-rank matrix approximation, SIAM J. Matrix Anal. Appl. 39(3), 2018 (randQB_EI).
P.-G. Martinsson and J. A. Tropp, Randomized numerical linear algebra:
foundations and algorithms, Acta Numerica 29, 2020.
L. Giraud, J. Langou and M. Rozložník, The loss of orthogonality in the
Gram-Schmidt orthogonalization process, Comput. Math. Appl. 50, 2005.
J. L. Barlow and A. Smoktunowicz, Reorthogonalized block classical
Gram-Schmidt, Numer. Math. 123, 2013.
"""

from __future__ import annotations

import math
import numbers

from factorbench.accuracy.matrices import normalize_rng
from factorbench.impls import NATIVE_COMPLEX, NATIVE_REAL, register
from factorbench.impls.blocked._xp import trsm
from factorbench.impls.randomized import _sketch as _sk
from factorbench.impls.randomized._sketch import (
    SKETCHES,
    check_count,
    check_matrix,
    ct,
    device,
    gaussian,
    namespace,
)
from factorbench.impls.results import SVD

__all__ = ["lowrank_rsvd", "lowrank_block_krylov", "lowrank_nystrom", "lowrank_adaptive"]

_COMMON = {"backend": "numpy", "family": "randomized", "dtypes": NATIVE_REAL + NATIVE_COMPLEX}

#: The adaptive error indicator E - ||B_i||_F^2 is trusted when the target
#: (tol ||A||_F)^2 is at least this many times its rounding error bound,
#: max(m, n) u E (E the value it is downdated from: ||A||_F^2 at first).
_INDICATOR_SLACK = 20.0


# --------------------------------------------------------------------- helpers


def _start(A, k, who):
    """(xp, m, n, k): validate A (2-D, native float dtype) and 1 <= k <= min(m, n)."""
    xp = namespace(A)
    check_matrix(xp, A, who)
    m, n = A.shape
    k = check_count("k", k)
    if k > min(m, n):
        raise ValueError(f"{who}: k must be at most min(m, n) = {min(m, n)}, got {k}")
    return xp, m, n, k


def _check_sketch(kind):
    if kind not in SKETCHES:
        raise ValueError(f"sketch must be one of {', '.join(SKETCHES)}; got {kind!r}")
    return kind


def _orth(xp, Y):
    """Orthonormal basis of the columns of Y (m, c), c <= m: thin Householder QR."""
    return xp.linalg.qr(Y)[0]


def _adjoint_times(xp, A, Q):
    """``A^H Q`` (n, c) as ``(Q^H A)^H``: conjugates the thin Q, never A."""
    return ct(xp, ct(xp, Q) @ A)


def _svd_of_rows(xp, Q, B, k):
    """Rank-k truncated SVD of ``Q B`` with Q (m, l) orthonormal and B (l, n), l <= n.

    ``B^H = Q_2 R`` (thin Householder QR), ``R^H = U_a diag(s) V_a^H``, so
    ``Q B = (Q U_a) diag(s) (V_a^H Q_2^H)``.  About 4 n l^2 + O(l^3) + 2 (m + n) l k flops.
    """
    Q2, R = xp.linalg.qr(ct(xp, B))
    Ua, s, Vah = xp.linalg.svd(ct(xp, R), full_matrices=False)
    return Q @ Ua[:, :k], s[:k], Vah[:k, :] @ ct(xp, Q2)


def _fro(xp, X) -> float:
    """Frobenius norm of X as a Python float."""
    return float(xp.linalg.vector_norm(X))


# ---------------------------------------------------------------- lowrank/rsvd


@register("lowrank", "rsvd", **_COMMON,
          parameters={"p": [10, 5, 20], "q": [2, 0, 1], "sketch": ["gaussian", "sparse", "srht"]})
def lowrank_rsvd(A, k, rng=None, *, p=10, q=2, sketch="gaussian"):
    """Randomized SVD: subspace iteration with re-orthonormalisation, then the SVD of Q^H A.

    Parameters
    ----------
    A : array (m, n)
        float32, float64, complex64 or complex128, of any array API
        namespace; read only (never modified, may be read-only or F-ordered).
    k : int
        Target rank, 1 <= k <= min(m, n).
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Source of the test matrix; normalised once.
    p : int
        Oversampling, >= 0: the range has ``l = min(k + p, min(m, n))`` columns.
    q : int
        Power (subspace) iterations, >= 0.
    sketch : {"gaussian", "sparse", "srht"}
        Test matrix ``Omega = S^H`` (n, l) of ``_sketch.sketch``; ``Y = A Omega``.

    Returns
    -------
    SVD
        U (m, k) and Vh (k, n) with orthonormal columns/rows, s (k,) real,
        descending, in A's precision: ``A ~ U diag(s) Vh``.

    Notes
    -----
    HMT 2011, Alg. 4.4 (randomized subspace iteration) then Alg. 5.1 (direct
    SVD)::

        Q = qr(A Omega)
        repeat q times:  W = qr(A^H Q);  Q = qr(A W)
        B = Q^H A;  B^H = Q_2 R;  R^H = U_a S V_a^H
        U = Q U_a[:, :k],  s = S[:k],  Vh = V_a^H[:k] Q_2^H

    Cost (real flops; x4 for complex): 2q + 1 products with A or A^H besides
    the sketch, ``(4q + 2) m n l``; the sketch ``A Omega`` (2 m n l for
    "gaussian", O(m n) for "sparse", O(m n log n) for "srht");
    ``(q + 1) 4 m l^2 + (q + 1) 4 n l^2`` in the QRs; ``O(l^3) + 2 (m + n) l k``
    for the small SVD and the factors.  The products dominate: at
    4000 x 2000, k = 50, p = 10, q = 2 about 5.8 GFLOP.

    Measured on the reference machine (2 cores, OpenBLAS, 4000 x 2000, k = 50,
    p = 10, q = 2, minimum of 5 in one process): float64 0.11 s (sparse
    sketch 0.15 s, SRHT 0.14 s), float32 0.072 s; scikit-learn's
    ``randomized_svd(A, 50, n_oversamples=10, n_iter="auto")`` (7 LU-normalised
    iterations) 0.49 s and 0.36 s; the full xGESDD 3.5 s.  Everything here
    runs in NumPy's own BLAS (``matmul``, ``numpy.linalg``), so it does not
    pay for switching thread pools with SciPy's (see ``_xp``).

    Accuracy: with a Gaussian test matrix and q = 0,
    ``E ||A - Q Q^H A||_F^2 <= (1 + k/(p - 1)) tau_k^2`` (HMT 2011, Thm 10.5;
    ``tau_k^2 = sum_{j > k} sigma_j^2``, p >= 2), hence for the returned rank-k
    truncation ``E ||A - U diag(s) Vh||_F^2 <= (2 + k/(p - 1)) tau_k^2``
    (module notes).  Power iterations apply the same bounds to
    ``(A A^H)^q A``, whose singular values are the (2q + 1)-th powers of A's,
    so the tail relative to the top decays geometrically in q (HMT 2011,
    sec. 10.4; Cor. 10.10 states it in the spectral norm).
    """
    xp, m, n, k = _start(A, k, "lowrank/rsvd")
    p, q = check_count("p", p, 0), check_count("q", q, 0)
    kind = _check_sketch(sketch)
    rng = normalize_rng(rng)
    l = min(k + p, min(m, n))
    Q = _orth(xp, _sk.sketch(kind, l, n, rng, A).right(A))
    for _ in range(q):
        W = _orth(xp, _adjoint_times(xp, A, Q))
        Q = _orth(xp, A @ W)
    return SVD(*_svd_of_rows(xp, Q, ct(xp, Q) @ A, k))


# -------------------------------------------------------- lowrank/block-krylov


def _orth_against(xp, Q, W, projected=False):
    """Orthonormal Q_i (m, c) with ``span [Q, Q_i]`` containing span W and ``Q^H Q_i = O(u)``.

    Block classical Gram-Schmidt with re-orthonormalisation (BCGS2 in the
    form of Barlow & Smoktunowicz 2013: project, QR, project the orthonormal
    factor again, QR), and a third pass where the second lost more than half
    of a column (Kahan-Parlett's "twice is enough" test on ``|diag R|``).  The
    third pass is what a numerically rank-deficient W needs: a Krylov block
    whose new directions are exhausted (exact low-rank input), where the
    first projection leaves rounding errors of size ``u ||W||`` that lie
    mostly in span Q; normalised, they are orthogonalised again.  Q has
    orthonormal columns; ``projected`` says W is already ``W - Q (Q^H W)``
    (the adaptive finder deflates with B instead).
    """
    if not projected:
        W = W - Q @ (ct(xp, Q) @ W)
    Qi = _orth(xp, W)
    for _ in range(2):
        Qi, R = xp.linalg.qr(Qi - Q @ (ct(xp, Q) @ Qi))
        if float(xp.min(xp.abs(xp.linalg.diagonal(R)))) >= 0.5:
            break
    return Qi


@register("lowrank", "block-krylov", **_COMMON,
          parameters={"q": [2, 1, 4], "p": [5], "sketch": ["gaussian"]})
def lowrank_block_krylov(A, k, rng=None, *, q=2, p=5, sketch="gaussian"):
    """Randomized block Krylov iteration with Rayleigh-Ritz extraction.

    Parameters
    ----------
    A : array (m, n)
        float32, float64, complex64 or complex128, any array API namespace;
        never modified.
    k : int
        Target rank, 1 <= k <= min(m, n).
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Source of the starting block; normalised once.
    q : int
        Krylov depth, >= 0: the basis has q + 1 blocks (q = 0 is rsvd with q = 0).
    p : int
        Block oversampling, >= 0: block size ``l = min(k + p, min(m, n))``.
    sketch : {"gaussian", "sparse", "srht"}
        Starting block ``A Omega`` with ``Omega = S^H`` of ``_sketch.sketch``.

    Returns
    -------
    SVD
        U (m, k), s (k,) descending real, Vh (k, n), in A's precision.

    Notes
    -----
    Musco & Musco 2015, Alg. 2: an orthonormal basis Q of the Krylov space
    ``[A Omega, (A A^H) A Omega, ..., (A A^H)^q A Omega]`` (block size l), then
    Rayleigh-Ritz: the top-k SVD of ``Q^H A`` lifted by Q.  Built block by
    block: ``Q_0 = qr(A Omega)``, ``Q_{i+1}`` the block Gram-Schmidt
    orthonormalisation of ``A (Q_i^H A)^H`` against ``[Q_0 .. Q_i]``
    (:func:`_orth_against`; see the module notes for why not one QR at the
    end).  The rows ``Q_i^H A`` of B are the products the iteration needs
    anyway, so B costs one extra product (the last block's).  The basis is
    capped at min(m, n) columns (a full basis spans the range of A).

    Cost (real flops; x4 complex), L = (q + 1) l columns: ``(4q + 2) m n l``
    in 2q + 1 products with A or A^H besides the sketch (as for rsvd), about
    ``6 m L^2`` in Gram-Schmidt and the block QRs, ``4 n L^2 + O(L^3)`` for
    the small SVD.  Measured (as for rsvd, 4000 x 2000, k = 50, q = 2,
    p = 5): 0.13 s.

    Accuracy (Musco & Musco 2015, Thm 1, gap-independent): with
    q = O(log(n) / sqrt(eps)) the output is a (1 + eps) spectral-norm-optimal
    rank-k approximation w.h.p., against q = O(log(n) / eps) for subspace
    iteration (rsvd).
    """
    xp, m, n, k = _start(A, k, "lowrank/block-krylov")
    q, p = check_count("q", q, 0), check_count("p", p, 0)
    kind = _check_sketch(sketch)
    rng = normalize_rng(rng)
    r = min(m, n)
    l = min(k + p, r)
    Q = _orth(xp, _sk.sketch(kind, l, n, rng, A).right(A))
    Qi, rows = Q, []
    for _ in range(q):
        if Q.shape[1] >= r:
            break
        Z = ct(xp, Qi) @ A                        # (l_i, n): this block's rows of B
        rows.append(Z)
        W = (A @ ct(xp, Z))[:, :min(l, r - Q.shape[1])]
        Qi = _orth_against(xp, Q, W)
        Q = xp.concat([Q, Qi], axis=1)
    rows.append(ct(xp, Qi) @ A)
    B = xp.concat(rows, axis=0) if len(rows) > 1 else rows[0]
    return SVD(*_svd_of_rows(xp, Q, B, k))


# ------------------------------------------------------------- lowrank/nystrom


def _test_matrix(xp, kind, l, n, rng, like):
    """An n x l test matrix Omega = S^H, in ``like``'s dtype and device."""
    if kind == "gaussian":
        return gaussian(xp, rng, (n, l), like)
    S = _sk.sketch(kind, l, n, rng, like)
    return ct(xp, S.left(xp.eye(n, dtype=like.dtype, device=device(like))))


@register("lowrank", "nystrom", **_COMMON, structure="spd",
          parameters={"p": [10], "q": [0], "sketch": ["gaussian"]})
def lowrank_nystrom(A, k, rng=None, *, p=10, q=0, sketch="gaussian"):
    """Stabilised Nyström approximation of a positive semidefinite matrix.

    Parameters
    ----------
    A : array (n, n)
        Hermitian positive semidefinite (only assumed, not checked: the whole
        of A is read), float32, float64, complex64 or complex128, any array
        API namespace; never modified.
    k : int
        Target rank, 1 <= k <= n.
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Source of the test matrix; normalised once.
    p : int
        Oversampling, >= 0: ``l = min(k + p, n)`` columns.
    q : int
        Power iterations on the test matrix, >= 0: ``Omega <- qr(A Omega)`` q
        times before the sketch ``Y = A Omega`` (Martinsson & Tropp 2020,
        sec. 14: the Nyström approximation with test matrix ``A^q Omega``).
    sketch : {"gaussian", "sparse", "srht"}
        Test matrix before orthonormalisation; "sparse" and "srht" are
        materialised as dense n x l matrices (O(n^2) work and memory).

    Returns
    -------
    SVD
        ``U (n, k)``, ``s (k,) >= 0`` descending, ``Vh = U^H (k, n)``:
        ``A ~ U diag(s) U^H``, positive semidefinite by construction.

    Raises
    ------
    numpy.linalg.LinAlgError
        ``Omega^H (A + nu I) Omega`` is not numerically positive definite: A
        is not positive semidefinite (beyond the shift nu).

    Notes
    -----
    Tropp, Yurtsever, Udell & Cevher 2017 (NeurIPS), Alg. 3; Martinsson &
    Tropp 2020, sec. 14::

        Omega = qr(G);  Y = A Omega;  nu = sqrt(n) eps ||Y||_F
        Y_nu = Y + nu Omega;  L L^H = (Omega^H Y_nu + Y_nu^H Omega) / 2
        B = Y_nu L^{-H} (xTRSM);  B = U Sigma W^H (thin SVD)
        Lambda = max(0, Sigma^2 - nu)

    The shift makes the core matrix positive definite when A is only
    semidefinite (rank < l) and is removed from the eigenvalues at the end,
    an error of O(nu) = O(sqrt(n) u ||Y||_F), at most O(sqrt(n l) u ||A||).
    The truncation to k takes the top k of the rank-l Nyström approximation
    (Tropp et al. 2017, Alg. 3, "fixed-rank").  With a Gaussian test matrix and q = 0 the expected
    trace-norm error is within a factor ``1 + k/(p - 1)`` of the optimal
    rank-k one (Tropp et al. 2017, sec. 4; Gittens & Mahoney 2016).

    Cost (real flops; x4 complex): ``(q + 1) 2 n^2 l`` in products with A,
    ``(q + 2) 4 n l^2`` in the QRs and the SVD of B, ``n l^2`` in the
    triangular solve, O(l^3) for the Cholesky.
    """
    xp, m, n, k = _start(A, k, "lowrank/nystrom")
    if m != n:
        raise ValueError(f"lowrank/nystrom needs a square (Hermitian PSD) matrix, got shape "
                         f"{tuple(A.shape)}")
    p, q = check_count("p", p, 0), check_count("q", q, 0)
    kind = _check_sketch(sketch)
    rng = normalize_rng(rng)
    l = min(k + p, n)
    Omega = _orth(xp, _test_matrix(xp, kind, l, n, rng, A))
    for _ in range(q):
        Omega = _orth(xp, A @ Omega)
    Y = A @ Omega
    nu = math.sqrt(n) * float(xp.finfo(A.dtype).eps) * _fro(xp, Y)
    Y = Y + nu * Omega
    M = ct(xp, Omega) @ Y
    L = xp.linalg.cholesky((M + ct(xp, M)) * 0.5)
    B = trsm(xp, L, Y, lower=True, side="right", conj_trans=True)   # B L^H = Y_nu
    U, sigma, _ = xp.linalg.svd(B, full_matrices=False)
    lam = sigma[:k] ** 2 - nu
    lam = xp.maximum(lam, xp.zeros_like(lam))
    Uk = U[:, :k]
    return SVD(Uk, lam, ct(xp, Uk))


# ------------------------------------------------------------ lowrank/adaptive


def _check_tol(tol) -> float:
    """A real tolerance in (0, 1); booleans, strings and NaN are refused."""
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0 < tol < 1:
        raise ValueError(f"tol must be a real number in (0, 1), got {tol!r}")
    return float(tol)


def _host_floats(xp, s) -> list[float]:
    """A 1-D array as a list of Python floats (one transfer on NumPy)."""
    if hasattr(s, "tolist") and type(s).__module__.startswith("numpy"):
        return [float(v) for v in s.tolist()]
    return [float(s[i]) for i in range(s.shape[0])]


@register("lowrank", "adaptive", **_COMMON, parameters={"tol": [1e-3], "block": [10]})
def lowrank_adaptive(A, k=None, rng=None, *, tol=1e-3, block=10):
    """Blocked adaptive range finder to a relative Frobenius-norm tolerance; chooses the rank.

    Parameters
    ----------
    A : array (m, n)
        float32, float64, complex64 or complex128, any array API namespace;
        never modified.
    k : ignored
        The rank is chosen from ``tol``; the argument exists for the common
        lowrank signature ``f(A, k, rng)`` and is not read.
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Source of the Gaussian test blocks; normalised once.
    tol : float in (0, 1)
        Relative tolerance: the result meets
        ``||A - U diag(s) Vh||_F <= tol ||A||_F`` (Frobenius norms).
    block : int
        Columns b added per step (>= 1).

    Returns
    -------
    SVD
        ``U (m, r)``, ``s (r,)`` descending real, ``Vh (r, n)`` at the rank r
        it chose, in A's precision; ``extras = {"rank": r, "tol": tol,
        "range_dim": l, "error_estimate": e}``: l the dimension of the range
        found before trimming, e the estimated ``||A - U diag(s) Vh||_F / ||A||_F``.

    Notes
    -----
    HMT 2011, Alg. 4.2, in the blocked form randQB_b of Martinsson & Voronin
    2016 with the error indicator of randQB_EI (Yu, Gu & Li 2018), A never
    updated::

        E = ||A||_F^2;  Q, B empty
        repeat:  Omega_i Gaussian (n, b)
                 Q_i = qr(A Omega_i - Q (B Omega_i))
                 Q_i = qr(Q_i - Q (Q^H Q_i))          re-orthonormalisation (a third
                                                      pass where it lost > half a column)
                 B_i = Q_i^H A;  Q = [Q, Q_i];  B = [B; B_i]
                 E = E - ||B_i||_F^2                  = ||A - Q B||_F^2
        until E <= tol^2 ||A||_F^2  or  l = min(m, n)

    Then ``B = U_a diag(s) Vh`` (through the QR of B^H, as in rsvd) and the
    rank is trimmed to the smallest r with ``E + sum_{j > r} s_j^2 <=
    tol^2 ||A||_F^2``: by Pythagoras (``Q^H (A - Q B) = 0``) that sum is
    exactly ``||A - Q U_a[:, :r] diag(s[:r]) Vh[:r]||_F^2``, so trimming
    keeps the guarantee.  The rank is at least 1.

    Guarantee.  The norm is the Frobenius norm and the stopping test is
    deterministic, not probabilistic: the indicator is an identity (no
    estimator, no failure probability), and on exit the Frobenius error is
    within tol up to rounding.  The indicator's rounding error is about
    ``max(m, n) u E_0`` at worst (the squared norms of the computed
    ``Q^H A``, E_0 = ||A||_F^2 the value it is downdated from), so where the
    target ``tol^2 ||A||_F^2`` is below 20 times that (float32 with tol <~ 1e-2
    at n = 100, float64 with tol <~ 3e-6 at n = 4000) the indicator only says
    when to look: once it is below that noise level the residual
    ``||A - Q B||_F`` is computed directly (one more product with A), the
    iteration stops if it meets the tolerance, and otherwise E is reset to it
    and downdated from there, an error relative to the new, small E.  A
    tolerance below the rounding level of the residual (~ sqrt(max(m, n)) u)
    cannot be met; the iteration then stops at l = min(m, n), and
    ``error_estimate`` says what was reached.  Randomness only affects the
    rank: the span after j blocks is that of the Gaussian range finder with
    ``l = j b`` columns, so with a spectral gap at r the basis meets the
    tolerance w.h.p. once ``l >= r + 2`` and the tail bound of HMT 2011
    Thm 10.5/10.7 is below tol, i.e. within about one block past r, and the
    trimming returns r.

    Cost (real flops; x4 complex), l the final range dimension: ``4 m n l``
    in products with A (the test blocks and B), ``about 2 (m + n) l^2`` in
    the deflation and re-orthonormalisation, ``4 n l^2 + O(l^3)`` for the
    small SVD, ``2 m n l`` per direct residual check.
    """
    xp = namespace(A)
    check_matrix(xp, A, "lowrank/adaptive")
    tol = _check_tol(tol)
    b = check_count("block", block)
    rng = normalize_rng(rng)
    m, n = A.shape
    r = min(m, n)
    normA = _fro(xp, A)
    target2 = (tol * normA) ** 2
    # rounding error of the indicator relative to the value it is downdated from
    noise = _INDICATOR_SLACK * max(m, n) * float(xp.finfo(A.dtype).eps) / 2
    err2 = normA ** 2
    noise2 = noise * err2
    Q = B = None
    while Q is None or Q.shape[1] < r:
        bi = min(b, r - (0 if Q is None else Q.shape[1]))
        Omega = gaussian(xp, rng, (n, bi), A)
        Y = A @ Omega
        if Q is None:
            Qi = _orth(xp, Y)
        else:
            Qi = _orth_against(xp, Q, Y - Q @ (B @ Omega), projected=True)
        Bi = ct(xp, Qi) @ A
        Q = Qi if Q is None else xp.concat([Q, Qi], axis=1)
        B = Bi if B is None else xp.concat([B, Bi], axis=0)
        err2 -= _fro(xp, Bi) ** 2
        if err2 <= max(target2, noise2):
            if target2 < noise2:
                # below its rounding error the indicator cannot decide: measure the
                # residual, and downdate from that accurate value from now on
                err2 = _fro(xp, A - Q @ B) ** 2
                noise2 = noise * err2
            if err2 <= target2:
                break
    err2 = max(err2, 0.0)
    l = Q.shape[1]
    U, s, Vh = _svd_of_rows(xp, Q, B, l)
    # trim: smallest rank whose dropped tail keeps the error within tol
    s2 = [v * v for v in _host_floats(xp, s)]
    rank, tail = l, 0.0
    while rank > 1 and err2 + tail + s2[rank - 1] <= target2:
        tail += s2[rank - 1]
        rank -= 1
    est = math.sqrt(err2 + tail) / normA if normA > 0 else 0.0
    return SVD(U[:, :rank], s[:rank], Vh[:rank, :],
               extras={"rank": rank, "tol": tol, "range_dim": l, "error_estimate": est})
