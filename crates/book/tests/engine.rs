//! Table-driven tests of the book engine's snapshot and delta rules.
//!
//! Books are written as text, `"bids | asks"`, each side `price:size` pairs best first, with the
//! decimals' scale exactly as stored (so `100.0` and `100` differ).

use book::checksum::tickgate_checksum;
use book::{BookError, BookState, ChecksumAlgo, DeltaOutcome, OrderBook, StaleReason};
use model::{BookDelta, BookSnapshot, Level, parse_decimal};

const BASE: &str = "100:1 99:2 | 101:1 102:2";
const BASE_SEQ: u64 = 100;

fn levels(text: &str) -> Vec<Level> {
    text.split_whitespace()
        .map(|pair| {
            let (price, size) = pair.split_once(':').expect("price:size");
            Level::new(parse_decimal(price).unwrap(), parse_decimal(size).unwrap())
        })
        .collect()
}

fn sides(text: &str) -> (Vec<Level>, Vec<Level>) {
    let (bids, asks) = text.split_once('|').expect("bids | asks");
    (levels(bids), levels(asks))
}

fn text_checksum(text: &str) -> u32 {
    let (bids, asks) = sides(text);
    tickgate_checksum(&bids, &asks)
}

fn snapshot(seq: u64, text: &str) -> BookSnapshot {
    let (bids, asks) = sides(text);
    BookSnapshot {
        seq,
        bids,
        asks,
        ..BookSnapshot::default()
    }
}

fn delta(first_seq: u64, last_seq: u64, text: &str) -> BookDelta {
    let (bids, asks) = sides(text);
    BookDelta {
        first_seq,
        last_seq,
        bids,
        asks,
        ..BookDelta::default()
    }
}

fn render(book: &OrderBook) -> String {
    let side = |levels: Vec<&Level>| {
        let pairs: Vec<String> = levels
            .iter()
            .map(|l| format!("{}:{}", l.price, l.size))
            .collect();
        pairs.join(" ")
    };
    format!(
        "{} | {}",
        side(book.bids().collect()),
        side(book.asks().collect())
    )
}

fn state(book: &OrderBook) -> String {
    match book.state() {
        BookState::AwaitingSnapshot => "awaiting".into(),
        BookState::Live => "live".into(),
        BookState::Stale(reason) => format!("stale:{reason}"),
    }
}

/// `"applied"`, `"ignored"` or the error code.
fn outcome(result: Result<DeltaOutcome, BookError>) -> &'static str {
    match result {
        Ok(DeltaOutcome::Applied) => "applied",
        Ok(DeltaOutcome::Ignored) => "ignored",
        Err(error) => error.code(),
    }
}

fn live_book(algo: ChecksumAlgo) -> OrderBook {
    let mut book = OrderBook::new(algo);
    book.apply_snapshot(&snapshot(BASE_SEQ, BASE)).unwrap();
    book
}

#[test]
fn delta_rules() {
    // (what, delta, outcome, state, seq after, book after)
    #[rustfmt::skip]
    let cases = [
        ("next id applies", delta(101, 101, "100:3 |"), "applied", "live", 101, "100:3 99:2 | 101:1 102:2"),
        ("straddling the book seq applies (Binance rule)", delta(95, 105, "98:1 | 103:1"), "applied", "live", 105, "100:1 99:2 98:1 | 101:1 102:2 103:1"),
        ("duplicate is ignored", delta(100, 100, "100:9 |"), "ignored", "live", 100, BASE),
        ("late message is ignored", delta(90, 95, "100:9 |"), "ignored", "live", 100, BASE),
        ("gap", delta(102, 102, "100:9 |"), "gap", "stale:gap", 100, " | "),
        ("first > last beyond the book is a gap", delta(103, 101, "|"), "gap", "stale:gap", 100, " | "),
        ("size 0 removes", delta(101, 101, "99:0 | 101:0"), "applied", "live", 101, "100:1 | 102:2"),
        ("removing an absent level is a no-op", delta(101, 101, "50:0 | 150.00:0"), "applied", "live", 101, BASE),
        ("size is absolute, not an increment", delta(101, 101, "| 102:5"), "applied", "live", 101, "100:1 99:2 | 101:1 102:5"),
        ("new levels go in price order", delta(101, 101, "99.5:1 | 101.5:1"), "applied", "live", 101, "100:1 99.5:1 99:2 | 101:1 101.5:1 102:2"),
        ("empty delta only advances seq", delta(101, 103, "|"), "applied", "live", 103, BASE),
        ("new price text replaces old scale", delta(101, 101, "100.00:1 | 101.0:3"), "applied", "live", 101, "100.00:1 99:2 | 101.0:3 102:2"),
        ("crossed after delta", delta(101, 101, "102:1 |"), "crossed", "stale:crossed", 101, " | "),
        ("locked (bid == ask) is crossed", delta(101, 101, "101.0:1 |"), "crossed", "stale:crossed", 101, " | "),
        ("crossed check runs after the whole delta", delta(101, 101, "101.5:1 | 101:0"), "applied", "live", 101, "101.5:1 100:1 99:2 | 102:2"),
        ("emptying a side is fine", delta(101, 101, "100:0 99:0 |"), "applied", "live", 101, " | 101:1 102:2"),
        ("negative size is invalid, nothing applied", delta(101, 101, "98:1 100:-1 |"), "invalid_level", "stale:invalid_level", 100, " | "),
        ("zero price is invalid", delta(101, 101, "| 0:1"), "invalid_level", "stale:invalid_level", 100, " | "),
        ("negative price is invalid even as a delete", delta(101, 101, "-1:0 |"), "invalid_level", "stale:invalid_level", 100, " | "),
    ];
    for (what, delta, want, want_state, want_seq, want_book) in cases {
        let mut book = live_book(ChecksumAlgo::Tickgate);
        assert_eq!(outcome(book.apply_delta(&delta)), want, "{what}");
        assert_eq!(state(&book), want_state, "{what}");
        assert_eq!(book.seq(), want_seq, "{what}");
        assert_eq!(render(&book), want_book, "{what}");
    }
}

#[test]
fn snapshot_rules() {
    // (what, snapshot, outcome, state, book after)
    #[rustfmt::skip]
    let cases = [
        ("valid", snapshot(7, BASE), "ok", "live", BASE),
        ("empty book is valid", snapshot(7, "|"), "ok", "live", " | "),
        ("one empty side is valid", snapshot(7, "100:1 |"), "ok", "live", "100:1 | "),
        ("levels are ordered whatever the input order", snapshot(7, "99:2 100:1 | 102:2 101:1"), "ok", "live", BASE),
        ("zero size is invalid", snapshot(7, "100:1 99:0 | 101:1"), "invalid_level", "stale:invalid_level", " | "),
        ("negative size is invalid", snapshot(7, "100:1 | 101:-1"), "invalid_level", "stale:invalid_level", " | "),
        ("zero price is invalid", snapshot(7, "0:1 | 101:1"), "invalid_level", "stale:invalid_level", " | "),
        ("price given twice is invalid", snapshot(7, "100:1 100.0:2 | 101:1"), "invalid_level", "stale:invalid_level", " | "),
        ("crossed", snapshot(7, "102:1 | 101:1"), "crossed", "stale:crossed", " | "),
        ("locked is crossed", snapshot(7, "101:1 | 101:1"), "crossed", "stale:crossed", " | "),
    ];
    for (what, snap, want, want_state, want_book) in cases {
        let mut book = OrderBook::new(ChecksumAlgo::Tickgate);
        let got = match book.apply_snapshot(&snap) {
            Ok(()) => "ok",
            Err(error) => error.code(),
        };
        assert_eq!(got, want, "{what}");
        assert_eq!(state(&book), want_state, "{what}");
        assert_eq!(book.seq(), 7, "{what}");
        assert_eq!(render(&book), want_book, "{what}");
    }
}

#[test]
fn snapshot_replaces_never_merges() {
    let mut book = live_book(ChecksumAlgo::None);
    book.apply_delta(&delta(101, 101, "98:4 | 103:4")).unwrap();
    // A lower seq is accepted: after a venue restart the snapshot is the truth.
    book.apply_snapshot(&snapshot(50, "90:1 | 95:1")).unwrap();
    assert_eq!(render(&book), "90:1 | 95:1");
    assert_eq!((book.seq(), state(&book)), (50, "live".into()));
}

#[test]
fn checksum_verification() {
    let after = "100:3 99:2 | 101:1 102:2";
    let right = text_checksum(after);
    // (what, algo, snapshot checksum, delta checksum, delta outcome, state)
    #[rustfmt::skip]
    let cases = [
        ("no checksum published", ChecksumAlgo::Tickgate, None, None, "applied", "live"),
        ("right checksums", ChecksumAlgo::Tickgate, Some(text_checksum(BASE)), Some(right), "applied", "live"),
        ("wrong delta checksum", ChecksumAlgo::Tickgate, None, Some(right ^ 1), "checksum_mismatch", "stale:checksum_mismatch"),
        ("algo None ignores a wrong checksum", ChecksumAlgo::None, Some(1), Some(right ^ 1), "applied", "live"),
    ];
    for (what, algo, snap_checksum, delta_checksum, want, want_state) in cases {
        let mut book = OrderBook::new(algo);
        let snap = BookSnapshot {
            checksum: snap_checksum,
            ..snapshot(BASE_SEQ, BASE)
        };
        book.apply_snapshot(&snap).unwrap();
        let delta = BookDelta {
            checksum: delta_checksum,
            ..delta(101, 101, "100:3 |")
        };
        assert_eq!(outcome(book.apply_delta(&delta)), want, "{what}");
        assert_eq!(state(&book), want_state, "{what}");
    }

    let mut book = OrderBook::new(ChecksumAlgo::Tickgate);
    let snap = BookSnapshot {
        checksum: Some(text_checksum(BASE) ^ 1),
        ..snapshot(BASE_SEQ, BASE)
    };
    let err = book.apply_snapshot(&snap).unwrap_err();
    assert_eq!(
        err,
        BookError::ChecksumMismatch {
            expected: text_checksum(BASE) ^ 1,
            computed: text_checksum(BASE)
        }
    );
    assert_eq!(
        (state(&book), render(&book)),
        ("stale:checksum_mismatch".into(), " | ".into())
    );
}

/// Regression guard: a price re-sent with another scale must replace the stored text, or the
/// checksum diverges from a client that mirrors the same messages.
#[test]
fn trailing_zero_price_replacement_changes_the_checksum() {
    let mut book = live_book(ChecksumAlgo::Tickgate);
    assert_eq!(book.checksum(), text_checksum(BASE));
    let after = "100.0:1 99:2 | 101:1 102:2";
    let delta = BookDelta {
        checksum: Some(text_checksum(after)),
        ..delta(101, 101, "100.0:1 |")
    };
    assert_eq!(book.apply_delta(&delta), Ok(DeltaOutcome::Applied));
    assert_eq!(render(&book), after);
    assert_eq!(book.checksum(), text_checksum(after));
    assert_ne!(book.checksum(), text_checksum(BASE));
}

#[test]
fn not_live_until_a_snapshot_succeeds() {
    let mut book = OrderBook::new(ChecksumAlgo::Tickgate);
    assert_eq!(book.state(), &BookState::AwaitingSnapshot);
    assert_eq!(
        book.apply_delta(&delta(1, 1, "100:1 |")),
        Err(BookError::NotLive)
    );

    book.apply_snapshot(&snapshot(BASE_SEQ, BASE)).unwrap();
    assert_eq!(outcome(book.apply_delta(&delta(105, 105, "|"))), "gap");
    // Even the delta that would have been next is refused, and the reason is kept.
    assert_eq!(
        book.apply_delta(&delta(101, 101, "|")),
        Err(BookError::NotLive)
    );
    assert_eq!(book.state(), &BookState::Stale(StaleReason::Gap));
    assert!(!book.is_live());

    book.apply_snapshot(&snapshot(104, BASE)).unwrap();
    assert_eq!(outcome(book.apply_delta(&delta(105, 105, "|"))), "applied");
    assert!(book.is_live());
}

#[test]
fn mark_stale_empties_the_book() {
    let mut book = live_book(ChecksumAlgo::Tickgate);
    book.mark_stale(StaleReason::Requested);
    assert_eq!(
        (state(&book), render(&book)),
        ("stale:requested".into(), " | ".into())
    );
    assert_eq!(
        (book.best_bid(), book.best_ask(), book.depth()),
        (None, None, (0, 0))
    );
    assert_eq!(
        book.apply_delta(&delta(101, 101, "|")),
        Err(BookError::NotLive)
    );
}

#[test]
fn max_depth_truncates_after_every_change() {
    let mut book = OrderBook::new(ChecksumAlgo::Tickgate).with_max_depth(2);
    // (what, update, book after)
    #[rustfmt::skip]
    let steps = [
        ("snapshot keeps the best two", None, "100:1 99:1 | 101:1 102:1"),
        ("a better level pushes the worst out", Some(delta(11, 11, "100.5:1 | 100.8:1")), "100.5:1 100:1 | 100.8:1 101:1"),
        ("a worse level is dropped at once", Some(delta(12, 12, "90:1 | 110:1")), "100.5:1 100:1 | 100.8:1 101:1"),
        ("dropped levels do not come back", Some(delta(13, 13, "100.5:0 | 100.8:0")), "100:1 | 101:1"),
    ];
    for (what, update, want) in steps {
        match update {
            None => book
                .apply_snapshot(&snapshot(10, "100:1 99:1 98:1 | 101:1 102:1 103:1"))
                .unwrap(),
            Some(delta) => assert_eq!(
                book.apply_delta(&delta),
                Ok(DeltaOutcome::Applied),
                "{what}"
            ),
        }
        assert_eq!(render(&book), want, "{what}");
        assert_eq!(book.checksum(), text_checksum(want), "{what}");
    }
}

#[test]
fn read_views() {
    let book = live_book(ChecksumAlgo::Tickgate);
    let (bids, asks) = sides(BASE);
    assert_eq!(book.best_bid(), Some(bids[0]));
    assert_eq!(book.best_ask(), Some(asks[0]));
    assert_eq!(book.depth(), (2, 2));
    assert_eq!(book.top(1), (bids[..1].to_vec(), asks[..1].to_vec()));
    assert_eq!(book.top(5), (bids.clone(), asks.clone()));
    assert_eq!(book.top(0), (vec![], vec![]));

    let empty = OrderBook::new(ChecksumAlgo::Tickgate);
    assert_eq!(
        (empty.best_bid(), empty.depth(), empty.checksum()),
        (None, (0, 0), 0)
    );
}

#[test]
fn error_classification() {
    let d = parse_decimal("1").unwrap();
    // (error, code, terminal, stale reason)
    #[rustfmt::skip]
    let cases = [
        (BookError::Gap { expected: 2, first: 3 }, "gap", true, Some(StaleReason::Gap)),
        (BookError::Crossed { bid: d, ask: d }, "crossed", true, Some(StaleReason::Crossed)),
        (BookError::ChecksumMismatch { expected: 1, computed: 2 }, "checksum_mismatch", true, Some(StaleReason::ChecksumMismatch)),
        (BookError::InvalidLevel { price: d, size: d, reason: "x" }, "invalid_level", true, Some(StaleReason::InvalidLevel)),
        (BookError::NotLive, "not_live", false, None),
    ];
    for (error, code, terminal, reason) in cases {
        assert_eq!(error.code(), code, "{error}");
        assert_eq!(error.is_terminal(), terminal, "{error}");
        assert_eq!(error.stale_reason(), reason, "{error}");
    }
    let labels = [
        (StaleReason::Gap, "gap"),
        (StaleReason::Crossed, "crossed"),
        (StaleReason::ChecksumMismatch, "checksum_mismatch"),
        (StaleReason::InvalidLevel, "invalid_level"),
        (StaleReason::Requested, "requested"),
    ];
    for (reason, label) in labels {
        assert_eq!(
            (reason.as_str(), reason.to_string()),
            (label, label.to_string())
        );
    }
}
