"""Tests for factorbench.accuracy.matrices: families, known spectra, kappa_actual, rhs."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.linalg as sla

from factorbench.accuracy import matrices as M
from factorbench.accuracy.matrices import (
    KINDS,
    TestMatrix,
    generate,
    kappa_actual,
    normalize_rng,
    rhs,
)

U64 = np.finfo(np.float64).eps / 2
RANDOM_KINDS = {"randsvd", "spd", "gaussian", "graded", "lowrank", "polydecay", "expdecay",
                "rankdef", "mirrored"}
SQUARE_ONLY = sorted(k for k, info in KINDS.items() if info.square_only)


def _make(kind, m, n, **kw):
    if KINDS[kind].controls_kappa:
        kw.setdefault("kappa", 1e6)
    return generate(kind, m, n, **kw)


def _shapes(kind):
    return [(12, 12)] if KINDS[kind].square_only else [(12, 12), (15, 9), (9, 15)]


# --------------------------------------------------------------------------- registry


def test_kinds_registry():
    assert set(KINDS) == {"randsvd", "spd", "gaussian", "hilbert", "vandermonde", "kahan",
                          "wilkinson", "graded", "lowrank", "polydecay", "expdecay",
                          "rankdef", "zero", "mirrored"}
    for name, info in KINDS.items():
        assert info.name == name
        assert info.structure in ("general", "symmetric", "spd")
        assert info.description
    assert {k for k, i in KINDS.items() if i.controls_kappa} == {"randsvd", "spd", "graded"}
    assert {k for k, i in KINDS.items() if i.has_modes} == {"randsvd", "spd"}
    assert {k for k, i in KINDS.items() if i.has_rank} == {"lowrank", "polydecay", "expdecay"}
    assert TestMatrix.__test__ is False


# --------------------------------------------------------------------------- every family


@pytest.mark.parametrize("cplx", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_family_contract(kind, cplx):
    info = KINDS[kind]
    dtype = np.complex128 if cplx else np.float64
    for m, n in _shapes(kind):
        tm = _make(kind, m, n, complex_=cplx, rng=7)
        assert isinstance(tm, TestMatrix) and tm.kind == kind
        assert tm.A.shape == (m, n) and tm.A.dtype == dtype and tm.A.flags.c_contiguous
        assert np.isfinite(tm.A).all()
        assert tm.structure == info.structure
        assert (tm.kappa is not None) == info.controls_kappa
        assert (tm.mode is not None) == info.has_modes
        if info.has_rank:
            assert tm.rank is not None
        if tm.sigma is not None:
            assert tm.sigma.shape == (min(m, n),)
            assert np.all(np.diff(tm.sigma) <= 0) and tm.sigma[-1] >= 0
        if tm.eigenvalues is not None:
            assert tm.eigenvalues.shape == (n,) and np.all(np.diff(tm.eigenvalues) >= 0)
        if info.structure != "general":
            assert np.array_equal(tm.A, tm.A.conj().T)

        # same seed, in any of its accepted forms: byte-identical
        for seed in (7, np.random.SeedSequence(7), np.random.default_rng(7)):
            assert _make(kind, m, n, complex_=cplx, rng=seed).A.tobytes() == tm.A.tobytes()
        other = _make(kind, m, n, complex_=cplx, rng=8).A
        assert (other.tobytes() != tm.A.tobytes()) == (kind in RANDOM_KINDS)


def test_deterministic_complex_has_zero_imaginary_part():
    for kind in ("hilbert", "vandermonde", "kahan", "wilkinson"):
        tr = generate(kind, 9, 9)
        tc = generate(kind, 9, 9, complex_=True)
        assert np.array_equal(tc.A.real, tr.A) and not tc.A.imag.any()


# --------------------------------------------------------------------------- Haar sampling


@pytest.mark.parametrize("cplx", [False, True])
def test_haar_moments(cplx):
    # Haar: E tr Q = 0 and E |tr Q|^2 = 1 (n >= 2); without the sign fix of
    # diag(R) the trace is strongly biased.
    rng = np.random.default_rng(11)
    traces = np.array([np.trace(M._haar(rng, 4, 4, cplx)) for _ in range(2000)])
    assert abs(traces.mean()) < 0.1
    assert abs(np.mean(np.abs(traces) ** 2) - 1) < 0.15
    Q = M._haar(rng, 30, 12, cplx)
    np.testing.assert_allclose(Q.conj().T @ Q, np.eye(12), atol=50 * U64)


# --------------------------------------------------------------------------- randsvd / spd


@pytest.mark.parametrize("shape", [(40, 40), (60, 25), (25, 60)])
@pytest.mark.parametrize("cplx", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("mode", [1, 2, 3, 4, 5])
def test_randsvd_spectrum(mode, cplx, shape):
    m, n = shape
    kappa = 1e6
    tm = generate("randsvd", m, n, kappa=kappa, mode=mode, complex_=cplx, rng=3)
    sig = tm.sigma
    assert tm.mode == mode and tm.kappa == kappa
    assert sig[0] == 1.0 and sig[-1] == 1.0 / kappa
    s = sla.svdvals(tm.A)
    tol = 10 * max(m, n) * U64 * sig[0]
    np.testing.assert_allclose(s, sig, rtol=0, atol=tol)
    assert s[0] / s[-1] == pytest.approx(kappa, rel=tol * kappa)
    if mode == 1:
        assert np.all(sig[1:] == 1.0 / kappa)
    elif mode == 2:
        assert np.all(sig[:-1] == 1.0)
    elif mode == 3:
        np.testing.assert_allclose(sig[1:] / sig[:-1], kappa ** (-1 / (len(sig) - 1)), rtol=1e-12)
    elif mode == 4:
        np.testing.assert_allclose(np.diff(sig), -(1 - 1 / kappa) / (len(sig) - 1), rtol=1e-9)


def test_randsvd_mode5_is_random_and_default_mode_is_3():
    a = generate("randsvd", 30, 30, kappa=1e4, mode=5, rng=1).sigma
    b = generate("randsvd", 30, 30, kappa=1e4, mode=5, rng=2).sigma
    assert not np.array_equal(a, b)
    assert np.all((a >= 1e-4) & (a <= 1))
    assert generate("randsvd", 5, 5, kappa=10.0).mode == 3


def test_randsvd_kappa_one_and_huge():
    assert np.array_equal(generate("randsvd", 6, 6, kappa=1.0, mode=4, rng=0).sigma, np.ones(6))
    tm = generate("randsvd", 20, 20, kappa=1e20, mode=4, rng=0)
    assert tm.sigma[-1] == 1e-20 and np.isfinite(tm.A).all()


@pytest.mark.parametrize("cplx", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("mode", [1, 2, 3, 4, 5])
def test_spd_eigenvalues_symmetry_and_cholesky(mode, cplx):
    n, kappa = 40, 1e12
    tm = generate("spd", n, n, kappa=kappa, mode=mode, complex_=cplx, rng=5)
    A = tm.A
    assert np.array_equal(A, A.conj().T)
    assert tm.eigenvalues[0] == 1.0 / kappa and tm.eigenvalues[-1] == 1.0
    assert np.array_equal(tm.sigma, tm.eigenvalues[::-1])
    np.testing.assert_allclose(sla.eigvalsh(A), tm.eigenvalues, rtol=0, atol=10 * n * U64)
    L = sla.cholesky(A, lower=True)
    assert np.isfinite(L).all()


# --------------------------------------------------------------------------- fixed matrices


@pytest.mark.parametrize("n", [10, 20, 50])
def test_wilkinson_growth_is_two_to_n_minus_one(n):
    A = generate("wilkinson", n, n).A
    P, L, U = sla.lu(A)
    assert np.array_equal(P, np.eye(n))
    assert np.abs(U).max() / np.abs(A).max() == 2.0 ** (n - 1)


@pytest.mark.parametrize("n", [10, 64, 300])
def test_mirrored_pivots_come_from_the_mirrored_row_with_growth_at_most_two(n):
    A = generate("mirrored", n, n, rng=3).A
    P, L, U = sla.lu(A)
    # A = P L U with P the row reversal: step k pivots on row n - 1 - k
    assert np.array_equal(P, np.eye(n)[::-1])
    assert np.abs(U).max() / np.abs(A).max() <= 2.0
    assert np.abs(L).max() <= 1.0


@pytest.mark.parametrize("n", [10, 50, 100])
def test_kahan_defeats_column_pivoting(n):
    tm = generate("kahan", n, n)
    A = tm.A
    assert np.array_equal(A, np.triu(A))
    assert tm.meta == {"theta": 1.2, "pert": 25.0}
    _, R, perm = sla.qr(A, pivoting=True)
    assert np.array_equal(perm, np.arange(n))
    if n == 50:
        # sigma_min ~ 1.6e-8 is still computed accurately here
        assert abs(R[-1, -1]) > 1e5 * sla.svdvals(A)[-1]


def test_hilbert_and_vandermonde_entries():
    H = generate("hilbert", 8, 8).A
    assert all(H[i, j] == 1.0 / (i + j + 1) for i in range(8) for j in range(8))
    sla.cholesky(H)  # kappa ~ 1.5e10: still positive definite in float64
    V = generate("vandermonde", 7, 7).A
    x = np.linspace(0, 1, 7)
    assert np.array_equal(V[:, 0], np.ones(7)) and np.array_equal(V[:, 1], x)
    np.testing.assert_allclose(V, x[:, None] ** np.arange(7), rtol=1e-15)


# ------------------------------------------------------------------ graded, lowrank, failures


@pytest.mark.parametrize("shape", [(50, 50), (30, 60), (60, 30)])
@pytest.mark.parametrize("kappa", [1e3, 1e10])
def test_graded_kappa_tracks_target(shape, kappa):
    m, n = shape
    tm = generate("graded", m, n, kappa=kappa, rng=4)
    assert tm.sigma is None and tm.kappa == kappa
    kb = tm.meta["kappa_B"]
    cond = np.linalg.cond(tm.A)
    assert cond <= kappa * kb * (1 + 1e-6)
    if m <= n:
        assert cond >= kappa / kb * (1 - 1e-6)
    rows = np.linalg.norm(tm.A, axis=1)
    assert rows[0] > 1e-3 * kappa * rows[min(m, n) - 1]


@pytest.mark.parametrize("cplx", [False, True], ids=["real", "complex"])
def test_lowrank_known_spectrum(cplx):
    m, n, r = 80, 50, 5
    tm = generate("lowrank", m, n, rank=r, complex_=cplx, rng=9)
    assert tm.rank == r and tm.kappa is None
    assert tm.sigma[0] == 1.0 and tm.sigma[r - 1] == tm.meta["signal_min"]
    assert np.all(tm.sigma[r:] == tm.meta["noise"])
    np.testing.assert_allclose(sla.svdvals(tm.A), tm.sigma, rtol=0, atol=10 * m * U64)


@pytest.mark.parametrize(("shape", "rank"), [((80, 50), 10), ((8, 8), 2), ((3, 3), 1)])
def test_lowrank_default_rank(shape, rank):
    assert generate("lowrank", *shape, rng=0).rank == rank


def test_rankdef_and_zero():
    tm = generate("rankdef", 30, 20, rng=2)
    assert tm.rank == 10 and np.count_nonzero(tm.sigma) == 10
    s = sla.svdvals(tm.A)
    np.testing.assert_allclose(s, tm.sigma, rtol=0, atol=10 * 30 * U64)
    assert generate("rankdef", 1, 5, rng=2).rank == 0
    z = generate("zero", 4, 6)
    assert not z.A.any() and z.rank == 0 and np.array_equal(z.sigma, np.zeros(4))
    assert kappa_actual(z.A) == math.inf


# --------------------------------------------------------------------------- kappa_actual


def test_kappa_actual_is_that_of_the_rounded_matrix():
    A = generate("randsvd", 40, 40, kappa=1e12, rng=6).A
    assert kappa_actual(A) == pytest.approx(1e12, rel=1e-2)
    A32 = A.astype(np.float32)
    k32 = kappa_actual(A32)
    assert k32 == pytest.approx(np.linalg.cond(A32.astype(np.float64)), rel=1e-8)
    assert k32 < 1e11  # float32 rounding (~6e-8) swamps sigma_min = 1e-12
    C = generate("randsvd", 30, 20, kappa=1e3, complex_=True, rng=6).A.astype(np.complex64)
    assert kappa_actual(C) == pytest.approx(np.linalg.cond(C.astype(np.complex128)), rel=1e-8)


def test_kappa_actual_limits_and_special_values():
    A = generate("gaussian", 12, 30, rng=0).A
    assert kappa_actual(A, max_n=29) is None
    assert kappa_actual(A, max_n=30) is not None
    assert kappa_actual(np.zeros((3, 3))) == math.inf
    B = np.eye(3)
    B[0, 0] = np.nan
    assert math.isnan(kappa_actual(B))
    with pytest.raises(ValueError, match="2-D"):
        kappa_actual(np.ones(3))


def test_kappa_actual_emulated_dtype():
    ml = pytest.importorskip("ml_dtypes")
    A = generate("randsvd", 16, 16, kappa=10.0, rng=1).A.astype(ml.bfloat16)
    assert kappa_actual(A) == pytest.approx(np.linalg.cond(A.astype(np.float64)), rel=1e-8)


# --------------------------------------------------------------------------- rhs


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128, np.complex64])
@pytest.mark.parametrize("shape", [(20, 20), (30, 12)])
def test_rhs_is_rounded_longdouble_product(dtype, shape):
    cplx = np.dtype(dtype).kind == "c"
    A_w = generate("randsvd", *shape, kappa=1e4, complex_=cplx, rng=2).A.astype(dtype)
    x, b = rhs(A_w, 5)
    assert x.dtype == (np.complex128 if cplx else np.float64) and x.shape == (shape[1],)
    assert b.dtype == A_w.dtype and b.shape == (shape[0],)
    assert np.array_equal(x.astype(dtype).astype(x.dtype), x)  # x representable in working dtype
    ld = np.clongdouble if cplx else np.longdouble
    ref = (A_w.astype(ld) @ x.astype(ld)).astype(dtype)
    assert np.array_equal(b, ref)
    x2, b2 = rhs(A_w, np.random.SeedSequence(5))
    assert np.array_equal(x2, x) and np.array_equal(b2, b)
    if cplx:
        assert np.abs(x.imag).max() > 0


def test_rhs_multiple_columns():
    A = generate("gaussian", 9, 7, rng=0).A
    x, b = rhs(A, 0, nrhs=3)
    assert x.shape == (7, 3) and b.shape == (9, 3)
    assert not np.array_equal(x, rhs(A, 1, nrhs=3)[0])


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_rhs_narrow_dtype_is_correctly_rounded(name):
    if name == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes").bfloat16
    else:
        dtype = np.float16
    A_w = generate("gaussian", 6, 6, rng=3).A.astype(dtype)
    x, b = rhs(A_w, 4)
    for i in range(6):
        exact = sum(Fraction(float(a)) * Fraction(float(v)) for a, v in zip(A_w[i], x, strict=True))
        err = abs(Fraction(float(b[i])) - exact)
        # both 16-bit formats: adjacent bit patterns are the adjacent magnitudes
        bits = b[i : i + 1].view(np.uint16)
        for nb in ((bits + 1).view(dtype), (bits - 1).view(dtype)):
            assert err <= abs(Fraction(float(nb[0])) - exact)


@pytest.mark.skipif(np.finfo(np.longdouble).nmant <= 52, reason="longdouble is float64 here")
def test_round_longdouble_avoids_double_rounding():
    ml = pytest.importorskip("ml_dtypes")
    two = np.longdouble(2)
    for dtype, p in ((np.float16, 11), (ml.bfloat16, 8), (np.float32, 24), (np.float64, 53)):
        # 1 + 2^-p is a tie in the target; the 2^-62 tail must round it up
        x = np.array([1 + two ** -p + two ** -62, -(1 + two ** -p + two ** -62)])
        got = M._round_longdouble(x, dtype).astype(np.float64)
        assert np.array_equal(got, [1 + 2.0 ** (1 - p), -(1 + 2.0 ** (1 - p))])


# --------------------------------------------------------------------------- errors, rng


@pytest.mark.parametrize(
    ("kind", "m", "n", "kw", "match"),
    [
        ("randsvdd", 4, 4, {"kappa": 10}, "'randsvd'"),
        ("nope", 4, 4, {}, "Unknown matrix kind"),
        ("randsvd", 4, 4, {"kappa": 0.5}, "kappa must"),
        ("randsvd", 4, 4, {"kappa": math.nan}, "kappa must"),
        ("randsvd", 4, 4, {"kappa": math.inf}, "kappa must"),
        ("randsvd", 4, 4, {}, "needs a target condition number"),
        ("spd", 4, 4, {}, "needs a target condition number"),
        ("graded", 4, 4, {}, "needs a target condition number"),
        ("randsvd", 0, 4, {"kappa": 10}, "m must be a positive"),
        ("gaussian", 4, -1, {}, "n must be a positive"),
        ("randsvd", 4, 4, {"kappa": 10, "mode": 0}, "mode must"),
        ("spd", 4, 4, {"kappa": 10, "mode": 6}, "mode must"),
        ("lowrank", 8, 8, {"rank": 0}, "rank must"),
        ("lowrank", 8, 6, {"rank": 7}, "rank must"),
        ("gaussian", 4, 4, {"kappa": 10}, "does not control kappa"),
        ("gaussian", 4, 4, {"mode": 3}, "no spectrum modes"),
        ("randsvd", 4, 4, {"kappa": 10, "rank": 2}, "does not take a rank"),
        ("randsvd", 1, 4, {"kappa": 10}, "condition number 1, not"),
    ]
    + [(k, 4, 5, {"kappa": 10} if KINDS[k].controls_kappa else {}, "square only")
       for k in SQUARE_ONLY],
)
def test_invalid_input_raises_value_error(kind, m, n, kw, match):
    with pytest.raises(ValueError, match=match):
        generate(kind, m, n, **kw)


def test_normalize_rng():
    g = np.random.default_rng(1)
    assert normalize_rng(g) is g
    assert isinstance(normalize_rng(None), np.random.Generator)
    a = normalize_rng(np.int64(3)).standard_normal(4)
    assert np.array_equal(a, normalize_rng(np.random.SeedSequence(3)).standard_normal(4))
    for bad in ("3", 1.5, True):
        with pytest.raises(TypeError):
            normalize_rng(bad)


# --------------------------------------------------------------------------- decay spectra


@pytest.mark.parametrize("kind", ["polydecay", "expdecay"])
def test_decay_spectra_are_tropp_et_al(kind):
    """Tropp, Yurtsever, Udell & Cevher (2017, sec. 7.3): r ones, then j^-1 or 10^(-j/4)."""
    tm = generate(kind, 60, 40, rank=5, rng=3)
    j = np.arange(1, 36, dtype=float)
    tail = 1.0 / (1.0 + j) if kind == "polydecay" else 10.0 ** (-0.25 * j)
    assert np.array_equal(tm.sigma, np.concatenate((np.ones(5), tail)))
    s = np.linalg.svd(tm.A, compute_uv=False)
    assert np.max(np.abs(s - tm.sigma)) <= 60 * np.finfo(float).eps


# --------------------------------------------------------------------------- lstsq residual


def test_lstsq_rhs_residual_is_orthogonal_and_sized():
    from factorbench.accuracy.matrices import lstsq_rhs

    tm = generate("randsvd", 300, 40, kappa=1e6, rng=5)
    x0, b0 = rhs(tm.A, 9)
    x, b, eta = lstsq_rhs(tm.A, 9, residual=0.0)
    assert np.array_equal(x, x0) and np.array_equal(b, b0) and eta == 0.0
    x, b, eta = lstsq_rhs(tm.A, 9, residual=1e-3, norm2=1.0)
    assert np.array_equal(x, x0)  # x_true is drawn first: the same solution
    r = b - tm.A @ x
    u = np.finfo(float).eps / 2
    Ax = np.linalg.norm(tm.A @ x)
    # ||r|| as asked, up to the rounding of b (u ||b|| per entry)
    assert abs(np.linalg.norm(r) / Ax - 1e-3) <= 300 * u * np.linalg.norm(b) / Ax
    Q = np.linalg.qr(tm.A)[0]
    assert np.linalg.norm(Q.T @ r) <= 300 * u * np.linalg.norm(b)
    assert eta == pytest.approx(np.linalg.norm(r) / np.linalg.norm(x), rel=1e-6)
    # x_true is the least-squares solution: a backward-stable solver lands within
    # its own error bound u (kappa + kappa^2 eta) (Higham 2002, Thm 20.1)
    xs = np.linalg.lstsq(tm.A, b, rcond=None)[0]
    assert np.linalg.norm(xs - x) / np.linalg.norm(x) <= 300 * u * (1e6 + 1e12 * eta)


def test_lstsq_rhs_refuses_bad_residuals():
    from factorbench.accuracy.matrices import lstsq_rhs

    A = generate("randsvd", 20, 20, kappa=10.0, rng=1).A
    with pytest.raises(ValueError, match="needs m > n"):
        lstsq_rhs(A, 0, residual=0.1)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite number >= 0"):
            lstsq_rhs(A, 0, residual=bad)
