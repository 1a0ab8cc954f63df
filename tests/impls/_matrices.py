"""Random matrices shared by the impl tests."""

import numpy as np


def haar(rng, m, n, cplx=False):
    """m x n with Haar-distributed orthonormal columns: the Q of a Gaussian matrix
    with R's diagonal phases removed (LAPACK's sign convention would bias it)."""
    X = rng.standard_normal((m, n))
    if cplx:
        X = X + 1j * rng.standard_normal((m, n))
    Q, R = np.linalg.qr(X)
    d = np.diagonal(R)
    return Q * (d / np.abs(d))
