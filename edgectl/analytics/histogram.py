"""Mergeable latency histograms: what the metrics history keeps per series per minute and per hour.

A Histogram holds count, sum, min, max, a zero bucket and sparse exponential buckets whose
boundaries are those of the OpenTelemetry metrics data model's ExponentialHistogram at scale 6,
which are also those of Prometheus native histograms with schema 6:

- OpenTelemetry Metrics Data Model, "ExponentialHistogram" (exponential scale, exponential buckets,
  zero count, producer expectations):
  https://opentelemetry.io/docs/specs/otel/metrics/data-model/#exponentialhistogram
- Prometheus, "Native Histograms", sections "Schema" and "Zero bucket":
  https://prometheus.io/docs/specs/native_histograms/

With base = 2**(2**-6) = 2**(1/64), bucket i holds the values v with base**i < v <= base**(i+1),
numbered as OpenTelemetry numbers them; Prometheus numbers a bucket by its upper bound, so the same
bucket is its i+1. Values <= 0 go to the zero bucket (a zero threshold of 0). Merging adds the
counts and the exact sums, so a window's histogram is the same whichever minutes or series it is
made of, in whatever order.

Error bound of quantile(), which answers its bucket's geometric middle base**(i + 1/2):
v in (base**i, base**(i+1)] gives base**(i + 1/2) / v in [base**-1/2, base**1/2), so the relative
error is below base**(1/2) - 1 = 2**(1/128) - 1 = 0.543% (clamping to the exact min and max only
brings the answer nearer).
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left
from collections import Counter, deque
from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import chain, compress, count as counting, repeat
from math import ceil, floor, frexp, fsum, inf, isfinite, ldexp, log2, ulp
from operator import add, gt, index as as_int, lt, mul, sub
from typing import Iterable, Mapping

SCALE = 6
BASE = 2.0 ** (2.0 ** -SCALE)
RELATIVE_ERROR = 2.0 ** (2.0 ** -(SCALE + 1)) - 1.0  # the worst case of quantile(), 0.543%
MIN_INDEX = -1074 * 64 - 1  # the bucket of the smallest float, 2**-1074
MAX_INDEX = 1024 * 64 - 1  # the bucket of the largest float, just under 2**1024

_PER_OCTAVE = 1 << SCALE
_UNIT_BITS = 1074  # every finite float is a whole number of 2**-1074
_ONE = 1 << _UNIT_BITS
# add_many guesses a bucket as floor(64 * log2(v)). log2 is good to an ulp, which is at most
# 2**-42 for floats, so a guess is within 2**-36 of the exact 64*log2(v) and only one within _NEAR
# of a whole number can be on the wrong side of a boundary: those values, and exact powers of two
# (whose guess is whole and whose bucket is the one below), are placed by bucket_index.
_NEAR = 2.0 ** -30


def _floor_root(j: int) -> int:
    """floor(2**(52 + j/64)), exactly: the largest m with m**64 <= 2**(52*64 + j)."""
    target = 1 << (52 * _PER_OCTAVE + j)
    m = int(2.0 ** (52 + j / _PER_OCTAVE))
    while m**_PER_OCTAVE > target:
        m -= 1
    while (m + 1) ** _PER_OCTAVE <= target:
        m += 1
    return m


# _ROOTS[j] / 2**52 is the largest float <= base**j, for j in 0..63.
_ROOTS = [_floor_root(j) for j in range(_PER_OCTAVE)]
_LOWER_MANTISSAS = [m / (1 << 52) for m in _ROOTS]
_MIDDLES = [2.0 ** ((j + 0.5) / _PER_OCTAVE) for j in range(_PER_OCTAVE)]


def bucket_index(value: float) -> int:
    """The index i of the bucket (base**i, base**(i+1)] that holds value > 0, exactly.

    frexp splits value exactly into mantissa * 2**exponent; the index is 64 per octave plus the
    number of boundaries base**j (j = 0..63) that the mantissa, doubled into [1, 2), exceeds,
    less one. A power of two exceeds none of its octave's and falls in the bucket below, which is
    OpenTelemetry's correction for exact powers of two; comparing with the largest float at or
    under each boundary makes every other boundary exact too, where a logarithm would misplace
    about half of the floats next to it.
    """
    if not 0.0 < value < inf:
        raise ValueError(f"{value!r} has no bucket: buckets hold finite values > 0")
    mantissa, exponent = frexp(value)
    return ((exponent - 1) << SCALE) + bisect_left(_LOWER_MANTISSAS, mantissa * 2.0) - 1


def _lower(i: int) -> float:
    """The largest float <= base**i, for MIN_INDEX <= i <= MAX_INDEX + 1."""
    if i > MAX_INDEX:
        return sys.float_info.max
    octave, j = divmod(i, _PER_OCTAVE)
    if octave >= -1022:
        return ldexp(_ROOTS[j], octave - 52)
    return ldexp(_ROOTS[j] >> (-octave - 1022), -_UNIT_BITS)  # subnormal: whole numbers of 2**-1074


def bucket_bounds(index: int) -> tuple[float, float]:
    """(lower, upper) of a bucket: the largest floats <= base**index and <= base**(index+1).

    A float v is in the bucket exactly when lower < v <= upper; the bounds are exact where they
    are powers of two, and the top bucket's upper bound is the largest float.
    """
    index = as_int(index)
    if not MIN_INDEX <= index <= MAX_INDEX:
        raise ValueError(f"bucket {index} is outside the floats ({MIN_INDEX} to {MAX_INDEX})")
    return _lower(index), _lower(index + 1)


def _middle(index: int) -> float:
    octave, j = divmod(index, _PER_OCTAVE)
    return ldexp(_MIDDLES[j], octave)


def _units(value: float) -> int:
    numerator, denominator = value.as_integer_ratio()
    return numerator << (_UNIT_BITS + 1 - denominator.bit_length())


def _exact_sum(values: list[float], rounded: float, smallest: float) -> int:
    """The exact sum of values in units of 2**-1074, given rounded = fsum(values).

    fsum rounds the exact sum correctly, so summing again with the parts found so far taken away
    gives the next part, until nothing is left: two passes for positive values, as each is a whole
    number of ulp(smallest) and a remainder under that is zero.
    """
    quantum = ulp(smallest) if smallest > 0 else 0.0
    units = 0
    taken: list[float] = []
    part = rounded
    while part:
        units += _units(part)
        if ulp(part) / 2 < quantum:
            break
        taken.append(-part)
        part = fsum(chain(values, taken))
    return units


def bucket_indices(values: list[float]) -> list[int]:
    """bucket_index of each value > 0, in order, in a few passes at C speed: the ingest path."""
    guesses = list(map(mul, map(log2, values), repeat(64.0)))
    floors = list(map(floor, guesses))
    fractions = list(map(sub, guesses, floors))
    near = []
    if fractions and min(fractions) < _NEAR:
        near.append(compress(range(len(values)), map(lt, fractions, repeat(_NEAR))))
    if fractions and max(fractions) > 1.0 - _NEAR:
        near.append(compress(range(len(values)), map(gt, fractions, repeat(1.0 - _NEAR))))
    for position in chain.from_iterable(near):
        floors[position] = bucket_index(values[position])
    return floors


def _count_positive(values: list[float]) -> Counter:
    """Bucket counts of values > 0, as bucket_index gives them, in a few passes at C speed."""
    return Counter(bucket_indices(values))


def _of_distinct(values: list[float]) -> Histogram:
    """add_many for values mostly unlike each other: an exact sum from fsum, buckets from log2."""
    try:
        rounded = fsum(values)
    except OverflowError:  # a sum past the largest float: no fast way to its exact value
        return _of_repeats(values)
    except ValueError:  # fsum refuses inf + -inf
        rounded = inf
    if not isfinite(rounded):
        raise _not_finite(next(v for v in values if not isfinite(v)))
    histogram = Histogram()
    histogram.min, histogram.max = float(min(values)) + 0.0, float(max(values)) + 0.0
    histogram._sum = _exact_sum(values, rounded, histogram.min)
    positive = values if histogram.min > 0 else [v for v in values if v > 0]
    histogram.buckets = dict(_count_positive(positive))
    histogram.count, histogram.zero_count = len(values), len(values) - len(positive)
    return histogram


def _of_repeats(values: list[float]) -> Histogram:
    """add_many for values that repeat (whole milliseconds, say): each distinct value once."""
    histogram = Histogram()
    for value, times in Counter(values).items():
        histogram._add(value, times)
    return histogram


def _mostly_repeats(values: list[float]) -> bool:
    """Whether counting distinct values first looks faster, from a sample: both ways give the same
    histogram, but Counter over a million different floats costs more than the log2 passes."""
    sample = values[:: max(1, len(values) // 512)]
    return len(set(sample)) * 4 <= len(sample)


def _not_finite(value: object) -> ValueError:
    return ValueError(f"{value!r} is not a finite number: a histogram counts finite values only")


def _rank(q: float, count: int) -> int:
    """The nearest rank of quantile q: the ceil(q*count)-th smallest, 1-based, and 1 for q = 0.

    A float q is taken as the decimal it prints as, so that 0.9 of 10 values is the 9th.
    """
    if isinstance(q, float):
        if not isfinite(q):
            raise ValueError(f"quantile {q!r} is not between 0 and 1")
        exact = Fraction(repr(q))
    else:
        exact = Fraction(q)
    if not 0 <= exact <= 1:
        raise ValueError(f"quantile {q!r} is not between 0 and 1")
    return max(1, ceil(exact * count))


@dataclass(frozen=True)
class HistogramRecord:
    """A histogram's summary, stored beside its bucket rows: from_rows(record, rows) rebuilds it.

    sum is the float nearest the exact sum; min and max are None when count is 0.
    """

    count: int
    sum: float
    min: float | None
    max: float | None
    zero_count: int
    scale: int = SCALE


class Histogram:
    """count, sum, min, max, zero_count and buckets {index: count} of the values added."""

    __slots__ = ("count", "zero_count", "min", "max", "buckets", "_sum")
    __hash__ = None  # mutable

    def __init__(self) -> None:
        self.count = 0
        self.zero_count = 0
        self.min: float | None = None
        self.max: float | None = None
        self.buckets: dict[int, int] = {}
        self._sum = 0  # the exact sum, in units of 2**-1074

    @classmethod
    def of(cls, values: Iterable[float]) -> Histogram:
        histogram = cls()
        histogram.add_many(values)
        return histogram

    @property
    def sum(self) -> float:
        """The float nearest the exact sum of the values (an infinity past the largest float)."""
        try:
            return self._sum / _ONE
        except OverflowError:
            return inf if self._sum > 0 else -inf

    @property
    def exact_sum(self) -> Fraction:
        return Fraction(self._sum, _ONE)

    def add(self, value: float) -> None:
        """Count one value; one <= 0 in the zero bucket. NaN and infinities raise ValueError."""
        self._add(value, 1)

    def _add(self, value: float, times: int) -> None:
        if isinstance(value, (str, bytes, bytearray)):  # float() would read them
            raise TypeError(f"{value!r} is not a number")
        try:
            value = float(value) + 0.0  # + 0.0 turns -0.0 into 0.0: min and max do not depend on order
        except OverflowError:
            raise _not_finite(value) from None
        if not isfinite(value):
            raise _not_finite(value)
        self.count += times
        self._sum += _units(value) * times
        if self.min is None or value < self.min:
            self.min = value
        if self.max is None or value > self.max:
            self.max = value
        if value > 0:
            index = bucket_index(value)
            self.buckets[index] = self.buckets.get(index, 0) + times
        else:
            self.zero_count += times

    def add_many(self, values: Iterable[float]) -> None:
        """Add every value, as add() would, at C speed where it can: the ingest path.

        All or nothing: a NaN or an infinity anywhere raises ValueError and changes nothing.
        """
        if not isinstance(values, list):
            values = list(values)
        if values:
            self.merge(_of_repeats(values) if _mostly_repeats(values) else _of_distinct(values))

    def merge(self, other: Histogram) -> None:
        """Add other's values to this histogram: exact, so merging in any order or grouping gives
        the histogram of all the values."""
        if not other.count:
            return
        self.count += other.count
        self.zero_count += other.zero_count
        self._sum += other._sum
        if self.min is None or other.min < self.min:
            self.min = other.min
        if self.max is None or other.max > self.max:
            self.max = other.max
        buckets = self.buckets
        for index, times in other.buckets.items():
            buckets[index] = buckets.get(index, 0) + times

    def copy(self) -> Histogram:
        twin = Histogram()
        twin.count, twin.zero_count, twin.min, twin.max = self.count, self.zero_count, self.min, self.max
        twin.buckets = dict(self.buckets)
        twin._sum = self._sum
        return twin

    def quantile(self, q: float) -> float | None:
        """The nearest-rank quantile q in [0, 1], within RELATIVE_ERROR of it for normal floats
        (>= 2**-1022: a subnormal bucket's middle has few bits); None when empty."""
        return self.quantiles([q])[0]

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        """quantile(q) for each q, in the order given, in one walk over the buckets.

        The ceil(q*count)-th smallest value is answered by its bucket's geometric middle clamped
        to [min, max], the first and last by min and max themselves, and one in the zero bucket
        by 0 (clamped the same way).
        """
        qs = list(qs)
        ranks = [_rank(q, self.count) for q in qs]
        if not self.count:
            return [None] * len(qs)
        low, high = self.min, self.max
        answers: list[float | None] = [None] * len(qs)
        buckets = iter(sorted(self.buckets.items()))
        seen, index = self.zero_count, None
        for k in sorted(range(len(qs)), key=ranks.__getitem__):
            rank = ranks[k]
            if rank == 1:
                answers[k] = low
            elif rank == self.count:
                answers[k] = high
            elif rank <= self.zero_count:
                answers[k] = min(max(0.0, low), high)
            else:
                while seen < rank:
                    index, times = next(buckets)
                    seen += times
                answers[k] = min(max(_middle(index), low), high)
        return answers

    def to_rows(self) -> list[tuple[int, int]]:
        """The buckets as (index, count) rows, by index; the zero bucket is in to_record()."""
        return sorted(self.buckets.items())

    def to_record(self) -> HistogramRecord:
        return HistogramRecord(self.count, self.sum, self.min, self.max, self.zero_count)

    @classmethod
    def from_rows(cls, record: HistogramRecord, rows: Iterable[tuple[int, int]]) -> Histogram:
        """The histogram that to_record() and to_rows() stored, checked for consistency.

        Its sum is the stored float, exactly: a sum that no float holds comes back rounded.
        """
        if record.scale != SCALE:
            raise ValueError(f"a histogram of scale {record.scale}: these keep scale {SCALE}")
        buckets: dict[int, int] = {}
        for index, times in rows:
            index, times = as_int(index), as_int(times)
            if not MIN_INDEX <= index <= MAX_INDEX:
                raise ValueError(f"bucket {index} is outside the floats ({MIN_INDEX} to {MAX_INDEX})")
            if index in buckets:
                raise ValueError(f"bucket {index} is stored twice")
            if times < 1:
                raise ValueError(f"bucket {index} holds a count of {times}")
            buckets[index] = times
        count, zero_count = as_int(record.count), as_int(record.zero_count)
        if zero_count < 0 or count != zero_count + sum(buckets.values()):
            raise ValueError(f"a count of {count} is not the zero bucket's {zero_count} "
                             f"plus the buckets' {sum(buckets.values())}")
        histogram = cls()
        if count:
            low, high, total = record.min, record.max, record.sum
            if not all(isinstance(x, (int, float)) and isfinite(x) for x in (low, high, total)) or low > high:
                raise ValueError(f"min {low!r}, max {high!r} and sum {total!r} do not describe "
                                 f"{count} finite values")
            low_fits = low <= 0 if zero_count else low > 0 and bucket_index(low) == min(buckets)
            high_fits = high > 0 and bucket_index(high) == max(buckets) if buckets else high <= 0
            if not (low_fits and high_fits):
                raise ValueError(f"min {low!r} and max {high!r} are not in the lowest and highest buckets")
            histogram.min, histogram.max = float(low) + 0.0, float(high) + 0.0
            histogram._sum = _units(float(total))
        elif record.min is not None or record.max is not None or record.sum != 0:
            raise ValueError("an empty histogram has no min or max and a sum of 0")
        histogram.count, histogram.zero_count, histogram.buckets = count, zero_count, buckets
        return histogram

    def to_blob(self) -> bytes:
        """The buckets and the exact sum, packed (pack_buckets); the rest is in to_record()."""
        return pack_buckets(self.buckets, self._sum)

    @classmethod
    def from_blob(cls, record: HistogramRecord, blob: bytes) -> Histogram:
        """The histogram that to_record() and to_blob() stored, checked as from_rows checks it,
        with its exact sum when the blob carries one."""
        exact, low, relative, counts = unpack_buckets(blob)
        indices = range(low, low + len(counts)) if relative is None else map(add, relative, repeat(low))
        if exact is not None and record.count:  # the sum column may be past the largest float
            if _float_sum(exact) != record.sum:
                raise ValueError(f"the exact sum is not near the sum {record.sum!r}")
            record = replace(record, sum=0.0)
        histogram = cls.from_rows(record, ((i, c) for i, c in zip(indices, counts) if c))
        if exact is not None and histogram.count:
            histogram._sum = exact
        return histogram

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return (self.count, self.zero_count, self.min, self.max, self._sum, self.buckets) == (
            other.count, other.zero_count, other.min, other.max, other._sum, other.buckets)

    def __repr__(self) -> str:
        return (f"Histogram(count={self.count}, sum={self.sum!r}, min={self.min!r}, max={self.max!r}, "
                f"zero_count={self.zero_count}, buckets={len(self.buckets)})")


# ---- the stored form ------------------------------------------------------------------------
# A rollup row keeps count, sum (the float nearest the exact sum), min, max and zero_count as
# columns, and its buckets in one BLOB: a version and flags byte, then the exact sum when the sum
# column does not hold it exactly (a shift and the signed little-endian mantissa, in units of
# 2**-1074), then the buckets either dense (the lowest index, then a count for every index up to
# the highest, zeros included) or sparse (the lowest index, then each bucket's offset from it and
# its count), whichever is smaller. Counts take 1, 2, 4 or 8 bytes each as the largest needs.
# Dense counts merge at C speed (a slice of a list added to an array), so a week of hours adds up
# without a Python step per bucket.

BLOB_VERSION = 1
_HEAD = struct.Struct("<BB")  # version, flags
_EXACT = struct.Struct("<HH")  # the exact sum's shift and the length of its mantissa in bytes
_SPAN = struct.Struct("<iI")  # the lowest index, and how many counts follow
_WIDTHS = "BHIQ"
_DENSE, _SPARSE = 1, 2  # flags bits 0-1: how the buckets are laid out (0: none)
_WIDTH_SHIFT = 2  # flags bits 2-3: the counts' width, 1 << code bytes
_HAS_EXACT = 16  # flags bit 4: the exact sum follows
_WIDE_OFFSETS = 32  # flags bit 5: sparse offsets take 4 bytes, not 2
_LITTLE = sys.byteorder == "little"
assert [array(code).itemsize for code in _WIDTHS + "i"] == [1, 2, 4, 8, 4]


def _rounded(units: int) -> float | None:
    """The float nearest an exact sum in units of 2**-1074; None past the largest float."""
    try:
        return units / _ONE
    except OverflowError:
        return None


def packed(code: str, values: Iterable) -> bytes:
    """Numbers as an array of the given typecode, little-endian: how the state packs them."""
    values = array(code, values)
    if not _LITTLE:
        values.byteswap()
    return values.tobytes()


def unpacked(code: str, raw: bytes) -> array:
    """The array that packed() wrote."""
    values = array(code)
    values.frombytes(raw)
    if not _LITTLE:
        values.byteswap()
    return values


ZERO_INDEX = MIN_INDEX - 1  # what indices_of() gives a value <= 0, which has no bucket


def indices_of(values: list[float]) -> list[int]:
    """Each finite value's bucket index, ZERO_INDEX for one <= 0, at C speed where all are > 0."""
    if not values or min(values) > 0:
        return bucket_indices(values)
    positive = [v if v > 0 else 1.0 for v in values]
    return [i if v > 0 else ZERO_INDEX for i, v in zip(bucket_indices(positive), values)]


class Tally:
    """What a rollup row holds, before it is packed: count, exact sum, min, max, zero count and
    bucket counts of some finite values. Tallies add up exactly (a day's from its hours')."""

    __slots__ = ("count", "units", "low", "high", "zero", "counts")

    @classmethod
    def of(cls, values, indices) -> Tally:
        """The tally of finite values (a list or tuple) and their indices_of(), at C speed."""
        tally = cls()
        tally.low, tally.high = min(values) + 0.0, max(values) + 0.0
        tally.counts = Counter(indices)
        tally.zero = tally.counts.pop(ZERO_INDEX, 0) if tally.low <= 0 else 0
        tally.count = len(values)
        try:
            tally.units = _exact_sum(values, fsum(values), tally.low)
        except OverflowError:  # a sum past the largest float: no fast way to its exact value
            tally.units = sum(map(_units, values))
        return tally

    @classmethod
    def summed(cls, tallies: list[Tally], indices: Iterable[Iterable[int]]) -> Tally:
        """The tally of several tallies' values, given all their indices_of() (counted again at C
        speed rather than added bucket by bucket)."""
        if len(tallies) == 1:
            return tallies[0]
        tally = cls()
        tally.count, tally.units = sum(t.count for t in tallies), sum(t.units for t in tallies)
        tally.low, tally.high = min(t.low for t in tallies), max(t.high for t in tallies)
        tally.counts = Counter(chain.from_iterable(indices))
        tally.zero = tally.counts.pop(ZERO_INDEX, 0) if tally.low <= 0 else 0
        return tally

    def row(self) -> tuple[int, float, float, float, int, bytes]:
        """count, sum, min, max, zero_count and BLOB, as a rollup row keeps them."""
        return self.count, _float_sum(self.units), self.low, self.high, self.zero, pack_buckets(self.counts, self.units)


def rollup_of(values: list[float], indices: list[int]) -> tuple[int, float, float, float, int, bytes]:
    """A rollup row's count, sum, min, max, zero_count and BLOB for finite values and their
    indices_of(): the same row whatever order the values come in."""
    return Tally.of(values, indices).row()


def summed_rollup(rows: list[tuple[int, float, float, float, int, bytes]]) -> tuple[int, float, float, float, int, bytes]:
    """rollup_of() of all the values of several rollup_of() rows."""
    if len(rows) == 1:
        return rows[0]
    buckets: dict[int, int] = {}
    units = 0
    for _, total, _, _, _, blob in rows:
        part_units, part = _stored(total, blob)
        units += part_units
        for index, times in part.items():
            buckets[index] = buckets.get(index, 0) + times
    return (sum(r[0] for r in rows), _float_sum(units), min(r[2] for r in rows), max(r[3] for r in rows),
            sum(r[4] for r in rows), pack_buckets(buckets, units))


def _stored(total: float, blob: bytes) -> tuple[int, dict[int, int]]:
    exact, low, offsets, counts = unpack_buckets(blob)
    indices = counting(low) if offsets is None else map(add, offsets, repeat(low))
    return exact if exact is not None else _units(total), dict(compress(zip(indices, counts), counts))


def merged_blob(total: float, blob: bytes, other_total: float, other_blob: bytes) -> bytes:
    """The BLOB of two rollups of the same key added up (an SQL function for upserts)."""
    units, buckets = _stored(total, blob)
    other_units, others = _stored(other_total, other_blob)
    for index, times in others.items():
        buckets[index] = buckets.get(index, 0) + times
    return pack_buckets(buckets, units + other_units)


def merged_sum(total: float, blob: bytes, other_total: float, other_blob: bytes) -> float:
    """The sum column of two rollups added up: the float nearest their exact sum."""
    return _float_sum(_stored_units(total, blob) + _stored_units(other_total, other_blob))


def _float_sum(units: int) -> float:
    rounded = _rounded(units)
    return rounded if rounded is not None else (inf if units > 0 else -inf)


def _stored_units(total: float, blob: bytes) -> int:
    _, flags = _HEAD.unpack_from(blob)
    if not flags & _HAS_EXACT:
        return _units(total)
    shift, length = _EXACT.unpack_from(blob, _HEAD.size)
    at = _HEAD.size + _EXACT.size
    return int.from_bytes(blob[at:at + length], "little", signed=True) << shift


def pack_buckets(buckets: Mapping[int, int], units: int | None) -> bytes:
    """Buckets {index: count > 0} and an exact sum (in units of 2**-1074; None when the row's sum
    column is all there is) as a rollup's BLOB."""
    flags, parts = 0, []
    rounded = _rounded(units) if units is not None else None
    if units is not None and (rounded is None or _units(rounded) != units):
        flags |= _HAS_EXACT
        shift = (units & -units).bit_length() - 1 if units else 0
        mantissa = units >> shift
        raw = mantissa.to_bytes(mantissa.bit_length() // 8 + 1, "little", signed=True)
        parts += [_EXACT.pack(shift, len(raw)), raw]
    if buckets:
        order = sorted(buckets)
        low, high = order[0], order[-1]
        counts = [buckets[i] for i in order]
        top = max(counts)
        width = 0 if top < 1 << 8 else 1 if top < 1 << 16 else 2 if top < 1 << 32 else 3
        size, span, entries = 1 << width, high - low + 1, len(order)
        wide = span > 0xFFFF
        flags |= width << _WIDTH_SHIFT
        if span * size <= entries * (size + (4 if wide else 2)):
            dense = [0] * span
            deque(map(dense.__setitem__, [i - low for i in order], counts), 0)
            flags |= _DENSE
            parts += [_SPAN.pack(low, span), _counts(width, dense)]
        else:
            flags |= _SPARSE | (_WIDE_OFFSETS if wide else 0)
            parts += [_SPAN.pack(low, entries), packed("I" if wide else "H", [i - low for i in order]),
                      _counts(width, counts)]
    return _HEAD.pack(BLOB_VERSION, flags) + b"".join(parts)


def _counts(width: int, counts: list[int]) -> bytes:
    return bytes(counts) if not width else packed(_WIDTHS[width], counts)


def unpack_buckets(blob: bytes) -> tuple[int | None, int, array | None, array]:
    """A rollup's BLOB as (exact sum in units of 2**-1074 or None when the sum column holds it,
    lowest index, offsets from it (None when dense), counts)."""
    try:
        version, flags = _HEAD.unpack_from(blob)
    except (struct.error, TypeError):
        raise ValueError("a histogram blob too short for its header") from None
    if version != BLOB_VERSION:
        raise ValueError(f"a histogram blob of version {version}: this edgectl reads version {BLOB_VERSION}")
    at, exact = _HEAD.size, None
    try:
        if flags & _HAS_EXACT:
            shift, length = _EXACT.unpack_from(blob, at)
            at += _EXACT.size
            exact = int.from_bytes(blob[at:at + length], "little", signed=True) << shift
            at += length
        layout, code = flags & 3, _WIDTHS[(flags >> _WIDTH_SHIFT) & 3]
        if not layout:
            if at != len(blob):
                raise ValueError("a histogram blob longer than it says")
            return exact, 0, None, array(code)
        low, entries = _SPAN.unpack_from(blob, at)
    except struct.error:
        raise ValueError("a histogram blob cut short") from None
    at += _SPAN.size
    size = array(code).itemsize
    offsets = None
    if layout == _SPARSE:
        wide = "I" if flags & _WIDE_OFFSETS else "H"
        step = array(wide).itemsize * entries
        offsets = unpacked(wide, blob[at:at + step])
        at += step
    elif layout != _DENSE:
        raise ValueError(f"a histogram blob of unknown layout {layout}")
    if len(blob) != at + size * entries:
        raise ValueError("a histogram blob whose length does not match its counts")
    return exact, low, offsets, unpacked(code, blob[at:])


class Accumulator:
    """Stored histograms (a row's columns and BLOB) and Histograms summed into one: the window path.

    Dense counts are added slice by slice at C speed; the result is the Histogram of all of them,
    exactly as merging each would give.
    """

    __slots__ = ("count", "zero_count", "min", "max", "units", "_parts", "_loose")

    def __init__(self) -> None:
        self.count = self.zero_count = self.units = 0
        self.min: float | None = None
        self.max: float | None = None
        self._parts: list[tuple[int, array | None, array]] = []
        self._loose: Histogram | None = None

    def add_stored(self, count: int, total: float, low: float, high: float, zero_count: int, blob: bytes) -> None:
        if not count:
            return
        exact, first, offsets, counts = unpack_buckets(blob)
        self.count += count
        self.zero_count += zero_count
        self.units += exact if exact is not None else _units(total)
        if self.min is None or low < self.min:
            self.min = low
        if self.max is None or high > self.max:
            self.max = high
        if counts:
            self._parts.append((first, offsets, counts))

    def add(self, histogram: Histogram) -> None:
        if histogram.count:
            if self._loose is None:
                self._loose = Histogram()
            self._loose.merge(histogram)

    def histogram(self) -> Histogram:
        out = Histogram()
        if self._parts:
            low = min(part[0] for part in self._parts)
            high = max(first + (len(counts) if offsets is None else offsets[-1] + 1)
                       for first, offsets, counts in self._parts)
            acc = [0] * (high - low)
            for first, offsets, counts in self._parts:
                start = first - low
                if offsets is None:
                    end = start + len(counts)
                    acc[start:end] = map(add, acc[start:end], counts)
                else:
                    places = list(map(add, offsets, repeat(start)))
                    deque(map(acc.__setitem__, places, map(add, map(acc.__getitem__, places), counts)), 0)
            out.buckets = dict(compress(zip(counting(low), acc), acc))
        if self.count:
            out.count, out.zero_count, out._sum = self.count, self.zero_count, self.units
            out.min, out.max = float(self.min) + 0.0, float(self.max) + 0.0
        if self._loose is not None:
            out.merge(self._loose)
        return out
