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
  harness's own pass limit on kappa_scaled_error.
"""

from __future__ import annotations

import numpy as np
import pytest

from factorbench.accuracy import matrices, metrics
from factorbench.impls import mixed

U64 = 2.0**-53


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
    assert res.extras["iterations"] <= (3 if kappa <= 1e3 else 8)
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
    assert res.extras["gmres_iterations"] <= 2 * res.extras["iterations"] + 2


# --------------------------------------------------------------- emulated factors


@needs_emulated
@pytest.mark.parametrize("kappa", [1e1, 1e2])
def test_lu_ir_bfloat16_factors_converge_for_kappa_below_256(kappa):
    res, m = _run(mixed.solve_ir_lu, kappa, "bfloat16")
    _assert_converged(res, m)
    assert res.extras["u_f"] == 2.0**-8


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
