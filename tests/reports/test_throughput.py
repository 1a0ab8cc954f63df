"""The throughput table: best setting per impl, ratio to the fastest library impl."""

import json

import numpy as np
import pandas as pd
import pytest

from factorbench.reports.throughput import format_throughput, throughput_table


def _cell(impl, gflops, *, family="blocked", n=1024, dtype="float64", run_id=1, status="ok",
          params=None, kind="randsvd", peak=None):
    return {"run_id": run_id, "op": impl.split("/")[0], "impl": impl, "family": family,
            "dtype": dtype, "m": n, "n": n, "kind": kind, "status": status, "gflops": gflops,
            "peak_fraction": peak if peak is not None else gflops / 50.0,
            "params_json": json.dumps(params or {}, sort_keys=True)}


def _frame(*cells):
    return pd.DataFrame(list(cells))


def test_best_block_and_ratio_to_the_library():
    t = throughput_table(_frame(
        _cell("lu/lapack", 40.0, family="library"),
        _cell("lu/blocked", 20.0, params={"block": 32}),
        _cell("lu/blocked", 34.0, params={"block": 128}),
        _cell("lu/blocked", 30.0, params={"block": 256}),
    ))
    row = t[t["impl"] == "lu/blocked"].iloc[0]
    assert row["params"] == "block=128" and row["tried"] == 3
    assert row["ratio"] == pytest.approx(34.0 / 40.0)
    assert row["baseline"] == "lu/lapack"
    lib = t[t["impl"] == "lu/lapack"].iloc[0]
    assert lib["ratio"] == 1.0 and lib["params"] == ""


def test_median_over_kinds_and_only_ok_cells_count():
    t = throughput_table(_frame(
        _cell("lu/lapack", 40.0, family="library"),
        _cell("lu/blocked", 10.0, kind="randsvd"),
        _cell("lu/blocked", 30.0, kind="gaussian"),
        _cell("lu/blocked", 20.0, kind="spd"),
        _cell("lu/blocked", 1000.0, kind="wilkinson", status="failed"),
    ))
    row = t[t["impl"] == "lu/blocked"].iloc[0]
    assert row["gflops"] == 20.0 and row["cells"] == 3


def test_fastest_library_impl_is_the_baseline_and_runs_stay_apart():
    t = throughput_table(_frame(
        _cell("eigh/syevd", 10.0, family="library"),
        _cell("eigh/syevr", 12.0, family="library"),
        _cell("eigh/jacobi", 6.0, family="textbook"),
        _cell("eigh/jacobi", 6.0, family="textbook", run_id=2),
    ))
    r1 = t[(t["run_id"] == 1) & (t["impl"] == "eigh/jacobi")].iloc[0]
    assert r1["baseline"] == "eigh/syevr" and r1["ratio"] == pytest.approx(0.5)
    r2 = t[(t["run_id"] == 2)].iloc[0]  # no library impl ran in run 2: no ratio invented
    assert r2["baseline"] is np.nan or pd.isna(r2["baseline"])
    assert np.isnan(r2["ratio"])


def test_empty_and_text():
    assert throughput_table(pd.DataFrame()).empty
    assert "no ok cells" in format_throughput(throughput_table(pd.DataFrame()))
    text = format_throughput(throughput_table(_frame(
        _cell("lu/lapack", 40.0, family="library"),
        _cell("lu/blocked", 34.0, params={"block": 128}),
        _cell("lu/blocked", 30.0, params={"block": 128}, n=2048),
    )))
    assert "n=1024" in text and "n=2048" in text
    assert "34.0 (68%) x0.85 block=128" in text
    lines = text.splitlines()
    # no library impl at n = 2048: no ratio there; lu/lapack has no n = 2048 cell: a dash
    assert lines[2].split()[-2:] == ["(60%)", "block=128"]
    assert lines[3].split()[-1] == "-"
