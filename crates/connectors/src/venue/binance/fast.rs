//! The fast path for market data frames: a combined-stream `depthUpdate` or `trade` in the
//! venue's canonical form (its documented key order, no whitespace, no escapes) is read by a
//! byte scanner straight into its fields and [`Level`]s, with no serde visitor, no key
//! matching and nothing allocated but the two level lists.
//!
//! Anything else (another key order, whitespace, an escaped string, a number outside
//! 1–18 digits or with a leading zero, a level with more than two elements, a decimal that
//! does not parse, trailing bytes) makes [`parse`] answer `None`, and the session reads the
//! frame with its serde path, which accepts every valid layout and names the error of a bad
//! frame. So what the scanner answers is exactly what serde would read from the same text
//! (`tests::the_scanner_agrees_with_serde_on_every_mutation` checks it byte by byte).

use crate::venue::parse::json_uint;
use model::{Decimal, Level, parse_decimal, parse_plain_decimal};

/// A `depthUpdate` frame's fields. `s` is checked but not kept: the stream names the symbol.
#[derive(Debug, PartialEq)]
pub(crate) struct Depth<'a> {
    /// The stream name (`btcusdt@depth@100ms`).
    pub stream: &'a str,
    pub event_time: i64,
    pub first: u64,
    pub last: u64,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

/// A `trade` frame's fields (`M`, when present, is read and dropped, as serde drops it).
#[derive(Debug, PartialEq)]
pub(crate) struct TradeFields<'a> {
    /// The stream name (`btcusdt@trade`).
    pub stream: &'a str,
    pub symbol: &'a str,
    pub id: u64,
    pub price: &'a str,
    pub qty: &'a str,
    pub time: i64,
    pub buyer_is_maker: bool,
}

#[derive(Debug, PartialEq)]
pub(crate) enum Frame<'a> {
    Depth(Depth<'a>),
    Trade(TradeFields<'a>),
}

/// Level lists start with room for this many levels (diffs are mostly small).
const LEVELS_CAPACITY: usize = 16;

/// The frame's fields when it is a canonical `depthUpdate` or `trade`, else `None`.
pub(crate) fn parse(text: &str) -> Option<Frame<'_>> {
    let mut c = Cursor { text, at: 0 };
    c.lit(r#"{"stream":""#)?;
    let stream = c.string()?;
    c.lit(r#","data":{"e":""#)?;
    let frame = match c.string()? {
        "depthUpdate" => {
            c.lit(r#","E":"#)?;
            let event_time = c.int()?;
            c.lit(r#","s":""#)?;
            c.string()?;
            c.lit(r#","U":"#)?;
            let first = c.uint()?;
            c.lit(r#","u":"#)?;
            let last = c.uint()?;
            c.lit(r#","b":"#)?;
            let bids = c.levels()?;
            c.lit(r#","a":"#)?;
            let asks = c.levels()?;
            Frame::Depth(Depth {
                stream,
                event_time,
                first,
                last,
                bids,
                asks,
            })
        }
        "trade" => {
            c.lit(r#","E":"#)?;
            c.int()?;
            c.lit(r#","s":""#)?;
            let symbol = c.string()?;
            c.lit(r#","t":"#)?;
            let id = c.uint()?;
            c.lit(r#","p":""#)?;
            let price = c.string()?;
            c.lit(r#","q":""#)?;
            let qty = c.string()?;
            c.lit(r#","T":"#)?;
            let time = c.int()?;
            c.lit(r#","m":"#)?;
            let buyer_is_maker = c.boolean()?;
            if c.lit(r#","M":"#).is_some() {
                c.boolean()?;
            }
            Frame::Trade(TradeFields {
                stream,
                symbol,
                id,
                price,
                qty,
                time,
                buyer_is_maker,
            })
        }
        _ => return None,
    };
    c.lit("}}")?;
    (c.at == text.len()).then_some(frame)
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Consumes `lit` if the text continues with it.
    fn lit(&mut self, lit: &str) -> Option<()> {
        let end = self.at + lit.len();
        (self.bytes().get(self.at..end)? == lit.as_bytes()).then(|| self.at = end)
    }

    /// The string's content up to its closing quote (the opening one is consumed by the
    /// literal before it), which is consumed too. Escapes and control characters: `None`.
    fn string(&mut self) -> Option<&'a str> {
        let bytes = self.bytes();
        let start = self.at;
        let mut at = start;
        loop {
            match *bytes.get(at)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => at += 1,
            }
        }
        self.at = at + 1;
        // `"` is ASCII, so both ends are character boundaries.
        self.text.get(start..at)
    }

    /// A quoted decimal's content and closing quote (the opening one is consumed before):
    /// read in place when it is plain, else through [`parse_decimal`] (same value either way).
    /// Inlined: a `Decimal` returned through memory is stored narrow and loaded wide, which
    /// stalls the load.
    #[inline(always)]
    fn decimal(&mut self) -> Option<Decimal> {
        if let Some((value, read)) = parse_plain_decimal(&self.bytes()[self.at..])
            && self.bytes().get(self.at + read) == Some(&b'"')
        {
            self.at += read + 1;
            return Some(value);
        }
        parse_decimal(self.string()?).ok()
    }

    /// 1–18 decimal digits in JSON's form (always within `i64`).
    fn uint(&mut self) -> Option<u64> {
        let (value, digits) = json_uint(&self.bytes()[self.at..], 18)?;
        self.at += digits;
        Some(value)
    }

    fn int(&mut self) -> Option<i64> {
        self.uint().map(|v| v as i64)
    }

    fn boolean(&mut self) -> Option<bool> {
        if self.lit("true").is_some() {
            Some(true)
        } else {
            self.lit("false").map(|()| false)
        }
    }

    /// `[["price","size"],…]` (possibly empty) into levels.
    fn levels(&mut self) -> Option<Vec<Level>> {
        self.lit("[")?;
        let mut out = Vec::with_capacity(LEVELS_CAPACITY);
        if self.lit("]").is_some() {
            return Some(out);
        }
        loop {
            self.lit(r#"[""#)?;
            let price = self.decimal()?;
            self.lit(r#",""#)?;
            let size = self.decimal()?;
            self.lit("]")?;
            out.push(Level::new(price, size));
            match self.bytes().get(self.at)? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(out);
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The serde reading the session falls back to.
    use super::super::session::Combined;

    const DEPTH: &str = include_str!("../../../test_data/binance/ws_depth_update.json");
    const TRADE: &str = include_str!("../../../test_data/binance/ws_trade_update.json");

    /// What serde reads from `text`, in the scanner's terms, when it is a complete frame of
    /// one of the two kinds (`s` of a depth frame and `E` of a trade are required by both
    /// and kept by neither).
    fn by_serde(text: &str) -> Option<String> {
        let Combined { stream, data: d } = serde_json::from_str(text).ok()?;
        let view = match d.e.as_str() {
            "depthUpdate" => format!(
                "depth {} {} {:?} {:?} {:?} {:?}",
                stream.as_str(),
                d.event_time,
                d.first?,
                d.last?,
                d.b.0,
                d.a.0,
            ),
            "trade" => format!(
                "trade {} {} {} {:?} {:?} {} {}",
                stream.as_str(),
                d._symbol.as_str(),
                d.t?,
                d.p?.as_str(),
                d.q?.as_str(),
                d.time?,
                d.m?,
            ),
            _ => return None,
        };
        Some(view)
    }

    fn by_scanner(text: &str) -> Option<String> {
        let view = match parse(text)? {
            Frame::Depth(d) => format!(
                "depth {} {} {:?} {:?} {:?} {:?}",
                d.stream, d.event_time, d.first, d.last, d.bids, d.asks
            ),
            Frame::Trade(t) => format!(
                "trade {} {} {} {:?} {:?} {} {}",
                t.stream, t.symbol, t.id, t.price, t.qty, t.time, t.buyer_is_maker
            ),
        };
        Some(view)
    }

    /// The scanner accepts `text` only if serde reads the same fields from it.
    fn agrees(text: &str) -> bool {
        match (by_scanner(text), by_serde(text)) {
            (None, _) => true,
            (Some(fast), Some(slow)) => fast == slow,
            (Some(_), None) => false,
        }
    }

    #[test]
    fn documented_frames_take_the_fast_path() {
        let Some(Frame::Depth(d)) = parse(DEPTH.trim()) else {
            panic!("the documented depth frame is canonical");
        };
        assert_eq!(
            (d.stream, d.event_time, d.first, d.last),
            ("bnbbtc@depth@100ms", 1_672_515_782_136, 157, 160)
        );
        assert_eq!(
            d.bids,
            vec![Level::new("0.0024".parse().unwrap(), "10".parse().unwrap())]
        );
        assert_eq!(
            d.asks,
            vec![Level::new(
                "0.0026".parse().unwrap(),
                "100".parse().unwrap()
            )]
        );
        let Some(Frame::Trade(t)) = parse(TRADE.trim()) else {
            panic!("the documented trade frame is canonical");
        };
        assert_eq!(
            (
                t.stream,
                t.symbol,
                t.id,
                t.price,
                t.qty,
                t.time,
                t.buyer_is_maker
            ),
            (
                "bnbbtc@trade",
                "BNBBTC",
                12345,
                "0.001",
                "100",
                1_672_515_782_136,
                true
            )
        );
        // Without the optional `M`, with empty sides, and agreeing with serde on all three.
        let no_m = TRADE.trim().replace(r#","M":true"#, "");
        let empty = DEPTH.trim().replace(r#"[["0.0024","10"]]"#, "[]");
        for text in [DEPTH.trim(), TRADE.trim(), &no_m, &empty] {
            assert!(parse(text).is_some(), "{text}");
            assert_eq!(by_scanner(text).map(|_| agrees(text)), Some(true), "{text}");
        }
    }

    #[test]
    fn other_layouts_fall_back() {
        for text in [
            // whitespace, another key order, escapes, leading zeros, floats, extra elements,
            // bad decimals, trailing bytes, other kinds
            DEPTH.trim().replace(r#""U":157"#, r#""U": 157"#),
            DEPTH
                .trim()
                .replace(r#""U":157,"u":160"#, r#""u":160,"U":157"#),
            DEPTH.trim().replace("bnbbtc", "bnb\\u0062tc"),
            DEPTH.trim().replace(r#""U":157"#, r#""U":0157"#),
            DEPTH.trim().replace(r#""U":157"#, r#""U":157.0"#),
            DEPTH
                .trim()
                .replace(r#""U":157"#, r#""U":1234567890123456789"#),
            DEPTH
                .trim()
                .replace(r#"["0.0024","10"]"#, r#"["0.0024","10",[]]"#),
            DEPTH.trim().replace("0.0024", "1e3"),
            format!("{} ", DEPTH.trim()),
            TRADE.trim().replace(r#""m":true"#, r#""m":1"#),
            TRADE.trim().replace(r#""e":"trade""#, r#""e":"aggTrade""#),
            TRADE.trim().replace(r#","M":true"#, r#","M":true,"X":1"#),
        ] {
            assert_eq!(parse(&text), None, "{text}");
        }
    }

    /// Every truncation and every one-byte change of the documented frames: the scanner
    /// either refuses the text or reads what serde reads.
    #[test]
    fn the_scanner_agrees_with_serde_on_every_mutation() {
        let mut accepted = 0;
        for frame in [DEPTH.trim(), TRADE.trim()] {
            for end in 0..frame.len() {
                assert!(agrees(&frame[..end]), "{}", &frame[..end]);
            }
            for at in 0..frame.len() {
                for replacement in [
                    b'0', b'1', b'9', b'"', b'\\', b',', b'.', b'-', b' ', b'e', b'[', b']', b'{',
                    b'}', b'a', b'\n',
                ] {
                    let mut bytes = frame.as_bytes().to_vec();
                    bytes[at] = replacement;
                    let Ok(text) = String::from_utf8(bytes) else {
                        continue;
                    };
                    assert!(agrees(&text), "{text}");
                    accepted += usize::from(parse(&text).is_some());
                }
            }
        }
        // The check is not vacuous: many mutations (other digits, other letters) stay valid.
        assert!(
            accepted > 100,
            "only {accepted} mutated frames were accepted"
        );
    }
}
