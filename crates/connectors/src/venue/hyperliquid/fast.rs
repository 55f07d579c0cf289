//! The fast path for `l2Book` frames: every message is the coin's whole top-20 book, but
//! from one message to the next only a few levels change. So the text of the previous
//! message's `levels` is kept per coin with where each level sits in it; a new message is
//! compared to it byte for byte, the levels inside the common prefix and suffix are taken
//! from the previous message, and only the levels in between are parsed.
//!
//! Only the venue's canonical form is taken (keys in its order, no whitespace, no escapes,
//! `{"px":"…","sz":"…","n":…}` levels): anything else, and any level that does not parse or
//! is not positive, makes [`parse`] answer `None`, and the caller parses the frame with the
//! general serde path, which also gives the error. Identical bytes parse identically, so the
//! levels taken from the previous message are exactly what parsing them again would give.

use crate::venue::parse::{decimal, json_uint};
use model::{Decimal, Level};

const HEAD: &str = r#"{"channel":"l2Book","data":{"coin":""#;

/// The parts of a canonical `l2Book` frame: coin, time (ms) and the `levels` value
/// (`[[…],[…]]`), or `None` when the frame is not in the canonical form.
pub(crate) fn split(text: &str) -> Option<(&str, i64, &str)> {
    let rest = text.strip_prefix(HEAD)?;
    let quote = memchr(b'"', rest.as_bytes(), 0)?;
    let coin = &rest[..quote];
    if coin.is_empty() || coin.contains('\\') {
        return None;
    }
    let rest = rest[quote..].strip_prefix(r#"","time":"#)?;
    let (time, digits) = json_uint(rest.as_bytes(), 18)?;
    let time = time as i64;
    let levels = rest[digits..]
        .strip_prefix(r#","levels":"#)?
        .strip_suffix("}}")?;
    (levels.starts_with("[[") && levels.ends_with("]]")).then_some((coin, time, levels))
}

/// One coin's last `levels` text as received, and the levels it holds.
#[derive(Debug, Default, Clone)]
pub(crate) struct LastLevels {
    text: String,
    /// Each level object's byte range in `text`, bids then asks, in order.
    spans: Vec<(u32, u32)>,
    /// How many of `spans`/`levels` are bids.
    bids: usize,
    levels: Vec<Level>,
    /// Levels parsed (not taken from the previous message) so far: what the tests check.
    #[cfg(test)]
    parsed: usize,
}

/// The bids and asks of `levels` (best first, as received), reusing what `last` holds for
/// the bytes the two have in common, and `last` updated to this message. `None` (and `last`
/// unchanged) when the text is not canonical or a level is bad: the caller parses it with the
/// general path.
pub(crate) fn parse(levels: &str, last: &mut LastLevels) -> Option<(Vec<Level>, Vec<Level>)> {
    let new = levels.as_bytes();
    let old = last.text.as_bytes();
    if new.len() > u32::MAX as usize / 2 {
        return None;
    }
    let prefix = common_prefix(old, new);
    let suffix = common_suffix(&old[prefix.min(old.len())..], &new[prefix..]);
    // Levels wholly inside the common prefix are the previous message's.
    let kept = last
        .spans
        .partition_point(|&(_, end)| end as usize <= prefix);
    let mut spans: Vec<(u32, u32)> = Vec::with_capacity(last.spans.len() + 4);
    let mut out: Vec<Level> = Vec::with_capacity(last.levels.len() + 4);
    spans.extend_from_slice(&last.spans[..kept]);
    out.extend_from_slice(&last.levels[..kept]);
    let (mut at, mut asks) = match kept {
        0 => (2, false),
        k => (last.spans[k - 1].1 as usize, k > last.bids),
    };
    let mut bids = if asks { last.bids } else { 0 };
    // Where a level that starts at `x` in `new` starts in `old`, for `x` inside the suffix.
    let shift = old.len() as isize - new.len() as isize;
    let suffix_from = new.len() - suffix;
    let mut first = kept == 0;
    let mut next_old = kept;
    loop {
        // At `at`: the start of a side (`first`), or just after a level.
        if !first {
            match new.get(at) {
                Some(b',') => at += 1,
                Some(b']') if !asks && new.get(at + 1..at + 3) == Some(b",[") => {
                    bids = out.len();
                    asks = true;
                    at += 3;
                    if new.get(at) == Some(&b']') {
                        at += 1;
                        break; // no asks
                    }
                }
                Some(b']') if asks => {
                    at += 1;
                    break;
                }
                _ => return None,
            }
        } else if new.get(at) == Some(&b']') {
            // An empty side at the start.
            if asks {
                at += 1;
                break;
            }
            if new.get(at + 1..at + 3) != Some(b",[") {
                return None;
            }
            bids = 0;
            asks = true;
            at += 3;
            if new.get(at) == Some(&b']') {
                at += 1;
                break;
            }
        }
        first = false;
        // A level from here to the end is byte for byte the previous message's: take them.
        if at >= suffix_from {
            let in_old = (at as isize + shift) as u32;
            if let Ok(m) = last
                .spans
                .binary_search_by_key(&in_old, |&(start, _)| start)
                && (m >= last.bids) == asks
            {
                if !asks {
                    bids = out.len() + (last.bids - m);
                }
                let back =
                    |(s, e): (u32, u32)| ((s as isize - shift) as u32, (e as isize - shift) as u32);
                spans.extend(last.spans[m..].iter().map(|&span| back(span)));
                out.extend_from_slice(&last.levels[m..]);
                at = new.len() - 1;
                break;
            }
        }
        // A level whose bytes are those of a level of the previous message is that level:
        // the one after the last level taken from it or the one after that (this level
        // replaced one), or the one at the same offset, or at the offset the suffix is
        // shifted by.
        let by_offset = |from: isize| {
            last.spans
                .binary_search_by_key(&(from as u32), |&(start, _)| start)
                .ok()
        };
        let same = [
            Some(next_old),
            Some(next_old + 1),
            by_offset(at as isize),
            by_offset(at as isize + shift),
        ]
        .into_iter()
        .flatten()
        .find_map(|m| {
            let (start, end) = *last.spans.get(m)?;
            let len = (end - start) as usize;
            (new.get(at..at + len) == Some(&old[start as usize..end as usize]))
                .then_some((m, at + len))
        });
        if let Some((m, end)) = same {
            spans.push((at as u32, end as u32));
            out.push(last.levels[m]);
            next_old = m + 1;
            at = end;
            continue;
        }
        let (level, end) = parse_level(levels, at, if asks { "l2Book ask" } else { "l2Book bid" })?;
        spans.push((at as u32, end as u32));
        out.push(level);
        #[cfg(test)]
        {
            last.parsed += 1;
        }
        at = end;
    }
    if at + 1 != new.len() || new[at] != b']' {
        return None;
    }
    let (b, a) = out.split_at(bids);
    let in_order = b.windows(2).all(|w| w[0].price > w[1].price)
        && a.windows(2).all(|w| w[0].price < w[1].price);
    if !in_order {
        return None;
    }
    let result = (b.to_vec(), a.to_vec());
    last.text.clear();
    last.text.push_str(levels);
    last.spans = spans;
    last.bids = bids;
    last.levels = out;
    Some(result)
}

/// `{"px":"…","sz":"…","n":…}` at `at`: the level and the offset just past its `}`.
fn parse_level(text: &str, at: usize, field: &str) -> Option<(Level, usize)> {
    let bytes = text.as_bytes();
    let after_px = at + br#"{"px":""#.len();
    if bytes.get(at..after_px) != Some(br#"{"px":""#) {
        return None;
    }
    let px_end = memchr(b'"', bytes, after_px)?;
    let after_sz = px_end + br#"","sz":""#.len();
    if bytes.get(px_end..after_sz) != Some(br#"","sz":""#) {
        return None;
    }
    let sz_end = memchr(b'"', bytes, after_sz)?;
    let after_n = sz_end + br#"","n":"#.len();
    if bytes.get(sz_end..after_n) != Some(br#"","n":"#) {
        return None;
    }
    // JSON's form only: serde refuses `"n":01` (found by the fuzz target's shadow session).
    let (_, digits) = json_uint(&bytes[after_n..], 19)?;
    if bytes.get(after_n + digits) != Some(&b'}') {
        return None;
    }
    let px = &text[after_px..px_end];
    let sz = &text[after_sz..sz_end];
    if px.contains('\\') || sz.contains('\\') {
        return None;
    }
    let level = Level::new(decimal(field, px).ok()?, decimal(field, sz).ok()?);
    if level.price <= Decimal::ZERO || level.size <= Decimal::ZERO {
        return None;
    }
    Some((level, after_n + digits + 1))
}

fn memchr(needle: u8, haystack: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .iter()
        .position(|&b| b == needle)
        .map(|i| i + from)
}

/// How many leading bytes `a` and `b` share, compared 16 bytes at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 16 <= n && a[i..i + 16] == b[i..i + 16] {
        i += 16;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// How many trailing bytes `a` and `b` share.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[a.len() - n..], &b[b.len() - n..]);
    let mut i = 0;
    while i + 16 <= n && a[n - i - 16..n - i] == b[n - i - 16..n - i] {
        i += 16;
    }
    while i < n && a[n - i - 1] == b[n - i - 1] {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::hyperliquid::wire::parse_l2book;

    /// xorshift64*: deterministic input for the equivalence run.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % n
        }
    }

    /// `(price in cents, size in 1e-5, n)` per level, best first.
    type Side = Vec<(u64, u64, u64)>;

    fn frame(coin: &str, time: u64, bids: &Side, asks: &Side) -> String {
        let side = |levels: &Side| {
            levels
                .iter()
                .map(|(p, s, n)| {
                    format!(
                        r#"{{"px":"{}.{:02}","sz":"{}.{:05}","n":{n}}}"#,
                        p / 100,
                        p % 100,
                        s / 100_000,
                        s % 100_000
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            r#"{{"channel":"l2Book","data":{{"coin":"{coin}","time":{time},"levels":[[{}],[{}]]}}}}"#,
            side(bids),
            side(asks)
        )
    }

    fn fast(text: &str, last: &mut LastLevels) -> Option<(String, i64, Vec<Level>, Vec<Level>)> {
        let (coin, time, levels) = split(text)?;
        let (bids, asks) = parse(levels, last)?;
        Some((coin.to_string(), time, bids, asks))
    }

    /// Random books, each a few edits from the last (sizes, counts, levels in and out, the
    /// whole book moving, sides emptied): the fast path gives exactly what the general parser
    /// gives, message after message.
    #[test]
    fn gives_what_the_general_parser_gives() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut last = LastLevels::default();
        let mut bids: Side = (0..20).map(|k| (100_000 - k, 100_000, 1)).collect();
        let mut asks: Side = (0..20).map(|k| (100_001 + k, 100_000, 1)).collect();
        let mut levels = 0usize;
        for step in 0..20_000u64 {
            for _ in 0..1 + rng.below(3) {
                let is_bid = rng.below(2) == 0;
                let side = if is_bid { &mut bids } else { &mut asks };
                match rng.below(10) {
                    0..=4 if !side.is_empty() => {
                        let at = rng.below(side.len() as u64) as usize;
                        side[at].1 = 1 + rng.below(2_000_000);
                    }
                    5 if !side.is_empty() => {
                        let at = rng.below(side.len() as u64) as usize;
                        side[at].2 = rng.below(1_000);
                    }
                    6 if !side.is_empty() => {
                        let at = rng.below(side.len() as u64) as usize;
                        side.remove(at);
                    }
                    7 if side.len() < 25 => {
                        // A level beyond the current worst (the top-20 window moving).
                        let worst = side
                            .last()
                            .map_or(if is_bid { 99_000 } else { 101_000 }, |l| l.0);
                        let price = if is_bid {
                            worst.saturating_sub(1 + rng.below(3)).max(1)
                        } else {
                            worst + 1 + rng.below(3)
                        };
                        if side.last().is_none_or(|l| l.0 != price) {
                            side.push((price, 1 + rng.below(500_000), 1));
                        }
                    }
                    8 if rng.below(50) == 0 => side.clear(),
                    _ => {}
                }
            }
            if rng.below(200) == 0 {
                // The whole book moves: every price changes.
                for l in bids.iter_mut().chain(asks.iter_mut()) {
                    l.0 += 7;
                }
            }
            let coin = if step % 1000 == 999 { "kPEPE" } else { "BTC" };
            let text = frame(coin, 1_700_000_000_000 + step, &bids, &asks);
            let expected = parse_l2book(&text).unwrap();
            levels += expected.bids.len() + expected.asks.len();
            let got = fast(&text, &mut last).unwrap_or_else(|| panic!("step {step}: {text}"));
            assert_eq!(
                got,
                (expected.coin, expected.time, expected.bids, expected.asks),
                "step {step}: {text}"
            );
        }
        // Edits touch a few levels; a moved book or a new coin reparses all of them.
        assert!(
            last.parsed * 8 < levels,
            "most levels come from the previous message: {} of {levels} parsed",
            last.parsed
        );
    }

    /// Frames with a few bytes changed at random (structure, digits, quotes, escapes): whatever
    /// the fast path accepts, the general parser accepts with the same book, whatever state
    /// the earlier (mutated or not) frames left the cache in.
    #[test]
    fn mutated_frames_are_refused_or_parsed_exactly() {
        const BYTES: &[u8] = b"0123456789.-\",:{}[] enpxsz";
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut last = LastLevels::default();
        let mut bids: Side = (0..20).map(|k| (100_000 - k, 100_000 + k, 1)).collect();
        let asks: Side = (0..20).map(|k| (100_001 + k, 200_000 + k, 2)).collect();
        let (mut clean, mut accepted, mut mutated_accepted) = (0, 0, 0);
        for step in 0..30_000u64 {
            let at = rng.below(20) as usize;
            bids[at].1 = 1 + rng.below(2_000_000);
            let mut text = frame("BTC", step, &bids, &asks).into_bytes();
            let mutate = rng.below(2) == 0;
            clean += usize::from(!mutate);
            if mutate {
                for _ in 0..1 + rng.below(3) {
                    let i = rng.below(text.len() as u64) as usize;
                    text[i] = BYTES[rng.below(BYTES.len() as u64) as usize];
                }
            }
            let Ok(text) = String::from_utf8(text) else {
                continue;
            };
            if let Some(got) = fast(&text, &mut last) {
                let general = parse_l2book(&text).unwrap_or_else(|e| {
                    panic!("fast path took what the parser refuses: {e:?}: {text}")
                });
                assert_eq!(
                    got,
                    (general.coin, general.time, general.bids, general.asks),
                    "{text}"
                );
                accepted += 1;
                mutated_accepted += usize::from(mutate);
            }
        }
        assert_eq!(
            accepted - mutated_accepted,
            clean,
            "every clean frame took the fast path"
        );
        assert!(
            mutated_accepted > 100,
            "some mutations keep the frame valid"
        );
    }

    /// Bad or unusual frames leave the fast path (the general one names the error) and do not
    /// disturb what it remembers.
    #[test]
    fn refuses_what_is_not_canonical_or_bad() {
        let bids: Side = (0..5).map(|k| (10_000 - k, 100 + k, 1)).collect();
        let asks: Side = (0..5).map(|k| (10_001 + k, 200 + k, 2)).collect();
        let good = frame("BTC", 10, &bids, &asks);
        let mut last = LastLevels::default();
        let first = fast(&good, &mut last).unwrap();
        let kept = last.text.clone();
        for bad in [
            good.replace("\"0.00102\"", "\"-0.00102\""), // negative size, mid-book
            good.replace("\"0.00102\"", "\"0\""),        // zero size
            good.replace("\"0.00102\"", "\"x\""),        // not a number
            good.replace("\"99.99\"", "\"100.02\""),     // bids out of order
            good.replace("\"0.00102\"", "\"0.00\\u0031\""), // escaped digit
            good.replace(",\"n\":1}", ",\"n\":1 }"),     // whitespace
            good.replace("\"n\":2", "\"n\":-2"),         // not a count
            good.replace("\"n\":2", "\"n\":02"),         // a leading zero (not JSON)
            good.replace("\"time\":", "\"time\":0"),     // a leading zero (not JSON)
            good.replace("]]}}", "]]}} "),               // trailing space
            good.replace(r#""coin":"BTC""#, r#""coin":"B\u0054C""#),
            good.replace("],[", "],[{}],["), // three sides
            good.replace("]]}}", "]}}"),     // unterminated
        ] {
            assert!(fast(&bad, &mut last).is_none(), "{bad}");
            assert_eq!(last.text, kept, "unchanged by {bad}");
        }
        assert_eq!(fast(&good, &mut last).unwrap(), first);
        // Empty sides parse, from a cold cache and from a warm one.
        let none: Side = Vec::new();
        for (b, a) in [(&none, &asks), (&bids, &none), (&none, &none)] {
            let text = frame("BTC", 11, b, a);
            let expected = parse_l2book(&text).unwrap();
            for cache in [&mut LastLevels::default(), &mut last] {
                let got = fast(&text, cache).unwrap();
                assert_eq!(
                    (got.2, got.3),
                    (expected.bids.clone(), expected.asks.clone())
                );
            }
        }
    }
}
