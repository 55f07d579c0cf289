"""The checksum against the worked examples of docs/protocol.md §8.3."""

from tickgate import book_checksum


def test_worked_example_from_the_protocol_docs() -> None:
    bids = [("100.5", "2"), ("100.4", "1.50")]
    asks = [("100.6", "3")]
    assert book_checksum(bids, asks) == 730521353


def test_trailing_zeros_change_the_checksum() -> None:
    assert book_checksum([("100.5", "2"), ("100.4", "1.5")], [("100.6", "3")]) == 837807020


def test_empty_book_is_zero() -> None:
    assert book_checksum([], []) == 0


def test_real_rest_book_from_the_docs() -> None:
    bids = [
        ("150.109", "239.99"),
        ("150.108", "47.40"),
        ("150.107", "178.32"),
        ("150.106", "323.32"),
        ("150.105", "168.65"),
        ("150.099", "297.65"),
        ("150.097", "239.98"),
        ("150.096", "30.33"),
        ("150.095", "11.24"),
        ("150.094", "386.64"),
    ]
    asks = [
        ("150.110", "41.66"),
        ("150.111", "78.33"),
        ("150.112", "139.99"),
        ("150.113", "277.98"),
        ("150.114", "293.73"),
        ("150.115", "173.32"),
        ("150.116", "291.30"),
        ("150.118", "386.64"),
        ("150.122", "137.24"),
        ("150.123", "299.23"),
    ]
    assert book_checksum(bids, asks) == 4035351607


def test_only_ten_levels_a_side_count() -> None:
    bids = [(f"{100 - i}", "1") for i in range(12)]
    asks = [(f"{200 + i}", "1") for i in range(12)]
    assert book_checksum(bids, asks) == book_checksum(bids[:10], asks[:10])
    assert book_checksum(bids, asks) != book_checksum(bids[:9], asks[:10])
