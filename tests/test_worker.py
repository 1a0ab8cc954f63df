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


@pytest.mark.parametrize("name, dtype, got", [
    ("lu/upcast", "float32", "float64"),             # wider than the working precision
    ("lu/downcast", "float64", "float32"),           # narrower
    ("lu/emulation-skipped", "bfloat16", "float32"),  # NumPy's silent upcast of ml_dtypes
    ("lu/emulation-skipped", "float16", "float32"),
])
def test_precision_guard_never_records_a_pass(faulty_plugin, name, dtype, got):
    """An impl whose factors come back in another precision than the cell's is an
    error naming both precisions, with no metric recorded, never a pass."""
    from factorbench.accuracy.metrics import METRIC_COLUMNS

    rec = run_cell(_cell(name, faulty_plugin, dtype=dtype), FAST)
    assert rec["status"] == "error" and not rec.get("passed")
    assert rec["message"].startswith("wrong precision:")
    assert got in rec["message"] and dtype in rec["message"]
    assert all(rec.get(k) is None for k in METRIC_COLUMNS)


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


RANDOMIZED = ["lowrank/rsvd", "lowrank/block-krylov", "lowrank/adaptive", "lowrank/sklearn-rsvd",
              "lowrank/svds-arpack", "lstsq/sketch-solve", "lstsq/sketch-precondition",
              "qrcp/randomized", "qr/rand-cholqr"]


def _randomized_cells(impl_id, seeds=1, base_seed=0):
    op = impl_id.split("/")[0]
    spec = SweepSpec(ops=[op], impls=[impl_id], sizes=[40], kappas=[1e4],
                     kinds=["lowrank" if op == "lowrank" else "randsvd"], dtypes=["float64"],
                     rank=5 if op == "lowrank" else None, seeds=seeds, base_seed=base_seed)
    from factorbench.impls import get

    spec.params = {k: [v[0]] for k, v in get(impl_id).parameters.items()}
    return expand(spec)


@pytest.mark.parametrize("impl_id", RANDOMIZED)
def test_randomized_cells_are_reproducible(impl_id):
    """Every impl that draws gets a Generator seeded from the cell: the same cell
    gives bit-identical factors on every call and identical metrics from a cold
    cache (test_sketch_depends_on_the_cell_seed_only: the seed does reach it)."""
    from factorbench import worker
    from factorbench.accuracy.metrics import METRIC_COLUMNS
    from factorbench.impls import get

    impl = get(impl_id)
    (cell,) = _randomized_cells(impl_id)
    worker._CACHE.clear()
    _, A_w, b, _, _ = worker._matrix(cell)
    make = worker._args_maker(impl, cell, A_w, b)
    first, second = (impl.func(*a, **kw) for a, kw in (make(), make()))
    for f in first.__dataclass_fields__:
        if f != "extras":
            assert np.array_equal(np.asarray(getattr(first, f)),
                                  np.asarray(getattr(second, f))), f
    worker._CACHE.clear()
    r1 = run_cell(cell, FAST)
    worker._CACHE.clear()
    r2 = run_cell(cell, FAST)
    assert r1["status"] == "ok", r1["message"]
    assert {k: r1[k] for k in METRIC_COLUMNS} == {k: r2[k] for k in METRIC_COLUMNS}


def test_sketch_depends_on_the_cell_seed_only():
    """The impl draws from the generator it is given, and from nothing else: the
    same seed gives the same sketch, another seed another."""
    from factorbench.impls import get

    rsvd = get("lowrank/rsvd").func
    A = np.random.default_rng(0).standard_normal((60, 40))
    a = rsvd(A, 5, np.random.default_rng(1), q=0)
    b = rsvd(A, 5, np.random.default_rng(1), q=0)
    c = rsvd(A, 5, np.random.default_rng(2), q=0)
    assert np.array_equal(a.U, b.U) and not np.array_equal(a.U, c.U)


def test_iterative_methods_record_iterations_and_convergence():
    """An impl's extras["iterations"]/["converged"] become the cell's columns
    (here LSQR inside sketch-and-precondition); a direct method leaves them empty."""
    (cell,) = _randomized_cells("lstsq/sketch-precondition")
    rec = run_cell(cell, FAST)
    assert rec["status"] == "ok", rec["message"]
    assert isinstance(rec["iterations"], int) and 0 <= rec["iterations"] <= 100
    assert rec["converged"] is True
    direct = run_cell(_cell("lu/lapack"), FAST)
    assert direct.get("iterations") is None and direct.get("converged") is None
