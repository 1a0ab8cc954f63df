"""An LU whose accuracy drifts on demand, for the accuracy-gate tests (``--plugin``).

``lu/lapack_drift`` is ``lu/lapack`` (getrf) with U multiplied by ``1 + delta``,
``delta = FACTORBENCH_TEST_PERTURB`` (default 0: exactly ``lu/lapack``).  Then
``A[p] - L U = -delta L U``, so the backward error grows by about ``delta``
and the backward ratio by ``delta / (n u)``: ``1e-10`` at n = 64 in float64
gives about 1.4e4 (a failed cell), ``4e-14`` at n = 16 about 22: a cell that
still passes, but is far more than 4 times less accurate than the unperturbed
one (whose ratio is below 1, floored at 1 by the comparison).
"""

import dataclasses
import os

from factorbench.impls import NATIVE_REAL, get, register


@register("lu", "lapack_drift", backend="scipy", family="library", dtypes=NATIVE_REAL,
          layout="F")
def lu_lapack_drift(A):
    """getrf with U scaled by 1 + FACTORBENCH_TEST_PERTURB."""
    delta = float(os.environ.get("FACTORBENCH_TEST_PERTURB", "0"))
    r = get("lu/lapack").func(A)
    if not delta:
        return r
    return dataclasses.replace(r, U=r.U * r.U.dtype.type(1 + delta))
