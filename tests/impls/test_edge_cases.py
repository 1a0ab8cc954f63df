"""Matrix edge cases through every registered implementation.

Parameterised over the registry (every available impl x every dtype it
claims, ids ``op/name-dtype``), so a newly registered impl is covered without
editing this file.  Inputs come from the worker's own pipeline
(``SweepSpec`` -> ``expand`` -> ``worker._matrix``/``worker._args_maker``) or
go through :func:`factorbench.worker.run_cell` itself, so they are the
matrices, right-hand sides, ranks and generators a sweep would use.

Cases:

1. tiny sizes, n = 1 and 2 (m = 2n for ops that take rectangular input);
2. n not a multiple of a block size: n = 2b + 3 for every declared value b of
   a block-size-like parameter, else n = 37;
3. memory layout: C order, Fortran order and a strided view give the same
   factors up to rounding;
4. read-only input, and input left unmodified;
5. singular and non-positive-definite input: the documented contract per impl;
6. the zero matrix, 1 x 1 included, through every impl.

Tolerances.  Well-conditioned inputs have a known 2-norm condition number
``KAPPA`` (randsvd/spd, geometric spectrum); every pass decision is the
metrics' own rule (``passed(bundle(...), size=max(m, n))``, LAPACK TESTING's
threshold 30).  Factors computed from two layouts are each backward stable to
``THRESHOLD * max(m, n) * u``, so they may differ by that times the condition
number of the factor: ``kappa`` for triangular/orthogonal factors and
solutions, 1 for singular values and eigenvalues (Weyl), and
``||A||_2 / gap`` for singular and eigenvectors (Davis-Kahan, Wedin), where
the gap is read from the known spectrum.

Overwriting.  The worker hands every impl a fresh copy of its input in the
layout it declares, so overwriting is allowed through the harness; the
registry has no flag for it, and an impl says so in the numpydoc entry of its
argument (``A : (n, n) array, overwritten``, or "parameters ... as
:func:`other`", which is followed).  Such impls are called the way the worker
calls them; every other impl must accept read-only input and leave it
unmodified.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import re
import sys

import numpy as np
import pytest

from factorbench import worker
from factorbench.accuracy import matrices
from factorbench.accuracy.metrics import METRIC_COLUMNS, bundle, passed
from factorbench.accuracy.precision import precision, result_dtype_error
from factorbench.impls import OPS, get, impls
from factorbench.impls.results import RESULT_TYPES
from factorbench.spec import SweepSpec
from factorbench.sweep import expand
from factorbench.worker import run_cell

OPTIONS = {"min_time": 0.0, "max_repeats": 1, "max_time": 5.0, "threshold": 30.0, "gemm": {}}
THRESHOLD = OPTIONS["threshold"]
KAPPA = 10.0  # well conditioned: every method, stable or not, is accurate here
ASPECT = 2.0  # m = 2n for ops that take rectangular input
N_ODD = 37  # an odd prime: a multiple of no block size
N_SMALL = 12  # layout and read-only cases
N_SINGULAR = 8
BLOCK_PARAM = re.compile(r"(^|_)(block|blocksize|nb|bs|panel|tile)(_|$)")

AVAILABLE = [i for i in impls() if i.availability()[0]]


def _cases(xfail: dict | None = None) -> list:
    """Every available impl x claimed dtype; ``xfail`` maps an impl id to a reason."""
    xfail = xfail or {}
    out = []
    for impl in AVAILABLE:
        for dtype in impl.dtypes:
            reason = xfail.get(impl.id) or xfail.get((impl.id, dtype))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(impl.id, dtype, id=f"{impl.id}-{dtype}", marks=marks))
    return out


def _kind(impl) -> str:
    """A well-conditioned family of the impl's structure with a known spectrum."""
    return "spd" if impl.structure in ("spd", "symmetric") else "randsvd"


def _cells(impl, dtype, n, *, kind=None, params=None) -> list[dict]:
    """The cells a sweep makes for this impl at size n (one per parameter combination)."""
    spec = SweepSpec(ops=[impl.op], impls=[impl.id], kinds=[kind or _kind(impl)], sizes=[n],
                     kappas=[1.0 if n == 1 else KAPPA], dtypes=[dtype], aspect=ASPECT,
                     params=params or {}, max_n=n)
    cells = expand(spec)
    assert cells and all(c["resolved"] is None for c in cells), cells
    return cells


def _check_record(rec) -> None:
    """A finished cell: ok, failed or error; never ok with a non-finite metric; never
    a result the harness had to refuse (wrong type, shape or precision)."""
    status, msg = rec["status"], rec.get("message") or ""
    assert status in ("ok", "failed", "error"), (status, msg)
    assert not msg.startswith(("bad result", "wrong precision", "impl returned")), msg
    if status == "ok":
        assert rec["passed"]
        bad = {k: rec[k] for k in METRIC_COLUMNS
               if rec.get(k) is not None and not math.isfinite(rec[k])}
        assert not bad, bad


def _run(impl, dtype, n, **kw) -> list[dict]:
    recs = [run_cell(c, OPTIONS) for c in _cells(impl, dtype, n, **kw)]
    for rec in recs:
        _check_record(rec)
    return recs


def _assert_ok_if_stable(impl, recs) -> None:
    """Stable impls pass on well-conditioned input; unstable ones only need a valid record."""
    if impl.stable:
        for rec in recs:
            assert rec["status"] == "ok", rec["message"]


# ------------------------------------------------------------------ direct calls


def _inputs(cell):
    """``(tm, A_w, b, x_true)`` exactly as the worker builds them for ``cell``."""
    return worker._matrix(cell)[:4]


def _args(impl, cell, A_w, b, A=None):
    """The worker's arguments for one call (fresh copy in the impl's layout),
    with the matrix replaced by ``A`` when given."""
    args, params = worker._args_maker(impl, cell, A_w, b)()
    if A is not None:
        args = (A, *args[1:])
    return args, params


def _metrics(impl, cell, inputs, res) -> dict:
    tm, A_w, b, x_true = inputs
    assert isinstance(res, RESULT_TYPES[impl.op]), type(res)
    why = result_dtype_error(res, cell["dtype"])
    assert why is None, why
    return bundle(impl.op, A_w, res, u=precision(cell["dtype"]).u,
                  kappa=matrices.kappa_actual(A_w), b=b, x_true=x_true, sigma=tm.sigma,
                  eigenvalues=tm.eigenvalues, k=cell["rank"])


def _passes(cell, metrics) -> bool:
    return passed(metrics, THRESHOLD, size=max(cell["m"], cell["n"]))


def _param_entry(doc: str, arg: str) -> str | None:
    """The numpydoc entry ``arg : ...`` (its first line and indented continuation)."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"{re.escape(arg)}\s*:", line):
            entry = [line]
            for nxt in lines[i + 1:]:
                if not nxt.startswith((" ", "\t")):
                    break
                entry.append(nxt)
            return " ".join(entry)
    return None


_SAME_AS = re.compile(r"[Pp]arameters\b[^.]*?\bas\s+:func:`~?([\w.]+)`", re.S)


def declares_overwrite(impl, arg: str = "A") -> bool:
    """Whether the impl documents that it overwrites ``arg`` (see module docstring)."""
    func = impl.func
    for _ in range(4):  # follow "parameters ... as :func:`other`" references
        doc = inspect.getdoc(func) or ""
        entry = _param_entry(doc, arg)
        if entry is not None:
            return "overwritten" in entry and "not modified" not in entry
        ref = _SAME_AS.search(doc)
        func = ref and getattr(sys.modules[func.__module__], ref.group(1).split(".")[-1], None)
        if func is None:
            return False
    return False


def _sha(X) -> str:
    return hashlib.sha256(np.ascontiguousarray(X).tobytes()).hexdigest()


# ---------------------------------------------------------------- 1. tiny sizes


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("impl_id, dtype", _cases())
def test_tiny_sizes(impl_id, dtype, n):
    """n = 1 and 2 (m = 2n for rectangular ops) through the worker: stable impls pass.

    Krylov eigensolvers (ARPACK, LOBPCG behind svds) cannot compute k = min(m, n)
    singular triplets (ARPACK's complex path not even min(m, n) - 1): they must
    refuse such a k with an error naming the limit, never return garbage."""
    impl = get(impl_id)
    recs = _run(impl, dtype, n)
    limited = [r for r in recs if r["status"] == "error" and "needs k < min(m, n)" in
               (r["message"] or "") and r["rank"] >= min(r["m"], r["n"]) - 1]
    _assert_ok_if_stable(impl, [r for r in recs if r not in limited])


# ------------------------------------------------------- 2. n not a block multiple


def _block_cases() -> list:
    out = []
    for case in _cases():
        impl = get(case.values[0])
        blocks = [(k, v) for k, vals in sorted(impl.parameters.items())
                  if BLOCK_PARAM.search(k) for v in vals]
        for name, b in blocks or [(None, None)]:
            tag = f"{name}{b}" if name else f"n{N_ODD}"
            out.append(pytest.param(*case.values, name, b, id=f"{case.id}-{tag}",
                                    marks=case.marks))
    return out


@pytest.mark.parametrize("impl_id, dtype, param, block", _block_cases())
def test_size_not_a_block_multiple(impl_id, dtype, param, block):
    """n = 2b + 3 for each declared block size b (n = 37 without one): stable impls pass."""
    impl = get(impl_id)
    if param is None:
        recs = _run(impl, dtype, N_ODD)
    else:
        recs = _run(impl, dtype, 2 * int(block) + 3, params={param: [block]})
    _assert_ok_if_stable(impl, recs)


# ------------------------------------------------------------- 3. memory layout


def _align(X, Y):
    """Y with each column's phase (sign) rotated onto X's: singular and eigenvectors
    are unique only up to a unit scalar."""
    c = np.sum(X.conj() * Y, axis=0)
    a = np.abs(c)
    phase = np.where(a > 0, c / np.where(a > 0, a, 1), 1)
    return Y * phase.conj()


def _gap_condition(tm, m, n) -> float:
    """||A||_2 / min gap of the known spectrum (with 0 for the complement when m > n)."""
    vals = np.asarray(tm.sigma if tm.eigenvalues is None else tm.eigenvalues, dtype=float)
    if tm.eigenvalues is None and m != n:
        vals = np.append(vals, 0.0)
    gaps = np.abs(np.diff(np.sort(vals)))
    return float(np.max(np.abs(vals)) / np.min(gaps))


def _factors(op, res, tm, m, n, kappa) -> tuple[dict, dict]:
    """(exact integer fields, {name: (array, condition number)}) to compare."""
    if op in ("svd", "lowrank"):
        cond = _gap_condition(tm, m, n)
        return {}, {"s": (res.s, 1.0), "U": (res.U, cond), "V": (res.Vh.conj().T, cond)}
    if op == "eigh":
        return {}, {"w": (res.w, 1.0), "V": (res.V, _gap_condition(tm, m, n))}
    exact = {k: getattr(res, k) for k in ("perm", "col_perm") if getattr(res, k, None) is not None}
    names = {"lu": "LU", "cholesky": "L", "qr": "QR", "qrcp": "QR", "solve": "x", "lstsq": "x"}
    return exact, {k: (getattr(res, k), kappa) for k in names[op]}


def _layouts(A_w):
    """The same matrix C-ordered, Fortran-ordered and as a strided (non-contiguous) view."""
    m, n = A_w.shape
    big = np.zeros((2 * m, 2 * n), dtype=A_w.dtype)
    big[::2, ::2] = A_w
    view = big[::2, ::2]
    assert not view.flags.c_contiguous and not view.flags.f_contiguous
    return {"C": np.array(A_w, order="C"), "F": np.array(A_w, order="F"), "strided": view}


_PROPACK_ORTHOGONALITY = (
    "PROPACK's partial reorthogonalisation leaves U and V orthonormal to 1e-12..1e-9 in "
    "double precision, about the pass limit (stable=False): the pass decision follows the "
    "rounding of each layout")


@pytest.mark.parametrize("impl_id, dtype", _cases(xfail={
    ("lowrank/svds-propack", "float64"): _PROPACK_ORTHOGONALITY,
    ("lowrank/svds-propack", "complex128"): _PROPACK_ORTHOGONALITY,
}))
def test_memory_layout_gives_the_same_factors(impl_id, dtype):
    """C order, Fortran order and a strided view: same pass decision, same permutations,
    factors equal to THRESHOLD * max(m, n) * u * (their condition number)."""
    impl = get(impl_id)
    u = precision(dtype).u
    for cell in _cells(impl, dtype, N_SMALL):
        inputs = _inputs(cell)
        tm, A_w = inputs[0], inputs[1]
        m, n = A_w.shape
        kappa = matrices.kappa_actual(A_w)
        results = {}
        for name, A in _layouts(A_w).items():
            args, params = _args(impl, cell, A_w, inputs[2], A=A)
            res = impl.func(*args, **params)
            ok = _passes(cell, _metrics(impl, cell, inputs, res))
            assert ok or not impl.stable, f"{name} order fails the pass rule"
            results[name] = (ok, res)
        (ok0, ref), others = results["C"], {k: v for k, v in results.items() if k != "C"}
        exact0, ref_f = _factors(impl.op, ref, tm, m, n, kappa)
        for name, (ok, res) in others.items():
            assert ok == ok0, f"{name} order: passed={ok}, C order: passed={ok0}"
            exact, fs = _factors(impl.op, res, tm, m, n, kappa)
            for k, v in exact0.items():
                assert np.array_equal(v, exact[k]), f"{name} order: {k} differs"
            for k, (X, cond) in ref_f.items():
                X, Y = np.asarray(X), np.asarray(fs[k][0])
                if k in ("U", "V"):
                    Y = _align(X, Y)
                diff = np.linalg.norm(X - Y) / np.linalg.norm(X)
                tol = THRESHOLD * max(m, n) * u * cond
                assert diff <= tol, f"{name} order: {k} differs by {diff:.3g} > {tol:.3g}"


# ------------------------------------------------------------ 4. read-only input


@pytest.mark.parametrize("impl_id, dtype", _cases())
def test_read_only_input_accepted_and_unmodified(impl_id, dtype):
    """Read-only A (unless the impl declares overwriting it) and b are accepted, and an
    input the impl does not declare overwriting comes back bit-identical."""
    impl = get(impl_id)
    takes_b = OPS[impl.op]["args"] == "Ab"
    keep_b = takes_b and not declares_overwrite(impl, "b")
    for cell in _cells(impl, dtype, N_SMALL):
        inputs = _inputs(cell)
        A_w, b = inputs[1], inputs[2]
        if declares_overwrite(impl, "A"):
            args, params = _args(impl, cell, A_w, b)  # a fresh copy, as the worker hands it
        else:
            A = np.array(A_w, order=impl.layout)
            A.setflags(write=False)
            args, params = _args(impl, cell, A_w, b, A=A)
        if keep_b:
            args[1].setflags(write=False)
        res = impl.func(*args, **params)
        ok = _passes(cell, _metrics(impl, cell, inputs, res))
        assert ok or not impl.stable
        if keep_b:
            assert np.array_equal(args[1], b), "right-hand side modified"
        if declares_overwrite(impl, "A"):
            continue
        # writeable input: hashed before and after the call
        A = np.array(A_w, order=impl.layout)
        args, params = _args(impl, cell, A_w, b, A=A)
        before = [_sha(X) for X in args if isinstance(X, np.ndarray)]
        impl.func(*args, **params)
        assert [_sha(X) for X in args if isinstance(X, np.ndarray)] == before, \
            "input modified by an impl that does not declare overwriting it"


# ----------------------------------------------- 5. singular and not-SPD inputs


#: A breakdown on singular input shows as Inf/NaN in the result; its warnings are expected.
breakdown_warnings = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture
def substitute(monkeypatch):
    """``substitute(edit)``: the worker's matrices pass through ``edit(tm)`` first."""
    real = matrices.generate

    def install(edit):
        def patched(*args, **kwargs):
            tm = real(*args, **kwargs)
            edit(tm)
            return tm

        monkeypatch.setattr(matrices, "generate", patched)
        worker._CACHE.clear()

    yield install
    worker._CACHE.clear()


def zero_column(tm):
    """Exactly singular: column 0 zeroed (row 0 too for symmetric input, keeping
    symmetry; PSD input stays semidefinite).  The spectrum is no longer known."""
    tm.A[:, 0] = 0
    if tm.structure != "general":
        tm.A[0, :] = 0
    tm.sigma = tm.eigenvalues = tm.kappa = None


def indefinite(tm):
    """Q diag(lam_1, -lam_2, lam_3, ...) Q^H from the SPD matrix's own eigenpairs."""
    lam, Q = np.linalg.eigh(tm.A)
    d = lam * np.where(np.arange(lam.size) % 2, -1.0, 1.0)
    A = (Q * d) @ Q.conj().T
    tm.A = (A + A.conj().T) / 2
    tm.eigenvalues = np.sort(d)
    tm.sigma = np.sort(np.abs(d))[::-1]


def zero(tm):
    tm.A = np.zeros_like(tm.A)
    tm.sigma = np.zeros(min(tm.A.shape))
    tm.eigenvalues = None if tm.eigenvalues is None else np.zeros(tm.A.shape[0])
    tm.kappa = None


#: Documented contract of each LU on an exactly singular matrix (column 0 zero):
#: "factors": returns factors with an exactly zero U_ii that pass the backward-error
#:   rule (LAPACK xGETRF completes with INFO > 0, returned in extras["info"]; the
#:   textbook pivoting LUs skip the zero pivot as xGETF2 does);
#: "raises": raises, the cell is recorded as error;
#: "breakdown": no pivoting, the zero pivot is divided by: Inf/NaN, recorded as failed.
#: An LU not listed must raise or return passing factors if stable, anything if not.
SINGULAR_LU = {
    "lu/lapack": "factors",
    "lu/gepp": "factors",
    "lu/gecp": "factors",
    "lu/blocked": "factors",
    "lu/recursive": "factors",
    "lu/numba": "factors",
    "lu/numba-blocked": "factors",
    "lu/nopivot": "breakdown",
}


def _op_cases(op):
    return [c for c in _cases() if get(c.values[0]).op == op]


@breakdown_warnings
@pytest.mark.parametrize("impl_id, dtype", _op_cases("lu"))
def test_lu_exactly_singular(impl_id, dtype, substitute):
    """Column 0 exactly zero: the contract of :data:`SINGULAR_LU`, through the worker and
    by a direct call (the zero pivot is in U; LAPACK's INFO points at the first one)."""
    impl = get(impl_id)
    substitute(zero_column)
    recs = _run(impl, dtype, N_SINGULAR)
    contract = SINGULAR_LU.get(impl_id)
    for rec in recs:
        if contract == "factors":
            assert rec["status"] == "ok", rec["message"]
        elif contract == "raises":
            assert rec["status"] == "error"
        elif contract == "breakdown":
            assert rec["status"] == "failed" and "not finite" in rec["message"], rec["message"]
        else:
            assert rec["status"] in (("ok", "error") if impl.stable else
                                     ("ok", "failed", "error")), rec["message"]
    if contract != "factors":
        return
    for cell in _cells(impl, dtype, N_SINGULAR):
        inputs = _inputs(cell)
        args, params = _args(impl, cell, inputs[1], inputs[2])
        res = impl.func(*args, **params)
        assert _passes(cell, _metrics(impl, cell, inputs, res))
        diag = np.diagonal(np.asarray(res.U))
        assert np.any(diag == 0), "U of an exactly singular matrix has no zero pivot"
        info = res.extras.get("info")
        if info is not None:  # LAPACK convention: U[info-1, info-1] is the first zero
            assert info > 0 and diag[info - 1] == 0 and np.all(diag[: info - 1] != 0)


@breakdown_warnings
@pytest.mark.parametrize("impl_id, dtype", _op_cases("lu"))
def test_lu_rank_deficient_product(impl_id, dtype):
    """U diag(sigma) V^H with half the singular values zero (rounding makes them ~u)."""
    impl = get(impl_id)
    recs = _run(impl, dtype, N_SINGULAR, kind="rankdef")
    if SINGULAR_LU.get(impl_id) == "factors":
        assert all(r["status"] == "ok" for r in recs), [r["message"] for r in recs]
    elif impl.stable:
        assert all(r["status"] in ("ok", "error") for r in recs)


@breakdown_warnings
@pytest.mark.parametrize("impl_id, dtype", _op_cases("solve"))
def test_solve_exactly_singular_is_never_ok(impl_id, dtype, substitute):
    """A solver either raises or returns an x the metrics reject (Inf/NaN)."""
    substitute(zero_column)
    for rec in _run(get(impl_id), dtype, N_SINGULAR):
        assert rec["status"] in ("error", "failed"), rec["message"]


def _spd_cases():
    return [c for c in _cases() if get(c.values[0]).structure == "spd"]


@breakdown_warnings
@pytest.mark.parametrize("edit", [indefinite, zero_column], ids=["indefinite", "semidefinite"])
@pytest.mark.parametrize("impl_id, dtype", _spd_cases())
def test_not_positive_definite_is_an_error(impl_id, dtype, edit, substitute):
    """Every impl that needs SPD input raises, naming positive definiteness; a
    low-rank approximation of a semidefinite matrix (Nystrom's own domain,
    positive semidefinite) is a valid result and must pass."""
    substitute(edit)
    for rec in _run(get(impl_id), dtype, N_SINGULAR):
        if get(impl_id).op == "lowrank" and edit is zero_column:
            assert rec["status"] == "ok", rec["message"]
            continue
        assert rec["status"] == "error", rec["message"]
        assert "positive definite" in rec["message"].lower(), rec["message"]


# ------------------------------------------------------------------ 6. zero matrix

#: Ops whose every input, the zero matrix included, has an exact factorization that
#: a backward-stable method returns (L = I, U = 0; Q, R = 0; s = 0; w = 0).
ZERO_FACTORABLE = ("lu", "qr", "qrcp", "svd", "eigh", "lowrank")


@breakdown_warnings
@pytest.mark.parametrize("n", [1, 5])
@pytest.mark.parametrize("impl_id, dtype", _cases(xfail={
    "qr/cgs2": "Gram-Schmidt normalises each column by its norm: 0/0 on a zero column "
               "(documented: needs numerically full column rank)",
}))
def test_zero_matrix(impl_id, dtype, n, substitute):
    """Covers every impl at n = 1 and 5 (tests/test_worker.py has lu/lapack, qr/lapack)."""
    impl = get(impl_id)
    substitute(zero)
    for rec in _run(impl, dtype, n):
        if rec["status"] == "ok" and rec.get("backward_error") is not None:
            assert rec["backward_error"] == 0.0  # an exact factorization of zero
        if impl.structure == "spd":
            assert rec["status"] == "error" and "positive definite" in rec["message"].lower()
        elif impl.op == "solve":
            assert rec["status"] != "ok"
        elif impl.op in ZERO_FACTORABLE and impl.stable:
            # raising is a documented way out (CholeskyQR2); wrong factors are not
            assert rec["status"] in ("ok", "error"), rec["message"]
