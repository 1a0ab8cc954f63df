"""Working precisions and their unit roundoff (design section 4).

Native precisions are the ones NumPy/LAPACK compute in.  The unit roundoff is
``u = finfo(dtype).eps / 2`` (round-to-nearest), so ``u = 2**-53`` for
float64/complex128 and ``2**-24`` for float32/complex64 (Higham 2002, Table 2.1).

The harness hands an impl its matrix in the working precision and refuses a
result whose floating arrays come back in another precision: an impl that
silently computes in float64 for a float32 cell would otherwise report
float64 accuracy against float32's u.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass

import numpy as np

__all__ = [
    "Precision",
    "PRECISIONS",
    "NATIVE_REAL",
    "NATIVE_COMPLEX",
    "precision",
    "unit_roundoff",
    "result_dtype_error",
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
        Real counterpart (singular values and eigenvalues come back real).
    u : float
        Unit roundoff, eps/2.
    is_complex : bool
    emulated : bool
        True for formats NumPy/LAPACK cannot compute in (rounded by ``chop``).
    """

    name: str
    dtype: np.dtype
    real: np.dtype
    u: float
    is_complex: bool
    emulated: bool = False

    @property
    def host(self) -> np.dtype:
        """Dtype the metrics are computed in: float64 or complex128."""
        return np.dtype(np.complex128 if self.is_complex else np.float64)


def _native(name: str) -> Precision:
    dt = np.dtype(name)
    real = np.finfo(dt).dtype
    return Precision(name, dt, real, float(np.finfo(dt).eps) / 2, dt.kind == "c")


PRECISIONS: dict[str, Precision] = {
    n: _native(n) for n in ("float64", "float32", "complex128", "complex64")
}
NATIVE_REAL = ("float64", "float32")
NATIVE_COMPLEX = ("complex128", "complex64")


def precision(name: str) -> Precision:
    """Look up a precision by name; unknown names raise ``KeyError`` with the choices."""
    try:
        return PRECISIONS[str(name)]
    except KeyError:
        raise KeyError(f"unknown dtype {name!r}; known: {', '.join(PRECISIONS)}") from None


def unit_roundoff(name: str) -> float:
    """Unit roundoff u of a working precision (eps/2)."""
    return precision(name).u


def result_dtype_error(result, name: str) -> str | None:
    """Return why ``result`` is not in working precision ``name``, or None.

    Every floating or complex array field must have the working dtype, or its
    real counterpart (singular values, eigenvalues, and real factors of a
    real matrix).  Integer fields (permutations) are not checked.
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
        if dt.kind in "fc" and dt not in allowed:
            return (
                f"{f.name} came back as {dt.name}, working precision is {p.name}"
                " (silent up/down-cast)"
            )
    return None
