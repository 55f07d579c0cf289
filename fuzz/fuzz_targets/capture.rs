//! The capture reader (`tickgate replay`): gzip-compressed JSON lines.
//!
//! The input is read twice: as the decompressed lines (where the record parser is exercised)
//! and as a gzip stream (where the decompressor and the line splitter are). Oracle: no panic,
//! and a refused line is named in the error.
#![no_main]

use connectors::conn::record::read_capture_lines;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = read_capture_lines(data, "fuzz") {
        if e.kind() == std::io::ErrorKind::InvalidData && !e.to_string().contains("UTF-8") {
            assert!(e.to_string().starts_with("fuzz: line "), "{e}");
        }
    }
    let gz = std::io::BufReader::new(flate2::read::GzDecoder::new(data));
    let _ = read_capture_lines(gz, "fuzz.gz");
});
