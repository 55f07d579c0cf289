//! Several frames of one channel in one JetStream message, so a channel's forwarder needs one
//! acknowledged publish per batch rather than per frame (one publish is in flight per channel:
//! each names the subject's last stream sequence, which is only known once the previous one
//! is acknowledged).
//!
//! A message of one frame is that frame's text, with its seq in `Tg-Seq`, exactly as before
//! batching. A message of n ≥ 2 frames carries `Tg-Batch: n` and a payload of n entries, each
//! `seq` (u64, big-endian), `len` (u32, big-endian) and `len` bytes of the frame's text;
//! `Tg-Seq` is then the first frame's seq. A payload that does not parse to exactly `n`
//! entries is refused whole (the edge counts it invalid; the next frame is then a gap and the
//! replica rebases: nothing is skipped silently).

use crate::ClusterError;
use crate::subject;
use async_nats::HeaderMap;
use bytes::{BufMut, Bytes, BytesMut};
use hub::Frame;

/// Most frames in one message.
pub(crate) const MAX_FRAMES: usize = 512;
/// Most payload bytes in one message when the server allows more (NATS's default
/// `max_payload` is 1 MiB): a larger batch would only add latency to its first frame.
pub(crate) const MAX_BYTES: usize = 256 * 1024;

/// Bytes of an entry besides the frame text.
const ENTRY_HEADER: usize = 12;

/// Frames collected for one publish.
#[derive(Debug)]
pub(crate) struct Batch {
    frames: Vec<Frame>,
    bytes: usize,
    limit: usize,
}

impl Batch {
    /// A batch starting with `first` (which may alone exceed `limit`: it is then sent alone).
    pub(crate) fn new(first: Frame, limit: usize) -> Self {
        Self {
            bytes: ENTRY_HEADER + first.text.len(),
            frames: vec![first],
            limit,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// The seq of the newest frame in the batch.
    pub(crate) fn last_seq(&self) -> u64 {
        self.frames.last().map_or(0, |f| f.seq)
    }

    /// The seq of the oldest frame in the batch.
    pub(crate) fn first_seq(&self) -> u64 {
        self.frames.first().map_or(0, |f| f.seq)
    }

    /// Adds `frame`, or hands it back when the batch is full (frame count or bytes).
    pub(crate) fn push(&mut self, frame: Frame) -> Result<(), Frame> {
        let bytes = self.bytes + ENTRY_HEADER + frame.text.len();
        if self.frames.len() >= MAX_FRAMES || bytes > self.limit {
            return Err(frame);
        }
        self.bytes = bytes;
        self.frames.push(frame);
        Ok(())
    }

    /// The message payload, adding `Tg-Batch` to `headers` when there are several frames.
    pub(crate) fn encode(&self, headers: &mut HeaderMap) -> Bytes {
        if let [frame] = &self.frames[..] {
            return frame.text.clone().into();
        }
        headers.insert(subject::BATCH, self.frames.len().to_string().as_str());
        let mut out = BytesMut::with_capacity(self.bytes);
        for frame in &self.frames {
            out.put_u64(frame.seq);
            // A frame text is far below 4 GiB: NATS refuses payloads over max_payload.
            out.put_u32(u32::try_from(frame.text.len()).unwrap_or(u32::MAX));
            out.put_slice(frame.text.as_bytes());
        }
        out.freeze()
    }
}

/// The frames (seq, text) of a frames-stream message: one, or the entries of a batch.
pub(crate) fn decode(
    headers: Option<&HeaderMap>,
    payload: Bytes,
) -> Result<Vec<(u64, Bytes)>, ClusterError> {
    let bad = |what| ClusterError::BadMessage { what };
    let header = |name| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
    let seq = header(subject::SEQ)
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or(bad("frame seq"))?;
    let Some(count) = header(subject::BATCH) else {
        return Ok(vec![(seq, payload)]);
    };
    let count: usize = count
        .parse()
        .ok()
        .filter(|n| (2..=MAX_FRAMES).contains(n))
        .ok_or(bad("batch count"))?;
    let mut frames = Vec::with_capacity(count);
    let mut at = 0usize;
    while at < payload.len() {
        let head = payload
            .get(at..at + ENTRY_HEADER)
            .ok_or(bad("batch entry header"))?;
        let (seq_bytes, len_bytes) = head.split_at(8);
        let seq = u64::from_be_bytes(seq_bytes.try_into().map_err(|_| bad("batch seq"))?);
        let len = u32::from_be_bytes(len_bytes.try_into().map_err(|_| bad("batch length"))?);
        let start = at + ENTRY_HEADER;
        let end = start
            .checked_add(len as usize)
            .filter(|end| *end <= payload.len())
            .ok_or(bad("batch entry length"))?;
        frames.push((seq, payload.slice(start..end)));
        at = end;
    }
    if frames.len() != count || frames.first().map(|f| f.0) != Some(seq) {
        return Err(bad("batch entries"));
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub::FrameKind;

    fn frame(seq: u64, text: &str) -> Frame {
        Frame {
            seq,
            kind: FrameKind::Update,
            recv_ts: 0,
            text: text.into(),
        }
    }

    fn headers_at(seq: u64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(subject::SEQ, seq.to_string().as_str());
        headers
    }

    #[test]
    fn one_frame_travels_as_itself_and_several_round_trip() {
        let mut headers = headers_at(7);
        let single = Batch::new(frame(7, "{\"a\":1}"), MAX_BYTES);
        let payload = single.encode(&mut headers);
        assert_eq!(&payload[..], b"{\"a\":1}");
        assert!(headers.get(subject::BATCH).is_none());
        assert_eq!(
            decode(Some(&headers), payload).expect("single"),
            vec![(7, Bytes::from_static(b"{\"a\":1}"))]
        );

        let mut batch = Batch::new(frame(7, "x"), MAX_BYTES);
        batch.push(frame(8, "")).expect("room");
        batch.push(frame(8, "resync")).expect("room");
        batch.push(frame(9, "zz")).expect("room");
        assert_eq!(
            (batch.first_seq(), batch.last_seq(), batch.len()),
            (7, 9, 4)
        );
        let mut headers = headers_at(7);
        let payload = batch.encode(&mut headers);
        assert_eq!(headers.get(subject::BATCH).map(|v| v.as_str()), Some("4"));
        let frames = decode(Some(&headers), payload).expect("batch");
        let want: Vec<(u64, Bytes)> = [(7, "x"), (8, ""), (8, "resync"), (9, "zz")]
            .iter()
            .map(|(s, t)| (*s, Bytes::copy_from_slice(t.as_bytes())))
            .collect();
        assert_eq!(frames, want);
    }

    #[test]
    fn a_batch_stops_at_its_limits() {
        let mut batch = Batch::new(frame(1, &"a".repeat(100)), 2 * (ENTRY_HEADER + 100));
        batch
            .push(frame(2, &"b".repeat(100)))
            .expect("fits exactly");
        let refused = batch.push(frame(3, "c")).expect_err("over the byte limit");
        assert_eq!(refused.seq, 3);
        let mut batch = Batch::new(frame(0, ""), usize::MAX);
        for seq in 1..MAX_FRAMES as u64 {
            batch.push(frame(seq, "")).expect("room");
        }
        assert!(batch.push(frame(9999, "")).is_err(), "frame count limit");
        // One frame over the limit still goes, alone.
        assert_eq!(Batch::new(frame(1, &"a".repeat(100)), 10).len(), 1);
    }

    #[test]
    fn a_damaged_batch_is_refused_whole() {
        let mut batch = Batch::new(frame(5, "abc"), MAX_BYTES);
        batch.push(frame(6, "def")).expect("room");
        let mut headers = headers_at(5);
        let payload = batch.encode(&mut headers);
        let with_count = |mut h: HeaderMap, n: &str| {
            h.insert(subject::BATCH, n);
            h
        };
        let mut longer = BytesMut::from(&payload[..]);
        longer.put_u8(0);
        let cases: Vec<(HeaderMap, Bytes)> = vec![
            // Truncated inside the second entry.
            (headers.clone(), payload.slice(..payload.len() - 1)),
            // Trailing garbage.
            (headers.clone(), longer.freeze()),
            // A count that does not match the entries, or out of range.
            (with_count(headers.clone(), "3"), payload.clone()),
            (with_count(headers.clone(), "1"), payload.clone()),
            // Tg-Seq that is not the first entry's.
            (with_count(headers_at(6), "2"), payload.clone()),
        ];
        for (headers, payload) in cases {
            let error = decode(Some(&headers), payload).expect_err("refused");
            assert_eq!(error.code(), "cluster_bad_message");
        }
        assert!(decode(None, Bytes::new()).is_err(), "no seq header");
    }
}
