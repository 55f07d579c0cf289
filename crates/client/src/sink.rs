//! The bounded event buffer between the connection task and the application, with its
//! overflow policy ([`Overflow`]).

use crate::event::Event;
use crate::options::Overflow;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

#[derive(Debug)]
pub(crate) struct Sink {
    tx: mpsc::Sender<Event>,
    overflow: Overflow,
    /// Under `DropData`: per channel, the seq range of data events dropped and not yet
    /// reported.
    dropped: BTreeMap<Arc<str>, (u64, u64)>,
}

impl Sink {
    pub(crate) fn new(tx: mpsc::Sender<Event>, overflow: Overflow) -> Self {
        Self {
            tx,
            overflow,
            dropped: BTreeMap::new(),
        }
    }

    /// Hands `event` to the application per the policy. False when the application is gone.
    pub(crate) async fn send(&mut self, event: Event) -> bool {
        if self.overflow == Overflow::DropData {
            if !self.report_dropped(false).await {
                return false;
            }
            if event.is_data() {
                return match self.tx.try_send(event) {
                    Ok(()) => true,
                    Err(TrySendError::Full(event)) => {
                        if let Some(meta) = event.meta() {
                            let range = self
                                .dropped
                                .entry(meta.channel.clone())
                                .or_insert((meta.seq, meta.seq));
                            range.1 = meta.seq;
                        }
                        true
                    }
                    Err(TrySendError::Closed(_)) => false,
                };
            }
            // A control event waits, after the gaps it follows.
            if !self.report_dropped(true).await {
                return false;
            }
        }
        self.tx.send(event).await.is_ok()
    }

    /// Reports dropped ranges as `Gap` events: as many as fit, or all of them (waiting) when
    /// `wait`. False when the application is gone.
    async fn report_dropped(&mut self, wait: bool) -> bool {
        while let Some((channel, (from_seq, to_seq))) = self.dropped.pop_first() {
            let gap = Event::Gap {
                channel: channel.clone(),
                from_seq,
                to_seq,
                reason: "client_buffer_full".into(),
            };
            if wait {
                if self.tx.send(gap).await.is_err() {
                    return false;
                }
                continue;
            }
            match self.tx.try_send(gap) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.dropped.insert(channel, (from_seq, to_seq));
                    return true;
                }
                Err(TrySendError::Closed(_)) => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Meta, TradesMessage};

    fn trade(seq: u64) -> Event {
        Event::Trade(TradesMessage {
            meta: Meta {
                channel: "trades:sim:BTC-USDT".into(),
                epoch: "e".into(),
                seq,
                ts: 0,
                recv_ts: 0,
            },
            trades: Vec::new(),
        })
    }

    #[tokio::test]
    async fn drop_data_reports_what_it_dropped_as_one_gap() {
        let (tx, mut rx) = mpsc::channel(2);
        let mut sink = Sink::new(tx, Overflow::DropData);
        for seq in 1..=10 {
            assert!(sink.send(trade(seq)).await);
        }
        assert_eq!(rx.recv().await.unwrap().meta().unwrap().seq, 1);
        assert_eq!(rx.recv().await.unwrap().meta().unwrap().seq, 2);
        // Room again: the next send first reports 3..=10.
        assert!(sink.send(trade(11)).await);
        assert_eq!(
            rx.recv().await.unwrap(),
            Event::Gap {
                channel: "trades:sim:BTC-USDT".into(),
                from_seq: 3,
                to_seq: 10,
                reason: "client_buffer_full".into()
            }
        );
        assert_eq!(rx.recv().await.unwrap().meta().unwrap().seq, 11);
        drop(rx);
        assert!(!sink.send(trade(12)).await, "application gone");
    }
}
