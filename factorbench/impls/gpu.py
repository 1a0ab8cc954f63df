"""CuPy on a CUDA GPU: the cuSOLVER drivers, and GPU twins of the array-API families.

Backend "cupy", device "gpu", ``requires=("cupy",)``.  CuPy is never imported
when this module is: each impl imports it when it is called, so without CuPy
or without a device every impl here is ``unavailable`` with the reason
(:meth:`factorbench.impls.Impl.availability`) and nothing else changes.

The harness hands each impl CuPy arrays already on the device, in the layout
it declares, copied outside the timed region, and copies the factors back to
the host after the call (:mod:`factorbench.device`); the impls return CuPy
arrays (an LU's permutation, computed on the host from cuSOLVER's pivots, is a
NumPy array).  Host (NumPy) input is accepted too and copied to the device
first, inside the call.

Drivers (family "library", float32, float64, complex64, complex128)::

    lu/cupy             cupyx.scipy.linalg.lu_factor    xgetrf
    cholesky/cupy       cupy.linalg.cholesky            xpotrf
    qr/cupy             cupy.linalg.qr                  xgeqrf + xorgqr/xungqr
    svd/cupy-gesvd      cupy.linalg.svd                 xgesvd (QR iteration)
    svd/cupy-gesvdj     cupyx.cusolver.gesvdj           xgesvdj (one-sided Jacobi)
    eigh/cupy           cupy.linalg.eigh                xsyevd (64-bit API)
    solve/cupy          cupyx.lapack.gesv               xgetrf + xgetrs
    lstsq/cupy          cupy.linalg.lstsq               xgesvd, then the pseudo-inverse
    lstsq/cupy-gels     cupyx.lapack.gels               xgeqrf + xormqr + cuBLAS xtrsm

CuPy exposes cuSOLVER's Jacobi SVD as ``gesvdj`` in its cuSOLVER module
(``cupyx.cusolver`` from CuPy 14, ``cupy.cusolver`` before); it is resolved at
call time.  ``cupy.linalg.svd`` itself runs xgesvd on 2-D input (it takes the
Jacobi kernel only for batches of matrices of order at most 32).

Failures: CuPy skips reading cuSOLVER's ``info`` by default (a device
synchronisation); the harness runs each cell's first call, the one whose
result is judged, under ``cupyx.errstate(linalg="raise")``, where
``cholesky``, ``qr``, ``svd``, ``gesvdj``, ``eigh``, ``gesv`` and ``gels``
raise ``LinAlgError`` on ``info != 0`` (not positive definite, no
convergence, exactly singular; ``qr`` and ``gels`` report only invalid
arguments, so rank deficiency shows in their factors instead).  ``lu_factor``
always reads its ``info`` and only warns on an exactly zero pivot, returning
the factorization; unlike LAPACK's xgetrf, which skips scaling by a zero pivot,
cuSOLVER may then leave Inf/NaN below it in L, so such a cell fails where
``lu/lapack`` passes.

GPU twins: every implementation of the blocked and randomized families is
written once against the array namespace (``array_api_compat``) and runs on
CuPy arrays unchanged, so each is registered a second time for the GPU, same
function and parameters, id ``<op>/<name>-cupy`` (:data:`TWINS`).  A twin
declares the native precisions of its CPU original only: the emulated
float16/bfloat16 arithmetic exists for NumPy input alone.

Choices where the contract was silent, and why:

* ``lstsq/cupy`` is CuPy's ``lstsq`` (``rcond=None``: singular values below
  ``max(m, n) eps s_1`` are dropped), the counterpart of NumPy's and of
  ``lstsq/gelsd``; ``lstsq/cupy-gels`` is the QR driver, the counterpart of
  ``lstsq/gels``.
* ``solve/cupy`` calls ``cupyx.lapack.gesv`` on the Fortran-ordered input
  (overwritten, as the LAPACK impls overwrite theirs) instead of
  ``cupy.linalg.solve``, which copies it first; ``b`` is copied (n entries).
* ``lu/cupy`` unpacks L and U on the device and turns the pivots into a
  permutation on the host (n integers copied back, one swap per row; the
  ``lu/lapack`` impl does the same on the CPU).

References
----------
NVIDIA, cuSOLVER library documentation, section "Dense Linear Algebra
(cuSolverDN)": getrf, getrs, potrf, geqrf, orgqr, gesvd, gesvdj, syevd.
CuPy documentation: ``cupy.linalg``, ``cupyx.scipy.linalg``, ``cupyx.lapack``,
``cupyx.errstate``.
"""

from __future__ import annotations

import importlib

import numpy as np

import factorbench.impls.blocked  # noqa: F401  (the twins' originals register here)
import factorbench.impls.randomized  # noqa: F401
from factorbench.impls import NATIVE_COMPLEX, NATIVE_REAL, register
from factorbench.impls.results import LU, QR, SVD, Cholesky, Eigh, Lstsq, Solve

__all__ = [
    "TWINS",
    "lu_getrf",
    "cholesky_potrf",
    "qr_geqrf",
    "svd_gesvd",
    "svd_gesvdj",
    "eigh_syevd",
    "solve_gesv",
    "lstsq_gelss",
    "lstsq_gels",
]

_NATIVE = NATIVE_REAL + NATIVE_COMPLEX

#: Array-API impls registered a second time, for the GPU, as ``<id>-cupy``.
TWINS = (
    "lu/blocked",
    "lu/recursive",
    "cholesky/blocked",
    "cholesky/recursive",
    "qr/blocked",
    "qr/tsqr",
    "qr/cholqr2-blocked",
    "qr/scholqr3",
    "qr/rand-cholqr",
    "qrcp/randomized",
    "lstsq/sketch-solve",
    "lstsq/sketch-precondition",
    "lowrank/rsvd",
    "lowrank/block-krylov",
    "lowrank/nystrom",
    "lowrank/adaptive",
)


def _gpu(op, name, **kw):
    return register(op, name, backend="cupy", family="library", device="gpu", dtypes=_NATIVE,
                    requires=("cupy",), **kw)


def _cupy():
    import cupy

    return cupy


def _on_device(cp, *arrays):
    """The arrays as CuPy arrays (no copy for those already on the device)."""
    return tuple(cp.asarray(a) for a in arrays)


def _square(A, who: str) -> None:
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"{who} needs a square matrix, got shape {tuple(A.shape)}")


def _ipiv_to_perm(piv) -> np.ndarray:
    """0-based LAPACK interchanges (row i <-> piv[i], in order) -> perm, ``A[perm] = L U``.

    A Python loop over a list: one swap per row, about 1 ms at n = 16384.
    """
    p = list(range(len(piv)))
    for i, j in enumerate(piv.tolist()):
        p[i], p[j] = p[j], p[i]
    return np.array(p, dtype=np.intp)


@_gpu("lu", "cupy", layout="F")
def lu_getrf(A) -> LU:
    """LU with partial pivoting on the GPU: cuSOLVER xgetrf via ``cupyx.scipy.linalg.lu_factor``.

    Parameters
    ----------
    A : (n, n) cupy.ndarray, Fortran order, overwritten (it becomes the packed factors).

    Returns
    -------
    LU
        perm (n,) NumPy intp (host), L (n, n) unit lower and U (n, n) upper
        (device), ``A[perm] = L @ U``.  An exactly zero pivot is returned, not
        raised (CuPy warns; xgetrf reports it with ``info > 0``), and L may
        then hold Inf/NaN (see the module docstring).

    References
    ----------
    cuSOLVER, ``cusolverDn<t>getrf``; Higham, Accuracy and Stability of
    Numerical Algorithms, 2nd ed. (2002), ch. 9.
    """
    cp = _cupy()
    from cupyx.scipy.linalg import lu_factor

    (A,) = _on_device(cp, A)
    _square(A, "lu/cupy")
    lu, ipiv = lu_factor(A, overwrite_a=True, check_finite=False)
    U = cp.triu(lu)
    L = cp.tril(lu, k=-1)
    cp.fill_diagonal(L, 1)
    return LU(_ipiv_to_perm(ipiv.get()), L, U)


@_gpu("cholesky", "cupy", layout="C")
def cholesky_potrf(A) -> Cholesky:
    """Cholesky ``A = L L^H`` on the GPU: cuSOLVER xpotrf via ``cupy.linalg.cholesky``.

    Parameters
    ----------
    A : (n, n) cupy.ndarray, SPD/HPD (CuPy copies it; left unchanged).

    Returns
    -------
    Cholesky
        L (n, n) lower triangular, exact zeros above the diagonal.

    Raises
    ------
    numpy.linalg.LinAlgError
        Under ``cupyx.errstate(linalg="raise")``, when A is not positive
        definite (xpotrf ``info > 0``); without it CuPy returns the partial,
        meaningless factor.
    """
    cp = _cupy()
    (A,) = _on_device(cp, A)
    _square(A, "cholesky/cupy")
    return Cholesky(cp.linalg.cholesky(A))


@_gpu("qr", "cupy", layout="C")
def qr_geqrf(A) -> QR:
    """Thin Householder QR on the GPU: cuSOLVER xgeqrf + xorgqr via ``cupy.linalg.qr``.

    Parameters
    ----------
    A : (m, n) cupy.ndarray, m >= n (CuPy copies it; left unchanged).

    Returns
    -------
    QR
        Q (m, n) with orthonormal columns, R (n, n) upper triangular.
    """
    cp = _cupy()
    (A,) = _on_device(cp, A)
    Q, R = cp.linalg.qr(A, mode="reduced")
    return QR(Q, R)


@_gpu("svd", "cupy-gesvd", layout="C")
def svd_gesvd(A) -> SVD:
    """Thin SVD on the GPU: cuSOLVER xgesvd (bidiagonal QR iteration) via ``cupy.linalg.svd``.

    Parameters
    ----------
    A : (m, n) cupy.ndarray (CuPy copies it; left unchanged).

    Returns
    -------
    SVD
        U (m, k), s (k,) descending, Vh (k, n), k = min(m, n), ``A = U diag(s) Vh``.
    """
    cp = _cupy()
    (A,) = _on_device(cp, A)
    U, s, Vh = cp.linalg.svd(A, full_matrices=False)
    return SVD(U, s, Vh)


def _cusolver_module():
    """CuPy's cuSOLVER wrappers: ``cupyx.cusolver`` (CuPy 14) or ``cupy.cusolver`` (13)."""
    for name in ("cupyx.cusolver", "cupy.cusolver"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "gesvdj"):
            return module
    raise RuntimeError("this CuPy has no cusolver.gesvdj (looked in cupyx.cusolver, cupy.cusolver)")


@_gpu("svd", "cupy-gesvdj", layout="F")
def svd_gesvdj(A) -> SVD:
    """Thin SVD on the GPU by one-sided Jacobi rotations: cuSOLVER xgesvdj.

    Called through CuPy's cuSOLVER module (``gesvdj(a, full_matrices=False,
    overwrite_a=True)``) with cuSOLVER's defaults: tolerance machine epsilon,
    at most 100 sweeps, singular values sorted descending.

    Parameters
    ----------
    A : (m, n) cupy.ndarray, Fortran order, overwritten.

    Returns
    -------
    SVD
        U (m, k), s (k,) descending, Vh (k, n) (the conjugate transpose of the
        V xgesvdj returns), k = min(m, n).

    Raises
    ------
    numpy.linalg.LinAlgError
        Under ``cupyx.errstate(linalg="raise")`` when the sweeps do not converge.

    References
    ----------
    cuSOLVER, ``cusolverDn<t>gesvdj``; J. Demmel and K. Veselic, Jacobi's method
    is more accurate than QR, SIAM J. Matrix Anal. Appl. 13(4), 1992.
    """
    cp = _cupy()
    (A,) = _on_device(cp, A)
    u, s, v = _cusolver_module().gesvdj(A, full_matrices=False, compute_uv=True,
                                        overwrite_a=True)
    return SVD(u, s, v.conj().T)


@_gpu("eigh", "cupy", layout="F")
def eigh_syevd(A) -> Eigh:
    """Symmetric/Hermitian eigendecomposition on the GPU: cuSOLVER xsyevd via ``cupy.linalg.eigh``.

    Divide and conquer on the tridiagonal form (CuPy calls the 64-bit
    ``cusolverDnXsyevd``), from the lower triangle.

    Parameters
    ----------
    A : (n, n) cupy.ndarray, symmetric/Hermitian (CuPy copies it to Fortran
        order, a plain copy for the Fortran-ordered input; left unchanged).

    Returns
    -------
    Eigh
        w (n,) ascending (real), V (n, n) orthonormal, ``A V = V diag(w)``.
    """
    cp = _cupy()
    (A,) = _on_device(cp, A)
    w, V = cp.linalg.eigh(A, UPLO="L")
    return Eigh(w, V)


@_gpu("solve", "cupy", layout="F")
def solve_gesv(A, b) -> Solve:
    """Square solve ``A x = b`` on the GPU: cuSOLVER xgetrf + xgetrs via ``cupyx.lapack.gesv``.

    Parameters
    ----------
    A : (n, n) cupy.ndarray, Fortran order, overwritten by its LU factors.
    b : (n,) cupy.ndarray in A's dtype (copied; left unchanged).

    Returns
    -------
    Solve
        x (n,).

    Raises
    ------
    numpy.linalg.LinAlgError
        Under ``cupyx.errstate(linalg="raise")`` for an exactly singular A.
    """
    cp = _cupy()
    import cupyx.lapack

    A, b = _on_device(cp, A, b)
    _square(A, "solve/cupy")
    return Solve(cupyx.lapack.gesv(A, b.astype(A.dtype, copy=True)))


@_gpu("lstsq", "cupy", layout="C")
def lstsq_gelss(A, b) -> Lstsq:
    """Least squares by the SVD on the GPU: cuSOLVER xgesvd via ``cupy.linalg.lstsq``.

    ``x = V diag(1/s) U^H b`` over the singular values above
    ``max(m, n) eps s_1`` (``rcond=None``, NumPy's rule), as LAPACK's xGELSS.

    Parameters
    ----------
    A : (m, n) cupy.ndarray, m > n; b : (m,) cupy.ndarray (both left unchanged).

    Returns
    -------
    Lstsq
        x (n,).
    """
    cp = _cupy()
    A, b = _on_device(cp, A, b)
    return Lstsq(cp.linalg.lstsq(A, b, rcond=None)[0])


@_gpu("lstsq", "cupy-gels", layout="F")
def lstsq_gels(A, b) -> Lstsq:
    """Least squares by Householder QR on the GPU: ``cupyx.lapack.gels``.

    cuSOLVER xgeqrf, then ``Q^H b`` by xormqr (xunmqr), then ``R x = (Q^H b)[:n]``
    by cuBLAS xtrsm, as LAPACK's xGELS; assumes full column rank.

    Parameters
    ----------
    A : (m, n) cupy.ndarray, m >= n; b : (m,) cupy.ndarray in A's dtype (both
        copied by CuPy; left unchanged).

    Returns
    -------
    Lstsq
        x (n,).
    """
    cp = _cupy()
    import cupyx.lapack

    A, b = _on_device(cp, A, b)
    return Lstsq(cupyx.lapack.gels(A, b.astype(A.dtype, copy=False)))


def _register_twins() -> None:
    """Register every impl of :data:`TWINS` again as ``<op>/<name>-cupy`` on the GPU:
    the same function, parameters, layout, structure and stability, native dtypes."""
    from factorbench.impls import _REGISTRY  # the originals, registered on import above

    for impl_id in TWINS:
        cpu = _REGISTRY[impl_id]
        register(cpu.op, f"{cpu.name}-cupy", backend="cupy", family=cpu.family, device="gpu",
                 dtypes=tuple(d for d in cpu.dtypes if d in _NATIVE), max_n=cpu.max_n,
                 requires=("cupy",), stable=cpu.stable, parameters=cpu.parameters,
                 layout=cpu.layout, structure=cpu.structure)(cpu.func)


_register_twins()
