import csv
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from factorbench.cli import main
from factorbench.store import Store


def _fb(*args, env=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "factorbench", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})), **kw)


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
        (["compare", "1"], "the following arguments are required: HEAD"),
        (["compare", "a", "2"], "run id must be an integer"),
        (["compare", "1", "2", "--fail-slower", "-3"], "--fail-slower must be"),
        (["compare", "1", "2", "--fail-less-accurate", "0.5"], "--fail-less-accurate must be"),
        (["compare", "1", "2", "--alpha", "2"], "--alpha must lie in (0, 1)"),
        (["compare", "1", "2", "--db", "/no/such/x.sqlite"], "no such database"),
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
    assert main(["report", "1", "--db", str(db), "-o", str(tmp_path / "again.html")]) == 0


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


def _start_slow(db, plugin):
    return _fb(*SLOW_RUN, "--plugin", plugin, "--db", str(db),
               env={"FACTORBENCH_TEST_SLEEP": "0.01"})


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
    proc = _start_slow(db, faulty_plugin)
    _wait_for(db, 4, proc)
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
