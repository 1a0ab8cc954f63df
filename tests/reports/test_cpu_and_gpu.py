"""The "CPU and GPU" section: GPU impls next to the fastest CPU impl, and the crossover."""

import json

import pandas as pd
import pytest

from factorbench.reports.gpu import crossover, crossovers, gpu_section, gpu_table

SIZES = [256, 512, 1024, 2048, 4096]
CPU = [0.001, 0.004, 0.03, 0.2, 1.5]          # lu/lapack
GPU = [0.003, 0.006, 0.04, 0.05, 0.12]        # lu/cupy: slower up to 1024, faster from 2048
TRANSFER = [0.0005, 0.002, 0.008, 0.2, 0.6]   # with it, 2048 is slower again: 0.25 > 0.2


def _cell(impl, n, time_s, *, device="cpu", transfer=None, status="ok", kind="randsvd",
          params=None, run_id=1, dtype="float64"):
    return {"run_id": run_id, "op": impl.split("/")[0], "impl": impl, "device": device,
            "family": "library", "dtype": dtype, "m": n, "n": n, "kind": kind, "status": status,
            "time_median_s": time_s, "transfer_s": transfer,
            "gflops": 2 * n**3 / 3 / time_s / 1e9, "peak_fraction": 0.5,
            "params_json": json.dumps(params or {}, sort_keys=True)}


def _pinned(run_id=1):
    cells = []
    for n, c, g, t in zip(SIZES, CPU, GPU, TRANSFER, strict=True):
        cells.append(_cell("lu/lapack", n, c, run_id=run_id))
        cells.append(_cell("lu/blocked", n, 3 * c, run_id=run_id))  # a slower CPU impl
        cells.append(_cell("lu/cupy", n, g, device="gpu", transfer=t, run_id=run_id))
    return cells


def test_crossover_rule():
    assert crossover(SIZES, GPU, CPU) == (2048, False, 5)
    totals = [g + t for g, t in zip(GPU, TRANSFER, strict=True)]
    assert crossover(SIZES, totals, CPU) == (4096, False, 5)
    assert crossover([4, 2, 1], [1, 1, 1], [2, 2, 2]) == (1, True, 3)      # wins everywhere
    assert crossover([1, 2, 4], [3, 3, 3], [2, 2, 2]) == (None, False, 3)  # never
    # a win at a small size, a loss at the largest: no crossover
    assert crossover([1, 2, 4], [1, 3, 3], [2, 2, 2]) == (None, False, 3)
    # a lucky small size does not move the crossover down
    assert crossover([1, 2, 4, 8], [1, 3, 1, 1], [2, 2, 2, 2]) == (4, False, 4)
    # sizes where either side has no time are left out
    assert crossover([1, 2, 4], [float("nan"), 3, 1], [2, None, 2]) == (4, True, 1)
    assert crossover([], [], []) == (None, False, 0)


def test_table_puts_each_gpu_impl_next_to_the_fastest_cpu_impl():
    t = gpu_table(pd.DataFrame(_pinned()))
    assert list(t["impl"].unique()) == ["lu/cupy"] and list(t["n"]) == SIZES
    assert set(t["cpu_impl"]) == {"lu/lapack"}
    assert t["speedup"].tolist() == pytest.approx([c / g for c, g in zip(CPU, GPU, strict=True)])
    assert t["speedup_with_transfer"].tolist() == pytest.approx(
        [c / (g + tr) for c, g, tr in zip(CPU, GPU, TRANSFER, strict=True)])
    c = crossovers(t).iloc[0]
    assert c["crossover_n"] == 2048 and not c["crossover_all"]
    assert c["crossover_transfer_n"] == 4096 and c["compared"] == 5 and c["largest_n"] == 4096


def test_only_ok_cells_count_medians_and_best_setting():
    cells = _pinned() + [
        # a fast GPU answer that failed the accuracy rule is no win
        _cell("lu/cupy", 1024, 1e-6, device="gpu", transfer=1e-6, status="failed"),
        # two more matrix kinds at 1024: the point's time is the median (0.02)
        _cell("lu/cupy", 1024, 0.02, device="gpu", transfer=0.008, kind="gaussian"),
        _cell("lu/cupy", 1024, 0.01, device="gpu", transfer=0.008, kind="wilkinson"),
        # a twin with two block sizes: its fastest setting counts
        _cell("lu/blocked-cupy", 4096, 0.9, device="gpu", transfer=0.6, params={"block": 64}),
        _cell("lu/blocked-cupy", 4096, 0.4, device="gpu", transfer=0.6, params={"block": 256}),
    ]
    t = gpu_table(pd.DataFrame(cells))
    row = t[(t["impl"] == "lu/cupy") & (t["n"] == 1024)].iloc[0]
    assert row["time_s"] == pytest.approx(0.02) and row["cells"] == 3
    twin = t[t["impl"] == "lu/blocked-cupy"].iloc[0]
    assert twin["params"] == "block=256" and twin["time_s"] == 0.4
    # at 1024 the median GPU time now wins (0.02 < 0.03), and so does every larger size
    assert crossovers(t).set_index("impl").loc["lu/cupy", "crossover_n"] == 1024


def test_section_view_per_run_op_and_dtype():
    (view,) = gpu_section(pd.DataFrame(_pinned()), {1: "h100"})
    assert (view["run"], view["op"], view["dtype"]) == ("h100", "lu", "float64")
    assert view["sizes"] == [str(n) for n in SIZES]
    assert [e["impl"] for e in view["cpu"]] == ["lu/lapack"] * 5
    (row,) = view["rows"]
    assert row["impl"] == "lu/cupy"
    assert row["crossover"] == "n = 2048" and row["crossover_transfer"] == "n = 4096"
    assert [e["win"] for e in row["entries"]] == [False, False, False, True, True]
    assert [e["win_transfer"] for e in row["entries"]] == [False] * 4 + [True]
    assert row["entries"][3]["speedup"] == "\u00d74"


def test_no_gpu_cells_no_section_and_runs_stay_apart():
    cpu_only = pd.DataFrame([c for c in _pinned() if c["device"] == "cpu"])
    assert gpu_table(cpu_only).empty and gpu_section(cpu_only, {1: "run 1"}) == []
    no_device = cpu_only.drop(columns=["device"])  # an old store: every cell is a CPU cell
    assert gpu_table(no_device).empty
    # run 2 has GPU cells but no CPU impl: nothing to compare, no crossover invented
    two = pd.DataFrame(_pinned() + [_cell("lu/cupy", 256, 0.003, device="gpu", transfer=0.001,
                                          run_id=2)])
    c = crossovers(gpu_table(two)).set_index("run_id")
    assert c.loc[1, "crossover_n"] == 2048
    assert c.loc[2, "compared"] == 0 and pd.isna(c.loc[2, "crossover_n"])


def test_section_renders_in_the_report(tmp_path):
    from factorbench.reports.build import render_report
    from factorbench.store import Store

    with Store(tmp_path / "fb.sqlite") as s:
        gpu = {"index": 0, "name": "NVIDIA H100", "memory_bytes": 80 * 2**30,
               "compute_capability": "9.0", "multiprocessors": 132, "driver": "13.0",
               "cuda_runtime": "13.0"}
        rid = s.begin_run(label="h100", gemm={"float64": 50.0, "gpu:float64": 60000.0},
                          machine={"host": "h", "gpus": [gpu]})
        for rec in _pinned():
            key = f"{rec['impl']}-{rec['n']}"
            s.write_cell(rid, dict(rec, cell_key=key, run_id=None))
        s.finish_run(rid, "complete")
        html = render_report(s.runs(), s.cells([rid]))
        cpu_rid = s.begin_run(label="cpu")
        for rec in _pinned():
            if rec["device"] == "cpu":
                s.write_cell(cpu_rid, dict(rec, cell_key=f"{rec['impl']}-{rec['n']}"))
        cpu_html = render_report(s.runs().query("run_id == @cpu_rid"), s.cells([cpu_rid]))
    assert '<section id="gpu">' in html and 'href="#gpu"' in html
    assert "CPU and GPU" in html and '<th class="num">2048</th>' in html
    assert "500 \u00b5s transfer" in html  # 0.0005 s, in the report's units
    assert "kernel: n = 2048" in html and "with transfer: n = 4096" in html
    assert "gpu:float64: 6e+04 GFLOP/s" in html  # the GPU's ceiling in the run header
    assert "NVIDIA H100 (80.0 GiB, compute 9.0, driver 13.0, CUDA 13.0)" in html
    assert '<section id="gpu">' not in cpu_html and 'href="#gpu"' not in cpu_html
