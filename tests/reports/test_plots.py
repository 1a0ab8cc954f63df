"""Tests for the report's figures (factorbench.reports.plots, accuracy_plots,
decision_plots and the shared machinery in figure)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from factorbench.reports import accuracy_plots, decision_plots, figure, plots
from factorbench.reports.decision_plots import _pareto_front
from factorbench.reports.figure import FAILED_COLOR, Plot, palette

U = {"float64": 2.0**-53, "float32": 2.0**-24}


def _cells(
    op: str,
    impls,
    *,
    runs=("base",),
    dtypes=("float64", "float32"),
    sizes=(16, 32, 64, 128),
    kappas=(1.0, 1e3, 1e6),
    kinds=("randsvd",),
) -> pd.DataFrame:
    """Normalised cells of one op, shaped as the report hands them to plots."""
    rng = np.random.default_rng(7)
    rows = []
    for r, run in enumerate(runs):
        for impl in impls:
            slow = 30.0 if impl.endswith(("textbook", "cgs", "normal")) else 1.0
            for dtype in dtypes:
                u = U[dtype]
                for n in sizes:
                    for kind in kinds:
                        for kappa in kappas:
                            t = 1e-10 * n**3 * slow * (1 + 0.2 * r) * (1 + 0.05 * rng.random())
                            row = {
                                "run_id": r + 1,
                                "run_name": run,
                                "op": op,
                                "impl": impl,
                                "variant": impl,
                                "dtype": dtype,
                                "kind": kind,
                                "m": n,
                                "n": n,
                                "rank": math.nan,
                                "kappa": kappa,
                                "kappa_actual": kappa * (1 + 0.01 * rng.random()),
                                "unit_roundoff": u,
                                "params_json": "{}",
                                "status": "ok",
                                "message": None,
                                "time_median_s": t,
                                "time_ci_low_s": 0.95 * t,
                                "time_ci_high_s": 1.05 * t,
                                "gflops": 2 / 3 * n**3 / t / 1e9,
                                "backward_ratio": 1 + 3 * rng.random(),
                                "orthogonality_loss": math.nan,
                                "growth_factor": math.nan,
                                "growth_factor_exact": math.nan,
                                "forward_error": math.nan,
                                "lowrank_error_ratio": math.nan,
                                "nan_columns": None,
                            }
                            _metrics(row, impl, kind, kappa, u, rng)
                            rows.append(row)
    return pd.DataFrame(rows)


def _metrics(row: dict, impl: str, kind: str, kappa: float, u: float, rng) -> None:
    n = row["n"]
    if row["op"] == "solve":
        power = 2 if impl.endswith("normal") else 1
        row["forward_error"] = min(kappa**power * u * rng.uniform(0.2, 2.0), 1.0)
    if row["op"] == "qr":
        power = {"qr/householder": 0, "qr/mgs": 1, "qr/cgs": 2}[impl]
        row["orthogonality_loss"] = min(u * kappa**power * n * rng.uniform(0.5, 2.0), float(n))
        if row["orthogonality_loss"] / (n * u) >= 30:
            row.update(status="failed", message="orthogonality_ratio >= 30")
    if row["op"] == "lu":
        growth = 2.0 ** (n - 1) if kind == "wilkinson" else n ** (2 / 3) * rng.uniform(0.3, 1.5)
        row["growth_factor"] = growth
        if impl == "lu/textbook":
            row["growth_factor_exact"] = growth * 1.1


def _lowrank_cells(oversampling=(5,)) -> pd.DataFrame:
    rows = []
    for p in oversampling:
        for rank in (5, 10, 20, 50):
            for dtype in ("float64", "float32"):
                ratio = 1 + 2.0 / (p + 1) + 0.01 * rank
                rows.append(
                    {
                        "run_name": "base",
                        "op": "lowrank",
                        "impl": "lowrank/rsvd",
                        "variant": "lowrank/rsvd"
                        if len(oversampling) == 1
                        else f"lowrank/rsvd[oversampling={p}]",
                        "dtype": dtype,
                        "m": 400,
                        "n": 200,
                        "rank": rank,
                        "kappa": math.nan,
                        "params_json": json.dumps({"oversampling": p}),
                        "status": "failed" if ratio >= 2 else "ok",
                        "lowrank_error_ratio": ratio,
                    }
                )
    return pd.DataFrame(rows)


CEILINGS = {("base", "float64"): 60.0, ("base", "float32"): 120.0, ("base", "complex128"): 50.0}


def _all_plots(colors=None):
    """(name, function of cells, cells) for every plot function."""
    lu = _cells("lu", ["lu/lapack", "lu/textbook"], kinds=("randsvd", "wilkinson"))
    qr = _cells("qr", ["qr/householder", "qr/mgs", "qr/cgs"])
    solve = _cells("solve", ["solve/lapack", "solve/normal"])
    kw = {"colors": colors}
    return [
        ("time", lambda c, **k: plots.time_vs_n(c, **kw, **k), lu),
        ("gflops", lambda c, **k: plots.gflops_vs_n(c, ceilings=CEILINGS, **kw, **k), lu),
        ("bwd", lambda c, **k: accuracy_plots.backward_ratio_vs_kappa(c, **kw, **k), lu),
        ("fwd", lambda c, **k: accuracy_plots.forward_error_vs_kappa(c, **kw, **k), solve),
        ("orth", lambda c, **k: accuracy_plots.orthogonality_vs_kappa(c, **kw, **k), qr),
        ("growth", lambda c, **k: accuracy_plots.growth_vs_n(c, **kw, **k), lu),
        ("lowrank", lambda c, **k: accuracy_plots.lowrank_vs_rank(c, **kw, **k), _lowrank_cells()),
        ("pareto", lambda c, **k: decision_plots.pareto(c, **kw, **k), qr),
    ]


PLOT_NAMES = [name for name, _, _ in _all_plots()]


def _svg_text(svg: str) -> str:
    """The text content of an SVG (labels, legend, ticks), unescaped."""
    text = " ".join(re.findall(r">([^<]+)<", svg))
    return text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")


# ------------------------------------------------------------------ palette


def test_palette_is_deterministic_and_order_free():
    a = palette(["qr/mgs", "qr/cgs", "qr/householder", "qr/cgs"])
    b = palette(["qr/householder", "qr/cgs", "qr/mgs"])
    assert a == b
    assert list(a) == ["qr/cgs", "qr/householder", "qr/mgs"]
    assert a["qr/cgs"] == "#1f77b4"  # tab10's first colour, to the first name
    assert palette(["x", None, float("nan")]) == {"x": "#1f77b4"}


def test_palette_uses_distinct_colours_then_cycles():
    nine = palette([f"v{i:02d}" for i in range(9)])
    assert len(set(nine.values())) == 9
    eighteen = palette([f"v{i:02d}" for i in range(18)])
    assert len(set(eighteen.values())) == 18
    # The first nine of eighteen are tab10's hues, not alternating light shades.
    assert list(eighteen.values())[:9] == list(nine.values())
    many = palette([f"v{i:02d}" for i in range(25)])
    assert many["v18"] == many["v00"]


def test_palette_never_uses_the_failure_red():
    from factorbench.reports.figure import FAILED_COLOR

    for k in (3, 9, 10, 30):
        colours = set(palette([f"v{i:02d}" for i in range(k)]).values())
        assert FAILED_COLOR not in colours and "#ff9896" not in colours


def test_styles_give_missing_variants_unused_colours():
    frame = pd.DataFrame({"variant": ["a", "b", "new"], "run_name": "", "dtype": "float64"})
    colors = {"a": "#1f77b4", "b": "#ff7f0e", "z": "#2ca02c"}
    styles = figure._Styles(frame, colors)
    assert styles.color("a") == "#1f77b4"
    assert styles.color("new") not in colors.values()


# ------------------------------------------------------------ pareto front


def test_pareto_front_on_hand_made_points():
    # (time, error): smaller is better on both.
    x = [1.0, 2.0, 3.0, 4.0, 2.0, 5.0, np.nan, 0.5, 6.0]
    y = [5.0, 3.0, 4.0, 1.0, 3.0, 1.0, 0.1, np.inf, 0.5]
    front = _pareto_front(x, y)
    # 3 is dominated by 2 (faster and better); 5 by 3 (equal error, slower).
    # Ties (1 and 4) are both on the front; NaN and Inf points never are and
    # dominate nothing.
    assert front.tolist() == [True, True, False, True, True, False, False, False, True]


def test_pareto_front_edge_cases():
    assert _pareto_front([], []).tolist() == []
    assert _pareto_front([1.0], [1.0]).tolist() == [True]
    assert _pareto_front([1.0, 2.0], [2.0, 1.0]).tolist() == [True, True]
    with pytest.raises(ValueError):
        _pareto_front([1.0, 2.0], [1.0])


# ------------------------------------------------------- common behaviour


@pytest.mark.parametrize("name", PLOT_NAMES)
def test_plot_renders_svg_with_prefixed_ids(name):
    _, fn, cells = next(p for p in _all_plots() if p[0] == name)
    plot = fn(cells, fig_id=f"t-{name}")
    assert isinstance(plot, Plot)
    assert plot.svg is not None, plot.notes
    assert plot.svg.startswith("<svg") and plot.svg.endswith("</svg>")
    ids = re.findall(r'\bid="([^"]+)"', plot.svg)
    assert ids and all(i.startswith(f"t-{name}-") for i in ids)
    refs = re.findall(r'(?:href="#|url\(#)([^")]+)', plot.svg)
    assert all(r.startswith(f"t-{name}-") for r in refs)


@pytest.mark.parametrize("name", PLOT_NAMES)
def test_plot_output_is_byte_identical(name):
    _, fn, cells = next(p for p in _all_plots(palette(["x", "y"])) if p[0] == name)
    assert fn(cells, fig_id="same").svg == fn(cells.copy(), fig_id="same").svg


@pytest.mark.parametrize("name", PLOT_NAMES)
def test_plot_of_empty_cells_says_why(name):
    _, fn, cells = next(p for p in _all_plots() if p[0] == name)
    plot = fn(cells.iloc[0:0], fig_id="e")
    assert plot.svg is None
    assert plot.notes and plot.notes[0].startswith("no data")


@pytest.mark.parametrize("name", PLOT_NAMES)
def test_plot_of_all_nan_metrics_says_why(name):
    _, fn, cells = next(p for p in _all_plots() if p[0] == name)
    metrics = [
        "time_median_s",
        "time_ci_low_s",
        "time_ci_high_s",
        "gflops",
        "backward_ratio",
        "orthogonality_loss",
        "growth_factor",
        "growth_factor_exact",
        "forward_error",
        "lowrank_error_ratio",
    ]
    blank = cells.assign(**{m: math.nan for m in metrics if m in cells}, status="error")
    plot = fn(blank, fig_id="nan")
    assert plot.svg is None
    assert plot.notes and plot.notes[0].startswith("no data")


def test_same_variant_gets_same_colour_in_every_plot():
    # A palette over more variants than any one plot shows, so that a plot
    # left to itself would colour differently.
    variants = ["aaa/first", "lu/lapack", "lu/textbook", "qr/cgs", "qr/householder",
                "qr/mgs", "solve/lapack", "solve/normal", "lowrank/rsvd"]
    colors = palette(variants)
    assert colors["lu/lapack"] != palette(["lu/lapack", "lu/textbook"])["lu/lapack"]
    expected = {
        "time": "lu/lapack",
        "gflops": "lu/lapack",
        "bwd": "lu/lapack",
        "growth": "lu/lapack",
        "fwd": "solve/normal",
        "orth": "qr/mgs",
        "pareto": "qr/mgs",
        "lowrank": "lowrank/rsvd",
    }
    for name, fn, cells in _all_plots(colors):
        svg = fn(cells, fig_id=f"c-{name}").svg
        assert colors[expected[name]] in svg, name
    own = plots.time_vs_n(_cells("lu", ["lu/lapack", "lu/textbook"]), fig_id="own")
    assert colors["lu/lapack"] not in own.svg


@pytest.mark.parametrize("name", PLOT_NAMES)
def test_dollar_signs_stay_plain_text(name):
    _, fn, cells = next(p for p in _all_plots() if p[0] == name)
    cells = cells.assign(variant=cells["variant"] + " $x^2$")
    plot = fn(cells, fig_id="d")
    assert "$x^2$" in _svg_text(plot.svg)


# ------------------------------------------------------------ performance


def test_gflops_vs_n_draws_ceilings_of_plotted_dtypes():
    cells = _cells("lu", ["lu/lapack", "lu/textbook"])
    plot = plots.gflops_vs_n(cells, fig_id="g", ceilings=CEILINGS)
    text = _svg_text(plot.svg)
    assert "GEMM float64" in text and "GEMM float32" in text
    assert "complex128" not in text
    assert "median GFLOP/s" in text
    # Ceilings keyed by dtype alone apply to every run.
    two = _cells("lu", ["lu/lapack"], runs=("base", "head"), dtypes=("float64",))
    text = _svg_text(plots.gflops_vs_n(two, fig_id="g2", ceilings={"float64": 60.0}).svg)
    assert "GEMM float64 [base]" in text and "GEMM float64 [head]" in text


def test_gflops_vs_n_without_ceiling_notes_it_and_marks_failures():
    cells = _cells("lu", ["lu/lapack"], dtypes=("float64",))
    cells.loc[cells.index[:2], "status"] = "failed"
    plot = plots.gflops_vs_n(cells, fig_id="g", ceilings={})
    assert plot.svg is not None
    assert any("no GEMM ceiling" in note for note in plot.notes)
    assert FAILED_COLOR in plot.svg
    assert "includes failed cells" in _svg_text(plot.svg)


def test_time_vs_n_accepts_colors():
    cells = _cells("lu", ["lu/lapack"], dtypes=("float64",))
    plot = plots.time_vs_n(cells, fig_id="t", colors={"lu/lapack": "#123456"})
    assert "#123456" in plot.svg


# --------------------------------------------------------------- accuracy


def test_forward_error_has_kappa_guides_per_dtype():
    plot = accuracy_plots.forward_error_vs_kappa(
        _cells("solve", ["solve/lapack", "solve/normal"]), fig_id="f"
    )
    text = _svg_text(plot.svg)
    for guide in ("kappa·u float64", "kappa²·u float64", "kappa·u float32", "kappa²·u float32"):
        assert guide in text
    assert "relative forward error" in text


def test_forward_error_guides_without_unit_roundoff_column():
    cells = _cells("solve", ["solve/lapack"], dtypes=("float64",)).drop(columns="unit_roundoff")
    plot = accuracy_plots.forward_error_vs_kappa(cells, fig_id="f")
    assert "kappa·u float64" in _svg_text(plot.svg)
    odd = cells.assign(dtype="posit16")
    plot = accuracy_plots.forward_error_vs_kappa(odd, fig_id="f")
    assert plot.svg is not None
    assert any("unit roundoff unknown" in note for note in plot.notes)


def test_non_finite_values_are_drawn_at_the_top():
    cells = _cells("solve", ["solve/lapack"], dtypes=("float64",))
    # Inf, NaN recorded in nan_columns (the store's NULL), and a failed cell
    # with a NaN: all three are failures to show.
    cells.loc[0, ["forward_error", "status"]] = [math.inf, "failed"]
    cells.loc[1, ["forward_error", "nan_columns"]] = [None, "backward_error,forward_error"]
    cells.loc[2, ["forward_error", "status"]] = [math.nan, "failed"]
    # An ok cell without the metric is not a failure.
    cells.loc[3, "forward_error"] = math.nan
    plot = accuracy_plots.forward_error_vs_kappa(cells, fig_id="f")
    assert "3 cell(s) with a non-finite forward error drawn at the top" in plot.notes
    assert FAILED_COLOR in plot.svg
    assert "failed, non-finite value" in _svg_text(plot.svg)


def test_failed_cells_get_a_red_cross():
    plot = accuracy_plots.orthogonality_vs_kappa(
        _cells("qr", ["qr/householder", "qr/cgs"]), fig_id="o"
    )
    assert FAILED_COLOR in plot.svg
    assert "failed" in _svg_text(plot.svg).split()


def test_orthogonality_has_u_kappa_u_and_kappa2_u_guides():
    plot = accuracy_plots.orthogonality_vs_kappa(
        _cells("qr", ["qr/householder", "qr/mgs", "qr/cgs"], dtypes=("float64",)), fig_id="o"
    )
    text = _svg_text(plot.svg)
    for guide in ("u float64", "kappa·u float64", "kappa²·u float64"):
        assert guide in text
    assert "‖I − QᴴQ‖₁" in text


def test_backward_ratio_keeps_threshold_and_failures():
    cells = _cells("lu", ["lu/lapack"], dtypes=("float64",))
    cells.loc[0, ["backward_ratio", "status"]] = [math.inf, "failed"]
    cells.loc[1, ["backward_ratio", "status"]] = [45.0, "failed"]
    plot = accuracy_plots.backward_ratio_vs_kappa(cells, fig_id="b", threshold=30)
    text = _svg_text(plot.svg)
    assert "threshold 30" in text
    assert FAILED_COLOR in plot.svg
    assert any("non-finite ratio or a backward error > 1 drawn at the top" in note
               for note in plot.notes)
    assert plots.backward_ratio_vs_kappa is accuracy_plots.backward_ratio_vs_kappa


def test_growth_has_both_guides_and_uses_exact_growth():
    cells = _cells("lu", ["lu/lapack", "lu/textbook"], kinds=("randsvd", "wilkinson"))
    plot = accuracy_plots.growth_vs_n(cells, fig_id="gr")
    text = _svg_text(plot.svg)
    assert "2^(n−1)" in text and "n^(2/3)" in text
    assert "kind wilkinson" in text
    # Only the exact growth known: still drawn.
    exact_only = cells.assign(growth_factor=math.nan, growth_factor_exact=4.0)
    assert accuracy_plots.growth_vs_n(exact_only, fig_id="gr").svg is not None


def test_growth_notes_when_wilkinson_bound_is_off_the_axes():
    cells = _cells("lu", ["lu/lapack"], sizes=(256, 512, 1024))
    plot = accuracy_plots.growth_vs_n(cells, fig_id="gr")
    assert plot.svg is not None
    assert "2^(n−1)" not in _svg_text(plot.svg)
    assert any("above the plotted range" in note for note in plot.notes)


def test_growth_marks_overflowed_growth_at_the_top():
    cells = _cells("lu", ["lu/lapack"], dtypes=("float64",))
    cells.loc[0, ["growth_factor", "status"]] = [math.inf, "failed"]
    plot = accuracy_plots.growth_vs_n(cells, fig_id="gr")
    assert FAILED_COLOR in plot.svg
    assert any("non-finite growth factor" in note for note in plot.notes)


def test_growth_up_to_the_float_maximum():
    # Wilkinson's matrix in float64: 2^1023 at n = 1024, overflow beyond.
    cells = _cells("lu", ["lu/lapack"], sizes=(512, 1024, 2048), dtypes=("float64",))
    cells["kind"] = "wilkinson"
    cells["growth_factor"] = [2.0 ** (n - 1) if n <= 1024 else math.inf for n in cells["n"]]
    cells.loc[cells["n"] == 2048, "status"] = "failed"
    plot = accuracy_plots.growth_vs_n(cells, fig_id="gr")
    assert plot.svg is not None
    assert "2^(n−1)" in _svg_text(plot.svg)
    assert "3 cell(s) with a non-finite growth factor drawn at the top" in plot.notes


def test_lowrank_against_rank_with_threshold_and_optimum():
    plot = accuracy_plots.lowrank_vs_rank(_lowrank_cells(), fig_id="lr")
    text = _svg_text(plot.svg)
    assert "target rank k" in text
    assert "threshold 2" in text and "optimal (1)" in text


def test_lowrank_against_oversampling_when_it_varies():
    cells = _lowrank_cells(oversampling=(0, 5, 10))
    colors = palette(cells["variant"])
    plot = accuracy_plots.lowrank_vs_rank(cells, fig_id="lr", colors=colors)
    text = _svg_text(plot.svg)
    assert "oversampling" in text and "target rank k" not in text
    # One series spans the parameter, in the colour of its first variant.
    assert "lowrank/rsvd float64" in text
    assert "oversampling=5" not in text
    assert colors["lowrank/rsvd[oversampling=0]"] in plot.svg
    assert FAILED_COLOR in plot.svg  # p = 0 exceeds the threshold


# ---------------------------------------------------------------- decision


def test_pareto_panels_for_largest_sizes_and_dtypes():
    cells = _cells("qr", ["qr/householder", "qr/mgs", "qr/cgs"], sizes=(8, 16, 32, 64, 128))
    plot = decision_plots.pareto(cells, fig_id="p")
    text = _svg_text(plot.svg)
    assert "n = 128, float64" in text and "n = 16, float32" in text
    assert "n = 8," not in text
    assert "5 sizes compared; the 4 largest shown" in plot.notes
    assert "Pareto front of passing points" in text
    assert "threshold 30" in text
    # qr/cgs fails at large kappa: hollow with a red cross.
    assert FAILED_COLOR in plot.svg


def test_pareto_needs_two_series():
    cells = _cells("lu", ["lu/lapack"], dtypes=("float64",))
    plot = decision_plots.pareto(cells, fig_id="p")
    assert plot.svg is None
    assert "two or more" in plot.notes[0]


def test_pareto_without_ratios_says_why():
    cells = _cells("qr", ["qr/householder", "qr/mgs"]).assign(backward_ratio=math.nan)
    plot = decision_plots.pareto(cells, fig_id="p")
    assert plot.svg is None
    assert "backward ratio" in plot.notes[0]


def test_pareto_with_two_runs_and_non_finite_ratio():
    cells = _cells("lu", ["lu/lapack", "lu/textbook"], runs=("base", "head"), sizes=(32, 64))
    cells.loc[0, ["backward_ratio", "status"]] = [math.inf, "failed"]
    plot = decision_plots.pareto(cells, fig_id="p")
    text = _svg_text(plot.svg)
    assert "[base]" in text and "[head]" in text
    assert any("non-finite backward ratio" in note for note in plot.notes)
    assert FAILED_COLOR in plot.svg


def test_svg_stays_lean_for_300_cells():
    cells = _cells(
        "qr",
        ["qr/householder", "qr/mgs", "qr/cgs"],
        runs=("base", "head"),
        sizes=(16, 32, 64, 128, 256),
        kappas=(1.0, 1e2, 1e4, 1e6, 1e8),
    )
    assert len(cells) == 300
    for fn in (accuracy_plots.orthogonality_vs_kappa, decision_plots.pareto):
        assert len(fn(cells, fig_id="s").svg) < 150_000


def test_backward_error_above_one_goes_to_the_top_edge():
    from factorbench.reports.accuracy_plots import backward_ratio_vs_kappa

    rows = [
        {"variant": "lu/a", "dtype": "float64", "run_name": "", "kappa": k, "status": "ok",
         "backward_ratio": 0.5, "backward_error": 1e-14}
        for k in (1e2, 1e4, 1e8)
    ] + [{"variant": "lu/b", "dtype": "float64", "run_name": "", "kappa": 1e4,
          "status": "failed", "backward_ratio": 1e89, "backward_error": 2e75}]
    plot = backward_ratio_vs_kappa(pd.DataFrame(rows), fig_id="t")
    assert any("1 cell(s)" in note and "drawn at the top" in note for note in plot.notes)
    # the axis is not stretched to 1e89: no tick label beyond 10^20
    assert "10⁸⁹" not in plot.svg and "10⁸⁰" not in plot.svg
