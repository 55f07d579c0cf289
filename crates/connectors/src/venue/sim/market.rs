//! [`SimMarket`]: the pure, synchronous generator of the simulated market.

use super::SimConfig;
use super::book::SimBook;
use crate::{ConnectorError, FeedEvent};
use model::{BookSnapshot, Decimal, Instrument, Level, Symbol, Timestamp};

/// The true market of every configured symbol. No I/O, no clock, no faults: the same config
/// always produces the same events, and the timestamps are whatever the caller passes in.
///
/// Symbols take turns, one market event each, in config order. Each symbol draws from its own
/// random stream derived from the seed and its name, so a symbol's market does not change when
/// other symbols are added to the config.
#[derive(Debug, Clone)]
pub struct SimMarket {
    books: Vec<SimBook>,
    next: usize,
    checksum: bool,
}

impl SimMarket {
    /// Validates `config` and builds every book at its start price, at sequence number 1.
    pub fn new(config: &SimConfig) -> Result<Self, ConnectorError> {
        config.validate()?;
        Ok(Self {
            books: config
                .symbols
                .iter()
                .map(|symbol| SimBook::new(symbol.clone(), config.seed, config.levels))
                .collect(),
            next: 0,
            checksum: config.checksum,
        })
    }

    /// The simulated symbols, in config order (the order of [`Self::step`]'s turns).
    pub fn symbols(&self) -> impl Iterator<Item = &Symbol> {
        self.books.iter().map(SimBook::symbol)
    }

    /// Instrument metadata (venue `sim`, native symbol such as `BTCUSDT`, tick and lot).
    pub fn instruments(&self) -> Vec<Instrument> {
        self.books
            .iter()
            .map(|book| book.spec().instrument(book.symbol()))
            .collect()
    }

    /// How many symbols are simulated (at least one).
    pub fn symbol_count(&self) -> usize {
        self.books.len()
    }

    /// The symbol at `index` in [`Self::symbols`]. Panics if `index` is out of range.
    pub fn symbol_at(&self, index: usize) -> &Symbol {
        self.books[index].symbol()
    }

    /// Position of `symbol` in [`Self::symbols`], if it is simulated.
    pub fn index_of(&self, symbol: &Symbol) -> Option<usize> {
        self.books.iter().position(|book| book.symbol() == symbol)
    }

    /// Generates the next market event, for the symbol whose turn it is, and appends it to
    /// `out`: one `BookDelta`, preceded by a `Trade` when the event is a trade. Returns the
    /// symbol's index in [`Self::symbols`].
    ///
    /// Allocates nothing beyond the appended events' own vectors (and the trade id).
    pub fn step(&mut self, now: Timestamp, out: &mut Vec<FeedEvent>) -> usize {
        let index = self.next;
        self.next = (index + 1) % self.books.len();
        self.books[index].step(now, self.checksum, out);
        index
    }

    /// The full true book of `symbol` at its current sequence number, or `None` if it is not
    /// simulated.
    pub fn snapshot(&self, symbol: &Symbol, now: Timestamp) -> Option<BookSnapshot> {
        let index = self.index_of(symbol)?;
        Some(self.snapshot_at(index, now))
    }

    /// [`Self::snapshot`] by index. Panics if `index` is out of range.
    pub fn snapshot_at(&self, index: usize, now: Timestamp) -> BookSnapshot {
        self.books[index].snapshot(now, self.checksum)
    }

    /// Whether snapshots and deltas carry checksums.
    pub fn checksum_enabled(&self) -> bool {
        self.checksum
    }

    /// One side of a symbol's true book, best first (`bid` selects the side).
    pub(crate) fn levels(&self, index: usize, bid: bool) -> impl Iterator<Item = Level> + '_ {
        self.books[index].levels(bid)
    }

    /// The smallest size step of a symbol.
    pub(crate) fn lot(&self, index: usize) -> Decimal {
        self.books[index].spec().size(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_the_configured_prices_with_a_one_tick_spread() {
        let market = SimMarket::new(&SimConfig::default()).unwrap();
        let btc = Symbol::new("BTC-USDT").unwrap();
        let snapshot = market.snapshot(&btc, Timestamp(0)).unwrap();
        assert_eq!(snapshot.seq, 1);
        assert_eq!(snapshot.bids[0].price.to_string(), "65000.00");
        assert_eq!(snapshot.asks[0].price.to_string(), "65000.01");
        assert!(snapshot.bids.len() >= 50 && snapshot.asks.len() >= 50);
        assert!(snapshot.checksum.is_some());
        for level in snapshot.bids.iter().chain(&snapshot.asks) {
            assert_eq!(level.price.scale(), 2);
            assert_eq!(level.size.scale(), 5);
            assert!(level.size > Decimal::ZERO);
        }
        assert!(
            market
                .snapshot(&Symbol::new("XRP-USDT").unwrap(), Timestamp(0))
                .is_none()
        );
    }

    #[test]
    fn symbols_take_turns_in_config_order() {
        let mut market = SimMarket::new(&SimConfig::default()).unwrap();
        let mut out = Vec::new();
        let turns: Vec<usize> = (0..7)
            .map(|_| market.step(Timestamp(0), &mut out))
            .collect();
        assert_eq!(turns, [0, 1, 2, 0, 1, 2, 0]);
        let deltas = out
            .iter()
            .filter(|e| matches!(e, FeedEvent::BookDelta { .. }))
            .count();
        assert_eq!(deltas, 7);
    }

    #[test]
    fn a_symbols_market_does_not_depend_on_the_other_symbols() {
        let btc_only = SimConfig {
            symbols: vec![Symbol::new("BTC-USDT").unwrap()],
            ..SimConfig::default()
        };
        let mut alone = SimMarket::new(&btc_only).unwrap();
        let mut with_others = SimMarket::new(&SimConfig::default()).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..100 {
            alone.step(Timestamp(0), &mut a);
            for _ in 0..3 {
                with_others.step(Timestamp(0), &mut b);
            }
        }
        let btc = |e: &&FeedEvent| match e {
            FeedEvent::BookDelta { symbol, .. } | FeedEvent::Trade { symbol, .. } => {
                symbol.as_str() == "BTC-USDT"
            }
            _ => false,
        };
        let b: Vec<&FeedEvent> = b.iter().filter(btc).collect();
        assert_eq!(a.iter().collect::<Vec<_>>(), b);
    }
}
