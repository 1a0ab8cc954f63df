"""CPU and GPU timers, adaptive repeats and timing statistics (design section 6).

One timed cell is measured by :func:`time_call`:

1. ``make_args()`` builds the inputs *outside* the timed region before every
   call, so an impl that overwrites its input always gets a fresh copy in the
   layout it declared, and the copy is never billed to the impl.
2. The first call is timed on its own as ``first_call_s``. It holds one-off
   costs (Numba compilation, GPU handle creation, page faults on first touch
   of the workspace) and never enters the statistics. Its return value is the
   one handed back: the harness computes accuracy from it.
3. Adaptive repeats follow until the timed calls add up to ``min_time`` *and*
   ``min_repeats`` calls were made. ``max_repeats`` caps the count and
   ``max_time`` caps the wall time of the loop (``make_args`` included).
   Every raw sample is kept.

Choices where the contract was silent, and why:

- At least one repeat is always made, even when ``max_time`` is already
  spent, so every cell has a statistic that excludes the first call.
  ``min_repeats`` is honoured unless ``max_time`` runs out first: a cell whose
  single call takes longer than the budget would otherwise run for
  ``min_repeats`` times the budget.
- ``max_time`` is checked between calls (a call is never interrupted; a
  worker-level timeout does that) and is measured on the wall clock
  (:func:`time.perf_counter`) whatever ``timer`` is, because it is a budget
  on elapsed time, not a measurement.
- The garbage collector is disabled during each timed call, as :mod:`timeit`
  does, so that a collection triggered by allocations made elsewhere is not
  billed to the impl. Reference counting still frees arrays.
- The previous repeat's inputs and result are released before the next
  ``make_args()``, so at most one spare copy of the working set is alive
  besides the first call's result.
- The bootstrap confidence interval uses a fixed seed: the same samples give
  byte-identical statistics (for the same NumPy version), so a report rebuilt
  from the store reproduces the one written at run time.
- On a GPU the clock is :class:`EventTimer`: CUDA events read on the
  device's own clock, each recorded on the current stream and waited for,
  which is what ``cupyx.profiler.benchmark`` does around a call (record a
  start event, call, record an end event, synchronise on it).  The wait
  happens inside the timer, so :func:`time_call` needs no ``sync`` for it:
  the end event is recorded as soon as the call returns, before the host
  blocks, and the sample is the device time from the start event to the end
  event, host launch overhead included, as a user of the call would see.
- ``unstable`` follows pyperf's ``check`` rule (standard deviation at least
  10% of the mean, or minimum/maximum at least 50% away from the mean), with
  the sample standard deviation (``ddof=1``) as pyperf's ``statistics.stdev``
  and strict inequalities as the design states them. It needs two samples for
  a standard deviation; with one sample it is ``False`` (nothing to compare).

References
----------
.. [1] V. Stinner, pyperf: "pyperf check" stability rules,
   https://pyperf.readthedocs.io/en/latest/analyze.html
.. [2] B. Efron and R. J. Tibshirani, *An Introduction to the Bootstrap*,
   Chapman & Hall, 1993, ch. 13 (percentile intervals).
"""

from __future__ import annotations

import gc
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Timing",
    "summarize",
    "is_unstable",
    "bootstrap_median_ci",
    "time_call",
    "call_once",
    "EventTimer",
    "blas_threads",
    "blas_info",
]

# pyperf's thresholds (see module docstring).
_CV_LIMIT = 0.10
_SPREAD_LIMIT = 0.50

# Bootstrap resamples are drawn in blocks of at most this many indices so that
# a long sample list does not allocate n_boot * n integers at once; the block
# size is fixed, which keeps the random stream (and hence the CI) reproducible.
_BOOT_BLOCK_ELEMENTS = 1 << 20

# Fields of a threadpoolctl entry that are JSON-safe and say which library runs
# the BLAS and how; "filepath" is reduced to its basename (see blas_info).
_BLAS_FIELDS = (
    "user_api",
    "internal_api",
    "version",
    "num_threads",
    "threading_layer",
    "architecture",
    "filepath",
)


@dataclass
class Timing:
    """Timing statistics of one cell.

    Attributes
    ----------
    first_call_s : float
        Duration of the first call, timed separately and excluded from the
        statistics (compilation, handle creation). NaN when unknown.
    samples : list of float
        Every raw sample in seconds, in the order measured.
    repeats : int
        ``len(samples)``.
    median_s, min_s : float
        Median and minimum of the samples.
    iqr_s : float
        Interquartile range ``np.percentile(samples, 75) - np.percentile(samples, 25)``.
    ci_low_s, ci_high_s : float
        Bootstrap percentile confidence interval of the median (95% by default).
    unstable : bool
        pyperf's instability flag, see :func:`is_unstable`.
    """

    first_call_s: float
    samples: list[float] = field(repr=False)
    repeats: int
    median_s: float
    min_s: float
    iqr_s: float
    ci_low_s: float
    ci_high_s: float
    unstable: bool

    def as_record(self) -> dict[str, Any]:
        """Return the timing columns of a ``cells`` row (design section 7).

        Returns
        -------
        dict
            Keys ``time_median_s``, ``time_min_s``, ``time_ci_low_s``,
            ``time_ci_high_s``, ``time_iqr_s``, ``samples_json`` (the raw
            samples as a JSON list; ``json`` writes floats with ``repr`` so
            they round-trip exactly), ``repeats``, ``first_call_s`` and
            ``unstable``, all plain Python scalars.
        """
        return {
            "time_median_s": float(self.median_s),
            "time_min_s": float(self.min_s),
            "time_ci_low_s": float(self.ci_low_s),
            "time_ci_high_s": float(self.ci_high_s),
            "time_iqr_s": float(self.iqr_s),
            "samples_json": json.dumps([float(s) for s in self.samples]),
            "repeats": int(self.repeats),
            "first_call_s": float(self.first_call_s),
            "unstable": bool(self.unstable),
        }


def _as_samples(samples: Sequence[float] | np.ndarray) -> np.ndarray:
    """Validate samples as a non-empty 1-D array of finite float64 values."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"samples must be a non-empty 1-D sequence, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples must be finite")
    return x


def is_unstable(samples: Sequence[float] | np.ndarray) -> bool:
    """Flag samples whose spread makes a single summary number doubtful.

    pyperf's rule [1]_: the coefficient of variation ``std / mean`` exceeds
    10%, or the minimum or the maximum lies more than 50% away from the mean.

    Parameters
    ----------
    samples : sequence of float
        Raw durations in seconds.

    Returns
    -------
    bool
        ``False`` for fewer than two samples (no spread to judge). ``True``
        when the mean is not positive, i.e. the durations are below the
        timer's resolution and no relative spread can be trusted.

    References
    ----------
    .. [1] pyperf, "pyperf check", https://pyperf.readthedocs.io/en/latest/analyze.html
    """
    x = _as_samples(samples)
    if x.size < 2:
        return False
    mean = float(np.mean(x))
    if mean <= 0.0:
        return True
    cv = float(np.std(x, ddof=1)) / mean
    low = abs(float(np.min(x)) - mean) / mean
    high = abs(float(np.max(x)) - mean) / mean
    return cv > _CV_LIMIT or low > _SPREAD_LIMIT or high > _SPREAD_LIMIT


def bootstrap_median_ci(
    samples: Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the median.

    Parameters
    ----------
    samples : sequence of float
        Raw durations.
    level : float, optional
        Coverage of the interval, in (0, 1).
    n_boot : int, optional
        Number of bootstrap resamples.
    seed : int, optional
        Seed of :func:`numpy.random.default_rng`. Fixed by default so the same
        samples always give the same interval (reports must be reproducible).

    Returns
    -------
    (float, float)
        Lower and upper bound. Both lie within ``[min(samples), max(samples)]``
        because every resampled median does. With one sample, ``(x, x)``.

    Notes
    -----
    The median of a small sample takes few distinct values, so the interval is
    coarse for a handful of repeats; that coarseness is honest, whereas a
    normal approximation would invent precision the data do not have [2]_.
    """
    x = _as_samples(samples)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    n = x.size
    block = max(1, _BOOT_BLOCK_ELEMENTS // n)
    medians = np.empty(n_boot)
    for start in range(0, n_boot, block):
        stop = min(start + block, n_boot)
        idx = rng.integers(0, n, size=(stop - start, n))
        medians[start:stop] = np.median(x[idx], axis=1)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(medians, [tail, 100.0 - tail])
    return float(low), float(high)


def summarize(
    samples: Sequence[float] | np.ndarray,
    *,
    first_call_s: float = float("nan"),
    n_boot: int = 2000,
    seed: int = 0,
) -> Timing:
    """Summarise raw samples into a :class:`Timing`.

    Parameters
    ----------
    samples : sequence of float
        Raw durations in seconds, at least one, all finite.
    first_call_s : float, optional
        Duration of the separately timed first call (NaN when unknown).
    n_boot, seed : int, optional
        Passed to :func:`bootstrap_median_ci`.

    Returns
    -------
    Timing

    Raises
    ------
    ValueError
        If ``samples`` is empty, not 1-D or holds a non-finite value.
    """
    x = _as_samples(samples)
    q25, q75 = np.percentile(x, [25.0, 75.0])
    ci_low, ci_high = bootstrap_median_ci(x, n_boot=n_boot, seed=seed)
    return Timing(
        first_call_s=float(first_call_s),
        samples=[float(s) for s in x],
        repeats=int(x.size),
        median_s=float(np.median(x)),
        min_s=float(np.min(x)),
        iqr_s=float(q75 - q25),
        ci_low_s=ci_low,
        ci_high_s=ci_high,
        unstable=is_unstable(x),
    )


def _timed(
    func: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    timer: Callable[[], float],
    sync: Callable[[], Any] | None,
) -> tuple[Any, float]:
    """Time one call of ``func`` with the garbage collector off."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = timer()
        result = func(*args, **kwargs)
        if sync is not None:
            # Asynchronous devices return before the work is done; the wait
            # belongs to the call.
            sync()
        stop = timer()
    finally:
        if gc_was_enabled:
            gc.enable()
    return result, stop - start


def _call_args(make_args: Callable[[], tuple[Sequence[Any], dict[str, Any]]]):
    """Call ``make_args`` and check it returned ``(args, kwargs)``."""
    made = make_args()
    try:
        args, kwargs = made
    except (TypeError, ValueError):
        raise TypeError("make_args() must return a pair (args, kwargs)") from None
    return tuple(args), dict(kwargs or {})


def call_once(
    func: Callable[..., Any],
    make_args: Callable[[], tuple[Sequence[Any], dict[str, Any]]],
    *,
    timer: Callable[[], float] = time.perf_counter,
    sync: Callable[[], Any] | None = None,
) -> tuple[Any, float]:
    """Call ``func`` once on fresh inputs; return its result and wall seconds.

    The accuracy-only mode: the seconds are those of a first call (compilation,
    caches and handle creation included), so they are recorded as
    ``first_call_s`` and never as a timing statistic.
    """
    args, kwargs = _call_args(make_args)
    return _timed(func, args, kwargs, timer, sync)


def time_call(
    func: Callable[..., Any],
    make_args: Callable[[], tuple[Sequence[Any], dict[str, Any]]],
    *,
    min_time: float = 0.2,
    min_repeats: int = 3,
    max_repeats: int = 100,
    max_time: float = 10.0,
    timer: Callable[[], float] = time.perf_counter,
    sync: Callable[[], Any] | None = None,
) -> tuple[Any, Timing]:
    """Time ``func`` with a separate first call and adaptive repeats.

    Parameters
    ----------
    func : callable
        Called as ``func(*args, **kwargs)``; only this call (and ``sync``) is
        inside the timed region.
    make_args : callable
        Returns ``(args, kwargs)``. Called before every call, outside the
        timed region, so each call gets fresh inputs (impls may overwrite
        theirs).
    min_time : float, optional
        Repeat until the timed repeats add up to at least this many seconds...
    min_repeats : int, optional
        ...and at least this many repeats were made (unless ``max_time`` runs
        out first).
    max_repeats : int, optional
        Never make more repeats than this.
    max_time : float, optional
        Stop once the repeat loop (``make_args`` included, first call
        excluded) has used this many wall-clock seconds. Checked between
        calls; at least one repeat is always made.
    timer : callable, optional
        Clock for the samples, in seconds.
    sync : callable, optional
        Called with no arguments inside the timed region after ``func``
        returns (a device synchronisation for asynchronous backends).

    Returns
    -------
    result : object
        The return value of the first call.
    timing : Timing
        Statistics of the repeats; ``first_call_s`` holds the first call.

    Raises
    ------
    ValueError
        On inconsistent limits. Exceptions raised by ``func``, ``make_args``
        or ``sync`` propagate unchanged.
    """
    if min_repeats < 1:
        raise ValueError(f"min_repeats must be >= 1, got {min_repeats}")
    if max_repeats < min_repeats:
        raise ValueError(f"max_repeats ({max_repeats}) must be >= min_repeats ({min_repeats})")
    if not (min_time >= 0.0 and max_time >= 0.0):
        raise ValueError(f"min_time and max_time must be >= 0, got {min_time}, {max_time}")

    args, kwargs = _call_args(make_args)
    result, first_call_s = _timed(func, args, kwargs, timer, sync)
    del args, kwargs

    samples: list[float] = []
    timed_total = 0.0
    loop_start = time.perf_counter()
    while True:
        args, kwargs = _call_args(make_args)
        out, elapsed = _timed(func, args, kwargs, timer, sync)
        # Release this repeat's working set before the next make_args().
        del args, kwargs, out
        samples.append(elapsed)
        timed_total += elapsed
        if len(samples) >= max_repeats:
            break
        if time.perf_counter() - loop_start > max_time:
            break
        if timed_total >= min_time and len(samples) >= min_repeats:
            break
    return result, summarize(samples, first_call_s=first_call_s)


class EventTimer:
    """A ``timer`` for :func:`time_call` and :func:`call_once` on a CUDA device.

    Each call records a CUDA event on the current stream, waits for it and
    returns the device time elapsed since the first call, in seconds, so
    ``stop - start`` of two calls is ``cupy.cuda.get_elapsed_time(start,
    stop)``: the device time between the two events (resolution about half
    a microsecond).  Waiting for the start event also waits for the work
    queued before it (the copy of the inputs), so that work is never billed
    to the call.  The elapsed times are summed in float64 from consecutive
    events, never taken from one distant origin, so a long cell keeps the
    events' resolution.

    Parameters
    ----------
    cuda : module, optional
        ``cupy.cuda`` (imported when the first timer is made if not given):
        ``Event()`` with ``record()`` and ``synchronize()``, and
        ``get_elapsed_time(start, stop)`` in milliseconds.
    """

    def __init__(self, cuda=None):
        if cuda is None:
            import cupy

            cuda = cupy.cuda
        self._cuda = cuda
        self._last = None
        self._total = 0.0

    def __call__(self) -> float:
        event = self._cuda.Event()
        event.record()
        event.synchronize()
        if self._last is not None:
            self._total += float(self._cuda.get_elapsed_time(self._last, event)) / 1e3
        self._last = event
        return self._total


def _load_blas_libraries() -> None:
    """Import the packages that load a BLAS so threadpoolctl can see them.

    threadpoolctl only finds (and limits) libraries already loaded into the
    process. NumPy and SciPy ship separate OpenBLAS builds in their wheels, and
    SciPy's is loaded only by ``scipy.linalg``; without this import a thread
    limit would miss the library LAPACK-based impls (and Numba's linalg, which
    calls SciPy's) actually run on.
    """
    try:
        import scipy.linalg  # noqa: F401
    except ImportError:
        pass


@contextmanager
def blas_threads(n: int | None) -> Iterator[Any]:
    """Limit BLAS threads to ``n`` inside the block; restore on exit.

    Parameters
    ----------
    n : int or None
        Thread count for every loaded BLAS (``threadpoolctl.threadpool_limits``
        with ``user_api="blas"``). ``None`` leaves the settings untouched.

    Yields
    ------
    threadpoolctl.threadpool_limits or None
        The active limiter, or ``None`` for a no-op.

    Notes
    -----
    NumPy's and SciPy's BLAS are loaded first (see
    :func:`_load_blas_libraries`); a library loaded later inside the block is
    not limited.
    """
    if n is None:
        yield None
        return
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"BLAS thread count must be a positive integer or None, got {n!r}")
    from threadpoolctl import threadpool_limits

    _load_blas_libraries()
    with threadpool_limits(limits=int(n), user_api="blas") as limiter:
        yield limiter


def blas_info() -> list[dict[str, Any]]:
    """Describe the loaded BLAS/OpenMP thread pools, JSON-safe.

    Returns
    -------
    list of dict
        One entry per library reported by ``threadpoolctl.threadpool_info()``
        (after loading NumPy's and SciPy's BLAS), with the keys ``user_api``,
        ``internal_api``, ``version``, ``num_threads``, ``threading_layer``,
        ``architecture`` and ``filepath`` (missing ones are ``None``).
        ``filepath`` is reduced to the file's basename: the library build is
        what tells two machines apart, while the full path only leaks the
        install location.
    """
    from threadpoolctl import threadpool_info

    _load_blas_libraries()
    entries = []
    for raw in threadpool_info():
        entry = {key: raw.get(key) for key in _BLAS_FIELDS}
        if entry["filepath"] is not None:
            entry["filepath"] = os.path.basename(str(entry["filepath"]))
        for key, value in entry.items():
            # Keep the record JSON-safe whatever a future threadpoolctl returns.
            if value is not None and not isinstance(value, str | int | float | bool):
                entry[key] = str(value)
            elif isinstance(value, float) and not math.isfinite(value):
                entry[key] = None
        entries.append(entry)
    return entries
