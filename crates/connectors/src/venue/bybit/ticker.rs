//! The `tickers.{symbol}` topic: Bybit's own 24 h ticker. Spot pushes whole snapshots; linear
//! pushes a snapshot, then `delta`s carrying only the fields that changed, merged here into
//! the last known values so every emitted ticker is whole.
//!
//! `volume24h` is base-asset volume on both categories; `change_24h` is `lastPrice` minus
//! `prevPrice24h` (Bybit's price 24 h ago).

use crate::venue::parse::{Text, decimal};
use model::{Decimal, Timestamp, VenueTicker};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTicker<'a> {
    #[serde(borrow)]
    symbol: Text<'a>,
    #[serde(borrow, default)]
    last_price: Option<Text<'a>>,
    #[serde(borrow, default)]
    high_price24h: Option<Text<'a>>,
    #[serde(borrow, default)]
    low_price24h: Option<Text<'a>>,
    #[serde(borrow, default)]
    prev_price24h: Option<Text<'a>>,
    #[serde(borrow, default)]
    volume24h: Option<Text<'a>>,
}

/// The last known figures of one symbol's ticker on one subscription.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TickerState {
    last: Option<Decimal>,
    high: Option<Decimal>,
    low: Option<Decimal>,
    prev: Option<Decimal>,
    volume: Option<Decimal>,
    /// A snapshot arrived: deltas may be merged.
    seeded: bool,
}

fn field(name: &str, text: &Option<Text>) -> Result<Option<Decimal>, String> {
    match text.as_deref() {
        None | Some("") => Ok(None),
        Some(t) => decimal(name, t).map(Some),
    }
}

/// Applies a `tickers` push (`kind` is the frame's `type`) to `state`: `(symbol, ticker)`, or
/// `None` for a delta before any snapshot (nothing to merge it into).
pub(crate) fn apply_ticker(
    state: &mut TickerState,
    kind: Option<&str>,
    ts: Option<i64>,
    data: &str,
    recv_ts: Timestamp,
) -> Result<Option<(String, VenueTicker)>, String> {
    let snapshot = match kind {
        Some("snapshot") => true,
        Some("delta") => false,
        other => return Err(format!("tickers: unknown type {other:?}")),
    };
    let raw: RawTicker = serde_json::from_str(data).map_err(|e| format!("tickers: {e}"))?;
    let next = TickerState {
        last: field("tickers lastPrice", &raw.last_price)?,
        high: field("tickers highPrice24h", &raw.high_price24h)?,
        low: field("tickers lowPrice24h", &raw.low_price24h)?,
        prev: field("tickers prevPrice24h", &raw.prev_price24h)?,
        volume: field("tickers volume24h", &raw.volume24h)?,
        seeded: true,
    };
    if next.volume.is_some_and(|v| v < Decimal::ZERO) {
        return Err("tickers: negative volume24h".into());
    }
    let ts = ts.filter(|t| *t >= 0).ok_or("tickers: ts missing")?;
    if snapshot {
        *state = next;
    } else if !state.seeded {
        return Ok(None);
    } else {
        state.last = next.last.or(state.last);
        state.high = next.high.or(state.high);
        state.low = next.low.or(state.low);
        state.prev = next.prev.or(state.prev);
        state.volume = next.volume.or(state.volume);
    }
    Ok(Some((
        raw.symbol.to_string(),
        VenueTicker {
            last: state.last,
            volume_24h: state.volume,
            high_24h: state.high,
            low_24h: state.low,
            change_24h: state.last.zip(state.prev).map(|(l, p)| l - p),
            exchange_ts: Timestamp::from_millis(ts),
            recv_ts,
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::parse_decimal;

    fn d(s: &str) -> Option<Decimal> {
        Some(parse_decimal(s).unwrap())
    }

    fn apply(state: &mut TickerState, text: &str) -> Result<Option<VenueTicker>, String> {
        let frame: super::super::wire::Frame = serde_json::from_str(text).unwrap();
        apply_ticker(
            state,
            frame.kind.as_deref(),
            frame.ts,
            frame.data.map(|d| d.get()).unwrap_or("{}"),
            Timestamp(9),
        )
        .map(|t| t.map(|(_, t)| t))
    }

    #[test]
    fn documented_spot_and_linear_tickers_with_deltas_merged() {
        let mut spot = TickerState::default();
        let text = include_str!("../../../test_data/bybit/ws_tickers_spot_snapshot.json");
        let t = apply(&mut spot, text).unwrap().unwrap();
        assert_eq!(
            (t.last, t.volume_24h, t.high_24h, t.low_24h, t.change_24h),
            (
                d("21109.77"),
                d("6780.866843"),
                d("21426.99"),
                d("20575"),
                d("404.84")
            )
        );
        assert_eq!(t.exchange_ts, Timestamp::from_millis(1_673_853_746_003));
        let mut linear = TickerState::default();
        let delta = include_str!("../../../test_data/bybit/ws_tickers_linear_delta.json");
        assert_eq!(apply(&mut linear, delta), Ok(None), "no snapshot yet");
        let text = include_str!("../../../test_data/bybit/ws_tickers_linear_snapshot.json");
        let t = apply(&mut linear, text).unwrap().unwrap();
        assert_eq!((t.last, t.change_24h), (d("17216.00"), d("289.50")));
        let t = apply(&mut linear, delta).unwrap().unwrap();
        assert_eq!(
            (t.last, t.volume_24h, t.high_24h, t.change_24h),
            (d("17214.50"), d("91705.998"), d("17281.50"), d("288.00")),
            "the delta's fields over the snapshot's"
        );
    }

    /// One line per malformed field.
    #[test]
    fn malformed_tickers_are_errors() {
        let text = include_str!("../../../test_data/bybit/ws_tickers_spot_snapshot.json");
        for bad in [
            text.replace("\"21109.77\"", "\"2x\""),
            text.replace("\"snapshot\"", "\"partial\""),
            text.replace("\"6780.866843\"", "\"-1\""),
            text.replace("\"ts\":1673853746003,", ""),
            text.replace("\"symbol\":\"BTCUSDT\",", ""),
        ] {
            let mut state = TickerState::default();
            assert!(apply(&mut state, &bad).is_err(), "{bad}");
            assert_eq!(state, TickerState::default(), "state untouched: {bad}");
        }
    }
}
