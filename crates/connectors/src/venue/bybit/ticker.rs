//! The `tickers.{symbol}` topic: Bybit's own 24 h ticker. Spot pushes whole snapshots; linear
//! pushes a snapshot, then `delta`s carrying only the fields that changed, merged here into
//! the last known values so every emitted ticker is whole.
//!
//! `volume24h` is base-asset volume on both categories; `change_24h` is `lastPrice` minus
//! `prevPrice24h` (Bybit's price 24 h ago).
//!
//! Linear tickers also carry the perpetual's figures, merged the same way: `fundingRate` and
//! `nextFundingTime` (funding), `markPrice` and `indexPrice` (mark), `openInterest` (base
//! asset) and `openInterestValue` (USDT) (open interest). Each is emitted only when the push
//! carried one of its fields, so a delta that moves only the last price publishes no funding.

use crate::venue::parse::{Text, decimal};
use model::{Decimal, Funding, MarkPrice, OpenInterest, Timestamp, VenueTicker};
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
    #[serde(borrow, default)]
    funding_rate: Option<Text<'a>>,
    #[serde(borrow, default)]
    next_funding_time: Option<Text<'a>>,
    #[serde(borrow, default)]
    mark_price: Option<Text<'a>>,
    #[serde(borrow, default)]
    index_price: Option<Text<'a>>,
    #[serde(borrow, default)]
    open_interest: Option<Text<'a>>,
    #[serde(borrow, default)]
    open_interest_value: Option<Text<'a>>,
}

/// The last known figures of one symbol's ticker on one subscription.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TickerState {
    last: Option<Decimal>,
    high: Option<Decimal>,
    low: Option<Decimal>,
    prev: Option<Decimal>,
    volume: Option<Decimal>,
    funding_rate: Option<Decimal>,
    next_funding: Option<Timestamp>,
    mark: Option<Decimal>,
    index: Option<Decimal>,
    oi: Option<Decimal>,
    oi_value: Option<Decimal>,
    /// A snapshot arrived: deltas may be merged.
    seeded: bool,
}

/// What one `tickers` push produced: the whole ticker, and the perpetual's figures the push
/// touched (linear only).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TickerUpdate {
    /// Bybit's name of the instrument, as the push spelled it.
    pub symbol: String,
    pub ticker: VenueTicker,
    pub funding: Option<Funding>,
    pub mark: Option<MarkPrice>,
    pub oi: Option<OpenInterest>,
}

/// `nextFundingTime`: milliseconds since the epoch, as text.
fn millis(name: &str, text: &Option<Text>) -> Result<Option<Timestamp>, String> {
    match text.as_deref() {
        None | Some("") => Ok(None),
        Some(t) => t
            .parse::<i64>()
            .ok()
            .filter(|ms| *ms >= 0)
            .map(|ms| Some(Timestamp::from_millis(ms)))
            .ok_or_else(|| format!("{name}: not a time: {}", crate::venue::parse::excerpt(t))),
    }
}

fn field(name: &str, text: &Option<Text>) -> Result<Option<Decimal>, String> {
    match text.as_deref() {
        None | Some("") => Ok(None),
        Some(t) => decimal(name, t).map(Some),
    }
}

/// Applies a `tickers` push (`kind` is the frame's `type`) to `state`: the update, or `None`
/// for a delta before any snapshot (nothing to merge it into).
pub(crate) fn apply_ticker(
    state: &mut TickerState,
    kind: Option<&str>,
    ts: Option<i64>,
    data: &str,
    recv_ts: Timestamp,
) -> Result<Option<TickerUpdate>, String> {
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
        funding_rate: field("tickers fundingRate", &raw.funding_rate)?,
        next_funding: millis("tickers nextFundingTime", &raw.next_funding_time)?,
        mark: field("tickers markPrice", &raw.mark_price)?,
        index: field("tickers indexPrice", &raw.index_price)?,
        oi: field("tickers openInterest", &raw.open_interest)?,
        oi_value: field("tickers openInterestValue", &raw.open_interest_value)?,
        seeded: true,
    };
    if next.volume.is_some_and(|v| v < Decimal::ZERO) {
        return Err("tickers: negative volume24h".into());
    }
    if next.oi.is_some_and(|v| v < Decimal::ZERO) {
        return Err("tickers: negative openInterest".into());
    }
    let touched_funding = next.funding_rate.is_some() || next.next_funding.is_some();
    let touched_mark = next.mark.is_some() || next.index.is_some();
    let touched_oi = next.oi.is_some() || next.oi_value.is_some();
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
        state.funding_rate = next.funding_rate.or(state.funding_rate);
        state.next_funding = next.next_funding.or(state.next_funding);
        state.mark = next.mark.or(state.mark);
        state.index = next.index.or(state.index);
        state.oi = next.oi.or(state.oi);
        state.oi_value = next.oi_value.or(state.oi_value);
    }
    let ts = Timestamp::from_millis(ts);
    Ok(Some(TickerUpdate {
        symbol: raw.symbol.to_string(),
        ticker: VenueTicker {
            last: state.last,
            volume_24h: state.volume,
            high_24h: state.high,
            low_24h: state.low,
            change_24h: state.last.zip(state.prev).map(|(l, p)| l - p),
            exchange_ts: ts,
            recv_ts,
        },
        funding: state
            .funding_rate
            .filter(|_| touched_funding)
            .map(|rate| Funding {
                rate,
                predicted_rate: None,
                next_funding_ts: state.next_funding,
                ts,
            }),
        mark: touched_mark.then_some(MarkPrice {
            mark: state.mark,
            index: state.index,
            ts,
        }),
        oi: state.oi.filter(|_| touched_oi).map(|oi| OpenInterest {
            oi,
            oi_value: state.oi_value,
            ts,
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::parse_decimal;

    fn d(s: &str) -> Option<Decimal> {
        Some(parse_decimal(s).unwrap())
    }

    fn apply(state: &mut TickerState, text: &str) -> Result<Option<VenueTicker>, String> {
        update(state, text).map(|u| u.map(|u| u.ticker))
    }

    fn update(state: &mut TickerState, text: &str) -> Result<Option<TickerUpdate>, String> {
        let frame = super::super::wire::Frame::parse(text).unwrap();
        apply_ticker(
            state,
            frame.kind.as_deref(),
            frame.ts,
            frame.data.as_ref().and_then(|d| d.raw()).unwrap_or("{}"),
            Timestamp(9),
        )
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

    #[test]
    fn linear_tickers_carry_funding_mark_and_open_interest() {
        let mut linear = TickerState::default();
        let text = include_str!("../../../test_data/bybit/ws_tickers_linear_snapshot.json");
        let u = update(&mut linear, text).unwrap().unwrap();
        let ts = Timestamp::from_millis(1_673_272_861_686);
        assert_eq!(
            u.funding,
            Some(Funding {
                rate: d("-0.000212").unwrap(),
                predicted_rate: None,
                next_funding_ts: Some(Timestamp::from_millis(1_673_280_000_000)),
                ts,
            })
        );
        assert_eq!(
            u.mark,
            Some(MarkPrice {
                mark: d("17217.33"),
                index: d("17227.36"),
                ts
            })
        );
        assert_eq!(
            u.oi,
            Some(OpenInterest {
                oi: d("68744.761").unwrap(),
                oi_value: d("1183601235.91"),
                ts
            })
        );
        // A delta without perpetual fields: only the ticker.
        let delta = include_str!("../../../test_data/bybit/ws_tickers_linear_delta.json");
        let u = update(&mut linear, delta).unwrap().unwrap();
        assert_eq!((u.funding, u.mark, u.oi), (None, None, None));
        // A delta moving the mark only: the index is the snapshot's.
        let mark_delta = delta.replace(r#""lastPrice":"17214.50""#, r#""markPrice":"17220.01""#);
        let u = update(&mut linear, &mark_delta).unwrap().unwrap();
        assert_eq!(
            u.mark.map(|m| (m.mark, m.index)),
            Some((d("17220.01"), d("17227.36")))
        );
        assert_eq!((u.funding, u.oi), (None, None));
        // Spot has none of them.
        let mut spot = TickerState::default();
        let text = include_str!("../../../test_data/bybit/ws_tickers_spot_snapshot.json");
        let u = update(&mut spot, text).unwrap().unwrap();
        assert_eq!((u.funding, u.mark, u.oi), (None, None, None));
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
        let linear = include_str!("../../../test_data/bybit/ws_tickers_linear_snapshot.json");
        for bad in [
            linear.replace("\"-0.000212\"", "\"x\""),
            linear.replace("\"1673280000000\"", "\"soon\""),
            linear.replace("\"17217.33\"", "\"1e5\""),
            linear.replace("\"68744.761\"", "\"-5\""),
        ] {
            let mut state = TickerState::default();
            assert!(apply(&mut state, &bad).is_err(), "{bad}");
            assert_eq!(state, TickerState::default(), "state untouched: {bad}");
        }
    }
}
