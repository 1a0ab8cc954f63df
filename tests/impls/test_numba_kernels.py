"""Tests of the Numba family (factorbench.impls.numba_kernels).

Pass/fail decisions go through the harness's own metrics (``bundle`` and the
LAPACK-style pass rule, threshold 30); the algorithm-specific checks compare
with what theory fixes exactly (the growth factor of ``lu/gepp``, bit for
bit; 2^(n-1) for Wilkinson's matrix; the permutation of a matrix built from
known LU factors) or with error bounds of the form c n u kappa, c stated.
The conformance and edge-case suites run these impls through the worker too.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tempfile
import textwrap
import zlib

import numpy as np
import pytest
import scipy.linalg as sla

from factorbench.accuracy import matrices
from factorbench.accuracy.metrics import bundle, passed
from factorbench.accuracy.precision import result_dtype_error, unit_roundoff
from factorbench.impls import get, impls
from factorbench.impls.results import LU, QR, SVD, Cholesky
from tests.impls._matrices import haar

pytest.importorskip("numba")

DTYPES = ("float64", "float32", "complex128", "complex64")
U64 = unit_roundoff("float64")

#: id -> (family, max_n, layout, result type)
EXPECTED = {
    "lu/numba": ("textbook", 2048, "C", LU),
    "lu/numba-blocked": ("blocked", None, "C", LU),
    "cholesky/numba": ("textbook", 2048, "C", Cholesky),
    "qr/numba-householder": ("textbook", 2048, "C", QR),
    "qr/numba-givens": ("textbook", 1024, "C", QR),
    "svd/numba-jacobi": ("textbook", 1024, "C", SVD),
}


# ------------------------------------------------------------------ matrices




def randsvd(rng, m, n, kappa, cplx=False):
    """U diag(sigma) V^H, sigma geometric from 1 to 1/kappa; returns (A, sigma)."""
    sigma = kappa ** (-np.arange(n) / max(n - 1, 1))
    return (haar(rng, m, n, cplx) * sigma) @ haar(rng, n, n, cplx).conj().T, sigma


def spd(rng, n, kappa, cplx=False):
    lam = kappa ** (-np.arange(n) / max(n - 1, 1))
    Q = haar(rng, n, n, cplx)
    A = (Q * lam) @ Q.conj().T
    return (A + A.conj().T) / 2


def call(impl_id, A, **params):
    """Call as the worker does: a fresh copy in the impl's declared layout."""
    impl = get(impl_id)
    return impl.func(np.array(A, order=impl.layout), **params)


def metrics_of(impl_id, A, res, **kw):
    return bundle(get(impl_id).op, A, res, u=unit_roundoff(A.dtype.name), **kw)


def seed_of(*parts) -> int:
    return zlib.crc32(" ".join(map(str, parts)).encode())


# ----------------------------------------------------------------- registry


def test_registry_metadata():
    registered = {i.id: i for i in impls() if i.backend == "numba"}
    assert set(registered) == set(EXPECTED)
    for impl_id, (family, max_n, layout, _) in EXPECTED.items():
        impl = registered[impl_id]
        assert (impl.family, impl.max_n, impl.layout) == (family, max_n, layout), impl_id
        assert impl.stable and impl.device == "cpu" and impl.summary
        # lu/numba alone rounds to float16/bfloat16 inside its compiled loop
        emulated = {"float16", "bfloat16"} if impl_id == "lu/numba" else set()
        assert set(impl.dtypes) == set(DTYPES) | emulated, impl_id
        assert "numba" in impl.requires
        assert impl.availability() == (True, "")
    assert registered["lu/numba-blocked"].parameters == {"block": [32, 64, 128, 256]}


def test_module_imports_without_numba():
    """Registering the family must not import Numba (CLI start-up, machines without it)."""
    code = "import sys, factorbench.impls.numba_kernels; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------- every impl x every dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl_id", sorted(EXPECTED))
def test_dtype_and_pass_rule(impl_id, dtype):
    """Moderately conditioned input (kappa = 100): the result has the working
    precision, the right type and shapes, and meets the pass rule."""
    rng = np.random.default_rng(seed_of(impl_id, dtype))
    op = impl_id.split("/")[0]
    cplx = dtype.startswith("complex")
    m, n = (30, 18) if op in ("qr", "svd") else (18, 18)
    kw = {}
    if op == "cholesky":
        A = spd(rng, n, 1e2, cplx)
    else:
        A, sigma = randsvd(rng, m, n, 1e2, cplx)
        kw = {"sigma": sigma} if op == "svd" else {}
    A = A.astype(dtype)
    params = {"block": 4} if impl_id == "lu/numba-blocked" else {}  # several block steps
    res = call(impl_id, A, **params)
    assert isinstance(res, EXPECTED[impl_id][3])
    assert result_dtype_error(res, dtype) is None
    for name in ("L", "U", "Q", "R", "Vh"):
        if hasattr(res, name):
            assert getattr(res, name).dtype == np.dtype(dtype), name
    if op == "svd":
        assert res.s.dtype == np.finfo(dtype).dtype
        assert res.U.shape == (m, n) and res.Vh.shape == (n, n)
    if op == "qr":
        assert res.Q.shape == (m, n) and res.R.shape == (n, n)
        if cplx and impl_id == "qr/numba-householder":
            assert np.all(np.diag(res.R).imag == 0)  # xLARFG: beta real
    metrics = metrics_of(impl_id, A, res, **kw)
    assert passed(metrics, size=max(m, n)), metrics


@pytest.mark.parametrize("impl_id", ["lu/numba", "cholesky/numba", "qr/numba-householder",
                                     "svd/numba-jacobi"])
def test_other_layout_and_read_only_input_copied(impl_id):
    """Declared overwriting applies to the harness's own copy only: input in the
    other layout, or read-only, is factored from a private copy."""
    rng = np.random.default_rng(3)
    A = spd(rng, 8, 10.0) if impl_id.startswith("cholesky") else rng.standard_normal((8, 8))
    layout = get(impl_id).layout
    other = "F" if layout == "C" else "C"
    read_only = np.array(A, order=layout)
    read_only.setflags(write=False)
    for X in (np.array(A, order=other), read_only):
        saved = X.copy()
        res = get(impl_id).func(X)
        assert np.array_equal(X, saved)
        assert passed(metrics_of(impl_id, A, res))


def test_integer_input_refused():
    with pytest.raises(TypeError):
        get("lu/numba")(np.eye(3, dtype=np.int64))


# ------------------------------------------------------------------------ LU


def _wilkinson(n):
    return matrices.generate("wilkinson", n, n).A


def _ties(rng, n):
    """Entries in {-2, ..., 2}: exact ties in almost every pivot search."""
    return rng.integers(-2, 3, size=(n, n)).astype(float)


def _same_lu(a, b):
    return (a.growth_factor_exact == b.growth_factor_exact and np.array_equal(a.perm, b.perm)
            and np.array_equal(a.L, b.L) and np.array_equal(a.U, b.U))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", ["gaussian", "wilkinson", "ties", "zero-column"])
def test_growth_factor_equals_gepp_bit_for_bit(case, dtype):
    """Same pivots (first index on ties, zero column skipped), same a - fl(l u)
    updates in the same order, true division: lu/numba's factors and exact growth
    factor are lu/gepp's, bit for bit, on real input."""
    rng = np.random.default_rng(seed_of(case, dtype))
    n = 64
    A = {"gaussian": lambda: rng.standard_normal((n, n)),
         "wilkinson": lambda: _wilkinson(n),
         "ties": lambda: _ties(rng, n),
         "zero-column": lambda: rng.standard_normal((n, n)) * (np.arange(n) % 7 != 3)}[case]()
    A = A.astype(dtype)
    mine, ref = call("lu/numba", A), get("lu/gepp")(A)
    assert _same_lu(mine, ref), (mine.growth_factor_exact, ref.growth_factor_exact)
    assert isinstance(mine.growth_factor_exact, float)
    if case == "wilkinson":
        assert mine.growth_factor_exact == 2.0 ** (n - 1)
        assert np.array_equal(mine.perm, np.arange(n))


@pytest.mark.parametrize("n", [2, 17, 40])
def test_wilkinson_growth_exact(n):
    for dtype in ("float64", "complex128"):
        res = call("lu/numba", _wilkinson(n).astype(dtype))
        assert res.growth_factor_exact == 2.0 ** (n - 1)


@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
def test_complex_growth_matches_gepp_to_rounding(dtype):
    """Complex arithmetic differs in the last bit between NumPy's SIMD kernels
    (FMA in the product, its own |z|) and scalar IEEE formulas, so the growth
    factors agree to rounding only: both are exact maxima over Schur complements
    computed with errors of a few n u times their size."""
    rng = np.random.default_rng(seed_of("complex growth", dtype))
    n = 64
    A = (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))).astype(dtype)
    mine, ref = call("lu/numba", A), get("lu/gepp")(A)
    u = unit_roundoff(dtype)
    assert np.array_equal(mine.perm, ref.perm)  # Gaussian: no near-ties
    g = ref.growth_factor_exact
    assert abs(mine.growth_factor_exact - g) <= n * u * g


def _known_lu(rng, n, dtype):
    """A with A[p] = L U, |l_ij| <= 1/2 off the diagonal and |u_kk| in [1, 2]:
    in every pivot search the pivot exceeds the other candidates by a factor 2
    (in exact arithmetic), so partial pivoting must return exactly p, whatever
    the rounding of the updates."""
    L = np.tril(rng.uniform(-0.5, 0.5, (n, n)), -1) + np.eye(n)
    U = np.triu(rng.uniform(-1, 1, (n, n)), 1) + np.diag(rng.uniform(1, 2, n))
    p = rng.permutation(n)
    A = np.empty((n, n))
    A[p] = L @ U
    return A.astype(dtype), p


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block", [8, 16, 64])
def test_blocked_lu_block_sizes(block, dtype):
    """n = 37 with blocks that divide it into uneven steps (8, 16) or exceed it (64):
    the permutation is the one fixed by construction, equal to lu/numba's, and the
    factors meet the pass rule."""
    rng = np.random.default_rng(seed_of("blocked", block, dtype))
    n = 37
    A, p = _known_lu(rng, n, dtype)
    res = call("lu/numba-blocked", A, block=block)
    assert np.array_equal(res.perm, p)
    assert np.array_equal(res.perm, call("lu/numba", A).perm)
    assert res.growth_factor_exact is None
    assert passed(metrics_of("lu/numba-blocked", A, res))
    G, _ = randsvd(rng, n, n, 1e3, dtype.startswith("complex"))
    G = G.astype(dtype)
    assert passed(metrics_of("lu/numba-blocked", G, call("lu/numba-blocked", G, block=block)))


def test_blocked_lu_exactly_singular():
    """Zero columns: the zero pivots are skipped (xGETF2), A[perm] = L U holds."""
    rng = np.random.default_rng(11)
    n = 40
    A = rng.standard_normal((n, n))
    A[:, [0, 5, 21]] = 0
    for block in (4, 16):
        res = call("lu/numba-blocked", A, block=block)
        assert np.all(np.isfinite(res.U)) and np.sum(np.diag(res.U) == 0) == 3
        assert passed(metrics_of("lu/numba-blocked", A, res))


def test_blocked_lu_bad_block():
    with pytest.raises(ValueError):
        call("lu/numba-blocked", np.eye(3), block=0)


# ------------------------------------------------------------------ Cholesky


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_cholesky_not_positive_definite_raises(dtype):
    rng = np.random.default_rng(seed_of("indefinite", dtype))
    n = 20
    cplx = dtype.startswith("complex")
    Q = haar(rng, n, n, cplx)
    lam = np.linspace(1, 2, n)
    lam[n // 2] = -1
    A = ((Q * lam) @ Q.conj().T).astype(dtype)
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        call("cholesky/numba", A)
    # The index is the first non-positive pivot: here, a negative diagonal entry
    # that the leading (positive definite) block does not touch.
    D = np.diag([1.0, 4.0, -1.0, 9.0]).astype(dtype)
    with pytest.raises(np.linalg.LinAlgError, match=r"pivot k = 2 "):
        call("cholesky/numba", D)


@pytest.mark.parametrize("where", ["diagonal", "lower", "upper"])
def test_cholesky_nan_input(where):
    """NaN on the diagonal or in the lower triangle reaches a pivot and raises; the
    strict upper triangle is never read."""
    A = spd(np.random.default_rng(8), 6, 10.0)
    i, j = {"diagonal": (3, 3), "lower": (4, 1), "upper": (1, 4)}[where]
    A[i, j] = np.nan
    if where == "upper":
        res = call("cholesky/numba", A)
        ref = np.tril(A) + np.tril(A, -1).T
        assert passed(metrics_of("cholesky/numba", ref, res))
    else:
        with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
            call("cholesky/numba", A)


# ------------------------------------------------------------------------ QR


@pytest.mark.parametrize("cplx", [False, True])
@pytest.mark.parametrize("impl_id", ["qr/numba-householder", "qr/numba-givens"])
def test_qr_orthogonality_independent_of_kappa(impl_id, cplx):
    """Orthogonal transformations: ||I - Q^H Q|| = O(m u) at kappa = 1e14 too."""
    rng = np.random.default_rng(seed_of(impl_id, cplx))
    for kappa in (1e2, 1e14):
        A, _ = randsvd(rng, 50, 30, kappa, cplx)
        metrics = metrics_of(impl_id, A, call(impl_id, A))
        assert passed(metrics, size=50), metrics


def test_qr_matches_textbook_householder():
    """Same reflectors (xLARFG) as qr/householder: the same factors to rounding,
    at the normwise level n u kappa of a perturbation of Q and R."""
    rng = np.random.default_rng(21)
    A, _ = randsvd(rng, 40, 25, 1e3)
    mine, ref = call("qr/numba-householder", A), get("qr/householder")(A)
    tol = 30 * 40 * U64 * 1e3
    assert np.linalg.norm(mine.R - ref.R) <= tol * np.linalg.norm(ref.R)
    assert np.linalg.norm(mine.Q - ref.Q) <= tol


# ----------------------------------------------------------------------- SVD


@pytest.mark.parametrize("cplx", [False, True])
def test_jacobi_relative_accuracy_on_graded_matrix(cplx):
    """A = Q diag(d), Q Haar, d from 1 down to 1e-12, columns graded in increasing
    order.  Rounding A gives (Q + F) D with |F| <= u |Q|, so its singular values are
    d_i to relative accuracy sqrt(n) u (Eisenstat & Ipsen 1995); the preconditioning
    QR is columnwise backward stable and one-sided Jacobi adds O(u) per rotation
    relative to each column, times kappa(Q) = 1 (Demmel & Veselić 1992, §4;
    Drmač & Veselić 2008): the relative error is O(n u) with a constant below 1 over
    the about ten sweeps needed (measured: 0.08 to 0.18 n u over seeds and column
    orders), so c = 1.
    gesdd's bidiagonalisation is only normwise accurate here (errors up to
    u s_1 / s_i); in decreasing column order it would be accurate too."""
    rng = np.random.default_rng(seed_of("graded", cplx))
    n = 40
    d = np.logspace(0, -12, n)
    A = haar(rng, n, n, cplx) * d[::-1]
    res = call("svd/numba-jacobi", A)
    err = np.abs(res.s - d) / d
    assert err.max() <= n * U64, err.max() / (n * U64)
    gesdd = sla.svd(A, compute_uv=False, lapack_driver="gesdd")
    gerr = np.abs(gesdd - d) / d
    assert gerr.max() >= 1e3 * max(err.max(), U64)
    small = d < 1e-6
    assert gerr[small].max() >= 1e3 * max(err[small].max(), U64)
    assert passed(metrics_of("svd/numba-jacobi", A, res, sigma=d))


@pytest.mark.parametrize("kappa", [1.0, 1e15])
def test_jacobi_sweeps_and_equal_singular_values(kappa):
    """The QR preconditioning keeps the sweeps few where plain row-cyclic Jacobi on
    A needs more than the cap of 30 (33 at n = 128, kappa = 1e15, measured), and the
    sqrt(k) u threshold stops on equal singular values (kappa = 1: an orthogonal A)
    instead of chasing rounding errors."""
    rng = np.random.default_rng(seed_of("sweeps", kappa))
    n = 128
    A, sigma = randsvd(rng, n, n, kappa)
    res = call("svd/numba-jacobi", A)
    assert res.extras["sweeps"] <= 15
    assert passed(metrics_of("svd/numba-jacobi", A, res, sigma=sigma), size=n)


@pytest.mark.parametrize("shape", [(12, 30), (30, 12)])
@pytest.mark.parametrize("cplx", [False, True])
def test_jacobi_rectangular(shape, cplx):
    """Wide input goes through A^H; both shapes give a thin SVD meeting the rule."""
    rng = np.random.default_rng(seed_of("rect", shape, cplx))
    m, n = shape
    k = min(m, n)
    sigma = 1e3 ** (-np.arange(k) / (k - 1))
    A = (haar(rng, m, k, cplx) * sigma) @ haar(rng, n, k, cplx).conj().T
    res = call("svd/numba-jacobi", A)
    assert res.U.shape == (m, k) and res.Vh.shape == (k, n)
    assert passed(metrics_of("svd/numba-jacobi", A, res, sigma=sigma), size=max(m, n))


@pytest.mark.parametrize("dtype", ["float64", "complex64"])
def test_jacobi_zero_columns_get_orthonormal_completion(dtype):
    """Exactly rank-deficient input: s has exact zeros and U is still orthonormal."""
    rng = np.random.default_rng(seed_of("zero columns", dtype))
    A = rng.standard_normal((20, 8))
    if dtype.startswith("complex"):
        A = A + 1j * rng.standard_normal((20, 8))
    A[:, [1, 4, 5]] = 0
    A = A.astype(dtype)
    res = call("svd/numba-jacobi", A)
    assert np.count_nonzero(res.s) == 5 and np.all(res.s[5:] == 0)
    metrics = metrics_of("svd/numba-jacobi", A, res)
    assert passed(metrics, size=20), metrics
    Z = np.zeros((6, 4), dtype=dtype)
    res = call("svd/numba-jacobi", Z)
    assert np.all(res.s == 0) and passed(metrics_of("svd/numba-jacobi", Z, res))


def test_jacobi_refuses_non_finite_input():
    A = np.eye(4)
    A[1, 2] = np.inf
    with pytest.raises(ValueError, match="finite"):
        call("svd/numba-jacobi", A)


# -------------------------------------------------------- dtype discipline


def _scan_single_precision_ir():
    """Print every line of double-precision work in the float32/complex64 kernels
    (run in a fresh process with an empty Numba cache), then "checked"."""
    import re

    import numpy as np
    from numba.core.registry import CPUDispatcher

    from factorbench.impls import _numba_jit as jit
    from factorbench.impls import get

    rng = np.random.default_rng(0)
    for dt in ("float32", "complex64"):
        X = rng.standard_normal((6, 4)).astype(dt)
        S = (X.T @ X.conj() + 4 * np.eye(4)).astype(dt)
        for iid, A in (("lu/numba", X[:4]), ("lu/numba-blocked", X[:4]),
                       ("cholesky/numba", S), ("qr/numba-householder", X),
                       ("qr/numba-givens", X), ("svd/numba-jacobi", X),
                       ("svd/numba-jacobi", 0 * X)):
            get(iid).func(np.array(A, order=get(iid).layout))
    bad = re.compile(r"fpext|\bf(add|sub|mul|div|rem|cmp \w+)\b[^=]*\bdouble\b"
                     r"|call [^@]*double @|@llvm\.\w+\.f64")
    for name in dir(jit):
        f = getattr(jit, name)
        if not isinstance(f, CPUDispatcher):
            continue
        for sig in f.signatures:
            if not any(str(getattr(a, "dtype", "")) in ("float32", "complex64") for a in sig):
                continue
            for body in f.inspect_llvm(sig).split("\ndefine ")[1:]:
                fname = re.search(r'@"?([\w.$]+)', body).group(1)
                if "cpython" in fname or fname.startswith("cfunc."):
                    continue  # the Python wrapper boxes float32 results as doubles
                for line in body.splitlines():
                    if bad.search(line):
                        print(name, sig, line.strip())
    print("checked")


@pytest.mark.slow
def test_single_precision_kernels_have_no_double_arithmetic():
    """Compile the float32 and complex64 specialisations afresh (an empty cache:
    cached code cannot be inspected) and scan the LLVM IR of each kernel (not its
    Python wrapper) for double-precision arithmetic, conversions to double or f64
    intrinsics.  About 20 s of compilation, hence slow."""
    code = textwrap.dedent(inspect.getsource(_scan_single_precision_ir))
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", code + "\n_scan_single_precision_ir()\n"],
                             capture_output=True, text=True, env=env, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines == ["checked"], "\n".join(lines[:20])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_jacobi_scales_a_matrix_of_subnormals(dtype):
    """Every entry subnormal: the scaling to [1/2, 1) needs a factor beyond the
    largest finite number, applied in two halves; s comes back scaled down exactly."""
    rng = np.random.default_rng(seed_of("subnormal", dtype))
    tiny = np.finfo(dtype).smallest_normal
    D = rng.uniform(1, 2, (6, 6)).astype(dtype)
    A = (D * tiny * np.asarray(2.0**-4, dtype)).astype(dtype)
    assert np.all(np.abs(A) < tiny)
    res = call("svd/numba-jacobi", A)
    assert np.all(np.isfinite(res.s)) and res.s[0] > 0
    ref = np.linalg.svd(D.astype(np.float64), compute_uv=False) * float(tiny) * 2.0**-4
    # subnormal inputs keep fewer significant bits: compare to the largest value only
    assert abs(res.s[0] - ref[0]) <= 1e-2 * ref[0]


# ------------------------------------------- emulated float16 / bfloat16 (lu/numba)

EMULATED_NAMES = ("bfloat16", "float16")


def _float32_probe_set(rng):
    """float32 bit patterns (both signs) around every binade boundary, every
    bfloat16 and float16 tie of the first and last steps of each binade, the
    float16 subnormal ties (quantum 2^-24) and its overflow threshold 65520, a
    million random patterns, Inf and NaN."""
    mants = {0, 1, 2, 3, 0x7FFFFF, 0x7FFFFE, 0x7FFFFD}
    for step, half in ((0x10000, 0x8000), (0x2000, 0x1000)):  # bf16, fp16 ties
        for k in (0, 1, 2, 0x7FFFFF // step - 1, 0x7FFFFF // step):
            for d in range(-2, 3):
                m = k * step + half + d
                if 0 <= m <= 0x7FFFFF:
                    mants.add(m)
    mants = np.array(sorted(mants), dtype=np.uint32)
    exps = np.arange(256, dtype=np.uint32) << np.uint32(23)
    pats = [(exps[:, None] | mants[None, :]).ravel()]
    # float16 subnormal and smallest-normal region: every tie (k + 1/2) 2^-24 and
    # its float32 neighbours, up to 2^-13
    ties = ((np.arange(2 * 2048) + 0.5) * 2.0**-24).astype(np.float32).view(np.uint32)
    pats += [ties + np.uint32(d) for d in (0, 1, 2)] + [ties - np.uint32(d) for d in (1, 2)]
    # around 65504 / 65520 / 65536 and around 2^-14, densely
    for centre in (0x477FE000, 0x477FF000, 0x47800000, 0x38800000, 0x33800000, 0x7F7F8000):
        pats.append(np.uint32(centre) + np.arange(-4096, 4097).astype(np.uint32))
    pats.append(rng.integers(0, 2**32, size=2**20, dtype=np.uint64).astype(np.uint32))
    p = np.concatenate(pats)
    p = np.concatenate([p & np.uint32(0x7FFFFFFF), p | np.uint32(0x80000000)])
    return np.unique(p).view(np.float32)


@pytest.mark.parametrize("name", EMULATED_NAMES)
def test_in_loop_rounding_equals_chop_bit_for_bit(name):
    """The @njit rounding of lu/numba's loop (bit arithmetic on the float32 pattern)
    is precision.chop on every probed float32: round to nearest even, subnormals,
    overflow to Inf by the IEEE rule, Inf kept, NaN kept NaN, sign of zero kept.
    About 2.2 million float32 (a quarter of them random patterns)."""
    from factorbench.accuracy.precision import chop
    from factorbench.impls import _numba_jit as jit

    x = _float32_probe_set(np.random.default_rng(seed_of("probe", name)))
    assert np.isnan(x).any() and np.isinf(x).any() and (x == 0).any()
    mine = x.copy()
    jit.round_array(mine, {"bfloat16": jit.BF16, "float16": jit.FP16}[name])
    ref = chop(x, name)
    # NaN stays NaN (its payload is not compared: chop's float64 round trip
    # quiets a signalling NaN); every other result has chop's bits
    nan = np.isnan(x)
    assert np.array_equal(np.isnan(mine), nan) and np.array_equal(np.isnan(ref), nan)
    bad = (mine.view(np.uint32) != ref.view(np.uint32)) & ~nan
    assert not bad.any(), (x[bad][:5], mine[bad][:5], ref[bad][:5])
    # the overflow thresholds themselves
    edge = {"bfloat16": (0x7F7F7FFF, 0x7F7F8000), "float16": (0x477FEFFF, 0x477FF000)}[name]
    below, at = np.array(edge, dtype=np.uint32).view(np.float32)
    r = np.array([below, at, -at], dtype=np.float32)
    jit.round_array(r, jit.BF16 if name == "bfloat16" else jit.FP16)
    assert np.isfinite(r[0]) and r[1] == np.inf and r[2] == -np.inf


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
        a.view(np.uint16), b.view(np.uint16))


@pytest.mark.parametrize("name", EMULATED_NAMES)
@pytest.mark.parametrize("case", ["gaussian", "wilkinson", "ties", "zero-column"])
def test_emulated_lu_equals_gepp_bit_for_bit(case, name):
    """Same pivots and the same rounding points (each multiplier fl32(a/p) and each
    updated entry fl32(a - fl32(l u)) chopped to the format) as the emulated
    lu/gepp: factors (as bits) and growth factor identical, results in the
    storage dtype.  Wilkinson at n = 48: growth 2^47 in bfloat16 (float32's
    exponent range); in float16 the last column overflows at 2^16 (the growth
    is Inf in both impls), so 2^15 is checked at n = 16."""
    from factorbench.accuracy.precision import precision, store

    rng = np.random.default_rng(seed_of("emulated", case, name))
    n = 48
    A = {"gaussian": lambda: rng.standard_normal((n, n)),
         "wilkinson": lambda: _wilkinson(n),
         "ties": lambda: _ties(rng, n),
         "zero-column": lambda: rng.standard_normal((n, n)) * (np.arange(n) % 7 != 3)}[case]()
    A = store(A, name)
    assert A.dtype == precision(name).dtype
    keep = A.copy()
    with np.errstate(over="ignore", invalid="ignore"):
        mine, ref = call("lu/numba", A), get("lu/gepp")(A)
    assert result_dtype_error(mine, name) is None
    assert mine.L.dtype == mine.U.dtype == precision(name).dtype
    assert np.array_equal(mine.perm, ref.perm)
    assert _same_bits(mine.L, ref.L) and _same_bits(mine.U, ref.U)
    assert isinstance(mine.growth_factor_exact, float)
    g, gref = mine.growth_factor_exact, ref.growth_factor_exact
    assert g == gref or (np.isnan(g) and np.isnan(gref)), (g, gref)
    assert _same_bits(A, keep)  # an emulated input is factored in a float32 copy
    if case == "wilkinson":
        assert np.array_equal(mine.perm, np.arange(n))
        if name == "bfloat16":
            assert g == 2.0 ** (n - 1)
        else:
            assert g == np.inf
            small = call("lu/numba", store(_wilkinson(16), name))
            assert small.growth_factor_exact == 2.0**15
            assert _same_bits(small.U, get("lu/gepp")(store(_wilkinson(16), name)).U)


@pytest.mark.parametrize("name", EMULATED_NAMES)
def test_emulated_lu_passes_and_declares(name):
    """lu/numba declares the emulated formats, meets the pass rule at the format's
    u, keeps the native path untouched (other numba impls refuse float16), and
    handles n = 0."""
    from factorbench.accuracy.precision import store

    impl = get("lu/numba")
    assert name in impl.dtypes
    rng = np.random.default_rng(seed_of("pass", name))
    A, _ = randsvd(rng, 24, 24, 10.0)
    A = store(A, name)
    res = call("lu/numba", A)
    assert result_dtype_error(res, name) is None
    m = bundle("lu", A, res, u=unit_roundoff(name))
    assert passed(m), m
    empty = call("lu/numba", store(np.zeros((0, 0)), name))
    assert result_dtype_error(empty, name) is None and empty.growth_factor_exact == 0.0
    with pytest.raises(TypeError):
        get("cholesky/numba").func(store(np.eye(3), name))
