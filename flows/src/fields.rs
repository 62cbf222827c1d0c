//! Reading the parts of a flow that sit behind nested optional records
//! (ports, the HTTP or DNS record, the path of a URL), one way for every
//! consumer: filters, the dashboard's columns and policy explanations.

use holonet_proto::flow::{Dns, Flow, HolonetProcess, Http, layer4, layer7};

/// Source and destination port of a TCP, UDP or SCTP flow.
pub fn ports(flow: &Flow) -> Option<(u32, u32)> {
    match flow.l4.as_ref()?.protocol.as_ref()? {
        layer4::Protocol::Tcp(t) => Some((t.source_port, t.destination_port)),
        layer4::Protocol::Udp(u) => Some((u.source_port, u.destination_port)),
        layer4::Protocol::Sctp(s) => Some((s.source_port, s.destination_port)),
        _ => None,
    }
}

/// The HTTP record of an L7 flow.
pub fn http(flow: &Flow) -> Option<&Http> {
    match flow.l7.as_ref()?.record.as_ref()? {
        layer7::Record::Http(h) => Some(h),
        layer7::Record::Dns(_) => None,
    }
}

/// The DNS record of an L7 flow.
pub fn dns(flow: &Flow) -> Option<&Dns> {
    match flow.l7.as_ref()?.record.as_ref()? {
        layer7::Record::Dns(d) => Some(d),
        layer7::Record::Http(_) => None,
    }
}

/// A process as flows show it: `curl[4321]`. Control characters in the
/// command (a process can name itself anything) are shown as `?`, so a
/// name cannot move a terminal's cursor.
pub fn process_name(process: &HolonetProcess) -> String {
    let command: String = process
        .command
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    format!("{command}[{}]", process.pid)
}

/// The processes at the source and destination of a flow, `?` for an end
/// whose process is not known; `None` when neither is (holonet agents name
/// them on TCP flows, Hubble never does).
pub fn processes(flow: &Flow) -> Option<(String, String)> {
    if !flow.has_holonet_fields() {
        return None;
    }
    let name = |p: Option<&HolonetProcess>| p.map_or_else(|| "?".to_string(), process_name);
    Some((
        name(flow.holonet_source_process.as_ref()),
        name(flow.holonet_destination_process.as_ref()),
    ))
}

/// The path (with query) of an HTTP URL: `http://h:1/p?q` → `/p?q`; a
/// URL without a scheme is returned as it is.
pub fn url_path(url: &str) -> &str {
    let Some(i) = url.find("://") else {
        return url;
    };
    let rest = &url[i + 3..];
    rest.find('/').map_or("/", |i| &rest[i..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths() {
        assert_eq!(url_path("http://h:1/p?q=1"), "/p?q=1");
        assert_eq!(url_path("http://h:1"), "/");
        assert_eq!(url_path("/already/a/path"), "/already/a/path");
    }

    #[test]
    fn missing_records_are_none() {
        let flow = Flow::default();
        assert_eq!(ports(&flow), None);
        assert!(http(&flow).is_none() && dns(&flow).is_none());
    }
}
