"""Throughput next to the library: each impl's GFLOP/s as a ratio to LAPACK's.

The question the blocked and compiled families answer is how close a BLAS-3
formulation gets to the vendor library on the same machine, in the same run.
:func:`throughput_table` answers it per (run, op, dtype, shape): every impl's
best parameter setting (block size) by median GFLOP/s, its fraction of the
run's GEMM ceiling, and its ratio to the fastest ``library``-family impl of
the op at the same point.

Only cells with status ``ok`` count: a fast wrong answer is not throughput.
A point's GFLOP/s is the median over the cells that share it (kinds, kappas
and seeds), so one matrix family cannot decide it; ratios are formed only
inside one run, because two runs are two machines or two moments.
"""

from __future__ import annotations

import pandas as pd

from factorbench.reports._frames import params_text

__all__ = ["throughput_table", "format_throughput"]

_POINT = ["run_id", "op", "dtype", "m", "n"]
_COLUMNS = [*_POINT, "impl", "family", "params", "gflops", "peak_fraction", "cells",
            "baseline", "baseline_gflops", "ratio", "tried"]


def throughput_table(cells: pd.DataFrame, *, baseline_family: str = "library") -> pd.DataFrame:
    """Best GFLOP/s per impl and its ratio to the fastest library impl.

    Parameters
    ----------
    cells : pandas.DataFrame
        Store cells with ``run_id, op, impl, family, dtype, m, n, params_json,
        status, gflops, peak_fraction``.
    baseline_family : str
        The family the ratios divide by (the vendor library).

    Returns
    -------
    pandas.DataFrame
        One row per (run_id, op, dtype, m, n, impl): ``params`` (the best
        setting, ``""`` for an impl without parameters), ``gflops`` and
        ``peak_fraction`` (medians over that setting's cells), ``cells`` (how
        many), ``baseline`` (the fastest library impl there, or None),
        ``baseline_gflops``, ``ratio`` = gflops / baseline_gflops (NaN without
        a baseline) and ``tried`` (how many settings ran ok).  Sorted by
        point, then ratio descending.
    """
    need = {"status", "gflops", "impl", "family", *_POINT}
    if cells.empty or not need <= set(cells.columns):
        return pd.DataFrame(columns=_COLUMNS)
    ok = cells[(cells["status"] == "ok") & cells["gflops"].notna()].copy()
    if ok.empty:
        return pd.DataFrame(columns=_COLUMNS)
    ok["params"] = (ok["params_json"].map(params_text) if "params_json" in ok else "")
    if "peak_fraction" not in ok:
        ok["peak_fraction"] = float("nan")
    per_setting = (ok.groupby([*_POINT, "impl", "family", "params"], dropna=False)
                   .agg(gflops=("gflops", "median"), peak_fraction=("peak_fraction", "median"),
                        cells=("gflops", "size"))
                   .reset_index())
    tried = per_setting.groupby([*_POINT, "impl"])["params"].transform("size")
    per_setting["tried"] = tried
    best = (per_setting.sort_values("gflops", ascending=False, kind="mergesort")
            .drop_duplicates([*_POINT, "impl"]))
    lib = (best[best["family"] == baseline_family]
           .sort_values("gflops", ascending=False, kind="mergesort")
           .drop_duplicates(_POINT)[[*_POINT, "impl", "gflops"]]
           .rename(columns={"impl": "baseline", "gflops": "baseline_gflops"}))
    out = best.merge(lib, on=_POINT, how="left")
    out["ratio"] = out["gflops"] / out["baseline_gflops"]
    out = out.sort_values([*_POINT, "ratio", "gflops"], ascending=[True] * 5 + [False, False],
                          kind="mergesort", na_position="last")
    return out[_COLUMNS].reset_index(drop=True)


def format_throughput(table: pd.DataFrame) -> str:
    """The table as aligned plain text: one block per (run, op, dtype), impls as
    rows, n as columns, each entry ``GFLOP/s (peak %) xratio``."""
    if table.empty:
        return "no ok cells with a GFLOP/s figure\n"
    lines = []
    for (run_id, op, dtype), t in table.groupby(["run_id", "op", "dtype"], sort=True):
        sizes = sorted(set(zip(t["m"], t["n"], strict=True)), key=lambda s: (s[1], s[0]))
        head = ["impl"] + [f"{m}x{n}" if m != n else f"n={n}" for m, n in sizes]
        rows = []
        for impl, g in t.groupby("impl", sort=True):
            row = [impl]
            for m, n in sizes:
                hit = g[(g["m"] == m) & (g["n"] == n)]
                row.append(_entry(hit.iloc[0]) if len(hit) else "-")
            rows.append(row)
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines.append(f"run {run_id}, {op}, {dtype}  (GFLOP/s (fraction of GEMM peak) "
                     "x ratio to the fastest library impl, best params)")
        for r in [head, *rows]:
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _entry(r) -> str:
    pf = f" ({r['peak_fraction']:.0%})" if pd.notna(r["peak_fraction"]) else ""
    ratio = f" x{r['ratio']:.2f}" if pd.notna(r["ratio"]) else ""
    params = f" {r['params']}" if r["params"] else ""
    return f"{r['gflops']:.1f}{pf}{ratio}{params}"

