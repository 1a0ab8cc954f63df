"""Number formatting and the Jinja environment shared by the report and the comparison."""

from __future__ import annotations

import functools
import math
import pathlib

from jinja2 import Environment, FileSystemLoader, StrictUndefined

_DASH = "\u2014"

_TEMPLATES = pathlib.Path(__file__).with_name("templates")


@functools.cache
def environment() -> Environment:
    """Jinja2 environment of the report templates: autoescape on, undefined
    names an error (a typo in a template must not render as empty)."""
    return Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )

#: Metric compared -> (row column prefix, floor); see factorbench.reports.compare.
ACCURACY_PREFIXES = {
    "backward_ratio": "backward",
    "forward_error": "forward",
    "orthogonality_ratio": "orthogonality",
    "lowrank_error_ratio": "lowrank",
}

def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _text(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return str(x).strip()


def _one_line(x, limit: int) -> str:
    return _cut(" ".join(_text(x).split()), limit)


def _s(k: int) -> str:
    return "" if k == 1 else "s"


def _fmt_g(x, digits: int = 3) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return _DASH
    if math.isnan(x):
        return _DASH
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def _fmt_int(x) -> str:
    return str(int(x)) if _finite(x) else _DASH


def _fmt_size(m, n) -> str:
    if not _finite(n):
        return "?"
    return _fmt_int(n) if not _finite(m) or m == n else f"{_fmt_int(m)}x{_fmt_int(n)}"


_TIME_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns"))


def _fmt_time(t, units=_TIME_UNITS) -> str:
    if not _finite(t):
        return _DASH
    scale, unit = next(((s, u) for s, u in units if abs(t) >= s), units[-1])
    return f"{t / scale:.3g} {unit}"


def _fmt_time_ci(median, low, high, units=_TIME_UNITS) -> str:
    """``"12.3 ms [11.9, 13.1]"``: a median time and its CI in the median's unit."""
    text = _fmt_time(median, units)
    if text == _DASH or not (_finite(low) and _finite(high)):
        return text
    scale = next((s for s, _ in units if abs(median) >= s), units[-1][0])
    return f"{text} [{low / scale:.3g}, {high / scale:.3g}]"


def _fmt_pct(x) -> str:
    if not _finite(x):
        return _DASH
    return f"{100 * x:+.1f}%"


def _fmt_factor(x) -> str:
    text = _fmt_g(x)
    return text if text in (_DASH, "inf", "-inf") else text + "x"


def _fmt_p(p) -> str:
    if not _finite(p):
        return _DASH
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _cell_text(r) -> str:
    """op, impl, dtype, kind, size, kappa and seed of a row, for one-line messages."""
    impl = r.variant if hasattr(r, "variant") else r.impl
    size = _fmt_size(r.m, r.n)
    parts = [r.op, impl, r.dtype or "?"]
    if r.kind:
        parts.append(f"kind={r.kind}")
    parts += [f"n={size}", f"kappa={_fmt_g(r.kappa, 2)}", f"seed={_fmt_int(r.seed)}"]
    return " ".join(parts)


def _accuracy_text(r, factor) -> str:
    parts = []
    for metric, prefix in ACCURACY_PREFIXES.items():
        ch = getattr(r, f"{prefix}_change")
        if not _finite(ch) and not (isinstance(ch, float) and math.isinf(ch)):
            continue
        mark = " !" if ch > factor else ""
        parts.append(f"{metric} {_fmt_g(getattr(r, f'{prefix}_base'))} -> "
                     f"{_fmt_g(getattr(r, f'{prefix}_head'))} ({_fmt_factor(ch)}{mark})")
    return ", ".join(parts)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "\u2026"
