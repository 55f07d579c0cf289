//! `subscribe` (with `resume`) and `unsubscribe`.

use super::{End, Session, Sub};
use crate::metrics::KINDS;
use auth::Scope;
use futures_util::SinkExt;
use hub::{Lost, Subscription, Topic};
use model::{Channel, ChannelKind};
use protocol::{ErrorCode, RequestId, ResumeFrom, ServerMessage};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Why a `subscribe` is refused: the code, the message and the offending channel, if one.
type Refused = (ErrorCode, String, Option<String>);

impl Session {
    /// Resolves channel names to served channels, all or nothing.
    fn resolve(&self, names: &[String]) -> Result<Vec<Arc<dyn Topic>>, Refused> {
        let max = self.state.config().ws.max_channels_per_connection;
        if names.is_empty() {
            return Err((
                ErrorCode::BadRequest,
                "channels must not be empty".into(),
                None,
            ));
        }
        if names.len() > max {
            return Err((
                ErrorCode::TooManyChannels,
                format!("at most {max} channels per connection"),
                None,
            ));
        }
        let mut handles: Vec<Arc<dyn Topic>> = Vec::with_capacity(names.len());
        for name in names {
            let shown: String = name.chars().take(model::channel::MAX_CHANNEL_LEN).collect();
            let channel: Channel = name.parse().map_err(|e: model::ModelError| {
                (
                    ErrorCode::InvalidChannel,
                    e.to_string(),
                    Some(shown.clone()),
                )
            })?;
            if channel.kind == ChannelKind::Alerts {
                // Private: the channel of the key's principal, never another's.
                let Some(key) = &self.auth.key else {
                    return Err((
                        ErrorCode::MissingCredentials,
                        "the alerts channel needs a key with the scope alerts:write".into(),
                        Some(shown),
                    ));
                };
                let handle = self.state.hub().private_topic(&key.view.principal);
                if !handles.iter().any(|h| Arc::ptr_eq(h, &handle)) {
                    handles.push(handle);
                }
                continue;
            }
            let Some(handle) = self.state.hub().topic(&channel.to_string()) else {
                return Err((
                    ErrorCode::UnknownChannel,
                    format!(
                        "channel {channel} is not served by this gateway; see GET /v1/instruments"
                    ),
                    Some(shown),
                ));
            };
            if !handles.iter().any(|h| Arc::ptr_eq(h, &handle)) {
                handles.push(handle);
            }
        }
        Ok(handles)
    }

    pub(super) async fn subscribe(
        &mut self,
        id: Option<RequestId>,
        names: Vec<String>,
        resume: BTreeMap<String, ResumeFrom>,
    ) -> Result<(), End> {
        let handles = match self.resolve(&names) {
            Ok(handles) => handles,
            Err((code, message, channel)) => {
                return self.reply_error(code, &message, id, channel).await;
            }
        };
        // Resume keys are names listed in `channels` (checked by the parser), so they parse.
        let resume: HashMap<String, ResumeFrom> = resume
            .into_iter()
            .filter_map(|(name, from)| Some((name.parse::<Channel>().ok()?.to_string(), from)))
            .collect();
        let new: Vec<_> = handles
            .iter()
            .filter(|h| !self.by_name.contains_key(h.name()))
            .cloned()
            .collect();
        let max = self.state.config().ws.max_channels_per_connection;
        if self.by_name.len() + new.len() > max {
            let message = format!(
                "at most {max} channels per connection ({} already subscribed)",
                self.by_name.len()
            );
            return self
                .reply_error(ErrorCode::TooManyChannels, &message, id, None)
                .await;
        }
        // The key's scope and per-key subscription limit (anonymous: the `[auth]` policy).
        if let Err((code, message)) = self
            .admit_channels(new.len() as u32, &scopes_of(&new))
            .await
        {
            let channel = names.first().filter(|_| names.len() == 1).cloned();
            return self.reply_error(code, &message, id, channel).await;
        }
        // Join every new channel first (each atomically), so the ack can say what was
        // recovered; frames published meanwhile wait in the receivers.
        let (joins, recovered, positions) = join(new, &resume);
        let channels = handles.iter().map(|h| h.name().to_string()).collect();
        self.feed_message(&ServerMessage::Subscribed {
            id,
            channels,
            recovered,
            positions,
        })
        .await?;
        for (handle, joined, lost) in joins {
            let resumed = resume.contains_key(handle.name().as_ref());
            self.attach(handle, joined, lost, resumed).await?;
        }
        self.socket.flush().await.map_err(End::Socket)
    }

    /// Attaches one joined channel to the session: its slot and receiver, the resume metric,
    /// a `gap` notice for what a lost resume missed (channels without a snapshot), then the
    /// replayed frames or the initial snapshot.
    async fn attach(
        &mut self,
        handle: Arc<dyn Topic>,
        joined: Subscription,
        lost: Option<(Lost, u64)>,
        resumed: bool,
    ) -> Result<(), End> {
        let kind = handle.channel().kind;
        let kind_index = KINDS.iter().position(|k| *k == kind.label()).unwrap_or(0);
        let slot = self.next_slot;
        self.next_slot = self.next_slot.wrapping_add(1);
        self.by_name.insert(handle.name().clone(), slot);
        // Channels without a snapshot to rejoin from: a client is told what it missed.
        let gap_notices = matches!(
            kind,
            ChannelKind::Trades
                | ChannelKind::Liquidations
                | ChannelKind::Alerts
                | ChannelKind::OnchainBlocks
                | ChannelKind::OnchainLogs
        );
        if let Some((lost, from_seq)) = lost {
            self.state
                .metrics()
                .resumes_lost
                .fetch_add(1, Ordering::Relaxed);
            if gap_notices {
                // The part of the current epoch the client missed; with another epoch,
                // everything of this one so far (possibly nothing).
                let from_seq = match lost {
                    Lost::EpochChanged => 1,
                    Lost::HistoryExpired | Lost::Ahead => from_seq + 1,
                };
                let gap = ServerMessage::Gap {
                    channel: handle.name().to_string(),
                    from_seq: from_seq.min(joined.seq + 1),
                    to_seq: joined.seq,
                    reason: lost.as_str().into(),
                };
                self.feed_message(&gap).await?;
            }
        } else if resumed {
            self.state
                .metrics()
                .resumes_recovered
                .fetch_add(1, Ordering::Relaxed);
        }
        self.info.insert(
            slot,
            Sub {
                kind: kind_index,
                gap_notices,
                last_seq: joined.seq,
                handle,
            },
        );
        self.subs.insert(slot, joined.rx);
        for frame in &joined.replay {
            self.feed_frame(frame, kind_index).await?;
        }
        if let Some(frame) = joined.initial {
            self.feed_frame(&frame, kind_index).await?;
        }
        Ok(())
    }

    pub(super) async fn unsubscribe(
        &mut self,
        id: Option<RequestId>,
        names: Vec<String>,
    ) -> Result<(), End> {
        let mut channels = Vec::with_capacity(names.len());
        for name in &names {
            match name.parse::<Channel>() {
                Ok(channel) => channels.push(channel.to_string()),
                Err(e) => {
                    let shown = name.chars().take(model::channel::MAX_CHANNEL_LEN).collect();
                    return self
                        .reply_error(ErrorCode::InvalidChannel, &e.to_string(), id, Some(shown))
                        .await;
                }
            }
        }
        if channels.is_empty() {
            return self
                .reply_error(
                    ErrorCode::BadRequest,
                    "channels must not be empty",
                    id,
                    None,
                )
                .await;
        }
        let mut removed = 0;
        for name in &channels {
            if let Some(slot) = self.by_name.remove(name.as_str()) {
                self.subs.remove(slot);
                self.info.remove(&slot);
                removed += 1;
            }
        }
        self.release_channels(removed);
        self.send_message(&ServerMessage::Unsubscribed { id, channels })
            .await
    }
}

/// The scopes the channels need: `alerts:write` for the private alerts channel,
/// `market:read` for the others.
fn scopes_of(handles: &[Arc<dyn Topic>]) -> Vec<Scope> {
    let mut scopes = Vec::new();
    for handle in handles {
        let scope = match handle.channel().kind {
            ChannelKind::Alerts => Scope::AlertsWrite,
            _ => Scope::MarketRead,
        };
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    scopes
}

/// One joined channel: its handle, its subscription, and for a lost resume why and from
/// which seq.
type Joined = (Arc<dyn Topic>, Subscription, Option<(Lost, u64)>);

/// Joins each channel (resuming those in `resume`), each atomically; returns the joins with
/// what the ack reports: `recovered` per resumed channel, and the position of every channel
/// joined afresh or whose resume was lost.
fn join(
    handles: Vec<Arc<dyn Topic>>,
    resume: &HashMap<String, ResumeFrom>,
) -> (
    Vec<Joined>,
    BTreeMap<String, bool>,
    BTreeMap<String, ResumeFrom>,
) {
    let mut recovered = BTreeMap::new();
    let mut positions = BTreeMap::new();
    let mut joins = Vec::with_capacity(handles.len());
    for handle in handles {
        let (joined, lost) = match resume.get(handle.name().as_ref()) {
            Some(from) => {
                let resumed = handle.resume(from);
                recovered.insert(handle.name().to_string(), resumed.outcome.is_ok());
                (
                    resumed.subscription,
                    resumed.outcome.err().map(|l| (l, from.seq)),
                )
            }
            None => (handle.subscribe(false), None),
        };
        if lost.is_some() || !resume.contains_key(handle.name().as_ref()) {
            positions.insert(
                handle.name().to_string(),
                ResumeFrom {
                    epoch: handle.epoch().to_string(),
                    seq: joined.seq,
                },
            );
        }
        joins.push((handle, joined, lost));
    }
    (joins, recovered, positions)
}
