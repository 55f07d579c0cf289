//! What the gateway knows about each instrument, shared with the REST API.

use crate::candles::CandleAgg;
use crate::ticker::TickerAgg;
use hub::Publisher;
use model::{Funding, Instrument, Symbol, Timestamp, Venue};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Aggregates the ingest stage maintains for one instrument.
#[derive(Debug, Default)]
pub struct Aggregates {
    pub ticker: TickerAgg,
    pub candles: CandleAgg,
    /// The latest funding of a perpetual and when it was received (what `funding:all`
    /// compares); `None` for spot and before the venue's first funding message.
    pub funding: Option<(Funding, Timestamp)>,
}

/// One served instrument.
#[derive(Debug)]
pub struct InstrumentEntry {
    pub instrument: RwLock<Instrument>,
    /// Written by the instrument's venue ingest task (once per batch), read by REST.
    pub aggregates: Mutex<Aggregates>,
    /// The instrument's book, through its one owner (the venue ingest task's publisher), set
    /// when the task registers the instrument; the consolidator reads member books here.
    pub book: OnceLock<Arc<dyn Publisher>>,
}

/// Every instrument the gateway serves, by venue and symbol.
#[derive(Debug, Default)]
pub struct Market {
    entries: RwLock<BTreeMap<(Venue, Symbol), Arc<InstrumentEntry>>>,
}

impl Market {
    /// Adds the instrument, or refreshes its metadata if it is already known.
    pub fn upsert(&self, instrument: Instrument) -> Arc<InstrumentEntry> {
        let key = (instrument.venue.clone(), instrument.symbol.clone());
        if let Some(entry) = self.entries.read().get(&key) {
            *entry.instrument.write() = instrument;
            return entry.clone();
        }
        self.entries
            .write()
            .entry(key)
            .or_insert_with(|| {
                Arc::new(InstrumentEntry {
                    instrument: RwLock::new(instrument),
                    aggregates: Mutex::default(),
                    book: OnceLock::new(),
                })
            })
            .clone()
    }

    pub fn get(&self, venue: &Venue, symbol: &Symbol) -> Option<Arc<InstrumentEntry>> {
        self.entries
            .read()
            .get(&(venue.clone(), symbol.clone()))
            .cloned()
    }

    /// Every instrument, sorted by venue then symbol.
    pub fn instruments(&self) -> Vec<Instrument> {
        self.entries
            .read()
            .values()
            .map(|e| e.instrument.read().clone())
            .collect()
    }

    pub fn has_venue(&self, venue: &Venue) -> bool {
        self.entries.read().keys().any(|(v, _)| v == venue)
    }
}
