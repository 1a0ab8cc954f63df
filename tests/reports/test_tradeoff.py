"""The speed-accuracy trade-off: randomized and peer impls against the deterministic driver."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from factorbench.reports import render_report
from factorbench.reports.tradeoff import format_tradeoff, tradeoff_groups, tradeoff_table

XSS = "<script>alert(1)</script>"
TITLE = "Speed and accuracy against the deterministic driver"


def _cell(impl, t, *, family="randomized", params=None, status="ok", seed=0, run_id=1,
          m=2000, n=500, kappa=1e8, rank=None, kind="randsvd", dtype="float64", **metrics):
    op = impl.split("/")[0]
    return {"run_id": run_id, "cell_key": f"{impl}-{json.dumps(params)}-{m}-{n}-{seed}",
            "op": op, "impl": impl, "family": family, "kind": kind, "m": m, "n": n,
            "kappa": kappa, "dtype": dtype, "rank": rank if rank is not None
            else (10 if op == "lowrank" else None), "seed": seed,
            "params_json": json.dumps(params or {}, sort_keys=True), "status": status,
            "time_median_s": t, "time_ci_low_s": 0.9 * t, "time_ci_high_s": 1.1 * t,
            **metrics}


def _frame(*cells):
    return pd.DataFrame(list(cells))


def _lowrank():
    """gesdd and svd-based peers against randomized SVD settings, one problem."""
    return _frame(
        _cell("lowrank/gesdd", 0.200, family="library",
              lowrank_error_ratio=1.0, lowrank_spectral_ratio=1.0),
        _cell("lowrank/rsvd", 0.010, params={"p": 10, "q": 0, "sketch": "gaussian"},
              lowrank_error_ratio=1.6, lowrank_spectral_ratio=3.1),
        _cell("lowrank/rsvd", 0.020, params={"p": 10, "q": 2, "sketch": "gaussian"},
              lowrank_error_ratio=1.01, lowrank_spectral_ratio=1.05),
        _cell("lowrank/adaptive", 0.030, params={"tol": 1e-3, "block": 10},
              lowrank_error_ratio=1.2, lowrank_spectral_ratio=1.3, rank_revealed=12),
        _cell("lowrank/sklearn-rsvd", 0.015, family="peer",
              lowrank_error_ratio=1.7, lowrank_spectral_ratio=2.0),
        _cell("lowrank/svds-arpack", 0.500, family="peer", status="failed",
              lowrank_error_ratio=math.inf, lowrank_spectral_ratio=math.nan,
              nan_columns="lowrank_spectral_ratio"),
    )


def _row(t, impl, params=""):
    hit = t[(t["impl"] == impl) & (t["params"] == params)]
    assert len(hit) == 1, (impl, params, t[["impl", "params"]])
    return hit.iloc[0]


def test_speedup_is_reference_time_over_time_and_rows_sort_by_time():
    t = tradeoff_table(_lowrank())
    assert (t["reference"] == "lowrank/gesdd").all()
    assert _row(t, "lowrank/rsvd", "p=10,q=0,sketch=gaussian")["speedup"] == pytest.approx(20.0)
    assert _row(t, "lowrank/sklearn-rsvd")["speedup"] == pytest.approx(0.2 / 0.015)
    assert _row(t, "lowrank/gesdd")["speedup"] == 1.0
    assert _row(t, "lowrank/svds-arpack")["speedup"] == pytest.approx(0.4)
    # one row per impl and setting, fastest first
    assert len(t) == 6
    assert list(t["time_median_s"]) == sorted(t["time_median_s"])


def test_reference_is_the_mapped_driver_else_the_fastest_library_impl():
    cells = _frame(
        _cell("lstsq/gels", 0.05, family="library", forward_error=1e-8),
        _cell("lstsq/gelsd", 0.10, family="library", forward_error=1e-8),
        _cell("lstsq/sketch-precondition", 0.04, forward_error=4e-8),
    )
    t = tradeoff_table(cells)
    # gelsd is the driver the op is measured against, though gels is faster
    assert (t["reference"] == "lstsq/gelsd").all()
    assert _row(t, "lstsq/sketch-precondition")["speedup"] == pytest.approx(2.5)
    assert _row(t, "lstsq/sketch-precondition")["error_vs_ref"] == pytest.approx(4.0)
    # without gelsd: the fastest library impl there
    t = tradeoff_table(cells[cells["impl"] != "lstsq/gelsd"])
    assert (t["reference"] == "lstsq/gels").all()
    assert _row(t, "lstsq/sketch-precondition")["speedup"] == pytest.approx(1.25)


def test_pareto_front_over_passing_rows():
    t = tradeoff_table(_lowrank())
    front = set(zip(t.loc[t["pareto"], "impl"], t.loc[t["pareto"], "params"], strict=True))
    assert front == {
        ("lowrank/rsvd", "p=10,q=0,sketch=gaussian"),  # fastest
        ("lowrank/rsvd", "p=10,q=2,sketch=gaussian"),  # nothing faster is as accurate
        ("lowrank/gesdd", ""),  # the optimum
    }
    # sklearn: rsvd q=0 is faster and more accurate; adaptive: rsvd q=2 is both
    assert not _row(t, "lowrank/sklearn-rsvd")["pareto"]
    assert not _row(t, "lowrank/adaptive", "block=10,tol=0.001")["pareto"]
    assert (t["primary"] == "lowrank_error_ratio").all()


def test_equal_accuracy_and_slower_is_off_the_front_ties_stay_on():
    t = tradeoff_table(_frame(
        _cell("qr/lapack", 0.10, family="library", backward_ratio=1.0, orthogonality_ratio=1.0),
        _cell("qr/rcholqr", 0.05, backward_ratio=1.0, orthogonality_ratio=2.0),
        _cell("qr/rcholqr", 0.05, params={"sketch": "sparse"}, backward_ratio=1.0,
              orthogonality_ratio=3.0),
    ))
    assert not _row(t, "qr/lapack")["pareto"]  # as accurate and slower
    assert _row(t, "qr/rcholqr")["pareto"] and _row(t, "qr/rcholqr", "sketch=sparse")["pareto"]


def test_groups_without_randomized_or_peer_cells_get_no_rows():
    deterministic = _frame(
        _cell("qr/lapack", 0.1, family="library", backward_ratio=1.0),
        _cell("qr/householder", 0.3, family="textbook", backward_ratio=2.0),
        _cell("lowrank/gesdd", 0.2, family="library", lowrank_error_ratio=1.0),
    )
    assert tradeoff_table(deterministic).empty
    assert "no randomized or peer cells" in format_tradeoff(tradeoff_table(deterministic))
    # with a randomized cell at one size only, only that group appears
    mixed = pd.concat([deterministic, _frame(
        _cell("qr/lapack", 0.8, family="library", n=1000, backward_ratio=1.0),
        _cell("qr/rcholqr", 0.2, n=1000, backward_ratio=3.0),
    )], ignore_index=True)
    t = tradeoff_table(mixed)
    assert set(t["op"]) == {"qr"} and set(t["n"]) == {1000}
    assert set(t["impl"]) == {"qr/lapack", "qr/rcholqr"}
    assert len(list(tradeoff_groups(t))) == 1
    assert tradeoff_table(pd.DataFrame()).empty


def test_skipped_and_unavailable_cells_are_not_rows():
    cells = pd.concat([_lowrank(), _frame(
        _cell("lowrank/svds-propack", math.nan, family="peer", status="unavailable"))],
        ignore_index=True)
    assert "lowrank/svds-propack" not in set(tradeoff_table(cells)["impl"])


def test_missing_reference_gives_an_empty_speedup_not_an_error():
    cells = _frame(
        _cell("lowrank/rsvd", 0.01, lowrank_error_ratio=1.5),
        _cell("lowrank/sklearn-rsvd", 0.02, family="peer", lowrank_error_ratio=1.4),
    )
    t = tradeoff_table(cells)
    assert t["reference"].isna().all() and t["speedup"].isna().all()
    assert t["pareto"].all()  # the front needs no reference
    text = format_tradeoff(t)
    assert "reference none" in text
    head = text.splitlines()[1]
    xref = head.index("x ref")
    for line in text.splitlines()[2:4]:
        # the column is blank: no invented "1x", no dash
        assert line[xref - 2:xref + len("x ref")].strip() == ""


def test_nan_and_inf_show_as_such_and_never_on_the_front():
    t = tradeoff_table(_lowrank())
    arpack = _row(t, "lowrank/svds-arpack")
    assert math.isinf(arpack["lowrank_error_ratio"])
    assert arpack["nan_columns"] == "lowrank_spectral_ratio"
    assert not arpack["pareto"]
    line = next(s for s in format_tradeoff(t).splitlines() if "svds-arpack" in s)
    assert line.split()[-2:] == ["inf", "nan"] and "failed" in line
    # a cell claiming "ok" with an Inf metric still is not a pass
    cells = _lowrank()
    cells.loc[cells["impl"] == "lowrank/rsvd", "lowrank_spectral_ratio"] = math.inf
    t = tradeoff_table(cells)
    assert not _row(t, "lowrank/rsvd", "p=10,q=0,sketch=gaussian")["pareto"]


def test_nan_without_nan_columns_counts_on_failed_cells_only():
    cells = _frame(
        _cell("lstsq/gelsd", 0.1, family="library", forward_error=1e-8, backward_ratio=1.0),
        _cell("lstsq/sketch-solve", 0.01, status="failed", forward_error=math.nan,
              backward_ratio=2.0),
        _cell("qr/lapack", 0.1, family="library", backward_ratio=1.0, orthogonality_ratio=1.0),
        _cell("qr/rcholqr", 0.05, status="failed", backward_ratio=1.0,
              orthogonality_ratio=math.nan),
        _cell("qr/rcholqr", 0.04, params={"sketch": "sparse"}, backward_ratio=1.0,
              orthogonality_ratio=math.nan),
    )
    t = tradeoff_table(cells)
    assert _row(t, "lstsq/sketch-solve")["nan_columns"] == "forward_error,error_vs_ref"
    # failed, and qr records the metric elsewhere: a computed NaN
    assert _row(t, "qr/rcholqr")["nan_columns"] == "orthogonality_ratio"
    # an ok cell's NaN is ambiguous without nan_columns: not recorded, but no pass either way
    assert _row(t, "qr/rcholqr", "sketch=sparse")["nan_columns"] == ""
    text = format_tradeoff(t)
    line = next(s for s in text.splitlines() if "sketch-solve" in s).split()
    # fwd error, fwd/(kappa u), fwd/(kappa^2 u), bwd ratio, x ref error; lstsq
    # recorded no kappa-scaled error here at all: dashes, not numbers
    assert line[-5:] == ["nan", "\u2014", "\u2014", "2", "nan"]
    qr = next(s for s in text.splitlines() if "qr/rcholqr " in s and "failed" in s).split()
    assert qr[-1] == "nan"


def test_seeds_give_median_time_ci_envelope_and_worst_accuracy():
    cells = _frame(
        _cell("lowrank/gesdd", 0.2, family="library", lowrank_error_ratio=1.0),
        *(_cell("lowrank/rsvd", t, seed=s, lowrank_error_ratio=e)
          for s, (t, e) in enumerate([(0.01, 1.1), (0.03, 1.5), (0.02, 1.2)])),
        _cell("lowrank/adaptive", 0.04, seed=0, lowrank_error_ratio=1.1, rank_revealed=12),
        _cell("lowrank/adaptive", 0.04, seed=1, status="failed", lowrank_error_ratio=3.0,
              rank_revealed=14),
    )
    t = tradeoff_table(cells)
    r = _row(t, "lowrank/rsvd")
    assert r["cells"] == 3 and r["time_median_s"] == pytest.approx(0.02)
    assert r["time_ci_low_s"] == pytest.approx(0.009)
    assert r["time_ci_high_s"] == pytest.approx(0.033)
    assert r["lowrank_error_ratio"] == 1.5
    a = _row(t, "lowrank/adaptive")
    assert a["status"] == "failed" and a["ok_cells"] == 1 and not a["pareto"]
    line = next(s for s in format_tradeoff(t).splitlines() if "adaptive" in s)
    assert "failed (1/2 ok)" in line and line.split()[-1] == "12-14"


def test_format_names_the_group_and_the_op_columns():
    text = format_tradeoff(tradeoff_table(_lowrank()))
    lines = text.splitlines()
    assert lines[0].startswith("run 1, lowrank, kind randsvd, 2000x500, kappa 1e+08, float64, "
                               "rank 10  (reference lowrank/gesdd")
    assert lines[1].split() == ["impl", "params", "status", "time", "[95%", "CI]", "x", "ref",
                                "err/opt", "F", "err/opt", "2", "rank", "front"]
    first = lines[2].split()
    assert first[:3] == ["lowrank/rsvd", "p=10,q=0,sketch=gaussian", "ok"]
    assert "20x" in first and first[-1] == "*"
    gesdd = next(s for s in lines if s.startswith("lowrank/gesdd"))
    assert " 1x " in gesdd
    assert next(s for s in lines if "adaptive" in s).split()[-1] == "12"
    lstsq = format_tradeoff(tradeoff_table(_frame(
        _cell("lstsq/gelsd", 0.1, family="library", forward_error=1e-8, backward_ratio=1.0,
              kappa_scaled_error=0.5, kappa2_scaled_error=1e-8),
        _cell("lstsq/sketch-precondition", 0.05, forward_error=2e-8, backward_ratio=2.0,
              kappa_scaled_error=1.0, kappa2_scaled_error=2e-8),
    )))
    head = lstsq.splitlines()[1]
    for label in ("fwd error", "fwd/(cond u)", "fwd/(kappa^2 u)", "bwd ratio", "x ref error"):
        assert label in head
    assert "rank " not in lstsq.splitlines()[0]  # lstsq has no target rank


def _section(html, anchor):
    start = html.index(f'<section id="{anchor}">')
    return html[start:html.index("</section>", start)]


def test_report_shows_the_section_after_throughput_and_escapes_params():
    cells = _lowrank()
    cells.loc[cells["impl"] == "lowrank/adaptive", "params_json"] = json.dumps({"tol": XSS})
    text = render_report(pd.DataFrame({"run_id": [1]}), cells)
    section = _section(text, "op-lowrank")
    assert TITLE in section
    table = section[section.index('<table class="tradeoff sortable">'):]
    table = table[:table.index("</table>")]
    assert XSS not in text and "tol=&lt;script&gt;alert(1)&lt;/script&gt;" in table
    assert "lowrank/gesdd" in table and "\u00d720" in table
    assert table.count('<span class="front">front</span>') == 3
    assert ">inf<" in table and ">nan<" in table
    # the deterministic-only report stays as it was
    plain = render_report(pd.DataFrame({"run_id": [1]}),
                          cells[cells["family"] == "library"])
    assert TITLE not in plain


def test_cli_report_tradeoff_prints_the_table(tmp_path, capsys):
    from factorbench.cli import main
    from factorbench.store import Store

    db = tmp_path / "t.sqlite"
    with Store(db) as store:
        run_id = store.begin_run(label="tradeoff")
        for rec in _lowrank().to_dict("records"):
            rec = {k: v for k, v in rec.items() if not (isinstance(v, float) and np.isnan(v))
                   or k == "lowrank_spectral_ratio"}
            rec.pop("nan_columns", None)  # the store writes its own
            store.write_cell(run_id, rec)
    out_html = tmp_path / "r.html"
    assert main(["report", str(run_id), "--db", str(db), "-o", str(out_html), "--tradeoff"]) == 0
    out = capsys.readouterr().out
    assert f"run {run_id}, lowrank, kind randsvd, 2000x500" in out
    assert "reference lowrank/gesdd" in out
    # the NaN went through the store as NULL + nan_columns and comes back as nan
    line = next(s for s in out.splitlines() if "svds-arpack" in s)
    assert line.split()[-2:] == ["inf", "nan"]
    assert TITLE in out_html.read_text(encoding="utf-8")


def test_mixed_precision_refinement_against_gesv_shows_iterations_and_convergence():
    """solve cells of the mixed family get a table against gesv, with the iteration
    counts over seeds (lo-hi) and whether every seed converged."""
    cells = _frame(
        _cell("solve/gesv", 0.001, family="library", m=100, n=100, forward_error=1e-13),
        _cell("solve/ir-lu", 0.002, family="mixed", params={"factor": "float32"}, m=100,
              n=100, forward_error=5e-14, iterations=3, converged=1.0),
        _cell("solve/ir-lu", 0.003, family="mixed", params={"factor": "float32"}, m=100,
              n=100, seed=1, forward_error=6e-14, iterations=5, converged=1.0),
        _cell("solve/ir-lu", 0.004, family="mixed", params={"factor": "bfloat16"}, m=100,
              n=100, status="failed", forward_error=2.0, iterations=1, converged=0.0),
        _cell("solve/ir-lu", 0.005, family="mixed", params={"factor": "bfloat16"}, m=100,
              n=100, seed=1, forward_error=1e-13, iterations=30, converged=1.0),
    )
    t = tradeoff_table(cells)
    assert (t["reference"] == "solve/gesv").all()
    f32 = _row(t, "solve/ir-lu", "factor=float32")
    bf16 = _row(t, "solve/ir-lu", "factor=bfloat16")
    text = format_tradeoff(t)
    assert "iter." in text and "conv." in text
    line = next(ln for ln in text.splitlines() if "factor=float32" in ln)
    assert " 3-5 " in line and " yes " in line
    line = next(ln for ln in text.splitlines() if "factor=bfloat16" in ln)
    assert " 1-30 " in line and " some " in line
    assert f32["error_vs_ref"] == pytest.approx(0.6) and not bf16["pareto"]
