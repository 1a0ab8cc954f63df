"""One asv suite class per op, generated from the implementation registry.

For every op of :data:`factorbench.impls.OPS` this module defines
``<Op>Suite`` (``LuSuite``, ``CholeskySuite``, ...), parameterised over
``impl`` (every registered implementation of the op, including plugins
named in ``FACTORBENCH_PLUGINS``), ``n`` and ``dtype``
(:data:`factorbench.bench.SIZES`, :data:`factorbench.bench.DTYPES`):

- ``time_call``: one call of the implementation on a fresh copy of the
  input, in the memory layout the implementation declares.  Matrix
  generation, the copy and the first call (compilation, workspace
  allocation) happen in ``setup``, outside the timed region; asv runs
  ``setup`` again before every timed call (``number = 1``), so an
  implementation that overwrites its input never sees a factored matrix.
- ``track_<metric>``: the accuracy metrics of the first call (lower is
  better for all of them, which is what asv assumes for ``track_``), one
  per metric the op has (:data:`factorbench.bench.OP_METRICS`): an op
  without a growth factor has no ``track_growth_factor`` at all.

``setup`` raises :class:`factorbench.bench.Skip` (a ``NotImplementedError``,
asv's way to skip a parameter combination) with the registry's reason for
an unavailable implementation, a dtype it does not claim or an n above its
``max_n``.  The matrices are the sweep's (see :mod:`factorbench.bench`).
"""

from factorbench import bench
from factorbench.impls import OPS

bench.load_plugins()  # built-ins, entry points and FACTORBENCH_PLUGINS


class _Suite:
    """Shared setup and timing; subclasses set ``op`` and ``params``."""

    op = ""
    param_names = ["impl", "n", "dtype"]
    number = 1  # one call per sample, each on a freshly set-up input
    repeat = (3, 50, 2.0)  # per round: at least 3 samples, at most 50, or 2 s

    def setup(self, impl, n, dtype):
        self.case = bench.prepare(self.op, impl, n, dtype)  # Skip: asv skips the combination
        self.func = self.case.impl.func
        self.args, self.kwargs = self.case.inputs()

    def teardown(self, impl, n, dtype):
        self.args = self.kwargs = None

    def time_call(self, impl, n, dtype):
        self.func(*self.args, **self.kwargs)


def track_backward_ratio(self, impl, n, dtype):
    return self.case.metric("backward_ratio")


def track_orthogonality_loss(self, impl, n, dtype):
    return self.case.metric("orthogonality_loss")


def track_growth_factor(self, impl, n, dtype):
    return self.case.metric("growth_factor")


def track_kappa_scaled_error(self, impl, n, dtype):
    return self.case.metric("kappa_scaled_error")


def track_lowrank_error_ratio(self, impl, n, dtype):
    return self.case.metric("lowrank_error_ratio")


_TRACKS = {f.__name__[len("track_"):]: f for f in (
    track_backward_ratio, track_orthogonality_loss, track_growth_factor,
    track_kappa_scaled_error, track_lowrank_error_ratio)}
for _metric, _func in _TRACKS.items():
    _func.unit = bench.METRICS[_metric]
del track_backward_ratio, track_orthogonality_loss, track_growth_factor
del track_kappa_scaled_error, track_lowrank_error_ratio  # found through the classes only


def _suite(op):
    body = {
        "__module__": __name__,
        "__doc__": f"{op}: time and accuracy of every registered implementation.",
        "op": op,
        "params": [bench.variants(op), list(bench.SIZES), list(bench.DTYPES)],
    }
    body.update({f"track_{m}": _TRACKS[m] for m in bench.OP_METRICS[op]})
    return type(f"{op.capitalize()}Suite", (_Suite,), body)


for _op in OPS:
    _cls = _suite(_op)
    globals()[_cls.__name__] = _cls
del _op, _cls, _metric, _func
