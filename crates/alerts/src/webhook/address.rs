//! The SSRF guard: which addresses a webhook may be delivered to.
//!
//! A webhook URL is chosen by a customer, so without a guard the gateway would call whatever
//! it names: its own admin API on loopback, a database on the private network, the cloud
//! metadata service. So every address a host resolves to is checked, and the host is refused
//! if **any** of them is:
//!
//! - unspecified, loopback, private (RFC 1918, IPv6 unique local), link-local (including the
//!   metadata addresses 169.254.169.254 and fd00:ec2::254), shared address space (CGNAT,
//!   100.64.0.0/10, which holds Alibaba's 100.100.100.200), IETF protocol assignments,
//!   benchmarking, documentation, multicast, reserved or broadcast;
//! - an IPv6 form of one of those: IPv4-mapped (`::ffff:127.0.0.1`), IPv4-compatible
//!   (`::127.0.0.1`), NAT64 (`64:ff9b::a00:1`) and 6to4 (`2002:0a00:0001::`) addresses are
//!   judged by the IPv4 address they embed; Teredo and local-use NAT64 are refused outright,
//!   as are site-local and discard-only prefixes.
//!
//! unless the operator lists the address in `[alerts.delivery] allow_addresses` (CIDR
//! blocks). The connection then goes to exactly the addresses checked (the delivery client's
//! resolver is [`GuardedResolver`]: reqwest never resolves the name a second time, so DNS
//! rebinding between the check and the connection is not possible), and redirects are not
//! followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// An IP block, `10.0.0.0/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an IP address or CIDR block (e.g. 10.0.0.0/8)");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text, None),
        };
        let network: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_match(
                u128::from(u32::from(n)) << 96,
                u128::from(u32::from(a)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                prefix_match(u128::from(n), u128::from(a), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_match(network: u128, addr: u128, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(prefix));
    network & mask == addr & mask
}

fn v4_in(ip: Ipv4Addr, network: [u8; 4], prefix: u8) -> bool {
    prefix_match(
        u128::from(u32::from(Ipv4Addr::from(network))) << 96,
        u128::from(u32::from(ip)) << 96,
        prefix,
    )
}

fn v6_in(ip: Ipv6Addr, network: &str, prefix: u8) -> bool {
    network
        .parse::<Ipv6Addr>()
        .is_ok_and(|n| prefix_match(u128::from(n), u128::from(ip), prefix))
}

/// Why an IPv4 address is refused, if it is.
fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let blocks: [([u8; 4], u8, &str); 17] = [
        ([169, 254, 169, 254], 32, "a cloud metadata address"),
        ([255, 255, 255, 255], 32, "the broadcast address"),
        ([0, 0, 0, 0], 8, "an unspecified (\"this network\") address"),
        ([10, 0, 0, 0], 8, "a private address"),
        ([100, 64, 0, 0], 10, "a shared (carrier-grade NAT) address"),
        ([127, 0, 0, 0], 8, "a loopback address"),
        ([169, 254, 0, 0], 16, "a link-local address"),
        ([172, 16, 0, 0], 12, "a private address"),
        ([192, 0, 0, 0], 24, "an IETF protocol assignment"),
        ([192, 0, 2, 0], 24, "a documentation address"),
        ([192, 88, 99, 0], 24, "a 6to4 relay anycast address"),
        ([192, 168, 0, 0], 16, "a private address"),
        ([198, 18, 0, 0], 15, "a benchmarking address"),
        ([198, 51, 100, 0], 24, "a documentation address"),
        ([203, 0, 113, 0], 24, "a documentation address"),
        ([224, 0, 0, 0], 4, "a multicast address"),
        ([240, 0, 0, 0], 4, "a reserved address"),
    ];
    blocks
        .iter()
        .find(|(network, prefix, _)| v4_in(ip, *network, *prefix))
        .map(|(_, _, why)| *why)
}

/// Why an address is refused, if it is (before the allow-list).
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    let v6 = match ip {
        IpAddr::V4(v4) => return classify_v4(v4),
        IpAddr::V6(v6) => v6,
    };
    let bits = u128::from(v6);
    let embedded = |shift: u32| Ipv4Addr::from((bits >> shift) as u32);
    // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d, deprecated).
    if let Some(v4) = v6.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if bits >> 32 == 0 {
        return match bits {
            0 => Some("an unspecified address"),
            1 => Some("a loopback address"),
            _ => classify_v4(embedded(0)).or(Some("an IPv4-compatible address")),
        };
    }
    if v6_in(v6, "64:ff9b::", 96) {
        return classify_v4(embedded(0));
    }
    if v6_in(v6, "2002::", 16) {
        return classify_v4(embedded(80));
    }
    let blocks: [(&str, u8, &str); 10] = [
        ("fd00:ec2::254", 128, "a cloud metadata address"),
        ("64:ff9b:1::", 48, "a local-use NAT64 address"),
        ("100::", 64, "a discard-only address"),
        ("2001::", 32, "a Teredo tunnel address"),
        ("2001:db8::", 32, "a documentation address"),
        ("2001:10::", 28, "an ORCHID address"),
        ("fc00::", 7, "a unique local (private) address"),
        ("fe80::", 10, "a link-local address"),
        ("fec0::", 10, "a site-local address"),
        ("ff00::", 8, "a multicast address"),
    ];
    blocks
        .iter()
        .find(|(network, prefix, _)| v6_in(v6, network, *prefix))
        .map(|(_, _, why)| *why)
}

/// A refused address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "address_refused: {host} resolves to {ip}, {why}; an operator may allow it in [alerts.delivery] allow_addresses"
)]
pub struct Refused {
    pub host: String,
    pub ip: IpAddr,
    pub why: &'static str,
}

/// Which addresses deliveries may go to: public ones, plus the operator's allow-list.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allow: Vec<Cidr>,
}

impl AddressPolicy {
    pub fn new(allow: Vec<Cidr>) -> Self {
        Self { allow }
    }

    /// Parses `[alerts.delivery] allow_addresses`.
    pub fn parse(allow: &[String]) -> Result<Self, String> {
        Ok(Self::new(
            allow
                .iter()
                .map(|a| Cidr::parse(a))
                .collect::<Result<_, _>>()?,
        ))
    }

    /// Checks one address of `host`.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        let ip = ip.to_canonical();
        if self.allow.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        match classify(ip) {
            Some(why) => Err(Refused {
                host: host.chars().take(253).collect(),
                ip,
                why,
            }),
            None => Ok(()),
        }
    }

    /// Checks every address; the first refused one is the error.
    pub fn check_all(&self, host: &str, addrs: &[SocketAddr]) -> Result<(), Refused> {
        addrs.iter().try_for_each(|a| self.check(host, a.ip()))
    }
}

/// Why a host could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("unresolvable_host: {host} does not resolve: {reason}")]
    Unresolvable { host: String, reason: String },
}

/// Resolves `host` (a name or an IP literal) and checks every address.
pub async fn resolve(
    policy: &AddressPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match literal.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| ResolveError::Unresolvable {
                host: host.chars().take(253).collect(),
                reason: e.to_string(),
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(ResolveError::Unresolvable {
            host: host.chars().take(253).collect(),
            reason: "no addresses".into(),
        });
    }
    policy.check_all(host, &addrs)?;
    Ok(addrs)
}

/// reqwest's resolver for deliveries: resolves once, refuses the name if any address is
/// refused, and hands reqwest exactly the checked addresses to connect to.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub policy: Arc<AddressPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolve(&policy, &host, 0).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per address: refused (with the reason's start) or allowed.
    #[test]
    fn classifies_every_special_range_and_its_ipv6_forms() {
        let cases: [(&str, Option<&str>); 36] = [
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("2606:4700::1111", None),
            ("0.0.0.0", Some("an unspecified")),
            ("10.1.2.3", Some("a private")),
            ("172.16.0.1", Some("a private")),
            ("172.31.255.255", Some("a private")),
            ("172.32.0.1", None),
            ("192.168.1.1", Some("a private")),
            ("100.64.0.1", Some("a shared")),
            ("100.100.100.200", Some("a shared")),
            ("100.128.0.1", None),
            ("127.0.0.1", Some("a loopback")),
            ("127.255.0.9", Some("a loopback")),
            ("169.254.169.254", Some("a cloud metadata")),
            ("169.254.1.1", Some("a link-local")),
            ("192.0.0.8", Some("an IETF")),
            ("198.19.0.1", Some("a benchmarking")),
            ("224.0.0.1", Some("a multicast")),
            ("240.0.0.1", Some("a reserved")),
            ("255.255.255.255", Some("the broadcast")),
            ("::", Some("an unspecified")),
            ("::1", Some("a loopback")),
            ("::ffff:127.0.0.1", Some("a loopback")),
            ("::ffff:169.254.169.254", Some("a cloud metadata")),
            ("::ffff:8.8.8.8", None),
            ("::10.0.0.1", Some("a private")),
            ("64:ff9b::7f00:1", Some("a loopback")),
            ("64:ff9b::808:808", None),
            ("2002:a00:1::", Some("a private")),
            ("2001:0:4136:e378::1", Some("a Teredo")),
            ("fd00:ec2::254", Some("a cloud metadata")),
            ("fd12:3456::1", Some("a unique local")),
            ("fe80::1", Some("a link-local")),
            ("ff02::1", Some("a multicast")),
            ("2001:db8::1", Some("a documentation")),
        ];
        for (text, expected) in cases {
            let got = classify(text.parse().unwrap());
            match expected {
                None => assert_eq!(got, None, "{text}"),
                Some(start) => {
                    assert!(got.is_some_and(|g| g.starts_with(start)), "{text}: {got:?}")
                }
            }
        }
    }

    #[test]
    fn the_allow_list_admits_exactly_its_blocks() {
        let policy =
            AddressPolicy::parse(&["127.0.0.1".into(), "10.8.0.0/16".into(), "fd00::/8".into()])
                .unwrap();
        let ok = |ip: &str| policy.check("h", ip.parse().unwrap()).is_ok();
        assert!(ok("127.0.0.1") && ok("::ffff:127.0.0.1") && ok("10.8.200.1") && ok("fd00::1"));
        assert!(!ok("127.0.0.2") && !ok("10.9.0.1") && !ok("169.254.169.254"));
        assert!(ok("93.184.216.34"));
        let err = policy
            .check("internal.example", "10.0.0.5".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "address_refused: internal.example resolves to 10.0.0.5, a private address; an operator may allow it in [alerts.delivery] allow_addresses"
        );
        for bad in ["10.0.0.0/33", "::/129", "localhost", "10.0.0/8", ""] {
            assert!(AddressPolicy::parse(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("203.0.113.9".parse().unwrap())
        );
    }

    /// A name is refused if any one of its addresses is (a public address beside a private
    /// one is the classic rebinding setup).
    #[test]
    fn one_refused_address_refuses_the_host() {
        let policy = AddressPolicy::default();
        let addrs: Vec<SocketAddr> = ["93.184.216.34:443", "10.0.0.7:443"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let err = policy.check_all("rebind.example", &addrs).unwrap_err();
        assert_eq!(err.ip, "10.0.0.7".parse::<IpAddr>().unwrap());
        assert!(policy.check_all("ok.example", &addrs[..1]).is_ok());
    }

    #[tokio::test]
    async fn names_are_resolved_and_every_address_is_checked() {
        let policy = AddressPolicy::default();
        // `localhost` resolves to loopback addresses only: refused.
        let err = resolve(&policy, "localhost", 80).await.unwrap_err();
        assert!(
            matches!(
                err,
                ResolveError::Refused(Refused {
                    why: "a loopback address",
                    ..
                })
            ),
            "{err}"
        );
        assert!(matches!(
            resolve(&policy, "[::1]", 80).await,
            Err(ResolveError::Refused(_))
        ));
        let allowed = AddressPolicy::parse(&["127.0.0.0/8".into(), "::1".into()]).unwrap();
        let addrs = resolve(&allowed, "127.0.0.1", 8080).await.unwrap();
        assert_eq!(addrs, ["127.0.0.1:8080".parse().unwrap()]);
        let err = resolve(&policy, "no-such-host.invalid", 80)
            .await
            .unwrap_err();
        assert!(matches!(err, ResolveError::Unresolvable { .. }), "{err}");
    }
}
