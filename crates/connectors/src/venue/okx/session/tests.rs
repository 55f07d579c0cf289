//! The session's unit tests: sequence chains, contract sizes, the perpetual channels.

use super::*;
use crate::settings::VenueSpec;

/// A spot pair and a swap of `ctVal` 0.01 (from the config).
fn session() -> OkxSession {
    session_with(Some("0.01"))
}

fn session_with(contract_size: Option<&str>) -> OkxSession {
    let mut spec = VenueSpec::new(vec![
        Symbol::new("BTC-USDT").unwrap(),
        Symbol::new("BTC-USDT-PERP").unwrap(),
    ]);
    if let Some(size) = contract_size {
        spec.feed.instruments.insert(
            "BTC-USDT-PERP".into(),
            crate::settings::InstrumentOverride {
                tick_size: model::Decimal::ONE,
                lot_size: model::Decimal::ONE,
                contract_size: Some(model::parse_decimal(size).unwrap()),
            },
        );
    }
    let protocol = OkxProtocol::new(spec).unwrap();
    OkxSession::new(&protocol, &protocol.spec().symbols.clone())
}

fn level(p: &str, s: &str) -> model::Level {
    model::Level::new(
        model::parse_decimal(p).unwrap(),
        model::parse_decimal(s).unwrap(),
    )
}

/// `(price, size)` pairs of one side, as OKX's strings.
type Pairs<'a> = &'a [(&'a str, &'a str)];

/// A swap `books` message with OKX's checksum over its contract sizes (`+ skew`).
fn swap_book(
    action: &str,
    prev: i64,
    seq: i64,
    bids: &[(&str, &str)],
    asks: &[(&str, &str)],
    truth: (Pairs, Pairs),
    skew: i64,
) -> String {
    let side = |l: &[(&str, &str)]| -> Vec<serde_json::Value> {
        l.iter()
            .map(|(p, s)| serde_json::json!([p, s, "0", "1"]))
            .collect()
    };
    let tb: Vec<model::Level> = truth.0.iter().map(|(p, s)| level(p, s)).collect();
    let ta: Vec<model::Level> = truth.1.iter().map(|(p, s)| level(p, s)).collect();
    let checksum = i64::from(book::checksum::okx_checksum(&tb, &ta) as i32) + skew;
    serde_json::json!({"arg": {"channel": "books", "instId": "BTC-USDT-SWAP"}, "action": action, "data": [{"asks": side(asks), "bids": side(bids), "ts": "1597026383085", "checksum": checksum, "prevSeqId": prev, "seqId": seq}]}).to_string()
}

fn sizes(levels: &[model::Level]) -> Vec<String> {
    levels.iter().map(|l| l.size.to_string()).collect()
}

/// Swap sizes leave in base units (`contracts × ctVal`, exact); OKX's checksum is
/// verified on the contract book first, and a mismatch is reported as one.
#[test]
fn swap_sizes_are_converted_after_the_checksum_is_verified() {
    let mut s = session();
    let bids = [("100.5", "415"), ("100.4", "7")];
    let asks = [("100.6", "3")];
    let io = feed(
        &mut s,
        &swap_book("snapshot", -1, 10, &bids, &asks, (&bids, &asks), 0),
    );
    let [FeedEvent::BookSnapshot { symbol, snapshot }] = io.events.as_slice() else {
        panic!("{:?}", io.events)
    };
    assert_eq!(symbol.as_str(), "BTC-USDT-PERP");
    assert_eq!(
        (sizes(&snapshot.bids), sizes(&snapshot.asks)),
        (vec!["4.15".into(), "0.07".into()], vec!["0.03".into()])
    );
    assert_eq!(snapshot.checksum, None, "verified here, in contracts");
    let truth_bids = [("100.5", "415"), ("100.4", "7"), ("100.3", "12")];
    let io = feed(
        &mut s,
        &swap_book(
            "update",
            10,
            11,
            &[("100.3", "12")],
            &[],
            (&truth_bids, &asks),
            0,
        ),
    );
    let [FeedEvent::BookDelta { delta, .. }] = io.events.as_slice() else {
        panic!("{:?}", io.events)
    };
    assert_eq!(sizes(&delta.bids), ["0.12"]);
    assert_eq!(delta.checksum, None);
    let io = feed(
        &mut s,
        &swap_book("update", 11, 12, &[("100.3", "0")], &[], (&bids, &asks), 1),
    );
    assert_eq!(kinds(&io), ["checksum_mismatch"]);
    assert_eq!(io.checksum_failures, 1);
    assert!(
        io.send
            .iter()
            .any(|f| f.contains("unsubscribe") && f.contains("BTC-USDT-SWAP"))
    );
    // The fresh snapshot resets the contract book too.
    let io = feed(
        &mut s,
        &swap_book("snapshot", -1, 20, &bids, &asks, (&bids, &asks), 0),
    );
    assert_eq!(kinds(&io), ["snapshot"]);
    // Trades: `sz` is contracts too.
    let trade = include_str!("../../../../test_data/okx/ws_trades_update.json")
        .replace("BTC-USDT", "BTC-USDT-SWAP");
    let io = feed(&mut s, &trade);
    let [FeedEvent::Trade { trade, .. }] = io.events.as_slice() else {
        panic!("{:?}", io.events)
    };
    assert_eq!(trade.size.to_string(), "0.0012060306");
    // Spot sizes pass through untouched, scale kept.
    let io = feed(&mut s, &book("BTC-USDT", "snapshot", -1, 10, "100"));
    let [FeedEvent::BookSnapshot { snapshot, .. }] = io.events.as_slice() else {
        panic!()
    };
    assert_eq!(snapshot.bids[0].size.to_string(), "1");
}

/// Without `ctVal` (metadata unreachable, nothing configured) a swap's sizes cannot be
/// converted: its books and trades are not subscribed, and the status says why.
#[test]
fn a_swap_of_unknown_contract_size_serves_no_sizes_and_says_why() {
    let mut s = session_with(None);
    let mut io = Io::new(Timestamp(0));
    s.open(&mut io);
    let frames = io.send.join(" ");
    assert!(
        frames.contains(r#"{"channel":"books","instId":"BTC-USDT"}"#),
        "{frames}"
    );
    assert!(
        !frames.contains(r#"{"channel":"books","instId":"BTC-USDT-SWAP"}"#),
        "{frames}"
    );
    assert!(
        !frames.contains(r#"{"channel":"trades","instId":"BTC-USDT-SWAP"}"#),
        "{frames}"
    );
    assert!(
        frames.contains(r#"{"channel":"tickers","instId":"BTC-USDT-SWAP"}"#),
        "{frames}"
    );
    let note = s.sync_note().unwrap();
    assert!(
        note.contains("BTC-USDT-PERP") && note.contains("contract_size"),
        "{note}"
    );
    let perp = Symbol::new("BTC-USDT-PERP").unwrap();
    let mut io = Io::new(Timestamp(0));
    s.resubscribe(&perp, &mut io);
    assert!(io.send.is_empty(), "nothing to resubscribe");
    assert!(session().sync_note().is_none());
}

fn book(inst: &str, action: &str, prev: i64, seq: i64, bid: &str) -> String {
    format!(
        r#"{{"arg":{{"channel":"books","instId":"{inst}"}},"action":"{action}","data":[{{"asks":[["101","1","0","1"]],"bids":[["{bid}","1","0","1"]],"ts":"1597026383085","checksum":0,"prevSeqId":{prev},"seqId":{seq}}}]}}"#
    )
}

fn feed(s: &mut OkxSession, text: &str) -> Io {
    let mut io = Io::new(Timestamp(1_000_000));
    s.on_text(text, &mut io);
    io
}

fn kinds(io: &Io) -> Vec<&'static str> {
    io.events
        .iter()
        .map(|e| match e {
            FeedEvent::BookSnapshot { .. } => "snapshot",
            FeedEvent::BookDelta { .. } => "delta",
            FeedEvent::Invalid { cause, .. } => cause.as_str(),
            _ => "other",
        })
        .collect()
}

/// One line per case: the chain rule on `prevSeqId`/`seqId`, after a snapshot at 10.
#[test]
fn updates_chain_on_prev_seq_id() {
    let cases: &[(&str, i64, i64, &[&str], bool)] = &[
        ("next in chain", 10, 15, &["delta"], false),
        ("sequence reset, still chained", 10, 3, &["delta"], false),
        ("the same message again", 5, 10, &[], false),
        ("gap", 12, 20, &["gap"], true),
        ("late message", 4, 8, &["gap"], true),
    ];
    for (name, prev, seq, expected, resubscribed) in cases {
        let mut s = session();
        feed(&mut s, &book("BTC-USDT", "snapshot", -1, 10, "100"));
        let io = feed(&mut s, &book("BTC-USDT", "update", *prev, *seq, "99"));
        assert_eq!(kinds(&io), *expected, "{name}");
        assert_eq!(
            io.send.iter().any(|f| f.contains("unsubscribe")),
            *resubscribed,
            "{name}"
        );
        assert_eq!(io.gaps, u64::from(*resubscribed), "{name}");
    }
}

#[test]
fn a_snapshot_mid_stream_resets_and_updates_before_it_are_dropped() {
    let mut s = session();
    assert!(kinds(&feed(&mut s, &book("BTC-USDT", "update", 1, 2, "99"))).is_empty());
    assert_eq!(s.syncing(), 2);
    assert_eq!(
        kinds(&feed(&mut s, &book("BTC-USDT", "snapshot", -1, 10, "100"))),
        ["snapshot"]
    );
    assert_eq!(
        kinds(&feed(&mut s, &book("BTC-USDT", "snapshot", -1, 50, "100"))),
        ["snapshot"]
    );
    let io = feed(&mut s, &book("BTC-USDT", "update", 50, 51, "98"));
    let FeedEvent::BookDelta { delta, .. } = &io.events[0] else {
        panic!()
    };
    assert_eq!(
        (delta.first_seq, delta.last_seq),
        (3, 3),
        "gap-free synthetic sequence"
    );
    assert_eq!(s.syncing(), 1, "the swap is still waiting");
    let io = feed(&mut s, &book("BTC-USDT-SWAP", "snapshot", -1, 7, "100"));
    let FeedEvent::BookSnapshot { symbol, .. } = &io.events[0] else {
        panic!()
    };
    assert_eq!(symbol.as_str(), "BTC-USDT-PERP");
    assert_eq!(s.syncing(), 0);
}

#[test]
fn acks_errors_notices_pings_and_unsubscribed_pushes() {
    let mut s = session();
    let mut io = Io::new(Timestamp(0));
    s.open(&mut io);
    assert_eq!(io.send.len(), 1);
    assert!(io.send[0].contains(r#"{"channel":"books","instId":"BTC-USDT-SWAP"}"#));
    let mut io = Io::new(Timestamp(0));
    s.on_tick(Timestamp(3 * Timestamp::MICROS_PER_SECOND), &mut io);
    assert!(io.reconnect.is_none() && io.send.is_empty());
    s.on_tick(Timestamp(11 * Timestamp::MICROS_PER_SECOND), &mut io);
    assert!(io.reconnect.unwrap().contains("no acknowledgement"));
    for (channel, inst) in [
        ("books", "BTC-USDT"),
        ("trades", "BTC-USDT"),
        ("tickers", "BTC-USDT"),
        ("books", "BTC-USDT-SWAP"),
        ("trades", "BTC-USDT-SWAP"),
        ("tickers", "BTC-USDT-SWAP"),
        ("funding-rate", "BTC-USDT-SWAP"),
        ("mark-price", "BTC-USDT-SWAP"),
        ("index-tickers", "BTC-USDT"),
    ] {
        feed(
            &mut s,
            &format!(
                r#"{{"event":"subscribe","arg":{{"channel":"{channel}","instId":"{inst}"}},"connId":"a4d3ae55"}}"#
            ),
        );
    }
    let mut io = Io::new(Timestamp(0));
    s.on_tick(Timestamp(12 * Timestamp::MICROS_PER_SECOND), &mut io);
    let overdue = io.reconnect.unwrap_or_default();
    assert_eq!(
        overdue,
        "no acknowledgement for subscribe liquidation-orders SWAP"
    );
    feed(
        &mut s,
        r#"{"event":"subscribe","arg":{"channel":"open-interest","instId":"BTC-USDT-SWAP"},"connId":"a4d3ae55"}"#,
    );
    feed(
        &mut s,
        include_str!("../../../../test_data/okx/ws_liquidation_orders_ack.json"),
    );
    let mut io = Io::new(Timestamp(0));
    s.on_tick(Timestamp(12 * Timestamp::MICROS_PER_SECOND), &mut io);
    assert!(io.reconnect.is_none(), "every argument acknowledged");
    // Idle for `ping_after` (15 s): one text ping; the pong resets the timer.
    let mut io = Io::new(Timestamp(0));
    s.on_tick(
        Timestamp(16 * Timestamp::MICROS_PER_SECOND + 1_000_000),
        &mut io,
    );
    s.on_tick(
        Timestamp(17 * Timestamp::MICROS_PER_SECOND + 1_000_000),
        &mut io,
    );
    assert_eq!(io.send, ["ping"]);
    assert!(kinds(&feed(&mut s, "pong")).is_empty());
    let io = feed(
        &mut s,
        include_str!("../../../../test_data/okx/ws_subscribe_error.json"),
    );
    assert_eq!(kinds(&io), ["invalid_message"]);
    assert!(io.reconnect.unwrap().contains("60012"));
    let io = feed(
        &mut s,
        include_str!("../../../../test_data/okx/ws_notice_event.json"),
    );
    assert!(io.reconnect.unwrap().contains("service upgrade"));
    let io = feed(&mut s, &book("ETH-USDT", "snapshot", -1, 1, "100"));
    assert!(
        io.events.is_empty() && io.ignored == 1,
        "not subscribed: ignored"
    );
    let io = feed(
        &mut s,
        r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"bids":[["1x","1","0","1"]],"ts":"1","prevSeqId":1,"seqId":2}]}"#,
    );
    assert_eq!(kinds(&io), ["invalid_message"]);
    let io = feed(&mut s, "{oops");
    assert_eq!(kinds(&io), ["invalid_message"]);
}

#[test]
fn tickers_become_venue_tickers_and_bad_ones_are_counted_not_fatal() {
    let mut s = session();
    let text = include_str!("../../../../test_data/okx/ws_tickers_swap_update.json");
    let io = feed(&mut s, text);
    let [FeedEvent::Ticker { symbol, ticker }] = io.events.as_slice() else {
        panic!("{:?}", io.events)
    };
    assert_eq!(symbol.as_str(), "BTC-USDT-PERP");
    assert_eq!(ticker.recv_ts, Timestamp(1_000_000));
    let io = feed(
        &mut s,
        &text.replace("\"103700\",\"lastSz\"", "\"x\",\"lastSz\""),
    );
    assert_eq!(kinds(&io), ["invalid_message"]);
    let FeedEvent::Invalid { symbol, .. } = &io.events[0] else {
        panic!()
    };
    assert!(symbol.is_none(), "a bad ticker never rebuilds a book");
    assert!(io.send.is_empty() && io.reconnect.is_none());
}

fn perp_events(io: &Io) -> Vec<String> {
    io.events
        .iter()
        .map(|e| match e {
            FeedEvent::Funding {
                symbol, funding, ..
            } => format!(
                "funding {symbol} {} {:?} {:?}",
                funding.rate,
                funding.predicted_rate.map(|r| r.to_string()),
                funding.next_funding_ts.map(Timestamp::as_micros)
            ),
            FeedEvent::Mark { symbol, mark, .. } => format!(
                "mark {symbol} {:?} {:?}",
                mark.mark.map(|m| m.to_string()),
                mark.index.map(|m| m.to_string())
            ),
            FeedEvent::OpenInterest { symbol, oi, .. } => format!(
                "oi {symbol} {} {:?}",
                oi.oi,
                oi.oi_value.map(|v| v.to_string())
            ),
            FeedEvent::Liquidation {
                symbol,
                liquidation: l,
                ..
            } => format!("liquidation {symbol} {:?} {} {}", l.side, l.price, l.size),
            FeedEvent::Invalid { symbol, cause, .. } => {
                format!("{} {symbol:?}", cause.as_str())
            }
            other => format!("{other:?}"),
        })
        .collect()
}

const FUNDING: &str = include_str!("../../../../test_data/okx/ws_funding_rate_update.json");
const MARK: &str = include_str!("../../../../test_data/okx/ws_mark_price_update.json");
const INDEX: &str = include_str!("../../../../test_data/okx/ws_index_tickers_update.json");
const OI: &str = include_str!("../../../../test_data/okx/ws_open_interest_update.json");
const LIQUIDATIONS: &str =
    include_str!("../../../../test_data/okx/ws_liquidation_orders_update.json");

/// The documented pushes, for this session's swap (`BTC-USDT-SWAP`, `ctVal` 0.01).
fn own(text: &str) -> String {
    text.replace("BTC-USD-SWAP", "BTC-USDT-SWAP")
        .replace("LTC-USD-SWAP", "BTC-USDT-SWAP")
        .replace("IOST-USDT", "BTC-USDT")
        .replace(r#""instId":"BTC-USDT"}"#, r#""instId":"BTC-USDT-SWAP"}"#)
        .replace(
            r#""instType":"MARGIN","instId":"BTC-USDT""#,
            r#""instType":"SWAP","instId":"BTC-USDT-SWAP""#,
        )
}

/// Funding, mark + index (merged into one `mark:`), open interest in the base currency and
/// liquidations in base units reach the swap; the spot pair of the same name gets none.
#[test]
fn perpetual_channels_reach_the_swap_in_base_units() {
    let mut s = session();
    let mut io = Io::new(Timestamp(0));
    s.open(&mut io);
    let frames = io.send.join(" ");
    for arg in [
        r#"{"channel":"funding-rate","instId":"BTC-USDT-SWAP"}"#,
        r#"{"channel":"mark-price","instId":"BTC-USDT-SWAP"}"#,
        r#"{"channel":"index-tickers","instId":"BTC-USDT"}"#,
        r#"{"channel":"open-interest","instId":"BTC-USDT-SWAP"}"#,
        r#"{"channel":"liquidation-orders","instType":"SWAP"}"#,
    ] {
        assert_eq!(frames.matches(arg).count(), 1, "{arg}: {frames}");
    }
    assert!(!frames.contains(r#"{"channel":"funding-rate","instId":"BTC-USDT"}"#));
    let cases: &[(&str, String, &[&str])] = &[
        (
            "funding",
            own(FUNDING),
            &["funding BTC-USDT-PERP 0.0001875391284828 None Some(1700726400000000)"],
        ),
        (
            "predicted rate",
            own(FUNDING).replace(r#""nextFundingRate":"""#, r#""nextFundingRate":"0.0002""#),
            &["funding BTC-USDT-PERP 0.0001875391284828 Some(\"0.0002\") Some(1700726400000000)"],
        ),
        (
            "mark, no index yet",
            own(MARK),
            &["mark BTC-USDT-PERP Some(\"42310.6\") None"],
        ),
        (
            "index, merged with the mark",
            INDEX.to_string(),
            &["mark BTC-USDT-PERP Some(\"42310.6\") Some(\"0.1\")"],
        ),
        (
            "oi from oiCcy, no USD value on a USDT swap",
            own(OI),
            &["oi BTC-USDT-PERP 555.55 None"],
        ),
        (
            "oi from contracts × ctVal",
            own(OI).replace(r#""oiCcy":"555.55""#, r#""oiCcy":"""#),
            &["oi BTC-USDT-PERP 50 None"],
        ),
        (
            "liquidation, 13 contracts of 0.01",
            own(LIQUIDATIONS),
            &["liquidation BTC-USDT-PERP Buy 0.007831 0.13"],
        ),
        ("another swap's liquidation", LIQUIDATIONS.to_string(), &[]),
    ];
    for (name, text, expected) in cases {
        let io = feed(&mut s, text);
        assert_eq!(perp_events(&io), *expected, "{name}");
        assert!(io.send.is_empty(), "{name}: nothing rebuilt");
    }
    // An index for a name no swap here follows is ignored.
    let io = feed(&mut s, &INDEX.replace("BTC-USDT", "ETH-USDT"));
    assert!(io.events.is_empty() && io.ignored == 1);
}

/// One line per bad field: counted as invalid without a symbol (no book is rebuilt), and
/// nothing of it applied (the merged mark keeps its last good figures).
#[test]
fn bad_perpetual_pushes_are_counted_and_change_nothing() {
    let mut s = session();
    feed(&mut s, &own(MARK));
    feed(&mut s, INDEX);
    let cases: &[(&str, String)] = &[
        (
            "funding rate",
            own(FUNDING).replace("\"0.0001875391284828\"", "\"x\""),
        ),
        (
            "funding time",
            own(FUNDING).replace("\"1700726400000\"", "\"later\""),
        ),
        ("mark price", own(MARK).replace("\"42310.6\"", "\"-1\"")),
        (
            "index price",
            INDEX.replace("\"idxPx\":\"0.1\"", "\"idxPx\":\"0x1\""),
        ),
        ("open interest", own(OI).replace("\"555.55\"", "\"-2\"")),
        (
            "liquidation side",
            own(LIQUIDATIONS).replace("\"buy\"", "\"up\""),
        ),
        (
            "liquidation size",
            own(LIQUIDATIONS).replace("\"13\"", "\"1.3.0\""),
        ),
        (
            "another instrument's funding",
            FUNDING
                .replace(
                    "\"instId\":\"BTC-USD-SWAP\",\"instType\"",
                    "\"instId\":\"ETH-USDT-SWAP\",\"instType\"",
                )
                .replace(
                    "{\"channel\":\"funding-rate\",\"instId\":\"BTC-USD-SWAP\"}",
                    "{\"channel\":\"funding-rate\",\"instId\":\"BTC-USDT-SWAP\"}",
                ),
        ),
    ];
    for (name, text) in cases {
        let io = feed(&mut s, text);
        assert_eq!(perp_events(&io), ["invalid_message None"], "{name}");
        assert!(io.send.is_empty() && io.reconnect.is_none(), "{name}");
    }
    let io = feed(&mut s, INDEX);
    assert_eq!(
        perp_events(&io),
        ["mark BTC-USDT-PERP Some(\"42310.6\") Some(\"0.1\")"],
        "the bad pushes left the merged mark as it was"
    );
}

/// A swap of unknown contract size keeps funding, mark and open interest (from `oiCcy`)
/// but publishes no liquidation, and its `oi` in contracts cannot be converted.
#[test]
fn a_swap_of_unknown_contract_size_keeps_the_figures_without_sizes() {
    let mut s = session_with(None);
    let mut io = Io::new(Timestamp(0));
    s.open(&mut io);
    let frames = io.send.join(" ");
    assert!(frames.contains(r#"{"channel":"funding-rate","instId":"BTC-USDT-SWAP"}"#));
    assert!(!frames.contains("liquidation-orders"), "{frames}");
    assert_eq!(
        perp_events(&feed(&mut s, &own(OI))),
        ["oi BTC-USDT-PERP 555.55 None"]
    );
    let io = feed(
        &mut s,
        &own(OI).replace(r#""oiCcy":"555.55""#, r#""oiCcy":"""#),
    );
    assert_eq!(perp_events(&io), ["invalid_message None"]);
    let io = feed(&mut s, &own(LIQUIDATIONS));
    assert!(io.events.is_empty() && io.ignored == 1);
}

#[test]
fn trades_are_deduplicated_by_id() {
    let mut s = session();
    let text = include_str!("../../../../test_data/okx/ws_trades_update.json");
    assert_eq!(feed(&mut s, text).events.len(), 1);
    assert!(feed(&mut s, text).events.is_empty(), "duplicate dropped");
}
