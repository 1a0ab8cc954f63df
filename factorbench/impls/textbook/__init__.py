"""Textbook reference algorithms in pure NumPy (backend "numpy", family "textbook").

The classic algorithms as Golub & Van Loan (GVL 2013, 4th ed.), Trefethen &
Bau (1997) and Higham (2002) state them, one Python loop over the
elimination step with BLAS-1/2 NumPy operations inside (Givens QR loops over
rotations, each applied to two rows at once).  They are the readable
references the faster families are checked against, and the deliberately
unstable ones (LU without pivoting, classical and modified Gram-Schmidt,
CholeskyQR, normal equations, multiplication by the inverse) are the
baselines that show why the stable ones exist.

Registered implementations (op/name, stable, max_n)::

    lu/gepp            yes  1024    qr/mgs             no   1024
    lu/nopivot         no   1024    qr/cgs2            yes  1024
    lu/gecp            yes   256    qr/cholqr          no   1024
    cholesky/textbook  yes  1024    qr/cholqr2         yes  1024
    qr/householder     yes  1024    qrcp/householder   yes  1024
    qr/givens          yes   256    solve/lu           yes  1024
    qr/cgs             no   1024    solve/inv          no   1024
    lstsq/normal       no   1024    lstsq/householder  yes  1024

Choices where the design is silent:

* Precision: every operation is done in the input's dtype (float32, float64,
  complex64, complex128), scalars included (NumPy scalars of that dtype,
  never Python floats computed in double); outputs have that dtype.
* Emulated float16/bfloat16 (design section 4) are declared by ``lu/gepp``,
  ``lu/nopivot``, ``cholesky/textbook``, ``solve/lu``, ``qr/householder``
  and ``qr/cholqr2``: they compute on a float32 copy and round every step's
  result to the format with ``chop`` (:mod:`._emulate`, shared with the
  blocked family: one "work dtype + rounding" helper whose rounding is the
  identity for native dtypes, so native results are bit-identical); where
  each rounds is in its kernel's docstring.  The others refuse those dtypes.
* Inputs are never modified: each impl factors a copy.
* Complex Householder reflectors follow LAPACK xLARFG (beta real, so diag(R)
  is real and Q = H_1 ... H_n with H = I - tau v v^H); Givens rotations
  follow xLARTG (c real); Cholesky uses A = L L^H and requires a real diagonal.
* Partial and complete pivoting break ties towards the first index (IxAMAX);
  a zero pivot with pivoting skips the step as xGETF2 does (the column is
  already zero), while LU without pivoting lets Inf/NaN through for the
  harness to record.
* ``growth_factor_exact`` is max_k max|a_ij^(k)| / max|a_ij| over the original
  matrix and every active Schur complement (Higham 2002, eq. 9.6), computed
  from the same |A^(k)| pass that complete pivoting needs for its search.
* ``lu/gecp`` returns the factors of ``A[perm][:, q]`` with q in
  ``LU.col_perm``: folding q into U would make U non-triangular.
* The file passed the ~500-line budget, so it is a subpackage: ``_kernels``
  (LU step, substitutions, Cholesky, Householder and Givens kernels shared by
  all), ``lu`` (LU, Cholesky), ``qr`` (QR, QRCP), ``solve`` (solve, lstsq).

References
----------
G. H. Golub and C. F. Van Loan, *Matrix Computations*, 4th ed., JHU Press, 2013.
L. N. Trefethen and D. Bau, *Numerical Linear Algebra*, SIAM, 1997.
N. J. Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., SIAM, 2002.
Å. Björck, Solving linear least squares problems by Gram-Schmidt
orthogonalization, BIT 7, 1967; *Numerical Methods for Least Squares
Problems*, SIAM, 1996.
L. Giraud, J. Langou, M. Rozložník and J. van den Eshof, Rounding error
analysis of the classical Gram-Schmidt orthogonalization process, Numer.
Math. 101, 2005.
T. Fukaya, Y. Nakatsukasa, Y. Yanagisawa and Y. Yamamoto, CholeskyQR2: a
simple and communication-avoiding algorithm for computing a tall-skinny QR
factorization on a large-scale parallel system, ScalA'14, 2014.
Z. Drmač and Z. Bujanović, On the failure of rank-revealing QR factorization
software - a case study, ACM TOMS 35(2), 2008 (LAPACK Working Note 176).
P. Businger and G. H. Golub, Linear least squares solutions by Householder
transformations, Numer. Math. 7, 1965.
"""

from factorbench.impls.textbook import lu, qr, solve  # noqa: F401  (importing registers)

__all__ = ["lu", "qr", "solve"]
