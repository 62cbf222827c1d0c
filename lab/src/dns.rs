//! A tiny DNS server for the lab's `kube-dns` pod: answers A queries for the
//! pods' names the way cluster DNS would (`coruscanthealth`,
//! `coruscanthealth.galactic-fhir.svc.cluster.local`, ...: the first label
//! names the pod), NXDOMAIN for anything else, and no records for other
//! query types of a known name.

use std::{collections::HashMap, io, net::Ipv4Addr, net::UdpSocket};

/// DNS header length.
const HEADER: usize = 12;
/// Longest message this server reads (classic UDP DNS).
const MAX_MESSAGE: usize = 512;

/// Answers one query message; `None` for anything that is not a well-formed
/// single-question query (such messages are ignored, as servers do).
pub fn answer(query: &[u8], pods: &HashMap<String, Ipv4Addr>) -> Option<Vec<u8>> {
    if query.len() < HEADER || query.len() > MAX_MESSAGE {
        return None;
    }
    let flags = u16::from_be_bytes([query[2], query[3]]);
    let qdcount = u16::from_be_bytes([query[4], query[5]]);
    if flags & 0x8000 != 0 || qdcount != 1 {
        return None;
    }
    // The question: labels, then type and class.
    let mut at = HEADER;
    let mut first_label: Option<String> = None;
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // compression pointers do not appear in questions
        }
        let label = query.get(at..at + len)?;
        if first_label.is_none() {
            first_label = Some(String::from_utf8_lossy(label).to_ascii_lowercase());
        }
        at += len;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let question_end = at + 4;
    query.get(at + 2..question_end)?;
    let ip = first_label.as_deref().and_then(|l| pods.get(l));
    let mut out = Vec::with_capacity(question_end + 16);
    out.extend_from_slice(&query[0..2]);
    // QR, opcode query, RD copied, RA; rcode NXDOMAIN when the name is unknown.
    let rd = flags & 0x0100;
    let rcode = if ip.is_some() { 0 } else { 3 };
    out.extend_from_slice(&(0x8080 | rd | rcode).to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    let answer_a = ip.filter(|_| qtype == 1);
    out.extend_from_slice(&u16::from(answer_a.is_some()).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[HEADER..question_end]);
    if let Some(ip) = answer_a {
        out.extend_from_slice(&[0xc0, 0x0c]); // the name of the question
        out.extend_from_slice(&1u16.to_be_bytes()); // A
        out.extend_from_slice(&1u16.to_be_bytes()); // IN
        out.extend_from_slice(&30u32.to_be_bytes()); // TTL
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}

/// Serves queries on `socket` until it fails.
pub fn serve(socket: &UdpSocket, pods: &HashMap<String, Ipv4Addr>) -> io::Result<()> {
    let mut buf = [0u8; MAX_MESSAGE];
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        if let Some(reply) = answer(&buf[..n], pods) {
            socket.send_to(&reply, from)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    fn pods() -> HashMap<String, Ipv4Addr> {
        HashMap::from([("coruscanthealth".to_string(), Ipv4Addr::new(10, 250, 1, 2))])
    }

    #[test]
    fn a_known_pod_gets_an_a_record() {
        let q = query("coruscanthealth.galactic-fhir.svc.cluster.local", 1);
        let r = answer(&q, &pods()).expect("answered");
        assert_eq!(&r[0..2], &[0x12, 0x34], "same id");
        assert_eq!(r[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1, "one answer");
        assert_eq!(&r[r.len() - 4..], &[10, 250, 1, 2]);
    }

    #[test]
    fn unknown_names_are_nxdomain_and_aaaa_is_empty() {
        let r =
            answer(&query("deathstar.default.svc.cluster.local", 1), &pods()).expect("answered");
        assert_eq!(r[3] & 0x0f, 3);
        let r = answer(&query("coruscanthealth", 28), &pods()).expect("answered");
        assert_eq!((r[3] & 0x0f, u16::from_be_bytes([r[6], r[7]])), (0, 0));
    }

    #[test]
    fn malformed_messages_are_ignored() {
        assert!(answer(&[], &pods()).is_none());
        assert!(answer(&[0; 11], &pods()).is_none());
        let mut truncated = query("coruscanthealth", 1);
        truncated.truncate(20);
        assert!(answer(&truncated, &pods()).is_none());
        let mut bad_label = query("x", 1);
        bad_label[12] = 200;
        assert!(answer(&bad_label, &pods()).is_none());
    }
}
