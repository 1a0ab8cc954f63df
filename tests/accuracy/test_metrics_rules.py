import math

import numpy as np
import pytest

from factorbench.accuracy.metrics import LOWRANK_THRESHOLD, _div, bundle, limits, passed
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
