"""Render a :class:`~factorbench.reports.compare.Comparison`: terminal text
and a self-contained HTML page (Jinja2 with autoescape, inline SVG, one
inline table sorter, no network; same comparison, same bytes)."""

from __future__ import annotations

import math
import textwrap

import numpy as np
from markupsafe import Markup

from factorbench.reports._format import (
    _DASH,
    _cut,
    _finite,
    _fmt_factor,
    _fmt_g,
    _fmt_int,
    _fmt_p,
    _fmt_pct,
    _fmt_size,
    _fmt_time,
    _one_line,
    _s,
    _text,
    environment,
)
from factorbench.reports._frames import loads
from factorbench.reports.compare import _ACCURACY_BREAKS, ACCURACY_METRICS, Comparison

__all__ = ["format_table", "render_compare"]


def _run_name(run: dict, which: str) -> str:
    run_id = run.get("run_id")
    label = _text(run.get("label"))
    name = f"run {run_id}" if run_id is not None else which
    return f"{name} ({label})" if label else name


def _host(run: dict) -> str:
    machine = loads(run.get("machine_json"), None)
    host = _text(run.get("host")) or (
        _text(machine.get("host")) if isinstance(machine, dict) else "")
    return host or "?"


def _run_info(run: dict, which: str, dtypes) -> dict:
    gemm = loads(run.get("gemm_gflops_json"), None)
    gemm = gemm if isinstance(gemm, dict) else {}
    machine = loads(run.get("machine_json"), None)
    machine = machine if isinstance(machine, dict) else {}
    commit = _text(run.get("git_commit"))
    return {
        "which": which,
        "name": _run_name(run, which),
        "run_id": run.get("run_id"),
        "label": _text(run.get("label")),
        "host": _host(run),
        "cpu": _text(machine.get("cpu_model")),
        "commit": commit[:12] if commit else "?",
        "created_at": _text(run.get("created_at")) or "?",
        "status": _text(run.get("status")) or "?",
        "gemm": [(str(d), _fmt_g(gemm[d], 4)) for d in sorted(gemm) if d in dtypes or not dtypes],
        "gemm_raw": {str(d): v for d, v in gemm.items() if d in dtypes or not dtypes},
    }


def _summary(cmp: Comparison) -> dict:
    """Everything the header of both renderings shows."""
    opts, rows, counts = cmp.options, cmp.rows, cmp.counts
    dtypes = set(rows["dtype"])
    base = _run_info(cmp.base_run, "base", dtypes)
    head = _run_info(cmp.head_run, "head", dtypes)
    notes = []
    if counts["matched"] == 0:
        notes.append("no cell matched: nothing was compared (were the two runs the same sweep?)")
    if base["host"] != head["host"]:
        notes.append(
            f"the runs come from different hosts ({base['host']}, {head['host']}): raw speedups "
            "mix hardware and code; peak-normalised speedup divides each run's GFLOP/s by its "
            "own GEMM ceiling"
        )
    if counts.get("host_moved"):
        k = counts["host_moved"]
        notes.append(
            f"{k} cell{_s(k)} ran on different hosts of a cluster in the two runs: their timings "
            "are not compared (n/a); compare --across-hosts sets them against each other")
    for info in (base, head):
        if info["status"] not in ("complete", "?"):
            notes.append(f"{info['which']} {info['name']} is {info['status']}: cells it did not "
                         "reach are unmatched")
    untestable = int(((rows["speed_verdict"] == "inconclusive") & rows["p_value"].isna()).sum())
    if untestable:
        notes.append(
            f"{untestable} timed cell{_s(untestable)} had too few samples (or none kept) for the "
            f"test to ever reach alpha = {opts.alpha:g} (3 vs 3 samples: smallest p = 0.1): "
            "inconclusive, not 'same'"
        )
    unclear = int(((rows["speed_verdict"] == "inconclusive") & rows["p_value"].notna()).sum())
    if unclear:
        notes.append(
            f"{unclear} cell{_s(unclear)} moved by more than the noise floor without a significant "
            "test: inconclusive (too noisy to tell)"
        )
    conc = int(rows["concurrent"].sum())
    if conc:
        notes.append(f"{conc} matched cell{_s(conc)} were timed while other cells ran "
                     "(process/dask executor): their speed comparison is unreliable")
    floor = _floor(cmp)
    if opts.fail_slower is not None and opts.fail_slower / 100 < floor:
        notes.append(f"--fail-slower {opts.fail_slower:g}% is below the noise floor "
                     f"{floor:.0%}: the speed gate acts at {floor:.0%}")

    overall, shifted = _overall(cmp, base, head)
    if shifted:
        notes.append(
            "many cells moved together: part of the change may come from the machine's state "
            "(clock frequency, other load) rather than the code; the GEMM ceilings measured at "
            "the start of each run and the peak-normalised speedups help tell them apart"
        )

    gates = []
    if opts.fail_slower is not None:
        gates.append(f"slower by more than {opts.fail_slower:g}%, or ok -> timeout")
    if opts.fail_less_accurate is not None:
        gates.append(f"accuracy ratio above {opts.fail_less_accurate:g}x, or ok -> "
                     + "/".join(_ACCURACY_BREAKS))
    failures = cmp.gate_failures()
    if gates:
        gate = f"FAIL ({len(failures)} reason{_s(len(failures))})" if failures else "pass"
    else:
        gate = "not set"

    findings = []
    for key, text in (("slower", "slower"), ("faster", "faster"),
                      ("less_accurate", "less accurate"), ("more_accurate", "more accurate"),
                      ("status_regressions", "status regression")):
        if counts[key]:
            noun = "s" if key == "status_regressions" and counts[key] > 1 else ""
            findings.append(f"{counts[key]} {text}{noun}")
    verdict = (", ".join(findings) if findings
               else "no significant speed change, no accuracy change, no status regression")
    unmatched = counts["base_only"] + counts["head_only"]
    verdict += (f"; {counts['matched']} matched cell{_s(counts['matched'])}, {unmatched} "
                f"unmatched ({counts['base_only']} only in base, {counts['head_only']} only "
                "in head)")
    return {
        "base": base,
        "head": head,
        "counts": counts,
        "verdict": verdict,
        "notes": notes,
        "gate": gate,
        "gates": gates,
        "failures": failures,
        "overall": overall,
        "method": (
            f"speed: two-sided Mann-Whitney U on the raw samples, Benjamini-Hochberg over "
            f"{counts['tested']} testable cell{_s(counts['tested'])} at alpha = {opts.alpha:g}, "
            f"noise floor {_noise_text(cmp)}; effect = Cliff's delta (> 0: head slower). "
            f"accuracy: floored ratio head/base (u-scaled ratios floored at 1, forward error "
            f"at its backward-stable level), "
            f"reported beyond {opts.accuracy_threshold:g}x."
        ),
    }


def _floor(cmp: Comparison) -> float:
    """The noise floor the speed verdicts used."""
    return float(cmp.noise.get("floor", cmp.options.min_effect))


def _noise_text(cmp: Comparison) -> str:
    floor, spread = _floor(cmp), cmp.noise.get("spread", math.nan)
    if not _finite(spread):
        return f"{floor:.0%} (--min-effect)"
    return (f"{floor:.0%} = max(--min-effect {cmp.options.min_effect:.0%}, "
            f"{cmp.options.noise_sigmas:g} x run-to-run spread {spread:.1%}, measured over "
            f"{cmp.noise['cells']} cells about their impl's median change)")


def _overall(cmp: Comparison, base: dict, head: dict) -> tuple[str, bool]:
    """One line on the change common to all cells, and whether it is large.

    The geometric median of ``head/base`` over every cell timed in both
    runs, next to the change of each run's GEMM ceiling: a shift of the
    whole sweep in one direction together with a shifted ceiling points to
    the machine rather than to the code.
    """
    timed = int(np.isfinite(cmp.rows["speedup"]).sum())
    common = cmp.noise.get("drift", math.nan)  # median head/base - 1 over the timed cells
    parts, large = [], False
    if timed and _finite(common):
        large = timed >= 5 and abs(common) > _floor(cmp) / 2
        parts.append(f"median change over {timed} timed cell{_s(timed)}: {_fmt_pct(common)}")
    ceil_b, ceil_h = base["gemm_raw"], head["gemm_raw"]
    gemm = []
    for dtype in sorted(set(ceil_b) & set(ceil_h)):
        try:
            change = float(ceil_h[dtype]) / float(ceil_b[dtype]) - 1.0
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if math.isfinite(change):
            gemm.append(f"{dtype} {_fmt_pct(change)}")
    if gemm:
        parts.append("GEMM ceiling " + ", ".join(gemm))
    return "; ".join(parts), large


# --------------------------------------------------------------------- text


def format_table(cmp: Comparison, *, limit: int = 40, width: int | None = None) -> str:
    """Render a comparison as plain text for a terminal or a CI log.

    Parameters
    ----------
    cmp : Comparison
    limit : int, optional
        Most rows shown per section (slower, faster, less accurate, status
        changes, unmatched); a line says how many more there are.
    width : int, optional
        Maximum line width: text lines wrap; in tables the impl and kind
        columns are shortened first, then lines are cut.  None: no limit.

    Returns
    -------
    str
        Text ending with a newline, without colour codes.
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    s = _summary(cmp)
    c = s["counts"]
    out: list[str] = []

    def prose(text: str, indent: str = "") -> None:
        # Prose wraps at the width; only table lines are ever cut.
        if width is None or len(indent) + len(text) <= width:
            out.append(indent + text)
        else:
            out.extend(textwrap.wrap(text, width=width, initial_indent=indent,
                                     subsequent_indent=indent + "    ",
                                     break_on_hyphens=False))

    prose(f"factorbench compare: {s['base']['name']} -> {s['head']['name']}")
    for info in (s["base"], s["head"]):
        gemm = ", ".join(f"{d} {r}" for d, r in info["gemm"]) or "?"
        prose(f"{info['which']}: {info['name']}, host {info['host']}, commit "
              f"{info['commit']}, created {info['created_at']}, {info['status']}, "
              f"GEMM GFLOP/s: {gemm}", "  ")
    prose(f"verdict: {s['verdict']}")
    prose(
        f"matched {c['matched']}: speed {c['slower']} slower, {c['faster']} faster, "
        f"{c['same']} same, {c['inconclusive']} inconclusive, {c['n/a']} n/a; "
        f"accuracy {c['less_accurate']} less accurate, {c['more_accurate']} more accurate; "
        f"{c['status_changes']} status change{_s(c['status_changes'])} "
        f"({c['status_regressions']} from ok); unmatched {c['base_only']} only in base, "
        f"{c['head_only']} only in head", "  "
    )
    prose(f"gate: {s['gate']}" + (f" [{'; '.join(s['gates'])}]" if s["gates"] else ""), "  ")
    if s["overall"]:
        prose(s["overall"], "  ")
    prose(s["method"], "  ")
    for note in s["notes"]:
        prose(f"note: {note}", "  ")

    sections = [
        ("slower", cmp.slower, _speed_table),
        ("faster", cmp.faster, _speed_table),
        ("less accurate", cmp.less_accurate, _accuracy_table),
        ("status changes", cmp.status_changes, _status_table),
        ("only in base", cmp.base_only, _unmatched_table),
        ("only in head", cmp.head_only, _unmatched_table),
    ]
    for title, frame, table in sections:
        if frame.empty:
            continue
        out.append("")
        out.append(f"{title} ({len(frame)}):")
        headers, aligns, body = table(frame.head(limit))
        lines = _layout(headers, aligns, body, width)
        out += [_cut(line, width) for line in lines] if width is not None else lines
        if len(frame) > limit:
            out.append(f"  ... and {len(frame) - limit} more")
    if s["failures"]:
        out.append("")
        out.append(f"gate failures ({len(s['failures'])}):")
        for line in s["failures"]:
            prose(line, "  ")
    return "\n".join(out) + "\n"


def _cell_cols(r) -> list[str]:
    return [r.op, r.variant if hasattr(r, "variant") else r.impl, r.dtype, r.kind or _DASH,
            _fmt_size(r.m, r.n), _fmt_g(r.kappa, 2), _fmt_int(r.seed)]


_CELL_HEADERS = ["op", "impl", "dtype", "kind", "n", "kappa", "seed"]
_CELL_ALIGNS = "<<<<>>>"
# Columns that may be shortened to fit a width (impl, kind), and how far.
_SHRINKABLE = (1, 3)
_MIN_WIDTH = {1: 16, 3: 6}


def _speed_table(frame):
    headers = [*_CELL_HEADERS, "base", "head", "change", "speedup", "p adj", "delta",
               "samples", "peak x"]
    body = [
        [*_cell_cols(r), _fmt_time(r.time_base_s), _fmt_time(r.time_head_s),
         _fmt_pct(r.change), _fmt_factor(r.speedup), _fmt_p(r.p_adjusted),
         f"{r.effect:+.2f}" if _finite(r.effect) else _DASH, f"{r.n_base}/{r.n_head}",
         _fmt_factor(r.peak_speedup)]
        for r in frame.itertuples(index=False)
    ]
    return headers, _CELL_ALIGNS + ">" * 8, body


def _accuracy_table(frame):
    headers, aligns = [*_CELL_HEADERS, "status"], _CELL_ALIGNS + "<"
    # Only the metrics some shown row has (a NaN-turned metric shows as inf).
    shown = [(metric, prefix) for metric, (prefix, _) in ACCURACY_METRICS.items()
             if frame[f"{prefix}_change"].notna().any()]
    for metric, _ in shown:
        headers += [f"{metric.replace('_', ' ')} b -> h", "x"]
        aligns += ">>"
    headers.append("worst")
    aligns += ">"
    body = []
    for r in frame.itertuples(index=False):
        cells = [*_cell_cols(r), _status_pair(r)]
        for _, prefix in shown:
            cells += [f"{_fmt_g(getattr(r, f'{prefix}_base'))} -> "
                      f"{_fmt_g(getattr(r, f'{prefix}_head'))}",
                      _fmt_factor(getattr(r, f"{prefix}_change"))]
        body.append([*cells, _fmt_factor(r.accuracy_change)])
    return headers, aligns, body


def _status_pair(r) -> str:
    return r.status_base if r.status_base == r.status_head else f"{r.status_base}->{r.status_head}"


def _status_table(frame):
    headers = [*_CELL_HEADERS, "base", "head", "message (head)"]
    body = [
        [*_cell_cols(r), r.status_base, r.status_head, _one_line(r.message_head, 100) or _DASH]
        for r in frame.itertuples(index=False)
    ]
    return headers, _CELL_ALIGNS + "<<<", body


def _unmatched_table(frame):
    headers = [*_CELL_HEADERS, "status", "key"]
    body = [[*_cell_cols(r), r.status, r.cell_key] for r in frame.itertuples(index=False)]
    return headers, _CELL_ALIGNS + "<<", body


def _layout(headers, aligns, body, width) -> list[str]:
    cols = len(headers)
    widths = [max([len(headers[j])] + [len(row[j]) for row in body]) for j in range(cols)]
    if width is not None:
        excess = 2 + sum(widths) + 2 * (cols - 1) - width
        for j in _SHRINKABLE:
            if excess <= 0:
                break
            cut = min(excess, widths[j] - max(len(headers[j]), _MIN_WIDTH[j]))
            if cut > 0:
                widths[j] -= cut
                excess -= cut

    def line(cells):
        parts = []
        for j, text in enumerate(cells):
            text = _cut(text, widths[j])
            parts.append(text.ljust(widths[j]) if aligns[j] == "<" else text.rjust(widths[j]))
        return "  " + "  ".join(parts).rstrip()

    return [line(headers), *(line(row) for row in body)]


# --------------------------------------------------------------------- HTML


def render_compare(cmp: Comparison) -> str:
    """Render a comparison as one self-contained HTML page.

    The page holds the verdict header, the gate lines, one speedup figure per
    op (inline SVG), the slower, faster, less accurate and status-change
    tables, a sortable table of every matched cell (a few lines of inline
    JavaScript; no network reference) and the unmatched cells.  Jinja2
    autoescapes every value; only matplotlib's SVG is marked safe.  The
    output depends only on ``cmp``: rendering twice gives identical bytes.

    Parameters
    ----------
    cmp : Comparison

    Returns
    -------
    str
        The HTML document.
    """
    from factorbench.reports import _compare_plot

    s = _summary(cmp)
    rows = cmp.rows
    figures = []
    for op in sorted(set(rows["op"])):
        slug = "".join(ch if ch.isalnum() else "-" for ch in op)
        svg, notes = _compare_plot.speedup_figure(
            rows[rows["op"] == op], fig_id=f"cmp-{slug}", alpha=cmp.options.alpha,
            min_effect=_floor(cmp), title=f"{op}: speedup (base / head median time)",
        )
        figures.append({"op": op, "svg": Markup(svg) if svg else None, "notes": notes})
    context = {
        "title": f"factorbench compare: {s['base']['name']} -> {s['head']['name']}",
        "s": s,
        "figures": figures,
        "slower": [_html_speed(r) for r in cmp.slower.itertuples(index=False)],
        "faster": [_html_speed(r) for r in cmp.faster.itertuples(index=False)],
        "less_accurate": [_html_row(r) for r in cmp.less_accurate.itertuples(index=False)],
        "status_changes": [_html_row(r) for r in cmp.status_changes.itertuples(index=False)],
        "cells": [_html_row(r) for r in rows.itertuples(index=False)],
        "base_only": [_html_unmatched(r) for r in cmp.base_only.itertuples(index=False)],
        "head_only": [_html_unmatched(r) for r in cmp.head_only.itertuples(index=False)],
        "min_effect": f"{_floor(cmp):.0%}",
        "alpha": f"{cmp.options.alpha:g}",
        "factor": f"{cmp.options.accuracy_threshold:g}",
    }
    return environment().get_template("compare.html.j2").render(**context)


def _num(x) -> str:
    """Sort key for the HTML table: repr of a finite float, '' otherwise."""
    if isinstance(x, bool | np.bool_):
        return str(int(x))
    try:
        x = float(x)
    except (TypeError, ValueError):
        return ""
    if math.isnan(x):
        return ""
    return repr(x) if math.isfinite(x) else ("1e999" if x > 0 else "-1e999")


def _html_cell(r) -> dict:
    return {
        "op": r.op, "impl": r.variant if hasattr(r, "variant") else r.impl, "dtype": r.dtype,
        "kind": r.kind or _DASH, "size": _fmt_size(r.m, r.n), "n": _num(r.n),
        "kappa": _fmt_g(r.kappa, 2), "kappa_v": _num(r.kappa), "seed": _fmt_int(r.seed),
        "seed_v": _num(r.seed), "key": r.cell_key,
    }


def _html_speed(r) -> dict:
    return {
        **_html_cell(r),
        "time_base": _fmt_time(r.time_base_s), "time_head": _fmt_time(r.time_head_s),
        "change": _fmt_pct(r.change), "speedup": _fmt_factor(r.speedup),
        "p_adjusted": _fmt_p(r.p_adjusted), "p_value": _fmt_p(r.p_value),
        "effect": f"{r.effect:+.2f}" if _finite(r.effect) else _DASH,
        "samples": f"{r.n_base}/{r.n_head}", "peak_speedup": _fmt_factor(r.peak_speedup),
        "noisy": bool(r.noisy), "concurrent": bool(r.concurrent),
    }


def _html_row(r) -> dict:
    return {
        **_html_speed(r),
        "v": {k: _num(getattr(r, k)) for k in (
            "time_base_s", "time_head_s", "change", "speedup", "p_adjusted", "effect",
            "peak_speedup", "backward_base", "backward_head", "backward_change",
            "forward_base", "forward_head", "forward_change", "orthogonality_change",
            "accuracy_change", "n_base")},
        "speed_verdict": r.speed_verdict,
        "accuracy_verdict": r.accuracy_verdict,
        "status_base": r.status_base, "status_head": r.status_head,
        "message_head": _one_line(r.message_head, 300),
        "backward": f"{_fmt_g(r.backward_base)} \u2192 {_fmt_g(r.backward_head)}",
        "backward_change": _fmt_factor(r.backward_change),
        "forward": f"{_fmt_g(r.forward_base)} \u2192 {_fmt_g(r.forward_head)}",
        "forward_change": _fmt_factor(r.forward_change),
        "orthogonality": f"{_fmt_g(r.orthogonality_base)} \u2192 "
                         f"{_fmt_g(r.orthogonality_head)}",
        "orthogonality_change": _fmt_factor(r.orthogonality_change),
        "accuracy_change": _fmt_factor(r.accuracy_change),
    }


def _html_unmatched(r) -> dict:
    return {**_html_cell(r), "status": r.status}


