"""Tests for run-to-run comparison (factorbench.reports.compare)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape as html_escape

from factorbench.reports.compare import (
    ROW_COLUMNS,
    CompareOptions,
    Comparison,
    compare_runs,
    min_attainable_p,
    run_to_run_noise,
)
from factorbench.reports.compare_render import format_table, render_compare
from factorbench.store import CELL_COLUMNS

U64 = 2.0**-53
XSS = "<script>alert(1)</script>"


def _run(run_id: int, label: str | None = None, host: str = "bench", commit: str = "abc") -> dict:
    return {
        "run_id": run_id,
        "label": label,
        "created_at": f"2024-05-0{run_id}T10:00:00+00:00",
        "finished_at": f"2024-05-0{run_id}T10:20:00+00:00",
        "status": "complete",
        "argv": json.dumps(["factorbench", "run"]),
        "machine_json": json.dumps({"host": host}),
        "gemm_gflops_json": json.dumps({"float64": 400.0, "float32": 800.0}),
        "git_commit": commit * 4,
        "host": host,
    }


def _cell(
    key: str,
    samples=None,
    *,
    op: str = "lu",
    impl: str = "lu/lapack",
    n: int = 256,
    kappa: float = 1e4,
    dtype: str = "float64",
    kind: str = "random",
    seed: int = 0,
    status: str = "ok",
    message: str | None = None,
    backward_ratio: float | None = 0.5,
    forward_error: float | None = None,
    orthogonality_ratio: float | None = None,
    peak_fraction: float | None = None,
    nan_columns: str | None = None,
) -> dict:
    row = dict.fromkeys(CELL_COLUMNS)
    row.update(
        run_id=1, cell_key=key, op=op, impl=impl, family="random", kind=kind, m=n, n=n,
        kappa=kappa, dtype=dtype, unit_roundoff=U64 if dtype == "float64" else 2.0**-24,
        seed=seed, params_json="{}", status=status, message=message,
        backward_ratio=backward_ratio, forward_error=forward_error,
        orthogonality_ratio=orthogonality_ratio, peak_fraction=peak_fraction,
        nan_columns=nan_columns,
    )
    if samples is not None:
        samples = [float(s) for s in samples]
        row["samples_json"] = json.dumps(samples)
        row["time_median_s"] = float(np.median(samples))
        row["repeats"] = len(samples)
        if peak_fraction is not None:
            row["gflops"] = 400.0 * peak_fraction
    return row


def _lognormal(rng, median: float, size: int, sigma: float = 0.05) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(size))


def _compare(base_rows, head_rows, options=None, base_run=None, head_run=None):
    return compare_runs(
        base_run or _run(1, "base"), pd.DataFrame(base_rows),
        head_run or _run(2, "head"), pd.DataFrame(head_rows), options or CompareOptions(),
    )


def _pair(rng, base_median, head_median, size, key="k", sigma=0.05, **kw):
    return (_cell(key, _lognormal(rng, base_median, size, sigma), **kw),
            _cell(key, _lognormal(rng, head_median, size, sigma), **kw))


# ------------------------------------------------------------------- speed


def test_pure_noise_flags_nothing_after_bh():
    rng = np.random.default_rng(20240501)
    base, head = [], []
    for i in range(200):
        b, h = _pair(rng, 0.02, 0.02, 15, key=f"k{i:03d}", sigma=0.15, n=64 + i)
        base.append(b)
        head.append(h)
    cmp = _compare(base, head)
    assert len(cmp.rows) == 200
    assert cmp.slower.empty and cmp.faster.empty
    assert set(cmp.rows["speed_verdict"]) <= {"same", "inconclusive"}
    # Without the correction some cells would pass p < alpha by chance.
    assert (cmp.rows["p_value"] < 0.05).sum() >= 1
    assert (cmp.rows["p_adjusted"] >= cmp.rows["p_value"] - 1e-15).all()
    assert not cmp.rows["significant"].any()


def test_pure_noise_is_deterministic():
    def run():
        rng = np.random.default_rng(7)
        pairs = [_pair(rng, 0.01, 0.01, 12, key=f"k{i}", n=32 + i) for i in range(50)]
        return _compare([p[0] for p in pairs], [p[1] for p in pairs]).rows

    pd.testing.assert_frame_equal(run(), run())


def test_thirty_percent_slower_is_flagged_and_gated():
    rng = np.random.default_rng(1)
    b, h = _pair(rng, 0.050, 0.065, 15)
    cmp = _compare([b], [h])
    row = cmp.rows.iloc[0]
    assert row["speed_verdict"] == "slower"
    assert row["significant"] and row["p_adjusted"] <= 0.05
    assert row["change"] == pytest.approx(h["time_median_s"] / b["time_median_s"] - 1)
    assert row["speedup"] == pytest.approx(b["time_median_s"] / h["time_median_s"])
    assert 0.15 < row["change"] < 0.45
    assert row["effect"] > 0.9  # head slower -> positive Cliff's delta
    assert row["n_base"] == row["n_head"] == 15
    assert len(cmp.slower) == 1 and cmp.faster.empty

    gated = _compare([b], [h], CompareOptions(fail_slower=10))
    lines = gated.gate_failures()
    assert len(lines) == 1
    for part in ("lu", "lu/lapack", "float64", "random", "n=256", "kappa=1e+04", "%"):
        assert part in lines[0]
    assert _compare([b], [h], CompareOptions(fail_slower=50)).gate_failures() == []
    assert cmp.gate_failures() == []  # no gate set


def test_faster_and_effect_sign():
    rng = np.random.default_rng(2)
    b, h = _pair(rng, 0.050, 0.035, 15)
    row = _compare([b], [h]).rows.iloc[0]
    assert row["speed_verdict"] == "faster"
    assert row["speedup"] > 1.2 and row["change"] < 0
    assert row["effect"] < -0.9


def test_effect_is_cliffs_delta():
    b = _cell("k", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    h = _cell("k", [2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5])
    row = _compare([b], [h]).rows.iloc[0]
    xh = np.array(json.loads(h["samples_json"]))[:, None]
    xb = np.array(json.loads(b["samples_json"]))[None, :]
    delta = (np.sum(xh > xb) - np.sum(xh < xb)) / xh.size / xb.size
    assert row["effect"] == pytest.approx(delta)


def test_three_vs_three_samples_is_inconclusive():
    assert min_attainable_p(3, 3) == pytest.approx(0.1)
    b = _cell("k", [0.010, 0.011, 0.012])
    h = _cell("k", [0.030, 0.031, 0.032])  # 3x slower, but the test cannot see it
    row = _compare([b], [h]).rows.iloc[0]
    assert row["speed_verdict"] == "inconclusive"
    assert math.isnan(row["p_adjusted"]) and math.isnan(row["p_value"])
    same = _compare([b], [b]).rows.iloc[0]
    assert same["speed_verdict"] == "inconclusive"  # never "same" without a usable test


def test_untestable_cells_stay_out_of_the_bh_family():
    rng = np.random.default_rng(3)
    b1, h1 = _pair(rng, 0.05, 0.065, 15, key="a")
    alone = _compare([b1], [h1]).rows.iloc[0]["p_adjusted"]
    small = [_cell(f"s{i}", [0.01, 0.011, 0.012]) for i in range(20)]
    cmp = _compare([b1, *small], [h1, *small])
    assert cmp.rows.set_index("cell_key").loc["a", "p_adjusted"] == pytest.approx(alone)


def test_small_significant_change_is_same_and_noisy_large_change_inconclusive():
    rng = np.random.default_rng(4)
    b, h = _pair(rng, 0.050, 0.051, 400, sigma=0.01)  # 2%: significant, below the floor
    row = _compare([b], [h]).rows.iloc[0]
    assert row["significant"] and row["speed_verdict"] == "same"

    b = _cell("k", [0.010, 0.030, 0.011, 0.029, 0.012, 0.028])
    h = _cell("k", [0.012, 0.031, 0.013, 0.030, 0.014, 0.033])
    row = _compare([b], [h], CompareOptions(min_effect=0.05)).rows.iloc[0]
    assert not row["significant"] and abs(row["change"]) > 0.05
    assert row["speed_verdict"] == "inconclusive"


def test_constant_samples_do_not_break_the_test():
    b = _cell("k", [0.01] * 10)
    row = _compare([b], [b]).rows.iloc[0]
    assert row["p_value"] == 1.0 and row["speed_verdict"] == "same"
    assert row["effect"] == 0.0


def test_machine_wide_shift_is_pointed_out():
    rng = np.random.default_rng(12)
    pairs = [_pair(rng, 0.01, 0.0125, 15, key=f"k{i}", n=64 * 2**i) for i in range(6)]
    head_run = _run(2, "head")
    head_run["gemm_gflops_json"] = json.dumps({"float64": 320.0})
    cmp = _compare([p[0] for p in pairs], [p[1] for p in pairs], head_run=head_run)
    text = format_table(cmp)
    assert "median change over 6 timed cells: +2" in text
    assert "GEMM ceiling float64 -20.0%" in text
    assert "many cells moved together" in text
    quiet = _compare([p[0] for p in pairs], [p[0] for p in pairs])
    assert "many cells moved together" not in format_table(quiet)


def test_missing_timing_is_na():
    rng = np.random.default_rng(5)
    b = _cell("k", _lognormal(rng, 0.01, 10))
    h = _cell("k", None, status="error", message="not SPD", backward_ratio=None)
    row = _compare([b], [h]).rows.iloc[0]
    assert row["speed_verdict"] == "n/a" and row["n_head"] == 0
    assert math.isnan(row["speedup"])


def test_peak_normalised_speedup():
    rng = np.random.default_rng(6)
    b, h = _pair(rng, 0.01, 0.01, 10)
    b["peak_fraction"], h["peak_fraction"] = 0.5, 0.6
    c = _cell("c", _lognormal(rng, 0.01, 10))  # no ceiling known
    row = _compare([b, c], [h, c]).rows.set_index("cell_key")
    assert row.loc["k", "peak_speedup"] == pytest.approx(1.2)
    assert math.isnan(row.loc["c", "peak_speedup"])


# ---------------------------------------------------------------- accuracy


def test_backward_ratio_below_one_is_floored():
    b = _cell("k", backward_ratio=0.3)
    h = _cell("k", backward_ratio=0.9)
    row = _compare([b], [h]).rows.iloc[0]
    assert row["backward_change"] == 1.0
    assert row["accuracy_verdict"] == "same"
    assert _compare([b], [h], CompareOptions(fail_less_accurate=1.0)).gate_failures() == []


def test_backward_ratio_growth_is_less_accurate_and_gated():
    b = _cell("k", backward_ratio=2.0)
    h = _cell("k", backward_ratio=40.0)
    cmp = _compare([b], [h])
    row = cmp.rows.iloc[0]
    assert row["backward_change"] == pytest.approx(20.0)
    assert row["accuracy_change"] == pytest.approx(20.0)
    assert row["accuracy_verdict"] == "less_accurate"
    assert list(cmp.less_accurate["cell_key"]) == ["k"]
    lines = _compare([b], [h], CompareOptions(fail_less_accurate=10)).gate_failures()
    assert len(lines) == 1 and "backward_ratio" in lines[0] and "20x" in lines[0]
    assert _compare([b], [h], CompareOptions(fail_less_accurate=30)).gate_failures() == []
    # The gate factor is the reporting factor too.
    assert _compare([b], [h], CompareOptions(fail_less_accurate=30)).less_accurate.empty


def test_forward_error_floored_at_its_backward_stable_level():
    # solve at n = 256, kappa = 1e4: a backward-stable solver reaches about
    # sqrt(256) * 1e4 * u = 1.8e-11; changes below that are rounding noise
    floor = 16 * 1e4 * U64
    b = _cell("k", op="solve", impl="solve/lapack", backward_ratio=None, forward_error=1e-13)
    h = _cell("k", op="solve", impl="solve/lapack", backward_ratio=None, forward_error=1e-12)
    row = _compare([b], [h]).rows.iloc[0]
    assert row["forward_change"] == 1.0 and row["accuracy_verdict"] == "same"
    h2 = _cell("k", op="solve", impl="solve/lapack", backward_ratio=None, forward_error=1e-8)
    row = _compare([b], [h2]).rows.iloc[0]
    assert row["forward_change"] == pytest.approx(1e-8 / floor)
    assert row["accuracy_verdict"] == "less_accurate"
    # svd: relative to ||A||, bounded by n u whatever kappa is
    b = _cell("k", op="svd", impl="svd/x", backward_ratio=None, forward_error=1e-16)
    h = _cell("k", op="svd", impl="svd/x", backward_ratio=None, forward_error=1e-12)
    row = _compare([b], [h]).rows.iloc[0]
    assert row["forward_change"] == pytest.approx(1e-12 / (256 * U64))


def test_orthogonality_ratio_compared_when_present():
    b = _cell("k", op="qr", impl="qr/cgs", backward_ratio=1.0, orthogonality_ratio=10.0)
    h = _cell("k", op="qr", impl="qr/cgs", backward_ratio=1.0, orthogonality_ratio=1e4)
    row = _compare([b], [h]).rows.iloc[0]
    assert row["orthogonality_change"] == pytest.approx(1e3)
    assert row["accuracy_verdict"] == "less_accurate"


def test_metric_turning_nan_is_infinitely_worse():
    b = _cell("k", backward_ratio=1.0)
    h = _cell("k", backward_ratio=None, status="failed", nan_columns="backward_ratio")
    row = _compare([b], [h]).rows.iloc[0]
    assert row["backward_change"] == math.inf
    assert row["accuracy_verdict"] == "less_accurate"
    assert math.isnan(row["backward_head"])


def test_more_accurate():
    row = _compare([_cell("k", backward_ratio=50.0)],
                   [_cell("k", backward_ratio=2.0)]).rows.iloc[0]
    assert row["accuracy_verdict"] == "more_accurate"


# ------------------------------------------------------------ status, gate


def test_status_changes_and_gates():
    ok = [_cell("a"), _cell("b", n=512), _cell("c", n=1024), _cell("d", n=2048)]
    head = [
        _cell("a", status="failed", backward_ratio=500.0),
        _cell("b", n=512, status="timeout", backward_ratio=None),
        _cell("c", n=1024, status="error", message="LinAlgError: <not SPD>",
              backward_ratio=None),
        _cell("d", n=2048),
    ]
    base_failed = _cell("e", n=4096, status="failed", backward_ratio=100.0)
    head_ok = _cell("e", n=4096, backward_ratio=1.0)
    cmp = _compare([*ok, base_failed], [*head, head_ok])
    changes = cmp.status_changes
    assert set(changes["cell_key"]) == {"a", "b", "c", "e"}
    assert list(changes["status_base"])[:3] == ["ok", "ok", "ok"]  # regressions first
    assert set(cmp.status_regressions["cell_key"]) == {"a", "b", "c"}

    acc = _compare([*ok, base_failed], [*head, head_ok],
                   CompareOptions(fail_less_accurate=1000)).gate_failures()
    assert any("ok -> failed" in line and "n=256" in line for line in acc)
    assert any("ok -> error" in line and "not SPD" in line for line in acc)
    assert not any("timeout" in line for line in acc)
    assert not any("n=4096" in line for line in acc)  # failed -> ok is no failure

    speed = _compare([*ok, base_failed], [*head, head_ok],
                     CompareOptions(fail_slower=10)).gate_failures()
    assert len(speed) == 1 and "ok -> timeout" in speed[0] and "n=512" in speed[0]


def test_unmatched_cells_are_listed_not_gated():
    rng = np.random.default_rng(8)
    b, h = _pair(rng, 0.01, 0.01, 10, key="both")
    only_b = _cell("gone", n=999, status="ok")
    only_h = _cell("new", n=4096, status="failed")
    opts = CompareOptions(fail_slower=1, fail_less_accurate=1)
    cmp = _compare([b, only_b], [h, only_h], opts)
    assert list(cmp.rows["cell_key"]) == ["both"]
    assert list(cmp.base_only["cell_key"]) == ["gone"]
    assert list(cmp.head_only["cell_key"]) == ["new"]
    assert cmp.head_only.iloc[0]["status"] == "failed"
    assert {"cell_key", "op", "impl", "dtype", "kind", "m", "n", "kappa",
            "status"} <= set(cmp.base_only.columns)
    assert cmp.gate_failures() == []
    text = format_table(cmp)
    assert "1 only in base" in text and "1 only in head" in text
    assert "gone" in text and "new" in text


def test_rows_columns_and_order():
    rng = np.random.default_rng(9)
    specs = [dict(op="qr", impl="qr/lapack", n=64), dict(op="lu", impl="lu/lapack", n=512),
             dict(op="lu", impl="lu/lapack", n=64, kappa=1e8),
             dict(op="lu", impl="lu/lapack", n=64, kappa=1.0)]
    base = [_cell(f"k{i}", _lognormal(rng, 0.01, 5), **s) for i, s in enumerate(specs)]
    head = [_cell(f"k{i}", _lognormal(rng, 0.01, 5), **s) for i, s in enumerate(specs)][::-1]
    cmp = _compare(base, head)
    assert tuple(cmp.rows.columns) == ROW_COLUMNS
    for col in ("cell_key", "op", "impl", "dtype", "kind", "m", "n", "kappa", "seed",
                "params_json", "status_base", "status_head", "time_base_s", "time_head_s",
                "n_base", "n_head", "speedup", "change", "p_value", "p_adjusted", "effect",
                "speed_verdict", "peak_speedup", "backward_base", "backward_head",
                "backward_change", "forward_base", "forward_head", "forward_change",
                "accuracy_verdict"):
        assert col in cmp.rows.columns
    assert list(cmp.rows["cell_key"]) == ["k3", "k2", "k1", "k0"]


def test_empty_and_invalid_input():
    cols = list(CELL_COLUMNS)
    cmp = _compare(pd.DataFrame(columns=cols), pd.DataFrame(columns=cols))
    assert cmp.rows.empty and tuple(cmp.rows.columns) == ROW_COLUMNS
    assert cmp.gate_failures() == []
    assert "no cell matched" in format_table(cmp)
    assert "<html" in render_compare(cmp)
    with pytest.raises(ValueError, match="more than once"):
        _compare([_cell("k"), _cell("k")], [_cell("k")])
    with pytest.raises(ValueError, match="required"):
        compare_runs({}, pd.DataFrame({"op": ["lu"]}), {}, pd.DataFrame({"op": ["lu"]}))
    for bad in (dict(alpha=0), dict(alpha=1.5), dict(min_effect=-0.1),
                dict(fail_slower=-1), dict(fail_less_accurate=0.5), dict(accuracy_factor=0.5)):
        with pytest.raises(ValueError):
            CompareOptions(**bad)


def test_comparison_is_frozen():
    cmp = _compare([_cell("k")], [_cell("k")])
    assert isinstance(cmp, Comparison)
    with pytest.raises(AttributeError):
        cmp.options = CompareOptions()


# --------------------------------------------------------------- rendering


def _mixed(rng):
    base, head = [], []
    for i, (bm, hm) in enumerate([(0.05, 0.065), (0.05, 0.035), (0.02, 0.02), (0.01, 0.01)]):
        b, h = _pair(rng, bm, hm, 15, key=f"s{i}", n=128 * 2**i, peak_fraction=0.4)
        base.append(b)
        head.append(h)
    base.append(_cell("acc", [0.01, 0.011, 0.012], backward_ratio=2.0, impl="lu/textbook"))
    head.append(_cell("acc", [0.01, 0.011, 0.012], backward_ratio=40.0, impl="lu/textbook"))
    same = _lognormal(rng, 0.01, 8)
    base.append(_cell("st", same, op="cholesky", impl="cholesky/lapack", dtype="float32"))
    head.append(_cell("st", same, op="cholesky", impl="cholesky/lapack", dtype="float32",
                      status="failed", backward_ratio=1e3))
    base.append(_cell("gone", n=8192))
    return base, head


def test_format_table_has_counts_and_sections():
    rng = np.random.default_rng(10)
    base, head = _mixed(rng)
    opts = CompareOptions(fail_slower=10, fail_less_accurate=10)
    cmp = _compare(base, head, opts, base_run=_run(3, "main"), head_run=_run(4, "feature"))
    text = format_table(cmp)
    counts = cmp.counts
    assert counts["matched"] == 6 and counts["slower"] == 1 and counts["faster"] == 1
    assert counts["less_accurate"] == 2 and counts["status_changes"] == 1
    assert counts["base_only"] == 1 and counts["head_only"] == 0
    assert "matched 6" in text and "1 slower" in text and "1 faster" in text
    assert "2 less accurate" in text and "1 status change" in text
    assert "1 only in base" in text and "0 only in head" in text
    assert "run 3 (main)" in text and "run 4 (feature)" in text
    assert "abcabcabcabc" in text and "bench" in text
    assert "gate: FAIL" in text and "slower (1):" in text and "faster (1):" in text
    assert "\x1b[" not in text
    assert text == format_table(cmp)
    limited = format_table(cmp, limit=0)
    assert "... and 1 more" in limited
    narrow = format_table(cmp, width=80)
    assert max(len(line) for line in narrow.splitlines()) <= 80


def test_html_escapes_labels_and_is_deterministic():
    rng = np.random.default_rng(11)
    base, head = _mixed(rng)
    for row in (*base, *head):
        if row["cell_key"] == "s0":
            row["impl"] += XSS
    opts = CompareOptions(fail_slower=10)
    cmp = _compare(base, head, opts, base_run=_run(1, XSS), head_run=_run(2, "head & <b>"))
    html = render_compare(cmp)
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>" not in html
    assert html == render_compare(_compare(base, head, opts, base_run=_run(1, XSS),
                                           head_run=_run(2, "head & <b>")))
    assert html.count("<svg") == 2  # one figure per op (lu, cholesky)
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', "")
    assert "https://" not in html
    assert html.count("<script>") == 1  # the sorter only
    assert 'class="sortable"' in html
    for line in cmp.gate_failures():
        assert str(html_escape(line)) in html


def test_noise_floor_follows_the_run_to_run_spread():
    """Each cell of the head run is shifted by its own run-to-run factor
    (robust sd 5%), which no within-run test can see; one cell is really 40%
    slower.  The floor estimated across cells keeps the noise out."""
    rng = np.random.default_rng(11)
    base, head = [], []
    for i in range(200):
        shift = 1.0 + (0.4 if i == 7 else 0.0)
        shift *= math.exp(rng.normal(0.0, 0.05))
        base.append(_cell(f"c{i}", _lognormal(rng, 0.02, 15, 0.01)))
        head.append(_cell(f"c{i}", _lognormal(rng, 0.02 * shift, 15, 0.01)))
    cmp = _compare(base, head)
    assert 0.03 < cmp.noise["spread"] < 0.07 and cmp.noise["cells"] == 200
    assert cmp.noise["floor"] == pytest.approx(math.expm1(3 * cmp.noise["spread"]))
    assert list(cmp.slower["cell_key"]) == ["c7"]
    # without the estimate, the same data flags run-to-run noise as regressions
    naive = _compare(base, head, CompareOptions(min_effect=0.05, noise_sigmas=0))
    assert len(naive.slower) > 3


def test_an_impl_that_moved_as_a_whole_does_not_widen_the_floor():
    """Ten impls of 20 cells with per-cell run-to-run noise (sd 3%); one impl
    is 30% slower on every cell.  Centred on each impl's median change, the
    spread still measures the 3% noise, and that impl is caught."""
    rng = np.random.default_rng(5)
    base, head = [], []
    for j in range(10):
        for i in range(20):
            shift = (1.3 if j == 4 else 1.0) * math.exp(rng.normal(0.0, 0.03))
            key, impl = f"i{j}c{i}", f"lu/impl{j}"
            base.append(_cell(key, _lognormal(rng, 0.02, 15, 0.01), impl=impl))
            head.append(_cell(key, _lognormal(rng, 0.02 * shift, 15, 0.01), impl=impl))
    cmp = _compare(base, head)
    assert 0.02 < cmp.noise["spread"] < 0.045
    assert set(cmp.slower["impl"]) == {"lu/impl4"} and len(cmp.slower) >= 18
    # an uncentred spread would have been inflated by the shifted impl
    flat = run_to_run_noise(cmp.rows["speedup"], min_effect=0.1, sigmas=3)
    assert flat["spread"] > cmp.noise["spread"]


def test_cells_that_moved_between_cluster_hosts_are_not_timed_against_each_other():
    rng = np.random.default_rng(7)
    pairs = [_pair(rng, 0.050, 0.080, 15, key=f"k{i}") for i in range(4)]
    base = [dict(b, host=h) for (b, _), h in zip(pairs, ["n1", "n2", "n1", "n2"], strict=True)]
    head = [dict(h, host=x) for (_, h), x in zip(pairs, ["n1", "n1", "n2", "n2"], strict=True)]
    cmp = _compare(base, head, CompareOptions(fail_slower=10))
    rows = cmp.rows.set_index("cell_key")
    # k1 and k2 ran on the other host in head: never set against each other
    assert list(rows["host_moved"]) == [False, True, True, False]
    assert list(rows["speed_verdict"]) == ["slower", "n/a", "n/a", "slower"]
    assert rows.loc["k1", "speedup"] != rows.loc["k1", "speedup"]  # NaN
    assert cmp.counts["host_moved"] == 2 and cmp.counts["slower"] == 2
    assert len(cmp.gate_failures()) == 2
    assert "--across-hosts" in render_compare(cmp)
    # asked for: every cell is compared
    every = _compare(base, head, CompareOptions(across_hosts=True))
    assert list(every.rows["speed_verdict"]) == ["slower"] * 4
    assert every.counts["host_moved"] == 0


def test_two_single_host_runs_are_still_a_hardware_comparison():
    rng = np.random.default_rng(8)
    b, h = _pair(rng, 0.050, 0.080, 15)
    cmp = _compare([dict(b, host="laptop")], [dict(h, host="server")])
    assert cmp.rows.iloc[0]["speed_verdict"] == "slower"
    assert not cmp.rows.iloc[0]["host_moved"]


def test_untimed_cells_recorded_on_the_client_do_not_make_a_run_multi_host():
    rng = np.random.default_rng(9)
    b, h = _pair(rng, 0.050, 0.080, 15)
    skipped = _cell("s", status="skipped")
    # head ran on one remote host; its skipped cell was recorded on the client
    cmp = _compare([dict(b, host="client"), dict(skipped, host="client")],
                   [dict(h, host="node1"), dict(skipped, host="client")])
    assert not cmp.rows["host_moved"].any() and cmp.counts["host_moved"] == 0
    assert cmp.rows.set_index("cell_key").loc["k", "speed_verdict"] == "slower"
