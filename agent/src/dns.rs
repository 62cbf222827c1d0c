//! DNS messages as the probe copies them (the start of a UDP payload on
//! port 53): enough to name the query, its type, the answer code and the
//! addresses answered. Pure parsing; every read is bounds-checked and a
//! message cut by the copy limit yields what fits.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A decoded DNS message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DnsMessage {
    /// A response (QR bit set) rather than a query.
    pub response: bool,
    /// The question's name, fully qualified (`name.`).
    pub query: String,
    /// The question's type (1 A, 28 AAAA, ...).
    pub qtype: u16,
    /// The response code (0 NOERROR, 3 NXDOMAIN, 5 REFUSED, ...).
    pub rcode: u8,
    /// Addresses of A and AAAA answers that fit the copied bytes.
    pub ips: Vec<IpAddr>,
    /// Types of the answer records that fit.
    pub rrtypes: Vec<u16>,
    /// The smallest TTL among the answers read (0 when none).
    pub ttl: u32,
}

/// The name Hubble uses for a query or record type.
pub fn type_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        other => format!("TYPE{other}"),
    }
}

/// The name of a response code.
pub fn rcode_name(rcode: u8) -> &'static str {
    match rcode {
        0 => "No Error",
        1 => "Format Error",
        2 => "Server Failure",
        3 => "Non-Existent Domain",
        4 => "Not Implemented",
        5 => "Query Refused",
        _ => "Unknown",
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Skips a (possibly compressed) name starting at `at`; returns the offset
/// after it.
fn skip_name(b: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *b.get(at)?;
        if len == 0 {
            return Some(at + 1);
        }
        if len & 0xc0 == 0xc0 {
            return Some(at + 2);
        }
        at += 1 + usize::from(len);
    }
    None
}

/// Parses the start of a DNS message; `None` when not even the header and
/// question fit or are malformed.
pub fn parse(b: &[u8]) -> Option<DnsMessage> {
    let flags = u16_at(b, 2)?;
    let qdcount = u16_at(b, 4)?;
    let ancount = u16_at(b, 6)?;
    if qdcount != 1 {
        return None;
    }
    let mut at = 12;
    let mut query = String::new();
    for _ in 0..128 {
        let len = usize::from(*b.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = b.get(at..at + len)?;
        if !label.iter().all(|c| c.is_ascii_graphic()) {
            return None;
        }
        query.push_str(&String::from_utf8_lossy(label));
        query.push('.');
        at += len;
    }
    if query.is_empty() {
        query.push('.');
    }
    let qtype = u16_at(b, at)?;
    at += 4;
    let mut msg = DnsMessage {
        response: flags & 0x8000 != 0,
        query,
        qtype,
        rcode: (flags & 0x000f) as u8,
        ips: Vec::new(),
        rrtypes: Vec::new(),
        ttl: 0,
    };
    for _ in 0..ancount.min(32) {
        let Some(next) = skip_name(b, at) else { break };
        let (Some(rtype), Some(rdlen)) = (u16_at(b, next), u16_at(b, next + 8)) else {
            break;
        };
        let Some(ttl) = b
            .get(next + 4..next + 8)
            .map(|t| u32::from_be_bytes([t[0], t[1], t[2], t[3]]))
        else {
            break;
        };
        let data = next + 10;
        let Some(rdata) = b.get(data..data + usize::from(rdlen)) else {
            break;
        };
        msg.rrtypes.push(rtype);
        msg.ttl = if msg.ips.is_empty() && msg.ttl == 0 {
            ttl
        } else {
            msg.ttl.min(ttl)
        };
        match (rtype, rdata.len()) {
            (1, 4) => msg.ips.push(IpAddr::V4(Ipv4Addr::new(
                rdata[0], rdata[1], rdata[2], rdata[3],
            ))),
            (28, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(rdata);
                msg.ips.push(IpAddr::V6(Ipv6Addr::from(a)));
            }
            _ => {}
        }
        at = data + usize::from(rdlen);
    }
    Some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str) -> Vec<u8> {
        let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    #[test]
    fn queries_and_answers_decode() {
        let q = query("coruscanthealth.galactic-fhir.svc.cluster.local");
        let m = parse(&q).expect("query");
        assert!(!m.response);
        assert_eq!(m.query, "coruscanthealth.galactic-fhir.svc.cluster.local.");
        assert_eq!(type_name(m.qtype), "A");
        let mut r = q.clone();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 1;
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 250, 1, 2]);
        let m = parse(&r).expect("answer");
        assert!(m.response);
        assert_eq!(m.ips, ["10.250.1.2".parse::<IpAddr>().unwrap()]);
        assert_eq!((m.ttl, m.rcode), (30, 0));
    }

    #[test]
    fn cut_and_garbage_messages_never_panic() {
        let q = query("a.b");
        for n in 0..q.len() {
            let _ = parse(&q[..n]);
        }
        assert!(parse(&[0xff; 40]).is_none());
        assert!(parse(&[]).is_none());
    }

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse(&bytes);
        }
    }
}
