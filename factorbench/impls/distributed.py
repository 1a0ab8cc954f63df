"""dask.array implementations: backend "dask", family "distributed".

What a user of ``dask.array.linalg`` gets, measured on the same cells,
metrics and seeds as every other family.  Each impl wraps one dask function
and takes the block size as the swept parameter ``chunk``:

===========================  =========================================  ===============
id                           dask call (chunks)                         dtypes
===========================  =========================================  ===============
qr/dask-tsqr                 ``linalg.qr`` -> ``tsqr``, (chunk, n)      all four
lowrank/dask-svd-compressed  ``linalg.svd_compressed``, (chunk, chunk)  float32/64 only
cholesky/dask                ``linalg.cholesky(lower=True)``, square    all four
lu/dask                      ``linalg.lu``, square; stable=False        all four
solve/dask                   ``linalg.solve``, square; stable=False     all four
lstsq/dask                   ``linalg.lstsq`` -> ``tsqr``, (chunk, n)   all four
===========================  =========================================  ===============

``all four``: float64, float32, complex128, complex64, each computed in its own
precision.

How a graph is computed, and why
    The harness calls an impl in a worker process that may itself be a
    dask.distributed worker, with a number N of BLAS threads it has set for
    the run (and records).  Every graph is computed here with the local
    threaded scheduler, named explicitly (``dask.compute(...,
    scheduler="threads", num_workers=N)``), so it never goes to a
    distributed client that happens to be the default in that process (that
    would time the network and the cluster, not the algorithm, and could
    deadlock a worker waiting on itself).  N is read at every call from
    threadpoolctl (the largest ``num_threads`` of the loaded BLAS libraries,
    what the worker records as ``threads``), and the block kernels run with
    BLAS limited to one thread for the duration of the call
    (``ThreadpoolController.limit(limits=1)``): dask's task parallelism then
    uses the same N cores as a LAPACK call in the same cell, without the N x N
    threads that N dask threads each calling an N-thread BLAS would start.
    The controller is created once per process (threadpoolctl's
    ``threadpool_info``/``threadpool_limits`` rescan the loaded libraries at
    every call, about 1 ms each here, inside the timed region; the cached
    controller reads and sets the counts in about 10 microseconds).
Input
    The harness hands a C-ordered numpy array (the default layout); it is
    wrapped with ``da.from_array(A, chunks=..., name=False)`` inside the timed
    call.  ``name=False`` gives the graph a random key instead of a hash of
    the whole array: dask's default tokenises (hashes) every byte of A, an
    O(mn) pass that is no part of the factorisation.  Results are numpy
    arrays.
Block size (``chunk``): default grid [256, 1024]
    Each task is a block kernel of O(chunk^3) flops (GEMM, trsm, getrf, potrf,
    geqrf on chunk x chunk or chunk x n blocks) and the threaded scheduler
    spends some 0.1-0.3 ms per task.  At chunk = 256 a block GEMM is 34
    Mflop, a few ms on one core, so the scheduling overhead stays in the
    percents while n = 4096 still has 16 x 16 blocks to spread over the
    cores; at chunk = 1024 a block GEMM is 2 Gflop and the graph has few
    tasks: close to LAPACK's own blocking, with parallelism only across the
    (n / 1024)^2 trailing blocks.  Measured (2-core machine shared with
    other work, OpenBLAS, BLAS at one thread for both, n = 2048, float64,
    minimum of 4 interleaved runs): lu/dask 0.61 / 0.21 / 0.26 / 0.27 s at
    chunk 128 / 256 / 512 / 1024 against 0.19 s for lu/lapack; cholesky/dask
    0.16 / 0.091 / 0.094 / 0.10 s against 0.195 s for xPOTRF (OpenBLAS's
    potrf runs at half its getrf rate here).  Below 256 the O(nb^3) task
    count and the per-task overhead dominate; above it dask's LU pays
    more for its permutation products (about ``2 n^2 chunk`` flops, see
    below).  Where ``chunk >= n`` the matrix is one block and dask calls a
    single LAPACK routine (plus graph overhead): the small sizes of the
    quick preset measure that overhead.
Shapes, and what dask needs
    ``lu``, ``solve`` and ``cholesky`` need every chunk, rows and columns,
    of one size (dask raises ValueError otherwise).  Any n is accepted here:
    n is split into ``nb = ceil(n / chunk)`` blocks of ``c = ceil(n / nb) <=
    chunk`` rows, and when ``nb c > n`` the matrix is padded with an identity
    block, ``[[A, 0], [0, I]]`` (fewer than nb extra rows), whose factors
    are ``[[F, 0], [0, I]]`` exactly: the zero blocks stay exact zeros in
    every product, and the identity rows are never chosen as pivots for A's
    columns (their entries there are exact zeros).  The padding is cropped
    off; ``extras`` records the block size used, the block count and the
    padding.  ``qr`` and ``lstsq`` chunk the rows only, ``(chunk, n)``;
    ``svd_compressed`` chunks both dimensions.
Precision
    Checked task by task (every intermediate block of each graph computed and
    its dtype read): float32 and complex64 stay in single precision in
    every kernel of every graph here.  The structural zero blocks of dask's
    P, L and U are float64 ``np.zeros``, but they never enter an arithmetic
    product, and dask assembles a result in the dtype of its first block
    (``concatenate3``), here always a computed one.  ``svd_compressed``
    draws its Gaussian test matrix in float64 and rounds it to float32
    before use (a float32 random matrix), and ``svd_flip`` computes its
    +-1 signs in float64 before casting them.
    ``lowrank/dask-svd-compressed`` declares real dtypes only: see below.

What dask does (dask 2026.8, ``dask/array/linalg.py``), and what it means
    * ``tsqr``: TSQR (Demmel, Grigori, Hoemmen & Langou 2012) with a flat
      reduction tree, recursive when the blocks are at least twice as tall
      as wide, and Q formed explicitly as in Benson, Gleich & Demmel's
      "direct TSQR": a Householder QR (``np.linalg.qr``) of every row block,
      a QR of the stacked R factors, then ``Q = blockdiag(Q_i) Q_2``.
      Backward stable like Householder QR, with Q orthonormal to O(u) (Mori,
      Yamamoto & Zhang 2012).  Blocks with fewer rows than columns are
      handled (their QR gives a trapezoidal R of ``min(rows, n)`` rows and
      the stacking follows it); checked here on 774 shapes m >= n up to
      257 x 33, chunks 1 to 64.  With ``chunk <= n`` (a square matrix in
      several blocks included) every block keeps all its rows in its R, so
      the stacked R is as tall as A: no reduction, and the second QR, one
      task on an m x n matrix, does at least the work of an in-core QR after
      the block QRs.  With ``n < chunk < 2 n`` the reduction is less than a
      factor 2 and also done in one task.  When ``chunk >= m``,
      ``linalg.qr`` goes to ``sfqr``: one ``np.linalg.qr`` task.
    * ``lu``: a block LU, left-looking by block, that pivots only inside
      each diagonal block: for i = 0, 1, ...: ``S_ii = A_ii - sum_{p<i} L_ip
      U_pi`` is factored by ``scipy.linalg.lu`` (partial pivoting among the
      rows of that block only), ``U_ij = L_ii^-1 (P_ii^T A_ij - sum_p L_ip
      U_pj)`` and ``L_ki = (A_ki - sum_p L_kp U_pi) U_ii^-1`` by triangular
      solves; the result is ``A = P L U`` with ``P = blockdiag(P_ii)``.  No
      row ever moves from one block row to another, so a diagonal block of
      the Schur complement that is small or ill conditioned, while the rows
      below hold large entries, gives multipliers ``L_ki = S_ki U_ii^-1`` of
      order ``||S_ki|| ||S_ii^-1||`` and a growth factor to match
      (unbounded); a diagonal block that is exactly singular makes the trsm
      for the blocks below it raise LinAlgError.  This is
      block LU with only local pivoting, stable for block diagonally dominant
      matrices (Demmel, Higham & Schreiber 1995) but not in general: hence
      ``stable=False``.  The within-block permutations are applied as dense
      matrix products with the chunk x chunk permutation matrices
      (``np.dot(P^T, A_ij)``), not row gathers: about ``2 n^2 chunk`` extra
      flops.  The returned P is dense n x n; only its diagonal blocks are
      computed here (they give ``perm``, ``A[perm] = L U``).
    * ``solve``: that LU, then ``P^T b`` and two block triangular solves:
      inherits the LU's instability (``stable=False``).
    * ``cholesky``: left-looking block Cholesky with ``np.linalg.cholesky``
      on the diagonal blocks and triangular solves below.  It reads the
      diagonal blocks' lower triangle and the *upper* off-diagonal blocks
      (``A_ji``, j < i), so it assumes an exactly Hermitian input (the
      harness provides one).  Stable (Cholesky needs no pivoting).
    * ``lstsq``: ``tsqr`` then ``x = R^-1 (Q^H b)`` with the explicit Q,
      which is orthonormal to O(u), so this is backward stable.  The
      residual, rank and singular values dask also returns are not computed.
    * ``svd_compressed``: a Gaussian range finder with ``n_power_iter``
      passes and ``tsqr``, then the SVD of ``Q^T A`` through ``tsqr``
      (HMT 2011, Alg. 4.4/4.3 + 5.1).  Three things users should know:

      - the sketch has ``l = min(max(20, k + p), min(m, n))`` columns
        (``compression_level``'s ``min_subspace_size=20``): ``p`` is the
        oversampling only when ``k + p >= 20``; ``extras["sketch_width"]``
        records l.
      - ``iterator="power"`` (dask's default) multiplies by ``(A A^T)^q``
        without re-orthonormalising (Alg. 4.3), which in float32 loses the
        directions with ``(sigma_j / sigma_1)^(2q+1) < u``; the default here
        is ``iterator="QR"``, a tsqr after every product (Alg. 4.4, the
        subspace iteration of ``lowrank/rsvd``).  ``--param iterator=power``
        sweeps dask's default.
      - complex input is wrong: ``compression_matrix`` iterates with
        ``data.T`` and ``svd_compressed`` compresses with ``comp = q.T``,
        transposes without conjugation, so for complex A the factors
        multiply out to ``Q Q^T A`` instead of the projection ``Q Q^H A``
        (relative error about 1 on an exactly rank-k complex matrix, with
        orthonormal factors).  Hence real dtypes only; complex input raises
        TypeError.

      The random state: one 63-bit seed is drawn from the harness ``rng``
      (normalised once) and passed as ``seed``; dask builds
      ``default_rng(seed)`` from it, so a seed gives bit-identical results
      for one chunk size (the Gaussian matrix is drawn block by block, so a
      different chunk gives a different, equally distributed, test matrix).

References
----------
J. Demmel, L. Grigori, M. Hoemmen and J. Langou, Communication-optimal parallel
and sequential QR and LU factorizations, SIAM J. Sci. Comput. 34(1), 2012.
D. Mori, Y. Yamamoto and S.-L. Zhang, Backward error analysis of the AllReduce
algorithm for Householder QR decomposition, Japan J. Indust. Appl. Math. 29(1), 2012.
A. R. Benson, D. F. Gleich and J. Demmel, Direct QR factorizations for
tall-and-skinny matrices in MapReduce architectures, IEEE BigData 2013.
J. W. Demmel, N. J. Higham and R. S. Schreiber, Stability of block LU
factorization, Numer. Linear Algebra Appl. 2(2), 1995.
N. Halko, P.-G. Martinsson and J. A. Tropp, Finding structure with randomness,
SIAM Review 53(2), 2011 (HMT 2011).
N. J. Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., SIAM, 2002.
"""

from __future__ import annotations

import numpy as np

from factorbench.accuracy.matrices import normalize_rng
from factorbench.impls import NATIVE_COMPLEX, NATIVE_REAL, register
from factorbench.impls.randomized._sketch import check_count
from factorbench.impls.results import LU, QR, SVD, Cholesky, Lstsq, Solve

__all__ = ["qr_tsqr", "lowrank_svd_compressed", "cholesky_dask", "lu_dask", "solve_dask",
           "lstsq_dask", "CHUNKS"]

#: Default grid of the ``chunk`` parameter (rows/columns per block).
CHUNKS = [256, 1024]

_ALL = NATIVE_REAL + NATIVE_COMPLEX
_CONTROLLER = None


def _dask(op: str, name: str, dtypes=_ALL, **kw):
    return register(op, name, backend="dask", family="distributed", dtypes=dtypes,
                    requires=("dask",), **kw)


def _controller():
    """A threadpoolctl controller over the BLAS libraries loaded now, made once."""
    global _CONTROLLER
    if _CONTROLLER is None:
        import scipy.linalg  # noqa: F401  (load SciPy's BLAS before the scan)
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def _compute(*collections):
    """Compute dask collections with the local threaded scheduler, N threads, BLAS at 1.

    N is the current BLAS thread count of this process (what the cell records).
    """
    import dask

    ctl = _controller()
    workers = max((lib.num_threads for lib in ctl.lib_controllers if lib.user_api == "blas"),
                  default=1)
    with ctl.limit(limits=1):
        return dask.compute(*collections, scheduler="threads", num_workers=max(1, workers))


def _chunk(chunk) -> int:
    return check_count("chunk", chunk, 1)


def _square(name: str, A) -> int:
    if getattr(A, "ndim", None) != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"{name} needs a square matrix, got shape {np.shape(A)}")
    return A.shape[0]


def _blocks(n: int, chunk: int) -> tuple[int, int]:
    """(block size c <= chunk, block count nb) with nb = ceil(n / chunk), c = ceil(n / nb)."""
    nb = max(1, -(-n // chunk))
    return -(-n // nb), nb


def _pad(A, c: int, nb: int):
    """``[[A, 0], [0, I]]`` of order ``nb c`` (A itself when it already is)."""
    n, N = A.shape[0], c * nb
    if N == n:
        return A
    out = np.zeros((N, N), dtype=A.dtype)
    out[:n, :n] = A
    idx = np.arange(n, N)
    out[idx, idx] = 1
    return out


def _rhs(A, b) -> np.ndarray:
    """``b`` as a 1-D array in A's precision; a complex b for a real A is refused."""
    b = np.asarray(b)
    if b.dtype.kind == "c" and A.dtype.kind != "c":
        raise TypeError(f"complex right-hand side for a real {A.dtype} matrix")
    return b.astype(A.dtype, copy=False).reshape(-1)


def _square_blocks(name: str, A, chunk):
    """A (padded) as a dask array of nb x nb equal square blocks, and the extras."""
    import dask.array as da

    n = _square(name, A)
    c, nb = _blocks(n, _chunk(chunk))
    a = da.from_array(_pad(A, c, nb), chunks=(c, c), name=False)
    return a, {"chunk": c, "blocks": nb, "padding": c * nb - n}


def _singular_block(name: str, exc) -> np.linalg.LinAlgError:
    return np.linalg.LinAlgError(
        f"{name}: a diagonal block of the Schur complement is exactly singular (dask's "
        f"block LU pivots only inside diagonal blocks): {exc}")


@_dask("qr", "dask-tsqr", parameters={"chunk": CHUNKS})
def qr_tsqr(A, *, chunk=256) -> QR:
    """Thin QR by dask's tall-skinny QR: ``dask.array.linalg.qr`` on row blocks.

    ``A`` is chunked ``(chunk, n)`` (rows only), so ``linalg.qr`` runs
    ``tsqr``: Householder QR (``np.linalg.qr``, LAPACK xGEQRF + xORGQR) of
    every row block, a QR of the stacked R factors (recursively when the
    blocks are at least twice as tall as wide), and ``Q = blockdiag(Q_i)
    Q_2``.  With ``chunk >= m`` it is one ``np.linalg.qr`` (dask's ``sfqr``).

    Parameters
    ----------
    A : (m, n) array, m >= n, not modified.
    chunk : int
        Rows per block.  Blocks with fewer rows than n are allowed; then (and
        on square A) the stacked R is as tall as A and the method does no
        reduction (module docstring).

    Returns
    -------
    QR
        Q (m, n) orthonormal columns, R (n, n) upper triangular, in A's
        precision.  ``extras``: chunk, blocks.

    References
    ----------
    Demmel, Grigori, Hoemmen & Langou, SIAM J. Sci. Comput. 34(1), 2012;
    Benson, Gleich & Demmel, IEEE BigData 2013.
    """
    import dask.array as da

    if getattr(A, "ndim", None) != 2 or A.shape[0] < A.shape[1]:
        raise ValueError(f"qr/dask-tsqr needs a 2-D matrix with m >= n, got shape "
                         f"{np.shape(A)}")
    m, n = A.shape
    c = min(_chunk(chunk), m)
    a = da.from_array(A, chunks=(c, n), name=False)
    Q, R = _compute(*da.linalg.qr(a))
    return QR(Q, R, extras={"chunk": c, "blocks": len(a.chunks[0])})


@_dask("lowrank", "dask-svd-compressed", dtypes=NATIVE_REAL,
       parameters={"p": [10], "q": [2], "iterator": ["QR"], "chunk": CHUNKS})
def lowrank_svd_compressed(A, k, rng=None, *, p=10, q=2, iterator="QR", chunk=256) -> SVD:
    """Rank-k SVD by ``dask.array.linalg.svd_compressed`` (HMT 2011, Alg. 4.4 + 5.1).

    Called as ``svd_compressed(a, k, iterator=iterator, n_power_iter=q,
    n_oversamples=p, seed=seed)`` on A chunked ``(chunk, chunk)``: a
    Gaussian sketch ``A Omega`` with ``l`` columns, ``q`` power passes
    (``iterator="QR"``: a tsqr after every product with A or A^T), the SVD of
    ``Q^T A`` through tsqr, truncated to k, with dask's sign normalisation
    (``svd_flip``).

    Parameters
    ----------
    A : (m, n) float64 or float32 array, not modified.
    k : int, 1 <= k <= min(m, n).
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Normalised once; a 63-bit ``seed`` for dask's ``default_rng`` is drawn
        from it.
    p : int
        ``n_oversamples``; the sketch has ``l = min(max(20, k + p), min(m,
        n))`` columns (dask's ``compression_level``).
    q : int
        ``n_power_iter``, >= 0.
    iterator : {"QR", "power"}
        "QR": re-orthonormalise after every product (Alg. 4.4); "power":
        dask's default, no re-orthonormalisation until the end (Alg. 4.3).
    chunk : int
        Rows and columns per block.

    Returns
    -------
    SVD
        U (m, k), s (k,) descending, Vh (k, n), in A's precision.
        ``extras``: seed, sketch_width, n_power_iter, n_oversamples,
        iterator, chunk.

    Raises
    ------
    ValueError
        k outside 1..min(m, n), p < 0, q < 0, unknown iterator.
    TypeError
        Complex A: dask transposes without conjugating (module docstring),
        so the result would be wrong.

    References
    ----------
    Halko, Martinsson & Tropp, SIAM Review 53(2), 2011, algs. 4.3, 4.4, 5.1.
    """
    import dask.array as da

    if getattr(A, "ndim", None) != 2:
        raise ValueError(f"lowrank/dask-svd-compressed needs a 2-D matrix, got shape "
                         f"{np.shape(A)}")
    if np.dtype(A.dtype).name not in NATIVE_REAL:
        raise TypeError(f"lowrank/dask-svd-compressed takes float64 or float32, got {A.dtype}: "
                        "dask's svd_compressed uses A^T and Q^T where A^H and Q^H are needed, "
                        "so complex results are wrong")
    m, n = A.shape
    k = check_count("k", k, 1)
    if k > min(m, n):
        raise ValueError(f"k must be in 1..{min(m, n)} for a {m} x {n} matrix, got {k}")
    p = check_count("p", p, 0)
    q = check_count("q", q, 0)
    if iterator not in ("QR", "power"):
        raise ValueError(f"iterator must be 'QR' or 'power', got {iterator!r}")
    c = _chunk(chunk)
    seed = int(normalize_rng(rng).integers(2**63))
    a = da.from_array(A, chunks=(min(c, m), min(c, n)), name=False)
    U, s, Vh = _compute(*da.linalg.svd_compressed(
        a, k, iterator=iterator, n_power_iter=q, n_oversamples=p, seed=seed))
    width = da.linalg.compression_level(min(m, n), k, n_oversamples=p)
    extras = {"seed": seed, "sketch_width": int(width), "n_power_iter": q,
              "n_oversamples": p, "iterator": iterator, "chunk": c}
    return SVD(U, s, Vh, extras=extras)


@_dask("cholesky", "dask", parameters={"chunk": CHUNKS})
def cholesky_dask(A, *, chunk=256) -> Cholesky:
    """Block Cholesky ``A = L L^H``: ``dask.array.linalg.cholesky(a, lower=True)``.

    Left-looking by block: ``np.linalg.cholesky`` (LAPACK xPOTRF) on each
    diagonal block of the Schur complement, triangular solves for the blocks
    below, GEMM updates.  dask needs equal square blocks: n is split into
    ``ceil(n / chunk)`` blocks of equal size ``c <= chunk``, padding A with an
    identity block when they do not tile it (module docstring).

    Parameters
    ----------
    A : (n, n) SPD/HPD array, exactly Hermitian (dask reads the lower
        triangle of the diagonal blocks and the upper off-diagonal blocks);
        not modified.
    chunk : int
        Largest block size.

    Returns
    -------
    Cholesky
        L (n, n) lower triangular (exact zeros above), in A's precision.
        ``extras``: chunk (the block size used), blocks, padding.

    Raises
    ------
    numpy.linalg.LinAlgError
        A diagonal block of the Schur complement is not positive definite.

    References
    ----------
    Higham (2002), ch. 10.
    """
    import dask.array as da

    n = A.shape[0] if getattr(A, "ndim", None) == 2 else 0
    a, extras = _square_blocks("cholesky/dask", A, chunk)
    (L,) = _compute(da.linalg.cholesky(a, lower=True))
    return Cholesky(L[:n, :n], extras=extras)


def _lu(name: str, A, chunk):
    """dask's block LU of A (padded): (perm, L, U) of the padded matrix, extras, and a."""
    import dask.array as da

    a, extras = _square_blocks(name, A, chunk)
    nb, c = extras["blocks"], extras["chunk"]
    p, l, u = da.linalg.lu(a)
    try:
        L, U, *P = _compute(l, u, *(p.blocks[i, i] for i in range(nb)))
    except np.linalg.LinAlgError as exc:
        raise _singular_block(name, exc) from exc
    # A = P L U with P = blockdiag(P_i): row i of L U is row perm[i] of A.
    perm = np.concatenate([i * c + np.argmax(Pi, axis=0) for i, Pi in enumerate(P)])
    return perm.astype(np.intp), L, U, extras


@_dask("lu", "dask", stable=False, parameters={"chunk": CHUNKS})
def lu_dask(A, *, chunk=256) -> LU:
    """Block LU with pivoting inside diagonal blocks only: ``dask.array.linalg.lu``.

    For each block column i: ``scipy.linalg.lu`` (LAPACK xGETRF, partial
    pivoting among the rows of block i only) on the diagonal block of the
    Schur complement, triangular solves for the blocks right of it and below
    it.  No row moves between block rows, so it is not partial pivoting:
    growth is unbounded where a diagonal block is small or ill conditioned
    and the rows below hold large entries (``stable=False``; module
    docstring).  Equal square blocks: n is split into ``ceil(n / chunk)``
    blocks of size ``c <= chunk``, padding with an identity block where needed.

    Parameters
    ----------
    A : (n, n) array, not modified.
    chunk : int
        Largest block size.  ``chunk >= n`` is one xGETRF (partial pivoting).

    Returns
    -------
    LU
        perm (n,) intp, L unit lower, U upper, ``A[perm] = L @ U`` (perm only
        permutes rows within each block of c rows), in A's precision;
        ``growth_factor_exact`` None.  ``extras``: chunk (the block size
        used), blocks, padding.

    Raises
    ------
    numpy.linalg.LinAlgError
        A diagonal block of the Schur complement is exactly singular (the
        triangular solve for the blocks below it fails).

    References
    ----------
    Demmel, Higham & Schreiber, Numer. Linear Algebra Appl. 2(2), 1995
    (block LU); Higham (2002), ch. 13.
    """
    n = A.shape[0] if getattr(A, "ndim", None) == 2 else 0
    perm, L, U, extras = _lu("lu/dask", A, chunk)
    if extras["padding"]:
        if perm[:n].max(initial=0) >= n:  # cannot happen: the padding is exact zeros
            raise RuntimeError("lu/dask: a padding row was chosen as a pivot")
        perm, L, U = perm[:n], L[:n, :n], U[:n, :n]
    return LU(perm, L, U, extras=extras)


@_dask("solve", "dask", stable=False, parameters={"chunk": CHUNKS})
def solve_dask(A, b, *, chunk=256) -> Solve:
    """Square solve by dask's block LU: ``dask.array.linalg.solve(a, b)``.

    ``A = P L U`` by :func:`lu_dask`'s algorithm (pivoting inside diagonal
    blocks only), then ``P^T b`` and two block triangular solves.  It has the
    block LU's unbounded growth, hence ``stable=False``.  A padded to equal
    blocks as in :func:`lu_dask`, b with zeros.

    Parameters
    ----------
    A : (n, n) array, not modified.
    b : (n,) array, not modified.
    chunk : int
        Largest block size.

    Returns
    -------
    Solve
        x (n,) in A's precision.  ``extras``: chunk, blocks, padding.

    Raises
    ------
    numpy.linalg.LinAlgError
        A diagonal block of the Schur complement is exactly singular.
    """
    import dask.array as da

    n = _square("solve/dask", A)
    b = _rhs(A, b)
    a, extras = _square_blocks("solve/dask", A, chunk)
    bp = np.zeros(a.shape[0], dtype=A.dtype)
    bp[:n] = b
    try:
        (x,) = _compute(da.linalg.solve(a, da.from_array(bp, chunks=a.chunks[0],
                                                            name=False)))
    except np.linalg.LinAlgError as exc:
        raise _singular_block("solve/dask", exc) from exc
    return Solve(x[:n], extras=extras)


@_dask("lstsq", "dask", parameters={"chunk": CHUNKS})
def lstsq_dask(A, b, *, chunk=256) -> Lstsq:
    """Least squares by dask's TSQR: ``dask.array.linalg.lstsq`` on row blocks.

    ``Q, R = tsqr(A)`` (as :func:`qr_tsqr`, A chunked ``(chunk, n)``), then
    ``x = R^-1 (Q^H b)`` by one triangular solve.  Backward stable (Q is
    orthonormal to O(u)).  Only x is computed.

    Parameters
    ----------
    A : (m, n) array of full column rank, m >= n, not modified.
    b : (m,) array, not modified.
    chunk : int
        Rows per block.

    Returns
    -------
    Lstsq
        x (n,) in A's precision.  ``extras``: chunk, blocks.

    Raises
    ------
    numpy.linalg.LinAlgError
        R has an exactly zero diagonal entry.

    References
    ----------
    Demmel, Grigori, Hoemmen & Langou (2012); Higham (2002), ch. 20.
    """
    import dask.array as da

    if getattr(A, "ndim", None) != 2 or A.shape[0] < A.shape[1]:
        raise ValueError(f"lstsq/dask needs a 2-D matrix with m >= n, got shape {np.shape(A)}")
    m, n = A.shape
    b = _rhs(A, b)
    c = min(_chunk(chunk), m)
    a = da.from_array(A, chunks=(c, n), name=False)
    x, *_ = da.linalg.lstsq(a, da.from_array(b, chunks=c, name=False))
    (x,) = _compute(x)
    return Lstsq(x, extras={"chunk": c, "blocks": len(a.chunks[0])})
