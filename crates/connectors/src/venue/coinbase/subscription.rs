//! Subscribe frames (one channel per message) and the `subscriptions` acknowledgement.

use model::Timestamp;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// A `subscribe`/`unsubscribe` frame for one channel. `heartbeats` takes no products.
pub(crate) fn frame(kind: &str, channel: &str, products: &[String]) -> String {
    if products.is_empty() {
        serde_json::json!({ "type": kind, "channel": channel }).to_string()
    } else {
        serde_json::json!({ "type": kind, "product_ids": products, "channel": channel }).to_string()
    }
}

#[derive(Deserialize)]
struct SubscriptionsEvent {
    subscriptions: HashMap<String, Vec<String>>,
}

/// Channels subscribed and not yet confirmed by a `subscriptions` message.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    channels: BTreeMap<String, Timestamp>,
}

impl Pending {
    pub(crate) fn expect(&mut self, channel: &str, now: Timestamp) {
        self.channels.entry(channel.to_string()).or_insert(now);
    }

    /// Clears the channels a `subscriptions` message's events list.
    pub(crate) fn confirm(&mut self, events: &str) -> Result<(), String> {
        let events: Vec<SubscriptionsEvent> =
            serde_json::from_str(events).map_err(|e| format!("subscriptions: {e}"))?;
        for event in events {
            for channel in event.subscriptions.keys() {
                self.channels.remove(channel);
            }
        }
        Ok(())
    }

    pub(crate) fn overdue(&self, now: Timestamp, timeout_us: i64) -> Option<&str> {
        self.channels
            .iter()
            .find(|(_, sent)| now.micros_since(**sent) > timeout_us)
            .map(|(c, _)| c.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_name_one_channel_and_acks_clear_it() {
        assert_eq!(
            frame("subscribe", "level2", &["BTC-USD".into()]),
            r#"{"channel":"level2","product_ids":["BTC-USD"],"type":"subscribe"}"#
        );
        assert_eq!(
            frame("subscribe", "heartbeats", &[]),
            r#"{"channel":"heartbeats","type":"subscribe"}"#
        );
        let mut p = Pending::default();
        p.expect("level2", Timestamp(0));
        p.expect("heartbeats", Timestamp(0));
        p.expect("market_trades", Timestamp(0));
        let ack: serde_json::Value = serde_json::from_str(include_str!(
            "../../../test_data/coinbase/ws_subscriptions_ack.json"
        ))
        .unwrap();
        p.confirm(&ack["events"].to_string()).unwrap();
        assert_eq!(p.overdue(Timestamp(10), 1), Some("market_trades"));
    }
}
