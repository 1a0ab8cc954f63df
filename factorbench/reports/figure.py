"""Figure machinery shared by the report's plots: styles, axes, SVG output.

The plot functions live in :mod:`factorbench.reports.plots` (performance),
:mod:`factorbench.reports.accuracy_plots` and
:mod:`factorbench.reports.decision_plots`.  Each takes the normalised cells
of one op (see :func:`factorbench.reports.build.render_report`) and returns a
:class:`Plot` whose ``svg`` is a standalone ``<svg>`` element ready to be
inlined in HTML, or ``None`` with a note saying why nothing was drawn.

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
* An impl keeps its colour across every figure of a report when the caller
  passes one :func:`palette` to all plot functions; line style and marker
  encode the dtype, and with several runs the marker (or a hollow face)
  encodes the run.
* Failures are never left out silently: failed cells get a red cross, and
  non-finite values (Inf, or NaN recorded in ``nan_columns``) a red
  triangle on the top edge, since a log axis has no place for them.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_svg import RendererSVG
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullLocator

__all__ = ["Plot", "palette", "FAILED_COLOR"]

#: Colour of failure marks (matplotlib's tab:red).
FAILED_COLOR = "#d62728"

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
#: Guide and reference lines: one grey per dtype (or run), darkest first.
_GREYS = ("0.15", "0.45", "0.65", "0.8")

# Red marks failures on every plot, so no impl may be drawn in a red.
_REDS = {"#d62728", "#ff9896"}
_TAB10 = tuple(c for c in (to_hex(c) for c in matplotlib.colormaps["tab10"].colors)
               if c not in _REDS)
# tab20 pairs each hue with a light shade of it; in sorted order the impls of
# one op sit next to each other, so take the ten dark shades first (which
# are tab10's) and the light ones after, rather than alternating.
_TAB20 = tuple(to_hex(c) for c in matplotlib.colormaps["tab20"].colors)
_TAB20 = tuple(c for c in _TAB20[0::2] + _TAB20[1::2] if c not in _REDS)


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


def palette(variants: Iterable[str]) -> dict[str, str]:
    """One colour per variant, the same for every figure of a report.

    Parameters
    ----------
    variants : iterable of str
        Variant (impl) names, in any order and with repeats; ``None`` and NaN
        are ignored.

    Returns
    -------
    dict of str to str
        Hex colour per distinct name, assigned in sorted name order from
        matplotlib's ``tab10`` (up to 9 names) or ``tab20`` (its dark shades,
        then the light ones), cycling beyond 18.  The reds are left out: red
        marks failed cells on every plot.  The result
        depends only on the set of names.
    """
    names = sorted({str(v) for v in variants if v is not None and not pd.isna(v)})
    scheme = _TAB10 if len(names) <= len(_TAB10) else _TAB20
    return {name: scheme[i % len(scheme)] for i, name in enumerate(names)}



class _Styles:
    """Consistent colours (per variant), line styles and markers (per dtype),
    and markers (per run) within one figure.

    ``colors`` is the report-wide :func:`palette`; variants missing from it
    get colours of the same scheme that it does not use yet.
    """

    def __init__(self, frame: pd.DataFrame, colors: Mapping[str, object] | None = None):
        self._variants = sorted(frame["variant"].unique())
        self._runs = list(dict.fromkeys(frame["run_name"]))
        self._colors = _complete_colors(self._variants, colors)
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

    @property
    def variants(self) -> list[str]:
        return list(self._variants)

    @property
    def runs(self) -> list[str]:
        return list(self._runs)

    def run_index(self, run_name: str) -> int:
        return self._runs.index(run_name)

    def run_marker(self, run_name: str) -> str:
        return _RUN_MARKERS[self.run_index(run_name) % len(_RUN_MARKERS)]

    def hollow(self, run_name: str) -> bool:
        """Whether points of this run are drawn with an empty face."""
        return self.multi_run and self.run_index(run_name) > 0

    def color(self, variant: str):
        return self._colors[variant]

    def dtype_marker(self, dtype: str) -> str:
        return self._markers[dtype]

    def linestyle(self, dtype: str) -> str:
        return self._linestyles[dtype]

    def line(self, variant: str, dtype: str, run_name: str) -> tuple:
        # With several runs the marker tells runs apart; with one, the dtype.
        if self.multi_run:
            marker = self.run_marker(run_name)
        else:
            marker = self._markers[dtype]
        return self._colors[variant], self._linestyles[dtype], marker


def _complete_colors(variants: list[str], colors: Mapping[str, object] | None) -> dict:
    if colors is None:
        return palette(variants)
    given = {v: colors[v] for v in variants if v in colors}
    missing = [v for v in variants if v not in given]
    if not missing:
        return given
    # Pick unused colours so a variant outside the palette cannot be
    # mistaken for one inside it.
    used = {to_hex(c) for c in colors.values()}
    spare = [c for c in _TAB20 if c not in used] or list(_TAB20)
    given.update({v: spare[i % len(spare)] for i, v in enumerate(missing)})
    return given


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


def _failed(frame: pd.DataFrame) -> pd.Series:
    """Cells whose result was computed and judged wrong (status ``failed``)."""
    if "status" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["status"].eq("failed")


def _nonfinite(frame: pd.DataFrame, col: str) -> pd.Series:
    """Cells whose ``col`` was computed and came out NaN or Inf.

    The store keeps NaN as NULL and names the column in ``nan_columns``;
    without that list a NaN is ambiguous (the op may not have the metric),
    so it counts only for failed cells, and only when some cell of the frame
    has the metric at all.
    """
    values = _numeric(frame, col)
    recorded = np.isinf(values)
    if "nan_columns" in frame:
        listed = frame["nan_columns"].map(
            lambda text: isinstance(text, str) and col in text.split(",")
        )
        recorded |= listed.astype(bool)
    if not (recorded.any() or np.isfinite(values).any()):
        return recorded
    return recorded | (_failed(frame) & values.isna())


def _label(variant: str, dtype: str | None, run_name: str | None) -> str:
    label = f"{variant} {dtype}" if dtype else variant
    return f"{label} [{run_name}]" if run_name else label


def _plain(text: str) -> str:
    # matplotlib parses text between dollar signs as mathtext, and drops
    # legend entries whose label starts with an underscore.
    text = text.replace("$", r"\$")
    return f" {text}" if text.startswith("_") else text


def _dtype_order(dtypes: Iterable[str]) -> list[str]:
    known = list(_DTYPE_MARKERS)
    present = set(dtypes)
    return [d for d in known if d in present] + sorted(present - set(known))


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


class _FiniteLogLocator(LogLocator):
    """Matplotlib's log ticks without the ones past the float range.

    The locator adds a tick a stride beyond each end of the axis; when the
    axis reaches toward 1e308 (growth factors of 2^1023) that tick is Inf,
    and formatting it raises.
    """

    def tick_values(self, vmin, vmax):
        with np.errstate(over="ignore"):
            ticks = np.asarray(super().tick_values(vmin, vmax), dtype=float)
        return ticks[np.isfinite(ticks)]


def _log_axes(ax, *, x: bool = True, y: bool = True) -> None:
    axes = []
    if x:
        ax.set_xscale("log")
        axes.append(ax.xaxis)
    if y:
        ax.set_yscale("log")
        axes.append(ax.yaxis)
    for axis in axes:
        axis.set_major_locator(_FiniteLogLocator())
        # Minor ticks at 2 and 5 only: enough to read values off, and tick
        # objects are the next largest cost of drawing a figure.
        axis.set_minor_locator(_FiniteLogLocator(subs=(2.0, 5.0)))
        # Same labelling rules as matplotlib's default log formatters.
        axis.set_major_formatter(_PlainLogFormatter())
        axis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False))


_MAX_SIZE_TICKS = 12


def _size_ticks(ax, sizes: pd.Series) -> None:
    # Sweeps use a handful of sizes (often powers of two) that decade ticks
    # label poorly; label the sizes themselves when there are few enough.
    ticks = np.unique(np.asarray(sizes, dtype=float))
    ticks = ticks[np.isfinite(ticks)]
    if ticks.size == 0 or ticks.size > _MAX_SIZE_TICKS:
        return
    ax.set_xticks(ticks, labels=[f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())


def _log_range(values, *extra: float) -> tuple[float, float]:
    """Lower and upper y limits around the positive finite ``values`` and
    ``extra``, padded by a factor of 3; the upper one leaves room for the
    non-finite marks."""
    v = np.asarray(values, dtype=float).ravel()
    v = np.concatenate([v, np.asarray(extra, dtype=float)])
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return 0.1, 10.0
    # Growth factors reach 2^1023: keep the padded limits representable.
    big = np.finfo(float).max
    tiny = np.finfo(float).tiny
    return max(float(v.min()) / 3, tiny), min(float(v.max()) * 3, big)


def _mark_failed(ax, x, y, *, label: str = "failed") -> None:
    if len(x):
        ax.scatter(x, y, s=30, marker="x", color=FAILED_COLOR, linewidths=1.0, label=label,
                   zorder=3)


def _mark_top(ax, x, top: float, *, label: str = "failed, non-finite value") -> None:
    """Red triangles on the top edge (``top``, in data units) at ``x``."""
    if len(x):
        ax.scatter(x, np.full(len(x), top), s=26, marker="^", color=FAILED_COLOR,
                   clip_on=False, label=label, zorder=3)


def _legend(ax, extra: Iterable = ()) -> None:
    """Legend right of the axes; ``extra`` are proxy artists with labels,
    listed first."""
    extra = list(extra)
    handles, labels = ax.get_legend_handles_labels()
    handles = [*extra, *handles]
    labels = [*(artist.get_label() for artist in extra), *labels]
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  frameon=False, borderaxespad=0)


@contextmanager
def _figure() -> Iterator[tuple[Figure, object]]:
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=_FIGSIZE)
        yield fig, fig.add_subplot()


@contextmanager
def _grid(
    nrows: int, ncols: int, figsize: tuple[float, float], **share
) -> Iterator[tuple[Figure, np.ndarray]]:
    """Figure with an ``(nrows, ncols)`` array of axes; ``share`` takes
    ``sharex`` and ``sharey`` as in :meth:`matplotlib.figure.Figure.subplots`."""
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=figsize)
        yield fig, fig.subplots(nrows, ncols, squeeze=False, **share)


_PROLOGUE = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->\s*", re.DOTALL)
_ID_REF = re.compile(r'(\bid="|\bxlink:href="#|\bhref="#|url\(#)([^")]+)')


def _to_svg(fig: Figure, fig_id: str) -> str:
    """Serialise ``fig`` as an inline ``<svg>`` element with ids prefixed,
    cropped to its artists as ``bbox_inches="tight"`` would."""
    # ``bbox_inches="tight"`` lays the whole figure out once more before
    # drawing it, a third of the time of a figure; nothing here is placed at
    # draw time (no layout engine), so the extents measured by an SVG
    # renderer at the SVG's 72 dpi give the same box, and the same bytes.
    fig.dpi = 72
    measure = RendererSVG(fig.bbox.width, fig.bbox.height, io.StringIO(), image_dpi=72)
    bbox = fig.get_tightbbox(measure).padded(matplotlib.rcParams["savefig.pad_inches"])
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches=bbox, metadata=_SVG_METADATA)
    # The XML declaration and DOCTYPE are invalid inside HTML, and the
    # DOCTYPE names a remote DTD.  Comments only repeat the text labels.
    svg = _COMMENT.sub("", _PROLOGUE.sub("", buf.getvalue(), count=1))
    return _ID_REF.sub(lambda m: f"{m.group(1)}{fig_id}-{m.group(2)}", svg).strip()
