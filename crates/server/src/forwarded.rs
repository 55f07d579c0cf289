//! The client's address behind a trusted reverse proxy (`[server] trusted_proxies`).
//!
//! Only when the TCP peer is in one of the listed CIDR blocks is `Forwarded` (RFC 7239) read,
//! or else `X-Forwarded-For`; the client is the rightmost address of the chain that is not
//! itself a trusted proxy (everything left of it was written by the client and proves
//! nothing). From any other peer both headers are ignored, so a client cannot choose its own
//! address. The list is empty by default: nothing is trusted.
//!
//! A trusted proxy's header that does not parse is refused (`400 invalid_forwarded`, through
//! [`InvalidForwarded`] and `http_guard`) rather than guessed at. The resolved address replaces
//! the peer in the request's `ConnectInfo`, so IP allow-lists, per-address limits, audit
//! entries and logs all use it; [`TcpPeer`] keeps the socket's own.

use auth::ip_allow::Cidr;
use axum::http::HeaderMap;
use std::net::{IpAddr, SocketAddr};

/// Most hops read from one request's headers.
pub const MAX_HOPS: usize = 32;

/// The TCP peer of a request (the proxy, when the client is behind one).
#[derive(Debug, Clone, Copy)]
pub struct TcpPeer(pub SocketAddr);

/// Marks a request whose trusted proxy sent a malformed forwarding header (why, for the 400).
#[derive(Debug, Clone)]
pub struct InvalidForwarded(pub String);

/// The configured proxies.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    blocks: Vec<Cidr>,
}

/// One hop of a forwarding chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Addr(SocketAddr),
    /// `unknown`, an obfuscated identifier (`_hidden`), or an element without `for=`.
    Unknown,
}

impl TrustedProxies {
    /// Parses `server.trusted_proxies`; the error names the entry.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        let blocks = list
            .iter()
            .map(|entry| entry.parse::<Cidr>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { blocks })
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|block| block.contains(ip))
    }

    /// The client address of a request from `peer`.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> Result<SocketAddr, String> {
        if self.blocks.is_empty() || !self.trusts(peer.ip()) {
            return Ok(peer);
        }
        let hops = if headers.contains_key("forwarded") {
            let mut hops = Vec::new();
            for value in headers.get_all("forwarded") {
                let text = value
                    .to_str()
                    .map_err(|_| "the Forwarded header is not ASCII".to_string())?;
                parse_forwarded(text, &mut hops)?;
            }
            hops
        } else if headers.contains_key("x-forwarded-for") {
            let mut hops = Vec::new();
            for value in headers.get_all("x-forwarded-for") {
                let text = value
                    .to_str()
                    .map_err(|_| "the X-Forwarded-For header is not ASCII".to_string())?;
                parse_x_forwarded_for(text, &mut hops)?;
            }
            hops
        } else {
            return Ok(peer);
        };
        Ok(self.pick(peer, &hops))
    }

    /// Walks the chain from the right: past every trusted proxy, to the first address that is
    /// not one. An unknown hop stops the walk at the proxy that reported it.
    fn pick(&self, peer: SocketAddr, hops: &[Node]) -> SocketAddr {
        let mut last = peer;
        for hop in hops.iter().rev() {
            match hop {
                Node::Addr(addr) if self.trusts(addr.ip()) => last = *addr,
                Node::Addr(addr) => return *addr,
                Node::Unknown => return last,
            }
        }
        last
    }
}

fn push(hops: &mut Vec<Node>, node: Node) -> Result<(), String> {
    if hops.len() >= MAX_HOPS {
        return Err(format!("more than {MAX_HOPS} forwarding hops"));
    }
    hops.push(node);
    Ok(())
}

/// RFC 7230 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Splits `text` on `separator` outside quoted strings.
fn split_outside_quotes(text: &str, separator: char) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(&text[start..i]);
            start = i + 1;
        }
    }
    if quoted {
        return Err("an unterminated quoted string in Forwarded".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

/// `Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8::1]:4711"`.
fn parse_forwarded(text: &str, hops: &mut Vec<Node>) -> Result<(), String> {
    for element in split_outside_quotes(text, ',')? {
        let element = element.trim();
        if element.is_empty() {
            return Err("an empty element in Forwarded".into());
        }
        let mut node = None;
        for pair in split_outside_quotes(element, ';')? {
            let pair = pair.trim();
            let Some((name, value)) = pair.split_once('=') else {
                return Err(format!("Forwarded: {pair:?} is not name=value"));
            };
            if name.is_empty() || !name.chars().all(is_tchar) {
                return Err(format!("Forwarded: {name:?} is not a parameter name"));
            }
            let value = unquote(value)?;
            if name.eq_ignore_ascii_case("for") {
                if node.is_some() {
                    return Err("Forwarded: two for= in one element".into());
                }
                node = Some(parse_node(&value.text, value.quoted)?);
            }
        }
        push(hops, node.unwrap_or(Node::Unknown))?;
    }
    Ok(())
}

struct Value {
    text: String,
    quoted: bool,
}

fn unquote(value: &str) -> Result<Value, String> {
    if let Some(inner) = value.strip_prefix('"') {
        let Some(inner) = inner.strip_suffix('"') else {
            return Err("Forwarded: a badly quoted value".into());
        };
        let mut text = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => text.push(chars.next().ok_or("Forwarded: a dangling escape")?),
                '"' => return Err("Forwarded: a quote inside a quoted value".into()),
                c => text.push(c),
            }
        }
        return Ok(Value { text, quoted: true });
    }
    if value.is_empty() || !value.chars().all(is_tchar) {
        return Err(format!(
            "Forwarded: {value:?} must be a token or a quoted string (IPv6 and ports need quotes)"
        ));
    }
    Ok(Value {
        text: value.to_string(),
        quoted: false,
    })
}

/// A `for=` node (RFC 7239 §6): `192.0.2.43`, `"192.0.2.43:47011"`, `"[2001:db8::17]"`,
/// `"[2001:db8::17]:4711"`, `unknown`, `_obfuscated` (a port may be obfuscated too).
fn parse_node(text: &str, quoted: bool) -> Result<Node, String> {
    let bad = || format!("Forwarded: for={text:?} is not an address");
    if text.eq_ignore_ascii_case("unknown") || is_obfuscated(text) {
        return Ok(Node::Unknown);
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(bad)?;
        let ip = v6.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (IpAddr::V6(ip), port)
    } else {
        let (v4, port) = match text.split_once(':') {
            Some((v4, port)) => (v4, Some(port)),
            None => (text, None),
        };
        (
            IpAddr::V4(v4.parse::<std::net::Ipv4Addr>().map_err(|_| bad())?),
            port,
        )
    };
    if (port.is_some() || host.is_ipv6()) && !quoted {
        return Err(bad());
    }
    let port = match port {
        None => 0,
        Some(p) if is_obfuscated(p) => 0,
        Some(p) => p.parse::<u16>().map_err(|_| bad())?,
    };
    Ok(Node::Addr(SocketAddr::new(host, port)))
}

fn is_obfuscated(text: &str) -> bool {
    text.len() > 1
        && text.starts_with('_')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// `X-Forwarded-For: 203.0.113.7, 10.0.0.2` (addresses, optionally `[v6]:port`/`v4:port`).
fn parse_x_forwarded_for(text: &str, hops: &mut Vec<Node>) -> Result<(), String> {
    for entry in text.split(',') {
        let entry = entry.trim();
        if entry.eq_ignore_ascii_case("unknown") {
            push(hops, Node::Unknown)?;
            continue;
        }
        let bad = || format!("X-Forwarded-For: {entry:?} is not an address");
        let addr = if let Ok(ip) = entry.parse::<IpAddr>() {
            SocketAddr::new(ip, 0)
        } else if let Ok(addr) = entry.parse::<SocketAddr>() {
            addr
        } else if let Some(v6) = entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')) {
            SocketAddr::new(v6.parse::<IpAddr>().map_err(|_| bad())?, 0)
        } else {
            return Err(bad());
        };
        push(hops, Node::Addr(addr))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_peer_is_believed() {
        let peer: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(TrustedProxies::default().client(peer, &spoofed), Ok(peer));
        assert_eq!(
            proxies(&["192.168.0.0/16"]).client(peer, &spoofed),
            Ok(peer)
        );
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            trusted.client(peer, &spoofed).unwrap().ip(),
            ip("203.0.113.7")
        );
        // No header from a trusted proxy: the proxy itself.
        assert_eq!(trusted.client(peer, &HeaderMap::new()), Ok(peer));
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        let peer: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let client = |pairs: &[(&'static str, &str)]| trusted.client(peer, &headers(pairs));
        // The client wrote 1.1.1.1 itself; 203.0.113.7 connected to the first proxy.
        let xff = client(&[("x-forwarded-for", "1.1.1.1, 203.0.113.7, 10.1.2.3")]);
        assert_eq!(xff.unwrap().ip(), ip("203.0.113.7"));
        let two_headers = client(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "203.0.113.7, 10.1.2.3"),
        ]);
        assert_eq!(two_headers.unwrap().ip(), ip("203.0.113.7"));
        let fwd = client(&[(
            "forwarded",
            r#"for=1.1.1.1, for="[2001:db8::17]:4711";proto=https, for="[2001:db8:ffff::1]";by=_gw"#,
        )]);
        assert_eq!(fwd.unwrap(), "[2001:db8::17]:4711".parse().unwrap());
        // Forwarded wins over X-Forwarded-For.
        let both = client(&[
            ("forwarded", "for=198.51.100.9"),
            ("x-forwarded-for", "203.0.113.7"),
        ]);
        assert_eq!(both.unwrap().ip(), ip("198.51.100.9"));
        // An unknown hop: the proxy that reported it is the client as far as we know.
        let unknown = client(&[("forwarded", "for=unknown, for=10.9.9.9")]);
        assert_eq!(unknown.unwrap().ip(), ip("10.9.9.9"));
        let hidden = client(&[("forwarded", "for=_hidden;proto=http")]);
        assert_eq!(hidden.unwrap(), peer);
        // Every hop trusted: the leftmost.
        let all = client(&[("x-forwarded-for", "10.3.3.3, 10.4.4.4")]);
        assert_eq!(all.unwrap().ip(), ip("10.3.3.3"));
        // IPv4-mapped peers count as IPv4.
        let mapped: SocketAddr = "[::ffff:10.0.0.2]:5000".parse().unwrap();
        let via_mapped = trusted.client(mapped, &headers(&[("x-forwarded-for", "203.0.113.7")]));
        assert_eq!(via_mapped.unwrap().ip(), ip("203.0.113.7"));
    }

    #[test]
    fn a_malformed_header_from_a_trusted_proxy_is_an_error() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let long = vec!["10.0.0.1"; MAX_HOPS + 1].join(",");
        for (name, value) in [
            ("x-forwarded-for", "not-an-ip"),
            ("x-forwarded-for", "203.0.113.7,,10.0.0.1"),
            ("x-forwarded-for", ""),
            ("x-forwarded-for", long.as_str()),
            ("forwarded", "for=[2001:db8::1]"),
            ("forwarded", "for=192.0.2.1:80"),
            ("forwarded", "for=\"192.0.2.1"),
            ("forwarded", "for=300.1.1.1"),
            ("forwarded", "for=1.2.3.4;for=5.6.7.8"),
            ("forwarded", "for"),
            ("forwarded", "for=1.2.3.4,"),
            ("forwarded", "for=\"[2001:db8::1]:x\""),
        ] {
            let result = trusted.client(peer, &headers(&[(name, value)]));
            assert!(result.is_err(), "{name}: {value:?} gave {result:?}");
        }
        // The same headers from an untrusted peer are simply ignored.
        let outsider: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let ignored = trusted.client(outsider, &headers(&[("x-forwarded-for", "not-an-ip")]));
        assert_eq!(ignored, Ok(outsider));
    }

    #[test]
    fn the_list_is_cidr_blocks() {
        assert!(TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()]).is_ok());
        let error = TrustedProxies::parse(&["10.0.0.1/8".into()]).unwrap_err();
        assert!(error.contains("host bits"), "{error}");
        assert!(TrustedProxies::parse(&["proxy.local".into()]).is_err());
    }
}
