"""Command-line interface (design section 8): parse, call, print.

Every user error (unknown name, malformed range, kappa < 1, missing or
foreign database, ...) ends with ONE line on stderr and exit status 2; no
traceback.  Ctrl-C (or SIGTERM) during a run marks it interrupted, keeps every
finished cell and exits with 130.
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
    p.add_argument("--preset", default=None, help="quick | standard | full (default quick)")
    p.add_argument("--ops", help="comma list of ops")
    p.add_argument("--impls", help="comma list of impl ids (lu/lapack) or names (lapack)")
    p.add_argument("--kinds", help="matrix families, e.g. randsvd,randsvd:5,spd,wilkinson")
    p.add_argument("--sizes", help="n values, e.g. 64:4096:x2 or 100,200")
    p.add_argument("--kappas", help="condition numbers, e.g. 1e0:1e16:x100")
    p.add_argument("--dtypes", help="comma list: float64,float32,complex128,complex64")
    p.add_argument("--seeds", type=int, help="matrices per grid point")
    p.add_argument("--aspect", type=float, help="m/n for rectangular ops (>= 1)")
    p.add_argument("--rank", type=int, help="target rank k (lowrank)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2",
                   help="sweep an impl parameter")
    p.add_argument("--timeout", type=float, help="seconds per cell before it is killed")
    p.add_argument("--min-time", type=float, help="timed seconds per cell (adaptive repeats)")
    p.add_argument("--max-n", type=int, help="override the impls' max_n caps")
    p.add_argument("--threshold", type=float, help="pass threshold for the ratios (30)")
    p.add_argument("--executor", default="serial", help="serial | process")
    p.add_argument("--jobs", type=int, help="workers of the process executor")
    p.add_argument("--threads", type=int, help="BLAS threads (default: library default)")
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
              "rank", "timeout", "min_time", "max_n", "threshold", "threads")


def _spec(args):
    from factorbench.impls import OPS
    from factorbench.spec import parse_list, parse_param, parse_range, preset

    spec = preset(args.preset or "quick")
    if args.ops is not None:
        spec.ops = parse_list(args.ops, OPS, "op")
    if args.impls is not None:
        spec.impls = [t.strip() for t in args.impls.split(",") if t.strip()]
        if not spec.impls:
            raise UsageError("empty --impls list")
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
                 "threads"):
        v = getattr(args, name)
        if v is not None:
            setattr(spec, name, v)
    for text in args.param:
        k, vals = parse_param(text)
        spec.params[k] = vals
    spec.plugins = [str(Path(p).resolve()) if p.endswith(".py") else p for p in args.plugin]
    return spec.validate()


def cmd_run(args) -> int:
    from factorbench.store import Store
    from factorbench.sweep import Interrupted, expand, run_sweep

    if args.executor not in ("serial", "process"):
        raise UsageError(f"unknown executor {args.executor!r} (choose serial or process)")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be >= 1")
    resume = None
    if args.resume is not None:
        given = [s for s in _SELECTORS if getattr(args, s) is not None] + (
            ["param"] if args.param else [])
        if given:
            raise UsageError(f"--resume continues the stored sweep; drop --{given[0]}")
        spec = None
    else:
        spec = _spec(args)
        n = len(expand(spec))  # validates names, kinds and params before anything is written
        if n == 0:
            raise UsageError("the selection expands to no cell")
    store = Store(_db(args))
    if args.resume is not None:
        resume = store.run()["run_id"] if args.resume == "latest" else _run_id(args.resume)
        store.run(resume)  # exists?
    started = {}
    try:
        run_id, counts = run_sweep(
            spec, store, executor=args.executor, jobs=args.jobs, resume=resume,
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


_COMMANDS = {"list": cmd_list, "run": cmd_run, "runs": cmd_runs, "report": cmd_report,
             "export": cmd_export}


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
                             "(list, run, runs, report, export; see --help)")
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
