"""Tests of the dask.array implementations (factorbench.impls.distributed).

Every agreement check compares with the LAPACK impl of the same op at the
tolerance ``C n u kappa`` with C = 30, LAPACK's pass threshold (first-order
perturbation theory: a backward error of O(n u) moves the factors or the
solution by O(n u kappa)); kappa is known from the construction or computed.
The accuracy contrast of dask's block LU (pivoting inside diagonal blocks
only) against partial pivoting is pinned by bounds from theory (module
docstring of ``factorbench.impls.distributed``; Higham 2002, ch. 9 and 13).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("dask")

from factorbench.accuracy.metrics import bundle, passed  # noqa: E402
from factorbench.accuracy.precision import result_dtype_error, unit_roundoff  # noqa: E402
from factorbench.impls import distributed, get, impls  # noqa: E402
from tests.impls._matrices import haar  # noqa: E402

C = 30.0  # LAPACK TESTING's threshold, the constant of every tolerance below
DASK_IDS = ("qr/dask-tsqr", "lowrank/dask-svd-compressed", "cholesky/dask", "lu/dask",
            "solve/dask", "lstsq/dask")
KAPPA = 1e3


def _randsvd(rng, m, n, kappa, cplx=False):
    """U diag(sigma) V^H, Haar U and V, sigma geometric from 1 to 1/kappa."""
    s = np.geomspace(1.0, 1.0 / kappa, min(m, n))
    return (haar(rng, m, len(s), cplx) * s) @ haar(rng, n, len(s), cplx).conj().T


def _spd(rng, n, kappa, cplx=False):
    Q = haar(rng, n, n, cplx)
    A = (Q * np.geomspace(1.0, 1.0 / kappa, n)) @ Q.conj().T
    return (A + A.conj().T) / 2


def _dominant(rng, n, cplx=False):
    """Column diagonally dominant: partial pivoting makes no interchange and the
    growth factor is at most 2 (Higham 2002, Thm 9.9); every diagonal block is
    then dominant too, so dask's block LU pivots no more than GEPP."""
    G = rng.standard_normal((n, n)) + (1j * rng.standard_normal((n, n)) if cplx else 0)
    np.fill_diagonal(G, 0)
    return G + np.diag(np.abs(G).sum(axis=0) + 1.0)


def _dtypes(impl_id):
    return get(impl_id).dtypes


def _cases(*ids):
    return [pytest.param(i, d, id=f"{i}-{d}") for i in ids for d in _dtypes(i)]


def _tol(n, dtype, kappa):
    return C * n * unit_roundoff(dtype) * kappa


def _cond(A):
    return float(np.linalg.cond(A.astype(np.complex128 if A.dtype.kind == "c" else np.float64)))


# ---------------------------------------------------------------- registration


def test_registered_metadata():
    ids = {i.id for i in impls() if i.backend == "dask"}
    assert ids == set(DASK_IDS)
    for impl_id in DASK_IDS:
        impl = get(impl_id)
        assert impl.family == "distributed" and impl.requires == ("dask",)
        assert impl.parameters["chunk"] == distributed.CHUNKS
        assert impl.summary
        assert impl.stable == (impl.op not in ("lu", "solve"))
    assert set(get("lowrank/dask-svd-compressed").dtypes) == {"float64", "float32"}
    assert get("lowrank/dask-svd-compressed").parameters["p"] == [10]
    for impl_id in ("qr/dask-tsqr", "cholesky/dask", "lu/dask", "solve/dask", "lstsq/dask"):
        assert set(get(impl_id).dtypes) == {"float64", "float32", "complex128", "complex64"}


def test_without_dask_unavailable_and_never_imported():
    """With dask blocked, the registry loads, the impls are unavailable with the
    standard reason, and a cell of one is recorded ``unavailable``; without the
    block, loading the registry does not import dask."""
    code = """
import sys
sys.modules["dask"] = None  # import dask fails, find_spec("dask") is None
from factorbench.impls import available, load_builtin
load_builtin()
reasons = {k: v for k, v in available().items() if "dask" in k}
assert len(reasons) == 6, reasons
assert all(v == (False, "unavailable: module 'dask' is not installed")
           for v in reasons.values()), reasons
from factorbench.spec import SweepSpec
from factorbench.sweep import expand
from factorbench.worker import run_cell
(cell,) = expand(SweepSpec(ops=["lu"], impls=["lu/dask"], kinds=["randsvd"], sizes=[8],
                           kappas=[10.0], dtypes=["float64"], params={"chunk": [4]}))
rec = run_cell(cell, {"min_time": 0.0, "max_repeats": 1, "threshold": 30.0, "gemm": {}})
assert rec["status"] == "unavailable", rec
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    code = ("import sys; from factorbench.impls import load_builtin; load_builtin(); "
            "print('dask' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "False", out.stderr


# ---------------------------------------------------------- scheduler and threads


def test_compute_threaded_with_the_blas_threads_and_blas_at_one(monkeypatch):
    import dask
    from threadpoolctl import threadpool_info, threadpool_limits

    seen = {}
    real = dask.compute

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(dask, "compute", spy)

    def blas_threads():
        return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    task = dask.delayed(blas_threads)()
    with threadpool_limits(2, user_api="blas"), dask.config.set(scheduler="sync"):
        (inside,) = distributed._compute(task)
        after = blas_threads()
    assert seen["scheduler"] == "threads" and seen["num_workers"] == 2
    assert inside == 1 and after == 2


# ------------------------------------------------------ agreement with LAPACK

SQUARE_SHAPES = [(32, 8), (30, 8), (31, 7), (20, 64)]  # (n, chunk): tiled, padded, one block
TALL_SHAPES = [(45, 20, 8), (32, 32, 8), (64, 8, 7), (40, 12, 100)]  # (m, n, chunk)


@pytest.mark.parametrize("shape", TALL_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("impl_id, dtype", _cases("qr/dask-tsqr"))
def test_qr_agrees_with_lapack(impl_id, dtype, shape):
    m, n, chunk = shape
    cplx = dtype.startswith("complex")
    A = _randsvd(np.random.default_rng(1), m, n, KAPPA, cplx).astype(dtype)
    res = get(impl_id)(A, chunk=chunk)
    assert result_dtype_error(res, dtype) is None
    assert res.Q.shape == (m, n) and res.R.shape == (n, n)
    assert np.array_equal(np.triu(res.R), res.R)
    assert passed(bundle("qr", A, res, u=unit_roundoff(dtype)))
    ref = get("qr/lapack")(np.asfortranarray(A.copy()))
    # Thin QR is unique up to a unitary diagonal D: R = D R_ref, Q = Q_ref D^H.
    d = np.diagonal(res.R) / np.diagonal(ref.R)
    d = d / np.abs(d)
    tol = _tol(m, dtype, KAPPA)
    R_err = np.linalg.norm(res.R - d[:, None] * ref.R) / np.linalg.norm(ref.R)
    Q_err = np.linalg.norm(res.Q - ref.Q * d.conj()) / np.sqrt(n)
    assert R_err < tol and Q_err < tol, (R_err, Q_err, tol)


@pytest.mark.parametrize("shape", SQUARE_SHAPES, ids=lambda s: f"n{s[0]}-c{s[1]}")
@pytest.mark.parametrize("impl_id, dtype", _cases("cholesky/dask"))
def test_cholesky_agrees_with_lapack(impl_id, dtype, shape):
    n, chunk = shape
    A = _spd(np.random.default_rng(2), n, KAPPA, dtype.startswith("complex")).astype(dtype)
    res = get(impl_id)(A, chunk=chunk)
    assert result_dtype_error(res, dtype) is None
    c, nb = res.extras["chunk"], res.extras["blocks"]
    assert c <= chunk and nb == -(-n // chunk) and res.extras["padding"] == c * nb - n
    assert passed(bundle("cholesky", A, res, u=unit_roundoff(dtype)))
    ref = get("cholesky/lapack")(np.asfortranarray(A.copy()))
    err = np.linalg.norm(res.L - ref.L) / np.linalg.norm(ref.L)
    assert err < _tol(n, dtype, KAPPA), err


@pytest.mark.parametrize("shape", SQUARE_SHAPES, ids=lambda s: f"n{s[0]}-c{s[1]}")
@pytest.mark.parametrize("impl_id, dtype", _cases("lu/dask"))
def test_lu_agrees_with_lapack_where_no_cross_block_pivoting(impl_id, dtype, shape):
    """On a column diagonally dominant matrix neither method exchanges rows, so
    the factors are the same LU and agree to n u kappa."""
    n, chunk = shape
    A = _dominant(np.random.default_rng(3), n, dtype.startswith("complex")).astype(dtype)
    res = get(impl_id)(A, chunk=chunk)
    assert result_dtype_error(res, dtype) is None
    assert passed(bundle("lu", A, res, u=unit_roundoff(dtype)))
    ref = get("lu/lapack")(np.asfortranarray(A.copy()))
    assert np.array_equal(res.perm, ref.perm) and np.array_equal(res.perm, np.arange(n))
    kappa = _cond(A)
    for X, Y in ((res.L, ref.L), (res.U, ref.U)):
        err = np.linalg.norm(X - Y) / np.linalg.norm(Y)
        assert err < _tol(n, dtype, kappa), err


@pytest.mark.parametrize("dtype", ["float64", "complex64"])
@pytest.mark.parametrize("shape", SQUARE_SHAPES, ids=lambda s: f"n{s[0]}-c{s[1]}")
def test_lu_perm_stays_inside_blocks(shape, dtype):
    """On a general matrix: ``A[perm] = L U`` to working precision, perm is a
    permutation that only moves rows within their block, L unit lower."""
    n, chunk = shape
    rng = np.random.default_rng(4)
    A = _randsvd(rng, n, n, 10.0, dtype.startswith("complex")).astype(dtype)
    res = get("lu/dask")(A, chunk=chunk)
    c = res.extras["chunk"]
    assert res.perm.dtype == np.intp and sorted(res.perm) == list(range(n))
    assert np.array_equal(res.perm // c, np.arange(n) // c)
    assert np.array_equal(np.tril(res.L), res.L) and np.all(np.diagonal(res.L) == 1)
    assert np.array_equal(np.triu(res.U), res.U)
    assert passed(bundle("lu", A, res, u=unit_roundoff(dtype)))


@pytest.mark.parametrize("shape", SQUARE_SHAPES, ids=lambda s: f"n{s[0]}-c{s[1]}")
@pytest.mark.parametrize("impl_id, dtype", _cases("solve/dask"))
def test_solve_agrees_with_lapack(impl_id, dtype, shape):
    n, chunk = shape
    rng = np.random.default_rng(5)
    cplx = dtype.startswith("complex")
    A = _dominant(rng, n, cplx).astype(dtype)
    b = (rng.standard_normal(n) + (1j * rng.standard_normal(n) if cplx else 0)).astype(dtype)
    b0 = b.copy()
    res = get(impl_id)(A, b, chunk=chunk)
    assert result_dtype_error(res, dtype) is None and res.x.shape == (n,)
    assert np.array_equal(b, b0)
    ref = get("solve/gesv")(np.asfortranarray(A.copy()), b)
    err = np.linalg.norm(res.x - ref.x) / np.linalg.norm(ref.x)
    assert err < 2 * _tol(n, dtype, _cond(A)), err


@pytest.mark.parametrize("shape", TALL_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("impl_id, dtype", _cases("lstsq/dask"))
def test_lstsq_agrees_with_lapack(impl_id, dtype, shape):
    """Consistent right-hand side: both errors are O(n u kappa) (Higham 2002, Thm 20.1)."""
    m, n, chunk = shape
    rng = np.random.default_rng(6)
    cplx = dtype.startswith("complex")
    A = _randsvd(rng, m, n, KAPPA, cplx).astype(dtype)
    x = rng.standard_normal(n) + (1j * rng.standard_normal(n) if cplx else 0)
    b = (A.astype(x.dtype if cplx else np.float64) @ x).astype(dtype)
    res = get(impl_id)(A, b, chunk=chunk)
    assert result_dtype_error(res, dtype) is None and res.x.shape == (n,)
    ref = get("lstsq/gels")(np.asfortranarray(A.copy()), b)
    err = np.linalg.norm(res.x - ref.x) / np.linalg.norm(ref.x)
    assert err < 2 * _tol(m, dtype, KAPPA), err


LOWRANK_SHAPES = [(45, 20, 8), (32, 32, 8), (20, 45, 8), (40, 30, 64)]


@pytest.mark.parametrize("shape", LOWRANK_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("impl_id, dtype", _cases("lowrank/dask-svd-compressed"))
def test_svd_compressed_agrees_with_gesdd_on_exact_rank(impl_id, dtype, shape):
    """On an exactly rank-k matrix the sketch captures range(A) (HMT 2011,
    Thm 10.5 with a zero tail), so A = U S Vh to O(m u) and the singular
    values agree with xGESDD's to O(m u sigma_1) (Weyl)."""
    m, n, chunk = shape
    k = 4
    rng = np.random.default_rng(7)
    A = ((haar(rng, m, k) * np.geomspace(1.0, 0.1, k)) @ haar(rng, n, k).T).astype(dtype)
    res = get(impl_id)(A, k, np.random.default_rng(8), chunk=chunk)
    assert result_dtype_error(res, dtype) is None
    assert res.U.shape == (m, k) and res.s.shape == (k,) and res.Vh.shape == (k, n)
    assert np.all(np.diff(res.s) <= 0)
    assert res.extras["sketch_width"] == min(max(20, k + 10), min(m, n))
    tol = _tol(m, dtype, 1.0)
    Af = A.astype(np.float64)
    err = np.linalg.norm(Af - (res.U * res.s) @ res.Vh) / np.linalg.norm(Af)
    ref = get("lowrank/gesdd")(np.asfortranarray(A.copy()), k)
    assert err < tol and np.max(np.abs(res.s - ref.s)) < tol * ref.s[0], (err, tol)


def test_svd_compressed_reproducible_from_rng():
    rng = np.random.default_rng(9)
    A = _randsvd(rng, 60, 40, 1e6)
    f = get("lowrank/dask-svd-compressed")
    one = f(A, 5, 123, chunk=16)
    two = f(A, 5, np.random.default_rng(123), chunk=16)
    other = f(A, 5, 124, chunk=16)
    assert one.extras["seed"] == two.extras["seed"] != other.extras["seed"]
    for X, Y in zip((one.U, one.s, one.Vh), (two.U, two.s, two.Vh), strict=True):
        assert np.array_equal(X, Y)
    assert not np.array_equal(one.U, other.U)


def test_svd_compressed_refuses_complex_and_bad_arguments():
    f = get("lowrank/dask-svd-compressed")
    with pytest.raises(TypeError, match="A\\^H"):
        f(np.ones((10, 8), dtype=np.complex128), 2, 0)
    for kw in ({"k": 9}, {"k": 0}, {"k": 2, "p": -1}, {"k": 2, "iterator": "lanczos"}):
        with pytest.raises(ValueError):
            f(np.ones((10, 8)), rng=0, **kw)


def test_dask_svd_compressed_is_wrong_for_complex_input():
    """Why complex is not declared: dask uses A^T / Q^T where A^H / Q^H are needed
    (dask/array/linalg.py, compression_matrix and svd_compressed).  If this test
    fails, dask has fixed it and complex dtypes can be declared."""
    import dask
    import dask.array as da

    rng = np.random.default_rng(10)
    k = 3
    A = (haar(rng, 40, k, True) * [1.0, 0.5, 0.25]) @ haar(rng, 30, k, True).conj().T
    U, s, Vh = dask.compute(*da.linalg.svd_compressed(da.from_array(A, chunks=(10, 10)), k,
                                                      seed=1), scheduler="sync")
    err = np.linalg.norm(A - (U * s) @ Vh) / np.linalg.norm(A)
    assert err > 0.1  # an exact rank-3 matrix: a correct method gives O(u)


def test_shapes_refused():
    with pytest.raises(ValueError, match="square"):
        get("lu/dask")(np.ones((4, 3)))
    with pytest.raises(ValueError, match="m >= n"):
        get("qr/dask-tsqr")(np.ones((3, 4)))
    with pytest.raises(ValueError, match="chunk"):
        get("cholesky/dask")(np.eye(4), chunk=0)
    with pytest.raises(TypeError, match="complex right-hand side"):
        get("solve/dask")(np.eye(4), np.ones(4, dtype=complex))


def test_cholesky_not_positive_definite_raises():
    A = np.eye(16)
    A[12, 12] = -1.0  # the last diagonal block is indefinite
    with pytest.raises(np.linalg.LinAlgError):
        get("cholesky/dask")(A, chunk=8)


# --------------------------------------------- block LU against partial pivoting

N, CHUNK, EPS = 64, 16, 2.0**-20


def _cross_block_pair():
    """(M, A = M[swap]): M = I + EPS E is column diagonally dominant, and A swaps
    the block rows of M pairwise (0 <-> 1, 2 <-> 3), so every diagonal block of
    A is an EPS-sized off-diagonal block of M while the unit diagonal of M sits
    in the block below or above.  Partial pivoting brings those rows back."""
    rng = np.random.default_rng(11)
    M = np.eye(N) + EPS * rng.standard_normal((N, N))
    off = np.abs(M).sum(axis=0) - np.abs(np.diagonal(M))
    assert np.all(np.abs(np.diagonal(M)) > off)  # column diagonally dominant
    blocks = np.arange(N).reshape(-1, CHUNK)
    swap = blocks[[1, 0, 3, 2]].ravel()
    return M, M[swap], swap


def _lu_metrics(impl_id, A, **kw):
    res = get(impl_id)(A.copy(order="F"), **kw)
    return res, bundle("lu", A, res, u=unit_roundoff("float64"))


def test_block_lu_fails_where_partial_pivoting_needs_cross_block_exchanges():
    M, A, swap = _cross_block_pair()
    dask_res, dsk = _lu_metrics("lu/dask", A, chunk=CHUNK)
    lapack_res, ref = _lu_metrics("lu/lapack", A)
    # Partial pivoting picks M's diagonal (it dominates its column in every
    # Schur complement): perm undoes the swap and growth <= 2 (Higham 2002, Thm 9.9).
    assert np.array_equal(A[lapack_res.perm], M)
    assert ref["growth_factor"] <= 2 and passed(ref)
    # dask keeps each row in its block.  In exact arithmetic U's first pivot of
    # block 1 is the largest |entry| of the first column of the Schur
    # complement S = A11 - A10 A00^-1 A01 (partial pivoting inside the block),
    # so max|U| >= max|S[:, 0]|, of order 1/EPS here; 1/2 covers rounding.
    c = CHUNK
    A00, A01, A10, A11 = A[:c, :c], A[:c, c:2 * c], A[c:2 * c, :c], A[c:2 * c, c:2 * c]
    S = A11 - A10 @ np.linalg.solve(A00, A01)
    bound = np.max(np.abs(S[:, 0])) / np.max(np.abs(A))
    assert bound > 0.1 / EPS
    assert dsk["growth_factor"] >= 0.5 * bound
    assert dsk["growth_factor"] > 1e4 * ref["growth_factor"]
    # The backward error of LU is bounded by gamma_n |L||U| (Higham 2002, Thm 9.3),
    # and with multipliers and U entries of order g max|A| the products that
    # must cancel to A's entries leave rounding errors of order u g max|A|: a
    # ratio of order g / n, at least 1/(2 EPS n) = 8e3 by the bound above
    # (1.1e6 measured, g = 9e6), against the pass threshold 30.
    assert not passed(dsk) and dsk["backward_ratio"] > 30 > ref["backward_ratio"]
    assert np.array_equal(dask_res.perm // c, np.arange(N) // c)


def test_block_solve_fails_where_gesv_passes():
    M, A, _ = _cross_block_pair()
    rng = np.random.default_rng(12)
    x = rng.standard_normal(N)
    b = A @ x
    u = unit_roundoff("float64")
    out = {}
    for impl_id, kw in (("solve/dask", {"chunk": CHUNK}), ("solve/gesv", {})):
        res = get(impl_id)(A.copy(order="F"), b.copy(), **kw)
        out[impl_id] = bundle("solve", A, res, u=u, kappa=_cond(A), b=b, x_true=x)
    assert passed(out["solve/gesv"])
    assert not passed(out["solve/dask"]) and out["solve/dask"]["backward_ratio"] > 30


def test_block_lu_passes_where_no_cross_block_pivoting_is_needed():
    M, _, _ = _cross_block_pair()
    dask_res, dsk = _lu_metrics("lu/dask", M, chunk=CHUNK)
    lapack_res, ref = _lu_metrics("lu/lapack", M)
    assert np.array_equal(dask_res.perm, np.arange(N))
    assert np.array_equal(lapack_res.perm, np.arange(N))
    assert dsk["growth_factor"] <= 2 and ref["growth_factor"] <= 2  # Thm 9.9
    assert passed(dsk) and passed(ref)


def test_singular_diagonal_block_raises():
    """Exactly singular leading block: GEPP exchanges rows; dask's trsm cannot."""
    A = np.zeros((16, 16))
    A[:8, 8:] = np.eye(8)
    A[8:, :8] = np.eye(8)
    with pytest.raises(np.linalg.LinAlgError, match="exactly singular"):
        get("lu/dask")(A, chunk=8)
    with pytest.raises(np.linalg.LinAlgError, match="exactly singular"):
        get("solve/dask")(A, np.ones(16), chunk=8)
    res = get("lu/dask")(A, chunk=16)  # one block: xGETRF's partial pivoting
    assert np.array_equal(A[res.perm], res.L @ res.U)


def test_mirrored_family_shows_block_pivoting_growth_through_the_harness():
    """The ``mirrored`` family (J (I + 2^-20 G)) puts every pivot partial pivoting
    wants in the mirrored row, so for any chunk below n the diagonal block the
    block LU factors first holds only 2^-20-sized entries, while the block rows
    below it hold M's unit diagonal: multipliers and U entries of order 2^20 = 1e6
    follow, where GEPP's growth is at most 2 (Higham 2002, Thm 9.9)."""
    from factorbench.spec import SweepSpec
    from factorbench.sweep import expand
    from factorbench.worker import run_cell

    options = {"min_time": 0.0, "max_repeats": 1, "max_time": 5.0, "threshold": 30.0,
               "gemm": {}, "accuracy_only": True}
    recs = {}
    for impl_id in ("lu/dask", "lu/lapack", "solve/dask", "solve/gesv"):
        spec = SweepSpec(ops=[impl_id.split("/")[0]], impls=[impl_id], kinds=["mirrored"],
                         sizes=[64], dtypes=["float64"], params={"chunk": [16]})
        (cell,) = expand(spec)
        recs[impl_id] = run_cell(cell, options)
    assert recs["lu/lapack"]["status"] == "ok" and recs["lu/lapack"]["growth_factor"] <= 2
    assert recs["lu/dask"]["status"] == "failed"
    assert recs["lu/dask"]["growth_factor"] > 1e3 * recs["lu/lapack"]["growth_factor"]
    assert recs["lu/dask"]["backward_ratio"] > 30
    assert recs["solve/gesv"]["status"] == "ok" and recs["solve/dask"]["status"] == "failed"
