//! [`Endpoint`]: the gateway's WebSocket and REST base URLs, derived from one URL;
//! [`Endpoints`]: several gateways of one cluster (its edges), tried in turn.

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

/// Most gateway URLs one client accepts.
pub const MAX_ENDPOINTS: usize = 64;

/// The gateways a client may use, in order: the first connection goes to the first that
/// answers, and every reconnect attempt goes to the next one (round robin), so a client of a
/// cluster moves to another edge when its edge dies. One URL is the single-gateway case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    list: Vec<Endpoint>,
    current: usize,
}

impl Endpoints {
    /// Parses every URL ([`Endpoint::parse`]); an empty list, more than [`MAX_ENDPOINTS`], a
    /// URL given twice or any bad URL is an error naming it.
    pub fn parse<I, S>(urls: I) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list: Vec<Endpoint> = Vec::new();
        for url in urls {
            let endpoint = Endpoint::parse(url.as_ref().trim())?;
            if list.contains(&endpoint) {
                return Err(ClientError::InvalidArgument(format!(
                    "gateway URL {} given twice",
                    endpoint.http
                )));
            }
            list.push(endpoint);
            if list.len() > MAX_ENDPOINTS {
                return Err(ClientError::InvalidArgument(format!(
                    "more than {MAX_ENDPOINTS} gateway URLs"
                )));
            }
        }
        if list.is_empty() {
            return Err(ClientError::NoUrl);
        }
        Ok(Self { list, current: 0 })
    }

    /// The endpoint in use (or last used).
    pub fn current(&self) -> &Endpoint {
        &self.list[self.current]
    }

    /// Moves to the next endpoint, wrapping around, and returns it.
    pub fn advance(&mut self) -> &Endpoint {
        self.current = (self.current + 1) % self.list.len();
        self.current()
    }

    /// Every endpoint, in the order given.
    pub fn all(&self) -> &[Endpoint] {
        &self.list
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Always false: a list is never empty ([`parse`](Self::parse) refuses one).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
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

    #[test]
    fn a_list_is_checked_and_rotates_round_robin() {
        let mut list = Endpoints::parse(["http://a:1", " ws://b:2/v1/ws", "https://c"]).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list.current().http, "http://a:1");
        let order: Vec<String> = (0..4).map(|_| list.advance().http.clone()).collect();
        assert_eq!(
            order,
            ["http://b:2", "https://c", "http://a:1", "http://b:2"]
        );
        assert_eq!(
            Endpoints::parse(["http://a:1"]).unwrap().advance().http,
            "http://a:1"
        );

        let none: [&str; 0] = [];
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (none.to_vec(), "invalid_url"),
            (vec!["http://a:1", "ftp://b:2"], "invalid_url"),
            (vec!["http://a:1", ""], "invalid_url"),
            (vec!["http://a:1", "ws://a:1/v1/ws"], "invalid_argument"),
        ];
        for (urls, code) in cases {
            let error = Endpoints::parse(&urls).unwrap_err();
            assert_eq!(error.code(), code, "{urls:?}: {error}");
        }
        let error = Endpoints::parse(["http://a:1", "ftp://b:2"]).unwrap_err();
        assert!(error.to_string().contains("ftp://b:2"), "{error}");
        let many: Vec<String> = (0..=MAX_ENDPOINTS)
            .map(|i| format!("http://h:{}", i + 1))
            .collect();
        assert_eq!(
            Endpoints::parse(&many).unwrap_err().code(),
            "invalid_argument"
        );
        assert_eq!(
            Endpoints::parse(&many[..MAX_ENDPOINTS]).unwrap().len(),
            MAX_ENDPOINTS
        );
    }
}
