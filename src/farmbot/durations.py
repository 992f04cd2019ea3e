"""Durations: a fixed-bucket histogram of seconds, kept by a component for its statistics.

The monitor keeps one of its ticks, the notifier one of its deliveries' latency; the
metrics endpoint (farmbot/adapters/metrics.py) shows them as Prometheus histograms. Plain
counters, no library: any layer may keep one.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

__all__ = ["DELIVERY_BUCKETS", "TICK_BUCKETS", "Durations"]

# Upper bounds in seconds (Prometheus's ``le``); +Inf is implied.
TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DELIVERY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class Durations:
    """How many observations fell at or under each bound, their count and their sum."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self._counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.count = 0
        self.sum = 0.0

    def __repr__(self) -> str:
        return f"<Durations count={self.count} sum={self.sum:.3f}>"

    def observe(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self._counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or under it), the last bound being +Inf."""
        found: list[tuple[float, int]] = []
        total = 0
        for bound, n in zip((*self.bounds, float("inf")), self._counts, strict=True):
            total += n
            found.append((bound, total))
        return found
