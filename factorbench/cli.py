"""Command-line interface (design section 8): parse, call, print.

Every user error (unknown name, malformed range, kappa < 1, missing or
foreign database, ...) ends with ONE line on stderr and exit status 2; no
traceback.  Ctrl-C (or SIGTERM) during a run marks it interrupted, keeps every
finished cell and exits with 130.

A new run whose grid is huge (more than ``CONFIRM_CELLS`` cells, or an
estimated duration above ``CONFIRM_SECONDS``, see
:func:`factorbench.sweep.estimate`) asks ``Proceed? [y/N]`` on a terminal and
is refused (exit 2) elsewhere, unless ``--yes`` is given.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A user-input error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise UsageError(f"{self.prog}: {message}")


def _add_db(p):
    p.add_argument("--db", help="results database (default $FACTORBENCH_DB or "
                                "results/factorbench.sqlite)")


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="factorbench",
                 description="Benchmark and accuracy harness for dense matrix factorizations.")
    ap.add_argument("--version", action="store_true", help="print the version and exit")
    sub = ap.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("list", help="implementations, availability and reasons")
    p.add_argument("--op", help="only this op")
    p.add_argument("--plugin", action="append", default=[], help="module or .py file of impls")

    p = sub.add_parser("run", help="run (or resume) a sweep")
    p.add_argument("--preset", default=None,
                   help="quick | standard | full | blas3 | randomized (default quick)")
    p.add_argument("--ops", help="comma list of ops")
    p.add_argument("--impls", help="comma list of impl ids (lu/lapack) or names (lapack)")
    p.add_argument("--kinds", help="matrix families, e.g. randsvd,randsvd:5,spd,wilkinson")
    p.add_argument("--sizes", help="n values, e.g. 64:4096:x2 or 100,200")
    p.add_argument("--kappas", help="condition numbers, e.g. 1e0:1e16:x100")
    p.add_argument("--dtypes", help="comma list: float64,float32,complex128,complex64")
    p.add_argument("--seeds", type=int, help="matrices per grid point")
    p.add_argument("--aspect", type=float, help="m/n for rectangular ops (>= 1)")
    p.add_argument("--rank", type=int, help="target rank k (lowrank)")
    p.add_argument("--residual", type=float,
                   help="lstsq: ||r|| / ||A x|| of the right-hand sides, r orthogonal to "
                        "range(A) (default 0: consistent)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2",
                   help="sweep an impl parameter")
    p.add_argument("--timeout", type=float, help="seconds per cell before it is killed")
    p.add_argument("--min-time", type=float, help="timed seconds per cell (adaptive repeats)")
    p.add_argument("--accuracy-only", action="store_true", default=None,
                   help="call each impl once: metrics and that call's wall time, no timed "
                        "repeats (same cell keys as a timed run)")
    p.add_argument("--max-n", type=int, help="override the impls' max_n caps")
    p.add_argument("--threshold", type=float, help="pass threshold for the ratios (30)")
    p.add_argument("--executor", default="serial",
                   help="serial | process | dask (a dask.distributed cluster: --scheduler, "
                        "or a LocalCluster of --jobs workers)")
    p.add_argument("--jobs", type=int,
                   help="workers of the process executor or of the dask LocalCluster "
                        "(default: one per core)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of a running Dask scheduler (tcp://host:8786) for "
                        "--executor dask")
    p.add_argument("--threads", type=int, help="BLAS threads (default: library default)")
    p.add_argument("--max-memory", metavar="SIZE",
                   help="cap each CPU worker's virtual address space (RLIMIT_AS), e.g. 4G, "
                        "512M, 2.5GiB; a cell that allocates beyond it is recorded as crashed "
                        "(out of memory) and the worker replaced. The cap counts address "
                        "space, not resident memory: it must leave room for what a worker "
                        "holds at idle (Python, numpy, scipy and the BLAS libraries' "
                        "per-thread buffers: about 340 MiB with 2 BLAS threads, 1.5 GiB with "
                        "16); a cap below that is refused. At least 256 MiB")
    p.add_argument("-y", "--yes", action="store_true",
                   help="start a huge sweep (over 100,000 cells or an estimated day) "
                        "without asking")
    _add_db(p)
    p.add_argument("--label", help="label of the run (shown in reports)")
    p.add_argument("--resume", nargs="?", const="latest", metavar="RUN_ID",
                   help="continue an unfinished run (default: the latest)")
    p.add_argument("--plugin", action="append", default=[], help="module or .py file of impls")
    p.add_argument("--report", nargs="?", const="", metavar="PATH",
                   help="write an HTML report when the run ends")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("runs", help="list the runs in the database")
    _add_db(p)

    p = sub.add_parser("report", help="self-contained HTML report of runs")
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="default: the latest run")
    _add_db(p)
    p.add_argument("-o", "--output", help="HTML file (default reports/run-ID.html)")
    p.add_argument("--throughput", action="store_true",
                   help="also print each impl's best GFLOP/s, peak fraction and ratio to "
                        "the fastest library impl, per op, dtype and size")
    p.add_argument("--tradeoff", action="store_true",
                   help="also print, where a randomized or peer impl ran, every impl's time, "
                        "speedup over the deterministic driver, accuracy and Pareto front")

    p = sub.add_parser("compare", help="compare two runs: speed and accuracy, can gate CI")
    p.add_argument("base", metavar="BASE", help="run id of the baseline")
    p.add_argument("head", metavar="HEAD", help="run id to judge against it")
    _add_db(p)
    p.add_argument("--base-db", help="database holding BASE (default: --db)")
    p.add_argument("-o", "--output", help="HTML file (default reports/compare-BASE-HEAD.html)")
    p.add_argument("--fail-slower", type=float, metavar="PCT",
                   help="exit 1 when a cell is significantly slower by more than PCT percent")
    p.add_argument("--fail-less-accurate", type=float, metavar="FACTOR",
                   help="exit 1 when an accuracy ratio grew by more than FACTOR, "
                        "or a cell went from ok to failed/error/crashed")
    p.add_argument("--across-hosts", action="store_true",
                   help="compare the timings of cells that ran on different hosts of a "
                        "cluster (by default they are n/a)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="significance level after Benjamini-Hochberg correction (0.05)")
    p.add_argument("--min-effect", type=float, default=10.0, metavar="PCT",
                   help="smallest noise floor: significant changes below PCT percent, or "
                        "below 3 robust standard deviations of the run-to-run change "
                        "across cells, count as unchanged (10)")
    p.add_argument("--limit", type=int, default=40, help="rows per table in the terminal (40)")

    p = sub.add_parser("recommend", help="fastest implementations that meet an accuracy bound")
    p.add_argument("--op", required=True, help="operation, e.g. lu, solve, qr, lstsq")
    p.add_argument("--n", required=True, type=float, help="problem size n")
    p.add_argument("--kappa", type=float, help="condition number (default: every recorded one)")
    p.add_argument("--dtype", help="working precision (default float64)")
    p.add_argument("--kind", help="matrix family (default: every family recorded)")
    p.add_argument("--max-backward-ratio", type=float, metavar="R",
                   help="bound on backward error / (max(m, n) u) (default: the run's threshold)")
    p.add_argument("--run", metavar="RUN_ID", help="run to answer from (default: the latest "
                                                   "run with cells of the op)")
    _add_db(p)
    p.add_argument("--format", default="text", help="text | json")

    p = sub.add_parser("export", help="export the cells of a run")
    p.add_argument("run_id", nargs="?", metavar="RUN_ID", help="default: the latest run")
    _add_db(p)
    p.add_argument("--format", default="csv", help="csv | parquet")
    p.add_argument("-o", "--output", required=True, help="output file")
    return ap


def _db(args):
    from factorbench.store import default_db_path

    return Path(args.db) if args.db else default_db_path()


def _run_id(text) -> int:
    try:
        v = int(text)
    except (TypeError, ValueError):
        raise UsageError(f"run id must be an integer, got {text!r}") from None
    if v < 1:
        raise UsageError(f"run id must be >= 1, got {v}")
    return v


# -- list -----------------------------------------------------------------
def cmd_list(args) -> int:
    from factorbench import impls as registry

    for p in args.plugin:
        registry.load_plugin(p)
    rows = registry.impls(args.op)
    head = ("impl", "backend", "family", "device", "dtypes", "max_n", "stable", "available")
    table = [head]
    for i in rows:
        ok, why = i.availability()
        table.append((i.id, i.backend, i.family, i.device, ",".join(i.dtypes),
                      str(i.max_n or "-"), "yes" if i.stable else "no", "yes" if ok else why))
    widths = [max(len(r[c]) for r in table) for c in range(len(head) - 1)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1])
    print(f"\n{len(rows)} implementations, "
          f"{sum(i.availability()[0] for i in rows)} available")
    return 0


# -- run --------------------------------------------------------------------
_SELECTORS = ("preset", "ops", "impls", "kinds", "sizes", "kappas", "dtypes", "seeds", "aspect",
              "rank", "timeout", "min_time", "max_n", "threshold", "threads", "max_memory",
              "residual", "accuracy_only")


def _spec(args):
    from factorbench.impls import OPS
    from factorbench.spec import parse_list, parse_memory, parse_param, parse_range, preset

    spec = preset(args.preset or "quick")
    if args.ops is not None:
        spec.ops = parse_list(args.ops, OPS, "op")
    if args.impls is not None:
        spec.impls = [t.strip() for t in args.impls.split(",") if t.strip()]
        if not spec.impls:
            raise UsageError("empty --impls list")
    # a value given for the whole sweep replaces the preset's per-op values too
    for name in ("kinds", "sizes", "kappas", "aspect", "rank"):
        if getattr(args, name) is not None:
            spec.clear_per_op(name)
    if args.kinds is not None:
        spec.kinds = [t.strip() for t in args.kinds.split(",")]
        if not any(spec.kinds):
            raise UsageError("empty --kinds list")
    if args.sizes is not None:
        spec.sizes = parse_range(args.sizes, integer=True, minimum=1, what="size")
    if args.kappas is not None:
        spec.kappas = parse_range(args.kappas, integer=False, minimum=1, what="kappa")
    if args.dtypes is not None:
        from factorbench.accuracy.precision import PRECISIONS

        spec.dtypes = parse_list(args.dtypes, PRECISIONS, "dtype")
    for name in ("seeds", "aspect", "rank", "timeout", "min_time", "max_n", "threshold",
                 "threads", "residual", "accuracy_only"):
        v = getattr(args, name)
        if v is not None:
            setattr(spec, name, v)
    for text in args.param:
        k, vals = parse_param(text)
        spec.params[k] = vals
    if args.max_memory is not None:
        spec.max_memory = parse_memory(args.max_memory)
    spec.plugins = [str(Path(p).resolve()) if p.endswith(".py") else p for p in args.plugin]
    return spec.validate()


def cmd_run(args) -> int:
    from factorbench.store import Store
    from factorbench.sweep import Interrupted, estimate, run_sweep

    if args.executor not in ("serial", "process", "dask"):
        raise UsageError(f"unknown executor {args.executor!r} (choose serial, process or dask)")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be >= 1")
    if args.scheduler is not None and args.executor != "dask":
        raise UsageError("--scheduler needs --executor dask")
    if args.scheduler is not None and args.jobs is not None:
        raise UsageError("--jobs sizes a LocalCluster; a running Dask cluster has its own "
                         "workers (drop --jobs or --scheduler)")
    if args.executor == "dask" and args.max_memory is not None:
        raise UsageError("--max-memory caps the serial and process executors' workers; Dask "
                         "workers have their own memory limit (dask worker --memory-limit)")
    resume = None
    if args.resume is not None:
        given = [s for s in _SELECTORS if getattr(args, s) is not None] + (
            ["param"] if args.param else [])
        if given:
            flag = given[0].replace("_", "-")
            raise UsageError(f"--resume continues the stored sweep; drop --{flag}")
        spec = None
    else:
        spec = _spec(args)
        est = estimate(spec)  # validates names, kinds and params before anything is written
        if est.cells == 0:
            raise UsageError("the selection expands to no cell")
        if est.needs_confirmation and not args.yes:
            _confirm(est)
    store = Store(_db(args))
    if args.resume is not None:
        resume = store.run()["run_id"] if args.resume == "latest" else _run_id(args.resume)
        store.run(resume)  # exists?
    started = {}
    try:
        run_id, counts = run_sweep(
            spec, store, executor=args.executor, jobs=args.jobs, scheduler=args.scheduler,
            resume=resume,
            label=args.label, argv=sys.argv[1:],
            progress=False if args.no_progress else None,
            on_start=lambda rid: (started.update(id=rid),
                                  print(f"run {rid} -> {store.path}", file=sys.stderr)),
        )
    except Interrupted as exc:
        print(f"run {exc.run_id} interrupted; finished cells are kept "
              f"(continue with: factorbench run --resume {exc.run_id})", file=sys.stderr)
        return EXIT_INTERRUPTED
    total = sum(counts.values())
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    print(f"run {run_id} complete: {total} cells ({summary or 'nothing left to do'})")
    if args.report is not None:
        out = Path(args.report) if args.report else Path("reports") / f"run-{run_id}.html"
        _write_report(store, [run_id], out)
    store.close()
    return 0


def _confirm(est) -> None:
    """Ask before a huge sweep on a terminal; refuse it elsewhere (UsageError)."""
    what = f"this sweep has {est.describe()} (an order of magnitude)"
    if not sys.stdin.isatty():
        raise UsageError(f"{what}; pass --yes to start it")
    print(f"factorbench: {what}", file=sys.stderr)
    print("Proceed? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("not started (pass --yes to start a sweep this large without asking)")


# -- runs / report / export -------------------------------------------------
def cmd_runs(args) -> int:
    from factorbench.store import STATUSES, Store

    with Store(_db(args), readonly=True) as store:
        df = store.runs()
    if df.empty:
        print("no runs")
        return 0
    cols = ["run_id", "label", "status", "created_at", "git_commit", *STATUSES]
    print(df[cols].fillna("").to_string(index=False))
    return 0


def _write_report(store, run_ids, out: Path) -> Path:
    from factorbench.reports import build_report

    runs = store.runs()
    runs = runs[runs["run_id"].isin(run_ids)]
    path = build_report(runs, store.cells(run_ids), out)
    print(f"report -> {path}")
    return path


def cmd_report(args) -> int:
    from factorbench.store import Store

    ids = [_run_id(r) for r in args.run_ids]
    with Store(_db(args), readonly=True) as store:
        ids = ids or [store.run()["run_id"]]
        for r in ids:
            store.run(r)
        name = "run-" + "-".join(map(str, ids)) + ".html"
        _write_report(store, ids, Path(args.output) if args.output else Path("reports") / name)
        if args.throughput:
            from factorbench.reports.throughput import format_throughput, throughput_table

            print(format_throughput(throughput_table(store.cells(ids))), end="")
        if args.tradeoff:
            from factorbench.reports.tradeoff import format_tradeoff, tradeoff_table

            print(format_tradeoff(tradeoff_table(store.cells(ids))), end="")
    return 0


def cmd_export(args) -> int:
    from factorbench.store import Store

    if args.format not in ("csv", "parquet"):
        raise UsageError(f"unknown export format {args.format!r} (choose csv or parquet)")
    rid = _run_id(args.run_id) if args.run_id else None
    with Store(_db(args), readonly=True) as store:
        rid = rid or store.run()["run_id"]
        store.run(rid)
        df = store.cells([rid])
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "csv":
        df.to_csv(out, index=False)
    else:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UsageError("parquet export needs pyarrow (pip install factorbench[parquet])"
                             ) from None
        df.to_parquet(out, index=False)
    print(f"{len(df)} cells of run {rid} -> {out}")
    return 0


# -- compare ------------------------------------------------------------------
def cmd_compare(args) -> int:
    from factorbench.reports.compare import CompareOptions, compare_runs
    from factorbench.reports.compare_render import format_table, render_compare
    from factorbench.store import Store

    base_id, head_id = _run_id(args.base), _run_id(args.head)
    if args.fail_slower is not None and not (0 <= args.fail_slower < float("inf")):
        raise UsageError(f"--fail-slower must be a percentage >= 0, got {args.fail_slower:g}")
    if args.fail_less_accurate is not None and not (1 <= args.fail_less_accurate < float("inf")):
        raise UsageError("--fail-less-accurate must be a factor >= 1, "
                         f"got {args.fail_less_accurate:g}")
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must lie in (0, 1), got {args.alpha:g}")
    if not 0 <= args.min_effect < float("inf"):
        raise UsageError(f"--min-effect must be a percentage >= 0, got {args.min_effect:g}")
    if args.limit < 1:
        raise UsageError("--limit must be >= 1")
    head_db = _db(args)
    base_db = Path(args.base_db) if args.base_db else head_db
    with Store(base_db, readonly=True) as store:
        base_run, base_cells = store.run(base_id), store.cells([base_id])
    with Store(head_db, readonly=True) as store:
        head_run, head_cells = store.run(head_id), store.cells([head_id])
    options = CompareOptions(alpha=args.alpha, min_effect=args.min_effect / 100,
                             fail_slower=args.fail_slower,
                             fail_less_accurate=args.fail_less_accurate,
                             across_hosts=args.across_hosts)
    cmp = compare_runs(base_run, base_cells, head_run, head_cells, options)
    print(format_table(cmp, limit=args.limit))
    default = Path("reports") / f"compare-{base_id}-{head_id}.html"
    out = Path(args.output) if args.output else default
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(render_compare(cmp))
    print(f"comparison -> {out}")
    failures = cmp.gate_failures()
    for line in failures:
        print(f"FAIL: {line}", file=sys.stderr)
    return 1 if failures else 0


# -- recommend ----------------------------------------------------------------
def cmd_recommend(args) -> int:
    from factorbench.accuracy.precision import PRECISIONS
    from factorbench.impls import OPS
    from factorbench.reports.recommend import NoData, recommend
    from factorbench.spec import parse_list
    from factorbench.store import Store

    ops = parse_list(args.op, OPS, "op")
    if len(ops) != 1:
        raise UsageError(f"--op takes one operation, got {args.op!r}")
    op = ops[0]
    if args.dtype is not None and len(parse_list(args.dtype, PRECISIONS, "dtype")) != 1:
        raise UsageError(f"--dtype takes one precision, got {args.dtype!r}")
    if args.kind is not None:
        from factorbench.accuracy.matrices import KINDS

        if len(parse_list(args.kind, KINDS, "matrix kind")) != 1:
            raise UsageError(f"--kind takes one matrix family, got {args.kind!r}")
    if not (args.n > 0 and args.n == args.n and args.n != float("inf")):
        raise UsageError(f"--n must be a positive size, got {args.n:g}")
    if args.kappa is not None and not (1 <= args.kappa < float("inf")):
        raise UsageError(f"--kappa must be a finite number >= 1, got {args.kappa:g}")
    bound = args.max_backward_ratio
    if bound is not None and not (0 < bound < float("inf")):
        raise UsageError(f"--max-backward-ratio must be positive, got {bound:g}")
    if args.format not in ("text", "json"):
        raise UsageError(f"unknown format {args.format!r} (choose text or json)")
    with Store(_db(args), readonly=True) as store:
        run = store.run(_run_id(args.run)) if args.run else _latest_run_with(store, op)
        cells = store.cells([run["run_id"]])
    from factorbench.spec import SweepSpec

    spec = SweepSpec.from_json(run["spec_json"]) if run["spec_json"] else SweepSpec()
    try:
        rec = recommend(cells, op=op, n=args.n, kappa=args.kappa, dtype=args.dtype,
                        kind=args.kind, max_backward_ratio=bound, threshold=spec.threshold,
                        lowrank_threshold=spec.lowrank_threshold)
    except NoData as exc:
        print(f"factorbench: no answer: {exc} (run {run['run_id']})", file=sys.stderr)
        return 1
    from factorbench.reports.recommend import format_recommendation

    if args.format == "json":
        import dataclasses

        out = dataclasses.asdict(rec) | {"best": rec.best and rec.best.impl,
                                         "margin": rec.margin, "clear": rec.clear,
                                         "run": {k: run[k] for k in ("run_id", "label", "host")}}
        print(json.dumps(_json_safe(out), indent=2, default=str))
    else:
        print(format_recommendation(rec, run=run))
    return 0 if rec.best is not None else 1


def _json_safe(value):
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _latest_run_with(store, op: str) -> dict:
    run_id = store.latest_run_with(op)
    if run_id is not None:
        return store.run(run_id)
    raise UsageError(f"{store.path}: no run has cells of {op}")


_COMMANDS = {"list": cmd_list, "run": cmd_run, "runs": cmd_runs, "report": cmd_report,
             "compare": cmd_compare, "recommend": cmd_recommend, "export": cmd_export}


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    """Entry point of the ``factorbench`` command; returns the exit status."""
    from factorbench.impls import RegistryError
    from factorbench.spec import SpecError
    from factorbench.store import StoreError

    try:
        args = _parser().parse_args(argv)
        if args.version:
            from factorbench import __version__

            print(f"factorbench {__version__}")
            return 0
        if not args.command:
            raise UsageError("factorbench: a command is required "
                             "(list, run, runs, report, compare, recommend, export; "
                             "see --help)")
        if args.command == "run":
            signal.signal(signal.SIGTERM, _sigterm)
        return _COMMANDS[args.command](args)
    except (UsageError, SpecError, RegistryError, StoreError) as exc:
        print(f"factorbench: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (OSError, json.JSONDecodeError) as exc:
        print(f"factorbench: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE


def _one_line(exc) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0] if text else text
