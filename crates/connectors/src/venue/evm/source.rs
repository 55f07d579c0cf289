//! The EVM source's state across connections ([`Source`]): one session (subscribe, backfill,
//! follow), the reorg tracker, and what is sent to ingest.

use super::abi::{self, Scales, Topics};
use super::error::EvmError;
use super::node::{Http, Ws};
use super::rpc::{
    Header, Incoming, NodeLog, parse_header, parse_incoming, parse_log, parse_logs,
    parse_quantity_result, parse_subscription_id, to_quantity,
};
use super::setup::Known;
use super::spec::EvmSpec;
use super::tracker::{Emit, Linked, Tracker};
use crate::conn::stats::{LinkEvent, LinkStats};
use crate::{ChainItem, ConnectionState, FeedBatch, FeedEvent};
use model::Timestamp;
use model::onchain::{Address, ChainStatus, Hash32};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Notifications kept while waiting for the subscription acknowledgements.
const MAX_EARLY_NOTIFICATIONS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sub {
    Heads,
    Logs(usize),
}

/// The state of the source across connections.
pub(super) struct Source {
    pub(super) spec: Arc<EvmSpec>,
    pub(super) http: Http,
    pub(super) known: Known,
    pub(super) filters: Vec<(Address, Vec<Hash32>)>,
    pub(super) tracker: Tracker,
    pub(super) topics: Topics,
    pub(super) events: mpsc::Sender<FeedBatch>,
    pub(super) stats: Arc<LinkStats>,
    /// Emitted by the tracker, not yet sent.
    pub(super) out: Vec<Emit>,
    /// Status details to report after the next flush (deep reorgs, skipped blocks).
    pub(super) notices: Vec<String>,
}

pub(super) fn filter_params(address: &Address, topics: &[Hash32]) -> String {
    let mut text = format!(r#""address":"{address}""#);
    if !topics.is_empty() {
        let list: Vec<String> = topics.iter().map(|t| format!("\"{t}\"")).collect();
        text.push_str(&format!(r#","topics":[[{}]]"#, list.join(",")));
    }
    text
}

impl Source {
    pub(super) async fn session(&mut self, shutdown: &CancellationToken) -> Result<(), EvmError> {
        let spec = self.spec.clone();
        let mut ws =
            match Ws::connect(&spec.ws_url, Duration::from_secs(spec.connect_timeout_secs)).await {
                Ok(ws) => ws,
                Err(e) => {
                    // Counted here; logged by the connector, which reconnects.
                    LinkStats::bump(&self.stats.connect_failures);
                    return Err(e);
                }
            };
        self.stats.record(LinkEvent::Connected { shard: 0 });
        let mut requests: HashMap<u64, Sub> = HashMap::new();
        requests.insert(
            ws.send("eth_subscribe", r#"["newHeads"]"#).await?,
            Sub::Heads,
        );
        for (i, (address, topics)) in self.filters.iter().enumerate() {
            let params = format!(r#"["logs",{{{}}}]"#, filter_params(address, topics));
            requests.insert(ws.send("eth_subscribe", &params).await?, Sub::Logs(i));
        }
        let mut subs: HashMap<String, Sub> = HashMap::new();
        let mut early: Vec<String> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(spec.request_timeout_secs);
        while !requests.is_empty() {
            let text = tokio::select! {
                () = shutdown.cancelled() => { ws.close().await; return Ok(()); }
                r = tokio::time::timeout_at(deadline, ws.next_text()) => r.map_err(|_| {
                    EvmError::Timeout(format!("{} eth_subscribe answers missing", requests.len()))
                })??,
            };
            self.count_frame(&text);
            match parse_incoming(&text)? {
                Incoming::Response { id, result } => {
                    let sub = requests.remove(&id).ok_or_else(|| {
                        EvmError::Unexpected(format!("answer to request {id}, never sent"))
                    })?;
                    let result = result.map_err(|f| f.into_error("eth_subscribe"))?;
                    subs.insert(parse_subscription_id(result)?, sub);
                }
                Incoming::Notification { .. } => {
                    if early.len() >= MAX_EARLY_NOTIFICATIONS {
                        return Err(EvmError::Unexpected(
                            "too many notifications before the subscriptions were acknowledged"
                                .into(),
                        ));
                    }
                    early.push(text);
                }
            }
        }
        self.send_status(ConnectionState::Connected, "subscribed".into())
            .await?;
        self.backfill().await?;
        for text in early {
            self.on_text(&text, &subs).await?;
        }
        let silence = Duration::from_secs(spec.silence_secs);
        loop {
            let next = async {
                if silence.is_zero() {
                    ws.next_text().await
                } else {
                    tokio::time::timeout(silence, ws.next_text())
                        .await
                        .map_err(|_| EvmError::Timeout(format!("no message for {silence:?}")))?
                }
            };
            let text = tokio::select! {
                () = shutdown.cancelled() => { ws.close().await; return Ok(()); }
                r = next => r?,
            };
            self.count_frame(&text);
            self.on_text(&text, &subs).await?;
        }
    }

    pub(super) fn count_frame(&self, text: &str) {
        self.stats.record(LinkEvent::Frame { bytes: text.len() });
    }

    pub(super) async fn on_text(
        &mut self,
        text: &str,
        subs: &HashMap<String, Sub>,
    ) -> Result<(), EvmError> {
        match parse_incoming(text)? {
            Incoming::Notification {
                subscription,
                result,
            } => match subs.get(subscription) {
                Some(Sub::Heads) => {
                    let header = parse_header(result)?
                        .ok_or_else(|| EvmError::malformed("newHeads", "null header"))?;
                    self.feed_header(header).await?;
                }
                Some(Sub::Logs(i)) => {
                    let log = parse_log(result)?;
                    let (address, topics) = &self.filters[*i];
                    let topic_ok = topics.is_empty()
                        || log.log.topics.first().is_some_and(|t| topics.contains(t));
                    if log.log.address != *address || !topic_ok {
                        return Err(EvmError::Unexpected(format!(
                            "a log of {} on the subscription for {address}",
                            log.log.address
                        )));
                    }
                    self.feed_log(log)?;
                }
                None => {
                    return Err(EvmError::Unexpected(format!(
                        "notification for unknown subscription {:?}",
                        subscription.chars().take(80).collect::<String>()
                    )));
                }
            },
            Incoming::Response { id, .. } => {
                return Err(EvmError::Unexpected(format!(
                    "answer to request {id}, none pending"
                )));
            }
        }
        self.flush().await
    }

    /// Decodes a log (once, before the tracker keeps it) and feeds it.
    pub(super) fn feed_log(&mut self, mut node: NodeLog) -> Result<(), EvmError> {
        if !node.removed {
            let log = &node.log;
            let scales = match self.known.pools.get(&log.address) {
                Some(pool) => {
                    let (d0, d1) = if pool.base_is_token0 {
                        (pool.base_decimals, pool.quote_decimals)
                    } else {
                        (pool.quote_decimals, pool.base_decimals)
                    };
                    Scales {
                        token: None,
                        token0: Some(d0),
                        token1: Some(d1),
                    }
                }
                None => Scales {
                    token: self.known.decimals.get(&log.address).copied(),
                    ..Scales::default()
                },
            };
            match abi::decode(log, &self.topics, scales) {
                Ok(event) => node.log.event = event,
                Err(error) => {
                    self.stats.record(LinkEvent::Invalid);
                    tracing::debug!(error = %error.0, tx = %log.tx_hash, "log with a known signature did not decode; delivered raw");
                }
            }
        }
        self.tracker.on_log(node.log, node.removed, &mut self.out)
    }

    /// Feeds a header, fetching unknown parents (a reorg or skipped heads) and their logs.
    pub(super) async fn feed_header(&mut self, header: Header) -> Result<(), EvmError> {
        let reorgs_before = self.tracker.stats.reorgs;
        let limit = (self.spec.finality_depth + self.spec.backfill_range) as usize;
        let mut pending = vec![header];
        let mut fetched: Vec<Hash32> = Vec::new();
        while let Some(h) = pending.last().copied() {
            match self.tracker.on_header(h, &mut self.out)? {
                Linked::Linked => {
                    pending.pop();
                }
                Linked::DeepReorg => {
                    pending.pop();
                    let notice = format!(
                        "reorg deeper than finality_depth at block {}: confirmed events before it may be off the chain",
                        h.number
                    );
                    tracing::error!(block = h.number, "{notice}");
                    self.notices.push(notice);
                }
                Linked::MissingParent { hash, number } => {
                    if pending.len() > limit {
                        return Err(EvmError::Inconsistent(format!(
                            "no known ancestor within {limit} blocks of block {}",
                            header.number
                        )));
                    }
                    let parent = self
                        .http
                        .call(
                            "eth_getBlockByHash",
                            &format!(r#"["{hash}",false]"#),
                            parse_header,
                        )
                        .await?
                        .ok_or_else(|| EvmError::Unexpected(format!("block {hash} not found")))?;
                    if parent.hash != hash || parent.number != number {
                        return Err(EvmError::Inconsistent(format!(
                            "asked for block {hash} (number {number}), got {} (number {})",
                            parent.hash, parent.number
                        )));
                    }
                    pending.push(parent);
                    fetched.push(hash);
                }
            }
        }
        if self.tracker.stats.reorgs > reorgs_before {
            tracing::info!(block = header.number, "reorg: blocks retracted");
            fetched.push(header.hash);
        }
        // Logs of blocks that did not come through the subscriptions' usual order.
        for hash in fetched {
            if self.tracker.knows(&hash) {
                for i in 0..self.filters.len() {
                    let params = format!(
                        r#"[{{"blockHash":"{hash}",{}}}]"#,
                        filter_params(&self.filters[i].0, &self.filters[i].1)
                    );
                    let logs = self.http.call("eth_getLogs", &params, parse_logs).await?;
                    for log in logs {
                        self.feed_log(log)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Everything since the last block seen: logs of blocks not confirmed yet again (their
    /// logs may have been missed), then headers and logs of the new blocks, a bounded range
    /// at a time.
    pub(super) async fn backfill(&mut self) -> Result<(), EvmError> {
        let head = self
            .http
            .call("eth_blockNumber", "[]", |r| {
                parse_quantity_result("eth_blockNumber", r)
            })
            .await?;
        let range = self.spec.backfill_range;
        let mut from = match self.tracker.tip() {
            None => head,
            Some(tip) => tip.number + 1,
        };
        if let Some(again) = self.tracker.unconfirmed_from() {
            let mut start = again;
            while start < from.min(head + 1) {
                let end = (start + range - 1).min(from - 1).min(head);
                self.logs_by_range(start, end).await?;
                start = end + 1;
            }
            self.flush().await?;
        }
        let missed = (head + 1).saturating_sub(from);
        if missed > self.spec.max_backfill_blocks {
            let skip_to = head + 1 - self.spec.max_backfill_blocks;
            self.stats.record(LinkEvent::Gaps { n: 1 });
            let notice = format!(
                "blocks {from}..{} were not backfilled (max_backfill_blocks = {}): their events are lost",
                skip_to.saturating_sub(1),
                self.spec.max_backfill_blocks
            );
            tracing::warn!("{notice}");
            self.tracker.restart(&mut self.out);
            self.notices.push(notice);
            from = skip_to;
        }
        let mut start = from;
        while start <= head {
            let end = (start + range - 1).min(head);
            let params: Vec<String> = (start..=end)
                .map(|n| format!(r#"["{}",false]"#, to_quantity(n)))
                .collect();
            let headers = self
                .http
                .batch("eth_getBlockByNumber", &params, parse_header)
                .await?;
            let mut logs: HashMap<Hash32, Vec<NodeLog>> = HashMap::new();
            for (address, topics) in &self.filters {
                let params = format!(
                    r#"[{{"fromBlock":"{}","toBlock":"{}",{}}}]"#,
                    to_quantity(start),
                    to_quantity(end),
                    filter_params(address, topics)
                );
                for log in self.http.call("eth_getLogs", &params, parse_logs).await? {
                    logs.entry(log.log.block_hash).or_default().push(log);
                }
            }
            for (n, header) in (start..=end).zip(headers) {
                let header =
                    header.ok_or_else(|| EvmError::Unexpected(format!("block {n} not found")))?;
                if header.number != n {
                    return Err(EvmError::Inconsistent(format!(
                        "asked for block {n}, got block {}",
                        header.number
                    )));
                }
                self.feed_header(header).await?;
                for log in logs.remove(&header.hash).unwrap_or_default() {
                    self.feed_log(log)?;
                }
                self.flush().await?;
            }
            // Logs of blocks that are not among these headers (the chain moved between the
            // two requests): the tracker keeps them until their block shows up, or drops them.
            for log in logs.into_values().flatten() {
                self.feed_log(log)?;
            }
            self.flush().await?;
            start = end + 1;
        }
        Ok(())
    }

    pub(super) async fn logs_by_range(&mut self, start: u64, end: u64) -> Result<(), EvmError> {
        for i in 0..self.filters.len() {
            let params = format!(
                r#"[{{"fromBlock":"{}","toBlock":"{}",{}}}]"#,
                to_quantity(start),
                to_quantity(end),
                filter_params(&self.filters[i].0, &self.filters[i].1)
            );
            for log in self.http.call("eth_getLogs", &params, parse_logs).await? {
                self.feed_log(log)?;
            }
        }
        Ok(())
    }

    /// Sends what the tracker emitted (with the trades of confirmed swaps) as one batch.
    pub(super) async fn flush(&mut self) -> Result<(), EvmError> {
        if !self.out.is_empty() {
            let recv_ts = Timestamp::now();
            let mut items = Vec::with_capacity(self.out.len());
            for item in self.out.drain(..) {
                let trade = match &item {
                    ChainItem::Log(log) if log.status == ChainStatus::Confirmed => {
                        self.known.pools.get(&log.address).and_then(|pool| {
                            match pool.trade(log, &self.topics, recv_ts) {
                                Ok(trade) => trade.map(|trade| ChainItem::Trade {
                                    venue: self.spec.dex_venue(pool.spec.dex),
                                    symbol: pool.spec.symbol.clone(),
                                    trade,
                                }),
                                Err(error) => {
                                    self.stats.record(LinkEvent::Invalid);
                                    tracing::warn!(error = %error, tx = %log.tx_hash, "swap not representable as a trade");
                                    None
                                }
                            }
                        })
                    }
                    _ => None,
                };
                if let ChainItem::Block(block) = &item
                    && block.status != ChainStatus::Retracted
                {
                    self.stats.lag(block.ts, recv_ts);
                }
                items.push(item);
                items.extend(trade);
            }
            self.events
                .send(vec![FeedEvent::Chain(items)])
                .await
                .map_err(|_| EvmError::Transport("ingest stopped".into()))?;
        }
        for notice in std::mem::take(&mut self.notices) {
            self.send_status(ConnectionState::Connected, notice).await?;
        }
        Ok(())
    }

    pub(super) async fn send_status(
        &self,
        state: ConnectionState,
        detail: String,
    ) -> Result<(), EvmError> {
        self.events
            .send(vec![FeedEvent::Status { state, detail }])
            .await
            .map_err(|_| EvmError::Transport("ingest stopped".into()))
    }
}
