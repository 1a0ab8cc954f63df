"""Whole-run reliability: kills and resumes, concurrent writers, determinism,
and no unsafe deserialisation anywhere in the package."""

import ast
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factorbench.spec import SweepSpec
from factorbench.store import Store
from factorbench.sweep import expand
from tests.test_cli import _count

# 10 sizes x 5 kappas x 2 dtypes of one impl: 100 cells of a few ms each.
SWEEP_100 = ["run", "--ops", "lu", "--impls", "lu/slow", "--sizes", "8:80:+8",
             "--kappas", "1e1:1e9:x100", "--dtypes", "float64,float32", "--kinds", "randsvd",
             "--min-time", "0", "--no-progress"]


def _fb(args, env=None):
    return subprocess.Popen([sys.executable, "-m", "factorbench", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})))


def _marked_processes(marker: str) -> list[int]:
    """Live processes whose environment carries ``marker`` (runs and workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() not in (entry / "environ").read_bytes():
                continue
            if (entry / "stat").read_text().split()[2] == "Z":
                continue
        except OSError:
            continue
        pids.append(int(entry.name))
    return pids


def _wait_gone(marker: str, limit: float = 10.0) -> list[int]:
    t0 = time.monotonic()
    while (left := _marked_processes(marker)) and time.monotonic() - t0 < limit:
        time.sleep(0.05)
    return left


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find orphans")
def test_twenty_sigkills_then_resume_lose_nothing(tmp_path, faulty_plugin):
    """SIGKILL of the whole run at a random cell, 20 times, then --resume:
    every one of the 100 cells exactly once, and no worker outlives its run."""
    rnd = random.Random(2026)
    db = tmp_path / "kill.sqlite"
    marker = f"FB_RELIABILITY_{os.getpid()}_{rnd.random()}"
    env = {"FACTORBENCH_TEST_SLEEP": "0.004", "FB_MARK": marker}
    kills = 0
    while kills < 20:
        args = ([*SWEEP_100, "--plugin", faulty_plugin] if kills == 0
                else ["run", "--resume", "--no-progress"])
        proc = _fb([*args, "--db", str(db)], env)
        target = _count(db) + rnd.randint(1, 6)
        t0 = time.monotonic()
        while _count(db) < target and proc.poll() is None:
            assert time.monotonic() - t0 < 120
            time.sleep(0.005)
        if proc.poll() is not None:  # finished before this kill
            break
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        kills += 1
        assert not _wait_gone(marker), "a worker outlived its killed run"
    proc = _fb(["run", "--resume", "--no-progress", "--db", str(db)], env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert kills == 20  # the sweep really was killed 20 times before it could finish
    with Store(db, readonly=True) as store:
        run = store.run(1)
        keys = list(store.cells([1])["cell_key"])
    expected = {c["key"] for c in expand(SweepSpec.from_json(run["spec_json"]))}
    assert len(keys) == len(set(keys)) == len(expected) == 100
    assert set(keys) == expected and run["status"] == "complete"
    assert not _wait_gone(marker)


def test_two_runs_write_one_database_at_once(tmp_path, faulty_plugin):
    db = tmp_path / "shared.sqlite"
    env = {"FACTORBENCH_TEST_SLEEP": "0.002"}
    args = [*SWEEP_100[:6], "8:40:+8", *SWEEP_100[7:], "--plugin", faulty_plugin,
            "--db", str(db)]
    procs = [_fb([*args, "--label", f"writer {i}"], env) for i in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        con.close()
    with Store(db, readonly=True) as store:
        runs = store.runs()
        assert sorted(runs["status"]) == ["complete", "complete"]
        for run_id in runs["run_id"]:
            cells = store.cells([run_id])
            assert len(cells) == 5 * 5 * 2 and cells["cell_key"].is_unique


ACCURACY = ["kappa_actual", "backward_error", "backward_ratio", "orthogonality_loss",
            "orthogonality_ratio", "growth_factor", "forward_error", "kappa_scaled_error"]


def test_same_spec_gives_identical_matrices_and_metrics_across_runs_and_executors(tmp_path):
    db = tmp_path / "det.sqlite"
    base = ["run", "--ops", "lu,qr,solve", "--impls", "lapack,householder,gesv",
            "--sizes", "12,20", "--kappas", "1e3,1e9", "--dtypes", "float64,float32",
            "--min-time", "0", "--no-progress", "--db", str(db)]
    for extra in ([], [], ["--executor", "process", "--jobs", "2"]):
        proc = _fb([*base, *extra])
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    with Store(db, readonly=True) as store:
        frames = [store.cells([r]).set_index("cell_key").sort_index() for r in (1, 2, 3)]
    assert len(frames[0]) > 0
    for other in frames[1:]:
        assert list(other.index) == list(frames[0].index)
        for col in ACCURACY:
            a, b = frames[0][col], other[col]
            same = (a == b) | (a.isna() & b.isna())
            assert same.all(), (col, frames[0].loc[~same, "impl"].tolist())
    assert (frames[2]["concurrent"] == 1).all() and (frames[0]["concurrent"] == 0).all()


_UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal",
                   "yaml", "joblib"}


def test_no_unsafe_deserialisation_in_the_package():
    """Stores, specs and plugins are read as SQLite, JSON and Python source
    only: no pickle, marshal or YAML loader, and NumPy never with
    allow_pickle."""
    root = Path(__file__).resolve().parents[1] / "factorbench"
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names]
                mod = node.module if isinstance(node, ast.ImportFrom) else None
                for name in [mod, *names]:
                    if name and name.split(".")[0] in _UNSAFE_MODULES:
                        found.append(f"{path.name}:{node.lineno} imports {name}")
            elif isinstance(node, ast.Call):
                func = node.func
                attr = func.attr if isinstance(func, ast.Attribute) else None
                if attr in ("read_pickle", "to_pickle"):
                    found.append(f"{path.name}:{node.lineno} calls {attr}")
                for kw in node.keywords:
                    if kw.arg == "allow_pickle" and not (
                        isinstance(kw.value, ast.Constant) and kw.value.value is False
                    ):
                        found.append(f"{path.name}:{node.lineno} allow_pickle")
    assert not found, found
