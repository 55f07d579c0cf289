//! `subscribe`/`unsubscribe` frames (`{"op":…,"args":[{"channel":…,"instId":…}]}`) and their
//! acknowledgements, one per argument. `liquidation-orders` is subscribed by instrument type
//! (`{"channel":"liquidation-orders","instType":"SWAP"}`), every other channel by `instId`.

use model::Timestamp;
use std::collections::BTreeMap;

/// The channel subscribed by `instType` rather than `instId`.
pub(crate) const LIQUIDATIONS: &str = "liquidation-orders";

/// Arguments per frame (OKX limits a request to 64 KiB; this stays far below it).
pub(crate) const ARGS_PER_FRAME: usize = 100;

/// Arguments awaiting acknowledgement: `(op, channel, instId)` → when sent.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    pending: BTreeMap<(String, String, String), Timestamp>,
}

impl Acks {
    /// Frames for `op` (`subscribe` or `unsubscribe`) of `(channel, instId)` arguments
    /// (`(liquidation-orders, instType)` for [`LIQUIDATIONS`]).
    pub(crate) fn frames(
        &mut self,
        op: &str,
        args: &[(&str, &str)],
        now: Timestamp,
    ) -> Vec<String> {
        args.chunks(ARGS_PER_FRAME)
            .map(|chunk| {
                let list: Vec<serde_json::Value> = chunk
                    .iter()
                    .map(|(channel, inst)| {
                        self.pending
                            .insert((op.into(), (*channel).into(), (*inst).into()), now);
                        if *channel == LIQUIDATIONS {
                            serde_json::json!({ "channel": channel, "instType": inst })
                        } else {
                            serde_json::json!({ "channel": channel, "instId": inst })
                        }
                    })
                    .collect();
                serde_json::json!({ "op": op, "args": list }).to_string()
            })
            .collect()
    }

    /// The venue confirmed `op` for one argument.
    pub(crate) fn acknowledge(&mut self, op: &str, channel: &str, inst: &str) -> bool {
        self.pending
            .remove(&(op.to_string(), channel.to_string(), inst.to_string()))
            .is_some()
    }

    /// The first argument unconfirmed for longer than `timeout_us`, described.
    pub(crate) fn overdue(&self, now: Timestamp, timeout_us: i64) -> Option<String> {
        self.pending
            .iter()
            .find(|(_, sent)| now.micros_since(**sent) > timeout_us)
            .map(|((op, channel, inst), _)| format!("{op} {channel} {inst}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_follow_the_documented_shape_and_each_argument_is_acked() {
        let mut acks = Acks::default();
        let frames = acks.frames(
            "subscribe",
            &[("books", "BTC-USDT"), ("trades", "BTC-USDT")],
            Timestamp(0),
        );
        assert_eq!(
            frames,
            [
                r#"{"args":[{"channel":"books","instId":"BTC-USDT"},{"channel":"trades","instId":"BTC-USDT"}],"op":"subscribe"}"#
            ]
        );
        assert!(acks.acknowledge("subscribe", "books", "BTC-USDT"));
        assert!(!acks.acknowledge("subscribe", "books", "BTC-USDT"), "once");
        assert_eq!(
            acks.overdue(Timestamp(10_000_000), 1).as_deref(),
            Some("subscribe trades BTC-USDT")
        );
        assert!(acks.overdue(Timestamp(10), 1_000).is_none());
        let frames = acks.frames("subscribe", &[(LIQUIDATIONS, "SWAP")], Timestamp(0));
        assert_eq!(
            frames,
            [r#"{"args":[{"channel":"liquidation-orders","instType":"SWAP"}],"op":"subscribe"}"#]
        );
        assert!(acks.acknowledge("subscribe", LIQUIDATIONS, "SWAP"));
        let many: Vec<(&str, &str)> = (0..250).map(|_| ("books", "X-Y")).collect();
        assert_eq!(acks.frames("subscribe", &many, Timestamp(0)).len(), 3);
    }
}
