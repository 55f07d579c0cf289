//! `ticker` events: Coinbase's own 24 h ticker per product (a `snapshot` on subscribe, then an
//! `update` on every match). `volume_24_h` is base volume. Coinbase reports the 24 h change
//! only as a percentage (`price_percent_chg_24_h`); `change_24h` is the price change it
//! implies, `price − price / (1 + pct / 100)`, rounded to the price's decimals.

use crate::venue::parse::{Text, decimal};
use model::{Decimal, Timestamp, VenueTicker};
use serde::Deserialize;

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, default)]
    tickers: Vec<RawTicker<'a>>,
}

#[derive(Deserialize)]
struct RawTicker<'a> {
    #[serde(borrow)]
    product_id: Text<'a>,
    #[serde(borrow)]
    price: Text<'a>,
    #[serde(borrow)]
    volume_24_h: Text<'a>,
    #[serde(borrow)]
    low_24_h: Text<'a>,
    #[serde(borrow)]
    high_24_h: Text<'a>,
    #[serde(borrow)]
    price_percent_chg_24_h: Text<'a>,
}

/// The price change a percentage change implies, or `None` for a -100 % (no previous price).
fn change_from_percent(price: Decimal, pct: Decimal) -> Option<Decimal> {
    let factor = Decimal::ONE + pct.checked_div(Decimal::ONE_HUNDRED)?;
    let previous = price.checked_div(factor)?;
    Some((price - previous).round_dp(price.scale()))
}

/// Parses `ticker` events into `(product, ticker)`s; `ts` is the envelope's time.
pub fn parse_tickers(
    events: &str,
    ts: Timestamp,
    recv_ts: Timestamp,
) -> Result<Vec<(String, VenueTicker)>, String> {
    let events: Vec<Event> = serde_json::from_str(events).map_err(|e| format!("ticker: {e}"))?;
    let mut out = Vec::new();
    for t in events.iter().flat_map(|e| &e.tickers) {
        let price = decimal("ticker price", &t.price)?;
        let volume = decimal("ticker volume_24_h", &t.volume_24_h)?;
        if volume < Decimal::ZERO {
            return Err("ticker: negative volume_24_h".into());
        }
        let pct = decimal("ticker price_percent_chg_24_h", &t.price_percent_chg_24_h)?;
        out.push((
            t.product_id.to_string(),
            VenueTicker {
                last: Some(price),
                volume_24h: Some(volume),
                high_24h: Some(decimal("ticker high_24_h", &t.high_24_h)?),
                low_24h: Some(decimal("ticker low_24_h", &t.low_24_h)?),
                change_24h: change_from_percent(price, pct),
                exchange_ts: ts,
                recv_ts,
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::parse::escaped;
    use model::parse_decimal;

    fn d(s: &str) -> Decimal {
        parse_decimal(s).unwrap()
    }

    fn events(text: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        v["events"].to_string()
    }

    #[test]
    fn documented_ticker_parses_with_the_implied_change() {
        let text = include_str!("../../../test_data/coinbase/ws_ticker_snapshot.json");
        let (product, t) = &parse_tickers(&events(text), Timestamp(5), Timestamp(6)).unwrap()[0];
        assert_eq!(product, "BTC-USD");
        assert_eq!(
            (t.last, t.volume_24h, t.high_24h, t.low_24h),
            (
                Some(d("21932.98")),
                Some(d("16038.28770938")),
                Some(d("23011.18")),
                Some(d("21835.29"))
            )
        );
        // 21932.98 / (1 - 0.0415775596190603) = 22884.46…: the price fell by 951.48.
        assert_eq!(t.change_24h, Some(d("-951.48")));
        assert_eq!((t.exchange_ts, t.recv_ts), (Timestamp(5), Timestamp(6)));
        let raw = events(text);
        assert_eq!(
            parse_tickers(&escaped(&raw), Timestamp(5), Timestamp(6)).unwrap(),
            parse_tickers(&raw, Timestamp(5), Timestamp(6)).unwrap()
        );
    }

    /// One line per case.
    #[test]
    fn malformed_tickers_are_errors_and_minus_100_percent_has_no_change() {
        let raw = events(include_str!(
            "../../../test_data/coinbase/ws_ticker_snapshot.json"
        ));
        for bad in [
            raw.replace("\"21932.98\"", "\"2x\""),
            raw.replace("\"16038.28770938\"", "\"-1\""),
            raw.replace("\"-4.15775596190603\"", "\"down\""),
            raw.replace("\"product_id\":\"BTC-USD\",", ""),
            "[{".to_string(),
        ] {
            assert!(
                parse_tickers(&bad, Timestamp(0), Timestamp(0)).is_err(),
                "{bad}"
            );
        }
        let gone = raw.replace("\"-4.15775596190603\"", "\"-100\"");
        let (_, t) = &parse_tickers(&gone, Timestamp(0), Timestamp(0)).unwrap()[0];
        assert_eq!(t.change_24h, None);
    }
}
