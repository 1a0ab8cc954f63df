"""The ``dask`` executor: cells as tasks on a dask.distributed cluster (design section 7).

For sweeps that outgrow one machine, on the Dask cluster a user already runs
(``--scheduler ADDRESS``), or on a LocalCluster of fresh worker processes, one
thread each (``--executor dask`` alone; ``--jobs`` workers, default one per
core).

How cells run
    Each cell is one task, pinned to one worker (``workers=[address]``,
    ``allow_other_workers=False``, no retries), and a worker is given its next
    cell only when its previous one came back: one cell per worker at a time,
    whatever the worker's thread count, so a cell's timing is never disturbed
    by a second cell on the same worker.  Cells that share a test matrix
    (same matrix seed and dtype: consecutive in the sweep's order) go to the
    same worker while it has them, so the worker's matrix cache (and its
    kappa_actual SVD) is reused as in the serial executor; an idle worker
    takes the next group, or the later half of the longest group still
    queued for another worker.
Records
    The task returns the record (:func:`factorbench.worker.run_cell`); the
    client alone writes the store, one transaction per cell, so resume works
    exactly as with the serial executor.  Every record keeps the host its
    worker ran on (``host``), and is marked ``concurrent`` when other workers
    shared that host.
Failures
    A worker lost mid-cell (killed, out of memory, segfault) gives that cell
    ``crashed`` and the sweep goes on with the other workers (a nanny restarts
    the lost one, under a new address); a cell past its timeout gives
    ``timeout`` and its worker is restarted (only a restart stops a running
    task); a cell that ran out of memory inside Python (``crashed``) also
    restarts its worker, whose heap is not to be trusted.  Ctrl-C (or an
    abandoned generator) cancels the futures still running.
BLAS threads
    Set on every worker from the run's ``--threads``; without it, each worker
    gets its share of its host's cores (cores // workers on that host),
    rather than Dask's default of one thread (its nannies export
    ``OMP_NUM_THREADS=1`` and friends) or the library default of every core
    per worker, which would oversubscribe a host running several workers.
Hosts
    :meth:`DaskExecutor.hosts` describes every host (workers, cores, BLAS
    threads, and for timed runs its fingerprint and GEMM ceilings, measured
    on one of its workers): the run's ``machine_json`` lists them and each
    cell's ``peak_fraction`` uses its own host's ceiling.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import uuid
from collections import deque

from factorbench.executors import _THREAD_ENV

__all__ = ["DaskExecutor", "ClusterError"]

#: Seconds to wait for a scheduler to answer, and for a first worker.
_CONNECT_TIMEOUT = 30.0

#: Seconds to wait for a host's fingerprint and GEMM ceilings, and for a result.
_HOST_INFO_TIMEOUT = 300.0
_RESULT_TIMEOUT = 60.0

#: The glibc setting Dask's nannies export by default (distributed.nanny.pre-spawn-environ).
_TRIM = "MALLOC_TRIM_THRESHOLD_"

#: Seconds between two looks at the cluster's worker list.
_POLL = 0.25


class ClusterError(RuntimeError):
    """The cluster cannot be used (not reachable, no worker, factorbench missing on a worker)."""


# -- on the worker -----------------------------------------------------------
_STATE: dict = {}


def _probe() -> dict:
    """What a worker process is: host, usable cores, factorbench version, malloc setting."""
    import socket

    import factorbench

    return {"host": socket.gethostname(), "cores": _usable_cores(),
            "version": factorbench.__version__, "malloc_trim": os.environ.get(_TRIM)}


def _setup(init: dict, threads: int) -> None:
    """Load the run's plugins and size the BLAS pools once per worker process."""
    from factorbench import impls as registry
    from factorbench.timing import blas_threads

    plugins = tuple(init.get("plugins") or ())
    if _STATE.get("plugins") != plugins:
        for p in plugins:
            registry.load_plugin(p)
        _STATE["plugins"] = plugins
    if _STATE.get("threads") != threads:
        old = _STATE.pop("limiter", None)
        if old is not None:
            old.__exit__(None, None, None)
        limiter = blas_threads(int(threads))
        limiter.__enter__()  # for the worker's life, like the serial executor's worker
        _STATE["limiter"] = limiter  # dropping it would close the generator: limits undone
        _STATE["threads"] = threads


def _run_cell_task(cell: dict, options: dict, init: dict, threads: int) -> dict:
    """The task: one cell on this worker (never raises for what the impl does).

    What the impl prints, and the warnings it raises, go to this worker's log
    file (``factorbench-dask-<pid>.log`` in the temporary directory), as the
    serial executor's worker keeps them: a LocalCluster's workers share the
    run's terminal, which is for the progress bar and the one-line errors.
    """
    import contextlib
    import tempfile
    import traceback

    from factorbench.worker import oom_message, resolved_record, run_cell

    log = os.path.join(tempfile.gettempdir(), f"factorbench-dask-{os.getpid()}.log")
    with open(log, "a", encoding="utf-8", errors="replace") as out, \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            _setup(init, threads)
            return run_cell(cell, options)
        except MemoryError as exc:
            return resolved_record(cell, "crashed", oom_message(exc))
        except BaseException as exc:  # SystemExit from an impl, a plugin that fails to load
            traceback.print_exc()
            return resolved_record(cell, "error",
                                   f"{type(exc).__name__} escaped the cell: {exc}")


def _host_info(threads: int | None, dtypes: list[str], gemm_n: int | None) -> dict:
    """Fingerprint (and GEMM ceilings when ``gemm_n``) of this worker's host."""
    from factorbench import machine
    from factorbench.timing import blas_threads

    with blas_threads(threads):
        info = {"fingerprint": machine.fingerprint(threads=threads)}
        if gemm_n:
            info["gemm_gflops"] = machine.gemm_peaks(dtypes, n=gemm_n)
    return info


# -- on the client -----------------------------------------------------------
def _groups(cells) -> deque:
    """Consecutive cells sharing a test matrix, as a queue of queues."""
    out: deque = deque()
    last = None
    for c in cells:
        key = (c.get("matrix_seed"), c.get("dtype"))
        if not out or key != last:
            out.append(deque())
            last = key
        out[-1].append(c)
    return out


def _usable_cores() -> int:
    """CPUs this process may run on (its affinity mask, else every core)."""
    from factorbench.machine import _usable_cores as affinity

    return affinity() or os.cpu_count() or 1


class DaskExecutor:
    """Cells as pinned tasks on a dask.distributed cluster (see the module docstring).

    Parameters
    ----------
    init : dict
        The run's worker init (plugins, threads); ``max_memory`` is refused
        (Dask workers have their own ``--memory-limit``).
    timeout : float
        Seconds per cell.
    scheduler : str, optional
        Address of a running scheduler; None starts a LocalCluster.
    jobs : int, optional
        Workers of the LocalCluster (default: one per core).

    Raises
    ------
    ClusterError
        dask.distributed is missing, the scheduler cannot be reached, no
        worker joins, or a worker cannot run this factorbench.
    """

    concurrent = None  # decided per host: see the module docstring

    def __init__(self, *, init: dict, timeout: float, scheduler: str | None = None,
                 jobs: int | None = None):
        try:
            import dask
            import distributed
        except ImportError:
            raise ClusterError("the dask executor needs dask.distributed: "
                               "pip install 'factorbench[dist]'") from None
        if init.get("max_memory"):
            raise ClusterError("--max-memory caps the serial and process executors' workers; "
                               "Dask workers have their own memory limit (--memory-limit)")
        self.init = init
        self.timeout = float(timeout)
        self.scheduler = scheduler
        self.client = None
        self._cluster = None
        self._info: dict[str, dict] = {}  # usable worker address -> _probe() + nanny
        self._missing: dict[str, int] = {}  # worker -> consecutive looks without it
        self._excluded: dict[str, str] = {}  # worker -> why it gets no cell
        self._host_threads: dict[str, int] = {}  # fixed per host at its first sight
        self._host_workers: dict[str, int] = {}
        self._warned: set[str] = set()
        self._tries: dict[str, int] = {}  # cell key -> times the cluster cancelled it
        # The client's own log lines (reconnect attempts, a lost worker) are not
        # for the terminal: what matters comes back as records or one error line.
        names = ["distributed", *(n for n in logging.root.manager.loggerDict
                                   if n.startswith("distributed."))]
        self._log_levels = {n: logging.getLogger(n).level for n in names}
        for n in names:  # children with their own level would bypass the parent's
            logging.getLogger(n).setLevel(logging.CRITICAL)
        try:
            if scheduler is None:
                n = jobs or os.cpu_count() or 1
                # The pools are sized at start, as the serial executor's worker
                # sizes them (OpenBLAS reserves its pool when it loads, and a
                # pool grown later by threadpoolctl splits work differently).
                threads = init.get("threads") or max(1, _usable_cores() // n)
                env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
                env.update(dict.fromkeys(_THREAD_ENV, str(threads)))
                # Dask's nannies set MALLOC_TRIM_THRESHOLD_ (64 KiB), which turns off
                # glibc's dynamic mmap threshold: every large temporary is then
                # mmapped, freed to the OS and faulted in again (lu/gepp at n = 1024
                # took 3.0 s instead of 0.84 s here).  The serial executor's worker
                # runs with glibc's defaults, and so do these.
                env.pop(_TRIM, None)
                # No dashboard port to collide with; Dask's own log lines off the terminal.
                with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):
                    self._cluster = distributed.LocalCluster(
                        n_workers=n, threads_per_worker=1, processes=True,
                        dashboard_address=None, silence_logs=logging.ERROR,
                    )
                self.client = distributed.Client(self._cluster, set_as_default=False)
            else:
                n = 1
                # waits distributed.comm.timeouts.connect (30 s unless configured)
                self.client = distributed.Client(scheduler, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            self.close()
            where = f"at {scheduler}" if scheduler else "(LocalCluster)"
            raise ClusterError(f"cannot reach the Dask scheduler {where}: {exc}") from None
        except RuntimeError as exc:  # "Nanny failed to start": a worker died at start
            self.close()
            raise ClusterError(f"the Dask LocalCluster could not start its workers: "
                               f"{exc}") from None
        try:
            # a LocalCluster's workers all join before the thread split is fixed
            self.client.wait_for_workers(n, timeout=_CONNECT_TIMEOUT)
            self._refresh(first=True)
        except ClusterError:
            self.close()
            raise
        except (OSError, TimeoutError) as exc:
            self.close()
            raise ClusterError(f"the Dask cluster has no worker: {exc}") from None

    # -- context -----------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        for n, level in (getattr(self, "_log_levels", None) or {}).items():
            logging.getLogger(n).setLevel(level)

    # -- workers -----------------------------------------------------------
    def _running_workers(self) -> dict[str, dict]:
        """The scheduler's workers that take tasks now, fetched fresh.

        ``Client.scheduler_info`` returns an attribute that the client's own
        periodic callback overwrites with an empty worker list, so it is not
        used; paused and closing workers would never start a pinned cell.
        """
        ident = self.client.sync(self.client.scheduler.identity, n_workers=-1)
        return {w: v for w, v in ident.get("workers", {}).items()
                if v.get("status", "running") == "running"}

    def _refresh(self, first: bool = False) -> list[str]:
        """Usable workers now.  New ones are probed; one missing twice running is lost."""
        import factorbench

        try:
            current = self._running_workers()
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"lost the Dask scheduler: {exc}") from None
        new = [w for w in current if w not in self._info and w not in self._excluded]
        if new:
            try:
                found = self.client.run(_probe, workers=new, on_error="return")
            except (OSError, TimeoutError):
                found = {}  # they went away again; looked at next time
            for addr, info in found.items():
                why = None
                if isinstance(info, OSError | TimeoutError):
                    continue  # not reachable right now: probed again at the next look
                if isinstance(info, BaseException):
                    why = (f"Dask worker {addr} cannot run factorbench "
                           f"({type(info).__name__}: {info}); install the same factorbench "
                           "on every worker")
                elif info["version"] != factorbench.__version__:
                    why = (f"Dask worker {addr} has factorbench {info['version']}, this client "
                           f"{factorbench.__version__}; install the same version on every "
                           "worker")
                if why and first:
                    raise ClusterError(why)
                if why:
                    self._exclude(addr, why)
                    continue
                info = dict(info, nanny=bool(current[addr].get("nanny")))
                self._info[addr] = info
                if info.get("malloc_trim") is not None:
                    self._warn(f"Dask worker {addr} runs with {_TRIM}={info['malloc_trim']} "
                               "(a nanny default): allocation-heavy impls run up to 3.6x "
                               "slower than under the serial executor; start the workers "
                               f"without it (distributed.nanny.pre-spawn-environ.{_TRIM}: "
                               "null)")
        for w in current:
            self._missing.pop(w, None)
        for w in [w for w in self._info if w not in current]:
            self._missing[w] = self._missing.get(w, 0) + 1
            if self._missing[w] >= 2:
                self._forget(w)
        if first or not self._host_threads:
            self._fix_threads()
        return [w for w in self._info if w in current]

    def _fix_threads(self) -> None:
        """Each host's BLAS threads per worker: --threads, else its share of the cores.

        Fixed once, so that a worker lost or restarted never changes the
        others' pools mid-run (and with them the results' rounding).
        """
        for host, addrs in self._per_host().items():
            if host in self._host_threads:
                continue
            cores = self._info[addrs[0]]["cores"]
            self._host_threads[host] = int(self.init.get("threads") or
                                           max(1, cores // len(addrs)))
            self._host_workers[host] = len(addrs)

    def _forget(self, w: str) -> None:
        self._info.pop(w, None)
        self._missing.pop(w, None)

    def _exclude(self, w: str, why: str) -> None:
        self._excluded[w] = why
        self._forget(w)
        self._warn(f"{why}; it gets no cell")

    def _warn(self, text: str) -> None:
        """One line on stderr, once per distinct text."""
        if text not in self._warned:
            self._warned.add(text)
            print(f"factorbench: {text}", file=sys.stderr)

    def _per_host(self) -> dict[str, list[str]]:
        hosts: dict[str, list[str]] = {}
        for addr, info in self._info.items():
            hosts.setdefault(info["host"], []).append(addr)
        return hosts

    def _threads(self, addr: str) -> int:
        host = self._info[addr]["host"]
        if host not in self._host_threads:  # a host that joined mid-run
            self._fix_threads()
        return self._host_threads[host]

    def hosts(self, dtypes=(), gemm_n: int | None = None) -> dict[str, dict]:
        """Every host of the cluster: workers, cores, BLAS threads per worker and,
        measured on one of its workers, its fingerprint and (``gemm_n``) GEMM ceilings."""
        self._refresh()
        out = {}
        for host, addrs in sorted(self._per_host().items()):
            threads = self._threads(addrs[0])
            future = self.client.submit(
                _host_info, threads, list(dtypes), gemm_n, workers=[addrs[0]],
                allow_other_workers=False, pure=False)
            try:
                info = future.result(timeout=_HOST_INFO_TIMEOUT)
            except Exception as exc:
                future.cancel()
                raise ClusterError(f"Dask worker {addrs[0]} on {host} did not describe its "
                                   f"host: {type(exc).__name__}: {exc}") from None
            out[host] = {"workers": len(addrs), "cores": self._info[addrs[0]]["cores"],
                         "blas_threads": threads,
                         "malloc_trim_threshold": self._info[addrs[0]].get("malloc_trim"),
                         **info}
        return out

    # -- running -----------------------------------------------------------
    def run(self, cells, options):
        """Yield one record per cell, in completion order.

        Raises
        ------
        ClusterError
            The scheduler was lost, or no worker was left for
            ``_CONNECT_TIMEOUT`` seconds: the cells not yet run are left for
            ``--resume``.
        """
        import distributed

        from factorbench.store import now

        queue = _groups(cells)
        mine: dict[str, deque] = {}  # worker -> the rest of the group it is working through
        running: dict = {}  # future -> (worker, host, cell, started_at, deadline)
        last_look, idle_since = 0.0, None
        try:
            while queue or any(mine.values()) or running:
                if time.monotonic() - last_look > _POLL:
                    workers = self._refresh()
                    last_look = time.monotonic()
                    for w in [w for w in mine if w not in self._info]:
                        self._requeue(w, mine, queue)  # lost while idle: its group goes back
                    for f in [f for f, (w, *_) in running.items() if w not in self._info]:
                        w, host, cell, started, _ = running.pop(f)
                        if f.status == "finished":
                            yield self._record(f, cell, started, host)
                            continue
                        f.cancel()
                        yield self._resolved(
                            cell, "crashed", f"Dask worker {w} on {host} was lost mid-cell "
                            "(its process died: killed, out of memory or crashed)", started,
                            host)
                busy = {w for w, *_ in running.values()}
                for w in workers:
                    if w in busy or w not in self._info:
                        continue
                    cell = self._next(w, mine, queue)
                    if cell is None:
                        continue
                    host = self._info[w]["host"]
                    shared = self._host_workers.get(host, 1) > 1
                    f = self.client.submit(
                        _run_cell_task, cell, dict(options, concurrent=shared), self.init,
                        self._threads(w),
                        key=f"factorbench-cell-{cell['key'][:16]}-{uuid.uuid4().hex[:8]}",
                        workers=[w], allow_other_workers=False, pure=False, retries=0)
                    running[f] = (w, host, cell, now(), time.monotonic() + self.timeout)
                    busy.add(w)
                if not running:
                    # cells left but no worker: wait for one, within reason
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > _CONNECT_TIMEOUT:
                        raise ClusterError(
                            f"no Dask worker took a cell for {_CONNECT_TIMEOUT:.0f} s"
                            + (f" ({'; '.join(self._excluded.values())})"
                               if self._excluded else ""))
                    time.sleep(_POLL)
                    last_look = 0.0
                    continue
                idle_since = None
                nearest = min(d for *_, d in running.values())
                wait_for = max(0.01, min(_POLL, nearest - time.monotonic()))
                with self.client.as_current():
                    try:
                        distributed.wait(list(running), timeout=wait_for,
                                         return_when="FIRST_COMPLETED")
                    except TimeoutError:
                        pass
                    except (asyncio.CancelledError, distributed.client.FuturesCancelledError):
                        pass  # handled below, future by future
                if self.client.status not in ("running", "connecting"):
                    raise ClusterError(f"lost the Dask scheduler (client {self.client.status})")
                for f in [f for f in running if f.done()]:
                    w, host, cell, started, _ = running.pop(f)
                    if f.status == "cancelled":
                        # not by us, so by the cluster (a restart, a reconnect): run it again
                        self._retry(cell, w, mine, queue)
                        continue
                    rec = self._record(f, cell, started, host)
                    if rec["status"] == "crashed":
                        self._restart(w, mine, queue)
                    yield rec
                for f in [f for f, (*_, d) in running.items() if time.monotonic() >= d]:
                    w, host, cell, started, _ = running.pop(f)
                    f.cancel()
                    self._restart(w, mine, queue)
                    yield self._resolved(
                        cell, "timeout", f"cell exceeded the timeout of {self.timeout:g} s",
                        started, host)
        finally:
            if running and self.client is not None:
                # interrupted or abandoned: stop what still runs
                self.client.cancel(list(running), force=True)

    def _retry(self, cell, w, mine, queue) -> None:
        """Run a cell the cluster cancelled once more (at the head of the queue)."""
        self._tries[cell["key"]] = self._tries.get(cell["key"], 0) + 1
        if self._tries[cell["key"]] > 2:
            raise ClusterError(f"the Dask cluster cancelled cell {cell['key']} three times")
        self._requeue(w, mine, queue)
        queue.appendleft(deque([cell]))

    @staticmethod
    def _next(w: str, mine: dict, queue: deque):
        """The next cell for idle worker ``w`` (its group first, then a new one, then a steal)."""
        own = mine.get(w)
        if own:
            return own.popleft()
        if queue:
            mine[w] = queue.popleft()
            return mine[w].popleft()
        donor = max(mine, key=lambda k: len(mine[k]), default=None)
        if donor is None or len(mine[donor]) < 2:
            return None
        half = len(mine[donor]) // 2
        mine[w] = deque(mine[donor].pop() for _ in range(half))
        mine[w].reverse()
        return mine[w].popleft()

    @staticmethod
    def _resolved(cell, status, message, started, host) -> dict:
        """A record made here for a cell that ran on ``host``."""
        from factorbench.worker import resolved_record

        return dict(resolved_record(cell, status, message, started), host=host)

    def _record(self, f, cell, started, host) -> dict:
        try:
            if f.status == "finished":
                return f.result(timeout=_RESULT_TIMEOUT)
            exc = f.exception(timeout=_RESULT_TIMEOUT)
        except Exception as err:  # the result went with its worker
            return self._resolved(cell, "crashed", f"Dask worker lost with the cell's result "
                                  f"({type(err).__name__}: {err})", started, host)
        if type(exc).__name__ == "KilledWorker":
            return self._resolved(cell, "crashed", f"Dask worker lost mid-cell: {exc}",
                                  started, host)
        return self._resolved(cell, "error", f"the Dask task failed: {type(exc).__name__}: "
                              f"{exc}", started, host)

    @staticmethod
    def _requeue(w: str, mine: dict, queue: deque) -> None:
        """Put the rest of worker ``w``'s group back at the head of the queue."""
        rest = mine.pop(w, None)
        if rest:
            queue.appendleft(rest)

    def _restart(self, w: str, mine: dict, queue: deque) -> None:
        """Restart worker ``w``: its nanny starts a fresh process under a new address.

        A worker without a nanny cannot be restarted (and may still be running
        the cell): it is retired, and never given a cell again.
        """
        self._requeue(w, mine, queue)
        info = self._info.get(w)
        if info is not None and info.get("nanny"):
            try:
                self.client.restart_workers([w], timeout=_CONNECT_TIMEOUT,
                                            raise_for_error=False)
            except Exception:  # already gone, or slow to come back: the next looks tell
                pass
            self._forget(w)
            return
        try:
            self.client.retire_workers([w], close_workers=True)
        except Exception:
            pass
        self._exclude(w, f"Dask worker {w} has no nanny to restart it after a crash or a "
                         "timeout: retired")
