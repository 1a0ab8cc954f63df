"""The GPU side of one cell: inputs to the device, results back, errors raised, memory freed.

A cell whose impl runs on the GPU (``Impl.device == "gpu"``) is measured by
the same :func:`factorbench.timing.time_call` as any other, with four
differences, all held by :class:`Gpu`:

1. The matrix is generated and rounded on the host, as for every cell, and
   copied to the device *outside* the timed region, before every call, in
   the memory order the impl declares (:meth:`Gpu.inputs`).  Each copy is
   timed with CUDA events.
2. The clock is :class:`factorbench.timing.EventTimer` (CUDA events around
   the call, waited for: ``cupyx.profiler.benchmark``'s semantics).
3. The first call, whose result the metrics judge, runs under
   ``cupyx.errstate(linalg="raise")``: CuPy then reads cuSOLVER's ``info``
   after every routine and raises ``LinAlgError`` (a Cholesky of a matrix
   that is not positive definite becomes an ``error`` record, not silent
   garbage).  The timed repeats run in CuPy's default mode, which skips that
   check and the device synchronisation it costs (``lu_factor`` and
   ``lstsq`` read their ``info`` or rank in every mode, so they pay it always).
4. The result is copied back to host NumPy arrays (:meth:`Gpu.to_host`,
   timed too) before the precision guard and the metrics, which run on the
   host in float64 like every other cell's.

``transfer_s`` (:attr:`Gpu.transfer_s`) is the median host-to-device copy of
the inputs over the calls (the first copy also pays the memory pool's first
allocation, so the median is the steady state) plus the device-to-host copy of
the outputs the metrics need: kernel time plus ``transfer_s`` is what a caller
holding host arrays pays.

Memory: :meth:`Gpu.release` returns every cached block of CuPy's memory
pools to the driver after each cell, so no cell's first call runs on blocks a
larger earlier cell left cached and the pool never holds the largest size of
the sweep while small cells run; the cost is a few allocations in the next
cell's first call, which is excluded from the statistics anyway.

CuPy is imported only by :func:`modules`, when a GPU cell runs.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable

import numpy as np

from factorbench.timing import EventTimer

__all__ = ["Gpu", "modules", "cupy_or_none"]


def modules():
    """``(cupy, cupyx)``, imported on first use."""
    import cupy
    import cupyx

    return cupy, cupyx


def cupy_or_none():
    """The ``cupy`` module when it is installed and imports, else None.

    ``importlib.util.find_spec`` is asked first, so a machine without CuPy
    never pays for an import attempt.
    """
    try:
        if importlib.util.find_spec("cupy") is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return modules()[0]
    except Exception:  # a broken CUDA install: no GPU for this machine
        return None


class Gpu:
    """The device a GPU cell runs on (the current CUDA device), through CuPy.

    Attributes
    ----------
    timer : EventTimer
        The clock of the cell's calls and copies.
    """

    def __init__(self):
        self.cupy, self.cupyx = modules()
        self.timer = EventTimer(self.cupy.cuda)
        self._h2d: list[float] = []
        self._d2h = 0.0

    # -- inputs ------------------------------------------------------------
    def inputs(self, make_args: Callable) -> Callable:
        """Wrap a host ``make_args`` so that every array it makes is copied to the device.

        The copy happens outside the timed region (``time_call`` calls
        ``make_args`` before starting its clock); its duration is kept for
        :attr:`transfer_s`.  Arguments that are not NumPy arrays (a rank, a
        random generator, parameters) are passed unchanged: random numbers are
        drawn on the host, so a seed gives the same sketch on every device.
        """

        def make():
            args, kwargs = make_args()
            start = self.timer()
            moved = tuple(self._to_device(a) for a in args)
            self._h2d.append(self.timer() - start)
            return moved, kwargs

        return make

    def _to_device(self, x):
        if not isinstance(x, np.ndarray):
            return x
        order = "F" if x.ndim > 1 and x.flags.f_contiguous and not x.flags.c_contiguous else "C"
        return self.cupy.asarray(x, order=order)

    # -- the call ----------------------------------------------------------
    def first_call_raises(self, func: Callable) -> Callable:
        """``func`` with its first call under ``cupyx.errstate(linalg="raise")``.

        The first call's result is the one the metrics judge; later calls
        (timed repeats) run in CuPy's default ``"ignore"`` mode, without the
        device synchronisation reading cuSOLVER's ``info`` costs.
        """
        errstate = self.cupyx.errstate
        first = True

        def call(*args, **kwargs):
            nonlocal first
            if first:
                first = False
                with errstate(linalg="raise"):
                    return func(*args, **kwargs)
            return func(*args, **kwargs)

        return call

    # -- outputs -----------------------------------------------------------
    def to_host(self, result):
        """``result`` with every device array replaced by a host NumPy copy (timed).

        Fields of a result dataclass and the values of its ``extras`` are
        copied; dtypes are kept, so the precision guard still sees what the
        impl returned.  A 0-d device array in ``extras`` (an iteration count)
        becomes a Python scalar.  Anything else is returned as it is.
        """
        start = self.timer()
        out = self._host_result(result)
        self._d2h = self.timer() - start
        return out

    def _host_result(self, result):
        if not dataclasses.is_dataclass(result) or isinstance(result, type):
            return result
        changes = {}
        for f in dataclasses.fields(result):
            value = getattr(result, f.name)
            if f.name == "extras" and isinstance(value, dict):
                changes[f.name] = {k: self._host(v, scalar=True) for k, v in value.items()}
            elif isinstance(value, self.cupy.ndarray):
                changes[f.name] = self._host(value)
        return dataclasses.replace(result, **changes) if changes else result

    def _host(self, x, *, scalar: bool = False):
        if not isinstance(x, self.cupy.ndarray):
            return x
        host = x.get()
        return host.item() if scalar and host.ndim == 0 else host

    @property
    def transfer_s(self) -> float | None:
        """Median input copy plus the output copy, in seconds (None before any copy)."""
        if not self._h2d:
            return None
        return float(np.median(self._h2d)) + self._d2h

    # -- memory ------------------------------------------------------------
    def out_of_memory(self, exc: BaseException) -> bool:
        """Whether ``exc`` is CuPy's device out-of-memory error (a ``MemoryError``
        about the GPU, which leaves the host heap and the worker sound)."""
        return isinstance(exc, self.cupy.cuda.memory.OutOfMemoryError)

    def release(self) -> None:
        """Return the cached blocks of CuPy's device and pinned memory pools to the driver."""
        self.cupy.get_default_memory_pool().free_all_blocks()
        self.cupy.get_default_pinned_memory_pool().free_all_blocks()
