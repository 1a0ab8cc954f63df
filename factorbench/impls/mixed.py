"""Mixed-precision iterative refinement: backend "numpy", family "mixed".

Three precisions (Carson & Higham 2018): the *working* precision u is the
cell's dtype (float64 or float32: A and b arrive in it and x goes back in it),
the factorization is done in a lower *factor* precision u_f (parameter
``factor``), and residuals are computed in a *residual* precision u_r <= u
(parameter ``residual``).  Registered implementations::

    solve/ir-lu        LU-IR: corrections by substitution with the u_f LU factors
    solve/gmres-ir     GMRES-IR: corrections by GMRES preconditioned with them
    solve/ir-cholesky  Cholesky-based LU-IR for SPD input (structure "spd")

One refinement step (Higham 2002, sec. 12.1; Carson & Higham 2018)::

    r_i = b - A x_i                      in u_r, then rounded to u
    solve A d_i = r_i                    with the u_f factors, in u
    x_{i+1} = x_i + d_i                  in u

Choices where the design is silent, and why:

* Factor precisions: ``float32`` (LAPACK xGETRF / xPOTRF on a float32 copy,
  the copy rounded correctly from float64 by ``astype``), ``bfloat16`` and
  ``float16`` (emulated, :mod:`factorbench.accuracy.precision`).  The
  emulated LU is ``lu/blocked`` with nb = 64: float32 arithmetic, each
  panel step's, TRSM block's and GEMM block's result rounded to the format
  once per entry (the block-FMA model of a tensor-core unit: the inner
  products of a block update accumulate in float32 and are rounded once),
  factors in the storage format.  It replaced the textbook ``lu/gepp``
  (every rank-1 update rounded), a Python loop: measured, bfloat16, two
  shared cores, n = 512: 0.97 s gepp, 0.06 s blocked; n = 1024: 5.7 s,
  0.25 s; n = 2048: 3.3 s blocked (gepp about 45-75 s, extrapolated).  The
  block-FMA rounding errors are no larger than the rank-1 model's (fewer
  roundings per entry, Blanchard, Higham, Lopez, Mary & Pranesh 2020), so
  the convergence conditions below hold unchanged (the tests re-check
  them).  The emulated Cholesky stays ``cholesky/textbook`` (every step
  rounded): it is already vectorized per column and not slower than
  ``cholesky/blocked`` here (n = 1024: 0.10 s vs 0.08 s; n = 2048: 0.75 s
  vs 1.6 s), so switching would change the rounding model for no gain.
  ``float64`` is accepted by name too.  A factor precision *higher* than the working one is refused
  (ValueError); an *equal* one is allowed: that is classical fixed-precision
  refinement (u_f = u), or, with float32 working and float64 residuals,
  Wilkinson's traditional mixed-precision refinement (Higham 2002, sec. 12.1).
* Scaling for the emulated formats: A is multiplied by a power of two (exact)
  so that max|a_ij| lies in [1, 2) before it is rounded to the format, and
  the solves undo it exactly.  That keeps float16 (largest number 65504,
  smallest normal 6.1e-5) from overflowing on large entries; the two-sided
  equilibration of Higham, Pranesh & Zounon (2019) is not applied, so a badly
  scaled matrix can still lose its small entries to underflow in float16.
* Triangular solves (Carson & Higham 2018 do them in u_f) are done in the
  working precision u with the low-precision factors converted up, which is
  exact: LAPACK xGETRS / xPOTRS / xTRTRS in u.  This is the common practical
  choice (LAPACK's dsgesv solves in u_f; Haidar et al. 2018 in u); the
  convergence condition of LU-IR, kappa(A) u_f safely below 1, is unchanged:
  Carson & Higham's analysis needs only a backward error bound of the
  correction solve in terms of u_f.
* Residual precision ``"double"``: u_r is float64 for both working
  precisions, so (u_f, u, u_r) = (single, double, double) and
  (half/bfloat16/single, single, double).  For a float64 working precision
  u_r = u: the limiting forward error is then about cond(A, x) u rather than
  u (Carson & Higham 2018, their forward-error bound with u_r = u; Higham
  2002, sec. 12.1, fixed-precision refinement), and that is all the harness
  can measure anyway: b is A x_true rounded to the working precision, so
  the exact solution of the system actually posed already differs from
  x_true by up to kappa u.  x87 ``np.longdouble`` (u_r = 2^-64, not
  u^2 = 2^-106) would cost a non-BLAS matrix-vector product per step, exist
  on x86-64 only, and move no metric, so it is not offered.
* Stopping (the same rule for all three; the normwise backward error
  ``eta_i = ||r_i||_inf / (||A||_inf ||x_i||_inf + ||b||_inf)`` is measured
  from the u_r residual every step anyway):

  - ``converged`` when a correction satisfies ``||d_i||_inf <= u ||x_i||_inf``
    (Carson & Higham 2018's test; reachable when u_r << u, float32 working,
    and then the *only* route to ``converged``: with u_r = 2^-53 the
    limiting forward error is O(u) whatever kappa (their Thm 3.2,
    4 n u_r cond(A, x) + u), so a correction ratio between 0.5 and 1 means
    the iteration is still converging, slowly, not that it has hit a noise
    floor; measured, bfloat16 factors, n = 60, kappa 6e2: the no-gain rule
    stopped at 3119 u after 7 steps, this test at 21 u after 22, errors
    against x_true, which carry the kappa u of rounding b; 0.6 u against
    the exact solution of the float32 system).  With
    u_r = u (float64 working) that test cannot fire (the residual's own
    rounding error is of size u |A||x|, so the corrections level off near
    cond(A) u ||x||), and there is a second route: x_i is backward stable,
    eta_i <= sqrt(n) u, and the correction has stopped shrinking by half,
    ``||d_i|| > 0.5 ||d_{i-1}||`` (d_i is not applied): the corrections are
    then rounding noise (the ``rho_thresh = 0.5`` test of Demmel et al. 2006
    and LAPACK xGERFSX).  LAPACK xSGESV stops at the first x_i with
    eta_i <= sqrt(n) u; that admits a forward error up to about
    sqrt(n) cond(A) u (measured, float32 factors, n = 1000, kappa = 1e6:
    3.5e-9 after 4 steps; 1.8e-11 after 7 with this rule, xGESV 4.4e-11, at
    the same run time as xGESV), so refinement goes on while it still gains.
  - otherwise ``stagnated`` when ``||d_i|| / ||d_{i-1}|| > 0.9`` for two
    consecutive steps, ``diverged`` when a correction grows
    (``||d_i|| > 2 ||d_{i-1}||``, not applied) or is not finite (a GMRES
    breakdown returns a NaN correction, see below), and
    ``maxiter`` after ``maxiter`` corrections: 30 for LU-IR and Cholesky-IR
    (LAPACK xSGESV / xSPOSV's ITERMAX), 10 outer steps for GMRES-IR.

  ``converged`` is True exactly when a converged test fired: ``stagnated``,
  ``diverged`` and ``maxiter`` exits are not converged even if the returned
  x happens to be backward stable (an earlier rule that also accepted
  eta <= sqrt(n) u passed a float32-working maxiter exit at 1994 u).  x is
  then the iterate with the smallest measured backward error (the last one
  unless the iteration diverged).  Measured at n = 60, eight seeds: with
  float64 working ``converged`` agrees with the harness's pass limit on
  kappa_scaled_error; with float32 working every converged x is within
  1 u of the exact solution of the float32 system, and every other exit
  is at 16 u or worse.  So with float32 working the flag is stricter than
  the harness's pass limit (kappa u): a maxiter exit at, say, 0.3 kappa u
  is passed but not converged.
* ``extras``: ``iterations`` (corrections applied to x; one more is
  computed and discarded when the loop stops for no gain or growth),
  ``converged``, ``stop`` (why the loop ended, as above),
  ``iterate`` (how many corrections the returned x holds; equal to
  ``iterations`` unless an earlier iterate was better), ``backward_error``
  (eta of the returned x, measured in u_r), ``factor``, ``u_f``, ``u_r``, and
  for GMRES-IR ``gmres_iterations`` (total inner iterations).
* GMRES-IR: the correction equation is solved by GMRES (Saad & Schultz 1986)
  with modified Gram-Schmidt Arnoldi and Givens rotations, no restart (at
  most n inner iterations), x0 = 0, left-preconditioned with the u_f factors:
  it solves ``M^{-1} A d = M^{-1} r`` with ``M = P^T L U``, stopping when the
  preconditioned residual has fallen by ``tol`` (default 1e-4 for float64,
  1e-2 for float32 working: a correction needs only a few correct digits)
  or after ``n`` steps.  GMRES itself runs in the working precision u.
  Carson & Higham (2017, 2018) assume the preconditioned product
  ``U^{-1} L^{-1} P A v`` is computed in u^2 to guarantee convergence for
  kappa_inf(A) up to about u^{-1/2} u_f^{-1}.  For a float32 working
  precision it is: A v and both substitutions run in float64 (2^-53, finer
  than u^2 = 2^-48) on the factors converted up exactly, and the
  result is rounded once to float32; so is ``M^{-1} r``.  For float64
  working it is computed in u (no faster higher precision is available;
  Amestoy, Buttari, Higham, L'Excellent, Mary & Vieuble 2024 analyse that
  case, with a smaller guaranteed range).  A GMRES that cannot produce a
  correction (non-finite ``M^{-1} r``, or a serious breakdown rho = 0: a
  singular preconditioned operator) returns a NaN correction, so the loop
  stops ``diverged``; only ``r = 0`` and a lucky breakdown (an invariant
  Krylov space: the iterate is exact) are zero-residual exits.  The table
  in the tests (and in the report of this module) is the measured one.
* ``ir-cholesky``: a factorization that breaks down in u_f (A rounded to
  u_f need not be positive definite once kappa(A) u_f >~ 1) raises
  :class:`numpy.linalg.LinAlgError` naming positive definiteness; the
  diagonal shift of Higham & Pranesh (2021) that would let it proceed is not
  applied.  An exactly singular u_f LU (zero pivot) or non-finite factors
  raise LinAlgError as well.
* Complex input is not declared: bfloat16 and float16 have no complex
  counterpart in NumPy/ml_dtypes.

References
----------
E. Carson and N. J. Higham, A new analysis of iterative refinement and its
application to accurate solution of ill-conditioned sparse linear systems,
SIAM J. Sci. Comput. 39(6), 2017 (GMRES-IR).
E. Carson and N. J. Higham, Accelerating the solution of linear systems by
iterative refinement in three precisions, SIAM J. Sci. Comput. 40(2), 2018.
N. J. Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., SIAM,
2002, ch. 12.
N. J. Higham and S. Pranesh, Exploiting lower precision arithmetic in
solving symmetric positive definite linear systems and least squares
problems, SIAM J. Sci. Comput. 43(1), 2021.
N. J. Higham, S. Pranesh and M. Zounon, Squeezing a matrix into half
precision, with an application to solving linear systems, SIAM J. Sci.
Comput. 41(4), 2019.
P. Amestoy, A. Buttari, N. J. Higham, J.-Y. L'Excellent, T. Mary and
B. Vieuble, Five-precision GMRES-based iterative refinement, SIAM J. Matrix
Anal. Appl. 45(1), 2024.
P. Blanchard, N. J. Higham, F. Lopez, T. Mary and S. Pranesh, Mixed
precision block fused multiply-add: error analysis and application to GPU
tensor cores, SIAM J. Sci. Comput. 42(3), 2020.
A. Haidar, S. Tomov, J. Dongarra and N. J. Higham, Harnessing GPU tensor
cores for fast FP16 arithmetic to speed up mixed-precision iterative
refinement solvers, SC18, 2018.
J. Demmel, Y. Hida, W. Kahan, X. S. Li, S. Mukherjee and E. J. Riedy, Error
bounds from extra-precise iterative refinement, ACM TOMS 32(2), 2006.
Y. Saad and M. H. Schultz, GMRES: a generalized minimal residual algorithm
for solving nonsymmetric linear systems, SIAM J. Sci. Stat. Comput. 7(3), 1986.
LAPACK DSGESV / DSPOSV (mixed-precision refinement drivers).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.linalg import LinAlgError
from scipy.linalg import get_lapack_funcs, solve_triangular

from factorbench.accuracy import precision as _precision
from factorbench.impls import NATIVE_REAL, register
from factorbench.impls.results import Solve

__all__ = ["solve_ir_lu", "solve_gmres_ir", "solve_ir_cholesky", "FACTORS", "RESIDUALS"]

#: Factor precisions swept by default (``float64`` is also accepted by name).
FACTORS = ("float32", "bfloat16", "float16")
#: Residual precisions: "double" is float64 (u_r = 2^-53) for either working precision.
RESIDUALS = ("double",)

_KNOWN_FACTORS = ("float64",) + FACTORS
_WORKING = tuple(np.dtype(d) for d in NATIVE_REAL)
_STAGNATION = 0.9  # ||d_i|| / ||d_{i-1}|| above this twice in a row: no progress
_GROWTH = 2.0  # ||d_i|| / ||d_{i-1}|| above this: diverging
_NO_GAIN = 0.5  # Demmel et al. 2006 rho_thresh: less gain than this is no progress
_U_R = 2.0**-53  # residual precision "double"
_BLOCK = 64  # panel width of the emulated (bfloat16/float16) blocked LU

_COMMON = {
    "backend": "numpy",
    "family": "mixed",
    "dtypes": NATIVE_REAL,
    "parameters": {"factor": list(FACTORS), "residual": list(RESIDUALS)},
}


# ---------------------------------------------------------------- validation


def _check(A, b, factor, residual, who):
    """Validate the call; return (A, b as (n,) in A's dtype, u, u_f, factor precision)."""
    A = np.asarray(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ValueError(f"{who} needs a non-empty square matrix, got shape {A.shape}")
    if A.dtype not in _WORKING:
        raise TypeError(f"{who} works in float32 or float64, not {A.dtype}")
    b = np.asarray(b)
    if b.ndim == 2 and b.shape[1] == 1:
        b = b[:, 0]
    if b.shape != (A.shape[0],):
        raise ValueError(f"{who}: b has shape {b.shape}, expected ({A.shape[0]},)")
    if b.dtype.kind == "c":
        raise TypeError(f"{who}: complex right-hand side for a real {A.dtype} matrix")
    if residual not in RESIDUALS:
        raise ValueError(
            f"{who}: unknown residual precision {residual!r}; choose from {', '.join(RESIDUALS)}"
        )
    if factor not in _KNOWN_FACTORS:
        raise ValueError(
            f"{who}: unknown factor precision {factor!r}; choose from {', '.join(_KNOWN_FACTORS)}"
        )
    u = float(np.finfo(A.dtype).eps) / 2
    pf = _precision.precision(factor)
    if pf.u < u:
        raise ValueError(
            f"{who}: factor precision {factor} (u_f = 2^{round(math.log2(pf.u))}) is higher "
            f"than the working precision {A.dtype} (u = 2^{round(math.log2(u))}); "
            "the factorization must be in a lower or equal precision"
        )
    return A, b.astype(A.dtype, copy=False), u, pf.u, pf


def _pow2_scale(A) -> int:
    """e with 2^-e max|A| in [1, 2) (0 for a zero matrix): an exact rescaling."""
    amax = float(np.max(np.abs(A))) if A.size else 0.0
    return math.frexp(amax)[1] - 1 if amax > 0 and math.isfinite(amax) else 0


def _low(A, pf):
    """A scaled by 2^-e and correctly rounded to the emulated format: (A_low, e)."""
    e = _pow2_scale(A)
    with np.errstate(over="ignore"):
        A_low = _precision.store(np.ldexp(A.astype(np.float64), -e), pf.name)
    return A_low, e


def _finite_factors(T, what, who):
    up = T.astype(np.float64)
    if not np.all(np.isfinite(up)):
        raise LinAlgError(f"{who}: the {what} factorization overflowed (non-finite factors)")
    d = np.diagonal(up)
    if np.any(d == 0):
        k = int(np.flatnonzero(d == 0)[0]) + 1
        raise LinAlgError(
            f"{who}: U({k},{k}) is exactly zero in the {what} factorization: "
            f"A is singular in {what}"
        )


# ---------------------------------------------------------------- factorizations


def _lu_solver(A, pf, who, extra=None):
    """LU of A in u_f; returns ``apply(r)``: (P^T L U)^{-1} r in A's (working) dtype.

    With ``extra`` (a dtype) it returns ``(apply, apply_extra)``, the second
    doing the same substitutions in ``extra`` on the same factors (converted
    up exactly) and returning in ``extra``: GMRES-IR's higher-precision
    preconditioned product for a float32 working precision.
    """
    wd = A.dtype
    if not pf.emulated:
        F = np.array(A, dtype=pf.dtype, order="F")
        getrf = get_lapack_funcs("getrf", (F,))
        lu, piv, info = getrf(F, overwrite_a=True)
        if info < 0:
            raise ValueError(f"{who}: illegal value in argument {-info} of getrf")
        _finite_factors(np.triu(lu), pf.name, who)

        def make(dt):
            lu_w = np.asarray(lu, dtype=dt, order="F")  # exact: u_f >= u
            getrs = get_lapack_funcs("getrs", (lu_w,))

            def apply(r):
                x, inf = getrs(lu_w, piv, np.asarray(r, dtype=dt))
                return x

            return apply

        return make(wd) if extra is None else (make(wd), make(np.dtype(extra)))

    A_low, e = _low(A, pf)
    f = _lu_emulated(A_low)
    _finite_factors(f.U, pf.name, who)
    if not np.all(np.isfinite(f.L.astype(np.float64))):
        raise LinAlgError(f"{who}: the {pf.name} factorization overflowed (non-finite factors)")
    perm = np.asarray(f.perm)

    def make(dt):
        L = np.asarray(f.L, dtype=dt)  # exact conversions up
        U = np.asarray(f.U, dtype=dt)

        def apply(r):
            r = np.asarray(r, dtype=dt)
            y = solve_triangular(L, r[perm], lower=True, unit_diagonal=True, check_finite=False)
            return np.ldexp(solve_triangular(U, y, check_finite=False), -e).astype(dt, copy=False)

        return apply

    return make(wd) if extra is None else (make(wd), make(np.dtype(extra)))


def _lu_emulated(A_low):
    """``lu/blocked`` (nb = 64) on the emulated-format matrix: LU(perm, L, U), A[perm] = L U."""
    from factorbench.impls import get

    return get("lu/blocked").func(np.asfortranarray(A_low), block=_BLOCK)


def _cholesky_solver(A, pf, who):
    """Cholesky A = L L^T in u_f; returns ``apply(r)``: A^{-1} r with those factors, in u."""
    wd = A.dtype
    if not pf.emulated:
        F = np.array(A, dtype=pf.dtype, order="F")
        potrf = get_lapack_funcs("potrf", (F,))
        routine = {"f": "spotrf", "d": "dpotrf"}[F.dtype.char]
        c, info = potrf(F, lower=True, clean=True, overwrite_a=True)
        if info > 0:
            raise LinAlgError(
                f"{who}: {routine} failed (info={info}): leading minor of order {info} is "
                f"not positive definite in {pf.name}"
            )
        if info < 0:
            raise ValueError(f"{who}: illegal value in argument {-info} of {routine}")
        c_w = np.asarray(c, dtype=wd, order="F")
        potrs = get_lapack_funcs("potrs", (c_w,))

        def apply(r):
            x, inf = potrs(c_w, r, lower=True)
            return x

        _finite_factors(c, pf.name, who)
        return apply

    from factorbench.impls.textbook.lu import cholesky_textbook

    A_low, e = _low(A, pf)
    try:
        Lf = cholesky_textbook(A_low).L
    except LinAlgError as exc:
        raise LinAlgError(f"{who}: Cholesky in {pf.name} broke down: {exc}") from exc
    _finite_factors(Lf, pf.name, who)
    L = np.asarray(Lf, dtype=wd)

    def apply(r):
        y = solve_triangular(L, r, lower=True, check_finite=False)
        x = solve_triangular(L, y, lower=True, trans="T", check_finite=False)
        return np.ldexp(x, -e).astype(wd, copy=False)

    return apply


# ---------------------------------------------------------------- GMRES


def _gmres(op, z0, tol, maxit):
    """Unrestarted GMRES with MGS Arnoldi for ``op(d) = z0`` from d = 0, in z0's dtype.

    Parameters
    ----------
    op : callable
        (n,) -> (n,): the left-preconditioned operator ``M^{-1} A``.
    z0 : (n,) array
        The preconditioned right-hand side ``M^{-1} r``.
    tol : float
        Stop once the residual 2-norm ``||z0 - op(d_k)||`` <= tol ||z0||
        (read off the Givens-rotated Hessenberg system, Saad 2003, Prop. 6.9).
    maxit : int
        At most this many Arnoldi steps (n: no restart).

    Returns
    -------
    d : (n,) array
        The correction; all NaN when GMRES cannot produce one (non-finite z0,
        or a serious breakdown rho = 0: ``op`` maps the new Krylov vector into
        the span of the previous ones with no component along it, so the
        preconditioned operator is singular to working precision), which
        the refinement loop reports as ``diverged``.  z0 = 0 (r = 0: x is
        already exact) gives d = 0, and a *lucky* breakdown (h_{k+1,k} = 0
        with rho != 0: the Krylov space is invariant and the least-squares
        iterate solves the system exactly) returns that iterate; those are
        the only legitimate zero-residual exits.
    k : int
        Inner iterations (Arnoldi steps) taken.
    """
    wd = z0.dtype
    n = z0.shape[0]
    beta = np.linalg.norm(z0)
    if not np.isfinite(beta):
        return np.full_like(z0, np.nan), 0
    if beta == 0:
        return np.zeros_like(z0), 0  # r = 0: the correction is exactly zero
    V = np.zeros((maxit + 1, n), dtype=wd)
    H = np.zeros((maxit + 1, maxit), dtype=wd)
    cs = np.zeros(maxit, dtype=wd)
    sn = np.zeros(maxit, dtype=wd)
    g = np.zeros(maxit + 1, dtype=wd)
    g[0] = beta
    V[0] = z0 / beta
    k = 0
    while k < maxit:
        w = op(V[k])
        for j in range(k + 1):  # modified Gram-Schmidt
            H[j, k] = V[j] @ w
            w -= H[j, k] * V[j]
        hn = np.linalg.norm(w)
        H[k + 1, k] = hn
        for j in range(k):  # previous rotations on the new column
            t = cs[j] * H[j, k] + sn[j] * H[j + 1, k]
            H[j + 1, k] = -sn[j] * H[j, k] + cs[j] * H[j + 1, k]
            H[j, k] = t
        rho = np.hypot(H[k, k], H[k + 1, k])
        if not np.isfinite(rho) or rho == 0:
            # serious breakdown (singular preconditioned operator) or overflow
            return np.full_like(z0, np.nan), k + 1
        cs[k], sn[k] = H[k, k] / rho, H[k + 1, k] / rho
        H[k, k], H[k + 1, k] = rho, 0
        g[k + 1] = -sn[k] * g[k]
        g[k] = cs[k] * g[k]
        k += 1
        if hn == 0 or abs(g[k]) <= tol * beta or not np.isfinite(g[k]):
            break  # hn == 0 with rho != 0: lucky breakdown, the iterate is exact
        V[k] = w / hn
    y = solve_triangular(H[:k, :k], g[:k], check_finite=False)
    return (V[:k].T @ y).astype(wd, copy=False), k


# ---------------------------------------------------------------- refinement


def _refine(A, b, u, correct, maxiter):
    """The iterative-refinement loop shared by every variant (module docstring).

    ``correct(r)`` returns (d, inner iterations) for a working-precision r;
    x0 is ``correct(b)``.  Returns (x, extras).
    """
    wd = A.dtype
    n = A.shape[0]
    A_r = A.astype(np.float64, copy=False)  # u_r = float64
    b_r = b.astype(np.float64)
    normA = np.linalg.norm(A_r, np.inf)
    normb = np.linalg.norm(b_r, np.inf)
    tol = math.sqrt(n) * u
    fixed = _U_R >= u  # u_r == u (float64 working): the noise-floor rules apply
    x, inner = correct(b)
    x = x.astype(wd, copy=False)
    iters, slow, dprev, stop, best = 0, 0, None, None, None
    while True:
        xr = x.astype(np.float64)
        r = b_r - A_r @ xr
        xn = float(np.linalg.norm(xr, np.inf))
        eta = _eta(float(np.linalg.norm(r, np.inf)), normA * xn + normb)
        if stop == "converged" or best is None or eta < best[0]:
            best = (eta, x, iters)
        if stop is not None:
            break
        if iters >= maxiter:
            stop = "maxiter"
            break
        d, k = correct(r.astype(wd))
        inner += k
        dn = float(np.linalg.norm(d, np.inf))
        if not math.isfinite(dn):
            stop = "diverged"
            break
        if fixed and eta <= tol and dprev is not None and dn > _NO_GAIN * dprev:
            stop = "converged"  # backward stable, and the corrections are rounding noise
            best = (eta, x, iters)
            break
        if dprev is not None and dn > _GROWTH * dprev:
            stop = "diverged"  # the growing correction is not applied
            break
        x = x + d
        iters += 1
        if dn <= u * xn:
            stop = "converged"  # the residual of x is still measured at the loop's top
        else:
            slow = slow + 1 if dprev is not None and dn > _STAGNATION * dprev else 0
            if slow >= 2:
                stop = "stagnated"
        dprev = dn
    eta, x, iterate = best
    converged = stop == "converged"
    return x, {"iterations": iters, "converged": bool(converged), "stop": stop,
               "iterate": iterate, "backward_error": float(eta), "inner": inner}


def _eta(rn, denom):
    if denom == 0:
        return 0.0 if rn == 0 else math.inf
    return float(rn / denom) if math.isfinite(rn) else math.inf


def _extras(ex, pf, gmres=False):
    inner = ex.pop("inner")
    ex.update(factor=pf.name, u_f=pf.u, u_r=_U_R)
    if gmres:
        ex["gmres_iterations"] = inner
    return ex


# ---------------------------------------------------------------- impls


@register("solve", "ir-lu", **_COMMON)
def solve_ir_lu(A, b, *, factor="float32", residual="double", maxiter=30) -> Solve:
    """LU-based iterative refinement in three precisions (LU-IR).

    Parameters
    ----------
    A : (n, n) float32 or float64 array, the working precision u; not modified.
    b : (n,) array, not modified.
    factor : {"float32", "bfloat16", "float16", "float64"}
        Precision u_f of the LU factorization with partial pivoting: LAPACK
        xGETRF for native formats, the emulated ``lu/blocked`` (nb = 64,
        block-FMA rounding) for bfloat16 and float16.  Must not be higher
        than the working precision.
    residual : {"double"}
        Residual precision u_r: float64.
    maxiter : int
        Most corrections applied (LAPACK xSGESV's ITERMAX, 30).

    Returns
    -------
    Solve
        x (n,) in the working precision; extras ``iterations``, ``converged``,
        ``stop``, ``backward_error``, ``factor``, ``u_f``, ``u_r``.

    Raises
    ------
    ValueError
        Non-square A, unknown factor or residual precision, or a factor
        precision higher than the working one.
    LinAlgError
        The u_f factorization is exactly singular or overflowed.

    Notes
    -----
    Converges to the limiting accuracy when kappa_inf(A) u_f is safely below 1
    (Carson & Higham 2018; Higham 2002, sec. 12.1): about
    kappa < 1e7 for float32, < 2e3 for float16 and < 2.5e2 for bfloat16 factors.
    """
    who = "solve/ir-lu"
    A, b, u, _, pf = _check(A, b, factor, residual, who)
    apply = _lu_solver(A, pf, who)
    x, ex = _refine(A, b, u, lambda r: (apply(r), 0), maxiter)
    return Solve(x, extras=_extras(ex, pf))


@register("solve", "gmres-ir", **_COMMON)
def solve_gmres_ir(A, b, *, factor="float32", residual="double", maxiter=10,
                   tol=None) -> Solve:
    """GMRES-based iterative refinement (GMRES-IR) with low-precision LU preconditioning.

    Parameters
    ----------
    A : (n, n) float32 or float64 array, the working precision u; not modified.
    b : (n,) array, not modified.
    factor, residual : as :func:`solve_ir_lu`.
    maxiter : int
        Most outer corrections (10).
    tol : float, optional
        Relative tolerance of the inner GMRES on the preconditioned residual;
        default 1e-4 for float64 and 1e-2 for float32 working precision.

    Returns
    -------
    Solve
        x (n,) in the working precision; extras as :func:`solve_ir_lu` plus
        ``gmres_iterations``, the total number of inner GMRES iterations.

    Raises
    ------
    ValueError, LinAlgError
        As :func:`solve_ir_lu`.

    Notes
    -----
    Each correction solves ``U^{-1} L^{-1} P A d = U^{-1} L^{-1} P r`` by
    unrestarted MGS-GMRES in the working precision (module docstring), x0 from
    the LU factors; for float32 working the preconditioned products are
    computed in float64 and rounded to float32.  Carson & Higham (2017; 2018) prove
    convergence to the limiting accuracy for kappa_inf(A) up to about
    u^{-1/2} u_f^{-1} when the preconditioned product is computed in u^2.
    """
    who = "solve/gmres-ir"
    A, b, u, _, pf = _check(A, b, factor, residual, who)
    tol = (1e-4 if A.dtype == np.float64 else 1e-2) if tol is None else float(tol)
    n = A.shape[0]
    if A.dtype == np.float64:
        apply = _lu_solver(A, pf, who)
        precond = apply

        def op(v):
            return apply(A @ v)
    else:  # float32 working: U^{-1} L^{-1} P (A v) in float64, rounded once to u
        apply, apply64 = _lu_solver(A, pf, who, extra=np.float64)
        A64 = A.astype(np.float64)

        def precond(r):
            return apply64(r).astype(A.dtype)

        def op(v):
            return apply64(A64 @ v.astype(np.float64)).astype(A.dtype)
    first = [True]

    def correct(r):
        if first[0]:  # x0 by substitution with the LU factors, as Carson & Higham do
            first[0] = False
            return apply(r), 0
        return _gmres(op, precond(r), tol, n)

    x, ex = _refine(A, b, u, correct, maxiter)
    return Solve(x, extras=_extras(ex, pf, gmres=True))


@register("solve", "ir-cholesky", structure="spd", **_COMMON)
def solve_ir_cholesky(A, b, *, factor="float32", residual="double", maxiter=30) -> Solve:
    """Cholesky-based iterative refinement for SPD A, factored in low precision.

    Parameters
    ----------
    A : (n, n) symmetric positive definite float32 or float64 array; only its
        lower triangle is factored (the residual uses all of A); not modified.
    b : (n,) array, not modified.
    factor : {"float32", "bfloat16", "float16", "float64"}
        Precision u_f of the Cholesky factorization: LAPACK xPOTRF for native
        formats, the emulated ``cholesky/textbook`` for bfloat16 and float16.
    residual, maxiter : as :func:`solve_ir_lu` (ITERMAX 30 as LAPACK xSPOSV).

    Returns
    -------
    Solve
        x (n,) in the working precision; extras as :func:`solve_ir_lu`.

    Raises
    ------
    ValueError
        As :func:`solve_ir_lu`.
    LinAlgError
        A rounded to u_f is not positive definite (the message says so); no
        shift is applied (Higham & Pranesh 2021 would add one).

    Notes
    -----
    Higham 2002, sec. 12.1 with the Cholesky backward error of ch. 10;
    Higham & Pranesh (2021).
    """
    who = "solve/ir-cholesky"
    A, b, u, _, pf = _check(A, b, factor, residual, who)
    apply = _cholesky_solver(A, pf, who)
    x, ex = _refine(A, b, u, lambda r: (apply(r), 0), maxiter)
    return Solve(x, extras=_extras(ex, pf))
