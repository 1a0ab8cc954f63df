"""Emulated float16/bfloat16 impls (tensor-core model: float32 work, every op chopped).

Pass decisions go through the harness's own metrics (``metrics.bundle`` and
``metrics.passed``) with the unit roundoff of the emulated format, so the
tolerances are the LAPACK-style ones of design section 5, not tuned here:
a backward-stable algorithm computed in a format with unit roundoff u has
backward error O(n u) (Higham 2002, Thms 9.3, 10.3, 19.4), i.e. backward
ratios O(1) in units of that u; the forward error of a backward-stable solve
is bounded by ~kappa times the backward error (Higham 2002, §7.1), so it
tracks kappa u and carries no correct digits once kappa u >~ 1.
"""

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

import factorbench.impls.blocked  # noqa: F401  (registers)
import factorbench.impls.textbook  # noqa: F401  (registers)
from factorbench.accuracy import matrices, metrics
from factorbench.accuracy.precision import EMULATED, chop, precision, store
from factorbench.impls import get

N = 48
KAPPA = 10.0

EMULATED_IMPLS = ["lu/gepp", "lu/nopivot", "solve/lu", "cholesky/textbook", "qr/householder",
                  "qr/cholqr2", "lu/blocked", "lu/recursive", "cholesky/blocked",
                  "cholesky/recursive"]


def _matrix(op, fmt, n=N, kappa=KAPPA, seed=0):
    kind = "spd" if op == "cholesky" else "randsvd"
    tm = matrices.generate(kind, n, n, kappa=kappa, rng=seed)
    return store(tm.A, fmt)


def _run(impl_id, A, *, u, kappa=KAPPA, seed=0):
    """Run an impl the way the harness does; return (result, metrics bundle)."""
    impl = get(impl_id)
    kw = {"block": 8} if "block" in impl.parameters else {}
    A_in = np.asfortranarray(A) if impl.layout == "F" else A.copy()
    if impl.op == "solve":
        x_true, b = matrices.rhs(A, np.random.default_rng(100 + seed))
        res = impl.func(A_in, b, **kw)
        return res, metrics.bundle(impl.op, A, res, u=u, kappa=kappa, b=b, x_true=x_true)
    res = impl.func(A_in, **kw)
    return res, metrics.bundle(impl.op, A, res, u=u, kappa=kappa)


def _arrays(res):
    return {f: getattr(res, f) for f in res.__dataclass_fields__
            if hasattr(getattr(res, f), "dtype") and getattr(res, f).dtype.kind != "i"}


@pytest.mark.parametrize("impl_id", EMULATED_IMPLS)
def test_declares_emulated(impl_id):
    assert set(EMULATED) <= set(get(impl_id).dtypes)


@pytest.mark.parametrize("fmt", EMULATED)
@pytest.mark.parametrize("impl_id", EMULATED_IMPLS)
def test_backward_ratio_in_units_of_format(impl_id, fmt):
    """Backward error O(n u_fmt): every ratio < 30 with u of the format, and the
    factors come back in the storage dtype, exactly representable."""
    p = precision(fmt)
    A = _matrix(get(impl_id).op, fmt)
    res, m = _run(impl_id, A, u=p.u)
    for name, X in _arrays(res).items():
        assert X.dtype == p.dtype, (name, X.dtype)
        X32 = X.astype(np.float32)
        assert np.array_equal(chop(X32, fmt), X32), name
    assert metrics.passed(m, size=N), m
    assert m["backward_ratio"] < 30


@pytest.mark.parametrize("fmt", EMULATED)
@pytest.mark.parametrize("impl_id", ["lu/gepp", "lu/blocked", "cholesky/textbook",
                                     "qr/householder"])
def test_emulation_is_real(impl_id, fmt):
    """The same algorithm in float32 on the same (format-valued) matrix is far
    more accurate: the emulated run really rounds to the format inside the loop."""
    p = precision(fmt)
    A = _matrix(get(impl_id).op, fmt)
    _, m_emu = _run(impl_id, A, u=p.u)
    _, m_32 = _run(impl_id, A.astype(np.float32), u=precision("float32").u)
    assert m_emu["backward_error"] > 100 * m_32["backward_error"]
    # ... and above the float32 unit roundoff by far, below n u_fmt.
    assert m_emu["backward_error"] > 100 * precision("float32").u
    assert m_emu["backward_error"] < N * p.u


# ------------------------------------------------- independent step-by-step references


def _rounder(fmt):
    """The model's rounding of one operation's float64 result: to float32 (the
    work precision) and then to ``fmt``; the identity for ``fmt=None``."""
    if fmt is None:
        return lambda x: x
    return lambda x: chop(chop(np.asarray(x, dtype=np.float64), "float32"), fmt)


def _ref_gepp(A, fmt):
    """Outer-product GEPP in float64, each multiplier and each updated entry rounded
    by :func:`_rounder` (first-maximum pivot rule, as IxAMAX).  Returns
    (perm, W packed L\\U, growth max_k max|A^(k)| / max|A|).

    Every operation of the emulated kernel is one float32 operation on values of
    the format: a quotient (correctly rounded in float32 and float64 alike) or
    ``a - l*u`` whose product is exact in float32 (2 t <= 22 bits) and whose
    subtraction is one float32 rounding; float64 computes both exactly or
    correctly rounded, so the reference reproduces the impl bit for bit.
    """
    rnd = _rounder(fmt)
    W = np.array(A, dtype=np.float64)
    n = W.shape[0]
    perm = np.arange(n)
    amax = gmax = np.max(np.abs(W))
    for k in range(n):
        gmax = max(gmax, np.max(np.abs(W[k:, k:])))
        p = k + int(np.argmax(np.abs(W[k:, k])))
        W[[k, p]] = W[[p, k]]
        perm[[k, p]] = perm[[p, k]]
        if k == n - 1:
            break
        if W[k, k] != 0:
            for i in range(k + 1, n):
                W[i, k] = rnd(W[i, k] / W[k, k])
                for j in range(k + 1, n):
                    W[i, j] = rnd(W[i, j] - W[i, k] * W[k, j])
    return perm, W, float(gmax) / float(amax)


def _packed(res):
    """L\\U packed in one float64 array (L's unit diagonal dropped)."""
    L = res.L.astype(np.float64)
    return np.tril(L, -1) + res.U.astype(np.float64)


@pytest.mark.parametrize("fmt", EMULATED)
def test_growth_tracked_on_chopped_values(fmt):
    """lu/gepp's exact growth factor in an emulated format is the one of the chopped
    Schur complements: on a Gaussian matrix (whose Schur complements are not exact
    in the format) perm, L, U and the growth equal those of an independent float64
    elimination that rounds every multiplier and updated entry, and differ from the
    same elimination unrounded and from lu/gepp in float32, so an impl that skipped
    a rounding (or tracked growth before it) fails."""
    n = 24
    A = store(np.random.default_rng(11).standard_normal((n, n)), fmt)
    res = get("lu/gepp").func(A)
    perm, W, growth = _ref_gepp(A.astype(np.float64), fmt)
    assert np.array_equal(res.perm, perm)
    assert np.array_equal(_packed(res), W)
    assert res.growth_factor_exact == growth
    _, W64, growth64 = _ref_gepp(A.astype(np.float64), None)
    res32 = get("lu/gepp").func(A.astype(np.float32))
    assert growth != growth64 and growth != res32.growth_factor_exact
    assert not np.array_equal(W, W64)


@pytest.mark.parametrize("fmt", EMULATED)
@pytest.mark.parametrize("impl_id", ["lu/blocked", "lu/recursive"])
def test_blocked_lu_one_panel_is_gepp(impl_id, fmt):
    """With block >= n the whole matrix is one panel (``_getf2``), whose rounding
    points (each multiplier, each entry of each rank-1 update) are lu/gepp's:
    the factors are bit for bit lu/gepp's and the reference's."""
    A = _matrix("lu", fmt)
    ref = get("lu/gepp").func(A)
    res = get(impl_id).func(np.asfortranarray(A), block=N)
    assert res.L.dtype == res.U.dtype == precision(fmt).dtype
    assert np.array_equal(res.perm, ref.perm)
    assert np.array_equal(res.L.view(np.uint16), ref.L.view(np.uint16))
    assert np.array_equal(res.U.view(np.uint16), ref.U.view(np.uint16))
    perm, W, _ = _ref_gepp(A.astype(np.float64), fmt)
    assert np.array_equal(res.perm, perm) and np.array_equal(_packed(res), W)


def _ref_potf2(A, fmt):
    """Outer-product (right-looking) Cholesky in float64 on the lower triangle, each
    square root, quotient and updated entry rounded by :func:`_rounder`: the
    rounding points of ``_potf2`` (cholesky/blocked, cholesky/recursive).  Each is
    one float32 operation on format values (sqrt and quotient correctly rounded;
    ``a - l_i l_j`` with an exact product), so the reference is bit-exact."""
    rnd = _rounder(fmt)
    W = np.tril(np.array(A, dtype=np.float64))
    n = W.shape[0]
    for j in range(n):
        W[j, j] = rnd(np.sqrt(W[j, j]))
        for i in range(j + 1, n):
            W[i, j] = rnd(W[i, j] / W[j, j])
        for c in range(j + 1, n):
            for i in range(c, n):
                W[i, c] = rnd(W[i, c] - W[i, j] * W[c, j])
    return W


@pytest.mark.parametrize("fmt", EMULATED)
@pytest.mark.parametrize("impl_id", ["cholesky/blocked", "cholesky/recursive"])
def test_blocked_cholesky_one_block_is_reference(impl_id, fmt):
    """With block >= n the whole matrix is one diagonal block (``_potf2``, outer
    product): bit for bit the step-by-step reference.  cholesky/textbook is the
    gaxpy form (a dot product per entry, accumulated in float32 and rounded once),
    other rounding points, so it is not bit-equal; it agrees to O(n u_fmt)."""
    A = _matrix("cholesky", fmt)
    res = get(impl_id).func(np.asfortranarray(A), block=N)
    assert res.L.dtype == precision(fmt).dtype
    assert np.array_equal(res.L.astype(np.float64), _ref_potf2(A.astype(np.float64), fmt))
    tb = get("cholesky/textbook").func(A).L.astype(np.float64)
    L = res.L.astype(np.float64)
    assert np.linalg.norm(L - tb) <= 2 * N * precision(fmt).u * np.linalg.norm(tb)


def _ref_solve(A, b, fmt):
    """solve/lu's algorithm in float64: :func:`_ref_gepp`, then row-oriented forward
    (unit L) and back substitution, each ``b_i - l_i^T x`` rounded once and each
    quotient rounded.  Also returns, per substitution row, whether the float32
    accumulation of that row (error <= (k + 1) u_32 (|b_i| + sum |l_ij x_j|),
    Higham 2002, eq. 3.5) could cross a rounding boundary of the format: only
    then may the impl's row differ from the exactly accumulated one."""
    rnd = _rounder(fmt)
    u32 = precision("float32").u
    perm, W, _ = _ref_gepp(A, fmt)
    n = W.shape[0]
    x = np.array(b, dtype=np.float64)[perm]
    risky = False

    def row(i, cols):
        nonlocal risky
        s = x[i] - W[i, cols] @ x[cols]
        e = (len(cols) + 2) * u32 * (abs(x[i]) + np.abs(W[i, cols]) @ np.abs(x[cols]))
        risky |= bool(chop(s - e, fmt) != chop(s + e, fmt))
        return rnd(s)

    for i in range(n):
        x[i] = row(i, np.arange(i))
    for i in range(n - 1, -1, -1):
        x[i] = rnd(row(i, np.arange(i + 1, n)) / W[i, i])
    return x, risky


@pytest.mark.parametrize("fmt", EMULATED)
def test_solve_lu_matches_step_by_step_reference(fmt):
    """solve/lu in an emulated format is bit for bit the step-by-step reference
    (every multiplier, update, substitution row and quotient rounded), on inputs
    where no row's float32 accumulation lies within its error bound of a rounding
    boundary (the others are skipped; at least four of eight seeds are checked):
    there the exact and float32 accumulations round alike;
    the unrounded float32 solve differs."""
    n, checked = 16, 0
    for seed in range(8):
        A = store(matrices.generate("randsvd", n, n, kappa=KAPPA, rng=seed).A, fmt)
        b = store(np.random.default_rng(50 + seed).standard_normal(n), fmt)
        x_ref, risky = _ref_solve(A.astype(np.float64), b.astype(np.float64), fmt)
        if risky:
            continue
        checked += 1
        x = get("solve/lu").func(A, b).x
        assert x.dtype == precision(fmt).dtype
        assert np.array_equal(x.astype(np.float64), x_ref), seed
        x32 = get("solve/lu").func(A.astype(np.float32), b.astype(np.float32)).x
        assert not np.array_equal(x32.astype(np.float64), x_ref)
    assert checked >= 4, checked


# ---------------------------------------------------- genuinely blocked paths (block < n)


def _watch_block_kernels(monkeypatch, fmt):
    """Wrap the ``_xp`` TRSM and GEMM kernels the blocked LU and Cholesky call: record
    each call and whether every operand it is handed (the triangle, the right-hand
    side, the matrix updated and both factors) holds only values of ``fmt``.  Every
    such operand is a block of the work array written by an earlier rounded step, a
    TRSM block or a GEMM update among them, so a block whose rounding was skipped
    shows up as a float32 operand of a later kernel call (the final ``out`` would
    hide it: it rounds the factors once more)."""
    from factorbench.impls.blocked import _xp

    log = []

    def ok(*arrays):
        for X in arrays:
            X32 = np.asarray(X, dtype=np.float32)
            if not np.array_equal(chop(X32, fmt), X32):
                return False
        return True

    trsm, gemm = _xp.trsm, _xp.gemm_update

    def trsm_w(xp, T, B, **kw):
        log.append(("trsm", ok(T, B)))
        return trsm(xp, T, B, **kw)

    def gemm_w(xp, C, A, B, **kw):
        log.append(("gemm", ok(C, A, B)))
        return gemm(xp, C, A, B, **kw)

    monkeypatch.setattr(_xp, "trsm", trsm_w)
    monkeypatch.setattr(_xp, "gemm_update", gemm_w)
    return log


@pytest.mark.parametrize("fmt", EMULATED)
@pytest.mark.parametrize("impl_id", ["lu/blocked", "lu/recursive", "cholesky/blocked",
                                     "cholesky/recursive"])
def test_block_operands_are_rounded(impl_id, fmt, monkeypatch):
    """Block 8 at n = 48 (six panels or leaves): every TRSM and GEMM operand holds
    values of the format, i.e. each earlier panel step, TRSM block and GEMM block
    was rounded before it was used, and both kernels ran on several blocks."""
    log = _watch_block_kernels(monkeypatch, fmt)
    A = _matrix(get(impl_id).op, fmt)
    get(impl_id).func(np.asfortranarray(A), block=8)
    kinds = [k for k, _ in log]
    assert kinds.count("trsm") >= 3 and kinds.count("gemm") >= 3, kinds
    assert all(good for _, good in log), log


@pytest.mark.parametrize("fmt", EMULATED)
@pytest.mark.parametrize("impl_id", ["lu/recursive", "cholesky/blocked", "cholesky/recursive"])
def test_blocked_emulation_is_real(impl_id, fmt):
    """As :func:`test_emulation_is_real` for the other blocked impls at block 8: the
    float32 run is far more accurate, the emulated one is O(n u_fmt)."""
    p = precision(fmt)
    A = _matrix(get(impl_id).op, fmt)
    _, m_emu = _run(impl_id, A, u=p.u)
    _, m_32 = _run(impl_id, A.astype(np.float32), u=precision("float32").u)
    assert m_emu["backward_error"] > 100 * m_32["backward_error"]
    assert m_emu["backward_error"] < N * p.u


@pytest.mark.parametrize("kappa", [1e0, 1e1, 1e2])
def test_solve_forward_error_tracks_kappa_u(kappa):
    """Emulated-bf16 solve/lu: forward error / (kappa u_bf16) stays O(1) (pass rule)."""
    p = precision("bfloat16")
    for seed in range(2):
        A = _matrix("solve", "bfloat16", kappa=kappa, seed=seed)
        _, m = _run("solve/lu", A, u=p.u, kappa=kappa, seed=seed)
        assert metrics.passed(m, size=N), m


def test_solve_no_correct_digits_beyond_one_over_u():
    """At kappa = 1e4 (about 40 / u_bf16) the bound kappa u is > 1: the computed x
    has no correct digit (relative error ~ 1 or more) while the kappa-scaled error
    is still O(1), and the error grew from kappa = 1e2 as kappa does."""
    p = precision("bfloat16")
    for seed in range(2):
        A = _matrix("solve", "bfloat16", kappa=1e4, seed=seed)
        _, hi = _run("solve/lu", A, u=p.u, kappa=1e4, seed=seed)
        A = _matrix("solve", "bfloat16", kappa=1e2, seed=seed)
        _, lo = _run("solve/lu", A, u=p.u, kappa=1e2, seed=seed)
        assert hi["forward_error"] > 0.5
        assert lo["forward_error"] < 0.5
        assert hi["forward_error"] > 3 * lo["forward_error"]
        assert metrics.passed(hi, size=N), hi


# ------------------------------------------------------------- native unchanged

#: sha256[:16] of the perm, L, U bytes of lu/gepp on the matrices of :func:`_gepp_input`,
#: computed with the code before the emulation was added (elementwise kernel, deterministic).
GOLDEN_GEPP = {"float64": "44b9a88e5d5ca9ee", "float32": "30aeae6db3b6ec3b"}


def _gepp_input(dtype):
    """The draws the golden values were made from: float64 is the first 40 x 40
    draw of default_rng(7), float32 the one after four other draws."""
    rng = np.random.default_rng(7)
    A = rng.standard_normal((40, 40))
    if dtype == "float32":
        rng.standard_normal((50, 30))
        rng.standard_normal(40)
        rng.standard_normal(50)
        A = rng.standard_normal((40, 40))
    return A.astype(dtype)


def _gepp_hash(dtype):
    A = _gepp_input(dtype)
    res = get("lu/gepp").func(np.asfortranarray(A))
    h = hashlib.sha256()
    for X in (res.perm, res.L, res.U):
        h.update(np.ascontiguousarray(X).tobytes())
    return h.hexdigest()[:16]


@pytest.mark.skipif(sys.byteorder != "little" or np.dtype(np.intp).itemsize != 8,
                    reason="golden bytes are for 64-bit little-endian")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_native_lu_gepp_bit_identical(dtype):
    assert _gepp_hash(dtype) == GOLDEN_GEPP[dtype]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("impl_id", ["lu/gepp", "solve/lu", "qr/householder", "qr/cholqr2",
                                     "lu/recursive", "cholesky/blocked"])
def test_native_still_passes(impl_id, dtype):
    p = precision(dtype)
    op = get(impl_id).op
    kind = "spd" if op == "cholesky" else "randsvd"
    A = matrices.generate(kind, N, N, kappa=KAPPA, rng=3).A.astype(dtype)
    res, m = _run(impl_id, A, u=p.u)
    assert all(X.dtype == p.dtype for X in _arrays(res).values())
    assert metrics.passed(m, size=N), m


# ----------------------------------------------------------------- via harness


def test_run_cell_bfloat16_lu_gepp():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_conformance import OPTIONS, _cell

    from factorbench.worker import run_cell

    rec = run_cell(_cell("lu/gepp", "bfloat16", "randsvd", n=32, kappa=10.0), OPTIONS)
    assert rec["status"] == "ok", rec["message"]
    assert rec["dtype"] == "bfloat16"
    assert rec["unit_roundoff"] == precision("bfloat16").u
    assert rec["backward_ratio"] < 30


# ------------------------------------------------------------------ qr/blocked

#: Tall shape for qr/blocked: n = 64 columns at block 8 is eight panels, so the
#: recursive panel (geqrt3 down to the 8-column leaf is one geqr2 per panel),
#: larft, the larfb trailing updates and orgqr's block products all run.
QR_M, QR_N, QR_BLOCK = 128, 64, 8


def _qr_blocked(A, u):
    res = get("qr/blocked").func(np.asfortranarray(A), block=QR_BLOCK)
    return res, metrics.bundle("qr", A, res, u=u, kappa=KAPPA)


def _tall(fmt, seed=0):
    tm = matrices.generate("randsvd", QR_M, QR_N, kappa=KAPPA, rng=seed)
    return store(tm.A, fmt)


def test_qr_blocked_declares_emulated():
    dtypes = get("qr/blocked").dtypes
    assert set(EMULATED) <= set(dtypes)
    assert set(EMULATED) <= set(get("qr/cholqr2-blocked").dtypes)
    for impl_id in ("qr/tsqr", "qr/scholqr3"):
        assert not set(EMULATED) & set(get(impl_id).dtypes), impl_id


@pytest.mark.parametrize("fmt", EMULATED)
def test_qr_blocked_ratios_in_units_of_format(fmt):
    """Backward error and loss of orthogonality O(m u_fmt) (Higham 2002, Thm 19.4):
    ratios < 30 with u of the format; Q and R in the storage dtype, exactly
    representable, R upper triangular."""
    p = precision(fmt)
    A = _tall(fmt)
    res, m = _qr_blocked(A, p.u)
    assert res.Q.shape == (QR_M, QR_N) and res.R.shape == (QR_N, QR_N)
    for name, X in _arrays(res).items():
        assert X.dtype == p.dtype, (name, X.dtype)
        X32 = X.astype(np.float32)
        assert np.array_equal(chop(X32, fmt), X32), name
    assert np.all(np.tril(res.R.astype(np.float32), -1) == 0)
    assert metrics.passed(m, size=QR_N), m
    assert m["backward_ratio"] < 30
    assert m["orthogonality_ratio"] < 30


@pytest.mark.parametrize("fmt", EMULATED)
def test_qr_blocked_emulation_is_real(fmt):
    """The float32 run of the same blocked QR on the same matrix is far more
    accurate: the emulated run rounds to the format inside the panels and the
    block updates."""
    p = precision(fmt)
    A = _tall(fmt)
    _, m_emu = _qr_blocked(A, p.u)
    _, m_32 = _qr_blocked(A.astype(np.float32), precision("float32").u)
    assert m_emu["backward_error"] > 100 * m_32["backward_error"]
    assert m_emu["backward_error"] > 100 * precision("float32").u
    assert m_emu["backward_error"] < QR_N * p.u
    assert m_emu["orthogonality_loss"] > 100 * m_32["orthogonality_loss"]


def test_qr_blocked_emulated_input_untouched():
    """The emulated path factors a float32 copy: the storage-dtype input is left alone."""
    A = np.asfortranarray(_tall("bfloat16"))
    B = A.copy()
    get("qr/blocked").func(A, block=QR_BLOCK)
    assert np.array_equal(A.view(np.uint16), B.view(np.uint16))


# ----------------------------------------------------------- qr/cholqr2-blocked

#: CholeskyQR2 needs kappa(A) < ~u^(-1/2): 16 in bfloat16, so kappa 4.
CQ_M, CQ_N, CQ_KAPPA = 128, 32, 4.0


def _cholqr2_blocked(A, u):
    res = get("qr/cholqr2-blocked").func(np.asfortranarray(A))
    return res, metrics.bundle("qr", A, res, u=u, kappa=CQ_KAPPA)


def _cq_tall(fmt, n=CQ_N, seed=0):
    return store(matrices.generate("randsvd", CQ_M, n, kappa=CQ_KAPPA, rng=seed).A, fmt)


@pytest.mark.parametrize("fmt", EMULATED)
def test_cholqr2_blocked_ratios_in_units_of_format(fmt):
    """Within its kappa range CholeskyQR2's residual and loss of orthogonality are
    O(m n u) (Yamamoto et al. 2015): both ratios pass with u of the format (measured
    about 0.006 and 0.03); Q and R in the storage dtype, exactly representable,
    R upper triangular with a positive diagonal; the input is left alone."""
    p = precision(fmt)
    A = _cq_tall(fmt)
    A_in = np.asfortranarray(A)
    res = get("qr/cholqr2-blocked").func(A_in)
    assert np.array_equal(A_in.view(np.uint16), A.view(np.uint16))
    m = metrics.bundle("qr", A, res, u=p.u, kappa=CQ_KAPPA)
    assert res.Q.shape == (CQ_M, CQ_N) and res.R.shape == (CQ_N, CQ_N)
    for name, X in _arrays(res).items():
        assert X.dtype == p.dtype, (name, X.dtype)
        X32 = X.astype(np.float32)
        assert np.array_equal(chop(X32, fmt), X32), name
    R = res.R.astype(np.float32)
    assert np.all(np.tril(R, -1) == 0) and np.all(np.diag(R) > 0)
    assert metrics.passed(m, size=CQ_N), m
    assert m["backward_ratio"] < 30
    assert m["orthogonality_ratio"] < 30


@pytest.mark.parametrize("fmt", EMULATED)
def test_cholqr2_blocked_emulation_is_real(fmt):
    """The float32 run on the same matrix is far more accurate in both residual and
    orthogonality; the emulated run is above float32's u by far, below n u_fmt."""
    p = precision(fmt)
    A = _cq_tall(fmt)
    _, m_emu = _cholqr2_blocked(A, p.u)
    _, m_32 = _cholqr2_blocked(A.astype(np.float32), precision("float32").u)
    assert m_emu["backward_error"] > 100 * m_32["backward_error"]
    assert m_emu["orthogonality_loss"] > 100 * m_32["orthogonality_loss"]
    assert m_emu["backward_error"] > 100 * precision("float32").u
    assert m_emu["backward_error"] < CQ_N * p.u


@pytest.mark.parametrize("fmt", EMULATED)
def test_cholqr2_blocked_block_operands_are_rounded(fmt, monkeypatch):
    """n = 64 (two Cholesky leaves, so its TRSM and SYRK blocks run): every operand
    of every TRSM (both passes' Q = A R^{-1} and the Cholesky's) and GEMM holds values
    of the format, i.e. each Gram-derived factor, TRSM and block update was rounded."""
    from factorbench.impls.blocked import qr as bqr

    log = _watch_block_kernels(monkeypatch, fmt)
    trsm = bqr.trsm

    def trsm_w(xp, T, B, **kw):
        X32 = [np.asarray(X, dtype=np.float32) for X in (T, B)]
        log.append(("qr-trsm", all(np.array_equal(chop(X, fmt), X) for X in X32)))
        return trsm(xp, T, B, **kw)

    monkeypatch.setattr(bqr, "trsm", trsm_w)
    A = _cq_tall(fmt, n=64)
    get("qr/cholqr2-blocked").func(np.asfortranarray(A))
    kinds = [k for k, _ in log]
    assert kinds.count("qr-trsm") == 2 and kinds.count("trsm") == 2, kinds
    assert kinds.count("gemm") >= 2, kinds
    assert all(good for _, good in log), log
