//! Time parameters of the REST API: epoch milliseconds or RFC 3339, to µs since the epoch.

use crate::api_error::ApiError;
use model::Timestamp;
use protocol::ErrorCode;

/// Parses a time parameter: epoch milliseconds (digits only) or RFC 3339
/// (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.250+02:00`). Sub-microsecond digits are
/// truncated.
pub fn parse_time(name: &str, text: &str) -> Result<Timestamp, ApiError> {
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidTime,
            format!(
                "{name} {:?} is neither RFC 3339 (e.g. 2024-05-01T12:00:00Z) nor epoch milliseconds",
                text.chars().take(40).collect::<String>()
            ),
        )
    };
    if !text.is_empty() && text.len() <= 15 && text.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = text.parse().map_err(|_| invalid())?;
        return Ok(Timestamp::from_millis(ms));
    }
    Timestamp::parse_rfc3339(text).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_or_epoch_millis() {
        let ok = [
            ("0", 0),
            ("1700000000123", 1_700_000_000_123_000),
            ("1970-01-01T00:00:00Z", 0),
            ("2023-11-14T22:13:20Z", 1_700_000_000_000_000),
            ("2023-11-14t22:13:20.5z", 1_700_000_000_500_000),
            ("2023-11-14T22:13:20.123456789Z", 1_700_000_000_123_456),
            ("2023-11-15T00:13:20+02:00", 1_700_000_000_000_000),
            ("2023-11-14T20:43:20-01:30", 1_700_000_000_000_000),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000_000),
            ("1969-12-31T23:59:59Z", -1_000_000),
        ];
        for (text, micros) in ok {
            assert_eq!(
                parse_time("from", text).unwrap(),
                Timestamp(micros),
                "{text}"
            );
        }
        let bad = [
            "",
            "-5",
            "1e9",
            "1234567890123456",
            "yesterday",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-11-14 22:13:20Z",
            "2023-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:60:00Z",
            "2023-11-14T22:13:60Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0200",
            "2023-11-14T22:13:20+24:00",
            "2023-11-14T22:13:20.1234567890Z",
            "२०२३-11-14T22:13:20Z",
        ];
        for text in bad {
            let error = parse_time("to", text).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidTime, "{text:?}");
        }
    }
}
