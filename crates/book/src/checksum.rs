//! Book checksums clients and the gateway use to verify a mirrored book.
//!
//! # The tickgate checksum (documented in `docs/protocol.md`)
//!
//! CRC-32 (IEEE 802.3, polynomial `0xEDB88320`, as zlib's `crc32`) of an ASCII string built from
//! the top [`CHECKSUM_DEPTH`] levels of each side:
//!
//! ```text
//! for i in 0..10:
//!     if the book has an i-th best bid: append "{price}:{size}"
//!     if the book has an i-th best ask: append "{price}:{size}"
//! join the appended pieces with ":"
//! ```
//!
//! Bids are taken best (highest) first, asks best (lowest) first. `price` and `size` are the
//! decimal strings exactly as they travel on the wire (trailing zeros kept). An empty book has
//! the checksum of the empty string, `0`.
//!
//! Example: bids `[["100.5","2"],["100.4","1.50"]]`, asks `[["100.6","3"]]` give the string
//! `100.5:2:100.6:3:100.4:1.50`.

use model::{DecimalBuf, Level, write_decimal};

/// Which algorithm verifies the checksum field of a venue's snapshots and deltas.
///
/// Each venue that publishes a checksum gets a variant (and its algorithm in this module) when
/// its connector is written. Whatever the venue, [`OrderBook::checksum`](crate::OrderBook::checksum)
/// is always the tickgate checksum the gateway publishes to its own clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumAlgo {
    /// The venue publishes no checksum, or it is not verified: the field is ignored.
    None,
    /// The venue's field is a [`tickgate_checksum`] (the simulator and tickgate upstreams).
    Tickgate,
    /// Kraken WebSocket v2 `book`: [`kraken_checksum`].
    Kraken,
    /// OKX v5 `books`: [`okx_checksum`].
    Okx,
}

impl ChecksumAlgo {
    /// Computes this algorithm's checksum over a book given best first, or `None` if the
    /// algorithm verifies nothing.
    pub fn compute<'a>(
        self,
        bids: impl IntoIterator<Item = &'a Level>,
        asks: impl IntoIterator<Item = &'a Level>,
    ) -> Option<u32> {
        match self {
            Self::None => None,
            Self::Tickgate => Some(tickgate_checksum(bids, asks)),
            Self::Kraken => Some(kraken_checksum(bids, asks)),
            Self::Okx => Some(okx_checksum(bids, asks)),
        }
    }
}

/// Levels per side covered by the checksum.
pub const CHECKSUM_DEPTH: usize = 10;

/// Levels per side covered by OKX's checksum.
pub const OKX_CHECKSUM_DEPTH: usize = 25;

/// Computes the tickgate checksum. `bids` must iterate best first (highest price first), `asks`
/// best first (lowest price first); only the first [`CHECKSUM_DEPTH`] of each are read.
pub fn tickgate_checksum<'a>(
    bids: impl IntoIterator<Item = &'a Level>,
    asks: impl IntoIterator<Item = &'a Level>,
) -> u32 {
    interleaved_crc(bids, asks, CHECKSUM_DEPTH)
}

/// The text each level contributes to the interleaved checksums, `price:size`, kept from one
/// computation to the next by [`CachedChecksum`].
#[derive(Debug, Clone)]
struct LevelText<K> {
    key: K,
    /// The level's exact representation (scale included): a level sent again with another
    /// scale prints differently, so it is formatted again.
    exact: [u8; 32],
    len: u8,
    bytes: [u8; LEVEL_TEXT],
}

/// Room for `price:size` (each decimal is at most 31 characters).
const LEVEL_TEXT: usize = 64;

fn exact(level: &Level) -> [u8; 32] {
    let mut out = [0; 32];
    out[..16].copy_from_slice(&level.price.serialize());
    out[16..].copy_from_slice(&level.size.serialize());
    out
}

/// The tickgate checksum with each top level's text kept from the previous computation: a
/// delta changes a few levels, so the others are reused instead of formatted again (most of
/// the checksum's cost). A level is reused only when its price and size are byte for byte
/// the cached ones, so the result is always [`tickgate_checksum`]'s (tested).
#[derive(Debug, Clone)]
pub(crate) struct CachedChecksum<B, A> {
    bids: TextSide<B>,
    asks: TextSide<A>,
    text: Vec<u8>,
}

/// One side's cached level texts. The texts stay in their slots; a computation only rewrites
/// the list of slots (one byte per level) and formats the levels that changed into free slots.
/// (Moving the ~110-byte texts from one list to the next on every delta was a `memcpy` call
/// per level, 4 % of a replay.)
#[derive(Debug, Clone)]
struct TextSide<K> {
    /// At most `2 × CHECKSUM_DEPTH`: the previous top levels' and the new ones'.
    slots: Vec<LevelText<K>>,
    /// The slots of the top levels, best first: the first `len` entries.
    order: [u8; CHECKSUM_DEPTH],
    len: u8,
}

/// Empty: a book that never publishes a checksum allocates nothing for it.
impl<B, A> Default for CachedChecksum<B, A> {
    fn default() -> Self {
        Self {
            bids: TextSide::default(),
            asks: TextSide::default(),
            text: Vec::new(),
        }
    }
}

impl<K> Default for TextSide<K> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            order: [0; CHECKSUM_DEPTH],
            len: 0,
        }
    }
}

impl<B: Ord + Copy, A: Ord + Copy> CachedChecksum<B, A> {
    /// `bids` and `asks` best first with their ladder keys, which ascend best first.
    pub(crate) fn compute<'a>(
        &mut self,
        bids: impl Iterator<Item = (&'a B, &'a Level)>,
        asks: impl Iterator<Item = (&'a A, &'a Level)>,
    ) -> u32
    where
        A: 'a,
        B: 'a,
    {
        self.bids.refresh(bids);
        self.asks.refresh(asks);
        let text = &mut self.text;
        text.clear();
        for i in 0..CHECKSUM_DEPTH {
            let (bid, ask) = (self.bids.text(i), self.asks.text(i));
            if bid.is_none() && ask.is_none() {
                break;
            }
            for (bytes, len) in [bid, ask].into_iter().flatten() {
                if !text.is_empty() {
                    text.push(b':');
                }
                // The whole fixed-size buffer (a few vector stores, where a copy of `len`
                // bytes is a `memcpy` call), then the tail cut off.
                let at = text.len();
                text.extend_from_slice(bytes);
                text.truncate(at + len);
            }
        }
        crc32fast::hash(text)
    }
}

impl<B: Copy, A: Copy> CachedChecksum<B, A> {
    /// Each side's last cached key when that side's top is full ([`CHECKSUM_DEPTH`] levels):
    /// a change to a level with a greater key (worse) cannot change the checksum. `None` for
    /// a side with fewer levels, where any change can.
    pub(crate) fn edges(&self) -> (Option<B>, Option<A>) {
        (self.bids.edge(), self.asks.edge())
    }
}

impl<K: Copy> TextSide<K> {
    fn edge(&self) -> Option<K> {
        if usize::from(self.len) < CHECKSUM_DEPTH {
            return None;
        }
        let slot = self.order[CHECKSUM_DEPTH - 1];
        self.slots.get(usize::from(slot)).map(|t| t.key)
    }
}

impl<K: Ord + Copy> TextSide<K> {
    /// The `i`-th best level's text: its buffer and the length at its start.
    fn text(&self, i: usize) -> Option<(&[u8; LEVEL_TEXT], usize)> {
        let slot = self
            .slots
            .get(usize::from(*self.order[..usize::from(self.len)].get(i)?))?;
        Some((&slot.bytes, usize::from(slot.len)))
    }

    /// Makes `order` the slots of the top [`CHECKSUM_DEPTH`] `levels`, reusing a slot when
    /// the same level is in the previous list (both lists are in key order, so one merge).
    /// A changed level is formatted into a slot the previous list does not use, so a slot
    /// the merge has yet to reach is never overwritten.
    fn refresh<'a>(&mut self, levels: impl Iterator<Item = (&'a K, &'a Level)>)
    where
        K: 'a,
    {
        let mut next = [0u8; CHECKSUM_DEPTH];
        let mut len = 0;
        let previous = &self.order[..usize::from(self.len)];
        // Slots in use: the previous list's, then the new ones as they are taken. At most
        // 2 × CHECKSUM_DEPTH = 20 bits.
        let mut used: u32 = previous.iter().fold(0, |m, &s| m | 1 << s);
        let mut old = previous.iter().copied().peekable();
        let mut buf = DecimalBuf::new();
        for (key, level) in levels.take(CHECKSUM_DEPTH) {
            let slots = &self.slots;
            while old.next_if(|&s| slots[usize::from(s)].key < *key).is_some() {}
            let exact = exact(level);
            if let Some(slot) = old.next_if(|&s| {
                let t = &slots[usize::from(s)];
                t.key == *key && t.exact == exact
            }) {
                next[len] = slot;
                len += 1;
                continue;
            }
            let free = (!used).trailing_zeros() as usize;
            used |= 1 << free;
            if free == self.slots.len() {
                self.slots.push(LevelText {
                    key: *key,
                    exact,
                    len: 0,
                    bytes: [0; LEVEL_TEXT],
                });
            }
            let text = &mut self.slots[free];
            text.key = *key;
            text.exact = exact;
            let mut at = 0;
            let mut push = |part: &[u8]| {
                text.bytes[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            };
            push(buf.format_ascii(&level.price));
            push(b":");
            push(buf.format_ascii(&level.size));
            text.len = at as u8;
            // At most 2 × CHECKSUM_DEPTH slots, so the index fits a byte.
            next[len] = free as u8;
            len += 1;
        }
        self.order = next;
        self.len = len as u8;
    }
}

/// OKX's v5 `books` checksum (okx.com/docs-v5, "Checksum"): the same interleaved
/// `bid:ask` `price:size` string as [`tickgate_checksum`], over the top
/// [`OKX_CHECKSUM_DEPTH`] levels a side, with the venue's exact strings. OKX sends the CRC-32
/// as a **signed** 32-bit integer; this returns its bit pattern (`sent as i32 as u32`).
pub fn okx_checksum<'a>(
    bids: impl IntoIterator<Item = &'a Level>,
    asks: impl IntoIterator<Item = &'a Level>,
) -> u32 {
    interleaved_crc(bids, asks, OKX_CHECKSUM_DEPTH)
}

fn interleaved_crc<'a>(
    bids: impl IntoIterator<Item = &'a Level>,
    asks: impl IntoIterator<Item = &'a Level>,
    depth: usize,
) -> u32 {
    let mut text: Vec<u8> = Vec::with_capacity(depth * 2 * 32);
    let mut bids = bids.into_iter().take(depth);
    let mut asks = asks.into_iter().take(depth);
    loop {
        let (bid, ask) = (bids.next(), asks.next());
        if bid.is_none() && ask.is_none() {
            break;
        }
        for level in [bid, ask].into_iter().flatten() {
            if !text.is_empty() {
                text.push(b':');
            }
            write_decimal(&mut text, &level.price);
            text.push(b':');
            write_decimal(&mut text, &level.size);
        }
    }
    crc32fast::hash(&text)
}

/// Kraken's WebSocket v2 book checksum (docs.kraken.com, "Book checksum (WebSocket v2)").
///
/// CRC-32 (IEEE) of the top [`CHECKSUM_DEPTH`] asks (lowest first) followed by the top
/// [`CHECKSUM_DEPTH`] bids (highest first), each level written as its price then its quantity,
/// each with the `.` removed and leading zeros stripped (`"45285.2"` → `"452852"`,
/// `"0.00100000"` → `"100000"`). The strings are the venue's exact decimals: the levels must keep
/// the scale Kraken sent (trailing zeros included), which [`model::Decimal`] does.
pub fn kraken_checksum<'a>(
    bids: impl IntoIterator<Item = &'a Level>,
    asks: impl IntoIterator<Item = &'a Level>,
) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    let (mut text, mut digits) = (Vec::with_capacity(48), Vec::with_capacity(48));
    let mut feed = |level: &Level| {
        for value in [&level.price, &level.size] {
            text.clear();
            digits.clear();
            write_decimal(&mut text, value);
            // Drop the point, then the leading zeros.
            digits.extend(text.iter().copied().filter(|b| *b != b'.'));
            let first = digits
                .iter()
                .position(|b| *b != b'0')
                .unwrap_or(digits.len());
            hasher.update(&digits[first..]);
        }
    };
    asks.into_iter().take(CHECKSUM_DEPTH).for_each(&mut feed);
    bids.into_iter().take(CHECKSUM_DEPTH).for_each(&mut feed);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::parse_decimal;

    fn lv(p: &str, s: &str) -> Level {
        Level::new(parse_decimal(p).unwrap(), parse_decimal(s).unwrap())
    }

    #[test]
    fn matches_documented_example() {
        let bids = [lv("100.5", "2"), lv("100.4", "1.50")];
        let asks = [lv("100.6", "3")];
        assert_eq!(
            tickgate_checksum(&bids, &asks),
            crc32fast::hash(b"100.5:2:100.6:3:100.4:1.50")
        );
    }

    /// OKX's documented examples (docs-v5 "Checksum": more bids than asks and the reverse),
    /// whose signed CRC-32 values the docs give.
    #[test]
    fn okx_matches_its_documented_examples() {
        let even = okx_checksum(
            &[lv("3366.1", "7"), lv("3366", "6")],
            &[lv("3366.8", "9"), lv("3368", "8")],
        );
        assert_eq!(
            even as i32, -1_881_014_294,
            "3366.1:7:3366.8:9:3366:6:3368:8"
        );
        let odd = okx_checksum(
            &[lv("3366.1", "7")],
            &[lv("3366.8", "9"), lv("3368", "8"), lv("3372", "8")],
        );
        assert_eq!(odd as i32, 831_078_360, "3366.1:7:3366.8:9:3368:8:3372:8");
        let bids: Vec<Level> = (0..30).map(|i| lv(&format!("{}", 100 - i), "1")).collect();
        assert_eq!(
            okx_checksum(&bids, &[]),
            okx_checksum(&bids[..25], &[]),
            "top 25 only"
        );
        assert_eq!(
            ChecksumAlgo::Okx.compute(&bids, &[]),
            Some(okx_checksum(&bids, &[]))
        );
    }

    #[test]
    fn empty_book_is_zero_and_depth_is_capped() {
        assert_eq!(tickgate_checksum(&[], &[]), 0);
        let bids: Vec<Level> = (0..15).map(|i| lv(&format!("{}", 100 - i), "1")).collect();
        let asks: Vec<Level> = (0..15).map(|i| lv(&format!("{}", 101 + i), "1")).collect();
        assert_eq!(
            tickgate_checksum(&bids, &asks),
            tickgate_checksum(&bids[..10], &asks[..10])
        );
    }

    /// Kraken's documented worked example (book-checksum-v2): this book has checksum 3310070434.
    #[test]
    fn kraken_matches_the_documented_example() {
        let bids = [
            lv("45283.5", "0.10000000"),
            lv("45283.4", "1.54582015"),
            lv("45282.1", "0.10000000"),
            lv("45281.0", "0.10000000"),
            lv("45280.3", "1.54592586"),
            lv("45279.0", "0.07990000"),
            lv("45277.6", "0.03310103"),
            lv("45277.5", "0.30000000"),
            lv("45277.3", "1.54602737"),
            lv("45276.6", "0.15445238"),
        ];
        let asks = [
            lv("45285.2", "0.00100000"),
            lv("45286.4", "1.54571953"),
            lv("45286.6", "1.54571109"),
            lv("45289.6", "1.54560911"),
            lv("45290.2", "0.15890660"),
            lv("45291.8", "1.54553491"),
            lv("45294.7", "0.04454749"),
            lv("45296.1", "0.35380000"),
            lv("45297.5", "0.09945542"),
            lv("45299.5", "0.18772827"),
        ];
        assert_eq!(kraken_checksum(&bids, &asks), 3_310_070_434);
        assert_eq!(
            ChecksumAlgo::Kraken.compute(&bids, &asks),
            Some(3_310_070_434)
        );
        // A dropped trailing zero is a different book to Kraken.
        let mut trimmed = bids;
        trimmed[0] = lv("45283.5", "0.1");
        assert_ne!(kraken_checksum(&trimmed, &asks), 3_310_070_434);
    }

    #[test]
    fn trailing_zeros_change_the_checksum() {
        assert_ne!(
            tickgate_checksum(&[lv("1.0", "1")], &[]),
            tickgate_checksum(&[lv("1", "1")], &[])
        );
    }
}
