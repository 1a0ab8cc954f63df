"""Mixed-precision iterative refinement (factorbench.impls.mixed) against the theory.

Convergence conditions pinned here (working precision float64 unless stated,
u_r = float64, kappa the 2-norm condition number of randsvd mode 3):

* LU-IR converges to the limiting accuracy (forward error ~ kappa u) when
  kappa u_f < 1 (Carson & Higham 2018; Higham 2002, sec. 12.1):
  kappa up to 1e7 for float32 factors (u_f = 2^-24, 1/u_f = 1.7e7), up to
  1e2 for bfloat16 factors (1/u_f = 256), and fails well beyond (1e9 and 1e4).
* GMRES-IR with the same factors converges far beyond that (Carson & Higham
  2017; 2018: kappa up to about u^{-1/2} u_f^{-1}, with the preconditioned
  product in u^2; here it is in u, see the module docstring): float32
  factors at kappa = 1e9 and 1e10, bfloat16 factors at 1e4 and 1e6.
* ``converged`` agrees with the measured forward error, judged by the
  harness's own pass limit on kappa_scaled_error (float64 working), and with
  float32 working (u_r = float64 << u) means the O(u) limiting accuracy of
  Carson & Higham 2018, Thm 3.2, against the exact solution of the float32
  system.
* Iteration counts are bounded by the contraction argument (``_max_steps``),
  GMRES breakdowns give ``diverged``, and a harness cell records
  ``iterations`` and ``converged``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from factorbench.accuracy import matrices, metrics
from factorbench.impls import mixed

U64 = 2.0**-53
U32 = 2.0**-24


def _max_steps(kappa, u_f, u, u_r=U64):
    """Corrections LU-IR needs by Carson & Higham's contraction argument.

    Each step multiplies the forward error by about xi = kappa u_f (2018,
    sec. 3: the correction solve's relative error), starting from x0 whose
    error is itself about xi, until the limiting accuracy
    max(u, kappa u_r) is reached: ceil(log(limit) / log(xi)) steps, plus 2:
    one whose correction is already at the floor (the stopping test reads
    ||d|| or a ratio of two corrections, so it fires one step late), one for
    the constant hidden in "about".  Used only where xi <= 1/2, so the
    constant's effect on log(xi) stays bounded.
    """
    xi = kappa * u_f
    assert xi <= 0.5, xi
    return math.ceil(math.log(max(u, kappa * u_r)) / math.log(xi)) + 2


def _emulated_available() -> bool:
    try:
        from factorbench.accuracy.precision import store
        from factorbench.impls.textbook.lu import cholesky_textbook, lu_gepp

        lu_gepp(store(np.eye(2), "bfloat16"))
        cholesky_textbook(store(np.eye(2), "float16"))
    except (ImportError, AttributeError, KeyError, TypeError, ValueError):
        return False
    return True


needs_emulated = pytest.mark.skipif(
    not _emulated_available(),
    reason="emulated bfloat16/float16 LU and Cholesky (lu/gepp, cholesky/textbook on "
    "ml_dtypes input) are not available in this build",
)


def _problem(kappa, n=60, seed=0, kind="randsvd", dtype=np.float64):
    tm = matrices.generate(kind, n, n, kappa=kappa, rng=seed)
    A = tm.A.astype(dtype)
    x_true, b = matrices.rhs(A, seed + 1000)
    return A, b, x_true, matrices.kappa_actual(A)


def _run(f, kappa, factor, n=60, seed=0, kind="randsvd", dtype=np.float64, **kw):
    A, b, x_true, kappa_a = _problem(kappa, n, seed, kind, dtype)
    A0, b0 = A.copy(), b.copy()
    res = f(A, b, factor=factor, **kw)
    assert np.array_equal(A, A0) and np.array_equal(b, b0), "inputs modified"
    assert res.x.dtype == A.dtype and res.x.shape == (n,)
    u = float(np.finfo(dtype).eps) / 2
    m = metrics.bundle("solve", A, res, u=u, kappa=kappa_a, b=b, x_true=x_true)
    return res, m


def _limit(n):
    return metrics.limits(size=n)["kappa_scaled_error"]


def _assert_converged(res, m, n=60):
    ex = res.extras
    assert ex["converged"] is True, ex
    assert ex["iterations"] >= 1
    assert m["kappa_scaled_error"] < _limit(n), (m, ex)
    assert metrics.passed(m, size=n), (m, ex)


def _assert_not_converged(res, m, n=60):
    ex = res.extras
    assert ex["converged"] is False, (m, ex)
    assert ex["stop"] in ("diverged", "stagnated", "maxiter")
    # the measured error agrees: far above the kappa u level the harness accepts
    assert m["kappa_scaled_error"] > 100 * _limit(n), (m, ex)


# --------------------------------------------------------------- LU-IR, float32 factors


@pytest.mark.parametrize("kappa", [1e0, 1e3, 1e6, 1e7])
def test_lu_ir_float32_factors_reach_float64_accuracy_while_kappa_uf_below_one(kappa):
    res, m = _run(mixed.solve_ir_lu, kappa, "float32")
    _assert_converged(res, m)
    if kappa * U32 <= 0.5:  # at 1e7, xi = 0.6: only maxiter bounds it
        assert res.extras["iterations"] <= _max_steps(kappa, U32, U64), res.extras
    assert res.extras["u_f"] == 2.0**-24 and res.extras["u_r"] == U64


@pytest.mark.parametrize("kappa", [1e9, 1e12])
def test_lu_ir_float32_factors_fail_well_beyond_one_over_uf(kappa):
    res, m = _run(mixed.solve_ir_lu, kappa, "float32")
    _assert_not_converged(res, m)


# --------------------------------------------------------------- GMRES-IR


@pytest.mark.parametrize("kappa", [1e9, 1e10])
def test_gmres_ir_float32_factors_converge_where_lu_ir_does_not(kappa):
    res, m = _run(mixed.solve_gmres_ir, kappa, "float32")
    _assert_converged(res, m)
    assert res.extras["gmres_iterations"] >= res.extras["iterations"]
    lu_res, lu_m = _run(mixed.solve_ir_lu, kappa, "float32")
    assert not lu_res.extras["converged"]
    assert m["forward_error"] < 1e-3 * lu_m["forward_error"]


def test_gmres_ir_small_kappa_needs_few_inner_iterations():
    res, m = _run(mixed.solve_gmres_ir, 1e2, "float32")
    _assert_converged(res, m)
    # With xi = kappa u_f = 6e-6, one Arnoldi step reduces the preconditioned
    # residual of M^{-1} A = I + O(xi) by xi <= tol = 1e-4: one inner iteration
    # per correction (x0 takes none), plus one per correction of slack.
    assert res.extras["gmres_iterations"] <= 2 * res.extras["iterations"]


# --------------------------------------------------------------- emulated factors


@needs_emulated
@pytest.mark.parametrize("kappa", [1e1, 1e2])
def test_lu_ir_bfloat16_factors_converge_for_kappa_below_256(kappa):
    res, m = _run(mixed.solve_ir_lu, kappa, "bfloat16")
    _assert_converged(res, m)
    assert res.extras["u_f"] == 2.0**-8


@needs_emulated
@pytest.mark.parametrize("factor, u_f", [("bfloat16", 2.0**-8), ("float16", 2.0**-11)])
@pytest.mark.parametrize("kappa", [1e1, 1e2])
def test_lu_ir_emulated_factors_iterations_follow_the_contraction(factor, u_f, kappa):
    if kappa * u_f > 0.5:
        pytest.skip("contraction bound needs kappa u_f <= 1/2")
    res, m = _run(mixed.solve_ir_lu, kappa, factor)
    _assert_converged(res, m)
    assert res.extras["iterations"] <= _max_steps(kappa, u_f, U64), res.extras


@needs_emulated
def test_lu_ir_bfloat16_factors_fail_beyond():
    res, m = _run(mixed.solve_ir_lu, 1e4, "bfloat16")
    _assert_not_converged(res, m)


@needs_emulated
@pytest.mark.parametrize("kappa", [1e4, 1e6])
def test_gmres_ir_bfloat16_factors_extend_the_range(kappa):
    res, m = _run(mixed.solve_gmres_ir, kappa, "bfloat16")
    _assert_converged(res, m)


@needs_emulated
def test_float16_factors_lu_ir_at_small_kappa_gmres_ir_beyond():
    res, m = _run(mixed.solve_ir_lu, 1e2, "float16")
    _assert_converged(res, m)
    res, m = _run(mixed.solve_ir_lu, 1e5, "float16")  # kappa u_f = 49
    _assert_not_converged(res, m)
    res, m = _run(mixed.solve_gmres_ir, 1e5, "float16")
    _assert_converged(res, m)


@needs_emulated
@pytest.mark.parametrize("f", [mixed.solve_ir_lu, mixed.solve_gmres_ir])
def test_float32_working_precision_with_low_precision_factors(f):
    res, m = _run(f, 1e2, "bfloat16", dtype=np.float32)
    _assert_converged(res, m)
    assert res.x.dtype == np.float32


def _fe_exact32(A, b, x):
    """Forward error of a float32-working x against the exact solution of the
    float32 system actually posed (solved in float64: error ~kappa 1e-16,
    negligible at the kappa used here), relative, inf-norm."""
    xe = np.linalg.solve(A.astype(np.float64), b.astype(np.float64))
    return float(np.linalg.norm(x.astype(np.float64) - xe, np.inf) / np.linalg.norm(xe, np.inf))


def _bound32(n, kappa):
    """Carson & Higham 2018, Thm 3.2, limiting forward error for u_r << u:
    4 n u_r cond(A, x) + u (cond(A, x) <= kappa_inf <= n kappa_2), plus u for
    the last correction: the stopping test ||d|| <= u ||x|| leaves at most
    (1 + xi) u ||x|| <= 2 u ||x|| unresolved with xi < 1 (the step's
    contraction).  So 2u + 4 n^2 u_r kappa (the second term 1e-11 here)."""
    return 2 * U32 + 4 * n * n * U64 * kappa


@needs_emulated
@pytest.mark.parametrize("f", [mixed.solve_ir_lu, mixed.solve_gmres_ir])
@pytest.mark.parametrize("factor", ["bfloat16", "float16"])
def test_float32_working_converged_means_limiting_accuracy(f, factor):
    """u_r = 2^-53 < u = 2^-24: the limiting error is O(u) whatever kappa, so
    ``converged`` must mean that, and come from ||d|| <= u ||x|| only."""
    n = 60
    for kappa in (1e1, 3e1, 1e2):
        for seed in range(4):
            A, b, _, _ = _problem(kappa, n, seed, dtype=np.float32)
            res = f(A, b, factor=factor)
            fe = _fe_exact32(A, b, res.x)
            ex = res.extras
            assert ex["converged"] is True and ex["stop"] == "converged", (kappa, seed, fe, ex)
            assert fe <= _bound32(n, kappa), (kappa, seed, fe / U32, ex)


@needs_emulated
@pytest.mark.parametrize("kappa, seed", [(6e2, 0), (6e2, 2), (1e3, 2), (1e3, 0), (1e4, 0)])
def test_float32_working_flag_false_unless_limiting_accuracy(kappa, seed):
    """bfloat16 LU-IR around and beyond kappa u_f = 1: whatever the outcome,
    the flag is True exactly when the error is at the limiting accuracy.
    (Regression: the float64-working "no gain" rule used to stop at 3119 u
    after 7 steps at kappa 6e2 seed 0, and maxiter exits with eta <= sqrt(n) u
    were reported converged at 1994 u.)"""
    n = 60
    A, b, _, _ = _problem(kappa, n, seed, dtype=np.float32)
    res = mixed.solve_ir_lu(A, b, factor="bfloat16")
    fe = _fe_exact32(A, b, res.x)
    ok = fe <= _bound32(n, kappa)
    assert res.extras["converged"] is ok, (fe / U32, res.extras)
    if not ok:
        assert res.extras["stop"] in ("diverged", "stagnated", "maxiter")


@needs_emulated
def test_emulated_factors_survive_large_entries():
    """The power-of-two scaling keeps float16 (max 65504) from overflowing."""
    A, b, x_true, kappa = _problem(1e2)
    s = 2.0**40
    res = mixed.solve_ir_lu(A * s, b * s, factor="float16")
    m = metrics.bundle("solve", A * s, res, u=U64, kappa=kappa, b=b * s, x_true=x_true)
    _assert_converged(res, m)


# --------------------------------------------------------------- Cholesky-IR


@pytest.mark.parametrize("kappa", [1e2, 1e6])
def test_ir_cholesky_float32_factors(kappa):
    res, m = _run(mixed.solve_ir_cholesky, kappa, "float32", kind="spd")
    _assert_converged(res, m)


def test_ir_cholesky_breakdown_in_low_precision_names_positive_definiteness():
    A, b, _, _ = _problem(1e10, kind="spd")
    with pytest.raises(np.linalg.LinAlgError, match="positive definite"):
        mixed.solve_ir_cholesky(A, b, factor="float32")


@needs_emulated
def test_ir_cholesky_bfloat16():
    res, m = _run(mixed.solve_ir_cholesky, 1e2, "bfloat16", kind="spd")
    _assert_converged(res, m)
    A, b, _, _ = _problem(1e4, kind="spd")  # kappa u_bf16 = 39: breaks down
    with pytest.raises(np.linalg.LinAlgError, match="positive definite"):
        mixed.solve_ir_cholesky(A, b, factor="bfloat16")


# --------------------------------------------------------------- bookkeeping


def test_converged_flag_matches_the_forward_error():
    n = 40
    for f, kappas in ((mixed.solve_ir_lu, (1e1, 1e5, 1e9, 1e11)),
                      (mixed.solve_gmres_ir, (1e1, 1e8))):
        for kappa in kappas:
            res, m = _run(f, kappa, "float32", n=n, seed=3)
            ok = m["kappa_scaled_error"] < _limit(n)
            assert res.extras["converged"] == ok, (f.__name__, kappa, m, res.extras)


@pytest.mark.parametrize("f", [mixed.solve_ir_lu, mixed.solve_gmres_ir, mixed.solve_ir_cholesky])
def test_float32_working_float32_factors_is_classical_refinement(f):
    res, m = _run(f, 1e3, "float32", dtype=np.float32, kind="spd")
    assert res.x.dtype == np.float32
    assert res.extras["converged"]
    assert metrics.passed(m, size=60)


def test_gmres_breakdown_and_non_finite_give_nan_not_zero():
    n = 5
    # non-finite right-hand side
    d, k = mixed._gmres(lambda v: v, np.full(n, np.nan), 1e-4, n)
    assert np.all(np.isnan(d)) and k == 0
    # serious breakdown: a singular operator (op(v0) = 0) -> rho = 0
    d, k = mixed._gmres(lambda v: np.zeros_like(v), np.ones(n), 1e-4, n)
    assert np.all(np.isnan(d))
    # serious breakdown after n - 1 steps: the nilpotent shift e_j -> e_{j+1}
    # from z0 = e_0 builds V = I column by column, then op(e_{n-1}) = 0
    S = np.eye(n, k=-1)
    d, k = mixed._gmres(lambda v: S @ v, np.eye(n)[0], 1e-4, n)
    assert np.all(np.isnan(d)) and k == n
    # lucky breakdown: op = 2 I, the Krylov space of z0 is invariant at once
    z0 = np.arange(1.0, n + 1)
    d, k = mixed._gmres(lambda v: 2 * v, z0, 1e-14, n)
    assert k == 1 and np.allclose(d, z0 / 2, rtol=1e-15)
    # z0 = 0: the exact zero correction
    d, k = mixed._gmres(lambda v: v, np.zeros(n), 1e-4, n)
    assert np.array_equal(d, np.zeros(n)) and k == 0


def test_gmres_ir_breakdown_is_diverged_not_converged(monkeypatch):
    """A preconditioned operator that annihilates the residual direction used
    to give d = 0 and converged=True."""
    A, b, _, _ = _problem(1e2, n=20)
    real = mixed._gmres
    monkeypatch.setattr(mixed, "_gmres",
                        lambda op, z0, tol, maxit: real(lambda v: 0 * v, z0, tol, maxit))
    res = mixed.solve_gmres_ir(A, b, factor="float32")
    assert res.extras["stop"] == "diverged"
    assert res.extras["converged"] is False


def test_harness_cell_records_iterations_and_converged():
    from factorbench.spec import SweepSpec
    from factorbench.sweep import expand
    from factorbench.worker import run_cell

    spec = SweepSpec(ops=["solve"], impls=["solve/ir-lu"], kinds=["randsvd"], sizes=[40],
                     kappas=[1e2], dtypes=["float64"],
                     params={"factor": ["float32"], "residual": ["double"]})
    cells = expand(spec)
    assert len(cells) == 1 and cells[0]["resolved"] is None
    rec = run_cell(cells[0], {"min_time": 0.0, "max_repeats": 1, "max_time": 1.0})
    assert rec["status"] == "ok", rec
    assert isinstance(rec["iterations"], int) and rec["iterations"] >= 1
    assert rec["converged"] is True
    assert rec["passed"]


def test_column_right_hand_side_accepted():
    A, b, x_true, _ = _problem(1e2, n=20)
    res = mixed.solve_ir_lu(A, b[:, None], factor="float32")
    assert res.x.shape == (20,)
    assert np.linalg.norm(res.x - x_true) <= 1e-12 * np.linalg.norm(x_true)


@pytest.mark.parametrize("f", [mixed.solve_ir_lu, mixed.solve_gmres_ir, mixed.solve_ir_cholesky])
def test_bad_input(f):
    A32 = np.eye(4, dtype=np.float32)
    b32 = np.ones(4, dtype=np.float32)
    with pytest.raises(ValueError, match="higher than the working precision"):
        f(A32, b32, factor="float64")
    with pytest.raises(ValueError, match="unknown factor precision 'half'"):
        f(np.eye(4), np.ones(4), factor="half")
    with pytest.raises(ValueError, match="unknown residual precision"):
        f(np.eye(4), np.ones(4), residual="quad")
    with pytest.raises(ValueError, match="square matrix"):
        f(np.ones((4, 3)), np.ones(4))
    with pytest.raises(ValueError, match="b has shape"):
        f(np.eye(4), np.ones(3))
    with pytest.raises(TypeError, match="float32 or float64"):
        f(np.eye(4, dtype=np.complex128), np.ones(4))


def test_singular_low_precision_factor_raises():
    A = np.ones((3, 3))
    with pytest.raises(np.linalg.LinAlgError, match="exactly zero"):
        mixed.solve_ir_lu(A, np.ones(3), factor="float32")


def test_registration():
    from factorbench.impls import _REGISTRY

    for name, structure in (("ir-lu", "general"), ("gmres-ir", "general"),
                            ("ir-cholesky", "spd")):
        impl = _REGISTRY[f"solve/{name}"]
        assert impl.family == "mixed" and impl.backend == "numpy"
        assert impl.structure == structure
        assert impl.dtypes == ("float64", "float32")
        assert impl.parameters == {"factor": ["float32", "bfloat16", "float16"],
                                   "residual": ["double"]}
