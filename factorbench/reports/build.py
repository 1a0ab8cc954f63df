"""Self-contained HTML report of one or more runs (design section 9).

The report is a single HTML file: CSS inline, figures as inline SVG from
matplotlib (:mod:`factorbench.reports.plots` and its siblings), the raw cells
as a CSV ``data:`` link, one small inline script that sorts tables on a
header click, and no network reference, so it can be mailed, archived as a
CI artifact or opened offline.  Every table reads fine with scripts off.

This module only shapes data for the template: it normalises the ``runs``
and ``cells`` frames read from the store, formats numbers, and hands plain
dicts to ``templates/report.html.j2``.  Jinja2 autoescapes everything; the
only markup marked safe is matplotlib's SVG.  The output depends on nothing
but its inputs (no current time, fixed SVG hash salt), so rendering the same
data twice gives byte-identical HTML and reports can be diffed.
"""

from __future__ import annotations

import json
import math
import pathlib
import shlex
import urllib.parse
from collections.abc import Mapping

import numpy as np
import pandas as pd
from markupsafe import Markup

from factorbench.accuracy.metrics import LOWRANK_THRESHOLD
from factorbench.impls import OPS
from factorbench.reports import accuracy_plots, decision_plots, plots
from factorbench.reports._format import _DASH, _finite, _fmt_g, environment
from factorbench.reports._format import _fmt_time_ci as _fmt_time_ci_units
from factorbench.reports._frames import loads as _loads
from factorbench.reports._frames import variants as _variants
from factorbench.reports.figure import palette
from factorbench.reports.gpu import gpu_section, gpu_text
from factorbench.reports.recommend import recommendation_grid
from factorbench.reports.throughput import throughput_table
from factorbench.reports.tradeoff import COLUMN_LABELS as _TRADEOFF_LABELS
from factorbench.reports.tradeoff import (
    accuracy_columns,
    format_value,
    tradeoff_groups,
    tradeoff_table,
)
from factorbench.store import CELL_COLUMNS, STATUSES

__all__ = ["OP_ORDER", "STATUS_ORDER", "build_report", "render_report"]

#: Order of the per-op sections; ops outside this list follow, sorted.
OP_ORDER = tuple(OPS)

#: Order in which cell statuses are counted.
STATUS_ORDER = STATUSES

# Cells that did not produce a passing result for a reason worth reading one
# by one; skipped/unavailable cells are expected and only counted by reason.
_NOT_RUN = ("skipped", "unavailable")

_TEMPLATES = pathlib.Path(__file__).with_name("templates")

# Column types come from the store's schema, so a new metric column is handled here too.
_CELL_NUMERIC = tuple(c for c, t in CELL_COLUMNS.items()
                      if t.startswith(("REAL", "INTEGER")) and c != "run_id")
_CELL_TEXT = tuple(c for c, t in CELL_COLUMNS.items()
                   if t.startswith("TEXT") and c not in ("op", "impl", "status"))
_RUN_TEXT = (
    "label",
    "created_at",
    "finished_at",
    "status",
    "argv",
    "spec_json",
    "machine_json",
    "versions_json",
    "gemm_gflops_json",
    "git_commit",
)



def render_report(
    runs: pd.DataFrame,
    cells: pd.DataFrame,
    *,
    title: str | None = None,
    threshold: float | None = None,
) -> str:
    """Render the HTML report of ``runs`` and their ``cells``.

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per run, columns of the store's ``runs`` table.  Only
        ``run_id`` is required; missing columns show as unknown.  Runs appear
        in the frame's order; runs referenced by ``cells`` but absent here
        are appended as "run N".
    cells : pandas.DataFrame
        One row per cell, columns of the store's ``cells`` table.  Required:
        ``run_id``, ``op``, ``impl``, ``status``; every other column may be
        missing or all-NaN.
    title : str, optional
        Page title; defaults to "factorbench report: " and the run names.
    threshold : float, optional
        Pass threshold drawn on the accuracy plots and used by the
        recommendation maps.  Default: the threshold the runs were judged by
        (from their spec), or 30 when they differ or do not say.

    Returns
    -------
    str
        The HTML document.
    """
    cells = _normalise_cells(cells)
    run_frame = _normalise_runs(runs, cells)
    names = _run_names(run_frame)
    cells["run_name"] = cells["run_id"].map(names)
    cells["variant"] = _variants(cells)
    multi_run = len(names) > 1
    ceilings = _ceilings(run_frame, names)
    rules = _pass_rules(run_frame, threshold)
    # The plots draw one line: the runs' common rule, else the argument or 30.
    common = set(rules.values())
    threshold, lowrank = common.pop() if len(common) == 1 else (
        threshold if threshold is not None else 30.0, LOWRANK_THRESHOLD)

    context = {
        "title": title or "factorbench report: " + ", ".join(names.values()),
        "threshold": f"{threshold:g}",
        "lowrank_threshold": f"{lowrank:g}",
        "multi_run": multi_run,
        "statuses": _statuses(cells),
        "runs": [_run_view(row, names, cells) for row in run_frame.itertuples(index=False)],
        "ops": [
            _op_view(
                op,
                cells[cells["op"] == op],
                threshold=threshold,
                lowrank_threshold=lowrank,
                multi_run=multi_run,
                # Impls belong to one op, so a palette per op keeps each impl's
                # colour the same on every figure and map while using the
                # most distinct colours within a section.
                colors=palette(cells.loc[cells["op"] == op, "variant"]),
                ceilings=ceilings,
                rules=rules,
                names=names,
            )
            for op in _ops(cells)
        ],
        "gpu": gpu_section(cells, names),
        "problems": _problem_rows(cells, multi_run=multi_run),
        "not_run": _not_run_groups(cells),
        "csv_uri": _csv_uri(cells),
        "n_cells": len(cells),
    }
    return environment().get_template("report.html.j2").render(**context)


def build_report(
    runs: pd.DataFrame,
    cells: pd.DataFrame,
    out_path,
    *,
    title: str | None = None,
    threshold: float | None = None,
) -> pathlib.Path:
    """Write the HTML report of ``runs`` and ``cells`` to ``out_path``.

    Parameters
    ----------
    runs, cells : pandas.DataFrame
        As for :func:`render_report`.
    out_path : str or os.PathLike
        Destination file; missing parent folders are created.
    title : str, optional
        Page title.
    threshold : float, optional
        As for :func:`render_report`.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    html = render_report(runs, cells, title=title, threshold=threshold)
    path = pathlib.Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # newline="\n" keeps the bytes identical across platforms.
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(html)
    return path


# --------------------------------------------------------------------- input


def _normalise_cells(cells: pd.DataFrame) -> pd.DataFrame:
    missing = {"run_id", "op", "impl", "status"} - set(cells.columns)
    if missing:
        raise ValueError(f"cells frame lacks required column(s): {', '.join(sorted(missing))}")
    out = cells.copy().reset_index(drop=True)
    for col in _CELL_NUMERIC:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float) if col in out else np.nan
    for col in _CELL_TEXT:
        if col not in out:
            out[col] = None
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    out["run_id"] = out["run_id"].astype(int)
    for col in ("op", "impl", "status"):
        out[col] = out[col].astype(object).where(out[col].notna(), "?").astype(str)
    out["dtype"] = out["dtype"].where(out["dtype"].notna(), "?").astype(str)
    out["kind"] = out["kind"].where(out["kind"].notna(), "").astype(str)
    return out


def _normalise_runs(runs: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    if "run_id" not in runs.columns:
        raise ValueError("runs frame lacks required column: run_id")
    out = runs.copy().reset_index(drop=True)
    out["run_id"] = out["run_id"].astype(int)
    # Cells of a run missing from ``runs`` are still reported, as "run N".
    orphans = sorted(set(cells["run_id"]) - set(out["run_id"]))
    if orphans:
        out = pd.concat([out, pd.DataFrame({"run_id": orphans})], ignore_index=True)
    for col in _RUN_TEXT:
        if col not in out:
            out[col] = None
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out[["run_id", *_RUN_TEXT]]


def _run_names(runs: pd.DataFrame) -> dict[int, str]:
    """Run label, or "run N"; duplicate labels get the run id appended."""
    raw = {}
    for run_id, label in zip(runs["run_id"], runs["label"], strict=True):
        text = str(label).strip() if label is not None else ""
        raw[int(run_id)] = text or f"run {int(run_id)}"
    counts = pd.Series(list(raw.values())).value_counts()
    return {
        run_id: f"{name} (run {run_id})" if counts[name] > 1 else name
        for run_id, name in raw.items()
    }


def _ops(cells: pd.DataFrame) -> list[str]:
    present = set(cells["op"])
    return [op for op in OP_ORDER if op in present] + sorted(present - set(OP_ORDER))


def _statuses(cells: pd.DataFrame) -> list[str]:
    return list(STATUS_ORDER) + sorted(set(cells["status"]) - set(STATUS_ORDER))


# -------------------------------------------------------------------- header


def _run_view(row, names: Mapping[int, str], cells: pd.DataFrame) -> dict:
    run_cells = cells[cells["run_id"] == row.run_id]
    machine = _loads(row.machine_json, {})
    machine = machine if isinstance(machine, dict) else {}
    versions = _loads(row.versions_json, {})
    gemm = _loads(row.gemm_gflops_json, {})
    argv = _loads(row.argv, None)
    counts = run_cells["status"].value_counts()
    return {
        "id": int(row.run_id),
        "name": names[int(row.run_id)],
        "label": row.label,
        "created_at": row.created_at or _DASH,
        "finished_at": row.finished_at or _DASH,
        "status": row.status or _DASH,
        "argv": shlex.join(map(str, argv)) if isinstance(argv, list) else (row.argv or _DASH),
        "git_commit": row.git_commit or _DASH,
        "machine": _machine_items(machine),
        "blas": [_blas_text(b) for b in machine.get("blas") or [] if isinstance(b, dict)],
        "versions": sorted((str(k), str(v)) for k, v in versions.items())
        if isinstance(versions, dict)
        else [],
        "gemm": [(str(k), _fmt_g(v, 4)) for k, v in sorted(gemm.items())]
        if isinstance(gemm, dict)
        else [],
        "spec": _pretty_json(row.spec_json),
        "n_cells": len(run_cells),
        "counts": {s: int(counts.get(s, 0)) for s in _statuses(cells)},
        "unstable": int((run_cells["unstable"] == 1).sum()),
        "concurrent": int((run_cells["concurrent"] == 1).sum()),
    }


def _machine_items(machine: dict) -> list[tuple[str, str]]:
    cores = machine.get("logical_cores")
    items = [
        ("host", machine.get("host")),
        ("CPU", machine.get("cpu_model")),
        ("logical cores", cores),
        ("memory", _fmt_bytes(machine.get("memory_bytes"))),
        ("platform", machine.get("platform")),
        ("Python", machine.get("python")),
        ("NumPy", machine.get("numpy_version")),
        # None means the run left the libraries' defaults, which the BLAS
        # entries below list per library
        ("BLAS threads", machine.get("threads") or "library default"),
    ]
    hosts = machine.get("hosts")
    if isinstance(hosts, dict) and hosts:
        # a dask run: the workers' hosts, each timing its own cells
        items.append(("Dask workers", "; ".join(
            f"{h}: {v.get('workers', '?')} x {v.get('blas_threads', '?')} BLAS thread(s)"
            for h, v in sorted(hosts.items()) if isinstance(v, dict))))
    gpus = [g for g in machine.get("gpus") or [] if isinstance(g, dict)]
    if gpus:
        items.append(("GPU", "; ".join(gpu_text(g) for g in gpus)))
    return [(k, _DASH if v is None or v == "" else str(v)) for k, v in items]


def _blas_text(blas: dict) -> str:
    name = " ".join(str(blas[k]) for k in ("internal_api", "version") if blas.get(k))
    extra = []
    if blas.get("num_threads") is not None:
        extra.append(f"{blas['num_threads']} threads")
    if blas.get("architecture"):
        extra.append(str(blas["architecture"]))
    return f"{name or 'unknown'} ({', '.join(extra)})" if extra else (name or "unknown")


def _pretty_json(text) -> str:
    value = _loads(text, None)
    if value is None:
        return "" if text is None else str(text)
    return json.dumps(value, indent=2, sort_keys=True, default=str)


# ---------------------------------------------------------- run-level facts


def _ceilings(runs: pd.DataFrame, names: Mapping[int, str]) -> dict[tuple[str, str], float]:
    """(run name, dtype) -> GEMM GFLOP/s measured at the start of that run."""
    out = {}
    for run_id, text in zip(runs["run_id"], runs["gemm_gflops_json"], strict=True):
        gemm = _loads(text, {})
        if isinstance(gemm, dict):
            for dtype, rate in gemm.items():
                if _finite(rate) and rate > 0:
                    out[(names[int(run_id)], str(dtype))] = float(rate)
    return out


def _pass_rules(runs: pd.DataFrame, threshold: float | None
                ) -> dict[int, tuple[float, float]]:
    """run id -> (threshold, lowrank threshold) the run judged its cells by;
    ``threshold`` (else 30) where the run's spec does not say."""
    threshold = 30.0 if threshold is None else threshold
    out = {}
    for run_id, text in zip(runs["run_id"], runs["spec_json"], strict=True):
        spec = _loads(text, {})
        spec = spec if isinstance(spec, dict) else {}
        thr = spec.get("threshold")
        low = spec.get("lowrank_threshold")
        out[int(run_id)] = (
            float(thr) if _finite(thr) else threshold,
            float(low) if _finite(low) else LOWRANK_THRESHOLD,
        )
    return out


def _csv_uri(cells: pd.DataFrame) -> str:
    """Every stored column of every cell as a CSV download inside the page.

    Numbers carry 9 significant digits and raw timing samples 7 (a
    perf_counter sample is not more precise than that); ``factorbench
    export`` gives the full-precision values.  Percent-encoding rather than
    base64: CSV is mostly digits and commas, which pass through unchanged,
    so the link is about 1.05x the CSV instead of 1.33x.
    """
    cols = [c for c in CELL_COLUMNS if c in cells]
    frame = cells[cols].copy()
    if "samples_json" in frame:
        frame["samples_json"] = frame["samples_json"].map(_round_samples)
    text = frame.to_csv(index=False, lineterminator="\n", float_format="%.9g")
    return "data:text/csv;charset=utf-8," + urllib.parse.quote(text, safe=",.:;/+-_=()[]")


def _round_samples(text):
    samples = _loads(text, None)
    if not isinstance(samples, list):
        return text
    return "[" + ",".join(f"{float(x):.7g}" if _finite(x) else "null" for x in samples) + "]"


# ------------------------------------------------------- recommendation map

_DTYPE_ORDER = ("float64", "float32", "complex128", "complex64", "bfloat16", "float16")


def _dtypes(cells: pd.DataFrame) -> list[str]:
    present = set(cells["dtype"])
    return [d for d in _DTYPE_ORDER if d in present] + sorted(present - set(_DTYPE_ORDER))


def _recommendation_maps(op, cells, *, colors, rules, names) -> list[dict]:
    """Per run and dtype: the fastest impl meeting the run's pass rule at
    every recorded (n, kappa), pooled over families, then per family when
    the op sweeps several.  Built by :func:`recommendation_grid`, the same
    code that answers ``factorbench recommend``."""
    maps = []
    for run_id in dict.fromkeys(cells["run_id"]):
        run_cells = cells[cells["run_id"] == run_id]
        threshold, lowrank = rules.get(int(run_id), (30.0, LOWRANK_THRESHOLD))
        kinds = sorted(set(run_cells.loc[run_cells["kind"] != "", "kind"]))
        for dtype in _dtypes(run_cells):
            for kind in [None, *kinds] if len(kinds) > 1 else [None]:
                sizes, kappas, answers = recommendation_grid(
                    run_cells, op=op, dtype=dtype, kind=kind, threshold=threshold,
                    lowrank_threshold=lowrank)
                if not sizes:
                    continue
                maps.append({
                    "run": names[int(run_id)],
                    "dtype": dtype,
                    "kind": kind,
                    "threshold": f"{threshold:g}",
                    "kappas": ["every kappa" if k is None else f"{k:.0e}" for k in kappas],
                    "rows": [
                        {"n": n, "cells": [_map_cell(answers[(n, k)], colors) for k in kappas]}
                        for n in sizes
                    ],
                })
    return maps


def _map_cell(rec, colors) -> dict:
    if rec is None:
        return {"kind": "empty", "text": _DASH, "detail": "", "title": "nothing ran here"}
    evidence = [
        f"{i}. {c.impl}: {_fmt_time_ci(c.time_s, c.ci_low_s, c.ci_high_s)}, "
        f"worst backward ratio {_fmt_g(c.worst_backward_ratio)}, {c.cells} cell(s)"
        for i, c in enumerate(rec.ranked, 1)
    ] + [f"excluded {c.impl}: {c.reason}" for c in rec.excluded]
    title = "\n".join(evidence)
    if rec.best is None:
        return {"kind": "none", "text": "none passes", "detail": "", "title": title}
    margin = rec.margin
    if not math.isfinite(margin):
        detail = "only one"
    else:
        detail = f"\u00d7{margin:.2g}" + ("" if rec.clear else " \u2248")
    return {
        "kind": "best",
        "text": rec.best.impl,
        "detail": detail,
        "color": _hex(colors.get(rec.best.impl)),
        "title": title,
    }


def _hex(color) -> str:
    from matplotlib.colors import to_hex

    return to_hex(color) if color is not None else "#888888"


# ------------------------------------------------------------------- per op


def _op_view(
    op: str,
    cells: pd.DataFrame,
    *,
    threshold: float,
    lowrank_threshold: float,
    multi_run: bool,
    colors: Mapping,
    ceilings: Mapping,
    rules: Mapping,
    names: Mapping[int, str],
) -> dict:
    slug = "".join(c if c.isalnum() else "-" for c in op)
    counts = cells["status"].value_counts()
    return {
        "op": op,
        "anchor": f"op-{slug}",
        "n_cells": len(cells),
        "counts": [(s, int(counts[s])) for s in _statuses(cells) if s in counts],
        "plots": [_plot_view(p) for p in _op_plots(op, cells, slug, threshold,
                                                    lowrank_threshold, colors, ceilings)],
        "maps": _recommendation_maps(op, cells, colors=colors, rules=rules, names=names),
        "throughput": _throughput_tables(cells, names),
        "tradeoff": _tradeoff_tables(cells, names, multi_run=multi_run),
        "rows": _cell_rows(cells, multi_run=multi_run),
    }


def _throughput_tables(cells: pd.DataFrame, names: Mapping[int, str]) -> list[dict]:
    """Per (run, dtype): impls x n, each entry GFLOP/s, peak fraction and the
    ratio to the fastest library impl; shown once the op has an impl from
    another family to put next to the library."""
    table = throughput_table(cells)
    if table.empty or not (table["baseline"].notna() & (table["family"] != "library")).any():
        return []
    out = []
    for (run_id, dtype), t in table.groupby(["run_id", "dtype"], sort=True):
        sizes = sorted(set(zip(t["m"], t["n"], strict=True)), key=lambda s: (s[1], s[0]))
        rows = []
        for impl, g in t.groupby("impl", sort=True):
            entries = []
            for m, n in sizes:
                hit = g[(g["m"] == m) & (g["n"] == n)]
                entries.append(_throughput_entry(hit.iloc[0]) if len(hit) else None)
            rows.append({"impl": impl, "family": g["family"].iloc[0], "entries": entries})
        out.append({"run": names.get(run_id, str(run_id)), "dtype": dtype,
                    "sizes": [_fmt_size(m, n, None) for m, n in sizes], "rows": rows})
    return out


def _throughput_entry(r) -> dict:
    ratio = r["ratio"]
    return {
        "gflops": f"{r['gflops']:.1f}",
        "peak": f"{r['peak_fraction']:.0%}" if pd.notna(r["peak_fraction"]) else "",
        "ratio": f"\u00d7{ratio:.2f}" if pd.notna(ratio) else "",
        "low": bool(pd.notna(ratio) and ratio < 0.5),
        "params": r["params"],
        "title": (f"{r['cells']} cell(s); best of {r['tried']} setting(s); baseline "
                  f"{r['baseline']} {r['baseline_gflops']:.1f} GFLOP/s"
                  if pd.notna(ratio) else f"{r['cells']} cell(s); no library baseline here"),
    }


def _tradeoff_tables(cells: pd.DataFrame, names: Mapping[int, str], *, multi_run: bool
                     ) -> list[dict]:
    """Per problem (run, kind, shape, kappa, dtype, rank) where a randomized or
    peer impl ran: every impl and setting, fastest first, with its speedup
    over the deterministic reference, its accuracy and its place on the
    front (:func:`factorbench.reports.tradeoff.tradeoff_table`)."""
    out = []
    for g in tradeoff_groups(tradeoff_table(cells)):
        first = g.iloc[0]
        cols = accuracy_columns(first["op"])
        caption = [first["kind"] or _DASH, _fmt_size(first["m"], first["n"], first["rank"]),
                   f"kappa {_fmt_g(first['kappa'], 2)}", first["dtype"]]
        if multi_run:
            caption.append(names.get(int(first["run_id"]), f"run {first['run_id']}"))
        ref = first["reference"] if isinstance(first["reference"], str) else None
        out.append({
            "caption": ", ".join(caption),
            "reference": ref,
            "primary": _TRADEOFF_LABELS[first["primary"]][0],
            "columns": [_TRADEOFF_LABELS[c] for c in cols],
            "rows": [
                {
                    "impl": r["impl"],
                    "family": r["family"] or _DASH,
                    "params": r["params"],
                    "status": r["status"],
                    "status_class": r["status"] if r["status"] in STATUS_ORDER else "failed",
                    "detail": "" if r["status"] == "ok" or r["cells"] == 1
                    else f"{r['ok_cells']}/{r['cells']} ok",
                    "time": _fmt_time_ci(r["time_median_s"], r["time_ci_low_s"],
                                         r["time_ci_high_s"]),
                    "speedup": f"\u00d7{_fmt_g(r['speedup'])}" if pd.notna(r["speedup"]) else "",
                    "metrics": [format_value(r, c) for c in cols],
                    "front": bool(r["pareto"]),
                    "is_ref": r["impl"] == ref,
                    "sortkeys": {"time": _key(r["time_median_s"]), "speedup": _key(r["speedup"]),
                                 "metrics": [_key(r[c]) for c in cols]},
                }
                for _, r in g.iterrows()
            ],
        })
    return out


def _has(cells: pd.DataFrame, col: str) -> bool:
    return bool(cells[col].notna().any()) if col in cells else False


def _op_plots(op, cells, slug, threshold, lowrank_threshold, colors, ceilings
              ) -> list[plots.Plot]:
    """The figures that apply to this op: a metric the op never records
    gets no empty box."""
    out = [plots.time_vs_n(cells, fig_id=f"{slug}-time", title="Time vs n", colors=colors)]
    if _has(cells, "gflops"):
        out.append(plots.gflops_vs_n(cells, fig_id=f"{slug}-gflops", ceilings=ceilings,
                                     title="GFLOP/s vs n, with the GEMM ceiling",
                                     colors=colors))
    if _has(cells, "backward_ratio") or (cells["status"] == "failed").any():
        out.append(accuracy_plots.backward_ratio_vs_kappa(
            cells, fig_id=f"{slug}-bwd", threshold=threshold,
            title="Backward error ratio vs kappa", colors=colors))
    if _has(cells, "forward_error"):
        # Only a solve's forward error tracks kappa; svd and eigh measure
        # theirs against ||A||, bounded by Weyl's theorem whatever kappa is.
        out.append(accuracy_plots.forward_error_vs_kappa(
            cells, fig_id=f"{slug}-fwd", title="Forward error vs kappa", colors=colors,
            kappa_guides=op in ("solve", "lstsq")))
    if _has(cells, "orthogonality_loss"):
        out.append(accuracy_plots.orthogonality_vs_kappa(
            cells, fig_id=f"{slug}-orth", title="Orthogonality loss vs kappa", colors=colors))
    if op == "lu" or _has(cells, "growth_factor") or _has(cells, "growth_factor_exact"):
        out.append(accuracy_plots.growth_vs_n(
            cells, fig_id=f"{slug}-growth", title="Growth factor vs n", colors=colors))
    if _has(cells, "lowrank_error_ratio"):
        out.append(accuracy_plots.lowrank_vs_rank(
            cells, fig_id=f"{slug}-lowrank", title="Low-rank error ratio vs rank",
            threshold=lowrank_threshold, colors=colors))
    if _has(cells, "time_median_s") and _has(cells, "backward_ratio"):
        out.append(decision_plots.pareto(
            cells, fig_id=f"{slug}-pareto", threshold=threshold,
            title="Time vs backward ratio per (n, dtype): Pareto front", colors=colors))
    return out


def _plot_view(plot: plots.Plot) -> dict:
    # Only matplotlib's own output is trusted as markup; everything the user
    # typed reached it as plain text and was escaped by its SVG writer.
    return {
        "title": plot.title,
        "svg": Markup(plot.svg) if plot.svg is not None else None,
        "notes": list(plot.notes),
    }


_SORT = ["run_order", "variant", "dtype", "kind", "n", "m", "kappa", "rank", "seed"]


def _sorted(cells: pd.DataFrame) -> pd.DataFrame:
    order = {run_id: i for i, run_id in enumerate(dict.fromkeys(cells["run_id"]))}
    keyed = cells.assign(run_order=cells["run_id"].map(order))
    return keyed.sort_values(_SORT, kind="mergesort", na_position="last")


def _cell_rows(cells: pd.DataFrame, *, multi_run: bool) -> list[dict]:
    rows = []
    for c in _sorted(cells).itertuples(index=False):
        growth = c.growth_factor_exact if _finite(c.growth_factor_exact) else c.growth_factor
        flags = []
        if c.unstable == 1:
            flags.append(("noisy", "timing flagged unstable (CV > 10% or min/max far off)"))
        if c.concurrent == 1:
            flags.append(("conc", "timed while other cells ran concurrently"))
        rows.append(
            {
                "run": c.run_name if multi_run else None,
                "impl": c.variant,
                "dtype": c.dtype,
                "kind": c.kind or _DASH,
                "size": _fmt_size(c.m, c.n, c.rank),
                "kappa": _fmt_kappa(c.kappa, c.kappa_actual),
                "status": c.status,
                "time": _fmt_time_ci(c.time_median_s, c.time_ci_low_s, c.time_ci_high_s),
                "flags": flags,
                "gflops": _fmt_gflops(c.gflops, c.peak_fraction),
                "backward_ratio": _fmt_g(c.backward_ratio),
                "orthogonality_ratio": _fmt_g(c.orthogonality_ratio),
                "growth": _fmt_g(growth),
                "forward_ratio": _fmt_g(c.kappa_scaled_error),
                # Raw values for the table sorter; NaN sorts last.
                "sortkeys": {
                    "size": _key(c.n),
                    "kappa": _key(c.kappa_actual if _finite(c.kappa_actual) else c.kappa),
                    "time": _key(c.time_median_s),
                    "gflops": _key(c.gflops),
                    "backward_ratio": _key(c.backward_ratio),
                    "orthogonality_ratio": _key(c.orthogonality_ratio),
                    "growth": _key(growth),
                    "forward_ratio": _key(c.kappa_scaled_error),
                },
            }
        )
    return rows


def _key(x) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return ""
    if math.isinf(x):  # JavaScript's parseFloat reads 1e999 as Infinity, "inf" as NaN
        return "1e999" if x > 0 else "-1e999"
    # Six significant digits order any two values a reader could tell apart.
    return "" if math.isnan(x) else f"{x:.6g}"


# ----------------------------------------------------------------- failures


def _problem_rows(cells: pd.DataFrame, *, multi_run: bool) -> list[dict]:
    bad = cells[(cells["status"] != "ok") & ~cells["status"].isin(_NOT_RUN)]
    op_rank = {op: i for i, op in enumerate(_ops(cells))}
    bad = bad.assign(op_order=bad["op"].map(op_rank))
    order = {run_id: i for i, run_id in enumerate(dict.fromkeys(cells["run_id"]))}
    bad = bad.assign(run_order=bad["run_id"].map(order))
    bad = bad.sort_values(
        ["run_order", "op_order", "variant", "dtype", "kind", "n", "m", "kappa", "seed"],
        kind="mergesort",
        na_position="last",
    )
    return [
        {
            "run": c.run_name if multi_run else None,
            "op": c.op,
            "impl": c.variant,
            "dtype": c.dtype,
            "kind": c.kind or _DASH,
            "size": _fmt_size(c.m, c.n, c.rank),
            "kappa": _fmt_kappa(c.kappa, c.kappa_actual),
            "status": c.status,
            "backward_ratio": _fmt_g(c.backward_ratio),
            "orthogonality_ratio": _fmt_g(c.orthogonality_ratio),
            "message": c.message or _DASH,
        }
        for c in bad.itertuples(index=False)
    ]


def _not_run_groups(cells: pd.DataFrame) -> list[dict]:
    skipped = cells[cells["status"].isin(_NOT_RUN)]
    if skipped.empty:
        return []
    reason = skipped["message"].where(skipped["message"].notna(), "(no reason given)")
    groups = []
    for (status, why), g in skipped.groupby([skipped["status"], reason], sort=True):
        groups.append(
            {
                "status": status,
                "reason": why,
                "count": len(g),
                "impls": ", ".join(sorted(set(g["impl"]))),
            }
        )
    groups.sort(key=lambda g: (-g["count"], g["status"], g["reason"]))
    return groups


# --------------------------------------------------------------- formatting


def _fmt_int(x) -> str:
    return str(int(x)) if _finite(x) else "?"


def _fmt_size(m, n, rank) -> str:
    size = _fmt_int(n) if not _finite(m) or m == n else f"{_fmt_int(m)}\u00d7{_fmt_int(n)}"
    return f"{size} r={_fmt_int(rank)}" if _finite(rank) else size


def _fmt_kappa(kappa, actual) -> str:
    target = _fmt_g(kappa, 2)
    if not _finite(actual):
        return target
    # Rounding to the working precision usually leaves kappa as targeted;
    # only a visible difference earns the second number.
    shown = _fmt_g(actual, 2)
    return target if shown == target else f"{target} ({shown})"


#: The report is HTML: micro as the micro sign.
_TIME_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "\u00b5s"), (1e-9, "ns"))


def _fmt_time_ci(median, low, high) -> str:
    return _fmt_time_ci_units(median, low, high, _TIME_UNITS)


def _fmt_gflops(gflops, peak_fraction) -> str:
    if not _finite(gflops):
        return _DASH
    text = f"{gflops:.3g}"
    return f"{text} ({peak_fraction:.0%})" if _finite(peak_fraction) else text


def _fmt_bytes(n) -> str | None:
    if not _finite(n):
        return None
    return f"{n / 2**30:.1f} GiB"
