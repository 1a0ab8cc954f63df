"""Emulated low precisions: the precision table, ``chop``/``store``, dtype checks."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

from factorbench.accuracy import matrices
from factorbench.accuracy.precision import (
    EMULATED,
    FP8,
    PRECISIONS,
    chop,
    precision,
    result_dtype_error,
    store,
    unit_roundoff,
)
from factorbench.impls.results import LU

LOW = EMULATED + FP8


# --------------------------------------------------------------------------- reference
def _format_values(name):
    """Non-negative finite values of the format in bit-pattern order, plus the
    virtual next value max + ulp (where rounding with an unbounded exponent
    would go; reaching it is overflow).  Index parity = last significand bit."""
    p = precision(name)
    bits = p.dtype.itemsize * 8
    utype = {8: np.uint8, 16: np.uint16}[bits]
    with np.errstate(invalid="ignore"):
        v = np.arange(2 ** (bits - 1), dtype=utype).view(p.dtype).astype(np.float64)
    k = int(np.argmax(~np.isfinite(v)))  # first inf/NaN pattern
    top = v[k - 1] + math.ldexp(1.0, p.emax - p.t + 1)
    return np.append(v[:k], top)


_VALS = {n: _format_values(n) for n in LOW}


def _reference(x, name):
    """Exact round-to-nearest-even of float64 ``x`` (float64 result) by search."""
    p, vals = precision(name), _VALS[name]
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    i = np.clip(np.searchsorted(vals, a, side="left"), 1, len(vals) - 1)
    lo, hi = vals[i - 1], vals[i]
    mid = (lo + hi) / 2  # exact: lo and hi have few significand bits
    up = (a > mid) | ((a == mid) & (i % 2 == 0))
    up |= a == hi
    idx = np.where(up, i, i - 1)
    r = vals[idx]
    over = (idx == len(vals) - 1) | (a > vals[-1])
    r = np.where(over, np.inf if p.has_inf else np.nan, r)
    r = np.where(np.isnan(x), np.nan, r)
    if not p.has_inf:
        r = np.where(np.isinf(x), np.nan, r)
    return np.copysign(r, x)


def _same(a, b):
    """Equal including NaN == NaN and the sign of zero."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    nan = np.isnan(a)
    np.testing.assert_array_equal(nan, np.isnan(b))
    np.testing.assert_array_equal(a[~nan], b[~nan])
    np.testing.assert_array_equal(np.signbit(a[~nan]), np.signbit(b[~nan]))


def _dense_inputs(name):
    """Every format value, every midpoint between neighbours (ties, including
    the overflow tie max + ulp/2 and the subnormal ones), two float32 steps
    either side of each, both signs, signed zeros, inf, NaN: all float32."""
    v = _VALS[name]
    mids = (v[:-1] + v[1:]) / 2
    pts = np.concatenate([v[:-1], mids]).astype(np.float32)
    steps = [pts]
    for direction in (np.inf, -np.inf):
        q = pts
        for _ in range(2):
            q = np.nextafter(q, np.float32(direction))
            steps.append(q)
    x = np.concatenate(steps + [np.float32([0.0, np.inf, np.nan, 2.0**-149, 3e38])])
    return np.concatenate([x, -x])


# --------------------------------------------------------------------------- table
def test_table_fields():
    for name, u, emax in (("float16", 2**-11, 15), ("bfloat16", 2**-8, 127),
                          ("fp8_e4m3", 2**-4, 8), ("fp8_e5m2", 2**-3, 15)):
        p = precision(name)
        assert p.u == u == unit_roundoff(name)
        assert p.emax == emax and p.emulated and not p.is_complex
        assert p.real == p.dtype and p.host == np.float64
        assert p.accumulator == np.float32
        assert math.ldexp(1.0, p.emax) <= p.xmax < math.ldexp(1.0, p.emax + 1)
    assert precision("bfloat16").dtype == np.dtype(ml_dtypes.bfloat16)
    assert precision("fp8_e4m3").dtype == np.dtype(ml_dtypes.float8_e4m3fn)
    assert precision("fp8_e4m3").xmax == 448.0 and not precision("fp8_e4m3").has_inf
    assert EMULATED == ("float16", "bfloat16") and FP8 == ("fp8_e4m3", "fp8_e5m2")
    for name, u in (("float64", 2**-53), ("float32", 2**-24),
                    ("complex128", 2**-53), ("complex64", 2**-24)):
        p = PRECISIONS[name]
        assert p.u == u and not p.emulated and p.accumulator == p.dtype
    assert precision("complex64").real == np.float32
    assert precision("float64").emax == 1023 and precision("float32").emax == 127


# --------------------------------------------------------------------------- nearest
@pytest.mark.parametrize("name", LOW)
def test_chop_float32_exhaustive_against_reference(name):
    x = _dense_inputs(name)
    with np.errstate(over="ignore", invalid="ignore"):
        y = chop(x, name)
        assert y.dtype == np.float32
        _same(y, _reference(x.astype(np.float64), name))
        # ml_dtypes / NumPy convert float32 with a single, correct rounding.
        _same(x.astype(precision(name).dtype), y)
        _same(store(x, name), y)
        assert store(x, name).dtype == precision(name).dtype


@pytest.mark.parametrize("name", ("float16", "bfloat16", "fp8_e5m2"))
def test_overflow_threshold_ieee(name):
    p = precision(name)
    half = math.ldexp(1.0, p.emax - p.t)  # half an ulp of the top binade
    x = np.array([p.xmax, p.xmax + half, np.nextafter(p.xmax + half, 0), -(p.xmax + half)])
    _same(chop(x, name), [p.xmax, np.inf, p.xmax, -np.inf])  # the tie goes to even: overflow


def test_fp8_e4m3_has_no_inf():
    x = np.array([448.0, 464.0, np.nextafter(464.0, np.inf), 1e6, np.inf, -np.inf, -464.0])
    _same(chop(x, "fp8_e4m3"), [448, 448, np.nan, np.nan, np.nan, np.nan, -448])


@pytest.mark.parametrize("name", LOW)
def test_specials(name):
    y = chop(np.array([-0.0, 0.0, np.nan, -1e-300]), name)
    _same(y, [-0.0, 0.0, np.nan, -0.0])


@pytest.mark.parametrize("name", LOW)
def test_float64_input_no_double_rounding(name):
    x32 = _dense_inputs(name)
    x32 = x32[np.isfinite(x32)].astype(np.float64)
    x = np.concatenate([x32, x32 * (1 + 2.0**-30), x32 * (1 - 2.0**-30), x32 * (1 + 2.0**-52)])
    with np.errstate(over="ignore", invalid="ignore"):
        ref = _reference(x, name)
        _same(chop(x, name), ref)
        _same(store(x, name), ref)
        assert chop(x, name).dtype == np.float64
        # matrices._round_real (round to odd into float32) agrees.
        _same(matrices._round_real(x, precision(name).dtype), ref)
        direct = x.astype(precision(name).dtype).astype(np.float64)
    wrong = np.isnan(direct) != np.isnan(ref)
    wrong |= ~np.isnan(ref) & (direct != ref)
    if name == "float16":
        assert not wrong.any()  # NumPy converts float64 -> float16 directly
    else:
        assert wrong.any()  # ml_dtypes goes through float32: double rounding


def test_double_rounding_example():
    x = np.array([1 + 2.0**-8 + 2.0**-40])  # just above the tie 1 | 1 + 2^-7
    assert x.astype(ml_dtypes.bfloat16).astype(np.float64)[0] == 1.0  # ml_dtypes: wrong
    assert chop(x, "bfloat16")[0] == 1 + 2.0**-7
    assert store(x, "bfloat16").astype(np.float64)[0] == 1 + 2.0**-7


def test_native_names():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(100)
    assert np.array_equal(chop(x, "float64"), x)
    assert np.array_equal(chop(x, "float32"), x.astype(np.float32).astype(np.float64))
    x32 = x.astype(np.float32)
    assert np.array_equal(chop(x32, "float32"), x32) and chop(x32, "float64").dtype == np.float32
    z = x[:50] + 1j * x[50:]
    assert np.array_equal(chop(z, "complex64"), z.astype(np.complex64).astype(np.complex128))
    assert store(z, "complex64").dtype == np.complex64
    assert store(x, "float32").dtype == np.float32


def test_bad_arguments():
    with pytest.raises(ValueError, match="rounding"):
        chop(np.ones(2), "bfloat16", rounding="up")
    with pytest.raises(TypeError):  # float16 is accepted (widened); non-numbers are not
        chop(np.array(["1.0", "2.0"]), "bfloat16")
    with pytest.raises(KeyError):
        chop(np.ones(2), "float8")


# --------------------------------------------------------------------------- subnormals
@pytest.mark.parametrize("name", LOW)
def test_flush_subnormals(name):
    p = precision(name)
    sub = math.ldexp(1.0, p.emin - 2)  # a subnormal of the format
    x = np.array([sub, -sub, p.xmin, -p.xmin, 1.0]).astype(np.float32)
    _same(chop(x, name), x)
    _same(chop(x, name, subnormals=False), [0.0, -0.0, p.xmin, -p.xmin, 1.0])
    y = chop(x, name, subnormals=False, rounding="stochastic", rng=1)
    _same(y[:2], [0.0, -0.0])


# --------------------------------------------------------------------------- stochastic
@pytest.mark.parametrize(("name", "x"), [
    ("bfloat16", 1 + 0.3 * 2.0**-7),
    ("bfloat16", -(2.0**5) * (1 + 0.71 * 2.0**-7)),
    ("float16", 2.0**-20 * 1.1),  # subnormal range
    ("fp8_e4m3", 3.3),
    ("fp8_e5m2", -0.1),
])
def test_stochastic_unbiased_two_neighbours(name, x):
    n = 200_000
    y = chop(np.full(n, x), name, rounding="stochastic", rng=np.random.default_rng(7))
    lo, hi = _VALS[name][np.searchsorted(_VALS[name], abs(x)) + np.array([-1, 0])]
    assert set(np.unique(np.abs(y))) <= {lo, hi}
    p = (abs(x) - lo) / (hi - lo)
    se = (hi - lo) * math.sqrt(p * (1 - p) / n)
    assert abs(y.mean() - x) < 5 * se
    assert abs(np.mean(np.abs(y) == hi) - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_stochastic_representable_and_reproducible():
    v = _VALS["bfloat16"][1000:1100:7]
    assert np.array_equal(chop(v, "bfloat16", rounding="stochastic", rng=3), v)
    x = np.random.default_rng(1).standard_normal(1000)
    a = chop(x, "bfloat16", rounding="stochastic", rng=5)
    b = chop(x, "bfloat16", rounding="stochastic", rng=np.random.SeedSequence(5))
    assert np.array_equal(a, b)
    _same(chop(a, "bfloat16"), a)  # representable
    assert np.all(np.abs(a - x) < 2.0**-7 * np.abs(x))


# --------------------------------------------------------------------------- dtype checks
def test_result_dtype_error_emulated():
    perm = np.arange(3)
    bf = np.eye(3).astype(ml_dtypes.bfloat16)
    assert result_dtype_error(LU(perm, bf, bf), "bfloat16") is None
    f32 = np.eye(3, dtype=np.float32)
    why = result_dtype_error(LU(perm, f32, bf), "bfloat16")
    assert why and "float32" in why and "bfloat16" in why
    # ml_dtypes types (dtype.kind "V") are recognised as floating too.
    why = result_dtype_error(LU(perm, bf, bf), "float32")
    assert why and "bfloat16" in why
    fp8 = np.eye(3).astype(ml_dtypes.float8_e4m3fn)
    assert result_dtype_error(LU(perm, fp8, fp8), "fp8_e4m3") is None
    assert result_dtype_error(LU(perm, f32, f32), "float32") is None


def test_worker_rounds_emulated_matrix_correctly():
    from factorbench import worker

    cell = {"matrix_seed": 11, "dtype": "bfloat16", "op": "lu", "kind": "randsvd", "m": 16,
            "n": 16, "kappa": 1e3, "mode": 3, "rank": None}
    worker._CACHE.clear()
    try:
        tm, A_w, *_ = worker._matrix(cell)
        assert A_w.dtype == np.dtype(ml_dtypes.bfloat16)
        _same(A_w, _reference(tm.A, "bfloat16"))
    finally:
        worker._CACHE.clear()


@pytest.mark.parametrize("name", ["float16", "bfloat16", "fp8_e4m3", "fp8_e5m2", "float32"])
@pytest.mark.parametrize("src", [np.float16, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn])
def test_chop_accepts_narrow_float_input(src, name):
    """float16 / ml_dtypes input is widened to float32 (exactly) and comes back in
    float32, rounded as the float32 array of the same values would be."""
    x = np.random.default_rng(3).standard_normal(200) * 30
    x = np.concatenate([x, [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-7]]).astype(src)
    x32 = x.astype(np.float32)
    assert np.array_equal(x32.astype(np.float64), x.astype(np.float64), equal_nan=True)
    out = chop(x, name)
    assert out.dtype == np.float32
    assert np.array_equal(out, chop(x32, name), equal_nan=True)
    assert np.array_equal(np.signbit(out), np.signbit(chop(x32, name)))
    if np.dtype(src) == precision(name).dtype:
        assert np.array_equal(out, x32, equal_nan=True)  # already representable: identity


def test_store_accepts_narrow_float_input():
    x = np.random.default_rng(4).standard_normal(50).astype(np.float16)
    s = store(x, "bfloat16")
    assert s.dtype == precision("bfloat16").dtype
    assert np.array_equal(s, store(x.astype(np.float32), "bfloat16"))
