"""Run ONE cell: matrix -> timed impl -> metrics -> record.

:func:`run_cell` is a pure function of the cell and the run options and is
what every executor calls, in a worker process (:func:`serve`) or in-process
(tests).  It never raises for anything an impl does: exceptions become
``error`` records with the exception type and message, factors of the wrong
type, shape or precision become ``error`` records naming the field, and a
ratio at or above the threshold (or any NaN/Inf) becomes ``failed`` with the
numbers kept.  Input is checked for NaN/Inf *before* timing: an impl is never
timed on a matrix that rounding to the working precision broke.

A ``MemoryError`` is the exception to that rule: it makes the cell
``crashed`` ("out of memory: ..."), like a worker killed for memory, and the
worker that served it exits after sending the record, because a heap that ran
out may leave the interpreter unusable.  CuPy's device out-of-memory error (a
``MemoryError`` too) is an ``error`` record instead: the host heap is sound and the
device's pools are emptied after the cell.  With ``max_memory`` in its init the
worker caps its own virtual address space (``RLIMIT_AS``) before it takes a
cell, after starting its BLAS threads and measuring what it holds at idle.

A cell of a GPU impl is measured the same way through :class:`factorbench.device.Gpu`:
inputs copied to the device outside the timed region, CUDA-event timing, the first
call under ``cupyx.errstate(linalg="raise")``, the result copied back to the host
before the precision guard and the metrics, ``transfer_s`` recorded, the memory
pools emptied after the cell.  Its ``peak_fraction`` divides by the GPU's GEMM
ceiling.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import traceback

import numpy as np

from factorbench import impls as registry
from factorbench.accuracy import matrices
from factorbench.accuracy.flops import flops
from factorbench.accuracy.metrics import (
    LOWRANK_THRESHOLD,
    METRIC_COLUMNS,
    ResultError,
    bundle,
    limits,
    passed,
)
from factorbench.accuracy.precision import precision, result_dtype_error, store
from factorbench.impls.results import RESULT_TYPES
from factorbench.machine import ceiling_key
from factorbench.store import now

__all__ = ["run_cell", "resolved_record", "serve", "MEMORY_HEADROOM"]

#: kappa_actual (an SVD of the rounded matrix) is computed up to this size.
KAPPA_ACTUAL_MAX_N = 2048

#: Address space a capped worker must have free above its idle footprint.
MEMORY_HEADROOM = 128 * 2**20

#: The cap (bytes) this process runs under, set by :func:`serve`.
_MAX_MEMORY: int | None = None

_HOST = socket.gethostname()
_CACHE: dict = {}


def _base(cell: dict) -> dict:
    impl = registry.get(cell["impl"])
    return {
        "cell_key": cell["key"],
        "op": cell["op"],
        "impl": impl.id,
        "backend": impl.backend,
        "family": impl.family,
        "device": impl.device,
        "stable": impl.stable,
        "kind": cell["kind"],
        "mode": cell["mode"],
        "m": cell["m"],
        "n": cell["n"],
        "rank": cell["rank"],
        "kappa": cell["kappa"],
        "residual": cell.get("residual"),
        "dtype": cell["dtype"],
        "unit_roundoff": precision(cell["dtype"]).u,
        "seed": cell["seed"],
        "params_json": json.dumps(cell["params"], sort_keys=True),
        "host": _HOST,
    }


def resolved_record(cell: dict, status: str, message: str, started_at: str | None = None) -> dict:
    """Record of a cell that ends without running its impl (or whose worker died)."""
    t = now()
    return dict(_base(cell), status=status, message=message, started_at=started_at or t,
                finished_at=t)


def _matrix(cell: dict):
    """The cell's inputs ``(tm, A_w, b, x_true, eta)``, reused across consecutive cells.

    The matrix depends on the matrix fields only (not on the op), so an lu
    cell and a solve cell can share it; the right-hand side is drawn from its
    own seed the first time an op that takes one needs it, so it does not
    depend on which op came first.  A least-squares cell with a ``residual``
    gets ``b = A x_true + r``, r orthogonal to range(A) (:func:`matrices.lstsq_rhs`),
    and ``eta = ||r|| / (||A|| ||x_true||)`` for the metrics; the same x_true.
    """
    key = (cell["matrix_seed"], cell["dtype"])
    wants_rhs = registry.OPS[cell["op"]]["args"] == "Ab"
    if _CACHE.get("key") != key:
        p = precision(cell["dtype"])
        mat_ss = _seeds(cell)[0]
        # The cell's rank is the target k of lowrank ops; only rank families take it.
        rank = cell["rank"] if matrices.KINDS[cell["kind"]].has_rank else None
        tm = matrices.generate(cell["kind"], cell["m"], cell["n"], kappa=cell["kappa"],
                               mode=cell["mode"], rank=rank, complex_=p.is_complex, rng=mat_ss)
        with np.errstate(over="ignore", invalid="ignore"):
            # ml_dtypes narrows float64 via float32 (double rounding): emulated
            # formats get the correctly rounded conversion.
            A_w = store(tm.A, p.name) if p.emulated else tm.A.astype(p.dtype)
        _CACHE.clear()
        _CACHE.update(key=key, tm=tm, A_w=A_w)
    if not wants_rhs:
        return _CACHE["tm"], _CACHE["A_w"], None, None, 0.0
    residual = float(cell.get("residual") or 0.0)
    if ("rhs", residual) not in _CACHE:
        tm, rng = _CACHE["tm"], np.random.default_rng(_seeds(cell)[1])
        if residual:
            norm2 = float(tm.sigma[0]) if tm.sigma is not None else None
            _CACHE["rhs", residual] = matrices.lstsq_rhs(_CACHE["A_w"], rng, residual=residual,
                                                         norm2=norm2)
        else:
            _CACHE["rhs", residual] = (*matrices.rhs(_CACHE["A_w"], rng), 0.0)
    x_true, b, eta = _CACHE["rhs", residual]
    return _CACHE["tm"], _CACHE["A_w"], b, x_true, eta


def _seeds(cell: dict) -> list:
    """Independent seeds of one matrix: the matrix, its right-hand side, a sketching rng."""
    return np.random.SeedSequence(cell["matrix_seed"]).spawn(3)


def _kappa_actual(A_w) -> float | None:
    if "kappa_actual" not in _CACHE:
        _CACHE["kappa_actual"] = matrices.kappa_actual(A_w, max_n=KAPPA_ACTUAL_MAX_N)
    return _CACHE["kappa_actual"]


def _args_maker(impl, cell, A_w, b):
    """Fresh inputs, in the impl's layout, prepared outside the timed region."""
    args_kind = registry.OPS[cell["op"]]["args"]
    params = dict(cell["params"])
    order = impl.layout
    sketch_ss = _seeds(cell)[2]
    seeded = args_kind != "Akr" and _takes_rng(impl.func)

    def make():
        A = np.array(A_w, order=order, copy=True)
        # A fresh generator from the cell's seed every call: every repeat does
        # the same work, and a rerun of the cell draws the same sketch.
        kw = dict(params, rng=np.random.default_rng(sketch_ss)) if seeded else params
        if args_kind == "A":
            return (A,), kw
        if args_kind == "Ab":
            return (A, b.copy()), kw
        return (A, cell["rank"], np.random.default_rng(sketch_ss)), params

    return make


def _iteration_counts(result) -> dict:
    """``iterations`` and ``converged`` of an iterative method, from its extras
    (refinement steps of mixed-precision solvers, LSQR iterations); absent
    keys stay missing, and a value that is not a plain count is not trusted."""
    extras = getattr(result, "extras", None) or {}
    out = {}
    it = extras.get("iterations")
    if isinstance(it, int | np.integer) and not isinstance(it, bool) and it >= 0:
        out["iterations"] = int(it)
    conv = extras.get("converged")
    if isinstance(conv, bool | np.bool_):
        out["converged"] = bool(conv)
    return out


def _takes_rng(func) -> bool:
    """Whether an impl of an op without an ``rng`` argument draws random numbers:
    it then declares a keyword ``rng``, and the harness passes a seeded Generator."""
    import inspect

    try:
        return "rng" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def _fail(rec, status, message):
    rec.update(status=status, message=message, finished_at=now())
    return rec


def run_cell(cell: dict, options: dict) -> dict:
    """Run one cell and return its record (the columns of the ``cells`` table).

    Parameters
    ----------
    cell : dict
        A cell from :func:`factorbench.sweep.expand`.
    options : dict
        min_time, max_repeats, max_time, threshold, gemm (dtype -> GFLOP/s; the
        GPU's ceilings under :func:`factorbench.machine.ceiling_key`, ``"gpu:float64"``),
        gemm_by_host (host -> such a dict, for cluster executors), concurrent
        (bool), accuracy_only (bool: one call, no timed repeats).
    """
    started_at = now()
    try:
        return _run_cell(cell, options, started_at)
    except MemoryError as exc:
        return resolved_record(cell, "crashed", oom_message(exc), started_at)


def oom_message(exc: BaseException) -> str:
    """``out of memory: MemoryError under --max-memory 1 GiB: <what failed>``."""
    from factorbench.spec import format_memory

    where = f" under --max-memory {format_memory(_MAX_MEMORY)}" if _MAX_MEMORY else ""
    detail = str(exc).strip()
    return f"out of memory: MemoryError{where}{': ' + detail if detail else ''}"


def _measure(func, make_args, options: dict, **clock):
    """``(result, Timing or None, seconds or None)`` of one cell's impl: one call
    (accuracy-only runs; its wall time) or the timed repeats.  ``clock`` is
    the ``timer`` of a device that is not the host's."""
    from factorbench.timing import call_once, time_call

    if options.get("accuracy_only"):
        result, seconds = call_once(func, make_args, **clock)
        return result, None, seconds
    result, timing = time_call(
        func, make_args, min_time=options.get("min_time", 0.2),
        max_repeats=options.get("max_repeats", 50), max_time=options.get("max_time", 10.0),
        min_repeats=min(3, options.get("max_repeats", 50)), **clock,
    )
    return result, timing, None


def _gpu():
    """The GPU a cell runs on (imports CuPy: only ever called for a GPU impl)."""
    from factorbench.device import Gpu

    return Gpu()


def _run_cell(cell: dict, options: dict, started_at: str) -> dict:
    rec = dict(_base(cell), started_at=started_at, concurrent=bool(options.get("concurrent")))
    rec["threads"] = _blas_threads()
    impl = registry.get(cell["impl"])
    ok, reason = impl.availability()
    if not ok:
        return _fail(rec, "unavailable", reason)
    p = precision(cell["dtype"])
    try:
        tm, A_w, b, x_true, eta = _matrix(cell)
    except MemoryError:
        raise
    except Exception as exc:
        return _fail(rec, "error", f"matrix generation failed: {type(exc).__name__}: {exc}")
    bad = [name for name, X in (("matrix", A_w), ("right-hand side", b))
           if X is not None and not np.isfinite(X).all()]
    if bad:
        return _fail(rec, "error", f"input refused before timing: the {bad[0]} has NaN/Inf "
                                   f"after rounding to {p.name}")
    kappa_actual = _kappa_actual(A_w)
    rec["kappa_actual"] = kappa_actual
    if cell["op"] == "lstsq":
        rec["eta"] = eta
    gpu = None
    try:
        make_args = _args_maker(impl, cell, A_w, b)
        if impl.device == "gpu":
            gpu = _gpu()
            result, timing, seconds = _measure(gpu.first_call_raises(impl.func),
                                               gpu.inputs(make_args), options, timer=gpu.timer)
            result = gpu.to_host(result)
            rec["transfer_s"] = gpu.transfer_s
        else:
            result, timing, seconds = _measure(impl.func, make_args, options)
    except MemoryError as exc:
        if gpu is None or not gpu.out_of_memory(exc):
            raise
        return _fail(rec, "error", f"out of GPU memory: {type(exc).__name__}: {exc}")
    except Exception as exc:
        return _fail(rec, "error", f"{type(exc).__name__}: {exc}")
    finally:
        if gpu is not None:
            gpu.release()
    rec.update(timing.as_record() if timing else {"first_call_s": seconds, "repeats": 0})
    want = RESULT_TYPES[cell["op"]]
    if not isinstance(result, want):
        got = type(result).__name__
        return _fail(rec, "error", f"impl returned {got}, expected {want.__name__}")
    why = result_dtype_error(result, p.name)
    if why:
        return _fail(rec, "error", f"wrong precision: {why}")
    kappa = kappa_actual if kappa_actual is not None else (tm.kappa or None)
    try:
        metrics = bundle(cell["op"], A_w, result, u=p.u, kappa=kappa, b=b, x_true=x_true,
                         sigma=tm.sigma, eigenvalues=tm.eigenvalues, k=cell["rank"],
                         eta=eta)
    except ResultError as exc:
        return _fail(rec, "error", f"bad result: {exc}")
    rec.update({k: metrics.get(k) for k in METRIC_COLUMNS})
    rec.update(_iteration_counts(result))
    nominal = flops(cell["op"], cell["m"], cell["n"], complex_=p.is_complex)
    if nominal is not None and timing is not None and timing.median_s > 0:
        rec["gflops"] = nominal / timing.median_s / 1e9
        # a cell that ran on another host of a cluster is normalised by that host's GEMM,
        # a GPU cell by the GEMM of the GPU
        gemm = (options.get("gemm_by_host") or {}).get(_HOST) or options.get("gemm") or {}
        peak = gemm.get(ceiling_key(p.name, impl.device))
        rec["peak_fraction"] = rec["gflops"] / peak if peak else None
    threshold = options.get("threshold", 30.0)
    lowrank_threshold = options.get("lowrank_threshold", LOWRANK_THRESHOLD)
    size = max(cell["m"], cell["n"])
    ok = passed(metrics, threshold, lowrank_threshold, size)
    rec["passed"] = ok
    if ok:
        return _fail(rec, "ok", None)
    return _fail(rec, "failed",
                 _failure_message(metrics, limits(threshold, lowrank_threshold, size)))


def _failure_message(metrics, lim):
    """Which ratio broke its limit, or which metric is not finite."""
    parts = []
    for k, t in lim.items():
        v = metrics.get(k)
        if v is not None and not (np.isfinite(v) and v < t):
            parts.append(f"{k}={v:.3g} (limit {t:g})")
    parts += [f"{k} is not finite" for k, v in metrics.items()
              if v is not None and not np.isfinite(v) and k not in lim]
    return "; ".join(parts) or "no ratio to check"


def _blas_threads():
    try:
        from threadpoolctl import threadpool_info

        nums = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
        return max(nums) if nums else None
    except Exception:
        return None


def _die_with_parent() -> None:
    """Linux: have the kernel kill this worker when the parent dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve(conn, init: dict) -> None:
    """Worker-process main loop: receive cells, send back records, forever.

    The parent starts it in its own session with stdout/stderr going to a log
    file, so an impl that prints cannot corrupt the protocol or the progress
    bar, and Ctrl-C reaches only the parent (which then kills the worker).
    """
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import faulthandler

    faulthandler.enable(file=sys.stderr, all_threads=True)
    from factorbench.timing import blas_threads

    limiter = blas_threads(init.get("threads"))
    limiter.__enter__()  # for the worker's whole life
    try:
        for p in init.get("plugins", ()):
            registry.load_plugin(p)
    except Exception as exc:
        conn.send(("fatal", f"{type(exc).__name__}: {exc}"))
        return
    footprint = None
    if init.get("max_memory"):
        try:
            footprint = cap_memory(int(init["max_memory"]))
        except CapTooSmall as exc:
            conn.send(("refused", str(exc)))
            return
    conn.send(("ready", {"pid": os.getpid(), "footprint": footprint}))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        cell, options = msg
        try:
            rec = run_cell(cell, options)
        except MemoryError as exc:  # raised while building the record itself
            rec = resolved_record(cell, "crashed", oom_message(exc))
        except BaseException as exc:  # SystemExit from an impl, or a harness bug
            rec = resolved_record(cell, "error", f"{type(exc).__name__} escaped the cell: {exc}")
            traceback.print_exc()
        conn.send(("record", rec))
        if rec["status"] == "crashed":  # out of memory: this heap is not to be trusted
            return


class CapTooSmall(ValueError):
    """The --max-memory cap leaves a worker no room to run a cell."""


def address_space() -> int | None:
    """Virtual memory this process holds now (bytes; Linux ``VmSize``), or None."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _start_blas() -> None:
    """Small BLAS and LAPACK calls, so that numpy's and scipy's thread pools reserve their
    buffers before the address space is capped (a few milliseconds)."""
    import scipy.linalg

    big = np.full((256, 256), 0.01) + np.eye(256)  # large enough for threaded GEMM
    small = big[:32, :32]
    for dtype in (np.float64, np.complex128):
        y = big.astype(dtype)
        _ = y @ y
        scipy.linalg.blas.get_blas_funcs("gemm", (y,))(1.0, y, y)
        x = small.astype(dtype)
        scipy.linalg.lu_factor(x)
        np.linalg.svd(x)
        scipy.linalg.svd(x)


def cap_memory(limit: int) -> int | None:
    """Cap this process's virtual address space at ``limit`` bytes (``RLIMIT_AS``).

    The BLAS thread pools are started first and the address space they leave
    behind is measured: a cap that does not exceed it by
    :data:`MEMORY_HEADROOM` raises :class:`CapTooSmall` instead of giving
    every cell an immediate out-of-memory crash.  Children the impl starts
    inherit the cap.  Returns the idle footprint (bytes) when it is known.
    """
    global _MAX_MEMORY
    from factorbench.spec import format_memory

    try:
        import resource
    except ImportError:
        raise CapTooSmall("--max-memory needs a POSIX system (resource.setrlimit)") from None
    _start_blas()
    footprint = address_space()
    if footprint is not None and limit < footprint + MEMORY_HEADROOM:
        need = footprint + MEMORY_HEADROOM
        raise CapTooSmall(
            f"--max-memory {format_memory(limit)} is too small: a worker holds "
            f"{format_memory(footprint)} of virtual address space at idle (Python, numpy, "
            f"scipy and the BLAS thread buffers); give at least {format_memory(need)}, "
            "or fewer BLAS threads (OPENBLAS_NUM_THREADS)")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OverflowError, OSError) as exc:
        raise CapTooSmall(f"--max-memory {format_memory(limit)} cannot be set: {exc}") from None
    _MAX_MEMORY = limit
    return footprint


if __name__ == "__main__":
    from multiprocessing.connection import Connection

    serve(Connection(int(sys.argv[1])), json.loads(sys.argv[2]))
