//! [`WsConnector`]: runs a venue [`Protocol`] behind the [`Connector`] seam.

use super::driver::Shard;
use super::record::{RecordKind, Recorder};
use super::rest::RestClient;
use super::stats::{LinkEvent, LinkStats};
use super::status::StatusBoard;
use super::venue_protocol::Protocol;
use crate::{Command, Connector, ConnectorContext, ConnectorError, FeedEvent};
use model::{Instrument, Symbol, Timestamp, Venue};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument as _;

/// Commands buffered per shard (resyncs; ingest retries any that do not fit).
const SHARD_COMMANDS: usize = 64;
/// Time allowed for the instrument metadata request at start.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// A WebSocket venue: one task per shard of symbols, plus a router for resync commands.
///
/// On start it fetches the venue's instrument metadata (falling back to the config), then
/// connects every shard. Each shard keeps its own connection, session and backoff, so a
/// problem on one connection never touches the books of another.
#[derive(Debug)]
pub struct WsConnector {
    protocol: Arc<dyn Protocol>,
    stats: Arc<LinkStats>,
    recorder: Option<Recorder>,
}

impl WsConnector {
    pub fn new(protocol: Arc<dyn Protocol>) -> Self {
        let stats = Arc::new(LinkStats::new(protocol.venue().clone()));
        Self {
            protocol,
            stats,
            recorder: None,
        }
    }

    /// Records every frame and REST answer this connector receives.
    pub fn with_recorder(mut self, recorder: Recorder) -> Self {
        recorder.record(
            self.protocol.venue().as_str(),
            0,
            Timestamp::now(),
            RecordKind::venue(self.protocol.spec()),
        );
        self.recorder = Some(recorder);
        self
    }

    pub fn protocol(&self) -> &Arc<dyn Protocol> {
        &self.protocol
    }
}

impl Connector for WsConnector {
    fn venue(&self) -> &Venue {
        self.protocol.venue()
    }

    fn instruments(&self) -> Vec<Instrument> {
        self.protocol.fallback_instruments()
    }

    fn link_stats(&self) -> Option<Arc<LinkStats>> {
        Some(self.stats.clone())
    }

    fn run(
        self: Box<Self>,
        ctx: ConnectorContext,
    ) -> Pin<Box<dyn Future<Output = Result<(), ConnectorError>> + Send>> {
        let span = tracing::info_span!("venue", venue = %self.protocol.venue());
        Box::pin(run(*self, ctx).instrument(span))
    }
}

async fn run(connector: WsConnector, ctx: ConnectorContext) -> Result<(), ConnectorError> {
    let WsConnector {
        protocol,
        stats,
        recorder,
    } = connector;
    let ConnectorContext {
        events,
        mut commands,
        shutdown,
    } = ctx;
    let settings = protocol.settings();
    let rest = RestClient::new(Duration::from_secs(settings.connect_timeout_secs.max(5)))
        .map_err(ConnectorError::Connection)?;

    let urls = protocol.instruments_urls();
    if !urls.is_empty() {
        let mut bodies = Vec::with_capacity(urls.len());
        let mut fetched = Ok(String::new());
        for url in &urls {
            let one = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                r = tokio::time::timeout(METADATA_TIMEOUT, rest.get(url)) => r.unwrap_or_else(|_| Err("timed out".into())),
            };
            match one {
                Ok(body) => bodies.push(body),
                Err(error) => {
                    fetched = Err(error);
                    break;
                }
            }
        }
        if fetched.is_ok() {
            fetched = Ok(match bodies.len() {
                1 => bodies.remove(0),
                _ => format!("[{}]", bodies.join(",")),
            });
        }
        if let Some(recorder) = &recorder {
            recorder.record(
                protocol.venue().as_str(),
                0,
                Timestamp::now(),
                RecordKind::Instruments {
                    body: fetched.as_ref().ok().cloned(),
                },
            );
        }
        match fetched.and_then(|body| protocol.parse_instruments(&body).map_err(|e| e.to_string()))
        {
            Ok(list) => {
                tracing::info!(
                    count = list.len(),
                    "instrument metadata loaded from the venue"
                );
                events
                    .send(vec![FeedEvent::Instruments(list)])
                    .await
                    .map_err(|_| ConnectorError::SinkClosed)?;
            }
            Err(error) => {
                stats.record(LinkEvent::RestFailed {
                    what: "the instrument metadata request (using the configured tick and lot sizes)",
                    error: &error,
                });
            }
        }
    }

    let shards = protocol.shards();
    let board = Arc::new(StatusBoard::new(shards.len()));
    let mut routes: HashMap<Symbol, mpsc::Sender<Command>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let count = shards.len();
    for (index, symbols) in shards.into_iter().enumerate() {
        let (tx, rx) = mpsc::channel(SHARD_COMMANDS);
        for symbol in &symbols {
            routes.insert(symbol.clone(), tx.clone());
        }
        let shard = Shard {
            protocol: protocol.clone(),
            index,
            count,
            symbols,
            events: events.clone(),
            commands: rx,
            shutdown: shutdown.clone(),
            board: board.clone(),
            stats: stats.clone(),
            rest: rest.clone(),
            recorder: recorder.clone(),
            seed: index as u64,
            active_conn: 0,
        };
        let span = tracing::info_span!("connection", shard = index);
        tasks.spawn(shard.run().instrument(span));
    }
    drop(recorder);
    drop(events);

    let mut result = Ok(());
    let mut commands_open = true;
    loop {
        tokio::select! {
            () = shutdown.cancelled(), if commands_open => {}
            command = commands.recv(), if commands_open => match command {
                Some(Command::Resync(symbol)) => match routes.get(&symbol) {
                    // A full queue means a resync is already on its way; ingest retries.
                    Some(route) => { let _ = route.try_send(Command::Resync(symbol)); }
                    None => tracing::debug!(%symbol, "resync for a symbol this venue does not serve"),
                },
                None => commands_open = false,
            },
            done = tasks.join_next() => match done {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(error))) => {
                    shutdown_all(&mut tasks);
                    result = Err(error);
                }
                Some(Err(error)) => {
                    tracing::error!(error = %error, "a connection task failed");
                    shutdown_all(&mut tasks);
                    result = Err(ConnectorError::Task(error));
                }
            },
        }
        if shutdown.is_cancelled() {
            commands_open = false;
        }
    }
    result
}

fn shutdown_all(tasks: &mut JoinSet<Result<(), ConnectorError>>) {
    tasks.abort_all();
}
