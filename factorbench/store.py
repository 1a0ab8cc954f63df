"""SQLite results store (design section 7).

One file holds every run.  It is written by one process at a time (the
sweep's parent; workers only return records), in WAL mode, one transaction
per finished cell, so a run killed at any moment keeps every cell it had
finished and ``--resume`` continues exactly where it stopped.

A file that is not a factorbench database (garbage, truncated, another
program's SQLite file) or that carries a newer schema version is refused with
a one-line :class:`StoreError` naming the file, and is never modified: it is
inspected through a read-only connection before any write is attempted.

Schema versions only ever add columns.  A file of an older version is read as
it is (the columns it lacks read as missing values) and is upgraded in place,
in one transaction, the first time it is opened for writing: version 2 added
``lowrank_spectral_ratio``, version 3 ``residual`` and ``eta`` (a
least-squares right-hand side's residual as asked, ||r|| / ||A x||, and
||r|| / (||A||_2 ||x||), the eta of the forward-error scaling), version 4
``iterations`` and ``converged`` (of iterative methods: refinement steps,
LSQR iterations), version 5 ``transfer_s`` (a GPU cell's host-to-device copy of
its inputs plus the device-to-host copy of its outputs, kept out of the kernel
time).
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from factorbench.accuracy.metrics import METRIC_COLUMNS

__all__ = [
    "SCHEMA_VERSION",
    "CELL_COLUMNS",
    "RUN_COLUMNS",
    "Store",
    "STATUSES",
    "StoreError",
    "default_db_path",
]

SCHEMA_VERSION = 5
_APP_ID = 0x46425348  # "FBSH": marks the file as ours (PRAGMA application_id)

RUN_COLUMNS = {
    "run_id": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "label": "TEXT",
    "created_at": "TEXT NOT NULL",
    "finished_at": "TEXT",
    "status": "TEXT NOT NULL",
    "argv": "TEXT",
    "spec_json": "TEXT",
    "machine_json": "TEXT",
    "versions_json": "TEXT",
    "gemm_gflops_json": "TEXT",
    "git_commit": "TEXT",
    "host": "TEXT",
    "pid": "INTEGER",
}

CELL_COLUMNS = {
    "run_id": "INTEGER NOT NULL REFERENCES runs(run_id)",
    "cell_key": "TEXT NOT NULL",
    "op": "TEXT NOT NULL",
    "impl": "TEXT NOT NULL",
    "backend": "TEXT",
    "family": "TEXT",
    "device": "TEXT",
    "stable": "INTEGER",
    "kind": "TEXT",
    "mode": "INTEGER",
    "m": "INTEGER",
    "n": "INTEGER",
    "rank": "INTEGER",
    "kappa": "REAL",
    "kappa_actual": "REAL",
    "residual": "REAL",
    "eta": "REAL",
    "dtype": "TEXT",
    "unit_roundoff": "REAL",
    "seed": "INTEGER",
    "params_json": "TEXT",
    "status": "TEXT NOT NULL",
    "message": "TEXT",
    "time_median_s": "REAL",
    "time_min_s": "REAL",
    "time_ci_low_s": "REAL",
    "time_ci_high_s": "REAL",
    "time_iqr_s": "REAL",
    "samples_json": "TEXT",
    "repeats": "INTEGER",
    "first_call_s": "REAL",
    "transfer_s": "REAL",
    "unstable": "INTEGER",
    "concurrent": "INTEGER",
    "threads": "INTEGER",
    "gflops": "REAL",
    "peak_fraction": "REAL",
    **{c: ("INTEGER" if c in ("rank_revealed", "numerical_rank") else "REAL")
       for c in METRIC_COLUMNS},
    "iterations": "INTEGER",
    "converged": "INTEGER",
    "passed": "INTEGER",
    "nan_columns": "TEXT",
    "host": "TEXT",
    "started_at": "TEXT",
    "finished_at": "TEXT",
}

STATUSES = ("ok", "failed", "error", "crashed", "timeout", "skipped", "unavailable")


class StoreError(RuntimeError):
    """The database cannot be used; the message is one line naming the file."""


def default_db_path() -> Path:
    """``$FACTORBENCH_DB`` or ``results/factorbench.sqlite``."""
    return Path(os.environ.get("FACTORBENCH_DB", "results/factorbench.sqlite"))


def now() -> str:
    """UTC timestamp, ISO 8601 with seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _schema_sql() -> str:
    runs = ",\n  ".join(f"{k} {v}" for k, v in RUN_COLUMNS.items())
    cells = ",\n  ".join(f"{k} {v}" for k, v in CELL_COLUMNS.items())
    return f"""
CREATE TABLE IF NOT EXISTS runs (
  {runs}
);
CREATE TABLE IF NOT EXISTS cells (
  {cells},
  UNIQUE (run_id, cell_key)
);
CREATE INDEX IF NOT EXISTS cells_by_op ON cells (run_id, op, impl);
"""


def _check_existing(path: Path) -> None:
    """Validate an existing file read-only; raise StoreError, never modify it."""
    if path.stat().st_size == 0:
        return
    with open(path, "rb") as fh:
        header = fh.read(16)
    if header != b"SQLite format 3\x00":
        raise StoreError(f"{path}: not a factorbench database (not an SQLite file)")
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open database: {exc}") from None
    try:
        check = con.execute("PRAGMA quick_check").fetchone()
        if not check or check[0] != "ok":
            raise StoreError(f"{path}: database is corrupt ({check[0] if check else 'no answer'})")
        app_id = con.execute("PRAGMA application_id").fetchone()[0]
        version = con.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: database is corrupt or unreadable ({exc})") from None
    finally:
        con.close()
    if not tables:
        return
    if app_id != _APP_ID or not {"runs", "cells"} <= tables:
        raise StoreError(f"{path}: an SQLite file, but not a factorbench database")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: schema version {version} is newer than this factorbench "
            f"understands ({SCHEMA_VERSION}); upgrade factorbench"
        )
    if version < 1:
        raise StoreError(f"{path}: schema version {version} predates factorbench's first")


def _jsonable(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()  # numpy scalars
        if isinstance(v, float) and math.isnan(v):
            return None
    if isinstance(v, bool):
        return int(v)
    return v


class Store:
    """The results database.

    Parameters
    ----------
    path : path-like
        The SQLite file; created (with its folder) when missing.
    readonly : bool
        Open for reading only: the file must exist and is never written.

    Raises
    ------
    StoreError
        Missing (read-only), corrupt, foreign or newer-schema file.
    """

    def __init__(self, path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a directory, not a database file")
        if self.path.exists():
            _check_existing(self.path)
        elif readonly:
            raise StoreError(f"{self.path}: no such database (run 'factorbench run' first)")
        if readonly:
            self._con = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30
            )
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self._con.execute("PRAGMA busy_timeout = 60000")
            self._retry_locked(lambda: self._con.execute("PRAGMA journal_mode = WAL"))
            self._con.execute("PRAGMA synchronous = NORMAL")
            self._init_schema()

    def _retry_locked(self, fn, retries: int = 20):
        """``fn()``, retried while another process holds the lock.

        Switching a new file to WAL needs an exclusive lock, and SQLite does
        not call the busy handler for it: two runs opening one new database
        at once would see "database is locked" immediately.
        """
        delay = 0.05
        for attempt in range(retries):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise StoreError(f"{self.path}: write failed: {exc}") from None
                if attempt == retries - 1:
                    raise StoreError(f"{self.path}: database stays locked: {exc}") from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- lifecycle ---------------------------------------------------------
    def close(self) -> None:
        self._con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _init_schema(self) -> None:
        tables = {
            r[0] for r in self._con.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if "runs" in tables:
            self._upgrade()
            return
        self._write(lambda c: (
            c.executescript("BEGIN IMMEDIATE;" + _schema_sql()
                            + f"PRAGMA user_version = {SCHEMA_VERSION};"
                            + f"PRAGMA application_id = {_APP_ID};COMMIT;")
        ))

    def _upgrade(self) -> None:
        """Add the columns of newer schema versions to an older file, in one transaction."""
        if self._con.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return

        def upgrade(c):
            c.execute("BEGIN IMMEDIATE")
            if c.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                for table, columns in (("runs", RUN_COLUMNS), ("cells", CELL_COLUMNS)):
                    have = {r[1] for r in c.execute(f"PRAGMA table_info({table})")}
                    for name, decl in columns.items():
                        if name not in have:
                            c.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
                c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            c.execute("COMMIT")

        self._write(upgrade)

    def _write(self, fn, retries: int = 20):
        """Run ``fn(con)`` in one transaction, retrying while another writer holds the lock."""
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")

        def attempt():
            try:
                return fn(self._con)
            except sqlite3.OperationalError:
                if self._con.in_transaction:
                    self._con.execute("ROLLBACK")
                raise

        return self._retry_locked(attempt, retries)

    @staticmethod
    def _tx(con, sql, params=()):
        con.execute("BEGIN IMMEDIATE")
        try:
            cur = con.execute(sql, params)
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        return cur

    # -- runs ----------------------------------------------------------------
    def begin_run(self, *, label=None, argv=(), spec=None, machine=None, versions=None,
                  gemm=None, git_commit=None) -> int:
        """Insert a run with status ``running``; return its id."""
        row = {
            "label": label,
            "created_at": now(),
            "status": "running",
            "argv": json.dumps(list(argv)),
            "spec_json": json.dumps(spec, sort_keys=True),
            "machine_json": json.dumps(machine, sort_keys=True),
            "versions_json": json.dumps(versions, sort_keys=True),
            "gemm_gflops_json": json.dumps(gemm, sort_keys=True),
            "git_commit": git_commit,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        sql = f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
        cur = self._write(lambda c: self._tx(c, sql, tuple(row.values())))
        return int(cur.lastrowid)

    def set_run(self, run_id: int, **fields) -> None:
        """Update run fields (status, finished_at, machine_json, gemm_gflops_json...)."""
        bad = set(fields) - set(RUN_COLUMNS)
        if bad:
            raise ValueError(f"unknown run columns {sorted(bad)}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._write(lambda c: self._tx(
            c, f"UPDATE runs SET {sets} WHERE run_id = ?", (*fields.values(), run_id)
        ))

    def finish_run(self, run_id: int, status: str) -> None:
        self.set_run(run_id, status=status, finished_at=now())

    def run(self, run_id: int | None = None) -> dict:
        """One run as a dict (the latest when ``run_id`` is None)."""
        sql = "SELECT * FROM runs " + (
            "WHERE run_id = ?" if run_id is not None else "ORDER BY run_id DESC LIMIT 1"
        )
        cur = self._con.execute(sql, () if run_id is None else (int(run_id),))
        row = cur.fetchone()
        if row is None:
            which = f"run {run_id}" if run_id is not None else "run"
            raise StoreError(f"{self.path}: no {which} in this database")
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def runs(self):
        """Every run with its cell counts by status, as a DataFrame."""
        import pandas as pd

        df = pd.read_sql_query("SELECT * FROM runs ORDER BY run_id", self._con)
        counts = pd.read_sql_query(
            "SELECT run_id, status, COUNT(*) AS n FROM cells GROUP BY run_id, status", self._con
        )
        if not counts.empty:
            wide = counts.pivot(index="run_id", columns="status", values="n").fillna(0)
            wide = wide.astype(int).reset_index()
            df = df.merge(wide, on="run_id", how="left")
        for s in STATUSES:
            if s not in df:
                df[s] = 0
            df[s] = df[s].fillna(0).astype(int)
        return df

    # -- cells -------------------------------------------------------------
    def write_cell(self, run_id: int, record: dict) -> None:
        """Commit one finished cell (one transaction); a key already present is kept as is.

        NaN values become NULL (SQLite has no NaN); their column names are kept
        in ``nan_columns`` so a NaN result is never mistaken for a missing one.
        """
        row = {k: _jsonable(record.get(k)) for k in CELL_COLUMNS if k != "run_id"}
        # SQLite stores NaN as NULL; keep the difference between "NaN" and "not computed"
        nans = [k for k in CELL_COLUMNS
                if isinstance(record.get(k), float) and math.isnan(record[k])]
        row["nan_columns"] = ",".join(nans) or None
        row["run_id"] = run_id
        cols = ", ".join(row)
        sql = (f"INSERT INTO cells ({cols}) VALUES ({', '.join('?' * len(row))}) "
               "ON CONFLICT (run_id, cell_key) DO NOTHING")
        self._write(lambda c: self._tx(c, sql, tuple(row.values())))

    def done_keys(self, run_id: int) -> set[str]:
        """Keys of the cells a run has already recorded."""
        cur = self._con.execute("SELECT cell_key FROM cells WHERE run_id = ?", (run_id,))
        return {r[0] for r in cur}

    def latest_run_with(self, op: str) -> int | None:
        """The newest run holding cells of ``op``, or None."""
        row = self._con.execute("SELECT MAX(run_id) FROM cells WHERE op = ?", (op,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def cells(self, run_ids=None):
        """Cells of the given runs (all runs when None) as a DataFrame."""
        import pandas as pd

        if run_ids is None:
            df = pd.read_sql_query("SELECT * FROM cells ORDER BY rowid", self._con)
        else:
            ids = [int(r) for r in run_ids]
            q = ",".join("?" * len(ids))
            df = pd.read_sql_query(
                f"SELECT * FROM cells WHERE run_id IN ({q}) ORDER BY rowid", self._con,
                params=ids)
        # an older file opened read-only lacks the columns later versions added
        for c in CELL_COLUMNS:
            if c not in df:
                df[c] = None
        return df
