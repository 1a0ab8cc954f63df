"""Performance figures: time and GFLOP/s against size.

Each function takes the normalised cells of one op and returns a
:class:`~factorbench.reports.figure.Plot`; the shared machinery (styles,
colours, SVG output) and its design choices are in
:mod:`factorbench.reports.figure`.  The accuracy and decision figures live in
:mod:`factorbench.reports.accuracy_plots` and
:mod:`factorbench.reports.decision_plots`; :func:`backward_ratio_vs_kappa`
and :func:`palette` are re-exported here so one import serves the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from factorbench.reports.accuracy_plots import backward_ratio_vs_kappa
from factorbench.reports.figure import (
    _GREYS,
    Plot,
    _failed,
    _figure,
    _label,
    _legend,
    _log_axes,
    _log_range,
    _mark_failed,
    _mark_top,
    _nonfinite,
    _numeric,
    _plain,
    _positive,
    _series_frame,
    _size_ticks,
    _Styles,
    _to_svg,
    palette,
)

__all__ = [
    "Plot",
    "palette",
    "fit_exponent",
    "time_vs_n",
    "gflops_vs_n",
    "backward_ratio_vs_kappa",
]


def fit_exponent(n, t) -> float:
    """Least-squares exponent ``p`` of ``t ~ c n**p``.

    Parameters
    ----------
    n, t : array_like
        Sizes and times (any positive quantity).  Pairs where either value is
        non-finite or not positive are ignored.

    Returns
    -------
    float
        Slope of ``log t`` against ``log n``; NaN when fewer than two
        distinct sizes remain.
    """
    n = np.asarray(n, dtype=float).ravel()
    t = np.asarray(t, dtype=float).ravel()
    keep = np.isfinite(n) & np.isfinite(t) & (n > 0) & (t > 0)
    n, t = n[keep], t[keep]
    if np.unique(n).size < 2:
        return math.nan
    x = np.log(n)
    y = np.log(t)
    dx = x - x.mean()
    return float(np.dot(dx, y - y.mean()) / np.dot(dx, dx))


def time_vs_n(
    cells: pd.DataFrame,
    *,
    fig_id: str,
    title: str = "Time vs n",
    colors: Mapping[str, object] | None = None,
) -> Plot:
    """Median time against size, log-log, one line per series.

    A series is one (``variant``, ``dtype``, ``run_name``); its point at each
    ``n`` is the median of ``time_median_s`` over the cells with a time
    (all kappas, kinds and statuses), with a band between the medians of
    ``time_ci_low_s`` and ``time_ci_high_s``.  The legend carries the fitted
    exponent (:func:`fit_exponent`).

    Parameters
    ----------
    cells : pandas.DataFrame
        Cells of one op with columns ``variant`` (or ``impl``), ``dtype``,
        ``n``, ``time_median_s``, ``time_ci_low_s``, ``time_ci_high_s`` and
        optionally ``run_name`` (appended to labels when it takes more than
        one value).
    fig_id : str
        Prefix that makes the SVG's ids unique within the HTML document.
    title : str, optional
        Caption.
    colors : mapping of str to colour, optional
        Colour per variant, e.g. the report's :func:`palette`.

    Returns
    -------
    Plot
    """
    data = _series_frame(cells)
    for col in ("n", "time_median_s", "time_ci_low_s", "time_ci_high_s"):
        data[col] = _numeric(data, col)
    timed = data[_positive(data["time_median_s"]) & _positive(data["n"])]
    if timed.empty:
        return Plot(title, None, ("no data: no cell of this op has a time",))

    keys = ["variant", "dtype", "run_name"]
    points = (
        timed.groupby([*keys, "n"], sort=True)
        .agg(
            t=("time_median_s", "median"),
            lo=("time_ci_low_s", "median"),
            hi=("time_ci_high_s", "median"),
        )
        .reset_index()
    )
    styles = _Styles(points, colors)
    with _figure() as (fig, ax):
        for (variant, dtype, run_name), s in points.groupby(keys, sort=True):
            color, linestyle, marker = styles.line(variant, dtype, run_name)
            p = fit_exponent(s["n"], s["t"])
            label = _label(variant, dtype, run_name if styles.multi_run else None)
            if math.isfinite(p):
                label += f" (n^{p:.1f})"
            ax.plot(
                s["n"],
                s["t"],
                color=color,
                linestyle=linestyle,
                marker=marker,
                markersize=3.5,
                linewidth=1.2,
                label=_plain(label),
            )
            if (s["lo"].notna() & s["hi"].notna()).any():
                ax.fill_between(
                    s["n"].to_numpy(float),
                    s["lo"].to_numpy(float),
                    s["hi"].to_numpy(float),
                    color=color,
                    alpha=0.15,
                    linewidth=0,
                )
        _log_axes(ax)
        _size_ticks(ax, points["n"])
        ax.set_xlabel("n")
        ax.set_ylabel("median time (s)")
        _legend(ax)
        svg = _to_svg(fig, fig_id)
    return Plot(title, svg)


def gflops_vs_n(
    cells: pd.DataFrame,
    *,
    fig_id: str,
    ceilings: Mapping[tuple[str, str], float] | Mapping[str, float],
    title: str = "GFLOP/s vs n",
    colors: Mapping[str, object] | None = None,
) -> Plot:
    """Median GFLOP/s against size, log-log, with the measured GEMM ceilings.

    A series is one (``variant``, ``dtype``, ``run_name``); its point at each
    ``n`` is the median of ``gflops`` over the cells that have one (all
    kappas, kinds and statuses).  Points whose cells include a failed one get
    a red cross, so that a fast but wrong impl stands out; cells whose rate
    came out non-finite are red triangles on the top edge.  A horizontal line
    per (run, dtype) marks the GEMM rate measured by that run: the practical
    ceiling of a dense factorization on that machine.

    Parameters
    ----------
    cells : pandas.DataFrame
        Cells of one op with columns ``variant`` (or ``impl``), ``dtype``,
        ``n``, ``gflops`` and optionally ``status``, ``run_name`` and
        ``nan_columns``.
    fig_id : str
        Prefix that makes the SVG's ids unique within the HTML document.
    ceilings : mapping
        GEMM GFLOP/s keyed by ``(run_name, dtype)``, or by ``dtype`` alone
        for every run.  Ceilings of runs or dtypes absent from the plotted
        cells, and non-finite or non-positive ones, are not drawn.
    title : str, optional
        Caption.
    colors : mapping of str to colour, optional
        Colour per variant, e.g. the report's :func:`palette`.

    Returns
    -------
    Plot
    """
    data = _series_frame(cells)
    data["n"] = _numeric(data, "n")
    data["y"] = _numeric(data, "gflops")
    data["failed"] = _failed(data)
    has_n = _positive(data["n"])
    rated = data[has_n & _positive(data["y"])]
    top = data[has_n & _nonfinite(data, "gflops")]
    if rated.empty and top.empty:
        return Plot(title, None, ("no data: no cell of this op has a GFLOP/s rate",))

    keys = ["variant", "dtype", "run_name"]
    points = (
        rated.groupby([*keys, "n"], sort=True)
        .agg(y=("y", "median"), failed=("failed", "any"))
        .reset_index()
    )
    plotted = pd.concat([points[[*keys, "n"]], top[[*keys, "n"]]], ignore_index=True)
    styles = _Styles(plotted, colors)
    lines = _ceilings(ceilings or {}, plotted)
    notes = []
    if not lines:
        notes.append("no GEMM ceiling measured for the plotted runs and dtypes")
    if not top.empty:
        notes.append(f"{len(top)} cell(s) with a non-finite rate drawn at the top")
    lo, hi = _log_range(points["y"], *(g for _, _, g in lines))

    with _figure() as (fig, ax):
        _log_axes(ax)
        ax.set_ylim(lo, hi)
        for (variant, dtype, run_name), s in points.groupby(keys, sort=True):
            color, linestyle, marker = styles.line(variant, dtype, run_name)
            ax.plot(
                s["n"],
                s["y"],
                color=color,
                linestyle=linestyle,
                marker=marker,
                markersize=3.5,
                linewidth=1.2,
                label=_plain(_label(variant, dtype, run_name if styles.multi_run else None)),
            )
        bad = points[points["failed"]]
        _mark_failed(ax, bad["n"], bad["y"], label="includes failed cells")
        for run_name, dtype, gflops in lines:
            grey = _GREYS[styles.run_index(run_name) % len(_GREYS)]
            ax.axhline(
                gflops,
                color=grey,
                linestyle=styles.linestyle(dtype),
                linewidth=1.0,
                label=_plain(_label("GEMM", dtype, run_name if styles.multi_run else None)),
            )
        _mark_top(ax, top["n"], hi)
        _size_ticks(ax, plotted["n"])
        ax.set_xlabel("n")
        ax.set_ylabel("median GFLOP/s")
        _legend(ax)
        svg = _to_svg(fig, fig_id)
    return Plot(title, svg, tuple(notes))


def _ceilings(ceilings, plotted: pd.DataFrame) -> list[tuple[str, str, float]]:
    """(run_name, dtype, GFLOP/s) for the (run, dtype) pairs in ``plotted``."""
    pairs = sorted(set(zip(plotted["run_name"], plotted["dtype"], strict=True)))
    out = []
    for run_name, dtype in pairs:
        value = ceilings.get((run_name, dtype), ceilings.get(dtype))
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value) and value > 0:
            out.append((run_name, dtype, value))
    return out
