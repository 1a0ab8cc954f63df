import pytest

from factorbench.spec import SpecError, SweepSpec
from factorbench.sweep import expand


def _spec(**kw):
    base = dict(ops=["lu", "cholesky", "solve", "lowrank"], sizes=[16, 32], kappas=[1e2, 1e6],
                dtypes=["float64", "float32"], impls=["lapack", "gesv", "posv", "gesdd"])
    base.update(kw)
    return SweepSpec(**base)


def test_keys_unique_and_stable():
    a, b = expand(_spec()), expand(_spec())
    keys = [c["key"] for c in a]
    assert len(keys) == len(set(keys))
    assert keys == [c["key"] for c in b]
    assert [c["matrix_seed"] for c in a] == [c["matrix_seed"] for c in b]
    assert [c["n"] for c in a] == sorted(c["n"] for c in a)  # small sizes first


def test_base_seed_changes_keys_and_matrices():
    a, b = expand(_spec()), expand(_spec(base_seed=1))
    assert not {c["key"] for c in a} & {c["key"] for c in b}


def test_impls_of_one_op_share_matrices():
    cells = expand(_spec(ops=["solve"], impls=["gesv", "posv"], kinds=["spd"]))
    groups = {}
    for c in cells:
        groups.setdefault((c["n"], c["kappa"], c["dtype"]), set()).add(c["matrix_seed"])
    assert all(len(s) == 1 for s in groups.values())


def test_default_kinds_only_compatible():
    cells = expand(_spec())
    assert {(c["op"], c["kind"]) for c in cells if c["impl"] == "solve/posv"} == {("solve", "spd")}
    assert all(c["resolved"] is None for c in cells)
    assert {c["kind"] for c in cells if c["op"] == "cholesky"} == {"spd"}
    # kinds without a kappa axis expand once, not once per kappa
    wilk = [c for c in cells if c["kind"] == "wilkinson"]
    assert wilk and all(c["kappa"] is None for c in wilk)
    assert len(wilk) == 2 * 2  # sizes x dtypes


def test_explicit_incompatible_kind_is_skipped_with_reason():
    cells = expand(_spec(ops=["cholesky"], kinds=["randsvd"], impls=["lapack"]))
    assert cells and all(c["resolved"][0] == "skipped" for c in cells)
    assert "needs spd input" in cells[0]["resolved"][1]


def test_max_n_and_override():
    from factorbench.impls import get

    cap = get("lu/gepp").max_n
    cells = expand(SweepSpec(ops=["lu"], impls=["gepp"], sizes=[cap * 2], kappas=[10.0],
                             kinds=["randsvd"], dtypes=["float64"]))
    assert cells[0]["resolved"][0] == "skipped" and "max_n" in cells[0]["resolved"][1]
    cells = expand(SweepSpec(ops=["lu"], impls=["gepp"], sizes=[cap * 2], kappas=[10.0],
                             kinds=["randsvd"], dtypes=["float64"], max_n=cap * 2))
    assert cells[0]["resolved"] is None


def test_lowrank_rank_and_shape():
    cells = expand(_spec(ops=["lowrank"], impls=["gesdd"], sizes=[40], rank=5, aspect=2))
    # spd (for Nystrom) is square whatever the aspect
    assert {(c["kind"], c["m"], c["n"], c["rank"]) for c in cells} == {
        ("lowrank", 80, 40, 5), ("randsvd", 80, 40, 5), ("spd", 40, 40, 5)}


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"impls": ["lapak"]}, "did you mean"),
        ({"ops": ["lu"], "impls": ["solve/gesv"]}, "not of the selected ops"),
        ({"kinds": ["randsvd:9"]}, "1..5"),
        ({"params": {"blok": [1]}}, "not a parameter"),
    ],
)
def test_bad_selection(kw, match):
    with pytest.raises(SpecError, match=match):
        expand(_spec(**kw))


def test_rank_above_min_dimension_is_recorded_as_skipped():
    cells = expand(_spec(ops=["lowrank"], impls=["gesdd"], sizes=[4], rank=8,
                         kinds=["randsvd"]))
    assert cells and all(c["resolved"][0] == "skipped" for c in cells)
    assert "rank 8 exceeds" in cells[0]["resolved"][1]


def _stored_run(db, **fields):
    from factorbench.store import Store

    s = Store(db)
    rid = s.begin_run(spec=_spec(sizes=[8], ops=["lu"], impls=["lapack"]).to_json(), gemm={})
    s.set_run(rid, **fields)
    return s, rid


def test_resume_refuses_a_live_run_and_another_host(db):
    import subprocess
    import sys

    from factorbench.sweep import run_sweep

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)",
                             "factorbench"])
    try:
        s, rid = _stored_run(db, status="running", pid=live.pid)
        with pytest.raises(SpecError, match="still running"):
            run_sweep(None, s, resume=rid)
    finally:
        live.kill()
        live.wait()
    s.set_run(rid, host="elsewhere")
    with pytest.raises(SpecError, match="mix two machines"):
        run_sweep(None, s, resume=rid)


def test_resume_of_a_complete_run_changes_nothing(db):
    from factorbench.sweep import run_sweep

    s, rid = _stored_run(db, status="complete", finished_at="2026-01-01T00:00:00+00:00")
    assert run_sweep(None, s, resume=rid) == (rid, {})
    assert s.run(rid)["finished_at"] == "2026-01-01T00:00:00+00:00"


def test_per_op_fields_shape_each_op_in_one_run():
    spec = _spec(ops=["lowrank", "lstsq"], impls=["gesdd", "gels"], sizes=[16],
                 kappas=[1e2], dtypes=["float64"],
                 per_op={"lowrank": {"sizes": [40], "aspect": 2.0, "rank": 5,
                                     "kinds": ["polydecay"]},
                         "lstsq": {"aspect": 10.0, "kappas": [1e4, 1e10]}})
    cells = expand(spec)
    low = [c for c in cells if c["op"] == "lowrank"]
    ls = [c for c in cells if c["op"] == "lstsq"]
    assert {(c["m"], c["n"], c["rank"], c["kind"]) for c in low} == {(80, 40, 5, "polydecay")}
    assert {(c["m"], c["n"], c["kappa"]) for c in ls} == {(160, 16, 1e4), (160, 16, 1e10)}
    assert [c["n"] for c in cells] == sorted(c["n"] for c in cells)
    with pytest.raises(SpecError, match="cannot vary by op"):
        expand(_spec(per_op={"lu": {"dtypes": ["float32"]}}))
    with pytest.raises(SpecError, match="unknown op"):
        expand(_spec(per_op={"lux": {"sizes": [8]}}))
    with pytest.raises(SpecError, match="sizes must be positive"):
        expand(_spec(per_op={"lu": {"sizes": [0]}}))


def test_residual_keys_only_least_squares_cells_and_only_when_set():
    base = dict(ops=["lstsq", "lu"], impls=["gels", "lapack"], sizes=[16], kappas=[1e2],
                dtypes=["float64"])
    plain, zero, res = (expand(_spec(**base)), expand(_spec(residual=0.0, **base)),
                        expand(_spec(residual=1e-6, **base)))
    key = {c["impl"]: c["key"] for c in plain}
    assert key == {c["impl"]: c["key"] for c in zero}  # consistent problems: same keys
    changed = {c["impl"]: c["key"] != key[c["impl"]] for c in res}
    assert changed == {"lstsq/gels": True, "lu/lapack": False}
    assert [c.get("residual") for c in res if c["op"] == "lstsq"] == [1e-6]
