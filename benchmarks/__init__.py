"""asv benchmark suite of factorbench, generated from the implementation registry.

The suite lives in :mod:`benchmarks.ops`.  BLAS and OpenMP pools default to
one thread (set here, before NumPy is imported), the settings asv.conf.json
gives every benchmark process, so that the suite measures the same thing when
it is imported outside asv or by an asv that does not apply its matrix
environment variables; a value already in the environment wins.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
