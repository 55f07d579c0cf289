//! The capture readers (`tickgate replay`, the replay venue): both formats.
//!
//! The input is read four ways: as the decompressed lines of a `jsonl-gz` capture (the
//! readers' line decoder: the hand-written text-frame path, serde for the rest) and as a
//! gzip stream (the decompressor and the line splitter); as the decompressed content of a
//! `tgcap` capture (the framed record parser) and as an LZ4 frame (the decompressor under it). Oracle: no panic, no unbounded allocation (libFuzzer's
//! `-rss_limit_mb`), and a refused content says where: a refused line or record is named,
//! a cut-off content is `UnexpectedEof`.
#![no_main]

use connectors::conn::record::framed::FramedReader;
use connectors::conn::record::{CaptureRecord, read_capture_lines};
use libfuzzer_sys::fuzz_target;

/// Reads every record of a framed content; the error, if any.
fn read_framed(data: impl std::io::Read) -> Option<std::io::Error> {
    let mut reader = FramedReader::new(data);
    let mut slot = CaptureRecord::empty();
    loop {
        match reader.next_into(&mut slot) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(e),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Err(e) = read_capture_lines(data, "fuzz") {
        if e.kind() == std::io::ErrorKind::InvalidData && !e.to_string().contains("UTF-8") {
            assert!(e.to_string().starts_with("fuzz: line "), "{e}");
        }
    }
    let gz = std::io::BufReader::new(flate2::read::GzDecoder::new(data));
    let _ = read_capture_lines(gz, "fuzz.gz");
    if let Some(e) = read_framed(data) {
        let text = e.to_string();
        match e.kind() {
            std::io::ErrorKind::InvalidData => assert!(
                text.starts_with("record ") || text.starts_with("not a tickgate capture"),
                "{text}"
            ),
            std::io::ErrorKind::UnexpectedEof => assert!(text.starts_with("ends "), "{text}"),
            kind => panic!("{kind:?}: {text}"),
        }
    }
    let _ = read_framed(lz4_flex::frame::FrameDecoder::new(data));
});
