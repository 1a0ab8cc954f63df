import os
import resource
import time

import pytest

from factorbench.executors import make_executor
from factorbench.spec import SweepSpec
from factorbench.sweep import expand

OPTIONS = {"min_time": 0.0, "max_repeats": 1, "max_time": 1.0, "threshold": 30.0, "gemm": {}}


def _cells(plugin, names, n=16):
    spec = SweepSpec(ops=["lu"], impls=names, sizes=[n], kappas=[10.0], kinds=["randsvd"],
                     dtypes=["float64"], plugins=[plugin])
    cells = expand(spec)
    order = {name: i for i, name in enumerate(names)}
    return sorted(cells, key=lambda c: order[c["impl"]])


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True


def test_serial_crash_abort_hang_then_next_cell_runs(faulty_plugin):
    names = ["lu/segfault", "lu/lapack", "lu/abort", "lu/raises", "lu/hang"]
    cells = _cells(faulty_plugin, names)
    cells.append(dict(cells[1], key="again"))
    init = {"plugins": [faulty_plugin], "threads": 1}
    timeout = 3.0
    with make_executor("serial", init=init, timeout=timeout) as ex:
        t0 = time.monotonic()
        recs, stamps, pids = [], [], []
        for rec in ex.run(cells, OPTIONS):
            recs.append(rec)
            stamps.append(time.monotonic() - t0)
            w = ex._workers[0]
            if w is not None:
                pids.append(w.proc.pid)
    by = [r["status"] for r in recs]
    assert by == ["crashed", "ok", "crashed", "error", "timeout", "ok"]
    assert "SIGSEGV" in recs[0]["message"]
    assert "SIGABRT" in recs[2]["message"]
    assert "timeout of 3 s" in recs[4]["message"]
    # the hanging cell was stopped within timeout + a few seconds
    assert stamps[4] - stamps[3] < timeout + 5
    for pid in set(pids):
        assert not _alive(pid)


def test_process_executor_marks_concurrent(faulty_plugin):
    cells = _cells(faulty_plugin, ["lu/lapack", "lu/segfault", "lu/raises"])
    init = {"plugins": [faulty_plugin], "threads": 1}
    with make_executor("process", init=init, timeout=30, jobs=2) as ex:
        recs = list(ex.run(cells, dict(OPTIONS, concurrent=True)))
    status = {r["impl"]: r["status"] for r in recs}
    assert status == {"lu/lapack": "ok", "lu/segfault": "crashed", "lu/raises": "error"}
    assert [r["concurrent"] for r in recs if r["impl"] == "lu/lapack"] == [True]


def test_unknown_executor():
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("nope", init={}, timeout=1)


def test_worker_that_cannot_start_gives_crashed_cells_not_a_traceback(faulty_plugin):
    cells = _cells(faulty_plugin, ["lu/lapack", "lu/raises"])
    init = {"plugins": ["/no/such/plugin.py"], "threads": 1}
    with make_executor("serial", init=init, timeout=30) as ex:
        recs = list(ex.run(cells, OPTIONS))
    assert [r["status"] for r in recs] == ["crashed", "crashed"]
    assert "worker failed to start" in recs[0]["message"]
    assert "plugin file not found" in recs[0]["message"]


GIB = 2**30


@pytest.fixture
def one_blas_thread(monkeypatch):
    """Keep a worker's idle address space small on machines with many cores."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")


def test_memory_cap_hog_crashes_and_worker_is_replaced(faulty_plugin, one_blas_thread):
    cells = _cells(faulty_plugin, ["lu/hog", "lu/lapack", "lu/abort"])
    cells.append(dict(cells[1], key="again"))
    init = {"plugins": [faulty_plugin], "threads": 1, "max_memory": GIB}
    parent_limit = resource.getrlimit(resource.RLIMIT_AS)
    with make_executor("serial", init=init, timeout=60) as ex:
        recs, pids, started = [], set(), []
        for rec in ex.run(cells, OPTIONS):
            recs.append(rec)
            started.append(ex._count)
            if ex._workers[0] is not None:
                pids.add(ex._workers[0].proc.pid)
    assert [r["status"] for r in recs] == ["crashed", "ok", "crashed", "ok"]
    hog, abort = recs[0]["message"], recs[2]["message"]
    assert hog.startswith("out of memory: MemoryError under --max-memory 1 GiB")
    assert "SIGABRT (likely out of memory under --max-memory 1 GiB)" in abort
    # a fresh worker after each crash: the hog's worker is never reused
    assert started == [1, 2, 2, 3]
    for pid in pids:
        assert not _alive(pid)
    # the cap is set inside the workers only
    assert resource.getrlimit(resource.RLIMIT_AS) == parent_limit


def test_memory_cap_in_process_workers(faulty_plugin, one_blas_thread):
    cells = _cells(faulty_plugin, ["lu/hog", "lu/lapack", "lu/raises"])
    init = {"plugins": [faulty_plugin], "threads": 1, "max_memory": GIB}
    with make_executor("process", init=init, timeout=60, jobs=2) as ex:
        recs = list(ex.run(cells, dict(OPTIONS, concurrent=True)))
    status = {r["impl"]: r["status"] for r in recs}
    assert status == {"lu/hog": "crashed", "lu/lapack": "ok", "lu/raises": "error"}


def test_memory_cap_below_idle_footprint_is_refused(faulty_plugin):
    from factorbench.executors import check_memory_cap
    from factorbench.spec import MIN_MAX_MEMORY, SpecError

    init = {"plugins": [faulty_plugin], "threads": 1, "max_memory": MIN_MAX_MEMORY}
    with pytest.raises(SpecError, match=r"--max-memory 256 MiB is too small: a worker holds .* "
                                        r"at idle .*give at least"):
        check_memory_cap(init)
    # the executor, asked anyway, records crashed cells with the reason
    cells = _cells(faulty_plugin, ["lu/lapack"])
    with make_executor("serial", init=init, timeout=30) as ex:
        (rec,) = ex.run(cells, OPTIONS)
    assert rec["status"] == "crashed" and "is too small" in rec["message"]


def test_hog_refuses_to_run_without_a_cap(faulty_plugin):
    from factorbench.worker import run_cell

    (cell,) = _cells(faulty_plugin, ["lu/hog"])
    rec = run_cell(cell, OPTIONS)
    assert rec["status"] == "error" and "only under a --max-memory" in rec["message"]


def test_threads_size_the_worker_pools_from_start(monkeypatch):
    from factorbench.executors import _worker_env

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "7")
    env = _worker_env({"threads": 1})
    assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert env["PYTHONFAULTHANDLER"] == "1"
    # without --threads the library default (and the user's environment) stands
    assert _worker_env({})["OPENBLAS_NUM_THREADS"] == "7"


def test_worker_started_with_one_thread_reports_one(faulty_plugin):
    cells = _cells(faulty_plugin, ["lu/lapack"])
    with make_executor("serial", init={"plugins": [faulty_plugin], "threads": 1},
                       timeout=60) as ex:
        (rec,) = list(ex.run(cells, OPTIONS))
    assert rec["status"] == "ok" and rec["threads"] == 1
