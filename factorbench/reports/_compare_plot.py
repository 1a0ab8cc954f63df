"""The speedup figure of :func:`factorbench.reports.compare.render_compare`.

Speedup (base / head median time) against n, log-log, one colour per impl,
one marker per dtype; a filled marker is a significant change (adjusted
p <= alpha), a hollow one is not.  A solid line marks 1 (no change) and
dashed lines the noise floor ``1 + min_effect`` and ``1 / (1 + min_effect)``,
the bounds of the ``faster`` and ``slower`` verdicts.

Built like the report figures: the object-oriented
:class:`matplotlib.figure.Figure` (no pyplot state, no backend switch), style
in an ``rc_context``, a fixed ``svg.hashsalt`` and no date or creator
metadata so that the same data give the same bytes, ids prefixed per figure
so that several SVGs can share one HTML page, and user text passed as plain
text (``$`` escaped so it is never parsed as mathtext; the SVG writer escapes
``<``, ``>`` and ``&``).
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from factorbench.reports.figure import (
    _DTYPE_MARKERS,
    _EXTRA_MARKERS,
    _MAX_SIZE_TICKS,
    _RC,
    _to_svg,
    palette,
)

_FIGSIZE = (6.0, 3.6)
# Candidate speedup ticks: readable values on a log axis near 1.
_NICE = sorted({k * 10.0**e for e in range(-4, 5) for k in (1, 2, 5)}
               | {0.8, 0.9, 1.1, 1.25, 1.5, 0.67})


def speedup_figure(rows: pd.DataFrame, *, fig_id: str, alpha: float, min_effect: float,
                   title: str) -> tuple[str | None, list[str]]:
    """Draw the speedup of the rows of one op.

    Parameters
    ----------
    rows : pandas.DataFrame
        Rows of :attr:`Comparison.rows` for one op.
    fig_id : str
        Prefix of every id in the SVG (unique within the page).
    alpha, min_effect : float
        Significance level, and the noise floor of impls whose rows carry no
        ``noise_floor`` column.
    title : str
        Axes title.

    Returns
    -------
    svg : str or None
        An inline ``<svg>`` element, or None when no cell had a speedup.
    notes : list of str
        Why cells are missing from the figure.
    """
    speedup = rows["speedup"].to_numpy(float)
    n = pd.to_numeric(rows["n"], errors="coerce").to_numpy(float)
    ok = np.isfinite(speedup) & (speedup > 0) & np.isfinite(n) & (n > 0)
    notes = []
    missing = int((~ok).sum())
    if missing:
        notes.append(f"{missing} cell{'' if missing == 1 else 's'} without a timing in both "
                     "runs not drawn")
    if not ok.any():
        return None, notes
    data = rows[ok]
    y = speedup[ok]
    x = n[ok]
    significant = data["significant"].to_numpy(bool)
    variants = sorted(set(data["variant"]))
    dtypes = sorted(set(data["dtype"]))
    colors = palette(variants)
    # The floor the verdicts used, from the rows when they carry it.
    floors = {v: min_effect for v in variants}
    if "noise_floor" in data:
        for v, f in data.groupby("variant")["noise_floor"].max().items():
            if np.isfinite(f):
                floors[v] = float(f)
    extra = [d for d in dtypes if d not in _DTYPE_MARKERS]
    markers = {**_DTYPE_MARKERS, **{d: _EXTRA_MARKERS[i % len(_EXTRA_MARKERS)]
                                    for i, d in enumerate(extra)}}

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=_FIGSIZE)
        ax = fig.add_subplot()
        ax.set_xscale("log")
        ax.set_yscale("log")
        hi_floor = 1.0 + max(floors.values())
        ax.axhline(1.0, color="0.3", linewidth=0.8, zorder=1)
        for f in sorted(set(floors.values())):
            for level in (1.0 + f, 1.0 / (1.0 + f)):
                ax.axhline(level, color="0.5", linewidth=0.7, linestyle="--", zorder=1)
        variant = data["variant"].to_numpy(object)
        dtype = data["dtype"].to_numpy(object)
        for v in variants:
            for d in dtypes:
                for sig in (True, False):
                    sel = (variant == v) & (dtype == d) & (significant == sig)
                    if not sel.any():
                        continue
                    ax.scatter(x[sel], y[sel], s=22, marker=markers[d], linewidths=0.9,
                               edgecolors=[colors[v]], zorder=3,
                               facecolors=[colors[v]] if sig else "none")
        lo, hi = float(np.min(y)), float(np.max(y))
        lo, hi = min(lo, 1.0 / hi_floor) / 1.15, max(hi, hi_floor) * 1.15
        ax.set_ylim(lo, hi)
        ticks = _ticks(lo, hi)
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_yticklabels([f"{t:g}" for t in ticks])
        sizes = np.unique(x)
        if sizes.size <= _MAX_SIZE_TICKS:
            ax.set_xticks(sizes, labels=[f"{s:g}" for s in sizes])
            ax.xaxis.set_minor_locator(NullLocator())
        if sizes.size == 1:
            ax.set_xlim(sizes[0] / 1.5, sizes[0] * 1.5)
        ax.set_xlabel("n")
        ax.set_ylabel("speedup  (> 1: head faster)")
        ax.set_title(_plain(title))

        handles = [Line2D([], [], linestyle="none", marker="o", color=colors[v],
                          label=_plain(v)) for v in variants]
        if len(dtypes) > 1:
            handles += [Line2D([], [], linestyle="none", marker=markers[d], color="0.3",
                               markerfacecolor="none", label=_plain(d)) for d in dtypes]
        handles += [
            Line2D([], [], linestyle="none", marker="o", color="0.3",
                   label=f"filled: adj. p \u2264 {alpha:g}"),
            Line2D([], [], linestyle="none", marker="o", color="0.3", markerfacecolor="none",
                   label="hollow: not significant"),
            Line2D([], [], color="0.5", linestyle="--",
                   label=f"noise floor \u00b1{max(floors.values()):.0%}"),
        ]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  frameon=False, borderaxespad=0)
        svg = _to_svg(fig, fig_id)
    return svg, notes


def _ticks(lo: float, hi: float) -> list[float]:
    inside = [t for t in _NICE if lo <= t <= hi]
    while len(inside) > 9:
        # Thin out, always keeping 1 (the reference).
        keep = inside[::2]
        if 1.0 in inside and 1.0 not in keep:
            keep = sorted(set(keep) | {1.0})
        if len(keep) == len(inside):
            break
        inside = keep
    if not inside:
        inside = [math.sqrt(lo * hi)]
    return inside


def _plain(text: str) -> str:
    # matplotlib parses text between dollar signs as mathtext, and drops
    # legend entries whose label starts with an underscore.
    text = str(text).replace("$", r"\$")
    return f" {text}" if text.startswith("_") else text


