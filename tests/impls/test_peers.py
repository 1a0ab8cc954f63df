"""Peer low-rank SVDs (scikit-learn randomized_svd, SciPy svds): accuracy, determinism,
working precision, k limits, and availability without scikit-learn.

The test matrix is ``U diag(sigma) V^H`` with Haar U, V (90 x 60, k = 8):
sigma_1..k log-spaced from 1 to 0.1, then a tail from 1e-2 to 1e-3, a gap of 10
after k.  Why every method's ``||A - U diag(s) Vh||_F`` is within ``1 + 1e-2`` of
the optimum ``tau = sqrt(sum_{j>k} sigma_j^2)`` (about 0.03 here): the rank-k
result is the projection on a computed k-space whose angle theta to the dominant
one adds at most about ``sigma_1 theta`` in quadrature, ratio ``<= sqrt(1 +
(sigma_1 theta / tau)^2)``.  Randomized SVD with q >= 2 power iterations: theta
is of order ``(sigma_{k+1} / sigma_k)^(2q+1) = 1e-5`` times a modest constant
(Halko, Martinsson & Tropp 2011, thm. 10.7 and sec. 10.4).  ARPACK and PROPACK
converged to machine precision: ``theta ~ u sigma_1^2 / (sigma_k^2 - sigma_{k+1}^2)
<= 1e-5`` even in single precision.  LOBPCG stops at its default residual
tolerance ``tau_r = sqrt(eps) min(m, n) ~ 1e-6`` on the Gram matrix: ``theta <=
tau_r / (sigma_k^2 - sigma_{k+1}^2) ~ 1e-4``.  So ``sigma_1 theta / tau <= 3e-3``
and the ratio is below ``1 + 1e-5``; ``1 + 1e-2`` leaves room for the constants.
Singular values: within ``100 u`` relatively; LOBPCG's Ritz values of the Gram
matrix within ``tau_r^2 / (sigma_k^2 (sigma_k^2 - sigma_{k+1}^2))`` (about 1e-8).

Orthonormality: ``||I - Q^H Q||_1 <= 10 max(m, n) u`` for U and V, except PROPACK
in double precision, whose partial reorthogonalisation only keeps the Lanczos
vectors semi-orthogonal (level ``sqrt(eps)``, Simon 1984; Larsen 1998): there the
bound is ``k sqrt(eps)`` (measured: thousands of times ``max(m, n) u``).
"""

import importlib.util

import numpy as np
import pytest

from factorbench.accuracy.metrics import lowrank_error_ratio, orthogonality_loss
from factorbench.accuracy.precision import precision, result_dtype_error
from factorbench.impls import get, peers
from tests.impls._matrices import haar

PEERS = ["lowrank/sklearn-rsvd", "lowrank/svds-arpack", "lowrank/svds-propack",
         "lowrank/svds-lobpcg"]
M, N, K = 90, 60, 8
SLACK = 30.0  # LAPACK TESTING's threshold, the pass rule's constant
RATIO_LIMIT = 1 + 1e-2
SIGMA = np.concatenate((np.logspace(0, -1, K), np.logspace(-2, -3, N - K)))


def _cases():
    return [pytest.param(i, d, id=f"{i.split('/')[1]}-{d}") for i in PEERS for d in get(i).dtypes]


def _matrix(dtype, m=M, n=N, sigma=SIGMA, seed=0):
    rng = np.random.default_rng(seed)
    cplx = precision(dtype).is_complex
    r = min(m, n)
    A = (haar(rng, m, r, cplx) * sigma) @ haar(rng, n, r, cplx).conj().T
    return A.astype(dtype)


def test_registered_metadata():
    assert {i.id for i in map(get, PEERS)} == set(PEERS)
    rsvd = get("lowrank/sklearn-rsvd")
    assert rsvd.backend == "sklearn" and rsvd.requires == ("sklearn",)
    assert rsvd.parameters == {"p": [10], "n_iter": ["auto"]}
    assert rsvd.dtypes == ("float64", "float32")
    assert get("lowrank/svds-lobpcg").dtypes == ("float64", "complex128")
    # semi-orthogonal vectors in double precision: expected to fail the orthogonality rule
    assert [get(i).stable for i in PEERS] == [True, True, False, True]
    for name in PEERS:
        impl = get(name)
        assert impl.family == "peer" and impl.op == "lowrank"
    for name in PEERS[1:]:
        assert get(name).backend == "scipy" and get(name).requires == ()


@pytest.mark.parametrize("impl_id, dtype", _cases())
def test_near_optimal_orthonormal_in_working_precision(impl_id, dtype):
    impl = get(impl_id)
    p = precision(dtype)
    A = _matrix(dtype)
    A0 = A.copy()
    res = impl(A, K, np.random.default_rng(1))
    assert np.array_equal(A, A0), "the input was modified"
    assert result_dtype_error(res, dtype) is None
    assert res.U.dtype == p.dtype and res.Vh.dtype == p.dtype and res.s.dtype == p.real
    assert res.U.shape == (M, K) and res.s.shape == (K,) and res.Vh.shape == (K, N)
    assert np.all(np.diff(res.s) <= 0), "s not descending"
    U, s, Vh = (np.asarray(x, dtype=np.complex128) for x in (res.U, res.s, res.Vh))
    ratio = lowrank_error_ratio(A.astype(np.complex128), (U * s) @ Vh, SIGMA, K, p.u)
    assert 1 - 1e-6 <= ratio <= RATIO_LIMIT, ratio
    # singular values are perfectly conditioned (Weyl): a backward-stable method gets
    # them to max(m, n) u ||A|| (SLACK: LAPACK's threshold 30), sigma_1 = 1
    s_tol = SLACK * max(M, N) * p.u
    if impl_id == "lowrank/svds-lobpcg":  # Ritz values of the Gram matrix, residual tau_r
        tau_r = np.sqrt(np.finfo(p.real).eps) * N
        s_tol = tau_r**2 / (SIGMA[K - 1] ** 2 * (SIGMA[K - 1] ** 2 - SIGMA[K] ** 2))
    np.testing.assert_allclose(res.s, SIGMA[:K], rtol=s_tol, atol=0)
    if impl_id == "lowrank/svds-propack" and p.u < 1e-10:
        orth = K * np.sqrt(np.finfo(p.real).eps)
    else:
        orth = SLACK * max(M, N) * p.u  # the orthogonality pass rule
    assert orthogonality_loss(U) <= orth
    assert orthogonality_loss(Vh.conj().T) <= orth


@pytest.mark.parametrize("impl_id", PEERS)
def test_same_seed_bit_identical(impl_id):
    impl = get(impl_id)
    A = _matrix("float64")
    runs = [impl(A, K, np.random.default_rng(11)), impl(A, K, np.random.default_rng(11)),
            impl(A, K, 11)]  # an int seed is normalised to default_rng(11)
    for r in runs[1:]:
        for f in ("U", "s", "Vh"):
            assert np.array_equal(getattr(r, f), getattr(runs[0], f)), f


def test_sklearn_extras_record_what_was_used():
    A = _matrix("float64")
    r = peers.lowrank_sklearn_rsvd(A, K, 0)  # k = 8 >= 0.1 * 60: "auto" is 4, LU
    assert r.extras["n_iter"] == 4 and r.extras["power_iteration_normalizer"] == "LU"
    assert r.extras["n_oversamples"] == 10 and r.extras["flip_sign"] is True
    r = peers.lowrank_sklearn_rsvd(A, 2, 0, n_iter=2, p=5)
    assert r.extras["n_iter"] == 2 and r.extras["power_iteration_normalizer"] == "none"
    assert r.extras["n_oversamples"] == 5
    r = peers.lowrank_sklearn_rsvd(_matrix("float64", m=40, n=300, sigma=SIGMA[:40]), 3, 0)
    assert r.extras["n_iter"] == 7 and r.extras["transpose"] is True  # k < 0.1 * 40
    assert r.U.shape == (40, 3) and r.Vh.shape == (3, 300)


@pytest.mark.parametrize(
    "impl_id, k, match",
    [
        ("lowrank/sklearn-rsvd", 0, r"k must be in 1\.\.60"),
        ("lowrank/sklearn-rsvd", 61, r"k must be in 1\.\.60"),
        ("lowrank/svds-propack", 0, r"k must be in 1\.\.60"),
        ("lowrank/svds-propack", 61, r"k must be in 1\.\.60"),
        ("lowrank/svds-arpack", 0, r"k must be in 1\.\.59"),
        ("lowrank/svds-arpack", 60, r"1\.\.59 .*ARPACK needs k < min\(m, n\)"),
        ("lowrank/svds-lobpcg", 60, r"1\.\.59 .*LOBPCG needs k < min\(m, n\)"),
        ("lowrank/svds-lobpcg", -1, r"k must be in 1\.\.59"),
        ("lowrank/svds-arpack", 2.5, "k must be an integer"),
    ],
)
def test_bad_k_is_a_clear_value_error(impl_id, k, match):
    with pytest.raises(ValueError, match=match):
        get(impl_id)(_matrix("float64"), k, np.random.default_rng(0))


def test_arpack_complex_limit_is_min_minus_two():
    A = _matrix("complex128", m=20, n=12, sigma=np.linspace(2, 1, 12))
    with pytest.raises(ValueError, match=r"1\.\.10 .*complex Hermitian"):
        peers.lowrank_svds_arpack(A, 11, 0)
    assert peers.lowrank_svds_arpack(A, 10, 0).s.shape == (10,)


@pytest.mark.parametrize("impl_id", ["lowrank/sklearn-rsvd", "lowrank/svds-propack"])
def test_k_equal_min_dimension_where_allowed(impl_id):
    sigma = np.linspace(2, 1, 12)
    res = get(impl_id)(_matrix("float64", m=20, n=12, sigma=sigma), 12, 0)
    np.testing.assert_allclose(res.s, sigma, rtol=1e-12)


@pytest.mark.parametrize("impl_id, dtype", [("lowrank/sklearn-rsvd", "complex128"),
                                            ("lowrank/svds-lobpcg", "float32"),
                                            ("lowrank/svds-lobpcg", "complex64")])
def test_undeclared_dtypes_are_refused_not_upcast(impl_id, dtype):
    assert dtype not in get(impl_id).dtypes
    with pytest.raises(TypeError, match="takes"):
        get(impl_id)(_matrix(dtype), K, 0)


def test_lobpcg_warnings_kept_in_extras():
    # min(m, n) = 20 < 5 k: LOBPCG hands the problem to a dense eigensolver, and says so
    res = peers.lowrank_svds_lobpcg(_matrix("float64", m=30, n=20, sigma=SIGMA[:20]), 5, 0)
    assert any("dense eigensolver" in w for w in res.extras["warnings"])


def _without_sklearn(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "sklearn" or name.startswith("sklearn."):
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_unavailable_without_sklearn(monkeypatch):
    _without_sklearn(monkeypatch)
    reason = "unavailable: module 'sklearn' is not installed"
    assert get("lowrank/sklearn-rsvd").availability() == (False, reason)
    assert get("lowrank/svds-arpack").availability() == (True, "")

    from factorbench.spec import SweepSpec
    from factorbench.sweep import expand
    from factorbench.worker import run_cell

    cells = expand(SweepSpec(ops=["lowrank"], impls=["lowrank/sklearn-rsvd"], sizes=[16],
                             kinds=["lowrank"], dtypes=["float64"], rank=3))
    assert len(cells) == 1  # n_iter "auto"
    for cell in cells:
        assert tuple(cell["resolved"]) == ("unavailable", reason)
        rec = run_cell(cell, {"min_time": 0.0, "max_repeats": 1, "max_time": 1.0})
        assert rec["status"] == "unavailable" and rec["message"] == reason
