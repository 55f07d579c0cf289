//! Per-key IP allow-lists (`metadata.allowed_ips`), as exchanges offer for their own API keys:
//! a key with a list is usable only from an address in one of its CIDR blocks, on every path
//! (bearer, signed, WebSocket upgrade and ws-token).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Most blocks on one key.
pub const MAX_BLOCKS: usize = 64;

/// One CIDR block (`10.0.0.0/8`, `2001:db8::/32`; a bare address is `/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// IPv4-mapped IPv6 (`::ffff:10.1.2.3`) compares as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network = canonical(
            addr.parse::<IpAddr>()
                .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?,
        );
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        let cidr = Self { network, prefix };
        if cidr.masked(network) != network {
            return Err(format!(
                "{text:?} has host bits set: did you mean {}/{prefix}?",
                cidr.masked(network)
            ));
        }
        Ok(cidr)
    }
}

impl Cidr {
    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.network.is_ipv4() && self.masked(ip) == self.network
    }
}

/// Parses `metadata.allowed_ips`: absent means any address; otherwise 1 to [`MAX_BLOCKS`]
/// blocks.
pub fn from_metadata(metadata: &serde_json::Value) -> Result<Option<Vec<Cidr>>, String> {
    let Some(list) = metadata.get("allowed_ips") else {
        return Ok(None);
    };
    let items = list
        .as_array()
        .ok_or("metadata.allowed_ips must be an array of CIDR blocks, e.g. [\"10.0.0.0/8\"]")?;
    if items.is_empty() || items.len() > MAX_BLOCKS {
        return Err(format!(
            "metadata.allowed_ips must list 1 to {MAX_BLOCKS} blocks (remove it to allow any address)"
        ));
    }
    items
        .iter()
        .map(|item| {
            item.as_str()
                .ok_or_else(|| "metadata.allowed_ips entries must be strings".to_string())
                .and_then(|s| {
                    s.parse::<Cidr>()
                        .map_err(|e| format!("metadata.allowed_ips: {e}"))
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_contain_what_they_should() {
        let cases = [
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.168.1.7", "192.168.1.7", true),
            ("192.168.1.7", "192.168.1.8", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("10.0.0.0/8", "::ffff:10.1.2.3", true),
            ("::/0", "10.0.0.1", false),
            ("10.0.0.0/8", "2001:db8::1", false),
        ];
        for (block, addr, expected) in cases {
            let cidr: Cidr = block.parse().unwrap();
            assert_eq!(cidr.contains(ip(addr)), expected, "{block} ∋ {addr}");
        }
    }

    #[test]
    fn bad_blocks_are_refused_with_a_reason() {
        for (text, hint) in [
            ("10.0.0.1/8", "host bits"),
            ("10.0.0.0/33", "prefix length"),
            ("nonsense", "not an IP"),
            ("2001:db8::/129", "prefix length"),
        ] {
            let error = text.parse::<Cidr>().unwrap_err();
            assert!(error.contains(hint), "{text}: {error}");
        }
    }

    #[test]
    fn metadata_lists() {
        let ok = serde_json::json!({"allowed_ips": ["10.0.0.0/8", "2001:db8::1"]});
        assert_eq!(from_metadata(&ok).unwrap().unwrap().len(), 2);
        assert_eq!(from_metadata(&serde_json::json!({})).unwrap(), None);
        for bad in [
            serde_json::json!({"allowed_ips": []}),
            serde_json::json!({"allowed_ips": "10.0.0.0/8"}),
            serde_json::json!({"allowed_ips": [7]}),
            serde_json::json!({"allowed_ips": ["10.0.0.1/8"]}),
        ] {
            assert!(from_metadata(&bad).is_err(), "{bad}");
        }
    }
}
