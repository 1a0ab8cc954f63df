"""Algorithm recommendations from recorded cells (design section 9).

The question users bring is "for op X at size n, condition kappa and dtype d,
which implementation is fastest while still meeting my accuracy bound, and
how sure is that?".  :func:`recommend` answers it from the cells of one run;
the report's recommendation map (:func:`recommendation_grid`) calls the same
function at every recorded (n, kappa), so the command line and the map can
never disagree.

Rules
-----
* The *point* is the recorded size nearest to the requested ``n`` and, when
  ``kappa`` is given, the recorded target condition number nearest to it
  (both in log distance; ties go to the larger, more demanding value).  Only
  cells that ran count; a point farther than a factor ``max_n_factor`` in n
  or ``max_kappa_factor`` in kappa is "no data near it" (:class:`NoData`).
  Without ``kappa`` every cell at that n counts, every family included: the
  answer is then the worst case over all recorded conditions.
* An impl *qualifies* at the point when every one of its cells there ran and
  produced finite metrics, its backward ratio is below ``max_backward_ratio``
  (default: the run's pass threshold), and the other ratios of the pass rule
  (:data:`factorbench.accuracy.metrics.PASS_RATIOS`) stay within the run's
  limits.  An error, crash or timeout at the point disqualifies it.
* Pooled over families (``kind=None``), an impl must also have run on every
  family present at the point: ``solve/posv`` measured only on SPD matrices
  says nothing about a general matrix, so it is excluded with the reason and
  recommended when ``kind="spd"`` is asked for.
* Qualifying impls are ranked by the median over their cells of the median
  time; the *margin* is the runner-up's time over the winner's, and the
  winner is *clear* when, on every matrix both ran (same family, kappa,
  shape and seed), the winner's 95% confidence interval of the median time
  lies entirely below the runner-up's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from factorbench.accuracy.metrics import LOWRANK_THRESHOLD, PASS_RATIOS, limits
from factorbench.reports._format import _fmt_time
from factorbench.reports._frames import loads, variants

__all__ = [
    "Candidate",
    "NoData",
    "Recommendation",
    "format_recommendation",
    "recommend",
    "recommendation_grid",
]

# Statuses that mean the impl was attempted on the cell; skipped and
# unavailable cells carry no evidence either way.
_RAN = ("ok", "failed", "error", "crashed", "timeout")
_MEASURED = ("ok", "failed")


# Columns the ranking reads; the rest of a cell is dropped up front.
_COLUMNS = ("run_id", "op", "impl", "params_json", "variant", "dtype", "kind", "mode", "m",
            "n", "kappa", "seed", "status", "message", "time_median_s", "time_ci_low_s",
            "time_ci_high_s", "nan_columns", *PASS_RATIOS)


class NoData(LookupError):
    """The cells hold nothing near the requested point (message: one line)."""


@dataclass(frozen=True)
class Candidate:
    """One implementation's evidence at the chosen point.

    Attributes
    ----------
    impl : str
        Impl id, with its parameters when it ran with several (``variant``).
    time_s, ci_low_s, ci_high_s : float
        Median over the impl's cells of the median time, and of the bounds of
        its 95% confidence interval (NaN when not timed).
    cells : int
        Cells used as evidence.
    kinds : tuple of str
        Matrix families those cells cover.
    worst_backward_ratio : float
        Largest backward ratio over the cells (NaN when none was recorded).
    intervals : tuple of (str, float, float)
        Per cell: the matrix it ran on (family, kappa, shape, seed) and the
        95% CI of its median time, for the "clear" comparison.
    qualifies : bool
        Meets the accuracy bound on every cell (see the module docstring).
    reason : str
        Why it does not qualify ("" when it does).
    """

    impl: str
    time_s: float
    ci_low_s: float
    ci_high_s: float
    cells: int
    kinds: tuple[str, ...]
    worst_backward_ratio: float
    qualifies: bool
    reason: str = ""
    intervals: tuple[tuple[str, float, float], ...] = ()


@dataclass(frozen=True)
class Recommendation:
    """The answer at one point: qualifying impls fastest first, and the rest.

    Attributes
    ----------
    op, dtype : str
    kind : str or None
        Family asked for; None pools every family at the point.
    n, kappa : float or None
        The point requested.
    n_used : int
        Recorded size used.
    kappa_used : float or None
        Recorded target condition number used (None: every kappa at n_used).
    max_backward_ratio : float
        Accuracy bound applied to the backward ratio.
    ranked : tuple of Candidate
        Qualifying impls, fastest first.
    excluded : tuple of Candidate
        Impls that ran at the point but do not qualify, with the reason.
    run_ids : tuple of int
        Runs the evidence comes from.
    """

    op: str
    dtype: str
    kind: str | None
    n: float
    kappa: float | None
    n_used: int
    kappa_used: float | None
    max_backward_ratio: float
    ranked: tuple[Candidate, ...]
    excluded: tuple[Candidate, ...]
    run_ids: tuple[int, ...] = field(default=())

    @property
    def best(self) -> Candidate | None:
        """The fastest qualifying impl, or None when none qualifies."""
        return self.ranked[0] if self.ranked else None

    @property
    def runner_up(self) -> Candidate | None:
        return self.ranked[1] if len(self.ranked) > 1 else None

    @property
    def margin(self) -> float:
        """Runner-up time over winner time (NaN without a timed runner-up)."""
        best, second = self.best, self.runner_up
        if best is None or second is None or not best.time_s > 0:
            return math.nan
        return second.time_s / best.time_s

    @property
    def clear(self) -> bool:
        """On every matrix both ran, the winner's 95% CI of the median time
        lies entirely below the runner-up's (False without a shared cell)."""
        best, second = self.best, self.runner_up
        if best is None or second is None:
            return False
        theirs = {key: lo for key, lo, _ in second.intervals}
        shared = [(hi, theirs[key]) for key, _, hi in best.intervals if key in theirs]
        return bool(shared) and all(hi < lo for hi, lo in shared)

    def summary(self) -> str:
        """One line: winner, margin and confidence, or why there is none."""
        if self.best is None:
            return "no implementation meets the bound here"
        if self.runner_up is None:
            return f"{self.best.impl} (the only one that qualifies)"
        how = "clear" if self.clear else "within timing noise"
        return f"{self.best.impl}, {self.margin:.2f}x faster than {self.runner_up.impl} ({how})"


def recommend(
    cells: pd.DataFrame,
    *,
    op: str,
    n: float,
    kappa: float | None = None,
    dtype: str | None = None,
    kind: str | None = None,
    max_backward_ratio: float | None = None,
    threshold: float = 30.0,
    lowrank_threshold: float = LOWRANK_THRESHOLD,
    max_n_factor: float = 2.0,
    max_kappa_factor: float = 100.0,
) -> Recommendation:
    """Rank the impls of ``op`` that meet the accuracy bound near (n, kappa).

    Parameters
    ----------
    cells : pandas.DataFrame
        Cells of one run (columns of the store's ``cells`` table).  Cells of
        several runs are pooled as they are: pass one run, or runs of one
        machine, unless mixing is intended.
    op : str
    n : float
        Requested size (the number of columns, as in the sweep).
    kappa : float, optional
        Requested condition number; None takes every recorded kappa at n
        (worst case).
    dtype : str, optional
        Working precision; default float64 when recorded, else the only one.
    kind : str, optional
        Matrix family; None pools every family at the point.
    max_backward_ratio : float, optional
        Bound on the backward ratio; default ``threshold``.
    threshold, lowrank_threshold : float
        The run's pass-rule limits for the other ratios.
    max_n_factor, max_kappa_factor : float
        How far (as a factor) the nearest recorded point may lie.

    Returns
    -------
    Recommendation

    Raises
    ------
    NoData
        Nothing recorded for op/dtype/kind, or nothing near the point.
    ValueError
        ``n`` or ``kappa`` not positive, or ``max_backward_ratio`` not positive.
    """
    if not (isinstance(n, int | float) and math.isfinite(n) and n > 0):
        raise ValueError(f"n must be a positive number, got {n!r}")
    if kappa is not None and not (math.isfinite(kappa) and kappa >= 1):
        raise ValueError(f"kappa must be a number >= 1, got {kappa!r}")
    bound = threshold if max_backward_ratio is None else float(max_backward_ratio)
    if not bound > 0:
        raise ValueError(f"the backward-ratio bound must be positive, got {bound!r}")

    pool = _pool(cells, op=op, dtype=dtype, kind=kind)
    return _answer(pool, op=op, n=n, kappa=kappa, kind=kind, bound=bound,
                   rule=(threshold, lowrank_threshold), max_n_factor=max_n_factor,
                   max_kappa_factor=max_kappa_factor)


def _answer(pool, *, op, n, kappa, kind, bound, rule, max_n_factor, max_kappa_factor):
    dtype = str(pool["dtype"].iloc[0])
    where = _where(op, dtype, kind)
    ran = pool[pool["status"].isin(_RAN)]
    if kappa is not None:
        ran = ran[np.isfinite(ran["kappa"]) & (ran["kappa"] > 0)]
        if ran.empty:
            raise NoData(f"no {where} cell with a target kappa was run")
    if ran.empty:
        raise NoData(f"no {where} cell was run")

    n_used = _nearest(ran["n"], n)
    if _factor(n_used, n) > max_n_factor:
        raise NoData(
            f"no {where} data near n={n:g}: recorded n {_span(ran['n'])} "
            f"(nearest {n_used:g} is {_factor(n_used, n):.3g}x away, limit {max_n_factor:g}x)"
        )
    at = ran[ran["n"] == n_used]
    kappa_used = None
    if kappa is not None:
        kappa_used = _nearest(at["kappa"], kappa)
        if _factor(kappa_used, kappa) > max_kappa_factor:
            raise NoData(
                f"no {where} data near kappa={kappa:.3g} at n={n_used:g}: recorded kappa "
                f"{_span(at['kappa'], '.3g')} (limit {max_kappa_factor:g}x)"
            )
        at = at[at["kappa"] == kappa_used]
    return _rank(
        at,
        op=op,
        dtype=dtype,
        kind=kind,
        n=n,
        kappa=kappa,
        n_used=int(n_used),
        kappa_used=kappa_used,
        bound=bound,
        rule=rule,
    )


def recommendation_grid(
    cells: pd.DataFrame,
    *,
    op: str,
    dtype: str,
    kind: str | None = None,
    max_backward_ratio: float | None = None,
    threshold: float = 30.0,
    lowrank_threshold: float = LOWRANK_THRESHOLD,
) -> tuple[list[int], list[float | None], dict]:
    """:func:`recommend` at every recorded (n, kappa) of one op and dtype.

    Returns
    -------
    sizes : list of int
        Recorded sizes, ascending.
    kappas : list of float or None
        Recorded target kappas, ascending, then None for "every kappa".
    answers : dict
        ``(n, kappa) -> Recommendation``, or ``None`` where nothing ran.
    """
    pool = _pool(cells, op=op, dtype=dtype, kind=kind)
    ran = pool[pool["status"].isin(_RAN)]
    sizes = sorted({int(v) for v in ran["n"].dropna()})
    finite = ran["kappa"][np.isfinite(ran["kappa"]) & (ran["kappa"] > 0)]
    kappas: list[float | None] = [*sorted(set(finite.astype(float))), None]
    bound = threshold if max_backward_ratio is None else float(max_backward_ratio)
    answers = {}
    for size in sizes:
        at_n = ran[ran["n"] == size]
        for kap in kappas:
            try:
                # The exact point (factors 1): the same rule as recommend().
                answers[(size, kap)] = _answer(
                    at_n, op=op, n=size, kappa=kap, kind=kind, bound=bound,
                    rule=(threshold, lowrank_threshold), max_n_factor=1.0,
                    max_kappa_factor=1.0)
            except NoData:
                answers[(size, kap)] = None
    return sizes, kappas, answers


def format_recommendation(rec: Recommendation, *, run: dict | None = None) -> str:
    """Terminal text: the point used, the ranked evidence and the exclusions."""
    point = f"n={rec.n:g}" + (f" -> {rec.n_used}" if rec.n_used != rec.n else "")
    if rec.kappa is None:
        point += ", every recorded kappa (worst case)"
    else:
        point += f", kappa={rec.kappa:.3g}"
        if rec.kappa_used != rec.kappa:
            point += f" -> {rec.kappa_used:.3g}"
    where = _where(rec.op, rec.dtype, rec.kind) + ("" if rec.kind else ", every family")
    lines = [f"{where}, {point}"]
    if run is not None:
        who = ", ".join(str(run[k]) for k in ("label", "host") if run.get(k))
        lines[0] += f"; run {run['run_id']}" + (f" ({who})" if who else "")
    lines.append(f"bound: backward ratio < {rec.max_backward_ratio:g}, other ratios within the "
                 "run's pass rule")
    if rec.ranked:
        table = [("rank", "impl", "median time [95% CI]", "cells", "kinds", "worst bwd ratio")]
        for i, c in enumerate(rec.ranked, 1):
            table.append((str(i), c.impl, _time_ci(c), str(c.cells), ",".join(c.kinds),
                          f"{c.worst_backward_ratio:.3g}"))
        widths = [max(len(r[j]) for r in table) for j in range(len(table[0]))]
        lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                  for r in table]
    lines.append(f"recommendation: {rec.summary()}")
    if rec.excluded:
        lines.append("excluded:")
        width = max(len(c.impl) for c in rec.excluded)
        lines += [f"  {c.impl.ljust(width)}  {c.reason}" for c in rec.excluded]
    return "\n".join(lines)


def _time_ci(c: Candidate) -> str:
    if not math.isfinite(c.time_s):
        return "-"
    text = _fmt_time(c.time_s)
    if math.isfinite(c.ci_low_s) and math.isfinite(c.ci_high_s):
        text += f" [{_fmt_time(c.ci_low_s)}, {_fmt_time(c.ci_high_s)}]"
    return text


# ----------------------------------------------------------------- helpers


def _pool(cells: pd.DataFrame, *, op: str, dtype: str | None, kind: str | None) -> pd.DataFrame:
    if cells.empty or "op" not in cells:
        raise NoData("no cells recorded")
    pool = cells[cells["op"] == op]
    if pool.empty:
        have = ", ".join(sorted(set(cells["op"].astype(str))))
        raise NoData(f"no {op} cells recorded (ops present: {have or 'none'})")
    if dtype is None:
        present = sorted(set(pool["dtype"].astype(str)))
        dtype = "float64" if "float64" in present else present[0]
    sub = pool[pool["dtype"] == dtype]
    if sub.empty:
        have = ", ".join(sorted(set(pool["dtype"].astype(str))))
        raise NoData(f"no {op} cells in {dtype} (dtypes present: {have})")
    if kind is not None:
        sub_kind = sub[sub["kind"] == kind]
        if sub_kind.empty:
            have = ", ".join(sorted(set(sub["kind"].dropna().astype(str))))
            raise NoData(f"no {op} {dtype} cells of kind {kind!r} (kinds present: {have})")
        sub = sub_kind
    keep = [c for c in _COLUMNS if c in sub]
    sub = sub[keep].copy()
    for col in ("m", "n", "kappa", "time_median_s", "time_ci_low_s", "time_ci_high_s",
                *PASS_RATIOS):
        sub[col] = pd.to_numeric(sub[col], errors="coerce").astype(float) if col in sub \
            else np.nan
    if "variant" not in sub:
        sub["variant"] = variants(sub)
    sub["kind"] = sub["kind"].where(sub["kind"].notna(), "").astype(str)
    return sub


def _where(op: str, dtype: str, kind: str | None) -> str:
    return f"{op} {dtype}" + (f" {kind}" if kind else "")


def _nearest(values: pd.Series, target: float) -> float:
    vals = np.unique(values.dropna().to_numpy(float))
    dist = np.abs(np.log(vals) - math.log(target))
    # Ties go to the larger value: the bigger or worse-conditioned problem is
    # the conservative one to answer from.
    best = np.flatnonzero(np.isclose(dist, dist.min(), rtol=0, atol=1e-12))
    return float(vals[best[-1]])


def _factor(a: float, b: float) -> float:
    return max(a, b) / min(a, b)


def _span(values: pd.Series, fmt: str = "g") -> str:
    vals = values.dropna().astype(float)
    lo, hi = vals.min(), vals.max()
    return f"{lo:{fmt}}" if lo == hi else f"{lo:{fmt}}..{hi:{fmt}}"


def _rank(at, *, op, dtype, kind, n, kappa, n_used, kappa_used, bound, rule) -> Recommendation:
    kinds_here = tuple(sorted(set(at["kind"])))
    groups: dict[str, list[dict]] = {}
    # Plain dicts: a point holds a few dozen cells, and pandas per-row access
    # would dominate the report's recommendation maps.
    for c in at.to_dict("records"):
        groups.setdefault(str(c["variant"]), []).append(c)
    ranked, excluded = [], []
    for variant in sorted(groups):
        g = groups[variant]
        reason = _disqualify(g, bound, rule, kinds_here if kind is None else None)
        cand = Candidate(
            impl=variant,
            time_s=_median(c["time_median_s"] for c in g),
            ci_low_s=_median(c["time_ci_low_s"] for c in g),
            ci_high_s=_median(c["time_ci_high_s"] for c in g),
            cells=len(g),
            kinds=tuple(sorted({c["kind"] for c in g})),
            worst_backward_ratio=max(
                (c["backward_ratio"] for c in g if not math.isnan(c["backward_ratio"])),
                default=math.nan),
            qualifies=not reason,
            reason=reason,
            intervals=tuple(sorted(
                (_matrix_key(c), float(c["time_ci_low_s"]), float(c["time_ci_high_s"]))
                for c in g
                if not (math.isnan(c["time_ci_low_s"]) or math.isnan(c["time_ci_high_s"]))
            )),
        )
        (excluded if reason else ranked).append(cand)
    ranked.sort(key=lambda c: (math.isnan(c.time_s), c.time_s, c.impl))
    run_ids = tuple(sorted({int(r) for r in at["run_id"]})) if "run_id" in at else ()
    return Recommendation(
        op=op,
        dtype=dtype,
        kind=kind,
        n=float(n),
        kappa=kappa,
        n_used=n_used,
        kappa_used=kappa_used,
        max_backward_ratio=bound,
        ranked=tuple(ranked),
        excluded=tuple(excluded),
        run_ids=run_ids,
    )


def _matrix_key(c: dict) -> str:
    """The matrix a cell ran on: cells of two impls with the same key timed
    the same input."""
    return "|".join(str(c.get(k)) for k in ("kind", "mode", "kappa", "m", "n", "seed"))


def _median(values) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(np.median(vals)) if vals else math.nan


def _disqualify(g: list[dict], bound: float, rule: tuple, kinds_here) -> str:
    """Why this impl's cells at the point fail the bound ("" when they don't).

    The worst violation (largest ratio over its limit) is named.
    """
    for c in g:
        if c["status"] not in _MEASURED:
            msg = c.get("message")
            msg = msg.splitlines()[0] if isinstance(msg, str) and msg.strip() else ""
            return f"{c['status']}{_at(c)}" + (f": {msg[:120]}" if msg else "")
    worst = None  # (excess over the limit, text) of the worst ratio
    for c in g:
        if loads(c.get("nan_columns"), None):
            return f"non-finite {', '.join(loads(c['nan_columns'], []))}{_at(c)}"
        present = [(r, c[r]) for r in PASS_RATIOS if r in c and not math.isnan(c[r])]
        if not present:
            return f"no accuracy ratio recorded{_at(c)}"
        size = max(v for v in (c.get("m"), c.get("n"), 1.0) if v is not None and v == v)
        lim = dict(limits(*rule, size=size), backward_ratio=bound)
        for ratio, value in present:
            if not math.isfinite(value):
                return f"{ratio} {value}{_at(c)}"
            if value >= lim[ratio] and (worst is None or value / lim[ratio] > worst[0]):
                worst = (value / lim[ratio], f"{ratio} {value:.3g} >= {lim[ratio]:g}{_at(c)}")
    if worst is not None:
        return worst[1]
    if kinds_here is not None:
        have = {c["kind"] for c in g}
        missing = sorted(set(kinds_here) - have)
        if missing:
            return (f"ran only on {', '.join(sorted(have))} "
                    f"(not on {', '.join(missing)}); ask for that kind")
    return ""


def _at(c) -> str:
    parts = [c["kind"]] if c["kind"] else []
    if not math.isnan(c["kappa"]):
        parts.append(f"kappa {c['kappa']:.0e}")
    return f" ({', '.join(parts)})" if parts else ""
