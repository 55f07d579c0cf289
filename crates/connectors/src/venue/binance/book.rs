//! Diff-depth events, REST snapshots and the per-symbol sync state machine (the documented
//! "how to manage a local order book correctly" algorithm).

use crate::venue::parse::Levels;
use model::{BookDelta, BookSnapshot, Level, Timestamp};
use serde::Deserialize;
use std::collections::VecDeque;

/// Diff events buffered per symbol while its snapshot is fetched; beyond this the buffer is
/// dropped and the snapshot fetched again.
pub(crate) const MAX_BUFFERED: usize = 10_000;

/// A `depthUpdate` event.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthUpdate {
    pub first: u64,
    pub last: u64,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    pub event_ts: Timestamp,
}

/// A `depthUpdate`'s fields; `s` (the symbol) is not read: the stream names it.
#[derive(Deserialize)]
struct RawDepth {
    #[serde(rename = "E")]
    event_time: i64,
    #[serde(rename = "U")]
    first: u64,
    #[serde(rename = "u")]
    last: u64,
    #[serde(rename = "b")]
    bids: Levels,
    #[serde(rename = "a")]
    asks: Levels,
}

impl DepthUpdate {
    pub fn parse(data: &str) -> Result<Self, String> {
        let raw: RawDepth = serde_json::from_str(data).map_err(|e| format!("depthUpdate: {e}"))?;
        Self::build(raw.first, raw.last, raw.bids.0, raw.asks.0, raw.event_time)
    }

    /// Validates and converts the fields of a `depthUpdate`.
    pub(crate) fn build(
        first: u64,
        last: u64,
        bids: Vec<Level>,
        asks: Vec<Level>,
        event_time: i64,
    ) -> Result<Self, String> {
        if first > last {
            return Err(format!("depthUpdate: U {first} > u {last}"));
        }
        Ok(Self {
            first,
            last,
            bids,
            asks,
            event_ts: Timestamp::from_millis(event_time),
        })
    }

    pub(crate) fn into_delta(self, recv_ts: Timestamp) -> BookDelta {
        BookDelta {
            first_seq: self.first,
            last_seq: self.last,
            bids: self.bids,
            asks: self.asks,
            exchange_ts: self.event_ts,
            recv_ts,
            checksum: None,
        }
    }
}

/// `GET /api/v3/depth` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthSnapshot {
    pub last_update_id: u64,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

#[derive(Deserialize)]
struct RawSnapshot {
    #[serde(rename = "lastUpdateId")]
    last_update_id: u64,
    bids: Levels,
    asks: Levels,
}

impl DepthSnapshot {
    pub fn parse(body: &str) -> Result<Self, String> {
        let raw: RawSnapshot =
            serde_json::from_str(body).map_err(|e| format!("depth snapshot: {e}"))?;
        Ok(Self {
            last_update_id: raw.last_update_id,
            bids: raw.bids.0,
            asks: raw.asks.0,
        })
    }
}

/// Where one symbol's book is.
#[derive(Debug)]
pub(crate) enum BookSync {
    /// Waiting for a REST snapshot; diffs are buffered. `requested` is false while a retry is
    /// scheduled for `retry_at`.
    Fetching {
        buffer: VecDeque<DepthUpdate>,
        requested: bool,
        retry_at: Timestamp,
        attempts: u32,
        /// A new subscription: the snapshot is requested once its first diff is buffered
        /// (the documented order), so the snapshot cannot predate the stream.
        awaiting_first: bool,
        /// Snapshots refused in a row as older than the stream, and why the last one was.
        refused: u32,
        refusal: Option<String>,
    },
    /// In sync: the last update id forwarded.
    Live { last: u64 },
}

impl BookSync {
    /// Fetching a snapshot that is requested right away (the stream is already flowing).
    pub(crate) fn fetching() -> Self {
        Self::Fetching {
            buffer: VecDeque::new(),
            requested: true,
            retry_at: Timestamp(0),
            attempts: 1,
            awaiting_first: false,
            refused: 0,
            refusal: None,
        }
    }

    /// A new subscription: the snapshot waits for the first buffered diff.
    pub(crate) fn subscribing() -> Self {
        Self::Fetching {
            buffer: VecDeque::new(),
            requested: false,
            retry_at: Timestamp(0),
            attempts: 0,
            awaiting_first: true,
            refused: 0,
            refusal: None,
        }
    }
}

/// Delay before fetching again after the `refused`-th snapshot in a row was too old: 250 ms,
/// doubling, at most 30 s (a venue whose REST lags its stream is not hammered).
pub(crate) fn refused_backoff_us(refused: u32) -> i64 {
    (250_000i64 << refused.saturating_sub(1).min(7)).min(30_000_000)
}

/// What to do with a snapshot given the diffs buffered meanwhile.
#[derive(Debug, PartialEq)]
pub(crate) enum Alignment {
    /// Publish the snapshot, then these diffs (older ones dropped), and go live at `last`.
    Apply { deltas: Vec<DepthUpdate>, last: u64 },
    /// The snapshot is older than the first buffered diff (`first_update`, its `U`): fetch
    /// again.
    TooOld { first_update: u64 },
}

/// Steps 4–6 of the documented algorithm: drop buffered diffs with `u <= lastUpdateId`; the
/// first remaining must satisfy `U <= lastUpdateId + 1 <= u`, otherwise the snapshot is too old.
/// With nothing buffered the snapshot is applied as is (the book engine ignores later diffs
/// it already contains and rejects a gap).
pub(crate) fn align(snapshot_id: u64, buffer: &mut VecDeque<DepthUpdate>) -> Alignment {
    while buffer.front().is_some_and(|d| d.last <= snapshot_id) {
        buffer.pop_front();
    }
    match buffer.front() {
        Some(first) if first.first > snapshot_id + 1 => Alignment::TooOld {
            first_update: first.first,
        },
        _ => {
            let deltas: Vec<DepthUpdate> = buffer.drain(..).collect();
            let last = deltas.last().map_or(snapshot_id, |d| d.last);
            Alignment::Apply { deltas, last }
        }
    }
}

pub(crate) fn snapshot_event(snapshot: DepthSnapshot, recv_ts: Timestamp) -> BookSnapshot {
    BookSnapshot {
        seq: snapshot.last_update_id,
        bids: snapshot.bids,
        asks: snapshot.asks,
        exchange_ts: recv_ts,
        recv_ts,
        checksum: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(first: u64, last: u64) -> DepthUpdate {
        DepthUpdate {
            first,
            last,
            bids: vec![],
            asks: vec![],
            event_ts: Timestamp(0),
        }
    }

    #[test]
    fn documented_payloads_parse() {
        let text = include_str!("../../../test_data/binance/ws_depth_update.json");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let d = DepthUpdate::parse(&v["data"].to_string()).unwrap();
        assert_eq!((d.first, d.last), (157, 160));
        assert_eq!(d.bids[0].price.to_string(), "0.0024");
        assert_eq!(d.asks[0].size.to_string(), "100");
        let s = DepthSnapshot::parse(include_str!(
            "../../../test_data/binance/rest_depth_snapshot.json"
        ))
        .unwrap();
        assert_eq!(s.last_update_id, 1_027_024);
        assert_eq!(s.bids[0].price.to_string(), "4.00000000", "scale kept");
        assert!(DepthUpdate::parse(r#"{"E":1,"s":"X","U":5,"u":4,"b":[],"a":[]}"#).is_err());
        assert!(
            DepthUpdate::parse(r#"{"E":1,"s":"X","U":1,"u":4,"b":[["x","1"]],"a":[]}"#).is_err()
        );
        assert!(DepthSnapshot::parse(r#"{"lastUpdateId":1,"bids":[["1"]],"asks":[]}"#).is_err());
    }

    /// One line per case: snapshot id, buffered (U,u), expected outcome.
    #[test]
    fn alignment_follows_the_documented_rules() {
        type Case = (
            u64,
            &'static [(u64, u64)],
            Option<(&'static [(u64, u64)], u64)>,
        );
        let cases: &[Case] = &[
            (100, &[], Some((&[], 100))),
            (100, &[(90, 95), (96, 100)], Some((&[], 100))),
            (
                100,
                &[(90, 95), (96, 101), (102, 103)],
                Some((&[(96, 101), (102, 103)], 103)),
            ),
            (100, &[(101, 104)], Some((&[(101, 104)], 104))),
            (100, &[(102, 104)], None),
            (100, &[(90, 99), (103, 104)], None),
        ];
        for (id, buffered, expected) in cases {
            let mut buffer: VecDeque<DepthUpdate> =
                buffered.iter().map(|(f, l)| diff(*f, *l)).collect();
            let got = align(*id, &mut buffer);
            match expected {
                None => assert!(
                    matches!(got, Alignment::TooOld { first_update } if first_update == buffered.last().unwrap().0),
                    "{id} {buffered:?}: {got:?}"
                ),
                Some((deltas, last)) => {
                    let Alignment::Apply {
                        deltas: got,
                        last: got_last,
                    } = got
                    else {
                        panic!("{id} {buffered:?}: {got:?}")
                    };
                    let ids: Vec<(u64, u64)> = got.iter().map(|d| (d.first, d.last)).collect();
                    assert_eq!((&ids[..], got_last), (*deltas, *last), "{id} {buffered:?}");
                }
            }
        }
    }

    /// Regression (issue 15): every string of a documented message escaped parses the same.
    #[test]
    fn escaped_strings_parse_like_plain_ones() {
        use crate::venue::parse::escaped;
        let text = include_str!("../../../test_data/binance/ws_depth_update.json");
        let data = serde_json::from_str::<serde_json::Value>(text).unwrap()["data"].to_string();
        assert_eq!(
            DepthUpdate::parse(&escaped(&data)).unwrap(),
            DepthUpdate::parse(&data).unwrap()
        );
        let body = include_str!("../../../test_data/binance/rest_depth_snapshot.json");
        assert_eq!(
            DepthSnapshot::parse(&escaped(body)).unwrap(),
            DepthSnapshot::parse(body).unwrap()
        );
    }

    #[test]
    fn refused_snapshots_back_off_doubling_up_to_30_s() {
        let delays: Vec<i64> = [1, 2, 3, 4, 8, 9, 40]
            .map(|n| refused_backoff_us(n) / 1000)
            .to_vec();
        assert_eq!(delays, [250, 500, 1000, 2000, 30_000, 30_000, 30_000]);
    }
}
