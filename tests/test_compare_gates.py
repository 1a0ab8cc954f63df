"""The accuracy gate of ``factorbench compare``, end to end through the CLI.

Two small sweeps of ``lu/lapack`` and ``lu/lapack_drift`` (tests/plugins/drifting.py)
go into one database: the base with the exact factorization, the head with U
perturbed by a relative 4e-14 (FACTORBENCH_TEST_PERTURB).  Every head cell still
passes (backward ratio about 11 and 22 at n = 32 and 16, below 30), so only the
ratio gate can see the change: the backward ratio grew more than 4-fold.  A third
run perturbed by 1e-10 fails the pass rule outright (ratio about 1e4), which the
gate reports twice: as a ratio and as a status change ok -> failed.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from factorbench.cli import main
from factorbench.store import Store

DRIFTING = str(Path(__file__).parent / "plugins" / "drifting.py")
SWEEP = ["run", "--ops", "lu", "--impls", "lu/lapack,lu/lapack_drift", "--sizes", "16,32",
         "--kappas", "1e2", "--dtypes", "float64", "--kinds", "randsvd", "--min-time", "0",
         "--no-progress", "--plugin", DRIFTING]


def _fb(*args, perturb=None):
    env = dict(os.environ)
    env.pop("FACTORBENCH_TEST_PERTURB", None)
    if perturb is not None:
        env["FACTORBENCH_TEST_PERTURB"] = perturb
    return subprocess.run([sys.executable, "-m", "factorbench", *args], capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def drifted(tmp_path_factory):
    db = tmp_path_factory.mktemp("gates") / "g.sqlite"
    for label, perturb in (("base", None), ("head", "4e-14"), ("broken", "1e-10")):
        proc = _fb(*SWEEP, "--db", str(db), "--label", label, perturb=perturb)
        assert proc.returncode == 0, proc.stderr
    return db


def test_drift_keeps_cells_ok_but_grows_the_backward_ratio(drifted):
    with Store(drifted, readonly=True) as s:
        base = s.cells([1]).set_index(["impl", "n"])
        head = s.cells([2]).set_index(["impl", "n"])
    assert (base["status"] == "ok").all() and (head["status"] == "ok").all()
    for n in (16, 32):
        assert base.loc[("lu/lapack_drift", n), "backward_ratio"] < 1
        assert head.loc[("lu/lapack_drift", n), "backward_ratio"] > 8
        assert head.loc[("lu/lapack", n), "backward_ratio"] < 1  # the control is untouched


def _compare(capsys, db, tmp_path, *args):
    """``factorbench compare`` in this process: (exit status, stdout, FAIL lines)."""
    capsys.readouterr()
    status = main(["compare", *args, "--db", str(db), "-o", str(tmp_path / "cmp.html")])
    out, err = capsys.readouterr()
    return status, out, [line for line in err.splitlines() if line.startswith("FAIL:")]


def test_fail_less_accurate_exits_1_naming_the_drifting_impl(drifted, tmp_path, capsys):
    status, out, fails = _compare(capsys, drifted, tmp_path, "1", "2",
                                  "--fail-less-accurate", "4")
    assert status == 1, out
    assert len(fails) == 2, fails  # n = 16 and n = 32
    assert all("less accurate by" in f and "lu/lapack_drift" in f for f in fails)
    assert "less accurate (2)" in out
    assert (tmp_path / "cmp.html").read_text().startswith("<!DOCTYPE html>")


def test_without_the_gate_compare_reports_and_exits_0(drifted, tmp_path, capsys):
    status, out, fails = _compare(capsys, drifted, tmp_path, "1", "2")
    assert status == 0 and not fails
    assert "less accurate (2)" in out and "lu/lapack_drift" in out
    # a looser gate than the change passes too
    status, out, fails = _compare(capsys, drifted, tmp_path, "1", "2",
                                  "--fail-less-accurate", "100")
    assert status == 0 and not fails


def test_a_perturbation_that_breaks_the_pass_rule_fails_twice(drifted, tmp_path, capsys):
    status, out, fails = _compare(capsys, drifted, tmp_path, "1", "3",
                                  "--fail-less-accurate", "4")
    assert status == 1, out
    assert sum("less accurate by" in f for f in fails) == 2
    assert sum("status ok -> failed" in f for f in fails) == 2
    assert all("lu/lapack_drift" in f for f in fails)
