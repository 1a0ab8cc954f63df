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

import logging
import os
import time
import uuid
from collections import deque

from factorbench.executors import _THREAD_ENV

__all__ = ["DaskExecutor", "ClusterError"]

#: Seconds to wait for a scheduler to answer, and for a first worker.
_CONNECT_TIMEOUT = 30.0

#: Seconds between two looks at the cluster's worker list.
_POLL = 0.25


class ClusterError(RuntimeError):
    """The cluster cannot be used (not reachable, no worker, factorbench missing on a worker)."""


# -- on the worker -----------------------------------------------------------
_STATE: dict = {}


def _probe() -> dict:
    """What a worker process is: host, usable cores, factorbench version."""
    import socket

    import factorbench

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return {"host": socket.gethostname(), "cores": cores, "version": factorbench.__version__}


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
    """The task: one cell on this worker (never raises for what the impl does)."""
    import traceback

    from factorbench.worker import oom_message, resolved_record, run_cell

    try:
        _setup(init, threads)
        return run_cell(cell, options)
    except MemoryError as exc:
        return resolved_record(cell, "crashed", oom_message(exc))
    except BaseException as exc:  # SystemExit from an impl, a plugin that fails to load
        traceback.print_exc()
        return resolved_record(cell, "error", f"{type(exc).__name__} escaped the cell: {exc}")


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
        self._cluster = None
        self._restartable = True
        self._info: dict[str, dict] = {}  # worker address -> _probe()
        try:
            if scheduler is None:
                n = jobs or os.cpu_count() or 1
                # The pools are sized at start, as the serial executor's worker
                # sizes them (OpenBLAS reserves its pool when it loads, and a
                # pool grown later by threadpoolctl splits work differently).
                threads = init.get("threads") or max(1, (os.cpu_count() or 1) // n)
                env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
                env.update(dict.fromkeys(_THREAD_ENV, str(threads)))
                # No dashboard port to collide with; Dask's own log lines off the terminal.
                with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):
                    self._cluster = distributed.LocalCluster(
                        n_workers=n, threads_per_worker=1, processes=True,
                        dashboard_address=None, silence_logs=logging.ERROR,
                    )
                self.client = distributed.Client(self._cluster, set_as_default=False)
            else:
                # waits distributed.comm.timeouts.connect (30 s unless configured)
                self.client = distributed.Client(scheduler, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            self.close()
            where = f"at {scheduler}" if scheduler else "(LocalCluster)"
            raise ClusterError(f"cannot reach the Dask scheduler {where}: {exc}") from None
        try:
            self.client.wait_for_workers(1, timeout=_CONNECT_TIMEOUT)
            self._refresh()
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
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
            self.client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    # -- workers -----------------------------------------------------------
    def _refresh(self) -> list[str]:
        """The current workers' addresses; new ones are probed (host, cores, version)."""
        import factorbench

        workers = list(self.client.scheduler_info(n_workers=-1)["workers"])
        new = [w for w in workers if w not in self._info]
        if new:
            try:
                found = self.client.run(_probe, workers=new, on_error="return")
            except (OSError, TimeoutError):
                found = {}
            for addr, info in found.items():
                if isinstance(info, BaseException):
                    raise ClusterError(
                        f"Dask worker {addr} cannot run factorbench ({type(info).__name__}: "
                        f"{info}); install the same factorbench on every worker")
                if info["version"] != factorbench.__version__:
                    raise ClusterError(
                        f"Dask worker {addr} has factorbench {info['version']}, this client "
                        f"{factorbench.__version__}; install the same version on every worker")
                self._info[addr] = info
        gone = set(self._info) - set(workers)
        for addr in gone:
            self._info.pop(addr)
        return [w for w in workers if w in self._info]

    def _per_host(self) -> dict[str, list[str]]:
        hosts: dict[str, list[str]] = {}
        for addr, info in self._info.items():
            hosts.setdefault(info["host"], []).append(addr)
        return hosts

    def _threads(self, addr: str) -> int:
        if self.init.get("threads"):
            return int(self.init["threads"])
        info = self._info[addr]
        sharing = len(self._per_host()[info["host"]])
        return max(1, info["cores"] // sharing)

    def hosts(self, dtypes=(), gemm_n: int | None = None) -> dict[str, dict]:
        """Every host of the cluster: workers, cores, BLAS threads per worker and,
        measured on one of its workers, its fingerprint and (``gemm_n``) GEMM ceilings."""
        self._refresh()
        out = {}
        for host, addrs in sorted(self._per_host().items()):
            threads = self._threads(addrs[0])
            info = self.client.submit(
                _host_info, threads, list(dtypes), gemm_n, workers=[addrs[0]],
                allow_other_workers=False, pure=False).result()
            out[host] = {"workers": len(addrs), "cores": self._info[addrs[0]]["cores"],
                         "blas_threads": threads, **info}
        return out

    # -- running -----------------------------------------------------------
    def run(self, cells, options):
        """Yield one record per cell, in completion order."""
        import distributed

        from factorbench.store import now
        from factorbench.worker import resolved_record

        queue = _groups(cells)
        mine: dict[str, deque] = {}  # worker -> the rest of the group it is working through
        running: dict = {}  # future -> (worker, cell, started_at, deadline)
        last_look, idle_since = 0.0, None
        try:
            while queue or any(mine.values()) or running:
                if time.monotonic() - last_look > _POLL:
                    workers = self._refresh()
                    last_look = time.monotonic()
                    lost = [f for f, (w, *_) in running.items() if w not in self._info]
                    for f in lost:
                        w, cell, started, _ = running.pop(f)
                        f.cancel()
                        self._requeue(w, mine, queue)
                        yield resolved_record(
                            cell, "crashed", f"Dask worker {w} was lost mid-cell (its process "
                            "died: killed, out of memory or crashed)", started)
                busy = {w for w, *_ in running.values()}
                for w in workers:
                    if w in busy or w not in self._info:
                        continue
                    cell = self._next(w, mine, queue)
                    if cell is None:
                        continue
                    shared = len(self._per_host()[self._info[w]["host"]]) > 1
                    opts = dict(options, concurrent=shared)
                    f = self.client.submit(
                        _run_cell_task, cell, opts, self.init, self._threads(w),
                        key=f"factorbench-cell-{cell['key'][:16]}-{uuid.uuid4().hex[:8]}",
                        workers=[w], allow_other_workers=False, pure=False, retries=0)
                    running[f] = (w, cell, now(), time.monotonic() + self.timeout)
                    busy.add(w)
                if not running:
                    # cells left but no worker: wait for one, within reason
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > _CONNECT_TIMEOUT:
                        for c in [c for g in (*queue, *mine.values()) for c in g]:
                            yield resolved_record(c, "crashed", "no Dask worker left to run it")
                        return
                    time.sleep(_POLL)
                    last_look = 0.0
                    continue
                idle_since = None
                nearest = min(d for *_, d in running.values())
                wait_for = max(0.01, min(_POLL, nearest - time.monotonic()))
                with self.client.as_current():
                    try:
                        done, _ = distributed.wait(list(running), timeout=wait_for,
                                                   return_when="FIRST_COMPLETED")
                    except TimeoutError:
                        done = ()
                for f in done:
                    w, cell, started, _ = running.pop(f)
                    rec = self._record(f, cell, started)
                    if rec["status"] == "crashed":
                        self._restart(w, mine, queue)
                    yield rec
                for f in [f for f, (*_, d) in running.items() if time.monotonic() >= d]:
                    w, cell, started, _ = running.pop(f)
                    f.cancel()
                    self._restart(w, mine, queue)
                    yield resolved_record(
                        cell, "timeout", f"cell exceeded the timeout of {self.timeout:g} s",
                        started)
        finally:
            if running:  # interrupted or abandoned: stop what still runs
                self.client.cancel(list(running), force=True)

    def _next(self, w: str, mine: dict, queue: deque):
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

    def _record(self, f, cell, started) -> dict:
        from factorbench.worker import resolved_record

        if f.status == "finished":
            return f.result()
        if f.status == "cancelled":
            return resolved_record(cell, "crashed", "the Dask cluster cancelled the cell",
                                   started)
        exc = f.exception()
        name = type(exc).__name__
        if name == "KilledWorker":
            return resolved_record(cell, "crashed", f"Dask worker lost mid-cell: {exc}", started)
        return resolved_record(cell, "error", f"the Dask task failed: {name}: {exc}", started)

    @staticmethod
    def _requeue(w: str, mine: dict, queue: deque) -> None:
        """Put the rest of worker ``w``'s group back at the head of the queue."""
        rest = mine.pop(w, None)
        if rest:
            queue.appendleft(rest)

    def _restart(self, w: str, mine: dict, queue: deque) -> None:
        """Restart worker ``w`` (its nanny starts a fresh process under a new address)."""
        self._requeue(w, mine, queue)
        if self._restartable:
            try:
                self.client.restart_workers([w], timeout=_CONNECT_TIMEOUT, raise_for_error=True)
            except Exception:  # no nanny (a bare dask-worker): it cannot be restarted
                self._restartable = False
        if not self._restartable:
            try:  # a worker that cannot be restarted may still be running the cell: retire it
                self.client.retire_workers([w], close_workers=True)
            except Exception:
                pass
        self._info.pop(w, None)
