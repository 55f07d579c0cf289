//! Starting a venue: its connector task and its ingest task, joined by bounded channels.

use crate::market::Market;
use crate::pipeline::VenueIngest;
use crate::stats::VenueStats;
use book::ChecksumAlgo;
use connectors::{Connector, ConnectorContext};
use hub::Bus;
use std::sync::Arc;
use store::HistorySink;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Batches buffered between a connector and its ingest task.
pub(crate) const EVENT_QUEUE: usize = 1024;
/// Commands buffered from ingest to a connector (one resync per symbol at most is useful).
pub(crate) const COMMAND_QUEUE: usize = 256;

/// A running venue.
#[derive(Debug)]
pub struct VenueHandle {
    pub stats: Arc<VenueStats>,
    /// The connector's link counters, if it keeps any.
    pub link: Option<Arc<connectors::conn::stats::LinkStats>>,
    pub connector: JoinHandle<()>,
    pub ingest: JoinHandle<()>,
}

/// Spawns `connector` and its ingest task on the current runtime. With `history`, the venue's
/// trades and closed candles are also handed to the history writer.
pub fn spawn_venue(
    connector: Box<dyn Connector>,
    checksum: ChecksumAlgo,
    hub: Arc<dyn Bus>,
    market: Arc<Market>,
    history: Option<HistorySink>,
    shutdown: CancellationToken,
) -> VenueHandle {
    let venue = connector.venue().clone();
    let link = connector.link_stats();
    let stats = Arc::new(VenueStats::new(venue.clone()));
    let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
    let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let mut ingest = VenueIngest::new(
        venue.clone(),
        connector.instruments(),
        checksum,
        hub,
        market,
        command_tx,
        stats.clone(),
    );
    if let Some(sink) = history {
        ingest = ingest.with_history(sink);
    }
    let ctx = ConnectorContext {
        events: event_tx,
        commands: command_rx,
        shutdown: shutdown.clone(),
    };
    let connector = tokio::spawn(async move {
        match connector.run(ctx).await {
            Ok(()) => tracing::info!(venue = %venue, "connector stopped"),
            Err(error) => tracing::error!(venue = %venue, error = %error, "connector failed"),
        }
    });
    let ingest = tokio::spawn(ingest.run(event_rx, shutdown));
    VenueHandle {
        stats,
        link,
        connector,
        ingest,
    }
}
