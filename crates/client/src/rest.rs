//! REST helpers for the public endpoints, with typed errors carrying the gateway's code.

use crate::endpoint::Endpoint;
use crate::error::ClientError;
use crate::shared::Shared;
use httpsig::sign::Unsigned;
use model::{Interval, Symbol, Venue};
use protocol::CandlesPage;
use protocol::ErrorBody;
use protocol::rest::{BookResponse, InstrumentsResponse, TickerResponse};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// Calls `GET /v1/...` with the client's current credentials, on the gateway of the client's
/// current connection (with several URLs, the one the stream last connected to).
#[derive(Debug, Clone)]
pub struct RestClient {
    http: reqwest::Client,
    shared: Arc<Shared>,
}

fn instrument(venue: &str, symbol: &str) -> Result<String, ClientError> {
    let venue = Venue::new(venue).map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
    let symbol = Symbol::new(symbol).map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
    // Both are validated to URL-safe characters.
    Ok(format!("venue={venue}&symbol={symbol}"))
}

impl RestClient {
    pub(crate) fn new(shared: Arc<Shared>, timeout: Duration) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(ClientError::Http)?;
        Ok(Self { http, shared })
    }

    /// The gateway the next call goes to.
    pub fn endpoint(&self) -> Endpoint {
        self.shared.endpoint.read().clone()
    }

    /// `GET /v1/instruments`.
    pub async fn instruments(&self) -> Result<InstrumentsResponse, ClientError> {
        self.get("/v1/instruments", String::new()).await
    }

    /// `GET /v1/ticker`.
    pub async fn ticker(&self, venue: &str, symbol: &str) -> Result<TickerResponse, ClientError> {
        self.get("/v1/ticker", instrument(venue, symbol)?).await
    }

    /// `GET /v1/book`: `depth` levels per side (the gateway's default when `None`).
    pub async fn book(
        &self,
        venue: &str,
        symbol: &str,
        depth: Option<usize>,
    ) -> Result<BookResponse, ClientError> {
        let mut query = instrument(venue, symbol)?;
        if let Some(depth) = depth {
            query.push_str(&format!("&depth={depth}"));
        }
        self.get("/v1/book", query).await
    }

    /// `GET /v1/candles`: one page of closed candles, oldest first from the start of what is
    /// stored (at most `limit`); pass the page's `next_cursor` to the REST API for the next.
    pub async fn candles(
        &self,
        venue: &str,
        symbol: &str,
        interval: Interval,
        limit: Option<usize>,
    ) -> Result<CandlesPage, ClientError> {
        let mut query = instrument(venue, symbol)?;
        query.push_str(&format!("&interval={interval}"));
        if let Some(limit) = limit {
            query.push_str(&format!("&limit={limit}"));
        }
        self.get("/v1/candles", query).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, query: String) -> Result<T, ClientError> {
        let endpoint = self.endpoint();
        // The `Host` header reqwest sends: what the signature covers as `@authority`.
        let authority = endpoint.authority()?;
        let url = if query.is_empty() {
            format!("{}{path}", endpoint.http)
        } else {
            format!("{}{path}?{query}", endpoint.http)
        };
        // Signed afresh on every call (a new `created` and nonce), with the credentials
        // current now: a key swap applies to the next call.
        let unsigned = Unsigned {
            method: "GET",
            authority: &authority,
            path,
            query: (!query.is_empty()).then_some(query.as_str()),
            body: b"",
        };
        let headers = self.shared.credentials.read().headers(&unsigned)?;
        let mut request = self.http.get(url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(ClientError::Http)?;
        let status = response.status();
        let body = response.bytes().await.map_err(ClientError::Http)?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| ClientError::Decode(format!("{path}: {e}")));
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(error) => Err(ClientError::api(error, Some(status.as_u16()))),
            Err(_) => Err(ClientError::Decode(format!(
                "{path}: HTTP {status} without an error body"
            ))),
        }
    }
}
