//! Record → replay round trip: a capture of a live session replays to the same events.

use crate::support::*;
use book::ChecksumAlgo;
use connectors::FeedEvent;
use connectors::conn::WsConnector;
use connectors::conn::record::{
    CaptureFormat, CaptureSource, CaptureWriter, Recorder, framed, read_capture,
};
use connectors::mock::binance::MockBinance;
use connectors::mock::kraken::MockKraken;
use connectors::settings::VenueSpec;
use connectors::venue::{self, replay};
use std::time::Duration;

fn without_status(events: impl IntoIterator<Item = FeedEvent>) -> Vec<FeedEvent> {
    events
        .into_iter()
        .filter(|e| !matches!(e, FeedEvent::Status { .. }))
        .collect()
}

#[tokio::test]
async fn a_recorded_session_replays_to_the_same_events_every_time() {
    let binance = MockBinance::start(&["BTC-USDT", "ETH-USDT"]).await.unwrap();
    let kraken = MockKraken::start(&["BTC-USD"], 10).await.unwrap();
    let path = std::env::temp_dir().join(format!("tickgate-capture-{}.tgcap", std::process::id()));
    let (recorder, handle) = Recorder::create(&path).unwrap();
    let spec = |symbols: &[&str], ws: String, rest: String| VenueSpec {
        symbols: symbols.iter().map(|s| sym(s)).collect(),
        ws_url: Some(ws),
        rest_url: Some(rest),
        feed: fast_feed(),
    };
    let b = WsConnector::new(
        venue::protocol(
            "binance",
            spec(
                &["BTC-USDT", "ETH-USDT"],
                binance.ws_url(),
                binance.rest_url(),
            ),
        )
        .unwrap(),
    )
    .with_recorder(recorder.clone());
    let k = WsConnector::new(
        venue::protocol(
            "kraken",
            spec(&["BTC-USD"], kraken.ws_url(), kraken.rest_url()),
        )
        .unwrap(),
    )
    .with_recorder(recorder.clone());
    drop(recorder);
    let hb = Harness::start(Box::new(b), ChecksumAlgo::None, None);
    let hk = Harness::start(Box::new(k), ChecksumAlgo::Kraken, None);
    // Live traffic with a gap, a checksum fault and a reconnect, so resyncs are in the capture.
    for round in 0..120 {
        binance.step(1);
        kraken.step(1);
        match round {
            40 => binance.skip_next("BTC-USDT"),
            60 => kraken.wrong_checksum_next("BTC-USD"),
            80 => binance.control.drop_connections(),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    hb.wait(10, "binance live again", |s| {
        s.live("BTC-USDT") && s.live("ETH-USDT") && s.snapshots("BTC-USDT") >= 3
    })
    .await;
    hk.wait(10, "kraken resynced", |s| {
        s.live("BTC-USD") && s.snapshots("BTC-USD") >= 2
    })
    .await;
    let live_b = hb.with(|s| without_status(s.log.clone()));
    let live_k = hk.with(|s| without_status(s.log.clone()));
    hb.stop().await;
    hk.stop().await;
    // The connectors own the last recorder clones; they drop them when they stop.
    let (lines, dropped) = tokio::task::spawn_blocking(move || handle.finish())
        .await
        .unwrap()
        .unwrap();
    assert!(
        lines > 200 && dropped == 0,
        "{lines} lines, {dropped} dropped"
    );

    let first = replay::replay_all(&path).unwrap();
    let second = replay::replay_all(&path).unwrap();
    assert_eq!(first, second, "replay is deterministic");
    // The recorder wrote the default format; the same records as gzip JSON lines (the first
    // format, still read) replay to the same events.
    assert_eq!(
        CaptureSource::open(&path).unwrap().format(),
        CaptureFormat::Tgcap
    );
    let records = read_capture(&path).unwrap();
    assert_eq!(records.len() as u64, lines);
    let old = std::env::temp_dir().join(format!(
        "tickgate-capture-{}-old.jsonl.gz",
        std::process::id()
    ));
    let mut writer = CaptureWriter::create(&old, CaptureFormat::JsonlGz).unwrap();
    for record in &records {
        writer.write(record).unwrap();
    }
    assert_eq!(writer.finish().unwrap(), lines);
    assert_eq!(
        CaptureSource::open(&old).unwrap().format(),
        CaptureFormat::JsonlGz
    );
    assert_eq!(read_capture(&old).unwrap(), records);
    assert_eq!(
        replay::replay_all(&old).unwrap(),
        first,
        "both formats replay alike"
    );
    let _ = std::fs::remove_file(&old);
    // The streaming player (decoder thread, batches) yields exactly the same events.
    let mut played: Vec<(String, FeedEvent)> = Vec::new();
    let stats = replay::play(&path, None, |venue, batch| {
        played.extend(
            batch
                .drain(..)
                .map(|e| (venue.venue().as_str().to_string(), e)),
        );
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(stats.records, lines);
    assert_eq!(stats.venues, ["binance", "kraken"]);
    for venue in ["binance", "kraken"] {
        let of = |events: &[(String, FeedEvent)]| {
            without_status(
                events
                    .iter()
                    .filter(|(v, _)| v == venue)
                    .map(|(_, e)| e.clone()),
            )
        };
        assert_eq!(of(&played), of(&first), "{venue}: play = replay_all");
    }
    assert_capture_errors_have_codes(&path);
    let of = |venue: &str| {
        without_status(
            first
                .iter()
                .filter(|(v, _)| v == venue)
                .map(|(_, e)| e.clone()),
        )
    };
    let (replayed_b, replayed_k) = (of("binance"), of("kraken"));
    // Live events may trail the capture by what was in flight at shutdown.
    assert!(replayed_b.len() >= live_b.len() && replayed_k.len() >= live_k.len());
    assert_eq!(
        replayed_b[..live_b.len()],
        live_b[..],
        "binance replays exactly as it ran"
    );
    assert_eq!(
        replayed_k[..live_k.len()],
        live_k[..],
        "kraken replays exactly as it ran"
    );

    // Through the Connector seam at full speed, into the same reference consumer.
    let connectors = replay::open(&path, None).unwrap();
    assert_eq!(connectors.len(), 2);
    for connector in connectors {
        let h = Harness::start(Box::new(connector), ChecksumAlgo::None, None);
        h.wait(10, "replayed books", |s| {
            !s.books.is_empty() && s.books.values().all(book::OrderBook::is_live)
        })
        .await;
        h.stop().await;
    }
    let _ = std::fs::remove_file(&path);
}

/// Each way a capture can be unusable gets its own stable code; none panics or hangs.
fn assert_capture_errors_have_codes(good: &std::path::Path) {
    use std::io::Write;
    let dir = std::env::temp_dir();
    let id = std::process::id();
    let bytes = std::fs::read(good).unwrap();
    let truncated = dir.join(format!("tickgate-capture-cut-{id}.jsonl.gz"));
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let corrupt = dir.join(format!("tickgate-capture-bad-{id}.jsonl.gz"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"{\"t\":1,\"v\":\"binance\",\"k\":\"tick\"}\nnot json\n")
        .unwrap();
    std::fs::write(&corrupt, gz.finish().unwrap()).unwrap();
    let not_gzip = dir.join(format!("tickgate-capture-plain-{id}.jsonl.gz"));
    std::fs::write(&not_gzip, b"{\"t\":1}\n").unwrap();
    let empty = dir.join(format!("tickgate-capture-empty-{id}.jsonl.gz"));
    std::fs::write(
        &empty,
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast())
            .finish()
            .unwrap(),
    )
    .unwrap();
    let missing = dir.join(format!("tickgate-capture-missing-{id}.jsonl.gz"));
    // The same faults in the framed format: a record of an unknown type after a good one, a
    // frame whose content ends without its end record, and one that holds no record.
    let lz4 = |content: &[u8]| {
        let mut out = lz4_flex::frame::FrameEncoder::new(Vec::new());
        out.write_all(content).unwrap();
        out.finish().unwrap()
    };
    let tick = br#"{"t":1,"v":"binance","c":1,"k":"tick"}"#;
    let mut content = framed::HEADER.to_vec();
    content.extend([0x02, tick.len() as u8]);
    content.extend(tick);
    let corrupt_framed = dir.join(format!("tickgate-capture-bad-{id}.tgcap"));
    std::fs::write(&corrupt_framed, lz4(&[&content[..], &[0x09]].concat())).unwrap();
    let cut_framed = dir.join(format!("tickgate-capture-cut-{id}.tgcap"));
    std::fs::write(&cut_framed, lz4(&content)).unwrap();
    let empty_framed = dir.join(format!("tickgate-capture-empty-{id}.tgcap"));
    let (file, _) = framed::FramedWriter::new(Vec::new())
        .unwrap()
        .finish()
        .unwrap();
    std::fs::write(&empty_framed, file).unwrap();
    let cases: [(&std::path::Path, Option<&str>, &str, &str); 9] = [
        (&truncated, None, "capture_truncated", "truncated"),
        (&corrupt, None, "capture_corrupt", "line 2"),
        (&not_gzip, None, "capture_corrupt", "corrupt"),
        (&empty, None, "capture_without_venue", "records no venue"),
        (
            &corrupt_framed,
            None,
            "capture_corrupt",
            "record 2: unknown record type 0x09",
        ),
        (
            &cut_framed,
            None,
            "capture_truncated",
            "ends after record 1 without its end record",
        ),
        (
            &empty_framed,
            None,
            "capture_without_venue",
            "records no venue",
        ),
        (&missing, None, "capture_unreadable", "cannot open"),
        (good, Some("nasdaq"), "unknown_venue", "nasdaq"),
    ];
    for (path, only, code, text) in cases {
        let error =
            replay::play(path, only, |_, _| std::ops::ControlFlow::Continue(())).expect_err(code);
        assert_eq!(error.code(), code, "{error}");
        assert!(error.to_string().contains(text), "{code}: {error}");
    }
    // A venue the build knows but the capture does not hold.
    let error = replay::play(good, Some("coinbase"), |_, _| {
        std::ops::ControlFlow::Continue(())
    })
    .expect_err("no coinbase");
    assert_eq!(error.code(), "capture_without_venue", "{error}");
    // The gateway's replay venue refuses the same files when it is configured (it reads the
    // whole capture once, streamed, before starting), as a terminal configuration error.
    for (path, text) in [
        (&truncated, "cannot read capture"),
        (&corrupt, "line 2"),
        (&not_gzip, "not a capture"),
        (&corrupt_framed, "record 2"),
        (&cut_framed, "without its end record"),
        (&empty_framed, "records no venue"),
        (&missing, "cannot read capture"),
        (&empty, "records no venue"),
    ] {
        let error = replay::open(path, None).expect_err(text);
        assert!(error.is_terminal(), "{error}");
        assert!(error.to_string().contains(text), "{text}: {error}");
        assert!(
            error.to_string().contains(&*path.display().to_string()),
            "{error}"
        );
    }
    for path in [
        truncated,
        corrupt,
        not_gzip,
        empty,
        corrupt_framed,
        cut_framed,
        empty_framed,
    ] {
        let _ = std::fs::remove_file(path);
    }
}
