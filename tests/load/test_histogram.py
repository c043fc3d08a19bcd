"""``cluster.load.histogram``: merging the load processes' histograms is exact, so the
merged percentiles are those of every request recorded in one histogram."""

from __future__ import annotations

import json
import math
import random

import pytest

from cluster.load.histogram import BUCKETS_PER_E, Histogram, bucket_of, bucket_value, merge


def samples(seed: int, n: int) -> list[float]:
    """Latencies in seconds: a log-normal body around 200 µs and a slow tail to ~1 s."""
    rnd = random.Random(seed)
    out = [rnd.lognormvariate(math.log(200e-6), 0.6) for _ in range(n)]
    out += [rnd.uniform(0.01, 1.0) for _ in range(n // 100)]
    rnd.shuffle(out)
    return out


QUANTILES = (0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0)


@pytest.mark.parametrize("parts", [1, 2, 3, 7, 16])
def test_merge_then_percentile_equals_recording_everything_in_one(parts):
    values = samples(parts, 20_000)
    whole = Histogram()
    for v in values:
        whole.record(v)
    rnd = random.Random(parts)
    pieces = [Histogram() for _ in range(parts)]
    for v in values:  # uneven shares, as load processes finish different counts
        pieces[min(int(rnd.random() ** 2 * parts), parts - 1)].record(v)
    merged = merge(pieces)
    assert merged.counts == whole.counts  # bucket by bucket
    assert (merged.total, merged.min, merged.max) == (whole.total, whole.min, whole.max)
    for q in QUANTILES:
        assert merged.percentile(q) == whole.percentile(q), q


def test_merging_through_json_is_exact_too():
    """What the load processes send: to_dict, JSON, from_dict, merge."""
    values = samples(42, 5000)
    whole = Histogram()
    pieces = [Histogram() for _ in range(4)]
    for i, v in enumerate(values):
        whole.record(v)
        pieces[i % 4].record(v)
    merged = merge(Histogram.from_dict(json.loads(json.dumps(p.to_dict()))) for p in pieces)
    assert merged.counts == whole.counts and merged.total == whole.total == len(values)
    assert [merged.percentile(q) for q in QUANTILES] == [whole.percentile(q)
                                                         for q in QUANTILES]


def test_a_percentile_is_within_a_bucket_of_the_exact_one():
    values = samples(7, 50_000)
    h = Histogram()
    for v in values:
        h.record(v)
    ordered = sorted(values)
    width = math.exp(1 / BUCKETS_PER_E)  # one bucket: about 2%
    for q in (0.5, 0.9, 0.99, 0.999):
        exact = ordered[max(1, math.ceil(q * len(values))) - 1]
        assert exact / width <= h.percentile(q) <= exact * width, q
    assert h.percentile(1.0) == h.max == max(values)
    assert h.percentile(0.0) >= h.min == min(values)


def test_averaging_percentiles_is_not_merging():
    """Why the histograms merge: one slow process's p99 averaged with a fast one's is far
    from the p99 of all their requests together."""
    fast, slow = Histogram(), Histogram()
    for _ in range(9900):
        fast.record(100e-6)
    for _ in range(100):
        slow.record(50e-3)
    merged = merge([fast, slow])
    averaged = (fast.percentile(0.99) + slow.percentile(0.99)) / 2
    assert merged.percentile(0.99) == pytest.approx(100e-6, rel=0.02)
    assert averaged > 100 * merged.percentile(0.99)


def test_buckets_and_edges():
    assert bucket_of(1e-6) == 0  # 1 µs
    assert bucket_of(0.0) == bucket_of(1e-9) == bucket_of(1e-7)  # below 0.1 µs: one bucket
    for seconds in (3e-7, 1e-5, 2.5e-4, 0.01, 3.0):
        b = bucket_of(seconds)
        assert bucket_value(b - 1) < seconds < bucket_value(b + 1)
    empty = Histogram()
    assert empty.percentile(0.5) == 0.0 and empty.max == 0.0
    assert merge([]).total == 0
    assert Histogram.from_dict(json.loads(json.dumps(empty.to_dict()))).total == 0
    h = Histogram()
    h.record(0.002, count=3)
    assert h.total == 3 and h.percentile(0.5) == 0.002  # one value: min = max bounds it
    assert merge([h, empty]).percentile(0.99) == 0.002
