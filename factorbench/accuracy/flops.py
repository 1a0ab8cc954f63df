"""Nominal flop counts (LAPACK Working Note 41).

The counts are those of LAWN 41 (Blackford & Dongarra, "Installation Guide
for LAPACK", Appendix C), as used by the LAPACK timing suite and by
MAGMA/PLASMA's ``flops.h``: separate multiplication and addition counts, so
that a real flop is one of either and a complex one weighs 6 per
multiplication and 2 per addition (about 4x the real count).

Counts are *per op*, not per impl: ``gflops`` = nominal flops of the op /
median time, so every impl of an op is measured in the same currency (an
impl that does less work, e.g. ``solve`` through Cholesky, shows as higher
GFLOP/s, exactly as its time is lower). Ops without a standard count (svd,
eigh, lowrank, whose work depends on the algorithm and on convergence) have
none, and their ``gflops`` stays empty rather than invented.
"""

from __future__ import annotations

__all__ = ["flops", "FLOP_OPS"]


def _getrf(m, n):
    if m >= n:
        mul = 0.5 * n * (n * (m - n / 3.0 - 1.0) + m) + 2.0 / 3.0 * n
        add = 0.5 * n * (n * (m - n / 3.0) - m) + n / 6.0
    else:
        mul = 0.5 * m * (m * (n - m / 3.0 - 1.0) + n) + 2.0 / 3.0 * m
        add = 0.5 * m * (m * (n - m / 3.0) - n) + m / 6.0
    return mul, add


def _potrf(n):
    return n * ((n / 6.0 + 0.5) * n + 1.0 / 3.0), n * ((n / 6.0) * n - 1.0 / 6.0)


def _geqrf(m, n):
    if m > n:
        mul = n * (n * (0.5 - n / 3.0 + m) + m + 23.0 / 6.0)
        add = n * (n * (0.5 - n / 3.0 + m) + 5.0 / 6.0)
    else:
        mul = m * (m * (-0.5 - m / 3.0 + n) + 2.0 * n + 23.0 / 6.0)
        add = m * (m * (-0.5 - m / 3.0 + n) + n + 5.0 / 6.0)
    return mul, add


def _orgqr(m, n, k):
    mul = k * (2.0 * m * n + 2.0 * n - 5.0 / 3.0 + k * (2.0 / 3.0 * k - (m + n) - 1.0))
    add = k * (2.0 * m * n + n - m + 1.0 / 3.0 + k * (2.0 / 3.0 * k - (m + n)))
    return mul, add


def _getrs(n, nrhs):
    return nrhs * n * n, nrhs * n * (n - 1.0)


def _ormqr_left(m, nrhs, k):
    return 2.0 * nrhs * m * k - nrhs * k * k + 2.0 * nrhs * k, (
        2.0 * nrhs * m * k - nrhs * k * k + nrhs * k
    )


def _trsm_left(m, nrhs):
    return 0.5 * nrhs * m * (m + 1.0), 0.5 * nrhs * m * (m - 1.0)


def _sum(*pairs):
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


_COUNTS = {
    "lu": lambda m, n: _getrf(m, n),
    "cholesky": lambda m, n: _potrf(n),
    "qr": lambda m, n: _sum(_geqrf(m, n), _orgqr(m, n, n)),
    # geqp3 does the Householder work of geqrf; the column-norm downdates are
    # O(mn) and left out, as in LAWN 41.
    "qrcp": lambda m, n: _sum(_geqrf(m, n), _orgqr(m, n, n)),
    "solve": lambda m, n: _sum(_getrf(n, n), _getrs(n, 1)),
    # xGELS: geqrf, Q^H b (ormqr), back substitution with R.
    "lstsq": lambda m, n: _sum(_geqrf(m, n), _ormqr_left(m, 1, n), _trsm_left(n, 1)),
}
FLOP_OPS = tuple(_COUNTS)


def flops(op: str, m: int, n: int, *, complex_: bool = False) -> float | None:
    """Nominal flop count of ``op`` on an m x n input (LAWN 41).

    Parameters
    ----------
    op : str
        Operation name; ops without a standard count return None.
    m, n : int
        Rows and columns of A (``m == n`` for square ops).
    complex_ : bool
        Weigh multiplications 6 and additions 2 (complex arithmetic).

    Returns
    -------
    float or None
    """
    count = _COUNTS.get(op)
    if count is None:
        return None
    mul, add = count(float(m), float(n))
    return 6.0 * mul + 2.0 * add if complex_ else mul + add
