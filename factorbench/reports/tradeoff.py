"""Speed against accuracy: approximate and randomized methods next to the deterministic driver.

A randomized SVD, a sketched least-squares solver or a peer library's
truncated SVD is only worth choosing if what it saves in time is not paid
for in accuracy the user cannot afford.  :func:`tradeoff_table` puts the
two side by side for every problem such a method ran on: per (run, op,
kind, m x n, kappa, dtype, rank) one row per impl and parameter setting,
with its median time and 95% CI, the speedup over the op's deterministic
reference (:data:`REFERENCES`, else the fastest ``library`` impl there),
its status, the accuracy columns that matter for the op
(:data:`ACCURACY_COLUMNS`) and whether it lies on the Pareto front of time
against the op's primary accuracy metric (:data:`PRIMARY`).

Only groups holding at least one ``randomized`` or ``peer`` cell get rows:
for the deterministic families the throughput table and the Pareto plot
already tell the story, and a report of a run without those families stays
exactly as it was.

Honesty rules, the same as the rest of the report's:

* Several cells of one row (seeds) are summarised by the median time, the
  envelope of their confidence intervals, and the *worst* value of every
  accuracy metric, so one lucky matrix cannot make a method look accurate.
* A metric computed as NaN or Inf shows as ``nan`` or ``inf``, never as a
  number or a blank, and its row is never on the front; a metric the op
  did not record shows as a dash.  The store keeps NaN as NULL and names the
  column in ``nan_columns``; without that list a NaN counts as a result only
  on a failed cell of an op that records the metric elsewhere (the rule of
  :func:`factorbench.reports.figure._nonfinite`).
* Only rows whose every cell passed compete for the front: a fast wrong
  answer is not a trade-off.
* Speedups are formed only inside one group of one run: two runs are two
  machines or two moments, and two shapes are two problems.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd

from factorbench.reports._format import (
    _finite,
    _fmt_factor,
    _fmt_g,
    _fmt_int,
    _fmt_time_ci,
)
from factorbench.reports._frames import params_text

__all__ = [
    "ACCURACY_COLUMNS",
    "COLUMN_LABELS",
    "PRIMARY",
    "REFERENCES",
    "TRADEOFF_FAMILIES",
    "accuracy_columns",
    "format_tradeoff",
    "format_value",
    "tradeoff_groups",
    "tradeoff_table",
]

#: The deterministic driver each op's approximate methods are measured against.
REFERENCES = {
    "lowrank": "lowrank/gesdd",
    "lstsq": "lstsq/gelsd",
    "qrcp": "qrcp/lapack",
    "qr": "qr/lapack",
    "solve": "solve/gesv",
}

#: Families whose presence in a group earns it a trade-off table.
TRADEOFF_FAMILIES = ("randomized", "peer", "mixed")

#: The accuracy metric the Pareto front is drawn on (smaller is better);
#: ``backward_ratio`` for an op not listed.
PRIMARY = {"lowrank": "lowrank_error_ratio", "lstsq": "forward_error", "solve": "forward_error"}

#: The accuracy columns shown per op, in order; the default for an op not listed.
ACCURACY_COLUMNS = {
    "lowrank": ("lowrank_error_ratio", "lowrank_spectral_ratio", "rank_revealed"),
    "lstsq": ("forward_error", "kappa_scaled_error", "kappa2_scaled_error", "backward_ratio",
              "error_vs_ref"),
    "qrcp": ("rank_revealed", "numerical_rank", "backward_ratio", "orthogonality_ratio"),
    "qr": ("backward_ratio", "orthogonality_ratio"),
    # mixed-precision refinement against gesv: how accurate, after how many steps
    "solve": ("forward_error", "kappa_scaled_error", "backward_ratio", "iterations",
              "converged", "error_vs_ref"),
}
_DEFAULT_COLUMNS = ("backward_ratio", "orthogonality_ratio")

#: Column -> (short header, what it is); the text table and the HTML report share them.
COLUMN_LABELS = {
    "lowrank_error_ratio": ("err/opt F", "||A - A_k^||_F / ||A - A_k||_F: 1 is the optimal "
                                         "rank-k approximation (worst over seeds); for an "
                                         "adaptive method (a rank shown) ||A - A^||_F / "
                                         "(tol ||A||_F), at most 1 when it met its "
                                         "tolerance, and it is not on the front"),
    "lowrank_spectral_ratio": ("err/opt 2", "||A - A_k^||_2 / sigma_(k+1): the spectral-norm "
                                            "counterpart (worst over seeds)"),
    "rank_revealed": ("rank", "rank the method chose or revealed (empty: fixed by the caller)"),
    "numerical_rank": ("num. rank", "numerical rank of the matrix from its known spectrum"),
    "forward_error": ("fwd error", "||x^ - x||_2 / ||x||_2 (worst over seeds)"),
    "kappa_scaled_error": ("fwd/(cond u)", "forward error / (cond u), cond = kappa for a "
                                           "consistent right-hand side, kappa + kappa^2 eta "
                                           "with a residual (Wedin)"),
    "kappa2_scaled_error": ("fwd/(kappa^2 u)", "forward error / (kappa^2 u)"),
    "backward_ratio": ("bwd ratio", "backward error / (max(m, n) u) (worst over seeds)"),
    "orthogonality_ratio": ("orth. ratio", "orthogonality loss / (m u) (worst over seeds)"),
    "error_vs_ref": ("x ref error", "forward error / the reference's forward error"),
    "iterations": ("iter.", "iterations of an iterative method (refinement steps, LSQR); "
                            "lo-hi over seeds"),
    "converged": ("conv.", "whether the iterative method converged: yes, no, or some "
                           "(on some seeds)"),
}

_FLOAT_METRICS = ("lowrank_error_ratio", "lowrank_spectral_ratio", "forward_error",
                  "kappa_scaled_error", "kappa2_scaled_error", "backward_ratio",
                  "orthogonality_ratio")
#: Integer columns shown as ``k`` or ``lo-hi`` over seeds.
_RANKS = ("rank_revealed", "numerical_rank", "iterations")
_GROUP = ["run_id", "op", "kind", "m", "n", "kappa", "dtype", "rank"]
_ROW = [*_GROUP, "impl", "params"]
# Numeric group keys may be missing (rank outside lowrank); pandas drops NaN
# keys by default and handles them unevenly, so they group under a value no
# real problem has and are restored afterwards.
_NUMERIC_KEYS = ("m", "n", "kappa", "rank")
_MISSING_KEY = -1.0
# Cells that never produced a result have no place in a trade-off.
_NOT_RUN = ("skipped", "unavailable")
_STATUS_ORDER = ("ok", "failed", "error", "crashed", "timeout")

_COLUMNS = [*_GROUP, "impl", "family", "params", "status", "cells", "ok_cells",
            "time_median_s", "time_ci_low_s", "time_ci_high_s", "reference", "reference_time_s",
            "speedup", *_FLOAT_METRICS, "rank_revealed", "rank_revealed_max", "numerical_rank",
            "numerical_rank_max", "iterations", "iterations_max", "converged", "error_vs_ref",
            "nan_columns", "primary", "pareto"]


def accuracy_columns(op: str) -> tuple[str, ...]:
    """The accuracy columns shown for ``op`` (see :data:`ACCURACY_COLUMNS`)."""
    return ACCURACY_COLUMNS.get(op, _DEFAULT_COLUMNS)


def tradeoff_table(
    cells: pd.DataFrame,
    *,
    references: Mapping[str, str] | None = None,
    families: tuple[str, ...] = TRADEOFF_FAMILIES,
) -> pd.DataFrame:
    """Time, speedup over the deterministic driver and accuracy, per impl and setting.

    Parameters
    ----------
    cells : pandas.DataFrame
        Store cells.  Required: ``run_id, op, impl, status``; used when
        present: ``family, kind, m, n, kappa, dtype, rank, params_json,
        time_median_s, time_ci_low_s, time_ci_high_s, nan_columns`` and the
        metric columns of :data:`COLUMN_LABELS`.
    references : mapping of str to str, optional
        op -> impl id of the deterministic reference; default
        :data:`REFERENCES`.  Where it did not run in a group (or the op has
        none) the fastest ``library``-family impl there is the reference.
    families : tuple of str
        A group gets rows only when one of its cells is of these families.

    Returns
    -------
    pandas.DataFrame
        One row per (run_id, op, kind, m, n, kappa, dtype, rank, impl,
        params): ``family``; ``status`` (``ok`` when every cell passed, else
        the other statuses joined by ``+``), ``cells`` and ``ok_cells``;
        ``time_median_s`` (median over the cells), ``time_ci_low_s`` and
        ``time_ci_high_s`` (the envelope of their 95% CIs); ``reference``
        (impl id or None), ``reference_time_s`` and ``speedup`` =
        reference_time_s / time_median_s (NaN without a reference); the
        float metrics, each the worst (largest) over the cells;
        ``rank_revealed``/``numerical_rank`` (smallest) with ``..._max``
        (largest); ``error_vs_ref`` = forward_error / the reference's;
        ``nan_columns`` (comma-separated metrics that came out NaN, as in
        the store; ``""`` if none); ``primary`` (the front's metric) and
        ``pareto`` (True on the front).  Sorted by group, then time (missing
        last).  Empty, with these columns, when no group qualifies.
    """
    need = {"run_id", "op", "impl", "status"}
    if cells.empty or not need <= set(cells.columns):
        return pd.DataFrame(columns=_COLUMNS)
    # Most ops of most runs have no such family: answer before any work, and
    # leave a report of them exactly as it was.
    if "family" not in cells or not cells["family"].isin(families).any():
        return pd.DataFrame(columns=_COLUMNS)
    refs = REFERENCES if references is None else references
    data = _normalise(cells[~cells["status"].isin(_NOT_RUN)])
    if data.empty:
        return pd.DataFrame(columns=_COLUMNS)
    keep = (data["family"].isin(families)
            .groupby([data[c] for c in _GROUP], sort=False).transform("any"))
    data = data[keep.astype(bool)]
    if data.empty:
        return pd.DataFrame(columns=_COLUMNS)

    rows = _aggregate(data)
    parts = [_compare(g, refs) for _, g in rows.groupby(_GROUP, sort=True)]
    out = pd.concat(parts, ignore_index=True)
    out = out.sort_values([*_GROUP, "time_median_s", "impl", "params"], kind="mergesort",
                          na_position="last")
    for col in _NUMERIC_KEYS:
        out[col] = out[col].where(out[col] != _MISSING_KEY, np.nan)
    return out[_COLUMNS].reset_index(drop=True)


def tradeoff_groups(table: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """The groups of a :func:`tradeoff_table`, in its order, one frame each."""
    if table.empty:
        return
    # first-appearance order is the table's sorted order; a missing rank is a key too
    for _, g in table.groupby(_GROUP, sort=False, dropna=False):
        yield g


def format_value(row, column: str) -> str:
    """One accuracy column of a table row as text.

    ``nan``/``inf`` for a metric computed as NaN/Inf, a dash for one not
    recorded; ranks as ``k`` or ``lo-hi`` over seeds and empty when not
    recorded; ``error_vs_ref`` as a factor, empty without a reference.
    """
    if column in _RANKS:
        lo, hi = row[column], row[f"{column}_max"]
        if not _finite(lo):
            return ""
        return f"{int(lo)}" if lo == hi else f"{int(lo)}-{int(hi)}"
    if column == "converged":
        value = row[column]
        return "" if pd.isna(value) else {1.0: "yes", 0.0: "no"}.get(float(value), "some")
    if column in _nan_set(row):
        return "nan"
    if column == "error_vs_ref":
        value = row[column]
        return _fmt_factor(value) if not pd.isna(value) else ""
    return _fmt_g(row[column])


def format_tradeoff(table: pd.DataFrame) -> str:
    """The table as aligned plain text, one block per group.

    Each block starts with a line naming run, op, kind, shape, kappa, dtype,
    rank and the reference, then one line per impl and setting, fastest
    first: impl, params, status, median time [95% CI], ``x ref`` (the
    speedup; empty without a reference), the op's accuracy columns and
    ``*`` on the Pareto front.
    """
    if table.empty:
        return "no randomized or peer cells: no speed-accuracy trade-off to show\n"
    lines = []
    for g in tradeoff_groups(table):
        first = g.iloc[0]
        cols = accuracy_columns(first["op"])
        head = ["impl", "params", "status", "time [95% CI]", "x ref",
                *(COLUMN_LABELS[c][0] for c in cols), "front"]
        rows = [[r["impl"], r["params"], _status_text(r),
                 _fmt_time_ci(r["time_median_s"], r["time_ci_low_s"], r["time_ci_high_s"]),
                 _speedup_text(r["speedup"]), *(format_value(r, c) for c in cols),
                 "*" if r["pareto"] else ""]
                for _, r in g.iterrows()]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines.append(_header(first))
        for r in [head, *rows]:
            # names left, numbers right, as in the throughput table
            lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                         .rstrip())
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------ helpers


def _normalise(cells: pd.DataFrame) -> pd.DataFrame:
    out = cells.copy().reset_index(drop=True)
    for col, fill in (("family", ""), ("kind", ""), ("dtype", "?")):
        if col not in out:
            out[col] = fill
        out[col] = out[col].astype(object).where(out[col].notna(), fill).astype(str)
    for col in ("op", "impl", "status"):
        out[col] = out[col].astype(str)
    out["run_id"] = pd.to_numeric(out["run_id"], errors="coerce").astype("Int64")
    for col in (*_NUMERIC_KEYS, "time_median_s", "time_ci_low_s", "time_ci_high_s",
                *_FLOAT_METRICS, *_RANKS, "converged"):
        out[col] = (pd.to_numeric(out[col], errors="coerce").astype(float) if col in out
                    else np.nan)
    for col in _NUMERIC_KEYS:
        out[col] = out[col].fillna(_MISSING_KEY)
    out["params"] = out["params_json"].map(params_text) if "params_json" in out else ""
    # which NaNs are results (see the module docstring); decided per op, as
    # "the op records the metric elsewhere" is a statement about the op
    for col in _FLOAT_METRICS:
        out[f"_nan_{col}"] = _computed_nan(out, col)
    return out


def _computed_nan(data: pd.DataFrame, col: str) -> pd.Series:
    """Cells whose ``col`` was computed and came out NaN."""
    values = data[col]
    listed = pd.Series(False, index=data.index)
    if "nan_columns" in data:
        listed = data["nan_columns"].map(
            lambda text: isinstance(text, str) and col in text.split(",")).astype(bool)
    recorded_in_op = (values.notna() | listed).groupby(data["op"]).transform("any")
    return values.isna() & (listed | (data["status"].eq("failed") & recorded_in_op))


def _status_of(statuses: pd.Series) -> str:
    bad = sorted(set(statuses) - {"ok"},
                 key=lambda s: (_STATUS_ORDER.index(s) if s in _STATUS_ORDER else 99, s))
    return "+".join(bad) if bad else "ok"


def _aggregate(data: pd.DataFrame) -> pd.DataFrame:
    """One row per impl and setting in each group: median time, worst accuracy."""
    spec = {
        "family": ("family", "first"),
        "status": ("status", _status_of),
        "cells": ("status", "size"),
        "ok_cells": ("status", lambda s: int((s == "ok").sum())),
        "time_median_s": ("time_median_s", "median"),
        # the CIs are per cell (per matrix); their envelope is what a seed
        # could have given, and is honest about spread between matrices
        "time_ci_low_s": ("time_ci_low_s", "min"),
        "time_ci_high_s": ("time_ci_high_s", "max"),
        **{c: (c, "max") for c in _FLOAT_METRICS},
        **{f"_nan_{c}": (f"_nan_{c}", "any") for c in _FLOAT_METRICS},
        **{c: (c, "min") for c in _RANKS},
        **{f"{c}_max": (c, "max") for c in _RANKS},
        # the fraction of seeds that converged: 1 all, 0 none, NaN not recorded
        "converged": ("converged", "mean"),
    }
    rows = data.groupby(_ROW, sort=False).agg(**spec).reset_index()
    nan_lists = [[] for _ in range(len(rows))]
    for col in _FLOAT_METRICS:
        flagged = rows[f"_nan_{col}"].to_numpy(bool)
        # a NaN on any seed is the row's value: the worst case is unknown
        rows.loc[flagged, col] = np.nan
        for i in np.flatnonzero(flagged):
            nan_lists[i].append(col)
    rows["nan_columns"] = [",".join(x) for x in nan_lists]
    return rows.drop(columns=[f"_nan_{c}" for c in _FLOAT_METRICS])


def _compare(group: pd.DataFrame, refs: Mapping[str, str]) -> pd.DataFrame:
    """Reference, speedup, error relative to the reference and the front, in one group."""
    g = group.copy()
    op = g["op"].iloc[0]
    primary = PRIMARY.get(op, "backward_ratio")
    timed = g[np.isfinite(g["time_median_s"])]
    # A passing run of the reference is preferred, but a failed one is still
    # the driver's time on this problem.
    order = ["_bad", "time_median_s"]
    timed = timed.assign(_bad=timed["status"] != "ok").sort_values(order, kind="mergesort")
    ref = timed[timed["impl"] == refs.get(op)]
    if ref.empty:
        ref = timed[timed["family"] == "library"]
    if ref.empty:
        g["reference"] = None
        g["reference_time_s"] = np.nan
        ref_forward, ref_forward_nan = np.nan, False
    else:
        r = ref.iloc[0]
        g["reference"] = r["impl"]
        g["reference_time_s"] = r["time_median_s"]
        ref_forward = r["forward_error"]
        ref_forward_nan = "forward_error" in _nan_set(r)
    g["speedup"] = g["reference_time_s"] / g["time_median_s"]
    with np.errstate(divide="ignore", invalid="ignore"):
        g["error_vs_ref"] = g["forward_error"].to_numpy(float) / ref_forward
    own_nan = g["nan_columns"].map(lambda t: "forward_error" in t.split(","))
    # the ratio of a NaN result is a NaN result; against a reference whose
    # own error is NaN there is nothing to compare with: blank
    g.loc[own_nan, "error_vs_ref"] = np.nan
    g.loc[own_nan, "nan_columns"] = g.loc[own_nan, "nan_columns"] + ",error_vs_ref"
    if ref_forward_nan:
        g.loc[~own_nan, "error_vs_ref"] = np.nan
    g["primary"] = primary
    g["pareto"] = _front(g, primary)
    return g


def _front(g: pd.DataFrame, primary: str) -> np.ndarray:
    """Rows no other eligible row beats: faster and at least as accurate."""
    shown = [c for c in accuracy_columns(g["op"].iloc[0]) if c in _FLOAT_METRICS]
    nonfinite = np.isinf(g[shown].to_numpy(float)).any(axis=1)
    nonfinite |= (g["nan_columns"] != "").to_numpy(bool)
    t = g["time_median_s"].to_numpy(float)
    p = g[primary].to_numpy(float)
    # Only rows that passed on every seed, with a time and a finite primary
    # metric, compete; a NaN or Inf anywhere keeps a row off the front.
    eligible = ((g["status"] == "ok").to_numpy(bool) & np.isfinite(t) & np.isfinite(p)
                & ~nonfinite)
    if g["op"].iloc[0] == "lowrank":
        # an adaptive method answers another question (its own tolerance, at the
        # rank it chose): its ratio is against that tolerance, not the rank-k optimum
        eligible &= ~np.isfinite(g["rank_revealed"].to_numpy(float))
    front = np.zeros(len(g), dtype=bool)
    idx = np.flatnonzero(eligible)
    for i in idx:
        beaten = (t[idx] < t[i]) & (p[idx] <= p[i])
        front[i] = not beaten.any()
    return front


def _nan_set(row) -> set[str]:
    text = row["nan_columns"]
    return set(text.split(",")) if isinstance(text, str) and text else set()


def _status_text(r) -> str:
    if r["status"] == "ok":
        return "ok"
    return f"{r['status']} ({r['ok_cells']}/{r['cells']} ok)" if r["cells"] > 1 else r["status"]


def _speedup_text(x) -> str:
    return _fmt_factor(x) if not pd.isna(x) else ""




def _header(r) -> str:
    parts = [f"run {r['run_id']}", str(r["op"]), f"kind {r['kind'] or '?'}",
             f"{_fmt_int(r['m'])}x{_fmt_int(r['n'])}", f"kappa {_fmt_g(r['kappa'], 2)}",
             str(r["dtype"])]
    if _finite(r["rank"]):
        parts.append(f"rank {int(r['rank'])}")
    ref = r["reference"] if isinstance(r["reference"], str) else "none"
    label = COLUMN_LABELS[r["primary"]][0]
    return (", ".join(parts)
            + f"  (reference {ref}; x ref = its time / this time; * = Pareto front of time "
              f"against {label})")
