//! NATS names: the subjects a channel's frames and snapshots travel on, the two streams, and
//! the headers that carry `seq`, `epoch` and the channel's mode.
//!
//! A channel `kind:venue:symbol[:…]` maps to `<prefix>.f.<kind>.<venue>.<symbol>[.…]` (frames)
//! and `<prefix>.s.…` (snapshots), each part escaped so that it is one subject token: every
//! byte outside `[A-Za-z0-9_-]` becomes `%XX` (so `.`, `*`, `>` and `%` never reach NATS
//! unescaped). Wildcards then select by position: `<prefix>.f.*.binance.>` is every channel of
//! one venue, `<prefix>.f.book.>` every book.

use hub::CacheMode;

/// Header: the frame's channel seq, as published by the ingest hub.
pub const SEQ: &str = "Tg-Seq";
/// Header: the channel's epoch.
pub const EPOCH: &str = "Tg-Epoch";
/// Header: the canonical channel name.
pub const CHANNEL: &str = "Tg-Channel";
/// Header: the channel's mode ([`mode_name`]), on snapshot records.
pub const MODE: &str = "Tg-Mode";
/// Header, on snapshot records at seq S: the frames stream's sequence after which the
/// channel's frames S + 1, S + 2, … are stored (an edge starts its consumer right after it).
pub const FROM: &str = "Tg-From";
/// Header: a writer's claim on a channel's frames subject (no payload, no seq of its own):
/// written when a forwarder starts, so a previous writer's next frame is refused.
pub const CLAIM: &str = "Tg-Claim";
/// Header: the number of frames in a batched frames message (absent: one frame). See
/// `batch` for the payload layout.
pub const BATCH: &str = "Tg-Batch";
/// JetStream's optimistic-concurrency header: the publish is refused unless the subject's
/// last message in the stream has this sequence (0: none), so a stale writer cannot append.
pub const EXPECTED_LAST_SUBJECT_SEQ: &str = "Nats-Expected-Last-Subject-Sequence";

/// The names one cluster uses, all under one prefix (so tests and clusters never collide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

/// Why a prefix cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cluster prefix must be 1 to 32 characters of [A-Za-z0-9_-]")]
pub struct BadPrefix;

impl Names {
    /// Names under `prefix` (`[A-Za-z0-9_-]{1,32}`: it is also part of stream names).
    pub fn new(prefix: &str) -> Result<Self, BadPrefix> {
        let ok = (1..=32).contains(&prefix.len())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(BadPrefix);
        }
        Ok(Self {
            prefix: prefix.to_string(),
        })
    }

    /// The stream of every channel's frames.
    pub fn frames_stream(&self) -> String {
        format!("{}_FRAMES", self.prefix)
    }

    /// The stream of the last snapshot record of each channel.
    pub fn snapshots_stream(&self) -> String {
        format!("{}_SNAP", self.prefix)
    }

    /// The KV bucket of venue leases.
    pub fn lease_bucket(&self) -> String {
        format!("{}_LEASE", self.prefix)
    }

    /// The KV bucket of instrument metadata, one key per venue.
    pub fn instruments_bucket(&self) -> String {
        format!("{}_INSTR", self.prefix)
    }

    /// Every frames subject (the frames stream's filter).
    pub fn all_frames(&self) -> String {
        format!("{}.f.>", self.prefix)
    }

    /// Every snapshot subject.
    pub fn all_snapshots(&self) -> String {
        format!("{}.s.>", self.prefix)
    }

    /// Frames of every channel of `venue` (a wildcard subject).
    pub fn venue_frames(&self, venue: &str) -> String {
        format!("{}.f.*.{}.>", self.prefix, escape(venue))
    }

    pub fn frames(&self, channel: &str) -> String {
        format!("{}.f.{}", self.prefix, tokens(channel))
    }

    pub fn snapshot(&self, channel: &str) -> String {
        format!("{}.s.{}", self.prefix, tokens(channel))
    }
}

/// A channel name as subject tokens: each `:`-separated part escaped.
fn tokens(channel: &str) -> String {
    channel.split(':').map(escape).collect::<Vec<_>>().join(".")
}

/// One subject token: bytes outside `[A-Za-z0-9_-]` as `%XX`; an empty part as `%`.
pub fn escape(part: &str) -> String {
    if part.is_empty() {
        return "%".into();
    }
    let mut out = String::with_capacity(part.len());
    for b in part.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The mode's name in [`MODE`] headers. The venue checksum algorithm is not sent: edges check
/// the tickgate checksum every book frame carries instead.
pub fn mode_name(mode: CacheMode) -> &'static str {
    match mode {
        CacheMode::None => "none",
        CacheMode::Latest => "latest",
        CacheMode::Book(_) => "book",
        CacheMode::MergedBook => "merged",
    }
}

/// The mode from a [`MODE`] header.
pub fn parse_mode(name: &str) -> Option<CacheMode> {
    Some(match name {
        "none" => CacheMode::None,
        "latest" => CacheMode::Latest,
        "book" => CacheMode::Book(book::ChecksumAlgo::None),
        "merged" => CacheMode::MergedBook,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_map_to_escaped_tokens() {
        let names = Names::new("tg").expect("prefix");
        let cases = [
            ("trades:binance:BTC-USDT", "tg.f.trades.binance.BTC-USDT"),
            ("book:all:BTC-USDT", "tg.f.book.all.BTC-USDT"),
            ("candles:okx:ETH-USDT:1m", "tg.f.candles.okx.ETH-USDT.1m"),
            ("onchain.logs:eth:0xab", "tg.f.onchain%2Elogs.eth.0xab"),
            ("ticker:sim:A*B>C%", "tg.f.ticker.sim.A%2AB%3EC%25"),
            ("x::y", "tg.f.x.%.y"),
        ];
        for (channel, subject) in cases {
            assert_eq!(names.frames(channel), subject, "{channel}");
        }
        assert_eq!(names.snapshot("ticker:sim:X"), "tg.s.ticker.sim.X");
        assert_eq!(names.venue_frames("binance"), "tg.f.*.binance.>");
    }

    #[test]
    fn prefixes_are_checked() {
        for bad in ["", "a.b", "a b", "x>", &"a".repeat(33)] {
            assert_eq!(Names::new(bad), Err(BadPrefix), "{bad:?}");
        }
        assert!(Names::new("tg_test-1").is_ok());
    }

    #[test]
    fn modes_round_trip() {
        for mode in [CacheMode::None, CacheMode::Latest, CacheMode::MergedBook] {
            assert_eq!(parse_mode(mode_name(mode)), Some(mode));
        }
        assert_eq!(parse_mode("bogus"), None);
    }
}
