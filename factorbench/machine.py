"""Machine fingerprint, library versions and the GEMM peak probe.

A run records where it ran (:func:`fingerprint`), with what software
(:func:`versions`, :func:`git_commit`), and the best GEMM rate the machine
reaches for each working dtype (:func:`gemm_peaks`). The GEMM rate is the
ceiling against which every factorization's GFLOP/s is normalised
(``peak_fraction``, design section 6): LAPACK factorizations spend most of
their flops in GEMM, so the GEMM rate is the practical roof on that machine.

Choices where the contract was silent, and why:

- The GEMM probe multiplies into a preallocated output (``np.matmul(A, B,
  out=C)``) so the rate measures the kernel, not the allocator.  NumPy and
  SciPy wheels each bundle their own OpenBLAS (often different versions),
  and the LAPACK impls run on SciPy's: the probe times both libraries' GEMM
  (SciPy's xGEMM on Fortran-ordered operands, written into C) and keeps the
  faster, so no impl can beat its ceiling by using the other library.  The
  run probes at n = the largest size it sweeps, clipped to 1024..2048
  (:func:`gemm_size`): at n = 1024 OpenBLAS is not yet at its asymptotic
  rate, and getrf at n = 4096 measured 1.03x the float32 ceiling probed
  at n = 1024 with NumPy's library alone. A warm-up
  call (excluded) is followed by timed calls until their total reaches
  ``min_time`` or ``repeats`` calls were made, and the fastest call is
  reported: a ceiling is a best case. The probe runs with the BLAS
  thread setting in force, so call it inside
  :func:`factorbench.timing.blas_threads` with the run's thread count.
- ``fingerprint`` reads the BLAS description with the requested thread limit
  applied, so the recorded ``num_threads`` is the one the run uses.
- ``fingerprint`` adds ``usable_cores``: the CPUs this process may run on
  (its affinity mask). In a container or under ``taskset`` it is smaller than
  ``logical_cores``, and it is what bounds the thread count that helps.
- ``versions`` looks versions up in the installed distributions' metadata and
  never imports the packages: importing CuPy initialises CUDA, which is slow,
  can fail, and must not happen in a process that only records versions.
  Besides the packages named in the design it records ``ml_dtypes`` (the
  emulated low precisions' rounding comes from it) and ``distributed``.
- The GPU (:func:`gpus`, :func:`gpu_gemm_peaks`) is described through CuPy,
  which is imported only when ``importlib.util.find_spec("cupy")`` finds it, so
  a CPU-only machine pays nothing.  Its GEMM ceilings are probed on the device
  (``cupy.matmul`` into a preallocated output, timed with CUDA events) at the
  start of a run that includes GPU impls, at n = the largest size swept clipped
  to 4096..8192 (:func:`gpu_gemm_size`: a GPU reaches its GEMM rate only on
  larger operands than a CPU), and stored in the run's GEMM dict next to the
  host's under :func:`ceiling_key` (``"gpu:float64"``), so a GPU cell's
  ``peak_fraction`` divides by the ceiling of the device it ran on and a
  resumed run reads both back.  float32 is probed as CuPy runs it by default
  (true FP32; TF32 only with ``CUPY_TF32=1``).
- ``git_commit`` treats a work tree whose state cannot be read as dirty: a
  result tagged with a clean commit must be reproducible from that commit.

References
----------
.. [1] L. S. Blackford and J. J. Dongarra, "Installation guide for LAPACK",
   LAPACK Working Note 41, 1999 (operation counts; a complex multiply-add
   is 4 real multiplications and 4 real additions, hence 8 n^3 for ZGEMM).
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from factorbench.timing import blas_info, blas_threads, time_call

__all__ = [
    "GEMM_DTYPES",
    "fingerprint",
    "versions",
    "gemm_flops",
    "gemm_peak",
    "gemm_peaks",
    "gemm_size",
    "gpus",
    "gpu_gemm_peak",
    "gpu_gemm_peaks",
    "gpu_gemm_size",
    "ceiling_key",
    "git_commit",
]

#: Dtypes the GEMM probe supports, mapped to flops per n^3 of C = A @ B
#: (LAWN 41: 2 for real; 8 for complex, 4 real multiplications and 4 real
#: additions per complex multiply-add).
GEMM_DTYPES: dict[str, int] = {
    "float64": 2,
    "float32": 2,
    "complex128": 8,
    "complex64": 8,
}

# Import names of the packages versions() reports (also their keys). The first
# group is required by factorbench; the rest are optional backends and are
# omitted when not installed.
_VERSION_PACKAGES = (
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "threadpoolctl",
    "numba",
    "cupy",
    "dask",
    "distributed",
    "sklearn",
    "ml_dtypes",
)

# git and sysctl must never hang a run (network file systems, a huge work tree).
_SUBPROCESS_TIMEOUT_S = 2.0

# SHA-1 object names, or SHA-256 in repositories created with that format.
_COMMIT_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

# Fixed so that the probe's operands, and hence its cache behaviour, are the
# same on every run.
_GEMM_SEED = 0


def _read_text(path: str) -> str | None:
    """Return a file's text, or None when it cannot be read (not Linux)."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _cpu_model() -> str | None:
    """CPU model name from /proc/cpuinfo, sysctl on macOS, else platform."""
    cpuinfo = _read_text("/proc/cpuinfo")
    if cpuinfo:
        for line in cpuinfo.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=_SUBPROCESS_TIMEOUT_S,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            return out
    return platform.processor() or None


def _physical_cores() -> int | None:
    """Count distinct (package, core) pairs in /proc/cpuinfo; None if absent.

    This is cheap and exact on x86 Linux; other systems (ARM cpuinfo has no
    core ids, macOS has no /proc) get None rather than a guess.
    """
    cpuinfo = _read_text("/proc/cpuinfo")
    if not cpuinfo:
        return None
    cores = set()
    for block in cpuinfo.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        if "core id" in fields:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    return len(cores) or None


def _usable_cores() -> int | None:
    """CPUs in this process's affinity mask (None where it is not exposed)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _memory_bytes() -> int | None:
    """Physical memory from /proc/meminfo, else sysconf, else None."""
    meminfo = _read_text("/proc/meminfo")
    if meminfo:
        match = re.search(r"^MemTotal:\s+(\d+)\s*kB", meminfo, re.MULTILINE)
        if match:
            return int(match.group(1)) * 1024
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def fingerprint(threads: int | None = None) -> dict[str, Any]:
    """Describe the machine a run executes on.

    Parameters
    ----------
    threads : int or None, optional
        The BLAS thread count the run requests (``--threads``); ``None`` for
        the library default. The BLAS description is read with this limit
        applied.

    Returns
    -------
    dict
        JSON-serialisable, with keys ``host``, ``platform``, ``machine``,
        ``cpu_model``, ``logical_cores`` (``os.cpu_count()``),
        ``physical_cores`` (None when not cheaply known), ``usable_cores``
        (affinity mask, None when not exposed), ``memory_bytes``, ``python``,
        ``numpy_version``, ``blas`` (:func:`factorbench.timing.blas_info`),
        ``threads`` and ``gpus`` (:func:`gpus`: one description per visible
        CUDA device, an empty list without CuPy or a device).
    """
    with blas_threads(threads):
        blas = blas_info()
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": _physical_cores(),
        "usable_cores": _usable_cores(),
        "memory_bytes": _memory_bytes(),
        "python": platform.python_version(),
        "numpy_version": np.__version__,
        "blas": blas,
        "threads": threads,
        "gpus": gpus(),
    }


def gpus() -> list[dict[str, Any]]:
    """The CUDA devices CuPy sees, or ``[]`` (no CuPy, no driver, no device).

    Returns
    -------
    list of dict
        Per device: ``index``, ``name``, ``memory_bytes`` (total global
        memory), ``compute_capability`` (``"9.0"``), ``multiprocessors``,
        ``driver`` and ``cuda_runtime`` (CUDA versions as ``"13.0"``: the
        driver's and the one CuPy was built against).  CuPy is imported only
        when it is installed; reading the properties creates no CUDA context.
    """
    from factorbench.device import cupy_or_none

    cupy = cupy_or_none()
    if cupy is None:
        return []
    try:
        rt = cupy.cuda.runtime
        count = int(rt.getDeviceCount())
        driver = _cuda_version(rt.driverGetVersion())
        runtime = _cuda_version(rt.runtimeGetVersion())
        props = [rt.getDeviceProperties(i) for i in range(count)]
    except Exception:  # no driver, no device: nothing to describe
        return []
    out = []
    for i, p in enumerate(props):
        name = p.get("name")
        out.append({
            "index": i,
            "name": name.decode(errors="replace") if isinstance(name, bytes) else name,
            "memory_bytes": _int_or_none(p.get("totalGlobalMem")),
            "compute_capability": f"{p.get('major')}.{p.get('minor')}",
            "multiprocessors": _int_or_none(p.get("multiProcessorCount")),
            "driver": driver,
            "cuda_runtime": runtime,
        })
    return out


def _cuda_version(v) -> str:
    """CUDA's integer version (12040) as text ("12.4")."""
    v = int(v)
    return f"{v // 1000}.{v % 1000 // 10}"


def _int_or_none(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _distribution_version(import_name: str, owners: dict[str, list[str]]) -> str | None:
    """Version of the installed distribution providing ``import_name``."""
    # The distribution name differs from the import name for some packages
    # (sklearn -> scikit-learn, cupy -> cupy-cuda12x); fall back to the import
    # name for installs whose metadata lacks a top-level listing.
    for dist in [*owners.get(import_name, []), import_name]:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def versions() -> dict[str, str]:
    """Versions of factorbench, Python and the libraries that shape results.

    Returns
    -------
    dict of str to str
        ``factorbench``, ``python`` and each of numpy, scipy, pandas,
        matplotlib, threadpoolctl, numba, cupy, dask, distributed, sklearn and
        ml_dtypes that is installed; packages that are not installed are
        omitted. Nothing is imported to find a version (importing CuPy would
        initialise CUDA).
    """
    from factorbench import __version__

    found = {"factorbench": __version__, "python": platform.python_version()}
    owners = metadata.packages_distributions()
    for name in _VERSION_PACKAGES:
        version = _distribution_version(name, owners)
        if version is not None:
            found[name] = version
    return found


def _gemm_dtype(dtype: Any) -> str:
    """Canonical GEMM dtype name; ValueError for anything else."""
    name = None
    # np.dtype(None) is float64: a missing dtype must not silently become one.
    if dtype is not None:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            pass
    if name not in GEMM_DTYPES:
        raise ValueError(f"unsupported GEMM dtype {dtype!r}; expected one of {list(GEMM_DTYPES)}")
    return name


def gemm_flops(dtype: str, n: int) -> int:
    """Nominal flops of ``C = A @ B`` for ``n x n`` operands (LAWN 41).

    Parameters
    ----------
    dtype : str
        One of :data:`GEMM_DTYPES`.
    n : int
        Matrix order.

    Returns
    -------
    int
        ``2 n^3`` for real dtypes, ``8 n^3`` for complex.
    """
    return GEMM_DTYPES[_gemm_dtype(dtype)] * int(n) ** 3


def _random_matrix(rng: np.random.Generator, n: int, dtype: np.dtype) -> np.ndarray:
    """Standard normal ``n x n`` matrix in ``dtype`` (real and imaginary parts)."""
    real = np.dtype(dtype).type(0).real.dtype
    out = rng.standard_normal((n, n), dtype=real)
    if np.issubdtype(dtype, np.complexfloating):
        out = out + 1j * rng.standard_normal((n, n), dtype=real)
    return np.ascontiguousarray(out, dtype=dtype)


def gemm_peak(dtype: str, *, n: int = 1024, min_time: float = 0.1, repeats: int = 5) -> float:
    """Best GEMM rate in GFLOP/s for one dtype on this machine.

    Parameters
    ----------
    dtype : str
        ``"float64"``, ``"float32"``, ``"complex128"`` or ``"complex64"``
        (anything :func:`numpy.dtype` maps to one of these).
    n : int, optional
        Order of the square operands.
    min_time : float, optional
        Stop timing once the timed calls add up to this many seconds...
    repeats : int, optional
        ...or after this many timed calls, whichever comes first (at least
        one timed call after an excluded warm-up call).

    Returns
    -------
    float
        ``gemm_flops(dtype, n) / fastest call / 1e9``.

    Raises
    ------
    ValueError
        For an unsupported dtype or non-positive ``n``/``repeats``.
    RuntimeError
        If the calls are too fast for the timer to resolve (raise ``n``).

    Notes
    -----
    At ``n = 1024`` this takes about 0.1-0.3 s per dtype on a 2-core
    machine (one warm-up and up to ``repeats`` calls of 10-150 ms each).
    """
    name = _gemm_dtype(dtype)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    rng = np.random.default_rng(_GEMM_SEED)
    a = _random_matrix(rng, n, np.dtype(name))
    b = _random_matrix(rng, n, np.dtype(name))
    c = np.empty((n, n), dtype=name)
    fastest = min(_fastest_call(func, args, kwargs, min_time, repeats)
                  for func, args, kwargs in _gemm_calls(name, a, b, c))
    if fastest <= 0.0:
        raise RuntimeError(f"GEMM at n={n} is too fast to time; use a larger n")
    return gemm_flops(name, n) / fastest / 1e9


def gemm_size(sizes: Iterable[int]) -> int:
    """Order of the GEMM probe for a run over ``sizes``: the largest, clipped to
    1024..2048 (large enough for the asymptotic rate, small enough to take
    well under a second per dtype)."""
    return int(min(max(max(sizes, default=1024), 1024), 2048))


def _gemm_calls(name, a, b, c):
    """(func, args, kwargs) of each library's GEMM into ``c``: NumPy's matmul,
    then SciPy's xGEMM on Fortran-ordered copies (no transposes inside)."""
    calls = [(np.matmul, (a, b), {"out": c})]
    try:
        from scipy.linalg import blas
    except ImportError:  # pragma: no cover - scipy is a dependency
        return calls
    gemm = getattr(blas, {"float32": "s", "float64": "d", "complex64": "c",
                          "complex128": "z"}[name] + "gemm")
    aF, bF, cF = (np.asfortranarray(x) for x in (a, b, c))
    calls.append((gemm, (1.0, aF, bF), {"c": cF, "overwrite_c": 1}))
    return calls


def _fastest_call(func, args, kwargs, min_time, repeats) -> float:
    # The operands are never overwritten, so make_args hands out the same
    # arrays instead of copies.
    _, timing = time_call(
        func,
        lambda: (args, kwargs),
        min_time=min_time,
        min_repeats=1,
        max_repeats=repeats,
        max_time=float("inf"),
    )
    return timing.min_s


def gemm_peaks(dtypes: Iterable[str], *, n: int = 1024, min_time: float = 0.1) -> dict[str, float]:
    """GEMM rates for the dtypes of a run.

    Parameters
    ----------
    dtypes : iterable of str
        Working precisions of the run; duplicates are probed once. Emulated
        precisions (``Precision.emulated`` in
        :mod:`factorbench.accuracy.precision`) are omitted: they have no
        hardware GEMM to serve as their ceiling, so their ``peak_fraction``
        stays empty.
    n, min_time : optional
        Passed to :func:`gemm_peak`.

    Returns
    -------
    dict of str to float
        GFLOP/s keyed by canonical dtype name, in first-seen order.

    Raises
    ------
    ValueError
        For a dtype that is neither a GEMM dtype nor an emulated precision.
    """
    return {name: gemm_peak(name, n=n, min_time=min_time) for name in _probe_dtypes(dtypes)}


def _probe_dtypes(dtypes: Iterable[str]) -> list[str]:
    """Canonical GEMM dtypes of a run's precisions, once each, emulated ones left out."""
    from factorbench.accuracy.precision import PRECISIONS

    names = []
    for dtype in dtypes:
        known = PRECISIONS.get(str(dtype))
        if known is not None and known.emulated:
            continue
        names.append(_gemm_dtype(dtype))
    return list(dict.fromkeys(names))


def ceiling_key(dtype: str, device: str = "cpu") -> str:
    """Key of a GEMM ceiling in a run's GEMM dict: the dtype name for the host
    (``"float64"``), ``"<device>:<dtype>"`` for another device (``"gpu:float64"``)."""
    return dtype if device == "cpu" else f"{device}:{dtype}"


def gpu_gemm_size(sizes: Iterable[int]) -> int:
    """Order of the GPU's GEMM probe: the largest size swept, clipped to 4096..8192
    (a GPU's GEMM is latency-bound on smaller operands; 8192 takes milliseconds)."""
    return int(min(max(max(sizes, default=4096), 4096), 8192))


def gpu_gemm_peak(dtype: str, *, n: int = 4096, min_time: float = 0.1, repeats: int = 10) -> float:
    """Best GEMM rate in GFLOP/s for one dtype on the current CUDA device.

    ``cupy.matmul(A, B, out=C)`` on operands drawn on the device, one warm-up
    call (cuBLAS handle, kernel selection) excluded, then timed calls (CUDA
    events, :class:`factorbench.timing.EventTimer`) until their total reaches
    ``min_time`` or ``repeats`` calls were made; the fastest counts.  The
    operands and CuPy's memory pool are released afterwards.

    Raises
    ------
    ValueError
        For an unsupported dtype or non-positive ``n``/``repeats``.
    RuntimeError
        If the calls are too fast for the events to resolve.
    """
    from factorbench.device import modules
    from factorbench.timing import EventTimer

    name = _gemm_dtype(dtype)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    cupy = modules()[0]
    real = np.dtype(name).type(0).real.dtype
    rng = cupy.random.default_rng(_GEMM_SEED)

    def draw():
        x = rng.standard_normal((n, n), dtype=real)
        return (x + 1j * rng.standard_normal((n, n), dtype=real)).astype(name) if (
            np.dtype(name).kind == "c") else x

    operands = [draw(), draw(), cupy.empty((n, n), dtype=name)]  # A, B, C
    try:
        _, timing = time_call(
            cupy.matmul, lambda: (operands[:2], {"out": operands[2]}), min_time=min_time,
            min_repeats=1, max_repeats=repeats, max_time=float("inf"), timer=EventTimer(cupy.cuda))
    finally:
        operands.clear()  # the pool can only free blocks nothing refers to
        cupy.get_default_memory_pool().free_all_blocks()
    if timing.min_s <= 0.0:
        raise RuntimeError(f"GPU GEMM at n={n} is too fast to time; use a larger n")
    return gemm_flops(name, n) / timing.min_s / 1e9


def gpu_gemm_peaks(dtypes: Iterable[str], *, n: int = 4096,
                   min_time: float = 0.1) -> dict[str, float]:
    """GEMM rates of the current CUDA device for the dtypes of a run.

    Returns
    -------
    dict of str to float
        GFLOP/s keyed by :func:`ceiling_key` (``"gpu:float64"``), emulated
        precisions left out as in :func:`gemm_peaks`.
    """
    return {ceiling_key(name, "gpu"): gpu_gemm_peak(name, n=n, min_time=min_time)
            for name in _probe_dtypes(dtypes)}


def _git(args: list[str], cwd: Path) -> str | None:
    """Run git in ``cwd``; stdout on success, None on any failure."""
    env = dict(os.environ)
    # Read-only queries must not take the index lock another git may hold.
    env["GIT_OPTIONAL_LOCKS"] = "0"
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_SUBPROCESS_TIMEOUT_S,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_commit(path: str | os.PathLike[str] | None = None) -> str | None:
    """Commit of the git work tree containing ``path`` (default: the cwd).

    Parameters
    ----------
    path : path-like, optional
        A directory inside the work tree.

    Returns
    -------
    str or None
        The hex ``HEAD`` commit (40 digits; 64 in SHA-256 repositories), with
        ``"+dirty"`` appended when ``git status --porcelain`` lists changes or
        untracked files, or when the status cannot be read. ``None`` when
        ``path`` is not inside a work tree, the repository has no commit yet,
        or git is missing or slow.
    """
    cwd = Path(path) if path is not None else Path.cwd()
    if not cwd.is_dir():
        return None
    out = _git(["rev-parse", "--is-inside-work-tree", "HEAD"], cwd)
    if out is None:
        return None
    lines = out.split()
    if len(lines) != 2 or lines[0] != "true" or not _COMMIT_RE.fullmatch(lines[1]):
        return None
    commit = lines[1]
    status = _git(["status", "--porcelain"], cwd)
    if status is None or status.strip():
        commit += "+dirty"
    return commit
