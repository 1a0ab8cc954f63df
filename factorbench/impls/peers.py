"""Other libraries' low-rank SVDs: family "peer", op "lowrank".

What people already use for a truncated SVD of a dense matrix, registered so
that the harness measures the project's randomized family against them on the
same cells, metrics and seeds.  Every impl is called as its users call it,
with the library's defaults, except that every random state is derived from
the harness's ``rng`` (normalised once) so that a seed gives bit-identical
results.

``lowrank/sklearn-rsvd`` (backend "sklearn", requires ``sklearn``)
    :func:`sklearn.utils.extmath.randomized_svd`: a Gaussian range finder
    with power iterations (HMT 2011, alg. 4.4 with LU or no re-normalisation),
    then the SVD of ``Q^T A``.  Real input only (scikit-learn refuses complex
    data); float32 stays float32 (the test matrix is cast to the input's
    precision).
``lowrank/svds-arpack``, ``lowrank/svds-propack``, ``lowrank/svds-lobpcg`` (backend "scipy")
    :func:`scipy.sparse.linalg.svds` with ``solver=...`` and its default
    tolerance (``tol=0``: machine precision).  ARPACK and LOBPCG solve the
    Hermitian eigenproblem of the Gram matrix ``A^H A`` (or ``A A^H``, the
    smaller) and recover the singular triplets by a Rayleigh-Ritz step
    (``svd(A V)``); PROPACK runs Golub-Kahan-Lanczos bidiagonalisation with
    partial reorthogonalisation on ``A`` itself.

Choices and findings (SciPy 1.17, scikit-learn 1.9), and why:

* Dtypes are declared only where the library computes in the working
  precision: sklearn-rsvd float64/float32; ARPACK and PROPACK all four native
  dtypes (s/d/c/z routines); LOBPCG float64/complex128 only, because ``svds``
  draws its starting block as float64 (``rng.standard_normal``), so a float32
  or complex64 matrix is silently worked on, and returned, in double: such a
  cell would time a double-precision computation, so it is ``skipped``
  rather than cast back.
* Accuracy, measured with SciPy 1.17, scikit-learn 1.9 and OpenBLAS; these are
  the libraries' behaviours and are what the metrics report:

  - ARPACK and PROPACK are single-vector Krylov methods: in exact arithmetic
    they see one vector per distinct singular value, so a multiple singular
    value among the top k is found with too few copies (rounding brings the
    rest in slowly, if at all) and tail directions take their place.  On the
    ``polydecay`` family (sigma_1..r = 1) with k = r = 50, 4000 x 2000, the
    error ratio was 3.1 (ARPACK) and 2.5 (PROPACK); at 600 x 300, r = 20,
    ARPACK found 12 and PROPACK 6 of the 20 unit singular values.  The block
    methods (sklearn-rsvd, LOBPCG) are unaffected.
  - LOBPCG: svds' ``tol=0`` becomes LOBPCG's own default residual tolerance
    ``sqrt(eps) min(m, n)`` on the Gram eigenproblem (not machine
    precision), with at most 20 iterations, and it may stop early ("Failed at
    iteration 1": its residual block lost rank) with its best iterate.
    Singular values are then accurate to about ``tau^2 / (sigma_k^2 gap)``
    and directions with ``sigma_j^2 / sigma_1^2`` near the tolerance are not
    resolved (error ratios 1e4 to 1e8 for sigma_k <= 1e-3 with tails <= 1e-9).
    ARPACK, also on the Gram matrix, stayed as accurate as xGESDD there.
  - PROPACK's partial reorthogonalisation keeps its Lanczos vectors only
    semi-orthogonal (reorthogonalising at ``sqrt(eps)`` down to ``eps^(3/4)``),
    so in double precision its U and V are orthonormal to 1e-12 .. 1e-9
    typically (tens to thousands of times ``max(m, n) u``: the
    orthogonality ratio fails the pass rule) and up to 1e-5 on the flat noise
    tail of the ``lowrank`` family.  In single precision ``eps^(3/4) / eps``
    is 54 (8192 in double) and its vectors are orthonormal to ``max(m, n) u``.
    Hence ``stable=False``, as for modified Gram-Schmidt (``qr/mgs``): its
    double-precision cells are expected to fail the orthogonality rule.
  - sklearn-rsvd with ``n_iter=2``: sklearn's normaliser "auto" is then
    "none", and ``A (A^T A)^2 Omega`` in float32 rounds away directions with
    ``(sigma_j / sigma_1)^5`` below ``u`` (error ratio 23 on the ``lowrank``
    family, sigma_k = 1e-2, 400 x 200 float32).  Its default (n_iter "auto":
    4 or 7, LU normaliser) does not have this problem.
* ``k`` limits are checked here, with messages that name the limit (``svds``
  says "0 < k < min(A.shape)" for every solver, which is wrong for PROPACK):
  sklearn-rsvd and PROPACK ``1 <= k <= min(m, n)``; ARPACK ``k <= min(m, n) -
  1`` for real and ``k <= min(m, n) - 2`` for complex input (complex
  Hermitian problems go through ``eigs``, whose limit is ``N - 2``); LOBPCG
  ``k <= min(m, n) - 1``.
* Random state: sklearn gets ``numpy.random.RandomState(seed)`` with a 32-bit
  seed drawn from ``rng``; ARPACK and PROPACK get a Gaussian start vector
  ``v0`` in the working precision drawn from ``rng`` (PROPACK's own default
  is uniform on [0, 1)), and ``svds`` gets ``rng`` itself (LOBPCG's starting
  block, PROPACK's internal generator).
* PROPACK needs no environment variable in SciPy 1.17.  Older releases
  (1.8 to at least 1.11, which ``scipy>=1.11`` admits) made it opt-in with
  ``SCIPY_USE_PROPACK=1`` set before SciPy is imported; there
  ``lowrank/svds-propack`` raises RuntimeError saying so (the harness
  records an error cell) rather than SciPy's ValueError.
* Warnings the libraries raise (LOBPCG's "Exited at iteration ... not
  reaching the requested tolerance", its switch to a dense eigensolver when
  ``min(m, n) < 5 k``) are captured and kept in ``extras["warnings"]``, not
  printed per call.
* ``s`` is returned descending (``svds`` returns it ascending), with U and Vh
  reordered alike.  ``extras`` records what each library actually used
  (sklearn's resolved ``n_iter``, normaliser and transpose; the solver, the
  tolerance).

References
----------
N. Halko, P.-G. Martinsson and J. A. Tropp, Finding structure with randomness,
SIAM Review 53(2), 2011 (HMT 2011).
R. B. Lehoucq, D. C. Sorensen and C. Yang, ARPACK Users' Guide, SIAM, 1998.
R. M. Larsen, Lanczos bidiagonalization with partial reorthogonalization,
DAIMI PB-357, Aarhus University, 1998 (PROPACK).
A. V. Knyazev, Toward the optimal preconditioned eigensolver: locally optimal
block preconditioned conjugate gradient method, SIAM J. Sci. Comput. 23(2),
2001 (LOBPCG).
"""

from __future__ import annotations

import functools
import inspect
import warnings

import numpy as np

from factorbench.accuracy.matrices import normalize_rng
from factorbench.impls import NATIVE_COMPLEX, NATIVE_REAL, register
from factorbench.impls.randomized._sketch import check_count
from factorbench.impls.results import SVD

__all__ = ["lowrank_sklearn_rsvd", "lowrank_svds_arpack", "lowrank_svds_propack",
           "lowrank_svds_lobpcg"]


def _check_k(name: str, A, k, kmax: int, why: str = "") -> int:
    """``k`` as an int in ``1..kmax``, else ValueError naming the limit."""
    if getattr(A, "ndim", None) != 2:
        raise ValueError(f"lowrank/{name} needs a 2-D matrix, got shape {np.shape(A)}")
    try:
        ki = int(k)
    except (TypeError, ValueError):
        raise ValueError(f"lowrank/{name}: k must be an integer, got {k!r}") from None
    if ki != k or isinstance(k, bool):
        raise ValueError(f"lowrank/{name}: k must be an integer, got {k!r}")
    if not 1 <= ki <= kmax:
        m, n = A.shape
        raise ValueError(f"lowrank/{name}: k must be in 1..{kmax} for a {m} x {n} "
                         f"{A.dtype} matrix{why}, got {ki}")
    return ki


def _check_dtype(name: str, A, allowed, why: str) -> None:
    """TypeError unless A's dtype is one the library computes in (no silent upcast)."""
    if np.dtype(A.dtype).name not in allowed:
        raise TypeError(f"lowrank/{name} takes {', '.join(allowed)}, got {A.dtype}: {why}")


def _start_vector(rng, size: int, dtype) -> np.ndarray:
    """A Gaussian start vector in the working precision (complex for complex)."""
    v = rng.standard_normal(size)
    if np.dtype(dtype).kind == "c":
        v = v + 1j * rng.standard_normal(size)
    return v.astype(dtype)


def _descending(U, s, Vh):
    """Reorder a triplet set by decreasing singular value (stable for ties)."""
    order = np.argsort(-s, kind="stable")
    if np.array_equal(order, np.arange(s.size)):
        return U, s, Vh
    return U[:, order], s[order], Vh[order]


def _messages(caught) -> list[str]:
    """Captured warnings as one-line ``Category: message`` strings, duplicates dropped."""
    out = []
    for w in caught:
        text = f"{w.category.__name__}: {' '.join(str(w.message).split())}"
        if text not in out:
            out.append(text)
    return out


@register("lowrank", "sklearn-rsvd", backend="sklearn", family="peer", dtypes=NATIVE_REAL,
          requires=("sklearn",), parameters={"p": [10], "n_iter": ["auto"]})
def lowrank_sklearn_rsvd(A, k, rng=None, *, p=10, n_iter="auto") -> SVD:
    """Rank-k SVD by scikit-learn's ``randomized_svd`` (HMT 2011, alg. 4.4 + 5.1).

    Called as ``randomized_svd(A, k, n_oversamples=p, n_iter=n_iter,
    power_iteration_normalizer="auto", random_state=RandomState(seed))``
    with every other argument at its default (``transpose="auto"``: works on
    ``A^T`` when m < n; ``flip_sign=True``: deterministic signs;
    ``svd_lapack_driver="gesdd"``).  The registered grid is sklearn's default
    only, what its users get; ``--param n_iter=2`` sweeps others (n_iter = 2
    in float32 fails on the lowrank family: the normaliser is then off, see
    below).

    Parameters
    ----------
    A : (m, n) float64 or float32 array, not modified.  scikit-learn refuses
        complex input; float32 is computed in float32 (its Gaussian test matrix
        is cast to float32).
    k : int, 1 <= k <= min(m, n).
    rng : numpy.random.Generator, int or None
        A 32-bit seed for sklearn's ``RandomState`` is drawn from it.
    p : int
        Oversampling (``n_oversamples``): the range finder uses k + p vectors.
    n_iter : int or "auto"
        Power iterations.  sklearn's "auto" means 7 when ``k < 0.1 min(m, n)``
        and 4 otherwise; its normaliser "auto" then means LU
        re-normalisation between iterations (none when ``n_iter <= 2``: in
        float32 that loses directions with ``(sigma_j / sigma_1)^5 < u``).

    Returns
    -------
    SVD
        U (m, k), s (k,) descending, Vh (k, n), in A's precision.
        ``extras``: the resolved ``n_iter``, ``n_oversamples``,
        ``power_iteration_normalizer``, ``transpose``, ``flip_sign``, ``seed``.

    Raises
    ------
    ValueError
        k outside 1..min(m, n).
    TypeError
        A is not float64 or float32.

    References
    ----------
    Halko, Martinsson & Tropp, SIAM Review 53(2), 2011, algs. 4.4 and 5.1;
    Martinsson, Rokhlin & Tygert, ACHA 30(1), 2011 (the LU normaliser).
    """
    import sklearn
    from sklearn.utils.extmath import randomized_svd

    k = _check_k("sklearn-rsvd", A, k, min(A.shape))
    _check_dtype("sklearn-rsvd", A, NATIVE_REAL, "scikit-learn's randomized_svd refuses "
                 "complex data and computes other dtypes in float64")
    rng = normalize_rng(rng)
    seed = int(rng.integers(2**32))
    p = check_count("p", p, 0)
    n_iter = n_iter if n_iter == "auto" else int(n_iter)
    U, s, Vh = randomized_svd(A, k, n_oversamples=p, n_iter=n_iter,
                              power_iteration_normalizer="auto",
                              random_state=np.random.RandomState(seed))
    # What sklearn resolved its "auto" settings to (sklearn/utils/extmath.py).
    used = (7 if k < 0.1 * min(A.shape) else 4) if n_iter == "auto" else n_iter
    normalizer = ("none" if used <= 2 else
                  "QR" if sklearn.get_config().get("array_api_dispatch") else "LU")
    extras = {"n_iter": used, "n_oversamples": p, "power_iteration_normalizer": normalizer,
              "transpose": bool(A.shape[0] < A.shape[1]), "flip_sign": True, "seed": seed}
    return SVD(U, s, Vh, extras=extras)


def _propack_enabled() -> None:
    """RuntimeError where this SciPy gates PROPACK behind ``SCIPY_USE_PROPACK``.

    SciPy 1.8 to (at least) 1.11 keep the switch in ``_svds.HAS_PROPACK``,
    read once when SciPy is imported; SciPy 1.17 has no such name.
    """
    try:
        from scipy.sparse.linalg._eigen import _svds as svds_module
    except ImportError:  # a private path; without it, let svds speak for itself
        return
    if not getattr(svds_module, "HAS_PROPACK", True):
        raise RuntimeError("lowrank/svds-propack: this SciPy makes solver='propack' opt-in; "
                           "set SCIPY_USE_PROPACK=1 in the environment before SciPy is "
                           "imported (before the sweep starts)")


@functools.cache
def _rng_keyword(svds) -> str:
    """``rng`` (SciPy >= 1.15, SPEC 7) or ``random_state`` (older releases)."""
    return "rng" if "rng" in inspect.signature(svds).parameters else "random_state"


def _svds(solver: str, A, k: int, rng, v0=None) -> SVD:
    from scipy.sparse.linalg import svds

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        U, s, Vh = svds(A, k=k, solver=solver, v0=v0, **{_rng_keyword(svds): rng})
    U, s, Vh = _descending(U, s, Vh)
    extras = {"solver": solver, "tol": 0.0, "warnings": _messages(caught)}
    return SVD(U, s, Vh, extras=extras)


@register("lowrank", "svds-arpack", backend="scipy", family="peer",
          dtypes=NATIVE_REAL + NATIVE_COMPLEX)
def lowrank_svds_arpack(A, k, rng=None) -> SVD:
    """Rank-k SVD by ``scipy.sparse.linalg.svds(solver="arpack")``.

    Implicitly restarted Lanczos (ARPACK xSAUPD, or xNAUPD for complex
    Hermitian problems) on the Gram matrix ``A^H A`` (or ``A A^H``, the
    smaller), ``tol=0`` (machine precision), then Rayleigh-Ritz: the SVD of
    ``A V``.  The accuracy limit of the Gram matrix is discussed in the
    module docstring.

    Parameters
    ----------
    A : (m, n) array, any native dtype, not modified; computed in its precision.
    k : int, 1 <= k <= min(m, n) - 1 (real) or min(m, n) - 2 (complex).
    rng : numpy.random.Generator, int or None
        The start vector ``v0`` (Gaussian, length min(m, n), working
        precision) is drawn from it.

    Returns
    -------
    SVD
        U (m, k), s (k,) descending (reordered from svds' ascending), Vh (k, n),
        in A's precision.  ``extras``: solver, tol, captured warnings.

    Raises
    ------
    ValueError
        k outside the limits above.
    TypeError
        A is not float64, float32, complex128 or complex64.
    scipy.sparse.linalg.ArpackNoConvergence
        No convergence within ARPACK's default ``maxiter`` (10 min(m, n)).

    References
    ----------
    Lehoucq, Sorensen & Yang, ARPACK Users' Guide, SIAM (1998).
    """
    _check_dtype("svds-arpack", A, NATIVE_REAL + NATIVE_COMPLEX, "ARPACK has s/d/c/z only")
    cplx = np.dtype(A.dtype).kind == "c"
    kmax = min(A.shape) - (2 if cplx else 1)
    why = (" (ARPACK's complex Hermitian path needs k < min(m, n) - 1)" if cplx
           else " (ARPACK needs k < min(m, n))")
    k = _check_k("svds-arpack", A, k, kmax, why)
    rng = normalize_rng(rng)
    return _svds("arpack", A, k, rng, v0=_start_vector(rng, min(A.shape), A.dtype))


@register("lowrank", "svds-propack", backend="scipy", family="peer",
          dtypes=NATIVE_REAL + NATIVE_COMPLEX, stable=False)
def lowrank_svds_propack(A, k, rng=None) -> SVD:
    """Rank-k SVD by ``scipy.sparse.linalg.svds(solver="propack")``.

    Golub-Kahan-Lanczos bidiagonalisation with partial reorthogonalisation
    (PROPACK xLANSVD) on A itself, at most ``10 k`` Lanczos steps, ``tol=0``
    (machine precision).  Registered ``stable=False``: its partial
    reorthogonalisation keeps the Lanczos vectors only semi-orthogonal, so in
    double precision U and V are orthonormal to about 1e-12 .. 1e-9 (up to
    1e-5 on a flat noise spectrum), not ``max(m, n) u`` (module docstring).

    Parameters
    ----------
    A : (m, n) array, any native dtype, not modified; computed in its precision.
    k : int, 1 <= k <= min(m, n).
    rng : numpy.random.Generator, int or None
        The start vector ``v0`` (Gaussian, length m, working precision) and
        PROPACK's internal random seed are drawn from it.

    Returns
    -------
    SVD
        U (m, k), s (k,) descending, Vh (k, n), in A's precision.
        ``extras``: solver, tol, captured warnings.

    Raises
    ------
    RuntimeError
        This SciPy makes PROPACK opt-in and ``SCIPY_USE_PROPACK`` was not set.
    ValueError
        k outside 1..min(m, n).
    TypeError
        A is not float64, float32, complex128 or complex64.
    numpy.linalg.LinAlgError
        PROPACK found an invariant subspace of dimension < k (A has rank < k
        along the Krylov space) or did not converge within its ``10 k`` steps.

    References
    ----------
    Larsen, DAIMI PB-357, Aarhus University (1998).
    """
    _propack_enabled()
    k = _check_k("svds-propack", A, k, min(A.shape))
    _check_dtype("svds-propack", A, NATIVE_REAL + NATIVE_COMPLEX, "PROPACK has s/d/c/z only")
    rng = normalize_rng(rng)
    return _svds("propack", A, k, rng, v0=_start_vector(rng, A.shape[0], A.dtype))


_LOBPCG_DTYPES = ("float64", "complex128")


@register("lowrank", "svds-lobpcg", backend="scipy", family="peer", dtypes=_LOBPCG_DTYPES)
def lowrank_svds_lobpcg(A, k, rng=None) -> SVD:
    """Rank-k SVD by ``scipy.sparse.linalg.svds(solver="lobpcg")``.

    LOBPCG (block size k, no preconditioner) on the Gram matrix ``A^H A``
    (or ``A A^H``), then Rayleigh-Ritz as for ARPACK.  svds' default
    ``tol=0`` becomes LOBPCG's default residual tolerance ``sqrt(eps)
    min(m, n)`` on the Gram eigenproblem, with at most 20 iterations; when it
    is not met LOBPCG returns its best iterate and warns (kept in
    ``extras["warnings"]``).  When ``min(m, n) < 5 k`` LOBPCG hands the
    problem to a dense eigensolver (also a warning).

    Parameters
    ----------
    A : (m, n) float64 or complex128 array, not modified.  svds draws the
        starting block in float64, so single precision would be worked on
        and returned in double: not declared.
    k : int, 1 <= k <= min(m, n) - 1.
    rng : numpy.random.Generator, int or None
        Passed to svds, which draws the (min(m, n), k) starting block from it.

    Returns
    -------
    SVD
        U (m, k), s (k,) descending (reordered from svds' ascending), Vh (k, n).
        ``extras``: solver, tol, captured warnings.

    Raises
    ------
    ValueError
        k outside 1..min(m, n) - 1.
    TypeError
        A is not float64 or complex128.

    References
    ----------
    Knyazev, SIAM J. Sci. Comput. 23(2), 2001.
    """
    k = _check_k("svds-lobpcg", A, k, min(A.shape) - 1, " (svds' LOBPCG needs k < min(m, n))")
    _check_dtype("svds-lobpcg", A, _LOBPCG_DTYPES, "svds draws LOBPCG's starting block in "
                 "float64, so single precision would be computed and returned in double")
    return _svds("lobpcg", A, k, normalize_rng(rng))
