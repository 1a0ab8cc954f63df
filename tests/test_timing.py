"""Tests of factorbench.timing: statistics, the adaptive loop, BLAS threads.

Sleeps of a few milliseconds stand in for work, so the assertions are about
the harness's bookkeeping, never about how fast real code runs.
"""

from __future__ import annotations

import gc
import json
import time

import numpy as np
import pytest

from factorbench.timing import (
    Timing,
    blas_info,
    blas_threads,
    bootstrap_median_ci,
    is_unstable,
    summarize,
    time_call,
)

RECORD_KEYS = {
    "time_median_s",
    "time_min_s",
    "time_ci_low_s",
    "time_ci_high_s",
    "time_iqr_s",
    "samples_json",
    "repeats",
    "first_call_s",
    "unstable",
}


def _no_args():
    return (), {}


# --- statistics -------------------------------------------------------------


def test_summarize_known_samples():
    samples = [4.0, 1.0, 3.0, 2.0, 5.0]
    t = summarize(samples, first_call_s=9.0)
    assert isinstance(t, Timing)
    assert t.samples == samples  # raw order kept
    assert t.repeats == 5
    assert t.median_s == 3.0
    assert t.min_s == 1.0
    assert t.iqr_s == 2.0  # percentiles 2 and 4 (linear interpolation)
    assert t.first_call_s == 9.0
    assert t.min_s <= t.ci_low_s <= t.median_s <= t.ci_high_s <= max(samples)


def test_summarize_even_count_iqr_and_median():
    t = summarize([1.0, 2.0, 3.0, 4.0])
    assert t.median_s == 2.5
    assert t.iqr_s == pytest.approx(3.25 - 1.75)


def test_ci_contains_median_and_is_reproducible():
    rng = np.random.default_rng(1)
    samples = list(0.01 + 0.002 * rng.standard_normal(40))
    a = summarize(samples)
    b = summarize(list(samples))
    assert min(samples) <= a.ci_low_s <= a.median_s <= a.ci_high_s <= max(samples)
    assert a.ci_low_s < a.ci_high_s
    assert a.as_record() == b.as_record()
    assert json.dumps(a.as_record()) == json.dumps(b.as_record())
    # A different seed is a different (but still valid) interval.
    low, high = bootstrap_median_ci(samples, seed=123)
    assert min(samples) <= low <= high <= max(samples)


def test_ci_level_narrows():
    rng = np.random.default_rng(2)
    samples = rng.exponential(size=60)
    lo95, hi95 = bootstrap_median_ci(samples, level=0.95)
    lo50, hi50 = bootstrap_median_ci(samples, level=0.5)
    assert lo95 <= lo50 <= hi50 <= hi95


def test_ci_long_sample_list_uses_blocks():
    # More than one bootstrap block; still valid and deterministic.
    samples = np.linspace(1.0, 2.0, 3001)
    first = bootstrap_median_ci(samples, n_boot=500)
    assert first == bootstrap_median_ci(samples, n_boot=500)
    assert first[0] <= 1.5 <= first[1]


def test_single_sample():
    t = summarize([0.5])
    assert (t.ci_low_s, t.ci_high_s) == (0.5, 0.5)
    assert t.iqr_s == 0.0
    assert t.unstable is False
    assert bootstrap_median_ci([0.5]) == (0.5, 0.5)


@pytest.mark.parametrize("bad", [[], [[1.0, 2.0]], [1.0, float("nan")], [float("inf")]])
def test_summarize_rejects_bad_samples(bad):
    with pytest.raises(ValueError):
        summarize(bad)


def test_bootstrap_rejects_bad_level():
    with pytest.raises(ValueError):
        bootstrap_median_ci([1.0, 2.0], level=1.0)
    with pytest.raises(ValueError):
        bootstrap_median_ci([1.0, 2.0], n_boot=0)


def test_as_record():
    t = summarize([0.3, 0.1, 0.2], first_call_s=1.5)
    rec = t.as_record()
    assert set(rec) == RECORD_KEYS
    assert json.loads(rec["samples_json"]) == [0.3, 0.1, 0.2]
    assert rec["repeats"] == 3
    assert rec["first_call_s"] == 1.5
    assert rec["unstable"] is t.unstable
    assert type(rec["unstable"]) is bool
    json.dumps(rec)  # every value is JSON-safe


def test_samples_round_trip_exactly():
    samples = [0.1 + 1e-17, 1 / 3, 2.0**-40]
    rec = summarize(samples).as_record()
    assert json.loads(rec["samples_json"]) == samples


# --- pyperf instability rule ------------------------------------------------


def test_stable_samples():
    assert not is_unstable([1.00, 1.02, 0.98, 1.01, 0.99])


def test_unstable_by_coefficient_of_variation():
    # Spread of +-15% around 1: no point is 50% off, but std/mean ~ 0.15.
    samples = [0.85, 1.15] * 5
    x = np.asarray(samples)
    assert np.max(np.abs(x - x.mean())) / x.mean() < 0.5
    assert is_unstable(samples)


def test_unstable_by_min_max_rule():
    # One outlier among many identical samples keeps the cv under 10%, so
    # only the max rule can fire.
    samples = [1.0] * 200 + [1.8]
    x = np.asarray(samples)
    assert np.std(x, ddof=1) / x.mean() < 0.10
    assert is_unstable(samples)
    # ...and the min rule on its own.
    samples = [1.0] * 200 + [0.4]
    x = np.asarray(samples)
    assert np.std(x, ddof=1) / x.mean() < 0.10
    assert is_unstable(samples)


def test_unstable_needs_two_samples():
    assert is_unstable([5.0]) is False
    assert is_unstable([0.0, 0.0]) is True  # below timer resolution


# --- time_call --------------------------------------------------------------


def test_first_call_separated_and_returned():
    calls = {"n": 0}

    def func():
        calls["n"] += 1
        time.sleep(0.05 if calls["n"] == 1 else 0.002)
        return calls["n"]

    result, t = time_call(func, _no_args, min_time=0.0, min_repeats=4, max_repeats=4)
    assert result == 1  # the first call's value
    assert calls["n"] == 5
    assert t.repeats == len(t.samples) == 4
    assert t.first_call_s >= 0.05
    assert t.first_call_s > max(t.samples)
    assert t.first_call_s not in t.samples


def test_make_args_outside_timer_and_before_every_call():
    events = []

    def make_args():
        events.append("make")
        time.sleep(0.03)
        return (np.arange(3.0),), {"scale": 2.0}

    def func(x, *, scale):
        events.append("call")
        x *= scale  # overwrites its input: the next call must get a fresh copy
        return x

    result, t = time_call(func, make_args, min_time=0.0, min_repeats=3, max_repeats=3)
    assert events == ["make", "call"] * 4
    np.testing.assert_array_equal(result, [0.0, 2.0, 4.0])
    assert max(t.samples) < 0.02
    assert t.first_call_s < 0.02


def test_min_repeats_respected():
    _, t = time_call(lambda: None, _no_args, min_time=0.0, min_repeats=7, max_repeats=50)
    assert t.repeats == 7


def test_max_repeats_caps():
    _, t = time_call(lambda: None, _no_args, min_time=100.0, min_repeats=1, max_repeats=9)
    assert t.repeats == 9


def test_min_time_reached_then_stops():
    _, t = time_call(
        lambda: time.sleep(0.002), _no_args, min_time=0.03, min_repeats=1, max_repeats=1000
    )
    assert sum(t.samples) >= 0.03
    assert sum(t.samples[:-1]) < 0.03  # stopped at the first repeat that reached it


def test_max_time_stops_loop():
    start = time.perf_counter()
    _, t = time_call(
        lambda: time.sleep(0.005),
        _no_args,
        min_time=100.0,
        min_repeats=10_000,
        max_repeats=10_000,
        max_time=0.1,
    )
    elapsed = time.perf_counter() - start
    assert 1 <= t.repeats < 10_000
    assert elapsed < 2.0


def test_max_time_counts_make_args():
    def make_args():
        time.sleep(0.03)
        return (), {}

    _, t = time_call(
        lambda: None, make_args, min_time=100.0, min_repeats=50, max_repeats=50, max_time=0.05
    )
    assert t.repeats <= 3


def test_max_time_zero_still_one_repeat():
    _, t = time_call(lambda: None, _no_args, min_time=1.0, min_repeats=5, max_time=0.0)
    assert t.repeats == 1


def test_sync_inside_timed_region():
    order = []

    def func():
        order.append("func")

    def sync():
        order.append("sync")
        time.sleep(0.01)

    _, t = time_call(func, _no_args, min_time=0.0, min_repeats=2, max_repeats=2, sync=sync)
    assert order == ["func", "sync"] * 3
    assert min(t.samples) >= 0.01
    assert t.first_call_s >= 0.01


def test_custom_timer():
    ticks = iter(range(0, 1000, 2))
    _, t = time_call(
        lambda: None,
        _no_args,
        min_time=0.0,
        min_repeats=3,
        max_repeats=3,
        timer=lambda: float(next(ticks)),
    )
    assert t.samples == [2.0, 2.0, 2.0]
    assert t.first_call_s == 2.0


def test_gc_disabled_during_call_and_restored():
    seen = []
    _, _ = time_call(
        lambda: seen.append(gc.isenabled()), _no_args, min_time=0.0, min_repeats=2, max_repeats=2
    )
    assert seen == [False, False, False]
    assert gc.isenabled()


def test_gc_restored_after_exception():
    def boom():
        raise RuntimeError("impl failed")

    with pytest.raises(RuntimeError, match="impl failed"):
        time_call(boom, _no_args)
    assert gc.isenabled()


def test_gc_left_disabled_if_it_was():
    gc.disable()
    try:
        time_call(lambda: None, _no_args, min_time=0.0, min_repeats=1, max_repeats=1)
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_repeats": 0},
        {"min_repeats": 5, "max_repeats": 4},
        {"min_time": -1.0},
        {"max_time": -1.0},
    ],
)
def test_time_call_rejects_bad_limits(kwargs):
    with pytest.raises(ValueError):
        time_call(lambda: None, _no_args, **kwargs)


def test_make_args_must_return_pair():
    with pytest.raises(TypeError, match="make_args"):
        time_call(lambda: None, lambda: None)


# --- BLAS threads -----------------------------------------------------------


def _blas_threads_now():
    return [e["num_threads"] for e in blas_info() if e["user_api"] == "blas"]


def test_blas_info_json_safe():
    info = blas_info()
    json.dumps(info)
    for entry in info:
        assert {
            "internal_api",
            "version",
            "num_threads",
            "architecture",
            "filepath",
            "user_api",
        } <= set(entry)
        if entry["filepath"] is not None:
            assert "/" not in entry["filepath"] and "\\" not in entry["filepath"]


def test_blas_threads_limits_and_restores():
    before = _blas_threads_now()
    if not before:
        pytest.skip("no BLAS visible to threadpoolctl")
    with blas_threads(1):
        assert all(n == 1 for n in _blas_threads_now())
    assert _blas_threads_now() == before


def test_blas_threads_none_is_noop():
    before = _blas_threads_now()
    with blas_threads(None) as limiter:
        assert limiter is None
        assert _blas_threads_now() == before
    assert _blas_threads_now() == before


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_blas_threads_rejects_bad_count(bad):
    with pytest.raises(ValueError):
        with blas_threads(bad):
            pass
