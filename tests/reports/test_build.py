"""Tests for the self-contained HTML report (factorbench.reports)."""

from __future__ import annotations

import json
import math
import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from factorbench.reports import build_report, render_report
from factorbench.reports.plots import fit_exponent

U = {"float64": 2.0**-53, "float32": 2.0**-24}

# op -> impls; the textbook ones have a max_n and error on hard float32 cases.
OPS = {
    "lu": ["lu/lapack", "lu/textbook", "lu/blocked"],
    "cholesky": ["cholesky/lapack", "cholesky/textbook"],
    "qr": ["qr/lapack", "qr/cgs"],
    "svd": ["svd/lapack"],
    "solve": ["solve/lapack"],
}
XSS = "<script>alert(1)</script>"


def _run_row(run_id: int, label: str | None) -> dict:
    machine = {
        "host": f"bench-{run_id}",
        "platform": "Linux-6.1-x86_64",
        "cpu_model": "AMD EPYC 7763 64-Core Processor",
        "logical_cores": 16,
        "memory_bytes": 64 * 2**30,
        "python": "3.11.9",
        "numpy_version": "2.0.1",
        "blas": [
            {
                "internal_api": "openblas",
                "version": "0.3.27",
                "num_threads": 8,
                "architecture": "Zen",
            }
        ],
        "threads": 8,
    }
    spec = {"ops": list(OPS), "sizes": [64, 128, 256, 512], "kappas": [1, 1e4, 1e8]}
    return {
        "run_id": run_id,
        "label": label,
        "created_at": f"2024-05-0{run_id}T10:00:00+00:00",
        "finished_at": f"2024-05-0{run_id}T10:20:00+00:00",
        "status": "complete",
        "argv": json.dumps(["factorbench", "run", "--preset", "quick"]),
        "spec_json": json.dumps(spec),
        "machine_json": json.dumps(machine),
        "versions_json": json.dumps({"numpy": "2.0.1", "scipy": "1.13.1"}),
        "gemm_gflops_json": json.dumps({"float64": 412.5, "float32": 830.1}),
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
    }


def _cell_row(run_id, op, impl, dtype, n, kappa, seed, rng, speed=1.0) -> dict:
    u = U[dtype]
    m = 2 * n if op == "qr" else n
    t = speed * (1e-10 if dtype == "float64" else 5e-11) * n**3 * (1 + 0.02 * rng.random())
    if impl.endswith("/textbook"):
        t *= 40
    flops = 2 / 3 * n**3
    row = {
        "run_id": run_id,
        "cell_key": f"{run_id}-{impl}-{dtype}-{n}-{kappa:g}-{seed}",
        "op": op,
        "impl": impl,
        "backend": "scipy" if impl.endswith("lapack") else "numpy",
        "family": "library" if impl.endswith("lapack") else "textbook",
        "device": "cpu",
        "kind": "spd" if op == "cholesky" else "randsvd",
        "mode": "3",
        "m": m,
        "n": n,
        "rank": None,
        "kappa": kappa,
        "kappa_actual": kappa * (1 + 0.01 * rng.random()) if n <= 256 else math.nan,
        "dtype": dtype,
        "unit_roundoff": u,
        "seed": seed,
        "params_json": json.dumps({"block": 64 if n < 256 else 128})
        if impl == "lu/blocked"
        else "{}",
        "status": "ok",
        "message": None,
        "time_median_s": t,
        "time_min_s": 0.97 * t,
        "time_ci_low_s": 0.95 * t,
        "time_ci_high_s": 1.06 * t,
        "time_iqr_s": 0.04 * t,
        "samples_json": json.dumps([t, 1.01 * t, 0.99 * t]),
        "repeats": 3,
        "first_call_s": 1.5 * t,
        "unstable": int(n == 64),
        "concurrent": 0,
        "gflops": flops / t / 1e9,
        "peak_fraction": flops / t / 1e9 / 412.5,
        "backward_error": 3 * m * u,
        "backward_ratio": 3.0 * (1 + rng.random()),
        "orthogonality_loss": math.nan,
        "orthogonality_ratio": math.nan,
        "growth_factor": 2.0 if op == "lu" else math.nan,
        "growth_factor_exact": 2.5 if impl == "lu/textbook" else math.nan,
        "forward_error": math.nan,
        "kappa_scaled_error": math.nan,
        "kappa2_scaled_error": math.nan,
        "lowrank_error_ratio": math.nan,
        "rank_revealed": math.nan,
        "numerical_rank": math.nan,
        "passed": 1,
        "stable": 1,
        "host": f"bench-{run_id}",
        "started_at": "2024-05-01T10:01:00+00:00",
        "finished_at": "2024-05-01T10:01:01+00:00",
    }
    if op in ("qr", "svd"):
        loss = kappa**2 * u if impl == "qr/cgs" else 2 * m * u
        row["orthogonality_loss"] = loss
        row["orthogonality_ratio"] = loss / (m * u)
    if op == "solve":
        row["forward_error"] = 0.5 * kappa * u
        row["kappa_scaled_error"] = 0.5
    if impl == "qr/cgs" and row["orthogonality_ratio"] >= 30:
        row.update(status="failed", passed=0, message="orthogonality_ratio >= 30")
    if impl == "lu/textbook" and n > 256:
        row.update(_not_run("skipped", "n=512 above max_n=256 for lu/textbook"))
    if impl == "cholesky/textbook" and dtype == "float32" and kappa >= 1e8:
        row.update(_not_run("error", "LinAlgError: matrix is not positive definite (pivot 37)"))
    if impl == "lu/lapack" and dtype == "float32" and kappa >= 1e8 and n == 512:
        # A failure whose ratio is non-finite must still be visible.
        row.update(status="failed", passed=0, backward_ratio=math.inf, message="non-finite output")
    return row


def _not_run(status: str, message: str) -> dict:
    metrics = [
        "time_median_s",
        "time_min_s",
        "time_ci_low_s",
        "time_ci_high_s",
        "time_iqr_s",
        "first_call_s",
        "gflops",
        "peak_fraction",
        "backward_error",
        "backward_ratio",
        "orthogonality_loss",
        "orthogonality_ratio",
        "growth_factor",
        "growth_factor_exact",
        "forward_error",
        "kappa_scaled_error",
    ]
    return {
        "status": status,
        "message": message,
        "passed": None,
        "samples_json": None,
        "repeats": None,
        **dict.fromkeys(metrics, math.nan),
    }


def make_frames(
    ops=tuple(OPS),
    run_ids=(1,),
    labels=(None,),
    sizes=(64, 128, 256, 512),
    kappas=(1.0, 1e4, 1e8),
    dtypes=("float64", "float32"),
    seeds=(0,),
):
    """Synthetic ``runs`` and ``cells`` frames shaped like the store's."""
    rng = np.random.default_rng(12345)
    runs, cells = [], []
    for i, (run_id, label) in enumerate(zip(run_ids, labels, strict=True)):
        runs.append(_run_row(run_id, label))
        for op in ops:
            for impl in OPS[op]:
                for dtype in dtypes:
                    for n in sizes:
                        for kappa in kappas:
                            for seed in seeds:
                                cells.append(
                                    _cell_row(
                                        run_id,
                                        op,
                                        impl,
                                        dtype,
                                        n,
                                        kappa,
                                        seed,
                                        rng,
                                        speed=1.0 + 0.3 * i,
                                    )
                                )
        cells.append(
            {
                **_cell_row(run_id, "lu", "lu/cupy", "float64", 64, 1.0, 0, rng),
                **_not_run("unavailable", "cupy is not installed"),
            }
        )
    return pd.DataFrame(runs), pd.DataFrame(cells)


@pytest.fixture(scope="module")
def frames():
    return make_frames()


@pytest.fixture(scope="module")
def html(frames):
    return render_report(*frames)


def _section(html: str, anchor: str) -> str:
    start = html.index(f'<section id="{anchor}">')
    return html[start : html.index("</section>", start)]


def test_build_report_writes_file(tmp_path):
    frames = make_frames(ops=("lu",), sizes=(64, 128))
    out = build_report(*frames, tmp_path / "sub" / "report.html", title="quick run")
    assert out == tmp_path / "sub" / "report.html"
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<svg" in text
    assert "<title>quick run</title>" in text


def test_header_shows_machine_blas_and_gemm(html):
    summary = _section(html, "summary")
    for expected in (
        "bench-1",
        "AMD EPYC 7763",
        "64.0 GiB",
        "openblas 0.3.27 (8 threads, Zen)",
        "float64: 412.5 GFLOP/s",
        "0123456789abcdef",
        "scipy",
        "run spec",
        "factorbench run --preset quick",
    ):
        assert expected in summary, expected
    assert "&#34;kappas&#34;" in summary or "&quot;kappas&quot;" in summary


def test_no_network_references(html):
    urls = re.findall(r"""\b(?:src|href|xlink:href|data|action)\s*=\s*["']?([^"'\s>]*)""", html)
    assert urls, "expected in-page anchors and SVG references"
    assert not [u for u in urls if re.match(r"(?i)(https?:)?//", u)]
    lowered = html.lower()
    for banned in ("<script src", "<link", "<iframe", "<img", "@import", "url(http", "url(//",
                   "fetch(", "xmlhttprequest"):
        assert banned not in lowered
    # one inline script (the table sorter), nothing loaded
    assert lowered.count("<script") == 1 and "<script>" in lowered


def test_render_is_byte_identical(tmp_path, frames, html):
    # A second, independent render written to disk must match byte for byte.
    written = build_report(*frames, tmp_path / "again.html").read_bytes()
    assert written == html.encode("utf-8")


def test_svg_ids_unique_across_document(html):
    ids = re.findall(r'\bid="([^"]+)"', html)
    duplicated = [i for i, count in Counter(ids).items() if count > 1]
    assert not duplicated


def test_ops_in_canonical_order(html):
    positions = [html.index(f'<section id="op-{op}">') for op in OPS]
    assert positions == sorted(positions)
    assert 'id="op-eigh"' not in html


def test_time_plot_legend_has_fitted_exponent(html):
    lu = _section(html, "op-lu")
    assert "lu/lapack float64 (n^3.0)" in lu
    # Several block sizes: each is its own series.
    assert "lu/blocked[block=128]" in lu


def test_user_text_is_escaped():
    runs, cells = make_frames(ops=("lu", "cholesky"), sizes=(64, 128), labels=(f"label {XSS} $x$",))
    cells.loc[cells["status"] == "error", "message"] = f"boom {XSS}"
    text = render_report(runs, cells)
    assert XSS not in text
    assert "boom &lt;script&gt;alert(1)&lt;/script&gt;" in text
    # the only script is the report's own table sorter
    assert text.lower().count("<script") == 1
    assert "label &lt;script&gt;" in text


def test_failures_table_lists_messages(html):
    failures = _section(html, "failures")
    assert "LinAlgError: matrix is not positive definite (pivot 37)" in failures
    assert "orthogonality_ratio &gt;= 30" in failures
    assert "non-finite output" in failures
    # Skipped and unavailable cells are grouped by reason, not listed.
    assert "n=512 above max_n=256 for lu/textbook" in failures
    assert "cupy is not installed" in failures
    skipped = re.search(
        r"n=512 above max_n=256 for lu/textbook</td>\s*<td class=\"num\">(\d+)</td>", failures
    )
    assert skipped and int(skipped.group(1)) == 2 * 3  # dtypes x kappas at n=512


def test_run_with_zero_ok_cells_renders():
    runs, cells = make_frames(sizes=(64, 128))
    cells = cells.assign(status="error", message="RuntimeError: worker raised")
    numeric = cells.columns[
        cells.columns.str.startswith(
            ("time_", "gflops", "backward", "orthogonality", "growth", "forward", "kappa_")
        )
    ]
    cells[numeric] = math.nan
    text = render_report(runs, cells)
    assert "no data" in text
    assert "<svg" not in text
    assert "RuntimeError: worker raised" in _section(text, "failures")


def test_all_nan_metrics_still_plot_times():
    runs, cells = make_frames(ops=("lu", "qr"), sizes=(64, 128))
    metrics = [
        "backward_error",
        "backward_ratio",
        "orthogonality_loss",
        "orthogonality_ratio",
        "growth_factor",
        "growth_factor_exact",
        "forward_error",
        "kappa_scaled_error",
        "gflops",
        "peak_fraction",
        "kappa_actual",
    ]
    cells[metrics] = None
    text = render_report(runs, cells)
    assert "<svg" in text
    assert "no data" in text


def test_minimal_columns_render():
    runs = pd.DataFrame({"run_id": [7]})
    cells = pd.DataFrame(
        {
            "run_id": [7, 7, 8],
            "op": ["qr", "lu", "lu"],
            "impl": ["qr/lapack", "lu/lapack", "lu/lapack"],
            "status": ["ok", "error", "ok"],
        }
    )
    text = render_report(runs, cells)
    assert "run 7" in text and "run 8" in text
    assert text.index('id="op-lu"') < text.index('id="op-qr"')


def test_empty_cells_render():
    runs, cells = make_frames(ops=("lu",), sizes=(64,))
    text = render_report(runs, cells.iloc[0:0])
    assert "No cell failed" in text


def test_two_runs_show_both_labels():
    runs, cells = make_frames(
        ops=("lu", "qr"), run_ids=(1, 2), labels=("baseline", "candidate"), sizes=(64, 128)
    )
    text = render_report(runs, cells)
    svgs = "".join(re.findall(r"<svg.*?</svg>", text, flags=re.DOTALL))
    for label in ("baseline", "candidate"):
        assert label in _section(text, "summary")
        assert f"lu/lapack float64 [{label}]" in svgs
    assert "bench-2" in text


def test_duplicate_labels_are_disambiguated():
    runs, cells = make_frames(
        ops=("lu",), run_ids=(1, 2), labels=("nightly", "nightly"), sizes=(64,)
    )
    text = render_report(runs, cells)
    assert "nightly (run 1)" in text and "nightly (run 2)" in text


def test_report_of_500_cells_is_small():
    runs, cells = make_frames(sizes=(64, 128, 256, 512, 1024, 2048), seeds=(0, 1))
    assert len(cells) >= 500
    text = render_report(runs, cells)
    assert len(text.encode()) < 3_000_000


def test_fit_exponent_recovers_cubic():
    n = np.array([64, 128, 256, 512, 1024, 2048, 4096])
    assert fit_exponent(n, 3e-11 * n**3.0) == pytest.approx(3.0, abs=1e-9)
    noisy = 3e-11 * n**3.0 * np.random.default_rng(0).uniform(0.9, 1.1, n.size)
    assert fit_exponent(n, noisy) == pytest.approx(3.0, abs=0.05)


def test_fit_exponent_needs_two_sizes():
    assert math.isnan(fit_exponent([128, 128], [1.0, 1.1]))
    assert math.isnan(fit_exponent([], []))
    # Non-positive and non-finite points are ignored, not propagated.
    assert fit_exponent([0, 10, 100, 1000], [1.0, 1.0, 100.0, np.nan]) == pytest.approx(2.0)


def test_report_of_a_stored_run_has_every_section(tmp_path):
    """A real (tiny) sweep through the store: every section renders, the
    label is escaped wherever it appears, and the map agrees with recommend."""
    from factorbench.cli import main
    from factorbench.reports.recommend import recommend
    from factorbench.store import Store

    db = tmp_path / "s.sqlite"
    assert main(["run", "--ops", "lu,qr,solve,lowrank", "--impls",
                 "lu/lapack,lu/gepp,lu/nopivot,qr/lapack,qr/cgs,solve/gesv,solve/inv,"
                 "lowrank/gesdd", "--sizes", "16,32", "--kappas", "1e2,1e12",
                 "--dtypes", "float64", "--min-time", "0", "--no-progress",
                 "--db", str(db), "--label", XSS]) == 0
    store = Store(db, readonly=True)
    runs, cells = store.runs(), store.cells()
    text = render_report(runs, cells)
    assert XSS not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    for anchor in ("summary", "op-lu", "op-qr", "op-solve", "op-lowrank", "failures"):
        assert f'<section id="{anchor}">' in text
    lu = _section(text, "op-lu")
    for caption in ("Time vs n", "GFLOP/s vs n", "Backward error ratio vs kappa",
                    "Growth factor vs n", "Pareto front", "Recommendation map"):
        assert caption in lu, caption
    assert "Orthogonality loss vs kappa" in _section(text, "op-qr")
    assert "Forward error vs kappa" in _section(text, "op-solve")
    assert "Low-rank error ratio vs rank" in _section(text, "op-lowrank")
    assert 'download="factorbench-cells.csv" href="data:text/csv' in text
    # qr/cgs loses orthogonality at kappa 1e12: a failure with its message
    assert "orthogonality_ratio=" in _section(text, "failures")
    # every cell of the pooled float64 map is what recommend says at that point
    solve = _section(text, "op-solve")
    table = re.search(r'<table class="map">(.*?)</table>', solve, re.S).group(1)
    heads = re.findall(r"<th>(.*?)</th>", table.split("</thead>")[0])
    assert heads == ["1e+02", "1e+12", "every kappa"]
    rows = re.findall(r'<th class="num">(\d+)</th>(.*?)</tr>', table.split("<tbody>")[1], re.S)
    assert [int(n) for n, _ in rows] == [16, 32]
    for n, row in rows:
        shown = [re.sub(r"<span.*", "", c).strip()
                 for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for kappa, cell in zip((1e2, 1e12, None), shown, strict=True):
            rec = recommend(cells, op="solve", n=int(n), kappa=kappa, dtype="float64")
            assert cell == (rec.best.impl if rec.best else "none passes"), (n, kappa)


def test_throughput_table_puts_impls_next_to_the_library(html):
    lu = _section(html, "op-lu")
    assert "Throughput next to the library" in lu
    table = lu[lu.index('<table class="throughput">'):]
    table = table[:table.index("</table>")]
    # lu/blocked ran with block 128 at n >= 256: the entry names it, with its ratio
    row = table[table.index("lu/blocked"):]
    row = row[:row.index("</tr>")]
    assert "block=128" in row and "\u00d7" in row
    # only the library ran svd: nothing to put next to it
    assert "Throughput next to the library" not in _section(html, "op-svd")
