import hashlib
import multiprocessing as mp
import sqlite3
import time

import pytest

from factorbench.store import SCHEMA_VERSION, Store, StoreError


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record(key, **kw):
    rec = {"cell_key": key, "op": "lu", "impl": "lu/x", "status": "ok", "n": 8,
           "backward_ratio": 0.5, "passed": True}
    rec.update(kw)
    return rec


def test_roundtrip(db):
    with Store(db) as s:
        rid = s.begin_run(label="t", spec={"a": 1}, machine={"host": "h"}, gemm={"float64": 1.0})
        s.write_cell(rid, _record("k1"))
        s.write_cell(rid, _record("k2", status="failed", passed=False, backward_ratio=float("nan")))
        s.write_cell(rid, _record("k1", status="error"))  # same key: kept once
        assert s.done_keys(rid) == {"k1", "k2"}
        s.finish_run(rid, "complete")
        df = s.cells([rid])
        assert list(df["cell_key"]) == ["k1", "k2"]
        assert df.loc[0, "status"] == "ok"
        assert df.loc[1, "backward_ratio"] != df.loc[1, "backward_ratio"]  # NaN stored as NULL
        runs = s.runs()
        assert runs.loc[0, "status"] == "complete" and runs.loc[0, "ok"] == 1
    with Store(db, readonly=True) as s:
        assert s.run()["run_id"] == rid
        with pytest.raises(StoreError, match="read-only"):
            s.write_cell(rid, _record("k3"))


def test_missing_file_readonly(tmp_path):
    with pytest.raises(StoreError, match="no such database"):
        Store(tmp_path / "nope.sqlite", readonly=True)


def test_unknown_run(db):
    with Store(db) as s, pytest.raises(StoreError, match="no run 7"):
        s.run(7)


def _valid_db(path):
    with Store(path) as s:
        rid = s.begin_run(label="x")
        for i in range(200):
            s.write_cell(rid, _record(f"k{i}", message="m" * 200))
        s.finish_run(rid, "complete")
    # fold the WAL back so the main file is complete on its own
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "newer", "foreign", "header"])
def test_bad_files_refused_and_untouched(tmp_path, damage):
    path = tmp_path / "bad.sqlite"
    if damage == "garbage":
        path.write_bytes(b"this is not a database\n" * 100)
    elif damage == "foreign":
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE t (x)")
        con.commit()
        con.close()
    else:
        _valid_db(path)
        data = path.read_bytes()
        if damage == "truncated":
            path.write_bytes(data[: len(data) // 2])
        elif damage == "header":
            path.write_bytes(data[:100] + b"\xff" * 4000 + data[4100:])
        else:
            con = sqlite3.connect(path)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
            con.commit()
            con.close()
    before = _digest(path)
    for readonly in (False, True):
        with pytest.raises(StoreError) as exc:
            Store(path, readonly=readonly)
        msg = str(exc.value)
        assert str(path) in msg and "\n" not in msg
    assert _digest(path) == before
    assert not (tmp_path / "bad.sqlite-wal").exists()


def _writer(path, label, n):
    s = Store(path)
    rid = s.begin_run(label=label)
    for i in range(n):
        s.write_cell(rid, _record(f"{label}-{i}"))
    s.finish_run(rid, "complete")
    s.close()


def test_two_writers(db):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(db), f"w{j}", 150)) for j in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with Store(db, readonly=True) as s:
        runs = s.runs()
        assert sorted(runs["label"]) == ["w0", "w1"]
        assert (runs["ok"] == 150).all() and (runs["status"] == "complete").all()
        con = sqlite3.connect(db)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()


def test_nan_is_distinguished_from_missing(db):
    with Store(db) as s:
        rid = s.begin_run()
        s.write_cell(rid, _record("k", status="failed", backward_ratio=float("nan"),
                                  backward_error=float("inf"), passed=False))
        row = s.cells([rid]).iloc[0]
    assert row["nan_columns"] == "backward_ratio"
    assert row["backward_error"] == float("inf")
    assert row["orthogonality_ratio"] is None or row["orthogonality_ratio"] != row[
        "orthogonality_ratio"]  # NULL: not computed, and not listed as NaN


def _open_and_write(path, label, go):
    go.wait(60)  # every process opens the new file at the same instant
    _writer(path, label, 3)


def test_many_runs_opening_one_new_file_at_once(tmp_path):
    """Creating the file races: the switch to WAL takes an exclusive lock and
    SQLite does not call the busy handler for it, so it is retried."""
    ctx = mp.get_context("spawn")
    for trial in range(6):
        path = str(tmp_path / f"new-{trial}.sqlite")
        go = ctx.Event()
        procs = [ctx.Process(target=_open_and_write, args=(path, f"w{j}", go))
                 for j in range(4)]
        for p in procs:
            p.start()
        time.sleep(1.0)  # let the interpreters start and reach the barrier
        go.set()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0], trial
        with Store(path, readonly=True) as s:
            assert sorted(s.runs()["label"]) == ["w0", "w1", "w2", "w3"]


def _as_version_1(path):
    """Turn a current file into what schema version 1 wrote: none of the later columns."""
    con = sqlite3.connect(path)
    for column in ("lowrank_spectral_ratio", "residual", "eta", "iterations", "converged",
                   "transfer_s"):
        con.execute(f"ALTER TABLE cells DROP COLUMN {column}")
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()


def test_older_schema_is_read_as_is_and_upgraded_on_write(db):
    with Store(db) as s:
        rid = s.begin_run(label="old")
        s.write_cell(rid, _record("k1"))
        s.finish_run(rid, "complete")
    _as_version_1(db)
    before = _digest(db)
    with Store(db, readonly=True) as s:
        df = s.cells([rid])
    assert _digest(db) == before  # read-only: never modified
    assert df["lowrank_spectral_ratio"].isna().all() and df["backward_ratio"][0] == 0.5
    with Store(db) as s:  # opened for writing: upgraded in place, nothing lost
        s.write_cell(rid, _record("k2", op="lowrank", lowrank_spectral_ratio=1.25))
        df = s.cells([rid])
    assert list(df["cell_key"]) == ["k1", "k2"]
    assert df["lowrank_spectral_ratio"].tolist()[1] == 1.25
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    con.close()


def test_version_4_gains_transfer_s_in_place(db):
    """Schema 5 added ``transfer_s`` (a GPU cell's host-device copies): a version-4
    file reads as it is (the column missing), and opened for writing gains the
    column in place with every stored cell kept."""
    with Store(db) as s:
        rid = s.begin_run(label="v4")
        s.write_cell(rid, _record("k1"))
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE cells DROP COLUMN transfer_s")
    con.execute("PRAGMA user_version = 4")
    con.commit()
    con.close()
    before = _digest(db)
    with Store(db, readonly=True) as s:
        df = s.cells([rid])
    assert _digest(db) == before and df["transfer_s"].isna().all()
    with Store(db) as s:
        s.write_cell(rid, _record("k2", transfer_s=0.25))
        df = s.cells([rid])
    assert list(df["cell_key"]) == ["k1", "k2"]
    assert df["transfer_s"].isna().tolist() == [True, False] and df["transfer_s"][1] == 0.25
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 5
    con.close()
