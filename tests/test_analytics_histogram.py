"""Exponential histograms: exact bucket boundaries, exact merges, quantiles within the error bound."""

from __future__ import annotations

import math
import random
import sqlite3
import sys
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgectl.analytics.histogram import (
    MAX_INDEX,
    MIN_INDEX,
    RELATIVE_ERROR,
    Accumulator,
    Histogram,
    HistogramRecord,
    bucket_bounds,
    bucket_index,
    indices_of,
    merged_blob,
    merged_sum,
    pack_buckets,
    rollup_of,
    summed_rollup,
    unpack_buckets,
)

TINY = 5e-324  # the smallest float, 2**-1074
HUGE = sys.float_info.max
QUANTILES = ["0.5", "0.9", "0.95", "0.99", "0.999"]


def exact_index(value: float) -> int:
    """The i with 2**i < value**64 <= 2**(i+1), in integers: base**i < value <= base**(i+1)."""
    n, d = value.as_integer_ratio()
    top, bottom = n**64, d**64

    def above(i: int) -> bool:  # value**64 > 2**i
        return top > bottom << i if i >= 0 else top << -i > bottom

    i = top.bit_length() - bottom.bit_length() + 1
    while not above(i):
        i -= 1
    return i


def nearest_rank(values: list[float], q: str) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(Fraction(q) * len(ordered))) - 1]


def relative_error(got: float, want: float) -> float:
    return 0.0 if got == want else abs(got - want) / abs(want)


def one_by_one(values) -> Histogram:
    histogram = Histogram()
    for value in values:
        histogram.add(value)
    return histogram


def next_up(x: float) -> float:
    return math.nextafter(x, math.inf)


def next_down(x: float) -> float:
    return math.nextafter(x, -math.inf)


# Indices worth checking one by one: every boundary of a few octaves around 1, the subnormal
# octaves, the first normal one and the top.
SOME_INDICES = sorted({*range(-192, 192), *range(MIN_INDEX, MIN_INDEX + 130), *range(-65409 - 64, -65409 + 64),
                       *range(MAX_INDEX - 130, MAX_INDEX + 1), *range(-60000, -59990), *range(30000, 30010)})

# Values next to boundaries, where a logarithm would misplace about half of them.
BOUNDARY_VALUES = sorted({v for i in range(-640, 640, 7) for upper in [bucket_bounds(i)[1]]
                          for v in (next_down(upper), upper, next_up(upper))})


@st.composite
def latencies(draw) -> list[float]:
    """Lognormal, uniform, heavy-tailed, repeating and single-valued samples."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    size = draw(st.integers(1, 2000))
    kind = draw(st.sampled_from(["lognormal", "uniform", "pareto", "repeats", "whole ms", "single", "drawn"]))
    if kind == "lognormal":
        mu, sigma = draw(st.floats(-5, 8)), draw(st.floats(0.01, 3))
        return [rng.lognormvariate(mu, sigma) for _ in range(size)]
    if kind == "uniform":
        low = draw(st.floats(0, 100))
        return [rng.uniform(low, low + draw(st.floats(0.001, 1e4))) for _ in range(size)]
    if kind == "pareto":
        alpha = draw(st.floats(0.3, 3))
        return [rng.paretovariate(alpha) * 0.1 for _ in range(size)]
    if kind == "repeats":
        pool = [rng.lognormvariate(2, 1) for _ in range(draw(st.integers(1, 8)))]
        return [rng.choice(pool) for _ in range(size)]
    if kind == "whole ms":
        return [float(int(rng.lognormvariate(3, 1))) for _ in range(size)]
    if kind == "single":
        return [draw(st.floats(sys.float_info.min, HUGE))] * draw(st.integers(1, 50))
    # the error bound holds for normal floats: a subnormal bucket's middle is rounded to few bits
    return draw(st.lists(st.one_of(st.floats(sys.float_info.min, HUGE), st.sampled_from(BOUNDARY_VALUES)),
                         min_size=1))


# -- bucket boundaries ---------------------------------------------------------------------------


def test_powers_of_two_are_the_top_of_the_bucket_below():
    # OpenTelemetry's exact case: 2**k is base**(64k), the upper bound of bucket 64k - 1.
    for k in range(-1074, 1024):
        assert bucket_index(2.0**k) == (k << 6) - 1
        assert bucket_bounds((k << 6) - 1)[1] == 2.0**k


def test_bounds_are_the_floats_at_or_under_each_boundary():
    for i in SOME_INDICES:
        lower, upper = bucket_bounds(i)
        # upper is the largest float <= base**(i+1) = 2**((i+1)/64), compared in exact arithmetic
        if i < MAX_INDEX:
            assert Fraction(upper) ** 64 <= Fraction(2) ** (i + 1) < Fraction(next_up(upper)) ** 64
        assert bucket_bounds(i + 1)[0] == upper if i < MAX_INDEX else upper == HUGE
        assert lower < upper or upper < sys.float_info.min  # subnormal buckets may hold no float


def test_values_at_and_next_to_every_boundary():
    for i in SOME_INDICES:
        lower, upper = bucket_bounds(i)
        if upper == lower:  # a subnormal bucket that holds no float
            assert bucket_index(upper) < i
            continue
        assert bucket_index(upper) == i
        if i < MAX_INDEX:  # the next bucket, or beyond it where subnormal buckets hold no float
            assert bucket_index(next_up(upper)) == exact_index(next_up(upper)) > i
            assert bucket_index(next_up(upper)) == i + 1 or upper < sys.float_info.min
        if lower > 0:
            assert bucket_index(lower) == exact_index(lower) < i
            assert bucket_index(lower) == i - 1 or lower < sys.float_info.min
            assert bucket_index(next_up(lower)) == i
        if upper > TINY:
            assert bucket_index(next_down(upper)) == exact_index(next_down(upper)) <= i


def test_tiny_huge_and_subnormal_values():
    assert bucket_index(TINY) == MIN_INDEX == -68737
    assert bucket_bounds(MIN_INDEX) == (0.0, TINY)
    assert bucket_index(HUGE) == MAX_INDEX == 65535
    assert bucket_bounds(MAX_INDEX)[1] == HUGE
    assert bucket_index(sys.float_info.min) == -1022 * 64 - 1
    assert bucket_index(next_up(sys.float_info.min)) == -1022 * 64
    for value in (TINY * 3, 1e-320, 1e-310, next_down(sys.float_info.min), 1e300, 1e308):
        assert bucket_index(value) == exact_index(value)
    for index in (MIN_INDEX - 1, MAX_INDEX + 1):
        with pytest.raises(ValueError):
            bucket_bounds(index)


@given(st.floats(TINY, HUGE))
def test_bucket_index_is_exact(value):
    assert bucket_index(value) == exact_index(value)
    lower, upper = bucket_bounds(bucket_index(value))
    assert lower < value <= upper


@given(st.floats(1e-9, 1e12))
def test_numbering_is_opentelemetrys(value):
    # The data model's formula for scale 6, which is right wherever value is not next to a boundary.
    guess = math.log(value) * math.ldexp(math.log2(math.e), 6)
    if abs(guess - round(guess)) > 1e-6:
        assert bucket_index(value) == math.floor(guess)


# -- quantiles -----------------------------------------------------------------------------------


def test_the_error_bound():
    assert RELATIVE_ERROR == pytest.approx(2 ** (1 / 128) - 1, rel=1e-12)
    assert 0.0054 < RELATIVE_ERROR < 0.00544


@settings(max_examples=200, deadline=None)
@given(latencies())
def test_quantiles_are_within_the_bound_of_the_exact_nearest_rank(values):
    histogram = Histogram.of(values)
    got = histogram.quantiles([float(q) for q in QUANTILES])
    for q, answer in zip(QUANTILES, got):
        want = nearest_rank(values, q)
        assert relative_error(answer, want) <= RELATIVE_ERROR * (1 + 1e-9) < 0.006, (q, answer, want)
        assert histogram.quantile(float(q)) == answer
    assert histogram.quantile(0.0) == min(values)
    assert histogram.quantile(1.0) == max(values)


def test_the_answer_is_the_buckets_geometric_middle():
    # A value just above its bucket's lower bound is answered about 0.54% high: the bound is tight.
    lower, upper = bucket_bounds(300)
    value = next_up(lower)
    answer = Histogram.of([1.0, value, 1e9]).quantile(0.5)
    assert answer == pytest.approx(math.sqrt(lower * upper), rel=1e-12)
    assert relative_error(answer, value) > 0.0054


def test_nearest_rank_reads_q_as_its_decimal():
    # 0.07 as a binary float is a little over 0.07, which would make the 7th of 100 the 8th.
    values = [1.0] * 7 + [1000.0] * 93
    assert Histogram.of(values).quantile(0.07) == 1.0
    assert Histogram.of(values).quantile(0.071) == pytest.approx(1000.0, rel=RELATIVE_ERROR)
    assert Histogram.of([1.0] * 9 + [1000.0]).quantile(0.9) == 1.0


def test_quantiles_come_in_the_order_asked():
    histogram = Histogram.of([float(v) for v in range(1, 1001)])
    asked = [0.99, 0.0, 0.5, 1.0, 0.5]
    assert histogram.quantiles(asked) == [histogram.quantile(q) for q in asked]
    assert histogram.quantiles(asked)[1:4] == [1.0, pytest.approx(500, rel=RELATIVE_ERROR), 1000.0]


def test_an_empty_histogram():
    histogram = Histogram()
    assert histogram.quantile(0.5) is None
    assert histogram.quantiles([0.5, 0.9]) == [None, None]
    assert histogram.to_record() == HistogramRecord(count=0, sum=0.0, min=None, max=None, zero_count=0)
    assert histogram.to_rows() == []
    histogram.add_many([])
    assert histogram == Histogram()


@pytest.mark.parametrize("q", [-0.1, 1.5, math.nan, math.inf, 2])
def test_quantiles_outside_0_to_1_are_refused(q):
    with pytest.raises(ValueError):
        Histogram.of([1.0, 2.0]).quantile(q)


# -- the zero bucket -----------------------------------------------------------------------------


def test_zero_and_below_count_in_the_zero_bucket():
    histogram = Histogram.of([0.0, -0.0, 0.0, 12.5, 30.0])
    assert histogram.zero_count == 3
    assert histogram.buckets == {bucket_index(12.5): 1, bucket_index(30.0): 1}
    assert histogram.quantile(0.5) == 0.0  # a latency of 0 ms
    assert histogram.quantile(0.0) == 0.0 and math.copysign(1, histogram.min) == 1
    assert histogram.quantile(0.8) == pytest.approx(12.5, rel=RELATIVE_ERROR)
    assert histogram.quantile(0.81) == 30.0
    negative = Histogram.of([-3.0, 0.0, 1.0])
    assert (negative.zero_count, negative.min, negative.quantile(0.0), negative.quantile(0.5)) == (2, -3.0, -3.0, 0.0)
    assert one_by_one([0.0, -0.0, 0.0, 12.5, 30.0]) == histogram
    for values in ([-0.0, 0.0, 1.0], [-0.0] * 600 + [1.0], [-0.0 if i % 2 else 1.0 + i for i in range(600)]):
        # -0.0 is kept as 0.0, so that min does not depend on the order values come in
        assert math.copysign(1, Histogram.of(values).min) == math.copysign(1, one_by_one(values).min) == 1
    for value in (0.0, -0.0, -1.0):
        with pytest.raises(ValueError):
            bucket_index(value)


# -- what is refused -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("size", [3, 5000])
def test_nan_and_infinities_are_refused_and_change_nothing(bad, size):
    histogram = Histogram.of([1.0, 2.0])
    before = histogram.copy()
    with pytest.raises(ValueError):
        histogram.add(bad)
    distinct = [1.0 + i / size for i in range(size)]
    for values in (distinct[:size // 2] + [bad] + distinct[size // 2:], [1.0] * size + [bad], [bad, -bad, 1.0]):
        with pytest.raises(ValueError):
            histogram.add_many(values)
    assert histogram == before
    with pytest.raises(ValueError):
        bucket_index(bad)


def test_text_is_not_a_number():
    for values in (["1.5"], ["1.5"] * 600):
        with pytest.raises(TypeError):
            Histogram().add_many(values)
    with pytest.raises(TypeError):
        Histogram().add("1.5")


# -- merging and adding --------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(latencies(), st.data())
def test_merging_the_parts_of_any_split_in_any_order_is_the_whole(values, data):
    whole = Histogram.of(values)
    assert whole.exact_sum == sum(map(Fraction, values))
    assert whole.count == len(values) and (whole.min, whole.max) == (min(values), max(values))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(values)), max_size=6)))
    parts = [Histogram.of(values[a:b]) for a, b in zip([0, *cuts], [*cuts, len(values)])]
    data.draw(st.randoms()).shuffle(parts)
    while len(parts) > 1:  # merge neighbours picked at random: any grouping
        k = data.draw(st.integers(0, len(parts) - 2))
        left, right = parts[k].copy(), parts.pop(k + 1)
        left.merge(right)
        parts[k] = left
    assert parts[0] == whole
    assert parts[0].to_rows() == whole.to_rows() and parts[0].sum == whole.sum


@settings(max_examples=200, deadline=None)
@given(latencies())
def test_add_many_is_add_one_by_one(values):
    assert Histogram.of(values) == one_by_one(values)
    assert Histogram.of(iter(values)) == one_by_one(values)


def test_add_many_next_to_boundaries_and_at_the_extremes():
    cases = [BOUNDARY_VALUES, BOUNDARY_VALUES * 5, [2.0**k for k in range(-1074, 1024)],
             [TINY, 1e-310, sys.float_info.min, 1.0, 1e300], [HUGE, HUGE, 1.0], [0.0, -2.5, *BOUNDARY_VALUES]]
    for values in cases:
        histogram = Histogram.of(values)
        assert histogram == one_by_one(values)
        assert histogram.buckets == dict(Counter(exact_index(v) for v in values if v > 0))
    overflowing = Histogram.of([HUGE, HUGE, 1.0])
    assert overflowing.sum == math.inf and overflowing.exact_sum == 2 * Fraction(HUGE) + 1


def test_merging_an_empty_histogram_changes_nothing():
    histogram = Histogram.of([3.0, 4.0])
    before = histogram.copy()
    histogram.merge(Histogram())
    assert histogram == before
    empty = Histogram()
    empty.merge(before)
    assert empty == before


# -- storage -------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(latencies())
def test_rows_round_trip(values):
    histogram = Histogram.of(values)
    if not math.isfinite(histogram.sum):  # past the largest float: nothing to store it as
        with pytest.raises(ValueError):
            Histogram.from_rows(histogram.to_record(), histogram.to_rows())
        return
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE buckets (bucket INTEGER PRIMARY KEY, count INTEGER NOT NULL)")
    db.executemany("INSERT INTO buckets VALUES (?, ?)", histogram.to_rows())
    back = Histogram.from_rows(histogram.to_record(), db.execute("SELECT bucket, count FROM buckets ORDER BY bucket"))
    assert back.to_record() == histogram.to_record()
    assert back.to_rows() == histogram.to_rows() == sorted(histogram.buckets.items())
    assert back.quantiles([0.5, 0.99]) == histogram.quantiles([0.5, 0.99])
    if histogram.exact_sum == Fraction(histogram.sum):  # the stored sum is the float nearest the exact one
        assert back == histogram


def test_rows_round_trip_whole_milliseconds_exactly():
    histogram = Histogram.of([0.0, 0.0, 3.0, 17.0, 17.0, 250.0])
    record, rows = histogram.to_record(), histogram.to_rows()
    assert record == HistogramRecord(count=6, sum=287.0, min=0.0, max=250.0, zero_count=2, scale=6)
    assert rows == [(bucket_index(3.0), 1), (bucket_index(17.0), 2), (bucket_index(250.0), 1)]
    assert Histogram.from_rows(record, rows) == histogram


@pytest.mark.parametrize("change", [
    {"count": 7}, {"zero_count": 1}, {"scale": 5}, {"min": 18.0}, {"min": 1.0}, {"max": 300.0},
    {"sum": math.nan}, {"min": None},
])
def test_inconsistent_rows_are_refused(change):
    record = Histogram.of([0.0, 0.0, 3.0, 17.0, 17.0, 250.0]).to_record()
    rows = Histogram.of([3.0, 17.0, 17.0, 250.0]).to_rows()
    Histogram.from_rows(record, rows)
    fields = {**record.__dict__, **change}
    if "min" in change and change["min"] is not None and change["min"] > 0:
        fields["zero_count"], fields["count"] = 0, 4  # a positive min needs no zero bucket
    with pytest.raises(ValueError):
        Histogram.from_rows(HistogramRecord(**fields), rows)


@pytest.mark.parametrize("rows", [
    [(4, 1), (4, 1)], [(4, 0), (4, 2)], [(MAX_INDEX + 1, 2)], [(4, -1), (4, 3)], [(4, 2), (5, 0)],
])
def test_malformed_rows_are_refused(rows):
    record = HistogramRecord(count=2, sum=2.1, min=1.05, max=1.05, zero_count=0)
    assert bucket_index(1.05) == 4
    Histogram.from_rows(record, [(4, 2)])
    if rows == [(4, 1), (4, 1)]:  # a row stored twice is refused, not read as one
        record = HistogramRecord(count=1, sum=1.05, min=1.05, max=1.05, zero_count=0)
        Histogram.from_rows(record, [(4, 1)])
    with pytest.raises(ValueError):
        Histogram.from_rows(record, rows)


# -- the packed form (a rollup row's BLOB) -------------------------------------------------------

with_zeros = st.builds(lambda values, zeros: values + [0.0] * zeros + [-1.5] * (zeros // 2),
                       latencies(), st.integers(0, 5))


@settings(max_examples=150, deadline=None)
@given(with_zeros)
def test_blobs_round_trip_with_the_exact_sum(values):
    histogram = Histogram.of(values)
    back = Histogram.from_blob(histogram.to_record(), histogram.to_blob())
    assert back == histogram and back.exact_sum == sum(map(Fraction, values))
    assert back.quantiles([0.5, 0.95, 0.99]) == histogram.quantiles([0.5, 0.95, 0.99])


def test_dense_and_sparse_layouts_each_round_trip():
    narrow = Histogram.of([10.0 + i / 100 for i in range(3000)])  # every bucket in its range used
    spread = Histogram.of([1e-300, 1.0, 1e300])  # three buckets, 2**16 or more indices apart
    tall = Histogram.of([5.0] * 70_000 + [7.5])  # a count past 2 bytes
    for histogram, layout in ((narrow, "dense"), (spread, "sparse"), (tall, "sparse")):
        _, low, offsets, counts = unpack_buckets(histogram.to_blob())
        assert (offsets is None) == (layout == "dense")
        assert Histogram.from_blob(histogram.to_record(), histogram.to_blob()) == histogram
    assert len(narrow.to_blob()) < 2 * len(narrow.buckets) + 32
    assert unpack_buckets(tall.to_blob())[3].itemsize == 4


def test_a_float_sum_is_not_stored_twice():
    whole_ms = Histogram.of([3.0, 17.0, 250.0])  # a sum a float holds exactly
    thirds = Histogram.of([0.1, 0.2, 0.3])
    assert unpack_buckets(whole_ms.to_blob())[0] is None
    assert unpack_buckets(thirds.to_blob())[0] == thirds.exact_sum * 2**1074


@settings(max_examples=120, deadline=None)
@given(with_zeros, st.data())
def test_rows_of_parts_add_up_to_the_row_of_the_whole_bit_for_bit(values, data):
    cuts = sorted(data.draw(st.lists(st.integers(0, len(values)), max_size=5)))
    parts = [values[a:b] for a, b in zip([0, *cuts], [*cuts, len(values)]) if b > a]
    data.draw(st.randoms()).shuffle(parts)
    whole = rollup_of(values, indices_of(values))
    rows = [rollup_of(part, indices_of(part)) for part in parts]
    assert summed_rollup(rows) == whole
    total, blob = rows[0][1], rows[0][5]
    for row in rows[1:]:  # as the upsert adds a batch's row to the stored one
        total, blob = merged_sum(total, blob, row[1], row[5]), merged_blob(total, blob, row[1], row[5])
    assert (total, blob) == (whole[1], whole[5])
    accumulated = Accumulator()
    for count, total, low, high, zero, blob in rows:
        accumulated.add_stored(count, total, low, high, zero, blob)
    assert accumulated.histogram() == Histogram.of(values)


def test_an_accumulator_adds_histograms_and_stored_rows_alike():
    stored, loose = [1.0, 2.0, 400.0], [0.0, 3.5, 1e6]
    accumulated = Accumulator()
    row = rollup_of(stored, indices_of(stored))
    accumulated.add_stored(*row)
    accumulated.add(Histogram.of(loose))
    accumulated.add(Histogram())
    assert accumulated.histogram() == Histogram.of(stored + loose)
    assert Accumulator().histogram() == Histogram()


def test_indices_of_marks_values_with_no_bucket():
    from edgectl.analytics.histogram import ZERO_INDEX

    values = [0.0, -3.0, 2.0, 1.5, 2.0**-1074]
    assert indices_of(values) == [ZERO_INDEX, ZERO_INDEX, bucket_index(2.0), bucket_index(1.5), MIN_INDEX]


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x02\x00", b"\x01\x01\x00\x00", b"\x01\x01" + bytes(8) + b"\x05",
                                  b"\x01\x03" + bytes(8), b"\x01\x00\x00"])
def test_malformed_blobs_are_refused(blob):
    with pytest.raises(ValueError):
        Histogram.from_blob(HistogramRecord(1, 1.0, 1.0, 1.0, 0), blob)


def test_a_blob_that_disagrees_with_its_columns_is_refused():
    histogram = Histogram.of([1.0, 2.0, 3.0])
    for record in (HistogramRecord(4, 6.0, 1.0, 3.0, 0), HistogramRecord(3, 6.0, 1.0, 2.5, 0)):
        with pytest.raises(ValueError):
            Histogram.from_blob(record, histogram.to_blob())
    thirds = Histogram.of([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="exact sum"):
        Histogram.from_blob(HistogramRecord(3, 0.7, 0.1, 0.3, 0), thirds.to_blob())
    assert pack_buckets({}, 0) == b"\x01\x00"
