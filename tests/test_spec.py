import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from factorbench.spec import (
    MAX_RANGE_VALUES,
    MIN_MAX_MEMORY,
    PRESETS,
    SpecError,
    SweepSpec,
    format_memory,
    parse_kind,
    parse_list,
    parse_memory,
    parse_param,
    parse_range,
    preset,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("64:4096:x2", [64, 128, 256, 512, 1024, 2048, 4096]),
        ("64:500:x2", [64, 128, 256]),
        ("64:256:+64", [64, 128, 192, 256]),
        ("100", [100]),
        ("300,100,100,200", [100, 200, 300]),
        ("32,64:256:x2", [32, 64, 128, 256]),
        ("1e3", [1000]),
    ],
)
def test_size_ranges(text, expected):
    assert parse_range(text, integer=True, minimum=1) == expected


def test_kappa_range_exact_decades():
    vals = parse_range("1e0:1e16:x100", integer=False, minimum=1)
    assert vals == [1e0, 1e2, 1e4, 1e6, 1e8, 1e10, 1e12, 1e14, 1e16]


@pytest.mark.parametrize(
    "text",
    ["", "abc", "64:32:x2", "64:128:x1", "64:128:x0.5", "0:128:x2", "64:128:+0", "64:128:-1",
     "64:128", "1:2:3:4", "64,,128", "1.5", "nan", "inf", "64:128:y2", "-5", "0"],
)
def test_bad_sizes(text):
    with pytest.raises(SpecError):
        parse_range(text, integer=True, minimum=1, what="size")


def test_kappa_below_one():
    with pytest.raises(SpecError, match=">= 1"):
        parse_range("0.5,10", integer=False, minimum=1, what="kappa")


def test_too_many_values():
    with pytest.raises(SpecError, match="more than"):
        parse_range(f"1:{MAX_RANGE_VALUES * 2}:+1", integer=True, minimum=1)


@given(start=st.integers(1, 10_000), factor=st.integers(2, 10), count=st.integers(1, 12))
def test_geometric_property(start, factor, count):
    stop = start * factor ** (count - 1)
    vals = parse_range(f"{start}:{stop}:x{factor}", integer=True, minimum=1)
    assert vals[0] == start and vals[-1] == stop and len(vals) == count
    assert all(b == a * factor for a, b in zip(vals, vals[1:], strict=False))


@given(start=st.integers(1, 1000), step=st.integers(1, 100), extra=st.integers(0, 99),
       count=st.integers(1, 50))
def test_arithmetic_property(start, step, extra, count):
    stop = start + step * (count - 1) + min(extra, step - 1)
    vals = parse_range(f"{start}:{stop}:+{step}", integer=True, minimum=1)
    assert vals == [start + step * i for i in range(count)]


@given(st.text(max_size=30))
def test_parser_never_crashes(text):
    # Any input either parses to sorted positive values or is a SpecError.
    try:
        vals = parse_range(text, integer=False, minimum=1)
    except SpecError:
        return
    assert vals == sorted(vals) and all(math.isfinite(v) and v >= 1 for v in vals)


def test_names_suggest_close_matches():
    with pytest.raises(SpecError, match="did you mean float32"):
        parse_list("float64,flaot32", ["float64", "float32"], "dtype")
    assert parse_kind("randsvd:5") == ("randsvd", 5)
    with pytest.raises(SpecError, match="1..5"):
        parse_kind("randsvd:7")
    with pytest.raises(SpecError, match="no modes"):
        parse_kind("hilbert:2")
    with pytest.raises(SpecError, match="did you mean"):
        parse_kind("randsv")


def test_param_parsing():
    assert parse_param("block=64,128") == ("block", [64, 128])
    assert parse_param("tol=1e-3") == ("tol", [1e-3])
    for bad in ("block", "=3", "block=", "9x=1", "block=1,,2"):
        with pytest.raises(SpecError):
            parse_param(bad)


def test_presets_validate_and_roundtrip():
    for name in PRESETS:
        spec = preset(name).validate()
        assert SweepSpec.from_json(spec.to_json()) == spec
    with pytest.raises(SpecError, match="did you mean quick"):
        preset("quik")


@pytest.mark.parametrize(
    "field, value",
    [("seeds", 0), ("aspect", 0.5), ("rank", 0), ("timeout", 0), ("threads", 0),
     ("ops", ["lu", "lx"]), ("dtypes", ["float8"]), ("kappas", [0.5]), ("sizes", [0])],
)
def test_spec_validation(field, value):
    spec = SweepSpec()
    setattr(spec, field, value)
    with pytest.raises(SpecError):
        spec.validate()


@pytest.mark.parametrize(
    "text, expected",
    [("4G", 4 * 2**30), ("512M", 512 * 2**20), ("2.5GiB", 5 * 2**29), ("1t", 2**40),
     ("64MB", 64 * 2**20), ("1048576", 2**20), (" 3 g ", 3 * 2**30), (".5G", 2**29),
     ("100K", 102400), ("7b", 7)],
)
def test_memory_sizes(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "0", "abc", "1X", "G", "1e9", "nan", "inf", "4 GG",
                                  "0.1", "1,5G", "9" * 400 + "T", "99999999999T", "2E"])
def test_bad_memory_sizes(text):
    with pytest.raises(SpecError, match="--max-memory"):
        parse_memory(text)


def test_format_memory():
    assert [format_memory(v) for v in (0, 1000, 2**20, 5 * 2**29, 1023.9 * 2**30, 2**40)] == [
        "0 B", "1000 B", "1 MiB", "2.5 GiB", "1024 GiB", "1 TiB"]


def test_max_memory_validated_and_kept_in_json():
    spec = SweepSpec(max_memory=parse_memory("1G")).validate()
    again = SweepSpec.from_json(spec.to_json())
    assert again.max_memory == 2**30 and again == spec
    old = spec.to_json()
    del old["max_memory"]  # a spec stored before the field existed
    assert SweepSpec.from_json(old).max_memory is None
    for bad in (MIN_MAX_MEMORY - 1, 10 * 1024, 0, -5, 1.5e9):
        with pytest.raises(SpecError, match="--max-memory must be at least 256 MiB"):
            SweepSpec(max_memory=bad).validate()


def test_preset_specs_are_copies():
    a = preset("quick")
    a.params["block"] = [999]
    a.sizes.append(7)
    b = preset("quick")
    assert b.params["block"] == [32] and 7 not in b.sizes
