"""The implementation registry: the single source of truth.

Every implementation is a plain function registered once with its metadata::

    @register("lu", "blocked", backend="numpy", family="blocked",
              dtypes=NATIVE_REAL + NATIVE_COMPLEX, parameters={"block": [64, 128]})
    def lu_blocked(A, *, block=128) -> LU: ...

The CLI, the sweep, the conformance tests and the report all read this registry.
Call signatures by op (see :data:`OPS`):

- ``lu, cholesky, qr, qrcp, svd, eigh``: ``f(A, **params)``
- ``solve, lstsq``: ``f(A, b, **params)``
- ``lowrank``: ``f(A, k, rng, **params)``

An implementation whose optional dependency or device is missing is
*unavailable with a reason*; it never raises at import time. Third-party
implementations register through the entry-point group ``factorbench.impls``
(the entry point is a module, importing it registers) or ``--plugin
module_or_path.py``.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from factorbench.accuracy.precision import NATIVE_COMPLEX, NATIVE_REAL, PRECISIONS

__all__ = [
    "OPS",
    "FAMILIES",
    "Impl",
    "register",
    "get",
    "impls",
    "available",
    "load_builtin",
    "load_plugin",
    "RegistryError",
    "NATIVE_REAL",
    "NATIVE_COMPLEX",
]

#: op -> (argument kind, rectangular allowed, input structure required by the op)
OPS: dict[str, dict] = {
    "lu": {"args": "A", "rectangular": False, "structure": "general"},
    "cholesky": {"args": "A", "rectangular": False, "structure": "spd"},
    "qr": {"args": "A", "rectangular": True, "structure": "general"},
    "qrcp": {"args": "A", "rectangular": True, "structure": "general"},
    "svd": {"args": "A", "rectangular": True, "structure": "general"},
    "eigh": {"args": "A", "rectangular": False, "structure": "symmetric"},
    "solve": {"args": "Ab", "rectangular": False, "structure": "general"},
    "lstsq": {"args": "Ab", "rectangular": True, "structure": "general"},
    "lowrank": {"args": "Akr", "rectangular": True, "structure": "general"},
}

FAMILIES = (
    "textbook",
    "library",
    "blocked",
    "recursive",
    "randomized",
    "mixed",
    "distributed",
    "peer",
)

BUILTIN_MODULES = (
    "factorbench.impls.lapack",
    "factorbench.impls.textbook",
    "factorbench.impls.blocked",
    "factorbench.impls.numba_kernels",
    "factorbench.impls.randomized",
    "factorbench.impls.peers",
    "factorbench.impls.mixed",
    "factorbench.impls.distributed",
    "factorbench.impls.gpu",
)
ENTRY_POINT_GROUP = "factorbench.impls"


class RegistryError(ValueError):
    """Unknown op or implementation, or an invalid registration."""


@dataclass(frozen=True)
class Impl:
    """One registered implementation and its metadata.

    Attributes
    ----------
    op, name : str
        The operation (a key of :data:`OPS`) and the implementation's name;
        ``id`` is ``"op/name"``.
    func : callable
        The plain function ``f(A, *, **params) -> Result``.
    backend : str
        numpy | numba | scipy | cupy | dask | sklearn | ...
    family : str
        One of :data:`FAMILIES`.
    device : str
        cpu | gpu.
    dtypes : tuple of str
        Working precisions the impl accepts (names of the precision table).
    max_n : int or None
        Default cap on n for slow impls; larger cells are ``skipped``.
    requires : tuple of str
        Importable modules the impl needs.
    stable : bool
        False for deliberately unstable methods (expected to fail the pass rule
        on hard inputs).
    parameters : dict of str -> list
        Swept parameters, expanded as part of the grid.
    layout : str
        "C" or "F": the memory order the harness hands the input in.
    structure : str
        Input the impl needs: general | symmetric | spd.  Defaults to the op's.
    """

    op: str
    name: str
    func: Callable
    backend: str
    family: str
    device: str = "cpu"
    dtypes: tuple[str, ...] = NATIVE_REAL
    max_n: int | None = None
    requires: tuple[str, ...] = ()
    stable: bool = True
    parameters: dict = field(default_factory=dict)
    layout: str = "C"
    structure: str = "general"
    summary: str = ""

    @property
    def id(self) -> str:
        return f"{self.op}/{self.name}"

    def availability(self) -> tuple[bool, str]:
        """Return ``(True, "")`` or ``(False, reason)``; never raises."""
        for mod in self.requires:
            try:
                found = importlib.util.find_spec(mod) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return False, f"unavailable: module {mod!r} is not installed"
        if self.device == "gpu":
            return _gpu_available()
        return True, ""

    def __call__(self, *args, **kwargs):
        return self.func(*args, **kwargs)


_REGISTRY: dict[str, Impl] = {}
_LOADED = False


def register(
    op: str,
    name: str,
    *,
    backend: str,
    family: str,
    device: str = "cpu",
    dtypes: tuple[str, ...] = NATIVE_REAL,
    max_n: int | None = None,
    requires: tuple[str, ...] = (),
    stable: bool = True,
    parameters: dict | None = None,
    layout: str = "C",
    structure: str | None = None,
):
    """Decorator registering ``func`` as implementation ``op/name``.

    Returns the function unchanged so that it stays a plain, importable
    function.  Re-registering the same id from the same function (module
    reload) replaces it; a different function under a taken id is an error.
    """
    if op not in OPS:
        raise RegistryError(f"unknown op {op!r}{_did_you_mean(op, OPS)}")
    if family not in FAMILIES:
        raise RegistryError(f"unknown family {family!r}{_did_you_mean(family, FAMILIES)}")
    if device not in ("cpu", "gpu"):
        raise RegistryError(f"device must be 'cpu' or 'gpu', not {device!r}")
    if layout not in ("C", "F"):
        raise RegistryError(f"layout must be 'C' or 'F', not {layout!r}")
    bad = [d for d in dtypes if d not in PRECISIONS]
    if bad:
        raise RegistryError(f"{op}/{name}: unknown dtypes {bad}")
    structure = structure or OPS[op]["structure"]
    if structure not in ("general", "symmetric", "spd"):
        raise RegistryError(f"structure must be general|symmetric|spd, not {structure!r}")
    params = {k: list(v) for k, v in (parameters or {}).items()}

    def deco(func):
        doc = (func.__doc__ or "").strip().splitlines()
        impl = Impl(
            op=op,
            name=name,
            func=func,
            backend=backend,
            family=family,
            device=device,
            dtypes=tuple(dtypes),
            max_n=max_n,
            requires=tuple(requires),
            stable=stable,
            parameters=params,
            layout=layout,
            structure=structure,
            summary=doc[0] if doc else "",
        )
        old = _REGISTRY.get(impl.id)
        same = old is not None and (old.func.__module__, old.func.__qualname__) == (
            func.__module__, func.__qualname__)
        if old is not None and not same:
            raise RegistryError(f"implementation {impl.id!r} is already registered")
        _REGISTRY[impl.id] = impl
        return func

    return deco


def load_builtin() -> None:
    """Import the built-in family modules and the entry-point plugins once.

    Raises
    ------
    RegistryError
        An entry-point plugin fails to import (the message names it).
    """
    global _LOADED
    if _LOADED:
        return
    for mod in BUILTIN_MODULES:
        importlib.import_module(mod)
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:
            raise RegistryError(
                f"plugin entry point {ep.name!r} ({ep.value}) failed to import: "
                f"{type(exc).__name__}: {exc}"
            ) from None
    _LOADED = True  # only once everything imported: a failing plugin fails every time


def load_plugin(spec: str) -> None:
    """Import a plugin given as a module name or a path to a ``.py`` file.

    Raises
    ------
    RegistryError
        The module cannot be found or fails to import (the message names it).
    """
    load_builtin()
    try:
        if spec.endswith(".py") or "/" in spec or Path(spec).is_file():
            path = Path(spec).resolve()
            if not path.is_file():
                raise RegistryError(f"plugin file not found: {spec}")
            digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
            modname = f"_factorbench_plugin_{path.stem}_{digest}"
            if modname in sys.modules:
                return
            s = importlib.util.spec_from_file_location(modname, path)
            module = importlib.util.module_from_spec(s)
            sys.modules[modname] = module
            try:
                s.loader.exec_module(module)
            except BaseException:
                del sys.modules[modname]
                raise
        else:
            importlib.import_module(spec)
    except RegistryError:
        raise
    except ModuleNotFoundError as exc:
        raise RegistryError(f"plugin {spec!r} not found: {exc}") from None
    except Exception as exc:
        raise RegistryError(
            f"plugin {spec!r} failed to import: {type(exc).__name__}: {exc}"
        ) from None


def impls(op: str | None = None) -> list[Impl]:
    """All registered implementations (of one op), sorted by id."""
    load_builtin()
    if op is not None and op not in OPS:
        raise RegistryError(f"unknown op {op!r}{_did_you_mean(op, OPS)}")
    return sorted(
        (i for i in _REGISTRY.values() if op is None or i.op == op), key=lambda i: i.id
    )


def get(impl_id: str) -> Impl:
    """Look up ``"op/name"``; unknown ids raise with the closest names."""
    load_builtin()
    try:
        return _REGISTRY[impl_id]
    except KeyError:
        raise RegistryError(
            f"unknown implementation {impl_id!r}{_did_you_mean(impl_id, _REGISTRY)}"
        ) from None


def available(op: str | None = None) -> dict[str, tuple[bool, str]]:
    """Map every impl id (of one op) to ``(available, reason)``."""
    return {i.id: i.availability() for i in impls(op)}


def _did_you_mean(word, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=3, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else ""


_GPU_STATE: tuple[bool, str] | None = None


def _gpu_available() -> tuple[bool, str]:
    """Probe CuPy and a CUDA device lazily, once per process."""
    global _GPU_STATE
    if _GPU_STATE is None:
        try:
            import cupy  # noqa: F401

            n = cupy.cuda.runtime.getDeviceCount()
            _GPU_STATE = (True, "") if n > 0 else (False, "unavailable: no CUDA device")
        except ImportError:
            _GPU_STATE = (False, "unavailable: cupy is not installed")
        except Exception as exc:  # CUDA driver missing, etc.
            _GPU_STATE = (False, f"unavailable: {type(exc).__name__}: {exc}")
    return _GPU_STATE
