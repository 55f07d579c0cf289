//! Parsing helpers every venue uses: exact decimals and level lists.

use model::{Decimal, Level, parse_decimal};

/// Parses a venue decimal exactly, naming the field in the error.
pub(crate) fn decimal(field: &str, text: &str) -> Result<Decimal, String> {
    parse_decimal(text).map_err(|e| format!("{field}: {e}"))
}

/// Parses `[price, size]` string pairs into levels.
pub(crate) fn levels(field: &str, pairs: &[[&str; 2]]) -> Result<Vec<Level>, String> {
    pairs
        .iter()
        .map(|[p, s]| Ok(Level::new(decimal(field, p)?, decimal(field, s)?)))
        .collect()
}

/// Text for a log line: at most 200 characters of a venue message.
pub(crate) fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}
