"""Emulated low precision (float16, bfloat16) for the textbook and blocked families.

The model is the tensor-core one of design section 4 (Higham & Pranesh 2019,
SIAM J. Sci. Comput. 41(5); Blanchard, Higham, Lopez, Mary & Pranesh 2020,
SIAM J. Sci. Comput. 42(3)): the matrix arrives in the storage format
(``np.float16`` or ``ml_dtypes.bfloat16``), every elementary or block
operation is computed in float32 and its result is rounded back to the format
(``chop``), and the factors go back in the storage format.  NumPy computes on
ml_dtypes arrays by silently upcasting, so nothing here relies on arithmetic
*in* the storage dtype: the work array is float32 and every rounding is an
explicit :meth:`Arithmetic.rnd`.

One mechanism serves every algorithm: :func:`arithmetic` maps an input dtype
to an :class:`Arithmetic`, the work dtype plus a rounding function.  For a
native dtype (float32/64, complex64/128) the work dtype is the input's and
``rnd`` returns its argument untouched, so a kernel written as
``W[...] = ar.rnd(W[...] - update)`` computes bit for bit what the in-place
``W[...] -= update`` computed before.  Each algorithm's docstring says where
it calls ``rnd`` (which operations are rounded once as a block: the "block
FMA model", a block product accumulated in float32 and rounded once).

The rounding itself is :func:`factorbench.accuracy.precision.chop`
(round to nearest, ties to even, subnormals kept), the harness's one
definition of the formats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from factorbench.accuracy import precision as _precision
from factorbench.accuracy.precision import EMULATED

__all__ = ["EMULATED", "Arithmetic", "arithmetic", "emulated_name", "identity"]


def _storage_dtypes() -> dict:
    out = {}
    for name in EMULATED:
        out[np.dtype(_precision.precision(name).dtype)] = name
    return out


_BY_DTYPE = _storage_dtypes()


def emulated_name(dtype) -> str | None:
    """The emulated precision whose storage dtype is ``dtype``, else None."""
    try:
        return _BY_DTYPE.get(np.dtype(dtype))
    except TypeError:  # not a NumPy dtype (another namespace's)
        return None


def identity(x):
    """The rounding of a native dtype: ``x`` itself.  Kernels test ``rnd is identity``
    to keep their native in-place code paths (bit-identical results)."""
    return x


@dataclass(frozen=True)
class Arithmetic:
    """How one input dtype is computed: the work dtype and the rounding after each op.

    Attributes
    ----------
    storage : numpy.dtype
        Dtype of the input and of the returned factors.
    work : numpy.dtype
        Dtype the algorithm computes in (float32 for an emulated format,
        the storage dtype otherwise).
    name : str or None
        The emulated format's name, None for a native dtype.
    """

    storage: np.dtype
    work: np.dtype
    name: str | None = None

    @property
    def emulated(self) -> bool:
        return self.name is not None

    @property
    def rnd(self):
        """Round an array or scalar of the work dtype to the format, keeping the
        work dtype (the identity, the same object, for native dtypes)."""
        if self.name is None:
            return identity
        name = self.name

        def rnd(x):
            a = np.asarray(x)
            r = _precision.chop(a, name)
            return r[()] if a.ndim == 0 else r

        return rnd

    def load(self, A, order="C"):
        """A writable copy of ``A`` in the work dtype (the values are unchanged:
        every storage value is exact in float32)."""
        return np.array(A, dtype=self.work, order=order, copy=True)

    def out(self, X):
        """``X`` in the storage dtype (X holds values of the format already, so
        the cast is exact); native arrays are returned as they are."""
        if self.name is None:
            return X
        return _precision.store(X, self.name)


def arithmetic(dtype) -> Arithmetic:
    """The :class:`Arithmetic` for an input of ``dtype``."""
    dt = np.dtype(dtype)
    name = emulated_name(dt)
    if name is None:
        return Arithmetic(dt, dt)
    return Arithmetic(dt, np.dtype(np.float32), name)
