//! Connections to a node: JSON-RPC over HTTP (requests and batches) and over WebSocket
//! (subscriptions). Errors never show the URL beyond its host (node URLs carry API keys).

use super::error::EvmError;
use super::rpc::{Incoming, parse_incoming, request};
use super::spec::redact_url;
use crate::conn::ws::{VenueSocket, connect};
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Largest HTTP answer accepted (a backfill chunk of `eth_getLogs` can be large).
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// JSON-RPC over HTTP. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    url: String,
    shown: String,
    next_id: std::sync::Arc<AtomicU64>,
}

impl Http {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, EvmError> {
        crate::conn::ws::ensure_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("tickgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EvmError::Transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            url: url.to_string(),
            shown: redact_url(url),
            next_id: std::sync::Arc::new(AtomicU64::new(1)),
        })
    }

    async fn post(&self, body: String) -> Result<String, EvmError> {
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                EvmError::Timeout(format!("POST {}", self.shown))
            } else {
                EvmError::Transport(format!("POST {}: {}", self.shown, e.without_url()))
            }
        };
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(EvmError::Transport(format!(
                "POST {}: body too large",
                self.shown
            )));
        }
        let text = response.text().await.map_err(transport)?;
        if !status.is_success() {
            return Err(EvmError::Transport(format!(
                "POST {}: HTTP {status}: {}",
                self.shown,
                text.chars().take(200).collect::<String>()
            )));
        }
        if text.len() > MAX_BODY_BYTES {
            return Err(EvmError::Transport(format!(
                "POST {}: body too large",
                self.shown
            )));
        }
        Ok(text)
    }

    /// One request; `parse` reads the `result`.
    pub async fn call<T>(
        &self,
        method: &'static str,
        params: &str,
        parse: impl FnOnce(&RawValue) -> Result<T, EvmError>,
    ) -> Result<T, EvmError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = self.post(request(id, method, params)).await?;
        match parse_incoming(&body)? {
            Incoming::Response { id: got, result } if got == id => {
                parse(result.map_err(|f| f.into_error(method))?)
            }
            Incoming::Response { id: got, .. } => Err(EvmError::Unexpected(format!(
                "{method}: answer to request {got}, expected {id}"
            ))),
            Incoming::Notification { .. } => Err(EvmError::Unexpected(format!(
                "{method}: a notification instead of an answer"
            ))),
        }
    }

    /// A batch of requests of one method; the results in the order of `params`.
    pub async fn batch<T>(
        &self,
        method: &'static str,
        params: &[String],
        parse: impl Fn(&RawValue) -> Result<T, EvmError>,
    ) -> Result<Vec<T>, EvmError> {
        if params.is_empty() {
            return Ok(Vec::new());
        }
        let first = self
            .next_id
            .fetch_add(params.len() as u64, Ordering::Relaxed);
        let mut body = String::from("[");
        for (i, p) in params.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&request(first + i as u64, method, p));
        }
        body.push(']');
        let text = self.post(body).await?;
        let answers: Vec<&RawValue> = serde_json::from_str(&text)
            .map_err(|e| EvmError::malformed(&format!("{method} batch"), e))?;
        if answers.len() != params.len() {
            return Err(EvmError::Unexpected(format!(
                "{method} batch: {} answers to {} requests",
                answers.len(),
                params.len()
            )));
        }
        let mut out: Vec<Option<T>> = (0..params.len()).map(|_| None).collect();
        for answer in answers {
            let Incoming::Response { id, result } = parse_incoming(answer.get())? else {
                return Err(EvmError::Unexpected(format!(
                    "{method} batch: a notification in the answers"
                )));
            };
            let slot = id
                .checked_sub(first)
                .and_then(|i| out.get_mut(usize::try_from(i).ok()?))
                .ok_or_else(|| {
                    EvmError::Unexpected(format!("{method} batch: answer to request {id}"))
                })?;
            if slot.is_some() {
                return Err(EvmError::Unexpected(format!(
                    "{method} batch: two answers to request {id}"
                )));
            }
            *slot = Some(parse(result.map_err(|f| f.into_error(method))?)?);
        }
        // Every slot is filled: as many answers as requests, no duplicates.
        Ok(out.into_iter().flatten().collect())
    }
}

/// One WebSocket connection to a node.
#[derive(Debug)]
pub struct Ws {
    socket: VenueSocket,
    next_id: u64,
}

impl Ws {
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, EvmError> {
        let socket = connect(url, timeout)
            .await
            .map_err(|e| EvmError::Transport(format!("connect {}: {e}", redact_url(url))))?;
        Ok(Self { socket, next_id: 1 })
    }

    /// Sends a request; returns its id.
    pub async fn send(&mut self, method: &str, params: &str) -> Result<u64, EvmError> {
        let id = self.next_id;
        self.next_id += 1;
        self.socket
            .send(Message::text(request(id, method, params)))
            .await
            .map_err(|e| EvmError::Transport(format!("send: {e}")))?;
        Ok(id)
    }

    /// The next text message (pings are answered by the library; other frames skipped).
    pub async fn next_text(&mut self) -> Result<String, EvmError> {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_string()),
                Some(Ok(Message::Binary(bytes))) => {
                    return String::from_utf8(bytes.to_vec())
                        .map_err(|_| EvmError::malformed("frame", "binary frame is not UTF-8"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(EvmError::Transport(format!(
                        "closed by the node{}",
                        frame
                            .map(|f| format!(": {} {}", f.code, f.reason))
                            .unwrap_or_default()
                    )));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(EvmError::Transport(e.to_string())),
                None => return Err(EvmError::Transport("connection closed".into())),
            }
        }
    }

    /// Closes politely (bounded wait).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.socket.close(None)).await;
    }
}
