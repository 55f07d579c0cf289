//! `tickgate replay FILE`: plays a capture written by `tickgate record` through the gateway's
//! own path (venue session → ingest → hub channels: books checked, checksums, gaps, seq and
//! epoch as live) with no server, and writes every message the channels publish as one JSON
//! line: the same text a WebSocket subscriber of those channels receives (docs/protocol.md).
//!
//! Three threads: the capture's reader decompresses and decodes records, a parse thread runs
//! them through the venues' sessions (`replay::play`), and the calling thread runs ingest,
//! the books and the hub on the parsed batches, in capture order (a bounded queue between
//! each: the stages overlap, the order is the file's).
//!
//! The hub is tapped, not subscribed to over a socket: each channel's publisher is wrapped
//! (`Tap`) so the frames it publishes are drained from its own subscription right after each
//! publish, in publish order. A subscriber that never falls behind cannot lag, so nothing is
//! conflated or dropped.

use clap::{Args, ValueEnum};
use connectors::conn::Protocol;
use connectors::venue::replay::{self, ReplayError};
use connectors::{Command, FeedBatch};
use hub::{Bus, CacheMode, Frame, Hub, HubConfig, Publisher, Topic};
use ingest::{Market, VenueIngest, VenueStats};
use model::{BookDelta, BookSnapshot, Channel, ChannelKind, Instrument, Level, Timestamp, Venue};
use protocol::DataMessage;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::mpsc;

/// Output buffer in front of the file or stdout.
const OUT_BUFFER: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// NDJSON to `--out` (standard output without it).
    Ndjson,
    /// NDJSON to standard output.
    Stdout,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Capture file written by `tickgate record` (either format: `tgcap` or `jsonl-gz`).
    file: PathBuf,
    /// Where the messages go.
    #[arg(long, value_enum, default_value = "ndjson")]
    to: Target,
    /// Output file for `--to ndjson` (default: standard output).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Only this venue of the capture (default: every recorded venue).
    #[arg(long)]
    venue: Option<String>,
    /// Only these channel kinds, comma separated: book, trades, ticker, candles, status
    /// (default: all).
    #[arg(long, value_delimiter = ',')]
    channels: Vec<String>,
}

/// Channel kinds `--channels` accepts.
const KINDS: [&str; 5] = ["book", "trades", "ticker", "candles", "status"];

/// A usage or input error: `error: <code>: <message>` on stderr, exit code 2 (bad arguments)
/// or 1 (the capture or the output failed).
fn fail(code: &str, message: impl std::fmt::Display, exit: u8) -> anyhow::Result<ExitCode> {
    eprintln!("error: {code}: {message}");
    Ok(ExitCode::from(exit))
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    if let Some(bad) = args.channels.iter().find(|k| !KINDS.contains(&k.as_str())) {
        return fail(
            "bad_argument",
            format!(
                "--channels: unknown kind {bad:?} (one of {})",
                KINDS.join(", ")
            ),
            2,
        );
    }
    let writer: Box<dyn Write + Send> = match (args.to, &args.out) {
        (Target::Stdout, Some(_)) => {
            return fail("bad_argument", "--out goes with --to ndjson, not stdout", 2);
        }
        (Target::Ndjson, Some(path)) => match std::fs::File::create(path) {
            Ok(file) => Box::new(file),
            Err(error) => {
                return fail(
                    "output_failed",
                    format!("cannot create {}: {error}", path.display()),
                    1,
                );
            }
        },
        _ => Box::new(std::io::stdout()),
    };
    let out = Arc::new(Mutex::new(Output {
        writer: BufWriter::with_capacity(OUT_BUFFER, writer),
        lines: 0,
        error: None,
    }));
    let bus: Arc<dyn Bus> = Arc::new(TapBus {
        // No session can resume from this hub: frames are not kept for it. Its only
        // subscriber, the tap, drains a channel after each publisher call (one frame each), so
        // the smallest ring is enough, and keeps the ring and the frames it drops in cache.
        hub: Hub::new(HubConfig {
            history_size: 0,
            channel_capacity: HubConfig::MIN_CHANNEL_CAPACITY,
            ..HubConfig::default()
        }),
        kinds: args.channels.clone(),
        out: out.clone(),
    });
    let market = Arc::new(Market::default());
    let mut ingests: Vec<Running> = Vec::new();
    let start = Instant::now();
    // The capture is decoded (its reader thread) and its venue frames parsed (the parse
    // thread) ahead of ingest, the books and the hub, which run here.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Parsed>(PIPELINE_BATCHES);
    let file = args.file.clone();
    let only = args.venue.clone();
    let parser = std::thread::Builder::new()
        .name("tickgate-replay-parse".into())
        .spawn(move || parse(&file, only.as_deref(), &tx))?;
    for parsed in rx {
        match parsed {
            Parsed::Venue { venue, instruments } => {
                ingests.push(Running::new(venue, instruments, &bus, &market));
            }
            Parsed::Batch { venue, batch } => {
                if let Some(running) = ingests.get_mut(venue) {
                    running.ingest.handle_batch(batch);
                    running.drain_commands();
                }
            }
        }
        if out.lock().map_or(true, |o| o.error.is_some()) {
            // Dropping the receiver stops the parse thread at its next batch.
            break;
        }
    }
    let played = parser
        .join()
        .map_err(|_| anyhow::anyhow!("the replay's parse thread panicked"))?;
    // Candles still open at the end are published closed, as at a gateway's shutdown.
    for running in &mut ingests {
        running.ingest.persist_open_candles(Timestamp::now());
    }
    let seconds = start.elapsed().as_secs_f64();
    let stats = match played {
        Ok(stats) => stats,
        Err(error) => {
            let exit = if matches!(error, ReplayError::UnknownVenue(_)) {
                2
            } else {
                1
            };
            return fail(error.code(), &error, exit);
        }
    };
    let mut out = out
        .lock()
        .map_err(|_| anyhow::anyhow!("the output lock was poisoned"))?;
    if out.error.is_none()
        && let Err(error) = out.writer.flush()
    {
        out.error = Some(error);
    }
    if let Some(error) = &out.error {
        return fail(
            "output_failed",
            format!("cannot write the output: {error}"),
            1,
        );
    }
    eprintln!(
        "replayed {} records ({} applied) of {} into {} messages in {:.3} s: {:.0} records/s, {:.0} messages/s",
        stats.records,
        stats.applied,
        stats.venues.join(", "),
        out.lines,
        seconds,
        stats.records as f64 / seconds,
        out.lines as f64 / seconds,
    );
    Ok(ExitCode::SUCCESS)
}

/// Parsed batches in flight between the parse thread and ingest (each up to the replay
/// venue's batch of 1,024 events).
const PIPELINE_BATCHES: usize = 8;

/// What the parse thread hands to ingest, in capture order.
enum Parsed {
    /// A venue's first traffic: its ingest stage is built from its name and configured
    /// instruments; its batches name it by the order of these messages.
    Venue {
        venue: Venue,
        instruments: Vec<Instrument>,
    },
    Batch {
        venue: usize,
        batch: FeedBatch,
    },
}

/// The parse thread: plays the capture through the venues' sessions and sends their events
/// on; stops when ingest hangs up.
fn parse(
    file: &std::path::Path,
    only: Option<&str>,
    tx: &std::sync::mpsc::SyncSender<Parsed>,
) -> Result<replay::PlayStats, ReplayError> {
    let mut venues: Vec<Venue> = Vec::new();
    replay::play(
        file,
        only,
        |protocol: &dyn Protocol, batch: &mut FeedBatch| {
            let venue = match venues.iter().position(|v| v == protocol.venue()) {
                Some(index) => index,
                None => {
                    venues.push(protocol.venue().clone());
                    let started = Parsed::Venue {
                        venue: protocol.venue().clone(),
                        instruments: protocol.fallback_instruments(),
                    };
                    if tx.send(started).is_err() {
                        return ControlFlow::Break(());
                    }
                    venues.len() - 1
                }
            };
            let batch = std::mem::take(batch);
            match tx.send(Parsed::Batch { venue, batch }) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        },
    )
}

/// One venue's ingest stage, fed in capture order from the parse thread.
struct Running {
    ingest: VenueIngest,
    /// Ingest's resync requests; the capture already holds the live run's resyncs, so they
    /// are read and dropped (as the replay venue does).
    commands: mpsc::Receiver<Command>,
}

impl Running {
    fn new(
        venue: Venue,
        instruments: Vec<Instrument>,
        bus: &Arc<dyn Bus>,
        market: &Arc<Market>,
    ) -> Self {
        let (tx, commands) = mpsc::channel(1024);
        let ingest = VenueIngest::new(
            venue.clone(),
            instruments,
            connectors::venue::checksum_algo(venue.as_str()),
            bus.clone(),
            market.clone(),
            tx,
            Arc::new(VenueStats::new(venue)),
        );
        Self { ingest, commands }
    }

    fn drain_commands(&mut self) {
        while self.commands.try_recv().is_ok() {}
    }
}

/// Where tapped frames go.
struct Output {
    writer: BufWriter<Box<dyn Write + Send>>,
    lines: u64,
    /// The first write error; the replay stops at the next batch.
    error: Option<std::io::Error>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("lines", &self.lines)
            .finish()
    }
}

/// The in-process hub, with every publisher of a selected kind tapped.
#[derive(Debug)]
struct TapBus {
    hub: Hub,
    /// Selected channel kinds (empty: all).
    kinds: Vec<String>,
    out: Arc<Mutex<Output>>,
}

impl TapBus {
    fn selected(&self, channel: &Channel) -> bool {
        let kind = match channel.kind {
            ChannelKind::Book => "book",
            ChannelKind::Trades => "trades",
            ChannelKind::Ticker => "ticker",
            ChannelKind::Candles(_) => "candles",
            ChannelKind::Status => "status",
            _ => return false,
        };
        self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind)
    }
}

impl Bus for TapBus {
    fn publisher(&self, channel: Channel, mode: CacheMode) -> Arc<dyn Publisher> {
        let selected = self.selected(&channel);
        let inner = self.hub.publisher(channel, mode);
        if !selected {
            return inner;
        }
        let Some(topic) = self.hub.topic(inner.name()) else {
            return inner;
        };
        let rx = topic.subscribe(false).rx;
        Arc::new(Tap {
            inner,
            rx: Mutex::new(rx),
            out: self.out.clone(),
        })
    }

    fn topic(&self, name: &str) -> Option<Arc<dyn Topic>> {
        self.hub.topic(name)
    }

    fn private_publisher(&self, owner: &str) -> Arc<dyn Publisher> {
        self.hub.private_publisher(owner)
    }

    fn private_topic(&self, owner: &str) -> Arc<dyn Topic> {
        self.hub.private_topic(owner)
    }

    fn names(&self) -> Vec<String> {
        self.hub.names()
    }

    fn len(&self) -> usize {
        self.hub.len()
    }
}

/// A channel's publisher whose frames are written out as soon as they are published.
#[derive(Debug)]
struct Tap {
    inner: Arc<dyn Publisher>,
    rx: Mutex<tokio::sync::broadcast::Receiver<Frame>>,
    out: Arc<Mutex<Output>>,
}

impl Tap {
    /// Writes what the last publisher call published (at most one frame: a resync notice, a
    /// snapshot or an update).
    fn drain<T>(&self, result: T) -> T {
        let (Ok(mut rx), Ok(mut out)) = (self.rx.lock(), self.out.lock()) else {
            return result;
        };
        loop {
            match rx.try_recv() {
                Ok(frame) => {
                    if out.error.is_some() {
                        continue;
                    }
                    let written = out
                        .writer
                        .write_all(frame.text.as_bytes())
                        .and_then(|()| out.writer.write_all(b"\n"));
                    match written {
                        Ok(()) => out.lines += 1,
                        Err(error) => out.error = Some(error),
                    }
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                // Cannot happen (drained after every publisher call, which sends one frame);
                // reported rather than silently leaving a hole in the output.
                Err(TryRecvError::Lagged(n)) => {
                    out.error.get_or_insert_with(|| {
                        std::io::Error::other(format!(
                            "{}: {n} frames lost by the output tap",
                            self.inner.name()
                        ))
                    });
                }
            }
        }
        result
    }
}

impl Publisher for Tap {
    fn name(&self) -> &Arc<str> {
        self.inner.name()
    }

    fn publish(&self, msg: DataMessage) -> u64 {
        self.drain(self.inner.publish(msg))
    }

    fn book_snapshot(&self, snap: &BookSnapshot) -> Result<u64, book::BookError> {
        self.drain(self.inner.book_snapshot(snap))
    }

    fn book_delta(&self, delta: &BookDelta) -> Result<Option<u64>, book::BookError> {
        self.drain(self.inner.book_delta(delta))
    }

    fn book_stale(&self, reason: book::StaleReason) {
        self.inner.book_stale(reason);
        self.drain(());
    }

    fn book_best(&self) -> (Option<Level>, Option<Level>) {
        self.inner.book_best()
    }

    fn book_live(&self) -> bool {
        self.inner.book_live()
    }

    fn book_view(&self, depth: usize) -> Option<hub::channel::ChannelBook> {
        self.inner.book_view(depth)
    }
}
