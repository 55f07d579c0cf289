"""Full-jitter exponential backoff (attempt n waits uniform [0, min(cap, base * 2**(n-1))])."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float = 0.25
    """Ceiling of the first delay, seconds."""
    cap: float = 30.0
    """Ceiling of any one delay, seconds."""

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.cap >= self.base):
            raise ValueError("backoff needs base > 0 and cap >= base")

    def ceiling(self, attempt: int) -> float:
        if attempt < 1:
            raise ValueError("attempts count from 1")
        # 2**(attempt-1) overflows floats only far beyond any cap; clamp the exponent anyway.
        return min(self.cap, self.base * 2.0 ** min(attempt - 1, 64))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        return (rng or random).uniform(0.0, self.ceiling(attempt))
