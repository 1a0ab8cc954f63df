"""Decision figures: which impl to use, trading time against accuracy.

Each function takes the normalised cells of one op (columns of the store's
``cells`` table plus ``variant`` and ``run_name``) and returns a
:class:`~factorbench.reports.figure.Plot`; see
:mod:`factorbench.reports.figure` for the shared conventions.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgba
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from factorbench.reports.figure import (
    FAILED_COLOR,
    Plot,
    _dtype_order,
    _grid,
    _log_axes,
    _log_range,
    _nonfinite,
    _numeric,
    _plain,
    _positive,
    _series_frame,
    _Styles,
    _to_svg,
)

__all__ = ["pareto"]

# Statuses that do not count against an impl: the cell was not attempted.
_NOT_RUN = ("skipped", "unavailable")
_PANEL_SIZE = (1.75, 1.5)


def _pareto_front(x, y) -> np.ndarray:
    """Mask of the non-dominated points when smaller is better on both axes.

    Parameters
    ----------
    x, y : array_like, shape (k,)
        Coordinates of ``k`` points (here time and error).

    Returns
    -------
    numpy.ndarray of bool, shape (k,)
        True where no other point is at least as good on both coordinates
        and strictly better on one.  Points with a NaN or infinite
        coordinate are never on the front and dominate nothing; identical
        points are all on the front or all off it.
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.size} != {y.size}")
    ok = np.isfinite(x) & np.isfinite(y)
    xv, yv = x[ok], y[ok]
    # Row i, column j: does point j dominate point i?
    no_worse = (xv[None, :] <= xv[:, None]) & (yv[None, :] <= yv[:, None])
    better = (xv[None, :] < xv[:, None]) | (yv[None, :] < yv[:, None])
    mask = np.zeros(x.shape, dtype=bool)
    mask[ok] = ~(no_worse & better).any(axis=1)
    return mask


def pareto(
    cells: pd.DataFrame,
    *,
    fig_id: str,
    threshold: float = 30.0,
    title: str = "Time vs accuracy (Pareto)",
    colors: Mapping[str, object] | None = None,
    max_sizes: int = 4,
) -> Plot:
    """Time against worst backward ratio, one small panel per (n, dtype).

    Columns are the ``max_sizes`` largest sizes ``n`` at which two or more
    series have a time, rows the dtypes.  In a panel each series
    (``variant``, ``run_name``) is one point: x the median of
    ``time_median_s`` over its cells at that n and dtype, y the largest
    ``backward_ratio`` over the same cells (all kappas and kinds), so the
    point says "this fast, and never worse than this".  A series with a
    cell that did not pass there (failed, error, crashed, timeout) is
    hollow with a red cross, since its worst ratio may leave the bad cell
    out; a non-finite ratio puts it on the top edge as a red-edged triangle.
    The step line joins the Pareto front of the passing points (no other
    passing point both faster and more accurate): the impls worth choosing
    at that size.  The dashed line is the pass threshold.

    Parameters
    ----------
    cells : pandas.DataFrame
        Cells of one op with columns ``variant`` (or ``impl``), ``dtype``,
        ``n``, ``time_median_s``, ``backward_ratio``, ``status`` and
        optionally ``run_name`` and ``nan_columns``.
    fig_id : str
        Prefix that makes the SVG's ids unique within the HTML document.
    threshold : float, optional
        Backward-ratio pass threshold drawn in every panel.
    title : str, optional
        Caption.
    colors : mapping of str to colour, optional
        Colour per variant, e.g. the report's
        :func:`~factorbench.reports.figure.palette`.
    max_sizes : int, optional
        Most panel columns.

    Returns
    -------
    Plot
    """
    points = _series_points(cells)
    if points.empty:
        return Plot(title, None, ("no data: no cell of this op has a time",))
    if points["y"].isna().all():
        return Plot(title, None, ("no data: no timed cell of this op has a backward ratio",))
    per_panel = points.groupby(["n", "dtype"]).size()
    comparable = sorted({n for (n, _), count in per_panel.items() if count >= 2})
    if not comparable:
        return Plot(title, None, ("no data: no size has two or more timed series to compare",))
    sizes = comparable[-max_sizes:]
    points = points[points["n"].isin(sizes)]
    dtypes = _dtype_order(points["dtype"])
    notes = []
    if len(comparable) > len(sizes):
        notes.append(f"{len(comparable)} sizes compared; the {len(sizes)} largest shown")
    no_ratio = points["y"].isna()
    if no_ratio.any():
        notes.append(f"{int(no_ratio.sum())} timed point(s) without a backward ratio not shown")
    if np.isinf(points["y"]).any():
        notes.append("points with a non-finite backward ratio or a backward error > 1 "
                     "drawn at the top")

    styles = _Styles(points, colors)
    # One y range for the whole grid, so that panels compare at a glance.
    lo, hi = _log_range(points["y"], threshold)
    figsize = (_PANEL_SIZE[0] * len(sizes) + 0.4, _PANEL_SIZE[1] * len(dtypes) + 0.3)
    grid = _grid(len(dtypes), len(sizes), figsize, sharex="col", sharey=True)
    with grid as (fig, axes):
        # Limits first: with them fixed, adding artists to shared axes
        # does not re-run autoscaling across every panel.
        axes[0, 0].set_ylim(lo, hi)
        for col, n in enumerate(sizes):
            column = points[points["n"] == n]
            _log_axes(axes[0, col])
            t = column["t"].to_numpy(float)
            pad = 1.6 if t.max() > t.min() * 1.01 else 2.5
            axes[0, col].set_xlim(t.min() / pad, t.max() * pad)
            # Small panels: minor ticks would crowd them (and cost time).
            axes[0, col].xaxis.set_minor_locator(NullLocator())
            axes[-1, col].set_xlabel("median time (s)")
            for row, dtype in enumerate(dtypes):
                ax = axes[row, col]
                # An explicit y skips matplotlib's title placement, which
                # measures every tick label of the axes on each draw.
                ax.set_title(_plain(f"n = {n:g}, {dtype}"), fontsize=7.5, y=1.0, pad=3)
                _panel(ax, column[column["dtype"] == dtype], styles, threshold, lo, hi)
        axes[0, 0].yaxis.set_minor_locator(NullLocator())
        for row in range(len(dtypes)):
            axes[row, 0].set_ylabel("worst backward ratio")
        for ax in axes.flat:
            ax.label_outer(remove_inner_ticks=True)
            ax.tick_params(labelsize=6)
        axes[0, -1].legend(
            *_legend_entries(styles, threshold),
            loc="upper left",
            bbox_to_anchor=(1.06, 1.0),
            frameon=False,
            borderaxespad=0,
            handler_map={tuple: HandlerTuple(ndivide=None)},
        )
        fig.subplots_adjust(wspace=0.12, hspace=0.3)
        svg = _to_svg(fig, fig_id)
    return Plot(title, svg, tuple(notes))


def _series_points(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (n, dtype, variant, run_name) with a time.

    Columns ``t`` (median time, s), ``y`` (worst backward ratio; Inf when
    any ratio was non-finite, NaN when none is known) and ``bad`` (some cell
    did not pass).
    """
    data = _series_frame(cells)
    data["n"] = _numeric(data, "n")
    time = _numeric(data, "time_median_s")
    ratio = _numeric(data, "backward_ratio")
    data["t"] = time.where(_positive(time))
    data["r"] = ratio.where(np.isfinite(ratio))
    # A backward error above 1 (no correct digit) counts as off the scale,
    # like a non-finite ratio, so one garbage cell cannot flatten the grid.
    data["r_bad"] = _nonfinite(data, "backward_ratio") | (_numeric(data, "backward_error") > 1.0)
    status = data["status"] if "status" in data else pd.Series("ok", index=data.index)
    data["bad"] = ~status.isin(("ok", *_NOT_RUN))
    data = data[_positive(data["n"])]
    points = (
        data.groupby(["n", "dtype", "variant", "run_name"], sort=True)
        .agg(t=("t", "median"), r=("r", "max"), r_bad=("r_bad", "any"), bad=("bad", "any"))
        .reset_index()
    )
    points = points[points["t"].notna()].copy()
    points["y"] = points["r"].where(~points["r_bad"], np.inf)
    return points


def _panel(ax, panel: pd.DataFrame, styles: _Styles, threshold: float, lo: float,
           hi: float) -> None:
    """Points, front and threshold of one (n, dtype); ``lo`` and ``hi`` are
    the shared y limits."""
    ax.axhline(threshold, color="0.25", linestyle="--", linewidth=0.8)
    if panel.empty:
        ax.text(0.5, 0.5, "no timed cells", transform=ax.transAxes, ha="center",
                va="center", color="0.4", fontsize=7)
        return
    finite = panel[np.isfinite(panel["y"])]
    top = panel[np.isinf(panel["y"])]
    # A ratio of 0 (exact result) has no place on a log axis: bottom edge.
    shown_y = finite["y"].where(finite["y"] > 0, lo)

    passing = finite[~finite["bad"]]
    front = passing[_pareto_front(passing["t"], passing["y"])].sort_values(["t", "y"])
    if not front.empty:
        ax.plot(front["t"], front["y"].where(front["y"] > 0, lo), drawstyle="steps-post",
                color="0.2", linewidth=0.8, marker="o", markersize=7, markerfacecolor="none",
                markeredgewidth=0.6, zorder=1)

    edge = [to_rgba(styles.color(v)) for v in finite["variant"]]
    bad = finite["bad"].to_numpy()
    face = [(0.0, 0.0, 0.0, 0.0) if b else c for b, c in zip(bad, edge, strict=True)]
    for run_name in dict.fromkeys(finite["run_name"]):
        pick = (finite["run_name"] == run_name).to_numpy()
        ax.scatter(finite["t"][pick], shown_y[pick], s=18,
                   marker=styles.run_marker(run_name) if styles.multi_run else "o",
                   facecolors=[c for c, k in zip(face, pick, strict=True) if k],
                   edgecolors=[c for c, k in zip(edge, pick, strict=True) if k],
                   linewidths=0.8, zorder=2)
    if bad.any():
        ax.scatter(finite["t"][bad], shown_y[bad], s=12, marker="x", color=FAILED_COLOR,
                   linewidths=0.8, zorder=3)
    if not top.empty:
        ax.scatter(top["t"], np.full(len(top), hi), s=22, marker="^",
                   facecolors=[styles.color(v) for v in top["variant"]],
                   edgecolors=FAILED_COLOR, linewidths=1.0, clip_on=False, zorder=3)


def _legend_entries(styles: _Styles, threshold: float) -> tuple[list, list[str]]:
    handles, labels = [], []
    for variant in styles.variants:
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=4,
                              color=styles.color(variant)))
        labels.append(_plain(variant))
    if styles.multi_run:
        for run_name in styles.runs:
            handles.append(Line2D([], [], linestyle="none", marker=styles.run_marker(run_name),
                                  markersize=4, color="0.4"))
            labels.append(_plain(f"[{run_name}]"))
    hollow = Line2D([], [], linestyle="none", marker="o", markersize=4, color="0.4",
                    markerfacecolor="none")
    cross = Line2D([], [], linestyle="none", marker="x", markersize=3.5, color=FAILED_COLOR)
    handles += [
        (hollow, cross),
        Line2D([], [], linestyle="none", marker="^", markersize=4, color="0.6",
               markeredgecolor=FAILED_COLOR),
        Line2D([], [], color="0.2", linewidth=0.8, marker="o", markersize=6,
               markerfacecolor="none", markeredgewidth=0.6),
        Line2D([], [], color="0.25", linestyle="--", linewidth=0.8),
    ]
    labels += [
        "did not pass at this n, dtype",
        "non-finite or backward error > 1 (top edge)",
        "Pareto front of passing points",
        f"threshold {threshold:g}",
    ]
    return handles, labels
