"""Accuracy metrics: one pure function per metric, and the per-op bundles.

Everything is computed on the host in float64 (complex128 for complex data)
from the factors an impl returned and the working-precision matrix it was
given (design section 5).  Norms are 1-norms unless stated, as in LAPACK's
TESTING routines.

Ratios follow LAPACK TESTING (e.g. xGET01, xQRT01, xPOT01): an error divided
by ``max(m, n) * u`` is O(1) for a backward-stable method, and a cell passes
when every ratio it has is finite and below a threshold (30 by default, the
value in LAPACK's ``dtest.in``).  A NaN or Inf anywhere is a failure.

Definitions (A is m x n, u the unit roundoff of the working precision):

=====================  ==========================================================
backward_error         lu ||A[p]-LU||/||A|| (||A[p][:,q]-LU|| with column pivoting);
                       cholesky ||A-LL^H||/||A||;
                       qr ||A-QR||/||A||; qrcp ||A[:,p]-QR||/||A||;
                       svd ||A-U diag(s) V^H||/||A||; eigh ||AV-V diag(w)||/||A||;
                       solve ||b-Ax||_inf/(||A||_inf ||x||_inf + ||b||_inf)
                       (Rigal-Gaches; Higham 2002 Thm 7.1);
                       lstsq ||A^H (b-Ax)||/(||A|| ||b||) (xQRT17)
backward_ratio         backward_error / (max(m, n) u)
orthogonality_loss     ||I - Q^H Q|| (qr, qrcp); max over U and V (svd, lowrank); V (eigh)
orthogonality_ratio    orthogonality_loss / (m u)  (max(m, n) u for svd and lowrank)
growth_factor          lu: max|U| / max|A|
growth_factor_exact    lu: max_k max|a_ij^(k)| / max|A| (Higham 2002 eq. 9.6), from impls
                       that track it
forward_error          solve, lstsq ||x-x_true||_2/||x_true||_2; svd max|s-s_true|/s_1;
                       eigh max|w-w_true|/||A||_2
kappa_scaled_error     forward_error / (kappa u) for solve and lstsq (xGET04); for a
                       least-squares problem with a residual, forward_error /
                       ((kappa + kappa^2 eta) u), eta = ||r||_2 / (||A||_2 ||x||_2)
                       (Wedin's condition number, Higham 2002 Thm 20.1; eta = 0 for a
                       consistent right-hand side, the design's definition)
kappa2_scaled_error    lstsq: forward_error / (kappa^2 u)
lowrank_error_ratio    ||A - A_hat_k||_F / ||A - A_k||_F, A_k the optimal rank-k
                       approximation (Eckart-Young) from the known spectrum (rounding
                       level: see _optimum); adaptive: ||A - A_hat||_F / (tol ||A||_F)
lowrank_spectral_ratio ||A - A_hat_k||_2 / ||A - A_k||_2 = ... / sigma_{k+1}: the
                       spectral-norm counterpart, the norm of HMT 2011's bounds
rank_revealed          qrcp: number of leading |R_ii| >= tol |R_11|, tol = max(m, n) u;
                       lowrank: the rank an adaptive method chose (``extras["rank"]``)
numerical_rank         qrcp: number of sigma_i > tol sigma_1 (to compare with the above);
                       adaptive lowrank: the smallest r with ||A - A_r||_F <= tol ||A||_F,
                       the optimum for the method's own (Frobenius) tolerance
=====================  ==========================================================

A lowrank result of another rank than the requested k is accepted only from
an adaptive method that says so (``extras["rank"]``, with its relative
Frobenius tolerance in ``extras["tol"]``): its ``lowrank_error_ratio`` is then
``||A - A_hat||_F / (tol ||A||_F)``, its contract (at most 1 when met), its
spectral ratio is taken at the rank it chose, and ``rank_revealed`` against
``numerical_rank`` shows how far that rank is from the smallest one meeting
the tolerance.

The ratios that decide ``passed`` are :data:`PASS_RATIOS`.  ``kappa`` in
``kappa_scaled_error`` is the condition number of the rounded matrix when it
was computed (``kappa_actual``), else the family's target.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "METRIC_COLUMNS",
    "PASS_RATIOS",
    "LOWRANK_THRESHOLD",
    "ResultError",
    "limits",
    "bundle",
    "passed",
    "rel_residual",
    "orthogonality_loss",
    "growth_factor",
    "solve_backward_error",
    "lstsq_backward_error",
    "forward_error",
    "lowrank_error_ratio",
    "lowrank_spectral_ratio",
    "adaptive_error_ratio",
    "rank_revealed",
    "numerical_rank",
    "frobenius_rank",
    "ROUNDING_FLOOR",
]

METRIC_COLUMNS = (
    "backward_error",
    "backward_ratio",
    "orthogonality_loss",
    "orthogonality_ratio",
    "growth_factor",
    "growth_factor_exact",
    "forward_error",
    "kappa_scaled_error",
    "kappa2_scaled_error",
    "lowrank_error_ratio",
    "rank_revealed",
    "numerical_rank",
    "lowrank_spectral_ratio",
)

#: Ratios that decide the pass rule when present (finite and < threshold).
PASS_RATIOS = ("backward_ratio", "orthogonality_ratio", "kappa_scaled_error", "lowrank_error_ratio")

#: lowrank_error_ratio is relative to the optimum, not u-scaled: it has its own threshold.
LOWRANK_THRESHOLD = 2.0

#: Where the optimal rank-k error is below max(m, n) u ||A|| (exactly rank k at
#: working precision), the low-rank ratios divide by ROUNDING_FLOOR times that: a
#: ratio below LOWRANK_THRESHOLD then means an error below 30 max(m, n) u ||A||,
#: the backward-error rule (LAPACK's threshold 30 / 2).  See _optimum.
ROUNDING_FLOOR = 15.0

#: Above this size the singular values needed for an unknown spectrum are not computed.
_SVD_LIMIT = 2048


class ResultError(ValueError):
    """The impl returned factors of the wrong shape or structure."""


def _host(x, dtype=None) -> np.ndarray:
    """Copy an array (NumPy, CuPy, Dask, ...) to a float64/complex128 host array."""
    if x is None:
        raise ResultError("a factor is missing (None)")
    if not isinstance(x, np.ndarray) and hasattr(x, "get"):
        x = x.get()  # CuPy: explicit device-to-host copy
    x = np.asarray(x)
    if dtype is None:
        dtype = np.complex128 if np.iscomplexobj(x) else np.float64
    return x.astype(dtype, copy=False)


def _norm1(X) -> float:
    X = np.atleast_2d(X) if np.ndim(X) < 2 else X
    return float(np.linalg.norm(X, 1))


def _shape(name, X, shape):
    if tuple(np.shape(X)) != tuple(shape):
        raise ResultError(f"{name} has shape {tuple(np.shape(X))}, expected {tuple(shape)}")


def _triangular(name, X, lower):
    bad = np.triu(X, 1) if lower else np.tril(X, -1)
    if np.any(bad != 0):
        raise ResultError(f"{name} is not {'lower' if lower else 'upper'} triangular")


def _permutation(name, p, n) -> np.ndarray:
    p = np.asarray(p.get() if hasattr(p, "get") and not isinstance(p, np.ndarray) else p)
    if p.shape != (n,) or p.dtype.kind not in "iu":
        raise ResultError(f"{name} must be an integer array of shape ({n},)")
    if not np.array_equal(np.sort(p), np.arange(n)):
        raise ResultError(f"{name} is not a permutation of 0..{n - 1}")
    return p


def _div(a, b) -> float:
    """a / b in float64, with LAPACK TESTING's convention for a zero denominator.

    xGET01, xQRT01 and friends return 0 when the norm of A is 0 and so is the
    residual (an exact factorization of the zero matrix), and a huge value
    when only the residual is nonzero: here 0/0 -> 0 and x/0 -> inf.  A NaN
    numerator stays NaN (a failure).
    """
    a, b = np.float64(a), np.float64(b)
    if b == 0 and not np.isnan(a):
        return 0.0 if a == 0 else float("inf")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return float(a / b)


def rel_residual(A, B) -> float:
    """``||A - B||_1 / ||A||_1`` for arrays of equal shape."""
    return _div(_norm1(A - B), _norm1(A))


def orthogonality_loss(Q) -> float:
    """``||I - Q^H Q||_1`` for Q (m, k) with (intended) orthonormal columns."""
    k = Q.shape[1]
    return _norm1(np.eye(k) - Q.conj().T @ Q)


def growth_factor(U, A) -> float:
    """``max|U| / max|A|``: the growth factor seen in the final U (any LU impl)."""
    return _div(np.max(np.abs(U)), np.max(np.abs(A)))


def solve_backward_error(A, x, b) -> float:
    """Normwise backward error of x for ``Ax = b`` in the inf-norm (Rigal-Gaches).

    ``||b - Ax||_inf / (||A||_inf ||x||_inf + ||b||_inf)`` (Higham 2002, Thm 7.1).
    """
    r = b - A @ x
    denom = np.linalg.norm(A, np.inf) * np.linalg.norm(x, np.inf) + np.linalg.norm(b, np.inf)
    return _div(np.linalg.norm(r, np.inf), denom)


def lstsq_backward_error(A, x, b) -> float:
    """``||A^H (b - Ax)||_1 / (||A||_1 ||b||_1)``, the LAPACK xQRT17 residual test."""
    r = b - A @ x
    return _div(np.linalg.norm(A.conj().T @ r, 1), _norm1(A) * np.linalg.norm(b, 1))


def forward_error(x, x_true) -> float:
    """``||x - x_true||_2 / ||x_true||_2``."""
    return _div(np.linalg.norm(x - x_true), np.linalg.norm(x_true))


def _optimum(opt: float, scale: float, size: int, u: float) -> float:
    """The optimal error, or the rounding level where the optimum is below it.

    An optimum of at least ``max(m, n) u scale`` (``scale`` = ||A|| in the
    ratio's norm) is what the ratio divides by, unfloored: a low-rank error is
    then judged against the best rank-k error however close the two are.
    Below it the problem is exactly rank k at working precision (k = min(m, n)
    included) and the error that remains is rounding: it is judged as a
    backward error is, against :data:`ROUNDING_FLOOR` ``* max(m, n) u scale``,
    so that a ratio below :data:`LOWRANK_THRESHOLD` there means an error below
    30 max(m, n) u ||A||, LAPACK's rule.
    """
    unit = size * u * scale
    return opt if opt >= unit else ROUNDING_FLOOR * unit


def lowrank_error_ratio(A, A_hat, sigma, k, u) -> float:
    """``||A - A_hat||_F / ||A - A_k||_F`` with ``||A - A_k||_F`` from the spectrum.

    The optimal error (Eckart-Young) is ``sqrt(sum_{i>k} sigma_i^2)``; where it is
    below rounding level, see :func:`_optimum`.
    """
    tail = float(np.sqrt(np.sum(np.asarray(sigma[k:], dtype=np.float64) ** 2)))
    opt = _optimum(tail, float(np.linalg.norm(A, "fro")), max(A.shape), u)
    return _div(np.linalg.norm(A - A_hat, "fro"), opt)


def lowrank_spectral_ratio(A, A_hat, sigma, k, u) -> float:
    """``||A - A_hat||_2 / sigma_{k+1}``; below rounding level see :func:`_optimum`.

    The 2-norm of the error is exact (an SVD) for matrices with at most
    :data:`_SPECTRAL_EXACT` columns or rows, else the largest singular value
    by ARPACK (Lanczos bidiagonalisation to relative accuracy 1e-8, from a
    fixed start vector, so the metric is deterministic): a lower bound that
    converges from below, accurate far beyond the digits a ratio needs.
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    if not sigma.size:
        return _div(_norm2(A - A_hat), 0.0)
    opt = float(sigma[k]) if k < sigma.size else 0.0
    return _div(_norm2(A - A_hat), _optimum(opt, float(sigma[0]), max(A.shape), u))


def adaptive_error_ratio(A, A_hat, tol) -> float:
    """``||A - A_hat||_F / (tol ||A||_F)``: an adaptive method against its own contract.

    At most 1 when the method met the relative Frobenius tolerance it was
    given; how far its chosen rank is from the optimum for that tolerance is
    ``rank_revealed`` against ``numerical_rank`` (:func:`frobenius_rank`).
    """
    return _div(np.linalg.norm(A - A_hat, "fro"), tol * float(np.linalg.norm(A, "fro")))


#: Largest min(m, n) whose residual 2-norm is computed by a full SVD.
_SPECTRAL_EXACT = 512


def _norm2(E) -> float:
    if min(E.shape) <= _SPECTRAL_EXACT:
        return float(np.linalg.norm(E, 2)) if E.size else 0.0
    if not np.isfinite(E).all():
        return float("nan")
    from scipy.sparse.linalg import svds

    v0 = np.random.default_rng(0).standard_normal(min(E.shape))
    s = svds(E, k=1, tol=1e-8, v0=v0, return_singular_vectors=False, solver="arpack")
    return float(s[0])


def _tol(m, n, u):
    return max(m, n) * u


def rank_revealed(R, tol) -> int:
    """Number of leading diagonal entries with ``|R_ii| >= tol * |R_11|``."""
    d = np.abs(np.diag(R))
    if d.size == 0 or not np.isfinite(d).all() or d[0] == 0:
        return 0
    small = np.nonzero(d < tol * d[0])[0]
    return int(small[0]) if small.size else int(d.size)


def numerical_rank(sigma, tol) -> int:
    """Number of singular values ``> tol * sigma_1``."""
    sigma = np.asarray(sigma, dtype=np.float64)
    return int(np.sum(sigma > tol * sigma[0])) if sigma.size and sigma[0] > 0 else 0


def _sigma(A, sigma):
    """The known spectrum, or the computed one when affordable, else None."""
    if sigma is not None:
        return np.asarray(sigma, dtype=np.float64)
    if max(A.shape) <= _SVD_LIMIT:
        import scipy.linalg

        return scipy.linalg.svdvals(A)
    return None


def _lu(A, res, m, n, u, **_):
    perm = _permutation("perm", res.perm, n)
    L, U = _host(res.L), _host(res.U)
    _shape("L", L, (n, n))
    _shape("U", U, (n, n))
    _triangular("L", L, lower=True)
    _triangular("U", U, lower=False)
    gfe = res.growth_factor_exact
    PA = A[perm]
    if res.col_perm is not None:
        PA = PA[:, _permutation("col_perm", res.col_perm, n)]
    return {
        "backward_error": rel_residual(PA, L @ U),
        "growth_factor": growth_factor(U, A),
        "growth_factor_exact": None if gfe is None else float(gfe),
    }


def _cholesky(A, res, m, n, u, **_):
    L = _host(res.L)
    _shape("L", L, (n, n))
    _triangular("L", L, lower=True)
    return {"backward_error": rel_residual(A, L @ L.conj().T)}


def _qr_common(A, Q, R, m, n, u):
    _shape("Q", Q, (m, n))
    _shape("R", R, (n, n))
    _triangular("R", R, lower=False)
    loss = orthogonality_loss(Q)
    return {"orthogonality_loss": loss, "orthogonality_ratio": _div(loss, m * u)}


def _qr(A, res, m, n, u, **_):
    Q, R = _host(res.Q), _host(res.R)
    out = _qr_common(A, Q, R, m, n, u)
    out["backward_error"] = rel_residual(A, Q @ R)
    return out


def _qrcp(A, res, m, n, u, sigma=None, **_):
    perm = _permutation("perm", res.perm, n)
    Q, R = _host(res.Q), _host(res.R)
    out = _qr_common(A, Q, R, m, n, u)
    out["backward_error"] = rel_residual(A[:, perm], Q @ R)
    tol = _tol(m, n, u)
    out["rank_revealed"] = rank_revealed(R, tol)
    s = _sigma(A, sigma)
    out["numerical_rank"] = None if s is None else numerical_rank(s, tol)
    return out


def _svd_factors(res, m, n, k):
    if np.iscomplexobj(res.s):
        raise ResultError("s must be real")
    U, s, Vh = _host(res.U), _host(res.s, np.float64), _host(res.Vh)
    _shape("U", U, (m, k))
    _shape("s", s, (k,))
    _shape("Vh", Vh, (k, n))
    if k > 1 and np.all(np.isfinite(s)) and np.any(np.diff(s) > 0):
        raise ResultError("s is not sorted in descending order")
    return U, s, Vh


def _svd(A, res, m, n, u, sigma=None, **_):
    k = min(m, n)
    U, s, Vh = _svd_factors(res, m, n, k)
    loss = max(orthogonality_loss(U), orthogonality_loss(Vh.conj().T))
    out = {
        "backward_error": rel_residual(A, (U * s) @ Vh),
        "orthogonality_loss": loss,
        "orthogonality_ratio": _div(loss, max(m, n) * u),
    }
    if sigma is not None:
        sigma = np.asarray(sigma, dtype=np.float64)
        out["forward_error"] = _div(np.max(np.abs(s - sigma[:k])), sigma[0])
    return out


def _eigh(A, res, m, n, u, eigenvalues=None, **_):
    if np.iscomplexobj(res.w):
        raise ResultError("w must be real")
    w, V = _host(res.w, np.float64), _host(res.V)
    _shape("w", w, (n,))
    _shape("V", V, (n, n))
    if n > 1 and np.all(np.isfinite(w)) and np.any(np.diff(w) < 0):
        raise ResultError("w is not sorted in ascending order")
    loss = orthogonality_loss(V)
    out = {
        "backward_error": _div(_norm1(A @ V - V * w), _norm1(A)),
        "orthogonality_loss": loss,
        "orthogonality_ratio": _div(loss, n * u),
    }
    if eigenvalues is not None:
        lam = np.asarray(eigenvalues, dtype=np.float64)
        out["forward_error"] = _div(np.max(np.abs(w - lam)), np.max(np.abs(lam)))
    return out


def _forward(out, x, x_true, kappa, u, squared=False, eta=0.0):
    if x_true is None:
        return
    fe = forward_error(x, x_true)
    out["forward_error"] = fe
    if kappa is not None and np.isfinite(kappa):
        out["kappa_scaled_error"] = _div(fe, (kappa + kappa * kappa * (eta or 0.0)) * u)
        if squared:
            out["kappa2_scaled_error"] = _div(fe, kappa * kappa * u)


def _vector(x):
    """A solution as a 1-D host array; an (n, 1) column is accepted."""
    x = _host(x)
    return x[:, 0] if x.ndim == 2 and x.shape[1] == 1 else x


def _solve(A, res, m, n, u, b=None, x_true=None, kappa=None, **_):
    x = _vector(res.x)
    _shape("x", x, (n,))
    out = {"backward_error": solve_backward_error(A, x, _host(b))}
    _forward(out, x, x_true, kappa, u)
    return out


def _lstsq(A, res, m, n, u, b=None, x_true=None, kappa=None, eta=0.0, **_):
    x = _vector(res.x)
    _shape("x", x, (n,))
    out = {"backward_error": lstsq_backward_error(A, x, _host(b))}
    _forward(out, x, x_true, kappa, u, squared=True, eta=eta)
    return out


def _lowrank(A, res, m, n, u, sigma=None, k=None, **_):
    if k is None:
        raise ResultError("lowrank metrics need the target rank k")
    extras = getattr(res, "extras", None) or {}
    chosen = extras.get("rank")
    if chosen is not None:
        # an adaptive method: judged at the rank it chose, never credited for more
        k = int(chosen)
        if not 0 <= k <= min(m, n):
            raise ResultError(f"extras['rank'] = {k} is outside 0..{min(m, n)}")
    U, s, Vh = _svd_factors(res, m, n, k)
    loss = max(orthogonality_loss(U), orthogonality_loss(Vh.conj().T)) if k else 0.0
    out = {"orthogonality_loss": loss, "orthogonality_ratio": _div(loss, max(m, n) * u)}
    s_true = _sigma(A, sigma)
    tol = extras.get("tol") if chosen is not None else None
    if chosen is not None and tol is None:
        raise ResultError("an adaptive lowrank result (extras['rank']) needs extras['tol']")
    A_hat = (U * s) @ Vh
    if tol is not None:
        out["lowrank_error_ratio"] = adaptive_error_ratio(A, A_hat, float(tol))
    elif s_true is not None:
        out["lowrank_error_ratio"] = lowrank_error_ratio(A, A_hat, s_true, k, u)
    if s_true is not None:
        out["lowrank_spectral_ratio"] = lowrank_spectral_ratio(A, A_hat, s_true, k, u)
    if chosen is not None:
        out["rank_revealed"] = k
        if s_true is not None:
            out["numerical_rank"] = frobenius_rank(s_true, float(tol))
    return out


def frobenius_rank(sigma, tol) -> int:
    """The smallest r with ``||A - A_r||_F <= tol ||A||_F``, from the singular values.

    What an adaptive range finder with a relative Frobenius-norm tolerance
    (HMT 2011 Alg. 4.2 in the blocked form of Martinsson & Voronin 2016) should
    choose at best: the optimal rank for its own criterion (Eckart-Young).
    """
    s2 = np.asarray(sigma, dtype=np.float64) ** 2
    tail = np.concatenate((np.cumsum(s2[::-1])[::-1], [0.0]))  # tail[r] = sum_{i >= r}
    return int(np.argmax(tail <= tol * tol * tail[0])) if s2.size else 0


_BUNDLES = {
    "lu": _lu,
    "cholesky": _cholesky,
    "qr": _qr,
    "qrcp": _qrcp,
    "svd": _svd,
    "eigh": _eigh,
    "solve": _solve,
    "lstsq": _lstsq,
    "lowrank": _lowrank,
}


def bundle(
    op: str,
    A,
    result,
    *,
    u: float,
    kappa: float | None = None,
    b=None,
    x_true=None,
    sigma=None,
    eigenvalues=None,
    k: int | None = None,
    eta: float = 0.0,
) -> dict:
    """Every metric of ``op`` for one result, as a dict over :data:`METRIC_COLUMNS`.

    Parameters
    ----------
    op : str
        Operation name.
    A : array (m, n)
        The working-precision matrix exactly as handed to the impl.
    result : result dataclass
        What the impl returned.
    u : float
        Unit roundoff of the working precision.
    kappa : float, optional
        2-norm condition number (of the rounded matrix when known).
    b, x_true : arrays (m,), (n,), optional
        Right-hand side given to the impl and the exact solution (solve, lstsq).
    sigma : array (min(m, n),), optional
        Known singular values, descending (svd forward error, lowrank, qrcp).
    eigenvalues : array (n,), optional
        Known eigenvalues, ascending (eigh forward error).
    k : int, optional
        Target rank (lowrank).
    eta : float
        lstsq: ``||r||_2 / (||A||_2 ||x_true||_2)`` of the exact residual r of
        the posed problem (:func:`factorbench.accuracy.matrices.lstsq_rhs`); 0
        for a consistent right-hand side.

    Returns
    -------
    dict
        Missing metrics are None.  ``backward_ratio`` is derived here.

    Raises
    ------
    ResultError
        Factors of the wrong shape, structure or order.
    """
    A = _host(A)
    m, n = A.shape
    out = dict.fromkeys(METRIC_COLUMNS)
    # Non-finite factors are data (an unstable method failing), not a warning.
    with np.errstate(all="ignore"):
        out.update(
            _BUNDLES[op](
                A, result, m, n, u, kappa=kappa, b=b, x_true=x_true, sigma=sigma,
                eigenvalues=eigenvalues, k=k, eta=eta,
            )
        )
    if out["backward_error"] is not None:
        out["backward_ratio"] = _div(out["backward_error"], max(m, n) * u)
    return out


def limits(threshold: float = 30.0, lowrank_threshold: float = LOWRANK_THRESHOLD,
           size: float = 1.0) -> dict:
    """The limit each ratio of :data:`PASS_RATIOS` is held to.

    ``size`` is max(m, n) of the problem.  ``kappa_scaled_error`` is the
    2-norm forward error over kappa_2 u, with no dimension factor, while the
    worst-case forward error of a backward-stable solver carries one
    (Higham 2002, Thm 7.2 with Thm 9.4).  Rounding errors of independent
    operations accumulate like sqrt(n) rather than n in practice (Higham
    2002, sec. 2.8; Higham and Mary 2019), and that is what is measured:
    LAPACK gesv at kappa = 1 has forward error 49 u at n = 256 and 81 u at
    n = 512, 3.1 and 3.6 times sqrt(n).  So the limit is
    ``threshold * sqrt(size)``: gesv passes at every size, and the normal
    equations, whose kappa^2 u error gives a ratio of about kappa, still fail
    wherever kappa exceeds 30 sqrt(max(m, n)) (kappa = 1e4 at m = 1024 is
    10 times over).  LAPACK's xGET04 gets the same dimension factor
    implicitly by dividing by kappa_inf, which exceeds kappa_2 by up to n.
    """
    return {
        r: lowrank_threshold
        if r == "lowrank_error_ratio"
        else threshold * math.sqrt(max(float(size), 1.0))
        if r == "kappa_scaled_error"
        else threshold
        for r in PASS_RATIOS
    }


def passed(metrics: dict, threshold: float = 30.0,
           lowrank_threshold: float = LOWRANK_THRESHOLD, size: float = 1.0) -> bool:
    """LAPACK-style pass rule.

    Every metric present must be finite (a NaN or Inf anywhere is a failure),
    and every present ratio of :data:`PASS_RATIOS` must be below its limit
    (:func:`limits`): ``threshold`` (30, LAPACK's ``dtest.in``) for the
    u-scaled ratios, ``threshold * sqrt(size)`` for ``kappa_scaled_error``
    (size = max(m, n)), and ``lowrank_threshold`` (2) for ``lowrank_error_ratio``,
    which compares with the optimal rank-k error rather than with u: a ratio
    of 29 would mean an approximation 29 times worse than the truncated SVD.
    A bundle with no ratio at all does not pass: nothing was verified.
    """
    present = {k: v for k, v in metrics.items() if k in METRIC_COLUMNS and v is not None}
    if not all(math.isfinite(v) for v in present.values()):
        return False
    lim = limits(threshold, lowrank_threshold, size)
    ratios = [(present[r], lim[r]) for r in PASS_RATIOS if r in present]
    return bool(ratios) and all(v < t for v, t in ratios)
