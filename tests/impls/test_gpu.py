"""The CuPy GPU backend: registration, unavailability, the worker's GPU path, the machine's GPU.

Tests marked ``gpu`` need CuPy and a CUDA device (tests/conftest.py skips them
elsewhere, with the reason).  The others run anywhere: without CuPy every GPU
impl is unavailable with the reason; the worker's GPU path is exercised through
stand-ins for ``cupy``/``cupyx`` whose "device arrays" are NumPy arrays and whose
CUDA events read a clock the stand-ins advance by fixed amounts, so transfer and
kernel times are known exactly; the GPU twins run on array-api-strict, the
namespace-generic path CuPy takes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
from types import SimpleNamespace

import numpy as np
import pytest

from factorbench import impls as registry
from factorbench.accuracy.metrics import bundle, passed
from factorbench.accuracy.precision import precision
from factorbench.impls import NATIVE_COMPLEX, NATIVE_REAL, Impl, get, impls
from factorbench.impls.gpu import TWINS
from factorbench.impls.results import LU, Cholesky
from factorbench.spec import SweepSpec, preset
from factorbench.sweep import expand
from factorbench.worker import run_cell

GPU_IMPLS = [i for i in impls() if i.device == "gpu"]
DRIVERS = ["lu/cupy", "cholesky/cupy", "qr/cupy", "svd/cupy-gesvd", "svd/cupy-gesvdj",
           "eigh/cupy", "solve/cupy", "lstsq/cupy", "lstsq/cupy-gels"]


def _no_gpu() -> bool:
    return not registry._gpu_available()[0]


# ------------------------------------------------------------- registration


def test_drivers_are_registered_for_cupy_on_the_gpu():
    for impl_id in DRIVERS:
        impl = get(impl_id)
        assert (impl.backend, impl.device, impl.family) == ("cupy", "gpu", "library")
        assert impl.requires == ("cupy",)
        assert impl.dtypes == NATIVE_REAL + NATIVE_COMPLEX
        assert impl.stable and impl.summary
    assert {i.id for i in GPU_IMPLS} == set(DRIVERS) | {f"{t}-cupy" for t in TWINS}


@pytest.mark.parametrize("impl_id", TWINS)
def test_twins_are_the_same_function_on_the_gpu(impl_id):
    cpu, twin = get(impl_id), get(f"{impl_id}-cupy")
    assert twin.func is cpu.func
    assert (twin.backend, twin.device, twin.requires) == ("cupy", "gpu", ("cupy",))
    for field in ("op", "family", "parameters", "layout", "structure", "stable", "max_n"):
        assert getattr(twin, field) == getattr(cpu, field), field
    # the emulated formats are NumPy-only: a twin claims the native precisions only
    assert twin.dtypes == tuple(d for d in cpu.dtypes if d in NATIVE_REAL + NATIVE_COMPLEX)
    assert not set(twin.dtypes) & {"float16", "bfloat16"}


def test_importing_the_backend_does_not_import_cupy():
    import subprocess
    import sys

    code = ("import sys, factorbench.impls as r; r.load_builtin(); "
            "import factorbench.impls.gpu, factorbench.device, factorbench.machine; "
            "print('cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


# ------------------------------------------------------------ unavailability


@pytest.mark.skipif(not _no_gpu(), reason="a GPU is available here")
def test_every_gpu_impl_is_unavailable_with_the_reason():
    reason = registry._gpu_available()[1]
    for impl in GPU_IMPLS:
        ok, why = impl.availability()
        assert not ok and why.startswith("unavailable: ")
        if importlib.util.find_spec("cupy") is None:
            assert why == "unavailable: module 'cupy' is not installed"
        else:
            assert why == reason


@pytest.mark.skipif(not _no_gpu(), reason="a GPU is available here")
def test_list_shows_the_cupy_impls_unavailable(capsys):
    from factorbench.cli import main

    assert main(["list", "--op", "lu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for impl_id in ("lu/cupy", "lu/blocked-cupy", "lu/recursive-cupy"):
        (line,) = [ln for ln in lines if ln.split()[:1] == [impl_id]]
        assert "gpu" in line.split() and line.endswith(get(impl_id).availability()[1])
    (lapack,) = [ln for ln in lines if ln.startswith("lu/lapack ")]
    assert lapack.endswith("yes")


@pytest.mark.skipif(not _no_gpu(), reason="a GPU is available here")
def test_a_run_records_gpu_cells_unavailable_with_the_reason(tmp_path):
    from factorbench.store import Store
    from factorbench.sweep import run_sweep

    spec = SweepSpec(ops=["lu"], impls=["lu/cupy", "lu/blocked-cupy"], sizes=[16],
                     kappas=[1e2], kinds=["randsvd"], dtypes=["float64"], params={"block": [8]})
    with Store(tmp_path / "fb.sqlite") as s:
        rid, counts = run_sweep(spec, s, progress=False)
        cells = s.cells([rid])
        run = s.run(rid)
    assert counts == {"unavailable": 2}
    assert set(cells["status"]) == {"unavailable"}
    assert set(cells["device"]) == {"gpu"}
    assert all(m == get("lu/cupy").availability()[1] for m in cells["message"])
    assert cells["time_median_s"].isna().all() and cells["transfer_s"].isna().all()
    # no GPU impl can run: no GPU ceiling probed, no GPU in the fingerprint
    assert not any(k.startswith("gpu:") for k in json.loads(run["gemm_gflops_json"]))
    assert json.loads(run["machine_json"])["gpus"] == []


@pytest.mark.skipif(not _no_gpu(), reason="a GPU is available here")
def test_quick_preset_is_unchanged_by_the_gpu_backend(monkeypatch):
    """The quick preset expands to the same cells, key for key, with the GPU impls
    registered as without them: a sweep that names no impl takes no GPU impl a
    machine cannot run."""
    with_gpu = expand(preset("quick"))
    for impl in GPU_IMPLS:
        monkeypatch.delitem(registry._REGISTRY, impl.id)
    without = expand(preset("quick"))
    assert [c["key"] for c in with_gpu] == [c["key"] for c in without]
    assert not any(c["impl"].endswith("cupy") or "/cupy" in c["impl"] for c in with_gpu)


def test_gpu_preset_sweeps_gpu_and_best_cpu_impls():
    spec = preset("gpu")
    cells = expand(spec)
    ran = {c["impl"] for c in cells}
    assert set(DRIVERS) <= ran
    assert {"lu/lapack", "cholesky/lapack", "qr/lapack", "svd/gesdd", "eigh/syevd",
            "solve/gesv", "lstsq/gelsd"} <= ran
    assert {get(i).device for i in ran} == {"cpu", "gpu"}
    assert max(c["n"] for c in cells) == 16384 and set(spec.dtypes) == {"float64", "float32"}
    assert len(cells) < 400
    if _no_gpu():  # nothing of the GPU runs here: every GPU cell is resolved unavailable
        assert all(c["resolved"] and c["resolved"][0] == "unavailable"
                   for c in cells if get(c["impl"]).device == "gpu")


def test_fingerprint_has_no_gpu_here():
    from factorbench import machine

    if _no_gpu():
        assert machine.fingerprint()["gpus"] == []
    assert machine.ceiling_key("float64") == "float64"
    assert machine.ceiling_key("float32", "gpu") == "gpu:float32"


# ------------------------------------------------ stand-ins for cupy and cupyx

KERNEL = 7e-3  # what a stand-in impl call takes on the stand-in device clock
H2D = 1e-3     # one array to the device
D2H = 2e-3     # one array back


class _DeviceArray(np.ndarray):
    """A "device array": a NumPy array whose ``get()`` is the copy back."""

    def get(self):
        _STATE["clock"] += D2H
        return np.array(self, copy=True)


class _OutOfMemory(MemoryError):
    pass


_STATE: dict = {}


class _Event:
    def record(self, stream=None):
        self.t = _STATE["clock"]

    def synchronize(self):
        pass


class _Pool:
    def __init__(self):
        self.freed = 0

    def free_all_blocks(self):
        self.freed += 1


def _asarray(x, order="K", dtype=None):
    _STATE["clock"] += H2D
    return np.array(x, order=order, dtype=dtype, copy=True).view(_DeviceArray)


def _matmul(a, b, out=None):
    _STATE["clock"] += 1e-3
    return np.matmul(a, b, out=out)


@contextlib.contextmanager
def _errstate(*, linalg=None):
    old = _STATE["linalg"]
    _STATE["linalg"] = linalg
    try:
        yield
    finally:
        _STATE["linalg"] = old


@pytest.fixture
def fake_gpu(monkeypatch):
    """Stand-in cupy/cupyx behind factorbench.device, and a GPU that is 'available'."""
    import factorbench.device as device

    pool, pinned = _Pool(), _Pool()
    runtime = SimpleNamespace(
        getDeviceCount=lambda: 1, driverGetVersion=lambda: 13000,
        runtimeGetVersion=lambda: 12080,
        getDeviceProperties=lambda i: {"name": b"Stand-in H100", "totalGlobalMem": 80 * 2**30,
                                       "major": 9, "minor": 0, "multiProcessorCount": 132})
    cuda = SimpleNamespace(Event=_Event, runtime=runtime,
                           get_elapsed_time=lambda a, b: (b.t - a.t) * 1e3,
                           memory=SimpleNamespace(OutOfMemoryError=_OutOfMemory))
    cupy = SimpleNamespace(ndarray=_DeviceArray, asarray=_asarray, cuda=cuda, empty=np.empty,
                           matmul=_matmul, random=np.random,
                           get_default_memory_pool=lambda: pool,
                           get_default_pinned_memory_pool=lambda: pinned)
    cupyx = SimpleNamespace(errstate=_errstate)
    _STATE.clear()
    _STATE.update(clock=0.0, linalg="ignore", calls=[], pool=pool, pinned=pinned)
    monkeypatch.setattr(device, "modules", lambda: (cupy, cupyx))
    monkeypatch.setattr(device, "cupy_or_none", lambda: cupy)
    monkeypatch.setattr(registry, "_GPU_STATE", (True, ""))
    return cupy


def _fake_impl(monkeypatch, name, func, *, op="lu", structure="general", layout="F"):
    impl = Impl(op=op, name=name, func=func, backend="fakecupy", family="library",
                device="gpu", dtypes=NATIVE_REAL, layout=layout, structure=structure)
    monkeypatch.setitem(registry._REGISTRY, impl.id, impl)
    return impl.id


def _lu_on_device(A):
    """lu/lapack on the host copy, factors handed back as device arrays."""
    from factorbench.impls.lapack import lu_getrf

    assert isinstance(A, _DeviceArray) and A.flags.f_contiguous
    _STATE["calls"].append(_STATE["linalg"])
    _STATE["clock"] += KERNEL
    res = lu_getrf(np.array(A, order="F"))
    return LU(res.perm, res.L.view(_DeviceArray), res.U.view(_DeviceArray))


def _cell(impl_id, *, kind="randsvd", n=24, dtype="float64"):
    spec = SweepSpec(ops=[impl_id.split("/")[0]], impls=[impl_id], sizes=[n], kappas=[1e3],
                     kinds=[kind], dtypes=[dtype])
    (cell,) = expand(spec)
    assert cell["resolved"] is None, cell["resolved"]
    return cell


OPTIONS = {"min_time": 0.0, "max_repeats": 3, "max_time": 10.0, "threshold": 30.0,
           "gemm": {"float64": 1.0, "gpu:float64": 4.0}}


def test_gpu_cell_times_the_kernel_and_records_the_transfers(fake_gpu, monkeypatch):
    impl_id = _fake_impl(monkeypatch, "fake-gpu", _lu_on_device)
    rec = run_cell(_cell(impl_id), OPTIONS)
    assert rec["status"] == "ok" and rec["passed"], rec["message"]
    assert rec["device"] == "gpu" and rec["backend"] == "fakecupy"
    # the event clock saw the kernel only: the copies happen outside the timed region
    assert rec["repeats"] == 3
    assert rec["time_median_s"] == pytest.approx(KERNEL)
    assert rec["first_call_s"] == pytest.approx(KERNEL)
    assert json.loads(rec["samples_json"]) == pytest.approx([KERNEL] * 3)
    # A to the device (median of 4 copies), then L and U back (perm is on the host)
    assert rec["transfer_s"] == pytest.approx(H2D + 2 * D2H)
    # the first call, the one judged, raised cuSOLVER errors; the repeats did not
    assert _STATE["calls"] == ["raise", "ignore", "ignore", "ignore"]
    # peak_fraction divides by the GPU's ceiling, not the host's
    assert rec["peak_fraction"] == pytest.approx(rec["gflops"] / 4.0)
    assert _STATE["pool"].freed == 1 and _STATE["pinned"].freed == 1


def test_gpu_accuracy_only_cell_calls_once(fake_gpu, monkeypatch):
    impl_id = _fake_impl(monkeypatch, "fake-gpu", _lu_on_device)
    rec = run_cell(_cell(impl_id), dict(OPTIONS, accuracy_only=True))
    assert rec["status"] == "ok" and rec["repeats"] == 0
    assert rec["first_call_s"] == pytest.approx(KERNEL) and rec.get("time_median_s") is None
    assert rec["transfer_s"] == pytest.approx(H2D + 2 * D2H)
    assert _STATE["calls"] == ["raise"] and rec.get("gflops") is None


def test_result_comes_back_to_the_host_with_its_dtypes(fake_gpu):
    from factorbench.device import Gpu

    gpu = Gpu()
    args, _ = gpu.inputs(lambda: ((np.ones((3, 2), order="F"), 5), {}))()
    assert isinstance(args[0], _DeviceArray) and args[0].flags.f_contiguous and args[1] == 5
    res = LU(np.arange(2), np.eye(2, dtype=np.float32).view(_DeviceArray),
             np.eye(2, dtype=np.float32).view(_DeviceArray),
             extras={"iterations": np.array(4).view(_DeviceArray), "tag": "x"})
    host = gpu.to_host(res)
    assert all(type(x) is np.ndarray for x in (host.perm, host.L, host.U))
    assert host.L.dtype == np.float32 and host.extras == {"iterations": 4, "tag": "x"}
    assert gpu.transfer_s == pytest.approx(H2D + 2 * D2H + D2H)  # L, U, iterations


def test_cusolver_errors_raised_for_the_judged_call_make_an_error_record(fake_gpu, monkeypatch):
    """A Cholesky of a matrix that is not positive definite: garbage in CuPy's
    default mode, LinAlgError under errstate(linalg="raise"), which the first call
    runs under, so the record is an error, never a silent wrong factor."""

    def cholesky(A):
        _STATE["calls"].append(_STATE["linalg"])
        H = np.asarray(A)
        if _STATE["linalg"] == "raise" and np.linalg.eigvalsh(H).min() <= 0:
            raise np.linalg.LinAlgError("Error reported by potrf in cuSOLVER. devInfo = 3.")
        return Cholesky(np.tril(H).view(_DeviceArray))

    impl_id = _fake_impl(monkeypatch, "fake-potrf", cholesky, op="cholesky")
    rec = run_cell(_cell(impl_id, kind="randsvd"), OPTIONS)
    assert rec["status"] == "error" and rec["message"].startswith("LinAlgError: Error reported")
    assert _STATE["calls"] == ["raise"] and _STATE["pool"].freed == 1
    assert rec.get("backward_ratio") is None


def test_precision_guard_runs_on_the_host_copy(fake_gpu, monkeypatch):
    def upcast(A):
        res = _lu_on_device(A)
        return LU(res.perm, res.L.astype(np.float64), res.U.astype(np.float64))

    impl_id = _fake_impl(monkeypatch, "fake-upcast", upcast)
    rec = run_cell(_cell(impl_id, dtype="float32"), OPTIONS)
    assert rec["status"] == "error" and "float64, working precision is float32" in rec["message"]


def test_device_out_of_memory_is_an_error_and_the_worker_goes_on(fake_gpu, monkeypatch):
    def hog(A):
        raise _OutOfMemory("Out of memory allocating 1,099,511,627,776 bytes")

    impl_id = _fake_impl(monkeypatch, "fake-hog", hog)
    rec = run_cell(_cell(impl_id), OPTIONS)
    assert rec["status"] == "error" and rec["message"].startswith("out of GPU memory")
    assert _STATE["pool"].freed == 1


def test_event_timer_sums_device_time_between_its_events(fake_gpu):
    from factorbench.timing import EventTimer, time_call

    timer = EventTimer(fake_gpu.cuda)
    assert timer() == 0.0
    _STATE["clock"] += 0.25
    assert timer() == pytest.approx(0.25)

    def kernel():
        _STATE["clock"] += 0.003

    def make():
        _STATE["clock"] += 1.0  # work before the call (a copy) is never billed to it
        return (), {}

    _, timing = time_call(kernel, make, min_time=0.0, min_repeats=4, max_repeats=4,
                          timer=EventTimer(fake_gpu.cuda))
    assert timing.samples == pytest.approx([0.003] * 4)
    assert timing.first_call_s == pytest.approx(0.003)


def test_machine_describes_the_gpu_and_probes_its_gemm(fake_gpu):
    from factorbench import machine

    (gpu,) = machine.gpus()
    assert gpu == {"index": 0, "name": "Stand-in H100", "memory_bytes": 80 * 2**30,
                   "compute_capability": "9.0", "multiprocessors": 132, "driver": "13.0",
                   "cuda_runtime": "12.8"}
    assert machine.fingerprint()["gpus"] == [gpu]
    peaks = machine.gpu_gemm_peaks(["float64", "float32", "bfloat16", "float64"], n=64)
    # the stand-in GEMM takes 1 ms on the device clock: 2 n^3 / 1 ms
    assert peaks == pytest.approx({"gpu:float64": 2 * 64**3 / 1e-3 / 1e9,
                                   "gpu:float32": 2 * 64**3 / 1e-3 / 1e9})
    assert machine.gpu_gemm_size([48, 192]) == 4096 and machine.gpu_gemm_size([16384]) == 8192


# --------------------------------------------- twins on array-api-strict


def _twin_args(xps, impl, cell):
    from factorbench.worker import _matrix, _takes_rng

    tm, A_w, b, x_true, eta = _matrix(cell)
    A = xps.asarray(np.array(A_w, copy=True))
    kw = {k: v[0] for k, v in impl.parameters.items()}
    if "block" in kw:
        kw["block"] = 8  # several panels at n = 32
    op = impl.op
    if op == "lowrank":
        return (A, cell["rank"], np.random.default_rng(1)), kw, (tm, A_w, b, x_true, eta)
    if _takes_rng(impl.func):
        kw["rng"] = np.random.default_rng(1)
    args = (A, xps.asarray(b.copy())) if op in ("solve", "lstsq") else (A,)
    return args, kw, (tm, A_w, b, x_true, eta)


def _to_numpy(xps, result):
    import dataclasses

    strict = type(xps.asarray(0.0))
    changes = {f.name: np.from_dlpack(getattr(result, f.name))
               for f in dataclasses.fields(result) if isinstance(getattr(result, f.name), strict)}
    return dataclasses.replace(result, **changes), sorted(changes)


@pytest.mark.parametrize("impl_id", [f"{t}-cupy" for t in TWINS])
def test_twins_run_in_a_non_numpy_namespace(impl_id):
    """The function each twin registers runs on array-api-strict arrays (no NumPy
    or SciPy fast path, the path CuPy takes), its factors stay in that namespace,
    and a stable one passes the harness's rule there."""
    xps = pytest.importorskip("array_api_strict")
    impl = get(impl_id)
    cpu_id = impl_id.removesuffix("-cupy")
    kind = "spd" if impl.structure == "spd" else "lowrank" if impl.op == "lowrank" else "randsvd"
    spec = SweepSpec(ops=[impl.op], impls=[cpu_id], kinds=[kind], sizes=[32], kappas=[1e3],
                     dtypes=["float64"], rank=4 if impl.op == "lowrank" else None,
                     params={k: [8 if k == "block" else v[0]] for k, v in impl.parameters.items()})
    (cell,) = expand(spec)
    args, kw, (tm, A_w, b, x_true, eta) = _twin_args(xps, impl, cell)
    result, on_strict = _to_numpy(xps, impl.func(*args, **kw))
    assert on_strict, "no factor came back in the input's namespace"
    p = precision("float64")
    metrics = bundle(impl.op, A_w, result, u=p.u, kappa=tm.kappa, b=b, x_true=x_true,
                     sigma=tm.sigma, eigenvalues=tm.eigenvalues, k=cell["rank"], eta=eta)
    if impl.stable:
        assert passed(metrics, 30.0, size=max(A_w.shape)), metrics


# --------------------------------------------------------- on a real GPU


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("impl_id", [i.id for i in GPU_IMPLS])
def test_gpu_conformance(impl_id, dtype):
    """The conformance rule on the device: a problem of the impl's structure at
    kappa = u^(-1/4), through the worker's GPU path; a stable impl passes."""
    impl = get(impl_id)
    kind = ("spd" if impl.structure in ("spd", "symmetric") else
            "lowrank" if impl.op == "lowrank" else "randsvd")
    kappa = float(f"{precision(dtype).u ** -0.25:.2g}")
    spec = SweepSpec(ops=[impl.op], impls=[impl_id], kinds=[kind], sizes=[64], kappas=[kappa],
                     dtypes=[dtype], rank=4 if impl.op == "lowrank" else None,
                     params={k: [8 if k == "block" else v[0]] for k, v in impl.parameters.items()})
    (cell,) = expand(spec)
    rec = run_cell(cell, {"min_time": 0.0, "max_repeats": 2, "max_time": 5.0, "threshold": 30.0,
                          "gemm": {}})
    if impl.stable:
        assert rec["status"] == "ok" and rec["passed"], rec["message"]
    else:
        assert rec["status"] in ("ok", "failed"), rec["message"]
    assert rec["device"] == "gpu" and rec["transfer_s"] > 0 and rec["time_median_s"] > 0


@pytest.mark.gpu
def test_cholesky_of_a_matrix_not_spd_raises_under_errstate():
    import cupy
    import cupyx

    from factorbench.device import Gpu
    from factorbench.impls.gpu import cholesky_potrf

    A = cupy.asarray(np.diag([4.0, -1.0, 9.0]))
    with cupyx.errstate(linalg="raise"), pytest.raises(np.linalg.LinAlgError):
        cholesky_potrf(A)
    # the worker's wrapper raises on the first call only
    call = Gpu().first_call_raises(cholesky_potrf)
    with pytest.raises(np.linalg.LinAlgError):
        call(A)
    call(A)  # CuPy's default mode: no check, no raise


@pytest.mark.gpu
def test_event_timer_matches_cupyx_profiler():
    import cupy
    from cupyx.profiler import benchmark

    from factorbench.timing import EventTimer, time_call

    a = cupy.random.default_rng(0).standard_normal((2048, 2048))
    _, timing = time_call(cupy.matmul, lambda: ((a, a), {}), min_time=0.0, min_repeats=10,
                          max_repeats=10, timer=EventTimer())
    ref = float(np.median(benchmark(cupy.matmul, (a, a), n_repeat=10).gpu_times))
    assert 0.5 * ref <= timing.median_s <= 2.0 * ref


@pytest.mark.gpu
def test_machine_describes_the_real_gpu():
    from factorbench import machine

    gpus = machine.gpus()
    assert gpus and gpus[0]["name"] and gpus[0]["memory_bytes"] > 2**30
    assert machine.gpu_gemm_peaks(["float64"], n=2048)["gpu:float64"] > 0


@pytest.mark.gpu
def test_gpu_cell_normalised_by_the_gpu_ceiling():
    rec = run_cell(_cell("lu/cupy", n=256), {"min_time": 0.0, "max_repeats": 3, "max_time": 5.0,
                                             "threshold": 30.0,
                                             "gemm": {"float64": 1e9, "gpu:float64": 1.0}})
    assert rec["status"] == "ok" and rec["peak_fraction"] == pytest.approx(rec["gflops"])
