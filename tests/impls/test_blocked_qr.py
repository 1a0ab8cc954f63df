"""Tests of the blocked QR family (factorbench.impls.blocked.qr).

Pass decisions go through the harness's own metrics (``bundle`` and the
LAPACK-style rule: backward and orthogonality ratios finite and < 30).
Comparisons of factors use the perturbation bound of the factor: two
backward-stable QR factorizations of the same A (with the same sign
convention) differ by about ``max(m, n) u kappa(A) ||A||`` in R and
``max(m, n) u kappa(A)`` in Q (Higham 2002, Thm 19.4 and §19.9 on QR
sensitivity), given a factor 30 of room, the pass threshold.

The same functions run on NumPy and on array-api-strict: the second proves
that the code stays inside the array API standard (and that the
branch-free reflector and pivot checks of the generic path are right).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from factorbench.accuracy.metrics import bundle, passed
from factorbench.accuracy.precision import EMULATED, result_dtype_error, unit_roundoff
from factorbench.impls import get, impls
from factorbench.impls.blocked import qr as bqr
from factorbench.impls.results import QR
from tests.impls._matrices import haar as _haar

xps = pytest.importorskip("array_api_strict")

DTYPES = ("float64", "float32", "complex128", "complex64")
IDS = ("qr/blocked", "qr/tsqr", "qr/cholqr2-blocked", "qr/scholqr3")
KAPPA = 100.0
SLACK = 30.0  # the pass threshold, used as the constant of every bound




def randsvd(rng, m, n, kappa, dtype):
    """U diag(sigma) V^H rounded to ``dtype``: Haar U, V, sigma geometric 1 .. 1/kappa."""
    cplx = dtype.startswith("complex")
    s = np.geomspace(1.0, 1.0 / kappa, n)
    A = (_haar(rng, m, n, cplx) * s) @ _haar(rng, n, n, cplx).conj().T
    return A.astype(dtype)


def _rng(*key):
    return np.random.default_rng(zlib.crc32(" ".join(map(str, key)).encode()))


def _call(impl_id, A, **params):
    """Call as the worker does: a fresh Fortran-ordered copy (the impls overwrite it)."""
    return get(impl_id)(np.array(A, order="F", copy=True), **params)


def _metrics(A, res, dtype):
    return bundle("qr", A, res, u=unit_roundoff(dtype))


def _host(X):
    return np.asarray(X).astype(np.complex128)


# ------------------------------------------------------------------ registry


def test_registry_metadata():
    got = {i.id: i for i in impls("qr") if i.family == "blocked" and i.device == "cpu"}
    assert set(got) == set(IDS)
    for impl_id in IDS:
        impl = got[impl_id]
        assert impl.backend == "numpy" and impl.layout == "F" and impl.device == "cpu"
        assert impl.stable, impl_id
        # qr/blocked also takes the emulated formats (float32 work, chopped)
        extra = EMULATED if impl_id in ("qr/blocked", "qr/cholqr2-blocked") else ()
        assert set(impl.dtypes) == set(DTYPES) | set(extra), impl_id
        assert impl.summary, impl_id
    assert got["qr/blocked"].parameters == {"block": [64, 128, 256]}
    assert got["qr/tsqr"].parameters == {"blocks": [4, 8, 16]}
    assert got["qr/cholqr2-blocked"].parameters == {}
    assert got["qr/scholqr3"].parameters == {}


# -------------------------------------------- every impl x dtype x shape x block

SHAPES = [(100, 37), (64, 64), (300, 20)]
PARAMS = {
    # 8, 16 divide 64 but not 37 or 20; 64 is wider than 37 and 20 (one panel)
    "qr/blocked": [{"block": 8}, {"block": 16}, {"block": 64}],
    # 16 blocks exceed m // n for 100 x 37 (2) and 64 x 64 (1): the fallback
    "qr/tsqr": [{"blocks": 4}, {"blocks": 16}],
    "qr/cholqr2-blocked": [{}],
    "qr/scholqr3": [{}],
}
CASES = [pytest.param(i, d, s, p, id=f"{i}-{d}-{s[0]}x{s[1]}-{''.join(map(str, p.values()))}")
         for i in IDS for d in DTYPES for s in SHAPES for p in PARAMS[i]]


@pytest.mark.parametrize("impl_id, dtype, shape, params", CASES)
def test_pass_rule(impl_id, dtype, shape, params):
    m, n = shape
    A = randsvd(_rng(impl_id, dtype, shape), m, n, KAPPA, dtype)
    res = _call(impl_id, A, **params)
    assert isinstance(res, QR)
    assert result_dtype_error(res, dtype) is None
    for name, X, want in (("Q", res.Q, (m, n)), ("R", res.R, (n, n))):
        assert isinstance(X, np.ndarray) and X.dtype == np.dtype(dtype), name
        assert X.shape == want, name
    assert np.all(np.tril(res.R, -1) == 0)
    metrics = _metrics(A, res, dtype)
    assert passed(metrics), metrics


# ------------------------------------------------------------- array-api-strict

STRICT = [("qr/blocked", {"block": 8}), ("qr/blocked", {"block": 64}),
          ("qr/tsqr", {"blocks": 4}), ("qr/cholqr2-blocked", {}), ("qr/scholqr3", {})]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl_id, params", STRICT, ids=[f"{i}-{p}" for i, p in STRICT])
def test_array_api_strict_matches_numpy(impl_id, params, dtype):
    """Same function on array-api-strict: results stay in that namespace and equal the
    NumPy run's Q and R up to rounding (xLARFG's signs make R unique)."""
    m, n = 60, 21
    A = randsvd(_rng("strict", impl_id, dtype), m, n, KAPPA, dtype)
    if impl_id in ("qr/blocked", "qr/tsqr"):
        A[:, 5] = 0  # a zero column: the H = I branch of the branch-free xLARFG
    ref = _call(impl_id, A, **params)
    X = xps.asarray(A.copy())
    res = get(impl_id)(X, **params)
    # only a writeable Fortran-ordered NumPy input is factored in place
    assert np.array_equal(np.asarray(X), A)
    strict = type(xps.asarray(0.0))
    assert isinstance(res.Q, strict) and isinstance(res.R, strict)
    Q, R = np.asarray(res.Q), np.asarray(res.R)
    assert Q.dtype == R.dtype == np.dtype(dtype)
    assert np.all(np.tril(R, -1) == 0)
    assert passed(_metrics(A, QR(Q, R), dtype))
    # The zero column stays exactly zero on both backends (tau = 0, R_55 = 0), so
    # the other columns' sensitivity is still that of a kappa = 100 matrix.
    u = unit_roundoff(dtype)
    bound = SLACK * m * u * KAPPA
    assert np.linalg.norm(_host(R) - _host(ref.R)) <= bound * np.linalg.norm(A, 2)
    assert np.linalg.norm(_host(Q) - _host(ref.Q)) <= bound


def test_array_api_strict_cholesky_breakdown_raises():
    """The generic path checks the pivots once, after the factorization."""
    A = xps.asarray(np.zeros((10, 3)))
    with pytest.raises(np.linalg.LinAlgError, match="positive definite"):
        get("qr/cholqr2-blocked")(A)


# ------------------------------------------------------ qr/blocked vs LAPACK


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, block", [((200, 90), 32), ((129, 129), 16), ((300, 40), 256)])
def test_blocked_R_equals_lapack(dtype, shape, block):
    """xLARFG's sign convention is LAPACK's, so R and Q equal xGEQRF + xORGQR's up to
    rounding: within 30 m u kappa(A) ||A||_2 (R) and 30 m u kappa(A) (Q)."""
    m, n = shape
    A = randsvd(_rng("lapack", dtype, shape), m, n, KAPPA, dtype)
    ours = _call("qr/blocked", A, block=block)
    lap = _call("qr/lapack", A)
    u = unit_roundoff(dtype)
    bound = SLACK * m * u * KAPPA
    assert np.linalg.norm(_host(ours.R) - _host(lap.R)) <= bound * np.linalg.norm(A, 2)
    assert np.linalg.norm(_host(ours.Q) - _host(lap.Q)) <= bound
    assert np.all(np.isreal(np.diagonal(ours.R)))


# ----------------------------------------- CholeskyQR2 vs shifted CholeskyQR3


def test_cholqr2_fails_where_shifted_cholqr3_passes():
    """kappa = 1e12 > u^(-1/2) = 1e8: CholeskyQR2's Gram matrix is numerically
    indefinite (breakdown, or orthogonality lost); the shifted first pass of
    CholeskyQR3 keeps it within reach (kappa <~ 1 / (u sqrt(11 (mn + n^2))) ~ 3e13)."""
    m, n = 200, 40
    A = randsvd(_rng("kappa1e12"), m, n, 1e12, "float64")
    try:
        res = _call("qr/cholqr2-blocked", A)
    except np.linalg.LinAlgError as exc:
        assert "positive definite" in str(exc)
    else:
        metrics = _metrics(A, res, "float64")
        assert not passed(metrics) and metrics["orthogonality_ratio"] >= 30, metrics
    metrics = _metrics(A, _call("qr/scholqr3", A), "float64")
    assert passed(metrics), metrics
    # ... and Householder QR, for reference, whatever kappa
    assert passed(_metrics(A, _call("qr/blocked", A, block=16), "float64"))


@pytest.mark.parametrize("impl_id", ["qr/cholqr2-blocked", "qr/scholqr3"])
def test_cholqr_within_range(impl_id):
    """CholeskyQR2 is O(u) accurate for kappa below u^(-1/2) (here 1e6)."""
    A = randsvd(_rng(impl_id, "1e6"), 300, 50, 1e6, "float64")
    metrics = _metrics(A, _call(impl_id, A), "float64")
    assert passed(metrics), metrics


def test_scholqr3_breaks_down_beyond_its_range():
    """Past ~1/(u sqrt(11 (m n + n (n + 1)))) the shifted pass no longer guarantees
    anything: the Cholesky breaks down or the result fails the pass rule."""
    A = randsvd(_rng("kappa1e15"), 200, 40, 1e15, "float64")
    try:
        res = _call("qr/scholqr3", A)
    except np.linalg.LinAlgError as exc:
        assert "positive definite" in str(exc)
    else:
        assert not passed(_metrics(A, res, "float64"))


# -------------------------------------------------------------------- TSQR


@pytest.mark.parametrize("blocks", [2, 3, 4, 8, 16])
def test_tsqr_tall_skinny(blocks):
    """2000 x 20 with several trees (3: an odd node passes a level unchanged):
    passes, and R is xGEQRF's up to the signs of its rows."""
    m, n = 2000, 20
    A = randsvd(_rng("tsqr", blocks), m, n, 1e6, "float64")
    res = _call("qr/tsqr", A, blocks=blocks)
    metrics = _metrics(A, res, "float64")
    assert passed(metrics), metrics
    lap = _call("qr/lapack", A)
    signs = np.sign(np.diagonal(res.R) / np.diagonal(lap.R))
    u = unit_roundoff("float64")
    assert np.linalg.norm(signs[:, None] * res.R - lap.R) <= SLACK * m * u * 1e6


def test_tsqr_falls_back_to_fewer_blocks():
    """Every block needs n rows: blocks = min(blocks, m // n), 1 meaning plain QR."""
    A = randsvd(_rng("fallback"), 100, 37, KAPPA, "float64")  # m // n = 2
    many, two = _call("qr/tsqr", A, blocks=16), _call("qr/tsqr", A, blocks=2)
    assert np.array_equal(many.Q, two.Q) and np.array_equal(many.R, two.R)
    B = randsvd(_rng("fallback-square"), 64, 64, KAPPA, "float64")  # m // n = 1
    tsqr, plain = _call("qr/tsqr", B, blocks=8), _call("qr/blocked", B, block=bqr._TSQR_BLOCK)
    assert np.array_equal(tsqr.Q, plain.Q) and np.array_equal(tsqr.R, plain.R)


# ------------------------------------------------------------ input handling


@pytest.mark.parametrize("impl_id", IDS)
def test_input_contract(impl_id):
    f = get(impl_id)
    with pytest.raises(ValueError, match="m >= n"):
        f(np.zeros((3, 5), order="F"))
    with pytest.raises(TypeError):
        f(np.ones((5, 3), dtype=np.int64))
    # qr/blocked and qr/cholqr2-blocked emulate float16 (tests/impls/test_emulated.py)
    if impl_id not in ("qr/blocked", "qr/cholqr2-blocked"):
        with pytest.raises(TypeError):
            f(np.ones((5, 3), dtype=np.float16, order="F"))
    # C-ordered input is copied and left alone; Fortran-ordered input is the work array
    A = randsvd(_rng("contract", impl_id), 30, 10, KAPPA, "float64")
    C = np.array(A, order="C")
    f(C)
    assert np.array_equal(C, A)


@pytest.mark.parametrize("impl_id, param", [("qr/blocked", "block"), ("qr/tsqr", "blocks")])
@pytest.mark.parametrize("bad", [0, -4, 2.5, True])
def test_bad_parameter(impl_id, param, bad):
    with pytest.raises(ValueError, match=param):
        get(impl_id)(np.eye(4, order="F"), **{param: bad})


@pytest.mark.parametrize("impl_id", ["qr/blocked", "qr/tsqr"])
def test_householder_zero_and_empty(impl_id):
    """The zero matrix has exact factors (tau = 0 everywhere: Q = I[:, :n], R = 0)."""
    Z = np.zeros((40, 7), order="F")
    res = get(impl_id)(Z.copy(order="F"))
    assert np.array_equal(res.R, np.zeros((7, 7)))
    assert np.allclose(res.Q.T @ res.Q, np.eye(7), atol=0)
    E = get(impl_id)(np.zeros((5, 0), order="F"))
    assert E.Q.shape == (5, 0) and E.R.shape == (0, 0)
