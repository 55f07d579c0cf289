//! The ingest task of an EVM source: blocks and logs to their `onchain.*` channels, DEX
//! trades to their venues' trades channels (with tickers, candles and history, exactly like
//! a market venue's trades), connection states to `status:{chain}`.

use crate::market::Market;
use crate::pipeline::VenueIngest;
use crate::runner::{COMMAND_QUEUE, EVENT_QUEUE, VenueHandle};
use crate::stats::VenueStats;
use book::ChecksumAlgo;
use connectors::venue::evm::EvmConnector;
use connectors::{ChainItem, Connector, ConnectorContext, FeedBatch, FeedEvent};
use hub::{Bus, CacheMode, Publisher};
use model::onchain::{Address, ChainBlock, ChainLog};
use model::{Channel, Instrument, Timestamp, Venue};
use protocol::DataMessage;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use store::HistorySink;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Publishes one chain's items. Each `FeedEvent::Chain` batch becomes at most one update on
/// `onchain.blocks:{chain}` and one per contract on `onchain.logs:{chain}:{contract}`, in the
/// order the source decided (so a retraction never overtakes what it retracts).
#[derive(Debug)]
pub struct ChainIngest {
    chain: Venue,
    hub: Arc<dyn Bus>,
    /// The chain's own venue: only its `status:{chain}` channel (it has no instruments).
    venue: VenueIngest,
    blocks: Arc<dyn Publisher>,
    logs: HashMap<Address, Arc<dyn Publisher>>,
    /// One ingest per DEX venue, fed the trades of its pools.
    dex: BTreeMap<Venue, VenueIngest>,
    stats: Arc<VenueStats>,
}

impl ChainIngest {
    /// Registers the chain's channels: blocks, one logs channel per followed contract, and the
    /// DEX venues' instrument channels (`instruments` are the connector's pools).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        chain: Venue,
        contracts: &[Address],
        instruments: Vec<Instrument>,
        hub: Arc<dyn Bus>,
        market: Arc<Market>,
        commands: mpsc::Sender<connectors::Command>,
        stats: Arc<VenueStats>,
        history: Option<HistorySink>,
    ) -> Self {
        let with_history = |ingest: VenueIngest| match &history {
            Some(sink) => ingest.with_history(sink.clone()),
            None => ingest,
        };
        let mut by_venue: BTreeMap<Venue, Vec<Instrument>> = BTreeMap::new();
        for instrument in instruments {
            by_venue
                .entry(instrument.venue.clone())
                .or_default()
                .push(instrument);
        }
        let dex = by_venue
            .into_iter()
            .map(|(venue, list)| {
                let ingest = VenueIngest::new(
                    venue.clone(),
                    list,
                    ChecksumAlgo::None,
                    hub.clone(),
                    market.clone(),
                    commands.clone(),
                    stats.clone(),
                );
                (venue, with_history(ingest))
            })
            .collect();
        let venue = VenueIngest::new(
            chain.clone(),
            Vec::new(),
            ChecksumAlgo::None,
            hub.clone(),
            market,
            commands,
            stats.clone(),
        );
        let blocks = hub.publisher(Channel::onchain_blocks(chain.clone()), CacheMode::None);
        let mut this = Self {
            chain,
            hub,
            venue,
            blocks,
            logs: HashMap::new(),
            dex,
            stats,
        };
        for contract in contracts {
            this.logs_channel(contract);
        }
        this
    }

    fn logs_channel(&mut self, contract: &Address) -> Arc<dyn Publisher> {
        let (hub, chain) = (&self.hub, &self.chain);
        self.logs
            .entry(*contract)
            .or_insert_with(|| {
                hub.publisher(
                    Channel::onchain_logs(chain.clone(), *contract),
                    CacheMode::None,
                )
            })
            .clone()
    }

    /// Runs until shutdown or until the connector's event channel closes.
    pub async fn run(mut self, mut events: mpsc::Receiver<FeedBatch>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                batch = events.recv() => match batch {
                    Some(batch) => self.handle_batch(batch),
                    None => break,
                },
                _ = tick.tick() => {
                    let now = Timestamp::now();
                    self.dex.values_mut().for_each(|d| d.on_tick(now));
                }
            }
        }
        let now = Timestamp::now();
        for dex in self.dex.values_mut() {
            dex.persist_open_candles(now);
        }
        self.venue.handle_batch(vec![FeedEvent::Status {
            state: connectors::ConnectionState::Stopped,
            detail: "ingest stopped".into(),
        }]);
    }

    /// Publishes a batch: on-chain items to their channels, everything else (connection
    /// states) through the chain's own venue.
    pub fn handle_batch(&mut self, batch: FeedBatch) {
        let mut rest = Vec::new();
        for event in batch {
            match event {
                FeedEvent::Chain(items) => self.on_items(items),
                other => rest.push(other),
            }
        }
        if !rest.is_empty() {
            self.venue.handle_batch(rest);
        }
    }

    fn on_items(&mut self, items: Vec<ChainItem>) {
        let recv_ts = Timestamp::now();
        let mut ts = Timestamp(0);
        let mut blocks: Vec<ChainBlock> = Vec::new();
        let mut logs: Vec<(Address, Vec<ChainLog>)> = Vec::new();
        let mut trades: BTreeMap<Venue, FeedBatch> = BTreeMap::new();
        for item in items {
            match item {
                ChainItem::Block(block) => {
                    ts = ts.max(block.ts);
                    blocks.push(block);
                }
                ChainItem::Log(log) => {
                    ts = ts.max(log.block_ts);
                    match logs.iter_mut().find(|(a, _)| *a == log.address) {
                        Some((_, list)) => list.push(log),
                        None => logs.push((log.address, vec![log])),
                    }
                }
                ChainItem::Trade {
                    venue,
                    symbol,
                    trade,
                } => trades
                    .entry(venue)
                    .or_default()
                    .push(FeedEvent::Trade { symbol, trade }),
            }
        }
        if !blocks.is_empty() {
            self.blocks.publish(DataMessage {
                ts: ts.0,
                recv_ts: recv_ts.0,
                blocks: Some(blocks),
                ..Default::default()
            });
        }
        for (address, list) in logs {
            self.logs_channel(&address).publish(DataMessage {
                ts: ts.0,
                recv_ts: recv_ts.0,
                logs: Some(list),
                ..Default::default()
            });
        }
        for (venue, batch) in trades {
            match self.dex.get_mut(&venue) {
                Some(dex) => dex.handle_batch(batch),
                None => {
                    self.stats.invalid_messages.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(chain = %self.chain, venue = %venue, "trade for a DEX venue this chain does not serve");
                }
            }
        }
    }
}

/// Spawns an EVM source and its ingest task. With `history`, DEX trades and closed candles
/// are stored like any venue's.
pub fn spawn_chain(
    connector: EvmConnector,
    hub: Arc<dyn Bus>,
    market: Arc<Market>,
    history: Option<HistorySink>,
    shutdown: CancellationToken,
) -> VenueHandle {
    let chain = connector.venue().clone();
    let link = connector.link_stats();
    let contracts: Vec<Address> = connector.spec().filters().iter().map(|f| f.0).collect();
    let stats = Arc::new(VenueStats::new(chain.clone()));
    let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
    let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let ingest = ChainIngest::new(
        chain.clone(),
        &contracts,
        connector.instruments(),
        hub,
        market,
        command_tx,
        stats.clone(),
        history,
    );
    let ctx = ConnectorContext {
        events: event_tx,
        commands: command_rx,
        shutdown: shutdown.clone(),
    };
    let connector = tokio::spawn(async move {
        match Box::new(connector).run(ctx).await {
            Ok(()) => tracing::info!(venue = %chain, "connector stopped"),
            Err(error) => tracing::error!(venue = %chain, error = %error, "connector failed"),
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
