"""Tests of the SciPy/LAPACK drivers (factorbench.impls.lapack).

Every ``scipy`` impl is run on every native precision at kappa = 1e3 and must
return results in the working precision and pass the LAPACK-style metric
bundle.  The matrices are built here (Haar factors from the QR of a Gaussian
matrix, geometric spectrum 1 .. 1/kappa) so that these tests do not depend on
the matrix-family module.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.linalg import LinAlgError

from factorbench.accuracy.metrics import bundle, passed
from factorbench.accuracy.precision import result_dtype_error, unit_roundoff
from factorbench.impls import get, impls
from tests.impls._matrices import haar as _haar

DTYPES = ("float64", "float32", "complex128", "complex64")
KAPPA = 1e3
TALL = {"qr", "qrcp", "svd", "lstsq", "lowrank"}
SPD = {"cholesky", "eigh"}
K = 10  # lowrank target rank
LAPACK_IDS = sorted(i.id for i in impls() if i.backend == "scipy" and i.family == "library")




def _spectrum(p, kappa):
    return np.geomspace(1.0, 1.0 / kappa, p)


def randsvd(rng, m, n, kappa, cplx):
    """(A, sigma): U diag(sigma) V^H with Haar U, V and geometric sigma."""
    s = _spectrum(min(m, n), kappa)
    U, V = _haar(rng, m, len(s), cplx), _haar(rng, n, len(s), cplx)
    return (U * s) @ V.conj().T, s


def spd(rng, n, kappa, cplx):
    """(A, eigenvalues ascending): Q diag(lam) Q^H, symmetrised."""
    lam = _spectrum(n, kappa)
    Q = _haar(rng, n, n, cplx)
    A = (Q * lam) @ Q.conj().T
    return (A + A.conj().T) / 2, lam[::-1].copy()


def _fortran(A):
    """A fresh Fortran-ordered copy, as the harness hands it (layout="F")."""
    return np.array(A, order="F", copy=True)


def _case(impl, dtype, seed=0):
    """Build the cell's inputs; return (args for the impl, kwargs for bundle)."""
    rng = np.random.default_rng(seed)
    cplx = dtype.startswith("complex")
    op = impl.op
    m, n = (80, 40) if op in TALL else (60, 60)
    sigma = eigenvalues = b = x_true = k = None
    if op in SPD or impl.structure == "spd":
        A, eigenvalues = spd(rng, n, KAPPA, cplx)
        sigma = eigenvalues[::-1]
    else:
        A, sigma = randsvd(rng, m, n, KAPPA, cplx)
    A_w = A.astype(dtype)
    args = [_fortran(A_w)]
    if op in ("solve", "lstsq"):
        x_true = rng.standard_normal(n) + (1j * rng.standard_normal(n) if cplx else 0)
        x_true = x_true.astype(dtype).astype(A.dtype)  # exactly representable
        b = (A_w.astype(A.dtype) @ x_true).astype(dtype)
        args.append(b.copy())
    elif op == "lowrank":
        k = K
        args += [k, np.random.default_rng(1)]
    kw = dict(u=unit_roundoff(dtype), kappa=KAPPA, b=b, x_true=x_true, sigma=sigma,
              eigenvalues=eigenvalues, k=k)
    return A_w, args, kw


def test_registered():
    expected = {
        "lu/lapack", "cholesky/lapack", "qr/lapack", "qrcp/lapack", "svd/gesdd",
        "svd/gesvd", "eigh/syevd", "eigh/syevr", "solve/gesv", "solve/posv",
        "lstsq/gelsd", "lstsq/gelsy", "lstsq/gels", "lowrank/gesdd",
    }
    assert expected <= set(LAPACK_IDS)
    for impl_id in expected:
        impl = get(impl_id)
        assert impl.layout == "F"
        assert set(impl.dtypes) == set(DTYPES)
        assert impl.summary, f"{impl_id} has no docstring summary"
    assert get("solve/posv").structure == "spd"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl_id", LAPACK_IDS)
def test_accuracy_and_precision(impl_id, dtype):
    impl = get(impl_id)
    A_w, args, kw = _case(impl, dtype)
    res = impl(*args)
    assert result_dtype_error(res, dtype) is None
    metrics = bundle(impl.op, A_w, res, **kw)
    assert passed(metrics), metrics
    if kw["b"] is not None:  # the right-hand side is not modified
        assert np.array_equal(args[1], kw["b"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_result_dtypes_exact(dtype):
    """Factors in the working dtype; s and w in its real counterpart."""
    real = np.finfo(np.dtype(dtype)).dtype
    A_w, args, _ = _case(get("svd/gesdd"), dtype)
    res = get("svd/gesdd")(*args)
    assert res.U.dtype == dtype and res.Vh.dtype == dtype and res.s.dtype == real
    A_w, args, _ = _case(get("eigh/syevr"), dtype)
    res = get("eigh/syevr")(*args)
    assert res.V.dtype == dtype and res.w.dtype == real


@pytest.mark.parametrize("impl_id", ["cholesky/lapack", "solve/posv"])
@pytest.mark.parametrize("dtype", ["float64", "complex64"])
def test_indefinite_raises(impl_id, dtype):
    rng = np.random.default_rng(3)
    A, _ = spd(rng, 30, 10.0, dtype.startswith("complex"))
    A = A - 0.5 * np.eye(30)  # eigenvalues in [-0.4, 0.5]: indefinite
    args = [_fortran(A.astype(dtype))]
    if impl_id.startswith("solve"):
        args.append(np.ones(30, dtype=dtype))
    with pytest.raises(LinAlgError, match=r"potrf|posv"):
        get(impl_id)(*args)


@pytest.mark.parametrize("dtype", ["float64", "float32", "complex128"])
def test_gels_rank_deficient_raises(dtype):
    rng = np.random.default_rng(4)
    A, _ = randsvd(rng, 50, 20, 10.0, dtype.startswith("complex"))
    A[:, 7] = 0  # exactly rank deficient: R[7, 7] is an exact zero
    with pytest.raises(LinAlgError, match=r"gels.*info=8"):
        get("lstsq/gels")(_fortran(A.astype(dtype)), np.ones(50, dtype=dtype))


def test_gesv_singular_raises():
    A = np.ones((5, 5))
    with pytest.raises(LinAlgError, match=r"dgesv.*info="):
        get("solve/gesv")(_fortran(A), np.ones(5))


def test_lu_singular_returns_factorization():
    A = np.arange(16.0).reshape(4, 4)  # rank 2
    res = get("lu/lapack")(_fortran(A))
    assert res.extras["info"] > 0
    np.testing.assert_allclose(A[res.perm], res.L @ res.U, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "complex64"])
def test_lu_perm_convention(dtype):
    rng = np.random.default_rng(5)
    A = rng.standard_normal((50, 50)).astype(dtype)
    A[0] *= 1e-3  # force row interchanges
    res = get("lu/lapack")(_fortran(A))
    assert res.perm.dtype.kind == "i" and sorted(res.perm) == list(range(50))
    assert not np.array_equal(res.perm, np.arange(50))
    assert np.array_equal(np.tril(res.L), res.L) and np.all(np.diag(res.L) == 1)
    assert np.array_equal(np.triu(res.U), res.U)
    assert np.all(np.abs(res.L) <= 1)  # partial pivoting
    u = unit_roundoff(dtype)
    err = np.linalg.norm(A[res.perm] - res.L @ res.U, 1) / np.linalg.norm(A, 1)
    assert err < 30 * 50 * u


@pytest.mark.parametrize("order", ["F", "C"])
@pytest.mark.parametrize("impl_id", ["lu/lapack", "qr/lapack", "svd/gesdd", "solve/gesv"])
def test_layouts_accepted(impl_id, order):
    """Fortran order is the declared layout; C order must still be correct."""
    impl = get(impl_id)
    A_w, args, kw = _case(impl, "float64", seed=7)
    args[0] = np.array(A_w, order=order)
    assert passed(bundle(impl.op, A_w, impl(*args), **kw))


def test_lowrank_exact_rank():
    rng = np.random.default_rng(6)
    A = rng.standard_normal((70, 5)) @ rng.standard_normal((5, 40))
    res = get("lowrank/gesdd")(_fortran(A), 5, rng)
    assert res.U.shape == (70, 5) and res.s.shape == (5,) and res.Vh.shape == (5, 40)
    err = np.linalg.norm(A - (res.U * res.s) @ res.Vh) / np.linalg.norm(A)
    assert err < 100 * unit_roundoff("float64")


def test_lowrank_bad_k():
    with pytest.raises(ValueError):
        get("lowrank/gesdd")(np.ones((6, 4), order="F"), 5, None)


def test_complex_rhs_for_real_matrix_refused():
    with pytest.raises(TypeError):
        get("solve/gesv")(np.eye(3, order="F"), np.ones(3, dtype=complex))


def test_unsupported_dtype_refused():
    with pytest.raises(TypeError):
        get("qr/lapack")(np.ones((4, 3), dtype=np.float16, order="F"))


@pytest.mark.parametrize("impl_id", ["lu/lapack", "cholesky/lapack"])
def test_fortran_input_used_in_place(impl_id):
    """On the declared layout the driver works in A's storage: no hidden copy."""
    A, _ = spd(np.random.default_rng(8), 40, 10.0, False)
    A_f = _fortran(A)
    res = get(impl_id)(A_f)
    assert np.shares_memory(res.L, A_f)
