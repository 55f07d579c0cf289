"""BookMirror: applying updates exactly as docs/protocol.md §8.1 says, and refusing to be wrong."""

from decimal import Decimal

import pytest

from tickgate import BookInvalid, BookMirror, Level, book_checksum


def mirror_with(bids: list[list[str]], asks: list[list[str]], seq: int = 10) -> BookMirror:
    book = BookMirror("book:sim:BTC-USDT")
    book.load(bids, asks, seq=seq, epoch="e1", checksum=None)
    return book


def checksum_of(book: BookMirror) -> int:
    return book_checksum(*book.text_levels(10))


def test_snapshot_then_updates_with_checksums() -> None:
    snap_b, snap_a = [["100.5", "2"], ["100.4", "1.50"]], [["100.6", "3"]]
    book = BookMirror("book:sim:BTC-USDT")
    book.load(snap_b, snap_a, seq=7, epoch="e1", checksum=730521353)
    assert book.live and book.seq == 7
    assert book.best_bid() == Level(Decimal("100.5"), Decimal("2"))
    assert book.best_ask() == Level(Decimal("100.6"), Decimal("3"))
    assert book.spread() == Decimal("0.1")
    # Remove the best bid with a zero size in another spelling, add an ask.
    expected = book_checksum([("100.4", "1.50")], [("100.6", "3"), ("100.7", "1")])
    book.apply([["100.5", "0.000"]], [["100.7", "1"]], seq=8, epoch="e1", checksum=expected)
    assert book.live and book.seq == 8 and book.checksum == expected
    bids, asks = book.top(5)
    assert [b.price for b in bids] == [Decimal("100.4")]
    assert [a.price for a in asks] == [Decimal("100.6"), Decimal("100.7")]


def test_a_level_is_keyed_by_value_and_keeps_the_latest_text() -> None:
    book = mirror_with([["100.0", "1"]], [["101", "1"]])
    book.apply([["100.00", "2.0"]], [], seq=11, epoch="e1", checksum=None)
    assert book.depth() == (1, 1)
    assert book.text_levels()[0] == [("100.00", "2.0")]


def test_a_price_may_move_sides_within_one_update() -> None:
    book = mirror_with([["100", "1"], ["99", "1"]], [["101", "1"]])
    book.apply([["100", "0"]], [["100", "5"]], seq=11, epoch="e1", checksum=None)
    assert book.best_bid() == Level(Decimal("99"), Decimal("1"))
    assert book.best_ask() == Level(Decimal("100"), Decimal("5"))


def test_removing_an_absent_level_is_fine() -> None:
    book = mirror_with([["100", "1"]], [["101", "1"]])
    book.apply([["98", "0"]], [], seq=11, epoch="e1", checksum=None)
    assert book.depth() == (1, 1)


def test_checksum_mismatch_makes_the_book_not_live() -> None:
    book = mirror_with([["100", "1"]], [["101", "1"]])
    with pytest.raises(BookInvalid) as error:
        book.apply([["100", "2"]], [], seq=11, epoch="e1", checksum=12345)
    assert error.value.reason == "client_checksum_mismatch"
    assert not book.live


def test_out_of_sequence_and_wrong_epoch_are_refused() -> None:
    book = mirror_with([["100", "1"]], [["101", "1"]])
    with pytest.raises(BookInvalid) as error:
        book.apply([], [], seq=12, epoch="e1", checksum=None)
    assert error.value.reason == "client_out_of_sequence"
    book = mirror_with([["100", "1"]], [["101", "1"]])
    with pytest.raises(BookInvalid):
        book.apply([], [], seq=11, epoch="e2", checksum=None)
    fresh = BookMirror("book:sim:BTC-USDT")
    with pytest.raises(BookInvalid):
        fresh.apply([], [], seq=1, epoch="e1", checksum=None)


def test_crossed_book_is_refused_except_consolidated() -> None:
    book = mirror_with([["100", "1"]], [["101", "1"]])
    with pytest.raises(BookInvalid) as error:
        book.apply([["101.5", "1"]], [], seq=11, epoch="e1", checksum=None)
    assert error.value.reason == "client_crossed"
    merged = BookMirror("book:all:BTC-USDT")
    merged.load([["101.5", "1"]], [["101", "1"]], seq=1, epoch="e", checksum=None)
    assert merged.live


@pytest.mark.parametrize(
    "level", [["abc", "1"], ["100", "-1"], ["0", "1"], ["100", "NaN"], ["100"], ["100", "1", "2"]]
)
def test_invalid_levels(level: list[str]) -> None:
    book = mirror_with([["90", "1"]], [["101", "1"]])
    with pytest.raises(BookInvalid) as error:
        book.apply([level], [], seq=11, epoch="e1", checksum=None)
    assert error.value.reason == "client_invalid_level"
    assert not book.live


def test_snapshot_replaces_everything() -> None:
    book = mirror_with([["100", "1"], ["99", "1"]], [["101", "1"]])
    book.load([["50", "1"]], [["51", "1"]], seq=30, epoch="e2", checksum=None)
    assert book.depth() == (1, 1) and book.epoch == "e2" and book.seq == 30


def test_top_and_copy() -> None:
    bids = [[str(100 - i), "1"] for i in range(20)]
    asks = [[str(101 + i), "1"] for i in range(20)]
    book = mirror_with(bids, asks)
    top_b, top_a = book.top(3)
    assert [b.price for b in top_b] == [Decimal(100), Decimal(99), Decimal(98)]
    assert [a.price for a in top_a] == [Decimal(101), Decimal(102), Decimal(103)]
    assert book.top(0) == ([], [])
    copy = book.copy()
    book.apply([["100", "0"]], [], seq=11, epoch="e1", checksum=None)
    assert copy.best_bid() == Level(Decimal(100), Decimal(1))
    assert book.best_bid() == Level(Decimal(99), Decimal(1))
    assert checksum_of(copy) != checksum_of(book)
