//! The bus against a real NATS JetStream: hub A → forwarder → NATS → feeder → hub B serves the
//! same frames with the same seq and epoch; a late edge builds the same book; a new epoch moves
//! live subscribers over with a resync snapshot; a stale writer is refused.
//!
//! Needs TICKGATE_TEST_NATS_URL (e.g. nats://127.0.0.1:4222); each test uses its own prefix.

use book::ChecksumAlgo;
use cluster::forwarder::{ForwarderStats, Open};
use cluster::{ClusterOptions, feeder};
use hub::{CacheMode, ChannelHandle, FrameKind, Hub, HubConfig};
use model::{BookDelta, BookSnapshot, Channel, Level, Timestamp, parse_decimal};
use protocol::DataMessage;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const BOOK: &str = "book:sim:BTC-USDT";
const TRADES: &str = "trades:sim:BTC-USDT";
const TICKER: &str = "ticker:sim:BTC-USDT";

fn nats_url() -> Option<String> {
    let url = std::env::var("TICKGATE_TEST_NATS_URL").ok();
    if url.is_none() {
        eprintln!("skipped: TICKGATE_TEST_NATS_URL not set");
    }
    url
}

fn options(tag: &str) -> ClusterOptions {
    let unique = format!("{:x}", Timestamp::now().0);
    ClusterOptions {
        prefix: format!("t{tag}{}", &unique[unique.len() - 9..]),
        node: "test".into(),
        snapshot_interval: Duration::from_millis(100),
        scan_interval: Duration::from_millis(20),
        ..Default::default()
    }
}

fn level(p: &str, q: &str) -> Level {
    Level::new(
        parse_decimal(p).expect("decimal"),
        parse_decimal(q).expect("decimal"),
    )
}

/// A source hub with a live book, a trades and a ticker channel.
struct Source {
    hub: Arc<Hub>,
    book: Arc<ChannelHandle>,
    trades: Arc<ChannelHandle>,
    ticker: Arc<ChannelHandle>,
    next_delta: u64,
}

impl Source {
    fn new() -> Self {
        Self::with(HubConfig::default())
    }

    fn with(config: HubConfig) -> Self {
        let hub = Arc::new(Hub::new(config));
        let ch = |name: &str| name.parse::<Channel>().expect("channel");
        let book = hub.register(ch(BOOK), CacheMode::Book(ChecksumAlgo::None));
        let trades = hub.register(ch(TRADES), CacheMode::None);
        let ticker = hub.register(ch(TICKER), CacheMode::Latest);
        book.book_snapshot(&BookSnapshot {
            seq: 100,
            bids: vec![level("99", "1"), level("98", "2")],
            asks: vec![level("101", "1"), level("102", "3")],
            exchange_ts: Timestamp(1),
            recv_ts: Timestamp(1),
            ..Default::default()
        })
        .expect("snapshot");
        Self {
            hub,
            book,
            trades,
            ticker,
            next_delta: 101,
        }
    }

    /// One book delta, one trade, one ticker update.
    fn step(&mut self) {
        let n = self.next_delta;
        self.next_delta += 1;
        let price = format!("{}", 90 + n % 8);
        let size = format!("{}", 1 + n % 5);
        self.book
            .book_delta(&BookDelta {
                first_seq: n,
                last_seq: n,
                bids: vec![level(&price, &size)],
                exchange_ts: Timestamp(n as i64),
                recv_ts: Timestamp(n as i64),
                ..Default::default()
            })
            .expect("delta")
            .expect("applied");
        let msg = DataMessage {
            ts: n as i64,
            recv_ts: n as i64,
            ..Default::default()
        };
        self.trades.publish(msg.clone());
        self.ticker.publish(msg);
    }
}

async fn forward(
    url: &str,
    source: &Source,
    options: &ClusterOptions,
) -> (Arc<ForwarderStats>, CancellationToken) {
    let client = cluster::connect(url).await.expect("nats");
    let stop = CancellationToken::new();
    let stats = cluster::forwarder::start(
        client,
        source.hub.clone(),
        options.clone(),
        Arc::new(Open::default()),
        stop.clone(),
    )
    .await
    .expect("forwarder");
    (stats, stop)
}

async fn forward_leased(
    url: &str,
    source: &Source,
    options: &ClusterOptions,
) -> (Arc<ForwarderStats>, CancellationToken, async_nats::Client) {
    let client = cluster::connect(url).await.expect("nats");
    let stop = CancellationToken::new();
    let gate = cluster::failover::LeaseGate::start(client.clone(), options, stop.clone())
        .await
        .expect("lease gate");
    let stats = cluster::forwarder::start(
        client.clone(),
        source.hub.clone(),
        options.clone(),
        Arc::new(gate),
        stop.clone(),
    )
    .await
    .expect("forwarder");
    (stats, stop, client)
}

async fn edge(url: &str, options: &ClusterOptions) -> (Arc<Hub>, CancellationToken) {
    let (client, connected) = cluster::connect_watched(url).await.expect("nats");
    let hub = Arc::new(Hub::new(HubConfig::default()));
    let stop = CancellationToken::new();
    feeder::start(
        client,
        connected,
        hub.clone(),
        options.clone(),
        stop.clone(),
    )
    .await
    .expect("feeder");
    (hub, stop)
}

/// Waits until `hub` serves `name` at `source`'s seq and epoch.
async fn caught_up(hub: &Hub, name: &str, source: &ChannelHandle) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(h) = hub.get_by_name(name)
            && h.replica_synced()
            && h.seq() == source.seq()
            && h.epoch() == source.epoch()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} did not catch up: edge {:?}, source {}",
            hub.get_by_name(name).map(|h| (h.seq(), h.replica_synced())),
            source.seq()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_same_book(edge: &ChannelHandle, source: &ChannelHandle) {
    let (a, b) = (
        source.book_view(1000).expect("book"),
        edge.book_view(1000).expect("book"),
    );
    assert_eq!(
        (b.seq, &b.epoch, b.live, &b.bids, &b.asks, b.checksum),
        (a.seq, &a.epoch, a.live, &a.bids, &a.asks, a.checksum)
    );
}

async fn cleanup(url: &str, options: &ClusterOptions) {
    let js = async_nats::jetstream::new(cluster::connect(url).await.expect("nats"));
    let names = options.names().expect("names");
    for stream in [names.frames_stream(), names.snapshots_stream()] {
        let _ = js.delete_stream(stream).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_serves_the_ingest_frames_with_their_seq_and_a_late_edge_builds_the_same_book() {
    let Some(url) = nats_url() else { return };
    let options = options("a");
    let mut source = Source::new();
    for _ in 0..5 {
        source.step();
    }
    let (stats, stop_forwarder) = forward(&url, &source, &options).await;
    let (edge_hub, stop_edge) = edge(&url, &options).await;
    for (name, handle) in [
        (BOOK, &source.book),
        (TRADES, &source.trades),
        (TICKER, &source.ticker),
    ] {
        caught_up(&edge_hub, name, handle).await;
    }
    assert_same_book(&edge_hub.get_by_name(BOOK).expect("book"), &source.book);

    // Live frames: byte for byte what the source's subscribers got, same seq.
    let mut at_source = source.book.subscribe(false).rx;
    let mut at_edge = edge_hub
        .get_by_name(BOOK)
        .expect("book")
        .subscribe(false)
        .rx;
    let mut trades_at_edge = edge_hub
        .get_by_name(TRADES)
        .expect("trades")
        .subscribe(false)
        .rx;
    for _ in 0..50 {
        source.step();
    }
    for name in [BOOK, TRADES, TICKER] {
        let handle = source.hub.get_by_name(name).expect("source");
        caught_up(&edge_hub, name, &handle).await;
    }
    for _ in 0..50 {
        let (a, b) = (
            at_source.try_recv().expect("source frame"),
            at_edge.try_recv().expect("edge frame"),
        );
        assert_eq!((b.seq, b.kind, &b.text), (a.seq, a.kind, &a.text));
    }
    let trades: Vec<u64> = (0..50)
        .map(|_| trades_at_edge.try_recv().expect("trade").seq)
        .collect();
    assert_eq!(
        trades,
        (6..=55).collect::<Vec<u64>>(),
        "gap-free trades seq"
    );
    assert_same_book(&edge_hub.get_by_name(BOOK).expect("book"), &source.book);
    let ticker = edge_hub
        .get_by_name(TICKER)
        .expect("ticker")
        .subscribe(false);
    let value = ticker.initial.expect("latest value");
    assert_eq!(
        (value.seq, value.kind),
        (source.ticker.seq(), FrameKind::Snapshot)
    );

    // A late edge: snapshot record + frames after it, same book at the same seq.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..20 {
        source.step();
    }
    let (late_hub, stop_late) = edge(&url, &options).await;
    caught_up(&late_hub, BOOK, &source.book).await;
    caught_up(&late_hub, TRADES, &source.trades).await;
    caught_up(&late_hub, TICKER, &source.ticker).await;
    assert_same_book(&late_hub.get_by_name(BOOK).expect("book"), &source.book);
    assert!(stats.frames.load(Ordering::Relaxed) >= 210);
    assert_eq!(stats.fenced.load(Ordering::Relaxed), 0);

    for stop in [stop_forwarder, stop_edge, stop_late] {
        stop.cancel();
    }
    cleanup(&url, &options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_epoch_moves_live_sessions_over_and_the_stale_writer_is_refused() {
    let Some(url) = nats_url() else { return };
    let options = options("b");
    let mut old = Source::new();
    let (old_stats, stop_old) = forward(&url, &old, &options).await;
    let (edge_hub, stop_edge) = edge(&url, &options).await;
    for _ in 0..10 {
        old.step();
    }
    caught_up(&edge_hub, BOOK, &old.book).await;
    caught_up(&edge_hub, TRADES, &old.trades).await;
    let replica = edge_hub.get_by_name(BOOK).expect("book");
    let mut live = replica.subscribe(false).rx;
    let mut live_trades = edge_hub
        .get_by_name(TRADES)
        .expect("trades")
        .subscribe(false)
        .rx;

    // A new owner of the venue: another process, so another epoch. The old one is idle (its
    // last periodic snapshot record written) but still running.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut new = Source::new();
    assert_ne!(new.book.epoch(), old.book.epoch());
    let (new_stats, stop_new) = forward(&url, &new, &options).await;
    for _ in 0..3 {
        new.step();
    }
    caught_up(&edge_hub, BOOK, &new.book).await;
    caught_up(&edge_hub, TRADES, &new.trades).await;
    let same = edge_hub.get_by_name(BOOK).expect("book");
    assert!(
        Arc::ptr_eq(&same, &replica),
        "the same channel, moved in place"
    );
    assert_same_book(&same, &new.book);

    // The live subscriber: a resync snapshot in the new epoch, then its frames; never a frame
    // of the new epoch applied on the old seq space.
    let mut saw_resync = false;
    while let Ok(frame) = live.try_recv() {
        let msg: serde_json::Value = serde_json::from_str(frame.as_str()).expect("json");
        if frame.kind == FrameKind::Snapshot && msg["resync"] == true {
            assert_eq!(msg["epoch"].as_str(), Some(&*new.book.epoch()));
            saw_resync = true;
        } else if saw_resync {
            assert_eq!(msg["epoch"].as_str(), Some(&*new.book.epoch()));
        } else {
            assert_eq!(msg["epoch"].as_str(), Some(&*old.book.epoch()));
        }
    }
    assert!(saw_resync, "live book subscriber got a resync snapshot");
    let mut saw_gap = false;
    while let Ok(frame) = live_trades.try_recv() {
        let msg: serde_json::Value = serde_json::from_str(frame.as_str()).expect("json");
        if msg["type"] == "gap" {
            assert_eq!(msg["reason"], "epoch_changed");
            saw_gap = true;
        }
    }
    assert!(saw_gap, "live trades subscriber got a gap notice");

    // The old owner keeps publishing: JetStream refuses it, the edge stays on the new epoch.
    old.step();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while old_stats.fenced.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stale writer not refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    new.step();
    caught_up(&edge_hub, BOOK, &new.book).await;
    assert_same_book(&edge_hub.get_by_name(BOOK).expect("book"), &new.book);
    assert_eq!(new_stats.fenced.load(Ordering::Relaxed), 0);

    for stop in [stop_old, stop_new, stop_edge] {
        stop.cancel();
    }
    cleanup(&url, &options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarder_that_falls_behind_the_ring_restarts_from_a_snapshot_never_skipping() {
    let Some(url) = nats_url() else { return };
    let options = options("c");
    let mut source = Source::with(HubConfig {
        channel_capacity: 16,
        ..Default::default()
    });
    let (stats, stop_forwarder) = forward(&url, &source, &options).await;
    let (edge_hub, stop_edge) = edge(&url, &options).await;
    caught_up(&edge_hub, BOOK, &source.book).await;
    let replica = edge_hub.get_by_name(BOOK).expect("book");
    let mut live = replica.subscribe(false).rx;
    // Faster than one JetStream round trip per frame: the forwarder's receiver lags.
    for _ in 0..400 {
        source.step();
    }
    caught_up(&edge_hub, BOOK, &source.book).await;
    caught_up(&edge_hub, TICKER, &source.ticker).await;
    assert!(
        stats.lags.load(Ordering::Relaxed) > 0,
        "the burst overran the ring"
    );
    assert_same_book(&replica, &source.book);
    // The edge's live subscriber saw consecutive seqs, except across a resync snapshot.
    let mut last = None;
    while let Ok(frame) = live.try_recv() {
        if let Some(last) = last
            && frame.kind != FrameKind::Snapshot
        {
            assert_eq!(frame.seq, last + 1, "no silent hole");
        }
        last = Some(frame.seq);
    }
    assert_eq!(last, Some(source.book.seq()));
    stop_forwarder.cancel();
    stop_edge.cancel();
    cleanup(&url, &options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_ingest_takes_the_venue_over_when_the_owner_stops_in_a_new_epoch() {
    failover(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_ingest_takes_the_venue_over_within_the_lease_ttl_when_the_owner_is_cut_off() {
    failover(true).await;
}

/// `cut`: the owner loses NATS (as if killed: its lease is not released and must expire);
/// otherwise it stops cleanly and hands the lease over.
async fn failover(cut: bool) {
    let Some(url) = nats_url() else { return };
    let mut options = options(if cut { "e" } else { "d" });
    options.lease_ttl = Duration::from_secs(1);
    let mut a = Source::new();
    let (a_stats, stop_a, a_client) = forward_leased(&url, &a, &options).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A second ingest of the same venue, hot: its own hub (another epoch), waiting for the lease.
    let mut b = Source::new();
    let mut b_options = options.clone();
    b_options.node = "standby".into();
    let (b_stats, stop_b, _b_client) = forward_leased(&url, &b, &b_options).await;
    let (edge_hub, stop_edge) = edge(&url, &options).await;
    for _ in 0..5 {
        a.step();
        b.step();
    }
    caught_up(&edge_hub, BOOK, &a.book).await;
    assert_eq!(
        b_stats.frames.load(Ordering::Relaxed),
        0,
        "the standby publishes nothing"
    );
    let mut live = edge_hub
        .get_by_name(BOOK)
        .expect("book")
        .subscribe(false)
        .rx;

    let died = tokio::time::Instant::now();
    if cut {
        a_client.drain().await.expect("drain");
    } else {
        stop_a.cancel();
    }
    let deadline = died + Duration::from_secs(5);
    loop {
        b.step();
        let h = edge_hub.get_by_name(BOOK).expect("book");
        if h.epoch() == b.book.epoch() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no takeover within 5 s: edge {:?}, standby {b_stats:?}",
            (
                h.epoch(),
                h.seq(),
                h.replica_synced(),
                b.book.epoch(),
                b.book.seq()
            )
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = died.elapsed();
    eprintln!("takeover after {took:?}");
    caught_up(&edge_hub, BOOK, &b.book).await;
    assert_same_book(&edge_hub.get_by_name(BOOK).expect("book"), &b.book);
    let mut saw_resync = false;
    while let Ok(frame) = live.try_recv() {
        let msg: serde_json::Value = serde_json::from_str(frame.as_str()).expect("json");
        if msg["epoch"].as_str() == Some(&*b.book.epoch()) {
            saw_resync |= msg["resync"] == true;
            assert!(saw_resync, "the new epoch starts with a resync snapshot");
        }
    }
    assert!(saw_resync);
    assert_eq!(a_stats.fenced.load(Ordering::Relaxed), 0);
    stop_a.cancel();
    stop_b.cancel();
    stop_edge.cancel();
    cleanup(&url, &options).await;
    let js = async_nats::jetstream::new(cluster::connect(&url).await.expect("nats"));
    let _ = js
        .delete_key_value(options.names().expect("names").lease_bucket())
        .await;
}

/// A TCP link to NATS that the test can cut and restore, as a network partition would.
struct Link {
    addr: String,
    up: Arc<std::sync::atomic::AtomicBool>,
    links: Arc<parking_lot::Mutex<CancellationToken>>,
}

impl Link {
    async fn to(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let links = Arc::new(parking_lot::Mutex::new(CancellationToken::new()));
        let (up2, links2) = (up.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue;
                }
                let cut = links2.lock().clone();
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            () = cut.cancelled() => {}
                        }
                    }
                });
            }
        });
        Self { addr, up, links }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let old = std::mem::replace(&mut *self.links.lock(), CancellationToken::new());
        old.cancel();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_that_loses_nats_tells_book_subscribers_and_recovers_without_a_hole() {
    let Some(url) = nats_url() else { return };
    let options = options("f");
    let mut source = Source::new();
    let (_stats, stop_forwarder) = forward(&url, &source, &options).await;
    let link = Link::to(url.trim_start_matches("nats://").to_string()).await;
    let (edge_hub, stop_edge) = edge(&format!("nats://{}", link.addr), &options).await;
    for _ in 0..3 {
        source.step();
    }
    caught_up(&edge_hub, BOOK, &source.book).await;
    let replica = edge_hub.get_by_name(BOOK).expect("book");
    let mut live = replica.subscribe(false).rx;
    let seq = replica.seq();

    link.cut();
    let notice = tokio::time::timeout(Duration::from_secs(5), live.recv())
        .await
        .expect("told within 5 s")
        .expect("frame");
    assert_eq!((notice.seq, notice.kind), (seq, FrameKind::Resync));
    assert!(notice.as_str().contains("bus_down"), "{}", notice.as_str());
    assert!(
        !replica.book_view(1000).expect("book").live,
        "REST sees it stale"
    );
    // The ingest goes on meanwhile.
    for _ in 0..5 {
        source.step();
    }

    link.restore();
    caught_up(&edge_hub, BOOK, &source.book).await;
    let snapshot = live.try_recv().expect("resync snapshot");
    let msg: serde_json::Value = serde_json::from_str(snapshot.as_str()).expect("json");
    assert_eq!(
        (snapshot.kind, msg["resync"].as_bool()),
        (FrameKind::Snapshot, Some(true))
    );
    let mut last = snapshot.seq;
    while let Ok(frame) = live.try_recv() {
        assert_eq!(frame.seq, last + 1, "no hole after the bus returns");
        last = frame.seq;
    }
    assert_eq!(last, source.book.seq());
    assert_same_book(&replica, &source.book);
    stop_forwarder.cancel();
    stop_edge.cancel();
    cleanup(&url, &options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_from_one_edge_resumes_exactly_on_another() {
    let Some(url) = nats_url() else { return };
    let options = options("g");
    let mut source = Source::new();
    let (_stats, stop_forwarder) = forward(&url, &source, &options).await;
    let (edge_a, stop_a) = edge(&url, &options).await;
    let (edge_b, stop_b) = edge(&url, &options).await;
    caught_up(&edge_a, BOOK, &source.book).await;
    caught_up(&edge_b, BOOK, &source.book).await;
    for _ in 0..5 {
        source.step();
    }
    caught_up(&edge_a, BOOK, &source.book).await;
    // A client of edge A stopped here.
    let a = edge_a.get_by_name(BOOK).expect("book");
    let position = protocol::ResumeFrom {
        epoch: a.epoch().to_string(),
        seq: a.seq(),
    };
    let mut at_a = a.subscribe(false).rx;
    for _ in 0..5 {
        source.step();
    }
    caught_up(&edge_b, BOOK, &source.book).await;
    caught_up(&edge_a, BOOK, &source.book).await;
    let resumed = edge_b.get_by_name(BOOK).expect("book").resume(&position);
    assert_eq!(resumed.outcome, Ok(()), "recovered on the other edge");
    let replayed: Vec<_> = resumed
        .subscription
        .replay
        .iter()
        .map(|f| f.text.clone())
        .collect();
    let missed: Vec<_> = (0..5)
        .map(|_| at_a.try_recv().expect("frame").text)
        .collect();
    assert_eq!(replayed, missed, "the same frames, byte for byte");
    for stop in [stop_forwarder, stop_a, stop_b] {
        stop.cancel();
    }
    cleanup(&url, &options).await;
}

/// Instrument metadata: the owner writes each venue's list once (and again when it changes),
/// a venue it does not own is not written, an edge gets every list at start and each change,
/// and a bad value is counted and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_learns_the_instruments_of_the_venues_the_ingest_owns() {
    use cluster::forwarder::Gate;
    use cluster::instruments;
    use model::{Instrument, Symbol, Venue};
    use parking_lot::Mutex;

    let Some(url) = nats_url() else { return };
    let options = options("in");
    let instrument = |venue: &str, symbol: &str, tick: &str| Instrument {
        venue: Venue::new(venue).expect("venue"),
        symbol: Symbol::new(symbol).expect("symbol"),
        native_symbol: symbol.replace('-', ""),
        tick_size: parse_decimal(tick).expect("decimal"),
        lot_size: parse_decimal("0.001").expect("decimal"),
    };
    /// Owns every venue but `okx`.
    #[derive(Debug)]
    struct NotOkx;
    impl Gate for NotOkx {
        fn allowed(&self, venue: &str) -> bool {
            venue != "okx"
        }
        fn fenced(&self, _venue: &str) {}
    }
    let served = Arc::new(Mutex::new(vec![
        instrument("sim", "BTC-USDT", "0.01"),
        instrument("sim", "ETH-USDT", "0.01"),
        instrument("okx", "BTC-USDT", "0.1"),
    ]));
    let shutdown = CancellationToken::new();
    let source: instruments::Source = {
        let served = served.clone();
        Arc::new(move || served.lock().clone())
    };
    let client = cluster::connect(&url).await.expect("nats");
    let published = instruments::start_publisher(
        client.clone(),
        &options,
        source,
        Arc::new(NotOkx),
        shutdown.clone(),
    )
    .await
    .expect("publisher");

    // The edge starts after the first write: it reads the last value of every key.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while published.published.load(Ordering::Relaxed) < 1 {
        assert!(tokio::time::Instant::now() < deadline, "nothing published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let learned: Arc<Mutex<Vec<Vec<Instrument>>>> = Arc::default();
    let sink: instruments::Sink = {
        let learned = learned.clone();
        Arc::new(move |list| learned.lock().push(list))
    };
    let edge = instruments::start_watcher(client.clone(), options.clone(), sink, shutdown.clone());
    let wait_for = |n: usize| {
        let learned = learned.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while learned.lock().len() < n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "edge learned {:?}",
                    learned.lock()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(1).await;
    {
        let lists = learned.lock();
        assert_eq!(
            lists[0].len(),
            2,
            "the sim list only: okx is not this node's"
        );
        assert!(lists[0].iter().all(|i| i.venue.as_str() == "sim"));
    }

    // A bad value written by someone else is counted and skipped; the next good one applies.
    let js = async_nats::jetstream::new(client.clone());
    let store = instruments::bucket(&js, &options).await.expect("bucket");
    store
        .put(
            "venue.sim",
            bytes::Bytes::from_static(b"[{\"venue\":\"sim\"}]"),
        )
        .await
        .expect("put");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while edge.invalid.load(Ordering::Relaxed) < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bad value not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(learned.lock().len(), 1, "a bad value changes nothing");

    // A changed tick size reaches the edge (the publisher writes only changes: its last write
    // was the good list, so the change is what it writes next).
    served.lock()[0].tick_size = parse_decimal("0.5").expect("decimal");
    wait_for(2).await;
    let last = learned.lock().last().cloned().expect("list");
    let btc = last
        .iter()
        .find(|i| i.symbol.as_str() == "BTC-USDT")
        .expect("btc");
    assert_eq!(btc.tick_size, parse_decimal("0.5").expect("decimal"));
    shutdown.cancel();
    let names = options.names().expect("names");
    let _ = js
        .delete_stream(format!("KV_{}", names.instruments_bucket()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_travels_in_batches_byte_for_byte_and_a_stale_writers_batch_is_refused_whole() {
    let Some(url) = nats_url() else { return };
    let options = options("h");
    let big_ring = HubConfig {
        channel_capacity: 8192,
        ..Default::default()
    };
    let mut old = Source::with(big_ring.clone());
    let (old_stats, stop_old) = forward(&url, &old, &options).await;
    let (edge_hub, stop_edge) = edge(&url, &options).await;
    caught_up(&edge_hub, BOOK, &old.book).await;
    caught_up(&edge_hub, TRADES, &old.trades).await;
    let mut at_source = old.book.subscribe(false).rx;
    let mut at_edge = edge_hub
        .get_by_name(BOOK)
        .expect("book")
        .subscribe(false)
        .rx;
    // Far faster than one JetStream round trip per frame (and within the edge's ring of
    // 1024, so its subscriber can compare every frame).
    for _ in 0..800 {
        old.step();
    }
    // Every channel the burst moved (3 frames a step), so the forwarder's counts are final.
    caught_up(&edge_hub, BOOK, &old.book).await;
    caught_up(&edge_hub, TRADES, &old.trades).await;
    caught_up(&edge_hub, TICKER, &old.ticker).await;
    // The edge can read a batch before its forwarder has counted the acknowledgement.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while old_stats.frames.load(Ordering::Relaxed) < 2400 && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (frames, batches) = (
        old_stats.frames.load(Ordering::Relaxed),
        old_stats.batches.load(Ordering::Relaxed),
    );
    assert!(frames >= 2400, "{frames}");
    assert!(
        batches < frames / 4,
        "batched: {batches} messages for {frames} frames"
    );
    assert_eq!(old_stats.lags.load(Ordering::Relaxed), 0);
    for _ in 0..800 {
        let (a, b) = (
            at_source.try_recv().expect("source frame"),
            at_edge.try_recv().expect("edge frame"),
        );
        assert_eq!((b.seq, b.kind, &b.text), (a.seq, a.kind, &a.text));
    }
    assert!(at_edge.try_recv().is_err(), "nothing more");
    assert_same_book(&edge_hub.get_by_name(BOOK).expect("book"), &old.book);

    // A new owner claims the subjects; the old one then sends a burst: its first batch is
    // refused whole, nothing of it reaches the edge.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut new = Source::with(big_ring);
    let (new_stats, stop_new) = forward(&url, &new, &options).await;
    new.step();
    caught_up(&edge_hub, BOOK, &new.book).await;
    for _ in 0..500 {
        old.step();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while old_stats.fenced.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stale writer not refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..500 {
        new.step();
    }
    caught_up(&edge_hub, BOOK, &new.book).await;
    caught_up(&edge_hub, TRADES, &new.trades).await;
    assert_same_book(&edge_hub.get_by_name(BOOK).expect("book"), &new.book);
    assert_eq!(new_stats.fenced.load(Ordering::Relaxed), 0);
    for stop in [stop_old, stop_new, stop_edge] {
        stop.cancel();
    }
    cleanup(&url, &options).await;
}
