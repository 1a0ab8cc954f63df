"""CPU and GPU: from which size a GPU impl beats the best CPU impl, with and without the copies.

For each run, op and dtype that has GPU cells, :func:`gpu_table` puts every
GPU impl next to the fastest CPU impl at each size, and :func:`crossovers`
finds the size from which the GPU wins:

* a point's time is the median ``time_median_s`` over the ok cells that share
  it (matrix kinds, kappas, seeds) of an impl's fastest parameter setting; the
  CPU side is the fastest CPU impl at that point, whichever it is;
* the GPU's time *with transfer* adds the median ``transfer_s`` of the same
  cells (the inputs copied to the device, the factors copied back): what a
  caller holding host arrays pays;
* the crossover is the smallest size from which the GPU is faster at every
  larger size compared: a lucky small size does not make one, and a GPU that
  loses again at the largest size has none.  Sizes where either side has no
  time are left out of the comparison.

Only ok cells count (a fast wrong answer is no win), and every comparison
stays inside one run (one machine, one moment).  :func:`gpu_section` shapes
the tables for the report's "CPU and GPU" section; it is empty, and the
section absent, for runs without GPU cells.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from factorbench.reports._format import _DASH, _finite, _fmt_g, _fmt_time
from factorbench.reports._frames import params_text

__all__ = ["gpu_table", "crossovers", "crossover", "gpu_section", "gpu_text"]

_POINT = ["run_id", "op", "dtype", "m", "n"]
#: The report is HTML: micro as the micro sign.
_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "\u00b5s"), (1e-9, "ns"))
_TABLE = [*_POINT, "impl", "params", "time_s", "transfer_s", "gflops", "peak_fraction",
          "cells", "cpu_impl", "cpu_time_s", "cpu_gflops", "speedup", "speedup_with_transfer"]
_CROSS = ["run_id", "op", "dtype", "impl", "compared", "crossover_n", "crossover_all",
          "crossover_transfer_n", "crossover_transfer_all", "largest_n"]


def gpu_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Every GPU impl at every size next to the fastest CPU impl there.

    Parameters
    ----------
    cells : pandas.DataFrame
        Store cells with ``run_id, op, impl, device, dtype, m, n, status,
        time_median_s`` (and, where recorded, ``transfer_s, gflops,
        peak_fraction, params_json``).  A missing ``device`` means CPU.

    Returns
    -------
    pandas.DataFrame
        One row per (run_id, op, dtype, m, n, GPU impl): ``params`` (its
        fastest setting), ``time_s``, ``transfer_s``, ``gflops`` and
        ``peak_fraction`` (medians over that setting's ok cells), ``cells``,
        ``cpu_impl``, ``cpu_time_s`` and ``cpu_gflops`` of the fastest CPU
        impl at the point (NaN/None where no CPU impl ran there),
        ``speedup = cpu_time_s / time_s`` and ``speedup_with_transfer =
        cpu_time_s / (time_s + transfer_s)``.  Empty without GPU cells.
    """
    need = {"status", "time_median_s", "impl", *_POINT}
    if cells.empty or not need <= set(cells.columns):
        return pd.DataFrame(columns=_TABLE)
    ok = cells[(cells["status"] == "ok") & cells["time_median_s"].notna()].copy()
    device = ok["device"] if "device" in ok else pd.Series("cpu", index=ok.index)
    ok["device"] = device.where(device.notna(), "cpu")
    if not (ok["device"] == "gpu").any():
        return pd.DataFrame(columns=_TABLE)
    ok["params"] = ok["params_json"].map(params_text) if "params_json" in ok else ""
    for col in ("transfer_s", "gflops", "peak_fraction"):
        if col not in ok:
            ok[col] = float("nan")
        ok[col] = pd.to_numeric(ok[col], errors="coerce")
    per_setting = (ok.groupby([*_POINT, "impl", "device", "params"], dropna=False)
                   .agg(time_s=("time_median_s", "median"), transfer_s=("transfer_s", "median"),
                        gflops=("gflops", "median"), peak_fraction=("peak_fraction", "median"),
                        cells=("time_median_s", "size"))
                   .reset_index())
    best = (per_setting.sort_values("time_s", kind="mergesort")
            .drop_duplicates([*_POINT, "impl"]))
    cpu = (best[best["device"] != "gpu"].drop_duplicates(_POINT)[[*_POINT, "impl", "time_s",
                                                                  "gflops"]]
           .rename(columns={"impl": "cpu_impl", "time_s": "cpu_time_s", "gflops": "cpu_gflops"}))
    out = best[best["device"] == "gpu"].merge(cpu, on=_POINT, how="left")
    out["speedup"] = out["cpu_time_s"] / out["time_s"]
    out["speedup_with_transfer"] = out["cpu_time_s"] / (out["time_s"] + out["transfer_s"])
    out = out.sort_values([*_POINT, "impl"], kind="mergesort")
    return out[_TABLE].reset_index(drop=True)


def crossover(sizes, gpu_times, cpu_times) -> tuple[int | None, bool, int]:
    """The size from which the GPU is faster at every larger size compared.

    Parameters
    ----------
    sizes, gpu_times, cpu_times : sequences of equal length
        One entry per size (any order); a size where either time is missing or
        not finite is left out.

    Returns
    -------
    (n, every, compared)
        ``n`` the crossover size (None when the GPU is not faster at the
        largest size compared, or nothing was compared), ``every`` True when
        the GPU is faster at every size compared (``n`` is then the smallest:
        the crossover lies at or below it), ``compared`` the number of sizes.
    """
    pairs = sorted((int(n), float(g), float(c))
                   for n, g, c in zip(sizes, gpu_times, cpu_times, strict=True)
                   if _finite(g) and _finite(c))
    if not pairs or not pairs[-1][1] < pairs[-1][2]:
        return None, False, len(pairs)
    i = len(pairs) - 1
    while i > 0 and pairs[i - 1][1] < pairs[i - 1][2]:
        i -= 1
    return pairs[i][0], i == 0, len(pairs)


def crossovers(table: pd.DataFrame) -> pd.DataFrame:
    """Per (run_id, op, dtype, GPU impl) of a :func:`gpu_table`: its crossover size
    on kernel time (``crossover_n``, ``crossover_all``) and on kernel plus transfer
    time (``crossover_transfer_n``, ``crossover_transfer_all``), the number of
    sizes ``compared`` and the ``largest_n`` compared."""
    rows = []
    for (run_id, op, dtype, impl), g in table.groupby(["run_id", "op", "dtype", "impl"],
                                                      sort=True):
        kernel = crossover(g["n"], g["time_s"], g["cpu_time_s"])
        total = crossover(g["n"], g["time_s"] + g["transfer_s"], g["cpu_time_s"])
        both = g[g["time_s"].notna() & g["cpu_time_s"].notna()]
        rows.append({"run_id": run_id, "op": op, "dtype": dtype, "impl": impl,
                     "compared": kernel[2], "crossover_n": kernel[0], "crossover_all": kernel[1],
                     "crossover_transfer_n": total[0], "crossover_transfer_all": total[1],
                     "largest_n": int(both["n"].max()) if len(both) else None})
    return pd.DataFrame(rows, columns=_CROSS)


def _crossover_text(n, every, largest) -> str:
    if n is None:
        return f"not up to n = {largest}" if largest is not None else "nothing to compare"
    return f"n \u2264 {n} (wins at every size)" if every else f"n = {n}"


def gpu_section(cells: pd.DataFrame, names: Mapping[int, str]) -> list[dict]:
    """The report's "CPU and GPU" tables: one per (run, op, dtype) with GPU cells.

    Each has ``sizes`` (column heads), ``cpu`` (the fastest CPU impl's entry
    per size: time, impl, GFLOP/s) and ``rows``, one per GPU impl, with an
    entry per size (time, transfer, GFLOP/s and fraction of the GPU's GEMM
    ceiling, speedup over the CPU without and with transfer, ``win`` flags)
    and its two crossovers as text.  Empty when no run has GPU cells.
    """
    table = gpu_table(cells)
    if table.empty:
        return []
    cross = crossovers(table).set_index(["run_id", "op", "dtype", "impl"])
    out = []
    for (run_id, op, dtype), t in table.groupby(["run_id", "op", "dtype"], sort=False):
        sizes = sorted(set(zip(t["m"], t["n"], strict=True)), key=lambda s: (s[1], s[0]))
        cpu = []
        for m, n in sizes:
            hit = t[(t["m"] == m) & (t["n"] == n) & t["cpu_time_s"].notna()]
            cpu.append(None if hit.empty else {
                "time": _fmt_time(hit["cpu_time_s"].iloc[0], _UNITS),
                "impl": hit["cpu_impl"].iloc[0],
                "gflops": _fmt_rate(hit["cpu_gflops"].iloc[0])})
        rows = []
        for impl, g in t.groupby("impl", sort=True):
            c = cross.loc[(run_id, op, dtype, impl)]
            entries = []
            for m, n in sizes:
                hit = g[(g["m"] == m) & (g["n"] == n)]
                entries.append(_entry(hit.iloc[0]) if len(hit) else None)
            rows.append({
                "impl": impl, "entries": entries,
                "crossover": _crossover_text(_int(c["crossover_n"]), bool(c["crossover_all"]),
                                             _int(c["largest_n"])),
                "crossover_transfer": _crossover_text(_int(c["crossover_transfer_n"]),
                                                      bool(c["crossover_transfer_all"]),
                                                      _int(c["largest_n"])),
            })
        out.append({"run": names.get(int(run_id), f"run {run_id}"), "op": op, "dtype": dtype,
                    "sizes": [_size(m, n) for m, n in sizes],
                    "cpu": cpu, "rows": rows})
    return out


def gpu_text(gpu: Mapping) -> str:
    """One GPU of a machine fingerprint as a line: ``"NVIDIA H100 80GB HBM3 (79.1 GiB,
    compute 9.0, driver 13.0, CUDA 13.0)"``."""
    mem = gpu.get("memory_bytes")
    parts = [f"{mem / 2**30:.1f} GiB" if _finite(mem) else None,
             f"compute {gpu['compute_capability']}" if gpu.get("compute_capability") else None,
             f"driver {gpu['driver']}" if gpu.get("driver") else None,
             f"CUDA {gpu['cuda_runtime']}" if gpu.get("cuda_runtime") else None]
    detail = ", ".join(p for p in parts if p)
    name = str(gpu.get("name") or "unknown GPU")
    return f"{name} ({detail})" if detail else name


def _entry(r) -> dict:
    return {
        "time": _fmt_time(r["time_s"], _UNITS),
        "transfer": _fmt_time(r["transfer_s"], _UNITS),
        "gflops": _fmt_rate(r["gflops"]),
        "peak": f"{r['peak_fraction']:.0%}" if _finite(r["peak_fraction"]) else "",
        "speedup": _fmt_speedup(r["speedup"]),
        "speedup_transfer": _fmt_speedup(r["speedup_with_transfer"]),
        "win": bool(_finite(r["speedup"]) and r["speedup"] > 1),
        "win_transfer": bool(_finite(r["speedup_with_transfer"])
                             and r["speedup_with_transfer"] > 1),
        "params": r["params"],
    }


def _size(m, n) -> str:
    m, n = _int(m), _int(n)
    return str(n) if m is None or m == n else f"{m}\u00d7{n}"


def _fmt_rate(x) -> str:
    return f"{float(x):.1f} GFLOP/s" if _finite(x) else ""


def _fmt_speedup(x) -> str:
    return f"\u00d7{_fmt_g(x, 2)}" if _finite(x) else _DASH


def _int(x) -> int | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else int(x)
