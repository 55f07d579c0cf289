//! History store tests: the contract every `HistoryStore` backend must pass, run against
//! SQLite always and PostgreSQL when `TICKGATE_TEST_POSTGRES_URL` is set (a fresh schema per
//! test; without the variable each Postgres test says it is skipped), plus the writer
//! (bounded queue, slow store, retention, an unreachable store).

mod contract;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;
#[cfg(feature = "postgres")]
#[path = "../support/mod.rs"]
mod support;
mod writer;

pub mod fixtures {
    use model::{Candle, Decimal, Interval, Side, Symbol, Timestamp, Trade, Venue};
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub fn v(s: &str) -> Venue {
        Venue::new(s).unwrap()
    }

    pub fn s(s: &str) -> Symbol {
        Symbol::new(s).unwrap()
    }

    pub fn d(s: &str) -> Decimal {
        model::parse_decimal(s).unwrap()
    }

    pub fn trade(id: &str, price: &str, size: &str, side: Side, ts: i64) -> Trade {
        Trade {
            id: id.into(),
            price: d(price),
            size: d(size),
            side,
            exchange_ts: Timestamp(ts),
            recv_ts: Timestamp(ts + 1),
        }
    }

    pub fn candle(
        interval: Interval,
        start: i64,
        prices: [&str; 4],
        volume: &str,
        trades: u64,
        complete: bool,
    ) -> Candle {
        Candle {
            interval,
            start: Timestamp(start),
            open: d(prices[0]),
            high: d(prices[1]),
            low: d(prices[2]),
            close: d(prices[3]),
            volume: d(volume),
            trades,
            closed: true,
            complete,
        }
    }

    /// A fresh, empty directory under the system temp dir.
    pub fn temp_dir(name: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tickgate-history-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
