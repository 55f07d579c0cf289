//! What the client presents to the gateway.

use std::fmt;

/// How the client authenticates. Applied as an `Authorization` header on the WebSocket upgrade
/// and on every REST call. [`Client::set_credentials`](crate::ClientHandle::set_credentials) swaps
/// them at run time.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// Anonymous (a gateway that allows unauthenticated market data).
    #[default]
    None,
    /// `Authorization: Bearer <token>` with an API key.
    Bearer(Secret),
}

impl Credentials {
    /// Bearer credentials; the token must be printable ASCII without spaces.
    pub fn bearer(token: impl Into<String>) -> Result<Self, crate::ClientError> {
        let token = token.into();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(crate::ClientError::InvalidCredentials(
                "a bearer token must be non-empty printable ASCII without spaces".into(),
            ));
        }
        Ok(Self::Bearer(Secret(token)))
    }

    /// The `Authorization` header value, if any.
    pub(crate) fn header(&self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Bearer(secret) => Some(format!("Bearer {}", secret.0)),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Bearer(secret) => write!(f, "Bearer({secret:?})"),
        }
    }
}

/// A secret string: `Debug` shows only a masked prefix, and the bytes are overwritten on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Up to the first 8 characters (a key's public prefix, e.g. `tg_live_`), then `…`.
    pub fn masked(&self) -> String {
        let prefix: String = self.0.chars().take(8).collect();
        format!("{prefix}…")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\" (REDACTED)", self.masked())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Overwrite in place; a best effort without `unsafe` (copies made by the HTTP stack
        // are out of our hands).
        let len = self.0.len();
        self.0.clear();
        self.0.extend(std::iter::repeat_n('\0', len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_sets_the_header_and_never_prints_the_token() {
        let creds = Credentials::bearer("tg_test_abcdefghijklmnop").unwrap();
        assert_eq!(
            creds.header().as_deref(),
            Some("Bearer tg_test_abcdefghijklmnop")
        );
        let shown = format!("{creds:?}");
        assert!(!shown.contains("abcdefghijklmnop"), "{shown}");
        assert!(shown.contains("REDACTED"));
        assert_eq!(Credentials::None.header(), None);
        for bad in ["", "has space", "new\nline", "ümlaut"] {
            assert!(Credentials::bearer(bad).is_err(), "{bad:?}");
        }
    }
}
