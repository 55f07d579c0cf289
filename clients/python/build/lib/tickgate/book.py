"""A local order book kept from a ``book`` channel's snapshot and updates, checked against the
gateway's checksum after every message (docs/protocol.md §8).

Levels are keyed by their exact :class:`~decimal.Decimal` price (``"100.0"`` and ``"100.00"``
are one level) and keep the price and size text of the message that last set them, because the
checksum is computed over that text. Nothing is ever converted to a binary float.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .checksum import DEPTH, book_checksum

_ZERO = Decimal(0)
_Text = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Level:
    """One price level: exact price and size."""

    price: Decimal
    size: Decimal


class BookInvalid(Exception):
    """The mirror cannot be trusted any more; ``reason`` names why (``client_checksum_mismatch``,
    ``client_crossed``, ``client_invalid_level``, ``client_out_of_sequence``)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _Side:
    """One side: a dict price -> (price text, size text) plus the prices in ascending order."""

    __slots__ = ("keys", "levels")

    def __init__(self) -> None:
        self.levels: dict[Decimal, tuple[str, str]] = {}
        self.keys: list[Decimal] = []

    def clear(self) -> None:
        self.levels.clear()
        self.keys.clear()

    def set(self, price_text: str, size_text: str) -> None:
        try:
            price = Decimal(price_text)
            size = Decimal(size_text)
        except (InvalidOperation, TypeError, ValueError):
            raise BookInvalid(
                "client_invalid_level", f"level [{price_text!r}, {size_text!r}] is not two decimals"
            ) from None
        if not price.is_finite() or price <= _ZERO or not size.is_finite() or size < _ZERO:
            raise BookInvalid(
                "client_invalid_level", f"level [{price_text!r}, {size_text!r}] is out of range"
            )
        if size == _ZERO:
            if self.levels.pop(price, None) is not None:
                del self.keys[bisect.bisect_left(self.keys, price)]
            return
        if price not in self.levels:
            bisect.insort(self.keys, price)
        self.levels[price] = (price_text, size_text)


class BookMirror:
    """The client's copy of one ``book`` channel.

    ``live`` is false until the first snapshot, while the gateway rebuilds its book (after a
    ``resync`` notice), and after the mirror found itself wrong; a book that is not live must
    not be used. ``seq``/``epoch`` are those of the last message applied.
    """

    def __init__(self, channel: str, *, allow_crossed: bool | None = None) -> None:
        self.channel = channel
        self.epoch: str | None = None
        self.seq: int | None = None
        self.checksum: int | None = None
        self.live = False
        # Consolidated books (venue "all") may be crossed: the venues disagree.
        self._allow_crossed = (
            channel.split(":")[1:2] == ["all"] if allow_crossed is None else allow_crossed
        )
        self._bids = _Side()
        self._asks = _Side()

    # -- reading ---------------------------------------------------------------------------

    def best_bid(self) -> Level | None:
        keys = self._bids.keys
        return self._level(self._bids, keys[-1]) if keys else None

    def best_ask(self) -> Level | None:
        keys = self._asks.keys
        return self._level(self._asks, keys[0]) if keys else None

    def spread(self) -> Decimal | None:
        """Best ask minus best bid (None when a side is empty)."""
        bid, ask = self.best_bid(), self.best_ask()
        return None if bid is None or ask is None else ask.price - bid.price

    def mid(self) -> Decimal | None:
        bid, ask = self.best_bid(), self.best_ask()
        return None if bid is None or ask is None else (ask.price + bid.price) / 2

    def top(self, n: int = 10) -> tuple[list[Level], list[Level]]:
        """The best ``n`` bids (highest first) and asks (lowest first)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        bids = [self._level(self._bids, k) for k in reversed(self._bids.keys[-n:])] if n else []
        asks = [self._level(self._asks, k) for k in self._asks.keys[:n]]
        return bids, asks

    def text_levels(self, n: int | None = None) -> tuple[list[_Text], list[_Text]]:
        """The best ``n`` levels a side (all when None) as the gateway's text, best first."""
        bk, ak = self._bids.keys, self._asks.keys
        bsel = bk if n is None else bk[-n:] if n else []
        asel = ak if n is None else ak[:n]
        return (
            [self._bids.levels[k] for k in reversed(bsel)],
            [self._asks.levels[k] for k in asel],
        )

    def depth(self) -> tuple[int, int]:
        """Number of bid and ask levels."""
        return len(self._bids.keys), len(self._asks.keys)

    def copy(self) -> BookMirror:
        """An independent copy (e.g. to hand to another thread)."""
        other = BookMirror(self.channel, allow_crossed=self._allow_crossed)
        other.epoch, other.seq, other.checksum, other.live = (
            self.epoch,
            self.seq,
            self.checksum,
            self.live,
        )
        for mine, theirs in ((self._bids, other._bids), (self._asks, other._asks)):
            theirs.levels = dict(mine.levels)
            theirs.keys = list(mine.keys)
        return other

    def computed_checksum(self) -> int:
        return book_checksum(*self.text_levels(DEPTH))

    def __repr__(self) -> str:
        bid, ask = self.best_bid(), self.best_ask()
        return (
            f"BookMirror({self.channel!r}, seq={self.seq}, live={self.live}, "
            f"bid={bid.price if bid else None}, ask={ask.price if ask else None})"
        )

    @staticmethod
    def _level(side: _Side, key: Decimal) -> Level:
        return Level(key, Decimal(side.levels[key][1]))

    # -- writing (the client calls these; applications normally only read) ------------------

    def load(
        self,
        bids: Iterable[Sequence[str]],
        asks: Iterable[Sequence[str]],
        *,
        seq: int,
        epoch: str,
        checksum: int | None,
    ) -> None:
        """Replace the whole book with a snapshot, then verify it."""
        self.live = False
        self._bids.clear()
        self._asks.clear()
        self._fill(bids, asks)
        self.seq, self.epoch = seq, epoch
        self._verify(checksum)

    def apply(
        self,
        bids: Iterable[Sequence[str]],
        asks: Iterable[Sequence[str]],
        *,
        seq: int,
        epoch: str,
        checksum: int | None,
    ) -> None:
        """Apply an update that must follow the last message applied, then verify."""
        if not self.live or self.seq is None:
            raise BookInvalid("client_out_of_sequence", "an update arrived before a snapshot")
        if epoch != self.epoch or seq != self.seq + 1:
            self.live = False
            raise BookInvalid(
                "client_out_of_sequence",
                f"update {epoch}/{seq} does not follow {self.epoch}/{self.seq}",
            )
        self.live = False
        self._fill(bids, asks)
        self.seq = seq
        self._verify(checksum)

    def invalidate(self) -> None:
        """The gateway is rebuilding this book (a ``resync`` notice): not usable until the next
        snapshot."""
        self.live = False

    def _fill(self, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> None:
        for side, levels in ((self._bids, bids), (self._asks, asks)):
            for level in levels:
                if len(level) != 2:
                    raise BookInvalid("client_invalid_level", f"level {level!r} is not a pair")
                side.set(level[0], level[1])

    def _verify(self, expected: int | None) -> None:
        if (
            not self._allow_crossed
            and self._bids.keys
            and self._asks.keys
            and self._bids.keys[-1] >= self._asks.keys[0]
        ):
            raise BookInvalid(
                "client_crossed", f"best bid {self._bids.keys[-1]} >= best ask {self._asks.keys[0]}"
            )
        if expected is not None:
            got = self.computed_checksum()
            if got != expected:
                raise BookInvalid(
                    "client_checksum_mismatch",
                    f"checksum {got} after seq {self.seq}, gateway says {expected}",
                )
        self.checksum = expected
        self.live = True
