"""Kernels shared by the textbook implementations.

Every kernel computes in the dtype of the array it is given: scalars are
NumPy scalars of that dtype (or its real counterpart), never Python floats
computed in double, so a float32 cell is a float32 computation throughout.
Each kernel loops over the elimination step in Python and does the work of a
step with one or two BLAS-1/2 NumPy operations.

Emulated float16/bfloat16 (:mod:`._emulate`): the kernels that take ``rnd``
are given a float32 work array holding values of the format and round the
result of every step back to it with ``rnd`` (the identity for native
dtypes, so native results are bit-identical to the kernels without it).  The
rounding points are named in each kernel's docstring; a dot product or
matrix-vector product is accumulated in float32 and rounded once (the block
FMA model of Blanchard et al. 2020).
"""

from __future__ import annotations

import numpy as np

from factorbench.accuracy.metrics import _div
from factorbench.accuracy.precision import NATIVE_COMPLEX, NATIVE_REAL
from factorbench.impls.textbook._emulate import emulated_name
from factorbench.impls.textbook._emulate import identity as _identity

_NATIVE = frozenset(np.dtype(d) for d in NATIVE_REAL + NATIVE_COMPLEX)


def working(A, *, square=False, tall=False, who="textbook impls", emulated=False):
    """Validate ``A`` as a 2-D array in a native working precision (no copy);
    ``who`` names the impls in the dtype error.  ``emulated=True`` also accepts
    the storage dtypes of the emulated formats (float16, bfloat16)."""
    A = np.asarray(A)
    if A.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got an array of shape {A.shape}")
    if A.dtype not in _NATIVE and not (emulated and emulated_name(A.dtype)):
        extra = "/float16/bfloat16 (emulated)" if emulated else ""
        raise TypeError(
            f"{who} compute in float32/float64/complex64/complex128{extra}, not {A.dtype}"
        )
    m, n = A.shape
    if square and m != n:
        raise ValueError(f"expected a square matrix, got shape {A.shape}")
    if tall and m < n:
        raise ValueError(f"expected m >= n, got shape {A.shape}")
    return A


def rhs_vector(A, b, dtype=None):
    """A copy of ``b`` as an (m,) vector in ``dtype`` (default A's; a one-column
    2-D b is accepted)."""
    b = np.asarray(b)
    if b.ndim == 2 and b.shape[1] == 1:
        b = b[:, 0]
    if b.shape != (A.shape[0],):
        raise ValueError(f"b has shape {b.shape}, expected ({A.shape[0]},)")
    if np.iscomplexobj(b) and not np.iscomplexobj(A):
        raise TypeError("complex right-hand side for a real matrix")
    return b.astype(A.dtype if dtype is None else dtype, copy=True)


def _unit_roundoff(dtype):
    """u = eps / 2 of ``dtype`` as a scalar of its real dtype."""
    eps = np.finfo(dtype).eps
    return eps / eps.dtype.type(2)


# --------------------------------------------------------------------------- LU


def lu_inplace(W, pivoting, track_growth=True, rnd=_identity):
    """Right-looking (outer-product) Gaussian elimination, overwriting ``W``.

    Parameters
    ----------
    W : ndarray (n, n)
        Overwritten with the unit lower L below the diagonal and U on and above.
    pivoting : {"partial", "complete", "none"}
    track_growth : bool
        Track max |a_ij^(k)| over every active submatrix (Higham 2002, eq. 9.6).
    rnd : callable
        Rounding to an emulated format: applied to the multipliers (each
        quotient rounded) and to the rank-1 update of the trailing matrix
        (each ``a_ij - l_ik u_kj`` formed in float32, one FMA, and rounded),
        so W holds values of the format after every step and the growth is
        tracked on those chopped intermediates.

    Returns
    -------
    perm : ndarray (n,) of intp
        Row permutation: ``A[perm][:, q] = L U``.
    q : ndarray (n,) of intp or None
        Column permutation (complete pivoting only).
    growth : float or None
        max_k max|A^(k)| / max|A|; NaN/Inf propagate after a breakdown.
    """
    n = W.shape[0]
    perm = np.arange(n)
    q = np.arange(n) if pivoting == "complete" else None
    amax = gmax = np.max(np.abs(W)) if n else W.real.dtype.type(0)
    for k in range(n):
        S = None
        if track_growth or pivoting == "complete":
            # |A^(k)|, the active Schur complement: one pass serves both the
            # growth bound and the complete-pivoting search.
            S = np.abs(W[k:, k:])
            smax = np.max(S)
            if not smax <= gmax:  # also catches NaN so a breakdown shows
                gmax = smax
        if pivoting == "partial":
            col = S[:, 0] if S is not None else np.abs(W[k:, k])
            p = k + int(np.argmax(col))
        elif pivoting == "complete":
            i, j = divmod(int(np.argmax(S)), n - k)
            p = k + i
            if j:
                W[:, [k, k + j]] = W[:, [k + j, k]]
                q[[k, k + j]] = q[[k + j, k]]
        else:
            p = k
        if p != k:
            W[[k, p]] = W[[p, k]]
            perm[[k, p]] = perm[[p, k]]
        if k == n - 1:
            break
        piv = W[k, k]
        # With pivoting a zero pivot means the whole column below is zero
        # (singular A): skipping the step keeps A[p] = LU exact, as xGETF2
        # does.  Without pivoting the division is done so that a breakdown
        # shows as Inf/NaN in the factors.
        if piv != 0 or pivoting == "none":
            W[k + 1 :, k] = rnd(W[k + 1 :, k] / piv)
            W[k + 1 :, k + 1 :] = rnd(W[k + 1 :, k + 1 :] - np.outer(W[k + 1 :, k], W[k, k + 1 :]))
    # The zero matrix has exact factors (L = I, U = 0) and nothing grew: 0/0
    # counts as 0, the metrics' (LAPACK TESTING's) convention, not a NaN
    # that would fail an exact cell.
    growth = _div(float(gmax), float(amax)) if track_growth else None
    return perm, q, growth


def lu_factors(W):
    """Split a combined LU array into L (unit lower) and U (upper), exactly triangular."""
    L = np.tril(W, -1)
    np.fill_diagonal(L, 1)
    return L, np.triu(W)


# ------------------------------------------------------------ triangular solves


def solve_lower(L, B, unit=False, rnd=_identity):
    """Solve ``L X = B``, row-oriented forward substitution (GVL 2013, Alg. 3.1.1).

    Reads only the lower triangle of ``L`` (and not its diagonal when
    ``unit``).  ``B`` is (n,) or (n, k); X is returned with B's shape, and B
    is overwritten with it when B is contiguous.  ``rnd`` (emulated formats)
    rounds ``b_i - l_i^T x`` once per row (dot product accumulated in
    float32) and each quotient by the diagonal.
    """
    n = L.shape[0]
    X = B.reshape(n, -1)
    for i in range(n):
        X[i] = rnd(X[i] - L[i, :i] @ X[:i])
        if not unit:
            X[i] = rnd(X[i] / L[i, i])
    return X.reshape(B.shape)


def solve_upper(U, B, rnd=_identity):
    """Solve ``U X = B``, row-oriented back substitution (GVL 2013, Alg. 3.1.2).

    Reads only the upper triangle of ``U``; ``B`` and ``rnd`` as for
    :func:`solve_lower`.
    """
    n = U.shape[0]
    X = B.reshape(n, -1)
    for i in range(n - 1, -1, -1):
        X[i] = rnd(X[i] - U[i, i + 1 :] @ X[i + 1 :])
        X[i] = rnd(X[i] / U[i, i])
    return X.reshape(B.shape)


def solve_right_upper(A, R, rnd=_identity):
    """X with ``X R = A`` for upper triangular R: Q = A R^{-1} without forming R^{-1}."""
    # X R = A  <=>  R^T X^T = A^T: a forward substitution on rows of X^T.
    XT = solve_lower(R.T, A.T.copy(), rnd=rnd)
    return np.ascontiguousarray(XT.T)


# -------------------------------------------------------------------- Cholesky


def cholesky_lower(A, rnd=_identity):
    """Gaxpy (left-looking) Cholesky, A = L L^H, reading only the lower triangle.

    GVL 2013, Alg. 4.2.1; LAPACK xPOTF2 (uplo='L').  Raises
    ``numpy.linalg.LinAlgError`` at the first pivot that is not real and
    positive (also for NaN), naming its 0-based index.  ``rnd`` (emulated
    formats) rounds the pivot ``a_jj - l_j^H l_j`` once (dot product
    accumulated in float32), its square root, the column update
    ``a_{j+1:,j} - L l_j`` once (matrix-vector product accumulated in
    float32) and each quotient by ``l_jj``.
    """
    n = A.shape[0]
    L = np.zeros_like(A)
    cplx = np.iscomplexobj(A)
    tol = n * _unit_roundoff(A.dtype)
    for j in range(n):
        ajj = A[j, j]
        lj = L[j, :j]
        # The diagonal is formed in real arithmetic: |l|^2 has no imaginary
        # part, while a complex dot product with FMA can leave a rounding-level one.
        d = rnd(ajj.real - np.vdot(lj, lj).real)
        if cplx and abs(ajj.imag) > tol * abs(ajj.real):
            raise np.linalg.LinAlgError(
                f"matrix is not positive definite: pivot k = {j} is not real ({ajj})"
            )
        if not d > 0:
            raise np.linalg.LinAlgError(
                f"matrix is not positive definite: pivot k = {j} is {d} (0-based)"
            )
        ljj = rnd(np.sqrt(d))
        L[j, j] = ljj
        if j + 1 < n:
            L[j + 1 :, j] = rnd(rnd(A[j + 1 :, j] - L[j + 1 :, :j] @ lj.conj()) / ljj)
    return L


# ------------------------------------------------------------------ Householder


def house(x, rnd=_identity):
    """Householder reflector in LAPACK's xLARFG convention.

    Returns ``(v, tau, beta)`` with v[0] = 1, beta real and
    ``H^H x = beta e_1`` for ``H = I - tau v v^H`` (real: tau in [1, 2] or 0).
    For complex x the choice beta real makes diag(R) real, as in zgeqrf;
    ``tau = 0`` (H = I) when x is already a real multiple of e_1.
    ``rnd`` (emulated formats) rounds the norm of x[1:] once (accumulated in
    float32), beta, tau, alpha - beta and each entry of v.
    """
    alpha = x[0]
    xnorm = rnd(np.linalg.norm(x[1:]))
    v = np.zeros_like(x)
    v[0] = 1
    if xnorm == 0 and alpha.imag == 0:
        return v, x.dtype.type(0), alpha.real
    # beta takes the sign opposite to Re(alpha) so that alpha - beta does not cancel.
    beta = rnd(-np.copysign(np.hypot(np.abs(alpha), xnorm), alpha.real))
    tau = rnd((beta - alpha) / beta)
    v[1:] = rnd(x[1:] / rnd(alpha - beta))
    return v, tau, beta


def householder_inplace(W, pivot=False, rnd=_identity):
    """Householder QR of W (m >= n), overwriting it LAPACK-style.

    GVL 2013, Alg. 5.2.1 (pivot=False) and Alg. 5.4.1 (pivot=True,
    Businger-Golub) with the column-norm downdating of LAPACK xLAQP2 and the
    recomputation safeguard of Drmac & Bujanovic (LAPACK Working Note 176).

    Returns ``(tau, perm)``: R is on and above the diagonal of W, the
    essential part of each Householder vector below it; ``W[:, perm]`` is
    what was factored (identity without pivoting).  ``rnd`` (emulated
    formats, no pivoting) rounds inside :func:`house` and, applying H^H to
    the trailing columns, ``w = conj(tau) v^H C`` (each dot product
    accumulated in float32, rounded, then scaled and rounded) and the
    rank-1 update ``C - v w`` (each entry rounded).
    """
    m, n = W.shape
    k = min(m, n)
    tau = np.zeros(k, dtype=W.dtype)
    perm = np.arange(n)
    if pivot:
        vn1 = np.linalg.norm(W, axis=0)
        vn2 = vn1.copy()
        tol3z = np.sqrt(_unit_roundoff(W.dtype))
    for i in range(k):
        if pivot:
            p = i + int(np.argmax(vn1[i:]))
            if p != i:
                W[:, [i, p]] = W[:, [p, i]]
                perm[[i, p]] = perm[[p, i]]
                vn1[[i, p]] = vn1[[p, i]]
                vn2[[i, p]] = vn2[[p, i]]
        v, t, beta = house(W[i:, i], rnd)
        W[i, i] = beta
        W[i + 1 :, i] = v[1:]
        tau[i] = t
        if i + 1 < n and t != 0:
            C = W[i:, i + 1 :]
            if rnd is _identity:
                C -= np.outer(np.conj(t) * v, v.conj() @ C)  # H^H C
            else:
                C[...] = rnd(C - np.outer(v, rnd(t * rnd(v @ C))))
        if pivot and i + 1 < n:
            _downdate_norms(W, i, vn1, vn2, tol3z)
    return tau, perm


def _downdate_norms(W, i, vn1, vn2, tol3z):
    """Update the trailing column norms after step i (xLAQP2, LAWN 176)."""
    js = i + 1 + np.flatnonzero(vn1[i + 1 :])
    if js.size == 0:
        return
    temp = np.maximum(1 - (np.abs(W[i, js]) / vn1[js]) ** 2, 0)
    # vn2 holds the last norm computed from scratch; when the downdated norm
    # has lost about half its digits relative to it (temp2 <= sqrt(u)), the
    # downdate formula can no longer be trusted and the norm is recomputed.
    temp2 = temp * (vn1[js] / vn2[js]) ** 2
    redo = temp2 <= tol3z
    keep = js[~redo]
    vn1[keep] *= np.sqrt(temp[~redo])
    again = js[redo]
    if again.size:
        vn1[again] = np.linalg.norm(W[i + 1 :, again], axis=0)
        vn2[again] = vn1[again]


def householder_vector(W, i):
    """The i-th Householder vector (with its implicit leading 1) from a factored W."""
    v = W[i:, i].copy()
    v[0] = 1
    return v


def form_q(W, tau, rnd=_identity):
    """Thin Q = H_1 ... H_n [I_n; 0] by backward accumulation (GVL 2013, §5.1.6).

    LAPACK xORG2R / xUNG2R.  Backward order keeps every update to the
    trailing block Q[i:, i:], which is where the product is not yet the identity.
    ``rnd`` (emulated formats) rounds as the application in
    :func:`householder_inplace`.
    """
    m, n = W.shape
    Q = np.eye(m, n, dtype=W.dtype)
    for i in range(n - 1, -1, -1):
        if tau[i] == 0:
            continue
        v = householder_vector(W, i)
        C = Q[i:, i:]
        if rnd is _identity:
            C -= np.outer(tau[i] * v, v.conj() @ C)
        else:
            C[...] = rnd(C - np.outer(v, rnd(tau[i] * rnd(v @ C))))
    return Q


def apply_qh(W, tau, b):
    """Overwrite b with Q^H b using the stored reflectors (Trefethen & Bau, Alg. 10.2)."""
    for i in range(tau.shape[0]):
        if tau[i] == 0:
            continue
        v = householder_vector(W, i)
        b[i:] -= (np.conj(tau[i]) * (v.conj() @ b[i:])) * v
    return b


# ----------------------------------------------------------------------- Givens


def givens(f, g):
    """Rotation ``[[c, s], [-conj(s), c]] @ [f, g] = [r, 0]`` with c real (xLARTG)."""
    real = f.real.dtype.type
    if g == 0:
        return real(1), f.dtype.type(0), f
    if f == 0:
        ag = np.abs(g)
        return real(0), np.conj(g) / ag, f.dtype.type(ag)
    af = np.abs(f)
    nrm = np.hypot(af, np.abs(g))
    phase = f / af
    return af / nrm, phase * np.conj(g) / nrm, phase * nrm
