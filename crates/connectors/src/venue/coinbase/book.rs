//! `l2_data` events of the `level2` channel.

use crate::venue::parse::Text;
use crate::venue::parse::decimal;
use model::Level;
use serde::Deserialize;

/// One product's part of an `l2_data` message.
#[derive(Debug, Clone, PartialEq)]
pub struct Level2Event {
    pub snapshot: bool,
    pub product: String,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow, rename = "type")]
    kind: Text<'a>,
    #[serde(borrow)]
    product_id: Text<'a>,
    #[serde(borrow, default)]
    updates: Vec<RawUpdate<'a>>,
}

#[derive(Deserialize)]
struct RawUpdate<'a> {
    #[serde(borrow)]
    side: Text<'a>,
    #[serde(borrow)]
    price_level: Text<'a>,
    #[serde(borrow)]
    new_quantity: Text<'a>,
}

/// Parses the `events` of an `l2_data` message. `new_quantity` is the absolute size at the
/// price; `"0"` removes it. Errors carry the product they concern, when known.
pub fn parse_level2(events: &str) -> Result<Vec<Level2Event>, (Option<String>, String)> {
    let raw: Vec<RawEvent> =
        serde_json::from_str(events).map_err(|e| (None, format!("l2_data: {e}")))?;
    raw.into_iter()
        .map(|e| {
            let fail = |reason: String| (Some(e.product_id.to_string()), reason);
            let snapshot = match e.kind.as_str() {
                "snapshot" => true,
                "update" => false,
                other => return Err(fail(format!("l2_data: unknown type {other:?}"))),
            };
            let (mut bids, mut asks) = (Vec::new(), Vec::new());
            for u in &e.updates {
                let level = Level::new(
                    decimal("price_level", &u.price_level).map_err(fail)?,
                    decimal("new_quantity", &u.new_quantity).map_err(fail)?,
                );
                match u.side.as_str() {
                    "bid" => bids.push(level),
                    "offer" | "ask" => asks.push(level),
                    other => return Err(fail(format!("l2_data: unknown side {other:?}"))),
                }
            }
            Ok(Level2Event {
                snapshot,
                product: e.product_id.to_string(),
                bids,
                asks,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(path: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(path).unwrap();
        v["events"].to_string()
    }

    #[test]
    fn documented_snapshot_and_update_parse() {
        let snap = parse_level2(&events(include_str!(
            "../../../test_data/coinbase/ws_level2_snapshot.json"
        )))
        .unwrap();
        assert!(snap[0].snapshot);
        assert_eq!(snap[0].product, "BTC-USD");
        assert_eq!(snap[0].bids.len(), 2);
        assert_eq!(snap[0].asks[0].price.to_string(), "21921.74");
        let upd = parse_level2(&events(include_str!(
            "../../../test_data/coinbase/ws_level2_update.json"
        )))
        .unwrap();
        assert!(!upd[0].snapshot);
        assert!(upd[0].bids[0].size.is_zero());
        let bad = r#"[{"type":"update","product_id":"BTC-USD","updates":[{"side":"bid","event_time":"x","price_level":"abc","new_quantity":"1"}]}]"#;
        assert_eq!(parse_level2(bad).unwrap_err().0.as_deref(), Some("BTC-USD"));
    }

    /// Regression (issue 15): every string of a documented message escaped parses the same.
    #[test]
    fn escaped_strings_parse_like_plain_ones() {
        for text in [
            include_str!("../../../test_data/coinbase/ws_level2_snapshot.json"),
            include_str!("../../../test_data/coinbase/ws_level2_update.json"),
        ] {
            let events = events(text);
            let escaped = crate::venue::parse::escaped(&events);
            assert_eq!(
                parse_level2(&escaped).unwrap(),
                parse_level2(&events).unwrap()
            );
        }
    }
}
