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


def test_growth_tracked_on_chopped_values():
    """lu/gepp's exact growth in bfloat16 comes from the chopped Schur complements:
    on Wilkinson's matrix they are powers of two, exact in any format, so the
    growth is exactly 2^(n-1) in bfloat16 too."""
    n = 12
    tm = matrices.generate("wilkinson", n, n, rng=0)
    A = store(tm.A, "bfloat16")
    res = get("lu/gepp").func(A)
    assert res.growth_factor_exact == 2.0 ** (n - 1)


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
    for impl_id in ("qr/tsqr", "qr/cholqr2-blocked", "qr/scholqr3"):
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
