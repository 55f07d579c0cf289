//! Stream names, `SUBSCRIBE`/`UNSUBSCRIBE` frames and acknowledgement tracking.

use model::Timestamp;
use std::collections::BTreeMap;

/// Streams per `SUBSCRIBE` frame (keeps frames small; the connection limit is 1024 streams).
pub(crate) const STREAMS_PER_FRAME: usize = 100;

/// The streams of one symbol (lowercase native name).
pub(crate) fn streams(native_lower: &str) -> [String; super::STREAMS_PER_SYMBOL] {
    [
        format!("{native_lower}@trade"),
        format!("{native_lower}@depth@100ms"),
        format!("{native_lower}@ticker"),
    ]
}

/// Requests sent and not yet acknowledged, by id.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    next_id: u64,
    pending: BTreeMap<u64, (Timestamp, String)>,
}

impl Acks {
    /// Builds a `method` frame for `params` and remembers it until its ack.
    pub(crate) fn request(&mut self, method: &str, params: &[String], now: Timestamp) -> String {
        self.next_id += 1;
        let id = self.next_id;
        let frame = serde_json::json!({ "method": method, "params": params, "id": id }).to_string();
        let what = format!("{method} {}", params.join(","));
        self.pending.insert(id, (now, what));
        frame
    }

    /// An ack (`{"result":null,"id":N}`) arrived; false if the id was unknown.
    pub(crate) fn acknowledge(&mut self, id: u64) -> bool {
        self.pending.remove(&id).is_some()
    }

    /// The request an error answer refers to.
    pub(crate) fn fail(&mut self, id: u64) -> Option<String> {
        self.pending.remove(&id).map(|(_, what)| what)
    }

    /// The oldest request still unacknowledged after `timeout_us`.
    pub(crate) fn overdue(&self, now: Timestamp, timeout_us: i64) -> Option<&str> {
        self.pending
            .values()
            .find(|(sent, _)| now.micros_since(*sent) > timeout_us)
            .map(|(_, what)| what.as_str())
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_ids_and_acks_clear_them() {
        let mut acks = Acks::default();
        let frame = acks.request("SUBSCRIBE", &streams("btcusdt"), Timestamp(0));
        assert_eq!(
            frame,
            r#"{"id":1,"method":"SUBSCRIBE","params":["btcusdt@trade","btcusdt@depth@100ms","btcusdt@ticker"]}"#
        );
        assert_eq!(acks.overdue(Timestamp(5_000_000), 10_000_000), None);
        assert!(acks.overdue(Timestamp(11_000_000), 10_000_000).is_some());
        assert!(acks.acknowledge(1));
        assert!(!acks.acknowledge(1));
        assert_eq!(acks.outstanding(), 0);
    }
}
