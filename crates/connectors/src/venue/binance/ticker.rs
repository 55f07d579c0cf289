//! `<symbol>@ticker` events: Binance's own rolling 24 h ticker (`24hrTicker`, one a second per
//! symbol). `volume` is the base volume `v`, `change` is Binance's price change `p` (`c − o`
//! over the rolling window); decimals are read from Binance's strings exactly.

use crate::venue::parse::{Text, decimal};
use model::{Decimal, Timestamp, VenueTicker};
use serde::Deserialize;

#[derive(Deserialize)]
struct RawTicker<'a> {
    #[serde(borrow)]
    e: Text<'a>,
    #[serde(rename = "E")]
    event_time: i64,
    #[serde(borrow)]
    s: Text<'a>,
    /// Price change over the window.
    #[serde(borrow)]
    p: Text<'a>,
    /// Last price.
    #[serde(borrow)]
    c: Text<'a>,
    #[serde(borrow)]
    h: Text<'a>,
    #[serde(borrow)]
    l: Text<'a>,
    /// Base asset volume.
    #[serde(borrow)]
    v: Text<'a>,
}

/// Parses the `data` of a `24hrTicker` event into `(native symbol, ticker)`.
pub fn parse_ticker(data: &str, recv_ts: Timestamp) -> Result<(String, VenueTicker), String> {
    let raw: RawTicker = serde_json::from_str(data).map_err(|e| format!("ticker: {e}"))?;
    if raw.e.as_str() != "24hrTicker" {
        return Err(format!(
            "ticker: unexpected event type {:?}",
            raw.e.as_str()
        ));
    }
    let volume = decimal("ticker volume", &raw.v)?;
    if volume < Decimal::ZERO {
        return Err("ticker: negative volume".into());
    }
    let last = decimal("ticker last", &raw.c)?;
    let high = decimal("ticker high", &raw.h)?;
    let low = decimal("ticker low", &raw.l)?;
    if low > high {
        return Err("ticker: low above high".into());
    }
    Ok((
        raw.s.to_string(),
        VenueTicker {
            last: Some(last),
            volume_24h: Some(volume),
            high_24h: Some(high),
            low_24h: Some(low),
            change_24h: Some(decimal("ticker change", &raw.p)?),
            exchange_ts: Timestamp::from_millis(raw.event_time),
            recv_ts,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::parse::escaped;
    use model::parse_decimal;

    fn d(s: &str) -> Option<Decimal> {
        Some(parse_decimal(s).unwrap())
    }

    fn data() -> String {
        let text = include_str!("../../../test_data/binance/ws_ticker_update.json");
        serde_json::from_str::<serde_json::Value>(text).unwrap()["data"].to_string()
    }

    #[test]
    fn documented_ticker_parses_exactly() {
        let (native, t) = parse_ticker(&data(), Timestamp(3)).unwrap();
        assert_eq!(native, "BNBBTC");
        assert_eq!(
            (t.last, t.volume_24h, t.high_24h, t.low_24h, t.change_24h),
            (
                d("0.0025"),
                d("10000"),
                d("0.0025"),
                d("0.0010"),
                d("0.0015")
            )
        );
        assert_eq!(t.exchange_ts, Timestamp(1_672_515_782_136_000));
        assert_eq!(t.recv_ts, Timestamp(3));
        assert_eq!(
            parse_ticker(&escaped(&data()), Timestamp(3)).unwrap(),
            parse_ticker(&data(), Timestamp(3)).unwrap()
        );
    }

    /// One line per malformed field.
    #[test]
    fn malformed_tickers_are_errors() {
        let text = data();
        for bad in [
            text.replace("\"c\":\"0.0025\"", "\"c\":\"x\""),
            text.replace("\"v\":\"10000\"", "\"v\":\"-1\""),
            text.replace("\"l\":\"0.0010\"", "\"l\":\"1\""),
            text.replace("\"p\":\"0.0015\",", ""),
            text.replace("\"s\":\"BNBBTC\",", ""),
            text.replace("24hrTicker", "24hrMiniTicker"),
            "{\"e\":\"24hrTicker\"".to_string(),
        ] {
            assert!(parse_ticker(&bad, Timestamp(0)).is_err(), "{bad}");
        }
    }
}
