//! `ticker` channel messages: Kraken's own 24 h ticker (a snapshot on subscribe, then an
//! update on every trade). `volume` is base volume, `change` is Kraken's 24 h price change.
//! Numbers are JSON numbers, read as their exact text. Kraken v2 tickers carry no time: the
//! receive time stands in for the exchange time.

use crate::venue::parse::{Text, decimal};
use model::{Decimal, Timestamp, VenueTicker};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct RawTicker<'a> {
    #[serde(borrow)]
    symbol: Text<'a>,
    #[serde(borrow)]
    last: &'a RawValue,
    #[serde(borrow)]
    volume: &'a RawValue,
    #[serde(borrow)]
    low: &'a RawValue,
    #[serde(borrow)]
    high: &'a RawValue,
    #[serde(borrow)]
    change: &'a RawValue,
}

#[derive(Deserialize)]
struct TickerMessage<'a> {
    #[serde(borrow)]
    data: Vec<RawTicker<'a>>,
}

fn number(field: &str, raw: &RawValue) -> Result<Decimal, String> {
    decimal(field, raw.get().trim_matches('"'))
}

/// Parses a `ticker` message into `(pair name, ticker)`s.
pub fn parse_tickers(text: &str, recv_ts: Timestamp) -> Result<Vec<(String, VenueTicker)>, String> {
    let msg: TickerMessage = serde_json::from_str(text).map_err(|e| format!("ticker: {e}"))?;
    msg.data
        .into_iter()
        .map(|t| {
            let volume = number("ticker volume", t.volume)?;
            if volume < Decimal::ZERO {
                return Err("ticker: negative volume".into());
            }
            Ok((
                t.symbol.to_string(),
                VenueTicker {
                    last: Some(number("ticker last", t.last)?),
                    volume_24h: Some(volume),
                    high_24h: Some(number("ticker high", t.high)?),
                    low_24h: Some(number("ticker low", t.low)?),
                    change_24h: Some(number("ticker change", t.change)?),
                    exchange_ts: recv_ts,
                    recv_ts,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::parse::escaped;
    use model::parse_decimal;

    fn d(s: &str) -> Option<Decimal> {
        Some(parse_decimal(s).unwrap())
    }

    #[test]
    fn documented_ticker_parses_exactly() {
        let text = include_str!("../../../test_data/kraken/ws_ticker_snapshot.json");
        let (pair, t) = &parse_tickers(text, Timestamp(3)).unwrap()[0];
        assert_eq!(pair, "ALGO/USD");
        assert_eq!(
            (t.last, t.volume_24h, t.high_24h, t.low_24h, t.change_24h),
            (
                d("0.10035"),
                d("997038.98383185"),
                d("0.10285"),
                d("0.09979"),
                d("-0.00017")
            )
        );
        assert_eq!((t.exchange_ts, t.recv_ts), (Timestamp(3), Timestamp(3)));
        assert_eq!(
            parse_tickers(&escaped(text), Timestamp(3)).unwrap(),
            parse_tickers(text, Timestamp(3)).unwrap()
        );
    }

    /// One line per malformed field.
    #[test]
    fn malformed_tickers_are_errors() {
        let text = include_str!("../../../test_data/kraken/ws_ticker_snapshot.json");
        for bad in [
            text.replace("\"last\":0.10035", "\"last\":\"x\""),
            text.replace("\"volume\":997038.98383185", "\"volume\":-1"),
            text.replace(",\"change\":-0.00017", ""),
            text.replace("\"symbol\":\"ALGO/USD\",", ""),
            "{\"channel\":\"ticker\"".to_string(),
        ] {
            assert!(parse_tickers(&bad, Timestamp(0)).is_err(), "{bad}");
        }
    }
}
