"""Array-namespace primitives the blocked family is written against.

The blocked algorithms call only the array API standard (``matmul``,
``take``, slicing, ``tril``/``triu``, ``argmax``) plus the kernels below,
which the standard lacks: a triangular solve with many right-hand sides
(BLAS xTRSM), an update ``C - A op(B)`` written in place (xGEMM with
beta = 1), LAPACK-style row interchanges (xLASWP) and a working copy in the
layout the backend's BLAS prefers.  Each has a fast path for the backends
whose libraries provide it (NumPy: SciPy's BLAS/LAPACK on Fortran-ordered
blocks, in place; CuPy: cupyx.scipy.linalg, or ``matmul``) and a generic
path in the standard alone (recursive, so BLAS-3 through ``matmul``), which
is what array-api-strict exercises in the tests, so the code stays valid for
any conforming namespace.

Why the fast paths matter on NumPy: a recursive LU spends little in its
GEMMs if it moves rows with fancy-index gathers on Fortran-ordered arrays
(0.3x of getrf at n = 4096 on the reference machine), while xLASWP in place
on column blocks keeps it at 0.9x.  CuPy is never imported here: the module
of the array decides.

Why the NumPy fast paths call SciPy's BLAS through ``scipy.linalg.cython_blas``
rather than ``numpy.matmul`` and the f2py wrappers: NumPy and SciPy wheels
each bundle their own OpenBLAS, each with its own pthread pool whose workers
spin for a while after a call.  A loop that alternates between the two
(matmul, then trsm, then matmul, ...) has the two pools fighting for the
cores: a recursive LU at n = 2048 on the 2-core machine took 0.82 s that
way and 0.22 s with both pools limited to one thread (measured; getrf:
0.066 s). So every BLAS call of the blocked and recursive LU and Cholesky on
NumPy goes to SciPy's library (the one ``laswp`` uses), and numpy's own
operations in their loops are elementwise only. (The QR kernels form their
products with ``matmul`` and call SciPy only for xTRSM and xSYRK, few and large
calls, where the measured cost of the switch was small.) The Cython BLAS entry
points also take a leading dimension, so ``gemm_update`` and ``trsm`` work in
place on any Fortran-ordered sub-block ``W[i:j, k:l]`` (f2py copies such a
block in and out). The function pointers come from the capsules SciPy exports
for Cython (``__pyx_capi__``), called through ctypes, the route Numba documents
(``numba.extending.get_cython_function_address``); where that is not possible
the f2py wrappers are used instead.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np
from array_api_compat import array_namespace, is_cupy_namespace, is_numpy_namespace

__all__ = ["namespace", "is_numpy", "check_square", "check_block", "work_copy", "workspace", "trsm",
           "emulated_square",
           "gemm_update", "write_back", "laswp", "ipiv_to_perm", "diagonal", "to_int", "LEAF",
           "SMALL_LASWP"]

#: Row interchanges moving at most this many entries (interchanges x columns)
#: are done by NumPy on NumPy arrays instead of OpenBLAS's threaded xLASWP
#: (see :func:`laswp`).
SMALL_LASWP = 1024

#: Below this many columns the generic triangular solve substitutes column by
#: column (one ``matmul``-free step each) instead of recursing.
LEAF = 16


def namespace(*arrays):
    """The array namespace of the inputs (array_api_compat)."""
    return array_namespace(*arrays)


def is_numpy(xp) -> bool:
    return is_numpy_namespace(xp)


def check_square(xp, A, who: str) -> None:
    """Refuse anything but a square 2-D array in float32/64 or complex64/128."""
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"{who} needs a square matrix, got shape {tuple(A.shape)}")
    if A.dtype not in (xp.float32, xp.float64, xp.complex64, xp.complex128):
        raise TypeError(f"{who} computes in float32/float64/complex64/complex128, not {A.dtype}")


def check_block(name: str, value) -> int:
    """A block-size parameter as an int; anything but a positive integer
    (2.5, True, "64", 0) is refused rather than truncated."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def diagonal(xp, X):
    """The main diagonal of a square X (a view on NumPy; the standard's core has no
    ``diagonal``, so elsewhere a strided slice of the flattened array)."""
    if is_numpy(xp):
        return np.diagonal(X)
    n = X.shape[0]
    return xp.reshape(X, (-1,))[::n + 1]


def write_back(W, rows, cols, X, B) -> None:
    """``W[rows, cols] = X`` unless a kernel already wrote its result in place
    (``X is B``, the view it was given): what callers of :func:`trsm` and
    :func:`gemm_update` do with the returned array."""
    if X is not B:
        W[rows, cols] = X


def emulated_square(xp, A, who):
    """``(arithmetic, W)`` for a square NumPy A in an emulated format (float16,
    bfloat16): its float32 Fortran-ordered working copy, every op then rounded
    by ``arithmetic.rnd``; ``(None, None)`` for any other input."""
    from factorbench.impls.textbook._emulate import arithmetic

    ar = arithmetic(A.dtype) if is_numpy(xp) else None
    if ar is None or not ar.emulated:
        return None, None
    W = ar.load(A, order="F")
    check_square(xp, W, who)
    return ar, W


def to_int(x) -> int:
    """A 0-d integer array as a Python int (a device sync on GPU backends)."""
    return int(x)


def work_copy(xp, A):
    """A writable copy of ``A``; Fortran-ordered on NumPy so that column blocks
    ``W[:, j:k]`` are contiguous and the BLAS/LAPACK wrappers work on them in place."""
    if is_numpy(xp):
        return np.array(A, order="F", copy=True)
    return xp.asarray(A, copy=True)


def workspace(xp, A):
    """``A`` itself when it can serve as the working array, else :func:`work_copy`.

    On NumPy a writable Fortran-ordered ``A`` (what the harness hands an impl
    registered with ``layout="F"``) is used in place, so the impl overwrites
    its input as LAPACK does and is timed on the same work as ``lu/lapack``;
    anything else (C order, a strided view, read-only, other namespaces) is
    copied and left unmodified.
    """
    if is_numpy(xp) and A.flags.f_contiguous and A.flags.writeable:
        return A
    return work_copy(xp, A)


def _blas_prefix(dtype) -> str:
    return {np.float32: "s", np.float64: "d", np.complex64: "c",
            np.complex128: "z"}[np.dtype(dtype).type]


def trsm(xp, T, B, *, lower: bool, unit: bool = False, side: str = "left",
         conj_trans: bool = False):
    """Solve with a triangular matrix, overwriting ``B`` where the backend can.

    Solves ``op(T) X = B`` (``side="left"``) or ``X op(T) = B`` (``side="right"``)
    with ``op(T) = T`` or ``T^H`` (``conj_trans``); T (k, k) triangular, B (k, r)
    or (r, k).  BLAS xTRSM.  Returns X, which is ``B`` itself (written in place)
    on NumPy when B is column-major (Fortran-contiguous, or a sub-block
    ``W[i:j, k:l]`` of a Fortran-ordered array) and T is column-major and of
    B's dtype; otherwise a new array.  Callers use the returned array and
    never rely on B being left alone.
    """
    if side not in ("left", "right"):
        raise ValueError(f"trsm: side must be 'left' or 'right', not {side!r}")
    k = B.shape[1] if side == "right" else B.shape[0]
    if T.ndim != 2 or T.shape != (k, k):
        raise ValueError(f"trsm: T {T.shape} does not match B {B.shape} (side={side!r})")
    if is_numpy(xp):
        if _cython_trsm(T, B, lower=lower, unit=unit, side=side, conj_trans=conj_trans):
            return B
        from scipy.linalg import blas

        f = getattr(blas, _blas_prefix(B.dtype) + "trsm")
        # in place only where that cannot alias T or write to a read-only B
        inplace = (B.flags.f_contiguous and B.flags.writeable
                   and not np.shares_memory(T, B))
        X = f(1.0, T, B, side=int(side == "right"), lower=int(lower),
              trans_a=2 if conj_trans else 0, diag=int(unit), overwrite_b=int(inplace))
        if inplace and not np.shares_memory(X, B):  # pragma: no cover - wrapper copied
            B[...] = X
            return B
        return X
    if is_cupy_namespace(xp):
        from cupyx.scipy.linalg import solve_triangular

        if side == "left":
            return solve_triangular(T, B, lower=lower, unit_diagonal=unit,
                                    trans="C" if conj_trans else "N")
        # X op(T) = B  <=>  op(T)^H X^H = B^H
        Xh = solve_triangular(T, xp.conj(B.T), lower=lower, unit_diagonal=unit,
                              trans="N" if conj_trans else "C")
        return xp.conj(Xh.T)
    return _trsm_generic(xp, T, B, lower=lower, unit=unit, side=side, conj_trans=conj_trans)


def _ct(xp, M):
    return xp.conj(M.T) if xp.isdtype(M.dtype, "complex floating") else M.T


def _trsm_generic(xp, T, B, *, lower, unit, side, conj_trans):
    """Recursive xTRSM in the array API standard: split T in halves, solve one
    half, update the other with one ``matmul``, solve it (Elmroth et al. 2004)."""
    if side == "right":
        # X op(T) = B  <=>  op(T)^H X^H = B^H
        return _ct(xp, _trsm_generic(xp, T, _ct(xp, B), lower=lower, unit=unit,
                                     side="left", conj_trans=not conj_trans))
    if conj_trans:
        T, lower = _ct(xp, T), not lower
    return _trsm_left(xp, T, B, lower=lower, unit=unit)


def _trsm_left(xp, T, B, *, lower, unit):
    k = T.shape[0]
    if k <= LEAF:
        X = xp.asarray(B, copy=True)
        rows = range(k) if lower else range(k - 1, -1, -1)
        for i in rows:
            if lower and i > 0:
                X[i:i + 1, :] = X[i:i + 1, :] - T[i:i + 1, :i] @ X[:i, :]
            elif not lower and i < k - 1:
                X[i:i + 1, :] = X[i:i + 1, :] - T[i:i + 1, i + 1:] @ X[i + 1:, :]
            if not unit:
                X[i:i + 1, :] = X[i:i + 1, :] / T[i, i]
        return X
    h = k // 2
    if lower:
        X1 = _trsm_left(xp, T[:h, :h], B[:h, :], lower=True, unit=unit)
        X2 = _trsm_left(xp, T[h:, h:], B[h:, :] - T[h:, :h] @ X1, lower=True, unit=unit)
    else:
        X2 = _trsm_left(xp, T[h:, h:], B[h:, :], lower=False, unit=unit)
        X1 = _trsm_left(xp, T[:h, :h], B[:h, :] - T[:h, h:] @ X2, lower=False, unit=unit)
    return xp.concat([X1, X2], axis=0)


def gemm_update(xp, C, A, B, *, conj_trans_b: bool = False):
    """``C - A @ op(B)`` with ``op(B) = B`` or ``B^H``, overwriting ``C`` where the
    backend can.  BLAS xGEMM with alpha = -1, beta = 1.

    A (m, k), op(B) (k, r), C (m, r).  Returns the result, which is ``C``
    itself (written in place) on NumPy when C is column-major (see
    :func:`trsm`); otherwise a new array the caller writes back.  On NumPy
    the product runs in SciPy's BLAS (module docstring: one thread pool), and
    A and B may be any strided arrays (column-major ones are not copied).
    """
    kb, rb = B.shape[::-1] if conj_trans_b else B.shape
    if A.ndim != 2 or C.shape != (A.shape[0], rb) or A.shape[1] != kb:
        raise ValueError(f"gemm_update: shapes C {C.shape}, A {A.shape}, B {B.shape} "
                         f"(conj_trans_b={conj_trans_b}) do not match")
    if is_numpy(xp):
        if _cython_gemm(C, A, B, conj_trans_b):
            return C
        # C is not column-major: update a Fortran-ordered copy and return it.
        Cf = np.array(C, order="F", copy=True)
        if _cython_gemm(Cf, A, B, conj_trans_b):
            return Cf
        return C - A @ (_ct(np, B) if conj_trans_b else B)  # pragma: no cover - no cython_blas
    return C - A @ (_ct(xp, B) if conj_trans_b else B)


# ------------------------------------------------ SciPy's BLAS through Cython capsules

_NATIVE = {np.dtype(t): t for t in (np.float32, np.float64, np.complex64, np.complex128)}


@functools.cache
def _cython_blas(name: str, nargs: int):
    """ctypes function for ``scipy.linalg.cython_blas.<name>`` (all arguments are
    pointers, Fortran BLAS convention), or None where the capsule is unavailable."""
    try:
        from scipy.linalg import cython_blas

        capsule = cython_blas.__pyx_capi__[name]
        get_name = ctypes.pythonapi.PyCapsule_GetName
        get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        get_ptr = ctypes.pythonapi.PyCapsule_GetPointer
        get_ptr.restype, get_ptr.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        signature = get_name(capsule)
        # The calls below pass nargs pointers with C ints (LP64); a build whose
        # Cython BLAS had another signature (64-bit integers) is not called.
        if signature.count(b"*") != nargs or b"int64" in signature or b"long" in signature:
            return None
        addr = get_ptr(capsule, signature)
    except Exception:  # pragma: no cover - SciPy without the Cython API
        return None
    return ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * nargs))(addr)


def _ld(X) -> int | None:
    """Leading dimension of a column-major 2-D NumPy array or view, else None."""
    if X.ndim != 2:
        return None
    m, n = X.shape
    isz = X.itemsize
    s0, s1 = X.strides
    if m > 1 and s0 != isz:
        return None
    if n <= 1:
        return max(m, 1)
    if s1 % isz or s1 // isz < max(m, 1):
        return None
    return s1 // isz


def _colmajor(X, dtype):
    """X as a column-major array of ``dtype`` (no copy if it already is one)."""
    if X.dtype == dtype and _ld(X) is not None:
        return X
    return np.array(X, dtype=dtype, order="F")


class _Args:
    """Keeps the ctypes scalars of one call alive and hands out their addresses."""

    def __init__(self):
        self.keep = []

    def char(self, c: str):
        b = ctypes.create_string_buffer(c.encode(), 2)
        self.keep.append(b)
        return ctypes.addressof(b)

    def int(self, v: int):
        b = ctypes.c_int(v)
        self.keep.append(b)
        return ctypes.addressof(b)

    def scalar(self, v, dtype):
        b = np.array([v], dtype=dtype)
        self.keep.append(b)
        return b.ctypes.data


def _cython_gemm(C, A, B, conj_trans_b: bool) -> bool:
    """C -= A op(B) in place through cython_blas; False if C is not usable in place."""
    if C.dtype not in _NATIVE or not C.flags.writeable or _ld(C) is None:
        return False
    f = _cython_blas(_blas_prefix(C.dtype) + "gemm", 13)
    if f is None:  # pragma: no cover
        return False
    m, r = C.shape
    k = A.shape[1]
    if m == 0 or r == 0 or k == 0:
        return True
    A = _colmajor(A, C.dtype)
    B = _colmajor(B, C.dtype)
    # Operands overlapping C would be read while written: only disjoint
    # sub-blocks of one working array are updated in place (an exact test,
    # about a microsecond for two sub-blocks).
    if np.shares_memory(C, A) or np.shares_memory(C, B):
        return False
    a = _Args()
    trans_b = "C" if conj_trans_b else "N"
    f(a.char("N"), a.char(trans_b), a.int(m), a.int(r), a.int(k),
      a.scalar(-1, C.dtype), A.ctypes.data, a.int(_ld(A)), B.ctypes.data, a.int(_ld(B)),
      a.scalar(1, C.dtype), C.ctypes.data, a.int(_ld(C)))
    return True


def _cython_trsm(T, B, *, lower, unit, side, conj_trans) -> bool:
    """Triangular solve in place in B through cython_blas; False if not possible."""
    if B.dtype not in _NATIVE or not B.flags.writeable or _ld(B) is None:
        return False
    if T.dtype != B.dtype or _ld(T) is None:
        return False
    f = _cython_blas(_blas_prefix(B.dtype) + "trsm", 11)
    if f is None:  # pragma: no cover
        return False
    m, r = B.shape
    if m == 0 or r == 0:
        return True
    if np.shares_memory(T, B):
        return False
    a = _Args()
    f(a.char("R" if side == "right" else "L"), a.char("L" if lower else "U"),
      a.char("C" if conj_trans else "N"), a.char("U" if unit else "N"), a.int(m), a.int(r),
      a.scalar(1, B.dtype), T.ctypes.data, a.int(_ld(T)), B.ctypes.data, a.int(_ld(B)))
    return True


def ipiv_to_perm(ipiv, m: int) -> np.ndarray:
    """LAPACK pivots (0-based, ``row i swapped with ipiv[i]`` in order) as a
    permutation vector ``perm`` with ``A[perm] = P A``."""
    perm = np.arange(m)
    for i, p in enumerate(np.asarray(ipiv)):
        if p != i:
            perm[i], perm[p] = perm[p], perm[i]
    return perm


def laswp(xp, W, ipiv, k1: int, k2: int, cols: slice):
    """Apply the row interchanges ``ipiv[k1:k2]`` (0-based, absolute row
    indices, LAPACK xLASWP order) to the columns ``cols`` of ``W``, in place.

    On NumPy, ``W[:, cols]`` of a Fortran-ordered W is one contiguous block and
    SciPy's xLASWP swaps its rows in place; elsewhere the rows the pivots touch
    are gathered once with ``take`` and written back by slices.

    OpenBLAS's xLASWP hands every call to its thread pool, whatever its size,
    and waking the pool costs more than a small swap: on the 2-core machine
    under load, 2,000 calls of one or a few rows took 14 s (7 ms a call).  So
    on NumPy a range without interchanges is skipped, and one that moves at
    most :data:`SMALL_LASWP` entries is swapped row by row in NumPy, which
    stays in the calling thread.
    """
    ipiv = np.asarray(ipiv, dtype=np.int32)
    if k2 <= k1:
        return W
    if is_numpy(xp):
        block = W[:, cols]
        if block.size == 0:
            return W
        moves = np.flatnonzero(ipiv[k1:k2] != np.arange(k1, k2, dtype=np.int32))
        if moves.size == 0:
            return W
        if moves.size * block.shape[1] <= SMALL_LASWP:
            for i in (moves + k1).tolist():
                p = int(ipiv[i])
                row = block[i].copy()
                block[i] = block[p]
                block[p] = row
            return W
        from scipy.linalg import lapack

        f = getattr(lapack, _blas_prefix(W.dtype) + "laswp")
        out = f(block, ipiv, k1=k1, k2=k2 - 1, overwrite_a=1)
        if not np.shares_memory(out, W):
            W[:, cols] = out
        return W
    lo = k1
    hi = max(int(ipiv[k1:k2].max()) + 1, k2)
    sub = np.arange(lo, hi)
    for i in range(k1, k2):
        p = int(ipiv[i])
        if p != i:
            sub[i - lo], sub[p - lo] = sub[p - lo], sub[i - lo]
    if np.array_equal(sub, np.arange(lo, hi)):
        return W
    idx = xp.asarray(sub, device=_device(W))
    W[lo:hi, cols] = xp.take(W[:, cols], idx, axis=0)
    return W


def _device(x):
    from array_api_compat import device

    return device(x)
