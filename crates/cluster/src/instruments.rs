//! Instrument metadata across the cluster: the ingest that owns a venue learns its instruments
//! (native symbols, tick and lot sizes) from the venue's REST endpoint or the config, and
//! writes them to the KV bucket `<prefix>_INSTR`, one key per venue (`venue.<name>`, escaped
//! like the lease keys) holding the JSON list of the venue's instruments. An edge runs no
//! connector, so it learns them here: it reads every key's last value at start and follows
//! changes, and serves them on `/v1/instruments` and the REST history checks like a single
//! node.
//!
//! - Only the owner of a venue's lease writes its key (a standby holds the same list, and writes
//!   it once it takes over). A key is rewritten only when the list changed, so a restart or a
//!   takeover costs one write per venue.
//! - Values never expire: an instrument stays known to the edges while the ingest is down (the
//!   books go stale; the metadata does not). An instrument an ingest stops serving stays listed
//!   until the venue's key is rewritten (the next change of that venue's list replaces it).
//! - An edge checks every value: a list that does not parse or names another venue than its key
//!   is counted (`invalid`), logged with `cluster_bad_message`, and changes nothing.

use crate::forwarder::Gate;
use crate::{ClusterError, ClusterOptions};
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use model::Instrument;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the ingest compares its instruments with what it last wrote.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// How long an edge waits before watching the bucket again after NATS refused or ended it.
const REWATCH_DELAY: Duration = Duration::from_secs(1);

/// Counters of the instrument board (for `/metrics`).
#[derive(Debug, Default)]
pub struct InstrumentStats {
    /// Venue lists written (ingest).
    pub published: AtomicU64,
    /// Venue lists applied (edge).
    pub applied: AtomicU64,
    /// Values that could not be read or named another venue than their key (edge).
    pub invalid: AtomicU64,
    /// Writes or watches NATS refused (both; retried).
    pub errors: AtomicU64,
}

/// The cluster's instrument bucket: the existing one, or created (values never expire).
pub async fn bucket(
    js: &jetstream::Context,
    options: &ClusterOptions,
) -> Result<kv::Store, ClusterError> {
    let names = options.names()?;
    crate::lease::kv_bucket(
        js,
        &names.instruments_bucket(),
        "instrument bucket",
        Duration::ZERO,
    )
    .await
}

/// Where an ingest reads the instruments it serves now (every venue, any order).
pub type Source = Arc<dyn Fn() -> Vec<Instrument> + Send + Sync>;

/// Where an edge puts what it learns: one venue's whole list at a time.
pub type Sink = Arc<dyn Fn(Vec<Instrument>) + Send + Sync>;

/// Ingest side: every [`PUBLISH_INTERVAL`], writes the list of each venue `gate` allows whose
/// list changed since this node last wrote it. Runs until `shutdown`.
pub async fn start_publisher(
    client: async_nats::Client,
    options: &ClusterOptions,
    source: Source,
    gate: Arc<dyn Gate>,
    shutdown: CancellationToken,
) -> Result<Arc<InstrumentStats>, ClusterError> {
    let store = bucket(&jetstream::new(client), options).await?;
    let stats = Arc::new(InstrumentStats::default());
    let counters = stats.clone();
    tokio::spawn(async move {
        let mut written: HashMap<String, Bytes> = HashMap::new();
        let mut failing = false;
        let mut tick = tokio::time::interval(PUBLISH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let lists = by_venue(source());
            // A venue this node does not own now is written again once it is (another owner
            // may have written it meanwhile).
            written.retain(|venue, _| gate.allowed(venue));
            let mut ok = true;
            for (venue, list) in lists {
                if !gate.allowed(&venue) {
                    continue;
                }
                let value = match serde_json::to_vec(&list) {
                    Ok(value) => Bytes::from(value),
                    Err(error) => {
                        tracing::error!(venue = %venue, error = %error, "instrument list did not serialize");
                        continue;
                    }
                };
                if written.get(&venue) == Some(&value) {
                    continue;
                }
                match store.put(crate::lease::key(&venue), value.clone()).await {
                    Ok(_) => {
                        counters.published.fetch_add(1, Ordering::Relaxed);
                        written.insert(venue, value);
                    }
                    Err(error) => {
                        ok = false;
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        if !failing {
                            tracing::warn!(venue = %venue, error = %error, code = "cluster_jetstream",
                                "instrument list not written to the bus; retrying every second");
                        }
                    }
                }
            }
            if ok && failing {
                tracing::info!("instrument lists written to the bus again");
            }
            failing = !ok;
        }
    });
    Ok(stats)
}

/// Groups instruments by venue, each list sorted by symbol (so equal sets serialize equally).
fn by_venue(instruments: Vec<Instrument>) -> BTreeMap<String, Vec<Instrument>> {
    let mut lists: BTreeMap<String, Vec<Instrument>> = BTreeMap::new();
    for instrument in instruments {
        lists
            .entry(instrument.venue.as_str().to_string())
            .or_default()
            .push(instrument);
    }
    for list in lists.values_mut() {
        list.sort_by(|a, b| a.symbol.as_str().cmp(b.symbol.as_str()));
    }
    lists
}

/// Reads one bucket value: the venue's list, or why it is refused.
pub fn decode(key: &str, value: &[u8]) -> Result<Vec<Instrument>, ClusterError> {
    let list: Vec<Instrument> =
        serde_json::from_slice(value).map_err(|_| ClusterError::BadMessage {
            what: "instrument list is not a JSON list of instruments",
        })?;
    if list
        .iter()
        .any(|i| crate::lease::key(i.venue.as_str()) != key)
    {
        return Err(ClusterError::BadMessage {
            what: "instrument list names another venue than its key",
        });
    }
    Ok(list)
}

/// Edge side: applies every venue's last list, then each change, to `sink`; watches again after
/// NATS ends or refuses the watch. Runs until `shutdown`.
pub fn start_watcher(
    client: async_nats::Client,
    options: ClusterOptions,
    sink: Sink,
    shutdown: CancellationToken,
) -> Arc<InstrumentStats> {
    let stats = Arc::new(InstrumentStats::default());
    let counters = stats.clone();
    tokio::spawn(async move {
        let js = jetstream::new(client);
        loop {
            let watched = tokio::select! {
                () = shutdown.cancelled() => return,
                watched = watch(&js, &options, &sink, &counters) => watched,
            };
            if let Err(error) = watched {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %error, code = error.code(),
                    "instrument watch failed; retrying in 1 s");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(REWATCH_DELAY) => {}
            }
        }
    });
    stats
}

async fn watch(
    js: &jetstream::Context,
    options: &ClusterOptions,
    sink: &Sink,
    stats: &InstrumentStats,
) -> Result<(), ClusterError> {
    let store = bucket(js, options).await?;
    let mut entries = store
        .watch_with_history(">")
        .await
        .map_err(|e| ClusterError::JetStream {
            what: "instrument watch",
            source: e.into(),
        })?;
    while let Some(entry) = entries.next().await {
        let entry = entry.map_err(|e| ClusterError::JetStream {
            what: "instrument watch",
            source: e.into(),
        })?;
        if entry.operation != kv::Operation::Put {
            continue;
        }
        match decode(&entry.key, &entry.value) {
            Ok(list) => {
                stats.applied.fetch_add(1, Ordering::Relaxed);
                sink(list);
            }
            Err(error) => {
                stats.invalid.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key = %entry.key, error = %error, code = error.code(),
                    "instrument list on the bus refused");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Symbol, Venue, parse_decimal};

    fn instrument(venue: &str, symbol: &str) -> Instrument {
        Instrument {
            venue: Venue::new(venue).expect("venue"),
            symbol: Symbol::new(symbol).expect("symbol"),
            native_symbol: symbol.replace('-', ""),
            tick_size: parse_decimal("0.01").expect("decimal"),
            lot_size: parse_decimal("0.0001").expect("decimal"),
        }
    }

    #[test]
    fn lists_are_grouped_by_venue_and_sorted_so_equal_sets_serialize_equally() {
        let a = by_venue(vec![
            instrument("okx", "ETH-USDT"),
            instrument("binance", "BTC-USDT"),
            instrument("okx", "BTC-USDT"),
        ]);
        let b = by_venue(vec![
            instrument("okx", "BTC-USDT"),
            instrument("okx", "ETH-USDT"),
            instrument("binance", "BTC-USDT"),
        ]);
        assert_eq!(a.keys().collect::<Vec<_>>(), ["binance", "okx"]);
        assert_eq!(
            serde_json::to_vec(&a["okx"]).unwrap(),
            serde_json::to_vec(&b["okx"]).unwrap()
        );
        assert_eq!(a["okx"][0].symbol.as_str(), "BTC-USDT");
    }

    #[test]
    fn a_value_is_refused_unless_it_is_a_list_of_its_key_venue() {
        let list = serde_json::to_vec(&vec![instrument("okx", "BTC-USDT")]).unwrap();
        assert_eq!(decode("venue.okx", &list).unwrap().len(), 1);
        let refused = |key: &str, value: &[u8]| decode(key, value).unwrap_err().code();
        assert_eq!(refused("venue.binance", &list), "cluster_bad_message");
        assert_eq!(refused("venue.okx", b"not json"), "cluster_bad_message");
        assert_eq!(
            refused("venue.okx", b"{\"venue\":\"okx\"}"),
            "cluster_bad_message"
        );
        let bad_symbol = br#"[{"venue":"okx","symbol":"btc usdt","native_symbol":"x","tick_size":"0.1","lot_size":"1"}]"#;
        assert_eq!(refused("venue.okx", bad_symbol), "cluster_bad_message");
    }
}
