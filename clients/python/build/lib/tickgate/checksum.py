"""tickgate's book checksum (docs/protocol.md §8.3): CRC-32 over the best 10 levels a side."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

DEPTH = 10


def book_checksum(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> int:
    """Checksum of a book given as ``(price text, size text)`` pairs, best first.

    Interleaves bid i and ask i for i in 0..9, each as ``price:size`` exactly as on the wire,
    joins with ``:`` and takes zlib's CRC-32 of the ASCII string (0 for an empty book).
    """
    parts: list[str] = []
    nb, na = min(len(bids), DEPTH), min(len(asks), DEPTH)
    for i in range(max(nb, na)):
        if i < nb:
            p, s = bids[i]
            parts.append(f"{p}:{s}")
        if i < na:
            p, s = asks[i]
            parts.append(f"{p}:{s}")
    return zlib.crc32(":".join(parts).encode("ascii"))
