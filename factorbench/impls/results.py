"""Result dataclasses, one per op (design section 2).

Every implementation returns one of these; the harness checks shapes and
dtypes and computes the metrics from them on the host in float64.
``extras`` carries impl-specific measurements (e.g. the exact growth factor
tracked inside the elimination, the rank an adaptive method chose).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["LU", "Cholesky", "QR", "QRCP", "SVD", "Eigh", "Solve", "Lstsq", "RESULT_TYPES"]


@dataclass
class LU:
    """``A[perm] = L @ U``; L (n, n) lower (unit diagonal in the Doolittle form
    LAPACK's xGETRF returns), U (n, n) upper, perm (n,) int.

    ``col_perm`` (n,) int, for pivoting strategies that also exchange columns
    (complete, rook): then ``A[perm][:, col_perm] = L @ U``.

    ``growth_factor_exact``: max over every intermediate Schur complement
    of |a_ij^(k)| divided by max |a_ij| (Higham 2002, eq. 9.6), for impls that
    track it; None otherwise.
    """

    perm: Any
    L: Any
    U: Any
    growth_factor_exact: float | None = None
    col_perm: Any = None
    extras: dict = field(default_factory=dict)


@dataclass
class Cholesky:
    """``A = L @ L^H``; L (n, n) lower triangular."""

    L: Any
    extras: dict = field(default_factory=dict)


@dataclass
class QR:
    """Thin QR: ``A = Q @ R``; Q (m, n) with orthonormal columns, R (n, n) upper."""

    Q: Any
    R: Any
    extras: dict = field(default_factory=dict)


@dataclass
class QRCP:
    """``A[:, perm] = Q @ R``; Q (m, n), R (n, n) upper, perm (n,) int."""

    Q: Any
    R: Any
    perm: Any
    extras: dict = field(default_factory=dict)


@dataclass
class SVD:
    """Thin SVD ``A = U @ diag(s) @ Vh``: U (m, k), s (k,) descending, Vh (k, n)."""

    U: Any
    s: Any
    Vh: Any
    extras: dict = field(default_factory=dict)


@dataclass
class Eigh:
    """``A @ V = V @ diag(w)``; w (n,) ascending, V (n, n) orthonormal."""

    w: Any
    V: Any
    extras: dict = field(default_factory=dict)


@dataclass
class Solve:
    """Solution x (n,) of the square system ``A x = b``."""

    x: Any
    extras: dict = field(default_factory=dict)


@dataclass
class Lstsq:
    """Least-squares solution x (n,) of ``min ||b - A x||_2``, A (m, n), m > n."""

    x: Any
    extras: dict = field(default_factory=dict)


#: op -> the result type its impls must return
RESULT_TYPES = {
    "lu": LU,
    "cholesky": Cholesky,
    "qr": QR,
    "qrcp": QRCP,
    "svd": SVD,
    "eigh": Eigh,
    "solve": Solve,
    "lstsq": Lstsq,
    "lowrank": SVD,
}
