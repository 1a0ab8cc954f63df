"""Randomized family: sketching algorithms, written once against the array namespace.

Every function takes its namespace from its input (``array_api_compat``) and
calls only the array API standard (with its ``linalg`` and ``fft``
extensions) plus the sketching operators of :mod:`._sketch` and the
triangular solve of the blocked family, so the same code serves NumPy here,
CuPy on a GPU and array-api-strict in the tests, and never imports CuPy.
Every random number is drawn from the ``rng`` the function is given
(normalised once; the harness passes a Generator seeded from the cell), on
the host, so a seed gives the same sketch on every backend and a rerun of a
cell is bit-identical.

Modules, one op each:

* :mod:`.lowrank`: HMT randomized SVD with oversampling ``p``, power
  iterations ``q`` and the sketch type as swept parameters; randomized block
  Krylov; Nyström for SPD/HPD input; the adaptive range finder that stops at
  a tolerance and reports the rank it chose.
* :mod:`.lstsq`: sketch-and-solve, and sketch-and-precondition (Blendenpik /
  LSRN: QR of the sketch as a right preconditioner for LSQR, warm-started
  from sketch-and-solve).
* :mod:`.qr`: randomized column pivoting (pivots chosen on a sketch, HQRRP)
  and sketch-preconditioned Cholesky QR.
* :mod:`._sketch`: Gaussian, sparse sign and subsampled randomized
  trigonometric (DCT/DFT) sketches.

Peer libraries' versions of the same methods (scikit-learn, SciPy's svds)
live in :mod:`factorbench.impls.peers`.

References
----------
N. Halko, P.-G. Martinsson and J. A. Tropp, Finding structure with randomness,
SIAM Review 53(2), 2011.
P.-G. Martinsson and J. A. Tropp, Randomized numerical linear algebra:
foundations and algorithms, Acta Numerica 29, 2020.
"""

from factorbench.impls.randomized import lowrank, lstsq, qr  # noqa: F401  (importing registers)

__all__ = ["lowrank", "lstsq", "qr"]
