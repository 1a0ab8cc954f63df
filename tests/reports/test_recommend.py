import math

import pandas as pd
import pytest

from factorbench.reports.recommend import (
    NoData,
    format_recommendation,
    recommend,
    recommendation_grid,
)


def _cell(impl, n, kappa, *, t, bwd=0.5, kind="randsvd", dtype="float64", status="ok",
          fwd=1.0, message=None, op="solve"):
    return {
        "run_id": 1, "op": op, "impl": impl, "dtype": dtype, "kind": kind, "m": n, "n": n,
        "kappa": kappa, "status": status, "message": message, "params_json": "{}",
        "time_median_s": t, "time_ci_low_s": t * 0.98, "time_ci_high_s": t * 1.02,
        "backward_ratio": bwd, "orthogonality_ratio": math.nan, "kappa_scaled_error": fwd,
        "lowrank_error_ratio": math.nan, "nan_columns": None,
    }


@pytest.fixture
def cells():
    rows = []
    for n in (64, 256, 1024):
        for kappa in (1.0, 1e8, 1e16):
            rows.append(_cell("solve/gesv", n, kappa, t=1e-9 * n**3))
            rows.append(_cell("solve/lu", n, kappa, t=3e-9 * n**3))
            # fast but unstable at high kappa
            rows.append(_cell("solve/inv", n, kappa, t=0.5e-9 * n**3,
                              bwd=0.5 * kappa ** 0.5,
                              status="ok" if kappa ** 0.5 * 0.5 < 30 else "failed"))
            # only measured on SPD matrices
            rows.append(_cell("solve/posv", n, kappa, t=0.4e-9 * n**3, kind="spd"))
            rows.append(_cell("solve/gesv", n, kappa, t=1e-9 * n**3, kind="spd"))
            rows.append(_cell("solve/lu", n, kappa, t=3e-9 * n**3, kind="spd"))
        rows.append(_cell("solve/lu", n, math.nan, t=3e-9 * n**3, kind="gaussian"))
    return pd.DataFrame(rows)


def test_fastest_qualifying_impl_wins(cells):
    rec = recommend(cells, op="solve", n=256, kappa=1.0, kind="randsvd")
    # inv is the fastest general solver at kappa = 1 and is accurate there
    assert rec.best.impl == "solve/inv"
    assert [c.impl for c in rec.ranked] == ["solve/inv", "solve/gesv", "solve/lu"]
    assert rec.margin == pytest.approx(2.0)
    assert rec.clear


def test_unstable_impl_is_excluded_with_its_ratio(cells):
    rec = recommend(cells, op="solve", n=256, kappa=1e16)
    assert rec.best.impl == "solve/gesv"
    reasons = {c.impl: c.reason for c in rec.excluded}
    assert "backward_ratio 5e+07 >= 30" in reasons["solve/inv"]


def test_structure_restricted_impl_needs_its_family(cells):
    pooled = recommend(cells, op="solve", n=256, kappa=1e8)
    reasons = {c.impl: c.reason for c in pooled.excluded}
    assert reasons["solve/posv"].startswith("ran only on spd")
    spd = recommend(cells, op="solve", n=256, kappa=1e8, kind="spd")
    assert spd.best.impl == "solve/posv"


def test_nearest_point_and_distance_limit(cells):
    rec = recommend(cells, op="solve", n=300, kappa=3e7)
    assert rec.n_used == 256 and rec.kappa_used == 1e8
    with pytest.raises(NoData, match="nearest 1024 is 9.77x away"):
        recommend(cells, op="solve", n=10_000)
    with pytest.raises(NoData, match="no qr cells"):
        recommend(cells, op="qr", n=64)
    with pytest.raises(NoData, match="dtypes present: float64"):
        recommend(cells, op="solve", n=64, dtype="float32")


def test_bound_is_applied(cells):
    # a looser bound lets inv through at kappa 1e8 (ratio 5e3)
    assert recommend(cells, op="solve", n=64, kappa=1e8, kind="randsvd").best.impl == "solve/gesv"
    loose = recommend(cells, op="solve", n=64, kappa=1e8, kind="randsvd", max_backward_ratio=1e4)
    assert loose.best.impl == "solve/inv"
    strict = recommend(cells, op="solve", n=64, kappa=1.0, max_backward_ratio=0.1)
    assert strict.best is None and "no implementation" in strict.summary()


def test_errors_disqualify(cells):
    bad = cells.copy()
    hit = (bad["impl"] == "solve/gesv") & (bad["n"] == 64) & (bad["kappa"] == 1.0) & (
        bad["kind"] == "randsvd")
    bad.loc[hit, ["status", "message"]] = ["error", "LinAlgError: singular matrix\ntrace"]
    rec = recommend(bad, op="solve", n=64, kappa=1.0)
    reasons = {c.impl: c.reason for c in rec.excluded}
    assert reasons["solve/gesv"] == "error (randsvd, kappa 1e+00): LinAlgError: singular matrix"


def test_without_kappa_takes_every_family(cells):
    rec = recommend(cells, op="solve", n=64)
    assert rec.kappa_used is None
    # only lu ran on the gaussian family as well
    assert rec.best.impl == "solve/lu"


def test_grid_agrees_with_recommend(cells):
    sizes, kappas, answers = recommendation_grid(cells, op="solve", dtype="float64")
    assert sizes == [64, 256, 1024] and kappas == [1.0, 1e8, 1e16, None]
    for (n, kappa), rec in answers.items():
        direct = recommend(cells, op="solve", n=n, kappa=kappa)
        assert rec.best == direct.best


def test_format_names_the_point_and_exclusions(cells):
    text = format_recommendation(recommend(cells, op="solve", n=300, kappa=1e16),
                                 run={"run_id": 1, "label": "nightly", "host": "box"})
    assert "n=300 -> 256" in text and "run 1 (nightly, box)" in text
    assert "recommendation: solve/gesv, 3.00x faster than solve/lu (clear)" in text
    assert "excluded:" in text and "solve/inv" in text


def test_bad_point_raises_value_error(cells):
    with pytest.raises(ValueError):
        recommend(cells, op="solve", n=0)
    with pytest.raises(ValueError):
        recommend(cells, op="solve", n=64, kappa=0.5)


def test_clear_needs_disjoint_intervals_on_every_shared_matrix(cells):
    rec = recommend(cells, op="solve", n=64, kappa=1e16, kind="randsvd")
    assert rec.best.impl == "solve/gesv" and rec.clear
    # the runner-up's interval on one shared matrix reaches below the winner's
    close = cells.copy()
    hit = (close["impl"] == "solve/lu") & (close["n"] == 64) & (close["kappa"] == 1e16) & (
        close["kind"] == "randsvd")
    close.loc[hit, "time_ci_low_s"] = 1e-12
    rec = recommend(close, op="solve", n=64, kappa=1e16, kind="randsvd")
    assert rec.best.impl == "solve/gesv" and not rec.clear
    assert "within timing noise" in rec.summary()
