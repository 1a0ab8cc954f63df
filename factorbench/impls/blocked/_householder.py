"""Householder kernels of the blocked QR, written once in the array API standard.

The LAPACK building blocks of a blocked Householder QR and of its explicit Q,
each over an array namespace ``xp`` (NumPy, CuPy, array-api-strict):

- :func:`larfg`   the reflector's scalars (xLARFG: beta real, H = I - tau v v^H);
- :func:`geqr2`   unblocked QR of a narrow panel, one Python step per column (xGEQR2);
- :func:`larft`   the triangular factor T of the compact WY form (xLARFT);
- :func:`larfb`   a block reflector applied to a block of columns (xLARFB);
- :func:`geqrt3`  recursive QR of a panel together with its T (xGEQRT3);
- :func:`geqrf`   blocked QR (xGEQRF; Schreiber & Van Loan 1989);
- :func:`orgqr`   thin Q by backward accumulation of the block reflectors (xORGQR).

Storage is LAPACK's: a factored panel P (p, b) holds R on and above its
diagonal and the essential part of each Householder vector below it, the unit
diagonal implicit.  The vectors are never copied into an explicit V: the
kernels read ``V = [V1; V2]`` as the (b, b) unit lower triangle ``V1`` built
from ``P[:b]`` and the plain block ``V2 = P[b:]``, and split every product
with V in two, as xLARFB does with its TRMM and GEMM.

Every kernel works in the dtype of the matrix it is given, scalars included
(0-d arrays or NumPy scalars of that dtype, never Python floats computed in
double).  Arrays are changed through ``__setitem__`` on slices only and the
changed array is returned: whether a slice is a view is the backend's
business, and on NumPy writing an updated view back onto itself costs
nothing (NumPy skips the self-assignment).

Emulated float16/bfloat16 (NumPy only; the shared mechanism of
:mod:`factorbench.impls.textbook._emulate`): the kernels that take ``rnd``
are given a float32 work array holding values of the format and round to it
after every operation, a block product accumulated in float32 and rounded
once per entry (the block FMA model of Blanchard et al. 2020):

- :func:`geqr2`: per column, as the textbook ``qr/householder`` does
  (``_kernels.house``/``householder_inplace``): the norm of the column below
  the diagonal, beta, tau, ``alpha - beta`` and each entry of v; then
  ``w = tau (v^T C)`` (the product rounded, then its scaling) and each entry
  of the rank-1 update ``C - v w``;
- :func:`larft`: the Gram matrix ``V^T V`` once, and per column of T the
  product ``T[:i, :i] S[:i, i]`` and its scaling by ``-tau_i``;
- :func:`larfb`: ``Y = V^T C``, ``op(T) Y``, and ``C - V Y`` (the V1 and V2
  row blocks each), each once per entry;
- :func:`geqrt3`: the coupling ``G = V_1^T V_2``, ``G T2`` and
  ``T1 (G T2)`` of the joined T;
- :func:`orgqr`: ``V2^T Q``, ``T (V2^T Q)``, ``V1 Y``, ``Q - V2 Y``,
  ``T V1^T``, ``I + V1 Y`` and ``V2 Y``, each once per entry.

With ``rnd`` the identity (every native dtype) the kernels run their
original code, bit for bit (they test ``rnd is identity``).
"""

from __future__ import annotations

import numpy as np

from factorbench.impls.blocked._xp import is_numpy
from factorbench.impls.textbook._emulate import identity

__all__ = ["ct", "is_complex", "device", "mm", "outer", "zeros", "larfg", "geqr2",
           "unit_lower", "larft", "larfb", "geqrt3", "geqrf", "orgqr", "LEAF"]

#: Panels of at most this many columns are factored column by column.
#: Measured on the reference machine (recursive panels of 4096 x 256, two
#: BLAS threads): leaf 4: 21 ms, 8: 19 ms, 16: 20 ms, 32: 23 ms.  Below 8 the
#: recursion's small products cost more than they save; above it the column
#: loop's rank-1 updates, about 18 us of Python and NumPy overhead per column
#: at 8 (4096 rows), grow with the width.
LEAF = 8


def is_complex(xp, x) -> bool:
    return xp.isdtype(x.dtype, "complex floating")


def ct(xp, M):
    """Conjugate transpose ``M^H`` of a 2-D array (a plain transpose for real M)."""
    return xp.conj(M).T if is_complex(xp, M) else M.T


def mm(xp, A, B):
    """``A @ B``; on NumPy the product comes out Fortran-ordered.

    The blocks the products update are Fortran-ordered (see :func:`zeros`),
    and NumPy subtracting a C-ordered (p, r) product from a Fortran-ordered
    view walks one of them against its layout: measured on the reference
    machine, ``C -= V @ Y`` for (3968, 128) x (128, 896) took 0.13 s, against
    0.026 s with the product computed as ``(Y^T V^T)^T``, which is the same
    GEMM with its output transposed for free.
    """
    if is_numpy(xp):
        return (B.T @ A.T).T
    return A @ B


def outer(xp, v, w):
    """The rank-1 product ``v @ w`` of a column (p, 1) and a row (1, r), elementwise.

    Broadcasting instead of a GEMM with inner dimension 1: measured on the
    reference machine, ``C -= v w`` on a (4096, 15) block took 18 us this way
    against 77 us through ``matmul``.  On NumPy the product is formed
    transposed so that it comes out Fortran-ordered, as :func:`mm`.
    """
    if is_numpy(xp):
        return (w.T * v.T).T
    return v * w


def zeros(xp, shape, like):
    """Zeros in ``like``'s dtype and device; Fortran-ordered on NumPy."""
    if is_numpy(xp):
        return np.zeros(shape, dtype=like.dtype, order="F")
    return xp.zeros(shape, dtype=like.dtype, device=device(like))


def device(x):
    from array_api_compat import device as _device

    return _device(x)


# ------------------------------------------------------------------- reflectors


def larfg(xp, alpha, xnorm, cplx: bool):
    """Scalars of the elementary reflector that maps ``[alpha; x]`` to ``beta e_1``.

    Parameters
    ----------
    xp : array namespace
    alpha : 0-d array or scalar
        The leading entry, in the working dtype.
    xnorm : 0-d array or scalar
        ``||x||_2`` of the entries below it (the real dtype).
    cplx : bool
        Whether the working dtype is complex.

    Returns
    -------
    beta : real 0-d
        The new leading entry: real even for complex data, so diag(R) is real.
    tau : 0-d in the working dtype
        ``H = I - tau v v^H``, ``v = [1; x * scale]``,
        ``H^H [alpha; x] = [beta; 0]``; 0 when ``[alpha; x]`` already is a
        real multiple of e_1 (H = I), as in LAPACK.
    scale : 0-d in the working dtype
        ``1 / (alpha - beta)``, the factor that turns x into v's tail.

    Notes
    -----
    LAPACK xLARFG (real: tau in [1, 2] or 0).  beta = -sign(Re alpha)
    ||[alpha; x]||, so alpha - beta does not cancel.  LAPACK's rescaling loop
    for |beta| < safmin / eps is left out, and the norm is the namespace's
    ``vector_norm`` (not overflow-proof like xNRM2): the harness's matrix
    families are scaled far from both limits.  On NumPy the scalars are
    NumPy scalars and the H = I case is a Python branch; elsewhere it is a
    ``where`` on 0-d arrays, so that a GPU backend never waits for the
    device inside the column loop.
    """
    if is_numpy(xp):
        return _larfg_numpy(alpha, xnorm, cplx)
    if cplx:
        alphr, alphi = xp.real(alpha), xp.imag(alpha)
        mag = xp.hypot(xp.hypot(alphr, alphi), xnorm)
        identity = (xnorm == 0) & (alphi == 0)
    else:
        alphr = alpha
        mag = xp.hypot(alphr, xnorm)
        identity = xnorm == 0
    beta = -xp.copysign(mag, alphr)
    # where() evaluates both sides: safe denominators keep the discarded
    # side from dividing by zero (an all-zero column).
    bsafe = xp.where(identity, xp.ones_like(beta), beta)
    tau = xp.where(identity, xp.zeros_like(alpha), (bsafe - alpha) / bsafe)
    scale = 1 / xp.where(identity, xp.ones_like(alpha), alpha - bsafe)
    return xp.where(identity, alphr, beta), tau, scale


def _larfg_numpy(alpha, xnorm, cplx):
    """:func:`larfg` on NumPy scalars of the working dtype (about 1 us per column)."""
    alphr = alpha.real
    if cplx:
        alphi = alpha.imag
        if xnorm == 0 and alphi == 0:
            return alphr, alpha.dtype.type(0), alpha.dtype.type(1)
        beta = -np.copysign(np.hypot(np.hypot(alphr, alphi), xnorm), alphr)
    else:
        if xnorm == 0:
            return alphr, alpha.dtype.type(0), alpha.dtype.type(1)
        beta = -np.copysign(np.hypot(alphr, xnorm), alphr)
    return beta, (beta - alpha) / beta, 1 / (alpha - beta)


def geqr2(xp, P, rnd=identity):
    """Unblocked Householder QR of a narrow panel, overwriting it (xGEQR2).

    Parameters
    ----------
    P : array (p, b), p >= b
        Overwritten with R (b, b) on and above the diagonal and the
        Householder vectors below it.

    Returns
    -------
    P : array (p, b)
        The factored panel (P itself where the backend updates in place).
    tau : array (b,)
        ``H_1 ... H_b`` with ``H_i = I - tau_i v_i v_i^H``.

    Notes
    -----
    GVL 2013, Alg. 5.2.1; LAPACK xGEQR2.  One Python step per column: a
    norm, the xLARFG scalars, a scaling, and H_i^H applied to the rest of the
    panel by one matrix-vector product (``matmul``) and one rank-1 update
    (:func:`outer`), LAPACK's xLARF.  BLAS-2 and about 20 Python-level
    operations per column, so it only ever sees :data:`LEAF` columns.
    ``rnd`` (emulated formats, real NumPy work arrays) rounds the column
    norm, beta, tau, ``alpha - beta``, each entry of v, ``v^T C``, its
    scaling by tau and each entry of the rank-1 update (see the module notes).
    """
    if rnd is not identity:
        return _geqr2_emulated(P, rnd)
    p, b = P.shape
    cplx = is_complex(xp, P)
    taus = []
    for c in range(b):
        alpha = P[c, c]
        beta, tau, scale = larfg(xp, alpha, xp.linalg.vector_norm(P[c + 1:, c]), cplx)
        P[c + 1:, c] *= scale
        if c + 1 < b:
            # v with its leading 1 written in place, as xGEQR2 does: no copy.
            P[c, c] = 1
            v = P[c:, c:c + 1]
            w = xp.conj(tau) * (ct(xp, v) @ P[c:, c + 1:])
            P[c:, c + 1:] -= outer(xp, v, w)
        P[c, c] = beta
        taus.append(tau)
    return P, xp.stack([xp.asarray(t, dtype=P.dtype, device=device(P)) for t in taus])


def _geqr2_emulated(P, rnd):
    """:func:`geqr2` on a real NumPy float32 work array, rounding after every op
    as the textbook ``house`` / ``householder_inplace`` do."""
    p, b = P.shape
    tau = np.zeros(b, dtype=P.dtype)
    for c in range(b):
        alpha = P[c, c]
        xnorm = rnd(np.linalg.norm(P[c + 1:, c]))
        if xnorm == 0:
            continue  # H = I: tau 0, beta = alpha, the column below is zero
        beta = rnd(-np.copysign(np.hypot(alpha, xnorm), alpha))
        t = rnd((beta - alpha) / beta)
        P[c + 1:, c] = rnd(P[c + 1:, c] / rnd(alpha - beta))
        if c + 1 < b:
            P[c, c] = 1
            v = P[c:, c:c + 1]
            w = rnd(t * rnd(v.T @ P[c:, c + 1:]))
            P[c:, c + 1:] = rnd(P[c:, c + 1:] - outer(np, v, w))
        P[c, c] = beta
        tau[c] = t
    return P, tau


def unit_lower(xp, P):
    """V1 (b, b): the unit lower triangle of the vectors stored in ``P[:b]``."""
    b = P.shape[1]
    return xp.tril(P[:b, :], k=-1) + xp.eye(b, dtype=P.dtype, device=device(P))


def larft(xp, P, tau, rnd=identity):
    """Upper triangular T with ``H_1 ... H_b = I - V T V^H`` (xLARFT, forward, columnwise).

    Parameters
    ----------
    P : array (p, b)
        A factored panel (the vectors V below its diagonal).
    tau : array (b,)

    Returns
    -------
    T : array (b, b), upper triangular.

    Notes
    -----
    Schreiber & Van Loan 1989; LAPACK xLARFT.  The recurrence
    ``T[:i, i] = -tau_i T[:i, :i] (V[:, :i]^H v_i)``, ``T[i, i] = tau_i``
    (tau_i = 0 gives a zero column: H_i = I drops out).  The inner products
    that xLARFT forms one GEMV per column come here from one Gram matrix
    ``S = V^H V`` (BLAS-3); what stays in the loop is (b, b)-sized.
    ``rnd`` (emulated formats) rounds S once per entry, and per column the
    product ``T[:i, :i] S[:i, i]`` and its scaling by ``-tau_i``.
    """
    b = P.shape[1]
    V1, V2 = unit_lower(xp, P), P[b:, :]
    S = ct(xp, V1) @ V1 + ct(xp, V2) @ V2
    T = xp.zeros((b, b), dtype=P.dtype, device=device(P))
    if rnd is not identity:
        S = rnd(S)
        for i in range(b):
            T[i, i] = tau[i]
            if i:
                T[:i, i:i + 1] = rnd((-tau[i]) * rnd(T[:i, :i] @ S[:i, i:i + 1]))
        return T
    for i in range(b):
        T[i, i] = tau[i]
        if i:
            T[:i, i:i + 1] = (-tau[i]) * (T[:i, :i] @ S[:i, i:i + 1])
    return T


def larfb(xp, P, T, C, *, adjoint: bool, rnd=identity):
    """Apply the block reflector of a factored panel to C, overwriting C (xLARFB).

    Parameters
    ----------
    P : array (p, b)
        Factored panel holding V (p, b).
    T : array (b, b)
        Its triangular factor, ``H = I - V T V^H``.
    C : array (p, r)
    adjoint : bool
        Apply ``H^H = I - V T^H V^H`` (the trailing update of the
        factorization) rather than H (forming Q).

    Returns
    -------
    C : array (p, r), ``H^H C`` or ``H C``.

    Notes
    -----
    LAPACK xLARFB (side 'L', direct 'F', storev 'C'): ``Y = V^H C`` and
    ``C -= V (op(T) Y)`` as ``matmul``, each split into the unit triangle V1
    and the rectangle V2 below it.  ``rnd`` (emulated formats) rounds
    ``V^H C``, ``op(T) Y`` and each of the two updated row blocks once per entry.
    """
    b = P.shape[1]
    V1, V2 = unit_lower(xp, P), P[b:, :]
    Y = ct(xp, V1) @ C[:b, :] + ct(xp, V2) @ C[b:, :]
    if rnd is not identity:
        Y = rnd((ct(xp, T) if adjoint else T) @ rnd(Y))
        C[:b, :] = rnd(C[:b, :] - mm(xp, V1, Y))
        C[b:, :] = rnd(C[b:, :] - mm(xp, V2, Y))
        return C
    Y = (ct(xp, T) if adjoint else T) @ Y
    C[:b, :] -= mm(xp, V1, Y)
    C[b:, :] -= mm(xp, V2, Y)
    return C


# ------------------------------------------------------------------ blocked QR


def geqrt3(xp, P, leaf: int = LEAF, rnd=identity):
    """Recursive Householder QR of a panel with its T, overwriting the panel (xGEQRT3).

    Parameters
    ----------
    P : array (p, b), p >= b
        Overwritten as in :func:`geqr2`.
    leaf : int
        Panels of at most this many columns go to :func:`geqr2`.

    Returns
    -------
    P : array (p, b)
        The factored panel.
    T : array (b, b)
        Upper triangular, ``H_1 ... H_b = I - V T V^H``.

    Notes
    -----
    Elmroth & Gustavson 2000 (IBM J. Res. Dev. 44); LAPACK xGEQRT3.  The left
    half is factored, its block reflector applied to the right half, the
    right half factored, and the two T joined as
    ``T = [[T1, -T1 (V1^H V2) T2], [0, T2]]``.  All but O(p b leaf) of the
    panel's flops become matrix-matrix products.  Why: with xGEQR2 on whole
    panels the column loop took 60% of the time of the whole QR at block 64
    and 80% at block 128 on the reference machine (1024 x 1024, float64).
    ``rnd`` (emulated formats) is passed down to every kernel and rounds
    ``G``, ``G T2`` and ``T1 (G T2)`` once per entry.
    """
    p, b = P.shape
    if b <= leaf:
        P, tau = geqr2(xp, P, rnd)
        return P, larft(xp, P, tau, rnd)
    h = b // 2
    P1, T1 = geqrt3(xp, P[:, :h], leaf, rnd)
    P[:, :h] = P1
    P[:, h:] = larfb(xp, P1, T1, P[:, h:], adjoint=True, rnd=rnd)
    P2, T2 = geqrt3(xp, P[h:, h:], leaf, rnd)
    P[h:, h:] = P2
    # V1[h:]^H V2: the left vectors' rows h: are plain storage, P1[h:]; the
    # right vectors are the unit triangle of P2[:b-h] over the rectangle P2[b-h:].
    r = b - h
    G = ct(xp, P1[h:b, :]) @ unit_lower(xp, P2) + ct(xp, P1[b:, :]) @ P2[r:, :]
    T = xp.zeros((b, b), dtype=P.dtype, device=device(P))
    T[:h, :h] = T1
    if rnd is identity:
        T[:h, h:] = -(T1 @ (G @ T2))
    else:
        T[:h, h:] = -rnd(T1 @ rnd(rnd(G) @ T2))
    T[h:, h:] = T2
    return P, T


def geqrf(xp, W, block: int, leaf: int = LEAF, rnd=identity):
    """Blocked Householder QR with the compact WY representation, overwriting W.

    Parameters
    ----------
    W : array (m, n), m >= n
        Overwritten with R on and above the diagonal and the Householder
        vectors below it (LAPACK xGEQRF storage).
    block : int
        Panel width nb (the last panel may be narrower).
    leaf : int
        Column-loop width inside the recursive panel.

    Returns
    -------
    W : array (m, n)
        The factored matrix (W itself where the backend updates in place).
    Ts : list of (j, T)
        For the panel starting at column j, its T (nb, nb):
        ``H_j ... H_{j+nb-1} = I - V T V^H``.

    Notes
    -----
    Schreiber & Van Loan 1989; LAPACK xGEQRF, with panel and T from the
    recursive :func:`geqrt3` (Elmroth & Gustavson 2000) in place of xGEQR2 +
    xLARFT, and the trailing update by :func:`larfb` (xLARFB).  ``rnd``
    (emulated formats) is passed to both.
    """
    m, n = W.shape
    Ts = []
    for j in range(0, n, block):
        k = min(j + block, n)
        P, T = geqrt3(xp, W[j:, j:k], leaf, rnd)
        W[j:, j:k] = P
        Ts.append((j, T))
        if k < n:
            W[j:, k:] = larfb(xp, P, T, W[j:, k:], adjoint=True, rnd=rnd)
    return W, Ts


def orgqr(xp, W, Ts, rnd=identity):
    """Thin Q (m, n) from the block reflectors of :func:`geqrf` (xORGQR / xUNGQR).

    Parameters
    ----------
    W : array (m, n)
        Output of :func:`geqrf` (only its part below the diagonal is read).
    Ts : list of (j, T)
        Its triangular factors.

    Returns
    -------
    Q : array (m, n) with orthonormal columns, ``Q = H_1 ... H_n [I_n; 0]``.

    Notes
    -----
    GVL 2013, §5.1.6 (backward accumulation) in block form, as xORGQR: the
    panels are applied last to first, so panel j only meets Q[j:, j:], the
    part of the product that is not yet the identity.  Its rows j:j+nb are
    still zero there, so ``V^H Q[j:, k:]`` needs only V2 (xLARFB would
    multiply the zeros too: 2% of the flops at n = 4096, nb = 256).  The
    panel's own columns are ``[I; 0] - V (T V1^H)`` (V1 its unit triangle):
    two ``matmul`` in place of xORG2R's column loop.  ``rnd`` (emulated
    formats) rounds each of these block products once per entry.
    """
    m, n = W.shape
    Q = zeros(xp, (m, n), W)
    for j, T in reversed(Ts):
        b = T.shape[0]
        k = j + b
        P = W[j:, j:k]
        V1 = unit_lower(xp, P)
        if k < n:
            # H [0; C2] = [-V1 Y; C2 - V2 Y] with Y = T (V2^H C2)
            Y = rnd(T @ rnd(ct(xp, P[b:, :]) @ Q[k:, k:]))
            Q[j:k, k:] = -rnd(mm(xp, V1, Y))
            if rnd is identity:  # in place: no temporary of the trailing block
                Q[k:, k:] -= mm(xp, P[b:, :], Y)
            else:
                Q[k:, k:] = rnd(Q[k:, k:] - mm(xp, P[b:, :], Y))
        # -T V1^H, negated while it is (nb, nb): the (m-k, nb) product then
        # goes into Q without a pass of its own for the sign.
        Y = -rnd(T @ ct(xp, V1))
        Q[j:k, j:k] = rnd(xp.eye(b, dtype=W.dtype, device=device(W)) + V1 @ Y)
        Q[k:, j:k] = rnd(mm(xp, P[b:, :], Y))
    return Q
