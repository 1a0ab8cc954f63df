"""The ``@njit`` kernels behind :mod:`factorbench.impls.numba_kernels`.

Importing this module imports Numba; the registered functions import it
lazily, so the registry and the CLI start without Numba.

Conventions shared by every kernel:

* Inputs are C-contiguous, writeable arrays in a native working precision
  (float32, float64, complex64, complex128) and are overwritten.  Row-major
  storage is chosen so that every inner loop runs along a row: the
  right-looking LU and Cholesky updates, Householder and Givens updates and
  Jacobi rotations are all AXPY-like loops over contiguous memory that LLVM
  vectorises.  No inner loop is a floating-point reduction where that can be
  avoided: without fastmath (not used anywhere, so results are reproducible
  and NaN/Inf propagate) LLVM may not reorder a sum, so a reduction runs at
  the latency of one addition per element.
* Every operation is done in the array's dtype.  Constants are scalars of
  that dtype or its real counterpart, made by :func:`_real` and
  :func:`_const` (conversions LLVM folds); a Python float literal would promote a float32
  expression to float64 (``x * 2.0``), and a Python int literal turns a
  float32 comparison into a float64 one.  The float32 specialisations are
  checked for double-precision arithmetic in the tests.
* Failures are returned as status codes; the Python wrappers raise.
* ``cache=True``: compiled code is kept next to this file (or in Numba's
  user cache directory when that is not writeable), so only the first call
  in a fresh environment pays for compilation.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

_JIT = {"cache": True}

# numba_xxgemm is the C bridge from Numba's helper library to SciPy's Cython
# BLAS that np.dot itself lowers to (numba/_lapack.c).  Calling it directly
# gives the full xGEMM interface: alpha, beta and leading dimensions, so a
# trailing update runs in place on a sub-block of the matrix.  It is looked
# up by symbol name, which keeps the callers cacheable (a ctypes function
# pointer would not be).
_XXGEMM = types.ExternalFunction(
    "numba_xxgemm",
    types.intc(
        types.char, types.char, types.char,  # kind, transa, transb
        types.intp, types.intp, types.intp,  # m, n, k
        types.voidptr, types.voidptr, types.intp,  # alpha, a, lda
        types.voidptr, types.intp, types.voidptr,  # b, ldb, beta
        types.voidptr, types.intp,  # c, ldc
    ),
)
_NOTRANS = ord("n")


# ---------------------------------------------------------------- helpers


@njit(**_JIT)
def _real(A, x):
    """``x`` as a scalar of A's real dtype (float32 for complex64)."""
    return A.real.dtype.type(x)


@njit(**_JIT)
def _const(A, x):
    """``x`` as a scalar of A's dtype."""
    return A.dtype.type(x)


@njit(**_JIT)
def _abs2(x):
    """|x|^2 in x's real dtype (the imaginary part of x conj(x) is exactly 0)."""
    return (x * np.conj(x)).real


@njit(**_JIT)
def _swap_rows(W, perm, k, p):
    """Exchange rows k and p of W (whole rows) and entries k and p of perm."""
    Wk = W[k]
    Wp = W[p]
    for j in range(Wk.shape[0]):
        t = Wk[j]
        Wk[j] = Wp[j]
        Wp[j] = t
    t2 = perm[k]
    perm[k] = perm[p]
    perm[p] = t2


@njit(**_JIT)
def _pivot(W, k):
    """Row of the first entry of largest modulus in ``W[k:, k]``.

    Ties go to the first row, as IxAMAX does; the modulus is |z| (not
    IxAMAX's |Re z| + |Im z|), as in ``np.argmax(np.abs(...))``, so pivots
    agree with the textbook ``lu/gepp``; a NaN is chosen at once, as
    ``np.argmax`` does.
    """
    n = W.shape[0]
    best = abs(W[k, k])
    if best != best:
        return k
    p = k
    for i in range(k + 1, n):
        a = abs(W[i, k])
        if a > best:
            best = a
            p = i
        elif a != a:
            return i
    return p


@njit(**_JIT)
def _norm2(x):
    """2-norm of a vector, scaled by its largest modulus so squares neither
    overflow nor underflow (the safeguard of xNRM2).  NaN propagates."""
    rzero = _real(x, 0)
    scale = rzero
    for i in range(x.shape[0]):
        a = abs(x[i])
        if a > scale or a != a:
            scale = a
    if scale == rzero or scale != scale or scale == _real(x, np.inf):
        return scale
    ssq = rzero
    for i in range(x.shape[0]):
        r = abs(x[i]) / scale
        ssq += r * r
    return scale * np.sqrt(ssq)


# ------------------------------------------------- emulated low precision

#: Format codes of :func:`round_to` (the wrappers map names to them).
BF16 = 0
FP16 = 1


@intrinsic
def _f32_bits(typingctx, x):
    """The IEEE bit pattern of a float32 scalar as uint32 (an LLVM bitcast)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.uint32))

    return types.uint32(types.float32), codegen


@intrinsic
def _bits_f32(typingctx, b):
    """The float32 whose IEEE bit pattern is the low 32 bits of the integer ``b``
    (Numba widens uint32 arithmetic to 64 bits: truncated, then an LLVM bitcast)."""
    if not isinstance(b, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = context.cast(builder, args[0], signature.args[0], types.uint32)
        return builder.bitcast(v, context.get_value_type(types.float32))

    return types.float32(b), codegen


@njit(**_JIT)
def round_bf16(x):
    """float32 ``x`` rounded to nearest-even bfloat16, as a float32.

    Bit arithmetic on the float32 pattern: add 0x7FFF plus the lowest kept
    bit (ties to even), clear the 16 dropped bits.  A carry out of the
    significand raises the exponent, so a value at or above the midpoint
    between the largest finite bfloat16 and 2^128 becomes Inf (the IEEE rule:
    that largest number has an odd significand); subnormals round on the
    same grid (bfloat16 has float32's exponent range); Inf stays Inf, NaN is
    returned as it is.  Equal to ``precision.chop(x, "bfloat16")`` on every
    float32.
    """
    b = _f32_bits(x)
    if (b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000):
        return x
    lsb = (b >> np.uint32(16)) & np.uint32(1)
    r = (b + np.uint32(0x7FFF) + lsb) & np.uint32(0xFFFF0000)
    return _bits_f32(r)


@njit(**_JIT)
def round_fp16(x):
    """float32 ``x`` rounded to nearest-even IEEE binary16, as a float32.

    Normal range (|x| >= 2^-14): bit arithmetic, add 0xFFF plus the lowest
    kept bit, clear the 13 dropped bits (a carry raises the exponent).
    |x| >= 65520, the midpoint between 65504 and 2^16, gives +-Inf (ties
    to even: 65504's significand is odd); Inf stays Inf, NaN is returned as
    it is.  Below 2^-14 the quantum is 2^-24: ``rint(x 2^24) 2^-24``, both
    scalings exact in float32 (rint rounds ties to even, and keeps the sign
    of a result of zero).  Equal to ``precision.chop(x, "float16")`` on
    every float32.  (Numba 0.68 has no float16 type on the CPU.)
    """
    b = _f32_bits(x)
    a = b & np.uint32(0x7FFFFFFF)
    if a > np.uint32(0x7F800000):
        return x
    sign = b & np.uint32(0x80000000)
    if a >= np.uint32(0x477FF000):  # 65520
        return _bits_f32(sign | np.uint32(0x7F800000))
    if a >= np.uint32(0x38800000):  # 2^-14
        lsb = (a >> np.uint32(13)) & np.uint32(1)
        r = (a + np.uint32(0xFFF) + lsb) & np.uint32(0xFFFFE000)
        return _bits_f32(sign | r)
    up = np.float32(16777216.0)  # 2^24
    down = np.float32(5.9604644775390625e-08)  # 2^-24
    return np.rint(x * up) * down


@njit(**_JIT)
def round_to(x, fmt):
    """float32 ``x`` rounded to the format ``fmt`` (:data:`BF16` or :data:`FP16`)."""
    if fmt == BF16:
        return round_bf16(x)
    return round_fp16(x)


@njit(**_JIT)
def round_array(X, fmt):
    """Every entry of a float32 array rounded in place with :func:`round_to` (tests)."""
    Xf = X.reshape(-1)
    for i in range(Xf.shape[0]):
        Xf[i] = round_to(Xf[i], fmt)


# --------------------------------------------------------------------- LU


@njit(**_JIT)
def lu_growth_real(W, B, perm, mask):
    """Right-looking GEPP (xGETF2) on real W, tracking the exact growth factor.

    Parameters
    ----------
    W : ndarray (n, n), float32 or float64, C-contiguous
        Overwritten with the multipliers below the diagonal and U on and above.
    B : ndarray (n, n), int32 or int64
        ``W.view(int)``: the same memory read as integers.
    perm : ndarray (n,) intp
        ``arange(n)`` on entry; the row permutation on exit (A[perm] = L U).
    mask : int32 or int64
        All bits but the sign bit.

    Returns
    -------
    amax, gmax : int
        Bit patterns of max|a_ij| and of max_k max|a_ij^(k)| over A and
        every active Schur complement (Higham 2002, eq. 9.6).

    Notes
    -----
    GVL 2013, Alg. 3.4.1; LAPACK xGETF2.  For IEEE numbers of one sign the
    integer order of the bit patterns is the order of the values, so
    ``max(bits & mask)`` is max|a| with Inf and NaN above every finite
    number; unlike a float max, an integer max reduction vectorises
    without fastmath.  The new entries of the Schur complement are exactly
    the ones a step writes, so the maximum is taken over each updated row
    segment while it is still in L1: the growth costs one extra vector pass
    and no extra sweep over the matrix.  Every entry is updated as
    ``a - fl(l * u)`` in the order of ``k`` (no FMA contraction without
    fastmath), the multipliers by true division and the pivots by the same
    rule, so factors, permutation and growth equal ``lu/gepp``'s bit for bit.
    """
    n = W.shape[0]
    rzero = _real(W, 0)
    g = 0
    for i in range(n):
        Bi = B[i]
        for j in range(n):
            g = max(g, Bi[j] & mask)
    amax = g
    for k in range(n):
        p = _pivot(W, k)
        if p != k:
            _swap_rows(W, perm, k, p)
        piv = W[k, k]
        # A zero pivot under partial pivoting means the column below is zero
        # already: skipping the step keeps A[perm] = L U exact (xGETF2).
        if k == n - 1 or piv == rzero:
            continue
        u = W[k, k + 1 :]
        for i in range(k + 1, n):
            l = W[i, k] / piv
            W[i, k] = l
            Wi = W[i, k + 1 :]
            for j in range(Wi.shape[0]):
                Wi[j] = Wi[j] - l * u[j]
            Bi = B[i, k + 1 :]
            for j in range(Bi.shape[0]):
                g = max(g, Bi[j] & mask)
    return amax, g


@njit(**_JIT)
def lu_growth_emulated(W, B, perm, fmt):
    """:func:`lu_growth_real` on a float32 W holding values of an emulated format.

    The same elimination, with each multiplier ``fl32(a_ik / a_kk)`` and each
    updated entry ``fl32(a_ij - fl32(l_ik u_kj))`` rounded to the format
    ``fmt`` by :func:`round_to` as soon as it is formed: the rounding points
    of the emulated ``lu/gepp`` (``rnd`` on the multiplier column, then on
    the rank-1 update), in the same float32 operations, so W holds values of
    the format after every step and factors, pivots and growth (taken over
    the rounded Schur complements, from B, ``W.view(int32)``) are its bit
    for bit.  A separate kernel keeps the native one free of the branch.
    """
    n = W.shape[0]
    rzero = _real(W, 0)
    mask = np.int32(0x7FFFFFFF)
    g = np.int32(0)
    for i in range(n):
        Bi = B[i]
        for j in range(n):
            g = max(g, Bi[j] & mask)
    amax = g
    for k in range(n):
        p = _pivot(W, k)
        if p != k:
            _swap_rows(W, perm, k, p)
        piv = W[k, k]
        if k == n - 1 or piv == rzero:
            continue
        u = W[k, k + 1 :]
        for i in range(k + 1, n):
            l = round_to(W[i, k] / piv, fmt)
            W[i, k] = l
            Wi = W[i, k + 1 :]
            for j in range(Wi.shape[0]):
                Wi[j] = round_to(Wi[j] - l * u[j], fmt)
            Bi = B[i, k + 1 :]
            for j in range(Bi.shape[0]):
                g = max(g, Bi[j] & mask)
    return amax, g


@njit(**_JIT)
def lu_growth_complex(W, perm):
    """:func:`lu_growth_real` for complex W; returns ``(amax, gmax)`` as reals.

    |z| is a hypot call, so each new entry is first screened by
    |z|^2 = re^2 + im^2 against ``(1 - 8u) gmax^2``: below it (|z|^2 carries
    a relative error under 3u), |z| < gmax (1 - 2u), so the rounded |z|
    cannot exceed gmax and the exact maximum is unchanged while almost every
    hypot call is skipped.  The screen is used only while gmax^2 is finite
    and above tiny / eps^2, where those bounds hold; a NaN always fails it
    and goes to the exact comparison.
    """
    n = W.shape[0]
    zero = _const(W, 0)
    rzero = _real(W, 0)
    fi = np.finfo(W.real.dtype)
    lo = _real(W, fi.tiny) / (_real(W, fi.eps) * _real(W, fi.eps))  # tiny / eps^2
    inf = _real(W, np.inf)
    off = _real(W, -1)
    eps = _real(W, fi.eps)
    slack = _real(W, 1) - (eps + eps + eps + eps)  # 1 - 8u
    g = rzero
    for i in range(n):
        for j in range(n):
            a = abs(W[i, j])
            if a > g or a != a:
                g = a
    amax = g
    thr = off
    for k in range(n):
        p = _pivot(W, k)
        if p != k:
            _swap_rows(W, perm, k, p)
        piv = W[k, k]
        if k == n - 1 or piv == zero:
            continue
        g2 = g * g
        thr = g2 * slack if (g2 > lo and g2 < inf) else off
        u = W[k, k + 1 :]
        for i in range(k + 1, n):
            l = W[i, k] / piv
            W[i, k] = l
            Wi = W[i, k + 1 :]
            for j in range(Wi.shape[0]):
                Wi[j] = Wi[j] - l * u[j]
            for j in range(Wi.shape[0]):
                v = Wi[j]
                s = v.real * v.real + v.imag * v.imag
                if not s <= thr:
                    a = abs(v)
                    if a > g or a != a:
                        g = a
                        g2 = g * g
                        thr = g2 * slack if (g2 > lo and g2 < inf) else off
    return amax, g


@njit(**_JIT)
def split_lu(W, L):
    """Move the multipliers of a factored W into L (unit lower), leaving U in W."""
    n = W.shape[0]
    zero = _const(W, 0)
    one = _const(W, 1)
    for i in range(n):
        Wi = W[i]
        Li = L[i]
        for j in range(i):
            Li[j] = Wi[j]
            Wi[j] = zero
        Li[i] = one


@njit(**_JIT)
def _gemm_update(W, r0, r1, c0, c1, i0, i1, kind, minus, plus):
    """``W[r0:r1, c0:c1] -= W[r0:r1, i0:i1] @ W[i0:i1, c0:c1]`` by xGEMM, in place.

    A row-major block is the transpose of a column-major one with the same
    leading dimension, so the update is C^T -= U^T L^T with no copies.
    """
    if r1 <= r0 or c1 <= c0 or i1 <= i0:
        return 0
    ld = W.strides[0] // W.itemsize
    return _XXGEMM(kind, _NOTRANS, _NOTRANS, c1 - c0, r1 - r0, i1 - i0,
                   minus.ctypes, W[i0:, c0:].ctypes, ld, W[r0:, i0:].ctypes, ld,
                   plus.ctypes, W[r0:, c0:].ctypes, ld)


@njit(**_JIT)
def _trsm_loop(W, k0, k1, c0, c1):
    """``W[k0:k1, c0:c1] := L^{-1} W[k0:k1, c0:c1]``, L = unit lower W[k0:k1, k0:k1].

    Row-oriented forward substitution (GVL 2013, Alg. 3.1.1), in column
    tiles that keep the rows being updated in L1.
    """
    tile = 512
    for t0 in range(c0, c1, tile):
        t1 = min(t0 + tile, c1)
        for i in range(k0 + 1, k1):
            Ti = W[i, t0:t1]
            for p in range(k0, i):
                l = W[i, p]
                Tp = W[p, t0:t1]
                for j in range(Ti.shape[0]):
                    Ti[j] = Ti[j] - l * Tp[j]


@njit(**_JIT)
def _trsm(W, k0, k1, c0, c1, kind, minus, plus, leaf):
    """Recursive unit-lower TRSM: halves by substitution, the coupling by xGEMM."""
    if k1 - k0 <= leaf:
        _trsm_loop(W, k0, k1, c0, c1)
        return 0
    km = k0 + (k1 - k0) // 2
    info = _trsm(W, k0, km, c0, c1, kind, minus, plus, leaf)
    info |= _gemm_update(W, km, k1, c0, c1, k0, km, kind, minus, plus)
    info |= _trsm(W, km, k1, c0, c1, kind, minus, plus, leaf)
    return info


@njit(**_JIT)
def _getf2_panel(W, perm, k0, k1):
    """Unblocked GEPP of the panel ``W[k0:, k0:k1]``; row swaps span whole rows."""
    n = W.shape[0]
    zero = _const(W, 0)
    for k in range(k0, k1):
        p = _pivot(W, k)
        if p != k:
            _swap_rows(W, perm, k, p)
        piv = W[k, k]
        if piv == zero or k + 1 >= n:
            continue
        u = W[k, k + 1 : k1]
        for i in range(k + 1, n):
            l = W[i, k] / piv
            W[i, k] = l
            Wi = W[i, k + 1 : k1]
            for j in range(Wi.shape[0]):
                Wi[j] = Wi[j] - l * u[j]


@njit(**_JIT)
def _getrf_panel(W, perm, k0, k1, kind, minus, plus, leaf):
    """Recursive GEPP of the panel ``W[k0:, k0:k1]`` (LAPACK xGETRF2's splitting)."""
    if k1 - k0 <= leaf:
        _getf2_panel(W, perm, k0, k1)
        return 0
    n = W.shape[0]
    km = k0 + (k1 - k0) // 2
    info = _getrf_panel(W, perm, k0, km, kind, minus, plus, leaf)
    info |= _trsm(W, k0, km, km, k1, kind, minus, plus, leaf)
    info |= _gemm_update(W, km, n, km, k1, k0, km, kind, minus, plus)
    info |= _getrf_panel(W, perm, km, k1, kind, minus, plus, leaf)
    return info


@njit(**_JIT)
def lu_blocked(W, perm, block, kind, leaf):
    """Right-looking blocked GEPP (LAPACK xGETRF) on a C-contiguous W, in place.

    Each step factors the panel ``W[k0:, k0:k0+block]`` (recursively down
    to ``leaf`` columns, then unblocked), solves the block row U12 =
    L11^{-1} A12 and applies the trailing update A22 -= L21 U12 with one
    in-place xGEMM.  Returns 0, or nonzero when a BLAS call failed.
    """
    n = W.shape[0]
    minus = np.full(1, -1, W.dtype)
    plus = np.ones(1, W.dtype)
    info = 0
    for k0 in range(0, n, block):
        k1 = min(k0 + block, n)
        info |= _getrf_panel(W, perm, k0, k1, kind, minus, plus, leaf)
        if k1 < n:
            info |= _trsm(W, k0, k1, k1, n, kind, minus, plus, leaf)
            info |= _gemm_update(W, k1, n, k1, n, k0, k1, kind, minus, plus)
    return info


# --------------------------------------------------------------- Cholesky


@njit(**_JIT)
def potf2(W, col):
    """Unblocked Cholesky A = L L^H (lower), right-looking, in place.

    Parameters
    ----------
    W : ndarray (n, n), C-contiguous
        Lower triangle read (the imaginary part of the diagonal is ignored,
        as in zpotf2); overwritten with L, the strict upper triangle zeroed.
    col : ndarray (n,)
        Workspace.

    Returns
    -------
    info : int
        -1 on success, else the 0-based index of the first pivot that is
        not positive and finite (NaN included); W is then partly factored.
    pivot : real
        That pivot's value.

    Notes
    -----
    Outer-product form, GVL 2013, Alg. 4.2.2; Higham 2002, §10.1.  Same
    semantics as LAPACK xPOTF2 (uplo='L'), which uses the dot-product form:
    that form's inner loops are reductions, which do not vectorise without
    fastmath, while here column k is copied (conjugated) into ``col`` and
    every row of the trailing lower triangle gets a contiguous AXPY.
    """
    n = W.shape[0]
    rzero = _real(W, 0)
    inf = _real(W, np.inf)
    zero = _const(W, 0)
    for k in range(n):
        d = W[k, k].real
        if not (d > rzero and d < inf):
            return k, d
        lkk = np.sqrt(d)
        W[k, k] = lkk
        for i in range(k + 1, n):
            v = W[i, k] / lkk
            W[i, k] = v
            col[i] = np.conj(v)
        for i in range(k + 1, n):
            lik = W[i, k]
            Wi = W[i, k + 1 : i + 1]
            c = col[k + 1 : i + 1]
            for j in range(Wi.shape[0]):
                Wi[j] = Wi[j] - lik * c[j]
    for i in range(n):
        Wi = W[i]
        for j in range(i + 1, n):
            Wi[j] = zero
    return -1, rzero


# ------------------------------------------------------------ Householder


@njit(**_JIT)
def _larfg(W, j, v):
    """Reflector zeroing ``W[j+1:, j]`` (LAPACK xLARFG); returns tau.

    W[j, j] is overwritten with beta (real), ``W[j+1:, j]`` with the
    essential part of v, and ``v[j:]`` holds v with v[j] = 1, so that
    (I - tau v v^H)^H x = beta e_1.  beta has the sign opposite to
    Re(alpha) so that alpha - beta does not cancel; tau = 0 (H = I) when x
    is already a real multiple of e_1.  v is formed by division rather
    than by a reciprocal, so a tiny alpha - beta needs no rescaling loop.
    """
    m = W.shape[0]
    rzero = _real(W, 0)
    alpha = W[j, j]
    xnorm = _norm2(W[j + 1 :, j])
    v[j] = _const(W, 1)
    if xnorm == rzero and alpha.imag == rzero:
        for i in range(j + 1, m):
            v[i] = W[i, j]
        return _const(W, 0)
    beta = -np.copysign(np.hypot(abs(alpha), xnorm), alpha.real)
    tau = (beta - alpha) / beta
    d = alpha - beta
    for i in range(j + 1, m):
        x = W[i, j] / d
        W[i, j] = x
        v[i] = x
    W[j, j] = beta
    return tau


@njit(**_JIT)
def _apply_reflector(X, r0, c0, v, tau, w):
    """``X[r0:, c0:] := (I - tau v v^H) X[r0:, c0:]`` with v = ``v[r0:]``.

    w = v^H X is accumulated row by row (contiguous AXPYs, no reduction),
    then X -= (tau v) w, row by row.
    """
    m, n = X.shape
    zero = _const(X, 0)
    wv = w[c0:n]
    for c in range(wv.shape[0]):
        wv[c] = zero
    for i in range(r0, m):
        cv = np.conj(v[i])
        Xi = X[i, c0:]
        for c in range(Xi.shape[0]):
            wv[c] = wv[c] + cv * Xi[c]
    for i in range(r0, m):
        f = tau * v[i]
        Xi = X[i, c0:]
        for c in range(Xi.shape[0]):
            Xi[c] = Xi[c] - f * wv[c]


@njit(**_JIT)
def geqr2(W, tau):
    """Householder QR of W (m, n), m >= n, in place (LAPACK xGEQR2).

    R on and above the diagonal, the essential parts of the reflectors
    below it; ``tau`` (n,) gets their scalars, so that
    A = H_0 ... H_{n-1} [R; 0] with H_j = I - tau_j v_j v_j^H.
    GVL 2013, Alg. 5.2.1; Higham 2002, §19.3.
    """
    m, n = W.shape
    v = np.empty(m, W.dtype)
    w = np.empty(n, W.dtype)
    for j in range(min(m, n)):
        t = _larfg(W, j, v)
        tau[j] = t
        if j + 1 < n and t != _const(W, 0):
            _apply_reflector(W, j, j + 1, v, np.conj(t), w)  # H^H = I - conj(tau) v v^H


@njit(**_JIT)
def org2r(W, tau, Q):
    """Thin Q (m, n) = H_0 ... H_{n-1} [I_n; 0] by backward accumulation (xORG2R).

    Q must be ``eye(m, n)`` on entry.  Applying H_j last-to-first, H_j meets
    only ``Q[j:, j:]``: the columns before j are still e_0 ... e_{j-1}.
    GVL 2013, §5.1.6.
    """
    m, n = Q.shape
    v = np.empty(m, W.dtype)
    w = np.empty(n, W.dtype)
    for j in range(n - 1, -1, -1):
        t = tau[j]
        if t == _const(W, 0):
            continue
        v[j] = _const(W, 1)
        for i in range(j + 1, m):
            v[i] = W[i, j]
        _apply_reflector(Q, j, j, v, t, w)


@njit(**_JIT)
def apply_q(W, tau, X):
    """``X := H_0 ... H_{r-1} X`` for the r = len(tau) reflectors stored in W."""
    m = W.shape[0]
    v = np.empty(m, W.dtype)
    w = np.empty(X.shape[1], X.dtype)
    for j in range(tau.shape[0] - 1, -1, -1):
        t = tau[j]
        if t == _const(W, 0):
            continue
        v[j] = _const(W, 1)
        for i in range(j + 1, m):
            v[i] = W[i, j]
        _apply_reflector(X, j, 0, v, t, w)


# ----------------------------------------------------------------- Givens


@njit(**_JIT)
def _lartg(f, g, zero, rone):
    """Plane rotation with c real (LAPACK xLARTG): returns ``(c, s, r)`` with
    ``[[c, s], [-conj(s), c]] @ [f, g] = [r, 0]``; r has f's phase."""
    if g == zero:
        return rone, zero, f
    if f == zero:
        ag = abs(g)
        return rone - rone, np.conj(g) / ag, zero + ag
    af = abs(f)
    nrm = np.hypot(af, abs(g))
    phase = f / af
    return af / nrm, phase * np.conj(g) / nrm, phase * nrm


@njit(**_JIT)
def givens_qr(W, C, S):
    """Givens QR of W (m, n), m >= n, in place; rotation (i, j) stored in C, S.

    Column j is swept bottom-up, rotation (i, j) acting on rows i-1 and i
    (GVL 2013, Alg. 5.2.4).  R is left in the upper triangle of W (zeros
    below); ``C[i, j], S[i, j]`` hold the rotation that zeroed W[i, j]
    (c = 1, s = 0 where none was needed).
    """
    m, n = W.shape
    zero = _const(W, 0)
    rone = _real(W, 1)
    for j in range(min(n, m - 1)):
        for i in range(m - 1, j, -1):
            g = W[i, j]
            if g == zero:
                C[i, j] = rone
                S[i, j] = zero
                continue
            c, s, r = _lartg(W[i - 1, j], g, zero, rone)
            C[i, j] = c
            S[i, j] = s
            W[i - 1, j] = r
            W[i, j] = zero
            x = W[i - 1, j + 1 :]
            y = W[i, j + 1 :]
            sc = np.conj(s)
            for t in range(x.shape[0]):
                xt = x[t]
                yt = y[t]
                x[t] = c * xt + s * yt
                y[t] = c * yt - sc * xt


@njit(**_JIT)
def givens_q(C, S, Q):
    """Thin Q = G_1^H ... G_N^H [I; 0] from the stored rotations, backward.

    Q must be ``eye(m, n)`` on entry.  Rotation (i, j) meets only the block
    ``Q[j:, j:]`` when the product is formed last-to-first.
    """
    m, n = Q.shape
    zero = _const(S, 0)
    rone = _real(S, 1)
    for j in range(min(n, m - 1) - 1, -1, -1):
        for i in range(j + 1, m):
            c = C[i, j]
            s = S[i, j]
            if s == zero and c == rone:
                continue
            sc = np.conj(s)
            x = Q[i - 1, j:]
            y = Q[i, j:]
            for t in range(x.shape[0]):
                xt = x[t]
                yt = y[t]
                x[t] = c * xt - s * yt
                y[t] = sc * xt + c * yt


# ----------------------------------------------------------------- Jacobi


@njit(**_JIT)
def _pair(x, y):
    """``(||x||^2, ||y||^2, x^H y)`` in one pass, four partial sums each."""
    rzero = _real(x, 0)
    zero = _const(x, 0)
    a0 = a1 = a2 = a3 = rzero
    b0 = b1 = b2 = b3 = rzero
    g0 = g1 = g2 = g3 = zero
    m = x.shape[0]
    m4 = m - m % 4
    for i in range(0, m4, 4):
        x0 = x[i]
        x1 = x[i + 1]
        x2 = x[i + 2]
        x3 = x[i + 3]
        y0 = y[i]
        y1 = y[i + 1]
        y2 = y[i + 2]
        y3 = y[i + 3]
        a0 += _abs2(x0)
        a1 += _abs2(x1)
        a2 += _abs2(x2)
        a3 += _abs2(x3)
        b0 += _abs2(y0)
        b1 += _abs2(y1)
        b2 += _abs2(y2)
        b3 += _abs2(y3)
        g0 += np.conj(x0) * y0
        g1 += np.conj(x1) * y1
        g2 += np.conj(x2) * y2
        g3 += np.conj(x3) * y3
    for i in range(m4, m):
        a0 += _abs2(x[i])
        b0 += _abs2(y[i])
        g0 += np.conj(x[i]) * y[i]
    return (a0 + a1) + (a2 + a3), (b0 + b1) + (b2 + b3), (g0 + g1) + (g2 + g3)


@njit(**_JIT)
def _rotate(x, y, c, s, omega):
    """``x, y := c x - s conj(omega) y, s omega x + c y`` (a unitary plane rotation)."""
    so = s * omega
    soc = s * np.conj(omega)
    for i in range(x.shape[0]):
        xi = x[i]
        yi = y[i]
        x[i] = c * xi - soc * yi
        y[i] = so * xi + c * yi


@njit(**_JIT)
def jacobi_sweeps(G, Vt, tol, max_sweeps):
    """One-sided (Hestenes) Jacobi on the rows of G, accumulating the rotations in Vt.

    Parameters
    ----------
    G : ndarray (k, p), C-contiguous
        Row j is column j of the matrix X being decomposed; on exit the rows
        are mutually orthogonal to about ``tol``.
    Vt : ndarray (k, k)
        Identity on entry; row j is column j of V on exit, where X V has
        the rows of G as its columns.
    tol : real
        A pair (x, y) is rotated when |x^H y| > tol ||x|| ||y||.
    max_sweeps : int

    Returns
    -------
    int
        Sweeps used, or -1 if not converged.

    Notes
    -----
    Row-cyclic order.  The squared norms are recomputed for every pair in
    the same pass as the inner product, never updated by formula, so they
    cannot drift.  The rotation is Rutishauser's: zeta = (||y||^2 -
    ||x||^2) / (2 |x^H y|), t = sign(zeta) / (|zeta| + sqrt(1 + zeta^2))
    (the smaller root: the angle is at most pi/4), c = 1/sqrt(1 + t^2),
    s = c t; the phase omega = x^H y / |x^H y| makes the complex case a
    real rotation (Demmel & Veselić 1992, §4; GVL 2013, §8.6.4).

    Converged after a sweep that rotates nothing, or, as in LAPACK xGESVJ
    (Drmač & Veselić 2008), after one whose largest cosine c_max is below
    sqrt(k) tol and whose rotations were too small to matter,
    k c_max s_max < tol: a rotation by s moves the cosines of the other
    pairs by at most s c_max, so every cosine is then below 2 tol.  The
    second rule stops the sweeps that would only chase rounding errors: a
    freshly rotated pair has a computed cosine of order sqrt(k) u, the
    size of tol itself.
    """
    k = G.shape[0]
    rzero = _real(G, 0)
    rone = _real(G, 1)
    rtwo = rone + rone
    rhalf = rone / rtwo
    big = rone / np.sqrt(_real(G, np.finfo(G.real.dtype).eps))
    rk = _real(G, k)
    for sweep in range(max_sweeps):
        rotated = False
        cmax = rzero
        smax = rzero
        for p in range(k - 1):
            x = G[p]
            for q in range(p + 1, k):
                y = G[q]
                alpha, beta, gamma = _pair(x, y)
                ag = abs(gamma)
                scale = np.sqrt(alpha) * np.sqrt(beta)
                if not ag > tol * scale:
                    continue
                cmax = max(cmax, ag / scale)
                rotated = True
                zeta = (beta - alpha) / (rtwo * ag)
                if abs(zeta) > big:
                    t = rhalf / zeta  # sqrt(1 + zeta^2) = |zeta| to working precision
                else:
                    t = np.copysign(rone, zeta) / (abs(zeta) + np.sqrt(rone + zeta * zeta))
                c = rone / np.sqrt(rone + t * t)
                s = c * t
                smax = max(smax, abs(s))
                omega = gamma / ag
                _rotate(x, y, c, s, omega)
                _rotate(Vt[p], Vt[q], c, s, omega)
        if not rotated or (cmax < np.sqrt(rk) * tol and rk * cmax * smax < tol):
            return sweep + 1
    return -1


@njit(**_JIT)
def geqp2(W, tau, perm):
    """Householder QR with column pivoting of W (m, n), m >= n, in place (xGEQP2).

    On exit ``W[:, perm]`` of the input equals Q R with R in the upper
    triangle and the reflectors below it, as :func:`geqr2`.  The column of
    largest remaining norm is brought forward at each step (Businger &
    Golub 1965; GVL 2013, Alg. 5.4.1); the norms are downdated and
    recomputed from scratch when the downdate has lost about half its
    digits (LAPACK xLAQP2 with the safeguard of Drmač & Bujanović 2008,
    LAPACK Working Note 176).
    """
    m, n = W.shape
    rzero = _real(W, 0)
    rone = _real(W, 1)
    tol3z = np.sqrt(_real(W, np.finfo(W.real.dtype).eps))
    vn1 = np.empty(n, W.real.dtype)
    vn2 = np.empty(n, W.real.dtype)
    for j in range(n):
        vn1[j] = _norm2(W[:, j])
        vn2[j] = vn1[j]
    v = np.empty(m, W.dtype)
    w = np.empty(n, W.dtype)
    for i in range(min(m, n)):
        p = i
        for j in range(i + 1, n):
            if vn1[j] > vn1[p]:
                p = j
        if p != i:
            for r in range(m):
                t = W[r, i]
                W[r, i] = W[r, p]
                W[r, p] = t
            t2 = perm[i]
            perm[i] = perm[p]
            perm[p] = t2
            vn1[p] = vn1[i]
            vn2[p] = vn2[i]
        t = _larfg(W, i, v)
        tau[i] = t
        if i + 1 < n and t != _const(W, 0):
            _apply_reflector(W, i, i + 1, v, np.conj(t), w)
        for j in range(i + 1, n):
            if vn1[j] == rzero:
                continue
            r = abs(W[i, j]) / vn1[j]
            temp = max(rone - r * r, rzero)
            ratio = vn1[j] / vn2[j]
            if temp * ratio * ratio <= tol3z:
                vn1[j] = _norm2(W[i + 1 :, j])
                vn2[j] = vn1[j]
            else:
                vn1[j] = vn1[j] * np.sqrt(temp)


@njit(**_JIT)
def row_norms(G, out):
    """``out[j] = ||G[j]||_2`` (scaled, see :func:`_norm2`)."""
    for j in range(G.shape[0]):
        out[j] = _norm2(G[j])
