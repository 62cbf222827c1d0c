//! How one flow reads in the table: the text of each column, derived on
//! demand for the rows on screen only (a frame never formats the whole
//! buffer). Names follow Hubble's vocabulary (verdicts, drop reasons,
//! `http-request`, …) so responders don't have to relearn them.

use std::fmt::Write as _;

use holonet_proto::{
    flow::{DropReason, Endpoint, Flow, L7FlowType, Verdict, layer4, layer7},
    wkt::Timestamp,
};

/// The verdict as Hubble spells it (`FORWARDED`, `DROPPED`, …).
pub(crate) fn verdict_name(v: i32) -> &'static str {
    match Verdict::try_from(v) {
        Ok(Verdict::Unknown) | Err(_) => "UNKNOWN",
        Ok(v) => v.as_str_name(),
    }
}

/// Cilium's name of a drop reason (`POLICY_DENIED`), empty for none.
pub(crate) fn drop_reason_name(flow: &Flow) -> &'static str {
    if flow.drop_reason_desc == 0 {
        return "";
    }
    DropReason::try_from(flow.drop_reason_desc).map_or("UNKNOWN_DROP_REASON", |d| d.as_str_name())
}

/// The TYPE column: `L3/L4`, `http-request`, `http-response`, `dns-request`,
/// `dns-response`, `l7`, `sock`.
pub(crate) fn flow_kind(flow: &Flow) -> &'static str {
    if let Some(l7) = &flow.l7 {
        let resp = l7.r#type == L7FlowType::Response as i32;
        return match (&l7.record, resp) {
            (Some(layer7::Record::Http(_)), false) => "http-request",
            (Some(layer7::Record::Http(_)), true) => "http-response",
            (Some(layer7::Record::Dns(_)), false) => "dns-request",
            (Some(layer7::Record::Dns(_)), true) => "dns-response",
            _ => "l7",
        };
    }
    match flow.r#type {
        3 => "sock",
        _ => "L3/L4",
    }
}

/// The HTTP record of a flow, and the path of its URL.
pub(crate) use holonet_flows::fields::{http, url_path};

/// The DNS query of a flow, if it has one.
pub(crate) fn dns_query(flow: &Flow) -> Option<&str> {
    holonet_flows::fields::dns(flow).map(|d| d.query.as_str())
}

/// The PATH column: the HTTP path, or the DNS query name.
pub(crate) fn path(flow: &Flow) -> &str {
    if let Some(h) = http(flow) {
        return url_path(&h.url);
    }
    dns_query(flow).unwrap_or("")
}

/// The METHOD column.
pub(crate) fn method(flow: &Flow) -> &str {
    http(flow).map_or("", |h| h.method.as_str())
}

/// The STATUS column (HTTP code of a response), empty when there is none.
pub(crate) fn status(flow: &Flow) -> String {
    match http(flow) {
        Some(h) if h.code != 0 => h.code.to_string(),
        _ => String::new(),
    }
}

/// The LATENCY column (`4.2ms`), for L7 responses.
pub(crate) fn latency(flow: &Flow) -> String {
    match flow.l7.as_ref().map(|l| l.latency_ns) {
        Some(ns) if ns > 0 => human_duration_ns(ns),
        _ => String::new(),
    }
}

/// `812µs`, `4.2ms`, `1.30s`.
pub(crate) fn human_duration_ns(ns: u64) -> String {
    if ns < 1_000_000 {
        format!("{}µs", ns / 1000)
    } else if ns < 100_000_000 {
        format!("{:.1}ms", ns as f64 / 1e6)
    } else if ns < 1_000_000_000 {
        format!("{}ms", ns / 1_000_000)
    } else {
        format!("{:.2}s", ns as f64 / 1e9)
    }
}

/// Source and destination ports from L4.
pub(crate) fn ports(flow: &Flow) -> (Option<u32>, Option<u32>) {
    holonet_flows::fields::ports(flow).unzip()
}

/// The L4 protocol name (`TCP`, `UDP`, …), empty when unknown.
pub(crate) fn l4_name(flow: &Flow) -> &'static str {
    match flow.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(layer4::Protocol::Tcp(_)) => "TCP",
        Some(layer4::Protocol::Udp(_)) => "UDP",
        Some(layer4::Protocol::Sctp(_)) => "SCTP",
        Some(layer4::Protocol::IcmPv4(_)) => "ICMPv4",
        Some(layer4::Protocol::IcmPv6(_)) => "ICMPv6",
        None => "",
    }
}

/// Which side of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// `flow.source`
    Source,
    /// `flow.destination`
    Destination,
}

fn side(flow: &Flow, s: Side) -> (Option<&Endpoint>, &str, Option<u32>) {
    let (sp, dp) = ports(flow);
    let ip = flow.ip.as_ref();
    match s {
        Side::Source => (
            flow.source.as_ref(),
            ip.map_or("", |i| i.source.as_str()),
            sp,
        ),
        Side::Destination => (
            flow.destination.as_ref(),
            ip.map_or("", |i| i.destination.as_str()),
            dp,
        ),
    }
}

/// A short stable name for one side, used by the aggregate panels:
/// `namespace/workload` (or pod) when known, else the IP.
pub(crate) fn peer_name(flow: &Flow, s: Side) -> String {
    let (ep, ip, _) = side(flow, s);
    if let Some(ep) = ep.filter(|e| !e.pod_name.is_empty() || !e.workloads.is_empty()) {
        let name = ep
            .workloads
            .first()
            .map_or(ep.pod_name.as_str(), |w| w.name.as_str());
        if ep.namespace.is_empty() {
            return name.to_owned();
        }
        return format!("{}/{name}", ep.namespace);
    }
    if let Some(ep) = ep.filter(|e| e.identity != 0) {
        if let Some(n) = holonet_flows::names::reserved_identity_name(ep.identity) {
            return format!("{n} {ip}");
        }
    }
    if ip.is_empty() {
        "?".to_owned()
    } else {
        ip.to_owned()
    }
}

/// The SOURCE / DESTINATION cell: `namespace/pod` when the agent knows the
/// pod (just `pod` when narrow), then the labels that matter (`org=payer`)
/// when there is room; `IP:port` when no pod is known.
pub(crate) fn endpoint_cell(flow: &Flow, s: Side, width: usize, label_keys: &[String]) -> String {
    let (ep, ip, port) = side(flow, s);
    let mut out = String::new();
    match ep.filter(|e| !e.pod_name.is_empty()) {
        Some(ep) => {
            let full_len = ep.namespace.len() + 1 + ep.pod_name.len();
            if ep.namespace.is_empty() || (width < 24 && full_len > width) {
                out.push_str(&ep.pod_name);
            } else {
                let _ = write!(out, "{}/{}", ep.namespace, ep.pod_name);
            }
            for key in label_keys {
                if let Some(v) = label_value(&ep.labels, key) {
                    let extra = key.len() + v.len() + 2;
                    if out.chars().count() + extra <= width {
                        let _ = write!(out, " {key}={v}");
                    }
                }
            }
        }
        None => {
            if ip.is_empty() {
                out.push('?');
            } else {
                out.push_str(ip);
            }
            // The port when it fits (an ephemeral source port is the
            // first thing to give up on a narrow screen).
            if let Some(p) = port.filter(|p| *p != 0) {
                let with = if ip.contains(':') {
                    format!("[{out}]:{p}")
                } else {
                    format!("{out}:{p}")
                };
                if with.chars().count() <= width {
                    out = with;
                }
            }
            if let Some(n) =
                ep.and_then(|e| holonet_flows::names::reserved_identity_name(e.identity))
            {
                let _ = write!(out, " ({n})");
            }
        }
    }
    out
}

/// The value of label `key` among Cilium labels (`k8s:org=payer`).
pub(crate) fn label_value<'a>(labels: &'a [String], key: &str) -> Option<&'a str> {
    labels.iter().find_map(|l| {
        let (_, k, v) = holonet_flows::selector::split_label(l);
        (k == key).then_some(v)
    })
}

/// `10:48:20.833` (UTC), or `--:--:--` without a time.
pub(crate) fn time_cell(ts: Option<&Timestamp>, millis: bool) -> String {
    let Some(ts) = ts else {
        return "--:--:--".to_owned();
    };
    let secs = ts.seconds.rem_euclid(86_400);
    let mut s = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    if millis {
        let _ = write!(s, ".{:03}", ts.nanos.clamp(0, 999_999_999) / 1_000_000);
    }
    s
}

/// Nanoseconds since the epoch of a timestamp (0 without one).
pub(crate) fn ts_nanos(ts: Option<&Timestamp>) -> i128 {
    ts.map_or(0, |t| {
        i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos)
    })
}

/// Cuts `s` to `width` characters, ending with `…` when cut.
pub(crate) fn fit(s: &str, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    let n = s.chars().count();
    if n <= width {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths_and_numbers() {
        assert_eq!(url_path("http://h:1/a/b?c=d"), "/a/b?c=d");
        assert_eq!(url_path("http://h"), "/");
        assert_eq!(url_path("/x"), "/x");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        assert_eq!(fit("abc", 0), "");
        assert_eq!(human_duration_ns(4_210_334), "4.2ms");
        assert_eq!(human_duration_ns(812_000), "812µs");
        assert_eq!(verdict_name(2), "DROPPED");
        assert_eq!(verdict_name(99), "UNKNOWN");
    }

    #[test]
    fn endpoints_without_pods_show_ip_and_port() {
        let flow = Flow {
            ip: Some(holonet_proto::flow::Ip {
                source: "10.0.0.1".into(),
                destination: "10.0.0.2".into(),
                ..Default::default()
            }),
            l4: Some(holonet_proto::flow::Layer4 {
                protocol: Some(layer4::Protocol::Tcp(holonet_proto::flow::Tcp {
                    source_port: 40000,
                    destination_port: 80,
                    flags: None,
                })),
            }),
            ..Default::default()
        };
        assert_eq!(
            endpoint_cell(&flow, Side::Destination, 30, &[]),
            "10.0.0.2:80"
        );
        assert_eq!(
            endpoint_cell(&flow, Side::Source, 16, &[]),
            "10.0.0.1:40000"
        );
        assert_eq!(endpoint_cell(&flow, Side::Source, 12, &[]), "10.0.0.1");
        assert_eq!(peer_name(&flow, Side::Source), "10.0.0.1");
        assert_eq!(flow_kind(&flow), "L3/L4");
    }
}
