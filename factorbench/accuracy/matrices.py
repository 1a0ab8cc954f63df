"""Test-matrix families with known spectra (design section 3).

Each family is generated in float64 (complex128 with ``complex_=True``) as a
:class:`TestMatrix` holding what is known exactly: target 2-norm condition
number, singular values (eigenvalues for ``spd``) where known by
construction, and family parameters.  The harness rounds ``A`` to the
working precision; :func:`kappa_actual` measures that rounded matrix and
:func:`rhs` builds right-hand sides from it.  ``KINDS`` lists the families
(Higham 2002, Ch. 28; Higham 1991 for the ``gallery`` originals).

Choices where the design is silent:

* Haar factors: QR of a Gaussian matrix, column j of Q times the phase of
  R_jj; LAPACK's R_jj <= 0 convention otherwise biases Q away from Haar
  measure (Stewart 1980; Mezzadri 2007).
* randsvd/spd modes follow ``gallery('randsvd')`` with sigma_1 = 1 and
  sigma_min = 1/kappa; mode 5 draws the inner values log-uniformly and pins
  both ends, so kappa is exact in every mode.  kappa > 1 with min(m, n) = 1
  is refused (a vector has condition number 1).
* ``kappa`` is not None exactly when ``KINDS[kind].controls_kappa``; passing
  ``kappa``, ``mode`` or ``rank`` to a family that ignores it is an error, so
  a stored cell never claims a parameter its matrix does not have.
* vandermonde: A[i, j] = x_i**j, nodes equispaced in [0, 1] (rows are nodes).
  Nonnegative ascending nodes make it totally nonnegative, the case of
  Higham 2002, Ch. 22; kappa grows exponentially in n.
* graded: rows 1..min(m, n) scaled geometrically from 1 to 1/kappa, further
  rows held at 1/kappa so tall matrices track the target too.  B has
  kappa_B = 2, so kappa/2 <= kappa_2(A) <= 2 kappa for m <= n (upper bound
  only for m > n); sigma is None.  Graded matrices are where one-sided
  Jacobi SVD stays relatively accurate (Demmel & Veselic 1992).
* lowrank: r signal singular values geometric from 1 to 1e-2, then a flat
  tail at the noise level 1e-4, so the whole spectrum is known; ``rank`` is
  r.  ``rank`` is also set for rankdef (exact rank) and zero (0).
* polydecay and expdecay are the test spectra of Tropp, Yurtsever, Udell and
  Cevher (2017, sec. 7.3) for randomized low-rank methods: ``rank`` leading
  singular values 1, then a polynomial tail ``(j - r + 1)^-1`` (slow decay,
  the hard case for a range finder without power iterations) or an
  exponential tail ``10^-(j - r)/4`` (fast decay).  J. A. Tropp, A. Yurtsever,
  M. Udell and V. Cevher, Practical sketching algorithms for low-rank matrix
  approximation, SIAM J. Matrix Anal. Appl. 38(4), 2017.  The whole spectrum is
  known, so the optimal rank-k error is exact for any k.
* Deterministic families (hilbert, vandermonde, kahan, wilkinson, zero) draw
  nothing from ``rng`` and are real even when stored as complex128.  hilbert
  is SPD in exact arithmetic only (kappa ~ exp(3.5 n)); wilkinson's LU
  overflows once 2^(n-1) does (n > 1024).
* One seed gives byte-identical matrices for one NumPy/SciPy/BLAS build; QR
  and GEMM results may differ in the last bits across BLAS libraries.

References
----------
N. J. Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., SIAM 2002.
N. J. Higham, Algorithm 694: a collection of test matrices in MATLAB, ACM TOMS 17, 1991.
G. W. Stewart, The efficient generation of random orthogonal matrices with an
application to condition estimators, SIAM J. Numer. Anal. 17, 1980.
F. Mezzadri, How to generate random matrices from the classical compact groups,
Notices AMS 54, 2007.
J. H. Wilkinson, Error analysis of direct methods of matrix inversion, J. ACM 8, 1961.
W. Kahan, Numerical linear algebra, Canad. Math. Bull. 9, 1966.
J. Demmel, K. Veselic, Jacobi's method is more accurate than QR, SIMAX 13, 1992.
S. Boldo, G. Melquiond, Emulation of FMA and correctly rounded sums: proved
algorithms using rounding to odd, IEEE Trans. Comput. 57, 2008.
"""

from __future__ import annotations

import difflib
import math
import operator
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla

__all__ = ["TestMatrix", "KindInfo", "KINDS", "generate", "kappa_actual", "rhs", "lstsq_rhs",
           "normalize_rng"]

_DEFAULT_MODE = 3
_MODE_NAMES = {1: "one large", 2: "one small", 3: "geometric", 4: "arithmetic", 5: "log-uniform"}
_KAHAN_THETA = 1.2
#: Off-diagonal scale of the ``mirrored`` family: small enough for strict
#: column diagonal dominance at any practical n, so that a pivot taken inside a
#: block is about 2^-20 and the growth it causes is unmistakable.
_MIRRORED_DELTA = 2.0**-20
_KAHAN_PERT = 25.0
_GRADED_KAPPA_B = 2.0
_LOWRANK_SIGNAL_MIN = 1e-2
_LOWRANK_NOISE = 1e-4
_RANKDEF_SIGMA_MIN = 1e-1
_POLY_POWER = 1.0
_EXP_RATE = 0.25


@dataclass
class TestMatrix:
    """A generated test matrix and what is known about it exactly.

    Attributes
    ----------
    A : numpy.ndarray, shape (m, n)
        float64, or complex128 when generated with ``complex_=True``.
    kind : str
        Family name, a key of :data:`KINDS`.
    mode : int or None
        Spectrum mode 1..5 for ``randsvd`` and ``spd``, else None.
    kappa : float or None
        Target 2-norm condition number; None when the family does not control it.
    sigma : numpy.ndarray or None, shape (min(m, n),)
        Known singular values, descending; None when not known analytically.
    eigenvalues : numpy.ndarray or None, shape (n,)
        Known eigenvalues, ascending (``spd`` only), else None.
    rank : int or None
        Signal rank (``lowrank``), exact rank (``rankdef``, ``zero``), else None.
    structure : str
        ``"general"``, ``"symmetric"`` or ``"spd"``.
    meta : dict
        Family parameters (``theta`` for kahan, ``noise`` for lowrank, ...).
    """

    __test__ = False  # not a pytest test class despite its name

    A: np.ndarray
    kind: str
    mode: int | None = None
    kappa: float | None = None
    sigma: np.ndarray | None = None
    eigenvalues: np.ndarray | None = None
    rank: int | None = None
    structure: str = "general"
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class KindInfo:
    """Static description of one matrix family.

    ``controls_kappa``, ``has_modes`` and ``has_rank`` say whether
    :func:`generate` takes ``kappa`` (the kappa grid axis applies), ``mode``
    and ``rank`` for this family; ``structure`` is ``"general"``,
    ``"symmetric"`` or ``"spd"``.
    """

    name: str
    structure: str
    controls_kappa: bool
    square_only: bool
    has_modes: bool
    has_rank: bool
    description: str


def _kind(name, structure, controls_kappa, square_only, description, *, modes=False, rank=False):
    return KindInfo(name, structure, controls_kappa, square_only, modes, rank, description)


KINDS: dict[str, KindInfo] = {k.name: k for k in (
    _kind("randsvd", "general", True, False,
          "U diag(sigma) V^H with Haar U, V and Higham's randsvd spectrum modes", modes=True),
    _kind("spd", "spd", True, True,
          "Q diag(lambda) Q^H with Haar Q and randsvd modes for the eigenvalues", modes=True),
    _kind("gaussian", "general", False, False, "i.i.d. standard normal entries"),
    _kind("hilbert", "spd", False, True, "Hilbert matrix 1/(i+j-1); kappa ~ exp(3.5 n)"),
    _kind("vandermonde", "general", False, True,
          "Vandermonde x_i^(j-1) at equispaced nodes in [0, 1]"),
    _kind("kahan", "general", False, True,
          "Kahan's upper triangular matrix (theta=1.2, pert=25): QR column pivoting adversary"),
    _kind("wilkinson", "general", False, True,
          "Wilkinson's matrix with growth factor 2^(n-1) under partial pivoting"),
    _kind("mirrored", "general", False, True,
          "J (I + 2^-20 G), row-reversed column diagonally dominant: partial pivoting "
          "fetches every pivot from the mirrored row (growth <= 2)"),
    _kind("graded", "general", True, False,
          "row-graded diag(d) B, d geometric from 1 to 1/kappa, B well conditioned"),
    _kind("lowrank", "general", False, False,
          "rank-r signal (1 .. 1e-2) plus a flat 1e-4 noise spectrum, known exactly", rank=True),
    _kind("polydecay", "general", False, False,
          "r singular values 1, then a slowly decaying tail (j - r + 1)^-1", rank=True),
    _kind("expdecay", "general", False, False,
          "r singular values 1, then a fast decaying tail 10^(-(j - r)/4)", rank=True),
    _kind("rankdef", "general", False, False,
          "randsvd-like with the last max(1, min(m,n)//2) singular values exactly zero"),
    _kind("zero", "general", False, False, "the zero matrix"),
)}


def normalize_rng(rng=None) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` for ``rng``.

    Parameters
    ----------
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator
        None draws fresh OS entropy; an int or SeedSequence seeds a new PCG64
        generator; a Generator is returned as is (and is advanced by its user).
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"rng must be None, an int, a SeedSequence or a Generator; got {type(rng).__name__}."
    )


def _normal(rng, shape, cplx):
    if cplx:
        re = rng.standard_normal(shape)
        im = rng.standard_normal(shape)
        return (re + 1j * im) / math.sqrt(2.0)
    return rng.standard_normal(shape)


def _haar(rng, rows, cols, cplx):
    """First ``cols`` columns of a Haar-distributed orthogonal/unitary matrix, (rows, cols)."""
    Q, R = sla.qr(_normal(rng, (rows, cols), cplx), mode="economic",
                  overwrite_a=True, check_finite=False)
    d = np.diagonal(R)
    absd = np.abs(d)
    # Rescaling column j by the phase of R_jj makes the factorization unique
    # (R_jj > 0), which is what makes Q Haar (Mezzadri 2007, section 5).
    phase = np.where(absd > 0, d / np.where(absd > 0, absd, 1), 1)
    Q *= phase
    return Q


def _geometric(p, lo):
    """p values from 1 down to ``lo`` in geometric progression, endpoints exact."""
    if p == 1:
        return np.ones(1)
    s = lo ** np.linspace(0.0, 1.0, p)
    s[0], s[-1] = 1.0, lo
    return s


def _spectrum(rng, p, kappa, mode):
    """Higham's randsvd singular values, shape (p,), descending, sigma_1 = 1, sigma_p = 1/kappa."""
    lo = 1.0 / kappa
    if p == 1:
        return np.ones(1)
    if mode == 1:
        s = np.full(p, lo)
        s[0] = 1.0
    elif mode == 2:
        s = np.ones(p)
        s[-1] = lo
    elif mode == 3:
        s = _geometric(p, lo)
    elif mode == 4:
        s = 1.0 - (1.0 - lo) * np.linspace(0.0, 1.0, p)
        # 1 - (1 - 1/kappa) loses all digits of 1/kappa once kappa ~ 1/u
        s[-1] = lo
    else:
        inner = np.exp(rng.uniform(math.log(lo), 0.0, p - 2))
        s = np.concatenate(([1.0], np.sort(inner)[::-1], [lo]))
    return s


def _usv(rng, m, n, sigma, cplx):
    """U diag(sigma) V^H with Haar U (m, k) and V (n, k), k = len(sigma)."""
    k = sigma.shape[0]
    if k == 0:
        return np.zeros((m, n), dtype=np.complex128 if cplx else np.float64)
    U = _haar(rng, m, k, cplx)
    V = _haar(rng, n, k, cplx)
    return (U * sigma) @ V.conj().T


def _build(kind, rng, m, n, kappa, mode, rank, cplx):
    """Construct ``kind`` from validated arguments; A may still be real when ``cplx``."""
    p = min(m, n)
    if kind == "randsvd":
        sigma = _spectrum(rng, p, kappa, mode)
        return TestMatrix(_usv(rng, m, n, sigma, cplx), kind, mode, kappa, sigma,
                          meta={"spectrum": _MODE_NAMES[mode]})
    if kind == "spd":
        sigma = _spectrum(rng, n, kappa, mode)
        Q = _haar(rng, n, n, cplx)
        A = (Q * sigma) @ Q.conj().T
        # Floating-point addition commutes, so (A + A^H)/2 is exactly Hermitian
        # with a real diagonal: potrf/eigh and the metrics see one matrix.
        A = (A + A.conj().T) / 2
        return TestMatrix(A, kind, mode, kappa, sigma, sigma[::-1].copy(), structure="spd",
                          meta={"spectrum": _MODE_NAMES[mode]})
    if kind == "gaussian":
        return TestMatrix(_normal(rng, (m, n), cplx), kind)
    if kind == "hilbert":
        i = np.arange(n, dtype=np.float64)
        # one division per entry: correctly rounded entries, exactly symmetric
        return TestMatrix(1.0 / (i[:, None] + i[None, :] + 1.0), kind, structure="spd")
    if kind == "vandermonde":
        A = np.vander(np.linspace(0.0, 1.0, n), n, increasing=True)
        return TestMatrix(A, kind, meta={"nodes": "equispaced in [0, 1]", "powers": "increasing"})
    if kind == "kahan":
        s, c = math.sin(_KAHAN_THETA), math.cos(_KAHAN_THETA)
        A = -c * np.triu(np.ones((n, n)), 1)
        np.fill_diagonal(A, 1.0)
        A *= (s ** np.arange(n, dtype=np.float64))[:, None]
        # All columns have 2-norm 1 in exact arithmetic; the decreasing
        # perturbation breaks the ties towards the natural order, so column
        # pivoting keeps the identity permutation despite rounding.
        A[np.diag_indices(n)] += _KAHAN_PERT * np.finfo(np.float64).eps * np.arange(n, 0, -1)
        return TestMatrix(A, kind, meta={"theta": _KAHAN_THETA, "pert": _KAHAN_PERT})
    if kind == "wilkinson":
        A = np.eye(n) - np.tril(np.ones((n, n)), -1)
        A[:, -1] = 1.0
        return TestMatrix(A, kind, meta={"log2_growth_factor": n - 1})
    if kind == "mirrored":
        # M = I + delta G is column diagonally dominant (delta sum_i |G_ij| ~
        # 0.8 delta n << 1), so GEPP on J M takes each pivot from the row that
        # holds M's diagonal, n - 1 - k rows away, and its growth is at most 2
        # (Higham 2002, Thm 9.9).  Any scheme that pivots only within blocks
        # of rows (dask's block LU) must pivot on entries of size delta instead.
        M = _MIRRORED_DELTA * _normal(rng, (n, n), cplx)
        M[np.diag_indices(n)] += 1.0
        return TestMatrix(M[::-1].copy(), kind, meta={"delta": _MIRRORED_DELTA,
                                                      "pivot_rows": "reversed"})
    if kind == "graded":
        B = _usv(rng, m, n, _spectrum(rng, p, _GRADED_KAPPA_B, 3), cplx)
        d = np.full(m, 1.0 / kappa)
        d[:p] = _geometric(p, 1.0 / kappa)
        return TestMatrix(d[:, None] * B, kind, None, kappa, meta={"kappa_B": _GRADED_KAPPA_B})
    if kind == "lowrank":
        sigma = np.full(p, _LOWRANK_NOISE)
        sigma[:rank] = _geometric(rank, _LOWRANK_SIGNAL_MIN)
        return TestMatrix(_usv(rng, m, n, sigma, cplx), kind, sigma=sigma, rank=rank,
                          meta={"noise": _LOWRANK_NOISE, "signal_min": _LOWRANK_SIGNAL_MIN})
    if kind in ("polydecay", "expdecay"):
        j = np.arange(1, p - rank + 1, dtype=np.float64)
        # Tropp et al. (2017): (1, ..., 1, 2^-p, 3^-p, ...) and (1, ..., 1, 10^-q, 10^-2q, ...)
        tail = (1.0 + j) ** -_POLY_POWER if kind == "polydecay" else 10.0 ** (-_EXP_RATE * j)
        sigma = np.concatenate((np.ones(rank), tail))
        meta = ({"power": _POLY_POWER} if kind == "polydecay" else {"rate": _EXP_RATE})
        return TestMatrix(_usv(rng, m, n, sigma, cplx), kind, sigma=sigma, rank=rank, meta=meta)
    if kind == "rankdef":
        nullity = max(1, p // 2)
        r = p - nullity
        sigma = np.zeros(p)
        if r:
            sigma[:r] = _geometric(r, _RANKDEF_SIGMA_MIN)
        # Only r Haar columns, so the zero singular values are exact in exact
        # arithmetic rather than 0 times a random direction.
        return TestMatrix(_usv(rng, m, n, sigma[:r], cplx), kind, sigma=sigma, rank=r,
                          meta={"nullity": nullity})
    return TestMatrix(np.zeros((m, n)), kind, sigma=np.zeros(p), rank=0)


def _kind_info(kind):
    info = KINDS.get(kind) if isinstance(kind, str) else None
    if info is None:
        close = difflib.get_close_matches(str(kind), KINDS, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"Unknown matrix kind {kind!r}; known kinds: {', '.join(KINDS)}.{hint}")
    return info


def _positive_int(value, name):
    v = operator.index(value)
    if v < 1:
        raise ValueError(f"{name} must be a positive integer; got {v}.")
    return v


def generate(kind: str, m: int, n: int, *, kappa: float | None = None, mode: int | None = None,
             rank: int | None = None, complex_: bool = False, rng=None) -> TestMatrix:
    """Generate one test matrix of family ``kind``.

    Parameters
    ----------
    kind : str
        A key of :data:`KINDS`.
    m, n : int
        Shape of ``A``; square-only families need ``m == n``.
    kappa : float, optional
        Target 2-norm condition number, >= 1 and finite.  Required by the
        families with ``controls_kappa`` (randsvd, spd, graded), refused by the others.
    mode : int, optional
        Spectrum mode 1..5 (randsvd, spd); default 3 (geometric).
    rank : int, optional
        Signal rank r of ``lowrank``, ``polydecay``, ``expdecay``, 1 <= r <= min(m, n); default
        ``max(1, min(10, min(m, n) // 4))``.
    complex_ : bool
        Generate complex128 (complex Haar and Gaussian factors).
    rng : None, int, SeedSequence or Generator
        Normalised once with :func:`normalize_rng`.

    Returns
    -------
    TestMatrix
        ``A`` has shape (m, n), dtype float64 or complex128, C order.

    Raises
    ------
    ValueError
        Unknown kind (with close matches), invalid size, kappa, mode or rank,
        or a parameter the family does not take.
    """
    info = _kind_info(kind)
    m, n = _positive_int(m, "m"), _positive_int(n, "n")
    if info.square_only and m != n:
        raise ValueError(f"Matrix kind {kind!r} is square only; got m={m}, n={n}.")
    p = min(m, n)
    if info.controls_kappa:
        if kappa is None:
            raise ValueError(f"Matrix kind {kind!r} needs a target condition number kappa.")
        kappa = float(kappa)
        if not (math.isfinite(kappa) and kappa >= 1.0):
            raise ValueError(f"kappa must be a finite number >= 1; got {kappa!r}.")
        if p == 1 and kappa != 1.0:
            raise ValueError(f"A {m} x {n} matrix has condition number 1, not {kappa:g}.")
    elif kappa is not None:
        raise ValueError(f"Matrix kind {kind!r} does not control kappa; pass kappa=None.")
    if info.has_modes:
        mode = _DEFAULT_MODE if mode is None else operator.index(mode)
        if mode not in _MODE_NAMES:
            raise ValueError(f"mode must be one of 1, 2, 3, 4, 5; got {mode}.")
    elif mode is not None:
        raise ValueError(f"Matrix kind {kind!r} has no spectrum modes; pass mode=None.")
    if info.has_rank:
        rank = max(1, min(10, p // 4)) if rank is None else operator.index(rank)
        if not 1 <= rank <= p:
            raise ValueError(f"rank must satisfy 1 <= rank <= min(m, n) = {p}; got {rank}.")
    elif rank is not None:
        raise ValueError(f"Matrix kind {kind!r} does not take a rank; pass rank=None.")
    cplx = bool(complex_)
    tm = _build(kind, normalize_rng(rng), m, n, kappa, mode, rank, cplx)
    tm.A = np.ascontiguousarray(tm.A, dtype=np.complex128 if cplx else np.float64)
    return tm


def kappa_actual(A_w, *, max_n: int = 2048) -> float | None:
    """2-norm condition number of the working-precision matrix ``A_w``.

    Parameters
    ----------
    A_w : array_like, shape (m, n)
        The matrix after rounding to the working precision, in that dtype
        (native or ml_dtypes).  It is widened exactly to float64/complex128
        and its singular values computed with ``scipy.linalg.svdvals``.
    max_n : int
        Largest ``max(m, n)`` for which the O(mn min(m, n)) SVD is paid.

    Returns
    -------
    float or None
        sigma_max / sigma_min; ``inf`` for a singular matrix (sigma_min == 0),
        ``nan`` when ``A_w`` holds non-finite values, None above ``max_n``, for
        an empty matrix, or when the SVD does not converge.
    """
    A = np.asarray(A_w)
    if A.ndim != 2:
        raise ValueError(f"A_w must be a 2-D array; got {A.ndim} dimensions.")
    if A.size == 0 or max(A.shape) > max_n:
        return None
    A = A.astype(np.complex128 if np.iscomplexobj(A) else np.float64)
    if not np.isfinite(A).all():
        return math.nan
    try:
        s = sla.svdvals(A, check_finite=False)
    except np.linalg.LinAlgError:
        return None
    return math.inf if s[-1] == 0 else float(s[0] / s[-1])


def _round_real(x, dtype):
    if dtype.itemsize >= 8:
        return x.astype(dtype)
    # float32 itself is reached from the odd-rounded float64; narrower formats
    # also pass through an odd-rounded float32 because ml_dtypes converts via float32.
    for step in (np.float64, np.float32)[: 1 + (dtype.itemsize < 4)]:
        y = x.astype(step)
        fix = (x != y) & ((y.view(np.uint64 if step is np.float64 else np.uint32) & 1) == 0)
        fix &= np.isfinite(y)
        y[fix] = np.nextafter(y[fix], np.where(x[fix] > y[fix], np.inf, -np.inf).astype(step))
        x = y
    return x.astype(dtype)


def _round_longdouble(x, dtype):
    """Correctly round a (c)longdouble array to the working ``dtype``.

    NumPy narrows longdouble to float16 through float32, and ml_dtypes narrows
    float64 to bfloat16/fp8 through float32: double roundings that miss the
    nearest value near ties.  Rounding to odd into every intermediate format
    and to nearest only in the last step is exact whenever each intermediate
    has at least two more significand bits than the target (Boldo & Melquiond
    2008), which holds for float64 -> float32 -> {float16, bfloat16, fp8}.
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "c":
        return _round_real(x, dtype)
    out = np.empty(x.shape, dtype=dtype)
    real = np.dtype(np.float32) if dtype == np.complex64 else np.dtype(np.float64)
    out.real = _round_real(x.real, real)
    out.imag = _round_real(x.imag, real)
    return out


def rhs(A_w, rng, *, nrhs: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right-hand side ``b`` with known solution ``x_true`` for ``A_w x = b``.

    ``x_true`` is standard Gaussian (complex when ``A_w`` is), rounded to the
    working precision so it is exactly representable there.  ``b = A_w x_true``
    is accumulated in ``np.longdouble`` (``clongdouble``) from the working
    matrix and correctly rounded to its dtype: ``b`` is the rounded image of
    ``x_true`` and forward errors measure the solver, not the right-hand side.
    On x86-64 Linux longdouble is the 80-bit x87 format (64-bit significand):
    about 2^-64 per operation for float64, exact products for float32 and
    narrower.  Where longdouble is float64 (Windows, macOS arm64) ``b`` is an
    ordinary float64 product.

    Parameters
    ----------
    A_w : numpy.ndarray, shape (m, n)
        The matrix in its working dtype.
    rng : None, int, SeedSequence or Generator
        Normalised with :func:`normalize_rng`.
    nrhs : int, optional
        None gives vectors x_true (n,) and b (m,); an int gives (n, nrhs) and (m, nrhs).

    Returns
    -------
    x_true : numpy.ndarray, shape (n,) or (n, nrhs)
        float64, or complex128 when ``A_w`` is complex.
    b : numpy.ndarray, shape (m,) or (m, nrhs)
        In the dtype of ``A_w``.
    """
    A = np.asarray(A_w)
    if A.ndim != 2:
        raise ValueError(f"A_w must be a 2-D array; got {A.ndim} dimensions.")
    cplx = np.iscomplexobj(A)
    shape = (A.shape[1],) if nrhs is None else (A.shape[1], _positive_int(nrhs, "nrhs"))
    x_w = _normal(normalize_rng(rng), shape, cplx).astype(A.dtype)
    host = np.complex128 if cplx else np.float64
    ld = np.clongdouble if cplx else np.longdouble
    x_true = x_w.astype(host)
    b_ld = A.astype(host).astype(ld) @ x_true.astype(ld)
    return x_true, _round_longdouble(b_ld, A.dtype)


def lstsq_rhs(A_w, rng, *, residual: float = 0.0,
              norm2: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares right-hand side with a residual of chosen size and known solution.

    ``b = A_w x_true + r`` with ``r`` orthogonal to range(A_w) and
    ``||r||_2 = residual * ||A_w x_true||_2``, so ``x_true`` is the
    least-squares solution and ``r`` its residual.  With ``residual = 0`` this
    is :func:`rhs` (same draws, same ``x_true`` and ``b``).  A nonzero
    residual is what separates the least-squares solvers: the forward error of
    a backward-stable one is then bounded by about
    ``u (kappa + kappa^2 eta)`` with ``eta = ||r||_2 / (||A||_2 ||x||_2)``
    (Wedin's condition number; Higham 2002, Thm 20.1), the normal equations
    lose ``kappa^2 u`` whatever the residual, and sketch-and-solve loses
    ``kappa eta`` times its embedding distortion.

    ``r`` is the projection of a Gaussian vector onto the orthogonal
    complement of range(A_w), computed in float64 with the Q of a Householder
    QR and projected twice ("twice is enough"), so ``||Q^H r|| = O(u ||r||)``:
    ``x_true`` is off the exact least-squares solution by ``O(kappa u eta)``
    relative, below the error of any solver.  ``b`` is accumulated in long
    double and correctly rounded to the working precision, as in :func:`rhs`.

    Parameters
    ----------
    A_w : numpy.ndarray, shape (m, n)
        The matrix in its working dtype, full column rank; m > n when
        ``residual > 0``.
    rng : None, int, SeedSequence or Generator
        Normalised once; x_true is drawn first, then the residual direction.
    residual : float
        ``||r||_2 / ||A_w x_true||_2``, finite and >= 0.
    norm2 : float, optional
        ``||A_w||_2`` when known (the largest singular value of the family);
        computed otherwise.

    Returns
    -------
    x_true : numpy.ndarray, shape (n,)
        float64, or complex128 when ``A_w`` is complex.
    b : numpy.ndarray, shape (m,)
        In the dtype of ``A_w``.
    eta : float
        ``||r||_2 / (||A_w||_2 ||x_true||_2)``; 0.0 for ``residual = 0``.
    """
    residual = float(residual)
    if not (math.isfinite(residual) and residual >= 0.0):
        raise ValueError(f"residual must be a finite number >= 0; got {residual!r}.")
    rng = normalize_rng(rng)
    x_true, b = rhs(A_w, rng)
    if residual == 0.0:
        return x_true, b, 0.0
    A = np.asarray(A_w)
    m, n = A.shape
    if m <= n:
        raise ValueError(f"a least-squares residual needs m > n; got a {m} x {n} matrix.")
    cplx = np.iscomplexobj(A)
    host = np.complex128 if cplx else np.float64
    Ah = A.astype(host)
    Q = sla.qr(Ah, mode="economic", check_finite=False)[0]
    r = _normal(rng, (m,), cplx)
    for _ in range(2):
        r -= Q @ (Q.conj().T @ r)
    ld = np.clongdouble if cplx else np.longdouble
    Ax = Ah.astype(ld) @ x_true.astype(ld)
    r *= residual * float(np.linalg.norm(Ax.astype(host))) / np.linalg.norm(r)
    b = _round_longdouble(Ax + r.astype(ld), A.dtype)
    if norm2 is None:
        norm2 = float(sla.svdvals(Ah, check_finite=False)[0])
    return x_true, b, float(np.linalg.norm(r) / (norm2 * np.linalg.norm(x_true)))
