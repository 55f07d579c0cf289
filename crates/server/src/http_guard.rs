//! Requests whose meaning depends on which of two copies a reader picks are refused before
//! any handler sees them (issue 14, "lenient HTTP").
//!
//! A proxy in front and the gateway behind could disagree on a request with two `Host`
//! headers (signatures verify over one of them), an absolute-form target naming another
//! authority than `Host`, or two `Authorization`/`Signature`/`Signature-Input`/
//! `Content-Digest` headers. Each is `400 bad_request` with the usual JSON error body, and so
//! is an HTTP/1.1 request without `Host` (RFC 9112 §3.2).

use crate::api_error::ApiError;
use axum::extract::Request;
use axum::http::{HeaderName, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use protocol::ErrorCode;

/// Headers that must appear at most once.
const SINGLE: [&str; 5] = [
    "host",
    "authorization",
    "signature",
    "signature-input",
    "content-digest",
];

/// The check, as a middleware in front of the whole router; it also adds the security
/// headers every response carries (see [`SECURITY_HEADERS`]).
pub async fn refuse_ambiguous(request: Request, next: Next) -> Response {
    let mut response = match check(&request) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    };
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name) {
            headers.insert(name, header::HeaderValue::from_static(value));
        }
    }
    response
}

/// On every response unless the route set its own: no MIME sniffing of JSON into script, no
/// framing of the dashboard by another site, no referrer carrying a `?token=` elsewhere.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-site"),
];

fn bad(message: String) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, message)
}

fn check(request: &Request) -> Result<(), ApiError> {
    check_sizes(request)?;
    if let Some(invalid) = request
        .extensions()
        .get::<crate::forwarded::InvalidForwarded>()
    {
        return Err(ApiError::new(
            ErrorCode::InvalidForwarded,
            format!(
                "{}; the proxy in front of the gateway is misconfigured",
                invalid.0
            ),
        ));
    }
    if request
        .extensions()
        .get::<crate::listener::ReservedSocket>()
        .is_some()
        && !crate::listener::reserve_allows(request.uri().path())
    {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "connection limit reached; retry later (health and admin routes still answer)",
        ));
    }
    let headers = request.headers();
    for name in SINGLE {
        if headers
            .get_all(HeaderName::from_static(name))
            .iter()
            .count()
            > 1
        {
            return Err(bad(format!("the {name} header is given more than once")));
        }
    }
    let host = headers.get(header::HOST);
    if host.is_none() && request.version() == Version::HTTP_11 {
        return Err(bad("an HTTP/1.1 request needs a Host header".into()));
    }
    if let (Some(authority), Some(host)) = (request.uri().authority(), host) {
        let same = host
            .to_str()
            .is_ok_and(|h| h.eq_ignore_ascii_case(authority.as_str()));
        if !same {
            return Err(bad(
                "the request target names another authority than the Host header".into(),
            ));
        }
    }
    Ok(())
}

/// Longest request target answered normally; a longer one gets `414 uri_too_long`.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Longest header line (`name: value`); a longer one gets `431 headers_too_large`.
pub const MAX_HEADER_LINE_BYTES: usize = 8 * 1024;

fn check_sizes(request: &Request) -> Result<(), ApiError> {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len())
        + request.uri().authority().map_or(0, |a| a.as_str().len());
    if target > MAX_URI_BYTES {
        return Err(ApiError::new(
            ErrorCode::UriTooLong,
            format!("the request target exceeds {MAX_URI_BYTES} bytes"),
        ));
    }
    for (name, value) in request.headers() {
        // `name: value` as it came on the wire.
        if name.as_str().len() + 2 + value.len() > MAX_HEADER_LINE_BYTES {
            return Err(ApiError::new(
                ErrorCode::HeadersTooLarge,
                format!("the {name} header line exceeds {MAX_HEADER_LINE_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

/// hyper answers a request head it cannot parse itself (`400`, `414`, `431` with an empty
/// body: a head over [`crate::listener::MAX_HEADER_BYTES`], a malformed request line or
/// header) before any router runs. This socket wrapper recognises exactly those automatic
/// answers on their way out and writes the gateway's JSON error body instead, so every error,
/// these included, has the same shape.
pub struct JsonParseErrors<I> {
    inner: I,
    /// A replacement answer still to write, and how much of it is written.
    pending: Vec<u8>,
    written: usize,
    /// Set once an answer was replaced: hyper closes the connection after it.
    done: bool,
}

impl<I> std::fmt::Debug for JsonParseErrors<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonParseErrors")
            .field("pending", &self.pending.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<I> JsonParseErrors<I> {
    pub fn new(inner: I) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
            done: false,
        }
    }
}

/// The JSON answer that replaces hyper's automatic one in `head`, if `head` is one.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    // hyper's automatic answers: a status line, `content-length: 0`, `date`, nothing else.
    if head.len() > 256 || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let (status, code, message) = if text.starts_with("HTTP/1.1 431 ") {
        (
            "431 Request Header Fields Too Large",
            ErrorCode::HeadersTooLarge,
            format!(
                "the request head exceeds {} bytes, or has too many headers",
                crate::listener::MAX_HEADER_BYTES
            ),
        )
    } else if text.starts_with("HTTP/1.1 414 ") {
        (
            "414 URI Too Long",
            ErrorCode::UriTooLong,
            format!("the request target exceeds {MAX_URI_BYTES} bytes"),
        )
    } else if text.starts_with("HTTP/1.1 400 ") {
        (
            "400 Bad Request",
            ErrorCode::BadRequest,
            "malformed HTTP request head".to_string(),
        )
    } else {
        return None;
    };
    let lower = text.to_ascii_lowercase();
    if !lower.contains("\r\ncontent-length: 0\r\n") || lower.contains("\r\ncontent-type:") {
        return None;
    }
    let body = serde_json::to_string(&protocol::ErrorBody {
        code,
        message,
        id: None,
        channel: None,
    })
    .ok()?;
    let mut answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n",
        body.len()
    );
    for (name, value) in SECURITY_HEADERS {
        answer.push_str(name);
        answer.push_str(": ");
        answer.push_str(value);
        answer.push_str("\r\n");
    }
    answer.push_str("\r\n");
    answer.push_str(&body);
    Some(answer.into_bytes())
}

impl<I: tokio::io::AsyncWrite + Unpin> JsonParseErrors<I> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Whether `head` (the start of a write) was replaced.
    fn intercept(&mut self, head: &[u8]) -> bool {
        if self.done {
            return false;
        }
        match replacement(head) {
            Some(answer) => {
                self.pending = answer;
                self.written = 0;
                self.done = true;
                true
            }
            // Every write is looked at (cheaply: a length and a prefix), since any answer on a
            // keep-alive connection may be hyper's; a body or WebSocket frame never matches.
            None => false,
        }
    }
}

use std::pin::Pin;
use std::task::{Context, Poll, ready};

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for JsonParseErrors<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for JsonParseErrors<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if self.intercept(buf) {
            // Accepted; the replacement goes out now or on the next flush.
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && first.len() == total
            && self.intercept(first)
        {
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(total));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_automatic_answers_are_replaced() {
        let auto = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Thu, 03 Dec 2026 09:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(replacement(auto).unwrap()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        assert!(answer.contains(r#""code":"headers_too_large""#), "{answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        assert!(answer.contains(&format!("content-length: {}\r\n", body.len())));
        let uri = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert!(
            String::from_utf8(replacement(uri).unwrap())
                .unwrap()
                .contains("uri_too_long")
        );
        let bad = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert!(
            String::from_utf8(replacement(bad).unwrap())
                .unwrap()
                .contains("bad_request")
        );
        // The gateway's own answers are left alone: a JSON 400, a 200, a 431 with a body.
        for own in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 10\r\n\r\n",
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n",
        ] {
            assert!(replacement(own).is_none(), "{}", String::from_utf8_lossy(own));
        }
    }
}
