"""Tests of the randomized least-squares and QR impls
(factorbench.impls.randomized.lstsq and .qr).

Pass decisions go through the harness's own metrics (``bundle`` and the
LAPACK-style rule).  Every other tolerance is a bound from perturbation
theory with the pass threshold 30 as its constant:

* least squares (Higham 2002, Thm 20.1; Wedin 1973): a solution with
  normwise backward error eta has
  ``||dx|| / ||x|| <~ eta (kappa + kappa^2 ||r|| / (||A||_2 ||x||))``, so two
  solutions that are each backward stable with eta = O(m u) differ by at most
  twice that with eta = m u;
* QR (Higham 2002, Thm 19.4 and sec. 19.9): two backward-stable QR
  factorizations of one A with one sign convention differ by about
  ``m u kappa(A)`` in Q and ``m u kappa(A) ||A||`` in R.

The same functions run on NumPy and on array-api-strict: the second proves
that the code stays inside the array API standard, and draws the same sketch
(drawn on the host from the same seed), so the results agree to rounding.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest

from factorbench.accuracy.matrices import generate
from factorbench.accuracy.metrics import bundle, passed
from factorbench.accuracy.precision import result_dtype_error, unit_roundoff
from factorbench.impls import get
from factorbench.impls.blocked._xp import trsm
from factorbench.impls.randomized import lstsq as rls
from factorbench.impls.randomized import qr as rqr
from factorbench.impls.randomized._sketch import sketch
from factorbench.impls.results import QRCP, Lstsq
from tests.impls._matrices import haar

xps = pytest.importorskip("array_api_strict")

DTYPES = ("float64", "float32", "complex128", "complex64")
SKETCHES = ("sparse", "gaussian", "srht")
SLACK = 30.0  # the pass threshold, used as the constant of every bound
LSTSQ = {"lstsq/sketch-solve": rls.lstsq_sketch_solve,
         "lstsq/sketch-precondition": rls.lstsq_sketch_precondition}
QRS = {"qr/rand-cholqr": rqr.qr_rand_cholqr, "qrcp/randomized": rqr.qrcp_randomized}
ALL = {**LSTSQ, **QRS}


def _rng(*key):
    return np.random.default_rng(zlib.crc32(" ".join(map(str, key)).encode()))


def randsvd(rng, m, n, kappa, dtype, extra=0):
    """U diag(sigma) V^H rounded to ``dtype``, sigma geometric 1 .. 1/kappa, and the
    ``extra`` Haar columns orthogonal to range(U) (for residuals)."""
    cplx = dtype.startswith("complex")
    U = haar(rng, m, n + extra, cplx)
    A = (U[:, :n] * np.geomspace(1.0, 1.0 / kappa, n)) @ haar(rng, n, n, cplx).conj().T
    return A.astype(dtype), U[:, n:]


def lstsq_problem(key, m, n, kappa, dtype, rres=0.0):
    """(A, b, x_true) with ``b = A x_true + r``, r orthogonal to range(A) and
    ``||r|| = rres ||A x_true||``; x_true is the least-squares solution of (A, b)
    up to the rounding of b."""
    rng = _rng(*key)
    A, perp = randsvd(rng, m, n, kappa, dtype, extra=1)
    x = rng.standard_normal(n)
    if dtype.startswith("complex"):
        x = x + 1j * rng.standard_normal(n)
    Ax = A.astype(np.complex128 if dtype.startswith("complex") else np.float64) @ x
    b = Ax + rres * np.linalg.norm(Ax) * perp[:, 0]
    return A, b.astype(dtype), x


def lstsq_bound(A, x, b, kappa, u):
    """Forward-error bound of a backward-stable LS solver with eta = u (Higham
    2002, Thm 20.1): u (kappa + kappa^2 ||r|| / (||A||_2 ||x||)) for the exact r."""
    r = b - A.astype(b.dtype) @ x.astype(b.dtype)
    return u * (kappa + kappa**2 * np.linalg.norm(r) / (np.linalg.norm(A, 2) * np.linalg.norm(x)))


def _fe(x, x_true):
    return np.linalg.norm(np.asarray(x) - x_true) / np.linalg.norm(x_true)


def _c128(X):
    return np.asarray(X).astype(np.complex128)


def rankdef(rng, n, r, cplx=False):
    """U diag(sigma) V^H with sigma = [geometric 1 .. 1e-1 (r values), zeros]: only r
    Haar columns, so the zero singular values are exact in exact arithmetic."""
    s = np.geomspace(1.0, 1e-1, r)
    return (haar(rng, n, r, cplx) * s) @ haar(rng, n, r, cplx).conj().T


# ------------------------------------------------------------------ registry


def test_registry_metadata():
    params = {"lstsq/sketch-solve": {"sketch": ["sparse", "gaussian", "srht"], "gamma": [4]},
              "lstsq/sketch-precondition": {"sketch": ["sparse", "gaussian", "srht"],
                                            "gamma": [4]},
              "qr/rand-cholqr": {"sketch": ["sparse", "gaussian", "srht"], "gamma": [2]},
              "qrcp/randomized": {"block": [32, 64], "p": [8]}}
    for impl_id, want in params.items():
        impl = get(impl_id)
        assert impl.func is ALL[impl_id]
        assert impl.family == "randomized" and impl.backend == "numpy" and impl.device == "cpu"
        assert set(impl.dtypes) == set(DTYPES), impl_id
        assert impl.parameters == want, impl_id
        assert impl.stable == (impl_id != "lstsq/sketch-solve"), impl_id
        assert impl.summary, impl_id


# --------------------------------------------------------- array-api-strict


def _on_host(res):
    """The result with its array fields as NumPy arrays (the precision check reads NumPy dtypes)."""
    return dataclasses.replace(res, **{f.name: np.asarray(getattr(res, f.name))
                                       for f in dataclasses.fields(res) if f.name != "extras"})


def _call(impl_id, args, **params):
    return ALL[impl_id](*args, rng=7, **params)


STRICT = [(i, {"sketch": s}) for i in ("lstsq/sketch-solve", "lstsq/sketch-precondition",
                                       "qr/rand-cholqr") for s in SKETCHES]
STRICT += [("qrcp/randomized", {"block": 8, "p": 4}), ("qrcp/randomized", {"block": 32, "p": 8})]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl_id, params", STRICT, ids=[f"{i}-{p}" for i, p in STRICT])
def test_array_api_strict_matches_numpy(impl_id, params, dtype):
    """Same function, same seed on array-api-strict: results stay in that namespace,
    in the working precision, and agree with the NumPy run to rounding (the bounds
    of the module docstring; kappa(S A) <= 3 kappa(A) at gamma 4, eps = 1/2)."""
    m, n, kappa = 120, 12, 100.0
    u = unit_roundoff(dtype)
    A, b, x = lstsq_problem(("strict", impl_id, dtype), m, n, kappa, dtype)
    args = (A, b) if impl_id.startswith("lstsq") else (A,)
    ref = _call(impl_id, args, **params)
    sargs = tuple(xps.asarray(a.copy()) for a in args)
    res = _call(impl_id, sargs, **params)
    assert all(np.array_equal(np.asarray(s), a) for s, a in zip(sargs, args, strict=True))
    assert result_dtype_error(_on_host(res), dtype) is None
    strict = type(xps.asarray(0.0))
    if impl_id.startswith("lstsq"):
        assert isinstance(res.x, strict) and res.x.shape == (n,)
        # each solution has forward error <= SLACK m u * 3 kappa (consistent b)
        bound = 2 * SLACK * m * u * 3 * kappa * np.linalg.norm(x)
        assert np.linalg.norm(_c128(res.x) - _c128(ref.x)) <= bound
        assert passed(bundle("lstsq", A, Lstsq(np.asarray(res.x)), u=u, kappa=kappa, b=b,
                             x_true=x), size=m)
        return
    assert isinstance(res.Q, strict) and isinstance(res.R, strict)
    Q, R = np.asarray(res.Q), np.asarray(res.R)
    assert np.all(np.tril(R, -1) == 0)
    bound = SLACK * m * u * kappa
    if impl_id == "qrcp/randomized":
        assert np.array_equal(res.perm, ref.perm)
        assert passed(bundle("qrcp", A, QRCP(Q, R, res.perm), u=u))
    else:
        assert passed(bundle("qr", A, type(ref)(Q, R), u=u))
    assert np.linalg.norm(_c128(R) - _c128(ref.R)) <= bound * np.linalg.norm(A, 2)
    assert np.linalg.norm(_c128(Q) - _c128(ref.Q)) <= bound


# ---------------------------------------------------------- reproducibility


def _fields(res):
    return [np.asarray(getattr(res, f)) for f in ("x", "Q", "R", "perm") if hasattr(res, f)]


@pytest.mark.parametrize("impl_id, params", [(i, {"sketch": s}) for i in
                                             ("lstsq/sketch-solve", "lstsq/sketch-precondition",
                                              "qr/rand-cholqr") for s in SKETCHES]
                         + [("qrcp/randomized", {"block": 8})])
def test_same_seed_bit_identical(impl_id, params):
    """A seed (int, SeedSequence or a Generator in the same state) fixes every
    random draw: the results are bit-identical; another seed changes them."""
    A, b, _ = lstsq_problem(("seed", impl_id), 200, 20, 1e3, "float64", rres=1e-3)
    f = ALL[impl_id]
    args = (A, b) if impl_id.startswith("lstsq") else (A,)
    runs = [f(*args, rng=rng, **params) for rng in
            (123, 123, np.random.SeedSequence(123), np.random.default_rng(123))]
    first = _fields(runs[0])
    for res in runs[1:]:
        assert all(np.array_equal(a, c) for a, c in zip(first, _fields(res), strict=True))
    other = _fields(f(*args, rng=124, **params))
    assert not all(np.array_equal(a, c) for a, c in zip(first, other, strict=True))


# ----------------------------------------------------------- least squares


@pytest.mark.parametrize("sketch", SKETCHES)
def test_sketch_precondition_reaches_householder_accuracy(sketch):
    """kappa = 1e10 (float64) with ||r|| = ||A x|| / kappa orthogonal to range(A),
    so that both terms of the LS perturbation bound have the same size.

    sketch-precondition (warm-started LSQR on A R^{-1}, x = R^{-1} y at the end)
    is forward stable: its error is below the bound of a backward-stable solver
    with eta = SLACK u, it passes the harness's rule, and it is within the pass
    threshold of xGELS's realized error.  Sketch-and-solve's residual is near
    optimal but its error is ``(S A)^+ S r``, about eps kappa ||r|| / (||A|| ||x||)
    with eps ~ sqrt(n/d) = 1/2, against u kappa^2 ||r|| / (||A|| ||x||) for
    Householder QR: larger by ~ eps / (u kappa) ~ 5e5, asserted as >= 1e3.
    """
    m, n, kappa = 2000, 50, 1e10
    u = unit_roundoff("float64")
    A, b, x = lstsq_problem(("sp", sketch), m, n, kappa, "float64", rres=1 / kappa)
    gels = get("lstsq/gels")(np.array(A, order="F"), b)
    sp = rls.lstsq_sketch_precondition(A, b, sketch=sketch, rng=1)
    ss = rls.lstsq_sketch_solve(A, b, sketch=sketch, rng=1)
    bound = lstsq_bound(A, x, b, kappa, u)
    fe_gels, fe_sp, fe_ss = _fe(gels.x, x), _fe(sp.x, x), _fe(ss.x, x)
    assert fe_gels <= SLACK * bound
    assert fe_sp <= SLACK * bound, (fe_sp, bound)
    assert fe_sp <= SLACK * fe_gels, (fe_sp, fe_gels)
    assert sp.extras["converged"] and 0 < sp.extras["iterations"] < rls.MAXITER
    metrics = bundle("lstsq", A, sp, u=u, kappa=kappa, b=b, x_true=x)
    assert passed(metrics, size=m), metrics
    # sketch-and-solve: orders of magnitude worse forward error, yet a near-optimal residual
    assert fe_ss >= 1e3 * max(fe_sp, fe_gels), (fe_ss, fe_sp)
    r_opt = np.linalg.norm(b - A @ gels.x)
    assert np.linalg.norm(b - A @ ss.x) <= 3 * r_opt  # (1 + eps)/(1 - eps) = 3 at eps = 1/2
    assert not passed(bundle("lstsq", A, ss, u=u, kappa=kappa, b=b, x_true=x), size=m)


def test_warm_start_is_what_makes_it_accurate():
    """LSQR on M = A R^{-1} from y = 0 instead of the sketch-and-solve start, same
    sketch: the products A (R^{-1} v) carry errors ~ u kappa ||M|| ||v|| relative to
    the whole solution rather than to the small correction, and x = R^{-1} y is
    off by ~ u kappa^2 ~ 1e4 here (lstsq module docstring): orders of magnitude
    worse than the warm-started run, asserted as >= 1e3 times."""
    m, n, kappa = 2000, 50, 1e10
    u = unit_roundoff("float64")
    A, b, x = lstsq_problem(("zero-start",), m, n, kappa, "float64", rres=1 / kappa)
    warm = rls.lstsq_sketch_precondition(A, b, rng=1)
    S = sketch("sparse", 4 * n, m, np.random.default_rng(1), A)
    R = np.array(np.linalg.qr(S.left(A))[1], order="F")

    def matvec(v):
        return A @ trsm(np, R, v.copy(order="F"), lower=False)

    def rmatvec(w):
        return trsm(np, R, A.T @ w, lower=False, conj_trans=True)

    y, info = rls.lsqr(np, matvec, rmatvec, b.reshape(m, 1), n, atol=u, btol=u, conlim=1 / u,
                       maxiter=rls.MAXITER)
    zero = trsm(np, R, y, lower=False)[:, 0]
    assert info["converged"]  # LSQR's own tests are satisfied: M's problem is solved
    assert _fe(zero, x) >= 1e3 * _fe(warm.x, x), (_fe(zero, x), _fe(warm.x, x))


def test_sketch_precondition_consistent_and_maxiter():
    """A consistent b stops LSQR at once (test 1: the warm start is already
    exact to rounding); maxiter = 0 returns exactly the sketch-and-solve x."""
    m, n, kappa = 1000, 30, 1e6
    u = unit_roundoff("float64")
    A, b, x = lstsq_problem(("consistent",), m, n, kappa, "float64")
    sp = rls.lstsq_sketch_precondition(A, b, rng=3)
    assert sp.extras["converged"] and sp.extras["iterations"] <= 3
    assert passed(bundle("lstsq", A, sp, u=u, kappa=kappa, b=b, x_true=x), size=m)
    A, b, x = lstsq_problem(("maxiter",), m, n, kappa, "float64", rres=1e-3)
    zero = rls.lstsq_sketch_precondition(A, b, maxiter=0, rng=3)
    assert zero.extras == {"iterations": 0, "converged": False, "istop": 7, "d": 4 * n}
    assert np.array_equal(zero.x, rls.lstsq_sketch_solve(A, b, rng=3).x)


# -------------------------------------------------------------------- QR


@pytest.mark.parametrize("sketch", SKETCHES)
def test_rand_cholqr_beyond_cholqr2_range(sketch):
    """kappa = 1e12 > u^(-1/2) = 1e8: plain CholeskyQR2 breaks down or loses
    orthogonality, while preconditioning by the sketch's R leaves kappa(A R_s^{-1})
    = O(1) and CholeskyQR2 then passes (backward and orthogonality ratios < 30)."""
    m, n = 200, 40
    u = unit_roundoff("float64")
    A, _ = randsvd(_rng("kappa1e12"), m, n, 1e12, "float64")
    try:
        res = get("qr/cholqr2-blocked")(np.array(A, order="F"))
    except np.linalg.LinAlgError as exc:
        assert "positive definite" in str(exc)
    else:
        metrics = bundle("qr", A, res, u=u)
        assert not passed(metrics) and metrics["orthogonality_ratio"] >= 30, metrics
    res = rqr.qr_rand_cholqr(A, sketch=sketch, rng=5)
    metrics = bundle("qr", A, res, u=u)
    assert passed(metrics), metrics
    assert res.extras["d"] == 2 * n


def test_rand_cholqr_rank_deficient_raises():
    """A zero column makes R_s exactly singular: the breakdown is raised, not hidden."""
    A = _rng("rc-rankdef").standard_normal((100, 20))
    A[:, 7] = 0
    with pytest.raises(np.linalg.LinAlgError, match="positive definite"):
        rqr.qr_rand_cholqr(A, rng=1)


# ------------------------------------------------------------------- QRCP


def _geqp3(A):
    return get("qrcp/lapack")(np.array(A, order="F"))


@pytest.mark.parametrize("cplx", [False, True])
@pytest.mark.parametrize("block", [32, 64, 7])
def test_qrcp_reveals_numerical_rank(block, cplx):
    """sigma = [geometric 1 .. 1e-1 (40 values), zeros], n = 96: the pivots taken
    from the sketch put the 40 significant directions first, so |R_ii| drops to
    the rounding level at i = 40 = the numerical rank, as with xGEQP3."""
    n, r = 96, 40
    u = unit_roundoff("complex128" if cplx else "float64")
    A = rankdef(_rng("rankdef", cplx), n, r, cplx)
    metrics = bundle("qrcp", A, rqr.qrcp_randomized(A, block=block, rng=11), u=u)
    assert passed(metrics), metrics
    assert metrics["rank_revealed"] == metrics["numerical_rank"] == r
    lapack = bundle("qrcp", A, _geqp3(A), u=u)
    assert lapack["rank_revealed"] == lapack["numerical_rank"] == r


def test_qrcp_on_kahan_matrix():
    """Kahan's matrix (generator: theta = 1.2, n = 96) defeats xGEQP3 but not the
    randomized pivots.  Pinned, with the reason.

    Every column of Kahan's matrix has norm 1, and at every step of greedy
    pivoting all trailing residual norms are equal in exact arithmetic; the
    generator adds 25 eps (n - i) to the diagonal so that the ties break towards
    the natural order.  xGEQP3 therefore keeps the identity permutation and
    R_nn = s^(n-1) = 1.2e-3, far above sigma_min = 4e-16: rank_revealed is 96
    while the numerical rank (sigma_i > 96 u sigma_1) is 95, the classical
    failure.  The sketch distorts column norms by O(1/sqrt(d)), which is far
    larger than the 25 eps tie-breaker, so the randomized pivots break the ties
    at random; the first column (e_1) then loses norm whenever another column
    is projected out first and ends up near the end of the order, which is
    the permutation that does reveal Kahan's rank (Kahan's matrix is an
    adversary for a deterministic tie rule, not for greedy pivoting as such).
    R_nn comes out ~ 6e-16 ~ sigma_min, and rank_revealed = 95 for every seed
    tried (10 seeds x 2 blocks).
    """
    n = 96
    u = unit_roundoff("float64")
    K = generate("kahan", n, n).A
    lapack = bundle("qrcp", K, _geqp3(K), u=u)
    assert lapack["numerical_rank"] == n - 1
    assert lapack["rank_revealed"] == n  # xGEQP3 fails to reveal the rank
    for block, seed in ((32, 0), (32, 1), (64, 2)):
        res = rqr.qrcp_randomized(K, block=block, rng=seed)
        metrics = bundle("qrcp", K, res, u=u)
        assert passed(metrics), metrics
        assert metrics["rank_revealed"] == metrics["numerical_rank"] == n - 1
        assert res.perm[0] != 0 or res.perm[-1] != 0  # the natural order was left


@pytest.mark.parametrize("shape", [(150, 60), (60, 150), (40, 40)])
def test_qrcp_shapes(shape):
    """Q (m, k), R (k, n), k = min(m, n), perm a permutation, A[:, perm] = Q R to
    the backward-stable level (the metrics check m >= n; wide A by hand)."""
    m, n = shape
    k = min(m, n)
    u = unit_roundoff("float64")
    A = _rng("shape", m, n).standard_normal((m, n))
    res = rqr.qrcp_randomized(A, block=16, rng=2)
    assert res.Q.shape == (m, k) and res.R.shape == (k, n)
    assert np.array_equal(np.sort(res.perm), np.arange(n)) and res.perm.dtype == np.intp
    assert np.all(np.tril(res.R, -1) == 0)
    residual = np.linalg.norm(A[:, res.perm] - res.Q @ res.R, 1)
    assert residual < SLACK * max(m, n) * u * np.linalg.norm(A, 1)
    assert np.linalg.norm(np.eye(k) - res.Q.T @ res.Q, 1) < SLACK * m * u


def test_qrcp_zero_matrix_resketches():
    """Exactly singular R_11 (a zero matrix): the sketch update cannot divide by it,
    the trailing matrix is re-sketched instead, and the factors are exact
    (tau = 0 everywhere: Q = I[:, :n], R = 0)."""
    Z = np.zeros((50, 40))
    for A in (Z, xps.asarray(Z)):  # NumPy's solve raises there; the isfinite test also guards
        res = rqr.qrcp_randomized(A, block=8, rng=0)
        Q, R = np.asarray(res.Q), np.asarray(res.R)
        assert res.extras["resketches"] >= 1
        assert np.array_equal(R, np.zeros((40, 40)))
        assert np.array_equal(np.sort(res.perm), np.arange(40))
        assert np.array_equal(Q.T @ Q, np.eye(40))


# ------------------------------------------------------------ input handling


@pytest.mark.parametrize("dtype", ["float32", "complex64"])
@pytest.mark.parametrize("impl_id", list(ALL))
def test_single_precision_stays_single(impl_id, dtype):
    A, b, x = lstsq_problem(("single", impl_id, dtype), 120, 10, 10.0, dtype)
    args = (A, b) if impl_id.startswith("lstsq") else (A,)
    res = ALL[impl_id](*args, rng=0)
    assert result_dtype_error(res, dtype) is None
    assert all(np.asarray(f).dtype == np.dtype(dtype) for f in _fields(res)
               if np.asarray(f).dtype.kind in "fc")


@pytest.mark.parametrize("impl_id", list(ALL))
@pytest.mark.parametrize("order", ["C", "F", "readonly"])
def test_input_never_modified(impl_id, order):
    A, b, _ = lstsq_problem(("inputs", impl_id), 80, 10, 10.0, "float64", rres=0.1)
    A0, b0 = A.copy(), b.copy()
    A = np.array(A, order="F" if order == "F" else "C")
    if order == "readonly":
        A.flags.writeable = b.flags.writeable = False
    ALL[impl_id](*((A, b) if impl_id.startswith("lstsq") else (A,)), rng=0)
    assert np.array_equal(A, A0) and np.array_equal(b, b0)


@pytest.mark.parametrize("impl_id", list(LSTSQ))
def test_lstsq_bad_input(impl_id):
    f = LSTSQ[impl_id]
    A, b = np.ones((10, 3)), np.ones(10)
    with pytest.raises(ValueError, match=r"b must have shape \(10,\)"):
        f(A, np.ones(9))
    with pytest.raises(ValueError, match="m >= n"):
        f(np.ones((3, 5)), np.ones(3))
    with pytest.raises(ValueError, match="sketch must be one of"):
        f(A, b, sketch="countsketch")
    for bad in (0, -1, 2.5, True, "4"):
        with pytest.raises(ValueError, match="gamma must be an integer"):
            f(A, b, gamma=bad)
    with pytest.raises(TypeError):
        f(A.astype(np.float16), b)
    with pytest.raises(TypeError, match="complex right-hand side"):
        f(A, b + 1j)
    assert f(A, b.reshape(-1, 1), rng=0).x.shape == (3,)


def test_bad_parameters():
    A = np.ones((10, 4))
    with pytest.raises(ValueError, match="maxiter must be an integer"):
        rls.lstsq_sketch_precondition(A, np.ones(10), maxiter=-1)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="block must be an integer"):
            rqr.qrcp_randomized(A, block=bad)
    with pytest.raises(ValueError, match="p must be an integer"):
        rqr.qrcp_randomized(A, p=-1)
    with pytest.raises(ValueError, match="sketch must be one of"):
        rqr.qr_rand_cholqr(A, sketch="dense")
    with pytest.raises(ValueError, match="gamma must be an integer"):
        rqr.qr_rand_cholqr(A, gamma=0)
    with pytest.raises(ValueError, match="m >= n"):
        rqr.qr_rand_cholqr(np.ones((3, 5)))
    for f in QRS.values():
        with pytest.raises(TypeError):
            f(A.astype(np.float16))
        with pytest.raises(TypeError):
            f(np.ones((5, 3), dtype=np.int64))
