"""pytest-benchmark suite generated from the registry: one test per (impl, n, dtype).

Every registered implementation (one per parameter combination, plugins named
in ``FACTORBENCH_PLUGINS`` included) gets one test per size and per precision
of :data:`DTYPES`; a combination the harness would not run (a dtype the impl
does not claim, n above its ``max_n``, a missing dependency or device) is
skipped with the reason the sweep would record.  Registering an impl adds its
tests.

The cases come from :func:`factorbench.bench.prepare`: the sweep's cell and
seeded matrix (``kappa = 1e2``, the op's first default family the impl takes),
its first call made and its result type and precision checked.  The benchmark
times only the impl call: ``setup`` hands every round a fresh copy of the input
in the memory order the impl declares, outside the timed region, and a warm-up
round stays out of the statistics.

The accuracy metrics (:func:`factorbench.accuracy.metrics.bundle`, as the
worker computes them) go into ``benchmark.extra_info`` and so into the saved
JSON.  Impls registered ``stable`` must meet the pass rule.  With
``--benchmark-disable`` (the default in ``pyproject.toml``) each test makes
one timed-path call and is a correctness test; ``nox -s pytest-bench`` times
them.

``FACTORBENCH_BENCH_SIZES`` (e.g. ``64,256``) replaces the default size 64.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest

from factorbench import bench, worker
from factorbench.accuracy.metrics import LOWRANK_THRESHOLD, METRIC_COLUMNS, passed
from factorbench.impls import OPS

SIZES = [int(s) for s in os.environ.get("FACTORBENCH_BENCH_SIZES", "64").split(",")]
DTYPES = ("float64", "float32")
THRESHOLD = 30.0

#: Timed rounds: enough for about MIN_TIME seconds of calls, within these bounds.
MIN_TIME = 0.1
MIN_ROUNDS, MAX_ROUNDS = 5, 500


def _cases():
    bench.load_plugins()  # built-ins, entry points, FACTORBENCH_PLUGINS
    return [pytest.param(op, label, n, d, id=f"{op}/{label}-n{n}-{d}")
            for op in OPS for label in bench.variants(op) for n in SIZES for d in DTYPES]


def _rounds(case) -> int:
    """The fastest of three untimed calls sets the rounds for about MIN_TIME seconds."""
    best = math.inf
    for _ in range(3):
        args, kwargs = case.inputs()
        t0 = time.perf_counter()
        case.impl.func(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return max(MIN_ROUNDS, min(MAX_ROUNDS, math.ceil(MIN_TIME / max(best, 1e-9))))


def _json(v):
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    return float(v) if math.isfinite(v) else repr(float(v))  # NaN/Inf are not JSON


@pytest.mark.parametrize("op, label, n, dtype", _cases())
def test_impl(benchmark, op, label, n, dtype):
    try:
        case = bench.prepare(op, label, n, dtype)  # first call made and checked
    except bench.Skip as why:
        pytest.skip(str(why))
    impl = case.impl

    benchmark.group = f"{op} n={n} {dtype}"
    rounds = 1 if benchmark.disabled else _rounds(case)
    benchmark.pedantic(impl.func, setup=case.inputs, rounds=rounds,
                       warmup_rounds=0 if benchmark.disabled else 1, iterations=1)

    metrics = {k: v for k, v in case.metrics().items() if k in METRIC_COLUMNS and v is not None}
    ok = passed(metrics, THRESHOLD, LOWRANK_THRESHOLD, max(case.m, case.n))
    benchmark.extra_info.update(
        impl=impl.id, params=case.cell["params"], op=op, m=case.m, n=case.n, dtype=dtype,
        kind=case.cell["kind"], kappa=case.cell["kappa"], kappa_used=case.kappa,
        stable=impl.stable, passed=ok, first_call_s=case.first_call_s,
        blas_threads=worker._blas_threads(), **{k: _json(v) for k, v in metrics.items()},
    )
    if impl.stable:
        assert ok, f"{impl.id} failed the pass rule at n={n} {dtype}: " + ", ".join(
            f"{k}={v:.3g}" for k, v in metrics.items())


def test_every_registered_impl_has_its_cases():
    """Registering an impl adds its cases: one per parameter combination, n and dtype."""
    from factorbench.impls import impls

    cases = {(i.rsplit("-n", 1)[0].split("[")[0], i.rsplit("-n", 1)[1]) for i in
             (p.id for p in _cases())}
    for impl in impls():
        for n in SIZES:
            for d in DTYPES:
                assert (impl.id, f"{n}-{d}") in cases
