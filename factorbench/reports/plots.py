"""Report figures: one function per plot, each returning inline SVG.

Every plot function takes the normalised cells of one op (see
:func:`factorbench.reports.build.render_report`) and returns a :class:`Plot`
whose ``svg`` is a standalone ``<svg>`` element ready to be inlined in HTML,
or ``None`` with a note saying why nothing was drawn.

Design choices
--------------
* Figures are built with the object-oriented :class:`matplotlib.figure.Figure`
  API rather than ``pyplot``.  Nothing enters pyplot's global figure registry,
  so there is nothing to close or leak, and importing this module never
  switches the user's backend (``matplotlib.use("Agg")`` at import time would
  break an interactive session that merely imports factorbench).  Saving to
  ``format="svg"`` picks matplotlib's SVG canvas regardless of the backend.
* Style and determinism settings live in one ``rc_context`` (:data:`_RC`)
  instead of mutating the global ``rcParams``: ``svg.hashsalt`` fixes the
  otherwise random ids, ``metadata`` drops the date and creator, so the same
  data gives byte-identical SVG; ``svg.fonttype = "none"`` keeps text as
  ``<text>`` (searchable, and far smaller than glyph paths).
* Inline SVGs share one HTML id namespace, and matplotlib numbers its ids
  per figure (``axes_1``, ``patch_1``, clip paths derived from geometry), so
  every id and reference is prefixed with the caller's ``fig_id``.
* Log-axis tick labels are written as plain Unicode text ("10⁻³") instead of
  mathtext: parsing mathtext took about a third of the render time, and
  plain text stays selectable in the SVG.
* User text (run labels, impl ids) reaches matplotlib only as plain text:
  ``$`` is escaped so that it is never parsed as mathtext; the SVG writer
  escapes ``<``, ``>`` and ``&`` itself.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullLocator

__all__ = ["Plot", "fit_exponent", "time_vs_n", "backward_ratio_vs_kappa"]

_FIGSIZE = (5.5, 3.6)

_RC = {
    "svg.hashsalt": "factorbench",
    "svg.fonttype": "none",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 6.5,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
}

# Date and Creator would make the output depend on the clock and on the
# matplotlib version; Format and Type only carry RDF URLs.
_SVG_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}

_LINESTYLES = {
    "float64": "-",
    "float32": "--",
    "complex128": "-.",
    "complex64": ":",
}
_EXTRA_LINESTYLES = ("-", "--", "-.", ":")
_DTYPE_MARKERS = {
    "float64": "o",
    "float32": "s",
    "complex128": "D",
    "complex64": "^",
    "float16": "v",
    "bfloat16": "P",
}
_EXTRA_MARKERS = ("<", ">", "h", "*", "p")
_RUN_MARKERS = ("o", "s", "^", "D", "v", "P")


@dataclass(frozen=True)
class Plot:
    """One rendered figure.

    Attributes
    ----------
    title : str
        Caption shown above the figure.
    svg : str or None
        Standalone ``<svg>`` element produced by matplotlib, or ``None`` when
        there was nothing to draw.
    notes : tuple of str
        Remarks for the reader: why nothing was drawn, or which points could
        not be placed on the axes.
    """

    title: str
    svg: str | None
    notes: tuple[str, ...] = ()


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


def time_vs_n(cells: pd.DataFrame, *, fig_id: str, title: str = "Time vs n") -> Plot:
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
    styles = _Styles(points)
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


def backward_ratio_vs_kappa(
    cells: pd.DataFrame,
    *,
    fig_id: str,
    threshold: float = 30.0,
    title: str = "Backward error ratio vs kappa",
) -> Plot:
    """Backward error ratio against condition number, log-log, per series.

    The x coordinate is ``kappa_actual`` where known, else the target
    ``kappa``.  Cells with status ``failed`` are overdrawn with a red cross;
    failed cells whose ratio is NaN or Inf are drawn as red triangles along
    the top edge, so that a failure is never invisible.  A dashed line marks
    the pass threshold.

    Parameters
    ----------
    cells : pandas.DataFrame
        Cells of one op with columns ``variant`` (or ``impl``), ``dtype``,
        ``kappa``, ``kappa_actual``, ``backward_ratio``, ``status`` and
        optionally ``run_name``.
    fig_id : str
        Prefix that makes the SVG's ids unique within the HTML document.
    threshold : float, optional
        Pass threshold drawn as a horizontal line.
    title : str, optional
        Caption.

    Returns
    -------
    Plot
    """
    data = _series_frame(cells)
    actual = _numeric(data, "kappa_actual")
    target = _numeric(data, "kappa")
    data["x"] = actual.where(_positive(actual), target)
    data["y"] = _numeric(data, "backward_ratio")
    status = data["status"] if "status" in data else pd.Series("", index=data.index)
    data["failed"] = status.eq("failed")

    has_x = _positive(data["x"])
    finite_y = np.isfinite(data["y"])
    drawable = has_x & finite_y & (data["y"] > 0)
    top = has_x & data["failed"] & ~finite_y
    notes = []
    n_zero = int((has_x & finite_y & (data["y"] <= 0)).sum())
    if n_zero:
        notes.append(f"{n_zero} cell(s) with ratio 0 not shown (log axis)")
    n_no_kappa = int((~has_x & (finite_y | data["failed"])).sum())
    if n_no_kappa:
        notes.append(f"{n_no_kappa} cell(s) without a known kappa not shown")
    if not (drawable | top).any():
        return Plot(title, None, ("no data: no cell of this op has a backward ratio", *notes))
    if top.any():
        notes.append(f"{int(top.sum())} failed cell(s) with a non-finite ratio drawn at the top")

    shown = data[drawable]
    styles = _Styles(data[drawable | top])
    with _figure() as (fig, ax):
        for (variant, dtype, run_name), s in shown.groupby(
            ["variant", "dtype", "run_name"], sort=True
        ):
            color, _, _ = styles.line(variant, dtype, run_name)
            hollow = styles.multi_run and styles.run_index(run_name) > 0
            ax.scatter(
                s["x"],
                s["y"],
                s=14,
                marker=styles.dtype_marker(dtype),
                facecolors="none" if hollow else color,
                edgecolors=color,
                linewidths=0.8,
                label=_plain(_label(variant, dtype, run_name if styles.multi_run else None)),
            )
        failed = shown[shown["failed"]]
        if not failed.empty:
            ax.scatter(
                failed["x"],
                failed["y"],
                s=36,
                marker="x",
                color="#d62728",
                linewidths=1.0,
                label="failed",
            )
        ys = shown["y"]
        lo = min(ys.min(), threshold) / 3 if not ys.empty else threshold / 100
        hi = max(ys.max(), threshold) * 3 if not ys.empty else threshold * 100
        if top.any():
            ax.scatter(
                data.loc[top, "x"],
                np.full(int(top.sum()), hi),
                s=30,
                marker="^",
                color="#d62728",
                clip_on=False,
                label="failed, non-finite ratio",
            )
        ax.axhline(
            threshold,
            color="0.25",
            linestyle="--",
            linewidth=1.0,
            label=_plain(f"threshold {threshold:g}"),
        )
        _log_axes(ax)
        ax.set_ylim(lo, hi * 1.5)
        ax.set_xlabel("kappa (actual where known, else target)")
        ax.set_ylabel("backward error / (max(m, n) u)")
        _legend(ax)
        svg = _to_svg(fig, fig_id)
    return Plot(title, svg, tuple(notes))


class _Styles:
    """Consistent colours (per variant), line styles and markers (per dtype),
    and markers (per run) within one figure."""

    def __init__(self, frame: pd.DataFrame):
        self._variants = sorted(frame["variant"].unique())
        self._runs = list(dict.fromkeys(frame["run_name"]))
        cmap = matplotlib.colormaps["tab10" if len(self._variants) <= 10 else "tab20"]
        self._colors = {v: cmap(i % cmap.N) for i, v in enumerate(self._variants)}
        extra_dtypes = sorted(set(frame["dtype"]) - set(_DTYPE_MARKERS))
        self._markers = dict(_DTYPE_MARKERS)
        self._markers.update(
            {d: _EXTRA_MARKERS[i % len(_EXTRA_MARKERS)] for i, d in enumerate(extra_dtypes)}
        )
        extra_ls = sorted(set(frame["dtype"]) - set(_LINESTYLES))
        self._linestyles = dict(_LINESTYLES)
        self._linestyles.update(
            {d: _EXTRA_LINESTYLES[i % len(_EXTRA_LINESTYLES)] for i, d in enumerate(extra_ls)}
        )

    @property
    def multi_run(self) -> bool:
        return len(self._runs) > 1

    def run_index(self, run_name: str) -> int:
        return self._runs.index(run_name)

    def dtype_marker(self, dtype: str) -> str:
        return self._markers[dtype]

    def line(self, variant: str, dtype: str, run_name: str) -> tuple:
        # With several runs the marker tells runs apart; with one, the dtype.
        if self.multi_run:
            marker = _RUN_MARKERS[self.run_index(run_name) % len(_RUN_MARKERS)]
        else:
            marker = self._markers[dtype]
        return self._colors[variant], self._linestyles[dtype], marker


def _series_frame(cells: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``cells`` with the series keys present and free of NaN
    (``groupby`` would silently drop NaN keys)."""
    data = cells.copy()
    if "variant" not in data:
        data["variant"] = data["impl"] if "impl" in data else "?"
    if "run_name" not in data:
        data["run_name"] = ""
    if "dtype" not in data:
        data["dtype"] = "?"
    for col, fill in (("variant", "?"), ("dtype", "?"), ("run_name", "")):
        data[col] = data[col].where(data[col].notna(), fill).astype(str)
    return data


def _numeric(frame: pd.DataFrame, col: str) -> pd.Series:
    if col not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[col], errors="coerce").astype(float)


def _positive(values: pd.Series) -> pd.Series:
    return np.isfinite(values) & (values > 0)


def _label(variant: str, dtype: str, run_name: str | None) -> str:
    label = f"{variant} {dtype}"
    return f"{label} [{run_name}]" if run_name else label


def _plain(text: str) -> str:
    # matplotlib parses text between dollar signs as mathtext, and drops
    # legend entries whose label starts with an underscore.
    text = text.replace("$", r"\$")
    return f" {text}" if text.startswith("_") else text


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_MATH_POWER = re.compile(r"\^\{([^}]*)\}")


class _PlainLogFormatter(LogFormatterSciNotation):
    """Matplotlib's log tick labels, with the mathtext turned into plain text."""

    def __call__(self, x, pos=None) -> str:
        text = super().__call__(x, pos)
        if not text.startswith("$"):
            return text
        text = text.strip("$").removeprefix(r"\mathdefault{").removesuffix("}")
        text = _MATH_POWER.sub(lambda m: m.group(1).translate(_SUPERSCRIPT), text)
        return text.replace(r"\times", "×").replace("-", "−")


def _log_axes(ax) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        # Minor ticks at 2 and 5 only: enough to read values off, and tick
        # objects are the next largest cost of drawing a figure.
        axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        # Same labelling rules as matplotlib's default log formatters.
        axis.set_major_formatter(_PlainLogFormatter())
        axis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False))


_MAX_SIZE_TICKS = 12


def _size_ticks(ax, sizes: pd.Series) -> None:
    # Sweeps use a handful of sizes (often powers of two) that decade ticks
    # label poorly; label the sizes themselves when there are few enough.
    ticks = np.unique(sizes.to_numpy(float))
    if ticks.size > _MAX_SIZE_TICKS:
        return
    ax.set_xticks(ticks, labels=[f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, borderaxespad=0)


@contextmanager
def _figure() -> Iterator[tuple[Figure, object]]:
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=_FIGSIZE)
        yield fig, fig.add_subplot()


_PROLOGUE = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->\s*", re.DOTALL)
_ID_REF = re.compile(r'(\bid="|\bxlink:href="#|\bhref="#|url\(#)([^")]+)')


def _to_svg(fig: Figure, fig_id: str) -> str:
    """Serialise ``fig`` as an inline ``<svg>`` element with ids prefixed."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata=_SVG_METADATA)
    # The XML declaration and DOCTYPE are invalid inside HTML, and the
    # DOCTYPE names a remote DTD.  Comments only repeat the text labels.
    svg = _COMMENT.sub("", _PROLOGUE.sub("", buf.getvalue(), count=1))
    return _ID_REF.sub(lambda m: f"{m.group(1)}{fig_id}-{m.group(2)}", svg).strip()
