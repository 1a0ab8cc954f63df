import math

import numpy as np
import pytest

from factorbench.accuracy.metrics import (
    LOWRANK_THRESHOLD,
    ResultError,
    _div,
    bundle,
    limits,
    passed,
)
from factorbench.accuracy.precision import result_dtype_error
from factorbench.impls.results import QR, SVD


def test_zero_denominator_follows_lapack():
    assert _div(0.0, 0.0) == 0.0
    assert _div(1.0, 0.0) == math.inf
    assert math.isnan(_div(math.nan, 0.0))


def test_pass_rule():
    assert passed({"backward_ratio": 29.9, "orthogonality_ratio": 1.0})
    assert not passed({"backward_ratio": 30.0})
    assert not passed({"backward_ratio": 1.0, "growth_factor": math.nan})
    assert not passed({"backward_ratio": math.inf})
    assert not passed({"growth_factor": 2.0})  # no ratio: nothing verified
    assert passed({"orthogonality_ratio": 1.0, "lowrank_error_ratio": 1.5})
    assert not passed({"orthogonality_ratio": 1.0, "lowrank_error_ratio": LOWRANK_THRESHOLD})


def test_lowrank_ratio_is_one_for_truncated_svd():
    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.standard_normal((40, 20)))
    V, _ = np.linalg.qr(rng.standard_normal((20, 20)))
    sigma = np.logspace(0, -6, 20)
    A = (U * sigma) @ V.T
    k = 5
    res = SVD(U[:, :k], sigma[:k], V[:, :k].T)
    m = bundle("lowrank", A, res, u=2.0**-53, sigma=sigma, k=k)
    assert m["lowrank_error_ratio"] == pytest.approx(1.0, rel=1e-6)
    res2 = SVD(U[:, :k], sigma[:k], V[:, 1:k + 1].T)  # wrong right vectors
    assert bundle("lowrank", A, res2, u=2.0**-53, sigma=sigma, k=k)["lowrank_error_ratio"] > 2


def test_lists_are_not_accepted_as_factors():
    Q = np.eye(3, dtype=np.float32)
    assert "not an array" in result_dtype_error(QR(Q.tolist(), Q), "float32")
    assert result_dtype_error(QR(Q, Q), "float32") is None


def test_forward_error_limit_scales_with_sqrt_size():
    assert limits(30.0, size=256)["kappa_scaled_error"] == 30.0 * 16
    assert limits(30.0, size=256)["backward_ratio"] == 30.0
    assert limits(30.0)["kappa_scaled_error"] == 30.0


def _usv(rng, m, n, sigma):
    U, _ = np.linalg.qr(rng.standard_normal((m, len(sigma))))
    V, _ = np.linalg.qr(rng.standard_normal((n, len(sigma))))
    return U, V, (U * sigma) @ V.T


def test_lowrank_spectral_ratio_is_one_for_truncated_svd_and_arpack_agrees(monkeypatch):
    """||A - A_k||_2 = sigma_{k+1} (Eckart-Young); the ARPACK path used above
    _SPECTRAL_EXACT rows/columns gives the same 2-norm as the full SVD."""
    from factorbench.accuracy import metrics

    rng = np.random.default_rng(1)
    sigma = np.geomspace(1.0, 1e-3, 30)
    U, V, A = _usv(rng, 60, 30, sigma)
    u = np.finfo(float).eps / 2
    k = 6
    exact = bundle("lowrank", A, SVD(U[:, :k], sigma[:k], V[:, :k].T), u=u, sigma=sigma, k=k)
    assert exact["lowrank_spectral_ratio"] == pytest.approx(1.0, abs=1e-12)
    # an approximation off in one direction: the 2-norm ratio sees it in full
    Vb = V[:, :k].copy()
    Vb[:, 0] = V[:, k]
    worse = bundle("lowrank", A, SVD(U[:, :k], sigma[:k], Vb.T), u=u, sigma=sigma, k=k)
    E = A - (U[:, :k] * sigma[:k]) @ Vb.T
    assert worse["lowrank_spectral_ratio"] == pytest.approx(
        np.linalg.norm(E, 2) / sigma[k], rel=1e-12)
    monkeypatch.setattr(metrics, "_SPECTRAL_EXACT", 0)
    lanczos = bundle("lowrank", A, SVD(U[:, :k], sigma[:k], Vb.T), u=u, sigma=sigma, k=k)
    assert lanczos["lowrank_spectral_ratio"] == pytest.approx(
        worse["lowrank_spectral_ratio"], rel=1e-7)


def test_adaptive_lowrank_is_judged_by_its_tolerance_at_the_rank_it_chose():
    rng = np.random.default_rng(2)
    sigma = np.concatenate((np.geomspace(1.0, 1e-2, 8), np.full(22, 1e-7)))
    U, V, A = _usv(rng, 50, 30, sigma)
    u = np.finfo(float).eps / 2
    l = 8
    res = SVD(U[:, :l], sigma[:l], V[:, :l].T, extras={"rank": l, "tol": 1e-4})
    out = bundle("lowrank", A, res, u=u, sigma=sigma, k=3)  # k ignored: the method chose 8
    # the optimal rank for a relative Frobenius tolerance 1e-4: the 1e-7 tail is
    # sqrt(22) 1e-7 = 4.7e-7 ||A||_F-relative, sigma_8 = 1e-2 is not droppable
    assert out["rank_revealed"] == 8 and out["numerical_rank"] == 8
    loose = bundle("lowrank", A, SVD(U[:, :l], sigma[:l], V[:, :l].T,
                                     extras={"rank": l, "tol": 0.2}), u=u, sigma=sigma, k=3)
    from factorbench.accuracy.metrics import frobenius_rank

    assert loose["numerical_rank"] == frobenius_rank(sigma, 0.2) < 8
    tail = np.sqrt(np.cumsum(sigma[::-1] ** 2)[::-1])  # ||A - A_r||_F for r = 0, 1, ...
    r = frobenius_rank(sigma, 0.2)
    assert tail[r] <= 0.2 * tail[0] < tail[r - 1]
    # judged by its contract ||A - A_hat||_F <= tol ||A||_F: the exact rank-8
    # truncation leaves the 1e-7 tail, sqrt(22) 1e-7 / ||A||_F of the tolerance
    tail = np.sqrt(22) * 1e-7
    assert out["lowrank_error_ratio"] == pytest.approx(
        tail / (1e-4 * np.linalg.norm(sigma)), rel=1e-6)
    assert out["lowrank_spectral_ratio"] == pytest.approx(1.0, rel=1e-6)  # at rank 8
    assert passed(out)
    # a result that misses its tolerance fails, whatever the rank it chose
    Vb = V[:, :l].copy()
    Vb[:, 0] = V[:, l]
    missed = bundle("lowrank", A, SVD(U[:, :l], sigma[:l], Vb.T,
                                      extras={"rank": l, "tol": 1e-4}), u=u, sigma=sigma, k=3)
    assert missed["lowrank_error_ratio"] > 1e3 and not passed(missed)
    with pytest.raises(ResultError, match="needs extras"):
        bundle("lowrank", A, SVD(U[:, :l], sigma[:l], V[:, :l].T, extras={"rank": l}),
               u=u, sigma=sigma, k=3)
    with pytest.raises(ResultError, match="outside"):
        bundle("lowrank", A, SVD(U, sigma, V.T, extras={"rank": 31}), u=u, sigma=sigma, k=3)
    # a result of another rank without extras["rank"] is a shape error
    with pytest.raises(ResultError, match="shape"):
        bundle("lowrank", A, SVD(U[:, :l], sigma[:l], V[:, :l].T), u=u, sigma=sigma, k=3)


def test_lstsq_forward_error_is_scaled_by_the_least_squares_condition_number():
    """kappa_scaled_error = fe / ((kappa + kappa^2 eta) u) (Wedin; Higham 2002 Thm 20.1),
    fe / (kappa u) for a consistent right-hand side (eta = 0)."""
    from factorbench.impls.results import Lstsq

    rng = np.random.default_rng(3)
    A = rng.standard_normal((40, 10))
    x_true = rng.standard_normal(10)
    b = A @ x_true
    x = x_true * (1 + 1e-9)
    u, kappa = np.finfo(float).eps / 2, 1e4
    fe = np.linalg.norm(x - x_true) / np.linalg.norm(x_true)
    plain = bundle("lstsq", A, Lstsq(x), u=u, kappa=kappa, b=b, x_true=x_true)
    assert plain["kappa_scaled_error"] == pytest.approx(fe / (kappa * u), rel=1e-12)
    eta = 1e-3
    res = bundle("lstsq", A, Lstsq(x), u=u, kappa=kappa, b=b, x_true=x_true, eta=eta)
    assert res["kappa_scaled_error"] == pytest.approx(fe / ((kappa + kappa**2 * eta) * u),
                                                      rel=1e-12)
    assert res["kappa2_scaled_error"] == plain["kappa2_scaled_error"]


def test_lowrank_ratio_is_not_floored_above_rounding_level():
    """float32, optimum 4.4e-3 ||A||_F-relative: far above max(m, n) u, so the ratio is
    the honest err / optimum (a 15 max(m, n) u floor would have hidden a 4x worse
    approximation); an exactly rank-k input is judged at 15 max(m, n) u."""
    from factorbench.accuracy.metrics import ROUNDING_FLOOR, lowrank_error_ratio

    rng = np.random.default_rng(4)
    m, n, k = 400, 200, 5
    u = np.finfo(np.float32).eps / 2
    sigma = np.concatenate((np.ones(k), np.full(n - k, 1e-3)))
    U, V, A = _usv(rng, m, n, sigma)
    tail = np.sqrt(n - k) * 1e-3
    Vb = V[:, :k].copy()
    Vb[:, 0] = V[:, k]  # a wrong direction: error sqrt(2) for that column
    A_hat = (U[:, :k] * sigma[:k]) @ Vb.T
    err = np.linalg.norm(A - A_hat, "fro")
    assert lowrank_error_ratio(A, A_hat, sigma, k, u) == pytest.approx(err / tail, rel=1e-12)
    exact = np.concatenate((np.ones(k), np.zeros(n - k)))
    B = (U[:, :k] * exact[:k]) @ V[:, :k].T
    B_hat = B * (1 + 10 * u)
    unit = ROUNDING_FLOOR * m * u * np.linalg.norm(B, "fro")
    assert lowrank_error_ratio(B, B_hat, exact, k, u) == pytest.approx(
        np.linalg.norm(B - B_hat, "fro") / unit, rel=1e-6)
