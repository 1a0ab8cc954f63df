import numpy as np
import pytest

from factorbench.accuracy import matrices
from factorbench.spec import SweepSpec
from factorbench.sweep import expand
from factorbench.worker import run_cell

FAST = {"min_time": 0.0, "max_repeats": 2, "max_time": 1.0, "threshold": 30.0,
        "gemm": {"float64": 10.0, "float32": 20.0}}


def _cell(impl, plugin=None, **kw):
    spec = SweepSpec(ops=["lu"], impls=[impl], sizes=[kw.pop("n", 24)], kappas=[1e3],
                     kinds=["randsvd"], dtypes=[kw.pop("dtype", "float64")],
                     plugins=[plugin] if plugin else [])
    for k, v in kw.items():
        setattr(spec, k, v)
    (cell,) = expand(spec)
    return cell


def test_ok_cell_has_everything():
    rec = run_cell(_cell("lu/lapack"), FAST)
    assert rec["status"] == "ok" and rec["passed"]
    assert rec["backward_ratio"] < 30 and rec["growth_factor"] >= 1
    assert rec["kappa_actual"] == pytest.approx(1e3, rel=1e-6)
    assert rec["repeats"] >= 1 and rec["time_median_s"] > 0 and rec["first_call_s"] > 0
    assert rec["gflops"] > 0 and rec["peak_fraction"] == pytest.approx(rec["gflops"] / 10.0)
    assert rec["unit_roundoff"] == 2.0**-53 and rec["host"]


@pytest.mark.parametrize(
    "name, status, text",
    [
        ("lu/raises", "error", "RuntimeError: deliberate failure"),
        ("lu/wrongshape", "error", "L has shape"),
        ("lu/upcast", "error", "float64, working precision is float32"),
        ("lu/nan", "failed", "not finite"),
        ("lu/wrongfactors", "failed", "backward_ratio"),
    ],
)
def test_faults_are_never_ok(faulty_plugin, name, status, text):
    rec = run_cell(_cell(name, faulty_plugin, dtype="float32"), FAST)
    assert rec["status"] == status
    assert text in rec["message"]
    assert not rec.get("passed")


def test_nonfinite_input_refused_before_timing(monkeypatch, faulty_plugin):
    real = matrices.generate

    def poisoned(*a, **kw):
        tm = real(*a, **kw)
        tm.A[3, 4] = np.inf
        return tm

    monkeypatch.setattr(matrices, "generate", poisoned)
    from factorbench import worker

    worker._CACHE.clear()
    rec = run_cell(_cell("lu/raises", faulty_plugin, n=16), FAST)
    assert rec["status"] == "error" and "refused before timing" in rec["message"]
    assert rec.get("time_median_s") is None and rec.get("first_call_s") is None
    worker._CACHE.clear()


def test_overflow_in_working_precision_refused(monkeypatch):
    real = matrices.generate

    def huge(*a, **kw):
        tm = real(*a, **kw)
        tm.A[0, 0] = 1e300  # finite in float64, inf in float32
        return tm

    monkeypatch.setattr(matrices, "generate", huge)
    from factorbench import worker

    worker._CACHE.clear()
    rec = run_cell(_cell("lu/lapack", n=16, dtype="float32"), FAST)
    assert rec["status"] == "error" and "NaN/Inf after rounding to float32" in rec["message"]
    worker._CACHE.clear()


def test_same_matrix_for_every_impl_and_deterministic():
    from factorbench import worker

    a = _cell("lu/lapack")
    worker._CACHE.clear()
    tm1 = worker._matrix(a)[1].copy()
    worker._CACHE.clear()
    tm2 = worker._matrix(a)[1]
    assert np.array_equal(tm1, tm2)


@pytest.mark.parametrize("first, second", [("lu/lapack", "solve/gesv"),
                                           ("qr/lapack", "lstsq/gels")])
def test_cached_matrix_serves_ops_with_and_without_rhs(first, second):
    from factorbench import worker

    spec = SweepSpec(ops=[first.split("/")[0], second.split("/")[0]], impls=[first, second],
                     sizes=[24], kappas=[1e3], kinds=["randsvd"], dtypes=["float64"])
    cells = sorted(expand(spec), key=lambda c: c["impl"] != first)
    assert cells[0]["matrix_seed"] == cells[1]["matrix_seed"]
    worker._CACHE.clear()
    recs = [run_cell(c, FAST) for c in cells]
    assert [r["status"] for r in recs] == ["ok", "ok"], recs[1]["message"]
    worker._CACHE.clear()
    alone = run_cell(cells[1], FAST)  # the rhs does not depend on what ran before
    assert alone["forward_error"] == recs[1]["forward_error"]


def test_zero_matrix_factors_exactly_and_passes():
    spec = SweepSpec(ops=["qr", "lu"], impls=["qr/lapack", "lu/lapack"], sizes=[16],
                     kinds=["zero"], dtypes=["float64"])
    for cell in expand(spec):
        rec = run_cell(cell, FAST)
        assert rec["status"] == "ok", rec["message"]
        assert rec["backward_error"] == 0.0
