"""Series labels shared by the report, the comparison and the recommender."""

import pandas as pd

from factorbench.reports._frames import variants


def test_parameters_suffix_only_impls_swept_over_several_values():
    cells = pd.DataFrame({"impl": ["lu/blocked", "lu/blocked", "lu/lapack"],
                          "params_json": ['{"block": 32}', '{"block": 64}', "{}"]})
    assert list(variants(cells)) == ["lu/blocked[block=32]", "lu/blocked[block=64]",
                                     "lu/lapack"]


def test_a_run_spread_over_hosts_gets_one_series_per_host():
    cells = pd.DataFrame({
        "impl": ["lu/lapack"] * 6, "params_json": ["{}"] * 6, "run_id": [1, 1, 1, 2, 2, 3],
        "host": ["n1", "n2", "client", "laptop", "laptop", "client"],
        "time_median_s": [0.1, 0.2, None, 0.1, 0.1, None],
    })
    # run 1 was timed on a cluster (two hosts; its skipped cell, recorded on the
    # client, has no timing and keeps the plain name); run 2 on one machine
    # keeps its plain name, as does an accuracy-only run 3
    assert list(variants(cells)) == ["lu/lapack@n1", "lu/lapack@n2", "lu/lapack", "lu/lapack",
                                     "lu/lapack", "lu/lapack"]
