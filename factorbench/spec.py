"""Sweep specifications, presets and the range syntax (design sections 7-8).

Range syntax, for sizes and kappas alike, is a comma list whose items are
single values or ranges ``START:STOP:STEP``:

- ``64:4096:x2``  geometric (64, 128, ..., 4096; STOP included when hit)
- ``64:512:+64``  arithmetic
- ``1e0:1e16:x100``  geometric over floats
- ``64,100,1e3``  explicit values

Values are validated (positive sizes, kappa >= 1, growing ranges, at most
:data:`MAX_RANGE_VALUES` values) and errors are :class:`SpecError` with one
sentence saying what is wrong.

Memory sizes (``--max-memory``) are a number with an optional binary unit:
``4G``, ``512M``, ``2.5GiB``, ``1T``; K, M, G and T are powers of 1024 with or
without ``B``/``iB`` (``4GB`` = ``4GiB`` = ``4G``), and a bare number is bytes.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import re
from dataclasses import dataclass, field

from factorbench.accuracy.metrics import LOWRANK_THRESHOLD
from factorbench.accuracy.precision import PRECISIONS
from factorbench.impls import OPS

__all__ = [
    "SpecError",
    "SweepSpec",
    "PRESETS",
    "DEFAULT_KINDS",
    "parse_range",
    "parse_list",
    "parse_kind",
    "parse_param",
    "parse_memory",
    "format_memory",
    "preset",
    "MIN_MAX_MEMORY",
]

MAX_RANGE_VALUES = 10_000

#: Smallest ``--max-memory`` accepted.  The cap is on a worker's virtual
#: address space, which holds Python, numpy, scipy and the BLAS libraries'
#: per-thread buffers before any cell runs: about 340 MiB with two BLAS
#: threads and 1.5 GiB with sixteen (numpy's and scipy's OpenBLAS each start a
#: pool).  Below this no worker can start anywhere; above it the worker
#: measures its own footprint at start and refuses a cap that leaves too little.
MIN_MAX_MEMORY = 256 * 2**20


class SpecError(ValueError):
    """Malformed or inconsistent sweep input (one line, shown to the user)."""


#: Matrix families each op sweeps when --kinds is not given.
DEFAULT_KINDS: dict[str, tuple[str, ...]] = {
    "lu": ("randsvd", "wilkinson", "gaussian"),
    "cholesky": ("spd",),
    "qr": ("randsvd",),
    "qrcp": ("randsvd", "kahan"),
    "svd": ("randsvd",),
    "eigh": ("spd",),
    "solve": ("randsvd", "spd"),
    "lstsq": ("randsvd",),
    "lowrank": ("lowrank", "randsvd", "spd"),
}

#: m / n used for ops that take rectangular input when --aspect is not given.
DEFAULT_ASPECT: dict[str, float] = {"qr": 2.0, "qrcp": 1.0, "svd": 1.0, "lstsq": 2.0,
                                    "lowrank": 2.0}


def _number(text: str, integer: bool):
    try:
        v = float(text)
    except ValueError:
        raise SpecError(f"not a number: {text!r}") from None
    if not math.isfinite(v):
        raise SpecError(f"not a finite number: {text!r}")
    if integer:
        if v != int(v):
            raise SpecError(f"not an integer: {text!r}")
        return int(v)
    return v


def parse_range(text: str, *, integer: bool = True, minimum: float | None = None,
                what: str = "value") -> list:
    """Parse the range syntax into a sorted list of unique values.

    Parameters
    ----------
    text : str
        E.g. ``"64:4096:x2"``, ``"1e0:1e16:x100"``, ``"32,64:256:+64"``.
    integer : bool
        Values must be integers (sizes).
    minimum : float, optional
        Smallest allowed value (1 for sizes and kappas).
    what : str
        Name used in error messages.

    Raises
    ------
    SpecError
        Malformed text, empty result, values below ``minimum``, too many values.
    """
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"empty {what} list")
    out: list = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise SpecError(f"empty item in {what} list {text!r}")
        parts = item.split(":")
        if len(parts) == 1:
            out.append(_number(parts[0], integer))
            continue
        if len(parts) != 3:
            raise SpecError(f"bad {what} range {item!r}: expected START:STOP:xFACTOR or +STEP")
        start, stop = _number(parts[0], integer), _number(parts[1], integer)
        step = parts[2].strip()
        if stop < start:
            raise SpecError(f"bad {what} range {item!r}: STOP is smaller than START")
        if step[:1] in ("x", "*"):
            factor = _number(step[1:], False)
            if factor <= 1:
                raise SpecError(f"bad {what} range {item!r}: factor must be > 1")
            if start <= 0:
                raise SpecError(f"bad {what} range {item!r}: geometric ranges need START > 0")
            count = int(math.floor(math.log(stop / start) / math.log(factor) + 1e-9)) + 1
            vals = [start * factor**i for i in range(min(count, MAX_RANGE_VALUES + 1))]
        elif step[:1] == "+":
            inc = _number(step[1:], integer)
            if inc <= 0:
                raise SpecError(f"bad {what} range {item!r}: step must be > 0")
            count = int(math.floor((stop - start) / inc + 1e-9)) + 1
            vals = [start + inc * i for i in range(min(count, MAX_RANGE_VALUES + 1))]
        else:
            raise SpecError(f"bad {what} range {item!r}: step must look like x2 or +64")
        if integer:
            vals = [round(v) for v in vals]
        else:
            # keep decades exact: 1e0 * 100**8 must print as 1e16, not 1.0000000000000002e16
            vals = [float(f"{v:.12g}") for v in vals]
        out.extend(vals)
        if len(out) > MAX_RANGE_VALUES:
            break
    if len(out) > MAX_RANGE_VALUES:
        raise SpecError(f"{what} list {text!r} has more than {MAX_RANGE_VALUES} values")
    if minimum is not None:
        low = [v for v in out if v < minimum]
        if low:
            raise SpecError(f"{what} must be >= {minimum:g}, got {low[0]:g}")
    return sorted(set(out))


def parse_list(text: str, choices, what: str) -> list[str]:
    """Comma list of names from ``choices``; unknown names say the closest ones."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"empty {what} list")
    out = []
    for name in (t.strip() for t in text.split(",")):
        if not name:
            raise SpecError(f"empty item in {what} list {text!r}")
        if name not in choices:
            close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise SpecError(f"unknown {what} {name!r}{hint}")
        if name not in out:
            out.append(name)
    return out


def parse_kind(text: str) -> tuple[str, int | None]:
    """``"randsvd"`` -> ("randsvd", None); ``"randsvd:5"`` -> ("randsvd", 5)."""
    from factorbench.accuracy.matrices import KINDS

    name, _, mode = text.partition(":")
    parse_list(name, KINDS, "matrix kind")
    if not mode:
        return name, None
    if not KINDS[name].has_modes:
        raise SpecError(f"matrix kind {name!r} has no modes (got {text!r})")
    m = _number(mode, True)
    if not 1 <= m <= 5:
        raise SpecError(f"mode of {name!r} must be 1..5, got {m}")
    return name, m


def parse_param(text: str) -> tuple[str, list]:
    """``"block=64,128"`` -> ("block", [64, 128]); numbers become int/float."""
    name, eq, values = text.partition("=")
    name = name.strip()
    if not eq or not name.isidentifier() or not values.strip():
        raise SpecError(f"bad --param {text!r}: expected NAME=V1,V2")
    out = []
    for v in values.split(","):
        v = v.strip()
        if not v:
            raise SpecError(f"bad --param {text!r}: empty value")
        try:
            f = float(v)
            out.append(int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f)
        except ValueError:
            out.append(v)
    return name, out


_MEMORY_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_MEMORY_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)


#: Largest cap accepted: 2**60 bytes, beyond any address space (RLIMIT_AS is 64-bit).
_MEMORY_MAX = 2**60


def parse_memory(text: str, what: str = "--max-memory") -> int:
    """``"4G"`` -> 4 * 2**30 bytes; ``"2.5GiB"``, ``"512M"``, ``"1048576"`` (bytes).

    Raises
    ------
    SpecError
        Not a size, or zero.
    """
    match = _MEMORY_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise SpecError(f"bad {what} {text!r}: expected a size such as 4G, 512M or 2.5GiB")
    value = float(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()]
    if not math.isfinite(value) or value < 1:
        raise SpecError(f"bad {what} {text!r}: must be a positive size")
    if value > _MEMORY_MAX:
        raise SpecError(f"bad {what} {text!r}: larger than any address space "
                        f"(at most {format_memory(_MEMORY_MAX)})")
    return int(value)


def format_memory(nbytes: float) -> str:
    """Bytes in binary units, three significant digits: ``"1 GiB"``, ``"2.5 GiB"``."""
    value, unit = float(nbytes), "B"
    for name in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024:
            break
        value, unit = value / 1024, name
    return f"{value:.3g} {unit}" if abs(value) < 100 else f"{value:.0f} {unit}"


@dataclass
class SweepSpec:
    """Everything that defines a sweep; expanded to cells by :mod:`factorbench.sweep`.

    ``impls`` None means every impl of the selected ops; ``kinds`` None means
    each op's :data:`DEFAULT_KINDS`; ``aspect`` None means :data:`DEFAULT_ASPECT`.
    ``max_memory`` (bytes) caps each CPU worker's virtual address space.
    ``residual`` is ``||r|| / ||A x_true||`` of the least-squares right-hand
    sides (0: consistent, the default; see
    :func:`factorbench.accuracy.matrices.lstsq_rhs`).  ``per_op`` maps an op to
    its own values of the fields in :data:`PER_OP_FIELDS` (sizes, kappas,
    kinds, aspect, rank): one run can then hold a 4000 x 2000 low-rank
    problem next to a 20000 x 200 least-squares one; see :meth:`for_op`.
    ``accuracy_only`` calls each impl once and records its metrics and that
    call's wall time (``first_call_s``) only: no timed repeats, no GFLOP/s.
    It does not enter the cell keys, so an accuracy-only run and a timed run
    of one spec hold the same cells.
    """

    ops: list[str] = field(default_factory=lambda: list(OPS))
    impls: list[str] | None = None
    kinds: list[str] | None = None
    sizes: list[int] = field(default_factory=lambda: [64, 128, 256])
    kappas: list[float] = field(default_factory=lambda: [1e2, 1e8])
    dtypes: list[str] = field(default_factory=lambda: ["float64", "float32"])
    seeds: int = 1
    base_seed: int = 0
    aspect: float | None = None
    rank: int | None = None
    params: dict[str, list] = field(default_factory=dict)
    timeout: float = 300.0
    min_time: float = 0.2
    max_repeats: int = 50
    max_time: float = 10.0
    max_n: int | None = None
    threads: int | None = None
    max_memory: int | None = None
    threshold: float = 30.0
    lowrank_threshold: float = LOWRANK_THRESHOLD
    plugins: list[str] = field(default_factory=list)
    residual: float = 0.0
    per_op: dict[str, dict] = field(default_factory=dict)
    accuracy_only: bool = False

    def for_op(self, op: str) -> SweepSpec:
        """The spec as seen by ``op``: its :attr:`per_op` values in place of the shared ones."""
        over = self.per_op.get(op)
        if not over:
            return self
        return dataclasses.replace(self, per_op={}, **over)

    def clear_per_op(self, name: str) -> None:
        """Drop ``name`` from every op's overrides: a value given for the whole
        sweep (on the command line) applies to every op."""
        for over in self.per_op.values():
            over.pop(name, None)

    def validate(self) -> SweepSpec:
        """Check every field; raise :class:`SpecError` with one line."""
        if not isinstance(self.per_op, dict):
            _fail("per_op must map op names to field overrides")
        for op, over in self.per_op.items():
            if op not in OPS:
                _fail(f"per_op: unknown op {op!r}")
            bad = set(over) - set(PER_OP_FIELDS)
            if bad:
                _fail(f"per_op[{op!r}]: {sorted(bad)[0]!r} cannot vary by op "
                      f"(only {', '.join(PER_OP_FIELDS)})")
            if op in self.ops:
                self.for_op(op)._validate()
        aspect = self.for_op("lstsq").aspect
        if self.residual and "lstsq" in self.ops and aspect is not None and aspect <= 1:
            _fail("--residual needs tall least-squares problems (--aspect > 1): a square "
                  "matrix's range is everything, no residual is orthogonal to it")
        return self._validate()

    def _validate(self) -> SweepSpec:
        parse_list(",".join(self.ops), OPS, "op") if self.ops else _fail("no ops selected")
        parse_list(",".join(self.dtypes), PRECISIONS, "dtype") if self.dtypes else _fail(
            "no dtypes selected")
        if self.kinds is not None:
            if not self.kinds:
                _fail("no matrix kinds selected")
            for k in self.kinds:
                parse_kind(k)
        if not self.sizes or min(self.sizes) < 1:
            _fail("sizes must be positive integers")
        if not self.kappas or min(self.kappas) < 1:
            _fail("kappa must be >= 1")
        checks = [
            (self.seeds >= 1, "--seeds must be >= 1"),
            (self.aspect is None or self.aspect >= 1, "--aspect must be >= 1 (m >= n)"),
            (self.rank is None or self.rank >= 1, "--rank must be >= 1"),
            (self.timeout > 0, "--timeout must be > 0"),
            (self.min_time >= 0 and self.max_time > 0, "timing limits must be positive"),
            (self.max_repeats >= 1, "max_repeats must be >= 1"),
            (self.max_n is None or self.max_n >= 1, "--max-n must be >= 1"),
            (self.threads is None or self.threads >= 1, "--threads must be >= 1"),
            (self.max_memory is None or (isinstance(self.max_memory, int)
                                         and self.max_memory >= MIN_MAX_MEMORY),
             f"--max-memory must be at least {format_memory(MIN_MAX_MEMORY)}, got "
             f"{_memory_text(self.max_memory)}: the cap is on a worker's virtual address "
             "space, which Python, numpy, scipy and the BLAS buffers fill before any cell runs"),
            (self.threshold > 0, "threshold must be > 0"),
            (self.lowrank_threshold >= 1, "lowrank threshold must be >= 1 (1 is optimal)"),
            (isinstance(self.residual, int | float) and math.isfinite(self.residual)
             and self.residual >= 0, f"--residual must be a finite number >= 0, got "
                                     f"{self.residual!r}"),
        ]
        for ok, msg in checks:
            if not ok:
                _fail(msg)
        return self

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data) -> SweepSpec:
        if isinstance(data, str):
            data = json.loads(data)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _fail(msg):
    raise SpecError(msg)


def _memory_text(value) -> str:
    return format_memory(value) if isinstance(value, int | float) else repr(value)


#: Fields of a SweepSpec that :attr:`SweepSpec.per_op` may set for one op.
PER_OP_FIELDS = ("sizes", "kappas", "kinds", "aspect", "rank")

#: Named presets: a dict of SweepSpec fields.
PRESETS: dict[str, dict] = {
    # Every op, every available family, small sizes: a smoke sweep that runs in
    # well under a minute on two cores and still shows the stability story
    # (kappa 1e2 vs 1e10, float64 vs float32).
    "quick": {
        "sizes": [48, 96, 192],
        "kappas": [1e2, 1e10],
        "dtypes": ["float64", "float32"],
        # one block (and dask chunk) size, smaller than n, so the blocked paths
        # run (the blas3 preset sweeps them), and one setting of each
        # randomized method (the randomized preset sweeps them)
        # and refinement from float32 and emulated bfloat16 factors (float16 and its
        # slow GMRES-IR run in the standard preset)
        "params": {"block": [32], "chunk": [32], "p": [10], "q": [2],
                   "sketch": ["gaussian"], "factor": ["float32", "bfloat16"]},
        "min_time": 0.01,
        "max_repeats": 10,
        "max_time": 0.5,
        "timeout": 60.0,
    },
    "standard": {
        "sizes": [64, 128, 256, 512, 1024, 2048],
        "kappas": [1e0, 1e4, 1e8, 1e12, 1e16],
        # the emulated formats run only for the impls that declare them (the
        # textbook and blocked families); the others' cells are skipped
        "dtypes": ["float64", "float32", "float16", "bfloat16"],
        "params": {"block": [64], "chunk": [128], "p": [10], "q": [0, 2],
                   "sketch": ["gaussian", "srht"]},
        "min_time": 0.1,
        "max_repeats": 30,
        "max_time": 5.0,
        "timeout": 600.0,
    },
    # The BLAS-3 story: the blocked, recursive and compiled families next to
    # LAPACK, and next to the BLAS-1/2 textbook loops (up to their max_n), for
    # the three factorizations whose speed is all about blocking, at sizes
    # where blocking matters, every block size swept.  Each op's default
    # matrix families (lu: randsvd, gaussian and Wilkinson, whose overflowing
    # cells fail and so never count as throughput).  Square QR, so that "n"
    # means the same matrix size for all three ops.  One kappa: throughput
    # does not depend on it; the standard preset sweeps accuracy.
    "blas3": {
        "ops": ["lu", "cholesky", "qr"],
        "sizes": [512, 1024, 2048, 4096],
        "kappas": [1e2],
        "dtypes": ["float64", "float32"],
        "aspect": 1.0,
        "min_time": 0.5,
        "max_repeats": 10,
        "max_time": 5.0,
        "timeout": 1200.0,
    },
    # The randomized family against the deterministic drivers and the peer
    # libraries, each op at the shape its methods are for: a 4000 x 2000
    # matrix of numerical rank 50 with a slowly (polynomially) decaying tail
    # and a rank-50 signal over a flat noise floor, k = 50; a 20000 x 200
    # least-squares problem at kappa 1e4 and 1e10 whose right-hand side has a
    # residual (1e-10 ||Ax||, so kappa^2 eta u ~ kappa u at kappa = 1e10),
    # where sketch-and-solve's error shows; column pivoting on rank-deficient
    # matrices and on Kahan's, the adversary of every column-norm pivoting rule.
    "randomized": {
        "ops": ["lowrank", "lstsq", "qrcp"],
        "dtypes": ["float64"],
        "sizes": [2000],
        "kappas": [1e10],
        "residual": 1e-10,
        # the adaptive range finder at two relative Frobenius tolerances (on the slow
        # tail, 0.1 asks for rank 51 and 0.01 for rank 228)
        "params": {"p": [10], "sketch": ["gaussian", "sparse", "srht"], "tol": [0.1, 0.01]},
        "per_op": {
            "lowrank": {"sizes": [2000], "aspect": 2.0, "rank": 50,
                        "kinds": ["polydecay", "lowrank"]},
            "lstsq": {"sizes": [200], "aspect": 100.0, "kappas": [1e4, 1e10],
                      "kinds": ["randsvd"]},
            "qrcp": {"sizes": [400], "aspect": 1.0, "kinds": ["rankdef", "kahan"]},
        },
        "min_time": 0.5,
        "max_repeats": 10,
        "max_time": 5.0,
        "timeout": 600.0,
    },
    # CPU against GPU: the GPU impls (the cuSOLVER drivers and the blocked
    # family's square-matrix twins; TSQR and the randomized twins are for tall
    # and low-rank shapes) next to the library driver a CPU user of each op
    # would call, from sizes where the GPU loses to sizes where only it is
    # practical, so the report can place the crossover with and without the
    # host-device copies.  One well-conditioned problem per op and size (speed
    # does not depend on kappa), square except least squares (2n x n).  SVD,
    # eigh and least squares (by the SVD, about 10x LU's flops) stop at 8192,
    # where gesdd on the host already takes minutes.
    "gpu": {
        "ops": ["lu", "cholesky", "qr", "svd", "eigh", "solve", "lstsq"],
        "impls": ["cupy", "cupy-gesvd", "cupy-gesvdj", "cupy-gels", "blocked-cupy",
                  "recursive-cupy", "cholqr2-blocked-cupy", "scholqr3-cupy",
                  "lapack", "gesdd", "syevd", "gesv", "gelsd"],
        "sizes": [256, 512, 1024, 2048, 4096, 8192, 16384],
        "kappas": [1e2],
        "dtypes": ["float64", "float32"],
        "aspect": 1.0,
        # GPU panels: the CPU presets' 32-64 columns leave a GPU idle
        "params": {"block": [256]},
        "per_op": {
            "lu": {"kinds": ["randsvd"]},
            "solve": {"kinds": ["randsvd"]},
            "svd": {"sizes": [256, 512, 1024, 2048, 4096, 8192]},
            "eigh": {"sizes": [256, 512, 1024, 2048, 4096, 8192]},
            "lstsq": {"sizes": [256, 512, 1024, 2048, 4096, 8192], "aspect": 2.0},
        },
        "min_time": 0.5,
        "max_repeats": 10,
        "max_time": 10.0,
        "timeout": 3600.0,
    },
    "full": {
        "sizes": [64, 128, 256, 512, 1024, 2048, 4096],
        "kappas": [1e0, 1e2, 1e4, 1e6, 1e8, 1e10, 1e12, 1e14, 1e16],
        "dtypes": ["float64", "float32", "complex128", "complex64"],
        "seeds": 3,
        "min_time": 0.2,
        "max_repeats": 50,
        "max_time": 10.0,
        "timeout": 1800.0,
    },
}


def preset(name: str) -> SweepSpec:
    """The SweepSpec of a named preset."""
    parse_list(name, PRESETS, "preset")
    # a copy: the caller amends its spec (--param, --sizes), never the table
    return SweepSpec(**copy.deepcopy(PRESETS[name]))
