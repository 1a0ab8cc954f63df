"""BLAS-3 blocked and recursive factorizations, written once against the array namespace.

Every function takes its namespace from its input (``array_api_compat``) and
calls only the array API standard plus the kernels of :mod:`._xp` (xTRSM,
an in-place xGEMM update, xLASWP, a working copy in the BLAS's preferred
layout), each with a fast path where the backend's library has it (SciPy on
NumPy, cupyx on CuPy) and a generic path in the standard alone, which the
tests run on array-api-strict.  So the same code serves NumPy here and CuPy
on a GPU, and never imports CuPy.  No LAPACK factorization is called: the
panels and diagonal blocks are eliminated by the family's own loops.

Registered implementations (op/name, family, swept ``block`` or ``blocks``)::

    lu/blocked          blocked    block  32, 64, 128, 256   right-looking, xGETF2 panels
    lu/recursive        recursive  block   4,  8,  16,  32   Toledo 1997, leaf width
    cholesky/blocked    blocked    block  32, 64, 128, 256   left-looking (n^3/3 flops)
    cholesky/recursive  recursive  block   8, 16,  32,  64   recursive SYRK update
    qr/blocked          blocked    block  64, 128, 256       compact WY, recursive panel
    qr/tsqr             blocked    blocks  4,  8,  16        binary reduction tree
    qr/cholqr2-blocked  blocked    -                         kappa up to ~u^(-1/2)
    qr/scholqr3         blocked    -                         shifted, kappa up to ~1/u

Every impl accepts float32, float64, complex64 and complex128, declares
``layout="F"`` and overwrites a writable Fortran-ordered NumPy input as
LAPACK does (so it is timed on the same work as the library impls); any
other input is copied and left unchanged.  The LU, Cholesky, blocked
Householder QR and blocked CholeskyQR2 impls also take the emulated formats float16 and bfloat16
(:mod:`factorbench.accuracy.precision`): they run on a float32 copy through
the same kernels and round every block operation's result to the format
once per entry (the block-FMA model of a tensor-core unit), returning their
factors in the storage dtype.

Choices where the design is silent, and why:

* On NumPy the LU and Cholesky kernels call SciPy's OpenBLAS only
  (``scipy.linalg.cython_blas``), never ``numpy.matmul``: NumPy and SciPy
  wheels each bundle an OpenBLAS with its own thread pool, and alternating
  between them made the pools fight for the cores (a recursive LU at n = 2048
  on two cores: 0.82 s mixed, 0.22 s on one library). See :mod:`._xp`.
* Row interchanges go through xLASWP on whole column blocks, in place; a
  fancy-index gather per block made a recursive LU 0.3x of getrf.
* The files are split by op (``lu``, ``cholesky``, ``qr`` with its Householder
  kernels in ``_householder``) to stay near 500 lines each.

References
----------
S. Toledo, Locality of reference in LU decomposition with partial pivoting,
SIAM J. Matrix Anal. Appl. 18(4), 1997.
F. G. Gustavson, Recursion leads to automatic variable blocking for dense
linear-algebra algorithms, IBM J. Res. Dev. 41(6), 1997.
R. Schreiber and C. Van Loan, A storage-efficient WY representation for
products of Householder transformations, SIAM J. Sci. Stat. Comput. 10, 1989.
E. Elmroth and F. G. Gustavson, Applying recursion to serial and parallel QR
factorization leads to better performance, IBM J. Res. Dev. 44(4), 2000.
J. Demmel, L. Grigori, M. Hoemmen and J. Langou, Communication-optimal
parallel and sequential QR and LU factorizations, SIAM J. Sci. Comput. 34, 2012.
T. Fukaya, R. Kannan, Y. Nakatsukasa, Y. Yamamoto and Y. Yanagisawa, Shifted
Cholesky QR for computing the QR factorization of ill-conditioned matrices,
SIAM J. Sci. Comput. 42(1), 2020.
"""

from factorbench.impls.blocked import cholesky, lu, qr  # noqa: F401  (importing registers)

__all__ = ["cholesky", "lu", "qr"]
