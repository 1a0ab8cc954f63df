"""Small helpers shared by the report, the comparison and the recommender."""

from __future__ import annotations

import json
import math

import pandas as pd


def loads(text, default):
    """JSON text (or an already-decoded dict/list) as a value; ``default`` on failure."""
    if isinstance(text, dict | list):
        return text
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def params_text(params_json) -> str:
    """``name=value`` pairs of an impl's parameters, sorted by name."""
    params = loads(params_json, None)
    if params is None:
        return "" if params_json is None or params_json != params_json else str(params_json)
    if isinstance(params, dict):
        return ",".join(f"{k}={params[k]}" for k in sorted(params))
    return str(params)


def variants(cells: pd.DataFrame) -> pd.Series:
    """Impl id, suffixed with its parameters when an impl ran with several.

    Parameters
    ----------
    cells : pandas.DataFrame
        Columns ``impl`` and, optionally, ``params_json``, and ``host``,
        ``run_id`` and ``time_median_s``.

    Returns
    -------
    pandas.Series of str
        ``lu/blocked[nb=64]`` where ``lu/blocked`` ran with several block
        sizes, plain ``lu/lapack`` otherwise; ``lu/lapack@node2`` for the
        timed cells of a run whose cells were timed on several hosts (a
        cluster), so that no series mixes two hosts' timings.
    """
    if "params_json" not in cells:
        out = cells["impl"].astype(str)
    else:
        params = cells["params_json"].map(params_text)
        distinct = params.groupby(cells["impl"]).transform("nunique")
        suffixed = cells["impl"] + "[" + params + "]"
        out = suffixed.where((distinct > 1) & (params != ""), cells["impl"])
    if "host" in cells and "run_id" in cells and "time_median_s" in cells:
        # a run whose cells were timed on several hosts (a cluster): each
        # host's timings are their own series; cells without a timing (skipped,
        # errors, accuracy-only runs) keep the plain name
        timed = cells["time_median_s"].notna() & cells["host"].notna()
        hosts = cells["host"].where(timed)
        spread = timed & (hosts.groupby(cells["run_id"]).transform("nunique") > 1)
        out = out.where(~spread, out + "@" + hosts.astype(str))
    return out
