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

import sys
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain, compress, repeat
from math import ceil, floor, frexp, fsum, inf, isfinite, ldexp, log2, ulp
from operator import gt, index as as_int, lt, mul, sub
from typing import Iterable

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


def _count_positive(values: list[float]) -> Counter:
    """Bucket counts of values > 0, as bucket_index gives them, in a few passes at C speed."""
    guesses = list(map(mul, map(log2, values), repeat(64.0)))
    floors = list(map(floor, guesses))
    counts = Counter(floors)
    fractions = list(map(sub, guesses, floors))
    near = []
    if fractions and min(fractions) < _NEAR:
        near.append(compress(values, map(lt, fractions, repeat(_NEAR))))
    if fractions and max(fractions) > 1.0 - _NEAR:
        near.append(compress(values, map(gt, fractions, repeat(1.0 - _NEAR))))
    for value, times in Counter(chain.from_iterable(near)).items():
        guess, exact = floor(log2(value) * 64.0), bucket_index(value)
        if guess != exact:
            counts[guess] -= times
            counts[exact] += times
    return +counts


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

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return (self.count, self.zero_count, self.min, self.max, self._sum, self.buckets) == (
            other.count, other.zero_count, other.min, other.max, other._sum, other.buckets)

    def __repr__(self) -> str:
        return (f"Histogram(count={self.count}, sum={self.sum!r}, min={self.min!r}, max={self.max!r}, "
                f"zero_count={self.zero_count}, buckets={len(self.buckets)})")
