//! `subscribe`/`unsubscribe` frames with `req_id`, and their acknowledgements.

use model::Timestamp;
use std::collections::BTreeMap;

/// Requests awaiting acknowledgement: `req_id` → (sent, acks still expected, what).
#[derive(Debug, Default)]
pub(crate) struct Requests {
    next_id: u64,
    pending: BTreeMap<u64, (Timestamp, usize, String)>,
}

impl Requests {
    /// A frame for `method` on `channel` for `symbols` (one ack expected per symbol).
    pub(crate) fn frame(
        &mut self,
        method: &str,
        channel: &str,
        symbols: &[String],
        depth: Option<usize>,
        now: Timestamp,
    ) -> String {
        self.next_id += 1;
        let id = self.next_id;
        let mut params = serde_json::json!({ "channel": channel, "symbol": symbols });
        if let Some(depth) = depth {
            params["depth"] = depth.into();
        }
        if method == "subscribe" {
            // Books and tickers start from a snapshot; trades do not replay history.
            params["snapshot"] = matches!(channel, "book" | "ticker").into();
        }
        self.pending.insert(
            id,
            (
                now,
                symbols.len(),
                format!("{method} {channel} {}", symbols.join(",")),
            ),
        );
        serde_json::json!({ "method": method, "params": params, "req_id": id }).to_string()
    }

    /// One acknowledgement of `req_id`.
    pub(crate) fn acknowledge(&mut self, id: u64) {
        if let Some((_, remaining, _)) = self.pending.get_mut(&id) {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                self.pending.remove(&id);
            }
        }
    }

    pub(crate) fn what(&self, id: u64) -> Option<&str> {
        self.pending.get(&id).map(|(_, _, what)| what.as_str())
    }

    pub(crate) fn overdue(&self, now: Timestamp, timeout_us: i64) -> Option<&str> {
        self.pending
            .values()
            .find(|(sent, _, _)| now.micros_since(*sent) > timeout_us)
            .map(|(_, _, what)| what.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_frames_follow_the_documented_shape() {
        let mut r = Requests::default();
        let frame = r.frame(
            "subscribe",
            "book",
            &["BTC/USD".into(), "ETH/USD".into()],
            Some(10),
            Timestamp(0),
        );
        assert_eq!(
            frame,
            r#"{"method":"subscribe","params":{"channel":"book","depth":10,"snapshot":true,"symbol":["BTC/USD","ETH/USD"]},"req_id":1}"#
        );
        r.acknowledge(1);
        assert!(
            r.overdue(Timestamp(100_000_000), 1).is_some(),
            "one ack per symbol"
        );
        r.acknowledge(1);
        assert!(r.overdue(Timestamp(100_000_000), 1).is_none());
        let trade = r.frame(
            "subscribe",
            "trade",
            &["BTC/USD".into()],
            None,
            Timestamp(0),
        );
        assert!(trade.contains(r#""snapshot":false"#));
    }
}
