import contextlib
import csv
import io
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factorbench.cli import main
from factorbench.store import Store


def _default_sigint():
    # A shell without job control starts background jobs with SIGINT ignored,
    # and Python keeps an ignored SIGINT ignored: the run under test must get
    # the ordinary disposition whatever launched the test suite.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _fb(*args, env=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "factorbench", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})), preexec_fn=_default_sigint,
                            **kw)


def test_list_shows_every_impl(capsys):
    from factorbench.impls import impls

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for i in impls():
        assert i.id in out
    assert "backend" in out and "family" in out and "available" in out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["run", "--sizes", "0"], "size must be >= 1"),
        (["run", "--sizes", "-64"], "size must be >= 1"),
        (["run", "--sizes", "64:32:x2"], "STOP is smaller"),
        (["run", "--sizes", "abc"], "not a number"),
        (["run", "--kappas", "0.1"], "kappa must be >= 1"),
        (["run", "--ops", "lux"], "unknown op 'lux' (did you mean lu"),
        (["run", "--impls", "lapak"], "did you mean"),
        (["run", "--dtypes", "float63"], "did you mean float64"),
        (["run", "--kinds", "randsvdd"], "did you mean randsvd"),
        (["run", "--preset", "fast"], "unknown preset"),
        (["run", "--seeds", "x"], "invalid int value"),
        (["run", "--seeds", "0"], "--seeds must be >= 1"),
        (["run", "--executor", "gpu"], "unknown executor"),
        (["run", "--param", "blok=3"], "not a parameter"),
        (["run", "--param", "oops"], "expected NAME=V1,V2"),
        (["run", "--timeout", "-1"], "--timeout must be > 0"),
        (["run", "--plugin", "no_such_module_xyz"], "not found"),
        (["run", "--plugin", "/no/such/file.py"], "not found"),
        (["runs", "--db", "/no/such/dir/x.sqlite"], "no such database"),
        (["report", "--db", "/no/such/x.sqlite"], "no such database"),
        (["report", "abc"], "run id must be an integer"),
        (["export", "--format", "xls", "-o", "x"], "unknown export format"),
        (["frobnicate"], "invalid choice"),
        ([], "a command is required"),
        (["run", "--ops", ""], "empty op list"),
        (["run", "--sizes", ""], "empty size list"),
        (["run", "--kinds", ","], "empty --kinds list"),
        (["recommend", "--op", "lux", "--n", "64"], "unknown op 'lux'"),
        (["recommend", "--op", "lu"], "the following arguments are required: --n"),
        (["recommend", "--op", "lu", "--n", "-5"], "--n must be a positive size"),
        (["recommend", "--op", "lu", "--n", "nan"], "--n must be a positive size"),
        (["recommend", "--op", "lu", "--n", "64", "--kappa", "0.5"], "--kappa must be"),
        (["recommend", "--op", "lu", "--n", "64", "--dtype", "float63"], "did you mean float64"),
        (["recommend", "--op", "lu", "--n", "64", "--max-backward-ratio", "0"],
         "--max-backward-ratio must be positive"),
        (["recommend", "--op", "lu", "--n", "64", "--db", "/no/such/x.sqlite"],
         "no such database"),
        (["recommend", "--op", "lu,qr", "--n", "64"], "--op takes one operation"),
        (["recommend", "--op", "lu", "--n", "64", "--kind", "randsdv"],
         "unknown matrix kind 'randsdv' (did you mean randsvd"),
        (["compare", "1"], "the following arguments are required: HEAD"),
        (["compare", "a", "2"], "run id must be an integer"),
        (["compare", "1", "2", "--fail-slower", "-3"], "--fail-slower must be"),
        (["compare", "1", "2", "--fail-less-accurate", "0.5"], "--fail-less-accurate must be"),
        (["compare", "1", "2", "--alpha", "2"], "--alpha must lie in (0, 1)"),
        (["compare", "1", "2", "--db", "/no/such/x.sqlite"], "no such database"),
        (["run", "--max-memory", "-1"], "bad --max-memory '-1': expected a size"),
        (["run", "--max-memory", "0"], "bad --max-memory '0': must be a positive size"),
        (["run", "--max-memory", "abc"], "bad --max-memory 'abc': expected a size"),
        (["run", "--max-memory", "1X"], "bad --max-memory '1X': expected a size"),
        (["run", "--max-memory", "10K"], "--max-memory must be at least 256 MiB, got 10 KiB"),
        (["run", "--max-memory"], "expected one argument"),
        (["run", "--resume", "--max-memory", "1G"], "drop --max-memory"),
        (["run", "--resume", "--min-time", "0"], "drop --min-time"),
        (["run", "--residual", "-1"], "--residual must be a finite number >= 0"),
        (["run", "--residual", "nan"], "--residual must be a finite number >= 0"),
        (["run", "--resume", "--residual", "0.1"], "drop --residual"),
        (["run", "--ops", "lstsq", "--residual", "0.1", "--aspect", "1"],
         "--residual needs tall least-squares problems"),
        (["run", "--sizes", "64:65536:x2", "--kappas", "1e0:1e16:x10", "--seeds", "50"],
         "pass --yes to start it"),
    ],
)
def test_bad_input_one_line_exit_2(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert match in err


def test_bad_db_is_refused_untouched(tmp_path, capsys):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"garbage" * 1000)
    before = bad.read_bytes()
    for argv in (["runs", "--db", str(bad)], ["run", "--ops", "lu", "--impls", "lapack",
                                              "--sizes", "8", "--db", str(bad)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert str(bad) in err and err.count("\n") == 1
    assert bad.read_bytes() == before


def test_run_report_export(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "r.sqlite"
    argv = ["run", "--ops", "lu,qr", "--impls", "lapack,householder", "--sizes", "16,32",
            "--kappas", "1e2", "--dtypes", "float64", "--db", str(db), "--label", "mini",
            "--min-time", "0", "--report", str(tmp_path / "r.html")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "complete" in out
    html = (tmp_path / "r.html").read_text()
    assert "<svg" in html and "lu/lapack" in html and "mini" in html
    assert main(["runs", "--db", str(db)]) == 0
    assert "mini" in capsys.readouterr().out
    assert main(["export", "--db", str(db), "--format", "csv", "-o", str(tmp_path / "c.csv")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "c.csv")))
    assert len(rows) == len(Store(db, readonly=True).cells()) > 0
    assert main(["export", "1", "--db", str(db), "--format", "parquet",
                 "-o", str(tmp_path / "c.parquet")]) == 0
    import pandas as pd

    assert len(pd.read_parquet(tmp_path / "c.parquet")) == len(rows)
    assert main(["report", "1", "--db", str(db), "-o", str(tmp_path / "again.html"),
                 "--throughput"]) == 0
    out = capsys.readouterr().out
    # qr/householder (textbook) next to qr/lapack: a ratio per size, 1.00 for the library
    assert "run 1, qr, float64" in out and "x1.00" in out
    assert out.count("qr/householder") == 1


def _count(db):
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


SLOW_RUN = ["run", "--ops", "lu", "--impls", "lu/slow,lu/lapack", "--sizes", "8:48:+8",
            "--kappas", "1e1,1e3", "--dtypes", "float64,float32", "--min-time", "0",
            "--kinds", "randsvd", "--no-progress"]


def _start_slow(db, plugin, sleep=0.01):
    return _fb(*SLOW_RUN, "--plugin", plugin, "--db", str(db),
               env={"FACTORBENCH_TEST_SLEEP": str(sleep)})


def _wait_for(db, n, proc, limit=120):
    t0 = time.monotonic()
    while _count(db) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < limit
        time.sleep(0.02)


def test_sigkill_then_resume_every_cell_once(tmp_path, faulty_plugin):
    rnd = random.Random(7)
    db = tmp_path / "k.sqlite"
    total = None
    for attempt in range(3):
        proc = _start_slow(db, faulty_plugin) if attempt == 0 else _fb(
            "run", "--resume", "--db", str(db), "--no-progress")
        _wait_for(db, (attempt + 1) * rnd.randint(3, 8), proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    proc = _fb("run", "--resume", "--db", str(db), "--no-progress")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    con = sqlite3.connect(db)
    keys = [r[0] for r in con.execute("SELECT cell_key FROM cells")]
    status = con.execute("SELECT status FROM runs").fetchall()
    con.close()
    from factorbench.spec import SweepSpec
    from factorbench.sweep import expand

    run = Store(db, readonly=True).run(1)
    total = len(expand(SweepSpec.from_json(run["spec_json"])))
    assert len(keys) == len(set(keys)) == total == 6 * 2 * 2 * 2
    assert status == [("complete",)]


def test_sigint_marks_interrupted_and_keeps_cells(tmp_path, faulty_plugin):
    db = tmp_path / "i.sqlite"
    # Slow enough (24 cells of >= 4 calls of 50 ms) that the signal lands
    # mid-run even when the machine is loaded and the polling lags.
    proc = _start_slow(db, faulty_plugin, sleep=0.05)
    _wait_for(db, 4, proc)
    assert _count(db) < 40, "the run nearly finished before the signal: no test"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    kept = _count(db)
    assert kept >= 4
    with Store(db, readonly=True) as s:
        assert s.run(1)["status"] == "interrupted"
    proc = _fb("run", "--resume", "1", "--db", str(db), "--no-progress")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    with Store(db, readonly=True) as s:
        assert s.run(1)["status"] == "complete"
        cells = s.cells([1])
    assert cells["cell_key"].is_unique and len(cells) == 6 * 2 * 2 * 2


def test_resume_rejects_selectors(capsys, tmp_path):
    assert main(["run", "--resume", "--sizes", "8", "--db", str(tmp_path / "x.sqlite")]) == 2
    assert "--resume continues the stored sweep" in capsys.readouterr().err


def _sweep(db, sleep, label, plugin):
    proc = _fb(*SLOW_RUN[:4], "lu/slow", "--sizes", "16,24", "--kappas", "1e2",
               "--dtypes", "float64", "--kinds", "randsvd", "--min-time", "0.06",
               "--no-progress", "--plugin", plugin, "--db", str(db), "--label", label,
               env={"FACTORBENCH_TEST_SLEEP": str(sleep)})
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err


def test_compare_flags_a_slower_impl_and_gates(tmp_path, faulty_plugin, capsys):
    db = tmp_path / "c.sqlite"
    _sweep(db, 0.005, "base", faulty_plugin)
    _sweep(db, 0.010, "head", faulty_plugin)
    out_html = tmp_path / "cmp.html"
    assert main(["compare", "1", "2", "--db", str(db), "-o", str(out_html)]) == 0
    out = capsys.readouterr().out
    assert "slower" in out and "lu/slow" in out
    assert main(["compare", "1", "2", "--db", str(db), "-o", str(out_html),
                 "--fail-slower", "10"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("FAIL:") and "lu/slow" in err
    # a bound above the measured slowdown (about 2x) does not fail
    assert main(["compare", "1", "2", "--db", str(db), "-o", str(out_html),
                 "--fail-slower", "300"]) == 0
    assert out_html.read_text().startswith("<!DOCTYPE html>")


def test_recommend_answers_from_a_run(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    assert main(["run", "--ops", "solve", "--impls", "gesv,lu,inv", "--sizes", "16,32",
                 "--kappas", "1e2,1e14", "--dtypes", "float64", "--kinds", "randsvd",
                 "--min-time", "0", "--no-progress", "--db", str(db)]) == 0
    capsys.readouterr()
    assert main(["recommend", "--op", "solve", "--n", "30", "--kappa", "1e14",
                 "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "n=30 -> 32" in out and "recommendation: solve/" in out
    assert "solve/inv" in out.split("excluded:")[1]  # kappa 1e14: inv is not backward stable
    assert main(["recommend", "--op", "solve", "--n", "32", "--format", "json",
                 "--db", str(db)]) == 0
    import json

    answer = json.loads(capsys.readouterr().out)
    assert answer["n_used"] == 32 and answer["best"] in ("solve/gesv", "solve/lu")
    assert main(["recommend", "--op", "solve", "--n", "5000", "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("factorbench: no answer:") and err.count("\n") == 1
    assert "recorded n 16..32" in err


# -- memory cap ---------------------------------------------------------------
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_max_memory_hog_crashes_run_goes_on(tmp_path, faulty_plugin):
    db = tmp_path / "m.sqlite"
    proc = _fb("run", "--ops", "lu", "--impls", "lu/hog,lu/lapack", "--sizes", "16",
               "--kappas", "1e2", "--dtypes", "float64", "--kinds", "randsvd", "--min-time", "0",
               "--max-memory", "1G", "--plugin", faulty_plugin, "--db", str(db), "--no-progress",
               env=ONE_BLAS_THREAD)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "1 crashed, 1 ok" in out
    with Store(db, readonly=True) as s:
        cells = s.cells([1]).set_index("impl")
        spec = s.run(1)["spec_json"]
    assert cells.loc["lu/hog", "status"] == "crashed"
    assert cells.loc["lu/hog", "message"].startswith(
        "out of memory: MemoryError under --max-memory 1 GiB")
    assert cells.loc["lu/lapack", "status"] == "ok"
    from factorbench.spec import SweepSpec

    assert SweepSpec.from_json(spec).max_memory == 2**30  # --resume keeps the cap


def test_max_memory_below_worker_footprint_refused_before_the_run(tmp_path, capsys):
    db = tmp_path / "f.sqlite"
    assert main(["run", "--ops", "lu", "--impls", "lapack", "--sizes", "8", "--kappas", "1e2",
                 "--dtypes", "float64", "--max-memory", "260M", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-memory 260 MiB is too small" in err
    with Store(db, readonly=True) as s:
        assert s.runs().empty


# -- huge grids ---------------------------------------------------------------
HUGE = ["run", "--sizes", "64:65536:x2", "--kappas", "1e0:1e16:x10", "--seeds", "50",
        "--no-progress"]


@pytest.fixture
def fake_run(monkeypatch):
    """Replace run_sweep: record its spec, run nothing."""
    from collections import Counter

    import factorbench.sweep

    calls = []

    def fake(spec, store, **kw):
        calls.append(spec)
        return 1, Counter()

    monkeypatch.setattr(factorbench.sweep, "run_sweep", fake)
    return calls


class _Tty:
    def __init__(self, answer):
        self.answer = answer

    def isatty(self):
        return True

    def readline(self):
        return self.answer


def test_huge_grid_refused_without_yes_and_nothing_written(tmp_path, capsys, fake_run):
    db = tmp_path / "h.sqlite"
    assert main([*HUGE, "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "pass --yes" in err and "cells" in err and "estimated at about" in err
    assert not db.exists()
    Store(db).close()  # an existing database gains no run either
    assert main([*HUGE, "--db", str(db)]) == 2
    with Store(db, readonly=True) as s:
        assert s.runs().empty
    assert fake_run == []


def test_huge_grid_with_yes_starts(tmp_path, capsys, fake_run):
    assert main([*HUGE, "--yes", "--db", str(tmp_path / "y.sqlite")]) == 0
    (spec,) = fake_run
    assert spec.seeds == 50 and max(spec.sizes) == 65536
    assert "pass --yes" not in capsys.readouterr().err


@pytest.mark.parametrize("answer, code", [("y\n", 0), ("yes\n", 0), ("n\n", 2), ("\n", 2),
                                           ("", 2)])
def test_huge_grid_asks_on_a_terminal(tmp_path, capsys, monkeypatch, fake_run, answer, code):
    monkeypatch.setattr("sys.stdin", _Tty(answer))
    assert main([*HUGE, "--db", str(tmp_path / "t.sqlite")]) == code
    err = capsys.readouterr().err
    assert "Proceed? [y/N]" in err and "cells" in err
    assert len(fake_run) == (code == 0)


def test_small_run_is_not_questioned(tmp_path, capsys, monkeypatch, fake_run):
    monkeypatch.setattr("sys.stdin", _Tty("n\n"))
    assert main(["run", "--db", str(tmp_path / "s.sqlite")]) == 0  # the quick preset
    assert capsys.readouterr().err.count("Proceed") == 0 and len(fake_run) == 1


def _spec_of(**kw):
    from factorbench.spec import SweepSpec

    return SweepSpec(**{"kappas": [1e2], "dtypes": ["float64"], **kw})


@pytest.mark.parametrize("kw", [
    {},
    {"kinds": ["randsvd", "randsvd:3", "spd", "hilbert"], "sizes": [8, 16]},
    {"ops": ["lowrank", "qr"], "sizes": [4, 8, 40], "rank": 12},
    {"ops": ["lu", "solve"], "sizes": [8, 600], "max_n": 500, "seeds": 2,
     "dtypes": ["float64", "complex64"]},
    {"ops": ["lu"], "impls": ["lapack", "gepp"], "kappas": [1e2, 1e2, 1e4]},
])
def test_estimate_counts_the_cells_expand_makes(kw):
    from factorbench.sweep import estimate, expand

    spec = _spec_of(**kw)
    cells = expand(spec)
    est = estimate(spec)
    assert est.cells == len(cells)
    assert est.runnable == sum(1 for c in cells if not c["resolved"])


def test_estimate_grows_with_size_and_is_capped_by_the_timeout():
    from factorbench.sweep import estimate

    sizes = [2**k for k in range(3, 15)]
    secs = [estimate(_spec_of(sizes=[n], max_n=10**6)).seconds for n in sizes]
    assert all(b >= a for a, b in zip(secs, secs[1:], strict=False))
    assert secs[-1] > 100 * secs[0]
    capped = estimate(_spec_of(sizes=[16384], max_n=10**6, timeout=5.0))
    assert capped.seconds <= 5.0 * capped.runnable


@pytest.mark.slow  # times real cells: a loaded machine would make it flaky
def test_estimate_right_order_of_magnitude_for_a_tiny_sweep():
    from threadpoolctl import threadpool_limits

    from factorbench.sweep import estimate, expand
    from factorbench.worker import run_cell

    spec = _spec_of(ops=["lu", "qr"], impls=["lapack", "gepp", "householder"], sizes=[32, 96],
                    kinds=["randsvd"], min_time=0.05, max_repeats=50, max_time=1.0, threads=1)
    options = {"min_time": spec.min_time, "max_repeats": spec.max_repeats,
               "max_time": spec.max_time, "threshold": 30.0, "gemm": {}}
    cells = [c for c in expand(spec) if not c["resolved"]]
    with threadpool_limits(1):  # as the worker of a --threads 1 run
        t0 = time.perf_counter()
        for c in cells:
            assert run_cell(c, options)["status"] == "ok"
        measured = time.perf_counter() - t0
    guess = estimate(spec).seconds
    assert len(cells) == 8 and measured / 10 < guess < measured * 10, (guess, measured)


# -- fuzz ---------------------------------------------------------------------
FUZZED = ("--sizes", "--kappas", "--dtypes", "--ops", "--impls", "--seeds", "--timeout",
          "--max-memory", "--param")
_TOKENS = st.sampled_from(["", "0", "-1", "1", "8", "64", "1e3", "1e300", "nan", "inf", "x2",
                           "+8", ":", ",", "=", "lu", "qr", "lapack", "float64", "complex64",
                           "1G", "512M", "2.5GiB", "block=", "e", "-", " ", "\n", "\x00", "é"])
_PLAUSIBLE = {
    "--sizes": ["8", "8,16", "8:64:x2", "1:3000:+1", "64:65536:x2"],
    "--kappas": ["1e2", "1e0:1e16:x100", "1,10"],
    "--dtypes": ["float64", "float32,complex64"],
    "--ops": ["lu", "lu,qr", "svd,eigh,lowrank"],
    "--impls": ["lapack", "lu/lapack", "gepp,householder"],
    "--seeds": ["1", "3", "100000"],
    "--timeout": ["5", "0.5", "inf"],
    "--max-memory": ["1G", "512M", "2.5GiB"],
    "--param": ["block=32,64"],
}
_VALUES = st.one_of(st.text(max_size=12),
                    st.lists(_TOKENS, min_size=1, max_size=5).map("".join))


@st.composite
def _flag(draw):
    flag = draw(st.sampled_from(FUZZED))
    return flag, draw(st.one_of(st.sampled_from(_PLAUSIBLE[flag]), _VALUES))


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flags=st.lists(_flag(), min_size=1, max_size=4))
def test_fuzzed_run_flags_exit_0_or_2_with_one_line(flags, tmp_path, fake_run):
    argv = ["run", "--db", str(tmp_path / "z.sqlite"), "--no-progress"]
    for flag, value in flags:
        argv += [f"{flag}={value}"]  # "=" keeps a value that starts with "-" a value
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    text = err.getvalue()
    assert code in (0, 2), (argv, text)
    assert "Traceback" not in text
    if code == 2:
        assert text.count("\n") == 1 and text.startswith("factorbench: error: "), (argv, text)
    else:
        assert fake_run and fake_run[-1].validate()  # accepted specs are valid; nothing ran


def test_gpu_cells_are_skipped_under_a_memory_cap():
    from types import SimpleNamespace

    from factorbench.sweep import _resolve

    gpu = SimpleNamespace(id="lu/cusolver", device="gpu", dtypes=("float64",), max_n=None)
    cell = {"dtype": "float64", "n": 64}
    avail = {"lu/cusolver": (True, "")}
    assert _resolve(gpu, cell, _spec_of(), avail, None) is None
    status, why = _resolve(gpu, cell, _spec_of(max_memory=2**30), avail, None)
    assert status == "skipped" and "--max-memory does not cover" in why
