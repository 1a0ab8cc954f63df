"""Randomized least squares: sketch-and-solve and sketch-and-precondition (LSQR).

Both draw a sketch ``S`` (d x m, d = gamma * n clipped to m, gamma as in Blendenpik; see
:mod:`~factorbench.impls.randomized._sketch`) and factor the small sketch
``S A = Q_s R`` (d x n) with the namespace's Householder QR
(``xp.linalg.qr``; LAPACK xGEQRF + xORGQR on NumPy).  They are written once
against the array API standard plus ``_xp.trsm``, so the same functions run
on NumPy, on CuPy and on array-api-strict.  Registered with backend "numpy",
family "randomized", native real and complex dtypes:

==============================  ======  ===========================  ===============================
id                              stable  parameters                   method
==============================  ======  ===========================  ===============================
lstsq/sketch-solve              no      sketch sparse|gaussian|srht  x = argmin ||S (A x - b)||
                                        gamma 4
lstsq/sketch-precondition       yes     sketch sparse|gaussian|srht  LSQR on A R^{-1}, warm-started
                                        gamma 4                     at the sketch-and-solve x
==============================  ======  ===========================  ===============================

Why sketch-and-solve is marked unstable: its residual is within a factor
(1 + eps) of the optimum (eps ~ sqrt(n / d) for a subspace embedding;
Sarlos 2006; Woodruff 2014, ch. 2), but its solution differs from the
least-squares x by ``(S A)^+ S r``, of size about eps ||r|| / sigma_min(A).
So its forward error carries ``kappa ||r|| / (||A|| ||x||)`` with an O(1)
constant where a backward-stable solver has ``u kappa^2 ||r|| / (||A|| ||x||)``:
larger by about eps / (u kappa), orders of magnitude whenever b is not
consistent.  It is accurate when the residual is at the rounding level.

Choices where the literature leaves options, and why:

* Sketch-and-precondition iterates on the right-preconditioned problem
  ``min ||A R^{-1} y - b||`` in the variable y with LSQR applied to the
  operator ``M = A R^{-1}`` (matrix-vector products and triangular solves,
  M never formed) and forms ``x = R^{-1} y`` once at the end: the form that
  Meier, Nakatsukasa, Townsend & Webb (SIMAX 2024) recommend over
  preconditioned LSQR updating x itself (Blendenpik's and LSRN's codes).
* It starts from the sketch-and-solve solution (y0 = Q_s^H S b, Rokhlin &
  Tygert 2008), which Meier et al. found experimentally to give much more
  accurate solutions than the zero start.  The warm start is what makes the
  method forward stable here, and the reason is visible in the rounding
  errors: a computed product ``A (R^{-1} v)`` carries an error of about
  ``u kappa(A) ||M|| ||v||`` (the triangular solve is backward stable in R,
  not in M), so LSQR from zero, where v ranges over the whole solution,
  stalls at a y with relative error ~ u kappa and x = R^{-1} y is then off
  by ~ u kappa^2: measured on 2000 x 50, kappa = 1e10, forward error 2.3
  from zero (57 iterations) against 1.6e-8 warm-started and 1.8e-8 for
  xGELS.  From the warm start LSQR only computes the correction
  dy = y - y0, of size ~ eps ||r|| (the sketch-and-solve error), so the same
  relative error on it costs ~ u kappa^2 ||r|| / ||A|| in x: the kappa^2
  term that every backward-stable solver has (Higham 2002, Thm 20.1), and
  for a consistent b it vanishes.  Measured (tests and the table below):
  the forward error is within a small factor of Householder QR's (xGELS)
  for kappa up to 1e10 in float64; it degrades beyond (73x xGELS's at
  kappa = 1e13, where u kappa ~ 1e-3 spoils R itself).  A variant with a
  proof of backward stability adds a refinement step (Epperly, Meier &
  Nakatsukasa 2024, FOSSILS / SPIR); it is not done here.
* The sketch of b is ``S b`` drawn from the same S as ``S A``.  y0 = Q_s^H S b
  is the sketch-and-solve solution in the y variable (R x0 = y0), so the warm
  start costs one (d x n) product, and x0 = R^{-1} y0 one triangular solve.
* LSQR (Paige & Saunders 1982) as ``scipy.sparse.linalg.lsqr`` (damp = 0),
  with its stopping rules: test 1 ``||r|| <= btol ||b|| + atol ||M|| ||y||``
  (consistent systems), test 2 ``||M^H r|| <= atol ||M|| ||r||`` (least
  squares), test 3 ``cond(M) >= conlim``, and their machine-precision forms
  with the working precision's eps (the machine-precision form of test 2,
  ``test2 <= eps``, is checked first, so the effective atol is eps = 2u).
  ``atol = btol = u`` of the working
  precision: test 2 then certifies a normwise backward error of at most
  u ||M|| for the preconditioned problem (the perturbation
  ``r r^H M / ||r||^2`` makes y exact; Higham 2002, sec. 20.7), the accuracy of the
  data, which is Paige & Saunders' recommendation for atol; a larger
  multiple would let the forward error exceed a backward-stable solver's at
  kappa = 1.  ``conlim = 1/u``: M is well conditioned by construction, so
  test 3 only fires when the preconditioner failed (A numerically rank
  deficient).  LSQR's scalars are kept on the host in double (each iteration
  needs two norms there anyway for its tests); the vectors stay in the
  working precision.
  For a consistent b (residual at the rounding level) test 1 fires after
  one or two iterations: the warm start is already backward stable, and
  its forward error was 2-10x xGELS's in the runs measured (within the
  kappa u bound both obey); a few more iterations would bring it to 1x,
  at the price of a smaller btol than the data's accuracy justifies.
* Convergence: the singular values of M lie in [1 - eps, 1 + eps] for an
  eps-subspace embedding, so LSQR (CG on the normal equations of M) reduces
  the error by about eps per iteration, eps ~ sqrt(n / d) = 0.5 at gamma 4.
  Besides SciPy's tests, the iteration stops once a step changes y by less
  than u ||y|| (istop 8, :func:`lsqr`'s ``stagnation``): with kappa(M) = O(1)
  the error is within a constant of the step, so later steps cannot change
  the rounded solution.  Test 2 alone, relative to ||r||, waits far longer on
  a nearly consistent problem: at 20000 x 200, kappa = 1e10, ||r|| = 1e-10
  ||Ax||, 44 iterations against 19, with the same forward error (measured;
  the same held at kappa 1e4 to 1e13 and in float32 and complex128).
  ``maxiter`` (default 100) caps it; ``extras`` records ``iterations``,
  ``converged`` and ``istop``.
* Accuracy, measured against xGELS (4000 x 100, srht): the forward error
  stays within Wedin's bound u (kappa + kappa^2 eta) that every
  backward-stable solver obeys, but not always near xGELS's own error,
  which is usually far below that bound: 0.6x-1x of xGELS at kappa = 1e10
  with ||r|| = 1e-10 ||Ax||, 60x at kappa = 1e8 with ||r|| = 1e-6 ||Ax||
  (complex), 3.6e6x at kappa = 1e10 with ||r|| = 1e-3 ||Ax|| (6.6e-2
  against the bound 1.6).  This is the loss of backward stability Meier et
  al. (2024) prove; FOSSILS/SPIR would remove it.
* ``A`` and ``b`` are only read (any memory order, read-only allowed); b is
  cast to A's precision (a complex b for a real A is refused) and x comes
  back in A's dtype.  lstsq/sketch-solve declares layout "C" (SciPy's
  sparse-times-dense product works on C-ordered rows and copies an
  F-ordered A), lstsq/sketch-precondition layout "F": its two products per
  iteration, ``A v`` and ``A^H w``, took 0.9 ms on F order against 1.4 ms on
  C order at 20000 x 200 (``A^T w`` on a C-ordered A is the slow one).

Where the time goes (reference machine, 2 cores, float64, 20000 x 200,
kappa = 1e10, ||r|| = 1e-10 ||A x|| orthogonal to range(A), min of 7 in one
process, nothing else running): xGELS 66-83 ms, xGELSD 70-72 ms;
sketch-precondition 45-48 ms with the srht sketch (gamma 4 to 12, 19 to 11
iterations), 65-72 ms with the sparse one, forward error 0.6-1x xGELS's.
Each LSQR iteration reads A twice (``A v`` 0.5 ms and ``A^H w`` 0.35 ms,
memory-bound); the srht sketch is one multithreaded DCT of A (about 17 ms),
the sparse sketch SciPy's single-threaded CSR-times-dense product (35 ms),
the Gaussian sketch a 2 d m n GEMM plus drawing d m normals (250 ms).

References
----------
T. Sarlos, Improved approximation algorithms for large matrices via random
projections, FOCS 2006.
D. P. Woodruff, Sketching as a tool for numerical linear algebra, Found.
Trends Theor. Comput. Sci. 10, 2014.
V. Rokhlin and M. Tygert, A fast randomized algorithm for overdetermined
linear least-squares regression, PNAS 105(36), 2008.
H. Avron, P. Maymounkov and S. Toledo, Blendenpik: supercharging LAPACK's
least-squares solver, SIAM J. Sci. Comput. 32(3), 2010.
X. Meng, M. A. Saunders and M. W. Mahoney, LSRN: a parallel iterative solver
for strongly over- or underdetermined systems, SIAM J. Sci. Comput. 36(2), 2014.
C. C. Paige and M. A. Saunders, LSQR: an algorithm for sparse linear
equations and sparse least squares, ACM TOMS 8(1), 1982.
M. Meier, Y. Nakatsukasa, A. Townsend and M. Webb, Are sketch-and-precondition
least squares solvers numerically stable?, SIAM J. Matrix Anal. Appl. 45, 2024.
E. N. Epperly, M. Meier and Y. Nakatsukasa, Fast randomized least-squares
solvers can be just as accurate and stable as classical direct solvers,
arXiv preprint, 2024.
N. J. Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., SIAM 2002.
"""

from __future__ import annotations

import math

from factorbench.accuracy.matrices import normalize_rng
from factorbench.impls import NATIVE_COMPLEX, NATIVE_REAL, register
from factorbench.impls.blocked._xp import trsm, work_copy
from factorbench.impls.randomized._sketch import (
    SKETCHES,
    check_count,
    check_matrix,
    ct,
    device,
    is_complex,
    namespace,
    sketch,
)
from factorbench.impls.results import Lstsq

__all__ = ["lstsq_sketch_solve", "lstsq_sketch_precondition", "lsqr", "MAXITER"]

_COMMON = {"backend": "numpy", "family": "randomized", "dtypes": NATIVE_REAL + NATIVE_COMPLEX}
_SKETCH_PARAMS = {"sketch": ["sparse", "gaussian", "srht"], "gamma": [4]}

#: LSQR's iteration cap: about twice the ~50 iterations eps = 0.5 needs from O(1) to u.
MAXITER = 100


# --------------------------------------------------------------------- input


def _input(A, b, who):
    """(xp, b as an (m, 1) column in A's dtype) after checking A and b."""
    xp = namespace(A)
    check_matrix(xp, A, who)
    m, n = A.shape
    if m < n:
        raise ValueError(f"{who} needs an overdetermined system, m >= n; "
                         f"got shape {tuple(A.shape)}")
    b = xp.asarray(b, device=device(A))
    if b.ndim == 2 and b.shape[1] == 1:
        b = xp.reshape(b, (-1,))
    if b.ndim != 1 or b.shape[0] != m:
        raise ValueError(f"{who}: b must have shape ({m},) to match A {tuple(A.shape)}, "
                         f"got {tuple(b.shape)}")
    if xp.isdtype(b.dtype, "complex floating") and not is_complex(xp, A):
        raise TypeError(f"{who}: complex right-hand side for a real {A.dtype} matrix")
    if not xp.isdtype(b.dtype, ("real floating", "complex floating", "integral")):
        raise TypeError(f"{who}: b must be numeric, not {b.dtype}")
    return xp, xp.reshape(xp.astype(b, A.dtype, copy=False), (m, 1))


def _rows(sketch_kind, gamma, m, n):
    """The sketch dimension d = gamma * n clipped to m, after checking the parameters."""
    if sketch_kind not in SKETCHES:
        raise ValueError(f"sketch must be one of {', '.join(SKETCHES)}; got {sketch_kind!r}")
    gamma = check_count("gamma", gamma)
    return min(gamma * n, m)


def _sketch_qr(xp, A, b, kind, d, rng):
    """(Q_s (d, n), R (n, n), S b (d, 1)) for ``S A = Q_s R`` with a fresh sketch S."""
    m = A.shape[0]
    S = sketch(kind, d, m, rng, A)
    Q, R = xp.linalg.qr(S.left(A))
    # Fortran order on NumPy: the BLAS triangular solves then use R in place.
    return Q, work_copy(xp, R), S.left(b)


def _empty(xp, A):
    return Lstsq(xp.zeros((0,), dtype=A.dtype, device=device(A)))


# --------------------------------------------------------- lstsq/sketch-solve


@register("lstsq", "sketch-solve", stable=False, parameters=_SKETCH_PARAMS, layout="C", **_COMMON)
def lstsq_sketch_solve(A, b, *, sketch="sparse", gamma=4, rng=None):
    """Sketch-and-solve least squares: ``x = argmin ||S (A x - b)||_2`` by QR of S A.

    Parameters
    ----------
    A : array (m, n), m >= n, full column rank
        float32, float64, complex64 or complex128, of any array API namespace.
        Not modified.
    b : array (m,) (or (m, 1))
        Cast to A's dtype.  Not modified.
    sketch : {"sparse", "gaussian", "srht"}
        The sketching operator (:mod:`._sketch`).
    gamma : int >= 1
        Sketch rows d = gamma * n, clipped to m.
    rng : None, int, SeedSequence or numpy.random.Generator
        Normalised once; a seed gives bit-identical results.

    Returns
    -------
    Lstsq
        x (n,) in A's dtype; ``extras["d"]`` the sketch dimension.

    Notes
    -----
    Sarlos 2006; Woodruff 2014, ch. 2; no LAPACK driver (xGELS on the
    sketched problem).  ``S A = Q_s R`` by Householder QR (d x n), then
    ``x = R^{-1} (Q_s^H S b)``.  With probability 1 - delta for an
    eps-subspace embedding, ``||A x - b|| <= (1 + eps)/(1 - eps) min ||A z - b||``,
    eps ~ sqrt(n / d); the forward error carries ``eps kappa ||r|| / (||A|| ||x||)``
    (module docstring), so the method is registered ``stable=False``.
    Cost: the sketch (O(m n) sparse, O(m n log m) srht, 2 d m n gaussian) and
    2 d n^2 for the small QR, against 2 m n^2 for xGELS.
    """
    xp, bcol = _input(A, b, "lstsq/sketch-solve")
    m, n = A.shape
    d = _rows(sketch, gamma, m, n)
    if n == 0:
        return _empty(xp, A)
    rng = normalize_rng(rng)
    Q, R, Sb = _sketch_qr(xp, A, bcol, sketch, d, rng)
    x = trsm(xp, R, ct(xp, Q) @ Sb, lower=False)
    return Lstsq(xp.reshape(x, (n,)), extras={"d": d})


# -------------------------------------------------- lstsq/sketch-precondition


@register("lstsq", "sketch-precondition", parameters=_SKETCH_PARAMS, layout="F", **_COMMON)
def lstsq_sketch_precondition(A, b, *, sketch="sparse", gamma=4, maxiter=MAXITER, rng=None):
    """Sketch-and-precondition least squares: LSQR on ``A R^{-1}``, warm-started.

    Parameters
    ----------
    A, b, sketch, gamma, rng
        As :func:`lstsq_sketch_solve` (A and b are not modified).
    maxiter : int >= 0
        LSQR iteration cap.

    Returns
    -------
    Lstsq
        x (n,) in A's dtype.  ``extras``: ``iterations`` (LSQR steps),
        ``converged`` (the start was exact, or test 1 or 2 or their
        machine-precision forms fired),
        ``istop`` (LSQR's reason, as in SciPy: 0 the start was exact, 1 test 1,
        2 test 2, 3 cond(M) >= conlim, 4-6 their machine-precision forms,
        7 the cap, -1 a non-finite value) and ``d``.

    Notes
    -----
    Rokhlin & Tygert 2008; Blendenpik (Avron, Maymounkov & Toledo 2010);
    LSRN (Meng, Saunders & Mahoney 2014); in the form and with the start
    analysed by Meier, Nakatsukasa, Townsend & Webb 2024 (module docstring).
    No LAPACK driver; compare xGELS.

    1. Sketch and factor: ``S A = Q_s R`` (d x n Householder QR).
    2. Warm start at the sketch-and-solve solution: ``y0 = Q_s^H S b``
       (x0 = R^{-1} y0), residual ``r0 = b - A x0``.
    3. LSQR on ``min ||M dy - r0||`` with ``M = A R^{-1}``, applied as
       ``A (R^{-1} v)`` and ``R^{-H} (A^H w)``: kappa(M) <= (1 + eps)/(1 - eps)
       with high probability, eps ~ sqrt(n / d), so convergence is geometric
       at rate about eps whatever kappa(A) (until kappa(A) ~ 1/u, where
       S A's rounding errors reach its smallest singular value).
    4. ``x = R^{-1} (y0 + dy)``, formed once.

    Cost: the sketch and 2 d n^2 for its QR, then per iteration two passes
    over A (``A v`` and ``A^H w``, 4 m n flops) and two triangular solves
    (2 n^2): about 20 iterations at gamma 4 (the step test), memory-bound
    matrix-vector products against the 2 m n^2 compute-bound flops of xGELS.
    """
    xp, bcol = _input(A, b, "lstsq/sketch-precondition")
    m, n = A.shape
    d = _rows(sketch, gamma, m, n)
    maxiter = check_count("maxiter", maxiter, minimum=0)
    if n == 0:
        return _empty(xp, A)
    rng = normalize_rng(rng)
    Q, R, Sb = _sketch_qr(xp, A, bcol, sketch, d, rng)
    y0 = ct(xp, Q) @ Sb
    x0 = trsm(xp, R, xp.asarray(y0, copy=True), lower=False)
    r0 = bcol - A @ x0
    cplx = is_complex(xp, A)

    def matvec(v):  # M v = A (R^{-1} v)
        return A @ trsm(xp, R, xp.asarray(v, copy=True), lower=False)

    def rmatvec(w):  # M^H w = R^{-H} (A^H w); A^H w as conj(A^T conj(w)): no copy of A
        z = xp.conj(A.T @ xp.conj(w)) if cplx else A.T @ w
        return trsm(xp, R, z, lower=False, conj_trans=True)

    u = float(xp.finfo(A.dtype).eps) / 2
    dy, info = lsqr(xp, matvec, rmatvec, r0, n, atol=u, btol=u, conlim=1 / u, maxiter=maxiter,
                    bnorm=float(xp.linalg.vector_norm(bcol)), y0=y0, stagnation=True)
    x = trsm(xp, R, y0 + dy, lower=False)
    info["d"] = d
    return Lstsq(xp.reshape(x, (n,)), extras=info)


# ---------------------------------------------------------------------- LSQR


def _sym_ortho(a: float, b: float):
    """Stable Givens rotation (c, s, r) with ``[c s; -s c] [a; b] = [r; 0]``
    (Choi 2006, SymOrtho, as ``scipy.sparse.linalg.lsqr``)."""
    if b == 0:
        return math.copysign(1.0, a), 0.0, abs(a)
    if a == 0:
        return 0.0, math.copysign(1.0, b), abs(b)
    if abs(b) > abs(a):
        tau = a / b
        s = math.copysign(1.0, b) / math.sqrt(1 + tau * tau)
        return s * tau, s, b / s
    tau = b / a
    c = math.copysign(1.0, a) / math.sqrt(1 + tau * tau)
    return c, c * tau, a / c


def lsqr(xp, matvec, rmatvec, b, n, *, atol, btol, conlim, maxiter, bnorm=None, y0=None,
         stagnation=False):
    """LSQR for ``min ||M x - b||_2`` (damp = 0), written against the array namespace.

    Parameters
    ----------
    xp : array namespace
    matvec, rmatvec : callables
        ``v (n, 1) -> M v (m, 1)`` and ``w (m, 1) -> M^H w (n, 1)``; neither may
        modify its argument.
    b : array (m, 1)
    n : int
        Columns of M.
    atol, btol, conlim : float
        SciPy's stopping tolerances (module docstring).
    maxiter : int
        Iteration cap.
    bnorm : float, optional
        ``||b||`` of the original problem when ``b`` is the residual of a
        starting point (SciPy's ``x0``); default ``||b||``.
    y0 : array (n, 1), optional
        That starting point: test 1 then uses ``||y0 + x||``, the norm of the
        full solution, where SciPy estimates the norm of the correction only.
    stagnation : bool
        Also stop (istop 8, converged) once a step changes the solution by
        less than the working precision's u relative, ``||dx_k|| <= u ||y0 +
        x||``.  Only sound where M is well conditioned (a preconditioned
        operator): the error is then within a constant of the step, so later
        steps cannot change the rounded solution.  Test 2 alone asks
        ``||M^H r|| <= atol ||M|| ||r||`` relative to the residual, which for a
        nearly consistent problem (``||r|| = 1e-10 ||b||``) is reached only
        long after the solution has stopped changing: at 20000 x 200, kappa =
        1e10, 44 iterations against 19 with this test, the same forward error.

    Returns
    -------
    x : array (n, 1)
        The correction (the solution when the start is zero).
    info : dict
        ``iterations``, ``converged`` (istop 1, 2, 4, 5 or 8) and ``istop``
        (SciPy's codes; -1: a non-finite norm stopped it).

    Notes
    -----
    Paige & Saunders 1982 (ACM TOMS 8), Alg. LSQR, the transcription of
    ``scipy.sparse.linalg.lsqr`` with damp = 0: Golub-Kahan bidiagonalization
    of M started from b, a QR of the bidiagonal by Givens rotations, the
    solution updated by the search directions w.  Every scalar is a host
    double; the vectors stay in b's dtype and device.  The machine-precision
    tests ``1 + t <= 1`` use the working precision's eps, not double's.
    """
    eps = float(xp.finfo(b.dtype).eps)
    ctol = 1.0 / conlim if conlim > 0 else 0.0
    norm = xp.linalg.vector_norm
    beta = float(norm(b))
    bnorm = beta if bnorm is None else bnorm
    x = xp.zeros((n, 1), dtype=b.dtype, device=device(b))
    info = {"iterations": 0, "converged": True, "istop": 0}
    if beta == 0 or bnorm == 0:
        return x, info
    u = b / beta
    v = rmatvec(u)
    alfa = float(norm(v))
    if not math.isfinite(alfa) or not math.isfinite(beta):
        return x, {"iterations": 0, "converged": False, "istop": -1}
    if alfa == 0:
        return x, info
    v = v / alfa
    w = xp.asarray(v, copy=True)
    rhobar, phibar = alfa, beta
    anorm = ddnorm = 0.0
    istop = 0
    itn = 0
    while itn < maxiter:
        itn += 1
        # Golub-Kahan: beta u = M v - alfa u, alfa v = M^H u - beta v
        u = matvec(v) - alfa * u
        beta = float(norm(u))
        if beta > 0:
            u = u / beta
            anorm = math.sqrt(anorm * anorm + alfa * alfa + beta * beta)
            v = rmatvec(u) - beta * v
            alfa = float(norm(v))
            if alfa > 0:
                v = v / alfa
        if not (math.isfinite(alfa) and math.isfinite(beta)):
            istop = -1
            break
        # Givens rotation eliminating beta from the lower bidiagonal
        cs, sn, rho = _sym_ortho(rhobar, beta)
        theta = sn * alfa
        rhobar = -cs * alfa
        phi = cs * phibar
        phibar = sn * phibar
        tau = sn * phi
        wnorm = float(norm(w))
        ddnorm += (wnorm / rho) ** 2  # ||d_k||^2, d_k = w / rho
        step = abs(phi / rho) * wnorm
        x = x + (phi / rho) * w
        w = v - (theta / rho) * w
        # stopping tests (rnorm = phibar with damp = 0)
        xnorm = float(norm(x if y0 is None else y0 + x))
        acond = anorm * math.sqrt(ddnorm)
        rnorm = phibar
        arnorm = alfa * abs(tau)
        test1 = rnorm / bnorm
        test2 = arnorm / (anorm * rnorm) if anorm * rnorm > 0 else 0.0
        test3 = 1.0 / acond if acond > 0 else math.inf
        t1 = test1 / (1 + anorm * xnorm / bnorm)
        rtol = btol + atol * anorm * xnorm / bnorm
        if itn >= maxiter:
            istop = 7
        if stagnation and step <= eps / 2 * xnorm:
            istop = 8
        if test3 <= eps:
            istop = 6
        if test2 <= eps:
            istop = 5
        if t1 <= eps:
            istop = 4
        if test3 <= ctol:
            istop = 3
        if test2 <= atol:
            istop = 2
        if test1 <= rtol:
            istop = 1
        if istop:
            break
    if istop == 0:  # maxiter = 0: nothing was tested
        istop = 7
    return x, {"iterations": itn, "converged": istop in (1, 2, 4, 5, 8), "istop": istop}
