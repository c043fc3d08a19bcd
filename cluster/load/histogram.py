"""A latency histogram whose merge is exact: counts in fixed logarithmic buckets.

Every value lands in bucket ``floor(ln(µs) * BUCKETS_PER_E)``, the same buckets in every
process, so merging histograms adds counts bucket by bucket and a percentile of the merged
histogram is exactly the one a single histogram of all the values gives (within a bucket's
width, about 2%, of the true value), which averaging the processes' own percentiles is
not. The smallest and largest values are kept exactly and bound every percentile.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

BUCKETS_PER_E = 50  # resolution: a bucket is e**(1/50), about 2% wide
_FLOOR = 1e-7  # seconds: 0.1 µs, the smallest latency told apart


def bucket_of(seconds: float) -> int:
    """The bucket a latency of ``seconds`` is counted in."""
    return math.floor(math.log(max(seconds, _FLOOR) * 1e6) * BUCKETS_PER_E)


def bucket_value(bucket: int) -> float:
    """The seconds a bucket stands for: its geometric middle."""
    return math.exp((bucket + 0.5) / BUCKETS_PER_E) / 1e6


class Histogram:
    """Latencies in seconds, counted in fixed log buckets; mergeable without loss."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.total = 0
        self.min = math.inf
        self.max = 0.0

    def record(self, seconds: float, count: int = 1) -> None:
        """Count ``count`` latencies of ``seconds``."""
        self.counts[bucket_of(seconds)] += count
        self.total += count
        self.min = min(self.min, seconds)
        self.max = max(self.max, seconds)

    def merge(self, other: Histogram) -> Histogram:
        """Add ``other``'s counts to this one (exact: the buckets are the same); return self."""
        self.counts.update(other.counts)
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def percentile(self, q: float) -> float:
        """The latency (seconds) at quantile ``q`` (0 to 1; 0.99 for p99); 0.0 when empty."""
        if not self.total:
            return 0.0
        rank = max(1, math.ceil(q * self.total))  # the rank-th smallest value's bucket
        seen = 0
        buckets = sorted(self.counts)
        for bucket in buckets[:-1]:
            seen += self.counts[bucket]
            if seen >= rank:
                return min(max(bucket_value(bucket), self.min), self.max)
        return self.max  # the top bucket: the largest value in it is known exactly

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (bucket numbers as strings), for one process to send another."""
        return {"counts": {str(b): n for b, n in self.counts.items()}, "total": self.total,
                "min": self.min if self.total else None, "max": self.max}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        """The histogram ``to_dict`` described."""
        h = cls()
        h.counts = Counter({int(b): int(n) for b, n in data["counts"].items()})
        h.total = int(data["total"])
        h.min = math.inf if data.get("min") is None else float(data["min"])
        h.max = float(data["max"])
        return h


def merge(histograms: Any) -> Histogram:
    """One histogram holding every value of ``histograms`` (an iterable of them)."""
    out = Histogram()
    for h in histograms:
        out.merge(h)
    return out
