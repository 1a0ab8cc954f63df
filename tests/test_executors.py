import os
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
