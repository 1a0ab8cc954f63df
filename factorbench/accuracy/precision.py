"""Working precisions, their unit roundoff, and emulated low precisions (design section 4).

Native precisions are the ones NumPy/LAPACK compute in.  The unit roundoff is
``u = finfo(dtype).eps / 2`` (round-to-nearest), so ``u = 2**-53`` for
float64/complex128 and ``2**-24`` for float32/complex64 (Higham 2002, Table 2.1).

The harness hands an impl its matrix in the working precision and refuses a
result whose floating arrays come back in another precision: an impl that
silently computes in float64 for a float32 cell would otherwise report
float64 accuracy against float32's u.

Emulated precisions
-------------------
``float16`` (IEEE binary16, u = 2**-11), ``bfloat16`` (u = 2**-8) and the fp8
formats ``fp8_e4m3`` (OCP E4M3 "fn", u = 2**-4) and ``fp8_e5m2`` (u = 2**-3)
are stored with the NumPy float16 / ml_dtypes types.  The emulation model is
the one of a tensor-core unit (Blanchard, Higham, Lopez, Mary & Pranesh 2020,
"Mixed precision block fused multiply-add: error analysis and application to
GPU tensor cores", SIAM J. Sci. Comput. 42(3)):

* values are *stored* in the low format (every array an impl keeps or returns
  holds only numbers representable in it);
* every elementary or block operation (a rank-1 or GEMM update, a triangular
  solve, a dot product) is computed in the precision's ``accumulator``,
  float32, on those stored values and its result is rounded back to the low
  format with :func:`chop` (the reference is the ``chop`` function of Higham &
  Pranesh 2019, "Simulating low precision floating-point arithmetic", SIAM J.
  Sci. Comput. 41(5)).  Between two ``chop`` calls arithmetic is plain float32:
  ``chop`` returns its result in the input's dtype, values exactly
  representable in the format.

What the model captures: the storage rounding of every intermediate that a
real low-precision kernel writes back, and float32 accumulation *inside* one
block operation.  What it does not capture: the exact order and fusion of a
particular hardware unit (a block FMA of size b accumulates b products before
rounding; an impl that issues one block op per dot product gets fused float32
accumulation of the whole dot product only because the block op says so, not
otherwise), the float32 rounding inside the accumulator being itself
non-IEEE on some hardware (truncation, no subnormals), and exceptions/flags.
``chop`` rounds to nearest-even by default, optionally stochastically, and
optionally flushes subnormal results to zero.

NumPy computes on ml_dtypes arrays by silently upcasting each operation to
float32 (or float64 when mixed with float64) and, for ``out=`` or ``astype``,
rounding back, and returns float32/float64 arrays from many functions
(``np.linalg``, ``@`` on mixed operands, reductions with a ``dtype``).  So an
emulating impl must round explicitly after every operation, and the harness
checks that results come back in the storage dtype (:func:`result_dtype_error`):
a float32 result for a bfloat16 cell is reported "wrong precision".

Conversions: ml_dtypes converts float64 to bfloat16 and the fp8 formats via
float32, a double rounding that misses the nearest value near ties (e.g.
``1 + 2**-8 + 2**-40`` becomes 1 instead of ``1 + 2**-7``); NumPy converts
float64 to float16 directly.  :func:`chop` and :func:`store` round correctly
from float64 with their own arithmetic.  ``fp8_e4m3`` has no infinities: its
largest finite number is 448 and overflow (and ±inf input) gives NaN, as in
ml_dtypes' non-saturating conversion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass

import ml_dtypes
import numpy as np

__all__ = [
    "Precision",
    "PRECISIONS",
    "NATIVE_REAL",
    "NATIVE_COMPLEX",
    "EMULATED",
    "FP8",
    "precision",
    "unit_roundoff",
    "result_dtype_error",
    "chop",
    "store",
]


@dataclass(frozen=True)
class Precision:
    """One working precision.

    Attributes
    ----------
    name : str
        Table key, e.g. "float32".
    dtype : numpy.dtype
        Storage dtype of the working arrays.
    real : numpy.dtype
        Real counterpart (singular values and eigenvalues come back real);
        the precision's own dtype for real and emulated precisions.
    u : float
        Unit roundoff, eps/2.
    is_complex : bool
    emulated : bool
        True for formats NumPy/LAPACK cannot compute in (rounded by ``chop``).
    emax : int
        Largest exponent: the largest finite number lies in [2**emax, 2**(emax+1)).
    accumulator : numpy.dtype
        Dtype block operations are computed in: float32 for emulated formats,
        the dtype itself for native ones.
    emin : int
        Exponent of the smallest normal number 2**emin.
    t : int
        Significand bits, including the implicit bit (u = 2**-t).
    """

    name: str
    dtype: np.dtype
    real: np.dtype
    u: float
    is_complex: bool
    emulated: bool = False
    emax: int = 0
    accumulator: np.dtype | None = None
    emin: int = 0
    t: int = 0
    has_inf: bool = field(default=True, repr=False)

    def __post_init__(self):
        if self.accumulator is None:
            object.__setattr__(self, "accumulator", self.dtype)

    @property
    def host(self) -> np.dtype:
        """Dtype the metrics are computed in: float64 or complex128."""
        return np.dtype(np.complex128 if self.is_complex else np.float64)

    @property
    def xmax(self) -> float:
        """Largest finite number of the (real) format."""
        return float(ml_dtypes.finfo(self.real).max)

    @property
    def xmin(self) -> float:
        """Smallest positive normal number, 2**emin."""
        return math.ldexp(1.0, self.emin)


def _make(name: str, dt, *, emulated: bool, has_inf: bool = True) -> Precision:
    dt = np.dtype(dt)
    fi = ml_dtypes.finfo(dt)
    real = np.dtype(fi.dtype)
    return Precision(
        name, dt, real, float(fi.eps) / 2, dt.kind == "c", emulated,
        emax=math.frexp(float(fi.max))[1] - 1,
        accumulator=np.dtype(np.float32) if emulated else dt,
        emin=math.frexp(float(fi.tiny))[1] - 1,
        t=int(fi.nmant) + 1,
        has_inf=has_inf,
    )


PRECISIONS: dict[str, Precision] = {
    n: _make(n, n, emulated=False) for n in ("float64", "float32", "complex128", "complex64")
}
PRECISIONS.update(
    float16=_make("float16", np.float16, emulated=True),
    bfloat16=_make("bfloat16", ml_dtypes.bfloat16, emulated=True),
    # OCP E4M3 "fn": no infinities; overflow (and inf input) gives NaN.
    fp8_e4m3=_make("fp8_e4m3", ml_dtypes.float8_e4m3fn, emulated=True, has_inf=False),
    fp8_e5m2=_make("fp8_e5m2", ml_dtypes.float8_e5m2, emulated=True),
)
NATIVE_REAL = ("float64", "float32")
NATIVE_COMPLEX = ("complex128", "complex64")
EMULATED = ("float16", "bfloat16")
FP8 = ("fp8_e4m3", "fp8_e5m2")

# ml_dtypes' floating types report dtype.kind "V" (all but float8_e5m2), so
# the "is it floating" test of result_dtype_error lists them explicitly.
_ML_FLOATS = frozenset(
    np.dtype(getattr(ml_dtypes, n)) for n in dir(ml_dtypes)
    if n.startswith(("float", "bfloat")) and isinstance(getattr(ml_dtypes, n), type)
)


def precision(name: str) -> Precision:
    """Look up a precision by name; unknown names raise ``KeyError`` with the choices."""
    try:
        return PRECISIONS[str(name)]
    except KeyError:
        raise KeyError(f"unknown dtype {name!r}; known: {', '.join(PRECISIONS)}") from None


def unit_roundoff(name: str) -> float:
    """Unit roundoff u of a working precision (eps/2)."""
    return precision(name).u


def _is_floating(dt: np.dtype) -> bool:
    return dt.kind in "fc" or dt in _ML_FLOATS


def result_dtype_error(result, name: str) -> str | None:
    """Return why ``result`` is not in working precision ``name``, or None.

    Every floating or complex array field must have the working dtype, or its
    real counterpart (singular values, eigenvalues, and real factors of a
    real matrix).  For an emulated precision that is the storage dtype
    (float16, bfloat16, fp8): a float32 array (the accumulator) is refused
    like any other up-cast.  Integer fields (permutations) are not checked.
    """
    p = precision(name)
    allowed = {p.dtype, p.real}
    if not is_dataclass(result):
        return f"impl returned {type(result).__name__}, not a result dataclass"
    for f in fields(result):
        if f.name == "extras":
            continue
        val = getattr(result, f.name)
        if isinstance(val, (list, tuple)):
            return f"{f.name} came back as a {type(val).__name__}, not an array"
        dt = getattr(val, "dtype", None)
        if dt is None:
            continue
        dt = np.dtype(dt) if not isinstance(dt, np.dtype) else dt
        if _is_floating(dt) and dt not in allowed:
            return (
                f"{f.name} came back as {dt.name}, working precision is {p.name}"
                " (silent up/down-cast)"
            )
    return None


_ROUNDINGS = ("nearest", "stochastic")


def _chop_real(x: np.ndarray, p: Precision, rounding: str, rng) -> np.ndarray:
    """Round real float64 ``x`` to format ``p``; float64 result, exactly representable."""
    out = x.copy()
    fin = np.isfinite(x) & (x != 0)
    v = x[fin]
    if v.size:
        # Exponent of each value, clipped at emin: below it the spacing is the
        # subnormal spacing 2**(emin - t + 1) (gradual underflow).
        e = np.maximum(np.frexp(v)[1] - 1, p.emin)
        shift = (p.t - 1) - e
        s = np.ldexp(v, shift)  # exact: a power-of-two scaling, |s| < 2**t
        if rounding == "nearest":
            r = np.rint(s)  # ties to even; even integer <=> even last significand bit
        else:
            lo = np.floor(s)
            r = lo + (rng.random(s.shape) < (s - lo))
        r = np.ldexp(r, -shift)
        big = np.abs(r) > p.xmax
        if big.any():
            r[big] = np.copysign(np.inf, r[big]) if p.has_inf else np.nan
        out[fin] = r
    if not p.has_inf:
        out[np.isinf(x)] = np.nan
    return out


def chop(x, name: str, *, rounding: str = "nearest", rng=None, subnormals: bool = True):
    """Round every entry of ``x`` to the format ``name``, returned in ``x``'s dtype.

    Parameters
    ----------
    x : array_like of float32 or float64 (complex64/complex128: parts rounded separately)
        Integer and bool input is taken as float64.  Narrower floating input
        (float16, bfloat16, the fp8 and other ml_dtypes formats) is widened to
        float32 first, exactly (every such value is a float32 number), and the
        result is float32, as Higham & Pranesh's ``chop`` takes any input.
    name : str
        A precision of :data:`PRECISIONS`.  For an emulated name the values are
        rounded to that format; for a native name to float32/float64 (the
        identity when the input is no wider).
    rounding : {"nearest", "stochastic"}
        "nearest": round to nearest, ties to even, correctly from float64 input
        (no double rounding through float32).  "stochastic": round up to the
        upper neighbour with probability equal to the distance to the lower
        neighbour in units of the spacing between them, so the expected value
        is ``x`` (Higham & Pranesh 2019, mode 5).
    rng : None, int, SeedSequence or Generator
        Source of the stochastic draws (normalised with
        :func:`factorbench.accuracy.matrices.normalize_rng`); unused for "nearest".
    subnormals : bool
        False flushes results that round to a subnormal number to zero, keeping
        the sign (tininess after rounding).

    Returns
    -------
    numpy.ndarray of ``x``'s dtype (float32 for float16/ml_dtypes input)
        Magnitudes above the format's largest finite number (after rounding)
        become ±inf, NaN for fp8_e4m3 (no infinities; inf input too).  NaN stays
        NaN, ±0 keeps its sign.
    """
    if rounding not in _ROUNDINGS:
        raise ValueError(f"rounding must be one of {_ROUNDINGS}; got {rounding!r}")
    p = precision(name)
    x = np.asarray(x)
    if x.dtype.kind in "biu":
        x = x.astype(np.float64)
    elif x.dtype == np.float16 or x.dtype in _ML_FLOATS:
        x = x.astype(np.float32)  # exact: every value of these formats is a float32
    if x.dtype not in (np.float32, np.float64, np.complex64, np.complex128):
        raise TypeError(f"chop takes float32/float64 (or complex) arrays; got {x.dtype.name}")
    if rounding == "stochastic":
        from factorbench.accuracy.matrices import normalize_rng

        rng = normalize_rng(rng)
    if x.dtype.kind == "c":
        out = np.empty_like(x)
        out.real = chop(x.real, name, rounding=rounding, rng=rng, subnormals=subnormals)
        out.imag = chop(x.imag, name, rounding=rounding, rng=rng, subnormals=subnormals)
        return out
    fmt = PRECISIONS["float32" if p.real == np.float32 else "float64"] if not p.emulated else p
    if fmt.t >= 53 or (fmt.t >= 24 and x.dtype == np.float32):
        out = x.copy()  # already representable
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            out = _chop_real(x.astype(np.float64), fmt, rounding, rng)
        out = out.astype(x.dtype)
    if not subnormals:
        tiny = np.isfinite(out) & (np.abs(out) < fmt.xmin) & (out != 0)
        out[tiny] = np.copysign(0.0, out[tiny]).astype(x.dtype)
    return out


def store(x, name: str) -> np.ndarray:
    """``x`` rounded to nearest-even in the format ``name``, in its storage dtype.

    The conversion of :func:`chop`'s (representable) result is exact, so this is
    the correctly rounded storage array even from float64 input, where
    ml_dtypes' own ``astype`` rounds twice (via float32).  Complex input
    needs a complex (native) name; real input gets the real storage dtype.
    """
    p = precision(name)
    cplx = np.asarray(x).dtype.kind == "c"
    if cplx and not p.is_complex:
        raise TypeError(f"store: complex input needs a complex precision, not {p.name}")
    with np.errstate(over="ignore", invalid="ignore"):
        return chop(x, name).astype(p.dtype if cplx else p.real)
