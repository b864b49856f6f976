//! `allow`/`deny` address rules: CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`), single
//! addresses (`::1`) and `all`, parsed when the configuration is loaded and matched against
//! the peer address (IPv4-mapped IPv6 peers already turned into IPv4 by `conn::peer_ip`).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One block of addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cidr {
    All,
    V4 { net: u32, len: u8 },
    V6 { net: u128, len: u8 },
}

impl Cidr {
    /// `"all"`, an address, or `address/length`; the bits past the length must be zero.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        if s == "all" {
            return Ok(Cidr::All);
        }
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => {
                let n: u8 = l
                    .parse()
                    .map_err(|_| format!("{s:?}: prefix length is not a number"))?;
                (a, Some(n))
            }
            None => (s, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?}: expected an IP address, ADDRESS/LENGTH or \"all\""))?;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(a) => {
                let len = len.unwrap_or(32);
                if len > 32 {
                    return Err(format!("{s:?}: an IPv4 prefix is at most 32 bits"));
                }
                let net = u32::from(a);
                if net & !mask32(len) != 0 {
                    let base = Ipv4Addr::from(net & mask32(len));
                    return Err(format!(
                        "{s:?}: bits set past the prefix (did you mean {base}/{len}?)"
                    ));
                }
                Ok(Cidr::V4 { net, len })
            }
            IpAddr::V6(a) => {
                let len = len.unwrap_or(128);
                if len > 128 {
                    return Err(format!("{s:?}: an IPv6 prefix is at most 128 bits"));
                }
                let net = u128::from(a);
                if net & !mask128(len) != 0 {
                    let base = Ipv6Addr::from(net & mask128(len));
                    return Err(format!(
                        "{s:?}: bits set past the prefix (did you mean {base}/{len}?)"
                    ));
                }
                Ok(Cidr::V6 { net, len })
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Cidr::All, _) => true,
            (Cidr::V4 { net, len }, IpAddr::V4(a)) => u32::from(a) & mask32(*len) == *net,
            (Cidr::V6 { net, len }, IpAddr::V6(a)) => u128::from(a) & mask128(*len) == *net,
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cidr::All => f.write_str("all"),
            Cidr::V4 { net, len: 32 } => write!(f, "{}", Ipv4Addr::from(*net)),
            Cidr::V4 { net, len } => write!(f, "{}/{len}", Ipv4Addr::from(*net)),
            Cidr::V6 { net, len: 128 } => write!(f, "{}", Ipv6Addr::from(*net)),
            Cidr::V6 { net, len } => write!(f, "{}/{len}", Ipv6Addr::from(*net)),
        }
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// The `allow` and `deny` lists of one scope (the narrowest scope that sets either wins).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
}

impl Rules {
    /// An address matching `allow` is admitted; otherwise one matching `deny` is refused;
    /// anything else is admitted.
    pub fn admits(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|c| c.contains(ip)) || !self.deny.iter().any(|c| c.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_match() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.0")));
        assert!(!c.contains(ip("::1")));
        let one = Cidr::parse("::1").unwrap();
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        assert!(Cidr::parse("all").unwrap().contains(ip("::1")));
        // A mapped address in the file means the IPv4 address.
        assert_eq!(
            Cidr::parse("::ffff:127.0.0.1").unwrap(),
            Cidr::parse("127.0.0.1").unwrap()
        );
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "::1/129",
            "x",
            "10.0.0.0/",
            "1.2.3.4/a",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Cidr::parse("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(Cidr::parse("127.0.0.1").unwrap().to_string(), "127.0.0.1");
    }

    #[test]
    fn allow_before_deny() {
        let r = Rules {
            allow: vec![Cidr::parse("10.0.0.0/8").unwrap()],
            deny: vec![Cidr::All],
        };
        assert!(r.admits(ip("10.0.0.1")));
        assert!(!r.admits(ip("127.0.0.1")));
        let r = Rules {
            allow: vec![],
            deny: vec![Cidr::parse("127.0.0.0/8").unwrap()],
        };
        assert!(!r.admits(ip("127.0.0.1")));
        assert!(r.admits(ip("::1")));
    }
}
