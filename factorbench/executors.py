"""Executors: where cells run (design section 7).

``serial``
    One long-lived worker subprocess runs the cells one at a time, so timings
    are not disturbed by other cells and imports/JIT caches are paid once.  A
    worker that dies (segfault, abort, out of memory) gives its cell
    ``crashed`` with the signal; one that passes the cell's timeout is killed
    (with its whole process group) and gives ``timeout``; one that reports a
    ``crashed`` cell itself (a ``MemoryError``) is retired.  Either way a fresh
    worker takes the next cell.
``dask``
    Cells as tasks on a dask.distributed cluster: :mod:`factorbench.cluster`.
``process``
    N such workers at once, for accuracy sweeps; records are marked
    ``concurrent`` because the workers share the machine's cores and memory
    bandwidth, so their timings are not comparable with serial ones.

Workers only compute; the records come back to the parent, which alone writes
the store.  Workers are fresh interpreters (never ``fork``: forking a parent
whose BLAS already started threads is unsafe).

With ``max_memory`` in the init every worker caps its own virtual address
space (``RLIMIT_AS``, set inside the worker, never in the parent); a worker
that then dies of a signal is reported as likely out of memory under the cap.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from multiprocessing.connection import Connection, wait
from pathlib import Path

__all__ = ["SerialExecutor", "ProcessExecutor", "make_executor", "EXECUTORS",
           "MemoryCapError", "check_memory_cap"]

#: Seconds a new worker may take to import numpy/scipy and answer.
_START_TIMEOUT = 120.0

#: Signals a process dies of when an allocation fails where nothing checks it
#: (abort in a C++ new or in the allocator, a NULL dereference, the OOM killer).
_OOM_SIGNALS = (signal.SIGABRT, signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS)


class MemoryCapError(RuntimeError):
    """A worker refused to start: the --max-memory cap leaves it no room."""

    def __init__(self, reason: str):
        super().__init__(f"worker failed to start: {reason}")
        self.reason = reason


#: Environment variables that size the BLAS/OpenMP thread pools at start-up.
_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _worker_env(init: dict) -> dict:
    """Environment of a worker process.

    The worker must import this very factorbench, installed or not.  With
    ``threads`` set, the thread pools are also sized by environment at start:
    OpenBLAS starts (and reserves address space for) its whole pool when NumPy
    and SciPy are imported, before threadpoolctl can limit it, so only the
    environment keeps a ``--threads 1`` worker as small as one thread needs
    (about 275 MiB instead of 1.4 GiB with 16 cores), which matters under
    ``--max-memory``.
    """
    root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONFAULTHANDLER="1", PYTHONPATH=path)
    if init.get("threads"):
        env.update(dict.fromkeys(_THREAD_ENV, str(int(init["threads"]))))
    return env


class _Worker:
    """One worker subprocess (``python -m factorbench.worker``) and its socket.

    The worker is a fresh interpreter, not a ``multiprocessing`` child, so it
    never re-imports the caller's ``__main__``; it starts its own session
    (process group) so that Ctrl-C reaches only the parent and a timeout can
    kill everything the impl started.  Its stdout and stderr go to a log file
    whose tail explains a crash.
    """

    def __init__(self, init: dict, logdir: Path, index: int):
        self.log = logdir / f"worker-{index}-{time.monotonic_ns()}.log"
        parent, child = socket.socketpair()
        env = _worker_env(init)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "factorbench.worker", str(child.fileno()),
                 json.dumps(init)],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, env=env,
            )
        child.close()
        self.conn = Connection(parent.detach())
        self.cell = None
        self.deadline = None
        self.max_memory = init.get("max_memory")
        if not self.conn.poll(_START_TIMEOUT):
            self.kill()
            raise RuntimeError(f"worker did not start within {_START_TIMEOUT:.0f} s")
        try:
            kind, payload = self.conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise RuntimeError(f"worker died at start: {self._log_tail()}") from None
        if kind == "refused":
            self.kill()
            raise MemoryCapError(payload)
        if kind != "ready":
            self.kill()
            raise RuntimeError(f"worker failed to start: {payload}")
        self.footprint = payload.get("footprint") if isinstance(payload, dict) else None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def submit(self, cell, options, timeout):
        from factorbench.store import now

        self.started_at = now()
        self.cell = cell
        self.deadline = time.monotonic() + timeout
        self.conn.send((cell, options))

    def kill(self):
        """Kill the worker and everything it started (its own process group)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.conn.close()

    def stop(self):
        if self.alive():
            try:
                self.conn.send(None)
                self.proc.wait(2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def death_message(self) -> str:
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            pass
        code = self.proc.returncode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            what = f"worker killed by {name}"
            if self.max_memory and -code in _OOM_SIGNALS:
                what += f" (likely out of memory under --max-memory {self._cap()})"
            elif -code == signal.SIGKILL:
                what += " (out of memory?)"
        else:
            what = f"worker exited with status {code}"
        tail = self._log_tail()
        if self.max_memory and code and "MemoryError" in tail and "out of memory" not in what:
            what += f" (out of memory under --max-memory {self._cap()})"
        return f"{what}{': ' + tail if tail else ''}"

    def _cap(self) -> str:
        from factorbench.spec import format_memory

        return format_memory(self.max_memory)

    def _log_tail(self) -> str:
        """The useful part of the worker's log: faulthandler's error and frame, or the last line."""
        try:
            lines = [t.strip() for t in self.log.read_text(errors="replace").splitlines()]
        except OSError:
            return ""
        lines = [t for t in lines if t]
        fatal = [t for t in lines if t.startswith("Fatal Python error")]
        frames = [t for t in lines if t.startswith('File "')]
        if fatal:
            where = f" at {frames[0]}" if frames else ""
            return (fatal[-1] + where)[:400]
        return lines[-1][:400] if lines else ""


class SerialExecutor:
    """Cells one at a time in one long-lived, replaceable worker (``jobs=1``)."""

    concurrent = False

    def __init__(self, *, init: dict, timeout: float, jobs: int = 1):
        self.init = init
        self.timeout = float(timeout)
        self.jobs = max(1, int(jobs))
        self._tmp = tempfile.TemporaryDirectory(prefix="factorbench-")
        self.logdir = Path(self._tmp.name)
        self._workers: list[_Worker | None] = [None] * self.jobs
        self._count = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for w in self._workers:
            if w is not None:
                w.stop()
        self._workers = [None] * self.jobs
        self._tmp.cleanup()

    def _worker(self, i) -> _Worker:
        if self._workers[i] is None:
            self._count += 1
            self._workers[i] = _Worker(self.init, self.logdir, self._count)
        return self._workers[i]

    def _dispatch(self, i, cell, options):
        """Hand ``cell`` to worker ``i``, replacing a worker that died while idle.

        Returns ``(worker, None)``, or ``(None, reason)`` when no worker could
        take the cell: that cell is recorded as crashed and the sweep goes on.
        """
        for _ in range(2):
            try:
                w = self._worker(i)
            except RuntimeError as exc:
                return None, str(exc)
            try:
                w.submit(cell, options, self.timeout)
                return w, None
            except OSError:  # died between cells: the pipe is broken
                w.kill()
                self._workers[i] = None
        return None, "worker died before it could take the cell"

    def run(self, cells, options):
        """Yield one record per cell (in completion order)."""
        from factorbench.worker import resolved_record

        queue = deque(cells)
        busy: dict[int, _Worker] = {}
        try:
            while queue or busy:
                for i in range(self.jobs):
                    if i not in busy and queue:
                        cell = queue.popleft()
                        w, why = self._dispatch(i, cell, options)
                        if w is None:
                            yield resolved_record(cell, "crashed", why)
                        else:
                            busy[i] = w
                if not busy:
                    continue
                now = time.monotonic()
                wait_for = max(0.0, min(w.deadline for w in busy.values()) - now)
                # a dead worker closes its socket, so the connection alone wakes us
                ready = set(wait([w.conn for w in busy.values()],
                                 timeout=min(wait_for, 1.0) + 0.01))
                for i, w in list(busy.items()):
                    if w.conn in ready and w.conn.poll():
                        try:
                            kind, rec = w.conn.recv()
                        except (EOFError, OSError):
                            kind, rec = None, None
                        if kind == "record":
                            del busy[i]
                            if rec.get("status") == "crashed":
                                # out of memory inside the worker: it exits; never reuse it
                                w.kill()
                                self._workers[i] = None
                            yield rec
                            continue
                    if not w.alive():
                        rec = resolved_record(w.cell, "crashed", w.death_message(), w.started_at)
                        w.kill()
                        self._workers[i] = None
                        del busy[i]
                        yield rec
                    elif time.monotonic() >= w.deadline:
                        w.kill()
                        self._workers[i] = None
                        del busy[i]
                        yield resolved_record(
                            w.cell, "timeout", f"cell exceeded the timeout of {self.timeout:g} s",
                            w.started_at,
                        )
        finally:
            # Interrupted or abandoned generator: never leave a worker computing.
            for i, w in busy.items():
                w.kill()
                self._workers[i] = None


def check_memory_cap(init: dict) -> int | None:
    """Start one worker with ``init`` and return its idle footprint (bytes, or None).

    Raises :class:`factorbench.spec.SpecError` (one line) when the worker
    refuses ``init["max_memory"]`` as too small, so that a run is refused
    before it starts rather than recording every cell as crashed.  Any other
    start failure is left to the executor (its cells are recorded as crashed).
    """
    from factorbench.spec import SpecError

    if not init.get("max_memory"):
        return None
    with tempfile.TemporaryDirectory(prefix="factorbench-") as tmp:
        try:
            w = _Worker(init, Path(tmp), 0)
        except MemoryCapError as exc:
            raise SpecError(exc.reason) from None
        except RuntimeError:
            return None
        w.stop()
        return w.footprint


class ProcessExecutor(SerialExecutor):
    """N long-lived workers at once; timings are marked concurrent."""

    concurrent = True

    def __init__(self, *, init: dict, timeout: float, jobs: int | None = None):
        super().__init__(init=init, timeout=timeout, jobs=jobs or os.cpu_count() or 1)


EXECUTORS = ("serial", "process", "dask")


def make_executor(name: str, *, init: dict, timeout: float, jobs: int | None = None,
                  scheduler: str | None = None):
    """Build the executor called ``name`` (serial | process | dask).

    ``jobs`` sizes the process executor and the dask executor's LocalCluster;
    ``scheduler`` is the address of a running Dask scheduler (dask only).

    Raises
    ------
    ValueError
        Unknown executor.
    factorbench.cluster.ClusterError
        The dask executor cannot start (no dask, scheduler unreachable, no worker).
    """
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
    if name == "dask":
        from factorbench.cluster import DaskExecutor

        return DaskExecutor(init=init, timeout=timeout, scheduler=scheduler, jobs=jobs)
    if name == "serial":
        return SerialExecutor(init=init, timeout=timeout)
    return ProcessExecutor(init=init, timeout=timeout, jobs=jobs)
