//! [`SimConnector`]: paces the [`SimFeed`] in time behind the [`Connector`] seam.

use super::{SimConfig, SimFeed, VENUE};
use crate::{
    Command, ConnectionState, Connector, ConnectorContext, ConnectorError, FeedBatch, FeedEvent,
};
use model::{Instrument, Timestamp, Venue};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, info, warn};

/// Shortest pause between batches: at high rates every event due within it goes out as one
/// batch, so a million events per second cost about a thousand channel sends.
const TICK: Duration = Duration::from_millis(1);

/// Most market events in one batch. When more are due (the machine or the consumer cannot keep
/// up), the excess is skipped rather than owed: the sim then runs as fast as it can, and never
/// builds a backlog that would burst out later.
const MAX_BATCH: u64 = 16_384;

/// The simulated venue as a [`Connector`].
///
/// On start it sends `Status { Connected }`, the instruments and one snapshot per symbol, then
/// market events at `rate` per second per symbol: one at a time with sleeps in between at low
/// rates, in batches every millisecond at high rates. All events of a batch carry the time the
/// batch was generated as both `exchange_ts` and `recv_ts`. `Command::Resync(symbol)` is
/// answered with a snapshot of that symbol's true book; other symbols are not touched.
#[derive(Debug)]
pub struct SimConnector {
    config: SimConfig,
    venue: Venue,
    instruments: Vec<Instrument>,
}

impl SimConnector {
    /// Validates `config`; errors name the offending key.
    pub fn new(config: SimConfig) -> Result<Self, ConnectorError> {
        let instruments = SimFeed::new(&config)?.instruments();
        Ok(Self {
            config,
            venue: super::venue(),
            instruments,
        })
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }
}

impl Connector for SimConnector {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    fn instruments(&self) -> Vec<Instrument> {
        self.instruments.clone()
    }

    fn run(
        self: Box<Self>,
        ctx: ConnectorContext,
    ) -> Pin<Box<dyn Future<Output = Result<(), ConnectorError>> + Send>> {
        let span = tracing::info_span!("venue", venue = VENUE);
        Box::pin(run(self.config, ctx).instrument(span))
    }
}

async fn run(config: SimConfig, ctx: ConnectorContext) -> Result<(), ConnectorError> {
    let ConnectorContext {
        events,
        mut commands,
        shutdown,
    } = ctx;
    let mut feed = SimFeed::new(&config)?;
    let symbols = feed.market().symbol_count();
    // Market events per second over all symbols.
    let rate = config.rate * symbols as f64;
    info!(
        seed = config.seed,
        symbols,
        rate = config.rate,
        "simulated market started"
    );

    let now = Timestamp::now();
    let mut hello = Vec::with_capacity(2 + symbols);
    hello.push(FeedEvent::Status {
        state: ConnectionState::Connected,
        detail: format!(
            "simulated market, seed {}, {symbols} symbols at {} events/s each",
            config.seed, config.rate
        ),
    });
    hello.push(FeedEvent::Instruments(feed.instruments()));
    for index in 0..symbols {
        hello.push(feed.snapshot_at(index, now));
    }
    if !send(&events, &shutdown, hello).await? {
        return Ok(());
    }

    let start = Instant::now();
    let mut generated: u64 = 0;
    let mut commands_open = true;
    loop {
        // Events due by now, counted from the start so that rounding never accumulates.
        let due_total = (start.elapsed().as_secs_f64() * rate) as u64;
        let mut due = due_total.saturating_sub(generated);
        let behind = due > MAX_BATCH;
        if behind {
            generated = due_total - MAX_BATCH;
            due = MAX_BATCH;
        }
        if due > 0 {
            // Sized for the worst case of a trade (two events) per market event.
            let mut batch = Vec::with_capacity(due as usize * 2);
            feed.generate(due as usize, Timestamp::now(), &mut batch);
            generated += due;
            if !batch.is_empty() && !send(&events, &shutdown, batch).await? {
                return Ok(());
            }
        }
        let wake = if behind {
            Instant::now()
        } else {
            // Rates far below one event per second can put the next event beyond any Instant.
            let next_due = Duration::try_from_secs_f64((generated + 1) as f64 / rate)
                .ok()
                .and_then(|offset| start.checked_add(offset))
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
            next_due.max(Instant::now() + TICK)
        };
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok(()),
            () = events.closed() => return Err(ConnectorError::SinkClosed),
            command = commands.recv(), if commands_open => match command {
                Some(Command::Resync(symbol)) => {
                    match feed.snapshot(&symbol, Timestamp::now()) {
                        Some(snapshot) => {
                            info!(%symbol, "resync: sending a fresh snapshot");
                            if !send(&events, &shutdown, vec![snapshot]).await? {
                                return Ok(());
                            }
                        }
                        None => warn!(%symbol, "resync requested for a symbol the sim does not run"),
                    }
                }
                None => commands_open = false,
            },
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// Sends one batch, waiting while ingest is behind. `Ok(false)` means shutdown was requested
/// meanwhile; a closed receiver is [`ConnectorError::SinkClosed`].
async fn send(
    events: &mpsc::Sender<FeedBatch>,
    shutdown: &CancellationToken,
    batch: FeedBatch,
) -> Result<bool, ConnectorError> {
    tokio::select! {
        biased;
        () = shutdown.cancelled() => Ok(false),
        sent = events.send(batch) => sent.map(|()| true).map_err(|_| ConnectorError::SinkClosed),
    }
}
