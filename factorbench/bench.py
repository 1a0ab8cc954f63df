"""Benchmark cases for suites driven by other tools (asv, pytest-benchmark).

A :class:`Case` is one (op, implementation, n, dtype) with everything a
benchmark needs outside its timed region: the cell the sweep would run for
it, the matrix and right-hand side built exactly as the worker builds them
(same seeds, so the same bytes as the sweep's cell), fresh inputs in the
layout the implementation declares, the first call made and checked, and
the accuracy metrics of that call.  The timed region of a suite is then
the implementation call alone::

    from factorbench import bench

    bench.load_plugins()                    # FACTORBENCH_PLUGINS, if set
    for impl in bench.variants("lu"):
        try:
            case = bench.prepare("lu", impl, 256, "float64")
        except bench.Skip as why:            # unavailable, dtype, n > max_n
            print(impl, "skipped:", why)
            continue
        args, kwargs = case.inputs()         # fresh copy: impls may overwrite it
        case.impl.func(*args, **kwargs)      # <- the only thing to time
        print(impl, case.metric("backward_ratio"))

Choices where the design is silent, and why:

- The matrix is the one the sweep makes for the cell ``(op, impl, n,
  dtype)`` with the op's first default matrix family that the impl takes
  (randsvd for most ops, spd for cholesky and eigh and for impls that need
  SPD input, lowrank for lowrank), ``kappa`` = :data:`KAPPA`, seed 0 and
  base seed 0: ``factorbench run --ops OP --sizes N --kappas 1e2 --dtypes
  DTYPE`` holds the same matrix.  kappa 1e2 keeps every registered method
  (CholeskyQR's kappa^2 u included) away from breakdown in float32, so a
  regression suite measures regressions rather than expected failures.
- :class:`Skip` subclasses ``NotImplementedError``: asv treats that
  exception in ``setup`` as "skip this parameter combination", and a pytest
  suite turns it into ``pytest.skip(str(exc))``.
- A wrong result type or precision raises :class:`CaseError` at the first
  call, as the worker records an ``error`` cell: a suite must not time an
  impl that returns the wrong thing.  Non-finite metrics are returned as
  they are (an unstable method failing is a result).
- :func:`prepare` keeps the last case, because asv re-runs ``setup`` before
  every timed call: re-entering the same case costs one copy of the input.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from factorbench import impls as registry

__all__ = [
    "SIZES",
    "DTYPES",
    "KAPPA",
    "METRICS",
    "OP_METRICS",
    "PLUGINS_ENV",
    "Skip",
    "CaseError",
    "Case",
    "load_plugins",
    "variants",
    "skip_reason",
    "prepare",
]

#: Sizes and precisions of the regression suites: small enough for CI.
SIZES: tuple[int, ...] = (64, 256)
DTYPES: tuple[str, ...] = ("float64", "float32")
#: Target 2-norm condition number of the benchmark matrices (see module docstring).
KAPPA = 1e2

#: The metrics a suite tracks (lower is better for every one), and their units.
METRICS: dict[str, str] = {
    "backward_ratio": "x max(m,n) u",
    "orthogonality_loss": "||I - Q^H Q||_1",
    "growth_factor": "max|U| / max|A|",
    "kappa_scaled_error": "x kappa u",
    "lowrank_error_ratio": "x optimal rank-k error",
}

#: Which of :data:`METRICS` each op yields (see factorbench.accuracy.metrics).
OP_METRICS: dict[str, tuple[str, ...]] = {
    "lu": ("backward_ratio", "growth_factor"),
    "cholesky": ("backward_ratio",),
    "qr": ("backward_ratio", "orthogonality_loss"),
    "qrcp": ("backward_ratio", "orthogonality_loss"),
    "svd": ("backward_ratio", "orthogonality_loss"),
    "eigh": ("backward_ratio", "orthogonality_loss"),
    "solve": ("backward_ratio", "kappa_scaled_error"),
    "lstsq": ("backward_ratio", "kappa_scaled_error"),
    "lowrank": ("orthogonality_loss", "lowrank_error_ratio"),
}

#: Environment variable: comma-separated plugin modules or ``.py`` paths.
PLUGINS_ENV = "FACTORBENCH_PLUGINS"


class Skip(NotImplementedError):
    """The case cannot run here; the message is the registry's or the sweep's reason."""


class CaseError(RuntimeError):
    """The implementation returned a result of the wrong type or precision."""


def load_plugins(specs: str | Iterable[str] | None = None) -> list[str]:
    """Load the built-in implementations and plugins; return the plugins loaded.

    Parameters
    ----------
    specs : str or iterable of str, optional
        Plugin modules or ``.py`` paths (a string is split at commas).  By
        default the value of the environment variable :data:`PLUGINS_ENV`.

    Raises
    ------
    factorbench.impls.RegistryError
        A plugin cannot be found or fails to import.
    """
    if specs is None:
        specs = os.environ.get(PLUGINS_ENV, "")
    if isinstance(specs, str):
        specs = specs.split(",")
    loaded = [s.strip() for s in specs if s.strip()]
    registry.load_builtin()
    for spec in loaded:
        registry.load_plugin(spec)
    return loaded


def _label(name: str, params: dict) -> str:
    if not params:
        return name
    return f"{name}[{','.join(f'{k}={v}' for k, v in params.items())}]"


def _variants(op: str) -> dict[str, tuple[registry.Impl, dict]]:
    """label -> (impl, params), one per parameter combination, as the sweep expands them."""
    out = {}
    for impl in registry.impls(op):
        names = sorted(impl.parameters)
        for combo in itertools.product(*(impl.parameters[k] for k in names)):
            params = dict(zip(names, combo, strict=True))
            out[_label(impl.name, params)] = (impl, params)
    return out


def variants(op: str) -> list[str]:
    """Every implementation of ``op`` as benchmark labels, in registry (id) order.

    A label is the implementation's name (``"lapack"``), or, for one with
    swept parameters, its name and one combination (``"blocked[block=64]"``).
    Unavailable implementations are listed too: :func:`prepare` skips them
    with their reason.
    """
    return list(_variants(op))


def _lookup(op: str, impl: str) -> tuple[registry.Impl, dict]:
    if impl.startswith(f"{op}/"):
        impl = impl[len(op) + 1:]
    table = _variants(op)
    if impl not in table:
        import difflib

        close = difflib.get_close_matches(impl, table, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise registry.RegistryError(f"unknown {op} implementation {impl!r}{hint}")
    return table[impl]


def _cell(op: str, impl: str, n: int, dtype: str, kappa: float) -> tuple[registry.Impl, dict]:
    """The sweep's cell for the case (may carry ``resolved``: a skip)."""
    from factorbench.spec import SweepSpec
    from factorbench.sweep import expand

    entry, params = _lookup(op, impl)
    spec = SweepSpec(ops=[op], impls=[entry.id], sizes=[int(n)], kappas=[float(kappa)],
                     dtypes=[dtype], params={k: [v] for k, v in params.items()})
    cells = [c for c in expand(spec) if c["params"] == params]
    if not cells:
        raise Skip(f"{entry.id} takes none of the matrix families of {op}")
    return entry, cells[0]  # the op's first default family that the impl takes


def skip_reason(op: str, impl: str, n: int, dtype: str, *, kappa: float = KAPPA) -> str | None:
    """Why the case would be skipped (the sweep's reason), or None; builds no matrix."""
    try:
        _, cell = _cell(op, impl, n, dtype, kappa)
    except Skip as exc:
        return str(exc)
    return cell["resolved"][1] if cell["resolved"] else None


@dataclass
class Case:
    """One prepared benchmark case; build it with :func:`prepare`.

    Attributes
    ----------
    op, label, n, dtype : str, str, int, str
        What was asked for.
    impl : factorbench.impls.Impl
        The registered implementation; time ``impl.func(*args, **kwargs)``.
    cell : dict
        The sweep's cell (kind, m, n, rank, kappa, seeds, params, key).
    A : ndarray
        The working-precision matrix (shared: never hand it to the impl,
        use :meth:`inputs`).
    b, x_true : ndarray or None
        Right-hand side and exact solution (solve, lstsq).
    kappa : float or None
        Condition number used by the metrics (of the rounded matrix).
    result : object
        The checked result of the first call.
    first_call_s : float
        Duration of the first call (compilation, workspace allocation).
    """

    op: str
    label: str
    n: int
    dtype: str
    impl: registry.Impl
    cell: dict
    A: Any = field(repr=False)
    b: Any = field(repr=False)
    x_true: Any = field(repr=False)
    kappa: float | None
    result: Any = field(repr=False)
    first_call_s: float
    _matrix: Any = field(repr=False)
    _make: Any = field(repr=False)
    _metrics: dict | None = field(default=None, repr=False)

    @property
    def m(self) -> int:
        return self.cell["m"]

    def inputs(self) -> tuple[tuple, dict]:
        """Fresh ``(args, kwargs)`` for one call, in the impl's declared layout."""
        return self._make()

    def call(self):
        """Call the impl once on fresh inputs and return its result (unchecked)."""
        args, kwargs = self._make()
        return self.impl.func(*args, **kwargs)

    def metrics(self) -> dict:
        """Every metric of the first call's result (``factorbench.accuracy.metrics.bundle``)."""
        if self._metrics is None:
            from factorbench.accuracy.metrics import bundle
            from factorbench.accuracy.precision import precision

            tm = self._matrix
            self._metrics = bundle(self.op, self.A, self.result, u=precision(self.dtype).u,
                                   kappa=self.kappa, b=self.b, x_true=self.x_true,
                                   sigma=tm.sigma, eigenvalues=tm.eigenvalues,
                                   k=self.cell["rank"])
        return self._metrics

    def metric(self, name: str) -> float:
        """One metric of the first call; :class:`Skip` when the op has none such."""
        value = self.metrics().get(name)
        if value is None:
            raise Skip(f"{self.op} has no {name}")
        return float(value)


_LAST: dict = {}


def prepare(op: str, impl: str, n: int, dtype: str, *, kappa: float = KAPPA) -> Case:
    """Build the case, make its first call and check the result.

    Parameters
    ----------
    op : str
        A key of :data:`factorbench.impls.OPS`.
    impl : str
        A label from :func:`variants` (``"lapack"``), or ``"op/name"``.
    n : int
        Number of columns; m follows the sweep's default aspect for the op.
    dtype : str
        Working precision (``"float64"``, ``"float32"``, ...).
    kappa : float, optional
        Target 2-norm condition number (families that control it).

    Raises
    ------
    Skip
        The impl is unavailable, does not claim ``dtype``, or ``n`` is
        above its ``max_n`` (the message is the sweep's reason).
    CaseError
        The first call returned the wrong result type or precision.
    """
    key = (op, impl, int(n), dtype, float(kappa))
    if _LAST.get("key") == key:
        return _LAST["case"]
    _LAST.clear()
    case = _prepare(op, impl, n, dtype, kappa)
    _LAST.update(key=key, case=case)
    return case


def _prepare(op, impl, n, dtype, kappa) -> Case:
    import time

    import numpy as np

    from factorbench import worker
    from factorbench.accuracy.precision import precision, result_dtype_error
    from factorbench.impls.results import RESULT_TYPES

    entry, cell = _cell(op, impl, n, dtype, kappa)
    if cell["resolved"]:
        raise Skip(cell["resolved"][1])
    # The worker's own input path: same matrix, right-hand side and layout as a sweep cell.
    tm, A_w, b, x_true, _ = worker._matrix(cell)
    if not np.isfinite(A_w).all():
        raise Skip(f"the matrix has NaN/Inf after rounding to {dtype}")
    kappa_actual = worker._kappa_actual(A_w)
    make = worker._args_maker(entry, cell, A_w, b)
    args, kwargs = make()
    t0 = time.perf_counter()
    result = entry.func(*args, **kwargs)
    first = time.perf_counter() - t0
    want = RESULT_TYPES[op]
    if not isinstance(result, want):
        raise CaseError(f"{entry.id} returned {type(result).__name__}, expected {want.__name__}")
    why = result_dtype_error(result, precision(dtype).name)
    if why:
        raise CaseError(f"{entry.id}: wrong precision: {why}")
    return Case(op=op, label=impl, n=int(n), dtype=dtype, impl=entry, cell=cell, A=A_w, b=b,
                x_true=x_true,
                kappa=kappa_actual if kappa_actual is not None else (tm.kappa or None),
                result=result, first_call_s=first, _matrix=tm, _make=make)
