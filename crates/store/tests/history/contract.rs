//! The `HistoryStore` contract. Each function takes a fresh, empty store and panics on a
//! violation; `contract_tests!` turns them into one `#[test]` per function for a backend.

use crate::fixtures::*;
use model::{Interval, Side, Timestamp};
use std::collections::{BTreeSet, HashMap};
use store::{
    CandleQuery, HistoryBatch, HistoryKind, HistoryStore, Order, PerpQuery, Record, StoredTrade,
    TradeQuery,
};

/// Generates one test per contract function for a backend. `$make` is an expression giving
/// `Option<S>` where `&*S` is a store (None skips: the backend's service is not configured).
#[macro_export]
macro_rules! contract_tests {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            $crate::contract_tests!(@each $make;
                trades_round_trip_exactly,
                ranges_are_half_open_and_ordered,
                pagination_returns_every_row_once_while_inserts_continue,
                candle_pagination_is_stable_too,
                candles_round_trip_and_merge_repeated_buckets,
                retention_deletes_exactly_what_is_older,
                unknown_instruments_are_empty_and_instruments_are_listed,
                counts_match_queries,
                the_same_rows_written_twice_are_stored_once,
                perp_figures_round_trip_page_dedupe_and_purge,
                liquidations_round_trip_page_dedupe_and_purge,
            );
        }
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let Some(store) = $make else { return };
                $crate::contract::$name(&*store);
            }
        )*
    };
}

fn trades_query(
    venue: &str,
    symbol: &str,
    from: i64,
    to: i64,
    order: Order,
    limit: usize,
) -> TradeQuery {
    TradeQuery {
        venue: v(venue),
        symbol: s(symbol),
        from: Timestamp(from),
        to: Timestamp(to),
        order,
        after: None,
        limit,
    }
}

fn candles_query(
    interval: Interval,
    from: i64,
    to: i64,
    order: Order,
    limit: usize,
) -> CandleQuery {
    CandleQuery {
        venue: v("sim"),
        symbol: s("BTC-USDT"),
        interval,
        from: Timestamp(from),
        to: Timestamp(to),
        order,
        after: None,
        limit,
    }
}

fn append_trades(store: &dyn HistoryStore, venue: &str, symbol: &str, trades: Vec<model::Trade>) {
    let batch = HistoryBatch {
        records: vec![Record::Trades {
            venue: v(venue),
            symbol: s(symbol),
            trades,
        }],
    };
    assert_eq!(store.append(&batch).unwrap(), batch.rows());
}

fn append_candles(store: &dyn HistoryStore, candles: Vec<model::Candle>) {
    let records = candles
        .into_iter()
        .map(|c| Record::Candle {
            venue: v("sim"),
            symbol: s("BTC-USDT"),
            candle: Box::new(c),
        })
        .collect();
    store.append(&HistoryBatch { records }).unwrap();
}

/// Reads every page of `query` and returns the rows in the order received.
fn all_trades(store: &dyn HistoryStore, mut query: TradeQuery) -> Vec<StoredTrade> {
    let mut out = Vec::new();
    loop {
        let page = store.trades(&query).unwrap();
        assert!(page.rows.len() <= query.limit);
        out.extend(page.rows);
        match page.next {
            Some(next) => query.after = Some(next),
            None => return out,
        }
    }
}

pub fn trades_round_trip_exactly(store: &dyn HistoryStore) {
    let input = vec![
        trade("1", "67123.45000000", "0.00100000", Side::Buy, 1_000),
        trade("abc-2", "0.1", "5", Side::Sell, 1_000),
        trade("3", "45285.2", "100", Side::Buy, 2_000),
    ];
    append_trades(store, "sim", "BTC-USDT", input.clone());
    let rows = store
        .trades(&trades_query("sim", "BTC-USDT", 0, 10_000, Order::Asc, 10))
        .unwrap();
    assert_eq!(rows.next, None);
    assert_eq!(rows.rows.len(), 3);
    for (got, want) in rows.rows.iter().zip(&input) {
        assert_eq!(
            (
                &got.id,
                got.price.to_string(),
                got.size.to_string(),
                got.side,
                got.ts
            ),
            (
                &want.id,
                want.price.to_string(),
                want.size.to_string(),
                want.side,
                want.exchange_ts
            ),
            "scale and fields are kept exactly"
        );
    }
    assert!(
        rows.rows.windows(2).all(|w| w[0].seq < w[1].seq),
        "seq increases in append order"
    );
    // Another instrument's rows never leak in.
    append_trades(
        store,
        "sim",
        "ETH-USDT",
        vec![trade("9", "1", "1", Side::Buy, 1_500)],
    );
    let btc = store
        .trades(&trades_query("sim", "BTC-USDT", 0, 10_000, Order::Asc, 10))
        .unwrap();
    assert_eq!(btc.rows.len(), 3);
}

pub fn ranges_are_half_open_and_ordered(store: &dyn HistoryStore) {
    let trades = (1..=5)
        .map(|i| trade(&i.to_string(), "1", "1", Side::Buy, i * 100))
        .collect();
    append_trades(store, "sim", "BTC-USDT", trades);
    let ts = |order, from, to| -> Vec<i64> {
        store
            .trades(&trades_query("sim", "BTC-USDT", from, to, order, 100))
            .unwrap()
            .rows
            .iter()
            .map(|t| t.ts.0)
            .collect()
    };
    assert_eq!(
        ts(Order::Asc, 200, 400),
        [200, 300],
        "from inclusive, to exclusive"
    );
    assert_eq!(ts(Order::Desc, 200, 401), [400, 300, 200]);
    assert_eq!(ts(Order::Asc, 600, 700), Vec::<i64>::new());
    let page = store
        .trades(&trades_query("sim", "BTC-USDT", 0, 1_000, Order::Desc, 2))
        .unwrap();
    assert_eq!(
        page.rows.iter().map(|t| t.ts.0).collect::<Vec<_>>(),
        [500, 400]
    );
    assert!(page.next.is_some(), "more rows follow");
    let exact = store
        .trades(&trades_query("sim", "BTC-USDT", 0, 1_000, Order::Asc, 5))
        .unwrap();
    assert_eq!(
        (exact.rows.len(), exact.next),
        (5, None),
        "no empty trailing page"
    );
}

pub fn pagination_returns_every_row_once_while_inserts_continue(store: &dyn HistoryStore) {
    // Many rows share a timestamp, so the tie-breaker matters.
    let initial: Vec<_> = (0..600)
        .map(|i| trade(&format!("t{i}"), "1", "1", Side::Buy, 1_000 + (i / 7) * 10))
        .collect();
    append_trades(store, "sim", "BTC-USDT", initial);
    let before: BTreeSet<i64> = all_trades(
        store,
        trades_query("sim", "BTC-USDT", 0, i64::MAX, Order::Asc, 1000),
    )
    .iter()
    .map(|t| t.seq)
    .collect();
    assert_eq!(before.len(), 600);
    for order in [Order::Asc, Order::Desc] {
        let mut query = trades_query("sim", "BTC-USDT", 0, 100_000, order, 37);
        let mut seen: HashMap<i64, usize> = HashMap::new();
        let mut extra = 0;
        loop {
            let page = store.trades(&query).unwrap();
            for t in &page.rows {
                *seen.entry(t.seq).or_default() += 1;
            }
            let Some(next) = page.next else { break };
            // Inserts between pages: before, at and after the cursor's time (new trade ids:
            // a repeated one would be the same trade, stored once).
            extra += 3;
            append_trades(
                store,
                "sim",
                "BTC-USDT",
                vec![
                    trade(&format!("late{extra}"), "1", "1", Side::Sell, next.ts - 10),
                    trade(&format!("same{extra}"), "1", "1", Side::Sell, next.ts),
                    trade(&format!("new{extra}"), "1", "1", Side::Sell, next.ts + 10),
                ],
            );
            query.after = Some(next);
        }
        assert!(extra > 30, "inserts happened during paging");
        assert!(
            seen.values().all(|n| *n == 1),
            "{order:?}: a row was returned twice"
        );
        for seq in &before {
            assert_eq!(seen.get(seq), Some(&1), "{order:?}: row {seq} missing");
        }
    }
}

pub fn candle_pagination_is_stable_too(store: &dyn HistoryStore) {
    let min = Interval::M1.micros();
    let c = |i: i64| candle(Interval::M1, i * min, ["1", "2", "1", "2"], "3", 4, true);
    append_candles(store, (0..100).map(|i| c(i * 2)).collect());
    for order in [Order::Asc, Order::Desc] {
        let mut query = candles_query(Interval::M1, 0, 1_000 * min, order, 9);
        let mut starts = Vec::new();
        loop {
            let page = store.candles(&query).unwrap();
            starts.extend(page.rows.iter().map(|c| c.start.0));
            let Some(next) = page.next else { break };
            // A candle appears behind the cursor while paging: never seen, never repeated.
            append_candles(
                store,
                vec![c(next / min + if order == Order::Asc { -1 } else { 1 })],
            );
            query.after = Some(next);
        }
        let unique: BTreeSet<i64> = starts.iter().copied().collect();
        assert_eq!(unique.len(), starts.len(), "{order:?}: duplicates");
        for i in 0..100 {
            assert!(
                unique.contains(&(i * 2 * min)),
                "{order:?}: candle {i} missing"
            );
        }
        let mut sorted = starts.clone();
        sorted.sort_unstable();
        if order == Order::Desc {
            sorted.reverse();
        }
        assert_eq!(starts, sorted);
    }
}

pub fn candles_round_trip_and_merge_repeated_buckets(store: &dyn HistoryStore) {
    let min = Interval::M1.micros();
    append_candles(
        store,
        vec![
            candle(
                Interval::M1,
                0,
                ["10.0", "12.50", "9", "11"],
                "4.000",
                3,
                true,
            ),
            candle(Interval::M1, min, ["11", "11", "11", "11"], "1", 1, false),
            candle(Interval::H1, 0, ["10.0", "12.50", "9", "11"], "5", 4, true),
        ],
    );
    let page = store
        .candles(&candles_query(Interval::M1, 0, 10 * min, Order::Asc, 10))
        .unwrap();
    assert_eq!(page.rows.len(), 2, "other intervals are separate");
    let first = &page.rows[0];
    assert_eq!(
        (
            first.open.to_string(),
            first.high.to_string(),
            first.volume.to_string(),
            first.trades,
            first.complete,
            first.closed
        ),
        ("10.0".into(), "12.50".into(), "4.000".into(), 3, true, true)
    );
    assert!(!page.rows[1].complete);
    // The same bucket again (a restart inside the interval): merged, never complete.
    append_candles(
        store,
        vec![candle(
            Interval::M1,
            0,
            ["11.5", "13", "10", "10.5"],
            "2",
            2,
            false,
        )],
    );
    let merged = &store
        .candles(&candles_query(Interval::M1, 0, min, Order::Asc, 10))
        .unwrap()
        .rows[0];
    assert_eq!(
        (
            merged.open.to_string(),
            merged.high.to_string(),
            merged.low.to_string(),
            merged.close.to_string(),
            merged.volume.to_string(),
            merged.trades,
            merged.complete
        ),
        (
            "10.0".into(),
            "13".into(),
            "9".into(),
            "10.5".into(),
            "6.000".into(),
            5,
            false
        )
    );
}

pub fn retention_deletes_exactly_what_is_older(store: &dyn HistoryStore) {
    let cutoff = 1_000_000;
    for symbol in ["BTC-USDT", "ETH-USDT"] {
        let trades = [cutoff - 2, cutoff - 1, cutoff, cutoff + 1]
            .iter()
            .map(|ts| trade(&ts.to_string(), "1", "1", Side::Buy, *ts))
            .collect();
        append_trades(store, "sim", symbol, trades);
    }
    let min = Interval::M1.micros();
    append_candles(
        store,
        [cutoff - min, cutoff, cutoff + min]
            .iter()
            .flat_map(|t| {
                [Interval::M1, Interval::H1]
                    .map(|i| candle(i, *t, ["1", "1", "1", "1"], "1", 1, true))
            })
            .collect(),
    );
    // At most max_rows per call; fewer than max_rows means done.
    assert_eq!(
        store
            .purge(HistoryKind::Trades, Timestamp(cutoff), 3)
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .purge(HistoryKind::Trades, Timestamp(cutoff), 3)
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .purge(HistoryKind::Trades, Timestamp(cutoff), 3)
            .unwrap(),
        0
    );
    for symbol in ["BTC-USDT", "ETH-USDT"] {
        let left: Vec<i64> = store
            .trades(&trades_query(
                "sim",
                symbol,
                i64::MIN,
                i64::MAX,
                Order::Asc,
                10,
            ))
            .unwrap()
            .rows
            .iter()
            .map(|t| t.ts.0)
            .collect();
        assert_eq!(
            left,
            [cutoff, cutoff + 1],
            "{symbol}: only rows strictly before the cutoff go"
        );
    }
    assert_eq!(
        store
            .purge(HistoryKind::Candles(Interval::M1), Timestamp(cutoff), 100)
            .unwrap(),
        1
    );
    let starts = |i| -> Vec<i64> {
        store
            .candles(&candles_query(i, i64::MIN, i64::MAX, Order::Asc, 10))
            .unwrap()
            .rows
            .iter()
            .map(|c| c.start.0)
            .collect()
    };
    assert_eq!(starts(Interval::M1), [cutoff, cutoff + min]);
    assert_eq!(
        starts(Interval::H1).len(),
        3,
        "other intervals keep their own retention"
    );
}

pub fn unknown_instruments_are_empty_and_instruments_are_listed(store: &dyn HistoryStore) {
    let page = store
        .trades(&trades_query(
            "sim",
            "NOPE-USD",
            0,
            i64::MAX,
            Order::Asc,
            10,
        ))
        .unwrap();
    assert!(page.rows.is_empty() && page.next.is_none());
    assert!(store.instruments().unwrap().is_empty());
    append_trades(
        store,
        "sim",
        "ETH-USDT",
        vec![trade("1", "1", "1", Side::Buy, 1)],
    );
    append_trades(
        store,
        "kraken",
        "BTC-USD",
        vec![trade("1", "1", "1", Side::Buy, 1)],
    );
    append_trades(
        store,
        "sim",
        "BTC-USDT",
        vec![trade("1", "1", "1", Side::Buy, 1)],
    );
    assert_eq!(
        store.instruments().unwrap(),
        [
            (v("kraken"), s("BTC-USD")),
            (v("sim"), s("BTC-USDT")),
            (v("sim"), s("ETH-USDT"))
        ]
    );
}

pub fn counts_match_queries(store: &dyn HistoryStore) {
    append_trades(
        store,
        "sim",
        "BTC-USDT",
        (0..50)
            .map(|i| trade("x", "1", "1", Side::Buy, i))
            .collect(),
    );
    let count = |from, to| {
        store
            .count(
                HistoryKind::Trades,
                &v("sim"),
                &s("BTC-USDT"),
                Timestamp(from),
                Timestamp(to),
            )
            .unwrap()
    };
    assert_eq!((count(0, 50), count(10, 20), count(60, 70)), (50, 10, 0));
    let none = store
        .count(
            HistoryKind::Trades,
            &v("sim"),
            &s("NOPE-USD"),
            Timestamp(0),
            Timestamp(50),
        )
        .unwrap();
    assert_eq!(none, 0);
    append_candles(
        store,
        vec![candle(Interval::M5, 0, ["1", "1", "1", "1"], "1", 1, true)],
    );
    let candles = store
        .count(
            HistoryKind::Candles(Interval::M5),
            &v("sim"),
            &s("BTC-USDT"),
            Timestamp(0),
            Timestamp(1),
        )
        .unwrap();
    assert_eq!(candles, 1);
}

pub fn the_same_rows_written_twice_are_stored_once(store: &dyn HistoryStore) {
    let min = Interval::M1.micros();
    let batch = HistoryBatch {
        records: vec![
            Record::Trades {
                venue: v("sim"),
                symbol: s("BTC-USDT"),
                trades: vec![
                    trade("1", "100.50", "0.10", Side::Buy, 1_000),
                    trade("2", "100.25", "0.20", Side::Sell, 1_000),
                    trade("3", "100.00", "0.30", Side::Buy, 2_000),
                ],
            },
            Record::Candle {
                venue: v("sim"),
                symbol: s("BTC-USDT"),
                candle: Box::new(candle(
                    Interval::M1,
                    0,
                    ["100.50", "100.50", "100.00", "100.00"],
                    "0.60",
                    3,
                    true,
                )),
            },
        ],
    };
    assert_eq!(store.append(&batch).unwrap(), 4);
    // A second ingest node, or a restart that re-received the same frames.
    assert_eq!(store.append(&batch).unwrap(), 0, "nothing new is counted");
    let all = |symbol: &str| {
        all_trades(
            store,
            trades_query("sim", symbol, i64::MIN, i64::MAX, Order::Asc, 2),
        )
    };
    let first = all("BTC-USDT");
    assert_eq!(
        first.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    // Overlapping batches and a duplicate inside one batch: only the new trade is stored.
    let overlap = vec![
        trade("3", "100.00", "0.30", Side::Buy, 2_000),
        trade("4", "99.75", "1", Side::Sell, 3_000),
        trade("4", "99.75", "1", Side::Sell, 3_000),
    ];
    let written = store
        .append(&HistoryBatch {
            records: vec![Record::Trades {
                venue: v("sim"),
                symbol: s("BTC-USDT"),
                trades: overlap,
            }],
        })
        .unwrap();
    assert_eq!(written, 1);
    let after = all("BTC-USDT");
    assert_eq!(after.len(), 4);
    assert_eq!(&after[..3], &first[..], "stored rows keep their seq");
    // The id alone is not the key: a venue (or the simulator after a restart) may reuse an id
    // at another time, which is another trade.
    append_trades(
        store,
        "sim",
        "BTC-USDT",
        vec![trade("1", "101", "1", Side::Buy, 9_000)],
    );
    assert_eq!(all("BTC-USDT").len(), 5);
    // The same trade on another instrument is another trade.
    append_trades(
        store,
        "sim",
        "ETH-USDT",
        vec![trade("1", "100.50", "0.10", Side::Buy, 1_000)],
    );
    assert_eq!(all("ETH-USDT").len(), 1);
    let candles = store
        .candles(&candles_query(Interval::M1, 0, min, Order::Asc, 10))
        .unwrap()
        .rows;
    assert_eq!(candles.len(), 1);
    let c = &candles[0];
    assert_eq!(
        (
            c.open.to_string(),
            c.high.to_string(),
            c.low.to_string(),
            c.close.to_string(),
            c.volume.to_string(),
            c.trades,
            c.complete
        ),
        (
            "100.50".into(),
            "100.50".into(),
            "100.00".into(),
            "100.00".into(),
            "0.60".into(),
            3,
            true
        ),
        "an identical candle written twice is not merged with itself"
    );
    assert_eq!(
        store
            .count(
                HistoryKind::Trades,
                &v("sim"),
                &s("BTC-USDT"),
                Timestamp(i64::MIN),
                Timestamp(i64::MAX)
            )
            .unwrap(),
        5
    );
}

fn perp_query(symbol: &str, from: i64, to: i64, order: Order, limit: usize) -> PerpQuery {
    PerpQuery {
        venue: v("bybit"),
        symbol: s(symbol),
        from: Timestamp(from),
        to: Timestamp(to),
        order,
        after: None,
        limit,
    }
}

fn funding(rate: &str, predicted: Option<&str>, next: Option<i64>, ts: i64) -> model::Funding {
    model::Funding {
        rate: d(rate),
        predicted_rate: predicted.map(d),
        next_funding_ts: next.map(Timestamp),
        ts: Timestamp(ts),
    }
}

fn oi(size: &str, value: Option<&str>, ts: i64) -> model::OpenInterest {
    model::OpenInterest {
        oi: d(size),
        oi_value: value.map(d),
        ts: Timestamp(ts),
    }
}

/// Funding and open interest: exact round trip (scale and absent figures kept), half-open
/// ranges in both orders, pages that meet exactly, a row written twice stored once, the two
/// kinds apart, counts, and retention by `ts`.
pub fn perp_figures_round_trip_page_dedupe_and_purge(store: &dyn HistoryStore) {
    let (venue, sym) = (v("bybit"), s("BTC-USDT-PERP"));
    let fundings: Vec<model::Funding> = (0..10)
        .map(|i| {
            let predicted = (i % 2 == 0).then_some("0.00012000");
            let next = (i % 3 != 0).then_some(28_800_000_000 + i);
            funding(
                &format!("0.000{}0000", i + 1),
                predicted,
                next,
                1_000 + i * 100,
            )
        })
        .collect();
    let ois: Vec<model::OpenInterest> = (0..10)
        .map(|i| {
            oi(
                &format!("{}.500", 100 + i),
                (i % 2 == 1).then_some("65000.10"),
                1_000 + i * 100,
            )
        })
        .collect();
    let mut records: Vec<Record> = fundings
        .iter()
        .map(|f| Record::Funding {
            venue: venue.clone(),
            symbol: sym.clone(),
            funding: f.clone(),
        })
        .collect();
    records.extend(ois.iter().map(|o| Record::OpenInterest {
        venue: venue.clone(),
        symbol: sym.clone(),
        oi: o.clone(),
    }));
    let batch = HistoryBatch { records };
    assert_eq!(store.append(&batch).unwrap(), 20, "every row is new");
    assert_eq!(
        store.append(&batch).unwrap(),
        0,
        "the same rows again store nothing"
    );

    let all = store
        .funding(&perp_query("BTC-USDT-PERP", 0, i64::MAX, Order::Asc, 100))
        .unwrap();
    assert_eq!(
        all.rows, fundings,
        "funding round-trips exactly, in ts order"
    );
    assert_eq!(all.next, None);
    assert_eq!(
        all.rows[0].rate.to_string(),
        "0.00010000",
        "the scale is kept"
    );
    let all_oi = store
        .open_interest(&perp_query("BTC-USDT-PERP", 0, i64::MAX, Order::Asc, 100))
        .unwrap();
    assert_eq!(
        all_oi.rows, ois,
        "open interest round-trips exactly, apart from funding"
    );

    // [1200, 1500): rows at 1200, 1300, 1400.
    let range = store
        .funding(&perp_query("BTC-USDT-PERP", 1_200, 1_500, Order::Desc, 100))
        .unwrap();
    let ts: Vec<i64> = range.rows.iter().map(|f| f.ts.0).collect();
    assert_eq!(ts, vec![1_400, 1_300, 1_200], "half-open, descending");

    for order in [Order::Asc, Order::Desc] {
        let mut q = perp_query("BTC-USDT-PERP", 0, i64::MAX, order, 3);
        let mut seen = Vec::new();
        loop {
            let page = store.open_interest(&q).unwrap();
            assert!(page.rows.len() <= 3);
            seen.extend(page.rows.iter().map(|o| o.ts.0));
            match page.next {
                Some(after) => q.after = Some(after),
                None => break,
            }
        }
        let mut expected: Vec<i64> = ois.iter().map(|o| o.ts.0).collect();
        if order == Order::Desc {
            expected.reverse();
        }
        assert_eq!(seen, expected, "pages meet exactly ({order:?})");
    }

    let count = |kind| {
        store
            .count(kind, &venue, &sym, Timestamp(0), Timestamp(i64::MAX))
            .unwrap()
    };
    assert_eq!(count(HistoryKind::Funding), 10);
    assert_eq!(count(HistoryKind::OpenInterest), 10);
    assert_eq!(count(HistoryKind::Trades), 0);
    assert!(
        store
            .instruments()
            .unwrap()
            .contains(&(venue.clone(), sym.clone()))
    );

    // Retention: funding before 1500 goes (5 rows), open interest stays.
    let mut purged = 0;
    loop {
        let n = store
            .purge(HistoryKind::Funding, Timestamp(1_500), 2)
            .unwrap();
        purged += n;
        if n < 2 {
            break;
        }
    }
    assert_eq!(purged, 5);
    assert_eq!(count(HistoryKind::Funding), 5);
    assert_eq!(count(HistoryKind::OpenInterest), 10);
    let left = store
        .funding(&perp_query("BTC-USDT-PERP", 0, i64::MAX, Order::Asc, 100))
        .unwrap();
    assert_eq!(left.rows, fundings[5..].to_vec());
    let unknown = store
        .funding(&perp_query("ETH-USDT-PERP", 0, i64::MAX, Order::Asc, 100))
        .unwrap();
    assert!(unknown.rows.is_empty() && unknown.next.is_none());
}

/// Liquidations: exact round trip, arrival order among equal timestamps, keyset pages in both
/// orders, the same liquidation written twice stored once, counts and retention.
pub fn liquidations_round_trip_page_dedupe_and_purge(store: &dyn HistoryStore) {
    let (venue, sym) = (v("bybit"), s("BTC-USDT-PERP"));
    let liquidation = |side, price: &str, size: &str, ts| model::Liquidation {
        side,
        price: d(price),
        size: d(size),
        ts: Timestamp(ts),
    };
    // Two at ts 2000 that differ only in size: both are kept, in arrival order.
    let all: Vec<model::Liquidation> = vec![
        liquidation(Side::Sell, "65000.10", "0.010", 1_000),
        liquidation(Side::Buy, "65001.00", "0.500", 2_000),
        liquidation(Side::Buy, "65001.00", "0.250", 2_000),
        liquidation(Side::Sell, "64990.5", "1.2", 3_000),
        liquidation(Side::Sell, "64980", "3", 4_000),
    ];
    let record = |rows: &[model::Liquidation]| Record::Liquidations {
        venue: venue.clone(),
        symbol: sym.clone(),
        liquidations: rows.to_vec(),
    };
    let batch = HistoryBatch {
        records: vec![record(&all[..3]), record(&all[3..])],
    };
    assert_eq!(store.append(&batch).unwrap(), 5);
    assert_eq!(
        store
            .append(&HistoryBatch {
                records: vec![record(&all[1..2])]
            })
            .unwrap(),
        0,
        "a liquidation already stored (the standby's copy) stores nothing"
    );
    let query = |order, limit| TradeQuery {
        venue: venue.clone(),
        symbol: sym.clone(),
        from: Timestamp(0),
        to: Timestamp(i64::MAX),
        order,
        after: None,
        limit,
    };
    let page = store.liquidations(&query(Order::Asc, 100)).unwrap();
    let got: Vec<model::Liquidation> = page.rows.iter().map(|l| l.liquidation.clone()).collect();
    assert_eq!(got, all, "exact, in (ts, arrival) order");
    assert_eq!(got[0].size.to_string(), "0.010", "the scale is kept");
    for order in [Order::Asc, Order::Desc] {
        let mut q = query(order, 2);
        let mut seen = Vec::new();
        loop {
            let page = store.liquidations(&q).unwrap();
            seen.extend(page.rows.iter().map(|l| l.liquidation.clone()));
            match page.next {
                Some(key) => q.after = Some(key),
                None => break,
            }
        }
        let mut expected = all.clone();
        if order == Order::Desc {
            expected.reverse();
        }
        assert_eq!(seen, expected, "pages of 2 meet exactly ({order:?})");
    }
    let count = || {
        store
            .count(
                HistoryKind::Liquidations,
                &venue,
                &sym,
                Timestamp(0),
                Timestamp(i64::MAX),
            )
            .unwrap()
    };
    assert_eq!(count(), 5);
    assert_eq!(
        store
            .purge(HistoryKind::Liquidations, Timestamp(3_000), 10)
            .unwrap(),
        3
    );
    assert_eq!(count(), 2);
    assert_eq!(
        store
            .count(
                HistoryKind::Trades,
                &venue,
                &sym,
                Timestamp(0),
                Timestamp(i64::MAX)
            )
            .unwrap(),
        0
    );
}
