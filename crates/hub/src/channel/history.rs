//! The resume history of a channel: bounded by count and age, replayed exactly or not at all.

use super::{ChannelHandle, State, Subscription};
use protocol::ResumeFrom;
use std::time::Duration;
use tokio::time::Instant;

/// How much of a channel's past is kept for clients that resume: at most `size` frames, none
/// older than `ttl`. `size` 0 keeps nothing (resume never recovers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    pub size: usize,
    pub ttl: Duration,
}

/// Why a resume position could not be recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// The position is from another epoch (the gateway restarted): nothing of it is kept.
    EpochChanged,
    /// Some message after the position is no longer in the history (count or age limit).
    HistoryExpired,
    /// The position is after the channel's last message: it was never published here.
    Ahead,
}

impl Lost {
    /// Stable reason string, used in `gap` notices.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EpochChanged => "epoch_changed",
            Self::HistoryExpired => "history_expired",
            Self::Ahead => "position_ahead",
        }
    }
}

/// The outcome of [`ChannelHandle::resume`].
#[derive(Debug)]
pub struct Resumed {
    pub subscription: Subscription,
    /// `Ok` when `subscription.replay` holds everything after the position; otherwise why not,
    /// and `subscription` is a fresh join (snapshot marked as a resync, or nothing for trades).
    pub outcome: Result<(), Lost>,
}

impl ChannelHandle {
    /// Joins the channel right after `from`: if `from` is in the current epoch and every frame
    /// after it is still in the history, `replay` holds exactly those frames and the receiver
    /// continues after the last of them. Otherwise this is a fresh join marked as a resync
    /// (never a partial replay). History and receiver are taken under the channel lock, so no
    /// frame published meanwhile can fall between them.
    pub fn resume(&self, from: &ResumeFrom) -> Resumed {
        let mut state = self.state.lock();
        let rx = self.tx.subscribe();
        self.prune(&mut state, Instant::now());
        let seq = state.seq;
        let outcome = if *from.epoch != *state.epoch {
            Err(Lost::EpochChanged)
        } else if from.seq > seq {
            Err(Lost::Ahead)
        } else {
            // Frames in the history are `seq - len + 1 ..= seq`.
            let oldest = seq + 1 - state.history.len() as u64;
            if from.seq + 1 >= oldest {
                Ok(())
            } else {
                Err(Lost::HistoryExpired)
            }
        };
        match outcome {
            Ok(()) => {
                let skip = state.history.len() - (seq - from.seq) as usize;
                let replay = state
                    .history
                    .iter()
                    .skip(skip)
                    .map(|(_, frame)| frame.clone())
                    .collect();
                Resumed {
                    subscription: Subscription {
                        seq,
                        initial: None,
                        replay,
                        rx,
                    },
                    outcome: Ok(()),
                }
            }
            Err(lost) => {
                let pending = self.join(&mut state, rx, true);
                drop(state);
                Resumed {
                    subscription: self.finish(pending),
                    outcome: Err(lost),
                }
            }
        }
    }

    /// The first seq still in the history (`seq + 1` when it is empty).
    pub fn history_start(&self) -> u64 {
        let mut state = self.state.lock();
        self.prune(&mut state, Instant::now());
        state.seq + 1 - state.history.len() as u64
    }

    /// Drops history frames beyond the count limit or older than the age limit.
    pub(super) fn prune(&self, state: &mut State, now: Instant) {
        while state.history.len() > self.history.size {
            state.history.pop_front();
        }
        while state
            .history
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > self.history.ttl)
        {
            state.history.pop_front();
        }
    }
}
