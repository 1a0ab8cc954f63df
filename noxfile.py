"""nox sessions: lint, tests (incl. slow), bench (asv), pytest-bench, report, blas3, randomized.

Sessions reuse their virtualenvs and use the running interpreter, so nox never
downloads a Python.  ``nox`` alone runs lint and tests; the others are named:
``nox -s bench``, ``nox -s pytest-bench``, ``nox -s report``, ``nox -s blas3``,
``nox -s randomized``.
"""

import glob
import os

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]
PY = None  # a virtualenv of the interpreter nox runs under: nothing is downloaded
ONE_BLAS_THREAD = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@nox.session(python=PY)
def lint(session):
    session.install("ruff")
    session.run("ruff", "check", "factorbench", "tests", "noxfile.py")


@nox.session(python=PY)
def tests(session):
    """Every test, including the ones marked slow; tests/bench runs as correctness tests.

    pyproject's addopts pass --benchmark-disable, so each benchmark makes one call and
    asserts the pass rule.
    """
    session.install("-e", ".[test]")
    session.run("pytest", "-q", "-m", "slow or not slow", *session.posargs)


@nox.session(python=PY)
def bench(session):
    """The asv suite in benchmarks/, against the code installed in this session.

    ``asv check`` imports every benchmark; ``asv run --quick`` runs each once
    (a smoke test of the suite, not a measurement; extra arguments go to asv
    run, e.g. ``nox -s bench -- --bench lu``); ``asv publish`` writes the HTML
    site (``asv preview`` serves it).  For real numbers run ``asv run
    --python=same --set-commit-hash=HEAD`` without ``--quick`` in this venv.
    ``--python=same`` uses this session's virtualenv instead of building one
    per commit, and ``--set-commit-hash=HEAD`` records the results under the
    checked-out commit (asv saves nothing from an existing environment
    otherwise); for history over commits run ``asv run`` yourself
    (``asv run main~10..main``), which builds its own environments with virtualenv.
    """
    session.install("-e", ".[bench]")
    session.run("asv", "machine", "--yes")
    session.run("asv", "check", "--python=same")
    session.run("asv", "run", "--python=same", "--set-commit-hash=HEAD", "--quick",
                "--show-stderr", *session.posargs)
    session.run("asv", "publish")


@nox.session(name="pytest-bench", python=PY)
def pytest_bench(session):
    """Time tests/bench (one benchmark per impl, n and dtype) with pytest-benchmark.

    Each run is saved under .benchmarks/<machine>/ (--benchmark-autosave, numbered
    0001_<commit>...json, git-ignored).  When an earlier run of this machine is
    there, the new run is compared with the latest one and the session fails when
    a benchmark's median is more than 10% slower
    (``--benchmark-compare --benchmark-compare-fail=median:10%``).  On a busy or
    shared machine single microsecond-scale benchmarks move by more than that:
    re-run before believing one.  BLAS runs on one thread (OPENBLAS_NUM_THREADS,
    OMP_NUM_THREADS and MKL_NUM_THREADS default to 1, as in asv.conf.json): at
    these sizes threads buy little, and a threaded call's time swings with
    whatever else the machine runs (gesdd at n = 64 on two cores: 0.35 ms on one
    thread, up to 90 ms on two beside another job).  Extra arguments go to pytest, e.g.
    ``nox -s pytest-bench -- -k lu`` or ``-- --benchmark-compare=0003``; set
    FACTORBENCH_BENCH_SIZES=64,256 for more sizes.  ``pytest-benchmark compare``
    lists the saved runs side by side.
    """
    session.install("-e", ".[test]")
    out = session.run(
        "python", "-c", "from pytest_benchmark.utils import get_machine_id as m; print(m())",
        silent=True) or ""  # None under --install-only
    machine = out.strip().splitlines()[-1] if out.strip() else None
    saved = machine and glob.glob(
        os.path.join(".benchmarks", machine, "[0-9][0-9][0-9][0-9]_*.json"))
    compare = ["--benchmark-compare", "--benchmark-compare-fail=median:10%"] if saved else []
    if not saved:
        session.log(f"no earlier run in .benchmarks/{machine}: saving this one, no comparison")
    one_thread = {k: os.environ.get(k, "1") for k in ONE_BLAS_THREAD}
    session.run("pytest", "-q", "-p", "no:cacheprovider", "tests/bench", "--benchmark-enable",
                "--benchmark-autosave", "--benchmark-columns=median,iqr,min,rounds",
                *compare, *session.posargs, env=one_thread)


@nox.session(python=PY)
def report(session):
    """The quick sweep and its HTML report, into a throwaway database."""
    session.install("-e", ".")
    db = session.create_tmp() + "/nox.sqlite"
    session.run("factorbench", "run", "--preset", "quick", "--db", db,
                "--report", "reports/quick.html")


@nox.session(python=PY)
def blas3(session):
    """The blocked, recursive and Numba families next to LAPACK (preset ``blas3``).

    lu, cholesky and square qr at n = 512..4096 in float64 and float32, every
    block size, on the serial executor with the machine's BLAS threads: the
    GFLOP/s table (each impl's best block size, its fraction of the GEMM
    ceiling and its ratio to LAPACK) is printed and the HTML report, whose
    per-op "Throughput next to the library" tables show the same, is written to
    reports/blas3.html.  About half an hour on two cores; keep the machine
    otherwise idle, the ratios are only as good as the quiet they were taken
    in.  Extra arguments go to ``factorbench run`` (e.g. ``-- --sizes
    512:2048:x2 --dtypes float64``).
    """
    session.install("-e", ".")
    db = os.environ.get("FACTORBENCH_DB", "results/blas3.sqlite")
    session.run("factorbench", "run", "--preset", "blas3", "--db", db, "--label", "blas3",
                "--yes", *session.posargs)
    session.run("factorbench", "report", "--db", db, "--throughput", "-o", "reports/blas3.html")


@nox.session(python=PY)
def randomized(session):
    """The randomized family against the deterministic drivers and the peers (preset
    ``randomized``).

    lowrank on 4000 x 2000 (numerical rank 50, slow decay and flat noise, k = 50),
    lstsq on 20000 x 200 (kappa 1e4 and 1e10, residual 1e-10 ||Ax||), qrcp on
    rank-deficient and Kahan matrices, float64, with the peer libraries when the
    ``peers`` extra is installed: the speed-accuracy table is printed and the
    HTML report written to reports/randomized.html.  A few minutes on two cores;
    keep the machine otherwise idle.  Extra arguments go to ``factorbench run``.
    """
    session.install("-e", ".[peers]")
    db = os.environ.get("FACTORBENCH_DB", "results/randomized.sqlite")
    session.run("factorbench", "run", "--preset", "randomized", "--db", db, "--label",
                "randomized", "--yes", *session.posargs)
    session.run("factorbench", "report", "--db", db, "--tradeoff", "-o",
                "reports/randomized.html")
