"""Random test matrices and sketching operators, written once against the array namespace.

A sketch is a random linear map ``S`` (d x m, d << m) applied to the rows
of a matrix: ``S @ X`` embeds the column space of a tall X into d dimensions
while keeping norms within a factor (an oblivious subspace embedding).  The
same operators serve both sides: :meth:`Sketch.left` forms ``S X`` (sketch-and-
solve least squares, randomized column pivoting, the preconditioner of
Blendenpik), :meth:`Sketch.right` forms ``X S^H`` (the test matrix of a range
finder, ``Y = A Omega`` with ``Omega = S^H``, n x d).

Kinds (the ``sketch`` parameter of the randomized impls):

``gaussian``
    i.i.d. N(0, 1/d) entries (complex Gaussian for complex data): the
    reference, O(d m c) to apply as one GEMM (HMT 2011, sec. 4.1).
``sparse``
    sparse sign embedding: each column of S has ``zeta = min(d, 8)`` nonzeros
    +-1/sqrt(zeta) in distinct random rows (Clarkson & Woodruff 2013 for
    zeta = 1; Martinsson & Tropp 2020, sec. 9.2, recommend zeta = 8).
    O(zeta m c) to apply.
``srht``
    subsampled randomized trigonometric transform ``sqrt(m/d) R F D``: random
    signs D, the orthonormal DCT-II F (the DFT for complex data), d rows drawn
    without replacement (Woolfe, Liberty, Rokhlin & Tygert 2008; Tropp 2011;
    Blendenpik uses the DCT, Avron, Maymounkov & Toledo 2010).  O(m c log m).

Choices where the design is silent, and why:

* Every random number is drawn on the host from the ``numpy.random.Generator``
  the caller passed (normalised once) and then moved to the array's device:
  a seed gives the same sketch on NumPy, CuPy and array-api-strict, so a
  CPU-GPU comparison compares the same algorithm run, and the draw is
  O(d m) or less, against the O(d m c) or O(m c log m) of applying it.
* Entries are drawn directly in the working precision (float32 stays float32:
  no silent upcast), complex Gaussian entries have E|s|^2 = 1/d.
* Fast paths where the backend's library has one: on NumPy the sparse sign
  sketch is a ``scipy.sparse`` CSR product and the DCT is ``scipy.fft``;
  on CuPy ``cupyx.scipy.sparse`` and ``cupyx.scipy.fft``.  Elsewhere the
  sparse sketch is applied as a dense matrix and the DCT-II is computed from
  one FFT of the even-odd reordered input (Makhoul 1980) with the array API's
  ``fft`` extension: slower, the same numbers to rounding.
* SRHT needs ``d <= m`` rows to sample; ``d`` is clipped to ``m``.

References
----------
N. Halko, P.-G. Martinsson and J. A. Tropp, Finding structure with randomness,
SIAM Review 53(2), 2011 (HMT 2011).
P.-G. Martinsson and J. A. Tropp, Randomized numerical linear algebra:
foundations and algorithms, Acta Numerica 29, 2020.
K. L. Clarkson and D. P. Woodruff, Low rank approximation and regression in
input sparsity time, STOC 2013.
F. Woolfe, E. Liberty, V. Rokhlin and M. Tygert, A fast randomized algorithm
for the approximation of matrices, ACHA 25, 2008.
H. Avron, P. Maymounkov and S. Toledo, Blendenpik: supercharging LAPACK's
least-squares solver, SIAM J. Sci. Comput. 32(3), 2010.
J. Makhoul, A fast cosine transform in one and two dimensions, IEEE TASSP 28, 1980.
"""

from __future__ import annotations

import math

import numpy as np
from array_api_compat import is_cupy_namespace, is_numpy_namespace

from factorbench.accuracy.matrices import normalize_rng

# the blocked family's array-namespace helpers, shared (re-exported for the family)
from factorbench.impls.blocked._householder import ct, device, is_complex
from factorbench.impls.blocked._xp import namespace

__all__ = ["SKETCHES", "SPARSE_NNZ", "Sketch", "sketch", "gaussian", "namespace",
           "check_matrix", "check_count", "is_complex", "ct", "device"]

#: The sketch kinds, the values of the impls' ``sketch`` parameter.
SKETCHES = ("gaussian", "sparse", "srht")

#: Nonzeros per column of the sparse sign embedding (Martinsson & Tropp 2020, sec. 9.2).
SPARSE_NNZ = 8

_FLOATS = ("float32", "float64", "complex64", "complex128")


def check_matrix(xp, A, who: str) -> None:
    """Refuse anything but a 2-D float32/float64/complex64/complex128 array."""
    if A.ndim != 2:
        raise ValueError(f"{who} needs a 2-D matrix, got {A.ndim} dimensions")
    if A.dtype not in (xp.float32, xp.float64, xp.complex64, xp.complex128):
        raise TypeError(f"{who} computes in float32/float64/complex64/complex128, not {A.dtype}")


def check_count(name: str, value, minimum: int = 1) -> int:
    """An integer parameter >= ``minimum``; 2.5, True or "8" are refused, not truncated."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _host_dtype(xp, dtype) -> np.dtype:
    for name in _FLOATS:
        if dtype == getattr(xp, name):
            return np.dtype(name)
    raise TypeError(f"no sketch for dtype {dtype}")


def _to(xp, host: np.ndarray, like):
    return xp.asarray(host, device=device(like))


def gaussian(xp, rng, shape: tuple[int, int], like):
    """A standard Gaussian matrix in ``like``'s dtype and device.

    Complex dtypes get ``(g1 + i g2)/sqrt(2)`` (E|z|^2 = 1).  Drawn on the host
    from ``rng`` (a ``numpy.random.Generator``), so the numbers do not depend
    on the backend.
    """
    dt = _host_dtype(xp, like.dtype)
    real = np.float32 if dt in (np.float32, np.complex64) else np.float64
    if dt.kind == "c":
        G = rng.standard_normal(shape, dtype=real) + 1j * rng.standard_normal(shape, dtype=real)
        G = (G / math.sqrt(2.0)).astype(dt)
    else:
        G = rng.standard_normal(shape, dtype=real)
    return _to(xp, G, like)


class Sketch:
    """A drawn sketching operator ``S`` (d x m) for one array namespace.

    Build with :func:`sketch`.  ``left(X)`` is ``S @ X`` for X (m, c);
    ``right(X)`` is ``X @ S^H`` for X (c, m), i.e. ``A @ Omega`` with the
    n x d test matrix ``Omega = S^H``.  Results keep X's dtype and device.
    """

    def __init__(self, kind: str, d: int, m: int, apply, apply_right=None):
        self.kind, self.d, self.m = kind, d, m
        self._apply = apply
        self._apply_right = apply_right

    def left(self, X):
        if X.shape[0] != self.m:
            raise ValueError(f"sketch of {self.m} rows applied to {X.shape[0]} rows")
        return self._apply(X)

    def right(self, X):
        if X.shape[-1] != self.m:
            raise ValueError(f"sketch of {self.m} rows applied to {X.shape[-1]} columns")
        if self._apply_right is not None:
            return self._apply_right(X)
        xp = namespace(X)
        return ct(xp, self.left(ct(xp, X)))


def sketch(kind: str, d: int, m: int, rng, like) -> Sketch:
    """Draw a sketching operator of ``kind`` with d x m for arrays like ``like``.

    Parameters
    ----------
    kind : {"gaussian", "sparse", "srht"}
        See the module docstring.
    d : int
        Sketch dimension (rows of S); clipped to m for ``srht``.
    m : int
        Rows of the matrices it will be applied to.
    rng : None, int, SeedSequence or numpy.random.Generator
        Normalised once here.
    like : array
        Fixes the namespace, dtype and device of S.

    Returns
    -------
    Sketch
    """
    if kind not in SKETCHES:
        raise ValueError(f"sketch must be one of {', '.join(SKETCHES)}; got {kind!r}")
    d, m = check_count("sketch dimension d", d), check_count("sketch rows m", m)
    rng = normalize_rng(rng)
    xp = namespace(like)
    if kind == "gaussian":
        G = gaussian(xp, rng, (d, m), like)
        G = G / xp.asarray(math.sqrt(d), dtype=_real(xp, like), device=device(like))
        # X @ G^H directly: forming (G @ X^H)^H multiplies against a transposed
        # X and conjugates it, twice the time of the same GEMM (4000 x 2000 A,
        # 60 columns: 20 ms against 10.7 ms)
        Gh = ct(xp, G)
        return Sketch(kind, d, m, lambda X: G @ X, lambda X: X @ Gh)
    if kind == "sparse":
        return _sparse_sign(xp, d, m, rng, like)
    return _srht(xp, min(d, m), m, rng, like)


def _real(xp, like):
    return xp.float32 if like.dtype in (xp.float32, xp.complex64) else xp.float64


def _sparse_sign(xp, d, m, rng, like) -> Sketch:
    zeta = min(d, SPARSE_NNZ)
    dt = _host_dtype(xp, like.dtype)
    # zeta distinct rows per column: the first zeta of a random permutation of
    # range(d) per column, drawn as argsort of uniforms (vectorised, O(d m)).
    # For d much larger than zeta, draw zeta rows per column and redraw the
    # columns that repeat one (rare: probability about zeta^2 / 2d).
    if d <= 4 * zeta:
        rows = np.argsort(rng.random((m, d)), axis=1)[:, :zeta]
    else:
        rows = _distinct_rows(rng, m, d, zeta)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(m, zeta)) / math.sqrt(zeta)
    cols = np.repeat(np.arange(m), zeta)
    rows, vals = rows.reshape(-1), signs.reshape(-1).astype(dt)
    if is_numpy_namespace(xp):
        import scipy.sparse as sp

        S = sp.csr_array((vals, (rows, cols)), shape=(d, m))
        return Sketch("sparse", d, m, lambda X: np.asarray(S @ X))
    if is_cupy_namespace(xp):  # pragma: no cover - needs a GPU
        import cupy
        import cupyx.scipy.sparse as csp

        S = csp.coo_matrix((cupy.asarray(vals), (cupy.asarray(rows), cupy.asarray(cols))),
                           shape=(d, m)).tocsr()
        return Sketch("sparse", d, m, lambda X: S @ X)
    dense = np.zeros((d, m), dtype=dt)
    dense[rows, cols] = vals
    S = _to(xp, dense, like)
    return Sketch("sparse", d, m, lambda X: S @ X)


def _distinct_rows(rng, m, d, zeta):
    """``zeta`` distinct integers in [0, d) per row of an (m, zeta) array."""
    rows = rng.integers(0, d, size=(m, zeta))
    while True:
        srt = np.sort(rows, axis=1)
        dup = np.any(srt[:, 1:] == srt[:, :-1], axis=1)
        if not dup.any():
            return rows
        rows[dup] = rng.integers(0, d, size=(int(dup.sum()), zeta))


def _srht(xp, d, m, rng, like) -> Sketch:
    dt = _host_dtype(xp, like.dtype)
    signs = _to(xp, rng.choice(np.array([-1.0, 1.0]), size=(m, 1)).astype(dt), like)
    rows = np.sort(rng.choice(m, size=d, replace=False))
    idx = xp.asarray(rows, device=device(like))
    scale = xp.asarray(math.sqrt(m / d), dtype=_real(xp, like), device=device(like))
    cplx = dt.kind == "c"

    def apply(X):
        T = _trig(xp, signs * X, cplx)
        return xp.take(T, idx, axis=0) * scale

    return Sketch("srht", d, m, apply)


def _trig(xp, X, cplx: bool):
    """The orthonormal DCT-II (real X) or DFT (complex X) of each column of X."""
    if is_numpy_namespace(xp):
        import scipy.fft

        # scipy.fft runs on one thread unless told; the transform of a tall X
        # is half the cost of a sketch-and-precondition solve (20000 x 200:
        # 15 ms on one thread, 7.6 ms on two)
        w = _fft_workers()
        if cplx:
            return scipy.fft.fft(X, axis=0, norm="ortho", workers=w)
        return scipy.fft.dct(X, type=2, axis=0, norm="ortho", workers=w)
    if is_cupy_namespace(xp):  # pragma: no cover - needs a GPU
        import cupyx.scipy.fft

        if cplx:
            return cupyx.scipy.fft.fft(X, axis=0, norm="ortho")
        return cupyx.scipy.fft.dct(X, type=2, axis=0, norm="ortho")
    if cplx:
        return xp.fft.fft(X, axis=0, norm="ortho")
    return _dct2_generic(xp, X)


def _fft_workers() -> int:
    """Threads for scipy.fft: the run's thread count where one was set (the
    harness exports it as OMP_NUM_THREADS with ``--threads``), else every core."""
    import os

    try:
        n = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return -1
    return n if n >= 1 else -1


def _dct2_generic(xp, X):
    """Orthonormal DCT-II along axis 0 from one FFT (Makhoul 1980).

    ``v = [x_0, x_2, x_4, ..., x_5, x_3, x_1]``, ``y_k = Re(exp(-i pi k / 2N) FFT(v)_k)``,
    scaled by ``sqrt(1/N)`` for k = 0 and ``sqrt(2/N)`` otherwise.
    """
    N = X.shape[0]
    real = _real(xp, X)
    cdt = xp.complex64 if real == xp.float32 else xp.complex128
    v = xp.concat([X[0::2, ...], xp.flip(X[1::2, ...], axis=0)], axis=0)
    V = xp.fft.fft(xp.astype(v, cdt), axis=0)
    k = xp.arange(N, dtype=real, device=device(X))
    # the twiddle in the working precision; cos/sin of exact multiples of pi/2N
    theta = k * xp.asarray(-math.pi / (2 * N), dtype=real, device=device(X))
    tw = xp.astype(xp.cos(theta), cdt) + xp.astype(xp.sin(theta), cdt) * xp.asarray(
        1j, dtype=cdt, device=device(X))
    Y = xp.real(V * tw[:, None])
    w = xp.full((N, 1), math.sqrt(2.0 / N), dtype=real, device=device(X))
    w[0, 0] = math.sqrt(1.0 / N)
    return Y * w
