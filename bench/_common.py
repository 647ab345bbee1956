"""Helpers shared by the benchmarks alone: percentiles.

The engine and agent processes, their configurations, throw-away databases and ending
processes are in ipam.lab.harness, the REST load driver in ipam.lab.load (the tests
use both too).
"""

from __future__ import annotations

import math


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of values (nan when there are none)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))])
