//! [`Endpoint`]: the gateway's WebSocket and REST base URLs, derived from one URL.

use crate::error::ClientError;

/// The gateway's two base URLs, derived from one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `ws://host:port/v1/ws` (or `wss://`).
    pub ws: String,
    /// `http://host:port` (or `https://`).
    pub http: String,
}

impl Endpoint {
    /// Accepts `http(s)://host:port[/…]` or `ws(s)://host:port[/v1/ws]`.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let invalid = || ClientError::InvalidUrl(url.chars().take(200).collect());
        let (secure, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("ws://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("wss://") {
            (true, rest)
        } else {
            return Err(invalid());
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty()
            || !authority
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        {
            return Err(invalid());
        }
        let (ws, http) = if secure {
            ("wss", "https")
        } else {
            ("ws", "http")
        };
        Ok(Self {
            ws: format!("{ws}://{authority}/v1/ws"),
            http: format!("{http}://{authority}"),
        })
    }

    /// `host[:port]` of the REST base URL exactly as the HTTP client sends it in `Host`, the
    /// `@authority` a signature covers: the host in lower case, the port only when it is not
    /// the scheme's default (80 for http, 443 for https).
    pub fn authority(&self) -> Result<String, ClientError> {
        let url = reqwest::Url::parse(&self.http)
            .map_err(|_| ClientError::InvalidUrl(self.http.chars().take(200).collect()))?;
        let host = url
            .host_str()
            .ok_or_else(|| ClientError::InvalidUrl(self.http.chars().take(200).collect()))?;
        Ok(match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_derive_from_one_url() {
        let cases = [
            (
                "http://127.0.0.1:8080",
                Some(("ws://127.0.0.1:8080/v1/ws", "http://127.0.0.1:8080")),
            ),
            (
                "https://gw.example/",
                Some(("wss://gw.example/v1/ws", "https://gw.example")),
            ),
            ("ws://h:1/v1/ws", Some(("ws://h:1/v1/ws", "http://h:1"))),
            ("127.0.0.1:8080", None),
            ("http://", None),
            ("http://bad host", None),
        ];
        for (url, want) in cases {
            let got = Endpoint::parse(url).ok().map(|e| (e.ws, e.http));
            let want = want.map(|(w, h)| (w.to_string(), h.to_string()));
            assert_eq!(got, want, "{url}");
        }
    }

    /// The signed `@authority` is the `Host` header reqwest sends: default ports dropped,
    /// host in lower case.
    #[test]
    fn authority_is_the_host_header_reqwest_sends() {
        let cases = [
            ("http://127.0.0.1:8080", "127.0.0.1:8080"),
            ("http://GW.Example:80/", "gw.example"),
            ("https://gw.example:443", "gw.example"),
            ("http://gw.example:443", "gw.example:443"),
            ("https://gw.example:80", "gw.example:80"),
            ("ws://h:9000/v1/ws", "h:9000"),
            ("http://[::1]:8080", "[::1]:8080"),
            ("https://gw.example", "gw.example"),
        ];
        for (url, want) in cases {
            let got = Endpoint::parse(url).unwrap().authority().unwrap();
            assert_eq!(got, want, "{url}");
        }
    }
}
