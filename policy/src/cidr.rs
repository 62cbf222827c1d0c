//! IP prefixes for `fromCIDR`/`toCIDR`/`...CIDRSet`.
//!
//! Exists because CIDR peers must be parsed like Cilium does (a bare address
//! is a host prefix), `except` must lie inside its `cidr`, and the agent needs
//! `cidr minus except` as plain disjoint prefixes for an LPM trie.

use std::fmt;
use std::net::IpAddr;

/// An IPv4 or IPv6 prefix, normalised (host bits cleared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    /// The network address (IPv4 addresses are stored as IPv4).
    pub addr: IpAddr,
    /// The prefix length.
    pub len: u8,
}

fn bits(addr: IpAddr) -> (u128, u8) {
    match addr {
        IpAddr::V4(a) => (u32::from(a) as u128, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

fn mask(width: u8, len: u8) -> u128 {
    let all: u128 = if width >= 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    let host = width.saturating_sub(len);
    let host_mask: u128 = if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    };
    all & !host_mask
}

fn from_bits(v: u128, width: u8) -> IpAddr {
    if width == 32 {
        IpAddr::V4((v as u32).into())
    } else {
        IpAddr::V6(v.into())
    }
}

impl Prefix {
    /// Parses `a.b.c.d/n`, `x::/n` or a bare address (a host prefix).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("invalid CIDR {s:?}: {a:?} is not an IP address"))?;
        let (_, width) = bits(addr);
        let len = match l {
            None => width,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= width && !l.starts_with('+') => n,
                _ => {
                    return Err(format!(
                        "invalid CIDR {s:?}: prefix length must be 0 to {width}"
                    ));
                }
            },
        };
        Ok(Self::new(addr, len))
    }

    /// Builds a prefix, clearing host bits.
    pub fn new(addr: IpAddr, len: u8) -> Self {
        let (v, width) = bits(addr);
        let len = len.min(width);
        Self {
            addr: from_bits(v & mask(width, len), width),
            len,
        }
    }

    /// Whether the prefix is IPv4.
    pub fn is_v4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether `ip` lies inside the prefix.
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        let (v, w) = bits(ip);
        let (p, pw) = bits(self.addr);
        w == pw && v & mask(w, self.len) == p
    }

    /// Whether `other` lies inside this prefix (same family).
    pub fn contains(&self, other: &Prefix) -> bool {
        other.len >= self.len && self.contains_ip(other.addr)
    }

    /// `self` minus the given prefixes, as disjoint prefixes (sorted).
    pub fn subtract(&self, except: &[Prefix]) -> Vec<Prefix> {
        let mut out = Vec::new();
        let mut work = vec![*self];
        while let Some(p) = work.pop() {
            if except.iter().any(|e| e.contains(&p)) {
                continue;
            }
            if !except.iter().any(|e| p.contains(e)) {
                out.push(p);
                continue;
            }
            let (v, w) = bits(p.addr);
            if p.len >= w {
                continue;
            }
            let child = p.len + 1;
            let bit = 1u128 << (w - child);
            work.push(Prefix {
                addr: from_bits(v, w),
                len: child,
            });
            work.push(Prefix {
                addr: from_bits(v | bit, w),
                len: child,
            });
        }
        out.sort();
        out
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_contain() {
        let p = Prefix::parse("10.0.0.0/8").unwrap();
        assert!(p.contains_ip("10.1.2.3".parse().unwrap()));
        assert!(!p.contains_ip("11.1.2.3".parse().unwrap()));
        assert_eq!(Prefix::parse("10.1.2.3").unwrap().len, 32);
        assert_eq!(
            Prefix::parse("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert!(Prefix::parse("10.0.0.0/33").is_err());
        assert!(Prefix::parse("nope/8").is_err());
        assert_eq!(Prefix::parse("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        assert!(
            Prefix::parse("::/0")
                .unwrap()
                .contains_ip("2001::1".parse().unwrap())
        );
        assert!(
            !Prefix::parse("::/0")
                .unwrap()
                .contains_ip("1.2.3.4".parse().unwrap())
        );
    }

    #[test]
    fn subtract_is_exact() {
        let p = Prefix::parse("10.0.0.0/8").unwrap();
        let e = Prefix::parse("10.96.0.0/12").unwrap();
        let parts = p.subtract(&[e]);
        assert_eq!(parts.len(), 4);
        for ip in ["10.0.0.1", "10.95.255.255", "10.112.0.0", "10.255.255.255"] {
            assert_eq!(
                parts
                    .iter()
                    .filter(|q| q.contains_ip(ip.parse().unwrap()))
                    .count(),
                1,
                "{ip}"
            );
        }
        for ip in ["10.96.0.0", "10.100.1.1", "10.111.255.255"] {
            assert!(
                !parts.iter().any(|q| q.contains_ip(ip.parse().unwrap())),
                "{ip}"
            );
        }
    }
}
