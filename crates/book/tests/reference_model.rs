//! Property tests: the engine against a naive reference model (an unsorted `Vec` per side,
//! linear scans, sorted on read).
//!
//! Prices and sizes come from small integer grids with a random scale (`5`, `5.0`, `5.00`), so
//! the same price often arrives with different text; bid and ask grids overlap a little, so
//! books sometimes cross.

use book::checksum::tickgate_checksum;
use book::{BookError, BookState, ChecksumAlgo, DeltaOutcome, OrderBook};
use model::{BookDelta, BookSnapshot, Decimal, Level};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

const SNAPSHOT_SEQ: u64 = 1000;

#[derive(Debug, Clone)]
struct Model {
    bids: Vec<Level>,
    asks: Vec<Level>,
    max_depth: Option<usize>,
}

impl Model {
    fn new(max_depth: Option<usize>) -> Self {
        Self {
            bids: Vec::new(),
            asks: Vec::new(),
            max_depth,
        }
    }

    fn set(side: &mut Vec<Level>, level: Level) {
        let at = side.iter().position(|l| l.price == level.price);
        match (at, level.size.is_zero()) {
            (Some(i), true) => {
                side.remove(i);
            }
            (Some(i), false) => side[i] = level,
            (None, true) => {}
            (None, false) => side.push(level),
        }
    }

    fn apply(&mut self, bids: &[Level], asks: &[Level]) {
        for level in bids {
            Self::set(&mut self.bids, *level);
        }
        for level in asks {
            Self::set(&mut self.asks, *level);
        }
        if let Some(depth) = self.max_depth {
            self.bids = self.sorted_bids().into_iter().take(depth).collect();
            self.asks = self.sorted_asks().into_iter().take(depth).collect();
        }
    }

    fn sorted_bids(&self) -> Vec<Level> {
        let mut bids = self.bids.clone();
        bids.sort_by_key(|l| std::cmp::Reverse(l.price));
        bids
    }

    fn sorted_asks(&self) -> Vec<Level> {
        let mut asks = self.asks.clone();
        asks.sort_by_key(|l| l.price);
        asks
    }

    fn crossed(&self) -> bool {
        let best_bid = self.bids.iter().map(|l| l.price).max();
        let best_ask = self.asks.iter().map(|l| l.price).min();
        matches!((best_bid, best_ask), (Some(bid), Some(ask)) if bid >= ask)
    }

    fn checksum(&self) -> u32 {
        tickgate_checksum(&self.sorted_bids(), &self.sorted_asks())
    }

    fn snapshot(&self, seq: u64) -> BookSnapshot {
        BookSnapshot {
            seq,
            bids: self.sorted_bids(),
            asks: self.sorted_asks(),
            checksum: Some(self.checksum()),
            ..BookSnapshot::default()
        }
    }
}

fn invalid(level: &Level) -> bool {
    level.price <= Decimal::ZERO || level.size < Decimal::ZERO
}

/// Levels as `price:size` text, so a difference in scale is a difference.
fn text<'a>(levels: impl IntoIterator<Item = &'a Level>) -> Vec<String> {
    levels
        .into_iter()
        .map(|l| format!("{}:{}", l.price, l.size))
        .collect()
}

fn assert_matches_model(book: &mut OrderBook, model: &Model) -> Result<(), TestCaseError> {
    let (bids, asks) = (model.sorted_bids(), model.sorted_asks());
    prop_assert_eq!(text(book.bids()), text(&bids));
    prop_assert_eq!(text(book.asks()), text(&asks));
    prop_assert_eq!(text(&book.best_bid()), text(bids.first()));
    prop_assert_eq!(text(&book.best_ask()), text(asks.first()));
    prop_assert_eq!(book.depth(), (bids.len(), asks.len()));
    for n in [0, 1, 3, 10] {
        let (top_bids, top_asks) = book.top(n);
        prop_assert_eq!(text(&top_bids), text(bids.iter().take(n)));
        prop_assert_eq!(text(&top_asks), text(asks.iter().take(n)));
    }
    prop_assert_eq!(book.checksum(), model.checksum());
    // The cached texts persist across every step (deltas, errors, resyncs) of a case.
    prop_assert_eq!(book.checksum_cached(), model.checksum());
    Ok(())
}

/// `units` on the grid, written with 0 to 2 decimal places.
fn decimal(units: RangeInclusive<i64>) -> impl Strategy<Value = Decimal> {
    (units, 0u32..=2).prop_map(|(units, scale)| Decimal::new(units * 10i64.pow(scale), scale))
}

/// A delta level: mostly valid (a quarter are deletes), rarely a zero price or negative size.
fn delta_level(prices: RangeInclusive<i64>) -> impl Strategy<Value = Level> {
    prop_oneof![
        100 => (decimal(prices), decimal(0..=3)).prop_map(|(p, s)| Level::new(p, s)),
        1 => (decimal(0..=0), decimal(0..=3)).prop_map(|(p, s)| Level::new(p, s)),
        1 => (decimal(1..=20), decimal(1..=3)).prop_map(|(p, s)| Level::new(p, -s)),
    ]
}

fn book_level(prices: RangeInclusive<i64>) -> impl Strategy<Value = Level> {
    (decimal(prices), decimal(1..=3)).prop_map(|(p, s)| Level::new(p, s))
}

#[derive(Debug, Clone, Copy)]
enum Published {
    Nothing,
    Right,
    Wrong,
}

#[derive(Debug, Clone)]
struct Step {
    span: u64,
    bids: Vec<Level>,
    asks: Vec<Level>,
    checksum: Published,
    replay: bool,
}

fn step(
    bid_prices: RangeInclusive<i64>,
    ask_prices: RangeInclusive<i64>,
    valid_only: bool,
) -> impl Strategy<Value = Step> {
    let level = move |prices: RangeInclusive<i64>| -> BoxedStrategy<Level> {
        if valid_only {
            (decimal(prices), decimal(0..=3))
                .prop_map(|(p, s)| Level::new(p, s))
                .boxed()
        } else {
            delta_level(prices).boxed()
        }
    };
    let checksum = if valid_only {
        prop_oneof![Just(Published::Nothing), Just(Published::Right)].boxed()
    } else {
        prop_oneof![
            10 => Just(Published::Nothing),
            10 => Just(Published::Right),
            1 => Just(Published::Wrong),
        ]
        .boxed()
    };
    (
        1u64..=3,
        prop::collection::vec(level(bid_prices), 0..4),
        prop::collection::vec(level(ask_prices), 0..4),
        checksum,
        prop::bool::weighted(0.1),
    )
        .prop_map(|(span, bids, asks, checksum, replay)| Step {
            span,
            bids,
            asks,
            checksum,
            replay,
        })
}

/// The delta of a valid `step` after `seq`, carrying the checksum of `model` (the book after
/// the step) when the step publishes one.
fn valid_delta(seq: u64, step: &Step, model: &Model) -> BookDelta {
    BookDelta {
        first_seq: seq + 1,
        last_seq: seq + step.span,
        bids: step.bids.clone(),
        asks: step.asks.clone(),
        checksum: matches!(step.checksum, Published::Right).then(|| model.checksum()),
        ..BookDelta::default()
    }
}

/// A valid, uncrossed starting book (bids 1..=7, asks 11..=17) and its model.
fn start(
    bids: &[Level],
    asks: &[Level],
    max_depth: Option<usize>,
) -> (OrderBook, Model, BookSnapshot) {
    let mut model = Model::new(max_depth);
    model.apply(bids, asks);
    let snap = model.snapshot(SNAPSHOT_SEQ);
    let mut book = OrderBook::new(ChecksumAlgo::Tickgate);
    if let Some(depth) = max_depth {
        book = book.with_max_depth(depth);
    }
    (book, model, snap)
}

proptest! {
    /// Contiguous deltas (with deletes of absent levels, zero sizes, re-scaled prices, replays,
    /// right and wrong checksums, invalid levels): after each one the engine equals the model,
    /// or fails exactly as the model predicts and is then stale, empty and refusing deltas
    /// until it is resynced from a snapshot of the model's last good state.
    #[test]
    fn contiguous_deltas_match_the_model(
        start_bids in prop::collection::vec(book_level(1..=7), 0..8),
        start_asks in prop::collection::vec(book_level(11..=17), 0..8),
        max_depth in prop::option::of(1usize..=6),
        steps in prop::collection::vec(step(1..=10, 9..=20, false), 1..40),
    ) {
        let (mut book, mut model, snap) = start(&start_bids, &start_asks, max_depth);
        prop_assert_eq!(book.apply_snapshot(&snap), Ok(()));
        assert_matches_model(&mut book, &model)?;

        let mut seq = SNAPSHOT_SEQ;
        for step in steps {
            let mut next = model.clone();
            next.apply(&step.bids, &step.asks);
            let delta = BookDelta {
                first_seq: seq + 1,
                last_seq: seq + step.span,
                bids: step.bids.clone(),
                asks: step.asks.clone(),
                checksum: match step.checksum {
                    Published::Nothing => None,
                    Published::Right => Some(next.checksum()),
                    Published::Wrong => Some(next.checksum() ^ 1),
                },
                ..BookDelta::default()
            };
            let result = book.apply_delta(&delta);
            let is_invalid = step.bids.iter().chain(&step.asks).any(invalid);
            let want_code = if is_invalid {
                Some("invalid_level")
            } else if next.crossed() {
                Some("crossed")
            } else if matches!(step.checksum, Published::Wrong) {
                Some("checksum_mismatch")
            } else {
                None
            };
            match want_code {
                Some(code) => {
                    let error = result.expect_err("the model predicts an error");
                    prop_assert_eq!(error.code(), code);
                    prop_assert_eq!(book.state(), &BookState::Stale(error.stale_reason().unwrap()));
                    prop_assert_eq!(book.depth(), (0, 0));
                    prop_assert_eq!(book.apply_delta(&delta), Err(BookError::NotLive));
                    // Resync as a connector would: a fresh snapshot of the last good state.
                    seq = delta.last_seq;
                    prop_assert_eq!(book.apply_snapshot(&model.snapshot(seq)), Ok(()));
                    assert_matches_model(&mut book, &model)?;
                    continue;
                }
                None => prop_assert_eq!(result, Ok(DeltaOutcome::Applied)),
            }
            model = next;
            seq = delta.last_seq;
            prop_assert_eq!(book.seq(), seq);
            assert_matches_model(&mut book, &model)?;
            if step.replay {
                prop_assert_eq!(book.apply_delta(&delta), Ok(DeltaOutcome::Ignored));
                assert_matches_model(&mut book, &model)?;
            }
        }
    }

    /// Books deeper than the checksum's top levels, with deltas that often change only levels
    /// below them (the cached checksum is then kept as it was): after every delta the cached
    /// checksum is the model's, whether or not it was read after the deltas before, with and
    /// without a max depth above or below the checksum's depth, and with some of the changes
    /// arriving as a snapshot that replaces the live book.
    #[test]
    fn deep_books_keep_the_cached_checksum_right(
        start_bids in prop::collection::vec(book_level(1..=40), 10..60),
        start_asks in prop::collection::vec(book_level(41..=80), 10..60),
        max_depth in prop::option::of(5usize..=30),
        steps in prop::collection::vec(
            (step(1..=40, 41..=80, true), prop::bool::weighted(0.7), prop::bool::weighted(0.1)),
            1..60,
        ),
    ) {
        let (mut book, mut model, snap) = start(&start_bids, &start_asks, max_depth);
        prop_assert_eq!(book.apply_snapshot(&snap), Ok(()));
        prop_assert_eq!(book.checksum_cached(), model.checksum());
        let mut seq = SNAPSHOT_SEQ;
        for (step, read, as_snapshot) in steps {
            model.apply(&step.bids, &step.asks);
            if as_snapshot {
                // The same change as a snapshot replacing the live book (a venue resync).
                seq += step.span;
                prop_assert_eq!(book.apply_snapshot(&model.snapshot(seq)), Ok(()));
                if read {
                    prop_assert_eq!(book.checksum_cached(), model.checksum());
                }
                continue;
            }
            let delta = valid_delta(seq, &step, &model);
            seq = delta.last_seq;
            prop_assert_eq!(book.apply_delta(&delta), Ok(DeltaOutcome::Applied));
            if read {
                prop_assert_eq!(book.checksum_cached(), model.checksum());
            }
        }
        assert_matches_model(&mut book, &model)?;
    }

    /// A valid delta sequence fed shuffled, or as an arbitrary pick of its messages (drops,
    /// duplicates, reordering): whenever the book is live it equals the model at the book's
    /// seq. On a gap the book is resynced from a snapshot of the model just before that delta.
    #[test]
    fn reordered_feed_never_yields_a_wrong_live_book(
        start_bids in prop::collection::vec(book_level(1..=7), 0..8),
        start_asks in prop::collection::vec(book_level(11..=17), 0..8),
        max_depth in prop::option::of(1usize..=6),
        (steps, feed) in prop::collection::vec(step(1..=10, 11..=20, true), 1..30)
            .prop_flat_map(|steps| {
                let n = steps.len();
                let order: Vec<usize> = (0..n).collect();
                let feed = prop_oneof![
                    Just(order).prop_shuffle(),
                    prop::collection::vec(0..n, 0..2 * n + 1),
                ];
                (Just(steps), feed)
            }),
    ) {
        let (mut book, model, snap) = start(&start_bids, &start_asks, max_depth);
        prop_assert_eq!(book.apply_snapshot(&snap), Ok(()));

        // The model after each prefix of the sequence, by the seq it ends at.
        let mut states = BTreeMap::from([(SNAPSHOT_SEQ, model.clone())]);
        let mut deltas = Vec::new();
        let (mut seq, mut model) = (SNAPSHOT_SEQ, model);
        for step in &steps {
            model.apply(&step.bids, &step.asks);
            let delta = valid_delta(seq, step, &model);
            seq = delta.last_seq;
            states.insert(seq, model.clone());
            deltas.push(delta);
        }

        for i in feed {
            let delta = &deltas[i];
            match book.apply_delta(delta) {
                Ok(_) => {}
                Err(BookError::Gap { expected, first }) => {
                    prop_assert_eq!(expected, book.seq() + 1);
                    prop_assert!(first > expected);
                    let before = delta.first_seq - 1;
                    prop_assert_eq!(book.apply_snapshot(&states[&before].snapshot(before)), Ok(()));
                }
                Err(other) => prop_assert!(false, "unexpected error: {other}"),
            }
            prop_assert!(book.is_live());
            let Some(want) = states.get(&book.seq()) else {
                return Err(TestCaseError::fail(format!("live at seq {} between deltas", book.seq())));
            };
            assert_matches_model(&mut book, want)?;
        }
    }
}
