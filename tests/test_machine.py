"""Tests of factorbench.machine: fingerprint, versions, GEMM probe, git commit.

No assertion is made about how fast the GEMM runs, only that the probe
returns a usable number.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from factorbench.machine import (
    GEMM_DTYPES,
    fingerprint,
    gemm_flops,
    gemm_peak,
    gemm_peaks,
    git_commit,
    versions,
)

FINGERPRINT_KEYS = {
    "host",
    "platform",
    "machine",
    "cpu_model",
    "logical_cores",
    "physical_cores",
    "memory_bytes",
    "python",
    "numpy_version",
    "blas",
    "threads",
    "gpus",
}


def test_fingerprint_keys_and_json():
    fp = fingerprint()
    assert FINGERPRINT_KEYS <= set(fp)
    assert json.loads(json.dumps(fp)) == fp
    assert fp["logical_cores"] == os.cpu_count()
    assert fp["numpy_version"] == np.__version__
    assert fp["threads"] is None
    assert fp["gpus"] == []
    assert isinstance(fp["blas"], list)
    for key in ("physical_cores", "usable_cores", "memory_bytes"):
        assert fp[key] is None or (isinstance(fp[key], int) and fp[key] > 0)


def test_fingerprint_records_requested_threads():
    fp = fingerprint(threads=1)
    assert fp["threads"] == 1
    blas = [e for e in fp["blas"] if e["user_api"] == "blas"]
    assert all(e["num_threads"] == 1 for e in blas)


def test_versions():
    v = versions()
    assert v["numpy"] == np.__version__
    assert "scipy" in v
    assert "factorbench" in v and "python" in v
    assert all(isinstance(x, str) for x in v.values())


def test_versions_never_imports_cupy():
    had_cupy = "cupy" in sys.modules
    versions()
    assert ("cupy" in sys.modules) == had_cupy


@pytest.mark.parametrize("dtype", list(GEMM_DTYPES))
def test_gemm_peak_positive(dtype):
    rate = gemm_peak(dtype, n=128, min_time=0.005, repeats=3)
    assert isinstance(rate, float)
    assert math.isfinite(rate) and rate > 0


def test_gemm_peaks_keys():
    rates = gemm_peaks(["float64", np.float32, "float64"], n=64, min_time=0.001)
    assert list(rates) == ["float64", "float32"]
    assert all(r > 0 for r in rates.values())


def test_gemm_peaks_skips_emulated(monkeypatch):
    from factorbench.accuracy import precision

    fake = dataclasses.replace(precision.PRECISIONS["float32"], name="bfloat16", emulated=True)
    monkeypatch.setitem(precision.PRECISIONS, "bfloat16", fake)
    assert list(gemm_peaks(["bfloat16", "float32"], n=32, min_time=0.0)) == ["float32"]
    with pytest.raises(ValueError):
        gemm_peaks(["float64", "flaot64"], n=32)


def test_gemm_flops_lawn41():
    assert gemm_flops("float64", 10) == 2000
    assert gemm_flops("complex64", 10) == 8000


@pytest.mark.parametrize("bad", ["float16", "int64", "bfloat16", "nonsense", None])
def test_gemm_peak_bad_dtype(bad):
    with pytest.raises(ValueError):
        gemm_peak(bad, n=8)


def test_gemm_peak_bad_sizes():
    with pytest.raises(ValueError):
        gemm_peak("float64", n=0)
    with pytest.raises(ValueError):
        gemm_peak("float64", n=8, repeats=0)


# --- git --------------------------------------------------------------------

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


@pytest.fixture
def isolated_git(monkeypatch, tmp_path):
    """Keep git from finding a repository above tmp_path or user config."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return tmp_path


def _git(cwd, *args):
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@needs_git
def test_git_commit_not_a_repo(isolated_git):
    assert git_commit(isolated_git) is None


def test_git_commit_missing_path(tmp_path):
    assert git_commit(tmp_path / "does-not-exist") is None


@needs_git
def test_git_commit_repo_without_commit(isolated_git):
    _git(isolated_git, "init", "-q")
    assert git_commit(isolated_git) is None


@needs_git
def test_git_commit_clean_and_dirty(isolated_git, monkeypatch):
    repo = isolated_git
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("a\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "one")
    commit = git_commit(repo)
    assert commit is not None and re.fullmatch(r"[0-9a-f]{40}", commit)
    # Default path is the cwd; a subdirectory finds the same work tree.
    (repo / "sub").mkdir()
    monkeypatch.chdir(repo / "sub")
    assert git_commit() == commit
    (repo / "untracked.txt").write_text("x\n")
    assert git_commit(repo) == commit + "+dirty"


def test_git_commit_without_git(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert git_commit(tmp_path) is None


@pytest.mark.parametrize("dtype", ["float64", "float32", "complex128", "complex64"])
def test_gemm_probe_times_both_libraries_computing_the_product(dtype):
    """NumPy's matmul and SciPy's xGEMM: each call computes A @ B into the output,
    so the faster of the two is a rate of the real product."""
    from factorbench.machine import _gemm_calls

    rng = np.random.default_rng(3)
    a = rng.standard_normal((40, 40)).astype(dtype)
    b = rng.standard_normal((40, 40)).astype(dtype)
    c = np.zeros((40, 40), dtype=dtype)
    calls = _gemm_calls(dtype, a, b, c)
    assert len(calls) == 2
    u = np.finfo(dtype).eps / 2
    ref = a.astype(np.complex128) @ b.astype(np.complex128)
    for func, args, kwargs in calls:
        out = func(*args, **kwargs)
        got = out if out is not None else kwargs.get("out")
        got = kwargs["c"] if "c" in kwargs else got
        # forward error of a dot product of length 40: 40 u |A||B| (Higham 2002, §3.5)
        bound = 40 * u * (np.abs(a) @ np.abs(b))
        assert np.all(np.abs(got - ref) <= bound)


def test_gemm_size_is_the_largest_size_clipped():
    from factorbench.machine import gemm_size

    assert gemm_size([48, 96, 192]) == 1024
    assert gemm_size([512, 1500]) == 1500
    assert gemm_size([512, 4096]) == 2048
