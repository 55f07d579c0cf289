//! Venue REST GETs (book snapshots, instrument metadata).

use std::time::Duration;

/// Largest REST body accepted (a Binance 5000-level snapshot is about 250 KB).
pub const MAX_BODY_BYTES: usize = 32 << 20;

/// A shared HTTP client for one venue. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RestClient {
    client: reqwest::Client,
}

impl RestClient {
    pub fn new(timeout: Duration) -> Result<Self, String> {
        super::ws::ensure_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("tickgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { client })
    }

    /// GETs `url`; a non-2xx status or an oversized body is an error naming it.
    pub async fn get(&self, url: &str) -> Result<String, String> {
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {}: {e}", strip_query(url)))?;
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(format!("GET {}: body too large", strip_query(url)));
        }
        let body = response
            .text()
            .await
            .map_err(|e| format!("GET {}: {e}", strip_query(url)))?;
        if !status.is_success() {
            let excerpt: String = body.chars().take(200).collect();
            return Err(format!(
                "GET {}: HTTP {status}: {excerpt}",
                strip_query(url)
            ));
        }
        if body.len() > MAX_BODY_BYTES {
            return Err(format!("GET {}: body too large", strip_query(url)));
        }
        Ok(body)
    }
}

/// The URL without its query, for messages.
fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}
