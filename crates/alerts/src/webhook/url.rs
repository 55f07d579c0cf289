//! Webhook URLs: what is accepted, and how a URL is shown (never its query, which may carry
//! a token).

use crate::error::AlertError;

/// Longest accepted URL.
pub const MAX_URL_LEN: usize = 2048;

/// Parses and checks a webhook URL: `http` or `https`, a host, no user info, no fragment.
pub fn parse(text: &str) -> Result<reqwest::Url, AlertError> {
    let bad = |why: &str| AlertError::InvalidUrl(format!("url: {why}"));
    if text.len() > MAX_URL_LEN {
        return Err(bad(&format!("longer than {MAX_URL_LEN} bytes")));
    }
    let url = reqwest::Url::parse(text.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("a host is required"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL are refused; put them in the path or query",
        ));
    }
    if url.fragment().is_some() {
        return Err(bad("a fragment is never sent; remove it"));
    }
    Ok(url)
}

/// The URL without its query, for messages and logs.
pub fn shown(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_https_only_without_credentials() {
        for ok in [
            "https://hooks.example.com/tg",
            "http://127.0.0.1:9000/x?token=abc",
            "https://[2001:db8::1]/",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "https://example.com/#frag",
            "not a url",
            "file:///etc/passwd",
            "https://",
        ] {
            assert_eq!(
                parse(bad).unwrap_err().code(),
                protocol::ErrorCode::InvalidUrl,
                "{bad}"
            );
        }
        assert!(parse(&format!("https://e.com/{}", "a".repeat(MAX_URL_LEN))).is_err());
        let url = parse("https://e.com/hook?token=secret").unwrap();
        assert_eq!(shown(&url), "https://e.com/hook");
    }
}
