"""SciPy/LAPACK drivers: backend "scipy", family "library".

Every impl is one LAPACK driver reached through SciPy and registered with
``layout="F"``: the harness hands a fresh Fortran-ordered copy of the matrix
in the working precision each call, so the drivers work in place
(``overwrite_a=True``, A is destroyed) without the transpose-copy f2py makes
for C-ordered input.  The harness validates finiteness itself
(``check_finite=False``).  Right-hand sides are never overwritten: the
metrics read ``b`` afterwards.

Precision: the LAPACK prefix (s, d, c, z) is picked from ``A`` alone and ``b``
is cast to it, so results come back in the working dtype (s and w in its
real counterpart); any other dtype is refused with TypeError, never upcast.

Failures: ``info > 0`` (not positive definite, exactly singular, no
convergence) raises :class:`numpy.linalg.LinAlgError` naming the routine, with
``info`` where the driver is called directly (SciPy's wrappers raise without
it).  The exception is LU: xGETRF with ``info > 0`` has completed a valid
factorization with an exactly zero pivot; it is returned
(``extras["info"]``) for the metrics to judge.  OpenBLAS xPOTRF returns
``info = 0`` on NaN input; the harness validates input, so that is harmless.

Measured (2-core reference machine, OpenBLAS, float64, n = 2048, minimum of
15 interleaved runs): xGETRF alone 66 ms on Fortran order, 99 ms on C order;
xGETRF + the unpacking below 74 ms (split 4.8 ms, ipiv -> perm 0.3 ms);
``scipy.linalg.lu(p_indices=True)`` 189 ms (it copies to C order and returns
``A = L[p] @ U``, the inverse convention); ``np.tril``/``np.triu`` unpacking
70 ms alone.  Hence xGETRF is called directly and split column by column.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
from numpy.linalg import LinAlgError
from scipy.linalg import get_lapack_funcs

from factorbench.impls import NATIVE_COMPLEX, NATIVE_REAL, register
from factorbench.impls.results import LU, QR, QRCP, SVD, Cholesky, Eigh, Lstsq, Solve

__all__ = [
    "lu_getrf", "cholesky_potrf", "qr_geqrf", "qrcp_geqp3", "svd_gesdd", "svd_gesvd",
    "eigh_syevd", "eigh_syevr", "solve_gesv", "solve_posv", "lstsq_gelsd", "lstsq_gelsy",
    "lstsq_gels", "lowrank_gesdd",
]

_PREFIX = {"f": "s", "d": "d", "F": "c", "D": "z"}


def _lib(op, name, **kw):
    return register(op, name, backend="scipy", family="library",
                    dtypes=NATIVE_REAL + NATIVE_COMPLEX, layout="F", **kw)


def _routine(A, real: str, cplx: str | None = None) -> str:
    """LAPACK name for A's precision (``dgetrf``, ``cheevd``); TypeError if none."""
    char = np.dtype(A.dtype).char
    if char not in _PREFIX:
        raise TypeError(f"LAPACK has no routine for {A.dtype}; give float32/64 or complex64/128")
    return _PREFIX[char] + (cplx if cplx and char in "FD" else real)


def _driver(A, name: str):
    """(routine name, f2py function) for A's precision; the prefix follows A only."""
    return _routine(A, name), get_lapack_funcs((name,), (A,))[0]


def _check(routine: str, info: int, what: str) -> None:
    if info > 0:
        raise LinAlgError(f"{routine} failed (info={info}): {what.format(info=info)}")
    if info < 0:
        raise ValueError(f"{routine}: illegal value in argument {-info}")


def _scipy(routine: str, func, *args, **kwargs):
    """Call a SciPy wrapper; its LinAlgError is re-raised naming the LAPACK routine."""
    try:
        return func(*args, overwrite_a=True, check_finite=False, **kwargs)
    except LinAlgError as exc:
        raise LinAlgError(f"{routine} failed: {exc}") from exc


def _rhs(A, b) -> np.ndarray:
    """``b`` as a 1-D array in A's precision; a complex b for a real A is refused."""
    b = np.asarray(b)
    if b.dtype.kind == "c" and A.dtype.kind != "c":
        raise TypeError(f"complex right-hand side for a real {A.dtype} matrix")
    return b.astype(A.dtype, copy=False).reshape(-1)


def _lwork(routine: str, *args) -> int:
    """Optimal workspace from ``<routine>_lwork``, rounded up.

    Single precision returns the size in a float32, which can round a large
    size down; the factor covers that (SciPy's private ``_compute_lwork`` fix).
    """
    work, info = getattr(sla.lapack, routine + "_lwork")(*args)
    _check(routine + "_lwork", info, "workspace query")
    return int(float(np.real(work)) * (1 + 2.0**-20)) + 1


def _ipiv_to_perm(piv) -> np.ndarray:
    """0-based LAPACK interchanges (row i <-> piv[i], in order) -> perm, A[perm] = L U."""
    p = list(range(len(piv)))
    for i, j in enumerate(piv.tolist()):
        p[i], p[j] = p[j], p[i]
    return np.array(p, dtype=np.intp)


def _split_lu(lu):
    """Split xGETRF's packed square factor: (L unit lower, in lu's storage; U new).

    Column slices are contiguous in Fortran order (xGETRF's output), so the
    loop costs memory traffic only.  Both come out exactly triangular.
    """
    n = lu.shape[0]
    U = np.zeros((n, n), dtype=lu.dtype, order="F")
    for j in range(n):
        col = lu[: j + 1, j]
        U[: j + 1, j] = col
        col[:] = 0
    np.fill_diagonal(lu, 1)
    return lu, U


@_lib("lu", "lapack")
def lu_getrf(A) -> LU:
    """LU with partial pivoting: LAPACK xGETRF, called directly.

    Parameters
    ----------
    A : (n, n) array, overwritten (its storage becomes L).

    Returns
    -------
    LU
        perm (n,) intp, L unit lower, U upper with ``A[perm] = L @ U``.
        ``extras["info"] > 0``: ``U[info-1, info-1]`` is exactly zero (still returned).

    References
    ----------
    Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed. (2002), ch. 9.
    """
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"lu/lapack needs a square matrix, got shape {A.shape}")
    routine, getrf = _driver(A, "getrf")
    lu, piv, info = getrf(A, overwrite_a=True)
    _check(routine, min(info, 0), "")
    L, U = _split_lu(lu)
    return LU(_ipiv_to_perm(piv), L, U, extras={"info": int(info)})


@_lib("cholesky", "lapack")
def cholesky_potrf(A) -> Cholesky:
    """Cholesky ``A = L L^H``: LAPACK xPOTRF (lower), called directly.

    Parameters
    ----------
    A : (n, n) SPD/HPD array, overwritten; only its lower triangle is read.

    Returns
    -------
    Cholesky
        L (n, n) lower, exact zeros above the diagonal.

    Raises
    ------
    LinAlgError
        info > 0: the leading minor of that order is not positive definite.

    References
    ----------
    Higham (2002), ch. 10.
    """
    routine, potrf = _driver(A, "potrf")
    L, info = potrf(A, lower=True, clean=True, overwrite_a=True)
    _check(routine, info, "leading minor of order {info} is not positive definite")
    return Cholesky(L)


@_lib("qr", "lapack")
def qr_geqrf(A) -> QR:
    """Thin Householder QR: xGEQRF + xORGQR/xUNGQR via ``scipy.linalg.qr``.

    Parameters
    ----------
    A : (m, n) array, m >= n, overwritten.

    Returns
    -------
    QR
        Q (m, n) orthonormal columns, R (n, n) upper.

    References
    ----------
    Schreiber & Van Loan, SIAM J. Sci. Stat. Comput. 10 (1989); Higham (2002), ch. 19.
    """
    return QR(*_scipy(_routine(A, "geqrf"), sla.qr, A, mode="economic"))


@_lib("qrcp", "lapack")
def qrcp_geqp3(A) -> QRCP:
    """QR with column pivoting: xGEQP3 + xORGQR/xUNGQR via ``scipy.linalg.qr``.

    Parameters
    ----------
    A : (m, n) array, m >= n, overwritten.

    Returns
    -------
    QRCP
        Q (m, n), R (n, n) upper with non-increasing ``|R_ii|``, perm (n,),
        ``A[:, perm] = Q @ R``.

    References
    ----------
    Quintana-Orti, Sun & Bischof, SIAM J. Sci. Comput. 19 (1998).
    """
    return QRCP(*_scipy(_routine(A, "geqp3"), sla.qr, A, mode="economic", pivoting=True))


def _svd(A, driver: str):
    return _scipy(_routine(A, driver), sla.svd, A, full_matrices=False, lapack_driver=driver)


@_lib("svd", "gesdd")
def svd_gesdd(A) -> SVD:
    """Thin SVD by divide and conquer: xGESDD via ``scipy.linalg.svd``.

    Parameters
    ----------
    A : (m, n) array, overwritten.

    Returns
    -------
    SVD
        U (m, k), s (k,) descending (real dtype), Vh (k, n), k = min(m, n).

    Raises
    ------
    LinAlgError
        No convergence (info > 0).

    References
    ----------
    Gu & Eisenstat, SIAM J. Matrix Anal. Appl. 16 (1995).
    """
    return SVD(*_svd(A, "gesdd"))


@_lib("svd", "gesvd")
def svd_gesvd(A) -> SVD:
    """Thin SVD by bidiagonal QR iteration: xGESVD via ``scipy.linalg.svd``.

    Parameters, returns and raises as :func:`svd_gesdd`.

    References
    ----------
    Demmel & Kahan, SIAM J. Sci. Stat. Comput. 11 (1990).
    """
    return SVD(*_svd(A, "gesvd"))


def _eigh(A, driver: str) -> Eigh:
    routine = _routine(A, "sy" + driver, "he" + driver)
    return Eigh(*_scipy(routine, sla.eigh, A, lower=True, driver=driver))


@_lib("eigh", "syevd")
def eigh_syevd(A) -> Eigh:
    """Symmetric/Hermitian eigensolver, divide and conquer: xSYEVD/xHEEVD.

    Via ``scipy.linalg.eigh(driver="evd")``, lower triangle.

    Parameters
    ----------
    A : (n, n) symmetric/Hermitian array, overwritten.

    Returns
    -------
    Eigh
        w (n,) ascending (real dtype), V (n, n) orthonormal, ``A V = V diag(w)``.

    References
    ----------
    Cuppen, Numer. Math. 36 (1981); Gu & Eisenstat, SIAM J. Matrix Anal. Appl. 16 (1995).
    """
    return _eigh(A, "evd")


@_lib("eigh", "syevr")
def eigh_syevr(A) -> Eigh:
    """Symmetric/Hermitian eigensolver, MRRR: xSYEVR/xHEEVR.

    Via ``scipy.linalg.eigh(driver="evr")``; parameters and returns as
    :func:`eigh_syevd`.

    References
    ----------
    Dhillon, Parlett & Voemel, ACM TOMS 32 (2006).
    """
    return _eigh(A, "evr")


@_lib("solve", "gesv")
def solve_gesv(A, b) -> Solve:
    """Square solve by LU with partial pivoting: LAPACK xGESV, called directly.

    Parameters
    ----------
    A : (n, n) array, overwritten by its LU factors.
    b : (n,) array, not modified.

    Returns
    -------
    Solve
        x (n,).

    Raises
    ------
    LinAlgError
        info > 0: ``U[info-1, info-1]`` is exactly zero; no solution computed.
    """
    routine, gesv = _driver(A, "gesv")
    _, _, x, info = gesv(A, _rhs(A, b), overwrite_a=True)
    _check(routine, info, "U({info},{info}) is exactly zero, A is singular")
    return Solve(x)


@_lib("solve", "posv", structure="spd")
def solve_posv(A, b) -> Solve:
    """SPD/HPD solve by Cholesky: LAPACK xPOSV (lower), called directly.

    Parameters
    ----------
    A : (n, n) SPD/HPD array, overwritten by its Cholesky factor.
    b : (n,) array, not modified.

    Returns
    -------
    Solve
        x (n,).

    Raises
    ------
    LinAlgError
        info > 0: the leading minor of that order is not positive definite.
    """
    routine, posv = _driver(A, "posv")
    _, x, info = posv(A, _rhs(A, b), lower=True, overwrite_a=True)
    _check(routine, info, "leading minor of order {info} is not positive definite")
    return Solve(x)


def _lstsq(A, b, driver: str) -> Lstsq:
    x, _, rank, _ = _scipy(_routine(A, driver), sla.lstsq, A, _rhs(A, b), lapack_driver=driver)
    return Lstsq(x, extras={"rank": int(rank)})


@_lib("lstsq", "gelsd")
def lstsq_gelsd(A, b) -> Lstsq:
    """Least squares by divide-and-conquer SVD: xGELSD via ``scipy.linalg.lstsq``.

    Parameters
    ----------
    A : (m, n) array, overwritten.
    b : (m,) array, not modified.

    Returns
    -------
    Lstsq
        x (n,), minimum-norm solution with singular values below ``eps s_1``
        dropped; ``extras["rank"]`` the effective rank.
    """
    return _lstsq(A, b, "gelsd")


@_lib("lstsq", "gelsy")
def lstsq_gelsy(A, b) -> Lstsq:
    """Least squares by complete orthogonal factorization: xGELSY via ``scipy.linalg.lstsq``.

    QRCP (xGEQP3) then an RZ step on the rank-deficient part; parameters and
    returns as :func:`lstsq_gelsd`.

    References
    ----------
    Quintana-Orti, Sun & Bischof, SIAM J. Sci. Comput. 19 (1998).
    """
    return _lstsq(A, b, "gelsy")


@_lib("lstsq", "gels")
def lstsq_gels(A, b) -> Lstsq:
    """Least squares by Householder QR: LAPACK xGELS, called directly.

    Parameters
    ----------
    A : (m, n) array of full column rank, m >= n, overwritten.
    b : (m,) array, not modified.

    Returns
    -------
    Lstsq
        x (n,).

    Raises
    ------
    LinAlgError
        info > 0: ``R[info-1, info-1]`` is exactly zero.  xGELS detects exact
        zeros only; a numerically rank-deficient A gives a huge x that the
        forward-error metric flags.
    """
    routine, gels = _driver(A, "gels")
    m, n = A.shape
    rhs = np.zeros((max(m, n), 1), dtype=A.dtype, order="F")
    rhs[:m, 0] = _rhs(A, b)
    _, x, info = gels(A, rhs, lwork=_lwork(routine, m, n, 1), overwrite_a=True,
                      overwrite_b=True)
    _check(routine, info, "R({info},{info}) is exactly zero, A is rank deficient")
    return Lstsq(x[:n, 0])


@_lib("lowrank", "gesdd")
def lowrank_gesdd(A, k, rng=None) -> SVD:
    """Rank-k truncation of the thin SVD by xGESDD: the optimal (Eckart-Young) baseline.

    Parameters
    ----------
    A : (m, n) array, overwritten.
    k : int, 1 <= k <= min(m, n).
    rng : unused; the method is deterministic.

    Returns
    -------
    SVD
        U (m, k), s (k,) descending, Vh (k, n).

    References
    ----------
    Eckart & Young, Psychometrika 1 (1936).
    """
    k = int(k)
    if not 1 <= k <= min(A.shape):
        raise ValueError(f"k must be in 1..{min(A.shape)}, got {k}")
    U, s, Vh = _svd(A, "gesdd")
    return SVD(U[:, :k], s[:k], Vh[:k])
