"""Compare two runs: did speed or accuracy change? (design sections 8 and 9).

The same sweep is run on a *base* (a commit, a machine) and a *head*; cells
are matched by ``cell_key`` (the stable hash of everything that defines a
cell), and every matched cell gets a speed verdict, an accuracy verdict and
its status change.  :func:`compare_runs` builds the :class:`Comparison`,
:func:`~factorbench.reports.compare_render.format_table` renders it for a
terminal, :func:`~factorbench.reports.compare_render.render_compare` as a
self-contained HTML page, and :meth:`Comparison.gate_failures` says why a CI
job should fail.

Speed
-----
Times are compared on the raw per-call samples each run kept
(``samples_json``), never on single numbers:

* ``speedup = median(base) / median(head)`` (> 1: head is faster) and
  ``change = median(head) / median(base) - 1`` (> 0: head is slower).
* Significance: the two-sided Mann-Whitney U test [MW47]_ on the samples
  (:func:`scipy.stats.mannwhitneyu`; scipy picks the exact null distribution
  for small samples without ties and the normal approximation with tie and
  continuity corrections otherwise).  Timing samples are skewed, heavy-tailed
  and occasionally bimodal (design section 10: maxima 3x the median), so a
  rank test is used rather than a t-test.
* Multiple testing: a sweep has thousands of cells, and at ``alpha = 0.05``
  a test per cell would flag about 5% of pure-noise cells.  The p-values are
  adjusted with the Benjamini-Hochberg procedure [BH95]_
  (:func:`scipy.stats.false_discovery_control`), which controls the expected
  fraction of false discoveries among the flagged cells at ``alpha``; under
  pure noise it flags nothing with probability at least ``1 - alpha``.
* Effect size: Cliff's delta [Cl93]_, equal to the rank-biserial
  correlation ``2 U / (n_head n_base) - 1`` with ``U`` the statistic of the
  head sample: ``P(head > base) - P(head < base)`` over all pairs of
  samples.  **Positive means head slower**, -1 means every head sample is
  faster than every base sample.
* A test that cannot reach ``alpha`` even when the two samples do not
  overlap at all (3 vs 3 samples: the smallest two-sided exact p is
  2 / C(6, 3) = 0.1) can never see a change, so such a cell is
  ``inconclusive``, never ``same``.  Whether a cell is testable depends only
  on its sample sizes, not on the data, so these cells are left out of the
  Benjamini-Hochberg family (they could never be rejected; keeping them
  would only make the correction stricter for the others; Tarone 1990).
  Their ``p_adjusted`` is NaN.

Speed verdicts (``speed_verdict``):

``slower``
    significant (adjusted p <= alpha), Cliff's delta > 0 and
    ``head/base - 1 > floor`` (the noise floor below).
``faster``
    significant, Cliff's delta < 0 and ``base/head - 1 > floor``.
``same``
    the median change is within the noise floor (``head/base - 1 <=
    floor`` and ``base/head - 1 <= floor``), whether significant or not: a
    significant 2% shift is usually machine drift (frequency, thermals), not
    code.
``inconclusive``
    the test could not see a change: too few samples to ever reach alpha,
    timings without raw samples, or *not significant although the medians
    differ by more than the noise floor* (the data are too noisy to say; a
    non-significant 25% change is not "no change"), or the median and the
    rank statistic point in opposite directions.
``n/a``
    no timing in one of the runs (error, crash, timeout, skipped...).

The test compares the calls of one run with the calls of the other, so it
sees the noise *within* a run (samples taken back to back, a fraction of a
second apart), not the variation *between* runs (clock frequency, thermal
state, other tenants of a virtual machine, memory placement).  On the 2-core
reference VM two runs of the same code differ per cell by a robust standard
deviation of 2-8%, with occasional single cells 15-140% off, and a cell's
burst of samples is then significant by any within-run test.  Hence a noise
floor: a cell is ``slower`` or ``faster`` only when its change also exceeds

    floor = max(min_effect, exp(noise_sigmas * spread) - 1),

where ``spread`` is the robust standard deviation (1.4826 x MAD) of
each cell's log(head/base) *about the median change of its impl*, over the
cells timed in both runs (at least :data:`MIN_NOISE_CELLS`).  A change to
the code moves the cells of the impls it touches together; the run-to-run
noise moves cells one by one.  Centring each impl on its own median removes
the former (and any machine-wide drift), so a regression never widens the
floor it is judged by, while the median absolute deviation ignores the few
cells that moved on their own.  The header also shows the median
change over all cells next to the change of each run's GEMM ceiling, so that
a machine-wide shift can be told from a code change.  Single cells that
moved with the machine's hiccups can still pass the floor; re-running the
flagged cells (or both runs with ``--seeds``/more ``--min-time``) settles it.

The two thresholds are symmetric in log scale: ``speedup < 1/(1 + floor)``
is slower, ``speedup > 1 + floor`` is faster.  Very short
cells (``time_base_s`` below a millisecond) are noisier; they are not treated
specially here, so a caller can filter on ``time_base_s``.

``peak_speedup = peak_fraction(head) / peak_fraction(base)`` divides each
run's GFLOP/s by that run's own GEMM ceiling, so that two machines can be
compared on how well an implementation uses the hardware rather than on raw
speed; NaN when either ceiling is unknown.

Accuracy
--------
The accuracy metrics of section 5 are deterministic for deterministic
implementations (and for randomized ones, whose seed is part of the cell):
rerunning a cell gives the same numbers up to the rounding differences a
different BLAS thread count may introduce, so **no significance test is
made**; a change is judged by its size.  For each metric present in both
runs the *floored* ratio head/base is computed:

* ``backward_ratio``, ``orthogonality_ratio`` and ``lowrank_error_ratio``
  are floored at 1: ``max(head, 1) / max(base, 1)``.  The u-scaled ratios
  are normalised so that O(1) means "at the level of the unit roundoff";
  0.3 and 0.9 are the same verdict (as accurate as the precision allows),
  and a change from 0.3 to 0.9 is rounding noise, not a 3x loss.  The lowrank
  ratio is >= 1 by Eckart-Young.
* ``forward_error`` is floored at the unit roundoff u of the cell's
  precision: ``max(head, u) / max(base, u)``; below u the error is noise of
  the rounding of the data itself.

``accuracy_change`` is the largest of these ratios (the worst metric).  A
metric that became NaN (stored in ``nan_columns``) while it was finite in
base counts as infinitely worse.  The cell is ``less_accurate`` when
``accuracy_change`` exceeds the reporting factor
(:attr:`CompareOptions.accuracy_threshold`: ``fail_less_accurate`` when a
gate is set, else ``accuracy_factor``), ``more_accurate`` when every metric
improved by that factor, ``same`` otherwise, ``n/a`` without metrics.

Status and gate
---------------
Every change of status is listed; a change from ``ok`` to anything else is a
regression.  :meth:`Comparison.gate_failures` fails on a ``slower`` cell
beyond ``fail_slower`` percent or an ``ok -> timeout`` cell (speed gate),
and on a floored accuracy ratio beyond ``fail_less_accurate`` or an ``ok ->
failed|error|crashed`` cell (accuracy gate).  Unmatched cells never fail the
gate but are always listed and counted.

References
----------
.. [MW47] H. B. Mann and D. R. Whitney, "On a test of whether one of two
   random variables is stochastically larger than the other", Ann. Math.
   Statist. 18(1), 50-60, 1947.
.. [BH95] Y. Benjamini and Y. Hochberg, "Controlling the false discovery
   rate: a practical and powerful approach to multiple testing", J. R.
   Statist. Soc. B 57(1), 289-300, 1995.
.. [Cl93] N. Cliff, "Dominance statistics: ordinal analyses to answer
   ordinal questions", Psychological Bulletin 114(3), 494-509, 1993.
.. R. E. Tarone, "A modified Bonferroni method for discrete data",
   Biometrics 46(2), 515-522, 1990.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from factorbench.reports._format import (
    _accuracy_text,
    _cell_text,
    _finite,
    _fmt_factor,
    _fmt_p,
    _fmt_pct,
    _fmt_time,
    _one_line,
    _text,
)
from factorbench.reports._frames import variants as _variants

__all__ = [
    "CompareOptions",
    "Comparison",
    "ACCURACY_METRICS",
    "ROW_COLUMNS",
    "SPEED_VERDICTS",
    "ACCURACY_VERDICTS",
    "compare_runs",
    "min_attainable_p",
    "run_to_run_noise",
]

#: Speed verdicts, in the order they are counted.
SPEED_VERDICTS = ("slower", "faster", "same", "inconclusive", "n/a")

#: Accuracy verdicts, in the order they are counted.
ACCURACY_VERDICTS = ("less_accurate", "more_accurate", "same", "n/a")

#: Metric compared -> (row column prefix, floor).  1.0 applies to the
#: u-scaled (and lowrank) ratios; "expected" is the forward error a
#: backward-stable method is expected to reach (:func:`_expected_forward_error`).
ACCURACY_METRICS = {
    "backward_ratio": ("backward", 1.0),
    "forward_error": ("forward", "expected"),
    "orthogonality_ratio": ("orthogonality", 1.0),
    "lowrank_error_ratio": ("lowrank", 1.0),
}

_IDENTITY = ["cell_key", "op", "impl", "dtype", "kind", "m", "n", "kappa", "seed", "params_json"]
_UNMATCHED_COLUMNS = [*_IDENTITY, "status"]
_SORT = ["op", "impl", "dtype", "kind", "n", "kappa", "seed", "params_json", "m", "cell_key"]

#: Columns of :attr:`Comparison.rows`, in order.
ROW_COLUMNS = (
    *_IDENTITY,
    "variant",
    "unit_roundoff",
    "status_base",
    "status_head",
    "message_base",
    "message_head",
    "time_base_s",
    "time_head_s",
    "n_base",
    "n_head",
    "speedup",
    "change",
    "p_value",
    "p_adjusted",
    "effect",
    "significant",
    "noise_floor",
    "speed_verdict",
    "gflops_base",
    "gflops_head",
    "peak_base",
    "peak_head",
    "peak_speedup",
    "noisy",
    "concurrent",
    "host_moved",
    *(f"{prefix}_{part}" for prefix, _ in ACCURACY_METRICS.values()
      for part in ("base", "head", "change")),
    "accuracy_change",
    "accuracy_verdict",
)

#: Head statuses that fail the accuracy gate when base was ``ok``.
_ACCURACY_BREAKS = ("failed", "error", "crashed")
#: Head statuses that fail the speed gate when base was ``ok``.
_SPEED_BREAKS = ("timeout",)



# ------------------------------------------------------------------ options


@dataclass(frozen=True)
class CompareOptions:
    """Thresholds of a comparison.

    Parameters
    ----------
    alpha : float
        Significance level of the speed test, applied to the
        Benjamini-Hochberg adjusted p-values (a false discovery rate).
    min_effect : float
        Smallest noise floor: a significant change of the median time
        smaller than this fraction (default 0.10, asv's ``--factor 1.1``) is
        reported as ``same``.  The floor actually used is the larger of this
        and ``noise_sigmas`` robust standard deviations of the run-to-run
        change measured across the cells (see the module docstring).
    noise_sigmas : float
        Width of the estimated run-to-run noise band; 0 turns the estimate
        off.
    accuracy_factor : float
        A floored accuracy ratio head/base above this factor is reported as
        ``less_accurate`` when no accuracy gate is set.
    fail_slower : float or None
        Speed gate, in percent: fail when a cell is ``slower`` by more than
        this, or went from ``ok`` to ``timeout``.  Since ``slower`` already
        requires a change beyond the noise floor, the effective bound is
        ``max(fail_slower / 100, floor)``.  None: no speed gate.
    fail_less_accurate : float or None
        Accuracy gate, a factor >= 1: fail when a cell's floored accuracy
        ratio exceeds it, or a cell went from ``ok`` to ``failed``, ``error``
        or ``crashed``.  When set it is also the reporting factor.  None: no
        accuracy gate.
    """

    alpha: float = 0.05
    min_effect: float = 0.10
    fail_slower: float | None = None
    fail_less_accurate: float | None = None
    accuracy_factor: float = 2.0
    noise_sigmas: float = 3.0
    across_hosts: bool = False

    def __post_init__(self):
        if not (_real(self.alpha) and 0 < self.alpha < 1):
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha!r}")
        if not (_real(self.min_effect) and 0 <= self.min_effect < math.inf):
            raise ValueError(f"min_effect must be a finite fraction >= 0, got {self.min_effect!r}")
        if not (_real(self.noise_sigmas) and 0 <= self.noise_sigmas < math.inf):
            raise ValueError(f"noise_sigmas must be finite and >= 0, got {self.noise_sigmas!r}")
        if not (_real(self.accuracy_factor) and 1 <= self.accuracy_factor < math.inf):
            raise ValueError(f"accuracy_factor must be finite and >= 1, got "
                             f"{self.accuracy_factor!r}")
        if self.fail_slower is not None and not (
            _real(self.fail_slower) and 0 <= self.fail_slower < math.inf
        ):
            raise ValueError(f"fail_slower must be a percentage >= 0, got {self.fail_slower!r}")
        if self.fail_less_accurate is not None and not (
            _real(self.fail_less_accurate) and 1 <= self.fail_less_accurate < math.inf
        ):
            raise ValueError(
                f"fail_less_accurate must be a factor >= 1, got {self.fail_less_accurate!r}"
            )

    @property
    def accuracy_threshold(self) -> float:
        """Factor beyond which a cell is ``less_accurate``."""
        return float(self.fail_less_accurate if self.fail_less_accurate is not None
                     else self.accuracy_factor)


def _real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and not math.isnan(x)


#: Shared default (frozen, so sharing it is safe).
_DEFAULT_OPTIONS = CompareOptions()


# --------------------------------------------------------------- comparison


# eq=False: the frames have no boolean equality, and a frozen dataclass with
# eq=True would also define a __hash__ that fails on them.
@dataclass(frozen=True, eq=False)
class Comparison:
    """The result of :func:`compare_runs`.

    Attributes
    ----------
    base_run, head_run : dict
        The two rows of the ``runs`` table.
    rows : pandas.DataFrame
        One row per matched ``cell_key``, columns :data:`ROW_COLUMNS`, sorted
        by op, impl, dtype, kind, n, kappa, seed (then params, m, key).
    base_only, head_only : pandas.DataFrame
        Cells present in one run only: ``cell_key, op, impl, dtype, kind, m,
        n, kappa, seed, params_json, status``, in the same order.
    options : CompareOptions
    noise : dict
        The run-to-run noise estimate over all cells timed in both runs:
        ``floor`` (a fraction), ``spread`` (robust standard deviation of
        log(head/base), NaN when too few cells), ``drift`` (median change),
        ``cells`` (how many entered the spread).
    """

    base_run: dict
    head_run: dict
    rows: pd.DataFrame
    base_only: pd.DataFrame
    head_only: pd.DataFrame
    options: CompareOptions = field(default_factory=CompareOptions)
    noise: dict = field(default_factory=dict)

    @property
    def slower(self) -> pd.DataFrame:
        """Significant speed regressions beyond the noise floor, largest change first."""
        return self._worst_first(self.rows["speed_verdict"] == "slower", "change")

    @property
    def faster(self) -> pd.DataFrame:
        """Significant speedups beyond the noise floor, largest speedup first."""
        return self._worst_first(self.rows["speed_verdict"] == "faster", "speedup")

    @property
    def less_accurate(self) -> pd.DataFrame:
        """Cells whose floored accuracy ratio exceeds the reporting factor, worst first."""
        return self._worst_first(self.rows["accuracy_verdict"] == "less_accurate",
                                 "accuracy_change")

    @property
    def status_changes(self) -> pd.DataFrame:
        """Cells whose status differs; regressions (from ``ok``) first."""
        changed = self.rows[self.rows["status_base"] != self.rows["status_head"]]
        regression = (changed["status_base"] == "ok").astype(int)
        order = np.argsort(-regression.to_numpy(), kind="stable")
        return changed.iloc[order]

    @property
    def status_regressions(self) -> pd.DataFrame:
        """Status changes from ``ok`` to anything else."""
        changed = self.status_changes
        return changed[changed["status_base"] == "ok"]

    @property
    def counts(self) -> dict[str, int]:
        """Counts of the verdict header (matched, per verdict, status changes, unmatched)."""
        rows = self.rows
        speed = rows["speed_verdict"].value_counts()
        acc = rows["accuracy_verdict"].value_counts()
        return {
            "matched": len(rows),
            **{v: int(speed.get(v, 0)) for v in SPEED_VERDICTS},
            "tested": int(rows["p_adjusted"].notna().sum()),
            "less_accurate": int(acc.get("less_accurate", 0)),
            "more_accurate": int(acc.get("more_accurate", 0)),
            "accuracy_same": int(acc.get("same", 0)),
            "accuracy_na": int(acc.get("n/a", 0)),
            "host_moved": int(rows["host_moved"].sum()) if "host_moved" in rows else 0,
            "status_changes": int((rows["status_base"] != rows["status_head"]).sum()),
            "status_regressions": len(self.status_regressions),
            "base_only": len(self.base_only),
            "head_only": len(self.head_only),
        }

    def gate_failures(self) -> list[str]:
        """One line per reason a CI job should fail; empty when it passes.

        With ``fail_slower`` set: every ``slower`` cell whose change exceeds
        ``fail_slower`` percent, and every cell that went from ``ok`` to
        ``timeout``.  With ``fail_less_accurate`` set: every cell whose
        floored accuracy ratio exceeds it, and every cell that went from
        ``ok`` to ``failed``, ``error`` or ``crashed``.  Unmatched cells never
        fail the gate.  Lines come worst first within each reason.
        """
        opts = self.options
        lines = []
        if opts.fail_slower is not None:
            bound = opts.fail_slower / 100.0
            slow = self.slower
            for r in slow[slow["change"] > bound].itertuples(index=False):
                lines.append(
                    f"slower by {_fmt_pct(r.change)} (> {opts.fail_slower:g}%): {_cell_text(r)}: "
                    f"median {_fmt_time(r.time_base_s)} -> {_fmt_time(r.time_head_s)}, "
                    f"adjusted p = {_fmt_p(r.p_adjusted)}, Cliff's delta = {r.effect:+.2f}, "
                    f"{r.n_base} vs {r.n_head} samples"
                )
            lines += self._status_lines(_SPEED_BREAKS)
        if opts.fail_less_accurate is not None:
            # With the gate set, less_accurate is judged against this factor.
            factor = opts.fail_less_accurate
            for r in self.less_accurate.itertuples(index=False):
                lines.append(
                    f"less accurate by {_fmt_factor(r.accuracy_change)} "
                    f"(> {factor:g}x): {_cell_text(r)}: {_accuracy_text(r, factor)}"
                )
            lines += self._status_lines(_ACCURACY_BREAKS)
        return lines

    def _status_lines(self, heads) -> list[str]:
        reg = self.status_regressions
        out = []
        for r in reg[reg["status_head"].isin(heads)].itertuples(index=False):
            msg = f": {_one_line(r.message_head, 160)}" if _text(r.message_head) else ""
            out.append(f"status ok -> {r.status_head}: {_cell_text(r)}{msg}")
        return out

    def _worst_first(self, mask, column) -> pd.DataFrame:
        sel = self.rows[mask.to_numpy(bool)]
        return sel.iloc[np.argsort(-sel[column].to_numpy(float), kind="stable")]


# ------------------------------------------------------------------ compare


def compare_runs(
    base_run: dict,
    base_cells: pd.DataFrame,
    head_run: dict,
    head_cells: pd.DataFrame,
    options: CompareOptions = _DEFAULT_OPTIONS,
) -> Comparison:
    """Compare the cells of two runs.

    Parameters
    ----------
    base_run, head_run : dict
        Rows of the ``runs`` table (:meth:`factorbench.store.Store.run`);
        only used for labels, hosts, commits and GEMM ceilings in the output.
    base_cells, head_cells : pandas.DataFrame
        Cells of each run (:meth:`factorbench.store.Store.cells`), columns of
        :data:`factorbench.store.CELL_COLUMNS`.  Required: ``cell_key``,
        ``op``, ``impl``, ``status``; any other column may be missing.
    options : CompareOptions, optional
        Significance level, noise floor, reporting factor and gates.

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        A frame lacks a required column or holds one cell key twice.

    Notes
    -----
    See the module docstring for the statistics: Mann-Whitney U on the raw
    samples [MW47]_, Benjamini-Hochberg over the testable cells [BH95]_,
    Cliff's delta as effect size [Cl93]_, and floored accuracy ratios
    without a test (the metrics are deterministic).
    """
    base = _normalise(base_cells, "base")
    head = _normalise(head_cells, "head")
    base_keys, head_keys = set(base["cell_key"]), set(head["cell_key"])
    base_only = _sorted(base[~base["cell_key"].isin(head_keys)])[_UNMATCHED_COLUMNS]
    head_only = _sorted(head[~head["cell_key"].isin(base_keys)])[_UNMATCHED_COLUMNS]

    ident = base[_IDENTITY]
    b = base.drop(columns=_IDENTITY[1:]).add_suffix("_b").rename(columns={"cell_key_b": "cell_key"})
    h = head.drop(columns=_IDENTITY[1:]).add_suffix("_h").rename(columns={"cell_key_h": "cell_key"})
    merged = ident.merge(b, on="cell_key").merge(h, on="cell_key")
    merged = _sorted(merged).reset_index(drop=True)

    rows = pd.DataFrame({c: merged[c] for c in _IDENTITY})
    rows["variant"] = _variants(rows)
    u = merged["unit_roundoff_b"].fillna(merged["unit_roundoff_h"])
    rows["unit_roundoff"] = u.fillna(rows["dtype"].map(_dtype_u)).astype(float)
    for side, suffix in (("base", "_b"), ("head", "_h")):
        rows[f"status_{side}"] = merged[f"status{suffix}"]
        rows[f"message_{side}"] = merged[f"message{suffix}"]
    noise = _speed(rows, merged, options)
    _accuracy(rows, merged, options)
    rows = rows[list(ROW_COLUMNS)]
    return Comparison(
        base_run=dict(base_run or {}),
        head_run=dict(head_run or {}),
        rows=rows,
        base_only=base_only.reset_index(drop=True),
        head_only=head_only.reset_index(drop=True),
        options=options,
        noise=noise,
    )


_NUMERIC = ("m", "n", "kappa", "kappa_actual", "seed", "unit_roundoff", "time_median_s",
            "gflops", "peak_fraction", "unstable", "concurrent", *ACCURACY_METRICS)
_TEXT = ("dtype", "kind", "params_json", "message", "samples_json", "nan_columns", "host")


def _normalise(cells: pd.DataFrame, which: str) -> pd.DataFrame:
    missing = {"cell_key", "op", "impl", "status"} - set(cells.columns)
    if missing:
        raise ValueError(f"{which} cells lack required column(s): {', '.join(sorted(missing))}")
    out = pd.DataFrame(index=pd.RangeIndex(len(cells)))
    src = cells.reset_index(drop=True)
    for col in ("cell_key", "op", "impl", "status"):
        out[col] = src[col].astype(object).where(src[col].notna(), "?").astype(str)
    dup = out["cell_key"][out["cell_key"].duplicated()]
    if len(dup):
        raise ValueError(f"{which} cells hold cell_key {dup.iloc[0]!r} more than once "
                         "(pass the cells of one run)")
    for col in _NUMERIC:
        out[col] = (pd.to_numeric(src[col], errors="coerce").astype(float)
                    if col in src else np.nan)
    for col in _TEXT:
        vals = src[col].astype(object) if col in src else pd.Series(None, index=out.index,
                                                                     dtype=object)
        out[col] = vals.where(vals.notna(), None)
    for col in ("dtype", "kind", "params_json"):
        out[col] = out[col].map(lambda v: "" if v is None else str(v))
    for col in ("m", "n", "seed"):
        out[col] = out[col].round().astype("Int64")
    return out


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(_SORT, kind="mergesort", na_position="last")


def _dtype_u(dtype: str) -> float:
    from factorbench.accuracy.precision import unit_roundoff

    try:
        return unit_roundoff(dtype)
    except KeyError:
        return math.nan


def _samples(text) -> np.ndarray:
    if text is None:
        return np.empty(0)
    try:
        values = np.asarray(json.loads(text), dtype=float).ravel()
    except (TypeError, ValueError):
        return np.empty(0)
    return values[np.isfinite(values) & (values >= 0)]


@functools.cache
def min_attainable_p(n1: int, n2: int) -> float:
    """Smallest two-sided Mann-Whitney p-value possible with these sample sizes.

    The test is run on two samples that do not overlap at all (every value of
    one above every value of the other, no ties), with the method scipy
    picks for these sizes: the exact ``2 / C(n1 + n2, n1)`` for small
    samples, the normal approximation for large ones.

    Parameters
    ----------
    n1, n2 : int
        Sample sizes, at least 1.

    Returns
    -------
    float
    """
    x = np.arange(n1, dtype=float) + n2
    y = np.arange(n2, dtype=float)
    return float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)


def _median_time(median, samples: np.ndarray) -> float:
    t = median if _finite(median) else (float(np.median(samples)) if samples.size else math.nan)
    return t if _finite(t) and t > 0 else math.nan


#: Fewest timed cells from which the run-to-run spread is estimated.
MIN_NOISE_CELLS = 12

#: Fewest cells of one impl that enter the spread (see run_to_run_noise).
_MIN_GROUP = 5


def run_to_run_noise(speedup, groups=None, *, min_effect: float, sigmas: float) -> dict:
    """Noise floor from the spread of per-cell changes between two runs.

    Parameters
    ----------
    speedup : array_like
        base/head median time of every cell timed in both runs.
    groups : array_like, optional
        The impl of each cell.  The spread is then measured on each cell's
        change relative to the median change of its impl, so that an impl
        that really changed (all its cells move together) does not widen the
        floor it is judged by; impls with fewer than 5 cells are left out.
    min_effect, sigmas : float
        The floor is ``max(min_effect, exp(sigmas * spread) - 1)``.

    Returns
    -------
    dict
        ``floor``, ``spread`` (1.4826 x the median absolute deviation, a
        robust standard deviation), ``drift`` (the median change over all
        cells) and ``cells`` (how many entered the spread).  With fewer than
        :data:`MIN_NOISE_CELLS` cells the spread is NaN and the floor is
        ``min_effect``.
    """
    s = np.asarray(speedup, dtype=float)
    keep = np.isfinite(s) & (s > 0)
    r = -np.log(s[keep])
    out = {"floor": float(min_effect), "spread": math.nan, "drift": math.nan, "cells": 0}
    if r.size:
        out["drift"] = math.expm1(float(np.median(r)))
    if groups is None:
        resid = r - np.median(r) if r.size else r
    else:
        g = np.asarray(groups, dtype=object)[keep]
        parts = []
        for name in dict.fromkeys(g):
            rg = r[g == name]
            # Centring on a group's own median shrinks its residuals (one of
            # three is exactly 0): small groups would bias the spread low.
            if rg.size >= _MIN_GROUP:
                parts.append(rg - np.median(rg))
        resid = np.concatenate(parts) if parts else np.empty(0)
    out["cells"] = int(resid.size)
    if resid.size >= MIN_NOISE_CELLS and sigmas > 0:
        spread = 1.4826 * float(np.median(np.abs(resid)))
        out["spread"] = spread
        out["floor"] = max(float(min_effect), math.expm1(sigmas * spread))
    return out


def _speed(rows: pd.DataFrame, merged: pd.DataFrame, options: CompareOptions) -> dict:
    n = len(rows)
    t_b, t_h = np.full(n, np.nan), np.full(n, np.nan)
    n_b, n_h = np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    p, effect = np.full(n, np.nan), np.full(n, np.nan)
    testable = np.zeros(n, dtype=bool)
    for i, (sb, sh, mb, mh) in enumerate(zip(
        merged["samples_json_b"], merged["samples_json_h"],
        merged["time_median_s_b"], merged["time_median_s_h"], strict=True,
    )):
        xb, xh = _samples(sb), _samples(sh)
        n_b[i], n_h[i] = xb.size, xh.size
        t_b[i], t_h[i] = _median_time(mb, xb), _median_time(mh, xh)
        if xb.size == 0 or xh.size == 0 or not (_finite(t_b[i]) and _finite(t_h[i])):
            continue
        if min_attainable_p(xh.size, xb.size) > options.alpha:
            continue
        testable[i] = True
        res = stats.mannwhitneyu(xh, xb, alternative="two-sided")
        # Identical constant samples give 0/0 in the normal approximation.
        p[i] = float(res.pvalue) if math.isfinite(res.pvalue) else 1.0
        effect[i] = 2.0 * float(res.statistic) / (xh.size * xb.size) - 1.0
    p_adj = np.full(n, np.nan)
    if testable.any():
        p_adj[testable] = stats.false_discovery_control(p[testable], method="bh")

    # A run spread over a cluster holds cells timed on several hosts: a cell
    # that ran on another host in the other run is not a code change.
    moved = _host_moved(merged) & (not options.across_hosts)
    testable &= ~moved
    p[moved] = effect[moved] = np.nan
    timed = np.isfinite(t_b) & np.isfinite(t_h) & ~moved
    with np.errstate(divide="ignore", invalid="ignore"):
        speedup = np.where(timed, t_b / t_h, np.nan)
        change = np.where(timed, t_h / t_b - 1.0, np.nan)
    significant = testable & (p_adj <= options.alpha)
    noise = run_to_run_noise(speedup[timed], rows["variant"].to_numpy(object)[timed],
                             min_effect=options.min_effect, sigmas=options.noise_sigmas)
    floor = noise["floor"]
    up = change > floor               # head slower beyond the noise floor
    down = speedup - 1.0 > floor      # head faster beyond the noise floor
    verdict = np.full(n, "n/a", dtype=object)
    verdict[timed] = "inconclusive"
    verdict[timed & testable & ~up & ~down] = "same"
    verdict[significant & up & (effect > 0)] = "slower"
    verdict[significant & down & (effect < 0)] = "faster"

    peak_b = merged["peak_fraction_b"].to_numpy(float)
    peak_h = merged["peak_fraction_h"].to_numpy(float)
    ok_peak = np.isfinite(peak_b) & np.isfinite(peak_h) & (peak_b > 0) & (peak_h > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        peak_speedup = np.where(ok_peak, peak_h / peak_b, np.nan)

    rows["time_base_s"], rows["time_head_s"] = t_b, t_h
    rows["n_base"], rows["n_head"] = n_b, n_h
    rows["speedup"], rows["change"] = speedup, change
    rows["p_value"], rows["p_adjusted"], rows["effect"] = p, p_adj, effect
    rows["significant"] = significant
    rows["noise_floor"] = floor
    rows["speed_verdict"] = verdict
    rows["gflops_base"] = merged["gflops_b"].to_numpy(float)
    rows["gflops_head"] = merged["gflops_h"].to_numpy(float)
    rows["peak_base"], rows["peak_head"] = peak_b, peak_h
    rows["peak_speedup"] = peak_speedup
    rows["host_moved"] = moved
    rows["noisy"] = (merged["unstable_b"] == 1).to_numpy() | (merged["unstable_h"] == 1).to_numpy()
    rows["concurrent"] = ((merged["concurrent_b"] == 1).to_numpy()
                          | (merged["concurrent_h"] == 1).to_numpy())
    return noise


def _host_moved(merged: pd.DataFrame) -> np.ndarray:
    """Cells timed on different hosts in the two runs, where a run spans several hosts.

    Two single-host runs are a hardware comparison the user asked for (the
    rendering says so); within a cluster run, which host a cell landed on is
    the scheduler's choice, so those timings are never set against each other.
    """
    hb, hh = merged["host_b"], merged["host_h"]
    # only timed cells count: a record made without running (skipped, a lost
    # worker's cell) may carry another host
    tb = merged["time_median_s_b"].notna() & hb.notna()
    th = merged["time_median_s_h"].notna() & hh.notna()
    if max(hb[tb].nunique(), hh[th].nunique()) < 2:
        return np.zeros(len(merged), dtype=bool)
    return (tb & th & (hb != hh)).to_numpy(bool)


def _nan_marked(nan_columns: pd.Series, column: str) -> np.ndarray:
    """True where the store recorded ``column`` as NaN (a failure) rather than missing."""
    return nan_columns.map(lambda s: bool(s) and column in str(s).split(",")).to_numpy(bool)


def _floored(x: np.ndarray, floor) -> np.ndarray:
    # NaN (missing) stays NaN; an unknown floor leaves the value as it is.
    return np.where(np.isnan(x), np.nan, np.fmax(x, floor))


def _expected_forward_error(rows: pd.DataFrame, merged: pd.DataFrame) -> np.ndarray:
    """What a backward-stable method's forward error is expected to be, the
    floor below which a change of the forward error is rounding noise (a
    different BLAS blocking or thread count moves it by a few times).

    solve, lstsq: sqrt(max(m, n)) kappa u, the pass rule's scale
    (:func:`factorbench.accuracy.metrics.limits`); svd and eigh, whose forward
    errors are relative to ||A|| and bounded by Weyl's theorem whatever
    kappa is: max(m, n) u.
    """
    u = rows["unit_roundoff"].to_numpy(float)
    size = np.fmax(rows["m"].to_numpy(float), rows["n"].to_numpy(float))
    size = np.where(np.isfinite(size) & (size >= 1), size, 1.0)
    kappa = merged["kappa_actual_b"].to_numpy(float) if "kappa_actual_b" in merged \
        else np.full(len(rows), np.nan)
    kappa = np.where(np.isfinite(kappa), kappa, rows["kappa"].to_numpy(float))
    kappa = np.where(np.isfinite(kappa) & (kappa >= 1), kappa, 1.0)
    kappa_scaled = rows["op"].isin(("solve", "lstsq")).to_numpy(bool)
    return np.where(kappa_scaled, np.sqrt(size) * kappa * u, size * u)


def _accuracy(rows: pd.DataFrame, merged: pd.DataFrame, options: CompareOptions) -> None:
    expected = _expected_forward_error(rows, merged)
    changes = []
    for metric, (prefix, floor) in ACCURACY_METRICS.items():
        xb = merged[f"{metric}_b"].to_numpy(float)
        xh = merged[f"{metric}_h"].to_numpy(float)
        fl = expected if floor == "expected" else floor
        fb, fh = _floored(xb, fl), _floored(xh, fl)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = fh / fb
        nan_b = _nan_marked(merged["nan_columns_b"], metric)
        nan_h = _nan_marked(merged["nan_columns_h"], metric)
        # A metric that turned NaN is a failure: infinitely worse than any
        # finite value; one that was NaN and became finite, infinitely better.
        ratio = np.where(nan_h & ~nan_b & ~np.isnan(fb), np.inf, ratio)
        ratio = np.where(nan_b & ~nan_h & ~np.isnan(fh), 0.0, ratio)
        rows[f"{prefix}_base"] = np.where(nan_b, np.nan, xb)
        rows[f"{prefix}_head"] = np.where(nan_h, np.nan, xh)
        rows[f"{prefix}_change"] = ratio
        changes.append(ratio)
    stacked = np.vstack(changes) if changes else np.full((1, len(rows)), np.nan)
    present = ~np.isnan(stacked)
    worst = np.where(present.any(axis=0), np.nanmax(np.where(present, stacked, -np.inf), axis=0),
                     np.nan)
    factor = options.accuracy_threshold
    verdict = np.full(len(rows), "n/a", dtype=object)
    verdict[~np.isnan(worst)] = "same"
    verdict[worst > factor] = "less_accurate"
    verdict[worst < 1.0 / factor] = "more_accurate"
    rows["accuracy_change"] = worst
    rows["accuracy_verdict"] = verdict


