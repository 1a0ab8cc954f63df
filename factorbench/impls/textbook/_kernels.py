"""Kernels shared by the textbook implementations.

Every kernel computes in the dtype of the array it is given: scalars are
NumPy scalars of that dtype (or its real counterpart), never Python floats
computed in double, so a float32 cell is a float32 computation throughout.
Each kernel loops over the elimination step in Python and does the work of a
step with one or two BLAS-1/2 NumPy operations.
"""

from __future__ import annotations

import numpy as np

from factorbench.accuracy.metrics import _div
from factorbench.accuracy.precision import NATIVE_COMPLEX, NATIVE_REAL

_NATIVE = frozenset(np.dtype(d) for d in NATIVE_REAL + NATIVE_COMPLEX)


def working(A, *, square=False, tall=False, who="textbook impls"):
    """Validate ``A`` as a 2-D array in a native working precision (no copy);
    ``who`` names the impls in the dtype error."""
    A = np.asarray(A)
    if A.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got an array of shape {A.shape}")
    if A.dtype not in _NATIVE:
        raise TypeError(
            f"{who} compute in float32/float64/complex64/complex128, not {A.dtype}"
        )
    m, n = A.shape
    if square and m != n:
        raise ValueError(f"expected a square matrix, got shape {A.shape}")
    if tall and m < n:
        raise ValueError(f"expected m >= n, got shape {A.shape}")
    return A


def rhs_vector(A, b):
    """A copy of ``b`` as an (m,) vector in A's dtype (a one-column 2-D b is accepted)."""
    b = np.asarray(b)
    if b.ndim == 2 and b.shape[1] == 1:
        b = b[:, 0]
    if b.shape != (A.shape[0],):
        raise ValueError(f"b has shape {b.shape}, expected ({A.shape[0]},)")
    if np.iscomplexobj(b) and not np.iscomplexobj(A):
        raise TypeError("complex right-hand side for a real matrix")
    return b.astype(A.dtype, copy=True)


def _unit_roundoff(dtype):
    """u = eps / 2 of ``dtype`` as a scalar of its real dtype."""
    eps = np.finfo(dtype).eps
    return eps / eps.dtype.type(2)


# --------------------------------------------------------------------------- LU


def lu_inplace(W, pivoting, track_growth=True):
    """Right-looking (outer-product) Gaussian elimination, overwriting ``W``.

    Parameters
    ----------
    W : ndarray (n, n)
        Overwritten with the unit lower L below the diagonal and U on and above.
    pivoting : {"partial", "complete", "none"}
    track_growth : bool
        Track max |a_ij^(k)| over every active submatrix (Higham 2002, eq. 9.6).

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
            W[k + 1 :, k] /= piv
            W[k + 1 :, k + 1 :] -= np.outer(W[k + 1 :, k], W[k, k + 1 :])
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


def solve_lower(L, B, unit=False):
    """Solve ``L X = B``, row-oriented forward substitution (GVL 2013, Alg. 3.1.1).

    Reads only the lower triangle of ``L`` (and not its diagonal when
    ``unit``).  ``B`` is (n,) or (n, k); X is returned with B's shape, and B
    is overwritten with it when B is contiguous.
    """
    n = L.shape[0]
    X = B.reshape(n, -1)
    for i in range(n):
        X[i] -= L[i, :i] @ X[:i]
        if not unit:
            X[i] /= L[i, i]
    return X.reshape(B.shape)


def solve_upper(U, B):
    """Solve ``U X = B``, row-oriented back substitution (GVL 2013, Alg. 3.1.2).

    Reads only the upper triangle of ``U``; ``B`` as for :func:`solve_lower`.
    """
    n = U.shape[0]
    X = B.reshape(n, -1)
    for i in range(n - 1, -1, -1):
        X[i] -= U[i, i + 1 :] @ X[i + 1 :]
        X[i] /= U[i, i]
    return X.reshape(B.shape)


def solve_right_upper(A, R):
    """X with ``X R = A`` for upper triangular R: Q = A R^{-1} without forming R^{-1}."""
    # X R = A  <=>  R^T X^T = A^T: a forward substitution on rows of X^T.
    XT = solve_lower(R.T, A.T.copy())
    return np.ascontiguousarray(XT.T)


# -------------------------------------------------------------------- Cholesky


def cholesky_lower(A):
    """Gaxpy (left-looking) Cholesky, A = L L^H, reading only the lower triangle.

    GVL 2013, Alg. 4.2.1; LAPACK xPOTF2 (uplo='L').  Raises
    ``numpy.linalg.LinAlgError`` at the first pivot that is not real and
    positive (also for NaN), naming its 0-based index.
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
        d = ajj.real - np.vdot(lj, lj).real
        if cplx and abs(ajj.imag) > tol * abs(ajj.real):
            raise np.linalg.LinAlgError(
                f"matrix is not positive definite: pivot k = {j} is not real ({ajj})"
            )
        if not d > 0:
            raise np.linalg.LinAlgError(
                f"matrix is not positive definite: pivot k = {j} is {d} (0-based)"
            )
        ljj = np.sqrt(d)
        L[j, j] = ljj
        if j + 1 < n:
            L[j + 1 :, j] = (A[j + 1 :, j] - L[j + 1 :, :j] @ lj.conj()) / ljj
    return L


# ------------------------------------------------------------------ Householder


def house(x):
    """Householder reflector in LAPACK's xLARFG convention.

    Returns ``(v, tau, beta)`` with v[0] = 1, beta real and
    ``H^H x = beta e_1`` for ``H = I - tau v v^H`` (real: tau in [1, 2] or 0).
    For complex x the choice beta real makes diag(R) real, as in zgeqrf;
    ``tau = 0`` (H = I) when x is already a real multiple of e_1.
    """
    alpha = x[0]
    xnorm = np.linalg.norm(x[1:])
    v = np.zeros_like(x)
    v[0] = 1
    if xnorm == 0 and alpha.imag == 0:
        return v, x.dtype.type(0), alpha.real
    # beta takes the sign opposite to Re(alpha) so that alpha - beta does not cancel.
    beta = -np.copysign(np.hypot(np.abs(alpha), xnorm), alpha.real)
    tau = (beta - alpha) / beta
    v[1:] = x[1:] / (alpha - beta)
    return v, tau, beta


def householder_inplace(W, pivot=False):
    """Householder QR of W (m >= n), overwriting it LAPACK-style.

    GVL 2013, Alg. 5.2.1 (pivot=False) and Alg. 5.4.1 (pivot=True,
    Businger-Golub) with the column-norm downdating of LAPACK xLAQP2 and the
    recomputation safeguard of Drmac & Bujanovic (LAPACK Working Note 176).

    Returns ``(tau, perm)``: R is on and above the diagonal of W, the
    essential part of each Householder vector below it; ``W[:, perm]`` is
    what was factored (identity without pivoting).
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
        v, t, beta = house(W[i:, i])
        W[i, i] = beta
        W[i + 1 :, i] = v[1:]
        tau[i] = t
        if i + 1 < n and t != 0:
            C = W[i:, i + 1 :]
            C -= np.outer(np.conj(t) * v, v.conj() @ C)  # H^H C
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


def form_q(W, tau):
    """Thin Q = H_1 ... H_n [I_n; 0] by backward accumulation (GVL 2013, §5.1.6).

    LAPACK xORG2R / xUNG2R.  Backward order keeps every update to the
    trailing block Q[i:, i:], which is where the product is not yet the identity.
    """
    m, n = W.shape
    Q = np.eye(m, n, dtype=W.dtype)
    for i in range(n - 1, -1, -1):
        if tau[i] == 0:
            continue
        v = householder_vector(W, i)
        C = Q[i:, i:]
        C -= np.outer(tau[i] * v, v.conj() @ C)
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
