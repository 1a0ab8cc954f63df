"""The dask executor: same cells and metrics as the serial one, lost workers,
timeouts, interrupt and resume, hosts, and the errors a user can make."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("distributed")

from factorbench.accuracy.metrics import METRIC_COLUMNS  # noqa: E402
from factorbench.cluster import DaskExecutor, _groups  # noqa: E402
from factorbench.spec import SpecError, SweepSpec  # noqa: E402
from factorbench.store import Store  # noqa: E402
from factorbench.sweep import Interrupted, expand, run_sweep  # noqa: E402
from tests.test_cli import _count  # noqa: E402
from tests.test_reliability import _marked_processes, _wait_gone  # noqa: E402

ACCURACY = ("status", "passed", "kappa_actual", *METRIC_COLUMNS)


def _builtin(ops):
    """The built-in impls of ``ops`` (not those a plugin loaded into this test process)."""
    from factorbench.impls import impls

    return [i.id for op in ops for i in impls(op) if i.func.__module__.startswith("factorbench.")]


def _spec(**kw):
    base = dict(ops=["lu", "qr", "cholesky"], impls=_builtin(["lu", "qr", "cholesky"]),
                sizes=[24, 40], kappas=[1e2, 1e10],
                dtypes=["float64", "float32"], threads=1, accuracy_only=True,
                params={"block": [8]}, timeout=60.0)
    base.update(kw)
    return SweepSpec(**base)


def _cells(store, run_id):
    df = store.cells([run_id])
    return {r.cell_key: r for r in df.itertuples()}


def _same(x, y):
    return x == y or (x != x and y != y)  # NaN == NaN here


def test_local_cluster_gives_the_serial_keys_and_bit_identical_metrics(tmp_path):
    with Store(tmp_path / "r.sqlite") as store:
        serial, _ = run_sweep(_spec(), store, progress=False)
        dask, counts = run_sweep(_spec(), store, executor="dask", jobs=2, progress=False)
        a, b = _cells(store, serial), _cells(store, dask)
        assert set(a) == set(b) and len(a) == len(expand(_spec()))
        for key, ra in a.items():
            rb = b[key]
            for col in ACCURACY:
                assert _same(getattr(ra, col), getattr(rb, col)), (ra.impl, col)
        # two workers share this host: their cells are marked concurrent
        ran = [r for r in b.values() if r.status in ("ok", "failed")]
        assert ran and all(r.concurrent for r in ran)
        assert all(r.threads == 1 for r in ran)  # --threads 1, set when the pools start
        assert all(r.first_call_s is not None and r.time_median_s is None for r in ran)
        machine = json.loads(store.run(dask)["machine_json"])
        (host, info), = machine["hosts"].items()
        assert host == ran[0].host and info["workers"] == 2 and info["blas_threads"] == 1
        assert "gemm_gflops" not in info  # accuracy-only: no ceiling measured
        assert store.run(dask)["status"] == "complete"


def test_lost_worker_crashes_its_cell_and_the_sweep_goes_on(tmp_path, faulty_plugin):
    spec = _spec(ops=["lu"], impls=["lu/segfault", "lu/lapack", "lu/abort", "lu/gepp"],
                 sizes=[16], kappas=[10.0], dtypes=["float64"], plugins=[faulty_plugin],
                 kinds=["randsvd"],
                 params={})
    with Store(tmp_path / "k.sqlite") as store:
        run_id, counts = run_sweep(spec, store, executor="dask", jobs=2, progress=False)
        by = {r.impl: r for r in _cells(store, run_id).values()}
        assert by["lu/segfault"].status == "crashed"
        assert by["lu/abort"].status == "crashed"
        assert "lost mid-cell" in by["lu/segfault"].message
        assert by["lu/lapack"].status == "ok" and by["lu/gepp"].status == "ok"
        assert counts == {"crashed": 2, "ok": 2}
        assert store.run(run_id)["status"] == "complete"


def test_timeout_restarts_the_worker_and_the_next_cell_runs(tmp_path, faulty_plugin):
    spec = _spec(ops=["lu"], impls=["lu/hang", "lu/lapack"], sizes=[16], kappas=[10.0],
                 dtypes=["float64"], plugins=[faulty_plugin], params={}, timeout=3.0)
    with Store(tmp_path / "t.sqlite") as store:
        t0 = time.monotonic()
        run_id, counts = run_sweep(spec, store, executor="dask", jobs=1, progress=False)
        assert time.monotonic() - t0 < 60
        by = {r.impl: r for r in _cells(store, run_id).values()}
        assert by["lu/hang"].status == "timeout" and "timeout of 3 s" in by["lu/hang"].message
        assert by["lu/lapack"].status == "ok"


def test_interrupt_keeps_finished_cells_and_resume_fills_only_the_rest(tmp_path, monkeypatch):
    spec = _spec()
    total = len(expand(spec))
    with Store(tmp_path / "i.sqlite") as store:
        write = store.write_cell
        seen = []

        def interrupting(run_id, rec):
            if len(seen) == 25:
                raise KeyboardInterrupt
            seen.append(rec["cell_key"])
            write(run_id, rec)

        monkeypatch.setattr(store, "write_cell", interrupting)
        with pytest.raises(Interrupted) as exc:
            run_sweep(spec, store, executor="dask", jobs=2, progress=False)
        monkeypatch.setattr(store, "write_cell", write)
        run_id = exc.value.run_id
        assert store.run(run_id)["status"] == "interrupted"
        assert store.done_keys(run_id) == set(seen)
        _, counts = run_sweep(None, store, executor="dask", jobs=2, resume=run_id,
                              progress=False)
        assert sum(counts.values()) == total - 25
        assert len(store.cells([run_id])) == total
        assert store.done_keys(run_id) == {c["key"] for c in expand(spec)}


def test_existing_scheduler_by_address(tmp_path):
    import distributed

    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                  dashboard_address=None) as cluster:
        db = tmp_path / "s.sqlite"
        out = subprocess.run(
            [sys.executable, "-m", "factorbench", "run", "--ops", "lu", "--impls", "lu/lapack",
             "--sizes", "32", "--kappas", "1e2", "--dtypes", "float64", "--kinds", "randsvd",
             "--executor", "dask",
             "--scheduler", cluster.scheduler_address, "--min-time", "0.01",
             "--db", str(db), "--no-progress"],
            capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    with Store(db, readonly=True) as store:
        run = store.run()
        hosts = json.loads(run["machine_json"])["hosts"]
        (info,) = hosts.values()
        # no --threads: the worker's share of its host's cores, not Dask's 1
        assert info["blas_threads"] == max(1, info["cores"])
        assert set(info["gemm_gflops"]) == {"float64"}
        (cell,) = store.cells([run["run_id"]]).itertuples()
        assert cell.status == "ok" and cell.threads == info["blas_threads"]
        assert cell.time_median_s > 0 and not cell.concurrent
        assert cell.peak_fraction == pytest.approx(
            cell.gflops / info["gemm_gflops"]["float64"])


@pytest.mark.parametrize("args, message", [
    (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler needs --executor dask"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:1", "--jobs", "2"], "--jobs"),
    (["--executor", "dask", "--max-memory", "2G"], "--max-memory"),
    (["--executor", "cluster"], "unknown executor"),
])
def test_cli_refuses_bad_executor_options(tmp_path, args, message):
    db = tmp_path / "x.sqlite"
    out = subprocess.run([sys.executable, "-m", "factorbench", "run", "--ops", "lu",
                          "--sizes", "16", "--db", str(db), *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_unreachable_scheduler_is_one_line_and_writes_nothing(tmp_path):
    db = tmp_path / "u.sqlite"
    with Store(db) as store:  # a run already there must survive
        first, _ = run_sweep(_spec(ops=["lu"], impls=["lu/lapack"], sizes=[16]), store,
                             progress=False)
    out = subprocess.run([sys.executable, "-m", "factorbench", "run", "--ops", "lu",
                          "--sizes", "16", "--executor", "dask", "--scheduler",
                          "tcp://127.0.0.1:9", "--db", str(db)],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s"))
    assert out.returncode == 2, out.stderr
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    with Store(db, readonly=True) as store:
        assert list(store.runs()["run_id"]) == [first]


def test_killed_client_leaves_no_local_worker(tmp_path, faulty_plugin):
    """SIGKILL of the run itself: the LocalCluster's workers do not outlive it."""
    marker = f"FB_CLUSTER_{os.getpid()}_{time.monotonic_ns()}"
    db = tmp_path / "c.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "factorbench", "run", "--ops", "lu", "--impls", "lu/hang",
         "--sizes", "16", "--kappas", "10", "--dtypes", "float64", "--plugin", faulty_plugin,
         "--executor", "dask", "--jobs", "2", "--accuracy-only", "--db", str(db),
         "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, FB_MARK=marker))
    t0 = time.monotonic()
    while len(_marked_processes(marker)) < 3 and time.monotonic() - t0 < 60:
        time.sleep(0.2)
    assert len(_marked_processes(marker)) >= 3  # the run and its workers
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not _wait_gone(marker, limit=30), "a Dask worker outlived its killed run"


def test_groups_keep_a_matrix_on_one_worker_and_idle_workers_steal_half():
    cells = [{"key": str(i), "matrix_seed": i // 4, "dtype": "float64"} for i in range(8)]
    queue = _groups(cells)
    assert [len(g) for g in queue] == [4, 4]
    mine: dict = {}
    take = DaskExecutor._next
    assert take("a", mine, queue)["key"] == "0"
    assert take("b", mine, queue)["key"] == "4"
    assert take("a", mine, queue)["key"] == "1"
    assert not queue
    # c is idle with nothing queued: it takes the later half of the longest group
    assert take("c", mine, queue)["key"] == "7"
    assert [c["key"] for c in mine["b"]] == ["5", "6"] and not mine["c"]
    assert take("d", mine, queue)["key"] == "3"  # a: [2, 3] -> its later half
    assert take("e", mine, queue)["key"] == "6"
    # every group is down to the one cell its worker takes next: nothing to steal
    assert take("f", mine, queue) is None


def test_dask_executor_refuses_a_memory_cap(tmp_path):
    with pytest.raises(Exception, match="--max-memory"):
        DaskExecutor(init={"max_memory": 2**30}, timeout=10)
    with pytest.raises(SpecError, match="max-memory"):
        run_sweep(_spec(max_memory=2**30), Store(tmp_path / "m.sqlite"), executor="dask")


def test_sigkill_of_a_dask_run_then_resume_fills_only_the_missing_cells(tmp_path, faulty_plugin):
    import sqlite3

    db = tmp_path / "r.sqlite"
    sweep = ["run", "--ops", "lu", "--impls", "lu/slow", "--sizes", "8:80:+8", "--kappas",
             "1e1:1e9:x100", "--dtypes", "float64,float32", "--kinds", "randsvd",
             "--accuracy-only", "--no-progress", "--executor", "dask", "--jobs", "2",
             "--db", str(db)]
    env = dict(os.environ, FACTORBENCH_TEST_SLEEP="0.05")

    proc = subprocess.Popen([sys.executable, "-m", "factorbench", *sweep, "--plugin",
                             faulty_plugin], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    t0 = time.monotonic()
    while _count(db) < 20 and proc.poll() is None:
        assert time.monotonic() - t0 < 120
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done = _count(db)
    assert 20 <= done < 100
    out = subprocess.run([sys.executable, "-m", "factorbench", "run", "--resume", "--executor",
                          "dask", "--jobs", "2", "--no-progress", "--db", str(db)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"complete: {100 - done} cells" in out.stdout
    with sqlite3.connect(db) as con:
        keys = [k for (k,) in con.execute("SELECT cell_key FROM cells")]
        status = con.execute("SELECT status FROM runs").fetchone()[0]
    assert len(keys) == len(set(keys)) == 100 and status == "complete"


class _StubClient:
    """What _refresh asks of a client: the running workers and a probe of the new ones."""

    def __init__(self):
        self.workers, self.probes = {}, {}

    def run(self, func, workers, on_error):
        return {w: self.probes[w] for w in workers}


def _stub_executor(threads=None):
    ex = DaskExecutor.__new__(DaskExecutor)
    ex.init, ex.client = {"threads": threads}, _StubClient()
    ex._info, ex._missing, ex._excluded = {}, {}, {}
    ex._host_threads, ex._host_workers, ex._warned, ex._tries = {}, {}, set(), {}
    ex._log_levels = {}
    ex._running_workers = lambda: {w: {"nanny": "n"} for w in ex.client.workers}
    return ex


def _probe_of(host, cores=4):
    import factorbench

    return {"host": host, "cores": cores, "version": factorbench.__version__}


def test_a_worker_missing_from_one_look_is_not_lost_and_threads_stay_fixed(capsys):
    ex = _stub_executor()
    ex.client.workers = {"a": 1, "b": 1}
    ex.client.probes = {"a": _probe_of("h1"), "b": _probe_of("h1")}
    assert ex._refresh(first=True) == ["a", "b"]
    assert ex._threads("a") == ex._threads("b") == 2  # 4 cores, 2 workers
    del ex.client.workers["b"]
    assert ex._refresh() == ["a"] and "b" in ex._info  # one look: not yet lost
    ex.client.workers["b"] = 1
    ex._refresh()
    del ex.client.workers["b"]
    ex._refresh()
    ex._refresh()
    assert "b" not in ex._info  # gone two looks running: lost
    assert ex._threads("a") == 2  # the survivor's pool is not regrown mid-run


def test_workers_that_cannot_run_factorbench_are_refused_at_start_and_excluded_later(capsys):
    ex = _stub_executor()
    ex.client.workers = {"a": 1}
    ex.client.probes = {"a": ModuleNotFoundError("No module named 'factorbench'")}
    with pytest.raises(Exception, match="cannot run factorbench"):
        ex._refresh(first=True)
    ex = _stub_executor()
    ex.client.workers = {"a": 1}
    ex.client.probes = {"a": _probe_of("h1")}
    ex._refresh(first=True)
    # mid-run: a stale install joins, an unreachable one is probed again later
    ex.client.workers.update(b=1, c=1)
    ex.client.probes.update(b=dict(_probe_of("h2"), version="0.0.1"), c=OSError("refused"))
    assert ex._refresh() == ["a"]
    assert "b" in ex._excluded and "c" not in ex._excluded
    assert "has factorbench 0.0.1" in capsys.readouterr().err
    ex.client.probes["c"] = _probe_of("h3")
    assert ex._refresh() == ["a", "c"]


def test_losing_the_scheduler_mid_run_is_one_line_and_resumable(tmp_path, faulty_plugin):

    import distributed

    db = tmp_path / "l.sqlite"
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    env = dict(os.environ, FACTORBENCH_TEST_SLEEP="0.05",
               DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="3s")
    proc = subprocess.Popen(
        [sys.executable, "-m", "factorbench", "run", "--ops", "lu", "--impls", "lu/slow",
         "--sizes", "8:80:+8", "--kappas", "1e1:1e9:x100", "--dtypes", "float64,float32",
         "--kinds", "randsvd", "--accuracy-only", "--no-progress", "--executor", "dask",
         "--scheduler", cluster.scheduler_address, "--plugin", faulty_plugin, "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    t0 = time.monotonic()
    while _count(db) < 10 and proc.poll() is None:
        assert time.monotonic() - t0 < 120
        time.sleep(0.05)
    cluster.close()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 2, err
    lines = [t for t in err.strip().splitlines() if t.startswith("factorbench: error")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "distributed.client" not in err  # Dask's own log lines stay off the terminal
    assert "interrupted" in lines[0] and "--resume 1" in lines[0]
    with Store(db, readonly=True) as store:
        assert store.run(1)["status"] == "interrupted"
        kept = len(store.cells([1]))
    assert 10 <= kept < 100
    # the cells not run are not recorded as crashed: --resume runs them
    with Store(db, readonly=True) as store:
        assert "crashed" not in set(store.cells([1])["status"])
