//! Applying one recorded input to a session: the single code path shared by the live driver
//! and by replay, which is what makes a replay reproduce the live output exactly.

use super::record::RecordKind;
use super::venue_protocol::{Io, Session};
use model::Symbol;

/// Feeds `kind` to `session` (whose connection carries `symbols`). `Venue`, `Instruments` and
/// `Takeover` are handled by the caller.
pub(crate) fn apply(session: &mut dyn Session, kind: &RecordKind, symbols: &[Symbol], io: &mut Io) {
    match kind {
        RecordKind::Open { .. } => session.open(io),
        RecordKind::Ws { text } => session.on_text(text, io),
        RecordKind::Rest { key, body, error } => {
            let answer = match (body, error) {
                (Some(body), _) => Ok(body.as_str()),
                (None, Some(error)) => Err(error.as_str()),
                (None, None) => Err("empty answer"),
            };
            session.on_rest(key, answer, io);
        }
        RecordKind::Resync { symbol } => session.resync(symbol, io),
        RecordKind::Resubscribe { symbol } => session.resubscribe(symbol, io),
        RecordKind::Tick => session.on_tick(io.recv_ts, io),
        RecordKind::Overflow => {
            for symbol in symbols {
                session.resync(symbol, io);
                io.unsynced(symbol, "overflow");
            }
        }
        RecordKind::Close { .. } => {
            for symbol in symbols {
                io.unsynced(symbol, "disconnected");
            }
        }
        RecordKind::Venue { .. } | RecordKind::Instruments { .. } | RecordKind::Takeover { .. } => {
        }
    }
}
