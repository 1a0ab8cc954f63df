"""Tests of the randomized low-rank family (factorbench.impls.randomized.lowrank).

Test matrices are ``U diag(sigma) V^H`` with Haar U, V and a chosen spectrum,
so the optimal rank-k error ``tau_k = (sum_{j>k} sigma_j^2)^{1/2}``
(Eckart-Young) is known.  Every tolerance follows from a bound, with the
pass threshold 30 (LAPACK's ``dtest.in``) as the constant where the bound
has an unspecified O(1) one:

* rounding: an error that a backward-stable computation commits is at most
  ``30 max(m, n) u`` relative to ||A||; a rank-k approximation of a
  matrix with a gap moves by that times ``sigma_1 / (sigma_k - sigma_{k+1})``
  when its input moves by that much (Wedin's sin-theta theorem: the top-k
  singular subspaces turn by ||E|| / gap);
* sketching: HMT 2011, Thm 10.5 (expectation, Frobenius) and Thm 10.7
  (deviation, Frobenius) for the Gaussian range finder, and for the rank-k
  truncation ``Q [Q^H A]_k`` the identity ``||A - Q[B]_k||_F^2 =
  ||A - Q Q^H A||_F^2 + ||B - [B]_k||_F^2 <= ||A - Q Q^H A||_F^2 + tau_k^2``.

The same functions run on NumPy and on array-api-strict: the second proves
that the code stays inside the array API standard.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from factorbench.accuracy.metrics import bundle, orthogonality_loss, passed
from factorbench.accuracy.precision import result_dtype_error, unit_roundoff
from factorbench.impls import get
from factorbench.impls.randomized import lowrank as rl
from factorbench.impls.results import SVD
from tests.impls._matrices import haar as _haar

xps = pytest.importorskip("array_api_strict")

DTYPES = ("float64", "float32", "complex128", "complex64")
IDS = ("lowrank/rsvd", "lowrank/block-krylov", "lowrank/nystrom", "lowrank/adaptive")
SLACK = 30.0  # the pass threshold, used as the constant of every rounding bound


def _rng(*key):
    return np.random.default_rng(zlib.crc32(" ".join(map(str, key)).encode()))


def usv(rng, m, n, sigma, dtype):
    """``U diag(sigma) V^H`` (m, n) rounded to ``dtype``, Haar U (m, r) and V (n, r)."""
    cplx = dtype.startswith("complex")
    r = len(sigma)
    A = (_haar(rng, m, r, cplx) * np.asarray(sigma)) @ _haar(rng, n, r, cplx).conj().T
    return A.astype(dtype)


def psd(rng, n, lam, dtype):
    """``Q diag(lam) Q^H`` (n, n), exactly Hermitian after rounding to ``dtype``."""
    Q = _haar(rng, n, len(lam), dtype.startswith("complex"))
    A = (Q * np.asarray(lam)) @ Q.conj().T
    return ((A + A.conj().T) / 2).astype(dtype)


def gap_spectrum(k, size, top=0.1, tail=(1e-5, 1e-6)):
    """k values geometric 1 .. top, then ``size - k`` values geometric tail[0] .. tail[1]."""
    return np.concatenate((np.geomspace(1.0, top, k), np.geomspace(*tail, size - k)))


def _host(X):
    return np.asarray(X).astype(np.complex128)


def _approx(res):
    return _host(res.U) * np.asarray(res.s, dtype=np.float64) @ _host(res.Vh)


def _tau(sigma, k):
    return float(np.sqrt(np.sum(np.asarray(sigma[k:]) ** 2)))


def _matrix(impl_id, rng, m, n, sigma, dtype):
    """The impl's input: PSD with eigenvalues sigma for Nyström, else U diag(sigma) V^H."""
    if impl_id == "lowrank/nystrom":
        return psd(rng, n, sigma, dtype)
    return usv(rng, m, n, sigma, dtype)


# ------------------------------------------------------------------ registry


def test_registry_metadata():
    got = {i: get(i) for i in IDS}
    for impl_id, impl in got.items():
        assert impl.op == "lowrank" and impl.family == "randomized", impl_id
        assert impl.backend == "numpy" and impl.device == "cpu" and impl.stable, impl_id
        assert set(impl.dtypes) == set(DTYPES), impl_id
        assert impl.summary, impl_id
    assert got["lowrank/rsvd"].parameters == {"p": [10, 5, 20], "q": [2, 0, 1],
                                              "sketch": ["gaussian", "sparse", "srht"]}
    assert got["lowrank/block-krylov"].parameters == {"q": [2, 1, 4], "p": [5],
                                                      "sketch": ["gaussian"]}
    assert got["lowrank/nystrom"].parameters == {"p": [10], "q": [0], "sketch": ["gaussian"]}
    assert got["lowrank/adaptive"].parameters == {"tol": [1e-3], "block": [10]}
    assert got["lowrank/nystrom"].structure == "spd"
    assert all(got[i].structure == "general" for i in IDS if i != "lowrank/nystrom")


# ------------------------------------------------------------- array-api-strict

STRICT = [("lowrank/rsvd", {"sketch": s}) for s in ("gaussian", "sparse", "srht")] + [
    ("lowrank/block-krylov", {}), ("lowrank/nystrom", {}), ("lowrank/adaptive", {})]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl_id, params", STRICT,
                         ids=[f"{i}-{'-'.join(p.values())}" for i, p in STRICT])
def test_array_api_strict_matches_numpy(impl_id, params, dtype):
    """Same function and seed on array-api-strict: the results stay in that namespace
    and agree with the NumPy run's to rounding.  The two differ only in how the
    sparse and SRHT sketches and the triangular solve are applied (SciPy on NumPy,
    the standard elsewhere), so U diag(s) Vh and s agree within
    ``30 max(m, n) u ||A||_F sigma_1 / (sigma_k - sigma_{k+1})`` (Wedin)."""
    m, n, k = 70, 40, 5
    sigma = gap_spectrum(k, n)
    A = _matrix(impl_id, _rng("strict", impl_id, dtype), m, n, sigma, dtype)
    ref = get(impl_id)(A, k, 11, **params)
    X = xps.asarray(A.copy())
    res = get(impl_id)(X, k, 11, **params)
    assert np.array_equal(np.asarray(X), A)
    strict = type(xps.asarray(0.0))
    assert all(isinstance(F, strict) for F in (res.U, res.s, res.Vh))
    r = ref.s.shape[0]
    if impl_id == "lowrank/adaptive":  # tol 1e-3 lies in the gap: both choose rank k
        assert res.extras["rank"] == ref.extras["rank"] == r == k
    got = SVD(np.asarray(res.U), np.asarray(res.s), np.asarray(res.Vh))
    assert result_dtype_error(got, dtype) is None
    u = unit_roundoff(dtype)
    gap = sigma[0] / (sigma[k - 1] - sigma[k])
    bound = SLACK * max(A.shape) * u * np.linalg.norm(_host(A)) * gap
    assert np.linalg.norm(_approx(got) - _approx(ref)) <= bound
    assert np.max(np.abs(np.asarray(got.s, dtype=np.float64) - ref.s)) <= bound


# --------------------------------------------------------------- randomness


@pytest.mark.parametrize("impl_id", IDS)
def test_same_seed_bit_identical_different_seed_differs(impl_id):
    """rng is normalised once: an int, the SeedSequence and a fresh Generator of the
    same seed give bit-identical factors; another seed draws another Omega."""
    m, n, k = 60, 40, 4
    sigma = 1.0 / np.arange(1, n + 1)  # no gap: the factors depend on Omega
    A = _matrix(impl_id, _rng("seed", impl_id), m, n, sigma, "float64")
    params = {"tol": 0.05} if impl_id == "lowrank/adaptive" else {}
    runs = [get(impl_id)(A, k, seed, **params)
            for seed in (5, np.random.SeedSequence(5), np.random.default_rng(5))]
    for res in runs[1:]:
        for a, b in zip((runs[0].U, runs[0].s, runs[0].Vh), (res.U, res.s, res.Vh), strict=True):
            assert np.array_equal(a, b)
    other = get(impl_id)(A, k, 6, **params)
    assert other.U.shape != runs[0].U.shape or not np.array_equal(other.U, runs[0].U)
    # a Generator passed in is used, not reseeded: two calls on it differ
    g = np.random.default_rng(5)
    first, second = get(impl_id)(A, k, g, **params), get(impl_id)(A, k, g, **params)
    assert np.array_equal(first.U, runs[0].U)
    assert second.U.shape != first.U.shape or not np.array_equal(second.U, first.U)


def test_no_global_random_state():
    """Nothing is drawn from NumPy's global generator."""
    A = usv(_rng("global"), 50, 30, 1.0 / np.arange(1, 31), "float64")
    state = np.random.get_state()[1].copy()  # noqa: NPY002 - the legacy state is the subject
    for impl_id in IDS:
        M = psd(_rng("global-psd"), 30, np.geomspace(1, 1e-3, 30), "float64") \
            if impl_id == "lowrank/nystrom" else A
        get(impl_id)(M, 3, 1)
    assert np.array_equal(np.random.get_state()[1], state)  # noqa: NPY002


# ------------------------------------------------------- exact rank-k input


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl_id", IDS)
def test_exact_rank_k_recovered(impl_id, dtype):
    """A of rank exactly k (sigma 1 .. 0.1) is recovered to rounding:
    ``||A - U diag(s) Vh||_F <= 30 max(m, n) u ||A||_F``, the backward-ratio pass
    rule.  The sketch Y = A Omega spans range(A) up to the rounding of the
    products, and the l - k extra columns of Q only add rounding noise."""
    m, n, k = 120, 80, 6
    sigma = np.geomspace(1.0, 0.1, k)
    A = _matrix(impl_id, _rng("exact", impl_id, dtype), m, n, sigma, dtype)
    res = get(impl_id)(A, k, 3)
    assert result_dtype_error(res, dtype) is None
    if impl_id == "lowrank/adaptive":  # sigma_k = 0.1 >> tol ||A||_F, the rest is 0
        assert res.extras["rank"] == k and res.s.shape == (k,)
    assert res.U.shape == (A.shape[0], k) and res.Vh.shape == (k, A.shape[1])
    u = unit_roundoff(dtype)
    Ah = _host(A)
    err = np.linalg.norm(Ah - _approx(res)) / np.linalg.norm(Ah)
    assert err <= SLACK * max(A.shape) * u, err
    s = np.asarray(res.s, dtype=np.float64)
    assert np.max(np.abs(s - sigma)) <= SLACK * max(A.shape) * u * np.linalg.norm(Ah)
    loss = max(orthogonality_loss(_host(res.U)), orthogonality_loss(_host(res.Vh).conj().T))
    assert loss / (max(A.shape) * u) < SLACK, loss


# ------------------------------------------------------ HMT power iterations


def test_rsvd_within_hmt_bounds_and_power_iterations_help():
    """Slowly decaying spectrum sigma_j = j^(-1/2), k = 10, p = 10, Gaussian test matrix.

    q = 0: over 8 seeds the mean squared error ratio ||A - A_hat||_F^2 / tau_k^2
    is within the expectation bound 2 + k/(p-1) (HMT Thm 10.5 plus truncation), and
    each draw within the deviation bound of HMT Thm 10.7 (t = 2, u = 3; failure
    probability <= 5 t^-p + 2 e^(-u^2/2) < 3%) plus truncation.  q = 2 replaces
    sigma_j by sigma_j^5 in the sketch, so its error is smaller: the mean ratio
    drops, and every draw passes the harness's lowrank rule (ratio < 2).
    """
    m, n, k, p = 200, 150, 10, 10
    sigma = np.arange(1, n + 1) ** -0.5
    A = usv(_rng("hmt"), m, n, sigma, "float64")
    tau = _tau(sigma, k)
    t, uu = 2.0, 3.0
    deviation = 1 + t * math.sqrt(12 * k / p) + uu * t * math.e * math.sqrt(k + p) / (p + 1)
    ratios = {0: [], 2: []}
    for seed in range(8):
        for q in (0, 2):
            res = rl.lowrank_rsvd(A, k, seed, p=p, q=q)
            r = np.linalg.norm(A - (res.U * res.s) @ res.Vh) / tau
            assert r <= math.sqrt(deviation ** 2 + 1), (q, seed, r)
            ratios[q].append(r)
            if q == 2:
                metrics = bundle("lowrank", A, res, u=unit_roundoff("float64"), sigma=sigma, k=k)
                assert passed(metrics), metrics
    assert np.mean(np.square(ratios[0])) <= 2 + k / (p - 1)
    assert np.mean(ratios[2]) < np.mean(ratios[0])


@pytest.mark.parametrize("impl_id", ["lowrank/rsvd", "lowrank/block-krylov"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_pass_rule_on_noisy_low_rank(impl_id, dtype):
    """The harness's lowrank family (rank-r signal 1 .. 1e-2 plus a flat 1e-4 noise
    floor): with their default parameters both pass the harness's rule
    (error within 2x optimal, orthogonality ratio < 30)."""
    m, n, k = 120, 80, 6
    sigma = np.concatenate((np.geomspace(1.0, 1e-2, k), np.full(n - k, 1e-4)))
    A = usv(_rng("noisy", impl_id, dtype), m, n, sigma, dtype)
    res = get(impl_id)(A, k, 2)
    metrics = bundle("lowrank", A, res, u=unit_roundoff(dtype), sigma=sigma, k=k)
    assert passed(metrics), metrics


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl_id, params", [("lowrank/block-krylov", {"q": 4}),
                                             ("lowrank/adaptive", {"tol": 1e-30, "block": 7})])
def test_exhausted_range_stays_orthonormal(impl_id, params, dtype):
    """Exact rank 5 and a basis grown far past it (Krylov blocks 2..5, or an
    unreachable tolerance): the new blocks are rounding noise, mostly inside the
    basis already found; re-orthonormalisation keeps every factor orthonormal
    (orthogonality ratio < 30) and the error at the rounding level."""
    m, n, r = 90, 50, 5
    A = usv(_rng("exhausted", impl_id, dtype), m, n, np.geomspace(1.0, 0.1, r), dtype)
    res = get(impl_id)(A, r, 1, **params)
    u = unit_roundoff(dtype)
    loss = max(orthogonality_loss(_host(res.U)), orthogonality_loss(_host(res.Vh).conj().T))
    assert loss / (m * u) < SLACK, loss
    Ah = _host(A)
    assert np.linalg.norm(Ah - _approx(res)) <= SLACK * m * u * np.linalg.norm(Ah)
    if impl_id == "lowrank/adaptive":
        assert res.extras["range_dim"] == n


def test_block_krylov_caps_basis_at_min_dimension():
    """(q + 1) l > min(m, n): the basis stops at a full one, which spans range(A),
    so the rank-k truncation is optimal up to rounding."""
    m, n, k = 60, 30, 8
    sigma = np.arange(1, n + 1) ** -1.0
    A = usv(_rng("cap"), m, n, sigma, "float64")
    res = rl.lowrank_block_krylov(A, k, 0, q=4, p=5)  # 5 blocks of 13 > 30
    err = np.linalg.norm(A - (res.U * res.s) @ res.Vh)
    assert err <= _tau(sigma, k) * (1 + SLACK * m * unit_roundoff("float64"))
    assert passed(bundle("lowrank", A, res, u=unit_roundoff("float64"), sigma=sigma, k=k))


# ------------------------------------------------------------------ adaptive


@pytest.mark.parametrize("dtype", DTYPES)
def test_adaptive_finds_the_gap(dtype):
    """sigma_1..r geometric 1 .. 1e-2, tail 1e-6, tol 1e-4 (r = 13, block 10): the
    optimal rank for the tolerance is r (tau_r ~ 1e-5 <= tol ||A||_F < sigma_r).
    The Gaussian range finder with l >= r + 2 columns captures the top r to the
    tail's level (HMT Thm 10.5), so the search stops within a block past r and the
    exact trimming returns rank r.  The Frobenius error meets the tolerance; in
    float32 tol^2 is below the indicator's rounding bound, so the residual is
    checked directly before stopping."""
    m, n, r, b, tol = 150, 100, 13, 10, 1e-4
    sigma = np.concatenate((np.geomspace(1.0, 1e-2, r), np.full(n - r, 1e-6)))
    A = usv(_rng("adaptive", dtype), m, n, sigma, dtype)
    res = rl.lowrank_adaptive(A, None, 4, tol=tol, block=b)
    assert result_dtype_error(res, dtype) is None
    assert res.extras["rank"] == r and res.extras["tol"] == tol
    assert res.U.shape == (m, r) and res.s.shape == (r,) and res.Vh.shape == (r, n)
    assert r <= res.extras["range_dim"] <= r + b
    Ah = _host(A)
    err = np.linalg.norm(Ah - _approx(res)) / np.linalg.norm(Ah)
    assert err <= tol
    # the estimate is the error, up to the indicator's rounding: its square within
    # 30 max(m, n) u (relative to ||A||_F^2), see lowrank_adaptive's notes
    u = unit_roundoff(dtype)
    assert abs(res.extras["error_estimate"] ** 2 - err ** 2) <= SLACK * max(m, n) * u
    metrics = bundle("lowrank", A, res, u=u, sigma=sigma, k=res.extras["rank"])
    assert passed(metrics), metrics


def test_adaptive_ignores_k_and_caps_at_min_dimension():
    """k is not read; a tolerance below the rounding level cannot be met, and the
    search stops with a full basis (l = min(m, n)); the trimming then keeps every
    direction it needs."""
    m, n = 40, 25
    sigma = np.geomspace(1.0, 1e-3, n)
    A = usv(_rng("cap-adaptive"), m, n, sigma, "float64")
    a = rl.lowrank_adaptive(A, 3, 1, tol=1e-17, block=7)
    b = rl.lowrank_adaptive(A, 999, 1, tol=1e-17, block=7)
    assert np.array_equal(a.U, b.U) and a.extras == b.extras
    assert a.extras["range_dim"] == n
    assert np.linalg.norm(A - (a.U * a.s) @ a.Vh) <= SLACK * m * unit_roundoff("float64") \
        * np.linalg.norm(A)


def test_adaptive_float64_direct_check_matches_indicator():
    """tol = 1e-7 is below sqrt(20 max(m, n) u) in float64: the residual is verified
    directly; the result still meets the tolerance with the rank at the gap."""
    m, n, r = 80, 60, 7
    sigma = np.concatenate((np.geomspace(1.0, 1e-3, r), np.full(n - r, 1e-10)))
    A = usv(_rng("direct"), m, n, sigma, "float64")
    res = rl.lowrank_adaptive(A, None, 0, tol=1e-7, block=5)
    assert res.extras["rank"] == r
    assert np.linalg.norm(A - (res.U * res.s) @ res.Vh) <= 1e-7 * np.linalg.norm(A)


# ------------------------------------------------------------------- nystrom


@pytest.mark.parametrize("dtype", DTYPES)
def test_nystrom_psd_and_orthonormal(dtype):
    """PSD input of rank 10 < k + p: the shifted core stays positive definite, the
    returned eigenvalues are >= 0 (some clipped to 0 after removing the shift),
    descending, U has orthonormal columns (orthogonality ratio < 30) and Vh = U^H."""
    n, k = 80, 15
    lam = np.concatenate((np.geomspace(1.0, 1e-3, 10), np.zeros(n - 10)))
    A = psd(_rng("nystrom", dtype), n, lam, dtype)
    res = rl.lowrank_nystrom(A, k, 8)
    assert result_dtype_error(res, dtype) is None
    s = np.asarray(res.s)
    assert np.all(s >= 0) and np.all(np.diff(s) <= 0)
    assert np.array_equal(res.Vh, res.U.conj().T)
    u = unit_roundoff(dtype)
    assert orthogonality_loss(_host(res.U)) / (n * u) < SLACK
    # rank 10 < k: recovered to rounding, including the shift nu = sqrt(n) eps ||Y||_F
    err = np.linalg.norm(_host(A) - _approx(res)) / np.linalg.norm(_host(A))
    assert err <= SLACK * n * u


def test_nystrom_power_iterations_help():
    """q = 1 sketches with A Omega: on a slowly decaying PSD spectrum the error drops."""
    n, k = 120, 8
    lam = np.arange(1, n + 1) ** -1.0
    A = psd(_rng("nystrom-q"), n, lam, "float64")
    e0 = np.linalg.norm(A - _approx(rl.lowrank_nystrom(A, k, 1, q=0)))
    e1 = np.linalg.norm(A - _approx(rl.lowrank_nystrom(A, k, 1, q=1)))
    assert e1 < e0


def test_nystrom_refuses_rectangular_and_indefinite():
    with pytest.raises(ValueError, match="square"):
        rl.lowrank_nystrom(np.ones((5, 4)), 2, 0)
    # -I: the core matrix Omega^H (A + nu I) Omega = (nu - 1) I is negative definite
    with pytest.raises(np.linalg.LinAlgError):
        rl.lowrank_nystrom(-np.eye(20), 2, 0)


# ------------------------------------------------------------ input handling


@pytest.mark.parametrize("impl_id", IDS)
def test_input_left_alone(impl_id):
    """Read-only and Fortran-ordered inputs work, are never modified, and give the
    C-ordered input's result up to rounding (the products may take other BLAS
    paths): within 30 max(m, n) u ||A||_F sigma_1 / (sigma_k - sigma_{k+1})."""
    m, n, k = 50, 30, 4
    sigma = gap_spectrum(k, n)
    A = _matrix(impl_id, _rng("alone", impl_id), m, n, sigma, "float64")
    ref = get(impl_id)(A, k, 0)
    F = np.asfortranarray(A)
    R = A.copy()
    R.flags.writeable = False
    bound = SLACK * max(A.shape) * unit_roundoff("float64") * np.linalg.norm(A) \
        * sigma[0] / (sigma[k - 1] - sigma[k])
    for X in (F, R):
        res = get(impl_id)(X, k, 0)
        assert np.array_equal(X, A)
        assert np.linalg.norm(_approx(res) - _approx(ref)) <= bound


FIXED = ("lowrank/rsvd", "lowrank/block-krylov", "lowrank/nystrom")


@pytest.mark.parametrize("impl_id", FIXED)
@pytest.mark.parametrize("k, match", [(0, "k must be an integer >= 1"), (31, "at most min"),
                                      (2.0, "k must be an integer"), (True, "k must be")])
def test_bad_k(impl_id, k, match):
    A = np.eye(30)
    with pytest.raises(ValueError, match=match):
        get(impl_id)(A, k, 0)


@pytest.mark.parametrize("impl_id, param, bad", [
    ("lowrank/rsvd", "p", -1), ("lowrank/rsvd", "q", 2.5), ("lowrank/rsvd", "q", -1),
    ("lowrank/rsvd", "sketch", "hadamard"), ("lowrank/block-krylov", "q", 2.5),
    ("lowrank/block-krylov", "p", -1), ("lowrank/block-krylov", "sketch", None),
    ("lowrank/nystrom", "p", -1), ("lowrank/nystrom", "q", 0.5),
    ("lowrank/nystrom", "sketch", "Gaussian"), ("lowrank/adaptive", "block", 0),
    ("lowrank/adaptive", "block", 2.5), ("lowrank/adaptive", "tol", 0.0),
    ("lowrank/adaptive", "tol", 1.0), ("lowrank/adaptive", "tol", float("nan")),
    ("lowrank/adaptive", "tol", "1e-3"), ("lowrank/adaptive", "tol", True)])
def test_bad_parameter(impl_id, param, bad):
    with pytest.raises(ValueError, match=param):
        get(impl_id)(np.eye(10), 2, 0, **{param: bad})


@pytest.mark.parametrize("impl_id", IDS)
@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.int32])
def test_bad_dtype(impl_id, dtype):
    with pytest.raises(TypeError, match="float32/float64/complex64/complex128"):
        get(impl_id)(np.eye(10, dtype=dtype), 2, 0)


@pytest.mark.parametrize("impl_id", IDS)
def test_bad_shape(impl_id):
    with pytest.raises(ValueError, match="2-D"):
        get(impl_id)(np.ones(10), 2, 0)


@pytest.mark.parametrize("impl_id", IDS)
@pytest.mark.parametrize("dtype", ["float32", "complex64"])
def test_no_upcast(impl_id, dtype):
    """Single-precision input gives single-precision factors (s real: float32)."""
    A = _matrix(impl_id, _rng("upcast", impl_id, dtype), 60, 40,
                np.geomspace(1, 1e-2, 40), dtype)
    res = get(impl_id)(A, 4, 0)
    assert result_dtype_error(res, dtype) is None
    assert res.U.dtype == res.Vh.dtype == np.dtype(dtype)
    assert res.s.dtype == np.float32


def test_k_equals_min_dimension():
    """k = min(m, n): l is clipped to min(m, n) and the result is a full SVD."""
    A = usv(_rng("full"), 30, 12, np.geomspace(1, 1e-3, 12), "float64")
    for impl_id in ("lowrank/rsvd", "lowrank/block-krylov"):
        res = get(impl_id)(A, 12, 0)
        assert res.U.shape == (30, 12)
        assert np.linalg.norm(A - (res.U * res.s) @ res.Vh) <= SLACK * 30 * unit_roundoff(
            "float64") * np.linalg.norm(A)
