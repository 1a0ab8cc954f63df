"""Accuracy figures: error metrics against condition number, size or rank.

Each function takes the normalised cells of one op (columns of the store's
``cells`` table plus ``variant`` and ``run_name``) and returns a
:class:`~factorbench.reports.figure.Plot`.  Every cell is one point; a series
is one (``variant``, ``dtype``, ``run_name``): colour from the variant,
marker from the dtype, and a hollow face for every run after the first.
Guide lines show what theory predicts (design section 5): a backward-stable
method keeps its ratios O(1), a forward error tracks ``kappa u`` (or
``kappa² u`` for the normal equations), Householder QR keeps orthogonality
at O(u) where modified Gram-Schmidt loses it like ``kappa u`` and classical
like ``kappa² u``, and LU's growth factor is about ``n^(2/3)`` on random
matrices but reaches ``2^(n-1)`` on Wilkinson's.

Failed cells get a red cross; cells whose metric came out NaN or Inf are red
triangles on the top edge (see :mod:`factorbench.reports.figure`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from factorbench.accuracy.metrics import LOWRANK_THRESHOLD
from factorbench.accuracy.precision import unit_roundoff
from factorbench.reports.figure import (
    _GREYS,
    Plot,
    _dtype_order,
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
)

__all__ = [
    "backward_ratio_vs_kappa",
    "forward_error_vs_kappa",
    "orthogonality_vs_kappa",
    "growth_vs_n",
    "lowrank_vs_rank",
]

_KAPPA_LABEL = "kappa (actual where known, else target)"
# Guides are drawn up to this height: a relative error beyond 10 says only
# "no correct digits", and an uncapped kappa² u line would set the y range.
_GUIDE_CAP = 10.0
_KIND_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h", "<", ">", "p", "*")


@dataclass
class _Points:
    """Cells of one figure split by where they can be drawn.

    ``shown`` are the cells with a known x and a positive finite y; ``top``
    the cells with a known x and a non-finite y.  Both keep the series
    columns and ``x``, ``y``, ``failed``.
    """

    shown: pd.DataFrame
    top: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.shown.empty and self.top.empty

    @property
    def plotted(self) -> pd.DataFrame:
        return pd.concat([self.shown, self.top])

    def x_range(self) -> tuple[float, float]:
        x = self.plotted["x"].to_numpy(float)
        x0, x1 = float(x.min()), float(x.max())
        return (x0 / 3, x1 * 3) if x0 == x1 else (x0, x1)


def _points(
    data: pd.DataFrame,
    y: pd.Series,
    nonfinite: pd.Series,
    *,
    what: str,
    x_what: str = "a known kappa",
    log_x: bool = True,
    log_y: bool = True,
    top_what: str | None = None,
) -> _Points:
    """Split ``data`` (a series frame with column ``x``) by placement of ``y``;
    ``top_what`` names what puts a cell on the top edge (default: a
    non-finite ``what``)."""
    data = data.assign(y=y, failed=_failed(data))
    has_x = _positive(data["x"]) if log_x else np.isfinite(data["x"])
    finite_y = np.isfinite(data["y"])
    placeable = finite_y & (data["y"] > 0) if log_y else finite_y
    top = has_x & nonfinite
    notes = []
    n_zero = int((has_x & finite_y & ~placeable & ~nonfinite).sum())
    if n_zero:
        notes.append(f"{n_zero} cell(s) with {what} 0 not shown (log axis)")
    n_no_x = int((~has_x & (finite_y | nonfinite)).sum())
    if n_no_x:
        notes.append(f"{n_no_x} cell(s) without {x_what} not shown")
    if top.any():
        notes.append(f"{int(top.sum())} cell(s) with {top_what or 'a non-finite ' + what} "
                     "drawn at the top")
    return _Points(data[has_x & placeable & ~top], data[top], notes)


def _no_correct_digit(data: pd.DataFrame) -> pd.Series:
    """Backward error above 1: the result has no correct digit.

    How far above is noise (Wilkinson's matrix reaches ratios of 1e89 in
    float64); drawing those values would stretch the axis over hundreds of
    decades and flatten every meaningful point, so they go to the top edge.
    """
    return _numeric(data, "backward_error") > 1.0


def _kappa(data: pd.DataFrame) -> pd.Series:
    actual = _numeric(data, "kappa_actual")
    return actual.where(_positive(actual), _numeric(data, "kappa"))


def _scatter_series(ax, shown: pd.DataFrame, styles: _Styles) -> None:
    """One scatter call per (variant, dtype, run): colour, dtype marker, and
    a hollow face for later runs."""
    for (variant, dtype, run_name), s in shown.groupby(
        ["variant", "dtype", "run_name"], sort=True
    ):
        color = styles.color(variant)
        ax.scatter(
            s["x"],
            s["y"],
            s=14,
            marker=styles.dtype_marker(dtype),
            facecolors="none" if styles.hollow(run_name) else color,
            edgecolors=color,
            linewidths=0.8,
            label=_plain(_label(variant, dtype, run_name if styles.multi_run else None)),
        )


@dataclass(frozen=True)
class _Guide:
    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    color: str
    linestyle: str


def _kappa_guides(
    points: _Points, powers: Mapping[str, tuple[int, str]], cap: float
) -> tuple[list[_Guide], list[str]]:
    """Lines ``u * kappa**p`` per dtype over the plotted kappa range.

    ``powers`` maps a label ("kappa·u") to (p, line style).  Each line stops
    rising at ``cap``; a line that would lie entirely at the cap is left out.
    """
    us, notes = _unit_roundoffs(points.plotted)
    x0, x1 = points.x_range()
    guides = []
    for i, (dtype, u) in enumerate(us.items()):
        grey = _GREYS[i % len(_GREYS)]
        for name, (p, linestyle) in powers.items():
            xs = [x0, x1]
            if p > 0:
                x_cap = (cap / u) ** (1.0 / p)
                if x_cap <= x0:
                    continue
                if x_cap < x1:
                    xs = [x0, x_cap, x1]
            ys = tuple(min(u * x**p, cap) for x in xs)
            guides.append(_Guide(f"{name} {dtype}", tuple(xs), ys, grey, linestyle))
    return guides, notes


def _unit_roundoffs(frame: pd.DataFrame) -> tuple[dict[str, float], list[str]]:
    """Unit roundoff per dtype of ``frame``: the cells' ``unit_roundoff``
    column where present, else the table of working precisions."""
    us, notes = {}, []
    stored = _numeric(frame, "unit_roundoff")
    for dtype in _dtype_order(frame["dtype"]):
        values = stored[(frame["dtype"] == dtype) & _positive(stored)]
        if not values.empty:
            us[dtype] = float(values.median())
            continue
        try:
            us[dtype] = unit_roundoff(dtype)
        except KeyError:
            notes.append(f"no guide lines for dtype {dtype}: unit roundoff unknown")
    return us, notes


def _draw_guides(ax, guides: Sequence[_Guide]) -> None:
    for g in guides:
        ax.plot(g.x, g.y, color=g.color, linestyle=g.linestyle, linewidth=0.9,
                label=_plain(g.label), zorder=1)


def _scatter_figure(
    points: _Points,
    *,
    fig_id: str,
    title: str,
    colors,
    xlabel: str,
    ylabel: str,
    guides: Sequence[_Guide] = (),
    hlines: Sequence[tuple[float, str, str]] = (),
    log_x: bool = True,
    log_y: bool = True,
    x_ticks: pd.Series | None = None,
    notes: Sequence[str] = (),
) -> Plot:
    """Figure of ``points`` per series, with guides and horizontal lines
    ``(y, label, line style)``."""
    shown, top = points.shown, points.top
    styles = _Styles(points.plotted, colors)
    extra_y = [v for g in guides for v in g.y] + [h[0] for h in hlines]
    if log_y:
        lo, hi = _log_range(shown["y"], *extra_y)
    else:
        values = np.concatenate([shown["y"].to_numpy(float), np.asarray(extra_y, float)])
        values = values[np.isfinite(values)]
        span = float(values.max() - values.min()) if values.size else 1.0
        pad = 0.08 * span if span > 0 else 0.5
        lo, hi = (float(values.min()) - pad, float(values.max()) + pad) if values.size else (0, 1)
    with _figure() as (fig, ax):
        # Limits before artists: autoscaling near the float maximum (growth
        # of 2^1023) overflows, and the limits are known anyway.
        _log_axes(ax, x=log_x, y=log_y)
        ax.set_ylim(lo, hi)
        _scatter_series(ax, shown, styles)
        _draw_guides(ax, guides)
        for y, label, linestyle in hlines:
            ax.axhline(y, color="0.25", linestyle=linestyle, linewidth=1.0, label=_plain(label))
        bad = shown[shown["failed"]]
        _mark_failed(ax, bad["x"], bad["y"])
        _mark_top(ax, top["x"], hi)
        if x_ticks is not None:
            _size_ticks(ax, x_ticks)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        _legend(ax)
        svg = _to_svg(fig, fig_id)
    return Plot(title, svg, (*points.notes, *notes))


def backward_ratio_vs_kappa(
    cells: pd.DataFrame,
    *,
    fig_id: str,
    threshold: float = 30.0,
    title: str = "Backward error ratio vs kappa",
    colors: Mapping[str, object] | None = None,
) -> Plot:
    """Backward error ratio against condition number, log-log, per series.

    The x coordinate is ``kappa_actual`` where known, else the target
    ``kappa``.  Failed cells are overdrawn with a red cross; cells whose
    ratio is NaN or Inf are drawn as red triangles along the top edge, so
    that a failure is never invisible.  A dashed line marks the pass
    threshold.

    Parameters
    ----------
    cells : pandas.DataFrame
        Cells of one op with columns ``variant`` (or ``impl``), ``dtype``,
        ``kappa``, ``kappa_actual``, ``backward_ratio``, ``status`` and
        optionally ``run_name`` and ``nan_columns``.
    fig_id : str
        Prefix that makes the SVG's ids unique within the HTML document.
    threshold : float, optional
        Pass threshold drawn as a horizontal line.
    title : str, optional
        Caption.
    colors : mapping of str to colour, optional
        Colour per variant, e.g. the report's
        :func:`~factorbench.reports.figure.palette`.

    Returns
    -------
    Plot
    """
    data = _series_frame(cells).assign(x=lambda d: _kappa(d))
    points = _points(
        data,
        _numeric(data, "backward_ratio"),
        _nonfinite(data, "backward_ratio") | _no_correct_digit(data),
        what="ratio",
        top_what="a non-finite ratio or a backward error > 1",
    )
    if points.empty:
        return Plot(
            title, None, ("no data: no cell of this op has a backward ratio", *points.notes)
        )
    return _scatter_figure(
        points,
        fig_id=fig_id,
        title=title,
        colors=colors,
        xlabel=_KAPPA_LABEL,
        ylabel="backward error / (max(m, n) u)",
        hlines=[(threshold, f"threshold {threshold:g}", "--")],
    )


def forward_error_vs_kappa(
    cells: pd.DataFrame,
    *,
    fig_id: str,
    title: str = "Forward error vs kappa",
    colors: Mapping[str, object] | None = None,
    kappa_guides: bool = True,
) -> Plot:
    """Relative forward error against condition number, log-log, per series.

    With ``kappa_guides`` (solve, lstsq), guide lines ``kappa·u`` (what a
    backward-stable solver attains) and ``kappa²·u`` (the normal equations,
    or least squares with a large residual) are drawn per dtype over the
    plotted kappa range, capped at 10.  Without (svd, eigh, whose forward
    errors are relative to ||A|| and bounded by Weyl's theorem whatever kappa
    is), a line at u per dtype.

    Parameters
    ----------
    cells : pandas.DataFrame
        Cells of one op with columns ``variant`` (or ``impl``), ``dtype``,
        ``kappa``, ``kappa_actual``, ``forward_error``, ``status`` and
        optionally ``unit_roundoff`` (else taken from the dtype),
        ``run_name`` and ``nan_columns``.
    fig_id : str
        Prefix that makes the SVG's ids unique within the HTML document.
    title : str, optional
        Caption.
    colors : mapping of str to colour, optional
        Colour per variant, e.g. the report's
        :func:`~factorbench.reports.figure.palette`.
    kappa_guides : bool, optional
        Draw the kappa·u and kappa²·u guides (else a line at u).

    Returns
    -------
    Plot
    """
    data = _series_frame(cells).assign(x=lambda d: _kappa(d))
    points = _points(
        data, _numeric(data, "forward_error"), _nonfinite(data, "forward_error"),
        what="forward error",
    )
    if points.empty:
        return Plot(
            title, None, ("no data: no cell of this op has a forward error", *points.notes)
        )
    powers = {"kappa·u": (1, "--"), "kappa²·u": (2, ":")} if kappa_guides else {"u": (0, "-.")}
    guides, notes = _kappa_guides(points, powers, _GUIDE_CAP)
    return _scatter_figure(
        points,
        fig_id=fig_id,
        title=title,
        colors=colors,
        xlabel=_KAPPA_LABEL,
        ylabel="relative forward error",
        guides=guides,
        notes=notes,
    )


def orthogonality_vs_kappa(
    cells: pd.DataFrame,
    *,
    fig_id: str,
    title: str = "Orthogonality loss vs kappa",
    colors: Mapping[str, object] | None = None,
) -> Plot:
    """Loss of orthogonality ``‖I − QᴴQ‖`` against condition number, log-log.

    Guide lines per dtype: ``u`` (Householder QR, and any orthogonal
    transformation method), ``kappa·u`` (modified Gram-Schmidt) and
    ``kappa²·u`` (classical Gram-Schmidt), capped at 10 or the largest loss
    plotted, whichever is higher.

    Parameters
    ----------
    cells : pandas.DataFrame
        Cells of one op with columns ``variant`` (or ``impl``), ``dtype``,
        ``kappa``, ``kappa_actual``, ``orthogonality_loss``, ``status`` and
        optionally ``unit_roundoff``, ``run_name`` and ``nan_columns``.
    fig_id : str
        Prefix that makes the SVG's ids unique within the HTML document.
    title : str, optional
        Caption.
    colors : mapping of str to colour, optional
        Colour per variant, e.g. the report's
        :func:`~factorbench.reports.figure.palette`.

    Returns
    -------
    Plot
    """
    data = _series_frame(cells).assign(x=lambda d: _kappa(d))
    points = _points(
        data,
        _numeric(data, "orthogonality_loss"),
        _nonfinite(data, "orthogonality_loss"),
        what="orthogonality loss",
    )
    if points.empty:
        return Plot(
            title, None, ("no data: no cell of this op has an orthogonality loss", *points.notes)
        )
    # ‖I − QᴴQ‖ can exceed 1 (up to about n once the columns are parallel).
    cap = max(_GUIDE_CAP, float(points.shown["y"].max()) if not points.shown.empty else 0.0)
    guides, notes = _kappa_guides(
        points, {"u": (0, "-."), "kappa·u": (1, "--"), "kappa²·u": (2, ":")}, cap
    )
    return _scatter_figure(
        points,
        fig_id=fig_id,
        title=title,
        colors=colors,
        xlabel=_KAPPA_LABEL,
        ylabel="‖I − QᴴQ‖₁",
        guides=guides,
        notes=notes,
    )


def growth_vs_n(
    cells: pd.DataFrame,
    *,
    fig_id: str,
    title: str = "Growth factor vs n",
    colors: Mapping[str, object] | None = None,
) -> Plot:
    """LU growth factor against size, log-log, per (variant, run).

    The value is ``growth_factor_exact`` (largest entry of every
    intermediate Schur complement) where an impl tracked it, else
    ``growth_factor`` (max|U| / max|A|).  Colour is the variant, the marker
    the matrix kind, and later runs are hollow; dtypes share a series since
    growth is a property of the pivoting, not of the precision.  Guides:
    ``n^(2/3)``, the typical growth of partial pivoting on random matrices
    (Trefethen and Schreiber 1990), and ``2^(n−1)``, Wilkinson's bound,
    attained by the ``wilkinson`` family; the bound is drawn only where it
    falls inside the plotted range.

    Parameters
    ----------
    cells : pandas.DataFrame
        Cells of one op with columns ``variant`` (or ``impl``), ``n``,
        ``growth_factor``, ``growth_factor_exact``, ``status`` and optionally
        ``kind``, ``run_name`` and ``nan_columns``.
    fig_id : str
        Prefix that makes the SVG's ids unique within the HTML document.
    title : str, optional
        Caption.
    colors : mapping of str to colour, optional
        Colour per variant, e.g. the report's
        :func:`~factorbench.reports.figure.palette`.

    Returns
    -------
    Plot
    """
    data = _series_frame(cells)
    data["x"] = _numeric(data, "n")
    kind = data["kind"] if "kind" in data else pd.Series("", index=data.index)
    data["kind"] = kind.where(kind.notna(), "").astype(str)
    exact = _numeric(data, "growth_factor_exact")
    plain = _numeric(data, "growth_factor")
    growth = exact.where(np.isfinite(exact), plain)
    nonfinite = ~np.isfinite(growth) & (
        _nonfinite(data, "growth_factor_exact") | _nonfinite(data, "growth_factor")
    )
    points = _points(data, growth, nonfinite, what="growth factor", x_what="a size n")
    if points.empty:
        return Plot(title, None, ("no data: no cell of this op has a growth factor", *points.notes))

    shown, top = points.shown, points.top
    plotted = points.plotted
    styles = _Styles(plotted, colors)
    n0, n1 = points.x_range()
    typical = (n0 ** (2 / 3), n1 ** (2 / 3))
    lo, hi = _log_range(shown["y"], *typical)
    notes = list(points.notes)
    # 2^(n−1) leaves any sensible range within a few sizes: draw it only up
    # to the top edge, on a grid fine enough for the curve in log-log.
    n_top = math.log2(hi) + 1
    wilkinson = None
    if n0 < n_top:
        ns = np.linspace(n0, min(n1, n_top), 48)
        with np.errstate(over="ignore"):
            wilkinson = (ns, np.minimum(np.exp2(ns - 1), hi))
    else:
        notes.append(f"Wilkinson's bound 2^(n−1) is above the plotted range (n ≥ {n0:g})")
    kinds = sorted(set(plotted["kind"]))
    kind_marker = {k: _KIND_MARKERS[i % len(_KIND_MARKERS)] for i, k in enumerate(kinds)}

    with _figure() as (fig, ax):
        _log_axes(ax)
        ax.set_ylim(lo, hi)
        for (variant, run_name, kind), s in shown.groupby(
            ["variant", "run_name", "kind"], sort=True
        ):
            color = styles.color(variant)
            ax.scatter(
                s["x"],
                s["y"],
                s=14,
                marker=kind_marker[kind],
                facecolors="none" if styles.hollow(run_name) else color,
                edgecolors=color,
                linewidths=0.8,
            )
        ax.plot((n0, n1), typical, color="0.25", linestyle="--", linewidth=0.9,
                label="n^(2/3) typical (random)", zorder=1)
        if wilkinson is not None:
            ax.plot(*wilkinson, color="0.25", linestyle=":", linewidth=0.9,
                    label="2^(n−1) Wilkinson bound", zorder=1)
        bad = shown[shown["failed"]]
        _mark_failed(ax, bad["x"], bad["y"])
        _mark_top(ax, top["x"], hi)
        _size_ticks(ax, plotted["x"])
        ax.set_xlabel("n")
        ax.set_ylabel("growth factor (max |entry| / max |A|)")
        _legend(ax, _growth_proxies(styles, kinds, kind_marker))
        svg = _to_svg(fig, fig_id)
    return Plot(title, svg, tuple(notes))


def _growth_proxies(styles: _Styles, kinds: list[str], kind_marker: dict) -> list[Line2D]:
    # A legend entry per (variant, run, kind) would be a product; list the
    # three encodings separately instead.
    proxies = [
        Line2D([], [], linestyle="none", marker="o", markersize=4, color=styles.color(v),
               label=_plain(v))
        for v in styles.variants
    ]
    if styles.multi_run:
        proxies += [
            Line2D([], [], linestyle="none", marker="o", markersize=4, color="0.4",
                   markerfacecolor="none" if styles.hollow(r) else "0.4", label=_plain(f"[{r}]"))
            for r in styles.runs
        ]
    if kinds != [""]:
        proxies += [
            Line2D([], [], linestyle="none", marker=kind_marker[k], markersize=4, color="0.4",
                   label=_plain(f"kind {k}" if k else "kind unknown"))
            for k in kinds
        ]
    return proxies


def lowrank_vs_rank(
    cells: pd.DataFrame,
    *,
    fig_id: str,
    threshold: float = LOWRANK_THRESHOLD,
    title: str = "Low-rank error ratio vs rank",
    colors: Mapping[str, object] | None = None,
) -> Plot:
    """Low-rank approximation error relative to the optimum, per series.

    The y value is ``lowrank_error_ratio`` = ‖A − Âₖ‖_F / ‖A − Aₖ‖_F, 1 for
    the truncated SVD.  The x axis is the target rank ``rank``, or the
    oversampling parameter (``oversampling`` or ``p`` in ``params_json``)
    when the cells ran with several values of it; series then group the
    impl's other parameters only, so that one series spans the parameter.
    Horizontal lines mark the optimum 1 and the pass threshold.  Axes are
    logarithmic only where the data span a decade or more.

    Parameters
    ----------
    cells : pandas.DataFrame
        Cells of one op with columns ``variant`` (or ``impl``), ``dtype``,
        ``rank``, ``lowrank_error_ratio``, ``status`` and optionally
        ``impl``, ``params_json``, ``run_name`` and ``nan_columns``.
    fig_id : str
        Prefix that makes the SVG's ids unique within the HTML document.
    threshold : float, optional
        Pass threshold drawn as a horizontal line.
    title : str, optional
        Caption.
    colors : mapping of str to colour, optional
        Colour per variant, e.g. the report's
        :func:`~factorbench.reports.figure.palette`.

    Returns
    -------
    Plot
    """
    data = _series_frame(cells)
    params = data["params_json"].map(_params) if "params_json" in data else None
    key = None
    if params is not None:
        for name in ("oversampling", "p"):
            values = pd.to_numeric(params.map(lambda d, k=name: d.get(k)), errors="coerce")
            if values.nunique() > 1:
                key = name
                data["x"] = values.astype(float)
                merged = _variants_without(data, params, name)
                colors = _merged_colors(colors, data["variant"], merged)
                data["variant"] = merged
                break
    if key is None:
        data["x"] = _numeric(data, "rank")
    ratio = _numeric(data, "lowrank_error_ratio")
    nonfinite = _nonfinite(data, "lowrank_error_ratio")
    log_x = _spans_decade(data.loc[np.isfinite(ratio) | nonfinite, "x"])
    log_y = _spans_decade(ratio)
    points = _points(
        data,
        ratio,
        nonfinite,
        what="error ratio",
        x_what=f"a known {key or 'rank'}",
        log_x=log_x,
        log_y=log_y,
    )
    if points.empty:
        return Plot(title, None, ("no data: no cell of this op has a low-rank error ratio",
                                  *points.notes))
    xlabel = {None: "target rank k", "p": "oversampling p"}.get(key, key)
    return _scatter_figure(
        points,
        fig_id=fig_id,
        title=title,
        colors=colors,
        xlabel=xlabel,
        ylabel="‖A − Âₖ‖_F / ‖A − Aₖ‖_F",
        hlines=[(1.0, "optimal (1)", "-."), (threshold, f"threshold {threshold:g}", "--")],
        log_x=log_x,
        log_y=log_y,
        x_ticks=points.plotted["x"],
    )


def _params(value) -> dict:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _variants_without(data: pd.DataFrame, params: pd.Series, drop: str) -> pd.Series:
    """Impl id, suffixed with its parameters other than ``drop`` when those
    take several values (the rule the report uses for variants)."""
    impl = data["impl"].astype(str) if "impl" in data else data["variant"]
    rest = params.map(lambda d: ",".join(f"{k}={d[k]}" for k in sorted(d) if k != drop))
    distinct = rest.groupby(impl).transform("nunique")
    return (impl + "[" + rest + "]").where((distinct > 1) & (rest != ""), impl)


def _spans_decade(values: pd.Series) -> bool:
    """Whether ``values`` are positive and their finite ones span a factor 10."""
    v = values[np.isfinite(values)]
    return bool(not v.empty and v.min() > 0 and v.max() >= 10 * v.min())


def _merged_colors(colors, variants: pd.Series, merged: pd.Series):
    """``colors`` extended so a merged series takes the colour of the first
    (sorted) of its variants, which other figures show."""
    if colors is None:
        return None
    out = dict(colors)
    for name, group in variants.groupby(merged, sort=True):
        known = sorted(v for v in set(group) if v in colors)
        if name not in out and known:
            out[name] = colors[known[0]]
    return out
