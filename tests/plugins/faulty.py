"""Fault-injection impls for the reliability tests (loaded with --plugin).

Every one is a ``lu`` impl so that the harness's LU metrics judge the ones
that return.  The behaviour is chosen by the impl name.
"""

import os
import resource
import signal
import sys
import time

import numpy as np
import scipy.linalg

from factorbench.accuracy.precision import EMULATED
from factorbench.impls import NATIVE_REAL, register
from factorbench.impls.results import LU


def _lu(A):
    P, L, U = scipy.linalg.lu(A)
    return LU(np.argmax(P, axis=0), L, U)


@register("lu", "raises", backend="numpy", family="textbook", dtypes=NATIVE_REAL)
def lu_raises(A):
    raise RuntimeError("deliberate failure")


@register("lu", "segfault", backend="numpy", family="textbook", dtypes=NATIVE_REAL)
def lu_segfault(A):
    os.kill(os.getpid(), signal.SIGSEGV)


@register("lu", "abort", backend="numpy", family="textbook", dtypes=NATIVE_REAL)
def lu_abort(A):
    os.abort()


@register("lu", "hang", backend="numpy", family="textbook", dtypes=NATIVE_REAL)
def lu_hang(A):
    while True:
        print("still working", flush=True)
        sys.stderr.write("noise\n")
        time.sleep(0.001)


@register("lu", "nan", backend="numpy", family="textbook", dtypes=NATIVE_REAL)
def lu_nan(A):
    r = _lu(A)
    r.U[0, 0] = np.nan
    return r


@register("lu", "wrongshape", backend="numpy", family="textbook", dtypes=NATIVE_REAL)
def lu_wrongshape(A):
    r = _lu(A)
    return LU(r.perm, r.L[:, :-1], r.U)


@register("lu", "upcast", backend="numpy", family="textbook", dtypes=NATIVE_REAL)
def lu_upcast(A):
    return _lu(A.astype(np.float64))


@register("lu", "wrongfactors", backend="numpy", family="textbook", dtypes=NATIVE_REAL)
def lu_wrongfactors(A):
    r = _lu(A)
    r.U[0, -1] += 1.0
    return r


@register("lu", "slow", backend="numpy", family="textbook", dtypes=NATIVE_REAL)
def lu_slow(A):
    time.sleep(float(os.environ.get("FACTORBENCH_TEST_SLEEP", "0.05")))
    return _lu(A)


@register("lu", "hog", backend="numpy", family="textbook", dtypes=NATIVE_REAL)
def lu_hog(A):
    """Allocate FACTORBENCH_TEST_HOG bytes (8 GB) at once, beyond the address-space cap."""
    size = int(float(os.environ.get("FACTORBENCH_TEST_HOG", 8e9)))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft >= size:  # never really eat the machine
        raise RuntimeError("lu/hog runs only under a --max-memory below its allocation")
    hog = np.ones(size // 8)
    return hog.sum()


@register("lu", "emulation-skipped", backend="numpy", family="textbook",
          dtypes=NATIVE_REAL + EMULATED)
def lu_emulation_skipped(A):
    """Declares bfloat16/float16 but computes and returns float32: what NumPy does
    silently with ml_dtypes arrays; the harness must refuse it."""
    return _lu(np.asarray(A, dtype=np.float32) if A.dtype.itemsize < 4 else A)


@register("lu", "downcast", backend="numpy", family="textbook", dtypes=NATIVE_REAL)
def lu_downcast(A):
    return _lu(A.astype(np.float32))
