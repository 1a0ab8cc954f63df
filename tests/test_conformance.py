"""Conformance: every registered impl x every dtype it claims, through the harness.

Each impl runs on a matrix of its op's structure at a moderate condition number
kappa = u^(-1/4) of the working precision (about 1e4 in float64, 64 in float32),
where every backward-stable method must meet the LAPACK-style pass rule (every
ratio finite and < 30).  Deliberately unstable impls (stable=False) are run
too; they must produce a record, and the cells below show them failing where
theory says they do.
"""

import numpy as np
import pytest

from factorbench.accuracy.precision import precision
from factorbench.impls import impls
from factorbench.spec import SweepSpec
from factorbench.sweep import expand
from factorbench.worker import run_cell

OPTIONS = {"min_time": 0.0, "max_repeats": 1, "max_time": 5.0, "threshold": 30.0, "gemm": {}}
N = 32


def _kind(impl):
    if impl.op == "lowrank":
        return "spd" if impl.structure == "spd" else "lowrank"
    return "spd" if impl.structure in ("spd", "symmetric") else "randsvd"


def _params(impl_id):
    """One setting per swept parameter: its first declared value, except that a
    block size (``block``) or a dask chunk size (``chunk``) is 8, so that at
    n = 32 the blocked code paths (several panels, a trailing update; several
    chunks) run instead of one panel or chunk covering the whole matrix."""
    from factorbench.impls import get

    return {k: [8 if k in ("block", "chunk") else v[0]]
            for k, v in get(impl_id).parameters.items()}


def _cell(impl_id, dtype, kind, n=N, kappa=None, rank=None):
    kappa = kappa if kappa is not None else float(f"{precision(dtype).u ** -0.25:.2g}")
    spec = SweepSpec(ops=[impl_id.split("/")[0]], impls=[impl_id], kinds=[kind], sizes=[n],
                     kappas=[kappa], dtypes=[dtype], rank=rank, params=_params(impl_id))
    cells = expand(spec)
    assert len(cells) == 1 and cells[0]["resolved"] is None, cells
    return cells[0]


CASES = [pytest.param(i.id, d, id=f"{i.id}-{d}") for i in impls() for d in i.dtypes]


@pytest.mark.parametrize("impl_id, dtype", CASES)
def test_conformance(impl_id, dtype):
    from factorbench.impls import get

    impl = get(impl_id)
    ok, why = impl.availability()
    if not ok:  # a missing optional package or device (CuPy, a GPU): nothing to run
        pytest.skip(why)
    rec = run_cell(_cell(impl_id, dtype, _kind(impl), rank=4 if impl.op == "lowrank" else None),
                   OPTIONS)
    if impl.stable:
        assert rec["status"] == "ok", rec["message"]
        assert rec["passed"]
    else:
        assert rec["status"] in ("ok", "failed", "error"), rec["message"]
        assert "wrong precision" not in (rec["message"] or "")
        assert "bad result" not in (rec["message"] or "")


def test_cgs_fails_on_orthogonality_where_householder_passes():
    u = precision("float64").u
    cgs = run_cell(_cell("qr/cgs", "float64", "randsvd", kappa=1e8), OPTIONS)
    hh = run_cell(_cell("qr/householder", "float64", "randsvd", kappa=1e8), OPTIONS)
    assert cgs["status"] == "failed" and "orthogonality_ratio" in cgs["message"]
    # loss ~ kappa^2 u saturates at O(1) once kappa^2 u > 1
    assert cgs["orthogonality_loss"] > min(1.0, 1e-3 * 1e16 * u)
    assert hh["status"] == "ok" and hh["orthogonality_ratio"] < 30


def test_normal_equations_fail_on_forward_error_where_qr_passes():
    kappa = 1e6
    ne = run_cell(_cell("lstsq/normal", "float64", "randsvd", kappa=kappa), OPTIONS)
    qr = run_cell(_cell("lstsq/householder", "float64", "randsvd", kappa=kappa), OPTIONS)
    assert ne["status"] == "failed" and "kappa_scaled_error" in ne["message"]
    assert 1e-3 < ne["kappa2_scaled_error"] < 1e3  # forward error ~ kappa^2 u
    assert qr["status"] == "ok" and qr["kappa_scaled_error"] < 30


def test_wilkinson_growth_through_the_harness():
    for impl_id in ("lu/gepp", "lu/lapack"):
        rec = run_cell(_cell(impl_id, "float64", "wilkinson", n=24), OPTIONS)
        assert rec["growth_factor"] == 2.0**23
        if impl_id == "lu/gepp":
            assert rec["growth_factor_exact"] == 2.0**23


def test_forward_error_rule_passes_gesv_and_fails_the_normal_equations():
    """The sqrt(max(m, n)) dimension factor of the forward-error limit: LAPACK
    gesv on a perfectly conditioned 256 x 256 matrix passes (its error is tens
    of u), while the normal equations at kappa = 1e4 and m = 1024 still fail
    (error ~ kappa^2 u, a ratio ~ kappa)."""
    gesv = run_cell(_cell("solve/gesv", "float64", "randsvd", n=256, kappa=1.0), OPTIONS)
    assert gesv["status"] == "ok", gesv["message"]
    assert gesv["kappa_scaled_error"] > 1.0  # a real dimension factor, not a zero
    normal = run_cell(_cell("lstsq/normal", "float64", "randsvd", n=512, kappa=1e4), OPTIONS)
    assert normal["status"] == "failed" and "kappa_scaled_error" in normal["message"]
    assert normal["kappa_scaled_error"] > 30 * (2 * 512) ** 0.5


def test_least_squares_residual_through_the_harness():
    """With r orthogonal to range(A), ||r|| = 1e-3 ||Ax||, kappa = 1e7, the forward
    error is held to the least-squares condition number u (kappa + kappa^2 eta)
    (Wedin; Higham 2002 Thm 20.1): Householder QR passes, the normal equations
    (error ~ kappa^2 u whatever the residual) still fail."""

    def cell(impl_id, residual):
        spec = SweepSpec(ops=["lstsq"], impls=[impl_id], kinds=["randsvd"], sizes=[64],
                         kappas=[1e7], dtypes=["float64"], residual=residual)
        (c,) = expand(spec)
        return c

    u = precision("float64").u
    res = run_cell(cell("lstsq/gels", 1e-3), OPTIONS)
    assert res["status"] == "ok", res["message"]
    # the stored eta is ||r|| / (||A||_2 ||x||) of the posed problem, and the
    # forward error was divided by (kappa + kappa^2 eta) u
    from factorbench import worker

    c = cell("lstsq/gels", 1e-3)
    _, A, b, x, _ = worker._matrix(c)
    eta = np.linalg.norm(b - A @ x) / (np.linalg.svd(A, compute_uv=False)[0] * np.linalg.norm(x))
    assert res["residual"] == 1e-3
    assert res["eta"] == pytest.approx(eta, rel=1e-9)
    kappa = res["kappa_actual"]
    assert res["kappa_scaled_error"] == pytest.approx(
        res["forward_error"] / ((kappa + kappa**2 * eta) * u), rel=1e-9)
    normal = run_cell(cell("lstsq/normal", 1e-3), OPTIONS)
    assert normal["status"] == "failed" and "kappa_scaled_error" in normal["message"]
