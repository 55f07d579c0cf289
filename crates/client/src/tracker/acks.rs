//! Acks and errors: what a `subscribed` or `error` reply does to the channels it is about.

use super::{Chan, Out, Phase, Req, Tracker, num};
use crate::event::Event;
use model::{Channel, ChannelKind};
use protocol::{ErrorBody, ResumeFrom};
use std::collections::BTreeMap;
use std::sync::Arc;

impl Tracker {
    pub(super) fn on_subscribed(
        &mut self,
        id: Option<u64>,
        channels: Vec<String>,
        recovered: BTreeMap<String, bool>,
        positions: BTreeMap<String, ResumeFrom>,
        out: &mut Out,
    ) {
        let Some(id) = id else { return };
        match self.requests.remove(&id) {
            Some(Req::Subscribe) => {
                for name in &channels {
                    self.track(name);
                }
                out.acks.push((id, Ok(channels.clone())));
            }
            Some(Req::Rejoin(_)) => {}
            _ => return,
        }
        let mut ok = Vec::new();
        let mut lost = Vec::new();
        let first_resync = out.events.len();
        for (name, recovered) in recovered {
            let Some(chan) = self.channels.get_mut(name.as_str()) else {
                continue;
            };
            if recovered {
                ok.push(chan.name.clone());
                continue;
            }
            lost.push(chan.name.clone());
            if let Some(mirror) = &chan.mirror {
                mirror.write().invalidate();
                chan.resyncing = true;
                let seq = chan.pos.as_ref().map_or(0, |p| p.1);
                out.events.push(Event::Resync {
                    channel: chan.name.clone(),
                    seq,
                    reason: "not_recovered".into(),
                });
            }
        }
        for (name, at) in positions {
            if let Some(chan) = self.channels.get_mut(name.as_str()) {
                chan.pos = Some((at.epoch.into(), at.seq));
            }
        }
        for name in &channels {
            if let Some(chan) = self.channels.get_mut(name.as_str())
                && chan.phase == Phase::Joining(id)
            {
                chan.phase = Phase::Live;
            }
        }
        if !ok.is_empty() || !lost.is_empty() {
            // Put the summary before the per-channel resyncs it explains.
            out.events.insert(
                first_resync,
                Event::Recovered {
                    recovered: ok,
                    lost,
                },
            );
        }
    }

    /// Starts tracking an acked channel (no-op if already tracked).
    fn track(&mut self, name: &str) {
        if self.channels.contains_key(name) {
            return;
        }
        let Ok(channel) = name.parse::<Channel>() else {
            return;
        };
        let name: Arc<str> = name.into();
        let mirror =
            (self.mirror_books && channel.kind == ChannelKind::Book).then(|| self.books.add(&name));
        self.channels.insert(
            name.clone(),
            Chan {
                name,
                kind: channel.kind,
                pos: None,
                phase: Phase::Live,
                mirror,
                resyncing: false,
            },
        );
    }

    pub(super) fn on_error(&mut self, body: ErrorBody, out: &mut Out) {
        let req = num(body.id.clone()).and_then(|id| Some((id, self.requests.remove(&id)?)));
        match req {
            Some((id, Req::Subscribe | Req::Unsubscribe)) => out.acks.push((id, Err(body))),
            Some((id, Req::Rejoin(mut names))) => {
                // A channel the gateway no longer serves (e.g. restarted with another config)
                // is dropped; the rest of the batch is joined again.
                if let Some(bad) = &body.channel {
                    names.retain(|n| **n != **bad);
                    self.channels.remove(bad.as_str());
                    self.books.remove(bad);
                    let retry: Vec<_> = names
                        .into_iter()
                        .filter(|n| {
                            self.channels
                                .get(n)
                                .is_some_and(|c| c.phase == Phase::Joining(id))
                        })
                        .collect();
                    if !retry.is_empty() {
                        let op = self.join(retry);
                        out.ops.push(op);
                    }
                } else {
                    out.reconnect = true;
                }
                out.events.push(Event::ServerError(body));
            }
            Some((_, Req::Internal)) => {}
            None => {
                // The gateway rate-limits before it reads a request, so such an error carries
                // no id and the request it refused is unknown: replace the connection (with
                // backoff) rather than leave a request unanswered forever.
                if body.code == protocol::ErrorCode::RateLimited && !self.requests.is_empty() {
                    out.reconnect = true;
                }
                out.events.push(Event::ServerError(body));
            }
        }
    }
}
