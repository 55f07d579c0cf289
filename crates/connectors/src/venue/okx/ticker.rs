//! The `tickers` channel: OKX's own 24 h ticker per instrument (pushed at most every 100 ms,
//! on a trade or a change of the best bid/ask).
//!
//! Volume: `vol24h` is in the base currency for SPOT but in contracts for SWAP, where
//! `volCcy24h` is the base-currency figure; the ticker's `volume_24h` is always the base one.
//! `change_24h` is `last` minus OKX's `open24h` (the price 24 h ago).

use crate::venue::parse::{Text, decimal};
use model::{Timestamp, VenueTicker};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TickerItem<'a> {
    #[serde(borrow)]
    inst_type: Text<'a>,
    #[serde(borrow)]
    inst_id: Text<'a>,
    #[serde(borrow)]
    last: Text<'a>,
    #[serde(borrow)]
    open24h: Text<'a>,
    #[serde(borrow)]
    high24h: Text<'a>,
    #[serde(borrow)]
    low24h: Text<'a>,
    #[serde(borrow)]
    vol24h: Text<'a>,
    #[serde(borrow)]
    vol_ccy24h: Text<'a>,
    #[serde(borrow)]
    ts: Text<'a>,
}

#[derive(Debug, Deserialize)]
struct TickerFrame<'a> {
    #[serde(borrow)]
    data: Vec<TickerItem<'a>>,
}

/// An optional decimal: OKX sends `""` for a figure it does not have yet (a new listing).
fn figure(field: &str, text: &str) -> Result<Option<model::Decimal>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    decimal(field, text).map(Some)
}

/// Parses a `tickers` push into `(instId, ticker)`s.
pub fn parse_tickers(text: &str, recv_ts: Timestamp) -> Result<Vec<(String, VenueTicker)>, String> {
    let frame: TickerFrame = serde_json::from_str(text).map_err(|e| format!("tickers: {e}"))?;
    frame
        .data
        .iter()
        .map(|item| {
            let last = figure("tickers last", &item.last)?;
            let open = figure("tickers open24h", &item.open24h)?;
            let volume = match item.inst_type.as_str() {
                "SPOT" => figure("tickers vol24h", &item.vol24h)?,
                "SWAP" => figure("tickers volCcy24h", &item.vol_ccy24h)?,
                other => return Err(format!("tickers: unsupported instType {other:?}")),
            };
            if volume.is_some_and(|v| v < model::Decimal::ZERO) {
                return Err("tickers: negative volume".into());
            }
            let ms: i64 =
                item.ts.parse().ok().filter(|ms| *ms >= 0).ok_or_else(|| {
                    format!("tickers ts: not a millisecond time: {:?}", &*item.ts)
                })?;
            Ok((
                item.inst_id.to_string(),
                VenueTicker {
                    last,
                    volume_24h: volume,
                    high_24h: figure("tickers high24h", &item.high24h)?,
                    low_24h: figure("tickers low24h", &item.low24h)?,
                    change_24h: last.zip(open).map(|(l, o)| l - o),
                    exchange_ts: Timestamp::from_millis(ms),
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

    fn d(s: &str) -> Option<model::Decimal> {
        Some(parse_decimal(s).unwrap())
    }

    #[test]
    fn documented_tickers_parse_with_base_volume() {
        let text = include_str!("../../../test_data/okx/ws_tickers_update.json");
        let tickers = parse_tickers(text, Timestamp(7)).unwrap();
        let (inst, t) = &tickers[0];
        assert_eq!(inst, "BTC-USDT");
        assert_eq!(
            (t.last, t.volume_24h, t.high_24h, t.low_24h, t.change_24h),
            (
                d("9999.99"),
                d("2222"),
                d("10000"),
                d("8888.88"),
                d("999.99")
            )
        );
        assert_eq!(
            (t.exchange_ts, t.recv_ts),
            (Timestamp::from_millis(1_597_026_383_085), Timestamp(7))
        );
        let text = include_str!("../../../test_data/okx/ws_tickers_swap_update.json");
        let (inst, t) = &parse_tickers(text, Timestamp(7)).unwrap()[0];
        assert_eq!(inst, "BTC-USDT-SWAP");
        assert_eq!(t.volume_24h, d("109187.9625"), "volCcy24h, not contracts");
        assert_eq!(t.change_24h, d("-197.5"));
        assert_eq!(
            parse_tickers(&escaped(text), Timestamp(7)).unwrap(),
            parse_tickers(text, Timestamp(7)).unwrap()
        );
    }

    /// One line per malformed field.
    #[test]
    fn malformed_tickers_are_errors() {
        let text = include_str!("../../../test_data/okx/ws_tickers_update.json");
        for bad in [
            text.replace("\"9999.99\",\"lastSz\"", "\"9x\",\"lastSz\""),
            text.replace("\"SPOT\"", "\"OPTION\""),
            text.replace("\"vol24h\":\"2222\"", "\"vol24h\":\"-1\""),
            text.replace("\"1597026383085\"", "\"later\""),
            text.replace("\"open24h\"", "\"open\""),
            "{\"data\":".to_string(),
        ] {
            assert!(parse_tickers(&bad, Timestamp(0)).is_err(), "{bad}");
        }
        let empty = text.replace("\"open24h\":\"9000\"", "\"open24h\":\"\"");
        let (_, t) = &parse_tickers(&empty, Timestamp(0)).unwrap()[0];
        assert_eq!(t.change_24h, None, "no open yet: no change");
    }
}
