//! [`EvmConnector`]: an EVM chain behind the [`Connector`] seam.
//!
//! At start it checks the node's chain id and reads what amounts need (each pool's
//! `token0()`/`token1()`, each token's `decimals()`, once, cached). Then, per connection:
//! subscribe to `newHeads` and one `logs` filter per followed contract, wait for the
//! acknowledgements, **backfill** over HTTP everything since the last block seen (headers in
//! batches and `eth_getLogs` by bounded block ranges, so no log is missed across a
//! disconnect), then follow the subscriptions. Any error (transport, malformed answer,
//! inconsistent chain) closes the connection; it is reopened with the shared backoff and the
//! backfill covers the gap. The [`Tracker`] lives across connections.

use super::abi::Topics;
use super::node::Http;
use super::setup::{SetupError, setup};
use super::source::Source;
use super::spec::{EvmSpec, redact_url};
use super::tracker::Tracker;
use crate::conn::backoff::{Backoff, Rng};
use crate::conn::stats::{LinkEvent, LinkStats};
use crate::{ConnectionState, Connector, ConnectorContext, ConnectorError, FeedEvent};
use model::{Decimal, Instrument, Venue};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument as _;

/// An EVM chain source. See the module docs.
#[derive(Debug)]
pub struct EvmConnector {
    spec: Arc<EvmSpec>,
    chain: Venue,
    stats: Arc<LinkStats>,
}

impl EvmConnector {
    /// Validates `spec` (errors name keys under `prefix`).
    pub fn new(spec: EvmSpec, prefix: &str) -> Result<Self, ConnectorError> {
        spec.validate(prefix)?;
        let chain = spec.chain_venue();
        Ok(Self {
            stats: Arc::new(LinkStats::new(chain.clone())),
            chain,
            spec: Arc::new(spec),
        })
    }

    pub fn spec(&self) -> &EvmSpec {
        &self.spec
    }
}

impl Connector for EvmConnector {
    fn venue(&self) -> &Venue {
        &self.chain
    }

    /// The DEX instruments (one per pool, on `{dex}-{chain}`): their trades are the only
    /// instrument data this source produces. DEX pools have no tick or lot size (0).
    fn instruments(&self) -> Vec<Instrument> {
        self.spec
            .pools
            .iter()
            .map(|p| Instrument {
                venue: self.spec.dex_venue(p.dex),
                symbol: p.symbol.clone(),
                native_symbol: p.address.to_string(),
                tick_size: Decimal::ZERO,
                lot_size: Decimal::ZERO,
            })
            .collect()
    }

    fn link_stats(&self) -> Option<Arc<LinkStats>> {
        Some(self.stats.clone())
    }

    fn run(
        self: Box<Self>,
        ctx: ConnectorContext,
    ) -> Pin<Box<dyn Future<Output = Result<(), ConnectorError>> + Send>> {
        let span = tracing::info_span!("venue", venue = %self.chain);
        Box::pin(run(*self, ctx).instrument(span))
    }
}

async fn run(connector: EvmConnector, ctx: ConnectorContext) -> Result<(), ConnectorError> {
    let EvmConnector { spec, stats, .. } = connector;
    let ConnectorContext {
        events,
        commands,
        shutdown,
    } = ctx;
    // No command applies to a chain (no books to resync); keep the receiver open.
    let _commands = commands;
    let http = Http::new(
        &spec.http_url,
        Duration::from_secs(spec.request_timeout_secs),
    )
    .map_err(|e| ConnectorError::Config(e.to_string()))?;
    let (base, cap) = spec.backoff();
    let salt = Arc::as_ptr(&stats) as u64;
    let mut backoff = Backoff::new(base, cap, Rng::from_entropy(salt).next_u64());
    let status = |state, detail: String| {
        let events = events.clone();
        async move {
            events
                .send(vec![FeedEvent::Status { state, detail }])
                .await
                .map_err(|_| ConnectorError::SinkClosed)
        }
    };

    let known = loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            result = setup(&http, &spec) => match result {
                Ok(known) => break known,
                Err(SetupError::Terminal(message)) => {
                    tracing::error!(error = %message, "EVM source cannot start");
                    status(ConnectionState::Stopped, message.clone()).await?;
                    return Err(ConnectorError::Config(message));
                }
                Err(SetupError::Retry(error)) => {
                    stats.record(LinkEvent::RestFailed {
                        what: &format!("EVM source setup ({}; retrying)", error.code()),
                        error: &error,
                    });
                    status(ConnectionState::Disconnected, error.to_string()).await?;
                }
            },
        }
        let delay = backoff.next_delay();
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
    };
    tracing::info!(
        pools = known.pools.len(),
        tokens = known.decimals.len(),
        "EVM source ready"
    );

    let mut source = Source {
        filters: spec.filters(),
        tracker: Tracker::new(spec.confirmations, spec.finality_depth),
        topics: Topics::default(),
        spec: spec.clone(),
        http,
        known,
        events: events.clone(),
        stats: stats.clone(),
        out: Vec::new(),
        notices: Vec::new(),
    };
    loop {
        status(
            ConnectionState::Connecting,
            format!("connecting to {}", redact_url(&spec.ws_url)),
        )
        .await?;
        let started = Instant::now();
        let result = source.session(&shutdown).await;
        if events.is_closed() {
            return Err(ConnectorError::SinkClosed);
        }
        let lost = match result {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        if started.elapsed() >= Duration::from_secs(spec.stable_after_secs) {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        if lost.code() == "rpc_malformed" {
            stats.record(LinkEvent::Invalid);
        }
        let reason = format!("{}: {lost}", lost.code());
        stats.record(LinkEvent::Lost {
            shard: 0,
            reason: &reason,
            delay,
        });
        status(ConnectionState::Disconnected, reason.clone()).await?;
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
    }
}
