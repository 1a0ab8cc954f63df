"""Grid expansion, cell keys, resume and orchestration (design section 7).

A cell is one (op, impl, params, matrix kind/mode, m, n, rank, kappa, dtype,
seed).  Its key is a stable hash of exactly those fields, so a run never holds
two rows for one key and ``--resume`` redoes nothing that finished.

Cells that need no worker (impl unavailable, n above the impl's cap, dtype or
matrix structure the impl does not take) are resolved here and recorded with
their reason; everything else goes to the executor.  The matrix seed of a cell
depends on the matrix fields only, so every impl of an op sees the same matrix
in the same (n, kind, kappa, seed), rounded to each dtype.

:func:`estimate` counts the cells of a spec and guesses the run's duration
without expanding it, so that a grid that would take days is caught before
anything is written.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from factorbench import impls as registry
from factorbench.accuracy.flops import flops
from factorbench.accuracy.matrices import KINDS
from factorbench.accuracy.precision import precision
from factorbench.spec import DEFAULT_ASPECT, DEFAULT_KINDS, SpecError, SweepSpec, parse_kind

__all__ = ["expand", "select_impls", "cell_key", "run_sweep", "Interrupted", "estimate",
           "Estimate", "cell_seconds", "format_duration", "CONFIRM_SECONDS", "CONFIRM_CELLS"]

_STRUCTURE_RANK = {"general": 0, "symmetric": 1, "spd": 2}


class Interrupted(KeyboardInterrupt):
    """The sweep was stopped by the user; the run is marked interrupted."""

    def __init__(self, run_id):
        super().__init__(run_id)
        self.run_id = run_id


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cell_key(fields: dict) -> str:
    """Stable hash of the fields that define a cell (24 hex digits)."""
    return _sha(json.dumps(fields, sort_keys=True, separators=(",", ":")))[:24]


def select_impls(spec: SweepSpec) -> list[registry.Impl]:
    """The implementations a spec selects, validated.

    ``spec.impls`` entries are ids ("lu/lapack") or bare names ("lapack"),
    matching that name in every selected op.
    """
    for p in spec.plugins:
        registry.load_plugin(p)
    pool = [i for op in spec.ops for i in registry.impls(op)]
    if spec.impls is None:
        # Every impl of the ops, less the GPU impls this machine cannot run: a sweep
        # that names no impl expands to the same cells on every machine without a
        # GPU; a GPU impl joins where it can run, and is recorded unavailable only
        # when named (--impls, the gpu preset).
        return [i for i in pool if i.device == "cpu" or i.availability()[0]]
    chosen = []
    names = {i.id for i in pool} | {i.name for i in pool}
    for want in spec.impls:
        hits = [i for i in pool if want in (i.id, i.name)]
        if not hits:
            import difflib

            everything = {i.id for i in registry.impls()}
            if want in everything:
                raise SpecError(f"implementation {want!r} is not of the selected ops "
                                f"({', '.join(spec.ops)})")
            close = difflib.get_close_matches(want, sorted(names | everything), n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise SpecError(f"unknown implementation {want!r}{hint}")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def _kinds_for(op: str, spec: SweepSpec) -> tuple[list[tuple[str, int | None]], bool]:
    if spec.kinds is None:
        return [(k, None) for k in DEFAULT_KINDS[op]], False
    return [parse_kind(k) for k in spec.kinds], True


def _shape(op, kind, n, spec):
    if not registry.OPS[op]["rectangular"] or KINDS[kind].square_only:
        return n, n
    aspect = spec.aspect if spec.aspect is not None else DEFAULT_ASPECT.get(op, 1.0)
    return max(n, round(aspect * n)), n


def _rank(op, kind, n, spec):
    if op != "lowrank" and not KINDS[kind].has_rank:
        return None
    return spec.rank if spec.rank is not None else max(1, min(10, n // 4))


def _params(impl, spec):
    names = sorted(impl.parameters)
    values = [spec.params.get(k, impl.parameters[k]) for k in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def _structure_reason(impl, kind):
    need, have = impl.structure, KINDS[kind].structure
    if _STRUCTURE_RANK[have] >= _STRUCTURE_RANK[need]:
        return None
    return f"{impl.id} needs {need} input; {kind} matrices are {have}"


def expand(spec: SweepSpec) -> list[dict]:
    """Expand a spec into cells (dicts, JSON-safe), smallest n first.

    A cell whose impl cannot run it carries ``resolved = (status, reason)``
    and is recorded without a worker.
    """
    chosen, avail = _selection(spec)
    cells, seen = [], set()
    for g in _groups(spec, chosen):
        kappas = spec.for_op(g.op).kappas if g.info.controls_kappa else [None]
        for kappa, dtype, seed in itertools.product(kappas, spec.dtypes, range(spec.seeds)):
            mfields = {"base_seed": spec.base_seed, "kind": g.kind, "mode": g.mode, "m": g.m,
                       "n": g.n, "rank": g.rank, "kappa": kappa, "seed": seed,
                       "complex": precision(dtype).is_complex}
            mseed = int(_sha(json.dumps(mfields, sort_keys=True))[:32], 16)
            for impl, why in g.impls:
                for params in _params(impl, spec):
                    fields = {"op": g.op, "impl": impl.id, "kind": g.kind, "mode": g.mode,
                              "m": g.m, "n": g.n, "rank": g.rank, "kappa": kappa,
                              "dtype": dtype, "seed": seed, "params": params,
                              "base_seed": spec.base_seed}
                    if g.op == "lstsq" and spec.residual:
                        # only when set, so the keys of consistent problems never change
                        fields["residual"] = float(spec.residual)
                    key = cell_key(fields)
                    if key in seen:
                        continue
                    seen.add(key)
                    cell = dict(fields, key=key, matrix_seed=mseed, resolved=None)
                    cell["resolved"] = _resolve(impl, cell, spec, avail, why)
                    cells.append(cell)
    return cells


@dataclass(frozen=True)
class _Group:
    """Cells that share one matrix shape: an (n, op, family, mode) of the grid
    with its impls and, per impl, why it is skipped (None: it runs)."""

    op: str
    kind: str
    mode: int | None
    info: object
    m: int
    n: int
    rank: int | None
    impls: tuple


def _groups(spec: SweepSpec, chosen) -> Iterator[_Group]:
    """The grid's (n, op, family) groups, smallest n first; the one place that
    decides shapes, ranks and skips, for :func:`expand` and :func:`estimate`."""
    for n in sorted({n for op in spec.ops for n in spec.for_op(op).sizes}):
        for op in spec.ops:
            op_impls = [i for i in chosen if i.op == op]
            if not op_impls or n not in spec.for_op(op).sizes:
                continue
            kinds, explicit = _kinds_for(op, spec.for_op(op))
            for kind, mode in kinds:
                info = KINDS[kind]
                if info.has_modes and mode is None:
                    mode = 3
                m, nn = _shape(op, kind, n, spec.for_op(op))
                rank = _rank(op, kind, n, spec.for_op(op))
                too_big = (f"rank {rank} exceeds min(m, n) = {min(m, nn)}"
                           if rank is not None and rank > min(m, nn) else None)
                impls = []
                for impl in op_impls:
                    why = _structure_reason(impl, kind)
                    if why and not explicit:
                        continue
                    impls.append((impl, why or too_big))
                yield _Group(op, kind, mode, info, m, nn, rank, tuple(impls))


def _selection(spec: SweepSpec):
    """The validated impls of a spec and their availability."""
    spec.validate()
    chosen = select_impls(spec)
    # A name no registered impl takes is a typo; one that only unselected impls
    # take is harmless (a preset sets "block" for every op it may be run with).
    known = {k for i in registry.impls() for k in i.parameters}
    unknown = set(spec.params) - known
    if unknown:
        raise SpecError(f"--param {sorted(unknown)[0]!r} is not a parameter of any impl"
                        f"{registry._did_you_mean(sorted(unknown)[0], known)}")
    return chosen, {i.id: i.availability() for i in chosen}


# -- duration estimate ------------------------------------------------------------
#: A run estimated longer than this (seconds) is not started without confirmation.
CONFIRM_SECONDS = 24 * 3600.0
#: Nor is one with more cells than this.
CONFIRM_CELLS = 100_000
#: Deliberately low rates (flop/s) of the estimate: textbook impls are Python
#: loops over numpy calls; every other impl is taken as a modest library call.
TEXTBOOK_RATE = 1e9
LIBRARY_RATE = 20e9
#: Work (in units of m n^2 flops, at LIBRARY_RATE) of a cell's harness side:
#: matrix generation, the SVD behind kappa_actual, the residual products.
ACCURACY_WORK = 8.0
#: Fixed seconds per cell: messages to the worker, one commit to the store.
CELL_OVERHEAD_S = 0.02


@dataclass(frozen=True)
class Estimate:
    """Cell count and order-of-magnitude duration of a sweep (see :func:`estimate`)."""

    cells: int
    runnable: int
    seconds: float

    @property
    def needs_confirmation(self) -> bool:
        return self.seconds > CONFIRM_SECONDS or self.cells > CONFIRM_CELLS

    def describe(self) -> str:
        return (f"{self.cells:,} cells ({self.runnable:,} to run), estimated at "
                f"{format_duration(self.seconds)}")


def format_duration(seconds: float) -> str:
    """``"about 3 s"``, ``"about 12 min"``, ``"about 5.2 h"``, ``"about 45 days"``."""
    if not seconds < 1000 * 365 * 86400:  # nan, inf or absurd
        return "more than 1000 years"
    # (unit, its seconds, the least seconds shown in it)
    for unit, size, least in (("years", 365 * 86400, 2 * 365 * 86400),
                              ("days", 86400, 2 * 86400), ("h", 3600, 3600), ("min", 60, 60)):
        if seconds >= least:
            return f"about {_round(seconds / size)} {unit}"
    return f"about {_round(seconds)} s"


def _round(value: float) -> str:
    return f"{value:.2g}" if value < 10 else f"{value:,.0f}"


def cell_seconds(impl, op: str, m: int, n: int, dtype: str, spec: SweepSpec) -> float:
    """Order-of-magnitude seconds of one runnable cell (a guess, not a promise).

    ``t_call`` = nominal flops (:func:`factorbench.accuracy.flops.flops`, or
    ``10 m n^2`` for ops without a count: svd, eigh, lowrank; x4 complex) at
    :data:`TEXTBOOK_RATE` for textbook impls and :data:`LIBRARY_RATE` for the
    others.  The cell costs the first call, the timed repeats
    ``max(min_time, 3 t_call)`` (at most ``max_repeats`` calls, and no more
    than ``max_time`` once one repeat is made; none in an accuracy-only
    run), the harness's own work
    (``ACCURACY_WORK m n^2`` flops at the library rate: matrix, kappa_actual,
    residuals) and :data:`CELL_OVERHEAD_S`, never more than the timeout.
    """
    cplx = precision(dtype).is_complex
    work = flops(op, m, n, complex_=cplx)
    if work is None:
        work = 10.0 * m * n * n * (4 if cplx else 1)
    t_call = work / (TEXTBOOK_RATE if impl.family == "textbook" else LIBRARY_RATE)
    repeats = 0.0 if spec.accuracy_only else min(
        max(spec.min_time, 3 * t_call), spec.max_repeats * t_call, max(spec.max_time, t_call))
    harness = ACCURACY_WORK * m * n * n * (4 if cplx else 1) / LIBRARY_RATE
    return min(t_call + repeats + harness + CELL_OVERHEAD_S, spec.timeout)


def estimate(spec: SweepSpec) -> Estimate:
    """Count the cells of ``spec`` and estimate the run's duration, without expanding it.

    Validates the spec like :func:`expand` (same errors) and counts exactly the
    cells it would make, but works per (op, impl, matrix shape, params) group,
    so a grid of millions of cells is counted in well under a second.  The
    seconds are :func:`cell_seconds` summed over the cells that would run
    (skipped and unavailable ones cost nothing): an order of magnitude.
    """
    chosen, avail = _selection(spec)
    total, runnable, seconds = 0, 0, 0.0
    dtypes = list(dict.fromkeys(spec.dtypes))
    seen = set()
    for g in _groups(spec, chosen):
        kappas = len(set(spec.for_op(g.op).kappas)) if g.info.controls_kappa else 1
        per_dtype = kappas * spec.seeds
        for impl, why in g.impls:
            for params in _params(impl, spec):
                group = (g.op, impl.id, g.kind, g.mode, g.m, g.n, g.rank,
                         json.dumps(params, sort_keys=True))
                if group in seen:
                    continue
                seen.add(group)
                for dtype in dtypes:
                    total += per_dtype
                    if _resolve(impl, {"dtype": dtype, "n": g.n}, spec, avail, why) is None:
                        runnable += per_dtype
                        seconds += per_dtype * cell_seconds(impl, g.op, g.m, g.n, dtype, spec)
    return Estimate(total, runnable, seconds)


def _resolve(impl, cell, spec, avail, skip_reason):
    ok, reason = avail[impl.id]
    if not ok:
        return ("unavailable", reason)
    if skip_reason:
        return ("skipped", skip_reason)
    if spec.max_memory and impl.device != "cpu":
        return ("skipped", f"{impl.id} runs on the {impl.device}, which --max-memory does not "
                           "cover (CUDA reserves more address space than any such cap)")
    if cell["dtype"] not in impl.dtypes:
        return ("skipped", f"{impl.id} does not support {cell['dtype']}")
    cap = spec.max_n if spec.max_n is not None else impl.max_n
    if cap is not None and cell["n"] > cap:
        return ("skipped", f"n={cell['n']} is above max_n={cap} of {impl.id} "
                           "(override with --max-n)")
    return None


def _machine_info(spec, *, gemm: bool = True):
    """This machine's fingerprint, versions, GEMM ceilings (when ``gemm``) and commit.

    Accuracy-only runs record no GFLOP/s, so they measure no ceiling; dask runs
    measure theirs on each worker host (:func:`_cluster_hosts`).
    """
    from factorbench import machine
    from factorbench.timing import blas_threads

    sizes = [n for op in spec.ops for n in spec.for_op(op).sizes]
    with blas_threads(spec.threads):
        peaks = machine.gemm_peaks(spec.dtypes, n=machine.gemm_size(sizes)) if gemm else {}
        fp = machine.fingerprint(threads=spec.threads)
    # GPU cells are normalised by the GPU's own ceiling ("gpu:float64"), probed
    # only when the run has a GPU impl that can run here
    if gemm and any(i.device == "gpu" and i.availability()[0] for i in select_impls(spec)):
        peaks.update(machine.gpu_gemm_peaks(spec.dtypes, n=machine.gpu_gemm_size(sizes)))
    return fp, machine.versions(), peaks, machine.git_commit()


def run_sweep(spec: SweepSpec, store, *, executor: str = "serial", jobs: int | None = None,
              scheduler: str | None = None, resume: int | None = None,
              label: str | None = None, argv=(), progress: bool | None = None,
              on_start=None) -> tuple[int, Counter]:
    """Run (or resume) a sweep, committing each finished cell to ``store``.

    Parameters
    ----------
    spec : SweepSpec
        Ignored when resuming: the stored spec of run ``resume`` is used.
    store : factorbench.store.Store
    executor : {"serial", "process", "dask"}
    jobs : int, optional
        Workers of the process executor or of the dask executor's LocalCluster
        (default: CPU count).
    scheduler : str, optional
        Address of a running Dask scheduler (dask executor).
    resume : int, optional
        Run id to continue; finished cells are not redone.
    on_start : callable, optional
        Called with the run id once the run is registered.

    Returns
    -------
    run_id, Counter of statuses written by this call

    Raises
    ------
    SpecError
        The executor cannot start (a Dask scheduler out of reach, a memory cap
        too small): nothing is written.
    Interrupted
        On Ctrl-C/SIGTERM; the run is marked ``interrupted`` and every
        finished cell is kept.
    """
    from factorbench.cluster import ClusterError
    from factorbench.executors import check_memory_cap, make_executor

    run = None
    if resume is not None:
        run = store.run(resume)
        if run["status"] == "complete":
            return run["run_id"], Counter()
        _check_resumable(run)
        spec = SweepSpec.from_json(run["spec_json"])
    else:
        spec.validate()
    init = _init(spec)
    if executor != "dask":
        check_memory_cap(init)  # a cap too small for a worker: refused, nothing written
    run_id = None
    try:
        with make_executor(executor, init=init, timeout=spec.timeout, jobs=jobs,
                           scheduler=scheduler) as ex:
            if run is not None:
                run_id = run["run_id"]
                gemm = json.loads(run["gemm_gflops_json"] or "{}")
                fields = {"status": "running", "finished_at": None, "pid": os.getpid()}
                if executor == "dask":
                    machine = json.loads(run["machine_json"] or "{}")
                    # hosts met before keep the ceilings their cells were judged by
                    machine["hosts"] = {**_cluster_hosts(ex, spec), **machine.get("hosts", {})}
                    fields["machine_json"] = json.dumps(machine)
                store.set_run(run_id, **fields)
            else:
                cluster = executor == "dask"
                fp, versions, gemm, commit = _machine_info(
                    spec, gemm=not (cluster or spec.accuracy_only))
                if cluster:
                    fp["hosts"] = _cluster_hosts(ex, spec)
                    if len(fp["hosts"]) == 1:  # the run's one ceiling is its one host's
                        gemm = dict(next(iter(fp["hosts"].values())).get("gemm_gflops") or {})
                run_id = store.begin_run(label=label, argv=argv, spec=spec.to_json(),
                                         machine=fp, versions=versions, gemm=gemm,
                                         git_commit=commit)
            if on_start:
                on_start(run_id)
            counts = _run_cells(spec, store, run_id, ex, executor, gemm, progress)
    except ClusterError as exc:
        if run_id is None:
            raise SpecError(str(exc)) from None
        raise SpecError(f"{exc}; run {run_id} interrupted, finished cells kept (continue "
                        f"with: factorbench run --resume {run_id})") from None
    store.finish_run(run_id, "complete")
    return run_id, counts


def _cluster_hosts(ex, spec: SweepSpec) -> dict:
    """The dask executor's hosts, with GEMM ceilings unless the run is accuracy-only."""
    from factorbench import machine

    n = None
    if not spec.accuracy_only:
        n = machine.gemm_size([n for op in spec.ops for n in spec.for_op(op).sizes])
    return ex.hosts(spec.dtypes, gemm_n=n)


def _run_cells(spec, store, run_id, ex, executor, gemm, progress) -> Counter:
    """Every cell of the run not yet recorded, each committed as it finishes."""
    from factorbench.worker import resolved_record

    counts: Counter = Counter()
    try:
        cells = expand(spec)
        done = store.done_keys(run_id)
        pending = [c for c in cells if c["key"] not in done]
        for c in pending:
            if c["resolved"]:
                rec = resolved_record(c, *c["resolved"])
                store.write_cell(run_id, rec)
                counts[rec["status"]] += 1
        todo = [c for c in pending if not c["resolved"]]
        options = {"min_time": spec.min_time, "max_repeats": spec.max_repeats,
                   "max_time": spec.max_time, "threshold": spec.threshold,
                   "lowrank_threshold": spec.lowrank_threshold, "gemm": gemm,
                   "concurrent": executor == "process", "accuracy_only": spec.accuracy_only}
        if executor == "dask":
            # each cell by its own host's ceiling; none for a host without one
            hosts = json.loads(store.run(run_id)["machine_json"] or "{}").get("hosts", {})
            options["gemm"] = {}
            options["gemm_by_host"] = {h: v["gemm_gflops"] for h, v in hosts.items()
                                       if v.get("gemm_gflops")}
        for rec in _progress(ex.run(todo, options), len(todo), progress):
            store.write_cell(run_id, rec)
            counts[rec["status"]] += 1
    except KeyboardInterrupt:
        store.finish_run(run_id, "interrupted")
        raise Interrupted(run_id) from None
    except BaseException:
        store.finish_run(run_id, "interrupted")
        raise
    return counts


def _init(spec: SweepSpec) -> dict:
    """What every worker of the run starts with."""
    return {"plugins": list(spec.plugins), "threads": spec.threads,
            "max_memory": spec.max_memory}


def _check_resumable(run) -> None:
    """Refuse to resume a run another live process is running, or one from another host.

    Timings of one run must come from one machine (its GEMM ceiling is stored
    with it), and two processes working on one run would both time cells at
    once without knowing it.
    """
    host = socket.gethostname()
    if run.get("host") and run["host"] != host:
        raise SpecError(f"run {run['run_id']} was made on host {run['host']!r}; resuming it "
                        f"on {host!r} would mix two machines' timings (start a new run)")
    pid = run.get("pid")
    if run["status"] == "running" and pid and pid != os.getpid() and _is_factorbench(pid):
        raise SpecError(f"run {run['run_id']} is still running (pid {pid})")


def _is_factorbench(pid: int) -> bool:
    """Whether a live process ``pid`` is a factorbench run (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"factorbench" in fh.read()
    except OSError:
        return True


def _progress(it, total, enabled):
    from tqdm import tqdm

    return tqdm(it, total=total, unit="cell", disable=None if enabled is None else not enabled,
                dynamic_ncols=True, leave=False)
