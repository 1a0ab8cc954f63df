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
        "impl": ["lu/lapack"] * 4, "params_json": ["{}"] * 4, "run_id": [1, 1, 2, 2],
        "host": ["n1", "n2", "laptop", "laptop"],
    })
    # run 1 ran on a cluster (two hosts); run 2 on one machine keeps its plain name
    assert list(variants(cells)) == ["lu/lapack@n1", "lu/lapack@n2", "lu/lapack", "lu/lapack"]
