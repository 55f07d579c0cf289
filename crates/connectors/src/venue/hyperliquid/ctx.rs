//! The `activeAssetCtx` channel: one perpetual's context (funding, mark, oracle, open
//! interest, 24 h figures), pushed whole on every change.
//!
//! - funding: `funding` is the hourly rate; Hyperliquid pays funding every full hour, so the
//!   next funding time is the next full hour after receipt; no predicted rate.
//! - mark: `markPx`, index = `oraclePx`.
//! - open interest: `openInterest`, in coins; no value in USDC.
//! - ticker: last = `midPx` (`markPx` when the book has no mid), volume = `dayBaseVlm`
//!   (coins), change = last − `prevDayPx`; no high/low.
//!
//! The message carries no time: every figure is stamped with the receive time. Each figure
//! is emitted only when it differs from the last one seen on the subscription.

use crate::venue::parse::{Text, decimal};
use model::{Decimal, Funding, MarkPrice, OpenInterest, Timestamp, VenueTicker};
use serde::Deserialize;

/// One `activeAssetCtx` `data` object, parsed once: the session routes it by [`coin`] and
/// applies it with [`apply_ctx`].
///
/// [`coin`]: CtxFrame::coin
#[derive(Debug, Deserialize)]
pub(crate) struct CtxFrame<'a> {
    #[serde(borrow)]
    coin: Text<'a>,
    #[serde(borrow)]
    ctx: RawCtx<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCtx<'a> {
    #[serde(borrow)]
    prev_day_px: Text<'a>,
    #[serde(borrow)]
    mark_px: Text<'a>,
    #[serde(borrow, default)]
    mid_px: Option<Text<'a>>,
    #[serde(borrow)]
    funding: Text<'a>,
    #[serde(borrow)]
    open_interest: Text<'a>,
    #[serde(borrow)]
    oracle_px: Text<'a>,
    #[serde(borrow)]
    day_base_vlm: Text<'a>,
}

/// The last figures seen for one coin.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CtxState {
    funding: Option<Decimal>,
    mark: Option<(Decimal, Decimal)>,
    oi: Option<Decimal>,
    ticker: Option<(Decimal, Decimal, Decimal)>,
}

impl<'a> CtxFrame<'a> {
    pub(crate) fn parse(data: &'a str) -> Result<Self, String> {
        serde_json::from_str(data).map_err(|e| format!("activeAssetCtx: {e}"))
    }

    pub(crate) fn coin(&self) -> &str {
        &self.coin
    }
}

/// What one push changed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CtxUpdate {
    pub ticker: Option<VenueTicker>,
    pub funding: Option<Funding>,
    pub mark: Option<MarkPrice>,
    pub oi: Option<OpenInterest>,
}

const HOUR_MICROS: i64 = 3_600 * Timestamp::MICROS_PER_SECOND;

/// The next full hour strictly after `ts`.
pub(crate) fn next_hour(ts: Timestamp) -> Timestamp {
    Timestamp((ts.as_micros().div_euclid(HOUR_MICROS) + 1) * HOUR_MICROS)
}

/// Applies a parsed `activeAssetCtx` frame to `state`; on error `state` is untouched.
pub(crate) fn apply_ctx(
    state: &mut CtxState,
    raw: &CtxFrame<'_>,
    recv_ts: Timestamp,
) -> Result<CtxUpdate, String> {
    let c = &raw.ctx;
    let prev = decimal("activeAssetCtx prevDayPx", &c.prev_day_px)?;
    let mark = decimal("activeAssetCtx markPx", &c.mark_px)?;
    let mid = match c.mid_px.as_deref() {
        None | Some("") => None,
        Some(t) => Some(decimal("activeAssetCtx midPx", t)?),
    };
    let funding = decimal("activeAssetCtx funding", &c.funding)?;
    let oi = decimal("activeAssetCtx openInterest", &c.open_interest)?;
    let oracle = decimal("activeAssetCtx oraclePx", &c.oracle_px)?;
    let volume = decimal("activeAssetCtx dayBaseVlm", &c.day_base_vlm)?;
    if oi < Decimal::ZERO {
        return Err("activeAssetCtx: negative openInterest".into());
    }
    if volume < Decimal::ZERO {
        return Err("activeAssetCtx: negative dayBaseVlm".into());
    }
    let last = mid.unwrap_or(mark);
    let next = CtxState {
        funding: Some(funding),
        mark: Some((mark, oracle)),
        oi: Some(oi),
        ticker: Some((last, volume, prev)),
    };
    let ts = recv_ts;
    let update = CtxUpdate {
        ticker: (next.ticker != state.ticker).then_some(VenueTicker {
            last: Some(last),
            volume_24h: Some(volume),
            high_24h: None,
            low_24h: None,
            change_24h: Some(last - prev),
            exchange_ts: ts,
            recv_ts,
        }),
        funding: (next.funding != state.funding).then_some(Funding {
            rate: funding,
            predicted_rate: None,
            next_funding_ts: Some(next_hour(ts)),
            ts,
        }),
        mark: (next.mark != state.mark).then_some(MarkPrice {
            mark: Some(mark),
            index: Some(oracle),
            ts,
        }),
        oi: (next.oi != state.oi).then_some(OpenInterest {
            oi,
            oi_value: None,
            ts,
        }),
    };
    *state = next;
    Ok(update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::parse_decimal;

    const DOC: &str = include_str!("../../../test_data/hyperliquid/ws_active_asset_ctx.json");

    fn d(s: &str) -> Decimal {
        parse_decimal(s).unwrap()
    }

    /// Parses and applies, as the session does.
    fn apply(state: &mut CtxState, data: &str, ts: Timestamp) -> Result<CtxUpdate, String> {
        apply_ctx(state, &CtxFrame::parse(data)?, ts)
    }

    fn data(text: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        v["data"].to_string()
    }

    #[test]
    fn documented_ctx_emits_every_figure_once() {
        let mut state = CtxState::default();
        let ts = Timestamp::from_millis(1_700_000_100_000);
        assert_eq!(CtxFrame::parse(&data(DOC)).unwrap().coin(), "BTC");
        let u = apply(&mut state, &data(DOC), ts).unwrap();
        let t = u.ticker.unwrap();
        assert_eq!(
            (t.last, t.volume_24h, t.change_24h),
            (Some(d("14.314")), Some(d("81275.3")), Some(d("-1.008")))
        );
        assert_eq!(
            u.funding,
            Some(Funding {
                rate: d("0.0000125"),
                predicted_rate: None,
                next_funding_ts: Some(Timestamp::from_millis(1_700_002_800_000)),
                ts,
            })
        );
        assert_eq!(
            u.mark,
            Some(MarkPrice {
                mark: Some(d("14.3161")),
                index: Some(d("14.32")),
                ts
            })
        );
        assert_eq!(
            u.oi,
            Some(OpenInterest {
                oi: d("688.11"),
                oi_value: None,
                ts
            })
        );
        // The same push again changes nothing.
        let u = apply(&mut state, &data(DOC), ts).unwrap();
        assert_eq!(
            (u.ticker, u.funding, u.mark, u.oi),
            (None, None, None, None)
        );
        // Only the funding moves.
        let moved = DOC.replace("\"0.0000125\"", "\"0.0000130\"");
        let u = apply(&mut state, &data(&moved), ts).unwrap();
        assert_eq!(u.funding.map(|f| f.rate), Some(d("0.0000130")));
        assert_eq!((u.ticker, u.mark, u.oi), (None, None, None));
    }

    #[test]
    fn next_funding_is_the_next_full_hour() {
        let h = 3_600_000;
        assert_eq!(
            next_hour(Timestamp::from_millis(0)),
            Timestamp::from_millis(h)
        );
        assert_eq!(
            next_hour(Timestamp::from_millis(h - 1)),
            Timestamp::from_millis(h)
        );
        assert_eq!(
            next_hour(Timestamp::from_millis(h)),
            Timestamp::from_millis(2 * h)
        );
    }

    #[test]
    fn escaped_strings_parse_like_plain_ones() {
        let escaped = DOC
            .replace("\"BTC\"", "\"\\u0042TC\"")
            .replace("\"14.314\"", "\"\\u0031\\u0034.314\"");
        let ts = Timestamp(5);
        assert_eq!(
            apply(&mut CtxState::default(), &data(&escaped), ts),
            apply(&mut CtxState::default(), &data(DOC), ts)
        );
    }

    #[test]
    fn missing_mid_falls_back_to_mark() {
        let text = DOC.replace("\"midPx\":\"14.314\",", "");
        let u = apply(&mut CtxState::default(), &data(&text), Timestamp(5)).unwrap();
        assert_eq!(u.ticker.unwrap().last, Some(d("14.3161")));
    }

    /// One line per malformed field; the state stays as it was.
    #[test]
    fn malformed_ctx_is_an_error() {
        for bad in [
            DOC.replace("\"15.322\"", "\"x\""),
            DOC.replace("\"14.3161\"", "\"1e5\""),
            DOC.replace("\"14.314\"", "\"mid\""),
            DOC.replace("\"0.0000125\"", "\"\""),
            DOC.replace("\"688.11\"", "\"-1\""),
            DOC.replace("\"14.32\"", "14.32"),
            DOC.replace("\"81275.3\"", "\"-3\""),
            DOC.replace("\"coin\":\"BTC\",", ""),
        ] {
            let mut state = CtxState::default();
            assert!(
                apply(&mut state, &data(&bad), Timestamp(5)).is_err(),
                "{bad}"
            );
            assert_eq!(state, CtxState::default(), "state untouched: {bad}");
        }
    }
}
