"""Tests of the blocked and recursive LU and Cholesky (factorbench.impls.blocked).

Pass/fail decisions go through the harness's own metrics (``bundle`` and the
LAPACK-style pass rule, threshold 30 on ratios scaled by n u); agreement
between two runs of the same algorithm (NumPy and array-api-strict) is held
to THRESHOLD * n * u times the condition number of the factor.  The
array-api-strict runs exercise the generic code path that CuPy takes, so
they keep the code inside the array API standard; they are slow, so n <= 40.

BLAS runs on one thread here (``one_blas_thread``): the results do not depend
on it, and these small factorizations make hundreds of BLAS calls each, every
one of which can wait for OpenBLAS's thread pool to wake up; on a loaded
2-core machine that took this file from 3 s to 60 s.
"""

from __future__ import annotations

import zlib

import array_api_strict as xps
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from factorbench.accuracy import matrices
from factorbench.accuracy.metrics import bundle, passed
from factorbench.accuracy.precision import EMULATED, result_dtype_error, unit_roundoff
from factorbench.impls import get, impls
from factorbench.impls.blocked import _xp
from factorbench.impls.results import LU, Cholesky

DTYPES = ("float32", "float64", "complex64", "complex128")
LU_IMPLS = ("lu/blocked", "lu/recursive")
CHOL_IMPLS = ("cholesky/blocked", "cholesky/recursive")
IMPLS = LU_IMPLS + CHOL_IMPLS
THRESHOLD = 30.0
KAPPA = 1e3

#: id -> (family, swept block sizes)
EXPECTED = {
    "lu/blocked": ("blocked", [32, 64, 128, 256]),
    "lu/recursive": ("recursive", [4, 8, 16, 32]),
    "cholesky/blocked": ("blocked", [32, 64, 128, 256]),
    "cholesky/recursive": ("recursive", [8, 16, 32, 64]),
}


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _rng(*key):
    return np.random.default_rng(zlib.crc32(" ".join(map(str, key)).encode()))


def _matrix(impl_id, dtype, n, kappa=KAPPA, seed=0):
    """randsvd (LU) or spd (Cholesky) from the harness's generators, in ``dtype``."""
    kind = "spd" if impl_id.startswith("cholesky") else "randsvd"
    tm = matrices.generate(kind, n, n, kappa=kappa, complex_=dtype.startswith("complex"),
                           rng=_rng(impl_id, dtype, n, seed))
    return tm.A.astype(dtype)


def _fresh(A):
    """What the worker hands an impl with layout="F": a Fortran-ordered copy."""
    return np.array(A, order="F", copy=True)


def _host(x):
    return x if isinstance(x, np.ndarray) else np.from_dlpack(x)


def _metrics(impl_id, A, res):
    op = impl_id.split("/")[0]
    dtype = np.dtype(A.dtype).name
    return bundle(op, A, res, u=unit_roundoff(dtype))


def _rel(X, Y):
    X, Y = np.asarray(X, dtype=complex), np.asarray(Y, dtype=complex)
    return np.linalg.norm(X - Y) / max(np.linalg.norm(X), np.finfo(float).tiny)


# ----------------------------------------------------------------- registry


def test_registry_metadata():
    registered = {i.id: i for i in impls() if i.id in EXPECTED}
    assert set(registered) == set(EXPECTED)
    for impl_id, (family, blocks) in EXPECTED.items():
        impl = registered[impl_id]
        assert impl.backend == "numpy" and impl.family == family
        assert impl.layout == "F" and impl.stable and impl.device == "cpu"
        assert set(impl.dtypes) == set(DTYPES) | set(EMULATED)  # rounds in its block ops
        assert impl.parameters == {"block": blocks}
        assert impl.summary and impl.availability() == (True, "")


# ---------------------------------------- every impl x dtype x size x block


@pytest.mark.parametrize("block", [1, 8, 16, 64])
@pytest.mark.parametrize("n", [37, 64, 100])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl_id", IMPLS)
def test_pass_rule(impl_id, dtype, n, block):
    A = _matrix(impl_id, dtype, n)
    res = get(impl_id)(_fresh(A), block=block)
    assert isinstance(res, LU if impl_id.startswith("lu") else Cholesky)
    assert result_dtype_error(res, dtype) is None
    factors = (res.L, res.U) if isinstance(res, LU) else (res.L,)
    for X in factors:
        assert isinstance(X, np.ndarray) and X.dtype == np.dtype(dtype) and X.shape == (n, n)
    if isinstance(res, LU):
        assert isinstance(res.perm, np.ndarray) and res.perm.dtype.kind == "i"
        assert np.all(np.diagonal(res.L) == 1)
        assert res.extras["info"] == 0
    else:
        d = np.diagonal(res.L)
        assert np.all(d.real > 0) and np.all(d.imag == 0)
    metrics = _metrics(impl_id, A, res)  # checks exact triangularity and the permutation
    assert passed(metrics, THRESHOLD, size=n), metrics


@pytest.mark.parametrize("impl_id", IMPLS)
def test_block_sizes_agree(impl_id):
    """Every block size computes the same factorization up to rounding, the same
    pivots for LU; block >= n is the unblocked algorithm."""
    n, u = 50, unit_roundoff("float64")
    A = _matrix(impl_id, "float64", n, kappa=10.0)
    ref = get(impl_id)(_fresh(A), block=n)
    for block in (1, 3, 7, 16, 49):
        res = get(impl_id)(_fresh(A), block=block)
        if impl_id.startswith("lu"):
            assert np.array_equal(res.perm, ref.perm)
            assert _rel(res.U, ref.U) <= THRESHOLD * n * u * 10.0
        assert _rel(res.L, ref.L) <= THRESHOLD * n * u * 10.0


# ------------------------------------------------------------ array-api-strict


@pytest.mark.parametrize("block", [1, 8, 64])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl_id", IMPLS)
def test_array_api_strict_matches_numpy(impl_id, dtype, block):
    """The generic path (the one CuPy takes: no SciPy, no in-place views) gives the
    NumPy path's pivots and factors equal to THRESHOLD n u kappa."""
    n = 37
    A = _matrix(impl_id, dtype, n, kappa=10.0)
    ref = get(impl_id)(_fresh(A), block=block)
    A_s = xps.asarray(A)
    res = get(impl_id)(A_s, block=block)
    assert np.array_equal(_host(A_s), A), "array-api-strict input modified"
    tol = THRESHOLD * n * unit_roundoff(dtype) * 10.0
    if impl_id.startswith("lu"):
        assert isinstance(res.perm, np.ndarray) and np.array_equal(res.perm, ref.perm)
        assert res.extras == ref.extras
        L, U = _host(res.L), _host(res.U)
        assert L.dtype == ref.L.dtype and U.dtype == ref.U.dtype
        assert _rel(L, ref.L) <= tol and _rel(U, ref.U) <= tol
        assert passed(_metrics(impl_id, A, LU(res.perm, L, U)), THRESHOLD, size=n)
    else:
        L = _host(res.L)
        assert L.dtype == ref.L.dtype
        assert _rel(L, ref.L) <= tol
        assert passed(_metrics(impl_id, A, Cholesky(L)), THRESHOLD, size=n)


# --------------------------------------------------------------------- LU


def _separated(rng, n, cplx=False):
    """P^T L U with |l_ij| <= 1/2 below a unit diagonal: at every step of partial
    pivoting the pivot row is the one holding L's 1, ahead of the rest by a
    factor of 2, so rounding cannot change the choice.  Returns (A, perm)."""
    def draw(shape):
        x = rng.uniform(-1, 1, shape)
        return x + 1j * rng.uniform(-1, 1, shape) if cplx else x

    L = np.tril(draw((n, n)), -1) * (0.5 / np.sqrt(2)) + np.eye(n)
    U = np.triu(draw((n, n)), 1) + np.diag(rng.uniform(1, 2, n))
    perm = rng.permutation(n)
    A = np.empty((n, n), dtype=L.dtype)
    A[perm] = L @ U
    return A, perm


@pytest.mark.parametrize("cplx", [False, True])
@pytest.mark.parametrize("impl_id", LU_IMPLS)
def test_same_pivots_as_gepp(impl_id, cplx):
    n = 60
    A, perm = _separated(_rng(impl_id, cplx), n, cplx)
    gepp = get("lu/gepp")(A)
    assert np.array_equal(gepp.perm, perm)
    for block in (1, 8, 16, 64):
        res = get(impl_id)(_fresh(A), block=block)
        assert np.array_equal(res.perm, perm), block


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex128"])
@pytest.mark.parametrize("impl_id", LU_IMPLS)
def test_wilkinson_growth(impl_id, dtype):
    """Growth exactly 2^(n-1) (every entry a power of two, so no rounding), ties to
    the first row: no interchange at all."""
    for n in (24, 40):
        A = matrices.generate("wilkinson", n, n).A.astype(dtype)
        for block in (1, 8, 16, 64):
            res = get(impl_id)(_fresh(A), block=block)
            metrics = _metrics(impl_id, A, res)
            assert metrics["growth_factor"] == 2.0 ** (n - 1)
            assert np.array_equal(res.perm, np.arange(n))
            assert metrics["backward_error"] == 0.0


@pytest.mark.parametrize("impl_id", LU_IMPLS)
def test_exactly_singular(impl_id):
    """A zero column: the step is skipped as xGETF2 does, the factors are exact and
    ``extras["info"]`` points at the zero pivot as xGETRF's INFO."""
    n = 30
    A = _matrix(impl_id, "float64", n)
    A[:, 11] = 0
    for block in (1, 8, 64):
        res = get(impl_id)(_fresh(A), block=block)
        assert np.all(np.isfinite(res.L)) and np.all(np.isfinite(res.U))
        assert res.extras["info"] == 12 and res.U[11, 11] == 0
        assert passed(_metrics(impl_id, A, res), THRESHOLD, size=n)
    lapack = get("lu/lapack")(_fresh(A))
    assert lapack.extras["info"] == 12


@pytest.mark.parametrize("impl_id", LU_IMPLS)
def test_zero_and_tiny(impl_id):
    for n in (1, 2, 5):
        Z = np.zeros((n, n))
        res = get(impl_id)(_fresh(Z), block=2)
        assert np.array_equal(res.L, np.eye(n)) and not res.U.any()
        assert res.extras["info"] == 1
    res = get(impl_id)(np.array([[0.0, 1.0], [2.0, 3.0]], order="F"), block=1)
    assert res.perm.tolist() == [1, 0]


# --------------------------------------------------------------- Cholesky


def _indefinite(rng, n, k, cplx=False):
    """L D L^H with L unit lower (small multipliers), D = 1 except D[k] = -1: the
    leading minors of order <= k are positive definite and the one of order
    k + 1 is not, so Cholesky fails exactly at pivot k (the pivot is D[k])."""
    X = rng.standard_normal((n, n)) + (1j * rng.standard_normal((n, n)) if cplx else 0)
    L = np.tril(X, -1) * (0.2 / np.sqrt(n)) + np.eye(n)
    d = np.ones(n)
    d[k] = -1
    A = (L * d) @ L.conj().T
    return (A + A.conj().T) / 2


@pytest.mark.parametrize("cplx", [False, True])
@pytest.mark.parametrize("impl_id", CHOL_IMPLS)
def test_not_positive_definite_names_the_pivot(impl_id, cplx):
    n = 40
    for k in (0, 7, 8, 16, 21, 39):
        A = _indefinite(_rng(impl_id, k, cplx), n, k, cplx)
        for block in (1, 8, 16, 64):
            with pytest.raises(np.linalg.LinAlgError,
                               match=rf"not positive definite: pivot k = {k} "):
                get(impl_id)(_fresh(A), block=block)
    with pytest.raises(np.linalg.LinAlgError, match=r"pivot k = 21 "):
        get(impl_id)(xps.asarray(_indefinite(_rng(impl_id, cplx), 30, 21, cplx)), block=8)


@pytest.mark.parametrize("impl_id", CHOL_IMPLS)
def test_nan_is_an_error(impl_id):
    """OpenBLAS xPOTRF returns INFO = 0 on NaN; these raise at the first NaN pivot."""
    n = 20
    A = _matrix(impl_id, "float64", n)
    A[9, 4] = A[4, 9] = np.nan  # l_94 is NaN, so pivot 9 is the first NaN
    for block in (1, 4, 8, 64):
        for arr in (_fresh(A), xps.asarray(A)):
            with pytest.raises(np.linalg.LinAlgError, match=r"pivot k = 9 is nan"):
                get(impl_id)(arr, block=block)
    with pytest.raises(np.linalg.LinAlgError, match=r"pivot k = 0 "):
        get(impl_id)(np.full((5, 5), np.nan, order="F"), block=2)
    with pytest.raises(np.linalg.LinAlgError, match=r"pivot k = 2 is inf"):
        get(impl_id)(np.diag([1.0, 2.0, np.inf, 1.0]).copy(order="F"), block=2)


@pytest.mark.parametrize("impl_id", CHOL_IMPLS)
def test_non_real_diagonal_and_upper_triangle(impl_id):
    n = 12
    A = _matrix(impl_id, "complex128", n)
    B = A.copy()
    B[5, 5] += 0.5j
    with pytest.raises(np.linalg.LinAlgError, match="pivot k = 5 is not real"):
        get(impl_id)(_fresh(B), block=4)
    # Only the lower triangle is read, as xPOTRF (uplo='L') reads it.
    C = A.copy()
    C[np.triu_indices(n, 1)] = np.nan
    L = get(impl_id)(_fresh(C), block=4).L
    assert _rel(L, get(impl_id)(_fresh(A), block=4).L) == 0


# -------------------------------------------------------- input handling


@pytest.mark.parametrize("impl_id", IMPLS)
def test_input_overwritten_only_as_documented(impl_id):
    """A writable Fortran-ordered NumPy input is the workspace (as lu/lapack and
    cholesky/lapack use theirs); C order, strided views and read-only arrays are
    copied and left bit-identical."""
    n = 20
    A = _matrix(impl_id, "float64", n)
    ref = get(impl_id)(_fresh(A), block=8)
    big = np.zeros((2 * n, 2 * n))
    big[::2, ::2] = A
    ro = _fresh(A)
    ro.setflags(write=False)
    for X in (np.array(A, order="C"), big[::2, ::2], ro):
        saved = X.copy()
        res = get(impl_id)(X, block=8)
        assert np.array_equal(X, saved)
        assert np.array_equal(res.L, ref.L)
    W = _fresh(A)
    res = get(impl_id)(W, block=8)
    assert np.shares_memory(res.L, W)  # the input's storage holds L
    doc = get(impl_id).func.__doc__
    assert "A : array (n, n), overwritten" in doc


@pytest.mark.parametrize("impl_id", IMPLS)
def test_bad_input(impl_id):
    f = get(impl_id)
    with pytest.raises(ValueError, match="square"):
        f(np.ones((3, 4)))
    with pytest.raises(TypeError):
        f(np.eye(3, dtype=np.int64))
    with pytest.raises(TypeError):
        f(np.eye(3, dtype=np.longdouble))  # float16/bfloat16 are emulated; wider is refused
    with pytest.raises(ValueError, match="block"):
        f(np.eye(3), block=0)


# -------------------------------------------------- _xp kernels on NumPy


@pytest.mark.parametrize("dtype", DTYPES)
def test_xp_kernels_in_place_on_sub_blocks(dtype):
    """gemm_update and trsm write in place into sub-blocks of a Fortran array (one
    BLAS library, no copies) and agree with the generic array-API path."""
    rng = _rng("xp", dtype)
    cplx = dtype.startswith("complex")
    X = rng.standard_normal((60, 60)) + (1j * rng.standard_normal((60, 60)) if cplx else 0)
    W = np.asfortranarray(X.astype(dtype))
    u = unit_roundoff(dtype)
    # the pass rule's threshold 30 times the inner dimension (5) times u; the
    # entries are O(1) Gaussians, so no cancellation scale enters
    tol = 30 * 5 * u
    for conj in (False, True):
        W0 = W.copy()
        C, A = W[10:40, 20:30], W[10:40, 0:5]
        B = W[45:55, 0:5] if conj else W[0:5, 20:30]
        want = C - A @ (B.conj().T if conj else B)
        generic = _xp.gemm_update(xps, xps.asarray(C.copy()), xps.asarray(A.copy()),
                                  xps.asarray(B.copy()), conj_trans_b=conj)
        assert _xp.gemm_update(np, C, A, B, conj_trans_b=conj) is C
        assert _rel(W[10:40, 20:30], want) <= tol and _rel(_host(generic), want) <= tol
        untouched = np.ones(W.shape, bool)
        untouched[10:40, 20:30] = False
        assert np.array_equal(W[untouched], W0[untouched])
    T = np.asfortranarray(np.tril(W[0:10, 0:10]) + 4 * np.eye(10, dtype=dtype))
    # triangular solve: residual ~ k u kappa(T) (Higham 2002, Thm. 8.5), k = 10
    tol = 30 * 10 * u * np.linalg.cond(T.astype(np.complex128 if cplx else np.float64))
    for lower in (True, False):
        Tl = T if lower else np.asfortranarray(T.T)
        for side in ("left", "right"):
            for conj in (False, True):
                B = W[20:30, 30:45] if side == "left" else W[20:35, 30:40]
                B0 = B.copy()
                X = _xp.trsm(np, Tl, B, lower=lower, side=side, conj_trans=conj)
                assert X is B
                op = Tl.conj().T if conj else Tl
                assert _rel(op @ X if side == "left" else X @ op, B0) <= tol
                Xs = _xp.trsm(xps, xps.asarray(Tl), xps.asarray(B0), lower=lower, side=side,
                              conj_trans=conj)
                assert _rel(_host(Xs), X) <= tol
    with pytest.raises(ValueError, match="shapes"):
        _xp.gemm_update(np, W[:5, :5], W[:5, :3], W[:4, :5])
    with pytest.raises(ValueError, match="does not match"):
        _xp.trsm(np, T, W[:9, :3], lower=True)


def test_xp_fallbacks_when_not_in_place():
    """A C-ordered or read-only C is not written: the update comes back as a new array."""
    rng = _rng("fallback")
    C = rng.standard_normal((6, 4))
    A, B = rng.standard_normal((6, 3)), rng.standard_normal((3, 4))
    want = C - A @ B
    saved = C.copy()
    out = _xp.gemm_update(np, C, A, B)
    assert np.allclose(out, want) and np.array_equal(C, saved)
    ro = np.asfortranarray(saved)
    ro.setflags(write=False)
    assert np.allclose(_xp.gemm_update(np, ro, A, B), want)
    # an operand overlapping C is never read while C is written
    W = np.asfortranarray(rng.standard_normal((8, 8)))
    want = W[:, :4] - W[:, 2:5] @ W[2:5, :4]
    out = _xp.gemm_update(np, W[:, :4], W[:, 2:5], W[2:5, :4])
    assert np.allclose(out, want)


def test_trsm_never_overwrites_an_aliased_or_read_only_rhs():
    """T overlapping B, or a read-only B: the solve comes back as a new array and
    neither input changes (the in-place paths would corrupt T or raise)."""
    rng = _rng("trsm-alias")
    W = np.asfortranarray(rng.standard_normal((8, 12)) + 8 * np.eye(8, 12))
    saved = W.copy()
    T, B = W[:, :8], W[:, 4:]  # B is Fortran-contiguous and holds T's last columns
    assert B.flags.f_contiguous and np.shares_memory(T, B)
    X = _xp.trsm(np, T, B, lower=True)
    assert np.array_equal(W, saved)
    L = np.tril(saved[:, :8])
    assert np.allclose(L @ X, saved[:, 4:])
    ro = np.asfortranarray(saved[:, 4:])
    ro.setflags(write=False)
    X = _xp.trsm(np, np.asfortranarray(L), ro, lower=True)
    assert np.allclose(L @ X, saved[:, 4:])
    with pytest.raises(ValueError, match="side"):
        _xp.trsm(np, T, B, lower=True, side="up")
